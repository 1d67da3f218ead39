//! The OCI distribution client used for pushes (and pulls): auth, TLS, uploads, manifests, retries.
//!
//! Why an own client and how it behaves (strategies, retry policy, auth): `docs/registry-client.md`.

use std::fmt;

use crate::error::{ExitCode, UserError};

/// The `code` and `message` of the first entry of a registry's `{"errors":[…]}` body, cut short.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteDetail {
    pub code: Option<String>,
    pub message: Option<String>,
}

impl RemoteDetail {
    /// Reads the distribution error JSON; a non-JSON body (a proxy's HTML page) becomes a short excerpt.
    pub fn parse(body: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct Body {
            errors: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            code: Option<String>,
            message: Option<String>,
        }
        if let Ok(b) = serde_json::from_slice::<Body>(body)
            && let Some(e) = b.errors.into_iter().next()
        {
            return Self {
                code: e.code,
                message: e.message.map(|m| excerpt(&m)),
            };
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        Self {
            code: None,
            message: (!text.is_empty() && !text.starts_with('<')).then(|| excerpt(text)),
        }
    }
}

impl fmt::Display for RemoteDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => write!(f, ": {c}: {m}"),
            (Some(c), None) => write!(f, ": {c}"),
            (None, Some(m)) => write!(f, ": {m}"),
            (None, None) => Ok(()),
        }
    }
}

/// One line, at most 200 characters: registry messages can embed whole manifests.
fn excerpt(s: &str) -> String {
    let line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    #[error("{registry}: {message}")]
    Other { registry: String, message: String },

    /// The client cannot be set up (bad host, unreadable `--ca-file`).
    #[error("{registry}: {message}")]
    Config { registry: String, message: String },

    /// Connection refused, DNS, reset, timeouts.
    #[error("cannot reach registry {registry}: {message}")]
    Network {
        registry: String,
        message: String,
        hint: Option<String>,
    },

    /// The TLS handshake failed (unknown issuer, plain HTTP server, bad name).
    #[error("TLS with registry {registry} failed: {message}")]
    Tls {
        registry: String,
        message: String,
        hint: Option<String>,
    },

    /// 401/403: credentials rejected or access denied.
    #[error("{message}")]
    Auth {
        registry: String,
        repository: Option<String>,
        status: u16,
        message: String,
        hint: Option<String>,
    },

    /// Any other refusal; `what` names the object (`blob sha256:… in repo`, `manifest repo:tag`).
    #[error("registry {registry} refused {operation} {what}: HTTP {status}{detail}")]
    Remote {
        registry: String,
        operation: &'static str,
        what: String,
        status: u16,
        detail: RemoteDetail,
    },

    /// The registry answered something the protocol does not allow (a 202 without `Location`).
    #[error("registry {registry} sent an invalid answer to {operation} {what}: {message}")]
    Protocol {
        registry: String,
        operation: &'static str,
        what: String,
        message: String,
    },

    /// An upload had to restart but its source can only be read once; the caller retries it later
    /// (a further pass over a compressed package, a new GET). When the caller gives up, what the
    /// user sees is `cause`, the failure that forced the restart (a reset, a 5xx), with its exit
    /// code: the restart itself is an internal matter.
    #[error("{cause}")]
    SourceNotRewindable {
        registry: String,
        repository: String,
        digest: String,
        cause: Box<RegistryError>,
    },

    /// The blob's own bytes failed (read error, digest check at EOF); the upload was aborted so the
    /// registry never commits it.
    #[error("upload of blob {digest} to {registry}/{repository} aborted: {message}")]
    Source {
        registry: String,
        repository: String,
        digest: String,
        message: String,
    },
}

impl RegistryError {
    /// The HTTP status the registry answered, when the failure is an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Auth { status, .. } | RegistryError::Remote { status, .. } => {
                Some(*status)
            }
            RegistryError::SourceNotRewindable { cause, .. } => cause.status(),
            _ => None,
        }
    }
}

impl UserError for RegistryError {
    fn exit_code(&self) -> ExitCode {
        match self {
            RegistryError::Auth { .. } => ExitCode::Auth,
            RegistryError::Network { .. } | RegistryError::Tls { .. } => ExitCode::Network,
            RegistryError::Config { .. } => ExitCode::Usage,
            RegistryError::Source { .. } => ExitCode::BadPackage,
            RegistryError::SourceNotRewindable { cause, .. } => cause.exit_code(),
            RegistryError::Other { .. }
            | RegistryError::Remote { .. }
            | RegistryError::Protocol { .. } => ExitCode::Remote,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            RegistryError::SourceNotRewindable { cause, .. } => cause.hint(),
            RegistryError::Network { hint, .. } | RegistryError::Tls { hint, .. } | RegistryError::Auth { hint, .. } => {
                hint.clone()
            }
            RegistryError::Remote { status: 413, .. } => {
                Some("a proxy in front of the registry limits request bodies; pass a smaller --chunk-size".into())
            }
            RegistryError::Remote { detail, .. } if detail.code.as_deref() == Some("MANIFEST_BLOB_UNKNOWN") => {
                Some("a blob or child manifest it references is missing in the registry; push the whole package again".into())
            }
            _ => None,
        }
    }
}

pub mod auth;
pub mod client;
pub mod credentials;
pub mod names;
pub mod retry;
pub mod transport;

pub use client::{BlobOpener, BlobOutcome, BlobStream, Client, Credentials, RegistryConfig};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registry_error_json() {
        let d = RemoteDetail::parse(br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:aa"}]}"#);
        assert_eq!(d.code.as_deref(), Some("MANIFEST_BLOB_UNKNOWN"));
        assert_eq!(
            d.to_string(),
            ": MANIFEST_BLOB_UNKNOWN: blob unknown to registry"
        );
        assert_eq!(
            RemoteDetail::parse(b"<html><body>413</body></html>").to_string(),
            ""
        );
        assert_eq!(RemoteDetail::parse(b"too\n  big").to_string(), ": too big");
        let long = "x".repeat(500);
        assert_eq!(
            RemoteDetail::parse(long.as_bytes())
                .message
                .map(|m| m.chars().count()),
            Some(201)
        );
    }
}
