//! The registry client against a real `docker-registry`: every auth mode, TLS, upload strategies,
//! raw manifests, and the failures users meet (wrong password, unknown CA, plain vs TLS).

use std::io;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use violet::digest::Digest;
use violet::error::{ExitCode, UserError};
use violet::registry::{BlobStream, Client, Credentials, RegistryConfig, RegistryError};

use crate::support::adversarial::{Adversarial, Origin};
use crate::support::proxy::{Fault, FaultProxy, Rule};
use crate::support::registry::{Auth, PASSWORD, Registry, RegistryOptions, USER};
use crate::support::{TestContext, shown};

fn config(reg: &Registry, credentials: Credentials) -> RegistryConfig {
    RegistryConfig {
        host: reg.host(),
        plain: reg.ca_file().is_none(),
        insecure: false,
        ca_files: reg.ca_file().into_iter().collect(),
        credentials,
        retries: 2,
        chunk_size: None,
    }
}

fn user() -> Credentials {
    Credentials::Basic {
        username: USER.into(),
        password: PASSWORD.into(),
    }
}

fn client(reg: &Registry, credentials: Credentials) -> Client {
    Client::new(config(reg, credentials)).expect("client")
}

/// An opener over bytes in memory, in pieces of `piece` bytes.
fn opener(data: Bytes, piece: usize) -> impl Fn() -> io::Result<BlobStream> + Send + Sync {
    move || {
        let chunks: Vec<io::Result<Bytes>> = (0..data.len())
            .step_by(piece.max(1))
            .map(|i| Ok(data.slice(i..(i + piece).min(data.len()))))
            .collect();
        Ok(Box::pin(futures_util::stream::iter(chunks)) as BlobStream)
    }
}

async fn push_blob(c: &Client, repo: &str, data: &[u8]) -> Digest {
    let d = Digest::of(data);
    let open = opener(Bytes::copy_from_slice(data), 1000);
    c.upload_blob(repo, &d, data.len() as u64, &open, &|_| {})
        .await
        .expect("upload");
    d
}

/// A tiny image: config + one layer + manifest, and an index over it. Returns (manifest, index) bytes.
async fn push_image(c: &Client, repo: &str, tag: &str) -> (Bytes, Bytes) {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"not really a tar, registries do not look inside";
    let cd = push_blob(c, repo, config).await;
    let ld = push_blob(c, repo, layer).await;
    // Deliberately not canonical JSON (spaces, key order): the registry must keep these bytes.
    let manifest = format!(
        "{{\"schemaVersion\": 2, \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n \"config\": {{\"mediaType\": \"application/vnd.oci.image.config.v1+json\", \"digest\": \"{cd}\", \"size\": {}}},\n \"layers\": [{{\"mediaType\": \"application/vnd.oci.image.layer.v1.tar+gzip\", \"digest\": \"{ld}\", \"size\": {}}}]}}\n",
        config.len(),
        layer.len()
    );
    let manifest = Bytes::from(manifest);
    let md = c
        .put_manifest(
            repo,
            Digest::of(&manifest).as_str(),
            "application/vnd.oci.image.manifest.v1+json",
            manifest.clone(),
        )
        .await
        .expect("put manifest");
    assert_eq!(md, Digest::of(&manifest));
    let index = Bytes::from(format!(
        "{{\"schemaVersion\": 2, \"mediaType\": \"application/vnd.oci.image.index.v1+json\", \"manifests\": [{{\"mediaType\": \"application/vnd.oci.image.manifest.v1+json\", \"digest\": \"{md}\", \"size\": {}, \"platform\": {{\"architecture\": \"amd64\", \"os\": \"linux\"}}}}]}}",
        manifest.len()
    ));
    let id = c
        .put_manifest(
            repo,
            tag,
            "application/vnd.oci.image.index.v1+json",
            index.clone(),
        )
        .await
        .expect("put index");
    assert_eq!(id, Digest::of(&index));
    (manifest, index)
}

