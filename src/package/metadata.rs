//! The package metadata file (`violet.yaml` at the package root; schema in docs/package-format.md).

use serde::{Deserialize, Serialize};

/// What kind of extension a package carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageType {
    /// OLM operator bundle (Artifact/ArtifactVersion per cluster).
    Bundle,
    /// Cluster plugin (ModulePlugin in the global cluster).
    Plugin,
    /// Helm chart (Artifact/ArtifactVersion under a chart repository).
    Chart,
    /// ACP core package: an image store plus nested extension packages.
    Core,
}

impl PackageType {
    pub fn as_str(self) -> &'static str {
        match self {
            PackageType::Bundle => "bundle",
            PackageType::Plugin => "plugin",
            PackageType::Chart => "chart",
            PackageType::Core => "core",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    Core,
    Aligned,
    Agnostic,
}

/// Operator-specific fields (type `bundle`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperatorInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// Effective package metadata. Every field is optional in the file; `name`, `type` and `version`
/// are filled from the file name when the file lacks them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Schema marker: `violet.alauda.io/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `Package`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Package (artifact) name, e.g. `topolvm-operator`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Human-readable name shown by `violet show` (`Name:`), e.g. `NativeStor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub package_type: Option<PackageType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_channel: Option<String>,
    /// Platforms the images carry, `os/arch[/variant]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// The main artifact: bundle image (operators) or OCI chart (plugins, charts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// Every other image the package carries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related_images: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_catalog_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<OperatorInfo>,
    /// The ModulePlugin resource of a cluster plugin, as a YAML/JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_plugin: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// Set by violet's own package writers: every store metadata entry and manifest precedes the
    /// first layer blob in the archive, so a reader may stop at the first layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manifests_first: bool,
    /// Set on a differential package (`violet package --base`): some layer blobs are not carried
    /// because the destination is expected to hold them already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differential: Option<Differential>,
    /// Signatures, attestations, SBOMs and other artifacts about the images, carried as images of
    /// the store (written by `violet create`/`package`; docs/supply-chain.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<ReferrerEntry>,
}

/// One artifact about an image that the package carries (`referrers` in `violet.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReferrerEntry {
    /// Where it is stored: `registry/repository:sha256-<hex>.sig` (cosign's tag scheme) or
    /// `registry/repository@sha256:…` (an OCI referrer).
    pub reference: String,
    /// The digest of its manifest.
    pub digest: crate::digest::Digest,
    /// The digest of the image manifest or index it is about.
    pub subject: crate::digest::Digest,
    pub kind: crate::package::referrer::ReferrerKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

/// What a differential package was built against and which blobs it leaves at the site
/// (docs/package-format.md "Differential packages").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Differential {
    /// `inventory` (a `violet inventory` file) or `package` (a previous package file).
    pub against: BaseKind,
    /// The base's file name, as a label for messages.
    pub base: String,
    /// The inventory's own digest, or the sha256 of the base package file.
    pub base_digest: crate::digest::Digest,
    /// Every blob the package's images need that it does not carry: the destination must hold
    /// each one (in the repository that needs it, or in `repository` to mount it from).
    #[serde(default)]
    pub expected: Vec<ExpectedBlob>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseKind {
    Inventory,
    Package,
    /// A registry the connected side reaches (`--base docker://HOST[/PREFIX]`), listed like an
    /// inventory at build time.
    Registry,
}

impl BaseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BaseKind::Inventory => "inventory",
            BaseKind::Package => "package",
            BaseKind::Registry => "registry",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpectedBlob {
    pub digest: crate::digest::Digest,
    pub size: u64,
    /// A repository (path at the registry the base describes, without host) known to hold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
}

impl Differential {
    /// `inventory site.json (sha256:…)`, how messages name the base.
    pub fn label(&self) -> String {
        format!(
            "{} {} ({})",
            self.against.as_str(),
            self.base,
            self.base_digest
        )
    }
}

/// File name of the metadata file at the package root.
pub const METADATA_FILE: &str = "violet.yaml";

/// What a package file name says (`<name>.<channel>.<ARCH>.<version>.tgz`, `<name>.<ARCH>.<version>.tgz`,
/// and the legacy forms of docs/package-format.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileNameInfo {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// `amd64`, `arm64` or `ALL` (`hybrid` is read as `ALL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The only schema version this violet reads and writes.
pub const API_VERSION: &str = "violet.alauda.io/v1";
/// The `kind` of the metadata file.
pub const KIND: &str = "Package";

