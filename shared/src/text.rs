//! Bounding text that came from outside (event fields, error messages) before it goes
//! into a log line, an attribute or a problem document.

/// At most `max_chars` characters of `s`.
pub fn bounded(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

/// At most `max_chars` characters of `s`, with `...` when something was cut.
pub fn truncated(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

/// One line of at most `max_chars` characters: control characters (and any other
/// character SQS refuses in an attribute) become spaces, the ends are trimmed.
pub fn one_line(s: &str, max_chars: usize) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || !crate::ports::limits::allowed_char(c) {
                ' '
            } else {
                c
            }
        })
        .take(max_chars)
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_at_characters_not_bytes() {
        assert_eq!(bounded("äöü", 2), "äö");
        assert_eq!(bounded("ab", 5), "ab");
        assert_eq!(truncated("abcdef", 3), "abc...");
        assert_eq!(truncated("abc", 3), "abc");
        assert_eq!(one_line(" a\nb\u{FFFF}c\t ", 10), "a b c");
        assert_eq!(one_line(&"ü".repeat(300), 256).chars().count(), 256);
    }
}
