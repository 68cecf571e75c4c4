//! The writer: an append-only C2SP tlog-tiles log in a directory.
//!
//! Security and durability argument:
//! - The checkpoint file is the commit point. An append first writes every
//!   new tile and entry bundle (each to a temporary file, fsync, rename,
//!   then fsync of the directories), and only then replaces the checkpoint
//!   the same way. `append` returns only after the checkpoint's directory is
//!   synced, so an acknowledged entry survives kill -9 and power loss.
//! - A tile path names its width (`.p/W`), so the tiles a committed
//!   checkpoint needs are never overwritten by a later append. As C2SP
//!   tlog-tiles requires, the partial tiles of every checkpoint ever
//!   produced stay until the full tile exists (then they are deleted, after
//!   the checkpoint naming the full tile is durable): a client holding an
//!   older or an anchored checkpoint can still prove against it, and one
//!   that read a checkpoint just before an append gets no 404. Hence after
//!   any crash the on-disk checkpoint, and every earlier one, is provable.
//! - `open` re-proves the checkpoint from the tiles (root recomputed,
//!   signature checked under the caller's key) and refuses a log that cannot
//!   prove it; then it deletes the partial tail a crashed append left behind
//!   (tiles beyond the committed tree, partials whose full tile is
//!   committed, and temp files).
//!   A log never serves a checkpoint it cannot prove.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use signed_note::{Note, VerifierList};
use tlog_tiles::{
    record_hash, split_stored_hash_index, stored_hash_index, stored_hashes_for_record_hash,
    tree_hash, Error as TlogError, Hash, HashReader, Tile,
};

use crate::entry::{open_entry, sign_statement, Predicate, Statement, Subject};
use crate::tiles::{
    c2sp_path, data_tile_for, decode_bundle, encode_bundle, hash_tile, read_tile, DirSource,
    CHECKPOINT_PATH, TILE_HEIGHT, TILE_WIDTH,
};
use crate::verify::{verify_checkpoint, ProofBundle};
use crate::{key_id_hex, sign_checkpoint, verifier_key_string, AttestError};

/// An on-disk log, open for appending. One writer per directory.
pub struct Log {
    dir: PathBuf,
    origin: String,
    key: SigningKey,
    keyid: String,
    size: u64,
    root: Hash,
    /// Entries of the rightmost (partial) entry bundle, so appends need not re-read it.
    edge_entries: Vec<Vec<u8>>,
    /// Tiles of the right edge last written (path -> bytes), the only hashes appends read.
    cache: HashMap<String, Vec<u8>>,
    checkpoint: Vec<u8>,
    /// Set when a checkpoint write failed midway: the file on disk may be
    /// either checkpoint, so appending more could fork the log. Reopen.
    poisoned: Option<String>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("origin", &self.origin)
            .field("size", &self.size)
            .finish()
    }
}

/// Reads stored hashes for appends: hashes of this batch from memory, older
/// ones from the committed tiles on disk.
struct DiskHashes<'a> {
    dir: &'a Path,
    size: u64,
    pending: RefCell<HashMap<u64, Hash>>,
    cache: &'a RefCell<HashMap<String, Vec<u8>>>,
    error: RefCell<Option<AttestError>>,
}

impl DiskHashes<'_> {
    fn tile_bytes(&self, tile: &Tile) -> Result<Vec<u8>, AttestError> {
        let path = c2sp_path(tile);
        if let Some(b) = self.cache.borrow().get(&path) {
            return Ok(b.clone());
        }
        let b = read_tile(&DirSource::new(self.dir), tile)?;
        self.cache.borrow_mut().insert(path, b.clone());
        Ok(b)
    }

    fn one(&self, index: u64) -> Result<Hash, AttestError> {
        if let Some(h) = self.pending.borrow().get(&index) {
            return Ok(*h);
        }
        let min = Tile::from_index(TILE_HEIGHT, index);
        let (level, _) = split_stored_hash_index(index);
        let tile = hash_tile(min.level(), min.level_index(), self.size).ok_or_else(|| {
            AttestError::Proof {
                what: "stored hash".into(),
                reason: format!(
                    "hash index {index} (level {level}) is not in the committed tree of size {}",
                    self.size
                ),
            }
        })?;
        let data = self.tile_bytes(&tile)?;
        tile.hash_at_index(&data, index)
            .map_err(|e| AttestError::Proof {
                what: format!("tile {}", c2sp_path(&tile)),
                reason: e.to_string(),
            })
    }

    fn explain(&self, what: &str, e: TlogError) -> AttestError {
        self.error
            .borrow_mut()
            .take()
            .unwrap_or(AttestError::Proof {
                what: what.into(),
                reason: e.to_string(),
            })
    }
}

