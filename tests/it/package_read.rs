//! Package reading against packages written by real tools: an OCI layout written by skopeo, the
//! storage tree a real docker-registry wrote, and every container × store × type synth makes.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};

use violet::digest::Digest;
use violet::package::{MetadataSource, Package, PackageError, blobs, load};

use crate::support::TestContext;
use crate::support::packages::{
    Container, MediaTypes, PackageType, StoreKind, SynthImage, SynthPackage, SynthSpec,
    plugin_spec, synth,
};
use crate::support::registry::Registry;
use crate::support::skopeo::{skopeo_copy_all, skopeo_inspect_raw_digest};

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
    let registry = Registry::plain();
    let host = registry.host();
    let images = push_synth_images(&ctx, &host);

    let layout = ctx.path().join("layout");
    for i in &images {
        let reference = format!("{}/{}:{}", host, i.repository, i.tag);
        skopeo_copy_all(
            &ctx,
            &format!("docker://{reference}"),
            &format!("oci:{}:{reference}", layout.display()),
        );
    }
    let package = ctx.path().join("demo-operator.stable.ALL.v1.2.3.tgz");
    tar_package(
        &package,
        &metadata_yaml(&host, &images),
        &layout,
        &["oci-layout", "index.json", "blobs"],
    );

    assert_show_matches_registry(&ctx, &package, &host, &images);
}

#[test]
fn show_lists_images_of_a_registry_storage_tree() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let host = registry.host();
    let images = push_synth_images(&ctx, &host);

    let package = ctx.path().join("demo-operator.stable.ALL.v1.2.3.tgz");
    tar_package(
        &package,
        &metadata_yaml(&host, &images),
        &registry.storage_dir(),
        &["docker"],
    );

    assert_show_matches_registry(&ctx, &package, &host, &images);
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
    // "Verified successfully with checksum: 1 file(s)".
    snap!(ctx, "sample_verify", out.streams());
    let out = ctx
        .run([
            OsStr::new("show"),
            sample.as_os_str(),
            OsStr::new("-o"),
            OsStr::new("json"),
        ])
        .success();
    snap!(ctx, "sample_show_json", out.stdout.clone());

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

// ---------------------------------------------------------------------------------------------
// Integrity at the edges (issue 10): malformed means exit 4, before anything is uploaded
// ---------------------------------------------------------------------------------------------

use crate::mutation::{Entry, edit_descriptor, read_entries, tar_bytes, write_entries};

/// A one-image plugin package (two platforms, manifests first) of `container` and `store`.
fn edge_package(ctx: &TestContext, dir: &str, container: Container, store: StoreKind) -> PathBuf {
    ctx.write_package(dir, &plugin_spec("edge", container, store, 1000))
        .path
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[track_caller]
fn assert_exit(out: &crate::support::Output, code: i32, needle: &str) {
    let text = out.all();
    assert_eq!(out.code, code, "{text}");
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
}

/// Exit `code`, and the error as shown (the `error:` line and its hint) pinned as snapshot `name`.
#[track_caller]
fn assert_refused(ctx: &TestContext, name: &str, out: &crate::support::Output, code: i32) {
    assert_eq!(out.code, code, "{}", out.all());
    snap!(ctx, name, out.error());
}

/// Rewrites a package file or directory entry by entry.
fn rewrite(path: &Path, f: impl FnOnce(&mut Vec<Entry>)) {
    let mut entries = read_entries(path);
    f(&mut entries);
    if path.is_dir() {
        std::fs::remove_dir_all(path).expect("rm");
    }
    write_entries(path, crate::mutation::container_of(path), &entries);
}

fn push_args<'a>(pkg: &'a Path, host: &'a str, crs: &'a Path) -> Vec<&'a str> {
    vec![
        "push",
        arg(pkg),
        "--dest-repo",
        host,
        "--plain",
        "--no-auth",
        "--crs-out",
        arg(crs),
    ]
}

