fn main() -> std::process::ExitCode {
    let cli = violet::cli::parse();
    match violet::cli::run(cli) {
        Ok(code) => code.into(),
        Err(err) => {
            let (code, hint) = violet::error::classify(&err);
            eprintln!("error: {}", violet::error::one_line(&err));
            if let Some(hint) = hint {
                eprintln!("  hint: {hint}");
            }
            code.into()
        }
    }
}
