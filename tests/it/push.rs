//! `violet push --skip-crs` end to end: the real binary against real registries (plain, htpasswd +
//! TLS, token auth), the fault proxy in between where requests are counted or faults injected,
//! and skopeo as the independent check that every pushed image has the package's digest.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use violet::digest::Digest;

use crate::support::packages::{
    Container, DEMO_IMAGES, NO_TLS, PLAIN, SOURCE_REGISTRY, StoreKind, assert_pushed,
    at_destination, bundle_spec, synth,
};
use crate::support::proxy::{Fault, FaultProxy, Rule};
use crate::support::registry::{Auth, PASSWORD, Registry, RegistryOptions, USER};
use crate::support::{Output, TestContext, blob_digests, puts_of, run};

/// A password no output may ever contain.
const SECRET: &str = "Zq7-violet-Secret-Pw!";

/// Whether `http://host/v2/repo/manifests/reference` exists (HEAD through curl).
fn manifest_exists(ctx: &TestContext, host: &str, repo: &str, reference: &str) -> bool {
    let mut cmd = Command::new("curl");
    ctx.clean_env(&mut cmd);
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-I", "--max-time", "30"])
        .args([
            "-H",
            "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json",
        ])
        .arg(format!("http://{host}/v2/{repo}/manifests/{reference}"));
    let out = run(cmd, None);
    match out.stdout.trim() {
        "200" => true,
        "404" => false,
        other => panic!(
            "HEAD manifest {repo}:{reference} answered {other}: {}",
            out.stderr
        ),
    }
}

/// Repository and tag of a `harbor.demo.io/repo:tag` reference, with the destination prefix.
fn repo_tag(reference: &str, prefix: Option<&str>) -> (String, String) {
    let rest = reference
        .strip_prefix(&format!("{SOURCE_REGISTRY}/"))
        .expect("synthetic reference");
    let (repo, tag) = rest.rsplit_once(':').expect("tagged reference");
    let repo = match prefix {
        Some(p) => format!("{p}/{repo}"),
        None => repo.to_string(),
    };
    (repo, tag.to_string())
}

/// Blob upload requests (POST = sessions and mounts, PUT = uploaded bytes) the proxy saw.
fn blob_posts(proxy: &FaultProxy) -> usize {
    proxy.count(Some("POST"), r"/blobs/uploads/$")
}
fn blob_puts(proxy: &FaultProxy) -> usize {
    proxy.count(Some("PUT"), r"/blobs/uploads/")
}
fn manifest_puts(proxy: &FaultProxy) -> usize {
    proxy.count(Some("PUT"), r"/manifests/")
}

// ---------------------------------------------------------------------------------------------
// Containers and stores, plain HTTP, --dest-repo with a prefix
// ---------------------------------------------------------------------------------------------

#[test]
fn plain_http_every_container_and_store_same_digests() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let cases = [
        ("tar", Container::Tar, StoreKind::OciLayout),
        ("tgz", Container::TarGz, StoreKind::Distribution),
        ("zst", Container::TarZst, StoreKind::OciLayout),
        ("dir", Container::Directory, StoreKind::Distribution),
        ("tgzoci", Container::TarGz, StoreKind::OciLayout),
    ];
    let mut first: Option<Vec<(String, Digest)>> = None;
    for (label, container, store) in cases {
        let pkg = ctx.write_package(label, &bundle_spec("demo", container, store, DEMO_IMAGES));
        // Every container of the same images yields the same digests (streamed or by offset).
        match &first {
            None => first = Some(pkg.images.clone()),
            Some(f) => assert_eq!(f, &pkg.images, "{label}"),
        }
        let dest = format!("{}/mirror/{label}", registry.host());
        ctx.push(&pkg.path, &[&dest], PLAIN).success();
        assert_pushed(&ctx, &pkg, &dest, NO_TLS);
        // The repository path is kept under the prefix.
        assert!(manifest_exists(
            &ctx,
            &registry.host(),
            &format!("mirror/{label}/acp/demo-agent"),
            "v1.0.0"
        ));
    }
}

#[test]
fn plain_push_text_output() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let pkg = ctx.write_package(
        "pkgs",
        &bundle_spec(
            "demo",
            Container::TarGz,
            StoreKind::Distribution,
            DEMO_IMAGES,
        ),
    );
    let rel = pkg.path.strip_prefix(ctx.path()).expect("inside ctx");
    let out = ctx.push(rel, &[&registry.host()], PLAIN).success();
    snap!(ctx, "plain_text", out.streams());
}

// ---------------------------------------------------------------------------------------------
// Authentication and TLS
// ---------------------------------------------------------------------------------------------

fn tls_htpasswd() -> Registry {
    Registry::start(RegistryOptions {
        tls: true,
        auth: Auth::Htpasswd,
        ..Default::default()
    })
}

#[test]
fn htpasswd_over_tls_with_ca_file() {
    let ctx = TestContext::new();
    let registry = tls_htpasswd();
    let ca = registry.ca_file().expect("TLS registry has a CA");
    let pkg = ctx.write_package(
        "pkgs",
        &bundle_spec("demo", Container::Tar, StoreKind::OciLayout, &["acp/demo"]),
    );
    let out = ctx.push_stdin(
        &pkg.path,
        &[&registry.host()],
        &[
            "--ca-file",
            &ca.display().to_string(),
            "--username",
            USER,
            "--password-stdin",
            "-vv",
        ],
        &format!("{PASSWORD}\n"),
    );
    let out = out.success();
    let text = out.all();
    assert!(!text.contains(PASSWORD), "password in output:\n{text}");
    let basic = base64_basic(USER, PASSWORD);
    assert!(!text.contains(&basic), "Authorization header in output");
    let cert_dir = ca.parent().expect("CA dir").display().to_string();
    let creds = format!("{USER}:{PASSWORD}");
    assert_pushed(
        &ctx,
        &pkg,
        &registry.host(),
        &["--cert-dir", &cert_dir, "--creds", &creds],
    );
}

fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

