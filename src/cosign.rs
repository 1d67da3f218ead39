//! cosign image signatures checked offline against a public key: the key file, the simple-signing
//! payload, and the verdict for one signature artifact. No I/O beyond reading the key file and
//! what the caller hands in; [`check`] finds the signatures of a package's images and reads them.
//!
//! What cosign writes (`cosign sign --key`): for an image with digest `sha256:abcd…` in repository
//! `R`, an OCI image manifest tagged `R:sha256-abcd….sig`, one layer per signature, each layer
//! `application/vnd.dev.cosign.simplesigning.v1+json` whose blob is the payload
//! `{"critical":{"identity":{"docker-reference":"R"},"image":{"docker-manifest-digest":"sha256:abcd…"},"type":"cosign container image signature"},"optional":…}`
//! and whose annotation `dev.cosignproject.cosign/signature` is the base64 signature over the
//! payload bytes exactly as stored. sigstore's verifiers: ECDSA is ASN.1 DER over SHA-256, RSA is
//! PKCS#1 v1.5 with SHA-256 (`signature.LoadVerifier`; PSS only when asked for explicitly).

pub mod check;

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use bytes::Bytes;
use p256::pkcs8::DecodePublicKey as _;
use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::pkcs8::der::Decode as _;
use rsa::signature::Verifier as _;
use serde::Deserialize;

use crate::digest::Digest;
use crate::error::{ExitCode, UserError};

pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The `critical.type` of every cosign image signature payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";
/// A simple-signing payload is a few hundred bytes; one far larger is not one, and is not read.
pub const PAYLOAD_LIMIT: u64 = 64 << 10;
const KEY_LIMIT: u64 = 64 << 10;

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// The tag cosign gives the signature (`sig`), attestations (`att`) or SBOM (`sbom`) of `digest`.
pub fn artifact_tag(digest: &Digest, suffix: &str) -> String {
    format!(
        "{}.{suffix}",
        crate::package::referrer::fallback_tag(digest)
    )
}

/// Whether a tag is one of cosign's artifact tags (`sha256-<hex>[.sig|.att|.sbom]`): such an
/// image is a signature or attestation of another image, not an image to verify.
pub fn is_artifact_tag(tag: &str) -> bool {
    use crate::package::referrer::{parse_cosign_tag, parse_fallback_tag};
    parse_cosign_tag(tag).is_some() || parse_fallback_tag(tag).is_some()
}

/// Why a `--cosign-key` file cannot be used. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cosign key {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cosign key {path}: not a PEM public key: {detail}")]
    NotAKey { path: PathBuf, detail: String },
    #[error("cosign key {path}: holds a private key (PEM {label:?}), not the public key")]
    NotPublic { path: PathBuf, label: String },
    #[error(
        "cosign key {path}: {kind} keys are not supported (ECDSA P-256 and RSA up to 4096 bits are)"
    )]
    Unsupported { path: PathBuf, kind: String },
}

impl UserError for KeyError {
    fn exit_code(&self) -> ExitCode {
        match self {
            // As with --keyring: the file given cannot be read as what the flag takes.
            KeyError::Io { .. } | KeyError::NotAKey { .. } => ExitCode::Input,
            // A readable key of the wrong kind: the command line asks for something violet does not do.
            KeyError::NotPublic { .. } | KeyError::Unsupported { .. } => ExitCode::Usage,
        }
    }
    fn hint(&self) -> Option<String> {
        Some(match self {
            KeyError::Unsupported { .. } => {
                "sign with 'cosign generate-key-pair' (ECDSA P-256) or an RSA key of at most 4096 bits, and pass its public half".into()
            }
            _ => "pass the PEM public key cosign wrote (cosign.pub from 'cosign generate-key-pair', or 'cosign public-key --key cosign.key')".into(),
        })
    }
}

/// A trusted cosign public key.
#[derive(Clone)]
pub struct PublicKey {
    kind: KeyKind,
    /// sha256 of the key's SubjectPublicKeyInfo (DER), for reports.
    id: Digest,
    path: PathBuf,
}

