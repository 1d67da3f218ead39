//! Artifacts that refer to an image: cosign's tag scheme (`sha256-<hex>.sig`, `.att`, `.sbom` in
//! the image's repository) and OCI 1.1 referrers (a manifest whose `subject` names the image).
//! They travel in a package as images of its store, with their exact bytes; this module tells
//! them apart from the images they describe. docs/supply-chain.md has the whole picture.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// What a referrer is, as far as its name or manifest tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReferrerKind {
    /// cosign signature (`.sig`).
    Signature,
    /// cosign attestation (`.att`, DSSE envelopes).
    Attestation,
    /// cosign SBOM attachment (`.sbom`).
    Sbom,
    /// An OCI 1.1 referrer (a manifest with a `subject`): its `artifactType` says what it is.
    Artifact,
}

impl ReferrerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReferrerKind::Signature => "signature",
            ReferrerKind::Attestation => "attestation",
            ReferrerKind::Sbom => "sbom",
            ReferrerKind::Artifact => "artifact",
        }
    }

    /// The suffixes of cosign's tag scheme, in the order they are looked for.
    pub const TAG_SCHEME: [ReferrerKind; 3] = [
        ReferrerKind::Signature,
        ReferrerKind::Attestation,
        ReferrerKind::Sbom,
    ];

    fn suffix(self) -> Option<&'static str> {
        match self {
            ReferrerKind::Signature => Some("sig"),
            ReferrerKind::Attestation => Some("att"),
            ReferrerKind::Sbom => Some("sbom"),
            ReferrerKind::Artifact => None,
        }
    }
}

/// An image of the package that refers to another one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Referrer {
    /// The digest of the manifest or index it is about.
    pub subject: Digest,
    pub kind: ReferrerKind,
    /// The manifest's `artifactType` (or its config's media type), for OCI referrers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Found through the manifest's `subject` field (an OCI 1.1 referrer): a destination without
    /// the referrers API needs the fallback tag (`sha256-<hex>`) to list it.
    #[serde(skip)]
    pub by_subject: bool,
}

/// `3 (2 signature, 1 sbom)`: how many referrers of which kind, for text reports.
pub fn summary(kinds: impl IntoIterator<Item = ReferrerKind>) -> String {
    let mut counts: std::collections::BTreeMap<ReferrerKind, usize> = Default::default();
    for k in kinds {
        *counts.entry(k).or_default() += 1;
    }
    let total: usize = counts.values().sum();
    let parts: Vec<String> = counts
        .iter()
        .map(|(k, n)| format!("{n} {}", k.as_str()))
        .collect();
    format!("{total} ({})", parts.join(", "))
}

/// cosign's tag for `kind` of `subject`: `sha256-<hex>.sig`.
pub fn cosign_tag(subject: &Digest, kind: ReferrerKind) -> Option<String> {
    Some(format!("{}.{}", fallback_tag(subject), kind.suffix()?))
}

/// The OCI referrers tag schema's tag for `subject` (`sha256-<hex>`): an index of its referrers,
/// kept by clients where the registry has no referrers API.
pub fn fallback_tag(subject: &Digest) -> String {
    subject.as_str().replacen(':', "-", 1)
}

/// The subject and kind a cosign tag names (`sha256-<64 hex>.sig|.att|.sbom`).
pub fn parse_cosign_tag(tag: &str) -> Option<(Digest, ReferrerKind)> {
    let (digest, suffix) = tag.rsplit_once('.')?;
    let kind = ReferrerKind::TAG_SCHEME
        .into_iter()
        .find(|k| k.suffix() == Some(suffix))?;
    Some((parse_fallback_tag(digest)?, kind))
}

