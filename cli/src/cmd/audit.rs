//! `collective audit`: verify a node's log without trusting the operator.
//!
//! Security argument: the only trust anchors are the log key the auditor
//! passes (or the one the node registered on chain), the auditor's own state
//! file (the last checkpoint it verified), the chain (anchored checkpoints,
//! approvals) and the repository. Everything read from the log — over HTTP
//! or from a directory — goes through `collective_attest::audit`, which
//! treats it as hostile. The state file is only advanced after a fully
//! successful audit, so a failing log can never become the new baseline.
//!
//! Exit codes: 0 every check passed, 2 any verification failure, 1 the audit
//! could not run (log unreachable, chain unreachable, bad state file).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use collective_attest::verify::{AuditReport, EntrySummary};
use collective_attest::{AuditOptions, AuditorState, FailureKind, TileSource};
use collective_chain::{ChainClient, B256};

use super::log_source::{source, Deadlines};
use super::{parse_address, parse_b256};
use crate::output::Output;
use crate::Exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log: a directory, or the base URL its tiles are served under.
    #[arg(long, value_name = "DIR_OR_URL")]
    pub log: String,
    /// The log's verifier key (C2SP `origin+keyid+base64`), or a file holding it.
    /// Optional with --rpc and --node-id: then the key the node registered on chain is used.
    #[arg(long, value_name = "KEY")]
    pub log_key: Option<String>,
    /// The auditor's memory: the last checkpoint verified. Read, checked for
    /// consistency, and advanced only when the audit passes.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Ethereum JSON-RPC endpoint: check on-chain anchors and approvals.
    #[arg(long, value_name = "URL")]
    pub rpc: Option<String>,
    /// NodeRegistry address (anchors, registered log key).
    #[arg(long, value_name = "ADDR", requires = "rpc")]
    pub node_registry: Option<String>,
    /// CodeRegistry address (approvals).
    #[arg(long, value_name = "ADDR", requires = "rpc")]
    pub code_registry: Option<String>,
    /// The node's id in the NodeRegistry (0x + 64 hex).
    #[arg(long, value_name = "ID", requires = "node_registry")]
    pub node_id: Option<String>,
    /// Repository holding the code: each tree the log names must exist in it
    /// and its sha256 tree id must recompute.
    #[arg(long, value_name = "PATH")]
    pub repo: Option<PathBuf>,
    /// A witness's cosignature/v1 verifier key (repeat for several): the
    /// checkpoint must carry their cosignatures.
    #[arg(long = "witness", value_name = "VKEY")]
    pub witnesses: Vec<String>,
    /// How many of the --witness keys must have cosigned (default: all).
    #[arg(long, value_name = "K", requires = "witnesses")]
    pub witness_quorum: Option<usize>,
    /// List every entry in the report (memory then grows with the log);
    /// by default the report lists the last entries and counts the rest.
    #[arg(long)]
    pub entries: bool,
    #[command(flatten)]
    pub deadlines: Deadlines,
}

/// `--log-key` value or the contents of the file it names.
pub fn read_key(k: &str) -> anyhow::Result<String> {
    let p = Path::new(k);
    let key = if !k.contains('+') && p.is_file() {
        std::fs::read_to_string(p).with_context(|| format!("reading --log-key file {k}"))?
    } else {
        k.to_string()
    };
    let key = key.trim().to_string();
    collective_attest::parse_verifier_key(&key)
        .map_err(|e| Exit::usage(format!("--log-key: {e}")))?;
    Ok(key)
}

