//! End-to-end tests of the node: real anvil with the contracts, real git
//! repositories, real bubblewrap. Build the CLI first (`cargo build -p
//! collective`): the audit and crash tests run the binary.

use std::time::Duration;

use anyhow::Result;
use collective_e2e::*;

const T: Duration = Duration::from_secs(90);

fn stats_files() -> Vec<(&'static str, Option<&'static str>)> {
    vec![
        ("README.md", Some("stats job\n")),
        ("jobs/stats/job.yaml", Some(STATS_JOB_YAML)),
        ("jobs/stats/run.py", Some(STATS_JOB_PY)),
    ]
}

/// Approved through the Governor: deployed, job runs on contributed data,
/// the requester decrypts the output, `collective audit` passes; a restart
/// replays the log and does not run the job again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approved_tree_deploys_runs_decrypts_audits_and_restart_does_not_rerun() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let devnet = Devnet::spawn(tmp.path()).await?;
    let repo = JobRepo::init(&tmp.path().join("repo"))?;
    let (ids, commit) = repo.commit(&stats_files(), "add stats job")?;
    let dirs = NodeDirs::new(&tmp.path().join("node"))?;
    let store = collective_vault::DatasetStore::open(&dirs.store_url())?;
    devnet
        .register_node(NODE_ID, node_keys(), "collective.test/node")
        .await?;
    devnet
        .contribute(&store, node_keys().recipient(), NODE_ID, b"a,b\n1,2\n3,4\n")
        .await?;
    let mut cfg = node_config(&devnet, &repo.path, &dirs, 0);
    // Anchor checkpoints every second with the operator's key.
    std::env::set_var(
        "COLLECTIVE_E2E_OPERATOR_KEY",
        &devnet.file.account("operator")?.private_key,
    );
    cfg.chain.operator_key_env = Some("COLLECTIVE_E2E_OPERATOR_KEY".into());
    cfg.log.anchor_interval_secs = 1;
    let node = RunningNode::start(cfg.clone()).await?;

    // Before the vote: refused (not approved), nothing deployed.
    let refused = node.wait_decision("refused", None, T).await?;
    assert_eq!(refused["tree_sha256"], ids.sha256.as_str());
    assert!(
        refused["reason"].as_str().unwrap().contains("no approval"),
        "{refused}"
    );
    assert!(node.get("/v1/status").await?["deployed"].is_null());

    let requester = Requester::default();
    devnet.approve(&ids, &[requester.recipient()], 0).await?;
    let deployed = node.wait_decision("deployed", None, T).await?;
    assert_eq!(deployed["tree_sha256"], ids.sha256.as_str());
    assert_eq!(deployed["commit"], commit.as_str());
    let fin = node.wait_decision("job-finished", Some("stats"), T).await?;
    assert_eq!(fin["exit_status"], 0, "{fin}");

    // The requester fetches and decrypts the output; its digest is logged.
    let path = format!("/v1/outbox/{}/stats/out/result.json.age", ids.sha256);
    let ct = node.bytes(&path).await?;
    let logged = fin["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "out/result.json.age")
        .cloned()
        .unwrap();
    assert_eq!(logged["sha256"], collective_vault::sha256_hex(&ct).as_str());
    let result: serde_json::Value = serde_json::from_slice(&requester.decrypt(&ct)?)?;
    assert_eq!(result["files"], 1);
    assert_eq!(result["lines"], 3);
    // Someone else cannot decrypt it; the outbox serves nothing but .age.
    assert!(Requester::default().decrypt(&ct).is_err());
    assert!(node.bytes("/v1/outbox/../keys/node.key").await.is_err());
    // Status page and metrics are up.
    let page = String::from_utf8(node.bytes("/").await?)?;
    assert!(
        page.contains(&ids.sha256),
        "status page lacks the deployed tree"
    );
    let metrics = String::from_utf8(node.bytes("/metrics").await?)?;
    assert!(
        metrics.contains("collective_jobs_started_total 1"),
        "{metrics}"
    );
    let checkpoint = String::from_utf8(node.bytes("/log/checkpoint").await?)?;
    assert!(
        checkpoint.starts_with("collective.test/node\n"),
        "{checkpoint}"
    );
    // The log is served as static tiles: an auditor can work from the URL.
    let vkey = node_keys().log_verifier_key("collective.test/node")?;
    let out = std::process::Command::new(collective_bin())
        .args([
            "audit",
            "--log",
            &format!("{}/log/", node.url),
            "--log-key",
            &vkey,
        ])
        .output()?;
    assert!(
        out.status.success(),
        "HTTP audit failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The checkpoint covering the job's end gets anchored on chain.
    let anchored = eventually(T, "an anchor covering the finished job", || async {
        let s = node.get("/v1/status").await.ok()?;
        (s["last_anchor"]["size"].as_u64()? >= 4).then_some(s["last_anchor"].clone())
    })
    .await?;
    let anchors = devnet
        .client("spare1")
        .await?
        .anchors(collective_chain::B256::from(NODE_ID))
        .await?;
    assert!(
        anchors
            .iter()
            .any(|a| Some(a.size) == anchored["size"].as_u64()),
        "{anchored} not on chain"
    );
    node.stop().await;

    // The auditor: log signature, inclusion, anchors and approvals on chain,
    // trees in the repo.
    let a = &devnet.file.deployment.addresses;
    let out = std::process::Command::new(collective_bin())
        .args(["audit", "--log"])
        .arg(dirs.log_dir())
        .args(["--log-key", &vkey, "--rpc", devnet.url()])
        .args(["--node-registry", &format!("{:#x}", a.node_registry)])
        .args(["--code-registry", &format!("{:#x}", a.code_registry)])
        .args(["--node-id", &format!("0x{}", hex::encode(NODE_ID))])
        .arg("--repo")
        .arg(&repo.path)
        .output()?;
    assert!(
        out.status.success(),
        "audit failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Restart: state comes back from the log; the batch job does not rerun.
    let node = RunningNode::start(cfg).await?;
    eventually(T, "a few reconcile rounds", || async {
        let s = node.get("/v1/status").await.ok()?;
        (s["reconciles"].as_u64()? >= 3).then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = node.get("/v1/status").await?;
    assert_eq!(s["deployed"]["sha256"], ids.sha256.as_str());
    let starts = node
        .runs()
        .await?
        .iter()
        .filter(|r| r["decision"] == "job-started")
        .count();
    assert_eq!(starts, 1, "the finished batch job ran again after restart");
    node.stop().await;
    let entries = read_log(&dirs.log_dir())?;
    assert_eq!(
        entries
            .iter()
            .filter(|(_, _, p)| p.decision == collective_attest::Decision::Deployed)
            .count(),
        1
    );
    Ok(())
}

/// A merge without approval is refused and logged; the deployed tree stays;
/// the later approval deploys it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unapproved_merge_is_refused_until_approved() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let devnet = Devnet::spawn(tmp.path()).await?;
    let repo = JobRepo::init(&tmp.path().join("repo"))?;
    let (a, _) = repo.commit(&stats_files(), "v1")?;
    let dirs = NodeDirs::new(&tmp.path().join("node"))?;
    let node = RunningNode::start(node_config(&devnet, &repo.path, &dirs, 0)).await?;
    let requester = Requester::default();
    devnet.approve(&a, &[requester.recipient()], 0).await?;
    node.wait_decision("job-finished", Some("stats"), T).await?;

    let (b, _) = repo.commit(&[("README.md", Some("v2, not approved\n"))], "v2")?;
    let refused = eventually(T, "refusal of the unapproved tree", || async {
        node.recent()
            .await
            .ok()?
            .into_iter()
            .find(|e| e["decision"] == "refused" && e["tree_sha256"] == b.sha256.as_str())
    })
    .await?;
    assert!(refused["reason"].as_str().unwrap().contains("no approval"));
    let s = node.get("/v1/status").await?;
    assert_eq!(
        s["deployed"]["sha256"],
        a.sha256.as_str(),
        "the approved tree must stay deployed"
    );
    assert!(
        s["pending"][&b.sha256].is_string(),
        "pending trees list the refused head: {s}"
    );
    // Mining more blocks changes nothing: refused once, never deployed.
    devnet.mine(3).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let recent = node.recent().await?;
    assert!(!recent
        .iter()
        .any(|e| e["decision"] == "deployed" && e["tree_sha256"] == b.sha256.as_str()));
    assert_eq!(
        recent
            .iter()
            .filter(|e| e["decision"] == "refused" && e["tree_sha256"] == b.sha256.as_str())
            .count(),
        1
    );

    devnet.approve(&b, &[requester.recipient()], 0).await?;
    eventually(T, "deployment of the approved tree", || async {
        let s = node.get("/v1/status").await.ok()?;
        (s["deployed"]["sha256"] == b.sha256.as_str()).then_some(())
    })
    .await?;
    node.stop().await;
    Ok(())
}

/// A tree with a symlink escaping it is approved on chain, and still refused
/// at deploy; the refusal is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn symlink_escaping_the_tree_is_refused_at_deploy() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let devnet = Devnet::spawn(tmp.path()).await?;
    let repo = JobRepo::init(&tmp.path().join("repo"))?;
    repo.commit(&stats_files(), "v1")?;
    let (ids, _) = repo.commit_symlink(
        "jobs/stats/keys",
        "../../../../keys/node.key",
        "sneaky link",
    )?;
    let dirs = NodeDirs::new(&tmp.path().join("node"))?;
    let node = RunningNode::start(node_config(&devnet, &repo.path, &dirs, 0)).await?;
    devnet
        .approve(&ids, &[Requester::default().recipient()], 0)
        .await?;
    let refused = eventually(T, "deploy-time refusal", || async {
        node.recent().await.ok()?.into_iter().find(|e| {
            e["decision"] == "refused"
                && e["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("deployment refused"))
        })
    })
    .await?;
    assert!(
        refused["reason"].as_str().unwrap().contains("symlink")
            || refused["reason"].as_str().unwrap().contains("outside"),
        "{refused}"
    );
    assert!(node.get("/v1/status").await?["deployed"].is_null());
    assert_eq!(node.runs().await?.len(), 0);
    node.stop().await;
    Ok(())
}

/// Revocation while a job runs kills it and is logged, then the tree is
/// undeployed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocation_kills_the_running_job() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let devnet = Devnet::spawn(tmp.path()).await?;
    let repo = JobRepo::init(&tmp.path().join("repo"))?;
    let (ids, _) = repo.commit_sleeper("sleeprev")?;
    let dirs = NodeDirs::new(&tmp.path().join("node"))?;
    let node = RunningNode::start(node_config(&devnet, &repo.path, &dirs, 0)).await?;
    devnet
        .approve(&ids, &[Requester::default().recipient()], 0)
        .await?;
    node.wait_decision("job-started", Some("sleeprev"), T)
        .await?;
    let alive = || {
        let o = std::process::Command::new("pgrep")
            .args(["-f", "jobs/sleeprev/run.py"])
            .output()
            .unwrap();
        !String::from_utf8_lossy(&o.stdout).trim().is_empty()
    };
    eventually(T, "the sandboxed job to run", || async {
        alive().then_some(())
    })
    .await?;

    devnet.revoke(&ids.sha256, "exfiltrates data").await?;
    let killed = node.wait_decision("revoked", Some("sleeprev"), T).await?;
    assert!(
        killed["reason"]
            .as_str()
            .unwrap()
            .contains("exfiltrates data"),
        "{killed}"
    );
    eventually(T, "undeploy", || async {
        node.recent()
            .await
            .ok()?
            .into_iter()
            .find(|e| e["decision"] == "revoked" && e["job"].is_null())
    })
    .await?;
    eventually(
        Duration::from_secs(10),
        "the job's processes to die",
        || async { (!alive()).then_some(()) },
    )
    .await?;
    assert!(node.get("/v1/status").await?["deployed"].is_null());
    node.stop().await;
    Ok(())
}

/// SIGKILL of the node during a job: the restart logs `interrupted` and,
/// under the default policy, does not rerun the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_job_is_logged_as_interrupted_on_restart() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let devnet = Devnet::spawn(tmp.path()).await?;
    let repo = JobRepo::init(&tmp.path().join("repo"))?;
    let (ids, _) = repo.commit_sleeper("sleepkill")?;
    let dirs = NodeDirs::new(&tmp.path().join("node"))?;
    let mut cfg = node_config(&devnet, &repo.path, &dirs, 0);
    let port = collective_chain::devnet::free_port()?;
    cfg.http.listen = format!("127.0.0.1:{port}");
    let cfg_path = tmp.path().join("node.yaml");
    std::fs::write(&cfg_path, yaml_text(&cfg))?;
    let mut child = std::process::Command::new(collective_bin())
        .args(["node", "run", "--config"])
        .arg(&cfg_path)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}");
    eventually(T, "the node's API", || async {
        get_json(&format!("{url}/v1/status")).await.ok()
    })
    .await?;
    devnet
        .approve(&ids, &[Requester::default().recipient()], 0)
        .await?;
    eventually(T, "job-started", || async {
        let runs = get_json(&format!("{url}/v1/runs")).await.ok()?;
        runs["runs"]
            .as_array()?
            .iter()
            .find(|r| r["decision"] == "job-started")
            .cloned()
    })
    .await?;
    let alive = || {
        let o = std::process::Command::new("pgrep")
            .args(["-f", "jobs/sleepkill/run.py"])
            .output()
            .unwrap();
        !String::from_utf8_lossy(&o.stdout).trim().is_empty()
    };
    eventually(T, "the sandboxed job to run", || async {
        alive().then_some(())
    })
    .await?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    child.wait()?;
    // The sandbox dies with its parent.
    eventually(
        Duration::from_secs(10),
        "the job to die with the node",
        || async { (!alive()).then_some(()) },
    )
    .await?;

    let node = RunningNode::start(cfg).await?;
    let e = node
        .wait_decision("interrupted", Some("sleepkill"), T)
        .await?;
    assert!(e["reason"].as_str().unwrap().contains("not rerun"), "{e}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let starts = node
        .runs()
        .await?
        .iter()
        .filter(|r| r["decision"] == "job-started")
        .count();
    assert_eq!(
        starts, 1,
        "an interrupted job was rerun under the fail policy"
    );
    node.stop().await;
    Ok(())
}

/// Chain faults: RPC down, the RPC pointing at a fresh chain (anvil
/// restarted, contracts gone), and a reorg that removes an approval below
/// the confirmation depth: nothing wrong deploys, the API keeps serving,
/// and the node resumes when the chain is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chain_faults_never_cause_a_wrong_deployment() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let devnet = Devnet::spawn(tmp.path()).await?;
    let proxy = Proxy::start(devnet.url()).await?;
    let repo = JobRepo::init(&tmp.path().join("repo"))?;
    let (ids, _) = repo.commit(&stats_files(), "v1")?;
    let dirs = NodeDirs::new(&tmp.path().join("node"))?;
    let node =
        RunningNode::start(node_config_rpc(&devnet, &proxy.url, &repo.path, &dirs, 2)).await?;
    node.wait_decision("refused", None, T).await?;

    // Reorg: the approval lands, then the blocks holding it are dropped
    // before reaching depth 2.
    let c = devnet.client("spare1").await?;
    let snap = c.anvil_snapshot().await?;
    devnet
        .approve(&ids, &[Requester::default().recipient()], 0)
        .await?;
    devnet.mine(1).await?; // depth 1 < 2
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(c.anvil_revert(snap).await?, "revert failed");
    devnet.mine(5).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        node.get("/v1/status").await?["deployed"].is_null(),
        "an approval removed by a reorg was acted on"
    );
    assert!(!node
        .recent()
        .await?
        .iter()
        .any(|e| e["decision"] == "deployed"));

    // RPC down: the API keeps serving and reports the outage.
    proxy.set_target(None);
    let s = eventually(T, "the chain error in status", || async {
        let s = node.get("/v1/status").await.ok()?;
        s["chain_error"].is_string().then_some(s)
    })
    .await?;
    assert!(s["deployed"].is_null());
    // Anvil "restarted": a fresh chain without the contracts behind the RPC.
    let fresh = collective_chain::devnet::AnvilProcess::spawn(&Default::default()).await?;
    proxy.set_target(Some(fresh.url()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(node.get("/v1/status").await?["deployed"].is_null());
    assert!(!node
        .recent()
        .await?
        .iter()
        .any(|e| e["decision"] == "deployed"));

    // The real chain is back: approve for real, bury it, and it deploys.
    proxy.set_target(Some(devnet.url()));
    devnet
        .approve(&ids, &[Requester::default().recipient()], 0)
        .await?;
    devnet.mine(2).await?;
    eventually(T, "deployment once the chain is back", || async {
        let s = node.get("/v1/status").await.ok()?;
        (s["deployed"]["sha256"] == ids.sha256.as_str()).then_some(())
    })
    .await?;
    node.stop().await;
    Ok(())
}

fn yaml_text(cfg: &collective_controller::NodeConfig) -> String {
    serde_norway::to_string(cfg).expect("config serializes")
}

/// Hostile jobs in an approved tree, run by the node: each is contained and
/// its end is logged, and a well-behaved job of the same tree still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_jobs_are_contained_and_logged() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let devnet = Devnet::spawn(tmp.path()).await?;
    let dirs = NodeDirs::new(&tmp.path().join("node"))?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let key_file = dirs.root.join("keys").join(collective_vault::NODE_KEY_FILE);
    let jobs = hostile_jobs(port, &key_file);
    let repo = JobRepo::init(&tmp.path().join("repo"))?;
    let mut files: Vec<(String, Option<String>)> = jobs
        .iter()
        .map(|(n, y)| (format!("jobs/{n}/job.yaml"), Some(y.clone())))
        .collect();
    files.extend(
        stats_files()
            .into_iter()
            .map(|(p, c)| (p.to_string(), c.map(str::to_string))),
    );
    let refs: Vec<(&str, Option<&str>)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_deref()))
        .collect();
    let (ids, _) = repo.commit(&refs, "hostile jobs")?;
    let node = RunningNode::start(node_config(&devnet, &repo.path, &dirs, 0)).await?;
    let requester = Requester::default();
    devnet.approve(&ids, &[requester.recipient()], 0).await?;

    let finished = eventually(T, "every job to finish", || async {
        let runs = node.runs().await.ok()?;
        let fin: Vec<_> = runs
            .into_iter()
            .filter(|r| r["decision"] == "job-finished")
            .collect();
        (fin.len() == 10).then_some(fin)
    })
    .await?;
    let get = |name: &str| finished.iter().find(|r| r["job"] == name).cloned().unwrap();
    let stdout = |name: &str| {
        let ct = std::fs::read(
            dirs.outbox()
                .join(&ids.sha256)
                .join(name)
                .join("stdout.age"),
        )
        .unwrap();
        String::from_utf8(requester.decrypt(&ct).unwrap()).unwrap()
    };
    assert_hostile_contained(&get);
    assert!(stdout("net").contains("refused"));
    assert!(
        listener.accept().is_err(),
        "the host listener saw a connection"
    );
    assert!(!stdout("keys").contains("PRIVATE KEY"));
    // Only declared names leave the sandbox; the rest is counted, never
    // named, anywhere the node writes or serves.
    let names = get("names");
    let outs: Vec<&str> = names["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert!(outs.contains(&"out/result.json.age"), "{names}");
    assert!(!outs.iter().any(|o| o.contains("alice")), "{names}");
    assert!(
        names.to_string().contains("3 undeclared or unsafe"),
        "{names}"
    );
    // /v1/runs pages back through history, bounded.
    let all = node.runs().await?;
    let p1 = node.get("/v1/runs?limit=3").await?;
    let idx = |v: &serde_json::Value| -> Vec<u64> {
        v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["index"].as_u64().unwrap())
            .collect()
    };
    let last3: Vec<u64> = all[all.len() - 3..]
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx(&p1), last3);
    let before = p1["next_before"].as_u64().unwrap();
    let p2 = node
        .get(&format!("/v1/runs?limit=3&before={before}"))
        .await?;
    assert!(
        idx(&p2).iter().all(|i| *i < before) && idx(&p2).len() == 3,
        "{p2}"
    );
    let runs_json = serde_json::to_string(&all)?;
    assert!(
        !runs_json.contains("alice"),
        "a job-chosen name reached /v1/runs"
    );
    for e in walkdir::WalkDir::new(&dirs.root).into_iter().flatten() {
        if e.file_type().is_file() {
            let body = std::fs::read(e.path())?;
            assert!(
                !body.windows(5).any(|w| w == b"alice")
                    && !e.path().to_string_lossy().contains("alice"),
                "a job-chosen name reached {}",
                e.path().display()
            );
        }
    }
    // Ten thousand outputs: a bounded entry, logged, and the log verifies.
    let many = get("many");
    let n = many["outputs"].as_array().unwrap().len();
    assert!(n <= 64 + 2, "{n} outputs logged");
    assert!(
        many.to_string().len() < 64 * 1024,
        "entry of {} bytes",
        many.to_string().len()
    );
    // The node kept working: the honest job of the same tree succeeded.
    assert_eq!(get("stats")["exit_status"], 0, "{}", get("stats"));
    assert!(node.get("/v1/status").await?["last_error"].is_null());
    let out = audit_http(&node.url, &[])?;
    assert!(
        out.status.success(),
        "audit after hostile jobs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    node.stop().await;
    Ok(())
}

