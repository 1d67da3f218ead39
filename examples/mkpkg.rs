//! Writes a reproducible synthetic package (see `violet::synth`) and prints its path.
//!
//! ```sh
//! cargo run --example mkpkg -- --out /tmp/pkgs --type bundle --images 3 --layer-size 100M \
//!     --container tgz --store distribution
//! # shaped like a core package: 300 + 4 x 5 images, sizes from 1 KiB to 200 MiB (median 24 KiB),
//! # 40 % of the layers drawn from a pool of base layers several images share
//! cargo run --release --example mkpkg -- --out /tmp/pkgs --type core --name core --images 300 \
//!     --plugins 4 --plugin-images 5 --layers 4 --size-spread 1k..200M --shared-fraction 0.4 \
//!     --container tar --store oci
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use violet::package::{Container, PackageType, StoreKind};
use violet::synth::{MediaTypes, SynthImage, SynthKey, SynthLayer, SynthSignature, SynthSpec};

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
    /// For --type core: images per nested plugin package (default: --images).
    #[arg(long)]
    plugin_images: Option<usize>,
    /// Spread layer sizes from MIN to MAX (e.g. 1k..200M) instead of --layer-size: log-normal
    /// around --size-median, so most layers are small and the largest one is MAX. Sizes are
    /// drawn once for all layers of the package and its plugins (not per platform), at evenly
    /// spaced quantiles shuffled by --seed, so the total is the same for every seed.
    #[arg(long, value_parser = parse_spread)]
    size_spread: Option<(u64, u64)>,
    /// Median layer size with --size-spread.
    #[arg(long, default_value = "24k", value_parser = parse_size)]
    size_median: u64,
    /// Fraction (0..1) of layers drawn from a pool of base layers that several images share
    /// (the first pool layers the most often), instead of unique ones.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    shared_fraction: f64,
    /// Base layers in the pool per package (default: a fifth of its images, at least 1).
    #[arg(long)]
    shared_pool: Option<usize>,
    /// Sign every image's index with this unencrypted PEM private key (P-256 or RSA, PKCS#8,
    /// SEC1 or PKCS#1) as `cosign sign --key` does: `<repo>:sha256-<hex>.sig` images in the
    /// package (nested plugins too). `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`
    /// makes one; the public half is for `violet verify --cosign-key`.
    #[arg(long, value_name = "PRIV.pem")]
    cosign_key: Option<PathBuf>,
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

fn parse_spread(s: &str) -> Result<(u64, u64), String> {
    let (min, max) = s
        .split_once("..")
        .ok_or_else(|| format!("invalid spread {s:?} (example: 1k..200M)"))?;
    let (min, max) = (parse_size(min)?, parse_size(max)?);
    if min == 0 || min > max {
        return Err(format!("invalid spread {s:?}: need 0 < MIN <= MAX"));
    }
    Ok((min, max))
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("invalid fraction {s:?} (a number from 0 to 1)")),
    }
}

