//! The push plan: which image of which package goes to which destination reference, and which
//! blobs that needs. Pure: no I/O, so `--dry-run` and the real push share it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

use crate::digest::Digest;
use crate::error::Fail;
use crate::package::Package;
use crate::registry::Client;
use crate::transfer::pull::RemoteManifest;
use crate::transfer::source::Origin;

/// `--dest-repo host[:port][/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destination {
    /// `host[:port]`.
    pub host: String,
    /// Optional path prefix put in front of every repository (`harbor.io/mirror`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

impl Destination {
    /// Parses `host[:port][/prefix]`. A scheme is tolerated (`https://h` is `h`; `http://h` asks
    /// for `--plain`, returned as the second value) because users paste URLs.
    pub fn parse(s: &str) -> Result<(Self, bool), Fail> {
        Self::parse_flag("--dest-repo", s)
    }

    /// [`Self::parse`] for a value given with `flag` (`--from`, `--to`), which the error names.
    pub fn parse_flag(flag: &str, s: &str) -> Result<(Self, bool), Fail> {
        let bad = |why: &str| {
            Fail::usage(format!("invalid {flag} {s:?}: {why}"))
                .with_hint("write it as host[:port][/prefix], e.g. 192.168.1.10:11443")
        };
        let mut rest = s.trim();
        let mut plain = false;
        if let Some(r) = rest.strip_prefix("https://") {
            rest = r;
        } else if let Some(r) = rest.strip_prefix("http://") {
            rest = r;
            plain = true;
        } else if rest.contains("://") {
            return Err(bad("unsupported scheme"));
        }
        let rest = rest.trim_end_matches('/');
        let (host, prefix) = match rest.split_once('/') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let valid_host = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'));
        if !valid_host {
            return Err(bad("the host has characters a registry host cannot have"));
        }
        if let Some(p) = prefix
            && !p.split('/').all(valid_path_component)
        {
            return Err(bad(
                "the path prefix must be lowercase repository path components",
            ));
        }
        Ok((
            Self {
                host: host.to_string(),
                prefix: prefix.map(str::to_string),
            },
            plain,
        ))
    }

    /// `host[/prefix]`, as the user wrote it (without a scheme).
    pub fn label(&self) -> String {
        match &self.prefix {
            Some(p) => format!("{}/{p}", self.host),
            None => self.host.clone(),
        }
    }

    /// The destination repository for an image's original repository path.
    pub fn repository(&self, original: &str) -> String {
        match &self.prefix {
            Some(p) => format!("{p}/{original}"),
            None => original.to_string(),
        }
    }
}

fn valid_path_component(c: &str) -> bool {
    !c.is_empty()
        && c.chars().all(|ch| {
            ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
        })
}

/// Two images of the run that would land on one destination `repository:tag` with different
/// digests: the last one pushed would win silently, so the run is refused before any upload.
pub fn conflicting_tags(images: &[ImagePlan]) -> Option<(&ImagePlan, &ImagePlan)> {
    let mut by_ref: HashMap<&str, &ImagePlan> = HashMap::new();
    for img in images.iter().filter(|i| i.tag.is_some()) {
        match by_ref.get(img.destination.as_str()) {
            Some(first) if first.digest != img.digest => return Some((first, img)),
            Some(_) => {}
            None => {
                by_ref.insert(&img.destination, img);
            }
        }
    }
    None
}

/// Where one blob's bytes can be read from.
#[derive(Debug, Clone)]
pub struct BlobSource {
    pub origin: Origin,
    pub size: u64,
    /// Other places of the run that carry the same digest (packages of a directory), tried in
    /// order when this one turns out unreadable or corrupt.
    pub alternates: Vec<Origin>,
}

/// One image to push.
#[derive(Debug, Clone, Serialize)]
pub struct ImagePlan {
    /// Index into [`Plan::packages`] (0 for an image read from a registry).
    #[serde(skip)]
    pub package: usize,
    /// Original reference as recorded in the package (or read at the source registry).
    pub source: String,
    /// `host/repository[:tag]` at the destination.
    pub destination: String,
    #[serde(skip)]
    pub repository: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub digest: Digest,
    pub platforms: Vec<String>,
    /// Manifests children first; the last is `digest`.
    #[serde(skip)]
    pub manifests: Vec<Digest>,
    #[serde(skip)]
    pub blobs: Vec<Digest>,
    pub size: u64,
    /// Set for a signature, attestation, SBOM or OCI referrer: committed after the images, and
    /// only when the image it is about did not fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<crate::package::referrer::Referrer>,
}

/// One destination of a plan: where each image of the run lands there.
#[derive(Debug)]
pub struct Target {
    pub destination: Destination,
    /// The run's images at this destination; image `i` is the same image at every target.
    pub images: Vec<ImagePlan>,
}