/// Export jobs re-encrypt datasets to the recipient named in the approval;
/// withdrawn data is skipped by later runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn export_reencrypts_to_the_approved_recipient_and_withdrawn_data_is_skipped() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let devnet = Devnet::spawn(tmp.path()).await?;
    let dirs = NodeDirs::new(&tmp.path().join("node"))?;
    devnet
        .register_node(NODE_ID, node_keys(), "collective.test/node")
        .await?;
    let store = collective_vault::DatasetStore::open(&dirs.store_url())?;
    let kept = devnet
        .contribute(&store, node_keys().recipient(), NODE_ID, b"kept row\n")
        .await?;
    let gone = devnet
        .contribute(&store, node_keys().recipient(), NODE_ID, b"withdrawn row\n")
        .await?;
    devnet
        .client("contributor")
        .await?
        .withdraw(gone.parse()?)
        .await?;

    let heavy = Requester::default();
    let repo = JobRepo::init(&tmp.path().join("repo"))?;
    let export_yaml = format!(
        "kind: export\ndatasets: all\nexport:\n  recipient: {}\n",
        heavy.recipient()
    );
    let mut files = stats_files();
    files.push(("jobs/export/job.yaml", Some(&export_yaml)));
    let (ids, _) = repo.commit(&files, "export + stats")?;
    let node = RunningNode::start(node_config(&devnet, &repo.path, &dirs, 0)).await?;
    let requester = Requester::default();
    devnet
        .approve(&ids, &[requester.recipient(), heavy.recipient()], 0)
        .await?;
    let exported = node.wait_decision("exported", Some("export"), T).await?;
    let outs = exported["outputs"].as_array().unwrap();
    assert_eq!(outs.len(), 1, "withdrawn data was exported: {exported}");
    let ct = node
        .bytes(&format!("/v1/outbox/{}/export/{kept}.age", ids.sha256))
        .await?;
    assert_eq!(heavy.decrypt(&ct)?, b"kept row\n");
    assert!(
        requester.decrypt(&ct).is_err(),
        "export readable by a recipient it was not addressed to"
    );
    let fin = node.wait_decision("job-finished", Some("stats"), T).await?;
    let ct = node
        .bytes(&format!(
            "/v1/outbox/{}/stats/out/result.json.age",
            ids.sha256
        ))
        .await?;
    let result: serde_json::Value = serde_json::from_slice(&requester.decrypt(&ct)?)?;
    assert_eq!(result["files"], 1, "withdrawn data reached the job: {fin}");
    node.stop().await;
    Ok(())
}

