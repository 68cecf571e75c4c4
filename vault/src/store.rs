//! The dataset store: age ciphertexts in an `object_store`, each named by the
//! sha256 of its bytes (`<sha256>.age`).
//!
//! Security argument: a name is a commitment to content. Objects are written
//! under a random staging name and renamed to their hash name only once the
//! whole stream was written and hashed, so a reader never sees a partial
//! object under a real name; every read re-hashes the bytes and fails with
//! [`VaultError::HashMismatch`] when they do not match the name, even when the
//! substitute is a well-formed age file. The store only ever holds
//! ciphertext; this module never sees plaintext except inside the blocking
//! encrypt/decrypt stages it drives.

use std::io::Read;
use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use serde::Serialize;

use crate::envelope::{self, decrypt_labeled, encrypt_to, reencrypt_labeled};
use crate::sync_bridge::{self, ChannelReader, ChannelWriter};
use crate::VaultError;

/// Largest age header we accept when checking a contributed ciphertext.
const MAX_HEADER: u64 = 1024 * 1024;
const STAGING: &str = "staging";
const EXT: &str = ".age";

/// A stored ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    /// Hex sha256 of the ciphertext bytes: the object's name and the id
    /// registered on-chain.
    pub sha256: String,
    /// Ciphertext size in bytes.
    pub size: u64,
    /// Where the object lives (`file:///.../<sha256>.age`, `s3://...`).
    pub url: String,
}

/// An `object_store` holding age ciphertexts by hash.
#[derive(Debug, Clone)]
pub struct DatasetStore {
    store: Arc<dyn ObjectStore>,
    prefix: ObjPath,
    url: String,
}

fn check_name(sha256: &str) -> Result<(), VaultError> {
    if sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(VaultError::BadObjectName(sha256.to_string()))
    }
}

impl DatasetStore {
    /// Opens a store from a location: a filesystem path, `file:///abs/path`,
    /// `memory://` (tests), or `s3://bucket/prefix` (credentials and endpoint
    /// from the usual `AWS_*` environment variables).
    pub fn open(location: &str) -> Result<Self, VaultError> {
        Self::open_with_options(location, std::iter::empty::<(String, String)>())
    }

    /// As [`DatasetStore::open`], with extra object-store options for S3
    /// (`aws_endpoint`, `aws_allow_http`, `aws_region`, ... as accepted by
    /// `object_store`'s `AmazonS3ConfigKey`).
    pub fn open_with_options(
        location: &str,
        options: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, VaultError> {
        let bad = |reason: String| VaultError::StoreLocation {
            location: location.to_string(),
            reason,
        };
        if location.starts_with("memory://") {
            return Ok(Self::from_object_store(
                Arc::new(object_store::memory::InMemory::new()),
                ObjPath::default(),
                "memory://".into(),
            ));
        }
        if location.starts_with("s3://") {
            let url = url::Url::parse(location).map_err(|e| bad(e.to_string()))?;
            let mut builder = object_store::aws::AmazonS3Builder::from_env().with_url(location);
            for (k, v) in options {
                let key = k
                    .parse::<object_store::aws::AmazonS3ConfigKey>()
                    .map_err(|e| bad(format!("option {k}: {e}")))?;
                builder = builder.with_config(key, v);
            }
            let store = builder.build().map_err(|e| bad(e.to_string()))?;
            let prefix = ObjPath::from(url.path().trim_matches('/'));
            let url = location.trim_end_matches('/').to_string();
            return Ok(Self::from_object_store(Arc::new(store), prefix, url));
        }
        let path = if let Some(rest) = location.strip_prefix("file://") {
            std::path::PathBuf::from(rest)
        } else if location.contains("://") {
            return Err(bad(
                "expected a path, file:///abs/path, s3://bucket/prefix or memory://".into(),
            ));
        } else {
            std::path::PathBuf::from(location)
        };
        std::fs::create_dir_all(&path).map_err(|e| bad(format!("cannot create: {e}")))?;
        let path = path
            .canonicalize()
            .map_err(|e| bad(format!("cannot resolve: {e}")))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&path)
            .map_err(|e| bad(e.to_string()))?
            .with_automatic_cleanup(true);
        let url = format!("file://{}", path.display());
        Ok(Self::from_object_store(
            Arc::new(store),
            ObjPath::default(),
            url,
        ))
    }

