//! Artifacts about images, put into a real registry the way their producers do: a cosign-shaped
//! signature under cosign's tag scheme (`sha256-<hex>.sig`), and an SBOM as an OCI 1.1 referrer
//! (a manifest with `subject`, pushed by digest) listed in the referrers tag schema's index
//! (`sha256-<hex>`), as oras and cosign write it on a registry without the referrers API.
//! Whether a signature verifies is `support::cosign`'s business; here only the bytes travel.

use bytes::Bytes;
use violet::digest::Digest;
use violet::registry::{Client, RegistryConfig};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const SBOM_TYPE: &str = "application/spdx+json";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn upload(client: &Client, repo: &str, bytes: &[u8]) -> serde_json::Value {
    let digest = Digest::of(bytes);
    let body = Bytes::copy_from_slice(bytes);
    let open = move || -> std::io::Result<violet::registry::BlobStream> {
        let body = body.clone();
        Ok(Box::pin(futures_util::stream::once(
            async move { Ok(body) },
        )))
    };
    client
        .upload_blob(repo, &digest, bytes.len() as u64, &open, &|_| {})
        .await
        .unwrap();
    serde_json::json!({"digest": digest.as_str(), "size": bytes.len()})
}

/// The media type, digest and size of `repo:reference`, as a descriptor.
pub fn descriptor(registry: &RegistryConfig, repo: &str, reference: &str) -> serde_json::Value {
    runtime().block_on(async {
        let client = Client::new(registry.clone()).unwrap();
        let (media_type, bytes, digest) = client.get_manifest(repo, reference).await.unwrap();
        serde_json::json!({"mediaType": media_type, "digest": digest.as_str(), "size": bytes.len()})
    })
}

/// A cosign-shaped signature of `subject` at `repo:sha256-<hex>.sig`: the simple-signing
/// payload as its one layer, a signature annotation that is not checked here. Returns its digest.
pub fn sign(registry: &RegistryConfig, repo: &str, subject: &Digest) -> Digest {
    sign_times(registry, repo, subject, 1)
}

/// A real cosign signature of `subject` by `key` (`violet::synth::cosign`, as `cosign sign --key`
/// makes it) at `repo:sha256-<hex>.sig`. Returns its digest.
pub fn cosign_sign(
    registry: &RegistryConfig,
    repo: &str,
    subject: &Digest,
    key: &violet::synth::cosign::SynthKey,
) -> Digest {
    let reference = format!("{}/{repo}", registry.host);
    let artifact = violet::synth::cosign::sign(subject, &reference, key);
    runtime().block_on(async {
        let client = Client::new(registry.clone()).unwrap();
        for (_, bytes) in &artifact.blobs {
            upload(&client, repo, bytes).await;
        }
        let tag = format!("{}.sig", subject.as_str().replacen(':', "-", 1));
        client
            .put_manifest(repo, &tag, OCI_MANIFEST, artifact.manifest.clone().into())
            .await
            .unwrap()
    })
}

/// [`sign`] by `count` signers: cosign appends a layer per signature to the one manifest.
pub fn sign_times(registry: &RegistryConfig, repo: &str, subject: &Digest, count: usize) -> Digest {
    runtime().block_on(async {
        let client = Client::new(registry.clone()).unwrap();
        let payload = serde_json::json!({
            "critical": {
                "identity": {"docker-reference": format!("{}/{repo}", registry.host)},
                "image": {"docker-manifest-digest": subject.as_str()},
                "type": "cosign container image signature"
            },
            "optional": null
        });
        let payload = upload(&client, repo, &serde_json::to_vec(&payload).unwrap()).await;
        let layers: Vec<serde_json::Value> = (0..count)
            .map(|i| {
                let mut layer = payload.clone();
                layer["mediaType"] = "application/vnd.dev.cosign.simplesigning.v1+json".into();
                layer["annotations"] = serde_json::json!({
                    "dev.cosignproject.cosign/signature": format!("bm90IGNoZWNrZWQ{i}")
                });
                layer
            })
            .collect();
        let mut config = upload(&client, repo, br#"{"architecture":"","os":""}"#).await;
        config["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers
        });
        let tag = format!("{}.sig", subject.as_str().replacen(':', "-", 1));
        client
            .put_manifest(
                repo,
                &tag,
                OCI_MANIFEST,
                serde_json::to_vec(&manifest).unwrap().into(),
            )
            .await
            .unwrap()
    })
}

