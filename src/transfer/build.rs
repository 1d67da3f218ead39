//! Building packages (`violet create`, `violet package`): the images a package names are
//! resolved in their source registries, then every manifest and blob is streamed straight from
//! the registry (or from a package directory `create` wrote) into the package, with no staging
//! copy, in the order of docs/package-format.md "Entry ordering".
//!
//! The archive is written by one blocking thread (tar is sequential); blob bytes reach it from
//! the async registry client through [`StreamRead`], one bounded chunk at a time, so memory stays
//! flat whatever the layer size.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use serde::Serialize;

use crate::artifact::Reference;
use crate::digest::Digest;
use crate::error::{ExitCode, Fail};
use crate::output::progress::Progress;
use crate::package::Package;
use crate::package::metadata::{METADATA_FILE, Metadata, ReferrerEntry};
use crate::package::referrer::Referrer;
use crate::pull::{self, PlatformFilter, Selected};
use crate::registry::{
    BlobStream, Client, Credentials, RegistryConfig, RegistryError, credentials,
};
use crate::transfer::ahead::{Ahead, Taken};
use crate::transfer::referrers::{Finder, Lookup};
use crate::transfer::source::{Check, Origin};
use crate::writer::{self, LayoutEntry, PackageWriter, Written};

/// Who to be at the source registries: `--username/--password` for every one of them, or each
/// host's stored docker/podman login (else anonymous); `--no-auth` for none.
#[derive(Debug, Clone, Default)]
pub struct SourceLogin {
    pub username: Option<String>,
    pub password: Option<String>,
    pub no_auth: bool,
}

/// One client per source registry host, made on first use.
pub struct Sources {
    /// The flags' configuration (TLS, retries) without a host or credentials: each client is
    /// this, for its host, with the login that applies there.
    template: RegistryConfig,
    login: SourceLogin,
    clients: HashMap<String, Client>,
}

impl Sources {
    pub fn new(template: RegistryConfig, login: SourceLogin) -> Self {
        Self {
            template,
            login,
            clients: HashMap::new(),
        }
    }

    /// The client for `host`. `--username/--password` apply to every source registry; without
    /// them each host uses its stored docker/podman login, or goes anonymous (public images).
    pub fn client(&mut self, host: &str) -> anyhow::Result<Client> {
        if let Some(c) = self.clients.get(host) {
            return Ok(c.clone());
        }
        let l = &self.login;
        let credentials = if l.no_auth {
            Credentials::Anonymous
        } else {
            credentials::resolve(host, l.username.as_deref(), l.password.as_deref(), false)?
                .credentials
        };
        let client = Client::new(RegistryConfig {
            host: host.to_string(),
            credentials,
            ..self.template.clone()
        })?;
        self.clients.insert(host.to_string(), client.clone());
        Ok(client)
    }
}

/// One image resolved in its source registry.
#[derive(Clone)]
pub struct Pulled {
    /// The reference as the package names it.
    pub reference: Reference,
    pub client: Client,
    pub selected: Selected,
    /// The main artifact (bundle image, chart): platform-independent content, so it is never
    /// filtered and its config's platform says nothing about the package.
    pub is_artifact: bool,
    /// Set for a signature, attestation, SBOM or OCI referrer of another pulled image.
    pub referrer: Option<Referrer>,
}

/// An index rewritten to a platform subset, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Rewrite {
    pub image: String,
    pub original: Digest,
    pub digest: Digest,
    pub kept: Vec<String>,
    pub dropped: Vec<String>,
}

/// The info line `create` and `package` print for an index that `--platforms` rewrote.
impl std::fmt::Display for Rewrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: index rewritten to {} ({}; was {}, dropped {})",
            self.image,
            self.kept.join(", "),
            self.digest,
            self.original,
            self.dropped.join(", ")
        )
    }
}

