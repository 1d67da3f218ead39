//! Registry → registry (`mirror`): every image is resolved at the source, then the run is the
//! scheduler's, as for `push`, with the source registry as the blobs' [`Origin`]: each blob read
//! once from the source's `GET` (resumed with `Range` where it breaks off) and streamed into the
//! destination's upload, shared blobs mounted, manifests children first, the tag last over a
//! complete graph, then every tag read back (parity). Nothing is staged on disk. What is left
//! here is the mirror's view of the one report.
//!
//! [`Origin`]: crate::transfer::source::Origin

use futures_util::StreamExt;
use serde::Serialize;

use crate::digest::Digest;
use crate::error::{ExitCode, Fail};
use crate::outcome::{classify, one_line};
use crate::output::progress::Progress;
use crate::plan::{Destination, Plan, RemoteCopy};
use crate::pull;
use crate::registry::Client;
use crate::scheduler::{ImageResult, Scheduler};
use crate::transfer::referrers::{Finder, Lookup};

/// One image to copy: where it is read and where it goes.
#[derive(Debug, Clone)]
pub struct Request {
    pub source_repo: String,
    /// Tag or digest resolved at the source.
    pub source_ref: String,
    pub dest_repo: String,
    /// Tag set at the destination, last; `None` copies by digest only.
    pub tag: Option<String>,
    /// The digest the image must have (from `@digest` or the package).
    pub pinned: Option<Digest>,
}

/// The run's blob counts as `mirror` reports them (`present`: already at the destination).
#[derive(Debug, Default, Serialize)]
pub struct BlobCounts {
    pub uploaded: usize,
    pub mounted: usize,
    pub present: usize,
    pub bytes_uploaded: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Copied, and the destination resolves to the source's digest.
    Ok,
    /// The destination resolves to another digest after the copy.
    Mismatch,
    Failed,
}

/// One image as `mirror` reports it: the engine's image report with the source's side and the
/// read-back digest.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReport {
    pub source: String,
    pub destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_digest: Option<Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_digest: Option<Digest>,
    pub manifests: usize,
    pub blobs: usize,
    pub size: u64,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failure's class, for the run's exit code.
    #[serde(skip)]
    pub code: Option<ExitCode>,
}

/// What a mirror run did: one row per request, in request order, and the blob counts.
#[derive(Debug)]
pub struct Copied {
    pub images: Vec<ImageReport>,
    pub blobs: BlobCounts,
}

/// Copies every requested image from `source` to `dest`. `jobs` bounds the blob transfers in
/// flight (`docs/push.md`); `verify_existing` checks the blobs of images already at the
/// destination too; `progress` counts the bytes read from the source for the blobs that
/// cross. A failure is recorded in its image's row (with its class), never returned, so one image
/// does not stop the others.
pub async fn run(
    source: &Client,
    dest: &Client,
    requests: &[Request],
    jobs: usize,
    verify_existing: bool,
    with_referrers: bool,
    progress: Progress,
) -> Copied {
    let mut resolved: Vec<Result<RemoteCopy, ImageReport>> = futures_util::stream::iter(requests)
        .map(|req| resolve(source, dest, req))
        .buffered(pull::RESOLVE_IN_FLIGHT)
        .collect()
        .await;
    if with_referrers {
        let images: Vec<RemoteCopy> = resolved
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .cloned()
            .collect();
        resolved.extend(referrers(source, dest, &images).await);
    }
    let copies: Vec<RemoteCopy> = resolved
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .cloned()
        .collect();
    let destination = Destination {
        host: dest.host().to_string(),
        prefix: None,
    };
    let plan = Plan::from_registry(source, &destination, &copies);
    let scheduler =
        Scheduler::new(vec![dest.clone()], jobs, progress).verify_existing(verify_existing);
    let report = scheduler.push_all(&plan).await.remove(0);
    let parity = scheduler.parity(&plan).await;

    let mut done = copies.iter().zip(report.images).zip(parity);
    let images = resolved
        .into_iter()
        .map(|r| {
            if let Err(failed) = r {
                return failed;
            }
            let ((copy, pushed), parity) = done.next().expect("one report per copy");
            let mut row = ImageReport {
                source: copy.source.clone(),
                destination: pushed.destination,
                source_digest: Some(copy.image.digest.clone()),
                destination_digest: None,
                manifests: copy.image.manifests.len(),
                blobs: copy.image.blobs.len(),
                size: copy.image.size(),
                status: Status::Failed,
                error: pushed.error,
                code: pushed.exit_code,
            };
            if pushed.result == ImageResult::Failed {
                row.code = row.code.or(Some(ExitCode::Failure));
                return row;
            }
            // Parity: what the destination now serves for the tag (or digest), read back.
            let cell = parity.destinations.into_iter().next();
            match cell {
                Some(c) if c.error.is_some() => {
                    row.error = c.error;
                    row.code = Some(c.code.unwrap_or(ExitCode::Remote));
                }
                Some(c) => {
                    row.status = if c.digest.as_ref() == Some(&copy.image.digest) {
                        Status::Ok
                    } else {
                        Status::Mismatch
                    };
                    row.destination_digest = c.digest;
                }
                None => row.status = Status::Mismatch,
            }
            row
        })
        .collect();
    Copied {
        images,
        blobs: BlobCounts {
            uploaded: report.blobs.uploaded,
            mounted: report.blobs.mounted,
            present: report.blobs.skipped,
            bytes_uploaded: report.bytes_uploaded,
        },
    }
}

