//! Package reading against packages written by real tools: an OCI layout written by skopeo, the
//! storage tree a real docker-registry wrote, and every container × store × type synth makes.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use violet::digest::Digest;
use violet::package::{
    Container, MetadataSource, Package, PackageError, PackageType, StoreKind, blobs, load,
};
use violet::synth::{self, MediaTypes, SynthImage, SynthPackage, SynthSpec};

use crate::support::TestContext;
use crate::support::skopeo::{skopeo_copy_all, skopeo_inspect_raw_digest};

/// A plain-HTTP docker-registry on a free port, private to this module until the shared launcher
/// (`support::registry`) is merged.
pub(crate) struct PlainRegistry {
    child: Child,
    pub(crate) host: String,
    pub(crate) storage: PathBuf,
}

impl PlainRegistry {
    pub(crate) fn start(dir: &Path) -> Self {
        let storage = dir.join("storage");
        std::fs::create_dir_all(&storage).expect("registry storage dir");
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: info, accesslog: {{disabled: true}}}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  maintenance: {{uploadpurging: {{enabled: false}}}}\nhttp:\n  addr: 127.0.0.1:0\n  secret: test-only\n",
                storage.display()
            ),
        )
        .expect("registry config");
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start docker-registry (apt-get install docker-registry)");
        let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let mut host = None;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("listening on ").nth(1) {
                host = Some(
                    rest.split([',', '"', ' '])
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                );
                break;
            }
        }
        // The registry blocks once a full stderr pipe is not read, so keep draining it.
        std::thread::spawn(move || for _ in lines {});
        let Some(host) = host else {
            let _ = child.kill();
            panic!("docker-registry exited before listening");
        };
        Self {
            child,
            host,
            storage,
        }
    }
}

impl Drop for PlainRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three multi-arch images, the first layer of each platform shared between all of them.
fn images() -> Vec<SynthImage> {
    [
        "acp/demo-operator-bundle",
        "acp/demo-operator",
        "acp/demo-agent",
    ]
    .into_iter()
    .map(|repo| {
        let mut i = SynthImage::new(repo, "v1.2.3");
        i.shared_layers = 1;
        i
    })
    .collect()
}

/// Writes a synth OCI layout directory and pushes each of its images to `registry` with skopeo.
fn push_synth_images(ctx: &TestContext, registry: &str) -> Vec<SynthImage> {
    let mut spec = SynthSpec::new("source", PackageType::Plugin);
    spec.store = StoreKind::OciLayout;
    spec.container = Container::Directory;
    spec.metadata = false;
    spec.images = images();
    let layout = synth::write(&spec, &ctx.path().join("source")).expect("write synth layout");
    for (reference, _) in &layout.images {
        let (_, repo_tag) = reference.split_once('/').expect("reference has a registry");
        skopeo_copy_all(
            ctx,
            &format!("oci:{}:{reference}", layout.path.display()),
            &format!("docker://{registry}/{repo_tag}"),
        );
    }
    spec.images
}

/// A gzip'd package: `violet.yaml` first, then the named entries of `root` (files or trees) at
/// the package root.
fn tar_package(out: &Path, metadata: &str, root: &Path, names: &[&str]) {
    let file = File::create(out).expect("create package");
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut h = tar::Header::new_gnu();
    h.set_size(metadata.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "violet.yaml", metadata.as_bytes())
        .expect("append metadata");
    for name in names {
        let path = root.join(name);
        if path.is_dir() {
            tar.append_dir_all(name, &path).expect("append tree");
        } else {
            tar.append_path_with_name(&path, name).expect("append file");
        }
    }
    tar.into_inner()
        .expect("finish tar")
        .finish()
        .expect("finish gzip");
}

