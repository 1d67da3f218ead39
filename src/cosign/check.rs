//! The signature status of every image of a package (nested packages too): each image's cosign
//! signature is the store image in the same repository tagged `sha256-<hex>.sig` (its top digest,
//! and for an index each platform manifest's), its payloads are read out of the package (by
//! offset, or in one pass over a compressed one), and [`super::verify`] judges them.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use bytes::Bytes;
use serde::Serialize;

use super::{PAYLOAD_LIMIT, Policy, PublicKey, SIMPLESIGNING, Verdict};
use crate::digest::Digest;
use crate::package::blobs::{self, Flow};
use crate::package::referrer::ReferrerKind;
use crate::package::{Image, Package, PackageError};

/// One image's signature status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Signed,
    Unsigned,
    BadSignature,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Signed => "signed",
            Status::Unsigned => "unsigned",
            Status::BadSignature => "bad signature",
        }
    }
}

/// A row of the per-image report.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSignature {
    /// The package holding the image (`file!plugins/x.tgz` for a nested one).
    pub package: String,
    pub image: String,
    pub digest: Digest,
    pub signature: Status,
    /// The signature image(s) checked, `repository:sha256-<hex>.sig`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<String>,
    /// The `docker-reference` the valid signature names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Why the signature is bad, or what is missing for a partly signed index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ImageSignature {
    /// `image X: bad signature: why` / `image X: unsigned`, for errors and failed checks.
    pub fn line(&self) -> String {
        let mut s = format!("image {}: {}", self.image, self.signature.as_str());
        if let Some(r) = &self.reason {
            s.push_str(": ");
            s.push_str(r);
        }
        crate::output::escape(&s).into_owned()
    }
}

/// What a signature check needs: the key and the policy.
#[derive(Debug, Clone)]
pub struct Trust {
    pub key: PublicKey,
    pub policy: Policy,
}

/// Whether `image` is a signature, attestation or other referrer (the loader's classification),
/// or a referrers-schema index (`sha256-<hex>`), rather than an image to verify.
fn is_artifact(image: &Image) -> bool {
    image.referrer.is_some() || (image.reference.tag.as_deref()).is_some_and(super::is_artifact_tag)
}

/// The payload blobs of every signature image of `pkg` (nested too): what [`check_with`] reads,
/// for a caller that passes over the package anyway to keep on the way.
pub fn payloads(pkg: &Package) -> HashSet<Digest> {
    let mut out = HashSet::new();
    for p in pkg.flatten() {
        for i in &p.images {
            let is_sig = matches!(&i.referrer, Some(r) if r.kind == ReferrerKind::Signature);
            if let Some(m) = p.manifests.get(&i.digest).filter(|_| is_sig) {
                out.extend(payload_digests(&m.bytes));
            }
        }
    }
    out
}

/// One row per image (artifacts left out) of `pkg` and every package nested in it.
pub fn check(pkg: &Package, trust: &Trust) -> Result<Vec<ImageSignature>, PackageError> {
    check_with(pkg, trust, &HashMap::new())
}

/// [`check`], with payloads already read (and digest-checked) by the caller: only the others are
/// read from the package.
pub fn check_with(
    pkg: &Package,
    trust: &Trust,
    preread: &HashMap<Digest, Bytes>,
) -> Result<Vec<ImageSignature>, PackageError> {
    let all = pkg.flatten();
    let mut by_tag: HashMap<(&str, &str), (&Package, &Image)> = HashMap::new();
    for p in &all {
        for i in &p.images {
            if let Some(tag) = &i.reference.tag {
                by_tag
                    .entry((&i.reference.repository, tag))
                    .or_insert((p, i));
            }
        }
    }
    // Every image's signatures: (image, [(signed digest, is the top, owner, signature image)])
    type Found<'a> = Vec<(Digest, bool, &'a Package, &'a Image)>;
    let mut plan: Vec<(&Package, &Image, Found)> = Vec::new();
    for p in &all {
        for image in p.images.iter().filter(|i| !is_artifact(i)) {
            let mut signed = vec![(image.digest.clone(), true)];
            if let Some(top) = p.manifests.get(&image.digest)
                && top.is_index()
            {
                signed.extend(top.children.iter().map(|c| (c.clone(), false)));
            }
            let found = signed
                .into_iter()
                .filter_map(|(d, is_top)| {
                    let tag = super::artifact_tag(&d, "sig");
                    by_tag
                        .get(&(image.reference.repository.as_str(), tag.as_str()))
                        .map(|(o, s)| (d, is_top, *o, *s))
                })
                .collect();
            plan.push((p, image, found));
        }
    }
    let mut wanted: Vec<(&Package, Digest)> = Vec::new();
    for (_, _, found) in &plan {
        for (_, _, owner, sig) in found {
            if let Some(m) = owner.manifests.get(&sig.digest) {
                for d in payload_digests(&m.bytes) {
                    wanted.push((owner, d));
                }
            }
        }
    }
    wanted.retain(|(_, d)| !preread.contains_key(d));
    let mut payloads = read_payloads(pkg, &wanted)?;
    payloads.extend(preread.iter().map(|(d, b)| (d.clone(), Ok(b.clone()))));
    let read_blob = |d: &Digest| -> anyhow::Result<Bytes> {
        match payloads.get(d) {
            Some(Ok(b)) => Ok(b.clone()),
            Some(Err(e)) => Err(anyhow::anyhow!("{e}")),
            None => Err(anyhow::anyhow!("not in the package")),
        }
    };
    let mut rows = Vec::new();
    for (p, image, found) in plan {
        let mut row = ImageSignature {
            package: p.label(),
            image: image.reference.to_string(),
            digest: image.digest.clone(),
            signature: Status::Unsigned,
            signatures: found.iter().map(|(_, _, _, s)| sig_name(s)).collect(),
            identity: None,
            reason: None,
        };
        let children = p
            .manifests
            .get(&image.digest)
            .filter(|m| m.is_index())
            .map(|m| m.children.clone())
            .unwrap_or_default();
        let mut judged = Vec::new();
        for (signed, is_top, owner, sig) in &found {
            let Some(manifest) = owner.manifests.get(&sig.digest) else {
                continue;
            };
            let verdict = super::verify(
                &trust.key,
                &trust.policy,
                signed,
                &manifest.bytes,
                read_blob,
            );
            // The row names the image; a platform manifest's signature says which.
            let platform = (!is_top).then(|| {
                let name = p.manifests.get(signed).and_then(|m| m.platform.clone());
                format!("{} ({})", name.as_deref().unwrap_or("?"), signed.short())
            });
            judged.push((platform, verdict));
        }
        (row.signature, row.identity, row.reason) = judge(judged, children.len());
        rows.push(row);
    }
    Ok(rows)
}

