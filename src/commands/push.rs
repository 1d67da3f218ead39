//! `violet push`: relocate every image of a package (or a directory of packages) into a registry.

use std::path::PathBuf;

mod catalog;
mod render;
mod run;

use crate::args::OutputArgs;
use crate::args::cosign::CosignArgs;
use crate::args::platform::PlatformArgs;
use crate::args::registry::RegistryArgs;
use crate::error::{ExitCode, Fail};
use crate::output::Printer;

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

    /// Blob uploads in flight at once, across all images. Blobs under 1 MiB, whose time is round
    /// trips rather than bytes, go eight times as many at once; --jobs 1 is one upload at a time.
    /// On a round trip over 25 ms (the registry's quickest answer; -v shows it) up to four times as
    /// many go at once, small ones and mounts up to twice as many.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,

    /// Check every blob and child manifest even of images whose tag already points at the
    /// package's digest (by default such an image is complete: a registry accepts a manifest only
    /// over blobs it holds). For registries that may have lost blobs under existing tags.
    #[arg(long)]
    pub verify_existing: bool,

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
    pub cosign: CosignArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    if args.skip_crs && args.skip_push {
        return Err(Fail::usage("--skip-crs and --skip-push cannot be used together").into());
    }
    if args.registry.access.password_stdin && args.platform.platform_password_stdin {
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
    let trust = args.cosign.trust()?;
    let (packages, bad) = run::load_packages(&args.path, &printer)?;
    // Before any connection or upload: a package whose images do not verify is not published.
    if let Some(trust) = &trust {
        let warn = |line: String| printer.warn(line);
        crate::cosign::check::require(&packages, trust, args.cosign.require_signatures, &warn)?;
    }
    super::block_on(run::run_async(args, printer, packages, bad))?
}
