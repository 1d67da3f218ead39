//! A fault-injecting HTTP reverse proxy to put between violet and a real (plain HTTP) registry.
//!
//! It forwards every request with bodies streamed both ways (a 100 MB upload is never held in
//! memory), records each request's method and path for assertions such as "each shared blob was
//! uploaded once", and applies scripted [`Fault`]s to the requests that match a [`Rule`].
//! `Location` headers that name the registry are rewritten to name the proxy, so upload sessions
//! keep going through it.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HOST, HeaderValue, LOCATION, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use regex::Regex;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;

/// What to do to a matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Read this many bytes of the request body (or all of a shorter one), then drop the
    /// connection without answering: an upload cut off mid-body.
    ResetDuringRequest { after_bytes: u64 },
    /// Forward the request, then drop the connection after this many bytes of the response body.
    ResetDuringResponse { after_bytes: u64 },
    /// Answer with this status and a registry-style error body instead of forwarding.
    Status(u16),
    /// `503 Service Unavailable` with `Retry-After: <seconds>`.
    Unavailable { retry_after_secs: u64 },
    /// `429 Too Many Requests`, with `Retry-After` when given.
    TooManyRequests { retry_after_secs: Option<u64> },
    /// Wait this long, then forward normally.
    Delay(Duration),
}

/// Which requests a fault applies to: method (any when `None`), a regex over the path (without
/// query), how many matching requests to let through first, and how many to affect.
#[derive(Debug, Clone)]
pub struct Rule {
    method: Option<String>,
    path: Regex,
    /// A regex the query string must match too (an upload's `digest=` is only in the query).
    query: Option<Regex>,
    fault: Fault,
    skip: usize,
    times: usize,
}

impl Rule {
    /// Affects the first matching request only; see [`Rule::times`] and [`Rule::after`].
    pub fn new(method: Option<&str>, path_regex: &str, fault: Fault) -> Self {
        Self {
            method: method.map(str::to_ascii_uppercase),
            path: Regex::new(path_regex)
                .unwrap_or_else(|e| panic!("bad path regex {path_regex:?}: {e}")),
            query: None,
            fault,
            skip: 0,
            times: 1,
        }
    }

    /// Affect this many matching requests (`usize::MAX` for all of them).
    pub fn times(mut self, n: usize) -> Self {
        self.times = n;
        self
    }

    /// Only requests whose query string matches `regex` (e.g. one blob's `digest=`).
    pub fn query(mut self, regex: &str) -> Self {
        self.query =
            Some(Regex::new(regex).unwrap_or_else(|e| panic!("bad query regex {regex:?}: {e}")));
        self
    }

    /// Let this many matching requests through before the fault starts.
    pub fn after(mut self, n: usize) -> Self {
        self.skip = n;
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method) && self.path.is_match(path)
    }

    fn matches_query(&self, query: &str) -> bool {
        self.query.as_ref().is_none_or(|q| q.is_match(query))
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// The fault applied, if any.
    pub fault: Option<String>,
}

#[derive(Default)]
struct State {
    rules: VecDeque<Rule>,
    seen: Vec<Seen>,
    /// Set when the proxy serves the OCI referrers API: the descriptors of the manifests with a
    /// `subject` stored through it, by (repository, subject digest).
    referrers: Option<HashMap<(String, String), Vec<serde_json::Value>>>,
    /// The kinds of request counted in flight: uploads and checks from the start (see
    /// [`FaultProxy::most_uploads_in_flight`]), more by [`FaultProxy::watch`].
    watches: Vec<(Rule, Gauge)>,
}

/// Requests of one kind being handled now, and the most there were at once.
#[derive(Default)]
struct Gauge {
    now: usize,
    most: usize,
}

/// A kind of request the proxy counts in flight ([`FaultProxy::watch`]).
#[derive(Clone, Copy, Debug)]
pub struct Watch(usize);

const UPLOADS: Watch = Watch(0);
const CHECKS: Watch = Watch(1);

fn default_watches() -> Vec<(Rule, Gauge)> {
    vec![
        (
            Rule::new(None, "/blobs/uploads/", Fault::Status(0)),
            Gauge::default(),
        ),
        (
            Rule::new(Some("HEAD"), "^/", Fault::Status(0)),
            Gauge::default(),
        ),
    ]
}

