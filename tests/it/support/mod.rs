//! Test support: `TestContext`, real registries, token server, fault proxy, platform emulator.

#![allow(dead_code)] // each helper is used by some tests only; the test binary is built as a whole

pub mod adversarial;
pub mod artifacts;
pub mod cosign;
pub mod packages;
pub mod platform;
pub mod proxy;
pub mod referrers;
pub mod registry;
pub mod skopeo;
pub mod token_server;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Pins a user-visible output: `snap!(ctx, "name", text)` writes `snapshots/<module>__<name>.snap`
/// (`push__plain_text`, `push_platform__chart`), with `ctx`'s filters for paths, ports, durations
/// and rates applied. The one snapshot form and naming scheme of the suite.
/// `snap!(ctx, "name", text, [(regex, replacement), ...])` adds filters of its own.
macro_rules! snap {
    ($ctx:expr, $name:expr, $value:expr) => {
        snap!($ctx, $name, $value, [])
    };
    ($ctx:expr, $name:expr, $value:expr, [$($filter:expr),* $(,)?]) => {{
        let module = module_path!().rsplit("::").next().unwrap_or("it");
        let name = format!("{}__{}", module, $name);
        let value: String = $value;
        #[allow(unused_mut)]
        let mut settings = $ctx.insta_settings();
        $(let (re, rep) = $filter; settings.add_filter(re, rep);)*
        settings.bind(|| insta::assert_snapshot!(name, value));
    }};
}

/// One test's private world: a temp directory holding HOME, the Docker config and any files the
/// test writes, and a way to run the `violet` binary inside it.
pub struct TestContext {
    dir: tempfile::TempDir,
}

