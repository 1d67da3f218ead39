//! Differential packages end to end (#14): `violet inventory` of a real registry, `violet package
//! --base` leaving out the layers the site holds, and `violet push`'s preflight, which refuses a
//! registry without the base before any upload. skopeo is the independent check of the digests.

use std::path::{Path, PathBuf};

use crate::support::TestContext;
use crate::support::packages::{
    Container, NO_TLS, PLAIN, PackageType, StoreKind, SynthImage, SynthPackage, SynthSpec,
};
use crate::support::proxy::{Fault, FaultProxy, Rule};
use crate::support::registry::{Auth, PASSWORD, Registry, RegistryOptions, USER};
use crate::support::skopeo::skopeo_inspect_raw_digest;

/// Bytes of each layer's content: big enough that the carried layers dominate a package.
const LAYER: u64 = 256 * 1024;

/// `acp/demo:<tag>` (two platforms, `layers` layers each): every version shares its first layers
/// with the one before (layer content depends on the repository and index, not the tag).
fn version(ctx: &TestContext, dir: &str, tag: &str, layers: usize) -> SynthPackage {
    let mut spec = SynthSpec::new(dir, PackageType::Plugin);
    spec.container = Container::TarGz;
    spec.store = StoreKind::Distribution;
    spec.version = tag.into();
    let mut image = SynthImage::new("acp/demo", tag);
    image.layers = layers;
    image.layer_size = LAYER;
    spec.images = vec![image];
    ctx.write_package(dir, &spec)
}

/// A package source directory (what `violet create --skip-package-images` writes) naming
/// `acp/demo:<tag>` at `source`.
fn source_dir(ctx: &TestContext, name: &str, source: &str, tag: &str) -> PathBuf {
    let dir = ctx.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("violet.yaml"),
        format!("name: demo\ntype: plugin\nversion: {tag}\nartifact: {source}/acp/demo:{tag}\n"),
    )
    .unwrap();
    dir
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

struct Site {
    ctx: TestContext,
    /// Where the connected side pulls from: v1, v2 (one more layer) and v3 (two more).
    source: Registry,
    v1: SynthPackage,
    v2: SynthPackage,
    v3: SynthPackage,
}

fn site() -> Site {
    let ctx = TestContext::new();
    let source = Registry::plain();
    let v1 = version(&ctx, "v1", "v1.0.0", 2);
    let v2 = version(&ctx, "v2", "v2.0.0", 3);
    let v3 = version(&ctx, "v3", "v3.0.0", 4);
    for p in [&v1, &v2, &v3] {
        ctx.push(&p.path, &[&source.host()], PLAIN).success();
    }
    Site {
        ctx,
        source,
        v1,
        v2,
        v3,
    }
}

impl Site {
    /// `violet package` of `acp/demo:<tag>` from the source registry, with `extra` flags.
    fn package(&self, tag: &str, out: &str, extra: &[&str]) -> (PathBuf, serde_json::Value) {
        let dir = source_dir(&self.ctx, &format!("src-{out}"), &self.source.host(), tag);
        let file = self.ctx.file(out);
        let mut args = vec!["package".to_string(), s(&dir), "--output".into(), s(&file)];
        args.extend(["--plain", "--no-auth", "--format", "json"].map(String::from));
        args.extend(extra.iter().map(|a| a.to_string()));
        let report = self.ctx.run(args).success().json();
        (file, report)
    }