#[test]
fn token_auth_push_mounts_shared_blobs_and_hides_tokens() {
    let ctx = TestContext::new();
    let registry = Registry::start(RegistryOptions {
        auth: Auth::Token,
        ..Default::default()
    });
    let pkg = ctx.write_package(
        "pkgs",
        &bundle_spec(
            "demo",
            Container::TarGz,
            StoreKind::Distribution,
            &["acp/demo", "acp/demo-agent", "acp/demo-web"],
        ),
    );
    let out = ctx.push(
        &pkg.path,
        &[&registry.host()],
        &[
            "--plain",
            "--username",
            USER,
            "--password",
            PASSWORD,
            "-vv",
            "-o",
            "json",
        ],
    );
    let out = out.success();
    let report = out.json();
    // Two shared layers (one per platform), each uploaded once and mounted into two repositories.
    assert_eq!(report["blobs"]["mounted"], 4, "{report}");
    assert_eq!(report["blobs"]["uploaded"], pkg.blob_count, "{report}");
    let text = out.all();
    assert!(!text.contains(PASSWORD), "password in output");
    // ES256 JWTs start with a base64 `{"` header.
    assert!(!text.contains("eyJ"), "a token in output:\n{text}");
    let creds = format!("{USER}:{PASSWORD}");
    assert_pushed(
        &ctx,
        &pkg,
        &registry.host(),
        &["--tls-verify=false", "--creds", &creds],
    );
}

#[test]
fn wrong_password_is_one_auth_error_without_the_password() {
    let ctx = TestContext::new();
    let registry = tls_htpasswd();
    let ca = registry.ca_file().expect("CA").display().to_string();
    let pkg = ctx.write_package(
        "pkgs",
        &bundle_spec("demo", Container::Tar, StoreKind::OciLayout, &["acp/demo"]),
    );
    let rel = pkg.path.strip_prefix(ctx.path()).expect("inside ctx");
    let out = ctx.push(
        rel,
        &[&registry.host()],
        &["--ca-file", &ca, "--username", USER, "--password", SECRET],
    );
    assert_eq!(out.code, 5, "{out:?}");
    assert!(!out.all().contains(SECRET));
    snap!(ctx, "wrong_password", out.streams());
}

#[test]
fn secrets_never_in_verbose_dry_run_or_json_output() {
    let ctx = TestContext::new();
    let registry = tls_htpasswd();
    let ca = registry.ca_file().expect("CA").display().to_string();
    let pkg = ctx.write_package(
        "pkgs",
        &bundle_spec(
            "demo",
            Container::TarGz,
            StoreKind::Distribution,
            &["acp/demo"],
        ),
    );
    let host = registry.host();
    let path = pkg.path.display().to_string();
    let base = [
        "--ca-file",
        ca.as_str(),
        "--username",
        USER,
        "--password",
        SECRET,
    ];
    let runs: Vec<Vec<&str>> = vec![
        vec!["-vv"],
        vec!["--dry-run"],
        vec!["--dry-run", "-o", "json", "-vv"],
        vec!["-o", "json"],
    ];
    for extra in runs {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let out = ctx.push(Path::new(&path), &[&host], &args);
        let text = out.all();
        assert!(
            !text.contains(SECRET),
            "{extra:?} printed the password:\n{text}"
        );
        assert!(
            !text.contains(&base64_basic(USER, SECRET)),
            "{extra:?} printed the Authorization header"
        );
    }
    // Through the environment and stdin too.
    let mut cmd = ctx.violet();
    cmd.args([
        "push",
        &path,
        "--dest-repo",
        &host,
        "--skip-crs",
        "--ca-file",
        &ca,
        "-vv",
    ])
    .env("VIOLET_USERNAME", USER)
    .env("VIOLET_PASSWORD", SECRET);
    let out = run(cmd, None);
    assert_eq!(out.code, 5, "{out:?}");
    assert!(!out.all().contains(SECRET));
    let out = ctx.push_stdin(
        &path,
        &[&host],
        &[
            "--ca-file",
            &ca,
            "--username",
            USER,
            "--password-stdin",
            "-vv",
        ],
        &format!("{SECRET}\n"),
    );
    assert_eq!(out.code, 5, "{out:?}");
    assert!(!out.all().contains(SECRET));
}

#[test]
fn unknown_ca_names_host_and_both_remedies() {
    let ctx = TestContext::new();
    let registry = Registry::start(RegistryOptions {
        tls: true,
        ..Default::default()
    });
    let pkg = ctx.write_package(
        "pkgs",
        &bundle_spec("demo", Container::Tar, StoreKind::OciLayout, &["acp/demo"]),
    );
    let out = ctx.push(&pkg.path, &[&registry.host()], &["--no-auth"]);
    assert_eq!(out.code, 6, "{out:?}");
    // One error line naming the host, with both remedies (--ca-file, --insecure).
    assert!(out.stderr.contains(&registry.host()), "{}", out.stderr);
    snap!(ctx, "unknown_ca", out.streams());
    // And the remedy works.
    ctx.push(&pkg.path, &[&registry.host()], &["--no-auth", "--insecure"])
        .success();
    let cert_dir = registry.ca_file().expect("CA");
    let cert_dir = cert_dir.parent().expect("dir").display().to_string();
    assert_pushed(&ctx, &pkg, &registry.host(), &["--cert-dir", &cert_dir]);
}

#[test]
fn dest_repo_without_credentials_is_an_error() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let pkg = ctx.write_package(
        "pkgs",
        &bundle_spec("demo", Container::Tar, StoreKind::OciLayout, &["acp/demo"]),
    );
    let out = ctx.push(&pkg.path, &[&registry.host()], &["--plain"]);
    assert_eq!(out.code, 2, "{out:?}");
    // Names the host and the --no-auth way out.
    assert!(out.stderr.contains(&registry.host()), "{}", out.stderr);
    snap!(ctx, "dest_repo_without_credentials", out.streams());
    assert_eq!(registry.requests("PUT", "/v2/"), 0);
    assert_eq!(registry.requests("POST", "/v2/"), 0);
}

// ---------------------------------------------------------------------------------------------
// What is uploaded: order, skipping, mounting, once per blob
// ---------------------------------------------------------------------------------------------