/// Repositories a registry holds (anything uploaded at all creates one).
fn repositories(registry: &Registry) -> Vec<String> {
    let root = registry
        .storage_dir()
        .join("docker/registry/v2/repositories");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.ends_with("_uploads") || p.ends_with("_layers") || p.ends_with("_manifests") {
                out.push(
                    p.parent()
                        .unwrap()
                        .strip_prefix(&root)
                        .unwrap()
                        .display()
                        .to_string(),
                );
            } else if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn a_tar_cut_between_entries_is_refused_by_show_verify_and_push() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    for store in [StoreKind::OciLayout, StoreKind::Distribution] {
        let pkg = edge_package(&ctx, &format!("{store:?}"), Container::Tar, store);
        let entries = read_entries(&pkg);
        let (tar, offsets) = tar_bytes(&entries);
        // Right after violet.yaml (0 images, catalog resources would still be written), in the
        // middle of the entries, and only the end-of-archive blocks missing.
        for cut in [
            offsets[1],
            offsets[offsets.len() / 2],
            *offsets.last().unwrap(),
        ] {
            std::fs::write(&pkg, &tar[..cut]).expect("write");
            assert_exit(&ctx.run(["show", arg(&pkg)]), 4, "it was cut short");
            let out = ctx.run(["verify", arg(&pkg)]);
            assert_ne!(out.code, 0, "{out:?}");
            assert!(out.stdout.contains("cut short"), "{out:?}");
            let crs = ctx.path().join("crs");
            let out = ctx.run(push_args(&pkg, &registry.host(), &crs));
            assert_exit(&out, 4, "cut short");
            assert!(!crs.exists(), "catalog resources written for a cut package");
        }
    }
    assert!(
        repositories(&registry).is_empty(),
        "{:?}",
        repositories(&registry)
    );
}

#[test]
fn compressed_packages_must_end_cleanly() {
    let ctx = TestContext::new();
    for (container, needle) in [
        (Container::TarGz, "checksum"),
        (Container::TarZst, "incomplete frame"),
    ] {
        let pkg = edge_package(
            &ctx,
            &format!("{container:?}"),
            container,
            StoreKind::OciLayout,
        );
        let good = std::fs::read(&pkg).expect("read");
        // The inner tar cut between two entries, the compressed stream itself complete.
        let entries = read_entries(&pkg);
        let (tar, offsets) = tar_bytes(&entries);
        let cut = &tar[..offsets[offsets.len() - 2]];
        let recompressed = match container {
            Container::TarGz => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut e, cut).unwrap();
                e.finish().unwrap()
            }
            _ => zstd::stream::encode_all(cut, 1).unwrap(),
        };
        std::fs::write(&pkg, recompressed).expect("write");
        let out = ctx.run(["verify", arg(&pkg)]);
        assert!(out.stdout.contains("cut short"), "{out:?}");
        assert_ne!(out.code, 0);
        // The compressed stream damaged at its end: the gzip CRC, the last zstd block.
        let mut bad = good.clone();
        match container {
            Container::TarGz => {
                let n = bad.len();
                bad[n - 8] ^= 0xff;
            }
            _ => bad.truncate(bad.len() - 3),
        }
        std::fs::write(&pkg, &bad).expect("write");
        let out = ctx.run(["verify", arg(&pkg)]);
        assert_ne!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains(needle), "{out:?}");
    }
}

#[test]
fn a_gzip_package_with_a_bad_crc_tags_nothing() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let pkg = edge_package(&ctx, "p", Container::TarGz, StoreKind::Distribution);
    let mut bytes = std::fs::read(&pkg).expect("read");
    let n = bytes.len();
    bytes[n - 8] ^= 0xff;
    std::fs::write(&pkg, bytes).expect("write");
    let crs = ctx.path().join("crs");
    let out = ctx.run(push_args(&pkg, &registry.host(), &crs));
    assert_exit(&out, 4, "checksum");
    let tags = registry
        .storage_dir()
        .join("docker/registry/v2/repositories/acp/edge/_manifests/tags");
    assert!(!tags.exists(), "a tag landed: {out:?}");
    assert!(!crs.exists());

    // The rerun finds every blob at the registry already, and still reads the package to its end:
    // the images of a package the first run refused are not tagged now either. Under --quiet the
    // table is not printed, but each failed image still says why on stderr.
    let host = registry.host();
    let mut quiet = push_args(&pkg, &host, &crs);
    quiet.push("-q");
    let out = ctx.run(quiet);
    assert_exit(&out, 4, "checksum");
    assert!(out.stdout.is_empty(), "{out:?}");
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one image, one error line: {out:?}");
    assert!(errors[0].contains("acp/edge"), "{out:?}");
    assert!(!tags.exists(), "a tag landed: {out:?}");
}

