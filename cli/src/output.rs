//! The one place the CLI writes to the terminal.
//!
//! Commands hand their results here instead of printing, so every command
//! gets `--json` for scripts and plain text for people from one switch, and
//! progress bars are hidden when output is not a terminal or is JSON.

use std::io::{IsTerminal, Write};

use serde::Serialize;

/// How results are shown; chosen once from the global `--json` flag.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Prints a result: `value` as one JSON document with `--json`, else the
    /// human text.
    pub fn result<T: Serialize>(
        &self,
        value: &T,
        human: impl std::fmt::Display,
    ) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        if self.json {
            serde_json::to_writer_pretty(&mut out, value)?;
            writeln!(out)?;
        } else {
            writeln!(out, "{human}")?;
        }
        Ok(())
    }

    /// A line of narration for people (a step in a long flow); silent with
    /// `--json` so scripts only see the final document.
    pub fn say(&self, line: impl std::fmt::Display) {
        if !self.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        }
    }

    /// A progress bar for long work, hidden when stderr is not a terminal or
    /// output is JSON.
    pub fn progress(&self, len: u64, what: &str) -> indicatif::ProgressBar {
        if self.json || !std::io::stderr().is_terminal() {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new(len);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .expect("static template is valid")
            .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        bar
    }
}
