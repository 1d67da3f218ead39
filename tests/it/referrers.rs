//! Signatures, attestations, SBOMs and OCI referrers travel with their images: collected by
//! `create`/`package`/`mirror` from a real registry (cosign's tag scheme, the referrers tag
//! schema: Debian's distribution 2.8 has no referrers API), listed in `violet.yaml` and `show
//! --all`, and pushed after their images with every digest kept.

use crate::create_package::seed_bundle;
use crate::support::TestContext;
use crate::support::artifacts;
use crate::support::packages::NO_TLS;
use crate::support::proxy::{Fault, FaultProxy, Rule};
use crate::support::referrers::{self, SBOM_TYPE};
use crate::support::registry::Registry;
use crate::support::skopeo::{skopeo_inspect_raw, skopeo_inspect_raw_digest};
use violet::digest::Digest;

fn yaml(path: &std::path::Path) -> serde_json::Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn digest_at(ctx: &TestContext, host: &str, image: &str) -> Digest {
    skopeo_inspect_raw_digest(ctx, &format!("docker://{host}/{image}"), NO_TLS)
}

fn sig_tag(d: &Digest) -> String {
    format!("{}.sig", d.as_str().replacen(':', "-", 1))
}

/// The bundle and its images in `a`, with a signature of `acp/demo`'s index and of the bundle,
/// an attestation and an SBOM referrer of `acp/demo`'s index. Returns (bundle, demo index
/// digest, sbom digest).
fn seed_signed(ctx: &TestContext, a: &Registry) -> (String, Digest, Digest) {
    let (bundle, _, _) = seed_bundle(ctx, a);
    let cfg = artifacts::plain(&a.host());
    let demo = digest_at(ctx, &a.host(), "acp/demo:v1.0.0");
    referrers::sign(&cfg, "acp/demo", &demo);
    referrers::attest(&cfg, "acp/demo", &demo);
    let bundle_digest = digest_at(ctx, &a.host(), "acp/demo-operator-bundle:v1.2.0");
    referrers::sign(&cfg, "acp/demo-operator-bundle", &bundle_digest);
    let subject = referrers::descriptor(&cfg, "acp/demo", "v1.0.0");
    let sbom = referrers::attach_sbom(&cfg, "acp/demo", &subject);
    (bundle, demo, sbom)
}