impl HashReader for DiskHashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TlogError> {
        let mut out = Vec::with_capacity(indexes.len());
        for &i in indexes {
            match self.one(i) {
                Ok(h) => out.push(h),
                Err(e) => {
                    self.error.borrow_mut().replace(e);
                    return Err(TlogError::InvalidTile);
                }
            }
        }
        Ok(out)
    }
}

impl Log {
    /// Opens the log in `dir`, creating it (with a signed size-0 checkpoint)
    /// if absent. Refuses a log signed by another key or for another origin,
    /// and a log whose tiles do not prove its checkpoint; removes the
    /// unacknowledged tail of a crashed append.
    pub fn create_or_open(dir: &Path, origin: &str, key: SigningKey) -> Result<Log, AttestError> {
        if !signed_note::is_key_name_valid(origin) {
            return Err(AttestError::BadKey {
                key: origin.into(),
                reason: "origin must be non-empty with no spaces or '+'".into(),
            });
        }
        fs::create_dir_all(dir).map_err(|e| AttestError::io("create", dir, e))?;
        let vkey = verifier_key_string(origin, &key.verifying_key());
        let keyid = key_id_hex(origin, &key.verifying_key());
        let mut log = Log {
            dir: dir.to_path_buf(),
            origin: origin.to_string(),
            key,
            keyid,
            size: 0,
            root: tlog_tiles::EMPTY_HASH,
            edge_entries: Vec::new(),
            cache: HashMap::new(),
            checkpoint: Vec::new(),
            poisoned: None,
        };
        let cp_path = dir.join(CHECKPOINT_PATH);
        match fs::read(&cp_path) {
            Ok(text) => {
                let cp = match verify_checkpoint(&text, &vkey) {
                    Ok(cp) => cp,
                    Err(AttestError::CheckpointSignature { .. }) => {
                        let found = Note::from_bytes(&text)
                            .ok()
                            .and_then(|n| n.verify(&VerifierList::new(vec![])).err())
                            .map(|e| e.to_string())
                            .unwrap_or_else(|| "an unknown key".into());
                        return Err(AttestError::WrongKey {
                            dir: dir.into(),
                            expected: vkey,
                            found,
                        });
                    }
                    Err(e) => return Err(e),
                };
                log.size = cp.size();
                log.root = *cp.hash();
                log.checkpoint = text;
                log.prove_own_checkpoint()?;
                log.load_edge()?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A new log writes its size-0 checkpoint before any append,
                // so tiles without a checkpoint mean the checkpoint was lost
                // or deleted: starting an empty log over them would destroy
                // history. Refuse.
                if has_files(&dir.join("tile"))? {
                    return Err(AttestError::MalformedCheckpoint {
                        reason: format!(
                            "{} has tiles but no checkpoint; refusing to start an empty log over them",
                            dir.display()
                        ),
                    });
                }
                log.write_checkpoint()?;
            }
            Err(e) => return Err(AttestError::io("read", cp_path, e)),
        }
        log.remove_orphans()?;
        tracing::debug!(dir = %log.dir.display(), size = log.size, "log opened");
        Ok(log)
    }

    /// The directory holding the tiles and checkpoint, servable as static files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The log's name: the checkpoint origin and the verifier key's name.
    pub fn origin(&self) -> &str {
        &self.origin
    }
    /// Number of entries.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// RFC 6962 root hash of the current tree.
    pub fn root(&self) -> [u8; 32] {
        self.root.0
    }
    /// The public half of the log key, for checking entries and checkpoints.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }
    /// The C2SP verifier key auditors pass as `--log-key`.
    pub fn verifier_key(&self) -> String {
        verifier_key_string(&self.origin, &self.key.verifying_key())
    }
    /// The current signed checkpoint (C2SP signed note), exactly as served.
    pub fn checkpoint_text(&self) -> Result<String, AttestError> {
        String::from_utf8(self.checkpoint.clone()).map_err(|e| AttestError::MalformedCheckpoint {
            reason: e.to_string(),
        })
    }

