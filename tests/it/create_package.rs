//! `violet create` + `violet package` end to end: images in a real registry A, a bundle image
//! and an OCI Helm chart built the way opm/helm lay them out, packages written from them, read by
//! `violet show` and skopeo, and pushed to a real registry B with every digest unchanged.

use std::path::Path;

use crate::support::TestContext;
use crate::support::artifacts;
use crate::support::packages::{Container, NO_TLS, StoreKind};
use crate::support::proxy::{Fault, FaultProxy, Rule};
use crate::support::registry::{Auth, PASSWORD, Registry, RegistryOptions, USER};
use crate::support::skopeo::skopeo_inspect_raw_digest;

fn digest_in(ctx: &TestContext, host: &str, image: &str) -> String {
    skopeo_inspect_raw_digest(ctx, &format!("docker://{host}/{image}"), NO_TLS).to_string()
}

fn read_yaml(path: &Path) -> serde_json::Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The seeded images plus an operator bundle `acp/demo-operator-bundle:v1.2.0` whose CSV lists
/// one related image by tag and one pinned by digest (as CSVs usually pin them). Returns the
/// bundle reference, the related images and the pinned digest.
pub(crate) fn seed_bundle(ctx: &TestContext, a: &Registry) -> (String, Vec<String>, String) {
    ctx.seed_demo_images("seed", &a.host());
    let agent_digest = digest_in(ctx, &a.host(), "acp/demo-agent:v1.0.0");
    let related = vec![
        format!("{}/acp/demo:v1.0.0", a.host()),
        format!("{}/acp/demo-agent@{agent_digest}", a.host()),
    ];
    let bundle = format!("{}/acp/demo-operator-bundle:v1.2.0", a.host());
    artifacts::push_bundle(
        &artifacts::plain(&a.host()),
        "acp/demo-operator-bundle",
        "v1.2.0",
        "1.2.0",
        &related,
    );
    (bundle, related, agent_digest)
}