    /// Wraps an existing object store; `url` is the base shown in object URLs.
    pub fn from_object_store(store: Arc<dyn ObjectStore>, prefix: ObjPath, url: String) -> Self {
        DatasetStore {
            store,
            prefix,
            url: url.trim_end_matches('/').to_string(),
        }
    }

    /// The store's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn object_path(&self, sha256: &str) -> ObjPath {
        self.prefix.clone().join(format!("{sha256}{EXT}"))
    }

    /// The URL of the object named `sha256`.
    pub fn object_url(&self, sha256: &str) -> String {
        format!("{}/{sha256}{EXT}", self.url)
    }

    fn store_err(&self, op: &'static str) -> impl FnOnce(object_store::Error) -> VaultError + '_ {
        move |source| VaultError::Store {
            url: self.url.clone(),
            op,
            source,
        }
    }

    /// Encrypts `plaintext` to `recipients` and stores the ciphertext,
    /// streaming. Recipients are checked before anything is read.
    pub async fn put_encrypted<R: Read + Send + 'static>(
        &self,
        plaintext: R,
        recipients: &[String],
        what: &str,
    ) -> Result<ObjectRef, VaultError> {
        let parsed = envelope::parse_recipients(recipients)?;
        let what = what.to_string();
        self.put_with(move |w| encrypt_to(plaintext, w, &parsed, &what).map(|_| ()))
            .await
    }

    /// Stores an existing age ciphertext (made with stock `age -R node.pub`)
    /// after checking that it starts with a well-formed age header. Empty and
    /// non-age input is refused and leaves nothing in the store.
    pub async fn put_ciphertext<R: Read + Send + 'static>(
        &self,
        mut ciphertext: R,
        what: &str,
    ) -> Result<ObjectRef, VaultError> {
        let what = what.to_string();
        self.put_with(move |w| {
            let mut head = Vec::new();
            (&mut ciphertext)
                .take(MAX_HEADER)
                .read_to_end(&mut head)
                .map_err(|e| VaultError::io(&what, e))?;
            envelope::check_age_header(&head[..], &what)?;
            std::io::copy(&mut &head[..], w).map_err(|e| VaultError::io("store", e))?;
            std::io::copy(&mut ciphertext, w).map_err(|e| VaultError::io(&what, e))?;
            Ok(())
        })
        .await
    }

    /// Runs the blocking `produce` against a writer whose bytes stream into a
    /// staging object, then renames the object to its hash name. On any
    /// error the staging object is aborted or deleted.
    async fn put_with<F>(&self, produce: F) -> Result<ObjectRef, VaultError>
    where
        F: FnOnce(&mut ChannelWriter) -> Result<(), VaultError> + Send + 'static,
    {
        let staging = self
            .prefix
            .clone()
            .join(STAGING)
            .join(hex::encode(rand::random::<[u8; 16]>()));
        let upload = self
            .store
            .put_multipart(&staging)
            .await
            .map_err(self.store_err("start upload"))?;
        let mut upload = WriteMultipart::new_with_chunk_size(upload, 8 * sync_bridge::CHUNK);
        let (tx, mut rx) = sync_bridge::write_channel();
        let producer = tokio::task::spawn_blocking(move || {
            let mut w = ChannelWriter::new(tx);
            produce(&mut w)?;
            w.finish().map_err(|e| VaultError::io("store upload", e))
        });
        let mut upload_error = None;
        while let Some(chunk) = rx.recv().await {
            if let Err(e) = upload.wait_for_capacity(2).await {
                upload_error = Some(e);
                break;
            }
            upload.put(chunk);
        }
        // Dropping the receiver stops the producer if the upload failed.
        drop(rx);
        let produced = producer
            .await
            .map_err(|e| VaultError::Task(e.to_string()))
            .and_then(|r| r);
        let (sha256, size) = match (produced, upload_error) {
            (_, Some(e)) => {
                let _ = upload.abort().await;
                return Err(self.store_err("upload")(e));
            }
            (Err(e), None) => {
                let _ = upload.abort().await;
                return Err(e);
            }
            (Ok(v), None) => v,
        };
        upload.finish().await.map_err(self.store_err("upload"))?;
        let dest = self.object_path(&sha256);
        match self.store.rename_if_not_exists(&staging, &dest).await {
            Ok(()) => {}
            Err(object_store::Error::AlreadyExists { .. }) => {
                // Same name, same bytes: the object is already stored.
                let _ = self.store.delete(&staging).await;
            }
            Err(object_store::Error::NotSupported { .. })
            | Err(object_store::Error::NotImplemented { .. }) => {
                let r = self.store.rename(&staging, &dest).await;
                if r.is_err() {
                    let _ = self.store.delete(&staging).await;
                }
                r.map_err(self.store_err("rename"))?;
            }
            Err(e) => {
                let _ = self.store.delete(&staging).await;
                return Err(self.store_err("rename")(e));
            }
        }
        tracing::info!(%sha256, size, url = %self.object_url(&sha256), "stored ciphertext");
        Ok(ObjectRef {
            url: self.object_url(&sha256),
            sha256,
            size,
        })
    }

    /// The stored object named `sha256`, if any (size from the store, not
    /// verified).
    pub async fn head(&self, sha256: &str) -> Result<Option<ObjectRef>, VaultError> {
        check_name(sha256)?;
        match self.store.head(&self.object_path(sha256)).await {
            Ok(meta) => Ok(Some(ObjectRef {
                sha256: sha256.to_string(),
                size: meta.size,
                url: self.object_url(sha256),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.store_err("head")(e)),
        }
    }

    /// Every object in the store (names that are not sha256 are ignored).
    pub async fn list(&self) -> Result<Vec<ObjectRef>, VaultError> {
        let mut out = Vec::new();
        let mut stream = self.store.list(Some(&self.prefix));
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(self.store_err("list"))?;
            let Some(name) = meta.location.filename() else {
                continue;
            };
            let Some(sha) = name.strip_suffix(EXT) else {
                continue;
            };
            if check_name(sha).is_ok() {
                out.push(ObjectRef {
                    sha256: sha.to_string(),
                    size: meta.size,
                    url: self.object_url(sha),
                });
            }
        }
        out.sort_by(|a, b| a.sha256.cmp(&b.sha256));
        Ok(out)
    }

    /// Runs the blocking `consume` over the object's bytes and checks, after
    /// it, that the whole object hashes to its name. A hash mismatch is
    /// reported in preference to whatever error `consume` hit, since it is
    /// the root cause.
    pub(crate) async fn with_verified_reader<T, F>(
        &self,
        sha256: &str,
        consume: F,
    ) -> Result<T, VaultError>
    where
        T: Send + 'static,
        F: FnOnce(&mut ChannelReader, &str) -> Result<T, VaultError> + Send + 'static,
    {
        check_name(sha256)?;
        let path = self.object_path(sha256);
        let got = match self.store.get(&path).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(VaultError::NotFound {
                    store: self.url.clone(),
                    sha256: sha256.to_string(),
                })
            }
            Err(e) => return Err(self.store_err("get")(e)),
        };
        let (tx, rx) = sync_bridge::read_channel();
        let feeder = tokio::spawn(async move {
            let mut stream = got.into_stream();
            while let Some(item) = stream.next().await {
                let item = item.map_err(std::io::Error::other);
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    break;
                }
            }
        });
        let expected = sha256.to_string();
        let object = self.object_url(sha256);
        let consumer = tokio::task::spawn_blocking(move || {
            let mut reader = ChannelReader::new(rx);
            let result = consume(&mut reader, &object);
            let hashed = reader.finish();
            match hashed {
                Ok((actual, _)) if actual != expected => Err(VaultError::HashMismatch {
                    object,
                    expected,
                    actual,
                }),
                Ok(_) => result,
                Err(e) => result.and(Err(VaultError::io(object, e))),
            }
        });
        let out = consumer
            .await
            .map_err(|e| VaultError::Task(e.to_string()))?;
        feeder.abort();
        out
    }

    /// Copies the verified ciphertext of `sha256` into `writer`. On `Err`,
    /// discard what was written.
    pub async fn read_verified<W: std::io::Write + Send + 'static>(
        &self,
        sha256: &str,
        mut writer: W,
    ) -> Result<(W, u64), VaultError> {
        self.with_verified_reader(sha256, move |r, what| {
            let n = std::io::copy(r, &mut writer).map_err(|e| VaultError::io(what, e))?;
            Ok((writer, n))
        })
        .await
    }

    /// Decrypts object `sha256` with `identity` into the file `dest`,
    /// atomically: `dest` exists afterwards only if the object matched its
    /// name and fully authenticated.
    pub async fn decrypt_to_file(
        &self,
        sha256: &str,
        identity: Arc<dyn age::Identity + Send + Sync>,
        dest: &std::path::Path,
    ) -> Result<u64, VaultError> {
        let dest = dest.to_path_buf();
        self.with_verified_reader(sha256, move |r, what| {
            envelope::write_atomically(&dest, |w| decrypt_labeled(r, w, identity.as_ref(), what))
        })
        .await
    }

    /// Decrypts object `sha256` and re-encrypts it to `recipients` into
    /// `writer`, as a stream: plaintext exists only in memory buffers.
    /// Returns the writer and the plaintext size. On `Err`, discard what was
    /// written.
    pub async fn reencrypt<W: std::io::Write + Send + 'static>(
        &self,
        sha256: &str,
        identity: Arc<dyn age::Identity + Send + Sync>,
        recipients: &[String],
        mut writer: W,
    ) -> Result<(W, u64), VaultError> {
        envelope::parse_recipients(recipients)?;
        let recipients = recipients.to_vec();
        self.with_verified_reader(sha256, move |r, what| {
            let n = reencrypt_labeled(r, &mut writer, identity.as_ref(), &recipients, what)?;
            Ok((writer, n))
        })
        .await
    }

    /// As [`DatasetStore::reencrypt`], into the file `dest` atomically (an
    /// export in the node's outbox): `dest` exists only if the whole object
    /// verified and re-encrypted.
    pub async fn reencrypt_to_file(
        &self,
        sha256: &str,
        identity: Arc<dyn age::Identity + Send + Sync>,
        recipients: &[String],
        dest: &std::path::Path,
    ) -> Result<u64, VaultError> {
        envelope::parse_recipients(recipients)?;
        let recipients = recipients.to_vec();
        let dest = dest.to_path_buf();
        self.with_verified_reader(sha256, move |r, what| {
            envelope::write_atomically(&dest, |w| {
                reencrypt_labeled(r, w, identity.as_ref(), &recipients, what)
            })
        })
        .await
    }

    /// Deletes object `sha256` (a no-op if absent).
    pub async fn delete(&self, sha256: &str) -> Result<(), VaultError> {
        check_name(sha256)?;
        match self.store.delete(&self.object_path(sha256)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_err("delete")(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name(&"a".repeat(64)).is_ok());
        assert!(check_name(&"A".repeat(64)).is_err());
        assert!(check_name("../etc/passwd").is_err());
        assert!(check_name(&"a".repeat(63)).is_err());
    }

    #[test]
    fn locations() {
        assert!(DatasetStore::open("ftp://x").is_err());
        let dir = tempfile::tempdir().unwrap();
        let s = DatasetStore::open(&format!("file://{}", dir.path().display())).unwrap();
        assert!(s.url().starts_with("file:///"));
        assert_eq!(
            s.object_url(&"0".repeat(64)),
            format!("{}/{}.age", s.url(), "0".repeat(64))
        );
    }

    #[test]
    fn s3_locations_are_configured_not_contacted() {
        let opts = [
            ("aws_region", "us-east-1"),
            ("aws_endpoint", "http://127.0.0.1:9"),
            ("aws_allow_http", "true"),
            ("aws_access_key_id", "test"),
            ("aws_secret_access_key", "test"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let s = DatasetStore::open_with_options("s3://bucket/some/prefix/", opts).unwrap();
        assert_eq!(s.url(), "s3://bucket/some/prefix");
        assert_eq!(
            s.object_url(&"a".repeat(64)),
            format!("s3://bucket/some/prefix/{}.age", "a".repeat(64))
        );
        assert_eq!(
            s.object_path(&"a".repeat(64)).as_ref(),
            format!("some/prefix/{}.age", "a".repeat(64))
        );
        let err = DatasetStore::open_with_options(
            "s3://bucket",
            [("no_such_option".to_string(), "x".to_string())],
        )
        .unwrap_err();
        assert!(err.to_string().contains("no_such_option"), "{err}");
    }

    #[tokio::test]
    async fn memory_roundtrip() {
        let s = DatasetStore::open("memory://").unwrap();
        let id = age::x25519::Identity::generate();
        let r = vec![id.to_public().to_string()];
        let obj = s.put_encrypted(&b"data"[..], &r, "t").await.unwrap();
        assert_eq!(s.list().await.unwrap(), vec![obj.clone()]);
        let (ct, n) = s.read_verified(&obj.sha256, Vec::new()).await.unwrap();
        assert_eq!(n, obj.size);
        assert_eq!(crate::sha256_hex(&ct), obj.sha256);
    }
}
