//! Exit codes and the user-facing error contract: one line naming the thing at fault, an optional
//! hint saying what to do, and a distinct exit code per class of failure.

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

/// Finds the first [`UserError`] in an anyhow chain, so commands can use `?` and `.context()` freely.
pub fn classify(err: &anyhow::Error) -> (ExitCode, Option<String>) {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Fail>() {
            return (e.exit_code(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<crate::package::PackageError>() {
            return (e.exit_code(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<crate::registry::RegistryError>() {
            return (e.exit_code(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<crate::platform::PlatformError>() {
            return (e.exit_code(), e.hint());
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            let _ = e;
            return (ExitCode::Input, None);
        }
    }
    (ExitCode::Failure, None)
}

/// Renders an error chain as one line: `outer: inner: innermost`, skipping a cause the line
/// already says (a context that repeats its source, or a path both name), with every control
/// character escaped: errors quote package-taken names, which must not start a forged line.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if parts.last().is_none_or(|p| !p.contains(&s)) {
            parts.push(s);
        }
    }
    crate::output::escape(&dedup_path_prefix(&parts.join(": "))).into_owned()
}

/// `a: a: rest` -> `a: rest`: a context naming the package and a package error naming it again.
pub fn dedup_path_prefix(line: &str) -> String {
    let mut out = line.to_string();
    loop {
        let Some((first, rest)) = out.split_once(": ") else {
            return out;
        };
        match rest.strip_prefix(first).and_then(|r| r.strip_prefix(": ")) {
            Some(tail) if !first.is_empty() => out = format!("{first}: {tail}"),
            _ => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_names_the_path_once_and_escapes() {
        let inner = crate::package::PackageError::Corrupt {
            path: "pkg.tar".into(),
            entry: Some("a\nerror: forged".into()),
            detail: "cut".into(),
        };
        let err = anyhow::Error::new(inner).context("pkg.tar: pkg.tar: reading");
        let line = one_line(&err);
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.starts_with("pkg.tar: reading: pkg.tar: archive"),
            "{line}"
        );
        assert_eq!(dedup_path_prefix("p: p: p: x"), "p: x");
        assert_eq!(dedup_path_prefix("p: q: x"), "p: q: x");
    }
}
