//! `violet push`.

use crate::error::ExitCode;
use crate::output::Printer;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, _printer: Printer) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet implemented")
}
