//! The platform connection flags (`push`, `list`, `gc`) and the cluster scope of `list` and `gc`.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;

use crate::args::{StdinSecret, TransportArgs, read_secret};
use crate::error::Fail;
use crate::output::Printer;
use crate::platform::PlatformError;
use crate::platform::kube::{GLOBAL, Platform};
use crate::platform::target::{PlatformAuth, Target, TlsOptions, normalize_address};
use crate::platform::views::{self, OperatorView};

/// How to reach the clusters that receive the catalog resources.
#[derive(Clone, Default, clap::Args)]
pub struct PlatformArgs {
    /// Platform access URL, e.g. https://acp.example.com.
    #[arg(long, env = "VIOLET_PLATFORM_ADDRESS", value_name = "URL")]
    pub platform_address: Option<String>,

    /// Platform user (local users only; identity-provider users use --platform-token).
    #[arg(long, env = "VIOLET_PLATFORM_USERNAME", value_name = "USER")]
    pub platform_username: Option<String>,

    /// Platform password (prefer VIOLET_PLATFORM_PASSWORD or --platform-password-stdin: argv is visible in ps).
    #[arg(
        long,
        env = "VIOLET_PLATFORM_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub platform_password: Option<String>,

    /// Read the platform password from the first line of stdin.
    #[arg(long, conflicts_with = "platform_password")]
    pub platform_password_stdin: bool,

    /// Platform API token (Profile > API Tokens), sent as a bearer token.
    #[arg(
        long,
        env = "VIOLET_PLATFORM_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        conflicts_with_all = ["platform_username", "platform_password", "platform_password_stdin"]
    )]
    pub platform_token: Option<String>,

    /// OAuth client id for username/password login.
    #[arg(long, default_value = "alauda-auth", hide = true)]
    pub client_id: String,

    /// Talk straight to Kubernetes API servers from this kubeconfig instead of the platform proxy;
    /// --clusters then names kubeconfig contexts.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["platform_address", "platform_token", "platform_username"])]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context used for the global cluster (default: the current context).
    #[arg(long, requires = "kubeconfig", value_name = "NAME")]
    pub context: Option<String>,
}

impl std::fmt::Debug for PlatformArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("PlatformArgs")
            .field("platform_address", &self.platform_address)
            .field("platform_username", &self.platform_username)
            .field("platform_password", &redacted(&self.platform_password))
            .field("platform_password_stdin", &self.platform_password_stdin)
            .field("platform_token", &redacted(&self.platform_token))
            .field("client_id", &self.client_id)
            .field("kubeconfig", &self.kubeconfig)
            .field("context", &self.context)
            .finish()
    }
}

impl PlatformArgs {
    /// Whether any way to reach a cluster was given (the push command skips CRs, or fails, without one).
    pub fn is_configured(&self) -> bool {
        self.platform_address.is_some() || self.kubeconfig.is_some()
    }

    /// Checks the flag combination, reads the password from stdin when asked to, and logs in.
    pub async fn connect(&self, tls: &TlsOptions) -> anyhow::Result<Platform> {
        let target = self.target_with_stdin(&mut std::io::stdin().lock())?;
        Ok(Platform::connect(target, tls).await?)
    }

    fn target_with_stdin(&self, stdin: &mut dyn Read) -> anyhow::Result<Target> {
        if let Some(path) = &self.kubeconfig {
            return Ok(Target::Kubeconfig {
                path: path.clone(),
                context: self.context.clone(),
            });
        }
        let Some(address) = self.platform_address.as_deref() else {
            return Err(
                usage("no platform given: pass --platform-address (or --kubeconfig)").into(),
            );
        };
        let address = normalize_address(address)?;
        let auth = if let Some(token) = non_empty(&self.platform_token) {
            PlatformAuth::Token(token)
        } else {
            let Some(username) = non_empty(&self.platform_username) else {
                return Err(usage(
                    "platform credentials missing: pass --platform-token, or --platform-username with --platform-password",
                ).into());
            };
            let password = if self.platform_password_stdin {
                read_secret(stdin, "--platform-password-stdin", StdinSecret::FirstLine)?
            } else {
                non_empty(&self.platform_password).ok_or_else(|| {
                    usage(&format!(
                        "no password for platform user {username:?}: pass --platform-password, VIOLET_PLATFORM_PASSWORD or --platform-password-stdin"
                    ))
                })?
            };
            PlatformAuth::Password { username, password }
        };
        Ok(Target::Platform {
            address,
            auth,
            client_id: self.client_id.clone(),
        })
    }
}

fn usage(message: &str) -> PlatformError {
    PlatformError::Usage(message.to_string())
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.is_empty()).cloned()
}