#[test]
fn blobs_then_child_manifests_then_index_then_tag() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host());
    let pkg = ctx.write_package(
        "pkgs",
        &bundle_spec("demo", Container::Tar, StoreKind::OciLayout, DEMO_IMAGES),
    );
    ctx.push(&pkg.path, &[&proxy.host()], PLAIN).success();
    let seen = proxy.requests();
    for (reference, digest) in &pkg.images {
        let (repo, tag) = repo_tag(reference, None);
        // An image is committed once its own blobs are in (uploads and mounts into its
        // repository), not after every blob of the run.
        let last_blob = seen
            .iter()
            .rposition(|s| {
                (s.method == "PUT" || s.method == "POST")
                    && s.path.starts_with(&format!("/v2/{repo}/blobs/uploads/"))
            })
            .expect("blob uploads");
        let puts: Vec<(usize, &str)> = seen
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.method == "PUT" && s.path.starts_with(&format!("/v2/{repo}/manifests/"))
            })
            .map(|(i, s)| (i, s.path.rsplit('/').next().unwrap_or("")))
            .collect();
        // Two platform manifests by digest, then the index by its tag, in that order, after every blob.
        assert_eq!(puts.len(), 3, "{repo}: {puts:?}");
        assert!(puts.iter().all(|(i, _)| *i > last_blob), "{puts:?}");
        assert!(puts[0].1.starts_with("sha256:") && puts[1].1.starts_with("sha256:"));
        assert_ne!(
            puts[0].1,
            digest.as_str(),
            "the index is not pushed by digest before its tag"
        );
        assert_eq!(puts[2].1, tag);
    }
    assert_pushed(&ctx, &pkg, &proxy.host(), NO_TLS);
}

#[test]
fn shared_blob_uploaded_once_and_second_push_uploads_nothing() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host());
    for (run, (label, container)) in [("tar", Container::Tar), ("tgz", Container::TarGz)]
        .into_iter()
        .enumerate()
    {
        let pkg = ctx.write_package(
            label,
            &bundle_spec(
                "demo",
                container,
                StoreKind::Distribution,
                &["acp/a", "acp/b", "acp/c", "acp/d"],
            ),
        );
        let dest = format!("{}/{label}", proxy.host());
        proxy.reset_counts();
        let first = ctx
            .push(&pkg.path, &[&dest], &["--plain", "--no-auth", "-o", "json"])
            .success();
        assert_eq!(
            blob_puts(&proxy),
            pkg.blob_count,
            "{label}: one PUT per unique blob"
        );
        let digests = blob_digests(&ctx, &pkg.path);
        assert_eq!(digests.len(), pkg.blob_count);
        for d in &digests {
            // Both runs push the same digests (to other prefixes): one commit per run.
            assert_eq!(puts_of(&registry, d), run + 1, "{label}: {d}");
        }
        // 2 shared layers (one per platform) mounted into the 3 other repositories.
        assert_eq!(first.json()["blobs"]["mounted"], 6, "{label}");
        assert_pushed(&ctx, &pkg, &dest, NO_TLS);

        proxy.reset_counts();
        let again = ctx
            .push(&pkg.path, &[&dest], &["--plain", "--no-auth", "-o", "json"])
            .success();
        assert_eq!(blob_posts(&proxy), 0, "{label}: second push opened uploads");
        assert_eq!(blob_puts(&proxy), 0, "{label}: second push uploaded");
        assert_eq!(
            manifest_puts(&proxy),
            0,
            "{label}: second push wrote manifests"
        );
        let report = again.json();
        assert_eq!(report["blobs"]["uploaded"], 0);
        assert!(
            report["images"]
                .as_array()
                .expect("images")
                .iter()
                .all(|i| i["result"] == "unchanged"),
            "{report}"
        );
    }
}

#[test]
fn each_shared_blob_committed_exactly_once() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let pkg = ctx.write_package(
        "pkgs",
        &bundle_spec(
            "demo",
            Container::Directory,
            StoreKind::OciLayout,
            &["acp/a", "acp/b", "acp/c"],
        ),
    );
    ctx.push(&pkg.path, &[&registry.host()], PLAIN).success();
    for d in blob_digests(&ctx, &pkg.path) {
        assert_eq!(puts_of(&registry, &d), 1, "{d}");
    }
}

#[test]
fn present_blobs_are_skipped_and_other_repositories_are_mounted_from() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host());
    // Same seed: acp/one's layers are identical in both packages; acp/two shares the first layer.
    // Layers of 1 MiB and more are checked before a push (smaller ones are asked about by their
    // upload, and sent again where only another repository holds them).
    let mib_layers = |mut s: violet::synth::SynthSpec| {
        for img in &mut s.images {
            img.layer_size = (1 << 20) + 4096;
        }
        s
    };
    let one = ctx.write_package(
        "first",
        &mib_layers(bundle_spec(
            "one",
            Container::Tar,
            StoreKind::OciLayout,
            &["acp/one"],
        )),
    );
    ctx.push(&one.path, &[&proxy.host()], PLAIN).success();

    let both = ctx.write_package(
        "second",
        &mib_layers(bundle_spec(
            "both",
            Container::TarGz,
            StoreKind::Distribution,
            &["acp/one", "acp/two"],
        )),
    );
    proxy.reset_counts();
    // acp/one's own blobs were asked about by mounts from acp/one in the first push.
    let mounts_from_one = registry.requests("POST", "from=acp%2Fone");
    let out = ctx
        .push(
            &both.path,
            &[&proxy.host()],
            &["--plain", "--no-auth", "-o", "json"],
        )
        .success();
    let report = out.json();
    // acp/one: its tag already points at the package's digest, which proves its graph: skipped and
    // unchanged without a check per blob. acp/two: its two shared layers are mounted from acp/one,
    // its own config and layers uploaded.
    assert_eq!(report["blobs"]["mounted"], 2, "{report}");
    assert_eq!(report["images"][0]["result"], "unchanged", "{report}");
    assert_eq!(report["images"][1]["result"], "pushed", "{report}");
    // acp/two per platform: 1 own layer + 1 config.
    assert_eq!(blob_puts(&proxy), 4, "{:?}", proxy.requests());
    assert_eq!(proxy.count(Some("PUT"), "^/v2/acp/one/"), 0);
    assert_eq!(proxy.count(Some("HEAD"), "^/v2/acp/one/blobs/"), 0);
    assert_eq!(proxy.count(Some("HEAD"), "^/v2/acp/one/manifests/"), 1);
    assert_eq!(
        registry.requests("POST", "from=acp%2Fone") - mounts_from_one,
        2
    );
    assert_pushed(&ctx, &both, &proxy.host(), NO_TLS);

    // --verify-existing checks every blob of acp/one again (a registry that may have lost some).
    proxy.reset_counts();
    let out = ctx
        .push(
            &both.path,
            &[&proxy.host()],
            &["--plain", "--no-auth", "--verify-existing", "-o", "json"],
        )
        .success();
    assert!(
        proxy.count(Some("HEAD"), "^/v2/acp/one/blobs/") > 0,
        "{:?}",
        proxy.requests()
    );
    assert_eq!(out.json()["images"][0]["result"], "unchanged");
}

