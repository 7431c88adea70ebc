//! Record values shown to people, in the console and on the command line: control characters
//! escaped, so a value can never move the cursor, recolour the terminal or break a line.
//! Everything either shows from a record goes through [`shown`].

/// The value with every control character (C0, DEL, C1) written as a visible escape.
pub fn shown(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{1b}' => out.push_str("\\e"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            // Bidirectional overrides could reorder what the operator reads; zero-width
            // characters would hide a difference.
            c if is_invisible(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A count with its noun: "1 record", "3 records" (the noun's plural takes an `s`).
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// A character that takes no room and shows nothing, or reorders what follows: zero-width
/// spaces and joiners, direction marks and overrides, the word joiner, a byte-order mark, a soft
/// hyphen. Two values differing only by one look the same.
pub fn is_invisible(c: char) -> bool {
    matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// An optional value: `∅` for a blank, so "empty" and "nothing" are told apart.
pub fn shown_opt(value: Option<&str>) -> String {
    match value {
        None => "∅".into(),
        Some(v) => shown(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_cannot_reach_the_terminal() {
        let hostile = "Bob\u{1b}[2J\u{1b}[31mred\u{7}\r\nnext\u{9b}31m\u{202e}abc";
        let s = shown(hostile);
        assert!(!s.chars().any(|c| c.is_control()), "{s:?}");
        assert_eq!(s, "Bob\\e[2J\\e[31mred\\u{7}\\r\\nnext\\u{9b}31m\\u{202e}abc");
        assert_eq!(shown("Zoë Müller"), "Zoë Müller");
        assert_eq!(shown_opt(None), "∅");
    }
}
