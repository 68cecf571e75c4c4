//! Git's object framing and tree entry encoding, for both object formats.
//!
//! An object's id is `H("<type> <len>\0" || body)`. A tree body is a
//! sequence of `<mode> <name>\0<raw id>` entries, sorted by name bytes
//! where a directory sorts as if its name ended in `/`. The sha256 format
//! differs only in the hash and the 32-byte raw ids inside tree bodies.

use std::cmp::Ordering;

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// What a tree entry is, which fixes its mode string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Executable,
    Symlink,
    Tree,
}

impl Kind {
    /// The mode as git writes it in tree objects (no leading zero for trees).
    pub(crate) fn mode(self) -> &'static [u8] {
        match self {
            Kind::File => b"100644",
            Kind::Executable => b"100755",
            Kind::Symlink => b"120000",
            Kind::Tree => b"40000",
        }
    }
}

/// True for names git refuses as a path component because a filesystem
/// could take them for `.git`: `.git` in any case, with trailing spaces or
/// dots (`.GIT`, `.git.`, `.git `), NTFS alternate streams (`.git:x`), and
/// the 8.3 short name `git~1` (git's `core.protectNTFS`, on by default).
pub(crate) fn is_dotgit_alias(name: &[u8]) -> bool {
    let base = match name.iter().position(|&b| b == b':') {
        Some(i) => &name[..i],
        None => name,
    };
    let end = base
        .iter()
        .rposition(|&b| b != b' ' && b != b'.')
        .map_or(0, |i| i + 1);
    let trimmed = &base[..end];
    trimmed.eq_ignore_ascii_case(b".git") || base.eq_ignore_ascii_case(b"git~1")
}

/// The ids of one object in both formats. `sha1` is all zeros when the
/// caller asked only for sha256 (it is then never read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Digests {
    pub sha1: [u8; 20],
    pub sha256: [u8; 32],
}

/// One entry of a tree being built.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub name: Vec<u8>,
    pub kind: Kind,
    pub ids: Digests,
}

/// Git's `base_name_compare`: byte order, with a directory compared as if
/// its name had a trailing `/`.
pub(crate) fn entry_order(a: &[u8], a_dir: bool, b: &[u8], b_dir: bool) -> Ordering {
    let common = a.len().min(b.len());
    match a[..common].cmp(&b[..common]) {
        Ordering::Equal => {}
        other => return other,
    }
    let next = |name: &[u8], dir: bool| -> u8 {
        match name.get(common) {
            Some(&c) => c,
            None if dir => b'/',
            None => 0,
        }
    };
    next(a, a_dir).cmp(&next(b, b_dir))
}

pub(crate) fn sort_entries(entries: &mut [Entry]) {
    entries.sort_unstable_by(|x, y| {
        entry_order(&x.name, x.kind == Kind::Tree, &y.name, y.kind == Kind::Tree)
    });
}

/// Hashes a blob's content in one or both formats.
/// Hashes a blob whose length is known before its content, in pieces (for
/// files too large to hold in memory).
pub(crate) struct BlobHasher {
    sha256: Sha256,
    sha1: Option<Sha1>,
}

impl BlobHasher {
    pub(crate) fn new(len: u64, want_sha1: bool) -> Self {
        let header = format!("blob {len}\0");
        let mut sha256 = Sha256::new();
        sha256.update(header.as_bytes());
        let sha1 = want_sha1.then(|| {
            let mut h = Sha1::new();
            h.update(header.as_bytes());
            h
        });
        BlobHasher { sha256, sha1 }
    }

    pub(crate) fn update(&mut self, piece: &[u8]) {
        self.sha256.update(piece);
        if let Some(h) = &mut self.sha1 {
            h.update(piece);
        }
    }

    pub(crate) fn finish(self) -> Digests {
        Digests {
            sha1: self.sha1.map_or([0; 20], |h| h.finalize().into()),
            sha256: self.sha256.finalize().into(),
        }
    }
}

pub(crate) fn blob_digests(content: &[u8], want_sha1: bool) -> Digests {
    let header = format!("blob {}\0", content.len());
    let mut sha256 = Sha256::new();
    sha256.update(header.as_bytes());
    sha256.update(content);
    let mut ids = Digests {
        sha1: [0; 20],
        sha256: sha256.finalize().into(),
    };
    if want_sha1 {
        let mut sha1 = Sha1::new();
        sha1.update(header.as_bytes());
        sha1.update(content);
        ids.sha1 = sha1.finalize().into();
    }
    ids
}