#[test]
fn create_package_push_carries_signatures_and_sboms_with_their_digests() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let b = Registry::plain();
    let (bundle, demo, sbom) = seed_signed(&ctx, &a);

    let dir = ctx.file("out");
    let dir_s = dir.display().to_string();
    let created = ctx
        .create_plain(&dir_s, &bundle, &["-o", "json"])
        .success()
        .json();
    assert_eq!(
        created["referrers"].as_array().unwrap().len(),
        4,
        "{created:#}"
    );
    let meta = yaml(&dir.join("violet.yaml"));
    let listed = meta["referrers"].as_array().unwrap();
    let kinds: Vec<&str> = listed.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["signature", "signature", "attestation", "artifact"],
        "{meta:#}"
    );
    let sbom_entry = listed.iter().find(|r| r["kind"] == "artifact").unwrap();
    assert_eq!(sbom_entry["subject"], demo.as_str());
    assert_eq!(sbom_entry["digest"], sbom.as_str());
    assert_eq!(sbom_entry["artifactType"], SBOM_TYPE);
    assert_eq!(
        sbom_entry["reference"],
        format!("{}/acp/demo@{sbom}", a.host()).as_str()
    );

    let pkg = ctx.file("signed.tgz");
    let pkg_s = pkg.display().to_string();
    ctx.run([
        "package",
        &dir_s,
        "--output",
        &pkg_s,
        "--plain",
        "--no-auth",
    ])
    .success();
    let show = ctx.run(["show", &pkg_s, "--all"]).success().stdout;
    assert!(
        show.contains("Referrers: 4 (2 signature, 1 attestation, 1 artifact)"),
        "{show}"
    );
    assert!(
        show.contains(&format!(
            "  signature of {demo}: {}/acp/demo:{}",
            a.host(),
            sig_tag(&demo)
        )),
        "{show}"
    );
    assert!(
        !show.contains(&format!("RelateImages: [{}/acp/demo:sha256", a.host())),
        "{show}"
    );

    let json = ctx.run(["show", &pkg_s, "-o", "json"]).success().json();
    let marked = json["images"].as_array().unwrap().iter();
    let marked: Vec<&str> = marked
        .filter_map(|i| i["referrer"]["kind"].as_str())
        .collect();
    assert_eq!(marked.len(), 4, "{json:#}");

    ctx.push(&pkg_s, &[&b.host()], &["--plain", "--no-auth"])
        .success();
    // Each artifact is written after the image it is about.
    let log = b.log();
    let at = |needle: &str| {
        log.lines()
            .position(|l| l.contains("\"PUT ") && l.contains(needle))
            .unwrap_or_else(|| panic!("no PUT of {needle}"))
    };
    let image_put = at("/v2/acp/demo/manifests/v1.0.0");
    assert!(at(&format!("/v2/acp/demo/manifests/{}", sig_tag(&demo))) > image_put);
    assert!(at(&format!("/v2/acp/demo/manifests/{sbom}")) > image_put);
    let att_tag = sig_tag(&demo).replace(".sig", ".att");
    for image in [
        format!("acp/demo:{}", sig_tag(&demo)),
        format!("acp/demo:{att_tag}"),
        format!("acp/demo@{sbom}"),
    ] {
        assert_eq!(
            digest_at(&ctx, &b.host(), &image),
            digest_at(&ctx, &a.host(), &image),
            "{image}"
        );
    }
    // B has no referrers API either: the SBOM is listed under the fallback tag, as in A.
    let fallback = format!("acp/demo:{}", demo.as_str().replacen(':', "-", 1));
    let index: serde_json::Value = serde_json::from_str(&skopeo_inspect_raw(
        &ctx,
        &format!("docker://{}/{fallback}", b.host()),
        NO_TLS,
    ))
    .unwrap();
    assert_eq!(index["manifests"][0]["digest"], sbom.as_str(), "{index:#}");
    assert_eq!(index["manifests"][0]["artifactType"], SBOM_TYPE);

    // A rerun finds everything there: no manifest is written again, the index neither.
    let puts = b.requests("PUT", "/manifests/");
    let again = ctx
        .push(
            &pkg_s,
            &[&b.host()],
            &["--plain", "--no-auth", "-o", "json"],
        )
        .success()
        .json();
    assert_eq!(b.requests("PUT", "/manifests/"), puts, "{again:#}");
}

/// Signed at the source with a real key: the signature survives create → package → push and
/// verifies offline against the package and before the push.
#[test]
fn a_signature_collected_from_a_registry_verifies_offline() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let b = Registry::plain();
    let (bundle, _, _) = seed_bundle(&ctx, &a);
    let key = crate::support::cosign::p256_key();
    let cfg = artifacts::plain(&a.host());
    for repo in ["acp/demo-operator-bundle", "acp/demo", "acp/demo-agent"] {
        let tag = if repo.ends_with("bundle") {
            "v1.2.0"
        } else {
            "v1.0.0"
        };
        let subject = digest_at(&ctx, &a.host(), &format!("{repo}:{tag}"));
        referrers::cosign_sign(&cfg, repo, &subject, &key);
    }
    let dir = ctx.file("out").display().to_string();
    ctx.create_plain(&dir, &bundle, &[]).success();
    let pkg = ctx.file("signed.tar").display().to_string();
    ctx.run(["package", &dir, "--output", &pkg]).success();
    // The signatures' blobs come right after the manifests, before the images' layers: a push
    // checking them first stops early in a compressed package.
    let listing = std::process::Command::new("tar")
        .args(["tvf", &pkg])
        .output()
        .unwrap();
    let entries: Vec<(u64, String)> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[2].parse().unwrap(), f[5].to_string())
        })
        .collect();
    let payload = Digest::of(&violet::synth::cosign::payload(
        &digest_at(&ctx, &a.host(), "acp/demo:v1.0.0"),
        &format!("{}/acp/demo", a.host()),
    ));
    let at = |name: &str| entries.iter().position(|(_, n)| n.ends_with(name)).unwrap();
    let largest = entries.iter().max_by_key(|(size, _)| *size).unwrap();
    assert!(at(payload.hex()) < at(&largest.1), "{entries:?}");
    let public = ctx.cosign_pub("cosign.pub", &key).display().to_string();
    let verified = ctx
        .run([
            "verify",
            &pkg,
            "--cosign-key",
            &public,
            "--require-signatures",
        ])
        .success();
    assert!(
        verified.stdout.contains("Signed: 3, unsigned: 0"),
        "{}",
        verified.stdout
    );
    let other = ctx
        .cosign_pub("other.pub", &crate::support::cosign::other_key())
        .display()
        .to_string();
    let refused = ctx.run(["verify", &pkg, "--cosign-key", &other]);
    assert_eq!(refused.code, 8, "{}", refused.all());
    ctx.push(
        &pkg,
        &[&b.host()],
        &[
            "--plain",
            "--no-auth",
            "--cosign-key",
            &public,
            "--require-signatures",
        ],
    )
    .success();
}

