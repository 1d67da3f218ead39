//! `violet push`: relocate every image of a package (or a directory of packages) into a registry.

use std::path::PathBuf;

use serde::Serialize;

use crate::args::OutputArgs;
use crate::args::platform::PlatformArgs;
use crate::args::registry::RegistryArgs;
use crate::error::{ExitCode, Fail};
use crate::output::{Printer, Progress, human_bytes};
use crate::package::{self, Package, PackageType};
use crate::plan::{Destination, Plan};
use crate::platform::TlsOptions;
use crate::platform::apply::{ApplyOptions, WriteAction, WriteReport, crs_out, publish};
use crate::platform::crs::{CatalogInputs, CatalogPlan, PushedArtifact};
use crate::platform::kube::Platform;
use crate::registry::{Client, Credentials};
use crate::scheduler::{ImageResult, Parity, ParityRow, Report, Scheduler};

const EXAMPLES: &str = "Examples:
  # An operator, to two clusters (images go to the platform's own registry)
  violet push opensearch-operator.stable.ALL.v3.14.2.tgz \\
    --platform-address https://acp.example.com \\
    --platform-username admin --platform-password-stdin \\
    --clusters region1,region2 < platform-password.txt

  # A DR standby: its own platform address and its registry VIP
  violet push opensearch-operator.stable.ALL.v3.14.2.tgz \\
    --platform-address https://standby.example.com --platform-token \"$TOKEN\" \\
    --dest-repo 192.168.1.20:11443 --username admin --password-stdin < registry-pw.txt

  # A primary and a DR standby in one read, each with its own user (passwords from the environment:
  # VIOLET_PASSWORD_<HOST>, upper-cased, other characters as _); a parity report ends the run
  export VIOLET_PASSWORD_10_0_0_5_11443=... VIOLET_PASSWORD_10_1_0_5_11443=...
  violet push ./packages --skip-crs --dest-repo 10.0.0.5:11443 --dest-repo 10.1.0.5:11443 \\
    --dest-creds 10.0.0.5:11443=admin --dest-creds 10.1.0.5:11443=dr-admin

  # Before an upgrade: images only; after it: catalog resources only
  violet push ./packages --skip-crs \\
    --platform-address https://acp.example.com --platform-token \"$TOKEN\"
  violet push ./packages --skip-push \\
    --platform-address https://acp.example.com --platform-token \"$TOKEN\"

  # Images to a plain-HTTP registry without authentication, catalog resources as files (GitOps)
  violet push ./packages --dest-repo 127.0.0.1:5000 --plain --no-auth --crs-out ./crs

  # What would be uploaded and which resources would change, writing nothing
  violet push ./packages --dest-repo 192.168.1.10:11443 --no-auth --skip-crs --dry-run";

/// Push the images of a package or of every package in a directory.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// A package file (.tgz, .tar.gz, .tar, .tar.zst), an extracted package, or a directory of packages.
    pub path: PathBuf,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Uploads in flight at once, across all images.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,

    /// Push images only; do not create catalog resources on the platform.
    #[arg(long)]
    pub skip_crs: bool,

    /// Do not push images; only create catalog resources.
    #[arg(long)]
    pub skip_push: bool,

    /// List the images, their destinations, the bytes that would be uploaded and the resources that
    /// would change (with a diff); write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Clusters that receive an operator's Artifact/ArtifactVersion (comma separated). Ignored for plugins.
    #[arg(long, value_delimiter = ',', default_value = "global")]
    pub clusters: Vec<String>,

    /// CatalogSource for operators: platform, system or a custom name (default: the package's, else platform).
    #[arg(long, value_name = "NAME")]
    pub target_catalog_source: Option<String>,

    /// Chart repository for Helm charts (default: public-charts).
    #[arg(long, value_name = "NAME")]
    pub target_chartrepo: Option<String>,

    /// Re-apply every catalog resource even when nothing changed.
    #[arg(long)]
    pub force: bool,

    /// Write the catalog resources as YAML files under DIR (<cluster>/<kind>-<name>.yaml) instead of applying them.
    #[arg(long, value_name = "DIR")]
    pub crs_out: Option<PathBuf>,

    #[command(flatten)]
    pub platform: PlatformArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Serialize)]
struct PushOutput<'a> {
    /// The first destination (the one catalog resources name).
    destination: &'a Destination,
    /// Every destination with its own report, when there are several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    destinations: Vec<DestinationOutput<'a>>,
    packages: Vec<PackageRow>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    images: Option<&'a Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<DryRunImages<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    catalog: Vec<CatalogOutcome>,
    /// Several destinations: whether every tag resolves to the same digest everywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    parity: Option<Vec<ParityRow>>,
}

