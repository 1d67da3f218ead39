//! `violet push`: relocate every image of a package (or a directory of packages) into a registry.

use std::path::PathBuf;

use serde::Serialize;

use crate::cli::{OutputArgs, go_bool};
use crate::error::{ExitCode, Fail};
use crate::output::{Printer, Progress, human_bytes};
use crate::package::{self, Package, PackageType};
use crate::plan::{Destination, Plan};
use crate::platform::apply::{ApplyOptions, WriteReport, crs_out, publish};
use crate::platform::args::{PlatformArgs, TlsOptions};
use crate::platform::crs::{CatalogInputs, CatalogPlan, PushedArtifact};
use crate::platform::kube::Platform;
use crate::registry::{Client, Credentials, RegistryConfig, credentials};
use crate::scheduler::{ImageResult, Report, Scheduler};

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
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, default_value = "false", hide_default_value = true)]
    pub skip_crs: bool,

    /// Do not push images; only create catalog resources.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, default_value = "false", hide_default_value = true)]
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
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, default_value = "false", hide_default_value = true)]
    pub force: bool,

    /// Write the catalog resources as YAML files under DIR (<cluster>/<kind>-<name>.yaml) instead of applying them.
    #[arg(long, value_name = "DIR")]
    pub crs_out: Option<PathBuf>,

    #[command(flatten)]
    pub platform: PlatformArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Destination registry flags, as violet documents them.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// Destination registry: host[:port][/prefix]. Each image keeps its repository path under it.
    #[arg(
        long = "dest-repo",
        visible_alias = "dst-repo",
        value_name = "HOST[:PORT][/PREFIX]",
        env = "VIOLET_DEST_REPO"
    )]
    pub dest_repo: Option<String>,

    /// Registry user.
    #[arg(long, env = "VIOLET_USERNAME")]
    pub username: Option<String>,

    /// Registry password (prefer --password-stdin or VIOLET_PASSWORD: argv is visible in `ps`).
    #[arg(long, env = "VIOLET_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// Read the registry password from standard input.
    #[arg(long, conflicts_with = "password")]
    pub password_stdin: bool,

    /// The registry needs no authentication.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, default_value = "false", hide_default_value = true)]
    pub no_auth: bool,

    /// The registry speaks plain HTTP.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, default_value = "false", hide_default_value = true)]
    pub plain: bool,

    /// Do not verify TLS certificates (self-signed registries).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, default_value = "false", hide_default_value = true)]
    pub insecure: bool,

    /// Trust this CA certificate (PEM) in addition to the system roots. Repeatable.
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_files: Vec<PathBuf>,

    /// Retries for a failed request (connection reset, 5xx, 429), with exponential backoff.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,

    /// Upload blobs in chunks of this size (e.g. 4MiB) instead of one streamed request.
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub chunk_size: Option<u64>,
}

impl RegistryArgs {
    /// Builds the registry configuration, applying violet's rule that a destination needs
    /// credentials from some source or an explicit --no-auth.
    pub fn config(
        &self,
        dest: &Destination,
        scheme_plain: bool,
        discovered: Option<Credentials>,
    ) -> anyhow::Result<RegistryConfig> {
        let password = if self.password_stdin {
            Some(credentials::read_password(std::io::stdin().lock())?)
        } else {
            self.password.clone()
        };
        let explicit = self.no_auth || self.username.is_some() || password.is_some();
        let credentials = match discovered {
            // The platform's own registry: its registry-admin secret, unless the user said otherwise.
            Some(found) if !explicit => found,
            _ => {
                let resolved = credentials::resolve(
                    &dest.host,
                    self.username.as_deref(),
                    password.as_deref(),
                    self.no_auth,
                )?;
                resolved.require_for_push(&dest.host)?;
                resolved.credentials
            }
        };
        Ok(RegistryConfig {
            host: dest.host.clone(),
            plain: self.plain || scheme_plain,
            insecure: self.insecure,
            ca_files: self.ca_files.clone(),
            credentials,
            retries: self.retries,
            chunk_size: self.chunk_size,
        })
    }
}

