//! `violet inventory`: what a site registry holds (repositories, tags with digests, the blobs
//! under them), written as a small file to carry back to the connected side, where
//! `violet package --base` builds a differential package against it.

use std::path::PathBuf;

use crate::args::registry::RegistryAccess;
use crate::error::{ExitCode, Fail};
use crate::output::{Printer, human_bytes};
use crate::package::load;
use crate::plan::Destination;
use crate::registry::{Client, credentials};
use crate::transfer::inventory::{self, FORMAT_VERSION, Inventory};

const EXAMPLES: &str = "Examples:
  # Everything the site registry lists (catalog API), as JSON
  violet inventory --dest-repo 192.168.1.10:11443 --username admin --password-stdin -o site.json < pw.txt

  # A registry that does not offer its catalog: the repositories of the packages you will upgrade
  violet inventory --dest-repo registry.site.example.com/acp --for ./packages -o site.yaml
  violet inventory --dest-repo 192.168.1.10:11443 --repos acp/topolvm-operator,acp/topolvm -o site.json";

/// Write what a registry holds (repositories, tags, blobs) to a file, for 'violet package --base'.
#[derive(Debug, clap::Args)]
#[command(
    after_help = EXAMPLES,
    mut_arg("no_auth", |a| a.help("The registry needs no authentication")),
    mut_arg("plain", |a| a.help("The registry speaks plain HTTP")),
    mut_arg("insecure", |a| a.help("Do not verify the registry's TLS certificate")),
    mut_arg("ca_files", |a| a.help("Trust this CA certificate (PEM) for the registry, in addition to the system roots. Repeatable")),
)]
pub struct Args {
    /// The registry to list: host[:port][/prefix]. With a prefix, only repositories under it.
    #[arg(
        long = "dest-repo",
        visible_alias = "dst-repo",
        value_name = "HOST[:PORT][/PREFIX]",
        env = "VIOLET_DEST_REPO"
    )]
    pub dest_repo: String,

    /// List these repositories (paths as the images name them, under the prefix) instead of
    /// asking the registry's catalog API. Comma-separated, repeatable.
    #[arg(long, value_delimiter = ',', value_name = "REPO")]
    pub repos: Vec<String>,

    /// List the repositories of the images of this package or directory of packages.
    #[arg(long = "for", value_name = "PKG")]
    pub for_package: Option<PathBuf>,

    /// File to write; .yaml/.yml writes YAML, anything else JSON. Default: JSON on stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub access: RegistryAccess,
}

pub fn run(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    super::block_on(run_async(args, printer))?
}

async fn run_async(args: Args, printer: Printer) -> anyhow::Result<ExitCode> {
    let (dest, scheme_plain) = Destination::parse(&args.dest_repo)?;
    if let Some(out) = &args.output
        && out.exists()
        && !args.force
    {
        return Err(Fail::usage(format!("{}: already exists", out.display()))
            .with_hint("pass --force to replace it, or choose another --output")
            .into());
    }
    let given = given_repositories(&args, &dest)?;
    let password = args.access.password()?;
    let resolved = credentials::resolve(
        &dest.host,
        args.access.username.as_deref(),
        password.as_deref(),
        args.access.no_auth,
    )?;
    if args.access.transport.insecure {
        printer.warn("--insecure: TLS certificates are not verified");
    }
    let client =
        Client::new(
            args.access
                .config(&dest.host, scheme_plain, resolved.credentials, None),
        )?;
    client.ping().await?;

    let (repos, listed_from) = match given {
        Some((repos, from)) => (repos, from),
        None => (catalog(&client, &dest).await?, "catalog"),
    };
    let mut inv = Inventory {
        api_version: inventory::API_VERSION.into(),
        kind: inventory::KIND.into(),
        format_version: FORMAT_VERSION,
        registry: dest.host.clone(),
        prefix: dest.prefix.clone(),
        listed_from: listed_from.into(),
        repositories: Vec::new(),
        digest: None,
    };
    for repo in &repos {
        match inventory::list_repository(&client, repo).await? {
            Some(r) => inv.repositories.push(r),
            None => printer.info(format!("{}/{repo}: not in the registry", dest.host)),
        }
    }
    inv.seal();
    let text = inv.render(args.output.as_deref())?;
    match &args.output {
        Some(path) => write_file(path, &text)?,
        None => print!("{text}"),
    }
    let tags: usize = inv.repositories.iter().map(|r| r.tags.len()).sum();
    let mut blobs = std::collections::BTreeMap::new();
    for b in inv.repositories.iter().flat_map(|r| &r.blobs) {
        blobs.insert(&b.digest, b.size);
    }
    printer.info(format!(
        "Inventory of {}: {} repositories, {tags} tags, {} blobs ({}){}",
        dest.label(),
        inv.repositories.len(),
        blobs.len(),
        human_bytes(blobs.values().sum()),
        match &args.output {
            Some(p) => format!(", written to {}", p.display()),
            None => String::new(),
        }
    ));
    Ok(ExitCode::Success)
}

