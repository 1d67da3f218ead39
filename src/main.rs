// musl's malloc takes one lock for every allocation; the static release build (feature `mimalloc`,
// turned on by scripts/release.sh) would otherwise lose throughput under concurrency
// (docs/release.md has the numbers).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let result = match violet::cli::man_dir_requested(&argv) {
        Some(dir) => violet::cli::write_man_pages(&dir),
        None => violet::cli::run(violet::cli::parse()),
    };
    match result {
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
