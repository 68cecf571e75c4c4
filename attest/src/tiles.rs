//! C2SP tlog-tiles layout: where every tile lives and how to read it from
//! any source (a directory here; HTTP in the CLI).
//!
//! The `tlog_tiles` crate is a port of Go's sumdb tiles, whose paths are
//! `tile/H/L/N` and `tile/H/data/N`. C2SP tlog-tiles fixes the height at 8
//! and drops it from the path, and calls data tiles `entries`: so the C2SP
//! path is derived from the crate's path by a fixed rewrite, never built by
//! hand. Entry bundles hold each entry as a 16-bit big-endian length
//! followed by the bytes (C2SP tlog-tiles, "Log Entries").

use std::cell::RefCell;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use tlog_tiles::{Error as TlogError, Tile, TileReader};

use crate::AttestError;

/// C2SP tlog-tiles tile height.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;
/// Path of the checkpoint in a log directory or URL.
pub const CHECKPOINT_PATH: &str = "checkpoint";

/// The C2SP path of a tile (`tile/L/N[.p/W]` or `tile/entries/N[.p/W]`).
pub fn c2sp_path(tile: &Tile) -> String {
    let p = tile.path();
    let prefix = format!("tile/{TILE_HEIGHT}/");
    let rest = p
        .strip_prefix(&prefix)
        .expect("tiles are always created with height 8");
    match rest.strip_prefix("data/") {
        Some(n) => format!("tile/entries/{n}"),
        None => format!("tile/{rest}"),
    }
}

/// The C2SP path of the full tile with the same coordinates as `tile`.
pub fn full_path(tile: &Tile) -> String {
    let mut full = Tile::new(
        TILE_HEIGHT,
        tile.level(),
        tile.level_index(),
        TILE_WIDTH as u32,
        false,
    );
    if tile.is_data() {
        full.set_is_data();
    }
    c2sp_path(&full)
}

/// The hash tile at `level`, index `n` for a tree of `size` records; None if
/// the tree has no such tile.
pub fn hash_tile(level: u8, n: u64, size: u64) -> Option<Tile> {
    let shift = u32::from(level) * u32::from(TILE_HEIGHT);
    let nodes = if shift >= 64 { 0 } else { size >> shift };
    let start = n.checked_mul(TILE_WIDTH)?;
    if nodes <= start {
        return None;
    }
    let w = (nodes - start).min(TILE_WIDTH);
    Some(Tile::new(TILE_HEIGHT, level, n, w as u32, false))
}

/// The entry bundle holding record `index` in a tree of `size` records.
pub fn data_tile_for(index: u64, size: u64) -> Tile {
    let mut t = hash_tile(0, index / TILE_WIDTH, size).expect("index < size");
    t.set_is_data();
    t
}

/// Every tile (hash tiles of all levels, then entry bundles) of a tree of `size`.
pub fn all_tiles(size: u64) -> Vec<Tile> {
    let mut tiles = Tile::new_tiles(TILE_HEIGHT, 0, size);
    let data: Vec<Tile> = tiles
        .iter()
        .filter(|t| t.level() == 0)
        .map(|t| {
            let mut d = *t;
            d.set_is_data();
            d
        })
        .collect();
    tiles.extend(data);
    tiles
}

/// Encodes entries as a C2SP entry bundle.
pub fn encode_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len()).expect("entries are checked against MAX_ENTRY_BYTES");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    out
}

