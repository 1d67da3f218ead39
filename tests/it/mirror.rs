//! `violet mirror` end to end: synthetic packages pushed into a real registry A, mirrored into a
//! real registry B (plain, or htpasswd over TLS), and skopeo as the independent check that every
//! tag has the same digest in both.

use crate::support::TestContext;
use crate::support::packages::{
    Container, NO_TLS, PLAIN, SOURCE_REGISTRY, StoreKind, SynthPackage,
};
use crate::support::proxy::{Fault, FaultProxy, Rule};
use crate::support::registry::{Auth, PASSWORD, Registry, RegistryOptions, USER};
use crate::support::skopeo::{skopeo_copy_all, skopeo_inspect_raw_digest};

/// The demo images as a `.tgz` distribution-store package named `name`, pushed into `registry`:
/// the source every mirror scenario starts from.
fn seed(ctx: &TestContext, name: &str, registry: &Registry) -> SynthPackage {
    ctx.seed_demo_images_with(
        name,
        Container::TarGz,
        StoreKind::Distribution,
        &registry.host(),
        PLAIN,
        "",
    )
}

/// `acp/demo:v1.0.0` from `harbor.demo.io/acp/demo:v1.0.0`.
fn relative(reference: &str) -> String {
    reference
        .strip_prefix(&format!("{SOURCE_REGISTRY}/"))
        .expect("synthetic reference")
        .to_string()
}

#[test]
fn multi_arch_images_keep_their_index_digest_and_shared_blobs_cross_once() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let b = Registry::plain();
    let pkg = seed(&ctx, "demo", &a);
    let images: Vec<String> = pkg.images.iter().map(|(r, _)| relative(r)).collect();
    let to = format!("{}/dr", b.host());

    let mut args = vec![
        "mirror".to_string(),
        "--from".into(),
        a.host(),
        "--to".into(),
        to.clone(),
        "--from-plain".into(),
        "--plain".into(),
        "--no-auth".into(),
        "-o".into(),
        "json".into(),
    ];
    args.extend(images.iter().cloned());
    let out = ctx.run(args.clone()).success();
    let report = out.json();
    assert_eq!(report["parity"], true, "{report:#}");
    // Two images × two platforms: 2 configs + 2 distinct layers each, the shared first layer
    // once per platform. It crosses the network once and is mounted into the second repository.
    let uploaded = report["blobs"]["uploaded"].as_u64().unwrap();
    let mounted = report["blobs"]["mounted"].as_u64().unwrap();
    assert_eq!(mounted, 2, "{report:#}");
    assert_eq!(uploaded as usize + 2, pkg.blob_count + 2, "{report:#}");

    for (reference, digest) in &pkg.images {
        let rel = relative(reference);
        let at_a = skopeo_inspect_raw_digest(&ctx, &format!("docker://{}/{rel}", a.host()), NO_TLS);
        let at_b = skopeo_inspect_raw_digest(&ctx, &format!("docker://{to}/{rel}"), NO_TLS);
        assert_eq!(&at_a, digest);
        assert_eq!(at_a, at_b, "{rel}: the index digest changed");
        let entry = report["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["destination"] == format!("{to}/{rel}"))
            .expect("image in report");
        assert_eq!(entry["status"], "ok");
        assert_eq!(entry["sourceDigest"], digest.to_string());
        assert_eq!(entry["destinationDigest"], digest.to_string());
        // An index and one manifest per platform.
        assert_eq!(entry["manifests"], 3);
    }

    // A second run finds everything in place: no blob crosses again, no manifest is written.
    let puts_before = b.requests("PUT", "/manifests/");
    let again = ctx.run(args).success().json();
    assert_eq!(again["parity"], true);
    assert_eq!(again["blobs"]["uploaded"], 0, "{again:#}");
    assert_eq!(again["blobs"]["mounted"], 0, "{again:#}");
    assert_eq!(b.requests("PUT", "/manifests/"), puts_before);
}

#[test]
fn from_package_to_an_authenticated_tls_registry() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let b = Registry::start(RegistryOptions {
        tls: true,
        auth: Auth::Htpasswd,
        ..Default::default()
    });
    let ca = b.ca_file().expect("TLS registry has a CA");
    let pkg = seed(&ctx, "pkg", &a);
    let out = ctx
        .run_stdin(
            [
                "mirror",
                "--from-package",
                &pkg.path.display().to_string(),
                "--from",
                &a.host(),
                "--from-plain",
                "--to",
                &b.host(),
                "--ca-file",
                &ca.display().to_string(),
                "--username",
                USER,
                "--password-stdin",
            ],
            &format!("{PASSWORD}\n"),
        )
        .success();
    let text = out.all();
    assert!(!text.contains(PASSWORD), "password in output:\n{text}");
    // Ends with "2/2 images at parity".
    snap!(ctx, "from_package_to_tls", out.stdout.clone());
    let creds = format!("--creds={USER}:{PASSWORD}");
    let flags = ["--cert-dir", ca.parent().unwrap().to_str().unwrap(), &creds];
    for (reference, digest) in &pkg.images {
        let at = format!("docker://{}/{}", b.host(), relative(reference));
        assert_eq!(&skopeo_inspect_raw_digest(&ctx, &at, &flags), digest);
    }
}

