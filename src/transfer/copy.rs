//! Registry → registry: one image graph at a time (`mirror`). Blobs stream from the source's `GET`
//! straight into the destination's upload; nothing is staged on disk. The rules are the
//! scheduler's: a blob crosses the network once per run (the others mount it), manifests go
//! children first, the tag last over a complete graph, and the tag is read back for parity.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{Mutex, Semaphore};

use crate::digest::Digest;
use crate::error::{ExitCode, Fail};
use crate::outcome::{classify, one_line};
use crate::output::progress::Progress;
use crate::pull::{self, RemoteImage};
use crate::registry::{BlobStream, Client, RegistryError};

/// One image to copy: where it is read and where it goes.
#[derive(Debug, Clone)]
pub struct Request {
    pub source_repo: String,
    /// Tag or digest resolved at the source.
    pub source_ref: String,
    pub dest_repo: String,
    /// Tag set at the destination, last; `None` copies by digest only.
    pub tag: Option<String>,
    /// The digest the image must have (from `@digest` or the package).
    pub pinned: Option<Digest>,
}

#[derive(Debug, Default, Serialize)]
pub struct BlobCounts {
    pub uploaded: usize,
    pub mounted: usize,
    pub present: usize,
    pub bytes_uploaded: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Copied, and the destination resolves to the source's digest.
    Ok,
    /// The destination resolves to another digest after the copy.
    Mismatch,
    Failed,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReport {
    pub source: String,
    pub destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_digest: Option<Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_digest: Option<Digest>,
    pub manifests: usize,
    pub blobs: usize,
    pub size: u64,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failure's class, for the run's exit code.
    #[serde(skip)]
    pub code: Option<ExitCode>,
}

/// Shared state of one mirror run.
pub struct Copier {
    source: Client,
    dest: Client,
    /// Per blob digest: a destination repository known to hold it. Holding the cell's lock while
    /// the blob is ensured makes a blob shared by several images cross the network once; the
    /// others mount it.
    blobs: Mutex<HashMap<Digest, Arc<Mutex<Option<String>>>>>,
    transfers: Semaphore,
    /// Blob checks and transfers one image starts at once (`--jobs`).
    jobs: usize,
    /// `--retries`: how often a blob whose upload restarted is fetched again.
    retries: u32,
    uploaded: AtomicUsize,
    mounted: AtomicUsize,
    present: AtomicUsize,
    bytes: AtomicU64,
    /// Bytes read from the source for blobs that cross, as `push` counts bytes read from its
    /// packages.
    progress: Progress,
}

impl Copier {
    /// `jobs` bounds the blob transfers of all images together; `retries` is how often a blob
    /// whose upload restarted is fetched from the source again.
    pub fn new(source: Client, dest: Client, jobs: usize, retries: u32) -> Self {
        Self {
            source,
            dest,
            blobs: Mutex::new(HashMap::new()),
            transfers: Semaphore::new(jobs),
            jobs,
            retries,
            uploaded: AtomicUsize::new(0),
            mounted: AtomicUsize::new(0),
            present: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
            progress: Progress::hidden(),
        }
    }

    /// Reports the bytes read from the source to `progress` (its total grows by each blob that
    /// has to cross).
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }

    /// What the run moved so far.
    pub fn counts(&self) -> BlobCounts {
        BlobCounts {
            uploaded: self.uploaded.load(Ordering::Relaxed),
            mounted: self.mounted.load(Ordering::Relaxed),
            present: self.present.load(Ordering::Relaxed),
            bytes_uploaded: self.bytes.load(Ordering::Relaxed),
        }
    }

    /// Copies one image; a failure is recorded in the report (with its class), never returned,
    /// so one image does not stop the others.
    pub async fn copy(&self, req: &Request) -> ImageReport {
        let source_label = format!(
            "{}/{}:{}",
            self.source.host(),
            req.source_repo,
            req.source_ref
        )
        .replacen(":sha256:", "@sha256:", 1);
        let destination = match &req.tag {
            Some(t) => format!("{}/{}:{t}", self.dest.host(), req.dest_repo),
            None => format!("{}/{}@{}", self.dest.host(), req.dest_repo, req.source_ref),
        };
        let mut report = ImageReport {
            source: source_label,
            destination,
            source_digest: None,
            destination_digest: None,
            manifests: 0,
            blobs: 0,
            size: 0,
            status: Status::Failed,
            error: None,
            code: None,
        };
        match self.copy_image(req, &mut report).await {
            Ok(()) => {}
            Err(e) => {
                let (code, hint) = classify(&e);
                let mut msg = one_line(&e);
                if let Some(h) = hint {
                    msg.push_str(&format!(" (hint: {h})"));
                }
                report.error = Some(msg);
                report.code = Some(code);
                report.status = Status::Failed;
            }
        }
        report
    }

