//! Phase 3, commit: per image, child manifests by digest, then the tag, only over a graph whose
//! every blob is confirmed at the destination; then the artifacts about the images, and the
//! referrers tag schema's indexes where a registry has no referrers API.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::{StreamExt, stream};

use super::{ImageReport, ImageResult, Scheduler, State};
use crate::digest::Digest;
use crate::error::{ExitCode, UserError};
use crate::package::referrer;
use crate::plan::{ImagePlan, Plan, Target};
use crate::transfer::referrers;

impl Scheduler {
    /// Phase 3 at destination `k`: the images not committed `early` (see `settle.rs`), then the
    /// artifacts about them (signatures, SBOMs, OCI referrers) whose image did not fail, then the
    /// referrers tag schema's indexes where the registry has no referrers API. Reports in plan
    /// order.
    pub(super) async fn commit_target(
        &self,
        k: usize,
        plan: &Plan,
        state: &State,
        tagged: &HashSet<usize>,
        target: &Target,
        early: HashMap<usize, ImageReport>,
    ) -> Vec<ImageReport> {
        let (artifacts, images): (Vec<_>, Vec<_>) = target
            .images
            .iter()
            .enumerate()
            .filter(|(i, _)| !early.contains_key(i))
            .partition(|(_, img)| img.referrer.is_some());
        let mut reports: Vec<Option<ImageReport>> = vec![None; target.images.len()];
        let mut first: Vec<(usize, ImageReport)> = stream::iter(images)
            .map(|(i, img)| async move {
                (
                    i,
                    self.commit(k, plan, img, state, tagged.contains(&i)).await,
                )
            })
            .buffered(self.lanes.commits)
            .collect()
            .await;
        first.extend(early);
        // The digests (with every manifest under them) of images that failed here: what refers
        // to them is not written, so no signature points at an image that is not there.
        let failed: HashSet<(&str, &Digest)> = first
            .iter()
            .filter(|(_, r)| r.result == ImageResult::Failed)
            .flat_map(|(i, _)| {
                let img = &target.images[*i];
                img.manifests.iter().map(|d| (img.repository.as_str(), d))
            })
            .collect();
        for (i, r) in first {
            reports[i] = Some(r);
        }
        let second: Vec<(usize, ImageReport)> = stream::iter(artifacts)
            .map(|(i, img)| {
                let failed = &failed;
                async move {
                    let subject = &img.referrer.as_ref().expect("an artifact").subject;
                    if failed.contains(&(img.repository.as_str(), subject)) {
                        let mut r = ImageReport::pending(img);
                        r.error = Some(format!(
                            "not written: the image it is about ({subject}) failed at {}",
                            self.clients[k].host()
                        ));
                        r.exit_code = Some(ExitCode::Failure);
                        return (i, r);
                    }
                    (
                        i,
                        self.commit(k, plan, img, state, tagged.contains(&i)).await,
                    )
                }
            })
            .buffered(self.lanes.commits)
            .collect()
            .await;
        let indexed = self.referrers_indexes(k, plan, target, &second).await;
        for (i, mut r) in second {
            if let Some((msg, code)) = indexed.get(&i) {
                r.result = ImageResult::Failed;
                r.error = Some(msg.clone());
                r.exit_code = Some(*code);
            }
            reports[i] = Some(r);
        }
        reports
            .into_iter()
            .map(|r| r.expect("every image reported"))
            .collect()
    }

