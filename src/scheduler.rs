//! The blob scheduler: turns a [`Plan`] into registry operations.
//!
//! 1. **Resolve**: `HEAD` every (repository, blob) pair; present blobs are skipped.
//! 2. **Transfer**: every missing digest is uploaded exactly once (into the first repository that
//!    needs it), at most `jobs` at a time, largest first; every other repository that needs it waits
//!    for that upload and then mounts it (or uploads again where the registry declines the mount).
//!    Blobs behind a decompressor are uploaded during one sequential pass over the package.
//! 3. **Commit**: per image, child manifests by digest, then the tag — only when every blob and
//!    child manifest of the image is confirmed present, so a failed run never leaves a tag over an
//!    incomplete graph.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use serde::Serialize;

use crate::digest::{Digest, Hasher};
use crate::error::{ExitCode, UserError};
use crate::output::progress::Progress;
use crate::package::{self, BlobLocation};
use crate::plan::{ImagePlan, Plan};
use crate::registry::{BlobStream, Client, RegistryError};

/// Read size for blob bodies: large enough to keep syscalls cheap, small enough that `jobs`
/// uploads with a few chunks queued each stay far below the memory budget.
const CHUNK: usize = 256 << 10;
/// Chunks queued between a blob reader thread and its upload.
const QUEUE: usize = 8;
/// Concurrent HEAD requests while resolving (cheap requests; more hides round-trip latency).
const RESOLVE_CONCURRENCY: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageResult {
    /// The tag was written (new or moved).
    Pushed,
    /// The tag already pointed at this digest and every blob was present.
    Unchanged,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    pub source: String,
    pub destination: String,
    pub digest: Digest,
    pub result: ImageResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub exit_code: Option<ExitCode>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BlobCounts {
    pub uploaded: usize,
    pub mounted: usize,
    pub skipped: usize,
    pub failed: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub images: Vec<ImageReport>,
    pub blobs: BlobCounts,
    pub bytes_uploaded: u64,
    pub seconds: f64,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.images
            .iter()
            .filter(|i| i.result == ImageResult::Failed)
            .count()
    }

    /// The exit code for the whole run: success, the shared class of every failure, or 1.
    pub fn exit_code(&self) -> ExitCode {
        let codes: HashSet<ExitCode> = self
            .images
            .iter()
            .filter(|i| i.result == ImageResult::Failed)
            .map(|i| i.exit_code.unwrap_or(ExitCode::Failure))
            .collect();
        match codes.len() {
            0 => ExitCode::Success,
            1 => codes.into_iter().next().unwrap_or(ExitCode::Failure),
            _ => ExitCode::Failure,
        }
    }
}

/// The outcome of resolving: which (repository, digest) pairs are missing.
#[derive(Debug, Default)]
pub struct Resolution {
    pub missing: BTreeMap<Digest, Vec<String>>,
    pub present: HashSet<(String, Digest)>,
    pub errors: HashMap<Digest, (String, ExitCode)>,
}

impl Resolution {
    /// A repository of the plan that already holds `digest`, to mount it from.
    pub fn present_in(&self, digest: &Digest) -> Option<&str> {
        self.present
            .iter()
            .find(|(_, d)| d == digest)
            .map(|(repo, _)| repo.as_str())
    }

    /// Missing digests that no repository of the plan holds: these need their bytes uploaded
    /// (the others are mounted).
    pub fn to_upload(&self) -> impl Iterator<Item = &Digest> {
        self.missing.keys().filter(|d| self.present_in(d).is_none())
    }

    /// Bytes that a push would upload (each missing digest once).
    pub fn bytes_to_upload(&self, plan: &Plan) -> u64 {
        self.to_upload()
            .filter_map(|d| plan.blobs.get(d))
            .map(|b| b.size)
            .sum()
    }
}

#[derive(Clone)]
pub struct Scheduler {
    client: Client,
    jobs: usize,
    progress: Progress,
}

/// Shared mutable state of one run.
#[derive(Default)]
struct State {
    /// Blob failures by digest: message and exit code.
    failed: Mutex<HashMap<Digest, (String, ExitCode)>>,
    uploaded: AtomicU64,
    mounted: AtomicU64,
    bytes: AtomicU64,
}

