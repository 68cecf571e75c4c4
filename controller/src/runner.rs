//! The job runner: what happens between `job-started` and the end entry.
//!
//! It holds the node's decryption identity (as a narrow `age::Identity`
//! capability, not the key files): decrypting datasets for a job and
//! re-encrypting them for an export is its job, and no other module above
//! bootstrap has it. Plaintext goes to a private per-run directory that is
//! removed as soon as the sandbox is gone; outputs leave only sealed to the
//! approval's recipients (see `outputs`). The sandbox's own argument is in
//! `sandbox`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use collective_attest::OutputDigest;
use collective_policy::JobKind;
use collective_vault::DatasetStore;
use futures::future::BoxFuture;
use sha2::Digest;
use tokio_util::sync::CancellationToken;

use crate::deploy::TreeStore;
use crate::gate;
use crate::jobs::{JobEnd, JobRunner, JobSpec};
use crate::sandbox::{self, RunDir, SandboxSpec, Termination};
use crate::ControllerError;

/// Runs jobs in the sandbox.
pub struct SandboxRunner {
    /// Where run directories go (`work_dir/runs`).
    pub runs_dir: PathBuf,
    /// Where sealed outputs go.
    pub outbox_dir: PathBuf,
    /// Deployed trees.
    pub trees: Arc<TreeStore>,
    /// Encrypted datasets.
    pub store: DatasetStore,
    /// The node's decryption identity.
    pub identity: Arc<dyn collective_vault::age::Identity + Send + Sync>,
    /// Private base of plaintext directories.
    pub plain_base: PathBuf,
    /// Root or unprivileged.
    pub mode: sandbox::Mode,
    /// Job cgroups.
    pub cgroups: sandbox::Cgroups,
    /// The bwrap binary.
    pub bwrap: PathBuf,
    /// Node policy (limits).
    pub policy: collective_policy::NodePolicy,
}

