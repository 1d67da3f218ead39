//! `violet list`: the aligned and agnostic extensions installed on the platform, per cluster, as
//! the `applications:` YAML that the Customer Portal imports (`docs/platform.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

use crate::args::OutputArgs;
use crate::args::platform::ConnectArgs;
use crate::error::{ExitCode, Fail, UserError};
use crate::output::Printer;
use crate::platform::kube::GLOBAL;
use crate::platform::views::{self, ChartView, OperatorView, PluginView};

const EXAMPLES: &str = "Examples:
  # Everything installed, on stdout and in ./apps.yaml
  violet list --platform-address https://acp.example.com --platform-token \"$TOKEN\"

  # Two clusters only, into another file
  violet list --platform-address https://acp.example.com --platform-username admin \\
    --platform-password-stdin --clusters global,region1 --output-file region1-apps.yaml < platform-password.txt

  # JSON on stdout and no file
  violet list --platform-address https://acp.example.com --platform-token \"$TOKEN\" -o json --output-file -";

/// List the installed operators, cluster plugins (aligned and agnostic life cycle; core plugins are left out) and chart applications.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub connect: ConnectArgs,

    /// Also write the list (always the YAML form) to this file; `-` writes no file.
    #[arg(long, value_name = "FILE", default_value = "apps.yaml")]
    pub output_file: String,

    /// Exit 0 even when a cluster cannot be read fully (the output still marks it as incomplete).
    #[arg(long)]
    pub allow_partial: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// The documented `apps.yaml` document.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Applications {
    pub applications: BTreeMap<String, Application>,
    /// Clusters that could not be read fully: the list is not the whole for them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub incomplete: Vec<Incomplete>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Incomplete {
    pub cluster: String,
    pub reason: String,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    pub display_name: String,
    #[serde(rename = "type")]
    pub kind: AppType,
    pub installed: Vec<Installed>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub enum AppType {
    OperatorBundle,
    ModulePlugin,
    Chart,
}

