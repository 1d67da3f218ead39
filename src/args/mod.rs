//! The argument layer: every flag that more than one command takes is declared here once, and
//! turned into the domain's configuration here once (`RegistryConfig`, the platform `Target`).
//! Commands flatten these blocks; clap stays out of the domain modules.
//!
//! * [`registry`]: registry access (`--username`, `--password[-stdin]`, `--no-auth`, `--plain`,
//!   `--insecure`, `--ca-file`, `--retries`), the push destinations and the build sources.
//! * [`platform`]: the platform connection and the `--clusters` scope of `list` and `gc`.
//! * [`cosign`]: the cosign signature checks of `verify` and `push`.
//! * [`OutputArgs`], [`parse_size`], the stdin secrets and the go-style booleans.

pub mod cosign;
pub mod platform;
pub mod registry;

use std::io::Read;

use crate::error::{ExitCode, Fail};
use crate::output::Format;

/// Output format flag shared by the commands whose output is data.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `--no-referrers` of the commands that collect images from registries (`create`, `package`,
/// `mirror`): the artifacts about the images travel with them unless it is set.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ReferrersArgs {
    /// Leave out the images' signatures, attestations, SBOMs and OCI referrers (carried by
    /// default: docs/supply-chain.md)
    #[arg(long)]
    pub no_referrers: bool,
}

/// TLS trust and retries of the connections a command makes. The help texts are the registry's;
/// `list` and `gc` replace them with the platform's meaning.
#[derive(Debug, Clone, clap::Args)]
pub struct TransportArgs {
    /// Do not verify TLS certificates (self-signed registries; every destination).
    #[arg(long)]
    pub insecure: bool,

    /// Trust this CA certificate (PEM) in addition to the system roots, for every destination. Repeatable.
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_files: Vec<std::path::PathBuf>,

    /// Retries for a failed request (connection reset, 5xx, 429), with exponential backoff.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
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

/// Applies violet's cobra convention to every boolean flag of `cmd` and its subcommands, so that
/// no flag can forget it: `--flag` alone is true, `--flag=true|false` (see [`go_bool`]) sets it.
/// `--flag false` stays a positional argument, as with cobra.
pub fn go_booleans(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|arg| {
        if matches!(arg.get_action(), clap::ArgAction::SetTrue) {
            arg.num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .value_parser(go_bool)
                .default_value("false")
                .hide_default_value(true)
        } else {
            arg
        }
    })
    .mut_subcommands(go_booleans)
}

/// Parses `4MiB`, `16M`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (e.g. 4MiB)"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("invalid size unit in {s:?} (use KiB, MiB or GiB)")),
    };
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))?;
    if v == 0 {
        return Err("size must be greater than 0".into());
    }
    Ok(v)
}

/// How a `--*-password-stdin` flag reads its secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdinSecret {
    /// Registry passwords (docker's `--password-stdin`): the whole text minus one trailing newline
    /// (`\n` or `\r\n`), so a password may end in spaces.
    WholeText,
    /// The platform password: the first line.
    FirstLine,
}

/// The one place a password is read from standard input. `flag` names the flag in the errors.
pub fn read_stdin_secret(flag: &str, how: StdinSecret) -> Result<String, Fail> {
    read_secret(&mut std::io::stdin().lock(), flag, how)
}

/// [`read_stdin_secret`] over any reader (tests).
pub fn read_secret(input: &mut dyn Read, flag: &str, how: StdinSecret) -> Result<String, Fail> {
    let mut s = String::new();
    input.read_to_string(&mut s).map_err(|e| {
        Fail::new(
            ExitCode::Input,
            format!("{flag}: cannot read the password from stdin: {e}"),
        )
    })?;
    let secret = match how {
        StdinSecret::WholeText => {
            let rest = s.strip_suffix('\n').unwrap_or(&s);
            rest.strip_suffix('\r').unwrap_or(rest).to_string()
        }
        StdinSecret::FirstLine => s.lines().next().unwrap_or("").to_string(),
    };
    if secret.is_empty() {
        return Err(Fail::usage(format!("{flag}: stdin holds no password")));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("16m"), Ok(16 << 20));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert!(parse_size("0").is_err());
        assert!(parse_size("4XB").is_err());
    }

    #[test]
    fn stdin_secrets() {
        let whole = |s: &str| {
            read_secret(
                &mut s.as_bytes(),
                "--password-stdin",
                StdinSecret::WholeText,
            )
        };
        assert_eq!(whole("s3cret \n").unwrap(), "s3cret ");
        assert_eq!(whole("s3cret\r\n").unwrap(), "s3cret");
        assert_eq!(whole("a\n\n").unwrap(), "a\n");
        assert!(whole("\n").is_err());
        let first = |s: &str| {
            read_secret(
                &mut s.as_bytes(),
                "--platform-password-stdin",
                StdinSecret::FirstLine,
            )
        };
        assert_eq!(first("s3cret\nignored\n").unwrap(), "s3cret");
        assert!(
            first("")
                .unwrap_err()
                .to_string()
                .contains("--platform-password-stdin")
        );
    }
}
