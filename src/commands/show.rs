//! `violet show`: what a package is (name, type, architectures, version) and, with `--all`, its
//! main artifact and every image it carries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

use crate::args::OutputArgs;
use crate::error::{ExitCode, Fail, UserError};
use crate::output::{Printer, escape};
use crate::package::{Package, PackageError, load};

/// Show a package's name, type, architectures and version.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  violet show topolvm-operator.stable.ALL.v2.3.0.tgz\n  violet show topolvm-operator.stable.ALL.v2.3.0.tgz --all\n  violet show ./packages            # every package in the directory\n  violet show plugin.ALL.v1.0.0.tgz -o json | jq .metadata.version"
)]
pub struct Args {
    /// A package file (.tgz, .tar.gz, .tar, .tar.zst), an extracted package directory, or a
    /// directory of packages.
    pub path: PathBuf,

    /// Also show the main artifact and every related image.
    #[arg(long)]
    pub all: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Unique content of a package and the packages nested in it (a blob shared by two nested
/// packages counts once, as it is pushed once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub images: usize,
    pub manifests: usize,
    pub blobs: usize,
    /// Bytes of the unique blobs (configs and layers).
    pub bytes: u64,
    /// Blobs a differential package leaves at the site (not carried), and their bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub expected_blobs: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub expected_bytes: u64,
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl Summary {
    pub fn of(pkg: &Package) -> Self {
        let mut blobs = BTreeMap::new();
        let mut external = BTreeMap::new();
        let mut manifests = BTreeSet::new();
        let mut images = BTreeSet::new();
        for p in pkg.flatten() {
            blobs.extend(p.blobs.values().map(|b| (&b.digest, b.size)));
            external.extend(p.external.iter());
            manifests.extend(p.manifests.keys());
            images.extend(p.images.iter().map(|i| (&i.reference, &i.digest)));
        }
        Summary {
            images: images.len(),
            manifests: manifests.len(),
            blobs: blobs.len(),
            bytes: blobs.values().sum(),
            expected_blobs: external.len(),
            expected_bytes: external.values().copied().sum(),
        }
    }
}

/// JSON/YAML form of one package: the whole model plus its summary.
#[derive(Serialize)]
pub struct ShowItem<'a> {
    #[serde(flatten)]
    pub package: &'a Package,
    pub summary: Summary,
}

impl<'a> ShowItem<'a> {
    pub fn new(package: &'a Package) -> Self {
        Self {
            package,
            summary: Summary::of(package),
        }
    }
}

/// JSON/YAML form of a directory: the packages that could be read and the errors of the others.
#[derive(Serialize)]
pub struct ShowDir<'a> {
    pub packages: Vec<ShowItem<'a>>,
    pub errors: Vec<EntryError>,
}

#[derive(Debug, Serialize)]
pub struct EntryError {
    pub path: PathBuf,
    pub error: String,
}

/// A list the way violet (Go, `fmt.Sprint`) prints it: `[a b c]`.
fn go_list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<String> = items
        .into_iter()
        .map(|s| escape(s.as_ref()).into_owned())
        .collect();
    format!("[{}]", items.join(" "))
}

/// Platforms from the metadata; when it has none, those the images actually carry.
fn architectures(pkg: &Package) -> Vec<String> {
    if !pkg.metadata.architectures.is_empty() {
        return pkg.metadata.architectures.clone();
    }
    let set: BTreeSet<&String> = pkg.images.iter().flat_map(|i| &i.platforms).collect();
    set.into_iter().cloned().collect()
}

/// Related images from the metadata; when it lists none, every image carried except the artifact.
fn related_images(pkg: &Package) -> Vec<String> {
    if !pkg.metadata.related_images.is_empty() {
        return pkg.metadata.related_images.clone();
    }
    let artifact = pkg.metadata.artifact.as_deref();
    pkg.images
        .iter()
        .filter(|i| i.referrer.is_none())
        .map(|i| i.reference.to_string())
        .filter(|r| Some(r.as_str()) != artifact)
        .collect()
}

