//! What `violet create --artifact` learns from the main artifact (`docs/build.md`):
//!
//! * an **operator bundle image**: the ClusterServiceVersion under `manifests/` (name, version,
//!   `olm.skipRange`, `replaces`, display name and `relatedImages`) and `metadata/annotations.yaml`
//!   (package name, channels, default channel);
//! * an **OCI Helm chart**: `Chart.yaml` (name, version), the image inventory of `values.yaml`
//!   (`global.images.<key>.{repository,tag}`, under the chart's own registry, the only domain
//!   violet uses for them) and `module-plugin.yaml`; with a ModulePlugin (in the chart or from
//!   `--module-plugin`) the package is a cluster plugin, otherwise a Helm chart.
//!
//! The artifact's layers are small (KiBs), so they are read into memory, within fixed bounds that
//! keep a hostile artifact from exhausting memory.

use std::io::Read;

use serde_json::Value;

use crate::digest::Digest;
use crate::error::{ExitCode, Fail};
use crate::package::metadata::{Lifecycle, Metadata, OperatorInfo, PackageType};
use crate::pull;
use crate::registry::Client;

const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
const HELM_CHART: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
/// Largest compressed layer read from an artifact.
const MAX_LAYER: u64 = 64 << 20;
/// Largest file kept from a layer, and the total kept per artifact.
const MAX_FILE: u64 = 8 << 20;
const MAX_TOTAL: u64 = 64 << 20;

