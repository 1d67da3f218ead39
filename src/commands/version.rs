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

#[derive(Serialize)]
struct VersionInfo {
    version: String,
    target: &'static str,
}

pub fn run(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    let info = VersionInfo {
        version: format!("v{}", env!("CARGO_PKG_VERSION")),
        target: std::env::consts::ARCH,
    };
    printer.with_format(args.output.format).data(&info, || {
        format!(
            "Version: {}\nArch: {}/{}\n",
            info.version,
            std::env::consts::OS,
            info.target
        )
    })?;
    Ok(ExitCode::Success)
}
