//! The platform side against the emulator: login, errors, catalog CRs and their idempotence.

use serde_json::{Value, json};
use violet::error::{ExitCode, UserError};
use violet::package::metadata::OperatorInfo;
use violet::package::{Metadata, PackageType};
use violet::platform::crs::{CatalogInputs, CatalogPlan, PushedArtifact};
use violet::platform::target::{PlatformAuth, Target, normalize_address};
use violet::platform::{
    ApplyOptions, Platform, PlatformError, TlsOptions, WriteAction, WriteReport, crs_out, publish,
};
use violet::registry::Credentials;

use crate::support::platform::{ADMIN, ADMIN_TOKEN, PlatformEmulator, VIEWER, VIEWER_TOKEN};
use crate::support::{TestContext, shown};

fn password_args(url: &str, user: &str, password: &str) -> Target {
    Target::Platform {
        address: normalize_address(url).expect("address"),
        auth: PlatformAuth::Password {
            username: user.into(),
            password: password.into(),
        },
        client_id: "alauda-auth".into(),
    }
}

fn token_args(url: &str, token: &str) -> Target {
    Target::Platform {
        address: normalize_address(url).expect("address"),
        auth: PlatformAuth::Token(token.into()),
        client_id: "alauda-auth".into(),
    }
}

async fn connect(target: &Target) -> Result<Platform, PlatformError> {
    Platform::connect(target.clone(), &TlsOptions::default()).await
}

