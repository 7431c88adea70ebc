//! A folder of CSV files, one per object (`persons.csv` holds the object `persons`).
//!
//! UTF-8 with or without a byte-order mark, LF, CRLF or CR line ends, quoted fields with commas
//! and line breaks ([`records`] says exactly what is read, and how a quote left open is caught
//! without losing the rows after it). A row with the wrong number of fields, invalid UTF-8, no
//! id or a broken quote is handed over as [`Extracted::Malformed`] naming file and line; it
//! becomes a `failed` outcome. Ids are taken exactly as written: " 42" is not "42".
//!
//! The source's own count ([`Source::count`]) comes from [`census`], code of its own over the
//! same file, so a reader that lost rows cannot vouch for itself.

pub mod census;
mod prefix;
pub mod records;

use super::{Batch, Cursor, Source, blocking};
use crate::model::{Extracted, FieldNames, SourceRecord};
use async_trait::async_trait;
use color_eyre::eyre::{Result, bail, eyre};
use records::{Limits, Position, RawRecord, RecordReader};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct CsvDirSource {
    dir: PathBuf,
    limits: Limits,
    /// Open readers, kept between batches so a sequential read never seeks.
    open: Arc<Mutex<HashMap<String, OpenFile>>>,
}

struct OpenFile {
    headers: FieldNames,
    data_start: Position,
    reader: RecordReader,
    /// The hash of the bytes before the reader's position, for the cursor.
    prefix: prefix::Prefix,
}

impl CsvDirSource {
    pub fn open(dir: PathBuf, limits: Limits) -> Result<Self> {
        if !dir.is_dir() {
            bail!("source folder {} does not exist", dir.display());
        }
        Ok(Self { dir, limits, open: Arc::default() })
    }

    fn file_of(dir: &Path, object: &str) -> PathBuf {
        dir.join(format!("{object}.csv"))
    }
}

fn open_file(path: &Path, limits: Limits) -> Result<OpenFile> {
    let mut reader = RecordReader::open(path, Position { byte: 0, line: 1 }, limits)?;
    let mut raw = RawRecord::default();
    if !reader.next_record(&mut raw)? {
        bail!("{}: the file is empty (a header line is needed)", path.display());
    }
    if let Some(problem) = &raw.broken_quote {
        bail!("{}:{}: the header line is broken: {problem}", path.display(), raw.line);
    }
    let mut headers: Vec<String> = Vec::with_capacity(raw.len());
    for (i, field) in raw.iter().enumerate() {
        let name = std::str::from_utf8(field)
            .map_err(|_| eyre!("{}:{}: column {} of the header is not valid UTF-8", path.display(), raw.line, i + 1))?
            .trim()
            .to_string();
        if name.is_empty() {
            bail!("{}:{}: column {} of the header has no name", path.display(), raw.line, i + 1);
        }
        if let Some(j) = headers.iter().position(|h| *h == name) {
            bail!("{}:{}: column '{name}' appears twice (columns {} and {})", path.display(), raw.line, j + 1, i + 1);
        }
        headers.push(name);
    }
    reader.expect_width(headers.len());
    Ok(OpenFile { headers: headers.into(), data_start: reader.position(), reader, prefix: prefix::Prefix::open(path)? })
}

/// `byte:line:hash` — the hash of the bytes before the position (hex; `0` in checkpoints
/// written before it was kept: not checked).
fn encode_cursor(p: Position, prefix: u64) -> Cursor {
    Cursor(format!("{}:{}:{prefix:x}", p.byte, p.line))
}

fn decode_cursor(c: &Cursor) -> Option<(Position, Option<u64>)> {
    let mut parts = c.0.split(':');
    let byte = parts.next()?.parse().ok()?;
    let line = parts.next()?.parse().ok()?;
    let prefix = match parts.next() {
        None | Some("0") => None,
        Some(h) => Some(u64::from_str_radix(h, 16).ok()?),
    };
    Some((Position { byte, line }, prefix))
}

#[async_trait]
impl Source for CsvDirSource {
    fn describe(&self) -> String {
        format!("CSV folder {}", self.dir.display())
    }

