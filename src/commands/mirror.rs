//! `violet mirror`: registry → registry copy of images (a DR standby, a second site), with a parity
//! report. The flags, the image list and the report are here; the copying is `transfer::copy`
//! (the scheduler `push` uses, reading from the source registry).

use std::path::PathBuf;

use serde::Serialize;

use crate::args::OutputArgs;
use crate::args::parse_size;
use crate::args::registry::{MirrorSourceArgs, RegistryAccess};
use crate::digest::Digest;
use crate::error::{ExitCode, Fail};
use crate::output::progress::Progress;
use crate::output::{Printer, human_bytes};
use crate::plan::Destination;
use crate::registry::{Client, credentials};
use crate::transfer::copy::{self, BlobCounts, ImageReport, Request, Status};
use crate::transfer::exit;

const EXAMPLES: &str = "Examples:
  # Two images from the primary site's registry to the DR standby's, under the same paths
  violet mirror --from 192.168.1.10:11443 --to 192.168.1.20:11443 \\
    --from-username admin --from-password-stdin --username admin --password \"$DR_PW\" \\
    acp/opensearch-operator:v3.14.2 acp/opensearch:2.19.1 < primary-pw.txt

  # Every image a package names, from where it was pushed to a second site, as JSON
  violet mirror --from-package opensearch-operator.stable.ALL.v3.14.2.tgz \\
    --from 192.168.1.10:11443 --to registry.site2.example.com/acp --no-auth -o json";

/// Copy images from one registry to another and report whether every tag has the same digest on both.
#[derive(Debug, clap::Args)]
#[command(
    after_help = EXAMPLES,
    mut_arg("username", |a| a.help("Destination registry user")),
    mut_arg("password", |a| a.help("Destination registry password (prefer --password-stdin or VIOLET_PASSWORD: argv is visible in `ps`)")),
    mut_arg("password_stdin", |a| a.help("Read the destination registry password from standard input")),
    mut_arg("no_auth", |a| a.help("The destination registry needs no authentication")),
    mut_arg("plain", |a| a.help("The destination registry speaks plain HTTP")),
    mut_arg("insecure", |a| a.help("Do not verify the destination registry's TLS certificate")),
    mut_arg("ca_files", |a| a.help("Trust this CA certificate (PEM) for both registries, in addition to the system roots. Repeatable")),
)]
pub struct Args {
    /// Images to copy, relative to --from: `repository[:tag]` or `repository@sha256:…` (default tag: latest).
    #[arg(value_name = "IMAGE")]
    pub images: Vec<String>,

    /// Also copy every image this package names (its repository and tag, pinned to the package's digest).
    #[arg(long, value_name = "PKG")]
    pub from_package: Option<PathBuf>,

    /// Source registry: host[:port][/prefix]; the prefix is put in front of every image's repository.
    #[arg(long, value_name = "HOST[:PORT][/PREFIX]")]
    pub from: String,

    /// Destination registry: host[:port][/prefix]; each image keeps its repository path under it.
    #[arg(long, value_name = "HOST[:PORT][/PREFIX]")]
    pub to: String,

    #[command(flatten)]
    pub source: MirrorSourceArgs,

    #[command(flatten)]
    pub dest: RegistryAccess,

    /// Upload blobs in chunks of this size (e.g. 4MiB) instead of one streamed request.
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub chunk_size: Option<u64>,

    /// Blob transfers in flight at once, across all images. Blobs under 1 MiB, whose time is
    /// round trips rather than bytes, go eight times as many at once; --jobs 1 is one at a time.
    /// On a round trip to the source or the destination over 25 ms (the quickest answer; -v shows
    /// it) up to four times as many go at once, small ones and mounts up to twice as many.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,

    /// Check every blob and child manifest even of images whose tag at the destination already
    /// points at the source's digest (by default such an image is complete and is skipped).
    #[arg(long)]
    pub verify_existing: bool,

    #[command(flatten)]
    pub referrers: crate::args::ReferrersArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Serialize)]
pub struct MirrorReport {
    pub from: String,
    pub to: String,
    pub images: Vec<ImageReport>,
    pub blobs: BlobCounts,
    /// Every image resolves to the same digest in both registries.
    pub parity: bool,
}

pub fn run(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    super::block_on(run_async(args, printer))?
}