impl std::fmt::Debug for SandboxRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxRunner")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl JobRunner for Arc<SandboxRunner> {
    fn run(
        &self,
        spec: JobSpec,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<JobEnd, ControllerError>> {
        let me = self.clone();
        Box::pin(async move { me.execute(spec, cancel).await })
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ControllerError + '_ {
    move |source| ControllerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// sha256 and size of a file.
fn digest_file(path: &Path) -> Result<(String, u64), ControllerError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = sha2::Sha256::new();
    let n = std::io::copy(&mut f, &mut h).map_err(io(path))?;
    Ok((hex::encode(h.finalize()), n))
}

impl SandboxRunner {
    async fn execute(
        &self,
        spec: JobSpec,
        cancel: CancellationToken,
    ) -> Result<JobEnd, ControllerError> {
        let outbox = self.outbox_dir.join(&spec.tree.sha256).join(&spec.job);
        {
            // A previous run's outputs can be many and large: off the runtime.
            let dir = outbox.clone();
            tokio::task::spawn_blocking(move || {
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)?;
                }
                std::fs::create_dir_all(&dir)
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(io(&outbox))?;
        }
        match spec.manifest.kind {
            JobKind::Export => self.export(&spec, &outbox, &cancel).await,
            JobKind::Batch => self.batch(&spec, &outbox, cancel).await,
        }
    }

    async fn export(
        &self,
        spec: &JobSpec,
        outbox: &Path,
        cancel: &CancellationToken,
    ) -> Result<JobEnd, ControllerError> {
        let Some(export) = spec.manifest.export.as_ref() else {
            return Err(ControllerError::Refused {
                reason: format!("export job {} names no recipient", spec.job),
            });
        };
        let to = vec![export.recipient.clone()];
        let mut outputs = Vec::new();
        for sha in &spec.datasets {
            if cancel.is_cancelled() {
                return Ok(JobEnd::Cancelled);
            }
            let path = outbox.join(format!("{sha}.age"));
            let file = std::fs::File::create(&path).map_err(io(&path))?;
            self.store
                .reencrypt(
                    sha,
                    self.identity.clone(),
                    &to,
                    std::io::BufWriter::new(file),
                )
                .await
                .map_err(|source| ControllerError::Vault {
                    what: format!("re-encrypting {sha}"),
                    source: Box::new(source),
                })?;
            let (digest, size) = digest_file(&path)?;
            outputs.push(OutputDigest {
                name: format!("{sha}.age"),
                sha256: digest,
                size,
            });
        }
        Ok(JobEnd::Exported { outputs })
    }

    async fn batch(
        &self,
        spec: &JobSpec,
        outbox: &Path,
        cancel: CancellationToken,
    ) -> Result<JobEnd, ControllerError> {
        let (tree, job, manifest) = (&spec.tree, spec.job.as_str(), &spec.manifest);
        let run_dir = self.runs_dir.join(format!("{}-{job}", &tree.sha256[..16]));
        let rd = RunDir::prepare(&run_dir, self.mode)?;
        let plain = collective_vault::decrypt_datasets_into_dir(
            &rd.plain_base(&self.plain_base),
            &self.store,
            &spec.datasets,
            self.identity.clone(),
            &HashSet::new(),
        )
        .await
        .map_err(|source| ControllerError::Vault {
            what: "decrypting datasets".into(),
            source: Box::new(source),
        })?;
        if cancel.is_cancelled() {
            return Ok(JobEnd::Cancelled);
        }
        let sb = SandboxSpec {
            bwrap: self.bwrap.clone(),
            tree_dir: self.trees.path(&tree.sha256),
            data_dir: Some(plain.path().to_path_buf()),
            command: manifest.command.clone(),
            limits: gate::limits_of(manifest, &self.policy),
            uid: spec.uid,
            outputs: manifest.outputs.clone(),
            mode: self.mode,
            cgroup_name: format!("job-{}-{job}", &tree.sha256[..16]),
        };
        let run = sandbox::run(&sb, &self.cgroups, cancel.clone()).await;
        // Plaintext inputs go as soon as the sandbox is gone (off the
        // runtime: a dataset can be large).
        let _ = tokio::task::spawn_blocking(move || drop(plain)).await;
        let run = run?;
        if run.termination == Termination::Cancelled {
            return Ok(JobEnd::Cancelled);
        }
        let mut reason = match &run.termination {
            Termination::Exited(0) => "exited 0".to_string(),
            Termination::Exited(c) => format!("exited {c}"),
            Termination::Signaled(s) => format!("killed by signal {s} (limit reached?)"),
            Termination::WallTimeout => format!(
                "wall time limit of {}s reached; killed",
                sb.limits.wall_seconds
            ),
            Termination::Cancelled => "cancelled".into(),
        };
        if run.memory_limit_hit {
            reason.push_str(&format!(
                "; memory limit of {} bytes reached",
                sb.limits.memory_bytes
            ));
        }
        // Outputs are refused whole when the job did not succeed or went
        // over its output limit: a partial result is not what the DAO
        // approved.
        let refuse = if !run.termination.success() {
            Some("the job did not exit 0".to_string())
        } else if run.outputs.total > sb.limits.output_bytes {
            Some(format!(
                "outputs total {} bytes, above the limit of {}",
                run.outputs.total, sb.limits.output_bytes
            ))
        } else {
            None
        };
        let collected = run.outputs.files.len();
        let dropped = run.outputs.dropped;
        let missing: Vec<String> = manifest
            .outputs
            .iter()
            .filter(|p| p.is_exact())
            .filter(|p| !run.outputs.files.iter().any(|f| f.name == p.as_str()))
            .map(|p| p.to_string())
            .collect();
        let stream_dropped = run.stream_bytes_dropped;
        let exit_status = run.termination.exit_status();
        let (outbox2, recipients) = (outbox.to_path_buf(), spec.recipients.clone());
        let refuse_files = refuse.is_some();
        let outputs = tokio::task::spawn_blocking(move || {
            crate::outputs::seal(run, outbox2, recipients, refuse_files)
        })
        .await
        .map_err(|e| ControllerError::Panicked {
            task: "sealing outputs".into(),
            message: e.to_string(),
        })??;
        drop(rd);
        match refuse {
            Some(why) if collected > 0 => {
                reason.push_str(&format!("; {collected} output(s) refused: {why}"))
            }
            _ => {}
        }
        if dropped > 0 {
            reason.push_str(&format!(
                "; {dropped} undeclared or unsafe entr{} in /out dropped",
                if dropped == 1 { "y" } else { "ies" }
            ));
        }
        if !missing.is_empty() && !refuse_files {
            // Names from the manifest, never from the job.
            reason.push_str(&format!("; declared but missing: {}", missing.join(", ")));
        }
        if stream_dropped > 0 {
            reason.push_str(&format!(
                "; {stream_dropped} bytes of stdout/stderr beyond {} dropped",
                sandbox::MAX_STREAM_BYTES
            ));
        }
        Ok(JobEnd::Finished {
            outputs,
            exit_status,
            reason,
        })
    }
}