/// Archive extensions, longest first so `.tar.gz` wins over `.tar`.
const ARCHIVE_EXTENSIONS: [&str; 4] = [".tar.gz", ".tar.zst", ".tgz", ".tar"];

/// The file name without its package archive extension (`.tgz`, `.tar.gz`, `.tar`, `.tar.zst`,
/// any case), or `None` when it has none of them.
pub fn archive_stem(file_name: &str) -> Option<&str> {
    ARCHIVE_EXTENSIONS.iter().find_map(|ext| {
        let cut = file_name.len().checked_sub(ext.len())?;
        let (stem, tail) = (file_name.get(..cut)?, file_name.get(cut..)?);
        (tail.eq_ignore_ascii_case(ext) && !stem.is_empty()).then_some(stem)
    })
}

/// Parses the metadata file; errors carry line and column.
pub fn parse(
    path: &std::path::Path,
    entry: &str,
    bytes: &[u8],
) -> Result<Metadata, crate::package::PackageError> {
    let err =
        |line: usize, column: usize, message: String| crate::package::PackageError::Metadata {
            path: path.to_path_buf(),
            entry: entry.to_string(),
            line,
            column,
            message,
        };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_col(bytes, e.valid_up_to());
        err(line, column, "not valid UTF-8".into())
    })?;
    if text
        .lines()
        .all(|l| matches!(l.trim(), "" | "---" | "...") || l.trim_start().starts_with('#'))
    {
        return Err(err(
            1,
            1,
            format!(
                "empty metadata file: expected a mapping starting with 'apiVersion: {API_VERSION}' and 'kind: {KIND}'"
            ),
        ));
    }
    let md: Metadata = serde_saphyr::from_str(text).map_err(|e| {
        if let Some(value) = unknown_package_type(text) {
            return crate::package::PackageError::UnknownType {
                path: path.to_path_buf(),
                value,
            };
        }
        // Every error serde-saphyr raises while parsing carries a location; 1:1 only guards the
        // rare error it reports without one.
        let (line, column) = e.location().map_or((1, 1), |l| {
            (to_usize(l.line()).max(1), to_usize(l.column()).max(1))
        });
        err(line, column, yaml_message(&e))
    })?;
    for (key, found, expected) in [
        ("apiVersion", &md.api_version, API_VERSION),
        ("kind", &md.kind, KIND),
    ] {
        if let Some(found) = found
            && found != expected
        {
            let (line, column) = key_value_position(text, key);
            return Err(err(
                line,
                column,
                format!("{key} is {found:?}, expected {expected:?}"),
            ));
        }
    }
    Ok(md)
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The error text without serde-saphyr's location suffix or source snippet (the location goes
/// into our own `entry:line:column` prefix), on one line.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::MessageFormatter as _;
    let raw = serde_saphyr::UserMessageFormatter
        .format_message(e.without_snippet())
        .into_owned();
    raw.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// When the whole error is a `type` value outside the known set, that value: reported as
/// [`PackageError::UnknownType`](crate::package::PackageError::UnknownType) because it usually
/// means a newer violet wrote the package. Found by a second, lenient parse rather than by reading
/// serde's message text, whose wording the YAML crate may change.
fn unknown_package_type(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct TypeProbe {
        #[serde(default, rename = "type")]
        package_type: Option<serde_json::Value>,
    }
    let probe: TypeProbe = serde_saphyr::from_str(text).ok()?;
    let value = probe.package_type?;
    let name = value.as_str()?.to_string();
    serde_json::from_value::<PackageType>(value)
        .is_err()
        .then_some(name)
}

/// 1-based line and column of byte `offset`.
fn line_col(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = bytes.get(..offset).unwrap_or(bytes);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}

/// Position of the value of top-level `key:` in the YAML text (1:1 when not found, e.g. when the
/// key is written in flow style).
fn key_value_position(text: &str, key: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        if let Some(rest) = line.strip_prefix(key)
            && let Some(after) = rest.trim_start().strip_prefix(':')
        {
            let column = line.len() - after.trim_start().len() + 1;
            return (i + 1, column);
        }
    }
    (1, 1)
}

/// `amd64`, `arm64` and `ALL` as they appear in file names; `hybrid` (the download page's word for
/// ALL) is accepted too.
fn file_name_arch(token: &str) -> Option<&'static str> {
    match token {
        "amd64" => Some("amd64"),
        "arm64" => Some("arm64"),
        "ALL" | "all" | "hybrid" => Some("ALL"),
        _ => None,
    }
}

