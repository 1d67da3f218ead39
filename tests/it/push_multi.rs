//! `violet push` to several destinations in one read (`--dest-repo` repeated): each destination
//! with its own credentials, every blob committed exactly once per registry, the parity report,
//! a destination that fails while the other completes, and the per-package table.

use std::path::Path;

use base64::Engine as _;

use crate::support::packages::{
    Container, DEMO_IMAGES, NO_TLS, PLAIN, StoreKind, assert_pushed, bundle_spec,
};
use crate::support::proxy::{Fault, FaultProxy, Rule};
use crate::support::registry::{Auth, PASSWORD, Registry, RegistryOptions, USER};
use crate::support::{TestContext, blob_digests, puts_of, run};

/// The docker "identitytoken" the test token server accepts for `USER`.
const REFRESH_TOKEN: &str = "test-refresh-token";

/// `VIOLET_PASSWORD_<HOST>` as documented: upper-cased, non-alphanumerics as `_`.
fn password_var(host: &str) -> String {
    let name: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("VIOLET_PASSWORD_{name}")
}

#[test]
fn two_destinations_with_their_own_credentials_one_read_and_parity() {
    let ctx = TestContext::new();
    // Primary: basic auth through --dest-creds and its VIOLET_PASSWORD_<HOST>.
    let primary = Registry::start(RegistryOptions {
        auth: Auth::Htpasswd,
        ..Default::default()
    });
    // Standby: token auth with an identity token from `docker login` (config.json), no flag.
    let standby = Registry::start(RegistryOptions {
        auth: Auth::Token,
        ..Default::default()
    });
    let auth = base64::engine::general_purpose::STANDARD.encode("<token>:");
    std::fs::write(
        ctx.home().join(".docker/config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}","identitytoken":"{REFRESH_TOKEN}"}}}}}}"#,
            standby.host()
        ),
    )
    .expect("docker config");
    // A streamed package and one read by offset, sharing layers (same seed).
    let a = ctx.write_package(
        "dir",
        &bundle_spec(
            "alpha",
            Container::TarGz,
            StoreKind::OciLayout,
            &["acp/alpha", "acp/alpha-agent"],
        ),
    );
    let b = ctx.write_package(
        "dir",
        &bundle_spec(
            "beta",
            Container::Tar,
            StoreKind::Distribution,
            &["acp/beta"],
        ),
    );
    let standby_dest = format!("{}/dr", standby.host());
    let var = password_var(&primary.host());
    let creds = format!("{}={USER}", primary.host());
    let dests = [primary.host(), standby_dest.clone()];
    let dests: Vec<&str> = dests.iter().map(String::as_str).collect();
    let out = ctx.push_env(
        ctx.path().join("dir"),
        &dests,
        &["--plain", "--dest-creds", &creds, "-o", "json"],
        &[(&var, PASSWORD)],
    );
    assert!(!out.stdout.contains(PASSWORD) && !out.stderr.contains(PASSWORD));
    assert!(!out.stderr.contains(REFRESH_TOKEN));
    let v = out.success().json();

    // Every blob committed exactly once in each registry, though read once.
    for p in [&a, &b] {
        for d in blob_digests(&ctx, &p.path) {
            assert_eq!(puts_of(&primary, &d), 1, "{d} at the primary");
            assert_eq!(puts_of(&standby, &d), 1, "{d} at the standby");
        }
    }
    let basic = format!("{USER}:{PASSWORD}");
    for p in [&a, &b] {
        assert_pushed(
            &ctx,
            p,
            &primary.host(),
            &["--tls-verify=false", "--creds", &basic],
        );
        assert_pushed(
            &ctx,
            p,
            &standby_dest,
            &["--tls-verify=false", "--creds", &basic],
        );
    }

    // JSON: both destinations, each with its report; parity OK for every image.
    let destinations = v["destinations"].as_array().expect("destinations");
    assert_eq!(destinations.len(), 2, "{v}");
    assert_eq!(destinations[1]["destination"]["prefix"], "dr", "{v}");
    assert_eq!(destinations[1]["images"].as_array().map(Vec::len), Some(3));
    let parity = v["parity"].as_array().expect("parity");
    assert_eq!(parity.len(), 3, "{v}");
    for row in parity {
        assert_eq!(row["status"], "OK", "{row}");
        let cells = row["destinations"].as_array().expect("cells");
        assert_eq!(cells.len(), 2);
        for c in cells {
            assert_eq!(c["digest"], row["expected"], "{row}");
        }
    }
    // The table: both packages ok; the shared layers' bytes count once per destination.
    let rows = v["packages"].as_array().expect("packages");
    assert_eq!(rows.len(), 2, "{v}");
    let uploaded: u64 = rows
        .iter()
        .map(|r| r["bytes_uploaded"].as_u64().expect("bytes"))
        .sum();
    let total: u64 = destinations
        .iter()
        .map(|d| d["bytes_uploaded"].as_u64().expect("bytes"))
        .sum();
    assert_eq!(uploaded, total, "{v}");
    for r in rows {
        assert_eq!(r["result"], "ok", "{r}");
    }

    // A rerun uploads nothing and says so, destination by destination.
    let out = ctx
        .push_env(
            ctx.path().join("dir"),
            &dests,
            &["--plain", "--dest-creds", &creds],
            &[(&var, PASSWORD)],
        )
        .success();
    snap!(ctx, "rerun", out.streams());
}

