//! `collective contribute`: encrypt files to a node and put the ciphertexts in
//! the dataset store, optionally registering them in `DataRegistry`.
//!
//! Plaintext is only ever read from the contributor's own files and streamed
//! through age encryption; what reaches the store (and the chain, by hash) is
//! ciphertext. Ciphertexts made with stock `age -R node.pub` are accepted
//! as they are with `--encrypted`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use collective_chain::bindings::DataRegistry;
use collective_chain::{Addresses, ChainClient, NodeRecord, PrivateKeySigner, B256};
use collective_vault::{DatasetStore, ObjectRef};
use serde::Serialize;

use crate::cmd::keys::classify;
use crate::cmd::proposal::chain_err;
use crate::output::Output;
use crate::Exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files to encrypt and store.
    #[arg(value_name = "FILE", required_unless_present = "encrypted")]
    pub files: Vec<PathBuf>,
    /// Who to encrypt to: a recipient (`ssh-rsa AAAA...`, `age1...`) or a
    /// recipients file such as the node's `node.pub`. Repeatable.
    #[arg(long = "to", value_name = "RECIPIENT_OR_FILE")]
    pub to: Vec<String>,
    /// Existing age ciphertexts (made with `age -R node.pub`) to store as
    /// they are. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub encrypted: Vec<PathBuf>,
    /// Dataset store: a directory, `file:///abs/path` or `s3://bucket/prefix`
    /// (S3 credentials and endpoint from the `AWS_*` environment).
    #[arg(
        long,
        value_name = "URL",
        env = "COLLECTIVE_STORE",
        default_value = "data"
    )]
    pub store: String,
    /// Record each contribution in DataRegistry (needs --rpc,
    /// --data-registry, --node-id and a key).
    #[arg(long, requires_all = ["rpc", "data_registry", "node_id"])]
    pub register: bool,
    /// Chain RPC URL for --register.
    #[arg(long, value_name = "URL", env = "COLLECTIVE_RPC")]
    pub rpc: Option<String>,
    /// DataRegistry contract address for --register.
    #[arg(long, value_name = "ADDR")]
    pub data_registry: Option<String>,
    /// The node the data is encrypted to (32-byte hex id) for --register.
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,
    /// The contributor's account key (hex) that signs the registration.
    #[arg(
        long,
        value_name = "HEX",
        env = "COLLECTIVE_PRIVATE_KEY",
        hide_env_values = true
    )]
    pub private_key: Option<String>,
}

#[derive(Debug, Serialize)]
struct Contributed {
    file: PathBuf,
    #[serde(flatten)]
    object: ObjectRef,
    /// Whether the file was encrypted here or was already an age file.
    encrypted_here: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    registered_tx: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registered_block: Option<u64>,
}

/// Resolves `--to` values: an existing file is a recipients file, anything
/// else must be a recipient string.
fn recipients(to: &[String]) -> anyhow::Result<Vec<String>> {
    let mut list = Vec::new();
    for item in to {
        let path = Path::new(item);
        if path.is_file() {
            list.extend(collective_vault::parse_recipients_file(path).map_err(classify)?);
        } else {
            collective_vault::parse_recipient(item)
                .map_err(|e| Exit::usage(format!("--to {item}: not a file, and {e}")))?;
            list.push(item.clone());
        }
    }
    Ok(list)
}

