//! `collective proposal submit|vote|queue|execute|status`: the DAO path that
//! approves a tree, through the standard OpenZeppelin Governor.
//!
//! Chain access comes from `--devnet devnet.yaml` (RPC, addresses, demo keys)
//! or from `--rpc/--governor/--code-registry/--key`. On a devnet the commands
//! also move anvil's blocks and clock forward when a step would otherwise have
//! to wait (voting delay, voting period, timelock delay).

use std::path::PathBuf;

use collective_chain::devnet::DevnetFile;
use collective_chain::{
    parse_expiry, parse_tree_sha1, parse_tree_sha256, Address, ApprovalRequest, ChainClient,
    ChainError, PrivateKeySigner, ProposalInfo, ProposalState, Support, TxRef, U256,
};
use collective_github::{
    parse_pr_url, pr_proposal, GithubConfig, GithubError, PrProposal, PrSource,
};
use serde_json::json;

use super::parse_address;
use crate::output::Output;
use crate::Exit;

#[derive(Debug, clap::Subcommand)]
pub enum ProposalCommand {
    /// Propose approving a tree (CodeRegistry.approve through the Governor and timelock).
    Submit(SubmitArgs),
    /// Vote on a proposal.
    Vote(VoteArgs),
    /// Queue a succeeded proposal in the timelock.
    Queue(IdArgs),
    /// Execute a queued proposal once the timelock delay passed.
    Execute(IdArgs),
    /// Show a proposal: state, votes, timing, calls.
    Status(IdArgs),
    /// Propose registering a node (NodeRegistry is owned by the timelock):
    /// its encryption recipient, log key, endpoint and operator.
    RegisterNode(RegisterNodeArgs),
}

#[derive(Debug, clap::Args)]
pub struct RegisterNodeArgs {
    /// The node's id (0x + 64 hex); `collective keys show` suggests one.
    #[arg(long, value_name = "ID")]
    node_id: String,
    /// The node's key directory (`collective keys init`): its public files
    /// give the encryption recipient and the log key.
    #[arg(long, value_name = "DIR")]
    keys: PathBuf,
    /// The log's origin (first line of its checkpoints): the registered log
    /// key is the C2SP verifier key for this origin.
    #[arg(long, value_name = "ORIGIN")]
    origin: String,
    /// Public HTTP endpoint of the node.
    #[arg(long, value_name = "URL")]
    endpoint: String,
    /// The operator's address (0x...) or, with --devnet, a demo account name:
    /// the only account allowed to anchor this node's checkpoints.
    #[arg(long, value_name = "ADDRESS_OR_ROLE")]
    operator: String,
    /// Proposal description shown to voters (part of the proposal id).
    #[arg(long)]
    description: String,
    #[command(flatten)]
    chain: ChainArgs,
}

