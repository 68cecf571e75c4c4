//! Integration tests against a real anvil (spawned per test on a free port):
//! the Governor path through the client, confirmation depth, reorgs, and the
//! clear errors for bad endpoints and ids.

use collective_chain::alloy::providers::Provider;
use collective_chain::devnet::{self, AnvilOptions, AnvilProcess, DevnetFile, GovernanceParams};
use collective_chain::*;

struct Net {
    // Keeps anvil alive for the test; killed on drop.
    _anvil: AnvilProcess,
    file: DevnetFile,
}

impl Net {
    async fn start() -> Net {
        let anvil_path = devnet::anvil_path();
        assert!(
            anvil_path.exists(),
            "anvil not found at {} (run `make tools` or set COLLECTIVE_TOOLS_BIN)",
            anvil_path.display()
        );
        let anvil = AnvilProcess::spawn(&AnvilOptions::default())
            .await
            .expect("anvil starts");
        let file = devnet::deploy_demo(anvil.url(), GovernanceParams::default())
            .await
            .expect("suite deploys");
        Net {
            _anvil: anvil,
            file,
        }
    }

    async fn client(&self, role: &str) -> ChainClient {
        self.file.client(role).await.unwrap()
    }

    async fn reader(&self) -> ChainClient {
        ChainClient::connect_deployment(&self.file.deployment, None)
            .await
            .unwrap()
    }

    /// Votes `id` through with voter1 (40% of supply) for, voter2 against,
    /// and queues it; returns the client of the requester.
    async fn pass_and_queue(&self, id: U256) {
        let requester = self.client("requester").await;
        assert_eq!(
            requester.proposal_state(id).await.unwrap(),
            ProposalState::Pending
        );
        assert_eq!(
            requester.fast_forward(id).await.unwrap(),
            ProposalState::Active
        );
        self.client("voter1")
            .await
            .cast_vote(id, Support::For)
            .await
            .unwrap();
        self.client("voter2")
            .await
            .cast_vote(id, Support::Against)
            .await
            .unwrap();
        assert_eq!(
            requester.fast_forward(id).await.unwrap(),
            ProposalState::Succeeded
        );
        requester.queue(id).await.unwrap();
        assert_eq!(
            requester.proposal_state(id).await.unwrap(),
            ProposalState::Queued
        );
    }
}

fn request(n: u8) -> ApprovalRequest {
    ApprovalRequest {
        tree_sha256: B256::repeat_byte(n),
        tree_sha1: FixedBytes::<20>::repeat_byte(n),
        recipients: vec!["age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq".into()],
        expires_at: 0,
        uri: format!("https://example.invalid/pr/{n}"),
    }
}

#[tokio::test]
async fn dev_accounts_are_anvils_accounts() {
    let net = Net::start().await;
    let accounts: Vec<Address> = net
        .reader()
        .await
        .provider()
        .raw_request("eth_accounts".into(), ())
        .await
        .unwrap();
    let ours: Vec<Address> = devnet::dev_accounts().iter().map(|a| a.address).collect();
    assert_eq!(accounts, ours);
}

