//! A stateful fake of the GitHub REST API (wiremock), for tests of this
//! crate, of the controller and of the end-to-end suite.
//!
//! Responses have the field structure of GitHub's documented REST responses
//! (pull, user, repository, issue comment and commit status objects), so a
//! client that parses them with octocrab's models fails here if a shape is
//! wrong. It keeps state: posted comments and statuses are listed back, a
//! comment can only be edited by its author, a status description over 140
//! characters is refused with 422 as GitHub does, and every request must
//! carry `Authorization: Bearer <token>` (else 401 "Bad credentials").
//!
//! Failures (rate limits, 5xx) are injected by mounting extra wiremock mocks
//! on [`FakeGithub::server`] with a priority below 10.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::{GithubConfig, RetryPolicy, SecretString};

/// An open pull request in the fake.
#[derive(Debug, Clone)]
pub struct FakePull {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub head_sha: String,
    pub head_ref: String,
    pub base_ref: String,
    pub base_sha: String,
    pub author: String,
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Whether it carried the right token.
    pub authorized: bool,
}

#[derive(Debug, Default)]
struct State {
    owner: String,
    repo: String,
    token: String,
    bot: String,
    clone_url: String,
    pulls: Vec<FakePull>,
    /// Merged PRs: number -> merge commit sha (closed, still readable by number).
    merged: HashMap<u64, String>,
    comments: Vec<(u64, Value)>,
    /// sha -> statuses, newest first (as GitHub lists them).
    statuses: HashMap<String, Vec<Value>>,
    next_id: u64,
    log: Vec<RecordedRequest>,
}

#[derive(Clone)]
struct Api(Arc<Mutex<State>>);

/// A GitHub error body: `{"message", "documentation_url", "status"}`.
pub fn github_error(code: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(code).set_body_json(json!({
        "message": message, "documentation_url": "https://docs.github.com/rest", "status": code.to_string()
    }))
}

impl Respond for Api {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let st = &mut *guard;
        let authorized = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {}", st.token));
        let p = req.url.path().to_string();
        st.log.push(RecordedRequest {
            method: req.method.to_string(),
            path: p.clone(),
            authorized,
        });
        if !authorized {
            return github_error(401, "Bad credentials");
        }
        let segs: Vec<&str> = p.trim_matches('/').split('/').collect();
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let (owner, repo, bot) = (st.owner.clone(), st.repo.clone(), st.bot.clone());
        let ours = |o: &str, r: &str| o == owner && r == repo;
        match (req.method.as_str(), segs.as_slice()) {
            ("GET", ["user"]) => ResponseTemplate::new(200).set_body_json(user(&bot, 77)),
            ("GET", ["repos", o, r, "pulls"]) if ours(o, r) => {
                let v: Vec<Value> = st
                    .pulls
                    .iter()
                    .filter(|pr| !st.merged.contains_key(&pr.number))
                    .map(|pr| pull(&owner, &repo, pr, &st.clone_url, None))
                    .collect();
                ResponseTemplate::new(200).set_body_json(v)
            }
            ("GET", ["repos", o, r, "pulls", n]) if ours(o, r) => {
                match st.pulls.iter().find(|pr| pr.number.to_string() == *n) {
                    Some(pr) => ResponseTemplate::new(200).set_body_json(pull(
                        &owner,
                        &repo,
                        pr,
                        &st.clone_url,
                        st.merged.get(&pr.number).map(String::as_str),
                    )),
                    None => github_error(404, "Not Found"),
                }
            }
            ("GET", ["repos", o, r, "issues", n, "comments"]) if ours(o, r) => {
                let Ok(n) = n.parse::<u64>() else {
                    return github_error(404, "Not Found");
                };
                let v: Vec<Value> = st
                    .comments
                    .iter()
                    .filter(|(i, _)| *i == n)
                    .map(|(_, c)| c.clone())
                    .collect();
                ResponseTemplate::new(200).set_body_json(v)
            }
            ("POST", ["repos", o, r, "issues", n, "comments"]) if ours(o, r) => {
                let (Ok(n), Some(text)) = (n.parse::<u64>(), body["body"].as_str()) else {
                    return github_error(422, "Validation Failed");
                };
                st.next_id += 1;
                let c = comment(&owner, &repo, 1000 + st.next_id, n, text, &bot, &bot);
                st.comments.push((n, c.clone()));
                ResponseTemplate::new(201).set_body_json(c)
            }
            ("PATCH", ["repos", o, r, "issues", "comments", id]) if ours(o, r) => {
                let Ok(id) = id.parse::<u64>() else {
                    return github_error(404, "Not Found");
                };
                match st.comments.iter_mut().find(|(_, c)| c["id"] == id) {
                    Some((_, c)) if c["user"]["login"] == bot.as_str() => {
                        c["body"] = body["body"].clone();
                        c["updated_at"] = json!("2026-11-30T11:00:00Z");
                        ResponseTemplate::new(200).set_body_json(c.clone())
                    }
                    Some(_) => github_error(403, "Must have admin rights to Repository."),
                    None => github_error(404, "Not Found"),
                }
            }
            ("GET", ["repos", o, r, "commits", sha, "statuses"]) if ours(o, r) => {
                ResponseTemplate::new(200)
                    .set_body_json(st.statuses.get(*sha).cloned().unwrap_or_default())
            }
            ("POST", ["repos", o, r, "statuses", sha]) if ours(o, r) => {
                let d = body["description"].as_str().unwrap_or("");
                let state_ok = matches!(
                    body["state"].as_str(),
                    Some("error" | "failure" | "pending" | "success")
                );
                if d.chars().count() > 140 || !state_ok {
                    return github_error(422, "Validation Failed");
                }
                st.next_id += 1;
                let s = status(&owner, &repo, &bot, st.next_id, sha, &body);
                st.statuses
                    .entry(sha.to_string())
                    .or_default()
                    .insert(0, s.clone());
                ResponseTemplate::new(201).set_body_json(s)
            }
            _ => github_error(404, "Not Found"),
        }
    }
}

