//! OCI image layout stores (`oci-layout`, `index.json`, `blobs/sha256/<hex>`), wherever they sit in
//! a package, and the lenient manifest / descriptor shapes shared with the Distribution reader.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::digest::Digest;
use crate::package::ImageRef;
use crate::package::archive::Ctx;
use crate::package::{PackageError, mediatype};

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";
const BASE_NAME: &str = "org.opencontainers.image.base.name";

/// A descriptor as found in indexes and manifests. Only what we use is parsed; unknown fields are
/// kept in the raw bytes, which are what gets pushed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: Option<String>,
    pub digest: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub platform: Option<ImagePlatform>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The OS/architecture of an image (`linux/arm64/v8`): a descriptor's `platform`, or the fields
/// of an image config. Not the ACP platform (`crate::platform`). Serialized in the field order of
/// the images `synth` writes, since their digests are pinned.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub(crate) struct ImagePlatform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Descriptor {
    /// The OCI image spec's required descriptor fields: `mediaType`, `digest` (`sha256:` and 64
    /// lowercase hex, the only algorithm violet accepts) and `size` (a non-negative integer; a
    /// negative one already fails to parse into `u64`). Registries store what they are given, so
    /// a descriptor that breaks the spec would be published as is.
    pub fn check(&self) -> Result<Digest, String> {
        let digest = Digest::parse(&self.digest).map_err(|e| e.to_string())?;
        match &self.media_type {
            Some(m) if !m.is_empty() => {}
            _ => return Err(format!("descriptor of {digest} has no mediaType")),
        }
        if self.size.is_none() {
            return Err(format!("descriptor of {digest} has no size"));
        }
        Ok(digest)
    }
}

impl ImagePlatform {
    pub fn render(&self) -> Option<String> {
        if self.os.is_empty() || self.architecture.is_empty() {
            return None;
        }
        Some(match &self.variant {
            Some(v) if !v.is_empty() => format!("{}/{}/{v}", self.os, self.architecture),
            _ => format!("{}/{}", self.os, self.architecture),
        })
    }
}

/// An image manifest or an index (the two are told apart by their fields when `mediaType` is absent).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawManifest {
    #[serde(default)]
    pub schema_version: Option<u32>,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
}

impl RawManifest {
    /// Whether these bytes describe an image manifest or index at all (configs and other JSON blobs
    /// do not), so that only manifests are kept in memory.
    pub fn looks_like_manifest(&self) -> bool {
        self.manifests.is_some()
            || self.layers.is_some()
            || self
                .media_type
                .as_deref()
                .is_some_and(|m| mediatype::is_index(m) || mediatype::is_manifest(m))
    }

    /// The media type: the manifest's own field, else the descriptor's, else by shape.
    pub fn media_type(&self, from_descriptor: Option<&str>) -> String {
        self.media_type
            .clone()
            .or_else(|| from_descriptor.map(str::to_string))
            .unwrap_or_else(|| {
                if self.manifests.is_some() {
                    mediatype::OCI_INDEX
                } else {
                    mediatype::OCI_MANIFEST
                }
                .to_string()
            })
    }
}

/// A tag (or digest-only entry) of a store: where an image graph starts.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    pub reference: ImageRef,
    pub digest: Digest,
    pub media_type: Option<String>,
    pub size: Option<u64>,
}

/// `<root>` of the store whose blob this entry is, and the blob digest.
pub(crate) fn blob_of(path: &str) -> Option<(String, Digest)> {
    let (root, hex) = path.rsplit_once("blobs/sha256/")?;
    if !(root.is_empty() || root.ends_with('/')) {
        return None;
    }
    Some((root.to_string(), Digest::from_hex(hex).ok()?))
}

pub(crate) fn blob_path(root: &str, digest: &Digest) -> String {
    format!("{root}blobs/sha256/{}", digest.hex())
}

/// Store root of an `oci-layout` marker entry.
pub(crate) fn root_of_marker(path: &str) -> Option<&str> {
    if path == "oci-layout" {
        Some("")
    } else {
        path.strip_suffix("oci-layout").filter(|p| p.ends_with('/'))
    }
}

