//! Differential packages (`violet package --base`): what a base holds (a site inventory, or a
//! previous package, itself differential or not), and which layers of a new package can be left
//! out because of it. The push side of it is `preflight.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use crate::digest::Digest;
use crate::package::load;
use crate::package::metadata::Metadata;
use crate::package::metadata::archive_stem;
use crate::package::metadata::{BaseKind, Differential, ExpectedBlob};
use crate::package::oci_layout::RawManifest;
use crate::transfer::build::Images;
use crate::transfer::inventory::{DifferentialError, Inventory, is_yaml};

/// What the destination is taken to hold.
#[derive(Debug)]
pub struct Base {
    pub kind: BaseKind,
    /// The base's file name.
    pub name: String,
    /// The inventory's digest, or the sha256 of the package file.
    pub digest: Digest,
    /// Every blob the base holds: its size and a repository that holds it (a registry path for
    /// an inventory; an image's repository, before any `--dest-repo` prefix, for a package).
    pub holds: HashMap<Digest, (u64, String)>,
}

impl Base {
    /// An inventory file (`.json`, `.yaml`, `.yml`) or a package file (`.tgz`, `.tar.gz`, `.tar`,
    /// `.tar.zst`). A package's blobs are those it carries and those it expects at the site (a
    /// differential base: the site that took it holds both).
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let lower = name.to_ascii_lowercase();
        if is_yaml(path) || lower.ends_with(".json") {
            return Ok(Self::of_inventory(&Inventory::read(path)?, name));
        }
        if path.is_dir() || archive_stem(&name).is_none() {
            return Err(DifferentialError::Base {
                path: path.to_path_buf(),
                message: "not an inventory file or a package file".into(),
            }
            .into());
        }
        let pkg = load::open(path)?;
        let mut holds = HashMap::new();
        for p in pkg.flatten() {
            for image in &p.images {
                for d in &image.blobs {
                    let size = p
                        .blobs
                        .get(d)
                        .map(|b| b.size)
                        .or_else(|| p.external.get(d).copied());
                    if let Some(size) = size {
                        holds
                            .entry(d.clone())
                            .or_insert((size, image.reference.repository.clone()));
                    }
                }
            }
        }
        let digest = crate::signature::sha256_file(path).map_err(|e| DifferentialError::Base {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Self {
            kind: BaseKind::Package,
            name,
            digest,
            holds,
        })
    }

    /// The metadata record of a package whose `layers` the base holds (same digest and size):
    /// those are left out of the package and expected at the site. Configs are always carried.
    pub fn differential(&self, layers: &BTreeMap<Digest, u64>) -> Differential {
        let expected = layers
            .iter()
            .filter_map(|(d, size)| {
                let (held, repo) = self.holds.get(d)?;
                (held == size).then(|| ExpectedBlob {
                    digest: d.clone(),
                    size: *size,
                    repository: Some(repo.clone()),
                })
            })
            .collect();
        Differential {
            against: self.kind,
            base: self.name.clone(),
            base_digest: self.digest.clone(),
            expected,
        }
    }
}

/// The layer descriptors (not configs) of image manifests given as raw bytes; indexes add
/// nothing.
pub fn layers<'a>(manifests: impl IntoIterator<Item = &'a [u8]>) -> BTreeMap<Digest, u64> {
    let mut out = BTreeMap::new();
    for bytes in manifests {
        let Ok(raw) = serde_json::from_slice::<RawManifest>(bytes) else {
            continue;
        };
        for d in raw.layers.iter().flatten() {
            if let (Ok(digest), Some(size)) = (Digest::parse(&d.digest), d.size) {
                out.insert(digest, size);
            }
        }
    }
    out
}

/// The scheme of a `--base` that names a registry rather than a file.
pub const REGISTRY_SCHEME: &str = "docker://";

impl Base {
    /// `--base docker://HOST[:PORT][/PREFIX]`: what that registry holds in the repositories of
    /// `images` (under the prefix), listed now, through `sources` (the source registry flags).
    /// Its digest is that of the inventory the listing makes.
    pub async fn from_registry(
        spec: &str,
        sources: &mut crate::build::Sources,
        images: &Images,
    ) -> anyhow::Result<Self> {
        let at = spec.strip_prefix(REGISTRY_SCHEME).unwrap_or(spec);
        let (dest, _) = crate::plan::Destination::parse_flag("--base", at)?;
        let client = sources.client(&dest.host)?;
        let mut repos: Vec<String> = match images {
            Images::None => Vec::new(),
            Images::Remote(pulled) => pulled
                .iter()
                .map(|p| dest.repository(&p.reference.repository))
                .collect(),
            Images::Local(pkg) => pkg
                .images
                .iter()
                .map(|i| dest.repository(&i.reference.repository))
                .collect(),
        };
        repos.sort();
        repos.dedup();
        let mut inv = Inventory {
            api_version: crate::transfer::inventory::API_VERSION.into(),
            kind: crate::transfer::inventory::KIND.into(),
            format_version: crate::transfer::inventory::FORMAT_VERSION,
            registry: dest.host.clone(),
            prefix: dest.prefix.clone(),
            listed_from: "package".into(),
            repositories: Vec::new(),
            digest: None,
        };
        for repo in &repos {
            if let Some(r) = crate::transfer::inventory::list_repository(&client, repo).await? {
                inv.repositories.push(r);
            }
        }
        inv.seal();
        let mut base = Self::of_inventory(&inv, format!("{REGISTRY_SCHEME}{}", dest.label()));
        base.kind = BaseKind::Registry;
        Ok(base)
    }

    fn of_inventory(inv: &Inventory, name: String) -> Self {
        let mut holds = HashMap::new();
        for r in &inv.repositories {
            for b in &r.blobs {
                holds
                    .entry(b.digest.clone())
                    .or_insert((b.size, r.name.clone()));
            }
        }
        Self {
            kind: BaseKind::Inventory,
            name,
            digest: inv.digest.clone().unwrap_or_else(|| inv.compute_digest()),
            holds,
        }
    }

    /// A `--base` value: `docker://…` is a registry, anything else a file.
    pub async fn resolve(
        spec: &std::ffi::OsStr,
        sources: &mut crate::build::Sources,
        images: &Images,
    ) -> anyhow::Result<Self> {
        match spec.to_str() {
            Some(s) if s.starts_with(REGISTRY_SCHEME) => {
                Self::from_registry(s, sources, images).await
            }
            _ => Self::open(Path::new(spec)),
        }
    }
}

/// `--base` of `package` and `create`: the layers of `images` the base holds are left out and
/// `meta` records them; returns the digests to leave out. Blobs a differential source directory
/// already lacks stay expected.
pub fn apply(base: Base, images: &Images, meta: &mut Metadata) -> anyhow::Result<HashSet<Digest>> {
    let layers = match images {
        Images::None => Default::default(),
        Images::Remote(pulled) => layers(
            pulled
                .iter()
                .flat_map(|p| p.selected.image.manifests.iter().map(|m| &m.bytes[..])),
        ),
        Images::Local(pkg) => layers(pkg.manifests.values().map(|m| &m.bytes[..])),
    };
    let mut record = base.differential(&layers);
    if let (Images::Local(_), Some(old)) = (images, &meta.differential) {
        for e in &old.expected {
            if !record.expected.iter().any(|n| n.digest == e.digest) {
                record.expected.push(e.clone());
            }
        }
    }
    let omit = record.expected.iter().map(|e| e.digest.clone()).collect();
    meta.differential = Some(record);
    Ok(omit)
}