#[test]
fn no_referrers_leaves_them_out() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let (bundle, _, _) = seed_signed(&ctx, &a);
    let dir = ctx.file("out");
    let dir_s = dir.display().to_string();
    ctx.create_plain(&dir_s, &bundle, &["--no-referrers"])
        .success();
    let meta = yaml(&dir.join("violet.yaml"));
    assert!(meta.get("referrers").is_none(), "{meta:#}");
    let show = ctx
        .run(["show", &dir_s, "--all", "-o", "json"])
        .success()
        .json();
    assert_eq!(show["summary"]["images"], 3, "{show:#}");
}

/// Without any referrer at the source, collecting them costs one tag listing per repository and
/// one probe of the referrers API per registry; the push of the package costs nothing extra.
#[test]
fn images_without_referrers_cost_one_listing_per_repository() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let b = Registry::plain();
    let (_, _, _) = seed_bundle(&ctx, &a);
    let proxy = FaultProxy::start(&a.host());
    let bundle = format!("{}/acp/demo-operator-bundle:v1.2.0", proxy.host());
    // The bundle names its images in A; the proxy sees only the bundle's repository.
    let dir = ctx.file("out");
    let dir_s = dir.display().to_string();
    ctx.create_plain(&dir_s, &bundle, &[]).success();
    assert_eq!(proxy.count(Some("GET"), r"/tags/list"), 1);
    assert_eq!(proxy.count(None, r"/referrers/"), 1);
    assert_eq!(proxy.count(None, r"/manifests/sha256-"), 0);
    assert!(yaml(&dir.join("violet.yaml")).get("referrers").is_none());

    let front = FaultProxy::start(&b.host());
    ctx.push(&dir_s, &[&front.host()], &["--plain", "--no-auth"])
        .success();
    assert_eq!(
        front.count(None, r"/tags/list|/referrers/|/manifests/sha256-"),
        0
    );
}

#[test]
fn a_source_that_refuses_tag_listing_says_how_to_build_without_signatures() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let (_, _, _) = seed_bundle(&ctx, &a);
    let proxy = FaultProxy::start(&a.host());
    proxy.inject(Rule::new(Some("GET"), r"/tags/list", Fault::Status(403)));
    let bundle = format!("{}/acp/demo-operator-bundle:v1.2.0", proxy.host());
    let dir = ctx.file("out").display().to_string();
    let out = ctx.create_plain(&dir, &bundle, &[]);
    assert_eq!(out.code, 5, "{}", out.all());
    assert!(out.stderr.contains("pass --no-referrers"), "{}", out.stderr);
    ctx.create_plain(&dir, &bundle, &["--no-referrers", "--force"])
        .success();
}

