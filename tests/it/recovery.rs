//! Recovery that says what happened (#10): a `.tgz`/`.tar.zst` push whose blob uploads keep
//! being cut off restarts its decode pass until `--retries` is spent, then reports the real
//! cause; bytes sent again are counted apart from the upload total.

use std::path::Path;

use violet::digest::Digest;

use crate::support::packages::{
    Container, PackageType, StoreKind, SynthImage, SynthPackage, SynthSpec,
};
use crate::support::proxy::{Fault, FaultProxy, Rule};
use crate::support::registry::Registry;
use crate::support::{TestContext, blob_digests};

/// One image, two platforms, layers big enough that a cut-off upload has sent some bytes.
fn package(ctx: &TestContext, dir: &str, container: Container) -> SynthPackage {
    let mut s = SynthSpec::new("recover", PackageType::Bundle);
    s.container = container;
    s.store = StoreKind::OciLayout;
    let mut img = SynthImage::new("acp/recover", "v1.0.0");
    img.layer_size = 512 << 10;
    s.images = vec![img];
    ctx.write_package(dir, &s)
}

/// The largest blob of the package: the one whose uploads the proxy cuts off.
fn largest_blob(ctx: &TestContext, path: &Path) -> Digest {
    let pkg = violet::package::load::open(path).ok();
    let digests = blob_digests(ctx, path);
    match pkg {
        Some(p) => digests
            .into_iter()
            .max_by_key(|d| p.blobs.get(d).map_or(0, |b| b.size))
            .expect("a blob"),
        None => digests.into_iter().next().expect("a blob"),
    }
}

/// Cuts off the uploads of one blob `times` times, after 64 KiB of its body.
fn cut_uploads_of(proxy: &FaultProxy, digest: &Digest, times: usize) {
    proxy.inject(
        Rule::new(
            Some("PUT"),
            "/blobs/uploads/",
            Fault::ResetDuringRequest {
                after_bytes: 64 << 10,
            },
        )
        .query(&format!("digest=sha256(%3A|:){}", digest.hex()))
        .times(times),
    );
}

#[test]
fn compressed_push_restarts_until_the_retry_budget_is_spent() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host());
    let pkg = package(&ctx, "tgz", Container::TarGz);
    let victim = largest_blob(&ctx, &pkg.path);
    // Four cut-offs of the same blob need five passes over the package: more than the three a
    // fixed limit allowed, within the default --retries 5.
    cut_uploads_of(&proxy, &victim, 4);
    let out = ctx.push(
        &pkg.path,
        &[&proxy.host()],
        &["--plain", "--no-auth", "--jobs", "1", "-o", "json"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let report = out.json();
    let report = report
        .get("report")
        .or_else(|| report.get("destinations").and_then(|d| d.get(0)))
        .cloned()
        .unwrap_or(report);
    let text = report.to_string();
    // The total counts each blob once; what was sent again is reported apart.
    let uploaded = find_u64(&report, "bytes_uploaded").expect("bytes_uploaded");
    let resent = find_u64(&report, "bytes_resent").expect("bytes_resent");
    assert_eq!(uploaded, pkg.blob_bytes, "{text}");
    assert!(resent >= 4 * (64 << 10), "resent {resent}: {text}");
}

#[test]
fn compressed_push_out_of_retries_reports_the_network_cause() {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host());
    let pkg = package(&ctx, "zst", Container::TarZst);
    let victim = largest_blob(&ctx, &pkg.path);
    cut_uploads_of(&proxy, &victim, usize::MAX);
    let out = ctx.push(
        &pkg.path,
        &[&proxy.host()],
        &["--plain", "--no-auth", "--jobs", "1", "--retries", "2"],
    );
    let all = out.all();
    assert_eq!(out.code, 6, "{all}");
    assert!(all.contains("cannot reach registry"), "{all}");
    assert!(!all.contains("cannot be re-read"), "{all}");
    // --retries 2: the first pass and two more, never a third restart.
    let cut = proxy
        .requests()
        .iter()
        .filter(|s| s.fault.is_some())
        .count();
    assert_eq!(cut, 3, "{:?}", proxy.requests());
    // The text summary says what was sent again.
    assert!(all.contains("sent again after retries"), "{all}");
}

/// The first `key` anywhere in a JSON tree.
fn find_u64(v: &serde_json::Value, key: &str) -> Option<u64> {
    match v {
        serde_json::Value::Object(m) => m
            .get(key)
            .and_then(|x| x.as_u64())
            .or_else(|| m.values().find_map(|x| find_u64(x, key))),
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_u64(x, key)),
        _ => None,
    }
}