impl State {
    fn fail(&self, digest: &Digest, msg: String, code: ExitCode) {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(digest.clone())
            .or_insert((msg, code));
    }
    fn failure(&self, digest: &Digest) -> Option<(String, ExitCode)> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
            .cloned()
    }
}

impl Scheduler {
    pub fn new(client: Client, jobs: usize, progress: Progress) -> Self {
        Self {
            client,
            jobs: jobs.max(1),
            progress,
        }
    }

    /// Phase 1: which blobs are missing where.
    pub async fn resolve(&self, plan: &Plan) -> Resolution {
        let mut pairs: Vec<(String, Digest)> = Vec::new();
        let mut seen = HashSet::new();
        for img in &plan.images {
            for d in &img.blobs {
                if seen.insert((img.repository.clone(), d.clone())) {
                    pairs.push((img.repository.clone(), d.clone()));
                }
            }
        }
        let results: Vec<_> = stream::iter(pairs)
            .map(|(repo, d)| {
                let client = self.client.clone();
                async move {
                    let r = client.blob_exists(&repo, &d).await;
                    (repo, d, r)
                }
            })
            .buffered(RESOLVE_CONCURRENCY)
            .collect()
            .await;
        let mut res = Resolution::default();
        for (repo, d, r) in results {
            match r {
                Ok(Some(_)) => {
                    res.present.insert((repo, d));
                }
                Ok(None) => res.missing.entry(d).or_default().push(repo),
                Err(e) => {
                    res.errors
                        .entry(d)
                        .or_insert_with(|| (e.to_string(), e.exit_code()));
                }
            }
        }
        res
    }

    /// `--skip-push`: confirms that every image is already at its destination (the tag resolves to
    /// the package's digest) without writing anything. Missing images are reported as failed.
    pub async fn check(&self, plan: &Plan) -> Report {
        let start = Instant::now();
        let images: Vec<ImageReport> = stream::iter(plan.images.iter())
            .map(|img| async move {
                let reference = img.tag.clone().unwrap_or_else(|| img.digest.to_string());
                let mut report = ImageReport {
                    source: img.source.clone(),
                    destination: img.destination.clone(),
                    digest: img.digest.clone(),
                    result: ImageResult::Failed,
                    error: None,
                    exit_code: None,
                };
                match self.client.manifest_exists(&img.repository, &reference).await {
                    Ok(Some(d)) if d == img.digest => report.result = ImageResult::Unchanged,
                    Ok(Some(d)) => {
                        report.error = Some(format!("{} points at {d}, not at the package's {}; push the images first", img.destination, img.digest));
                        report.exit_code = Some(ExitCode::Remote);
                    }
                    Ok(None) => {
                        report.error = Some(format!("{} is not in the registry; push the images first (without --skip-push)", img.destination));
                        report.exit_code = Some(ExitCode::Remote);
                    }
                    Err(e) => {
                        report.error = Some(e.to_string());
                        report.exit_code = Some(e.exit_code());
                    }
                }
                report
            })
            .buffered(RESOLVE_CONCURRENCY)
            .collect()
            .await;
        Report {
            images,
            blobs: BlobCounts::default(),
            bytes_uploaded: 0,
            seconds: start.elapsed().as_secs_f64(),
        }
    }

    /// Runs the whole push.
    pub async fn push(&self, plan: &Plan) -> Report {
        let start = Instant::now();
        let resolution = self.resolve(plan).await;
        let state = Arc::new(State::default());
        for (d, (msg, code)) in &resolution.errors {
            state.fail(d, msg.clone(), *code);
        }
        let skipped = resolution.present.len();
        self.progress.set_total(resolution.bytes_to_upload(plan));

        self.transfer(plan, &resolution, &state).await;
        self.transfer_alternates(plan, &resolution, &state).await;

        let reports: Vec<ImageReport> = stream::iter(plan.images.iter())
            .map(|img| self.commit(plan, img, &state))
            .buffered(self.jobs)
            .collect()
            .await;
        self.progress.finish();

        let failed_blobs = state.failed.lock().unwrap_or_else(|e| e.into_inner()).len();
        Report {
            images: reports,
            blobs: BlobCounts {
                uploaded: state.uploaded.load(Ordering::Relaxed) as usize,
                mounted: state.mounted.load(Ordering::Relaxed) as usize,
                skipped,
                failed: failed_blobs,
            },
            bytes_uploaded: state.bytes.load(Ordering::Relaxed),
            seconds: start.elapsed().as_secs_f64(),
        }
    }