/// `index.json` of an OCI layout: an image index, so `schemaVersion` 2 and `manifests` are
/// required (an object without them is not an empty store but a broken one).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexJson {
    schema_version: u32,
    manifests: Vec<Descriptor>,
}

/// Digests named by an `index.json` (for the early-stop check; errors are reported by [`roots`]).
pub(crate) fn root_digests(bytes: &[u8]) -> Vec<Digest> {
    serde_json::from_slice::<IndexJson>(bytes)
        .map(|i| {
            i.manifests
                .iter()
                .filter_map(|d| Digest::parse(&d.digest).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The images an `index.json` names. `default_repo` is the repository used when the ref name is
/// only a tag and no annotation names the image.
pub(crate) fn roots(
    ctx: &Ctx,
    entry: &str,
    bytes: &[u8],
    default_repo: &str,
) -> Result<Vec<Root>, PackageError> {
    let bad = |message: String| PackageError::BadManifest {
        path: ctx.path.clone(),
        entry: ctx.entry(entry),
        message,
    };
    let index: IndexJson = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if index.schema_version != 2 {
        return Err(bad(format!(
            "schemaVersion is {}, the OCI image layout needs 2",
            index.schema_version
        )));
    }
    let mut out = Vec::new();
    for d in index.manifests {
        let digest = d.check().map_err(bad)?;
        let named = d
            .annotations
            .get(CONTAINERD_NAME)
            .or_else(|| d.annotations.get(BASE_NAME))
            .and_then(|n| parse_reference(n));
        let reference = match d.annotations.get(REF_NAME) {
            Some(r) if r.contains('/') || r.contains(':') => parse_reference(r)
                .ok_or_else(|| bad(format!("invalid image reference {r:?} in {REF_NAME}")))?,
            Some(tag) => match named {
                Some(n) => ImageRef {
                    tag: Some(tag.clone()),
                    ..n
                },
                None => ImageRef {
                    registry: None,
                    repository: default_repo.to_string(),
                    tag: Some(tag.clone()),
                },
            },
            None => named.unwrap_or_else(|| ImageRef {
                registry: None,
                repository: default_repo.to_string(),
                tag: None,
            }),
        };
        out.push(Root {
            reference,
            digest,
            media_type: d.media_type,
            size: d.size,
        });
    }
    Ok(out)
}

/// Parses `[registry/]repository[:tag][@digest]`. The first component is a registry when it looks
/// like a host (has `.` or `:`, or is `localhost`), as Docker decides it.
pub(crate) fn parse_reference(s: &str) -> Option<ImageRef> {
    let s = s.split_once('@').map(|(n, _)| n).unwrap_or(s);
    let (name, tag) = match s.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t.to_string())),
        _ => (s, None),
    };
    if name.is_empty() || tag.as_deref() == Some("") {
        return None;
    }
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first.to_string()), rest.to_string())
        }
        _ => (None, name.to_string()),
    };
    if repository.is_empty() {
        return None;
    }
    Some(ImageRef {
        registry,
        repository,
        tag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let r = parse_reference("registry.example.com:5000/acp/topolvm:v1").unwrap();
        assert_eq!(r.registry.as_deref(), Some("registry.example.com:5000"));
        assert_eq!(r.repository, "acp/topolvm");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        let r = parse_reference("library/busybox").unwrap();
        assert_eq!(
            (r.registry, r.repository.as_str(), r.tag),
            (None, "library/busybox", None)
        );
        assert!(parse_reference("x:").is_none());
    }

    #[test]
    fn recognizes_blob_paths() {
        let hex = "a".repeat(64);
        assert_eq!(
            blob_of(&format!("images/blobs/sha256/{hex}")).unwrap().0,
            "images/"
        );
        assert_eq!(blob_of(&format!("blobs/sha256/{hex}")).unwrap().0, "");
        assert!(blob_of(&format!("xblobs/sha256/{hex}")).is_none());
        assert_eq!(root_of_marker("a/b/oci-layout"), Some("a/b/"));
        assert_eq!(root_of_marker("xoci-layout"), None);
    }
}
