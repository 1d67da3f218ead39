//! The distribution spec's grammar for repository paths and tags: checked when a package is
//! opened, since a registry refuses a bad name only after every blob went up.

/// A tag as the distribution spec defines it: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`. A registry
/// answers anything else only after every blob went up, with an unhelpful 404.
pub fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A repository path as the distribution spec defines it: components of
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by `/`, 255 characters at most.
pub fn valid_repository(repository: &str) -> bool {
    repository.len() <= 255 && repository.split('/').all(spec_path_component)
}

fn spec_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__` or any number of `-`, between alphanumerics.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_grammar() {
        for ok in ["v1", "V1.2.3-rc_1", "_x", &"a".repeat(128)] {
            assert!(valid_tag(ok), "{ok}");
        }
        for bad in [
            "",
            ".v1",
            "-v1",
            "v1/x",
            "v 1",
            "v1\n",
            &"a".repeat(129),
            "é",
        ] {
            assert!(!valid_tag(bad), "{bad}");
        }
        for ok in ["acp/topolvm-operator", "a", "a__b", "a---b", "a.b_c/d0"] {
            assert!(valid_repository(ok), "{ok}");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "a..b", "a___b", "-a", "a-", "a b", "a._b",
        ] {
            assert!(!valid_repository(bad), "{bad}");
        }
    }
}