/// Pause suspends the running job and the deployment; the DAO's unpause
/// redeploys and the unfinished batch job runs again. An approval that
/// expires stops its job too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_suspends_unpause_resumes_and_expiry_stops() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let devnet = Devnet::spawn(tmp.path()).await?;
    let repo = JobRepo::init(&tmp.path().join("repo"))?;
    let (ids, _) = repo.commit_sleeper("sleeppause")?;
    let dirs = NodeDirs::new(&tmp.path().join("node"))?;
    let node = RunningNode::start(node_config(&devnet, &repo.path, &dirs, 0)).await?;
    let recipient = Requester::default().recipient();
    devnet
        .approve(&ids, std::slice::from_ref(&recipient), 0)
        .await?;
    node.wait_decision("job-started", Some("sleeppause"), T)
        .await?;

    devnet.pause().await?;
    let s = node
        .wait_decision("suspended", Some("sleeppause"), T)
        .await?;
    assert!(s["reason"].as_str().unwrap().contains("paused"), "{s}");
    eventually(T, "the deployment to be suspended", || async {
        let st = node.get("/v1/status").await.ok()?;
        st["deployed"].is_null().then_some(())
    })
    .await?;

    devnet.unpause().await?;
    eventually(T, "the job to start again after unpause", || async {
        let runs = node.runs().await.ok()?;
        (runs
            .iter()
            .filter(|r| r["decision"] == "job-started")
            .count()
            == 2)
            .then_some(())
    })
    .await?;

    // Expiry: a second tree approved until shortly after now.
    let (ids2, _) = repo.commit(&[("README.md", Some("expiring\n"))], "expiring")?;
    let expires = devnet.now().await? + 300;
    devnet
        .approve(&ids2, std::slice::from_ref(&recipient), expires)
        .await?;
    eventually(T, "the expiring tree's job to start", || async {
        let runs = node.runs().await.ok()?;
        runs.iter()
            .find(|r| r["decision"] == "job-started" && r["tree_sha256"] == ids2.sha256.as_str())
            .cloned()
    })
    .await?;
    devnet
        .client("spare1")
        .await?
        .anvil_increase_time(600)
        .await?;
    let stopped = eventually(T, "the expired approval to stop its job", || async {
        let runs = node.runs().await.ok()?;
        runs.into_iter()
            .find(|r| r["decision"] == "suspended" && r["tree_sha256"] == ids2.sha256.as_str())
    })
    .await?;
    assert!(
        stopped["reason"].as_str().unwrap().contains("expired"),
        "{stopped}"
    );
    node.stop().await;
    Ok(())
}