#[test]
fn operator_bundle_create_package_push_keeps_every_digest() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let b = Registry::plain();
    let (bundle, related, agent_digest) = seed_bundle(&ctx, &a);

    let dir = ctx.file("out");
    let dir_s = dir.display().to_string();
    let out = ctx
        .create_plain(
            &dir_s,
            &bundle,
            &[
                "--skip-package-images",
                "--default-catalog-source=platform",
                "-o",
                "json",
            ],
        )
        .success();
    let report = out.json();
    assert_eq!(report["type"], "bundle");
    assert_eq!(report["imagesWritten"], false);
    let meta = read_yaml(&dir.join("violet.yaml"));
    assert_eq!(meta["name"], "demo-operator");
    assert_eq!(meta["version"], "1.2.0");
    assert_eq!(meta["channels"], serde_json::json!(["stable"]));
    assert_eq!(meta["defaultCatalogSource"], "platform");
    assert_eq!(meta["artifact"], bundle.as_str());
    assert_eq!(meta["relatedImages"], serde_json::json!(related));
    assert_eq!(
        meta["architectures"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    assert_eq!(meta["operator"]["csvName"], "demo-operator.v1.2.0");
    assert_eq!(meta["operator"]["skipRange"], ">=1.0.0 <1.2.0");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "metadata only");

    // The package: default documented name in the working directory, with its checksum.
    let out = ctx
        .run([
            "package",
            &dir_s,
            "--plain",
            "--no-auth",
            "--format",
            "json",
        ])
        .success();
    let report = out.json();
    let pkg = ctx.path().join("demo-operator.stable.ALL.1.2.0.tgz");
    assert_eq!(ctx.path().join(report["path"].as_str().unwrap()), pkg);
    assert_eq!(report["images"], 3);
    assert_eq!(report["imagesFrom"], "registry");
    let sha = std::fs::read_to_string(ctx.path().join("demo-operator.stable.ALL.1.2.0.tgz.sha256"))
        .unwrap();
    assert_eq!(
        sha,
        format!(
            "{}  demo-operator.stable.ALL.1.2.0.tgz\n",
            violet::digest::Digest::of(&std::fs::read(&pkg).unwrap()).hex()
        )
    );
    let pkg_s = pkg.display().to_string();
    ctx.run(["verify", &pkg_s]).success();
    let show = ctx
        .run(["show", &pkg_s, "--all", "-o", "json"])
        .success()
        .json();
    assert_eq!(show["metadata"]["type"], "bundle", "{show:#}");

    // skopeo reads the package's image store as an OCI layout.
    let extracted = ctx.file("extracted");
    std::fs::create_dir_all(&extracted).unwrap();
    let status = std::process::Command::new("tar")
        .args(["xzf", &pkg_s, "-C", &extracted.display().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let layout = format!(
        "oci:{}:{}/acp/demo:v1.0.0",
        extracted.join("images").display(),
        a.host()
    );
    assert_eq!(
        skopeo_inspect_raw_digest(&ctx, &layout, &[]).to_string(),
        digest_in(&ctx, &a.host(), "acp/demo:v1.0.0")
    );

    // Pushed to B, every tag resolves to the digest it has in A.
    ctx.push(&pkg_s, &[&b.host()], &["--plain", "--no-auth"])
        .success();
    for image in [
        "acp/demo:v1.0.0",
        "acp/demo-operator-bundle:v1.2.0",
        &format!("acp/demo-agent@{agent_digest}"),
    ] {
        assert_eq!(
            digest_in(&ctx, &b.host(), image),
            digest_in(&ctx, &a.host(), image),
            "{image}"
        );
    }

    // What a user reads: the text reports of both commands.
    let created = ctx
        .create_plain(&dir_s, &bundle, &["--skip-package-images", "--force"])
        .success();
    let packaged = ctx
        .run([
            "package",
            &dir_s,
            "--output",
            "light.tar",
            "--skip-package-images",
            "--plain",
            "--no-auth",
        ])
        .success();
    let sizes = [
        (r"\b[0-9a-f]{64}\b", "[SHA256]"),
        (r"\d+(\.\d+)? (B|KiB|MiB)\b", "[SIZE]"),
    ];
    let [sha, size] = sizes;
    snap!(
        ctx,
        "bundle_text",
        format!("{}{}", created.stdout, created.stderr),
        [sha, size]
    );
    snap!(
        ctx,
        "package_light_text",
        format!("{}{}", packaged.stdout, packaged.stderr),
        [sha, size]
    );
    let light = ctx
        .run(["show", "light.tar", "--all", "-o", "json"])
        .success()
        .json();
    assert_eq!(light["summary"]["images"], 0, "{light:#}");
    assert_eq!(
        light["metadata"]["relatedImages"],
        serde_json::json!(related)
    );

    // Refusals: an existing package and a non-empty directory are never overwritten silently.
    let again = ctx.run(["package", &dir_s, "--plain", "--no-auth"]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    // "... already exists", hint --force.
    snap!(ctx, "package_exists", again.streams());
    let again = ctx.create_plain(&dir_s, &bundle, &[]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    // "... directory is not empty".
    snap!(ctx, "create_into_non_empty", again.streams());
}

#[test]
fn plugin_chart_images_come_from_global_images_under_the_chart_registry() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let b = Registry::plain();
    ctx.seed_demo_images("seed", &a.host());
    let chart = format!("{}/acp/chart-demo-plugin:0.3.0", a.host());
    artifacts::push_chart(
        &artifacts::plain(&a.host()),
        "acp/chart-demo-plugin",
        "demo-plugin",
        "0.3.0",
        &[
            ("agent", "acp/demo-agent", "v1.0.0"),
            ("server", "acp/demo", "v1.0.0"),
        ],
        true,
    );

    // Without --skip-package-images the directory carries the images and is a package itself.
    let dir = ctx.file("plugin");
    let dir_s = dir.display().to_string();
    let report = ctx
        .create_plain(&dir_s, &chart, &["-o", "json"])
        .success()
        .json();
    assert_eq!(report["type"], "plugin", "{report:#}");
    assert_eq!(report["name"], "demo-plugin");
    assert_eq!(
        report["relatedImages"],
        serde_json::json!([
            format!("{}/acp/demo-agent:v1.0.0", a.host()),
            format!("{}/acp/demo:v1.0.0", a.host())
        ])
    );
    let meta = read_yaml(&dir.join("violet.yaml"));
    assert_eq!(meta["modulePlugin"]["kind"], "ModulePlugin");
    assert_eq!(meta["displayName"], "Demo Plugin");
    assert!(dir.join("images/index.json").is_file());
    let show = ctx.run(["show", &dir_s, "-o", "json"]).success().json();
    assert_eq!(show["summary"]["images"], 3, "{show:#}");

    // package reads the directory's store (no registry needed: A is stopped).
    let pkg = ctx.file("demo-plugin.tar.zst");
    let pkg_s = pkg.display().to_string();
    drop(a);
    let report = ctx
        .run(["package", &dir_s, "--output", &pkg_s, "--format", "json"])
        .success()
        .json();
    assert_eq!(report["imagesFrom"], "directory");
    let show = ctx.run(["show", &pkg_s, "--all"]).success();
    assert!(show.stdout.contains("plugin"), "{}", show.stdout);
    ctx.push(&pkg_s, &[&b.host()], &["--plain", "--no-auth"])
        .success();
    let dir_digest = |image: &str| {
        skopeo_inspect_raw_digest(
            &ctx,
            &format!("oci:{}:{}", dir.join("images").display(), image),
            &[],
        )
        .to_string()
    };
    for repo_tag in [
        "acp/demo:v1.0.0",
        "acp/demo-agent:v1.0.0",
        "acp/chart-demo-plugin:0.3.0",
    ] {
        let source = report_host(&chart);
        assert_eq!(
            digest_in(&ctx, &b.host(), repo_tag),
            dir_digest(&format!("{source}/{repo_tag}")),
            "{repo_tag}"
        );
    }
}

#[test]
fn package_refuses_a_directory_blob_that_does_not_match_its_digest() {
    // `package DIR` reads the directory's store through the same digest-checked bodies as
    // `push`: a blob changed on disk (same size) ends the build, and no package is left behind.
    let ctx = TestContext::new();
    let a = Registry::plain();
    ctx.seed_demo_images("seed", &a.host());
    let chart = format!("{}/acp/chart-demo-plugin:0.3.0", a.host());
    artifacts::push_chart(
        &artifacts::plain(&a.host()),
        "acp/chart-demo-plugin",
        "demo-plugin",
        "0.3.0",
        &[("agent", "acp/demo-agent", "v1.0.0")],
        true,
    );
    let dir = ctx.file("plugin");
    let dir_s = dir.display().to_string();
    ctx.create_plain(&dir_s, &chart, &[]).success();
    let blobs = dir.join("images/blobs/sha256");
    let largest = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&largest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&largest, bytes).unwrap();

    let pkg = ctx.file("bad.tgz");
    let out = ctx.run(["package", &dir_s, "--output", &pkg.display().to_string()]);
    assert_eq!(out.code, 4, "{}", out.all());
    snap!(ctx, "package_directory_blob_digest_mismatch", out.streams());
    assert!(!pkg.exists(), "no package is written");
    assert!(
        !ctx.file("bad.tgz.partial").exists(),
        "no partial file is left"
    );
}

fn report_host(reference: &str) -> &str {
    reference.split('/').next().unwrap()
}

#[test]
fn platform_subset_rewrites_tagged_indexes_and_keeps_pinned_ones() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let b = Registry::plain();
    let (bundle, _, agent_digest) = seed_bundle(&ctx, &a);

    let dir = ctx.file("arm");
    let dir_s = dir.display().to_string();
    let out = ctx
        .create_plain(
            &dir_s,
            &bundle,
            &["--platforms", "linux/arm64", "-o", "json"],
        )
        .success();
    let report = out.json();
    let rewrites = report["rewrittenIndexes"].as_array().unwrap();
    assert_eq!(
        rewrites.len(),
        1,
        "only the tagged index is rewritten: {report:#}"
    );
    let original = digest_in(&ctx, &a.host(), "acp/demo:v1.0.0");
    assert_eq!(rewrites[0]["original"], original.as_str());
    assert_eq!(rewrites[0]["dropped"], serde_json::json!(["linux/amd64"]));
    let new_digest = rewrites[0]["digest"].as_str().unwrap().to_string();
    assert_ne!(new_digest, original);
    assert!(out.stderr.contains("pinned by digest"), "{}", out.stderr);
    assert_eq!(report["architectures"], serde_json::json!(["linux/arm64"]));

    let pkg = ctx.file("demo-operator.stable.arm64.1.2.0.tgz");
    let pkg_s = pkg.display().to_string();
    ctx.run(["package", &dir_s, "--output", &pkg_s]).success();
    ctx.push(&pkg_s, &[&b.host()], &["--plain", "--no-auth"])
        .success();
    // B holds the rewritten index under the tag: an arm64-only index whose child is A's arm64
    // manifest, byte for byte; the pinned image keeps its whole index and digest.
    assert_eq!(digest_in(&ctx, &b.host(), "acp/demo:v1.0.0"), new_digest);
    let raw = crate::support::skopeo::skopeo_inspect_raw(
        &ctx,
        &format!("docker://{}/acp/demo:v1.0.0", b.host()),
        NO_TLS,
    );
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let children = index["manifests"].as_array().unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0]["platform"]["architecture"], "arm64");
    let a_index: serde_json::Value =
        serde_json::from_str(&crate::support::skopeo::skopeo_inspect_raw(
            &ctx,
            &format!("docker://{}/acp/demo:v1.0.0", a.host()),
            NO_TLS,
        ))
        .unwrap();
    assert!(
        a_index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["digest"] == children[0]["digest"])
    );
    assert_eq!(
        digest_in(&ctx, &b.host(), &format!("acp/demo-agent@{agent_digest}")),
        agent_digest
    );

    // A platform no image has is refused, naming the image and what it has.
    let out = ctx.create_plain(
        &ctx.file("s390x").display().to_string(),
        &bundle,
        &["--platforms", "linux/s390x"],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    // "acp/demo:v1.0.0 has no linux/s390x image (it has linux/amd64, linux/arm64)".
    snap!(ctx, "no_such_platform", out.streams());
    assert!(!ctx.file("s390x").join("violet.yaml").exists());
}

