//! Packages built in temp dirs with the real tar / gzip / zstd encoders, in every container form.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;

/// Metadata reading for these tests: only the fields the reader itself acts on, so the container
/// and store logic is tested independently of the metadata module.
fn test_parse(_: &Path, _: &str, bytes: &[u8]) -> Result<Metadata, PackageError> {
    let text = String::from_utf8_lossy(bytes);
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
    };
    Ok(Metadata {
        manifests_first: field("manifestsFirst:").as_deref() == Some("true"),
        artifact: field("artifact:"),
        package_type: (field("type:").as_deref() == Some("core")).then_some(PackageType::Core),
        ..Metadata::default()
    })
}

fn test_effective(
    file: Option<Metadata>,
    _: Option<FileNameInfo>,
) -> (Metadata, MetadataSource, Vec<String>) {
    let source = if file.is_some() {
        MetadataSource::File
    } else {
        MetadataSource::None
    };
    (file.unwrap_or_default(), source, Vec::new())
}

pub(crate) const HOOKS: MetaHooks = MetaHooks {
    parse: test_parse,
    file_name: |_| None,
    effective: test_effective,
};

pub(crate) fn open_test(path: &Path) -> Result<Package, PackageError> {
    open_with(path, &HOOKS)
}

pub(crate) type Files = Vec<(String, Vec<u8>)>;

/// One two-platform image: index -> per-platform manifests -> config + two layers each.
/// Returns (index bytes, manifests, configs+layers) each as (digest, bytes).
pub(crate) struct Image2 {
    pub index: (Digest, Vec<u8>),
    pub manifests: Vec<(Digest, Vec<u8>)>,
    pub blobs: Vec<(Digest, Vec<u8>)>,
}

pub(crate) fn multiarch(seed: &str) -> Image2 {
    let mut manifests = Vec::new();
    let mut blobs = Vec::new();
    let mut descs = Vec::new();
    for (arch, variant) in [("amd64", None), ("arm64", Some("v8"))] {
        let config = serde_json::to_vec(
            &json!({"architecture": arch, "os": "linux", "variant": variant,
            "rootfs": {"type": "layers", "diff_ids": []}, "config": {"Labels": {"seed": seed}}}),
        )
        .unwrap();
        let cd = Digest::of(&config);
        let mut layer_descs = Vec::new();
        let mut layers = Vec::new();
        for n in 0..2 {
            let mut layer = vec![0x1f, 0x8b];
            for i in 0..3000u32 {
                layer.extend_from_slice(format!("{seed}-{arch}-{n}-{i};").as_bytes());
            }
            let ld = Digest::of(&layer);
            layer_descs.push(
                json!({"mediaType": mediatype::OCI_LAYER_GZIP, "digest": ld, "size": layer.len()}),
            );
            layers.push((ld, layer));
        }
        let manifest = serde_json::to_vec(
            &json!({"schemaVersion": 2, "mediaType": mediatype::OCI_MANIFEST,
            "config": {"mediaType": mediatype::OCI_CONFIG, "digest": cd, "size": config.len()},
            "layers": layer_descs}),
        )
        .unwrap();
        let md = Digest::of(&manifest);
        let mut platform = json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            platform["variant"] = json!(v);
        }
        descs.push(json!({"mediaType": mediatype::OCI_MANIFEST, "digest": md, "size": manifest.len(), "platform": platform}));
        manifests.push((md, manifest));
        blobs.push((cd, config));
        blobs.extend(layers);
    }
    let index = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": mediatype::OCI_INDEX, "manifests": descs}),
    )
    .unwrap();
    Image2 {
        index: (Digest::of(&index), index),
        manifests,
        blobs,
    }
}

