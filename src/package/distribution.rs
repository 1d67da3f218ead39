//! Docker Distribution storage trees (`docker/registry/v2/...`, as docker-registry 2.8 and the
//! `registry:` skopeo transport write them), wherever they sit in a package.

use crate::digest::Digest;
use crate::package::ImageRef;
use crate::package::PackageError;
use crate::package::archive::Ctx;
use crate::package::oci_layout::Root;

const V2: &str = "docker/registry/v2/";

/// Store root (the part before `docker/registry/v2/`) and the rest of the path.
pub(crate) fn split(path: &str) -> Option<(&str, &str)> {
    let at = if path.starts_with(V2) {
        0
    } else {
        path.find(&format!("/{V2}"))? + 1
    };
    Some((&path[..at], &path[at + V2.len()..]))
}

/// Store root and digest of a blob data entry (`blobs/sha256/<hh>/<hex>/data`).
pub(crate) fn blob_of(path: &str) -> Option<(String, Digest)> {
    let (root, rest) = split(path)?;
    let rest = rest.strip_prefix("blobs/sha256/")?.strip_suffix("/data")?;
    let (hh, hex) = rest.split_once('/')?;
    if hex.len() < 2 || hh != &hex[..2] {
        return None;
    }
    Some((root.to_string(), Digest::from_hex(hex).ok()?))
}

pub(crate) fn blob_path(root: &str, digest: &Digest) -> String {
    let hex = digest.hex();
    format!("{root}{V2}blobs/sha256/{}/{hex}/data", &hex[..2])
}

/// A link file the reader keeps: tag `current` links (bytes needed) and revision links (presence).
pub(crate) enum Link<'a> {
    Tag {
        root: &'a str,
        repository: &'a str,
        tag: &'a str,
    },
    Revision,
}

pub(crate) fn link_of(path: &str) -> Option<Link<'_>> {
    let (root, rest) = split(path)?;
    let rest = rest.strip_prefix("repositories/")?;
    let (repository, rest) = rest.split_once("/_manifests/")?;
    if let Some(tag) = rest
        .strip_prefix("tags/")
        .and_then(|t| t.strip_suffix("/current/link"))
    {
        if tag.is_empty() || tag.contains('/') {
            return None;
        }
        return Some(Link::Tag {
            root,
            repository,
            tag,
        });
    }
    rest.strip_prefix("revisions/sha256/")?
        .strip_suffix("/link")?;
    Some(Link::Revision)
}

pub(crate) fn revision_link_path(root: &str, repository: &str, digest: &Digest) -> String {
    format!(
        "{root}{V2}repositories/{repository}/_manifests/revisions/sha256/{}/link",
        digest.hex()
    )
}

/// The content of a link file: `sha256:<hex>`.
pub(crate) fn parse_link(ctx: &Ctx, entry: &str, bytes: &[u8]) -> Result<Digest, PackageError> {
    let text = String::from_utf8_lossy(bytes);
    Digest::parse(text.trim()).map_err(|e| PackageError::BadManifest {
        path: ctx.path.clone(),
        entry: ctx.entry(entry),
        message: format!("invalid link: {e}"),
    })
}

pub(crate) fn root(repository: &str, tag: &str, digest: Digest) -> Root {
    Root {
        reference: ImageRef {
            registry: None,
            repository: repository.to_string(),
            tag: Some(tag.to_string()),
        },
        digest,
        media_type: None,
        size: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_store_paths() {
        let hex = format!("ab{}", "c".repeat(62));
        let p = format!("res/registry/docker/registry/v2/blobs/sha256/ab/{hex}/data");
        let (root, d) = blob_of(&p).unwrap();
        assert_eq!(root, "res/registry/");
        assert_eq!(blob_path(&root, &d), p);
        assert!(blob_of(&format!("docker/registry/v2/blobs/sha256/xx/{hex}/data")).is_none());
        match link_of(
            "docker/registry/v2/repositories/acp/topolvm-operator/_manifests/tags/v1/current/link",
        ) {
            Some(Link::Tag {
                root,
                repository,
                tag,
            }) => assert_eq!((root, repository, tag), ("", "acp/topolvm-operator", "v1")),
            _ => panic!("tag link not recognized"),
        }
        assert!(
            link_of("docker/registry/v2/repositories/a/_manifests/tags/v1/index/sha256/x/link")
                .is_none()
        );
    }
}
