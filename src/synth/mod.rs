//! Synthetic packages for tests, demos and benchmarks (`examples/mkpkg.rs`).
//!
//! [`write`] turns a [`SynthSpec`] into a package file (or directory) holding real multi-arch
//! images: gzip'd tar layers of pseudo-random bytes, configs with `rootfs.diff_ids`, one manifest
//! per platform and an index per image, in an OCI image layout or a Docker Distribution storage
//! tree. Everything is reproducible: the same spec gives the same bytes and digests on every
//! machine and every version of this crate (fixed timestamps and owners, a self-contained PRNG),
//! so tests can pin digests.
//!
//! Memory stays bounded whatever the layer size: every blob is hashed while it is written to a
//! staging file in the output directory, and archives are filled from those files.
//!
//! This is support code, not part of violet's command line.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Serialize;

use crate::digest::Digest;
use crate::package::metadata::METADATA_FILE;
use crate::package::oci_layout::ImagePlatform;
use crate::package::{Container, PackageType, StoreKind};
use crate::writer::HashingWriter;

pub mod cosign;
mod image;
pub use cosign::{SignTarget, SynthKey, SynthSignature, Tamper};
use image::*;

const FIXED_CREATED: &str = "2023-11-14T22:13:20Z";
const CHUNK: usize = 1 << 20;
const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
const DISTRIBUTION_ROOT: &str = "docker/registry/v2";

/// Which manifest media types the images use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaTypes {
    /// OCI image index / manifest / config / `tar+gzip` layers.
    #[default]
    Oci,
    /// Docker schema 2 manifest list / manifest / container config / `rootfs.diff.tar.gzip` layers.
    Docker,
}

impl MediaTypes {
    fn index(self) -> &'static str {
        match self {
            MediaTypes::Oci => crate::package::mediatype::OCI_INDEX,
            MediaTypes::Docker => crate::package::mediatype::DOCKER_LIST,
        }
    }
    fn manifest(self) -> &'static str {
        match self {
            MediaTypes::Oci => crate::package::mediatype::OCI_MANIFEST,
            MediaTypes::Docker => crate::package::mediatype::DOCKER_MANIFEST,
        }
    }
    fn config(self) -> &'static str {
        match self {
            MediaTypes::Oci => crate::package::mediatype::OCI_CONFIG,
            MediaTypes::Docker => "application/vnd.docker.container.image.v1+json",
        }
    }
    fn layer(self) -> &'static str {
        match self {
            MediaTypes::Oci => crate::package::mediatype::OCI_LAYER_GZIP,
            MediaTypes::Docker => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        }
    }
}

/// One multi-arch image of a synthetic package.
#[derive(Debug, Clone)]
pub struct SynthImage {
    /// Repository without registry, e.g. `acp/topolvm-operator`.
    pub repository: String,
    pub tag: String,
    /// `os/arch[/variant]`; default `linux/amd64` and `linux/arm64`.
    pub platforms: Vec<String>,
    /// Layers per platform.
    pub layers: usize,
    /// Bytes of file content per layer (the gzip'd blob is a little larger: the data is incompressible).
    pub layer_size: u64,
    /// How many of the `layers` (the first ones) are identical in every image of the package with
    /// the same seed and platform, so that they become shared blobs.
    pub shared_layers: usize,
    /// Per-layer sizes and sharing, for packages shaped like real ones (many small layers, a few
    /// big ones, a pool of base layers several images use). When not empty it replaces `layers`,
    /// `layer_size` and `shared_layers`, for every platform.
    pub layer_plan: Vec<SynthLayer>,
}

/// One layer of a [`SynthImage::layer_plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthLayer {
    /// Bytes of file content.
    pub size: u64,
    /// Layers with the same key are the same blob (per platform and seed) in every image that
    /// names them; `None` makes the layer unique to its image.
    pub shared: Option<String>,
}