    /// Signs and appends a batch; durable when it returns. Returns the indexes.
    pub fn append(&mut self, entries: &[(Subject, Predicate)]) -> Result<Vec<u64>, AttestError> {
        let mut encoded = Vec::with_capacity(entries.len());
        for (i, (subject, predicate)) in entries.iter().enumerate() {
            let mut p = predicate.clone();
            p.log_index = self.size + i as u64;
            p.log_origin = self.origin.clone();
            let st = Statement::new(subject, p)?;
            encoded.push(sign_statement(&st, &self.key, &self.keyid)?);
        }
        self.append_raw(encoded)
    }

    /// Appends pre-encoded entries verbatim (no signing, no validation
    /// beyond the size limit). For importing and for building test fixtures,
    /// including deliberately bad ones; the controller uses [`Log::append`].
    pub fn append_raw(&mut self, encoded: Vec<Vec<u8>>) -> Result<Vec<u64>, AttestError> {
        if let Some(why) = &self.poisoned {
            return Err(AttestError::Poisoned {
                dir: self.dir.clone(),
                reason: why.clone(),
            });
        }
        if encoded.is_empty() {
            return Ok(Vec::new());
        }
        for e in &encoded {
            if e.len() > crate::entry::MAX_ENTRY_BYTES {
                return Err(AttestError::InvalidEntry {
                    field: "entry",
                    reason: format!("{} bytes is over the limit", e.len()),
                });
            }
        }
        let old = self.size;
        let new = old + encoded.len() as u64;
        let cache = RefCell::new(std::mem::take(&mut self.cache));
        let reader = DiskHashes {
            dir: &self.dir,
            size: old,
            pending: RefCell::new(HashMap::new()),
            cache: &cache,
            error: RefCell::new(None),
        };
        for (i, e) in encoded.iter().enumerate() {
            let n = old + i as u64;
            let hashes = stored_hashes_for_record_hash(n, record_hash(e), &reader)
                .map_err(|err| reader.explain("stored hashes", err))?;
            let base = stored_hash_index(0, n);
            let mut pending = reader.pending.borrow_mut();
            for (k, h) in hashes.into_iter().enumerate() {
                pending.insert(base + k as u64, h);
            }
        }
        let root = tree_hash(new, &reader).map_err(|e| reader.explain("tree hash", e))?;

        // Tiles and entry bundles of the new tree that differ from the old.
        let edge_start = old / TILE_WIDTH * TILE_WIDTH;
        let mut tail = self.edge_entries.clone();
        tail.extend(encoded);
        let mut writes: Vec<(Tile, Vec<u8>)> = Vec::new();
        for tile in Tile::new_tiles(TILE_HEIGHT, old, new) {
            let data = tile
                .read_data(&reader)
                .map_err(|e| reader.explain("tile data", e))?;
            if tile.level() == 0 {
                let start = (tile.level_index() * TILE_WIDTH - edge_start) as usize;
                let bundle = encode_bundle(
                    tail[start..start + tile.width() as usize]
                        .iter()
                        .map(Vec::as_slice),
                );
                let mut d = tile;
                d.set_is_data();
                writes.push((d, bundle));
            }
            writes.push((tile, data));
        }
        drop(reader);
        // Directories whose entries changed: each file's parent (the
        // rename), and the parent of every directory created on the way.
        let mut dirs = BTreeSet::new();
        for (tile, data) in &writes {
            let path = self.dir.join(c2sp_path(tile));
            let parent = path
                .parent()
                .expect("tile paths have a parent")
                .to_path_buf();
            let mut missing = parent.clone();
            while !missing.exists() && missing != self.dir {
                if let Some(up) = missing.parent() {
                    dirs.insert(up.to_path_buf());
                    missing = up.to_path_buf();
                } else {
                    break;
                }
            }
            write_synced(&path, data)?;
            dirs.insert(parent);
        }
        for d in &dirs {
            sync_dir(d)?;
        }

        // Commit point.
        let old_root = self.root;
        self.size = new;
        self.root = root;
        if let Err(e) = self.write_checkpoint() {
            self.size = old;
            self.root = old_root;
            self.poisoned = Some(e.to_string());
            return Err(e);
        }

        // The new checkpoint is durable. C2SP tlog-tiles: the partial tiles
        // of every checkpoint stay served until the full tile exists; so
        // only a tile that just became full retires its partials.
        let mut cache = cache.into_inner();
        cache.clear();
        for (tile, data) in &writes {
            if !tile.is_data() {
                cache.insert(c2sp_path(tile), data.clone());
            }
            if u64::from(tile.width()) == TILE_WIDTH {
                let partials = self.dir.join(format!("{}.p", c2sp_path(tile)));
                if partials.exists() {
                    if let Err(e) = fs::remove_dir_all(&partials) {
                        tracing::warn!(path = %partials.display(), error = %e, "removing partial tiles superseded by a full tile");
                    }
                }
            }
        }
        self.cache = cache;
        let keep_from = (new / TILE_WIDTH * TILE_WIDTH - edge_start) as usize;
        self.edge_entries = tail.split_off(keep_from);
        tracing::debug!(old, new, "appended");
        Ok((old..new).collect())
    }