#[tokio::test]
async fn governor_path_approves_a_tree() {
    let net = Net::start().await;
    let requester = net.client("requester").await;
    let req = request(1);
    let id = requester
        .propose_approval(&req, "Approve PR 1")
        .await
        .unwrap();

    // Queueing before the vote closed is refused by the Governor.
    let early = requester.queue(id).await.unwrap_err().to_string();
    assert!(early.contains("GovernorUnexpectedProposalState"), "{early}");

    net.pass_and_queue(id).await;
    let info = requester.proposal(id).await.unwrap();
    assert_eq!(info.description, "Approve PR 1");
    assert_eq!(info.actions.len(), 1);
    assert_eq!(
        info.actions[0].target,
        net.file.deployment.addresses.code_registry
    );
    assert!(info.for_votes > info.against_votes && info.for_votes >= info.quorum);
    assert!(info.eta > 0);

    // The timelock delay holds.
    let early = requester.execute(id).await.unwrap_err().to_string();
    assert!(
        early.contains("TimelockUnexpectedOperationState"),
        "{early}"
    );
    assert_eq!(requester.approval(req.tree_sha256, 0).await.unwrap(), None);

    assert_eq!(
        requester.fast_forward(id).await.unwrap(),
        ProposalState::Queued
    );
    let tx = requester.execute(id).await.unwrap();
    assert_eq!(
        requester.proposal_state(id).await.unwrap(),
        ProposalState::Executed
    );

    let a = requester
        .approval(req.tree_sha256, 0)
        .await
        .unwrap()
        .expect("approved");
    assert_eq!(a.tree_sha1, req.tree_sha1);
    assert_eq!(a.recipients, req.recipients);
    assert_eq!(a.uri, req.uri);
    assert!(!a.revoked);
    assert_eq!(a.approved_block, tx.block_number);
    assert_eq!(a.approved_block_hash, tx.block_hash);
    assert_eq!(a.approved_tx, tx.tx_hash);
    assert!(requester.is_approved(req.tree_sha256, 0).await.unwrap());
    assert_eq!(
        requester.approved_trees().await.unwrap(),
        vec![req.tree_sha256]
    );
    // Another tree is not approved.
    assert_eq!(
        requester.approval(B256::repeat_byte(9), 0).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn approval_below_confirmation_depth_is_not_reported() {
    let net = Net::start().await;
    let requester = net.client("requester").await;
    let req = request(2);
    let id = requester
        .propose_approval(&req, "Approve PR 2")
        .await
        .unwrap();
    net.pass_and_queue(id).await;
    requester.fast_forward(id).await.unwrap();
    let reader = net.reader().await;
    let mut watcher = EventWatcher::new(reader.clone(), net.file.deployment.deploy_block, 3);
    assert!(watcher.poll().await.unwrap().is_empty());

    requester.execute(id).await.unwrap();
    assert!(
        reader.approval(req.tree_sha256, 0).await.unwrap().is_some(),
        "visible at depth 0"
    );
    assert_eq!(
        reader.approval(req.tree_sha256, 3).await.unwrap(),
        None,
        "hidden at depth 3"
    );
    assert!(!reader.is_approved(req.tree_sha256, 3).await.unwrap());
    let evs = watcher.poll().await.unwrap();
    assert!(
        !evs.iter().any(|e| matches!(e, ChainEvent::Approved { .. })),
        "{evs:?}"
    );

    reader.anvil_mine(2).await.unwrap();
    assert_eq!(
        reader.approval(req.tree_sha256, 3).await.unwrap(),
        None,
        "still one block short"
    );
    assert!(watcher.poll().await.unwrap().is_empty());

    reader.anvil_mine(1).await.unwrap();
    assert!(reader.approval(req.tree_sha256, 3).await.unwrap().is_some());
    let evs = watcher.poll().await.unwrap();
    assert!(
        matches!(evs.as_slice(), [ChainEvent::Approved { tree_sha256, .. }] if *tree_sha256 == req.tree_sha256),
        "{evs:?}"
    );
    // Reported once.
    assert!(watcher.poll().await.unwrap().is_empty());
}

#[tokio::test]
async fn reorg_removing_an_approval_is_noticed() {
    let net = Net::start().await;
    let requester = net.client("requester").await;
    let req = request(3);
    let id = requester
        .propose_approval(&req, "Approve PR 3")
        .await
        .unwrap();
    net.pass_and_queue(id).await;
    requester.fast_forward(id).await.unwrap();
    let reader = net.reader().await;
    let before = reader.block_number().await.unwrap();
    let mut watcher = EventWatcher::new(reader.clone(), before + 1, 2);

    let snapshot = reader.anvil_snapshot().await.unwrap();
    requester.execute(id).await.unwrap();
    reader.anvil_mine(2).await.unwrap();
    assert!(reader.approval(req.tree_sha256, 2).await.unwrap().is_some());
    let evs = watcher.poll().await.unwrap();
    assert!(
        matches!(evs.as_slice(), [ChainEvent::Approved { .. }]),
        "{evs:?}"
    );

    // The chain loses the execute block; a longer chain without it wins.
    assert!(reader.anvil_revert(snapshot).await.unwrap());
    reader.anvil_mine(6).await.unwrap();
    assert_eq!(
        reader.approval(req.tree_sha256, 2).await.unwrap(),
        None,
        "approval gone after reorg"
    );
    assert!(!reader.is_approved(req.tree_sha256, 2).await.unwrap());
    let evs = watcher.poll().await.unwrap();
    assert!(
        matches!(evs.first(), Some(ChainEvent::Reorg { from_block }) if *from_block <= before + 1),
        "{evs:?}"
    );
    assert!(
        !evs.iter().any(|e| matches!(e, ChainEvent::Approved { .. })),
        "{evs:?}"
    );
    assert_eq!(
        reader.proposal_state(id).await.unwrap(),
        ProposalState::Queued
    );
}

#[tokio::test]
async fn node_registration_anchors_and_data() {
    let net = Net::start().await;
    let requester = net.client("requester").await;
    let operator = net.client("operator").await;
    let contributor = net.client("contributor").await;
    let node_id = B256::repeat_byte(0x42);
    let record = NodeRecord {
        encryption_recipient: "ssh-rsa AAAAB3NzaC1yc2E".into(),
        log_public_key: "node.example+01234567+AQ".into(),
        endpoint: "http://127.0.0.1:8080".into(),
        operator: operator.sender().unwrap(),
        registered_block: 0,
    };
    assert_eq!(requester.node(node_id).await.unwrap(), None);
    // Contributing to an unregistered node is refused.
    let e = contributor
        .contribute(B256::repeat_byte(1), "file:///x", 10, node_id)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("UnknownNode"), "{e}");

    let id = requester
        .propose_register_node(node_id, &record, "Register node 42")
        .await
        .unwrap();
    net.pass_and_queue(id).await;
    requester.fast_forward(id).await.unwrap();
    requester.execute(id).await.unwrap();
    let got = requester.node(node_id).await.unwrap().expect("registered");
    assert_eq!(got.encryption_recipient, record.encryption_recipient);
    assert_eq!(got.operator, record.operator);

    // Only the operator anchors; sizes never shrink.
    let e = requester
        .anchor_checkpoint(node_id, 1, B256::repeat_byte(7))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("NotOperator") && e.contains("NodeRegistry.anchorCheckpoint"),
        "{e}"
    );
    operator
        .anchor_checkpoint(node_id, 5, B256::repeat_byte(5))
        .await
        .unwrap();
    operator
        .anchor_checkpoint(node_id, 9, B256::repeat_byte(9))
        .await
        .unwrap();
    let e = operator
        .anchor_checkpoint(node_id, 8, B256::repeat_byte(8))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("CheckpointShrinks"), "{e}");
    let anchors = requester.anchors(node_id).await.unwrap();
    assert_eq!(
        anchors.iter().map(|a| a.size).collect::<Vec<_>>(),
        vec![5, 9]
    );
    assert_eq!(
        requester
            .latest_anchor(node_id)
            .await
            .unwrap()
            .unwrap()
            .root,
        B256::repeat_byte(9)
    );

    // Contribute; only the contributor withdraws; the watcher reports it.
    let mut watcher = EventWatcher::new(requester.clone(), net.file.deployment.deploy_block, 0);
    watcher.poll().await.unwrap();
    let ct = B256::repeat_byte(0xc7);
    contributor
        .contribute(ct, "file:///data/c.age", 1234, node_id)
        .await
        .unwrap();
    let e = requester.withdraw(ct).await.unwrap_err().to_string();
    assert!(e.contains("NotContributor"), "{e}");
    let list = requester.contributions(node_id, 0).await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(!list[0].withdrawn);
    assert_eq!(list[0].contributor, contributor.sender().unwrap());
    contributor.withdraw(ct).await.unwrap();
    assert!(requester.contributions(node_id, 0).await.unwrap()[0].withdrawn);
    assert!(
        !requester.contributions(node_id, 1).await.unwrap()[0].withdrawn,
        "not yet confirmed"
    );
    let evs = watcher.poll().await.unwrap();
    assert!(
        matches!(evs.as_slice(), [ChainEvent::Withdrawn { sha256, .. }] if *sha256 == ct),
        "{evs:?}"
    );
}

