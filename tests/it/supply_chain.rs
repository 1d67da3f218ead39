//! Supply chain across the air gap: cosign signatures travel in packages as
//! `<repo>:sha256-<hex>.sig` images and are verified offline (`verify --cosign-key`), and
//! `push --require-signatures` refuses what does not verify before anything is uploaded.

use std::path::Path;

use crate::support::cosign::{
    SignTarget, SynthKey, SynthSignature, Tamper, other_key, p256_key, rsa_key, signed_by,
};
use crate::support::packages::{
    Container, DEMO_IMAGES, NO_TLS, PLAIN, StoreKind, SynthSpec, assert_pushed, at_destination,
    bundle_spec,
};
use crate::support::registry::Registry;
use crate::support::skopeo::skopeo_inspect_raw_digest;
use crate::support::{Output, TestContext};

fn demo(name: &str, container: Container, store: StoreKind) -> SynthSpec {
    bundle_spec(name, container, store, DEMO_IMAGES)
}

fn verify(ctx: &TestContext, pkg: &Path, key: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "verify".to_string(),
        pkg.display().to_string(),
        "--cosign-key".into(),
        key.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    ctx.run(args)
}

/// Image 0 signed well with the P-256 test key, image 1 by `bad`.
fn one_bad(name: &str, container: Container, store: StoreKind, bad: SynthSignature) -> SynthSpec {
    let mut spec = demo(name, container, store);
    spec.signatures = vec![SynthSignature::new(0, p256_key()), bad];
    spec
}

fn spoiled(key: SynthKey, target: SignTarget, tamper: Tamper) -> SynthSignature {
    let mut s = SynthSignature::new(1, key);
    s.target = target;
    s.tamper = tamper;
    s
}

#[test]
fn good_p256_and_rsa_signatures_verify_in_every_container_and_store() {
    let ctx = TestContext::new();
    let p256 = ctx.cosign_pub("keys/cosign.pub", &p256_key());
    let rsa = ctx.cosign_pub("keys/rsa.pub", &rsa_key());
    let rsa_pkcs1 = ctx.file("keys/rsa-pkcs1.pub");
    std::fs::write(&rsa_pkcs1, rsa_key().rsa_pkcs1_public_pem().unwrap()).unwrap();
    // The second image's platform manifests are signed too (cosign sign --recursive), or only
    // they are: every one valid signs the image as well.
    let both = SignTarget::Both;
    let cases = [
        (
            "p256-tar",
            Container::Tar,
            StoreKind::OciLayout,
            p256_key(),
            &p256,
            both,
        ),
        (
            "rsa-tgz",
            Container::TarGz,
            StoreKind::Distribution,
            rsa_key(),
            &rsa,
            both,
        ),
        (
            "rsa-dir",
            Container::Directory,
            StoreKind::OciLayout,
            rsa_key(),
            &rsa_pkcs1,
            SignTarget::Platforms,
        ),
    ];
    for (name, container, store, key, public, target) in cases {
        let mut spec = signed_by(demo(name, container, store), &key);
        spec.signatures[1].target = target;
        let pkg = ctx.write_package("pkgs", &spec);
        let expected = if target == both { 4 } else { 3 };
        assert_eq!(pkg.signatures.len(), expected, "{name}");
        let out = verify(&ctx, &pkg.path, public, &["--require-signatures"]).success();
        assert!(!out.stderr.contains("warning"), "{name}: {}", out.stderr);
        if name == "p256-tar" {
            snap!(ctx, "good_p256", out.streams());
        }
        let json = verify(&ctx, &pkg.path, public, &["-o", "json"])
            .success()
            .json();
        let images = json["files"][0]["images"].as_array().unwrap();
        // The .sig images are artifacts, not rows.
        assert_eq!(images.len(), 2, "{name}: {json:#}");
        for (reference, digest) in &pkg.images {
            let row = images
                .iter()
                .find(|r| r["image"] == reference.as_str())
                .unwrap_or_else(|| panic!("{name}: no row for {reference}: {json:#}"));
            assert_eq!(row["digest"], digest.as_str());
            assert_eq!(row["signature"], "signed", "{name}: {row:#}");
        }
        assert_eq!(json["signatures"]["signed"], 2);
        // Another key does not vouch for them.
        let other = ctx.cosign_pub("keys/other.pub", &other_key());
        assert_eq!(verify(&ctx, &pkg.path, &other, &[]).code, 8, "{name}");
    }
}