/// The fake: a local HTTP server answering like `api.github.com` for one repository.
#[derive(Debug)]
pub struct FakeGithub {
    server: MockServer,
    state: Arc<Mutex<State>>,
}

impl FakeGithub {
    /// Starts a fake for `owner/repo` accepting `token`; PRs report
    /// `clone_url` (e.g. `file:///path/to/bare.git`) as their repository's
    /// clone URL; the token's user is `bot`.
    pub async fn start(
        owner: &str,
        repo: &str,
        token: &str,
        bot: &str,
        clone_url: &str,
    ) -> FakeGithub {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State {
            owner: owner.into(),
            repo: repo.into(),
            token: token.into(),
            bot: bot.into(),
            clone_url: clone_url.into(),
            ..Default::default()
        }));
        Mock::given(wiremock::matchers::any())
            .respond_with(Api(state.clone()))
            .with_priority(10)
            .mount(&server)
            .await;
        FakeGithub { server, state }
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The wiremock server, to mount injected failures (priority < 10).
    pub fn server(&self) -> &MockServer {
        &self.server
    }

    /// The API root to configure clients with.
    pub fn api_url(&self) -> String {
        self.server.uri()
    }

    /// A client config for this fake, with its token.
    pub fn config(&self) -> GithubConfig {
        let st = self.st();
        GithubConfig {
            api_url: self.server.uri(),
            owner: st.owner.clone(),
            repo: st.repo.clone(),
            token: Some(SecretString::from(st.token.clone())),
            retry: RetryPolicy::default(),
        }
    }

    /// `https://github.com/OWNER/REPO/pull/N` of a PR in this fake.
    pub fn pr_url(&self, number: u64) -> String {
        let st = self.st();
        format!("https://github.com/{}/{}/pull/{number}", st.owner, st.repo)
    }

    /// Opens (or replaces) a pull request.
    pub fn open_pull(&self, pull: FakePull) {
        let mut st = self.st();
        st.pulls.retain(|p| p.number != pull.number);
        st.pulls.push(pull);
    }

    /// Merges a pull request as GitHub does: it leaves the open list and
    /// reads back closed, with `merged_at` and `merge_commit_sha` set. (The
    /// git side, pushing the merge to the base branch, is the caller's.)
    pub fn merge_pull(&self, number: u64, merge_commit_sha: &str) {
        self.st()
            .merged
            .insert(number, merge_commit_sha.to_string());
    }

    /// Closes (removes) a pull request.
    pub fn close_pull(&self, number: u64) {
        self.st().pulls.retain(|p| p.number != number);
    }

    /// Adds a comment by any user (e.g. one that imitates the node's marker).
    pub fn add_comment(&self, issue: u64, login: &str, body: &str) -> u64 {
        let mut st = self.st();
        st.next_id += 1;
        let id = 1000 + st.next_id;
        let c = comment(&st.owner, &st.repo, id, issue, body, login, &st.bot);
        st.comments.push((issue, c));
        id
    }

    /// (state, description) of the statuses on `sha`, newest first.
    pub fn statuses(&self, sha: &str) -> Vec<(String, String)> {
        self.st()
            .statuses
            .get(sha)
            .map(|v| {
                v.iter()
                    .map(|s| {
                        (
                            s["state"].as_str().unwrap_or("").to_string(),
                            s["description"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The comments on PR `issue`, oldest first, as GitHub returns them.
    pub fn comments(&self, issue: u64) -> Vec<Value> {
        self.st()
            .comments
            .iter()
            .filter(|(i, _)| *i == issue)
            .map(|(_, c)| c.clone())
            .collect()
    }

    /// Every request the stateful part answered (injected failures are not in it).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.st().log.clone()
    }
}

// ---------------------------------------------------------------- response shapes

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

fn repository(owner: &str, repo: &str, clone_url: &str) -> Value {
    let api = format!("https://api.github.com/repos/{owner}/{repo}");
    let mut v = json!({
        "id": 1296269, "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5", "name": repo, "full_name": format!("{owner}/{repo}"),
        "owner": user(owner, 9001), "private": false, "html_url": format!("https://github.com/{owner}/{repo}"),
        "description": "Jobs the collective may run", "fork": false, "url": api,
        "git_url": format!("git://github.com/{owner}/{repo}.git"), "ssh_url": format!("git@github.com:{owner}/{repo}.git"),
        "clone_url": clone_url, "mirror_url": null, "svn_url": format!("https://github.com/{owner}/{repo}"),
        "homepage": null, "language": "Python", "forks_count": 3, "stargazers_count": 12, "watchers_count": 12,
        "size": 108, "default_branch": "main", "open_issues_count": 2, "is_template": false,
        "topics": ["dao", "data-cooperative"], "has_issues": true, "has_projects": false, "has_wiki": false,
        "has_pages": false, "has_downloads": true, "archived": false, "disabled": false, "visibility": "public",
        "pushed_at": "2026-11-30T10:06:43Z", "created_at": "2026-01-26T19:01:12Z", "updated_at": "2026-11-30T10:14:43Z"
    });
    let more = json!({
        "permissions": {"admin": false, "push": false, "pull": true},
        "allow_rebase_merge": true, "temp_clone_token": "", "allow_squash_merge": true, "allow_auto_merge": false,
        "delete_branch_on_merge": true, "allow_merge_commit": true, "subscribers_count": 4, "network_count": 3,
        "license": {"key": "apache-2.0", "name": "Apache License 2.0", "url": "https://api.github.com/licenses/apache-2.0",
                    "spdx_id": "Apache-2.0", "node_id": "MDc6TGljZW5zZTI="},
        "forks": 3, "open_issues": 2, "watchers": 12
    });
    // The hypermedia URL templates every repository object carries.
    let templates = [
        ("archive_url", "/{archive_format}{/ref}"),
        ("assignees_url", "/assignees{/user}"),
        ("blobs_url", "/git/blobs{/sha}"),
        ("branches_url", "/branches{/branch}"),
        ("collaborators_url", "/collaborators{/collaborator}"),
        ("comments_url", "/comments{/number}"),
        ("commits_url", "/commits{/sha}"),
        ("compare_url", "/compare/{base}...{head}"),
        ("contents_url", "/contents/{+path}"),
        ("contributors_url", "/contributors"),
        ("deployments_url", "/deployments"),
        ("downloads_url", "/downloads"),
        ("events_url", "/events"),
        ("forks_url", "/forks"),
        ("git_commits_url", "/git/commits{/sha}"),
        ("git_refs_url", "/git/refs{/sha}"),
        ("git_tags_url", "/git/tags{/sha}"),
        ("issue_comment_url", "/issues/comments{/number}"),
        ("issue_events_url", "/issues/events{/number}"),
        ("issues_url", "/issues{/number}"),
        ("keys_url", "/keys{/key_id}"),
        ("labels_url", "/labels{/name}"),
        ("languages_url", "/languages"),
        ("merges_url", "/merges"),
        ("milestones_url", "/milestones{/number}"),
        (
            "notifications_url",
            "/notifications{?since,all,participating}",
        ),
        ("pulls_url", "/pulls{/number}"),
        ("releases_url", "/releases{/id}"),
        ("stargazers_url", "/stargazers"),
        ("statuses_url", "/statuses/{sha}"),
        ("subscribers_url", "/subscribers"),
        ("subscription_url", "/subscription"),
        ("tags_url", "/tags"),
        ("teams_url", "/teams"),
        ("trees_url", "/git/trees{/sha}"),
        ("hooks_url", "/hooks"),
    ];
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), more) {
        obj.extend(extra);
        for (k, suffix) in templates {
            obj.insert(k.to_string(), Value::String(format!("{api}{suffix}")));
        }
    }
    v
}

fn pull(owner: &str, repo: &str, p: &FakePull, clone_url: &str, merged: Option<&str>) -> Value {
    let api = format!("https://api.github.com/repos/{owner}/{repo}");
    let html = format!("https://github.com/{owner}/{repo}/pull/{}", p.number);
    let n = p.number;
    let head = json!({"label": format!("{}:{}", p.author, p.head_ref), "ref": p.head_ref, "sha": p.head_sha,
                      "user": user(&p.author, 4242), "repo": repository(owner, repo, clone_url)});
    let base = json!({"label": format!("{owner}:{}", p.base_ref), "ref": p.base_ref, "sha": p.base_sha,
                      "user": user(owner, 9001), "repo": repository(owner, repo, clone_url)});
    let links = json!({
        "self": {"href": format!("{api}/pulls/{n}")}, "html": {"href": html},
        "issue": {"href": format!("{api}/issues/{n}")}, "comments": {"href": format!("{api}/issues/{n}/comments")},
        "review_comments": {"href": format!("{api}/pulls/{n}/comments")},
        "review_comment": {"href": format!("{api}/pulls/comments{{/number}}")},
        "commits": {"href": format!("{api}/pulls/{n}/commits")},
        "statuses": {"href": format!("{api}/statuses/{}", p.head_sha)}
    });
    let mut v = json!({
        "url": format!("{api}/pulls/{n}"), "id": 1_000_000 + n, "node_id": format!("PR_kwDOAbc{n}"),
        "html_url": html, "diff_url": format!("{html}.diff"), "patch_url": format!("{html}.patch"),
        "issue_url": format!("{api}/issues/{n}"), "commits_url": format!("{api}/pulls/{n}/commits"),
        "review_comments_url": format!("{api}/pulls/{n}/comments"), "review_comment_url": format!("{api}/pulls/comments{{/number}}"),
        "comments_url": format!("{api}/issues/{n}/comments"), "statuses_url": format!("{api}/statuses/{}", p.head_sha),
        "number": n, "state": "open", "locked": false, "title": p.title, "user": user(&p.author, 4242),
        "body": p.body, "labels": [], "milestone": null, "active_lock_reason": null,
        "created_at": "2026-11-30T09:01:12Z", "updated_at": "2026-11-30T09:31:12Z",
        "closed_at": null, "merged_at": null, "merge_commit_sha": null,
        "assignee": null, "assignees": [], "requested_reviewers": [], "requested_teams": []
    });
    if let Some(obj) = v.as_object_mut() {
        obj.insert("head".into(), head);
        obj.insert("base".into(), base);
        obj.insert("_links".into(), links);
        obj.insert("author_association".into(), json!("CONTRIBUTOR"));
        if let Some(sha) = merged {
            obj.insert("state".into(), json!("closed"));
            obj.insert("closed_at".into(), json!("2026-11-30T10:02:00Z"));
            obj.insert("merged_at".into(), json!("2026-11-30T10:02:00Z"));
            obj.insert("merge_commit_sha".into(), json!(sha));
            obj.insert("merged".into(), json!(true));
        }
        obj.insert("auto_merge".into(), Value::Null);
        obj.insert("draft".into(), json!(false));
    }
    v
}

#[allow(clippy::too_many_arguments)]
fn comment(
    owner: &str,
    repo: &str,
    id: u64,
    issue: u64,
    body: &str,
    login: &str,
    bot: &str,
) -> Value {
    let api = format!("https://api.github.com/repos/{owner}/{repo}");
    json!({
        "id": id, "node_id": format!("IC_kwDOAbc{id}"), "url": format!("{api}/issues/comments/{id}"),
        "html_url": format!("https://github.com/{owner}/{repo}/pull/{issue}#issuecomment-{id}"),
        "body": body, "user": user(login, if login == bot { 77 } else { 666 }),
        "created_at": "2026-11-30T10:00:00Z", "updated_at": "2026-11-30T10:00:00Z",
        "issue_url": format!("{api}/issues/{issue}"), "author_association": "NONE",
        "performed_via_github_app": null,
        "reactions": {"url": format!("{api}/issues/comments/{id}/reactions"), "total_count": 0, "+1": 0, "-1": 0,
                      "laugh": 0, "hooray": 0, "confused": 0, "heart": 0, "rocket": 0, "eyes": 0}
    })
}

fn status(owner: &str, repo: &str, bot: &str, id: u64, sha: &str, body: &Value) -> Value {
    json!({
        "url": format!("https://api.github.com/repos/{owner}/{repo}/statuses/{sha}"),
        "avatar_url": "https://avatars.githubusercontent.com/u/77?v=4", "id": id, "node_id": format!("SC_kwDOAbc{id}"),
        "state": body["state"].clone(), "description": body.get("description").cloned().unwrap_or(Value::Null),
        "target_url": body.get("target_url").cloned().unwrap_or(Value::Null),
        "context": body.get("context").cloned().unwrap_or(json!("default")),
        "created_at": "2026-11-30T10:00:00Z", "updated_at": "2026-11-30T10:00:00Z", "creator": user(bot, 77)
    })
}