#[test]
fn requests_a_push_sends_are_what_the_graph_needs() {
    // A first push asks once per image whether its tag is there; each blob (all small here) goes
    // up once, a POST that also asks whether the repository has it (a mount from itself) and a
    // PUT, with no HEAD first; each manifest is written without a check first. A rerun asks once
    // per image and sends nothing else.
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host());
    let pkg = ctx.write_package(
        "pkgs",
        &bundle_spec("demo", Container::Tar, StoreKind::OciLayout, DEMO_IMAGES),
    );
    let images = pkg.images.len();
    // Index + one manifest per platform (two) for every image.
    let manifests = images * 3;
    ctx.push(&pkg.path, &[&proxy.host()], PLAIN).success();
    assert_eq!(
        proxy.count(Some("HEAD"), "/manifests/"),
        images,
        "{:?}",
        proxy.requests()
    );
    assert_eq!(proxy.count(Some("PUT"), "/manifests/"), manifests);
    assert_eq!(blob_puts(&proxy), pkg.blob_count);
    assert_eq!(proxy.count(Some("HEAD"), "/blobs/"), 0);
    assert_eq!(proxy.count(Some("GET"), "/manifests/"), 0);

    proxy.reset_counts();
    ctx.push(&pkg.path, &[&proxy.host()], PLAIN).success();
    assert_eq!(proxy.requests().len(), images + 1, "{:?}", proxy.requests());
    assert_eq!(proxy.count(Some("HEAD"), "/manifests/"), images);
}

#[test]
fn small_blobs_already_there_are_found_by_their_upload_and_not_sent() {
    // A new tag over blobs the repository holds (the same image pushed under another version):
    // no blob is HEADed; each upload opens with a mount from its own repository, which the
    // registry answers with 201, so no byte is sent and the blobs are reported as skipped.
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host());
    let v1 = ctx.write_package(
        "v1",
        &bundle_spec("one", Container::Tar, StoreKind::OciLayout, &["acp/one"]),
    );
    ctx.push(&v1.path, &[&proxy.host()], PLAIN).success();
    let mut spec = bundle_spec("one", Container::Tar, StoreKind::OciLayout, &["acp/one"]);
    spec.images[0].tag = "v2.0.0".into();
    let v2 = ctx.write_package("v2", &spec);
    proxy.reset_counts();
    let probes = registry.requests("POST", "from=acp%2Fone");
    let out = ctx
        .push(
            &v2.path,
            &[&proxy.host()],
            &["--plain", "--no-auth", "-o", "json"],
        )
        .success();
    let report = out.json();
    assert_eq!(report["images"][0]["result"], "pushed", "{report}");
    assert_eq!(report["blobs"]["uploaded"], 0, "{report}");
    assert_eq!(report["blobs"]["skipped"], v2.blob_count, "{report}");
    assert_eq!(blob_puts(&proxy), 0, "{:?}", proxy.requests());
    assert_eq!(proxy.count(Some("HEAD"), "/blobs/"), 0);
    assert_eq!(
        registry.requests("POST", "from=acp%2Fone") - probes,
        v2.blob_count
    );
    assert_pushed(&ctx, &v2, &proxy.host(), NO_TLS);
}

#[tokio::test]
async fn the_progress_total_leaves_out_blobs_an_upload_found_there() {
    // The bar counts the bytes to read; a small blob whose upload finds it at the destination is
    // never read, so it leaves the total and the bar still ends at 100 %.
    use violet::output::progress::Progress;
    use violet::plan::{Destination, Plan};
    use violet::registry::{Client, Credentials, RegistryConfig};
    use violet::scheduler::Scheduler;

    let ctx = TestContext::new();
    let registry = Registry::plain();
    let v1 = ctx.write_package(
        "v1",
        &bundle_spec("one", Container::Tar, StoreKind::OciLayout, &["acp/one"]),
    );
    ctx.push(&v1.path, &[&registry.host()], PLAIN).success();
    let mut spec = bundle_spec("one", Container::Tar, StoreKind::OciLayout, &["acp/one"]);
    spec.images[0].tag = "v2.0.0".into();
    let v2 = ctx.write_package("v2", &spec);

    let pkg = violet::package::load::open(&v2.path).expect("package");
    let (dest, _) = Destination::parse(&registry.host()).expect("destination");
    let plan = Plan::new(&[pkg], &[dest]);
    let client = Client::new(RegistryConfig {
        host: registry.host(),
        plain: true,
        insecure: false,
        ca_files: vec![],
        credentials: Credentials::Anonymous,
        retries: 0,
        chunk_size: None,
    })
    .expect("client");
    let progress = Progress::hidden();
    let reports = Scheduler::new(vec![client], 4, progress.clone())
        .push_all(&plan)
        .await;
    assert_eq!(reports[0].blobs.skipped, v2.blob_count);
    assert_eq!(reports[0].bytes_uploaded, 0);
    assert_eq!((progress.done(), progress.total()), (0, 0));
}

#[test]
fn a_registry_that_refuses_a_mount_from_the_same_repository_gets_plain_uploads() {
    // The spec lets a registry decline a mount with 202; one that answers with an error instead
    // costs one refused request, after which uploads open plain sessions.
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host());
    // Every mount into acp/demo from acp/demo itself is refused.
    proxy.inject(
        Rule::new(
            Some("POST"),
            "^/v2/acp/demo/blobs/uploads/$",
            Fault::Status(404),
        )
        .query("mount=.*&from=acp%2Fdemo$")
        .times(usize::MAX),
    );
    let pkg = ctx.write_package(
        "refused",
        &bundle_spec("demo", Container::Tar, StoreKind::OciLayout, DEMO_IMAGES),
    );
    let out = ctx.push(
        &pkg.path,
        &[&proxy.host()],
        &["--plain", "--no-auth", "--jobs", "1"],
    );
    let out = out.success();
    let refused = proxy
        .requests()
        .iter()
        .filter(|s| s.fault.is_some())
        .count();
    assert_eq!(refused, 1, "{:?}", proxy.requests());
    assert_eq!(blob_puts(&proxy), pkg.blob_count, "{}", out.stdout);
    assert_pushed(&ctx, &pkg, &proxy.host(), NO_TLS);
}