#[test]
fn wrong_key_tampered_payload_and_other_digest_fail_with_8_naming_the_image() {
    let ctx = TestContext::new();
    let key = ctx.cosign_pub("cosign.pub", &p256_key());
    let cases = [
        (
            "wrong-key",
            Container::Tar,
            StoreKind::OciLayout,
            spoiled(other_key(), SignTarget::Top, Tamper::None),
        ),
        (
            "tampered-payload",
            Container::TarGz,
            StoreKind::Distribution,
            spoiled(p256_key(), SignTarget::Top, Tamper::Payload),
        ),
        (
            "other-digest",
            Container::Directory,
            StoreKind::Distribution,
            spoiled(p256_key(), SignTarget::Top, Tamper::OtherDigest),
        ),
        (
            "other-digest-platform",
            Container::Tar,
            StoreKind::Distribution,
            spoiled(p256_key(), SignTarget::Platforms, Tamper::OtherDigest),
        ),
    ];
    let mut shown = String::new();
    for (name, container, store, bad) in cases {
        let pkg = ctx.write_package("pkgs", &one_bad(name, container, store, bad));
        let out = verify(&ctx, &pkg.path, &key, &[]);
        assert_eq!(out.code, 8, "{name}\n{}", out.streams());
        let failed = out
            .stdout
            .lines()
            .find(|l| l.starts_with("  - "))
            .unwrap_or_else(|| panic!("{name}: no failed file\n{}", out.stdout));
        assert!(
            failed.contains(": image harbor.demo.io/acp/demo-agent:v1.0.0: bad signature: "),
            "{name}: {failed}"
        );
        shown.push_str(&format!("=== {name}\n{}", out.streams()));
    }
    snap!(ctx, "bad_signatures", shown);
}

#[test]
fn an_unsigned_image_is_a_warning_unless_signatures_are_required() {
    let ctx = TestContext::new();
    let key = ctx.cosign_pub("cosign.pub", &p256_key());
    let mut spec = demo("half-signed", Container::TarGz, StoreKind::OciLayout);
    spec.signatures = vec![SynthSignature::new(0, p256_key())];
    let pkg = ctx.write_package("pkgs", &spec);

    let warned = verify(&ctx, &pkg.path, &key, &[]).success();
    assert!(
        warned.stderr.contains(
            "1 image(s) without a cosign signature: harbor.demo.io/acp/demo-agent:v1.0.0"
        ),
        "{}",
        warned.stderr
    );
    snap!(ctx, "unsigned_warning", warned.streams());

    let required = verify(&ctx, &pkg.path, &key, &["--require-signatures"]);
    assert_eq!(required.code, 8, "{}", required.streams());
    assert!(
        required
            .stdout
            .contains(": image harbor.demo.io/acp/demo-agent:v1.0.0: unsigned"),
        "{}",
        required.stdout
    );

    let json = verify(
        &ctx,
        &pkg.path,
        &key,
        &["--require-signatures", "-o", "json"],
    );
    assert_eq!(json.code, 8);
    let json = json.json();
    let rows = &json["files"][0]["images"];
    assert_eq!(rows[0]["signature"], "signed");
    assert_eq!(rows[0]["identity"], "harbor.demo.io/acp/demo");
    assert_eq!(rows[1]["signature"], "unsigned");
    assert_eq!(json["files"][0]["result"], "failed");
    snap!(
        ctx,
        "unsigned_required_json",
        serde_json::to_string_pretty(&json).unwrap()
    );
}

#[test]
fn identity_must_match_when_given() {
    let ctx = TestContext::new();
    let key = ctx.cosign_pub("cosign.pub", &p256_key());
    let pkg = ctx.write_package(
        "pkgs",
        &signed_by(
            demo("ident", Container::Tar, StoreKind::OciLayout),
            &p256_key(),
        ),
    );
    verify(
        &ctx,
        &pkg.path,
        &key,
        &["--identity", "harbor.demo.io/acp/*"],
    )
    .success();
    let out = verify(
        &ctx,
        &pkg.path,
        &key,
        &["--identity", "harbor.demo.io/acp/demo"],
    );
    assert_eq!(out.code, 8);
    assert!(
        out.stdout.contains(
            "image harbor.demo.io/acp/demo-agent:v1.0.0: bad signature: signed as \"harbor.demo.io/acp/demo-agent\", not \"harbor.demo.io/acp/demo\" (--identity)"
        ) && out.stdout.contains(
            "signed as \"harbor.demo.io/acp/demo-agent\", not \"harbor.demo.io/acp/demo\" (--identity)"
        ),
        "{}",
        out.stdout
    );
}

