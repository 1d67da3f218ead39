//! The command line as a user meets it: the help of `violet` and of every command, pinned, so
//! that a change to a flag's name, default, grouping or wording shows up as a snapshot to review.

use crate::support::TestContext;

const COMMANDS: &[&str] = &[
    "show",
    "verify",
    "push",
    "list",
    "gc",
    "mirror",
    "inventory",
    "create",
    "package",
    "version",
    "completion",
];

#[test]
fn the_help_of_every_command_is_pinned() {
    let ctx = TestContext::new();
    snap!(ctx, "help", ctx.run(["--help"]).success().stdout);
    for cmd in COMMANDS {
        let out = ctx.run([cmd, "--help"]).success();
        snap!(ctx, format!("help_{cmd}"), out.stdout);
    }
}

/// `violet --version` (and `-V`, and after a command) names the build on one line, as rustc and
/// cargo do: what `violet version` says at length.
#[test]
fn the_version_flag_names_commit_date_and_target_on_one_line() {
    let ctx = TestContext::new();
    let json = ctx.run(["version", "-o", "json"]).success().json();
    let field = |k: &str| json[k].as_str().unwrap().to_owned();
    let (version, commit, date, target) = (
        field("version"),
        field("commit"),
        field("date"),
        field("target"),
    );
    let line = ctx.run(["--version"]).success().stdout;
    assert_eq!(
        line,
        format!(
            "violet {} ({} {}, {target})\n",
            &version[1..],
            &commit[..7],
            &date[..10]
        )
    );
    assert_eq!(ctx.run(["-V"]).success().stdout, line);
    let push = ctx.run(["push", "--version"]).success().stdout;
    snap!(
        ctx,
        "version_flag",
        format!("{line}{push}"),
        [
            (r" \d+\.\d+\.\d+ \(", " [version] ("),
            (r"\([0-9a-f]{7} \d{4}-\d{2}-\d{2}, ", "([commit] [date], "),
            (r", [a-z0-9_]+-[a-z0-9_.-]+\)", ", [target])"),
        ]
    );
}
