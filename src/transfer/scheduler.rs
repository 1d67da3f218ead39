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

impl ImageReport {
    /// The report of an image not (yet) confirmed: failed until a phase says otherwise.
    fn pending(img: &ImagePlan) -> Self {
        Self {
            source: img.source.clone(),
            destination: img.destination.clone(),
            digest: img.digest.clone(),
            result: ImageResult::Failed,
            error: None,
            exit_code: None,
        }
    }
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
    /// Bytes sent again after a retry or in a further pass over a compressed package; not part
    /// of `bytes_uploaded`.
    pub bytes_resent: u64,
    pub seconds: f64,
    /// Digest -> package (index into the plan) whose bytes were uploaded for it.
    #[serde(skip)]
    pub uploaded_from: HashMap<Digest, usize>,
    /// Blobs that did not arrive.
    #[serde(skip)]
    pub failed_blobs: HashSet<Digest>,
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
        crate::transfer::exit::fold(
            self.images
                .iter()
                .filter(|i| i.result == ImageResult::Failed)
                .map(|i| i.exit_code.unwrap_or(ExitCode::Failure)),
        )
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
    /// One client per destination, in `--dest-repo` order; plan `k` of a multi-destination push
    /// goes to client `k`.
    clients: Vec<Client>,
    jobs: usize,
    progress: Progress,
}

/// Per blob digest: the destinations (index into the scheduler's clients) that still need it, each
/// with the repositories there that need it.
type Needs = BTreeMap<Digest, Targets>;
/// (destination index, repositories there) for one blob.
type Targets = Vec<(usize, Vec<String>)>;

/// Shared mutable state of one run at one destination.
#[derive(Default)]
struct State {
    /// Blob failures by digest: message and exit code.
    failed: Mutex<HashMap<Digest, (String, ExitCode)>>,
    /// The package (index into the plan) whose bytes were uploaded for each digest, so the
    /// per-package table can say which package's bytes moved.
    from: Mutex<HashMap<Digest, usize>>,
    uploaded: AtomicU64,
    mounted: AtomicU64,
    bytes: AtomicU64,
    /// Per blob, how many of its bytes were sent to this destination so far (furthest point).
    reached: Mutex<HashMap<Digest, u64>>,
    /// Bytes sent to this destination again: a retried attempt or a further pass re-sends what an
    /// earlier attempt already sent.
    resent: AtomicU64,
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
    /// The upload progress callback for one blob: the client reports the bytes sent so far in
    /// the current attempt (0 when an attempt starts); bytes up to the furthest point reached by
    /// an earlier attempt are counted as re-sent.
    fn meter<'a>(&'a self, digest: &'a Digest) -> impl Fn(u64) + Send + Sync + 'a {
        let last = AtomicU64::new(0);
        move |sent: u64| {
            let start = last.swap(sent, Ordering::Relaxed);
            let start = if sent < start { 0 } else { start };
            if sent == start {
                return;
            }
            let mut reached = self.reached.lock().unwrap_or_else(|e| e.into_inner());
            let hw = reached.entry(digest.clone()).or_insert(0);
            let fresh = sent.saturating_sub((*hw).max(start));
            *hw = (*hw).max(sent);
            self.resent
                .fetch_add(sent - start - fresh, Ordering::Relaxed);
        }
    }

    fn uploaded(&self, digest: &Digest, package: usize, size: u64) {
        self.uploaded.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(size, Ordering::Relaxed);
        self.from
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(digest.clone())
            .or_insert(package);
    }
}

/// Whether a tag resolves to the same digest at every destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Parity {
    Ok,
    /// Some destination resolves the tag to another digest.
    Mismatch,
    /// Some destination does not have it (or could not be asked).
    Missing,
}

