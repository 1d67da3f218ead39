//! Opening packages: a single package (file or extracted directory), or every package in a directory.
//!
//! Opening reads the container once: small files (metadata, `index.json`, links, manifests) are
//! kept in memory within fixed bounds, every other blob is only recorded (size, offset). The image
//! graphs are then built from what was seen and checked (manifest digests, blob presence and sizes):
//! `assemble.rs` turns a finished scan into a `Package`, `graph.rs` walks each image.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{Cursor, Read};
use std::path::Path;

use bytes::Bytes;

use crate::digest::Digest;
use crate::package::archive::{self, Ctx, EntryInfo, MAX_SMALL_FILE, MAX_SMALL_TOTAL};
use crate::package::blobs::Flow;
use crate::package::metadata::{self, FileNameInfo, METADATA_FILE};
use crate::package::oci_layout::{self, Descriptor, ImagePlatform, RawManifest, Root};
use crate::package::{
    Blob, BlobLocation, Container, Image, Manifest, Metadata, MetadataSource, Package,
    PackageError, PackageType, Store, StoreKind, distribution, mediatype,
};

mod assemble;
mod graph;
use graph::Graph;

/// Nested packages deeper than this are ignored (with a warning): a core package nests one level.
const MAX_DEPTH: usize = 4;
/// Index nesting deeper than this is refused: real tools write at most two levels.
const MAX_INDEX_DEPTH: usize = 8;

type Effective =
    fn(Option<Metadata>, Option<FileNameInfo>) -> (Metadata, MetadataSource, Vec<String>);

/// How metadata is read, so the container and store logic can be exercised on its own.
pub(crate) struct MetaHooks {
    pub parse: fn(&Path, &str, &[u8]) -> Result<Metadata, PackageError>,
    pub file_name: fn(&str) -> Option<FileNameInfo>,
    pub effective: Effective,
}

const FILE_METADATA: MetaHooks = MetaHooks {
    parse: metadata::parse,
    file_name: metadata::parse_file_name,
    effective: metadata::effective,
};

/// Opens one package: a `.tgz`/`.tar.gz`/`.tar`/`.tar.zst` file or an extracted package directory
/// (one holding the metadata file or an image store at its root). Nested packages (core package
/// `plugins/*.tgz`) are opened too and appear in `Package::children`.
pub fn open(path: &Path) -> Result<Package, PackageError> {
    open_with(path, &FILE_METADATA)
}

pub(crate) fn open_with(path: &Path, hooks: &MetaHooks) -> Result<Package, PackageError> {
    let container = archive::detect(path)?;
    let ctx = Ctx {
        path: path.to_path_buf(),
        nest: Vec::new(),
    };
    let mut scan = Scan::new(ctx.clone(), hooks, 0, container == Container::Directory);
    // Stopping early only pays off (and is only safe to derive locations for) behind a decompressor.
    scan.early = !container.random_access();
    archive::walk_path(path, container, &ctx, &mut |i, r| scan.visit(i, r))?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    scan.finish(container, file_name)
}

/// Whether `path` is itself a package (archive file, or directory with metadata / image store).
pub fn is_package(path: &Path) -> bool {
    if path.is_dir() {
        let has = |p: &str| path.join(p).exists();
        return has(METADATA_FILE)
            || has("oci-layout")
            || (has("index.json") && has("blobs"))
            || has("docker/registry/v2")
            || has_nested_packages(&path.join("plugins"));
    }
    std::fs::File::open(path)
        .and_then(|mut f| archive::read_head(&mut f, 512))
        .is_ok_and(|head| archive::sniff(&head).is_some())
}

/// A core package directory: `plugins/` holding package archives.
fn has_nested_packages(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            archive::has_archive_extension(&e.file_name().to_string_lossy())
                && is_package(&e.path())
        })
    })
}

/// Every package in `path`: `path` itself when it is a package, otherwise every package file and
/// extracted package directory directly inside it, sorted by name. One unreadable package does not
/// hide the others: each comes back as its own `Result`.
pub fn discover(path: &Path) -> Result<Vec<Result<Package, PackageError>>, PackageError> {
    let meta = std::fs::metadata(path).map_err(|e| archive::io_error(path, e))?;
    if is_package(path) {
        return Ok(vec![open(path)]);
    }
    if !meta.is_dir() {
        return Err(PackageError::NotAnArchive {
            path: path.to_path_buf(),
        });
    }
    let mut entries = Vec::new();
    for e in std::fs::read_dir(path).map_err(|e| archive::io_error(path, e))? {
        entries.push(e.map_err(|e| archive::io_error(path, e))?.path());
    }
    entries.sort();
    Ok(entries
        .into_iter()
        // A file named like a package is one, even when its content is damaged: it is reported
        // as unreadable instead of being skipped silently (as `verify` does).
        .filter(|p| {
            is_package(p)
                || (p.is_file()
                    && p.file_name()
                        .is_some_and(|n| archive::has_archive_extension(&n.to_string_lossy())))
        })
        .map(|p| open(&p))
        .collect())
}