impl SynthImage {
    /// Two platforms, two 4 KiB layers each, none shared.
    pub fn new(repository: impl Into<String>, tag: impl Into<String>) -> Self {
        Self {
            repository: repository.into(),
            tag: tag.into(),
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
            layers: 2,
            layer_size: 4096,
            shared_layers: 0,
            layer_plan: Vec::new(),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthSpec {
    pub name: String,
    pub package_type: PackageType,
    pub version: String,
    /// Used by bundles (file name and metadata).
    pub channel: String,
    pub images: Vec<SynthImage>,
    /// Registry host recorded in image references, e.g. `harbor.demo.io`.
    pub registry: String,
    pub store: StoreKind,
    pub container: Container,
    /// Write `violet.yaml` (otherwise only the file name describes the package).
    pub metadata: bool,
    /// Nested packages (core packages): written as `plugins/<file name>`. They must use a file
    /// container when the parent is an archive.
    pub children: Vec<SynthSpec>,
    /// Content seed: the same seed gives the same layer bytes.
    pub seed: u64,
    pub media_types: MediaTypes,
    /// gzip level (0-9) of a `.tgz` container (layers are always gzip'd as stored blocks); the
    /// blobs are incompressible, so 0 or 1 is best.
    pub gzip_level: u32,
    /// cosign signatures of chosen images, stored as `<repository>:sha256-<hex>.sig` images.
    pub signatures: Vec<SynthSignature>,
}

impl SynthSpec {
    /// A `.tgz` package with a Distribution store, metadata, version `v1.0.0`, channel `stable`,
    /// registry `harbor.demo.io`, seed 1 and no images yet.
    pub fn new(name: impl Into<String>, package_type: PackageType) -> Self {
        Self {
            name: name.into(),
            package_type,
            version: "v1.0.0".into(),
            channel: "stable".into(),
            images: Vec::new(),
            registry: "harbor.demo.io".into(),
            store: StoreKind::Distribution,
            container: Container::TarGz,
            metadata: true,
            children: Vec::new(),
            seed: 1,
            media_types: MediaTypes::Oci,
            gzip_level: 1,
            signatures: Vec::new(),
        }
    }

    /// The documented package file name: `<name>.<channel>.ALL.<version>.tgz` for bundles,
    /// `<name>.ALL.<version>.tgz` otherwise (extension by container; none for a directory).
    pub fn file_name(&self) -> String {
        let base = match self.package_type {
            PackageType::Bundle => format!("{}.{}.ALL.{}", self.name, self.channel, self.version),
            _ => format!("{}.ALL.{}", self.name, self.version),
        };
        match self.container {
            Container::Tar => format!("{base}.tar"),
            Container::TarGz => format!("{base}.tgz"),
            Container::TarZst => format!("{base}.tar.zst"),
            Container::Directory => base,
        }
    }

    /// `registry/repository:tag` of an image of this package.
    pub fn reference(&self, image: &SynthImage) -> String {
        format!("{}/{}:{}", self.registry, image.repository, image.tag)
    }
}

/// What [`write`] produced.
#[derive(Debug, Clone)]
pub struct SynthPackage {
    /// The package file or directory. For a nested package: its entry path inside the parent
    /// (`plugins/<file name>`).
    pub path: PathBuf,
    /// `registry/repository:tag` and the digest of its index, in spec order.
    pub images: Vec<(String, Digest)>,
    /// The signature images (`registry/repository:sha256-<hex>.sig`) and their manifest digests.
    pub signatures: Vec<(String, Digest)>,
    /// Unique config and layer blobs (manifests not counted), as `Package::blob_totals` counts them.
    pub blob_count: usize,
    pub blob_bytes: u64,
    pub children: Vec<SynthPackage>,
}

/// Writes the package described by `spec` into `out_dir` (created if missing) and returns what it
/// holds. An existing package of the same name is replaced.
pub fn write(spec: &SynthSpec, out_dir: &Path) -> io::Result<SynthPackage> {
    fs::create_dir_all(out_dir).map_err(|e| at(out_dir, e))?;
    let file_name = spec.file_name();
    let staging = out_dir.join(format!(".synth-staging-{file_name}"));
    remove_any(&staging)?;
    fs::create_dir_all(&staging).map_err(|e| at(&staging, e))?;
    let result = write_staged(spec, out_dir, &file_name, &staging);
    let cleanup = remove_any(&staging);
    let pkg = result?;
    cleanup?;
    Ok(pkg)
}

fn write_staged(
    spec: &SynthSpec,
    out_dir: &Path,
    file_name: &str,
    staging: &Path,
) -> io::Result<SynthPackage> {
    let mut store = Staged::new(staging.join("blobs"))?;
    let mut images = Vec::new();
    for image in &spec.images {
        let digest = store.add_image(spec, image)?;
        images.push((spec.reference(image), digest));
    }
    let signatures = add_signatures(spec, &mut store, &images)?;

    let children_dir = staging.join("children");
    let mut children = Vec::new();
    let mut child_files = Vec::new();
    for child in &spec.children {
        if spec.container != Container::Directory && child.container == Container::Directory {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: nested package {} must use a file container inside an archive",
                    file_name, child.name
                ),
            ));
        }
        let mut pkg = write(child, &children_dir)?;
        let entry = format!("plugins/{}", child.file_name());
        child_files.push((entry.clone(), pkg.path.clone()));
        pkg.path = PathBuf::from(entry);
        children.push(pkg);
    }