/// The node keeps a pull request told its state: awaiting approval (with
/// the proposal in a comment), then deployed once approved and merged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pull_request_status_follows_approval_and_deployment() -> Result<()> {
    use collective_github::fake::{FakeGithub, FakePull};
    let tmp = tempfile::tempdir()?;
    let devnet = Devnet::spawn(tmp.path()).await?;
    let repo = JobRepo::init(&tmp.path().join("repo"))?;
    let (_, base) = repo.commit(&[("README.md", Some("jobs\n"))], "base")?;
    git(&repo.path, &["checkout", "-q", "-b", "feature"])?;
    let (ids, head) = repo.commit(&stats_files(), "add stats job")?;
    git(&repo.path, &["update-ref", "refs/pull/1/head", &head])?;
    git(&repo.path, &["checkout", "-q", "main"])?;
    let fake = FakeGithub::start(
        "acme",
        "jobs",
        "gh-test-token",
        "collective-bot",
        &format!("file://{}", repo.path.display()),
    )
    .await;
    fake.open_pull(FakePull {
        number: 1,
        title: "Add a stats job".into(),
        body: format!("Recipient: {}", Requester::default().recipient()),
        head_sha: head.clone(),
        head_ref: "feature".into(),
        base_ref: "main".into(),
        base_sha: base.clone(),
        author: "requester".into(),
    });
    let dirs = NodeDirs::new(&tmp.path().join("node"))?;
    let mut cfg = node_config(&devnet, &repo.path, &dirs, 0);
    std::env::set_var("COLLECTIVE_E2E_GH_TOKEN", "gh-test-token");
    cfg.github = Some(collective_controller::config::GithubSection {
        owner: "acme".into(),
        repo: "jobs".into(),
        api_url: fake.api_url(),
        git_remote: None,
        interval_secs: 1,
        target_url: None,
        token_env: "COLLECTIVE_E2E_GH_TOKEN".into(),
    });
    let node = RunningNode::start(cfg).await?;
    let first = eventually(T, "a status on the PR head", || async {
        let s = fake.statuses(&head);
        (!s.is_empty()).then_some(s)
    })
    .await?;
    assert_eq!(first[0].0, "pending", "{first:?}");
    let comments = fake.comments(1);
    assert!(
        comments
            .iter()
            .any(|c| c["body"].as_str().unwrap_or("").contains(&ids.sha256)),
        "{comments:?}"
    );

    devnet
        .approve(&ids, &[Requester::default().recipient()], 0)
        .await?;
    git(&repo.path, &["merge", "-q", "--ff-only", "feature"])?;
    node.wait_decision("deployed", None, T).await?;
    let last = eventually(T, "a deployed status", || async {
        let s = fake.statuses(&head);
        s.iter()
            .find(|(_, d)| d.to_lowercase().contains("deployed"))
            .cloned()
    })
    .await?;
    assert_eq!(last.0, "success", "{last:?}");
    node.stop().await;
    Ok(())
}

