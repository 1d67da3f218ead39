// musl's malloc takes one lock for every allocation; the static release build (feature `mimalloc`,
// turned on by scripts/release.sh) would otherwise lose throughput under concurrency
// (docs/release.md has the numbers).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = violet::cli::parse();
    match violet::cli::run(cli) {
        Ok(code) => code.into(),
        Err(err) => {
            let (code, hint) = violet::outcome::classify(&err);
            eprintln!("error: {}", violet::outcome::one_line(&err));
            if let Some(hint) = hint {
                eprintln!("  hint: {hint}");
            }
            code.into()
        }
    }
}
