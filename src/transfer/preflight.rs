//! Push preflight of differential packages: before anything is uploaded, every blob a package
//! leaves at the site (`differential.expected`) must be at each destination, in the repository
//! that needs it or in one it can be mounted from. A package without its base there is refused
//! as a whole (exit 7) — never half pushed with manifests the registry would reject.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::{StreamExt, stream};

use crate::digest::Digest;
use crate::package::metadata::BaseKind;
use crate::plan::Plan;
use crate::registry::Client;
use crate::transfer::inventory::DifferentialError;

/// `HEAD`s in flight at once.
const CONCURRENCY: usize = 32;
/// Missing blobs named in the error.
const NAMED: usize = 3;

/// What the preflight found at one destination.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Checked {
    /// (repository, blob) pairs checked.
    pub pairs: usize,
    /// Pairs that were missing in their repository but present in another one, mounted (or, in
    /// a dry run, mountable).
    pub mounted: usize,
}

/// One (repository, expected blob) pair an image of a differential package needs.
struct Need {
    repository: String,
    digest: Digest,
    /// The image, for the error.
    image: String,
    /// Index into `plan.packages`.
    package: usize,
}

/// Checks every destination (`clients[k]` is `plan.targets[k]`); with `mount`, mounts the
/// expected blobs that sit in another repository of the same registry. `complete[k]` are the
/// images of target `k` whose tag already resolves to their digest (the scheduler's phase 0;
/// empty under `--verify-existing`): a registry accepted their manifests, so it holds their
/// blobs, which are neither checked nor missing, and can be mounted from. `Ok` with nothing
/// checked when no package of the plan is differential.
pub async fn check(
    plan: &Plan,
    clients: &[Client],
    mount: bool,
    complete: &[HashSet<usize>],
) -> anyhow::Result<Vec<Checked>> {
    let mut out = Vec::new();
    let none = HashSet::new();
    for (k, target) in plan.targets.iter().enumerate() {
        let client = &clients[k];
        let complete = complete.get(k).unwrap_or(&none);
        let mut needs: Vec<Need> = Vec::new();
        let mut seen = HashSet::new();
        // Where each digest is already held at this destination: a mount source.
        let mut holder: HashMap<Digest, String> = HashMap::new();
        for (i, img) in target.images.iter().enumerate() {
            let pkg = &plan.packages[img.package];
            if pkg.metadata.differential.is_none() {
                continue;
            }
            let external = img.blobs.iter().filter(|d| pkg.external.contains_key(*d));
            if complete.contains(&i) {
                for d in external {
                    holder
                        .entry(d.clone())
                        .or_insert_with(|| img.repository.clone());
                }
                continue;
            }
            for d in external {
                if seen.insert((img.repository.clone(), d.clone())) {
                    needs.push(Need {
                        repository: img.repository.clone(),
                        digest: d.clone(),
                        image: img.source.clone(),
                        package: img.package,
                    });
                }
            }
        }
        if needs.is_empty() {
            out.push(Checked::default());
            continue;
        }
        let found = heads(
            client,
            needs
                .iter()
                .map(|n| (n.repository.clone(), n.digest.clone())),
        )
        .await?;
        for ((repo, d), present) in &found {
            if *present {
                holder.entry(d.clone()).or_insert_with(|| repo.clone());
            }
        }
        // Still unplaced: the repository the base recorded for the blob.
        let hints: Vec<(String, Digest)> = needs
            .iter()
            .filter(|n| !holder.contains_key(&n.digest))
            .filter_map(|n| {
                let pkg = &plan.packages[n.package];
                let diff = pkg.metadata.differential.as_ref()?;
                let e = diff.expected.iter().find(|e| e.digest == n.digest)?;
                let repo = e.repository.as_ref()?;
                let repo = match diff.against {
                    BaseKind::Inventory | BaseKind::Registry => repo.clone(),
                    BaseKind::Package => target.destination.repository(repo),
                };
                Some((repo, n.digest.clone()))
            })
            .collect();
        for ((repo, d), present) in heads(client, hints).await? {
            if present {
                holder.entry(d).or_insert(repo);
            }
        }
        let missing: Vec<&Need> = needs
            .iter()
            .filter(|n| {
                !found[&(n.repository.clone(), n.digest.clone())] && !holder.contains_key(&n.digest)
            })
            .collect();
        if let Some(first) = missing.first() {
            return Err(refusal(plan, client, first.package, &missing).into());
        }
        let to_mount: Vec<&Need> = needs
            .iter()
            .filter(|n| !found[&(n.repository.clone(), n.digest.clone())])
            .collect();
        let mut checked = Checked {
            pairs: needs.len(),
            mounted: to_mount.len(),
        };
        if mount && !to_mount.is_empty() {
            let results: Vec<_> = stream::iter(to_mount)
                .map(|n| {
                    let from = holder[&n.digest].clone();
                    async move { (n, client.mount_blob(&n.repository, &from, &n.digest).await) }
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            let mut declined = Vec::new();
            for (n, r) in results {
                match r {
                    Ok(true) => {}
                    // Without the blob's bytes, a declined mount cannot be made up for.
                    Ok(false) => declined.push(n),
                    Err(e) => return Err(e.into()),
                }
            }
            if let Some(first) = declined.first() {
                return Err(refusal(plan, client, first.package, &declined).into());
            }
            checked.mounted = checked.mounted.saturating_sub(declined.len());
        }
        out.push(checked);
    }
    Ok(out)
}

/// `HEAD` every pair: whether the blob is in that repository. An error (denied, unreachable) is
/// the answer of the whole preflight.
async fn heads(
    client: &Client,
    pairs: impl IntoIterator<Item = (String, Digest)>,
) -> anyhow::Result<BTreeMap<(String, Digest), bool>> {
    let results: Vec<_> = stream::iter(pairs)
        .map(|(repo, d)| async move {
            let r = client.blob_exists(&repo, &d).await;
            (repo, d, r)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut out = BTreeMap::new();
    for (repo, d, r) in results {
        out.insert((repo, d), r?.is_some());
    }
    Ok(out)
}

fn refusal(plan: &Plan, client: &Client, package: usize, missing: &[&Need]) -> DifferentialError {
    let pkg = &plan.packages[package];
    let base = pkg
        .metadata
        .differential
        .as_ref()
        .map(|d| d.label())
        .unwrap_or_default();
    let mut first: Vec<String> = missing
        .iter()
        .take(NAMED)
        .map(|n| format!("{} ({})", n.digest, crate::output::escape(&n.image)))
        .collect();
    if missing.len() > NAMED {
        first.push(format!("and {} more", missing.len() - NAMED));
    }
    DifferentialError::Missing {
        package: pkg.label(),
        registry: client.host().to_string(),
        base: crate::output::escape(&base).into_owned(),
        count: missing.len(),
        first: first.join(", "),
    }
}
