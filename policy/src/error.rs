use std::fmt;

/// One thing wrong with a manifest or policy: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Dotted path of the field (`limits.memory`, `datasets[2]`), or `.`
    /// for the document as a whole.
    pub field: String,
    /// What is wrong.
    pub problem: String,
    /// What to write instead.
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (fix: {})", self.field, self.problem, self.fix)
    }
}

/// Why a job manifest or node policy was not accepted. Every variant names
/// the file, so a message read in a log points at what to edit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The YAML does not fit the schema (syntax error, unknown field, wrong
    /// type, missing field). `message` starts with the field path serde
    /// reported (`limits.memory: ...`), `fix` says what to write.
    #[error("{file}: {message}{} (fix: {fix})", location.map(|(l, c)| format!(" at line {l} column {c}")).unwrap_or_default())]
    Schema {
        /// The file the problem was found in (as the caller named it).
        file: String,
        /// serde's message, with the trailing position moved to `location`.
        message: String,
        /// What to write instead.
        fix: String,
        /// (line, column) in the YAML, when serde knows it.
        location: Option<(usize, usize)>,
    },

    /// The YAML fits the schema but values break the rules (each problem
    /// names its field and the fix).
    #[error("{file}: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// The file the problems were found in.
        file: String,
        /// Every problem found, not only the first, so one pass fixes them all.
        problems: Vec<Problem>,
    },
}

impl PolicyError {
    pub(crate) fn schema(file: &str, e: &serde_norway::Error) -> Self {
        let mut message = e.to_string();
        // serde_norway appends " at line L column C"; keep it structured instead.
        if let Some(pos) = message.find(" at line ") {
            message.truncate(pos);
        }
        let fix = schema_fix(&message);
        PolicyError::Schema {
            file: file.to_string(),
            message,
            fix,
            location: e.location().map(|l| (l.line(), l.column())),
        }
    }

    /// The file the error is about.
    pub fn file(&self) -> &str {
        match self {
            PolicyError::Schema { file, .. } | PolicyError::Invalid { file, .. } => file,
        }
    }
}

/// A fix for the common schema mistakes, worked out from serde's message.
fn schema_fix(message: &str) -> String {
    let quoted = |after: &str| -> Option<String> {
        let rest = &message[message.find(after)? + after.len()..];
        let end = rest.find('`')?;
        Some(rest[..end].to_string())
    };
    if let Some(field) = quoted("missing field `") {
        let parent = message
            .split(": missing field")
            .next()
            .filter(|p| !p.starts_with("missing"));
        match parent {
            Some(p) => format!("add `{field}:` under `{p}`"),
            None => format!("add `{field}:`"),
        }
    } else if let Some(field) = quoted("unknown field `") {
        format!("remove `{field}` or correct its spelling (the schema is strict)")
    } else if message.contains("unknown variant") {
        "use one of the expected values".to_string()
    } else {
        "correct the YAML at the position shown".to_string()
    }
}
