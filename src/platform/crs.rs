//! Pure builders of the catalog resources of one package: Artifact + ArtifactVersion per cluster for
//! operator bundles, Artifact + ArtifactVersion in the global cluster for Helm charts, the
//! ModulePlugin for cluster plugins. No I/O here; names, labels and rewrite rules are explained in
//! `docs/platform.md`.

use serde_json::{Map, Value, json};

use crate::package::{Metadata, Package, PackageType};
use crate::platform::kube::{GLOBAL, Resource};
// Declared beside GLOBAL, so that the Kubernetes client does not depend on the CR builders.
pub use crate::platform::kube::NAMESPACE;
use crate::platform::{PlatformError, Result};

pub const DEFAULT_CATALOG_SOURCE: &str = "platform";
pub const DEFAULT_CHART_REPO: &str = "public-charts";
pub const APP_API_VERSION: &str = "app.alauda.io/v1alpha1";
pub const CLUSTER_API_VERSION: &str = "cluster.alauda.io/v1alpha1";

pub const LABEL_MANAGED_BY: &str = "cpaas.io/managed-by";
pub const LABEL_ARTIFACT_VERSION: &str = "cpaas.io/artifact-version";
pub const LABEL_LIBRARY: &str = "cpaas.io/library";
pub const LABEL_CHART_REPO: &str = "cpaas.io/chart-repo";
pub const LABEL_TYPE: &str = "cpaas.io/type";
pub const LABEL_BUNDLE_VERSION: &str = "cpaas.io/bundle-version";
pub const LABEL_CHANNELS: &str = "cpaas.io/channels";
pub const LABEL_DEFAULT_CHANNEL: &str = "cpaas.io/default-channel";
pub const LABEL_PRESENT: &str = "cpaas.io/present";
/// Without this label the marketplace controller resets `present` and cleans up the versions.
pub const MANAGED_BY: &str = "violet";

/// The kinds violet writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Kind {
    Artifact,
    ArtifactVersion,
    ModulePlugin,
}

impl Kind {
    pub fn resource(self) -> Resource {
        match self {
            Kind::Artifact => {
                Resource::new("app.alauda.io", "v1alpha1", "Artifact", "artifacts", true)
            }
            Kind::ArtifactVersion => Resource::new(
                "app.alauda.io",
                "v1alpha1",
                "ArtifactVersion",
                "artifactversions",
                true,
            ),
            Kind::ModulePlugin => Resource::new(
                "cluster.alauda.io",
                "v1alpha1",
                "ModulePlugin",
                "moduleplugins",
                false,
            ),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Artifact => "Artifact",
            Kind::ArtifactVersion => "ArtifactVersion",
            Kind::ModulePlugin => "ModulePlugin",
        }
    }

    pub fn namespace(self) -> Option<&'static str> {
        match self {
            Kind::ModulePlugin => None,
            _ => Some(NAMESPACE),
        }
    }
}

/// Where the package's main artifact (bundle image or chart) was pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedArtifact {
    /// `host[:port]` of the destination registry.
    pub registry: String,
    /// Repository path below the registry.
    pub repository: String,
    pub tag: String,
}

impl PushedArtifact {
    /// The destination of `reference` (`host/repo:tag` as recorded in the package) when pushed to
    /// `registry` with its repository path kept, which is how violet relocates images.
    pub fn relocated(reference: &str, registry: &str) -> Option<PushedArtifact> {
        let (_, repository, tag) = split_reference(reference)?;
        Some(PushedArtifact {
            registry: registry.to_string(),
            repository,
            tag: tag?,
        })
    }
}

/// Splits `[host/]repo[:tag][@digest]`; the first component is a host when it has a dot, a colon or is
/// `localhost` (the Docker rule).
pub fn split_reference(reference: &str) -> Option<(Option<String>, String, Option<String>)> {
    let no_digest = reference.split('@').next().unwrap_or(reference);
    let (host, rest) = match no_digest.split_once('/') {
        Some((h, r)) if h.contains('.') || h.contains(':') || h == "localhost" => {
            (Some(h.to_string()), r)
        }
        _ => (None, no_digest),
    };
    let (repo, tag) = match rest.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t.to_string())),
        _ => (rest, None),
    };
    if repo.is_empty() {
        return None;
    }
    Some((host, repo.to_string(), tag))
}

