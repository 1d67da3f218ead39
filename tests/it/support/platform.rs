//! An in-process emulator of the ACP platform, as violet sees it:
//! * the documented Dex login flow (violet-facts §5.1) with a real RSA key, the
//!   `cpaas_oidc_auth_flow` cookie, local users and their passwords;
//! * `/kubernetes/<cluster>/...` with Kubernetes API semantics for the resources violet uses
//!   (get, list with label selectors, create → 409 AlreadyExists, update → 409 Conflict on a stale
//!   resourceVersion, merge patch, server-side apply, delete with owner cascade, Status bodies);
//! * ProductBase `base` and secret `cpaas-system/registry-admin`, seeded by the test;
//! * the marketplace's ArtifactVersion checks (owner reference, bundle image in the registry);
//! * the CRD schemas of the catalog kinds (violet-facts §4): a write that violates one gets 422
//!   `Invalid` with `details.causes`, as from a real API server;
//! * OperatorViews and ModulePluginViews computed from the underlying objects (Artifacts,
//!   Subscriptions and CSVs of each cluster; ModulePlugins and ModuleInfos of global), as the
//!   platform's controllers compute them, and a way to freeze them (a lagging controller);
//! * sick clusters (the proxy answers 502/503/504 with an empty body), cluster phases, delete
//!   preconditions (uid, resourceVersion → 409), and every request's User-Agent.
//!
//! Users: `admin` (platform-admin) and `viewer` (reads only: 403 on writes and secrets).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};
use serde_json::{Value, json};

pub const ADMIN: (&str, &str) = ("admin", "Adm1n-pass");
pub const VIEWER: (&str, &str) = ("viewer", "V1ewer-pass");
pub const ADMIN_TOKEN: &str = "admin-api-token";
pub const VIEWER_TOKEN: &str = "viewer-api-token";

/// One RSA key per test process: generating 2048-bit keys is the slow part of starting.
fn key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA key generation")
    })
}

type Key = (String, String, String, String); // cluster, plural, namespace ("" when cluster-scoped), name

#[derive(Default)]
struct Inner {
    url: String,
    client_id: String,
    users: HashMap<String, (String, bool)>, // user → (password, admin)
    tokens: HashMap<String, String>,        // bearer token → user
    clusters: Vec<String>,
    flows: HashMap<String, Flow>,   // req → flow
    codes: HashMap<String, String>, // code → user
    objects: BTreeMap<Key, Value>,
    resource_version: u64,
    counter: u64,
    /// `host:port` of the registry the marketplace checks bundle images in, and its URL.
    registry: Option<(String, String)>,
    /// After serving a GET of this object, change it, as a concurrent writer would.
    races: HashMap<Key, u32>,
    /// (cluster, plural) whose CRD is not installed there: 404 as from any unknown resource.
    unserved: HashSet<(String, String)>,
    /// (cluster, plural) that read-only users may not read either (no RBAC grant there).
    forbidden: HashSet<(String, String)>,
    log: Vec<String>,
    /// `METHOD path?query UA` of every request.
    agents: Vec<String>,
    /// cluster → (HTTP status the proxy answers with, how many more times; None: always).
    sick: HashMap<String, (u16, Option<u32>)>,
    /// (cluster, plural): after the next list, every listed object is changed by someone else.
    touch_after_list: HashSet<(String, String)>,
    /// Views served as they were when frozen (a lagging controller), instead of computed.
    frozen_views: Option<BTreeMap<Key, Value>>,
    /// Views the controller does not produce (a catalog the views do not cover): (namespace, name).
    hidden_views: HashSet<(String, String)>,
    /// module → (lifecycle label, English display name), what the plugin's chart declares.
    plugin_meta: BTreeMap<String, (Option<String>, String)>,
}

struct Flow {
    state: String,
    cookie: String,
    ts: u64,
}

#[derive(Clone)]
pub struct PlatformEmulator {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

struct Kind {
    kind: &'static str,
    version: &'static str,
    namespaced: bool,
}

fn kind_of(group: &str, plural: &str) -> Option<Kind> {
    let k = |kind, version, namespaced| {
        Some(Kind {
            kind,
            version,
            namespaced,
        })
    };
    match (group, plural) {
        ("app.alauda.io", "artifacts") => k("Artifact", "v1alpha1", true),
        ("app.alauda.io", "artifactversions") => k("ArtifactVersion", "v1alpha1", true),
        ("cluster.alauda.io", "moduleplugins") => k("ModulePlugin", "v1alpha1", false),
        ("cluster.alauda.io", "moduleconfigs") => k("ModuleConfig", "v1alpha1", false),
        // The marketplace's read-only views, in the global cluster (OperatorView: namespace = cluster).
        ("app.alauda.io", "operatorviews") => k("OperatorView", "v1alpha2", true),
        ("app.alauda.io", "modulepluginviews") => k("ModulePluginView", "v1alpha2", false),
        ("platform.tkestack.io", "clusters") => k("Cluster", "v1", false),
        ("cluster.alauda.io", "moduleinfoes") => k("ModuleInfo", "v1alpha1", false),
        // OLM, in every cluster: the cluster's own record of installed operators.
        ("operators.coreos.com", "subscriptions") => k("Subscription", "v1alpha1", true),
        ("operators.coreos.com", "clusterserviceversions") => {
            k("ClusterServiceVersion", "v1alpha1", true)
        }
        // Captain's chart applications, in every cluster (v1, the version captain's CRD stores).
        ("app.alauda.io", "helmrequests") => k("HelmRequest", "v1", true),
        ("product.alauda.io", "productbases") => k("ProductBase", "v1alpha2", false),
        ("", "secrets") => k("Secret", "v1", true),
        _ => None,
    }
}

fn status(code: u16, reason: &str, message: impl Into<String>) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message.into(), "reason": reason, "code": code,
    });
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