    let mut files: Vec<(String, Source)> = Vec::new();
    if spec.metadata {
        files.push((METADATA_FILE.into(), Source::Bytes(metadata_yaml(spec)?)));
    }
    files.extend(store.layout_entries(spec)?);
    files.extend(
        child_files
            .into_iter()
            .map(|(entry, path)| (entry, Source::File(path))),
    );

    let (blob_count, blob_bytes) = store.blob_totals();
    let final_path = out_dir.join(file_name);
    remove_any(&final_path)?;
    if spec.container == Container::Directory {
        for (entry, source) in files {
            let dest = final_path.join(&entry);
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(|e| at(parent, e))?;
            }
            match source {
                // The staging directory is in the output directory, so a rename never copies.
                Source::File(path) => fs::rename(&path, &dest).map_err(|e| at(&dest, e))?,
                Source::Bytes(bytes) => fs::write(&dest, bytes).map_err(|e| at(&dest, e))?,
            }
        }
    } else {
        let partial = out_dir.join(format!("{file_name}.partial"));
        let out =
            BufWriter::with_capacity(CHUNK, File::create(&partial).map_err(|e| at(&partial, e))?);
        let level = Compression::new(spec.gzip_level.min(9));
        let written = match spec.container {
            Container::TarGz => {
                write_tar(GzEncoder::new(out, level), &files).and_then(|gz| gz.finish())
            }
            Container::TarZst => write_tar(
                zstd::Encoder::new(out, 1).map_err(|e| at(&partial, e))?,
                &files,
            )
            .and_then(|z| z.finish()),
            _ => write_tar(out, &files),
        };
        // No fsync: these are throwaway test files, and benchmarks drop the page cache themselves.
        written
            .and_then(|out| out.into_inner().map_err(|e| e.into_error()))
            .map_err(|e| at(&partial, e))?;
        fs::rename(&partial, &final_path).map_err(|e| at(&final_path, e))?;
    }
    Ok(SynthPackage {
        path: final_path,
        images,
        signatures,
        blob_count,
        blob_bytes,
        children,
    })
}

