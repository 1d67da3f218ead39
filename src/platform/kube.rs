//! Kubernetes access: through the platform proxy `<platform>/kubernetes/<cluster>` with a bearer
//! token, or straight to API servers named by kubeconfig contexts. Objects travel as JSON values,
//! and Kubernetes `Status` answers become [`PlatformError`]s with the server's message.

use std::collections::BTreeMap;
use std::time::Duration;

use ::kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams, Preconditions};
use ::kube::config::{KubeConfigOptions, Kubeconfig};
use ::kube::core::{ApiResource, GroupVersionKind};
use base64::Engine;
use reqwest::header::{AUTHORIZATION, HeaderValue, USER_AGENT};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::platform::target::{PlatformAuth, Target, TlsOptions};
use crate::platform::{PlatformError, Result, login, transport_error};

/// The cluster the platform itself runs in: plugins, discovery and the default for operators.
pub const GLOBAL: &str = "global";

/// The platform's system namespace: where the catalog resources and the registry secret live.
pub const NAMESPACE: &str = "cpaas-system";

/// The `User-Agent` of every platform request, so the platform's audit log can attribute them.
pub fn user_agent() -> String {
    format!("violet/{}", env!("CARGO_PKG_VERSION"))
}

/// The `fieldManager` of every write: the platform records violet as the owner of the fields it sets.
pub const FIELD_MANAGER: &str = "violet";

/// How long a call may wait for a cluster that answers 429/502/503/504 through the proxy. kube's
/// own retry policy (15 retries, up to 1000 s apart, silent) is turned off in favour of this one,
/// which is bounded by `retries` and a total `deadline` and says on stderr that it is waiting.
#[derive(Debug, Clone, Copy)]
pub struct Waiting {
    pub retries: u32,
    pub deadline: Duration,
}

impl Default for Waiting {
    fn default() -> Self {
        Waiting {
            retries: 5,
            deadline: Duration::from_secs(120),
        }
    }
}

impl Waiting {
    fn delay(attempt: u32) -> Duration {
        Duration::from_millis(500u64.saturating_mul(1 << attempt.min(4)))
    }
}

/// A resource type we read or write.
#[derive(Debug, Clone)]
pub struct Resource {
    pub api: ApiResource,
    pub namespaced: bool,
}

impl Resource {
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        Self {
            api: ApiResource::from_gvk_with_plural(&gvk, plural),
            namespaced,
        }
    }
}

/// A logged-in connection; hands out per-cluster clients.
pub struct Platform {
    /// What to name in messages: the platform URL or `kubeconfig <path>`.
    address: String,
    mode: Mode,
    clusters: Mutex<BTreeMap<String, Cluster>>,
    waiting: Waiting,
}

