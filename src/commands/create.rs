//! `violet create`: the package source directory for an operator bundle image or an OCI Helm
//! chart: `violet.yaml` and, unless `--skip-package-images`, an image store holding every image
//! (a directory `violet push` and `violet package` both accept).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::args::OutputArgs;
use crate::args::registry::SourceArgs;
use crate::artifact::{self, Reference};
use crate::build::{self, Images, Rewrite};
use crate::error::{ExitCode, Fail};
use crate::output::Printer;
use crate::output::progress::{Progress, human_bytes};
use crate::package::{Container, PackageType};
use crate::pull::PlatformFilter;
use crate::writer::{PackageWriter, STORE_ROOT};

const EXAMPLES: &str = "Examples:
  # An operator: the bundle image and every relatedImages entry of its CSV, amd64 and arm64
  violet create topolvm --artifact harbor.example.com/acp/topolvm-operator-bundle:v2.3.0 \\
    --platforms linux/amd64,linux/arm64 --default-catalog-source platform
  violet package topolvm

  # A cluster plugin chart (global.images of values.yaml), metadata only; images pulled by 'package'
  violet create log-center --artifact harbor.example.com/acp/chart-log-center:v1.2.0 --skip-package-images
  violet package log-center --output log-center.ALL.v1.2.0.tgz";

/// Create a package source directory from an operator bundle image or an OCI Helm chart.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Output directory (created; must be empty unless --force).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// The operator bundle image or OCI Helm chart, with its registry: REGISTRY/REPOSITORY:TAG.
    #[arg(long, value_name = "REF")]
    pub artifact: String,

    /// Platforms to carry (comma separated or repeated), e.g. linux/amd64,linux/arm64. Default:
    /// every platform of each image.
    #[arg(long, value_delimiter = ',', value_name = "OS/ARCH")]
    pub platforms: Vec<String>,

    /// CatalogSource an operator lands in when 'violet push' gets no --target-catalog-source.
    #[arg(long, value_name = "NAME")]
    pub default_catalog_source: Option<String>,

    /// Write the metadata only (a lightweight package); 'violet package' pulls the images.
    #[arg(long)]
    pub skip_package_images: bool,

    /// ModulePlugin YAML to use instead of the chart's module-plugin.yaml (makes a chart a cluster plugin).
    #[arg(long, value_name = "FILE")]
    pub module_plugin: Option<PathBuf>,

    /// Package name to use instead of the one the artifact declares.
    #[arg(long, value_name = "NAME")]
    pub artifact_name: Option<String>,

    /// Write into a non-empty directory, replacing its violet.yaml and image store.
    #[arg(long)]
    pub force: bool,

    /// Leave out every layer BASE holds (a 'violet inventory' file of the site registry, the
    /// previous package file the site received, or docker://HOST[/PREFIX], a registry holding what
    /// the site holds): a differential package directory.
    #[arg(long, value_name = "BASE", conflicts_with = "skip_package_images")]
    pub base: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateReport {
    pub dir: PathBuf,
    #[serde(rename = "type")]
    pub package_type: PackageType,
    pub name: String,
    pub version: String,
    pub artifact: String,
    pub related_images: Vec<String>,
    pub architectures: Vec<String>,
    pub images_written: bool,
    pub blobs: usize,
    pub blob_bytes: u64,
    pub rewritten_indexes: Vec<Rewrite>,
    /// Signatures, attestations, SBOMs and OCI referrers carried with the images.
    pub referrers: Vec<crate::package::metadata::ReferrerEntry>,
}

pub fn run(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    let printer = printer.with_format(args.output.format);
    crate::commands::block_on(run_async(args, printer))?
}

