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
