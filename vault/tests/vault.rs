//! Integration tests of the vault: node keys on disk, interop with the stock
//! `age` CLI, every refusal on bad input (with no partial output left), the
//! dataset store's hash checks, private plaintext directories, and flat
//! memory on a large stream.

#![allow(clippy::print_stdout, clippy::print_stderr)] // diagnostics of the memory test

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use collective_vault::{
    decrypt_datasets_into_dir, decrypt_file, decrypt_stream, encrypt_file, encrypt_stream,
    reencrypt_stream, DatasetStore, KeyInfo, NodeKeys, SecretString, VaultError, LOG_KEY_FILE,
    NODE_KEY_FILE, NODE_PUB_FILE,
};

/// One RSA-4096 key per test binary: generating it is the slow part.
fn fixture() -> &'static NodeKeys {
    static KEYS: OnceLock<NodeKeys> = OnceLock::new();
    KEYS.get_or_init(|| NodeKeys::generate().expect("generate node keys"))
}

/// A key directory holding the fixture keys, unsealed.
fn key_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    fixture().save(&keys, None).unwrap();
    dir
}

fn age_cli() -> &'static str {
    static AGE: OnceLock<&'static str> = OnceLock::new();
    AGE.get_or_init(|| {
        let ok = Command::new("age")
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            ok,
            "the stock `age` CLI is required for interop tests (Debian package `age`; `make sysdeps`)"
        );
        "age"
    })
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn sample(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn x25519() -> (age::x25519::Identity, String) {
    let id = age::x25519::Identity::generate();
    let r = id.to_public().to_string();
    (id, r)
}

// ---------------------------------------------------------------- keys

#[test]
fn saved_keys_are_private_and_load_back() {
    let dir = key_dir();
    let keys = dir.path().join("keys");
    assert_eq!(mode(&keys), 0o700);
    assert_eq!(mode(&keys.join(NODE_KEY_FILE)), 0o600);
    assert_eq!(mode(&keys.join(LOG_KEY_FILE)), 0o600);
    let pem = std::fs::read_to_string(keys.join(NODE_KEY_FILE)).unwrap();
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let pubtext = std::fs::read_to_string(keys.join(NODE_PUB_FILE)).unwrap();
    assert!(pubtext.starts_with("ssh-rsa AAAA"));
    assert_eq!(pubtext.trim(), fixture().recipient());

    let loaded = NodeKeys::load(&keys, None).unwrap();
    assert_eq!(loaded.recipient(), fixture().recipient());
    assert_eq!(loaded.log_public_key(), fixture().log_public_key());
    assert_eq!(KeyInfo::read(&keys).unwrap(), fixture().info());
    let vkey = loaded
        .log_verifier_key("collective.example/node-1")
        .unwrap();
    assert_eq!(
        KeyInfo::read(&keys)
            .unwrap()
            .log_verifier_key("collective.example/node-1")
            .unwrap(),
        vkey
    );
    assert!(matches!(
        loaded.log_verifier_key("has space"),
        Err(VaultError::BadLogOrigin { .. })
    ));
    assert!(vkey.starts_with("collective.example/node-1+"), "{vkey}");
    signed_note::StandardVerifier::new(&vkey).expect("a valid C2SP verifier key");
}

#[test]
fn save_never_overwrites_keys() {
    let dir = key_dir();
    let keys = dir.path().join("keys");
    let before = std::fs::read(keys.join(NODE_KEY_FILE)).unwrap();
    let err = fixture().save(&keys, None).unwrap_err();
    assert!(matches!(err, VaultError::KeysExist { .. }), "{err}");
    let err = NodeKeys::init(&keys, None).unwrap_err();
    assert!(matches!(err, VaultError::KeysExist { .. }), "{err}");
    assert_eq!(std::fs::read(keys.join(NODE_KEY_FILE)).unwrap(), before);
}

#[test]
fn group_readable_key_file_is_refused() {
    let dir = key_dir();
    let keys = dir.path().join("keys");
    for name in [NODE_KEY_FILE, LOG_KEY_FILE] {
        let path = keys.join(name);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = NodeKeys::load(&keys, None).unwrap_err();
        assert!(matches!(err, VaultError::InsecureKeyFile { .. }), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("chmod 600 {}", path.display())),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    NodeKeys::load(&keys, None).unwrap();
}

#[test]
fn passphrase_sealed_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let pass = SecretString::from("correct horse battery".to_string());
    fixture().save(&keys, Some(&pass)).unwrap();
    for name in [NODE_KEY_FILE, LOG_KEY_FILE] {
        let text = std::fs::read_to_string(keys.join(name)).unwrap();
        assert!(text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        assert!(!text.contains("PRIVATE KEY"));
        assert_eq!(mode(&keys.join(name)), 0o600);
    }
    let err = NodeKeys::load(&keys, None).unwrap_err();
    assert!(
        matches!(err, VaultError::PassphraseRequired { .. }),
        "{err}"
    );
    let wrong = SecretString::from("wrong".to_string());
    let err = NodeKeys::load(&keys, Some(&wrong)).unwrap_err();
    assert!(matches!(err, VaultError::WrongPassphrase { .. }), "{err}");
    assert!(err.to_string().contains("wrong passphrase"));
    let loaded = NodeKeys::load(&keys, Some(&pass)).unwrap();
    assert_eq!(loaded.recipient(), fixture().recipient());
    // The public side needs no passphrase.
    assert_eq!(KeyInfo::read(&keys).unwrap(), fixture().info());
}

#[test]
fn swapped_public_file_is_noticed() {
    let dir = key_dir();
    let keys = dir.path().join("keys");
    let (_, other) = x25519();
    std::fs::write(keys.join(NODE_PUB_FILE), format!("{other}\n")).unwrap();
    let err = NodeKeys::load(&keys, None).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
}

// ---------------------------------------------------------------- interop

#[test]
fn stock_age_encrypts_to_node_and_node_decrypts() {
    let age = age_cli();
    let dir = key_dir();
    let plain = dir.path().join("data.csv");
    let data = sample(300_000);
    std::fs::write(&plain, &data).unwrap();
    for armor in [false, true] {
        let ct = dir.path().join(format!("data-{armor}.age"));
        let mut cmd = Command::new(age);
        cmd.arg("-R")
            .arg(dir.path().join("keys").join(NODE_PUB_FILE));
        if armor {
            cmd.arg("-a");
        }
        run(cmd.arg("-o").arg(&ct).arg(&plain));
        let out = dir.path().join(format!("out-{armor}"));
        let n = decrypt_file(&ct, &out, fixture().identity()).unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(std::fs::read(&out).unwrap(), data);
        assert_eq!(mode(&out), 0o600);
    }
}

#[test]
fn stock_age_reads_node_key_file() {
    // The node's private key file is also a valid `age -d -i` identity.
    let age = age_cli();
    let dir = key_dir();
    let keys = dir.path().join("keys");
    let ct = dir.path().join("x.age");
    let mut f = std::fs::File::create(&ct).unwrap();
    encrypt_stream(
        &b"to the node"[..],
        &mut f,
        &[fixture().recipient().to_string()],
    )
    .unwrap();
    let out = run(Command::new(age)
        .arg("-d")
        .arg("-i")
        .arg(keys.join(NODE_KEY_FILE))
        .arg(&ct));
    assert_eq!(out.stdout, b"to the node");
}

#[test]
fn node_reencrypts_for_stock_age_to_ssh_rsa_and_x25519() {
    let age = age_cli();
    let dir = key_dir();
    // A requester with an X25519 key made by age-keygen...
    let x_key = dir.path().join("requester.txt");
    run(Command::new("age-keygen").arg("-o").arg(&x_key));
    let x_pub = run(Command::new("age-keygen").arg("-y").arg(&x_key)).stdout;
    let x_pub = String::from_utf8(x_pub).unwrap().trim().to_string();
    // ...and one with an ssh-rsa key (PKCS#1 PEM, as a node key).
    let rsa = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let rsa_path = dir.path().join("requester_rsa");
    let pem =
        rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_pem(&rsa, rsa::pkcs1::LineEnding::LF).unwrap();
    std::fs::write(&rsa_path, pem.as_bytes()).unwrap();
    std::fs::set_permissions(&rsa_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let rsa_pub = age::ssh::Recipient::try_from(
        age::ssh::Identity::from_buffer(pem.as_bytes(), None).unwrap(),
    )
    .unwrap()
    .to_string();

    let data = sample(200_000);
    let mut contributed = Vec::new();
    encrypt_stream(
        &data[..],
        &mut contributed,
        &[fixture().recipient().to_string()],
    )
    .unwrap();

    for (recipient, identity_file) in [(&x_pub, &x_key), (&rsa_pub, &rsa_path)] {
        let out_path = dir.path().join("export.age");
        let mut out = std::fs::File::create(&out_path).unwrap();
        let n = reencrypt_stream(
            &contributed[..],
            &mut out,
            fixture().identity(),
            std::slice::from_ref(recipient),
        )
        .unwrap();
        assert_eq!(n, data.len() as u64);
        let dec = run(Command::new(age)
            .arg("-d")
            .arg("-i")
            .arg(identity_file)
            .arg(&out_path));
        assert_eq!(dec.stdout, data, "recipient {recipient}");
        // The node itself can no longer read the export.
        let err = decrypt_stream(
            std::fs::File::open(&out_path).unwrap(),
            std::io::sink(),
            fixture().identity(),
        )
        .unwrap_err();
        assert!(matches!(err, VaultError::WrongKey { .. }), "{err}");
    }
}

// ---------------------------------------------------------------- bad input

/// Encrypts `data` to the node with stock age, so the tamper tests work on
/// what contributors really send.
fn contributed_file(dir: &Path, data: &[u8]) -> Vec<u8> {
    let plain = dir.join("plain.bin");
    std::fs::write(&plain, data).unwrap();
    let ct = dir.join("plain.age");
    run(Command::new(age_cli())
        .arg("-R")
        .arg(dir.join("keys").join(NODE_PUB_FILE))
        .arg("-o")
        .arg(&ct)
        .arg(&plain));
    std::fs::remove_file(&plain).unwrap();
    std::fs::read(&ct).unwrap()
}

fn header_len(ct: &[u8]) -> usize {
    let mac = ct.windows(4).position(|w| w == b"\n---").unwrap() + 1;
    mac + ct[mac..].iter().position(|&b| b == b'\n').unwrap() + 1
}

#[test]
fn bad_ciphertexts_fail_clearly_and_leave_no_output() {
    let dir = key_dir();
    let data = sample(200_000); // four chunks
    let good = contributed_file(dir.path(), &data);
    let hl = header_len(&good);
    let other_rsa = {
        // A second RSA identity: the "wrong key".
        let rsa = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let pem = rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_pem(&rsa, rsa::pkcs1::LineEnding::LF)
            .unwrap();
        age::ssh::Identity::from_buffer(pem.as_bytes(), None).unwrap()
    };

    let mut flip_header = good.clone();
    flip_header[hl - 10] ^= 0x01; // inside the header MAC
    let mut flip_stanza = good.clone();
    flip_stanza[40] ^= 0x01; // inside the recipient stanza
    let mut flip_payload = good.clone();
    flip_payload[hl + 16 + 70_000] ^= 0x01;
    let cases: Vec<(&str, Vec<u8>, bool, &str)> = vec![
        (
            "truncated mid-chunk",
            good[..good.len() - 1000].to_vec(),
            false,
            "payload failed",
        ),
        (
            "truncated at chunk",
            good[..hl + 16 + 65_552].to_vec(),
            false,
            "truncated",
        ),
        (
            "truncated header",
            good[..hl - 20].to_vec(),
            false,
            "header is incomplete",
        ),
        (
            "flipped header byte",
            flip_header,
            false,
            "header is corrupt",
        ),
        ("flipped stanza byte", flip_stanza, false, ""),
        (
            "flipped payload byte",
            flip_payload,
            false,
            "payload failed",
        ),
        (
            "wrong key",
            good.clone(),
            true,
            "not encrypted to this node",
        ),
        (
            "non-age file",
            b"name,age\nalice,30\n".to_vec(),
            false,
            "not an age file",
        ),
        ("empty file", Vec::new(), false, "empty input"),
    ];
    for (name, bytes, use_other, needle) in cases {
        let work = tempfile::tempdir().unwrap();
        let input = work.path().join("in.age");
        std::fs::write(&input, &bytes).unwrap();
        let output = work.path().join("out.bin");
        let identity: &dyn age::Identity = if use_other {
            &other_rsa
        } else {
            fixture().identity()
        };
        let err = decrypt_file(&input, &output, identity).expect_err(name);
        let msg = err.to_string();
        assert!(msg.contains(needle), "{name}: {msg}");
        assert!(
            msg.contains("in.age"),
            "{name}: message names the file: {msg}"
        );
        assert_eq!(
            files_under(work.path()),
            vec![input.clone()],
            "{name}: partial output left"
        );
    }
}

#[test]
fn encrypt_file_is_atomic_and_refuses_bad_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::write(&input, b"x").unwrap();
    let out = dir.path().join("out.age");
    let err = encrypt_file(&input, &out, &["not-a-key".into()]).unwrap_err();
    assert!(matches!(err, VaultError::Recipient { .. }), "{err}");
    let err = encrypt_file(&input, &out, &[]).unwrap_err();
    assert!(matches!(err, VaultError::NoRecipients), "{err}");
    let err = encrypt_file(&dir.path().join("missing"), &out, &[x25519().1]).unwrap_err();
    assert!(matches!(err, VaultError::Io { .. }), "{err}");
    assert_eq!(files_under(dir.path()), vec![input.clone()]);
    let (id, r) = x25519();
    encrypt_file(&input, &out, &[r]).unwrap();
    let mut pt = Vec::new();
    decrypt_stream(std::fs::File::open(&out).unwrap(), &mut pt, &id).unwrap();
    assert_eq!(pt, b"x");
}

// ---------------------------------------------------------------- store

fn store_in(dir: &Path) -> (DatasetStore, PathBuf) {
    let root = dir.join("store");
    let store = DatasetStore::open(&format!("file://{}", root.display())).unwrap();
    (store, root)
}

#[tokio::test]
async fn store_names_objects_by_hash_and_verifies_reads() {
    let dir = key_dir();
    let (store, root) = store_in(dir.path());
    let data = sample(150_000);
    let obj = store
        .put_encrypted(
            std::io::Cursor::new(data.clone()),
            &[fixture().recipient().to_string()],
            "data.csv",
        )
        .await
        .unwrap();
    let file = root.join(format!("{}.age", obj.sha256));
    assert_eq!(
        files_under(&root),
        vec![file.clone()],
        "no staging leftovers"
    );
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(collective_vault::sha256_hex(&bytes), obj.sha256);
    assert_eq!(bytes.len() as u64, obj.size);
    assert_eq!(obj.url, format!("file://{}", file.display()));
    // Stock age decrypts the stored object with the node key.
    let out = run(Command::new(age_cli())
        .arg("-d")
        .arg("-i")
        .arg(dir.path().join("keys").join(NODE_KEY_FILE))
        .arg(&file));
    assert_eq!(out.stdout, data);

    // Same plaintext twice: a new object (fresh file key), both kept.
    let again = store
        .put_encrypted(
            std::io::Cursor::new(data.clone()),
            &[fixture().recipient().to_string()],
            "data.csv",
        )
        .await
        .unwrap();
    assert_ne!(again.sha256, obj.sha256);
    assert_eq!(store.list().await.unwrap().len(), 2);

    // Replace the object by another valid age file: the name no longer
    // matches the content, and every read says so.
    let other = std::fs::read(root.join(format!("{}.age", again.sha256))).unwrap();
    std::fs::write(&file, &other).unwrap();
    let err = store
        .read_verified(&obj.sha256, Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::HashMismatch { .. }), "{err}");
    let base = tempfile::tempdir().unwrap();
    let err = decrypt_datasets_into_dir(
        base.path(),
        &store,
        &[again.sha256.clone(), obj.sha256.clone()],
        fixture().shared_identity(),
        &HashSet::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, VaultError::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&obj.sha256));
    assert_eq!(
        std::fs::read_dir(base.path()).unwrap().count(),
        0,
        "the private directory is gone, with the dataset decrypted before the failure"
    );
    // A corrupted byte (not a valid substitute) is also a hash mismatch.
    let mut corrupt = bytes.clone();
    let last = corrupt.len() - 5;
    corrupt[last] ^= 0x80;
    std::fs::write(&file, &corrupt).unwrap();
    let err = store
        .reencrypt(
            &obj.sha256,
            fixture().shared_identity(),
            &[x25519().1],
            Vec::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::HashMismatch { .. }), "{err}");

    let missing = "0".repeat(64);
    let err = store.read_verified(&missing, Vec::new()).await.unwrap_err();
    assert!(matches!(err, VaultError::NotFound { .. }), "{err}");
    let err = store
        .read_verified("../../etc/passwd", Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::BadObjectName(_)), "{err}");
}

