//! How a blob's bytes reach the registry once a session is open: one streamed PUT, or PATCH
//! chunks (forced, or after a 413/416), and the pump that feeds a body from a blob stream while
//! checking its length and digest.

use super::*;

impl Client {
    /// One attempt: open a session (with `probe`, by a mount from `repo` itself, which ends the
    /// attempt when the blob is already there), then open the source and send the bytes the way
    /// the profile says.
    pub(super) async fn upload_once<'p>(
        &self,
        repo: &str,
        digest: &Digest,
        scopes: &[String],
        ctx: &Ctx,
        open_source: &mut dyn FnMut() -> Result<Source<'p>, Failure>,
        probe: bool,
    ) -> Result<BlobOutcome, Failure> {
        let start = self.url(&format!("v2/{repo}/blobs/uploads/"))?;
        let mut resp = None;
        if probe {
            let mut url = start.clone();
            url.query_pairs_mut()
                .append_pair("mount", digest.as_str())
                .append_pair("from", repo);
            let r = self
                .send(Method::POST, url, scopes, ctx, |rb| {
                    rb.header(CONTENT_LENGTH, 0)
                })
                .await?;
            match r.status() {
                StatusCode::CREATED => return Ok(BlobOutcome::Present),
                StatusCode::ACCEPTED => resp = Some(r),
                // A registry that does not take a mount here (the spec lets it decline with
                // 202, but some answer with an error): ask plainly, now and from then on.
                s @ (StatusCode::BAD_REQUEST
                | StatusCode::FORBIDDEN
                | StatusCode::NOT_FOUND
                | StatusCode::METHOD_NOT_ALLOWED) => {
                    tracing::info!(
                        registry = self.host(),
                        status = s.as_u16(),
                        "the registry refused a mount from the blob's own repository; uploads open plain sessions"
                    );
                    self.inner.probe.store(false, Ordering::Relaxed);
                }
                _ => resp = Some(r),
            }
        }
        let resp = match resp {
            Some(r) => r,
            None => {
                self.send(Method::POST, start, scopes, ctx, |rb| {
                    rb.header(CONTENT_LENGTH, 0)
                })
                .await?
            }
        };
        if resp.status() != StatusCode::ACCEPTED {
            let (s, h) = (resp.status(), resp.headers().clone());
            return Err(self.refused(ctx, s, &h, &resp.bytes().await.unwrap_or_default()));
        }
        let session = self
            .location(resp.headers())
            .ok_or_else(|| self.no_location(ctx))?;
        let min_chunk = header_u64(resp.headers(), "oci-chunk-min-length").unwrap_or(0);
        let mut source = match open_source() {
            Ok(source) => source,
            Err(f) => {
                self.cancel(session, scopes).await;
                return Err(f);
            }
        };
        let chunk = self.inner.chunk.load(Ordering::Relaxed);
        if chunk == 0 {
            self.put_monolithic(session, digest, scopes, ctx, &mut source, repo)
                .await?;
        } else {
            self.put_chunked(
                session,
                digest,
                scopes,
                ctx,
                &mut source,
                repo,
                chunk.max(min_chunk),
            )
            .await?;
        }
        Ok(BlobOutcome::Uploaded)
    }

    async fn put_monolithic(
        &self,
        session: Url,
        digest: &Digest,
        scopes: &[String],
        ctx: &Ctx,
        source: &mut Source<'_>,
        repo: &str,
    ) -> Result<(), Failure> {
        let mut url = session.clone();
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let size = source.size;
        let resp = self
            .send_streamed(
                Method::PUT,
                url,
                scopes,
                ctx,
                source,
                size,
                repo,
                digest,
                |rb| {
                    rb.header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, size)
                },
            )
            .await?;
        let status = resp.status();
        if status == StatusCode::CREATED
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::OK
        {
            return Ok(());
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE || status == StatusCode::RANGE_NOT_SATISFIABLE {
            tracing::info!(
                registry = self.host(),
                status = status.as_u16(),
                "monolithic upload refused; switching to chunked uploads"
            );
            let _ = self.inner.chunk.compare_exchange(
                0,
                DEFAULT_CHUNK_SIZE,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            self.cancel(session, scopes).await;
            return Err(Failure {
                err: self.refused(ctx, status, &HeaderMap::new(), &[]).err,
                next: Next::Restart,
            });
        }
        let h = resp.headers().clone();
        let body = resp.bytes().await.unwrap_or_default();
        Err(self.refused_commit(ctx, status, &h, &body, repo, digest))
    }

    /// The registry's refusal of the `PUT` that commits an upload. `DIGEST_INVALID` is its
    /// digest check failing: the bytes sent are not the blob's, which is the source's fault (a
    /// damaged package entry), not the registry's, and retrying would send the same bytes.
    fn refused_commit(
        &self,
        ctx: &Ctx,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        repo: &str,
        digest: &Digest,
    ) -> Failure {
        let refused = self.refused(ctx, status, headers, body);
        match &refused.err {
            RegistryError::Remote { detail, .. }
                if detail.code.as_deref() == Some("DIGEST_INVALID") =>
            {
                Failure::fail(self.source_error(
                    repo,
                    digest,
                    "the registry's digest check refused the bytes sent (DIGEST_INVALID): the copy they were read from is damaged; `violet verify` checks every entry of a package".into(),
                ))
            }
            _ => refused,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn put_chunked(
        &self,
        mut session: Url,
        digest: &Digest,
        scopes: &[String],
        ctx: &Ctx,
        source: &mut Source<'_>,
        repo: &str,
        chunk: u64,
    ) -> Result<(), Failure> {
        while source.sent < source.size {
            let start = source.sent;
            let len = chunk.min(source.size - start);
            let range = format!("{start}-{}", start + len - 1);
            let resp = self
                .send_streamed(
                    Method::PATCH,
                    session.clone(),
                    scopes,
                    ctx,
                    source,
                    len,
                    repo,
                    digest,
                    |rb| {
                        rb.header(CONTENT_TYPE, "application/octet-stream")
                            .header(CONTENT_LENGTH, len)
                            .header("Content-Range", range.clone())
                    },
                )
                .await?;
            let status = resp.status();
            if status == StatusCode::RANGE_NOT_SATISFIABLE && chunk > SMALL_CHUNK_SIZE {
                tracing::info!(
                    registry = self.host(),
                    "chunk refused with 416; using 4 MiB chunks"
                );
                self.inner.chunk.store(SMALL_CHUNK_SIZE, Ordering::Relaxed);
                self.cancel(session, scopes).await;
                return Err(Failure {
                    err: self.refused(ctx, status, &HeaderMap::new(), &[]).err,
                    next: Next::Restart,
                });
            }
            if status != StatusCode::ACCEPTED && status != StatusCode::NO_CONTENT {
                let h = resp.headers().clone();
                return Err(self.refused(ctx, status, &h, &resp.bytes().await.unwrap_or_default()));
            }
            // Each PATCH must go to the latest Location: its state carries the offset.
            session = self
                .location(resp.headers())
                .ok_or_else(|| self.no_location(ctx))?;
        }
        source
            .check_eof()
            .await
            .map_err(|m| Failure::fail(self.source_error(repo, digest, m)))?;
        let mut url = session;
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let resp = self
            .send(Method::PUT, url, scopes, ctx, |rb| {
                rb.header(CONTENT_LENGTH, 0)
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED | StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            s => {
                let h = resp.headers().clone();
                let body = resp.bytes().await.unwrap_or_default();
                Err(self.refused_commit(ctx, s, &h, &body, repo, digest))
            }
        }
    }

    fn no_location(&self, ctx: &Ctx) -> Failure {
        Failure::fail(RegistryError::Protocol {
            registry: self.host().into(),
            operation: ctx.operation,
            what: ctx.what.clone(),
            message: "an upload answer has no usable Location header".into(),
        })
    }

    /// Sends `len` bytes of `source` as the body. The body cannot be replayed, so a 401 asks the
    /// caller to restart the upload with a fresh token instead of resending here.
    #[allow(clippy::too_many_arguments)]
    async fn send_streamed(
        &self,
        method: Method,
        url: Url,
        scopes: &[String],
        ctx: &Ctx,
        source: &mut Source<'_>,
        len: u64,
        repo: &str,
        digest: &Digest,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, Failure> {
        let mut rb = build(self.inner.http.request(method.clone(), url.clone()));
        let authorization = self.authorization(&url, scopes).await?;
        tracing::trace!(method = %method, path = url.path(), credentials = authorization.is_some(), "registry request with a streamed body");
        if let Some(h) = authorization {
            rb = rb.header(reqwest::header::AUTHORIZATION, h);
        }
        // A channel between our reader and reqwest lets the progress callback (not 'static) run
        // here rather than inside the body. One slot: the reader's own queue is the buffer, and a
        // chunk more here is 256 KiB more per upload in flight.
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(1);
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let rb = rb.body(reqwest::Body::wrap_stream(body));
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let request = async move {
            let mut send = std::pin::pin!(rb.send());
            tokio::select! {
                r = &mut send => Some(r),
                _ = done_rx => tokio::time::timeout(IDLE_TIMEOUT, send).await.ok(),
            }
        };
        let pump = async {
            let r = source.pump(&tx, len).await;
            drop(tx);
            let _ = done_tx.send(());
            r
        };
        let (resp, pumped) = tokio::join!(request, pump);
        if let Err(PumpError::Source(message)) = pumped {
            return Err(Failure::fail(self.source_error(repo, digest, message)));
        }
        let stalled = || {
            Failure::transport(RegistryError::Network {
                registry: self.host().into(),
                message: format!(
                    "{} {} made no progress for {} s",
                    ctx.operation,
                    ctx.what,
                    IDLE_TIMEOUT.as_secs()
                ),
                hint: None,
            })
        };
        if let Err(PumpError::Stalled) = pumped {
            return Err(stalled());
        }
        let resp = match resp {
            None => return Err(stalled()),
            Some(r) => r.map_err(|e| self.transport_failure(&e))?,
        };
        tracing::debug!(method = %method, path = url.path(), status = resp.status().as_u16(), "registry answer");
        if resp.status() == StatusCode::UNAUTHORIZED
            && self.same_origin(&url)
            && self.inner.auth.learn(resp.headers())
        {
            self.inner.auth.invalidate(scopes);
            let h = resp.headers().clone();
            let err = self.auth_error(
                ctx,
                StatusCode::UNAUTHORIZED,
                &h,
                &resp.bytes().await.unwrap_or_default(),
            );
            return Err(Failure {
                err,
                next: Next::Reauth,
            });
        }
        if let Some(f) = self.foreign_refusal(&url, resp.status(), ctx) {
            return Err(f);
        }
        self.check_status(resp, ctx).await
    }

    /// A 401/403 from another origin (an upload `Location` elsewhere) is not the user's
    /// credentials being wrong: none were sent there. Says so, and what usually causes it.
    pub(super) fn foreign_refusal(
        &self,
        url: &Url,
        status: StatusCode,
        ctx: &Ctx,
    ) -> Option<Failure> {
        if self.same_origin(url)
            || (status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN)
        {
            return None;
        }
        let other = match (url.host_str(), url.port_or_known_default()) {
            (Some(h), Some(p)) => format!("{}://{h}:{p}", url.scheme()),
            _ => url.scheme().to_string(),
        };
        Some(Failure::fail(RegistryError::Auth {
            registry: self.host().into(),
            repository: ctx.access.as_ref().map(|(r, _)| r.clone()),
            status: status.as_u16(),
            message: format!(
                "registry {} sent {} {} to {other}, another origin, which answered HTTP {}: credentials are only sent to {} itself",
                self.host(),
                ctx.operation,
                ctx.what,
                status.as_u16(),
                self.host()
            ),
            hint: Some(format!(
                "the registry's external URL setting probably names another host, port or scheme (Harbor externalURL, distribution http.host): make it the address violet uses, {}",
                self.host()
            )),
        }))
    }
}

enum PumpError {
    /// The source failed or had the wrong length; the request was aborted.
    Source(String),
    /// The registry stopped accepting bytes.
    Stalled,
}

/// A blob's bytes being sent: a read position over the caller's stream across requests
/// (one PUT, or several PATCHes).
pub(super) struct Source<'a> {
    stream: BlobStream,
    /// Bytes read past the end of the previous request's range.
    pending: Option<Bytes>,
    sent: u64,
    size: u64,
    eof_checked: bool,
    progress: &'a (dyn Fn(u64) + Send + Sync),
}

impl<'a> Source<'a> {
    /// A fresh read of the blob, for one upload attempt.
    pub(super) fn new(
        stream: BlobStream,
        size: u64,
        progress: &'a (dyn Fn(u64) + Send + Sync),
    ) -> Self {
        Self {
            stream,
            pending: None,
            sent: 0,
            size,
            eof_checked: false,
            progress,
        }
    }

    /// Forwards the next `len` bytes into `tx`. Before the blob's last byte goes out, the source
    /// must end: an error there (the caller's digest check) aborts the request, so the registry
    /// never sees a complete body and never commits the blob.
    async fn pump(
        &mut self,
        tx: &mpsc::Sender<io::Result<Bytes>>,
        len: u64,
    ) -> Result<(), PumpError> {
        let end = self.sent + len;
        while self.sent < end {
            let mut piece = match self.pending.take() {
                Some(b) => b,
                None => match self.stream.next().await {
                    Some(Ok(b)) => b,
                    Some(Err(e)) => return Err(abort(tx, e.to_string()).await),
                    None => {
                        let m =
                            format!("the blob ended after {} of {} bytes", self.sent, self.size);
                        return Err(abort(tx, m).await);
                    }
                },
            };
            let room = end - self.sent;
            if piece.len() as u64 > room {
                self.pending = Some(piece.split_off(room as usize));
            }
            if piece.is_empty() {
                continue;
            }
            if self.sent + piece.len() as u64 == self.size
                && let Err(m) = self.check_eof().await
            {
                return Err(abort(tx, m).await);
            }
            self.sent += piece.len() as u64;
            match tokio::time::timeout(IDLE_TIMEOUT, tx.send(Ok(piece))).await {
                Err(_) => return Err(PumpError::Stalled),
                // The request ended (an early answer or a connection error); it reports why.
                Ok(Err(_)) => return Ok(()),
                Ok(Ok(())) => (self.progress)(self.sent),
            }
        }
        if self.size == 0
            && let Err(m) = self.check_eof().await
        {
            return Err(abort(tx, m).await);
        }
        Ok(())
    }

    /// Confirms the source has nothing after `size` bytes (and surfaces a trailing error).
    async fn check_eof(&mut self) -> Result<(), String> {
        if self.eof_checked {
            return Ok(());
        }
        if self.pending.as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(format!(
                "the blob is longer than its declared {} bytes",
                self.size
            ));
        }
        loop {
            match self.stream.next().await {
                None => break,
                Some(Ok(b)) if b.is_empty() => continue,
                Some(Ok(_)) => {
                    return Err(format!(
                        "the blob is longer than its declared {} bytes",
                        self.size
                    ));
                }
                Some(Err(e)) => return Err(e.to_string()),
            }
        }
        self.eof_checked = true;
        Ok(())
    }
}

async fn abort(tx: &mpsc::Sender<io::Result<Bytes>>, message: String) -> PumpError {
    let _ = tx.send(Err(io::Error::other(message.clone()))).await;
    PumpError::Source(message)
}