#[test]
fn verify_compares_every_descriptor_size_in_every_container() {
    let ctx = TestContext::new();
    for container in [
        Container::Tar,
        Container::TarGz,
        Container::TarZst,
        Container::Directory,
    ] {
        for store in [StoreKind::OciLayout, StoreKind::Distribution] {
            let pkg = edge_package(&ctx, &format!("{container:?}{store:?}"), container, store);
            // The first layer's descriptor says 1 byte; the digests up the chain are made to
            // match, so only the size is wrong.
            rewrite(&pkg, |entries| {
                // The manifest whose layer comes last in the archive: a reader that stops after
                // the manifests never sees that entry's length.
                let position = |digest: &str| {
                    let hex = digest.trim_start_matches("sha256:");
                    entries
                        .iter()
                        .position(|e| e.name.contains(hex))
                        .unwrap_or(0)
                };
                let at = (0..entries.len())
                    .filter_map(|i| {
                        let v: serde_json::Value = serde_json::from_slice(&entries[i].data).ok()?;
                        let layer = v.get("layers")?[0]["digest"].as_str()?.to_string();
                        Some((position(&layer), i))
                    })
                    .max()
                    .expect("a manifest")
                    .1;
                assert!(edit_descriptor(entries, at, 1, &|m| {
                    m.insert("size".into(), 1.into());
                }));
            });
            let out = ctx.run(["verify", arg(&pkg)]);
            assert_eq!(out.code, 8, "{container:?} {store:?}: {out:?}");
            assert!(
                out.stdout
                    .contains("bytes but the manifest referencing it says 1"),
                "{container:?} {store:?}: {out:?}"
            );
        }
    }
}

#[test]
fn index_json_and_descriptors_follow_the_image_spec() {
    let ctx = TestContext::new();
    type Edit = Box<dyn Fn(&mut Vec<Entry>)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "index.json not an object",
            Box::new(|e: &mut Vec<Entry>| set(e, "index.json", b"[]".to_vec())),
            "index.json",
        ),
        (
            "index.json without manifests",
            Box::new(|e: &mut Vec<Entry>| set(e, "index.json", br#"{"schemaVersion":2}"#.to_vec())),
            "missing field `manifests`",
        ),
        (
            "root descriptor without size",
            Box::new(|e: &mut Vec<Entry>| {
                edit_index(e, &|m| {
                    m.remove("size");
                })
            }),
            "has no size",
        ),
        (
            "root descriptor without mediaType",
            Box::new(|e: &mut Vec<Entry>| {
                edit_index(e, &|m| {
                    m.remove("mediaType");
                })
            }),
            "has no mediaType",
        ),
        (
            "child descriptor without size",
            Box::new(|e: &mut Vec<Entry>| {
                edit_child(e, "manifests", &|m| {
                    m.remove("size");
                })
            }),
            "has no size",
        ),
        (
            "layer descriptor with a negative size",
            Box::new(|e: &mut Vec<Entry>| {
                edit_child(e, "layers", &|m| {
                    m.insert("size".into(), (-1).into());
                })
            }),
            "invalid value: integer `-1`",
        ),
        (
            "layer descriptor with a malformed digest",
            Box::new(|e: &mut Vec<Entry>| {
                edit_child(e, "layers", &|m| {
                    m.insert("digest".into(), "sha256:abc".into());
                })
            }),
            "invalid digest",
        ),
    ];
    for (what, edit, needle) in cases {
        let pkg = edge_package(&ctx, what, Container::Tar, StoreKind::OciLayout);
        rewrite(&pkg, |e| edit(e));
        let out = ctx.run(["show", arg(&pkg)]);
        assert_eq!(out.code, 4, "{what}: {out:?}");
        assert!(out.stderr.contains(needle), "{what}: {out:?}");
    }
}

