//! `collective keys init|show`: the node's encryption and log-signing keys.
//!
//! The private files never leave the key directory; `show` prints only
//! public material and reads only the public files unless `--check` asks it
//! to load (and so verify) the private keys too.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use collective_vault::{ExposeSecret, KeyInfo, NodeKeys, SecretString, VaultError, PASSPHRASE_ENV};
use serde::Serialize;

use crate::output::Output;
use crate::Exit;

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create the node's RSA-4096 encryption key (an `ssh-rsa` age recipient)
    /// and its Ed25519 log-signing key. Never overwrites existing keys.
    Init(InitArgs),
    /// Print the recipient, the log public key and their fingerprints.
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Key directory (created 0700).
    #[arg(
        long,
        value_name = "DIR",
        env = "COLLECTIVE_KEY_DIR",
        default_value = "keys"
    )]
    pub dir: PathBuf,
    /// Seal the private key files with a passphrase (age scrypt). Prompted on
    /// a terminal, else read from COLLECTIVE_KEY_PASSPHRASE.
    #[arg(long)]
    pub passphrase: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Key directory.
    #[arg(
        long,
        value_name = "DIR",
        env = "COLLECTIVE_KEY_DIR",
        default_value = "keys"
    )]
    pub dir: PathBuf,
    /// Also load the private keys and check they match the public files
    /// (and that their modes are private). Needs the passphrase if sealed.
    #[arg(long)]
    pub check: bool,
    /// With --check: the key files are sealed; prompt for the passphrase (or
    /// read COLLECTIVE_KEY_PASSPHRASE).
    #[arg(long)]
    pub passphrase: bool,
    /// Log origin (the first line of checkpoints, e.g.
    /// `collective.example/node-1`): also print the C2SP signed-note verifier
    /// key auditors pass to `collective audit`.
    #[arg(long, value_name = "ORIGIN")]
    pub origin: Option<String>,
}

pub async fn run(c: KeysCommand, out: Output) -> anyhow::Result<u8> {
    match c {
        KeysCommand::Init(a) => init(a, out).await,
        KeysCommand::Show(a) => show(a, out).await,
    }
}

#[derive(Debug, Serialize)]
struct Shown {
    dir: PathBuf,
    #[serde(flatten)]
    info: KeyInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_verifier_key: Option<String>,
    sealed: bool,
    checked: bool,
}

async fn init(a: InitArgs, out: Output) -> anyhow::Result<u8> {
    let passphrase = if a.passphrase {
        Some(passphrase(true)?)
    } else {
        None
    };
    let dir = a.dir.clone();
    let bar = out.progress(0, "generating RSA-4096 key");
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let keys = tokio::task::spawn_blocking(move || NodeKeys::init(&dir, passphrase.as_ref()))
        .await?
        .map_err(classify)?;
    bar.finish_and_clear();
    let shown = Shown {
        dir: a.dir.clone(),
        info: keys.info(),
        log_verifier_key: None,
        sealed: a.passphrase,
        checked: true,
    };
    let human = format!(
        "wrote node keys to {dir}{sealed}\n{body}\ncontributors encrypt with: age -R {pubfile} FILE",
        dir = a.dir.display(),
        sealed = if a.passphrase {
            " (private files sealed with a passphrase)"
        } else {
            ""
        },
        body = human(&shown),
        pubfile = a.dir.join(collective_vault::NODE_PUB_FILE).display(),
    );
    out.result(&shown, human)?;
    Ok(crate::exit::OK)
}

async fn show(a: ShowArgs, out: Output) -> anyhow::Result<u8> {
    let info = KeyInfo::read(&a.dir).map_err(classify)?;
    let sealed = is_sealed(&a.dir.join(collective_vault::NODE_KEY_FILE));
    let mut checked = false;
    let mut log_verifier_key = None;
    if a.check {
        let pass = if a.passphrase || (sealed && std::env::var_os(PASSPHRASE_ENV).is_some()) {
            Some(passphrase(false)?)
        } else {
            None
        };
        let dir = a.dir.clone();
        let keys = tokio::task::spawn_blocking(move || NodeKeys::load(&dir, pass.as_ref()))
            .await?
            .map_err(classify)?;
        checked = true;
        if let Some(origin) = &a.origin {
            log_verifier_key = Some(keys.log_verifier_key(origin).map_err(classify)?);
        }
    } else if let Some(origin) = &a.origin {
        log_verifier_key = Some(info.log_verifier_key(origin).map_err(classify)?);
    }
    let shown = Shown {
        dir: a.dir,
        info,
        log_verifier_key,
        sealed,
        checked,
    };
    let human = human(&shown);
    out.result(&shown, human)?;
    Ok(crate::exit::OK)
}

fn human(s: &Shown) -> String {
    let mut text = format!(
        "recipient            {}\nrecipient fingerprint {}\nlog public key       {}\nlog key fingerprint  {}\nnode id (suggested)  {}",
        s.info.recipient,
        s.info.recipient_fingerprint,
        s.info.log_public_key,
        s.info.log_key_fingerprint,
        s.info.node_id,
    );
    if let Some(vk) = &s.log_verifier_key {
        text.push_str(&format!("\nlog verifier key     {vk}"));
    }
    if s.checked {
        text.push_str("\nprivate keys         loaded and match");
    }
    text
}

fn is_sealed(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 64];
    std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map(|n| collective_vault::is_age_prefix(&head[..n]))
        .unwrap_or(false)
}

/// The key passphrase: from COLLECTIVE_KEY_PASSPHRASE (services), else
/// prompted on the terminal (twice when creating keys).
pub fn passphrase(confirm: bool) -> anyhow::Result<SecretString> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        if p.is_empty() {
            return Err(Exit::usage(format!("{PASSPHRASE_ENV} is set but empty")));
        }
        return Ok(SecretString::from(p));
    }
    if !std::io::stdin().is_terminal() {
        return Err(Exit::usage(format!(
            "a passphrase is needed: set {PASSPHRASE_ENV} or run on a terminal"
        )));
    }
    let first = rpassword::prompt_password("key passphrase: ")?;
    if first.is_empty() {
        return Err(Exit::usage("empty passphrase"));
    }
    if confirm {
        let again = rpassword::prompt_password("repeat passphrase: ")?;
        if again != first {
            return Err(Exit::usage("passphrases do not match"));
        }
    }
    let secret = SecretString::from(first);
    debug_assert!(!secret.expose_secret().is_empty());
    Ok(secret)
}

/// Maps vault errors to exit codes: configuration problems the operator
/// must fix are usage errors (64), the rest failures (1).
pub fn classify(e: VaultError) -> anyhow::Error {
    match e {
        VaultError::InsecureKeyFile { .. }
        | VaultError::PassphraseRequired { .. }
        | VaultError::KeysExist { .. }
        | VaultError::Recipient { .. }
        | VaultError::NoRecipients
        | VaultError::StoreLocation { .. }
        | VaultError::BadLogOrigin { .. } => Exit::usage(e.to_string()),
        VaultError::HashMismatch { .. } => Exit::refused(e.to_string()),
        other => anyhow::Error::new(other),
    }
}