/// Two packages of one push that collected an image's signatures at different times: the
/// signature manifest with more signatures is pushed, not a refusal of the run.
#[test]
fn two_collections_of_one_signature_tag_push_the_fuller_one() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let b = Registry::plain();
    let (bundle, demo, _) = seed_signed(&ctx, &a);
    let cfg = artifacts::plain(&a.host());
    let build = |name: &str| {
        let dir = ctx.file(name).display().to_string();
        ctx.create_plain(&dir, &bundle, &[]).success();
        let pkg = ctx.file(&format!("all/{name}.tar")).display().to_string();
        std::fs::create_dir_all(ctx.file("all")).unwrap();
        ctx.run(["package", &dir, "--output", &pkg]).success();
    };
    build("early");
    let fuller = referrers::sign_times(&cfg, "acp/demo", &demo, 2);
    build("late");
    let all = ctx.file("all").display().to_string();
    ctx.push(&all, &[&b.host()], &["--plain", "--no-auth"])
        .success();
    assert_eq!(
        digest_at(&ctx, &b.host(), &format!("acp/demo:{}", sig_tag(&demo))),
        fuller
    );
}

/// The same signature bytes in two repositories (a copy made with its signature) travel to both.
#[test]
fn one_signature_in_two_repositories_lands_in_both() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let b = Registry::plain();
    let (_, demo, _) = seed_signed(&ctx, &a);
    let copy_to = format!("{}/copy", a.host());
    ctx.mirror_plain(&a.host(), &copy_to, &["acp/demo:v1.0.0"])
        .success();
    let sig = format!("acp/demo:{}", sig_tag(&demo));
    let copied = format!("copy/{sig}");
    assert_eq!(
        digest_at(&ctx, &a.host(), &copied),
        digest_at(&ctx, &a.host(), &sig)
    );
    ctx.mirror_plain(
        &a.host(),
        &b.host(),
        &["acp/demo:v1.0.0", "copy/acp/demo:v1.0.0"],
    )
    .success();
    for image in [&sig, &copied] {
        assert_eq!(
            digest_at(&ctx, &b.host(), image),
            digest_at(&ctx, &a.host(), &sig),
            "{image}"
        );
    }
}

#[test]
fn mirror_carries_signatures_and_referrers() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let b = Registry::plain();
    let (_, demo, sbom) = seed_signed(&ctx, &a);
    let out = ctx
        .mirror_plain(&a.host(), &b.host(), &["acp/demo:v1.0.0", "-o", "json"])
        .success()
        .json();
    assert_eq!(out["images"].as_array().unwrap().len(), 4, "{out:#}");
    assert_eq!(out["parity"], true);
    assert_eq!(
        digest_at(&ctx, &b.host(), &format!("acp/demo:{}", sig_tag(&demo))),
        digest_at(&ctx, &a.host(), &format!("acp/demo:{}", sig_tag(&demo)))
    );
    assert_eq!(
        digest_at(&ctx, &b.host(), &format!("acp/demo@{sbom}")),
        sbom
    );

    let c = Registry::plain();
    let bare = ctx
        .mirror_plain(
            &a.host(),
            &c.host(),
            &["acp/demo:v1.0.0", "--no-referrers", "-o", "json"],
        )
        .success()
        .json();
    assert_eq!(bare["images"].as_array().unwrap().len(), 1, "{bare:#}");
}

