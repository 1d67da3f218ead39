//! Where a run reads a blob's bytes: an entry of a package, or a repository of a source registry.
//! Every engine path opens its blob bodies here (`push` from packages, `mirror` from a registry,
//! `package`/`create` into the writer), and every body is checked against the blob's digest and
//! size on the way, so no sink commits wrong bytes. (A package entry bound for a registry is only
//! counted here: the registry checks its digest, see [`Check`].)
//!
//! A blob behind a decompressor has no [`Origin`] that opens it alone: the scheduler reads it in
//! one sequential pass over its package (`body::stream_pass`).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;

pub use super::body::Check;
use super::body::{entry_label, spawn_reader};
use crate::digest::Digest;
use crate::output::progress::Progress;
use crate::package::{self, BlobLocation, Package};
use crate::registry::{BlobStream, Client, RegistryError};

/// One place a blob can be read from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// An entry of a package (`package` indexes the plan's packages, for per-package reports).
    Package {
        package: usize,
        pkg: Arc<Package>,
        location: BlobLocation,
    },
    /// A repository of a source registry.
    Registry { client: Client, repository: String },
}

impl Origin {
    /// Whether the blob can be read on its own, again for a retry (an uncompressed package, a
    /// directory, a registry); otherwise only a pass over its package gives it.
    pub fn random_access(&self) -> bool {
        match self {
            Origin::Package { pkg, .. } => pkg.container.random_access(),
            Origin::Registry { .. } => true,
        }
    }

    /// The plan's package index, for a blob read from a package.
    pub fn package(&self) -> Option<usize> {
        match self {
            Origin::Package { package, .. } => Some(*package),
            Origin::Registry { .. } => None,
        }
    }

    /// What an error names as the blob's source: the package entry, or `host/repository`.
    pub fn label(&self) -> String {
        match self {
            Origin::Package { pkg, location, .. } => entry_label(pkg, location),
            Origin::Registry { client, repository } => format!("{}/{repository}", client.host()),
        }
    }

    /// Starts reading at the source where that can fail with a typed answer before any byte:
    /// a registry's `GET` (a 404 or a 401 is the source's refusal, with its own exit code, not a
    /// broken body). Hand the result to the first [`Self::open`].
    pub async fn prepare(&self, digest: &Digest) -> Result<Option<BlobStream>, RegistryError> {
        match self {
            Origin::Package { .. } => Ok(None),
            Origin::Registry { client, repository } => {
                client.get_blob(repository, digest).await.map(Some)
            }
        }
    }

    /// A body of the whole blob, checked against `digest` and `size` (a mismatch ends it with an
    /// `InvalidData` error naming the source; a package entry against its digest only under
    /// [`Check::Digest`]). Each call reads again from the first byte; `first` is an already
    /// started read ([`Self::prepare`]). Bytes read count on `progress`, a re-read only past the
    /// point reached before. A registry download that breaks off resumes with `Range` from the
    /// byte reached, `retries` times in a row without progress.
    pub fn open(
        &self,
        digest: &Digest,
        size: u64,
        progress: Progress,
        first: Option<BlobStream>,
        check: Check,
    ) -> io::Result<BlobStream> {
        match self {
            Origin::Package { pkg, location, .. } => {
                let reader = package::blobs::open(pkg, location)
                    .map_err(|e| io::Error::other(e.to_string()))?
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::Unsupported, "blob is not randomly readable")
                    })?;
                Ok(spawn_reader(
                    reader,
                    digest.clone(),
                    size,
                    entry_label(pkg, location),
                    progress,
                    check,
                ))
            }
            Origin::Registry { client, repository } => {
                let body = super::pull::download(
                    client.clone(),
                    repository.clone(),
                    digest.clone(),
                    size,
                    client.retries(),
                    first,
                );
                let label = self.label();
                let (key, read) = (digest.to_string(), AtomicU64::new(0));
                Ok(Box::pin(body.map(move |r| {
                    if let Ok(chunk) = &r {
                        let n = chunk.len() as u64;
                        progress.read(&key, read.fetch_add(n, Ordering::Relaxed), n);
                    }
                    // Bad bytes name where they came from; the sink then refuses to commit them.
                    r.map_err(|e| match e.kind() {
                        io::ErrorKind::InvalidData => {
                            io::Error::new(e.kind(), format!("blob from {label}: {e}"))
                        }
                        _ => e,
                    })
                })))
            }
        }
    }
}
