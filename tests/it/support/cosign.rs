//! cosign test keys and signed synthetic packages: signatures made the way `cosign sign --key`
//! makes them (`violet::synth::cosign`), stored as `<repo>:sha256-<hex>.sig` images.

use std::path::PathBuf;
use std::sync::OnceLock;

// `sign(digest, docker_reference, key)` builds one artifact as cosign does, for tests that put it
// together themselves.
#[allow(unused_imports)]
pub use violet::synth::cosign::{SignatureArtifact, payload, sign};
pub use violet::synth::{SignTarget, SynthKey, SynthSignature, Tamper};

use super::TestContext;
use super::packages::SynthSpec;

/// The P-256 test key: fixed seed, the same key (and signatures) on every run.
pub fn p256_key() -> SynthKey {
    SynthKey::p256(1)
}

/// A second P-256 key: "the wrong key".
pub fn other_key() -> SynthKey {
    SynthKey::p256(2)
}

/// The RSA 2048 test key, committed (`testdata/cosign/rsa-test.key`): generating one in a debug
/// build is slow, and a committed key keeps signatures and digests pinned.
pub fn rsa_key() -> SynthKey {
    static KEY: OnceLock<SynthKey> = OnceLock::new();
    KEY.get_or_init(|| {
        SynthKey::from_private_pem(include_str!("../../../testdata/cosign/rsa-test.key"))
            .expect("the committed RSA test key")
    })
    .clone()
}

/// `spec` with a signature of every image by `key` (of the index, what its tag points at).
pub fn signed_by(mut spec: SynthSpec, key: &SynthKey) -> SynthSpec {
    spec.signatures = (0..spec.images.len())
        .map(|i| SynthSignature::new(i, key.clone()))
        .collect();
    spec
}

impl TestContext {
    /// Writes `key`'s public half (PEM `PUBLIC KEY`, as `cosign public-key` does) as `name`.
    pub fn cosign_pub(&self, name: &str, key: &SynthKey) -> PathBuf {
        let path = self.file(name);
        std::fs::write(&path, key.public_pem()).expect("write public key");
        path
    }
}