fn gr(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

impl PlatformEmulator {
    /// `COMMAND --platform-address <this emulator> --platform-token TOKEN EXTRA...`: the platform
    /// flags every scenario passes, in one place.
    pub fn args<'a>(&'a self, command: &'a str, token: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec![
            command,
            "--platform-address",
            &self.url,
            "--platform-token",
            token,
        ];
        v.extend_from_slice(extra);
        v
    }

    /// Starts on 127.0.0.1:<free port> with clusters `global`, `region1`, `region2`.
    pub async fn start() -> PlatformEmulator {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind emulator");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let mut inner = Inner {
            url: url.clone(),
            client_id: "alauda-auth".into(),
            ..Default::default()
        };
        inner.users.insert(ADMIN.0.into(), (ADMIN.1.into(), true));
        inner
            .users
            .insert(VIEWER.0.into(), (VIEWER.1.into(), false));
        inner.tokens.insert(ADMIN_TOKEN.into(), ADMIN.0.into());
        inner.tokens.insert(VIEWER_TOKEN.into(), VIEWER.0.into());
        inner.clusters = vec!["global".into(), "region1".into(), "region2".into()];
        let _ = key();
        let inner = Arc::new(Mutex::new(inner));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        PlatformEmulator { url, inner }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The marketplace checks bundle images in this registry (`http://host:port`); without it
    /// the image check is off and only the owner reference is checked.
    pub fn set_registry(&self, registry_url: &str) {
        let host = registry_url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/');
        self.lock().registry = Some((
            host.to_string(),
            registry_url.trim_end_matches('/').to_string(),
        ));
    }

    pub fn seed_product_base(&self, registry_address: &str) {
        let obj = json!({
            "apiVersion": "product.alauda.io/v1alpha2", "kind": "ProductBase",
            "metadata": { "name": "base" },
            "spec": { "registry": { "address": registry_address, "external": false }, "platformURL": self.url },
        });
        self.lock().put_seed("global", "productbases", "", obj);
    }

    pub fn seed_registry_secret(&self, username: &str, password: &str) {
        let obj = json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": { "name": "registry-admin", "namespace": "cpaas-system" },
            "data": { "username": B64.encode(username), "password": B64.encode(password) },
        });
        self.lock()
            .put_seed("global", "secrets", "cpaas-system", obj);
    }

    /// Stores `obj` as is (plus uid and resourceVersion) and returns its uid: for objects the
    /// platform or other tools made, such as old ArtifactVersions or ModuleConfigs.
    /// Catalog objects are checked against the CRD schemas too: a fixture the real API server
    /// would refuse is a broken test.
    pub fn seed(&self, cluster: &str, plural: &str, namespace: &str, obj: Value) -> String {
        if let Some(kind) = obj["kind"].as_str() {
            let name = obj["metadata"]["name"].as_str().unwrap_or_default();
            if let Some(schema) = crd_schema(kind) {
                let mut causes = Vec::new();
                check_schema(&schema, &obj, "", &mut causes);
                assert!(
                    causes.is_empty(),
                    "seeded {kind} {name} violates its CRD schema: {causes:?}"
                );
            }
        }
        self.lock().put_seed(cluster, plural, namespace, obj)
    }

    /// One `clusters.platform.tkestack.io` object per emulated cluster, phase Running.
    pub fn seed_clusters(&self) {
        let names = self.lock().clusters.clone();
        for name in names {
            let obj = json!({
                "apiVersion": "platform.tkestack.io/v1", "kind": "Cluster",
                "metadata": { "name": name }, "status": { "phase": "Running" },
            });
            self.lock().put_seed("global", "clusters", "", obj);
        }
    }

    /// An operator as OLM records it in `cluster`: a Subscription (namespace `operators`) to
    /// package `name` with `installed_csv`, and that CSV with `display_name` and a phase
    /// (`Installed` → `Succeeded`). The OperatorView is computed from these (and the cluster's
    /// Artifacts). An empty `phase` seeds nothing: the view of an operator that is only offered
    /// comes from its Artifact.
    pub fn seed_operator_view(
        &self,
        cluster: &str,
        name: &str,
        phase: &str,
        installed_csv: &str,
        display_name: &str,
    ) {
        if phase.is_empty() {
            return;
        }
        self.seed_subscription(cluster, name, installed_csv);
        if !installed_csv.is_empty() {
            let csv_phase = if phase == "Installed" {
                "Succeeded"
            } else {
                phase
            };
            let obj = json!({
                "apiVersion": "operators.coreos.com/v1alpha1", "kind": "ClusterServiceVersion",
                "metadata": { "name": installed_csv, "namespace": "operators" },
                "spec": { "displayName": display_name },
                "status": { "phase": csv_phase },
            });
            self.lock()
                .put_seed(cluster, "clusterserviceversions", "operators", obj);
        }
    }

    /// An OLM Subscription in `cluster` to `package`, with `installed_csv` in its status.
    pub fn seed_subscription(&self, cluster: &str, package: &str, installed_csv: &str) {
        let obj = json!({
            "apiVersion": "operators.coreos.com/v1alpha1", "kind": "Subscription",
            "metadata": { "name": package, "namespace": "operators" },
            "spec": { "name": package, "source": "platform", "sourceNamespace": "cpaas-system", "channel": "stable" },
            "status": { "installedCSV": installed_csv, "state": if installed_csv.is_empty() { "UpgradePending" } else { "AtLatestKnown" } },
        });
        self.lock()
            .put_seed(cluster, "subscriptions", "operators", obj);
    }

    /// A cluster plugin: what its chart declares (`lifecycle` None: no label, agnostic) and one
    /// ModuleInfo per (cluster, version) installation. Its ModulePluginView is computed from these
    /// and the ModulePlugin, if any.
    pub fn seed_plugin_view(
        &self,
        module: &str,
        lifecycle: Option<&str>,
        display_en: &str,
        installed: &[(&str, &str)],
    ) {
        self.lock().plugin_meta.insert(
            module.into(),
            (lifecycle.map(str::to_string), display_en.to_string()),
        );
        for (cluster, version) in installed {
            self.seed_module_info(module, cluster, version);
        }
    }

    /// The platform's record of plugin `module` installed in `cluster` at `version`.
    pub fn seed_module_info(&self, module: &str, cluster: &str, version: &str) {
        let obj = json!({
            "apiVersion": "cluster.alauda.io/v1alpha1", "kind": "ModuleInfo",
            "metadata": { "name": format!("{cluster}-{module}"),
                          "labels": { "cpaas.io/module-name": module, "cpaas.io/cluster-name": cluster, "cpaas.io/module-type": "plugin" } },
            "spec": { "version": version, "config": {} },
            "status": { "version": version, "phase": "Running" },
        });
        self.lock().put_seed("global", "moduleinfoes", "", obj);
    }

    /// Removes an object as someone else would (no cascade).
    pub fn remove(&self, cluster: &str, plural: &str, namespace: &str, name: &str) {
        self.lock()
            .objects
            .remove(&(cluster.into(), plural.into(), namespace.into(), name.into()));
    }

    /// From now on the views are served as they are now, whatever happens to the objects
    /// behind them: a lagging or stuck controller.
    pub fn freeze_views(&self) {
        let mut s = self.lock();
        let mut frozen = BTreeMap::new();
        for plural in ["operatorviews", "modulepluginviews"] {
            for (ns, v) in s.computed_views(plural) {
                let name = v["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                frozen.insert(("global".into(), plural.into(), ns, name), v);
            }
        }
        s.frozen_views = Some(frozen);
    }

    /// The views of the marketplace do not cover this operator in this cluster.
    pub fn hide_operator_view(&self, cluster: &str, name: &str) {
        self.lock()
            .hidden_views
            .insert((cluster.into(), name.into()));
    }

    /// The proxy answers every request for `cluster` with `code` and an empty body, `times`
    /// times (None: until further notice), as when the cluster's API server or tunnel is down.
    pub fn make_sick(&self, cluster: &str, code: u16, times: Option<u32>) {
        self.lock().sick.insert(cluster.into(), (code, times));
    }

    /// The `clusters.platform.tkestack.io` object of `cluster` gets `status.phase` = `phase`.
    pub fn set_cluster_phase(&self, cluster: &str, phase: &str) {
        let mut s = self.lock();
        let k: Key = (
            "global".into(),
            "clusters".into(),
            String::new(),
            cluster.into(),
        );
        if let Some(o) = s.objects.get_mut(&k) {
            o["status"]["phase"] = phase.into();
        }
    }

    /// After the next list of `plural` in `cluster`, every object listed is changed by someone
    /// else (a concurrent writer between gc's plan and its deletes).
    pub fn touch_after_list(&self, cluster: &str, plural: &str) {
        self.lock()
            .touch_after_list
            .insert((cluster.into(), plural.into()));
    }

    /// `METHOD path?query UA` of every request so far.
    pub fn user_agents(&self) -> Vec<String> {
        self.lock().agents.clone()
    }

    /// A HelmRequest in `cluster` (namespace `ns`) for `chart` (`<repo>/<name>`): `phase` and the
    /// installed `version` go to the status, as captain writes them; `extra_spec` is merged into the spec.
    #[allow(clippy::too_many_arguments)]
    pub fn seed_helm_request(
        &self,
        cluster: &str,
        ns: &str,
        name: &str,
        chart: &str,
        version: &str,
        phase: &str,
        extra_spec: Value,
    ) {
        let mut spec =
            json!({ "chart": chart, "version": version, "namespace": ns, "releaseName": name });
        merge_patch(&mut spec, &extra_spec);
        let obj = json!({
            "apiVersion": "app.alauda.io/v1", "kind": "HelmRequest",
            "metadata": { "name": name, "namespace": ns, "finalizers": ["captain.alauda.io"] },
            "spec": spec,
            "status": { "phase": phase, "version": version, "lastSpecHash": "15900028196316601597" },
        });
        self.lock().put_seed(cluster, "helmrequests", ns, obj);
    }

    /// `cluster` does not serve `plural` (its CRD is not installed there): every call gets a 404.
    pub fn unserve(&self, cluster: &str, plural: &str) {
        self.lock().unserved.insert((cluster.into(), plural.into()));
    }

    /// Read-only users get 403 on `plural` in `cluster`, reads included.
    pub fn forbid(&self, cluster: &str, plural: &str) {
        self.lock()
            .forbidden
            .insert((cluster.into(), plural.into()));
    }

    /// The next `times` GETs of this object are each followed by a change from "someone else".
    pub fn race_after_get(
        &self,
        cluster: &str,
        plural: &str,
        namespace: &str,
        name: &str,
        times: u32,
    ) {
        self.lock().races.insert(
            (cluster.into(), plural.into(), namespace.into(), name.into()),
            times,
        );
    }

    pub fn object(
        &self,
        cluster: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        self.lock()
            .objects
            .get(&(cluster.into(), plural.into(), namespace.into(), name.into()))
            .cloned()
    }

    pub fn objects(&self, cluster: &str, plural: &str) -> Vec<Value> {
        self.lock()
            .objects
            .iter()
            .filter(|(k, _)| k.0 == cluster && k.1 == plural)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Another local user (`admin`: platform-admin, else read-only), for tests that need
    /// distinctive secrets to look for in violet's output.
    pub fn add_user(&self, name: &str, password: &str, admin: bool) {
        self.lock()
            .users
            .insert(name.into(), (password.into(), admin));
    }

    /// Another API token (Profile > API Tokens) of an existing user.
    pub fn add_token(&self, token: &str, user: &str) {
        self.lock().tokens.insert(token.into(), user.into());
    }

    /// A TLS front for this emulator on another port, with a self-signed certificate (CA:FALSE, for
    /// 127.0.0.1) made by the openssl CLI in `dir`. Returns its `https://` URL and the certificate.
    pub async fn tls_front(&self, dir: &std::path::Path) -> (String, std::path::PathBuf) {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        let (cert, key) = (dir.join("platform-cert.pem"), dir.join("platform-key.pem"));
        let out = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=acp.test",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            // CA:FALSE: rustls refuses a CA certificate as the server's own (CaUsedAsEndEntity).
            .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(&cert)
            .expect("cert")
            .collect::<Result<_, _>>()
            .expect("cert");
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&key).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let backend = self.url.trim_start_matches("http://").to_string();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, backend) = (acceptor.clone(), backend.clone());
                tokio::spawn(async move {
                    if let (Ok(mut tls), Ok(mut up)) = (
                        acceptor.accept(tcp).await,
                        tokio::net::TcpStream::connect(&backend).await,
                    ) {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                    }
                });
            }
        });
        (format!("https://127.0.0.1:{}", addr.port()), cert)
    }

    /// `METHOD path?query` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    pub fn clear_requests(&self) {
        self.lock().log.clear();
    }
}

