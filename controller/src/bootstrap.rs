//! The first steps of a node, shared by `Node::start` and
//! `collective node check`: loading the keys and reading the deployment.
//! Only this module and `Node::start` touch the private keys' files.

use collective_chain::Addresses;
use collective_vault::{NodeKeys, SecretString};

use crate::{ControllerError, NodeConfig};

/// The node's keys, from `node.key_dir` (with the passphrase from
/// `node.passphrase_env` when set).
pub fn load_keys(cfg: &NodeConfig) -> Result<NodeKeys, ControllerError> {
    let passphrase = cfg
        .node
        .passphrase_env
        .as_ref()
        .and_then(|v| std::env::var(v).ok())
        .map(SecretString::from);
    NodeKeys::load(&cfg.node.key_dir, passphrase.as_ref()).map_err(|e| ControllerError::Keys {
        message: format!(
            "{e} (node.key_dir; create keys with `collective keys init --dir {}`)",
            cfg.node.key_dir.display()
        ),
    })
}

/// The suite's contract addresses, from the deployment file or
/// `chain.addresses`.
pub fn addresses(cfg: &NodeConfig) -> Result<Addresses, ControllerError> {
    let addresses = match (&cfg.chain.deployment, &cfg.chain.addresses) {
        (Some(path), _) => {
            // Any deployment YAML (devnet.yaml is one, with extra fields).
            let text = std::fs::read_to_string(path).map_err(|source| ControllerError::Io {
                path: path.clone(),
                source,
            })?;
            let d: collective_chain::Deployment =
                serde_yaml::from_str(&text).map_err(|e| ControllerError::Config {
                    file: path.display().to_string(),
                    field: "(deployment file)".into(),
                    message: e.to_string(),
                })?;
            if d.chain_id != cfg.chain.chain_id {
                return Err(ControllerError::Config {
                    file: path.display().to_string(),
                    field: "chain_id".into(),
                    message: format!(
                        "the deployment is on chain {}, but chain.chain_id is {}",
                        d.chain_id, cfg.chain.chain_id
                    ),
                });
            }
            d.addresses
        }
        (None, Some(a)) => {
            let p = |s: &str| {
                s.parse::<collective_chain::Address>()
                    .map_err(|e| ControllerError::Chain {
                        message: format!("address {s}: {e}"),
                    })
            };
            collective_chain::Addresses {
                token: p(&a.token)?,
                timelock: p(&a.timelock)?,
                governor: p(&a.governor)?,
                code_registry: p(&a.code_registry)?,
                node_registry: p(&a.node_registry)?,
                data_registry: p(&a.data_registry)?,
            }
        }
        (None, None) => {
            return Err(ControllerError::Config {
                file: "node.yaml".into(),
                field: "chain.deployment".into(),
                message: "give chain.deployment (a deployment file) or chain.addresses".into(),
            })
        }
    };
    Ok(addresses)
}
