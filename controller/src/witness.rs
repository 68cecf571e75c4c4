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
    /// (checkpoint text, the same note with cosignatures).
    cosigned: Mutex<Option<(String, String)>>,
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
        Ok(Witnesses {
            list,
            client,
            cosigned: Mutex::new(None),
        })
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

    /// The checkpoint to serve: `checkpoint` with the cosignatures collected
    /// for exactly it, if any.
    pub fn served(&self, checkpoint: String) -> String {
        match &*self.cosigned.lock().expect("lock") {
            Some((cp, cosigned)) if *cp == checkpoint => cosigned.clone(),
            _ => checkpoint,
        }
    }

    /// Whether a round for `checkpoint` has something to do.
    pub fn pending(&self, checkpoint: &str) -> bool {
        self.list.iter().any(|w| {
            let s = w.state.lock().expect("lock");
            s.cosig.as_ref().is_none_or(|(cp, _)| cp != checkpoint)
        })
    }

    /// Submits `checkpoint` (of the log in `log_dir`) to every witness that
    /// has not cosigned it, concurrently; then updates the served note.
    pub async fn round(&self, log_dir: PathBuf, checkpoint: String, log_vkey: String) {
        let futs = self.list.iter().map(|w| {
            let (dir, cp, vk) = (log_dir.clone(), checkpoint.clone(), log_vkey.clone());
            async move {
                let done = w
                    .state
                    .lock()
                    .expect("lock")
                    .cosig
                    .as_ref()
                    .is_some_and(|(c, _)| *c == cp);
                if done {
                    return;
                }
                let r = self.submit(w, dir, &cp, &vk).await;
                let mut s = w.state.lock().expect("lock");
                match r {
                    Ok(lines) => {
                        s.cosig = Some((cp, lines));
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
        });
        futures::future::join_all(futs).await;
        let mut note = checkpoint.clone().into_bytes();
        for w in &self.list {
            let s = w.state.lock().expect("lock");
            if let Some((cp, lines)) = &s.cosig {
                if *cp == checkpoint {
                    note.extend_from_slice(lines);
                }
            }
        }
        *self.cosigned.lock().expect("lock") =
            Some((checkpoint, String::from_utf8_lossy(&note).into_owned()));
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

/// Submits each new checkpoint to the witnesses, and retries the ones that
/// failed every few seconds, until `shutdown`. Level-triggered: each turn
/// reads the current checkpoint and does what it still lacks.
pub async fn run(
    inner: std::sync::Arc<crate::node::Inner>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut last_try: Option<(String, std::time::Instant)> = None;
    loop {
        if let Some(cp) = inner.checkpoint_text() {
            let retry_due = last_try
                .as_ref()
                .is_none_or(|(c, t)| *c != cp || t.elapsed() >= Duration::from_secs(5));
            if inner.witnesses.pending(&cp) && retry_due {
                last_try = Some((cp.clone(), std::time::Instant::now()));
                inner
                    .witnesses
                    .round(inner.log_dir().to_path_buf(), cp, inner.verifier_key())
                    .await;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = shutdown.cancelled() => break,
        }
    }
}