/// Where the chain is and who signs.
#[derive(Debug, Clone, clap::Args)]
pub struct ChainArgs {
    /// devnet.yaml from `collective dev up` (RPC, addresses, chain id, demo keys).
    #[arg(long, env = "COLLECTIVE_DEVNET", value_name = "FILE")]
    devnet: Option<PathBuf>,
    /// JSON-RPC endpoint (without --devnet).
    #[arg(
        long,
        env = "COLLECTIVE_RPC",
        value_name = "URL",
        conflicts_with = "devnet"
    )]
    rpc: Option<String>,
    /// CollectiveGovernor address (without --devnet).
    #[arg(
        long,
        env = "COLLECTIVE_GOVERNOR",
        value_name = "ADDRESS",
        conflicts_with = "devnet"
    )]
    governor: Option<String>,
    /// CodeRegistry address, needed by `submit` (without --devnet).
    #[arg(
        long,
        env = "COLLECTIVE_CODE_REGISTRY",
        value_name = "ADDRESS",
        conflicts_with = "devnet"
    )]
    code_registry: Option<String>,
    /// Refuse to act unless the RPC serves this chain id (without --devnet, which carries it).
    #[arg(long, value_name = "ID", conflicts_with = "devnet")]
    chain_id: Option<u64>,
    /// Hex private key that signs (prefer the env var over the flag).
    #[arg(
        long,
        env = "COLLECTIVE_KEY",
        value_name = "HEX",
        hide_env_values = true
    )]
    key: Option<String>,
    /// With --devnet: sign as this demo account (deployer, voter1, voter2, voter3, requester, ...).
    #[arg(long = "as", value_name = "ROLE")]
    role: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// The tree id in git's sha256 object format (64 hex digits). With --pr:
    /// defaults to the PR's merge tree.
    #[arg(long, value_name = "HEX", required_unless_present = "pr")]
    tree_sha256: Option<String>,
    /// The tree id in git's sha1 object format (40 hex digits). With --pr:
    /// defaults to the PR's merge tree.
    #[arg(long, value_name = "HEX", required_unless_present = "pr")]
    tree_sha1: Option<String>,
    /// An age recipient job outputs may be encrypted to (repeatable). With
    /// --pr and none given: the `Recipient:` lines of the PR description.
    #[arg(long = "recipient", value_name = "AGE_RECIPIENT")]
    recipients: Vec<String>,
    /// When the approval lapses: RFC 3339, unix seconds, an offset such as +7d
    /// (units s, m, h, d, w), or never.
    #[arg(long, default_value = "never")]
    expires: String,
    /// Reference stored with the approval, e.g. the pull request URL (with
    /// --pr: defaults to the PR's URL).
    #[arg(long, default_value = "")]
    uri: String,
    /// Proposal description shown to voters (part of the proposal id). With
    /// --pr: defaults to the PR's title, number and URL.
    #[arg(long, required_unless_present = "pr")]
    description: Option<String>,
    /// Fill the tree ids, description and recipients from this pull request
    /// (`https://github.com/OWNER/REPO/pull/N`): the tree ids are those of
    /// its merge result, computed locally with git. Explicit flags override.
    /// The token is read from GITHUB_TOKEN.
    #[arg(long, value_name = "URL")]
    pr: Option<String>,
    /// With --pr: GitHub REST API root; default from the PR URL's host.
    #[arg(long, value_name = "URL", requires = "pr")]
    api_url: Option<String>,
    /// With --pr: where to fetch `refs/pull/N/head` from (path or URL);
    /// default: the repository's clone URL.
    #[arg(long, value_name = "PATH_OR_URL", requires = "pr")]
    git_remote: Option<String>,
    /// With --pr: local bare repository used as fetch cache; default: a
    /// directory under the system temp dir.
    #[arg(long, value_name = "DIR", requires = "pr")]
    mirror_dir: Option<PathBuf>,
    #[command(flatten)]
    chain: ChainArgs,
}

#[derive(Debug, clap::Args)]
pub struct VoteArgs {
    /// Proposal id (decimal or 0x hex).
    id: String,
    /// for, against or abstain.
    #[arg(long, value_enum, default_value_t = SupportArg::For)]
    support: SupportArg,
    #[command(flatten)]
    chain: ChainArgs,
}