fn skopeo_raw(reg: &Registry, reference: &str, creds: bool) -> Vec<u8> {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw"]);
    match reg.ca_file() {
        Some(ca) => {
            cmd.arg(format!(
                "--cert-dir={}",
                ca.parent().expect("ca dir").display()
            ));
        }
        None => {
            cmd.arg("--tls-verify=false");
        }
    }
    if creds {
        cmd.arg(format!("--creds={USER}:{PASSWORD}"));
    }
    let out = cmd
        .arg(format!("docker://{}/{reference}", reg.host()))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test]
async fn plain_registry_round_trip() {
    let reg = Registry::plain();
    assert_eq!(reg.url(), format!("http://{}", reg.host()));
    let c = client(&reg, Credentials::Anonymous);
    c.ping().await.expect("ping");
    let (manifest, index) = push_image(&c, "test/app", "v1").await;

    // Raw bytes kept: skopeo sees the same index, so the digest is unchanged.
    let raw = skopeo_raw(&reg, "test/app:v1", false);
    assert_eq!(Digest::of(&raw), Digest::of(&index));

    assert_eq!(
        c.manifest_exists("test/app", "v1").await.unwrap(),
        Some(Digest::of(&index))
    );
    assert_eq!(c.manifest_exists("test/app", "v2").await.unwrap(), None);
    let (mt, bytes, d) = c
        .get_manifest("test/app", Digest::of(&manifest).as_str())
        .await
        .unwrap();
    assert_eq!(
        (mt.as_str(), &bytes, d),
        (
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
            Digest::of(&manifest)
        )
    );

    let layer = b"not really a tar, registries do not look inside";
    let ld = Digest::of(layer);
    assert_eq!(
        c.blob_exists("test/app", &ld).await.unwrap(),
        Some(layer.len() as u64)
    );
    assert_eq!(
        c.blob_exists("test/app", &Digest::of(b"absent"))
            .await
            .unwrap(),
        None
    );
    let mut got = Vec::new();
    let mut s = c.get_blob("test/app", &ld).await.unwrap();
    while let Some(b) = s.next().await {
        got.extend_from_slice(&b.unwrap());
    }
    assert_eq!(got, layer);

    // Mount into another repo (no auth): 201.
    assert!(c.mount_blob("other/app", "test/app", &ld).await.unwrap());
    assert_eq!(
        c.blob_exists("other/app", &ld).await.unwrap(),
        Some(layer.len() as u64)
    );
    // Default strategy is one streamed PUT, no PATCH.
    assert_eq!(reg.requests("PATCH", "/blobs/uploads/"), 0);
}

#[tokio::test]
async fn manifest_with_missing_blob_names_repo_reference_and_code() {
    let reg = Registry::plain();
    let c = client(&reg, Credentials::Anonymous);
    let missing = Digest::of(b"missing");
    let m = Bytes::from(format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{missing}\",\"size\":7}},\"layers\":[]}}"
    ));
    let err = c
        .put_manifest(
            "test/bad",
            "v1",
            "application/vnd.oci.image.manifest.v1+json",
            m,
        )
        .await
        .unwrap_err();
    // Names manifest test/bad:v1, the HTTP 400 and MANIFEST_BLOB_UNKNOWN.
    snap!(TestContext::new(), "manifest_blob_unknown", shown(&err));
    assert_eq!(err.exit_code(), ExitCode::Remote);
}

#[tokio::test]
async fn htpasswd_over_tls_with_the_test_ca() {
    let reg = Registry::start(RegistryOptions {
        tls: true,
        auth: Auth::Htpasswd,
        ..Default::default()
    });
    let c = client(&reg, user());
    c.ping().await.expect("ping");
    let (_, index) = push_image(&c, "secure/app", "v1").await;
    assert_eq!(
        Digest::of(&skopeo_raw(&reg, "secure/app:v1", true)),
        Digest::of(&index)
    );

    // Wrong password: exit 5, names the user, never the password.
    let bad = client(
        &reg,
        Credentials::Basic {
            username: USER.into(),
            password: "wrong-secret".into(),
        },
    );
    let err = bad.ping().await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Auth);
    assert_eq!(
        err.to_string(),
        format!(
            "registry {} rejected the credentials for user {USER}",
            reg.host()
        )
    );
    assert!(!format!("{err:?}").contains("wrong-secret"));

    // No credentials at all: a hint saying how to give them.
    let anon = client(&reg, Credentials::Anonymous);
    let err = anon.ping().await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Auth);
    snap!(TestContext::new(), "no_credentials", shown(&err));
    let err = anon
        .blob_exists("secure/app", &Digest::of(b"x"))
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Auth);
}