/// A parsed `registry/repository[:tag][@digest]` reference with a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses a full reference; the registry is required (violet relocates by registry).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => (
                n,
                Some(Digest::parse(d).map_err(|e| format!("{s}: bad digest: {}", e.0))?),
            ),
            None => (s, None),
        };
        let (registry, rest) = match name.split_once('/') {
            Some((h, r)) if h.contains('.') || h.contains(':') || h == "localhost" => (h, r),
            _ => {
                return Err(format!(
                    "{s}: the reference has no registry host (write it as REGISTRY/REPOSITORY:TAG)"
                ));
            }
        };
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t.to_string())),
            _ => (rest, None),
        };
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c);
        if repository.is_empty() || !repository.chars().all(valid) || tag.as_deref() == Some("") {
            return Err(format!("{s}: not a valid image reference"));
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(Self {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn lookup(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Reads the artifact and returns the package metadata it implies (without `architectures`,
/// which depend on the images pulled). `module_plugin` is `--module-plugin`, which wins over the
/// chart's own `module-plugin.yaml`.
pub async fn inspect(
    client: &Client,
    artifact: &Reference,
    module_plugin: Option<Value>,
) -> anyhow::Result<Metadata> {
    let label = artifact.to_string();
    let (_, bytes, _) = client
        .get_manifest(&artifact.repository, &artifact.lookup())
        .await?;
    let mut doc: Value = serde_json::from_slice(&bytes)
        .map_err(|e| bad(&label, format!("the manifest is not JSON: {e}")))?;
    // A bundle pushed as a multi-arch index: every child carries the same manifests/ files.
    if let Some(first) = doc
        .get("manifests")
        .and_then(|m| m.as_array())
        .and_then(|m| m.first())
    {
        let child = first["digest"].as_str().unwrap_or_default().to_string();
        let (_, bytes, _) = client.get_manifest(&artifact.repository, &child).await?;
        doc = serde_json::from_slice(&bytes)
            .map_err(|e| bad(&label, format!("manifest {child} is not JSON: {e}")))?;
    }
    let config_type = doc.pointer("/config/mediaType").and_then(|m| m.as_str());
    let layers = doc["layers"].as_array().cloned().unwrap_or_default();
    let is_chart = config_type == Some(HELM_CONFIG)
        || layers
            .iter()
            .any(|l| l["mediaType"].as_str().is_some_and(is_chart_content));
    let mut files = Vec::new();
    let mut total = 0u64;
    for layer in &layers {
        let media_type = layer["mediaType"].as_str().unwrap_or_default();
        if is_chart && !is_chart_content(media_type) {
            continue;
        }
        let size = layer["size"].as_u64().unwrap_or(0);
        let digest = layer["digest"]
            .as_str()
            .and_then(|d| Digest::parse(d).ok())
            .ok_or_else(|| bad(&label, "a layer has no valid digest".into()))?;
        if size > MAX_LAYER {
            return Err(bad(
                &label,
                format!(
                    "layer {digest} is {size} bytes; an artifact layer is expected to be small"
                ),
            )
            .into());
        }
        let blob = pull::fetch_small(client, &artifact.repository, &digest, size).await?;
        let compression = Compression::of(media_type)
            .map_err(|e| {
                bad(&label, format!("layer {digest}: {e}"))
                    .with_hint("bundle and chart layers are tar archives: plain, +gzip or +zstd")
            })?
            .unwrap_or_else(|| Compression::sniff(&blob));
        files.extend(read_tar(&blob, compression, &mut total).map_err(|e| {
            bad(
                &label,
                format!("layer {digest} ({media_type}, read as {compression}): {e}"),
            )
        })?);
    }
    if is_chart {
        chart_metadata(artifact, &files, module_plugin)
    } else if files.iter().any(|(p, _)| p.starts_with("manifests/")) {
        bundle_metadata(artifact, &files)
    } else {
        Err(bad(
            &label,
            "neither an operator bundle (no manifests/ directory) nor an OCI Helm chart".into(),
        )
        .with_hint("--artifact takes an operator bundle image or an OCI Helm chart")
        .into())
    }
}

fn bad(label: &str, message: String) -> Fail {
    Fail::new(ExitCode::Input, format!("artifact {label}: {message}"))
}

/// Helm's chart layer (`…chart.content.v1.tar+gzip`), in any compression suffix.
fn is_chart_content(media_type: &str) -> bool {
    media_type == HELM_CHART
        || media_type.starts_with("application/vnd.cncf.helm.chart.content.v1.tar")
}

/// How a layer's tar is compressed, as its media type declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// OCI `…layer.v1.tar`, `+gzip`, `+zstd` (and the non-distributable forms), docker
    /// `…rootfs.diff.tar.gzip` / `.tar`, Helm's chart content. `None` for an empty media type
    /// (some hand-written manifests): such a layer is read by its magic bytes.
    fn of(media_type: &str) -> Result<Option<Self>, String> {
        let m = media_type.trim();
        if m.is_empty() {
            return Ok(None);
        }
        if m.ends_with("+gzip") || m.ends_with(".tar.gzip") || m.ends_with(".tar.gz") {
            Ok(Some(Compression::Gzip))
        } else if m.ends_with("+zstd") || m.ends_with(".tar.zstd") || m.ends_with(".tar.zst") {
            Ok(Some(Compression::Zstd))
        } else if m.ends_with(".tar") || m.ends_with("v1.tar") {
            Ok(Some(Compression::None))
        } else {
            Err(format!("media type {m:?} is not a tar layer"))
        }
    }

    fn sniff(blob: &[u8]) -> Self {
        if blob.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::None => "an uncompressed tar",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// Every regular file of a layer's tar in the compression its media type declares, paths
/// without `./` or `/` prefixes.
fn read_tar(
    blob: &[u8],
    compression: Compression,
    total: &mut u64,
) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let reader: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(blob),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(blob)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(blob)?),
    };
    read_tar_entries(reader, total)
}

fn read_tar_entries(reader: impl Read, total: &mut u64) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut archive = tar::Archive::new(reader);
    let mut out = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.to_string_lossy().into_owned();
        let path = path
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_string();
        let size = entry.header().size()?;
        if size > MAX_FILE || *total + size > MAX_TOTAL {
            return Err(std::io::Error::other(format!(
                "{path} is too large ({size} bytes)"
            )));
        }
        *total += size;
        let mut data = Vec::with_capacity(size as usize);
        entry.take(MAX_FILE).read_to_end(&mut data)?;
        out.push((path, data));
    }
    Ok(out)
}

fn yaml(label: &str, path: &str, data: &[u8]) -> Result<Value, Fail> {
    let text = std::str::from_utf8(data).map_err(|e| bad(label, format!("{path}: {e}")))?;
    serde_saphyr::from_str::<Value>(text).map_err(|e| {
        bad(
            label,
            format!("{path}: {}", e.to_string().lines().next().unwrap_or("")),
        )
    })
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    match v.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn bundle_metadata(artifact: &Reference, files: &[(String, Vec<u8>)]) -> anyhow::Result<Metadata> {
    let label = artifact.to_string();
    let mut csv = None;
    for (path, data) in files {
        let in_manifests =
            path.starts_with("manifests/") && (path.ends_with(".yaml") || path.ends_with(".yml"));
        if !in_manifests {
            continue;
        }
        let doc = yaml(&label, path, data)?;
        if doc["kind"] == "ClusterServiceVersion" {
            csv = Some((path.clone(), doc));
            break;
        }
    }
    let Some((csv_path, csv)) = csv else {
        return Err(bad(&label, "manifests/ holds no ClusterServiceVersion".into()).into());
    };
    let annotations = match files.iter().find(|(p, _)| p == "metadata/annotations.yaml") {
        Some((p, data)) => yaml(&label, p, data)?,
        None => Value::Null,
    };
    let ann = |key: &str| {
        text(
            &annotations,
            &format!("/annotations/{}", key.replace('/', "~1")),
        )
    };
    let csv_name = text(&csv, "/metadata/name")
        .ok_or_else(|| bad(&label, format!("{csv_path}: metadata.name is missing")))?;
    let version = text(&csv, "/spec/version")
        .ok_or_else(|| bad(&label, format!("{csv_path}: spec.version is missing")))?;
    let name = ann("operators.operatorframework.io.bundle.package.v1")
        .unwrap_or_else(|| csv_name.split('.').next().unwrap_or(&csv_name).to_string());
    let channels: Vec<String> = ann("operators.operatorframework.io.bundle.channels.v1")
        .map(|c| {
            c.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let default_channel = ann("operators.operatorframework.io.bundle.channel.default.v1")
        .or_else(|| channels.first().cloned());
    let own = artifact.to_string();
    let mut related = Vec::new();
    for item in csv
        .pointer("/spec/relatedImages")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
    {
        let Some(image) = item["image"].as_str().map(str::trim) else {
            continue;
        };
        if image.is_empty() || image == own || related.iter().any(|r| r == image) {
            continue;
        }
        related.push(image.to_string());
    }
    Ok(Metadata {
        api_version: Some(crate::package::metadata::API_VERSION.into()),
        kind: Some(crate::package::metadata::KIND.into()),
        name: Some(name),
        display_name: text(&csv, "/spec/displayName"),
        package_type: Some(PackageType::Bundle),
        version: Some(version),
        channels,
        default_channel,
        artifact: Some(own),
        related_images: related,
        operator: Some(OperatorInfo {
            csv_name: Some(csv_name),
            skip_range: text(&csv, "/metadata/annotations/olm.skipRange"),
            replaces: text(&csv, "/spec/replaces"),
        }),
        ..Metadata::default()
    })
}

fn chart_metadata(
    artifact: &Reference,
    files: &[(String, Vec<u8>)],
    module_plugin: Option<Value>,
) -> anyhow::Result<Metadata> {
    let label = artifact.to_string();
    // The chart's own files sit under one top directory; subcharts (`x/charts/y/`) are not it.
    let Some((chart_yaml_path, chart_yaml)) = files
        .iter()
        .find(|(p, _)| p.matches('/').count() == 1 && p.ends_with("/Chart.yaml"))
    else {
        return Err(bad(&label, "the chart has no Chart.yaml".into()).into());
    };
    let root = chart_yaml_path.trim_end_matches("Chart.yaml");
    let chart = yaml(&label, chart_yaml_path, chart_yaml)?;
    let file = |name: &str| files.iter().find(|(p, _)| *p == format!("{root}{name}"));
    let chart_name = text(&chart, "/name")
        .ok_or_else(|| bad(&label, format!("{chart_yaml_path}: name is missing")))?;
    let version = text(&chart, "/version")
        .ok_or_else(|| bad(&label, format!("{chart_yaml_path}: version is missing")))?;

    let mut related = Vec::new();
    if let Some((path, data)) = file("values.yaml") {
        let values = yaml(&label, path, data)?;
        if let Some(images) = values.pointer("/global/images").and_then(|i| i.as_object()) {
            for (key, image) in images {
                let repository = text(image, "/repository").ok_or_else(|| {
                    bad(
                        &label,
                        format!("{path}: global.images.{key}.repository is missing"),
                    )
                })?;
                let tag = text(image, "/tag").ok_or_else(|| {
                    bad(
                        &label,
                        format!("{path}: global.images.{key}.tag is missing"),
                    )
                })?;
                let first = repository.split('/').next().unwrap_or_default();
                if repository.contains('/') && (first.contains('.') || first.contains(':')) {
                    return Err(bad(
                        &label,
                        format!(
                            "{path}: global.images.{key}.repository {repository:?} includes a registry host"
                        ),
                    )
                    .with_hint(format!(
                        "write the path only: violet takes every image from the chart's registry {}",
                        artifact.registry
                    ))
                    .into());
                }
                let reference = format!("{}/{}:{}", artifact.registry, repository, tag);
                if !related.contains(&reference) {
                    related.push(reference);
                }
            }
        }
    }
    let module_plugin = match module_plugin {
        Some(mp) => Some(mp),
        None => match file("module-plugin.yaml") {
            Some((path, data)) => Some(yaml(&label, path, data)?),
            None => None,
        },
    };
    let (package_type, name, display_name, lifecycle) = match &module_plugin {
        Some(mp) => {
            if mp["kind"] != "ModulePlugin" {
                return Err(bad(&label, "module-plugin.yaml is not a ModulePlugin".into()).into());
            }
            let name = text(mp, "/metadata/name")
                .or_else(|| text(mp, "/spec/name"))
                .unwrap_or_else(|| chart_name.clone());
            let display = text(mp, "/metadata/annotations/cpaas.io~1display-name")
                .map(|d| crate::platform::views::display_name(&d).unwrap_or(d));
            let lifecycle = match text(mp, "/metadata/labels/cpaas.io~1lifecycle-type").as_deref() {
                Some("core") => Some(Lifecycle::Core),
                Some("aligned") => Some(Lifecycle::Aligned),
                Some("agnostic") => Some(Lifecycle::Agnostic),
                _ => None,
            };
            (PackageType::Plugin, name, display, lifecycle)
        }
        None => (PackageType::Chart, chart_name, None, None),
    };
    Ok(Metadata {
        api_version: Some(crate::package::metadata::API_VERSION.into()),
        kind: Some(crate::package::metadata::KIND.into()),
        name: Some(name),
        display_name,
        package_type: Some(package_type),
        version: Some(version),
        artifact: Some(artifact.to_string()),
        related_images: related,
        module_plugin,
        lifecycle,
        ..Metadata::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = Reference::parse("reg.io:5000/acp/x:v1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("reg.io:5000", "acp/x", Some("v1"))
        );
        assert_eq!(r.lookup(), "v1");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("reg.io/acp/x@{d}")).unwrap();
        assert_eq!((r.tag.clone(), r.lookup()), (None, d.clone()));
        assert_eq!(
            Reference::parse("localhost/x").unwrap().to_string(),
            "localhost/x:latest"
        );
        assert!(
            Reference::parse("acp/x:v1")
                .unwrap_err()
                .contains("no registry host")
        );
        assert!(Reference::parse("reg.io/ACP/x").is_err());
        assert!(Reference::parse("reg.io/x@sha256:zz").is_err());
    }

    fn read_tar_gz(blob: &[u8], total: &mut u64) -> std::io::Result<Vec<(String, Vec<u8>)>> {
        read_tar(blob, Compression::Gzip, total)
    }

    fn tgz(files: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (p, d) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, p, d.as_bytes()).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn layers_are_read_in_the_compression_their_media_type_declares() {
        let tar = {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(5);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, "./manifests/x.yaml", &b"a: b\n"[..])
                .unwrap();
            b.into_inner().unwrap()
        };
        let gzip = {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&tar).unwrap();
            e.finish().unwrap()
        };
        let zstd = zstd::encode_all(&tar[..], 3).unwrap();
        for (media_type, blob) in [
            ("application/vnd.oci.image.layer.v1.tar", &tar),
            ("application/vnd.oci.image.layer.v1.tar+gzip", &gzip),
            ("application/vnd.oci.image.layer.v1.tar+zstd", &zstd),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                &gzip,
            ),
            ("application/vnd.docker.image.rootfs.diff.tar.gzip", &gzip),
            ("application/vnd.cncf.helm.chart.content.v1.tar+gzip", &gzip),
            ("", &zstd),
            ("", &tar),
        ] {
            let c = Compression::of(media_type)
                .unwrap()
                .unwrap_or_else(|| Compression::sniff(blob));
            let files = read_tar(blob, c, &mut 0).unwrap_or_else(|e| panic!("{media_type}: {e}"));
            assert_eq!(
                files,
                vec![("manifests/x.yaml".to_string(), b"a: b\n".to_vec())],
                "{media_type}"
            );
        }
        // A layer that lies about its compression is an error naming what it was read as.
        let c = Compression::of("application/vnd.oci.image.layer.v1.tar+gzip")
            .unwrap()
            .unwrap();
        assert!(read_tar(&zstd, c, &mut 0).is_err());
        assert_eq!(c.to_string(), "gzip");
        assert!(Compression::of("application/vnd.oci.image.config.v1+json").is_err());
    }

    #[test]
    fn bundle_fields_come_from_the_csv_and_annotations() {
        let csv = "apiVersion: operators.coreos.com/v1alpha1\nkind: ClusterServiceVersion\nmetadata:\n  name: demo-operator.v1.2.0\n  annotations:\n    olm.skipRange: '>=1.0.0 <1.2.0'\nspec:\n  version: 1.2.0\n  displayName: Demo\n  replaces: demo-operator.v1.1.0\n  relatedImages:\n  - name: op\n    image: r.io/acp/demo:v1.2.0\n  - name: self\n    image: r.io/acp/demo-bundle:v1.2.0\n  - name: dup\n    image: r.io/acp/demo:v1.2.0\n";
        let ann = "annotations:\n  operators.operatorframework.io.bundle.package.v1: demo-operator\n  operators.operatorframework.io.bundle.channels.v1: stable,alpha\n";
        let mut total = 0;
        let files = read_tar_gz(
            &tgz(&[
                ("./manifests/demo.clusterserviceversion.yaml", csv),
                ("metadata/annotations.yaml", ann),
            ]),
            &mut total,
        )
        .unwrap();
        let artifact = Reference::parse("r.io/acp/demo-bundle:v1.2.0").unwrap();
        let m = bundle_metadata(&artifact, &files).unwrap();
        assert_eq!(m.name.as_deref(), Some("demo-operator"));
        assert_eq!(m.version.as_deref(), Some("1.2.0"));
        assert_eq!(m.channels, ["stable", "alpha"]);
        assert_eq!(m.default_channel.as_deref(), Some("stable"));
        assert_eq!(m.related_images, ["r.io/acp/demo:v1.2.0"]);
        let op = m.operator.unwrap();
        assert_eq!(op.skip_range.as_deref(), Some(">=1.0.0 <1.2.0"));
        assert_eq!(op.replaces.as_deref(), Some("demo-operator.v1.1.0"));
    }

    #[test]
    fn chart_images_use_the_chart_registry() {
        let values = "global:\n  images:\n    agent:\n      repository: acp/agent\n      tag: v1\n    web:\n      repository: acp/web\n      tag: 2.0\n";
        let mp = "apiVersion: cluster.alauda.io/v1alpha1\nkind: ModulePlugin\nmetadata:\n  name: demo-plugin\n  labels:\n    cpaas.io/lifecycle-type: aligned\n";
        let mut total = 0;
        let files = read_tar_gz(
            &tgz(&[
                ("demo/Chart.yaml", "name: demo\nversion: 0.3.0\n"),
                ("demo/values.yaml", values),
                ("demo/module-plugin.yaml", mp),
                ("demo/charts/sub/Chart.yaml", "name: sub\nversion: 9\n"),
            ]),
            &mut total,
        )
        .unwrap();
        let artifact = Reference::parse("c.io:5000/charts/demo:0.3.0").unwrap();
        let m = chart_metadata(&artifact, &files, None).unwrap();
        assert_eq!(m.package_type, Some(PackageType::Plugin));
        assert_eq!(m.name.as_deref(), Some("demo-plugin"));
        assert_eq!(m.lifecycle, Some(Lifecycle::Aligned));
        assert_eq!(
            m.related_images,
            ["c.io:5000/acp/agent:v1", "c.io:5000/acp/web:2.0"]
        );
        let plain = chart_metadata(&artifact, &files[..2], None).unwrap();
        assert_eq!(plain.package_type, Some(PackageType::Chart));
        // --module-plugin wins over the chart's own file, and makes a plain chart a plugin.
        let given: Value = serde_saphyr::from_str(
            "apiVersion: cluster.alauda.io/v1alpha1\nkind: ModulePlugin\nmetadata:\n  name: from-flag\n",
        )
        .unwrap();
        for chart_files in [&files[..2], &files[..]] {
            let m = chart_metadata(&artifact, chart_files, Some(given.clone())).unwrap();
            assert_eq!(m.package_type, Some(PackageType::Plugin));
            assert_eq!(m.name.as_deref(), Some("from-flag"));
        }

        let hosted =
            "global:\n  images:\n    x:\n      repository: other.io/acp/x\n      tag: v1\n";
        let files = read_tar_gz(
            &tgz(&[
                ("demo/Chart.yaml", "name: demo\nversion: 1\n"),
                ("demo/values.yaml", hosted),
            ]),
            &mut total,
        )
        .unwrap();
        let err = chart_metadata(&artifact, &files, None).unwrap_err();
        assert!(
            err.to_string().contains("includes a registry host"),
            "{err}"
        );
    }
}
