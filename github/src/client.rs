//! A thin GitHub REST client over octocrab with the retry behaviour GitHub
//! documents: wait out rate limits (`retry-after`, `x-ratelimit-reset`),
//! back off exponentially on 5xx and transport errors, and give up after a
//! bounded number of attempts with a message that says what happened.
//!
//! octocrab's own retry layer is switched off so there is exactly one retry
//! policy, the one configured here (and tests can make it fast).

use std::time::Duration;

use octocrab::secrecy::SecretString;
use octocrab::Octocrab;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, instrument, warn};

use crate::GithubError;

/// How hard to try before reporting an API failure.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request, the first one included.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles on each further retry.
    pub base_delay: Duration,
    /// Ceiling of one backoff delay.
    pub max_delay: Duration,
    /// A rate limit asking us to wait longer than this is reported instead of waited out.
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_rate_limit_wait: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Which repository to talk to, where the API is, and with which token.
#[derive(Debug, Clone)]
pub struct GithubConfig {
    /// REST API root, `https://api.github.com` or a GitHub Enterprise / test fake URL.
    pub api_url: String,
    pub owner: String,
    pub repo: String,
    /// `None` = anonymous (public repositories, low rate limit, no posting).
    pub token: Option<SecretString>,
    pub retry: RetryPolicy,
}

impl GithubConfig {
    /// Config for `owner/repo` on github.com, token from `GITHUB_TOKEN` if set.
    pub fn new(owner: impl Into<String>, repo: impl Into<String>) -> Self {
        Self {
            api_url: "https://api.github.com".to_string(),
            owner: owner.into(),
            repo: repo.into(),
            token: Self::token_from_env(),
            retry: RetryPolicy::default(),
        }
    }

    /// The token from the `GITHUB_TOKEN` environment variable (empty = none).
    /// The environment is the only place it is read from: it never appears in
    /// config files, command lines or logs.
    pub fn token_from_env() -> Option<SecretString> {
        std::env::var("GITHUB_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .map(|t| SecretString::from(t.trim().to_string()))
    }
}

/// The fields of a pull request this crate uses (from GitHub's pull object).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub html_url: String,
    pub user_login: String,
    pub head_sha: String,
    pub head_ref: String,
    pub base_ref: String,
    pub base_sha: String,
    /// The base repository's clone URL, the default git remote to fetch `refs/pull/N/head` from.
    pub base_clone_url: Option<String>,
    /// Whether the PR was merged (GitHub closes it on merge, usually before
    /// the node has deployed its tree, so the watcher keeps following it).
    pub merged: bool,
}

impl PullRequest {
    fn from_model(p: octocrab::models::pulls::PullRequest) -> Self {
        Self {
            number: p.number,
            title: p.title.unwrap_or_default(),
            body: p.body.unwrap_or_default(),
            html_url: p.html_url.map(|u| u.to_string()).unwrap_or_default(),
            user_login: p.user.map(|u| u.login).unwrap_or_default(),
            head_sha: p.head.sha,
            head_ref: p.head.ref_field,
            base_ref: p.base.ref_field,
            base_sha: p.base.sha,
            base_clone_url: p.base.repo.and_then(|r| r.clone_url).map(|u| u.to_string()),
            merged: p.merged_at.is_some(),
        }
    }
}

/// An issue comment on a PR, as far as we care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IssueComment {
    pub id: u64,
    pub body: String,
    pub user_login: String,
}

/// One commit status, as listed by GitHub (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitStatus {
    pub context: String,
    pub state: String,
    pub description: String,
}