/// The subject of a referrers-schema tag (`sha256-<64 hex>`).
pub fn parse_fallback_tag(tag: &str) -> Option<Digest> {
    let hex = tag.strip_prefix("sha256-")?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

/// The fields of a manifest that make it a referrer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fields {
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    config: Option<Typed>,
    #[serde(default)]
    subject: Option<SubjectField>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Typed {
    #[serde(default)]
    media_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SubjectField {
    digest: String,
}

/// Whether an image (its tag and top manifest) refers to another one. A manifest's `subject`
/// wins over its tag: the tag is a name, the subject is what the registry indexes.
pub fn classify(tag: Option<&str>, manifest: &[u8]) -> Option<Referrer> {
    let fields: Fields = serde_json::from_slice(manifest).unwrap_or_default();
    if let Some(subject) = fields
        .subject
        .as_ref()
        .and_then(|s| Digest::parse(&s.digest).ok())
    {
        let kind = tag
            .and_then(parse_cosign_tag)
            .map_or(ReferrerKind::Artifact, |(_, k)| k);
        return Some(Referrer {
            subject,
            kind,
            artifact_type: artifact_type(&fields),
            by_subject: true,
        });
    }
    let (subject, kind) = parse_cosign_tag(tag?)?;
    Some(Referrer {
        subject,
        kind,
        artifact_type: None,
        by_subject: false,
    })
}

/// The artifact type an OCI referrers listing gives a manifest: its `artifactType`, else its
/// config's media type (image-spec 1.1, "Listing referrers").
fn artifact_type(fields: &Fields) -> Option<String> {
    fields
        .artifact_type
        .clone()
        .or_else(|| fields.config.as_ref().and_then(|c| c.media_type.clone()))
}

/// The descriptor of a referrer as an OCI referrers index lists it: media type, digest, size,
/// artifact type and the manifest's annotations.
pub fn index_descriptor(media_type: &str, digest: &Digest, manifest: &[u8]) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_slice(manifest).unwrap_or_default();
    let fields: Fields = serde_json::from_slice(manifest).unwrap_or_default();
    let mut d = serde_json::json!({
        "mediaType": media_type,
        "digest": digest.as_str(),
        "size": manifest.len(),
    });
    if let Some(t) = artifact_type(&fields) {
        d["artifactType"] = t.into();
    }
    if let Some(a) = doc.get("annotations").filter(|a| a.is_object()) {
        d["annotations"] = a.clone();
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn cosign_tags_round_trip() {
        let d = Digest::parse(&format!("sha256:{HEX}")).unwrap();
        let tag = cosign_tag(&d, ReferrerKind::Signature).unwrap();
        assert_eq!(tag, format!("sha256-{HEX}.sig"));
        assert_eq!(
            parse_cosign_tag(&tag),
            Some((d.clone(), ReferrerKind::Signature))
        );
        assert_eq!(
            parse_cosign_tag(&format!("sha256-{HEX}.att")).unwrap().1,
            ReferrerKind::Attestation
        );
        assert_eq!(fallback_tag(&d), format!("sha256-{HEX}"));
        assert_eq!(parse_fallback_tag(&fallback_tag(&d)), Some(d));
        for not in [
            "v1.0",
            "sha256-abc.sig",
            &format!("sha256-{HEX}.txt"),
            &format!("sha512-{HEX}.sig"),
        ] {
            assert_eq!(parse_cosign_tag(not), None, "{not}");
        }
    }

    #[test]
    fn subject_field_makes_a_referrer() {
        let m = format!(
            r#"{{"schemaVersion":2,"artifactType":"application/spdx+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json"}},"subject":{{"digest":"sha256:{HEX}"}}}}"#
        );
        let r = classify(None, m.as_bytes()).unwrap();
        assert_eq!(r.kind, ReferrerKind::Artifact);
        assert!(r.by_subject);
        assert_eq!(r.artifact_type.as_deref(), Some("application/spdx+json"));
        let plain = r#"{"schemaVersion":2,"config":{"mediaType":"x"},"layers":[]}"#;
        assert_eq!(classify(Some("v1"), plain.as_bytes()), None);
        let sig = classify(Some(&format!("sha256-{HEX}.sig")), plain.as_bytes()).unwrap();
        assert_eq!((sig.kind, sig.by_subject), (ReferrerKind::Signature, false));
    }

    #[test]
    fn index_descriptor_carries_type_and_annotations() {
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.example+json"},"annotations":{"a":"b"}}"#;
        let d = index_descriptor(
            "application/vnd.oci.image.manifest.v1+json",
            &Digest::of(m),
            m,
        );
        assert_eq!(d["artifactType"], "application/vnd.example+json");
        assert_eq!(d["annotations"]["a"], "b");
        assert_eq!(d["size"], m.len());
    }
}