impl Inner {
    fn next_id(&mut self) -> String {
        self.counter += 1;
        format!("{:08x}-{:016x}", self.counter, rand::random::<u64>())
    }

    fn next_rv(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    /// The views as the marketplace controllers compute them: (namespace, view).
    /// OperatorView `<cluster>/<package>`: one per bundle Artifact (`operatorhub-` prefix dropped)
    /// and per Subscription of the cluster; its installation comes from the Subscription and the
    /// CSV it names. ModulePluginView `<module>`: one per ModulePlugin or declared plugin; its
    /// `installed` list comes from the ModuleInfos of global.
    fn computed_views(&self, plural: &str) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        if plural == "operatorviews" {
            for cluster in &self.clusters {
                // package → (artifact name, display name, subscription)
                let mut packages: BTreeMap<String, (String, String, Option<Value>)> =
                    BTreeMap::new();
                for (k, a) in &self.objects {
                    if k.0 != *cluster || k.1 != "artifacts" || a["spec"]["type"] != "bundle" {
                        continue;
                    }
                    let package = k.3.strip_prefix("operatorhub-").unwrap_or(&k.3).to_string();
                    let display = a["spec"]["displayName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    packages.insert(package, (k.3.clone(), display, None));
                }
                for (k, sub) in &self.objects {
                    if k.0 != *cluster || k.1 != "subscriptions" {
                        continue;
                    }
                    let package = sub["spec"]["name"].as_str().unwrap_or_default().to_string();
                    let e =
                        packages
                            .entry(package.clone())
                            .or_insert((package, String::new(), None));
                    e.2 = Some(sub.clone());
                }
                for (package, (artifact, display, sub)) in packages {
                    if self
                        .hidden_views
                        .contains(&(cluster.clone(), package.clone()))
                    {
                        continue;
                    }
                    let mut display = display;
                    let mut st = json!({});
                    if let Some(sub) = sub {
                        let csv = sub["status"]["installedCSV"].as_str().unwrap_or_default();
                        let ns = sub["metadata"]["namespace"].as_str().unwrap_or_default();
                        let csv_obj = self.objects.get(&(
                            cluster.clone(),
                            "clusterserviceversions".into(),
                            ns.into(),
                            csv.into(),
                        ));
                        if let Some(d) = csv_obj.and_then(|c| c["spec"]["displayName"].as_str()) {
                            display = d.to_string();
                        }
                        let phase = match (csv, csv_obj.and_then(|c| c["status"]["phase"].as_str()))
                        {
                            ("", _) => "Installing".to_string(),
                            (_, None) | (_, Some("Succeeded")) => "Installed".to_string(),
                            (_, Some(p)) => p.to_string(),
                        };
                        st["operatorStatus"] = json!({
                            "phase": phase,
                            "installation": { "artifactName": artifact, "subscription": { "installedCSV": csv } },
                        });
                    }
                    st["packageManifestStatus"] = json!({ "channels": [ { "name": "stable", "currentCSVDesc": { "displayName": display } } ] });
                    out.push((
                        cluster.clone(),
                        json!({
                            "apiVersion": "app.alauda.io/v1alpha2", "kind": "OperatorView",
                            "metadata": { "name": package, "namespace": cluster },
                            "status": st,
                        }),
                    ));
                }
            }
        } else if plural == "modulepluginviews" {
            let mut modules: BTreeMap<String, (Option<String>, String)> = self.plugin_meta.clone();
            for (k, mp) in &self.objects {
                if k.0 != "global" || k.1 != "moduleplugins" {
                    continue;
                }
                let e = modules.entry(k.3.clone()).or_insert((None, k.3.clone()));
                if let Some(l) = mp["metadata"]["labels"]["cpaas.io/lifecycle-type"].as_str() {
                    e.0 = Some(l.to_string());
                }
            }
            for (module, (lifecycle, display)) in modules {
                let installed: Vec<Value> = self
                    .objects
                    .iter()
                    .filter(|(k, v)| {
                        k.0 == "global"
                            && k.1 == "moduleinfoes"
                            && v["metadata"]["labels"]["cpaas.io/module-name"] == module.as_str()
                    })
                    .map(|(_, v)| {
                        json!({
                            "cluster": v["metadata"]["labels"]["cpaas.io/cluster-name"],
                            "name": module, "phase": v["status"]["phase"],
                            "version": v["status"]["version"],
                        })
                    })
                    .collect();
                let mut labels = json!({ "cpaas.io/module-name": module });
                if let Some(l) = lifecycle {
                    labels["cpaas.io/lifecycle-type"] = l.into();
                }
                let display = json!({ "en": display, "zh": display }).to_string();
                out.push((
                    String::new(),
                    json!({
                        "apiVersion": "app.alauda.io/v1alpha2", "kind": "ModulePluginView",
                        "metadata": { "name": module, "labels": labels, "annotations": { "cpaas.io/display-name": display } },
                        "status": { "installed": installed },
                    }),
                ));
            }
        }
        out
    }

    fn put_seed(&mut self, cluster: &str, plural: &str, ns: &str, mut obj: Value) -> String {
        let uid = self.next_id();
        obj["metadata"]["uid"] = uid.clone().into();
        obj["metadata"]["resourceVersion"] = self.next_rv().into();
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.objects
            .insert((cluster.into(), plural.into(), ns.into(), name), obj);
        uid
    }
}

fn query(uri: &Uri) -> HashMap<String, String> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

async fn handle(
    State(state): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        let q = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        s.log.push(format!("{method} {path}{q}"));
        let ua = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        s.agents.push(format!("{method} {path}{q} {ua}"));
    }
    if let Some(rest) = path.strip_prefix("/kubernetes/") {
        return kube(state, method, rest.to_string(), &uri, &headers, body).await;
    }
    let q = query(&uri);
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    match (method, path.as_str()) {
        (Method::GET, "/console-platform/api/v1/token/login") => {
            if q.get("client_id") != Some(&s.client_id) {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"error": "unknown client"})),
                )
                    .into_response();
            }
            let st = s.next_id();
            let auth_url = format!(
                "{}/dex/auth?client_id={}&redirect_uri={}&response_type=code&state={st}",
                s.url,
                s.client_id,
                q.get("redirect_uri").cloned().unwrap_or_default()
            );
            axum::Json(json!({ "auth_url": auth_url, "state": st, "logout_url": format!("{}/dex/logout", s.url) }))
                .into_response()
        }
        (Method::GET, "/dex/api/v1/authorize") => {
            let (Some(_), Some(st)) = (q.get("client_id"), q.get("state")) else {
                return (StatusCode::BAD_REQUEST, "missing client_id or state").into_response();
            };
            let req = s.next_id();
            let cookie = s.next_id();
            s.flows.insert(
                req.clone(),
                Flow {
                    state: st.clone(),
                    cookie: cookie.clone(),
                    ts: 0,
                },
            );
            let mut r = axum::Json(json!({ "req": req })).into_response();
            if let Ok(v) = format!("cpaas_oidc_auth_flow={cookie}; Path=/; HttpOnly").parse() {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        (Method::GET, "/dex/pubkey") => {
            let pem = key()
                .to_public_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap_or_default();
            let ts = 1_700_000_000 + s.next_rv().parse::<u64>().unwrap_or(0);
            for f in s.flows.values_mut() {
                f.ts = ts;
            }
            axum::Json(json!({ "ts": ts, "pubkey": pem, "pubkey_encode": B64.encode(&pem) }))
                .into_response()
        }
        (Method::POST, p) if p.starts_with("/dex/api/v1/authorize/") => {
            let idp = &p["/dex/api/v1/authorize/".len()..];
            if idp != "local" {
                return (StatusCode::NOT_FOUND, "unknown connector").into_response();
            }
            let Some(flow) = q.get("req").and_then(|r| s.flows.get(r)) else {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"error": "unknown req"})),
                )
                    .into_response();
            };
            let cookie = headers
                .get(header::COOKIE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !cookie
                .split(';')
                .any(|c| c.trim() == format!("cpaas_oidc_auth_flow={}", flow.cookie))
            {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"error": "missing auth flow cookie"})),
                )
                    .into_response();
            }
            let (state_, ts) = (flow.state.clone(), flow.ts);
            let Ok(body) = serde_json::from_slice::<Value>(&body) else {
                return (StatusCode::BAD_REQUEST, "bad body").into_response();
            };
            let account = body["account"].as_str().unwrap_or_default().to_string();
            let plain = B64
                .decode(body["password"].as_str().unwrap_or_default())
                .ok()
                .and_then(|c| key().decrypt(Pkcs1v15Encrypt, &c).ok())
                .and_then(|p| serde_json::from_slice::<Value>(&p).ok());
            let Some(plain) = plain else {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"error": "cannot decrypt password"})),
                )
                    .into_response();
            };
            let ok = plain["ts"].as_u64() == Some(ts)
                && s.users
                    .get(&account)
                    .is_some_and(|(pw, _)| plain["password"].as_str() == Some(pw.as_str()));
            if !ok {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"error": "invalid username or password"})),
                )
                    .into_response();
            }
            let code = s.next_id();
            s.codes.insert(code.clone(), account);
            let redirect_url = format!("{}/dex/callback?code={code}&state={state_}", s.url);
            axum::Json(json!({ "redirect_url": redirect_url })).into_response()
        }
        (Method::GET, "/console-platform/api/v1/token/callback") => {
            let Some(user) = q.get("code").and_then(|c| s.codes.remove(c)) else {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"error": "invalid code"})),
                )
                    .into_response();
            };
            let token = format!("id-{}", s.next_id());
            s.tokens.insert(token.clone(), user);
            axum::Json(json!({
                "token_type": "Bearer", "id_token": token, "access_token": format!("access-{}", s.next_id()),
                "refresh_token": "r", "expire_at": 4_000_000_000u64, "issued_at": 1_700_000_000u64,
            }))
            .into_response()
        }
        _ => (StatusCode::NOT_FOUND, "404 page not found").into_response(),
    }
}