#[derive(Debug, clap::Args)]
pub struct IdArgs {
    /// Proposal id (decimal or 0x hex).
    id: String,
    #[command(flatten)]
    chain: ChainArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SupportArg {
    For,
    Against,
    Abstain,
}

impl From<SupportArg> for Support {
    fn from(s: SupportArg) -> Self {
        match s {
            SupportArg::For => Support::For,
            SupportArg::Against => Support::Against,
            SupportArg::Abstain => Support::Abstain,
        }
    }
}

pub async fn run(c: ProposalCommand, out: Output) -> anyhow::Result<u8> {
    match c {
        ProposalCommand::Submit(a) => submit(a, out).await,
        ProposalCommand::Vote(a) => vote(a, out).await,
        ProposalCommand::Queue(a) => queue(a, out).await,
        ProposalCommand::Execute(a) => execute(a, out).await,
        ProposalCommand::Status(a) => status(a, out).await,
        ProposalCommand::RegisterNode(a) => register_node(a, out).await,
    }
}

/// Bad configuration and malformed input exit 64; chain failures exit 1.
pub(crate) fn chain_err(e: ChainError) -> anyhow::Error {
    match e {
        ChainError::InvalidUrl { .. }
        | ChainError::WrongChain { .. }
        | ChainError::NotAContract { .. }
        | ChainError::InvalidInput { .. }
        | ChainError::DevnetFile { .. }
        | ChainError::NoSigner { .. } => Exit::usage(e.to_string()),
        // The message already names the URL, contract and call; the source
        // chain would repeat it.
        other => anyhow::anyhow!(other.to_string()),
    }
}

fn parse_id(s: &str) -> anyhow::Result<U256> {
    let t = s.trim();
    let parsed = match t.strip_prefix("0x") {
        Some(h) => U256::from_str_radix(h, 16),
        None => U256::from_str_radix(t, 10),
    };
    parsed.map_err(|_| {
        Exit::usage(format!(
            "invalid proposal id {s:?}: expected a decimal or 0x-hex number"
        ))
    })
}

/// A connected client plus whether it is a devnet we may fast-forward.
struct Conn {
    client: ChainClient,
    devnet: bool,
}

async fn connect(a: &ChainArgs, default_role: Option<&str>) -> anyhow::Result<Conn> {
    if let Some(path) = &a.devnet {
        let file = DevnetFile::load(path).map_err(chain_err)?;
        let signer = match (&a.key, &a.role, default_role) {
            (Some(k), _, _) => Some(parse_key(k)?),
            (None, Some(r), _) => Some(
                file.account(r)
                    .and_then(|acc| acc.signer())
                    .map_err(chain_err)?,
            ),
            (None, None, Some(r)) if !file.accounts.is_empty() => Some(
                file.account(r)
                    .and_then(|acc| acc.signer())
                    .map_err(chain_err)?,
            ),
            _ => None,
        };
        let client = ChainClient::connect_deployment(&file.deployment, signer)
            .await
            .map_err(chain_err)?;
        return Ok(Conn {
            client,
            devnet: file.anvil.is_some() || !file.accounts.is_empty(),
        });
    }
    let Some(rpc) = &a.rpc else {
        return Err(Exit::usage(
            "no chain given: pass --devnet devnet.yaml, or --rpc URL with --governor ADDRESS",
        ));
    };
    let Some(governor) = &a.governor else {
        return Err(Exit::usage(
            "--rpc needs --governor ADDRESS (or use --devnet devnet.yaml)",
        ));
    };
    if a.role.is_some() {
        return Err(Exit::usage(
            "--as ROLE needs --devnet (demo accounts live there); use --key instead",
        ));
    }
    let governor = parse_address("--governor", governor)?;
    let code_registry = a
        .code_registry
        .as_deref()
        .map(|s| parse_address("--code-registry", s))
        .transpose()?;
    let signer = a.key.as_deref().map(parse_key).transpose()?;
    let addresses = ChainClient::discover(rpc, governor, code_registry)
        .await
        .map_err(chain_err)?;
    let client = ChainClient::connect(rpc, addresses, signer)
        .await
        .map_err(chain_err)?;
    if let Some(expected) = a.chain_id {
        let actual = client.chain_id().await.map_err(chain_err)?;
        if actual != expected {
            return Err(chain_err(ChainError::WrongChain {
                url: rpc.clone(),
                expected,
                actual,
            }));
        }
    }
    Ok(Conn {
        client,
        devnet: false,
    })
}

fn parse_key(k: &str) -> anyhow::Result<PrivateKeySigner> {
    k.trim().parse().map_err(|_| {
        Exit::usage("invalid --key / COLLECTIVE_KEY: expected a 32-byte hex private key")
    })
}

fn tx_json(tx: &TxRef) -> serde_json::Value {
    json!({ "tx_hash": tx.tx_hash, "block_number": tx.block_number, "block_hash": tx.block_hash })
}

/// The pull request named by `--pr`, read through the GitHub API and merged
/// locally (see `collective_github::pr_proposal`).
async fn read_pr(a: &SubmitArgs, url: &str) -> anyhow::Result<PrProposal> {
    let (owner, name, _) = parse_pr_url(url).map_err(|e| Exit::usage(e.to_string()))?;
    let source = PrSource {
        api_url: a.api_url.clone(),
        token: GithubConfig::token_from_env(),
        // The same cache `collective github pr` uses.
        mirror_dir: a.mirror_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("collective-github-{owner}-{name}.git"))
        }),
        git_remote: a.git_remote.clone(),
        ..Default::default()
    };
    pr_proposal(url, &source).await.map_err(|e| match e {
        GithubError::BadPrUrl { .. } => Exit::usage(e.to_string()),
        // No clean merge: there is no tree the DAO could approve.
        GithubError::Conflict { .. } => Exit::refused(format!("--pr: {e}")),
        other => anyhow::anyhow!("--pr: reading the pull request: {other}"),
    })
}

