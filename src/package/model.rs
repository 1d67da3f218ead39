//! The package model every command works from: what a package is, which images it carries, and
//! where each blob's bytes sit inside the package file, so they can be streamed without extraction.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;
use serde::Serialize;

use crate::digest::Digest;
use crate::package::metadata::Metadata;

/// How the package bytes are stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Container {
    Tar,
    TarGz,
    TarZst,
    Directory,
}

impl Container {
    /// Blobs can be read at any offset (and therefore in parallel and retried) only when no
    /// decompression stands between the file and the blob bytes.
    pub fn random_access(self) -> bool {
        matches!(self, Container::Tar | Container::Directory)
    }
}

/// The image store format found inside a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    /// OCI image layout: `oci-layout`, `index.json`, `blobs/sha256/<hex>`.
    OciLayout,
    /// Docker Distribution storage tree: `docker/registry/v2/{blobs,repositories}`.
    Distribution,
}

#[derive(Debug, Clone, Serialize)]
pub struct Store {
    pub kind: StoreKind,
    /// Path of the store root inside the package ("" for the package root).
    pub root: String,
}

/// Where a blob's bytes are inside the package file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobLocation {
    /// Entry names of the nested archives enclosing the blob, outermost first (empty for a blob
    /// of the package itself; one element for a blob inside `plugins/x.tgz` of a core package).
    pub nest: Vec<String>,
    /// Entry path inside the innermost archive, or path relative to the package directory.
    pub entry: String,
    /// Byte offset of the blob data in the package file, when it can be read directly (uncompressed
    /// tar, possibly nested in uncompressed tars). `None` for directories (use `entry`) and for
    /// anything behind a decompressor (read by streaming only).
    pub offset: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Blob {
    pub digest: Digest,
    pub size: u64,
    /// Media type from the first descriptor that referenced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub location: BlobLocation,
}

/// A manifest or index: small, kept in memory as the exact bytes found in the package so that the
/// pushed digest is the package's digest.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub digest: Digest,
    pub media_type: String,
    #[serde(skip)]
    pub bytes: Bytes,
    /// Child manifests (for an index), in index order.
    pub children: Vec<Digest>,
    /// Config and layers (for an image manifest).
    pub blobs: Vec<Digest>,
    /// `os/arch[/variant]` of an index entry or of the manifest's config, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub location: BlobLocation,
}

impl Manifest {
    pub fn is_index(&self) -> bool {
        crate::package::mediatype::is_index(&self.media_type)
    }
}

/// An image reference as recorded in the package: `registry/repository:tag`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ImageRef {
    /// Registry host[:port] the image came from, when the package records it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    pub repository: String,
    /// Tag; `None` when the image is known only by digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(r) = &self.registry {
            write!(f, "{r}/")?;
        }
        f.write_str(&self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Image {
    pub reference: ImageRef,
    /// Digest of the top manifest or index (what the tag points at).
    pub digest: Digest,
    pub media_type: String,
    /// Platforms carried (`linux/amd64`, ...), from the index or the single manifest's config.
    pub platforms: Vec<String>,
    /// Every manifest of the image graph, children before parents (a valid push order); the last
    /// one is `digest`.
    pub manifests: Vec<Digest>,
    /// Every config and layer blob the image needs, without duplicates.
    pub blobs: Vec<Digest>,
    /// Sum of the sizes of `blobs` and `manifests`.
    pub size: u64,
    /// Set when the image is a signature, attestation, SBOM or other artifact about another
    /// image (cosign's tag scheme or an OCI `subject`), not an image to run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<crate::package::referrer::Referrer>,
}

/// Where the effective metadata came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetadataSource {
    /// The metadata file inside the package (authoritative).
    File,
    /// Derived from the package file name only.
    FileName,
    /// Neither: only the images are known.
    None,
}

#[derive(Debug, Clone, Serialize)]
pub struct Package {
    /// The file or directory on disk (for nested packages: the outermost file).
    pub path: PathBuf,
    pub container: Container,
    /// For a package nested inside another (core package): its entry chain inside `path`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nest: Vec<String>,
    pub metadata: Metadata,
    pub metadata_source: MetadataSource,
    /// Non-fatal findings (metadata disagreeing with the file name, unreferenced blobs, ...).
    pub warnings: Vec<String>,
    pub stores: Vec<Store>,
    pub images: Vec<Image>,
    /// Every manifest and index of every image, by digest.
    pub manifests: BTreeMap<Digest, Manifest>,
    /// Every config and layer blob of every image, by digest (each once).
    pub blobs: BTreeMap<Digest, Blob>,
    /// Packages carried inside this one (the plugins of a core package).
    pub children: Vec<Package>,
    /// Opening read the whole container and proved its end (end-of-archive blocks, a clean
    /// compressed stream). False when it stopped after the manifests of a manifests-first
    /// package: only a later pass over the rest proves that package complete.
    #[serde(skip)]
    pub read_whole: bool,
    /// Blobs the images need that a differential package does not carry (declared in
    /// `differential.expected`), by digest, with their size: the destination must hold them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub external: BTreeMap<Digest, u64>,
}

impl Package {
    /// Unique blobs (configs + layers) and their total bytes, not counting nested packages.
    pub fn blob_totals(&self) -> (usize, u64) {
        (self.blobs.len(), self.blobs.values().map(|b| b.size).sum())
    }

    /// Blobs expected at the destination (a differential package) and their total bytes.
    pub fn external_totals(&self) -> (usize, u64) {
        (self.external.len(), self.external.values().sum())
    }

    /// This package followed by every nested package, depth first.
    pub fn flatten(&self) -> Vec<&Package> {
        let mut out = vec![self];
        for c in &self.children {
            out.extend(c.flatten());
        }
        out
    }

    /// Display label for messages: the file, plus the nested entry for a package inside a package.
    pub fn label(&self) -> String {
        let mut s = self.path.display().to_string();
        for n in &self.nest {
            s.push('!');
            s.push_str(n);
        }
        s
    }
}