/// Decodes an entry bundle that must hold exactly `count` entries.
pub fn decode_bundle(path: &str, data: &[u8], count: usize) -> Result<Vec<Vec<u8>>, AttestError> {
    let bad = |reason: String| AttestError::Bundle {
        path: path.to_string(),
        reason,
    };
    let mut out = Vec::with_capacity(count);
    let mut rest = data;
    while !rest.is_empty() {
        if rest.len() < 2 {
            return Err(bad(format!(
                "truncated length prefix after {} entries",
                out.len()
            )));
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if rest.len() < 2 + len {
            return Err(bad(format!(
                "entry {} is truncated ({} of {len} bytes)",
                out.len(),
                rest.len() - 2
            )));
        }
        out.push(rest[2..2 + len].to_vec());
        rest = &rest[2 + len..];
    }
    if out.len() != count {
        return Err(bad(format!(
            "holds {} entries, expected {count}",
            out.len()
        )));
    }
    Ok(out)
}

/// The largest legal file at `path`: a checkpoint (a signed note with
/// cosignatures) 64 KiB, a hash tile 8 KiB, an entry bundle 256 entries of
/// the largest entry. Sources stop reading past it.
pub fn max_len(path: &str) -> u64 {
    if path.starts_with("tile/entries/") {
        TILE_WIDTH * (2 + crate::entry::MAX_ENTRY_BYTES as u64)
    } else if path.starts_with("tile/") {
        TILE_WIDTH * tlog_tiles::HASH_SIZE as u64
    } else {
        64 * 1024
    }
}

/// Reads `r` to the end, failing past `limit` bytes without buffering more.
pub fn read_capped(
    mut r: impl std::io::Read,
    limit: u64,
    too_large: impl FnOnce() -> AttestError,
    io: impl FnOnce(std::io::Error) -> AttestError,
) -> Result<Vec<u8>, AttestError> {
    let mut buf = Vec::new();
    (&mut r).take(limit + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(buf)
}

/// Somewhere a log's static files can be read from.
pub trait TileSource {
    /// A short name for messages (a directory path or a URL).
    fn name(&self) -> String;
    /// The bytes at `path` (relative, e.g. `tile/0/000`); `Ok(None)` when absent.
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, AttestError>;
}

/// A log directory on disk.
#[derive(Debug, Clone)]
pub struct DirSource {
    /// The log's root (the directory holding `checkpoint` and `tile/`).
    pub dir: PathBuf,
}

impl DirSource {
    /// A source reading the log in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirSource { dir: dir.into() }
    }
}

impl TileSource for DirSource {
    fn name(&self) -> String {
        self.dir.display().to_string()
    }
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, AttestError> {
        let p: PathBuf = self.dir.join(Path::new(path));
        let f = match std::fs::File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(AttestError::io("read", p, e)),
        };
        let too_large = || AttestError::TooLarge {
            source_name: self.name(),
            path: path.to_string(),
            limit: max_len(path),
        };
        read_capped(f, max_len(path), too_large, |e| {
            AttestError::io("read", &p, e)
        })
        .map(Some)
    }
}

/// Reads a tile of exactly the width `tile` names: the partial tile at its
/// own path, else (partials may be deleted once superseded, as C2SP allows)
/// the full tile, truncated. Length is checked; content is not (callers
/// authenticate content against a signed root).
pub fn read_tile(src: &dyn TileSource, tile: &Tile) -> Result<Vec<u8>, AttestError> {
    let unit = if tile.is_data() {
        0
    } else {
        tlog_tiles::HASH_SIZE
    };
    let path = c2sp_path(tile);
    let want = tile.width() as usize * unit;
    if let Some(b) = src.read(&path)? {
        if unit != 0 && b.len() != want {
            return Err(AttestError::TileLength {
                path,
                len: b.len(),
                expected: want,
            });
        }
        return Ok(b);
    }
    if u64::from(tile.width()) < TILE_WIDTH {
        let full = full_path(tile);
        if let Some(mut b) = src.read(&full)? {
            if unit == 0 {
                // The first `width` entries of the full bundle.
                let mut at = 0usize;
                for _ in 0..tile.width() {
                    let Some(len) = b.get(at..at + 2) else {
                        return Err(AttestError::Bundle {
                            path: full,
                            reason: "full entry bundle is shorter than the partial it replaces"
                                .into(),
                        });
                    };
                    at += 2 + usize::from(u16::from_be_bytes([len[0], len[1]]));
                }
                if at > b.len() {
                    return Err(AttestError::Bundle {
                        path: full,
                        reason: "full entry bundle is truncated".into(),
                    });
                }
                b.truncate(at);
                return Ok(b);
            }
            let full_len = TILE_WIDTH as usize * unit;
            if b.len() != full_len {
                return Err(AttestError::TileLength {
                    path: full,
                    len: b.len(),
                    expected: full_len,
                });
            }
            return Ok(b[..want].to_vec());
        }
    }
    Err(AttestError::MissingTile { path })
}

