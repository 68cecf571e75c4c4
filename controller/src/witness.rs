//! Submitting checkpoints to witnesses (C2SP tlog-witness) and serving the
//! cosigned checkpoint.
//!
//! Security argument: see `collective_attest::witness`. The node only
//! adds what witnesses return after checking each line is a valid
//! cosignature by that witness's configured key on exactly the checkpoint
//! sent; a witness that refuses, lies or is down costs its cosignature and
//! nothing else (the plain checkpoint is still served, and the problem shows
//! in `/v1/status`). Witness answers are capped in size and time.
//!
//! Not covered: a quorum of witnesses colluding with the operator.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use collective_attest::witness::{
    add_checkpoint_body, append_cosignatures, count_cosignatures, parse_size, CosignatureVerifier,
};
use collective_attest::DirSource;
use serde::Serialize;

use crate::config::WitnessConfig;
use crate::ControllerError;

/// Largest witness answer read.
const MAX_ANSWER: usize = 16 * 1024;
/// Per-request timeout.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What `/v1/status` shows for one witness.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WitnessStatus {
    /// The witness's add-checkpoint base URL.
    pub url: String,
    /// The witness's key name.
    pub name: String,
    /// The size it last cosigned.
    pub cosigned_size: Option<u64>,
    /// Why the last submission failed, until one succeeds.
    pub error: Option<String>,
}

#[derive(Debug)]
struct Witness {
    url: String,
    verifier: CosignatureVerifier,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The witness's size for this log, as it last told us.
    known: Option<u64>,
    /// The checkpoint text it last cosigned, and its lines.
    cosig: Option<(String, Vec<u8>)>,
    error: Option<String>,
}

/// The configured witnesses and the latest cosigned checkpoint.
#[derive(Debug)]
pub struct Witnesses {
    list: Vec<Witness>,
    client: reqwest::Client,
}