fn spec(args: &Args, name: &str, kind: PackageType, seed: u64, images: usize) -> SynthSpec {
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
    spec.images = (0..images)
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
    let mut top = spec(&args, &args.name, kind, args.seed, args.images);
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
                    args.plugin_images.unwrap_or(args.images),
                )
            })
            .collect();
    }
    if args.size_spread.is_some() || args.shared_fraction > 0.0 {
        plan_layers(&args, &mut top);
    }
    if let Some(path) = &args.cosign_key {
        let key = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| SynthKey::from_private_pem(&pem));
        let key = match key {
            Ok(k) => k,
            Err(e) => {
                eprintln!("error: --cosign-key {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        sign_all(&mut top, &key);
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

/// A signature of every image's index, in `spec` and its nested packages.
fn sign_all(spec: &mut SynthSpec, key: &SynthKey) {
    spec.signatures = (0..spec.images.len())
        .map(|i| SynthSignature::new(i, key.clone()))
        .collect();
    for child in &mut spec.children {
        sign_all(child, key);
    }
}

/// splitmix64, so a seed gives the same package on every machine and every `rand` version.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }
}

/// Gives every image of `top` and its children a layer plan: `--layers` layers, each one either
/// unique or (with probability `--shared-fraction`) a pool layer of its package, and sizes spread
/// by `--size-spread` (else `--layer-size`).
fn plan_layers(args: &Args, top: &mut SynthSpec) {
    let mut rng = Rng(args.seed ^ 0x5eed_1a7e_5b1a_0001);
    // (package, image, layer) slots and, per package, the pool keys used.
    let mut slots: Vec<(usize, usize, usize)> = Vec::new();
    let mut pool_keys: Vec<(usize, usize)> = Vec::new();
    let mut plans: Vec<Vec<Vec<Option<usize>>>> = Vec::new();
    let packages = std::iter::once(&*top).chain(top.children.iter());
    for (p, spec) in packages.enumerate() {
        let pool = args.shared_pool.unwrap_or(spec.images.len() / 5).max(1);
        let mut images = Vec::new();
        for i in 0..spec.images.len() {
            let mut layers = Vec::new();
            for l in 0..args.layers {
                if rng.unit() < args.shared_fraction {
                    // Squaring skews the choice: a few base layers are in most images, as in a
                    // real product where most images start from the same two or three bases.
                    let u = rng.unit();
                    let key = ((u * u) * pool as f64) as usize;
                    if !pool_keys.contains(&(p, key)) {
                        pool_keys.push((p, key));
                    }
                    layers.push(Some(key));
                } else {
                    slots.push((p, i, l));
                    layers.push(None);
                }
            }
            images.push(layers);
        }
        plans.push(images);
    }
    let mut sizes = spread_sizes(args, slots.len() + pool_keys.len());
    for i in (1..sizes.len()).rev() {
        sizes.swap(i, rng.below(i + 1));
    }
    let (unique_sizes, pool_sizes) = sizes.split_at(slots.len());
    let mut unique = slots.iter().zip(unique_sizes);
    let pool_size = |p: usize, key: usize| {
        let at = pool_keys.iter().position(|k| *k == (p, key)).unwrap_or(0);
        pool_sizes[at]
    };
    let mut assign = |p: usize, spec: &mut SynthSpec| {
        for (i, image) in spec.images.iter_mut().enumerate() {
            image.layer_plan = plans[p][i]
                .iter()
                .map(|layer| match layer {
                    Some(key) => SynthLayer {
                        size: pool_size(p, *key),
                        shared: Some(format!("base-{key}")),
                    },
                    None => SynthLayer {
                        size: *unique.next().map(|(_, s)| s).unwrap_or(&args.layer_size),
                        shared: None,
                    },
                })
                .collect();
        }
    };
    assign(0, top);
    for (c, child) in top.children.iter_mut().enumerate() {
        assign(c + 1, child);
    }
}

/// `n` layer sizes: evenly spaced quantiles of a log-normal with median `--size-median` whose
/// largest quantile is MAX, clipped to MIN..MAX; without `--size-spread`, `--layer-size` each.
fn spread_sizes(args: &Args, n: usize) -> Vec<u64> {
    let Some((min, max)) = args.size_spread else {
        return vec![args.layer_size; n];
    };
    let median = (args.size_median.clamp(min, max)) as f64;
    let top = inverse_normal(1.0 - 0.5 / n.max(1) as f64);
    let sigma = if top > 0.0 {
        (max as f64 / median).ln() / top
    } else {
        0.0
    };
    (0..n)
        .map(|i| {
            let z = inverse_normal((i as f64 + 0.5) / n as f64);
            ((median * (sigma * z).exp()).round() as u64).clamp(min, max)
        })
        .collect()
}

/// The standard normal quantile function (Acklam's rational approximation, relative error
/// below 1.2e-9: plenty for choosing layer sizes).
fn inverse_normal(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.024_25 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.024_25 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}