#[tokio::test]
async fn store_registers_stock_age_ciphertext_and_refuses_non_age() {
    let dir = key_dir();
    let (store, root) = store_in(dir.path());
    let data = sample(10_000);
    let ct = contributed_file(dir.path(), &data);
    let obj = store
        .put_ciphertext(std::io::Cursor::new(ct.clone()), "plain.age")
        .await
        .unwrap();
    assert_eq!(obj.sha256, collective_vault::sha256_hex(&ct));
    assert_eq!(obj.size, ct.len() as u64);
    for (bytes, needle) in [
        (Vec::new(), "empty input"),
        (b"PK\x03\x04 a zip file".to_vec(), "not an age file"),
        (b"age-encryption.org/v1\n-> X25519\n".to_vec(), "age header"),
        (
            b"age-encryption.org/v1\n-> X25519 !!\n\n--- AAAA\npayload\n".to_vec(),
            "age header",
        ),
    ] {
        let err = store
            .put_ciphertext(std::io::Cursor::new(bytes), "upload.bin")
            .await
            .unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
        assert!(err.to_string().contains("upload.bin"), "{err}");
    }
    assert_eq!(
        files_under(&root),
        vec![root.join(format!("{}.age", obj.sha256))],
        "refused uploads leave nothing behind"
    );
}

