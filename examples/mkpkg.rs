//! Writes a reproducible synthetic package (see `violet::synth`) and prints its path.
//!
//! ```sh
//! cargo run --example mkpkg -- --out /tmp/pkgs --type bundle --images 3 --layer-size 100M \
//!     --container tgz --store distribution
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use violet::package::{Container, PackageType, StoreKind};
use violet::synth::{MediaTypes, SynthImage, SynthSpec};

#[derive(Debug, Parser)]
#[command(about = "Write a reproducible synthetic violet package and print its path")]
struct Args {
    /// Output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Package name.
    #[arg(long, default_value = "demo")]
    name: String,
    #[arg(long = "type", value_enum, default_value_t = Kind::Bundle)]
    kind: Kind,
    #[arg(long, default_value = "v1.0.0")]
    version: String,
    #[arg(long, default_value = "stable")]
    channel: String,
    /// Number of images.
    #[arg(long, default_value_t = 2)]
    images: usize,
    /// Comma-separated `os/arch[/variant]` list.
    #[arg(long, default_value = "linux/amd64,linux/arm64", value_delimiter = ',')]
    platforms: Vec<String>,
    /// Layers per platform and image.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Bytes of content per layer: 4096, 64k, 100M, 1G.
    #[arg(long, default_value = "4k", value_parser = parse_size)]
    layer_size: u64,
    /// How many layers per platform are identical in every image (shared blobs).
    #[arg(long, default_value_t = 0)]
    shared_layers: usize,
    /// Registry host recorded in the image references.
    #[arg(long, default_value = "harbor.demo.io")]
    registry: String,
    #[arg(long, value_enum, default_value_t = ContainerArg::Tgz)]
    container: ContainerArg,
    #[arg(long, value_enum, default_value_t = StoreArg::Distribution)]
    store: StoreArg,
    /// Leave out violet.yaml (only the file name describes the package).
    #[arg(long)]
    no_metadata: bool,
    /// Docker schema 2 media types instead of OCI.
    #[arg(long)]
    docker_media_types: bool,
    /// For --type core: number of nested plugin packages (plugins/*.tgz).
    #[arg(long, default_value_t = 0)]
    plugins: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// gzip level of a .tgz container (layers are always stored blocks).
    #[arg(long, default_value_t = 1)]
    gzip_level: u32,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    Bundle,
    Plugin,
    Chart,
    Core,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ContainerArg {
    Tar,
    Tgz,
    #[value(name = "tar.zst", alias = "zst")]
    TarZst,
    #[value(alias = "directory")]
    Dir,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StoreArg {
    #[value(alias = "oci-layout")]
    Oci,
    Distribution,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches('b').trim_end_matches('i');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid size {s:?} (examples: 4096, 64k, 100M, 1G)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

fn spec(args: &Args, name: &str, kind: PackageType, seed: u64) -> SynthSpec {
    let mut spec = SynthSpec::new(name, kind);
    spec.version = args.version.clone();
    spec.channel = args.channel.clone();
    spec.registry = args.registry.clone();
    spec.metadata = !args.no_metadata;
    spec.seed = seed;
    spec.gzip_level = args.gzip_level;
    spec.store = match args.store {
        StoreArg::Oci => StoreKind::OciLayout,
        StoreArg::Distribution => StoreKind::Distribution,
    };
    spec.media_types = if args.docker_media_types {
        MediaTypes::Docker
    } else {
        MediaTypes::Oci
    };
    spec.images = (0..args.images)
        .map(|i| {
            let repo = if i == 0 {
                format!("acp/{name}")
            } else {
                format!("acp/{name}-img{i}")
            };
            let mut image = SynthImage::new(repo, args.version.clone());
            image.platforms = args.platforms.clone();
            image.layers = args.layers;
            image.layer_size = args.layer_size;
            image.shared_layers = args.shared_layers;
            image
        })
        .collect();
    spec
}

fn main() -> ExitCode {
    let args = Args::parse();
    let kind = match args.kind {
        Kind::Bundle => PackageType::Bundle,
        Kind::Plugin => PackageType::Plugin,
        Kind::Chart => PackageType::Chart,
        Kind::Core => PackageType::Core,
    };
    let mut top = spec(&args, &args.name, kind, args.seed);
    top.container = match args.container {
        ContainerArg::Tar => Container::Tar,
        ContainerArg::Tgz => Container::TarGz,
        ContainerArg::TarZst => Container::TarZst,
        ContainerArg::Dir => Container::Directory,
    };
    if matches!(args.kind, Kind::Core) {
        top.children = (1..=args.plugins)
            .map(|i| {
                spec(
                    &args,
                    &format!("{}-plugin{i}", args.name),
                    PackageType::Plugin,
                    args.seed + i as u64,
                )
            })
            .collect();
    }
    match violet::synth::write(&top, &args.out) {
        Ok(pkg) => {
            println!("{}", pkg.path.display());
            eprintln!(
                "{} images, {} blobs, {} bytes",
                pkg.images.len(),
                pkg.blob_count,
                pkg.blob_bytes
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
