//! The node's HTTP API (axum).
//!
//! Security argument. Everything served is public by design: status, public
//! keys, the log (static tlog-tiles files, so any web server or CDN could
//! serve them instead), run records, and the outbox, which holds only age
//! ciphertexts (only `*.age` files are served). No endpoint changes state:
//! there is no deploy or override API. `POST /v1/refresh` (for push
//! webhooks) is only a hint: it makes the node fetch and re-read the truth
//! sooner, rate-limited, and cannot make it decide anything differently. Paths are checked component by
//! component (no `..`, no absolute paths, no symlinks) before touching disk.

use std::fmt::Write as _;
use std::num::NonZeroU32;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{watch, Notify};

use crate::journal::JournalReader;
use crate::status::{Metrics, Status};
use crate::witness::Witnesses;

/// What the API may see: a status snapshot, the log (read-only), public
/// keys and counters. No private key is reachable from here.
#[derive(Clone)]
pub struct View {
    /// The loop's published status.
    pub status: watch::Receiver<Status>,
    /// The log, read-only.
    pub journal: JournalReader,
    /// Public identity of the node.
    pub public: PublicInfo,
    /// Witness cosignatures and their state.
    pub witnesses: Arc<Witnesses>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Where exported ciphertexts are published.
    pub outbox_dir: PathBuf,
    /// For `collective_uptime_seconds`.
    pub started_at: std::time::Instant,
    /// The `/v1/refresh` gate.
    pub refresh: Arc<RefreshGate>,
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// The node's public identity, served at `/v1/node`.
#[derive(Debug, Clone, Serialize)]
pub struct PublicInfo {
    /// Node id (0x-hex).
    pub node_id: String,
    /// Chain id the node runs on.
    pub chain_id: u64,
    /// age recipient contributors encrypt to.
    pub encryption_recipient: String,
    /// Ed25519 log key (base64).
    pub log_public_key: String,
    /// The log's C2SP note verifier key.
    pub log_verifier_key: String,
    /// The log's origin line.
    pub log_origin: String,
}

/// Requests per second `/v1/refresh` lets through (with a burst of
/// [`REFRESH_BURST`]); the rest get 429 and change nothing.
pub const REFRESH_PER_SECOND: u32 = 2;
/// Burst allowance of `/v1/refresh`.
pub const REFRESH_BURST: u32 = 5;

/// Rate limit and debounce for `/v1/refresh`.
///
/// Amplification argument: a request only sets a flag and wakes the loop.
/// Requests that arrive while a wake is pending are folded into it (the
/// loop reads the flag once per pass), and the rate limiter caps how often
/// the flag can be raised at all, so a flood of requests costs at most
/// [`REFRESH_PER_SECOND`] extra passes per second, whatever its size.
pub struct RefreshGate {
    limiter: DefaultDirectRateLimiter,
    fetch_requested: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for RefreshGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshGate").finish_non_exhaustive()
    }
}

impl RefreshGate {
    /// A gate that raises `fetch_requested` and wakes the loop.
    pub fn new(fetch_requested: Arc<AtomicBool>, wake: Arc<Notify>) -> RefreshGate {
        let quota =
            Quota::per_second(NonZeroU32::new(REFRESH_PER_SECOND).unwrap_or(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(REFRESH_BURST).unwrap_or(NonZeroU32::MIN));
        RefreshGate {
            limiter: RateLimiter::direct(quota),
            fetch_requested,
            wake,
        }
    }

    /// Whether this request was let through. A request folded into a
    /// pending wake counts as let through: it will be served by that pass.
    pub fn request(&self) -> bool {
        if self.fetch_requested.load(Ordering::Relaxed) {
            return true;
        }
        if self.limiter.check().is_err() {
            return false;
        }
        self.fetch_requested.store(true, Ordering::Relaxed);
        self.wake.notify_one();
        true
    }
}

/// Build the router.
pub fn router(view: View) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/v1/status", get(status))
        .route("/v1/node", get(node))
        .route("/v1/runs", get(runs))
        .route("/v1/outbox/{*path}", get(outbox))
        .route("/log/checkpoint", get(checkpoint))
        .route("/log/{*path}", get(log_file))
        .route("/metrics", get(metrics))
        .route("/v1/refresh", axum::routing::post(refresh))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            MAX_CONCURRENT_REQUESTS,
        ))
        .with_state(view)
}

/// Requests served at once; the rest wait their turn. A flood of clients
/// then costs bounded memory and file descriptors (an outbox download
/// holds one open file), and the loop, which never waits on HTTP, is not
/// slowed by it.
pub const MAX_CONCURRENT_REQUESTS: usize = 128;