#[tokio::test]
async fn datasets_decrypt_into_private_dir_skipping_withdrawn() {
    let dir = key_dir();
    let (store, _root) = store_in(dir.path());
    let r = vec![fixture().recipient().to_string()];
    let a = store
        .put_encrypted(std::io::Cursor::new(b"alpha".to_vec()), &r, "a")
        .await
        .unwrap();
    let b = store
        .put_encrypted(std::io::Cursor::new(b"bravo".to_vec()), &r, "b")
        .await
        .unwrap();
    let c = store
        .put_encrypted(std::io::Cursor::new(b"charlie".to_vec()), &r, "c")
        .await
        .unwrap();
    let excluded: HashSet<String> = [b.sha256.clone()].into();
    let plain = collective_vault::decrypt_datasets_into(
        &store,
        &[a.sha256.clone(), b.sha256.clone(), c.sha256.clone()],
        fixture().shared_identity(),
        &excluded,
    )
    .await
    .unwrap();
    let path = plain.path().to_path_buf();
    assert_eq!(mode(&path), 0o700);
    if Path::new("/dev/shm").is_dir() {
        assert!(path.starts_with("/dev/shm"), "{}", path.display());
        assert!(plain.on_tmpfs());
    }
    assert_eq!(plain.skipped(), std::slice::from_ref(&b.sha256));
    let names: Vec<_> = plain.files().iter().map(|f| f.sha256.clone()).collect();
    assert_eq!(names, vec![a.sha256.clone(), c.sha256.clone()]);
    assert_eq!(std::fs::read(path.join(&a.sha256)).unwrap(), b"alpha");
    assert_eq!(std::fs::read(path.join(&c.sha256)).unwrap(), b"charlie");
    assert_eq!(mode(&path.join(&a.sha256)), 0o600);
    assert!(!path.join(&b.sha256).exists());
    assert_eq!(files_under(&path).len(), 2);
    plain.close().unwrap();
    assert!(!path.exists());

    // Re-encrypt a stored dataset for a requester.
    let (id, rr) = x25519();
    let (out, n) = store
        .reencrypt(&c.sha256, fixture().shared_identity(), &[rr], Vec::new())
        .await
        .unwrap();
    assert_eq!(n, 7);
    let mut pt = Vec::new();
    decrypt_stream(&out[..], &mut pt, &id).unwrap();
    assert_eq!(pt, b"charlie");

    // ... and into an outbox file, atomically.
    let outbox = tempfile::tempdir().unwrap();
    let export = outbox.path().join("export.age");
    let (id, rr) = x25519();
    store
        .reencrypt_to_file(&a.sha256, fixture().shared_identity(), &[rr], &export)
        .await
        .unwrap();
    let (digest, size) = collective_vault::sha256_file(&export).unwrap();
    assert_eq!(size, std::fs::metadata(&export).unwrap().len());
    assert_eq!(
        digest,
        collective_vault::sha256_hex(&std::fs::read(&export).unwrap())
    );
    let mut pt = Vec::new();
    decrypt_stream(std::fs::File::open(&export).unwrap(), &mut pt, &id).unwrap();
    assert_eq!(pt, b"alpha");
    // A bad recipient fails before reading and leaves no file.
    let err = store
        .reencrypt_to_file(
            &a.sha256,
            fixture().shared_identity(),
            &["age1bogus".into()],
            &outbox.path().join("bad.age"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::Recipient { .. }), "{err}");
    assert_eq!(files_under(outbox.path()), vec![export]);
}