/// Resolves one request's image graph at the source and checks its pinned digest; a failure is
/// the image's report row.
async fn resolve(source: &Client, dest: &Client, req: &Request) -> Result<RemoteCopy, ImageReport> {
    let source_label = format!("{}/{}:{}", source.host(), req.source_repo, req.source_ref)
        .replacen(":sha256:", "@sha256:", 1);
    let failed = |image: Option<&pull::RemoteImage>, e: anyhow::Error| {
        let (code, hint) = classify(&e);
        let mut msg = one_line(&e);
        if let Some(h) = hint {
            msg.push_str(&format!(" (hint: {h})"));
        }
        ImageReport {
            source: source_label.clone(),
            destination: match &req.tag {
                Some(t) => format!("{}/{}:{t}", dest.host(), req.dest_repo),
                None => format!("{}/{}@{}", dest.host(), req.dest_repo, req.source_ref),
            },
            source_digest: image.map(|i| i.digest.clone()),
            destination_digest: None,
            manifests: image.map_or(0, |i| i.manifests.len()),
            blobs: image.map_or(0, |i| i.blobs.len()),
            size: image.map_or(0, pull::RemoteImage::size),
            status: Status::Failed,
            error: Some(msg),
            code: Some(code),
        }
    };
    let image = pull::resolve(source, &req.source_repo, &req.source_ref)
        .await
        .map_err(|e| failed(None, e.into()))?;
    if let Some(pinned) = &req.pinned
        && *pinned != image.digest
    {
        let e = Fail::new(
            ExitCode::Verify,
            format!(
                "{source_label} resolves to {} at the source, not {pinned}",
                image.digest
            ),
        );
        return Err(failed(Some(&image), e.into()));
    }
    Ok(RemoteCopy {
        source: source_label,
        source_repository: req.source_repo.clone(),
        repository: req.dest_repo.clone(),
        tag: req.tag.clone(),
        referrer: image
            .manifests
            .last()
            .and_then(|top| crate::package::referrer::classify(req.tag.as_deref(), &top.bytes)),
        image,
    })
}

/// The artifacts at the source about the resolved images (`mirror` without `--no-referrers`),
/// as more copies into the same destination repositories; a listing that fails is a failed row.
async fn referrers(
    source: &Client,
    dest: &Client,
    copies: &[RemoteCopy],
) -> Vec<Result<RemoteCopy, ImageReport>> {
    let finder = Finder::default();
    // What the requests name already (a package's own signatures, `--from-package`) is not
    // copied twice.
    let mut seen: std::collections::HashSet<(String, Digest)> = copies
        .iter()
        .map(|c| {
            let at = format!("{}/{}", source.host(), c.source_repository);
            (at, c.image.digest.clone())
        })
        .collect();
    let images: Vec<&RemoteCopy> = copies.iter().filter(|c| c.referrer.is_none()).collect();
    let lookups = images
        .iter()
        .map(|copy| Lookup::image(source, &copy.source_repository, &copy.image))
        .collect();
    let found_each = finder.find_each(lookups, &mut seen).await;
    let mut out = Vec::new();
    for (copy, found) in images.into_iter().zip(found_each) {
        match found {
            Ok(found) => {
                for f in found {
                    let source_label = match &f.tag {
                        Some(t) => format!("{}/{}:{t}", source.host(), copy.source_repository),
                        None => format!(
                            "{}/{}@{}",
                            source.host(),
                            copy.source_repository,
                            f.image.digest
                        ),
                    };
                    out.push(Ok(RemoteCopy {
                        source: source_label,
                        source_repository: copy.source_repository.clone(),
                        repository: copy.repository.clone(),
                        tag: f.tag,
                        image: f.image,
                        referrer: Some(f.referrer),
                    }));
                }
            }
            Err(e) => out.push(Err(ImageReport {
                source: format!("{} (its signatures and referrers)", copy.source),
                destination: format!("{}/{}", dest.host(), copy.repository),
                source_digest: Some(copy.image.digest.clone()),
                destination_digest: None,
                manifests: 0,
                blobs: 0,
                size: 0,
                status: Status::Failed,
                error: Some(e.to_string()),
                code: Some(crate::error::UserError::exit_code(&e)),
            })),
        }
    }
    out
}
