//! `collective keys init|show` and `collective contribute` through the built
//! binary: key file modes and refusals, passphrase sealing, encryption into
//! the dataset store checked with the stock `age` CLI, `--encrypted` input
//! from stock `age -R`, and `--register` against a real anvil devnet.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use collective_chain::devnet::{self, DevnetFile};
use collective_chain::{ChainClient, B256};
use sha2::{Digest, Sha256};

use crate::support::{cmd, dev_up, fails, ok_json, require_anvil, run};

const PASSPHRASE_ENV: &str = "COLLECTIVE_KEY_PASSPHRASE";

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every regular file under `dir` (empty if `dir` is absent).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn age_cli() -> &'static str {
    let ok = Command::new("age")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the stock `age` CLI is needed for interop tests (apt-get install age)"
    );
    "age"
}

/// `keys init --dir keys` (unsealed) in `dir`, returning the JSON it printed.
fn init_keys(dir: &Path, name: &str) -> serde_json::Value {
    ok_json(
        run(dir, &["--json", "keys", "init", "--dir", name]),
        "keys init",
    )
}

#[test]
fn keys_init_modes_refusal_and_show() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let init = init_keys(d, "keys");
    let keys = d.join("keys");
    assert_eq!(mode(&keys), 0o700, "key dir mode");
    assert_eq!(mode(&keys.join("node.key")), 0o600, "node.key mode");
    assert_eq!(mode(&keys.join("log.key")), 0o600, "log.key mode");
    assert!(keys.join("node.pub").exists() && keys.join("log.pub").exists());
    assert_eq!(init["sealed"], false);
    let recipient = init["recipient"].as_str().unwrap();
    assert!(recipient.starts_with("ssh-rsa AAAA"), "{recipient}");
    // node.pub holds exactly the published recipient.
    let pub_text = std::fs::read_to_string(keys.join("node.pub")).unwrap();
    assert_eq!(pub_text.trim(), recipient);
    // The private key is an unsealed PEM key stock tools read.
    let key_text = std::fs::read_to_string(keys.join("node.key")).unwrap();
    assert!(key_text.starts_with("-----BEGIN "), "{}", &key_text[..30]);

    // Never overwrites: exit 64, files unchanged.
    let before = std::fs::read(keys.join("node.key")).unwrap();
    fails(
        &run(d, &["keys", "init", "--dir", "keys"]),
        64,
        "already exists",
    );
    assert_eq!(std::fs::read(keys.join("node.key")).unwrap(), before);

    // show --json: public material only, the same as init printed.
    let show = ok_json(
        run(d, &["--json", "keys", "show", "--dir", "keys"]),
        "keys show",
    );
    for field in [
        "recipient",
        "recipient_fingerprint",
        "log_public_key",
        "log_key_fingerprint",
        "node_id",
    ] {
        assert_eq!(show[field], init[field], "{field}");
        assert!(
            show[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field}"
        );
    }
    assert!(show["recipient_fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("SHA256:"));
    let node_id = show["node_id"].as_str().unwrap();
    assert!(
        node_id.starts_with("0x") && node_id.len() == 66,
        "{node_id}"
    );
    assert_eq!(show["checked"], false);
    assert_eq!(show["sealed"], false);
    let text = serde_json::to_string(&show).unwrap();
    assert!(!text.contains("PRIVATE"), "show leaks private material");
    // --check loads the private keys; --origin prints the verifier key.
    let checked = ok_json(
        run(
            d,
            &[
                "--json",
                "keys",
                "show",
                "--dir",
                "keys",
                "--check",
                "--origin",
                "example.org/node-1",
            ],
        ),
        "keys show --check",
    );
    assert_eq!(checked["checked"], true);
    assert!(checked["log_verifier_key"]
        .as_str()
        .unwrap()
        .starts_with("example.org/node-1+"));

    // A group/other-readable key file is refused, naming the fix.
    std::fs::set_permissions(
        keys.join("node.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = run(d, &["keys", "show", "--dir", "keys", "--check"]);
    fails(&out, 64, "chmod 600");
    assert!(String::from_utf8_lossy(&out.stderr).contains("node.key"));
    std::fs::set_permissions(
        keys.join("node.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(keys.join("log.key"), std::fs::Permissions::from_mode(0o640)).unwrap();
    fails(
        &run(d, &["keys", "show", "--dir", "keys", "--check"]),
        64,
        "chmod 600",
    );

    // Missing directory: a clear error, not a panic.
    let out = run(d, &["keys", "show", "--dir", "nope"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

#[test]
fn passphrase_sealed_keys() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // No terminal and no env: refused, nothing written.
    fails(
        &run(d, &["keys", "init", "--dir", "sealed", "--passphrase"]),
        64,
        PASSPHRASE_ENV,
    );
    assert!(!d.join("sealed").join("node.key").exists());

    let init = ok_json(
        cmd(d)
            .args(["--json", "keys", "init", "--dir", "sealed", "--passphrase"])
            .env(PASSPHRASE_ENV, "correct horse battery")
            .output()
            .unwrap(),
        "keys init --passphrase",
    );
    assert_eq!(init["sealed"], true);
    let keys = d.join("sealed");
    for f in ["node.key", "log.key"] {
        assert_eq!(mode(&keys.join(f)), 0o600, "{f}");
        let text = std::fs::read_to_string(keys.join(f)).unwrap();
        assert!(
            text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
            "{f} is not age-sealed"
        );
        assert!(!text.contains("PRIVATE KEY"), "{f} holds plaintext key");
    }

    // The right passphrase loads and checks the keys.
    let ok = ok_json(
        cmd(d)
            .args([
                "--json",
                "keys",
                "show",
                "--dir",
                "sealed",
                "--check",
                "--passphrase",
            ])
            .env(PASSPHRASE_ENV, "correct horse battery")
            .output()
            .unwrap(),
        "keys show --check --passphrase",
    );
    assert_eq!(ok["checked"], true);
    assert_eq!(ok["sealed"], true);
    assert_eq!(ok["recipient"], init["recipient"]);

    // The wrong one fails, naming the file.
    let out = cmd(d)
        .args(["keys", "show", "--dir", "sealed", "--check", "--passphrase"])
        .env(PASSPHRASE_ENV, "wrong horse")
        .output()
        .unwrap();
    fails(&out, 1, "wrong passphrase");
    assert!(String::from_utf8_lossy(&out.stderr).contains("node.key"));
    // None at all: told to pass one.
    fails(
        &run(d, &["keys", "show", "--dir", "sealed", "--check"]),
        64,
        "--passphrase",
    );
    // Public material needs no passphrase.
    let pubs = ok_json(
        run(d, &["--json", "keys", "show", "--dir", "sealed"]),
        "keys show (sealed, public only)",
    );
    assert_eq!(pubs["recipient"], init["recipient"]);
    assert_eq!(pubs["sealed"], true);
}

#[test]
fn contribute_encrypts_to_node_and_stock_age_decrypts() {
    let age = age_cli();
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    init_keys(d, "keys");
    // Binary content with every byte value, bigger than one age chunk (64 KiB).
    let plain: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(d.join("rows.bin"), &plain).unwrap();
    std::fs::write(d.join("small.csv"), b"a,b\n1,2\n").unwrap();

    let v = ok_json(
        run(
            d,
            &[
                "--json",
                "contribute",
                "rows.bin",
                "small.csv",
                "--to",
                "keys/node.pub",
                "--store",
                "store",
            ],
        ),
        "contribute",
    );
    let rows = v.as_array().expect("one row per file");
    assert_eq!(rows.len(), 2);
    for (row, original) in rows.iter().zip([plain.clone(), b"a,b\n1,2\n".to_vec()]) {
        let sha = row["sha256"].as_str().unwrap();
        let url = row["url"].as_str().unwrap();
        assert_eq!(row["encrypted_here"], true);
        assert!(url.starts_with("file://"), "{url}");
        let path = PathBuf::from(url.trim_start_matches("file://"));
        assert!(
            path.starts_with(d.join("store").canonicalize().unwrap())
                || path.starts_with(d.join("store")),
            "{url}"
        );
        let stored = std::fs::read(&path).unwrap();
        // Named by the sha256 of its bytes; size is the ciphertext's.
        assert_eq!(sha256_hex(&stored), sha);
        assert!(path.file_name().unwrap().to_str().unwrap().starts_with(sha));
        assert_eq!(row["size"].as_u64().unwrap(), stored.len() as u64);
        assert!(stored.starts_with(b"age-encryption.org/v1\n"));
        assert!(stored.len() > original.len());
        // The stock age CLI decrypts it with the node key.
        let out = Command::new(age)
            .args(["-d", "-i"])
            .arg(d.join("keys/node.key"))
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "age -d: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == original, "decrypted bytes differ");
    }
    // Only the two objects are in the store.
    let objects: Vec<_> = files_under(&d.join("store"));
    assert_eq!(objects.len(), 2, "{objects:?}");

    // Human output names url, size and sha256.
    let out = run(
        d,
        &[
            "contribute",
            "small.csv",
            "--to",
            "keys/node.pub",
            "--store",
            "store",
        ],
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("url") && text.contains("sha256") && text.contains("bytes"),
        "{text}"
    );

    // Refusals: no --to, a bad recipient, a missing file.
    fails(
        &run(d, &["contribute", "small.csv", "--store", "s2"]),
        64,
        "--to",
    );
    fails(
        &run(
            d,
            &[
                "contribute",
                "small.csv",
                "--to",
                "ssh-rsa nope",
                "--store",
                "s2",
            ],
        ),
        64,
        "--to ssh-rsa nope",
    );
    let out = run(
        d,
        &[
            "contribute",
            "missing.csv",
            "--to",
            "keys/node.pub",
            "--store",
            "s2",
        ],
    );
    fails(&out, 64, "missing.csv");
    assert!(files_under(&d.join("s2")).is_empty());
}

#[test]
fn contribute_encrypted_accepts_stock_age_and_refuses_non_age() {
    let age = age_cli();
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    init_keys(d, "keys");
    std::fs::write(d.join("data.csv"), b"id,value\n1,42\n2,43\n").unwrap();
    let st = Command::new(age)
        .args(["-R", "keys/node.pub", "-o", "data.csv.age", "data.csv"])
        .current_dir(d)
        .status()
        .unwrap();
    assert!(st.success(), "age -R failed");
    let ciphertext = std::fs::read(d.join("data.csv.age")).unwrap();

    let v = ok_json(
        run(
            d,
            &[
                "--json",
                "contribute",
                "--encrypted",
                "data.csv.age",
                "--store",
                "store",
            ],
        ),
        "contribute --encrypted",
    );
    let row = &v[0];
    assert_eq!(row["encrypted_here"], false);
    assert_eq!(row["sha256"].as_str().unwrap(), sha256_hex(&ciphertext));
    assert_eq!(row["size"].as_u64().unwrap(), ciphertext.len() as u64);
    let stored = files_under(&d.join("store"));
    assert_eq!(stored.len(), 1);
    // Stored as it was, byte for byte.
    assert_eq!(std::fs::read(&stored[0]).unwrap(), ciphertext);

    // Not age, empty, truncated header: refused, nothing left in the store.
    std::fs::write(d.join("plain.csv.age"), b"id,value\n1,42\n").unwrap();
    std::fs::write(d.join("empty.age"), b"").unwrap();
    std::fs::write(d.join("short.age"), &ciphertext[..20]).unwrap();
    for (file, needle) in [
        ("plain.csv.age", "not an age file"),
        ("empty.age", "empty"),
        ("short.age", "short.age"),
    ] {
        let out = run(d, &["contribute", "--encrypted", file, "--store", "bad"]);
        assert_ne!(out.status.code(), Some(0), "{file} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{file}: {err}");
        assert!(
            err.starts_with("error:") && !err.contains("panicked"),
            "{err}"
        );
        let left = files_under(&d.join("bad"));
        assert!(left.is_empty(), "{file} left {left:?}");
    }
    // A non-age file among good ones: the good one before it is stored, nothing of the bad one.
    let out = run(
        d,
        &[
            "contribute",
            "--encrypted",
            "data.csv.age",
            "--encrypted",
            "plain.csv.age",
            "--store",
            "mixed",
        ],
    );
    assert_ne!(out.status.code(), Some(0));
    let left = files_under(&d.join("mixed"));
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(std::fs::read(&left[0]).unwrap(), ciphertext);
}

// ---------------------------------------------------------------- --register on anvil

#[tokio::test]
async fn contribute_register_on_devnet() {
    require_anvil();
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (guard, up) = dev_up(d);
    let devnet_yaml = guard.0.clone();
    let pid = up["devnet"]["anvil"]["pid"].as_u64().unwrap() as u32;
    let file = DevnetFile::load(&devnet_yaml).unwrap();
    let rpc = file.deployment.rpc_url.clone();
    let data_registry = format!("{:#x}", file.deployment.addresses.data_registry);
    let contributor = file.account("contributor").unwrap();
    let key = contributor.private_key.clone();

    let keys = init_keys(d, "keys");
    let node_id = keys["node_id"].as_str().unwrap().to_string();
    std::fs::write(d.join("mine.csv"), b"id,value\n7,8\n").unwrap();
    let register = |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "contribute",
            "--store",
            "store",
            "--register",
            "--rpc",
            &rpc,
            "--data-registry",
            &data_registry,
        ];
        args.extend_from_slice(extra);
        cmd(d)
            .args(&args)
            .env("COLLECTIVE_PRIVATE_KEY", &key)
            .output()
            .unwrap()
    };

    // Unregistered node: a clear refusal before anything is stored.
    let out = register(&["mine.csv", "--to", "keys/node.pub", "--node-id", &node_id]);
    fails(&out, 64, "not registered");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&node_id[2..]));
    assert!(files_under(&d.join("store")).is_empty());
    // A DataRegistry address with no contract: clear, nothing stored.
    let out = register(&[
        "mine.csv",
        "--to",
        "keys/node.pub",
        "--node-id",
        &node_id,
        "--data-registry",
        "0x1111111111111111111111111111111111111111",
    ]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(files_under(&d.join("store")).is_empty());

    // Register the node through the Governor (propose, vote, queue, execute).
    let rn = ok_json(
        run(
            d,
            &[
                "--json",
                "proposal",
                "register-node",
                "--devnet",
                "devnet.yaml",
                "--node-id",
                &node_id,
                "--keys",
                "keys",
                "--origin",
                "example.org/node-1",
                "--endpoint",
                "http://127.0.0.1:1",
                "--operator",
                "operator",
                "--description",
                "Register node 1",
            ],
        ),
        "register-node",
    );
    let id = rn["id"].as_str().unwrap().to_string();
    for step in ["vote", "queue", "execute"] {
        ok_json(
            run(
                d,
                &["--json", "proposal", step, &id, "--devnet", "devnet.yaml"],
            ),
            step,
        );
    }

    // Encrypting to someone else and registering for the node is refused.
    let other = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq";
    fails(
        &register(&["mine.csv", "--to", other, "--node-id", &node_id]),
        64,
        "could not decrypt",
    );
    assert!(files_under(&d.join("store")).is_empty());

    // Now it registers; --encrypted too (a stock `age -R` file).
    let st = Command::new(age_cli())
        .args(["-R", "keys/node.pub", "-o", "mine2.age", "mine.csv"])
        .current_dir(d)
        .status()
        .unwrap();
    assert!(st.success());
    let v = ok_json(
        register(&[
            "mine.csv",
            "--to",
            "keys/node.pub",
            "--encrypted",
            "mine2.age",
            "--node-id",
            &node_id,
        ]),
        "contribute --register",
    );
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert!(row["registered_tx"].as_str().unwrap().starts_with("0x"));
        assert!(row["registered_block"].as_u64().unwrap() > 0);
    }

    // DataRegistry holds exactly these, by the contributor, not withdrawn.
    let client = ChainClient::connect_deployment(&file.deployment, None)
        .await
        .unwrap();
    let node: B256 = node_id.parse().unwrap();
    let on_chain = client.contributions(node, 0).await.unwrap();
    assert_eq!(on_chain.len(), 2, "{on_chain:?}");
    for (c, row) in on_chain.iter().zip(rows) {
        assert_eq!(format!("{:x}", c.sha256), row["sha256"].as_str().unwrap());
        assert_eq!(c.uri, row["url"].as_str().unwrap());
        assert_eq!(c.size, row["size"].as_u64().unwrap());
        assert_eq!(c.contributor, contributor.address);
        assert!(!c.withdrawn);
    }

    // Registering the same ciphertext twice is refused by the registry.
    let again = register(&["--encrypted", "mine2.age", "--node-id", &node_id]);
    fails(&again, 1, "AlreadyContributed");
    // Without a key: usage error.
    let out = cmd(d)
        .args([
            "contribute",
            "mine.csv",
            "--to",
            "keys/node.pub",
            "--store",
            "store",
            "--register",
            "--rpc",
            &rpc,
            "--data-registry",
            &data_registry,
            "--node-id",
            &node_id,
        ])
        .output()
        .unwrap();
    fails(&out, 64, "COLLECTIVE_PRIVATE_KEY");

    let down = ok_json(
        run(d, &["--json", "dev", "down", "--devnet", "devnet.yaml"]),
        "dev down",
    );
    assert_eq!(down["stopped"], true);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!devnet::anvil_running(pid), "anvil {pid} still running");
}