#[test]
fn a_download_cut_short_leaves_no_package_behind() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    ctx.seed_demo_images("seed", &a.host());
    let proxy = FaultProxy::start(&a.host());
    let chart = format!("{}/acp/chart-demo:1.0.0", proxy.host());
    artifacts::push_chart(
        &artifacts::plain(&a.host()),
        "acp/chart-demo",
        "demo",
        "1.0.0",
        &[("server", "acp/demo", "v1.0.0")],
        false,
    );
    let dir = ctx.file("chart");
    let dir_s = dir.display().to_string();
    let report = ctx
        .create_plain(&dir_s, &chart, &["--skip-package-images", "-o", "json"])
        .success()
        .json();
    assert_eq!(report["type"], "chart");

    // Every blob download is cut after 1000 bytes, 20 times: each resumes where it stopped
    // (Range), and the package is whole.
    proxy.inject(
        Rule::new(
            Some("GET"),
            r"^/v2/acp/demo/blobs/",
            Fault::ResetDuringResponse { after_bytes: 1000 },
        )
        .times(20),
    );
    let resumed = ctx.file("resumed.tgz");
    let resumed_s = resumed.display().to_string();
    ctx.run([
        "package",
        &dir_s,
        "--output",
        &resumed_s,
        "--plain",
        "--no-auth",
        "--format",
        "json",
    ])
    .success();
    assert!(
        proxy.count(Some("GET"), r"^/v2/acp/demo/blobs/") > 4,
        "the downloads were cut and resumed"
    );
    ctx.run(["verify", &resumed_s]).success();
    proxy.clear_faults();

    // Downloads that break off before their first byte, more often than the retries allow.
    proxy.inject(
        Rule::new(
            Some("GET"),
            r"^/v2/acp/demo/blobs/",
            Fault::ResetDuringResponse { after_bytes: 0 },
        )
        .times(100),
    );
    let pkg = ctx.file("demo.tgz");
    let pkg_s = pkg.display().to_string();
    let out = ctx.run([
        "package",
        &dir_s,
        "--output",
        &pkg_s,
        "--plain",
        "--no-auth",
        "--retries",
        "1",
    ]);
    assert_eq!(out.code, 6, "{}", out.stderr);
    snap!(ctx, "package_download_cut", out.stderr.clone());
    let left: Vec<_> = std::fs::read_dir(ctx.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("demo.tgz"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // With the link healthy again the same command completes.
    proxy.clear_faults();
    ctx.run([
        "package",
        &dir_s,
        "--output",
        &pkg_s,
        "--plain",
        "--no-auth",
    ])
    .success();
    ctx.run(["verify", &pkg_s]).success();
}

#[test]
fn a_blob_the_source_lost_is_named_with_the_registrys_answer() {
    // Small blobs are fetched ahead of the archive writer; the registry's refusal of one still
    // reaches the user as that registry's answer (exit 7), not as a broken link (exit 6).
    let ctx = TestContext::new();
    let a = Registry::plain();
    ctx.seed_demo_images("seed", &a.host());
    let chart = format!("{}/acp/chart-demo:1.0.0", a.host());
    artifacts::push_chart(
        &artifacts::plain(&a.host()),
        "acp/chart-demo",
        "demo",
        "1.0.0",
        &[("server", "acp/demo", "v1.0.0")],
        false,
    );
    let dir = ctx.file("chart");
    let dir_s = dir.display().to_string();
    ctx.create_plain(&dir_s, &chart, &["--skip-package-images"])
        .success();
    a.lose_largest_blob();
    let pkg = ctx.file("lost.tgz");
    let out = ctx.run([
        "package",
        &dir_s,
        "--output",
        &pkg.display().to_string(),
        "--plain",
        "--no-auth",
    ]);
    assert_eq!(out.code, 7, "{}", out.all());
    assert!(out.stderr.contains("404"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(!pkg.exists());
}

#[test]
fn create_refuses_what_is_not_a_bundle_or_chart() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    ctx.seed_demo_images("seed", &a.host());
    let out = ctx.create_plain(
        &ctx.file("x").display().to_string(),
        &format!("{}/acp/demo:v1.0.0", a.host()),
        &[],
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    // "... neither an operator bundle ...".
    snap!(ctx, "not_a_bundle_or_chart", out.streams());
    let out = ctx.run(["create", "y", "--artifact", "acp/demo:v1", "--no-auth"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    // "... no registry host ...".
    snap!(ctx, "artifact_without_host", out.streams());
    let out = ctx.run(["package", &ctx.file("nothing").display().to_string()]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    snap!(ctx, "package_of_nothing", out.streams());
}

#[test]
fn sources_behind_tls_and_htpasswd_use_the_given_login_and_never_print_it() {
    let ctx = TestContext::new();
    let a = Registry::start(RegistryOptions {
        tls: true,
        auth: Auth::Htpasswd,
        ..Default::default()
    });
    let ca = a.ca_file().expect("TLS registry has a CA");
    let ca_s = ca.display().to_string();
    let login = ["--ca-file", &ca_s, "--username", USER, "--password-stdin"];
    let stdin = format!("{PASSWORD}\n");
    ctx.seed_demo_images_with(
        "seed",
        Container::Tar,
        StoreKind::OciLayout,
        &a.host(),
        &login,
        &stdin,
    );
    let mut registry = artifacts::plain(&a.host());
    registry.plain = false;
    registry.ca_files = vec![ca.clone()];
    registry.credentials = violet::registry::Credentials::Basic {
        username: USER.into(),
        password: PASSWORD.into(),
    };
    artifacts::push_chart(
        &registry,
        "acp/chart-demo",
        "demo",
        "1.0.0",
        &[("server", "acp/demo", "v1.0.0")],
        false,
    );
    let chart = format!("{}/acp/chart-demo:1.0.0", a.host());
    let dir = ctx.file("chart");
    let dir_s = dir.display().to_string();

    // Without the login the registry refuses: exit 5, a hint, nothing written.
    let out = ctx.run(["create", &dir_s, "--artifact", &chart, "--ca-file", &ca_s]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(!dir.join("violet.yaml").exists());

    let mut args = vec![
        "create",
        &dir_s,
        "--artifact",
        &chart,
        "--skip-package-images",
    ];
    args.extend(login);
    let created = ctx.run_stdin(args, &stdin).success();
    let pkg_s = ctx.file("demo.tgz").display().to_string();
    let mut args = vec!["package", &dir_s, "--output", &pkg_s];
    args.extend(login);
    let packaged = ctx.run_stdin(args, &stdin).success();
    for out in [&out, &created, &packaged] {
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(!text.contains(PASSWORD), "password in output:\n{text}");
    }
    let show = ctx.run(["show", &pkg_s, "-o", "json"]).success().json();
    assert_eq!(show["summary"]["images"], 2, "{show:#}");
    assert_eq!(show["metadata"]["type"], "chart");
}

/// Bundle layers in every compression their media type can declare are read as declared.
#[test]
fn create_reads_bundle_layers_in_every_declared_compression() {
    use crate::support::artifacts::LayerForm;
    let ctx = TestContext::new();
    let a = Registry::plain();
    ctx.seed_demo_images("seed", &a.host());
    for (i, form) in [
        LayerForm::OciZstd,
        LayerForm::OciPlain,
        LayerForm::DockerGzip,
        LayerForm::OciGzip,
    ]
    .into_iter()
    .enumerate()
    {
        let repo = format!("acp/bundle-{i}");
        artifacts::push_bundle_as(
            &artifacts::plain(&a.host()),
            &repo,
            "v1.2.0",
            "1.2.0",
            &[format!("{}/acp/demo:v1.0.0", a.host())],
            form,
        );
        let dir = ctx.file(&format!("out-{i}"));
        let out = ctx.create_plain(
            &dir.display().to_string(),
            &format!("{}/{repo}:v1.2.0", a.host()),
            &["--skip-package-images", "-o", "json"],
        );
        assert_eq!(out.code, 0, "{form:?} ({}): {out:?}", form.media_type());
        let meta = read_yaml(&dir.join("violet.yaml"));
        assert_eq!(meta["name"], "demo-operator", "{form:?}");
        assert_eq!(meta["version"], "1.2.0", "{form:?}");
    }
}
