//! `push`'s catalog step: the Artifact/ArtifactVersion or ModulePlugin resources of each package,
//! written only over images confirmed at the destination.

use std::path::PathBuf;

use serde::Serialize;

use super::Args;
use crate::error::{ExitCode, Fail};
use crate::output::Printer;
use crate::package::{Package, PackageType};
use crate::plan::Destination;
use crate::platform::apply::{ApplyOptions, WriteReport, crs_out, publish};
use crate::platform::crs::{CatalogInputs, CatalogPlan, PushedArtifact};
use crate::platform::kube::Platform;
use crate::registry::Client;
use crate::scheduler::{ImageResult, Report};

/// What happened to one package's catalog resources.
#[derive(Serialize)]
pub(super) struct CatalogOutcome {
    pub(super) package: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) writes: Vec<WriteReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) files: Vec<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) hint: Option<String>,
    #[serde(skip)]
    pub(super) code: Option<ExitCode>,
}

/// The catalog resources of every package (core packages have none), written only for a
/// package whose every image is confirmed at the first destination (`image_report`; a
/// lightweight package's named images are checked there): to the platform, or as files with
/// `--crs-out`. Each package gets one outcome; a failure does not stop the others.
pub(super) async fn write(
    args: &Args,
    packages: &[Package],
    image_report: Option<&Report>,
    dest: &Destination,
    client: &Client,
    platform: Option<&Platform>,
    printer: &Printer,
) -> Vec<CatalogOutcome> {
    let mut catalog = Vec::new();
    for pkg in packages.iter().flat_map(|p| p.flatten()) {
        if pkg.metadata.package_type == Some(PackageType::Core) {
            continue;
        }
        let label = pkg.label();
        let mut outcome = CatalogOutcome {
            package: label.clone(),
            writes: Vec::new(),
            files: Vec::new(),
            error: None,
            hint: None,
            code: None,
        };
        // Every image of the package that is not confirmed in the registry, by name: the
        // resources would point the marketplace at images it cannot pull.
        let missing: Vec<&crate::scheduler::ImageReport> = image_report
            .iter()
            .flat_map(|r| &r.images)
            .filter(|i| i.result == ImageResult::Failed && carries(pkg, i))
            .collect();
        // A lightweight package (no image store) carries no image to confirm by pushing:
        // the images its metadata names must already be at the destination.
        if pkg.stores.is_empty() && !args.dry_run {
            let absent = absent_named_images(pkg, dest, client).await;
            if let Some((code, why)) = absent {
                outcome.error = Some(format!("catalog resources not written: {why}"));
                outcome.hint = Some(
                    "push the package that carries these images first, or the images themselves"
                        .into(),
                );
                outcome.code = Some(code);
                catalog.push(outcome);
                continue;
            }
        }
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|i| i.destination.as_str()).collect();
            outcome.error = Some(if args.skip_push {
                format!(
                    "catalog resources not written: {} of {} images not in the registry: {}",
                    missing.len(),
                    pkg.images.len(),
                    names.join(", ")
                )
            } else {
                format!(
                    "catalog resources not written: {} of {} images failed to push: {}",
                    missing.len(),
                    pkg.images.len(),
                    names.join(", ")
                )
            });
            if args.skip_push {
                outcome.hint =
                    Some("push the images first (run the same command without --skip-push)".into());
            }
            outcome.code = Some(if args.skip_push {
                ExitCode::Remote
            } else {
                missing[0].exit_code.unwrap_or(ExitCode::Failure)
            });
            catalog.push(outcome);
            continue;
        }
        match catalog_plan(pkg, dest, args) {
            Err(e) => {
                let (code, hint) = crate::outcome::classify(&e);
                outcome.code = Some(code);
                outcome.hint = hint;
                outcome.error = Some(crate::outcome::one_line(&e));
            }
            Ok(cplan) => {
                for w in &cplan.warnings {
                    printer.warn(format!("{label}: {w}"));
                }
                if let Some(dir) = &args.crs_out {
                    match crs_out(dir, &cplan) {
                        Ok(files) => outcome.files = files,
                        Err(e) => {
                            outcome.code = Some(crate::error::UserError::exit_code(&e));
                            outcome.hint = crate::error::UserError::hint(&e);
                            outcome.error = Some(e.to_string());
                        }
                    }
                } else if let Some(platform) = platform {
                    let opts = ApplyOptions {
                        force: args.force,
                        dry_run: args.dry_run,
                        ..ApplyOptions::default()
                    };
                    match publish(platform, &cplan, &opts).await {
                        Ok(w) => outcome.writes = w,
                        Err(e) => {
                            outcome.code = Some(crate::error::UserError::exit_code(&e));
                            outcome.hint = crate::error::UserError::hint(&e);
                            outcome.error = Some(e.to_string());
                        }
                    }
                }
            }
        }
        catalog.push(outcome);
    }
    catalog
}

