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
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::node::Inner;

/// Build the router.
pub fn router(inner: Arc<Inner>) -> Router {
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
        .with_state(inner)
}

type St = State<Arc<Inner>>;

async fn status(State(i): St) -> Json<serde_json::Value> {
    let s = i.status.lock().expect("lock").clone();
    let recent = i.state.lock().expect("lock").latest(20);
    let mut v = serde_json::to_value(&s).unwrap_or_default();
    v["recent"] = serde_json::to_value(recent).unwrap_or_default();
    v["log_size"] = json!(i.log_size());
    v["witnesses"] = json!(i.witnesses.status());
    Json(v)
}

async fn node(State(i): St) -> Json<serde_json::Value> {
    Json(json!({
        "node_id": format!("0x{}", hex::encode(i.node_id)),
        "chain_id": i.chain_id,
        "encryption_recipient": i.keys.recipient(),
        "log_public_key": i.keys.log_public_key_base64(),
        "log_verifier_key": i.verifier_key(),
        "log_origin": i.cfg.log.origin,
        "controller_version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn refresh(State(i): St) -> (StatusCode, &'static str) {
    i.fetch_requested.store(true, Ordering::Relaxed);
    i.wake.notify_one();
    (StatusCode::ACCEPTED, "refresh requested\n")
}

/// `/v1/runs?limit=N&before=INDEX`: the newest `limit` run entries (default
/// [`RUNS_PAGE`], at most [`RUNS_PAGE_MAX`]) with a log index below
/// `before`, oldest first; `next_before` pages further back. A response is
/// bounded whatever the log's length.
async fn runs(
    State(i): St,
    axum::extract::Query(q): axum::extract::Query<RunsQuery>,
) -> Json<serde_json::Value> {
    let limit = q.limit.unwrap_or(RUNS_PAGE).clamp(1, RUNS_PAGE_MAX);
    let st = i.state.lock().expect("lock");
    let end = match q.before {
        Some(b) => st.runs.partition_point(|r| r.index < b),
        None => st.runs.len(),
    };
    let start = end.saturating_sub(limit);
    let page = &st.runs[start..end];
    let next = (start > 0).then(|| page.first().map(|r| r.index)).flatten();
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

async fn outbox(State(i): St, UrlPath(path): UrlPath<String>) -> Response {
    use futures::StreamExt;
    use tokio::io::AsyncReadExt;
    if !path.ends_with(".age") {
        return not_found();
    }
    let Some(p) = safe_join(&i.cfg.paths.outbox_dir, &path) else {
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

async fn checkpoint(State(i): St) -> Response {
    match i.checkpoint_text().map(|t| i.witnesses.served(t)) {
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

async fn log_file(State(i): St, UrlPath(path): UrlPath<String>) -> Response {
    let Some(p) = safe_join(i.log_dir(), &path) else {
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

/// Prometheus text exposition format.
async fn metrics(State(i): St) -> Response {
    let m = &i.metrics;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    };
    gauge(
        "collective_reconciles_total",
        "Reconcile rounds.",
        "counter",
        m.reconciles.load(Ordering::Relaxed),
    );
    gauge(
        "collective_read_errors_total",
        "Failed reads of chain or repository.",
        "counter",
        m.read_errors.load(Ordering::Relaxed),
    );
    gauge(
        "collective_jobs_started_total",
        "Jobs started.",
        "counter",
        m.jobs_started.load(Ordering::Relaxed),
    );
    gauge(
        "collective_anchors_total",
        "Checkpoints anchored on chain.",
        "counter",
        m.anchors.load(Ordering::Relaxed),
    );
    gauge(
        "collective_log_size",
        "Entries in the decision log.",
        "gauge",
        i.log_size(),
    );
    gauge(
        "collective_uptime_seconds",
        "Seconds since start.",
        "gauge",
        i.started_at.elapsed().as_secs(),
    );
    let (running, deployed) = {
        let s = i.status.lock().expect("lock");
        (s.running.len() as u64, u64::from(s.deployed.is_some()))
    };
    gauge(
        "collective_jobs_running",
        "Jobs running now.",
        "gauge",
        running,
    );
    gauge(
        "collective_deployed",
        "1 if a tree is deployed.",
        "gauge",
        deployed,
    );
    let _ = writeln!(out, "# HELP collective_actions_total Reconcile actions taken, by kind.\n# TYPE collective_actions_total counter");
    for (k, v) in m.actions.lock().expect("lock").iter() {
        let _ = writeln!(out, "collective_actions_total{{action=\"{k}\"}} {v}");
    }
    let _ = writeln!(out, "# HELP collective_decisions_total Log entries, by decision.\n# TYPE collective_decisions_total counter");
    for (k, v) in i.state.lock().expect("lock").counts.iter() {
        let _ = writeln!(out, "collective_decisions_total{{decision=\"{k}\"}} {v}");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A status page a DAO member can read.
async fn index(State(i): St) -> Html<String> {
    let s = i.status.lock().expect("lock").clone();
    let recent = i.state.lock().expect("lock").latest(25);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=utf-8><title>collective node</title>\
         <style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}code{{font-size:90%}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:left}}</style></head><body>\
         <h1>collective node</h1><p>Node id <code>{}</code> &middot; chain {} block {}</p>",
        esc(&s.node_id),
        i.chain_id,
        s.chain_block.map(|b| b.to_string()).unwrap_or_else(|| "?".into())
    );
    if let Some(e) = &s.chain_error {
        let _ = write!(
            h,
            "<p><b>Chain unreachable:</b> {} (nothing new deploys until it answers)</p>",
            esc(e)
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
        i.log_size(),
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