/// `owner`, `repo` and PR number from `https://github.com/OWNER/REPO/pull/N`
/// (any host, so GitHub Enterprise works; also accepts the API form
/// `.../repos/OWNER/REPO/pulls/N`).
pub fn parse_pr_url(url: &str) -> Result<(String, String, u64), GithubError> {
    let bad = || GithubError::BadPrUrl {
        url: url.to_string(),
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    // host / [repos] / owner / repo / pull(s) / n [/files ...]
    let start = if parts.get(1) == Some(&"repos") { 2 } else { 1 };
    let (owner, repo, kind, n) = match parts.get(start..start + 4) {
        Some([o, r, k, n]) => (*o, *r, *k, *n),
        _ => return Err(bad()),
    };
    if !(kind == "pull" || kind == "pulls") || !valid_name(owner) || !valid_name(repo) {
        return Err(bad());
    }
    let n: u64 = n.parse().map_err(|_| bad())?;
    Ok((owner.to_string(), repo.to_string(), n))
}

/// GitHub owner and repository names: letters, digits, `-`, `_`, `.`. Checked
/// because they are pasted into request paths.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// GitHub REST client for one repository.
#[derive(Debug, Clone)]
pub struct GithubClient {
    octo: Octocrab,
    api_url: String,
    owner: String,
    repo: String,
    retry: RetryPolicy,
}

enum Method {
    Get,
    Post,
    Patch,
}

impl GithubClient {
    /// Builds the client. Fails on a bad API URL or an owner/repo name that is not a GitHub name.
    pub fn new(config: GithubConfig) -> Result<Self, GithubError> {
        for (what, v) in [("owner", &config.owner), ("repo", &config.repo)] {
            if !valid_name(v) {
                return Err(GithubError::Api {
                    url: config.api_url.clone(),
                    status: 0,
                    message: format!("invalid repository {what} name {v:?}"),
                });
            }
        }
        let api_url = config.api_url.trim_end_matches('/').to_string();
        let mut builder = Octocrab::builder()
            .base_uri(api_url.as_str())
            .map_err(|source| GithubError::Client {
                what: format!("base URL {api_url}"),
                source,
            })?
            .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
            .add_header(
                http::HeaderName::from_static("x-github-api-version"),
                "2022-11-28".to_string(),
            )
            .add_header(
                http::header::ACCEPT,
                "application/vnd.github+json".to_string(),
            );
        if let Some(token) = config.token {
            builder = builder.personal_token(token);
        }
        let octo = builder.build().map_err(|source| GithubError::Client {
            what: "octocrab builder".into(),
            source,
        })?;
        Ok(Self {
            octo,
            api_url,
            owner: config.owner,
            repo: config.repo,
            retry: config.retry,
        })
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }
    pub fn repo(&self) -> &str {
        &self.repo
    }

    fn repo_path(&self) -> String {
        format!("/repos/{}/{}", self.owner, self.repo)
    }

    /// One request with retries. `target` is a path (`/repos/...`) or an
    /// absolute URL (from a `Link` header). Returns headers and body of a 2xx.
    async fn request(
        &self,
        method: Method,
        target: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(http::HeaderMap, String), GithubError> {
        let url = if target.starts_with('/') {
            format!("{}{target}", self.api_url)
        } else {
            target.to_string()
        };
        let mut last = String::new();
        for attempt in 1..=self.retry.max_attempts {
            let result = match method {
                Method::Get => self.octo._get(target).await,
                Method::Post => self.octo._post(target, body).await,
                Method::Patch => self.octo._patch(target, body).await,
            };
            let response = match result {
                Ok(r) => r,
                Err(e) => {
                    // Transport error: no HTTP answer. The error text comes
                    // from hyper/octocrab and never includes request headers.
                    last = format!("transport error: {e}");
                    if attempt < self.retry.max_attempts {
                        let wait = self.retry.backoff(attempt);
                        warn!(%url, attempt, ?wait, error = %last, "GitHub request failed; retrying");
                        tokio::time::sleep(wait).await;
                    }
                    continue;
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            let text = match self.octo.body_to_string(response).await {
                Ok(t) => t,
                Err(e) => {
                    last = format!("reading response body: {e}");
                    if attempt < self.retry.max_attempts {
                        tokio::time::sleep(self.retry.backoff(attempt)).await;
                    }
                    continue;
                }
            };
            if status.is_success() {
                debug!(%url, status = status.as_u16(), "GitHub request ok");
                return Ok((headers, text));
            }
            let message = api_message(&text);
            match status.as_u16() {
                401 => return Err(GithubError::Unauthorized { url }),
                404 => return Err(GithubError::NotFound { url }),
                code @ (403 | 429) if code == 429 || is_rate_limited(&headers) => {
                    let wait =
                        rate_limit_wait(&headers).unwrap_or_else(|| self.retry.backoff(attempt));
                    if wait > self.retry.max_rate_limit_wait {
                        return Err(GithubError::RateLimited {
                            url,
                            detail: format!(
                                "HTTP {code}, GitHub asks to wait {}s, longer than the {}s this node waits; \
                                 try again later or use a token with a higher limit ({message})",
                                wait.as_secs(),
                                self.retry.max_rate_limit_wait.as_secs()
                            ),
                        });
                    }
                    if attempt == self.retry.max_attempts {
                        return Err(GithubError::RateLimited {
                            url,
                            detail: format!(
                                "HTTP {code}, still limited after {attempt} attempts ({message})"
                            ),
                        });
                    }
                    warn!(%url, attempt, wait_secs = wait.as_secs_f64(), "rate limited by GitHub; waiting before retrying");
                    tokio::time::sleep(wait).await;
                }
                code if code >= 500 => {
                    last = format!("HTTP {code}: {message}");
                    if attempt < self.retry.max_attempts {
                        let wait = self.retry.backoff(attempt);
                        warn!(%url, attempt, ?wait, status = code, "GitHub server error; retrying");
                        tokio::time::sleep(wait).await;
                    }
                }
                code => {
                    return Err(GithubError::Api {
                        url,
                        status: code,
                        message,
                    })
                }
            }
        }
        Err(GithubError::Unavailable {
            url,
            attempts: self.retry.max_attempts,
            last,
        })
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        target: &str,
    ) -> Result<(http::HeaderMap, T), GithubError> {
        let (headers, text) = self.request(Method::Get, target, None).await?;
        let value = serde_json::from_str(&text).map_err(|source| GithubError::Decode {
            url: self.url_of(target),
            source,
        })?;
        Ok((headers, value))
    }

    /// All pages of a list endpoint, following `Link: <...>; rel="next"` (bounded).
    async fn get_all<T: DeserializeOwned>(&self, first: &str) -> Result<Vec<T>, GithubError> {
        const MAX_PAGES: usize = 50;
        let mut out = Vec::new();
        let mut next = Some(first.to_string());
        let mut pages = 0;
        while let Some(target) = next.take() {
            let (headers, mut page): (_, Vec<T>) = self.get_json(&target).await?;
            out.append(&mut page);
            pages += 1;
            if pages >= MAX_PAGES {
                warn!(url = %self.url_of(first), "stopping after {MAX_PAGES} pages");
                break;
            }
            next = headers
                .get(http::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
        }
        Ok(out)
    }

    fn url_of(&self, target: &str) -> String {
        if target.starts_with('/') {
            format!("{}{target}", self.api_url)
        } else {
            target.to_string()
        }
    }

    /// Open pull requests of the repository.
    #[instrument(skip(self), fields(repo = %format!("{}/{}", self.owner, self.repo)))]
    pub async fn list_open_pulls(&self) -> Result<Vec<PullRequest>, GithubError> {
        let path = format!("{}/pulls?state=open&per_page=100", self.repo_path());
        let pulls: Vec<octocrab::models::pulls::PullRequest> = self.get_all(&path).await?;
        Ok(pulls.into_iter().map(PullRequest::from_model).collect())
    }

    /// One pull request by number.
    #[instrument(skip(self))]
    pub async fn get_pull(&self, number: u64) -> Result<PullRequest, GithubError> {
        let path = format!("{}/pulls/{number}", self.repo_path());
        let (_, pull): (_, octocrab::models::pulls::PullRequest) = self.get_json(&path).await?;
        Ok(PullRequest::from_model(pull))
    }

    /// Login of the token's user, or `None` when the token cannot tell (GitHub
    /// App installation tokens get 403 on `/user`) or there is no token.
    pub(crate) async fn current_login(&self) -> Result<Option<String>, GithubError> {
        #[derive(serde::Deserialize)]
        struct User {
            login: String,
        }
        match self.get_json::<User>("/user").await {
            Ok((_, u)) => Ok(Some(u.login)),
            Err(GithubError::Api { status: 403, .. }) | Err(GithubError::NotFound { .. }) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn list_issue_comments(
        &self,
        number: u64,
    ) -> Result<Vec<IssueComment>, GithubError> {
        let path = format!("{}/issues/{number}/comments?per_page=100", self.repo_path());
        let comments: Vec<octocrab::models::issues::Comment> = self.get_all(&path).await?;
        Ok(comments
            .into_iter()
            .map(|c| IssueComment {
                id: c.id.into_inner(),
                body: c.body.unwrap_or_default(),
                user_login: c.user.login,
            })
            .collect())
    }

    pub(crate) async fn create_comment(&self, number: u64, body: &str) -> Result<u64, GithubError> {
        let path = format!("{}/issues/{number}/comments", self.repo_path());
        let (_, text) = self
            .request(
                Method::Post,
                &path,
                Some(&serde_json::json!({ "body": body })),
            )
            .await?;
        let c: octocrab::models::issues::Comment =
            serde_json::from_str(&text).map_err(|source| GithubError::Decode {
                url: self.url_of(&path),
                source,
            })?;
        Ok(c.id.into_inner())
    }

    pub(crate) async fn update_comment(&self, id: u64, body: &str) -> Result<(), GithubError> {
        let path = format!("{}/issues/comments/{id}", self.repo_path());
        self.request(
            Method::Patch,
            &path,
            Some(&serde_json::json!({ "body": body })),
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn list_statuses(&self, sha: &str) -> Result<Vec<CommitStatus>, GithubError> {
        let path = format!("{}/commits/{sha}/statuses?per_page=100", self.repo_path());
        let (_, statuses): (_, Vec<octocrab::models::Status>) = self.get_json(&path).await?;
        Ok(statuses
            .into_iter()
            .map(|s| CommitStatus {
                context: s.context.unwrap_or_default(),
                state: status_state_str(&s.state).to_string(),
                description: s.description.unwrap_or_default(),
            })
            .collect())
    }

    pub(crate) async fn create_status(
        &self,
        sha: &str,
        state: &str,
        description: &str,
        context: &str,
        target_url: Option<&str>,
    ) -> Result<(), GithubError> {
        let path = format!("{}/statuses/{sha}", self.repo_path());
        let mut body =
            serde_json::json!({ "state": state, "description": description, "context": context });
        if let Some(t) = target_url {
            body["target_url"] = serde_json::Value::String(t.to_string());
        }
        self.request(Method::Post, &path, Some(&body)).await?;
        Ok(())
    }
}

fn status_state_str(s: &octocrab::models::StatusState) -> &'static str {
    use octocrab::models::StatusState as S;
    match s {
        S::Error => "error",
        S::Failure => "failure",
        S::Pending => "pending",
        S::Success => "success",
        _ => "unknown",
    }
}

/// GitHub error bodies are `{"message": "...", "documentation_url": "..."}`.
fn api_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.chars().take(200).collect())
}

fn header_u64(headers: &http::HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// A 403 is a rate limit (not a permission problem) when GitHub says so in the headers.
fn is_rate_limited(headers: &http::HeaderMap) -> bool {
    header_u64(headers, "x-ratelimit-remaining") == Some(0) || headers.contains_key("retry-after")
}

/// How long GitHub asks us to wait: `retry-after` seconds, else until `x-ratelimit-reset`.
fn rate_limit_wait(headers: &http::HeaderMap) -> Option<Duration> {
    if let Some(s) = header_u64(headers, "retry-after") {
        return Some(Duration::from_secs(s));
    }
    if header_u64(headers, "x-ratelimit-remaining") == Some(0) {
        let reset = header_u64(headers, "x-ratelimit-reset")?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        return Some(Duration::from_secs(reset.saturating_sub(now) + 1));
    }
    None
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let mut pieces = part.split(';');
        let url = pieces.next()?.trim().strip_prefix('<')?.strip_suffix('>')?;
        pieces
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| url.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pr_urls() {
        assert_eq!(
            parse_pr_url("https://github.com/acme/data/pull/12").unwrap(),
            ("acme".into(), "data".into(), 12)
        );
        assert_eq!(
            parse_pr_url("https://github.com/acme/data/pull/12/files")
                .unwrap()
                .2,
            12
        );
        assert_eq!(
            parse_pr_url("https://api.github.com/repos/acme/data/pulls/7")
                .unwrap()
                .2,
            7
        );
        for bad in [
            "github.com/acme/data/pull/1",
            "https://github.com/acme/data/issues/1",
            "https://github.com/acme/data/pull/x",
            "https://github.com/acme/../pull/1",
            "https://github.com/acme",
        ] {
            assert!(
                matches!(parse_pr_url(bad), Err(GithubError::BadPrUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn link_header() {
        let h = r#"<https://api.github.com/r?page=2>; rel="next", <https://api.github.com/r?page=5>; rel="last""#;
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://api.github.com/r?page=2")
        );
        assert_eq!(next_link(r#"<https://x/r?page=1>; rel="prev""#), None);
    }

    #[test]
    fn backoff_is_bounded() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..Default::default()
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(3), Duration::from_millis(400));
        assert_eq!(p.backoff(10), Duration::from_secs(1));
        assert_eq!(p.backoff(100), Duration::from_secs(1));
    }

    #[test]
    fn rate_limit_headers() {
        let mut h = http::HeaderMap::new();
        assert!(!is_rate_limited(&h));
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        assert!(is_rate_limited(&h));
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(rate_limit_wait(&h), Some(Duration::from_secs(7)));
    }
}
