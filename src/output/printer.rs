//! The one place that decides what goes to stdout/stderr: data (text, JSON or YAML) on stdout,
//! messages and progress on stderr, nothing but errors under `--quiet`.

use std::io::{IsTerminal, Write};

use clap::ValueEnum;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub format: Format,
    pub quiet: bool,
    pub verbose: u8,
}

impl Printer {
    pub fn new(format: Format, quiet: bool, verbose: u8) -> Self {
        Self {
            format,
            quiet,
            verbose,
        }
    }

    pub fn with_format(self, format: Format) -> Self {
        Self { format, ..self }
    }

    /// Prints a result: `text` renders it for humans; JSON/YAML serialize `value`.
    pub fn data<T: Serialize>(
        &self,
        value: &T,
        text: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        let out = match self.format {
            Format::Text => {
                if self.quiet {
                    return Ok(());
                }
                // Fields taken from a package are escaped where they are put in (so a newline
                // in one cannot start a line); this catches any other control character.
                super::escape_text(&text()).into_owned()
            }
            Format::Json => {
                let mut s = serde_json::to_string_pretty(value)?;
                s.push('\n');
                s
            }
            Format::Yaml => serde_saphyr::to_string(value)?,
        };
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`violet show x | head`) is not an error worth a message.
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
        Ok(())
    }

    /// A status line on stderr (suppressed by `--quiet`).
    pub fn info(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", super::escape_text(msg.as_ref()));
        }
    }

    /// A warning on stderr (suppressed by `--quiet`).
    pub fn warn(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            // A warning is one line: a newline from a package string is escaped too.
            eprintln!("warning: {}", super::escape(msg.as_ref()));
        }
    }

    /// Whether to draw live progress bars (stderr is a terminal, not quiet, text output).
    pub fn progress_bars(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }

    /// Whether to print periodic plain progress lines (stderr is not a terminal, e.g. CI logs).
    pub fn progress_lines(&self) -> bool {
        !self.quiet && !std::io::stderr().is_terminal()
    }
}