#[test]
fn parity_reports_mismatch_and_missing_and_fails() {
    let ctx = TestContext::new();
    let (one, two, three) = (Registry::plain(), Registry::plain(), Registry::plain());
    let pkg = ctx.write_package(
        "pkgs",
        &bundle_spec(
            "demo",
            Container::TarZst,
            StoreKind::OciLayout,
            &["acp/demo"],
        ),
    );
    ctx.push(&pkg.path, &[&one.host(), &two.host()], PLAIN)
        .success();
    // Someone pushes other content under the same tag to the second registry only.
    let mut other = bundle_spec("demo", Container::Tar, StoreKind::OciLayout, &["acp/demo"]);
    other.seed = 99;
    let other = ctx.write_package("other", &other);
    ctx.push(&other.path, &[&two.host()], PLAIN).success();

    let out = ctx.push(
        &pkg.path,
        &[&one.host(), &two.host(), &three.host()],
        &["--plain", "--no-auth", "--skip-push", "-o", "json"],
    );
    assert_eq!(out.code, 7, "{out:?}");
    let v = out.json();
    let row = &v["parity"][0];
    assert_eq!(row["status"], "MISMATCH", "{v}");
    assert_eq!(row["expected"], pkg.images[0].1.as_str());
    assert_eq!(row["destinations"][0]["digest"], pkg.images[0].1.as_str());
    assert_eq!(row["destinations"][1]["digest"], other.images[0].1.as_str());
    assert!(row["destinations"][2]["digest"].is_null(), "{v}");

    let out = ctx.push(
        &pkg.path,
        &[&one.host(), &three.host()],
        &["--plain", "--no-auth", "--skip-push"],
    );
    assert_eq!(out.code, 7, "{out:?}");
    // "parity: 1 images, 0 OK, 0 MISMATCH, 1 MISSING", the MISSING row with the package's
    // digest, and the destination where the image is absent.
    snap!(ctx, "parity_missing", out.streams());
}