type St = State<View>;

async fn status(State(v): St) -> Json<serde_json::Value> {
    let s = v.status.borrow().clone();
    let mut out = serde_json::to_value(&s).unwrap_or_default();
    out["recent"] = serde_json::to_value(v.journal.latest(20)).unwrap_or_default();
    out["log_size"] = json!(v.journal.head().0);
    out["witnesses"] = json!(v.witnesses.status());
    Json(out)
}

async fn node(State(v): St) -> Json<serde_json::Value> {
    let mut out = serde_json::to_value(&v.public).unwrap_or_default();
    out["controller_version"] = json!(env!("CARGO_PKG_VERSION"));
    Json(out)
}

async fn refresh(State(v): St) -> Response {
    if v.refresh.request() {
        (StatusCode::ACCEPTED, "refresh requested\n").into_response()
    } else {
        v.metrics.refresh_limited.inc();
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            "too many refresh requests; the node also polls on its own\n",
        )
            .into_response()
    }
}

/// `/v1/runs?limit=N&before=INDEX`: the newest `limit` run entries (default
/// [`RUNS_PAGE`], at most [`RUNS_PAGE_MAX`]) with a log index below
/// `before`, oldest first; `next_before` pages further back. A response is
/// bounded whatever the log's length.
async fn runs(
    State(v): St,
    axum::extract::Query(q): axum::extract::Query<RunsQuery>,
) -> Json<serde_json::Value> {
    let limit = q.limit.unwrap_or(RUNS_PAGE).clamp(1, RUNS_PAGE_MAX);
    let (page, next) = v.journal.state(|st| {
        let end = match q.before {
            Some(b) => st.runs.partition_point(|r| r.index < b),
            None => st.runs.len(),
        };
        let start = end.saturating_sub(limit);
        let page: Vec<_> = st.runs.range(start..end).cloned().collect();
        let next = (start > 0).then(|| page.first().map(|r| r.index)).flatten();
        (page, next)
    });
    Json(json!({ "runs": page, "next_before": next }))
}

/// Default page of `/v1/runs`.
pub const RUNS_PAGE: usize = 500;
/// Largest page of `/v1/runs`.
pub const RUNS_PAGE_MAX: usize = 2000;

#[derive(Debug, serde::Deserialize)]
struct RunsQuery {
    limit: Option<usize>,
    before: Option<u64>,
}

/// Resolve `rel` under `base`, refusing anything but plain components and
/// any symlink on the way.
fn safe_join(base: &Path, rel: &str) -> Option<PathBuf> {
    let mut p = base.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(n) => {
                p.push(n);
                if std::fs::symlink_metadata(&p).ok()?.file_type().is_symlink() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    p.is_file().then_some(p)
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

async fn outbox(State(v): St, UrlPath(path): UrlPath<String>) -> Response {
    use futures::StreamExt;
    use tokio::io::AsyncReadExt;
    if !path.ends_with(".age") {
        return not_found();
    }
    let Some(p) = safe_join(&v.outbox_dir, &path) else {
        return not_found();
    };
    let Ok(mut f) = tokio::fs::File::open(&p).await else {
        return not_found();
    };
    let Ok(meta) = f.metadata().await else {
        return not_found();
    };
    // Only age files leave, whatever else the directory holds; checked on
    // the first bytes, the rest streamed (outputs can be large).
    let mut head = vec![0u8; 64];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]).await {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return not_found(),
        }
    }
    head.truncate(n);
    if !meta.is_file() || !collective_vault::is_age_prefix(&head) {
        return not_found();
    }
    let rest = tokio_util::io::ReaderStream::new(f);
    let body = futures::stream::once(async move { Ok(axum::body::Bytes::from(head)) }).chain(rest);
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, meta.len().to_string()),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

async fn checkpoint(State(v): St) -> Response {
    match v.journal.checkpoint_text().map(|t| v.witnesses.served(t)) {
        // The checkpoint moves with every append: never served stale.
        Some(t) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            t,
        )
            .into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "log unavailable\n").into_response(),
    }
}

async fn log_file(State(v): St, UrlPath(path): UrlPath<String>) -> Response {
    let Some(p) = safe_join(v.journal.log_dir(), &path) else {
        return not_found();
    };
    match tokio::fs::read(p).await {
        // A tile path names its width: its bytes never change (tlog-tiles).
        Ok(bytes) if path.starts_with("tile/") => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            bytes,
        )
            .into_response(),
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => not_found(),
    }
}

