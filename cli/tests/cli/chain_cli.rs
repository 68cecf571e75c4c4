//! `collective dev` and `collective proposal` against a real anvil: the whole
//! Governor path through the binary, and the one-line errors for bad input.

use std::path::Path;
use std::process::Output;

use collective_chain::devnet::{self, AnvilOptions, AnvilProcess, GovernanceParams};
use collective_chain::{parse_tree_sha256, ChainClient};

use crate::support::{self, dev_up, require_anvil};

fn run(dir: &Path, args: &[&str]) -> Output {
    support::run(dir, args)
}

/// `--json` and `args`, asserting success.
#[track_caller]
fn ok_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    support::ok_json(run(dir, &all), &format!("{args:?}"))
}

/// Asserts a clean one-line failure of `args` (see [`support::fails`]).
#[track_caller]
fn fails(dir: &Path, args: &[&str], code: i32, needle: &str) {
    support::fails(&run(dir, args), code, needle);
}

const T256: &str = "5c2f0e8b9a7d6c5b4a3928171615141312111009080706050403020100ffeedd";
const T1: &str = "0123456789abcdef0123456789abcdef01234567";

#[tokio::test]
async fn governor_path_via_cli() {
    require_anvil();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (guard, up) = dev_up(d);
    let devnet_yaml = guard.0.clone();
    let pid = up["devnet"]["anvil"]["pid"]
        .as_u64()
        .expect("anvil pid recorded");
    assert_eq!(up["devnet"]["chain_id"], 31337);
    assert!(devnet_yaml.exists());

    let sub = ok_json(
        d,
        &[
            "proposal",
            "submit",
            "--devnet",
            "devnet.yaml",
            "--tree-sha256",
            T256,
            "--tree-sha1",
            T1,
            "--recipient",
            "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq",
            "--expires",
            "+30d",
            "--uri",
            "https://example.invalid/pr/7",
            "--description",
            "Approve PR 7",
        ],
    );
    let id = sub["id"].as_str().expect("decimal id").to_string();
    assert_eq!(sub["state"], "pending");

    // Queueing before the vote is refused with a clear message.
    fails(
        d,
        &["proposal", "execute", &id, "--devnet", "devnet.yaml"],
        1,
        "only a queued proposal",
    );

    let v = ok_json(d, &["proposal", "vote", &id, "--devnet", "devnet.yaml"]);
    assert_eq!(v["support"], "for");
    ok_json(
        d,
        &[
            "proposal",
            "vote",
            &id,
            "--devnet",
            "devnet.yaml",
            "--as",
            "voter2",
            "--support",
            "against",
        ],
    );
    // Voting twice is refused by the Governor.
    fails(
        d,
        &["proposal", "vote", &id, "--devnet", "devnet.yaml"],
        1,
        "GovernorAlreadyCastVote",
    );

    let q = ok_json(d, &["proposal", "queue", &id, "--devnet", "devnet.yaml"]);
    assert!(q["eta"].as_u64().unwrap() > 0);
    let x = ok_json(d, &["proposal", "execute", &id, "--devnet", "devnet.yaml"]);
    assert_eq!(x["state"], "executed");

    let s = ok_json(d, &["proposal", "status", &id, "--devnet", "devnet.yaml"]);
    assert_eq!(s["state"], "executed");
    assert_eq!(s["description"], "Approve PR 7");
    assert_eq!(s["for_votes"], "400000000000000000000000");
    let human = run(d, &["proposal", "status", &id, "--devnet", "devnet.yaml"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("state: executed") && text.contains(&format!("approve tree sha256 0x{T256}")),
        "{text}"
    );

    // The chain agrees: the tree is approved.
    let file = devnet::DevnetFile::load(&devnet_yaml).unwrap();
    let client = ChainClient::connect_deployment(&file.deployment, None)
        .await
        .unwrap();
    let a = client
        .approval(parse_tree_sha256(T256).unwrap(), 0)
        .await
        .unwrap()
        .expect("approved on chain");
    assert_eq!(a.uri, "https://example.invalid/pr/7");
    assert!(a.expires_at > 0);

    // A second `dev up` on the same file is refused while the devnet runs.
    let port = devnet::free_port().unwrap().to_string();
    fails(
        d,
        &["dev", "up", "--port", &port, "--out", "devnet.yaml"],
        64,
        "running devnet",
    );

    let down = ok_json(d, &["dev", "down", "--devnet", "devnet.yaml"]);
    assert_eq!(down["stopped"], true);
    assert!(!devnet_yaml.exists());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !devnet::anvil_running(pid as u32),
        "anvil {pid} still running after dev down"
    );
    fails(
        d,
        &["dev", "down", "--devnet", "devnet.yaml"],
        64,
        "does not exist",
    );
}

