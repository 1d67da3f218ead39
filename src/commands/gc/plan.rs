//! What `gc` deletes and what it keeps, decided from what was listed (no I/O): the rules of
//! `docs/platform.md`, each erring on the side of keeping.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::platform::crs::{
    LABEL_ARTIFACT_VERSION, LABEL_BUNDLE_VERSION, LABEL_MANAGED_BY, LABEL_TYPE, MANAGED_BY,
};
use crate::platform::kube::GLOBAL;
use crate::platform::views::{
    ANNOTATION_CSV_NAME, LABEL_MODULE_NAME, OperatorView, PluginView, Subscription,
    compare_versions, csv_version,
};

/// The kinds `gc` deletes, in the order the summary lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum GcKind {
    Artifact,
    ArtifactVersion,
    ModulePlugin,
    ModuleConfig,
}

impl GcKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            GcKind::Artifact => "Artifact",
            GcKind::ArtifactVersion => "ArtifactVersion",
            GcKind::ModulePlugin => "ModulePlugin",
            GcKind::ModuleConfig => "ModuleConfig",
        }
    }

    /// Objects on global that every cluster's installations depend on.
    pub(super) fn shared(self) -> bool {
        matches!(self, GcKind::ModulePlugin | GcKind::ModuleConfig)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One object to delete and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    #[serde(rename = "type")]
    pub kind: GcKind,
    pub name: String,
    pub cluster: String,
    pub reason: String,
    /// Not labelled `cpaas.io/managed-by: violet` (only with --include-unmanaged).
    #[serde(skip_serializing_if = "is_false")]
    pub unmanaged: bool,
    /// The object as listed: the backup's source and the delete's preconditions.
    #[serde(skip)]
    pub object: Value,
    /// The object this one is deleted before (an ArtifactVersion's Artifact, a config's plugin):
    /// when this one is kept, the parent must be kept too, or the cascade would take it anyway.
    #[serde(skip)]
    pub parent: Option<String>,
}

/// An object gc looked at and keeps, for a reason worth telling (a disagreement, an unknown
/// cluster, a change since planning, not managed by violet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    #[serde(rename = "type")]
    pub kind: GcKind,
    pub name: String,
    pub cluster: String,
    pub reason: String,
}

pub(super) fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub(super) fn label<'a>(v: &'a Value, key: &str) -> &'a str {
    v["metadata"]["labels"][key].as_str().unwrap_or("")
}

fn managed(v: &Value) -> bool {
    label(v, LABEL_MANAGED_BY) == MANAGED_BY
}

/// Builds candidates, or keeps unmanaged objects (unless `include_unmanaged`).
struct Planner<'a> {
    cluster: &'a str,
    include_unmanaged: bool,
    out: Vec<Candidate>,
    kept: Vec<Kept>,
}

impl Planner<'_> {
    fn add(
        &mut self,
        kind: GcKind,
        obj: &Value,
        is_managed: bool,
        parent: Option<&str>,
        reason: String,
    ) {
        let name = s(obj, "/metadata/name").to_string();
        if !is_managed && !self.include_unmanaged {
            self.kept.push(Kept {
                kind,
                name,
                cluster: self.cluster.to_string(),
                reason: "not managed by violet".into(),
            });
            return;
        }
        self.out.push(Candidate {
            kind,
            name,
            cluster: self.cluster.to_string(),
            reason,
            unmanaged: !is_managed,
            object: obj.clone(),
            parent: parent.map(str::to_string),
        });
    }

    fn keep(&mut self, kind: GcKind, name: &str, reason: String) {
        self.kept.push(Kept {
            kind,
            name: name.to_string(),
            cluster: self.cluster.to_string(),
            reason,
        });
    }
}

