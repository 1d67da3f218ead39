//! `violet push` end to end with catalog resources: the `violet` binary against a real
//! docker-registry and the platform emulator (login, registry discovery, CRs, and the marketplace
//! check that HEADs the real registry), every error class, and no secret in any output.
//!
//! The outputs pinned by the snapshots here are the ones shown in `docs/commands.md`.

use std::path::Path;

use crate::support::packages::{
    Container, PackageType, SynthImage, SynthPackage, SynthSpec, synth,
};
use crate::support::platform::{ADMIN, ADMIN_TOKEN, PlatformEmulator, VIEWER_TOKEN};
use crate::support::registry::{self, Auth, Registry, RegistryOptions};
use crate::support::{Output, TestContext};
use serde_json::{Value, json};

const NS: &str = "cpaas-system";
const OPERATOR: &str = "topolvm-operator";
const BUNDLE_REPO: &str = "acp/topolvm-operator-bundle";

/// Distinctive secrets: if any of them shows up in an output, it leaked.
const PASSWORD: &str = "Pl4tform-S3cret-pw-91734";
const TOKEN: &str = "tok-Zq81-distinctive-44c";
const WRONG_PASSWORD: &str = "Wr0ng-Secret-pw-55521";
const WRONG_TOKEN: &str = "tok-Wr0ng-distinctive-7d2";

/// Small images: one platform, one 1 KiB layer each; these tests are about the catalog side.
fn image(repo: &str, tag: &str) -> SynthImage {
    let mut i = SynthImage::new(repo, tag);
    i.platforms = vec!["linux/amd64".into()];
    i.layers = 1;
    i.layer_size = 1024;
    i
}

/// An operator bundle package: the bundle image (its artifact) and the operator image.
fn operator(dir: &Path, version: &str) -> SynthPackage {
    let mut spec = SynthSpec::new(OPERATOR, PackageType::Bundle);
    spec.version = version.into();
    // Each version has its own content, as real releases do.
    spec.seed = version.bytes().map(u64::from).sum();
    spec.images = vec![
        image(BUNDLE_REPO, version),
        image("acp/topolvm-operator", version),
    ];
    synth::write(&spec, dir).expect("synth operator")
}

/// A Helm chart package (the chart is its artifact) with one image.
fn chart(dir: &Path) -> SynthPackage {
    let mut spec = SynthSpec::new("nginx-chart", PackageType::Chart);
    spec.version = "v4.11.3".into();
    spec.images = vec![
        image("acp/chart-nginx", "v4.11.3"),
        image("acp/nginx", "v1.27.2"),
    ];
    synth::write(&spec, dir).expect("synth chart")
}

/// An extracted cluster-plugin package whose ModulePlugin names its chart and image by the
/// source registry (`harbor.demo.io`), as real plugin packages do.
fn plugin(dir: &Path) -> SynthPackage {
    let mut spec = SynthSpec::new("web-cli", PackageType::Plugin);
    spec.version = "v4.0.4".into();
    spec.container = Container::Directory;
    spec.images = vec![
        image("acp/chart-web-cli", "v4.0.4"),
        image("acp/web-cli", "v4.0.4"),
    ];
    let pkg = synth::write(&spec, dir).expect("synth plugin");
    let path = pkg.path.join("violet.yaml");
    let mut md: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&path).expect("read metadata"))
            .expect("parse metadata");
    md["modulePlugin"]["spec"] = json!({
        "name": "web-cli",
        "mainChart": "harbor.demo.io/acp/chart-web-cli",
        "appReleases": [{ "name": "web-cli", "chartVersions": [
            { "name": "harbor.demo.io/acp/chart-web-cli", "releaseName": "web-cli", "version": "v4.0.4" }
        ]}],
        "valuesTemplates": {
            "harbor.demo.io/acp/chart-web-cli": "image: << .RegistryAddress >>/acp/web-cli:v4.0.4"
        },
        "image": "harbor.demo.io/acp/web-cli:v4.0.4",
        "homepage": "harbor.demo.io.example.com/web-cli",
        "deleteable": true,
        "description": { "en": "Web CLI", "zh": "Web CLI" },
        "logo": "",
    });
    std::fs::write(&path, serde_saphyr::to_string(&md).expect("yaml")).expect("write metadata");
    pkg
}

/// One test's world: a registry, a platform emulator whose marketplace checks images in that
/// registry, and a temp dir.
struct Site {
    ctx: TestContext,
    reg: Registry,
    emu: PlatformEmulator,
}

impl Site {
    async fn new(options: RegistryOptions) -> Site {
        let reg = Registry::start(options);
        let emu = PlatformEmulator::start().await;
        emu.set_registry(&reg.url());
        emu.add_user("ops", PASSWORD, true);
        emu.add_token(TOKEN, ADMIN.0);
        // Pushes without --dest-repo go to this registry, as on a real platform.
        emu.seed_product_base(&reg.host());
        Site {
            ctx: TestContext::new(),
            reg,
            emu,
        }
    }

