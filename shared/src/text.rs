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

/// Whether `c` could forge or hide text on a terminal or in a log line: a control
/// character (C0, DEL, C1: newlines and ESC among them) or a bidirectional control (it
/// reorders what follows it, U+202E among them), or a line or paragraph separator.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// `s` with every [`is_invisible`] character written as an escape (`\n`, `\r`, `\t`,
/// else `\u{..}`), so outside text cannot start a line, move the cursor or reorder a
/// terminal's output. `keep_newlines`: leave `\n` as it is (text whose lines are ours, such
/// as pretty-printed JSON, whose strings are already escaped).
pub fn escaped(s: &str, keep_newlines: bool) -> std::borrow::Cow<'_, str> {
    let needs = |c: char| is_invisible(c) && !(keep_newlines && c == '\n');
    if !s.chars().any(needs) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            c if !needs(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    std::borrow::Cow::Owned(out)
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

    #[test]
    fn invisible_characters_are_escaped_and_visible_ones_kept() {
        assert_eq!(escaped("plain é 😀 text", false), "plain é 😀 text");
        assert_eq!(
            escaped(
                "a\nINFO forged\r\t\u{1b}[2J\u{7f}\u{85}\u{9b}\u{202e}z",
                false
            ),
            "a\\nINFO forged\\r\\t\\u{1b}[2J\\u{7f}\\u{85}\\u{9b}\\u{202e}z"
        );
        assert_eq!(
            escaped("{\n  \"a\u{202e}\"\n}", true),
            "{\n  \"a\\u{202e}\"\n}"
        );
        for c in ['\u{2066}', '\u{2069}', '\u{200f}', '\u{2028}', '\u{61c}'] {
            assert!(is_invisible(c), "{c:?}");
        }
    }
}