async fn submit(mut a: SubmitArgs, out: Output) -> anyhow::Result<u8> {
    // Validate everything local before touching the network.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let expires_at = parse_expiry(&a.expires, now).map_err(chain_err)?;
    // Explicit values are checked before the PR is fetched.
    if let Some(t) = &a.tree_sha256 {
        parse_tree_sha256(t).map_err(chain_err)?;
    }
    if let Some(t) = &a.tree_sha1 {
        parse_tree_sha1(t).map_err(chain_err)?;
    }
    if a.description
        .as_deref()
        .is_some_and(|d| d.trim().is_empty())
    {
        return Err(Exit::usage("--description must not be empty"));
    }
    for r in &a.recipients {
        if r.trim().is_empty() || r.contains('\n') {
            return Err(Exit::usage(format!("invalid --recipient {r:?}")));
        }
    }
    if a.chain.devnet.is_none() && a.chain.code_registry.is_none() {
        return Err(Exit::usage(
            "submit needs --code-registry ADDRESS with --rpc (or use --devnet devnet.yaml)",
        ));
    }
    let pr = match a.pr.clone() {
        Some(url) => Some(read_pr(&a, &url).await?),
        None => None,
    };
    if let Some(p) = &pr {
        for (flag, given, from_pr) in [
            ("--tree-sha256", &a.tree_sha256, &p.tree_sha256),
            ("--tree-sha1", &a.tree_sha1, &p.tree_sha1),
        ] {
            if let Some(v) = given {
                if !v
                    .trim()
                    .trim_start_matches("0x")
                    .eq_ignore_ascii_case(from_pr)
                {
                    tracing::warn!(
                        "{flag} {v} overrides the PR's merge tree {from_pr}: the proposal will not approve the PR's code"
                    );
                }
            }
        }
        a.tree_sha256.get_or_insert_with(|| p.tree_sha256.clone());
        a.tree_sha1.get_or_insert_with(|| p.tree_sha1.clone());
        a.description.get_or_insert_with(|| p.description.clone());
        if a.recipients.is_empty() {
            a.recipients = p.recipients.clone();
        }
        if a.uri.is_empty() {
            a.uri = p.html_url.clone();
        }
    }
    // clap guarantees these without --pr; --pr fills them.
    let (Some(t256), Some(t1), Some(description)) = (&a.tree_sha256, &a.tree_sha1, &a.description)
    else {
        return Err(Exit::usage(
            "submit needs --tree-sha256, --tree-sha1 and --description, or --pr URL",
        ));
    };
    let tree_sha256 = parse_tree_sha256(t256).map_err(chain_err)?;
    let tree_sha1 = parse_tree_sha1(t1).map_err(chain_err)?;
    let description = description.clone();
    let conn = connect(&a.chain, Some("requester")).await?;
    let req = ApprovalRequest {
        tree_sha256,
        tree_sha1,
        recipients: a.recipients,
        expires_at,
        uri: a.uri,
    };
    let id = conn
        .client
        .propose_approval(&req, &description)
        .await
        .map_err(chain_err)?;
    let state = conn.client.proposal_state(id).await.map_err(chain_err)?;
    let from_pr = pr
        .as_ref()
        .map(|p| {
            format!(
                "\n  from PR #{} {} (head {})",
                p.number, p.html_url, p.head_sha
            )
        })
        .unwrap_or_default();
    let human = format!(
        "proposal {id} submitted ({state})\n  approves tree sha256 {tree_sha256} / sha1 {tree_sha1}{from_pr}\n  next: collective proposal vote {id}"
    );
    let mut v =
        json!({ "id": id.to_string(), "state": state, "request": req, "description": description });
    if let Some(p) = &pr {
        v["pr"] = serde_json::to_value(p)?;
    }
    out.result(&v, human)?;
    Ok(crate::exit::OK)
}

