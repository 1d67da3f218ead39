//! Blob and manifest operations against one registry host.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

mod request;
mod upload;
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

/// What `upload_blob` / `ensure_blob` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    Uploaded,
    Mounted,
    Present,
}

/// Default PATCH size when chunked uploads are used without `--chunk-size`.
pub const DEFAULT_CHUNK_SIZE: u64 = 16 * 1024 * 1024;
/// GHCR answers 416 to larger PATCH requests; the fallback size after such a refusal.
const SMALL_CHUNK_SIZE: u64 = 4 * 1024 * 1024;

/// Every manifest type we push or read; HEAD and GET must list them or registries convert or 404.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// A registry client; cheap to clone (shared connection pool and token cache).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: RegistryConfig,
    base: Url,
    http: reqwest::Client,
    auth: Auth,
    /// The learned upload profile: 0 = monolithic works, otherwise the PATCH size to use.
    /// Learned once per client (= per registry) so later blobs skip the failing attempt.
    chunk: AtomicU64,
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
            }),
        })
    }

    /// The host this client talks to, as given.
    pub fn host(&self) -> &str {
        &self.inner.config.host
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

    /// `HEAD /v2/<repo>/blobs/<digest>`: the size when present.
    pub async fn blob_exists(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let ctx = Ctx {
            operation: "the check of",
            what: format!("blob {digest} in {repo}"),
            access: Some((repo.into(), "pull")),
        };
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"))?;
        let scopes = [auth::repo_scope(repo, "pull")];
        self.retrying(async || {
            let resp = self
                .send(Method::HEAD, url.clone(), &scopes, &ctx, |rb| rb)
                .await?;
            match resp.status() {
                StatusCode::OK => Ok(Some(
                    header_u64(resp.headers(), CONTENT_LENGTH.as_str()).unwrap_or(0),
                )),
                StatusCode::NOT_FOUND => Ok(None),
                s => Err(self.refused(&ctx, s, &resp.headers().clone(), &[])),
            }
        })
        .await
    }

    /// Cross-repository mount; `Ok(false)` when the registry declined (202) — then upload.
    pub async fn mount_blob(
        &self,
        repo: &str,
        from: &str,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let ctx = Ctx {
            operation: "the mount of",
            what: format!("blob {digest} from {from} into {repo}"),
            access: Some((repo.into(), "pull,push")),
        };
        let mut url = self.url(&format!("v2/{repo}/blobs/uploads/"))?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", from);
        // The token must also grant pull on the source, or token registries refuse the mount.
        let scopes = [
            auth::repo_scope(repo, "pull,push"),
            auth::repo_scope(from, "pull"),
        ];
        let result = self
            .retrying(async || {
                let resp = self
                    .send(Method::POST, url.clone(), &scopes, &ctx, |rb| {
                        rb.header(CONTENT_LENGTH, 0)
                    })
                    .await?;
                match resp.status() {
                    StatusCode::CREATED => Ok(true),
                    StatusCode::ACCEPTED => {
                        // The registry opened an upload session instead; nobody will use it.
                        if let Some(loc) = self.location(resp.headers()) {
                            self.cancel(loc, &scopes).await;
                        }
                        Ok(false)
                    }
                    s => Err(self.refused(
                        &ctx,
                        s,
                        &resp.headers().clone(),
                        &resp.bytes().await.unwrap_or_default(),
                    )),
                }
            })
            .await;
        match result {
            // Registries refuse mounts from repositories the user cannot read (Harbor: unknown
            // project). A mount is only a shortcut, so the upload decides.
            Err(RegistryError::Auth { status, .. })
            | Err(RegistryError::Remote {
                status: status @ 404,
                ..
            }) => {
                tracing::debug!(registry = self.host(), repo, from, %digest, status, "mount refused; will upload");
                Ok(false)
            }
            other => other,
        }
    }

    /// Uploads a blob (monolithic streamed PUT, or chunked PATCHes when forced or required).
    /// `progress` gets the bytes sent so far in the current attempt, and 0 when an attempt starts.
    pub async fn upload_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        open: BlobOpener<'_>,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), RegistryError> {
        let ctx = Ctx {
            operation: "the upload of",
            what: format!("blob {digest} to {repo}"),
            access: Some((repo.into(), "pull,push")),
        };
        let scopes = [auth::repo_scope(repo, "pull,push")];
        let mut opened = 0u32;
        // The failure that made the last attempt restart: what the user is told if the source
        // cannot be reopened.
        let mut last: Option<RegistryError> = None;
        self.retrying(async || {
            opened += 1;
            let stream = open().map_err(|e| {
                let err = if e.kind() == io::ErrorKind::Unsupported && opened > 1 {
                    RegistryError::SourceNotRewindable {
                        registry: self.host().into(),
                        repository: repo.into(),
                        digest: digest.to_string(),
                        cause: Box::new(last.take().unwrap_or_else(|| RegistryError::Other {
                            registry: self.host().into(),
                            message: format!(
                                "the upload of blob {digest} to {repo} had to restart"
                            ),
                        })),
                    }
                } else {
                    self.source_error(repo, digest, format!("cannot open the blob: {e}"))
                };
                Failure::fail(err)
            })?;
            // A new attempt: callers counting bytes sent tell a restart from progress by this.
            progress(0);
            let mut source = Source::new(stream, size, progress);
            let r = self
                .upload_once(repo, digest, &scopes, &ctx, &mut source)
                .await;
            if let Err(f) = &r {
                last = Some(f.err.clone());
            }
            r
        })
        .await
    }

    /// `HEAD /v2/<repo>/manifests/<reference>`: digest when present.
    pub async fn manifest_exists(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Digest>, RegistryError> {
        let ctx = self.manifest_ctx("the check of", repo, reference, "pull");
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"))?;
        let scopes = [auth::repo_scope(repo, "pull")];
        let found = self
            .retrying(async || {
                let resp = self
                    .send(Method::HEAD, url.clone(), &scopes, &ctx, |rb| {
                        rb.header(ACCEPT, MANIFEST_ACCEPT)
                    })
                    .await?;
                match resp.status() {
                    StatusCode::OK => Ok(Some(header_digest(resp.headers()))),
                    StatusCode::NOT_FOUND => Ok(None),
                    s => Err(self.refused(&ctx, s, &resp.headers().clone(), &[])),
                }
            })
            .await?;
        match found {
            Some(Some(d)) => Ok(Some(d)),
            // No Docker-Content-Digest on HEAD (some proxies strip it): hash the body instead.
            Some(None) => Ok(Some(self.get_manifest(repo, reference).await?.2)),
            None => Ok(None),
        }
    }

    /// `GET /v2/<repo>/manifests/<reference>`: (media type, raw bytes, digest).
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(String, Bytes, Digest), RegistryError> {
        let ctx = self.manifest_ctx("the download of", repo, reference, "pull");
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"))?;
        let scopes = [auth::repo_scope(repo, "pull")];
        let (media_type, bytes) = self
            .retrying(async || {
                let resp = self
                    .send(Method::GET, url.clone(), &scopes, &ctx, |rb| {
                        rb.header(ACCEPT, MANIFEST_ACCEPT)
                    })
                    .await?;
                let status = resp.status();
                let headers = resp.headers().clone();
                let body = resp
                    .bytes()
                    .await
                    .map_err(|e| transport::classify(self.host(), &e, self.inner.config.plain))?;
                if status != StatusCode::OK {
                    return Err(self.refused(&ctx, status, &headers, &body));
                }
                let media_type = headers
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
                    .unwrap_or_default();
                Ok((media_type, body))
            })
            .await?;
        let digest = Digest::of(&bytes);
        if let Ok(wanted) = Digest::parse(reference)
            && wanted != digest
        {
            return Err(RegistryError::Protocol {
                registry: self.host().into(),
                operation: "the download of",
                what: ctx.what,
                message: format!("the bytes hash to {digest}"),
            });
        }
        Ok((media_type, bytes, digest))
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with the raw bytes; returns the digest the registry reports.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest, RegistryError> {
        let ctx = self.manifest_ctx("the push of", repo, reference, "pull,push");
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"))?;
        let scopes = [auth::repo_scope(repo, "pull,push")];
        self.retrying(async || {
            let resp = self
                .send(Method::PUT, url.clone(), &scopes, &ctx, |rb| {
                    rb.header(CONTENT_TYPE, media_type)
                        .header(CONTENT_LENGTH, bytes.len())
                        .body(bytes.clone())
                })
                .await?;
            let status = resp.status();
            if status.is_success() {
                return Ok(header_digest(resp.headers()).unwrap_or_else(|| Digest::of(&bytes)));
            }
            let headers = resp.headers().clone();
            Err(self.refused(
                &ctx,
                status,
                &headers,
                &resp.bytes().await.unwrap_or_default(),
            ))
        })
        .await
    }

    /// `GET /v2/<repo>/blobs/<digest>` as a stream (for pulls: create, package, mirror).
    pub async fn get_blob(&self, repo: &str, digest: &Digest) -> Result<BlobStream, RegistryError> {
        self.get_blob_from(repo, digest, 0).await
    }

    /// The blob's bytes from `offset` on: `Range: bytes=<offset>-`, to resume a download that broke
    /// off. A registry that ignores the range (200 instead of 206) is served too: the first
    /// `offset` bytes of its answer are skipped.
    pub async fn get_blob_from(
        &self,
        repo: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<BlobStream, RegistryError> {
        let ctx = Ctx {
            operation: "the download of",
            what: format!("blob {digest} from {repo}"),
            access: Some((repo.into(), "pull")),
        };
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"))?;
        let scopes = [auth::repo_scope(repo, "pull")];
        let resp = self
            .retrying(async || {
                let resp = self
                    .send(Method::GET, url.clone(), &scopes, &ctx, |rb| {
                        if offset > 0 {
                            rb.header(reqwest::header::RANGE, format!("bytes={offset}-"))
                        } else {
                            rb
                        }
                    })
                    .await?;
                let ranged = offset > 0 && resp.status() == StatusCode::PARTIAL_CONTENT;
                if resp.status() != StatusCode::OK && !ranged {
                    let (s, h) = (resp.status(), resp.headers().clone());
                    return Err(self.refused(&ctx, s, &h, &resp.bytes().await.unwrap_or_default()));
                }
                Ok(resp)
            })
            .await?;
        let host = self.host().to_string();
        let skip = if resp.status() == StatusCode::OK {
            offset
        } else {
            0
        };
        let body = skip_bytes(resp.bytes_stream(), skip);
        // A stalled download must end rather than hang: each read gets the idle timeout.
        let stream = futures_util::stream::unfold((body, host), |(mut body, host)| async move {
            match tokio::time::timeout(IDLE_TIMEOUT, body.next()).await {
                Ok(Some(Ok(b))) => Some((Ok(b), (body, host))),
                Ok(Some(Err(e))) => Some((
                    Err(io::Error::other(transport::classify(&host, &e, false))),
                    (body, host),
                )),
                Ok(None) => None,
                Err(_) => Some((
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("registry {host} stopped sending"),
                    )),
                    (body, host),
                )),
            }
        });
        Ok(Box::pin(stream))
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

    fn manifest_ctx(
        &self,
        operation: &'static str,
        repo: &str,
        reference: &str,
        actions: &'static str,
    ) -> Ctx {
        let sep = if reference.contains(':') { '@' } else { ':' };
        Ctx {
            operation,
            what: format!("manifest {repo}{sep}{reference}"),
            access: Some((repo.into(), actions)),
        }
    }

    fn source_error(&self, repo: &str, digest: &Digest, message: String) -> RegistryError {
        RegistryError::Source {
            registry: self.host().into(),
            repository: repo.into(),
            digest: digest.to_string(),
            message,
        }
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn header_digest(headers: &HeaderMap) -> Option<Digest> {
    Digest::parse(headers.get("docker-content-digest")?.to_str().ok()?.trim()).ok()
}

/// Drops the first `skip` bytes of a body (a registry that answered a range request in full).
fn skip_bytes(
    body: impl futures_util::Stream<Item = reqwest::Result<Bytes>> + Send + Unpin + 'static,
    skip: u64,
) -> impl futures_util::Stream<Item = reqwest::Result<Bytes>> + Send + Unpin + 'static {
    futures_util::stream::unfold((body, skip), |(mut body, mut skip)| async move {
        loop {
            match body.next().await? {
                Ok(mut chunk) if skip > 0 => {
                    let n = skip.min(chunk.len() as u64);
                    skip -= n;
                    let _ = chunk.split_to(n as usize);
                    if !chunk.is_empty() {
                        return Some((Ok(chunk), (body, skip)));
                    }
                }
                item => return Some((item, (body, skip))),
            }
        }
    })
    .boxed()
}