/// Platform connection and cluster selection, shared by `list` and `gc`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    mut_arg("insecure", |a| a.help("Do not verify the platform's TLS certificate")),
    mut_arg("ca_files", |a| a.help("Trust this CA certificate (PEM) for the platform, in addition to the system roots. Repeatable")),
    mut_arg("retries", |a| a.help("Retries for a cluster that answers 429/502/503/504 through the platform proxy (with backoff, at most 2 minutes in all per call); a line on stderr says when violet is waiting")),
)]
pub struct ConnectArgs {
    /// Only these clusters (comma separated). Default: every cluster the platform lists.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub clusters: Option<Vec<String>>,

    #[command(flatten)]
    pub platform: PlatformArgs,

    #[command(flatten)]
    pub transport: TransportArgs,
}

impl ConnectArgs {
    /// The `--clusters` names, trimmed, empty ones dropped; `None` when not given.
    pub fn cluster_filter(&self) -> Option<BTreeSet<String>> {
        self.clusters.as_ref().map(|c| {
            c.iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
    }

    /// Checks that a platform was given, then logs in.
    pub async fn connect(&self, printer: &Printer) -> anyhow::Result<Platform> {
        if !self.platform.is_configured() {
            return Err(Fail::usage(
                "no platform given: pass --platform-address with --platform-token or --platform-username/--platform-password",
            )
            .with_hint("or --kubeconfig FILE to talk straight to the global cluster's API server")
            .into());
        }
        if self.cluster_filter().is_some_and(|c| c.is_empty()) {
            return Err(Fail::usage("--clusters is empty").into());
        }
        let t = &self.transport;
        if t.insecure {
            printer.warn("--insecure: TLS certificates are not verified");
        }
        let tls = TlsOptions {
            ca_files: t.ca_files.clone(),
            insecure: t.insecure,
        };
        let mut platform = self.platform.connect(&tls).await?;
        platform.set_waiting(crate::platform::kube::Waiting {
            retries: t.retries,
            ..Default::default()
        });
        Ok(platform)
    }

    /// The clusters to scan: `--clusters`, else the platform's cluster list plus `global`; when the
    /// platform does not list its clusters, `global` plus the clusters the OperatorViews name.
    pub async fn scope(
        &self,
        platform: &Platform,
        operators: &[OperatorView],
        printer: &Printer,
    ) -> anyhow::Result<Vec<String>> {
        if let Some(set) = self.cluster_filter() {
            return Ok(ordered(set));
        }
        let mut set: BTreeSet<String> = [GLOBAL.to_string()].into();
        if self.platform.kubeconfig.is_some() {
            // Cluster names from the platform are not kubeconfig contexts.
            printer.warn("--kubeconfig without --clusters: only the global cluster is scanned");
            return Ok(ordered(set));
        }
        match views::cluster_states(platform).await? {
            // Every cluster, whatever its phase: one that is not running is reported, never ignored.
            Some(states) => set.extend(states.into_iter().map(|(n, _)| n)),
            None => {
                printer.warn("the platform does not list its clusters (clusters.platform.tkestack.io): scanning global and the clusters named by OperatorViews; pass --clusters to choose");
                set.extend(
                    operators
                        .iter()
                        .map(|o| o.cluster.clone())
                        .filter(|c| !c.is_empty()),
                );
            }
        }
        Ok(ordered(set))
    }
}

/// `global` first, then by name.
fn ordered(set: BTreeSet<String>) -> Vec<String> {
    let mut v: Vec<String> = set.into_iter().collect();
    v.sort_by_key(|c| (c != GLOBAL, c.clone()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        p: PlatformArgs,
    }

    fn parse(args: &[&str]) -> std::result::Result<PlatformArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied())).map(|c| c.p)
    }

    #[test]
    fn token_excludes_password() {
        let err = parse(&["--platform-token", "t", "--platform-password", "p"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn password_from_stdin() {
        let a = parse(&[
            "--platform-address",
            "acp.local:8443",
            "--platform-username",
            "admin",
            "--platform-password-stdin",
        ])
        .unwrap();
        let t = a
            .target_with_stdin(&mut "s3cret\nignored\n".as_bytes())
            .unwrap();
        match t {
            Target::Platform {
                address,
                auth: PlatformAuth::Password { username, password },
                client_id,
            } => {
                assert_eq!(address, "https://acp.local:8443");
                assert_eq!((username.as_str(), password.as_str()), ("admin", "s3cret"));
                assert_eq!(client_id, "alauda-auth");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn missing_credentials_is_usage() {
        let a = parse(&["--platform-address", "https://acp"]).unwrap();
        let err = a.target_with_stdin(&mut "".as_bytes()).unwrap_err();
        assert!(err.to_string().contains("--platform-token"), "{err}");
    }
}
