//! The blob scheduler: turns a [`Plan`] into registry operations.
//!
//! 1. **Resolve**: `HEAD` every (repository, blob) pair; present blobs are skipped. A package's
//!    blob under 1 MiB is not asked about: its upload opens with a mount from its own repository,
//!    which says "already there" in the request that would otherwise start it.
//! 2. **Transfer**: every missing digest is uploaded exactly once (into the first repository that
//!    needs it), at most `jobs` at a time, largest first; every other repository that needs it waits
//!    for that upload and then mounts it (or uploads again where the registry declines the mount).
//!    Blobs behind a decompressor are uploaded during one sequential pass over the package.
//! 3. **Commit**: per image, child manifests by digest, then the tag — only when every blob and
//!    child manifest of the image is confirmed present, so a failed run never leaves a tag over an
//!    incomplete graph. An image whose blobs are all in is committed while others still move.
//! 4. **Parity** (several destinations): every tag read back at every destination.
//!
//! Phase 2 is `upload.rs`, phase 3 `commit.rs` (early commits: `settle.rs`); the blob bodies
//! phase 2 sends are `transfer::body`; the reports all phases fill are `transfer::report`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};

use crate::digest::Digest;
use crate::error::{ExitCode, UserError};
use crate::output::progress::Progress;
use crate::plan::Plan;
use crate::registry::{BlobOutcome, Client};
use crate::transfer::source::Origin;

mod commit;
mod lanes;
mod settle;
mod upload;

use lanes::Lanes;

pub use super::report::{
    BlobCounts, ImageReport, ImageResult, Parity, ParityCell, ParityRow, Report,
};

/// Blobs below this size are not checked before a push: their upload asks instead (see the
/// module's phase 1). A blob there that only another repository holds is then sent again rather
/// than mounted, which costs less than a round trip per repository for every small blob.
const CHECK_FROM: u64 = 1 << 20;

/// The outcome of resolving: which (repository, digest) pairs are missing.
#[derive(Debug, Default)]
pub struct Resolution {
    pub missing: BTreeMap<Digest, Vec<String>>,
    pub present: HashSet<(String, Digest)>,
    pub errors: HashMap<Digest, (String, ExitCode)>,
    /// Per present digest, the first repository found holding it: looked up once per missing
    /// digest, so not a scan of `present` (thousands of pairs in a core package).
    holder: HashMap<Digest, String>,
}

impl Resolution {
    /// Records that `repo` holds `digest`.
    fn hold(&mut self, repo: String, digest: Digest) {
        self.holder
            .entry(digest.clone())
            .or_insert_with(|| repo.clone());
        self.present.insert((repo, digest));
    }

    /// A repository of the plan that already holds `digest`, to mount it from.
    pub fn present_in(&self, digest: &Digest) -> Option<&str> {
        self.holder.get(digest).map(String::as_str)
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
    /// One client per destination, in `--dest-repo` order; the plan's target `k` goes to
    /// client `k`.
    clients: Vec<Client>,
    jobs: usize,
    /// The in-flight counts of the checks, transfer and commits: the base ones until a round
    /// trip is known, then sized by the quickest answer so far before each phase (the tag checks
    /// by the `/v2/` ping), see [`Scheduler::sized_by_round_trip`].
    lanes: Lanes,
    /// The round trip `lanes` was sized by.
    round_trip: Option<Duration>,
    progress: Progress,
    /// Check every blob even under a tag that already resolves to the image's digest
    /// (`--verify-existing`), for registries not trusted to hold complete graphs.
    verify_existing: bool,
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
    /// Blobs an upload found already there (not asked about before, see [`CHECK_FROM`]).
    present: AtomicU64,
    bytes: AtomicU64,
    /// Per blob, how many of its bytes were sent to this destination so far (furthest point).
    reached: Mutex<HashMap<Digest, u64>>,
    /// Bytes sent to this destination again: a retried attempt or a further pass re-sends what an
    /// earlier attempt already sent.
    resent: AtomicU64,
    /// The images to commit as soon as their blobs are in; `None` once the transfer is over.
    settle: Mutex<Option<settle::Settle>>,
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

    /// `repo` here now holds `digest`: it lets the images waiting for that commit.
    fn settled(&self, repo: &str, digest: &Digest) {
        if let Some(settle) = self
            .settle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            settle.settled(repo, digest);
        }
    }