fn set(entries: &mut [Entry], name: &str, data: Vec<u8>) {
    entries
        .iter_mut()
        .find(|e| e.name == name)
        .expect("entry")
        .data = data;
}

fn edit_index(
    entries: &mut Vec<Entry>,
    f: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>),
) {
    let at = entries
        .iter()
        .position(|e| e.name == "index.json")
        .expect("index.json");
    assert!(edit_descriptor(entries, at, 0, f));
}

/// Edits the first descriptor of the first blob that has a `key` array (with its chain rehashed).
fn edit_child(
    entries: &mut Vec<Entry>,
    key: &str,
    f: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>),
) {
    let at = entries
        .iter()
        .position(|e| {
            e.name.contains("blobs/")
                && serde_json::from_slice::<serde_json::Value>(&e.data)
                    .is_ok_and(|v| v.get(key).is_some())
        })
        .expect("document");
    // Layers come after the config descriptor.
    let n = if key == "layers" { 1 } else { 0 };
    assert!(edit_descriptor(entries, at, n, f));
}

#[test]
fn metadata_naming_images_the_store_does_not_hold_is_malformed() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let pkg = edge_package(&ctx, "p", Container::Tar, StoreKind::OciLayout);
    rewrite(&pkg, |e| {
        let yaml = String::from_utf8(e[0].data.clone()).unwrap();
        assert!(!yaml.contains("relatedImages"), "{yaml}");
        e[0].data =
            format!("{yaml}relatedImages:\n- harbor.demo.io/acp/missing:v1.0.0\n").into_bytes();
    });
    // "image harbor.demo.io/acp/missing:v1.0.0: violet.yaml names this image but the package's
    // image store does not hold it", from show and from push.
    assert_refused(&ctx, "missing_image_show", &ctx.run(["show", arg(&pkg)]), 4);
    let crs = ctx.path().join("crs");
    let out = ctx.run(push_args(&pkg, &registry.host(), &crs));
    assert_refused(&ctx, "missing_image_push", &out, 4);
    assert!(!crs.exists());
    assert!(repositories(&registry).is_empty());
}

#[test]
fn a_lightweight_package_writes_resources_only_for_images_at_the_destination() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let pkg = edge_package(&ctx, "p", Container::Tar, StoreKind::OciLayout);
    // Only violet.yaml: what `violet create --skip-package-images` writes.
    rewrite(&pkg, |e| e.truncate(1));
    let crs = ctx.path().join("crs");
    let out = ctx.run(push_args(&pkg, &registry.host(), &crs));
    assert_exit(&out, 7, "catalog resources not written");
    assert!(
        out.stdout
            .contains("acp/edge:v1.0.0 is not in the registry"),
        "{out:?}"
    );
    assert!(!crs.exists(), "resources written for images nobody pushed");
    // Once the images are there (pushed from the full package), the resources are written.
    let full = edge_package(&ctx, "full", Container::Tar, StoreKind::OciLayout);
    ctx.push(arg(&full), &[&registry.host()], &["--plain", "--no-auth"])
        .success();
    ctx.run(push_args(&pkg, &registry.host(), &crs)).success();
    assert!(crs.exists());
}

/// The first `index.json` entry (an image index) duplicated under the same name with another
/// digest: its platform manifest instead.
fn second_image_same_ref(entries: &mut [Entry]) {
    let at = entries.iter().position(|e| e.name == "index.json").unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&entries[at].data).unwrap();
    let first = v["manifests"][0].clone();
    let index = entries
        .iter()
        .find(|e| {
            e.name.ends_with(
                first["digest"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("sha256:"),
            )
        })
        .unwrap();
    let child: serde_json::Value = serde_json::from_slice(&index.data).unwrap();
    let mut dup = child["manifests"][0].clone();
    dup["annotations"] = first["annotations"].clone();
    v["manifests"].as_array_mut().unwrap().push(dup);
    entries[at].data = serde_json::to_vec(&v).unwrap();
}