async fn run_async(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    let printer = printer.with_format(args.output.format);
    let (from, from_scheme_plain) = Destination::parse_flag("--from", &args.from)?;
    let (to, to_scheme_plain) = Destination::parse_flag("--to", &args.to)?;
    let requests = requests(&args, &from, &to)?;
    if requests.is_empty() {
        return Err(Fail::usage("nothing to mirror: name images or pass --from-package").into());
    }
    if from.host == to.host && from.prefix == to.prefix {
        return Err(Fail::usage(format!(
            "--from and --to are the same registry and path ({})",
            args.to
        ))
        .into());
    }
    let (source, dest) = clients(&args, &from, from_scheme_plain, &to, to_scheme_plain)?;
    if args.dest.transport.insecure || args.source.from_insecure {
        printer.warn("--insecure: TLS certificates are not verified");
    }
    source.ping().await?;
    dest.ping().await?;

    let progress = Progress::new(&printer, "mirror");
    let copied = copy::run(
        &source,
        &dest,
        &requests,
        usize::from(args.jobs),
        args.verify_existing,
        !args.referrers.no_referrers,
        progress,
    )
    .await;
    for r in copied.images.iter().filter(|r| r.status == Status::Ok) {
        printer.info(format!("mirrored {} -> {}", r.source, r.destination));
    }
    let (from_label, to_label) = (from.label(), to.label());
    let report = MirrorReport {
        from: from_label,
        to: to_label,
        parity: copied.images.iter().all(|r| r.status == Status::Ok),
        blobs: copied.blobs,
        images: copied.images,
    };
    printer.data(&report, || render(&report))?;
    Ok(exit_code(&report))
}

/// The one exit rule (`transfer::exit`) over every image: a failure's class, and the parity code
/// (7, as `push`) for an image copied but served under another digest at the destination.
fn exit_code(report: &MirrorReport) -> ExitCode {
    exit::fold(report.images.iter().map(|r| match r.status {
        Status::Ok => ExitCode::Success,
        Status::Mismatch => exit::PARITY,
        Status::Failed => r.code.unwrap_or(ExitCode::Failure),
    }))
}

fn render(report: &MirrorReport) -> String {
    let mut out = String::new();
    for r in &report.images {
        let digest = |d: &Option<Digest>| d.as_ref().map_or("-", |d| d.short()).to_string();
        match r.status {
            Status::Ok => out.push_str(&format!(
                "ok        {} -> {}  {}\n",
                r.source,
                r.destination,
                digest(&r.source_digest)
            )),
            Status::Mismatch => out.push_str(&format!(
                "MISMATCH  {} -> {}  source {} destination {}\n",
                r.source,
                r.destination,
                digest(&r.source_digest),
                digest(&r.destination_digest)
            )),
            Status::Failed => out.push_str(&format!(
                "FAILED    {} -> {}: {}\n",
                r.source,
                r.destination,
                r.error.as_deref().unwrap_or("unknown error")
            )),
        }
    }
    let ok = report
        .images
        .iter()
        .filter(|r| r.status == Status::Ok)
        .count();
    out.push_str(&format!(
        "{ok}/{} images at parity from {} to {}; blobs: {} uploaded ({}), {} mounted, {} already present\n",
        report.images.len(),
        report.from,
        report.to,
        report.blobs.uploaded,
        human_bytes(report.blobs.bytes_uploaded),
        report.blobs.mounted,
        report.blobs.present,
    ));
    out
}

/// Splits `repository[:tag][@digest]`.
fn parse_image(s: &str) -> Result<(String, Option<String>, Option<Digest>), Fail> {
    let bad = |why: String| {
        Fail::usage(format!("invalid image {s:?}: {why}")).with_hint(
            "write it as repository[:tag] or repository@sha256:<hex>, relative to --from",
        )
    };
    let (name, digest) = match s.split_once('@') {
        Some((n, d)) => (
            n,
            Some(Digest::parse(d).map_err(|e| bad(format!("bad digest: {e}")))?),
        ),
        None => (s, None),
    };
    let (repo, tag) = match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t.to_string())),
        _ => (name, None),
    };
    let repo = repo.trim_matches('/');
    let valid = !repo.is_empty()
        && repo.split('/').all(|c| {
            !c.is_empty()
                && c.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
                })
        });
    if !valid {
        return Err(bad(
            "the repository must be lowercase path components".into()
        ));
    }
    if let Some(t) = &tag
        && (t.is_empty()
            || t.len() > 128
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(bad(format!("invalid tag {t:?}")));
    }
    let tag = if tag.is_none() && digest.is_none() {
        Some("latest".to_string())
    } else {
        tag
    };
    Ok((repo.to_string(), tag, digest))
}

