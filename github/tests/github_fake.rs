//! collective-github against a local fake of the GitHub REST API (wiremock)
//! and a local bare git repository standing in for the GitHub remote.
//!
//! The fake answers with the field structure of GitHub's documented REST
//! responses (pull, user, repository, issue comment, commit status objects),
//! and the client parses them with octocrab's models, so a shape mismatch
//! fails here. It is stateful: posted comments and statuses are listed back.

/// The example pull requests' jobs (same test binary: one per crate).
#[path = "examples/jobs.rs"]
mod examples_jobs;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use collective_github::{
    pr_proposal, CommentAction, GithubClient, GithubConfig, GithubError, PrOutcome, PrSource,
    PrWatcher, RetryPolicy, SecretString, TreeState, WatchConfig, COMMENT_MARKER,
};
use git2::{Oid, Repository};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const OWNER: &str = "acme-health";
const REPO: &str = "collective-jobs";
/// A distinctive token: it must never show up in logs, errors or posted text.
const TOKEN: &str = "ghp_SENTINELtokenDoNotLeak0123456789abcd";
const BOT: &str = "collective-node-bot";

// ---------------------------------------------------------------- fake

use collective_github::fake::{github_error as gh_error, FakeGithub, FakePull};

struct Fake(FakeGithub);

impl std::ops::Deref for Fake {
    type Target = FakeGithub;
    fn deref(&self) -> &FakeGithub {
        &self.0
    }
}

impl Fake {
    async fn start(clone_url: &str) -> Fake {
        Fake(FakeGithub::start(OWNER, REPO, TOKEN, BOT, clone_url).await)
    }
    /// The fake's config with fast retries.
    fn config(&self) -> GithubConfig {
        GithubConfig {
            retry: fast_retry(),
            ..self.0.config()
        }
    }
    fn requests(&self) -> Vec<(String, String, bool)> {
        self.0
            .requests()
            .into_iter()
            .map(|r| (r.method, r.path, r.authorized))
            .collect()
    }
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        max_rate_limit_wait: Duration::from_secs(5),
    }
}

// ---------------------------------------------------------------- git "remote"

/// Writes a commit with exactly `files` (path -> content) on top of `parent`.
fn commit(repo: &Repository, parent: Option<Oid>, files: &[(&str, &str)], msg: &str) -> Oid {
    let mut index = git2::Index::new().unwrap();
    for (p, content) in files {
        let blob = repo.blob(content.as_bytes()).unwrap();
        let entry = git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            file_size: content.len() as u32,
            id: blob,
            flags: p.len() as u16,
            flags_extended: 0,
            path: p.as_bytes().to_vec(),
        };
        index.add(&entry).unwrap();
    }
    let tree = repo.find_tree(index.write_tree_to(repo).unwrap()).unwrap();
    let sig = git2::Signature::new(
        "requester",
        "req@example.org",
        &git2::Time::new(1_700_000_000, 0),
    )
    .unwrap();
    let parents: Vec<git2::Commit> = parent
        .map(|p| repo.find_commit(p).unwrap())
        .into_iter()
        .collect();
    let refs: Vec<&git2::Commit> = parents.iter().collect();
    repo.commit(None, &sig, &sig, msg, &tree, &refs).unwrap()
}

fn tree_ids_of(repo: &Repository, commit: Oid) -> collective_github::TreeIds {
    let tree = repo.find_commit(commit).unwrap().tree_id();
    collective_tree::tree_ids_of_tree(repo, tree).unwrap()
}

const README: &str = "# collective jobs\n";
const JOB_YAML: &str =
    "kind: batch\ncommand: [\"/usr/bin/python3\", \"/job/jobs/train-model/train.py\"]\n";

struct Remote {
    _dir: tempfile::TempDir,
    path: PathBuf,
    repo: Repository,
    base: Oid,
}

/// A bare repository like GitHub's: `main` and `refs/pull/N/head`.
fn remote() -> Remote {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("remote.git");
    let repo = Repository::init_bare(&path).unwrap();
    let base = commit(&repo, None, &[("README.md", README)], "init");
    repo.reference("refs/heads/main", base, true, "main")
        .unwrap();
    Remote {
        _dir: dir,
        path,
        repo,
        base,
    }
}

