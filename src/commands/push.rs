//! `violet push`: relocate every image of a package (or a directory of packages) into a registry.

use std::path::PathBuf;

mod catalog;
mod render;
mod run;

use crate::cli::{OutputArgs, go_bool};
use crate::error::{ExitCode, Fail};
use crate::output::Printer;
use crate::plan::Destination;
use crate::platform::args::PlatformArgs;
use crate::registry::{Credentials, RegistryConfig, credentials};

const EXAMPLES: &str = "Examples:
  # An operator, to two clusters (images go to the platform's own registry)
  violet push opensearch-operator.stable.ALL.v3.14.2.tgz \\
    --platform-address https://acp.example.com \\
    --platform-username admin --platform-password-stdin \\
    --clusters region1,region2 < platform-password.txt

  # A DR standby: its own platform address and its registry VIP
  violet push opensearch-operator.stable.ALL.v3.14.2.tgz \\
    --platform-address https://standby.example.com --platform-token \"$TOKEN\" \\
    --dest-repo 192.168.1.20:11443 --username admin --password-stdin < registry-pw.txt

  # A primary and a DR standby in one read, each with its own user (passwords from the environment:
  # VIOLET_PASSWORD_<HOST>, upper-cased, other characters as _); a parity report ends the run
  export VIOLET_PASSWORD_10_0_0_5_11443=... VIOLET_PASSWORD_10_1_0_5_11443=...
  violet push ./packages --skip-crs --dest-repo 10.0.0.5:11443 --dest-repo 10.1.0.5:11443 \\
    --dest-creds 10.0.0.5:11443=admin --dest-creds 10.1.0.5:11443=dr-admin

  # Before an upgrade: images only; after it: catalog resources only
  violet push ./packages --skip-crs \\
    --platform-address https://acp.example.com --platform-token \"$TOKEN\"
  violet push ./packages --skip-push \\
    --platform-address https://acp.example.com --platform-token \"$TOKEN\"

  # Images to a plain-HTTP registry without authentication, catalog resources as files (GitOps)
  violet push ./packages --dest-repo 127.0.0.1:5000 --plain --no-auth --crs-out ./crs

  # What would be uploaded and which resources would change, writing nothing
  violet push ./packages --dest-repo 192.168.1.10:11443 --no-auth --skip-crs --dry-run";

/// Push the images of a package or of every package in a directory.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// A package file (.tgz, .tar.gz, .tar, .tar.zst), an extracted package, or a directory of packages.
    pub path: PathBuf,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Uploads in flight at once, across all images.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,

    /// Push images only; do not create catalog resources on the platform.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, default_value = "false", hide_default_value = true)]
    pub skip_crs: bool,

    /// Do not push images; only create catalog resources.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, default_value = "false", hide_default_value = true)]
    pub skip_push: bool,

    /// List the images, their destinations, the bytes that would be uploaded and the resources that
    /// would change (with a diff); write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Clusters that receive an operator's Artifact/ArtifactVersion (comma separated). Ignored for plugins.
    #[arg(long, value_delimiter = ',', default_value = "global")]
    pub clusters: Vec<String>,

    /// CatalogSource for operators: platform, system or a custom name (default: the package's, else platform).
    #[arg(long, value_name = "NAME")]
    pub target_catalog_source: Option<String>,

    /// Chart repository for Helm charts (default: public-charts).
    #[arg(long, value_name = "NAME")]
    pub target_chartrepo: Option<String>,

    /// Re-apply every catalog resource even when nothing changed.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, default_value = "false", hide_default_value = true)]
    pub force: bool,

    /// Write the catalog resources as YAML files under DIR (<cluster>/<kind>-<name>.yaml) instead of applying them.
    #[arg(long, value_name = "DIR")]
    pub crs_out: Option<PathBuf>,

    #[command(flatten)]
    pub platform: PlatformArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Destination registry flags, as violet documents them.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// Destination registry: host[:port][/prefix]. Each image keeps its repository path under it.
    /// Repeatable (e.g. a primary and a DR standby): each blob is read once and uploaded to every
    /// destination, and a parity check compares every tag across them. Catalog resources name the
    /// first one.
    #[arg(
        long = "dest-repo",
        visible_alias = "dst-repo",
        value_name = "HOST[:PORT][/PREFIX]",
        env = "VIOLET_DEST_REPO"
    )]
    pub dest_repo: Vec<String>,

    /// Per-destination user: HOST=USER (HOST as in --dest-repo, without the prefix), password from
    /// the environment variable VIOLET_PASSWORD_<HOST> (upper-cased, every other character than
    /// A-Z and 0-9 as _, e.g. VIOLET_PASSWORD_10_0_0_5_11443). Repeatable. Takes precedence over
    /// --username/--password, which apply to every other destination; a destination with neither
    /// uses its docker/podman login.
    #[arg(long = "dest-creds", value_name = "HOST=USER")]
    pub dest_creds: Vec<String>,

    /// Registry user.
    #[arg(long, env = "VIOLET_USERNAME")]
    pub username: Option<String>,

    /// Registry password (prefer --password-stdin or VIOLET_PASSWORD: argv is visible in `ps`).
    #[arg(long, env = "VIOLET_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// Read the registry password from standard input.
    #[arg(long, conflicts_with = "password")]
    pub password_stdin: bool,

    /// The registries need no authentication (every destination).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, default_value = "false", hide_default_value = true)]
    pub no_auth: bool,

    /// The registries speak plain HTTP (every destination).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, default_value = "false", hide_default_value = true)]
    pub plain: bool,

    /// Do not verify TLS certificates (self-signed registries; every destination).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, default_value = "false", hide_default_value = true)]
    pub insecure: bool,

    /// Trust this CA certificate (PEM) in addition to the system roots, for every destination. Repeatable.
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_files: Vec<PathBuf>,

    /// Retries for a failed request (connection reset, 5xx, 429), with exponential backoff.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,

    /// Upload blobs in chunks of this size (e.g. 4MiB) instead of one streamed request.
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub chunk_size: Option<u64>,
}

