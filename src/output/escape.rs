//! Terminal safety for strings a package supplies (names, references, tar entry names, YAML
//! values): a control character could move the cursor, recolour the terminal or, as a newline,
//! start a line that looks like violet's own `error:`.

use std::borrow::Cow;

/// Whether `c` is a C0 control (U+0000–U+001F, newline and ESC included), DEL or a C1 control
/// (U+0080–U+009F).
fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// `s` with every control character written as an escape (`\n`, `\t`, `\r`, `\u{1b}`), so it
/// prints on one line and changes nothing on the terminal. A backslash is left as is: the
/// escapes are for reading, not for parsing back.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_control(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Like [`escape`], but keeps the line breaks of a multi-line text (a rendered table, a report)
/// whose package-taken fields were escaped where they were put in.
pub fn escape_text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && is_control(c)) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.split('\n')
            .map(|l| escape(l).into_owned())
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_control_character() {
        assert_eq!(escape("plain name"), "plain name");
        assert_eq!(escape("a\nerror: forged"), "a\\nerror: forged");
        assert_eq!(escape("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(escape("del\u{7f} c1\u{9b}x"), "del\\u{7f} c1\\u{9b}x");
        assert_eq!(escape("nul\u{0}"), "nul\\u{0}");
        // Printable non-ASCII stays readable.
        assert_eq!(escape("café ☕ \u{a0}"), "café ☕ \u{a0}");
        assert_eq!(escape_text("a\u{1b}\nb\n"), "a\\u{1b}\nb\n");
    }
}