/// The first image a lightweight package's metadata names that is not at the destination (or
/// cannot be checked), with the exit code that says why.
async fn absent_named_images(
    pkg: &Package,
    dest: &Destination,
    client: &Client,
) -> Option<(ExitCode, String)> {
    for named in pkg
        .metadata
        .artifact
        .iter()
        .chain(&pkg.metadata.related_images)
    {
        let Some((_, repository, tag)) = crate::platform::crs::split_reference(named) else {
            return Some((
                ExitCode::BadPackage,
                format!("invalid image reference {named:?} in the metadata"),
            ));
        };
        let at = dest.repository(&repository);
        let reference = match (named.split_once('@'), tag) {
            (Some((_, digest)), _) => digest.to_string(),
            (None, Some(t)) => t,
            (None, None) => "latest".to_string(),
        };
        match client.manifest_exists(&at, &reference).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Some((
                    ExitCode::Remote,
                    format!("{}/{at}:{reference} is not in the registry", dest.host),
                ));
            }
            Err(e) => return Some((crate::error::UserError::exit_code(&e), e.to_string())),
        }
    }
    None
}

/// Whether the reported image is one `pkg` carries (same reference and digest).
pub(super) fn carries(pkg: &Package, img: &crate::scheduler::ImageReport) -> bool {
    pkg.images
        .iter()
        .any(|m| m.digest == img.digest && m.reference.to_string() == img.source)
}

/// The clusters the packages' catalog resources go to: `--clusters` for operator bundles, the
/// global cluster for everything else.
pub(super) fn clusters_to_check(packages: &[Package], clusters: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for pkg in packages.iter().flat_map(|p| p.flatten()) {
        let targets = match pkg.metadata.package_type {
            Some(PackageType::Core) => continue,
            Some(PackageType::Bundle) if !clusters.is_empty() => clusters.to_vec(),
            _ => vec![crate::platform::kube::GLOBAL.to_string()],
        };
        for c in targets {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    out
}

/// The catalog resources of one package, naming where its main artifact was pushed.
fn catalog_plan(pkg: &Package, dest: &Destination, args: &Args) -> anyhow::Result<CatalogPlan> {
    let artifact_ref = pkg
        .metadata
        .artifact
        .clone()
        .or_else(|| pkg.images.first().map(|i| i.reference.to_string()))
        .ok_or_else(|| {
            Fail::new(
                ExitCode::BadPackage,
                format!(
                    "{}: the package names no artifact (bundle image or chart)",
                    pkg.label()
                ),
            )
        })?;
    let (_, repository, tag) =
        crate::platform::crs::split_reference(&artifact_ref).ok_or_else(|| {
            Fail::new(
                ExitCode::BadPackage,
                format!(
                    "{}: invalid artifact reference {artifact_ref:?}",
                    pkg.label()
                ),
            )
        })?;
    let tag = tag.ok_or_else(|| {
        Fail::new(
            ExitCode::BadPackage,
            format!("{}: artifact {artifact_ref:?} has no tag", pkg.label()),
        )
    })?;
    let inputs = CatalogInputs {
        artifact: PushedArtifact {
            registry: dest.host.clone(),
            repository: dest.repository(&repository),
            tag,
        },
        catalog_source: args.target_catalog_source.clone(),
        chart_repo: args.target_chartrepo.clone(),
        clusters: args.clusters.clone(),
    };
    Ok(CatalogPlan::build(pkg, &inputs)?)
}
