//! `violet list` and `violet gc` against the platform emulator: the documented apps.yaml, what gc
//! deletes (and keeps), --dry-run, the empty case and a non-admin account.

use serde_json::{Value, json};

use crate::support::platform::{ADMIN_TOKEN, PlatformEmulator, VIEWER_TOKEN};
use crate::support::{Output, TestContext};

fn artifact(emu: &PlatformEmulator, cluster: &str, name: &str) -> String {
    emu.seed(
        cluster,
        "artifacts",
        "cpaas-system",
        json!({
            "apiVersion": "app.alauda.io/v1alpha1", "kind": "Artifact",
            "metadata": { "name": name, "namespace": "cpaas-system",
                          "labels": { "cpaas.io/managed-by": "violet", "cpaas.io/type": "bundle" } },
            "spec": { "type": "bundle", "present": true, "registry": "10.0.0.1:11443", "repository": format!("acp/{name}-bundle"),
                      "artifactVersionSelector": { "matchLabels": { "cpaas.io/artifact-version": name } } },
        }),
    )
}

fn artifact_version(
    emu: &PlatformEmulator,
    cluster: &str,
    artifact: &str,
    uid: &str,
    version: &str,
) {
    emu.seed(
        cluster,
        "artifactversions",
        "cpaas-system",
        json!({
            "apiVersion": "app.alauda.io/v1alpha1", "kind": "ArtifactVersion",
            "metadata": { "name": format!("{artifact}.{version}"), "namespace": "cpaas-system",
                          "labels": { "cpaas.io/artifact-version": artifact, "cpaas.io/bundle-version": version },
                          "annotations": { "cpaas.io/csv-name": format!("{artifact}.{version}") },
                          "ownerReferences": [ { "apiVersion": "app.alauda.io/v1alpha1", "kind": "Artifact", "name": artifact, "uid": uid } ] },
            "spec": { "present": true, "tag": version },
            "status": { "phase": "Present", "version": format!("{artifact}.{version}") },
        }),
    );
}

fn module_plugin(emu: &PlatformEmulator, name: &str, version: &str) {
    emu.seed(
        "global",
        "moduleplugins",
        "",
        json!({
            "apiVersion": "cluster.alauda.io/v1alpha1", "kind": "ModulePlugin",
            "metadata": { "name": name, "labels": { "cpaas.io/module-name": name, "cpaas.io/managed-by": "violet" } },
            "spec": { "name": name, "version": version, "deleteable": true, "description": { "en": name }, "logo": "" },
        }),
    );
}

fn module_config(emu: &PlatformEmulator, module: &str, version: &str) {
    emu.seed(
        "global",
        "moduleconfigs",
        "",
        json!({
            "apiVersion": "cluster.alauda.io/v1alpha1", "kind": "ModuleConfig",
            "metadata": { "name": format!("{module}-{version}"), "labels": { "cpaas.io/module-name": module } },
            "spec": { "name": module, "version": version, "deleteable": true, "description": { "en": module }, "logo": "" },
        }),
    );
}

/// topolvm-operator installed in global (v2.3.0) and region1 (v2.2.0), opensearch-operator offered
/// but not installed in region1; plugins log-center (aligned, two clusters), kube-ovn (core, excluded)
/// and unused-plugin (agnostic, installed nowhere); the catalog objects behind them.
async fn platform() -> PlatformEmulator {
    let emu = PlatformEmulator::start().await;
    emu.seed_clusters();
    emu.seed_operator_view(
        "global",
        "topolvm-operator",
        "Installed",
        "topolvm-operator.v2.3.0",
        "NativeStor",
    );
    emu.seed_operator_view(
        "region1",
        "topolvm-operator",
        "Installed",
        "topolvm-operator.v2.2.0",
        "NativeStor",
    );
    emu.seed_operator_view("region1", "opensearch-operator", "", "", "OpenSearch");
    emu.seed_plugin_view(
        "log-center",
        Some("aligned"),
        "Log Center",
        &[("region1", "v1.2.0"), ("global", "v1.2.0")],
    );
    emu.seed_plugin_view(
        "kube-ovn",
        Some("core"),
        "Kube-OVN",
        &[("global", "v4.0.0")],
    );
    emu.seed_plugin_view("unused-plugin", None, "Unused", &[]);

    let uid = artifact(&emu, "global", "topolvm-operator");
    for v in ["v2.2.0", "v2.3.0", "v2.4.0"] {
        artifact_version(&emu, "global", "topolvm-operator", &uid, v);
    }
    let uid = artifact(&emu, "region1", "topolvm-operator");
    for v in ["v2.1.0", "v2.2.0"] {
        artifact_version(&emu, "region1", "topolvm-operator", &uid, v);
    }
    let uid = artifact(&emu, "region1", "opensearch-operator");
    artifact_version(&emu, "region1", "opensearch-operator", &uid, "v2.8.0");

    module_plugin(&emu, "log-center", "v1.3.0");
    module_plugin(&emu, "kube-ovn", "v4.0.0");
    module_plugin(&emu, "unused-plugin", "v1.0.0");
    for v in ["v1.1.0", "v1.2.0", "v1.3.0"] {
        module_config(&emu, "log-center", v);
    }
    module_config(&emu, "kube-ovn", "v3.0.0");
    module_config(&emu, "unused-plugin", "v1.0.0");
    emu
}