/// Withdrawing data a running job uses stops the job (logged `withdrawn`);
/// the job then runs again without that data.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn withdrawal_stops_the_job_using_the_data() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let devnet = Devnet::spawn(tmp.path()).await?;
    let dirs = NodeDirs::new(&tmp.path().join("node"))?;
    devnet
        .register_node(NODE_ID, node_keys(), "collective.test/node")
        .await?;
    let store = collective_vault::DatasetStore::open(&dirs.store_url())?;
    let data = devnet
        .contribute(&store, node_keys().recipient(), NODE_ID, b"row\n")
        .await?;
    let repo = JobRepo::init(&tmp.path().join("repo"))?;
    let (ids, _) = repo.commit_sleeper("sleepdata")?;
    let node = RunningNode::start(node_config(&devnet, &repo.path, &dirs, 0)).await?;
    devnet
        .approve(&ids, &[Requester::default().recipient()], 0)
        .await?;
    let started = node
        .wait_decision("job-started", Some("sleepdata"), T)
        .await?;
    assert!(
        started["reason"].as_str().unwrap().contains("1 dataset"),
        "{started}"
    );

    devnet
        .client("contributor")
        .await?
        .withdraw(data.parse()?)
        .await?;
    let w = node
        .wait_decision("withdrawn", Some("sleepdata"), T)
        .await?;
    assert!(w["reason"].as_str().unwrap().contains(&data), "{w}");
    let again = eventually(T, "the job to run again without the data", || async {
        let runs = node.runs().await.ok()?;
        let starts: Vec<_> = runs
            .into_iter()
            .filter(|r| r["decision"] == "job-started")
            .collect();
        (starts.len() == 2).then(|| starts[1].clone())
    })
    .await?;
    assert!(
        again["reason"].as_str().unwrap().contains("0 dataset"),
        "{again}"
    );
    node.stop().await;
    Ok(())
}

