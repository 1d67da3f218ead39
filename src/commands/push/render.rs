//! `push`'s report: the JSON/YAML view and the text tables (per package, per image, parity).

use serde::Serialize;

use super::catalog::{CatalogOutcome, carries};
use super::run::BadPackage;
use crate::output::human_bytes;
use crate::plan::{Destination, Plan};
use crate::platform::apply::WriteAction;
use crate::scheduler::{ImageResult, Parity, ParityRow, Report};

#[derive(Serialize)]
pub(super) struct PushOutput<'a> {
    /// The first destination (the one catalog resources name).
    pub(super) destination: &'a Destination,
    /// Every destination with its own report, when there are several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) destinations: Vec<DestinationOutput<'a>>,
    pub(super) packages: Vec<PackageRow>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub(super) images: Option<&'a Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) plan: Option<DryRunImages<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) catalog: Vec<CatalogOutcome>,
    /// Several destinations: whether every tag resolves to the same digest everywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) parity: Option<Vec<ParityRow>>,
}

#[derive(Serialize)]
pub(super) struct DestinationOutput<'a> {
    pub(super) destination: &'a Destination,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub(super) report: Option<&'a Report>,
}

#[derive(Serialize)]
pub(super) struct DryRunImages<'a> {
    pub(super) images: Vec<&'a crate::plan::ImagePlan>,
    pub(super) blobs: usize,
    pub(super) bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) blobs_to_upload: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) bytes_to_upload: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) registry_error: Option<String>,
}

/// One row of the per-package table: every package found (nested ones included) and every file
/// that could not be read as one.
#[derive(Serialize)]
pub(super) struct PackageRow {
    pub(super) path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub(super) package_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) version: Option<String>,
    pub(super) images: usize,
    /// Bytes read from this package and uploaded, summed over destinations.
    pub(super) bytes_uploaded: u64,
    /// Bytes of this package's blobs that did not need its upload: already in the registry,
    /// mounted, or uploaded from another package of the run (summed over destinations).
    pub(super) bytes_skipped: u64,
    /// Catalog resources created or updated (or written as files with --crs-out).
    pub(super) crs_written: usize,
    /// `ok` or `failed`.
    pub(super) result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
}

/// The per-package table: bytes per package come from which package each uploaded blob was read
/// from, so the column sums to what moved; a shared blob counts as skipped for the others.
pub(super) fn package_rows(
    plan: &Plan,
    reports: &[Report],
    catalog: &[CatalogOutcome],
    parity: Option<&[ParityRow]>,
    bad: &[BadPackage],
    pushed: bool,
) -> Vec<PackageRow> {
    let mut rows = Vec::new();
    for (pi, pkg) in plan.packages.iter().enumerate() {
        let mut digests: Vec<&crate::digest::Digest> =
            pkg.images.iter().flat_map(|i| &i.blobs).collect();
        digests.sort();
        digests.dedup();
        let (mut uploaded, mut skipped) = (0u64, 0u64);
        if pushed {
            for r in reports {
                for d in &digests {
                    let size = plan.blobs.get(*d).map_or(0, |b| b.size);
                    if r.failed_blobs.contains(*d) {
                        continue;
                    }
                    if r.uploaded_from.get(*d) == Some(&pi) {
                        uploaded += size;
                    } else {
                        skipped += size;
                    }
                }
            }
        }
        let label = pkg.label();
        let outcome = catalog.iter().find(|c| c.package == label);
        let crs_written = outcome.map_or(0, |c| {
            c.files.len()
                + c.writes
                    .iter()
                    .filter(|w| matches!(w.action, WriteAction::Created | WriteAction::Updated))
                    .count()
        });
        let multi = plan.targets.len() > 1;
        let image_error = reports
            .iter()
            .flat_map(|r| &r.images)
            .find(|i| i.result == ImageResult::Failed && carries(pkg, i))
            .map(|i| {
                let why = i.error.as_deref().unwrap_or("failed");
                format!("{}: {why}", i.destination)
            });
        let parity_error = parity.into_iter().flatten().find_map(|r| {
            (r.status != Parity::Ok
                && pkg
                    .images
                    .iter()
                    .any(|m| m.digest == r.expected && m.reference.to_string() == r.image))
            .then(|| format!("parity {}: {}", r.status.as_str(), r.image))
        });
        let error = image_error
            .or_else(|| outcome.and_then(|c| c.error.clone()))
            .or(if multi { parity_error } else { None });
        rows.push(PackageRow {
            path: label,
            name: pkg.metadata.name.clone(),
            package_type: pkg.metadata.package_type.map(|t| t.as_str()),
            version: pkg.metadata.version.clone(),
            images: pkg.images.len(),
            bytes_uploaded: uploaded,
            bytes_skipped: skipped,
            crs_written,
            result: if error.is_some() { "failed" } else { "ok" },
            error,
        });
    }
    for (path, error, _) in bad {
        rows.push(PackageRow {
            path: path.clone(),
            name: None,
            package_type: None,
            version: None,
            images: 0,
            bytes_uploaded: 0,
            bytes_skipped: 0,
            crs_written: 0,
            result: "failed",
            // The row names the file already.
            error: Some(
                error
                    .strip_prefix(&format!("{path}: "))
                    .unwrap_or(error)
                    .to_string(),
            ),
        });
    }
    rows
}

