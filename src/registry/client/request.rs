//! One request to the registry: the authorization header for its scopes, retries with backoff
//! (`retry.rs` decides what is retried), redirects kept to the registry's origin, and a refusal
//! turned into a `RegistryError` that names the registry, repository and status.

use super::*;

impl Client {
    /// Runs `op` until it succeeds, fails for good, or the retry budget is spent.
    pub(super) async fn retrying<T>(
        &self,
        mut op: impl AsyncFnMut() -> Result<T, Failure>,
    ) -> Result<T, RegistryError> {
        let mut attempt = 0u32;
        let mut reauthed = false;
        loop {
            let failure = match op().await {
                Ok(v) => return Ok(v),
                Err(f) => f,
            };
            match failure.next {
                Next::Restart => continue,
                Next::Reauth if !reauthed => {
                    reauthed = true;
                    continue;
                }
                Next::Retry(after) if attempt < self.inner.config.retries => {
                    attempt += 1;
                    let wait = retry::backoff(attempt, after);
                    tracing::info!(registry = self.host(), error = %failure.err, attempt, wait_ms = wait.as_millis() as u64, "retrying");
                    tokio::time::sleep(wait).await;
                }
                _ => return Err(failure.err),
            }
        }
    }

    /// Sends a request whose body can be rebuilt (none, or in memory), answering one 401 with
    /// fresh credentials. Returns retriable failures for transport errors, 5xx, 408 and 429; any
    /// other answer goes back to the caller.
    pub(super) async fn send(
        &self,
        method: Method,
        url: Url,
        scopes: &[String],
        ctx: &Ctx,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, Failure> {
        // A 401 is answered at most twice: once to learn the challenge (first contact), once to
        // replace a token the registry refused (expired or revoked).
        let (mut learned, mut refreshed) = (false, false);
        loop {
            let mut rb =
                build(self.inner.http.request(method.clone(), url.clone())).timeout(IDLE_TIMEOUT);
            let authorization = self.authorization(&url, scopes).await?;
            let sent_credentials = authorization.is_some();
            if let Some(h) = authorization {
                rb = rb.header(reqwest::header::AUTHORIZATION, h);
            }
            tracing::trace!(method = %method, path = url.path(), credentials = sent_credentials, "registry request");
            let sent = std::time::Instant::now();
            let resp = rb.send().await.map_err(|e| self.transport_failure(&e))?;
            // Bodiless requests only: their time to the answer's headers is a round trip and the
            // registry's own time, with no body sent.
            if method == Method::HEAD || method == Method::GET {
                let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX - 1);
                self.inner
                    .quickest_answer
                    .fetch_min(micros, Ordering::Relaxed);
            }
            tracing::debug!(method = %method, path = url.path(), status = resp.status().as_u16(), "registry answer");
            // Another origin's challenge is not the registry's: learning it would send the
            // credentials there on the next try.
            if resp.status() == StatusCode::UNAUTHORIZED
                && self.same_origin(&url)
                && self.inner.auth.learn(resp.headers())
            {
                let again = if sent_credentials {
                    !std::mem::replace(&mut refreshed, true)
                } else {
                    !std::mem::replace(&mut learned, true)
                };
                if again {
                    self.inner.auth.invalidate(scopes);
                    continue;
                }
            }
            if let Some(f) = self.foreign_refusal(&url, resp.status(), ctx) {
                return Err(f);
            }
            return self.check_status(resp, ctx).await;
        }
    }

    /// Common handling of an answer: final auth refusals and retriable statuses become failures.
    pub(super) async fn check_status(
        &self,
        resp: Response,
        ctx: &Ctx,
    ) -> Result<Response, Failure> {
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(Failure::fail(self.auth_error(ctx, status, &headers, &body)));
        }
        if retry::is_retriable_status(status) {
            let after = retry::retry_after(resp.headers());
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap_or_default();
            let mut f = self.refused(ctx, status, &headers, &body);
            f.next = Next::Retry(after);
            return Err(f);
        }
        Ok(resp)
    }

    pub(super) fn auth_error(
        &self,
        ctx: &Ctx,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> RegistryError {
        let detail = RemoteDetail::parse(body);
        let denied = status == StatusCode::FORBIDDEN
            || auth::insufficient_scope(headers)
            || detail.code.as_deref() == Some("DENIED");
        let access = ctx
            .access
            .as_ref()
            .filter(|_| denied)
            .map(|(r, a)| (r.as_str(), *a));
        self.inner.auth.rejected(status.as_u16(), access)
    }

    /// The error for an answer the caller did not expect.
    pub(super) fn refused(
        &self,
        ctx: &Ctx,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Failure {
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Failure::fail(self.auth_error(ctx, status, headers, body));
        }
        Failure::fail(RegistryError::Remote {
            registry: self.host().into(),
            operation: ctx.operation,
            what: ctx.what.clone(),
            status: status.as_u16(),
            detail: RemoteDetail::parse(body),
        })
    }

    pub(super) fn transport_failure(&self, e: &reqwest::Error) -> Failure {
        Failure::transport(transport::classify(self.host(), e, self.inner.config.plain))
    }

    /// The `Location` of an upload session, resolved against the registry (it may be relative).
    pub(super) fn location(&self, headers: &HeaderMap) -> Option<Url> {
        let raw = headers.get(LOCATION)?.to_str().ok()?;
        self.inner.base.join(raw).ok()
    }

    /// Whether `url` is on the registry's own origin (scheme, host, port). Credentials are only
    /// ever sent there: an upload `Location` may point at a storage front end or a CDN on another
    /// origin, which must not learn the user's password or token (docker and containerd behave
    /// the same; such locations are pre-authorised by their query).
    pub(super) fn same_origin(&self, url: &Url) -> bool {
        url.origin() == self.inner.base.origin()
    }

    /// The `Authorization` header for a request to `url`: none for another origin.
    pub(super) async fn authorization(
        &self,
        url: &Url,
        scopes: &[String],
    ) -> Result<Option<reqwest::header::HeaderValue>, RegistryError> {
        if !self.same_origin(url) {
            tracing::trace!(
                host = url.host_str().unwrap_or(""),
                "request to another origin: no credentials sent"
            );
            return Ok(None);
        }
        self.inner.auth.header(&self.inner.http, scopes).await
    }

    pub(super) async fn cancel(&self, session: Url, scopes: &[String]) {
        let auth = self.authorization(&session, scopes).await;
        let mut rb = self.inner.http.delete(session).timeout(IDLE_TIMEOUT);
        if let Ok(Some(h)) = auth {
            rb = rb.header(reqwest::header::AUTHORIZATION, h);
        }
        if let Err(e) = rb.send().await {
            tracing::debug!(registry = self.host(), error = %transport::chain(&e), "cancelling an upload session failed");
        }
    }
}