#[tokio::test]
async fn unknown_ca_insecure_and_plain_mismatches() {
    let reg = Registry::start(RegistryOptions {
        tls: true,
        ..Default::default()
    });
    let mut cfg = config(&reg, Credentials::Anonymous);
    cfg.ca_files.clear();
    let err = Client::new(cfg.clone()).unwrap().ping().await.unwrap_err();
    assert!(matches!(err, RegistryError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains(&reg.host()), "{err}");
    assert_eq!(
        err.hint().as_deref(),
        Some("use --ca-file <CA.pem> or --insecure")
    );
    assert_eq!(err.exit_code(), ExitCode::Network);

    cfg.insecure = true;
    let c = Client::new(cfg.clone()).unwrap();
    c.ping().await.expect("insecure ping");
    push_blob(&c, "insecure/app", b"hello").await;

    // Plain HTTP spoken to a TLS registry, and TLS spoken to a plain one.
    cfg.insecure = false;
    cfg.plain = true;
    let err = Client::new(cfg).unwrap().ping().await.unwrap_err();
    assert_eq!(err.hint().as_deref(), Some("drop --plain"), "{err}");

    let plain = Registry::plain();
    let mut cfg = config(&plain, Credentials::Anonymous);
    cfg.plain = false;
    let err = Client::new(cfg).unwrap().ping().await.unwrap_err();
    // TLS spoken to a plain registry: the hint names --plain.
    snap!(TestContext::new(), "tls_to_plain", shown(&err));
}

#[tokio::test]
async fn bad_ca_file_and_unreachable_registry() {
    let reg = Registry::plain();
    let mut cfg = config(&reg, Credentials::Anonymous);
    cfg.ca_files = vec!["/nonexistent/ca.pem".into()];
    let err = Client::new(cfg).expect_err("bad CA file refused");
    snap!(TestContext::new(), "bad_ca_file", shown(&err));

    let mut reg = reg;
    reg.stop();
    let mut cfg = config(&reg, Credentials::Anonymous);
    cfg.retries = 0;
    let err = Client::new(cfg).unwrap().ping().await.unwrap_err();
    assert!(matches!(err, RegistryError::Network { .. }), "{err:?}");
    assert!(err.to_string().contains(&reg.host()), "{err}");
    assert_eq!(err.exit_code(), ExitCode::Network);
}

#[tokio::test]
async fn registry_restarted_between_attempts_keeps_storage() {
    let mut reg = Registry::plain();
    let c = client(&reg, Credentials::Anonymous);
    let d = push_blob(&c, "keep/app", b"first").await;
    reg.stop();
    let mut cfg = config(&reg, Credentials::Anonymous);
    cfg.retries = 0;
    let offline = Client::new(cfg).unwrap();
    let data = Bytes::from_static(b"second");
    let err = offline
        .upload_blob(
            "keep/app",
            &Digest::of(&data),
            6,
            &opener(data.clone(), 3),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Network { .. }), "{err:?}");
    reg.restart();
    assert!(
        reg.storage_dir()
            .join("docker/registry/v2/repositories/keep/app")
            .is_dir()
    );
    assert_eq!(c.blob_exists("keep/app", &d).await.unwrap(), Some(5));
    push_blob(&c, "keep/app", &data).await;
}