    /// `violet push PATH ARGS...` with the platform's token (the registry is discovered unless
    /// ARGS has --dest-repo; the test registries speak plain HTTP, hence the callers' --plain).
    async fn push(&self, path: &Path, args: &[&str]) -> Output {
        let mut extra = vec![p(path)];
        extra.extend_from_slice(args);
        let all = self.emu.args("push", TOKEN, &extra);
        self.ctx.run_async(&all, None, &[]).await
    }

    /// `violet push PATH --dest-repo <registry> --plain --no-auth ARGS...` with the token.
    async fn push_to_registry(&self, path: &Path, args: &[&str]) -> Output {
        let host = self.reg.host();
        let mut all = vec!["--dest-repo", &host, "--plain", "--no-auth"];
        all.extend_from_slice(args);
        self.push(path, &all).await
    }

    /// Both streams with the addresses of this site and the temp dir replaced by names.
    fn text(&self, out: &Output) -> String {
        let text = format!("{}{}", out.stderr, out.stdout)
            .replace(&self.reg.host(), "[REGISTRY]")
            .replace(&self.emu.url, "[PLATFORM]");
        // The emulator's uids are random.
        let uid = regex::Regex::new(r"\b[0-9a-f]{8}-[0-9a-f]{16}\b").expect("regex");
        self.ctx.redact(&uid.replace_all(&text, "[UID]"))
    }

    fn obj(&self, cluster: &str, plural: &str, name: &str) -> Value {
        self.emu
            .object(cluster, plural, NS, name)
            .unwrap_or_else(|| panic!("no {plural} {name} in cluster {cluster}"))
    }

    /// Every catalog object the emulator holds (seeded ProductBase and secret excluded).
    fn catalog_objects(&self) -> usize {
        ["global", "region1", "region2"]
            .iter()
            .flat_map(|c| ["artifacts", "artifactversions", "moduleplugins"].map(|k| (c, k)))
            .map(|(c, k)| self.emu.objects(c, k).len())
            .sum()
    }

    /// Requests that change something in a cluster.
    fn kube_writes(&self) -> Vec<String> {
        self.emu
            .requests()
            .into_iter()
            .filter(|r| r.contains("/kubernetes/") && !r.starts_with("GET "))
            .collect()
    }

    fn manifest_puts(&self) -> usize {
        self.reg.requests("PUT", "/manifests/")
    }

    fn pkgs(&self) -> std::path::PathBuf {
        self.ctx.path().join("packages")
    }
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[track_caller]
fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.code, code,
        "exit code\n--- stdout\n{}\n--- stderr\n{}",
        out.stdout, out.stderr
    );
}

/// A failed run says what went wrong on one `error:` line (plus an optional hint), never panics,
/// and never shows a secret.
#[track_caller]
fn assert_one_error_line(out: &Output, needle: &str) {
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line:\n{}", out.stderr);
    assert!(errors[0].contains(needle), "{needle:?} in {:?}", errors[0]);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_no_secret(out);
}

#[track_caller]
fn assert_no_secret(out: &Output) {
    for secret in [
        PASSWORD,
        TOKEN,
        WRONG_PASSWORD,
        WRONG_TOKEN,
        ADMIN.1,
        ADMIN_TOKEN,
        registry::PASSWORD,
    ] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "secret {secret:?} in output\n--- stdout\n{}\n--- stderr\n{}",
            out.stdout,
            out.stderr
        );
    }
}