impl Parity {
    pub fn as_str(self) -> &'static str {
        match self {
            Parity::Ok => "OK",
            Parity::Mismatch => "MISMATCH",
            Parity::Missing => "MISSING",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ParityCell {
    /// `host/repository:tag` at this destination.
    pub destination: String,
    /// What the reference resolves to there (none: absent or unanswered).
    pub digest: Option<Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParityRow {
    /// The reference as recorded in the package.
    pub image: String,
    /// The package's digest.
    pub expected: Digest,
    pub status: Parity,
    pub destinations: Vec<ParityCell>,
}

impl Scheduler {
    /// A scheduler for several destinations: each blob is read once and fanned out to all.
    pub fn new(clients: Vec<Client>, jobs: usize, progress: Progress) -> Self {
        assert!(!clients.is_empty(), "a scheduler needs a destination");
        Self {
            clients,
            jobs: jobs.max(1),
            progress,
        }
    }

    /// Phase 1 at destination `k`: which blobs are missing in which repository.
    pub async fn resolve_at(&self, k: usize, plan: &Plan) -> Resolution {
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
                let client = self.clients[k].clone();
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

    /// `--skip-push` at destination `k`: confirms that every image is already there (the tag
    /// resolves to the package's digest) without writing anything. Missing images are failed.
    pub async fn check_at(&self, k: usize, plan: &Plan) -> Report {
        let start = Instant::now();
        let client = &self.clients[k];
        let images: Vec<ImageReport> = stream::iter(plan.images.iter())
            .map(|img| async move {
                let reference = img.tag.clone().unwrap_or_else(|| img.digest.to_string());
                let mut report = ImageReport::pending(img);
                match client.manifest_exists(&img.repository, &reference).await {
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
            bytes_resent: 0,
            seconds: start.elapsed().as_secs_f64(),
            uploaded_from: HashMap::new(),
            failed_blobs: HashSet::new(),
        }
    }

    /// Runs the whole push to every destination: `plans[k]` (from [`Plan::for_destinations`]) goes
    /// to client `k`. Each missing blob is read from its package once and streamed to every
    /// destination that lacks it; a destination that fails does not fail the others.
    pub async fn push_all(&self, plans: &[Plan]) -> Vec<Report> {
        let start = Instant::now();
        let resolutions: Vec<Resolution> = futures_util::future::join_all(
            plans
                .iter()
                .enumerate()
                .map(|(k, plan)| self.resolve_at(k, plan)),
        )
        .await;
        let states: Vec<Arc<State>> = resolutions
            .iter()
            .map(|res| {
                let state = State::default();
                for (d, (msg, code)) in &res.errors {
                    state.fail(d, msg.clone(), *code);
                }
                Arc::new(state)
            })
            .collect();
        // Progress counts bytes read from the packages: each blob once, whatever the fan-out.
        let to_read: HashSet<&Digest> = resolutions.iter().flat_map(|r| r.to_upload()).collect();
        self.progress.set_total(
            to_read
                .iter()
                .filter_map(|d| plans[0].blobs.get(*d))
                .map(|b| b.size)
                .sum(),
        );

        let mut needs = Needs::new();
        for (k, res) in resolutions.iter().enumerate() {
            for (d, repos) in self.mount_present(k, res, &states[k]).await {
                needs.entry(d).or_default().push((k, repos));
            }
        }
        self.transfer(&plans[0], &needs, &states).await;
        self.transfer_alternates(&plans[0], &resolutions, &states)
            .await;

        let committed: Vec<Vec<ImageReport>> =
            futures_util::future::join_all(plans.iter().enumerate().map(|(k, plan)| {
                let state = &states[k];
                stream::iter(plan.images.iter())
                    .map(move |img| self.commit(k, plan, img, state))
                    .buffered(self.jobs)
                    .collect::<Vec<ImageReport>>()
            }))
            .await;
        self.progress.finish();

        let seconds = start.elapsed().as_secs_f64();
        committed
            .into_iter()
            .zip(states)
            .zip(&resolutions)
            .map(|((images, state), res)| {
                let failed = state.failed.lock().unwrap_or_else(|e| e.into_inner());
                Report {
                    images,
                    blobs: BlobCounts {
                        uploaded: state.uploaded.load(Ordering::Relaxed) as usize,
                        mounted: state.mounted.load(Ordering::Relaxed) as usize,
                        skipped: res.present.len(),
                        failed: failed.len(),
                    },
                    bytes_uploaded: state.bytes.load(Ordering::Relaxed),
                    bytes_resent: state.resent.load(Ordering::Relaxed),
                    seconds,
                    uploaded_from: state.from.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                    failed_blobs: failed.keys().cloned().collect(),
                }
            })
            .collect()
    }

    /// After a multi-destination push: `HEAD` every image's tag (or digest) at every destination
    /// and compare. `plans` must come from one [`Plan::for_destinations`] (same image order).
    pub async fn parity(&self, plans: &[Plan]) -> Vec<ParityRow> {
        let count = plans.first().map_or(0, |p| p.images.len());
        stream::iter(0..count)
            .map(|i| async move {
                let cells = futures_util::future::join_all(plans.iter().enumerate().map(
                    |(k, plan)| async move {
                        let img = &plan.images[i];
                        let reference = img.tag.clone().unwrap_or_else(|| img.digest.to_string());
                        let (digest, error) = match self.clients[k]
                            .manifest_exists(&img.repository, &reference)
                            .await
                        {
                            Ok(d) => (d, None),
                            Err(e) => (None, Some(e.to_string())),
                        };
                        ParityCell {
                            destination: img.destination.clone(),
                            digest,
                            error,
                        }
                    },
                ))
                .await;
                let expected = plans[0].images[i].digest.clone();
                let status = if cells
                    .iter()
                    .any(|c| c.digest.as_ref().is_some_and(|d| d != &expected))
                {
                    Parity::Mismatch
                } else if cells.iter().any(|c| c.digest.is_none()) {
                    Parity::Missing
                } else {
                    Parity::Ok
                };
                ParityRow {
                    image: plans[0].images[i].source.clone(),
                    expected,
                    status,
                    destinations: cells,
                }
            })
            .buffered(RESOLVE_CONCURRENCY)
            .collect()
            .await
    }

    /// Phase 2: read each needed digest once and upload it to every destination that lacks it,
    /// then mount it into the other repositories there. `src` gives the packages and blob sources.
    async fn transfer(&self, src: &Plan, needs: &Needs, states: &[Arc<State>]) {
        let mut random: Vec<(&Digest, &Targets)> = Vec::new();
        let mut streamed: BTreeMap<usize, Vec<Digest>> = BTreeMap::new();
        for (d, targets) in needs {
            let Some(b) = src.blobs.get(d) else {
                continue;
            };
            if src.packages[b.package].container.random_access() {
                random.push((d, targets));
            } else {
                streamed.entry(b.package).or_default().push(d.clone());
            }
        }
        // Largest first: the long uploads start early and the small ones fill the gaps.
        random.sort_by_key(|(d, _)| std::cmp::Reverse(src.blobs.get(*d).map_or(0, |b| b.size)));

        let random_work = stream::iter(random)
            .map(|(d, targets)| self.transfer_random(src, d, targets, states))
            .buffer_unordered(self.jobs)
            .collect::<Vec<()>>();
        let streamed_work = stream::iter(streamed)
            .map(|(pi, digests)| self.transfer_streamed(src, pi, digests, needs, states))
            .buffer_unordered(2)
            .collect::<Vec<()>>();
        futures_util::future::join(random_work, streamed_work).await;
    }

    /// A blob whose package turned out unreadable or corrupt is taken from another package of the
    /// run that carries the same digest, so one bad package of a directory does not fail the
    /// images of the good ones that share its blobs.
    async fn transfer_alternates(&self, src: &Plan, res: &[Resolution], states: &[Arc<State>]) {
        for round in 0.. {
            let mut blobs = BTreeMap::new();
            let mut needs = Needs::new();
            for (d, b) in &src.blobs {
                let Some((pi, location)) = b.alternates.get(round) else {
                    continue;
                };
                for (k, state) in states.iter().enumerate() {
                    let mut failed = state.failed.lock().unwrap_or_else(|e| e.into_inner());
                    let source_failure = failed
                        .get(d)
                        .is_some_and(|(_, c)| matches!(c, ExitCode::BadPackage | ExitCode::Input));
                    let (Some(repos), true) = (res[k].missing.get(d), source_failure) else {
                        continue;
                    };
                    failed.remove(d);
                    needs.entry(d.clone()).or_default().push((k, repos.clone()));
                    blobs.insert(
                        d.clone(),
                        crate::plan::BlobSource {
                            package: *pi,
                            location: location.clone(),
                            size: b.size,
                            alternates: Vec::new(),
                        },
                    );
                }
            }
            if blobs.is_empty() {
                return;
            }
            let retry = Plan {
                destination: src.destination.clone(),
                packages: src.packages.clone(),
                images: Vec::new(),
                blobs,
            };
            self.transfer(&retry, &needs, states).await;
        }
    }

    /// A missing digest that another repository of the plan already holds (an earlier push of
    /// another image) is mounted from there: no bytes move. Returns what is still missing: the
    /// digests nobody holds, and the repositories where the registry declined the mount.
    async fn mount_present(
        &self,
        k: usize,
        res: &Resolution,
        state: &Arc<State>,
    ) -> BTreeMap<Digest, Vec<String>> {
        let client = &self.clients[k];
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
        let results: Vec<_> = stream::iter(mounts)
            .map(|(d, repo, from)| async move { (d, repo, client.mount_blob(repo, from, d).await) })
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

    /// One blob of a package read by offset: one reader, its chunks fanned out to one upload per
    /// destination. A retried attempt or a declined mount at one destination re-reads the blob
    /// for that destination alone (the package can be read again; the others are not held back).
    async fn transfer_random(
        &self,
        src: &Plan,
        digest: &Digest,
        targets: &[(usize, Vec<String>)],
        states: &[Arc<State>],
    ) {
        let Some(b) = src.blobs.get(digest) else {
            return;
        };
        let pkg = src.packages[b.package].clone();
        let label = entry_label(&pkg, &b.location);
        let open = |progress: Progress| -> std::io::Result<BlobStream> {
            let reader = package::blobs::open(&pkg, &b.location)
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
                b.size,
                label.clone(),
                progress,
                Arc::new(AtomicU64::new(0)),
            ))
        };
        // Re-reads add to the bar only past the point the blob was read to before; the rest is
        // counted as read again.
        let private = || open(self.progress.clone());
        let (bodies, tee_work) = fan_out(open(self.progress.clone()), targets.len());
        let (label, private) = (&label, &private);
        let uploads = targets
            .iter()
            .zip(bodies)
            .map(|((k, repos), body)| async move {
                let state = &states[*k];
                let client = &self.clients[*k];
                let Some((first, others)) = repos.split_first() else {
                    return;
                };
                let slot = Mutex::new(Some(body));
                let opener = || -> std::io::Result<BlobStream> {
                    let shared = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                    match shared {
                        Some(body) => body,
                        None => private(),
                    }
                };
                match client
                    .upload_blob(first, digest, b.size, &opener, &state.meter(digest))
                    .await
                {
                    Ok(()) => state.uploaded(digest, b.package, b.size),
                    Err(e) => {
                        state.fail(digest, blob_error(digest, label, &e), e.exit_code());
                        return;
                    }
                }
                for repo in others {
                    match client.mount_blob(repo, first, digest).await {
                        Ok(true) => {
                            state.mounted.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(false) => match client
                            .upload_blob(repo, digest, b.size, private, &state.meter(digest))
                            .await
                        {
                            Ok(()) => state.uploaded(digest, b.package, b.size),
                            Err(e) => {
                                state.fail(digest, blob_error(digest, label, &e), e.exit_code())
                            }
                        },
                        Err(e) => state.fail(digest, blob_error(digest, label, &e), e.exit_code()),
                    }
                }
            });
        futures_util::future::join(tee_work, futures_util::future::join_all(uploads)).await;
    }

    /// Uploads the missing blobs of a compressed package in one decoding pass, in archive order,
    /// each blob fanned out to every destination that needs it. A blob whose upload fails mid-pass
    /// cannot be re-read: it is retried in a further pass for the destinations that still need it
    /// (bounded by the client's retry budget), never by buffering it on disk.
    async fn transfer_streamed(
        &self,
        src: &Plan,
        pi: usize,
        digests: Vec<Digest>,
        needs: &Needs,
        states: &[Arc<State>],
    ) {
        let pkg = src.packages[pi].clone();
        // Per digest, the destinations that still need it.
        let mut todo: HashMap<Digest, HashSet<usize>> = digests
            .into_iter()
            .map(|d| {
                let ks = needs
                    .get(&d)
                    .map(|t| t.iter().map(|(k, _)| *k).collect())
                    .unwrap_or_default();
                (d, ks)
            })
            .collect();
        let handled: Vec<Digest> = todo.keys().cloned().collect();
        // A blob that failed mid-pass costs its destination one attempt of `--retries`, like a
        // retried request: the passes end when the budget of the most patient destination is spent.
        let max_passes = self.clients.iter().map(Client::retries).max().unwrap_or(0) + 1;
        for pass in 0..max_passes {
            todo.retain(|_, ks| !ks.is_empty());
            if todo.is_empty() {
                break;
            }
            if pass > 0 {
                // The growing wait a retried request gets, so a registry that is down has the
                // whole budget's time to come back.
                let wait = crate::registry::retry::backoff(pass, None);
                tracing::info!(
                    pass = pass + 1,
                    of = max_passes,
                    wait_ms = wait.as_millis() as u64,
                    blobs = todo.len(),
                    "another pass over the package for blobs whose upload must restart"
                );
                tokio::time::sleep(wait).await;
            }
            let (tx, mut rx) = tokio::sync::mpsc::channel::<(Digest, String, BlobStream)>(1);
            let wanted: HashSet<Digest> = todo.keys().cloned().collect();
            let reader_pkg = pkg.clone();
            let progress = self.progress.clone();
            let reader = tokio::task::spawn_blocking(move || {
                stream_pass(&reader_pkg, &wanted, tx, progress)
            });
            let mut mounts = Vec::new();
            // Uploads overlap: the reader hands over the next blob as soon as this one's bytes are
            // sent, while the registries are still committing it. The decoder stays the only
            // reader, so at most `jobs` blobs are ever in flight.
            let mut inflight = futures_util::stream::FuturesUnordered::new();
            let mut receiving = true;
            while receiving || !inflight.is_empty() {
                tokio::select! {
                    msg = rx.recv(), if receiving && inflight.len() < self.jobs => {
                        let Some((digest, label, body)) = msg else {
                            receiving = false;
                            continue;
                        };
                        let (Some(ks), Some(all)) = (todo.get(&digest), needs.get(&digest)) else {
                            continue;
                        };
                        let targets: Vec<(usize, String, Vec<String>)> = all
                            .iter()
                            .filter(|(k, repos)| ks.contains(k) && !repos.is_empty())
                            .map(|(k, repos)| (*k, repos[0].clone(), repos[1..].to_vec()))
                            .collect();
                        if targets.is_empty() {
                            continue;
                        }
                        let size = src.blobs.get(&digest).map_or(0, |b| b.size);
                        let (bodies, tee_work) = fan_out(Ok(body), targets.len());
                        let uploads: Vec<_> = targets.into_iter().zip(bodies).map(|((k, first, others), body)| {
                            let digest = digest.clone();
                            async move {
                                let slot = Mutex::new(Some(body));
                                let opener = || -> std::io::Result<BlobStream> {
                                    slot.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_else(|| {
                                        Err(std::io::Error::new(
                                            std::io::ErrorKind::Unsupported,
                                            "a streamed blob cannot be re-read in the same pass",
                                        ))
                                    })
                                };
                                let r = self.clients[k].upload_blob(&first, &digest, size, &opener, &states[k].meter(&digest)).await;
                                (k, first, others, r)
                            }
                        }).collect();
                        inflight.push(async move {
                            let (_, results) = futures_util::future::join(
                                tee_work,
                                futures_util::future::join_all(uploads),
                            )
                            .await;
                            (digest, label, size, results)
                        });
                    }
                    Some((digest, label, size, results)) = inflight.next(), if !inflight.is_empty() => {
                        for (k, first, others, r) in results {
                            match r {
                                Ok(()) => {
                                    states[k].uploaded(&digest, pi, size);
                                    if let Some(ks) = todo.get_mut(&digest) {
                                        ks.remove(&k);
                                    }
                                    mounts.push((k, digest.clone(), first, others, label.clone()));
                                }
                                Err(e) => {
                                    let code = e.exit_code();
                                    let source = is_source_error(&e);
                                    // Only a restart forced by a retriable failure (or a
                                    // refreshed token) goes to the next pass, while this
                                    // destination's budget lasts; its cause is what is reported
                                    // at the end. Anything else is the client's final answer.
                                    let restart = matches!(e, RegistryError::SourceNotRewindable { .. });
                                    let budget = self.clients[k].retries() + 1;
                                    let fatal = !restart || source || pass + 1 >= budget;
                                    if fatal {
                                        if let Some(ks) = todo.get_mut(&digest) {
                                            ks.remove(&k);
                                        }
                                        let code = if source { ExitCode::BadPackage } else { code };
                                        states[k].fail(&digest, blob_error(&digest, &label, &e), code);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let reader_error = match reader.await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some((e.to_string(), e.exit_code())),
                Err(e) => Some((format!("package reader stopped: {e}"), ExitCode::Failure)),
            };
            if let Some((msg, code)) = reader_error {
                // The package failed its integrity check (a corrupt trailer, a cut): blobs it
                // already gave are not trusted either, so no image of it gets a tag (another
                // package carrying the same blob can still provide it, as an alternate).
                for d in &handled {
                    for state in states {
                        state.fail(d, msg.clone(), code);
                    }
                }
                todo.clear();
            }
            for (k, digest, first, others, label) in mounts {
                let client = &self.clients[k];
                for repo in others {
                    match client.mount_blob(&repo, &first, &digest).await {
                        Ok(true) => {
                            states[k].mounted.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(false) => {
                            states[k].fail(
                                &digest,
                                format!(
                                    "{} declined to mount {digest} into {repo} from {first}",
                                    client.host()
                                ),
                                ExitCode::Remote,
                            );
                        }
                        Err(e) => {
                            states[k].fail(&digest, blob_error(&digest, &label, &e), e.exit_code())
                        }
                    }
                }
            }
        }
    }

    /// Phase 3: manifests children first, then the tag, for one image.
    async fn commit(
        &self,
        k: usize,
        plan: &Plan,
        img: &ImagePlan,
        state: &Arc<State>,
    ) -> ImageReport {
        let mut report = ImageReport::pending(img);
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
            match self
                .put_manifest_if_missing(k, plan, img, d, d.as_str())
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
        if let Some(tag) = &img.tag {
            match self
                .put_manifest_if_missing(k, plan, img, &img.digest, tag)
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
        k: usize,
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
        match self.clients[k]
            .manifest_exists(&img.repository, reference)
            .await
        {
            Ok(Some(existing)) if &existing == digest => return Ok(false),
            Ok(_) => {}
            Err(e) => return Err((e.to_string(), e.exit_code())),
        }
        let pushed = self.clients[k]
            .put_manifest(&img.repository, reference, &m.media_type, m.bytes.clone())
            .await
            .map_err(|e| (e.to_string(), e.exit_code()))?;
        if &pushed != digest {
            return Err((
                format!(
                    "{}: registry {} stored {} as {pushed}, not {digest}; the registry rewrote the manifest",
                    img.destination,
                    self.clients[k].host(),
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

/// Fans one blob body out to `n` upload bodies, each behind its own bounded queue: the source is
/// read once, a slow destination slows the reader (memory stays `n × QUEUE` chunks), and a
/// destination whose upload stopped (its body dropped) is left out while the others keep being
/// fed. An error from the source (digest mismatch) reaches every body, so no registry commits
/// the blob. The returned future does the copying and must be polled alongside the uploads.
fn fan_out(
    source: std::io::Result<BlobStream>,
    n: usize,
) -> (
    Vec<std::io::Result<BlobStream>>,
    futures_util::future::BoxFuture<'static, ()>,
) {
    let done = || -> futures_util::future::BoxFuture<'static, ()> { Box::pin(async {}) };
    let mut src = match source {
        Err(e) => {
            let copies = (0..n)
                .map(|_| Err(std::io::Error::new(e.kind(), e.to_string())))
                .collect();
            return (copies, done());
        }
        Ok(s) if n == 1 => return (vec![Ok(s)], done()),
        Ok(s) => s,
    };
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..n)
        .map(|_| tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(QUEUE))
        .unzip();
    let work = async move {
        let mut txs: Vec<Option<tokio::sync::mpsc::Sender<std::io::Result<Bytes>>>> =
            txs.into_iter().map(Some).collect();
        while let Some(item) = src.next().await {
            match item {
                Ok(chunk) => {
                    for slot in txs.iter_mut() {
                        if let Some(tx) = slot
                            && tx.send(Ok(chunk.clone())).await.is_err()
                        {
                            *slot = None;
                        }
                    }
                    if txs.iter().all(Option::is_none) {
                        return;
                    }
                }
                Err(e) => {
                    for tx in txs.iter().flatten() {
                        let _ = tx
                            .send(Err(std::io::Error::new(e.kind(), e.to_string())))
                            .await;
                    }
                    return;
                }
            }
        }
    };
    (
        rxs.into_iter().map(|rx| Ok(receiver_stream(rx))).collect(),
        Box::pin(work),
    )
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
        progress.read(digest.as_str(), total - n as u64, n as u64);
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
