//! Output names a job may leave in `/out`.
//!
//! Security argument. A file name is data the job chooses, so a name is a
//! channel out of the sandbox: a job that may name its outputs freely can
//! publish plaintext rows as file names in the public log, the API and
//! refusal reasons, can make the log entry too large to append, and can
//! collide two names into one after lossy decoding. So the node collects
//! only names the *manifest* declares (the DAO approved the manifest with
//! the tree), in a small character set, of bounded length and bounded in
//! number; anything else is dropped and counted, never named.
//!
//! A declared pattern is `/`-separated, at most [`MAX_DEPTH`] components,
//! each 1..=64 bytes of `[A-Za-z0-9._-]` not starting with `.`; the last
//! component may hold `*` wildcards (each matches one or more safe
//! characters, never `/`). A name the job actually wrote is collected only
//! when it matches a pattern *and* is itself in the safe set, so the name
//! that reaches the log is one of a set the manifest bounded: the job can
//! choose among declared names (one bit per declared exact name, a few
//! characters per wildcard), and [`MAX_COLLECTED`] bounds that.
//!
//! Not covered: the *contents* and *sizes* of declared outputs are job
//! data; they leave only encrypted to the approval's recipients, and sizes
//! are public (in the log) by design.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Components a pattern (and a collected name) may have.
pub const MAX_DEPTH: usize = 3;
/// Bytes per component.
pub const MAX_COMPONENT: usize = 64;
/// Bytes of a whole pattern or name.
pub const MAX_NAME: usize = 128;
/// Wildcards in one pattern (matching cost is polynomial in this).
pub const MAX_WILDCARDS: usize = 3;
/// Patterns a manifest may declare.
pub const MAX_PATTERNS: usize = 32;
/// Files collected from one run, whatever the patterns match: with
/// [`MAX_NAME`] this keeps every `job-finished` entry far below the log's
/// entry size limit by construction.
pub const MAX_COLLECTED: usize = 64;

/// One declared output: an exact relative path or a pattern whose last
/// component has `*` wildcards.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutputPattern {
    raw: String,
}

/// True for a byte allowed in output names.
fn safe_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Checks one component of a collected name (no wildcards).
fn safe_component(c: &[u8]) -> bool {
    !c.is_empty() && c.len() <= MAX_COMPONENT && c[0] != b'.' && c.iter().all(|&b| safe_byte(b))
}

/// True when `name` (a relative path the job wrote, as raw bytes) may be
/// named in the log at all: safe characters, bounded length and depth.
pub fn is_safe_name(name: &[u8]) -> bool {
    name.len() <= MAX_NAME
        && name.split(|&b| b == b'/').count() <= MAX_DEPTH
        && name.split(|&b| b == b'/').all(safe_component)
}

/// Glob match of a component with `*` (one or more bytes) against `s`.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (1..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

impl OutputPattern {
    /// Parses and checks a pattern; the error says what is wrong with it.
    pub fn parse(raw: &str) -> Result<OutputPattern, String> {
        let p = OutputPattern { raw: raw.into() };
        p.check().map(|()| p)
    }

    /// Why this pattern is not acceptable, if it is not.
    pub fn check(&self) -> Result<(), String> {
        let raw = self.raw.as_str();
        if raw.is_empty() {
            return Err("is empty".into());
        }
        if raw.len() > MAX_NAME {
            return Err(format!("is {} bytes, more than {MAX_NAME}", raw.len()));
        }
        let parts: Vec<&str> = raw.split('/').collect();
        if parts.len() > MAX_DEPTH {
            return Err(format!(
                "{raw:?} has {} components, more than {MAX_DEPTH}",
                parts.len()
            ));
        }
        for (i, c) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let bytes = c.as_bytes();
            if bytes.is_empty() || bytes.len() > MAX_COMPONENT {
                return Err(format!(
                    "{raw:?} has an empty component or one longer than {MAX_COMPONENT}"
                ));
            }
            if bytes[0] == b'.' {
                return Err(format!("{raw:?} has a component starting with `.`"));
            }
            let ok = bytes.iter().all(|&b| safe_byte(b) || (last && b == b'*'));
            if bytes.iter().filter(|&&b| b == b'*').count() > MAX_WILDCARDS {
                return Err(format!("{raw:?} has more than {MAX_WILDCARDS} `*`"));
            }
            if !ok {
                return Err(format!(
                    "{raw:?} uses characters outside [A-Za-z0-9._-] (`*` only in the file name)"
                ));
            }
        }
        Ok(())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The directory part (components before the last), which must exist
    /// literally: wildcards are only in the file name.
    pub fn dir(&self) -> Vec<&str> {
        let mut parts: Vec<&str> = self.raw.split('/').collect();
        parts.pop();
        parts
    }

    /// The file-name part (may contain `*`).
    pub fn file(&self) -> &str {
        self.raw.rsplit('/').next().unwrap_or("")
    }

    /// Whether the pattern has wildcards.
    pub fn is_exact(&self) -> bool {
        !self.raw.contains('*')
    }

    /// Whether a file called `file` (one component, raw bytes) in this
    /// pattern's directory is declared by it. Unsafe names never match.
    pub fn matches_file(&self, file: &[u8]) -> bool {
        safe_component(file) && glob(self.file().as_bytes(), file)
    }
}

impl fmt::Display for OutputPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for OutputPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for OutputPattern {
    /// Any string deserializes; [`OutputPattern::check`] runs in the
    /// manifest's validation, so every bad pattern is reported with its
    /// field, not only the first.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(OutputPattern {
            raw: String::deserialize(d)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn patterns_parse_and_refuse() {
        for ok in ["model.json", "stats/summary.json", "shard-*.bin", "a/b/c*"] {
            OutputPattern::parse(ok).unwrap();
        }
        for bad in [
            "",
            "/abs",
            "../x",
            "a//b",
            ".hidden",
            "a/.b",
            "*/x",
            "a b",
            "a/b/c/d",
            "é",
            "x\0",
            &"a".repeat(65),
        ] {
            assert!(OutputPattern::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn matching() {
        let p = OutputPattern::parse("shard-*.bin").unwrap();
        assert!(p.matches_file(b"shard-1.bin"));
        assert!(p.matches_file(b"shard-abc.bin"));
        assert!(!p.matches_file(b"shard-.bin"), "* is one or more");
        assert!(!p.matches_file(b"shard-1.bin.x"));
        assert!(!p.matches_file(b"shard-a b.bin"), "unsafe byte");
        assert!(!p.matches_file(b"shard-\xff.bin"), "non-UTF-8");
        let e = OutputPattern::parse("model.json").unwrap();
        assert!(e.is_exact() && e.matches_file(b"model.json") && !e.matches_file(b"model.jso"));
        let d = OutputPattern::parse("m/x.json").unwrap();
        assert_eq!(d.dir(), ["m"]);
        assert_eq!(d.file(), "x.json");
    }

    #[test]
    fn safe_names() {
        assert!(is_safe_name(b"a/b.json"));
        assert!(!is_safe_name(b"a/../b"));
        assert!(!is_safe_name(b"a\nb"));
        assert!(!is_safe_name(&[b'a'; 200]));
    }

    proptest! {
        #[test]
        fn a_match_is_always_a_safe_name(pat in "[a-z*.-]{1,12}", name in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = OutputPattern::parse(&pat) {
                if p.matches_file(&name) {
                    prop_assert!(is_safe_name(&name));
                }
            }
        }
    }
}