/// What one pass over a container found.
struct Scan<'h> {
    ctx: Ctx,
    hooks: &'h MetaHooks,
    depth: usize,
    /// The physical top level is a directory: a nested tar's offsets count from its own file.
    top_is_dir: bool,
    /// Early stop allowed (compressed, not nested); it happens only when the metadata says so.
    early: bool,
    file_meta: Option<Metadata>,
    /// `oci-layout`, `index.json` and tag `current/link` files, by entry path.
    small: BTreeMap<String, Vec<u8>>,
    revisions: HashSet<String>,
    held: u64,
    /// Every blob entry of every store: size and offset.
    blob_entries: HashMap<String, (u64, Option<u64>)>,
    /// Blob entries that are manifests or indexes, kept whole.
    manifests: HashMap<String, Bytes>,
    /// Manifest digest -> child manifest digests, for the early-stop reachability check.
    loaded: HashMap<Digest, Vec<Digest>>,
    pending: Option<(HashSet<Digest>, bool)>,
    config_platforms: HashMap<String, String>,
    /// JSON blobs that are not manifests and do not hash to their name: reported if an image
    /// needs them as a manifest (a damaged manifest no longer parses as one).
    mismatched: HashMap<String, Digest>,
    /// JSON blobs shaped like a manifest (they have `manifests`, `layers` or `config`) that do
    /// not parse as one, with the parser's reason: a descriptor with a negative size, say.
    broken: HashMap<String, String>,
    children: Vec<Package>,
    warnings: Vec<String>,
    stopped: bool,
}

impl<'h> Scan<'h> {
    fn new(ctx: Ctx, hooks: &'h MetaHooks, depth: usize, top_is_dir: bool) -> Self {
        Scan {
            ctx,
            hooks,
            depth,
            top_is_dir,
            early: false,
            file_meta: None,
            small: BTreeMap::new(),
            revisions: HashSet::new(),
            held: 0,
            blob_entries: HashMap::new(),
            manifests: HashMap::new(),
            loaded: HashMap::new(),
            pending: None,
            config_platforms: HashMap::new(),
            mismatched: HashMap::new(),
            broken: HashMap::new(),
            children: Vec::new(),
            warnings: Vec::new(),
            stopped: false,
        }
    }

    fn visit(&mut self, info: &EntryInfo, r: &mut dyn Read) -> Result<Flow, PackageError> {
        let path = info.path.as_str();
        if path == METADATA_FILE {
            let bytes = self.hold(info, r)?;
            self.file_meta = Some((self.hooks.parse)(
                &self.ctx.path,
                &self.ctx.entry(path),
                &bytes,
            )?);
            return Ok(Flow::Continue);
        }
        let blob = distribution::blob_of(path).or_else(|| oci_layout::blob_of(path));
        if let Some((_, digest)) = blob {
            self.blob_entries
                .insert(path.to_string(), (info.size, info.offset));
            if self.early_active() {
                let (pending, have_roots) = self.pending();
                if *have_roots && pending.is_empty() {
                    self.stopped = true;
                    return Ok(Flow::Stop);
                }
            }
            self.inspect_blob(info, r, digest)?;
            return Ok(Flow::Continue);
        }
        let file = path.rsplit('/').next().unwrap_or(path);
        if file == "oci-layout" || file == "index.json" {
            let bytes = self.hold(info, r)?;
            self.small.insert(path.to_string(), bytes);
            self.pending = None;
            return Ok(Flow::Continue);
        }
        match distribution::link_of(path) {
            Some(distribution::Link::Tag { .. }) => {
                let bytes = self.hold(info, r)?;
                self.small.insert(path.to_string(), bytes);
                self.pending = None;
                return Ok(Flow::Continue);
            }
            Some(distribution::Link::Revision { .. }) => {
                self.revisions.insert(path.to_string());
                return Ok(Flow::Continue);
            }
            None => {}
        }
        if archive::has_archive_extension(file) {
            self.nested(info, r)?;
        }
        Ok(Flow::Continue)
    }

    fn early_active(&self) -> bool {
        self.early
            && self
                .file_meta
                .as_ref()
                .is_some_and(|m| m.manifests_first && m.package_type != Some(PackageType::Core))
    }

    /// Manifests reachable from the roots seen so far but not loaded yet, and whether any root was seen.
    fn pending(&mut self) -> &(HashSet<Digest>, bool) {
        if self.pending.is_none() {
            let mut roots = Vec::new();
            for (path, bytes) in &self.small {
                if path == "index.json" || path.ends_with("/index.json") {
                    roots.extend(oci_layout::root_digests(bytes));
                } else if let Some(distribution::Link::Tag { .. }) = distribution::link_of(path)
                    && let Ok(d) = Digest::parse(String::from_utf8_lossy(bytes).trim())
                {
                    roots.push(d);
                }
            }
            let have_roots = !roots.is_empty();
            let mut pending = HashSet::new();
            let mut seen = HashSet::new();
            while let Some(d) = roots.pop() {
                if !seen.insert(d.clone()) {
                    continue;
                }
                match self.loaded.get(&d) {
                    Some(children) => roots.extend(children.iter().cloned()),
                    None => {
                        pending.insert(d);
                    }
                }
            }
            self.pending = Some((pending, have_roots));
        }
        self.pending.get_or_insert_with(|| (HashSet::new(), false))
    }