    async fn copy_image(&self, req: &Request, report: &mut ImageReport) -> anyhow::Result<()> {
        let image = pull::resolve(&self.source, &req.source_repo, &req.source_ref).await?;
        report.source_digest = Some(image.digest.clone());
        report.manifests = image.manifests.len();
        report.blobs = image.blobs.len();
        report.size = image.size();
        if let Some(pinned) = &req.pinned
            && *pinned != image.digest
        {
            return Err(Fail::new(
                ExitCode::Verify,
                format!(
                    "{} resolves to {} at the source, not {pinned}",
                    report.source, image.digest
                ),
            )
            .into());
        }
        let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(image.blobs.iter())
            .map(|(digest, size)| self.ensure_blob(&req.source_repo, &req.dest_repo, digest, *size))
            .buffer_unordered(self.jobs)
            .collect()
            .await;
        for r in results {
            r?;
        }
        self.put_manifests(req, &image).await?;
        // Parity: what the destination now serves for the tag (or digest), read back.
        let reference = req.tag.clone().unwrap_or_else(|| image.digest.to_string());
        let at_dest = self
            .dest
            .manifest_exists(&req.dest_repo, &reference)
            .await?;
        report.destination_digest = at_dest.clone();
        report.status = if at_dest.as_ref() == Some(&image.digest) {
            Status::Ok
        } else {
            Status::Mismatch
        };
        Ok(())
    }

    /// Children first, each by digest, so the registry never sees a manifest whose parts are
    /// missing; the tag moves last, once the whole graph is there.
    async fn put_manifests(&self, req: &Request, image: &RemoteImage) -> anyhow::Result<()> {
        for m in &image.manifests {
            if self
                .dest
                .manifest_exists(&req.dest_repo, m.digest.as_str())
                .await?
                .is_none()
            {
                self.dest
                    .put_manifest(
                        &req.dest_repo,
                        m.digest.as_str(),
                        &m.media_type,
                        m.bytes.clone(),
                    )
                    .await?;
            }
        }
        if let Some(tag) = &req.tag
            && self
                .dest
                .manifest_exists(&req.dest_repo, tag)
                .await?
                .as_ref()
                != Some(&image.digest)
            && let Some(top) = image.manifests.last()
        {
            self.dest
                .put_manifest(&req.dest_repo, tag, &top.media_type, top.bytes.clone())
                .await?;
        }
        Ok(())
    }

    async fn ensure_blob(
        &self,
        source_repo: &str,
        dest_repo: &str,
        digest: &Digest,
        size: u64,
    ) -> anyhow::Result<()> {
        let cell = self
            .blobs
            .lock()
            .await
            .entry(digest.clone())
            .or_default()
            .clone();
        let mut known = cell.lock().await;
        if known.as_deref() == Some(dest_repo) {
            return Ok(());
        }
        let _permit = self.transfers.acquire().await?;
        if self.dest.blob_exists(dest_repo, digest).await?.is_some() {
            self.present.fetch_add(1, Ordering::Relaxed);
        } else if let Some(from) = known.as_deref()
            && self.dest.mount_blob(dest_repo, from, digest).await?
        {
            self.mounted.fetch_add(1, Ordering::Relaxed);
        } else {
            self.progress.grow(size);
            self.upload_from_source(source_repo, dest_repo, digest, size)
                .await?;
            self.uploaded.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(size, Ordering::Relaxed);
        }
        *known = Some(dest_repo.to_string());
        Ok(())
    }

    /// Streams one blob from the source's `GET` into the destination's upload. The client may
    /// need to restart an upload (a reset, a 5xx) and a `GET` body can be read only once, so the
    /// opener hands out the opened body once; a restart ends in `SourceNotRewindable`, and the
    /// blob is fetched and sent again here, within the same retry budget.
    async fn upload_from_source(
        &self,
        source_repo: &str,
        dest_repo: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<(), RegistryError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let opened = self.source.get_blob(source_repo, digest).await?;
            let (host, repo) = (self.source.host().to_string(), source_repo.to_string());
            // Each attempt's body starts at byte 0; bytes read before by an earlier attempt count
            // as read again, not as progress.
            let (progress, key, read) =
                (self.progress.clone(), digest.to_string(), AtomicU64::new(0));
            // A source `GET` that breaks off resumes where it stopped; bad bytes end the body with
            // an error naming the source, so the destination never commits them.
            let body = pull::download(
                self.source.clone(),
                source_repo.to_string(),
                digest.clone(),
                size,
                self.retries,
                opened,
            )
            .map(move |r| {
                if let Ok(chunk) = &r {
                    let n = chunk.len() as u64;
                    progress.read(&key, read.fetch_add(n, Ordering::Relaxed), n);
                }
                r.map_err(|e| match e.kind() {
                    std::io::ErrorKind::InvalidData => {
                        std::io::Error::new(e.kind(), format!("blob from {host}/{repo}: {e}"))
                    }
                    _ => e,
                })
            });
            let body = std::sync::Mutex::new(Some(Box::pin(body) as BlobStream));
            let open = || -> std::io::Result<BlobStream> {
                body.lock()
                    .ok()
                    .and_then(|mut b| b.take())
                    .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::Unsupported))
            };
            match self
                .dest
                .upload_blob(dest_repo, digest, size, &open, &|_| {})
                .await
            {
                Err(RegistryError::SourceNotRewindable { .. }) if attempt <= self.retries => {
                    tracing::debug!(%digest, dest_repo, attempt, "upload restarts; fetching the blob again");
                }
                other => return other,
            }
        }
    }
}