/// Everything a transfer does, before it touches the network: the sources once (packages, or a
/// source registry's manifests; one place to read each blob) and one target per destination.
#[derive(Debug)]
pub struct Plan {
    /// Every package, nested ones flattened (a nested package appears after its parent); empty
    /// when the images come from a registry.
    pub packages: Vec<Arc<Package>>,
    /// Manifests read from a source registry (`mirror`), by digest.
    pub remote_manifests: HashMap<Digest, RemoteManifest>,
    /// Every config/layer blob by digest, with one place to read it from.
    pub blobs: BTreeMap<Digest, BlobSource>,
    /// One per `--dest-repo`, in order; target `k` goes to the scheduler's client `k`.
    pub targets: Vec<Target>,
}

impl Plan {
    pub fn new(packages: &[Package], destinations: &[Destination]) -> Self {
        let mut flat: Vec<Arc<Package>> = Vec::new();
        for p in packages {
            for q in p.flatten() {
                let mut q = q.clone();
                q.children.clear();
                flat.push(Arc::new(q));
            }
        }
        let mut blobs: BTreeMap<Digest, BlobSource> = BTreeMap::new();
        for (pi, pkg) in flat.iter().enumerate() {
            for (digest, blob) in &pkg.blobs {
                let origin = Origin::Package {
                    package: pi,
                    pkg: pkg.clone(),
                    location: blob.location.clone(),
                };
                let source = blobs.entry(digest.clone()).or_insert_with(|| BlobSource {
                    origin: origin.clone(),
                    size: blob.size,
                    alternates: Vec::new(),
                });
                if source.origin.package() == Some(pi) {
                    continue;
                }
                // Prefer a package read by offset (parallel, retryable) over one that must be
                // decoded front to back; the other copies stay as fallbacks.
                if origin.random_access() && !source.origin.random_access() {
                    let old = std::mem::replace(&mut source.origin, origin);
                    source.alternates.insert(0, old);
                } else {
                    source.alternates.push(origin);
                }
            }
        }
        let targets = destinations
            .iter()
            .map(|d| Target {
                destination: d.clone(),
                images: images_for(&flat, d),
            })
            .collect();
        Self {
            packages: flat,
            remote_manifests: HashMap::new(),
            blobs,
            targets,
        }
    }

    /// A plan for images read from a source registry (`mirror`): each image with its repository
    /// at the source, the repository and tag it gets at `destination`, and its graph.
    pub fn from_registry(
        source: &Client,
        destination: &Destination,
        images: &[RemoteCopy],
    ) -> Self {
        let mut blobs = BTreeMap::new();
        let mut remote_manifests = HashMap::new();
        let mut planned = Vec::new();
        for copy in images {
            let image = &copy.image;
            for (digest, size) in &image.blobs {
                blobs.entry(digest.clone()).or_insert_with(|| BlobSource {
                    origin: Origin::Registry {
                        client: source.clone(),
                        repository: copy.source_repository.clone(),
                    },
                    size: *size,
                    alternates: Vec::new(),
                });
            }
            for m in &image.manifests {
                remote_manifests
                    .entry(m.digest.clone())
                    .or_insert_with(|| m.clone());
            }
            let destination_ref = match &copy.tag {
                Some(t) => format!("{}/{}:{t}", destination.host, copy.repository),
                None => format!("{}/{}@{}", destination.host, copy.repository, image.digest),
            };
            planned.push(ImagePlan {
                package: 0,
                source: copy.source.clone(),
                destination: destination_ref,
                repository: copy.repository.clone(),
                tag: copy.tag.clone(),
                digest: image.digest.clone(),
                platforms: Vec::new(),
                manifests: image.manifests.iter().map(|m| m.digest.clone()).collect(),
                blobs: image.blobs.iter().map(|(d, _)| d.clone()).collect(),
                size: image.size(),
                referrer: copy.referrer.clone(),
            });
        }
        Self {
            packages: Vec::new(),
            remote_manifests,
            blobs,
            targets: vec![Target {
                destination: destination.clone(),
                images: planned,
            }],
        }
    }

    /// The images at the first destination: the run's images once (each target lists the same
    /// images in the same order).
    pub fn images(&self) -> &[ImagePlan] {
        self.targets.first().map_or(&[], |t| &t.images)
    }

    /// A manifest's media type and exact bytes: from the package that carries the image, another
    /// package of the run, or the source registry.
    pub fn manifest(&self, image: &ImagePlan, digest: &Digest) -> Option<(&str, &bytes::Bytes)> {
        if let Some(m) = self.remote_manifests.get(digest) {
            return Some((&m.media_type, &m.bytes));
        }
        self.packages
            .get(image.package)
            .and_then(|p| p.manifests.get(digest))
            .or_else(|| self.packages.iter().find_map(|p| p.manifests.get(digest)))
            .map(|m| (m.media_type.as_str(), &m.bytes))
    }