/// A cosign-shaped in-toto attestation of `subject` at `repo:sha256-<hex>.att`: one DSSE envelope
/// layer (not checked here). Returns its digest.
pub fn attest(registry: &RegistryConfig, repo: &str, subject: &Digest) -> Digest {
    runtime().block_on(async {
        let client = Client::new(registry.clone()).unwrap();
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [{"name": format!("{}/{repo}", registry.host), "digest": {"sha256": subject.hex()}}],
        });
        let envelope = serde_json::json!({
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64_std(&serde_json::to_vec(&statement).unwrap()),
            "signatures": [{"keyid": "", "sig": "bm90IGNoZWNrZWQ="}],
        });
        let mut layer = upload(&client, repo, &serde_json::to_vec(&envelope).unwrap()).await;
        layer["mediaType"] = "application/vnd.dsse.envelope.v1+json".into();
        layer["annotations"] = serde_json::json!({"predicateType": "https://slsa.dev/provenance/v0.2"});
        let mut config = upload(&client, repo, br#"{"architecture":"","os":""}"#).await;
        config["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]
        });
        let tag = format!("{}.att", subject.as_str().replacen(':', "-", 1));
        client
            .put_manifest(repo, &tag, OCI_MANIFEST, serde_json::to_vec(&manifest).unwrap().into())
            .await
            .unwrap()
    })
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An SPDX SBOM about `subject` (a descriptor of the image's index or manifest) as an OCI 1.1
/// referrer, pushed by digest and added to the fallback tag's index. Returns its digest.
pub fn attach_sbom(registry: &RegistryConfig, repo: &str, subject: &serde_json::Value) -> Digest {
    attach_sbom_with(registry, repo, subject, true)
}

/// [`attach_sbom`]; without `fallback_tag`, as a client does on a registry with the referrers
/// API: the manifest alone, no index under `sha256-<hex>`.
pub fn attach_sbom_with(
    registry: &RegistryConfig,
    repo: &str,
    subject: &serde_json::Value,
    fallback_tag: bool,
) -> Digest {
    runtime().block_on(async {
        let client = Client::new(registry.clone()).unwrap();
        let mut config = upload(&client, repo, b"{}").await;
        config["mediaType"] = "application/vnd.oci.empty.v1+json".into();
        let mut layer = upload(
            &client,
            repo,
            format!(
                r#"{{"spdxVersion":"SPDX-2.3","name":"{}"}}"#,
                subject["digest"]
            )
            .as_bytes(),
        )
        .await;
        layer["mediaType"] = SBOM_TYPE.into();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SBOM_TYPE,
            "config": config,
            "layers": [layer],
            "subject": subject,
            "annotations": {"org.opencontainers.image.created": "2026-11-30T00:00:00Z"}
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let digest = Digest::of(&bytes);
        client
            .put_manifest(repo, digest.as_str(), OCI_MANIFEST, bytes.clone().into())
            .await
            .unwrap();
        if !fallback_tag {
            return digest;
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{
                "mediaType": OCI_MANIFEST,
                "digest": digest.as_str(),
                "size": bytes.len(),
                "artifactType": SBOM_TYPE,
                "annotations": manifest["annotations"],
            }]
        });
        let subject_digest = subject["digest"].as_str().unwrap().replacen(':', "-", 1);
        client
            .put_manifest(
                repo,
                &subject_digest,
                OCI_INDEX,
                serde_json::to_vec(&index).unwrap().into(),
            )
            .await
            .unwrap();
        digest
    })
}
