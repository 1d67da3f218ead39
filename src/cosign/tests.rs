use std::collections::HashMap;
use std::path::Path;

use p256::pkcs8::{EncodePublicKey as _, LineEnding};
use rsa::pkcs1::EncodeRsaPublicKey as _;
use rsa::signature::{SignatureEncoding as _, Signer as _};

use super::*;

const RSA_TEST_KEY: &str = include_str!("../../testdata/cosign/rsa-test.key");

fn ec_key(seed: u8) -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap()
}

fn rsa_key() -> rsa::RsaPrivateKey {
    use rsa::pkcs8::DecodePrivateKey as _;
    rsa::RsaPrivateKey::from_pkcs8_pem(RSA_TEST_KEY).unwrap()
}

fn ec_public(k: &p256::ecdsa::SigningKey) -> PublicKey {
    let pem = k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    PublicKey::from_pem(pem.as_bytes(), Path::new("cosign.pub")).unwrap()
}

fn payload(digest: &Digest, reference: &str) -> Vec<u8> {
    crate::synth::cosign::payload(digest, reference)
}

/// A signature manifest over `layers` (payload, signature), as the test signer writes it, and
/// the blob store it reads from.
fn artifact(layers: &[(Vec<u8>, Vec<u8>)]) -> (Vec<u8>, HashMap<Digest, Bytes>) {
    let a = crate::synth::cosign::artifact(layers);
    let store = a
        .blobs
        .into_iter()
        .map(|(d, b)| (d, Bytes::from(b)))
        .collect();
    (a.manifest, store)
}

fn ec_sign(k: &p256::ecdsa::SigningKey, msg: &[u8]) -> Vec<u8> {
    let sig: p256::ecdsa::Signature = k.sign(msg);
    sig.to_der().to_vec()
}

fn run(
    key: &PublicKey,
    policy: &Policy,
    digest: &Digest,
    art: &(Vec<u8>, HashMap<Digest, Bytes>),
) -> Verdict {
    verify(key, policy, digest, &art.0, |d| {
        art.1
            .get(d)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("missing"))
    })
}

fn image() -> Digest {
    Digest::of(b"the image index")
}

#[test]
fn ecdsa_signature_verifies() {
    let k = ec_key(7);
    let p = payload(&image(), "harbor.demo.io/acp/foo");
    let art = artifact(&[(p.clone(), ec_sign(&k, &p))]);
    assert_eq!(
        run(&ec_public(&k), &Policy::default(), &image(), &art),
        Verdict::Signed {
            layer: 0,
            identity: "harbor.demo.io/acp/foo".into()
        }
    );
}

#[test]
fn rsa_pkcs1v15_signature_verifies_with_spki_and_pkcs1_keys() {
    let k = rsa_key();
    let p = payload(&image(), "harbor.demo.io/acp/foo");
    let sig = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k.clone())
        .sign(&p)
        .to_vec();
    let art = artifact(&[(p, sig)]);
    let spki = k.to_public_key().to_public_key_pem(LineEnding::LF).unwrap();
    let pkcs1 = k.to_public_key().to_pkcs1_pem(LineEnding::LF).unwrap();
    let mut ids = Vec::new();
    for pem in [spki, pkcs1] {
        let key = PublicKey::from_pem(pem.as_bytes(), Path::new("rsa.pub")).unwrap();
        assert_eq!(key.algorithm(), "rsa");
        ids.push(key.id().clone());
        assert!(matches!(
            run(&key, &Policy::default(), &image(), &art),
            Verdict::Signed { layer: 0, .. }
        ));
    }
    assert_eq!(ids[0], ids[1], "one id per key, whatever its PEM form");
}

#[test]
fn wrong_key_is_bad() {
    let p = payload(&image(), "harbor.demo.io/acp/foo");
    let art = artifact(&[(p.clone(), ec_sign(&ec_key(7), &p))]);
    let v = run(&ec_public(&ec_key(8)), &Policy::default(), &image(), &art);
    let Verdict::Bad(reason @ BadReason::WrongKey { .. }) = v else {
        panic!("{v:?}")
    };
    assert!(reason.to_string().contains("(cosign.pub)"), "{reason}");
}