/// Hashes a tree from entries that are already in git order.
pub(crate) fn tree_digests(entries: &[Entry], want_sha1: bool) -> Digests {
    let mut ids = Digests {
        sha1: [0; 20],
        sha256: hash_tree::<Sha256, 32>(entries, |d| &d.sha256),
    };
    if want_sha1 {
        ids.sha1 = hash_tree::<Sha1, 20>(entries, |d| &d.sha1);
    }
    ids
}

/// Serializes a tree body with the raw ids of one format.
pub(crate) fn tree_body<const N: usize>(
    entries: &[Entry],
    pick: impl Fn(&Digests) -> &[u8; N],
) -> Vec<u8> {
    let len: usize = entries
        .iter()
        .map(|e| e.kind.mode().len() + 1 + e.name.len() + 1 + N)
        .sum();
    let mut body = Vec::with_capacity(len);
    for e in entries {
        body.extend_from_slice(e.kind.mode());
        body.push(b' ');
        body.extend_from_slice(&e.name);
        body.push(0);
        body.extend_from_slice(pick(&e.ids));
    }
    body
}

fn hash_tree<D: Digest, const N: usize>(
    entries: &[Entry],
    pick: impl Fn(&Digests) -> &[u8; N],
) -> [u8; N]
where
    [u8; N]: for<'a> TryFrom<&'a [u8]>,
{
    let body = tree_body::<N>(entries, pick);
    let mut h = D::new();
    h.update(format!("tree {}\0", body.len()).as_bytes());
    h.update(&body);
    let out = h.finalize();
    let mut id = [0u8; N];
    id.copy_from_slice(&out);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_tree_ids_match_git() {
        let ids = tree_digests(&[], true);
        assert_eq!(hex::encode(ids.sha1), crate::EMPTY_TREE_SHA1);
        assert_eq!(hex::encode(ids.sha256), crate::EMPTY_TREE_SHA256);
    }

    #[test]
    fn empty_blob_ids_match_git() {
        let ids = blob_digests(b"", true);
        assert_eq!(
            hex::encode(ids.sha1),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
        assert_eq!(
            hex::encode(ids.sha256),
            "473a0f4c3be8a93681a267e3b1e9a7dcda1185436fe141f7749120a303721813"
        );
    }

    #[test]
    fn streamed_blob_equals_whole_blob() {
        let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut h = BlobHasher::new(content.len() as u64, true);
        for piece in content.chunks(7777) {
            h.update(piece);
        }
        assert_eq!(h.finish(), blob_digests(&content, true));
        let mut h = BlobHasher::new(content.len() as u64, false);
        h.update(&content);
        assert_eq!(h.finish().sha256, blob_digests(&content, false).sha256);
    }

    #[test]
    fn dotgit_aliases() {
        for alias in [
            &b".git"[..],
            b".GIT",
            b".Git",
            b".git.",
            b".git  ",
            b".git . ",
            b".git:stream",
            b"GIT~1",
            b"git~1",
        ] {
            assert!(
                is_dotgit_alias(alias),
                "{:?}",
                String::from_utf8_lossy(alias)
            );
        }
        for fine in [
            &b".gitignore"[..],
            b".gitmodules",
            b"git",
            b"git~2",
            b"a.git",
            b".gi",
            b"...",
            b"x:y",
            b".git-x",
        ] {
            assert!(
                !is_dotgit_alias(fine),
                "{:?}",
                String::from_utf8_lossy(fine)
            );
        }
    }

    #[test]
    fn directories_sort_as_if_slash_terminated() {
        // "a.b" (0x2e) < "a/" (0x2f) < "a0" (0x30): a directory "a" sorts between.
        assert_eq!(entry_order(b"a", true, b"a.b", false), Ordering::Greater);
        assert_eq!(entry_order(b"a", true, b"a0", false), Ordering::Less);
        // As a file, "a" sorts before both.
        assert_eq!(entry_order(b"a", false, b"a.b", false), Ordering::Less);
        assert_eq!(entry_order(b"abc", false, b"abd", false), Ordering::Less);
    }
}