/// `--repos` and the images of `--for`, as registry paths under the prefix (`None`: ask the
/// catalog).
fn given_repositories(
    args: &Args,
    dest: &Destination,
) -> anyhow::Result<Option<(Vec<String>, &'static str)>> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |r: String| {
        if !out.contains(&r) {
            out.push(r);
        }
    };
    for r in &args.repos {
        let r = r.trim().trim_matches('/');
        if !crate::registry::names::valid_repository(r) {
            return Err(Fail::usage(format!("--repos {r:?}: not a repository path"))
                .with_hint("give repository paths such as acp/topolvm-operator, comma-separated")
                .into());
        }
        push(dest.repository(r));
    }
    if let Some(path) = &args.for_package {
        let mut found = 0;
        for pkg in load::discover(path)? {
            let pkg = pkg?;
            for p in pkg.flatten() {
                for image in &p.images {
                    found += 1;
                    push(dest.repository(&image.reference.repository));
                }
            }
        }
        if found == 0 {
            return Err(Fail::new(
                ExitCode::Input,
                format!("{}: no images to take repositories from", path.display()),
            )
            .with_hint("give a package or directory that carries images, or --repos")
            .into());
        }
    }
    Ok(if args.for_package.is_some() {
        Some((out, "package"))
    } else if !args.repos.is_empty() {
        Some((out, "repos"))
    } else {
        None
    })
}

/// Every repository the catalog lists (under the prefix). A registry that does not offer the
/// catalog (404, 405) or not to this user (401, 403) is told to the user with what to do instead.
async fn catalog(client: &Client, dest: &Destination) -> anyhow::Result<Vec<String>> {
    let listed = match client.catalog().await {
        Ok(l) => l,
        Err(e) if matches!(e.status(), Some(401 | 403 | 404 | 405)) => {
            let code = if matches!(e.status(), Some(401 | 403)) {
                ExitCode::Auth
            } else {
                ExitCode::Remote
            };
            return Err(Fail::new(
                code,
                format!(
                    "{}: the registry does not list its repositories (catalog API /v2/_catalog: HTTP {})",
                    dest.host,
                    e.status().unwrap_or_default()
                ),
            )
            .with_hint("name the repositories with --repos a,b or take them from the packages to upgrade with --for PKG")
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    let mut out: Vec<String> = match &dest.prefix {
        Some(p) => listed
            .into_iter()
            .filter(|r| r.starts_with(&format!("{p}/")))
            .collect(),
        None => listed,
    };
    out.sort();
    out.dedup();
    Ok(out)
}

/// Written as `<file>.partial` then renamed: never a half inventory under the final name.
fn write_file(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let fail = |e: std::io::Error| Fail::new(ExitCode::Input, format!("{}: {e}", path.display()));
    std::fs::write(&partial, text).map_err(fail)?;
    std::fs::rename(&partial, path).map_err(fail)?;
    Ok(())
}