#[test]
fn an_image_is_committed_once_its_blobs_are_in_while_others_still_move() {
    // acp/a's first layer upload is cut and retried after a backoff; acp/b (no blob in common)
    // does not wait for it: its tag is written before acp/a's retried upload starts.
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host());
    let mut spec = bundle_spec(
        "early",
        Container::Tar,
        StoreKind::OciLayout,
        &["acp/a", "acp/b"],
    );
    for img in &mut spec.images {
        img.shared_layers = 0;
    }
    spec.images[0].layer_size = 256 << 10;
    let pkg = ctx.write_package("early", &spec);
    proxy.inject(Rule::new(
        Some("PUT"),
        "^/v2/acp/a/blobs/uploads/",
        Fault::ResetDuringRequest {
            after_bytes: 64 << 10,
        },
    ));
    ctx.push(&pkg.path, &[&proxy.host()], PLAIN).success();
    let seen = proxy.requests();
    let b_tag = seen
        .iter()
        .position(|s| s.method == "PUT" && s.path == "/v2/acp/b/manifests/v1.0.0")
        .expect("acp/b tagged");
    let a_retry = seen
        .iter()
        .rposition(|s| s.method == "PUT" && s.path.starts_with("/v2/acp/a/blobs/uploads/"))
        .expect("acp/a's blobs uploaded");
    assert!(b_tag < a_retry, "{seen:?}");
    assert_pushed(&ctx, &pkg, &proxy.host(), NO_TLS);
}

#[test]
fn a_present_tag_proves_its_graph_and_verify_existing_repairs_a_lost_blob() {
    // A rerun trusts a tag at the package's digest (one HEAD per image, no blob checks). A
    // registry that lost a blob under an existing tag is repaired with --verify-existing.
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let pkg = ctx.write_package(
        "lost",
        &bundle_spec("lost", Container::Tar, StoreKind::OciLayout, &["acp/lost"]),
    );
    ctx.push(&pkg.path, &[&registry.host()], PLAIN).success();
    let proxy = FaultProxy::start(&registry.host());
    let rerun = ctx
        .push(
            &pkg.path,
            &[&proxy.host()],
            &["--plain", "--no-auth", "-o", "json"],
        )
        .success();
    assert_eq!(
        proxy.count(Some("HEAD"), "/blobs/"),
        0,
        "{:?}",
        proxy.requests()
    );
    assert_eq!(
        proxy.count(Some("HEAD"), "/manifests/"),
        1,
        "{:?}",
        proxy.requests()
    );
    assert_eq!(rerun.json()["images"][0]["result"], "unchanged");

    // Delete one layer's data behind the registry's back (as a broken storage would).
    registry.lose_largest_blob();
    let lost = ctx.push(&pkg.path, &[&registry.host()], PLAIN).success();
    assert!(lost.stdout.contains("0 uploaded"), "{}", lost.stdout);
    let out = ctx
        .push(
            &pkg.path,
            &[&registry.host()],
            &["--plain", "--no-auth", "--verify-existing", "-o", "json"],
        )
        .success();
    assert!(
        out.json()["blobs"]["uploaded"].as_u64().unwrap() >= 1,
        "{}",
        out.stdout
    );
    assert_pushed(&ctx, &pkg, &registry.host(), NO_TLS);
}

// ---------------------------------------------------------------------------------------------
// Faults, interruptions, reruns
// ---------------------------------------------------------------------------------------------

#[test]
fn completes_through_resets_500_503_retry_after_and_429() {
    let ctx = TestContext::new();
    for (label, container) in [("tar", Container::Tar), ("tgz", Container::TarGz)] {
        let registry = Registry::plain();
        let proxy = FaultProxy::start(&registry.host());
        let mut s = bundle_spec("demo", container, StoreKind::OciLayout, DEMO_IMAGES);
        s.images[0].layer_size = 256 << 10;
        let pkg = ctx.write_package(label, &s);
        proxy.inject(Rule::new(
            Some("PUT"),
            "/blobs/uploads/",
            Fault::ResetDuringRequest {
                after_bytes: 64 << 10,
            },
        ));
        proxy.inject(Rule::new(Some("POST"), "/blobs/uploads/$", Fault::Status(500)).after(1));
        proxy.inject(Rule::new(
            Some("HEAD"),
            "/manifests/v1.0.0$",
            Fault::Unavailable {
                retry_after_secs: 1,
            },
        ));
        proxy.inject(Rule::new(
            Some("PUT"),
            "/manifests/",
            Fault::TooManyRequests {
                retry_after_secs: Some(1),
            },
        ));
        proxy.inject(Rule::new(
            Some("PUT"),
            "/manifests/v1.0.0$",
            Fault::Status(503),
        ));
        let out = ctx.push(
            &pkg.path,
            &[&proxy.host()],
            &["--plain", "--no-auth", "--retries", "3"],
        );
        let out = out.success();
        let faults = proxy
            .requests()
            .iter()
            .filter(|s| s.fault.is_some())
            .count();
        assert_eq!(
            faults,
            5,
            "{label}: every fault was met: {:?}",
            proxy.requests()
        );
        assert!(out.stdout.contains("0 failed"), "{}", out.stdout);
        assert_pushed(&ctx, &pkg, &proxy.host(), NO_TLS);
    }
}

/// A proxy in front of the registry with a body-size limit (nginx `client_max_body_size`) answers
/// the first monolithic upload with 413: the client switches to chunked PATCH uploads for that
/// registry and the push completes, from a re-readable .tar and from a single-pass .tgz alike.
#[test]
fn body_too_large_switches_to_chunked_uploads() {
    let ctx = TestContext::new();
    for (label, container) in [("tar", Container::Tar), ("tgz", Container::TarGz)] {
        let registry = Registry::plain();
        let proxy = FaultProxy::start(&registry.host());
        let mut s = bundle_spec("big", container, StoreKind::OciLayout, &["acp/big"]);
        s.images[0].layer_size = 256 << 10;
        let pkg = ctx.write_package(&format!("413-{label}"), &s);
        proxy.inject(Rule::new(Some("PUT"), "/blobs/uploads/", Fault::Status(413)).times(1));
        ctx.push(&pkg.path, &[&proxy.host()], PLAIN).success();
        assert!(
            proxy.count(Some("PATCH"), "/blobs/uploads/") > 0,
            "{label}: chunked uploads after the 413: {:?}",
            proxy.requests()
        );
        assert_pushed(&ctx, &pkg, &proxy.host(), NO_TLS);
    }
}