    /// Phase 2: upload each missing digest once, then mount it into the other repositories.
    async fn transfer(&self, plan: &Plan, res: &Resolution, state: &Arc<State>) {
        let missing = self.mount_present(res, state).await;
        let mut random: Vec<(&Digest, &Vec<String>)> = Vec::new();
        let mut streamed: BTreeMap<usize, Vec<Digest>> = BTreeMap::new();
        for (d, repos) in &missing {
            let Some(src) = plan.blobs.get(d) else {
                continue;
            };
            if plan.packages[src.package].container.random_access() {
                random.push((d, repos));
            } else {
                streamed.entry(src.package).or_default().push(d.clone());
            }
        }
        // Largest first: the long uploads start early and the small ones fill the gaps.
        random.sort_by_key(|(d, _)| std::cmp::Reverse(plan.blobs.get(*d).map_or(0, |b| b.size)));

        let random_work = stream::iter(random)
            .map(|(d, repos)| self.transfer_random(plan, d, repos, state))
            .buffer_unordered(self.jobs)
            .collect::<Vec<()>>();
        let streamed_work = stream::iter(streamed)
            .map(|(pi, digests)| self.transfer_streamed(plan, pi, digests, &missing, state))
            .buffer_unordered(2)
            .collect::<Vec<()>>();
        futures_util::future::join(random_work, streamed_work).await;
    }

    /// A blob whose package turned out unreadable or corrupt is taken from another package of the
    /// run that carries the same digest, so one bad package of a directory does not fail the
    /// images of the good ones that share its blobs.
    async fn transfer_alternates(&self, plan: &Plan, res: &Resolution, state: &Arc<State>) {
        for round in 0.. {
            let mut blobs = BTreeMap::new();
            let mut missing = BTreeMap::new();
            {
                let mut failed = state.failed.lock().unwrap_or_else(|e| e.into_inner());
                for (d, src) in &plan.blobs {
                    let source_failure = failed
                        .get(d)
                        .is_some_and(|(_, c)| matches!(c, ExitCode::BadPackage | ExitCode::Input));
                    let (Some((pi, location)), Some(repos), true) = (
                        src.alternates.get(round),
                        res.missing.get(d),
                        source_failure,
                    ) else {
                        continue;
                    };
                    failed.remove(d);
                    let source = crate::plan::BlobSource {
                        package: *pi,
                        location: location.clone(),
                        size: src.size,
                        alternates: Vec::new(),
                    };
                    blobs.insert(d.clone(), source);
                    missing.insert(d.clone(), repos.clone());
                }
            }
            if blobs.is_empty() {
                return;
            }
            let retry = Plan {
                destination: plan.destination.clone(),
                packages: plan.packages.clone(),
                images: Vec::new(),
                blobs,
            };
            let res = Resolution {
                missing,
                ..Resolution::default()
            };
            self.transfer(&retry, &res, state).await;
        }
    }

