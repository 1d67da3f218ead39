//! `violet verify`: checks each package file against its sidecars (`<pkg>.sig`, a detached
//! OpenPGP signature; `<pkg>.sha256`, a sha256sum line) and the digest of every blob and manifest
//! inside it.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::args::OutputArgs;
use crate::args::cosign::CosignArgs;
use crate::cosign::check::{self as cosign_check, ImageSignature, Status, Trust};
use crate::error::{ExitCode, Fail};
use crate::output::Printer;
use crate::package::metadata::archive_stem;
use crate::package::{PackageError, blobs, load};
use crate::signature::{self, Keyring};

/// Verify packages: GPG signature (.sig) or checksum (.sha256) next to each file, then every
/// blob and manifest inside.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  violet verify redis-operator.stable.ALL.v3.18.0.tgz\n  violet verify ./packages --keyring alauda-release.asc\n  violet verify ./packages -o json\n  violet verify redis-operator.stable.ALL.v3.18.0.tgz --cosign-key cosign.pub --require-signatures\n\nA package 'x.tgz' is checked with 'x.tgz.sig' (needs --keyring) and/or 'x.tgz.sha256'\n(sha256sum format) in the same directory. With --cosign-key, every image's cosign signature\n(carried in the package as <repo>:sha256-<hex>.sig) is checked offline: signed, unsigned\n(a warning, or a failure with --require-signatures) or bad signature. Exit code 8 when any\ncheck fails."
)]
pub struct Args {
    /// A package file, or a directory of packages.
    pub path: PathBuf,

    /// OpenPGP public keys (armored or binary) trusted to sign packages.
    #[arg(long, value_name = "FILE")]
    pub keyring: Option<PathBuf>,

    #[command(flatten)]
    pub cosign: CosignArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// What was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Gpg,
    Checksum,
    /// The digest of every blob and manifest inside the package.
    Content,
    /// The cosign signature of every image (`--cosign-key`).
    Cosign,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub kind: CheckKind,
    pub ok: bool,
    /// The signing key's fingerprint, the file's sha256, or why the check failed.
    pub detail: String,
}

/// Where a file lands in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Gpg,
    Checksum,
    Failed,
    NoVerificationFile,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub file: PathBuf,
    /// The strongest sidecar method that verified the file (`none` when there was none or it failed).
    pub method: &'static str,
    pub result: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub checks: Vec<Check>,
    /// Each image's cosign signature status (`--cosign-key`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageSignature>,
}

impl FileReport {
    fn new(file: PathBuf, checks: Vec<Check>) -> Self {
        let passed = |k: CheckKind| checks.iter().any(|c| c.kind == k && c.ok);
        let failure = checks
            .iter()
            .find(|c| !c.ok)
            .map(|c| c.detail.replace('\n', " "));
        let result = if failure.is_some() {
            Outcome::Failed
        } else if passed(CheckKind::Gpg) {
            Outcome::Gpg
        } else if passed(CheckKind::Checksum) {
            Outcome::Checksum
        } else {
            Outcome::NoVerificationFile
        };
        let method = if passed(CheckKind::Gpg) {
            "gpg"
        } else if passed(CheckKind::Checksum) {
            "checksum"
        } else {
            "none"
        };
        Self {
            file,
            method,
            result,
            reason: failure,
            checks,
            images: Vec::new(),
        }
    }

    /// Adds the cosign check: failed by a bad signature, or by an unsigned image when signatures
    /// are `required`; its detail is the first such image's one-line reason.
    fn with_signatures(self, rows: Result<Vec<ImageSignature>, String>, required: bool) -> Self {
        let mut checks = self.checks;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                checks.push(Check {
                    kind: CheckKind::Cosign,
                    ok: false,
                    detail: format!("cosign signatures cannot be read: {e}"),
                });
                return Self::new(self.file, checks);
            }
        };
        let failing: Vec<&ImageSignature> = rows
            .iter()
            .filter(|r| {
                r.signature == Status::BadSignature || (required && r.signature == Status::Unsigned)
            })
            .collect();
        let count = |s: Status| rows.iter().filter(|r| r.signature == s).count();
        checks.push(match failing.as_slice() {
            [] => Check {
                kind: CheckKind::Cosign,
                ok: true,
                detail: format!(
                    "{} image(s) signed, {} unsigned",
                    count(Status::Signed),
                    count(Status::Unsigned)
                ),
            },
            [first, rest @ ..] => Check {
                kind: CheckKind::Cosign,
                ok: false,
                detail: if rest.is_empty() {
                    first.line()
                } else {
                    format!("{} (and {} more image(s))", first.line(), rest.len())
                },
            },
        });
        let mut report = Self::new(self.file, checks);
        report.images = rows;
        report
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub gpg: usize,
    pub checksum: usize,
    pub failed: usize,
    pub no_verification_file: usize,
}

