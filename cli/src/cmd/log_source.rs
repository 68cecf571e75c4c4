//! Reading a log's files from a directory or over HTTP(S), as hostile
//! input: bounded in bytes per file and in time per request and overall.

use std::path::Path;

use anyhow::Context as _;
use collective_attest::TileSource;

use crate::Exit;

/// How long the auditor waits for a hostile or slow server.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Deadlines {
    /// Seconds one request may take, body included.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub request_timeout: u64,
    /// Seconds the whole log may take to read.
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    pub deadline: u64,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            request_timeout: 30,
            deadline: 1800,
        }
    }
}

/// Reads a log's static files over HTTP(S) (blocking; run off the runtime).
/// Hostile server defenses: every body is read up to the largest legal
/// file at its path and no further (after gzip decoding, so a gzip bomb
/// stops there too); every request has a timeout, and all of them one
/// overall deadline.
#[derive(Debug)]
pub struct HttpSource {
    base: String,
    client: reqwest::blocking::Client,
    per_request: std::time::Duration,
    overall: std::time::Duration,
    deadline: std::time::Instant,
}

impl HttpSource {
    pub fn new(base: &str, d: Deadlines) -> anyhow::Result<Self> {
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(d.request_timeout.min(10)))
            .build()
            .context("building the HTTP client")?;
        let overall = std::time::Duration::from_secs(d.deadline);
        Ok(HttpSource {
            base: base.trim_end_matches('/').to_string(),
            client,
            per_request: std::time::Duration::from_secs(d.request_timeout),
            overall,
            deadline: std::time::Instant::now() + overall,
        })
    }

    fn deadline_error(&self, path: &str, overall: bool) -> collective_attest::AttestError {
        collective_attest::AttestError::Deadline {
            source_name: self.base.clone(),
            path: path.to_string(),
            seconds: if overall {
                self.overall.as_secs()
            } else {
                self.per_request.as_secs()
            },
            which: if overall { "overall" } else { "per-request" },
        }
    }
}

fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<reqwest::Error>() {
            if r.is_timeout() {
                return true;
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
            // An io::Error's `source` skips the error it wraps.
            if let Some(inner) = io.get_ref() {
                if is_timeout(inner) {
                    return true;
                }
            }
        }
        if e.to_string().contains("timed out") {
            return true;
        }
        cur = e.source();
    }
    false
}

impl TileSource for HttpSource {
    fn name(&self) -> String {
        self.base.clone()
    }
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, collective_attest::AttestError> {
        use collective_attest::AttestError;
        let url = format!("{}/{}", self.base, path);
        let err = |message: String| AttestError::Source {
            source_name: self.base.clone(),
            path: path.to_string(),
            message,
        };
        let left = self
            .deadline
            .saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(self.deadline_error(path, true));
        }
        let overall = left < self.per_request;
        let resp = match self
            .client
            .get(&url)
            .timeout(left.min(self.per_request))
            .send()
        {
            Ok(r) => r,
            Err(e) if is_timeout(&e) => return Err(self.deadline_error(path, overall)),
            Err(e) => return Err(err(e.to_string())),
        };
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(err(format!("HTTP {}", resp.status())));
        }
        let limit = collective_attest::tiles::max_len(path);
        let too_large = || AttestError::TooLarge {
            source_name: self.base.clone(),
            path: path.to_string(),
            limit,
        };
        let mut timed_out = false;
        let body = collective_attest::tiles::read_capped(resp, limit, too_large, |e| {
            timed_out = is_timeout(&e);
            err(e.to_string())
        });
        match body {
            Err(_) if timed_out => Err(self.deadline_error(path, overall)),
            b => b.map(Some),
        }
    }
}

/// A log source from `--log`.
pub fn source(log: &str, d: Deadlines) -> anyhow::Result<Box<dyn TileSource + Send>> {
    if log.starts_with("http://") || log.starts_with("https://") {
        Ok(Box::new(HttpSource::new(log, d)?))
    } else {
        let dir = Path::new(log);
        if !dir.is_dir() {
            return Err(Exit::usage(format!(
                "--log {log}: not a directory or http(s) URL"
            )));
        }
        Ok(Box::new(collective_attest::DirSource::new(dir)))
    }
}
