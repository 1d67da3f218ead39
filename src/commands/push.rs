//! `violet push`: relocate every image of a package (or a directory of packages) into a registry.

use std::io::Read;
use std::path::PathBuf;

use serde::Serialize;

use crate::cli::{OutputArgs, go_bool};
use crate::error::{ExitCode, Fail};
use crate::output::{Printer, Progress, human_bytes};
use crate::package::{self, Package};
use crate::plan::{Destination, Plan};
use crate::registry::{Client, Credentials, RegistryConfig, credentials};
use crate::scheduler::{ImageResult, Report, Scheduler};

const EXAMPLES: &str = "Examples:
  # Images only, into a registry that needs a login (the password is read from stdin)
  violet push topolvm-operator.stable.ALL.v2.3.0.tgz --skip-crs \\
    --dest-repo 192.168.1.10:11443 --username admin --password-stdin < registry-password.txt

  # Every package of a directory, to a plain-HTTP registry without authentication
  violet push ./packages --skip-crs --dest-repo 127.0.0.1:5000 --plain --no-auth

  # See what would be uploaded, without writing anything
  violet push ./packages --skip-crs --dest-repo 192.168.1.10:11443 --no-auth --dry-run";

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

    /// List the images, their destinations and the bytes that would be uploaded; write nothing.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Destination registry flags, as violet documents them.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// Destination registry: host[:port][/prefix]. Each image keeps its repository path under it.
    #[arg(long = "dest-repo", visible_alias = "dst-repo", value_name = "HOST[:PORT][/PREFIX]", env = "VIOLET_DEST_REPO")]
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
    pub fn config(&self, dest: &Destination, scheme_plain: bool) -> anyhow::Result<RegistryConfig> {
        let password = if self.password_stdin {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map_err(|e| Fail::new(ExitCode::Input, format!("reading the password from stdin: {e}")))?;
            let s = s.strip_suffix('\n').unwrap_or(&s);
            Some(s.strip_suffix('\r').unwrap_or(s).to_string())
        } else {
            self.password.clone()
        };
        if self.username.is_some() != password.is_some() && !self.no_auth {
            return Err(Fail::usage("--username and --password (or --password-stdin) go together").into());
        }
        let credentials = if self.no_auth {
            Credentials::Anonymous
        } else {
            credentials::resolve(&dest.host, self.username.as_deref(), password.as_deref())?
        };
        if matches!(credentials, Credentials::Anonymous) && !self.no_auth {
            return Err(Fail::usage(format!("no credentials for registry {}", dest.host))
                .with_hint("pass --username with --password or --password-stdin, log in with `docker login`, or pass --no-auth")
                .into());
        }
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
    let n: u64 = num.parse().map_err(|_| format!("invalid size {s:?} (e.g. 4MiB)"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("invalid size unit in {s:?} (use KiB, MiB or GiB)")),
    };
    let v = n.checked_mul(mult).ok_or_else(|| format!("size {s:?} is too large"))?;
    if v == 0 {
        return Err("size must be greater than 0".into());
    }
    Ok(v)
}

#[derive(Serialize)]
struct DryRun<'a> {
    destination: &'a Destination,
    images: &'a [crate::plan::ImagePlan],
    blobs: usize,
    bytes: u64,
    blobs_to_upload: Option<usize>,
    bytes_to_upload: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registry_error: Option<String>,
}

#[derive(Serialize)]
struct PushOutput<'a> {
    destination: &'a Destination,
    packages: Vec<PackageSummary>,
    #[serde(flatten)]
    report: &'a Report,
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