/// A reader that advances a progress bar.
struct Progress<R> {
    inner: R,
    bar: indicatif::ProgressBar,
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

fn open_input(path: &Path, out: &Output) -> anyhow::Result<(Progress<std::fs::File>, String)> {
    let file =
        std::fs::File::open(path).map_err(|e| Exit::usage(format!("{}: {e}", path.display())))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let bar = out.progress(len, &name);
    Ok((Progress { inner: file, bar }, path.display().to_string()))
}

async fn registrar(args: &Args) -> anyhow::Result<Option<(ChainClient, B256, NodeRecord)>> {
    if !args.register {
        return Ok(None);
    }
    let (Some(rpc), Some(registry), Some(node_id)) =
        (&args.rpc, &args.data_registry, &args.node_id)
    else {
        return Err(Exit::usage(
            "--register needs --rpc, --data-registry and --node-id",
        ));
    };
    let data_registry = super::parse_address("--data-registry", registry)?;
    let node_id = super::parse_b256("--node-id", node_id)?;
    let Some(key) = &args.private_key else {
        return Err(Exit::usage(
            "--register needs the contributor's key: --private-key or COLLECTIVE_PRIVATE_KEY",
        ));
    };
    let signer: PrivateKeySigner = key
        .trim()
        .parse()
        .map_err(|e| Exit::usage(format!("--private-key: {e}")))?;
    // Only DataRegistry and the NodeRegistry it names are used here; the
    // other addresses stay zero.
    let mut addresses = Addresses {
        data_registry,
        ..Addresses::default()
    };
    let probe = ChainClient::connect(rpc, addresses, None)
        .await
        .map_err(chain_err)?;
    addresses.node_registry = DataRegistry::new(data_registry, probe.provider())
        .nodes()
        .call()
        .await
        .map_err(|e| {
            Exit::usage(format!(
                "--data-registry {registry}: no DataRegistry answers at {rpc}: {e}"
            ))
        })?;
    let client = ChainClient::connect(rpc, addresses, Some(signer))
        .await
        .map_err(chain_err)?;
    // DataRegistry refuses contributions to unknown nodes; checking first
    // means nothing is uploaded that could never be registered.
    let Some(node) = client.node(node_id).await.map_err(chain_err)? else {
        return Err(Exit::usage(format!(
            "node {node_id} is not registered in NodeRegistry {} (the registry DataRegistry {data_registry} uses); \
             register it first (`collective proposal register-node`) or check --node-id; nothing was stored",
            addresses.node_registry
        )));
    };
    Ok(Some((client, node_id, node)))
}

/// The first two fields of a recipient line (`ssh-rsa AAAA...`), so a
/// trailing comment does not make two equal keys differ.
fn recipient_key(r: &str) -> String {
    r.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

pub async fn run(args: Args, out: Output) -> anyhow::Result<u8> {
    if !args.files.is_empty() && args.to.is_empty() {
        return Err(Exit::usage(
            "encrypting FILE needs --to RECIPIENT_OR_FILE (e.g. --to node.pub)",
        ));
    }
    let recipients = if args.files.is_empty() {
        Vec::new()
    } else {
        recipients(&args.to)?
    };
    let store = DatasetStore::open(&args.store).map_err(classify)?;
    // Connect before any upload, so a bad chain setting fails fast.
    let chain = registrar(&args).await?;
    if let Some((_, node_id, node)) = &chain {
        // Data the node cannot decrypt would be registered for nothing.
        let node_key = recipient_key(&node.encryption_recipient);
        if !recipients.is_empty() && !recipients.iter().any(|r| recipient_key(r) == node_key) {
            return Err(Exit::usage(format!(
                "--to does not include the encryption recipient registered for node {node_id} \
                 ({}...): it could not decrypt the data; nothing was stored",
                node_key.chars().take(40).collect::<String>()
            )));
        }
    }

    let mut done = Vec::new();
    let inputs = args
        .files
        .iter()
        .map(|f| (f, true))
        .chain(args.encrypted.iter().map(|f| (f, false)));
    for (path, encrypt) in inputs {
        let (reader, what) = open_input(path, &out)?;
        let bar = reader.bar.clone();
        let object = if encrypt {
            store.put_encrypted(reader, &recipients, &what).await
        } else {
            store.put_ciphertext(reader, &what).await
        };
        bar.finish_and_clear();
        let object = object.map_err(classify)?;
        let mut row = Contributed {
            file: path.clone(),
            object,
            encrypted_here: encrypt,
            registered_tx: None,
            registered_block: None,
        };
        if let Some((client, node_id, _)) = &chain {
            let sha = B256::from_str(&row.object.sha256)?;
            let tx = client
                .contribute(sha, &row.object.url, row.object.size, *node_id)
                .await
                .map_err(chain_err)?;
            row.registered_tx = Some(format!("{:#x}", tx.tx_hash));
            row.registered_block = Some(tx.block_number);
        }
        out.say(human(&row));
        done.push(row);
    }
    let summary = format!("{} file(s) stored in {}", done.len(), store.url());
    out.result(&done, summary)?;
    Ok(crate::exit::OK)
}

fn human(row: &Contributed) -> String {
    let mut text = format!(
        "{}\n  url     {}\n  size    {} bytes (ciphertext)\n  sha256  {}",
        row.file.display(),
        row.object.url,
        row.object.size,
        row.object.sha256
    );
    if let (Some(tx), Some(block)) = (&row.registered_tx, row.registered_block) {
        text.push_str(&format!(
            "\n  registered in DataRegistry: tx {tx} (block {block})"
        ));
    }
    text
}
