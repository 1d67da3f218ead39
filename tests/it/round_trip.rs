//! A push sizes its requests in flight by the round trip to the registry: the base counts on a
//! short link, up to four times as many on a long one (`transfer/scheduler/lanes.rs`). The fault
//! proxy holds every request for a fixed time, which is what a long link looks like to a client,
//! and counts the upload requests and checks it is handling at once. (`mirror` from a far
//! source: `mirror::a_far_source_widens_the_counts`.)

use std::time::Duration;

use crate::support::TestContext;
use crate::support::packages::{
    Container, NO_TLS, PackageType, StoreKind, SynthImage, SynthSpec, assert_pushed,
};
use crate::support::proxy::{Fault, FaultProxy, Rule};
use crate::support::registry::Registry;

/// One image of two platforms with 40 small layers each (80 uploads of a few KiB, more than the
/// 32 small uploads a short link keeps in flight), and 80 images of one small layer (80 tag
/// checks, more than the 64 a short link keeps in flight).
fn many_small_blobs() -> SynthSpec {
    let mut spec = SynthSpec::new("many", PackageType::Bundle);
    spec.container = Container::Tar;
    spec.store = StoreKind::OciLayout;
    let mut image = SynthImage::new("acp/many", "v1.0.0");
    image.layers = 40;
    image.layer_size = 4096;
    spec.images = vec![image];
    for i in 0..80 {
        let mut image = SynthImage::new(format!("acp/small-{i}"), "v1.0.0");
        image.layers = 1;
        image.layer_size = 512;
        image.platforms.truncate(1);
        spec.images.push(image);
    }
    spec
}

/// What the proxy saw of one push: the most requests of each kind in flight at once.
struct InFlight {
    uploads: usize,
    checks: usize,
}

/// Pushes `many_small_blobs` through a proxy that holds every request `delay`; returns the most
/// requests in flight at once and violet's `-v` log.
fn push_with_round_trip(delay: Duration) -> (InFlight, String) {
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
    let most = InFlight {
        uploads: proxy.most_uploads_in_flight(),
        checks: proxy.most_checks_in_flight(),
    };
    (most, out.stderr)
}

#[test]
fn a_short_round_trip_keeps_the_base_counts() {
    let (most, log) = push_with_round_trip(Duration::from_millis(5));
    assert!(
        most.uploads <= 32,
        "{} uploads in flight at 5 ms\n{log}",
        most.uploads
    );
    assert!(
        most.checks <= 64,
        "{} checks in flight at 5 ms\n{log}",
        most.checks
    );
    assert!(log.contains("widened=false"), "{log}");
}

#[test]
fn a_long_round_trip_keeps_more_uploads_and_checks_in_flight() {
    let (most, log) = push_with_round_trip(Duration::from_millis(100));
    assert!(
        most.uploads > 40,
        "only {} uploads in flight at 100 ms\n{log}",
        most.uploads
    );
    assert!(log.contains("widened=true"), "{log}");
    assert!(log.contains("small=64"), "{log}");
    // The tag checks go before any answer but the registry's `/v2/` ping, so that answer sizes
    // them: all 81 are asked at once, not 64 and then 17.
    assert!(
        most.checks > 64,
        "only {} checks in flight at 100 ms\n{log}",
        most.checks
    );
    assert!(log.contains("checks=128"), "{log}");
}

/// `package` from a source behind a round trip: images resolved several at once (their
/// manifests, and the tag listings that find their signatures), small blobs fetched far ahead
/// of the archive writer, and the next larger blobs opened ahead of it, where one at a time
/// each would wait a round trip (`transfer/ahead.rs`).
#[test]
fn package_from_a_far_source_keeps_requests_in_flight() {
    let ctx = TestContext::new();
    let source = Registry::plain();
    let mut spec = many_small_blobs();
    spec.images.truncate(21);
    let mut big = SynthImage::new("acp/big", "v1.0.0");
    big.layers = 5;
    big.layer_size = 3 << 19; // 1.5 MiB: above the 1 MiB of blobs fetched whole
    big.platforms.truncate(1);
    spec.images.insert(0, big);
    let pkg = ctx.write_package("pkgs", &spec);
    ctx.push(&pkg.path, &[&source.host()], &["--plain", "--no-auth"])
        .success();

    let proxy = FaultProxy::start(&source.host());
    let manifests = proxy.watch(Some("GET"), "/manifests/");
    let listings = proxy.watch(Some("GET"), "/tags/list$");
    let blobs = proxy.watch(Some("GET"), "/blobs/");
    let big_blobs = proxy.watch(Some("GET"), "^/v2/acp/big/blobs/");
    proxy.inject(Rule::new(None, "^/", Fault::Delay(Duration::from_millis(50))).times(usize::MAX));
    let images: Vec<String> = spec
        .images
        .iter()
        .map(|i| format!("{}/{}:{}", proxy.host(), i.repository, i.tag))
        .collect();
    let dir = ctx.file("far");
    std::fs::create_dir_all(&dir).unwrap();
    let related: String = images[1..].iter().map(|i| format!("- {i}\n")).collect();
    std::fs::write(
        dir.join("violet.yaml"),
        format!(
            "apiVersion: violet.alauda.io/v1\nkind: Package\nname: far\ndisplayName: far\ntype: plugin\nversion: v1.0.0\narchitectures:\n- linux/amd64\n- linux/arm64\nartifact: {}\nrelatedImages:\n{related}",
            images[0]
        ),
    )
    .unwrap();
    let out = ctx.file("far.tgz").display().to_string();
    let dir_s = dir.display().to_string();
    ctx.run(["package", &dir_s, "--output", &out, "--plain", "--no-auth"])
        .success();
    proxy.clear_faults();
    ctx.run(["verify", &out]).success();

    let most = |w| proxy.most_in_flight(w);
    // One image at a time: 1 (its index, then its platform manifests one by one).
    assert!(
        most(manifests) > 8,
        "{} manifest GETs in flight",
        most(manifests)
    );
    assert!(
        most(listings) > 8,
        "{} tag listings in flight",
        most(listings)
    );
    // The lookups at once wait for one probe of the referrers API (distribution 2.8 has none).
    let probes = proxy.count(Some("GET"), "/referrers/");
    assert_eq!(probes, 1, "probes of the referrers API");
    // The writer's window before: 16 entries, the larger blobs opened only when it reached them.
    assert!(most(blobs) > 24, "{} blob GETs in flight", most(blobs));
    assert!(
        most(big_blobs) >= 3,
        "{} GETs of acp/big's blobs in flight",
        most(big_blobs)
    );
}