/// An OCI layout as skopeo writes it (index.json -> nested index), manifests before other blobs.
pub(crate) fn oci_files(root: &str, img: &Image2, ref_name: &str) -> Files {
    let top = json!({"schemaVersion": 2, "manifests": [{"mediaType": mediatype::OCI_INDEX, "digest": img.index.0,
        "size": img.index.1.len(), "annotations": {"org.opencontainers.image.ref.name": ref_name}}]});
    let mut files = vec![
        (
            format!("{root}oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        (
            format!("{root}index.json"),
            serde_json::to_vec(&top).unwrap(),
        ),
    ];
    for (d, b) in std::iter::once(&img.index)
        .chain(&img.manifests)
        .chain(&img.blobs)
    {
        files.push((oci_layout::blob_path(root, d), b.clone()));
    }
    files
}

/// A Distribution storage tree as docker-registry 2.8 writes it.
pub(crate) fn distribution_files(root: &str, img: &Image2, repo: &str, tag: &str) -> Files {
    let v2 = format!("{root}docker/registry/v2/repositories/{repo}");
    let link = |d: &Digest| d.as_str().as_bytes().to_vec();
    let mut files = vec![(
        format!("{v2}/_manifests/tags/{tag}/current/link"),
        link(&img.index.0),
    )];
    for (d, _) in std::iter::once(&img.index).chain(&img.manifests) {
        files.push((
            format!("{v2}/_manifests/revisions/sha256/{}/link", d.hex()),
            link(d),
        ));
    }
    for (d, _) in &img.blobs {
        files.push((format!("{v2}/_layers/sha256/{}/link", d.hex()), link(d)));
    }
    for (d, b) in std::iter::once(&img.index)
        .chain(&img.manifests)
        .chain(&img.blobs)
    {
        files.push((distribution::blob_path(root, d), b.clone()));
    }
    files
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Form {
    Tar,
    Tgz,
    Zst,
    Dir,
}

pub(crate) const FORMS: [Form; 4] = [Form::Tar, Form::Tgz, Form::Zst, Form::Dir];

pub(crate) fn tar_bytes(files: &Files) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

pub(crate) fn compress(form: Form, tar: Vec<u8>) -> Vec<u8> {
    match form {
        Form::Tgz => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&tar).unwrap();
            e.finish().unwrap()
        }
        Form::Zst => zstd::encode_all(tar.as_slice(), 1).unwrap(),
        _ => tar,
    }
}

pub(crate) fn write(dir: &Path, name: &str, form: Form, files: &Files) -> PathBuf {
    let path = dir.join(match form {
        Form::Tar => format!("{name}.tar"),
        Form::Tgz => format!("{name}.tgz"),
        Form::Zst => format!("{name}.tar.zst"),
        Form::Dir => name.to_string(),
    });
    if let Form::Dir = form {
        for (n, d) in files {
            let p = path.join(n);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, d).unwrap();
        }
    } else {
        std::fs::write(&path, compress(form, tar_bytes(files))).unwrap();
    }
    path
}

/// A tar entry with a raw name / type / link, bypassing the builder's own path checks.
fn raw_tar(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, ty, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(*ty);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn both_stores() -> (Image2, Image2, Files) {
    let a = multiarch("a");
    let b = multiarch("b");
    let mut files = oci_files("images/app/", &a, "v1");
    files.extend(distribution_files(
        "registry/",
        &b,
        "acp/topolvm-operator",
        "v2.3.0",
    ));
    files.push((
        "violet.yaml".into(),
        b"artifact: build.example.com/acp/topolvm-operator:v2.3.0\n".to_vec(),
    ));
    (a, b, files)
}

#[test]
fn every_form_gives_the_same_images() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, files) = both_stores();
    let mut seen = Vec::new();
    for form in FORMS {
        let pkg = open_test(&write(tmp.path(), "pkg", form, &files)).unwrap();
        assert_eq!(pkg.stores.len(), 2, "{form:?}");
        assert_eq!(pkg.images.len(), 2);
        let oci = &pkg.images[0];
        assert_eq!(oci.reference.to_string(), "app:v1");
        assert_eq!(oci.digest, a.index.0);
        assert_eq!(oci.platforms, ["linux/amd64", "linux/arm64/v8"]);
        assert_eq!(oci.manifests.last(), Some(&a.index.0));
        assert_eq!(oci.manifests.len(), 3);
        assert_eq!(oci.blobs.len(), 6);
        let dist = &pkg.images[1];
        assert_eq!(
            dist.reference.to_string(),
            "build.example.com/acp/topolvm-operator:v2.3.0"
        );
        assert_eq!(dist.digest, b.index.0);
        assert_eq!(pkg.blobs.len(), 12);
        assert_eq!(pkg.manifests.len(), 6);
        assert!(pkg.warnings.is_empty(), "{:?}", pkg.warnings);
        let m = &pkg.manifests[&a.manifests[0].0];
        assert_eq!(m.bytes.as_ref(), a.manifests[0].1.as_slice());
        let offsets = pkg.blobs.values().all(|b| b.location.offset.is_some());
        assert_eq!(offsets, matches!(form, Form::Tar), "{form:?}");
        seen.push(
            pkg.images
                .iter()
                .map(|i| (i.digest.clone(), i.blobs.clone(), i.size))
                .collect::<Vec<_>>(),
        );
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn oci_ref_name_forms() {
    let tmp = tempfile::tempdir().unwrap();
    let a = multiarch("a");
    let files = oci_files("", &a, "registry.example.com/acp/app:v1");
    let pkg = open_test(&write(tmp.path(), "full", Form::Dir, &files)).unwrap();
    assert_eq!(
        pkg.images[0].reference.registry.as_deref(),
        Some("registry.example.com")
    );
    assert_eq!(pkg.images[0].reference.repository, "acp/app");
    let files = oci_files("", &a, "v1");
    let pkg = open_test(&write(tmp.path(), "myimage", Form::Tar, &files)).unwrap();
    assert_eq!(pkg.images[0].reference.to_string(), "myimage:v1");
}

#[test]
fn lightweight_package_has_no_images() {
    let tmp = tempfile::tempdir().unwrap();
    let files = vec![
        ("violet.yaml".to_string(), b"name: x\n".to_vec()),
        ("chart/Chart.yaml".into(), b"name: x\n".to_vec()),
    ];
    let pkg = open_test(&write(tmp.path(), "light", Form::Tgz, &files)).unwrap();
    assert!(pkg.images.is_empty() && pkg.stores.is_empty());
    assert_eq!(pkg.metadata_source, MetadataSource::File);
}

fn expect_err(path: &Path) -> PackageError {
    match open_test(path) {
        Ok(_) => panic!("{} opened but should not", path.display()),
        Err(e) => e,
    }
}

#[test]
fn not_an_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("notes.tgz");
    std::fs::write(&p, "just text").unwrap();
    let e = expect_err(&p);
    assert!(matches!(e, PackageError::NotAnArchive { .. }), "{e}");
    assert!(e.to_string().contains("notes.tgz"));
    assert!(matches!(
        expect_err(&tmp.path().join("absent.tgz")),
        PackageError::NotFound { .. }
    ));
}