    /// Reads a small file into memory within the per-file and per-package bounds.
    fn hold(&mut self, info: &EntryInfo, r: &mut dyn Read) -> Result<Vec<u8>, PackageError> {
        if info.size > MAX_SMALL_FILE {
            return Err(self.ctx.too_large(&info.path, info.size, MAX_SMALL_FILE));
        }
        self.held += info.size;
        if self.held > MAX_SMALL_TOTAL {
            return Err(self.ctx.too_large(
                &format!("{} (metadata held in memory)", info.path),
                self.held,
                MAX_SMALL_TOTAL,
            ));
        }
        archive::read_entry(r, info, &self.ctx)
    }

    /// Keeps a blob when it is a manifest; remembers the platform when it is an image config.
    fn inspect_blob(
        &mut self,
        info: &EntryInfo,
        r: &mut dyn Read,
        digest: Digest,
    ) -> Result<(), PackageError> {
        if info.size > MAX_SMALL_FILE || info.size == 0 {
            return Ok(());
        }
        let head = archive::read_head(r, 1).map_err(|e| self.ctx.corrupt(Some(&info.path), e))?;
        if !matches!(head.first(), Some(b'{' | b' ' | b'\n' | b'\r' | b'\t')) {
            return Ok(());
        }
        let mut bytes = head;
        r.read_to_end(&mut bytes)
            .map_err(|e| self.ctx.corrupt(Some(&info.path), e))?;
        match serde_json::from_slice::<RawManifest>(&bytes) {
            Ok(raw) if raw.looks_like_manifest() => {
                self.held += info.size;
                if self.held > MAX_SMALL_TOTAL {
                    return Err(self.ctx.too_large(
                        &format!("{} (manifests held in memory)", info.path),
                        self.held,
                        MAX_SMALL_TOTAL,
                    ));
                }
                let children = raw
                    .manifests
                    .iter()
                    .flatten()
                    .filter_map(|d| Digest::parse(&d.digest).ok())
                    .collect();
                self.loaded.insert(digest, children);
                self.pending = None;
                self.manifests.insert(info.path.clone(), Bytes::from(bytes));
            }
            parsed => {
                let actual = Digest::of(&bytes);
                if actual != digest {
                    self.mismatched.insert(info.path.clone(), actual);
                } else if let Err(e) = parsed
                    && looks_like_broken_manifest(&bytes)
                {
                    self.broken.insert(info.path.clone(), e.to_string());
                }
                if let Some(p) = serde_json::from_slice::<ImagePlatform>(&bytes)
                    .ok()
                    .and_then(|p| p.render())
                {
                    self.config_platforms.insert(info.path.clone(), p);
                }
            }
        }
        Ok(())
    }

    /// Opens an entry that is itself a package archive (the plugins of a core package) in place.
    fn nested(&mut self, info: &EntryInfo, r: &mut dyn Read) -> Result<(), PackageError> {
        let label = self.ctx.entry(&info.path);
        if self.depth + 1 >= MAX_DEPTH {
            self.warnings.push(format!(
                "{label}: packages nested deeper than {MAX_DEPTH} levels are ignored"
            ));
            return Ok(());
        }
        let head = archive::read_head(r, 512).map_err(|e| self.ctx.corrupt(Some(&info.path), e))?;
        let Some(container) = archive::sniff(&head) else {
            self.warnings.push(format!(
                "{label}: named like a package but is not a tar, gzip or zstd archive; ignored"
            ));
            return Ok(());
        };
        let base = match container {
            Container::Tar if self.top_is_dir && self.depth == 0 => Some(0),
            Container::Tar => info.offset,
            _ => None,
        };
        let child_ctx = self.ctx.child(&info.path);
        let mut child = Scan::new(child_ctx.clone(), self.hooks, self.depth + 1, false);
        // A compressed package inside a file read by offset (a core `.tar`, a directory) stops
        // after its manifests as a top-level one does: a push reads it to its end anyway, in the
        // pass that uploads its blobs (or proves it complete), and reaching it again costs a seek,
        // not a decode of the archive around it. Inside a compressed archive it is read whole
        // now, or every pass would decode the outer archive again to get to it.
        let seekable = info.offset.is_some() || (self.top_is_dir && self.depth == 0);
        child.early = !container.random_access() && seekable;
        let mut chained = Cursor::new(head).chain(r);
        archive::walk_reader(&mut chained, container, base, &child_ctx, &mut |i, r| {
            child.visit(i, r)
        })?;
        let name = info.path.rsplit('/').next().map(str::to_string);
        self.children.push(child.finish(container, name)?);
        Ok(())
    }
}

/// Whether a JSON blob is meant as a manifest or index, judged by its top-level keys only.
fn looks_like_broken_manifest(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(bytes).is_ok_and(|m| {
        m.contains_key("manifests") || m.contains_key("layers") || m.contains_key("schemaVersion")
    })
}

#[cfg(test)]
pub(crate) mod tests;