fn bundle(version: &str) -> Metadata {
    Metadata {
        name: Some("topolvm-operator".into()),
        package_type: Some(PackageType::Bundle),
        version: Some(version.into()),
        channels: vec!["stable".into()],
        default_channel: Some("stable".into()),
        artifact: Some(format!(
            "build.example.com/acp/topolvm-operator-bundle:{version}"
        )),
        operator: Some(OperatorInfo {
            csv_name: Some(format!("topolvm-operator.{version}")),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn plan(md: &Metadata, registry: &str, clusters: &[&str]) -> CatalogPlan {
    let inputs = CatalogInputs {
        artifact: PushedArtifact::relocated(md.artifact.as_deref().unwrap_or_default(), registry)
            .expect("reference"),
        catalog_source: None,
        chart_repo: None,
        clusters: clusters.iter().map(|s| s.to_string()).collect(),
    };
    CatalogPlan::from_metadata("pkg.tgz", md, &inputs).expect("plan")
}

fn lines(reports: &[WriteReport]) -> Vec<String> {
    reports.iter().map(WriteReport::line).collect()
}

fn writes(emu: &PlatformEmulator) -> Vec<String> {
    emu.requests()
        .into_iter()
        .filter(|r| !r.starts_with("GET "))
        .collect()
}

#[tokio::test]
async fn password_login_create_rerun_unchanged_then_update() {
    let emu = PlatformEmulator::start().await;
    let platform = connect(&password_args(&emu.url, ADMIN.0, ADMIN.1))
        .await
        .expect("login");
    let login: Vec<String> = emu
        .requests()
        .iter()
        .map(|r| r.split('?').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        login,
        [
            "GET /console-platform/api/v1/token/login",
            "GET /dex/api/v1/authorize",
            "GET /dex/pubkey",
            "POST /dex/api/v1/authorize/local",
            "GET /console-platform/api/v1/token/callback",
        ]
    );

    let p = plan(&bundle("v2.3.0"), "10.0.0.1:11443", &[]);
    let opts = ApplyOptions::default();
    let first = publish(&platform, &p, &opts).await.expect("publish");
    assert_eq!(
        lines(&first),
        [
            "cluster global: Artifact cpaas-system/topolvm-operator created",
            "cluster global: ArtifactVersion cpaas-system/topolvm-operator.v2.3.0 created",
        ]
    );
    let artifact = emu
        .object("global", "artifacts", "cpaas-system", "topolvm-operator")
        .expect("artifact");
    let av = emu
        .object(
            "global",
            "artifactversions",
            "cpaas-system",
            "topolvm-operator.v2.3.0",
        )
        .expect("av");
    assert_eq!(
        av["metadata"]["ownerReferences"][0]["uid"],
        artifact["metadata"]["uid"]
    );
    assert_eq!(av["status"]["phase"], "Present", "{av}");
    assert_eq!(artifact["spec"]["registry"], "10.0.0.1:11443");
    assert_eq!(
        artifact["spec"]["repository"],
        "acp/topolvm-operator-bundle"
    );
    assert_eq!(av["spec"]["tag"], "v2.3.0");

    emu.clear_requests();
    let again = publish(&platform, &p, &opts).await.expect("rerun");
    assert!(
        again.iter().all(|r| r.action == WriteAction::Unchanged),
        "{:?}",
        lines(&again)
    );
    assert!(writes(&emu).is_empty(), "{:?}", writes(&emu));

    // The same package pushed to another registry: the Artifact moves, the version stays.
    let moved = publish(
        &platform,
        &plan(&bundle("v2.3.0"), "10.0.0.2:11443", &[]),
        &opts,
    )
    .await
    .expect("update");
    assert_eq!(
        moved.iter().map(|r| r.action).collect::<Vec<_>>(),
        [WriteAction::Updated, WriteAction::Unchanged]
    );
    let artifact = emu
        .object("global", "artifacts", "cpaas-system", "topolvm-operator")
        .expect("artifact");
    assert_eq!(artifact["spec"]["registry"], "10.0.0.2:11443");

    // --force rewrites everything.
    let forced = publish(
        &platform,
        &p,
        &ApplyOptions {
            force: true,
            ..opts
        },
    )
    .await
    .expect("force");
    assert!(
        forced.iter().all(|r| r.action == WriteAction::Updated),
        "{:?}",
        lines(&forced)
    );
}

#[tokio::test]
async fn wrong_password_is_one_clear_auth_error_without_the_password() {
    let emu = PlatformEmulator::start().await;
    let err = connect(&password_args(&emu.url, ADMIN.0, "not-the-pass-xyz"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PlatformError::BadCredentials { .. }),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), ExitCode::Auth);
    let text = shown(&err);
    assert!(!text.contains("not-the-pass-xyz"), "{text}");
    // "wrong username or password".
    snap!(TestContext::new(), "wrong_password", text);
}

#[tokio::test]
async fn token_and_non_admin_forbidden() {
    let emu = PlatformEmulator::start().await;
    let p = plan(&bundle("v1.0.0"), "10.0.0.1:11443", &[]);

    let bad = connect(&token_args(&emu.url, "nope"))
        .await
        .expect("no login with a token");
    let err = publish(&bad, &p, &ApplyOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, PlatformError::BadToken { .. }), "{err:?}");
    assert!(!err.to_string().contains("nope"));

    let viewer = connect(&token_args(&emu.url, VIEWER_TOKEN))
        .await
        .expect("connect");
    let err = publish(&viewer, &p, &ApplyOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Auth);
    // A 403 on create, with the platform-admin-system role hint.
    snap!(TestContext::new(), "viewer_forbidden", shown(&err));

    // Password login of the non-admin works; writing does not.
    let viewer = connect(&password_args(&emu.url, VIEWER.0, VIEWER.1))
        .await
        .expect("login");
    assert!(matches!(
        publish(&viewer, &p, &ApplyOptions::default()).await,
        Err(PlatformError::Forbidden { .. })
    ));
}

#[tokio::test]
async fn unknown_cluster_and_two_clusters() {
    let emu = PlatformEmulator::start().await;
    let platform = connect(&token_args(&emu.url, ADMIN_TOKEN))
        .await
        .expect("connect");
    let err = publish(
        &platform,
        &plan(&bundle("v1.0.0"), "r.local", &["nowhere"]),
        &ApplyOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cluster \"nowhere\" is not known to platform {}", emu.url)
    );
    assert_eq!(err.exit_code(), ExitCode::Remote);

    let reports = publish(
        &platform,
        &plan(&bundle("v1.0.0"), "r.local", &["global", "region1"]),
        &ApplyOptions::default(),
    )
    .await
    .expect("publish");
    assert_eq!(reports.len(), 4);
    for cluster in ["global", "region1"] {
        let a = emu
            .object(cluster, "artifacts", "cpaas-system", "topolvm-operator")
            .expect("artifact");
        let v = emu
            .object(
                cluster,
                "artifactversions",
                "cpaas-system",
                "topolvm-operator.v1.0.0",
            )
            .expect("av");
        // Each cluster's version is owned by that cluster's Artifact.
        assert_eq!(
            v["metadata"]["ownerReferences"][0]["uid"],
            a["metadata"]["uid"]
        );
    }
    assert!(emu.objects("region2", "artifacts").is_empty());
}

#[tokio::test]
async fn unreachable_platform() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let err = connect(&password_args(&format!("http://{addr}"), ADMIN.0, ADMIN.1))
        .await
        .unwrap_err();
    assert!(matches!(err, PlatformError::Unreachable { .. }), "{err:?}");
    assert_eq!(err.exit_code(), ExitCode::Network);
}