/// Counts one request as in flight, for every watch it matches, until dropped (when the proxy
/// has its answer).
struct InFlight(Arc<Shared>, Vec<usize>);

impl InFlight {
    fn start(shared: &Arc<Shared>, method: &str, path: &str) -> Self {
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut matched = Vec::new();
        for (i, (rule, gauge)) in state.watches.iter_mut().enumerate() {
            if rule.matches(method, path) {
                gauge.now += 1;
                gauge.most = gauge.most.max(gauge.now);
                matched.push(i);
            }
        }
        Self(shared.clone(), matched)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        for &i in &self.1 {
            state.watches[i].1.now -= 1;
        }
    }
}

fn referrers_path() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^/v2/(.+)/referrers/(sha256:[0-9a-f]{64})$").unwrap())
}

impl Shared {
    fn referrers_api(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .referrers
            .is_some()
    }

    /// The referrers API's answer: an image index of what names `subject` (empty when nothing
    /// does, never a 404: that is how clients tell the API is there).
    fn referrers_index(&self, repo: &str, subject: &str) -> Response<ProxyBody> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let listed = state
            .referrers
            .as_ref()
            .and_then(|r| r.get(&(repo.to_string(), subject.to_string())))
            .cloned()
            .unwrap_or_default();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": listed,
        });
        let mut r = Response::new(full(index.to_string()));
        r.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
        );
        r
    }

    /// Records a manifest `PUT` with a `subject`; returns the subject's digest.
    fn record_referrer(
        &self,
        repo: &str,
        headers: &hyper::HeaderMap,
        bytes: &[u8],
    ) -> Option<String> {
        let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let subject = doc.pointer("/subject/digest")?.as_str()?.to_string();
        let media_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/vnd.oci.image.manifest.v1+json");
        let mut d = serde_json::json!({
            "mediaType": media_type,
            "digest": violet::digest::Digest::of(bytes).as_str(),
            "size": bytes.len(),
        });
        if let Some(t) = doc
            .get("artifactType")
            .or_else(|| doc.pointer("/config/mediaType"))
        {
            d["artifactType"] = t.clone();
        }
        if let Some(a) = doc.get("annotations") {
            d["annotations"] = a.clone();
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let list = state
            .referrers
            .as_mut()?
            .entry((repo.to_string(), subject.clone()))
            .or_default();
        if !list.iter().any(|x| x["digest"] == d["digest"]) {
            list.push(d);
        }
        Some(subject)
    }
}