/// Parses `<cluster>/api[s]/...` into (cluster, group, version, namespace, plural, name).
fn parse_kube_path(rest: &str) -> Option<(String, String, String, String, String, Option<String>)> {
    let seg: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let cluster = seg.first()?.to_string();
    let (group, version, tail) = match *seg.get(1)? {
        "api" => ("", *seg.get(2)?, &seg[3.min(seg.len())..]),
        "apis" => (*seg.get(2)?, *seg.get(3)?, &seg[4.min(seg.len())..]),
        _ => return None,
    };
    let (ns, tail) = match tail {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (ns.to_string(), rest),
        _ => (String::new(), tail),
    };
    let plural = tail.first()?.to_string();
    let name = tail.get(1).map(|s| s.to_string());
    if tail.len() > 2 {
        return None;
    }
    Some((cluster, group.into(), version.into(), ns, plural, name))
}

fn selector_matches(selector: &str, labels: &Value) -> bool {
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels.get(k.trim()).and_then(Value::as_str) != Some(v.trim())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            labels.get(k.trim()).and_then(Value::as_str) == Some(v.trim())
        } else {
            labels.get(term.trim()).is_some()
        }
    })
}

fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            for (k, v) in p {
                if v.is_null() {
                    if let Some(o) = target.as_object_mut() {
                        o.remove(k);
                    }
                } else {
                    merge_patch(&mut target[k], v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

async fn kube(
    state: Arc<Mutex<Inner>>,
    method: Method,
    rest: String,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let (user, admin, cluster_known) = {
        let s = state.lock().unwrap_or_else(|p| p.into_inner());
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let Some(user) = s.tokens.get(token).cloned() else {
            return status(401, "Unauthorized", "Unauthorized");
        };
        let admin = s.users.get(&user).is_some_and(|u| u.1);
        let cluster = rest.split('/').next().unwrap_or("");
        (user, admin, s.clusters.iter().any(|c| c == cluster))
    };
    let cluster = rest.split('/').next().unwrap_or("").to_string();
    if !cluster_known {
        return status(404, "NotFound", format!("cluster {cluster:?} not found"));
    }
    {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((code, left)) = s.sick.get_mut(&cluster) {
            let code = *code;
            match left {
                Some(0) => {
                    s.sick.remove(&cluster);
                }
                Some(n) => {
                    *n -= 1;
                    return StatusCode::from_u16(code)
                        .unwrap_or(StatusCode::BAD_GATEWAY)
                        .into_response();
                }
                None => {
                    return StatusCode::from_u16(code)
                        .unwrap_or(StatusCode::BAD_GATEWAY)
                        .into_response();
                }
            }
        }
    }
    if rest.trim_end_matches('/') == format!("{cluster}/version") {
        return axum::Json(json!({ "major": "1", "minor": "33", "gitVersion": "v1.33.4", "platform": "linux/amd64" }))
            .into_response();
    }
    let Some((cluster, group, version, ns, plural, name)) = parse_kube_path(&rest) else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    let Some(kind) = kind_of(&group, &plural) else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    let bad_scope = if kind.namespaced {
        ns.is_empty() && (name.is_some() || method == Method::POST)
    } else {
        !ns.is_empty()
    };
    let (unserved, forbidden) = {
        let s = state.lock().unwrap_or_else(|p| p.into_inner());
        let k = (cluster.clone(), plural.clone());
        (s.unserved.contains(&k), s.forbidden.contains(&k))
    };
    if kind.version != version || bad_scope || unserved {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    let write = method != Method::GET;
    if (write || plural == "secrets" || forbidden) && !admin {
        let verb = match method {
            Method::GET => {
                if name.is_some() {
                    "get"
                } else {
                    "list"
                }
            }
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            _ => "delete",
        };
        // As the API server words it: the resource, then the name when the URL has one.
        let what = match name.as_deref() {
            Some(n) => format!("{} {n:?} ", gr(&group, &plural)),
            None => format!("{} ", gr(&group, &plural)),
        };
        let scope = if ns.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {ns:?}")
        };
        return status(
            403,
            "Forbidden",
            format!(
                "{what}is forbidden: User {user:?} cannot {verb} resource {plural:?} in API group {group:?} {scope}"
            ),
        );
    }
    let q = query(uri);
    let key_of = |n: &str| (cluster.clone(), plural.clone(), ns.clone(), n.to_string());
    let not_found = |n: &str| {
        status(
            404,
            "NotFound",
            format!("{} {n:?} not found", gr(&group, &plural)),
        )
    };
    let api_version = if group.is_empty() {
        version.clone()
    } else {
        format!("{group}/{version}")
    };

    let mut changed: Option<Key> = None;
    let response = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        match (method.clone(), name.clone()) {
            (Method::GET, Some(n)) => {
                let k = key_of(&n);
                match s.objects.get(&k).cloned() {
                    None => not_found(&n),
                    Some(obj) => {
                        if let Some(left) = s.races.get_mut(&k).filter(|l| **l > 0) {
                            *left -= 1;
                            let rv = s.next_rv();
                            if let Some(o) = s.objects.get_mut(&k) {
                                o["metadata"]["resourceVersion"] = rv.into();
                                o["metadata"]["annotations"]["emulator/touched-by"] =
                                    "someone-else".into();
                            }
                        }
                        axum::Json(obj).into_response()
                    }
                }
            }
            (Method::GET, None) => {
                let sel = q.get("labelSelector").cloned().unwrap_or_default();
                let views = (cluster == "global"
                    && matches!(plural.as_str(), "operatorviews" | "modulepluginviews"))
                .then(|| match &s.frozen_views {
                    Some(f) => f
                        .iter()
                        .filter(|(k, _)| k.1 == plural)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<Vec<_>>(),
                    None => s
                        .computed_views(&plural)
                        .into_iter()
                        .map(|(vns, v)| {
                            let n = v["metadata"]["name"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string();
                            (("global".to_string(), plural.clone(), vns, n), v)
                        })
                        .collect(),
                });
                let source: Vec<(Key, Value)> = match views {
                    Some(v) => v,
                    None => s
                        .objects
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                };
                let listed: Vec<(Key, Value)> = source
                    .into_iter()
                    .filter(|(k, _)| {
                        k.0 == cluster && k.1 == plural && (ns.is_empty() || k.2 == ns)
                    })
                    .filter(|(_, v)| selector_matches(&sel, &v["metadata"]["labels"]))
                    .collect();
                if s.touch_after_list
                    .remove(&(cluster.clone(), plural.clone()))
                {
                    for (k, _) in &listed {
                        let rv = s.next_rv();
                        if let Some(o) = s.objects.get_mut(k) {
                            o["metadata"]["resourceVersion"] = rv.into();
                            o["metadata"]["annotations"]["emulator/touched-by"] =
                                "someone-else".into();
                        }
                    }
                }
                let items: Vec<Value> = listed.into_iter().map(|(_, v)| v).collect();
                axum::Json(json!({
                    "apiVersion": api_version, "kind": format!("{}List", kind.kind),
                    "metadata": { "resourceVersion": s.resource_version.to_string() }, "items": items,
                }))
                .into_response()
            }
            (Method::POST, None) => match serde_json::from_slice::<Value>(&body) {
                Err(e) => status(400, "BadRequest", format!("invalid JSON: {e}")),
                Ok(obj) => {
                    let n = obj["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    create(
                        &mut s,
                        &key_of(&n),
                        obj,
                        &kind,
                        &api_version,
                        &mut changed,
                        &group,
                        &plural,
                    )
                }
            },
            (Method::PUT, Some(n)) => match serde_json::from_slice::<Value>(&body) {
                Err(e) => status(400, "BadRequest", format!("invalid JSON: {e}")),
                Ok(obj) => update(&mut s, &key_of(&n), obj, &mut changed, &group, &plural),
            },
            (Method::PATCH, Some(n)) => {
                let ct = headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let patch: Option<Value> = if ct.starts_with("application/apply-patch+yaml") {
                    serde_saphyr::from_slice(&body).ok()
                } else if ct.starts_with("application/merge-patch+json") {
                    serde_json::from_slice(&body).ok()
                } else {
                    return status(
                        415,
                        "UnsupportedMediaType",
                        format!("the body of the request was in an unknown format: {ct}"),
                    );
                };
                let Some(patch) = patch else {
                    return status(400, "BadRequest", "cannot parse the patch");
                };
                let k = key_of(&n);
                match s.objects.get(&k).cloned() {
                    // Server-side apply creates what does not exist; a merge patch does not.
                    None if ct.starts_with("application/apply-patch+yaml") => create(
                        &mut s,
                        &k,
                        patch,
                        &kind,
                        &api_version,
                        &mut changed,
                        &group,
                        &plural,
                    ),
                    None => not_found(&n),
                    Some(mut live) => {
                        let status_before = live.get("status").cloned();
                        merge_patch(&mut live, &patch);
                        match status_before {
                            Some(st) => live["status"] = st,
                            None => {
                                if let Some(o) = live.as_object_mut() {
                                    o.remove("status");
                                }
                            }
                        }
                        live["metadata"]["resourceVersion"] = Value::Null;
                        update(&mut s, &k, live, &mut changed, &group, &plural)
                    }
                }
            }
            (Method::DELETE, Some(n)) => {
                let k = key_of(&n);
                let pre = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .map(|b| b["preconditions"].clone())
                    .unwrap_or(Value::Null);
                let failed = s.objects.get(&k).is_some_and(|live| {
                    ["uid", "resourceVersion"].iter().any(|f| {
                        pre[f]
                            .as_str()
                            .is_some_and(|want| live["metadata"][f].as_str() != Some(want))
                    })
                });
                if failed {
                    return status(
                        409,
                        "Conflict",
                        format!(
                            "Operation cannot be fulfilled on {} {n:?}: the precondition (uid, resourceVersion) does not match the object",
                            gr(&group, &plural)
                        ),
                    );
                }
                match s.objects.remove(&k) {
                    None => not_found(&n),
                    Some(obj) => {
                        // Garbage collection: dependents whose owner reference names the deleted uid.
                        let uid = obj["metadata"]["uid"].clone();
                        s.objects.retain(|kk, v| {
                            kk.0 != cluster
                                || !v["metadata"]["ownerReferences"]
                                    .as_array()
                                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
                        });
                        axum::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}))
                            .into_response()
                    }
                }
            }
            _ => status(
                405,
                "MethodNotAllowed",
                format!("{method} is not supported here"),
            ),
        }
    };
    if let Some(k) = changed.filter(|k| k.1 == "artifactversions") {
        marketplace_check(&state, &k).await;
    }
    response
}