    fn inventory(&self, registry: &Registry, out: &str, extra: &[&str]) -> PathBuf {
        let file = self.ctx.file(out);
        let mut args = vec![
            "inventory".to_string(),
            "--dest-repo".into(),
            registry.host(),
            "-o".into(),
            s(&file),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        self.ctx.run(args).success();
        file
    }
}

fn digest_at(ctx: &TestContext, registry: &Registry, tag: &str) -> violet::digest::Digest {
    skopeo_inspect_raw_digest(
        ctx,
        &format!("docker://{}/acp/demo:{tag}", registry.host()),
        NO_TLS,
    )
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

#[test]
fn differential_package_against_an_inventory_carries_only_the_new_layers_and_lands_whole() {
    let site = site();
    let ctx = &site.ctx;
    let dest = Registry::plain();
    ctx.push(&site.v1.path, &[&dest.host()], PLAIN).success();

    let inv = site.inventory(&dest, "site.json", PLAIN);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&inv).unwrap()).unwrap();
    assert_eq!(doc["formatVersion"], 1);
    assert_eq!(doc["listedFrom"], "catalog");
    assert_eq!(doc["repositories"][0]["name"], "acp/demo");
    assert_eq!(doc["repositories"][0]["tags"][0]["tag"], "v1.0.0");
    assert_eq!(
        doc["repositories"][0]["tags"][0]["digest"],
        site.v1.images[0].1.as_str()
    );
    // 2 platforms x (config + 2 layers).
    assert_eq!(doc["repositories"][0]["blobs"].as_array().unwrap().len(), 6);
    assert!(doc["digest"].as_str().unwrap().starts_with("sha256:"));

    let (full, _) = site.package("v2.0.0", "v2-full.tgz", &[]);
    let inv_s = s(&inv);
    let (diff, report) = site.package("v2.0.0", "v2-diff.tgz", &["--base", &inv_s]);
    assert_eq!(report["differential"]["against"], "inventory");
    assert_eq!(report["differential"]["baseDigest"], doc["digest"]);
    // The two shared layers of each platform stay at the site.
    assert_eq!(report["differential"]["expectedBlobs"], 4);
    // Carried: the new layer and the config of each platform.
    assert_eq!(report["blobs"], 4);
    let (full_size, diff_size) = (file_size(&full), file_size(&diff));
    // At most the changed bytes (2 new layers, incompressible) plus manifests, configs, metadata.
    assert!(
        diff_size < 2 * (LAYER + 4096) + 64 * 1024,
        "differential package is {diff_size} bytes (full {full_size})"
    );
    assert!(diff_size * 2 < full_size, "{diff_size} vs {full_size}");

    // show and verify know what it is.
    let diff_s = s(&diff);
    let show = ctx.run(["show", &diff_s]).success();
    assert!(
        show.stdout
            .contains("Differential: against inventory site.json"),
        "{}",
        show.stdout
    );
    let verify = ctx.run(["verify", &diff_s]).success();
    assert!(
        verify
            .all()
            .contains("4 blobs (1.0 MiB) expected at the site"),
        "{}",
        verify.all()
    );

    // The push checks the base, then lands every v2 image with the full package's digests.
    let out = ctx.push(&diff, &[&dest.host()], PLAIN).success();
    assert!(
        out.all()
            .contains("blob(s) differential packages expect are there"),
        "{}",
        out.all()
    );
    assert_eq!(digest_at(ctx, &dest, "v2.0.0"), site.v2.images[0].1);
    assert_eq!(digest_at(ctx, &dest, "v1.0.0"), site.v1.images[0].1);
    let full_json = ctx.run(["show", &s(&full), "-o", "json"]).success().json();
    assert!(full_json.to_string().contains(site.v2.images[0].1.as_str()));
    // A rerun changes nothing.
    let again = ctx
        .push(
            &diff,
            &[&dest.host()],
            &["--plain", "--no-auth", "-o", "json"],
        )
        .success();
    assert_eq!(
        again.json()["images"][0]["result"],
        "unchanged",
        "{}",
        again.stdout
    );
}

