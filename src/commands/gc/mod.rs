//! `violet gc`: delete the catalog resources nothing uses any more (`docs/platform.md`):
//! Artifacts of operators installed nowhere in their cluster, ArtifactVersions older than the
//! installed one, ModulePlugins installed in no cluster, and ModuleConfigs older than every
//! installed version. Candidates come from the OperatorView and ModulePluginView records; every
//! rule errs on the side of keeping (see docs/platform.md).

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::args::OutputArgs;
use crate::args::platform::ConnectArgs;
use crate::error::{ExitCode, Fail, UserError};
use crate::output::Printer;
use crate::platform::PlatformError;
use crate::platform::crs::Kind;
use crate::platform::kube::{Cluster, GLOBAL, Platform};
mod plan;

use plan::s;
pub use plan::{Candidate, GcKind, Kept, plan_operators, plan_plugins};

use crate::platform::views::{self, OperatorView, PluginView};

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

    /// Before deleting, write every object to delete to this YAML file (restore with `kubectl apply -f`).
    /// Default: violet-gc-backup-<time>.yaml in the current directory; `-` writes none.
    #[arg(long, value_name = "FILE")]
    pub backup: Option<String>,

    /// Also delete objects without the label cpaas.io/managed-by=violet (installer-provided catalog entries).
    #[arg(long)]
    pub include_unmanaged: bool,

    /// Accept the risk of clusters that cannot be read: delete the per-cluster objects of the
    /// clusters that answered. Shared objects on global are still kept while any cluster is unknown.
    #[arg(long)]
    pub skip_unreachable: bool,

    #[command(flatten)]
    pub output: OutputArgs,
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

