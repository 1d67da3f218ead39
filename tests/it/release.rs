//! What the release build relies on: `violet version` (scripts grep its first line; tools read
//! its JSON) and the hidden `violet __man DIR` that writes the tarball's man pages.

use std::process::Command;

use crate::support::TestContext;

/// `git` in this checkout, or None outside one (a source tarball).
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TZ", "UTC")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn version_names_commit_date_and_target() {
    let ctx = TestContext::new();
    let text = ctx.run(["version"]).success().stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!("Version: v{}", env!("CARGO_PKG_VERSION")),
        "{text}"
    );
    let json = ctx.run(["version", "-o", "json"]).success().json();
    assert_eq!(json["version"], format!("v{}", env!("CARGO_PKG_VERSION")));
    for key in ["commit", "date", "target", "platform", "allocator"] {
        let value = json[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: {json}"));
        assert!(!value.is_empty(), "{key}: {json}");
    }
    // The text says the same as the JSON.
    assert!(
        lines.contains(&format!("Commit: {}", json["commit"].as_str().unwrap()).as_str()),
        "{text}"
    );
    assert!(
        lines.contains(&format!("Build date: {}", json["date"].as_str().unwrap()).as_str()),
        "{text}"
    );
    assert!(
        lines.contains(&format!("Target: {}", json["target"].as_str().unwrap()).as_str()),
        "{text}"
    );

    let target = json["target"].as_str().unwrap();
    assert!(target.starts_with(std::env::consts::ARCH), "{target}");
    let date = json["date"].as_str().unwrap();
    let shape = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").unwrap();
    assert!(shape.is_match(date), "{date}");

    // In a checkout: the commit built, and its time as the date (never the wall clock, so two
    // builds of one commit are the same bytes) unless SOURCE_DATE_EPOCH overrides it.
    if let Some(head) = git(&["rev-parse", "HEAD"]) {
        assert_eq!(json["commit"], head.as_str());
        if std::env::var_os("SOURCE_DATE_EPOCH").is_none() {
            let committed = git(&[
                "log",
                "-1",
                "--format=%cd",
                "--date=format-local:%Y-%m-%dT%H:%M:%SZ",
            ])
            .unwrap();
            assert_eq!(date, committed);
        }
    }
}

#[test]
fn hidden_man_pages_command_writes_a_page_per_command() {
    let ctx = TestContext::new();
    let dir = ctx.path().join("man1");
    ctx.run([std::ffi::OsStr::new("__man"), dir.as_os_str()])
        .success();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.contains(&"violet.1".to_string()), "{names:?}");
    // The pages name the version alone: the release renders them with one architecture's
    // binary for every tarball, so the build's target must not show (reproducible tarballs).
    let page = std::fs::read_to_string(dir.join("violet-push.1")).unwrap();
    assert!(
        page.contains(&format!("\"push {}\"", env!("CARGO_PKG_VERSION"))),
        "{}",
        &page[..page.len().min(300)]
    );
    assert!(
        !page.contains("-linux-"),
        "{}",
        &page[..page.len().min(300)]
    );
    // Every command `violet --help` lists.
    let help = ctx.run(["--help"]).success().stdout;
    let listed: Vec<&str> = help
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands: section")
        .lines()
        .take_while(|l| l.starts_with("  "))
        // A wrapped description goes on deeper.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(listed.len() >= 10, "{help}");
    for cmd in listed {
        assert!(
            names.contains(&format!("violet-{cmd}.1")),
            "{cmd}: {names:?}"
        );
    }
    let push = std::fs::read_to_string(dir.join("violet-push.1")).unwrap();
    assert!(push.contains("\\-\\-dest\\-repo"), "{push}");
    // Hidden from the help, the pages and the completions.
    assert!(!help.contains("__man"), "{help}");
    assert!(!names.iter().any(|n| n.contains("man")), "{names:?}");
    for shell in ["bash", "zsh", "fish"] {
        let script = ctx.run(["completion", shell]).success().stdout;
        assert!(script.contains("mirror"), "{shell}");
        assert!(!script.contains("__man"), "{shell}");
    }
    // A directory that cannot be made: one line naming it, exit 3 (input), no panic.
    let blocker = ctx.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let out = ctx.run([
        std::ffi::OsStr::new("__man"),
        blocker.join("man1").as_os_str(),
    ]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("error: cannot create the man page directory"),
        "{}",
        out.stderr
    );
}
