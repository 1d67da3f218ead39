//! The artifacts that refer to an image at its source registry (`create`, `package`, `mirror`):
//! cosign's tag scheme and OCI 1.1 referrers, found with as few requests as the registry allows,
//! and their graphs resolved like any image's. At a destination (`push`, `mirror`), the OCI
//! referrers tag schema that a registry without the referrers API needs. docs/supply-chain.md.
//!
//! Requests at the source: one tag listing per repository (it shows cosign's `sha256-<hex>.sig`,
//! `.att`, `.sbom` tags and the referrers schema's `sha256-<hex>` index at once), one probe of the
//! referrers API per registry, and then one listing per subject only where that API exists.

use std::collections::{HashMap, HashSet};

use crate::digest::Digest;
use crate::package::mediatype;
use crate::package::referrer::{self, Referrer, ReferrerKind};
use crate::registry::{Client, RegistryError};
use crate::transfer::pull::{self, RemoteImage};

/// One artifact found at the source.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its tag (cosign's tag scheme); `None` for an OCI referrer, which is stored by digest.
    pub tag: Option<String>,
    pub referrer: Referrer,
    pub media_type: String,
    pub image: RemoteImage,
}

/// What is known about the source registries during one run.
#[derive(Default)]
pub struct Finder {
    /// Per registry host: whether it answers the referrers API (unknown until probed).
    api: HashMap<String, bool>,
    /// Per host and repository: its tags, listed once.
    tags: HashMap<(String, String), HashSet<String>>,
}

impl Finder {
    /// Every artifact in `repo` about one of `subjects` (an image's index and platform manifests),
    /// each once, subjects in order. `skip` holds what is already collected (for another image of
    /// the same repository, or named by the run itself), by `host/repository` and digest: the
    /// same artifact in another repository is collected again, as it is pushed there too.
    pub async fn find(
        &mut self,
        client: &Client,
        repo: &str,
        subjects: &[Digest],
        skip: &mut HashSet<(String, Digest)>,
    ) -> Result<Vec<Found>, RegistryError> {
        let tags = self.tags(client, repo).await?;
        let at = format!("{}/{repo}", client.host());
        let mut out = Vec::new();
        for subject in subjects {
            for kind in ReferrerKind::TAG_SCHEME {
                let Some(tag) = referrer::cosign_tag(subject, kind) else {
                    continue;
                };
                if !tags.contains(&tag) {
                    continue;
                }
                let image = pull::resolve(client, repo, &tag).await?;
                if !skip.insert((at.clone(), image.digest.clone())) {
                    continue;
                }
                let top = image.manifests.last().expect("an image has a manifest");
                let referrer = referrer::classify(Some(&tag), &top.bytes).unwrap_or(Referrer {
                    subject: subject.clone(),
                    kind,
                    artifact_type: None,
                    by_subject: false,
                });
                out.push(Found {
                    tag: Some(tag),
                    referrer,
                    media_type: top.media_type.clone(),
                    image,
                });
            }
            for descriptor in self.listed(client, repo, subject, &tags).await? {
                let Some(digest) = descriptor
                    .get("digest")
                    .and_then(|d| d.as_str())
                    .and_then(|d| Digest::parse(d).ok())
                else {
                    continue;
                };
                if skip.contains(&(at.clone(), digest.clone())) {
                    continue;
                }
                let image = pull::resolve(client, repo, digest.as_str()).await?;
                let top = image.manifests.last().expect("an image has a manifest");
                // Only what really names this subject: a stale or forged listing entry is not
                // carried as a referrer of an image it is not about.
                let Some(r) = referrer::classify(None, &top.bytes)
                    .filter(|r| r.by_subject && &r.subject == subject)
                else {
                    continue;
                };
                skip.insert((at.clone(), digest));
                out.push(Found {
                    tag: None,
                    referrer: r,
                    media_type: top.media_type.clone(),
                    image,
                });
            }
        }
        Ok(out)
    }

    /// Whether `repo` has any cosign artifact for `subject` (an index a `--platforms` selection
    /// rewrote: its signatures do not cover the new index).
    pub async fn has_cosign(
        &mut self,
        client: &Client,
        repo: &str,
        subject: &Digest,
    ) -> Result<Vec<ReferrerKind>, RegistryError> {
        let tags = self.tags(client, repo).await?;
        Ok(ReferrerKind::TAG_SCHEME
            .into_iter()
            .filter(|k| referrer::cosign_tag(subject, *k).is_some_and(|t| tags.contains(&t)))
            .collect())
    }

