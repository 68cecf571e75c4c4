//! collective-github against a local fake of the GitHub REST API (wiremock)
//! and a local bare git repository standing in for the GitHub remote.
//!
//! The fake answers with the field structure of GitHub's documented REST
//! responses (pull, user, repository, issue comment, commit status objects),
//! and the client parses them with octocrab's models, so a shape mismatch
//! fails here. It is stateful: posted comments and statuses are listed back.

#![recursion_limit = "512"]

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
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const OWNER: &str = "acme-health";
const REPO: &str = "collective-jobs";
/// A distinctive token: it must never show up in logs, errors or posted text.
const TOKEN: &str = "ghp_SENTINELtokenDoNotLeak0123456789abcd";
const BOT: &str = "collective-node-bot";

// ---------------------------------------------------------------- shapes

fn user(login: &str, id: u64) -> Value {
    let api = format!("https://api.github.com/users/{login}");
    json!({
        "login": login, "id": id, "node_id": format!("MDQ6VXNlcj{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"), "gravatar_id": "",
        "url": api, "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("{api}/followers"), "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"), "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"), "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"), "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"), "type": "User", "site_admin": false
    })
}

fn repository(clone_url: &str) -> Value {
    let api = format!("https://api.github.com/repos/{OWNER}/{REPO}");
    json!({
        "id": 1296269, "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5", "name": REPO, "full_name": format!("{OWNER}/{REPO}"),
        "owner": user(OWNER, 9001), "private": false, "html_url": format!("https://github.com/{OWNER}/{REPO}"),
        "description": "Jobs the acme-health collective may run", "fork": false, "url": api,
        "archive_url": format!("{api}/{{archive_format}}{{/ref}}"), "assignees_url": format!("{api}/assignees{{/user}}"),
        "blobs_url": format!("{api}/git/blobs{{/sha}}"), "branches_url": format!("{api}/branches{{/branch}}"),
        "collaborators_url": format!("{api}/collaborators{{/collaborator}}"), "comments_url": format!("{api}/comments{{/number}}"),
        "commits_url": format!("{api}/commits{{/sha}}"), "compare_url": format!("{api}/compare/{{base}}...{{head}}"),
        "contents_url": format!("{api}/contents/{{+path}}"), "contributors_url": format!("{api}/contributors"),
        "deployments_url": format!("{api}/deployments"), "downloads_url": format!("{api}/downloads"),
        "events_url": format!("{api}/events"), "forks_url": format!("{api}/forks"),
        "git_commits_url": format!("{api}/git/commits{{/sha}}"), "git_refs_url": format!("{api}/git/refs{{/sha}}"),
        "git_tags_url": format!("{api}/git/tags{{/sha}}"), "git_url": format!("git://github.com/{OWNER}/{REPO}.git"),
        "issue_comment_url": format!("{api}/issues/comments{{/number}}"), "issue_events_url": format!("{api}/issues/events{{/number}}"),
        "issues_url": format!("{api}/issues{{/number}}"), "keys_url": format!("{api}/keys{{/key_id}}"),
        "labels_url": format!("{api}/labels{{/name}}"), "languages_url": format!("{api}/languages"),
        "merges_url": format!("{api}/merges"), "milestones_url": format!("{api}/milestones{{/number}}"),
        "notifications_url": format!("{api}/notifications{{?since,all,participating}}"),
        "pulls_url": format!("{api}/pulls{{/number}}"), "releases_url": format!("{api}/releases{{/id}}"),
        "ssh_url": format!("git@github.com:{OWNER}/{REPO}.git"), "stargazers_url": format!("{api}/stargazers"),
        "statuses_url": format!("{api}/statuses/{{sha}}"), "subscribers_url": format!("{api}/subscribers"),
        "subscription_url": format!("{api}/subscription"), "tags_url": format!("{api}/tags"),
        "teams_url": format!("{api}/teams"), "trees_url": format!("{api}/git/trees{{/sha}}"),
        "clone_url": clone_url, "mirror_url": null, "hooks_url": format!("{api}/hooks"),
        "svn_url": format!("https://github.com/{OWNER}/{REPO}"), "homepage": null, "language": "Python",
        "forks_count": 3, "stargazers_count": 12, "watchers_count": 12, "size": 108, "default_branch": "main",
        "open_issues_count": 2, "is_template": false, "topics": ["dao", "data-cooperative"], "has_issues": true,
        "has_projects": false, "has_wiki": false, "has_pages": false, "has_downloads": true, "archived": false,
        "disabled": false, "visibility": "public", "pushed_at": "2026-11-30T10:06:43Z",
        "created_at": "2026-01-26T19:01:12Z", "updated_at": "2026-11-30T10:14:43Z",
        "permissions": {"admin": false, "push": false, "pull": true},
        "allow_rebase_merge": true, "temp_clone_token": "", "allow_squash_merge": true, "allow_auto_merge": false,
        "delete_branch_on_merge": true, "allow_merge_commit": true, "subscribers_count": 4, "network_count": 3,
        "license": {"key": "apache-2.0", "name": "Apache License 2.0", "url": "https://api.github.com/licenses/apache-2.0",
                    "spdx_id": "Apache-2.0", "node_id": "MDc6TGljZW5zZTI="},
        "forks": 3, "open_issues": 2, "watchers": 12
    })
}