#[derive(Serialize)]
struct DestinationOutput<'a> {
    destination: &'a Destination,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    report: Option<&'a Report>,
}

#[derive(Serialize)]
struct DryRunImages<'a> {
    images: Vec<&'a crate::plan::ImagePlan>,
    blobs: usize,
    bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    blobs_to_upload: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_to_upload: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registry_error: Option<String>,
}

/// One row of the per-package table: every package found (nested ones included) and every file
/// that could not be read as one.
#[derive(Serialize)]
struct PackageRow {
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    package_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    images: usize,
    /// Bytes read from this package and uploaded, summed over destinations.
    bytes_uploaded: u64,
    /// Bytes of this package's blobs that did not need its upload: already in the registry,
    /// mounted, or uploaded from another package of the run (summed over destinations).
    bytes_skipped: u64,
    /// Catalog resources created or updated (or written as files with --crs-out).
    crs_written: usize,
    /// `ok` or `failed`.
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// What happened to one package's catalog resources.
#[derive(Serialize)]
struct CatalogOutcome {
    package: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    writes: Vec<WriteReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
    #[serde(skip)]
    code: Option<ExitCode>,
}

pub fn run(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    if args.skip_crs && args.skip_push {
        return Err(Fail::usage("--skip-crs and --skip-push cannot be used together").into());
    }
    if args.registry.password_stdin && args.platform.platform_password_stdin {
        return Err(Fail::usage("--password-stdin and --platform-password-stdin cannot both read stdin")
            .with_hint("pass one of the passwords through its environment variable (VIOLET_PASSWORD, VIOLET_PLATFORM_PASSWORD)")
            .into());
    }
    let wants_platform = !args.skip_crs && args.crs_out.is_none();
    if wants_platform && !args.platform.is_configured() {
        return Err(Fail::usage("creating the catalog resources needs the platform: pass --platform-address with --platform-token or --platform-username/--platform-password")
            .with_hint("to push images only, add --skip-crs; to write the resources as files, add --crs-out DIR")
            .into());
    }
    if args.registry.dest_repo.is_empty() && !args.platform.is_configured() {
        return Err(Fail::usage("no destination registry: pass --dest-repo, or --platform-address to use the platform's registry")
            .with_hint("e.g. --dest-repo 192.168.1.10:11443")
            .into());
    }
    let (packages, bad) = load_packages(&args.path, &printer)?;
    super::block_on(run_async(args, printer, packages, bad))?
}

/// A file that could not be read as a package: its path, why, and the exit code that says so.
type BadPackage = (String, String, ExitCode);

/// Reads every package first: a bad one is reported and skipped, the others still go.
fn load_packages(
    path: &std::path::Path,
    printer: &Printer,
) -> anyhow::Result<(Vec<Package>, Vec<BadPackage>)> {
    let mut found = package::load::discover(path)?;
    // One package given and it is malformed: that is the answer (exit 4), before any network.
    if matches!(found.as_slice(), [Err(_)])
        && package::load::is_package(path)
        && let Some(Err(e)) = found.pop()
    {
        return Err(e.into());
    }
    let mut packages: Vec<Package> = Vec::new();
    let mut bad = Vec::new();
    for r in found {
        match r {
            Ok(p) => {
                for w in &p.warnings {
                    printer.warn(format!("{}: {w}", p.label()));
                }
                packages.push(p);
            }
            Err(e) => {
                let line = crate::output::escape(&e.to_string()).into_owned();
                printer.info(format!("error: {line}"));
                let code = crate::error::UserError::exit_code(&e);
                bad.push((e.path().display().to_string(), line, code));
            }
        }
    }
    if packages.is_empty() && bad.is_empty() {
        return Err(Fail::new(
            ExitCode::Input,
            format!("{}: no packages found", path.display()),
        )
        .with_hint("give a package file (.tgz, .tar, .tar.zst) or a directory that contains some")
        .into());
    }
    Ok((packages, bad))
}

/// The destinations in `--dest-repo` order (or the platform's registry), each with whether its
/// URL asked for plain HTTP and the credentials discovery found.
async fn destinations(
    args: &Args,
    platform: Option<&Platform>,
    printer: &Printer,
) -> anyhow::Result<Vec<(Destination, bool, Option<Credentials>)>> {
    let mut out: Vec<(Destination, bool, Option<Credentials>)> = Vec::new();
    for d in &args.registry.dest_repo {
        let (dest, plain) = Destination::parse(d)?;
        if out.iter().any(|(o, _, _)| o == &dest) {
            return Err(Fail::usage(format!("--dest-repo {d} is given twice")).into());
        }
        out.push((dest, plain, None));
    }
    if out.is_empty() {
        let Some(p) = platform else {
            unreachable!("checked in run()")
        };
        let (host, creds) = p.discover_registry().await?;
        printer.info(format!("Using the platform registry {host}"));
        let (dest, plain) = Destination::parse(&host)?;
        out.push((dest, plain, Some(creds)));
    }
    Ok(out)
}

async fn run_async(
    args: Args,
    printer: Printer,
    packages: Vec<Package>,
    bad: Vec<BadPackage>,
) -> anyhow::Result<ExitCode> {
    let out = printer.with_format(args.output.format);
    let tls = TlsOptions {
        ca_files: args.registry.ca_files.clone(),
        insecure: args.registry.insecure,
    };
    if args.registry.insecure {
        printer.warn("--insecure: TLS certificates are not verified");
    }
    let needs_platform =
        (!args.skip_crs && args.crs_out.is_none()) || args.registry.dest_repo.is_empty();
    let platform = if needs_platform && args.platform.is_configured() {
        let mut p = args.platform.connect(&tls).await?;
        p.set_waiting(crate::platform::kube::Waiting {
            retries: args.registry.retries,
            ..Default::default()
        });
        Some(p)
    } else {
        None
    };
    // Check every cluster that will receive resources now: an unknown cluster, a rejected token,
    // an unreachable platform or a TLS problem then stops the run before any image is uploaded.
    if let Some(p) = &platform
        && !args.skip_crs
        && args.crs_out.is_none()
    {
        for cluster in clusters_to_check(&packages, &args.clusters) {
            p.cluster(&cluster).await?;
        }
    }

    // Destinations: every --dest-repo, else the platform's own registry.
    let targets = destinations(&args, platform.as_ref(), &printer).await?;
    let hosts: Vec<String> = targets.iter().map(|(d, _, _)| d.host.clone()).collect();
    let dest_users = args.registry.dest_users(&hosts)?;
    let password = args.registry.password()?;
    let mut clients = Vec::new();
    for (dest, plain, discovered) in &targets {
        let user = dest_users
            .iter()
            .find(|(h, _)| h == &dest.host)
            .map(|(_, u)| u.as_str());
        let config =
            args.registry
                .config(dest, *plain, discovered.clone(), password.as_deref(), user)?;
        clients.push(Client::new(config)?);
    }
    let dests: Vec<Destination> = targets.into_iter().map(|(d, _, _)| d).collect();
    let dest = dests[0].clone();
    let plans = Plan::for_destinations(&packages, &dests);
    let plan = &plans[0];
    if let Some((a, b)) = crate::plan::conflicting_tags(&plan.images) {
        let label = |i: &crate::plan::ImagePlan| plan.packages[i.package].label();
        return Err(Fail::new(
            ExitCode::BadPackage,
            format!(
                "{}: two images for one destination {}: {} from {} and {} from {}",
                args.path.display(),
                a.destination,
                a.digest,
                label(a),
                b.digest,
                label(b)
            ),
        )
        .with_hint("push the packages separately, or remove the stale one from the directory")
        .into());
    }
    let multi = dests.len() > 1;
    let scheduler = Scheduler::multi(clients.clone(), usize::from(args.jobs), Progress::hidden());

    // Images: push them, or (--skip-push) confirm they are there.
    let mut reports: Vec<Report> = Vec::new();
    let mut dry_images: Option<DryRunImages> = None;
    let (blobs, bytes) = plan.totals();
    if args.dry_run {
        let mut to_upload: Option<(usize, u64)> = Some((0, 0));
        let mut registry_error = None;
        for (k, client) in clients.iter().enumerate() {
            match client.ping().await {
                Ok(()) if !args.skip_push => {
                    let r = scheduler.resolve_at(k, &plans[k]).await;
                    if let Some((n, b)) = &mut to_upload {
                        *n += r.to_upload().count();
                        *b += r.bytes_to_upload(&plans[k]);
                    }
                }
                Ok(()) => to_upload = None,
                Err(e) => {
                    to_upload = None;
                    registry_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        dry_images = Some(DryRunImages {
            images: plans.iter().flat_map(|p| &p.images).collect(),
            blobs,
            bytes,
            blobs_to_upload: to_upload.map(|(n, _)| n),
            bytes_to_upload: to_upload.map(|(_, b)| b),
            registry_error,
        });
    } else if args.skip_push {
        for (k, client) in clients.iter().enumerate() {
            client.ping().await?;
            reports.push(scheduler.check_at(k, &plans[k]).await);
        }
    } else {
        for client in &clients {
            client.ping().await?;
        }
        printer.info(format!(
            "Pushing {} images ({} blobs, {}) from {} to {}",
            plan.images.len(),
            blobs,
            human_bytes(bytes),
            args.path.display(),
            hosts.join(", ")
        ));
        let progress = Progress::new(&printer, "push");
        let scheduler = Scheduler::multi(clients.clone(), usize::from(args.jobs), progress.clone());
        let done = tokio::select! {
            r = scheduler.push_all(&plans) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        };
        progress.finish();
        let Some(done) = done else {
            printer.info("interrupted: no tag was written over an incomplete image; run the same command again to finish");
            return Ok(ExitCode::Interrupted);
        };
        reports = done;
    }
    // Several destinations: every tag must resolve to the same digest in each.
    let parity = if multi && !args.dry_run {
        Some(scheduler.parity(&plans).await)
    } else {
        None
    };
    // Catalog resources name the first destination: they need its images.
    let image_report = reports.first();

    // Catalog resources, only for packages whose every image is confirmed present.
    let mut catalog = Vec::new();
    if !args.skip_crs {
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
                let absent = absent_named_images(pkg, &dest, &clients[0]).await;
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
                    outcome.hint = Some(
                        "push the images first (run the same command without --skip-push)".into(),
                    );
                }
                outcome.code = Some(if args.skip_push {
                    ExitCode::Remote
                } else {
                    missing[0].exit_code.unwrap_or(ExitCode::Failure)
                });
                catalog.push(outcome);
                continue;
            }
            match catalog_plan(pkg, &dest, &args) {
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
                    } else if let Some(platform) = &platform {
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
    }

    let pushed = !args.dry_run && !args.skip_push;
    let rows = package_rows(&plans, &reports, &catalog, parity.as_deref(), &bad, pushed);
    let view = PushOutput {
        destination: &dest,
        destinations: if multi {
            dests
                .iter()
                .enumerate()
                .map(|(k, d)| DestinationOutput {
                    destination: d,
                    report: reports.get(k),
                })
                .collect()
        } else {
            Vec::new()
        },
        packages: rows,
        images: image_report,
        plan: dry_images,
        catalog,
        parity,
    };
    let root = if args.path.is_dir() {
        Some(args.path.as_path())
    } else {
        None
    };
    out.data(&view, || render(&view, &reports, args.skip_push, root))?;

    let mut codes: Vec<ExitCode> = reports.iter().map(Report::exit_code).collect();
    codes.extend(view.catalog.iter().filter_map(|c| c.code));
    // A malformed package exits 4 as `show` and `verify` say it; mixed failures exit 1.
    codes.extend(bad.iter().map(|(_, _, code)| *code));
    if view.parity.iter().flatten().any(|r| r.status != Parity::Ok) {
        codes.push(ExitCode::Remote);
    }
    codes.retain(|c| *c != ExitCode::Success);
    codes.sort_by_key(|c| *c as u8);
    codes.dedup();
    Ok(match codes.as_slice() {
        [] => ExitCode::Success,
        [one] => *one,
        _ => ExitCode::Failure,
    })
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
fn carries(pkg: &Package, img: &crate::scheduler::ImageReport) -> bool {
    pkg.images
        .iter()
        .any(|m| m.digest == img.digest && m.reference.to_string() == img.source)
}

/// The per-package table: bytes per package come from which package each uploaded blob was read
/// from, so the column sums to what moved; a shared blob counts as skipped for the others.
fn package_rows(
    plans: &[Plan],
    reports: &[Report],
    catalog: &[CatalogOutcome],
    parity: Option<&[ParityRow]>,
    bad: &[BadPackage],
    pushed: bool,
) -> Vec<PackageRow> {
    let mut rows = Vec::new();
    let Some(plan) = plans.first() else {
        return rows;
    };
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
        let multi = plans.len() > 1;
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

/// The clusters the packages' catalog resources go to: `--clusters` for operator bundles, the
/// global cluster for everything else.
fn clusters_to_check(packages: &[Package], clusters: &[String]) -> Vec<String> {
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

fn render(
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
fn render_parity(rows: &[ParityRow]) -> String {
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
fn render_table(rows: &[PackageRow], root: Option<&std::path::Path>, pushed: bool) -> String {
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
