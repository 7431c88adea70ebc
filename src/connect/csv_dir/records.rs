//! Reading one CSV file record by record, as exports are, not as RFC 4180 wishes they were.
//!
//! Fields are separated by commas and records by line ends (LF, CRLF or a lone CR). A field that
//! starts with `"` is quoted: it runs to the next `"` not doubled, and may hold commas and line
//! breaks. Anywhere else a `"` is an ordinary character, and characters after a closing quote
//! belong to the field when the quote opened on the same line. Empty lines hold no record.
//!
//! A quote that never closes must not swallow the rest of the file. A record whose quoted field
//! runs over a line break is *suspect* when it cannot be what it claims — the file ends inside
//! the quote, the record has another number of fields than the header, the quote that closes the
//! field is followed by something other than a comma or a line end (a stray quote further down,
//! not the field's end), or the quoted field spans more lines or bytes than [`Limits`] allow. A suspect record is read as its first line alone,
//! reported malformed ("unterminated quote opened at line 10, column 4"), and reading goes on at
//! the next line: every later row still gets its own outcome.
//!
//! `census.rs` counts the same records with code of its own; reconciliation compares the two.

use color_eyre::eyre::{Result, WrapErr};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// How far a quoted field may run before it is taken for a quote left open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Lines one quoted field may run over.
    pub max_field_lines: usize,
    /// Bytes one quoted field may hold, line ends aside.
    pub max_field_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_field_lines: 1000, max_field_bytes: 1 << 20 }
    }
}

/// Where a record starts: byte offset and line number (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub byte: u64,
    pub line: u64,
}

/// One record as read: its fields' bytes, where it starts, and what is wrong with its quoting.
#[derive(Debug, Clone, Default)]
pub struct RawRecord {
    data: Vec<u8>,
    ends: Vec<usize>,
    pub line: u64,
    /// Set when the record is suspect: it stands for its first line only.
    pub broken_quote: Option<String>,
}

impl RawRecord {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.data[start..end])
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.broken_quote = None;
    }

    fn end_field(&mut self) {
        self.ends.push(self.data.len());
    }
}

const CHUNK: usize = 1 << 20;

/// A byte for a message: the character it is, or its code when it is not printable ASCII.
fn shown_byte(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' { format!("'{}'", b as char) } else { format!("byte 0x{b:02X}") }
}

pub struct RecordReader {
    file: File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_start: u64,
    pos: usize,
    eof: bool,
    line: u64,
    width: Option<usize>,
    limits: Limits,
}

/// How parsing a record ended.
enum Parsed {
    /// The record ends here (after its line end, or at the end of the file).
    Complete,
    /// The file ended inside a quoted field opened at (line, field).
    OpenAtEnd { line: u64, field: usize },
    /// A quoted field opened at (line, field) ran past the limits.
    TooLong { line: u64, field: usize, lines: u64, bytes: usize },
    /// A quoted field opened at (line, field) runs over a line break to a quote at `close_line`
    /// followed by `next`, not by a comma or a line end: a stray quote, not its end.
    StrayClose { line: u64, field: usize, close_line: u64, next: u8 },
}

impl RecordReader {
    /// Opens `path` at `at` (the start of the file: byte 0, line 1). A byte-order mark is skipped.
    pub fn open(path: &Path, at: Position, limits: Limits) -> Result<Self> {
        let mut file = File::open(path).wrap_err_with(|| format!("source file {} cannot be opened", path.display()))?;
        let mut start = at.byte;
        if start == 0 {
            let mut bom = [0u8; 3];
            let n = file.read(&mut bom)?;
            if n == 3 && bom == [0xEF, 0xBB, 0xBF] {
                start = 3;
            }
        }
        file.seek(SeekFrom::Start(start))?;
        Ok(Self { file, buf: Vec::new(), buf_start: start, pos: 0, eof: false, line: at.line, width: None, limits })
    }

    /// The number of fields a record must have (the header's), for judging multi-line records.
    pub fn expect_width(&mut self, width: usize) {
        self.width = Some(width);
    }