    async fn fields(&self, object: &str) -> Result<FieldNames> {
        let (path, limits) = (Self::file_of(&self.dir, object), self.limits);
        blocking(move || Ok(open_file(&path, limits)?.headers)).await
    }

    async fn count(&self, object: &str) -> Result<u64> {
        Ok(self.census(object).await?.records)
    }

    async fn census(&self, object: &str) -> Result<super::Census> {
        let (path, limits) = (Self::file_of(&self.dir, object), self.limits);
        blocking(move || census::count(&path, limits)).await
    }

    async fn read_batch(&self, object: &str, id_field: &str, cursor: &Cursor, max: usize) -> Result<Batch> {
        let path = Self::file_of(&self.dir, object);
        let (open, limits) = (self.open.clone(), self.limits);
        let (object, id_field, cursor) = (object.to_string(), id_field.to_string(), cursor.clone());
        blocking(move || {
            let mut open = open.lock().map_err(|_| eyre!("CSV reader lock poisoned"))?;
            if !open.contains_key(&object) {
                open.insert(object.clone(), open_file(&path, limits)?);
            }
            let Some(f) = open.get_mut(&object) else { bail!("CSV reader for {object} vanished") };
            let (target, expected) = if cursor.0.is_empty() {
                (f.data_start, None)
            } else {
                decode_cursor(&cursor)
                    .ok_or_else(|| eyre!("{}: invalid checkpoint cursor '{}'", path.display(), cursor.0))?
            };
            if let Some(expected) = expected
                && f.prefix.at(target.byte)? != expected
            {
                bail!(
                    "{} changed since this run read it up to line {}: going on from there would read the wrong \
                     rows. Start a new run instead (`cutover run`): the records already written are found again \
                     by their ids, nothing is written twice",
                    path.display(),
                    target.line.saturating_sub(1)
                );
            }
            if target != f.reader.position() {
                let mut reader = RecordReader::open(&path, target, limits)?;
                reader.expect_width(f.headers.len());
                f.reader = reader;
            }
            let id_index = f
                .headers
                .iter()
                .position(|h| *h == id_field)
                .ok_or_else(|| eyre!("{} has no id column '{id_field}'", path.display()))?;
            let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let mut records = Vec::with_capacity(max);
            let mut raw = RawRecord::default();
            let mut done = false;
            while records.len() < max {
                if !f.reader.next_record(&mut raw)? {
                    done = true;
                    break;
                }
                records.push(decode_row(&raw, &f.headers, id_index, &file_name));
            }
            let next = f.reader.position();
            let prefix = f.prefix.at(next.byte)?;
            Ok(Batch { records, next: encode_cursor(next, prefix), done })
        })
        .await
    }
}