/// Signs the images `spec.signatures` names; signatures of one digest share one artifact.
fn add_signatures(
    spec: &SynthSpec,
    store: &mut Staged,
    images: &[(String, Digest)],
) -> io::Result<Vec<(String, Digest)>> {
    // (repository, signed digest) -> (payload, signature) layers, in the order first named
    type Layers = Vec<(Vec<u8>, Vec<u8>)>;
    let mut artifacts: Vec<((String, Digest), Layers)> = Vec::new();
    for s in &spec.signatures {
        let (image, (_, top)) = spec
            .images
            .get(s.image)
            .zip(images.get(s.image))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("signature of image {}: no such image", s.image),
                )
            })?;
        let mut digests = Vec::new();
        if matches!(s.target, SignTarget::Top | SignTarget::Both) {
            digests.push(top.clone());
        }
        if matches!(s.target, SignTarget::Platforms | SignTarget::Both) {
            digests.extend(
                store
                    .platform_manifests
                    .get(top)
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        let docker_reference = format!("{}/{}", spec.registry, image.repository);
        for d in digests {
            let layer = s.layer(&d, &docker_reference);
            let key = (image.repository.clone(), d);
            match artifacts.iter_mut().find(|(k, _)| k == &key) {
                Some((_, layers)) => layers.push(layer),
                None => artifacts.push((key, vec![layer])),
            }
        }
    }
    let mut out = Vec::new();
    for ((repository, signed), layers) in artifacts {
        let artifact = cosign::artifact(&layers);
        out.push(store.add_signature(spec, &repository, &signed, &artifact)?);
    }
    Ok(out)
}

/// Flips one byte in the middle of the largest blob (a layer) of a directory or uncompressed tar
/// package, without changing any size, and returns the digest of the blob now corrupt.
pub fn corrupt_blob(path: &Path) -> io::Result<Digest> {
    let (file, offset, size, entry) = if path.is_dir() {
        let mut best: Option<(PathBuf, u64)> = None;
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(&dir).map_err(|e| at(&dir, e))? {
                let e = e.map_err(|e| at(&dir, e))?;
                let meta = e.metadata().map_err(|err| at(&e.path(), err))?;
                if meta.is_dir() {
                    stack.push(e.path());
                } else if digest_in_path(&e.path().to_string_lossy()).is_some()
                    && best.as_ref().is_none_or(|(_, s)| meta.len() > *s)
                {
                    best = Some((e.path(), meta.len()));
                }
            }
        }
        let (file, size) = best.ok_or_else(|| no_blob(path))?;
        let entry = file.to_string_lossy().into_owned();
        (file, 0, size, entry)
    } else {
        let f = File::open(path).map_err(|e| at(path, e))?;
        let mut archive = tar::Archive::new(f);
        let mut best: Option<(u64, u64, String)> = None;
        for e in archive.entries().map_err(|e| at(path, e))? {
            let e = e.map_err(|e| at(path, e))?;
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            if e.header().entry_type().is_file()
                && digest_in_path(&name).is_some()
                && best.as_ref().is_none_or(|(_, s, _)| e.size() > *s)
            {
                best = Some((e.raw_file_position(), e.size(), name));
            }
        }
        let (offset, size, entry) = best.ok_or_else(|| no_blob(path))?;
        (path.to_path_buf(), offset, size, entry)
    };
    let digest = digest_in_path(&entry).ok_or_else(|| no_blob(path))?;
    if size == 0 {
        return Err(no_blob(path));
    }
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&file)
        .map_err(|e| at(&file, e))?;
    let pos = offset + size / 2;
    let mut byte = [0u8; 1];
    f.seek(SeekFrom::Start(pos))
        .and_then(|_| f.read_exact(&mut byte))
        .map_err(|e| at(&file, e))?;
    byte[0] ^= 0xff;
    f.seek(SeekFrom::Start(pos))
        .and_then(|_| f.write_all(&byte))
        .map_err(|e| at(&file, e))?;
    Ok(digest)
}

fn no_blob(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{}: no blob found to corrupt (only directory and .tar packages are supported)",
            path.display()
        ),
    )
}

