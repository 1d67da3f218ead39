//! Registry access flags: declared once, turned into a [`RegistryConfig`] once.
//!
//! [`RegistryAccess`] is the block every registry-facing command shares (user, password, TLS,
//! retries). `push` flattens it into [`RegistryArgs`] (its destinations), `mirror` uses it for the
//! destination (and [`MirrorSourceArgs`] for its source), `create` and `package` through
//! [`SourceArgs`] for the source registries. Every [`RegistryConfig`] is made by
//! [`RegistryAccess::config`]. Where the
//! meaning differs per command, the command replaces the help text with `mut_arg`, not the flag.

use crate::args::{StdinSecret, TransportArgs, parse_size, read_stdin_secret};
use crate::build::{SourceLogin, Sources};
use crate::error::Fail;
use crate::output::Printer;
use crate::plan::Destination;
use crate::registry::{Credentials, RegistryConfig, credentials};

/// User, password, TLS and retries of a registry.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryAccess {
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
    #[arg(long)]
    pub no_auth: bool,

    /// The registries speak plain HTTP (every destination).
    #[arg(long)]
    pub plain: bool,

    #[command(flatten)]
    pub transport: TransportArgs,
}

impl RegistryAccess {
    /// The password of `--password`/`VIOLET_PASSWORD`, or read from stdin (once per run: stdin
    /// holds one password).
    pub fn password(&self) -> Result<Option<String>, Fail> {
        Ok(if self.password_stdin {
            Some(read_stdin_secret(
                "--password-stdin",
                StdinSecret::WholeText,
            )?)
        } else {
            self.password.clone()
        })
    }

    /// The configuration of one registry with the given credentials: `--plain` (or an `http://`
    /// in the address), `--insecure`, `--ca-file`, `--retries`, and a chunk size when uploading.
    pub fn config(
        &self,
        host: &str,
        scheme_plain: bool,
        credentials: Credentials,
        chunk_size: Option<u64>,
    ) -> RegistryConfig {
        RegistryConfig {
            host: host.to_string(),
            plain: self.plain || scheme_plain,
            insecure: self.transport.insecure,
            ca_files: self.transport.ca_files.clone(),
            credentials,
            retries: self.transport.retries,
            chunk_size,
        }
    }
}

/// The destination registries of `push`.
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

    #[command(flatten)]
    pub access: RegistryAccess,

    /// Upload blobs in chunks of this size (e.g. 4MiB) instead of one streamed request.
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub chunk_size: Option<u64>,
}

impl RegistryArgs {
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
        let access = &self.access;
        let explicit = access.no_auth || access.username.is_some() || password.is_some();
        let credentials = match (dest_user, discovered) {
            (Some(user), _) => {
                if access.no_auth {
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
                    access.username.as_deref(),
                    password,
                    access.no_auth,
                )?;
                resolved.require_for_push(&dest.host)?;
                resolved.credentials
            }
        };
        Ok(self
            .access
            .config(&dest.host, scheme_plain, credentials, self.chunk_size))
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

/// The source registries of `create` and `package`: one user for every registry the images come
/// from, else each registry's stored login, else anonymous.
#[derive(Debug, Clone, clap::Args)]
#[command(
    mut_arg("username", |a| a.help("Source registry user, for every registry the images come from (default: the docker/podman login stored for each registry, else anonymous)")),
    mut_arg("password", |a| a.help("Source registry password (prefer --password-stdin or VIOLET_PASSWORD: argv is visible in `ps`)")),
    mut_arg("password_stdin", |a| a.help("Read the source registry password from standard input")),
    mut_arg("no_auth", |a| a.help("The source registries need no authentication (ignore stored credentials)")),
    mut_arg("plain", |a| a.help("The source registries speak plain HTTP")),
    mut_arg("insecure", |a| a.help("Do not verify the source registries' TLS certificates")),
    mut_arg("ca_files", |a| a.help("Trust this CA certificate (PEM) for the source registries, in addition to the system roots. Repeatable")),
)]
pub struct SourceArgs {
    #[command(flatten)]
    pub access: RegistryAccess,