#[test]
fn flags_and_keys_are_refused_before_any_work() {
    let ctx = TestContext::new();
    let pkg = ctx.write_package("pkgs", &demo("x", Container::Tar, StoreKind::OciLayout));
    let pkg_s = pkg.path.display().to_string();
    let mut shown = String::new();
    let mut expect = |args: &[&str], code: i32| {
        let out = ctx.run(args);
        assert_eq!(out.code, code, "{args:?}\n{}", out.streams());
        shown.push_str(&format!("=== {}\n{}", args[2..].join(" "), out.error()));
    };
    expect(&["verify", &pkg_s, "--require-signatures"], 2);
    expect(
        &["verify", &pkg_s, "--identity", "harbor.demo.io/acp/demo"],
        2,
    );
    expect(
        &[
            "push",
            &pkg_s,
            "--dest-repo",
            "127.0.0.1:1",
            "--no-auth",
            "--skip-crs",
            "--require-signatures",
        ],
        2,
    );
    let missing = ctx.path().join("missing.pub");
    expect(
        &["verify", &pkg_s, "--cosign-key", missing.to_str().unwrap()],
        3,
    );
    let junk = ctx.file("junk.pub");
    std::fs::write(&junk, "not a key\n").unwrap();
    expect(
        &["verify", &pkg_s, "--cosign-key", junk.to_str().unwrap()],
        3,
    );
    let private = ctx.file("cosign.key");
    std::fs::write(&private, p256_key().private_pem()).unwrap();
    expect(
        &["verify", &pkg_s, "--cosign-key", private.to_str().unwrap()],
        2,
    );
    let p384 = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cosign/p384-test.pub");
    expect(
        &["verify", &pkg_s, "--cosign-key", p384.to_str().unwrap()],
        2,
    );
    snap!(ctx, "refused_flags_and_keys", shown);
}

#[test]
fn push_refuses_what_does_not_verify_and_pushes_what_does() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let host = registry.host();
    let key = ctx.cosign_pub("cosign.pub", &p256_key());
    let key_s = key.display().to_string();
    let flags = |extra: &[&'static str]| {
        let mut f: Vec<&str> = PLAIN.to_vec();
        f.extend(["--cosign-key", key_s.as_str()]);
        f.extend_from_slice(extra);
        f
    };

    let bad = ctx.write_package(
        "bad",
        &one_bad(
            "bad",
            Container::TarGz,
            StoreKind::OciLayout,
            spoiled(p256_key(), SignTarget::Top, Tamper::OtherDigest),
        ),
    );
    let out = ctx.push(&bad.path, &[&host], &flags(&[]));
    assert_eq!(out.code, 8, "{}", out.streams());
    let mut mixed = demo("unsigned", Container::Tar, StoreKind::Distribution);
    mixed.signatures = vec![SynthSignature::new(0, p256_key())];
    let unsigned = ctx.write_package("unsigned", &mixed);
    let refused = ctx.push(&unsigned.path, &[&host], &flags(&["--require-signatures"]));
    assert_eq!(refused.code, 8, "{}", refused.streams());
    snap!(
        ctx,
        "push_refused",
        format!("{}{}", out.error(), refused.error())
    );
    // Refused before any connection: the registry saw no request, so no tag exists.
    for method in ["HEAD", "GET", "POST", "PUT", "PATCH"] {
        assert_eq!(
            registry.requests(method, "/v2/"),
            0,
            "{method}\n{}",
            registry.log()
        );
    }

    let good = ctx.write_package(
        "good",
        &signed_by(
            demo("good", Container::TarGz, StoreKind::Distribution),
            &p256_key(),
        ),
    );
    ctx.push(&good.path, &[&host], &flags(&["--require-signatures"]))
        .success();
    assert_pushed(&ctx, &good, &host, NO_TLS);
    assert_eq!(good.signatures.len(), 2);
    for (reference, digest) in &good.signatures {
        let at = format!("docker://{}", at_destination(reference, &host));
        assert_eq!(
            &skopeo_inspect_raw_digest(&ctx, &at, NO_TLS),
            digest,
            "{at}"
        );
    }

    // Without --require-signatures an unsigned image is a warning and the push goes on.
    let warned = ctx.push(&unsigned.path, &[&host], &flags(&[])).success();
    assert!(
        warned
            .stderr
            .contains("image harbor.demo.io/acp/demo-agent:v1.0.0: unsigned (no cosign signature)"),
        "{}",
        warned.stderr
    );
}