#[test]
fn a_failing_destination_does_not_stop_the_other_and_a_rerun_completes_it() {
    let ctx = TestContext::new();
    let good = Registry::plain();
    let flaky = Registry::plain();
    let proxy = FaultProxy::start(&flaky.host());
    // The standby refuses every blob upload (not retryable).
    proxy.inject(Rule::new(Some("PUT"), r"/blobs/uploads/", Fault::Status(403)).times(usize::MAX));
    let streamed = ctx.write_package(
        "dir",
        &bundle_spec(
            "zeta",
            Container::TarGz,
            StoreKind::OciLayout,
            &["acp/zeta"],
        ),
    );
    let random = ctx.write_package(
        "dir",
        &bundle_spec("eta", Container::Tar, StoreKind::OciLayout, &["acp/eta"]),
    );
    let out = ctx.push(
        ctx.path().join("dir"),
        &[&good.host(), &proxy.host()],
        &["--plain", "--no-auth", "-o", "json"],
    );
    assert_ne!(out.code, 0, "{out:?}");
    let v = out.json();
    for img in v["destinations"][0]["images"].as_array().expect("images") {
        assert_eq!(img["result"], "pushed", "{img}");
    }
    for img in v["destinations"][1]["images"].as_array().expect("images") {
        assert_eq!(img["result"], "failed", "{img}");
    }
    for row in v["parity"].as_array().expect("parity") {
        assert_eq!(row["status"], "MISSING", "{row}");
    }
    for row in v["packages"].as_array().expect("packages") {
        assert_eq!(row["result"], "failed", "{row}");
        assert!(
            row["error"].as_str().unwrap_or("").contains(&proxy.host()),
            "{row}"
        );
    }
    for p in [&streamed, &random] {
        assert_pushed(&ctx, p, &good.host(), NO_TLS);
    }

    // The standby is back: a rerun uploads only there.
    proxy.clear_faults();
    let before: Vec<usize> = blob_digests(&ctx, &streamed.path)
        .iter()
        .map(|d| puts_of(&good, d))
        .collect();
    let v = ctx
        .push(
            ctx.path().join("dir"),
            &[&good.host(), &proxy.host()],
            &["--plain", "--no-auth", "-o", "json"],
        )
        .success()
        .json();
    assert_eq!(v["destinations"][0]["blobs"]["uploaded"], 0, "{v}");
    let after: Vec<usize> = blob_digests(&ctx, &streamed.path)
        .iter()
        .map(|d| puts_of(&good, d))
        .collect();
    assert_eq!(before, after);
    for p in [&streamed, &random] {
        assert_pushed(&ctx, p, &proxy.host(), NO_TLS);
    }
    for row in v["parity"].as_array().expect("parity") {
        assert_eq!(row["status"], "OK", "{row}");
    }
}

#[test]
fn dest_creds_errors_are_one_line_and_name_the_variable() {
    let ctx = TestContext::new();
    let pkg = ctx.write_package(
        "pkgs",
        &bundle_spec("demo", Container::Tar, StoreKind::OciLayout, &["acp/demo"]),
    );
    // Nothing listens there: the errors come before any request.
    let (a, b) = ("127.0.0.1:9", "127.0.0.1:7");
    let out = ctx.push(
        &pkg.path,
        &[a, b],
        &["--plain", "--dest-creds", "10.0.0.1:5000=admin"],
    );
    assert_eq!(out.code, 2, "{out:?}");
    // "10.0.0.1:5000 is not the host of any --dest-repo".
    snap!(ctx, "dest_creds_unknown_host", out.error());
    let out = ctx.push(
        &pkg.path,
        &[a, b],
        &["--plain", "--dest-creds", "127.0.0.1:9=admin", "--no-auth"],
    );
    assert_eq!(out.code, 2, "{out:?}");
    let out = ctx.push(
        &pkg.path,
        &[a, b],
        &[
            "--plain",
            "--dest-creds",
            "127.0.0.1:9=admin",
            "--username",
            "u",
            "--password",
            "Zq7-secret",
        ],
    );
    assert_eq!(out.code, 2, "{out:?}");
    assert!(!out.stderr.contains("Zq7-secret"));
    // "VIOLET_PASSWORD_127_0_0_1_9 is not set".
    snap!(ctx, "dest_creds_password_unset", out.error());
    let out = ctx.push(&pkg.path, &[a, a], PLAIN);
    assert_eq!(out.code, 2, "{out:?}");
    // "... given twice".
    snap!(ctx, "dest_repo_twice", out.error());
}