struct PullSpec {
    number: u64,
    title: String,
    body: String,
    head_sha: String,
    head_ref: String,
    base_sha: String,
    author: String,
}

fn pull(p: &PullSpec, clone_url: &str) -> Value {
    let api = format!("https://api.github.com/repos/{OWNER}/{REPO}");
    let html = format!("https://github.com/{OWNER}/{REPO}/pull/{}", p.number);
    let n = p.number;
    json!({
        "url": format!("{api}/pulls/{n}"), "id": 1_000_000 + n, "node_id": format!("PR_kwDOAbc{n}"),
        "html_url": html, "diff_url": format!("{html}.diff"), "patch_url": format!("{html}.patch"),
        "issue_url": format!("{api}/issues/{n}"), "commits_url": format!("{api}/pulls/{n}/commits"),
        "review_comments_url": format!("{api}/pulls/{n}/comments"), "review_comment_url": format!("{api}/pulls/comments{{/number}}"),
        "comments_url": format!("{api}/issues/{n}/comments"), "statuses_url": format!("{api}/statuses/{}", p.head_sha),
        "number": n, "state": "open", "locked": false, "title": p.title, "user": user(&p.author, 4242),
        "body": p.body, "labels": [], "milestone": null, "active_lock_reason": null,
        "created_at": "2026-11-30T09:01:12Z", "updated_at": "2026-11-30T09:31:12Z",
        "closed_at": null, "merged_at": null, "merge_commit_sha": null,
        "assignee": null, "assignees": [], "requested_reviewers": [], "requested_teams": [],
        "head": {"label": format!("{}:{}", p.author, p.head_ref), "ref": p.head_ref, "sha": p.head_sha,
                 "user": user(&p.author, 4242), "repo": repository(clone_url)},
        "base": {"label": format!("{OWNER}:main"), "ref": "main", "sha": p.base_sha,
                 "user": user(OWNER, 9001), "repo": repository(clone_url)},
        "_links": {
            "self": {"href": format!("{api}/pulls/{n}")}, "html": {"href": html},
            "issue": {"href": format!("{api}/issues/{n}")}, "comments": {"href": format!("{api}/issues/{n}/comments")},
            "review_comments": {"href": format!("{api}/pulls/{n}/comments")},
            "review_comment": {"href": format!("{api}/pulls/comments{{/number}}")},
            "commits": {"href": format!("{api}/pulls/{n}/commits")}, "statuses": {"href": format!("{api}/statuses/{}", p.head_sha)}
        },
        "author_association": "CONTRIBUTOR", "auto_merge": null, "draft": false
    })
}

fn comment(id: u64, issue: u64, body: &str, login: &str) -> Value {
    let api = format!("https://api.github.com/repos/{OWNER}/{REPO}");
    json!({
        "id": id, "node_id": format!("IC_kwDOAbc{id}"), "url": format!("{api}/issues/comments/{id}"),
        "html_url": format!("https://github.com/{OWNER}/{REPO}/pull/{issue}#issuecomment-{id}"),
        "body": body, "user": user(login, if login == BOT { 77 } else { 666 }),
        "created_at": "2026-11-30T10:00:00Z", "updated_at": "2026-11-30T10:00:00Z",
        "issue_url": format!("{api}/issues/{issue}"), "author_association": "NONE",
        "performed_via_github_app": null,
        "reactions": {"url": format!("{api}/issues/comments/{id}/reactions"), "total_count": 0, "+1": 0, "-1": 0,
                      "laugh": 0, "hooray": 0, "confused": 0, "heart": 0, "rocket": 0, "eyes": 0}
    })
}

fn status(
    id: u64,
    sha: &str,
    state: &str,
    description: &str,
    context: &str,
    target_url: Value,
) -> Value {
    json!({
        "url": format!("https://api.github.com/repos/{OWNER}/{REPO}/statuses/{sha}"),
        "avatar_url": "https://avatars.githubusercontent.com/u/77?v=4", "id": id, "node_id": format!("SC_kwDOAbc{id}"),
        "state": state, "description": description, "target_url": target_url, "context": context,
        "created_at": "2026-11-30T10:00:00Z", "updated_at": "2026-11-30T10:00:00Z", "creator": user(BOT, 77)
    })
}