#[test]
fn a_registry_without_the_base_is_refused_before_any_upload() {
    let site = site();
    let ctx = &site.ctx;
    let dest = Registry::plain();
    ctx.push(&site.v1.path, &[&dest.host()], PLAIN).success();
    let inv = site.inventory(&dest, "site.json", PLAIN);
    let (diff, _) = site.package("v2.0.0", "v2-diff.tgz", &["--base", &s(&inv)]);

    // An empty registry: exit 7, the first missing digests with their image, the base named,
    // and not one upload started.
    let empty = Registry::plain();
    let proxy = FaultProxy::start(&empty.host());
    let out = ctx.push(&diff, &[&proxy.host()], PLAIN);
    assert_eq!(out.code, 7, "{}", out.all());
    let err = out.error();
    assert!(err.contains("differential package expects"), "{err}");
    assert!(
        err.contains("built against inventory site.json (sha256:"),
        "{err}"
    );
    assert!(err.contains("acp/demo:v2.0.0"), "{err}");
    assert!(err.contains("hint: nothing was uploaded"), "{err}");
    // The inventory's digest covers the registry's port: filtered.
    snap!(
        ctx,
        "refused_empty_registry",
        out.streams(),
        [(r"\(sha256:[0-9a-f]{64}\)", "(sha256:[base])")]
    );
    assert_eq!(proxy.count(Some("POST"), "/blobs/uploads"), 0);
    assert_eq!(proxy.count(Some("PUT"), ".*"), 0);
    assert_eq!(proxy.count(Some("PATCH"), ".*"), 0);

    // A registry that held the base once but lost one of its blobs since the inventory: the
    // preflight catches it (the inventory is not trusted to be fresh).
    let data = dest
        .storage_dir()
        .join("docker/registry/v2/repositories/acp/demo/_layers/sha256");
    let gone = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|hex| {
            let doc = std::fs::read_to_string(&inv).unwrap();
            // A layer the package leaves at the site (not a config, not a manifest).
            let diff_meta = ctx.run(["show", &s(&diff), "-o", "json"]).success().stdout;
            doc.contains(hex.as_str())
                && diff_meta.contains(&format!("sha256:{hex}"))
                && !std::fs::read_to_string(dest.storage_dir().join(format!(
                    "docker/registry/v2/blobs/sha256/{}/{hex}/data",
                    &hex[..2]
                )))
                .is_ok_and(|t| t.starts_with('{'))
        })
        .expect("an expected layer in the registry");
    std::fs::remove_dir_all(data.join(&gone)).unwrap();
    let mut dest = dest;
    dest.restart();
    let (uploads, puts) = (
        dest.requests("POST", "/blobs/uploads"),
        dest.requests("PUT", "/manifests/"),
    );
    let out = ctx.push(&diff, &[&dest.host()], PLAIN);
    assert_eq!(out.code, 7, "{}", out.all());
    assert!(
        out.error().contains(&format!("sha256:{gone} (")),
        "{}",
        out.error()
    );
    assert_eq!(dest.requests("POST", "/blobs/uploads"), uploads);
    assert_eq!(dest.requests("PUT", "/manifests/"), puts);
}

#[test]
fn a_repush_checks_no_expected_blob_of_an_image_already_there() {
    let site = site();
    let ctx = &site.ctx;
    let dest = Registry::plain();
    ctx.push(&site.v1.path, &[&dest.host()], PLAIN).success();
    let inv = site.inventory(&dest, "site.json", PLAIN);
    let (diff, _) = site.package("v2.0.0", "v2-diff.tgz", &["--base", &s(&inv)]);
    ctx.push(&diff, &[&dest.host()], PLAIN).success();

    // acp/demo:v2.0.0 is at its digest: the registry accepted its manifests, so it holds the
    // blobs they name. The rerun asks for the tag only, neither the preflight nor the scheduler
    // HEADs a blob.
    let proxy = FaultProxy::start(&dest.host());
    let again = ctx
        .push(
            &diff,
            &[&proxy.host()],
            &["--plain", "--no-auth", "-o", "json"],
        )
        .success();
    assert_eq!(again.json()["images"][0]["result"], "unchanged");
    assert_eq!(
        proxy.count(Some("HEAD"), "/blobs/"),
        0,
        "{:?}",
        proxy.requests()
    );
    assert_eq!(proxy.count(Some("HEAD"), "/manifests/"), 1);

    // --verify-existing trusts no tag: the 4 expected blobs are checked by the preflight, and
    // every blob of the image by the scheduler: the 4 expected ones by a HEAD, the 4 the package
    // carries (small) by their upload, which asks first (a mount from acp/demo itself, 201:
    // nothing sent).
    proxy.reset_counts();
    let verified = ctx
        .push(
            &diff,
            &[&proxy.host()],
            &["--plain", "--no-auth", "--verify-existing"],
        )
        .success();
    assert!(
        verified
            .all()
            .contains("the 4 blob(s) differential packages expect are there (0 mounted)"),
        "{}",
        verified.all()
    );
    assert_eq!(
        proxy.count(Some("HEAD"), "/blobs/"),
        4 + 4,
        "{:?}",
        proxy.requests()
    );
    assert_eq!(
        proxy.count(Some("POST"), "/blobs/uploads/$"),
        4,
        "{:?}",
        proxy.requests()
    );
    assert_eq!(proxy.count(Some("PUT"), "/blobs/"), 0);
}