/// Platforms a file-name architecture stands for.
fn arch_platforms(arch: &str) -> Vec<String> {
    match arch {
        "amd64" => vec!["linux/amd64".into()],
        "arm64" => vec!["linux/arm64".into()],
        _ => vec!["linux/amd64".into(), "linux/arm64".into()],
    }
}

/// Parses a package file name (the file name only, no directory). `None` when it follows no known form.
pub fn parse_file_name(file_name: &str) -> Option<FileNameInfo> {
    let stem = archive_stem(file_name).unwrap_or(file_name);
    if stem.is_empty()
        || stem.starts_with('.')
        || stem.contains(['/', '\\'])
        || stem.chars().any(char::is_whitespace)
    {
        return None;
    }
    let info =
        |name: &str, channel: Option<&str>, arch: Option<&str>, version: &str| FileNameInfo {
            name: name.to_string(),
            channel: channel.map(str::to_string),
            arch: arch.map(str::to_string),
            version: (!version.is_empty()).then(|| version.to_string()),
        };

    // Marketplace forms: <name>.<channel>.<ARCH>.<version> and <name>.<ARCH>.<version>.
    let tokens: Vec<&str> = stem.split('.').collect();
    if let Some(i) = (1..tokens.len()).find(|&i| file_name_arch(tokens[i]).is_some())
        && tokens[..i].iter().all(|t| !t.is_empty())
    {
        let version = tokens[i + 1..].join(".");
        let arch = file_name_arch(tokens[i]);
        return Some(if i >= 2 {
            info(
                &tokens[..i - 1].join("."),
                Some(tokens[i - 1]),
                arch,
                &version,
            )
        } else {
            info(tokens[0], None, arch, &version)
        });
    }

    // <name>-<ARCH>.<version>, e.g. crossplane-ALL.2.x.
    for arch in ["ALL", "amd64", "arm64"] {
        if let Some((name, version)) = stem.split_once(&format!("-{arch}."))
            && !name.is_empty()
        {
            return Some(info(name, None, Some(arch), version));
        }
    }

    // <name>.v<version>, e.g. topolvm-operator.v2.3.0.
    if let Some(pos) = stem
        .match_indices(".v")
        .map(|(p, _)| p)
        .find(|&p| p > 0 && stem[p + 2..].starts_with(|c: char| c.is_ascii_digit()))
    {
        return Some(info(&stem[..pos], None, None, &stem[pos + 1..]));
    }

    // <name>-[v]<digits>[.<rest>][-hybrid], e.g. chartmuseum-v3.16.1, plugins-cloudedge-v0.3.16-hybrid,
    // redis-proxy-operator-3.18.1-acp3.18-20250214.
    if let Some(pos) = stem
        .match_indices('-')
        .map(|(p, _)| p)
        .find(|&p| p > 0 && starts_version(&stem[p + 1..]))
    {
        let (name, mut version) = (&stem[..pos], &stem[pos + 1..]);
        let mut arch = None;
        if let Some((v, a)) = version.rsplit_once('-')
            && let Some(a) = file_name_arch(a)
        {
            version = v;
            arch = Some(a);
        }
        return Some(info(name, None, arch, version));
    }

    // Anything else (e.g. a self-built output.tgz) names the package and says nothing more.
    Some(info(stem, None, None, ""))
}

/// `v1.2`, `3.18.1-acp`, `2`: an optional `v`, digits, then a dot, a dash or the end.
fn starts_version(s: &str) -> bool {
    let s = s.strip_prefix('v').unwrap_or(s);
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && matches!(s.as_bytes().get(digits), None | Some(b'.') | Some(b'-'))
}

/// Versions compare equal with or without a leading `v` (`v2.3.0` in file names, `2.3.0` in metadata).
fn same_version(a: &str, b: &str) -> bool {
    let strip = |s: &str| s.strip_prefix(['v', 'V']).unwrap_or(s).to_string();
    strip(a) == strip(b)
}

