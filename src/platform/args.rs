//! Platform connection flags, flattened into `violet push` (and any command that writes CRs).

use std::io::Read;
use std::path::PathBuf;

use crate::platform::{PlatformError, Result};

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

/// TLS settings for the platform; the push command shares its `--ca-file`/`--insecure` with the registry.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Extra trusted CA certificates (PEM).
    pub ca_files: Vec<PathBuf>,
    /// Do not verify the platform's certificate.
    pub insecure: bool,
}

/// The resolved way to authenticate against the platform. `Debug` never shows the secret.
#[derive(Clone)]
pub enum PlatformAuth {
    Token(String),
    Password { username: String, password: String },
}

impl std::fmt::Debug for PlatformAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlatformAuth::Token(_) => f.write_str("Token(<redacted>)"),
            PlatformAuth::Password { username, .. } => {
                write!(f, "Password({username}, <redacted>)")
            }
        }
    }
}

/// Where the Kubernetes calls go.
#[derive(Debug, Clone)]
pub enum Target {
    /// `<address>/kubernetes/<cluster>/...` with a platform token.
    Platform {
        address: String,
        auth: PlatformAuth,
        client_id: String,
    },
    /// Kubeconfig contexts.
    Kubeconfig {
        path: PathBuf,
        context: Option<String>,
    },
}

impl PlatformArgs {
    /// Whether any way to reach a cluster was given (the push command skips CRs, or fails, without one).
    pub fn is_configured(&self) -> bool {
        self.platform_address.is_some() || self.kubeconfig.is_some()
    }

    /// Checks the flag combination and reads the password from stdin when asked to.
    pub fn target(&self) -> Result<Target> {
        self.target_with_stdin(&mut std::io::stdin().lock())
    }

    fn target_with_stdin(&self, stdin: &mut dyn Read) -> Result<Target> {
        if let Some(path) = &self.kubeconfig {
            return Ok(Target::Kubeconfig {
                path: path.clone(),
                context: self.context.clone(),
            });
        }
        let Some(address) = self.platform_address.as_deref() else {
            return Err(PlatformError::Usage(
                "no platform given: pass --platform-address (or --kubeconfig)".into(),
            ));
        };
        let address = normalize_address(address)?;
        let auth = if let Some(token) = non_empty(&self.platform_token) {
            PlatformAuth::Token(token)
        } else {
            let Some(username) = non_empty(&self.platform_username) else {
                return Err(PlatformError::Usage(
                    "platform credentials missing: pass --platform-token, or --platform-username with --platform-password".into(),
                ));
            };
            let password = if self.platform_password_stdin {
                read_first_line(stdin)?
            } else {
                non_empty(&self.platform_password).ok_or_else(|| {
                    PlatformError::Usage(format!(
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

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.is_empty()).cloned()
}

fn read_first_line(stdin: &mut dyn Read) -> Result<String> {
    let mut buf = String::new();
    stdin.read_to_string(&mut buf).map_err(|e| {
        PlatformError::Usage(format!("cannot read the platform password from stdin: {e}"))
    })?;
    let line = buf.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err(PlatformError::Usage(
            "--platform-password-stdin: stdin is empty".into(),
        ));
    }
    Ok(line)
}

/// Accepts `host`, `host:port` or a URL; the platform is HTTPS unless the URL says `http://`.
/// Returns the URL without a trailing slash.
pub fn normalize_address(address: &str) -> Result<String> {
    let trimmed = address.trim().trim_end_matches('/');
    // Credentials in the URL would end up in logs, error messages and the process list, and the
    // platform proxy ignores them anyway: refuse without echoing the address.
    let authority = trimmed
        .split_once("://")
        .map_or(trimmed, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("");
    if authority.contains('@') {
        return Err(PlatformError::AddressCredentials);
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("https://{trimmed}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|e| {
        PlatformError::Usage(format!(
            "--platform-address {address:?} is not a valid URL: {e}"
        ))
    })?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(PlatformError::Usage(format!(
            "--platform-address {address:?} must be an http(s) URL such as https://acp.example.com"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
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

    #[test]
    fn debug_redacts() {
        let auth = PlatformAuth::Password {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
        assert!(!format!("{:?}", PlatformAuth::Token("tok".into())).contains("tok)"));
    }

    #[test]
    fn address_forms() {
        assert_eq!(
            normalize_address("http://1.2.3.4:8080/").unwrap(),
            "http://1.2.3.4:8080"
        );
        assert!(normalize_address("ftp://x").is_err());
    }

    #[test]
    fn address_with_credentials_is_refused_without_echo() {
        for a in [
            "https://admin:S3cr3t-pw@acp.example.com",
            "admin:S3cr3t-pw@acp.example.com:8443/x",
            "http://S3cr3t-pw@1.2.3.4",
        ] {
            let err = normalize_address(a).unwrap_err();
            assert!(matches!(err, PlatformError::AddressCredentials));
            assert!(!err.to_string().contains("S3cr3t-pw"), "{err}");
        }
        assert!(normalize_address("https://acp.example.com/path@x").is_ok());
    }
}