#[test]
fn truncated_gzip_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, files) = both_stores();
    let p = write(tmp.path(), "cut", Form::Tgz, &files);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = expect_err(&p);
    assert!(
        matches!(e, PackageError::Corrupt { entry: Some(_), .. }),
        "{e}"
    );
    assert!(e.to_string().contains("cut.tgz"), "{e}");
}

#[test]
fn truncated_zstd_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, files) = both_stores();
    let p = write(tmp.path(), "cut", Form::Zst, &files);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() * 2 / 3]).unwrap();
    assert!(matches!(expect_err(&p), PackageError::Corrupt { .. }));
}

#[test]
fn truncated_tar_is_corrupt_naming_the_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, files) = both_stores();
    let p = write(tmp.path(), "cut", Form::Tar, &files);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 4000]).unwrap();
    let e = expect_err(&p);
    match &e {
        PackageError::Corrupt {
            entry: Some(entry), ..
        } => assert!(entry.contains("blobs/sha256"), "{e}"),
        _ => panic!("{e}"),
    }
}

#[test]
fn unsafe_entries_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, tar::EntryType, &str); 5] = [
        ("/etc/passwd", tar::EntryType::Regular, ""),
        ("a/../../evil", tar::EntryType::Regular, ""),
        ("a/link", tar::EntryType::Symlink, "../../etc/shadow"),
        ("hard", tar::EntryType::Link, "/etc/passwd"),
        ("dev/null", tar::EntryType::Char, ""),
    ];
    for (i, (name, ty, link)) in cases.into_iter().enumerate() {
        let p = tmp.path().join(format!("bad{i}.tar"));
        std::fs::write(
            &p,
            raw_tar(&[
                ("ok", tar::EntryType::Regular, "", b"x"),
                (name, ty, link, b""),
            ]),
        )
        .unwrap();
        let e = expect_err(&p);
        assert!(matches!(e, PackageError::UnsafeEntry { .. }), "{name}: {e}");
        assert!(e.to_string().contains(name.trim_start_matches('/')), "{e}");
    }
    // A link that stays inside is fine.
    let p = tmp.path().join("fine.tar");
    std::fs::write(
        &p,
        raw_tar(&[
            ("a/b", tar::EntryType::Regular, "", b"x"),
            ("a/c", tar::EntryType::Symlink, "b", b""),
        ]),
    )
    .unwrap();
    open_test(&p).unwrap();
}