impl Witnesses {
    /// From node.yaml's `log.witnesses` (keys were validated with the config).
    pub fn new(cfg: &[WitnessConfig]) -> Result<Witnesses, ControllerError> {
        let list = cfg
            .iter()
            .map(|w| {
                Ok(Witness {
                    url: w.url.trim_end_matches('/').to_string(),
                    verifier: CosignatureVerifier::parse(&w.vkey)?,
                    state: Mutex::new(State::default()),
                })
            })
            .collect::<Result<Vec<_>, collective_attest::AttestError>>()
            .map_err(ControllerError::WitnessKey)?;
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|source| ControllerError::HttpClient {
                what: "witnesses",
                source,
            })?;
        Ok(Witnesses { list, client })
    }

    /// Whether any witness is configured.
    pub fn any(&self) -> bool {
        !self.list.is_empty()
    }

    /// What each witness last did.
    pub fn status(&self) -> Vec<WitnessStatus> {
        self.list
            .iter()
            .map(|w| {
                let s = w.state.lock().expect("lock");
                WitnessStatus {
                    url: w.url.clone(),
                    name: w.verifier.name().to_string(),
                    cosigned_size: s.known.filter(|_| s.cosig.is_some()),
                    error: s.error.clone(),
                }
            })
            .collect()
    }

    /// The checkpoint to serve: `checkpoint` with the cosignatures the
    /// witnesses returned for exactly it.
    pub fn served(&self, checkpoint: String) -> String {
        let mut note = checkpoint.clone();
        for w in &self.list {
            let s = w.state.lock().expect("lock");
            if let Some((cp, lines)) = &s.cosig {
                if *cp == checkpoint {
                    note.push_str(&String::from_utf8_lossy(lines));
                }
            }
        }
        note
    }

    /// Whether witness `i` has yet to cosign `checkpoint`.
    fn needs(&self, i: usize, checkpoint: &str) -> bool {
        let s = self.list[i].state.lock().expect("lock");
        s.cosig.as_ref().is_none_or(|(cp, _)| cp != checkpoint)
    }

    /// Submits `checkpoint` (of the log in `log_dir`) to witness `i` and
    /// records the outcome (a changed error is logged once).
    async fn submit_to(&self, i: usize, log_dir: PathBuf, checkpoint: String, log_vkey: &str) {
        let w = &self.list[i];
        let r = self.submit(w, log_dir, &checkpoint, log_vkey).await;
        let mut s = w.state.lock().expect("lock");
        match r {
            Ok(lines) => {
                s.cosig = Some((checkpoint, lines));
                s.error = None;
            }
            Err(e) => {
                if s.error.as_deref() != Some(e.as_str()) {
                    tracing::warn!(witness = %w.url, error = %e, "witness did not cosign");
                }
                s.error = Some(e);
            }
        }
    }

    /// One witness: add-checkpoint from the size it knows, adopting its
    /// size once on 409.
    async fn submit(
        &self,
        w: &Witness,
        dir: PathBuf,
        checkpoint: &str,
        log_vkey: &str,
    ) -> Result<Vec<u8>, String> {
        let cp = collective_attest::verify_checkpoint(checkpoint.as_bytes(), log_vkey)
            .map_err(|e| format!("own checkpoint: {e}"))?;
        let mut old = w.state.lock().expect("lock").known.unwrap_or(0);
        for _ in 0..2 {
            if old > cp.size() {
                return Err(format!(
                    "the witness has cosigned size {old}, larger than this log's {}: it will not cosign a rollback",
                    cp.size()
                ));
            }
            let proof = if old == 0 || old == cp.size() {
                vec![]
            } else {
                let (d, text, vk) = (dir.clone(), checkpoint.to_string(), log_vkey.to_string());
                tokio::task::spawn_blocking(move || {
                    let c = collective_attest::verify_checkpoint(text.as_bytes(), &vk)?;
                    collective_attest::verify::consistency_proof(&DirSource::new(d), &c, old)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("consistency proof from {old}: {e}"))?
            };
            let body = add_checkpoint_body(old, &proof, checkpoint.as_bytes());
            let resp = self
                .client
                .post(format!("{}/add-checkpoint", w.url))
                .body(body)
                .send()
                .await
                .map_err(|e| format!("unreachable: {e}"))?;
            let status = resp.status().as_u16();
            let answer = read_capped(resp).await?;
            match status {
                200 => {
                    let cosigned = append_cosignatures(checkpoint.as_bytes(), &answer)
                        .map_err(|e| format!("answer: {e}"))?;
                    if count_cosignatures(&cosigned, std::slice::from_ref(&w.verifier)) != 1 {
                        return Err(
                            "the answer holds no valid cosignature by the configured key".into(),
                        );
                    }
                    w.state.lock().expect("lock").known = Some(cp.size());
                    return Ok(answer);
                }
                409 => {
                    let size = parse_size(&answer).ok_or("409 without a size")?;
                    w.state.lock().expect("lock").known = Some(size);
                    if size == old {
                        return Err(format!("409 at the size it names ({size})"));
                    }
                    old = size;
                }
                s => {
                    let text =
                        String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
                    return Err(format!("HTTP {s}: {}", text.trim()));
                }
            }
        }
        Err("the witness's size kept changing".into())
    }
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
    {
        out.extend_from_slice(&chunk);
        if out.len() > MAX_ANSWER {
            return Err(format!("answer over {MAX_ANSWER} bytes"));
        }
    }
    Ok(out)
}

/// Submits each new checkpoint to every witness, each on its own task (a
/// slow or stalled witness delays no other), retrying a failed one every
/// few seconds, until `shutdown`. Level-triggered: each turn reads the
/// current checkpoint and does what that witness still lacks.
pub async fn run(
    witnesses: std::sync::Arc<Witnesses>,
    log: crate::journal::JournalReader,
    verifier_key: String,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let tasks = (0..witnesses.list.len()).map(|i| {
        let (witnesses, log, vk, shutdown) = (
            witnesses.clone(),
            log.clone(),
            verifier_key.clone(),
            shutdown.clone(),
        );
        async move {
            let mut last_try: Option<(String, std::time::Instant)> = None;
            loop {
                if let Some(cp) = log.checkpoint_text() {
                    let retry_due = last_try
                        .as_ref()
                        .is_none_or(|(c, t)| *c != cp || t.elapsed() >= Duration::from_secs(5));
                    if witnesses.needs(i, &cp) && retry_due {
                        last_try = Some((cp.clone(), std::time::Instant::now()));
                        let dir = log.log_dir().to_path_buf();
                        tokio::select! {
                            _ = witnesses.submit_to(i, dir, cp, &vk) => {}
                            _ = shutdown.cancelled() => break,
                        }
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        }
    });
    futures::future::join_all(tasks).await;
}