#[test]
fn dry_run_to_two_destinations_plans_both_and_writes_nothing() {
    let ctx = TestContext::new();
    let (one, two) = (Registry::plain(), Registry::plain());
    // The proxies count every request that reaches each registry.
    let (p1, p2) = (
        FaultProxy::start(&one.host()),
        FaultProxy::start(&two.host()),
    );
    let pkg = ctx.write_package(
        "pkgs",
        &bundle_spec("demo", Container::TarZst, StoreKind::OciLayout, DEMO_IMAGES),
    );
    let second = format!("{}/dr", p2.host());
    let dests = [p1.host(), second.clone()];
    let dests: Vec<&str> = dests.iter().map(String::as_str).collect();
    let out = ctx
        .push(&pkg.path, &dests, &["--plain", "--no-auth", "--dry-run"])
        .success();
    // `SOURCE -> DESTINATION  DIGEST` for every image at both destinations.
    snap!(ctx, "dry_run", out.streams());
    for p in [&p1, &p2] {
        assert!(
            p.count(Some("GET"), ".") > 0,
            "the plan asked nothing of {}",
            p.host()
        );
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            assert_eq!(
                p.count(Some(method), "."),
                0,
                "--dry-run sent {method} to {}",
                p.host()
            );
        }
    }
    // Nothing landed behind the proxies either.
    for r in [&one, &two] {
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            assert_eq!(
                r.requests(method, "/v2/"),
                0,
                "{method} reached {}",
                r.host()
            );
        }
    }
}

/// Bytes the command read (`rchar` of `/proc/<pid>/io`, files and sockets alike): run through a
/// shell that reaps it and then reports its own counters, which then include the child's. Linux only.
fn push_reading(ctx: &TestContext, path: &Path, dests: &[&str]) -> u64 {
    let io = ctx.path().join("io.txt");
    let mut cmd = std::process::Command::new("sh");
    ctx.clean_env(&mut cmd);
    cmd.arg("-c")
        .arg(r#""$0" "$@"; st=$?; cat /proc/$$/io > "$VIOLET_TEST_IO"; exit $st"#)
        .arg(env!("CARGO_BIN_EXE_violet"))
        .env("VIOLET_TEST_IO", &io)
        .args([
            "push",
            &path.display().to_string(),
            "--skip-crs",
            "--plain",
            "--no-auth",
        ]);
    for d in dests {
        cmd.args(["--dest-repo", d]);
    }
    run(cmd, None).success();
    let text = std::fs::read_to_string(&io).expect("io counters");
    text.lines()
        .find_map(|l| l.strip_prefix("rchar:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rchar in {text}"))
}

#[test]
fn a_blob_is_read_once_whatever_the_number_of_destinations() {
    if !Path::new("/proc/self/io").exists() {
        eprintln!("skipped: no /proc/self/io (I/O accounting) on this host");
        return;
    }
    let ctx = TestContext::new();
    let (one, two, three) = (Registry::plain(), Registry::plain(), Registry::plain());
    const LAYER: u64 = 8 << 20;
    // Read by offset and streamed through the decoder: the two ways blobs leave a package.
    for (seed, container) in [(11, Container::Tar), (12, Container::TarGz)] {
        let mut s = bundle_spec("big", container, StoreKind::OciLayout, &["acp/big"]);
        s.seed = seed;
        s.images[0].platforms = vec!["linux/amd64".into()];
        s.images[0].layers = 1;
        s.images[0].shared_layers = 0;
        s.images[0].layer_size = LAYER;
        let pkg = ctx.write_package(&format!("pkg-{seed}"), &s);
        let alone = push_reading(&ctx, &pkg.path, &[&one.host()]);
        let both = push_reading(&ctx, &pkg.path, &[&two.host(), &three.host()]);
        for d in blob_digests(&ctx, &pkg.path) {
            for r in [&one, &two, &three] {
                assert_eq!(puts_of(r, &d), 1, "{d} at {}", r.host());
            }
        }
        // The run measured the layer at all (loading plus uploading it reads it at least once)...
        assert!(alone >= LAYER, "{container:?}: read {alone} bytes in all");
        // ...and a second destination adds requests and answers, not another pass over the layer.
        assert!(
            both < alone + LAYER / 2,
            "{container:?}: one destination read {alone} bytes, two read {both}"
        );
    }
}