    /// An upload of `digest` into `repo` ended well: its bytes were sent (read from `package`),
    /// or the repository turned out to hold the blob already.
    fn landed(
        &self,
        repo: &str,
        digest: &Digest,
        package: Option<usize>,
        size: u64,
        outcome: BlobOutcome,
    ) {
        match outcome {
            BlobOutcome::Uploaded => self.uploaded(digest, package, size),
            BlobOutcome::Present => {
                self.present.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.settled(repo, digest);
    }

    /// `digest` was mounted into `repo`.
    fn mounted_into(&self, repo: &str, digest: &Digest) {
        self.mounted.fetch_add(1, Ordering::Relaxed);
        self.settled(repo, digest);
    }

    fn uploaded(&self, digest: &Digest, package: Option<usize>, size: u64) {
        self.uploaded.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(size, Ordering::Relaxed);
        if let Some(package) = package {
            self.from
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(digest.clone())
                .or_insert(package);
        }
    }
}

impl Scheduler {
    /// A scheduler for several destinations: each blob is read once and fanned out to all.
    pub fn new(clients: Vec<Client>, jobs: usize, progress: Progress) -> Self {
        assert!(!clients.is_empty(), "a scheduler needs a destination");
        Self {
            clients,
            jobs: jobs.max(1),
            lanes: Lanes::new(jobs, None),
            round_trip: None,
            progress,
            verify_existing: false,
        }
    }

    /// This scheduler with its in-flight counts sized by the round trip measured so far to the
    /// destinations and to the source registries of `plan` (`mirror`: each transfer waits for
    /// both), the longest of them. Sized again as answers come in: the quickest answer only
    /// shrinks, and the first (the `/v2/` ping) may include a connection's handshakes.
    fn sized_by_round_trip(&self, plan: &Plan) -> Self {
        let sources = plan.blobs.values().filter_map(|b| match &b.origin {
            Origin::Registry { client, .. } => client.round_trip(),
            Origin::Package { .. } => None,
        });
        let round_trip = self
            .clients
            .iter()
            .filter_map(Client::round_trip)
            .chain(sources)
            .max();
        Self {
            lanes: Lanes::new(self.jobs, round_trip),
            round_trip,
            ..self.clone()
        }
    }

    /// The counts the transfer runs with, said on `-v`.
    fn log_lanes(&self) {
        if let Some(rtt) = self.round_trip {
            let lanes = &self.lanes;
            tracing::info!(
                round_trip_ms = rtt.as_millis() as u64,
                widened = lanes.widened(self.jobs),
                large = lanes.large,
                small = lanes.small,
                mounts = lanes.mounts,
                commits = lanes.commits,
                checks = lanes.checks,
                "uploads in flight, by the quickest registry answer"
            );
        }
    }

    /// `--verify-existing`: an image whose tag already resolves to its digest still has every
    /// blob checked (and every child manifest), instead of being taken as complete.
    pub fn verify_existing(mut self, yes: bool) -> Self {
        self.verify_existing = yes;
        self
    }

    /// Phase 0 at destination `k`: the images whose reference (tag, or digest) already resolves
    /// to the image's digest. A registry accepts a manifest only when it holds every blob and
    /// child manifest it references, so such an image is complete there and none of its blobs
    /// needs a check (unless `--verify-existing`); a rerun of a pushed package costs one request
    /// per image, not one per blob. The others are written without asking first.
    async fn tagged_at(&self, k: usize, plan: &Plan) -> HashSet<usize> {
        let client = &self.clients[k];
        stream::iter(plan.targets[k].images.iter().enumerate())
            .map(|(i, img)| async move {
                let reference = img.tag.clone().unwrap_or_else(|| img.digest.to_string());
                let found = client.manifest_exists(&img.repository, &reference).await;
                (i, matches!(found, Ok(Some(d)) if d == img.digest))
            })
            .buffer_unordered(self.lanes.checks)
            .filter_map(|(i, present)| async move { present.then_some(i) })
            .collect()
            .await
    }

    /// Phase 1 at destination `k`: which blobs are missing in which repository, for every image
    /// but those in `complete` (already there, see [`Self::tagged_at`]). Unless `exact`, a blob
    /// below [`CHECK_FROM`] read from a package is taken as missing everywhere without asking:
    /// its upload finds out.
    pub async fn resolve_at(
        &self,
        k: usize,
        plan: &Plan,
        complete: &HashSet<usize>,
        exact: bool,
    ) -> Resolution {
        let mut res = Resolution::default();
        // The blobs under a complete image are there without asking, and can be mounted from.
        for (_, img) in plan.targets[k]
            .images
            .iter()
            .enumerate()
            .filter(|(i, _)| complete.contains(i))
        {
            for d in &img.blobs {
                res.hold(img.repository.clone(), d.clone());
            }
        }
        let mut pairs: Vec<(String, Digest)> = Vec::new();
        let mut seen = HashSet::new();
        for (_, img) in plan.targets[k]
            .images
            .iter()
            .enumerate()
            .filter(|(i, _)| !complete.contains(i))
        {
            for d in &img.blobs {
                let pair = (img.repository.clone(), d.clone());
                if res.present.contains(&pair) || !seen.insert(pair.clone()) {
                    continue;
                }
                // Read from a package only: a source registry's blob is fetched before its upload
                // starts, and a GET abandoned because the blob was there would cost more than a HEAD.
                let unasked = !exact
                    && plan
                        .blobs
                        .get(d)
                        .is_some_and(|b| b.size < CHECK_FROM && b.origin.package().is_some());
                if unasked {
                    res.missing.entry(pair.1).or_default().push(pair.0);
                } else {
                    pairs.push(pair);
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
            .buffered(self.lanes.checks)
            .collect()
            .await;
        for (repo, d, r) in results {
            match r {
                Ok(Some(_)) => {
                    res.hold(repo, d);
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
        let images: Vec<ImageReport> = stream::iter(plan.targets[k].images.iter())
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
            .buffered(self.lanes.checks)
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

    /// Runs the whole push to every destination: the plan's target `k` goes to client `k`. Each
    /// missing blob is read from its package once and streamed to every destination that lacks
    /// it; a destination that fails does not fail the others. One report per target.
    pub async fn push_all(&self, plan: &Plan) -> Vec<Report> {
        let tagged = self.tagged(plan).await;
        self.push_tagged(plan, tagged).await
    }

    /// Phase 0 at every destination (`tagged[k]` for target `k`): what [`Self::push_tagged`]
    /// takes, for a caller that needs it first (the differential preflight).
    pub async fn tagged(&self, plan: &Plan) -> Vec<HashSet<usize>> {
        let this = &self.sized_by_round_trip(plan);
        futures_util::future::join_all((0..plan.targets.len()).map(|k| this.tagged_at(k, plan)))
            .await
    }

    /// [`Self::push_all`] with phase 0 already done.
    pub async fn push_tagged(&self, plan: &Plan, tagged: Vec<HashSet<usize>>) -> Vec<Report> {
        let start = Instant::now();
        let none = HashSet::new();
        // Under --verify-existing no image is taken as complete.
        let complete: &[HashSet<usize>] = if self.verify_existing { &[] } else { &tagged };
        let checking = &self.sized_by_round_trip(plan);
        let resolutions: Vec<Resolution> = futures_util::future::join_all(
            (0..plan.targets.len())
                .map(|k| checking.resolve_at(k, plan, complete.get(k).unwrap_or(&none), false)),
        )
        .await;
        let this = &self.sized_by_round_trip(plan);
        this.log_lanes();
        let mut ready = Vec::new();
        let states: Vec<Arc<State>> = resolutions
            .iter()
            .enumerate()
            .map(|(k, res)| {
                let state = State::default();
                for (d, (msg, code)) in &res.errors {
                    state.fail(d, msg.clone(), *code);
                }
                let (settle, rx) = settle::Settle::new(plan, &plan.targets[k], res, &tagged[k]);
                *state.settle.lock().unwrap_or_else(|e| e.into_inner()) = Some(settle);
                ready.push(rx);
                Arc::new(state)
            })
            .collect();
        // Progress counts bytes read from the packages: each blob once, whatever the fan-out.
        let to_read: HashSet<&Digest> = resolutions.iter().flat_map(|r| r.to_upload()).collect();
        this.progress.set_total(
            to_read
                .iter()
                .filter_map(|d| plan.blobs.get(*d))
                .map(|b| b.size)
                .sum(),
        );

        let moving = async {
            let mut needs = Needs::new();
            for (k, res) in resolutions.iter().enumerate() {
                for (d, repos) in this.mount_present(k, res, &states[k]).await {
                    needs.entry(d).or_default().push((k, repos));
                }
            }
            // A blob without bytes in the run (a differential package's expected blob) that is
            // still missing: fail its images here rather than write manifests the registry rejects.
            for (d, targets) in needs.iter().filter(|(d, _)| !plan.blobs.contains_key(*d)) {
                for (k, repos) in targets {
                    let msg = format!(
                        "blob {d} is not in {} at {} and the package does not carry it (differential package: its base is expected there)",
                        repos.join(", "),
                        this.clients[*k].host()
                    );
                    states[*k].fail(d, msg, ExitCode::Remote);
                }
            }
            this.transfer(plan, &needs, &states).await;
            this.transfer_alternates(plan, &resolutions, &states).await;
            // What did not settle waits for the commit below (a failed blob fails it there).
            for state in &states {
                *state.settle.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
        };
        let early = futures_util::future::join_all(
            ready
                .into_iter()
                .enumerate()
                .map(|(k, rx)| this.commit_ready(k, plan, &states[k], rx)),
        );
        let ((), early) = futures_util::future::join(moving, early).await;

        let committed: Vec<Vec<ImageReport>> =
            futures_util::future::join_all(plan.targets.iter().zip(early).enumerate().map(
                |(k, (target, early))| {
                    this.commit_target(k, plan, &states[k], &tagged[k], target, early)
                },
            ))
            .await;
        this.progress.finish();

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
                        skipped: res.present.len() + state.present.load(Ordering::Relaxed) as usize,
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
    /// and compare (image `i` is the same image at every target).
    pub async fn parity(&self, plan: &Plan) -> Vec<ParityRow> {
        let count = plan.images().len();
        stream::iter(0..count)
            .map(|i| async move {
                let cells = futures_util::future::join_all(plan.targets.iter().enumerate().map(
                    |(k, target)| async move {
                        let img = &target.images[i];
                        let reference = img.tag.clone().unwrap_or_else(|| img.digest.to_string());
                        let (digest, error, code) = match self.clients[k]
                            .manifest_exists(&img.repository, &reference)
                            .await
                        {
                            Ok(d) => (d, None, None),
                            Err(e) => (None, Some(e.to_string()), Some(e.exit_code())),
                        };
                        ParityCell {
                            destination: img.destination.clone(),
                            digest,
                            error,
                            code,
                        }
                    },
                ))
                .await;
                let expected = plan.images()[i].digest.clone();
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
                    image: plan.images()[i].source.clone(),
                    expected,
                    status,
                    destinations: cells,
                }
            })
            .buffered(self.lanes.checks)
            .collect()
            .await
    }
}