/// The cosign key used and what its check found over every package.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SignatureCounts {
    pub key: PathBuf,
    pub algorithm: &'static str,
    /// sha256 of the key's DER encoding.
    pub key_id: String,
    pub required: bool,
    pub signed: usize,
    pub unsigned: usize,
    pub bad_signature: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub path: PathBuf,
    pub files: Vec<FileReport>,
    pub summary: Counts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signatures: Option<SignatureCounts>,
}

impl Report {
    pub fn new(path: PathBuf, files: Vec<FileReport>) -> Self {
        let mut summary = Counts::default();
        for f in &files {
            *match f.result {
                Outcome::Gpg => &mut summary.gpg,
                Outcome::Checksum => &mut summary.checksum,
                Outcome::Failed => &mut summary.failed,
                Outcome::NoVerificationFile => &mut summary.no_verification_file,
            } += 1;
        }
        Self {
            path,
            files,
            summary,
            signatures: None,
        }
    }

    fn with_trust(mut self, trust: &Trust, required: bool) -> Self {
        let rows = || self.files.iter().flat_map(|f| &f.images);
        let count = |s: Status| rows().filter(|r| r.signature == s).count();
        self.signatures = Some(SignatureCounts {
            key: trust.key.path().to_path_buf(),
            algorithm: trust.key.algorithm(),
            key_id: trust.key.id().to_string(),
            required,
            signed: count(Status::Signed),
            unsigned: count(Status::Unsigned),
            bad_signature: count(Status::BadSignature),
        });
        self
    }
}

/// The documented summary layout, with every file listed under its heading.
pub fn render_text(report: &Report) -> String {
    let mut out = format!(
        "verify path: {}\n====== Verification Summary ======\n",
        report.path.display()
    );
    let sections = [
        (Outcome::Gpg, "Verified successfully with GPG"),
        (Outcome::Checksum, "Verified successfully with checksum"),
        (Outcome::Failed, "Verification failed"),
        (Outcome::NoVerificationFile, "No verification file found"),
    ];
    for (outcome, title) in sections {
        let files: Vec<&FileReport> = report
            .files
            .iter()
            .filter(|f| f.result == outcome)
            .collect();
        out.push_str(&format!("{title}: {} file(s)\n", files.len()));
        for f in files {
            // A differential package: its expected blobs are external, said next to the file.
            let external = f
                .checks
                .iter()
                .filter(|c| c.kind == CheckKind::Content && c.ok)
                .find_map(|c| c.detail.split_once("; ").map(|(_, e)| e));
            match (&f.reason, external) {
                (Some(reason), _) => out.push_str(&format!("  - {}: {reason}\n", f.file.display())),
                (None, Some(e)) => out.push_str(&format!("  - {} ({e})\n", f.file.display())),
                (None, None) => out.push_str(&format!("  - {}\n", f.file.display())),
            }
        }
    }
    if let Some(sigs) = &report.signatures {
        out.push_str(&render_signatures(report, sigs));
    }
    out
}

/// One row per image: its signature status and, for a signed image, the reference it was signed
/// as; for a bad or partial signature, why.
fn render_signatures(report: &Report, sigs: &SignatureCounts) -> String {
    let mut out = format!(
        "====== Image Signatures (cosign, {} key {}, {}) ======\n",
        sigs.algorithm,
        sigs.key.display(),
        &sigs.key_id["sha256:".len()..][..12],
    );
    out.push_str(&format!(
        "Signed: {}, unsigned: {}{}, bad signature: {}\n",
        sigs.signed,
        sigs.unsigned,
        if sigs.required {
            " (signatures required)"
        } else {
            ""
        },
        sigs.bad_signature
    ));
    let rows: Vec<[String; 4]> = report
        .files
        .iter()
        .flat_map(|f| &f.images)
        .map(|r| {
            [
                crate::output::escape(&r.image).into_owned(),
                r.digest.short().to_string(),
                r.signature.as_str().to_string(),
                crate::output::escape(&match (&r.reason, &r.identity) {
                    (Some(reason), _) => reason.clone(),
                    (None, Some(identity)) => format!("as {identity}"),
                    (None, None) if r.signature == Status::Signed => {
                        "every platform manifest".into()
                    }
                    (None, None) => String::new(),
                })
                .into_owned(),
            ]
        })
        .collect();
    if rows.is_empty() {
        return out;
    }
    let width = |i: usize, head: &str| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
            .max(head.len())
    };
    let (w0, w1, w2) = (width(0, "IMAGE"), width(1, "DIGEST"), width(2, "SIGNATURE"));
    let line = |c: [&str; 4]| {
        format!("{:w0$}  {:w1$}  {:w2$}  {}", c[0], c[1], c[2], c[3])
            .trim_end()
            .to_string()
            + "\n"
    };
    out.push_str(&line(["IMAGE", "DIGEST", "SIGNATURE", "DETAIL"]));
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3]]));
    }
    out
}