/// Resolves every reference keeping the `filter` platforms; the first one is the artifact.
/// With `referrers`, the artifacts about each image (cosign signatures, attestations, SBOMs and
/// OCI referrers of its index and platform manifests) follow the images, and `notes` says what
/// a `--platforms` rewrite leaves unsigned.
pub async fn resolve_all(
    sources: &mut Sources,
    references: &[Reference],
    filter: Option<&PlatformFilter>,
    referrers: bool,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<Pulled>> {
    let clients = references
        .iter()
        .map(|r| sources.client(&r.registry))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Several images at once: each is a few small requests, bound by round trips (one at a
    // time, a 100 ms source kept the core-shaped `package` 130 s from its first blob, with the
    // signature lookups after it).
    let selected: Vec<anyhow::Result<Selected>> = stream::iter(references.iter().zip(&clients))
        .enumerate()
        .map(|(i, (r, client))| async move {
            let (lookup, label) = (r.lookup(), r.to_string());
            let filter = if i == 0 { None } else { filter };
            pull::select(
                client,
                &r.repository,
                &lookup,
                filter,
                r.digest.is_some(),
                &label,
            )
            .await
        })
        .buffered(pull::RESOLVE_IN_FLIGHT)
        .collect()
        .await;
    let mut out = Vec::new();
    for (i, ((r, client), selected)) in references.iter().zip(clients).zip(selected).enumerate() {
        out.push(Pulled {
            reference: r.clone(),
            client,
            selected: selected?,
            is_artifact: i == 0,
            referrer: None,
        });
    }
    if referrers {
        let found = collect_referrers(&out, notes).await?;
        out.extend(found);
    }
    Ok(out)
}

/// The artifacts about every image of `pulled`, each once.
async fn collect_referrers(
    pulled: &[Pulled],
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<Pulled>> {
    let finder = Finder::default();
    let mut seen = std::collections::HashSet::new();
    let lookups = pulled
        .iter()
        .map(|p| Lookup::image(&p.client, &p.reference.repository, &p.selected.image))
        .collect();
    let found_each = finder.find_each(lookups, &mut seen).await;
    let mut out = Vec::new();
    for (p, found) in pulled.iter().zip(found_each) {
        let repo = &p.reference.repository;
        if let Some(original) = &p.selected.rewritten_from {
            // The repository's tags are listed by now: no request.
            let kinds = finder
                .has_cosign(&p.client, repo, original)
                .await
                .map_err(not_listed)?;
            if !kinds.is_empty() {
                let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
                notes.push(format!(
                    "{}: --platforms rewrote its index to {}; the {} of the original index {original} do not cover it and are left out (only the kept platform manifests' own artifacts are carried)",
                    p.reference,
                    p.selected.image.digest,
                    names.join(" and "),
                ));
            }
        }
        let found = found.map_err(not_listed)?;
        for f in found {
            let reference = Reference {
                registry: p.reference.registry.clone(),
                repository: repo.clone(),
                tag: f.tag.clone(),
                digest: f.tag.is_none().then(|| f.image.digest.clone()),
            };
            out.push(Pulled {
                reference,
                client: p.client.clone(),
                selected: Selected {
                    image: f.image,
                    media_type: f.media_type,
                    platforms: Vec::new(),
                    rewritten_from: None,
                    dropped: Vec::new(),
                    kept_whole: false,
                },
                is_artifact: false,
                referrer: Some(f.referrer),
            });
        }
    }
    Ok(out)
}

/// A source that cannot be searched for signatures fails the build with its answer and a way on.
fn not_listed(e: RegistryError) -> Fail {
    use crate::error::UserError;
    Fail::new(e.exit_code(), e.to_string()).with_hint(
        "the images' signatures and referrers are looked up by listing the repository's tags; pass --no-referrers to build without them",
    )
}

/// The `referrers` list of `violet.yaml` for the pulled artifacts.
pub fn referrer_entries(pulled: &[Pulled]) -> Vec<ReferrerEntry> {
    pulled
        .iter()
        .filter_map(|p| {
            let r = p.referrer.as_ref()?;
            Some(ReferrerEntry {
                reference: p.reference.to_string(),
                digest: p.selected.image.digest.clone(),
                subject: r.subject.clone(),
                kind: r.kind,
                artifact_type: r.artifact_type.clone(),
            })
        })
        .collect()
}

/// Index rewrites among `pulled`, for the report.
pub fn rewrites(pulled: &[Pulled]) -> Vec<Rewrite> {
    pulled
        .iter()
        .filter_map(|p| {
            Some(Rewrite {
                image: p.reference.to_string(),
                original: p.selected.rewritten_from.clone()?,
                digest: p.selected.image.digest.clone(),
                kept: p.selected.platforms.clone(),
                dropped: p.selected.dropped.clone(),
            })
        })
        .collect()
}

/// The package's platforms, in first-seen order: those its images carry and the selection asks
/// for (an index kept whole because it is pinned may carry more; the package is not for those).
pub fn platforms(pulled: &[Pulled], filter: Option<&PlatformFilter>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let images = pulled.iter().filter(|p| !p.is_artifact);
    for p in images.flat_map(|p| &p.selected.platforms) {
        if filter.is_some_and(|f| !f.matches(p)) {
            continue;
        }
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

/// Where the images of a package come from.
pub enum Images {
    /// No images: a lightweight package.
    None,
    /// Straight from the source registries.
    Remote(Vec<Pulled>),
    /// From the image store of a package directory (`violet create` without
    /// `--skip-package-images`).
    Local(Box<Package>),
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    #[serde(flatten)]
    pub written: Written,
    pub images: usize,
    pub manifests: usize,
    pub blobs: usize,
    pub blob_bytes: u64,
}

/// What goes into the package, each manifest and blob once, in first-seen order.
#[derive(Default)]
struct Contents {
    layout: Vec<LayoutEntry>,
    manifests: Vec<(Digest, Bytes)>,
    blobs: Vec<(Digest, u64, Origin)>,
    seen: std::collections::HashSet<Digest>,
    /// Blobs a differential package leaves at the site: never written.
    omit: std::collections::HashSet<Digest>,
}

impl Contents {
    fn manifest(&mut self, digest: &Digest, bytes: impl FnOnce() -> Bytes) {
        if self.seen.insert(digest.clone()) {
            self.manifests.push((digest.clone(), bytes()));
        }
    }

    fn blob(&mut self, digest: &Digest, size: u64, origin: impl FnOnce() -> Origin) {
        if !self.omit.contains(digest) && self.seen.insert(digest.clone()) {
            self.blobs.push((digest.clone(), size, origin()));
        }
    }
}

/// Writes a package: `violet.yaml`, `extra` files, the OCI layout's `index.json`, every manifest,
/// then every config and layer blob once, but those in `omit` (a differential package's blobs
/// expected at the site, which `metadata` declares). Runs on a blocking thread; remote bytes are pulled
/// through the current tokio runtime ([`Origin::open`]: checked against their digests, a download
/// that breaks off resuming where it stopped, within each source client's `--retries`).
pub async fn write(
    mut writer: PackageWriter,
    metadata: &Metadata,
    extra: Vec<(String, PathBuf)>,
    images: Images,
    omit: std::collections::HashSet<Digest>,
    progress: Progress,
) -> anyhow::Result<BuildReport> {
    let mut yaml = serde_saphyr::to_string(metadata)?;
    if !yaml.ends_with('\n') {
        yaml.push('\n');
    }
    let handle = tokio::runtime::Handle::current();
    let task = tokio::task::spawn_blocking(move || -> anyhow::Result<BuildReport> {
        writer.add_bytes(METADATA_FILE, yaml.as_bytes())?;
        for (entry, path) in &extra {
            let file = std::fs::File::open(path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            let size = file.metadata()?.len();
            writer.add_reader(entry, size, file)?;
        }
        let mut c = Contents {
            omit,
            ..Contents::default()
        };
        match images {
            Images::None => {}
            Images::Remote(pulled) => {
                for p in &pulled {
                    let image = &p.selected.image;
                    let top = image.manifests.last().expect("an image has a manifest");
                    c.layout.push(LayoutEntry {
                        reference: p.reference.to_string(),
                        digest: image.digest.clone(),
                        media_type: p.selected.media_type.clone(),
                        size: top.bytes.len() as u64,
                    });
                    for m in &image.manifests {
                        c.manifest(&m.digest, || m.bytes.clone());
                    }
                }
                for p in signatures_first(&pulled, |p| p.referrer.is_some()) {
                    for (d, size) in &p.selected.image.blobs {
                        c.blob(d, *size, || Origin::Registry {
                            client: p.client.clone(),
                            repository: p.reference.repository.clone(),
                        });
                    }
                }
            }
            Images::Local(pkg) => {
                let pkg: Arc<Package> = Arc::from(pkg);
                for image in &pkg.images {
                    c.layout.push(LayoutEntry {
                        reference: image.reference.to_string(),
                        digest: image.digest.clone(),
                        media_type: image.media_type.clone(),
                        size: pkg.manifests[&image.digest].bytes.len() as u64,
                    });
                    for d in &image.manifests {
                        c.manifest(d, || pkg.manifests[d].bytes.clone());
                    }
                }
                for image in signatures_first(&pkg.images, |i| i.referrer.is_some()) {
                    // A differential directory does not hold its expected blobs.
                    for (d, b) in image
                        .blobs
                        .iter()
                        .filter_map(|d| Some((d, pkg.blobs.get(d)?)))
                    {
                        c.blob(d, b.size, || Origin::Package {
                            package: 0,
                            pkg: pkg.clone(),
                            location: b.location.clone(),
                        });
                    }
                }
            }
        }
        let Contents {
            layout,
            manifests,
            blobs: blob_list,
            ..
        } = c;
        let blob_bytes: u64 = blob_list.iter().map(|(_, size, _)| size).sum();
        progress.set_total(blob_bytes);
        if !layout.is_empty() {
            for (name, bytes) in writer::layout_files(&layout)? {
                writer.add_bytes(&format!("{}{name}", writer::STORE_ROOT), &bytes)?;
            }
        }
        for (d, bytes) in &manifests {
            writer.add_bytes(&writer::blob_entry(d), bytes)?;
        }
        // The archive is written in order, one entry at a time, with the entries after the
        // current one under way (`transfer::ahead`).
        let mut ahead = Ahead::new(handle.clone(), progress.clone(), &blob_list);
        for (i, (digest, size, origin)) in blob_list.iter().enumerate() {
            let written = ahead
                .take(i)
                .map_err(anyhow::Error::from)
                .and_then(|taken| {
                    write_blob(
                        &mut writer,
                        &handle,
                        &progress,
                        (digest, *size, origin),
                        taken,
                    )
                });
            if let Err(e) = written {
                ahead.stop();
                return Err(e);
            }
        }
        progress.finish();
        let images = layout.len();
        let written = writer.finish()?;
        Ok(BuildReport {
            written,
            images,
            manifests: manifests.len(),
            blobs: blob_list.len(),
            blob_bytes,
        })
    });
    task.await?
}

/// Writes one blob entry from what was read ahead of it (`taken`: its whole body, or its
/// download opened). The body is checked against the digest on the way: the writer's entry ends
/// in an error, never in wrong bytes, and the package is not finished.
fn write_blob(
    writer: &mut PackageWriter,
    handle: &tokio::runtime::Handle,
    progress: &Progress,
    (digest, size, origin): (&Digest, u64, &Origin),
    taken: Taken,
) -> anyhow::Result<()> {
    let stream: BlobStream = match taken {
        Taken::Whole(body) => Box::pin(futures_util::stream::iter(body)),
        Taken::Opened(first) => {
            let _runtime = handle.enter();
            origin.open(digest, size, progress.clone(), first, Check::Digest)?
        }
    };
    let mut reader = StreamRead {
        handle: handle.clone(),
        stream,
        chunk: Bytes::new(),
        failed: None,
    };
    let Err(e) = writer.add_reader(&writer::blob_entry(digest), size, &mut reader) else {
        return Ok(());
    };
    // The registry's answer refusing the `GET` (made ahead of the writer: a 404, a 401) keeps
    // its own class and message.
    if let Some(refused) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<RegistryError>())
        .filter(|r| r.status().is_some())
    {
        return Err(refused.clone().into());
    }
    // A broken download is the registry's or the link's fault, not the disk's.
    Err(match (reader.failed, origin) {
        (Some(kind), Origin::Registry { client, repository }) => {
            download_error(client, repository, digest, kind, e).into()
        }
        // The directory's store no longer holds what its index names.
        (Some(_), Origin::Package { .. }) => Fail::new(ExitCode::BadPackage, e.to_string())
            .with_hint(
                "the directory changed after it was written; run `violet create` again to rewrite its images",
            )
            .into(),
        _ => e.into(),
    })
}

/// `items` with the artifacts (signatures, SBOMs: small blobs) first: their blobs then come right
/// after the manifests in the archive, so a reader that needs only them (`push --cosign-key`
/// checking signatures before any upload) stops early in a compressed package.
fn signatures_first<T>(items: &[T], is_artifact: impl Fn(&T) -> bool) -> Vec<&T> {
    let (mut first, rest): (Vec<&T>, Vec<&T>) = items.iter().partition(|i| is_artifact(i));
    first.extend(rest);
    first
}

fn download_error(
    client: &Client,
    repository: &str,
    digest: &Digest,
    kind: io::ErrorKind,
    e: io::Error,
) -> RegistryError {
    let what = format!("blob {digest} from {repository}");
    if kind == io::ErrorKind::InvalidData {
        RegistryError::Protocol {
            registry: client.host().into(),
            operation: "the download of",
            what,
            message: e.to_string(),
        }
    } else {
        let prefix = format!("cannot reach registry {}: ", client.host());
        let detail = e.to_string();
        RegistryError::Network {
            registry: client.host().into(),
            message: format!(
                "the download of {what} broke off: {}",
                detail.strip_prefix(&prefix).unwrap_or(&detail)
            ),
            hint: Some(
                "no package was written; run the same command again when the link is back".into(),
            ),
        }
    }
}

/// A blocking reader over a blob download ([`crate::pull::download`]: resumed where it broke
/// off, hashed and checked on the way): each `read` waits for the next chunk on the runtime.
struct StreamRead {
    handle: tokio::runtime::Handle,
    stream: BlobStream,
    chunk: Bytes,
    /// Set when the download itself failed (as opposed to the writer).
    failed: Option<io::ErrorKind>,
}

impl Read for StreamRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => {
                    self.failed = Some(e.kind());
                    return Err(e);
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}