async fn run_async(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    check_output_dir(&args.dir, args.force)?;
    let filter = PlatformFilter::parse(&args.platforms).map_err(Fail::usage)?;
    let module_plugin = match &args.module_plugin {
        Some(path) => Some(read_module_plugin(path)?),
        None => None,
    };
    let artifact_ref =
        Reference::parse(&args.artifact).map_err(|e| Fail::usage(format!("--artifact {e}")))?;
    let mut sources = args.source.sources(&printer)?;
    let client = sources.client(&artifact_ref.registry)?;
    let mut metadata = artifact::inspect(&client, &artifact_ref, module_plugin).await?;
    if let Some(name) = &args.artifact_name {
        metadata.name = Some(name.clone());
    }
    let bundle = metadata.package_type == Some(PackageType::Bundle);
    match (&args.default_catalog_source, bundle) {
        (Some(c), true) => metadata.default_catalog_source = Some(c.clone()),
        (Some(_), false) => printer.warn(
            "--default-catalog-source applies to operator bundles only; ignored for this chart",
        ),
        _ => {}
    }

    let mut references = vec![artifact_ref.clone()];
    for image in &metadata.related_images {
        let r = Reference::parse(image).map_err(|e| {
            Fail::new(
                ExitCode::Input,
                format!("artifact {artifact_ref}: related image {e}"),
            )
        })?;
        references.push(r);
    }
    // A metadata-only directory gets its referrers when 'violet package' pulls the images.
    let collect = !args.source.referrers.no_referrers && !args.skip_package_images;
    let mut notes = Vec::new();
    let pulled = build::resolve_all(
        &mut sources,
        &references,
        filter.as_ref(),
        collect,
        &mut notes,
    )
    .await?;
    metadata.architectures = build::platforms(&pulled, filter.as_ref());
    metadata.referrers = build::referrer_entries(&pulled);
    metadata.manifests_first = true;
    let rewrites = build::rewrites(&pulled);
    for r in &rewrites {
        printer.info(r.to_string());
    }
    for n in &notes {
        printer.warn(n);
    }
    for p in pulled.iter().filter(|p| p.selected.kept_whole) {
        printer.info(format!(
            "{}: pinned by digest, so every platform is kept ({})",
            p.reference,
            p.selected.platforms.join(", ")
        ));
    }

    let images = if args.skip_package_images {
        Images::None
    } else {
        Images::Remote(pulled)
    };
    // The base is read before the directory is touched: a bad one leaves it as it was.
    let omit = match &args.base {
        Some(base) => {
            use crate::transfer::differential::{Base, apply};
            let base = Base::resolve(base.as_os_str(), &mut sources, &images).await?;
            apply(base, &images, &mut metadata)?
        }
        None => Default::default(),
    };
    std::fs::create_dir_all(&args.dir).map_err(|e| io_at(&args.dir, e))?;
    if args.force {
        clear_previous(&args.dir)?;
    }
    let writer = PackageWriter::create(&args.dir, Container::Directory, 0)?;
    let progress = if args.skip_package_images {
        Progress::hidden()
    } else {
        Progress::new(&printer, "create")
    };
    let report = build::write(writer, &metadata, Vec::new(), images, omit, progress).await?;

    let out = CreateReport {
        dir: args.dir.clone(),
        package_type: metadata.package_type.unwrap_or(PackageType::Chart),
        name: metadata.name.clone().unwrap_or_default(),
        version: metadata.version.clone().unwrap_or_default(),
        artifact: artifact_ref.to_string(),
        related_images: metadata.related_images.clone(),
        architectures: metadata.architectures.clone(),
        images_written: !args.skip_package_images,
        blobs: report.blobs,
        blob_bytes: report.blob_bytes,
        rewritten_indexes: rewrites,
        referrers: metadata.referrers.clone(),
    };
    printer.data(&out, || render(&out))?;
    Ok(ExitCode::Success)
}

fn render(r: &CreateReport) -> String {
    let mut s = format!(
        "Created {} ({} {} {})\n  artifact:       {}\n",
        r.dir.display(),
        r.package_type.as_str(),
        r.name,
        r.version,
        r.artifact
    );
    s.push_str(&format!(
        "  related images: {}\n",
        if r.related_images.is_empty() {
            "none".to_string()
        } else {
            r.related_images.len().to_string()
        }
    ));
    for i in &r.related_images {
        s.push_str(&format!("    {i}\n"));
    }
    s.push_str(&format!(
        "  architectures:  {}\n",
        if r.architectures.is_empty() {
            "-".to_string()
        } else {
            r.architectures.join(", ")
        }
    ));
    if !r.referrers.is_empty() {
        s.push_str(&format!(
            "  referrers:      {}\n",
            crate::package::referrer::summary(r.referrers.iter().map(|e| e.kind))
        ));
    }
    if r.images_written {
        s.push_str(&format!(
            "  image store:    {} blobs, {}\n",
            r.blobs,
            human_bytes(r.blob_bytes)
        ));
    } else {
        s.push_str(
            "  image store:    none (--skip-package-images: 'violet package' pulls the images)\n",
        );
    }
    s.push_str(&format!("Next: violet package {}\n", r.dir.display()));
    s
}

/// Refuses a non-empty directory (or a file) unless `--force`: an earlier package's files would
/// mix with the new one.
fn check_output_dir(dir: &Path, force: bool) -> anyhow::Result<()> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_at(dir, e).into()),
        Ok(m) if !m.is_dir() => {
            Err(Fail::usage(format!("{}: exists and is not a directory", dir.display())).into())
        }
        Ok(_) => {
            let non_empty = std::fs::read_dir(dir)
                .map_err(|e| io_at(dir, e))?
                .next()
                .is_some();
            if non_empty && !force {
                return Err(Fail::usage(format!("{}: directory is not empty", dir.display()))
                    .with_hint("choose a new directory, or pass --force to replace its violet.yaml and image store")
                    .into());
            }
            Ok(())
        }
    }
}

fn clear_previous(dir: &Path) -> anyhow::Result<()> {
    let store = dir.join(STORE_ROOT.trim_end_matches('/'));
    if store.exists() {
        std::fs::remove_dir_all(&store).map_err(|e| io_at(&store, e))?;
    }
    Ok(())
}

fn read_module_plugin(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Fail::new(
            ExitCode::Input,
            format!("--module-plugin {}: {e}", path.display()),
        )
    })?;
    let value: serde_json::Value = serde_saphyr::from_str(&text).map_err(|e| {
        Fail::new(
            ExitCode::Input,
            format!(
                "--module-plugin {}: {}",
                path.display(),
                e.to_string().lines().next().unwrap_or("invalid YAML")
            ),
        )
    })?;
    if value["kind"] != "ModulePlugin" {
        return Err(Fail::new(
            ExitCode::Input,
            format!(
                "--module-plugin {}: not a ModulePlugin (kind: {})",
                path.display(),
                value["kind"]
            ),
        )
        .with_hint("the file must hold one cluster.alauda.io/v1alpha1 ModulePlugin")
        .into());
    }
    Ok(value)
}

fn io_at(path: &Path, e: std::io::Error) -> Fail {
    Fail::new(ExitCode::Input, format!("{}: {e}", path.display()))
}
