//! An adversarial registry front: a real (plain HTTP) `docker-registry` behind two origins.
//!
//! * The **front** (`host()`) is what violet is told to push to. It forwards everything to the
//!   registry, but rewrites every upload `Location` to an absolute URL on the **storage** origin
//!   (another port of 127.0.0.1, so another origin), and with [`Adversarial::redirect_blob_gets`]
//!   answers blob GETs with a `307` to the storage origin, as registries fronting object storage do.
//! * The **storage** origin records every request with the `Authorization` header it carried, and
//!   forwards it to the registry with its own credentials (the way a pre-signed storage URL needs
//!   none from the client), so a push that keeps credentials at their origin still succeeds.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HOST, HeaderValue, LOCATION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::registry::{PASSWORD, USER};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;

/// Which origin a request reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Front,
    Storage,
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub origin: Origin,
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// The `Authorization` header as sent (tests assert it is absent on the storage origin).
    pub authorization: Option<String>,
}

struct Shared {
    upstream: String,
    storage: String,
    redirect_gets: Mutex<bool>,
    storage_authorises: Mutex<bool>,
    seen: Mutex<Vec<Arrival>>,
    client: Client<HttpConnector, ProxyBody>,
}

/// A running front and storage pair; stops when dropped.
pub struct Adversarial {
    front: SocketAddr,
    storage: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Adversarial {
    /// Starts both origins in front of `upstream` (`host:port`, plain HTTP, htpasswd with the
    /// test user or no auth).
    pub fn start(upstream: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("adversarial")
            .enable_all()
            .build()
            .expect("build adversarial runtime");
        let bind = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port");
            l.set_nonblocking(true).expect("nonblocking listener");
            l
        };
        let (front_l, storage_l) = (bind(), bind());
        let front = front_l.local_addr().expect("front address");
        let storage = storage_l.local_addr().expect("storage address");
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            storage: storage.to_string(),
            redirect_gets: Mutex::new(false),
            storage_authorises: Mutex::new(true),
            seen: Mutex::new(Vec::new()),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        for (listener, origin) in [(front_l, Origin::Front), (storage_l, Origin::Storage)] {
            let shared = shared.clone();
            runtime.spawn(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| handle(shared.clone(), origin, req));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        }
        Self {
            front,
            storage,
            shared,
            runtime: Some(runtime),
        }
    }

    /// `127.0.0.1:PORT` of the front: the registry host to give violet.
    pub fn host(&self) -> String {
        self.front.to_string()
    }

    /// `127.0.0.1:PORT` of the storage origin.
    pub fn storage_host(&self) -> String {
        self.storage.to_string()
    }

    /// From now on, blob GETs on the front answer `307` to the same path on the storage origin.
    pub fn redirect_blob_gets(&self) {
        *self
            .shared
            .redirect_gets
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = true;
    }

    /// From now on the storage origin forwards requests as they came (no credentials of its
    /// own): the registry refuses them, as a misconfigured external URL makes it.
    pub fn storage_without_credentials(&self) {
        *self
            .shared
            .storage_authorises
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = false;
    }

    /// Every request so far, in arrival order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Requests that reached `origin`.
    pub fn at(&self, origin: Origin) -> Vec<Arrival> {
        self.arrivals()
            .into_iter()
            .filter(|a| a.origin == origin)
            .collect()
    }
}

impl Drop for Adversarial {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn full(s: String) -> ProxyBody {
    Full::new(Bytes::from(s))
        .map_err(|never: Infallible| match never {})
        .boxed()
}

async fn handle(
    shared: Arc<Shared>,
    origin: Origin,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, BoxError> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let pq = req
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    shared
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Arrival {
            origin,
            method: method.clone(),
            path: path.clone(),
            authorization: req
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        });
    let redirect = *shared
        .redirect_gets
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if origin == Origin::Front && redirect && method == "GET" && path.contains("/blobs/sha256:") {
        let mut r = Response::new(full(String::new()));
        *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
        r.headers_mut().insert(
            LOCATION,
            HeaderValue::from_str(&format!("http://{}{pq}", shared.storage))?,
        );
        return Ok(r);
    }

    let (mut parts, body) = req.into_parts();
    parts.uri = format!("http://{}{pq}", shared.upstream).parse()?;
    parts
        .headers
        .insert(HOST, HeaderValue::from_str(&shared.upstream)?);
    let authorises = *shared
        .storage_authorises
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if origin == Origin::Storage && authorises {
        // The storage origin authorises itself: the client must not have to send anything.
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
        parts.headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {basic}"))?,
        );
    }
    let upstream_req =
        Request::from_parts(parts, body.map_err(|e| Box::new(e) as BoxError).boxed());
    let resp = match shared.client.request(upstream_req).await {
        Ok(r) => r,
        Err(e) => {
            let mut r = Response::new(full(format!("upstream failed: {e}")));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            return Ok(r);
        }
    };
    let (mut parts, body) = resp.into_parts();
    // Every upload session continues on the storage origin, as an absolute URL.
    if let Some(loc) = parts.headers.get(LOCATION).and_then(|v| v.to_str().ok())
        && loc.contains("/blobs/uploads/")
    {
        let tail = match loc.find("/v2/") {
            Some(i) => loc[i..].to_string(),
            None => loc.to_string(),
        };
        let moved = format!("http://{}{tail}", shared.storage);
        parts
            .headers
            .insert(LOCATION, HeaderValue::from_str(&moved)?);
    }
    Ok(Response::from_parts(
        parts,
        body.map_err(|e| Box::new(e) as BoxError).boxed(),
    ))
}