// ---------------------------------------------------------------- stateful fake

#[derive(Default)]
struct State {
    pulls: Vec<PullSpec>,
    clone_url: String,
    comments: Vec<(u64 /*issue*/, Value)>,
    statuses: HashMap<String, Vec<Value>>, // newest first
    next_id: u64,
    /// (method, path) of every request, and whether it carried the right token.
    log: Vec<(String, String, bool)>,
}

#[derive(Clone)]
struct Api(Arc<Mutex<State>>);

fn gh_error(code: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(code).set_body_json(json!({
        "message": message, "documentation_url": "https://docs.github.com/rest", "status": code.to_string()
    }))
}

impl Respond for Api {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.0.lock().unwrap();
        let auth_ok = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {TOKEN}"));
        let p = req.url.path().to_string();
        st.log.push((req.method.to_string(), p.clone(), auth_ok));
        if !auth_ok {
            return gh_error(401, "Bad credentials");
        }
        let segs: Vec<&str> = p.trim_matches('/').split('/').collect();
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let m = req.method.as_str();
        match (m, segs.as_slice()) {
            ("GET", ["user"]) => ResponseTemplate::new(200).set_body_json(user(BOT, 77)),
            ("GET", ["repos", o, r, "pulls"]) if *o == OWNER && *r == REPO => {
                let v: Vec<Value> = st.pulls.iter().map(|pr| pull(pr, &st.clone_url)).collect();
                ResponseTemplate::new(200).set_body_json(v)
            }
            ("GET", ["repos", o, r, "pulls", n]) if *o == OWNER && *r == REPO => {
                match st.pulls.iter().find(|pr| pr.number.to_string() == *n) {
                    Some(pr) => ResponseTemplate::new(200).set_body_json(pull(pr, &st.clone_url)),
                    None => gh_error(404, "Not Found"),
                }
            }
            ("GET", ["repos", _, _, "issues", n, "comments"]) => {
                let n: u64 = n.parse().unwrap();
                let v: Vec<Value> = st
                    .comments
                    .iter()
                    .filter(|(i, _)| *i == n)
                    .map(|(_, c)| c.clone())
                    .collect();
                ResponseTemplate::new(200).set_body_json(v)
            }
            ("POST", ["repos", _, _, "issues", n, "comments"]) => {
                let n: u64 = n.parse().unwrap();
                st.next_id += 1;
                let c = comment(1000 + st.next_id, n, body["body"].as_str().unwrap(), BOT);
                st.comments.push((n, c.clone()));
                ResponseTemplate::new(201).set_body_json(c)
            }
            ("PATCH", ["repos", _, _, "issues", "comments", id]) => {
                let id: u64 = id.parse().unwrap();
                match st.comments.iter_mut().find(|(_, c)| c["id"] == id) {
                    Some((_, c)) if c["user"]["login"] == BOT => {
                        c["body"] = body["body"].clone();
                        c["updated_at"] = json!("2026-11-30T11:00:00Z");
                        ResponseTemplate::new(200).set_body_json(c.clone())
                    }
                    Some(_) => gh_error(403, "Must have admin rights to Repository."),
                    None => gh_error(404, "Not Found"),
                }
            }
            ("GET", ["repos", _, _, "commits", sha, "statuses"]) => ResponseTemplate::new(200)
                .set_body_json(st.statuses.get(*sha).cloned().unwrap_or_default()),
            ("POST", ["repos", _, _, "statuses", sha]) => {
                let d = body["description"].as_str().unwrap_or("");
                if d.chars().count() > 140 {
                    return gh_error(422, "Validation Failed");
                }
                st.next_id += 1;
                let s = status(
                    st.next_id,
                    sha,
                    body["state"].as_str().unwrap(),
                    d,
                    body["context"].as_str().unwrap_or("default"),
                    body.get("target_url").cloned().unwrap_or(Value::Null),
                );
                st.statuses
                    .entry(sha.to_string())
                    .or_default()
                    .insert(0, s.clone());
                ResponseTemplate::new(201).set_body_json(s)
            }
            _ => gh_error(404, "Not Found"),
        }
    }
}

struct Fake {
    server: MockServer,
    state: Arc<Mutex<State>>,
}

