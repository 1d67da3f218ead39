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

/// Parses the metadata file; errors carry line and column.
pub fn parse(path: &std::path::Path, entry: &str, bytes: &[u8]) -> Result<Metadata, crate::package::PackageError> {
    let _ = (path, entry, bytes);
    todo!("metadata")
}

/// Parses a package file name (the file name only, no directory). `None` when it follows no known form.
pub fn parse_file_name(file_name: &str) -> Option<FileNameInfo> {
    let _ = file_name;
    todo!("metadata")
}

/// Merges the metadata file (authoritative) with the file name (fallback), returning the effective
/// metadata, where it came from, and a warning for each disagreement.
pub fn effective(
    file: Option<Metadata>,
    name: Option<FileNameInfo>,
) -> (Metadata, crate::package::MetadataSource, Vec<String>) {
    let _ = (file, name);
    todo!("metadata")
}
