//! An independent count of a CSV file's records, for reconciliation to hold the reader to.
//!
//! It shares no code with `records.rs`: it walks the file one physical line at a time and keeps
//! only the quoting state and a field count, replaying the lines of a suspect record after its
//! first. The rules are the same, stated once in the README: a record ends at a line end outside
//! a quoted field; a quoted field starts only at a field's start; a record whose quoted field
//! runs over a line break is suspect (and counts as its first line alone) when the file ends
//! inside the quote, when it has another number of fields than the header, when the quote that
//! closes the field is followed by anything but a comma or the line's end, or when the field
//! runs past the limits. What it finds wrong is reported with its line.

use super::records::Limits;
use crate::connect::Census;
use color_eyre::eyre::{Result, WrapErr, bail};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// How many problems are described one by one (all are counted).
const SHOWN: usize = 20;

fn problem(census: &mut Census, line: u64, what: &str) {
    census.problem_count += 1;
    if census.problems.len() < SHOWN {
        census.problems.push(format!("line {line}: {what}"));
    }
}

/// Physical lines with their numbers, line ends removed (LF, CRLF or a lone CR).
struct Lines<R: BufRead> {
    input: R,
    next_line: u64,
    pending_cr: bool,
    replay: VecDeque<(u64, Vec<u8>)>,
    done: bool,
}

impl<R: BufRead> Lines<R> {
    fn next(&mut self) -> Result<Option<(u64, Vec<u8>)>> {
        if let Some(l) = self.replay.pop_front() {
            return Ok(Some(l));
        }
        if self.done {
            return Ok(None);
        }
        let mut line = Vec::new();
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                self.done = true;
                if line.is_empty() {
                    return Ok(None);
                }
                break;
            }
            let mut used = 0;
            let mut ended = false;
            for &b in buf {
                used += 1;
                if self.pending_cr {
                    self.pending_cr = false;
                    if b == b'\n' {
                        continue;
                    }
                }
                match b {
                    b'\n' => {
                        ended = true;
                        break;
                    }
                    b'\r' => {
                        self.pending_cr = true;
                        ended = true;
                        break;
                    }
                    _ => line.push(b),
                }
            }
            self.input.consume(used);
            if ended {
                break;
            }
        }
        let n = self.next_line;
        self.next_line += 1;
        Ok(Some((n, line)))
    }
}

/// Where a line leaves a record's quoting: how many fields it has so far, whether a quoted field
/// is still open, and how far the open field runs (line ends and other bytes).
struct Scan {
    in_quote: bool,
    at_field_start: bool,
    fields: usize,
    field_breaks: usize,
    field_bytes: usize,
    /// Some quoted field of the record ran past the byte limit.
    over_bytes: bool,
    /// A quoted field that ran over a line break was closed by a quote followed by this byte
    /// (not a comma or the line's end), on this line.
    stray_close: Option<(u8, u64)>,
}

fn scan_line(line_no: u64, bytes: &[u8], s: &mut Scan, limits: Limits) {
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if s.in_quote {
            if b == b'"' && bytes.get(i + 1) != Some(&b'"') {
                s.in_quote = false;
                if s.field_breaks > 0
                    && s.stray_close.is_none()
                    && let Some(&next) = bytes.get(i + 1)
                    && next != b','
                {
                    s.stray_close = Some((next, line_no));
                }
            } else {
                // A doubled quote is one byte of the field.
                i += usize::from(b == b'"');
                s.field_bytes += 1;
                s.over_bytes |= s.field_bytes > limits.max_field_bytes;
            }
        } else if b == b',' {
            s.fields += 1;
            s.at_field_start = true;
        } else if b == b'"' && s.at_field_start {
            s.in_quote = true;
            s.at_field_start = false;
            s.field_breaks = 0;
            s.field_bytes = 0;
        } else {
            s.at_field_start = false;
        }
        i += 1;
    }
}

/// A record over several lines whose every line, split at each comma, has the header's width
/// and starts like the first (an id of the same shape): most likely rows a stray quote joined
/// (`1,"Ann,…` then `2,Bob",…`), though it reads as valid CSV.
fn each_line_a_row(first: &[u8], taken: &[(u64, Vec<u8>)], width: usize) -> bool {
    fn shape(line: &[u8]) -> Vec<u8> {
        let head = line.split(|&b| b == b',').next().unwrap_or_default();
        let mut out: Vec<u8> = Vec::new();
        for &b in head {
            let class = if b.is_ascii_digit() {
                b'9'
            } else if b.is_ascii_alphabetic() {
                b'a'
            } else {
                b
            };
            if out.last() != Some(&class) || !matches!(class, b'9' | b'a') {
                out.push(class);
            }
        }
        out
    }
    let fields = |line: &[u8]| line.iter().filter(|&&b| b == b',').count() + 1;
    let id = shape(first);
    !id.is_empty() && fields(first) == width && taken.iter().all(|(_, line)| fields(line) == width && shape(line) == id)
}

