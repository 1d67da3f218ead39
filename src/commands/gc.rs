//! `violet gc`: delete the catalog resources nothing uses any more (violet-facts §2.5):
//! Artifacts of operators installed nowhere in their cluster, ArtifactVersions older than the
//! installed one, ModulePlugins installed in no cluster, and ModuleConfigs older than every
//! installed version. Candidates come from the OperatorView and ModulePluginView records; every
//! rule errs on the side of keeping (see docs/platform.md).

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::cli::OutputArgs;
use crate::commands::list::ConnectArgs;
use crate::error::{ExitCode, UserError};
use crate::output::Printer;
use crate::platform::PlatformError;
use crate::platform::crs::{Kind, LABEL_ARTIFACT_VERSION, LABEL_BUNDLE_VERSION, LABEL_TYPE};
use crate::platform::kube::{Cluster, GLOBAL, Platform};
use crate::platform::views::{
    self, ANNOTATION_CSV_NAME, LABEL_MODULE_NAME, OperatorView, PluginView, compare_versions,
    csv_version,
};

const EXAMPLES: &str = "Examples:
  # See what would be deleted, and why
  violet gc --platform-address https://acp.example.com --platform-token \"$TOKEN\" --dry-run

  # Clean up everything the platform lists
  violet gc --platform-address https://acp.example.com --platform-username admin --platform-password-stdin < platform-password.txt

  # Only two clusters (plugins are global: they are only collected when global is included)
  violet gc --platform-address https://acp.example.com --platform-token \"$TOKEN\" --clusters global,region1";

/// Delete Artifacts, ArtifactVersions, ModulePlugins and ModuleConfigs that no installed operator or plugin uses.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub connect: ConnectArgs,

    /// Print what would be deleted (with the reason) and delete nothing.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// The kinds `gc` deletes, in the order the summary lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum GcKind {
    Artifact,
    ArtifactVersion,
    ModulePlugin,
    ModuleConfig,
}

impl GcKind {
    fn as_str(self) -> &'static str {
        match self {
            GcKind::Artifact => "Artifact",
            GcKind::ArtifactVersion => "ArtifactVersion",
            GcKind::ModulePlugin => "ModulePlugin",
            GcKind::ModuleConfig => "ModuleConfig",
        }
    }
}

/// One object to delete and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    #[serde(rename = "type")]
    pub kind: GcKind,
    pub name: String,
    pub cluster: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
struct Failure {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<GcKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    cluster: String,
    error: String,
    #[serde(skip)]
    code: ExitCode,
    #[serde(skip)]
    hint: Option<String>,
}

