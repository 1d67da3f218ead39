//! What more than one command prints the same way, so that no command imports another.

use crate::build::Rewrite;

/// The info line for an image index that `--platforms` rewrote (`create`, `package`).
pub fn rewrite_line(r: &Rewrite) -> String {
    format!(
        "{}: index rewritten to {} ({}; was {}, dropped {})",
        r.image,
        r.kept.join(", "),
        r.digest,
        r.original,
        r.dropped.join(", ")
    )
}