fn names(emu: &PlatformEmulator, cluster: &str, plural: &str) -> Vec<String> {
    let mut v: Vec<String> = emu
        .objects(cluster, plural)
        .iter()
        .map(|o| {
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    v.sort();
    v
}

/// Everything gc could touch, as `cluster plural name` lines.
fn catalog(emu: &PlatformEmulator) -> Vec<String> {
    let mut out = Vec::new();
    for cluster in ["global", "region1", "region2"] {
        for plural in [
            "artifacts",
            "artifactversions",
            "moduleplugins",
            "moduleconfigs",
        ] {
            for n in names(emu, cluster, plural) {
                out.push(format!("{cluster} {plural} {n}"));
            }
        }
    }
    out
}

const EXPECTED_APPS: &str = "applications:
  log-center:
    displayName: Log Center
    type: ModulePlugin
    installed:
      - clusterName: global
        version: v1.2.0
      - clusterName: region1
        version: v1.2.0
  topolvm-operator:
    displayName: NativeStor
    type: OperatorBundle
    installed:
      - clusterName: global
        version: 2.3.0
      - clusterName: region1
        version: 2.2.0
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_prints_and_writes_the_documented_yaml() {
    let emu = platform().await;
    let ctx = TestContext::new();
    let out = ctx
        .run_blocking(emu.args("list", ADMIN_TOKEN, &[]))
        .success();
    assert_eq!(out.stdout, EXPECTED_APPS);
    assert!(
        out.stderr.contains("Wrote apps.yaml (2 applications)"),
        "{}",
        out.stderr
    );
    let file = std::fs::read_to_string(ctx.path().join("apps.yaml")).expect("apps.yaml");
    assert_eq!(file, EXPECTED_APPS);

    // One cluster, JSON on stdout, a file of our choosing, and nothing written to the platform.
    let out = ctx
        .run_blocking(emu.args(
            "list",
            ADMIN_TOKEN,
            &[
                "--clusters",
                "region1",
                "-o",
                "json",
                "--output-file",
                "region1.yaml",
            ],
        ))
        .success();
    assert_eq!(
        out.json(),
        json!({"applications": {
            "log-center": {"displayName": "Log Center", "type": "ModulePlugin", "installed": [{"clusterName": "region1", "version": "v1.2.0"}]},
            "topolvm-operator": {"displayName": "NativeStor", "type": "OperatorBundle", "installed": [{"clusterName": "region1", "version": "2.2.0"}]},
        }})
    );
    let file = std::fs::read_to_string(ctx.path().join("region1.yaml")).expect("region1.yaml");
    assert!(file.starts_with("applications:\n  log-center:\n"), "{file}");
    assert!(!emu.requests().iter().any(|r| !r.starts_with("GET ")));

    // `--output-file -` writes no file.
    let ctx2 = TestContext::new();
    ctx2.run_blocking(emu.args("list", ADMIN_TOKEN, &["--output-file", "-"]))
        .success();
    assert!(!ctx2.path().join("apps.yaml").exists());
    assert!(!ctx2.path().join("-").exists());
}

/// Chart applications: HelmRequests in global and region1 (one of each user chart synced, one
/// failed, one the platform's own), and region2 without captain (helmrequests not served).
async fn platform_with_charts() -> PlatformEmulator {
    let emu = platform().await;
    let none = json!({});
    emu.seed_helm_request(
        "global",
        "team-a",
        "crossplane",
        "public-charts/crossplane",
        "1.14.5",
        "Synced",
        none.clone(),
    );
    emu.seed_helm_request(
        "region1",
        "team-b",
        "cp",
        "public-charts/crossplane",
        "1.13.0",
        "Synced",
        none.clone(),
    );
    emu.seed_helm_request(
        "region1",
        "team-b",
        "redis",
        "public-charts/redis",
        "17.0.0",
        "Failed",
        none.clone(),
    );
    // Kept in global, installed into region1 (captain's multi-cluster mode).
    emu.seed_helm_request(
        "global",
        "team-a",
        "mq",
        "public-charts/rabbitmq",
        "12.0.1",
        "Synced",
        json!({"clusterName": "region1"}),
    );
    emu.seed_helm_request(
        "global",
        "cpaas-system",
        "acp-ui",
        "stable/acp-ui",
        "4.2.0",
        "Synced",
        none,
    );
    emu.unserve("region2", "helmrequests");
    emu
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_includes_chart_applications_and_skips_clusters_without_them() {
    let emu = platform_with_charts().await;
    let ctx = TestContext::new();
    let base = emu.args("list", ADMIN_TOKEN, &[]);
    let out = ctx.run_blocking(&base).success();
    snap!(
        ctx,
        "list_with_charts",
        format!("{}--- stderr\n{}", out.stdout, out.stderr)
    );
    assert_eq!(
        out.stderr.matches("does not serve helmrequests").count(),
        1,
        "{}",
        out.stderr
    );
    let file = std::fs::read_to_string(ctx.path().join("apps.yaml")).expect("apps.yaml");
    assert_eq!(file, out.stdout);
    // Read from every cluster through the proxy, across namespaces; nothing written.
    let reqs = emu.requests();
    for c in ["global", "region1", "region2"] {
        let path = format!("GET /kubernetes/{c}/apis/app.alauda.io/v1/helmrequests");
        assert!(
            reqs.iter().any(|r| r.starts_with(&path)),
            "{path} not in {reqs:?}"
        );
    }
    assert!(!reqs.iter().any(|r| !r.starts_with("GET ")));

    // --clusters region1 keeps region1's entries, the chart installed there from a request kept
    // in global included; region2 alone has no charts and says why, still exit 0.
    let mut args = base.to_vec();
    args.extend(["--clusters", "region1", "-o", "json", "--output-file", "-"]);
    let out = ctx.run_blocking(&args).success();
    assert_eq!(
        out.json(),
        json!({"applications": {
            "crossplane": {"displayName": "crossplane", "type": "Chart", "installed": [{"clusterName": "region1", "version": "1.13.0"}]},
            "rabbitmq": {"displayName": "rabbitmq", "type": "Chart", "installed": [{"clusterName": "region1", "version": "12.0.1"}]},
            "log-center": {"displayName": "Log Center", "type": "ModulePlugin", "installed": [{"clusterName": "region1", "version": "v1.2.0"}]},
            "topolvm-operator": {"displayName": "NativeStor", "type": "OperatorBundle", "installed": [{"clusterName": "region1", "version": "2.2.0"}]},
        }})
    );
    assert!(!out.stderr.contains("region2"), "{}", out.stderr);
    let mut args = base.to_vec();
    args.extend(["--clusters", "region2", "--output-file", "-"]);
    let out = ctx.run_blocking(&args).success();
    assert_eq!(out.stdout, "applications: {}\n");
    assert!(
        out.stderr
            .contains("cluster region2 does not serve helmrequests.app.alauda.io/v1"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_stops_when_chart_applications_are_forbidden() {
    let emu = platform_with_charts().await;
    emu.forbid("region1", "helmrequests");
    let ctx = TestContext::new();
    let out = ctx.run_blocking(emu.args("list", VIEWER_TOKEN, &[]));
    assert_eq!(out.code, 5, "{out:?}");
    // 403 Forbidden in cluster region1, with the platform-admin-system role hint.
    snap!(ctx, "list_forbidden", out.streams());
    // A partial list is not written as if it were the whole.
    assert!(!ctx.path().join("apps.yaml").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_dry_run_then_gc_deletes_exactly_the_candidates() {
    let emu = platform().await;
    let ctx = TestContext::new();
    let before = catalog(&emu);
    let args = emu.args("gc", ADMIN_TOKEN, &[]);

    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let out = ctx.run_blocking(&dry).success();
    assert_eq!(catalog(&emu), before, "--dry-run deleted something");
    assert!(!emu.requests().iter().any(|r| r.starts_with("DELETE ")));
    snap!(ctx, "gc_dry_run", out.stdout.clone());

    let out = ctx.run_blocking(&args).success();
    snap!(ctx, "gc_summary", out.stdout.clone());
    let after = catalog(&emu);
    let gone: Vec<&String> = before.iter().filter(|l| !after.contains(l)).collect();
    assert_eq!(
        gone,
        [
            "global artifactversions topolvm-operator.v2.2.0",
            "global moduleplugins unused-plugin",
            "global moduleconfigs log-center-v1.1.0",
            "global moduleconfigs unused-plugin-v1.0.0",
            "region1 artifacts opensearch-operator",
            "region1 artifactversions opensearch-operator.v2.8.0",
            "region1 artifactversions topolvm-operator.v2.1.0",
        ]
    );
    // The installed versions (and the newer upload waiting for an upgrade) stay.
    assert_eq!(
        names(&emu, "global", "artifactversions"),
        ["topolvm-operator.v2.3.0", "topolvm-operator.v2.4.0"]
    );
    assert_eq!(
        names(&emu, "region1", "artifactversions"),
        ["topolvm-operator.v2.2.0"]
    );
    // Core plugins are never collected.
    assert!(after.contains(&"global moduleconfigs kube-ovn-v3.0.0".to_string()));

    // Nothing left to do.
    let out = ctx.run_blocking(&args).success();
    assert_eq!(out.stdout, "No resources were deleted.\n");

    // JSON form of the same.
    let out = ctx
        .run_blocking(emu.args("gc", ADMIN_TOKEN, &["-o", "json"]))
        .success();
    assert_eq!(
        out.json(),
        json!({"dryRun": false, "resources": [], "kept": [], "unknownClusters": [], "failed": []})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_scope_follows_clusters() {
    let emu = platform().await;
    let ctx = TestContext::new();
    let out = ctx
        .run_blocking(emu.args(
            "gc",
            ADMIN_TOKEN,
            &["--clusters", "region1", "--dry-run", "-o", "json"],
        ))
        .success();
    let rows: Vec<String> = out.json()["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r["type"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or(""),
                r["cluster"].as_str().unwrap_or("")
            )
        })
        .collect();
    // Plugins live in global, so they wait until global is in scope.
    assert_eq!(
        rows,
        [
            "Artifact opensearch-operator region1",
            "ArtifactVersion opensearch-operator.v2.8.0 region1",
            "ArtifactVersion topolvm-operator.v2.1.0 region1",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_as_a_non_admin_is_refused_with_the_role_hint() {
    let emu = platform().await;
    let ctx = TestContext::new();
    let before = catalog(&emu);
    let out = ctx.run_blocking(emu.args("gc", VIEWER_TOKEN, &[]));
    assert_eq!(out.code, 5, "{out:?}");
    assert!(out.stderr.contains("403 Forbidden"), "{}", out.stderr);
    assert_eq!(out.stderr.matches("hint:").count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("hint: the account needs the platform-admin-system role"),
        "{}",
        out.stderr
    );
    // "No resources were deleted." and what was kept; stderr names a timestamped backup file
    // and the refusals in the order the deletes ran, so it is checked above.
    snap!(ctx, "gc_non_admin", out.stdout.clone());
    assert_eq!(catalog(&emu), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_with_a_rejected_token_stops_before_anything() {
    // The views are read first: without them gc cannot tell what is installed, so it stops.
    let emu = PlatformEmulator::start().await;
    let ctx = TestContext::new();
    let out = ctx.run_blocking(emu.args("gc", "not-a-token", &[]));
    assert_eq!(out.code, 5, "{out:?}");
    // "... rejected the token".
    snap!(ctx, "gc_rejected_token", out.streams());
}

#[test]
fn list_and_gc_need_a_platform_and_have_examples() {
    let ctx = TestContext::new();
    for cmd in ["list", "gc"] {
        let out = ctx.run([cmd]);
        assert_eq!(out.code, 2, "{out:?}");
        assert!(out.stderr.contains("--platform-address"), "{}", out.stderr);
        let help = ctx.run([cmd, "--help"]).success();
        assert!(help.stdout.contains("Examples:"), "{}", help.stdout);
        assert!(help.stdout.contains("--clusters"), "{}", help.stdout);
    }
    let help = ctx.run(["gc", "--help"]).success();
    assert!(help.stdout.contains("--dry-run"));
}

// ---- issue #11: gc never deletes what might be in use, and can be undone; list never passes
// off a partial answer as the whole.

fn rows(out: &Output, key: &str) -> Vec<String> {
    out.json()[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {}", out.stdout))
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r["type"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or(""),
                r["cluster"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// Situation 1: a cluster in scope that cannot be seen (unknown name, a proxy answering 502, a
/// `Failed` phase) stops every delete, names the cluster and why; nothing at all is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_deletes_nothing_while_a_cluster_in_scope_is_unknown() {
    // An unknown cluster name.
    let emu = platform().await;
    let ctx = TestContext::new();
    let before = catalog(&emu);
    let out = ctx.run_blocking(emu.args("gc", ADMIN_TOKEN, &["--clusters", "global,nowhere"]));
    assert_eq!(out.code, 7, "{out:?}");
    // "error: cluster nowhere: cannot rule out that it uses the catalog", hint --skip-unreachable.
    snap!(ctx, "gc_unknown_cluster", out.error());
    assert_eq!(catalog(&emu), before);
    assert!(!emu.requests().iter().any(|r| r.starts_with("DELETE ")));

    // A workload cluster whose proxy answers 502 with an empty body, every time.
    emu.make_sick("region2", 502, None);
    let out = ctx.run_blocking(emu.args("gc", ADMIN_TOKEN, &["--retries", "1"]));
    assert_eq!(out.code, 6, "{out:?}");
    // "cluster region2 is not answering through the platform proxy <url>/kubernetes/region2",
    // with the HTTP 502.
    snap!(ctx, "gc_cluster_502", out.error());
    assert!(!out.stderr.contains("Failed to parse"), "{}", out.stderr);
    assert_eq!(catalog(&emu), before);

    // A cluster the platform reports as Failed (its proxy still answers).
    let emu = platform().await;
    emu.set_cluster_phase("region2", "Failed");
    let before = catalog(&emu);
    let out = ctx.run_blocking(emu.args("gc", ADMIN_TOKEN, &[]));
    assert_eq!(out.code, 7, "{out:?}");
    // "cluster region2: cannot rule out that it uses the catalog: the platform reports the
    // cluster in phase Failed".
    snap!(ctx, "gc_failed_cluster", out.error());
    assert_eq!(catalog(&emu), before);
    // Outside --clusters, a Failed cluster still holds back what is shared with it (plugins on
    // global), but not global's own catalog entries.
    let out = ctx
        .run_blocking(emu.args(
            "gc",
            ADMIN_TOKEN,
            &["--clusters", "global", "--dry-run", "-o", "json"],
        ))
        .success();
    assert_eq!(
        rows(&out, "resources"),
        ["ArtifactVersion topolvm-operator.v2.2.0 global"]
    );
    let kept = rows(&out, "kept");
    assert!(
        kept.contains(&"ModulePlugin unused-plugin global".to_string()),
        "{kept:?}"
    );
    assert!(
        out.stderr
            .contains("warning: cluster region2: cannot rule out"),
        "{}",
        out.stderr
    );
}

/// --skip-unreachable accepts the risk for per-cluster objects of the clusters that answered;
/// shared objects on global stay while any cluster is unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_unreachable_deletes_per_cluster_objects_only() {
    let emu = platform().await;
    emu.make_sick("region2", 503, None);
    let ctx = TestContext::new();
    let before = catalog(&emu);
    let out = ctx.run_blocking(emu.args(
        "gc",
        ADMIN_TOKEN,
        &["--skip-unreachable", "--retries", "0", "-o", "json"],
    ));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("warning: cluster region2: cannot rule out that it uses the catalog"),
        "{}",
        out.stderr
    );
    let after = catalog(&emu);
    let gone: Vec<&String> = before.iter().filter(|l| !after.contains(l)).collect();
    assert_eq!(
        gone,
        [
            "global artifactversions topolvm-operator.v2.2.0",
            "region1 artifacts opensearch-operator",
            "region1 artifactversions opensearch-operator.v2.8.0",
            "region1 artifactversions topolvm-operator.v2.1.0",
        ]
    );
    let kept = rows(&out, "kept");
    for k in [
        "ModulePlugin unused-plugin global",
        "ModuleConfig unused-plugin-v1.0.0 global",
        "ModuleConfig log-center-v1.1.0 global",
    ] {
        assert!(kept.contains(&k.to_string()), "{kept:?}");
    }
}

/// Situation 2 and a stale view: "no view" is not "not installed". The cluster's OLM
/// Subscription (or the platform's ModuleInfo) is the second witness; when they disagree the
/// object stays and the disagreement is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_needs_two_witnesses_for_not_installed() {
    let emu = platform().await;
    let ctx = TestContext::new();
    // The views lag: opensearch gets installed in region1 and a plugin in region2 afterwards.
    emu.freeze_views();
    emu.seed_operator_view(
        "region1",
        "opensearch-operator",
        "Installed",
        "opensearch-operator.v2.8.0",
        "OpenSearch",
    );
    emu.seed_module_info("unused-plugin", "region2", "v1.0.0");
    // And the views do not cover topolvm in global at all, though OLM has it installed.
    let out = ctx
        .run_blocking(emu.args("gc", ADMIN_TOKEN, &["--dry-run", "-o", "json"]))
        .success();
    let resources = rows(&out, "resources");
    assert_eq!(
        resources,
        [
            "ArtifactVersion topolvm-operator.v2.2.0 global",
            "ArtifactVersion topolvm-operator.v2.1.0 region1",
            "ModuleConfig log-center-v1.1.0 global",
        ]
    );
    let kept = out.json()["kept"].clone();
    let reason = |name: &str| {
        kept.as_array()
            .and_then(|a| a.iter().find(|k| k["name"] == name))
            .and_then(|k| k["reason"].as_str())
            .unwrap_or("")
            .to_string()
    };
    assert!(
        reason("opensearch-operator").contains("views and cluster disagree")
            && reason("opensearch-operator").contains("Subscription operators/opensearch-operator"),
        "{kept}"
    );
    assert!(
        reason("unused-plugin").contains("ModuleInfo records one in cluster region2"),
        "{kept}"
    );

    // A view missing for an installed operator (a catalog the views do not cover).
    let emu = platform().await;
    emu.hide_operator_view("global", "topolvm-operator");
    let out = ctx
        .run_blocking(emu.args("gc", ADMIN_TOKEN, &["--dry-run", "-o", "json"]))
        .success();
    let resources = rows(&out, "resources");
    assert!(
        !resources
            .iter()
            .any(|r| r.contains("topolvm-operator") && r.ends_with("global")),
        "{resources:?}"
    );
    assert!(
        rows(&out, "kept").contains(&"Artifact topolvm-operator global".to_string()),
        "{}",
        out.stdout
    );
}

/// Situation 3: installed at a version whose ArtifactVersion is gone, the newest version stays,
/// so the operator never drops out of the catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_never_empties_an_installed_operators_catalog_entry() {
    let emu = platform().await;
    emu.remove(
        "region1",
        "artifactversions",
        "cpaas-system",
        "topolvm-operator.v2.2.0",
    );
    let ctx = TestContext::new();
    ctx.run_blocking(emu.args("gc", ADMIN_TOKEN, &["--backup", "-"]))
        .success();
    assert_eq!(
        names(&emu, "region1", "artifactversions"),
        ["topolvm-operator.v2.1.0"]
    );
    assert_eq!(names(&emu, "region1", "artifacts"), ["topolvm-operator"]);
}

/// Situation 4: objects without `cpaas.io/managed-by: violet` stay unless --include-unmanaged,
/// and the dry run marks them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_leaves_unmanaged_objects_unless_asked() {
    let emu = platform().await;
    emu.seed(
        "region1",
        "artifacts",
        "cpaas-system",
        json!({
            "apiVersion": "app.alauda.io/v1alpha1", "kind": "Artifact",
            "metadata": { "name": "installer-operator", "namespace": "cpaas-system", "labels": { "cpaas.io/type": "bundle" } },
            "spec": { "type": "bundle", "present": true, "registry": "10.0.0.1:11443", "repository": "acp/installer-bundle",
                      "artifactVersionSelector": { "matchLabels": { "cpaas.io/artifact-version": "installer-operator" } } },
        }),
    );
    let ctx = TestContext::new();
    let out = ctx
        .run_blocking(emu.args("gc", ADMIN_TOKEN, &["--dry-run", "-o", "json"]))
        .success();
    assert!(!rows(&out, "resources").contains(&"Artifact installer-operator region1".to_string()));
    assert!(
        out.stdout.contains("not managed by violet"),
        "{}",
        out.stdout
    );
    let out = ctx
        .run_blocking(emu.args("gc", ADMIN_TOKEN, &["--dry-run", "--include-unmanaged"]))
        .success();
    // The plan marks installer-operator [UNMANAGED ...].
    snap!(ctx, "gc_dry_run_include_unmanaged", out.streams());
    ctx.run_blocking(emu.args("gc", ADMIN_TOKEN, &["--include-unmanaged", "--backup", "-"]))
        .success();
    assert!(!names(&emu, "region1", "artifacts").contains(&"installer-operator".to_string()));
}

/// Undo and preconditions: the backup names every deleted object and, re-applied, restores them
/// exactly; an object changed between plan and delete is kept and reported; a second gc is a no-op.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_backup_restores_and_changed_objects_are_kept() {
    let emu = platform().await;
    let ctx = TestContext::new();
    let before_objects: Vec<(String, Value)> = all_objects(&emu);

    // Someone changes region1's ArtifactVersions right after gc has read them.
    emu.touch_after_list("region1", "artifactversions");
    let out = ctx
        .run_blocking(emu.args("gc", ADMIN_TOKEN, &["--backup", "undo.yaml", "-o", "json"]))
        .success();
    assert!(
        out.stderr
            .contains("Backup of the 7 object(s) to delete: undo.yaml"),
        "{}",
        out.stderr
    );
    let kept = rows(&out, "kept");
    assert_eq!(
        kept,
        [
            "Artifact opensearch-operator region1",
            "ArtifactVersion opensearch-operator.v2.8.0 region1",
            "ArtifactVersion topolvm-operator.v2.1.0 region1",
        ],
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("precondition failed"), "{}", out.stdout);
    assert!(
        names(&emu, "region1", "artifactversions")
            .contains(&"opensearch-operator.v2.8.0".to_string())
    );
    assert!(names(&emu, "region1", "artifacts").contains(&"opensearch-operator".to_string()));
    let deleted = rows(&out, "resources");
    assert_eq!(deleted.len(), 4, "{deleted:?}");

    // The backup, re-applied through the API (as kubectl apply -f would), restores them.
    let backup = std::fs::read_to_string(ctx.path().join("undo.yaml")).expect("backup");
    assert!(
        !backup.contains("resourceVersion") && !backup.contains("uid:"),
        "{backup}"
    );
    let http = reqwest::Client::new();
    let mut cluster = String::new();
    for part in backup.split("\n---\n").flat_map(|p| p.split("---\n")) {
        for line in part.lines() {
            if let Some(c) = line.strip_prefix("# cluster: ") {
                cluster = c.to_string();
            }
        }
        let Ok(doc) = serde_saphyr::from_str::<Value>(part) else {
            continue;
        };
        if doc.is_null() || doc.get("kind").is_none() {
            continue;
        }
        let (path, ns) = match doc["kind"].as_str().unwrap_or("") {
            "Artifact" => ("apis/app.alauda.io/v1alpha1", "artifacts"),
            "ArtifactVersion" => ("apis/app.alauda.io/v1alpha1", "artifactversions"),
            "ModulePlugin" => ("apis/cluster.alauda.io/v1alpha1", "moduleplugins"),
            "ModuleConfig" => ("apis/cluster.alauda.io/v1alpha1", "moduleconfigs"),
            other => panic!("unexpected kind {other}"),
        };
        let url = match doc["metadata"]["namespace"].as_str() {
            Some(n) => format!(
                "{}/kubernetes/{cluster}/{path}/namespaces/{n}/{ns}",
                emu.url
            ),
            None => format!("{}/kubernetes/{cluster}/{path}/{ns}", emu.url),
        };
        let r = http
            .post(url)
            .bearer_auth(ADMIN_TOKEN)
            .json(&doc)
            .send()
            .await
            .expect("post");
        assert!(
            r.status().is_success(),
            "{}",
            r.text().await.unwrap_or_default()
        );
    }
    let restored = all_objects(&emu);
    for (key, obj) in &before_objects {
        let now = restored
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("{key} not restored"));
        for f in ["spec", "kind", "apiVersion"] {
            assert_eq!(now.1[f], obj[f], "{key} {f}");
        }
        for f in ["labels", "annotations"] {
            let mut want = obj["metadata"][f].clone();
            if let Some(m) = want.as_object_mut() {
                m.remove("emulator/touched-by");
            }
            let mut got = now.1["metadata"][f].clone();
            if let Some(m) = got.as_object_mut() {
                m.remove("emulator/touched-by");
            }
            assert_eq!(got, want, "{key} {f}");
        }
    }

    // After restoring, gc plans the same again; a gc right after a full gc is a no-op.
    let emu = platform().await;
    ctx.run_blocking(emu.args("gc", ADMIN_TOKEN, &["--backup", "-"]))
        .success();
    let out = ctx.run_blocking(emu.args("gc", ADMIN_TOKEN, &[])).success();
    assert_eq!(out.stdout, "No resources were deleted.\n");
    assert!(!out.stderr.contains("Backup"), "{}", out.stderr);
}

fn all_objects(emu: &PlatformEmulator) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for cluster in ["global", "region1", "region2"] {
        for plural in [
            "artifacts",
            "artifactversions",
            "moduleplugins",
            "moduleconfigs",
        ] {
            for o in emu.objects(cluster, plural) {
                let name = o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                out.push((format!("{cluster} {plural} {name}"), o));
            }
        }
    }
    out
}

/// Situation 5: a cluster answering 503 is waited for visibly and boundedly (--retries), then
/// reported by name with the proxy; the same holds for list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sick_clusters_are_waited_for_visibly_and_boundedly() {
    let emu = platform().await;
    let ctx = TestContext::new();
    // Two 503s, then the cluster recovers: gc waits, says so, and goes on.
    emu.make_sick("region1", 503, Some(2));
    let out = ctx
        .run_blocking(emu.args("gc", ADMIN_TOKEN, &["--dry-run", "--retries", "3"]))
        .success();
    assert_eq!(
        out.stderr
            .matches("waiting: cluster region1 answered HTTP 503 through the platform proxy")
            .count(),
        2,
        "{}",
        out.stderr
    );
    // 504 for good: at most --retries retries, then one clear error.
    emu.make_sick("region1", 504, None);
    emu.clear_requests();
    let out = ctx.run_blocking(emu.args("gc", ADMIN_TOKEN, &["--dry-run", "--retries", "2"]));
    assert_eq!(out.code, 6, "{out:?}");
    assert_eq!(
        out.stderr.matches("waiting: cluster region1").count(),
        2,
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("after 3 attempt(s)"), "{}", out.stderr);
    let tries = emu
        .requests()
        .iter()
        .filter(|r| r.contains("/kubernetes/region1/"))
        .count();
    assert_eq!(tries, 3, "{:?}", emu.requests());
}

/// Situation 6: list marks a cluster it cannot read fully, in YAML, JSON and apps.yaml, and
/// exits non-zero unless --allow-partial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_marks_a_partial_answer() {
    let emu = platform().await;
    emu.make_sick("region1", 502, None);
    let ctx = TestContext::new();
    let base = emu.args("list", ADMIN_TOKEN, &["--retries", "0"]);
    let out = ctx.run_blocking(&base);
    assert_eq!(out.code, 6, "{out:?}");
    // "# INCOMPLETE: cluster region1 could not be read fully" first, the `incomplete:` list,
    // and "error: the list is incomplete for cluster region1".
    snap!(ctx, "list_incomplete", out.streams());
    let file = std::fs::read_to_string(ctx.path().join("apps.yaml")).expect("apps.yaml");
    assert_eq!(file, out.stdout);

    let mut json_args = base.to_vec();
    json_args.extend(["-o", "json", "--output-file", "-"]);
    let out = ctx.run_blocking(&json_args);
    assert_eq!(out.code, 6, "{out:?}");
    assert_eq!(out.json()["incomplete"][0]["cluster"], "region1");

    let mut allow = base.to_vec();
    allow.push("--allow-partial");
    let out = ctx.run_blocking(&allow).success();
    // The same list, and "warning: the list is incomplete".
    snap!(ctx, "list_incomplete_allowed", out.streams());

    // A Failed cluster is marked too, even when it answers.
    let emu = platform().await;
    emu.set_cluster_phase("region2", "Failed");
    let out = ctx.run_blocking(emu.args("list", ADMIN_TOKEN, &["--output-file", "-"]));
    assert_eq!(out.code, 7, "{out:?}");
    // region2 marked incomplete.
    snap!(ctx, "list_failed_cluster", out.streams());
}