/// Keys and signatures made by another implementation (openssl, as cosign's Go crypto makes
/// them: ECDSA P-256 ASN.1 DER over SHA-256, RSA PKCS#1 v1.5 with SHA-256) verify, and a
/// signature violet's test signer makes verifies with openssl.
#[test]
fn openssl_made_keys_and_signatures_interoperate() {
    use violet::cosign::{Policy, PublicKey, Verdict, verify as verify_artifact};
    use violet::digest::Digest;
    use violet::synth::cosign::{artifact, payload};

    let ctx = TestContext::new();
    let openssl = |args: &[&str]| {
        let mut cmd = std::process::Command::new("openssl");
        ctx.clean_env(&mut cmd);
        let out = cmd.args(args).output().expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let image = Digest::of(b"an image index");
    let signed = payload(&image, "harbor.demo.io/acp/foo");
    std::fs::write(ctx.file("payload.json"), &signed).unwrap();
    let keygen: [&[&str]; 2] = [
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "ec.key",
        ],
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.key",
        ],
    ];
    for (name, generate) in ["ec", "rsa"].into_iter().zip(keygen) {
        openssl(generate);
        let (key, public, sig) = (
            format!("{name}.key"),
            format!("{name}.pub"),
            format!("{name}.sig"),
        );
        openssl(&["pkey", "-in", &key, "-pubout", "-out", &public]);
        openssl(&[
            "dgst",
            "-sha256",
            "-sign",
            &key,
            "-out",
            &sig,
            "payload.json",
        ]);
        let signature = std::fs::read(ctx.path().join(&sig)).unwrap();
        let art = artifact(&[(signed.clone(), signature)]);
        let trusted = PublicKey::load(&ctx.path().join(&public)).unwrap();
        let read = |d: &Digest| {
            art.blobs
                .iter()
                .find(|(b, _)| b == d)
                .map(|(_, bytes)| bytes::Bytes::from(bytes.clone()))
                .ok_or_else(|| anyhow::anyhow!("missing {d}"))
        };
        let verdict = verify_artifact(&trusted, &Policy::default(), &image, &art.manifest, read);
        assert!(
            matches!(verdict, Verdict::Signed { layer: 0, .. }),
            "{name}: {verdict:?}"
        );

        // The other way: the test signer's signature, checked by openssl.
        let synth_key =
            SynthKey::from_private_pem(&std::fs::read_to_string(ctx.path().join(&key)).unwrap())
                .unwrap();
        std::fs::write(
            ctx.file(&format!("{name}.synth.sig")),
            synth_key.sign(&signed),
        )
        .unwrap();
        openssl(&[
            "dgst",
            "-sha256",
            "-verify",
            &public,
            "-signature",
            &format!("{name}.synth.sig"),
            "payload.json",
        ]);
    }
}