pub(super) fn render(
    view: &PushOutput,
    reports: &[Report],
    skip_push: bool,
    root: Option<&std::path::Path>,
) -> String {
    let mut s = String::new();
    if let Some(plan) = &view.plan {
        for img in &plan.images {
            s.push_str(&format!(
                "{} -> {}  {}  {}\n",
                img.source,
                img.destination,
                img.digest,
                human_bytes(img.size)
            ));
        }
        let sources: std::collections::BTreeSet<&str> =
            plan.images.iter().map(|i| i.source.as_str()).collect();
        let destinations = plan.images.len() / sources.len().max(1);
        if destinations > 1 {
            s.push_str(&format!(
                "{} images x {destinations} destinations, {} unique blobs read once, {}\n",
                sources.len(),
                plan.blobs,
                human_bytes(plan.bytes)
            ));
        } else {
            s.push_str(&format!(
                "{} images, {} unique blobs, {}\n",
                plan.images.len(),
                plan.blobs,
                human_bytes(plan.bytes)
            ));
        }
        match (
            &plan.blobs_to_upload,
            &plan.bytes_to_upload,
            &plan.registry_error,
        ) {
            (Some(n), Some(b), _) => {
                s.push_str(&format!("would upload {n} blobs, {}\n", human_bytes(*b)))
            }
            (_, _, Some(e)) => s.push_str(&format!(
                "registry not checked ({e}); up to {} would be uploaded\n",
                human_bytes(plan.bytes)
            )),
            _ => {}
        }
    }
    let multi = reports.len() > 1;
    for (k, report) in reports.iter().enumerate() {
        for img in &report.images {
            let word = match (img.result, skip_push) {
                (ImageResult::Pushed, _) => "pushed   ",
                (ImageResult::Unchanged, false) => "unchanged",
                (ImageResult::Unchanged, true) => "present  ",
                (ImageResult::Failed, false) => "FAILED   ",
                (ImageResult::Failed, true) => "MISSING  ",
            };
            s.push_str(&format!("{word} {}  {}\n", img.destination, img.digest));
            if let Some(e) = &img.error {
                s.push_str(&format!("          {e}\n"));
            }
        }
        if !skip_push {
            let b = &report.blobs;
            let rate = report.bytes_uploaded as f64 / report.seconds.max(0.001);
            // Several destinations: one summary each, named.
            let host = match view.destinations.get(k) {
                Some(d) if multi => format!("{}: ", d.destination.host),
                _ => String::new(),
            };
            s.push_str(&format!(
                "{host}{} images ({} failed); blobs: {} uploaded, {} mounted, {} skipped, {} failed; {} in {:.1}s ({}/s)\n",
                report.images.len(),
                report.failed(),
                b.uploaded,
                b.mounted,
                b.skipped,
                b.failed,
                human_bytes(report.bytes_uploaded),
                report.seconds,
                human_bytes(rate as u64)
            ));
            if report.bytes_resent > 0 {
                s.push_str(&format!(
                    "{host}{} sent again after retries (not counted above)\n",
                    human_bytes(report.bytes_resent)
                ));
            }
        }
    }
    if let Some(parity) = &view.parity {
        s.push_str(&render_parity(parity));
    }
    for c in &view.catalog {
        for w in &c.writes {
            s.push_str(&crate::output::escape(&w.line()));
            s.push('\n');
            if let Some(d) = &w.diff {
                for line in d.lines() {
                    s.push_str(&format!("    {line}\n"));
                }
            }
        }
        for f in &c.files {
            s.push_str(&format!(
                "wrote {}\n",
                crate::output::escape(&f.display().to_string())
            ));
        }
        if let Some(e) = &c.error {
            s.push_str(&format!(
                "{}\n",
                crate::output::escape(&format!("{}: {e}", c.package))
            ));
            if let Some(h) = &c.hint {
                s.push_str(&format!("  hint: {h}\n"));
            }
        }
    }
    // The table is for runs over several packages (a directory, or a core package with nested
    // ones); a single package's lines above already say everything.
    if view.packages.len() > 1 {
        s.push_str(&render_table(
            &view.packages,
            root,
            view.plan.is_none() && !skip_push,
        ));
    }
    if view.plan.is_some() {
        s.push_str("dry run: nothing was written\n");
    }
    s
}