#[test]
fn registry_stopped_mid_push_then_rerun_finishes() {
    let ctx = TestContext::new();
    let mut registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host());
    let pkg = ctx.write_package(
        "pkgs",
        &bundle_spec("demo", Container::Tar, StoreKind::OciLayout, DEMO_IMAGES),
    );
    // One upload at a time; the third PUT is held (5 s: ample to stop the registry, which takes
    // milliseconds) and then forwarded to a registry that is gone.
    proxy.inject(
        Rule::new(
            Some("PUT"),
            "/blobs/uploads/",
            Fault::Delay(Duration::from_secs(5)),
        )
        .after(2),
    );
    let child = spawn_push(
        &ctx,
        &pkg.path,
        &proxy.host(),
        &["--jobs", "1", "--retries", "0"],
    );
    wait_for(|| blob_puts(&proxy) >= 3, "the third blob upload");
    registry.stop();
    let out = finish(child);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("FAILED"), "{}", out.stdout);

    registry.restart();
    proxy.clear_faults();
    for (reference, _) in &pkg.images {
        let (repo, tag) = repo_tag(reference, None);
        assert!(
            !manifest_exists(&ctx, &proxy.host(), &repo, &tag),
            "{reference} tagged"
        );
    }
    proxy.reset_counts();
    let out = ctx
        .push(
            &pkg.path,
            &[&proxy.host()],
            &["--plain", "--no-auth", "-o", "json"],
        )
        .success();
    // The two blobs committed before the stop are skipped.
    assert_eq!(blob_puts(&proxy), pkg.blob_count - 2, "{}", out.stdout);
    assert_pushed(&ctx, &pkg, &proxy.host(), NO_TLS);
}

#[test]
fn kill_9_mid_upload_then_rerun_uploads_only_what_is_missing() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host());
    let pkg = ctx.write_package(
        "pkgs",
        &bundle_spec(
            "demo",
            Container::Directory,
            StoreKind::Distribution,
            DEMO_IMAGES,
        ),
    );
    // Three uploads pass; the fourth hangs until violet is killed.
    proxy.inject(
        Rule::new(
            Some("PUT"),
            "/blobs/uploads/",
            Fault::Delay(Duration::from_secs(600)),
        )
        .after(3)
        .times(usize::MAX),
    );
    let mut child = spawn_push(&ctx, &pkg.path, &proxy.host(), &["--jobs", "1"]);
    wait_for(|| blob_puts(&proxy) >= 4, "the fourth blob upload");
    child.kill().expect("kill -9 violet");
    let _ = child.wait();
    proxy.clear_faults();
    for (reference, _) in &pkg.images {
        let (repo, tag) = repo_tag(reference, None);
        assert!(
            !manifest_exists(&ctx, &proxy.host(), &repo, &tag),
            "{reference} tagged"
        );
    }
    proxy.reset_counts();
    ctx.push(&pkg.path, &[&proxy.host()], PLAIN).success();
    assert_eq!(
        blob_puts(&proxy),
        pkg.blob_count - 3,
        "{:?}",
        proxy.requests()
    );
    assert_pushed(&ctx, &pkg, &proxy.host(), NO_TLS);
}

fn spawn_push(ctx: &TestContext, path: &Path, dest: &str, args: &[&str]) -> std::process::Child {
    let mut cmd = ctx.push_command(path, &[dest], PLAIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().expect("spawn violet")
}

fn finish(child: std::process::Child) -> Output {
    let out = child.wait_with_output().expect("wait for violet");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Polls a condition the test itself drives toward (not a timing assertion: the bound only
/// turns a hang into a failure).
fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// Corrupt blobs and directories of packages
// ---------------------------------------------------------------------------------------------

#[test]
fn corrupt_blob_leaves_no_tag_for_its_image_and_tags_the_others() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    for (label, container) in [("dir", Container::Directory), ("tar", Container::Tar)] {
        let mut s = bundle_spec(
            "demo",
            container,
            StoreKind::OciLayout,
            &["acp/bad", "acp/good"],
        );
        s.images[0].shared_layers = 0;
        s.images[1].shared_layers = 0;
        // The largest blob, the one corrupt_blob picks, is a layer of acp/bad.
        s.images[0].layer_size = 64 << 10;
        let pkg = ctx.write_package(label, &s);
        let bad = synth::corrupt_blob(&pkg.path).expect("corrupt a blob");
        let dest = format!("{}/{label}", registry.host());
        let out = ctx.push(&pkg.path, &[&dest], PLAIN);
        assert_eq!(out.code, 4, "{label}: {out:?}");
        let text = out.all();
        assert!(
            text.contains(bad.as_str()),
            "{label}: digest not named:\n{text}"
        );
        // The FAILED row of acp/bad: the blob, the package and its entry, expected and got.
        let failed: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.starts_with("FAILED") || l.starts_with("    "))
            .collect();
        snap!(ctx, format!("corrupt_blob_{label}"), failed.join("\n"));
        assert!(!manifest_exists(
            &ctx,
            &registry.host(),
            &format!("{label}/acp/bad"),
            "v1.0.0"
        ));
        assert!(manifest_exists(
            &ctx,
            &registry.host(),
            &format!("{label}/acp/good"),
            "v1.0.0"
        ));
        // The corrupt bytes were never committed.
        assert!(!blob_present(
            &ctx,
            &registry.host(),
            &format!("{label}/acp/bad"),
            &bad
        ));
    }
}

#[test]
fn a_blob_changed_inside_an_intact_tgz_is_refused_by_the_registrys_check() {
    // A hostile or badly rebuilt .tgz: one layer's bytes changed and the archive compressed again,
    // so the gzip trailer and the tar end are right. Only the blob's digest can tell; violet counts
    // the bytes of the pass and the registry's check refuses them: exit 4, no tag, no blob.
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let pkg = ctx.write_package("tgz", &damaged_blob_spec(Container::TarGz));
    let mut entries = crate::mutation::read_entries(&pkg.path);
    let layer = entries
        .iter_mut()
        .filter(|e| e.name.starts_with("blobs/sha256/"))
        .max_by_key(|e| e.data.len())
        .expect("a layer");
    let bad = Digest::from_hex(layer.name.trim_start_matches("blobs/sha256/")).expect("digest");
    layer.data[100] ^= 0x01;
    crate::mutation::write_entries(&pkg.path, Container::TarGz, &entries);
    let out = ctx.push(&pkg.path, &[&registry.host()], PLAIN);
    assert_damaged_blob_refused(&ctx, &registry, &out, &bad);
}

#[test]
fn a_corrupt_blob_sent_in_chunks_is_refused_by_the_registrys_check_as_a_damaged_package() {
    // violet counts a package entry's bytes and leaves the digest to the registry's check at the
    // final PUT: with chunks, that PUT carries no body, and its DIGEST_INVALID is still the
    // package's fault (exit 4, the entry named), not a registry failure.
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let pkg = ctx.write_package("chunked", &damaged_blob_spec(Container::Tar));
    let bad = synth::corrupt_blob(&pkg.path).expect("corrupt a blob");
    let out = ctx.push(
        &pkg.path,
        &[&registry.host()],
        &["--plain", "--no-auth", "--chunk-size", "16KiB"],
    );
    assert_damaged_blob_refused(&ctx, &registry, &out, &bad);
}

/// One image, acp/bad, whose 64 KiB layers no other image shares: the blob a test damages is
/// needed by that image alone.
fn damaged_blob_spec(container: Container) -> violet::synth::SynthSpec {
    let mut s = bundle_spec("demo", container, StoreKind::OciLayout, &["acp/bad"]);
    s.images[0].shared_layers = 0;
    s.images[0].layer_size = 64 << 10;
    s
}

/// The registry's digest check refused blob `bad` of image acp/bad: the package's fault (exit 4,
/// its entry named), no tag, and the bytes never committed.
fn assert_damaged_blob_refused(ctx: &TestContext, registry: &Registry, out: &Output, bad: &Digest) {
    assert_eq!(out.code, 4, "{out:?}");
    let text = out.all();
    assert!(text.contains("DIGEST_INVALID"), "{text}");
    assert!(
        text.contains(&format!("entry blobs/sha256/{}", bad.hex())),
        "{text}"
    );
    assert!(!manifest_exists(ctx, &registry.host(), "acp/bad", "v1.0.0"));
    assert!(!blob_present(ctx, &registry.host(), "acp/bad", bad));
}

fn blob_present(ctx: &TestContext, host: &str, repo: &str, digest: &Digest) -> bool {
    let mut cmd = Command::new("curl");
    ctx.clean_env(&mut cmd);
    cmd.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-I",
        "--max-time",
        "30",
    ])
    .arg(format!("http://{host}/v2/{repo}/blobs/{digest}"));
    run(cmd, None).stdout.trim() == "200"
}

