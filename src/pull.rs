//! Reading images from a registry: the manifest graph behind a reference, and blob streams whose
//! bytes are checked against their digest, through [`Client`].

use std::io;

use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;

use crate::digest::{Digest, Hasher};
use crate::package::mediatype;
use crate::registry::{BlobStream, Client, RegistryError};

/// One manifest or index of an image, exactly as the registry served it.
#[derive(Debug, Clone)]
pub struct RemoteManifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
}

/// Everything an image reference needs: manifests children first (the last one is what the
/// reference resolves to) and every config and layer blob once, with its size.
#[derive(Debug, Clone)]
pub struct RemoteImage {
    pub digest: Digest,
    pub manifests: Vec<RemoteManifest>,
    pub blobs: Vec<(Digest, u64)>,
}

impl RemoteImage {
    /// Bytes of every blob and manifest.
    pub fn size(&self) -> u64 {
        self.blobs.iter().map(|(_, s)| s).sum::<u64>()
            + self
                .manifests
                .iter()
                .map(|m| m.bytes.len() as u64)
                .sum::<u64>()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    digest: String,
    size: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

/// An index nested deeper than this is refused: real images use one level; the bound keeps a
/// malicious or looping graph from recursing forever.
const MAX_DEPTH: usize = 4;

/// Resolves `reference` (tag or digest) in `repo` to its full manifest graph.
pub async fn resolve(
    client: &Client,
    repo: &str,
    reference: &str,
) -> Result<RemoteImage, RegistryError> {
    let mut image = RemoteImage {
        digest: Digest::of(b""),
        manifests: Vec::new(),
        blobs: Vec::new(),
    };
    let mut seen = std::collections::HashSet::new();
    image.digest = walk(client, repo, reference, 0, &mut image, &mut seen).await?;
    Ok(image)
}

/// Depth-first, so children land in `image.manifests` before their parent.
async fn walk(
    client: &Client,
    repo: &str,
    reference: &str,
    depth: usize,
    image: &mut RemoteImage,
    seen: &mut std::collections::HashSet<Digest>,
) -> Result<Digest, RegistryError> {
    let (served_type, bytes, digest) = client.get_manifest(repo, reference).await?;
    let invalid = |message: String| RegistryError::Protocol {
        registry: client.host().into(),
        operation: "the download of",
        what: format!("manifest {repo}@{digest}"),
        message,
    };
    let doc: Document =
        serde_json::from_slice(&bytes).map_err(|e| invalid(format!("not a manifest: {e}")))?;
    // The body's own mediaType wins: registries sometimes serve a generic Content-Type.
    let media_type = doc
        .media_type
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or(served_type);
    if mediatype::is_index(&media_type) || doc.manifests.is_some() {
        if depth >= MAX_DEPTH {
            return Err(invalid(format!(
                "indexes nested more than {MAX_DEPTH} deep"
            )));
        }
        for child in doc.manifests.unwrap_or_default() {
            let child_digest =
                Digest::parse(&child.digest).map_err(|e| invalid(format!("bad digest: {e}")))?;
            if seen.contains(&child_digest) {
                continue;
            }
            Box::pin(walk(
                client,
                repo,
                child_digest.as_str(),
                depth + 1,
                image,
                seen,
            ))
            .await?;
        }
    } else {
        let config = doc
            .config
            .ok_or_else(|| invalid("neither an index nor an image manifest".into()))?;
        for d in std::iter::once(config).chain(doc.layers.unwrap_or_default()) {
            let blob = Digest::parse(&d.digest).map_err(|e| invalid(format!("bad digest: {e}")))?;
            if !image.blobs.iter().any(|(b, _)| *b == blob) {
                image.blobs.push((blob, d.size));
            }
        }
    }
    if seen.insert(digest.clone()) {
        image.manifests.push(RemoteManifest {
            digest: digest.clone(),
            media_type,
            bytes,
        });
    }
    Ok(digest)
}

/// Wraps the body of a blob `GET` (from [`Client::get_blob`]): the bytes are hashed on the way,
/// and a wrong digest or size fails the stream at its end, before the consumer can commit anything.
pub fn checked_blob(
    opened: BlobStream,
    host: &str,
    repo: &str,
    digest: Digest,
    size: u64,
) -> BlobStream {
    let (host, repo) = (host.to_string(), repo.to_string());
    let checked = futures_util::stream::unfold(
        (opened, Some(Hasher::new()), 0u64),
        move |(mut inner, hasher, seen)| {
            let (host, repo, digest) = (host.clone(), repo.clone(), digest.clone());
            async move {
                let mut hasher = hasher?;
                match inner.next().await {
                    Some(Ok(chunk)) => {
                        hasher.update(&chunk);
                        let seen = seen + chunk.len() as u64;
                        Some((Ok(chunk), (inner, Some(hasher), seen)))
                    }
                    Some(Err(e)) => Some((Err(e), (inner, None, seen))),
                    None => {
                        let got = hasher.finish();
                        if got == digest && seen == size {
                            None
                        } else {
                            let err = io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!(
                                    "blob {digest} from {host}/{repo} has {seen} bytes hashing to {got} (expected {size} bytes)"
                                ),
                            );
                            Some((Err(err), (inner, None, seen)))
                        }
                    }
                }
            }
        },
    );
    Box::pin(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_index_and_manifest_shapes() {
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":10}]}"#;
        let doc: Document = serde_json::from_slice(index).unwrap();
        assert_eq!(doc.manifests.unwrap().len(), 1);
        let manifest = br#"{"schemaVersion":2,"config":{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}"#;
        let doc: Document = serde_json::from_slice(manifest).unwrap();
        assert!(doc.config.is_some() && doc.manifests.is_none());
    }
}
