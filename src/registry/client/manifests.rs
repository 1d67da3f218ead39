//! Manifest operations: existence, download (digest-checked against a digest reference) and
//! the push of the exact bytes.

use super::*;

/// Every manifest type we push or read; HEAD and GET must list them or registries convert or 404.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

impl Client {
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
}

fn header_digest(headers: &HeaderMap) -> Option<Digest> {
    Digest::parse(headers.get("docker-content-digest")?.to_str().ok()?.trim()).ok()
}