/// Operator catalog candidates of one cluster. Only bundle Artifacts are considered (chart
/// Artifacts have no OperatorView to decide with). Two witnesses must agree that an operator is
/// not installed: the OperatorViews and the cluster's own OLM Subscriptions.
pub fn plan_operators(
    cluster: &str,
    operators: &[OperatorView],
    subscriptions: &[Subscription],
    artifacts: &[Value],
    versions: &[Value],
    include_unmanaged: bool,
) -> (Vec<Candidate>, Vec<Kept>) {
    let here: Vec<&OperatorView> = operators.iter().filter(|o| o.cluster == cluster).collect();
    let mut p = Planner {
        cluster,
        include_unmanaged,
        out: Vec::new(),
        kept: Vec::new(),
    };
    for artifact in artifacts {
        let is_bundle =
            s(artifact, "/spec/type") == "bundle" || label(artifact, LABEL_TYPE) == "bundle";
        let name = s(artifact, "/metadata/name");
        if !is_bundle || name.is_empty() {
            continue;
        }
        let artifact_managed = managed(artifact);
        let uid = s(artifact, "/metadata/uid");
        let own: Vec<&Value> = versions
            .iter()
            .filter(|v| {
                label(v, LABEL_ARTIFACT_VERSION) == name
                    || v["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|r| {
                            r.iter().any(|o| {
                                o["kind"] == "Artifact" && !uid.is_empty() && o["uid"] == uid
                            })
                        })
            })
            .collect();
        let users: Vec<&&OperatorView> = here
            .iter()
            .filter(|o| o.refers_to_artifact(name) && o.has_installation())
            .collect();
        let subs: Vec<&Subscription> = subscriptions
            .iter()
            .filter(|s| {
                !s.package.is_empty()
                    && (s.package == name || format!("operatorhub-{}", s.package) == name)
            })
            .collect();
        match (users.is_empty(), subs.is_empty()) {
            (true, true) => {
                for v in &own {
                    p.add(
                        GcKind::ArtifactVersion,
                        v,
                        artifact_managed || managed(v),
                        Some(name),
                        format!("operator of Artifact {name} is not installed"),
                    );
                }
                p.add(
                    GcKind::Artifact,
                    artifact,
                    artifact_managed,
                    None,
                    "operator is not installed (views and OLM agree)".into(),
                );
                continue;
            }
            (true, false) => {
                let s0 = subs[0];
                p.keep(
                    GcKind::Artifact,
                    name,
                    format!(
                        "views and cluster disagree: no OperatorView shows an installation, but Subscription {}/{} installs {}",
                        s0.namespace,
                        s0.name,
                        if s0.installed_csv.is_empty() { "it" } else { &s0.installed_csv }
                    ),
                );
                continue;
            }
            (false, true) => {
                p.keep(
                    GcKind::Artifact,
                    name,
                    "views and cluster disagree: an OperatorView shows an installation, but the cluster has no Subscription for it".into(),
                );
                continue;
            }
            (false, false) => {}
        }
        // An installation without a known CSV (installing, waiting for approval): keep every version.
        if users.iter().any(|u| u.installed_csv.is_empty())
            || subs.iter().any(|s| s.installed_csv.is_empty())
        {
            continue;
        }
        let view_csvs: BTreeSet<&str> = users.iter().map(|u| u.installed_csv.as_str()).collect();
        let olm_csvs: BTreeSet<&str> = subs.iter().map(|s| s.installed_csv.as_str()).collect();
        if view_csvs != olm_csvs {
            p.keep(
                GcKind::Artifact,
                name,
                format!(
                    "views and cluster disagree on the installed version: views say {}, OLM says {}; all versions kept",
                    view_csvs.iter().copied().collect::<Vec<_>>().join(", "),
                    olm_csvs.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            );
            continue;
        }
        let installed: Vec<(&str, Option<String>)> = view_csvs
            .iter()
            .map(|csv| (*csv, csv_version(csv)))
            .collect();
        // The newest version stays, whatever is installed: the operator never drops out of the catalog.
        let newest: Option<&str> = own
            .iter()
            .filter_map(|v| av_version(v, name).map(|ver| (s(v, "/metadata/name"), ver)))
            .filter(|(_, ver)| compare_versions(ver, "0").is_some())
            .max_by(|a, b| compare_versions(&a.1, &b.1).unwrap_or(Ordering::Equal))
            .map(|(n, _)| n);
        for v in &own {
            let av_name = s(v, "/metadata/name");
            let Some(av_version) = av_version(v, name) else {
                continue;
            };
            let is_installed = installed.iter().any(|(csv, ver)| {
                v["metadata"]["annotations"][ANNOTATION_CSV_NAME].as_str() == Some(*csv)
                    || s(v, "/status/version") == *csv
                    || av_name == *csv
                    || ver
                        .as_deref()
                        .and_then(|iv| compare_versions(&av_version, iv))
                        == Some(Ordering::Equal)
            });
            if is_installed || Some(av_name) == newest {
                continue;
            }
            // Older than every installed version; newer ones are uploads waiting for an upgrade.
            let older = installed.iter().all(|(_, ver)| {
                ver.as_deref()
                    .and_then(|iv| compare_versions(&av_version, iv))
                    == Some(Ordering::Less)
            });
            if older {
                let shown: Vec<&str> = installed.iter().map(|(c, _)| *c).collect();
                p.add(
                    GcKind::ArtifactVersion,
                    v,
                    artifact_managed || managed(v),
                    Some(name),
                    format!("older than the installed {}", shown.join(", ")),
                );
            }
        }
    }
    (p.out, p.kept)
}