/// The documented text layout for one package, then its nested packages, each after a blank
/// line and a `Package:` line naming it. `with_path` adds the `Package:` line for this one too.
pub fn render_text(pkg: &Package, all: bool, with_path: bool) -> String {
    let md = &pkg.metadata;
    let mut out = String::new();
    if with_path {
        out.push_str(&format!("Package: {}\n", escape(&pkg.label())));
    }
    let name = md
        .display_name
        .as_deref()
        .or(md.name.as_deref())
        .unwrap_or_default();
    // Every value comes from the package: escaped, so none can start a line of its own.
    out.push_str(&format!("Name: {}\n", escape(name)));
    out.push_str(&format!(
        "Type: {}\n",
        md.package_type.map(|t| t.as_str()).unwrap_or_default()
    ));
    out.push_str(&format!("Arch: {}\n", go_list(architectures(pkg))));
    out.push_str(&format!(
        "Version: {}\n",
        escape(md.version.as_deref().unwrap_or_default())
    ));
    if let Some(d) = &md.differential {
        let (carried, carried_bytes) = pkg.blob_totals();
        let (expected, expected_bytes) = pkg.external_totals();
        out.push_str(&format!(
            "Differential: against {}; carries {carried} blobs ({}), expects {expected} blobs ({}) at the site\n",
            escape(&d.label()),
            crate::output::human_bytes(carried_bytes),
            crate::output::human_bytes(expected_bytes),
        ));
    }
    if all {
        out.push_str(&format!(
            "Artifact: {}\n",
            escape(md.artifact.as_deref().unwrap_or_default())
        ));
        out.push_str(&format!("RelateImages: {}\n", go_list(related_images(pkg))));
        let referrers: Vec<_> = pkg
            .images
            .iter()
            .filter_map(|i| Some((i, i.referrer.as_ref()?)))
            .collect();
        if !referrers.is_empty() {
            out.push_str(&format!(
                "Referrers: {}\n",
                crate::package::referrer::summary(referrers.iter().map(|(_, r)| r.kind))
            ));
            for (image, r) in referrers {
                out.push_str(&format!(
                    "  {} of {}: {}\n",
                    r.kind.as_str(),
                    r.subject,
                    escape(&match &image.reference.tag {
                        Some(_) => image.reference.to_string(),
                        None => format!("{}@{}", image.reference, image.digest),
                    })
                ));
            }
        }
    }
    for child in &pkg.children {
        out.push('\n');
        out.push_str(&render_text(child, all, true));
    }
    out
}

/// Every package of a directory, each introduced by its `Package:` line, separated by blank lines.
pub fn render_dir_text(packages: &[Package], all: bool) -> String {
    packages
        .iter()
        .map(|p| render_text(p, all, true))
        .collect::<Vec<_>>()
        .join("\n")
}

fn warn_all(printer: &Printer, pkg: &Package) {
    for p in pkg.flatten() {
        for w in &p.warnings {
            printer.warn(format!("{}: {w}", p.label()));
        }
    }
}

/// Prints an error the way `main` does, for an error that does not end the command.
pub fn print_entry_error(e: &PackageError) {
    eprintln!("error: {}", escape(&e.to_string()));
    if let Some(hint) = e.hint() {
        eprintln!("  hint: {hint}");
    }
}

