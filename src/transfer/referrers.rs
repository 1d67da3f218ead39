//! The artifacts that refer to an image at its source registry (`create`, `package`, `mirror`):
//! cosign's tag scheme and OCI 1.1 referrers, found with as few requests as the registry allows,
//! and their graphs resolved like any image's. At a destination (`push`, `mirror`), the OCI
//! referrers tag schema that a registry without the referrers API needs. docs/supply-chain.md.
//!
//! Requests at the source: one tag listing per repository (it shows cosign's `sha256-<hex>.sig`,
//! `.att`, `.sbom` tags and the referrers schema's `sha256-<hex>` index at once), one probe of the
//! referrers API per registry, and then one listing per subject only where that API exists.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::{StreamExt, stream};

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

/// What is known about the source registries during one run. Shared by the lookups of many
/// images at once, so its caches sit behind locks held only between requests.
#[derive(Default)]
pub struct Finder {
    /// Per registry host: whether it answers the referrers API, set by its first probe (the
    /// lookups at once wait for that one instead of each probing).
    api: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<bool>>>>,
    /// Per host and repository: its tags, listed once.
    tags: Mutex<HashMap<(String, String), Tags>>,
}

/// A repository's tags of the `sha256-` schemes.
type Tags = Arc<HashSet<String>>;

/// The images about which [`Finder::find_each`] looks up artifacts: one repository each, with its
/// subjects (an image's index and platform manifests).
pub struct Lookup<'a> {
    pub client: &'a Client,
    pub repo: &'a str,
    pub subjects: Vec<Digest>,
}

impl<'a> Lookup<'a> {
    /// The lookup for `image` in `repo`: its index and platform manifests are the subjects.
    pub fn image(client: &'a Client, repo: &'a str, image: &RemoteImage) -> Self {
        let subjects = image.manifests.iter().map(|m| m.digest.clone()).collect();
        Self {
            client,
            repo,
            subjects,
        }
    }
}

/// Images looked up at once: each is a few small requests, bound by round trips (at 100 ms one
/// at a time took the core-shaped `package` 30 s for its tag listings alone). As many as the
/// images resolved at once ([`pull::RESOLVE_IN_FLIGHT`]).
pub const FIND_IN_FLIGHT: usize = pull::RESOLVE_IN_FLIGHT;

impl Finder {
    /// The artifacts about each of `lookups`, looked up [`FIND_IN_FLIGHT`] at a time, in the order
    /// given. Each artifact is kept once per repository (the first image in that order that
    /// finds it): `seen` holds what is already collected, by `host/repository` and digest, and is
    /// seeded by the caller with what the run names itself; the same artifact in another
    /// repository is kept again, as it is pushed there too.
    pub async fn find_each(
        &self,
        lookups: Vec<Lookup<'_>>,
        seen: &mut HashSet<(String, Digest)>,
    ) -> Vec<Result<Vec<Found>, RegistryError>> {
        let known = &seen.clone();
        let results: Vec<_> = stream::iter(lookups)
            .map(|l| async move {
                let at = format!("{}/{}", l.client.host(), l.repo);
                let found = self.find(l.client, l.repo, &l.subjects, &at, known).await;
                (at, found)
            })
            .buffered(FIND_IN_FLIGHT)
            .collect()
            .await;
        results
            .into_iter()
            .map(|(at, found)| {
                let mut found = found?;
                found.retain(|f| seen.insert((at.clone(), f.image.digest.clone())));
                Ok(found)
            })
            .collect()
    }