pub fn run(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    if args.skip_crs && args.skip_push {
        return Err(Fail::usage("--skip-crs and --skip-push cannot be used together").into());
    }
    if !args.skip_crs {
        return Err(Fail::usage("creating catalog resources needs the platform connection, which this build does not have yet")
            .with_hint("push the images only with --skip-crs --dest-repo <registry>")
            .into());
    }
    let Some(dest_arg) = args.registry.dest_repo.as_deref() else {
        return Err(Fail::usage("--dest-repo is required").with_hint("e.g. --dest-repo 192.168.1.10:11443").into());
    };
    let (dest, scheme_plain) = Destination::parse(dest_arg)?;
    let out = printer.with_format(args.output.format);

    // Read every package first: a bad one is reported and skipped, the others still go.
    let found = package::load::discover(&args.path)?;
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
                summaries.push(PackageSummary { path: e.path().display().to_string(), name: None, version: None, images: 0, error: Some(e.to_string()) });
            }
        }
    }
    if packages.is_empty() && bad == 0 {
        return Err(Fail::new(ExitCode::Input, format!("{}: no packages found", args.path.display()))
            .with_hint("give a package file (.tgz, .tar, .tar.zst) or a directory that contains some")
            .into());
    }
    let plan = Plan::new(&packages, dest.clone());
    let config = args.registry.config(&dest, scheme_plain)?;
    let client = Client::new(config)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;

    if args.dry_run {
        let (blobs, bytes) = plan.totals();
        let scheduler = Scheduler::new(client.clone(), usize::from(args.jobs), Progress::hidden());
        // A dry run may look at the registry (HEAD only) to say what is missing; when it cannot,
        // it still prints the plan.
        let (resolution, registry_error) = rt.block_on(async {
            match client.ping().await {
                Ok(()) => (Some(scheduler.resolve(&plan).await), None),
                Err(e) => (None, Some(e.to_string())),
            }
        });
        let view = DryRun {
            destination: &dest,
            images: &plan.images,
            blobs,
            bytes,
            blobs_to_upload: resolution.as_ref().map(|r| r.missing.len()),
            bytes_to_upload: resolution.as_ref().map(|r| r.bytes_to_upload(&plan)),
            registry_error,
        };
        out.data(&view, || {
            let mut s = String::new();
            for img in &plan.images {
                s.push_str(&format!("{} -> {}  {}  {}\n", img.source, img.destination, img.digest, human_bytes(img.size)));
            }
            s.push_str(&format!("{} images, {} unique blobs, {}\n", plan.images.len(), blobs, human_bytes(bytes)));
            match (&view.blobs_to_upload, &view.bytes_to_upload, &view.registry_error) {
                (Some(n), Some(b), _) => s.push_str(&format!("would upload {n} blobs, {} (dry run: nothing written)\n", human_bytes(*b))),
                (_, _, Some(e)) => s.push_str(&format!("registry not checked ({e}); up to {} would be uploaded (dry run: nothing written)\n", human_bytes(bytes))),
                _ => {}
            }
            s
        })?;
        return Ok(if bad > 0 { ExitCode::Failure } else { ExitCode::Success });
    }

    let (blobs, bytes) = plan.totals();
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
    let report = rt.block_on(async {
        client.ping().await?;
        tokio::select! {
            r = scheduler.push(&plan) => Ok::<_, anyhow::Error>(Some(r)),
            _ = tokio::signal::ctrl_c() => Ok(None),
        }
    });
    let report = match report {
        Ok(Some(r)) => r,
        Ok(None) => {
            progress.finish();
            printer.info("interrupted: no tag was written over an incomplete image; run the same command again to finish");
            return Ok(ExitCode::Interrupted);
        }
        Err(e) => {
            progress.finish();
            return Err(e);
        }
    };

    let view = PushOutput { destination: &dest, packages: summaries, report: &report };
    out.data(&view, || render(&report))?;
    let code = report.exit_code();
    Ok(if code == ExitCode::Success && bad > 0 { ExitCode::Failure } else { code })
}

fn render(report: &Report) -> String {
    let mut s = String::new();
    for img in &report.images {
        let word = match img.result {
            ImageResult::Pushed => "pushed   ",
            ImageResult::Unchanged => "unchanged",
            ImageResult::Failed => "FAILED   ",
        };
        s.push_str(&format!("{word} {}  {}\n", img.destination, img.digest));
        if let Some(e) = &img.error {
            s.push_str(&format!("          {e}\n"));
        }
    }
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