enum Mode {
    Proxy {
        token: String,
        tls: TlsOptions,
    },
    Kubeconfig {
        path: std::path::PathBuf,
        config: Box<Kubeconfig>,
        context: Option<String>,
        insecure: bool,
    },
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// One cluster's API, reached through the platform or a kubeconfig context.
#[derive(Clone)]
pub struct Cluster {
    pub name: String,
    address: String,
    client: ::kube::Client,
    waiting: Waiting,
}

impl Platform {
    /// Logs in (username/password) and returns the connection. Nothing is checked against a
    /// cluster yet: [`Platform::cluster`] does that per cluster.
    pub async fn connect(target: Target, tls: &TlsOptions) -> Result<Platform> {
        match target {
            Target::Platform {
                address,
                auth,
                client_id,
            } => {
                let token = match auth {
                    PlatformAuth::Token(t) => t,
                    PlatformAuth::Password { username, password } => {
                        let http = login::http_client(tls)?;
                        login::login(&http, &address, &client_id, &username, &password).await?
                    }
                };
                Ok(Platform {
                    address,
                    mode: Mode::Proxy {
                        token,
                        tls: tls.clone(),
                    },
                    clusters: Mutex::new(BTreeMap::new()),
                    waiting: Waiting::default(),
                })
            }
            Target::Kubeconfig { path, context } => {
                let config =
                    Kubeconfig::read_from(&path).map_err(|e| PlatformError::Kubeconfig {
                        path: path.display().to_string(),
                        detail: e.to_string(),
                    })?;
                Ok(Platform {
                    address: format!("kubeconfig {}", path.display()),
                    mode: Mode::Kubeconfig {
                        path,
                        config: Box::new(config),
                        context,
                        insecure: tls.insecure,
                    },
                    clusters: Mutex::new(BTreeMap::new()),
                    waiting: Waiting::default(),
                })
            }
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Bounds the waiting for sick clusters (`--retries`).
    pub fn set_waiting(&mut self, waiting: Waiting) {
        self.waiting = waiting;
    }

    /// The client for one cluster, checked once with `GET /version`: an unknown cluster (404 from
    /// the proxy), a rejected token and TLS problems surface here, before anything is written.
    pub async fn cluster(&self, name: &str) -> Result<Cluster> {
        let mut cache = self.clusters.lock().await;
        if let Some(c) = cache.get(name) {
            return Ok(c.clone());
        }
        let config = self.config_for(name).await?;
        let client =
            ::kube::Client::try_from(config).map_err(|e| transport_error(&self.address, &e))?;
        let cluster = Cluster {
            name: name.to_string(),
            address: self.address.clone(),
            client,
            waiting: self.waiting,
        };
        let probe = cluster
            .retrying("connect", || cluster.client.apiserver_version())
            .await;
        match probe {
            Ok(_) => {}
            Err(Failed {
                error: ::kube::Error::Api(s),
                ..
            }) if s.code == 404 => {
                return Err(PlatformError::UnknownCluster {
                    address: self.address.clone(),
                    cluster: name.to_string(),
                });
            }
            Err(e) => return Err(cluster.error(e, "connect")),
        }
        cache.insert(name.to_string(), cluster.clone());
        Ok(cluster)
    }

    async fn config_for(&self, name: &str) -> Result<::kube::Config> {
        match &self.mode {
            Mode::Proxy { token, tls } => {
                let url = format!("{}/kubernetes/{name}", self.address);
                let mut cfg = ::kube::Config::new(url.parse().map_err(|e| {
                    PlatformError::Usage(format!(
                        "cluster name {name:?} does not make a valid URL: {e}"
                    ))
                })?);
                cfg.default_namespace = NAMESPACE.to_string();
                cfg.accept_invalid_certs = tls.insecure;
                cfg.connect_timeout = Some(Duration::from_secs(15));
                cfg.default_retry = false;
                if let Ok(ua) = HeaderValue::from_str(&user_agent()) {
                    cfg.headers.push((USER_AGENT, ua));
                }
                cfg.read_timeout = Some(Duration::from_secs(60));
                if !tls.ca_files.is_empty() {
                    let mut ders = Vec::new();
                    for path in &tls.ca_files {
                        let pem = std::fs::read_to_string(path).map_err(|source| {
                            PlatformError::Write {
                                path: path.clone(),
                                source,
                            }
                        })?;
                        ders.extend(pem_certificates(&pem));
                    }
                    cfg.root_cert = Some(ders);
                }
                let mut bearer =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        PlatformError::Usage(
                            "the platform token contains invalid characters".into(),
                        )
                    })?;
                // Keeps the token out of any Debug rendering of the request or config.
                bearer.set_sensitive(true);
                cfg.headers.push((AUTHORIZATION, bearer));
                Ok(cfg)
            }
            Mode::Kubeconfig {
                path,
                config,
                context,
                insecure,
            } => {
                let names: Vec<&str> = config.contexts.iter().map(|c| c.name.as_str()).collect();
                let chosen = if names.contains(&name) {
                    Some(name.to_string())
                } else if name == GLOBAL {
                    context.clone()
                } else {
                    return Err(PlatformError::Kubeconfig {
                        path: path.display().to_string(),
                        detail: format!(
                            "no context named {name:?} (contexts: {})",
                            names.join(", ")
                        ),
                    });
                };
                let options = KubeConfigOptions {
                    context: chosen,
                    ..Default::default()
                };
                let mut cfg = ::kube::Config::from_custom_kubeconfig((**config).clone(), &options)
                    .await
                    .map_err(|e| PlatformError::Kubeconfig {
                        path: path.display().to_string(),
                        detail: e.to_string(),
                    })?;
                if *insecure {
                    cfg.accept_invalid_certs = true;
                }
                cfg.default_retry = false;
                if let Ok(ua) = HeaderValue::from_str(&user_agent()) {
                    cfg.headers.push((USER_AGENT, ua));
                }
                Ok(cfg)
            }
        }
    }
}

/// The DER bodies of the `CERTIFICATE` blocks of a PEM bundle.
fn pem_certificates(pem: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in pem.lines().map(str::trim) {
        if line == "-----BEGIN CERTIFICATE-----" {
            current = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            if let Some(b64) = current.take()
                && let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64)
            {
                out.push(der);
            }
        } else if let Some(buf) = current.as_mut() {
            buf.push_str(line);
        }
    }
    out
}

