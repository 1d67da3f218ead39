//! From any error chain to what the user sees: the exit code and hint of the first violet error
//! in it ([`classify`]) and the one line `main` prints ([`one_line`]).

use crate::error::{ExitCode, Fail, UserError};
use crate::package::PackageError;
use crate::platform::PlatformError;
use crate::registry::RegistryError;
use crate::transfer::inventory::DifferentialError;

/// The cause as a [`UserError`] when it is one of violet's error types. The one list of them:
/// a new domain error type is added here, and only here.
fn user_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a dyn UserError> {
    if let Some(e) = cause.downcast_ref::<Fail>() {
        return Some(e);
    }
    if let Some(e) = cause.downcast_ref::<PackageError>() {
        return Some(e);
    }
    if let Some(e) = cause.downcast_ref::<RegistryError>() {
        return Some(e);
    }
    if let Some(e) = cause.downcast_ref::<DifferentialError>() {
        return Some(e);
    }
    if let Some(e) = cause.downcast_ref::<crate::cosign::KeyError>() {
        return Some(e);
    }
    if let Some(e) = cause.downcast_ref::<crate::cosign::check::Refusal>() {
        return Some(e);
    }
    cause
        .downcast_ref::<PlatformError>()
        .map(|e| e as &dyn UserError)
}

/// Finds the first [`UserError`] in an anyhow chain, so commands can use `?` and `.context()`
/// freely; an I/O error with no domain error above it is an unreadable input.
pub fn classify(err: &anyhow::Error) -> (ExitCode, Option<String>) {
    for cause in err.chain() {
        if let Some(e) = user_error(cause) {
            return (e.exit_code(), e.hint());
        }
        if cause.is::<std::io::Error>() {
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
