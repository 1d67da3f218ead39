//! A push sizes its requests in flight by the round trip to the registry: the base counts on a
//! short link, up to four times as many on a long one (`transfer/scheduler/lanes.rs`). The fault
//! proxy holds every request for a fixed time, which is what a long link looks like to a client,
//! and counts the upload requests it is handling at once. (`mirror` from a far source:
//! `mirror::a_far_source_widens_the_counts`.)

use std::time::Duration;

use crate::support::TestContext;
use crate::support::packages::{
    Container, NO_TLS, PackageType, StoreKind, SynthImage, SynthSpec, assert_pushed,
};
use crate::support::proxy::{Fault, FaultProxy, Rule};
use crate::support::registry::Registry;

/// One image of two platforms with 40 small layers each: 80 uploads of a few KiB, more than the
/// 32 small uploads a short link keeps in flight.
fn many_small_blobs() -> SynthSpec {
    let mut spec = SynthSpec::new("many", PackageType::Bundle);
    spec.container = Container::Tar;
    spec.store = StoreKind::OciLayout;
    let mut image = SynthImage::new("acp/many", "v1.0.0");
    image.layers = 40;
    image.layer_size = 4096;
    spec.images = vec![image];
    spec
}

/// Pushes `many_small_blobs` through a proxy that holds every request `delay`; returns the most
/// upload requests in flight at once and violet's `-v` log.
fn push_with_round_trip(delay: Duration) -> (usize, String) {
    let ctx = TestContext::new();
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host());
    proxy.inject(Rule::new(None, "^/", Fault::Delay(delay)).times(usize::MAX));
    let pkg = ctx.write_package("pkgs", &many_small_blobs());
    let out = ctx
        .push(&pkg.path, &[&proxy.host()], &["--plain", "--no-auth", "-v"])
        .success();
    proxy.clear_faults();
    assert_pushed(&ctx, &pkg, &proxy.host(), NO_TLS);
    (proxy.most_uploads_in_flight(), out.stderr)
}

#[test]
fn a_short_round_trip_keeps_the_base_count_of_small_uploads() {
    let (most, log) = push_with_round_trip(Duration::from_millis(5));
    assert!(most <= 32, "{most} uploads in flight at 5 ms\n{log}");
    assert!(log.contains("widened=false"), "{log}");
}

#[test]
fn a_long_round_trip_keeps_more_small_uploads_in_flight() {
    let (most, log) = push_with_round_trip(Duration::from_millis(100));
    assert!(most > 40, "only {most} uploads in flight at 100 ms\n{log}");
    assert!(log.contains("widened=true"), "{log}");
    assert!(log.contains("small=64"), "{log}");
}