    /// Every artifact in `repo` (`at`: `host/repository`) about one of `subjects`, subjects in
    /// order, cosign's tags before OCI referrers; none that `known` holds at `at`. Duplicates
    /// are left to [`Self::find_each`].
    async fn find(
        &self,
        client: &Client,
        repo: &str,
        subjects: &[Digest],
        at: &str,
        known: &HashSet<(String, Digest)>,
    ) -> Result<Vec<Found>, RegistryError> {
        let tags = self.tags(client, repo).await?;
        let about = subjects
            .iter()
            .map(|subject| self.about(client, repo, subject, &tags, at, known));
        let found = futures_util::future::try_join_all(about).await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// The artifacts about one subject: its cosign tags, then its OCI referrers.
    async fn about(
        &self,
        client: &Client,
        repo: &str,
        subject: &Digest,
        tags: &HashSet<String>,
        at: &str,
        known: &HashSet<(String, Digest)>,
    ) -> Result<Vec<Found>, RegistryError> {
        let tagged = ReferrerKind::TAG_SCHEME.into_iter().filter_map(|kind| {
            let tag = referrer::cosign_tag(subject, kind)?;
            tags.contains(&tag).then_some((kind, tag))
        });
        let tagged = futures_util::future::try_join_all(tagged.map(|(kind, tag)| async move {
            let image = pull::resolve(client, repo, &tag).await?;
            let top = image.manifests.last().expect("an image has a manifest");
            let referrer = referrer::classify(Some(&tag), &top.bytes).unwrap_or(Referrer {
                subject: subject.clone(),
                kind,
                artifact_type: None,
                by_subject: false,
            });
            Ok::<_, RegistryError>(Found {
                tag: Some(tag),
                referrer,
                media_type: top.media_type.clone(),
                image,
            })
        }));
        let listed = async {
            let descriptors = self.listed(client, repo, subject, tags).await?;
            let digests = descriptors.iter().filter_map(|d| {
                d.get("digest")
                    .and_then(|d| d.as_str())
                    .and_then(|d| Digest::parse(d).ok())
                    .filter(|d| !known.contains(&(at.to_string(), d.clone())))
            });
            let resolved = futures_util::future::try_join_all(
                digests.map(|d| async move { pull::resolve(client, repo, d.as_str()).await }),
            )
            .await?;
            // Only what really names this subject: a stale or forged listing entry is not
            // carried as a referrer of an image it is not about.
            Ok::<_, RegistryError>(
                resolved
                    .into_iter()
                    .filter_map(|image| {
                        let top = image.manifests.last().expect("an image has a manifest");
                        let r = referrer::classify(None, &top.bytes)
                            .filter(|r| r.by_subject && &r.subject == subject)?;
                        Some(Found {
                            tag: None,
                            referrer: r,
                            media_type: top.media_type.clone(),
                            image,
                        })
                    })
                    .collect::<Vec<_>>(),
            )
        };
        let (mut tagged, listed) = futures_util::future::try_join(tagged, listed).await?;
        tagged.extend(listed);
        Ok(tagged)
    }

    /// Whether `repo` has any cosign artifact for `subject` (an index a `--platforms` selection
    /// rewrote: its signatures do not cover the new index).
    pub async fn has_cosign(
        &self,
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
        &self,
        client: &Client,
        repo: &str,
    ) -> Result<Arc<HashSet<String>>, RegistryError> {
        let key = (client.host().to_string(), repo.to_string());
        if let Some(t) = lock(&self.tags).get(&key) {
            return Ok(t.clone());
        }
        // Two images of one repository looked up at once may both list it: the same answer.
        let tags: Tags = Arc::new(
            client
                .tags(repo)
                .await?
                .unwrap_or_default()
                .into_iter()
                .filter(|t| t.starts_with("sha256-"))
                .collect(),
        );
        lock(&self.tags).insert(key, tags.clone());
        Ok(tags)
    }

    /// The descriptors of the OCI referrers of `subject`: from the referrers API where the
    /// registry has it, else from the referrers tag schema's index (`sha256-<hex>`), if any.
    async fn listed(
        &self,
        client: &Client,
        repo: &str,
        subject: &Digest,
        tags: &HashSet<String>,
    ) -> Result<Vec<serde_json::Value>, RegistryError> {
        let probe = lock(&self.api)
            .entry(client.host().to_string())
            .or_default()
            .clone();
        let mut answered = None;
        let has_api = *probe
            .get_or_try_init(|| async {
                answered = client.referrers(repo, subject).await?;
                Ok::<_, RegistryError>(answered.is_some())
            })
            .await?;
        if has_api {
            if let Some(list) = answered {
                return Ok(list);
            }
            if let Some(list) = client.referrers(repo, subject).await? {
                return Ok(list);
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