pub async fn run(args: Args, out: Output) -> anyhow::Result<u8> {
    if args.rpc.is_some() && args.node_registry.is_none() && args.code_registry.is_none() {
        return Err(Exit::usage(
            "--rpc needs --node-registry (with --node-id: anchors) and/or --code-registry (approvals)",
        ));
    }
    let chain = match &args.rpc {
        Some(rpc) => {
            let mut a = collective_chain::Addresses::default();
            if let Some(n) = &args.node_registry {
                a.node_registry = parse_address("--node-registry", n)?;
            }
            if let Some(c) = &args.code_registry {
                a.code_registry = parse_address("--code-registry", c)?;
            }
            let client = ChainClient::connect(rpc, a, None)
                .await
                .with_context(|| format!("connecting to {rpc}"))?;
            Some(client)
        }
        None => None,
    };
    let node_id = args
        .node_id
        .as_deref()
        .map(|s| parse_b256("--node-id", s))
        .transpose()?;

    let vkey = match (&args.log_key, &chain, node_id) {
        (Some(k), _, _) => read_key(k)?,
        (None, Some(c), Some(id)) => {
            let rec = c
                .node(id)
                .await
                .context("reading the node's record")?
                .ok_or_else(|| {
                    Exit::refused(format!("node {id} is not registered in the NodeRegistry"))
                })?;
            read_key(&rec.log_public_key)?
        }
        _ => return Err(Exit::usage(
            "--log-key is required (or --rpc, --node-registry and --node-id to read it from chain)",
        )),
    };

    let previous = match &args.state {
        Some(p) if p.exists() => {
            let json = std::fs::read_to_string(p)
                .with_context(|| format!("reading --state {}", p.display()))?;
            let (st, _) = AuditorState::from_json(&json, &vkey)
                .with_context(|| format!("--state {}", p.display()))?;
            Some(st)
        }
        _ => None,
    };

    // Read and verify the log (blocking I/O and CPU) off the runtime.
    let log = args.log.clone();
    let deadlines = args.deadlines;
    // Approval and repository checks need one summary per distinct approval.
    let opts = AuditOptions {
        keep_distinct: args.code_registry.is_some() || args.repo.is_some(),
        keep_all: args.entries,
        ..AuditOptions::default()
    };
    let vk = vkey.clone();
    let prev = previous.clone();
    let (mut report, src) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let src = source(&log, deadlines)?;
        let report = collective_attest::audit(src.as_ref(), &vk, prev.as_ref(), opts)
            .with_context(|| format!("auditing {log}"))?;
        Ok((report, src))
    })
    .await??;

    if !args.witnesses.is_empty() {
        let ws = args
            .witnesses
            .iter()
            .map(|w| {
                collective_attest::witness::CosignatureVerifier::parse(w)
                    .map_err(|e| Exit::usage(format!("--witness: {e}")))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let quorum = args.witness_quorum.unwrap_or(ws.len());
        if quorum == 0 || quorum > ws.len() {
            return Err(Exit::usage(format!(
                "--witness-quorum {quorum}: must be between 1 and the {} --witness key(s) given",
                ws.len()
            )));
        }
        collective_attest::verify::check_witnesses(&mut report, &ws, quorum);
    }
    if let Some(chain) = &chain {
        chain_checks(
            chain,
            node_id,
            args.code_registry.is_some(),
            &mut report,
            src,
        )
        .await?;
    }
    if let Some(repo) = &args.repo {
        let repo = repo.clone();
        let entries = report.entries.clone();
        let found = tokio::task::spawn_blocking(move || repo_checks(&repo, &entries)).await??;
        report.check("every tree exists in the repository and its sha256 id recomputes");
        for (k, m) in found {
            report.fail(k, m);
        }
    }

    let ok = report.ok();
    if ok {
        if let (Some(path), Some(state)) = (&args.state, report.new_state()) {
            write_state(path, &state)?;
        }
    }
    let human = render(&report);
    out.result(&report, human)?;
    Ok(if ok {
        crate::exit::OK
    } else {
        crate::exit::REFUSED
    })
}

fn write_state(path: &Path, state: &AuditorState) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

async fn chain_checks(
    chain: &ChainClient,
    node_id: Option<B256>,
    approvals: bool,
    report: &mut AuditReport,
    src: Box<dyn TileSource + Send>,
) -> anyhow::Result<()> {
    if let Some(id) = node_id {
        let anchors = chain
            .anchors(id)
            .await
            .context("reading on-chain anchors")?;
        let list: Vec<(u64, [u8; 32], u64)> = anchors
            .iter()
            .map(|a| (a.size, a.root.0, a.block_number))
            .collect();
        let mut r = std::mem::replace(report, AuditReport::new(String::new(), 0));
        r = tokio::task::spawn_blocking(move || {
            collective_attest::check_anchors(src.as_ref(), &mut r, &list);
            r
        })
        .await?;
        *report = r;
    }
    if !approvals {
        return Ok(());
    }
    report.check("each deployment/job entry's approval existed, unrevoked, at its cited block");
    let chain_id = chain.chain_id().await.context("reading the chain id")?;
    let registry = format!("{:#x}", chain.addresses().code_registry);
    let mut cache: HashMap<(String, u64), Option<collective_chain::Approval>> = HashMap::new();
    let mut failures = Vec::new();
    for e in report
        .entries
        .iter()
        .filter(|e| e.decision.needs_approval())
    {
        let Some(a) = &e.approval else {
            failures.push((
                FailureKind::ApprovalMissing,
                format!("entry {} ({}) cites no approval", e.index, e.decision),
            ));
            continue;
        };
        if a.chain_id != chain_id || !a.contract.eq_ignore_ascii_case(&registry) {
            failures.push((
                FailureKind::ApprovalMismatch,
                format!(
                    "entry {} cites an approval on chain {} contract {}, but the audit checks chain {chain_id} contract {registry}",
                    e.index, a.chain_id, a.contract
                ),
            ));
            continue;
        }
        let tree: B256 = match e.tree_sha256.parse() {
            Ok(t) => t,
            Err(_) => {
                failures.push((
                    FailureKind::ApprovalMismatch,
                    format!("entry {}: bad tree id", e.index),
                ));
                continue;
            }
        };
        let key = (e.tree_sha256.clone(), a.block_number);
        if !cache.contains_key(&key) {
            let got = chain
                .approval_at_block(tree, a.block_number)
                .await
                .context("reading an approval")?;
            cache.insert(key.clone(), got);
        }
        match &cache[&key] {
            None => failures.push((
                FailureKind::ApprovalMissing,
                format!(
                    "entry {} ({}): tree {} was not approved at or before block {}",
                    e.index, e.decision, e.tree_sha256, a.block_number
                ),
            )),
            Some(ap) if ap.revoked => failures.push((
                FailureKind::ApprovalRevoked,
                format!(
                    "entry {} ({}): the approval of tree {} was revoked at block {} ({})",
                    e.index, e.decision, e.tree_sha256, a.block_number, ap.revoke_reason
                ),
            )),
            Some(ap) => {
                let sha1 = format!("{:x}", ap.tree_sha1);
                if sha1.trim_start_matches("0x") != e.tree_sha1 {
                    failures.push((
                        FailureKind::ApprovalMismatch,
                        format!(
                            "entry {}: approved tree sha1 {sha1} differs from the entry's {}",
                            e.index, e.tree_sha1
                        ),
                    ));
                }
                if !format!("{:#x}", ap.approved_tx).eq_ignore_ascii_case(&a.tx_hash) {
                    failures.push((
                        FailureKind::ApprovalMismatch,
                        format!(
                            "entry {} cites approval tx {}, the chain says {:#x}",
                            e.index, a.tx_hash, ap.approved_tx
                        ),
                    ));
                }
                match chain.block_hash(a.block_number).await.context("reading a block hash")? {
                    Some((h, ts)) if format!("{h:#x}").eq_ignore_ascii_case(&a.block_hash) => {
                        if ap.expires_at != 0 && ts > ap.expires_at {
                            failures.push((
                                FailureKind::ApprovalExpired,
                                format!(
                                    "entry {} ({}): the approval of tree {} expired at {} but block {} is at {ts}",
                                    e.index, e.decision, e.tree_sha256, ap.expires_at, a.block_number
                                ),
                            ));
                        }
                    }
                    other => failures.push((
                        FailureKind::ApprovalMismatch,
                        format!(
                            "entry {} cites block {} with hash {}, the chain has {:?} (reorg or fabricated reference)",
                            e.index,
                            a.block_number,
                            a.block_hash,
                            other.map(|(h, _)| format!("{h:#x}"))
                        ),
                    )),
                }
            }
        }
    }
    for (k, m) in failures {
        report.fail(k, m);
    }
    Ok(())
}

fn repo_checks(
    repo: &Path,
    entries: &[EntrySummary],
) -> anyhow::Result<Vec<(FailureKind, String)>> {
    use collective_tree::git2::Oid;
    let repo = collective_tree::open_repo(repo)
        .with_context(|| format!("opening --repo {}", repo.display()))?;
    let mut seen: HashMap<String, Option<String>> = HashMap::new();
    let mut out = Vec::new();
    for e in entries.iter().filter(|e| e.decision.needs_approval()) {
        let recomputed = seen.entry(e.tree_sha1.clone()).or_insert_with(|| {
            Oid::from_str(&e.tree_sha1)
                .ok()
                .and_then(|oid| collective_tree::tree_ids_of_tree(&repo, oid).ok())
                .map(|ids| ids.sha256)
        });
        match recomputed {
            None => out.push((
                FailureKind::TreeMissing,
                format!(
                    "entry {} ({}): tree {} is not in the repository",
                    e.index, e.decision, e.tree_sha1
                ),
            )),
            Some(s) if *s != e.tree_sha256 => out.push((
                FailureKind::TreeMismatch,
                format!(
                    "entry {}: tree {} has sha256 id {s} in the repository, the log says {}",
                    e.index, e.tree_sha1, e.tree_sha256
                ),
            )),
            Some(_) => {}
        }
        // A named commit must exist and point at the named tree.
        if let Some(c) = &e.commit {
            match Oid::from_str(c).and_then(|oid| repo.find_commit(oid)) {
                Ok(commit) if commit.tree_id().to_string() != e.tree_sha1 => out.push((
                    FailureKind::TreeMismatch,
                    format!(
                        "entry {}: commit {c} has tree {}, the log says {}",
                        e.index,
                        commit.tree_id(),
                        e.tree_sha1
                    ),
                )),
                Ok(_) => {}
                Err(_) => out.push((
                    FailureKind::TreeMissing,
                    format!(
                        "entry {} ({}): commit {c} is not in the repository",
                        e.index, e.decision
                    ),
                )),
            }
        }
    }
    Ok(out)
}

fn short(s: &str) -> &str {
    &s[..s.len().min(12)]
}

/// The human report: what ran, when, under which approval; then the verdict.
pub fn render(r: &AuditReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "audit of {}", r.source);
    if let Some(c) = &r.checkpoint {
        let _ = writeln!(
            s,
            "checkpoint: {} size {} root {}",
            c.origin, c.size, c.root
        );
    }
    if let Some(p) = &r.previous {
        let _ = writeln!(s, "last seen:  size {} root {}", p.size, p.root);
    }
    let _ = writeln!(s, "checks:");
    for c in &r.checks {
        let _ = writeln!(s, "  - {c}");
    }
    if !r.decision_counts.is_empty() {
        let counts: Vec<String> = r
            .decision_counts
            .iter()
            .map(|(d, n)| format!("{d} {n}"))
            .collect();
        let _ = writeln!(s, "decisions: {}", counts.join(", "));
    }
    if !r.entries.is_empty() {
        let shown = r.entries.len() as u64;
        if shown < r.entries_verified {
            let _ = writeln!(
                s,
                "entries ({shown} of {} listed: the last ones and one per approval checked; --entries lists all):",
                r.entries_verified
            );
        } else {
            let _ = writeln!(s, "entries:");
        }
        for e in &r.entries {
            let mut line = format!(
                "  #{:<5} {}  {:<12} tree {}",
                e.index,
                e.time,
                e.decision.as_str(),
                short(&e.tree_sha1)
            );
            if let Some(c) = &e.commit {
                let _ = write!(line, " commit {}", short(c));
            }
            if let Some(j) = &e.job {
                let _ = write!(line, " job {j}");
            }
            if let Some(a) = &e.approval {
                let _ = write!(
                    line,
                    "  approved: chain {} block {} tx {}",
                    a.chain_id,
                    a.block_number,
                    short(&a.tx_hash)
                );
            }
            if !e.reason.is_empty() {
                let _ = write!(line, "  ({})", e.reason);
            }
            let _ = writeln!(s, "{line}");
        }
    }
    if r.ok() {
        let _ = write!(
            s,
            "VERIFIED: {} entries, every check passed",
            r.entries_verified
        );
    } else {
        let n = r.failures.len() as u64 + r.failures_not_listed;
        let _ = writeln!(s, "FAILED: {n} failure(s)");
        for f in &r.failures {
            let kind = serde_json::to_value(f.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let _ = writeln!(s, "  [{kind}] {}", f.message);
        }
        if r.failures_not_listed > 0 {
            let _ = writeln!(s, "  ... and {} more", r.failures_not_listed);
        }
    }
    s.trim_end().to_string()
}
