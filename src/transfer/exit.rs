//! One exit code for a run that did many things (images, packages, catalog writes, deletions).

use crate::error::ExitCode;

/// A destination that, read back after the copy, serves a tag under another digest than the
/// source's (or does not have it): the registry's answer is wrong, so 7, in `push` (parity across
/// destinations) and `mirror` alike. A *source* that no longer matches a package is `Verify` (8).
pub const PARITY: ExitCode = ExitCode::Remote;

/// Success when nothing failed; the class shared by every failure when they all agree (so a
/// script can tell "wrong password" from "registry down" even when several images failed); 1
/// ([`ExitCode::Failure`]) when failures differ in kind. `Success` entries are ignored, so callers
/// can pass every outcome's code.
pub fn fold(codes: impl IntoIterator<Item = ExitCode>) -> ExitCode {
    let mut found: Option<ExitCode> = None;
    for code in codes {
        match (code, found) {
            (ExitCode::Success, _) => {}
            (c, None) => found = Some(c),
            (c, Some(f)) if c == f => {}
            _ => return ExitCode::Failure,
        }
    }
    found.unwrap_or(ExitCode::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_class_keeps_its_code_mixed_classes_exit_1() {
        assert_eq!(fold([]), ExitCode::Success);
        assert_eq!(
            fold([ExitCode::Success, ExitCode::Success]),
            ExitCode::Success
        );
        assert_eq!(fold([ExitCode::Success, ExitCode::Auth]), ExitCode::Auth);
        assert_eq!(fold([ExitCode::Remote, ExitCode::Remote]), ExitCode::Remote);
        assert_eq!(fold([ExitCode::Remote, ExitCode::Auth]), ExitCode::Failure);
        assert_eq!(
            fold([ExitCode::BadPackage, ExitCode::Success, ExitCode::Network]),
            ExitCode::Failure
        );
    }
}
