//! `violet list` and `violet gc` against the platform emulator: the documented apps.yaml, what gc
//! deletes (and keeps), --dry-run, the empty case and a non-admin account.

use serde_json::json;

use crate::support::platform::{ADMIN_TOKEN, PlatformEmulator, VIEWER_TOKEN};
use crate::support::{Output, TestContext};

/// Runs the binary from inside the multi-threaded test runtime, so the emulator keeps serving.
fn violet(ctx: &TestContext, args: &[&str]) -> Output {
    tokio::task::block_in_place(|| ctx.run(args))
}

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
    let out = violet(
        &ctx,
        &[
            "list",
            "--platform-address",
            &emu.url,
            "--platform-token",
            ADMIN_TOKEN,
        ],
    )
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
    let out = violet(
        &ctx,
        &[
            "list",
            "--platform-address",
            &emu.url,
            "--platform-token",
            ADMIN_TOKEN,
            "--clusters",
            "region1",
            "-o",
            "json",
            "--output-file",
            "region1.yaml",
        ],
    )
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
    violet(
        &ctx2,
        &[
            "list",
            "--platform-address",
            &emu.url,
            "--platform-token",
            ADMIN_TOKEN,
            "--output-file",
            "-",
        ],
    )
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
    let base = [
        "list",
        "--platform-address",
        &emu.url,
        "--platform-token",
        ADMIN_TOKEN,
    ];
    let out = violet(&ctx, &base).success();
    ctx.insta_settings().bind(|| {
        insta::assert_snapshot!(
            "list_with_charts",
            format!("{}--- stderr\n{}", out.stdout, out.stderr)
        )
    });
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
    let out = violet(&ctx, &args).success();
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
    let out = violet(&ctx, &args).success();
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
    let out = violet(
        &ctx,
        &[
            "list",
            "--platform-address",
            &emu.url,
            "--platform-token",
            VIEWER_TOKEN,
        ],
    );
    assert_eq!(out.code, 5, "{out:?}");
    assert!(out.stderr.contains("403 Forbidden"), "{}", out.stderr);
    assert!(out.stderr.contains("cluster region1"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("hint: the account needs the platform-admin-system role"),
        "{}",
        out.stderr
    );
    // A partial list is not written as if it were the whole.
    assert!(!ctx.path().join("apps.yaml").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_dry_run_then_gc_deletes_exactly_the_candidates() {
    let emu = platform().await;
    let ctx = TestContext::new();
    let before = catalog(&emu);
    let args = [
        "gc",
        "--platform-address",
        &emu.url,
        "--platform-token",
        ADMIN_TOKEN,
    ];

    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let out = violet(&ctx, &dry).success();
    assert_eq!(catalog(&emu), before, "--dry-run deleted something");
    assert!(!emu.requests().iter().any(|r| r.starts_with("DELETE ")));
    ctx.insta_settings()
        .bind(|| insta::assert_snapshot!("gc_dry_run", out.stdout));

    let out = violet(&ctx, &args).success();
    ctx.insta_settings()
        .bind(|| insta::assert_snapshot!("gc_summary", out.stdout));
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
    let out = violet(&ctx, &args).success();
    assert_eq!(out.stdout, "No resources were deleted.\n");

    // JSON form of the same.
    let out = violet(
        &ctx,
        &[
            "gc",
            "--platform-address",
            &emu.url,
            "--platform-token",
            ADMIN_TOKEN,
            "-o",
            "json",
        ],
    )
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
    let out = violet(
        &ctx,
        &[
            "gc",
            "--platform-address",
            &emu.url,
            "--platform-token",
            ADMIN_TOKEN,
            "--clusters",
            "region1",
            "--dry-run",
            "-o",
            "json",
        ],
    )
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
    let out = violet(
        &ctx,
        &[
            "gc",
            "--platform-address",
            &emu.url,
            "--platform-token",
            VIEWER_TOKEN,
        ],
    );
    assert_eq!(out.code, 5, "{out:?}");
    assert!(out.stderr.contains("403 Forbidden"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("hint: the account needs the platform-admin-system role"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.matches("hint:").count(), 1, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("No resources were deleted.\n"),
        "{}",
        out.stdout
    );
    assert_eq!(catalog(&emu), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_with_a_rejected_token_stops_before_anything() {
    // The views are read first: without them gc cannot tell what is installed, so it stops.
    let emu = PlatformEmulator::start().await;
    let ctx = TestContext::new();
    let out = violet(
        &ctx,
        &[
            "gc",
            "--platform-address",
            &emu.url,
            "--platform-token",
            "not-a-token",
        ],
    );
    assert_eq!(out.code, 5, "{out:?}");
    assert!(out.stderr.contains("rejected the token"), "{}", out.stderr);
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
