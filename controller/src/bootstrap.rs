//! The first steps of a node, shared by `Node::start` and
//! `collective node check`: loading the keys, reading the deployment,
//! preparing the private plaintext directory, and clearing what a crash
//! left behind.
//!
//! Key argument. Only this module reads the key files. It splits the keys
//! at once: the log signing key goes to the journal (inside the log), the
//! decryption identity to the job runner, and everything else (HTTP, the
//! status, GitHub, the loop) gets public keys only.

use std::path::{Path, PathBuf};

use collective_chain::Addresses;
use collective_vault::{NodeKeys, SecretString};
use tracing::warn;

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
    NodeKeys::load(&cfg.node.key_dir, passphrase.as_ref()).map_err(|source| ControllerError::Keys {
        dir: cfg.node.key_dir.clone(),
        source: Box::new(source),
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
                serde_norway::from_str(&text).map_err(|e| ControllerError::Config {
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
            let p = |field: &'static str, s: &str| {
                s.parse::<collective_chain::Address>()
                    .map_err(|source| ControllerError::Address {
                        field,
                        value: s.to_string(),
                        source,
                    })
            };
            collective_chain::Addresses {
                token: p("token", &a.token)?,
                timelock: p("timelock", &a.timelock)?,
                governor: p("governor", &a.governor)?,
                code_registry: p("code_registry", &a.code_registry)?,
                node_registry: p("node_registry", &a.node_registry)?,
                data_registry: p("data_registry", &a.data_registry)?,
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

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ControllerError + '_ {
    move |source| ControllerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The private (0700, tmpfs when available) base of this node's plaintext
/// directories, emptied: one per node instance (node id and work dir), so
/// two nodes on one machine never clear each other's plaintext.
pub fn plain_base(cfg: &NodeConfig) -> Result<PathBuf, ControllerError> {
    use sha2::Digest;
    let instance = hex::encode(sha2::Sha256::digest(
        cfg.paths.work_dir.to_string_lossy().as_bytes(),
    ));
    let base = collective_vault::plain_base_dir().join(format!(
        "collective-{}-{}",
        &hex::encode(cfg.node_id())[..8],
        &instance[..8]
    ));
    if std::fs::read_dir(&base).is_ok_and(|mut d| d.next().is_some()) {
        warn!(dir = %base.display(), "removing plaintext left by a previous run");
    }
    let _ = std::fs::remove_dir_all(&base);
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&base)
        .map_err(io(&base))?;
    // The base sits in a shared directory (/dev/shm): it must be a real
    // directory of ours, private, not something another local user left (or
    // linked) there.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let m = std::fs::symlink_metadata(&base).map_err(io(&base))?;
    if !m.file_type().is_dir()
        || m.uid() != nix::unistd::geteuid().as_raw()
        || m.permissions().mode() & 0o077 != 0
    {
        return Err(ControllerError::Refused {
            reason: format!(
                "{} is not a private directory of this user (owner {}, mode {:o}); remove it and restart",
                base.display(),
                m.uid(),
                m.permissions().mode() & 0o7777
            ),
        });
    }
    Ok(base)
}

/// Remove what a crash left: run directories (unmounting their tmpfs;
/// they may hold plaintext outputs), half-written trees, and half-sealed
/// outbox files (`.collective-partial-*`). Returns how many were removed.
pub fn clean_crash_leftovers(cfg: &NodeConfig, trees: &crate::deploy::TreeStore) -> usize {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(cfg.paths.work_dir.join("runs")) {
        for e in rd.flatten() {
            let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
            if std::fs::remove_dir_all(e.path()).is_ok() {
                n += 1;
            }
        }
    }
    trees.clean_partial();
    // The outbox is <tree>/<job>/<file>: partials are at depth 3.
    for e in walkdir::WalkDir::new(&cfg.paths.outbox_dir)
        .max_depth(3)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        if e.file_type().is_file()
            && e.file_name()
                .to_string_lossy()
                .starts_with(".collective-partial-")
        {
            warn!(path = %e.path().display(), "removing an output a crash left half-sealed");
            if std::fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
    }
    n
}

/// Create the node's directories.
pub fn create_dirs(cfg: &NodeConfig) -> Result<(), ControllerError> {
    for d in [&cfg.paths.work_dir, &cfg.paths.outbox_dir, &cfg.log.dir] {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    Ok(())
}

/// The operator's anchoring client, when `chain.operator_key_env` names a
/// set variable.
pub async fn anchor_client(
    cfg: &NodeConfig,
    addresses: Addresses,
) -> Result<Option<collective_chain::ChainClient>, ControllerError> {
    let Some(var) = &cfg.chain.operator_key_env else {
        return Ok(None);
    };
    let Ok(k) = std::env::var(var) else {
        warn!(
            var,
            "operator key variable unset; checkpoints will not be anchored"
        );
        return Ok(None);
    };
    let signer: collective_chain::PrivateKeySigner =
        k.trim().parse().map_err(|e| ControllerError::Config {
            file: "environment".into(),
            field: var.clone(),
            message: format!("not an Ethereum private key: {e}"),
        })?;
    Ok(Some(
        collective_chain::ChainClient::connect(&cfg.chain.rpc_url, addresses, Some(signer)).await?,
    ))
}