#[test]
fn payload_edited_after_signing_does_not_verify() {
    let k = ec_key(7);
    let signed = payload(&image(), "harbor.demo.io/acp/foo");
    let edited = payload(&image(), "evil.example.com/acp/foo");
    let art = artifact(&[(edited, ec_sign(&k, &signed))]);
    assert!(matches!(
        run(&ec_public(&k), &Policy::default(), &image(), &art),
        Verdict::Bad(BadReason::WrongKey { .. })
    ));
}

#[test]
fn payload_blob_not_matching_its_digest_is_tampered() {
    let k = ec_key(7);
    let p = payload(&image(), "harbor.demo.io/acp/foo");
    let (manifest, mut store) = artifact(&[(p.clone(), ec_sign(&k, &p))]);
    let d = Digest::of(&p);
    let mut bytes = p.clone();
    bytes[20] ^= 1;
    store.insert(d.clone(), Bytes::from(bytes));
    let v = run(
        &ec_public(&k),
        &Policy::default(),
        &image(),
        &(manifest, store),
    );
    assert!(
        matches!(&v, Verdict::Bad(BadReason::Tampered { digest, .. }) if digest == &d),
        "{v:?}"
    );
}

#[test]
fn signature_for_another_digest_names_both() {
    let k = ec_key(7);
    let other = Digest::of(b"another image");
    let p = payload(&other, "harbor.demo.io/acp/foo");
    let art = artifact(&[(p.clone(), ec_sign(&k, &p))]);
    let Verdict::Bad(reason) = run(&ec_public(&k), &Policy::default(), &image(), &art) else {
        panic!()
    };
    let text = reason.to_string();
    assert!(matches!(reason, BadReason::OtherDigest { .. }));
    assert!(
        text.contains(other.as_str()) && text.contains(image().as_str()),
        "{text}"
    );
}

#[test]
fn identity_is_checked_only_when_asked() {
    let k = ec_key(7);
    let p = payload(&image(), "harbor.demo.io/acp/foo");
    let art = artifact(&[(p.clone(), ec_sign(&k, &p))]);
    let key = ec_public(&k);
    let with = |identity: &str| Policy {
        identity: Some(identity.into()),
    };
    assert!(matches!(
        run(&key, &with("harbor.demo.io/acp/foo"), &image(), &art),
        Verdict::Signed { .. }
    ));
    assert!(matches!(
        run(&key, &with("harbor.demo.io/acp/*"), &image(), &art),
        Verdict::Signed { .. }
    ));
    assert!(matches!(
        run(&key, &with("harbor.demo.io/*"), &image(), &art),
        Verdict::Signed { .. }
    ));
    for wrong in [
        "harbor.demo.io/acp/fo",
        "harbor.demo.io/ac/*",
        "harbor.demo.io/acp/foo/*",
    ] {
        assert!(
            matches!(
                run(&key, &with(wrong), &image(), &art),
                Verdict::Bad(BadReason::Identity { .. })
            ),
            "{wrong}"
        );
    }
}

#[test]
fn one_good_layer_among_others_is_enough_and_the_telling_failure_wins() {
    let good = ec_key(7);
    let other = ec_key(9);
    let p = payload(&image(), "harbor.demo.io/acp/foo");
    let art = artifact(&[
        (p.clone(), ec_sign(&other, &p)),
        (p.clone(), ec_sign(&good, &p)),
    ]);
    assert_eq!(
        run(&ec_public(&good), &Policy::default(), &image(), &art),
        Verdict::Signed {
            layer: 1,
            identity: "harbor.demo.io/acp/foo".into()
        }
    );
    let wrong = payload(&Digest::of(b"x"), "harbor.demo.io/acp/foo");
    let art = artifact(&[
        (p.clone(), ec_sign(&other, &p)),
        (wrong.clone(), ec_sign(&good, &wrong)),
    ]);
    assert!(matches!(
        run(&ec_public(&good), &Policy::default(), &image(), &art),
        Verdict::Bad(BadReason::OtherDigest { .. })
    ));
}

