//! `collective node check`: everything `Node::start` would refuse, and
//! more, checked and reported one by one without starting the node, so an
//! operator sees every problem at once, each with its cause and the fix.

use std::time::Duration;

use collective_chain::{ChainClient, B256};
use serde::Serialize;

use crate::sandbox;
use crate::NodeConfig;

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was found (or why it failed, and how to fix it).
    pub detail: String,
}

fn check(name: &'static str, r: Result<String, String>) -> Check {
    match r {
        Ok(detail) => Check {
            name,
            ok: true,
            detail,
        },
        Err(detail) => Check {
            name,
            ok: false,
            detail,
        },
    }
}

/// Runs every check against `cfg` (already parsed and validated).
pub async fn run(cfg: &NodeConfig) -> Vec<Check> {
    let mut out = Vec::new();
    let keys = crate::bootstrap::load_keys(cfg);
    out.push(check(
        "keys",
        keys.as_ref()
            .map(|k| format!("loaded; recipient {}", k.recipient_fingerprint()))
            .map_err(|e| e.to_string()),
    ));
    let addresses = crate::bootstrap::addresses(cfg);
    out.push(check(
        "deployment",
        addresses
            .as_ref()
            .map(|a| format!("CodeRegistry {:#x}", a.code_registry))
            .map_err(|e| e.to_string()),
    ));
    if let Ok(a) = addresses {
        let connect = ChainClient::connect_checked(&cfg.chain.rpc_url, a, None, cfg.chain.chain_id);
        match tokio::time::timeout(Duration::from_secs(15), connect).await {
            Ok(Ok(chain)) => {
                out.push(check(
                    "chain",
                    Ok(format!(
                        "{} answers, chain id {}",
                        cfg.chain.rpc_url, cfg.chain.chain_id
                    )),
                ));
                let public = keys
                    .as_ref()
                    .ok()
                    .map(|k| PublicKeys::of(k, &cfg.log.origin));
                out.push(registration(cfg, &chain, public.as_ref()).await);
            }
            Ok(Err(e)) => out.push(check("chain", Err(format!("{}: {e}", cfg.chain.rpc_url)))),
            Err(_) => out.push(check(
                "chain",
                Err(format!("{}: no answer within 15 s", cfg.chain.rpc_url)),
            )),
        }
    }
    out.push(check("repository", repository(cfg)));
    out.push(check(
        "store",
        collective_vault::DatasetStore::open(&cfg.data.store)
            .map(|_| format!("{} opens", cfg.data.store))
            .map_err(|e| format!("{}: {}", cfg.data.store, crate::error::causes(&e))),
    ));
    out.push(check("directories", directories(cfg)));
    let mode = sandbox::Mode::current();
    out.push(check(
        "sandbox",
        sandbox::check_host(&cfg.sandbox.bwrap, &cfg.sandbox.cgroups, mode)
            .await
            .map(|cg| format!("{mode:?} mode, probe job contained; job cgroups {cg:?}"))
            .map_err(|e| e.to_string()),
    ));
    out
}

/// The repository the node deploys from: a local one must exist and be a
/// git repository (its branch may not exist yet); a remote one is fetched
/// by the node and reported in status.
pub fn repository(cfg: &NodeConfig) -> Result<String, String> {
    let branch = &cfg.repository.branch;
    match (&cfg.repository.path, &cfg.repository.url) {
        (Some(p), _) => {
            let src = crate::repo::RepoSource::local(p, branch);
            match src.head() {
                Ok(Some(h)) => Ok(format!(
                    "{}: branch {branch} at {} (tree sha256 {})",
                    p.display(),
                    h.commit,
                    h.ids.sha256
                )),
                Ok(None) => Ok(format!(
                    "{}: branch {branch} does not exist yet (nothing deploys until it does)",
                    p.display()
                )),
                Err(e) => Err(format!(
                    "{} (repository.path): {}; point it at a git repository",
                    p.display(),
                    crate::error::causes(&e)
                )),
            }
        }
        (None, Some(u)) => Ok(format!("{u}: fetched by the node (branch {branch})")),
        (None, None) => Err("repository: give repository.path or repository.url".into()),
    }
}

/// The directories the node writes exist or can be created, and are
/// writable.
pub fn directories(cfg: &NodeConfig) -> Result<String, String> {
    let mut problems = Vec::new();
    for (field, dir) in [
        ("paths.work_dir", &cfg.paths.work_dir),
        ("paths.outbox_dir", &cfg.paths.outbox_dir),
        ("log.dir", &cfg.log.dir),
    ] {
        let mut probe = dir.clone();
        // The nearest existing ancestor decides whether it can be made.
        while !probe.exists() {
            match probe.parent() {
                Some(p) => probe = p.to_path_buf(),
                None => break,
            }
        }
        let writable = tempfile::tempfile_in(&probe).map(drop);
        if let Err(e) = writable {
            problems.push(format!(
                "{field} {}: {} is not writable: {e}",
                dir.display(),
                probe.display()
            ));
        }
    }
    if problems.is_empty() {
        Ok("work, outbox and log directories writable".into())
    } else {
        Err(problems.join("; "))
    }
}

/// The public halves of the node's keys, which is all the registration
/// check (and anything above bootstrap) gets.
#[derive(Debug, Clone)]
pub struct PublicKeys {
    /// The age recipient contributors encrypt to.
    pub recipient: String,
    /// The log's note verifier key (empty if the origin is invalid).
    pub log_verifier_key: String,
}

impl PublicKeys {
    /// Take the public halves of `keys`.
    pub fn of(keys: &collective_vault::NodeKeys, origin: &str) -> PublicKeys {
        PublicKeys {
            recipient: keys.recipient().to_string(),
            log_verifier_key: keys.log_verifier_key(origin).unwrap_or_default(),
        }
    }
}

/// The node is registered on chain with the keys on disk.
pub async fn registration(
    cfg: &NodeConfig,
    chain: &ChainClient,
    keys: Option<&PublicKeys>,
) -> Check {
    let id = B256::from(cfg.node_id());
    let rec = match chain.node(id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return check(
                "registration",
                Err(format!(
                    "node {id} is not registered in the NodeRegistry; propose it with `collective proposal register-node`"
                )),
            )
        }
        Err(e) => return check("registration", Err(format!("reading node {id}: {e}"))),
    };
    let Some(keys) = keys else {
        return check(
            "registration",
            Ok("registered (keys not loaded, not compared)".into()),
        );
    };
    let mut problems = Vec::new();
    if rec.encryption_recipient.trim() != keys.recipient.trim() {
        problems.push("the on-chain encryption recipient is not this node's key");
    }
    if keys.log_verifier_key.is_empty() || keys.log_verifier_key != rec.log_public_key.trim() {
        problems.push("the on-chain log key is not this node's log key (or log.origin differs)")
    }
    if problems.is_empty() {
        check(
            "registration",
            Ok(format!(
                "registered at block {}, keys match",
                rec.registered_block
            )),
        )
    } else {
        check(
            "registration",
            Err(format!(
                "{}; re-register with the keys in {}",
                problems.join("; "),
                cfg.node.key_dir.display()
            )),
        )
    }
}
