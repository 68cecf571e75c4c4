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
                out.push(registration(cfg, &chain, keys.as_ref().ok()).await);
            }
            Ok(Err(e)) => out.push(check("chain", Err(format!("{}: {e}", cfg.chain.rpc_url)))),
            Err(_) => out.push(check(
                "chain",
                Err(format!("{}: no answer within 15 s", cfg.chain.rpc_url)),
            )),
        }
    }
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

/// The node is registered on chain with the keys on disk.
pub(crate) async fn registration(
    cfg: &NodeConfig,
    chain: &ChainClient,
    keys: Option<&collective_vault::NodeKeys>,
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
    if rec.encryption_recipient.trim() != keys.recipient().trim() {
        problems.push("the on-chain encryption recipient is not this node's key");
    }
    match keys.log_verifier_key(&cfg.log.origin) {
        Ok(v) if v == rec.log_public_key.trim() => {}
        _ => {
            problems.push("the on-chain log key is not this node's log key (or log.origin differs)")
        }
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