    /// Unique blobs and bytes the plan references.
    pub fn totals(&self) -> (usize, u64) {
        (self.blobs.len(), self.blobs.values().map(|b| b.size).sum())
    }
}

/// One image of a registry → registry copy, resolved at the source.
#[derive(Debug, Clone)]
pub struct RemoteCopy {
    /// `host/repository:tag` (or `@digest`) at the source, for reports.
    pub source: String,
    pub source_repository: String,
    /// The repository at the destination.
    pub repository: String,
    /// The tag set last at the destination; `None` copies by digest only.
    pub tag: Option<String>,
    pub image: crate::transfer::pull::RemoteImage,
    /// Set for an artifact about another image of the copy.
    pub referrer: Option<crate::package::referrer::Referrer>,
}

/// The images of `flat` at `destination`, in package order. The same image (same repository,
/// tag and digest) can be carried by several packages of a directory; it is pushed once.
fn images_for(flat: &[Arc<Package>], destination: &Destination) -> Vec<ImagePlan> {
    let mut images: Vec<ImagePlan> = Vec::new();
    let mut seen: HashMap<(String, Option<String>, Digest), ()> = HashMap::new();
    // cosign keeps every signature of an image in one manifest under one tag, so two packages
    // that collected it at different times carry two digests for that tag: the one with more
    // signatures (layers) is pushed, not a refusal of the run.
    let mut signature_tags: HashMap<(String, String), (usize, usize)> = HashMap::new();
    for (pi, pkg) in flat.iter().enumerate() {
        for img in &pkg.images {
            let repository = destination.repository(&img.reference.repository);
            let key = (
                repository.clone(),
                img.reference.tag.clone(),
                img.digest.clone(),
            );
            if seen.insert(key, ()).is_some() {
                continue;
            }
            if let (Some(_), Some(tag)) = (&img.referrer, &img.reference.tag) {
                let layers = pkg
                    .manifests
                    .get(&img.digest)
                    .and_then(|m| serde_json::from_slice::<serde_json::Value>(&m.bytes).ok())
                    .and_then(|v| v.get("layers").and_then(|l| l.as_array()).map(Vec::len))
                    .unwrap_or(0);
                match signature_tags.get(&(repository.clone(), tag.clone())) {
                    Some((_, kept)) if *kept >= layers => continue,
                    Some((at, _)) => {
                        let at = *at;
                        images.remove(at);
                        for (_, (i, _)) in signature_tags.iter_mut() {
                            if *i > at {
                                *i -= 1;
                            }
                        }
                    }
                    None => {}
                }
                signature_tags.insert((repository.clone(), tag.clone()), (images.len(), layers));
            }
            let destination_ref = match &img.reference.tag {
                Some(t) => format!("{}/{repository}:{t}", destination.host),
                None => format!("{}/{repository}@{}", destination.host, img.digest),
            };
            images.push(ImagePlan {
                package: pi,
                source: img.reference.to_string(),
                destination: destination_ref,
                repository,
                tag: img.reference.tag.clone(),
                digest: img.digest.clone(),
                platforms: img.platforms.clone(),
                manifests: img.manifests.clone(),
                blobs: img.blobs.clone(),
                size: img.size,
                referrer: img.referrer.clone(),
            });
        }
    }
    images
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_keeps_repository_path() {
        let (d, plain) = Destination::parse("192.168.1.10:11443").unwrap();
        assert!(!plain);
        assert_eq!(d.repository("acp/topolvm-operator"), "acp/topolvm-operator");
        let (d, _) = Destination::parse("https://harbor.io/mirror/x/").unwrap();
        assert_eq!(d.host, "harbor.io");
        assert_eq!(d.repository("acp/a"), "mirror/x/acp/a");
        let (_, plain) = Destination::parse("http://127.0.0.1:5000").unwrap();
        assert!(plain);
        assert!(Destination::parse("ftp://x").is_err());
        assert!(Destination::parse("/x").is_err());
        assert!(Destination::parse("h/UPPER").is_err());
        assert!(Destination::parse("h o").is_err());
        let e = Destination::parse_flag("--from", "ftp://x").unwrap_err();
        assert!(
            e.message.starts_with("invalid --from \"ftp://x\""),
            "{}",
            e.message
        );
        let (d, _) = Destination::parse("h:5000/dr/").unwrap();
        assert_eq!(d.label(), "h:5000/dr");
    }
}