#[test]
fn directory_of_five_packages_uploads_each_shared_blob_once() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host());
    let containers = [
        Container::Tar,
        Container::TarGz,
        Container::TarZst,
        Container::Directory,
        Container::TarGz,
    ];
    let mut pkgs = Vec::new();
    for (i, container) in containers.into_iter().enumerate() {
        let store = if i % 2 == 0 {
            StoreKind::OciLayout
        } else {
            StoreKind::Distribution
        };
        let name = format!("pkg{i}");
        let repo = format!("acp/pkg{i}");
        pkgs.push(ctx.write_package(
            "dir",
            &bundle_spec(&name, container, store, &[repo.as_str()]),
        ));
    }
    let out = ctx
        .push(
            ctx.path().join("dir"),
            &[&proxy.host()],
            &["--plain", "--no-auth", "-o", "json"],
        )
        .success();
    let report = out.json();
    assert_eq!(
        report["images"].as_array().map(Vec::len),
        Some(5),
        "{report}"
    );
    // 2 shared layers + per package 2 configs and 2 own layers.
    let unique = 2 + 5 * 4;
    assert_eq!(blob_puts(&proxy), unique, "one upload per unique blob");
    assert_eq!(report["blobs"]["mounted"], 2 * 4, "{report}");
    for p in &pkgs {
        for d in blob_digests(&ctx, &p.path) {
            assert_eq!(puts_of(&registry, &d), 1, "{d} of {}", p.path.display());
        }
        assert_pushed(&ctx, p, &proxy.host(), NO_TLS);
    }
    // The per-package table: five ok rows; the uploaded column sums to what moved, and each
    // package's uploaded + skipped bytes are its blob bytes (shared layers count for one).
    let rows = report["packages"].as_array().expect("packages");
    assert_eq!(rows.len(), 5, "{report}");
    let mut uploaded = 0;
    for (row, p) in rows.iter().zip(&pkgs) {
        assert_eq!(row["result"], "ok", "{row}");
        assert_eq!(row["type"], "bundle", "{row}");
        assert_eq!(row["images"], 1, "{row}");
        assert_eq!(row["crs_written"], 0, "{row}");
        let (u, k) = (
            row["bytes_uploaded"].as_u64().expect("bytes"),
            row["bytes_skipped"].as_u64().expect("bytes"),
        );
        assert_eq!(u + k, p.blob_bytes, "{row}");
        uploaded += u;
    }
    assert_eq!(report["bytes_uploaded"], uploaded, "{report}");
    // The rerun: everything skipped, and the text table says so.
    let out = ctx
        .push(ctx.path().join("dir"), &[&proxy.host()], PLAIN)
        .success();
    let table: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("PACKAGE "))
        .collect();
    assert_eq!(table.len(), 6, "{}", out.stdout);
    // Five bundle rows, each ok with 0 B uploaded.
    snap!(ctx, "directory_rerun_table", table.join("\n"));
}