#[test]
fn no_signature_layer_is_unsigned_and_junk_is_malformed() {
    let key = ec_public(&ec_key(7));
    let art = artifact(&[]);
    assert_eq!(
        run(&key, &Policy::default(), &image(), &art),
        Verdict::Unsigned
    );
    let v = verify(
        &key,
        &Policy::default(),
        &image(),
        b"not json",
        |_| unreachable!(),
    );
    assert!(matches!(v, Verdict::Bad(BadReason::Malformed(_))));
    let p = payload(&image(), "r");
    let (manifest, _) = artifact(&[(p.clone(), ec_sign(&ec_key(7), &p))]);
    let v = verify(&key, &Policy::default(), &image(), &manifest, |_| {
        Err(anyhow::anyhow!("gone"))
    });
    assert!(
        matches!(&v, Verdict::Bad(BadReason::Malformed(m)) if m.contains("gone")),
        "{v:?}"
    );
}

#[test]
fn payload_type_must_be_cosigns() {
    assert!(Payload::parse(&payload(&image(), "r")).is_ok());
    let other = br#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:00"},"type":"atomic container signature"},"optional":{}}"#;
    assert!(Payload::parse(other).unwrap_err().contains("atomic"));
}

#[test]
fn artifact_tags() {
    let hex = "a".repeat(64);
    for t in [
        format!("sha256-{hex}"),
        format!("sha256-{hex}.sig"),
        format!("sha256-{hex}.att"),
        format!("sha256-{hex}.sbom"),
    ] {
        assert!(is_artifact_tag(&t), "{t}");
    }
    for t in [
        "v1.0.0".to_string(),
        format!("sha256-{hex}.sigx"),
        format!("sha256-{}.sig", "A".repeat(64)),
        format!("sha256-{}.sig", "a".repeat(63)),
    ] {
        assert!(!is_artifact_tag(&t), "{t}");
    }
    assert_eq!(
        artifact_tag(&image(), "sig"),
        format!("sha256-{}.sig", image().hex())
    );
}

#[test]
fn key_files_errors_name_the_file_and_exit_by_kind() {
    let d = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        let p = d.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let missing = d.path().join("nope.pub");
    let e = PublicKey::load(&missing).unwrap_err();
    assert_eq!(e.exit_code(), ExitCode::Input);
    assert!(
        e.to_string()
            .starts_with(&format!("cosign key {}:", missing.display()))
    );

    let junk = write("junk.pub", "hello");
    let e = PublicKey::load(&junk).unwrap_err();
    assert!(matches!(e, KeyError::NotAKey { .. }));
    assert_eq!(e.exit_code(), ExitCode::Input);
    assert!(e.hint().unwrap().contains("cosign.pub"));

    let p384 = write(
        "p384.pub",
        include_str!("../../testdata/cosign/p384-test.pub"),
    );
    let e = PublicKey::load(&p384).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "cosign key {}: ECDSA P-384 keys are not supported (ECDSA P-256 and RSA up to 4096 bits are)",
            p384.display()
        )
    );
    assert_eq!(e.exit_code(), ExitCode::Usage);

    let big = write(
        "rsa4200.pub",
        include_str!("../../testdata/cosign/rsa4200-test.pub"),
    );
    let e = PublicKey::load(&big).unwrap_err();
    assert!(
        e.to_string()
            .contains("RSA 4200-bit keys are not supported"),
        "{e}"
    );
    assert_eq!(e.exit_code(), ExitCode::Usage);

    let private = write("cosign.key", RSA_TEST_KEY);
    let e = PublicKey::load(&private).unwrap_err();
    assert!(matches!(e, KeyError::NotPublic { .. }), "{e}");
    assert_eq!(e.exit_code(), ExitCode::Usage);

    // Text around the block (as `cosign public-key` output pasted into a file) is ignored.
    let pem = ec_key(3)
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let good = write("good.pub", &format!("# release key\n{pem}\n"));
    let key = PublicKey::load(&good).unwrap();
    assert_eq!(key.algorithm(), "ecdsa-p256");
    assert_eq!(key.path(), good.as_path());
}
