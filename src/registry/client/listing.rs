//! Listing what a registry holds (`violet inventory`, referrers for `create`/`package`/`mirror`):
//! the catalog API, tag lists and the referrers API, all
//! paginated (`?n=` and the `Link: <…>; rel="next"` header of the distribution spec).

use super::*;

/// Entries asked for per page; registries cap it themselves (distribution's default is 1000).
const PAGE: usize = 1000;
/// A registry that keeps answering `next` is cut off here rather than looping forever.
const MAX_PAGES: usize = 10_000;

#[derive(serde::Deserialize)]
struct CatalogPage {
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

#[derive(serde::Deserialize)]
struct ReferrersPage {
    #[serde(default)]
    manifests: Option<Vec<serde_json::Value>>,
}

#[derive(serde::Deserialize)]
struct TagsPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl Client {
    /// `GET /v2/_catalog`, every page: the repositories the registry lists. A registry that does
    /// not offer the API (404, 405) or not to this user (401, 403) answers with its refusal.
    pub async fn catalog(&self) -> Result<Vec<String>, RegistryError> {
        let ctx = Ctx {
            operation: "the listing of",
            what: "its repositories (catalog API /v2/_catalog)".into(),
            access: None,
        };
        let scopes = ["registry:catalog:*".to_string()];
        let listed = self
            .listing(
                &format!("v2/_catalog?n={PAGE}"),
                &scopes,
                &ctx,
                &[],
                |p: CatalogPage| p.repositories,
            )
            .await?;
        Ok(listed.unwrap_or_default())
    }

    /// `GET /v2/<repo>/tags/list`, every page. A repository the registry does not know answers
    /// 404 (`NAME_UNKNOWN`), returned as `None`.
    pub async fn tags(&self, repo: &str) -> Result<Option<Vec<String>>, RegistryError> {
        let ctx = Ctx {
            operation: "the listing of",
            what: format!("the tags of {repo}"),
            access: Some((repo.into(), "pull")),
        };
        let scopes = [auth::repo_scope(repo, "pull")];
        let path = format!("v2/{repo}/tags/list?n={PAGE}");
        self.listing(&path, &scopes, &ctx, &[404], |p: TagsPage| p.tags)
            .await
    }

    /// `GET /v2/<repo>/referrers/<digest>`, every page: the descriptors of the manifests whose
    /// `subject` is `digest` (OCI distribution 1.1). `None` when the registry has no referrers
    /// API: the spec's answer is 404, and some registries answer an unknown route with 400, 405
    /// or 501.
    pub async fn referrers(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<Vec<serde_json::Value>>, RegistryError> {
        let ctx = Ctx {
            operation: "the listing of",
            what: format!("the referrers of {repo}@{digest}"),
            access: Some((repo.into(), "pull")),
        };
        let scopes = [auth::repo_scope(repo, "pull")];
        let path = format!("v2/{repo}/referrers/{digest}");
        self.listing(
            &path,
            &scopes,
            &ctx,
            &[400, 404, 405, 501],
            |p: ReferrersPage| p.manifests,
        )
        .await
    }

    /// Every page of a listing from `path` on, each page's items in order; `None` when the
    /// registry answers one of the `absent` statuses.
    async fn listing<P: serde::de::DeserializeOwned, T>(
        &self,
        path: &str,
        scopes: &[String],
        ctx: &Ctx,
        absent: &[u16],
        items: impl Fn(P) -> Option<Vec<T>>,
    ) -> Result<Option<Vec<T>>, RegistryError> {
        let pages = match self.pages(self.url(path)?, scopes, ctx).await {
            Ok(p) => p,
            Err(RegistryError::Remote { status, .. }) if absent.contains(&status) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for body in pages {
            let page: P = serde_json::from_slice(&body).map_err(|e| self.invalid(ctx, e))?;
            out.extend(items(page).unwrap_or_default());
        }
        Ok(Some(out))
    }

    fn invalid(&self, ctx: &Ctx, e: serde_json::Error) -> RegistryError {
        RegistryError::Protocol {
            registry: self.host().into(),
            operation: ctx.operation,
            what: ctx.what.clone(),
            message: format!("not a listing: {e}"),
        }
    }

    /// The bodies of every page from `first` on, following `Link: <…>; rel="next"` (relative
    /// to the registry; a link to another origin is not followed: credentials stay home).
    async fn pages(
        &self,
        first: Url,
        scopes: &[String],
        ctx: &Ctx,
    ) -> Result<Vec<Bytes>, RegistryError> {
        let mut out = Vec::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            if out.len() >= MAX_PAGES {
                return Err(RegistryError::Protocol {
                    registry: self.host().into(),
                    operation: ctx.operation,
                    what: ctx.what.clone(),
                    message: format!("more than {MAX_PAGES} pages"),
                });
            }
            let (body, link) = self
                .retrying(async || {
                    let resp = self
                        .send(Method::GET, url.clone(), scopes, ctx, |rb| {
                            rb.header(ACCEPT, "application/json")
                        })
                        .await?;
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let body = resp.bytes().await.map_err(|e| {
                        transport::classify(self.host(), &e, self.inner.config.plain)
                    })?;
                    if status != StatusCode::OK {
                        return Err(self.refused(ctx, status, &headers, &body));
                    }
                    let link = headers
                        .get(reqwest::header::LINK)
                        .and_then(|v| v.to_str().ok())
                        .and_then(next_link)
                        .map(str::to_string);
                    Ok((body, link))
                })
                .await?;
            out.push(body);
            next = match link {
                Some(l) => {
                    let u = self
                        .inner
                        .base
                        .join(&l)
                        .map_err(|e| RegistryError::Protocol {
                            registry: self.host().into(),
                            operation: ctx.operation,
                            what: ctx.what.clone(),
                            message: format!("bad Link header {l:?}: {e}"),
                        })?;
                    self.same_origin(&u).then_some(u)
                }
                None => None,
            };
        }
        Ok(out)
    }
}

/// The target of `<…>; rel="next"` in a `Link` header.
fn next_link(header: &str) -> Option<&str> {
    header.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.trim().trim_start_matches('<').trim_end_matches('>'))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_links() {
        assert_eq!(
            super::next_link(r#"</v2/_catalog?last=b&n=2>; rel="next""#),
            Some("/v2/_catalog?last=b&n=2")
        );
        assert_eq!(super::next_link(r#"</x>; rel="prev""#), None);
    }
}