    /// A missing digest that another repository of the plan already holds (an earlier push of
    /// another image) is mounted from there: no bytes move. Returns what is still missing: the
    /// digests nobody holds, and the repositories where the registry declined the mount.
    async fn mount_present(
        &self,
        res: &Resolution,
        state: &Arc<State>,
    ) -> BTreeMap<Digest, Vec<String>> {
        let mut left: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        let mut mounts = Vec::new();
        for (d, repos) in &res.missing {
            match res.present_in(d) {
                Some(from) => mounts.extend(repos.iter().map(|r| (d, r, from))),
                None => {
                    left.insert(d.clone(), repos.clone());
                }
            }
        }
        let results: Vec<_> =
            stream::iter(mounts)
                .map(|(d, repo, from)| async move {
                    (d, repo, self.client.mount_blob(repo, from, d).await)
                })
                .buffer_unordered(self.jobs)
                .collect()
                .await;
        for (d, repo, r) in results {
            match r {
                Ok(true) => {
                    state.mounted.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => left.entry(d.clone()).or_default().push(repo.clone()),
                Err(e) => state.fail(d, format!("blob {d}: {e}"), e.exit_code()),
            }
        }
        left
    }

    async fn transfer_random(
        &self,
        plan: &Plan,
        digest: &Digest,
        repos: &[String],
        state: &Arc<State>,
    ) {
        let Some(src) = plan.blobs.get(digest) else {
            return;
        };
        let pkg = plan.packages[src.package].clone();
        let Some((first, others)) = repos.split_first() else {
            return;
        };
        let label = entry_label(&pkg, &src.location);
        let opener = {
            let pkg = pkg.clone();
            let location = src.location.clone();
            let digest = digest.clone();
            let size = src.size;
            let label = label.clone();
            let progress = self.progress.clone();
            let sent = Arc::new(AtomicU64::new(0));
            move || -> std::io::Result<BlobStream> {
                // A retried attempt starts again from byte 0: take back what it had reported.
                progress.sub(sent.swap(0, Ordering::Relaxed));
                let reader = package::blobs::open(&pkg, &location)
                    .map_err(|e| std::io::Error::other(e.to_string()))?
                    .ok_or_else(|| {
                        std::io::Error::new(
                            std::io::ErrorKind::Unsupported,
                            "blob is not randomly readable",
                        )
                    })?;
                Ok(spawn_reader(
                    reader,
                    digest.clone(),
                    size,
                    label.clone(),
                    progress.clone(),
                    sent.clone(),
                ))
            }
        };
        match self
            .client
            .upload_blob(first, digest, src.size, &opener, &|_| {})
            .await
        {
            Ok(()) => {
                state.uploaded.fetch_add(1, Ordering::Relaxed);
                state.bytes.fetch_add(src.size, Ordering::Relaxed);
            }
            Err(e) => {
                state.fail(digest, blob_error(digest, &label, &e), e.exit_code());
                return;
            }
        }
        for repo in others {
            match self.client.mount_blob(repo, first, digest).await {
                Ok(true) => {
                    state.mounted.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => match self
                    .client
                    .upload_blob(repo, digest, src.size, &opener, &|_| {})
                    .await
                {
                    Ok(()) => {
                        state.uploaded.fetch_add(1, Ordering::Relaxed);
                        state.bytes.fetch_add(src.size, Ordering::Relaxed);
                    }
                    Err(e) => state.fail(digest, blob_error(digest, &label, &e), e.exit_code()),
                },
                Err(e) => state.fail(digest, blob_error(digest, &label, &e), e.exit_code()),
            }
        }
    }

    /// Uploads the missing blobs of a compressed package in one decoding pass, in archive order.
    /// A blob whose upload fails mid-pass cannot be re-read: it is retried in a further pass
    /// (bounded by the client's retry budget), never by buffering it on disk.
    async fn transfer_streamed(
        &self,
        plan: &Plan,
        pi: usize,
        digests: Vec<Digest>,
        missing: &BTreeMap<Digest, Vec<String>>,
        state: &Arc<State>,
    ) {
        let pkg = plan.packages[pi].clone();
        let mut todo: HashSet<Digest> = digests.into_iter().collect();
        let max_passes = 3;
        for pass in 0..max_passes {
            if todo.is_empty() {
                break;
            }
            let (tx, mut rx) = tokio::sync::mpsc::channel::<(Digest, String, BlobStream)>(1);
            let wanted = todo.clone();
            let reader_pkg = pkg.clone();
            let progress = self.progress.clone();
            let reader = tokio::task::spawn_blocking(move || {
                stream_pass(&reader_pkg, &wanted, tx, progress)
            });
            let mut uploads = Vec::new();
            // Uploads overlap: the reader hands over the next blob as soon as this one's bytes are
            // sent, while the registry is still committing it. The decoder stays the only reader,
            // so at most `jobs` bodies are ever in flight.
            let mut inflight = futures_util::stream::FuturesUnordered::new();
            let mut receiving = true;
            while receiving || !inflight.is_empty() {
                tokio::select! {
                    msg = rx.recv(), if receiving && inflight.len() < self.jobs => {
                        let Some((digest, label, body)) = msg else {
                            receiving = false;
                            continue;
                        };
                        let Some(repos) = missing.get(&digest) else {
                            continue;
                        };
                        let size = plan.blobs.get(&digest).map_or(0, |b| b.size);
                        let first = repos[0].clone();
                        let others = repos[1..].to_vec();
                        inflight.push(async move {
                            let body = Mutex::new(Some(body));
                            let opener = move || -> std::io::Result<BlobStream> {
                                body.lock().unwrap_or_else(|e| e.into_inner()).take().ok_or_else(|| {
                                    std::io::Error::new(
                                        std::io::ErrorKind::Unsupported,
                                        "a streamed blob cannot be re-read in the same pass",
                                    )
                                })
                            };
                            let r = self.client.upload_blob(&first, &digest, size, &opener, &|_| {}).await;
                            (digest, label, first, others, size, r)
                        });
                    }
                    Some((digest, label, first, others, size, r)) = inflight.next(), if !inflight.is_empty() => {
                        match r {
                            Ok(()) => {
                                state.uploaded.fetch_add(1, Ordering::Relaxed);
                                state.bytes.fetch_add(size, Ordering::Relaxed);
                                todo.remove(&digest);
                                uploads.push((digest, first, others, label));
                            }
                            Err(e) => {
                                let code = e.exit_code();
                                let source = is_source_error(&e);
                                let fatal = matches!(code, ExitCode::Auth | ExitCode::BadPackage)
                                    || source
                                    || pass + 1 == max_passes;
                                if fatal {
                                    todo.remove(&digest);
                                    let code = if source { ExitCode::BadPackage } else { code };
                                    state.fail(&digest, blob_error(&digest, &label, &e), code);
                                }
                            }
                        }
                    }
                }
            }
            match reader.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let code = e.exit_code();
                    for d in todo.drain() {
                        state.fail(&d, e.to_string(), code);
                    }
                }
                Err(e) => {
                    for d in todo.drain() {
                        state.fail(
                            &d,
                            format!("package reader stopped: {e}"),
                            ExitCode::Failure,
                        );
                    }
                }
            }
            for (digest, first, others, label) in uploads {
                for repo in others {
                    match self.client.mount_blob(&repo, &first, &digest).await {
                        Ok(true) => {
                            state.mounted.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(false) => {
                            state.fail(
                                &digest,
                                format!(
                                    "{} declined to mount {digest} into {repo} from {first}",
                                    self.client.host()
                                ),
                                ExitCode::Remote,
                            );
                        }
                        Err(e) => {
                            state.fail(&digest, blob_error(&digest, &label, &e), e.exit_code())
                        }
                    }
                }
            }
        }
    }

    /// Phase 3: manifests children first, then the tag, for one image.
    async fn commit(&self, plan: &Plan, img: &ImagePlan, state: &Arc<State>) -> ImageReport {
        let mut report = ImageReport {
            source: img.source.clone(),
            destination: img.destination.clone(),
            digest: img.digest.clone(),
            result: ImageResult::Failed,
            error: None,
            exit_code: None,
        };
        for d in &img.blobs {
            if let Some((msg, code)) = state.failure(d) {
                report.error = Some(msg);
                report.exit_code = Some(code);
                return report;
            }
        }
        let mut wrote = false;
        for d in &img.manifests {
            let is_top = d == &img.digest;
            if is_top && img.tag.is_some() {
                continue;
            }
            match self.put_manifest_if_missing(plan, img, d, d.as_str()).await {
                Ok(w) => wrote |= w,
                Err((msg, code)) => {
                    report.error = Some(msg);
                    report.exit_code = Some(code);
                    return report;
                }
            }
        }
        if let Some(tag) = &img.tag {
            match self
                .put_manifest_if_missing(plan, img, &img.digest, tag)
                .await
            {
                Ok(w) => wrote |= w,
                Err((msg, code)) => {
                    report.error = Some(msg);
                    report.exit_code = Some(code);
                    return report;
                }
            }
        }
        report.result = if wrote {
            ImageResult::Pushed
        } else {
            ImageResult::Unchanged
        };
        report
    }

    /// PUTs a manifest under `reference` unless it already resolves to `digest`. Returns whether it wrote.
    async fn put_manifest_if_missing(
        &self,
        plan: &Plan,
        img: &ImagePlan,
        digest: &Digest,
        reference: &str,
    ) -> Result<bool, (String, ExitCode)> {
        let Some(m) = plan.manifest(img, digest) else {
            return Err((
                format!("{}: manifest {digest} is not in the package", img.source),
                ExitCode::BadPackage,
            ));
        };
        match self
            .client
            .manifest_exists(&img.repository, reference)
            .await
        {
            Ok(Some(existing)) if &existing == digest => return Ok(false),
            Ok(_) => {}
            Err(e) => return Err((e.to_string(), e.exit_code())),
        }
        let pushed = self
            .client
            .put_manifest(&img.repository, reference, &m.media_type, m.bytes.clone())
            .await
            .map_err(|e| (e.to_string(), e.exit_code()))?;
        if &pushed != digest {
            return Err((
                format!(
                    "{}: registry {} stored {} as {pushed}, not {digest}; the registry rewrote the manifest",
                    img.destination,
                    self.client.host(),
                    reference
                ),
                ExitCode::Remote,
            ));
        }
        Ok(true)
    }
}

/// The package's bytes were wrong (digest or size mismatch found while streaming): retrying cannot help.
fn is_source_error(e: &RegistryError) -> bool {
    matches!(e, RegistryError::Source { .. })
}

fn blob_error(digest: &Digest, label: &str, e: &RegistryError) -> String {
    let msg = e.to_string();
    // A source error already names the package entry: do not say it twice.
    if msg.contains(label) {
        msg
    } else if msg.contains(digest.as_str()) {
        format!("{msg} ({label})")
    } else {
        format!("blob {digest} ({label}): {msg}")
    }
}

fn entry_label(pkg: &package::Package, loc: &BlobLocation) -> String {
    let nest: String = loc.nest.iter().map(|n| format!("!{n}")).collect();
    format!("{}{nest} entry {}", pkg.path.display(), loc.entry)
}

/// Streams a readable blob from a blocking thread, hashing as it goes; the last item is an error
/// when the bytes do not match the digest, which aborts the upload before the registry commits it.
fn spawn_reader(
    mut reader: Box<dyn Read + Send>,
    digest: Digest,
    size: u64,
    label: String,
    progress: Progress,
    sent: Arc<AtomicU64>,
) -> BlobStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(QUEUE);
    tokio::task::spawn_blocking(move || {
        let _ = pump(&mut reader, &digest, size, &label, &tx, &progress, &sent);
    });
    receiver_stream(rx)
}