#[test]
fn escaping_symlink_in_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pkg");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("violet.yaml"), "name: x\n").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", dir.join("leak")).unwrap();
    assert!(matches!(expect_err(&dir), PackageError::UnsafeEntry { .. }));
}

#[test]
fn duplicate_entries_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("dup.tar");
    std::fs::write(
        &p,
        raw_tar(&[
            ("./a/x", tar::EntryType::Regular, "", b"1"),
            ("a/x", tar::EntryType::Regular, "", b"2"),
        ]),
    )
    .unwrap();
    let e = expect_err(&p);
    assert!(matches!(e, PackageError::DuplicateEntry { .. }), "{e}");
    assert!(e.to_string().contains("a/x"));
}

#[test]
fn manifest_digest_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let a = multiarch("a");
    let mut files = oci_files("", &a, "v1");
    let target = oci_layout::blob_path("", &a.manifests[1].0);
    let f = files.iter_mut().find(|(n, _)| *n == target).unwrap();
    f.1 = String::from_utf8(f.1.clone())
        .unwrap()
        .replace("\"schemaVersion\":2", "\"schemaVersion\":3")
        .into_bytes();
    let e = expect_err(&write(tmp.path(), "m", Form::Tgz, &files));
    assert!(matches!(e, PackageError::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains(a.manifests[1].0.hex()), "{e}");
}

#[test]
fn missing_blob_names_image_and_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let b = multiarch("b");
    let mut files = distribution_files("", &b, "acp/x", "v1");
    let gone = distribution::blob_path("", &b.blobs[2].0);
    files.retain(|(n, _)| *n != gone);
    let e = expect_err(&write(tmp.path(), "m", Form::Tar, &files));
    assert!(matches!(e, PackageError::MissingBlob { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("acp/x:v1") && msg.contains(b.blobs[2].0.as_str()),
        "{msg}"
    );
}

#[test]
fn blob_size_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let a = multiarch("a");
    let mut files = oci_files("", &a, "v1");
    let target = oci_layout::blob_path("", &a.blobs[1].0);
    files
        .iter_mut()
        .find(|(n, _)| *n == target)
        .unwrap()
        .1
        .push(0);
    let e = expect_err(&write(tmp.path(), "m", Form::Dir, &files));
    assert!(matches!(e, PackageError::SizeMismatch { .. }), "{e}");
    assert!(e.to_string().contains(a.blobs[1].0.hex()));
}