/// The exit rule is push's (`transfer::exit`): one missing image among copied ones exits with the
/// failure's class (7), not 1, and the copied image is still at parity.
#[test]
fn one_missing_image_among_copied_ones_exits_with_its_class() {
    let ctx = TestContext::new();
    let a = Registry::start(RegistryOptions::default());
    let b = Registry::start(RegistryOptions::default());
    let pkg = seed(&ctx, "partial", &a);
    let present = relative(&pkg.images[0].0);
    let out = ctx.run([
        "mirror",
        "--from",
        &a.host(),
        "--to",
        &b.host(),
        "--from-plain",
        "--plain",
        "--no-auth",
        &present,
        "acp/nothing:v9",
    ]);
    assert_eq!(out.code, 7, "{}", out.all());
    assert!(
        out.stdout.contains("1/2 images at parity"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("ok        {}/{present}", a.host())),
        "{}",
        out.stdout
    );
}

#[test]
fn missing_image_fails_with_one_line_naming_it() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let b = Registry::plain();
    let out = ctx.mirror_plain(&a.host(), &b.host(), &["acp/nothing:v9"]);
    // The registry's 404 is a remote refusal: exit code 7.
    assert_eq!(out.code, 7, "{}", out.all());
    // One FAILED row naming acp/nothing.
    snap!(ctx, "missing_image", out.streams());

    let bad = ctx.run([
        "mirror",
        "--from",
        &a.host(),
        "--to",
        &a.host(),
        "--no-auth",
        "acp/x",
    ]);
    assert_eq!(bad.code, 2);
    snap!(ctx, "same_registry", bad.streams());
}

#[test]
fn an_upload_cut_off_mid_body_fetches_the_blob_again() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let b = Registry::plain();
    let proxy = FaultProxy::start(&b.host());
    let pkg = seed(&ctx, "cut", &a);
    // The first blob body sent to B is dropped after 1000 bytes: the client restarts the upload,
    // and a GET body can be read once, so the mirror must fetch the blob from A again.
    proxy.inject(
        Rule::new(
            Some("PUT"),
            "/blobs/uploads/.+",
            Fault::ResetDuringRequest { after_bytes: 1000 },
        )
        .times(1),
    );
    let (reference, digest) = &pkg.images[0];
    let rel = relative(reference);
    let report = ctx
        .mirror_plain(
            &a.host(),
            &proxy.host(),
            &["--jobs", "1", "-o", "json", &rel],
        )
        .success()
        .json();
    assert_eq!(report["parity"], true, "{report:#}");
    let at_b = skopeo_inspect_raw_digest(&ctx, &format!("docker://{}/{rel}", b.host()), NO_TLS);
    assert_eq!(&at_b, digest);
    // Every blob GET once, plus the one fetched again after the cut.
    let blob_gets = a.requests("GET", "/blobs/sha256:");
    assert_eq!(
        blob_gets,
        report["blobs"]["uploaded"].as_u64().unwrap() as usize + 1
    );
}

/// A source download that breaks off continues where it stopped (`Range`), as `package` does:
/// the same engine stream (`transfer::pull::download`).
#[test]
fn a_source_download_cut_off_mid_body_resumes_with_range() {
    let ctx = TestContext::new();
    let a = Registry::start(RegistryOptions::default());
    let b = Registry::start(RegistryOptions::default());
    let pkg = seed(&ctx, "resume", &a);
    let proxy = FaultProxy::start(&a.host());
    // Every blob body from A is cut after 1000 bytes, 3 times in all.
    proxy.inject(
        Rule::new(
            Some("GET"),
            "/blobs/sha256:",
            Fault::ResetDuringResponse { after_bytes: 1000 },
        )
        .times(3),
    );
    let (reference, digest) = &pkg.images[0];
    let rel = relative(reference);
    let report = ctx
        .run([
            "mirror",
            "--from",
            &proxy.host(),
            "--to",
            &b.host(),
            "--from-plain",
            "--plain",
            "--no-auth",
            "--jobs",
            "1",
            "-o",
            "json",
            &rel,
        ])
        .success()
        .json();
    assert_eq!(report["parity"], true, "{report:#}");
    let at_b = skopeo_inspect_raw_digest(&ctx, &format!("docker://{}/{rel}", b.host()), NO_TLS);
    assert_eq!(&at_b, digest);
    // One GET per blob, plus a continuation for each body the cut reached (a config shorter
    // than 1000 bytes is whole before the cut).
    let blob_gets = proxy.count(Some("GET"), "/blobs/sha256:");
    let uploaded = report["blobs"]["uploaded"].as_u64().unwrap() as usize;
    assert!(
        blob_gets > uploaded && blob_gets <= uploaded + 3,
        "{blob_gets} blob GETs for {uploaded} blobs: {report:#}"
    );
}