/// The digest named by a blob path of either store (`blobs/sha256/<hex>`,
/// `docker/registry/v2/blobs/sha256/<hh>/<hex>/data`).
fn digest_in_path(path: &str) -> Option<Digest> {
    let parts: Vec<&str> = path.split('/').collect();
    let at = parts.iter().position(|p| *p == "sha256")?;
    if parts.get(at.checked_sub(1)?) != Some(&"blobs") {
        return None;
    }
    parts[at + 1..]
        .iter()
        .find_map(|p| Digest::from_hex(p).ok())
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn remove_any(path: &Path) -> io::Result<()> {
    let r = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    r.map_err(|e| at(path, e))
}

enum Source {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// Writes `files` as a tar with fixed owners and times, parent directories before their files.
fn write_tar<W: Write>(w: W, files: &[(String, Source)]) -> io::Result<W> {
    let mut tar = tar::Builder::new(w);
    let mut dirs = BTreeSet::new();
    for (entry, source) in files {
        let mut parent = String::new();
        for part in entry
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, d)| d)
            .unwrap_or(&[])
        {
            parent.push_str(part);
            parent.push('/');
            if dirs.insert(parent.clone()) {
                let mut h = tar_header("placeholder/", 0, true)?;
                tar.append_data(&mut h, &parent, io::empty())?;
            }
        }
        match source {
            Source::Bytes(bytes) => {
                let mut h = tar_header("placeholder", bytes.len() as u64, false)?;
                tar.append_data(&mut h, entry, bytes.as_slice())?;
            }
            Source::File(path) => {
                let f = File::open(path).map_err(|e| at(path, e))?;
                let len = f.metadata().map_err(|e| at(path, e))?.len();
                let mut h = tar_header("placeholder", len, false)?;
                tar.append_data(&mut h, entry, io::BufReader::with_capacity(CHUNK, f))?;
            }
        }
    }
    tar.into_inner()
}