#[tokio::test]
async fn token_auth_push_and_cross_repo_mount() {
    let reg = Registry::start(RegistryOptions {
        auth: Auth::Token,
        ..Default::default()
    });
    let c = client(&reg, user());
    c.ping().await.expect("ping");
    push_image(&c, "team/a", "v1").await;
    let layer = Digest::of(b"not really a tar, registries do not look inside");
    // The token must grant pull on the source repo too, or the registry refuses the mount.
    assert!(c.mount_blob("team/b", "team/a", &layer).await.unwrap());
    assert!(
        reg.token_server()
            .unwrap()
            .scopes_seen()
            .iter()
            .any(|s| s == "repository:team/a:pull")
    );
    assert!(c.blob_exists("team/b", &layer).await.unwrap().is_some());

    // Tokens are cached per scope set: more pushes to the same repo fetch no new token.
    let before = reg.token_server().unwrap().issued();
    push_blob(&c, "team/a", b"another").await;
    push_blob(&c, "team/a", b"and another").await;
    assert_eq!(reg.token_server().unwrap().issued(), before);

    // Wrong password at the token server.
    let bad = client(
        &reg,
        Credentials::Basic {
            username: USER.into(),
            password: "nope-secret".into(),
        },
    );
    let err = bad.ping().await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Auth);
    assert!(
        err.to_string()
            .contains("rejected the credentials for user testuser"),
        "{err}"
    );
    assert!(!format!("{err:?}").contains("nope-secret"));

    // Anonymous: the API check passes (empty grant) but a push is denied.
    let anon = client(&reg, Credentials::Anonymous);
    anon.ping().await.expect("anonymous ping");
    let data = Bytes::from_static(b"anon");
    let err = anon
        .upload_blob(
            "team/a",
            &Digest::of(&data),
            4,
            &opener(data.clone(), 4),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Auth);
}

#[tokio::test]
async fn token_refreshed_after_401() {
    let reg = Registry::start(RegistryOptions {
        auth: Auth::Token,
        ..Default::default()
    });
    let ts = reg.token_server().unwrap();
    let c = client(&reg, user());
    // The first token is dead on arrival though announced valid for 300 s: the registry answers
    // 401, the client drops it, fetches another and succeeds.
    ts.expire_next(1);
    let d = push_blob(&c, "team/r", b"refresh me").await;
    assert_eq!(ts.issued(), 2);
    ts.expire_next(1);
    assert!(c.blob_exists("team/r", &d).await.unwrap().is_some());
    assert_eq!(ts.issued(), 4);
}

#[tokio::test]
async fn identity_token_uses_oauth2_refresh_grant() {
    let reg = Registry::start(RegistryOptions {
        auth: Auth::Token,
        ..Default::default()
    });
    let ts = reg.token_server().unwrap();
    let c = client(
        &reg,
        Credentials::IdentityToken {
            username: "<token>".into(),
            token: "test-refresh-token".into(),
        },
    );
    c.ping().await.expect("ping");
    push_blob(&c, "team/id", b"via identity token").await;
    assert!(ts.counters().post.load(Ordering::SeqCst) >= 2);
    assert_eq!(ts.counters().get.load(Ordering::SeqCst), 0);
    let bad = client(
        &reg,
        Credentials::IdentityToken {
            username: "<token>".into(),
            token: "stale".into(),
        },
    );
    assert_eq!(bad.ping().await.unwrap_err().exit_code(), ExitCode::Auth);
}

#[tokio::test]
async fn forced_chunked_upload() {
    let reg = Registry::plain();
    let mut cfg = config(&reg, Credentials::Anonymous);
    cfg.chunk_size = Some(4096);
    let c = Client::new(cfg).unwrap();
    let data: Bytes = (0..10_000u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let d = Digest::of(&data);
    let seen = Mutex::new(Vec::new());
    c.upload_blob(
        "chunk/app",
        &d,
        data.len() as u64,
        &opener(data.clone(), 1500),
        &|n| seen.lock().unwrap().push(n),
    )
    .await
    .expect("chunked upload");
    assert_eq!(reg.requests("PATCH", "/v2/chunk/app/blobs/uploads/"), 3);
    assert_eq!(c.blob_exists("chunk/app", &d).await.unwrap(), Some(10_000));
    assert_eq!(seen.lock().unwrap().last(), Some(&10_000));
    // An empty blob works too (no PATCH, just the closing PUT).
    push_blob(&c, "chunk/app", b"").await;
}

/// Deterministic incompressible-ish bytes, generated piece by piece so nothing holds the whole blob.
fn generated(total: u64, piece: u64) -> impl Iterator<Item = Bytes> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..total.div_ceil(piece)).map(move |i| {
        let n = piece.min(total - i * piece) as usize;
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            v.extend_from_slice(&state.to_le_bytes()[..8.min(n - v.len())]);
        }
        Bytes::from(v)
    })
}

