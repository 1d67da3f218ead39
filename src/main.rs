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
