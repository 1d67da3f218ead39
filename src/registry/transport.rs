//! The HTTP layer: one reqwest client per registry (TLS roots, `--insecure`, `--plain`, proxies from
//! the environment), and the translation of transport failures into errors that say what to do.

use std::time::Duration;

use crate::registry::{RegistryConfig, RegistryError};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request may make no progress (no body bytes accepted, no answer) before it is
/// abandoned. Uploads have no overall limit: a multi-GB layer on a slow link is legitimate.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

const CA_HINT: &str = "use --ca-file <CA.pem> or --insecure";
const PLAIN_HINT: &str = "the registry speaks plain HTTP: use --plain";

/// Builds the reqwest client. Proxies (`HTTPS_PROXY`, `NO_PROXY`, …) are read by reqwest itself.
pub fn build(config: &RegistryConfig) -> Result<reqwest::Client, RegistryError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("violet/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_keepalive(Duration::from_secs(30))
        // Blob GETs redirect to object storage; uploads never should, and a redirect of a
        // streamed body could not be replayed anyway. reqwest drops `Authorization` when a
        // redirect leaves the origin (scheme, host or port changes), so storage never sees the
        // registry credentials (tests/it/registry_client.rs `redirected_blob_get_*`).
        .redirect(reqwest::redirect::Policy::limited(10));
    if config.insecure {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    let mut certs = Vec::new();
    for path in &config.ca_files {
        let pem = std::fs::read(path).map_err(|e| RegistryError::Config {
            registry: config.host.clone(),
            message: format!("cannot read CA file {}: {e}", path.display()),
        })?;
        let found =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| RegistryError::Config {
                registry: config.host.clone(),
                message: format!("CA file {} is not PEM certificates: {e}", path.display()),
            })?;
        if found.is_empty() {
            return Err(RegistryError::Config {
                registry: config.host.clone(),
                message: format!("CA file {} holds no PEM certificate", path.display()),
            });
        }
        certs.extend(found);
    }
    if !certs.is_empty() {
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(|e| RegistryError::Config {
        registry: config.host.clone(),
        message: format!("cannot set up the HTTP client: {}", chain(&e)),
    })
}

/// The error chain as one line, without the URL (which may carry an upload session's state).
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let s = match e.downcast_ref::<reqwest::Error>() {
            Some(re) => without_url(re),
            None => e.to_string(),
        };
        if !s.is_empty() && parts.last().is_none_or(|p| !p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

fn without_url(err: &reqwest::Error) -> String {
    let text = err.to_string();
    match err.url() {
        Some(u) => text
            .replace(&format!(" for url ({u})"), "")
            .replace(&format!(" ({u})"), ""),
        None => text,
    }
}

/// Classifies a failed request: TLS problems get the flag that fixes them, everything else is a
/// network error. `host` is whom we talked to (the registry, or a token realm's host).
pub fn classify(host: &str, err: &reqwest::Error, plain: bool) -> RegistryError {
    let text = chain(err);
    if err.is_timeout() {
        return RegistryError::Network {
            registry: host.to_string(),
            message: format!("timed out: {text}"),
            hint: Some(
                "check the network path to the registry (proxy settings: HTTPS_PROXY, NO_PROXY)"
                    .into(),
            ),
        };
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("unknownissuer")
        || lower.contains("unknown issuer")
        || lower.contains("self-signed")
        || lower.contains("self signed")
    {
        return RegistryError::Tls {
            registry: host.to_string(),
            message: "the server certificate is signed by an unknown authority".into(),
            hint: Some(CA_HINT.into()),
        };
    }
    if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        return RegistryError::Tls {
            registry: host.to_string(),
            message: "the server certificate does not name this host".into(),
            hint: Some(
                "connect with the name the certificate was issued for, or use --insecure".into(),
            ),
        };
    }
    // rustls meeting a plain HTTP answer reports a corrupt record ("InvalidContentType" /
    // "received corrupt message"): the equivalent of Go's "server gave HTTP response to HTTPS client".
    if !plain
        && (lower.contains("corrupt message")
            || lower.contains("invalidcontenttype")
            || lower.contains("wrong version number"))
    {
        return RegistryError::Tls {
            registry: host.to_string(),
            message: "the server answered in plain HTTP to a TLS connection".into(),
            hint: Some(PLAIN_HINT.into()),
        };
    }
    if lower.contains("invalid peer certificate")
        || lower.contains("certificate") && lower.contains("tls")
    {
        return RegistryError::Tls {
            registry: host.to_string(),
            message: text,
            hint: Some(CA_HINT.into()),
        };
    }
    let hint = if err.is_connect() {
        Some("check the host and port, that the registry is running, and proxy settings (HTTPS_PROXY, NO_PROXY)".into())
    } else {
        None
    };
    RegistryError::Network {
        registry: host.to_string(),
        message: text,
        hint,
    }
}

/// Whether a transport failure may succeed on another attempt. TLS and setup problems will not.
pub fn is_retriable(err: &RegistryError) -> bool {
    matches!(err, RegistryError::Network { .. })
}