#[tokio::test]
async fn large_blob_is_streamed_in_one_put() {
    const SIZE: u64 = 100 * 1024 * 1024;
    const PIECE: u64 = 1024 * 1024;
    let reg = Registry::plain();
    let c = client(&reg, Credentials::Anonymous);
    let mut h = violet::digest::Hasher::new();
    for b in generated(SIZE, PIECE) {
        h.update(&b);
    }
    let d = h.finish();
    // The source counts how far it is ahead of what the client reported sent: a client that
    // buffered the body would read everything before the first progress report.
    let produced = std::sync::Arc::new(AtomicU64::new(0));
    let max_ahead = AtomicU64::new(0);
    let p = produced.clone();
    let open = move || {
        let p = p.clone();
        Ok(Box::pin(
            futures_util::stream::iter(generated(SIZE, PIECE)).map(move |b| {
                p.fetch_add(b.len() as u64, Ordering::SeqCst);
                Ok(b)
            }),
        ) as BlobStream)
    };
    let progress = |sent: u64| {
        let ahead = produced.load(Ordering::SeqCst) - sent;
        max_ahead.fetch_max(ahead, Ordering::SeqCst);
    };
    c.upload_blob("big/app", &d, SIZE, &open, &progress)
        .await
        .expect("upload");
    assert_eq!(c.blob_exists("big/app", &d).await.unwrap(), Some(SIZE));
    assert_eq!(reg.requests("PUT", "/v2/big/app/blobs/uploads/"), 1);
    assert_eq!(reg.requests("PATCH", "/v2/big/app/blobs/uploads/"), 0);
    let ahead = max_ahead.load(Ordering::SeqCst);
    assert!(
        ahead <= 8 * PIECE,
        "the client read {ahead} bytes ahead of sending"
    );
}

#[tokio::test]
async fn blob_whose_stream_fails_at_eof_is_not_committed() {
    let reg = Registry::plain();
    for chunk_size in [None, Some(1024)] {
        let mut cfg = config(&reg, Credentials::Anonymous);
        cfg.chunk_size = chunk_size;
        let c = Client::new(cfg).unwrap();
        let data = Bytes::from(vec![7u8; 5000]);
        let d = Digest::of(&data);
        let open = || {
            let items: Vec<io::Result<Bytes>> = vec![
                Ok(data.slice(..2500)),
                Ok(data.slice(2500..)),
                Err(io::Error::other("digest mismatch at end of blob")),
            ];
            Ok(Box::pin(futures_util::stream::iter(items)) as BlobStream)
        };
        let err = c
            .upload_blob("eof/app", &d, 5000, &open, &|_| {})
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::Source { .. }), "{err:?}");
        assert!(
            err.to_string().contains("digest mismatch at end of blob"),
            "{err}"
        );
        assert_eq!(
            c.blob_exists("eof/app", &d).await.unwrap(),
            None,
            "chunk size {chunk_size:?}"
        );
    }
}