/// A cluster in scope whose use of the catalog cannot be ruled out.
#[derive(Debug, Serialize)]
struct Unknown {
    cluster: String,
    reason: String,
    /// In scope: its per-cluster objects are at stake, so it stops every delete (unless
    /// --skip-unreachable). Out of scope (a cluster the platform reports as not running), it only
    /// stops the deletes of shared objects.
    in_scope: bool,
    #[serde(skip)]
    code: ExitCode,
    #[serde(skip)]
    hint: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GcOutput {
    dry_run: bool,
    /// Deleted objects, or with --dry-run the objects that would be deleted.
    resources: Vec<Candidate>,
    kept: Vec<Kept>,
    unknown_clusters: Vec<Unknown>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup: Option<String>,
    failed: Vec<Failure>,
}

pub fn run(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    super::block_on(run_async(args, printer))?
}

/// What one cluster holds that gc decides on.
struct Scanned {
    cluster: Cluster,
    candidates: Vec<Candidate>,
    kept: Vec<Kept>,
}

async fn run_async(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    let platform = args.connect.connect(&printer).await?;
    // The views decide everything: failing to read them is fatal, never "nothing is installed".
    let operators = views::operator_views(&platform).await?;
    let plugins = views::plugin_views(&platform).await?;
    let states = if args.connect.platform.kubeconfig.is_some() {
        None
    } else {
        views::cluster_states(&platform).await?
    };
    let scope = args.connect.scope(&platform, &operators, &printer).await?;
    tracing::debug!("gc scope: {scope:?}");

    let mut unknown: Vec<Unknown> = Vec::new();
    // A cluster the platform itself marks as not running may hold installations its views no
    // longer report: its use of anything cannot be ruled out, whether or not it is in scope.
    if let Some(states) = &states {
        for (name, phase) in states {
            if !(phase.is_empty() || phase == "Running") {
                unknown.push(Unknown {
                    cluster: name.clone(),
                    reason: format!("the platform reports the cluster in phase {phase}"),
                    in_scope: scope.contains(name),
                    code: ExitCode::Remote,
                    hint: None,
                });
            }
        }
    }
    let mut scanned: Vec<Scanned> = Vec::new();
    for name in &scope {
        if unknown.iter().any(|u| &u.cluster == name) {
            continue;
        }
        match scan_cluster(
            &platform,
            name,
            &operators,
            &plugins,
            args.include_unmanaged,
        )
        .await
        {
            Ok(found) => scanned.push(found),
            Err(e) => unknown.push(Unknown {
                cluster: name.clone(),
                reason: e.to_string(),
                in_scope: true,
                code: e.exit_code(),
                hint: e.hint(),
            }),
        }
    }
    if states.is_none()
        && args.connect.platform.kubeconfig.is_none()
        && scope.iter().any(|c| c == GLOBAL)
    {
        // Without the cluster list, a cluster outside the views may hold plugin installations.
        unknown.push(Unknown {
            cluster: "(any)".into(),
            in_scope: false,
            reason: "the platform does not list its clusters (clusters.platform.tkestack.io), so plugin use cannot be ruled out everywhere".into(),
            code: ExitCode::Remote,
            hint: None,
        });
    }

    let mut kept: Vec<Kept> = Vec::new();
    let mut planned: Vec<(Cluster, Vec<Candidate>)> = Vec::new();
    let blocking = unknown.iter().any(|u| u.in_scope);
    let proceed = !blocking || args.skip_unreachable;
    for s in scanned {
        kept.extend(s.kept);
        let mut go = Vec::new();
        for c in s.candidates {
            let blocker = if !proceed {
                Some("not deleted: some cluster in scope cannot be read (see below); pass --skip-unreachable to go on without it".to_string())
            } else if c.kind.shared() && !unknown.is_empty() {
                let names: Vec<&str> = unknown.iter().map(|u| u.cluster.as_str()).collect();
                Some(format!(
                    "shared on global and cluster {} is unknown",
                    names.join(", ")
                ))
            } else {
                None
            };
            match blocker {
                Some(reason) => kept.push(keep(&c, reason)),
                None => go.push(c),
            }
        }
        planned.push((s.cluster, go));
    }

    let mut done: Vec<Candidate> = Vec::new();
    let mut failures: Vec<Failure> = Vec::new();
    let mut backup_path: Option<String> = None;
    let total: usize = planned.iter().map(|(_, c)| c.len()).sum();
    if args.dry_run {
        done = planned.iter().flat_map(|(_, c)| c.clone()).collect();
    } else if total > 0 {
        let path = match args.backup.as_deref() {
            Some("-") => None,
            Some(p) => Some(p.to_string()),
            None => Some(format!(
                "violet-gc-backup-{}.yaml",
                utc_stamp(std::time::SystemTime::now())
            )),
        };
        if let Some(path) = &path {
            let all: Vec<&Candidate> = planned.iter().flat_map(|(_, c)| c.iter()).collect();
            std::fs::write(path, backup_yaml(&all)).map_err(|e| {
                Fail::new(
                    ExitCode::Input,
                    format!("{path}: cannot write the gc backup: {e}; nothing was deleted"),
                )
                .with_hint("choose another --backup FILE (or --backup - to delete without one)")
            })?;
            eprintln!(
                "Backup of the {total} object(s) to delete: {path} (restore with kubectl apply -f, per cluster)"
            );
            backup_path = Some(path.clone());
        }
        for (cluster, candidates) in &planned {
            let mut stopped: BTreeSet<String> = BTreeSet::new();
            for c in execution_order(candidates) {
                if c.parent.is_none() && stopped.contains(&c.name) {
                    kept.push(keep(c, "kept: a dependent of it was kept".into()));
                    continue;
                }
                let kind = resource_kind(c.kind);
                let resource = match kind {
                    Some(k) => k.resource(),
                    None => views::module_config_resource(),
                };
                let ns = kind.and_then(Kind::namespace);
                let uid = s(&c.object, "/metadata/uid");
                let rv = s(&c.object, "/metadata/resourceVersion");
                let pre = (!uid.is_empty() && !rv.is_empty()).then_some((uid, rv));
                match cluster.delete_if(&resource, ns, &c.name, pre).await {
                    Ok(true) => done.push(c.clone()),
                    Ok(false) => tracing::debug!(
                        "{} {} in cluster {} was already gone",
                        c.kind.as_str(),
                        c.name,
                        c.cluster
                    ),
                    Err(PlatformError::Api { code: 409, .. }) => {
                        kept.push(keep(
                            c,
                            "changed since gc read it (precondition failed); kept".into(),
                        ));
                        stopped.extend(c.parent.clone());
                    }
                    Err(e) => {
                        failures.push(Failure::new(&c.cluster, Some(c), &e));
                        stopped.extend(c.parent.clone());
                    }
                }
            }
        }
    }
    // The backup was written before the first delete, so that a crash cannot lose anything; now
    // that the outcome is known, it holds exactly what was deleted.
    if let Some(path) = &backup_path
        && done.len() != total
    {
        let deleted: Vec<&Candidate> = done.iter().collect();
        match std::fs::write(path, backup_yaml(&deleted)) {
            Ok(()) => eprintln!(
                "Backup {path} rewritten with the {} object(s) actually deleted",
                done.len()
            ),
            Err(e) => eprintln!(
                "warning: {path}: cannot rewrite the backup ({e}); it also holds the {} object(s) that were kept",
                total - done.len()
            ),
        }
    }
    done.sort_by(|a, b| (a.kind, &a.cluster, &a.name).cmp(&(b.kind, &b.cluster, &b.name)));
    kept.sort_by(|a, b| (a.kind, &a.cluster, &a.name).cmp(&(b.kind, &b.cluster, &b.name)));

    let view = GcOutput {
        dry_run: args.dry_run,
        resources: done,
        kept,
        unknown_clusters: unknown,
        backup: backup_path,
        failed: failures,
    };
    printer.with_format(args.output.format).data(&view, || {
        render(&view.resources, args.dry_run) + &render_kept(&view.kept)
    })?;
    let mut hints: BTreeSet<String> = BTreeSet::new();
    for u in &view.unknown_clusters {
        let lead = if args.skip_unreachable || !u.in_scope {
            "warning"
        } else {
            "error"
        };
        eprintln!(
            "{lead}: cluster {}: cannot rule out that it uses the catalog: {}",
            u.cluster, u.reason
        );
        if let Some(h) = &u.hint {
            hints.insert(h.clone());
        }
    }
    for f in &view.failed {
        eprintln!("error: {}", f.error);
        if let Some(h) = &f.hint {
            hints.insert(h.clone());
        }
    }
    if blocking && !args.skip_unreachable {
        hints.insert("nothing is deleted while a cluster in scope is unknown: fix it, leave it out with --clusters, or accept the risk with --skip-unreachable (shared plugin objects stay either way)".into());
    }
    for h in hints {
        eprintln!("  hint: {h}");
    }
    let mut codes: Vec<ExitCode> = view.failed.iter().map(|f| f.code).collect();
    if !args.skip_unreachable {
        codes.extend(
            view.unknown_clusters
                .iter()
                .filter(|u| u.in_scope)
                .map(|u| u.code),
        );
    }
    Ok(crate::transfer::exit::fold(codes))
}

fn keep(c: &Candidate, reason: String) -> Kept {
    Kept {
        kind: c.kind,
        name: c.name.clone(),
        cluster: c.cluster.clone(),
        reason,
    }
}

/// The backup: every object to delete, without the fields the server owns, grouped by cluster,
/// each group headed by the command that restores it.
fn backup_yaml(all: &[&Candidate]) -> String {
    let mut sorted: Vec<&&Candidate> = all.iter().collect();
    // Parents first, so that `kubectl apply -f` creates an Artifact before its versions.
    sorted.sort_by_key(|c| {
        (
            c.cluster.clone(),
            match c.kind {
                GcKind::Artifact => 0,
                GcKind::ArtifactVersion => 1,
                GcKind::ModulePlugin => 2,
                GcKind::ModuleConfig => 3,
            },
            c.name.clone(),
        )
    });
    let mut out = String::from(
        "# violet gc backup: the objects gc deleted, as they were.\n\
         # Restore each cluster's part with: kubectl --context <cluster> apply -f <this part>\n\
         # (or `violet push --skip-push <package>` for a package's catalog objects).\n\
         # ArtifactVersions are saved without their ownerReference, whose uid dies with the Artifact;\n\
         # `violet push --skip-push` adds it back.\n",
    );
    let mut current = String::new();
    for c in sorted {
        if c.cluster != current {
            current = c.cluster.clone();
            out.push_str(&format!("# cluster: {current}\n"));
        }
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&restorable(&c.object)).unwrap_or_default());
    }
    out
}