/// A remote repository is fetched into the node's mirror; `POST
/// /v1/refresh` (a push webhook) fetches on demand, well before the
/// interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remote_repository_is_fetched_on_demand() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let devnet = Devnet::spawn(tmp.path()).await?;
    let repo = JobRepo::init(&tmp.path().join("origin"))?;
    let (a, _) = repo.commit(&stats_files(), "v1")?;
    let dirs = NodeDirs::new(&tmp.path().join("node"))?;
    let mut cfg = node_config(&devnet, &repo.path, &dirs, 0);
    cfg.repository.path = None;
    cfg.repository.url = Some(format!("file://{}", repo.path.display()));
    cfg.repository.fetch_interval_secs = 3600;
    let node = RunningNode::start(cfg).await?;
    let recipient = Requester::default().recipient();
    devnet
        .approve(&a, std::slice::from_ref(&recipient), 0)
        .await?;
    node.wait_decision("job-finished", Some("stats"), T).await?;

    let (b, _) = repo.commit(&[("README.md", Some("v2\n"))], "v2")?;
    devnet
        .approve(&b, std::slice::from_ref(&recipient), 0)
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        node.get("/v1/status").await?["deployed"]["sha256"],
        a.sha256.as_str(),
        "fetched before the interval without a request"
    );
    let r = reqwest::Client::new()
        .post(format!("{}/v1/refresh", node.url))
        .send()
        .await?;
    assert_eq!(r.status(), 202);
    eventually(T, "the fetched, approved tree to deploy", || async {
        let s = node.get("/v1/status").await.ok()?;
        (s["deployed"]["sha256"] == b.sha256.as_str()).then_some(())
    })
    .await?;
    node.stop().await;
    Ok(())
}