/// A source and a destination with the referrers API (the proxy serves it in front of
/// distribution, as Harbor 2.8+ or zot do): the SBOM is found through the API alone (the source
/// has no fallback tag), and the destination indexes it itself (no fallback tag is written).
#[test]
fn the_referrers_api_is_used_where_a_registry_has_it() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let b = Registry::plain();
    ctx.seed_demo_images("seed", &a.host());
    let source = FaultProxy::start(&a.host());
    source.serve_referrers_api();
    let cfg = artifacts::plain(&source.host());
    let subject = referrers::descriptor(&cfg, "acp/demo", "v1.0.0");
    let sbom = referrers::attach_sbom_with(&cfg, "acp/demo", &subject, false);
    let dest = FaultProxy::start(&b.host());
    dest.serve_referrers_api();

    let out = ctx
        .mirror_plain(
            &source.host(),
            &dest.host(),
            &["acp/demo:v1.0.0", "-o", "json"],
        )
        .success()
        .json();
    assert_eq!(out["images"].as_array().unwrap().len(), 2, "{out:#}");
    assert!(source.count(Some("GET"), r"/referrers/") >= 1);
    assert_eq!(
        digest_at(&ctx, &b.host(), &format!("acp/demo@{sbom}")),
        sbom
    );
    assert_eq!(dest.count(Some("PUT"), r"/manifests/sha256-"), 0);
    let listed: serde_json::Value = {
        let url = format!(
            "http://{}/v2/acp/demo/referrers/{}",
            dest.host(),
            subject["digest"].as_str().unwrap()
        );
        let out = std::process::Command::new("curl")
            .args(["-sf", &url])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(
        listed["manifests"][0]["digest"],
        sbom.as_str(),
        "{listed:#}"
    );
}

#[test]
fn a_platform_subset_says_the_index_signature_is_left_out() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let (bundle, _, _) = seed_signed(&ctx, &a);
    // `cosign sign --recursive` signs each platform manifest too: the kept one's signature stays.
    let index: serde_json::Value = serde_json::from_str(&skopeo_inspect_raw(
        &ctx,
        &format!("docker://{}/acp/demo:v1.0.0", a.host()),
        NO_TLS,
    ))
    .unwrap();
    let digest_of = |arch: &str| {
        let m = index["manifests"].as_array().unwrap().iter();
        let mut m = m.filter(|m| m["platform"]["architecture"] == arch);
        Digest::parse(m.next().unwrap()["digest"].as_str().unwrap()).unwrap()
    };
    let (amd64, arm64) = (digest_of("amd64"), digest_of("arm64"));
    let cfg = artifacts::plain(&a.host());
    referrers::sign(&cfg, "acp/demo", &amd64);
    referrers::sign(&cfg, "acp/demo", &arm64);
    let dir = ctx.file("out");
    let dir_s = dir.display().to_string();
    let out = ctx
        .create_plain(&dir_s, &bundle, &["--platforms", "linux/amd64"])
        .success();
    let err = ctx.redact(&out.stderr);
    assert!(
        err.contains("acp/demo:v1.0.0: --platforms rewrote its index to sha256:")
            && err.contains("the signature and attestation of the original index sha256:"),
        "{err}"
    );
    // The bundle is not filtered: its signature travels; the rewritten index has none; of the
    // platform manifests, the kept one's.
    let meta = yaml(&dir.join("violet.yaml"));
    let listed: Vec<&str> = meta["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reference"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{meta:#}");
    assert!(
        listed[0].contains("acp/demo-operator-bundle:sha256-"),
        "{listed:?}"
    );
    assert!(
        listed[1].ends_with(&format!("acp/demo:{}", sig_tag(&amd64))),
        "{listed:?}"
    );
}

#[test]
fn a_listed_referrer_the_store_lacks_is_refused() {
    let ctx = TestContext::new();
    let a = Registry::plain();
    let (bundle, _, _) = seed_signed(&ctx, &a);
    let dir = ctx.file("out");
    let dir_s = dir.display().to_string();
    ctx.create_plain(&dir_s, &bundle, &[]).success();
    let path = dir.join("violet.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replacen("digest: sha256:", "digest: sha256:0", 1);
    let edited = {
        // Keep the digest 64 hex digits long: drop the last one.
        let at = edited.find("digest: sha256:0").unwrap() + "digest: sha256:".len();
        format!("{}{}", &edited[..at + 64], &edited[at + 65..])
    };
    std::fs::write(&path, edited).unwrap();
    let out = ctx.run(["show", &dir_s]);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(
        out.stderr.contains("violet.yaml lists this signature"),
        "{}",
        out.stderr
    );
}
