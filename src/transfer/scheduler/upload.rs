//! Phase 2, mount/transfer: each missing blob read once from a package (by offset, or in a
//! sequential pass over a compressed one) and fanned out to every destination that lacks it;
//! the other repositories of a registry mount it; a blob whose package fails is taken from
//! another package of the run that carries it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::{StreamExt, stream};

use super::{Needs, Resolution, Scheduler, State, Targets};
use crate::digest::Digest;
use crate::error::{ExitCode, UserError};
use crate::plan::Plan;
use crate::registry::{BlobOutcome, BlobStream, Client, RegistryError};
use crate::transfer::body::{PASS_QUEUE, QUEUE, fan_out, stream_pass};
use crate::transfer::source::Check;

/// Below this size a blob's upload is round trips more than bytes: see [`Scheduler::transfer`].
const SMALL_BLOB: u64 = 1 << 20;
impl Scheduler {
    /// Phase 2: read each needed digest once and upload it to every destination that lacks it,
    /// then mount it into the other repositories there. `src` gives the packages and blob sources.
    pub(super) async fn transfer(&self, src: &Plan, needs: &Needs, states: &[Arc<State>]) {
        let mut random: Vec<(&Digest, &Targets)> = Vec::new();
        let mut streamed: BTreeMap<usize, Vec<Digest>> = BTreeMap::new();
        for (d, targets) in needs {
            let Some(b) = src.blobs.get(d) else {
                continue;
            };
            match b.origin.package() {
                Some(pi) if !b.origin.random_access() => {
                    streamed.entry(pi).or_default().push(d.clone())
                }
                _ => random.push((d, targets)),
            }
        }
        // A compressed package is only proven complete (end-of-archive blocks, stream trailer) by
        // reading it to its end: when none of its blobs is missing and opening it stopped after
        // its manifests, one pass still reads it, so a rerun never tags the images of a package
        // the first run refused. (Opening read the others, nested plugins among them, whole.)
        for (pi, pkg) in src.packages.iter().enumerate() {
            if !pkg.container.random_access() && !pkg.read_whole {
                streamed.entry(pi).or_default();
            }
        }
        // Largest first: the long uploads start early. Small blobs are bound by round trips, not
        // bytes (a POST and a PUT each), so they go in a lane of their own with more in flight,
        // beside the `--jobs` large ones, and fill the link's idle time.
        random.sort_by_key(|(d, _)| std::cmp::Reverse(src.blobs.get(*d).map_or(0, |b| b.size)));
        let (large, small): (Vec<_>, Vec<_>) = random
            .into_iter()
            .partition(|(d, _)| src.blobs.get(*d).map_or(0, |b| b.size) >= SMALL_BLOB);

        let large_work = stream::iter(large)
            .map(|(d, targets)| self.transfer_random(src, d, targets, states))
            .buffer_unordered(self.lanes.large)
            .collect::<Vec<()>>();
        let small_work = stream::iter(small)
            .map(|(d, targets)| self.transfer_random(src, d, targets, states))
            .buffer_unordered(self.lanes.small)
            .collect::<Vec<()>>();
        let streamed_work = stream::iter(streamed)
            .map(|(pi, digests)| self.transfer_streamed(src, pi, digests, needs, states))
            .buffer_unordered(2)
            .collect::<Vec<()>>();
        futures_util::future::join3(large_work, small_work, streamed_work).await;
    }