/// What the builders need besides the package.
#[derive(Debug, Clone)]
pub struct CatalogInputs {
    /// Where the main artifact landed.
    pub artifact: PushedArtifact,
    /// `--target-catalog-source`.
    pub catalog_source: Option<String>,
    /// `--target-chartrepo`.
    pub chart_repo: Option<String>,
    /// `--clusters`; empty means the default (global).
    pub clusters: Vec<String>,
}

/// One object to write into one cluster.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedObject {
    pub cluster: String,
    pub kind: Kind,
    pub object: Value,
    /// For an ArtifactVersion: the Artifact (same cluster and namespace) whose uid goes into its
    /// ownerReferences once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl PlannedObject {
    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// The catalog resources of one package, in write order (an Artifact before its versions).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CatalogPlan {
    /// The package label, for messages.
    pub package: String,
    pub objects: Vec<PlannedObject>,
    /// Things the user should know (ignored `--clusters`, skipped labels).
    pub warnings: Vec<String>,
}

impl CatalogPlan {
    pub fn build(package: &Package, inputs: &CatalogInputs) -> Result<CatalogPlan> {
        Self::from_metadata(&package.label(), &package.metadata, inputs)
    }

    pub fn from_metadata(
        label: &str,
        md: &Metadata,
        inputs: &CatalogInputs,
    ) -> Result<CatalogPlan> {
        let fail = |message: String| PlatformError::Plan {
            package: label.to_string(),
            message,
        };
        let mut plan = CatalogPlan {
            package: label.to_string(),
            objects: Vec::new(),
            warnings: Vec::new(),
        };
        let Some(kind) = md.package_type else {
            return Err(fail(
                "the package type is unknown (bundle, plugin or chart)".into(),
            ));
        };
        let non_global: Vec<&String> = inputs
            .clusters
            .iter()
            .filter(|c| c.as_str() != GLOBAL)
            .collect();
        match kind {
            PackageType::Core => {}
            PackageType::Bundle => {
                let library = inputs
                    .catalog_source
                    .clone()
                    .or_else(|| md.default_catalog_source.clone())
                    .unwrap_or_else(|| DEFAULT_CATALOG_SOURCE.to_string());
                let (artifact, version) =
                    artifact_pair(md, inputs, Flavor::Bundle { library }, &mut plan.warnings)
                        .map_err(fail)?;
                let clusters = if inputs.clusters.is_empty() {
                    vec![GLOBAL.to_string()]
                } else {
                    inputs.clusters.clone()
                };
                for cluster in clusters {
                    plan.push_pair(&cluster, &artifact, &version);
                }
            }
            PackageType::Chart => {
                if !non_global.is_empty() {
                    plan.warnings.push(format!(
                        "charts are published to the global cluster's chart repository; --clusters {} ignored",
                        join(&non_global)
                    ));
                }
                let repo = inputs
                    .chart_repo
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CHART_REPO.to_string());
                let (artifact, version) =
                    artifact_pair(md, inputs, Flavor::Chart { repo }, &mut plan.warnings)
                        .map_err(fail)?;
                plan.push_pair(GLOBAL, &artifact, &version);
            }
            PackageType::Plugin => {
                if !non_global.is_empty() {
                    plan.warnings.push(format!(
                        "cluster plugins go to the global cluster and are distributed by their affinity; --clusters {} ignored",
                        join(&non_global)
                    ));
                }
                let mp = module_plugin(md, &inputs.artifact).map_err(fail)?;
                plan.objects.push(PlannedObject {
                    cluster: GLOBAL.into(),
                    kind: Kind::ModulePlugin,
                    object: mp,
                    owner: None,
                });
            }
        }
        Ok(plan)
    }

    fn push_pair(&mut self, cluster: &str, artifact: &Value, version: &Value) {
        let owner = artifact
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.objects.push(PlannedObject {
            cluster: cluster.into(),
            kind: Kind::Artifact,
            object: artifact.clone(),
            owner: None,
        });
        self.objects.push(PlannedObject {
            cluster: cluster.into(),
            kind: Kind::ArtifactVersion,
            object: version.clone(),
            owner,
        });
    }
}

