//! `collective proposal submit --pr URL` through the built binary, against
//! collective-github's fake GitHub REST API, a local bare repository holding
//! `refs/pull/N/head` (as GitHub's does) and a real anvil devnet.
//!
//! The expected tree ids are computed independently with the git CLI: the
//! merge with `git merge-tree --write-tree`, its sha256 id by re-adding the
//! merged files to a fresh `--object-format=sha256` repository.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use collective_chain::alloy::sol_types::SolCall;
use collective_chain::bindings::CodeRegistry::approveCall;
use collective_chain::devnet::DevnetFile;
use collective_chain::{parse_tree_sha256, ChainClient};
use collective_github::fake::{FakeGithub, FakePull};

use crate::support::{self, dev_up, git, ok_json, require_anvil};

const OWNER: &str = "acme-health";
const REPO: &str = "collective-jobs";
const TOKEN: &str = "ghp_testTOKENforTheFake0123456789abcdefgh";
const RECIPIENT: &str = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq";

fn write(dir: &Path, rel: &str, content: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// The remote: `main` moved on after the PRs branched; PR 7 adds a job
/// (merges cleanly), PR 8 edits the README that `main` also edited (conflicts).
struct Remote {
    bare: PathBuf,
    base: String,
    pr7_head: String,
    pr8_head: String,
    /// Expected merge tree of PR 7 into main: (sha1, sha256).
    merge7: (String, String),
}

fn remote(root: &Path) -> Remote {
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q"]);
    write(&work, "README.md", "# collective jobs\n");
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "init"]);
    let base = git(&work, &["rev-parse", "HEAD"]);

    git(&work, &["checkout", "-q", "-b", "pr7"]);
    write(
        &work,
        "jobs/train-model/job.yaml",
        "kind: batch\ncommand: [\"/usr/bin/python3\", \"/job/jobs/train-model/train.py\"]\n",
    );
    write(&work, "jobs/train-model/train.py", "print('weights')\n");
    std::fs::set_permissions(
        work.join("jobs/train-model/train.py"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "train a model"]);
    let pr7_head = git(&work, &["rev-parse", "HEAD"]);

    git(&work, &["checkout", "-q", "-b", "pr8", &base]);
    write(&work, "README.md", "# mine\n");
    git(&work, &["commit", "-q", "-am", "edit readme"]);
    let pr8_head = git(&work, &["rev-parse", "HEAD"]);

    git(&work, &["checkout", "-q", "main"]);
    write(&work, "README.md", "# collective jobs\n\ntheirs\n");
    write(&work, "NOTES.md", "notes\n");
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "main moves"]);

    let merged_sha1 = git(&work, &["merge-tree", "--write-tree", "main", "pr7"]);
    assert_ne!(
        merged_sha1,
        git(&work, &["rev-parse", "pr7^{tree}"]),
        "the merge tree must differ from the PR head's tree for this test to mean anything"
    );
    // sha256 id of the same tree: its files re-added in a sha256 repository.
    let files = root.join("merged");
    std::fs::create_dir_all(&files).unwrap();
    let archive = Command::new("git")
        .args(["archive", "--format=tar", &merged_sha1])
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(archive.status.success());
    let tar = root.join("merged.tar");
    std::fs::write(&tar, &archive.stdout).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .current_dir(&files)
        .status()
        .unwrap();
    assert!(st.success());
    git(&files, &["init", "-q", "--object-format=sha256"]);
    git(&files, &["add", "-A"]);
    let merged_sha256 = git(&files, &["write-tree"]);
    assert_eq!(merged_sha256.len(), 64);

    let bare = root.join("remote.git");
    git(root, &["init", "-q", "--bare", bare.to_str().unwrap()]);
    git(
        &work,
        &["push", "-q", bare.to_str().unwrap(), "main:refs/heads/main"],
    );
    git(
        &work,
        &["push", "-q", bare.to_str().unwrap(), "pr7:refs/pull/7/head"],
    );
    git(
        &work,
        &["push", "-q", bare.to_str().unwrap(), "pr8:refs/pull/8/head"],
    );
    Remote {
        bare,
        base,
        pr7_head,
        pr8_head,
        merge7: (merged_sha1, merged_sha256),
    }
}