#[test]
fn nested_plugins_are_checked_too() {
    use crate::support::packages::{PackageType, SynthImage};
    let ctx = TestContext::new();
    let key = ctx.cosign_pub("cosign.pub", &p256_key());
    let mut core = SynthSpec::new("core", PackageType::Core);
    core.container = Container::Tar;
    core.store = StoreKind::OciLayout;
    core.images = vec![SynthImage::new("acp/core", "v4.0.0")];
    let mut plugin = SynthSpec::new("logging", PackageType::Plugin);
    plugin.images = vec![SynthImage::new("acp/logging", "v1.0.0")];
    // The plugin's image carries a signature by another key.
    core.children = vec![signed_by(plugin, &other_key())];
    let core = signed_by(core, &p256_key());
    let pkg = ctx.write_package("pkgs", &core);
    let out = verify(&ctx, &pkg.path, &key, &["-o", "json"]);
    assert_eq!(out.code, 8, "{}", out.streams());
    let json = out.json();
    let rows = json["files"][0]["images"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{json:#}");
    assert_eq!(rows[0]["image"], "harbor.demo.io/acp/core:v4.0.0");
    assert_eq!(rows[0]["signature"], "signed");
    assert_eq!(rows[1]["image"], "harbor.demo.io/acp/logging:v1.0.0");
    assert_eq!(rows[1]["signature"], "bad-signature");
    assert!(
        rows[1]["package"]
            .as_str()
            .unwrap()
            .ends_with("core.ALL.v1.0.0.tar!plugins/logging.ALL.v1.0.0.tgz"),
        "{json:#}"
    );
}

/// An OCI 1.1 referrer (a manifest with `subject`, here an SBOM tagged like any image) is an
/// artifact of the image it refers to, not an image that needs a signature of its own.
#[test]
fn referrers_with_a_subject_are_not_images_to_sign() {
    use violet::digest::Digest;
    let ctx = TestContext::new();
    let key = ctx.cosign_pub("cosign.pub", &p256_key());
    let mut spec = demo("referred", Container::Directory, StoreKind::OciLayout);
    spec.images.truncate(1);
    let pkg = ctx.write_package("pkgs", &signed_by(spec, &p256_key()));
    let (_, subject) = &pkg.images[0];
    let blob = |bytes: &[u8]| {
        let d = Digest::of(bytes);
        std::fs::write(pkg.path.join("blobs/sha256").join(d.hex()), bytes).unwrap();
        (d, bytes.len())
    };
    let (empty, empty_size) = blob(b"{}");
    let (sbom, sbom_size) = blob(br#"{"spdxVersion":"SPDX-2.3"}"#);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/spdx+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":{empty_size}}},"layers":[{{"mediaType":"application/spdx+json","digest":"{sbom}","size":{sbom_size}}}],"subject":{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{subject}","size":1}}}}"#
    );
    let (referrer, referrer_size) = blob(manifest.as_bytes());
    let index_path = pkg.path.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": referrer.as_str(),
            "size": referrer_size,
            "annotations": {"org.opencontainers.image.ref.name": "harbor.demo.io/acp/demo:sbom"}
        }));
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();

    let json = verify(
        &ctx,
        &pkg.path,
        &key,
        &["--require-signatures", "-o", "json"],
    )
    .success()
    .json();
    let rows = json["files"][0]["images"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{json:#}");
    assert_eq!(rows[0]["image"], "harbor.demo.io/acp/demo:v1.0.0");
    assert_eq!(rows[0]["signature"], "signed");
}

/// A payload edited in place (its file changed, the manifest not): the content check fails on the
/// entry, and the image's row says which payload was tampered with.
#[test]
fn a_payload_edited_in_place_is_tampered() {
    let ctx = TestContext::new();
    let key = ctx.cosign_pub("cosign.pub", &p256_key());
    let mut spec = demo("edited", Container::Directory, StoreKind::OciLayout);
    spec.images.truncate(1);
    let pkg = ctx.write_package("pkgs", &signed_by(spec, &p256_key()));
    let blobs = pkg.path.join("blobs/sha256");
    let (_, sig) = &pkg.signatures[0];
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blobs.join(sig.hex())).unwrap()).unwrap();
    let payload = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let file = blobs.join(payload.trim_start_matches("sha256:"));
    let edited = String::from_utf8(std::fs::read(&file).unwrap())
        .unwrap()
        .replace("harbor.demo.io/acp/demo", "harbor.demo.io/acp/evil");
    std::fs::write(&file, edited).unwrap();

    let out = verify(&ctx, &pkg.path, &key, &["-o", "json"]);
    assert_eq!(out.code, 8, "{}", out.streams());
    let json = out.json();
    let file_report = &json["files"][0];
    assert!(
        file_report["reason"]
            .as_str()
            .unwrap()
            .contains("does not match its digest"),
        "{json:#}"
    );
    let row = &file_report["images"][0];
    assert_eq!(row["signature"], "bad-signature");
    assert!(
        row["reason"].as_str().unwrap().starts_with(&format!(
            "payload {payload} was tampered with: its bytes hash to sha256:"
        )),
        "{json:#}"
    );
}