#[test]
fn oversized_index_json() {
    let tmp = tempfile::tempdir().unwrap();
    let files = vec![
        ("oci-layout".to_string(), b"{}".to_vec()),
        ("index.json".into(), vec![b' '; (4 << 20) + 1]),
    ];
    let e = expect_err(&write(tmp.path(), "big", Form::Tgz, &files));
    assert!(matches!(e, PackageError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("index.json"));
}

#[test]
fn invalid_index_json() {
    let tmp = tempfile::tempdir().unwrap();
    let files = vec![
        ("oci-layout".to_string(), b"{}".to_vec()),
        ("index.json".into(), b"{not json".to_vec()),
    ];
    let e = expect_err(&write(tmp.path(), "bad", Form::Tar, &files));
    assert!(matches!(e, PackageError::BadManifest { .. }), "{e}");
    assert!(e.to_string().contains("index.json"));
}

/// A core package: its own store plus plugin packages as entries.
pub(crate) fn core_files(plugin_form: Form) -> (Files, Image2) {
    let p = multiarch("plugin");
    let plugin = compress(plugin_form, tar_bytes(&oci_files("", &p, "v1")));
    let ext = if let Form::Tar = plugin_form {
        "tar"
    } else {
        "tgz"
    };
    let mut files = vec![("violet.yaml".to_string(), b"type: core\n".to_vec())];
    files.extend(oci_files("images/", &multiarch("core"), "v1"));
    files.push((format!("installer/plugins/p.{ext}"), plugin));
    files.push((
        "installer/plugins/readme.tar".into(),
        b"not an archive".to_vec(),
    ));
    (files, p)
}

#[test]
fn nested_core_package() {
    let tmp = tempfile::tempdir().unwrap();
    for (outer, inner) in [
        (Form::Tar, Form::Tar),
        (Form::Tgz, Form::Tar),
        (Form::Tar, Form::Tgz),
        (Form::Dir, Form::Tar),
    ] {
        let (files, p) = core_files(inner);
        let path = write(
            tmp.path(),
            &format!("core-{outer:?}-{inner:?}"),
            outer,
            &files,
        );
        let pkg = open_test(&path).unwrap();
        assert_eq!(pkg.images.len(), 1);
        assert_eq!(pkg.children.len(), 1, "{outer:?}/{inner:?}");
        let child = &pkg.children[0];
        assert_eq!(child.nest.len(), 1);
        assert!(child.nest[0].starts_with("installer/plugins/p."));
        assert_eq!(child.images[0].digest, p.index.0);
        assert_eq!(child.blobs.len(), 6);
        let random = matches!((outer, inner), (Form::Tar | Form::Dir, Form::Tar));
        assert_eq!(
            child.blobs.values().all(|b| b.location.offset.is_some()),
            random,
            "{outer:?}/{inner:?}"
        );
        assert!(
            pkg.warnings.iter().any(|w| w.contains("readme.tar")),
            "{:?}",
            pkg.warnings
        );
    }
}

#[test]
fn is_package_by_content() {
    let tmp = tempfile::tempdir().unwrap();
    let a = multiarch("a");
    write(tmp.path(), "b", Form::Tgz, &oci_files("", &a, "v1"));
    write(tmp.path(), "a", Form::Dir, &oci_files("", &a, "v1"));
    std::fs::write(tmp.path().join("notes.txt"), "x").unwrap();
    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    assert!(is_package(&tmp.path().join("a")));
    assert!(is_package(&tmp.path().join("b.tgz")));
    assert!(!is_package(&tmp.path().join("notes.txt")));
    assert!(!is_package(tmp.path()));
}

#[test]
fn a_nested_manifests_first_package_stops_early_only_where_it_can_be_reached_again() {
    let tmp = tempfile::tempdir().unwrap();
    let p = multiarch("plugin");
    let mut inner = vec![(
        "violet.yaml".to_string(),
        b"type: plugin\nmanifestsFirst: true\n".to_vec(),
    )];
    inner.extend(oci_files("", &p, "v1"));
    // Garbage after the manifests: only a reader that stopped early opens this.
    let mut plugin = compress(Form::Tgz, tar_bytes(&inner));
    plugin.truncate(plugin.len() - 200);
    let mut files = vec![("violet.yaml".to_string(), b"type: core\n".to_vec())];
    files.extend(oci_files("images/", &multiarch("core"), "v1"));
    files.push(("installer/plugins/p.tgz".into(), plugin));
    for outer in [Form::Tar, Form::Dir] {
        let path = write(tmp.path(), &format!("core-{outer:?}"), outer, &files);
        let pkg = open_test(&path).unwrap();
        let child = &pkg.children[0];
        assert!(!child.read_whole, "{outer:?}");
        assert_eq!(child.images[0].digest, p.index.0);
        assert_eq!(child.blobs.len(), 6);
        assert!(pkg.read_whole);
    }
    // Inside a .tgz the nested package is read to its end at once: the cut is found.
    let path = write(tmp.path(), "core-tgz", Form::Tgz, &files);
    assert!(matches!(expect_err(&path), PackageError::Corrupt { .. }));
}

#[test]
fn manifests_first_stops_early() {
    let tmp = tempfile::tempdir().unwrap();
    let a = multiarch("a");
    let mut files = vec![(
        "violet.yaml".to_string(),
        b"manifestsFirst: true\n".to_vec(),
    )];
    files.extend(oci_files("", &a, "v1"));
    let p = write(tmp.path(), "early", Form::Tgz, &files);
    // Garbage after the manifests: only a reader that stopped early opens this.
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.truncate(bytes.len() - 200);
    std::fs::write(&p, &bytes).unwrap();
    let pkg = open_test(&p).unwrap();
    assert_eq!(pkg.images[0].blobs.len(), 6);
    assert!(pkg.blobs.values().all(|b| b.location.offset.is_none()));
    // Without the flag the same file is refused.
    files[0].1 = b"name: x\n".to_vec();
    let p2 = write(tmp.path(), "late", Form::Tgz, &files);
    let mut bytes = std::fs::read(&p2).unwrap();
    bytes.truncate(bytes.len() - 200);
    std::fs::write(&p2, &bytes).unwrap();
    assert!(matches!(expect_err(&p2), PackageError::Corrupt { .. }));
}