impl Failure {
    fn new(cluster: &str, c: Option<&Candidate>, e: &PlatformError) -> Failure {
        Failure {
            kind: c.map(|c| c.kind),
            name: c.map(|c| c.name.clone()),
            cluster: cluster.to_string(),
            error: e.to_string(),
            code: e.exit_code(),
            hint: e.hint(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GcOutput {
    dry_run: bool,
    /// Deleted objects, or with --dry-run the objects that would be deleted.
    resources: Vec<Candidate>,
    failed: Vec<Failure>,
}

pub fn run(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    super::block_on(run_async(args, printer))?
}

async fn run_async(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    let platform = args.connect.connect(&printer).await?;
    // The views decide everything: failing to read them is fatal, never "nothing is installed".
    let operators = views::operator_views(&platform).await?;
    let plugins = views::plugin_views(&platform).await?;
    let scope = scope(&args.connect, &platform, &operators, &printer).await?;
    tracing::debug!("gc scope: {scope:?}");

    let mut failures: Vec<Failure> = Vec::new();
    let mut clusters: Vec<(Cluster, Vec<Candidate>)> = Vec::new();
    for name in &scope {
        match scan_cluster(&platform, name, &operators, &plugins).await {
            Ok(found) => clusters.push(found),
            Err(e) => failures.push(Failure::new(name, None, &e)),
        }
    }

    let mut done: Vec<Candidate> = Vec::new();
    if args.dry_run {
        done = clusters.iter().flat_map(|(_, c)| c.clone()).collect();
    } else {
        for (cluster, candidates) in &clusters {
            for c in execution_order(candidates) {
                let kind = resource_kind(c.kind);
                let resource = match kind {
                    Some(k) => k.resource(),
                    None => views::module_config_resource(),
                };
                let ns = kind.and_then(Kind::namespace);
                match cluster.delete(&resource, ns, &c.name).await {
                    Ok(true) => done.push(c.clone()),
                    Ok(false) => tracing::debug!(
                        "{} {} in cluster {} was already gone",
                        c.kind.as_str(),
                        c.name,
                        c.cluster
                    ),
                    Err(e) => failures.push(Failure::new(&c.cluster, Some(c), &e)),
                }
            }
        }
    }
    done.sort_by(|a, b| (a.kind, &a.cluster, &a.name).cmp(&(b.kind, &b.cluster, &b.name)));

    let view = GcOutput {
        dry_run: args.dry_run,
        resources: done,
        failed: failures,
    };
    printer
        .with_format(args.output.format)
        .data(&view, || render(&view.resources, args.dry_run))?;
    let mut hints: BTreeSet<String> = BTreeSet::new();
    for f in &view.failed {
        // A delete error already names the object and cluster; a scan error needs the context.
        let what = match f.kind {
            Some(_) => String::new(),
            None => format!("cluster {} skipped: ", f.cluster),
        };
        eprintln!("error: {what}{}", f.error);
        if let Some(h) = &f.hint {
            hints.insert(h.clone());
        }
    }
    for h in hints {
        eprintln!("  hint: {h}");
    }
    let mut codes: Vec<ExitCode> = view.failed.iter().map(|f| f.code).collect();
    codes.sort_by_key(|c| *c as u8);
    codes.dedup();
    Ok(match codes.as_slice() {
        [] => ExitCode::Success,
        [one] => *one,
        _ => ExitCode::Failure,
    })
}

/// The clusters to scan: `--clusters`, else the platform's cluster list plus `global`; when the
/// platform does not list its clusters, `global` plus the clusters the OperatorViews name.
pub(crate) async fn scope(
    args: &ConnectArgs,
    platform: &Platform,
    operators: &[OperatorView],
    printer: &Printer,
) -> anyhow::Result<Vec<String>> {
    if let Some(set) = args.cluster_filter() {
        return Ok(ordered(set));
    }
    let mut set: BTreeSet<String> = [GLOBAL.to_string()].into();
    if args.platform.kubeconfig.is_some() {
        // Cluster names from the platform are not kubeconfig contexts.
        printer.warn("--kubeconfig without --clusters: only the global cluster is scanned");
        return Ok(ordered(set));
    }
    match views::cluster_names(platform).await? {
        Some(names) => set.extend(names),
        None => {
            printer.warn("the platform does not list its clusters (clusters.platform.tkestack.io): scanning global and the clusters named by OperatorViews; pass --clusters to choose");
            set.extend(
                operators
                    .iter()
                    .map(|o| o.cluster.clone())
                    .filter(|c| !c.is_empty()),
            );
        }
    }
    Ok(ordered(set))
}

/// `global` first, then by name.
fn ordered(set: BTreeSet<String>) -> Vec<String> {
    let mut v: Vec<String> = set.into_iter().collect();
    v.sort_by_key(|c| (c != GLOBAL, c.clone()));
    v
}

async fn scan_cluster(
    platform: &Platform,
    name: &str,
    operators: &[OperatorView],
    plugins: &[PluginView],
) -> Result<(Cluster, Vec<Candidate>), PlatformError> {
    let cluster = platform.cluster(name).await?;
    let artifacts = views::catalog_objects(&cluster, Kind::Artifact).await?;
    let versions = views::catalog_objects(&cluster, Kind::ArtifactVersion).await?;
    let mut found = plan_operators(name, operators, &artifacts, &versions);
    if name == GLOBAL {
        let module_plugins = views::catalog_objects(&cluster, Kind::ModulePlugin).await?;
        let configs = views::module_configs(&cluster).await?;
        found.extend(plan_plugins(plugins, &module_plugins, &configs));
    }
    Ok((cluster, found))
}

fn resource_kind(k: GcKind) -> Option<Kind> {
    match k {
        GcKind::Artifact => Some(Kind::Artifact),
        GcKind::ArtifactVersion => Some(Kind::ArtifactVersion),
        GcKind::ModulePlugin => Some(Kind::ModulePlugin),
        GcKind::ModuleConfig => None,
    }
}

/// Dependents before what they depend on: versions before their Artifact, configs before their plugin.
fn execution_order(candidates: &[Candidate]) -> Vec<&Candidate> {
    let rank = |k: GcKind| match k {
        GcKind::ArtifactVersion => 0,
        GcKind::Artifact => 1,
        GcKind::ModuleConfig => 2,
        GcKind::ModulePlugin => 3,
    };
    let mut v: Vec<&Candidate> = candidates.iter().collect();
    v.sort_by_key(|c| rank(c.kind));
    v
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn label<'a>(v: &'a Value, key: &str) -> &'a str {
    v["metadata"]["labels"][key].as_str().unwrap_or("")
}

/// Operator catalog candidates of one cluster. Only bundle Artifacts are considered (chart
/// Artifacts have no OperatorView to decide with).
pub fn plan_operators(
    cluster: &str,
    operators: &[OperatorView],
    artifacts: &[Value],
    versions: &[Value],
) -> Vec<Candidate> {
    let here: Vec<&OperatorView> = operators.iter().filter(|o| o.cluster == cluster).collect();
    let mut out = Vec::new();
    for artifact in artifacts {
        let is_bundle =
            s(artifact, "/spec/type") == "bundle" || label(artifact, LABEL_TYPE) == "bundle";
        let name = s(artifact, "/metadata/name");
        if !is_bundle || name.is_empty() {
            continue;
        }
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
        let candidate = |kind, n: &str, reason: String| Candidate {
            kind,
            name: n.to_string(),
            cluster: cluster.to_string(),
            reason,
        };
        if users.is_empty() {
            for v in &own {
                out.push(candidate(
                    GcKind::ArtifactVersion,
                    s(v, "/metadata/name"),
                    format!("operator of Artifact {name} is not installed"),
                ));
            }
            out.push(candidate(
                GcKind::Artifact,
                name,
                "operator is not installed".into(),
            ));
            continue;
        }
        // An installation without a known CSV (installing, waiting for approval): keep every version.
        if users.iter().any(|u| u.installed_csv.is_empty()) {
            continue;
        }
        let installed: Vec<(&str, Option<String>)> = users
            .iter()
            .map(|u| (u.installed_csv.as_str(), u.installed_version()))
            .collect();
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
            if is_installed {
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
                out.push(candidate(
                    GcKind::ArtifactVersion,
                    av_name,
                    format!("older than the installed {}", shown.join(", ")),
                ));
            }
        }
    }
    out
}

/// The version of an ArtifactVersion: its bundle-version label, the version of its CSV
/// annotation, or the part of its name after `<artifact>.`.
fn av_version(v: &Value, artifact: &str) -> Option<String> {
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
/// A plugin without a ModulePluginView is never touched.
pub fn plan_plugins(
    views: &[PluginView],
    module_plugins: &[Value],
    configs: &[Value],
) -> Vec<Candidate> {
    let mut out = Vec::new();
    let candidate = |kind, n: &str, reason: String| Candidate {
        kind,
        name: n.to_string(),
        cluster: GLOBAL.to_string(),
        reason,
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
        if view.installed.is_empty() {
            for c in &own_configs {
                out.push(candidate(
                    GcKind::ModuleConfig,
                    s(c, "/metadata/name"),
                    format!("plugin {m} is installed in no cluster"),
                ));
            }
            for p in &own_plugins {
                out.push(candidate(
                    GcKind::ModulePlugin,
                    s(p, "/metadata/name"),
                    "installed in no cluster".into(),
                ));
            }
            continue;
        }
        let mut installed: Vec<&str> = view.installed.iter().map(|(_, v)| v.as_str()).collect();
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
                out.push(candidate(
                    GcKind::ModuleConfig,
                    name,
                    format!(
                        "older than every installed version ({})",
                        installed.join(", ")
                    ),
                ));
            }
        }
    }
    out
}

fn render(rows: &[Candidate], dry_run: bool) -> String {
    if rows.is_empty() {
        return if dry_run {
            "GC Plan (dry run): nothing would be deleted.\n".into()
        } else {
            "No resources were deleted.\n".into()
        };
    }
    let mut out = String::new();
    out.push_str(if dry_run {
        "GC Plan (dry run):\n"
    } else {
        "GC Summary:\n"
    });
    if dry_run {
        out.push_str(&format!(
            "{:<20} {:<50} {:<16} {}\n",
            "TYPE", "NAME", "CLUSTER", "REASON"
        ));
    } else {
        out.push_str(&format!("{:<20} {:<50} {}\n", "TYPE", "NAME", "CLUSTER"));
    }
    out.push_str(&"-".repeat(90));
    out.push('\n');
    for r in rows {
        let line = if dry_run {
            format!(
                "{:<20} {:<50} {:<16} {}",
                r.kind.as_str(),
                r.name,
                r.cluster,
                r.reason
            )
        } else {
            format!("{:<20} {:<50} {}", r.kind.as_str(), r.name, r.cluster)
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::views::Lifecycle;
    use serde_json::json;

    fn view(cluster: &str, name: &str, phase: &str, csv: &str) -> OperatorView {
        OperatorView {
            cluster: cluster.into(),
            name: name.into(),
            phase: phase.into(),
            artifact: name.into(),
            installed_csv: csv.into(),
            display_name: String::new(),
        }
    }

    fn artifact(name: &str) -> Value {
        json!({"metadata": {"name": name, "uid": format!("uid-{name}")}, "spec": {"type": "bundle"}})
    }

    fn av(artifact: &str, version: &str) -> Value {
        json!({"metadata": {"name": format!("{artifact}.{version}"),
                            "labels": {"cpaas.io/artifact-version": artifact, "cpaas.io/bundle-version": version}}})
    }

    fn names(c: &[Candidate]) -> Vec<String> {
        c.iter()
            .map(|c| format!("{} {} {}", c.kind.as_str(), c.name, c.cluster))
            .collect()
    }

    #[test]
    fn operators() {
        let views = vec![
            view("region1", "a-operator", "Installed", "a-operator.v2.0.0"),
            view("region1", "b-operator", "", ""),
            view("region1", "c-operator", "Installing", ""),
            view("global", "b-operator", "Installed", "b-operator.v1.0.0"),
        ];
        let artifacts = vec![
            artifact("a-operator"),
            artifact("b-operator"),
            artifact("c-operator"),
            json!({"metadata": {"name": "some-chart"}, "spec": {"type": "chart"}}),
        ];
        let versions = vec![
            av("a-operator", "v1.0.0"),
            av("a-operator", "v2.0.0"),
            av("a-operator", "v3.0.0"),
            av("a-operator", "latest"),
            av("b-operator", "v1.0.0"),
            av("c-operator", "v0.1.0"),
        ];
        let got = plan_operators("region1", &views, &artifacts, &versions);
        assert_eq!(
            names(&got),
            [
                "ArtifactVersion a-operator.v1.0.0 region1",
                "ArtifactVersion b-operator.v1.0.0 region1",
                "Artifact b-operator region1",
            ]
        );
    }

    #[test]
    fn plugins() {
        let views = vec![
            PluginView {
                module: "log-center".into(),
                lifecycle: Lifecycle::Aligned,
                display_name: String::new(),
                installed: vec![("region1".into(), "v1.2.0".into())],
            },
            PluginView {
                module: "unused".into(),
                lifecycle: Lifecycle::Agnostic,
                display_name: String::new(),
                installed: vec![],
            },
            PluginView {
                module: "core-thing".into(),
                lifecycle: Lifecycle::Core,
                display_name: String::new(),
                installed: vec![],
            },
        ];
        let mp = |n: &str, v: &str| json!({"metadata": {"name": n}, "spec": {"version": v}});
        let mc = |m: &str, v: &str| json!({"metadata": {"name": format!("{m}-{v}"), "labels": {"cpaas.io/module-name": m}}, "spec": {"version": v}});
        let plugins = vec![
            mp("log-center", "v1.3.0"),
            mp("unused", "v1.0.0"),
            mp("core-thing", "v1.0.0"),
        ];
        let configs = vec![
            mc("log-center", "v1.1.0"),
            mc("log-center", "v1.2.0"),
            mc("log-center", "v1.3.0"),
            mc("unused", "v1.0.0"),
            mc("core-thing", "v1.0.0"),
        ];
        assert_eq!(
            names(&plan_plugins(&views, &plugins, &configs)),
            [
                "ModuleConfig log-center-v1.1.0 global",
                "ModuleConfig unused-v1.0.0 global",
                "ModulePlugin unused global",
            ]
        );
    }

    #[test]
    fn table() {
        let rows = vec![Candidate {
            kind: GcKind::Artifact,
            name: "opensearch-operator".into(),
            cluster: "region1".into(),
            reason: String::new(),
        }];
        assert_eq!(
            render(&rows, false),
            "GC Summary:
TYPE                 NAME                                               CLUSTER
------------------------------------------------------------------------------------------
Artifact             opensearch-operator                                region1
"
        );
        assert_eq!(render(&[], false), "No resources were deleted.\n");
    }
}