impl RegistryArgs {
    /// The password of `--password`/`VIOLET_PASSWORD`, or read from stdin once for every destination.
    pub fn password(&self) -> anyhow::Result<Option<String>> {
        Ok(if self.password_stdin {
            Some(credentials::read_password(std::io::stdin().lock())?)
        } else {
            self.password.clone()
        })
    }

    /// `--dest-creds` as (host, user), checked against the destination hosts.
    pub fn dest_users(&self, hosts: &[String]) -> Result<Vec<(String, String)>, Fail> {
        let mut out: Vec<(String, String)> = Vec::new();
        for raw in &self.dest_creds {
            let bad = |why: String| {
                Fail::usage(format!("invalid --dest-creds {raw:?}: {why}")).with_hint(
                    "write it as HOST=USER and put the password in VIOLET_PASSWORD_<HOST>",
                )
            };
            let Some((host, user)) = raw.split_once('=') else {
                return Err(bad("missing '='".into()));
            };
            let host = host
                .trim()
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            if host.is_empty() || user.is_empty() {
                return Err(bad("HOST and USER must not be empty".into()));
            }
            if user.contains(':') {
                return Err(bad(
                    "give only the user; the password is read from the environment".into(),
                ));
            }
            if !hosts.iter().any(|h| h == host) {
                return Err(bad(format!(
                    "{host} is not the host of any --dest-repo ({})",
                    hosts.join(", ")
                )));
            }
            if out.iter().any(|(h, _)| h == host) {
                return Err(bad(format!("{host} is given twice")));
            }
            out.push((host.to_string(), user.to_string()));
        }
        Ok(out)
    }

    /// Builds the registry configuration of one destination, applying violet's rule that a
    /// destination needs credentials from some source or an explicit --no-auth. First match:
    /// `--dest-creds` for this host, `--username`/`--password` (flags or environment), the
    /// platform's registry secret (discovered registry only), docker/podman login for the host.
    pub fn config(
        &self,
        dest: &Destination,
        scheme_plain: bool,
        discovered: Option<Credentials>,
        password: Option<&str>,
        dest_user: Option<&str>,
    ) -> anyhow::Result<RegistryConfig> {
        let explicit = self.no_auth || self.username.is_some() || password.is_some();
        let credentials = match (dest_user, discovered) {
            (Some(user), _) => {
                if self.no_auth {
                    return Err(
                        Fail::usage("--no-auth cannot be combined with --dest-creds").into(),
                    );
                }
                let var = password_env(&dest.host);
                let password = std::env::var(&var)
                    .ok()
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| {
                        Fail::usage(format!(
                            "--dest-creds {}={user}: no password for {}: {var} is not set",
                            dest.host, dest.host
                        ))
                        .with_hint(format!(
                            "export {var} with the password of {user} at {}",
                            dest.host
                        ))
                    })?;
                Credentials::Basic {
                    username: user.to_string(),
                    password,
                }
            }
            // The platform's own registry: its registry-admin secret, unless the user said otherwise.
            (None, Some(found)) if !explicit => found,
            _ => {
                let resolved = credentials::resolve(
                    &dest.host,
                    self.username.as_deref(),
                    password,
                    self.no_auth,
                )?;
                resolved.require_for_push(&dest.host)?;
                resolved.credentials
            }
        };
        Ok(RegistryConfig {
            host: dest.host.clone(),
            plain: self.plain || scheme_plain,
            insecure: self.insecure,
            ca_files: self.ca_files.clone(),
            credentials,
            retries: self.retries,
            chunk_size: self.chunk_size,
        })
    }
}

/// `VIOLET_PASSWORD_<HOST>`: the host upper-cased, every character but A-Z and 0-9 as `_`.
pub fn password_env(host: &str) -> String {
    let name: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{}_{name}", credentials::ENV_PASSWORD)
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

pub fn run(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    if args.skip_crs && args.skip_push {
        return Err(Fail::usage("--skip-crs and --skip-push cannot be used together").into());
    }
    if args.registry.password_stdin && args.platform.platform_password_stdin {
        return Err(Fail::usage("--password-stdin and --platform-password-stdin cannot both read stdin")
            .with_hint("pass one of the passwords through its environment variable (VIOLET_PASSWORD, VIOLET_PLATFORM_PASSWORD)")
            .into());
    }
    let wants_platform = !args.skip_crs && args.crs_out.is_none();
    if wants_platform && !args.platform.is_configured() {
        return Err(Fail::usage("creating the catalog resources needs the platform: pass --platform-address with --platform-token or --platform-username/--platform-password")
            .with_hint("to push images only, add --skip-crs; to write the resources as files, add --crs-out DIR")
            .into());
    }
    if args.registry.dest_repo.is_empty() && !args.platform.is_configured() {
        return Err(Fail::usage("no destination registry: pass --dest-repo, or --platform-address to use the platform's registry")
            .with_hint("e.g. --dest-repo 192.168.1.10:11443")
            .into());
    }
    let (packages, bad) = run::load_packages(&args.path, &printer)?;
    super::block_on(run::run_async(args, printer, packages, bad))?
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(super::parse_size("16m"), Ok(16 << 20));
        assert_eq!(super::parse_size("1024"), Ok(1024));
        assert!(super::parse_size("0").is_err());
        assert!(super::parse_size("4XB").is_err());
    }
}