impl AppType {
    fn as_str(self) -> &'static str {
        match self {
            AppType::OperatorBundle => "OperatorBundle",
            AppType::ModulePlugin => "ModulePlugin",
            AppType::Chart => "Chart",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct Installed {
    pub cluster_name: String,
    pub version: String,
}

pub fn run(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    super::block_on(run_async(args, printer))?
}

async fn run_async(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    let platform = args.connect.connect(&printer).await?;
    let operators = views::operator_views(&platform).await?;
    let plugins = views::plugin_views(&platform).await?;
    let filter = args.connect.cluster_filter();
    // Chart applications are recorded in each cluster, not in global's views. Global is always
    // read: captain's multi-cluster requests live there and name their target (`spec.clusterName`).
    let scope = args.connect.scope(&platform, &operators, &printer).await?;
    let mut read = scope.clone();
    if !read.iter().any(|c| c == GLOBAL) {
        read.insert(0, GLOBAL.to_string());
    }
    let mut charts = Vec::new();
    let mut incomplete: Vec<(Incomplete, ExitCode)> = Vec::new();
    {
        // A cluster the platform marks as not running may have lost or kept anything since its
        // views were last updated: what is listed for it is not vouched for.
        if let Some(states) = views::cluster_states(&platform).await.ok().flatten() {
            for (name, phase) in states {
                let wanted = filter.as_ref().is_none_or(|f| f.contains(&name));
                if wanted && !(phase.is_empty() || phase == "Running") {
                    incomplete.push((
                        Incomplete {
                            cluster: name,
                            reason: format!("the platform reports the cluster in phase {phase}"),
                        },
                        ExitCode::Remote,
                    ));
                }
            }
        }
    }
    for cluster in read {
        match views::chart_views(&platform, &cluster).await {
            Ok(Some(found)) => charts.extend(found),
            Ok(None) if scope.contains(&cluster) => printer.warn(format!(
                "cluster {cluster} does not serve helmrequests.app.alauda.io/v1: no chart applications listed for it"
            )),
            Ok(None) => {}
            // A 403 is the account's problem everywhere: stop, as nothing else would be complete.
            Err(e @ crate::platform::PlatformError::Forbidden { .. }) => return Err(e.into()),
            Err(e) => {
                if !incomplete.iter().any(|(i, _)| i.cluster == cluster) {
                    incomplete.push((
                        Incomplete {
                            cluster: cluster.clone(),
                            reason: format!("its chart applications cannot be read: {e}"),
                        },
                        e.exit_code(),
                    ));
                }
            }
        }
    }
    let (mut apps, warnings) = build(&operators, &plugins, &charts, filter.as_ref());
    apps.incomplete = incomplete.iter().map(|(i, _)| i.clone()).collect();
    for w in warnings {
        printer.warn(w);
    }
    let yaml = render_yaml(&apps);
    printer
        .with_format(args.output.format)
        .data(&apps, || yaml.clone())?;
    if args.output_file != "-" {
        let path = PathBuf::from(&args.output_file);
        std::fs::write(&path, &yaml).map_err(|e| {
            Fail::new(
                ExitCode::Input,
                format!("{}: cannot write the list: {e}", path.display()),
            )
            .with_hint("choose another --output-file, or --output-file - for none")
        })?;
        printer.info(format!(
            "Wrote {} ({} applications{})",
            path.display(),
            apps.applications.len(),
            if apps.incomplete.is_empty() {
                ""
            } else {
                ", marked incomplete"
            }
        ));
    }
    if incomplete.is_empty() {
        return Ok(ExitCode::Success);
    }
    let lead = if args.allow_partial {
        "warning"
    } else {
        "error"
    };
    for (i, _) in &incomplete {
        eprintln!(
            "{lead}: the list is incomplete for cluster {}: {}",
            i.cluster, i.reason
        );
    }
    if args.allow_partial {
        return Ok(ExitCode::Success);
    }
    eprintln!(
        "  hint: fix the cluster or leave it out with --clusters; --allow-partial accepts an incomplete list (still marked as such)"
    );
    Ok(crate::transfer::exit::fold(
        incomplete.iter().map(|(_, c)| *c),
    ))
}

/// Builds the list from the views: installed operators (phase `Installed`), plugins of the
/// aligned or agnostic life cycle that are installed somewhere, and the charts of synced
/// HelmRequests that the platform did not make itself. `clusters` narrows all three.
pub fn build(
    operators: &[OperatorView],
    plugins: &[PluginView],
    charts: &[ChartView],
    clusters: Option<&BTreeSet<String>>,
) -> (Applications, Vec<String>) {
    let wanted = |c: &str| clusters.is_none_or(|set| set.contains(c));
    let mut apps = Applications::default();
    let mut warnings = Vec::new();
    for op in operators
        .iter()
        .filter(|o| o.is_installed() && wanted(&o.cluster))
    {
        let Some(version) = op.installed_version() else {
            warnings.push(format!(
                "operator {} in cluster {} is Installed but its installed CSV {:?} names no version; left out",
                op.name, op.cluster, op.installed_csv
            ));
            continue;
        };
        let display = if op.display_name.is_empty() {
            op.name.clone()
        } else {
            op.display_name.clone()
        };
        add(
            &mut apps,
            &mut warnings,
            &op.name,
            display,
            AppType::OperatorBundle,
            Installed {
                cluster_name: op.cluster.clone(),
                version,
            },
        );
    }
    for p in plugins.iter().filter(|p| p.lifecycle.in_scope()) {
        for (cluster, version) in p.installed.iter().filter(|(c, _)| wanted(c)) {
            add(
                &mut apps,
                &mut warnings,
                &p.module,
                p.display_name.clone(),
                AppType::ModulePlugin,
                Installed {
                    cluster_name: cluster.clone(),
                    version: version.clone(),
                },
            );
        }
    }
    for c in charts.iter().filter(|c| !c.platform_managed) {
        let targets: Vec<&String> = c.targets.iter().filter(|t| wanted(t)).collect();
        if targets.is_empty() {
            continue;
        }
        let what = format!(
            "HelmRequest {}/{} in cluster {}",
            c.namespace, c.name, c.cluster
        );
        if !c.is_installed() {
            // Pending or Failed: a release may exist, but not in a state violet can vouch for.
            if !c.phase.is_empty() {
                warnings.push(format!("{what} is {}; left out", c.phase));
            }
            continue;
        }
        if c.chart.is_empty() {
            warnings.push(format!(
                "{what} names no chart (spec.chart or an OCI source); left out"
            ));
            continue;
        }
        if c.version.is_empty() {
            warnings.push(format!(
                "{what} is Synced but records no version (status.version, spec.version); left out"
            ));
            continue;
        }
        for t in targets {
            add(
                &mut apps,
                &mut warnings,
                &c.chart,
                c.chart.clone(),
                AppType::Chart,
                Installed {
                    cluster_name: t.clone(),
                    version: c.version.clone(),
                },
            );
        }
    }
    for app in apps.applications.values_mut() {
        app.installed.sort();
        app.installed.dedup();
    }
    (apps, warnings)
}

fn add(
    apps: &mut Applications,
    warnings: &mut Vec<String>,
    name: &str,
    display_name: String,
    kind: AppType,
    installed: Installed,
) {
    let app = apps
        .applications
        .entry(name.to_string())
        .or_insert_with(|| Application {
            display_name,
            kind,
            installed: Vec::new(),
        });
    if app.kind != kind {
        warnings.push(format!(
            "{name} is both an {} and a {}; the {} in cluster {} is left out",
            app.kind.as_str(),
            kind.as_str(),
            kind.as_str(),
            installed.cluster_name
        ));
        return;
    }
    app.installed.push(installed);
}

/// The documented layout (sequences indented under their key, as violet writes it). Scalars that
/// YAML would read as something other than the same string are double-quoted.
pub fn render_yaml(apps: &Applications) -> String {
    let mut out = String::new();
    for i in &apps.incomplete {
        out.push_str(&format!(
            "# INCOMPLETE: cluster {} could not be read fully; this list is not the whole\n",
            i.cluster.replace(['\n', '\r'], " ")
        ));
    }
    out.push_str(&render_applications(apps));
    if !apps.incomplete.is_empty() {
        out.push_str("incomplete:\n");
        for i in &apps.incomplete {
            out.push_str(&format!("  - cluster: {}\n", scalar(&i.cluster)));
            out.push_str(&format!(
                "    reason: {}\n",
                serde_json::to_string(&i.reason).unwrap_or_default()
            ));
        }
    }
    out
}

fn render_applications(apps: &Applications) -> String {
    if apps.applications.is_empty() {
        return "applications: {}\n".to_string();
    }
    let mut out = String::from("applications:\n");
    for (name, app) in &apps.applications {
        out.push_str(&format!("  {}:\n", scalar(name)));
        out.push_str(&format!("    displayName: {}\n", scalar(&app.display_name)));
        out.push_str(&format!("    type: {}\n", app.kind.as_str()));
        if app.installed.is_empty() {
            out.push_str("    installed: []\n");
            continue;
        }
        out.push_str("    installed:\n");
        for i in &app.installed {
            out.push_str(&format!(
                "      - clusterName: {}\n",
                scalar(&i.cluster_name)
            ));
            out.push_str(&format!("        version: {}\n", scalar(&i.version)));
        }
    }
    out
}

/// A plain YAML scalar when that reads back as the same string, else a double-quoted one (JSON
/// string escapes are valid in YAML double-quoted scalars).
fn scalar(s: &str) -> String {
    let safe_chars = s
        .chars()
        .all(|c| c.is_alphanumeric() || " ._/+-()".contains(c));
    let first_ok = s.chars().next().is_some_and(char::is_alphanumeric);
    let lower = s.to_ascii_lowercase();
    let ambiguous = matches!(
        lower.as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "~"
    ) || s.parse::<f64>().is_ok()
        || s.parse::<i64>().is_ok()
        || s.starts_with("0x")
        || s.starts_with("0o")
        || lower == ".inf"
        || lower == ".nan";
    if safe_chars && first_ok && !s.ends_with(' ') && !ambiguous {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::views::Lifecycle;

    fn op(cluster: &str, name: &str, phase: &str, csv: &str, display: &str) -> OperatorView {
        OperatorView::sample(cluster, name, phase, csv, display)
    }

    #[test]
    fn documented_example() {
        let operators = vec![
            op(
                "global",
                "topolvm-operator",
                "Installed",
                "topolvm-operator.v2.3.0",
                "NativeStor",
            ),
            op("region1", "other-operator", "Pending", "", ""),
        ];
        let plugins = vec![
            PluginView {
                module: "log-center".into(),
                lifecycle: Lifecycle::Agnostic,
                display_name: "Log Center".into(),
                installed: vec![("region1".into(), "v1.2.0".into())],
            },
            PluginView {
                module: "kube-ovn".into(),
                lifecycle: Lifecycle::Core,
                display_name: "Kube-OVN".into(),
                installed: vec![("global".into(), "v4.0.0".into())],
            },
        ];
        let (apps, warnings) = build(&operators, &plugins, &[], None);
        assert!(warnings.is_empty());
        let yaml = render_yaml(&apps);
        assert_eq!(
            yaml,
            "applications:
  log-center:
    displayName: Log Center
    type: ModulePlugin
    installed:
      - clusterName: region1
        version: v1.2.0
  topolvm-operator:
    displayName: NativeStor
    type: OperatorBundle
    installed:
      - clusterName: global
        version: 2.3.0
"
        );
        // What we hand-render must read back as the same document.
        let back: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, serde_json::to_value(&apps).unwrap());
        let only_global: BTreeSet<String> = ["global".to_string()].into();
        let (apps, _) = build(&operators, &plugins, &[], Some(&only_global));
        assert_eq!(
            apps.applications.keys().collect::<Vec<_>>(),
            ["topolvm-operator"]
        );
    }

    fn hr(
        cluster: &str,
        ns: &str,
        name: &str,
        spec: serde_json::Value,
        status: serde_json::Value,
    ) -> ChartView {
        ChartView::from_value(
            cluster,
            &serde_json::json!({"metadata": {"name": name, "namespace": ns}, "spec": spec, "status": status}),
        )
    }

    #[test]
    fn charts() {
        use serde_json::json;
        let charts = vec![
            hr(
                "region1",
                "apps",
                "my-crossplane",
                json!({"chart": "public-charts/crossplane", "version": "1.14.0"}),
                json!({"phase": "Synced", "version": "1.14.5"}),
            ),
            // Installed from global into region2 (captain's multi-cluster mode).
            hr(
                "global",
                "apps",
                "cp2",
                json!({"chart": "public-charts/crossplane", "clusterName": "region2"}),
                json!({"phase": "Synced", "version": "1.13.0"}),
            ),
            // Everywhere, synced in two clusters so far.
            hr(
                "global",
                "apps",
                "mon",
                json!({"chart": "stable/node-exporter", "version": "4.0.0", "installToAllClusters": true}),
                json!({"phase": "PartialSynced", "syncedClusters": ["global", "region1"]}),
            ),
            // An OCI source.
            hr(
                "region1",
                "apps",
                "tomcat",
                json!({"source": {"oci": {"repo": "10.0.0.1:60080/acp/chart-tomcat"}}, "version": "9.2.9"}),
                json!({"phase": "Synced"}),
            ),
            // The platform's own, failed, and partially synced to one named cluster: all left out.
            hr(
                "global",
                "cpaas-system",
                "acp-ui",
                json!({"chart": "stable/acp-ui"}),
                json!({"phase": "Synced", "version": "4.2.0"}),
            ),
            hr(
                "region1",
                "apps",
                "broken",
                json!({"chart": "public-charts/redis"}),
                json!({"phase": "Failed"}),
            ),
            hr(
                "region1",
                "apps",
                "half",
                json!({"chart": "public-charts/half", "clusterName": "region2"}),
                json!({"phase": "PartialSynced", "version": "1"}),
            ),
            hr(
                "region1",
                "apps",
                "new",
                json!({"chart": "public-charts/newer"}),
                json!({}),
            ),
        ];
        let (apps, warnings) = build(&[], &[], &charts, None);
        assert_eq!(
            warnings,
            [
                "HelmRequest apps/broken in cluster region1 is Failed; left out",
                "HelmRequest apps/half in cluster region1 is PartialSynced; left out"
            ]
        );
        assert_eq!(
            render_yaml(&apps),
            "applications:
  chart-tomcat:
    displayName: chart-tomcat
    type: Chart
    installed:
      - clusterName: region1
        version: 9.2.9
  crossplane:
    displayName: crossplane
    type: Chart
    installed:
      - clusterName: region1
        version: 1.14.5
      - clusterName: region2
        version: 1.13.0
  node-exporter:
    displayName: node-exporter
    type: Chart
    installed:
      - clusterName: global
        version: 4.0.0
      - clusterName: region1
        version: 4.0.0
"
        );
        let only: BTreeSet<String> = ["region2".to_string()].into();
        let (apps, warnings) = build(&[], &[], &charts, Some(&only));
        assert_eq!(
            warnings,
            ["HelmRequest apps/half in cluster region1 is PartialSynced; left out"]
        );
        assert_eq!(
            apps.applications["crossplane"].installed,
            [Installed {
                cluster_name: "region2".into(),
                version: "1.13.0".into()
            }]
        );
        assert_eq!(apps.applications.len(), 1);
    }

    #[test]
    fn quoting() {
        for s in [
            "1.0", "true", "no", "", "a: b", "#x", "-x", "x ", "\"q\"", "日志", "null",
        ] {
            let doc = format!("k: {}\n", scalar(s));
            let back: BTreeMap<String, String> = serde_saphyr::from_str(&doc).unwrap();
            assert_eq!(back["k"], s, "{doc}");
        }
        assert_eq!(scalar("v1.2.0"), "v1.2.0");
        assert_eq!(
            scalar("Alauda Build of Argo Rollouts"),
            "Alauda Build of Argo Rollouts"
        );
    }
}
