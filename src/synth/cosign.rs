//! cosign signatures for synthetic packages, made the way `cosign sign --key` makes them: the
//! simple-signing payload, its signature in the layer annotation, an OCI manifest tagged
//! `sha256-<hex>.sig` in the image's repository. Deterministic: ECDSA signs by RFC 6979 and RSA
//! PKCS#1 v1.5 has no randomness, so pinned keys give pinned digests.

use base64::Engine as _;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPublicKey as _};
use rsa::signature::{SignatureEncoding as _, Signer as _};

use crate::cosign::{SIGNATURE_ANNOTATION, SIMPLESIGNING};
use crate::digest::Digest;
use crate::package::mediatype::{OCI_CONFIG, OCI_MANIFEST};

/// A signing key for test signatures.
#[derive(Clone)]
pub enum SynthKey {
    P256(p256::ecdsa::SigningKey),
    Rsa(Box<rsa::RsaPrivateKey>),
}

impl std::fmt::Debug for SynthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SynthKey::P256(_) => f.write_str("SynthKey::P256"),
            SynthKey::Rsa(_) => f.write_str("SynthKey::Rsa"),
        }
    }
}

impl SynthKey {
    /// A P-256 key derived from `seed`: the same seed, the same key on every machine.
    pub fn p256(seed: u64) -> SynthKey {
        let mut counter = 0u64;
        loop {
            let scalar =
                sha2::Sha256::new_with_prefix(format!("violet synth cosign key {seed} {counter}"));
            use sha2::Digest as _;
            if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&scalar.finalize()) {
                return SynthKey::P256(k);
            }
            counter += 1;
        }
    }

    /// A private key in PEM: PKCS#8 `PRIVATE KEY` (EC P-256 or RSA), `EC PRIVATE KEY` or
    /// `RSA PRIVATE KEY`. An encrypted cosign key is not read.
    pub fn from_private_pem(pem: &str) -> Result<SynthKey, String> {
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            return Ok(SynthKey::P256(k));
        }
        if let Ok(k) = p256::SecretKey::from_sec1_pem(pem) {
            return Ok(SynthKey::P256(k.into()));
        }
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(pem) {
            return Ok(SynthKey::Rsa(Box::new(k)));
        }
        rsa::RsaPrivateKey::from_pkcs1_pem(pem)
            .map(|k| SynthKey::Rsa(Box::new(k)))
            .map_err(|_| {
                "not an unencrypted P-256 or RSA private key in PEM (PKCS#8, SEC1 or PKCS#1)".into()
            })
    }

    /// The public key as `cosign public-key` writes it: PEM `PUBLIC KEY` (SPKI).
    pub fn public_pem(&self) -> String {
        match self {
            SynthKey::P256(k) => k.verifying_key().to_public_key_pem(LineEnding::LF),
            SynthKey::Rsa(k) => k.to_public_key().to_public_key_pem(LineEnding::LF),
        }
        .expect("encoding a valid public key")
    }

    /// An RSA public key as PEM `RSA PUBLIC KEY` (PKCS#1); `None` for an EC key.
    pub fn rsa_pkcs1_public_pem(&self) -> Option<String> {
        match self {
            SynthKey::P256(_) => None,
            SynthKey::Rsa(k) => Some(
                k.to_public_key()
                    .to_pkcs1_pem(LineEnding::LF)
                    .expect("encoding a valid public key"),
            ),
        }
    }

    /// The private key as PEM `PRIVATE KEY` (PKCS#8, unencrypted).
    pub fn private_pem(&self) -> String {
        match self {
            SynthKey::P256(k) => k.to_pkcs8_pem(LineEnding::LF),
            SynthKey::Rsa(k) => k.to_pkcs8_pem(LineEnding::LF),
        }
        .expect("encoding a valid private key")
        .to_string()
    }

    /// The signature cosign stores for `message`: ECDSA as ASN.1 DER over SHA-256, RSA as
    /// PKCS#1 v1.5 with SHA-256.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            SynthKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_der().to_vec()
            }
            SynthKey::Rsa(k) => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new((**k).clone())
                .sign(message)
                .to_vec(),
        }
    }
}