struct Shared {
    upstream: String,
    public: String,
    state: Mutex<State>,
    client: Client<HttpConnector, ProxyBody>,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (`host:port`, plain HTTP).
    pub fn start(upstream: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fault-proxy")
            .enable_all()
            .build()
            .expect("build proxy runtime");
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy port");
        std_listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = std_listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            public: addr.to_string(),
            state: Mutex::new(State {
                watches: default_watches(),
                ..State::default()
            }),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let accept_shared = shared.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("tokio listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let conn_shared = accept_shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(conn_shared.clone(), req));
                    // Injected resets end connections with an error on purpose.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    /// `127.0.0.1:PORT` of the proxy, to use as the registry host.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Adds a rule; rules are tried in the order they were added, first match wins.
    pub fn inject(&self, rule: Rule) {
        self.lock().rules.push_back(rule);
    }

    /// From now on, serve the OCI referrers API in front of the registry (as Harbor 2.8+, zot or
    /// distribution 3 do): manifests with a `subject` stored through the proxy are listed by
    /// `GET /v2/<repo>/referrers/<digest>`, and their `PUT` answers with `OCI-Subject`.
    pub fn serve_referrers_api(&self) {
        self.lock().referrers.get_or_insert_with(HashMap::new);
    }

    /// Drops every rule not yet used up.
    pub fn clear_faults(&self) {
        self.lock().rules.clear();
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// How many requests had this method (any when `None`) and a path matching `path_regex`.
    pub fn count(&self, method: Option<&str>, path_regex: &str) -> usize {
        let rule = Rule::new(method, path_regex, Fault::Status(0));
        self.lock()
            .seen
            .iter()
            .filter(|s| rule.matches(&s.method, &s.path))
            .count()
    }

    /// Forgets the recorded requests (rules stay).
    pub fn reset_counts(&self) {
        let mut state = self.lock();
        state.seen.clear();
        for (_, gauge) in &mut state.watches {
            gauge.most = gauge.now;
        }
    }

    /// The most upload requests (`POST`/`PATCH`/`PUT` under `/blobs/uploads/`) the proxy was
    /// handling at once: from its arrival until the registry's answer came back through.
    pub fn most_uploads_in_flight(&self) -> usize {
        self.most_in_flight(UPLOADS)
    }

    /// The most `HEAD` requests (tag and blob checks) the proxy was handling at once.
    pub fn most_checks_in_flight(&self) -> usize {
        self.most_in_flight(CHECKS)
    }

    /// Counts the requests matching `method` (any when `None`) and `path_regex` in flight from
    /// now on; [`Self::most_in_flight`] reads the most there were at once.
    pub fn watch(&self, method: Option<&str>, path_regex: &str) -> Watch {
        let mut state = self.lock();
        state.watches.push((
            Rule::new(method, path_regex, Fault::Status(0)),
            Gauge::default(),
        ));
        Watch(state.watches.len() - 1)
    }

    /// The most requests of `watch` the proxy was handling at once.
    pub fn most_in_flight(&self, watch: Watch) -> usize {
        self.lock().watches[watch.0].1.most
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Never blocks, so dropping the proxy inside an async test is fine too.
            rt.shutdown_background();
        }
    }
}

/// Picks the fault for a request (consuming one use of its rule) and records the request.
fn pick_fault(shared: &Shared, method: &str, path: &str, query: &str) -> Option<Fault> {
    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    let mut fault = None;
    for rule in state.rules.iter_mut() {
        if rule.times == 0 || !rule.matches(method, path) || !rule.matches_query(query) {
            continue;
        }
        if rule.skip > 0 {
            rule.skip -= 1;
            continue;
        }
        rule.times -= 1;
        fault = Some(rule.fault.clone());
        break;
    }
    state.seen.push(Seen {
        method: method.into(),
        path: path.into(),
        fault: fault.as_ref().map(|f| format!("{f:?}")),
    });
    fault
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, BoxError> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let mut truncate = None;
    let _in_flight = InFlight::start(&shared, &method, &path);
    match pick_fault(&shared, &method, &path, &query) {
        None => {}
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::ResetDuringResponse { after_bytes }) => truncate = Some(after_bytes),
        Some(Fault::ResetDuringRequest { after_bytes }) => {
            let mut body = req.into_body();
            let mut read = 0u64;
            while read < after_bytes {
                match body.frame().await {
                    Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len() as u64),
                    _ => break,
                }
            }
            return Err("injected connection reset".into());
        }
        Some(Fault::Status(code)) => return Ok(error_response(req, code, None).await),
        Some(Fault::Unavailable { retry_after_secs }) => {
            return Ok(error_response(req, 503, Some(retry_after_secs)).await);
        }
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            return Ok(error_response(req, 429, retry_after_secs).await);
        }
    }

    let (mut parts, body) = req.into_parts();
    let mut body: ProxyBody = body.map_err(|e| Box::new(e) as BoxError).boxed();
    let mut oci_subject = None;
    if shared.referrers_api() {
        if let Some(c) = referrers_path().captures(&path).filter(|_| method == "GET") {
            return Ok(shared.referrers_index(&c[1], &c[2]));
        }
        if method == "PUT" && path.contains("/manifests/") {
            // A registry with the referrers API indexes a manifest's `subject` as it stores it.
            let bytes = body.collect().await?.to_bytes();
            let repo = path.trim_start_matches("/v2/").split("/manifests/").next();
            oci_subject = shared.record_referrer(repo.unwrap_or_default(), &parts.headers, &bytes);
            body = Full::new(bytes)
                .map_err(|never: Infallible| match never {})
                .boxed();
        }
    }
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("http://{}{pq}", shared.upstream).parse()?;
    parts
        .headers
        .insert(HOST, HeaderValue::from_str(&shared.upstream)?);
    let upstream_req = Request::from_parts(parts, body);
    let resp = match shared.client.request(upstream_req).await {
        Ok(r) => r,
        Err(e) => {
            let mut r = Response::new(full(format!(
                "proxy: upstream {} failed: {e}",
                shared.upstream
            )));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            return Ok(r);
        }
    };
    let (mut parts, body) = resp.into_parts();
    if let Some(subject) = oci_subject.filter(|_| parts.status.is_success()) {
        parts
            .headers
            .insert("oci-subject", HeaderValue::from_str(&subject)?);
    }
    if let Some(loc) = parts.headers.get(LOCATION).and_then(|v| v.to_str().ok()) {
        let rewritten = loc.replacen(
            &format!("//{}", shared.upstream),
            &format!("//{}", shared.public),
            1,
        );
        parts
            .headers
            .insert(LOCATION, HeaderValue::from_str(&rewritten)?);
    }
    let body = body.map_err(|e| Box::new(e) as BoxError);
    let body = match truncate {
        Some(after) => Truncate {
            inner: body.boxed(),
            left: after,
            yielded: false,
        }
        .boxed(),
        None => body.boxed(),
    };
    Ok(Response::from_parts(parts, body))
}