/// OpenMetrics text (prometheus-client).
async fn metrics(State(v): St) -> Response {
    v.metrics.uptime.set(v.started_at.elapsed().as_secs());
    v.metrics
        .log_size
        .set(i64::try_from(v.journal.head().0).unwrap_or(i64::MAX));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        v.metrics.encode(),
    )
        .into_response()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A status page a DAO member can read.
async fn index(State(v): St) -> Html<String> {
    let s = v.status.borrow().clone();
    let recent = v.journal.latest(25);
    let (log_size, _) = v.journal.head();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=utf-8><title>collective node</title>\
         <style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}code{{font-size:90%}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:left}}</style></head><body>\
         <h1>collective node</h1><p>Node id <code>{}</code> &middot; chain {} block {}</p>",
        esc(&s.node_id),
        v.public.chain_id,
        s.chain_block.map(|b| b.to_string()).unwrap_or_else(|| "?".into())
    );
    if !s.problems.is_empty() {
        h.push_str("<h2>Problems</h2><table><tr><th>where</th><th>what</th><th>since</th></tr>");
        for (src, p) in &s.problems {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(src),
                esc(&p.message),
                esc(&p.since)
            );
        }
        h.push_str(
            "</table><p>While the chain or repository cannot be read, nothing new deploys.</p>",
        );
    }
    h.push_str("<h2>Deployed tree</h2>");
    match &s.deployed {
        Some(t) => {
            let _ = write!(
                h,
                "<p>sha256 <code>{}</code><br>sha1 <code>{}</code><br>commit <code>{}</code></p>",
                esc(&t.sha256),
                esc(&t.sha1),
                esc(t.commit.as_deref().unwrap_or("-"))
            );
            if let Some(a) = &s.deployed_approval {
                let _ = write!(
                    h,
                    "<p>Approved on chain {} by tx <code>{}</code> in block {} (<code>{}</code>), registry <code>{}</code>.<br>Outputs go to: {}</p>",
                    a.chain_id,
                    esc(&a.tx_hash),
                    a.block_number,
                    esc(&a.block_hash),
                    esc(&a.contract),
                    s.deployed_recipients.iter().map(|r| format!("<code>{}</code>", esc(&r.chars().take(40).collect::<String>()))).collect::<Vec<_>>().join(", ")
                );
            }
        }
        None => h.push_str("<p>Nothing deployed.</p>"),
    }
    h.push_str("<h2>Pending trees (not approved or refused)</h2>");
    if s.pending.is_empty() {
        h.push_str("<p>None.</p>");
    } else {
        h.push_str("<table><tr><th>tree sha256</th><th>why not deployed</th></tr>");
        for (t, r) in &s.pending {
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td></tr>",
                esc(t),
                esc(r)
            );
        }
        h.push_str("</table>");
    }
    let _ = write!(
        h,
        "<h2>Running jobs</h2><p>{}</p>",
        if s.running.is_empty() {
            "None.".into()
        } else {
            esc(&s.running.join(", "))
        }
    );
    let _ = write!(
        h,
        "<h2>Log</h2><p>{} entries, root <code>{}</code>. ",
        log_size,
        esc(&s.log_root)
    );
    match &s.last_anchor {
        Some(a) => {
            let _ = write!(
                h,
                "Last anchored at size {} in tx <code>{}</code> (block {}).",
                a.size,
                esc(&a.tx_hash),
                a.block_number
            );
        }
        None => h.push_str("Not anchored yet."),
    }
    h.push_str(" <a href=\"/log/checkpoint\">checkpoint</a></p><h2>Recent decisions</h2><table><tr><th>#</th><th>decision</th><th>tree</th><th>job</th><th>reason</th><th>time</th></tr>");
    for e in recent {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.index,
            esc(&e.decision),
            esc(&e.tree_sha256.chars().take(16).collect::<String>()),
            esc(e.job.as_deref().unwrap_or("")),
            esc(&e.reason),
            esc(&e.time)
        );
    }
    h.push_str("</table></body></html>");
    Html(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_join_refuses_traversal_and_symlinks() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("a")).unwrap();
        std::fs::write(d.path().join("a/x.age"), b"age").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("a/l.age")).unwrap();
        assert!(safe_join(d.path(), "a/x.age").is_some());
        assert!(safe_join(d.path(), "../etc/passwd").is_none());
        assert!(safe_join(d.path(), "/etc/passwd").is_none());
        assert!(safe_join(d.path(), "a/l.age").is_none());
        assert!(safe_join(d.path(), "a").is_none());
    }

    #[test]
    fn escapes_html() {
        assert_eq!(esc("<a href=\"x\">&"), "&lt;a href=&quot;x&quot;&gt;&amp;");
    }
}