// ---------------------------------------------------------------------------------------------
// Metadata

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetadataFile {
    api_version: &'static str,
    kind: &'static str,
    name: String,
    display_name: String,
    #[serde(rename = "type")]
    package_type: &'static str,
    version: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    channels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_channel: Option<String>,
    architectures: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    related_images: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_catalog_source: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    operator: Option<OperatorFields>,
    #[serde(skip_serializing_if = "Option::is_none")]
    module_plugin: Option<ModulePlugin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lifecycle: Option<&'static str>,
    manifests_first: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OperatorFields {
    csv_name: String,
    skip_range: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    replaces: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModulePlugin {
    api_version: &'static str,
    kind: &'static str,
    metadata: ObjectMeta,
    spec: ModulePluginSpec,
}

#[derive(Serialize)]
struct ObjectMeta {
    name: String,
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModulePluginSpec {
    name: String,
    /// The CRD types it as an object of translations and requires it, with `deleteable` and `logo`.
    description: BTreeMap<String, String>,
    deleteable: bool,
    logo: String,
    version: String,
}

fn metadata_yaml(spec: &SynthSpec) -> io::Result<Vec<u8>> {
    let refs: Vec<String> = spec.images.iter().map(|i| spec.reference(i)).collect();
    let mut architectures: Vec<String> = Vec::new();
    for p in spec.images.iter().flat_map(|i| &i.platforms) {
        if !architectures.contains(p) {
            architectures.push(p.clone());
        }
    }
    let bundle = spec.package_type == PackageType::Bundle;
    let plain_version = spec.version.trim_start_matches('v');
    let file = MetadataFile {
        api_version: "violet.alauda.io/v1",
        kind: "Package",
        name: spec.name.clone(),
        display_name: spec.name.clone(),
        package_type: spec.package_type.as_str(),
        version: spec.version.clone(),
        channels: if bundle {
            vec![spec.channel.clone()]
        } else {
            Vec::new()
        },
        default_channel: bundle.then(|| spec.channel.clone()),
        architectures,
        artifact: refs.first().cloned(),
        related_images: refs.iter().skip(1).cloned().collect(),
        default_catalog_source: bundle.then_some("platform"),
        operator: bundle.then(|| OperatorFields {
            csv_name: format!("{}.{}", spec.name, spec.version),
            skip_range: format!(">=0.0.0 <{plain_version}"),
            replaces: None,
        }),
        module_plugin: (spec.package_type == PackageType::Plugin).then(|| ModulePlugin {
            api_version: "cluster.alauda.io/v1alpha1",
            kind: "ModulePlugin",
            metadata: ObjectMeta {
                name: spec.name.clone(),
                labels: BTreeMap::from([
                    ("cpaas.io/module-name".into(), spec.name.clone()),
                    ("cpaas.io/lifecycle-type".into(), "agnostic".into()),
                ]),
            },
            spec: ModulePluginSpec {
                name: spec.name.clone(),
                description: BTreeMap::from([
                    ("en".into(), format!("synthetic plugin {}", spec.name)),
                    ("zh".into(), format!("synthetic plugin {}", spec.name)),
                ]),
                deleteable: true,
                logo: String::new(),
                version: spec.version.clone(),
            },
        }),
        lifecycle: match spec.package_type {
            PackageType::Plugin => Some("agnostic"),
            PackageType::Core => Some("core"),
            _ => None,
        },
        manifests_first: true,
    };
    serde_saphyr::to_string(&file)
        .map(String::into_bytes)
        .map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(store: StoreKind, container: Container) -> SynthSpec {
        let mut s = SynthSpec::new("demo-operator", PackageType::Bundle);
        s.store = store;
        s.container = container;
        let mut a = SynthImage::new("acp/demo-operator-bundle", "v1.0.0");
        a.shared_layers = 1;
        let mut b = SynthImage::new("acp/demo-operator", "v1.0.0");
        b.shared_layers = 1;
        s.images = vec![a, b];
        s
    }

    fn entries(path: &Path) -> Vec<String> {
        let f = File::open(path).unwrap();
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn same_spec_same_digests_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let one = write(
            &spec(StoreKind::OciLayout, Container::TarGz),
            &dir.path().join("a"),
        )
        .unwrap();
        let two = write(
            &spec(StoreKind::OciLayout, Container::TarGz),
            &dir.path().join("b"),
        )
        .unwrap();
        assert_eq!(one.images, two.images);
        assert_eq!(fs::read(&one.path).unwrap(), fs::read(&two.path).unwrap());
        // Pinned: a change here means every snapshot and every pinned digest in tests changes too.
        assert_eq!(
            one.images[0].1.as_str(),
            "sha256:c6659f9347bbd01f02ada447db3381c803e2831f41a3de937d44a0c5fa2c0260"
        );
        // 2 images x 2 platforms x (2 layers + config), minus the 2 shared layers counted twice.
        assert_eq!(one.blob_count, 10);
        assert!(one.path.ends_with("demo-operator.stable.ALL.v1.0.0.tgz"));
    }

    #[test]
    fn manifests_come_before_layers() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = write(&spec(StoreKind::Distribution, Container::TarGz), dir.path()).unwrap();
        let mut archive =
            tar::Archive::new(flate2::read::GzDecoder::new(File::open(&pkg.path).unwrap()));
        // (entry name, is a manifest or index) for every file entry, in archive order
        let mut files = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            if e.header().entry_type().is_file() {
                let name = e.path().unwrap().to_string_lossy().into_owned();
                let mut bytes = Vec::new();
                e.read_to_end(&mut bytes).unwrap();
                let manifest = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .is_ok_and(|v| v.get("schemaVersion").is_some());
                files.push((name, manifest));
            }
        }
        assert_eq!(files[0].0, METADATA_FILE);
        let blobs: Vec<&(String, bool)> =
            files.iter().filter(|(n, _)| n.ends_with("/data")).collect();
        // 10 configs and layers, and per image 2 manifests and an index
        assert_eq!(blobs.len(), 10 + 2 * 3);
        let first_data = files
            .iter()
            .position(|(n, m)| n.ends_with("/data") && !m)
            .unwrap();
        assert!(
            files[first_data..]
                .iter()
                .all(|(n, m)| n.ends_with("/data") && !m),
            "{files:?}"
        );
        let tags = files
            .iter()
            .filter(|(n, _)| n.contains("/_manifests/tags/") && n.ends_with("current/link"));
        assert_eq!(tags.count(), 2);
        let leftovers = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != pkg.path.file_name().unwrap());
        assert_eq!(leftovers.count(), 0, "staging files left behind");
    }

    #[test]
    fn corrupting_a_directory_package_breaks_one_blob() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = write(
            &spec(StoreKind::OciLayout, Container::Directory),
            dir.path(),
        )
        .unwrap();
        let digest = corrupt_blob(&pkg.path).unwrap();
        let bytes = fs::read(pkg.path.join("blobs/sha256").join(digest.hex())).unwrap();
        assert_ne!(Digest::of(&bytes), digest);
    }

    #[test]
    fn corrupting_a_tar_package_breaks_one_blob() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = write(&spec(StoreKind::Distribution, Container::Tar), dir.path()).unwrap();
        let digest = corrupt_blob(&pkg.path).unwrap();
        let mut archive = tar::Archive::new(File::open(&pkg.path).unwrap());
        let mut found = false;
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_string_lossy().contains(digest.hex()) {
                let mut buf = Vec::new();
                e.read_to_end(&mut buf).unwrap();
                assert_ne!(Digest::of(&buf), digest);
                found = true;
            }
        }
        assert!(found);
    }

    #[test]
    fn core_package_nests_children() {
        let dir = tempfile::tempdir().unwrap();
        let mut core = SynthSpec::new("acp-core", PackageType::Core);
        core.images = vec![SynthImage::new("acp/core", "v4.0.0")];
        let mut plugin = SynthSpec::new("logging", PackageType::Plugin);
        plugin.images = vec![SynthImage::new("acp/logging", "v1.0.0")];
        core.children = vec![plugin];
        let pkg = write(&core, dir.path()).unwrap();
        assert_eq!(
            pkg.children[0].path,
            Path::new("plugins/logging.ALL.v1.0.0.tgz")
        );
        assert!(entries(&pkg.path).contains(&"plugins/logging.ALL.v1.0.0.tgz".to_string()));
    }

    #[test]
    fn layer_digests_match_their_content_and_diff_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(StoreKind::OciLayout, Container::Directory);
        s.images[0].layer_size = 3 * CHUNK as u64 + 7;
        let pkg = write(&s, dir.path()).unwrap();
        for e in fs::read_dir(pkg.path.join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            let bytes = fs::read(e.path()).unwrap();
            assert_eq!(Digest::of(&bytes).hex(), e.file_name().to_string_lossy());
        }
        let meta = fs::read_to_string(pkg.path.join(METADATA_FILE)).unwrap();
        assert!(meta.contains("manifestsFirst: true"), "{meta}");
    }

    #[test]
    fn a_layer_plan_shares_pool_layers_and_sizes_each_layer() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(StoreKind::OciLayout, Container::Directory);
        let plan = |unique: u64| {
            vec![
                SynthLayer {
                    size: 1000,
                    shared: Some("base".into()),
                },
                SynthLayer {
                    size: unique,
                    shared: None,
                },
            ]
        };
        s.images[0].layer_plan = plan(5000);
        s.images[1].layer_plan = plan(70_000);
        let pkg = write(&s, dir.path()).unwrap();
        // Per platform: one pool layer both images name, one unique layer each, one config each.
        assert_eq!(pkg.blob_count, 2 * (1 + 2 + 2));
        let mut layer_sizes = Vec::new();
        for e in fs::read_dir(pkg.path.join("blobs/sha256")).unwrap() {
            let bytes = fs::read(e.unwrap().path()).unwrap();
            if bytes.starts_with(&[0x1f, 0x8b]) {
                // gzip of stored blocks: the content plus tar headers and padding, a few KiB at most
                layer_sizes.push(bytes.len());
            }
        }
        layer_sizes.sort();
        assert_eq!(layer_sizes.len(), 6, "{layer_sizes:?}");
        assert!(layer_sizes[..2].iter().all(|n| (1000..6000).contains(n)));
        assert!(layer_sizes[2..4].iter().all(|n| (5000..11_000).contains(n)));
        assert!(
            layer_sizes[4..]
                .iter()
                .all(|n| (70_000..76_000).contains(n))
        );
    }
}