fn join(v: &[&String]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

enum Flavor {
    Bundle { library: String },
    Chart { repo: String },
}

/// The Artifact and ArtifactVersion of a bundle or chart (the same for every cluster).
fn artifact_pair(
    md: &Metadata,
    inputs: &CatalogInputs,
    flavor: Flavor,
    warnings: &mut Vec<String>,
) -> std::result::Result<(Value, Value), String> {
    let name = md.name.as_deref().ok_or("the package has no name")?;
    let version = md.version.as_deref().ok_or("the package has no version")?;
    check_name(name)?;
    let av_name = format!("{name}.{version}");
    check_name(&av_name)?;
    let pushed = &inputs.artifact;

    let mut common = Map::new();
    common.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
    let (type_, group_label) = match &flavor {
        Flavor::Bundle { library } => ("bundle", (LABEL_LIBRARY, library.clone())),
        Flavor::Chart { repo } => ("chart", (LABEL_CHART_REPO, repo.clone())),
    };
    check_label(group_label.0, &group_label.1)?;
    common.insert(group_label.0.into(), group_label.1.into());
    common.insert(LABEL_TYPE.into(), type_.into());

    let mut artifact_spec = json!({
        "artifactVersionSelector": { "matchLabels": { LABEL_ARTIFACT_VERSION: name } },
        "present": true,
        "registry": pushed.registry,
        "repository": pushed.repository,
        "type": type_,
    });
    if let Some(d) = &md.display_name {
        artifact_spec["displayName"] = d.clone().into();
    }
    let artifact = json!({
        "apiVersion": APP_API_VERSION,
        "kind": "Artifact",
        "metadata": { "name": name, "namespace": NAMESPACE, "labels": common.clone() },
        "spec": artifact_spec,
    });

    let mut labels = common;
    labels.insert(LABEL_ARTIFACT_VERSION.into(), name.into());
    labels.insert(LABEL_PRESENT.into(), "true".into());
    let mut annotations = Map::new();
    if let Flavor::Bundle { .. } = flavor {
        let mut optional = vec![(LABEL_BUNDLE_VERSION, version.to_string())];
        if !md.channels.is_empty() {
            optional.push((LABEL_CHANNELS, md.channels.join(".")));
            annotations.insert(LABEL_CHANNELS.into(), md.channels.join(",").into());
        }
        if let Some(c) = &md.default_channel {
            optional.push((LABEL_DEFAULT_CHANNEL, c.clone()));
        }
        for (k, v) in optional {
            if valid_label_value(&v) {
                labels.insert(k.into(), v.into());
            } else {
                warnings.push(format!(
                    "label {k}={v:?} is not a valid label value; left out"
                ));
            }
        }
        if let Some(op) = &md.operator {
            for (k, v) in [
                ("cpaas.io/csv-name", &op.csv_name),
                ("olm.skipRange", &op.skip_range),
                ("olm.replaces", &op.replaces),
            ] {
                if let Some(v) = v {
                    annotations.insert(k.into(), v.clone().into());
                }
            }
        }
    }
    let mut meta = json!({ "name": av_name, "namespace": NAMESPACE, "labels": labels });
    if !annotations.is_empty() {
        meta["annotations"] = Value::Object(annotations);
    }
    let version_obj = json!({
        "apiVersion": APP_API_VERSION,
        "kind": "ArtifactVersion",
        "metadata": meta,
        "spec": { "present": true, "tag": pushed.tag },
    });
    Ok((artifact, version_obj))
}

/// The package's ModulePlugin with every `<source registry>/...` string (chart names, image
/// references) moved to the destination registry, server-owned metadata dropped, and violet's label.
fn module_plugin(md: &Metadata, pushed: &PushedArtifact) -> std::result::Result<Value, String> {
    let Some(Value::Object(src)) = &md.module_plugin else {
        return Err(
            "a cluster plugin package must carry its ModulePlugin (modulePlugin in the metadata)"
                .into(),
        );
    };
    let mut mp = Value::Object(src.clone());
    let source = md.artifact.as_deref().and_then(split_reference);
    if let Some((Some(source_host), source_repo, _)) = source {
        // Under `--dest-repo host/prefix` the artifact went to `host/prefix/<repo>`: every
        // `<source host>/...` reference moves to `host/prefix/...`, not just to `host/...`.
        let dest = match pushed
            .repository
            .strip_suffix(source_repo.as_str())
            .map(|p| p.trim_end_matches('/'))
        {
            Some(prefix) if !prefix.is_empty() => format!("{}/{prefix}", pushed.registry),
            _ => pushed.registry.clone(),
        };
        if source_host != dest {
            rewrite_registry(&mut mp, &source_host, &dest);
        }
    }
    mp["apiVersion"] = CLUSTER_API_VERSION.into();
    mp["kind"] = "ModulePlugin".into();
    if let Some(o) = mp.as_object_mut() {
        o.remove("status");
    }
    if !mp.get("metadata").is_some_and(Value::is_object) {
        mp["metadata"] = json!({});
    }
    let meta = &mut mp["metadata"];
    if let Some(m) = meta.as_object_mut() {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "namespace",
            "ownerReferences",
        ] {
            m.remove(k);
        }
    }
    if meta
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        let name = md
            .module_plugin
            .as_ref()
            .and_then(|v| v.pointer("/spec/name"))
            .and_then(Value::as_str)
            .or(md.name.as_deref())
            .ok_or("the ModulePlugin has no name")?;
        meta["name"] = name.into();
    }
    let name = meta["name"].as_str().unwrap_or_default().to_string();
    check_name(&name)?;
    if !meta.get("labels").is_some_and(Value::is_object) {
        meta["labels"] = json!({});
    }
    meta["labels"][LABEL_MANAGED_BY] = MANAGED_BY.into();
    Ok(mp)
}

