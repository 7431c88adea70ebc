//! A folder of CSV files, one per object (`persons.csv` holds the object `persons`).
//!
//! UTF-8 with or without a byte-order mark, LF or CRLF, quoted fields with commas and newlines.
//! A row with the wrong number of fields, invalid UTF-8 or no id is handed over as
//! [`Extracted::Malformed`] naming file and line; it becomes a `failed` outcome.

use super::{Batch, Cursor, Source, blocking};
use crate::model::{Extracted, FieldNames, SourceRecord};
use async_trait::async_trait;
use color_eyre::eyre::{Result, WrapErr, bail, eyre};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct CsvDirSource {
    dir: PathBuf,
    /// Open readers, kept between batches so a sequential read never seeks.
    open: Arc<Mutex<HashMap<String, OpenFile>>>,
}

struct OpenFile {
    headers: FieldNames,
    /// The csv reader counts the `\n` of a CRLF pair on the next read, so its line numbers lag
    /// by one in CRLF files; this corrects them.
    line_lag: u64,
    data_start: csv::Position,
    reader: csv::Reader<File>,
    at: csv::Position,
}

impl CsvDirSource {
    pub fn open(dir: PathBuf) -> Result<Self> {
        if !dir.is_dir() {
            bail!("source folder {} does not exist", dir.display());
        }
        Ok(Self { dir, open: Arc::default() })
    }

    fn file_of(dir: &Path, object: &str) -> PathBuf {
        dir.join(format!("{object}.csv"))
    }
}

fn reader_builder() -> csv::ReaderBuilder {
    let mut b = csv::ReaderBuilder::new();
    b.has_headers(false).flexible(true);
    b
}

fn open_file(path: &Path) -> Result<OpenFile> {
    let file = File::open(path).wrap_err_with(|| format!("source file {} cannot be opened", path.display()))?;
    let mut reader = reader_builder().from_reader(file);
    let mut raw = csv::ByteRecord::new();
    let has = reader
        .read_byte_record(&mut raw)
        .wrap_err_with(|| format!("{}: cannot read the header line", path.display()))?;
    if !has {
        bail!("{}: the file is empty (a header line is needed)", path.display());
    }
    let mut headers: Vec<String> = Vec::with_capacity(raw.len());
    for (i, field) in raw.iter().enumerate() {
        let mut name = std::str::from_utf8(field)
            .map_err(|_| eyre!("{}:1: column {} of the header is not valid UTF-8", path.display(), i + 1))?
            .trim()
            .to_string();
        if i == 0 {
            name = name.trim_start_matches('\u{feff}').to_string();
        }
        if name.is_empty() {
            bail!("{}:1: column {} of the header has no name", path.display(), i + 1);
        }
        if let Some(j) = headers.iter().position(|h| *h == name) {
            bail!("{}:1: column '{name}' appears twice (columns {} and {})", path.display(), j + 1, i + 1);
        }
        headers.push(name);
    }
    let data_start = reader.position().clone();
    let line_lag = u64::from(header_ends_with_crlf(path)?);
    Ok(OpenFile { headers: headers.into(), line_lag, at: data_start.clone(), data_start, reader })
}

fn header_ends_with_crlf(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut head = Vec::with_capacity(4096);
    File::open(path)?.take(64 * 1024).read_to_end(&mut head)?;
    Ok(head.iter().position(|&b| b == b'\n').is_some_and(|i| i > 0 && head[i - 1] == b'\r'))
}

fn encode_cursor(p: &csv::Position) -> Cursor {
    Cursor(format!("{}:{}:{}", p.byte(), p.line(), p.record()))
}

fn decode_cursor(c: &Cursor) -> Option<csv::Position> {
    let mut parts = c.0.split(':').map(|s| s.parse::<u64>().ok());
    let (byte, line, record) = (parts.next()??, parts.next()??, parts.next()??);
    let mut p = csv::Position::new();
    p.set_byte(byte).set_line(line).set_record(record);
    Some(p)
}

#[async_trait]
impl Source for CsvDirSource {
    fn describe(&self) -> String {
        format!("CSV folder {}", self.dir.display())
    }

    async fn fields(&self, object: &str) -> Result<FieldNames> {
        let path = Self::file_of(&self.dir, object);
        blocking(move || Ok(open_file(&path)?.headers)).await
    }

    async fn count(&self, object: &str) -> Result<u64> {
        let path = Self::file_of(&self.dir, object);
        blocking(move || {
            let file =
                File::open(&path).wrap_err_with(|| format!("source file {} cannot be opened", path.display()))?;
            let mut reader = reader_builder().from_reader(std::io::BufReader::with_capacity(1 << 20, file));
            let mut raw = csv::ByteRecord::new();
            let mut n: u64 = 0;
            while reader.read_byte_record(&mut raw).wrap_err_with(|| format!("{}: cannot be read", path.display()))? {
                n += 1;
            }
            Ok(n.saturating_sub(1))
        })
        .await
    }

    async fn read_batch(&self, object: &str, id_field: &str, cursor: &Cursor, max: usize) -> Result<Batch> {
        let path = Self::file_of(&self.dir, object);
        let open = self.open.clone();
        let (object, id_field, cursor) = (object.to_string(), id_field.to_string(), cursor.clone());
        blocking(move || {
            let mut open = open.lock().map_err(|_| eyre!("CSV reader lock poisoned"))?;
            if !open.contains_key(&object) {
                open.insert(object.clone(), open_file(&path)?);
            }
            let Some(f) = open.get_mut(&object) else { bail!("CSV reader for {object} vanished") };
            let target = if cursor.0.is_empty() {
                f.data_start.clone()
            } else {
                decode_cursor(&cursor)
                    .ok_or_else(|| eyre!("{}: invalid checkpoint cursor '{}'", path.display(), cursor.0))?
            };
            if target.byte() != f.at.byte() {
                f.reader.seek(target.clone()).wrap_err_with(|| format!("{}: cannot seek", path.display()))?;
                f.at = target;
            }
            let id_index = f
                .headers
                .iter()
                .position(|h| *h == id_field)
                .ok_or_else(|| eyre!("{} has no id column '{id_field}'", path.display()))?;
            let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let width = f.headers.len();
            let mut records = Vec::with_capacity(max);
            let mut raw = csv::ByteRecord::new();
            let mut done = false;
            while records.len() < max {
                let line = f.reader.position().line();
                let more = f
                    .reader
                    .read_byte_record(&mut raw)
                    .wrap_err_with(|| format!("{file_name}:{line}: cannot be read"))?;
                if !more {
                    done = true;
                    break;
                }
                let line = raw.position().map(|p| p.line()).unwrap_or(line) + f.line_lag;
                records.push(decode_row(&raw, &f.headers, width, id_index, &file_name, line));
            }
            f.at = f.reader.position().clone();
            Ok(Batch { records, next: encode_cursor(&f.at), done })
        })
        .await
    }
}

fn decode_row(
    raw: &csv::ByteRecord,
    headers: &[String],
    width: usize,
    id_index: usize,
    file: &str,
    line: u64,
) -> Extracted {
    let origin = format!("{file}:{line}");
    let raw_id = raw.get(id_index).map(|b| String::from_utf8_lossy(b).trim().to_string()).unwrap_or_default();
    let source_id = if raw_id.is_empty() { format!("line:{line}") } else { raw_id.clone() };
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
    if raw_id.is_empty() {
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
        let src = CsvDirSource::open(dir.path().to_path_buf()).expect("open");
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
        let fresh = CsvDirSource::open(dir.path().to_path_buf()).expect("open");
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