/// Parses `4MiB`, `16M`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (e.g. 4MiB)"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("invalid size unit in {s:?} (use KiB, MiB or GiB)")),
    };
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))?;
    if v == 0 {
        return Err("size must be greater than 0".into());
    }
    Ok(v)
}

#[derive(Serialize)]
struct PushOutput<'a> {
    destination: &'a Destination,
    packages: &'a [PackageSummary],
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    images: Option<&'a Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<DryRunImages<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    catalog: Vec<CatalogOutcome>,
}

#[derive(Serialize)]
struct DryRunImages<'a> {
    images: &'a [crate::plan::ImagePlan],
    blobs: usize,
    bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    blobs_to_upload: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_to_upload: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registry_error: Option<String>,
}

#[derive(Serialize)]
struct PackageSummary {
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    images: usize,
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
    if args.registry.dest_repo.is_none() && !args.platform.is_configured() {
        return Err(Fail::usage("no destination registry: pass --dest-repo, or --platform-address to use the platform's registry")
            .with_hint("e.g. --dest-repo 192.168.1.10:11443")
            .into());
    }
    let (packages, summaries, bad) = load_packages(&args.path, &printer)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(args, printer, packages, summaries, bad))
}

/// Reads every package first: a bad one is reported and skipped, the others still go.
fn load_packages(
    path: &std::path::Path,
    printer: &Printer,
) -> anyhow::Result<(Vec<Package>, Vec<PackageSummary>, usize)> {
    let found = package::load::discover(path)?;
    let mut packages: Vec<Package> = Vec::new();
    let mut summaries = Vec::new();
    let mut bad = 0usize;
    for r in found {
        match r {
            Ok(p) => {
                for w in &p.warnings {
                    printer.warn(format!("{}: {w}", p.label()));
                }
                summaries.push(PackageSummary {
                    path: p.label(),
                    name: p.metadata.name.clone(),
                    version: p.metadata.version.clone(),
                    images: p.flatten().iter().map(|q| q.images.len()).sum(),
                    error: None,
                });
                packages.push(p);
            }
            Err(e) => {
                bad += 1;
                printer.info(format!("error: {e}"));
                summaries.push(PackageSummary {
                    path: e.path().display().to_string(),
                    name: None,
                    version: None,
                    images: 0,
                    error: Some(e.to_string()),
                });
            }
        }
    }
    if packages.is_empty() && bad == 0 {
        return Err(Fail::new(
            ExitCode::Input,
            format!("{}: no packages found", path.display()),
        )
        .with_hint("give a package file (.tgz, .tar, .tar.zst) or a directory that contains some")
        .into());
    }
    Ok((packages, summaries, bad))
}