/// The image's status from the verdicts of its signature artifacts (`None`: the index's; else
/// the platform manifest's label) when the index has `platforms` platform manifests: any bad one
/// makes it bad; a valid index signature, or one for every platform manifest, makes it signed.
fn judge(
    judged: Vec<(Option<String>, Verdict)>,
    platforms: usize,
) -> (Status, Option<String>, Option<String>) {
    let mut top = None;
    let mut platform_identity = None;
    let mut platforms_signed = 0;
    for (platform, verdict) in judged {
        match (verdict, platform) {
            (Verdict::Bad(reason), None) => {
                return (Status::BadSignature, None, Some(reason.to_string()));
            }
            (Verdict::Bad(reason), Some(p)) => {
                return (
                    Status::BadSignature,
                    None,
                    Some(format!("platform {p}: {reason}")),
                );
            }
            (Verdict::Signed { identity, .. }, None) => top = Some(identity),
            (Verdict::Signed { identity, .. }, Some(_)) => {
                platforms_signed += 1;
                platform_identity.get_or_insert(identity);
            }
            (Verdict::Unsigned, _) => {}
        }
    }
    if top.is_some() {
        return (Status::Signed, top, None);
    }
    if platforms > 0 && platforms_signed == platforms {
        return (Status::Signed, platform_identity, None);
    }
    let reason = (platforms_signed > 0).then(|| {
        format!("only {platforms_signed} of {platforms} platform manifests are signed, and not the index")
    });
    (Status::Unsigned, None, reason)
}

fn sig_name(sig: &Image) -> String {
    let r = &sig.reference;
    format!("{}:{}", r.repository, r.tag.as_deref().unwrap_or_default())
}

/// The payload blobs a signature manifest names (its simple-signing layers).
fn payload_digests(manifest: &[u8]) -> Vec<Digest> {
    #[derive(serde::Deserialize)]
    struct Layers {
        #[serde(default)]
        layers: Vec<crate::package::oci_layout::Descriptor>,
    }
    serde_json::from_slice::<Layers>(manifest)
        .map(|m| {
            m.layers
                .into_iter()
                .filter(|l| l.media_type.as_deref() == Some(SIMPLESIGNING))
                .filter(|l| l.size.is_none_or(|s| s <= PAYLOAD_LIMIT))
                .filter_map(|l| Digest::parse(&l.digest).ok())
                .collect()
        })
        .unwrap_or_default()
}

type Payloads = HashMap<Digest, Result<Bytes, String>>;