/// The structural OpenAPI schemas of the CRDs violet writes (violet-facts §4.1–4.3: the `spec`
/// of `acp-docs:docs/shared/crds/*.yaml`), reduced to what a structural validator checks: type,
/// required and properties/items. Fields a schema does not name are not checked.
fn crd_schema(kind: &str) -> Option<Value> {
    let string = json!({"type": "string"});
    let boolean = json!({"type": "boolean"});
    let object = json!({"type": "object"});
    let label_selector = json!({"type": "object", "properties": {
        "matchLabels": {"type": "object"},
        "matchExpressions": {"type": "array", "items": {"type": "object", "required": ["key", "operator"],
            "properties": {"key": string, "operator": string, "values": {"type": "array", "items": string}}}},
    }});
    let plugin_spec = json!({"type": "object", "required": ["deleteable", "description", "logo", "name"], "properties": {
        "deleteable": boolean, "description": object, "logo": string, "name": string,
        "version": string, "mainChart": string, "affinity": object, "appReleases": {"type": "array"},
        "valuesTemplates": object, "config": object, "dependencies": {"type": "array"},
        "upgradeBefore": {"type": "array"}, "supportedUpgradeVersions": string, "mustUpgrade": boolean,
    }});
    let meta = json!({"type": "object", "required": ["name"], "properties": {
        "name": string, "namespace": string,
        "labels": {"type": "object", "additionalProperties": string},
        "annotations": {"type": "object", "additionalProperties": string},
        "ownerReferences": {"type": "array", "items": {"type": "object", "required": ["apiVersion", "kind", "name", "uid"],
            "properties": {"apiVersion": string, "kind": string, "name": string, "uid": string}}},
    }});
    let spec = match kind {
        "Artifact" => json!({"type": "object",
        "required": ["artifactVersionSelector", "present", "registry", "repository", "type"],
        "properties": {
            "artifactVersionSelector": label_selector, "present": boolean, "registry": string,
            "repository": string, "type": string, "displayName": string, "description": string,
            "imagePullSecrets": {"type": "array", "items": string},
            "tagPatterns": {"type": "array", "items": {"type": "object", "properties": {
                "name": string, "regex": string, "maxQuantity": {"type": "integer"}}}},
        }}),
        "ArtifactVersion" => json!({"type": "object", "required": ["present", "tag"],
            "properties": {"present": boolean, "tag": string}}),
        "ModulePlugin" | "ModuleConfig" => plugin_spec,
        _ => return None,
    };
    Some(
        json!({"type": "object", "required": ["metadata", "spec"], "properties": {"metadata": meta, "spec": spec}}),
    )
}