// ---------------------------------------------------------------- memory

/// A deterministic generated stream of `len` bytes (no file, no buffer).
struct Gen {
    left: u64,
    state: u64,
}

impl Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for b in &mut buf[..n] {
            self.state = self.state.wrapping_mul(6364136223846793005).wrapping_add(1);
            *b = (self.state >> 56) as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

struct Count(u64);
impl Write for Count {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Encrypts a generated stream through a pipe into a decrypting reader and
/// re-encrypting writer: the full node path (encrypt, decrypt, re-encrypt)
/// at once. Runs only in a child process started by
/// `memory_is_flat_in_stream_size`, which reads its peak RSS.
#[test]
#[ignore = "run by memory_is_flat_in_stream_size in a child process"]
fn memory_child() {
    let Ok(len) = std::env::var("VAULT_MEM_CHILD_BYTES") else {
        return;
    };
    let len: u64 = len.parse().unwrap();
    let (node, node_r) = x25519();
    let (_, requester_r) = x25519();
    let (reader, writer) = std::io::pipe().unwrap();
    let producer = std::thread::spawn(move || {
        encrypt_stream(
            Gen {
                left: len,
                state: 1,
            },
            writer,
            &[node_r],
        )
        .unwrap()
    });
    let mut sink = Count(0);
    let n = reencrypt_stream(reader, &mut sink, &node, &[requester_r]).unwrap();
    assert_eq!(producer.join().unwrap(), len);
    assert_eq!(n, len);
    assert!(sink.0 > len);
    println!("VMHWM_KIB={}", vm_hwm_kib());
}

fn child_peak_kib(bytes: u64) -> u64 {
    let out = run(Command::new(std::env::current_exe().unwrap())
        .args([
            "memory_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("VAULT_MEM_CHILD_BYTES", bytes.to_string()));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.split_once("VMHWM_KIB=").map(|(_, v)| v))
        .unwrap_or_else(|| panic!("child printed no VmHWM: {text}"));
    line.trim().parse().unwrap()
}

#[test]
fn memory_is_flat_in_stream_size() {
    let small = child_peak_kib(1 << 20);
    let large = child_peak_kib(1 << 30);
    eprintln!("peak RSS: 1 MiB stream {small} KiB, 1 GiB stream {large} KiB");
    assert!(
        large < small + 16 * 1024,
        "peak RSS grew with input size: 1 MiB -> {small} KiB, 1 GiB -> {large} KiB"
    );
    assert!(
        large < 128 * 1024,
        "peak RSS {large} KiB for a 1 GiB stream"
    );
}
