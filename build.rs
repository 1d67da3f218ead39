//! Build metadata for `violet version`: git commit, build date and target triple.
//!
//! The date is never the wall clock: two builds of one commit must give the same bytes
//! (docs/release.md). It is `SOURCE_DATE_EPOCH` when set (the reproducible-builds convention),
//! else the commit's time. Outside a git checkout (a source tarball) `VIOLET_COMMIT` names the
//! commit; otherwise both say `unknown`.

use std::path::PathBuf;
use std::process::Command;

// The crate's own calendar arithmetic (a build script cannot use the crate it builds).
#[path = "src/civil.rs"]
mod civil;

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-env-changed=VIOLET_COMMIT");
    watch_git_head();

    let commit = std::env::var("VIOLET_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .or_else(|| git(&["log", "-1", "--format=%ct"]).and_then(|s| s.parse().ok()));
    let date = epoch.map_or_else(|| "unknown".into(), rfc3339_utc);
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());

    println!("cargo:rustc-env=VIOLET_COMMIT={commit}");
    println!("cargo:rustc-env=VIOLET_BUILD_DATE={date}");
    println!("cargo:rustc-env=VIOLET_TARGET={target}");
    println!(
        "cargo:rustc-env=VIOLET_VERSION_LINE={}",
        version_line(&commit, &date, &target)
    );
}

/// What `violet --version` prints after `violet `, in the one-line form of rustc and cargo:
/// `0.1.0 (abc1234 2026-11-30, x86_64-unknown-linux-gnu)`; an unknown commit or date is left out.
fn version_line(commit: &str, date: &str, target: &str) -> String {
    let mut build: Vec<&str> = Vec::new();
    if commit != "unknown" {
        build.push(commit.get(..7).unwrap_or(commit));
    }
    if date != "unknown" {
        build.push(date.get(..10).unwrap_or(date));
    }
    let build = build.join(" ");
    let sep = if build.is_empty() { "" } else { ", " };
    format!(
        "{} ({build}{sep}{target})",
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
    )
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// Re-run when the checked-out commit changes: HEAD itself (a checkout, a detached commit), the
/// branch it points at (a new commit), and packed-refs (a branch that git packed). In a git
/// worktree HEAD lives in the worktree's git dir and the branch in the common one;
/// `--git-path` resolves both.
fn watch_git_head() {
    let mut paths = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        paths.push(git(&["rev-parse", "--git-path", &branch]));
    }
    paths.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for path in paths.into_iter().flatten() {
        let path = PathBuf::from(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    // Without any rerun-if-changed line cargo re-runs this script on every change in the package;
    // naming build.rs keeps it to the lines above outside a checkout too.
    println!("cargo:rerun-if-changed=build.rs");
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (proleptic Gregorian, UTC).
fn rfc3339_utc(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    let (year, month, day) = civil::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}
