//! A real CNCF distribution registry (`docker-registry`, Debian) per test: plain or TLS, no auth,
//! htpasswd or token auth. It listens on a free port it picks itself (`addr: 127.0.0.1:0`), read
//! back from its `listening on` log line; everything lives in a temp dir removed on drop.
//!
//! Needs `docker-registry`, `openssl` (TLS and token certs) and `htpasswd` (apache2-utils).

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::token_server::{self, TokenServer};

pub use super::token_server::{PASSWORD, USER};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Auth {
    #[default]
    None,
    /// Basic auth; user [`USER`], password [`PASSWORD`].
    Htpasswd,
    /// Bearer tokens from a [`TokenServer`]; same user.
    Token,
}

#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    pub tls: bool,
    pub auth: Auth,
    /// Token auth only: anonymous callers get `pull`.
    pub anonymous_pull: bool,
}

pub struct Registry {
    dir: tempfile::TempDir,
    options: RegistryOptions,
    port: u16,
    child: Option<Child>,
    token: Option<TokenServer>,
}

/// Generous: the registry starts in ~50 ms, but CI machines can be loaded.
const START_TIMEOUT: Duration = Duration::from_secs(30);

impl Registry {
    /// A plain-HTTP registry without auth.
    pub fn plain() -> Self {
        Self::start(RegistryOptions::default())
    }

    pub fn start(options: RegistryOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("violet-registry.")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir_all(dir.path().join("storage")).expect("storage dir");
        if options.tls {
            make_tls(dir.path());
        }
        if options.auth == Auth::Htpasswd {
            let out = Command::new("htpasswd")
                .args(["-Bbn", USER, PASSWORD])
                .output()
                .expect("run htpasswd (apache2-utils)");
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(dir.path().join("htpasswd"), out.stdout).expect("write htpasswd");
        }
        let token = (options.auth == Auth::Token).then(|| {
            openssl(
                dir.path(),
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=token-signer",
                    "-keyout",
                    "token.key",
                    "-out",
                    "token.crt",
                ],
            );
            TokenServer::start(
                &dir.path().join("token.key"),
                &dir.path().join("token.crt"),
                options.anonymous_pull,
            )
        });
        let mut reg = Self {
            dir,
            options,
            port: 0,
            child: None,
            token,
        };
        reg.launch(0);
        reg
    }

    fn write_config(&self, port: u16) -> PathBuf {
        let d = self.dir.path().display();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {d}/storage\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: not-a-secret-test-only\n"
        );
        if self.options.tls {
            cfg += &format!("  tls:\n    certificate: {d}/server.crt\n    key: {d}/server.key\n");
        }
        match (&self.options.auth, &self.token) {
            (Auth::Htpasswd, _) => {
                cfg +=
                    &format!("auth:\n  htpasswd:\n    realm: test-realm\n    path: {d}/htpasswd\n")
            }
            (Auth::Token, Some(t)) => {
                cfg += &format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {d}/token.crt\n",
                    t.realm(),
                    token_server::SERVICE,
                    token_server::ISSUER
                )
            }
            _ => {}
        }
        let path = self.dir.path().join("config.yml");
        std::fs::write(&path, cfg).expect("write config");
        path
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    fn launch(&mut self, port: u16) {
        let config = self.write_config(port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry (apt-get install docker-registry)");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let port = loop {
            let text = self.log_since(offset);
            if let Some(p) = text
                .split("listening on 127.0.0.1:")
                .nth(1)
                .and_then(|rest| {
                    rest.split(|c: char| !c.is_ascii_digit())
                        .next()
                        .and_then(|p| p.parse::<u16>().ok())
                })
            {
                break p;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("docker-registry exited ({status}); log:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start; log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        self.port = port;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry does not accept connections"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn log_since(&self, offset: u64) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.log_path()) {
            let _ = f.read_to_string(&mut s);
        }
        s.get(offset as usize..).unwrap_or("").to_string()
    }

    /// The registry's log including the access log (one line per request).
    pub fn log(&self) -> String {
        self.log_since(0)
    }

    /// How many requests with this method reached `path_part` (from the access log).
    pub fn requests(&self, method: &str, path_part: &str) -> usize {
        let needle = format!("\"{method} ");
        self.log()
            .lines()
            .filter(|l| l.contains(&needle) && l.contains(path_part))
            .count()
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        let scheme = if self.options.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    pub fn ca_file(&self) -> Option<PathBuf> {
        self.options
            .tls
            .then(|| self.dir.path().join("cacerts/ca.crt"))
    }

    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Deletes the largest blob's data behind the registry's back, as a broken storage would
    /// (the repositories still link it; the registry answers 404 for it).
    pub fn lose_largest_blob(&self) {
        let blobs = self.storage_dir().join("docker/registry/v2/blobs/sha256");
        let largest = std::fs::read_dir(&blobs)
            .unwrap()
            .flat_map(|prefix| std::fs::read_dir(prefix.unwrap().path()).unwrap())
            .map(|blob| blob.unwrap().path())
            .max_by_key(|dir| std::fs::metadata(dir.join("data")).map_or(0, |m| m.len()))
            .expect("a blob in the registry's storage");
        std::fs::remove_dir_all(&largest).unwrap();
    }

    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the same storage.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port;
        self.launch(port);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway CA and a server certificate for localhost / 127.0.0.1 signed by it.
fn make_tls(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=violet-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
    // A directory with only the CA certificate: skopeo's --cert-dir treats a *.key next to it
    // as a client key and then wants its certificate.
    std::fs::create_dir_all(dir.join("cacerts")).expect("cacerts dir");
    std::fs::copy(dir.join("ca.crt"), dir.join("cacerts/ca.crt")).expect("copy CA");
}
