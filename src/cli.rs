//! Command line: global flags, the subcommand enum, and dispatch.
//!
//! Documented violet command lines follow Go/cobra conventions; clap accepts `--flag value` and
//! `--flag=value` natively, booleans take an optional `=true|false` (see [`args::go_booleans`]) and lists are
//! comma separated.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::args;
use crate::commands;
use crate::error::ExitCode;
use crate::output::{Format, Printer};

#[derive(Debug, Parser)]
#[command(
    name = "violet",
    // `violet 0.1.0 (abc1234 2026-11-30, x86_64-unknown-linux-gnu)`: which build, on one line
    // (`violet version` has the long form).
    version = crate::commands::version::VERSION_LINE,
    about = "Push ACP extension packages (operators, cluster plugins, charts) to a registry and publish them on the platform",
    long_about = None,
    propagate_version = true,
    after_help = "Examples:\n  violet show topolvm-operator.stable.ALL.v2.3.0.tgz --all\n  violet verify ./packages\n  violet push ./packages --skip-crs --dest-repo 192.168.1.10:11443 --no-auth\n\nRun 'violet <command> --help' for the flags of a command."
)]
pub struct Cli {
    /// More logging on stderr (-v: debug, -vv: trace). Also RUST_LOG.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Same as -v (violet's spelling).
    #[arg(long, global = true)]
    pub debug: bool,

    /// Print nothing but errors (and the data asked for with --output json|yaml).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Show(commands::show::Args),
    Verify(commands::verify::Args),
    Push(Box<commands::push::Args>),
    List(Box<commands::list::Args>),
    Gc(Box<commands::gc::Args>),
    Mirror(Box<commands::mirror::Args>),
    Inventory(Box<commands::inventory::Args>),
    Create(Box<commands::create::Args>),
    Package(Box<commands::package::Args>),
    Version(commands::version::Args),
    Completion(commands::completion::Args),
}

/// `violet __man DIR` writes the man pages into DIR (scripts/release.sh, for the tarball's
/// `man/man1`). It is read before clap on purpose: a hidden clap command would still be offered by
/// the generated shell completions.
pub fn man_dir_requested(argv: &[std::ffi::OsString]) -> Option<std::path::PathBuf> {
    match argv {
        [_, cmd, dir] if cmd == "__man" => Some(dir.into()),
        _ => None,
    }
}

/// The command line with violet's conventions applied to every flag ([`args::go_booleans`]):
/// what `main` parses and what `completion` describes.
pub fn command() -> clap::Command {
    args::go_booleans(Cli::command())
}

/// Parses `argv` as `violet` does (tests).
pub fn try_parse_from<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::from_arg_matches(&command().try_get_matches_from(argv)?)
}

/// Parses the process's arguments; exits with clap's message and code on a bad command line.
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let verbose = cli.verbose.max(u8::from(cli.debug));
    init_tracing(verbose);
    let printer = Printer::new(Format::Text, cli.quiet, verbose);
    match cli.command {
        Command::Show(args) => commands::show::run(args, printer),
        Command::Verify(args) => commands::verify::run(args, printer),
        Command::Push(args) => commands::push::run(*args, printer),
        Command::List(args) => commands::list::run(*args, printer),
        Command::Gc(args) => commands::gc::run(*args, printer),
        Command::Mirror(args) => commands::mirror::run(*args, printer),
        Command::Inventory(args) => commands::inventory::run(*args, printer),
        Command::Create(args) => commands::create::run(*args, printer),
        Command::Package(args) => commands::package::run(*args, printer),
        Command::Version(args) => commands::version::run(args, printer),
        Command::Completion(args) => commands::completion::run(args),
    }
}

/// Man pages rendered from the same clap definitions as `--help` ([`command`]), so the two cannot
/// drift: `violet.1` and one `violet-<command>.1` per visible subcommand, as (file name, roff).
/// Hidden commands get none.
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    fn walk(cmd: clap::Command, pages: &mut Vec<(String, Vec<u8>)>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, pages);
        }
        let man = clap_mangen::Man::new(cmd);
        let mut roff = Vec::new();
        man.render(&mut roff)
            .expect("rendering into a Vec cannot fail");
        pages.push((man.get_filename(), roff));
    }
    // Built first so that global flags (-v, -q) and the `violet-<command>` names reach every page.
    // The pages carry the version alone, not `--version`'s commit and target: the release script
    // renders them with one architecture's binary for every tarball, which must not differ by
    // which architectures one run builds (reproducible releases).
    let mut cmd = command()
        .disable_help_subcommand(true)
        .version(env!("CARGO_PKG_VERSION"));
    cmd.build();
    let mut pages = Vec::new();
    walk(cmd, &mut pages);
    pages.sort();
    pages
}