    /// Replays every entry (verified: bundle against the tile hashes, and
    /// the envelope signature under this log's key).
    pub fn entries(
        &self,
    ) -> impl Iterator<Item = Result<(u64, Subject, Predicate), AttestError>> + '_ {
        let key = self.key.verifying_key();
        self.raw_entries().map(move |r| {
            let (i, bytes) = r?;
            let st = open_entry(&bytes, &key, i)?;
            let subject = st
                .subject()
                .map_err(|reason| AttestError::Entry { index: i, reason })?;
            Ok((i, subject, st.predicate))
        })
    }

    /// Encoded entries in order, each checked against the level-0 tile hashes.
    pub fn raw_entries(&self) -> impl Iterator<Item = Result<(u64, Vec<u8>), AttestError>> + '_ {
        let size = self.size;
        let bundles = size.div_ceil(TILE_WIDTH);
        (0..bundles).flat_map(move |b| {
            let items: Vec<Result<(u64, Vec<u8>), AttestError>> = match self.read_bundle_checked(b)
            {
                Ok(entries) => entries
                    .into_iter()
                    .enumerate()
                    .map(|(i, e)| Ok((b * TILE_WIDTH + i as u64, e)))
                    .collect(),
                Err(e) => vec![Err(e)],
            };
            items
        })
    }

    /// The encoded entry at `index`.
    pub fn entry_bytes(&self, index: u64) -> Result<Vec<u8>, AttestError> {
        if index >= self.size {
            return Err(AttestError::Proof {
                what: "entry".into(),
                reason: format!("index {index} >= size {}", self.size),
            });
        }
        let mut b = self.read_bundle_checked(index / TILE_WIDTH)?;
        Ok(b.swap_remove((index % TILE_WIDTH) as usize))
    }

    /// A self-contained proof that entry `index` is in the current checkpoint.
    pub fn prove(&self, index: u64) -> Result<ProofBundle, AttestError> {
        let src = DirSource::new(&self.dir);
        ProofBundle::build(&src, &self.checkpoint, &self.verifier_key(), index)
    }

    fn read_bundle_checked(&self, b: u64) -> Result<Vec<Vec<u8>>, AttestError> {
        let src = DirSource::new(&self.dir);
        let tile = hash_tile(0, b, self.size).expect("bundle index within size");
        let hashes = read_tile(&src, &tile)?;
        let data_tile = data_tile_for(b * TILE_WIDTH, self.size);
        let raw = read_tile(&src, &data_tile)?;
        let path = c2sp_path(&data_tile);
        let entries = decode_bundle(&path, &raw, tile.width() as usize)?;
        for (i, e) in entries.iter().enumerate() {
            if record_hash(e).0[..] != hashes[i * 32..(i + 1) * 32] {
                return Err(AttestError::Entry {
                    index: b * TILE_WIDTH + i as u64,
                    reason: format!(
                        "entry in {path} does not match its leaf hash in {}",
                        c2sp_path(&tile)
                    ),
                });
            }
        }
        Ok(entries)
    }

    fn prove_own_checkpoint(&self) -> Result<(), AttestError> {
        let cache = RefCell::new(HashMap::new());
        let reader = DiskHashes {
            dir: &self.dir,
            size: self.size,
            pending: RefCell::new(HashMap::new()),
            cache: &cache,
            error: RefCell::new(None),
        };
        let computed = tree_hash(self.size, &reader).map_err(|e| reader.explain("tree hash", e))?;
        if computed != self.root {
            return Err(AttestError::RootMismatch {
                size: self.size,
                computed: computed.to_string(),
                claimed: self.root.to_string(),
            });
        }
        Ok(())
    }

    fn load_edge(&mut self) -> Result<(), AttestError> {
        if self.size % TILE_WIDTH != 0 {
            self.edge_entries = self.read_bundle_checked(self.size / TILE_WIDTH)?;
        }
        Ok(())
    }

    fn write_checkpoint(&mut self) -> Result<(), AttestError> {
        let text = sign_checkpoint(&self.origin, self.size, self.root, &self.key)?;
        write_synced(&self.dir.join(CHECKPOINT_PATH), &text)?;
        sync_dir(&self.dir)?;
        self.checkpoint = text;
        Ok(())
    }

    /// Deletes temp files and tiles that are not part of the committed tree.
    fn remove_orphans(&self) -> Result<(), AttestError> {
        let tile_dir = self.dir.join("tile");
        if !tile_dir.exists() {
            return Ok(());
        }
        let mut stack = vec![tile_dir];
        let mut removed = 0usize;
        while let Some(d) = stack.pop() {
            let rd = fs::read_dir(&d).map_err(|e| AttestError::io("list", &d, e))?;
            for ent in rd {
                let ent = ent.map_err(|e| AttestError::io("list", &d, e))?;
                let p = ent.path();
                let ft = ent
                    .file_type()
                    .map_err(|e| AttestError::io("stat", &p, e))?;
                if ft.is_dir() {
                    stack.push(p);
                    continue;
                }
                let rel = p
                    .strip_prefix(&self.dir)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .replace('\\', "/");
                if !self.is_committed_tile(&rel) {
                    tracing::warn!(path = %rel, "removing tile not covered by the checkpoint (crashed append)");
                    fs::remove_file(&p).map_err(|e| AttestError::io("remove", &p, e))?;
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            sync_dir(&self.dir.join("tile"))?;
        }
        Ok(())
    }

    fn is_committed_tile(&self, rel: &str) -> bool {
        let Some(rest) = rel.strip_prefix("tile/") else {
            return false;
        };
        let crate_path = match rest.strip_prefix("entries/") {
            Some(n) => format!("tile/{TILE_HEIGHT}/data/{n}"),
            None => format!("tile/{TILE_HEIGHT}/{rest}"),
        };
        let Ok(t) = Tile::from_path(&crate_path) else {
            return false;
        };
        if t.is_data() && t.level() != 0 {
            return false;
        }
        // Kept: every tile of a tree size up to the committed one (older
        // checkpoints' partial tiles), unless its full tile is committed.
        match hash_tile(t.level(), t.level_index(), self.size) {
            Some(c) if c.width() as u64 == TILE_WIDTH => t.width() == c.width(),
            Some(c) => t.width() <= c.width(),
            None => false,
        }
    }
}

/// True if `dir` (recursively) holds any file.
fn has_files(dir: &Path) -> Result<bool, AttestError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(AttestError::io("list", dir, e)),
    };
    for ent in rd {
        let ent = ent.map_err(|e| AttestError::io("list", dir, e))?;
        let ft = ent
            .file_type()
            .map_err(|e| AttestError::io("stat", ent.path(), e))?;
        if !ft.is_dir() || has_files(&ent.path())? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Writes `data` to `path` atomically: temp file in the same directory,
/// fsync, rename. The caller syncs the directory.
fn write_synced(path: &Path, data: &[u8]) -> Result<(), AttestError> {
    let parent = path.parent().expect("log paths have a parent");
    fs::create_dir_all(parent).map_err(|e| AttestError::io("create", parent, e))?;
    let name = path.file_name().expect("file name").to_string_lossy();
    let tmp = parent.join(format!(".{name}.tmp"));
    let mut f: File = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| AttestError::io("create", &tmp, e))?;
    f.write_all(data)
        .map_err(|e| AttestError::io("write", &tmp, e))?;
    f.sync_all()
        .map_err(|e| AttestError::io("fsync", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| AttestError::io("rename", path, e))
}

fn sync_dir(dir: &Path) -> Result<(), AttestError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| AttestError::io("fsync", dir, e))
}