/// The version of an ArtifactVersion: its bundle-version label, the version of its CSV
/// annotation, or the part of its name after `<artifact>.`.
pub(super) fn av_version(v: &Value, artifact: &str) -> Option<String> {
    let lbl = label(v, LABEL_BUNDLE_VERSION);
    if !lbl.is_empty() {
        return Some(lbl.to_string());
    }
    if let Some(ver) = v["metadata"]["annotations"][ANNOTATION_CSV_NAME]
        .as_str()
        .and_then(csv_version)
    {
        return Some(ver);
    }
    s(v, "/metadata/name")
        .strip_prefix(&format!("{artifact}."))
        .map(str::to_string)
}

/// Plugin candidates (global cluster): ModulePlugins of aligned/agnostic plugins installed in no
/// cluster, with all their ModuleConfigs, and ModuleConfigs older than every installed version.
/// The ModulePluginViews and the ModuleInfo records must agree (`infos` None: not readable, so
/// nothing is deleted). A plugin without a ModulePluginView is never touched.
pub fn plan_plugins(
    views: &[PluginView],
    infos: Option<&[(String, String, String)]>,
    module_plugins: &[Value],
    configs: &[Value],
    include_unmanaged: bool,
) -> (Vec<Candidate>, Vec<Kept>) {
    let mut p = Planner {
        cluster: GLOBAL,
        include_unmanaged,
        out: Vec::new(),
        kept: Vec::new(),
    };
    for view in views.iter().filter(|v| v.lifecycle.in_scope()) {
        let m = view.module.as_str();
        let own_configs: Vec<&Value> = configs
            .iter()
            .filter(|c| label(c, LABEL_MODULE_NAME) == m)
            .collect();
        let own_plugins: Vec<&Value> = module_plugins
            .iter()
            .filter(|p| s(p, "/metadata/name") == m || label(p, LABEL_MODULE_NAME) == m)
            .collect();
        let plugin_managed = own_plugins.iter().any(|p| managed(p));
        let Some(infos) = infos else {
            if !own_plugins.is_empty() {
                p.keep(
                    GcKind::ModulePlugin,
                    m,
                    "the platform's ModuleInfo records cannot be read: plugin use is unproven"
                        .into(),
                );
            }
            continue;
        };
        let recorded: Vec<&(String, String, String)> =
            infos.iter().filter(|(im, _, _)| im == m).collect();
        match (view.installed.is_empty(), recorded.is_empty()) {
            (true, true) => {
                for c in &own_configs {
                    p.add(
                        GcKind::ModuleConfig,
                        c,
                        plugin_managed || managed(c),
                        Some(m),
                        format!("plugin {m} is installed in no cluster"),
                    );
                }
                for mp in &own_plugins {
                    p.add(
                        GcKind::ModulePlugin,
                        mp,
                        managed(mp),
                        None,
                        "installed in no cluster (view and ModuleInfo agree)".into(),
                    );
                }
                continue;
            }
            (true, false) => {
                p.keep(
                    GcKind::ModulePlugin,
                    m,
                    format!(
                        "views and records disagree: the view lists no installation, but ModuleInfo records one in cluster {}",
                        recorded[0].1
                    ),
                );
                continue;
            }
            (false, true) => {
                p.keep(
                    GcKind::ModulePlugin,
                    m,
                    "views and records disagree: the view lists an installation, but no ModuleInfo records it".into(),
                );
                continue;
            }
            (false, false) => {}
        }
        let mut installed: Vec<&str> = view
            .installed
            .iter()
            .map(|(_, v)| v.as_str())
            .chain(recorded.iter().map(|(_, _, v)| v.as_str()))
            .filter(|v| !v.is_empty())
            .collect();
        installed.sort();
        installed.dedup();
        // The newest version the plugin offers stays, whatever is installed.
        let offered: Vec<&str> = own_plugins
            .iter()
            .flat_map(|p| [s(p, "/spec/version"), s(p, "/status/latestVersion")])
            .filter(|v| !v.is_empty())
            .collect();
        for c in &own_configs {
            let name = s(c, "/metadata/name");
            let version = match s(c, "/spec/version") {
                "" => name.strip_prefix(&format!("{m}-")).unwrap_or(""),
                v => v,
            };
            if version.is_empty() {
                continue;
            }
            let same = |other: &&str| compare_versions(version, other) == Some(Ordering::Equal);
            if installed.iter().any(same) || offered.iter().any(same) {
                continue;
            }
            let older = installed
                .iter()
                .all(|iv| compare_versions(version, iv) == Some(Ordering::Less));
            if older {
                p.add(
                    GcKind::ModuleConfig,
                    c,
                    plugin_managed || managed(c),
                    Some(m),
                    format!(
                        "older than every installed version ({})",
                        installed.join(", ")
                    ),
                );
            }
        }
    }
    (p.out, p.kept)
}