#[test]
fn a_differential_package_is_the_base_of_the_next_one() {
    let site = site();
    let ctx = &site.ctx;
    let dest = Registry::plain();
    ctx.push(&site.v1.path, &[&dest.host()], PLAIN).success();
    let inv = site.inventory(&dest, "site.json", PLAIN);
    let (v2, _) = site.package("v2.0.0", "v2-diff.tgz", &["--base", &s(&inv)]);
    // v3 against the v2 package: the v1 layers v2 expects and the layer v2 carries stay out.
    let (v3, report) = site.package("v3.0.0", "v3-diff.tgz", &["--base", &s(&v2)]);
    assert_eq!(report["differential"]["against"], "package");
    assert_eq!(report["differential"]["expectedBlobs"], 6);
    assert_eq!(report["blobs"], 4, "{report:#}");
    // v3 before v2 is refused; after it, it lands whole.
    let out = ctx.push(&v3, &[&dest.host()], PLAIN);
    assert_eq!(out.code, 7, "{}", out.all());
    ctx.push(&v2, &[&dest.host()], PLAIN).success();
    ctx.push(&v3, &[&dest.host()], PLAIN).success();
    assert_eq!(digest_at(ctx, &dest, "v3.0.0"), site.v3.images[0].1);
}

#[test]
fn inventory_of_an_htpasswd_tls_registry_and_one_without_a_catalog() {
    let site = site();
    let ctx = &site.ctx;
    let secure = Registry::start(RegistryOptions {
        tls: true,
        auth: Auth::Htpasswd,
        ..Default::default()
    });
    let ca = s(&secure.ca_file().unwrap());
    let access = ["--username", USER, "--password", PASSWORD, "--ca-file", &ca];
    ctx.push(&site.v1.path, &[&secure.host()], &access)
        .success();
    let inv = site.inventory(&secure, "secure.yaml", &access);
    let text = std::fs::read_to_string(&inv).unwrap();
    assert!(text.contains("kind: Inventory"), "{text}");
    assert!(text.contains(site.v1.images[0].1.as_str()), "{text}");
    assert!(!text.contains(PASSWORD));

    // The catalog API refused (as registries that hide it do): say what to do instead.
    let plain = Registry::plain();
    ctx.push(&site.v1.path, &[&plain.host()], PLAIN).success();
    let proxy = FaultProxy::start(&plain.host());
    proxy.inject(Rule::new(Some("GET"), "^/v2/_catalog$", Fault::Status(404)).times(100));
    let out = ctx.run([
        "inventory",
        "--dest-repo",
        &proxy.host(),
        "--plain",
        "--no-auth",
    ]);
    assert_eq!(out.code, 7, "{}", out.all());
    assert!(
        out.error().contains("does not list its repositories"),
        "{}",
        out.error()
    );
    assert!(out.error().contains("--repos"), "{}", out.error());
    snap!(ctx, "inventory_without_catalog", out.streams());
    let by_repo = site.inventory_via(&proxy.host(), "repos.json", &["--repos", "acp/demo"]);
    let by_pkg = site.inventory_via(&proxy.host(), "for.json", &["--for", &s(&site.v1.path)]);
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    assert_eq!(
        read(&by_repo)["repositories"],
        read(&by_pkg)["repositories"]
    );
    assert_eq!(
        read(&by_repo)["repositories"][0]["tags"][0]["digest"],
        site.v1.images[0].1.as_str()
    );

    // An edited inventory is refused as a base.
    let mut doc = read(&by_repo);
    doc["repositories"][0]["blobs"][0]["size"] = serde_json::json!(1);
    let edited = ctx.file("edited.json");
    std::fs::write(&edited, serde_json::to_vec(&doc).unwrap()).unwrap();
    let dir = source_dir(ctx, "src-edited", &site.source.host(), "v2.0.0");
    let out = ctx.run([
        "package",
        &s(&dir),
        "--output",
        &s(&ctx.file("x.tgz")),
        "--plain",
        "--no-auth",
        "--base",
        &s(&edited),
    ]);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(
        out.error().contains("edited or cut short"),
        "{}",
        out.error()
    );
}