impl Remote {
    fn open_pr(&self, number: u64, parent: Oid, files: &[(&str, &str)]) -> Oid {
        let head = commit(&self.repo, Some(parent), files, "add job");
        self.repo
            .reference(&format!("refs/pull/{number}/head"), head, true, "pr")
            .unwrap();
        head
    }
    fn advance_main(&self, files: &[(&str, &str)]) -> Oid {
        let head = commit(&self.repo, Some(self.base), files, "main moves");
        self.repo
            .reference("refs/heads/main", head, true, "main")
            .unwrap();
        head
    }
    /// `file://` URL: GitHub's `clone_url` is a URL, and libgit2 fetches from it.
    fn url(&self) -> String {
        format!("file://{}", self.path.to_str().unwrap())
    }
}

fn spec(number: u64, head: Oid, base: Oid, body: &str) -> FakePull {
    FakePull {
        number,
        title: format!("Train a risk model (#{number})"),
        body: body.to_string(),
        head_sha: head.to_string(),
        head_ref: format!("requester/job-{number}"),
        base_ref: "main".into(),
        base_sha: base.to_string(),
        author: "requester-ann".into(),
    }
}

/// A remote whose PR `number` adds the train-model job, up to date with
/// `main`, and a fake GitHub listing it with `body` as its description.
async fn job_pr(number: u64, body: &str) -> (Remote, Oid, Fake) {
    let r = remote();
    let head = r.open_pr(
        number,
        r.base,
        &[
            ("README.md", README),
            ("jobs/train-model/job.yaml", JOB_YAML),
        ],
    );
    let fake = Fake::start(&r.url()).await;
    fake.open_pull(spec(number, head, r.base, body));
    (r, head, fake)
}

fn watcher(fake: &Fake, mirror: &Path, remote: Option<String>) -> PrWatcher {
    let mut cfg = WatchConfig::new(fake.config(), mirror);
    cfg.git_remote = remote;
    PrWatcher::new(cfg).unwrap()
}

fn synced(o: &PrOutcome) -> &collective_github::PrReport {
    match o {
        PrOutcome::Synced(r) => r,
        PrOutcome::Failed { error, .. } => panic!("PR failed: {error}"),
    }
}

// ---------------------------------------------------------------- log capture

fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn lists_open_pulls_from_real_shapes() {
    captured_logs();
    let (r, head, fake) = job_pr(7, "Recipient: age1requester").await;
    let client = GithubClient::new(fake.config()).unwrap();
    let pulls = client.list_open_pulls().await.unwrap();
    assert_eq!(pulls.len(), 1);
    let p = &pulls[0];
    assert_eq!(p.number, 7);
    assert_eq!(p.head_sha, head.to_string());
    assert_eq!(p.base_ref, "main");
    assert_eq!(p.user_login, "requester-ann");
    assert_eq!(
        p.html_url,
        format!("https://github.com/{OWNER}/{REPO}/pull/7")
    );
    assert_eq!(p.base_clone_url.as_deref(), Some(r.url().as_str()));
    let one = client.get_pull(7).await.unwrap();
    assert_eq!(&one, p);
    let err = client.get_pull(8).await.unwrap_err();
    assert!(matches!(err, GithubError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("/pulls/8"), "{err}");
}

#[tokio::test]
async fn sync_posts_status_and_one_comment_then_follows_state() {
    captured_logs();
    let (r, head, fake) = job_pr(
        1,
        "I want a model.\n\nRecipient: age1qyqszqgpqyqszqgpqyqszqgpqyqszqgp\n",
    )
    .await;
    let mirror = tempfile::tempdir().unwrap();
    // No explicit remote: the base repository's clone_url from the API is used.
    let w = watcher(&fake, &mirror.path().join("mirror.git"), None);
    let expected = tree_ids_of(&r.repo, head);

    let mut chain: HashMap<String, TreeState> = HashMap::new();
    let report = w.sync_once(&chain).await.unwrap();
    let pr = synced(&report.prs[0]);
    assert_eq!(
        pr.tree(),
        Some(expected.clone()),
        "up-to-date PR: merge tree = head tree"
    );
    assert_eq!(pr.state, Some(TreeState::AwaitingApproval));
    assert!(pr.status_posted);
    assert!(matches!(pr.comment, CommentAction::Created(_)));
    assert_eq!(report.awaiting_approval(), vec![(1, expected.clone())]);
    assert_eq!(
        fake.statuses(&head.to_string()),
        vec![("pending".into(), "awaiting DAO approval".into())]
    );
    let comments = fake.comments(1);
    assert_eq!(comments.len(), 1);
    let body = comments[0]["body"].as_str().unwrap();
    assert!(body.starts_with(COMMENT_MARKER));
    let cmd = format!(
        "collective proposal submit --tree-sha256 {} --tree-sha1 {} --recipient age1qyqszqgpqyqszqgpqyqszqgpqyqszqgp --description ",
        expected.sha256, expected.sha1
    );
    assert!(body.contains(&cmd), "{body}");
    assert!(
        body.contains(&format!(
            "'Train a risk model (#1) (PR #1: https://github.com/{OWNER}/{REPO}/pull/1)'"
        )),
        "{body}"
    );

    // Second pass, nothing changed: nothing posted.
    let report = w.sync_once(&chain).await.unwrap();
    let pr = synced(&report.prs[0]);
    assert!(!pr.status_posted);
    assert!(matches!(pr.comment, CommentAction::Unchanged(_)));
    assert_eq!(fake.comments(1).len(), 1);
    assert_eq!(fake.statuses(&head.to_string()).len(), 1);

    // Approved on-chain: status success, the same comment edited.
    chain.insert(expected.sha256.clone(), TreeState::Approved);
    let report = w.sync_once(&chain).await.unwrap();
    let pr = synced(&report.prs[0]);
    assert!(
        matches!(pr.comment, CommentAction::Updated(id) if id == comments[0]["id"].as_u64().unwrap())
    );
    assert_eq!(fake.comments(1).len(), 1);
    assert!(fake.comments(1)[0]["body"]
        .as_str()
        .unwrap()
        .contains("approved on-chain"));

    // Deployed, with the log index.
    chain.insert(
        expected.sha256.clone(),
        TreeState::Deployed { log_index: 42 },
    );
    w.sync_once(&chain).await.unwrap();
    assert_eq!(
        fake.statuses(&head.to_string()),
        vec![
            ("success".into(), "deployed, log index 42".into()),
            ("success".into(), "approved on-chain".into()),
            ("pending".into(), "awaiting DAO approval".into()),
        ]
    );
    assert_eq!(fake.comments(1).len(), 1);
    assert!(fake.comments(1)[0]["body"]
        .as_str()
        .unwrap()
        .contains("log index 42"));

    // Revoked: failure with the reason.
    chain.insert(
        expected.sha256.clone(),
        TreeState::Refused {
            reason: "approval revoked: leaks rows".into(),
        },
    );
    w.sync_once(&chain).await.unwrap();
    assert_eq!(
        fake.statuses(&head.to_string())[0],
        (
            "failure".into(),
            "refused: approval revoked: leaks rows".into()
        )
    );
    assert_eq!(fake.comments(1).len(), 1);
}

/// GitHub closes a PR when it is merged, before the node deploys its tree:
/// the watcher keeps following a merged PR (approved, then deployed) and
/// drops it once deployed; a PR closed without merging is dropped at once.
#[tokio::test]
async fn merged_pr_is_followed_until_deployed_and_closed_pr_is_dropped() {
    let (r, head, fake) = job_pr(1, "Recipient: age1qyqszqgpqyqszqgpqyqszqgpqyqszqgp\n").await;
    let closed_head = r.open_pr(2, r.base, &[("README.md", "other\n")]);
    fake.open_pull(spec(2, closed_head, r.base, ""));
    let mirror = tempfile::tempdir().unwrap();
    let w = watcher(&fake, &mirror.path().join("mirror.git"), None);
    let expected = tree_ids_of(&r.repo, head);
    let mut chain: HashMap<String, TreeState> = HashMap::new();
    assert_eq!(w.sync_once(&chain).await.unwrap().prs.len(), 2);

    fake.merge_pull(1, &head.to_string());
    fake.close_pull(2);
    chain.insert(expected.sha256.clone(), TreeState::Approved);
    let report = w.sync_once(&chain).await.unwrap();
    assert_eq!(report.prs.len(), 1, "only the merged PR is followed");
    assert_eq!(synced(&report.prs[0]).number, 1);
    assert_eq!(
        fake.statuses(&head.to_string())[0],
        ("success".into(), "approved on-chain".into())
    );

    chain.insert(
        expected.sha256.clone(),
        TreeState::Deployed { log_index: 7 },
    );
    w.sync_once(&chain).await.unwrap();
    assert_eq!(
        fake.statuses(&head.to_string())[0],
        ("success".into(), "deployed, log index 7".into())
    );
    assert_eq!(
        fake.comments(1).len(),
        1,
        "the comment is edited, not repeated"
    );
    assert!(fake.comments(1)[0]["body"]
        .as_str()
        .unwrap()
        .contains("log index 7"));
    // Deployed: no longer followed, nothing more is read or posted.
    let report = w.sync_once(&chain).await.unwrap();
    assert!(report.prs.is_empty(), "{:?}", report.prs);
    assert_eq!(fake.statuses(&head.to_string()).len(), 3);
}

#[tokio::test]
async fn merge_result_when_base_moved_and_conflicts() {
    captured_logs();
    let r = remote();
    // PR 2 adds a job; PR 3 edits README. Then main edits README too.
    let h2 = r.open_pr(
        2,
        r.base,
        &[
            ("README.md", README),
            ("jobs/stats/job.yaml", "kind: batch\n"),
        ],
    );
    let h3 = r.open_pr(3, r.base, &[("README.md", "# requester's readme\n")]);
    let main = r.advance_main(&[("README.md", "# collective jobs, v2\n")]);
    let fake = Fake::start("https://example.invalid/not-used.git").await;
    fake.open_pull(spec(2, h2, r.base, ""));
    fake.open_pull(spec(3, h3, r.base, ""));
    let mirror = tempfile::tempdir().unwrap();
    let w = watcher(&fake, &mirror.path().join("m.git"), Some(r.url()));
    let report = w.sync_once(&HashMap::new()).await.unwrap();

    // PR 2 merges cleanly: its tree is main's README + the job, not the PR head's tree.
    let expected = {
        let c = commit(
            &r.repo,
            Some(main),
            &[
                ("README.md", "# collective jobs, v2\n"),
                ("jobs/stats/job.yaml", "kind: batch\n"),
            ],
            "expected",
        );
        tree_ids_of(&r.repo, c)
    };
    let pr2 = synced(&report.prs[0]);
    assert_eq!(pr2.tree(), Some(expected));
    assert_ne!(pr2.tree(), Some(tree_ids_of(&r.repo, h2)));
    assert_eq!(fake.statuses(&h2.to_string())[0].0, "pending");
    let body = fake.comments(2)[0]["body"].as_str().unwrap().to_string();
    assert!(body.contains("collective proposal submit"));
    assert!(
        body.contains("--recipient '<YOUR AGE RECIPIENT>'"),
        "no Recipient line: placeholder and a hint"
    );

    // PR 3 conflicts: failure status, comment lists the path and has no command.
    let pr3 = synced(&report.prs[1]);
    assert_eq!(pr3.tree(), None);
    assert_eq!(pr3.conflicts, vec!["README.md".to_string()]);
    let (state, desc) = fake.statuses(&h3.to_string())[0].clone();
    assert_eq!(state, "failure");
    assert!(desc.contains("conflicts with main"), "{desc}");
    let body = fake.comments(3)[0]["body"].as_str().unwrap().to_string();
    assert!(
        body.contains("**conflicts**") && body.contains("`README.md`"),
        "{body}"
    );
    assert!(!body.contains("collective proposal submit"), "{body}");
}

#[tokio::test]
async fn spoofed_marker_comment_is_not_taken_over() {
    captured_logs();
    let r = remote();
    let head = r.open_pr(
        4,
        r.base,
        &[("README.md", README), ("jobs/x/job.yaml", "kind: batch\n")],
    );
    let fake = Fake::start(&r.url()).await;
    fake.open_pull(spec(4, head, r.base, ""));
    fake.add_comment(
        4,
        "mallory",
        &format!("{COMMENT_MARKER}\napproved! deploy tree 0000"),
    );
    let mirror = tempfile::tempdir().unwrap();
    let w = watcher(&fake, &mirror.path().join("m.git"), None);
    let report = w.sync_once(&HashMap::new()).await.unwrap();
    assert!(matches!(
        synced(&report.prs[0]).comment,
        CommentAction::Created(_)
    ));
    let comments = fake.comments(4);
    assert_eq!(comments.len(), 2);
    assert_eq!(
        comments[0]["body"].as_str().unwrap(),
        format!("{COMMENT_MARKER}\napproved! deploy tree 0000")
    );
    assert_eq!(comments[1]["user"]["login"], BOT);
    // and the next pass edits ours, not mallory's
    let report = w.sync_once(&HashMap::new()).await.unwrap();
    assert!(
        matches!(synced(&report.prs[0]).comment, CommentAction::Unchanged(id) if id == comments[1]["id"].as_u64().unwrap())
    );
}

#[tokio::test]
async fn rate_limit_is_waited_out_then_succeeds() {
    captured_logs();
    let r = remote();
    let fake = Fake::start(&r.url()).await;
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    Mock::given(method("GET"))
        .and(path(format!("/repos/{OWNER}/{REPO}/pulls")))
        .respond_with(
            gh_error(403, "API rate limit exceeded for user ID 77.")
                .insert_header("x-ratelimit-limit", "5000")
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-used", "5000")
                .insert_header("x-ratelimit-reset", reset.to_string().as_str())
                .insert_header("x-ratelimit-resource", "core"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(fake.server())
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/{OWNER}/{REPO}/pulls")))
        .respond_with(
            gh_error(429, "You have exceeded a secondary rate limit.")
                .insert_header("retry-after", "1"),
        )
        .up_to_n_times(1)
        .with_priority(2)
        .mount(fake.server())
        .await;
    let client = GithubClient::new(GithubConfig {
        retry: RetryPolicy {
            max_attempts: 4,
            ..fast_retry()
        },
        ..fake.config()
    })
    .unwrap();
    let start = Instant::now();
    let pulls = client.list_open_pulls().await.unwrap();
    assert!(pulls.is_empty());
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "waited {:?}",
        start.elapsed()
    );
    // 2 limited answers + 1 served by the stateful fake
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(fake.server().received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn rate_limit_longer_than_budget_is_reported() {
    captured_logs();
    let fake = Fake::start("x").await;
    Mock::given(method("GET"))
        .respond_with(gh_error(429, "slow down").insert_header("retry-after", "3600"))
        .with_priority(1)
        .mount(fake.server())
        .await;
    let client = GithubClient::new(fake.config()).unwrap();
    let start = Instant::now();
    let err = client.list_open_pulls().await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, GithubError::RateLimited { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("3600s") && msg.contains("try again later"),
        "{msg}"
    );
}

#[tokio::test]
async fn server_errors_back_off_then_give_up_clearly() {
    captured_logs();
    let fake = Fake::start("x").await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>Bad gateway</html>"))
        .with_priority(1)
        .mount(fake.server())
        .await;
    let client = GithubClient::new(fake.config()).unwrap();
    let start = Instant::now();
    let err = client.list_open_pulls().await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, GithubError::Unavailable { attempts: 3, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("after 3 attempts") && msg.contains("HTTP 502"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("/repos/{OWNER}/{REPO}/pulls")),
        "{msg}"
    );
    assert_eq!(fake.server().received_requests().await.unwrap().len(), 3);
    // backoff 20ms + 40ms between the three attempts
    assert!(start.elapsed() >= Duration::from_millis(60));
}

#[tokio::test]
async fn server_error_then_recovery() {
    captured_logs();
    let fake = Fake::start("x").await;
    Mock::given(method("GET"))
        .respond_with(gh_error(503, "Service Unavailable"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(fake.server())
        .await;
    let client = GithubClient::new(fake.config()).unwrap();
    assert!(client.list_open_pulls().await.unwrap().is_empty());
}

#[tokio::test]
async fn unauthorized_is_a_clear_error_without_retries() {
    captured_logs();
    let fake = Fake::start("x").await;
    let cfg = GithubConfig {
        token: Some(SecretString::from("ghp_wrong".to_string())),
        ..fake.config()
    };
    let w = PrWatcher::new(WatchConfig::new(
        cfg,
        tempfile::tempdir().unwrap().path().join("m"),
    ))
    .unwrap();
    let err = w.sync_once(&HashMap::new()).await.unwrap_err();
    assert!(matches!(err, GithubError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("GITHUB_TOKEN"), "{err}");
    assert_eq!(fake.requests().len(), 1, "401 is not retried");
}

#[tokio::test]
async fn forbidden_without_rate_limit_headers_is_not_retried() {
    captured_logs();
    let fake = Fake::start("x").await;
    Mock::given(method("GET"))
        .respond_with(gh_error(403, "Resource not accessible by integration"))
        .with_priority(1)
        .mount(fake.server())
        .await;
    let client = GithubClient::new(fake.config()).unwrap();
    let err = client.list_open_pulls().await.unwrap_err();
    assert!(matches!(err, GithubError::Api { status: 403, .. }), "{err}");
    assert!(err
        .to_string()
        .contains("Resource not accessible by integration"));
    assert_eq!(fake.server().received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn pr_proposal_from_url() {
    captured_logs();
    let (r, head, fake) = job_pr(9, "Recipient: `age1abc`\nRecipient: age1def").await;
    let mirror = tempfile::tempdir().unwrap();
    let source = PrSource {
        api_url: Some(fake.server().uri()),
        token: Some(SecretString::from(TOKEN.to_string())),
        mirror_dir: mirror.path().join("m.git"),
        git_remote: None,
        retry: fast_retry(),
    };
    let url = format!("https://github.com/{OWNER}/{REPO}/pull/9");
    let p = pr_proposal(&url, &source).await.unwrap();
    assert_eq!(p.tree(), tree_ids_of(&r.repo, head));
    assert_eq!(p.head_sha, head.to_string());
    assert_eq!(p.title, "Train a risk model (#9)");
    assert_eq!(
        p.description,
        format!("Train a risk model (#9) (PR #9: {url})")
    );
    assert_eq!(
        p.recipients,
        vec!["age1abc".to_string(), "age1def".to_string()]
    );

    let err = pr_proposal(
        &format!("https://github.com/{OWNER}/{REPO}/pull/10"),
        &source,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, GithubError::NotFound { .. }), "{err}");
    let err = pr_proposal("https://github.com/acme/pulls", &source)
        .await
        .unwrap_err();
    assert!(matches!(err, GithubError::BadPrUrl { .. }), "{err}");
}

#[tokio::test]
async fn pr_proposal_refuses_conflicting_pr() {
    captured_logs();
    let r = remote();
    let head = r.open_pr(5, r.base, &[("README.md", "mine\n")]);
    r.advance_main(&[("README.md", "theirs\n")]);
    let fake = Fake::start(&r.url()).await;
    fake.open_pull(spec(5, head, r.base, ""));
    let mirror = tempfile::tempdir().unwrap();
    let source = PrSource {
        api_url: Some(fake.server().uri()),
        token: Some(SecretString::from(TOKEN.to_string())),
        mirror_dir: mirror.path().join("m.git"),
        ..Default::default()
    };
    let err = pr_proposal(
        &format!("https://github.com/{OWNER}/{REPO}/pull/5"),
        &source,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, GithubError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("README.md"), "{err}");
}

#[tokio::test]
async fn fetch_failure_is_reported_per_pr() {
    captured_logs();
    let r = remote();
    let head = r.open_pr(6, r.base, &[("a", "b")]);
    let fake = Fake::start(&r.url()).await;
    fake.open_pull(spec(6, head, r.base, ""));
    let mirror = tempfile::tempdir().unwrap();
    let w = watcher(
        &fake,
        &mirror.path().join("m.git"),
        Some("/nonexistent/remote.git".into()),
    );
    let report = w.sync_once(&HashMap::new()).await.unwrap();
    match &report.prs[0] {
        PrOutcome::Failed {
            number: 6, error, ..
        } => assert!(error.contains("git fetch failed"), "{error}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(fake.comments(6).is_empty());
}

#[tokio::test]
async fn token_never_appears_in_logs_errors_or_posts() {
    let logs = captured_logs();
    let r = remote();
    let head = r.open_pr(
        11,
        r.base,
        &[("README.md", README), ("jobs/y/job.yaml", "kind: batch\n")],
    );
    let fake = Fake::start(&r.url()).await;
    fake.open_pull(spec(11, head, r.base, ""));
    let mirror = tempfile::tempdir().unwrap();
    let w = watcher(&fake, &mirror.path().join("m.git"), None);
    w.sync_once(&HashMap::new()).await.unwrap();
    // The token was really used...
    assert!(
        fake.requests().iter().all(|(_, _, auth)| *auth),
        "every request carried the token"
    );

    // ...and failures of every kind format without it.
    let mut errors = Vec::new();
    let down = Fake::start("x").await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .with_priority(1)
        .mount(down.server())
        .await;
    errors.push(
        GithubClient::new(down.config())
            .unwrap()
            .list_open_pulls()
            .await
            .unwrap_err(),
    );
    let limited = Fake::start("x").await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "9999"))
        .with_priority(1)
        .mount(limited.server())
        .await;
    errors.push(
        GithubClient::new(limited.config())
            .unwrap()
            .list_open_pulls()
            .await
            .unwrap_err(),
    );
    let closed = GithubConfig {
        api_url: "http://127.0.0.1:9".into(),
        ..fake.config()
    };
    errors.push(
        GithubClient::new(closed)
            .unwrap()
            .list_open_pulls()
            .await
            .unwrap_err(),
    );
    for e in &errors {
        let text = format!("{e} {e:?} {:?}", std::error::Error::source(e));
        assert!(
            !text.contains(TOKEN) && !text.contains("SENTINEL"),
            "token in error: {text}"
        );
    }
    // The Debug of configs and clients redacts it too.
    let dbg = format!("{:?} {:?}", fake.config(), w);
    assert!(!dbg.contains("SENTINEL"), "{dbg}");

    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("GitHub"),
        "logs were captured: {} bytes",
        text.len()
    );
    assert!(
        !text.contains("SENTINEL"),
        "token leaked into tracing output"
    );
    for c in fake.comments(11) {
        assert!(!c["body"].as_str().unwrap().contains("SENTINEL"));
    }
}

#[tokio::test]
async fn pr_head_that_moved_since_the_api_read_is_retried_later() {
    captured_logs();
    let r = remote();
    let old = r.open_pr(
        12,
        r.base,
        &[("README.md", README), ("jobs/a/job.yaml", "kind: batch\n")],
    );
    // A push lands after GitHub answered: refs/pull/12/head is newer than the API's head sha.
    let newer = r.open_pr(
        12,
        old,
        &[
            ("README.md", README),
            ("jobs/a/job.yaml", "kind: batch # v2\n"),
        ],
    );
    let fake = Fake::start(&r.url()).await;
    fake.open_pull(spec(12, old, r.base, ""));
    let mirror = tempfile::tempdir().unwrap();
    let w = watcher(&fake, &mirror.path().join("m.git"), None);
    let report = w.sync_once(&HashMap::new()).await.unwrap();
    match &report.prs[0] {
        PrOutcome::Failed { error, .. } => {
            assert!(error.contains("moved while syncing"), "{error}")
        }
        other => panic!("expected a retry-later failure, got {other:?}"),
    }
    assert!(
        fake.statuses(&old.to_string()).is_empty() && fake.comments(12).is_empty(),
        "nothing posted for a stale tree"
    );
    // Once the API catches up, the PR syncs.
    fake.open_pull(spec(12, newer, r.base, ""));
    let report = w.sync_once(&HashMap::new()).await.unwrap();
    assert_eq!(
        synced(&report.prs[0]).tree(),
        Some(tree_ids_of(&r.repo, newer))
    );
}

/// The controller runs `sync_once` in spawned tasks: the watcher must be
/// shareable and the future `Send`.
#[test]
fn watcher_is_shareable_and_sync_is_send() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let fake = Fake::start("x").await;
        let w = watcher(&fake, Path::new("/nonexistent"), None);
        send_sync(&w);
        let lookup: HashMap<String, TreeState> = HashMap::new();
        send(w.sync_once(&lookup));
    });
}
