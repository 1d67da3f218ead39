//! Read-only access to what the platform knows about installed extensions, for `violet list` and
//! `violet gc`: the OperatorView and ModulePluginView records of the global cluster, the cluster
//! list, and the catalog objects (Artifact, ArtifactVersion, ModulePlugin, ModuleConfig) that `gc`
//! may delete. Field paths are those of the platform's view CRDs; choices are in `docs/platform.md`.

use std::cmp::Ordering;

use serde_json::Value;

use crate::platform::crs::Kind;
use crate::platform::kube::{Cluster, GLOBAL, Platform, Resource};
use crate::platform::{PlatformError, Result};

pub const LABEL_MODULE_NAME: &str = "cpaas.io/module-name";
pub const LABEL_LIFECYCLE: &str = "cpaas.io/lifecycle-type";
pub const ANNOTATION_DISPLAY_NAME: &str = "cpaas.io/display-name";
pub const ANNOTATION_CSV_NAME: &str = "cpaas.io/csv-name";

/// `operatorviews`, namespaced by cluster name, in the global cluster. The group is not documented;
/// `app.alauda.io/v1alpha2` is the version the console uses for `modulepluginviews`, the sibling view.
pub fn operator_view_resource() -> Resource {
    Resource::new(
        "app.alauda.io",
        "v1alpha2",
        "OperatorView",
        "operatorviews",
        true,
    )
}

/// `modulepluginviews`, cluster-scoped, in the global cluster (`/apis/app.alauda.io/v1alpha2/modulepluginviews`).
pub fn plugin_view_resource() -> Resource {
    Resource::new(
        "app.alauda.io",
        "v1alpha2",
        "ModulePluginView",
        "modulepluginviews",
        false,
    )
}

/// The platform's cluster registry (TKEStack heritage), cluster-scoped, in the global cluster.
pub fn cluster_resource() -> Resource {
    Resource::new("platform.tkestack.io", "v1", "Cluster", "clusters", false)
}

pub fn module_config_resource() -> Resource {
    Resource::new(
        "cluster.alauda.io",
        "v1alpha1",
        "ModuleConfig",
        "moduleconfigs",
        false,
    )
}

/// Captain's `helmrequests` (`app.alauda.io/v1`), namespaced, in every cluster: the records of
/// chart applications (the platform's "Helm chart applications created from chart references").
pub fn helm_request_resource() -> Resource {
    Resource::new("app.alauda.io", "v1", "HelmRequest", "helmrequests", true)
}

/// Namespace where the platform installs its own charts (cluster plugins included): not user
/// applications, so `list` leaves its HelmRequests out, as it leaves core plugins out.
pub const PLATFORM_NAMESPACE: &str = crate::platform::kube::NAMESPACE;

/// One HelmRequest as `list` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartView {
    /// The cluster the HelmRequest was read from.
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    /// The chart name without its repository (`public-charts/crossplane` → `crossplane`); empty
    /// when the request names no chart (an HTTP source).
    pub chart: String,
    pub phase: String,
    /// `status.version` (what was really installed), else `spec.version`.
    pub version: String,
    /// The clusters the chart is installed in: `status.syncedClusters` for
    /// `installToAllClusters`, else `spec.clusterName`, else the cluster it was read from.
    pub targets: Vec<String>,
    pub install_to_all: bool,
    /// Made by the platform (namespace `cpaas-system`, or labelled with a module name).
    pub platform_managed: bool,
}