pub fn write_man_pages(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the man page directory {}", dir.display()))?;
    for (name, roff) in man_pages() {
        let path = dir.join(&name);
        std::fs::write(&path, roff)
            .with_context(|| format!("cannot write the man page {}", path.display()))?;
    }
    Ok(ExitCode::Success)
}

/// The log filter for `-v` counts when `RUST_LOG` is not set: `-v` debug, `-vv` (or more)
/// trace for violet's own events, as `--help` says. Dependencies stay one step quieter
/// (their trace level is per-frame noise).
pub fn log_filter(verbose: u8) -> &'static str {
    match verbose {
        // kube's client and the TLS verifier log each failure at ERROR; violet reports the same failure
        // itself on one line, so that log would only repeat it (-v shows it).
        0 => "warn,kube_client=off,rustls_platform_verifier=off",
        1 => "violet=debug,info",
        _ => "violet=trace,debug",
    }
}

/// Colour codes in logs only on a terminal, and never when `NO_COLOR` is set to anything
/// non-empty (<https://no-color.org>): a CI log or a file must not fill with escape sequences.
pub fn log_colours(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

fn init_tracing(verbose: u8) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(log_filter(verbose)));
    let ansi = log_colours(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .without_time()
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_boolean_flag_takes_a_go_value() {
        let cmd = command();
        for (line, want) in [
            (&["violet", "push", "x", "--dry-run"][..], true),
            (&["violet", "push", "x", "--dry-run=false"][..], false),
            (&["violet", "push", "x", "--dry-run=T"][..], true),
            (&["violet", "push", "x"][..], false),
        ] {
            let m = cmd.clone().try_get_matches_from(line).unwrap();
            let cli = Cli::from_arg_matches(&m).unwrap();
            let Command::Push(p) = cli.command else {
                panic!("not push")
            };
            assert_eq!(p.dry_run, want, "{line:?}");
        }
        let err = cmd
            .clone()
            .try_get_matches_from(["violet", "gc", "--dry-run=maybe"])
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn show_args_parse() {
        let cli = try_parse_from(["violet", "show", "x.tgz", "--all", "-o", "json"]).unwrap();
        let Command::Show(a) = cli.command else {
            panic!()
        };
        assert!(a.all);
        assert_eq!(a.output.format, crate::output::Format::Json);
        let cli = try_parse_from(["violet", "show", "x.tgz", "--all=false"]).unwrap();
        let Command::Show(a) = cli.command else {
            panic!()
        };
        assert!(!a.all);
    }

    /// Every visible command has a page, and every flag `--help` lists is on its command's page:
    /// the pages come from the same definitions, so a new command or flag cannot be missed.
    #[test]
    fn a_man_page_per_command_with_every_flag() {
        let pages: std::collections::BTreeMap<String, String> = man_pages()
            .into_iter()
            .map(|(name, roff)| (name, String::from_utf8(roff).unwrap()))
            .collect();
        let mut cmd = command();
        cmd.build();
        let visible: Vec<&clap::Command> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .collect();
        assert!(visible.len() >= 10, "{:?}", pages.keys());
        let mut want: Vec<String> = visible
            .iter()
            .map(|s| format!("violet-{}.1", s.get_name()))
            .collect();
        want.push("violet.1".into());
        want.sort();
        assert_eq!(pages.keys().cloned().collect::<Vec<_>>(), want);

        let roff_flag = |long: &str| format!("\\-\\-{}", long.replace('-', "\\-"));
        for sub in visible {
            let page = &pages[&format!("violet-{}.1", sub.get_name())];
            assert!(
                page.starts_with(".ie \\n(.g .ds Aq"),
                "not roff: {page:.80}"
            );
            assert!(
                page.contains(&format!("violet\\-{}", sub.get_name())),
                "{page}"
            );
            for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long() {
                    assert!(
                        page.contains(&roff_flag(long)),
                        "violet-{}.1 lacks --{long}",
                        sub.get_name()
                    );
                }
            }
            // Global flags reach every page too.
            assert!(page.contains(&roff_flag("verbose")), "{}", sub.get_name());
        }
        let push = &pages["violet-push.1"];
        assert!(push.contains(&roff_flag("dry-run")), "{push}");
    }

    #[test]
    fn verbosity_levels_match_the_help() {
        assert!(log_filter(1).contains("violet=debug"));
        assert!(log_filter(2).contains("violet=trace"));
        assert!(log_filter(5).contains("violet=trace"));
        assert!(!log_filter(0).contains("debug"));
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(log_colours(true, None));
        assert!(log_colours(true, Some("".into())));
        assert!(!log_colours(true, Some("1".into())));
        assert!(!log_colours(false, None));
    }
}
