//! Package builders and the `violet push` runner the scenarios share. The synthetic-package
//! generator is re-exported from here so that every test names it in one place.

use std::path::Path;
use std::process::Command;

pub use violet::package::{Container, PackageType, StoreKind};
pub use violet::synth::{self, MediaTypes, SynthImage, SynthPackage, SynthSpec};

use super::skopeo::skopeo_inspect_raw_digest;
use super::{Output, TestContext, run};

/// Where the synthetic packages say their images come from.
pub const SOURCE_REGISTRY: &str = "harbor.demo.io";
/// Registry access flags of a plain, open test registry.
pub const PLAIN: &[&str] = &["--plain", "--no-auth"];
/// skopeo's flags for a plain-HTTP (or self-signed) test registry.
pub const NO_TLS: &[&str] = &["--tls-verify=false"];
/// The two multi-arch images most scenarios move around.
pub const DEMO_IMAGES: &[&str] = &["acp/demo", "acp/demo-agent"];

/// A bundle of images `repos` at `v1.0.0`, each with two platforms and two layers, the first layer
/// identical across images (so that sharing and mounting have something to do).
pub fn bundle_spec(
    name: &str,
    container: Container,
    store: StoreKind,
    repos: &[&str],
) -> SynthSpec {
    let mut s = SynthSpec::new(name, PackageType::Bundle);
    s.container = container;
    s.store = store;
    s.images = repos
        .iter()
        .map(|r| {
            let mut i = SynthImage::new(*r, "v1.0.0");
            i.shared_layers = 1;
            i
        })
        .collect();
    s
}

/// A one-image plugin `acp/<name>:v1.0.0` (two platforms, one layer of `layer_size` bytes): the
/// smallest package the integrity scenarios break in one place.
pub fn plugin_spec(
    name: &str,
    container: Container,
    store: StoreKind,
    layer_size: u64,
) -> SynthSpec {
    let mut spec = SynthSpec::new(name, PackageType::Plugin);
    spec.container = container;
    spec.store = store;
    let mut image = SynthImage::new(format!("acp/{name}"), "v1.0.0");
    image.layers = 1;
    image.layer_size = layer_size;
    spec.images = vec![image];
    spec
}

/// `host[/prefix]/repository:tag` of an image of a synthetic package at the destination `dest`.
pub fn at_destination(reference: &str, dest: &str) -> String {
    reference.replacen(SOURCE_REGISTRY, dest, 1)
}

/// Every image of `pkg` resolves at `dest` to the package's digest, according to skopeo.
#[track_caller]
pub fn assert_pushed(ctx: &TestContext, pkg: &SynthPackage, dest: &str, flags: &[&str]) {
    assert!(!pkg.images.is_empty());
    for (reference, digest) in &pkg.images {
        let at = format!("docker://{}", at_destination(reference, dest));
        assert_eq!(
            &skopeo_inspect_raw_digest(ctx, &at, flags),
            digest,
            "{at} does not resolve to the package's digest"
        );
    }
}

impl TestContext {
    /// Writes the synthetic package `spec` under `dir` of this context.
    pub fn write_package(&self, dir: &str, spec: &SynthSpec) -> SynthPackage {
        synth::write(spec, &self.path().join(dir)).expect("write synthetic package")
    }

    /// `violet push PATH --dest-repo D1 --dest-repo D2 ... ARGS...`, images only: `--skip-crs`, or
    /// with `--skip-push` (which needs somewhere for the catalog resources) `--crs-out <tmp>/crs`.
    pub fn push(&self, path: impl AsRef<Path>, dests: &[&str], args: &[&str]) -> Output {
        run(self.push_command(path, dests, args), None)
    }

    /// [`Self::push`] with extra environment (`VIOLET_PASSWORD_<HOST>` and the like).
    pub fn push_env(
        &self,
        path: impl AsRef<Path>,
        dests: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Output {
        let mut cmd = self.push_command(path, dests, args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(cmd, None)
    }

    /// [`Self::push`] with `stdin` as standard input (`--password-stdin`).
    pub fn push_stdin(
        &self,
        path: impl AsRef<Path>,
        dests: &[&str],
        args: &[&str],
        stdin: &str,
    ) -> Output {
        run(self.push_command(path, dests, args), Some(stdin.as_bytes()))
    }

    /// The command [`Self::push`] runs, for callers that add environment or spawn it.
    pub fn push_command(&self, path: impl AsRef<Path>, dests: &[&str], args: &[&str]) -> Command {
        let mut cmd = self.violet();
        cmd.arg("push").arg(path.as_ref());
        for d in dests {
            cmd.args(["--dest-repo", d]);
        }
        if args.contains(&"--skip-push") {
            cmd.arg("--crs-out").arg(self.path().join("crs"));
        } else {
            cmd.arg("--skip-crs");
        }
        cmd.args(args);
        cmd
    }

    /// `violet mirror --from FROM --to TO --from-plain --plain --no-auth ARGS...`: between two
    /// plain, open test registries.
    pub fn mirror_plain(&self, from: &str, to: &str, args: &[&str]) -> Output {
        let mut all = vec!["mirror", "--from", from, "--to", to];
        all.extend_from_slice(&["--from-plain", "--plain", "--no-auth"]);
        all.extend_from_slice(args);
        self.run(all)
    }

    /// `violet create DIR --artifact ARTIFACT --plain --no-auth ARGS...`: a package directory from
    /// an image in a plain, open test registry.
    pub fn create_plain(&self, dir: &str, artifact: &str, args: &[&str]) -> Output {
        let mut all = vec![
            "create",
            dir,
            "--artifact",
            artifact,
            "--plain",
            "--no-auth",
        ];
        all.extend_from_slice(args);
        self.run(all)
    }

    /// Writes the two [`DEMO_IMAGES`] as a `.tar` OCI-layout package under `dir` and pushes them
    /// into the plain, open registry `host`: the source most create scenarios start from.
    pub fn seed_demo_images(&self, dir: &str, host: &str) -> SynthPackage {
        self.seed_demo_images_with(dir, Container::Tar, StoreKind::OciLayout, host, PLAIN, "")
    }

    /// [`Self::seed_demo_images`] in another container and store, with the push's registry
    /// `access` flags and standard input.
    pub fn seed_demo_images_with(
        &self,
        dir: &str,
        container: Container,
        store: StoreKind,
        host: &str,
        access: &[&str],
        stdin: &str,
    ) -> SynthPackage {
        let pkg = self.write_package(dir, &bundle_spec(dir, container, store, DEMO_IMAGES));
        self.push_stdin(&pkg.path, &[host], access, stdin).success();
        pkg
    }
}