/// Counts the records of `path` and says where its quoting went wrong.
pub fn count(path: &Path, limits: Limits) -> Result<Census> {
    let file =
        std::fs::File::open(path).wrap_err_with(|| format!("source file {} cannot be opened", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    {
        let head = reader.fill_buf()?;
        if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
            reader.consume(3);
        }
    }
    let mut lines = Lines { input: reader, next_line: 1, pending_cr: false, replay: VecDeque::new(), done: false };
    let mut census = Census::default();
    let mut width: Option<usize> = None;
    while let Some((start, first)) = lines.next()? {
        if first.is_empty() {
            continue;
        }
        let mut s = Scan {
            in_quote: false,
            at_field_start: true,
            fields: 1,
            field_breaks: 0,
            field_bytes: 0,
            over_bytes: false,
            stray_close: None,
        };
        scan_line(start, &first, &mut s, limits);
        let mut taken: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut suspect: Option<String> = None;
        while s.in_quote && !s.over_bytes && s.stray_close.is_none() {
            s.field_breaks += 1;
            if s.field_breaks >= limits.max_field_lines {
                break;
            }
            match lines.next()? {
                Some(l) => {
                    scan_line(l.0, &l.1, &mut s, limits);
                    taken.push(l);
                }
                None => {
                    suspect = Some("a quote opened here is never closed: the file ends inside it".into());
                    break;
                }
            }
        }
        if s.over_bytes || s.in_quote && s.field_breaks >= limits.max_field_lines {
            suspect = Some(format!(
                "a quoted field opened here runs over more than {} lines or {} bytes",
                limits.max_field_lines, limits.max_field_bytes
            ));
        }
        if let Some((next, at)) = s.stray_close {
            suspect = Some(format!(
                "a quote opened here would close at line {at}, but there it is followed by {}, \
                 not by a comma or a line end",
                if next.is_ascii_graphic() || next == b' ' {
                    format!("'{}'", next as char)
                } else {
                    format!("byte 0x{next:02X}")
                }
            ));
        }
        if suspect.is_none()
            && !taken.is_empty()
            && let Some(w) = width
            && s.fields != w
        {
            suspect = Some(format!(
                "a quote opened here closes at line {}, where the record has {} fields instead of {w}",
                taken.last().map_or(start, |l| l.0),
                s.fields
            ));
        }
        if width.is_none() {
            if suspect.is_some() || !taken.is_empty() && s.in_quote {
                bail!("{}: the header line has a quote that is never closed", path.display());
            }
            width = Some(s.fields);
            continue;
        }
        census.records += 1;
        if suspect.is_none()
            && !taken.is_empty()
            && let Some(w) = width
            && each_line_a_row(&first, &taken, w)
        {
            census.doubt_count += 1;
            if census.doubts.len() < SHOWN {
                census.doubts.push(format!(
                    "line {start}: the quoted field runs to line {}, and every one of its lines holds {w} fields as \
                     a row does",
                    taken.last().map_or(start, |l| l.0)
                ));
            }
        }
        if let Some(what) = suspect {
            problem(&mut census, start, &what);
            // Only the first line was this record: the others are read again on their own.
            for l in taken.into_iter().rev() {
                lines.replay.push_front(l);
            }
        }
    }
    Ok(census)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn census(content: &[u8], limits: Limits) -> Census {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.csv");
        std::fs::write(&path, content).expect("write");
        count(&path, limits).expect("count")
    }

    #[test]
    fn counts_records_not_lines() {
        let c = census(b"\xEF\xBB\xBFid,note\r\n1,\"two\r\nlines, \"\"quoted\"\"\"\r\n\r\n2,x\r3,y", Limits::default());
        assert_eq!((c.records, c.problem_count), (3, 0), "{c:?}");
    }

    #[test]
    fn a_quote_left_open_counts_its_line_and_every_line_after() {
        let c = census(b"id,name\n1,\"Ann\n2,Bob\n3,Cy\n", Limits::default());
        assert_eq!(c.records, 3);
        assert_eq!(c.problem_count, 1);
        assert!(c.problems[0].starts_with("line 2:"), "{c:?}");
        let c = census(b"id,name\n1,\"Ann\n2,Bob\n3,\"Cy\",x\n4,Di\n", Limits::default());
        assert_eq!(c.records, 4, "{c:?}");
        let c = census(b"id,note\n1,\"a\nb\nc\nd\",\n2,x\n", Limits { max_field_lines: 3, max_field_bytes: 1 << 20 });
        assert_eq!(c.records, 5, "{c:?}");
    }

    #[test]
    fn a_stray_quote_further_down_does_not_close_an_open_one() {
        let c = census(b"id,name\n1,\"Ann\n2,Bob\n3,Pat O\"Brien\n4,Di\n", Limits::default());
        assert_eq!((c.records, c.problem_count), (4, 1), "{c:?}");
        assert!(c.problems[0].starts_with("line 2:") && c.problems[0].contains("line 4"), "{c:?}");
        let c = census(b"id,name,c\n1,\"Ann\" Lee,z\n2,\"x\ny\",z\n3,q,\"x\ny\"\n", Limits::default());
        assert_eq!((c.records, c.problem_count), (3, 0), "{c:?}");
    }

    #[test]
    fn rows_a_stray_quote_joins_into_valid_csv_are_a_doubt_a_real_note_is_not() {
        // Ann's quote closes inside Bob's row: valid CSV, two records read as one.
        let joined = b"id,name,email,bio\n1,\"Ann,ann@x.example,likes cats\n2,Bob\",bob@x.example,ok\n3,Cy,c@x,ok\n";
        let c = census(joined, Limits::default());
        assert_eq!((c.records, c.problem_count, c.doubt_count), (2, 0, 1), "{c:?}");
        assert!(c.doubts[0].starts_with("line 2:"), "{c:?}");
        // A note over two lines, commas and all, whose second line does not start like an id.
        let note = b"id,note,x\n5,\"first line, more\nsecond, line\",x\n6,y,z\n";
        let c = census(note, Limits::default());
        assert_eq!((c.records, c.doubt_count), (2, 0), "{c:?}");
    }
}