fn requests(args: &Args, from: &Destination, to: &Destination) -> anyhow::Result<Vec<Request>> {
    let mut out = Vec::new();
    for image in &args.images {
        let (repo, tag, digest) = parse_image(image)?;
        let source_ref = match (&digest, &tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        };
        out.push(Request {
            source_repo: from.repository(&repo),
            source_ref,
            dest_repo: to.repository(&repo),
            tag,
            pinned: digest,
        });
    }
    if let Some(path) = &args.from_package {
        let package = crate::package::load::open(path)?;
        for pkg in package.flatten() {
            for image in &pkg.images {
                out.push(Request {
                    source_repo: from.repository(&image.reference.repository),
                    // Read by tag and compared with the package's digest: a tag moved since the
                    // package was made fails with "resolves to … not …" instead of being copied.
                    source_ref: image
                        .reference
                        .tag
                        .clone()
                        .unwrap_or_else(|| image.digest.to_string()),
                    dest_repo: to.repository(&image.reference.repository),
                    tag: image.reference.tag.clone(),
                    pinned: Some(image.digest.clone()),
                });
            }
        }
    }
    // The same image named twice (or by two packages) is copied once.
    let mut seen = std::collections::HashSet::new();
    out.retain(|r| seen.insert((r.dest_repo.clone(), r.source_ref.clone(), r.tag.clone())));
    Ok(out)
}

fn clients(
    args: &Args,
    from: &Destination,
    from_scheme_plain: bool,
    to: &Destination,
    to_scheme_plain: bool,
) -> anyhow::Result<(Client, Client)> {
    let source = args
        .source
        .config(from, from_scheme_plain, &args.dest, args.chunk_size)?;
    let password = args.dest.password()?;
    let resolved = credentials::resolve(
        &to.host,
        args.dest.username.as_deref(),
        password.as_deref(),
        args.dest.no_auth,
    )?;
    resolved.require_for_push(&to.host)?;
    let dest = Client::new(args.dest.config(
        &to.host,
        to_scheme_plain,
        resolved.credentials,
        args.chunk_size,
    ))?;
    Ok((Client::mirror_source(source)?, dest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(status: Status, code: Option<ExitCode>) -> ImageReport {
        ImageReport {
            source: "a/x:v1".into(),
            destination: "b/x:v1".into(),
            source_digest: None,
            destination_digest: None,
            manifests: 0,
            blobs: 0,
            size: 0,
            status,
            error: None,
            code,
        }
    }

    fn report(images: Vec<ImageReport>) -> MirrorReport {
        MirrorReport {
            from: "a".into(),
            to: "b".into(),
            parity: images.iter().all(|r| r.status == Status::Ok),
            blobs: BlobCounts::default(),
            images,
        }
    }

    /// Push's rule: a parity failure exits 7 as in `push`, a failure class is kept when it is
    /// the only one, different kinds exit 1.
    #[test]
    fn exit_codes_follow_the_one_rule() {
        let ok = || image(Status::Ok, None);
        assert_eq!(exit_code(&report(vec![ok(), ok()])), ExitCode::Success);
        let mismatch = report(vec![ok(), image(Status::Mismatch, None)]);
        assert_eq!(exit_code(&mismatch), ExitCode::Remote);
        let auth = report(vec![ok(), image(Status::Failed, Some(ExitCode::Auth))]);
        assert_eq!(exit_code(&auth), ExitCode::Auth);
        let mixed = report(vec![
            image(Status::Failed, Some(ExitCode::Verify)),
            image(Status::Failed, Some(ExitCode::Network)),
        ]);
        assert_eq!(exit_code(&mixed), ExitCode::Failure);
    }

    #[test]
    fn image_arguments() {
        let (r, t, d) = parse_image("acp/app:v1").unwrap();
        assert_eq!((r.as_str(), t.as_deref(), d), ("acp/app", Some("v1"), None));
        let (_, t, _) = parse_image("acp/app").unwrap();
        assert_eq!(t.as_deref(), Some("latest"));
        let hex = "a".repeat(64);
        let (r, t, d) = parse_image(&format!("app@sha256:{hex}")).unwrap();
        assert_eq!((r.as_str(), t), ("app", None));
        assert_eq!(d.unwrap().hex(), hex);
        assert!(parse_image("App:v1").is_err());
        assert!(parse_image("app:v/1").is_err());
        assert!(parse_image("app@sha256:zz").is_err());
        assert!(parse_image("").is_err());
    }
}