#[tokio::test]
async fn unrewindable_source_is_reported_not_retried() {
    let reg = Registry::plain();
    // The first attempt's PUT is cut mid-body (retriable); the retry cannot reopen the source.
    let proxy = FaultProxy::start(&reg.host());
    proxy.inject(Rule::new(
        Some("PUT"),
        "/blobs/uploads/",
        Fault::ResetDuringRequest {
            after_bytes: 64 << 10,
        },
    ));
    let data = Bytes::from(vec![7u8; 256 << 10]);
    let opens = AtomicU64::new(0);
    let open = || {
        if opens.fetch_add(1, Ordering::SeqCst) > 0 {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "single pass"));
        }
        Ok(Box::pin(futures_util::stream::iter(vec![Ok(data.clone())])) as BlobStream)
    };
    let c = Client::new(RegistryConfig {
        host: proxy.host(),
        plain: true,
        insecure: false,
        ca_files: vec![],
        credentials: Credentials::Anonymous,
        retries: 3,
        chunk_size: None,
    })
    .unwrap();
    let err = c
        .upload_blob(
            "r/app",
            &Digest::of(&data),
            data.len() as u64,
            &open,
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::SourceNotRewindable { .. }),
        "{err:?}"
    );
    // What the user would be told is the failure that forced the restart, with its exit code.
    assert!(
        err.to_string().starts_with("cannot reach registry"),
        "{err}"
    );
    assert_eq!(err.exit_code(), ExitCode::Network);
    assert_eq!(opens.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_source_is_opened_only_once_its_session_is() {
    // A registry that cannot be reached never gets the source opened: an upload waiting on its
    // POST holds no bytes, and a single-pass source is not spent on an attempt that sent nothing.
    let mut reg = Registry::plain();
    let host = reg.host();
    reg.stop();
    let opens = AtomicU64::new(0);
    let open = || {
        opens.fetch_add(1, Ordering::SeqCst);
        Ok(
            Box::pin(futures_util::stream::iter(vec![Ok(Bytes::from_static(
                b"once",
            ))])) as BlobStream,
        )
    };
    let c = Client::new(RegistryConfig {
        host,
        plain: true,
        insecure: false,
        ca_files: vec![],
        credentials: Credentials::Anonymous,
        retries: 1,
        chunk_size: None,
    })
    .unwrap();
    let err = c
        .upload_blob("r/app", &Digest::of(b"once"), 4, &open, &|_| {})
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Network, "{err}");
    assert_eq!(opens.load(Ordering::SeqCst), 0);
}

/// A htpasswd registry behind the adversarial front, and a client with the test user for it.
fn adversarial(chunk_size: Option<u64>) -> (Registry, Adversarial, Client) {
    let reg = Registry::start(RegistryOptions {
        tls: false,
        auth: Auth::Htpasswd,
        anonymous_pull: false,
    });
    let adv = Adversarial::start(&reg.host());
    let c = Client::new(RegistryConfig {
        host: adv.host(),
        plain: true,
        insecure: false,
        ca_files: vec![],
        credentials: user(),
        retries: 2,
        chunk_size,
    })
    .expect("client");
    (reg, adv, c)
}

/// Asserts that the storage origin saw `method` requests, none with credentials, and that the
/// front (the registry's own origin) did get them.
fn assert_no_credentials_at_storage(adv: &Adversarial, method: &str) {
    let storage = adv.at(Origin::Storage);
    assert!(
        storage.iter().any(|a| a.method == method),
        "the storage origin saw no {method}: {:?}",
        adv.arrivals()
    );
    for a in &storage {
        assert_eq!(
            a.authorization, None,
            "{} {} on the other origin carried credentials",
            a.method, a.path
        );
    }
    assert!(
        adv.at(Origin::Front).iter().any(|a| a
            .authorization
            .as_deref()
            .is_some_and(|h| h.starts_with("Basic "))),
        "the registry's own origin never got the credentials"
    );
}

