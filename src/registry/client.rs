//! Blob and manifest operations against one registry host.

use std::path::PathBuf;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;

use crate::digest::Digest;
use crate::registry::RegistryError;

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
    Basic { username: String, password: String },
    /// A docker `identitytoken` (OAuth2 refresh token), exchanged with `POST /token`.
    IdentityToken { username: String, token: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::IdentityToken { username, .. } => write!(f, "IdentityToken({username}, <redacted>)"),
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

/// A registry client; cheap to clone (shared connection pool and token cache).
#[derive(Clone)]
pub struct Client {
    _private: (),
}

impl Client {
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        let _ = config;
        todo!("registry client")
    }

    /// The host this client talks to, as given.
    pub fn host(&self) -> &str {
        todo!("registry client")
    }

    /// `GET /v2/`: checks reachability, TLS and credentials up front.
    pub async fn ping(&self) -> Result<(), RegistryError> {
        todo!("registry client")
    }

    /// `HEAD /v2/<repo>/blobs/<digest>`: the size when present.
    pub async fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        let _ = (repo, digest);
        todo!("registry client")
    }

    /// Cross-repository mount; `Ok(false)` when the registry declined (202) — then upload.
    pub async fn mount_blob(&self, repo: &str, from: &str, digest: &Digest) -> Result<bool, RegistryError> {
        let _ = (repo, from, digest);
        todo!("registry client")
    }

    /// Uploads a blob (monolithic streamed PUT, or chunked PATCHes when forced or required).
    pub async fn upload_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        open: BlobOpener<'_>,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), RegistryError> {
        let _ = (repo, digest, size, open, progress);
        todo!("registry client")
    }

    /// `HEAD /v2/<repo>/manifests/<reference>`: digest when present.
    pub async fn manifest_exists(&self, repo: &str, reference: &str) -> Result<Option<Digest>, RegistryError> {
        let _ = (repo, reference);
        todo!("registry client")
    }

    /// `GET /v2/<repo>/manifests/<reference>`: (media type, raw bytes, digest).
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<(String, Bytes, Digest), RegistryError> {
        let _ = (repo, reference);
        todo!("registry client")
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with the raw bytes; returns the digest the registry reports.
    pub async fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: Bytes) -> Result<Digest, RegistryError> {
        let _ = (repo, reference, media_type, bytes);
        todo!("registry client")
    }

    /// `GET /v2/<repo>/blobs/<digest>` as a stream (for pulls: create, package, mirror).
    pub async fn get_blob(&self, repo: &str, digest: &Digest) -> Result<BlobStream, RegistryError> {
        let _ = (repo, digest);
        todo!("registry client")
    }
}