fn pull(number: u64, title: &str, body: &str, head: &str, base: &str) -> FakePull {
    FakePull {
        number,
        title: title.into(),
        body: body.into(),
        head_sha: head.into(),
        head_ref: format!("requester/pr-{number}"),
        base_ref: "main".into(),
        base_sha: base.into(),
        author: "requester-ann".into(),
    }
}

/// Runs the binary off the async runtime (the fake GitHub answers meanwhile).
async fn run(dir: &Path, args: &[&str], token: Option<&str>) -> Output {
    let mut c = support::cmd(dir);
    c.args(args);
    if let Some(t) = token {
        c.env("GITHUB_TOKEN", t);
    }
    tokio::task::spawn_blocking(move || c.output().expect("collective runs"))
        .await
        .unwrap()
}

/// A clean one-line refusal (see [`support::fails`]) that does not echo the token.
#[track_caller]
fn fails(out: &Output, code: i32, needle: &str) {
    support::fails(out, code, needle);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains(TOKEN), "token leaked: {err}");
}

/// The approve calls of a proposal, from `collective --json proposal status`.
fn approve_calls(status: &serde_json::Value) -> Vec<approveCall> {
    status["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| {
            let hex = a["calldata"].as_str().unwrap().trim_start_matches("0x");
            approveCall::abi_decode(&hex::decode(hex).unwrap()).expect("an approve call")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_from_pr_approves_its_merge_tree() {
    require_anvil();
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let r = remote(d);
    let clone_url = format!("file://{}", r.bare.display());
    let fake = FakeGithub::start(OWNER, REPO, TOKEN, "collective-bot", &clone_url).await;
    let title = "Train a risk model";
    fake.open_pull(pull(
        7,
        title,
        &format!("What: logistic regression.\n\nRecipient: `{RECIPIENT}`\n"),
        &r.pr7_head,
        &r.base,
    ));
    fake.open_pull(pull(8, "Edit readme", "", &r.pr8_head, &r.base));
    let api = fake.api_url();
    let url7 = fake.pr_url(7);
    let mirror = d.join("mirror.git");
    let mirror_s = mirror.to_str().unwrap().to_string();

    let dir = d.to_path_buf();
    let (guard, _) = tokio::task::spawn_blocking(move || dev_up(&dir))
        .await
        .unwrap();
    let devnet_yaml = guard.0.clone();
    let pr_args = |url: &str| -> Vec<String> {
        [
            "--json",
            "proposal",
            "submit",
            "--devnet",
            "devnet.yaml",
            "--pr",
            url,
            "--api-url",
            &api,
            "--mirror-dir",
            &mirror_s,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    // Everything from the PR.
    let args = pr_args(&url7);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let sub = ok_json(run(d, &a, Some(TOKEN)).await, "submit --pr");
    let (sha1, sha256) = &r.merge7;
    assert_eq!(sub["request"]["tree_sha1"], format!("0x{sha1}"));
    assert_eq!(sub["request"]["tree_sha256"], format!("0x{sha256}"));
    assert_eq!(sub["description"], format!("{title} (PR #7: {url7})"));
    assert_eq!(sub["request"]["recipients"], serde_json::json!([RECIPIENT]));
    assert_eq!(sub["request"]["uri"], url7);
    assert_eq!(sub["pr"]["head_sha"], r.pr7_head);
    assert_eq!(sub["state"], "pending");
    let id = sub["id"].as_str().unwrap().to_string();
    // The token went to the fake, and only over authorized requests.
    let reqs = fake.requests();
    assert!(
        !reqs.is_empty() && reqs.iter().all(|q| q.authorized),
        "{reqs:?}"
    );

    // On chain, the proposal's only action approves exactly the merge tree.
    let status = ok_json(
        run(
            d,
            &[
                "--json",
                "proposal",
                "status",
                &id,
                "--devnet",
                "devnet.yaml",
            ],
            None,
        )
        .await,
        "status",
    );
    let file = DevnetFile::load(&devnet_yaml).unwrap();
    assert_eq!(status["actions"].as_array().unwrap().len(), 1);
    assert_eq!(
        status["actions"][0]["target"]
            .as_str()
            .unwrap()
            .to_lowercase(),
        format!("{:#x}", file.deployment.addresses.code_registry)
    );
    let calls = approve_calls(&status);
    assert_eq!(hex::encode(calls[0].treeSha1), *sha1);
    assert_eq!(hex::encode(calls[0].treeSha256), *sha256);
    assert_eq!(calls[0].recipients, vec![RECIPIENT.to_string()]);
    assert_eq!(calls[0].uri, url7);
    assert_eq!(calls[0].expiresAt, 0);
    assert_eq!(status["description"], sub["description"]);

    // Through the DAO: the merge tree is approved on chain.
    for step in ["vote", "queue", "execute"] {
        ok_json(
            run(
                d,
                &["--json", "proposal", step, &id, "--devnet", "devnet.yaml"],
                None,
            )
            .await,
            step,
        );
    }
    let client = ChainClient::connect_deployment(&file.deployment, None)
        .await
        .unwrap();
    let approval = client
        .approval(parse_tree_sha256(sha256).unwrap(), 0)
        .await
        .unwrap()
        .expect("the PR's merge tree is approved");
    assert_eq!(hex::encode(approval.tree_sha1), *sha1);
    assert_eq!(approval.recipients, vec![RECIPIENT.to_string()]);

    // Explicit flags override the PR's values; the tree still comes from the PR.
    let mut args = pr_args(&url7);
    args.extend(strs(&[
        "--description",
        "Custom wording",
        "--recipient",
        "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj",
        "--uri",
        "https://example.org/x",
        "--expires",
        "+7d",
    ]));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let sub2 = ok_json(run(d, &a, Some(TOKEN)).await, "submit --pr with overrides");
    assert_eq!(sub2["description"], "Custom wording");
    assert_eq!(
        sub2["request"]["recipients"],
        serde_json::json!(["age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"])
    );
    assert_eq!(sub2["request"]["uri"], "https://example.org/x");
    assert_eq!(sub2["request"]["tree_sha256"], format!("0x{sha256}"));
    assert!(sub2["request"]["expires_at"].as_u64().unwrap() > 0);
    // ... including the tree ids (a warning is logged, the flags win).
    let other256 = "5c2f0e8b9a7d6c5b4a3928171615141312111009080706050403020100ffeedd";
    let other1 = "0123456789abcdef0123456789abcdef01234567";
    let mut args = pr_args(&url7);
    args.extend(strs(&[
        "--tree-sha256",
        other256,
        "--tree-sha1",
        other1,
        "--description",
        "Explicit tree",
    ]));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(d, &a, Some(TOKEN)).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let sub3 = ok_json(out, "submit --pr with explicit tree");
    assert_eq!(sub3["request"]["tree_sha256"], format!("0x{other256}"));
    assert_eq!(sub3["request"]["tree_sha1"], format!("0x{other1}"));
    assert!(err.contains("overrides the PR's merge tree"), "{err}");

    // Failures, each clear and with the right exit code.
    // A PR that conflicts with its base: no tree to approve (refusal).
    let args = pr_args(&fake.pr_url(8));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    fails(&run(d, &a, Some(TOKEN)).await, 2, "README.md");
    // Unknown PR.
    let args = pr_args(&fake.pr_url(99));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    fails(&run(d, &a, Some(TOKEN)).await, 1, "not found");
    // No or wrong token: the fake answers 401.
    let args = pr_args(&url7);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    fails(&run(d, &a, None).await, 1, "GITHUB_TOKEN");
    // Not a PR URL.
    let args = pr_args("https://github.com/acme/jobs/issues/7");
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    fails(&run(d, &a, Some(TOKEN)).await, 64, "not a pull request URL");
    // A malformed explicit tree id is refused before GitHub is asked.
    let before = fake.requests().len();
    let mut args = pr_args(&url7);
    args.extend(strs(&["--tree-sha1", "xyz"]));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    fails(&run(d, &a, Some(TOKEN)).await, 64, "tree sha1");
    assert_eq!(fake.requests().len(), before, "GitHub was asked anyway");
    // Without --pr the tree flags are required; the PR flags need --pr.
    let out = run(
        d,
        &[
            "proposal",
            "submit",
            "--devnet",
            "devnet.yaml",
            "--description",
            "x",
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tree-sha256"));
    let out = run(
        d,
        &[
            "proposal",
            "submit",
            "--devnet",
            "devnet.yaml",
            "--tree-sha256",
            other256,
            "--tree-sha1",
            other1,
            "--description",
            "x",
            "--api-url",
            &api,
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--pr"));

    let down = ok_json(
        run(
            d,
            &["--json", "dev", "down", "--devnet", "devnet.yaml"],
            None,
        )
        .await,
        "dev down",
    );
    assert_eq!(down["stopped"], true);
}