#[tokio::test]
async fn conflicts_are_retried_on_a_fresh_read() {
    let emu = PlatformEmulator::start().await;
    let platform = connect(&token_args(&emu.url, ADMIN_TOKEN))
        .await
        .expect("connect");
    publish(
        &platform,
        &plan(&bundle("v1.0.0"), "r.local", &[]),
        &ApplyOptions::default(),
    )
    .await
    .expect("create");
    emu.race_after_get("global", "artifacts", "cpaas-system", "topolvm-operator", 2);
    emu.clear_requests();
    let reports = publish(
        &platform,
        &plan(&bundle("v1.0.0"), "r2.local", &[]),
        &ApplyOptions::default(),
    )
    .await
    .expect("update");
    assert_eq!(reports[0].action, WriteAction::Updated);
    let puts = writes(&emu)
        .into_iter()
        .filter(|r| r.contains("/artifacts/"))
        .count();
    assert_eq!(puts, 3, "two stale writes, then one that lands");
    let a = emu
        .object("global", "artifacts", "cpaas-system", "topolvm-operator")
        .expect("artifact");
    assert_eq!(a["spec"]["registry"], "r2.local");
    assert_eq!(
        a["metadata"]["annotations"]["emulator/touched-by"], "someone-else",
        "the other writer's change survives"
    );

    // A writer that never stops wins in the end, with a clear error.
    emu.race_after_get(
        "global",
        "artifacts",
        "cpaas-system",
        "topolvm-operator",
        100,
    );
    let err = publish(
        &platform,
        &plan(&bundle("v1.0.0"), "r3.local", &[]),
        &ApplyOptions {
            conflict_retries: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    // "still conflicting after 3 attempts".
    snap!(TestContext::new(), "conflicts_spent", shown(&err));
}

#[tokio::test]
async fn dry_run_writes_nothing_and_shows_diffs() {
    let emu = PlatformEmulator::start().await;
    let platform = connect(&token_args(&emu.url, ADMIN_TOKEN))
        .await
        .expect("connect");
    let dry = ApplyOptions {
        dry_run: true,
        ..Default::default()
    };
    let reports = publish(&platform, &plan(&bundle("v1.0.0"), "r.local", &[]), &dry)
        .await
        .expect("dry run");
    assert_eq!(
        reports.iter().map(|r| r.action).collect::<Vec<_>>(),
        [WriteAction::WouldCreate, WriteAction::WouldCreate]
    );
    // The whole Artifact as added lines, "+  registry: r.local" among them.
    let ctx = TestContext::new();
    snap!(
        ctx,
        "dry_run_create_diff",
        reports[0].diff.clone().unwrap_or_default()
    );
    assert!(writes(&emu).is_empty());

    publish(
        &platform,
        &plan(&bundle("v1.0.0"), "r.local", &[]),
        &ApplyOptions::default(),
    )
    .await
    .expect("create");
    emu.clear_requests();
    let reports = publish(&platform, &plan(&bundle("v1.0.0"), "r2.local", &[]), &dry)
        .await
        .expect("dry run");
    assert_eq!(reports[0].action, WriteAction::WouldUpdate);
    // "-  registry: r.local" then "+  registry: r2.local".
    snap!(
        ctx,
        "dry_run_update_diff",
        reports[0].diff.clone().unwrap_or_default()
    );
    assert_eq!(reports[1].action, WriteAction::Unchanged);
    assert!(writes(&emu).is_empty());
}

#[tokio::test]
async fn plugin_module_plugin_and_chart() {
    let emu = PlatformEmulator::start().await;
    let platform = connect(&token_args(&emu.url, ADMIN_TOKEN))
        .await
        .expect("connect");
    let plugin = Metadata {
        name: Some("web-cli".into()),
        package_type: Some(PackageType::Plugin),
        version: Some("v4.0.4".into()),
        artifact: Some("build.example.com/acp/chart-web-cli:v4.0.4".into()),
        module_plugin: Some(json!({
            "apiVersion": "cluster.alauda.io/v1alpha1", "kind": "ModulePlugin",
            "metadata": { "name": "web-cli", "labels": { "cpaas.io/module-name": "web-cli" } },
            "spec": { "name": "web-cli", "mainChart": "build.example.com/acp/chart-web-cli", "deleteable": true,
                      "description": { "en": "Web CLI" }, "logo": "" },
        })),
        ..Default::default()
    };
    let p = plan(&plugin, "10.0.0.1:11443", &["region1"]);
    assert!(
        p.warnings[0].contains("--clusters region1 ignored"),
        "{:?}",
        p.warnings
    );
    let reports = publish(&platform, &p, &ApplyOptions::default())
        .await
        .expect("plugin");
    assert_eq!(
        lines(&reports),
        ["cluster global: ModulePlugin web-cli created"]
    );
    let mp = emu
        .object("global", "moduleplugins", "", "web-cli")
        .expect("moduleplugin");
    assert_eq!(mp["spec"]["mainChart"], "10.0.0.1:11443/acp/chart-web-cli");
    assert_eq!(mp["metadata"]["labels"]["cpaas.io/managed-by"], "violet");
    assert!(emu.objects("region1", "moduleplugins").is_empty());
    let again = publish(&platform, &p, &ApplyOptions::default())
        .await
        .expect("plugin again");
    assert_eq!(again[0].action, WriteAction::Unchanged);

    let chart = Metadata {
        name: Some("chartmuseum".into()),
        package_type: Some(PackageType::Chart),
        version: Some("v3.16.1".into()),
        artifact: Some("build.example.com/charts/chartmuseum:v3.16.1".into()),
        ..Default::default()
    };
    let inputs = CatalogInputs {
        artifact: PushedArtifact::relocated(
            "build.example.com/charts/chartmuseum:v3.16.1",
            "10.0.0.1:11443",
        )
        .expect("ref"),
        catalog_source: None,
        chart_repo: Some("my-charts".into()),
        clusters: vec![],
    };
    let p = CatalogPlan::from_metadata("chart.tgz", &chart, &inputs).expect("plan");
    publish(&platform, &p, &ApplyOptions::default())
        .await
        .expect("chart");
    let av = emu
        .object(
            "global",
            "artifactversions",
            "cpaas-system",
            "chartmuseum.v3.16.1",
        )
        .expect("chart av");
    assert_eq!(av["metadata"]["labels"]["cpaas.io/chart-repo"], "my-charts");
    assert_eq!(av["metadata"]["labels"]["cpaas.io/type"], "chart");
}

#[tokio::test]
async fn marketplace_fails_versions_without_owner_or_image() {
    let emu = PlatformEmulator::start().await;
    let http = reqwest::Client::new();
    let av = json!({
        "apiVersion": "app.alauda.io/v1alpha1", "kind": "ArtifactVersion",
        "metadata": { "name": "x.v1", "namespace": "cpaas-system" }, "spec": { "present": true, "tag": "v1" },
    });
    let r = http
        .post(format!("{}/kubernetes/global/apis/app.alauda.io/v1alpha1/namespaces/cpaas-system/artifactversions", emu.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&av)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 201);
    let stored = emu
        .object("global", "artifactversions", "cpaas-system", "x.v1")
        .expect("av");
    assert_eq!(
        stored["status"],
        json!({"phase": "Failed", "reason": "Failed", "message": "aritfactVersion not have OwnerReference"})
    );
    let again = http
        .post(format!("{}/kubernetes/global/apis/app.alauda.io/v1alpha1/namespaces/cpaas-system/artifactversions", emu.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&av)
        .send()
        .await
        .expect("post");
    assert_eq!(again.status(), 409);
    let body: Value = again.json().await.expect("status");
    assert_eq!(body["reason"], "AlreadyExists");

    // With a registry to check, an image that is not there fails the version.
    emu.set_registry("http://127.0.0.1:9");
    let platform = connect(&token_args(&emu.url, ADMIN_TOKEN))
        .await
        .expect("connect");
    publish(
        &platform,
        &plan(&bundle("v1.0.0"), "127.0.0.1:9", &[]),
        &ApplyOptions::default(),
    )
    .await
    .expect("publish");
    let stored = emu
        .object(
            "global",
            "artifactversions",
            "cpaas-system",
            "topolvm-operator.v1.0.0",
        )
        .expect("av");
    assert_eq!(stored["status"]["phase"], "Failed");
    assert_eq!(
        stored["status"]["message"],
        "image 127.0.0.1:9/acp/topolvm-operator-bundle:v1.0.0 not found"
    );
}

#[tokio::test]
async fn registry_discovery() {
    let emu = PlatformEmulator::start().await;
    let platform = connect(&token_args(&emu.url, ADMIN_TOKEN))
        .await
        .expect("connect");
    let err = platform.discover_registry().await.unwrap_err();
    // ProductBase "base" not found, hint --dest-repo.
    snap!(TestContext::new(), "no_product_base", shown(&err));
    emu.seed_product_base("192.168.1.10:11443");
    let (host, creds) = platform.discover_registry().await.expect("anonymous");
    assert_eq!(host, "192.168.1.10:11443");
    assert!(matches!(creds, Credentials::Anonymous));
    emu.seed_registry_secret("registry-user", "registry-pass");
    match platform.discover_registry().await.expect("discover") {
        (_, Credentials::Basic { username, password }) => assert_eq!(
            (username.as_str(), password.as_str()),
            ("registry-user", "registry-pass")
        ),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn crs_out_writes_one_file_per_object() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = crs_out(
        dir.path(),
        &plan(&bundle("v1.0.0"), "r.local", &["global", "region1"]),
    )
    .expect("write");
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            f.strip_prefix(dir.path())
                .unwrap_or(f)
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(
        names,
        [
            "global/artifact-topolvm-operator.yaml",
            "global/artifactversion-topolvm-operator.v1.0.0.yaml",
            "region1/artifact-topolvm-operator.yaml",
            "region1/artifactversion-topolvm-operator.v1.0.0.yaml",
        ]
    );
    let text = std::fs::read_to_string(&files[1]).expect("read");
    let back: Value = serde_saphyr::from_str(&text).expect("yaml");
    assert_eq!(back["kind"], "ArtifactVersion");
    assert_eq!(
        back["metadata"]["labels"]["cpaas.io/artifact-version"],
        "topolvm-operator"
    );
}

#[tokio::test]
async fn self_signed_platform_needs_ca_file_or_insecure() {
    let emu = PlatformEmulator::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, ca) = emu.tls_front(dir.path()).await;

    let err = connect(&password_args(&url, ADMIN.0, ADMIN.1))
        .await
        .unwrap_err();
    assert!(matches!(err, PlatformError::Tls { .. }), "{err:?}");
    assert_eq!(err.exit_code(), ExitCode::Network);
    // The hint names the self-signed certificate and both remedies.
    snap!(TestContext::new(), "self_signed", shown(&err));

    let tls = TlsOptions {
        ca_files: vec![ca],
        insecure: false,
    };
    let platform = Platform::connect(password_args(&url, ADMIN.0, ADMIN.1), &tls)
        .await
        .expect("login with CA");
    let reports = publish(
        &platform,
        &plan(&bundle("v1.0.0"), "r.local", &[]),
        &ApplyOptions::default(),
    )
    .await
    .expect("publish over TLS");
    assert_eq!(reports[0].action, WriteAction::Created);

    let insecure = TlsOptions {
        ca_files: vec![],
        insecure: true,
    };
    let token = Platform::connect(token_args(&url, ADMIN_TOKEN), &insecure)
        .await
        .expect("connect");
    let again = publish(
        &token,
        &plan(&bundle("v1.0.0"), "r.local", &[]),
        &ApplyOptions::default(),
    )
    .await
    .expect("insecure");
    assert_eq!(again[0].action, WriteAction::Unchanged);
}

#[tokio::test]
async fn kubeconfig_contexts_name_clusters() {
    let emu = PlatformEmulator::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("config");
    let cluster = |name: &str| {
        format!(
            "- name: {name}\n  cluster:\n    server: {}/kubernetes/{name}\n",
            emu.url
        )
    };
    let context = |name: &str, cluster: &str| {
        format!("- name: {name}\n  context:\n    cluster: {cluster}\n    user: admin\n")
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n{}{}contexts:\n{}{}current-context: region1\nusers:\n- name: admin\n  user:\n    token: {ADMIN_TOKEN}\n",
        cluster("global"),
        cluster("region1"),
        context("acp-global", "global"),
        context("region1", "region1"),
    );
    std::fs::write(&kubeconfig, text).expect("write kubeconfig");
    let args = Target::Kubeconfig {
        path: kubeconfig,
        context: Some("acp-global".into()),
    };
    let platform = connect(&args).await.expect("kubeconfig");
    let p = plan(&bundle("v1.0.0"), "r.local", &["global", "region1"]);
    publish(&platform, &p, &ApplyOptions::default())
        .await
        .expect("publish");
    assert!(
        emu.object("global", "artifacts", "cpaas-system", "topolvm-operator")
            .is_some()
    );
    assert!(
        emu.object("region1", "artifacts", "cpaas-system", "topolvm-operator")
            .is_some()
    );

    let err = publish(
        &platform,
        &plan(&bundle("v1.0.0"), "r.local", &["region9"]),
        &ApplyOptions::default(),
    )
    .await
    .unwrap_err();
    // no context named "region9".
    snap!(
        TestContext::new(),
        "kubeconfig_unknown_context",
        shown(&err),
        [(r"kubeconfig \S+/config:", "kubeconfig [TMP]/config:")]
    );
}

/// Issue #10 item 19: every platform request says who it is, and every write names violet as
/// its field manager, so the platform's audit log and managedFields attribute them.
#[tokio::test]
async fn requests_carry_the_user_agent_and_writes_the_field_manager() {
    let emu = PlatformEmulator::start().await;
    let platform = connect(&password_args(&emu.url, ADMIN.0, ADMIN.1))
        .await
        .expect("login");
    publish(
        &platform,
        &plan(&bundle("v2.3.0"), "10.0.0.1:11443", &[]),
        &ApplyOptions::default(),
    )
    .await
    .expect("publish");
    publish(
        &platform,
        &plan(&bundle("v2.3.0"), "10.0.0.2:11443", &[]),
        &ApplyOptions::default(),
    )
    .await
    .expect("update");
    let agents = emu.user_agents();
    let ua = format!("violet/{}", env!("CARGO_PKG_VERSION"));
    assert!(agents.len() > 8, "{agents:?}");
    for a in &agents {
        assert!(a.ends_with(&format!(" {ua}")), "{a}");
    }
    let writes: Vec<&String> = agents
        .iter()
        .filter(|a| a.starts_with("POST /kubernetes/") || a.starts_with("PUT /kubernetes/"))
        .collect();
    assert!(writes.len() >= 3, "{agents:?}");
    for w in writes {
        assert!(w.contains("fieldManager=violet"), "{w}");
    }
}

/// Issue #10 item 20: the emulator refuses what the real CRD schemas refuse, with 422 and a
/// Kubernetes Status naming each field; the synthetic plugin package's ModulePlugin passes.
#[tokio::test]
async fn the_emulator_refuses_what_the_crds_refuse() {
    let emu = PlatformEmulator::start().await;
    let platform = connect(&token_args(&emu.url, ADMIN_TOKEN))
        .await
        .expect("connect");
    let bad = Metadata {
        name: Some("web-cli".into()),
        package_type: Some(PackageType::Plugin),
        version: Some("v4.0.4".into()),
        artifact: Some("build.example.com/acp/chart-web-cli:v4.0.4".into()),
        module_plugin: Some(json!({
            "apiVersion": "cluster.alauda.io/v1alpha1", "kind": "ModulePlugin",
            "metadata": { "name": "web-cli" },
            "spec": { "name": "web-cli", "deleteable": true, "description": "a string" },
        })),
        ..Default::default()
    };
    let err = publish(
        &platform,
        &plan(&bad, "10.0.0.1:11443", &[]),
        &ApplyOptions::default(),
    )
    .await
    .expect_err("invalid ModulePlugin");
    let msg = err.to_string();
    assert!(
        msg.contains("spec.description: Invalid value: \"string\": spec.description in body must be of type object"),
        "{msg}"
    );
    assert!(msg.contains("spec.logo: Required value"), "{msg}");
    assert_eq!(err.exit_code(), ExitCode::Remote);
    assert!(emu.objects("global", "moduleplugins").is_empty());

    // The Status body, as an API server sends it.
    let http = reqwest::Client::new();
    let r = http
        .post(format!(
            "{}/kubernetes/global/apis/app.alauda.io/v1alpha1/namespaces/cpaas-system/artifactversions",
            emu.url
        ))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"apiVersion": "app.alauda.io/v1alpha1", "kind": "ArtifactVersion",
                      "metadata": {"name": "x.v1", "namespace": "cpaas-system"}, "spec": {"present": "yes"}}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 422);
    let status: Value = r.json().await.expect("status");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Invalid");
    let causes: Vec<String> = status["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["field"].as_str().unwrap_or(""),
                c["reason"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        causes,
        [
            "spec.tag FieldValueRequired",
            "spec.present FieldValueTypeInvalid"
        ]
    );

    // What the synthetic cluster-plugin package writes is valid.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = crate::support::packages::SynthSpec::new("demo-plugin", PackageType::Plugin);
    spec.container = violet::package::Container::Directory;
    let pkg = crate::support::packages::synth::write(&spec, dir.path()).expect("synth");
    let md: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(pkg.path.join("violet.yaml")).expect("metadata"),
    )
    .expect("yaml");
    let r = http
        .post(format!(
            "{}/kubernetes/global/apis/cluster.alauda.io/v1alpha1/moduleplugins",
            emu.url
        ))
        .bearer_auth(ADMIN_TOKEN)
        .json(&md["modulePlugin"])
        .send()
        .await
        .expect("post");
    assert_eq!(
        r.status().as_u16(),
        201,
        "{}",
        r.text().await.unwrap_or_default()
    );
}

/// Issue #10 item 11: credentials in --platform-address are refused (exit 2) and never echoed.
#[test]
fn platform_address_with_credentials_is_refused_without_echo() {
    let ctx = TestContext::new();
    for cmd in ["list", "gc"] {
        let out = ctx.run([
            cmd,
            "--platform-address",
            "https://admin:S3cr3t-pw@127.0.0.1:1",
            "--platform-token",
            "t",
        ]);
        assert_eq!(out.code, 2, "{out:?}");
        assert!(
            !out.stderr.contains("S3cr3t") && !out.stdout.contains("S3cr3t"),
            "{out:?}"
        );
        // "must not contain credentials", with a hint.
        snap!(
            ctx,
            format!("address_with_credentials_{cmd}"),
            out.streams()
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = crate::support::packages::SynthSpec::new("demo-operator", PackageType::Bundle);
    spec.container = violet::package::Container::Directory;
    let pkg = crate::support::packages::synth::write(&spec, dir.path()).expect("synth");
    let out = ctx
        .violet()
        .arg("push")
        .arg(&pkg.path)
        .args(["--dest-repo", "127.0.0.1:1", "--no-auth", "--plain"])
        .env(
            "VIOLET_PLATFORM_ADDRESS",
            "http://admin:S3cr3t-pw@127.0.0.1:1",
        )
        .env("VIOLET_PLATFORM_TOKEN", "t")
        .output()
        .expect("run");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("must not contain credentials"), "{stderr}");
    assert!(
        !stdout.contains("S3cr3t") && !stderr.contains("S3cr3t"),
        "{stdout}{stderr}"
    );
}