    #[command(flatten)]
    pub referrers: super::ReferrersArgs,
}

impl SourceArgs {
    pub fn sources(&self, printer: &Printer) -> anyhow::Result<Sources> {
        let a = &self.access;
        let password = a.password()?;
        if a.username.is_some() != password.is_some() && !a.no_auth {
            return Err(Fail::usage("--username and --password go together")
                .with_hint("or pass --password-stdin with --username")
                .into());
        }
        if a.transport.insecure {
            printer.warn("--insecure: TLS certificates of the source registries are not verified");
        }
        // Host and credentials are each source registry's own, filled in per host.
        let template = a.config("", false, Credentials::Anonymous, None);
        Ok(Sources::new(
            template,
            SourceLogin {
                username: a.username.clone(),
                password,
                no_auth: a.no_auth,
            },
        ))
    }
}

/// The source registry of `mirror` (`--from-*`). Declared apart, not as a prefixed
/// [`RegistryAccess`]: clap's derive has no prefixed flatten (clap-rs/clap#3513), and the source
/// block is another subset anyway (no --from-ca-file or --from-retries: those are shared with the
/// destination; its own variables; one stdin shared with --password-stdin).
#[derive(Debug, Clone, clap::Args)]
pub struct MirrorSourceArgs {
    /// Source registry user (default: docker/podman credentials for the source host, else anonymous).
    #[arg(long, env = "VIOLET_FROM_USERNAME")]
    pub from_username: Option<String>,

    /// Source registry password (prefer --from-password-stdin or VIOLET_FROM_PASSWORD).
    #[arg(long, env = "VIOLET_FROM_PASSWORD", hide_env_values = true)]
    pub from_password: Option<String>,

    /// Read the source registry password from standard input.
    #[arg(long, conflicts_with_all = ["from_password", "password_stdin"])]
    pub from_password_stdin: bool,

    /// The source registry needs no authentication (ignore stored credentials).
    #[arg(long)]
    pub from_no_auth: bool,

    /// The source registry speaks plain HTTP.
    #[arg(long)]
    pub from_plain: bool,

    /// Do not verify the source registry's TLS certificate.
    #[arg(long)]
    pub from_insecure: bool,
}

impl MirrorSourceArgs {
    /// The source registry's configuration: its own login flags (or its stored login, or
    /// anonymous: a source may be pull-open), `--from-plain`/`--from-insecure`, and the
    /// destination's CA files and retries.
    pub fn config(
        &self,
        from: &Destination,
        scheme_plain: bool,
        shared: &RegistryAccess,
        chunk_size: Option<u64>,
    ) -> anyhow::Result<RegistryConfig> {
        let password = if self.from_password_stdin {
            Some(read_stdin_secret(
                "--from-password-stdin",
                StdinSecret::WholeText,
            )?)
        } else {
            self.from_password.clone()
        };
        let credentials = if self.from_no_auth {
            Credentials::Anonymous
        } else {
            match (&self.from_username, password) {
                (Some(u), Some(p)) => Credentials::Basic {
                    username: u.clone(),
                    password: p,
                },
                (Some(_), None) | (None, Some(_)) => {
                    return Err(
                        Fail::usage("--from-username and --from-password go together")
                            .with_hint("or pass --from-password-stdin with --from-username")
                            .into(),
                    );
                }
                // Stored logins only: VIOLET_USERNAME/VIOLET_PASSWORD belong to the destination.
                (None, None) => credentials::resolve_stored(&from.host)
                    .map(|r| r.credentials)
                    .unwrap_or_default(),
            }
        };
        let mut config = shared.config(&from.host, false, credentials, chunk_size);
        config.plain = self.from_plain || scheme_plain;
        config.insecure = self.from_insecure;
        Ok(config)
    }
}