    async fn tags(
        &mut self,
        client: &Client,
        repo: &str,
    ) -> Result<HashSet<String>, RegistryError> {
        let key = (client.host().to_string(), repo.to_string());
        if let Some(t) = self.tags.get(&key) {
            return Ok(t.clone());
        }
        let tags: HashSet<String> = client
            .tags(repo)
            .await?
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.starts_with("sha256-"))
            .collect();
        self.tags.insert(key, tags.clone());
        Ok(tags)
    }

    /// The descriptors of the OCI referrers of `subject`: from the referrers API where the
    /// registry has it, else from the referrers tag schema's index (`sha256-<hex>`), if any.
    async fn listed(
        &mut self,
        client: &Client,
        repo: &str,
        subject: &Digest,
        tags: &HashSet<String>,
    ) -> Result<Vec<serde_json::Value>, RegistryError> {
        let host = client.host().to_string();
        if self.api.get(&host) != Some(&false) {
            match client.referrers(repo, subject).await? {
                Some(list) => {
                    self.api.insert(host, true);
                    return Ok(list);
                }
                None => {
                    self.api.insert(host, false);
                }
            }
        }
        let tag = referrer::fallback_tag(subject);
        if !tags.contains(&tag) {
            return Ok(Vec::new());
        }
        let (_, bytes, _) = client.get_manifest(repo, &tag).await?;
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        Ok(doc
            .get("manifests")
            .and_then(|m| m.as_array())
            .cloned()
            .unwrap_or_default())
    }
}

/// Adds `descriptors` (referrers of `subject`) to the referrers tag schema's index in `repo`
/// (`sha256-<hex>`), written only when something is new. Returns whether it wrote.
pub async fn update_fallback(
    client: &Client,
    repo: &str,
    subject: &Digest,
    descriptors: &[serde_json::Value],
) -> Result<bool, RegistryError> {
    let tag = referrer::fallback_tag(subject);
    let existing = match client.get_manifest(repo, &tag).await {
        Ok((_, bytes, _)) => Some(bytes),
        Err(RegistryError::Remote { status: 404, .. }) => None,
        Err(e) => return Err(e),
    };
    let Some(list) = merged(existing.as_deref(), descriptors) else {
        return Ok(false);
    };
    let index = fallback_index(list);
    client
        .put_manifest(repo, &tag, mediatype::OCI_INDEX, index.into())
        .await?;
    Ok(true)
}

/// An OCI referrers index (the fallback tag's content) listing `descriptors`.
pub fn fallback_index(descriptors: Vec<serde_json::Value>) -> Vec<u8> {
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mediatype::OCI_INDEX,
        "manifests": descriptors,
    });
    serde_json::to_vec(&index).expect("a JSON value serializes")
}

/// The descriptors of `existing` (an index's bytes, if the tag was there) with `add` appended,
/// those whose digest is not listed yet; `None` when nothing is new.
pub fn merged(
    existing: Option<&[u8]>,
    add: &[serde_json::Value],
) -> Option<Vec<serde_json::Value>> {
    let mut list: Vec<serde_json::Value> = existing
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|d| d.get("manifests").and_then(|m| m.as_array()).cloned())
        .unwrap_or_default();
    let listed: HashSet<String> = list
        .iter()
        .filter_map(|d| d.get("digest").and_then(|x| x.as_str()).map(str::to_string))
        .collect();
    let before = list.len();
    for d in add {
        let digest = d.get("digest").and_then(|x| x.as_str()).unwrap_or_default();
        if !listed.contains(digest) && !list.iter().skip(before).any(|x| x["digest"] == digest) {
            list.push(d.clone());
        }
    }
    (list.len() > before).then_some(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_only_what_is_missing() {
        let a = serde_json::json!({"digest": "sha256:a", "size": 1});
        let b = serde_json::json!({"digest": "sha256:b", "size": 2});
        let index = fallback_index(vec![a.clone()]);
        assert_eq!(merged(Some(&index), std::slice::from_ref(&a)), None);
        let m = merged(Some(&index), &[a.clone(), b.clone(), b.clone()]).unwrap();
        assert_eq!(m, vec![a.clone(), b]);
        assert_eq!(merged(None, std::slice::from_ref(&a)).unwrap(), vec![a]);
    }
}
