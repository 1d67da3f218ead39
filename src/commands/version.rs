//! `violet version`.

use serde::Serialize;

use crate::args::OutputArgs;
use crate::error::ExitCode;
use crate::output::Printer;

/// Print the version (scripts check for `Version: v`).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  violet version\n  violet version -o json")]
pub struct Args {
    #[command(flatten)]
    pub output: OutputArgs,
}

/// What `violet --version` (and `-V`) prints after `violet `: the crate version, the commit's
/// first 7 digits, the day of the build date and the target (build.rs writes it; clap takes a
/// `&'static str`).
pub const VERSION_LINE: &str = env!("VIOLET_VERSION_LINE");

/// What `violet version` reports; `build.rs` supplies commit, date and target at compile time.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct VersionInfo {
    /// `v` and the crate version: scripts match `Version: v`.
    pub version: &'static str,
    /// The git commit built, or `unknown` outside a checkout.
    pub commit: &'static str,
    /// The commit's time (or `SOURCE_DATE_EPOCH`), RFC 3339 UTC; never the wall clock, so that
    /// two builds of one commit are byte for byte the same.
    pub date: &'static str,
    /// The Rust target triple, e.g. `x86_64-unknown-linux-musl` for the static release build.
    pub target: &'static str,
    /// `os/arch` in the names packages use (`linux/amd64`, `linux/arm64`).
    pub platform: String,
    /// The global allocator: `system` (glibc's or musl's malloc), or `mimalloc` in a build made
    /// with `scripts/release.sh --mimalloc` for measurements.
    pub allocator: &'static str,
}

impl VersionInfo {
    pub fn current() -> Self {
        VersionInfo {
            version: concat!("v", env!("CARGO_PKG_VERSION")),
            commit: env!("VIOLET_COMMIT"),
            date: env!("VIOLET_BUILD_DATE"),
            target: env!("VIOLET_TARGET"),
            platform: format!(
                "{}/{}",
                std::env::consts::OS,
                go_arch(std::env::consts::ARCH)
            ),
            allocator: if cfg!(feature = "mimalloc") {
                "mimalloc"
            } else {
                "system"
            },
        }
    }

    fn text(&self) -> String {
        format!(
            "Version: {}\nCommit: {}\nBuild date: {}\nTarget: {}\nArch: {}\nAllocator: {}\n",
            self.version, self.commit, self.date, self.target, self.platform, self.allocator
        )
    }
}

/// Rust's architecture names as ACP packages and OCI platforms spell them.
fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub fn run(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    let info = VersionInfo::current();
    printer
        .with_format(args.output.format)
        .data(&info, || info.text())?;
    Ok(ExitCode::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_starts_with_the_version_scripts_grep_for() {
        let info = VersionInfo::current();
        let text = info.text();
        assert!(text.starts_with("Version: v"), "{text}");
        assert!(
            text.contains(&format!("\nTarget: {}\n", info.target)),
            "{text}"
        );
        // The triple cargo built for, not a placeholder.
        assert!(
            info.target.contains('-') && info.target != "unknown",
            "{}",
            info.target
        );
    }

    #[test]
    fn the_version_line_says_what_the_long_form_says() {
        let info = VersionInfo::current();
        let mut build = Vec::new();
        if info.commit != "unknown" {
            build.push(&info.commit[..7]);
        }
        if info.date != "unknown" {
            build.push(&info.date[..10]);
        }
        let build = build.join(" ");
        let sep = if build.is_empty() { "" } else { ", " };
        assert_eq!(
            VERSION_LINE,
            format!("{} ({build}{sep}{})", &info.version[1..], info.target)
        );
    }

    #[test]
    fn architectures_use_the_package_names() {
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("s390x"), "s390x");
    }
}