/// Reads the payload blobs: by offset where the package allows it, the rest in one pass over the
/// (compressed) package that stops once it has them all. Payloads are tiny; a blob larger than
/// [`PAYLOAD_LIMIT`] is not read.
fn read_payloads(top: &Package, wanted: &[(&Package, Digest)]) -> Result<Payloads, PackageError> {
    let mut out: Payloads = HashMap::new();
    let mut streamed: HashSet<Digest> = HashSet::new();
    for (owner, d) in wanted {
        if out.contains_key(d) || streamed.contains(d) {
            continue;
        }
        let Some(blob) = owner.blobs.get(d) else {
            out.insert(d.clone(), Err("not in the package".into()));
            continue;
        };
        match blobs::open(owner, &blob.location) {
            Ok(Some(mut r)) => {
                out.insert(d.clone(), read_limited(&mut r));
            }
            Ok(None) => {
                streamed.insert(d.clone());
            }
            Err(e) => {
                out.insert(d.clone(), Err(e.to_string()));
            }
        }
    }
    if streamed.is_empty() {
        return Ok(out);
    }
    let mut left = streamed.len();
    blobs::stream(top, &|d| streamed.contains(d), &mut |d, _, r| {
        if !out.contains_key(d) {
            out.insert(d.clone(), read_limited(r));
            left -= 1;
        }
        Ok(if left == 0 {
            Flow::Stop
        } else {
            Flow::Continue
        })
    })?;
    Ok(out)
}

fn read_limited(r: &mut dyn Read) -> Result<Bytes, String> {
    let mut buf = Vec::new();
    r.take(PAYLOAD_LIMIT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    if buf.len() as u64 > PAYLOAD_LIMIT {
        return Err(format!("larger than {PAYLOAD_LIMIT} bytes"));
    }
    Ok(Bytes::from(buf))
}

/// Why `push --cosign-key` refuses a package before uploading anything.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{line}{}", if *.more > 0 { format!(" (and {} more image(s))", .more) } else { String::new() })]
    Image { line: String, more: usize },
    #[error("{path}: cosign signatures cannot be read: {source}", path = .source.path().display())]
    Unreadable {
        #[source]
        source: PackageError,
    },
}

impl crate::error::UserError for Refusal {
    fn exit_code(&self) -> crate::error::ExitCode {
        crate::error::ExitCode::Verify
    }
    fn hint(&self) -> Option<String> {
        Some(match self {
            Refusal::Image { .. } => "nothing was pushed; 'violet verify PKG --cosign-key KEY' lists every image's signature".into(),
            Refusal::Unreadable { .. } => "download the package again and check it with 'violet verify'".into(),
        })
    }
}

/// Every image of every package must have a valid signature (`required`: unsigned fails too;
/// otherwise it is passed to `warn`). The first failing image, or `Ok`.
pub fn require(
    packages: &[Package],
    trust: &Trust,
    required: bool,
    warn: &dyn Fn(String),
) -> Result<(), Refusal> {
    let mut failing = Vec::new();
    for pkg in packages {
        let rows = check(pkg, trust).map_err(|source| Refusal::Unreadable { source })?;
        for r in rows {
            match r.signature {
                Status::Signed => {}
                Status::Unsigned if !required => {
                    warn(format!("{} (no cosign signature)", r.line()));
                }
                _ => failing.push(r),
            }
        }
    }
    match failing.split_first() {
        None => Ok(()),
        Some((first, rest)) => Err(Refusal::Image {
            line: format!(
                "{}: {}{}",
                crate::output::escape(&first.package),
                first.line(),
                if first.signature == Status::Unsigned {
                    " (--require-signatures)"
                } else {
                    ""
                }
            ),
            more: rest.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosign::BadReason;

    fn signed(identity: &str) -> Verdict {
        Verdict::Signed {
            layer: 0,
            identity: identity.into(),
        }
    }

    fn bad() -> Verdict {
        Verdict::Bad(BadReason::Malformed("junk".into()))
    }

    fn amd64() -> Option<String> {
        Some("linux/amd64 (0123456789ab)".into())
    }

    fn arm64() -> Option<String> {
        Some("linux/arm64 (ba9876543210)".into())
    }

    #[test]
    fn an_index_signature_or_every_platform_signs_the_image() {
        assert_eq!(
            judge(vec![(None, signed("r"))], 2),
            (Status::Signed, Some("r".into()), None)
        );
        assert_eq!(
            judge(vec![(amd64(), signed("p")), (arm64(), signed("p"))], 2),
            (Status::Signed, Some("p".into()), None)
        );
        assert_eq!(judge(vec![], 2), (Status::Unsigned, None, None));
        assert_eq!(
            judge(vec![(None, Verdict::Unsigned)], 0).0,
            Status::Unsigned
        );
    }

    #[test]
    fn a_partly_signed_index_is_unsigned_and_says_how_far() {
        assert_eq!(
            judge(vec![(amd64(), signed("p"))], 2),
            (
                Status::Unsigned,
                None,
                Some("only 1 of 2 platform manifests are signed, and not the index".into())
            )
        );
    }

    #[test]
    fn any_bad_signature_spoils_the_image_and_names_the_platform() {
        assert_eq!(
            judge(vec![(None, signed("r")), (arm64(), bad())], 2),
            (
                Status::BadSignature,
                None,
                Some("platform linux/arm64 (ba9876543210): unreadable signature: junk".into())
            )
        );
        assert_eq!(
            judge(vec![(None, bad()), (amd64(), signed("p"))], 2),
            (
                Status::BadSignature,
                None,
                Some("unreadable signature: junk".into())
            )
        );
    }
}