async fn register_node(a: RegisterNodeArgs, out: Output) -> anyhow::Result<u8> {
    let node_id = collective_chain::parse_b256("node id", &a.node_id).map_err(chain_err)?;
    if a.description.trim().is_empty() {
        return Err(Exit::usage("--description must not be empty"));
    }
    let info = collective_vault::KeyInfo::read(&a.keys).map_err(|e| {
        Exit::usage(format!(
            "reading node keys in {}: {e} (create them with `collective keys init --dir {}`)",
            a.keys.display(),
            a.keys.display()
        ))
    })?;
    let log_public_key = info
        .log_verifier_key(&a.origin)
        .map_err(|e| Exit::usage(format!("--origin {:?}: {e}", a.origin)))?;
    let operator = if a.operator.starts_with("0x") {
        parse_address("--operator", &a.operator)?
    } else {
        let Some(path) = &a.chain.devnet else {
            return Err(Exit::usage(
                "--operator must be a 0x address (account names need --devnet)",
            ));
        };
        let file = DevnetFile::load(path).map_err(chain_err)?;
        file.account(&a.operator).map_err(chain_err)?.address
    };
    let conn = connect(&a.chain, Some("operator")).await?;
    let record = collective_chain::NodeRecord {
        encryption_recipient: info.recipient.clone(),
        log_public_key,
        endpoint: a.endpoint.clone(),
        operator,
        registered_block: 0,
    };
    let id = conn
        .client
        .propose_register_node(node_id, &record, &a.description)
        .await
        .map_err(chain_err)?;
    let state = conn.client.proposal_state(id).await.map_err(chain_err)?;
    let human = format!(
        "proposal {id} submitted ({state})\n  registers node {node_id} at {}\n  log key {}\n  next: collective proposal vote {id}",
        a.endpoint, record.log_public_key
    );
    out.result(
        &json!({ "id": id.to_string(), "state": state, "node_id": node_id, "record": record, "description": a.description }),
        human,
    )?;
    Ok(crate::exit::OK)
}

/// On a devnet, mines blocks / advances time until `id` leaves `waiting`.
async fn fast_forward_from(
    conn: &Conn,
    id: U256,
    waiting: ProposalState,
    out: &Output,
) -> anyhow::Result<ProposalState> {
    let mut state = conn.client.proposal_state(id).await.map_err(chain_err)?;
    if conn.devnet && state == waiting {
        out.say(format!(
            "devnet: advancing the chain past the {state} phase"
        ));
        state = conn.client.fast_forward(id).await.map_err(chain_err)?;
    }
    Ok(state)
}

async fn vote(a: VoteArgs, out: Output) -> anyhow::Result<u8> {
    let id = parse_id(&a.id)?;
    let conn = connect(&a.chain, Some("voter1")).await?;
    let state = fast_forward_from(&conn, id, ProposalState::Pending, &out).await?;
    if state != ProposalState::Active {
        return Err(anyhow::anyhow!(
            "proposal {id} is {state}: votes are accepted only while it is active"
        ));
    }
    let support: Support = a.support.into();
    let tx = conn
        .client
        .cast_vote(id, support)
        .await
        .map_err(chain_err)?;
    let voter = conn.client.sender().unwrap_or_default();
    let human = format!(
        "voted {} on proposal {id} as {voter} (tx {})",
        json!(support).as_str().unwrap_or("?"),
        tx.tx_hash
    );
    out.result(
        &json!({ "id": id.to_string(), "support": support, "voter": voter, "tx": tx_json(&tx) }),
        human,
    )?;
    Ok(crate::exit::OK)
}

async fn queue(a: IdArgs, out: Output) -> anyhow::Result<u8> {
    let id = parse_id(&a.id)?;
    let conn = connect(&a.chain, Some("requester")).await?;
    let state = fast_forward_from(&conn, id, ProposalState::Active, &out).await?;
    if state != ProposalState::Succeeded {
        return Err(anyhow::anyhow!(
            "proposal {id} is {state}: only a succeeded proposal can be queued"
        ));
    }
    let tx = conn.client.queue(id).await.map_err(chain_err)?;
    let info = conn.client.proposal(id).await.map_err(chain_err)?;
    let human = format!(
        "queued proposal {id} (tx {}); executable at unix time {}",
        tx.tx_hash, info.eta
    );
    out.result(
        &json!({ "id": id.to_string(), "eta": info.eta, "tx": tx_json(&tx) }),
        human,
    )?;
    Ok(crate::exit::OK)
}

async fn execute(a: IdArgs, out: Output) -> anyhow::Result<u8> {
    let id = parse_id(&a.id)?;
    let conn = connect(&a.chain, Some("requester")).await?;
    let mut state = conn.client.proposal_state(id).await.map_err(chain_err)?;
    if state == ProposalState::Queued && conn.devnet {
        state = conn.client.fast_forward(id).await.map_err(chain_err)?;
    }
    if state != ProposalState::Queued {
        return Err(anyhow::anyhow!(
            "proposal {id} is {state}: only a queued proposal can be executed"
        ));
    }
    let tx = conn.client.execute(id).await.map_err(chain_err)?;
    let human = format!(
        "executed proposal {id} (tx {}, block {})",
        tx.tx_hash, tx.block_number
    );
    out.result(
        &json!({ "id": id.to_string(), "state": ProposalState::Executed, "tx": tx_json(&tx) }),
        human,
    )?;
    Ok(crate::exit::OK)
}