    /// The OCI referrers tag schema at destination `k`: for each subject with referrers written
    /// here (by their `subject` field), an index under `sha256-<hex>` listing them, merged with
    /// what the tag lists already, unless the registry has the referrers API (one probe; it then
    /// indexes them itself). Returns the failures, by image.
    async fn referrers_indexes(
        &self,
        k: usize,
        plan: &Plan,
        target: &Target,
        written: &[(usize, ImageReport)],
    ) -> HashMap<usize, (String, ExitCode)> {
        let mut groups: BTreeMap<(&str, &Digest), Vec<usize>> = BTreeMap::new();
        for (i, r) in written {
            let img = &target.images[*i];
            match &img.referrer {
                Some(rf) if rf.by_subject && r.result != ImageResult::Failed => {
                    groups
                        .entry((&img.repository, &rf.subject))
                        .or_default()
                        .push(*i);
                }
                _ => {}
            }
        }
        let mut failures = HashMap::new();
        let Some(((repo, subject), _)) = groups.iter().next() else {
            return failures;
        };
        let client = &self.clients[k];
        match client.referrers(repo, subject).await {
            Ok(Some(_)) => return failures,
            Ok(None) => {}
            Err(e) => {
                for i in groups.values().flatten() {
                    failures.insert(*i, (e.to_string(), e.exit_code()));
                }
                return failures;
            }
        }
        for ((repo, subject), members) in &groups {
            let descriptors: Vec<serde_json::Value> = members
                .iter()
                .filter_map(|i| {
                    let img = &target.images[*i];
                    let (media_type, bytes) = plan.manifest(img, &img.digest)?;
                    Some(referrer::index_descriptor(media_type, &img.digest, bytes))
                })
                .collect();
            if let Err(e) = referrers::update_fallback(client, repo, subject, &descriptors).await {
                for i in members {
                    failures.insert(*i, (e.to_string(), e.exit_code()));
                }
            }
        }
        failures
    }

    /// Phase 3: manifests children first, then the tag, for one image. A `tagged` image (its
    /// reference already resolves to its digest) writes nothing, or under `--verify-existing`
    /// only the manifests found missing; it still fails when one of its blobs failed the
    /// package's checks (a package cut short is refused on every run). Any other image gets
    /// every manifest written without a check first (a manifest `PUT` is idempotent, and its tag
    /// is to be written anyway).
    pub(super) async fn commit(
        &self,
        k: usize,
        plan: &Plan,
        img: &ImagePlan,
        state: &State,
        tagged: bool,
    ) -> ImageReport {
        let mut report = ImageReport::pending(img);
        for d in &img.blobs {
            if let Some((msg, code)) = state.failure(d) {
                report.error = Some(msg);
                report.exit_code = Some(code);
                return report;
            }
        }
        if tagged && !self.verify_existing {
            report.result = ImageResult::Unchanged;
            return report;
        }
        // Children by digest first; the top manifest goes under its tag last (by digest when the
        // image has no tag).
        let mut writes: Vec<(&Digest, &str)> = img
            .manifests
            .iter()
            .filter(|d| !(*d == &img.digest && img.tag.is_some()))
            .map(|d| (d, d.as_str()))
            .collect();
        if let Some(tag) = &img.tag {
            writes.push((&img.digest, tag.as_str()));
        }
        let mut wrote = false;
        for (digest, reference) in writes {
            match self
                .put_manifest(k, plan, img, digest, reference, tagged)
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

    /// PUTs a manifest under `reference` (when `check`, only unless it already resolves to
    /// `digest`). Returns whether it wrote.
    async fn put_manifest(
        &self,
        k: usize,
        plan: &Plan,
        img: &ImagePlan,
        digest: &Digest,
        reference: &str,
        check: bool,
    ) -> Result<bool, (String, ExitCode)> {
        let Some((media_type, bytes)) = plan.manifest(img, digest) else {
            return Err((
                format!("{}: manifest {digest} is not in the package", img.source),
                ExitCode::BadPackage,
            ));
        };
        if check {
            match self.clients[k]
                .manifest_exists(&img.repository, reference)
                .await
            {
                Ok(Some(existing)) if &existing == digest => return Ok(false),
                Ok(_) => {}
                Err(e) => return Err((e.to_string(), e.exit_code())),
            }
        }
        let pushed = self.clients[k]
            .put_manifest(&img.repository, reference, media_type, bytes.clone())
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