#[test]
fn from_package_refuses_a_source_tag_that_moved() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let b = Registry::plain();
    let pkg = seed(&ctx, "moved", &a);
    // Swap the two tags at the source: each now names the other image.
    let at_a = |reference: &str| format!("docker://{}/{}", a.host(), relative(reference));
    let (first, _) = &pkg.images[0];
    let (second, second_digest) = &pkg.images[1];
    let parked = format!("docker://{}/acp/parked:x", a.host());
    skopeo_copy_all(&ctx, &at_a(first), &parked);
    skopeo_copy_all(&ctx, &at_a(second), &at_a(first));
    skopeo_copy_all(&ctx, &parked, &at_a(second));
    assert_eq!(
        &skopeo_inspect_raw_digest(&ctx, &at_a(first), NO_TLS),
        second_digest
    );

    let out = ctx.mirror_plain(
        &a.host(),
        &b.host(),
        &["--from-package", &pkg.path.display().to_string()],
    );
    let text = out.all();
    assert_eq!(out.code, 8, "{text}");
    // A FAILED line per image: "resolves to <the other digest>, not <the package's digest>".
    snap!(ctx, "source_tag_moved", out.streams());
    // Nothing was tagged at the destination.
    assert_eq!(b.requests("PUT", "/manifests/"), 0, "{text}");
}

#[test]
fn source_auth_errors_name_the_source_flags() {
    let ctx = TestContext::new();
    let a = Registry::start(RegistryOptions {
        tls: false,
        auth: Auth::Htpasswd,
        ..Default::default()
    });
    let b = Registry::plain();
    let base = [
        "mirror",
        "--from",
        &a.host(),
        "--to",
        &b.host(),
        "--from-plain",
        "--plain",
        "acp/app:v1",
    ];
    // No source credentials at all, though the destination's are in the environment (and are
    // never used for the source).
    let mut cmd = ctx.violet();
    cmd.args(base)
        .env("VIOLET_USERNAME", USER)
        .env("VIOLET_PASSWORD", "destination-secret");
    let anonymous = crate::support::run(cmd, None);
    // Wrong source password.
    let mut wrong_args: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    wrong_args.extend([
        "--from-username".into(),
        USER.into(),
        "--from-password".into(),
        "wrong-pw".into(),
    ]);
    let mut cmd = ctx.violet();
    cmd.args(wrong_args)
        .env("VIOLET_USERNAME", USER)
        .env("VIOLET_PASSWORD", "destination-secret");
    let wrong = crate::support::run(cmd, None);
    // The destination's user from the environment never reaches the source: "requires
    // authentication", and the hint names the --from-* flags and the source host.
    for (label, out) in [("anonymous", anonymous), ("wrong_password", wrong)] {
        let text = out.all();
        assert_eq!(out.code, 5, "{label}: {text}");
        assert!(text.contains(&a.host()), "{label}: {text}");
        snap!(ctx, format!("source_auth_{label}"), out.streams());
        for other in [
            "--username",
            "--password ",
            "--password/",
            "VIOLET_USERNAME",
            "VIOLET_PASSWORD",
            "--no-auth",
        ] {
            assert!(!text.contains(other), "{label}: names {other}: {text}");
        }
        assert!(
            !text.contains("wrong-pw") && !text.contains("destination-secret"),
            "{text}"
        );
    }
}

#[test]
fn uploads_cut_off_until_retries_are_spent_report_the_network_cause() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let b = Registry::plain();
    let proxy = FaultProxy::start(&b.host());
    let pkg = seed(&ctx, "spent", &a);
    proxy.inject(
        Rule::new(
            Some("PUT"),
            "/blobs/uploads/.+",
            Fault::ResetDuringRequest { after_bytes: 1000 },
        )
        .times(usize::MAX),
    );
    let out = ctx.mirror_plain(
        &a.host(),
        &proxy.host(),
        &["--retries", "1", &relative(&pkg.images[0].0)],
    );
    let text = out.all();
    // The cause the user can act on, with its exit code: not the internal restart.
    assert_eq!(out.code, 6, "{text}");
    // The transport's own words vary with timing (reset, closed before the answer), so no
    // snapshot here.
    assert!(text.contains("cannot reach registry"), "{text}");
    assert!(!text.contains("cannot be re-read"), "{text}");
}

