//! `violet mirror`: registry → registry copy of images (a DR standby, a second site), with a parity
//! report. Blobs stream from the source's GET straight into the destination's upload; nothing is
//! staged on disk. Why a copier of its own rather than the push scheduler: `docs/mirror.md`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{Mutex, Semaphore};

use crate::args::OutputArgs;
use crate::args::parse_size;
use crate::args::registry::RegistryAccess;
use crate::args::{StdinSecret, read_stdin_secret};
use crate::digest::Digest;
use crate::error::{ExitCode, Fail};
use crate::outcome::{classify, one_line};
use crate::output::{Printer, human_bytes};
use crate::plan::Destination;
use crate::pull::{self, RemoteImage};
use crate::registry::{BlobStream, Client, Credentials, RegistryError, credentials};

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

    /// Source registry user (default: docker/podman credentials for the source host, else anonymous).
    #[arg(long, env = "VIOLET_FROM_USERNAME")]
    pub from_username: Option<String>,

    /// Source registry password (prefer --from-password-stdin or VIOLET_FROM_PASSWORD).
    #[arg(long, env = "VIOLET_FROM_PASSWORD", hide_env_values = true)]
    pub from_password: Option<String>,

    /// Read the source registry password from standard input.
    #[arg(long, conflicts_with_all = ["from_password", "password_stdin"])]
    pub from_password_stdin: bool,

    /// The source registry needs no authentication (ignore stored credentials).
    #[arg(long)]
    pub from_no_auth: bool,

    /// The source registry speaks plain HTTP.
    #[arg(long)]
    pub from_plain: bool,

    /// Do not verify the source registry's TLS certificate.
    #[arg(long)]
    pub from_insecure: bool,

    #[command(flatten)]
    pub dest: RegistryAccess,

    /// Upload blobs in chunks of this size (e.g. 4MiB) instead of one streamed request.
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub chunk_size: Option<u64>,

    /// Blob transfers in flight at once, across all images.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// One image to copy: where it is read and where it goes.
#[derive(Debug, Clone)]
struct Request {
    source_repo: String,
    /// Tag or digest resolved at the source.
    source_ref: String,
    dest_repo: String,
    /// Tag set at the destination, last; `None` copies by digest only.
    tag: Option<String>,
    /// The digest the image must have (from `@digest` or the package).
    pinned: Option<Digest>,
}

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
    #[serde(skip)]
    code: Option<ExitCode>,
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
    let (from, from_scheme_plain) = parse_registry("--from", &args.from)?;
    let (to, to_scheme_plain) = parse_registry("--to", &args.to)?;
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
    if args.dest.insecure || args.from_insecure {
        printer.warn("--insecure: TLS certificates are not verified");
    }
    source.ping().await?;
    dest.ping().await?;

    let copier = Copier {
        source,
        dest,
        blobs: Mutex::new(HashMap::new()),
        transfers: Semaphore::new(usize::from(args.jobs)),
        jobs: usize::from(args.jobs),
        retries: args.dest.retries,
        uploaded: AtomicUsize::new(0),
        mounted: AtomicUsize::new(0),
        present: AtomicUsize::new(0),
        bytes: AtomicU64::new(0),
    };
    let from_label = registry_label(&from);
    let to_label = registry_label(&to);
    // Images run side by side; the semaphore bounds the blob transfers they start together.
    let mut images: Vec<(usize, ImageReport)> =
        futures_util::stream::iter(requests.iter().enumerate())
            .map(|(i, req)| {
                let copier = &copier;
                let printer = &printer;
                async move {
                    let report = copier.copy(req).await;
                    if report.status == Status::Ok {
                        printer.info(format!(
                            "mirrored {} -> {}",
                            report.source, report.destination
                        ));
                    }
                    (i, report)
                }
            })
            .buffer_unordered(usize::from(args.jobs))
            .collect()
            .await;
    images.sort_by_key(|(i, _)| *i);
    let images: Vec<ImageReport> = images.into_iter().map(|(_, r)| r).collect();
    let report = MirrorReport {
        from: from_label,
        to: to_label,
        parity: images.iter().all(|r| r.status == Status::Ok),
        blobs: BlobCounts {
            uploaded: copier.uploaded.load(Ordering::Relaxed),
            mounted: copier.mounted.load(Ordering::Relaxed),
            present: copier.present.load(Ordering::Relaxed),
            bytes_uploaded: copier.bytes.load(Ordering::Relaxed),
        },
        images,
    };
    printer.data(&report, || render(&report))?;
    Ok(exit_code(&report))
}