async fn run_async(
    args: Args,
    printer: Printer,
    packages: Vec<Package>,
    summaries: Vec<PackageSummary>,
    bad: usize,
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
        (!args.skip_crs && args.crs_out.is_none()) || args.registry.dest_repo.is_none();
    let platform = if needs_platform && args.platform.is_configured() {
        Some(Platform::connect(&args.platform, &tls).await?)
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

    // Destination: --dest-repo, else the platform's own registry.
    let (dest, scheme_plain, discovered) = match (&args.registry.dest_repo, &platform) {
        (Some(d), _) => {
            let (dest, plain) = Destination::parse(d)?;
            (dest, plain, None)
        }
        (None, Some(p)) => {
            let (host, creds) = p.discover_registry().await?;
            printer.info(format!("Using the platform registry {host}"));
            let (dest, plain) = Destination::parse(&host)?;
            (dest, plain, Some(creds))
        }
        (None, None) => unreachable!("checked in run()"),
    };
    let config = args.registry.config(&dest, scheme_plain, discovered)?;
    let client = Client::new(config)?;
    let plan = Plan::new(&packages, dest.clone());
    let scheduler = Scheduler::new(client.clone(), usize::from(args.jobs), Progress::hidden());

    // Images: push them, or (--skip-push) confirm they are there.
    let mut image_report: Option<Report> = None;
    let mut dry_images: Option<DryRunImages> = None;
    let (blobs, bytes) = plan.totals();
    if args.dry_run {
        let (resolution, registry_error) = match client.ping().await {
            Ok(()) if !args.skip_push => (Some(scheduler.resolve(&plan).await), None),
            Ok(()) => (None, None),
            Err(e) => (None, Some(e.to_string())),
        };
        dry_images = Some(DryRunImages {
            images: &plan.images,
            blobs,
            bytes,
            blobs_to_upload: resolution.as_ref().map(|r| r.to_upload().count()),
            bytes_to_upload: resolution.as_ref().map(|r| r.bytes_to_upload(&plan)),
            registry_error,
        });
    } else if args.skip_push {
        client.ping().await?;
        image_report = Some(scheduler.check(&plan).await);
    } else {
        client.ping().await?;
        printer.info(format!(
            "Pushing {} images ({} blobs, {}) from {} to {}",
            plan.images.len(),
            blobs,
            human_bytes(bytes),
            args.path.display(),
            dest.host
        ));
        let progress = Progress::new(&printer, "push");
        let scheduler = Scheduler::new(client.clone(), usize::from(args.jobs), progress.clone());
        let report = tokio::select! {
            r = scheduler.push(&plan) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        };
        progress.finish();
        let Some(report) = report else {
            printer.info("interrupted: no tag was written over an incomplete image; run the same command again to finish");
            return Ok(ExitCode::Interrupted);
        };
        image_report = Some(report);
    }

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
                .filter(|i| {
                    i.result == ImageResult::Failed
                        && pkg
                            .images
                            .iter()
                            .any(|m| m.digest == i.digest && m.reference.to_string() == i.source)
                })
                .collect();
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
                    let (code, hint) = crate::error::classify(&e);
                    outcome.code = Some(code);
                    outcome.hint = hint;
                    outcome.error = Some(crate::error::one_line(&e));
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

    let view = PushOutput {
        destination: &dest,
        packages: &summaries,
        images: image_report.as_ref(),
        plan: dry_images,
        catalog,
    };
    out.data(&view, || render(&view, args.skip_push))?;

    let mut codes: Vec<ExitCode> = Vec::new();
    if let Some(r) = &image_report {
        codes.push(r.exit_code());
    }
    codes.extend(view.catalog.iter().filter_map(|c| c.code));
    if bad > 0 {
        codes.push(ExitCode::Failure);
    }
    codes.retain(|c| *c != ExitCode::Success);
    codes.dedup();
    Ok(match codes.as_slice() {
        [] => ExitCode::Success,
        [one] => *one,
        _ => ExitCode::Failure,
    })
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

fn render(view: &PushOutput, skip_push: bool) -> String {
    let mut s = String::new();
    if let Some(plan) = &view.plan {
        for img in plan.images {
            s.push_str(&format!(
                "{} -> {}  {}  {}\n",
                img.source,
                img.destination,
                img.digest,
                human_bytes(img.size)
            ));
        }
        s.push_str(&format!(
            "{} images, {} unique blobs, {}\n",
            plan.images.len(),
            plan.blobs,
            human_bytes(plan.bytes)
        ));
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
    if let Some(report) = view.images {
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
            s.push_str(&format!(
                "{} images ({} failed); blobs: {} uploaded, {} mounted, {} skipped, {} failed; {} in {:.1}s ({}/s)\n",
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
        }
    }
    for c in &view.catalog {
        for w in &c.writes {
            s.push_str(&w.line());
            s.push('\n');
            if let Some(d) = &w.diff {
                for line in d.lines() {
                    s.push_str(&format!("    {line}\n"));
                }
            }
        }
        for f in &c.files {
            s.push_str(&format!("wrote {}\n", f.display()));
        }
        if let Some(e) = &c.error {
            s.push_str(&format!("{}: {e}\n", c.package));
            if let Some(h) = &c.hint {
                s.push_str(&format!("  hint: {h}\n"));
            }
        }
    }
    if view.plan.is_some() {
        s.push_str("dry run: nothing was written\n");
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(super::parse_size("16m"), Ok(16 << 20));
        assert_eq!(super::parse_size("1024"), Ok(1024));
        assert!(super::parse_size("0").is_err());
        assert!(super::parse_size("4XB").is_err());
    }
}
