//! A client for one registry host: its configuration, construction and the API check. The
//! operations are split by what they move: `blobs.rs`, `manifests.rs`; every request goes
//! through `request.rs`, and uploads through `upload.rs`.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::sync::{mpsc, oneshot};
use url::Url;

use crate::digest::Digest;
use crate::registry::auth::{self, Auth};
use crate::registry::transport::{self, IDLE_TIMEOUT};
use crate::registry::{RegistryError, RemoteDetail, retry};

mod blobs;
mod listing;
mod manifests;
mod request;
mod upload;
pub use manifests::MANIFEST_ACCEPT;
use upload::Source;

/// A blob body. Uploads that must restart (retry after a reset, a 5xx) call the opener again.
pub type BlobStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Opens the blob's bytes from the start. A source that cannot be re-read (a decompressing single
/// pass) returns an error with kind `std::io::ErrorKind::Unsupported` on the second call; the client
/// then gives up on that blob with [`RegistryError::SourceNotRewindable`] and the caller retries it later.
pub type BlobOpener<'a> = &'a (dyn Fn() -> std::io::Result<BlobStream> + Send + Sync);

#[derive(Clone, Default)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// A docker `identitytoken` (OAuth2 refresh token), exchanged with `POST /token`.
    IdentityToken {
        username: String,
        token: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::IdentityToken { username, .. } => {
                write!(f, "IdentityToken({username}, <redacted>)")
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// `host[:port]` as written by the user (e.g. `192.168.1.10:11443`).
    pub host: String,
    /// `--plain`: speak HTTP.
    pub plain: bool,
    /// `--insecure`: do not verify the TLS certificate.
    pub insecure: bool,
    /// `--ca-file`: extra trusted CA certificates (PEM).
    pub ca_files: Vec<PathBuf>,
    pub credentials: Credentials,
    /// Attempts after the first one for retriable failures.
    pub retries: u32,
    /// Force chunked uploads with this chunk size (`--chunk-size`); `None` = monolithic first.
    pub chunk_size: Option<u64>,
}

/// What [`Client::upload_blob_unless_present`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// The bytes were sent.
    Uploaded,
    /// The repository already held the blob: nothing was sent.
    Present,
}

/// Default PATCH size when chunked uploads are used without `--chunk-size`.
pub const DEFAULT_CHUNK_SIZE: u64 = 16 * 1024 * 1024;
/// GHCR answers 416 to larger PATCH requests; the fallback size after such a refusal.
const SMALL_CHUNK_SIZE: u64 = 4 * 1024 * 1024;

/// A registry client; cheap to clone (shared connection pool and token cache).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// The host only: the rest holds credentials and tokens, which no output may show.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("host", &self.host())
            .finish()
    }
}

struct Inner {
    config: RegistryConfig,
    base: Url,
    http: reqwest::Client,
    auth: Auth,
    /// The learned upload profile: 0 = monolithic works, otherwise the PATCH size to use.
    /// Learned once per client (= per registry) so later blobs skip the failing attempt.
    chunk: AtomicU64,
    /// Whether an upload may open its session with a mount from its own repository, which asks
    /// "is it already here?" in the same request; cleared when the registry refuses such a mount.
    probe: AtomicBool,
    /// The quickest `HEAD` or `GET` answered so far (to its headers), in microseconds (`u64::MAX`:
    /// none yet): the round trip to the registry plus its least service time, which the
    /// scheduler sizes its in-flight counts by (`transfer::scheduler::lanes`).
    quickest_answer: AtomicU64,
}

/// What a request is about, for errors and logs.
struct Ctx {
    operation: &'static str,
    what: String,
    /// Repository and the actions the request needs, for "denied" errors.
    access: Option<(String, &'static str)>,
}

/// How a failed attempt continues.
enum Next {
    Fail,
    /// Retry after backoff (or the registry's `Retry-After`), within `retries`.
    Retry(Option<Duration>),
    /// The registry refused our token mid-upload: fetch a new one and restart, once.
    Reauth,
    /// The upload strategy changed (monolithic to chunked): restart at once, outside the budget.
    Restart,
}

struct Failure {
    err: RegistryError,
    next: Next,
}

impl Failure {
    fn fail(err: RegistryError) -> Self {
        Self {
            err,
            next: Next::Fail,
        }
    }
    fn transport(err: RegistryError) -> Self {
        let next = if transport::is_retriable(&err) {
            Next::Retry(None)
        } else {
            Next::Fail
        };
        Self { err, next }
    }
}

impl From<RegistryError> for Failure {
    fn from(err: RegistryError) -> Self {
        Failure::transport(err)
    }
}

impl Client {
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        Self::with_role(config, auth::Role::Destination)
    }

    /// A client for `violet mirror`'s source: the same, but auth errors name the `--from-*` flags.
    pub fn mirror_source(config: RegistryConfig) -> Result<Self, RegistryError> {
        Self::with_role(config, auth::Role::MirrorSource)
    }

    fn with_role(config: RegistryConfig, role: auth::Role) -> Result<Self, RegistryError> {
        let scheme = if config.plain { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{}/", config.host))
            .ok()
            .filter(|u| u.path() == "/" && u.query().is_none() && u.username().is_empty())
            .ok_or_else(|| RegistryError::Config {
                registry: config.host.clone(),
                message: "not a registry host: expected host[:port] without scheme or path".into(),
            })?;
        let http = transport::build(&config)?;
        let auth = Auth::with_role(config.host.clone(), config.credentials.clone(), role);
        let chunk = AtomicU64::new(config.chunk_size.map_or(0, |c| c.max(1)));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                base,
                http,
                auth,
                chunk,
                probe: AtomicBool::new(true),
                quickest_answer: AtomicU64::new(u64::MAX),
            }),
        })
    }

    /// The host this client talks to, as given.
    pub fn host(&self) -> &str {
        &self.inner.config.host
    }

    /// The quickest `HEAD` or `GET` this client has had answered, if any: an upper bound of the
    /// round trip (it includes the registry's own time, and the handshake of a new connection).
    pub fn round_trip(&self) -> Option<Duration> {
        match self.inner.quickest_answer.load(Ordering::Relaxed) {
            u64::MAX => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    /// Attempts after the first for retriable failures (`--retries`); callers that restart a
    /// whole pass (a single-read source) spend the same budget.
    pub fn retries(&self) -> u32 {
        self.inner.config.retries
    }

    /// `GET /v2/`: checks reachability, TLS and credentials up front.
    pub async fn ping(&self) -> Result<(), RegistryError> {
        let ctx = Ctx {
            operation: "the API check",
            what: "/v2/".into(),
            access: None,
        };
        let url = self.url("v2/")?;
        self.retrying(async || {
            let resp = self
                .send(Method::GET, url.clone(), &[], &ctx, |rb| rb)
                .await?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap_or_default();
            // Go's TLS server answers plain HTTP with this 400 body.
            if self.inner.config.plain && String::from_utf8_lossy(&body).contains("HTTPS server") {
                return Err(Failure::fail(RegistryError::Tls {
                    registry: self.host().to_string(),
                    message: "the registry speaks TLS but --plain asked for plain HTTP".into(),
                    hint: Some("drop --plain".into()),
                }));
            }
            Err(self.refused(&ctx, status, &headers, &body))
        })
        .await
    }

    // ---- internals -------------------------------------------------------------------------

    fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.inner
            .base
            .join(path)
            .map_err(|e| RegistryError::Config {
                registry: self.host().into(),
                message: format!("cannot form a URL for {path}: {e}"),
            })
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}
