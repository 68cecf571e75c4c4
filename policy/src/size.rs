//! Byte sizes as people write them in YAML (`512MiB`, `2GB`, `1048576`).

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

const UNITS: &[(&str, u64)] = &[
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("kB", 1_000),
    ("B", 1),
];

/// The accepted spellings, for error messages.
pub const SIZE_HELP: &str =
    "a number of bytes or a size like 512MiB (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)";

/// Parses `"512MiB"`, `"1.5GiB"` is refused (whole numbers only, so the
/// value is exact), `"64 MiB"` (one space allowed), `"1000"`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, mult) = UNITS
        .iter()
        .find_map(|(unit, mult)| t.strip_suffix(unit).map(|d| (d.trim_end(), *mult)))
        .unwrap_or((t, 1));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a size; use {SIZE_HELP}"));
    }
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is too large"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// The shortest exact binary spelling: `536870912` -> `512MiB`.
pub fn format_size(n: u64) -> String {
    for (unit, mult) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if n != 0 && n % mult == 0 {
            return format!("{}{unit}", n / mult);
        }
    }
    format!("{n}B")
}

/// serde `with` module: a size from a string or an integer; written back
/// as a string like `512MiB`.
pub mod serde_size {
    use super::*;

    /// Writes the shortest exact binary spelling, so a round trip keeps the value.
    pub fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_size(*n))
    }

    /// Accepts a byte count or a string like `512MiB`; negative or fractional
    /// values are refused so a limit is never silently rounded.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = u64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(SIZE_HELP)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
                Ok(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
                u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative; use {SIZE_HELP}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
                parse_size(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// serde `with` module for `Option<u64>` sizes (absent or null = `None`);
/// use with `#[serde(default)]`.
pub mod serde_size_opt {
    use super::*;

    /// Writes `None` as null; the field should also skip serializing when absent.
    pub fn serialize<S: Serializer>(n: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match n {
            Some(n) => s.serialize_str(&format_size(*n)),
            None => s.serialize_none(),
        }
    }

    /// Reads a size as in [`serde_size`]; only called when the field is present.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        serde_size::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("64 MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("10kB"), Ok(10_000));
        assert_eq!(parse_size("7B"), Ok(7));
        assert_eq!(parse_size("1000"), Ok(1000));
    }

    #[test]
    fn refuses_nonsense() {
        for bad in [
            "",
            "MiB",
            "1.5GiB",
            "-1",
            "12XB",
            "0x10",
            "99999999999999TiB",
            "1 2MiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn format_round_trips() {
        for n in [0, 1, 1023, 1024, 512 << 20, 3 << 30, (1 << 40) + 1] {
            assert_eq!(parse_size(&format_size(n)), Ok(n), "{n}");
        }
        assert_eq!(format_size(512 << 20), "512MiB");
    }
}
