//! `violet package`: turns a package source directory (`violet create`) into a package file,
//! pulling every image straight into the archive, and writes `<file>.sha256` next to it.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::args::registry::SourceArgs;
use crate::artifact::Reference;
use crate::build::{self, BuildReport, Images, Rewrite};
use crate::error::{ExitCode, Fail};
use crate::output::progress::{Progress, human_bytes};
use crate::output::{Format, Printer};
use crate::package::metadata::{self, METADATA_FILE, Metadata};
use crate::package::{Container, PackageType, load};
use crate::pull::PlatformFilter;
use crate::transfer::differential;
use crate::writer::{PackageWriter, STORE_ROOT};

const EXAMPLES: &str = "Examples:
  # Default name: <name>.<channel>.<ARCH>.<version>.tgz (operators), <name>.<ARCH>.<version>.tgz
  violet package topolvm

  violet package log-center --output /mnt/usb/log-center.ALL.v1.2.0.tar.zst --no-auth --plain

  # Metadata only (a few KiB): push publishes the catalog entry for images already in the registry
  violet package topolvm --skip-package-images --output topolvm-light.tgz";

/// Build a package file (.tgz, .tar or .tar.zst) from a directory made by 'violet create'.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The package source directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Package file to write; the extension chooses the format (.tgz, .tar.gz, .tar, .tar.zst).
    /// Default: the documented package name, in the current directory.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Carry the metadata only (a lightweight package), no images.
    #[arg(long)]
    pub skip_package_images: bool,

    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,

    /// gzip level for .tgz (0-9). Layers are compressed already, so the default is the fastest.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub gzip_level: u32,

    /// Build a differential package: leave out every layer BASE holds (BASE: a 'violet inventory'
    /// file of the site registry, .json/.yaml, the previous package file the site received, or
    /// docker://HOST[/PREFIX], a registry holding what the site holds, with the source flags).
    /// violet.yaml records the base and every blob the site must hold; 'violet push' checks them
    /// before it uploads anything.
    #[arg(long, value_name = "BASE", conflicts_with = "skip_package_images")]
    pub base: Option<PathBuf>,

    #[command(flatten)]
    pub source: SourceArgs,

    /// Report format (--output names the package file here).
    #[arg(long = "format", value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageReport {
    #[serde(rename = "type")]
    pub package_type: Option<PackageType>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub architectures: Vec<String>,
    /// Where the images came from: `registry`, `directory` or `none`.
    pub images_from: &'static str,
    #[serde(flatten)]
    pub build: BuildReport,
    pub rewritten_indexes: Vec<Rewrite>,
    /// Signatures, attestations, SBOMs and OCI referrers carried with the images.
    pub referrers: Vec<crate::package::metadata::ReferrerEntry>,
    /// Set for a differential package: what it was built against and what it leaves at the site.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differential: Option<DifferentialSummary>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DifferentialSummary {
    pub against: &'static str,
    pub base: String,
    pub base_digest: crate::digest::Digest,
    pub expected_blobs: usize,
    pub expected_bytes: u64,
}

pub fn run(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    let printer = printer.with_format(args.format);
    crate::commands::block_on(run_async(args, printer))?
}