/// The Artifact and ArtifactVersion of a bundle in one cluster, as the marketplace needs them.
#[track_caller]
fn assert_bundle_crs(site: &Site, cluster: &str, version: &str, registry: &str, library: &str) {
    let artifact = site.obj(cluster, "artifacts", OPERATOR);
    let labels = &artifact["metadata"]["labels"];
    assert_eq!(labels["cpaas.io/managed-by"], "violet", "{artifact}");
    assert_eq!(labels["cpaas.io/library"], library, "{artifact}");
    assert_eq!(labels["cpaas.io/type"], "bundle", "{artifact}");
    assert_eq!(artifact["spec"]["registry"], registry, "{artifact}");
    assert_eq!(artifact["spec"]["repository"], BUNDLE_REPO, "{artifact}");
    assert_eq!(artifact["spec"]["type"], "bundle", "{artifact}");
    assert_eq!(artifact["spec"]["present"], true, "{artifact}");
    assert_eq!(
        artifact["spec"]["artifactVersionSelector"]["matchLabels"]["cpaas.io/artifact-version"],
        OPERATOR
    );

    let av = site.obj(
        cluster,
        "artifactversions",
        &format!("{OPERATOR}.{version}"),
    );
    let owner = &av["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Artifact", "{av}");
    assert_eq!(owner["name"], OPERATOR, "{av}");
    assert_eq!(owner["uid"], artifact["metadata"]["uid"], "{av}");
    let labels = &av["metadata"]["labels"];
    assert_eq!(labels["cpaas.io/artifact-version"], OPERATOR, "{av}");
    assert_eq!(labels["cpaas.io/present"], "true", "{av}");
    assert_eq!(labels["cpaas.io/library"], library, "{av}");
    assert_eq!(labels["cpaas.io/default-channel"], "stable", "{av}");
    assert_eq!(
        av["metadata"]["annotations"]["cpaas.io/csv-name"],
        format!("{OPERATOR}.{version}")
    );
    assert_eq!(av["spec"]["tag"], version, "{av}");
    // The marketplace found the bundle image in the real registry.
    assert_eq!(av["status"]["phase"], "Present", "{av}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_to_two_clusters_then_unchanged_updated_forced() {
    let site = Site::new(RegistryOptions::default()).await;
    let pkg = operator(&site.pkgs(), "v2.3.0");
    let host = site.reg.host();
    let args = [
        "push",
        p(&pkg.path),
        "--platform-address",
        &site.emu.url,
        "--platform-username",
        "ops",
        "--platform-password-stdin",
        "--clusters",
        "region1,region2",
        "--plain",
    ];
    let stdin = format!("{PASSWORD}\n");
    let out = site.ctx.run_async(&args, Some(&stdin), &[]).await;
    snap!(site.ctx, "operator_two_clusters", site.text(&out));
    assert_code(&out, 0);
    assert_no_secret(&out);
    for cluster in ["region1", "region2"] {
        assert_bundle_crs(&site, cluster, "v2.3.0", &host, "platform");
    }
    assert!(site.emu.objects("global", "artifacts").is_empty());

    // Rerun: every image and every object is unchanged, and nothing is written.
    site.emu.clear_requests();
    let puts = site.manifest_puts();
    let out = site.ctx.run_async(&args, Some(&stdin), &[]).await;
    snap!(site.ctx, "operator_two_clusters_rerun", site.text(&out));
    assert_code(&out, 0);
    assert!(site.kube_writes().is_empty(), "{:?}", site.kube_writes());
    assert_eq!(site.manifest_puts(), puts);

    // A changed catalog source updates both objects in both clusters.
    let mut changed = args.to_vec();
    changed.extend(["--target-catalog-source", "system"]);
    let out = site.ctx.run_async(&changed, Some(&stdin), &[]).await;
    assert_code(&out, 0);
    let updated = out
        .stdout
        .lines()
        .filter(|l| l.ends_with(" updated"))
        .count();
    assert_eq!(updated, 4, "{}", out.stdout);
    for cluster in ["region1", "region2"] {
        assert_bundle_crs(&site, cluster, "v2.3.0", &host, "system");
    }

    // --force re-applies what did not change.
    changed.push("--force");
    let out = site.ctx.run_async(&changed, Some(&stdin), &[]).await;
    assert_code(&out, 0);
    let updated = out
        .stdout
        .lines()
        .filter(|l| l.ends_with(" updated"))
        .count();
    assert_eq!(updated, 4, "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_adds_an_artifact_version_and_conflicts_are_retried() {
    let site = Site::new(RegistryOptions::default()).await;
    let v1 = operator(&site.pkgs().join("v1"), "v2.3.0");
    site.push_to_registry(&v1.path, &[]).await.success();
    assert_bundle_crs(&site, "global", "v2.3.0", &site.reg.host(), "platform");

    // Someone else changes the Artifact right after each of violet's reads: violet's first
    // update meets a 409 and it reads and decides again.
    site.emu
        .race_after_get("global", "artifacts", NS, OPERATOR, 2);
    let v2 = operator(&site.pkgs().join("v2"), "v2.4.0");
    let out = site
        .push_to_registry(&v2.path, &["--target-catalog-source", "custom-catalog"])
        .await;
    assert_code(&out, 0);
    // The Artifact updated (after the conflict), the new ArtifactVersion created.
    snap!(site.ctx, "new_version", site.text(&out));
    assert_bundle_crs(
        &site,
        "global",
        "v2.4.0",
        &site.reg.host(),
        "custom-catalog",
    );
    let artifact = site.obj("global", "artifacts", OPERATOR);
    assert_eq!(
        artifact["metadata"]["annotations"]["emulator/touched-by"], "someone-else",
        "the other writer's change survives: {artifact}"
    );
    let puts: Vec<String> = site
        .kube_writes()
        .into_iter()
        .filter(|r| r.starts_with("PUT ") && r.contains("/artifacts/"))
        .collect();
    assert!(puts.len() >= 2, "the update was retried: {puts:?}");
    // The older version stays, still owned by the same Artifact.
    let old = site.obj("global", "artifactversions", "topolvm-operator.v2.3.0");
    assert_eq!(
        old["metadata"]["ownerReferences"][0]["uid"],
        artifact["metadata"]["uid"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_goes_to_global_with_registry_addresses_rewritten() {
    let site = Site::new(RegistryOptions::default()).await;
    let pkg = plugin(&site.pkgs());
    let out = site
        .push(&pkg.path, &["--clusters", "region1", "--plain"])
        .await;
    // Includes the warning "--clusters region1 ignored".
    snap!(site.ctx, "plugin", site.text(&out));
    assert_code(&out, 0);
    assert!(site.emu.objects("region1", "moduleplugins").is_empty());
    let mp = site
        .emu
        .object("global", "moduleplugins", "", "web-cli")
        .expect("ModulePlugin in global");
    let host = site.reg.host();
    assert_eq!(mp["metadata"]["labels"]["cpaas.io/managed-by"], "violet");
    assert_eq!(mp["metadata"]["labels"]["cpaas.io/module-name"], "web-cli");
    let spec = &mp["spec"];
    let chart = format!("{host}/acp/chart-web-cli");
    assert_eq!(spec["mainChart"], chart.as_str(), "{mp}");
    assert_eq!(
        spec["appReleases"][0]["chartVersions"][0]["name"],
        chart.as_str()
    );
    assert_eq!(
        spec["valuesTemplates"][&chart], "image: << .RegistryAddress >>/acp/web-cli:v4.0.4",
        "keys follow, templates stay: {mp}"
    );
    assert_eq!(spec["image"], format!("{host}/acp/web-cli:v4.0.4"));
    assert_eq!(
        spec["homepage"], "harbor.demo.io.example.com/web-cli",
        "another host that merely starts with the same letters stays"
    );

    // Rerun: unchanged.
    let out = site.push(&pkg.path, &["--plain"]).await;
    assert_code(&out, 0);
    // "cluster global: ModulePlugin web-cli unchanged".
    snap!(site.ctx, "plugin_rerun", site.text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_under_a_registry_prefix_names_the_prefixed_chart() {
    let site = Site::new(RegistryOptions::default()).await;
    let pkg = plugin(&site.pkgs());
    let dest = format!("{}/mirror", site.reg.host());
    let out = site
        .push(&pkg.path, &["--dest-repo", &dest, "--plain", "--no-auth"])
        .await;
    assert_code(&out, 0);
    let mp = site
        .emu
        .object("global", "moduleplugins", "", "web-cli")
        .expect("ModulePlugin");
    let chart = format!("{dest}/acp/chart-web-cli");
    assert_eq!(mp["spec"]["mainChart"], chart.as_str(), "{mp}");
    assert_eq!(mp["spec"]["image"], format!("{dest}/acp/web-cli:v4.0.4"));
    assert!(mp["spec"]["valuesTemplates"].get(&chart).is_some(), "{mp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_under_the_target_chart_repository() {
    let site = Site::new(RegistryOptions::default()).await;
    let pkg = chart(&site.pkgs());
    let out = site.push_to_registry(&pkg.path, &[]).await;
    snap!(site.ctx, "chart", site.text(&out));
    assert_code(&out, 0);
    let check = |repo: &str| {
        let artifact = site.obj("global", "artifacts", "nginx-chart");
        assert_eq!(artifact["metadata"]["labels"]["cpaas.io/chart-repo"], repo);
        assert_eq!(artifact["metadata"]["labels"]["cpaas.io/type"], "chart");
        assert!(
            artifact["metadata"]["labels"]
                .get("cpaas.io/library")
                .is_none()
        );
        assert_eq!(artifact["spec"]["type"], "chart");
        assert_eq!(artifact["spec"]["registry"], site.reg.host());
        assert_eq!(artifact["spec"]["repository"], "acp/chart-nginx");
        let av = site.obj("global", "artifactversions", "nginx-chart.v4.11.3");
        assert_eq!(av["metadata"]["labels"]["cpaas.io/chart-repo"], repo);
        assert_eq!(
            av["metadata"]["ownerReferences"][0]["uid"],
            artifact["metadata"]["uid"]
        );
        assert_eq!(av["spec"]["tag"], "v4.11.3");
        assert_eq!(av["status"]["phase"], "Present", "{av}");
    };
    check("public-charts");

    let out = site
        .push_to_registry(&pkg.path, &["--target-chartrepo", "my-charts"])
        .await;
    assert_code(&out, 0);
    check("my-charts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_images_only_then_catalog_resources_only() {
    let site = Site::new(RegistryOptions::default()).await;
    operator(&site.pkgs(), "v2.3.0");
    chart(&site.pkgs());

    // Before the upgrade: images only (the platform only names its registry).
    let out = site.push(&site.pkgs(), &["--skip-crs", "--plain"]).await;
    snap!(site.ctx, "directory_skip_crs", site.text(&out));
    assert_code(&out, 0);
    assert_eq!(site.catalog_objects(), 0);
    assert!(site.kube_writes().is_empty(), "{:?}", site.kube_writes());

    // After it: catalog resources only, once every image is confirmed in the registry.
    let puts = site.manifest_puts();
    let out = site
        .push(
            &site.pkgs(),
            &["--skip-push", "--clusters", "global,region1", "--plain"],
        )
        .await;
    snap!(site.ctx, "directory_skip_push", site.text(&out));
    assert_code(&out, 0);
    assert_eq!(site.manifest_puts(), puts, "--skip-push pushes nothing");
    assert_bundle_crs(&site, "global", "v2.3.0", &site.reg.host(), "platform");
    assert_bundle_crs(&site, "region1", "v2.3.0", &site.reg.host(), "platform");
    let av = site.obj("global", "artifactversions", "nginx-chart.v4.11.3");
    assert_eq!(av["status"]["phase"], "Present", "{av}");

    // Both at once makes no sense.
    let out = site
        .push_to_registry(&site.pkgs(), &["--skip-crs", "--skip-push"])
        .await;
    assert_code(&out, 2);
    assert_one_error_line(&out, "--skip-push");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_push_with_a_missing_image_lists_it_and_writes_nothing() {
    let site = Site::new(RegistryOptions::default()).await;
    let pkg = operator(&site.pkgs(), "v2.3.0");
    site.push_to_registry(&pkg.path, &["--skip-crs"])
        .await
        .success();
    // Someone deletes the bundle image from the registry.
    let bundle_digest = &pkg.images[0].1;
    let deleted = reqwest::Client::new()
        .delete(format!(
            "{}/v2/{BUNDLE_REPO}/manifests/{bundle_digest}",
            site.reg.url()
        ))
        .send()
        .await
        .expect("delete");
    assert!(deleted.status().is_success(), "{}", deleted.status());

    let out = site
        .push_to_registry(&pkg.path, &["--skip-push", "--clusters", "global,region1"])
        .await;
    // The bundle MISSING, the operator present, and why nothing was written.
    snap!(site.ctx, "skip_push_missing", site.text(&out));
    assert_code(&out, 7);
    assert_eq!(site.catalog_objects(), 0);
    assert!(site.kube_writes().is_empty(), "{:?}", site.kube_writes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_pushes_to_the_product_base_registry_with_the_secret() {
    let site = Site::new(RegistryOptions {
        auth: Auth::Htpasswd,
        ..Default::default()
    })
    .await;
    site.emu
        .seed_registry_secret(registry::USER, registry::PASSWORD);
    let pkg = operator(&site.pkgs(), "v2.3.0");
    // No --dest-repo and no registry credentials: both come from the platform.
    let args = [
        "push",
        p(&pkg.path),
        "--platform-address",
        &site.emu.url,
        "--platform-username",
        "ops",
        "--platform-password",
        PASSWORD,
        "--plain",
    ];
    let out = site.ctx.run_async(&args, None, &[]).await;
    snap!(site.ctx, "discovery", site.text(&out));
    assert_code(&out, 0);
    assert_no_secret(&out);
    assert_bundle_crs(&site, "global", "v2.3.0", &site.reg.host(), "platform");
    let url = format!("{}/v2/{BUNDLE_REPO}/manifests/v2.3.0", site.reg.url());
    let http = reqwest::Client::new();
    let anonymous = http.head(&url).send().await.expect("head");
    assert_eq!(
        anonymous.status().as_u16(),
        401,
        "the registry needs the secret"
    );
    let with_secret = http
        .head(&url)
        .basic_auth(registry::USER, Some(registry::PASSWORD))
        .header("Accept", "application/vnd.oci.image.index.v1+json")
        .send()
        .await
        .expect("head");
    assert!(
        with_secret.status().is_success(),
        "{}",
        with_secret.status()
    );

    // Verbose logs do not show the registry password or the platform's either.
    let mut verbose = args.to_vec();
    verbose.push("-vv");
    let out = site.ctx.run_async(&verbose, None, &[]).await;
    assert_code(&out, 0);
    assert_no_secret(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dr_standby_with_its_own_platform_and_registry() {
    let primary = Site::new(RegistryOptions::default()).await;
    let standby = Site::new(RegistryOptions {
        auth: Auth::Htpasswd,
        ..Default::default()
    })
    .await;
    standby
        .emu
        .seed_registry_secret(registry::USER, registry::PASSWORD);
    // The standby's ProductBase still names the primary's registry domain: --dest-repo wins.
    standby.emu.seed_product_base(&primary.reg.host());
    let pkg = operator(&primary.pkgs(), "v2.3.0");

    primary
        .push(&pkg.path, &["--plain", "--no-auth"])
        .await
        .success();
    assert_bundle_crs(
        &primary,
        "global",
        "v2.3.0",
        &primary.reg.host(),
        "platform",
    );

    let primary_puts = primary.manifest_puts();
    let standby_host = standby.reg.host();
    let args = standby.emu.args(
        "push",
        TOKEN,
        &[
            p(&pkg.path),
            "--dest-repo",
            &standby_host,
            "--username",
            registry::USER,
            "--password-stdin",
            "--plain",
        ],
    );
    let stdin = format!("{}\n", registry::PASSWORD);
    let out = standby.ctx.run_async(&args, Some(&stdin), &[]).await;
    let text = primary.ctx.redact(
        &standby
            .text(&out)
            .replace(&primary.reg.host(), "[PRIMARY-REGISTRY]"),
    );
    snap!(standby.ctx, "dr_standby", text);
    assert_code(&out, 0);
    assert_bundle_crs(&standby, "global", "v2.3.0", &standby_host, "platform");
    assert_eq!(
        primary.manifest_puts(),
        primary_puts,
        "nothing went to the primary registry"
    );
    assert!(standby.manifest_puts() >= 2);
    // The primary's Artifact still names the primary registry.
    let artifact = primary.obj("global", "artifacts", OPERATOR);
    assert_eq!(artifact["spec"]["registry"], primary.reg.host());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_by_password_and_token_from_flags_stdin_and_environment() {
    let site = Site::new(RegistryOptions::default()).await;
    let pkg = operator(&site.pkgs(), "v2.3.0");
    let host = site.reg.host();
    let base = [
        "push",
        p(&pkg.path),
        "--dest-repo",
        &host,
        "--plain",
        "--no-auth",
        "-v",
    ];
    fn join<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        base.iter().chain(extra).copied().collect()
    }
    let url = site.emu.url.as_str();
    /// Arguments, standard input, environment.
    type Run<'a> = (Vec<&'a str>, Option<String>, Vec<(&'a str, &'a str)>);
    let runs: Vec<Run> = vec![
        (
            join(
                &base,
                &[
                    "--platform-address",
                    url,
                    "--platform-username",
                    "ops",
                    "--platform-password",
                    PASSWORD,
                ],
            ),
            None,
            vec![],
        ),
        (
            join(
                &base,
                &[
                    "--platform-address",
                    url,
                    "--platform-username",
                    "ops",
                    "--platform-password-stdin",
                ],
            ),
            Some(format!("{PASSWORD}\n")),
            vec![],
        ),
        (
            join(&base, &[]),
            None,
            vec![
                ("VIOLET_PLATFORM_ADDRESS", url),
                ("VIOLET_PLATFORM_USERNAME", "ops"),
                ("VIOLET_PLATFORM_PASSWORD", PASSWORD),
            ],
        ),
        (
            join(
                &base,
                &["--platform-address", url, "--platform-token", TOKEN],
            ),
            None,
            vec![],
        ),
        (
            join(&base, &[]),
            None,
            vec![
                ("VIOLET_PLATFORM_ADDRESS", url),
                ("VIOLET_PLATFORM_TOKEN", TOKEN),
            ],
        ),
    ];
    for (args, stdin, env) in runs {
        site.emu.clear_requests();
        let out = site.ctx.run_async(&args, stdin.as_deref(), &env).await;
        assert_code(&out, 0);
        assert_no_secret(&out);
        let logins = site
            .emu
            .requests()
            .iter()
            .filter(|r| r.starts_with("POST /dex/api/v1/authorize/local"))
            .count();
        let password = env.iter().any(|(k, _)| k.ends_with("PASSWORD"))
            || args.iter().any(|a| a.starts_with("--platform-password"));
        assert_eq!(logins, usize::from(password), "{args:?} {env:?}");
        assert!(
            out.stdout
                .contains("ArtifactVersion cpaas-system/topolvm-operator.v2.3.0"),
            "{}",
            out.stdout
        );
    }
    // The login used the documented client id.
    site.emu.clear_requests();
    site.ctx
        .run_async(
            &join(
                &base,
                &[
                    "--platform-address",
                    url,
                    "--platform-username",
                    "ops",
                    "--platform-password",
                    PASSWORD,
                ],
            ),
            None,
            &[],
        )
        .await
        .success();
    assert!(
        site.emu.requests().iter().any(|r| r
            .starts_with("GET /console-platform/api/v1/token/login?")
            && r.contains("client_id=alauda-auth")),
        "{:?}",
        site.emu.requests()
    );

    // A token excludes a username and password.
    let out = site
        .ctx
        .run_async(
            &join(
                &base,
                &[
                    "--platform-address",
                    url,
                    "--platform-token",
                    TOKEN,
                    "--platform-username",
                    "ops",
                ],
            ),
            None,
            &[],
        )
        .await;
    assert_code(&out, 2);
    assert_no_secret(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_class_is_one_line_with_its_exit_code_and_no_secret() {
    let site = Site::new(RegistryOptions::default()).await;
    let pkg = operator(&site.pkgs(), "v2.3.0");
    let host = site.reg.host();
    let url = site.emu.url.clone();
    let push = |platform: Vec<String>, extra: &[&str]| {
        let mut v: Vec<String> = [
            "push",
            p(&pkg.path),
            "--dest-repo",
            &host,
            "--plain",
            "--no-auth",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(platform);
        v
    };
    let password = |url: &str, pw: &str| {
        vec![
            "--platform-address".to_string(),
            url.to_string(),
            "--platform-username".into(),
            "ops".into(),
            "--platform-password".into(),
            pw.into(),
        ]
    };
    let token = |url: &str, t: &str| {
        vec![
            "--platform-address".to_string(),
            url.to_string(),
            "--platform-token".into(),
            t.into(),
        ]
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (tls_url, cert) = site.emu.tls_front(dir.path()).await;
    let cases: Vec<(&str, Vec<String>, i32, &str)> = vec![
        (
            "bad password",
            push(password(&url, WRONG_PASSWORD), &[]),
            5,
            "wrong username or password",
        ),
        ("bad token", push(token(&url, WRONG_TOKEN), &[]), 5, "token"),
        (
            "non-admin",
            push(token(&url, VIEWER_TOKEN), &[]),
            5,
            "(403 Forbidden)",
        ),
        (
            "unknown cluster",
            push(token(&url, TOKEN), &["--clusters", "global,region9"]),
            7,
            "region9",
        ),
        (
            "unreachable",
            push(token("http://127.0.0.1:9", TOKEN), &[]),
            6,
            "127.0.0.1:9",
        ),
        (
            "tls",
            push(password(&tls_url, PASSWORD), &[]),
            6,
            "certificate",
        ),
    ];
    let mut shown = String::new();
    for (name, args, code, needle) in cases {
        let puts = site.manifest_puts();
        let out = site.ctx.run_async(&args, None, &[]).await;
        assert_code(&out, code);
        assert_eq!(site.catalog_objects(), 0, "{name}: nothing written");
        if name == "non-admin" {
            // Reading the cluster is allowed, so the refusal comes with the first write, after
            // the images: it is reported on the package's line.
            let lines: Vec<&str> = out.stdout.lines().filter(|l| l.contains(needle)).collect();
            assert_eq!(lines.len(), 1, "{}", out.stdout);
            assert!(
                lines[0].contains("platform-admin") || out.stdout.contains("refused"),
                "{}",
                out.stdout
            );
            assert_no_secret(&out);
        } else {
            assert_one_error_line(&out, needle);
            assert_eq!(
                site.manifest_puts(),
                puts,
                "{name}: checked before any image is pushed"
            );
        }
        shown.push_str(&format!(
            "# {name} (exit {})\n{}",
            out.code,
            site.text(&out).replace(&tls_url, "[PLATFORM]")
        ));
        // The same with verbose logs: still no secret.
        let mut verbose = args.clone();
        verbose.push("-vv".into());
        let out = site.ctx.run_async(&verbose, None, &[]).await;
        assert_code(&out, code);
        assert_no_secret(&out);
    }
    snap!(site.ctx, "errors", shown);

    // The same self-signed platform with its certificate given: it works.
    let mut args = push(password(&tls_url, PASSWORD), &[]);
    args.extend(["--ca-file".to_string(), p(&cert).to_string()]);
    let out = site.ctx.run_async(&args, None, &[]).await;
    assert_code(&out, 0);
    assert_bundle_crs(&site, "global", "v2.3.0", &host, "platform");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_shows_the_plan_and_diffs_and_writes_nothing() {
    let site = Site::new(RegistryOptions::default()).await;
    let v1 = operator(&site.pkgs().join("v1"), "v2.3.0");
    site.push_to_registry(&v1.path, &[]).await.success();
    let v2 = operator(&site.pkgs().join("v2"), "v2.4.0");

    site.emu.clear_requests();
    let puts = site.manifest_puts();
    let blob_posts = site.reg.requests("POST", "/blobs/uploads/");
    let out = site
        .push_to_registry(
            &v2.path,
            &["--dry-run", "--target-catalog-source", "system"],
        )
        .await;
    snap!(site.ctx, "dry_run", site.text(&out));
    assert_code(&out, 0);
    assert!(site.kube_writes().is_empty(), "{:?}", site.kube_writes());
    assert_eq!(site.manifest_puts(), puts);
    assert_eq!(site.reg.requests("POST", "/blobs/uploads/"), blob_posts);
    assert!(
        site.emu
            .object("global", "artifactversions", NS, "topolvm-operator.v2.4.0")
            .is_none()
    );
    assert_eq!(
        site.obj("global", "artifacts", OPERATOR)["metadata"]["labels"]["cpaas.io/library"],
        "platform"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crs_out_writes_files_and_not_the_platform() {
    let site = Site::new(RegistryOptions::default()).await;
    let pkg = operator(&site.pkgs(), "v2.3.0");
    let crs = site.ctx.path().join("crs");
    // No platform flags at all: the images still go, the resources become files.
    let host = site.reg.host();
    let out = site
        .ctx
        .run_async(
            &[
                "push",
                p(&pkg.path),
                "--dest-repo",
                &host,
                "--plain",
                "--no-auth",
                "--crs-out",
                p(&crs),
                "--clusters",
                "global,region1",
            ],
            None,
            &[],
        )
        .await;
    snap!(site.ctx, "crs_out", site.text(&out));
    assert_code(&out, 0);
    assert!(site.emu.requests().is_empty());
    let av: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(crs.join("region1/artifactversion-topolvm-operator.v2.3.0.yaml"))
            .expect("file"),
    )
    .expect("yaml");
    assert_eq!(av["spec"]["tag"], "v2.3.0");
    let artifact: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(crs.join("global/artifact-topolvm-operator.yaml")).expect("file"),
    )
    .expect("yaml");
    assert_eq!(artifact["spec"]["registry"], host);
}

/// The upgrade flow for a core package: images only before the window (the core image store and the
/// images of every nested plugin package), then only the catalog resources: one ModulePlugin per
/// nested plugin in the global cluster, none for the core package itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_package_images_only_then_module_plugins_only() {
    let site = Site::new(RegistryOptions::default()).await;
    let mut spec = SynthSpec::new("acp-core", PackageType::Core);
    spec.version = "v4.3.0".into();
    spec.images = vec![image("acp/cluster-version-operator", "v4.3.0")];
    spec.children = (1..=3)
        .map(|i| {
            let mut child = SynthSpec::new(format!("plugin{i}"), PackageType::Plugin);
            child.version = "v4.3.0".into();
            child.images = vec![image(&format!("acp/plugin{i}"), "v4.3.0")];
            child
        })
        .collect();
    let core = synth::write(&spec, &site.pkgs()).expect("synth core package");

    let out = site.push(&core.path, &["--skip-crs", "--plain"]).await;
    assert_code(&out, 0);
    assert_eq!(site.catalog_objects(), 0);
    // acp/cluster-version-operator and acp/plugin1..3 pushed at v4.3.0.
    // The table's column widths follow the temp dir's length: spaces collapsed.
    snap!(
        site.ctx,
        "core_images_only",
        site.text(&out),
        [(r" {2,}", "  ")]
    );

    let puts = site.manifest_puts();
    let out = site.push(&core.path, &["--skip-push", "--plain"]).await;
    assert_code(&out, 0);
    assert_eq!(site.manifest_puts(), puts, "--skip-push pushes nothing");
    let plugins = site.emu.objects("global", "moduleplugins");
    assert_eq!(plugins.len(), 3, "{plugins:?}");
    // ModulePlugin plugin1..3 created.
    // The table's column widths follow the temp dir's length: spaces collapsed.
    snap!(
        site.ctx,
        "core_module_plugins_only",
        site.text(&out),
        [(r" {2,}", "  ")]
    );
}

/// Issue #11 (bounded, visible waiting) for push: a cluster answering 503 through the proxy is
/// waited for with a line on stderr and --retries bounds it; one that stays down (502, empty
/// body) stops the push before any image is uploaded, naming the cluster and the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_waits_visibly_and_boundedly_for_a_sick_cluster() {
    let site = Site::new(RegistryOptions::default()).await;
    let pkg = operator(&site.pkgs(), "v2.3.0");
    site.emu.make_sick("region1", 503, Some(2));
    let out = site
        .push(
            &pkg.path,
            &["--clusters", "region1", "--plain", "--retries", "3"],
        )
        .await;
    assert_code(&out, 0);
    assert_eq!(
        out.stderr
            .matches("waiting: cluster region1 answered HTTP 503 through the platform proxy")
            .count(),
        2,
        "{}",
        out.stderr
    );
    assert!(
        site.emu
            .object("region1", "artifacts", NS, OPERATOR)
            .is_some()
    );

    let pkg = operator(&site.pkgs(), "v2.4.0");
    site.emu.make_sick("region2", 502, None);
    let puts = site.manifest_puts();
    let out = site
        .push(
            &pkg.path,
            &["--clusters", "region2", "--plain", "--retries", "1"],
        )
        .await;
    assert_code(&out, 6);
    assert!(
        out.stderr.contains(&format!(
            "cluster region2 is not answering through the platform proxy {}/kubernetes/region2",
            site.emu.url
        )) || out
            .stdout
            .contains("is not answering through the platform proxy"),
        "{}{}",
        out.stderr,
        out.stdout
    );
    assert!(
        !format!("{}{}", out.stderr, out.stdout).contains("Failed to parse"),
        "{out:?}"
    );
    assert_eq!(site.manifest_puts(), puts, "nothing may be pushed");
}
