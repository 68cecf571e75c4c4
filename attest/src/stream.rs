//! The streaming pass of an audit: every entry and every tile of the
//! served tree, in one pass, in memory bounded by a constant.
//!
//! Security argument. The log's server is hostile. The pass reads the
//! entry bundles in order and, beside each, its level-0 hash tile; it
//! feeds two Merkle frontiers (the hashes of the complete subtrees on the
//! right edge, at most 64 per level of the tree, via `tlog_tiles`): one
//! from the entries' own leaf hashes, one from the tiles' leaf hashes. The
//! hashes of higher-level tiles are checked against both, tile by tile, as
//! they complete. At the end, whichever stream hashes to the signed root
//! is authentic and the failures are named against it: tiles that differ
//! from authentic entries are corrupt, entries that differ from authentic
//! tiles are edited, and if neither matches the root both are reported.
//! When the entries hash to the signed root, every entry is included at
//! its index, so no per-entry inclusion proof is needed.
//!
//! What is held: two frontiers, one bundle, one partial tile per level and
//! the listed failures (capped), plus, when asked, entry summaries deduped
//! by what the later checks need (tree, commit, approval) and the last few.
//! Not a function of the size the checkpoint claims. A checkpoint claiming
//! more than the server serves fails at the first bundle and tile both
//! missing, naming the entry from which nothing is served.

use std::collections::{BTreeMap, HashSet, VecDeque};

use tlog_tiles::{
    record_hash, stored_hash_index, stored_hashes_for_record_hash, tree_hash, Checkpoint,
    Error as TlogError, Hash, HashReader, Tile,
};

use crate::entry::open_entry;
use crate::tiles::{
    c2sp_path, data_tile_for, decode_bundle, hash_tile, read_tile, TILE_HEIGHT, TILE_WIDTH,
};
use crate::verify::{summary, tile_failure, AuditOptions, AuditReport, EntrySummary, FailureKind};
use crate::TileSource;

/// Entry summaries kept at the end of the log, for the report.
pub const RECENT_ENTRIES: usize = 20;

/// The right-edge hashes of a tree being built leaf by leaf.
#[derive(Default)]
struct Frontier(BTreeMap<u64, Hash>);

impl HashReader for Frontier {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TlogError> {
        indexes
            .iter()
            .map(|i| self.0.get(i).copied().ok_or(TlogError::IndexesNotInTree))
            .collect()
    }
}

impl Frontier {
    /// Adds record `n`'s leaf hash and the subtree hashes it completes.
    fn add(&mut self, n: u64, leaf: Hash) -> Result<(), TlogError> {
        let hs = stored_hashes_for_record_hash(n, leaf, self)?;
        let base = stored_hash_index(0, n);
        for (k, h) in hs.into_iter().enumerate() {
            self.0.insert(base + k as u64, h);
        }
        Ok(())
    }

    /// The hash of the subtree at `level`, index `n`, if held.
    fn get(&self, level: u8, n: u64) -> Option<Hash> {
        self.0.get(&stored_hash_index(level, n)).copied()
    }

    /// Drops everything but what a tree of `size` records still needs.
    fn prune(&mut self, size: u64) {
        let keep: HashSet<u64> = (0..64u8)
            .filter(|l| (size >> l) & 1 == 1)
            .map(|l| stored_hash_index(l, (size >> l) - 1))
            .collect();
        self.0.retain(|k, _| keep.contains(k));
    }
}

/// One stream (entries, or level-0 tiles): its frontier, whether it is
/// still whole, the hashes of the higher-level tiles being filled, and the
/// higher-level tiles the server serves differently.
struct Stream {
    frontier: Frontier,
    whole: bool,
    /// Index `l` (tile level >= 1): hashes of that level's open tile.
    pending: Vec<Vec<u8>>,
    /// Higher-level tiles that differ from this stream's hashes.
    differs: Vec<String>,
}

impl Stream {
    fn new(levels: usize) -> Stream {
        Stream {
            frontier: Frontier::default(),
            whole: true,
            pending: vec![Vec::new(); levels],
            differs: Vec::new(),
        }
    }

    /// Adds record `n`; collects the tile-level hashes it completes.
    fn add(&mut self, n: u64, leaf: Hash) {
        if !self.whole {
            return;
        }
        if self.frontier.add(n, leaf).is_err() {
            self.whole = false;
            return;
        }
        for l in 1..self.pending.len() {
            let span = 1u64 << (u32::from(TILE_HEIGHT) * l as u32);
            if (n + 1) % span == 0 {
                match self.frontier.get(l as u8 * TILE_HEIGHT, (n + 1) / span - 1) {
                    Some(h) => self.pending[l].extend_from_slice(&h.0),
                    None => self.whole = false,
                }
            }
        }
    }

    fn root(&self, size: u64) -> Option<Hash> {
        if !self.whole {
            return None;
        }
        tree_hash(size, &self.frontier).ok()
    }
}