/// Adapts a [`TileSource`] to `tlog_tiles::TileReader`, keeping the first
/// real error (which tile, why) because the crate's error type cannot carry it.
pub struct SourceTileReader<'a> {
    /// Where the tiles are read from.
    pub src: &'a dyn TileSource,
    /// The first source error hit, returned by [`SourceTileReader::explain`]
    /// instead of `tlog_tiles`' generic one.
    pub last_error: RefCell<Option<AttestError>>,
}

impl std::fmt::Debug for SourceTileReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceTileReader")
            .field("src", &self.src.name())
            .finish()
    }
}

impl<'a> SourceTileReader<'a> {
    /// A reader over `src` with no error recorded yet.
    pub fn new(src: &'a dyn TileSource) -> Self {
        SourceTileReader {
            src,
            last_error: RefCell::new(None),
        }
    }
    /// Turns a tlog error into ours, preferring the recorded source error.
    pub fn explain(&self, what: &str, e: TlogError) -> AttestError {
        if let Some(err) = self.last_error.borrow_mut().take() {
            return err;
        }
        AttestError::Proof {
            what: what.to_string(),
            reason: e.to_string(),
        }
    }
}

impl TileReader for SourceTileReader<'_> {
    fn height(&self) -> u8 {
        TILE_HEIGHT
    }
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, TlogError> {
        let mut out = Vec::with_capacity(tiles.len());
        for t in tiles {
            match read_tile(self.src, t) {
                Ok(b) => out.push(b),
                Err(e) => {
                    self.last_error.borrow_mut().replace(e);
                    return Err(TlogError::InvalidTile);
                }
            }
        }
        Ok(out)
    }
    fn save_tiles(&self, _tiles: &[Tile], _data: &[Vec<u8>]) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_c2sp() {
        assert_eq!(
            c2sp_path(&Tile::new(8, 0, 1234067, 256, false)),
            "tile/0/x001/x234/067"
        );
        assert_eq!(c2sp_path(&Tile::new(8, 1, 5, 3, false)), "tile/1/005.p/3");
        let mut d = Tile::new(8, 0, 0, 7, false);
        d.set_is_data();
        assert_eq!(c2sp_path(&d), "tile/entries/000.p/7");
        assert_eq!(full_path(&d), "tile/entries/000");
    }

    #[test]
    fn tile_geometry() {
        assert_eq!(hash_tile(0, 0, 0), None);
        assert_eq!(hash_tile(0, 0, 5).unwrap().width(), 5);
        assert_eq!(hash_tile(0, 1, 300).unwrap().width(), 44);
        assert_eq!(hash_tile(1, 0, 300).unwrap().width(), 1);
        assert_eq!(hash_tile(1, 0, 255), None);
        let tiles = all_tiles(257);
        let paths: Vec<String> = tiles.iter().map(c2sp_path).collect();
        assert_eq!(
            paths,
            [
                "tile/0/000",
                "tile/0/001.p/1",
                "tile/1/000.p/1",
                "tile/entries/000",
                "tile/entries/001.p/1"
            ]
        );
    }

    #[test]
    fn bundle_roundtrip_and_damage() {
        let e: Vec<&[u8]> = vec![b"a", b"", b"hello"];
        let b = encode_bundle(e.iter().copied());
        assert_eq!(
            decode_bundle("p", &b, 3).unwrap(),
            vec![b"a".to_vec(), vec![], b"hello".to_vec()]
        );
        assert!(decode_bundle("p", &b, 2).is_err());
        assert!(decode_bundle("p", &b[..b.len() - 1], 3)
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        assert!(decode_bundle("p", &b[..1], 1).is_err());
    }
}
