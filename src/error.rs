//! Exit codes and the user-facing error contract: one line naming the thing at fault, an optional
//! hint saying what to do, and a distinct exit code per class of failure.
//!
//! A leaf: each domain error (`PackageError`, `RegistryError`, `PlatformError`) implements
//! [`UserError`] itself; `crate::outcome` turns any error chain into the code, hint and line.

use std::fmt;

/// Process exit codes (documented in README "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ExitCode {
    Success = 0,
    /// The command ran but something it checked or pushed failed (e.g. `verify` found a bad file,
    /// one package of a directory failed).
    Failure = 1,
    /// Bad command line.
    Usage = 2,
    /// A file or directory given on the command line cannot be read.
    Input = 3,
    /// A package is malformed: bad archive, bad metadata, digest mismatch, missing blob.
    BadPackage = 4,
    /// A registry or the platform refused the credentials (401/403).
    Auth = 5,
    /// A registry or the platform cannot be reached, or TLS failed.
    Network = 6,
    /// A registry or the platform answered with an error we cannot recover from.
    Remote = 7,
    /// A signature or checksum does not match.
    Verify = 8,
    /// Interrupted by a signal.
    Interrupted = 130,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c as u8)
    }
}

/// Implemented by every domain error enum, so the top level can print and exit uniformly.
pub trait UserError: std::error::Error {
    fn exit_code(&self) -> ExitCode;
    /// What the user can do about it, e.g. "use --ca-file or --insecure".
    fn hint(&self) -> Option<String> {
        None
    }
}

/// A plain user error carrying its own code and hint, for command-level checks
/// (conflicting flags, missing credentials) that belong to no domain module.
#[derive(Debug)]
pub struct Fail {
    pub code: ExitCode,
    pub message: String,
    pub hint: Option<String>,
}

impl Fail {
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: ExitCode::Usage,
            message: message.into(),
            hint: None,
        }
    }
    pub fn new(code: ExitCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: None,
        }
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fail {}

impl UserError for Fail {
    fn exit_code(&self) -> ExitCode {
        self.code
    }
    fn hint(&self) -> Option<String> {
        self.hint.clone()
    }
}