/// What a finished command printed and how it exited.
#[derive(Debug)]
pub struct Output {
    /// Exit code; `-1` when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics with both streams when the command did not exit 0.
    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(
            self.code, 0,
            "command failed\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Both streams, labelled: the form every snapshot of a whole run takes.
    pub fn streams(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }

    /// Both streams, for "never appears anywhere" checks.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// The `error:` line and what follows it (the `hint:`), for snapshots of a failure.
    pub fn error(&self) -> String {
        let at = self.stderr.find("error:").unwrap_or_else(|| {
            panic!(
                "no error line\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        });
        self.stderr[at..].to_string()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON: {e}\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl TestContext {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("violet-it-")
            .tempdir()
            .expect("create temp dir");
        std::fs::create_dir_all(dir.path().join("home/.docker")).expect("create HOME");
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `HOME` of the commands this context runs.
    pub fn home(&self) -> PathBuf {
        self.path().join("home")
    }

    /// A path inside the context directory (parents created).
    pub fn file(&self, rel: &str) -> PathBuf {
        let p = self.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create parent dir");
        }
        p
    }

    /// `violet` with a clean environment: only PATH survives; HOME and DOCKER_CONFIG point into the
    /// temp directory (no user credentials leak in), no proxies, no colours; cwd is the temp dir.
    pub fn violet(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_violet"));
        self.clean_env(&mut cmd);
        cmd
    }

    /// Applies the same clean environment to any other tool (skopeo, curl, ...).
    pub fn clean_env(&self, cmd: &mut Command) {
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("DOCKER_CONFIG", self.home().join(".docker"))
            .env("XDG_RUNTIME_DIR", self.home())
            .env("XDG_CONFIG_HOME", self.home().join(".config"))
            .env("NO_COLOR", "1")
            .env("TERM", "dumb")
            .current_dir(self.path());
    }

    /// Runs `violet ARGS...` from inside a multi-threaded async test, so that an in-process server
    /// (the platform emulator) keeps serving meanwhile.
    pub fn run_blocking<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        tokio::task::block_in_place(|| self.run(args))
    }

    /// Runs `violet ARGS...` with `stdin` and extra environment off the async runtime, so that an
    /// in-process server (the platform emulator) keeps serving meanwhile.
    pub async fn run_async<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> Output {
        let mut cmd = self.violet();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let stdin = stdin.map(|s| s.as_bytes().to_vec());
        tokio::task::spawn_blocking(move || run(cmd, stdin.as_deref()))
            .await
            .expect("join")
    }

    /// Runs `violet ARGS...` to completion with stdin closed.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.violet();
        cmd.args(args);
        run(cmd, None)
    }

    /// Runs `violet ARGS...` to completion with `stdin` as its standard input.
    pub fn run_stdin<I, S>(&self, args: I, stdin: &str) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.violet();
        cmd.args(args);
        run(cmd, Some(stdin.as_bytes()))
    }

    /// insta settings whose filters make output stable: this context's temp path, loopback
    /// ports, durations and throughput numbers.
    pub fn insta_settings(&self) -> insta::Settings {
        let mut s = insta::Settings::clone_current();
        for (pattern, replacement) in self.filters() {
            s.add_filter(&pattern, replacement);
        }
        s.set_prepend_module_to_snapshot(false);
        s
    }

    /// The filters of [`Self::insta_settings`], as (regex, replacement), most specific first.
    pub fn filters(&self) -> Vec<(String, &'static str)> {
        let tmp = self.path().to_string_lossy().into_owned();
        let mut f = vec![(regex::escape(&tmp), "[TMP]")];
        // macOS and some CI hosts reach the temp dir through a symlink
        if let Ok(real) = self.path().canonicalize()
            && real != self.path()
        {
            f.push((regex::escape(&real.to_string_lossy()), "[TMP]"));
        }
        f.extend([
            (
                r"(127\.0\.0\.1|localhost|\[::1\]):\d+".to_string(),
                "$1:[PORT]",
            ),
            (r"\d+(\.\d+)?\s?([KMGT]i?B|B)/s".to_string(), "[RATE]"),
            (
                r"\b\d+(\.\d+)?\s?(ns|µs|us|ms|s|m|h)\b".to_string(),
                "[DURATION]",
            ),
            // The committed sample packages under testdata/.
            (regex::escape(env!("CARGO_MANIFEST_DIR")), "[REPO]"),
            // The elapsed time of a JSON report.
            (
                r#""seconds": [0-9.e-]+"#.to_string(),
                r#""seconds": [SECONDS]"#,
            ),
        ]);
        f
    }

    /// Applies [`Self::filters`] to a string, for assertions outside insta.
    pub fn redact(&self, text: &str) -> String {
        self.filters()
            .iter()
            .fold(text.to_string(), |acc, (pattern, replacement)| {
                regex::Regex::new(pattern)
                    .expect("valid filter")
                    .replace_all(&acc, *replacement)
                    .into_owned()
            })
    }
}

/// Runs `cmd` to completion, feeding `stdin` if given, and captures everything it prints.
pub fn run(mut cmd: Command, stdin: Option<&[u8]>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        // A command that exits without reading stdin is the test's business, not a harness failure.
        let _ = pipe.write_all(input);
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {cmd:?}: {e}"));
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn filters_hide_ports_paths_durations_and_rates() {
    let ctx = TestContext::new();
    let text = format!(
        "pushed {}/a.tgz to 127.0.0.1:41234 in 1.25s (312.5 MiB/s), retry after 500ms",
        ctx.path().display()
    );
    assert_eq!(
        ctx.redact(&text),
        "pushed [TMP]/a.tgz to 127.0.0.1:[PORT] in [DURATION] ([RATE]), retry after [DURATION]"
    );
}

#[test]
fn violet_runs_with_a_clean_environment() {
    let ctx = TestContext::new();
    let out = ctx.run(["version"]).success();
    assert!(out.stdout.starts_with("Version: v"), "{}", out.stdout);
}

/// A library error as the binary shows it: the `error:` line and its `hint:`, for snapshots of
/// errors that tests meet below the command line.
pub fn shown(err: &impl violet::error::UserError) -> String {
    match err.hint() {
        Some(hint) => format!("error: {err}\n  hint: {hint}"),
        None => format!("error: {err}"),
    }
}

/// How many upload PUTs the registry committed for `digest`, from its access log (a proxy does
/// not record queries, and the digest is in the query).
pub fn puts_of(registry: &registry::Registry, digest: &violet::digest::Digest) -> usize {
    let hex = digest.hex();
    registry
        .log()
        .lines()
        .filter(|l| l.contains("\"PUT ") && l.contains("/blobs/uploads/") && l.contains(hex))
        .count()
}

/// Every config and layer digest of a package, as the package itself lists them (`violet show`).
pub fn blob_digests(ctx: &TestContext, path: &Path) -> Vec<violet::digest::Digest> {
    let out = ctx
        .run(["show", &path.display().to_string(), "-o", "json"])
        .success();
    let mut v: Vec<violet::digest::Digest> = out.json()["images"]
        .as_array()
        .expect("images")
        .iter()
        .flat_map(|i| i["blobs"].as_array().expect("blobs").clone())
        .map(|d| d.as_str().expect("digest").parse().expect("valid digest"))
        .collect();
    v.sort();
    v.dedup();
    v
}