pub fn run(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    let printer = printer.with_format(args.output.format);
    let path = &args.path;
    if !path.exists() {
        return Err(PackageError::NotFound { path: path.clone() }.into());
    }
    if !path.is_dir() || load::is_package(path) {
        let pkg = load::open(path)?;
        warn_all(&printer, &pkg);
        printer.data(&ShowItem::new(&pkg), || render_text(&pkg, args.all, false))?;
        return Ok(ExitCode::Success);
    }

    let entries = load::discover(path)?;
    if entries.is_empty() {
        return Err(Fail::new(
            ExitCode::Input,
            format!("{}: no packages in this directory", path.display()),
        )
        .with_hint(
            "packages are .tgz, .tar.gz, .tar or .tar.zst files, or extracted package directories",
        )
        .into());
    }
    let mut packages = Vec::new();
    let mut errors = Vec::new();
    for entry in entries {
        match entry {
            Ok(pkg) => packages.push(pkg),
            Err(e) => {
                // One bad package must not hide the others: report it and go on.
                print_entry_error(&e);
                errors.push(EntryError {
                    path: e.path().to_path_buf(),
                    error: e.to_string(),
                });
            }
        }
    }
    for pkg in &packages {
        warn_all(&printer, pkg);
    }
    let dir = ShowDir {
        packages: packages.iter().map(ShowItem::new).collect(),
        errors,
    };
    printer.data(&dir, || render_dir_text(&packages, args.all))?;
    Ok(if dir.errors.is_empty() {
        ExitCode::Success
    } else {
        ExitCode::Failure
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::package::metadata::{Metadata, PackageType};
    use crate::package::{Blob, BlobLocation, Container, Image, ImageRef, MetadataSource};

    fn loc(entry: &str) -> BlobLocation {
        BlobLocation {
            nest: vec![],
            entry: entry.into(),
            offset: None,
        }
    }

    fn image(reference: &str, platforms: &[&str], blobs: &[Digest]) -> Image {
        let (repo, tag) = reference.rsplit_once(':').unwrap();
        let (registry, repository) = repo.split_once('/').unwrap();
        Image {
            reference: ImageRef {
                registry: Some(registry.into()),
                repository: repository.into(),
                tag: Some(tag.into()),
            },
            digest: Digest::of(reference.as_bytes()),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            platforms: platforms.iter().map(|p| p.to_string()).collect(),
            manifests: vec![Digest::of(reference.as_bytes())],
            blobs: blobs.to_vec(),
            size: 0,
            referrer: None,
        }
    }

    /// A hand-built package; `blobs` are (content, size) pairs.
    pub(crate) fn package(
        path: &str,
        metadata: Metadata,
        images: Vec<Image>,
        blobs: &[(&str, u64)],
    ) -> Package {
        Package {
            path: PathBuf::from(path),
            container: Container::TarGz,
            nest: vec![],
            metadata,
            metadata_source: MetadataSource::File,
            warnings: vec![],
            stores: vec![],
            images,
            manifests: BTreeMap::new(),
            blobs: blobs
                .iter()
                .map(|(c, size)| {
                    let digest = Digest::of(c.as_bytes());
                    (
                        digest.clone(),
                        Blob {
                            digest,
                            size: *size,
                            media_type: None,
                            location: loc(c),
                        },
                    )
                })
                .collect(),
            children: vec![],
            read_whole: true,
            external: BTreeMap::new(),
        }
    }

    fn topolvm() -> Package {
        let md = Metadata {
            name: Some("topolvm-operator".into()),
            display_name: Some("NativeStor".into()),
            package_type: Some(PackageType::Bundle),
            version: Some("2.3.0".into()),
            architectures: vec!["linux/amd64".into()],
            artifact: Some("harbor.demo.io/acp/topolvm-operator-bundle:v3.11.0".into()),
            related_images: vec![
                "harbor.demo.io/acp/topolvm-operator:v3.11.0".into(),
                "harbor.demo.io/acp/topolvm:v3.11.0".into(),
            ],
            ..Default::default()
        };
        package(
            "/p/topolvm-operator.v2.3.0.tgz",
            md,
            vec![],
            &[("a", 10), ("b", 20)],
        )
    }

    #[test]
    fn documented_layout() {
        assert_eq!(
            render_text(&topolvm(), false, false),
            "Name: NativeStor\nType: bundle\nArch: [linux/amd64]\nVersion: 2.3.0\n"
        );
        assert_eq!(
            render_text(&topolvm(), true, false),
            "Name: NativeStor\nType: bundle\nArch: [linux/amd64]\nVersion: 2.3.0\n\
             Artifact: harbor.demo.io/acp/topolvm-operator-bundle:v3.11.0\n\
             RelateImages: [harbor.demo.io/acp/topolvm-operator:v3.11.0 harbor.demo.io/acp/topolvm:v3.11.0]\n"
        );
    }

    #[test]
    fn falls_back_to_images_and_name() {
        let md = Metadata {
            name: Some("lakefs".into()),
            artifact: Some("r.io/charts/lakefs:1.7.9".into()),
            ..Default::default()
        };
        let images = vec![
            image("r.io/charts/lakefs:1.7.9", &[], &[]),
            image("r.io/x/lakefs:1.7.9", &["linux/arm64", "linux/amd64"], &[]),
            image("r.io/x/pg:16", &["linux/amd64"], &[]),
        ];
        let pkg = package("/p/lakefs.tgz", md, images, &[]);
        assert_eq!(
            render_text(&pkg, true, false),
            "Name: lakefs\nType: \nArch: [linux/amd64 linux/arm64]\nVersion: \n\
             Artifact: r.io/charts/lakefs:1.7.9\nRelateImages: [r.io/x/lakefs:1.7.9 r.io/x/pg:16]\n"
        );
        let empty = package("/p/output.tgz", Metadata::default(), vec![], &[]);
        assert_eq!(
            render_text(&empty, true, false),
            "Name: \nType: \nArch: []\nVersion: \nArtifact: \nRelateImages: []\n"
        );
    }

    fn core() -> Package {
        let md = Metadata {
            name: Some("acp-core".into()),
            package_type: Some(PackageType::Core),
            version: Some("v4.3.0".into()),
            ..Default::default()
        };
        let mut parent = package("/p/core.tgz", md, vec![], &[("a", 10), ("c", 5)]);
        let mut child = topolvm();
        child.path = parent.path.clone();
        child.nest = vec!["plugins/topolvm.tgz".into()];
        parent.children.push(child);
        parent
    }

    #[test]
    fn nested_packages_follow_their_parent() {
        assert_eq!(
            render_text(&core(), false, false),
            "Name: acp-core\nType: core\nArch: []\nVersion: v4.3.0\n\n\
             Package: /p/core.tgz!plugins/topolvm.tgz\nName: NativeStor\nType: bundle\nArch: [linux/amd64]\nVersion: 2.3.0\n"
        );
    }

    #[test]
    fn directory_layout() {
        let text = render_dir_text(&[core(), topolvm()], false);
        let blocks: Vec<&str> = text.split("\n\n").collect();
        assert_eq!(blocks.len(), 3, "{text}");
        assert!(blocks[0].starts_with("Package: /p/core.tgz\nName: acp-core\n"));
        assert!(blocks[1].starts_with("Package: /p/core.tgz!plugins/topolvm.tgz\n"));
        assert!(
            blocks[2].starts_with("Package: /p/topolvm-operator.v2.3.0.tgz\nName: NativeStor\n")
        );
    }

    #[test]
    fn summary_counts_unique_blobs_across_nested_packages() {
        // "a" is in both the core package and its plugin: pushed once, counted once.
        assert_eq!(
            Summary::of(&core()),
            Summary {
                images: 0,
                manifests: 0,
                blobs: 3,
                bytes: 35,
                expected_blobs: 0,
                expected_bytes: 0,
            }
        );
    }

    #[test]
    fn json_and_yaml_carry_model_and_summary() {
        let pkg = topolvm();
        let v = serde_json::to_value(ShowItem::new(&pkg)).unwrap();
        assert_eq!(v["metadata"]["displayName"], "NativeStor");
        assert_eq!(v["metadata"]["type"], "bundle");
        assert_eq!(v["summary"]["blobs"], 2);
        assert_eq!(v["summary"]["bytes"], 30);
        assert_eq!(v["container"], "tar-gz");
        let yaml = serde_saphyr::to_string(&ShowItem::new(&pkg)).unwrap();
        assert!(yaml.contains("displayName: NativeStor"), "{yaml}");
        assert!(yaml.contains("bytes: 30"), "{yaml}");
        let dir = ShowDir {
            packages: vec![ShowItem::new(&pkg)],
            errors: vec![EntryError {
                path: "/p/bad.tgz".into(),
                error: "/p/bad.tgz: corrupt".into(),
            }],
        };
        let v = serde_json::to_value(&dir).unwrap();
        assert_eq!(v["errors"][0]["path"], "/p/bad.tgz");
        assert_eq!(v["packages"][0]["summary"]["blobs"], 2);
    }
}