impl Cluster {
    fn api(&self, r: &Resource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) if r.namespaced => Api::namespaced_with(self.client.clone(), ns, &r.api),
            _ => Api::all_with(self.client.clone(), &r.api),
        }
    }

    /// Runs `call` again while the proxy answers 429/502/503/504, within [`Waiting`], saying so on
    /// stderr. A failure comes with the number of attempts made, for the final message.
    async fn retrying<T, F, Fut>(&self, action: &str, call: F) -> std::result::Result<T, Failed>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, ::kube::Error>>,
    {
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            match call().await {
                Err(::kube::Error::Api(s))
                    if matches!(s.code, 429 | 502 | 503 | 504)
                        && attempt < self.waiting.retries
                        && started.elapsed() + Waiting::delay(attempt) < self.waiting.deadline =>
                {
                    let delay = Waiting::delay(attempt);
                    attempt += 1;
                    eprintln!(
                        "waiting: cluster {} answered HTTP {} through the platform proxy {} ({action}); retry {attempt}/{} in {:.1}s",
                        self.name,
                        s.code,
                        self.address,
                        self.waiting.retries,
                        delay.as_secs_f32()
                    );
                    tokio::time::sleep(delay).await;
                }
                Ok(v) => return Ok(v),
                Err(error) => {
                    return Err(Failed {
                        error,
                        attempts: attempt + 1,
                    });
                }
            }
        }
    }

    /// Turns a kube error into one clear line naming the cluster and the action.
    fn error(&self, failed: Failed, action: &str) -> PlatformError {
        let Failed { error, attempts } = failed;
        match error {
            ::kube::Error::Api(s) if matches!(s.code, 502..=504) => {
                let text = s.message.trim();
                // An HTML error page or an empty body says nothing a user can act on.
                let detail = if text.is_empty() || text.starts_with('<') || text.len() > 200 {
                    String::new()
                } else {
                    format!(" ({})", text.replace(['\n', '\r'], " "))
                };
                PlatformError::ClusterUnavailable {
                    address: self.address.clone(),
                    cluster: self.name.clone(),
                    action: action.to_string(),
                    code: s.code,
                    attempts,
                    detail,
                }
            }
            ::kube::Error::Api(s) => {
                let message = if !s.message.is_empty() {
                    s.message.clone()
                } else if !s.reason.is_empty() {
                    s.reason.clone()
                } else {
                    format!("HTTP {}", s.code)
                };
                match s.code {
                    401 => PlatformError::BadToken {
                        address: self.address.clone(),
                    },
                    403 => PlatformError::Forbidden {
                        address: self.address.clone(),
                        action: format!("{action} in cluster {}", self.name),
                        message,
                    },
                    code => PlatformError::Api {
                        cluster: self.name.clone(),
                        action: action.to_string(),
                        code,
                        message,
                    },
                }
            }
            other => transport_error(&self.address, &other),
        }
    }

    fn describe(r: &Resource, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if r.namespaced => format!("{} {ns}/{name}", r.api.kind),
            _ => format!("{} {name}", r.api.kind),
        }
    }

    /// The object, or `None` when it does not exist.
    pub async fn get(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>> {
        let api = self.api(r, namespace);
        match self.retrying("get", || api.get_opt(name)).await {
            Ok(Some(o)) => Ok(Some(to_value(o))),
            Ok(None) => Ok(None),
            Err(e) => Err(self.error(e, &format!("get {}", Self::describe(r, namespace, name)))),
        }
    }

    /// Objects matching a label selector (`k=v,k2=v2`).
    pub async fn list(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        selector: &str,
    ) -> Result<Vec<Value>> {
        let lp = ListParams::default().labels(selector);
        let api = self.api(r, namespace);
        match self.retrying("list", || api.list(&lp)).await {
            Ok(l) => Ok(l.items.into_iter().map(to_value).collect()),
            Err(e) => Err(self.error(e, &format!("list {} -l {selector}", r.api.plural))),
        }
    }

    pub async fn create(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        obj: &Value,
    ) -> Result<Value> {
        self.write(r, namespace, obj, false).await
    }

    /// Full update; `obj` carries the `resourceVersion` it was based on, so a concurrent change is a 409.
    pub async fn replace(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        obj: &Value,
    ) -> Result<Value> {
        self.write(r, namespace, obj, true).await
    }

    /// A create (POST) or a full update (PUT), retried; a failure names the verb and the object.
    async fn write(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        obj: &Value,
        replace: bool,
    ) -> Result<Value> {
        let name = obj_name(obj);
        let o = from_value(obj)?;
        let api = self.api(r, namespace);
        let pp = post_params();
        let verb = if replace { "update" } else { "create" };
        let written = if replace {
            self.retrying(verb, || api.replace(&name, &pp, &o)).await
        } else {
            self.retrying(verb, || api.create(&pp, &o)).await
        };
        written.map(to_value).map_err(|e| {
            self.error(
                e,
                &format!("{verb} {}", Self::describe(r, namespace, &name)),
            )
        })
    }

    /// Deletes an object; `Ok(false)` when it was already gone (a 404 is not a failure for a
    /// cleanup: an owner cascade or another client may have removed it first).
    pub async fn delete(&self, r: &Resource, namespace: Option<&str>, name: &str) -> Result<bool> {
        self.delete_if(r, namespace, name, None).await
    }

    /// Deletes an object only if it is still the one that was read: `uid` and `resourceVersion`
    /// go as preconditions, so the server answers 409 when it changed since (or was re-created).
    pub async fn delete_if(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        name: &str,
        precondition: Option<(&str, &str)>,
    ) -> Result<bool> {
        let dp = DeleteParams {
            preconditions: precondition.map(|(uid, rv)| Preconditions {
                uid: Some(uid.to_string()),
                resource_version: Some(rv.to_string()),
            }),
            ..Default::default()
        };
        let api = self.api(r, namespace);
        match self.retrying("delete", || api.delete(name, &dp)).await {
            Ok(_) => Ok(true),
            Err(Failed {
                error: ::kube::Error::Api(s),
                ..
            }) if s.code == 404 => Ok(false),
            Err(e) => Err(self.error(e, &format!("delete {}", Self::describe(r, namespace, name)))),
        }
    }
}

/// A call that failed for good, after `attempts` tries.
struct Failed {
    error: ::kube::Error,
    attempts: u32,
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

fn obj_name(obj: &Value) -> String {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn to_value(o: DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

fn from_value(v: &Value) -> Result<DynamicObject> {
    serde_json::from_value(v.clone()).map_err(|e| {
        PlatformError::Usage(format!(
            "internal: object {} is not a Kubernetes object: {e}",
            obj_name(v)
        ))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn pem_bundle() {
        let pem = "junk\n-----BEGIN CERTIFICATE-----\nAAEC\nAw==\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBA==\n-----END CERTIFICATE-----\n";
        assert_eq!(
            super::pem_certificates(pem),
            vec![vec![0, 1, 2, 3], vec![4]]
        );
    }
}