#[tokio::test]
async fn guardian_revokes_and_pauses() {
    let net = Net::start().await;
    let requester = net.client("requester").await;
    let guardian = net.client("guardian").await;
    let req = request(4);
    let id = requester
        .propose_approval(&req, "Approve PR 4")
        .await
        .unwrap();
    net.pass_and_queue(id).await;
    requester.fast_forward(id).await.unwrap();
    requester.execute(id).await.unwrap();
    let mut watcher = EventWatcher::new(requester.clone(), net.file.deployment.deploy_block, 0);
    watcher.poll().await.unwrap();

    // A stranger cannot revoke.
    let e = requester
        .revoke(req.tree_sha256, "no")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("NotOwnerOrGuardian"), "{e}");
    guardian
        .revoke(req.tree_sha256, "leaks data")
        .await
        .unwrap();
    let a = requester
        .approval(req.tree_sha256, 0)
        .await
        .unwrap()
        .unwrap();
    assert!(a.revoked);
    assert_eq!(a.revoke_reason, "leaks data");
    assert!(!requester.is_approved(req.tree_sha256, 0).await.unwrap());

    assert!(!requester.paused(0).await.unwrap());
    guardian.pause().await.unwrap();
    assert!(requester.paused(0).await.unwrap());
    assert!(
        !requester.paused(1).await.unwrap(),
        "not yet confirmed at depth 1"
    );
    let evs = watcher.poll().await.unwrap();
    assert!(
        matches!(evs.as_slice(), [ChainEvent::Revoked { reason, .. }, ChainEvent::Paused { .. }] if reason == "leaks data"),
        "{evs:?}"
    );
}