#[test]
fn two_images_for_one_reference_are_refused_before_any_upload() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let pkg = edge_package(&ctx, "p", Container::Tar, StoreKind::OciLayout);
    rewrite(&pkg, |e| second_image_same_ref(e));
    let crs = ctx.path().join("crs");
    // "... holds two images for this reference", from show and from push.
    assert_refused(&ctx, "two_images_show", &ctx.run(["show", arg(&pkg)]), 4);
    let out = ctx.run(push_args(&pkg, &registry.host(), &crs));
    assert_refused(&ctx, "two_images_push", &out, 4);
    // Across packages of a directory: same repository:tag, different content.
    let dir = ctx.path().join("dir");
    std::fs::create_dir_all(&dir).unwrap();
    let a = edge_package(&ctx, "dir", Container::Tar, StoreKind::OciLayout);
    let mut spec = SynthSpec::new("other", PackageType::Plugin);
    spec.container = Container::TarGz;
    spec.seed = 7;
    spec.images = vec![SynthImage::new("acp/edge", "v1.0.0")];
    synth::write(&spec, &dir).unwrap();
    assert!(a.starts_with(&dir));
    let out = ctx.push(arg(&dir), &[&registry.host()], &["--plain", "--no-auth"]);
    // "two images for one destination", naming acp/edge:v1.0.0.
    assert_refused(&ctx, "two_images_in_a_directory", &out, 4);
    assert!(
        repositories(&registry).is_empty(),
        "{:?}",
        repositories(&registry)
    );
}

#[test]
fn invalid_tags_and_repositories_are_refused_before_any_upload() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    // "is not a valid tag", "is not a valid repository path" (twice).
    for (case, name) in [
        ("tag", "harbor.demo.io/acp/edge:v1+build"),
        ("upper_case", "harbor.demo.io/acp/Edge:v1.0.0"),
        ("empty_component", "harbor.demo.io/acp//edge:v1.0.0"),
    ] {
        let pkg = edge_package(&ctx, "p", Container::Tar, StoreKind::OciLayout);
        rewrite(&pkg, |e| {
            edit_index(e, &|m| {
                m.insert(
                    "annotations".into(),
                    serde_json::json!({"org.opencontainers.image.ref.name": name}),
                );
            })
        });
        let crs = ctx.path().join("crs");
        let out = ctx.run(push_args(&pkg, &registry.host(), &crs));
        assert_refused(&ctx, &format!("invalid_{case}_push"), &out, 4);
        let out = ctx.run(["show", arg(&pkg)]);
        assert_refused(&ctx, &format!("invalid_{case}_show"), &out, 4);
    }
    assert!(
        repositories(&registry).is_empty(),
        "{:?}",
        repositories(&registry)
    );
}

#[test]
fn control_characters_from_a_package_never_reach_the_terminal() {
    let ctx = TestContext::new();
    let pkg = edge_package(&ctx, "p", Container::Tar, StoreKind::OciLayout);
    rewrite(&pkg, |e| {
        let yaml = String::from_utf8(e[0].data.clone()).unwrap();
        e[0].data = yaml
            .replace(
                "displayName: edge",
                "displayName: \"edge\\nerror: forged\\e[31m\\x7f\\u009b\"",
            )
            .replace("name: edge\n", "name: \"edge\\nerror: forged name\"\n")
            .into_bytes();
    });
    let out = ctx.run(["show", arg(&pkg)]);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("Name: edge\\nerror: forged\\u{1b}[31m\\u{7f}\\u{9b}"),
        "{all}"
    );
    for forbidden in ['\u{1b}', '\u{7f}', '\u{9b}'] {
        assert!(!all.contains(forbidden), "{all:?}");
    }
    assert!(
        !all.lines().any(|l| l.starts_with("error: forged")),
        "{all}"
    );
    // A tar entry name with a newline, in an error.
    let pkg = edge_package(&ctx, "q", Container::Tar, StoreKind::OciLayout);
    rewrite(&pkg, |e| {
        e.push(Entry::file(
            "x/../../y\nerror: forged\u{1b}[2J",
            b"z".to_vec(),
        ));
    });
    let out = ctx.run(["show", arg(&pkg)]);
    assert_eq!(out.code, 4, "{out:?}");
    assert_eq!(
        out.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1,
        "{out:?}"
    );
    assert!(!out.stderr.contains('\u{1b}'), "{out:?}");
}