/// The simple-signing payload for `digest`, in cosign's byte layout.
pub fn payload(digest: &Digest, docker_reference: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{docker_reference}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes()
}

/// A signature artifact: its manifest's bytes and the blobs under it (config, then payloads).
#[derive(Debug, Clone)]
pub struct SignatureArtifact {
    pub manifest: Vec<u8>,
    pub blobs: Vec<(Digest, Vec<u8>)>,
}

impl SignatureArtifact {
    pub fn digest(&self) -> Digest {
        Digest::of(&self.manifest)
    }
}

/// Signs `digest` as `docker_reference` with `key`, as `cosign sign --key` does.
pub fn sign(digest: &Digest, docker_reference: &str, key: &SynthKey) -> SignatureArtifact {
    let p = payload(digest, docker_reference);
    let sig = key.sign(&p);
    artifact(&[(p, sig)])
}

/// The artifact holding these (payload, signature) pairs, one layer each.
pub fn artifact(signed: &[(Vec<u8>, Vec<u8>)]) -> SignatureArtifact {
    let diff_ids: Vec<String> = signed
        .iter()
        .map(|(p, _)| format!("\"{}\"", Digest::of(p)))
        .collect();
    let config = format!(
        r#"{{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{{"created":"0001-01-01T00:00:00Z"}}],"os":"","rootfs":{{"type":"layers","diff_ids":[{}]}},"config":{{}}}}"#,
        diff_ids.join(",")
    )
    .into_bytes();
    let config_digest = Digest::of(&config);
    let layers: Vec<String> = signed
        .iter()
        .map(|(p, s)| {
            format!(
                r#"{{"mediaType":"{SIMPLESIGNING}","size":{},"digest":"{}","annotations":{{"{SIGNATURE_ANNOTATION}":"{}"}}}}"#,
                p.len(),
                Digest::of(p),
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        })
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","size":{},"digest":"{config_digest}"}},"layers":[{}]}}"#,
        config.len(),
        layers.join(",")
    )
    .into_bytes();
    let mut blobs = vec![(config_digest, config)];
    for (p, _) in signed {
        let d = Digest::of(p);
        if !blobs.iter().any(|(b, _)| b == &d) {
            blobs.push((d, p.clone()));
        }
    }
    SignatureArtifact { manifest, blobs }
}

/// Which digests of an image a [`SynthSignature`] signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignTarget {
    /// The image's index (what its tag points at).
    Top,
    /// Each platform manifest.
    Platforms,
    Both,
}

/// How a [`SynthSignature`] is spoiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    None,
    /// The payload was edited after signing (its docker-reference changed) and the artifact
    /// re-made around it: the signature no longer verifies.
    Payload,
    /// A valid signature of another image's digest, stored under this image's `.sig` tag.
    OtherDigest,
}

/// A cosign signature of an image of a [`super::SynthSpec`], written as an extra store image
/// `<repository>:sha256-<hex>.sig`. Several on one digest become layers of one artifact.
#[derive(Debug, Clone)]
pub struct SynthSignature {
    /// Index into `SynthSpec::images`.
    pub image: usize,
    pub key: SynthKey,
    pub target: SignTarget,
    pub tamper: Tamper,
}

impl SynthSignature {
    pub fn new(image: usize, key: SynthKey) -> Self {
        Self {
            image,
            key,
            target: SignTarget::Top,
            tamper: Tamper::None,
        }
    }

    /// The (payload, signature) this signs `digest` with, spoiled as asked.
    pub(super) fn layer(&self, digest: &Digest, docker_reference: &str) -> (Vec<u8>, Vec<u8>) {
        match self.tamper {
            Tamper::None => {
                let p = payload(digest, docker_reference);
                let s = self.key.sign(&p);
                (p, s)
            }
            Tamper::Payload => {
                let s = self.key.sign(&payload(digest, docker_reference));
                (payload(digest, "evil.example.com/acp/replaced"), s)
            }
            Tamper::OtherDigest => {
                let other = Digest::of(b"violet synth: another image");
                let p = payload(&other, docker_reference);
                let s = self.key.sign(&p);
                (p, s)
            }
        }
    }
}
