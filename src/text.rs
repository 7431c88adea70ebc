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

/// `n` as 1,234,567.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count with its noun: "1 record", "3 records" (the noun's plural takes an `s`).
pub fn count(n: u64, noun: &str) -> String {
    format!("{n} {}", plural(n, noun))
}

/// `noun` as many of it as `n` says: record, records; discrepancy, discrepancies.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        return noun.to_string();
    }
    match noun.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'o', 'u']) => format!("{stem}ies"),
        _ => format!("{noun}s"),
    }
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

/// A value as an operator confirms it: in quotes (a trailing space or an added character shows),
/// or `(blank)`.
pub fn quoted(value: Option<&str>) -> String {
    match value.filter(|v| !v.is_empty()) {
        None => "(blank)".into(),
        Some(v) => format!("\"{}\"", shown(v)),
    }
}

#[cfg(test)]
mod plural_tests {
    #[test]
    fn one_and_many() {
        assert_eq!(super::count(1, "discrepancy"), "1 discrepancy");
        assert_eq!(super::count(2, "discrepancy"), "2 discrepancies");
        assert_eq!(super::count(0, "record"), "0 records");
        assert_eq!(super::count(3, "key"), "3 keys");
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

/// A writer for a terminal: control characters (ESC, C0 and C1 codes, DEL) in the bytes written
/// are spelt out as [`shown`] spells them, so a record value cannot set the window title, write
/// the clipboard (OSC 52) or clear the screen; line breaks and tabs stay. Use it only when the
/// output is a terminal: files and pipes get the exact bytes.
pub struct TerminalSafe<W: std::io::Write> {
    inner: W,
    /// A UTF-8 lead byte 0xC2 held back: the next byte says whether it starts a C1 code.
    pending_c2: bool,
}

impl<W: std::io::Write> TerminalSafe<W> {
    pub fn new(inner: W) -> Self {
        Self { inner, pending_c2: false }
    }
}

impl<W: std::io::Write> std::io::Write for TerminalSafe<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut out = Vec::with_capacity(buf.len() + 8);
        for &b in buf {
            if std::mem::take(&mut self.pending_c2) {
                if (0x80..=0x9f).contains(&b) {
                    out.extend_from_slice(format!("\\u{{{b:x}}}").as_bytes());
                    continue;
                }
                out.push(0xc2);
            }
            match b {
                0xc2 => self.pending_c2 = true,
                b'\n' | b'\t' => out.push(b),
                0x1b => out.extend_from_slice(b"\\e"),
                b'\r' => out.extend_from_slice(b"\\r"),
                0x00..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{{{b:x}}}").as_bytes()),
                _ => out.push(b),
            }
        }
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if std::mem::take(&mut self.pending_c2) {
            self.inner.write_all(&[0xc2])?;
        }
        self.inner.flush()
    }
}

#[cfg(test)]
mod terminal_tests {
    use super::TerminalSafe;
    use std::io::Write;

    #[test]
    fn a_terminal_gets_control_codes_spelt_out_and_the_rest_as_it_is() {
        let mut out = TerminalSafe::new(Vec::new());
        // Written in pieces: a C1 code split across two writes is still caught.
        out.write_all("Eve\u{1b}]52;c;ZXZp\u{7}\té\n".as_bytes()).expect("w");
        out.write_all(&[b'x', 0xc2]).expect("w");
        out.write_all(&[0x9b, b'2', b'J', 0xc2, 0xa9]).expect("w");
        out.flush().expect("f");
        let got = String::from_utf8(out.inner).expect("utf8");
        assert_eq!(got, "Eve\\e]52;c;ZXZp\\u{7}\té\nx\\u{9b}2J©");
    }
}

/// "a name", "an email": the article a word takes (by its first letter's sound, roughly).
pub fn a_or_an(word: &str) -> String {
    let vowel = word.chars().next().is_some_and(|c| "aeiouAEIOU".contains(c));
    format!("{} {word}", if vowel { "an" } else { "a" })
}