#[tokio::test]
async fn unknown_proposal_id_is_a_clear_error() {
    let net = Net::start().await;
    let c = net.client("voter1").await;
    let id = U256::from(123456789u64);
    for e in [
        c.proposal_state(id).await.unwrap_err(),
        c.cast_vote(id, Support::For).await.unwrap_err(),
        c.queue(id).await.unwrap_err(),
        c.execute(id).await.unwrap_err(),
        c.proposal(id).await.unwrap_err(),
    ] {
        assert!(matches!(e, ChainError::UnknownProposal { .. }), "{e:?}");
        assert!(
            e.to_string().contains("unknown proposal id 123456789"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn unreachable_rpc_names_the_url() {
    let port = devnet::free_port().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let addrs = Addresses::default();
    let e = ChainClient::connect(&url, addrs, None).await.unwrap_err();
    assert!(matches!(e, ChainError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains(&url), "{e}");
    let e = ChainClient::connect("not a url", addrs, None)
        .await
        .unwrap_err();
    assert!(matches!(e, ChainError::InvalidUrl { .. }), "{e:?}");
}

#[tokio::test]
async fn wrong_chain_and_wrong_addresses_are_refused() {
    let net = Net::start().await;
    let d = &net.file.deployment;
    let e = ChainClient::connect_checked(&d.rpc_url, d.addresses, None, 1)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ChainError::WrongChain {
                expected: 1,
                actual: 31337,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("serves chain id 31337, expected 1"),
        "{e}"
    );

    let mut wrong = d.addresses;
    wrong.code_registry = Address::repeat_byte(0x11);
    let e = ChainClient::connect_checked(&d.rpc_url, wrong, None, d.chain_id)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ChainError::NotAContract {
                contract: "CodeRegistry",
                ..
            }
        ),
        "{e:?}"
    );

    let reader = net.reader().await;
    let e = reader.propose_approval(&request(5), "x").await.unwrap_err();
    assert!(matches!(e, ChainError::NoSigner { .. }), "{e:?}");
}

#[tokio::test]
async fn devnet_file_round_trips_and_parses_as_a_deployment() {
    let net = Net::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devnet.yaml");
    net.file.save(&path).unwrap();
    assert_eq!(DevnetFile::load(&path).unwrap(), net.file);
    let text = std::fs::read_to_string(&path).unwrap();
    let as_deployment: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    assert!(as_deployment.get("chain_id").is_some() && as_deployment.get("addresses").is_some());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(DevnetFile::load(&dir.path().join("missing.yaml")).is_err());
}

#[tokio::test]
async fn anvil_reorg_rpc_replacing_the_approval_block_is_noticed() {
    let net = Net::start().await;
    let requester = net.client("requester").await;
    let req = request(6);
    let id = requester
        .propose_approval(&req, "Approve PR 6")
        .await
        .unwrap();
    net.pass_and_queue(id).await;
    requester.fast_forward(id).await.unwrap();
    let reader = net.reader().await;
    let start = reader.block_number().await.unwrap() + 1;
    let mut watcher = EventWatcher::new(reader.clone(), start, 1);

    requester.execute(id).await.unwrap();
    reader.anvil_mine(2).await.unwrap();
    let evs = watcher.poll().await.unwrap();
    assert!(
        matches!(evs.as_slice(), [ChainEvent::Approved { .. }]),
        "{evs:?}"
    );
    assert!(reader.approval(req.tree_sha256, 1).await.unwrap().is_some());

    // anvil_reorg replaces the last 3 blocks (execute + 2 empty) with empty ones.
    let _: serde_json::Value = reader
        .provider()
        .raw_request(
            "anvil_reorg".into(),
            (3u64, Vec::<serde_json::Value>::new()),
        )
        .await
        .unwrap();
    reader.anvil_mine(1).await.unwrap();
    assert_eq!(
        reader.approval(req.tree_sha256, 1).await.unwrap(),
        None,
        "approval gone after reorg"
    );
    let evs = watcher.poll().await.unwrap();
    assert!(
        matches!(evs.first(), Some(ChainEvent::Reorg { .. })),
        "{evs:?}"
    );
    assert!(
        !evs.iter().any(|e| matches!(e, ChainEvent::Approved { .. })),
        "{evs:?}"
    );
}

#[tokio::test]
async fn event_stream_yields_confirmed_events() {
    use futures::StreamExt;
    let net = Net::start().await;
    let guardian = net.client("guardian").await;
    let reader = net.reader().await;
    let watcher = EventWatcher::new(reader.clone(), net.file.deployment.deploy_block, 2);
    let mut stream = Box::pin(watcher.into_stream(std::time::Duration::from_millis(50)));
    guardian.pause().await.unwrap();
    // Not yet confirmed: nothing arrives.
    let early = tokio::time::timeout(std::time::Duration::from_millis(400), stream.next()).await;
    assert!(early.is_err(), "event before confirmation: {early:?}");
    reader.anvil_mine(2).await.unwrap();
    let ev = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
        .await
        .expect("event arrives once confirmed")
        .expect("stream continues")
        .unwrap();
    assert!(
        matches!(ev, ChainEvent::Paused { by, .. } if by == guardian.sender().unwrap()),
        "{ev:?}"
    );
}