/// `collective config --default` prints a commented config that parses;
/// `collective node check` accepts it and refuses a typo with exit 64,
/// naming the field.
#[test]
fn cli_default_config_parses_and_typos_are_usage_errors() -> Result<()> {
    let bin = collective_bin();
    let out = std::process::Command::new(&bin)
        .args(["config", "--default"])
        .output()?;
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout)?;
    assert!(text.contains("# "), "the default is commented");
    collective_controller::NodeConfig::parse("stdout", &text)?;
    let tmp = tempfile::tempdir()?;
    let good = tmp.path().join("node.yaml");
    std::fs::write(&good, &text)?;
    let st = std::process::Command::new(&bin)
        .args(["node", "check", "--config-only", "--config"])
        .arg(&good)
        .output()?;
    assert_eq!(st.status.code(), Some(0), "{st:?}");
    // The full check of the default config: no keys there, no chain; each
    // named, exit 2.
    let st = std::process::Command::new(&bin)
        .args(["node", "check", "--config"])
        .arg(&good)
        .output()?;
    assert_eq!(st.status.code(), Some(2), "{st:?}");
    let report = String::from_utf8_lossy(&st.stdout);
    assert!(
        report.contains("FAIL keys") && report.contains("collective keys init"),
        "{report}"
    );
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(
        &bad,
        text.replace("  confirmations: 2", "  confirmation: 2"),
    )?;
    let out = std::process::Command::new(&bin)
        .args(["node", "check", "--config"])
        .arg(&bad)
        .output()?;
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml") && err.contains("confirmation"),
        "{err}"
    );
    Ok(())
}
