//! `push` orchestration: packages read, destinations and clients made, the plan, then images
//! (pushed, checked with `--skip-push`, or resolved for `--dry-run`) → parity → catalog → report
//! and the run's exit code.

use super::Args;
use super::catalog::{self, clusters_to_check};
use super::render::{DestinationOutput, DryRunImages, PushOutput, package_rows, render};
use crate::error::{ExitCode, Fail};
use crate::output::{Printer, Progress, human_bytes};
use crate::package::{self, Package};
use crate::plan::{Destination, Plan};
use crate::platform::TlsOptions;
use crate::platform::kube::Platform;
use crate::registry::{Client, Credentials};
use crate::scheduler::{Parity, Report, Scheduler};
use crate::transfer::exit;

/// A file that could not be read as a package: its path, why, and the exit code that says so.
pub(super) type BadPackage = (String, String, ExitCode);

/// Reads every package first: a bad one is reported and skipped, the others still go.
pub(super) fn load_packages(
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
pub(super) async fn destinations(
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

pub(super) async fn run_async(
    args: Args,
    printer: Printer,
    packages: Vec<Package>,
    bad: Vec<BadPackage>,
) -> anyhow::Result<ExitCode> {
    let out = printer.with_format(args.output.format);
    let tls = TlsOptions {
        ca_files: args.registry.access.transport.ca_files.clone(),
        insecure: args.registry.access.transport.insecure,
    };
    if args.registry.access.transport.insecure {
        printer.warn("--insecure: TLS certificates are not verified");
    }
    let needs_platform =
        (!args.skip_crs && args.crs_out.is_none()) || args.registry.dest_repo.is_empty();
    let platform = if needs_platform && args.platform.is_configured() {
        let mut p = args.platform.connect(&tls).await?;
        p.set_waiting(crate::platform::kube::Waiting {
            retries: args.registry.access.transport.retries,
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
    let password = args.registry.access.password()?;
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
    let plan = Plan::new(&packages, &dests);
    if let Some((a, b)) = crate::plan::conflicting_tags(plan.images()) {
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
    let scheduler = Scheduler::new(clients.clone(), usize::from(args.jobs), Progress::hidden());

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
                    let r = scheduler
                        .resolve_at(k, &plan, &Default::default(), true)
                        .await;
                    if let Some((n, b)) = &mut to_upload {
                        *n += r.to_upload().count();
                        *b += r.bytes_to_upload(&plan);
                    }
                }
                Ok(()) => to_upload = None,
                Err(e) => {
                    to_upload = None;
                    registry_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        if !args.skip_push && registry_error.is_none() {
            crate::transfer::preflight::check(&plan, &clients, false, &[]).await?;
        }
        dry_images = Some(DryRunImages {
            images: plan.targets.iter().flat_map(|t| &t.images).collect(),
            blobs,
            bytes,
            blobs_to_upload: to_upload.map(|(n, _)| n),
            bytes_to_upload: to_upload.map(|(_, b)| b),
            registry_error,
        });
    } else if args.skip_push {
        for (k, client) in clients.iter().enumerate() {
            client.ping().await?;
            reports.push(scheduler.check_at(k, &plan).await);
        }
    } else {
        for client in &clients {
            client.ping().await?;
        }
        // Images already there (tag at their digest) need no blob check, in the preflight either.
        let tagged = scheduler.tagged(&plan).await;
        let complete = if args.verify_existing {
            &[][..]
        } else {
            &tagged
        };
        // Differential packages: their base must be at every destination before any upload.
        for (k, c) in crate::transfer::preflight::check(&plan, &clients, true, complete)
            .await?
            .iter()
            .enumerate()
            .filter(|(_, c)| c.pairs > 0)
        {
            printer.info(format!(
                "{}: the {} blob(s) differential packages expect are there ({} mounted)",
                dests[k].label(),
                c.pairs,
                c.mounted
            ));
        }
        printer.info(format!(
            "Pushing {} images ({} blobs, {}) from {} to {}",
            plan.images().len(),
            blobs,
            human_bytes(bytes),
            args.path.display(),
            hosts.join(", ")
        ));
        let progress = Progress::new(&printer, "push");
        let scheduler = Scheduler::new(clients.clone(), usize::from(args.jobs), progress.clone())
            .verify_existing(args.verify_existing);
        let done = tokio::select! {
            r = scheduler.push_tagged(&plan, tagged) => Some(r),
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
        Some(scheduler.parity(&plan).await)
    } else {
        None
    };
    // Catalog resources name the first destination: they need its images.
    let image_report = reports.first();

    // Catalog resources, only for packages whose every image is confirmed present.
    let catalog = if args.skip_crs {
        Vec::new()
    } else {
        catalog::write(
            &args,
            &packages,
            image_report,
            &dest,
            &clients[0],
            platform.as_ref(),
            &printer,
        )
        .await
    };

    let pushed = !args.dry_run && !args.skip_push;
    let rows = package_rows(&plan, &reports, &catalog, parity.as_deref(), &bad, pushed);
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
    // Under --quiet the table is not printed, but a failed image is an error: each still gets
    // its line, so a quiet run that exits non-zero says why.
    if out.quiet && matches!(out.format, crate::output::Format::Text) {
        for image in reports.iter().flat_map(|r| &r.images) {
            if matches!(image.result, crate::scheduler::ImageResult::Failed) {
                eprintln!(
                    "error: {}: {}",
                    crate::output::escape(&image.destination),
                    crate::output::escape(image.error.as_deref().unwrap_or("not pushed"))
                );
            }
        }
    }

    let mut codes: Vec<ExitCode> = reports.iter().map(Report::exit_code).collect();
    codes.extend(view.catalog.iter().filter_map(|c| c.code));
    // A malformed package exits 4 as `show` and `verify` say it; mixed failures exit 1.
    codes.extend(bad.iter().map(|(_, _, code)| *code));
    if view.parity.iter().flatten().any(|r| r.status != Parity::Ok) {
        codes.push(exit::PARITY);
    }
    Ok(exit::fold(codes))
}