impl Site {
    fn inventory_via(&self, host: &str, out: &str, extra: &[&str]) -> PathBuf {
        let file = self.ctx.file(out);
        let mut args = vec![
            "inventory",
            "--dest-repo",
            host,
            "--plain",
            "--no-auth",
            "-o",
        ];
        let f = s(&file);
        args.push(&f);
        args.extend_from_slice(extra);
        self.ctx.run(args).success();
        file
    }
}

#[test]
fn a_store_may_lack_only_the_blobs_its_metadata_declares_expected() {
    let ctx = TestContext::new();
    let mut spec = SynthSpec::new("lean", PackageType::Plugin);
    spec.container = Container::Directory;
    spec.store = StoreKind::OciLayout;
    spec.images = vec![SynthImage::new("acp/lean", "v1.0.0")];
    let pkg = ctx.write_package("lean", &spec);
    let dir = s(&pkg.path);
    // A layer of the first manifest: the last of the blobs the package lists as layers.
    let show = ctx.run(["show", &dir, "-o", "json"]).success().json();
    let manifests = show["manifests"].as_object().unwrap();
    let layer = manifests
        .values()
        .find_map(|m| {
            m["blobs"]
                .as_array()
                .filter(|b| b.len() > 1)
                .map(|b| b[1].clone())
        })
        .unwrap();
    let layer = layer.as_str().unwrap().to_string();
    let size = show["blobs"][&layer]["size"].as_u64().unwrap();
    std::fs::remove_file(pkg.path.join(format!("blobs/sha256/{}", &layer[7..]))).unwrap();

    // Not declared: malformed, as before.
    let out = ctx.run(["show", &dir]);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(out.error().contains(&layer), "{}", out.error());

    let meta = std::fs::read_to_string(pkg.path.join("violet.yaml")).unwrap();
    let declare = |size: u64| {
        let base = format!("sha256:{}", "a".repeat(64));
        std::fs::write(
            pkg.path.join("violet.yaml"),
            format!(
                "{meta}differential:\n  against: inventory\n  base: site.json\n  baseDigest: {base}\n  expected:\n  - digest: {layer}\n    size: {size}\n"
            ),
        )
        .unwrap();
    };
    // Declared with another size: malformed.
    declare(size + 1);
    let out = ctx.run(["show", &dir]);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(
        out.error().contains("differential.expected"),
        "{}",
        out.error()
    );
    // Declared: external, and verify reports it so.
    declare(size);
    let out = ctx.run(["show", &dir]).success();
    assert!(out.stdout.contains("expects 1 blobs"), "{}", out.stdout);
    let out = ctx.run(["verify", &dir]).success();
    assert!(out.stdout.contains("1 blobs ("), "{}", out.stdout);
}

#[test]
fn create_base_writes_a_differential_directory_that_packages_and_pushes_whole() {
    let site = site();
    let ctx = &site.ctx;
    let dest = Registry::plain();
    ctx.push(&site.v1.path, &[&dest.host()], PLAIN).success();
    let inv = site.inventory(&dest, "site.json", PLAIN);
    let src = site.source.host();
    let chart = format!("{src}/acp/chart-demo:0.2.0");
    crate::support::artifacts::push_chart(
        &crate::support::artifacts::plain(&src),
        "acp/chart-demo",
        "demo",
        "0.2.0",
        &[("server", "acp/demo", "v2.0.0")],
        true,
    );
    let dir = ctx.file("created");
    let dir_s = s(&dir);
    ctx.create_plain(&dir_s, &chart, &["--base", &s(&inv)])
        .success();
    // The directory's store lacks the shared layers, and says so.
    let show = ctx.run(["show", &dir_s, "-o", "json"]).success().json();
    assert_eq!(show["summary"]["expectedBlobs"], 4, "{show:#}");
    let pkg = ctx.file("demo.ALL.0.2.0.tgz");
    let report = ctx
        .run(["package", &dir_s, "--output", &s(&pkg), "--format", "json"])
        .success()
        .json();
    assert_eq!(report["differential"]["expectedBlobs"], 4, "{report:#}");
    ctx.push(&pkg, &[&dest.host()], PLAIN).success();
    assert_eq!(digest_at(ctx, &dest, "v2.0.0"), site.v2.images[0].1);
}