impl Fake {
    async fn start(clone_url: &str) -> Fake {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State {
            clone_url: clone_url.to_string(),
            ..Default::default()
        }));
        Mock::given(wiremock::matchers::any())
            .respond_with(Api(state.clone()))
            .with_priority(10)
            .mount(&server)
            .await;
        Fake { server, state }
    }
    fn config(&self) -> GithubConfig {
        GithubConfig {
            api_url: self.server.uri(),
            owner: OWNER.into(),
            repo: REPO.into(),
            token: Some(SecretString::from(TOKEN.to_string())),
            retry: fast_retry(),
        }
    }
    fn statuses(&self, sha: &str) -> Vec<(String, String)> {
        let st = self.state.lock().unwrap();
        st.statuses
            .get(sha)
            .map(|v| {
                v.iter()
                    .map(|s| {
                        (
                            s["state"].as_str().unwrap().to_string(),
                            s["description"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
    fn comments(&self, issue: u64) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .comments
            .iter()
            .filter(|(i, _)| *i == issue)
            .map(|(_, c)| c.clone())
            .collect()
    }
    fn requests(&self) -> Vec<(String, String, bool)> {
        self.state.lock().unwrap().log.clone()
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

fn spec(number: u64, head: Oid, base: Oid, body: &str) -> PullSpec {
    PullSpec {
        number,
        title: format!("Train a risk model (#{number})"),
        body: body.to_string(),
        head_sha: head.to_string(),
        head_ref: format!("requester/job-{number}"),
        base_sha: base.to_string(),
        author: "requester-ann".into(),
    }
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
    let r = remote();
    let head = r.open_pr(
        7,
        r.base,
        &[
            ("README.md", README),
            ("jobs/train-model/job.yaml", JOB_YAML),
        ],
    );
    let fake = Fake::start(&r.url()).await;
    fake.state
        .lock()
        .unwrap()
        .pulls
        .push(spec(7, head, r.base, "Recipient: age1requester"));
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
    let r = remote();
    let head = r.open_pr(
        1,
        r.base,
        &[
            ("README.md", README),
            ("jobs/train-model/job.yaml", JOB_YAML),
        ],
    );
    let fake = Fake::start(&r.url()).await;
    fake.state.lock().unwrap().pulls.push(spec(
        1,
        head,
        r.base,
        "I want a model.\n\nRecipient: age1qyqszqgpqyqszqgpqyqszqgpqyqszqgp\n",
    ));
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
    {
        let mut st = fake.state.lock().unwrap();
        st.pulls.push(spec(2, h2, r.base, ""));
        st.pulls.push(spec(3, h3, r.base, ""));
    }
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
    {
        let mut st = fake.state.lock().unwrap();
        st.pulls.push(spec(4, head, r.base, ""));
        let fake_comment = comment(
            5,
            4,
            &format!("{COMMENT_MARKER}\napproved! deploy tree 0000"),
            "mallory",
        );
        st.comments.push((4, fake_comment));
    }
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
        .mount(&fake.server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/{OWNER}/{REPO}/pulls")))
        .respond_with(
            gh_error(429, "You have exceeded a secondary rate limit.")
                .insert_header("retry-after", "1"),
        )
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&fake.server)
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
    assert_eq!(fake.server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn rate_limit_longer_than_budget_is_reported() {
    captured_logs();
    let fake = Fake::start("x").await;
    Mock::given(method("GET"))
        .respond_with(gh_error(429, "slow down").insert_header("retry-after", "3600"))
        .with_priority(1)
        .mount(&fake.server)
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
        .mount(&fake.server)
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
    assert_eq!(fake.server.received_requests().await.unwrap().len(), 3);
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
        .mount(&fake.server)
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
        .mount(&fake.server)
        .await;
    let client = GithubClient::new(fake.config()).unwrap();
    let err = client.list_open_pulls().await.unwrap_err();
    assert!(matches!(err, GithubError::Api { status: 403, .. }), "{err}");
    assert!(err
        .to_string()
        .contains("Resource not accessible by integration"));
    assert_eq!(fake.server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn pr_proposal_from_url() {
    captured_logs();
    let r = remote();
    let head = r.open_pr(
        9,
        r.base,
        &[
            ("README.md", README),
            ("jobs/train-model/job.yaml", JOB_YAML),
        ],
    );
    let fake = Fake::start(&r.url()).await;
    fake.state.lock().unwrap().pulls.push(spec(
        9,
        head,
        r.base,
        "Recipient: `age1abc`\nRecipient: age1def",
    ));
    let mirror = tempfile::tempdir().unwrap();
    let source = PrSource {
        api_url: Some(fake.server.uri()),
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
    fake.state
        .lock()
        .unwrap()
        .pulls
        .push(spec(5, head, r.base, ""));
    let mirror = tempfile::tempdir().unwrap();
    let source = PrSource {
        api_url: Some(fake.server.uri()),
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
    fake.state
        .lock()
        .unwrap()
        .pulls
        .push(spec(6, head, r.base, ""));
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
    fake.state
        .lock()
        .unwrap()
        .pulls
        .push(spec(11, head, r.base, ""));
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
        .mount(&down.server)
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
        .mount(&limited.server)
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
