//! skopeo as the independent reference implementation for interoperability checks.
//!
//! skopeo runs with `--insecure-policy` (no dependence on /etc/containers/policy.json) and a
//! private HOME, so no credentials of the machine are used.

use std::process::Command;

use violet::digest::Digest;

use super::{Output, TestContext, run};

fn skopeo(ctx: &TestContext) -> Command {
    let mut cmd = Command::new("skopeo");
    ctx.clean_env(&mut cmd);
    cmd.arg("--insecure-policy");
    cmd
}

#[track_caller]
fn checked(cmd: Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = run(cmd, None);
    assert_eq!(
        out.code, 0,
        "{shown} failed\n--- stdout\n{}\n--- stderr\n{}",
        out.stdout, out.stderr
    );
    out
}

/// `skopeo copy --all SRC DST` with TLS verification off on both sides (plain-HTTP test
/// registries), e.g. `oci:/dir:ref` → `docker://127.0.0.1:PORT/repo:tag`. Panics on failure.
#[track_caller]
pub fn skopeo_copy_all(ctx: &TestContext, src: &str, dst: &str) {
    skopeo_copy_all_with(
        ctx,
        src,
        dst,
        &["--src-tls-verify=false", "--dest-tls-verify=false"],
    );
}

/// `skopeo copy --all` with explicit flags (`--dest-cert-dir DIR`, `--dest-creds u:p`, ...).
#[track_caller]
pub fn skopeo_copy_all_with(ctx: &TestContext, src: &str, dst: &str, flags: &[&str]) {
    let mut cmd = skopeo(ctx);
    cmd.args(["copy", "-q", "--all"])
        .args(flags)
        .args([src, dst]);
    checked(cmd);
}

/// sha256 of `skopeo inspect --raw REF`: the digest of the manifest or index the reference
/// resolves to. `tls_flags` e.g. `["--tls-verify=false"]` or `["--cert-dir", dir]`.
#[track_caller]
pub fn skopeo_inspect_raw_digest(ctx: &TestContext, reference: &str, tls_flags: &[&str]) -> Digest {
    Digest::of(&skopeo_inspect_raw_bytes(ctx, reference, tls_flags))
}

/// `skopeo inspect --raw REF` as text (a manifest or index).
#[track_caller]
pub fn skopeo_inspect_raw(ctx: &TestContext, reference: &str, tls_flags: &[&str]) -> String {
    String::from_utf8(skopeo_inspect_raw_bytes(ctx, reference, tls_flags)).expect("UTF-8 manifest")
}

#[track_caller]
fn skopeo_inspect_raw_bytes(ctx: &TestContext, reference: &str, tls_flags: &[&str]) -> Vec<u8> {
    let mut cmd = skopeo(ctx);
    cmd.args(["inspect", "--raw"])
        .args(tls_flags)
        .arg(reference);
    let shown = format!("{cmd:?}");
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // The exact bytes matter here, so stdout is not read through `run` (which makes it a String).
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
