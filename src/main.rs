// Opt-in only (`scripts/release.sh --mimalloc`, for the benchmark): since blob-body chunks are
// pooled, musl's own malloc keeps up, while mimalloc's per-thread heaps took a core-shaped push
// to 530 MB (docs/release.md has the numbers).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// glibc raises its mmap threshold to the size of each large block freed, after which the
/// 256 KiB chunks of blob bodies come from per-thread arenas that keep what they held: with many
/// uploads in flight, a core-shaped push peaked at 84 MB instead of 57 MB. A fixed threshold keeps
/// those chunks mapped and unmapped, so the peak follows what is really in flight; the few that
/// src/transfer/body.rs keeps for reuse spare a large push most of those mmap/munmap pairs.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
fn tune_allocator() {
    // SAFETY: mallopt only sets a parameter of the C allocator; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc"))))]
fn tune_allocator() {}

fn main() -> std::process::ExitCode {
    tune_allocator();
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