/// `x.tgz` -> `x.tgz.<ext>`.
fn sidecar(file: &Path, ext: &str) -> PathBuf {
    let mut s = file.as_os_str().to_os_string();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Runs every check for one package. `content` checks what is inside (blob and manifest digests);
/// sidecars apply to package files only, since a directory has no single digest to sign.
pub fn check_file(
    file: &Path,
    keyring: Option<&Keyring>,
    content: &dyn Fn(&Path) -> Result<String, String>,
) -> FileReport {
    let mut checks = Vec::new();
    if file.is_file() {
        let sig = sidecar(file, "sig");
        if sig.is_file() {
            checks.push(match keyring {
                Some(keyring) => match signature::verify_signature(keyring, file, &sig) {
                    Ok(fingerprint) => Check { kind: CheckKind::Gpg, ok: true, detail: format!("signed by {fingerprint}") },
                    Err(e) => Check { kind: CheckKind::Gpg, ok: false, detail: e.to_string() },
                },
                None => Check {
                    kind: CheckKind::Gpg,
                    ok: false,
                    detail: format!(
                        "{} found but no keyring to check it against (pass --keyring FILE with the publisher's public key)",
                        sig.display()
                    ),
                },
            });
        }
        let sum = sidecar(file, "sha256");
        if sum.is_file() {
            checks.push(match signature::verify_checksum(file, &sum) {
                Ok(digest) => Check {
                    kind: CheckKind::Checksum,
                    ok: true,
                    detail: digest.to_string(),
                },
                Err(e) => Check {
                    kind: CheckKind::Checksum,
                    ok: false,
                    detail: e.to_string(),
                },
            });
        }
    }
    checks.push(match content(file) {
        Ok(detail) => Check {
            kind: CheckKind::Content,
            ok: true,
            detail,
        },
        Err(e) => Check {
            kind: CheckKind::Content,
            ok: false,
            detail: e,
        },
    });
    FileReport::new(file.to_path_buf(), checks)
}

/// The packages to verify: `path` itself when it is a file or a package directory, otherwise the
/// package files (by extension) and package directories directly inside it, sorted by name.
pub fn targets(
    path: &Path,
    is_package_dir: &dyn Fn(&Path) -> bool,
) -> Result<Vec<PathBuf>, PackageError> {
    if !path.exists() {
        return Err(PackageError::NotFound {
            path: path.to_path_buf(),
        });
    }
    if !path.is_dir() || is_package_dir(path) {
        return Ok(vec![path.to_path_buf()]);
    }
    let io = |source| PackageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let p = entry.map_err(io)?.path();
        let is_archive = p.is_file()
            && p.file_name()
                .and_then(|n| n.to_str())
                .and_then(archive_stem)
                .is_some();
        if is_archive || (p.is_dir() && is_package_dir(&p)) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// The cosign rows of the package [`check_content`] just read, for the caller to add to its report.
type SignatureSlot = std::cell::RefCell<Option<Result<Vec<ImageSignature>, String>>>;

/// The report prints the file before the reason: the reason does not name it again.
fn reason(path: &Path, e: PackageError) -> String {
    let msg = e.to_string();
    let prefix = format!("{}: ", path.display());
    let msg = msg.strip_prefix(&prefix).unwrap_or(&msg);
    crate::output::escape(msg).into_owned()
}

/// Loads the package and checks its content; with `trust`, also every image's cosign signature
/// into `signatures`, from payloads kept during the content pass (one pass over a `.tgz`).
fn check_content(
    path: &Path,
    trust: Option<&Trust>,
    signatures: &SignatureSlot,
) -> Result<String, String> {
    let reason = |e: PackageError| reason(path, e);
    let pkg = load::open(path).map_err(reason)?;
    let wanted = trust
        .map(|_| cosign_check::payloads(&pkg))
        .unwrap_or_default();
    let content = blobs::verify_all_keeping(&pkg, &|d| wanted.contains(d));
    if let Some(trust) = trust {
        // A package whose content failed still gets its rows: the payloads are then read alone.
        let kept = content.as_ref().cloned().unwrap_or_default();
        let rows = cosign_check::check_with(&pkg, trust, &kept).map_err(reason);
        *signatures.borrow_mut() = Some(rows);
    }
    content.map_err(reason)?;
    // A differential package's expected blobs are at the site, not in the file: external, not
    // missing (the loader refuses a blob missing without being declared).
    let (count, bytes) = pkg
        .flatten()
        .iter()
        .map(|p| p.external_totals())
        .fold((0, 0), |(n, b), (m, c)| (n + m, b + c));
    Ok(if count == 0 {
        "every blob and manifest matches its digest".into()
    } else {
        format!(
            "every carried blob and manifest matches its digest; {count} blobs ({}) expected at the site (differential package, not carried)",
            crate::output::human_bytes(bytes)
        )
    })
}

pub fn run(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    let printer = printer.with_format(args.output.format);
    let trust = args.cosign.trust()?;
    let required = args.cosign.require_signatures;
    let keyring = match &args.keyring {
        Some(path) => {
            let (keyring, warnings) = Keyring::load(path)?;
            for w in warnings {
                printer.warn(w);
            }
            Some(keyring)
        }
        None => None,
    };
    // Absolute, so that the summary names files the way the documented output does.
    let root = std::path::absolute(&args.path).unwrap_or_else(|_| args.path.clone());
    let files = targets(&root, &load::is_package)?;
    if files.is_empty() {
        return Err(Fail::new(
            ExitCode::Input,
            format!("{}: no packages in this directory", args.path.display()),
        )
        .with_hint(
            "packages are .tgz, .tar.gz, .tar or .tar.zst files, or extracted package directories",
        )
        .into());
    }
    let signatures = SignatureSlot::default();
    let content = |f: &Path| check_content(f, trust.as_ref(), &signatures);
    let mut reports = Vec::new();
    for f in &files {
        let report = check_file(f, keyring.as_ref(), &content);
        reports.push(match signatures.borrow_mut().take() {
            Some(rows) => {
                let report = report.with_signatures(rows, required);
                let unsigned: Vec<&str> = (report.images.iter())
                    .filter(|r| r.signature == Status::Unsigned)
                    .map(|r| r.image.as_str())
                    .collect();
                if !required && !unsigned.is_empty() {
                    printer.warn(crate::output::escape(&format!(
                        "{}: {} image(s) without a cosign signature: {} (--require-signatures makes this fail)",
                        f.display(),
                        unsigned.len(),
                        unsigned.join(", ")
                    )));
                }
                report
            }
            None => report,
        });
    }
    let mut report = Report::new(root, reports);
    if let Some(trust) = &trust {
        report = report.with_trust(trust, required);
    }
    printer.data(&report, || render_text(&report))?;
    Ok(if report.summary.failed > 0 {
        ExitCode::Verify
    } else {
        ExitCode::Success
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::tests::{keypair, sign, write_keyring};

    fn content_ok(_: &Path) -> Result<String, String> {
        Ok("every blob and manifest matches its digest".into())
    }

    fn content_bad(p: &Path) -> Result<String, String> {
        Err(format!(
            "{}: entry blobs/sha256/ab does not match its digest",
            p.display()
        ))
    }

    struct Dir {
        dir: tempfile::TempDir,
    }

    impl Dir {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn file(&self, name: &str, body: &[u8]) -> PathBuf {
            let p = self.dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            p
        }
        fn checksum(&self, pkg: &Path, hex: Option<&str>) {
            let real = signature::sha256_file(pkg).unwrap();
            let name = pkg.file_name().unwrap().to_string_lossy();
            std::fs::write(
                sidecar(pkg, "sha256"),
                format!("{}  {name}\n", hex.unwrap_or(real.hex())),
            )
            .unwrap();
        }
    }

    #[test]
    fn every_outcome() {
        let d = Dir::new();
        let key = keypair("Release <r@example.com>");
        let (ring, _) =
            Keyring::load(&write_keyring(d.dir.path(), "keys.asc", &key, true)).unwrap();

        let signed = d.file("a-signed.tgz", b"signed package");
        let sig = sign(&key, b"signed package");
        std::fs::write(
            sidecar(&signed, "sig"),
            sig.to_armored_bytes(Default::default()).unwrap(),
        )
        .unwrap();

        let bad_sig = d.file("b-badsig.tgz", b"tampered package");
        std::fs::write(
            sidecar(&bad_sig, "sig"),
            pgp::ser::Serialize::to_bytes(&sign(&key, b"original")).unwrap(),
        )
        .unwrap();

        let summed = d.file("c-summed.tgz", b"summed");
        d.checksum(&summed, None);

        let bad_sum = d.file("d-badsum.tgz", b"bad sum");
        d.checksum(&bad_sum, Some(&"0".repeat(64)));

        let bare = d.file("e-bare.tgz", b"no sidecar");

        let targets = targets(d.dir.path(), &|_| false).unwrap();
        assert_eq!(
            targets,
            [
                signed.clone(),
                bad_sig.clone(),
                summed.clone(),
                bad_sum.clone(),
                bare.clone()
            ]
        );

        let files: Vec<FileReport> = targets
            .iter()
            .map(|f| check_file(f, Some(&ring), &content_ok))
            .collect();
        let outcomes: Vec<Outcome> = files.iter().map(|f| f.result).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Gpg,
                Outcome::Failed,
                Outcome::Checksum,
                Outcome::Failed,
                Outcome::NoVerificationFile
            ]
        );
        assert_eq!(files[0].method, "gpg");
        assert!(
            files[1]
                .reason
                .as_deref()
                .unwrap()
                .contains("bad signature")
        );
        assert!(
            files[3]
                .reason
                .as_deref()
                .unwrap()
                .contains("checksum mismatch")
        );

        let report = Report::new(d.dir.path().to_path_buf(), files);
        assert_eq!(
            report.summary,
            Counts {
                gpg: 1,
                checksum: 1,
                failed: 2,
                no_verification_file: 1
            }
        );
        let text = render_text(&report);
        let root = d.dir.path().display();
        let expected_head = format!(
            "verify path: {root}\n====== Verification Summary ======\n\
             Verified successfully with GPG: 1 file(s)\n  - {root}/a-signed.tgz\n\
             Verified successfully with checksum: 1 file(s)\n  - {root}/c-summed.tgz\n\
             Verification failed: 2 file(s)\n  - {root}/b-badsig.tgz: "
        );
        assert!(text.starts_with(&expected_head), "{text}");
        assert!(
            text.ends_with(&format!(
                "No verification file found: 1 file(s)\n  - {root}/e-bare.tgz\n"
            )),
            "{text}"
        );
        assert_eq!(text.lines().count(), 11, "{text}");

        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["files"][0]["method"], "gpg");
        assert_eq!(json["files"][0]["result"], "gpg");
        assert_eq!(json["files"][1]["result"], "failed");
        assert_eq!(json["files"][4]["result"], "no-verification-file");
        assert_eq!(json["summary"]["failed"], 2);
    }

    #[test]
    fn signature_without_keyring_fails_with_hint() {
        let d = Dir::new();
        let key = keypair("Release <r@example.com>");
        let pkg = d.file("x.tgz", b"data");
        std::fs::write(
            sidecar(&pkg, "sig"),
            pgp::ser::Serialize::to_bytes(&sign(&key, b"data")).unwrap(),
        )
        .unwrap();
        let r = check_file(&pkg, None, &content_ok);
        assert_eq!(r.result, Outcome::Failed);
        assert!(r.reason.unwrap().contains("pass --keyring"));
    }

    #[test]
    fn wrong_key_fails() {
        let d = Dir::new();
        let key = keypair("Release <r@example.com>");
        let other = keypair("Other <o@example.com>");
        let (ring, _) = Keyring::load(&write_keyring(d.dir.path(), "k", &other, false)).unwrap();
        let pkg = d.file("x.tgz", b"data");
        std::fs::write(
            sidecar(&pkg, "sig"),
            pgp::ser::Serialize::to_bytes(&sign(&key, b"data")).unwrap(),
        )
        .unwrap();
        let r = check_file(&pkg, Some(&ring), &content_ok);
        assert_eq!(r.result, Outcome::Failed);
        assert!(r.reason.unwrap().contains("not in the keyring"));
    }

    #[test]
    fn content_failure_counts_even_with_good_sidecars() {
        let d = Dir::new();
        let key = keypair("Release <r@example.com>");
        let (ring, _) = Keyring::load(&write_keyring(d.dir.path(), "k", &key, true)).unwrap();
        let pkg = d.file("x.tgz", b"data");
        d.checksum(&pkg, None);
        std::fs::write(
            sidecar(&pkg, "sig"),
            pgp::ser::Serialize::to_bytes(&sign(&key, b"data")).unwrap(),
        )
        .unwrap();
        let r = check_file(&pkg, Some(&ring), &content_bad);
        assert_eq!(r.result, Outcome::Failed);
        assert_eq!(r.method, "gpg");
        assert!(r.reason.unwrap().contains("does not match its digest"));
        assert_eq!(r.checks.iter().filter(|c| c.ok).count(), 2);
    }

    #[test]
    fn targets_skip_sidecars_and_non_packages() {
        let d = Dir::new();
        for n in [
            "b.tar.zst",
            "a.tgz",
            "a.tgz.sha256",
            "a.tgz.sig",
            "notes.txt",
            "c.tar",
            "d.tar.gz",
        ] {
            d.file(n, b"x");
        }
        std::fs::create_dir(d.dir.path().join("pkgdir")).unwrap();
        std::fs::create_dir(d.dir.path().join("other")).unwrap();
        let is_pkg = |p: &Path| p.ends_with("pkgdir");
        let names: Vec<String> = targets(d.dir.path(), &is_pkg)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.tgz", "b.tar.zst", "c.tar", "d.tar.gz", "pkgdir"]);
        assert!(matches!(
            targets(&d.dir.path().join("nope"), &is_pkg),
            Err(PackageError::NotFound { .. })
        ));
        let single = d.dir.path().join("a.tgz");
        assert_eq!(targets(&single, &is_pkg).unwrap(), [single]);
    }

    fn row(image: &str, signature: Status, reason: Option<&str>) -> ImageSignature {
        ImageSignature {
            package: "p.tgz".into(),
            image: image.into(),
            digest: crate::digest::Digest::of(image.as_bytes()),
            signature,
            signatures: Vec::new(),
            identity: None,
            reason: reason.map(str::to_string),
        }
    }

    #[test]
    fn cosign_check_fails_on_bad_signatures_and_on_unsigned_only_when_required() {
        let d = Dir::new();
        let pkg = d.file("x.tgz", b"data");
        let base = || check_file(&pkg, None, &content_ok);
        let rows = vec![
            row("r/a:1", Status::Signed, None),
            row("r/b:1", Status::Unsigned, None),
        ];
        let lenient = base().with_signatures(Ok(rows.clone()), false);
        assert_eq!(lenient.result, Outcome::NoVerificationFile);
        assert_eq!(lenient.checks[1].detail, "1 image(s) signed, 1 unsigned");
        assert_eq!(lenient.images.len(), 2);
        let strict = base().with_signatures(Ok(rows), true);
        assert_eq!(strict.result, Outcome::Failed);
        assert_eq!(strict.reason.as_deref(), Some("image r/b:1: unsigned"));

        let bad = vec![
            row("r/a:1", Status::BadSignature, Some("why")),
            row("r/b:1", Status::BadSignature, Some("why not")),
        ];
        let r = base().with_signatures(Ok(bad), false);
        assert_eq!(r.result, Outcome::Failed);
        assert_eq!(
            r.reason.as_deref(),
            Some("image r/a:1: bad signature: why (and 1 more image(s))")
        );
        let r = base().with_signatures(Err("gone".into()), false);
        assert_eq!(r.result, Outcome::Failed);
        assert_eq!(
            r.reason.as_deref(),
            Some("cosign signatures cannot be read: gone")
        );
    }

    #[test]
    fn directory_packages_get_no_sidecar_checks() {
        let d = Dir::new();
        let pkg = d.dir.path().join("pkgdir");
        std::fs::create_dir(&pkg).unwrap();
        std::fs::write(sidecar(&pkg, "sig"), b"junk").unwrap();
        let r = check_file(&pkg, None, &content_ok);
        assert_eq!(r.result, Outcome::NoVerificationFile);
        assert_eq!(r.checks.len(), 1);
    }
}