#[test]
fn errors_name_the_package_once() {
    let ctx = TestContext::new();
    let pkg = edge_package(&ctx, "p", Container::Tar, StoreKind::Distribution);
    let bytes = std::fs::read(&pkg).unwrap();
    std::fs::write(&pkg, &bytes[..bytes.len() - 1024]).unwrap();
    let p = pkg.display().to_string();
    for cmd in ["show", "verify"] {
        let out = ctx.run([cmd, arg(&pkg)]);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(!all.contains(&format!("{p}: {p}")), "{all}");
        assert!(all.contains(&p), "{all}");
    }
}

#[test]
fn a_name_only_package_reports_the_platforms_its_images_carry() {
    let ctx = TestContext::new();
    let mut spec = SynthSpec::new("honest", PackageType::Plugin);
    spec.container = Container::Tar;
    spec.metadata = false;
    spec.images = vec![SynthImage::new("acp/honest", "v1.0.0")];
    let written = synth::write(&spec, &ctx.path().join("p")).unwrap();
    let pkg = ctx.path().join("p/honest.amd64.v1.0.0.tar");
    std::fs::rename(&written.path, &pkg).unwrap();
    let out = ctx.run(["show", arg(&pkg)]).success();
    assert!(
        out.stderr
            .contains("the file name says amd64 but the images carry [linux/amd64 linux/arm64]"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("Arch: [linux/amd64 linux/arm64]"),
        "{out:?}"
    );
}

#[test]
fn a_directory_with_metadata_is_not_judged_by_its_name() {
    let ctx = TestContext::new();
    let pkg = edge_package(&ctx, "p", Container::Directory, StoreKind::OciLayout);
    // `violet create ./work` writes violet.yaml into a directory of any name.
    let dir = ctx.path().join("work");
    std::fs::rename(&pkg, &dir).unwrap();
    let out = ctx.run(["show", arg(&dir)]).success();
    assert!(
        !out.stderr.contains("differs from the file name"),
        "{out:?}"
    );
    assert!(out.stdout.contains("Name: edge"), "{out:?}");
}

#[test]
fn a_core_package_cut_before_its_last_plugin_is_refused() {
    let ctx = TestContext::new();
    let mut core = SynthSpec::new("acp-core", PackageType::Core);
    core.container = Container::Tar;
    core.images = vec![SynthImage::new("acp/core", "v4.0.0")];
    for name in ["logging", "monitoring"] {
        let mut plugin = SynthSpec::new(name, PackageType::Plugin);
        plugin.container = Container::TarGz;
        plugin.images = vec![SynthImage::new(format!("acp/{name}"), "v1.0.0")];
        core.children.push(plugin);
    }
    let pkg = synth::write(&core, &ctx.path().join("core")).unwrap().path;
    let out = ctx.run(["show", arg(&pkg)]).success();
    assert!(out.stdout.contains("monitoring.ALL.v1.0.0.tgz"), "{out:?}");
    let entries = read_entries(&pkg);
    let last = entries
        .iter()
        .rposition(|e| e.name.starts_with("plugins/"))
        .expect("a plugin entry");
    let (tar, offsets) = tar_bytes(&entries);
    std::fs::write(&pkg, &tar[..offsets[last]]).unwrap();
    assert_exit(&ctx.run(["show", arg(&pkg)]), 4, "cut short");
    assert_ne!(ctx.run(["verify", arg(&pkg)]).code, 0);
}

#[test]
fn a_nested_plugin_is_decoded_once_per_push_and_damage_in_it_fails_only_its_images() {
    // Opening a core `.tar` stops inside each manifests-first plugin `.tgz` after its manifests,
    // as it does for a top-level one: the push's pass over the plugin uploads its blobs and proves
    // its end, so the layers are decoded once per push, and a rerun that uploads nothing still
    // proves each plugin once (as a top-level manifests-first `.tgz`).
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let mut core = SynthSpec::new("acp-core", PackageType::Core);
    core.container = Container::Tar;
    core.images = vec![SynthImage::new("acp/core", "v4.0.0")];
    let mut plugin = SynthSpec::new("logging", PackageType::Plugin);
    plugin.container = Container::TarGz;
    plugin.images = vec![SynthImage::new("acp/logging", "v1.0.0")];
    core.children.push(plugin);
    let pkg = synth::write(&core, &ctx.path().join("core")).unwrap().path;
    let flat = edge_package(&ctx, "flat", Container::TarGz, StoreKind::OciLayout);
    let proving = "reading the package to its end to prove it complete";
    for path in [&pkg, &flat] {
        let push = || {
            ctx.push(
                arg(path),
                &[&registry.host()],
                &["--plain", "--no-auth", "-v"],
            )
            .success()
        };
        // The first push decodes the plugin in the pass that uploads its blobs, nowhere else.
        let first = push();
        assert!(!first.stderr.contains(proving), "{}", first.stderr);
        let rerun = push();
        assert_eq!(rerun.stderr.matches(proving).count(), 1, "{}", rerun.stderr);
    }

    // Damage past the plugin's manifests (its gzip trailer): opening does not read that far, so
    // `show` lists the package; the push's pass finds it and fails the plugin's images only.
    let mut entries = read_entries(&pkg);
    let nested = entries
        .iter_mut()
        .find(|e| e.name.starts_with("plugins/"))
        .expect("a plugin entry");
    let n = nested.data.len();
    for b in &mut nested.data[n - 8..n - 4] {
        *b ^= 0xff;
    }
    let (tar, _) = tar_bytes(&entries);
    std::fs::write(&pkg, tar).unwrap();
    ctx.run(["show", arg(&pkg)]).success();
    let fresh = Registry::plain();
    let out = ctx.push(arg(&pkg), &[&fresh.host()], &["--plain", "--no-auth"]);
    assert_exit(&out, 4, "does not end cleanly");
    assert!(repositories(&fresh).contains(&"acp/core".to_string()));
    let tags = |repo: &str| {
        std::fs::read_dir(fresh.storage_dir().join(format!(
            "docker/registry/v2/repositories/{repo}/_manifests/tags"
        )))
        .map(|d| d.count())
        .unwrap_or(0)
    };
    assert_eq!(tags("acp/core"), 1);
    assert_eq!(
        tags("acp/logging"),
        0,
        "the damaged plugin's image has no tag"
    );
}

#[test]
fn a_malformed_package_in_a_directory_makes_push_exit_4() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    edge_package(&ctx, "dir", Container::TarGz, StoreKind::OciLayout);
    let mut spec = SynthSpec::new("cut", PackageType::Plugin);
    spec.container = Container::Tar;
    spec.images = vec![SynthImage::new("acp/cut", "v1.0.0")];
    let cut = synth::write(&spec, &ctx.path().join("dir")).unwrap().path;
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 1024]).unwrap();
    let dir = ctx.path().join("dir");
    let out = ctx.push(arg(&dir), &[&registry.host()], &["--plain", "--no-auth"]);
    assert_exit(&out, 4, "cut short");
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("cut."))
        .unwrap_or_else(|| panic!("no row: {out:?}"));
    // The row names the file in its first column; the reason does not repeat it.
    assert!(!row.contains(&cut.display().to_string()), "{row}");
    assert_eq!(repositories(&registry), ["acp/edge"]);
}