    /// Where the next record starts.
    pub fn position(&self) -> Position {
        Position { byte: self.buf_start + self.pos as u64, line: self.line }
    }

    /// Makes `n` bytes from `pos` available if the file has them; false at the end of the file.
    fn available(&mut self, n: usize) -> Result<bool> {
        while self.buf.len() - self.pos < n {
            if self.eof {
                return Ok(false);
            }
            let old = self.buf.len();
            self.buf.resize(old + CHUNK, 0);
            let got = self.file.read(&mut self.buf[old..])?;
            self.buf.truncate(old + got);
            if got == 0 {
                self.eof = true;
            }
        }
        Ok(true)
    }

    /// Drops bytes before `pos` (between records only), so the buffer stays one chunk or so.
    fn compact(&mut self) {
        if self.pos > CHUNK {
            self.buf.drain(..self.pos);
            self.buf_start += self.pos as u64;
            self.pos = 0;
        }
    }

    /// The next record, or `None` at the end of the file.
    pub fn next_record(&mut self, rec: &mut RawRecord) -> Result<bool> {
        loop {
            self.compact();
            if !self.available(1)? {
                return Ok(false);
            }
            // An empty line holds no record.
            match self.buf[self.pos] {
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    continue;
                }
                b'\r' => {
                    self.pos += 1;
                    if self.available(1)? && self.buf[self.pos] == b'\n' {
                        self.pos += 1;
                    }
                    self.line += 1;
                    continue;
                }
                _ => {}
            }
            let (start_pos, start_line) = (self.pos, self.line);
            rec.clear();
            rec.line = start_line;
            let parsed = self.parse(rec)?;
            let wrong_width = self.width.is_some_and(|w| w != rec.len());
            let problem = match parsed {
                // The file ends inside a quote opened on this very line: nothing after it to save.
                Parsed::OpenAtEnd { line, field } if self.line == start_line => {
                    rec.broken_quote = Some(format!(
                        "unterminated quote opened at line {line} (field {field}): the file ends inside it"
                    ));
                    return Ok(true);
                }
                Parsed::OpenAtEnd { line, field } => {
                    format!("unterminated quote opened at line {line} (field {field}): the file ends inside it")
                }
                Parsed::TooLong { line, field, lines, bytes } => format!(
                    "unterminated quote opened at line {line} (field {field})? The quoted field runs over more \
                     than {} ({bytes} bytes so far), past source.max_field_lines = {} or source.max_field_bytes = {}: \
                     read as a quote left open (raise the limits if such a field is real)",
                    if lines as usize >= self.limits.max_field_lines {
                        format!("{} lines", self.limits.max_field_lines)
                    } else {
                        format!("{lines} lines")
                    },
                    self.limits.max_field_lines,
                    self.limits.max_field_bytes
                ),
                Parsed::StrayClose { line, field, close_line, next } => format!(
                    "unterminated quote opened at line {line} (field {field})? The quote that would close it at \
                     line {close_line} is followed by {}, not by a comma or a line end",
                    shown_byte(next)
                ),
                Parsed::Complete if self.line > start_line + 1 && wrong_width => format!(
                    "unterminated quote opened at line {start_line}: the quoted field runs to line {}, where the \
                     record ends with {} fields instead of {}",
                    self.line - 1,
                    rec.len(),
                    self.width.unwrap_or_default()
                ),
                Parsed::Complete => return Ok(true),
            };
            // Suspect: the record is its first line alone, and reading goes on after it.
            self.pos = start_pos;
            self.line = start_line;
            rec.clear();
            rec.line = start_line;
            self.first_line(rec)?;
            rec.broken_quote = Some(problem);
            return Ok(true);
        }
    }

    /// Parses one record from `pos` (not at an empty line).
    fn parse(&mut self, rec: &mut RawRecord) -> Result<Parsed> {
        let mut at_field_start = true;
        let mut field = 1usize;
        loop {
            if !self.available(1)? {
                rec.end_field();
                self.line += 1;
                return Ok(Parsed::Complete);
            }
            let b = self.buf[self.pos];
            if at_field_start && b == b'"' {
                self.pos += 1;
                let (open_line, open_field) = (self.line, field);
                // Lines the field runs over, and its bytes other than line ends.
                let (mut lines, mut bytes) = (0u64, 0usize);
                loop {
                    if !self.available(1)? {
                        rec.end_field();
                        return Ok(Parsed::OpenAtEnd { line: open_line, field: open_field });
                    }
                    let c = self.buf[self.pos];
                    self.pos += 1;
                    match c {
                        b'"' => {
                            if self.available(1)? && self.buf[self.pos] == b'"' {
                                self.pos += 1;
                                rec.data.push(b'"');
                                bytes += 1;
                            } else {
                                break;
                            }
                        }
                        b'\n' => {
                            rec.data.push(c);
                            self.line += 1;
                            lines += 1;
                        }
                        b'\r' => {
                            rec.data.push(c);
                            if self.available(1)? && self.buf[self.pos] == b'\n' {
                                self.pos += 1;
                                rec.data.push(b'\n');
                            }
                            self.line += 1;
                            lines += 1;
                        }
                        _ => {
                            rec.data.push(c);
                            bytes += 1;
                        }
                    }
                    if lines as usize >= self.limits.max_field_lines || bytes > self.limits.max_field_bytes {
                        return Ok(Parsed::TooLong { line: open_line, field: open_field, lines: lines + 1, bytes });
                    }
                }
                if lines > 0 && self.available(1)? && !matches!(self.buf[self.pos], b',' | b'\n' | b'\r') {
                    let next = self.buf[self.pos];
                    return Ok(Parsed::StrayClose { line: open_line, field: open_field, close_line: self.line, next });
                }
                at_field_start = false;
                continue;
            }
            self.pos += 1;
            match b {
                b',' => {
                    rec.end_field();
                    at_field_start = true;
                    field += 1;
                }
                b'\n' => {
                    rec.end_field();
                    self.line += 1;
                    return Ok(Parsed::Complete);
                }
                b'\r' => {
                    if self.available(1)? && self.buf[self.pos] == b'\n' {
                        self.pos += 1;
                    }
                    rec.end_field();
                    self.line += 1;
                    return Ok(Parsed::Complete);
                }
                _ => {
                    rec.data.push(b);
                    at_field_start = false;
                }
            }
        }
    }

    /// The first physical line of a suspect record as its fields (a quote opened on it keeps
    /// the rest of the line), and the position after its line end.
    fn first_line(&mut self, rec: &mut RawRecord) -> Result<()> {
        let mut at_field_start = true;
        let mut quoted = false;
        loop {
            if !self.available(1)? {
                rec.end_field();
                self.line += 1;
                return Ok(());
            }
            let b = self.buf[self.pos];
            self.pos += 1;
            match b {
                b'\n' => {
                    rec.end_field();
                    self.line += 1;
                    return Ok(());
                }
                b'\r' => {
                    if self.available(1)? && self.buf[self.pos] == b'\n' {
                        self.pos += 1;
                    }
                    rec.end_field();
                    self.line += 1;
                    return Ok(());
                }
                b'"' if at_field_start => {
                    quoted = true;
                    at_field_start = false;
                }
                b'"' if quoted => {
                    if self.available(1)? && self.buf[self.pos] == b'"' {
                        self.pos += 1;
                        rec.data.push(b'"');
                    } else {
                        quoted = false;
                    }
                }
                b',' if !quoted => {
                    rec.end_field();
                    at_field_start = true;
                }
                _ => {
                    rec.data.push(b);
                    at_field_start = false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(content: &[u8], width: usize, limits: Limits) -> Vec<(u64, Vec<String>, Option<String>)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.csv");
        std::fs::write(&path, content).expect("write");
        let mut r = RecordReader::open(&path, Position { byte: 0, line: 1 }, limits).expect("open");
        r.expect_width(width);
        let mut rec = RawRecord::default();
        let mut out = Vec::new();
        while r.next_record(&mut rec).expect("record") {
            let fields = rec.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect();
            out.push((rec.line, fields, rec.broken_quote.clone()));
        }
        out
    }

    #[test]
    fn quoted_commas_line_breaks_and_doubled_quotes() {
        let rows = read(b"\xEF\xBB\xBFa,b\r\n1,\"x, \"\"y\"\"\r\nz\"\r\n\r\n2,q\"r\n", 2, Limits::default());
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], (1, vec!["a".into(), "b".into()], None));
        assert_eq!(rows[1], (2, vec!["1".into(), "x, \"y\"\r\nz".into()], None));
        assert_eq!(rows[2], (5, vec!["2".into(), "q\"r".into()], None), "a quote inside a field is a character");
    }

    #[test]
    fn an_open_quote_fails_its_line_and_reading_goes_on() {
        let rows = read(b"id,name\n1,\"Ann\n2,Bob\n3,Cy\n", 2, Limits::default());
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1].0, 2);
        assert_eq!(rows[1].1[0], "1");
        assert!(rows[1].2.as_deref().is_some_and(|p| p.contains("unterminated quote opened at line 2 (field 2)")));
        assert_eq!(rows[2], (3, vec!["2".into(), "Bob".into()], None));
        assert_eq!(rows[3], (4, vec!["3".into(), "Cy".into()], None));
    }

    #[test]
    fn a_quote_closed_far_away_with_the_wrong_width_is_suspect() {
        let rows = read(b"id,name\n1,\"Ann\n2,Bob\n3,\"Cy\",x\n4,Di\n", 2, Limits::default());
        let ids: Vec<&str> = rows.iter().map(|r| r.1[0].as_str()).collect();
        assert_eq!(ids, ["id", "1", "2", "3", "4"]);
        assert!(rows[1].2.is_some());
        assert_eq!(rows[3].1.len(), 3, "row 3 keeps its own (wrong) width, for its own failure");
    }

    #[test]
    fn a_stray_quote_further_down_does_not_close_an_open_one() {
        let rows = read(b"id,name\n1,\"Ann\n2,Bob\n3,Pat O\"Brien\n4,Di\n", 2, Limits::default());
        let ids: Vec<&str> = rows.iter().map(|r| r.1[0].as_str()).collect();
        assert_eq!(ids, ["id", "1", "2", "3", "4"], "{rows:?}");
        assert!(rows[1].2.as_deref().is_some_and(|p| p.contains("line 4 is followed by 'B'")), "{rows:?}");
        assert_eq!(rows[3].1[1], "Pat O\"Brien");
        // On its own line a closing quote may be followed by more of the field, as exports have it.
        let one = read(b"id,name\n1,\"Ann\" Lee\n", 2, Limits::default());
        assert_eq!((one[1].1[1].as_str(), one[1].2.is_none()), ("Ann Lee", true));
        // A field over two lines that closes properly before a comma or the line's end is one field.
        let two = read(b"id,name,c\n1,\"Ann\nLee\",z\n2,q,\"x\ny\"\n", 3, Limits::default());
        assert_eq!(two.len(), 3, "{two:?}");
        assert!(two.iter().all(|r| r.2.is_none()), "{two:?}");
    }

    #[test]
    fn a_quoted_field_over_the_limits_is_suspect() {
        let limits = Limits { max_field_lines: 3, max_field_bytes: 1 << 20 };
        let rows = read(b"id,note\n1,\"a\nb\nc\nd\",\n2,x\n", 2, limits);
        assert!(rows[1].2.as_deref().is_some_and(|p| p.contains("more than 3 lines")), "{rows:?}");
        assert_eq!(rows.last().map(|r| r.1[0].as_str()), Some("2"));
        let fine = read(b"id,note\n1,\"a\nb\"\n2,x\n", 2, limits);
        assert_eq!(fine.len(), 3);
        assert_eq!(fine[1].1[1], "a\nb");
    }

    #[test]
    fn the_file_ending_inside_a_quote_on_one_line() {
        let rows = read(b"id,name\n1,\"Ann", 2, Limits::default());
        assert_eq!(rows.len(), 2);
        assert!(rows[1].2.as_deref().is_some_and(|p| p.contains("the file ends inside it")));
    }
}