#[tokio::test]
async fn bad_input_gives_one_line_errors() {
    require_anvil();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let anvil = AnvilProcess::spawn(&AnvilOptions::default()).await.unwrap();
    let file = devnet::deploy_demo(anvil.url(), GovernanceParams::default())
        .await
        .unwrap();
    file.save(&d.join("devnet.yaml")).unwrap();
    let gov = file.deployment.addresses.governor.to_string();
    let code = file.deployment.addresses.code_registry.to_string();
    let url = anvil.url().to_string();
    let dead = format!("http://127.0.0.1:{}", devnet::free_port().unwrap());

    // Malformed tree ids and other local input: usage errors, before any network.
    let submit = |t256: &str, t1: &str| {
        vec![
            "proposal",
            "submit",
            "--devnet",
            "devnet.yaml",
            "--tree-sha256",
            t256,
            "--tree-sha1",
            t1,
        ]
        .into_iter()
        .map(String::from)
        .chain(["--description".to_string(), "x".to_string()])
        .collect::<Vec<_>>()
    };
    let short = submit("abc", T1);
    fails(
        d,
        &short.iter().map(String::as_str).collect::<Vec<_>>(),
        64,
        "invalid tree sha256",
    );
    let nonhex = submit(&"zz".repeat(32), T1);
    fails(
        d,
        &nonhex.iter().map(String::as_str).collect::<Vec<_>>(),
        64,
        "not hexadecimal",
    );
    let swapped = submit(T1, T256);
    fails(
        d,
        &swapped.iter().map(String::as_str).collect::<Vec<_>>(),
        64,
        "invalid tree sha256",
    );
    fails(
        d,
        &[
            "proposal",
            "submit",
            "--devnet",
            "devnet.yaml",
            "--tree-sha256",
            T256,
            "--tree-sha1",
            T1,
            "--expires",
            "soon",
            "--description",
            "x",
        ],
        64,
        "invalid expiry",
    );
    fails(
        d,
        &["proposal", "status", "12x", "--devnet", "devnet.yaml"],
        64,
        "invalid proposal id",
    );
    fails(d, &["proposal", "status", "1"], 64, "no chain given");
    fails(
        d,
        &["proposal", "status", "1", "--devnet", "missing.yaml"],
        64,
        "missing.yaml",
    );
    fails(
        d,
        &[
            "proposal",
            "vote",
            "1",
            "--devnet",
            "devnet.yaml",
            "--as",
            "mallory",
        ],
        64,
        "dev account",
    );
    fails(
        d,
        &[
            "proposal",
            "vote",
            "1",
            "--devnet",
            "devnet.yaml",
            "--key",
            "0x12",
        ],
        64,
        "private key",
    );

    // Unknown proposal id.
    fails(
        d,
        &["proposal", "status", "123456789", "--devnet", "devnet.yaml"],
        1,
        "unknown proposal id 123456789",
    );
    fails(
        d,
        &["proposal", "vote", "123456789", "--devnet", "devnet.yaml"],
        1,
        "unknown proposal id 123456789",
    );
    fails(
        d,
        &[
            "proposal",
            "execute",
            "0x75bcd15",
            "--devnet",
            "devnet.yaml",
        ],
        1,
        "unknown proposal id 123456789",
    );

    // Wrong chain id: from the flag, and from a devnet file.
    fails(
        d,
        &[
            "proposal",
            "status",
            "1",
            "--rpc",
            &url,
            "--governor",
            &gov,
            "--chain-id",
            "5",
        ],
        64,
        "serves chain id 31337, expected 5",
    );
    let text = std::fs::read_to_string(d.join("devnet.yaml"))
        .unwrap()
        .replace("chain_id: 31337", "chain_id: 1");
    std::fs::write(d.join("wrong.yaml"), text).unwrap();
    fails(
        d,
        &["proposal", "status", "1", "--devnet", "wrong.yaml"],
        64,
        "expected 1",
    );

    // Unreachable RPC, and an address that is no Governor.
    fails(
        d,
        &[
            "proposal",
            "status",
            "1",
            "--rpc",
            &dead,
            "--governor",
            &gov,
        ],
        1,
        "unreachable",
    );
    fails(
        d,
        &["dev", "up", "--rpc", &dead, "--out", "x.yaml"],
        1,
        "unreachable",
    );
    fails(
        d,
        &[
            "proposal",
            "status",
            "1",
            "--rpc",
            "ftp://x",
            "--governor",
            &gov,
        ],
        64,
        "invalid RPC URL",
    );
    fails(
        d,
        &[
            "proposal",
            "status",
            "1",
            "--rpc",
            &url,
            "--governor",
            &code,
        ],
        1,
        "CollectiveGovernor",
    );
    fails(
        d,
        &[
            "proposal",
            "status",
            "1",
            "--rpc",
            &url,
            "--governor",
            "0x1111111111111111111111111111111111111111",
        ],
        64,
        "no CollectiveGovernor contract",
    );

    // Without --devnet, submit needs a key and the registry address.
    fails(
        d,
        &[
            "proposal",
            "submit",
            "--rpc",
            &url,
            "--governor",
            &gov,
            "--tree-sha256",
            T256,
            "--tree-sha1",
            T1,
            "--description",
            "x",
        ],
        64,
        "--code-registry",
    );
    fails(
        d,
        &[
            "proposal",
            "submit",
            "--rpc",
            &url,
            "--governor",
            &gov,
            "--code-registry",
            &code,
            "--tree-sha256",
            T256,
            "--tree-sha1",
            T1,
            "--description",
            "x",
        ],
        64,
        "needs a signing key",
    );

    // Explicit flags with a key from the environment work end to end for submit.
    let out = support::cmd(d)
        .args([
            "--json",
            "proposal",
            "submit",
            "--rpc",
            &url,
            "--governor",
            &gov,
            "--code-registry",
            &code,
            "--chain-id",
            "31337",
            "--tree-sha256",
            T256,
            "--tree-sha1",
            T1,
            "--description",
            "via flags",
        ])
        .current_dir(d)
        .env(
            "COLLECTIVE_KEY",
            &file.account("requester").unwrap().private_key,
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "pending");

    // Usage errors from clap itself exit 64 too; --help exits 0.
    assert_eq!(run(d, &["proposal", "vote"]).status.code(), Some(64));
    assert_eq!(run(d, &["proposal", "--help"]).status.code(), Some(0));
    assert_eq!(run(d, &["dev", "up", "--help"]).status.code(), Some(0));
}