/// Human lines for the proposal's calls, and for each `approve` call the
/// approval record on chain now (if the registry address is known).
async fn describe_actions(
    client: &ChainClient,
    info: &ProposalInfo,
) -> anyhow::Result<(String, Vec<serde_json::Value>)> {
    use collective_chain::alloy::sol_types::SolCall;
    use collective_chain::bindings::CodeRegistry::approveCall;
    let registry = client.addresses().code_registry;
    let mut s = String::new();
    let mut onchain = Vec::new();
    for act in &info.actions {
        match approveCall::abi_decode(&act.calldata) {
            Ok(c) => {
                let expiry = if c.expiresAt == 0 {
                    "never".to_string()
                } else {
                    c.expiresAt.to_string()
                };
                s.push_str(&format!(
                    "  approve tree sha256 {} sha1 {} at {}\n    recipients: {}\n    expires: {expiry}  uri: {}\n",
                    c.treeSha256,
                    c.treeSha1,
                    act.target,
                    if c.recipients.is_empty() { "(none)".to_string() } else { c.recipients.join(", ") },
                    c.uri
                ));
                if registry != Address::ZERO && act.target == registry {
                    let a = client.approval(c.treeSha256, 0).await.map_err(chain_err)?;
                    let line = match &a {
                        Some(a) if a.revoked => format!("revoked ({})", a.revoke_reason),
                        Some(a) => format!(
                            "approved in block {} (tx {})",
                            a.approved_block, a.approved_tx
                        ),
                        None => "not approved".to_string(),
                    };
                    s.push_str(&format!("    on chain now: {line}\n"));
                    onchain.push(json!({ "tree_sha256": c.treeSha256, "approval": a }));
                }
            }
            Err(_) => s.push_str(&format!(
                "  call {} with {} bytes of calldata\n",
                act.target,
                act.calldata.len()
            )),
        }
    }
    Ok((s, onchain))
}

async fn status(a: IdArgs, out: Output) -> anyhow::Result<u8> {
    let id = parse_id(&a.id)?;
    let conn = connect(&a.chain, None).await?;
    let info = conn.client.proposal(id).await.map_err(chain_err)?;
    let (actions, onchain) = describe_actions(&conn.client, &info).await?;
    let tokens = |v: U256| {
        let unit = U256::from(10u64).pow(U256::from(18u64));
        let (whole, frac) = (v / unit, v % unit);
        if frac.is_zero() {
            whole.to_string()
        } else {
            format!(
                "{whole}.{}",
                format!("{:0>18}", frac.to_string()).trim_end_matches('0')
            )
        }
    };
    let human = format!(
        "proposal {}\n  state: {}\n  description: {}\n  proposer: {}\n  votes: for {} against {} abstain {} (quorum {})\n  voting: blocks {}..={}{}\n{}",
        info.id,
        info.state,
        info.description,
        info.proposer,
        tokens(info.for_votes),
        tokens(info.against_votes),
        tokens(info.abstain_votes),
        tokens(info.quorum),
        info.snapshot + 1,
        info.deadline,
        if info.eta > 0 { format!("\n  executable at unix time {}", info.eta) } else { String::new() },
        actions.trim_end()
    );
    let mut v = serde_json::to_value(&info)?;
    // Large integers as decimal strings (JSON numbers lose precision).
    v["id"] = json!(info.id.to_string());
    v["for_votes"] = json!(info.for_votes.to_string());
    v["against_votes"] = json!(info.against_votes.to_string());
    v["abstain_votes"] = json!(info.abstain_votes.to_string());
    v["quorum"] = json!(info.quorum.to_string());
    v["approvals_on_chain"] = json!(onchain);
    for act in v["actions"].as_array_mut().into_iter().flatten() {
        if let Some(val) = act.get("value").and_then(|x| x.as_str()) {
            let dec = U256::from_str_radix(val.trim_start_matches("0x"), 16)
                .unwrap_or_default()
                .to_string();
            act["value"] = json!(dec);
        }
    }
    out.result(&v, human)?;
    Ok(crate::exit::OK)
}