fn metadata_yaml(registry: &str, images: &[SynthImage]) -> String {
    let refs: Vec<String> = images
        .iter()
        .map(|i| format!("{registry}/{}:{}", i.repository, i.tag))
        .collect();
    let mut y = format!(
        "apiVersion: violet.alauda.io/v1\nkind: Package\nname: demo-operator\ntype: bundle\nversion: v1.2.3\nchannels: [stable]\ndefaultChannel: stable\nartifact: {}\nrelatedImages:\n",
        refs[0]
    );
    for r in &refs[1..] {
        y.push_str(&format!("- {r}\n"));
    }
    y
}

/// Every `(repository:tag, digest)` that `violet show --output json` reports, wherever the
/// images sit in the document (one package or a list, nested packages included).
fn shown_images(v: &serde_json::Value, out: &mut Vec<(String, Digest)>) {
    match v {
        serde_json::Value::Object(map) => {
            if let (Some(reference), Some(digest)) = (
                map.get("reference"),
                map.get("digest").and_then(|d| d.as_str()),
            ) {
                let name = match reference {
                    serde_json::Value::String(s) => s.clone(),
                    obj => format!(
                        "{}:{}",
                        obj.get("repository")
                            .and_then(|r| r.as_str())
                            .unwrap_or_default(),
                        obj.get("tag").and_then(|t| t.as_str()).unwrap_or_default()
                    ),
                };
                if let Ok(d) = Digest::parse(digest) {
                    out.push((name, d));
                }
            }
            map.values().for_each(|x| shown_images(x, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|x| shown_images(x, out)),
        _ => {}
    }
}

/// Runs `violet show PKG --all --output json` and checks it lists each image with the digest
/// skopeo reports for it in the registry.
fn assert_show_matches_registry(
    ctx: &TestContext,
    package: &Path,
    registry: &str,
    images: &[SynthImage],
) {
    let out = ctx
        .run([
            OsStr::new("show"),
            package.as_os_str(),
            OsStr::new("--all"),
            OsStr::new("--output"),
            OsStr::new("json"),
        ])
        .success();
    let mut shown = Vec::new();
    shown_images(&out.json(), &mut shown);
    for image in images {
        let want = skopeo_inspect_raw_digest(
            ctx,
            &format!("docker://{registry}/{}:{}", image.repository, image.tag),
            &["--tls-verify=false"],
        );
        let suffix = format!("{}:{}", image.repository, image.tag);
        assert!(
            shown
                .iter()
                .any(|(name, d)| name.ends_with(&suffix) && *d == want),
            "violet show does not list {suffix} with {want}; it listed {shown:?}\n{}",
            out.stdout
        );
    }
}

#[test]
fn show_lists_images_of_a_layout_written_by_skopeo() {
    let ctx = TestContext::new();
    let registry = PlainRegistry::start(&ctx.path().join("registry"));
    let images = push_synth_images(&ctx, &registry.host);

    let layout = ctx.path().join("layout");
    for i in &images {
        let reference = format!("{}/{}:{}", registry.host, i.repository, i.tag);
        skopeo_copy_all(
            &ctx,
            &format!("docker://{reference}"),
            &format!("oci:{}:{reference}", layout.display()),
        );
    }
    let package = ctx.path().join("demo-operator.stable.ALL.v1.2.3.tgz");
    tar_package(
        &package,
        &metadata_yaml(&registry.host, &images),
        &layout,
        &["oci-layout", "index.json", "blobs"],
    );

    assert_show_matches_registry(&ctx, &package, &registry.host, &images);
}

#[test]
fn show_lists_images_of_a_registry_storage_tree() {
    let ctx = TestContext::new();
    let registry = PlainRegistry::start(&ctx.path().join("registry"));
    let images = push_synth_images(&ctx, &registry.host);

    let package = ctx.path().join("demo-operator.stable.ALL.v1.2.3.tgz");
    tar_package(
        &package,
        &metadata_yaml(&registry.host, &images),
        &registry.storage,
        &["docker"],
    );

    assert_show_matches_registry(&ctx, &package, &registry.host, &images);
}

/// Checks an opened package against what synth wrote, nested packages included.
fn assert_matches(label: &str, pkg: &Package, spec: &SynthSpec, written: &SynthPackage) {
    assert_eq!(pkg.container, spec.container, "{label}: container");
    assert_eq!(
        pkg.stores.iter().map(|s| s.kind).collect::<Vec<_>>(),
        vec![spec.store],
        "{label}: stores"
    );
    let got: BTreeSet<(String, Digest)> = pkg
        .images
        .iter()
        .map(|i| (i.reference.to_string(), i.digest.clone()))
        .collect();
    // A Distribution tree records repositories, not the registry they came from: without metadata
    // naming the images, only `repository:tag` is known.
    let registry_known = spec.metadata || spec.store == StoreKind::OciLayout;
    let want: BTreeSet<(String, Digest)> = written
        .images
        .iter()
        .map(|(r, d)| {
            let r = if registry_known {
                r.clone()
            } else {
                r.split_once('/')
                    .map_or(r.clone(), |(_, rest)| rest.to_string())
            };
            (r, d.clone())
        })
        .collect();
    assert_eq!(got, want, "{label}: images");
    for image in &pkg.images {
        let platforms: BTreeSet<&str> = image.platforms.iter().map(String::as_str).collect();
        assert_eq!(
            platforms,
            BTreeSet::from(["linux/amd64", "linux/arm64"]),
            "{label}: {}",
            image.reference
        );
        assert_eq!(
            image.manifests.last(),
            Some(&image.digest),
            "{label}: {} push order",
            image.reference
        );
    }
    assert_eq!(
        pkg.blob_totals(),
        (written.blob_count, written.blob_bytes),
        "{label}: blob totals"
    );
    assert_eq!(
        pkg.children.len(),
        spec.children.len(),
        "{label}: nested packages"
    );
    for ((child, child_spec), child_written) in pkg
        .children
        .iter()
        .zip(&spec.children)
        .zip(&written.children)
    {
        assert_matches(
            &format!("{label}!{}", child_spec.name),
            child,
            child_spec,
            child_written,
        );
    }
}

fn small_images(prefix: &str) -> Vec<SynthImage> {
    ["a", "b"]
        .into_iter()
        .map(|n| {
            let mut i = SynthImage::new(format!("acp/{prefix}-{n}"), "v1.0.0");
            i.layer_size = 1000;
            i.shared_layers = 1;
            i
        })
        .collect()
}

#[test]
fn every_synth_combination_round_trips_through_open() {
    let ctx = TestContext::new();
    for container in [
        Container::Tar,
        Container::TarGz,
        Container::TarZst,
        Container::Directory,
    ] {
        for store in [StoreKind::OciLayout, StoreKind::Distribution] {
            for kind in [
                PackageType::Bundle,
                PackageType::Plugin,
                PackageType::Chart,
                PackageType::Core,
            ] {
                let label = format!("{container:?}/{store:?}/{}", kind.as_str());
                let mut spec = SynthSpec::new(format!("rt-{}", kind.as_str()), kind);
                spec.container = container;
                spec.store = store;
                spec.images = small_images(kind.as_str());
                if kind == PackageType::Core {
                    let mut child = SynthSpec::new("rt-nested", PackageType::Plugin);
                    child.store = store;
                    child.images = small_images("nested");
                    spec.children = vec![child];
                }
                let out = ctx.path().join(label.replace('/', "-"));
                let written =
                    synth::write(&spec, &out).unwrap_or_else(|e| panic!("{label}: synth: {e}"));
                let pkg =
                    load::open(&written.path).unwrap_or_else(|e| panic!("{label}: open: {e}"));
                assert_eq!(
                    pkg.metadata.name.as_deref(),
                    Some(spec.name.as_str()),
                    "{label}: name"
                );
                assert_eq!(pkg.metadata.package_type, Some(kind), "{label}: type");
                assert_eq!(
                    pkg.metadata.version.as_deref(),
                    Some("v1.0.0"),
                    "{label}: version"
                );
                assert_eq!(
                    pkg.metadata_source,
                    MetadataSource::File,
                    "{label}: metadata source"
                );
                assert_matches(&label, &pkg, &spec, &written);
                blobs::verify_all(&pkg).unwrap_or_else(|e| panic!("{label}: verify: {e}"));
            }
        }
    }
}

#[test]
fn docker_media_types_and_name_only_packages_open() {
    let ctx = TestContext::new();
    let mut spec = SynthSpec::new("legacy-operator", PackageType::Bundle);
    spec.media_types = MediaTypes::Docker;
    spec.metadata = false;
    spec.images = small_images("legacy");
    let written = synth::write(&spec, ctx.path()).expect("synth");
    let pkg = load::open(&written.path).expect("open");
    assert_eq!(pkg.metadata_source, MetadataSource::FileName);
    assert_eq!(pkg.metadata.name.as_deref(), Some("legacy-operator"));
    assert_eq!(pkg.metadata.version.as_deref(), Some("v1.0.0"));
    assert!(
        pkg.images
            .iter()
            .all(|i| i.media_type == violet::package::mediatype::DOCKER_LIST)
    );
    assert_matches("docker", &pkg, &spec, &written);
    blobs::verify_all(&pkg).expect("verify");
}

#[test]
fn a_corrupt_blob_is_named_by_verify() {
    let ctx = TestContext::new();
    for container in [Container::Tar, Container::Directory] {
        let mut spec = SynthSpec::new("corrupt", PackageType::Plugin);
        spec.container = container;
        spec.images = small_images("corrupt");
        let written =
            synth::write(&spec, &ctx.path().join(format!("{container:?}"))).expect("synth");
        let bad = synth::corrupt_blob(&written.path).expect("corrupt");
        let pkg = load::open(&written.path).expect("a corrupt layer does not stop open");
        match blobs::verify_all(&pkg) {
            Err(PackageError::DigestMismatch { expected, .. }) => {
                assert_eq!(expected, bad, "{container:?}")
            }
            other => panic!("{container:?}: expected a digest mismatch for {bad}, got {other:?}"),
        }
    }
}

/// The committed sample package: `show` prints violet's layout, `verify` accepts its sidecar, and
/// synth still writes it byte for byte (so generated digests in other tests stay meaningful).
#[test]
fn committed_sample_package_shows_verifies_and_is_reproducible() {
    let ctx = TestContext::new();
    let sample =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tiny-operator.stable.ALL.v0.1.0.tgz");
    let out = ctx
        .run([OsStr::new("show"), sample.as_os_str(), OsStr::new("--all")])
        .success();
    assert_eq!(
        out.stdout,
        "Name: tiny-operator\nType: bundle\nArch: [linux/amd64 linux/arm64]\nVersion: v0.1.0\n\
         Artifact: harbor.demo.io/acp/tiny-operator:v0.1.0\n\
         RelateImages: [harbor.demo.io/acp/tiny-operator-img1:v0.1.0]\n"
    );
    let out = ctx
        .run([OsStr::new("verify"), sample.as_os_str()])
        .success();
    assert!(
        out.stdout
            .contains("Verified successfully with checksum: 1 file(s)"),
        "{}",
        out.stdout
    );

    let mut spec = SynthSpec::new("tiny-operator", PackageType::Bundle);
    spec.version = "v0.1.0".into();
    spec.images = ["acp/tiny-operator", "acp/tiny-operator-img1"]
        .iter()
        .map(|r| {
            let mut i = SynthImage::new(*r, "v0.1.0");
            i.layers = 1;
            i.layer_size = 1024;
            i
        })
        .collect();
    let written = synth::write(&spec, &ctx.path().join("again")).expect("synth");
    assert_eq!(
        std::fs::read(&written.path).expect("read generated"),
        std::fs::read(&sample).expect("read sample"),
        "synth no longer writes the committed sample byte for byte"
    );
}