    /// A blob whose package turned out unreadable or corrupt is taken from another package of the
    /// run that carries the same digest, so one bad package of a directory does not fail the
    /// images of the good ones that share its blobs.
    pub(super) async fn transfer_alternates(
        &self,
        src: &Plan,
        res: &[Resolution],
        states: &[Arc<State>],
    ) {
        for round in 0.. {
            let mut blobs = BTreeMap::new();
            let mut needs = Needs::new();
            for (d, b) in &src.blobs {
                let Some(origin) = b.alternates.get(round) else {
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
                            origin: origin.clone(),
                            size: b.size,
                            alternates: Vec::new(),
                        },
                    );
                }
            }
            if blobs.is_empty() {
                return;
            }
            // The alternates as the only sources; no targets, since only blobs move here.
            let retry = Plan {
                packages: src.packages.clone(),
                remote_manifests: HashMap::new(),
                blobs,
                targets: Vec::new(),
            };
            self.transfer(&retry, &needs, states).await;
        }
    }

    /// A missing digest that another repository of the plan already holds (an earlier push of
    /// another image) is mounted from there: no bytes move. Returns what is still missing: the
    /// digests nobody holds, and the repositories where the registry declined the mount.
    pub(super) async fn mount_present(
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
            .buffer_unordered(self.lanes.mounts)
            .collect()
            .await;
        for (d, repo, r) in results {
            match r {
                Ok(true) => state.mounted_into(repo, d),
                Ok(false) => left.entry(d.clone()).or_default().push(repo.clone()),
                Err(e) => state.fail(d, format!("blob {d}: {e}"), e.exit_code()),
            }
        }
        left
    }

    /// One blob that can be read on its own (a package entry by offset, a source registry's
    /// repository): one read, its chunks fanned out to one upload per destination. A retried
    /// attempt or a declined mount at one destination reads the blob again for that destination
    /// alone (the others are not held back).
    pub(super) async fn transfer_random(
        &self,
        src: &Plan,
        digest: &Digest,
        targets: &[(usize, Vec<String>)],
        states: &[Arc<State>],
    ) {
        let Some(b) = src.blobs.get(digest) else {
            return;
        };
        let label = b.origin.label();
        // A source that refuses the blob (a registry's 404 or 401) fails it with that answer's
        // class at every destination, before any upload starts.
        let first = match b.origin.prepare(digest).await {
            Ok(first) => first,
            Err(e) => {
                for (k, _) in targets {
                    states[*k].fail(digest, blob_error(digest, &label, &e), e.exit_code());
                }
                return;
            }
        };
        // The body is opened when an upload is ready to send it (its session open), so blobs
        // waiting on a round trip hold no bytes. Re-reads add to the bar only past the point the
        // blob was read to before; the rest is counted as read again.
        let first = Mutex::new(first);
        let fresh = || {
            let first = first.lock().unwrap_or_else(|e| e.into_inner()).take();
            b.origin
                .open(digest, b.size, self.progress.clone(), first, Check::Size)
        };
        // Several destinations share one read, fanned out as they go.
        let (bodies, tee_work) = if targets.len() == 1 {
            let idle: futures_util::future::BoxFuture<'static, ()> = Box::pin(async {});
            (vec![None], idle)
        } else {
            let (bodies, work) = fan_out(fresh(), targets.len(), QUEUE);
            (bodies.into_iter().map(Some).collect(), work)
        };
        let (label, fresh) = (&label, &fresh);
        let uploads = targets
            .iter()
            .zip(bodies)
            .map(|((k, repos), body)| async move {
                let state = &states[*k];
                let client = &self.clients[*k];
                let Some((first, others)) = repos.split_first() else {
                    return;
                };
                let slot = Mutex::new(body);
                let opener = || -> std::io::Result<BlobStream> {
                    let shared = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                    match shared {
                        Some(body) => body,
                        None => fresh(),
                    }
                };
                match client
                    .upload_blob_unless_present(
                        first,
                        digest,
                        b.size,
                        &opener,
                        &state.meter(digest),
                    )
                    .await
                {
                    Ok(outcome) => {
                        // Not read at all when no other destination needed it.
                        if outcome == BlobOutcome::Present && targets.len() == 1 {
                            self.progress.skip(b.size);
                        }
                        state.landed(first, digest, b.origin.package(), b.size, outcome);
                    }
                    Err(e) => {
                        state.fail(digest, blob_error(digest, label, &e), e.exit_code());
                        return;
                    }
                }
                // A layer shared by many images is mounted into all of them at once.
                stream::iter(others)
                    .for_each_concurrent(self.lanes.mounts, |repo| async move {
                        match client.mount_blob(repo, first, digest).await {
                            Ok(true) => state.mounted_into(repo, digest),
                            Ok(false) => match client
                                .upload_blob(repo, digest, b.size, fresh, &state.meter(digest))
                                .await
                            {
                                Ok(()) => state.landed(
                                    repo,
                                    digest,
                                    b.origin.package(),
                                    b.size,
                                    BlobOutcome::Uploaded,
                                ),
                                Err(e) => {
                                    state.fail(digest, blob_error(digest, label, &e), e.exit_code())
                                }
                            },
                            Err(e) => {
                                state.fail(digest, blob_error(digest, label, &e), e.exit_code())
                            }
                        }
                    })
                    .await;
            });
        futures_util::future::join(tee_work, futures_util::future::join_all(uploads)).await;
    }

    /// Uploads the missing blobs of a compressed package in one decoding pass, in archive order,
    /// each blob fanned out to every destination that needs it. A blob whose upload fails mid-pass
    /// cannot be re-read: it is retried in a further pass for the destinations that still need it
    /// (bounded by the client's retry budget), never by buffering it on disk.
    pub(super) async fn transfer_streamed(
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
        let verify_only = todo.is_empty();
        if verify_only {
            tracing::debug!(package = %pkg.label(), "reading the package to its end to prove it complete");
        }
        // The blobs a failed end check makes untrusted: those this pass gives; when it only
        // verifies, those only this package carries (a blob another package also carries is
        // proven by that one), so that no image of the refused package is tagged.
        let handled: Vec<Digest> = if verify_only {
            src.blobs
                .iter()
                .filter(|(_, b)| b.origin.package() == Some(pi) && b.alternates.is_empty())
                .map(|(d, _)| d.clone())
                .collect()
        } else {
            todo.keys().cloned().collect()
        };
        // A blob that failed mid-pass costs its destination one attempt of `--retries`, like a
        // retried request: the passes end when the budget of the most patient destination is spent.
        let max_passes = self.clients.iter().map(Client::retries).max().unwrap_or(0) + 1;
        for pass in 0..max_passes {
            todo.retain(|_, ks| !ks.is_empty());
            if todo.is_empty() && !(verify_only && pass == 0) {
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
                stream_pass(&reader_pkg, &wanted, tx, progress, Check::Size)
            });
            let mut mounts = Vec::new();
            // Uploads overlap: the reader hands over the next blob as soon as this one's bytes are
            // sent, while the registries are still committing it. The decoder stays the only
            // reader; as many blobs are in flight as large uploads elsewhere (`--jobs`, more on a
            // long round trip), what they hold bounded by the read-ahead budget (`body::AHEAD`).
            let mut inflight = futures_util::stream::FuturesUnordered::new();
            let mut receiving = true;
            while receiving || !inflight.is_empty() {
                tokio::select! {
                    msg = rx.recv(), if receiving && inflight.len() < self.lanes.large => {
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
                        let (bodies, tee_work) = fan_out(Ok(body), targets.len(), PASS_QUEUE);
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
                                let r = self.clients[k].upload_blob_unless_present(&first, &digest, size, &opener, &states[k].meter(&digest)).await;
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
                                Ok(outcome) => {
                                    states[k].landed(&first, &digest, Some(pi), size, outcome);
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
            let mounts = mounts.iter().flat_map(|(k, digest, first, others, label)| {
                others
                    .iter()
                    .map(move |repo| (*k, digest, first, repo, label))
            });
            stream::iter(mounts)
                .for_each_concurrent(
                    self.lanes.mounts,
                    |(k, digest, first, repo, label)| async move {
                        let client = &self.clients[k];
                        match client.mount_blob(repo, first, digest).await {
                            Ok(true) => states[k].mounted_into(repo, digest),
                            Ok(false) => {
                                states[k].fail(
                                    digest,
                                    format!(
                                        "{} declined to mount {digest} into {repo} from {first}",
                                        client.host()
                                    ),
                                    ExitCode::Remote,
                                );
                            }
                            Err(e) => {
                                states[k].fail(digest, blob_error(digest, label, &e), e.exit_code())
                            }
                        }
                    },
                )
                .await;
        }
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