/// Reads the request body to its end (so the connection stays usable, as with a real server that
/// rejects an upload after reading it) and answers with a registry-style error.
async fn error_response(
    req: Request<Incoming>,
    code: u16,
    retry_after: Option<u64>,
) -> Response<ProxyBody> {
    let mut body = req.into_body();
    while let Some(Ok(_)) = body.frame().await {}
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let msg = format!(r#"{{"errors":[{{"code":"UNKNOWN","message":"injected fault: {code}"}}]}}"#);
    let mut r = Response::new(full(msg));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    if let Some(secs) = retry_after {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

fn full(s: String) -> ProxyBody {
    Full::new(Bytes::from(s))
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// A body that passes `left` bytes through, then fails (which makes hyper drop the connection).
struct Truncate {
    inner: ProxyBody,
    left: u64,
    /// Whether hyper was given a chance to flush the bytes passed through before the failure:
    /// it flushes its buffer whenever the body is pending, and would discard it on an error.
    yielded: bool,
}

impl Body for Truncate {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.left == 0 {
            if !self.yielded {
                self.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            return Poll::Ready(Some(Err("injected connection reset".into())));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) => {
                    if data.len() as u64 > self.left {
                        data.truncate(self.left as usize);
                    }
                    self.left -= data.len() as u64;
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use violet::digest::Digest;

    use super::*;
    use crate::support::registry::Registry;
    use crate::support::{Output, TestContext, run};

    /// curl through the proxy: `-s -S -i` so the status line and headers are in stdout.
    fn curl(ctx: &TestContext, args: &[&str]) -> Output {
        let mut cmd = Command::new("curl");
        ctx.clean_env(&mut cmd);
        cmd.args(["-s", "-S", "-i", "--max-time", "60"]).args(args);
        run(cmd, None)
    }

    /// curl saving only the response body to `out`.
    fn curl_body(ctx: &TestContext, out: &std::path::Path, url: &str) -> Output {
        let mut cmd = Command::new("curl");
        ctx.clean_env(&mut cmd);
        cmd.args([
            "-s",
            "-S",
            "-f",
            "--max-time",
            "60",
            "-o",
            &out.display().to_string(),
            url,
        ]);
        run(cmd, None)
    }

    fn status(out: &Output) -> u16 {
        out.stdout
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn header<'a>(out: &'a Output, name: &str) -> Option<&'a str> {
        out.stdout.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// POST + monolithic PUT of `file` to `repo`; returns the PUT's output.
    fn upload(
        ctx: &TestContext,
        proxy: &FaultProxy,
        repo: &str,
        file: &std::path::Path,
        digest: &str,
    ) -> Output {
        let post = curl(
            ctx,
            &[
                "-X",
                "POST",
                &format!("http://{}/v2/{repo}/blobs/uploads/", proxy.host()),
            ],
        );
        assert_eq!(status(&post), 202, "{}", post.stdout);
        let location = header(&post, "location")
            .expect("upload location")
            .to_string();
        assert!(
            location.contains(&proxy.host()),
            "Location {location} does not point at the proxy"
        );
        let put_url = format!("{location}&digest={digest}");
        curl(
            ctx,
            &[
                "-X",
                "PUT",
                "-H",
                "Expect:",
                "-H",
                "Content-Type: application/octet-stream",
                "-T",
                &file.display().to_string(),
                &put_url,
            ],
        )
    }

    fn blob(ctx: &TestContext, size: usize) -> (std::path::PathBuf, Digest) {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let path = ctx.file("blob.bin");
        std::fs::write(&path, &data).expect("write blob");
        (path, Digest::of(&data))
    }

    #[test]
    fn forwards_streams_counts_and_rewrites_locations() {
        let ctx = TestContext::new();
        let registry = Registry::plain();
        let proxy = FaultProxy::start(&registry.host());
        let (file, digest) = blob(&ctx, 3 << 20);
        let put = upload(&ctx, &proxy, "test/blob", &file, digest.as_str());
        assert_eq!(status(&put), 201, "{}\n{}", put.stdout, put.stderr);
        let head = curl(
            &ctx,
            &[
                "-I",
                &format!("http://{}/v2/test/blob/blobs/{digest}", proxy.host()),
            ],
        );
        assert_eq!(status(&head), 200, "{}", head.stdout);
        assert_eq!(header(&head, "content-length"), Some("3145728"));
        assert_eq!(
            proxy.count(Some("POST"), r"^/v2/test/blob/blobs/uploads/$"),
            1
        );
        assert_eq!(
            proxy.count(Some("PUT"), r"^/v2/test/blob/blobs/uploads/"),
            1
        );
        assert_eq!(proxy.count(None, r"^/v2/"), 3);
    }

    #[test]
    fn injects_statuses_then_lets_requests_through() {
        let ctx = TestContext::new();
        let registry = Registry::plain();
        let proxy = FaultProxy::start(&registry.host());
        let url = format!("http://{}/v2/", proxy.host());
        proxy.inject(Rule::new(Some("GET"), "^/v2/$", Fault::Status(500)).after(1));
        proxy.inject(Rule::new(
            Some("GET"),
            "^/v2/$",
            Fault::Unavailable {
                retry_after_secs: 3,
            },
        ));
        proxy.inject(Rule::new(
            Some("GET"),
            "^/v2/$",
            Fault::TooManyRequests {
                retry_after_secs: None,
            },
        ));
        // The first request passes rule 1 (after 1) and hits rule 2.
        let first = curl(&ctx, &[&url]);
        assert_eq!(status(&first), 503);
        assert_eq!(header(&first, "retry-after"), Some("3"));
        assert_eq!(status(&curl(&ctx, &[&url])), 500);
        assert_eq!(status(&curl(&ctx, &[&url])), 429);
        assert_eq!(status(&curl(&ctx, &[&url])), 200);
        let faults: Vec<bool> = proxy.requests().iter().map(|s| s.fault.is_some()).collect();
        assert_eq!(faults, [true, true, true, false]);
    }

    #[test]
    fn resets_connections_mid_body() {
        let ctx = TestContext::new();
        let registry = Registry::plain();
        let proxy = FaultProxy::start(&registry.host());
        let (file, digest) = blob(&ctx, 2 << 20);
        proxy.inject(Rule::new(
            Some("PUT"),
            r"/blobs/uploads/",
            Fault::ResetDuringRequest {
                after_bytes: 64 << 10,
            },
        ));
        let cut = upload(&ctx, &proxy, "test/reset", &file, digest.as_str());
        assert_ne!(
            cut.code, 0,
            "the upload should have been cut off: {}",
            cut.stdout
        );
        let retried = upload(&ctx, &proxy, "test/reset", &file, digest.as_str());
        assert_eq!(
            status(&retried),
            201,
            "{}\n{}",
            retried.stdout,
            retried.stderr
        );

        proxy.inject(Rule::new(
            Some("GET"),
            r"/blobs/sha256:",
            Fault::ResetDuringResponse { after_bytes: 1000 },
        ));
        let out = ctx.file("download.bin");
        let blob_url = format!("http://{}/v2/test/reset/blobs/{digest}", proxy.host());
        let get = curl_body(&ctx, &out, &blob_url);
        assert_eq!(
            get.code, 18,
            "curl should report a partial transfer: {}",
            get.stderr
        );
        assert_eq!(std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0), 1000);
        let get = curl_body(&ctx, &out, &blob_url);
        assert_eq!(get.code, 0, "{}", get.stderr);
        assert_eq!(
            Digest::of(&std::fs::read(&out).expect("downloaded blob")),
            digest
        );
    }
}