/// `curl` with `args`, failing the test on an HTTP error.
fn curl(args: &[&str]) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail-with-body"])
        .args(args)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_source_descriptor_without_size_is_refused_before_any_upload() {
    // The size is what a mirrored blob's download is checked against; a source manifest whose
    // config descriptor has none is refused by name instead of copied unchecked.
    let ctx = TestContext::new();
    let a = Registry::plain();
    let b = Registry::plain();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = violet::digest::Digest::of(config).to_string();
    let config_file = ctx.path().join("config.json");
    std::fs::write(&config_file, config).expect("write config");
    // Monolithic upload: open a session, then PUT the whole body with the digest.
    let session = String::from_utf8(
        std::process::Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%header{location}",
                "-X",
                "POST",
            ])
            .arg(format!("{}/v2/acp/nosize/blobs/uploads/", a.url()))
            .output()
            .expect("curl")
            .stdout,
    )
    .expect("location");
    let session = if session.starts_with('/') {
        format!("{}{session}", a.url())
    } else {
        session
    };
    let sep = if session.contains('?') { '&' } else { '?' };
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", config_file.display()),
        &format!("{session}{sep}digest={config_digest}"),
    ]);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}"}},"layers":[]}}"#
    );
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &manifest,
        &format!("{}/v2/acp/nosize/manifests/v1", a.url()),
    ]);
    let out = ctx.mirror_plain(&a.host(), &b.host(), &["acp/nosize:v1"]);
    assert_eq!(out.code, 7, "{}", out.all());
    // One FAILED row naming the image, the descriptor and what is missing.
    snap!(ctx, "descriptor_without_size", out.streams());
    assert_eq!(b.requests("POST", "/blobs/uploads/"), 0, "{}", out.all());
    assert_eq!(b.requests("PUT", "/manifests/"), 0, "{}", out.all());
}

#[test]
fn progress_counts_each_crossing_blob_once() {
    // `mirror` shows progress like `push`: the bytes read from the source for every blob that
    // crosses (its total known once every image is resolved); mounted and present blobs add nothing.
    use violet::output::progress::Progress;
    use violet::registry::{Client, Credentials, RegistryConfig};
    use violet::transfer::copy::{self, Request, Status};

    let ctx = TestContext::new();
    let a = Registry::plain();
    let b = Registry::plain();
    let pkg = seed(&ctx, "demo", &a);
    let client = |reg: &Registry| {
        Client::new(RegistryConfig {
            host: reg.host(),
            plain: true,
            insecure: false,
            ca_files: Vec::new(),
            credentials: Credentials::Anonymous,
            retries: 2,
            chunk_size: None,
        })
        .expect("client")
    };
    let requests: Vec<Request> = pkg
        .images
        .iter()
        .map(|(reference, _)| {
            let rel = relative(reference);
            let (repo, tag) = rel.rsplit_once(':').expect("tagged");
            Request {
                source_repo: repo.into(),
                source_ref: tag.into(),
                dest_repo: repo.into(),
                tag: Some(tag.into()),
                pinned: None,
            }
        })
        .collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let run = |progress: &Progress| {
        rt.block_on(async {
            let copied = copy::run(
                &client(&a),
                &client(&b),
                &requests,
                4,
                false,
                true,
                progress.clone(),
            )
            .await;
            for report in &copied.images {
                assert_eq!(report.status, Status::Ok, "{report:?}");
            }
            copied.blobs
        })
    };
    let first = Progress::hidden();
    let counts = run(&first);
    assert!(counts.bytes_uploaded > 0, "{counts:?}");
    assert_eq!(first.done(), counts.bytes_uploaded, "{counts:?}");
    assert_eq!(first.resent(), 0);
    // Everything is in place now: nothing crosses, nothing is counted.
    let second = Progress::hidden();
    let counts = run(&second);
    assert_eq!(counts.bytes_uploaded, 0, "{counts:?}");
    assert_eq!(second.done(), 0);
}

/// `mirror` waits for the source as much as for the destination: a far source (every request held
/// 100 ms) widens the in-flight counts even when the destination is near.
#[test]
fn a_far_source_widens_the_counts() {
    let ctx = TestContext::new();
    let (a, b) = (Registry::plain(), Registry::plain());
    let pkg = seed(&ctx, "src", &a);
    let far = FaultProxy::start(&a.host());
    far.inject(
        Rule::new(
            None,
            "^/",
            Fault::Delay(std::time::Duration::from_millis(100)),
        )
        .times(usize::MAX),
    );
    let images: Vec<String> = pkg.images.iter().map(|(r, _)| relative(r)).collect();
    let mut args = vec!["-v", "-o", "json"];
    args.extend(images.iter().map(String::as_str));
    let out = ctx.mirror_plain(&far.host(), &b.host(), &args).success();
    assert_eq!(out.json()["parity"], true, "{}", out.stdout);
    assert!(out.stderr.contains("widened=true"), "{}", out.stderr);
}