/// `OK        <image>  <digest>`, and for a mismatch or a missing image, what each destination has.
pub(super) fn render_parity(rows: &[ParityRow]) -> String {
    let count = |p: Parity| rows.iter().filter(|r| r.status == p).count();
    let mut s = format!(
        "parity: {} images, {} OK, {} MISMATCH, {} MISSING\n",
        rows.len(),
        count(Parity::Ok),
        count(Parity::Mismatch),
        count(Parity::Missing)
    );
    for r in rows {
        s.push_str(&format!(
            "{:<9} {}  {}\n",
            r.status.as_str(),
            r.image,
            r.expected
        ));
        if r.status == Parity::Ok {
            continue;
        }
        for c in &r.destinations {
            let what = match (&c.digest, &c.error) {
                (Some(d), _) => d.to_string(),
                (None, Some(e)) => format!("not checked: {e}"),
                (None, None) => "absent".to_string(),
            };
            s.push_str(&format!("          {}  {what}\n", c.destination));
        }
    }
    s
}

/// The per-package table, aligned, the reason of a failure after the result.
pub(super) fn render_table(
    rows: &[PackageRow],
    root: Option<&std::path::Path>,
    pushed: bool,
) -> String {
    let name = |p: &str| -> String {
        root.and_then(|r| std::path::Path::new(p).strip_prefix(r).ok())
            .map(|rel| rel.display().to_string())
            .filter(|rel| !rel.is_empty())
            .unwrap_or_else(|| p.to_string())
    };
    let mut cells: Vec<[String; 8]> = vec![[
        "PACKAGE".into(),
        "TYPE".into(),
        "VERSION".into(),
        "IMAGES".into(),
        "UPLOADED".into(),
        "SKIPPED".into(),
        "CRS".into(),
        "RESULT".into(),
    ]];
    for r in rows {
        let bytes = |b: u64| {
            if pushed {
                human_bytes(b)
            } else {
                "-".to_string()
            }
        };
        cells.push([
            name(&r.path),
            r.package_type.unwrap_or("-").to_string(),
            r.version.clone().unwrap_or_else(|| "-".into()),
            r.images.to_string(),
            bytes(r.bytes_uploaded),
            bytes(r.bytes_skipped),
            r.crs_written.to_string(),
            match &r.error {
                Some(e) => format!("failed: {e}"),
                None => r.result.to_string(),
            },
        ]);
    }
    // Names, versions and errors come from packages: one line per row, whatever they hold.
    for row in cells.iter_mut() {
        for c in row.iter_mut() {
            *c = crate::output::escape(c).into_owned();
        }
    }
    let mut widths = [0usize; 8];
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut s = String::new();
    for row in &cells {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}