/// One structural check, as the API server reports it: (field path, cause reason, message).
fn check_schema(schema: &Value, v: &Value, path: &str, causes: &mut Vec<(String, String, String)>) {
    let ty = schema["type"].as_str().unwrap_or("");
    let ok = match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        _ => true,
    };
    if !ok {
        let shown = match v {
            Value::String(_) => "string",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
            Value::Null => "null",
        };
        causes.push((
            path.to_string(),
            "FieldValueTypeInvalid".into(),
            format!("Invalid value: \"{shown}\": {path} in body must be of type {ty}: \"{shown}\""),
        ));
        return;
    }
    if let Some(req) = schema["required"].as_array() {
        for r in req.iter().filter_map(Value::as_str) {
            if v.get(r).is_none_or(Value::is_null) {
                let field = format!("{path}.{r}").trim_start_matches('.').to_string();
                causes.push((field, "FieldValueRequired".into(), "Required value".into()));
            }
        }
    }
    if let (Some(props), Some(obj)) = (schema["properties"].as_object(), v.as_object()) {
        for (k, sub) in props {
            if let Some(val) = obj.get(k).filter(|x| !x.is_null()) {
                check_schema(
                    sub,
                    val,
                    format!("{path}.{k}").trim_start_matches('.'),
                    causes,
                );
            }
        }
    }
    if let (Some(extra), Some(obj)) = (schema.get("additionalProperties"), v.as_object()) {
        for (k, val) in obj {
            check_schema(extra, val, &format!("{path}[{k}]"), causes);
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, val) in arr.iter().enumerate() {
            check_schema(items, val, &format!("{path}[{i}]"), causes);
        }
    }
}

