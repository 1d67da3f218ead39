//! Early commits: an image is committed as soon as the last of its blobs is in at a destination,
//! while the blobs of other images still move. Over a link with latency, the manifests of
//! hundreds of images then cost no time of their own at the end of a push; the rule that a tag
//! is written only over a complete graph is unchanged (the commit still checks every blob).
//!
//! Only images whose blobs can each be read on its own take part: a blob that comes from a
//! sequential pass over a compressed package is trusted only once that package is read to its
//! end, so its images wait for the end of the transfer, as do signatures and other artifacts
//! (committed after the images they are about) and images already at their tag.

use std::collections::{HashMap, HashSet};

use futures_util::{StreamExt, stream};
use tokio::sync::mpsc;

use super::{ImageReport, Resolution, Scheduler, State};
use crate::digest::Digest;
use crate::plan::{Plan, Target};

/// The images of one destination that wait for blobs, by the (repository, digest) pairs still
/// missing there.
pub(super) struct Settle {
    waiting: HashMap<(String, Digest), Vec<usize>>,
    /// Per waiting image, how many of its pairs are still missing.
    left: HashMap<usize, usize>,
    ready: mpsc::UnboundedSender<usize>,
}

impl Settle {
    /// The images of `target` that may be committed early, and the receiver that gets each one's
    /// index when its last missing blob is in (at once for those missing none).
    pub(super) fn new(
        plan: &Plan,
        target: &Target,
        res: &Resolution,
        tagged: &HashSet<usize>,
    ) -> (Self, mpsc::UnboundedReceiver<usize>) {
        let (ready, rx) = mpsc::unbounded_channel();
        let mut settle = Self {
            waiting: HashMap::new(),
            left: HashMap::new(),
            ready,
        };
        for (i, img) in target.images.iter().enumerate() {
            let readable = img
                .blobs
                .iter()
                .all(|d| plan.blobs.get(d).is_none_or(|b| b.origin.random_access()));
            if tagged.contains(&i) || img.referrer.is_some() || !readable {
                continue;
            }
            let missing: HashSet<&Digest> = img
                .blobs
                .iter()
                .filter(|d| {
                    res.missing
                        .get(*d)
                        .is_some_and(|repos| repos.contains(&img.repository))
                })
                .collect();
            if missing.is_empty() {
                let _ = settle.ready.send(i);
                continue;
            }
            settle.left.insert(i, missing.len());
            for d in missing {
                settle
                    .waiting
                    .entry((img.repository.clone(), d.clone()))
                    .or_default()
                    .push(i);
            }
        }
        (settle, rx)
    }

    /// `repo` at this destination now holds `digest`.
    pub(super) fn settled(&mut self, repo: &str, digest: &Digest) {
        let Some(images) = self.waiting.remove(&(repo.to_string(), digest.clone())) else {
            return;
        };
        for i in images {
            if let Some(left) = self.left.get_mut(&i) {
                *left -= 1;
                if *left == 0 {
                    self.left.remove(&i);
                    let _ = self.ready.send(i);
                }
            }
        }
    }
}

impl Scheduler {
    /// Commits the images of destination `k` that `ready` names, as they come, until the
    /// transfer closes it. Returns their reports by image.
    pub(super) async fn commit_ready(
        &self,
        k: usize,
        plan: &Plan,
        state: &State,
        ready: mpsc::UnboundedReceiver<usize>,
    ) -> HashMap<usize, ImageReport> {
        let target = &plan.targets[k];
        stream::unfold(
            ready,
            |mut rx| async move { rx.recv().await.map(|i| (i, rx)) },
        )
        .map(|i| async move {
            (
                i,
                self.commit(k, plan, &target.images[i], state, false).await,
            )
        })
        .buffer_unordered(self.lanes.commits)
        .collect()
        .await
    }
}