async fn run_async(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    let mut meta = read_metadata(&args.dir)?;
    let output = match &args.output {
        Some(p) => p.clone(),
        None => PathBuf::from(default_file_name(&meta)),
    };
    let container = container_of(&output)?;
    if output.exists() && !args.force {
        return Err(Fail::usage(format!("{}: already exists", output.display()))
            .with_hint("pass --force to replace it, or choose another --output")
            .into());
    }

    // A directory `create` filled holds the images already; one made with
    // --skip-package-images has none and the images come from their registries.
    let local = if args.skip_package_images {
        None
    } else {
        let pkg = load::open(&args.dir)?;
        (!pkg.images.is_empty()).then_some(pkg)
    };
    // Made once: a --password-stdin is read once per run (the images and a docker:// base).
    let mut sources: Option<crate::build::Sources> = None;
    let mut rewrites = Vec::new();
    let (images, images_from) = if args.skip_package_images {
        (Images::None, "none")
    } else if let Some(mut pkg) = local {
        check_store_complete(&args.dir, &meta, &pkg)?;
        if args.source.referrers.no_referrers {
            pkg.images.retain(|i| i.referrer.is_none());
            meta.referrers.clear();
        }
        (Images::Local(Box::new(pkg)), "directory")
    } else {
        let references = references(&args.dir, &meta)?;
        let filter = PlatformFilter::parse(&meta.architectures).map_err(|e| {
            Fail::new(
                ExitCode::BadPackage,
                format!(
                    "{}: architectures: {e}",
                    args.dir.join(METADATA_FILE).display()
                ),
            )
        })?;
        let sources = sources.insert(args.source.sources(&printer)?);
        let mut notes = Vec::new();
        let collect = !args.source.referrers.no_referrers;
        let pulled =
            build::resolve_all(sources, &references, filter.as_ref(), collect, &mut notes).await?;
        rewrites = build::rewrites(&pulled);
        for r in &rewrites {
            printer.info(r.to_string());
        }
        for n in &notes {
            printer.warn(n);
        }
        meta.referrers = build::referrer_entries(&pulled);
        if meta.architectures.is_empty() {
            meta.architectures = build::platforms(&pulled, filter.as_ref());
        }
        (Images::Remote(pulled), "registry")
    };
    meta.manifests_first = true;
    let omit = match &args.base {
        Some(base) => {
            let sources = match &mut sources {
                Some(s) => s,
                None => sources.insert(args.source.sources(&printer)?),
            };
            let base = differential::Base::resolve(base.as_os_str(), sources, &images).await?;
            differential::apply(base, &images, &mut meta)?
        }
        None => Default::default(),
    };

    let extra = extra_files(&args.dir)?;
    let writer = PackageWriter::create(&output, container, args.gzip_level)?;
    let progress = Progress::new(&printer, "package");
    let build = build::write(writer, &meta, extra, images, omit, progress).await?;
    let report = PackageReport {
        package_type: meta.package_type,
        name: meta.name.clone(),
        version: meta.version.clone(),
        architectures: meta.architectures.clone(),
        images_from,
        build,
        rewritten_indexes: rewrites,
        referrers: meta.referrers.clone(),
        differential: meta.differential.as_ref().map(|d| DifferentialSummary {
            against: d.against.as_str(),
            base: d.base.clone(),
            base_digest: d.base_digest.clone(),
            expected_blobs: d.expected.len(),
            expected_bytes: d.expected.iter().map(|e| e.size).sum(),
        }),
    };
    printer.data(&report, || render(&report))?;
    Ok(ExitCode::Success)
}

fn render(r: &PackageReport) -> String {
    let b = &r.build;
    let mut s = format!(
        "Wrote {} ({})\n  {} {} {}, {}\n",
        b.written.path.display(),
        human_bytes(b.written.bytes),
        r.package_type.map(|t| t.as_str()).unwrap_or("package"),
        r.name.as_deref().unwrap_or("-"),
        r.version.as_deref().unwrap_or("-"),
        if r.architectures.is_empty() {
            "no architectures".to_string()
        } else {
            r.architectures.join(", ")
        }
    );
    if b.images == 0 {
        s.push_str("  no images (lightweight package)\n");
    } else {
        s.push_str(&format!(
            "  {} images, {} manifests, {} blobs ({}), from the {}\n",
            b.images,
            b.manifests,
            b.blobs,
            human_bytes(b.blob_bytes),
            r.images_from
        ));
    }
    if !r.referrers.is_empty() {
        s.push_str(&format!(
            "  referrers: {}\n",
            crate::package::referrer::summary(r.referrers.iter().map(|e| e.kind))
        ));
    }
    if let Some(d) = &r.differential {
        s.push_str(&format!(
            "  differential against {} {} ({}): {} blobs ({}) left at the site\n",
            d.against,
            crate::output::escape(&d.base),
            d.base_digest,
            d.expected_blobs,
            human_bytes(d.expected_bytes)
        ));
    }
    if let (Some(d), Some(f)) = (&b.written.sha256, &b.written.sha256_file) {
        s.push_str(&format!("  sha256 {} ({})\n", d.hex(), f.display()));
    }
    s
}

fn read_metadata(dir: &Path) -> anyhow::Result<Metadata> {
    if !dir.is_dir() {
        return Err(Fail::new(
            ExitCode::Input,
            format!("{}: not a directory", dir.display()),
        )
        .with_hint("give the directory 'violet create' wrote")
        .into());
    }
    let path = dir.join(METADATA_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Fail::new(
                ExitCode::Input,
                format!("{}: no {METADATA_FILE}", dir.display()),
            )
            .with_hint(format!(
                "run 'violet create {} --artifact REF' first",
                dir.display()
            ))
            .into());
        }
        Err(e) => {
            return Err(Fail::new(ExitCode::Input, format!("{}: {e}", path.display())).into());
        }
    };
    Ok(metadata::parse(dir, METADATA_FILE, &bytes)?)
}