/// Merges the metadata file (authoritative) with the file name (fallback), returning the effective
/// metadata, where it came from, and a warning for each disagreement.
pub fn effective(
    file: Option<Metadata>,
    name: Option<FileNameInfo>,
) -> (Metadata, crate::package::MetadataSource, Vec<String>) {
    use crate::package::MetadataSource;
    let mut warnings = Vec::new();
    let source = match (&file, &name) {
        (Some(_), _) => MetadataSource::File,
        (None, Some(_)) => MetadataSource::FileName,
        (None, None) => MetadataSource::None,
    };
    let mut md = file.unwrap_or_default();
    let Some(fname) = name else {
        return (md, source, warnings);
    };
    let from_file = source == MetadataSource::File;

    match &md.name {
        Some(n) if *n != fname.name => warnings.push(format!(
            "name in {METADATA_FILE} ({n}) differs from the file name ({}); using {n}",
            fname.name
        )),
        Some(_) => {}
        None => md.name = Some(fname.name.clone()),
    }
    if let Some(fv) = &fname.version {
        match &md.version {
            Some(v) if !same_version(v, fv) => warnings.push(format!(
                "version in {METADATA_FILE} ({v}) differs from the file name ({fv}); using {v}"
            )),
            Some(_) => {}
            None => md.version = Some(fv.clone()),
        }
    }
    if let Some(channel) = &fname.channel {
        // Only operator file names carry a channel.
        match md.package_type {
            Some(PackageType::Bundle) => {}
            Some(t) => warnings.push(format!(
                "the file name has channel {channel:?} (operator form) but {METADATA_FILE} says type {}; using {}",
                t.as_str(),
                t.as_str()
            )),
            None => md.package_type = Some(PackageType::Bundle),
        }
        if md.channels.is_empty() {
            md.channels = vec![channel.clone()];
            md.default_channel.get_or_insert_with(|| channel.clone());
        } else if from_file && !md.channels.contains(channel) {
            warnings.push(format!(
                "channel {channel:?} of the file name is not among the channels in {METADATA_FILE} ([{}])",
                md.channels.join(" ")
            ));
        }
    }
    if let Some(arch) = &fname.arch {
        let implied = arch_platforms(arch);
        if md.architectures.is_empty() {
            md.architectures = implied;
        } else if arch != "ALL" {
            // ALL means "not architecture specific", so any set agrees with it; amd64/arm64 must
            // match exactly (variants such as linux/arm64/v8 count as arm64).
            let archs: std::collections::BTreeSet<&str> = md
                .architectures
                .iter()
                .map(|p| p.split('/').nth(1).unwrap_or(p))
                .collect();
            if archs.len() != 1 || !archs.contains(arch.as_str()) {
                warnings.push(format!(
                    "architectures in {METADATA_FILE} ([{}]) differ from the file name ({arch}); using [{}]",
                    md.architectures.join(" "),
                    md.architectures.join(" ")
                ));
            }
        }
    }
    (md, source, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::{MetadataSource, PackageError};
    use std::path::Path;

    fn fname(
        name: &str,
        channel: Option<&str>,
        arch: Option<&str>,
        version: Option<&str>,
    ) -> FileNameInfo {
        FileNameInfo {
            name: name.into(),
            channel: channel.map(Into::into),
            arch: arch.map(Into::into),
            version: version.map(Into::into),
        }
    }

    #[test]
    fn file_names() {
        let cases: &[(&str, FileNameInfo)] = &[
            (
                "servicemesh-operator2.stable.ALL.v2.1.0.tgz",
                fname(
                    "servicemesh-operator2",
                    Some("stable"),
                    Some("ALL"),
                    Some("v2.1.0"),
                ),
            ),
            (
                "kubernetes-nmstate-operator.alpha.amd64.v4.1.4.tgz",
                fname(
                    "kubernetes-nmstate-operator",
                    Some("alpha"),
                    Some("amd64"),
                    Some("v4.1.4"),
                ),
            ),
            (
                "langflow-operator.alpha.ALL.v1.10.2.tgz",
                fname(
                    "langflow-operator",
                    Some("alpha"),
                    Some("ALL"),
                    Some("v1.10.2"),
                ),
            ),
            (
                "llama-stack-operator.alpha.ALL.v0.7.0.tgz",
                fname(
                    "llama-stack-operator",
                    Some("alpha"),
                    Some("ALL"),
                    Some("v0.7.0"),
                ),
            ),
            (
                "infernex-bridge.alpha.arm64.v26.6.0.tgz",
                fname(
                    "infernex-bridge",
                    Some("alpha"),
                    Some("arm64"),
                    Some("v26.6.0"),
                ),
            ),
            (
                "redis.latest.ALL.v3.18.0.tgz",
                fname("redis", Some("latest"), Some("ALL"), Some("v3.18.0")),
            ),
            (
                "sriov-network-plugin.amd64.v4.4.1.tgz",
                fname("sriov-network-plugin", None, Some("amd64"), Some("v4.4.1")),
            ),
            (
                "sriov-network-plugin.arm64.v4.4.1.tgz",
                fname("sriov-network-plugin", None, Some("arm64"), Some("v4.4.1")),
            ),
            (
                "sriov-network-plugin.ALL.v4.4.1.tgz",
                fname("sriov-network-plugin", None, Some("ALL"), Some("v4.4.1")),
            ),
            (
                "nfs.amd64.v4.0.2.tgz",
                fname("nfs", None, Some("amd64"), Some("v4.0.2")),
            ),
            (
                "aiops-notification-business.ALL.vx.x.x.tgz",
                fname(
                    "aiops-notification-business",
                    None,
                    Some("ALL"),
                    Some("vx.x.x"),
                ),
            ),
            (
                "oam-application.ALL.v4.2.x.tgz",
                fname("oam-application", None, Some("ALL"), Some("v4.2.x")),
            ),
            (
                "volcano.amd64.v1.12.1.tgz",
                fname("volcano", None, Some("amd64"), Some("v1.12.1")),
            ),
            (
                "kfbase.amd64.v1.10.5.tgz",
                fname("kfbase", None, Some("amd64"), Some("v1.10.5")),
            ),
            (
                "label-studio.ALL.v1.20.0-1.tgz",
                fname("label-studio", None, Some("ALL"), Some("v1.20.0-1")),
            ),
            (
                "lakefs.ALL.1.7.9.tgz",
                fname("lakefs", None, Some("ALL"), Some("1.7.9")),
            ),
            (
                "topolvm-operator.v2.3.0.tgz",
                fname("topolvm-operator", None, None, Some("v2.3.0")),
            ),
            (
                "opensearch-operator.v3.14.2.tgz",
                fname("opensearch-operator", None, None, Some("v3.14.2")),
            ),
            (
                "plugins-cloudedge-v0.3.16-hybrid.tgz",
                fname("plugins-cloudedge", None, Some("ALL"), Some("v0.3.16")),
            ),
            (
                "chartmuseum-v3.16.1.tgz",
                fname("chartmuseum", None, None, Some("v3.16.1")),
            ),
            (
                "deepflow-v3.19.0-fix.49.27.gb547cdc5-dbs.tgz",
                fname(
                    "deepflow",
                    None,
                    None,
                    Some("v3.19.0-fix.49.27.gb547cdc5-dbs"),
                ),
            ),
            (
                "redis-proxy-operator-3.18.1-acp3.18-20250214.tgz",
                fname(
                    "redis-proxy-operator",
                    None,
                    None,
                    Some("3.18.1-acp3.18-20250214"),
                ),
            ),
            (
                "crossplane-ALL.2.x.tgz",
                fname("crossplane", None, Some("ALL"), Some("2.x")),
            ),
            ("output.tgz", fname("output", None, None, None)),
            // Other containers and directories.
            (
                "lakefs.ALL.1.7.9.tar.gz",
                fname("lakefs", None, Some("ALL"), Some("1.7.9")),
            ),
            (
                "lakefs.ALL.1.7.9.tar",
                fname("lakefs", None, Some("ALL"), Some("1.7.9")),
            ),
            (
                "lakefs.ALL.1.7.9.tar.zst",
                fname("lakefs", None, Some("ALL"), Some("1.7.9")),
            ),
            (
                "lakefs.ALL.1.7.9.TGZ",
                fname("lakefs", None, Some("ALL"), Some("1.7.9")),
            ),
            (
                "topolvm-operator.stable.amd64.v2.3.0",
                fname(
                    "topolvm-operator",
                    Some("stable"),
                    Some("amd64"),
                    Some("v2.3.0"),
                ),
            ),
            ("output", fname("output", None, None, None)),
            (
                "my-3rdparty-tool.tgz",
                fname("my-3rdparty-tool", None, None, None),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_file_name(input).as_ref(), Some(want), "{input}");
        }
    }

    #[test]
    fn file_names_without_a_package_name() {
        for input in ["", ".tgz", ".hidden", "a b.tgz", "dir/x.tgz"] {
            assert_eq!(parse_file_name(input), None, "{input:?}");
        }
    }

    #[test]
    fn archive_stems() {
        assert_eq!(archive_stem("a.tar.gz"), Some("a"));
        assert_eq!(archive_stem("a.tar.zst"), Some("a"));
        assert_eq!(archive_stem("a.tar"), Some("a"));
        assert_eq!(archive_stem("a.tgz"), Some("a"));
        assert_eq!(archive_stem("a.zip"), None);
        assert_eq!(archive_stem(".tgz"), None);
        assert_eq!(archive_stem("é.tgz"), Some("é"));
    }

    const FULL: &str = "\
apiVersion: violet.alauda.io/v1
kind: Package
name: topolvm-operator
displayName: NativeStor
type: bundle
version: 2.3.0
channels: [stable, alpha]
defaultChannel: stable
architectures: [linux/amd64, linux/arm64]
artifact: harbor.demo.io/acp/topolvm-operator-bundle:v3.11.0
relatedImages:
  - harbor.demo.io/acp/topolvm-operator:v3.11.0
defaultCatalogSource: platform
operator:
  csvName: topolvm-operator.v2.3.0
  skipRange: '>=2.0.0 <2.3.0'
  replaces: topolvm-operator.v2.2.0
modulePlugin:
  apiVersion: cluster.alauda.io/v1alpha1
  kind: ModulePlugin
  spec: {name: x, deleteable: true}
lifecycle: aligned
manifestsFirst: true
";

    fn parse_str(s: &str) -> Result<Metadata, PackageError> {
        parse(Path::new("pkg.tgz"), "violet.yaml", s.as_bytes())
    }

    #[test]
    fn parses_every_field() {
        let md = parse_str(FULL).unwrap();
        assert_eq!(md.name.as_deref(), Some("topolvm-operator"));
        assert_eq!(md.display_name.as_deref(), Some("NativeStor"));
        assert_eq!(md.package_type, Some(PackageType::Bundle));
        assert_eq!(md.channels, ["stable", "alpha"]);
        assert_eq!(md.default_channel.as_deref(), Some("stable"));
        assert_eq!(md.architectures, ["linux/amd64", "linux/arm64"]);
        assert_eq!(md.related_images.len(), 1);
        let op = md.operator.as_ref().unwrap();
        assert_eq!(op.skip_range.as_deref(), Some(">=2.0.0 <2.3.0"));
        assert_eq!(op.replaces.as_deref(), Some("topolvm-operator.v2.2.0"));
        assert_eq!(
            md.module_plugin.as_ref().unwrap()["spec"]["deleteable"],
            serde_json::json!(true)
        );
        assert_eq!(md.lifecycle, Some(Lifecycle::Aligned));
        assert!(md.manifests_first);
        // What violet writes it reads back unchanged.
        let again = parse_str(&serde_saphyr::to_string(&md).unwrap()).unwrap();
        assert_eq!(again, md);
    }

    #[test]
    fn manifests_first_is_omitted_when_false() {
        let md = Metadata {
            name: Some("x".into()),
            ..Default::default()
        };
        assert!(
            !serde_saphyr::to_string(&md)
                .unwrap()
                .contains("manifestsFirst")
        );
    }

    #[test]
    fn minimal_file_without_schema_marker() {
        let md = parse_str("name: x\n").unwrap();
        assert_eq!(md.name.as_deref(), Some("x"));
    }

    fn metadata_err(s: &str) -> (usize, usize, String) {
        match parse_str(s) {
            Err(PackageError::Metadata {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            other => panic!("expected a metadata error, got {other:?}"),
        }
    }

    #[test]
    fn unknown_field_is_located() {
        let (line, column, message) =
            metadata_err("apiVersion: violet.alauda.io/v1\nkind: Package\nnmae: x\n");
        assert_eq!((line, column), (3, 1), "{message}");
        assert!(message.contains("nmae"), "{message}");
        assert!(!message.contains('\n'));
    }

    #[test]
    fn unknown_nested_field_is_located() {
        let (line, _, message) = metadata_err("name: x\noperator:\n  csv: a\n");
        assert_eq!(line, 3, "{message}");
        assert!(message.contains("csv"), "{message}");
    }

    #[test]
    fn type_error_is_located() {
        let (line, _, message) = metadata_err("name: x\nchannels: {a: b}\n");
        assert_eq!(line, 2, "{message}");
    }

    #[test]
    fn syntax_error_is_located() {
        let (line, _, message) = metadata_err("name: x\nversion: [1.0\n");
        assert!(line >= 2, "{line} {message}");
    }

    #[test]
    fn unknown_type() {
        match parse_str("name: x\ntype: operator\n") {
            Err(PackageError::UnknownType { value, .. }) => assert_eq!(value, "operator"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_lifecycle_is_a_metadata_error() {
        let (line, _, message) = metadata_err("name: x\nlifecycle: forever\n");
        assert_eq!(line, 2, "{message}");
    }

    #[test]
    fn wrong_api_version_and_kind() {
        let (line, column, message) = metadata_err("name: x\napiVersion: v1\nkind: Package\n");
        assert_eq!((line, column), (2, 13));
        assert!(message.contains("violet.alauda.io/v1"), "{message}");
        let (line, _, message) = metadata_err("apiVersion: violet.alauda.io/v1\nkind:   Pod\n");
        assert_eq!(line, 2);
        assert!(message.contains("\"Pod\""), "{message}");
    }

    #[test]
    fn empty_and_binary_files() {
        let (line, column, message) = metadata_err("# nothing\n\n");
        assert_eq!((line, column), (1, 1));
        assert!(message.contains("empty"), "{message}");
        match parse(Path::new("p"), "violet.yaml", b"name: x\nversion: \xff\n") {
            Err(PackageError::Metadata { line, column, .. }) => assert_eq!((line, column), (2, 10)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_display_names_file_entry_and_position() {
        let e = parse_str("name: x\nbogus: 1\n").unwrap_err();
        assert!(
            e.to_string().starts_with("pkg.tgz: violet.yaml:2:1: "),
            "{e}"
        );
    }

    #[test]
    fn effective_fills_from_file_name() {
        let md = Metadata {
            display_name: Some("NativeStor".into()),
            ..Default::default()
        };
        let name = parse_file_name("topolvm-operator.stable.amd64.v2.3.0.tgz");
        let (md, source, warnings) = effective(Some(md), name);
        assert_eq!(source, MetadataSource::File);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(md.name.as_deref(), Some("topolvm-operator"));
        assert_eq!(md.version.as_deref(), Some("v2.3.0"));
        assert_eq!(md.package_type, Some(PackageType::Bundle));
        assert_eq!(md.channels, ["stable"]);
        assert_eq!(md.default_channel.as_deref(), Some("stable"));
        assert_eq!(md.architectures, ["linux/amd64"]);
        assert_eq!(md.display_name.as_deref(), Some("NativeStor"));
    }

    #[test]
    fn effective_from_file_name_only() {
        let (md, source, warnings) = effective(None, parse_file_name("lakefs.ALL.1.7.9.tgz"));
        assert_eq!(source, MetadataSource::FileName);
        assert!(warnings.is_empty());
        assert_eq!(md.name.as_deref(), Some("lakefs"));
        assert_eq!(md.package_type, None);
        assert_eq!(md.architectures, ["linux/amd64", "linux/arm64"]);
        let (md, source, _) = effective(None, None);
        assert_eq!((md, source), (Metadata::default(), MetadataSource::None));
    }

    #[test]
    fn metadata_wins_and_disagreements_warn() {
        let file = parse_str(FULL).unwrap();
        let name = parse_file_name("topolvm.beta.amd64.v2.4.0.tgz");
        let (md, _, warnings) = effective(Some(file.clone()), name);
        assert_eq!(md.name, file.name);
        assert_eq!(md.version.as_deref(), Some("2.3.0"));
        assert_eq!(md.architectures, file.architectures);
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("2.3.0") && w.contains("v2.4.0")),
            "{warnings:?}"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("topolvm-operator") && w.contains("(topolvm)"))
        );
        assert!(warnings.iter().any(|w| w.contains("\"beta\"")));
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("amd64") && w.contains("linux/arm64"))
        );
    }

    #[test]
    fn leading_v_and_all_agree() {
        let file = parse_str(FULL).unwrap();
        let (_, _, warnings) = effective(
            Some(file),
            parse_file_name("topolvm-operator.stable.ALL.v2.3.0.tgz"),
        );
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn channel_on_a_plugin_warns() {
        let file = Metadata {
            package_type: Some(PackageType::Plugin),
            ..Default::default()
        };
        let (md, _, warnings) = effective(Some(file), parse_file_name("x.stable.ALL.v1.tgz"));
        assert_eq!(md.package_type, Some(PackageType::Plugin));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }
}
