//! `violet completion <shell>`.

use clap_complete::Shell;

use crate::error::ExitCode;

/// Print a shell completion script.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  violet completion bash > /etc/bash_completion.d/violet\n  violet completion zsh > \"${fpath[1]}/_violet\""
)]
pub struct Args {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cmd = crate::cli::command();
    clap_complete::generate(args.shell, &mut cmd, "violet", &mut std::io::stdout());
    Ok(ExitCode::Success)
}