/// The artifact and related images, as references with a registry.
fn references(dir: &Path, meta: &Metadata) -> anyhow::Result<Vec<Reference>> {
    meta.artifact
        .iter()
        .chain(&meta.related_images)
        .map(|s| {
            Reference::parse(s).map_err(|e| {
                Fail::new(
                    ExitCode::BadPackage,
                    format!("{}: {e}", dir.join(METADATA_FILE).display()),
                )
                .into()
            })
        })
        .collect()
}

/// A store that lacks an image the metadata names would give a package that cannot be pushed
/// whole; say so now rather than at the air-gapped site.
fn check_store_complete(
    dir: &Path,
    meta: &Metadata,
    pkg: &crate::package::Package,
) -> anyhow::Result<()> {
    for r in references(dir, meta)? {
        let found = pkg.images.iter().any(|i| {
            i.reference.registry.as_deref() == Some(r.registry.as_str())
                && i.reference.repository == r.repository
                && i.reference.tag == r.tag
        });
        if !found {
            return Err(Fail::new(
                ExitCode::BadPackage,
                format!("{}: the image store lacks {r}", dir.display()),
            )
            .with_hint(format!(
                "run 'violet create --force' again, or delete {} so that 'violet package' pulls every image",
                dir.join(STORE_ROOT).display()
            ))
            .into());
        }
    }
    Ok(())
}

/// Files of the directory besides `violet.yaml` and the image store (a README, a chart's
/// sources...), carried as they are.
fn extra_files(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, rel)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&path)
            .map_err(|e| Fail::new(ExitCode::Input, format!("{}: {e}", path.display())))?
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries.into_iter().rev() {
            let name = e.file_name().to_string_lossy().into_owned();
            let entry = format!("{rel}{name}");
            let Ok(kind) = e.file_type() else { continue };
            if entry == METADATA_FILE
                || format!("{entry}/") == STORE_ROOT
                || name.ends_with(".partial")
                || kind.is_symlink()
            {
                continue;
            }
            if kind.is_dir() {
                stack.push((e.path(), format!("{entry}/")));
            } else if kind.is_file() {
                out.push((entry, e.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `<name>.<channel>.<ARCH>.<version>.tgz` for operators, `<name>.<ARCH>.<version>.tgz` otherwise
/// (docs/package-format.md "File names").
pub fn default_file_name(meta: &Metadata) -> String {
    let name = meta.name.as_deref().unwrap_or("package");
    let version = meta.version.as_deref().unwrap_or("0.0.0");
    let arch = match meta.architectures.as_slice() {
        [one] if one == "linux/amd64" => "amd64",
        [one] if one.starts_with("linux/arm64") => "arm64",
        _ => "ALL",
    };
    match (meta.package_type, &meta.default_channel) {
        (Some(PackageType::Bundle), Some(channel)) => {
            format!("{name}.{channel}.{arch}.{version}.tgz")
        }
        _ => format!("{name}.{arch}.{version}.tgz"),
    }
}

fn container_of(path: &Path) -> anyhow::Result<Container> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.ends_with(".tgz") || name.ends_with(".tar.gz") {
        Ok(Container::TarGz)
    } else if name.ends_with(".tar.zst") {
        Ok(Container::TarZst)
    } else if name.ends_with(".tar") {
        Ok(Container::Tar)
    } else {
        Err(
            Fail::usage(format!("{}: unknown package format", path.display()))
                .with_hint("end --output with .tgz, .tar.gz, .tar or .tar.zst")
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_follow_the_documented_forms() {
        let mut m = Metadata {
            name: Some("demo-operator".into()),
            version: Some("v1.2.0".into()),
            package_type: Some(PackageType::Bundle),
            default_channel: Some("stable".into()),
            architectures: vec!["linux/amd64".into(), "linux/arm64".into()],
            ..Metadata::default()
        };
        assert_eq!(default_file_name(&m), "demo-operator.stable.ALL.v1.2.0.tgz");
        m.package_type = Some(PackageType::Plugin);
        m.architectures = vec!["linux/arm64".into()];
        assert_eq!(default_file_name(&m), "demo-operator.arm64.v1.2.0.tgz");
        let parsed = metadata::parse_file_name("demo-operator.arm64.v1.2.0.tgz").unwrap();
        assert_eq!(parsed.arch.as_deref(), Some("arm64"));
    }

    #[test]
    fn containers_by_extension() {
        assert_eq!(container_of(Path::new("a.TGZ")).unwrap(), Container::TarGz);
        assert_eq!(
            container_of(Path::new("a.tar.zst")).unwrap(),
            Container::TarZst
        );
        assert_eq!(container_of(Path::new("a.tar")).unwrap(), Container::Tar);
        assert!(container_of(Path::new("a.zip")).is_err());
    }
}
