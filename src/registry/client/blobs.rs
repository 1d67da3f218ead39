//! Blob operations: existence, cross-repository mount, upload (the strategies are in `upload.rs`)
//! and the download stream that resumes with `Range` and ends a stalled read.

use super::*;

impl Client {
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
        self.upload(repo, digest, size, open, progress, false)
            .await
            .map(|_| ())
    }

    /// [`Self::upload_blob`], unless `repo` already holds the blob: the session is opened with a
    /// mount of the digest from `repo` itself, which a registry answers with 201 when the blob is
    /// there and with an upload session (202) when it is not. One request replaces the `HEAD` a
    /// check would cost, and the body is not opened when nothing needs sending. A registry that
    /// refuses such a mount is asked plainly from then on.
    pub async fn upload_blob_unless_present(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        open: BlobOpener<'_>,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<BlobOutcome, RegistryError> {
        self.upload(repo, digest, size, open, progress, true).await
    }

    async fn upload(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        open: BlobOpener<'_>,
        progress: &(dyn Fn(u64) + Send + Sync),
        probe: bool,
    ) -> Result<BlobOutcome, RegistryError> {
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
            let probe = probe && self.inner.probe.load(Ordering::Relaxed);
            // Opened once the session is: a body read ahead while the POST makes its round trip
            // would only hold memory. (A `Failure` is large, as everywhere in this client.)
            #[allow(clippy::result_large_err)]
            let mut open_source = || {
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
                Ok(Source::new(stream, size, progress))
            };
            let r = self
                .upload_once(repo, digest, &scopes, &ctx, &mut open_source, probe)
                .await;
            if let Err(f) = &r {
                last = Some(f.err.clone());
            }
            r
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

    pub(super) fn source_error(
        &self,
        repo: &str,
        digest: &Digest,
        message: String,
    ) -> RegistryError {
        RegistryError::Source {
            registry: self.host().into(),
            repository: repo.into(),
            digest: digest.to_string(),
            message,
        }
    }
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