#[tokio::test]
async fn upload_location_on_another_origin_gets_no_credentials() {
    let (reg, adv, c) = adversarial(None);
    c.ping().await.expect("ping");
    let (manifest, _) = push_image(&c, "cross/app", "v1").await;
    assert_no_credentials_at_storage(&adv, "PUT");
    // The push still landed, with the package's bytes.
    let got = skopeo_raw(&reg, "cross/app:v1", true);
    let index = c.get_manifest("cross/app", "v1").await.expect("index").1;
    assert_eq!(got, index.to_vec());
    assert!(
        c.manifest_exists("cross/app", Digest::of(&manifest).as_str())
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn another_origin_asking_for_credentials_is_named_not_blamed_on_the_password() {
    let (_reg, adv, c) = adversarial(None);
    adv.storage_without_credentials();
    let data = b"refused at the other origin";
    let err = c
        .upload_blob(
            "cross/refused",
            &Digest::of(data),
            data.len() as u64,
            &opener(Bytes::from_static(data), 10),
            &|_| {},
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.exit_code(), ExitCode::Auth, "{text}");
    assert!(text.contains(&adv.storage_host()), "{text}");
    assert!(!text.contains("rejected the credentials"), "{text}");
    // "another origin", and the hint points at the registry's external URL.
    snap!(TestContext::new(), "another_origin_asks", shown(&err));
    for a in adv.at(Origin::Storage) {
        assert_eq!(a.authorization, None);
    }
}

#[tokio::test]
async fn chunked_upload_on_another_origin_gets_no_credentials() {
    let (_reg, adv, c) = adversarial(Some(4096));
    let data: Bytes = (0..10_000u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let d = Digest::of(&data);
    c.upload_blob(
        "cross/chunked",
        &d,
        data.len() as u64,
        &opener(data.clone(), 1500),
        &|_| {},
    )
    .await
    .expect("chunked upload");
    assert_no_credentials_at_storage(&adv, "PATCH");
    assert_eq!(
        c.blob_exists("cross/chunked", &d).await.unwrap(),
        Some(10_000)
    );
}

#[tokio::test]
async fn redirected_blob_get_to_another_origin_gets_no_credentials() {
    let (_reg, adv, c) = adversarial(None);
    let d = push_blob(&c, "cross/get", b"layer bytes behind a storage redirect").await;
    adv.redirect_blob_gets();
    let mut body = c.get_blob("cross/get", &d).await.expect("get");
    let mut got = Vec::new();
    while let Some(piece) = body.next().await {
        got.extend_from_slice(&piece.expect("piece"));
    }
    assert_eq!(got, b"layer bytes behind a storage redirect");
    assert_no_credentials_at_storage(&adv, "GET");
}

/// The whole CLI: `violet push` with a password through a registry whose upload sessions live on
/// another origin. The password never reaches that origin, and the push succeeds.
#[test]
fn push_through_cross_origin_uploads_keeps_the_password_home() {
    let ctx = TestContext::new();
    let reg = Registry::start(RegistryOptions {
        tls: false,
        auth: Auth::Htpasswd,
        anonymous_pull: false,
    });
    let adv = Adversarial::start(&reg.host());
    let pkg = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/tiny-operator.stable.ALL.v0.1.0.tgz");
    let out = ctx.push(
        &pkg,
        &[&adv.host()],
        &["--plain", "--username", USER, "--password", PASSWORD],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_no_credentials_at_storage(&adv, "PUT");
    assert!(!out.stdout.contains(PASSWORD) && !out.stderr.contains(PASSWORD));
}

/// `-vv` is trace as `--help` says; logs written to a pipe carry no colour codes, with or without
/// `NO_COLOR`; `-v` stays at debug.
#[test]
fn verbose_logs_are_plain_text_and_vv_is_trace() {
    let ctx = TestContext::new();
    let reg = Registry::plain();
    let pkg = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/tiny-operator.stable.ALL.v0.1.0.tgz");
    let push = |verbose: &str, no_color: bool| {
        let mut cmd = ctx.violet();
        cmd.env_remove("NO_COLOR").env("TERM", "xterm-256color");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        cmd.args([
            verbose,
            "push",
            &pkg.display().to_string(),
            "--dest-repo",
            &reg.host(),
            "--skip-crs",
            "--plain",
            "--no-auth",
        ]);
        crate::support::run(cmd, None)
    };
    for no_color in [false, true] {
        let trace = push("-vv", no_color);
        assert_eq!(trace.code, 0, "{trace:?}");
        assert!(
            !trace.stderr.contains('\u{1b}'),
            "colour codes: {:?}",
            trace.stderr
        );
        assert!(trace.stderr.contains("TRACE"), "{}", trace.stderr);
        assert!(trace.stderr.contains("DEBUG"), "{}", trace.stderr);
    }
    let debug = push("-v", false);
    assert_eq!(debug.code, 0, "{debug:?}");
    assert!(!debug.stderr.contains('\u{1b}'), "{:?}", debug.stderr);
    assert!(debug.stderr.contains("DEBUG"), "{}", debug.stderr);
    assert!(!debug.stderr.contains("TRACE"), "{}", debug.stderr);
}