/// Failures win over mismatches; one failure class for every failed image keeps its own code.
fn exit_code(report: &MirrorReport) -> ExitCode {
    let failed: Vec<&ImageReport> = report
        .images
        .iter()
        .filter(|r| r.status == Status::Failed)
        .collect();
    if !failed.is_empty() {
        if failed.len() == report.images.len()
            && let Some(code) = failed[0].code
            && failed.iter().all(|r| r.code == Some(code))
        {
            return code;
        }
        return ExitCode::Failure;
    }
    if !report.parity {
        return ExitCode::Verify;
    }
    ExitCode::Success
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

fn parse_registry(flag: &str, value: &str) -> Result<(Destination, bool), Fail> {
    Destination::parse(value).map_err(|e| {
        Fail::usage(e.message.replacen("--dest-repo", flag, 1))
            .with_hint("write it as host[:port][/prefix], e.g. 192.168.1.10:11443")
    })
}

fn registry_label(d: &Destination) -> String {
    match &d.prefix {
        Some(p) => format!("{}/{p}", d.host),
        None => d.host.clone(),
    }
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
    let from_password = if args.from_password_stdin {
        Some(read_stdin_secret(
            "--from-password-stdin",
            StdinSecret::WholeText,
        )?)
    } else {
        args.from_password.clone()
    };
    let password = args.dest.password()?;
    // The source may be anonymous (public or pull-open registries), so no credential rule here.
    let source_credentials = if args.from_no_auth {
        Credentials::Anonymous
    } else {
        match (&args.from_username, &from_password) {
            (Some(u), Some(p)) => Credentials::Basic {
                username: u.clone(),
                password: p.clone(),
            },
            (Some(_), None) | (None, Some(_)) => {
                return Err(
                    Fail::usage("--from-username and --from-password go together")
                        .with_hint("or pass --from-password-stdin with --from-username")
                        .into(),
                );
            }
            // Stored logins only: VIOLET_USERNAME/VIOLET_PASSWORD belong to the destination.
            (None, None) => credentials::resolve_stored(&from.host)
                .map(|r| r.credentials)
                .unwrap_or_default(),
        }
    };
    let resolved = credentials::resolve(
        &to.host,
        args.dest.username.as_deref(),
        password.as_deref(),
        args.dest.no_auth,
    )?;
    resolved.require_for_push(&to.host)?;
    let mut source_config =
        args.dest
            .config(&from.host, false, source_credentials, args.chunk_size);
    source_config.plain = args.from_plain || from_scheme_plain;
    source_config.insecure = args.from_insecure;
    let source = Client::mirror_source(source_config)?;
    let dest = Client::new(args.dest.config(
        &to.host,
        to_scheme_plain,
        resolved.credentials,
        args.chunk_size,
    ))?;
    Ok((source, dest))
}

/// Shared state of one mirror run.
struct Copier {
    source: Client,
    dest: Client,
    /// Per blob digest: a destination repository known to hold it. Holding the cell's lock while
    /// the blob is ensured makes a blob shared by several images cross the network once; the
    /// others mount it.
    blobs: Mutex<HashMap<Digest, Arc<Mutex<Option<String>>>>>,
    transfers: Semaphore,
    /// Blob checks and transfers one image starts at once (`--jobs`).
    jobs: usize,
    /// `--retries`: how often a blob whose upload restarted is fetched again.
    retries: u32,
    uploaded: AtomicUsize,
    mounted: AtomicUsize,
    present: AtomicUsize,
    bytes: AtomicU64,
}

impl Copier {
    async fn copy(&self, req: &Request) -> ImageReport {
        let source_label = format!(
            "{}/{}:{}",
            self.source.host(),
            req.source_repo,
            req.source_ref
        )
        .replacen(":sha256:", "@sha256:", 1);
        let destination = match &req.tag {
            Some(t) => format!("{}/{}:{t}", self.dest.host(), req.dest_repo),
            None => format!("{}/{}@{}", self.dest.host(), req.dest_repo, req.source_ref),
        };
        let mut report = ImageReport {
            source: source_label,
            destination,
            source_digest: None,
            destination_digest: None,
            manifests: 0,
            blobs: 0,
            size: 0,
            status: Status::Failed,
            error: None,
            code: None,
        };
        match self.copy_image(req, &mut report).await {
            Ok(()) => {}
            Err(e) => {
                let (code, hint) = classify(&e);
                let mut msg = one_line(&e);
                if let Some(h) = hint {
                    msg.push_str(&format!(" (hint: {h})"));
                }
                report.error = Some(msg);
                report.code = Some(code);
                report.status = Status::Failed;
            }
        }
        report
    }

    async fn copy_image(&self, req: &Request, report: &mut ImageReport) -> anyhow::Result<()> {
        let image = pull::resolve(&self.source, &req.source_repo, &req.source_ref).await?;
        report.source_digest = Some(image.digest.clone());
        report.manifests = image.manifests.len();
        report.blobs = image.blobs.len();
        report.size = image.size();
        if let Some(pinned) = &req.pinned
            && *pinned != image.digest
        {
            return Err(Fail::new(
                ExitCode::Verify,
                format!(
                    "{} resolves to {} at the source, not {pinned}",
                    report.source, image.digest
                ),
            )
            .into());
        }
        let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(image.blobs.iter())
            .map(|(digest, size)| self.ensure_blob(&req.source_repo, &req.dest_repo, digest, *size))
            .buffer_unordered(self.jobs)
            .collect()
            .await;
        for r in results {
            r?;
        }
        self.put_manifests(req, &image).await?;
        // Parity: what the destination now serves for the tag (or digest), read back.
        let reference = req.tag.clone().unwrap_or_else(|| image.digest.to_string());
        let at_dest = self
            .dest
            .manifest_exists(&req.dest_repo, &reference)
            .await?;
        report.destination_digest = at_dest.clone();
        report.status = if at_dest.as_ref() == Some(&image.digest) {
            Status::Ok
        } else {
            Status::Mismatch
        };
        Ok(())
    }

    /// Children first, each by digest, so the registry never sees a manifest whose parts are
    /// missing; the tag moves last, once the whole graph is there.
    async fn put_manifests(&self, req: &Request, image: &RemoteImage) -> anyhow::Result<()> {
        for m in &image.manifests {
            if self
                .dest
                .manifest_exists(&req.dest_repo, m.digest.as_str())
                .await?
                .is_none()
            {
                self.dest
                    .put_manifest(
                        &req.dest_repo,
                        m.digest.as_str(),
                        &m.media_type,
                        m.bytes.clone(),
                    )
                    .await?;
            }
        }
        if let Some(tag) = &req.tag
            && self
                .dest
                .manifest_exists(&req.dest_repo, tag)
                .await?
                .as_ref()
                != Some(&image.digest)
            && let Some(top) = image.manifests.last()
        {
            self.dest
                .put_manifest(&req.dest_repo, tag, &top.media_type, top.bytes.clone())
                .await?;
        }
        Ok(())
    }

    async fn ensure_blob(
        &self,
        source_repo: &str,
        dest_repo: &str,
        digest: &Digest,
        size: u64,
    ) -> anyhow::Result<()> {
        let cell = self
            .blobs
            .lock()
            .await
            .entry(digest.clone())
            .or_default()
            .clone();
        let mut known = cell.lock().await;
        if known.as_deref() == Some(dest_repo) {
            return Ok(());
        }
        let _permit = self.transfers.acquire().await?;
        if self.dest.blob_exists(dest_repo, digest).await?.is_some() {
            self.present.fetch_add(1, Ordering::Relaxed);
        } else if let Some(from) = known.as_deref()
            && self.dest.mount_blob(dest_repo, from, digest).await?
        {
            self.mounted.fetch_add(1, Ordering::Relaxed);
        } else {
            self.upload_from_source(source_repo, dest_repo, digest, size)
                .await?;
            self.uploaded.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(size, Ordering::Relaxed);
        }
        *known = Some(dest_repo.to_string());
        Ok(())
    }

    /// Streams one blob from the source's `GET` into the destination's upload. The client may
    /// need to restart an upload (a reset, a 5xx) and a `GET` body can be read only once, so the
    /// opener hands out the opened body once; a restart ends in `SourceNotRewindable`, and the
    /// blob is fetched and sent again here, within the same retry budget.
    async fn upload_from_source(
        &self,
        source_repo: &str,
        dest_repo: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<(), RegistryError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let body = self.source.get_blob(source_repo, digest).await?;
            let body = std::sync::Mutex::new(Some(pull::checked_blob(
                body,
                self.source.host(),
                source_repo,
                digest.clone(),
                size,
            )));
            let open = || -> std::io::Result<BlobStream> {
                body.lock()
                    .ok()
                    .and_then(|mut b| b.take())
                    .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::Unsupported))
            };
            match self
                .dest
                .upload_blob(dest_repo, digest, size, &open, &|_| {})
                .await
            {
                Err(RegistryError::SourceNotRewindable { .. }) if attempt <= self.retries => {
                    tracing::debug!(%digest, dest_repo, attempt, "upload restarts; fetching the blob again");
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