impl ChartView {
    pub fn from_value(cluster: &str, v: &Value) -> ChartView {
        let s = |p: &str| str_at(v, p);
        let chart = match s("/spec/chart") {
            c if !c.is_empty() => chart_name(&c),
            // An OCI source names a repository: its last segment is the chart.
            _ => chart_name(&s("/spec/source/oci/repo")),
        };
        let status_version = s("/status/version");
        let install_to_all = v.pointer("/spec/installToAllClusters") == Some(&Value::Bool(true));
        let targets = if install_to_all {
            v.pointer("/status/syncedClusters")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .filter(|c| !c.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        } else {
            match s("/spec/clusterName") {
                c if c.is_empty() => vec![cluster.to_string()],
                c => vec![c],
            }
        };
        let namespace = s("/metadata/namespace");
        ChartView {
            cluster: cluster.to_string(),
            platform_managed: namespace == PLATFORM_NAMESPACE
                || v["metadata"]["labels"][LABEL_MODULE_NAME].is_string(),
            namespace,
            name: s("/metadata/name"),
            chart,
            phase: s("/status/phase"),
            version: if status_version.is_empty() {
                s("/spec/version")
            } else {
                status_version
            },
            targets,
            install_to_all,
        }
    }

    /// Captain's `Synced`; `PartialSynced` only means "installed in the synced clusters" for an
    /// install-to-all request, whose targets are exactly those.
    pub fn is_installed(&self) -> bool {
        self.phase == "Synced" || (self.phase == "PartialSynced" && self.install_to_all)
    }
}

/// The chart part of a chart reference: `public-charts/crossplane` → `crossplane`,
/// `registry:5000/acp/chart-tomcat` → `chart-tomcat`.
pub fn chart_name(reference: &str) -> String {
    let r = reference
        .trim()
        .trim_start_matches("oci://")
        .trim_end_matches('/');
    r.rsplit('/').next().unwrap_or(r).to_string()
}

/// Every HelmRequest of one cluster (all namespaces). `Ok(None)` when the cluster does not serve
/// HelmRequests (no captain there: no chart applications); a 403 is an error.
pub async fn chart_views(platform: &Platform, cluster: &str) -> Result<Option<Vec<ChartView>>> {
    let c = platform.cluster(cluster).await?;
    match c.list(&helm_request_resource(), None, "").await {
        Ok(items) => Ok(Some(
            items
                .iter()
                .map(|v| ChartView::from_value(cluster, v))
                .collect(),
        )),
        Err(PlatformError::Api { code: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One operator as a cluster sees it (an OperatorView; its namespace is the cluster name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorView {
    pub cluster: String,
    pub name: String,
    pub phase: String,
    pub artifact: String,
    pub installed_csv: String,
    pub display_name: String,
}

impl OperatorView {
    /// A view for unit tests: the artifact named as the operator.
    #[cfg(test)]
    pub fn sample(cluster: &str, name: &str, phase: &str, csv: &str, display: &str) -> Self {
        OperatorView {
            cluster: cluster.into(),
            name: name.into(),
            phase: phase.into(),
            artifact: name.into(),
            installed_csv: csv.into(),
            display_name: display.into(),
        }
    }

    pub fn from_value(v: &Value) -> OperatorView {
        let s = |p: &str| str_at(v, p);
        OperatorView {
            cluster: s("/metadata/namespace"),
            name: s("/metadata/name"),
            phase: s("/status/operatorStatus/phase"),
            artifact: s("/status/operatorStatus/installation/artifactName"),
            installed_csv: s("/status/operatorStatus/installation/subscription/installedCSV"),
            display_name: s("/status/packageManifestStatus/channels/0/currentCSVDesc/displayName"),
        }
    }

    /// What `list` reports: the documented `Installed` phase.
    pub fn is_installed(&self) -> bool {
        self.phase == "Installed"
    }

    /// What `gc` protects: any installation state at all (installing, upgrading, failed...), not
    /// only `Installed`, because deleting the catalog of an operator mid-upgrade would break it.
    pub fn has_installation(&self) -> bool {
        let p = self.phase.to_ascii_lowercase();
        !self.installed_csv.is_empty()
            || !(p.is_empty() || p == "notinstalled" || p == "uninstalled")
    }

    /// Whether this view is about the Artifact `name`: by the recorded artifact name, or by the
    /// platform's naming rules for operator Artifacts (`<package>` and the older `operatorhub-<package>`).
    pub fn refers_to_artifact(&self, name: &str) -> bool {
        (!self.artifact.is_empty() && self.artifact == name)
            || self.name == name
            || format!("operatorhub-{}", self.name) == name
    }

    /// The installed version, from the CSV name: `topolvm-operator.v2.3.0` → `2.3.0`.
    pub fn installed_version(&self) -> Option<String> {
        csv_version(&self.installed_csv)
    }
}

/// The version part of a CSV name `<package>.v<version>` (or `<package>.<version>`), without the `v`.
pub fn csv_version(csv: &str) -> Option<String> {
    if csv.is_empty() {
        return None;
    }
    let bytes = csv.as_bytes();
    for i in 0..bytes.len().saturating_sub(2) {
        if bytes[i] == b'.' && bytes[i + 1] == b'v' && bytes[i + 2].is_ascii_digit() {
            return Some(csv[i + 2..].to_string());
        }
    }
    match csv.split_once('.') {
        Some((_, v)) if v.starts_with(|c: char| c.is_ascii_digit()) => Some(v.to_string()),
        _ => None,
    }
}

/// Life cycle of a cluster plugin (`cpaas.io/lifecycle-type`; missing means agnostic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Core,
    Aligned,
    Agnostic,
    /// A value violet does not know: treated like core (never listed, never collected).
    Other,
}

impl Lifecycle {
    pub fn parse(label: Option<&str>) -> Lifecycle {
        match label.map(str::trim).unwrap_or("") {
            "" | "agnostic" => Lifecycle::Agnostic,
            "aligned" => Lifecycle::Aligned,
            "core" => Lifecycle::Core,
            _ => Lifecycle::Other,
        }
    }

    /// `list` and `gc` only deal with aligned and agnostic plugins.
    pub fn in_scope(self) -> bool {
        matches!(self, Lifecycle::Aligned | Lifecycle::Agnostic)
    }
}

/// One cluster plugin and where it is installed (a ModulePluginView).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginView {
    pub module: String,
    pub lifecycle: Lifecycle,
    pub display_name: String,
    /// (cluster, version), as the view lists them.
    pub installed: Vec<(String, String)>,
}

impl PluginView {
    pub fn from_value(v: &Value) -> PluginView {
        let labels = &v["metadata"]["labels"];
        let module = labels[LABEL_MODULE_NAME]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| str_at(v, "/metadata/name"));
        let raw_display = v["metadata"]["annotations"][ANNOTATION_DISPLAY_NAME]
            .as_str()
            .unwrap_or("");
        let installed = v["status"]["installed"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| (str_at(i, "/cluster"), str_at(i, "/version")))
                    .filter(|(c, _)| !c.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        PluginView {
            display_name: display_name(raw_display).unwrap_or_else(|| module.clone()),
            module,
            lifecycle: Lifecycle::parse(labels[LABEL_LIFECYCLE].as_str()),
            installed,
        }
    }
}

/// The English name from a `{"en": …, "zh": …}` annotation; a plain string is used as is.
pub fn display_name(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(m)) => ["en", "zh"]
            .iter()
            .find_map(|k| m.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()))
            .map(str::to_string),
        _ => Some(raw.to_string()),
    }
}

fn str_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Compares two versions the semver way (`v` prefix ignored, missing parts are 0, a pre-release
/// sorts before its release). `None` when either is not a version: callers then keep the object.
pub fn compare_versions(a: &str, b: &str) -> Option<Ordering> {
    fn split(v: &str) -> Option<(Vec<u64>, Option<String>)> {
        let v = v.trim().trim_start_matches(['v', 'V']);
        let v = v.split('+').next().unwrap_or(v);
        let (core, pre) = match v.split_once('-') {
            Some((c, p)) => (c, Some(p.to_string())),
            None => (v, None),
        };
        let nums: Option<Vec<u64>> = core.split('.').map(|p| p.parse().ok()).collect();
        let nums = nums.filter(|n| !n.is_empty())?;
        Some((nums, pre))
    }
    let (an, ap) = split(a)?;
    let (bn, bp) = split(b)?;
    let len = an.len().max(bn.len());
    for i in 0..len {
        let (x, y) = (
            an.get(i).copied().unwrap_or(0),
            bn.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return Some(x.cmp(&y));
        }
    }
    Some(match (ap, bp) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => {
            let xs: Vec<&str> = x.split('.').collect();
            let ys: Vec<&str> = y.split('.').collect();
            for (p, q) in xs.iter().zip(ys.iter()) {
                let o = match (p.parse::<u64>(), q.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => p.cmp(q),
                };
                if o != Ordering::Equal {
                    return Some(o);
                }
            }
            xs.len().cmp(&ys.len())
        }
    })
}

/// Every OperatorView (all clusters), read from the global cluster.
pub async fn operator_views(platform: &Platform) -> Result<Vec<OperatorView>> {
    let global = platform.cluster(GLOBAL).await?;
    let items = global
        .list(&operator_view_resource(), None, "")
        .await
        .map_err(|e| not_served(e, "operatorviews"))?;
    Ok(items.iter().map(OperatorView::from_value).collect())
}

/// Every ModulePluginView, read from the global cluster.
pub async fn plugin_views(platform: &Platform) -> Result<Vec<PluginView>> {
    let global = platform.cluster(GLOBAL).await?;
    let items = global
        .list(&plugin_view_resource(), None, "")
        .await
        .map_err(|e| not_served(e, "modulepluginviews"))?;
    Ok(items.iter().map(PluginView::from_value).collect())
}

/// A 404 on a list means the platform does not serve the resource at all: say which one.
fn not_served(e: PlatformError, plural: &str) -> PlatformError {
    match e {
        PlatformError::Api {
            cluster,
            code: 404,
            action,
            ..
        } => PlatformError::Api {
            cluster,
            action,
            code: 404,
            message: format!(
                "the platform does not serve {plural} (an ACP version without the marketplace views?)"
            ),
        },
        other => other,
    }
}

/// Names of the clusters the user can see, from `clusters.platform.tkestack.io` in the global
/// cluster. `Ok(None)` when that list is not available (not served, or forbidden): the caller
/// falls back. Clusters whose `status.phase` says they are not running are left out.
pub async fn cluster_names(platform: &Platform) -> Result<Option<Vec<String>>> {
    let global = platform.cluster(GLOBAL).await?;
    match global.list(&cluster_resource(), None, "").await {
        Ok(items) => {
            let mut names: Vec<String> = items
                .iter()
                .filter(|c| {
                    let phase = str_at(c, "/status/phase");
                    phase.is_empty() || phase == "Running"
                })
                .map(|c| str_at(c, "/metadata/name"))
                .filter(|n| !n.is_empty())
                .collect();
            names.sort();
            names.dedup();
            Ok(Some(names))
        }
        Err(PlatformError::Api { code: 404, .. }) | Err(PlatformError::Forbidden { .. }) => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Every cluster the platform lists, with its `status.phase` (empty when it has none). `Ok(None)`
/// when the list is not available (not served, or forbidden).
pub async fn cluster_states(platform: &Platform) -> Result<Option<Vec<(String, String)>>> {
    let global = platform.cluster(GLOBAL).await?;
    match global.list(&cluster_resource(), None, "").await {
        Ok(items) => {
            let mut out: Vec<(String, String)> = items
                .iter()
                .map(|c| (str_at(c, "/metadata/name"), str_at(c, "/status/phase")))
                .filter(|(n, _)| !n.is_empty())
                .collect();
            out.sort();
            out.dedup();
            Ok(Some(out))
        }
        Err(PlatformError::Api { code: 404, .. }) | Err(PlatformError::Forbidden { .. }) => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// OLM's `subscriptions.operators.coreos.com`, namespaced, in every cluster: the cluster's own
/// record of an installed operator, the second witness next to the OperatorView.
pub fn subscription_resource() -> Resource {
    Resource::new(
        "operators.coreos.com",
        "v1alpha1",
        "Subscription",
        "subscriptions",
        true,
    )
}

/// `moduleinfoes.cluster.alauda.io`, cluster-scoped, in the global cluster: one per plugin
/// installation (labels `cpaas.io/module-name`, `cpaas.io/cluster-name`), the plugin's second witness.
pub fn module_info_resource() -> Resource {
    Resource::new(
        "cluster.alauda.io",
        "v1alpha1",
        "ModuleInfo",
        "moduleinfoes",
        false,
    )
}

pub const LABEL_CLUSTER_NAME: &str = "cpaas.io/cluster-name";

/// One OLM Subscription: which package it installs and the CSV OLM reports as installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    pub package: String,
    pub installed_csv: String,
}

/// The Subscriptions of one cluster; a cluster that does not serve them has no OLM, hence none.
pub async fn subscriptions(cluster: &Cluster) -> Result<Vec<Subscription>> {
    match cluster.list(&subscription_resource(), None, "").await {
        Ok(items) => Ok(items
            .iter()
            .map(|v| Subscription {
                cluster: cluster.name.clone(),
                namespace: str_at(v, "/metadata/namespace"),
                name: str_at(v, "/metadata/name"),
                package: str_at(v, "/spec/name"),
                installed_csv: str_at(v, "/status/installedCSV"),
            })
            .collect()),
        Err(PlatformError::Api { code: 404, .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// One plugin installation record (ModuleInfo): (module, cluster, version).
pub async fn module_infos(global: &Cluster) -> Result<Vec<(String, String, String)>> {
    let items = global.list(&module_info_resource(), None, "").await?;
    Ok(items
        .iter()
        .map(|v| {
            let labels = &v["metadata"]["labels"];
            let version = match str_at(v, "/status/version") {
                s if s.is_empty() => str_at(v, "/spec/version"),
                s => s,
            };
            (
                labels[LABEL_MODULE_NAME].as_str().unwrap_or("").to_string(),
                labels[LABEL_CLUSTER_NAME]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                version,
            )
        })
        .filter(|(m, _, _)| !m.is_empty())
        .collect())
}

/// The catalog objects of one kind in one cluster (`cpaas-system` for namespaced kinds).
pub async fn catalog_objects(cluster: &Cluster, kind: Kind) -> Result<Vec<Value>> {
    cluster.list(&kind.resource(), kind.namespace(), "").await
}

/// All ModuleConfigs (global cluster, cluster-scoped).
pub async fn module_configs(cluster: &Cluster) -> Result<Vec<Value>> {
    cluster.list(&module_config_resource(), None, "").await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions() {
        use Ordering::*;
        assert_eq!(compare_versions("v2.3.0", "2.10.0"), Some(Less));
        assert_eq!(compare_versions("v1.2", "1.2.0"), Some(Equal));
        assert_eq!(compare_versions("1.2.0-rc.1", "1.2.0"), Some(Less));
        assert_eq!(compare_versions("1.2.0-rc.2", "1.2.0-rc.10"), Some(Less));
        assert_eq!(compare_versions("latest", "1.0"), None);
    }

    #[test]
    fn csv_versions() {
        assert_eq!(
            csv_version("topolvm-operator.v2.3.0").as_deref(),
            Some("2.3.0")
        );
        assert_eq!(
            csv_version("envoy-gateway-operator.v1.5.0-build.20251226181113").as_deref(),
            Some("1.5.0-build.20251226181113")
        );
        assert_eq!(csv_version("foo.1.0").as_deref(), Some("1.0"));
        assert_eq!(csv_version("foo"), None);
        assert_eq!(csv_version(""), None);
    }

    #[test]
    fn chart_names() {
        assert_eq!(chart_name("public-charts/crossplane"), "crossplane");
        assert_eq!(
            chart_name("oci://10.0.0.1:60080/acp/chart-tomcat"),
            "chart-tomcat"
        );
        assert_eq!(chart_name("crossplane"), "crossplane");
        assert_eq!(chart_name(""), "");
    }

    #[test]
    fn display_names() {
        assert_eq!(
            display_name(r#"{"en": "Log Center", "zh": "日志中心"}"#).as_deref(),
            Some("Log Center")
        );
        assert_eq!(
            display_name(r#"{"zh": "日志中心"}"#).as_deref(),
            Some("日志中心")
        );
        assert_eq!(display_name("Plain").as_deref(), Some("Plain"));
        assert_eq!(display_name(" "), None);
    }

    #[test]
    fn plugin_view_fields() {
        let v = json!({
            "metadata": {"name": "log-center", "labels": {"cpaas.io/module-name": "log-center", "cpaas.io/lifecycle-type": "aligned"},
                         "annotations": {"cpaas.io/display-name": "{\"en\": \"Log Center\"}"}},
            "status": {"installed": [{"cluster": "region1", "version": "v1.2.0", "phase": "Running"}]},
        });
        let p = PluginView::from_value(&v);
        assert_eq!(p.module, "log-center");
        assert_eq!(p.lifecycle, Lifecycle::Aligned);
        assert_eq!(p.display_name, "Log Center");
        assert_eq!(p.installed, vec![("region1".into(), "v1.2.0".into())]);
        assert_eq!(Lifecycle::parse(None), Lifecycle::Agnostic);
        assert!(!Lifecycle::parse(Some("core")).in_scope());
    }

    #[test]
    fn operator_installation_states() {
        let mut v = OperatorView {
            cluster: "global".into(),
            name: "x-operator".into(),
            phase: String::new(),
            artifact: String::new(),
            installed_csv: String::new(),
            display_name: String::new(),
        };
        assert!(!v.has_installation());
        v.phase = "Upgrading".into();
        assert!(v.has_installation() && !v.is_installed());
        assert!(v.refers_to_artifact("operatorhub-x-operator"));
        assert!(v.refers_to_artifact("x-operator"));
        assert!(!v.refers_to_artifact("y-operator"));
    }
}