/// Tile levels (>= 1) in a tree of `size`, plus one (index 0 unused).
fn levels(size: u64) -> usize {
    let mut l = 1;
    while l < 8 && (size >> (u32::from(TILE_HEIGHT) * l as u32)) > 0 {
        l += 1;
    }
    l
}

/// The two streams and, per level, the index of the next tile to check.
struct Pass<'a> {
    src: &'a dyn TileSource,
    size: u64,
    entries: Stream,
    tiles: Stream,
    next_tile: Vec<u64>,
}

impl Pass<'_> {
    /// Checks each higher-level tile that is full (or, `at_end`, the last
    /// partial one) against both streams.
    fn flush(&mut self, at_end: bool, report: &mut AuditReport) {
        let full = TILE_WIDTH as usize * tlog_tiles::HASH_SIZE;
        for l in 1..self.next_tile.len() {
            let filled = self.entries.pending[l]
                .len()
                .max(self.tiles.pending[l].len());
            if filled == 0 || (filled < full && !at_end) {
                continue;
            }
            let Some(t) = hash_tile(l as u8, self.next_tile[l], self.size) else {
                continue;
            };
            self.next_tile[l] += 1;
            let served = match read_tile(self.src, &t) {
                Ok(b) => Some(b),
                Err(e) => {
                    tile_failure(report, e);
                    None
                }
            };
            for s in [&mut self.entries, &mut self.tiles] {
                let mine = std::mem::take(&mut s.pending[l]);
                if let Some(b) = &served {
                    if s.whole && !mine.is_empty() && *b != mine {
                        s.differs.push(c2sp_path(&t));
                    }
                }
            }
        }
    }
}

/// Dedupes entry summaries by what the later checks use.
#[derive(Default)]
struct Kept {
    distinct_on: bool,
    all: bool,
    seen: HashSet<(String, Option<String>, String)>,
    distinct: Vec<EntrySummary>,
    recent: VecDeque<EntrySummary>,
}

impl Kept {
    fn push(&mut self, e: EntrySummary) {
        let distinct = self.all
            || self.distinct_on
                && e.decision.needs_approval()
                && self.seen.insert((
                    e.tree_sha256.clone(),
                    e.commit.clone(),
                    serde_json::to_string(&e.approval).unwrap_or_default(),
                ));
        if distinct {
            self.distinct.push(e);
        } else {
            if self.recent.len() == RECENT_ENTRIES {
                self.recent.pop_front();
            }
            self.recent.push_back(e);
        }
    }

    fn into_sorted(self) -> Vec<EntrySummary> {
        let mut v = self.distinct;
        v.extend(self.recent);
        v.sort_by_key(|e| e.index);
        v
    }
}

