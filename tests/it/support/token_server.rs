//! A docker-token-spec server for the token-auth registry: ES256 JWTs whose `x5c` header carries
//! the signing certificate the registry trusts (`rootcertbundle`).
//!
//! `GET /token?service&scope…` with Basic credentials (or none), and OAuth2 `POST /token` with
//! `grant_type=password` (answers a refresh token too) or `grant_type=refresh_token`.
//! Authenticated users get every action they ask for; anonymous callers get `pull` only with
//! `anonymous_pull`. Counters let tests see how many tokens were fetched.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey;

pub const USER: &str = "testuser";
pub const PASSWORD: &str = "testpass";
pub const SERVICE: &str = "test-registry";
pub const ISSUER: &str = "test-issuer";
/// The refresh token (docker "identitytoken") the server accepts for `USER`.
pub const REFRESH_TOKEN: &str = "test-refresh-token";

#[derive(Default)]
pub struct Counters {
    pub get: AtomicU64,
    pub post: AtomicU64,
    pub refused: AtomicU64,
}

struct Shared {
    key: SigningKey,
    x5c: String,
    anonymous_pull: bool,
    ttl: u64,
    /// The next N tokens are issued already expired (beyond the registry's 60 s leeway) while
    /// announcing a normal `expires_in`, so the client caches them and meets a 401.
    expire_next: AtomicU32,
    counters: Counters,
    /// Scopes of every request, in order.
    scopes: std::sync::Mutex<Vec<String>>,
}

pub struct TokenServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    /// Serves on its own thread and runtime, so it answers whatever runtime the test uses.
    pub fn start(key_pem: &Path, cert_pem: &Path, anonymous_pull: bool) -> Self {
        let key_text = std::fs::read_to_string(key_pem).expect("read token key");
        let key = SigningKey::from_pkcs8_pem(&key_text).expect("token key is PKCS#8 P-256");
        let cert_text = std::fs::read_to_string(cert_pem).expect("read token cert");
        let b64: String = cert_text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        // x5c holds standard base64 DER: exactly the PEM body.
        let x5c = STANDARD.encode(STANDARD.decode(&b64).expect("PEM body is base64"));
        let shared = Arc::new(Shared {
            key,
            x5c,
            anonymous_pull,
            ttl: 300,
            expire_next: AtomicU32::new(0),
            counters: Counters::default(),
            scopes: std::sync::Mutex::new(Vec::new()),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind token server");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new()
            .route("/token", get(get_token).post(post_token))
            .with_state(shared.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .expect("token server");
            });
        });
        Self {
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// Tokens fetched so far (GET and POST, refused ones excluded).
    pub fn issued(&self) -> u64 {
        self.shared.counters.get.load(Ordering::SeqCst)
            + self.shared.counters.post.load(Ordering::SeqCst)
    }

    pub fn expire_next(&self, n: u32) {
        self.shared.expire_next.store(n, Ordering::SeqCst);
    }

    pub fn scopes_seen(&self) -> Vec<String> {
        self.shared.scopes.lock().expect("scopes").clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn error(status: StatusCode, code: &str) -> Response {
    let mut r = (
        status,
        axum::Json(serde_json::json!({"errors": [{"code": code, "message": code}]})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"token\""),
        );
    }
    r
}

/// `repository:a/b:pull,push` → access entries as the registry expects them.
fn access(scopes: &[String], anonymous: bool) -> Vec<serde_json::Value> {
    scopes
        .iter()
        .flat_map(|s| s.split(' '))
        .filter_map(|one| {
            let (typ, rest) = one.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            let actions: Vec<&str> = actions
                .split(',')
                .filter(|a| !a.is_empty() && (!anonymous || *a == "pull"))
                .collect();
            Some(serde_json::json!({"type": typ, "name": name, "actions": actions}))
        })
        .collect()
}

impl Shared {
    fn grant(&self, user: Option<&str>, scopes: &[String], refresh: bool) -> Response {
        self.scopes
            .lock()
            .expect("scopes")
            .extend(scopes.iter().cloned());
        let access = match user {
            Some(_) => access(scopes, false),
            None if self.anonymous_pull => access(scopes, true),
            None => Vec::new(),
        };
        let issued = now();
        let expired = self
            .expire_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let exp = if expired {
            issued - 600
        } else {
            issued + self.ttl
        };
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]});
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": user.unwrap_or(""), "aud": SERVICE,
            "exp": exp, "nbf": issued - 1000, "iat": issued - 1000,
            "jti": format!("{issued}-{}", self.counters.get.load(Ordering::SeqCst) + self.counters.post.load(Ordering::SeqCst)),
            "access": access,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig: Signature = self.key.sign(input.as_bytes());
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()));
        let mut body =
            serde_json::json!({"token": token, "access_token": token, "expires_in": self.ttl});
        if refresh {
            body["refresh_token"] = serde_json::Value::String(REFRESH_TOKEN.into());
        }
        axum::Json(body).into_response()
    }
}

async fn get_token(
    State(s): State<Arc<Shared>>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    if q.iter().any(|(k, v)| k == "service" && v != SERVICE) {
        return error(StatusCode::BAD_REQUEST, "UNSUPPORTED");
    }
    let scopes: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let user = match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        None => None,
        Some(v) => {
            let decoded = v
                .strip_prefix("Basic ")
                .and_then(|b| STANDARD.decode(b).ok())
                .and_then(|b| String::from_utf8(b).ok());
            match decoded.as_deref().and_then(|d| d.split_once(':')) {
                Some((USER, PASSWORD)) => Some(USER),
                _ => {
                    s.counters.refused.fetch_add(1, Ordering::SeqCst);
                    return error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
                }
            }
        }
    };
    s.counters.get.fetch_add(1, Ordering::SeqCst);
    s.grant(user, &scopes, false)
}

async fn post_token(State(s): State<Arc<Shared>>, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    if form.get("service").is_some_and(|v| v != SERVICE) {
        return error(StatusCode::BAD_REQUEST, "UNSUPPORTED");
    }
    let scopes: Vec<String> = form
        .get("scope")
        .map(|s| vec![s.clone()])
        .unwrap_or_default();
    let ok = match form.get("grant_type").map(String::as_str) {
        Some("password") => {
            form.get("username").map(String::as_str) == Some(USER)
                && form.get("password").map(String::as_str) == Some(PASSWORD)
        }
        Some("refresh_token") => {
            form.get("refresh_token").map(String::as_str) == Some(REFRESH_TOKEN)
        }
        _ => return error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    };
    if !ok {
        s.counters.refused.fetch_add(1, Ordering::SeqCst);
        return error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }
    s.counters.post.fetch_add(1, Ordering::SeqCst);
    s.grant(Some(USER), &scopes, true)
}
