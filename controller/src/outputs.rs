//! Sealing a run's outputs into the outbox: encrypted to the approval's
//! recipients, hashed while written, off the async runtime.
//!
//! Security argument: the only plaintext read here comes from handles the
//! sandbox collector opened (regular files, opened beneath the job's `/out`
//! without following links, after every job process was gone) and from
//! the node's own capture of stdout and stderr. Names are the declared,
//! safe names the collector returned, under `out/`, plus the fixed
//! `stdout` and `stderr`; nothing the job chose beyond a declared name is
//! used as a path or written to the log. Each ciphertext is written to a
//! temporary name and renamed, so the outbox never holds a partial file
//! under a final name. Reads are bounded by the size seen at collection.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use collective_attest::OutputDigest;
use sha2::{Digest, Sha256};

use crate::sandbox::SandboxRun;
use crate::ControllerError;

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ControllerError + '_ {
    move |source| ControllerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Encrypts `reader` to `outbox/<name>.age` and returns its digest entry.
fn seal_one(
    outbox: &Path,
    name: &str,
    reader: impl Read,
    recipients: &[String],
) -> Result<OutputDigest, ControllerError> {
    let dst = outbox.join(format!("{name}.age"));
    let dir = dst.parent().unwrap_or(outbox).to_path_buf();
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let tmp = tempfile::Builder::new()
        .prefix(".collective-partial-")
        .tempfile_in(&dir)
        .map_err(io(&dir))?;
    let (sha256, size) = {
        let mut w = Hashing {
            inner: std::io::BufWriter::new(tmp.as_file()),
            hasher: Sha256::new(),
            len: 0,
        };
        collective_vault::encrypt_stream(reader, &mut w, recipients).map_err(|source| {
            ControllerError::Vault {
                what: format!("encrypting output {name}"),
                source: Box::new(source),
            }
        })?;
        w.flush().map_err(io(&dst))?;
        (hex::encode(w.hasher.finalize()), w.len)
    };
    tmp.as_file().sync_all().map_err(io(&dst))?;
    tmp.persist(&dst).map_err(|e| io(&dst)(e.error))?;
    Ok(OutputDigest {
        name: format!("{name}.age"),
        sha256,
        size,
    })
}

/// Seals stdout, stderr and (unless `refuse_files`) every collected output
/// of `run` into `outbox`. Blocking: call it from `spawn_blocking`.
pub fn seal(
    run: SandboxRun,
    outbox: PathBuf,
    recipients: Vec<String>,
    refuse_files: bool,
) -> Result<Vec<OutputDigest>, ControllerError> {
    let mut digests = vec![
        seal_one(&outbox, "stdout", &run.stdout[..], &recipients)?,
        seal_one(&outbox, "stderr", &run.stderr[..], &recipients)?,
    ];
    if !refuse_files {
        for f in run.outputs.files {
            let name = format!("out/{}", f.name);
            let reader = std::io::BufReader::new(f.file).take(f.size);
            digests.push(seal_one(&outbox, &name, reader, &recipients)?);
        }
    }
    Ok(digests)
}