/// Every tile and entry of the tree `cp`, streamed; failures go to `report`.
pub(crate) fn check_entries(
    src: &dyn TileSource,
    cp: &Checkpoint,
    key: &ed25519_dalek::VerifyingKey,
    origin: &str,
    opts: AuditOptions,
    report: &mut AuditReport,
) {
    let size = cp.size();
    let root = *cp.hash();
    let lv = levels(size);
    let mut pass = Pass {
        src,
        size,
        entries: Stream::new(lv),
        tiles: Stream::new(lv),
        next_tile: vec![0; lv],
    };
    let mut kept = Kept {
        distinct_on: opts.keep_distinct,
        all: opts.keep_all,
        ..Kept::default()
    };
    // Entries that differ from the level-0 tile at their index (capped).
    let mut differ_entries: Vec<u64> = Vec::new();
    let mut differ_tiles: Vec<String> = Vec::new();
    let mut verified = 0u64;
    for b in 0..size.div_ceil(TILE_WIDTH) {
        let dt = data_tile_for(b * TILE_WIDTH, size);
        let width = dt.width() as usize;
        let path = c2sp_path(&dt);
        let bundle = read_tile(src, &dt).and_then(|raw| decode_bundle(&path, &raw, width));
        let t0: Tile = hash_tile(0, b, size).expect("bundle within size");
        let leaves = read_tile(src, &t0);
        if bundle.is_err() && leaves.is_err() {
            let first = b * TILE_WIDTH;
            for e in [bundle.err(), leaves.err()].into_iter().flatten() {
                tile_failure(report, e);
            }
            report.fail(
                FailureKind::MissingTile,
                format!(
                    "the checkpoint claims {size} entries but the log serves neither entries nor hashes from entry {first} on"
                ),
            );
            pass.entries.whole = false;
            pass.tiles.whole = false;
            break;
        }
        let entries = match bundle {
            Ok(e) => Some(e),
            Err(e) => {
                tile_failure(report, e);
                pass.entries.whole = false;
                None
            }
        };
        let leaves = match leaves {
            Ok(l) => Some(l),
            Err(e) => {
                tile_failure(report, e);
                pass.tiles.whole = false;
                None
            }
        };
        // The signature checks (the audit's cost) of one bundle, on every
        // core; memory stays one bundle's statements.
        let opened: Option<Vec<(Hash, Result<crate::Statement, crate::AttestError>)>> =
            entries.as_ref().map(|es| {
                use rayon::prelude::*;
                es.par_iter()
                    .enumerate()
                    .map(|(i, bytes)| {
                        let n = b * TILE_WIDTH + i as u64;
                        (record_hash(bytes), open_entry(bytes, key, n))
                    })
                    .collect()
            });
        let mut opened = opened.map(Vec::into_iter);
        let mut tile_differs = false;
        for i in 0..width {
            let n = b * TILE_WIDTH + i as u64;
            let tile_leaf = leaves
                .as_ref()
                .map(|l| Hash(l[i * 32..i * 32 + 32].try_into().expect("32 bytes")));
            if let Some(tl) = tile_leaf {
                pass.tiles.add(n, tl);
            }
            let Some((leaf, st)) = opened.as_mut().and_then(Iterator::next) else {
                continue;
            };
            pass.entries.add(n, leaf);
            verified += 1;
            if tile_leaf.is_some_and(|tl| tl != leaf) {
                tile_differs = true;
                if differ_entries.len() < opts.max_failures {
                    differ_entries.push(n);
                }
            }
            match st {
                Ok(st) => {
                    let p = &st.predicate;
                    *report
                        .decision_counts
                        .entry(p.decision.as_str().to_string())
                        .or_default() += 1;
                    if p.log_index != n || p.log_origin != origin {
                        report.fail(
                            FailureKind::EntryPosition,
                            format!(
                                "entry {n} says it is entry {} of log {:?}: entries were reordered or copied from another log",
                                p.log_index, p.log_origin
                            ),
                        );
                    }
                    if opts.keep_entries {
                        kept.push(summary(n, &st));
                    }
                }
                Err(e) => report.fail(FailureKind::EntrySignature, e.to_string()),
            }
        }
        if tile_differs && differ_tiles.len() < opts.max_failures {
            differ_tiles.push(c2sp_path(&t0));
        }
        pass.flush(false, report);
        let next = ((b + 1) * TILE_WIDTH).min(size);
        pass.entries.frontier.prune(next);
        pass.tiles.frontier.prune(next);
    }
    pass.flush(true, report);
    report.entries_verified = verified;
    if opts.keep_entries {
        report.entries = kept.into_sorted();
    }

    let entry_root = pass.entries.root(size);
    let tile_root = pass.tiles.root(size);
    let corrupt = |report: &mut AuditReport, paths: &[String]| {
        for p in paths {
            report.fail(
                FailureKind::CorruptTile,
                format!("tile {p} does not match the tree (bit flip or edit)"),
            );
        }
    };
    if entry_root == Some(root) {
        // The entries are authentic; tiles that differ from them are not.
        if tile_root != Some(root) {
            corrupt(report, &differ_tiles);
        }
        corrupt(report, &pass.entries.differs);
    } else if tile_root == Some(root) {
        for n in &differ_entries {
            report.fail(
                FailureKind::EditedEntry,
                format!("entry {n} is not the leaf the signed tree holds at {n} (edited, replaced or reordered)"),
            );
        }
        corrupt(report, &pass.tiles.differs);
        if pass.entries.whole && differ_entries.is_empty() {
            report.fail(
                FailureKind::RootMismatch,
                format!("the entries do not hash to the signed root {root}"),
            );
        }
    } else {
        if pass.entries.whole {
            report.fail(
                FailureKind::RootMismatch,
                format!("the entries do not hash to the signed root {root}"),
            );
        }
        if let Some(h) = tile_root {
            report.fail(
                FailureKind::CorruptTile,
                format!("the level-0 hash tiles hash to {h}, not to the signed root {root}: a tile was altered"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_root_equals_tree_hash_and_stays_small() {
        // Reference: every stored hash, the crate's own way.
        let mut all: Vec<Hash> = Vec::new();
        struct All<'a>(&'a [Hash]);
        impl HashReader for All<'_> {
            fn read_hashes(&self, ix: &[u64]) -> Result<Vec<Hash>, TlogError> {
                ix.iter()
                    .map(|&i| {
                        self.0
                            .get(i as usize)
                            .copied()
                            .ok_or(TlogError::IndexesNotInTree)
                    })
                    .collect()
            }
        }
        let mut f = Frontier::default();
        for n in 0..3000u64 {
            let leaf = record_hash(&n.to_be_bytes());
            let hs = stored_hashes_for_record_hash(n, leaf, &All(&all)).unwrap();
            all.extend(hs);
            f.add(n, leaf).unwrap();
            f.prune(n + 1);
            assert!(f.0.len() <= 64);
            if n % 97 == 0 || n == 2999 {
                assert_eq!(
                    tree_hash(n + 1, &f).unwrap(),
                    tree_hash(n + 1, &All(&all)).unwrap()
                );
            }
        }
    }

    #[test]
    fn levels_of_sizes() {
        assert_eq!(levels(1), 1);
        assert_eq!(levels(255), 1);
        assert_eq!(levels(256), 2);
        assert_eq!(levels(65536), 3);
    }
}
