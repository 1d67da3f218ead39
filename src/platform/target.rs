//! Where the platform calls go and how they authenticate, once the flags are resolved
//! (`args::platform` builds a [`Target`] from the command line).

use std::path::PathBuf;

use crate::platform::{PlatformError, Result};

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