#[test]
fn one_corrupt_package_in_a_directory_does_not_stop_the_others() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let good_a = ctx.write_package(
        "dir",
        &bundle_spec(
            "gooda",
            Container::TarGz,
            StoreKind::OciLayout,
            &["acp/gooda"],
        ),
    );
    let mut s = bundle_spec("bad", Container::Tar, StoreKind::Distribution, &["acp/bad"]);
    s.images[0].layer_size = 64 << 10;
    let bad = ctx.write_package("dir", &s);
    let corrupt = synth::corrupt_blob(&bad.path).expect("corrupt");
    let good_b = ctx.write_package(
        "dir",
        &bundle_spec(
            "goodb",
            Container::TarZst,
            StoreKind::OciLayout,
            &["acp/goodb"],
        ),
    );
    // And package files that cannot be read at all: a download cut short, and garbage.
    let truncated = ctx.write_package(
        "staging",
        &bundle_spec("cut", Container::TarGz, StoreKind::OciLayout, &["acp/cut"]),
    );
    let bytes = std::fs::read(&truncated.path).expect("read");
    std::fs::write(
        ctx.path().join("dir/cut.stable.ALL.v1.0.0.tgz"),
        &bytes[..bytes.len() / 2],
    )
    .expect("write");
    std::fs::write(
        ctx.path().join("dir/broken.ALL.v1.0.0.tgz"),
        b"not a gzip stream",
    )
    .expect("write");
    // The shared layers (same seed) are carried by cut, gooda and goodb, all decoded front to
    // back; cut sorts first, so its truncated copy is tried first and the good ones must take over.
    let out = ctx.push(ctx.path().join("dir"), &[&registry.host()], PLAIN);
    assert_ne!(out.code, 0, "{out:?}");
    let text = out.all();
    assert!(text.contains(corrupt.as_str()), "{text}");
    assert!(text.contains("broken.ALL.v1.0.0.tgz"), "{text}");
    assert!(text.contains("cut.stable.ALL.v1.0.0.tgz"), "{text}");
    assert!(!manifest_exists(
        &ctx,
        &registry.host(),
        "acp/cut",
        "v1.0.0"
    ));
    assert_pushed(&ctx, &good_a, &registry.host(), NO_TLS);
    assert_pushed(&ctx, &good_b, &registry.host(), NO_TLS);
    assert!(!manifest_exists(
        &ctx,
        &registry.host(),
        "acp/bad",
        "v1.0.0"
    ));
    // The table: one row per package file, the three bad ones failed with their reason.
    // The table: one row per package file, gooda and goodb ok, the three bad ones failed with
    // their reason (bad names the corrupt blob). The byte columns depend on which copy of a
    // shared layer got there first, so the snapshot keeps the name and result columns.
    let table: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("PACKAGE "))
        .collect();
    assert_eq!(table.len(), 6, "{}", out.stdout);
    let results: Vec<String> = table[1..]
        .iter()
        .map(|l| {
            let name = l.split_whitespace().next().unwrap_or_default();
            let result = match l.find(" failed: ") {
                Some(i) => &l[i + 1..],
                None => l.rsplit(' ').next().unwrap_or_default(),
            };
            format!("{name}  {result}")
        })
        .collect();
    snap!(ctx, "directory_with_corrupt_packages", results.join("\n"));
    let v = ctx
        .push(
            ctx.path().join("dir"),
            &[&registry.host()],
            &["--plain", "--no-auth", "-o", "json"],
        )
        .json();
    let rows = v["packages"].as_array().expect("packages");
    assert_eq!(rows.len(), 5, "{v}");
    let failed: Vec<&serde_json::Value> = rows.iter().filter(|r| r["result"] == "failed").collect();
    assert_eq!(failed.len(), 3, "{v}");
    assert!(failed.iter().all(|r| r["error"].is_string()), "{v}");
}

// ---------------------------------------------------------------------------------------------
// --dry-run and --output json
// ---------------------------------------------------------------------------------------------

#[test]
fn dry_run_lists_images_destinations_and_bytes_and_writes_nothing() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host());
    let pkg = ctx.write_package(
        "pkgs",
        &bundle_spec("demo", Container::TarZst, StoreKind::OciLayout, DEMO_IMAGES),
    );
    let dest = format!("{}/mirror", proxy.host());
    let text = ctx
        .push(&pkg.path, &[&dest], &["--plain", "--no-auth", "--dry-run"])
        .success();
    // `SOURCE -> DESTINATION  DIGEST` per image, then "would upload N blobs".
    snap!(ctx, "dry_run", text.streams());
    let json = ctx
        .push(
            &pkg.path,
            &[&dest],
            &["--plain", "--no-auth", "--dry-run", "-o", "json"],
        )
        .success();
    let v = json.json();
    assert_eq!(v["plan"]["blobs_to_upload"], pkg.blob_count, "{v}");
    assert_eq!(v["plan"]["bytes_to_upload"], pkg.blob_bytes, "{v}");
    assert_eq!(
        v["plan"]["images"][0]["destination"],
        at_destination(&pkg.images[0].0, &dest)
    );
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        assert_eq!(proxy.count(Some(method), "."), 0, "--dry-run sent {method}");
    }
    // After the push, a dry run has nothing left to upload.
    ctx.push(&pkg.path, &[&dest], PLAIN).success();
    let v = ctx
        .push(
            &pkg.path,
            &[&dest],
            &["--plain", "--no-auth", "--dry-run", "-o", "json"],
        )
        .success()
        .json();
    assert_eq!(v["plan"]["blobs_to_upload"], 0, "{v}");
    assert_eq!(v["plan"]["bytes_to_upload"], 0, "{v}");
}

#[test]
fn json_report_of_a_push() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let pkg = ctx.write_package(
        "pkgs",
        &bundle_spec("demo", Container::Tar, StoreKind::Distribution, DEMO_IMAGES),
    );
    let dest = format!("{}/p", registry.host());
    let v = ctx
        .push(&pkg.path, &[&dest], &["--plain", "--no-auth", "-o", "json"])
        .success()
        .json();
    assert_eq!(v["destination"]["host"], registry.host());
    assert_eq!(v["destination"]["prefix"], "p");
    assert_eq!(v["packages"][0]["name"], "demo");
    assert_eq!(v["packages"][0]["images"], 2);
    assert_eq!(v["blobs"]["uploaded"], pkg.blob_count, "{v}");
    assert_eq!(v["blobs"]["mounted"], 2, "{v}");
    assert_eq!(v["bytes_uploaded"], pkg.blob_bytes, "{v}");
    snap!(
        ctx,
        "json_report",
        serde_json::to_string_pretty(&v).expect("json")
    );
    let images = v["images"].as_array().expect("images");
    assert_eq!(images.len(), pkg.images.len());
    for (reference, digest) in &pkg.images {
        let img = images
            .iter()
            .find(|i| i["source"] == reference.as_str())
            .unwrap_or_else(|| panic!("{reference} not reported: {v}"));
        assert_eq!(img["source"], reference.as_str());
        assert_eq!(img["destination"], at_destination(reference, &dest));
        assert_eq!(img["digest"], digest.as_str());
        assert_eq!(img["result"], "pushed");
    }
}