fn receiver_stream(rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>) -> BlobStream {
    Box::pin(stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Copies `size` bytes from `reader` into `tx`; returns Err when the receiver went away.
fn pump(
    reader: &mut dyn Read,
    digest: &Digest,
    size: u64,
    label: &str,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    progress: &Progress,
    sent: &AtomicU64,
) -> Result<(), ()> {
    let mut hasher = Hasher::new();
    let mut total: u64 = 0;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ =
                    tx.blocking_send(Err(std::io::Error::other(format!("reading {label}: {e}"))));
                return Err(());
            }
        };
        buf.truncate(n);
        hasher.update(&buf);
        total += n as u64;
        if total > size {
            break;
        }
        tx.blocking_send(Ok(Bytes::from(buf))).map_err(|_| ())?;
        progress.add(n as u64);
        sent.fetch_add(n as u64, Ordering::Relaxed);
    }
    let actual = hasher.finish();
    if total != size || &actual != digest {
        let msg = if total != size {
            format!("{label}: blob {digest} size mismatch: expected {size} bytes, read {total}")
        } else {
            format!("{label}: blob does not match its digest (expected {digest}, got {actual})")
        };
        let _ = tx.blocking_send(Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            msg,
        )));
        return Err(());
    }
    Ok(())
}

/// One sequential pass over a compressed package: each wanted blob is handed to the async side as
/// a body stream while this thread feeds it.
fn stream_pass(
    pkg: &package::Package,
    wanted: &HashSet<Digest>,
    tx: tokio::sync::mpsc::Sender<(Digest, String, BlobStream)>,
    progress: Progress,
) -> Result<(), package::PackageError> {
    let size_of = |d: &Digest| pkg.blobs.get(d).map_or(0, |b| b.size);
    package::blobs::stream(
        pkg,
        &|d| wanted.contains(d),
        &mut |digest, location, reader| {
            let (btx, brx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(QUEUE);
            let label = entry_label(pkg, location);
            if tx
                .blocking_send((digest.clone(), label.clone(), receiver_stream(brx)))
                .is_err()
            {
                return Ok(package::blobs::Flow::Stop);
            }
            let sent = AtomicU64::new(0);
            // A failed upload drops the receiver; the rest of this entry is skipped by the reader.
            let _ = pump(
                reader,
                digest,
                size_of(digest),
                &label,
                &btx,
                &progress,
                &sent,
            );
            Ok(package::blobs::Flow::Continue)
        },
    )
}
