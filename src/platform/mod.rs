//! The platform side of a push: log in to ACP (or use a kubeconfig), find the platform registry,
//! and publish the catalog resources (Artifact / ArtifactVersion / ModulePlugin) of a package.
//!
//! Entry points: [`Platform::connect`], [`Platform::discover_registry`], [`CatalogPlan::build`],
//! [`publish`] and [`crs_out`]. Decisions are documented in `docs/platform.md`.

pub mod apply;
pub mod crs;
pub mod discovery;
pub mod kube;
pub mod login;
pub mod target;
pub mod views;

use std::path::PathBuf;

use crate::error::{ExitCode, UserError};

pub use apply::{ApplyOptions, WriteAction, WriteReport, crs_out, publish};
pub use crs::{CatalogInputs, CatalogPlan, PlannedObject, PushedArtifact};
pub use kube::Platform;
pub use target::TlsOptions;

/// Hint shared by every 403: the documented account requirement.
const ADMIN_HINT: &str = "the account needs the platform-admin-system role (role property System); \
     identity-provider (LDAP/OIDC) users must use --platform-token";

/// Everything that can go wrong talking to the platform. Messages never carry a password or token.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("{0}")]
    Usage(String),
    /// Never carries the address: it holds a password.
    #[error(
        "--platform-address must not contain credentials (user:password@host); the address was not used"
    )]
    AddressCredentials,
    #[error(
        "cluster {cluster} is not answering through the platform proxy {address}/kubernetes/{cluster}: {action} got HTTP {code} after {attempts} attempt(s){detail}"
    )]
    ClusterUnavailable {
        address: String,
        cluster: String,
        action: String,
        code: u16,
        attempts: u32,
        /// The proxy's own words, when it said any (often an empty body or an HTML page).
        detail: String,
    },
    #[error("platform {address} is unreachable: {detail}")]
    Unreachable { address: String, detail: String },
    #[error("TLS to platform {address} failed: {detail}")]
    Tls { address: String, detail: String },
    #[error("platform {address} rejected the login of user {user:?}: wrong username or password")]
    BadCredentials { address: String, user: String },
    #[error("platform {address} rejected the token (401 Unauthorized)")]
    BadToken { address: String },
    #[error("platform {address} refused {action} (403 Forbidden): {message}")]
    Forbidden {
        address: String,
        action: String,
        message: String,
    },
    #[error("cluster {cluster:?} is not known to platform {address}")]
    UnknownCluster { address: String, cluster: String },
    #[error("login to platform {address} failed at {step}: {detail}")]
    Login {
        address: String,
        step: String,
        detail: String,
    },
    #[error("cluster {cluster}: {action} failed: {message}")]
    Api {
        cluster: String,
        action: String,
        code: u16,
        message: String,
    },
    #[error("kubeconfig {path}: {detail}")]
    Kubeconfig { path: String, detail: String },
    #[error("registry discovery on platform {address} failed: {detail}")]
    Discovery { address: String, detail: String },
    #[error("{package}: cannot build catalog resources: {message}")]
    Plan { package: String, message: String },
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl UserError for PlatformError {
    fn exit_code(&self) -> ExitCode {
        match self {
            PlatformError::Usage(_) | PlatformError::AddressCredentials => ExitCode::Usage,
            PlatformError::Unreachable { .. }
            | PlatformError::Tls { .. }
            | PlatformError::ClusterUnavailable { .. } => ExitCode::Network,
            PlatformError::BadCredentials { .. }
            | PlatformError::BadToken { .. }
            | PlatformError::Forbidden { .. } => ExitCode::Auth,
            PlatformError::Kubeconfig { .. } | PlatformError::Write { .. } => ExitCode::Input,
            PlatformError::Plan { .. } => ExitCode::BadPackage,
            PlatformError::UnknownCluster { .. }
            | PlatformError::Login { .. }
            | PlatformError::Api { .. }
            | PlatformError::Discovery { .. } => ExitCode::Remote,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            PlatformError::Tls { .. } => Some(
                "the platform usually has a self-signed certificate: pass its CA with --ca-file, or --insecure to skip verification"
                    .into(),
            ),
            PlatformError::Unreachable { .. } => Some("check --platform-address and the network path to the platform".into()),
            PlatformError::BadCredentials { .. } => Some(
                "password login works only for local users; identity-provider (LDAP/OIDC) users must use --platform-token".into(),
            ),
            PlatformError::BadToken { .. } => {
                Some("create a new token in the web console under Profile > API Tokens".into())
            }
            PlatformError::Forbidden { .. } => Some(ADMIN_HINT.into()),
            PlatformError::UnknownCluster { .. } => Some("check the names given to --clusters".into()),
            PlatformError::AddressCredentials => Some(
                "give the user with --platform-username and the password with --platform-password-stdin, or use --platform-token".into(),
            ),
            PlatformError::ClusterUnavailable { .. } => Some(
                "the cluster's API server or its tunnel to the platform is down: check the cluster in the platform's Clusters page, \
                 raise --retries to wait longer, or leave the cluster out with --clusters".into(),
            ),
            PlatformError::Discovery { .. } => Some("pass the registry explicitly with --dest-repo and its credentials".into()),
            _ => None,
        }
    }
}

pub type Result<T, E = PlatformError> = std::result::Result<T, E>;

/// Classifies a transport failure (from reqwest or kube/hyper) by walking its source chain: a TLS
/// failure deserves its own message and hint, anything else is "unreachable".
pub(crate) fn transport_error(
    address: &str,
    err: &(dyn std::error::Error + 'static),
) -> PlatformError {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if parts.last().is_none_or(|p| !p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    let detail = parts.last().cloned().unwrap_or_default();
    let all = parts.join(": ").to_ascii_lowercase();
    let tls = [
        "certificate",
        "tls",
        "handshake",
        "unknownissuer",
        "invalid peer",
    ]
    .iter()
    .any(|k| all.contains(k));
    if tls {
        PlatformError::Tls {
            address: address.to_string(),
            detail,
        }
    } else {
        PlatformError::Unreachable {
            address: address.to_string(),
            detail,
        }
    }
}