/// The object without what the server owns or what cannot be re-applied as is.
pub fn restorable(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("status");
    }
    if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in [
            "uid",
            "resourceVersion",
            "managedFields",
            "creationTimestamp",
            "generation",
            "selfLink",
            "ownerReferences",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            meta.remove(f);
        }
    }
    o
}

async fn scan_cluster(
    platform: &Platform,
    name: &str,
    operators: &[OperatorView],
    plugins: &[PluginView],
    include_unmanaged: bool,
) -> Result<Scanned, PlatformError> {
    let cluster = platform.cluster(name).await?;
    let artifacts = views::catalog_objects(&cluster, Kind::Artifact).await?;
    let versions = views::catalog_objects(&cluster, Kind::ArtifactVersion).await?;
    let subs = views::subscriptions(&cluster).await?;
    let (mut candidates, mut kept) = plan_operators(
        name,
        operators,
        &subs,
        &artifacts,
        &versions,
        include_unmanaged,
    );
    if name == GLOBAL {
        let module_plugins = views::catalog_objects(&cluster, Kind::ModulePlugin).await?;
        let configs = views::module_configs(&cluster).await?;
        let infos = match views::module_infos(&cluster).await {
            Ok(i) => Some(i),
            Err(PlatformError::Api { code: 404, .. }) => None,
            Err(e) => return Err(e),
        };
        let (c, k) = plan_plugins(
            plugins,
            infos.as_deref(),
            &module_plugins,
            &configs,
            include_unmanaged,
        );
        candidates.extend(c);
        kept.extend(k);
    }
    Ok(Scanned {
        cluster,
        candidates,
        kept,
    })
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

fn render_kept(kept: &[Kept]) -> String {
    if kept.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nKept:\n");
    out.push_str(&format!(
        "{:<20} {:<50} {:<16} {}\n",
        "TYPE", "NAME", "CLUSTER", "REASON"
    ));
    out.push_str(&"-".repeat(90));
    out.push('\n');
    for k in kept {
        let line = format!(
            "{:<20} {:<50} {:<16} {}",
            k.kind.as_str(),
            k.name,
            k.cluster,
            k.reason
        );
        out.push_str(line.trim_end());
        out.push('\n');
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
                "{:<20} {:<50} {:<16} {}{}",
                r.kind.as_str(),
                r.name,
                r.cluster,
                r.reason,
                if r.unmanaged {
                    " [UNMANAGED: not labelled cpaas.io/managed-by=violet]"
                } else {
                    ""
                }
            )
        } else {
            format!("{:<20} {:<50} {}", r.kind.as_str(), r.name, r.cluster)
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `2026-11-29T231407Z`: the UTC time in RFC 3339 without the colons a file name should not hold.
fn utc_stamp(now: std::time::SystemTime) -> String {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = crate::civil::civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::views::{Lifecycle, Subscription};
    use serde_json::json;

    #[test]
    fn backup_file_stamp_is_utc_without_colons() {
        let at =
            |secs: u64| utc_stamp(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T000000Z");
        assert_eq!(at(951_782_400), "2000-02-29T000000Z");
        assert_eq!(at(1_795_993_447), "2026-11-29T230407Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T235959Z");
    }

    fn view(cluster: &str, name: &str, phase: &str, csv: &str) -> OperatorView {
        OperatorView::sample(cluster, name, phase, csv, "")
    }

    fn artifact(name: &str) -> Value {
        json!({"metadata": {"name": name, "uid": format!("uid-{name}"), "labels": {"cpaas.io/managed-by": "violet"}}, "spec": {"type": "bundle"}})
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
        let sub = |pkg: &str, csv: &str| Subscription {
            cluster: "region1".into(),
            namespace: "operators".into(),
            name: pkg.into(),
            package: pkg.into(),
            installed_csv: csv.into(),
        };
        let subs = vec![
            sub("a-operator", "a-operator.v2.0.0"),
            sub("c-operator", ""),
        ];
        let (got, kept) = plan_operators("region1", &views, &subs, &artifacts, &versions, false);
        assert_eq!(
            names(&got),
            [
                "ArtifactVersion a-operator.v1.0.0 region1",
                "ArtifactVersion b-operator.v1.0.0 region1",
                "Artifact b-operator region1",
            ]
        );
        assert!(kept.is_empty(), "{kept:?}");

        // A Subscription without a view: the witnesses disagree, nothing of b-operator goes.
        let subs2 = vec![
            sub("a-operator", "a-operator.v2.0.0"),
            sub("b-operator", "b-operator.v1.0.0"),
            sub("c-operator", ""),
        ];
        let (got, kept) = plan_operators("region1", &views, &subs2, &artifacts, &versions, false);
        assert_eq!(names(&got), ["ArtifactVersion a-operator.v1.0.0 region1"]);
        assert!(kept[0].reason.contains("disagree"), "{kept:?}");

        // Installed at a version whose ArtifactVersion is gone: the newest stays.
        let views3 = vec![view(
            "region1",
            "a-operator",
            "Installed",
            "a-operator.v9.0.0",
        )];
        let subs3 = vec![sub("a-operator", "a-operator.v9.0.0")];
        let (got, _) = plan_operators("region1", &views3, &subs3, &artifacts, &versions, false);
        let got = names(&got);
        assert!(!got.iter().any(|n| n.contains("v3.0.0")), "{got:?}");
        assert!(got.iter().any(|n| n.contains("v1.0.0")), "{got:?}");
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
        let mp = |n: &str, v: &str| json!({"metadata": {"name": n, "labels": {"cpaas.io/managed-by": "violet"}}, "spec": {"version": v}});
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
        let infos = vec![(
            "log-center".to_string(),
            "region1".to_string(),
            "v1.2.0".to_string(),
        )];
        assert_eq!(
            names(&plan_plugins(&views, Some(&infos), &plugins, &configs, false).0),
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
            unmanaged: false,
            object: Value::Null,
            parent: None,
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