#[test]
fn every_destination_must_hold_the_base_before_any_of_them_gets_a_byte() {
    let site = site();
    let ctx = &site.ctx;
    let (a, b) = (Registry::plain(), Registry::plain());
    ctx.push(&site.v1.path, &[&a.host()], PLAIN).success();
    let inv = site.inventory(&a, "site.json", PLAIN);
    let (diff, _) = site.package("v2.0.0", "v2-diff.tgz", &["--base", &s(&inv)]);
    let puts = a.requests("PUT", "/manifests/");
    let out = ctx.push(&diff, &[&a.host(), &b.host()], PLAIN);
    assert_eq!(out.code, 7, "{}", out.all());
    assert!(
        out.error()
            .contains(&format!("destination {} lacks", b.host())),
        "{}",
        out.error()
    );
    // The destination that holds the base got nothing either.
    assert_eq!(a.requests("PUT", "/manifests/"), puts);
    assert_eq!(b.requests("POST", "/blobs/uploads"), 0);
    // With the base at both, the images land at both with the package's digests (parity).
    ctx.push(&site.v1.path, &[&b.host()], PLAIN).success();
    ctx.push(&diff, &[&a.host(), &b.host()], PLAIN).success();
    for r in [&a, &b] {
        assert_eq!(digest_at(ctx, r, "v2.0.0"), site.v2.images[0].1);
    }
}

#[test]
fn a_registry_the_connected_side_reaches_is_a_base_too() {
    let site = site();
    let ctx = &site.ctx;
    let dest = Registry::plain();
    ctx.push(&site.v1.path, &[&dest.host()], PLAIN).success();
    let base = format!("docker://{}", dest.host());
    let (diff, report) = site.package("v2.0.0", "v2-reg.tgz", &["--base", &base]);
    assert_eq!(report["differential"]["against"], "registry", "{report:#}");
    assert_eq!(report["differential"]["expectedBlobs"], 4);
    ctx.push(&diff, &[&dest.host()], PLAIN).success();
    assert_eq!(digest_at(ctx, &dest, "v2.0.0"), site.v2.images[0].1);
}

/// `mirror --from-package` of a differential package copies its images whole from the source
/// registry: the package names the images and pins their digests; the layers it leaves at the
/// site are read from the source like every other blob.
#[test]
fn mirror_from_a_differential_package_copies_whole_images() {
    let site = site();
    let ctx = &site.ctx;
    let dest = Registry::plain();
    ctx.push(&site.v1.path, &[&dest.host()], PLAIN).success();
    let inv = site.inventory(&dest, "site.json", PLAIN);
    let (diff, _) = site.package("v2.0.0", "v2-diff.tgz", &["--base", &s(&inv)]);
    let second = Registry::plain();
    let out = ctx
        .mirror_plain(
            &site.source.host(),
            &second.host(),
            &["--from-package", &s(&diff), "-o", "json"],
        )
        .success()
        .json();
    assert_eq!(out["parity"], true, "{out:#}");
    assert_eq!(digest_at(ctx, &second, "v2.0.0"), site.v2.images[0].1);
    // Every blob of the image is in the second registry, the ones the package leaves at the site
    // too: a full push of v2 checking every blob uploads nothing.
    let uploads = |r: &Registry| r.requests("PUT", "/blobs/uploads/");
    let before = uploads(&second);
    ctx.push(
        &site.v2.path,
        &[&second.host()],
        &["--plain", "--no-auth", "--verify-existing"],
    )
    .success();
    assert_eq!(uploads(&second), before);
}