/// 422 `Invalid` with `details.causes` when `obj` violates its CRD schema, as the API server answers.
fn validate(kind: &str, group: &str, name: &str, obj: &Value) -> Option<Response> {
    let schema = crd_schema(kind)?;
    let mut causes = Vec::new();
    check_schema(&schema, obj, "", &mut causes);
    if causes.is_empty() {
        return None;
    }
    let summary: Vec<String> = causes.iter().map(|(f, _, m)| format!("{f}: {m}")).collect();
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{kind}.{group} {name:?} is invalid: [{}]", summary.join(", ")),
        "reason": "Invalid",
        "details": { "name": name, "group": group, "kind": kind,
            "causes": causes.iter().map(|(f, r, m)| json!({"reason": r, "message": m, "field": f})).collect::<Vec<_>>() },
        "code": 422,
    });
    Some((StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response())
}

#[allow(clippy::too_many_arguments)]
fn create(
    s: &mut Inner,
    k: &Key,
    mut obj: Value,
    kind: &Kind,
    api_version: &str,
    changed: &mut Option<Key>,
    group: &str,
    plural: &str,
) -> Response {
    if k.3.is_empty() {
        return status(
            422,
            "Invalid",
            format!("{} is invalid: metadata.name: Required value", kind.kind),
        );
    }
    if let Some(ns) = obj["metadata"]["namespace"].as_str()
        && ns != k.2
    {
        return status(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        );
    }
    if let Some(invalid) = validate(kind.kind, group, &k.3, &obj) {
        return invalid;
    }
    if s.objects.contains_key(k) {
        return status(
            409,
            "AlreadyExists",
            format!("{} {:?} already exists", gr(group, plural), k.3),
        );
    }
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
    obj["apiVersion"] = api_version.into();
    obj["kind"] = kind.kind.into();
    if kind.namespaced {
        obj["metadata"]["namespace"] = k.2.clone().into();
    }
    obj["metadata"]["uid"] = s.next_id().into();
    obj["metadata"]["resourceVersion"] = s.next_rv().into();
    obj["metadata"]["generation"] = 1.into();
    obj["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z".into();
    s.objects.insert(k.clone(), obj.clone());
    *changed = Some(k.clone());
    (StatusCode::CREATED, axum::Json(obj)).into_response()
}

fn update(
    s: &mut Inner,
    k: &Key,
    mut obj: Value,
    changed: &mut Option<Key>,
    group: &str,
    plural: &str,
) -> Response {
    let Some(live) = s.objects.get(k).cloned() else {
        return status(
            404,
            "NotFound",
            format!("{} {:?} not found", gr(group, plural), k.3),
        );
    };
    if obj["metadata"]["name"].as_str() != Some(k.3.as_str()) {
        return status(
            400,
            "BadRequest",
            "the name of the object does not match the name on the URL",
        );
    }
    if let Some(kind) = live["kind"].as_str()
        && let Some(invalid) = validate(kind, group, &k.3, &obj)
    {
        return invalid;
    }
    match obj["metadata"]["resourceVersion"].as_str() {
        // A merge patch carries no resourceVersion and applies to the current object.
        None if obj["metadata"]["resourceVersion"].is_null() => {}
        Some(rv) if Some(rv) == live["metadata"]["resourceVersion"].as_str() => {}
        _ => {
            return status(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} {:?}: the object has been modified; please apply your changes to the latest version and try again",
                    gr(group, plural),
                    k.3
                ),
            );
        }
    }
    // The main resource does not write status (status subresource); identity fields are the server's.
    match live.get("status") {
        Some(st) => obj["status"] = st.clone(),
        None => {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
    }
    for f in ["uid", "creationTimestamp", "namespace"] {
        obj["metadata"][f] = live["metadata"][f].clone();
    }
    obj["apiVersion"] = live["apiVersion"].clone();
    obj["kind"] = live["kind"].clone();
    let generation = live["metadata"]["generation"].as_u64().unwrap_or(1);
    obj["metadata"]["generation"] = (if obj.get("spec") != live.get("spec") {
        generation + 1
    } else {
        generation
    })
    .into();
    if obj == live {
        return axum::Json(live).into_response();
    }
    obj["metadata"]["resourceVersion"] = s.next_rv().into();
    s.objects.insert(k.clone(), obj.clone());
    *changed = Some(k.clone());
    axum::Json(obj).into_response()
}

