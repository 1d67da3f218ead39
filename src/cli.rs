//! Command line: global flags, the subcommand enum, and dispatch.
//!
//! Documented violet command lines follow Go/cobra conventions; clap accepts `--flag value` and
//! `--flag=value` natively, booleans take an optional `=true|false` (see [`go_bool`]) and lists are
//! comma separated.

use clap::{Parser, Subcommand};

use crate::commands;
use crate::error::ExitCode;
use crate::output::{Format, Printer};

#[derive(Debug, Parser)]
#[command(
    name = "violet",
    version,
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
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, default_value = "false", hide_default_value = true)]
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
    Create(Box<commands::create::Args>),
    Package(Box<commands::package::Args>),
    Version(commands::version::Args),
    Completion(commands::completion::Args),
}

/// Parses a Go-style boolean value (`true`, `false`, `1`, `0`, `t`, `f`, case-insensitive),
/// as cobra accepts for `--flag=value`.
pub fn go_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "t" | "1" => Ok(true),
        "false" | "f" | "0" => Ok(false),
        _ => Err(format!("invalid boolean {s:?} (use true or false)")),
    }
}

/// Output format flag shared by the commands whose output is data.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    pub format: Format,
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
        Command::Create(args) => commands::create::run(*args, printer),
        Command::Package(args) => commands::package::run(*args, printer),
        Command::Version(args) => commands::version::run(args, printer),
        Command::Completion(args) => commands::completion::run(args),
    }
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
mod log_tests {
    use super::*;

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