#[derive(Clone)]
enum KeyKind {
    P256(p256::ecdsa::VerifyingKey),
    Rsa(rsa::pkcs1v15::VerifyingKey<sha2::Sha256>),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {})", self.algorithm(), self.id)
    }
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (SPKI: EC P-256 or RSA) or `RSA PUBLIC KEY` (PKCS#1) file.
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        use std::io::Read as _;
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .map_err(io)?
            .take(KEY_LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > KEY_LIMIT {
            return Err(KeyError::NotAKey {
                path: path.to_path_buf(),
                detail: format!("larger than {KEY_LIMIT} bytes"),
            });
        }
        Self::from_pem(&bytes, path)
    }

    /// Parses the first PEM block of `pem`; `path` names the key in errors and reports.
    pub fn from_pem(pem: &[u8], path: &Path) -> Result<PublicKey, KeyError> {
        let not_a_key = |detail: String| KeyError::NotAKey {
            path: path.to_path_buf(),
            detail,
        };
        let text = std::str::from_utf8(pem).map_err(|_| not_a_key("not a text file".into()))?;
        let start = text
            .find("-----BEGIN ")
            .ok_or_else(|| not_a_key("no -----BEGIN line".into()))?;
        let end = text[start..]
            .find("-----END ")
            .map(|e| start + e + "-----END ".len())
            .and_then(|e| text[e..].find("-----").map(|t| e + t + "-----".len()))
            .ok_or_else(|| not_a_key("no -----END line".into()))?;
        let block = &text[start..end];
        let (label, der) = rsa::pkcs8::der::pem::decode_vec(block.as_bytes())
            .map_err(|e| not_a_key(e.to_string()))?;
        let unsupported = |kind: &str| KeyError::Unsupported {
            path: path.to_path_buf(),
            kind: kind.into(),
        };
        let kind = match label {
            "PUBLIC KEY" => {
                let spki = rsa::pkcs8::spki::SubjectPublicKeyInfoRef::from_der(&der)
                    .map_err(|e| not_a_key(e.to_string()))?;
                let oid = spki.algorithm.oid.to_string();
                match oid.as_str() {
                    OID_EC_PUBLIC_KEY => {
                        let curve = spki
                            .algorithm
                            .parameters_oid()
                            .map(|o| o.to_string())
                            .unwrap_or_default();
                        if curve != OID_P256 {
                            return Err(unsupported(&format!("ECDSA {}", curve_name(&curve))));
                        }
                        KeyKind::P256(
                            p256::ecdsa::VerifyingKey::from_public_key_der(&der)
                                .map_err(|e| not_a_key(e.to_string()))?,
                        )
                    }
                    OID_RSA => rsa_key(spki.subject_public_key.raw_bytes(), path)?,
                    "1.3.101.112" => return Err(unsupported("Ed25519")),
                    other => return Err(unsupported(&format!("algorithm {other}"))),
                }
            }
            "RSA PUBLIC KEY" => rsa_key(&der, path)?,
            "CERTIFICATE" => return Err(unsupported("certificate (keyless)")),
            private if private.contains("PRIVATE KEY") => {
                return Err(KeyError::NotPublic {
                    path: path.to_path_buf(),
                    label: private.into(),
                });
            }
            other => return Err(not_a_key(format!("a PEM {other:?} block"))),
        };
        // One id per key, whichever PEM form it came in: the sha256 of its SubjectPublicKeyInfo.
        let spki = match (&kind, label) {
            (KeyKind::Rsa(key), "RSA PUBLIC KEY") => {
                use rsa::pkcs8::EncodePublicKey as _;
                key.as_ref()
                    .to_public_key_der()
                    .map(|d| d.as_bytes().to_vec())
                    .map_err(|e| not_a_key(e.to_string()))?
            }
            _ => der,
        };
        Ok(PublicKey {
            kind,
            id: Digest::of(&spki),
            path: path.to_path_buf(),
        })
    }

    pub fn algorithm(&self) -> &'static str {
        match self.kind {
            KeyKind::P256(_) => "ecdsa-p256",
            KeyKind::Rsa(_) => "rsa",
        }
    }

    /// sha256 of the key's SubjectPublicKeyInfo (DER).
    pub fn id(&self) -> &Digest {
        &self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `signature` (as cosign stores it, decoded from base64) signs `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.kind {
            KeyKind::P256(key) => p256::ecdsa::DerSignature::from_bytes(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            KeyKind::Rsa(key) => rsa::pkcs1v15::Signature::try_from(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
        }
    }
}

/// An RSA key from its PKCS#1 `RSAPublicKey` DER. The rsa crate refuses moduli over 4096 bits;
/// such a key is named as unsupported rather than malformed.
fn rsa_key(pkcs1: &[u8], path: &Path) -> Result<KeyKind, KeyError> {
    let not_a_key = |detail: String| KeyError::NotAKey {
        path: path.to_path_buf(),
        detail,
    };
    let parsed = rsa::pkcs1::RsaPublicKey::from_der(pkcs1).map_err(|e| not_a_key(e.to_string()))?;
    let bytes = parsed.modulus.as_bytes();
    let bits = bytes.len() * 8 - bytes.first().map_or(8, |b| b.leading_zeros() as usize);
    if bits > 4096 {
        return Err(KeyError::Unsupported {
            path: path.to_path_buf(),
            kind: format!("RSA {bits}-bit"),
        });
    }
    let key = rsa::RsaPublicKey::from_pkcs1_der(pkcs1).map_err(|e| not_a_key(e.to_string()))?;
    Ok(KeyKind::Rsa(rsa::pkcs1v15::VerifyingKey::new(key)))
}

fn curve_name(oid: &str) -> String {
    match oid {
        "1.3.132.0.34" => "P-384".into(),
        "1.3.132.0.35" => "P-521".into(),
        "1.3.132.0.10" => "secp256k1".into(),
        "" => "(no curve)".into(),
        other => format!("curve {other}"),
    }
}

/// What a signature has to say, beyond being made by the key.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// `--identity`: the payload's `docker-reference` must equal it, or, ending in `/*`, lie
    /// under it (`harbor.demo.io/acp/*`). `None` checks nothing, as cosign does by default.
    pub identity: Option<String>,
}

impl Policy {
    fn identity_ok(&self, reference: &str) -> bool {
        match self.identity.as_deref() {
            None => true,
            Some(prefix) if prefix.ends_with("/*") => reference
                .strip_prefix(&prefix[..prefix.len() - 1])
                .is_some_and(|rest| !rest.is_empty()),
            Some(exact) => reference == exact,
        }
    }
}

/// The simple-signing payload (only what is checked; the bytes verified are the stored ones).
#[derive(Debug, Deserialize)]
pub struct Payload {
    pub critical: Critical,
}

#[derive(Debug, Deserialize)]
pub struct Critical {
    pub identity: Identity,
    pub image: PayloadImage,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Deserialize)]
pub struct Identity {
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

#[derive(Debug, Deserialize)]
pub struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

impl Payload {
    pub fn parse(bytes: &[u8]) -> Result<Payload, String> {
        let p: Payload = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a simple-signing payload: {e}"))?;
        if p.critical.kind != PAYLOAD_TYPE {
            return Err(format!(
                "payload type {:?}, not {PAYLOAD_TYPE:?}",
                p.critical.kind
            ));
        }
        Ok(p)
    }
}

/// Why a signature artifact does not vouch for its image. Each says which signature and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadReason {
    #[error(
        "the signature does not verify with key {key} ({path}): signed by another key, or the payload was altered"
    )]
    WrongKey { key: String, path: String },
    #[error("the signature is for {signed}, not this image's {image}")]
    OtherDigest { signed: String, image: Digest },
    #[error("signed as {signed:?}, not {expected:?} (--identity)")]
    Identity { signed: String, expected: String },
    #[error("payload {digest} was tampered with: its bytes hash to {actual}")]
    Tampered { digest: Digest, actual: Digest },
    #[error("unreadable signature: {0}")]
    Malformed(String),
}

/// The verdict for one image digest and its signature artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Layer `layer` (0-based) of the signature manifest verifies; the payload names `identity`.
    Signed {
        layer: usize,
        identity: String,
    },
    /// No cosign signature layer.
    Unsigned,
    Bad(BadReason),
}

#[derive(Deserialize)]
struct SigManifest {
    #[serde(default)]
    layers: Option<Vec<crate::package::oci_layout::Descriptor>>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
}

/// Checks the signature artifact `manifest` (the raw bytes of the `.sig` image's manifest) of the
/// image whose manifest or index has `digest`. `read_blob` returns a payload's bytes
/// as stored (they are hashed here: a payload edited in place is caught). Valid when any one
/// layer verifies with `key` and its payload names `digest` (and the identity `policy` asks for);
/// otherwise the most telling failure: a valid signature for something else before a wrong key.
pub fn verify(
    key: &PublicKey,
    policy: &Policy,
    digest: &Digest,
    manifest: &[u8],
    read_blob: impl Fn(&Digest) -> anyhow::Result<Bytes>,
) -> Verdict {
    let parsed: SigManifest = match serde_json::from_slice(manifest) {
        Ok(m) => m,
        Err(e) => return Verdict::Bad(BadReason::Malformed(format!("manifest: {e}"))),
    };
    if parsed.manifests.is_some() {
        return Verdict::Bad(BadReason::Malformed(
            "the signature is an index, not an image manifest".into(),
        ));
    }
    let mut failures: Vec<BadReason> = Vec::new();
    let layers = parsed.layers.unwrap_or_default();
    let mut signatures = 0;
    for (i, layer) in layers.iter().enumerate() {
        if layer.media_type.as_deref() != Some(SIMPLESIGNING) {
            continue;
        }
        let Some(sig_b64) = layer.annotations.get(SIGNATURE_ANNOTATION) else {
            continue;
        };
        signatures += 1;
        match check_layer(key, policy, digest, layer, sig_b64, &read_blob) {
            Ok(identity) => return Verdict::Signed { layer: i, identity },
            Err(reason) => failures.push(reason),
        }
    }
    if signatures == 0 {
        return Verdict::Unsigned;
    }
    let telling = failures
        .iter()
        .position(|r| !matches!(r, BadReason::WrongKey { .. }))
        .unwrap_or(0);
    Verdict::Bad(failures.swap_remove(telling))
}

fn check_layer(
    key: &PublicKey,
    policy: &Policy,
    digest: &Digest,
    layer: &crate::package::oci_layout::Descriptor,
    sig_b64: &str,
    read_blob: &impl Fn(&Digest) -> anyhow::Result<Bytes>,
) -> Result<String, BadReason> {
    let malformed = |m: String| BadReason::Malformed(m);
    let blob = Digest::parse(&layer.digest).map_err(|e| malformed(e.to_string()))?;
    if layer.size.is_some_and(|s| s > PAYLOAD_LIMIT) {
        return Err(malformed(format!(
            "payload {blob} is {} bytes, more than a simple-signing payload ({PAYLOAD_LIMIT})",
            layer.size.unwrap_or_default()
        )));
    }
    let payload = read_blob(&blob).map_err(|e| malformed(format!("payload {blob}: {e:#}")))?;
    let actual = Digest::of(&payload);
    if actual != blob {
        return Err(BadReason::Tampered {
            digest: blob,
            actual,
        });
    }
    let signature = base64::engine::general_purpose::STANDARD
        .decode(sig_b64.trim())
        .map_err(|e| malformed(format!("annotation {SIGNATURE_ANNOTATION}: {e}")))?;
    if !key.verifies(&payload, &signature) {
        return Err(BadReason::WrongKey {
            key: key.id().short().to_string(),
            path: key.path().display().to_string(),
        });
    }
    let parsed = Payload::parse(&payload).map_err(malformed)?;
    if parsed.critical.image.docker_manifest_digest != digest.as_str() {
        return Err(BadReason::OtherDigest {
            signed: parsed.critical.image.docker_manifest_digest,
            image: digest.clone(),
        });
    }
    let identity = parsed.critical.identity.docker_reference;
    if !policy.identity_ok(&identity) {
        return Err(BadReason::Identity {
            signed: identity,
            expected: policy.identity.clone().unwrap_or_default(),
        });
    }
    Ok(identity)
}

#[cfg(test)]
mod tests;