/// The marketplace controller's view of an ArtifactVersion: it needs an owner reference to its
/// Artifact, and the bundle image `<artifact.spec.registry>/<artifact.spec.repository>:<spec.tag>`.
async fn marketplace_check(state: &Arc<Mutex<Inner>>, k: &Key) {
    let (av, artifact, registry, basic) = {
        let s = state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(av) = s.objects.get(k).cloned() else {
            return;
        };
        let owner = av["metadata"]["ownerReferences"]
            .as_array()
            .and_then(|refs| refs.iter().find(|r| r["kind"] == "Artifact").cloned());
        let artifact = owner.and_then(|o| {
            let name = o["name"].as_str().unwrap_or_default().to_string();
            s.objects
                .get(&(k.0.clone(), "artifacts".into(), k.2.clone(), name))
                .filter(|a| a["metadata"]["uid"] == o["uid"])
                .cloned()
        });
        // The marketplace reads the registry with the platform's registry-admin account.
        let secret = s.objects.get(&(
            "global".to_string(),
            "secrets".to_string(),
            "cpaas-system".to_string(),
            "registry-admin".to_string(),
        ));
        let decode = |k: &str| {
            secret
                .and_then(|o| o["data"][k].as_str())
                .and_then(|v| B64.decode(v).ok())
                .and_then(|v| String::from_utf8(v).ok())
        };
        let basic = decode("username").zip(decode("password"));
        (av, artifact, s.registry.clone(), basic)
    };
    let tag = av["spec"]["tag"].as_str().unwrap_or_default().to_string();
    let result = match (&av["metadata"]["ownerReferences"], artifact) {
        (Value::Array(a), _) if a.is_empty() => {
            Err("aritfactVersion not have OwnerReference".to_string())
        }
        (Value::Null, _) => Err("aritfactVersion not have OwnerReference".to_string()),
        (_, None) => Err("owner Artifact not found".to_string()),
        (_, Some(art)) => {
            let host = art["spec"]["registry"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let repo = art["spec"]["repository"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match registry {
                None => Ok(()),
                Some((reg_host, reg_url)) if reg_host == host => {
                    let mut head =
                        reqwest::Client::new().head(format!("{reg_url}/v2/{repo}/manifests/{tag}"));
                    if let Some((user, password)) = &basic {
                        head = head.basic_auth(user, Some(password));
                    }
                    let found = head
                        .header(
                            header::ACCEPT,
                            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
                             application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json",
                        )
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    if found {
                        Ok(())
                    } else {
                        Err(format!("image {host}/{repo}:{tag} not found"))
                    }
                }
                Some(_) => Err(format!(
                    "image {host}/{repo}:{tag} not found (unknown registry {host})"
                )),
            }
        }
    };
    let st = match result {
        Ok(()) => json!({ "phase": "Present", "reason": "Success", "version": tag }),
        Err(message) => json!({ "phase": "Failed", "reason": "Failed", "message": message }),
    };
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    let rv = s.next_rv();
    if let Some(obj) = s.objects.get_mut(k) {
        obj["status"] = st;
        obj["metadata"]["resourceVersion"] = rv.into();
    }
}