/// Keys are rewritten too: `valuesTemplates` is keyed by the chart names of `chartVersions`.
fn rewrite_registry(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) => rewrite_str(s, from, to),
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_registry(x, from, to)),
        Value::Object(o) => {
            let old = std::mem::take(o);
            for (mut k, mut x) in old {
                rewrite_str(&mut k, from, to);
                rewrite_registry(&mut x, from, to);
                o.insert(k, x);
            }
        }
        _ => {}
    }
}

fn rewrite_str(s: &mut String, from: &str, to: &str) {
    if s == from {
        *s = to.to_string();
    } else if let Some(rest) = s.strip_prefix(from).and_then(|r| r.strip_prefix('/')) {
        *s = format!("{to}/{rest}");
    }
}

/// Kubernetes object names (DNS subdomain): what the API server would reject, caught before any write.
fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid Kubernetes name (lowercase letters, digits, '-' and '.')"
        ))
    }
}

fn valid_label_value(v: &str) -> bool {
    v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && (v.is_empty()
            || (v.starts_with(|c: char| c.is_ascii_alphanumeric())
                && v.ends_with(|c: char| c.is_ascii_alphanumeric())))
}

fn check_label(key: &str, v: &str) -> std::result::Result<(), String> {
    if valid_label_value(v) {
        Ok(())
    } else {
        Err(format!("{key}={v:?} is not a valid label value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::metadata::OperatorInfo;

    fn bundle() -> Metadata {
        Metadata {
            name: Some("topolvm-operator".into()),
            display_name: Some("NativeStor".into()),
            package_type: Some(PackageType::Bundle),
            version: Some("v2.3.0".into()),
            channels: vec!["stable".into(), "alpha".into()],
            default_channel: Some("stable".into()),
            artifact: Some("registry.alauda.cn:60080/acp/topolvm-operator-bundle:v2.3.0".into()),
            operator: Some(OperatorInfo {
                csv_name: Some("topolvm-operator.v2.3.0".into()),
                skip_range: Some(">=2.0.0 <2.3.0".into()),
                replaces: None,
            }),
            ..Default::default()
        }
    }

    fn inputs(clusters: &[&str]) -> CatalogInputs {
        CatalogInputs {
            artifact: PushedArtifact::relocated(
                "registry.alauda.cn:60080/acp/topolvm-operator-bundle:v2.3.0",
                "10.0.0.1:11443",
            )
            .unwrap(),
            catalog_source: None,
            chart_repo: None,
            clusters: clusters.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn bundle_pair_per_cluster() {
        let plan = CatalogPlan::from_metadata("t.tgz", &bundle(), &inputs(&["global", "region1"]))
            .unwrap();
        let where_: Vec<_> = plan
            .objects
            .iter()
            .map(|o| (o.cluster.as_str(), o.kind, o.name()))
            .collect();
        assert_eq!(
            where_,
            [
                ("global", Kind::Artifact, "topolvm-operator"),
                ("global", Kind::ArtifactVersion, "topolvm-operator.v2.3.0"),
                ("region1", Kind::Artifact, "topolvm-operator"),
                ("region1", Kind::ArtifactVersion, "topolvm-operator.v2.3.0"),
            ]
        );
        insta::assert_json_snapshot!("bundle_artifact", plan.objects[0].object);
        insta::assert_json_snapshot!("bundle_artifact_version", plan.objects[1].object);
        assert_eq!(plan.objects[1].owner.as_deref(), Some("topolvm-operator"));
    }

    #[test]
    fn catalog_source_precedence() {
        let mut md = bundle();
        md.default_catalog_source = Some("custom".into());
        let lib =
            |p: &CatalogPlan| p.objects[0].object["metadata"]["labels"][LABEL_LIBRARY].clone();
        assert_eq!(
            lib(&CatalogPlan::from_metadata("t", &md, &inputs(&[])).unwrap()),
            "custom"
        );
        let mut i = inputs(&[]);
        i.catalog_source = Some("system".into());
        assert_eq!(
            lib(&CatalogPlan::from_metadata("t", &md, &i).unwrap()),
            "system"
        );
        assert_eq!(
            lib(&CatalogPlan::from_metadata("t", &bundle(), &inputs(&[])).unwrap()),
            "platform"
        );
    }

    #[test]
    fn bad_version_is_a_plan_error() {
        let mut md = bundle();
        md.version = Some("V2+build".into());
        let err = CatalogPlan::from_metadata("t.tgz", &md, &inputs(&[])).unwrap_err();
        assert!(
            err.to_string().contains("not a valid Kubernetes name"),
            "{err}"
        );
    }

    #[test]
    fn chart_goes_to_global_with_warning() {
        let md = Metadata {
            name: Some("chartmuseum".into()),
            package_type: Some(PackageType::Chart),
            version: Some("v3.16.1".into()),
            artifact: Some("build.example.com/charts/chartmuseum:v3.16.1".into()),
            ..Default::default()
        };
        let mut i = inputs(&["region1"]);
        i.artifact =
            PushedArtifact::relocated(md.artifact.as_deref().unwrap(), "10.0.0.1:11443").unwrap();
        let plan = CatalogPlan::from_metadata("c.tgz", &md, &i).unwrap();
        assert_eq!(plan.warnings.len(), 1);
        assert!(plan.objects.iter().all(|o| o.cluster == "global"));
        insta::assert_json_snapshot!("chart_artifact_version", plan.objects[1].object);
    }

    #[test]
    fn plugin_rewrites_registry() {
        let md = Metadata {
            name: Some("web-cli".into()),
            package_type: Some(PackageType::Plugin),
            version: Some("v4.0.4".into()),
            artifact: Some("build.example.com/acp/chart-web-cli:v4.0.4".into()),
            module_plugin: Some(json!({
                "apiVersion": "cluster.alauda.io/v1alpha1",
                "kind": "ModulePlugin",
                "metadata": {
                    "name": "web-cli",
                    "uid": "old", "resourceVersion": "7",
                    "labels": { "cpaas.io/module-name": "web-cli", "cpaas.io/module-type": "plugin" },
                },
                "spec": {
                    "name": "web-cli",
                    "mainChart": "build.example.com/acp/chart-web-cli",
                    "appReleases": [{ "name": "web-cli", "chartVersions": [
                        { "name": "build.example.com/acp/chart-web-cli", "releaseName": "web-cli", "version": "v4.0.4" }
                    ]}],
                    "valuesTemplates": { "build.example.com/acp/chart-web-cli": "image: << .RegistryAddress >>/acp/x" },
                    "deleteable": true,
                    "description": { "en": "Web CLI", "zh": "Web CLI" },
                    "logo": "",
                },
                "status": { "latestVersion": "v4.0.3" },
            })),
            ..Default::default()
        };
        let mut i = inputs(&["region1"]);
        i.artifact =
            PushedArtifact::relocated(md.artifact.as_deref().unwrap(), "10.0.0.1:11443").unwrap();
        let plan = CatalogPlan::from_metadata("p.tgz", &md, &i).unwrap();
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
        assert_eq!(plan.objects.len(), 1);
        insta::assert_json_snapshot!("module_plugin", plan.objects[0].object);
    }

    #[test]
    fn references() {
        assert_eq!(
            split_reference("localhost:5000/a/b:v1@sha256:00"),
            Some((
                Some("localhost:5000".into()),
                "a/b".into(),
                Some("v1".into())
            ))
        );
        assert_eq!(split_reference("a/b"), Some((None, "a/b".into(), None)));
        assert_eq!(split_reference(""), None);
    }
}