fn decode_row(raw: &RawRecord, headers: &[String], id_index: usize, file: &str) -> Extracted {
    let width = headers.len();
    let origin = format!("{file}:{}", raw.line);
    // The id exactly as written; only an id of nothing but spaces counts as none.
    let raw_id = raw.get(id_index).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
    let blank_id = raw_id.trim().is_empty();
    let source_id = if blank_id { format!("line:{}", raw.line) } else { raw_id };
    if let Some(problem) = &raw.broken_quote {
        let message = format!("{origin}: {problem}; the rows after it are read on their own");
        return Extracted::Malformed { source_id, origin, message };
    }
    if raw.len() != width {
        let message = format!("{origin}: expected {width} fields as in the header, found {}", raw.len());
        return Extracted::Malformed { source_id, origin, message };
    }
    let mut values = Vec::with_capacity(width);
    for (i, field) in raw.iter().enumerate() {
        match std::str::from_utf8(field) {
            Ok("") => values.push(None),
            Ok(s) => values.push(Some(s.to_string())),
            Err(e) => {
                let message = format!(
                    "{origin}: field '{}' is not valid UTF-8 (invalid byte at position {})",
                    headers[i],
                    e.valid_up_to() + 1
                );
                return Extracted::Malformed { source_id, origin, message };
            }
        }
    }
    if blank_id {
        let message = format!("{origin}: the id field '{}' is empty", headers[id_index]);
        return Extracted::Malformed { source_id, origin, message };
    }
    Extracted::Record(SourceRecord { source_id, origin, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source_with(name: &str, content: &[u8]) -> (tempfile::TempDir, CsvDirSource) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(format!("{name}.csv")), content).expect("write");
        let src = CsvDirSource::open(dir.path().to_path_buf(), Limits::default()).expect("open");
        (dir, src)
    }

    async fn read_all(src: &CsvDirSource, object: &str, max: usize) -> Vec<Extracted> {
        let mut cursor = Cursor::start();
        let mut out = Vec::new();
        loop {
            let batch = src.read_batch(object, "id", &cursor, max).await.expect("batch");
            out.extend(batch.records);
            cursor = batch.next;
            if batch.done {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn reads_bom_crlf_and_quoted_newlines() {
        let content = "\u{feff}id,name,note\r\n1,Ann,\"two\r\nlines, and a comma\"\r\n2,Bob,\r\n".as_bytes();
        let (_d, src) = source_with("people", content);
        assert_eq!(&*src.fields("people").await.expect("fields"), &["id", "name", "note"]);
        assert_eq!(src.count("people").await.expect("count"), 2);
        let rows = read_all(&src, "people", 1).await;
        assert_eq!(rows.len(), 2);
        match &rows[0] {
            Extracted::Record(r) => {
                assert_eq!(r.source_id, "1");
                assert_eq!(r.values[2].as_deref(), Some("two\r\nlines, and a comma"));
                assert_eq!(r.origin, "people.csv:2");
            }
            other => panic!("expected a record, got {other:?}"),
        }
        match &rows[1] {
            Extracted::Record(r) => {
                assert_eq!(r.values[2], None);
                assert_eq!(r.origin, "people.csv:4", "quoted newline counts as a line");
            }
            other => panic!("expected a record, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn malformed_rows_name_file_and_line() {
        let mut content = b"id,name\n1,Ann\n2,Bob,extra\n3,".to_vec();
        content.extend_from_slice(&[0xff, 0xfe]);
        content.extend_from_slice(b"\n,NoId\n5,Eve\n");
        let (_d, src) = source_with("p", &content);
        let rows = read_all(&src, "p", 2).await;
        assert_eq!(rows.len(), 5);
        let messages: Vec<String> = rows
            .iter()
            .filter_map(|r| match r {
                Extracted::Malformed { message, .. } => Some(message.clone()),
                Extracted::Record(_) => None,
            })
            .collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[0].starts_with("p.csv:3: expected 2 fields"), "{}", messages[0]);
        assert!(messages[1].starts_with("p.csv:4: field 'name' is not valid UTF-8"), "{}", messages[1]);
        assert!(messages[2].starts_with("p.csv:5: the id field 'id' is empty"), "{}", messages[2]);
        assert!(matches!(&rows[4], Extracted::Record(r) if r.source_id == "5"));
    }

    #[tokio::test]
    async fn resumes_from_a_cursor_after_reopening() {
        let (dir, src) = source_with("p", b"id,v\n1,a\n2,b\n3,c\n");
        let first = src.read_batch("p", "id", &Cursor::start(), 1).await.expect("batch");
        let fresh = CsvDirSource::open(dir.path().to_path_buf(), Limits::default()).expect("open");
        let rest = fresh.read_batch("p", "id", &first.next, 10).await.expect("batch");
        let ids: Vec<_> = rest
            .records
            .iter()
            .filter_map(|r| if let Extracted::Record(r) = r { Some(r.source_id.as_str()) } else { None })
            .collect();
        assert_eq!(ids, ["2", "3"]);
        assert!(rest.done);
    }

    #[tokio::test]
    async fn missing_file_and_duplicate_headers_are_named() {
        let (_d, src) = source_with("p", b"id,a,a\n");
        let err = src.fields("p").await.expect_err("duplicate");
        assert!(format!("{err:#}").contains("column 'a' appears twice"), "{err:#}");
        let err = src.fields("nope").await.expect_err("missing");
        assert!(format!("{err:#}").contains("nope.csv cannot be opened"), "{err:#}");
    }
}
