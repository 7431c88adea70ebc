//! SQLite as a source (a table per object) and as a destination (a table per object, with the
//! users table and picklist tables named in the project file).

use super::sql::declared_type;
use super::unavailable::told;
use super::{Batch, Change, Cursor, Destination, NewRecords, Source, WriteResult, blocking};
use crate::config::{ConnectionConfig, OwnersTable, PicklistTable};
use crate::model::{DestField, DestSchema, DestUser, Extracted, FieldNames, FieldType, SourceRecord, Value};
use async_trait::async_trait;
use color_eyre::eyre::{Result, WrapErr, bail, eyre};
use indexmap::IndexMap;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, params, params_from_iter};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

type Shared = Arc<Mutex<Connection>>;

fn lock(conn: &Shared) -> Result<std::sync::MutexGuard<'_, Connection>> {
    conn.lock().map_err(|_| eyre!("SQLite connection lock poisoned"))
}

/// Quotes an identifier for SQL; identifiers are never spliced unquoted.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Blocking work on the database `system` names; a lock, a read-only file or a full disk comes
/// back as that database's [`super::unavailable::Unavailable`].
async fn on_file<R: Send + 'static>(system: String, f: impl FnOnce() -> Result<R> + Send + 'static) -> Result<R> {
    blocking(f).await.map_err(|e| told(system, e))
}

/// A statement's error as its record's answer — or, when the file or the machine is the cause
/// (a lock, a read-only file, a full disk), as the batch's error: its transaction rolls back and
/// nothing of it is written, rather than every record failing for a reason none of them has.
fn record_error(system: &str, e: rusqlite::Error) -> Result<String> {
    match super::unavailable::sqlite_cause(&e) {
        Some(cause) => Err(super::unavailable::Unavailable { system: system.to_string(), cause }.into()),
        None => Ok(e.to_string()),
    }
}

fn open_existing(path: &Path, read_only: bool) -> Result<Connection> {
    if !path.is_file() {
        bail!("database {} does not exist", path.display());
    }
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).wrap_err_with(|| format!("cannot open {}", path.display()))?;
    conn.busy_timeout(super::unavailable::SQLITE_LOCK_WAIT)?;
    // SQLite opens a file it may not write read-only without a word: say so before a run starts.
    if !read_only && conn.is_readonly(rusqlite::MAIN_DB)? {
        return Err(super::unavailable::Unavailable {
            system: format!("SQLite database {}", path.display()),
            cause: "is read-only: the file, or the disk it is on, is not writable".into(),
        }
        .into());
    }
    // A double-quoted name SQLite does not find is an error, never a string: an owners or
    // picklist column misspelt in the project file must not read as its own name on every row.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DQS_DML, false)?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DQS_DDL, false)?;
    Ok(conn)
}

/// Canonical text of a SQLite value; `None` for NULL and `''`, an error for binary data.
fn text_of(v: ValueRef<'_>) -> std::result::Result<Value, &'static str> {
    Ok(stored_of(v)?.filter(|s| !s.is_empty()))
}

/// A SQLite value as stored: `''` is `Some("")`, told apart from NULL.
fn stored_of(v: ValueRef<'_>) -> std::result::Result<Value, &'static str> {
    Ok(match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => Some(s.to_string()),
            Err(_) => return Err("text that is not valid UTF-8"),
        },
        ValueRef::Blob(_) => return Err("binary data"),
    })
}

/// A column as `PRAGMA table_info` describes it.
struct Column {
    name: String,
    declared: String,
    not_null: bool,
    has_default: bool,
    primary_key: bool,
}

fn table_columns(conn: &Connection, table: &str) -> Result<Vec<Column>> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", ident(table)))?;
    let cols = stmt
        .query_map([], |r| {
            let name: String = r.get(1)?;
            let ty: String = r.get(2)?;
            let notnull: bool = r.get(3)?;
            let default: Option<String> = r.get(4)?;
            let pk: i64 = r.get(5)?;
            Ok(Column { name, declared: ty, not_null: notnull, has_default: default.is_some(), primary_key: pk > 0 })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(cols)
}

// ---------------------------------------------------------------------------------------------
// Source

pub struct SqliteSource {
    path: PathBuf,
    conn: Shared,
    /// object → SQL query (`[source.queries]`), read instead of a table.
    queries: IndexMap<String, String>,
}

/// What an object reads: a table with a rowid (paged by it), or a view, a table without rowid or
/// a query (paged by the id column, in SQLite's own order of values: numbers, then text by bytes).
struct Relation {
    /// `FROM` text, aliased `q`.
    from: String,
    label: String,
    columns: Vec<String>,
    by_rowid: bool,
}

fn relation(conn: &Connection, queries: &IndexMap<String, String>, path: &Path, object: &str) -> Result<Relation> {
    let names = |from: &str| -> rusqlite::Result<Vec<String>> {
        let stmt = conn.prepare(&format!("SELECT * FROM {from} LIMIT 0"))?;
        Ok(stmt.column_names().map(String::from).collect())
    };
    if let Some(query) = queries.get(object) {
        let from = format!("({}) AS q", query.trim().trim_end_matches(';'));
        let columns =
            names(&from).wrap_err_with(|| format!("the query for {object} (source.queries.{object}) does not run"))?;
        return Ok(Relation { from, label: format!("query {object}"), columns, by_rowid: false });
    }
    let found: Option<(String, Option<String>)> = conn
        .query_row("SELECT type, sql FROM sqlite_master WHERE name = ?1 AND type IN ('table', 'view')", [object], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map(Some)
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
    let Some((kind, sql)) = found else { bail!("{} has no table or view '{object}'", path.display()) };
    let without_rowid =
        sql.is_some_and(|s| s.to_ascii_uppercase().replace(char::is_whitespace, "").ends_with("WITHOUTROWID"));
    let from = format!("{} AS q", ident(object));
    let columns = names(&from).wrap_err_with(|| format!("reading the columns of {kind} {object}"))?;
    Ok(Relation { from, label: format!("{kind} {object}"), columns, by_rowid: kind == "table" && !without_rowid })
}

impl SqliteSource {
    pub fn open(path: &Path, queries: IndexMap<String, String>) -> Result<Self> {
        let conn = open_existing(path, true)?;
        Ok(Self { path: path.to_path_buf(), conn: Arc::new(Mutex::new(conn)), queries })
    }
}

/// One row read: a record, or a malformed one naming where it is and what is wrong.
fn extracted_row(
    row: &rusqlite::Row<'_>,
    first: usize,
    rel: &Relation,
    id_index: usize,
    origin: String,
    fallback_id: String,
) -> Result<Extracted> {
    let mut values = Vec::with_capacity(rel.columns.len());
    let mut bad = None;
    for (i, col) in rel.columns.iter().enumerate() {
        match text_of(row.get_ref(i + first)?) {
            Ok(v) => values.push(v),
            Err(what) => {
                bad = Some(format!("{origin}: field '{col}' holds {what}"));
                values.push(None);
            }
        }
    }
    let source_id = values[id_index].clone().unwrap_or(fallback_id);
    Ok(if let Some(message) = bad {
        Extracted::Malformed { source_id, origin, message }
    } else if values[id_index].is_none() {
        let message = format!("{origin}: the id field '{}' is empty", rel.columns[id_index]);
        Extracted::Malformed { source_id, origin, message }
    } else {
        Extracted::Record(SourceRecord { source_id, origin, values })
    })
}

/// A keyset cursor over SQLite's typed values: `i:42`, `r:4.5`, `t:text`.
fn id_cursor(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Integer(i) => Some(format!("i:{i}")),
        ValueRef::Real(f) => Some(format!("r:{f}")),
        ValueRef::Text(t) => std::str::from_utf8(t).ok().map(|t| format!("t:{t}")),
        ValueRef::Null | ValueRef::Blob(_) => None,
    }
}

fn id_of_cursor(cursor: &str) -> Option<rusqlite::types::Value> {
    use rusqlite::types::Value as V;
    let (kind, rest) = cursor.split_once(':')?;
    match kind {
        "i" => rest.parse().ok().map(V::Integer),
        "r" => rest.parse().ok().map(V::Real),
        "t" => Some(V::Text(rest.to_string())),
        _ => None,
    }
}

/// A page of a view, a table without rowid or a query, by its id column: every row whose id is
/// at most the `max`-th id after the cursor, so rows sharing an id are never split across pages.
/// The first page also reports the rows without an id, which keyset paging cannot reach.
fn keyed_page(conn: &Connection, rel: &Relation, id_index: usize, cursor: &Cursor, max: usize) -> Result<Batch> {
    use rusqlite::types::Value as V;
    let id = format!("q.{}", ident(&rel.columns[id_index]));
    let list: Vec<String> = rel.columns.iter().map(|c| format!("q.{}", ident(c))).collect();
    let list = list.join(", ");
    let from = &rel.from;
    let mut records = Vec::with_capacity(max);
    let after: Option<V> = if cursor.0.is_empty() {
        None
    } else {
        Some(
            id_of_cursor(&cursor.0)
                .ok_or_else(|| eyre!("invalid checkpoint cursor '{}' for {}", cursor.0, rel.label))?,
        )
    };
    if after.is_none() {
        let mut stmt = conn.prepare(&format!("SELECT {list} FROM {from} WHERE {id} IS NULL"))?;
        let mut rows = stmt.query([])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            n += 1;
            let origin = format!("{} row {n} without an id", rel.label);
            records.push(extracted_row(row, 0, rel, id_index, origin, format!("row:no-id-{n}"))?);
        }
    }
    let start = match &after {
        Some(_) => format!("{id} > ?1"),
        None => format!("{id} IS NOT NULL AND ?1 IS NULL"),
    };
    let after_param = after.clone().unwrap_or(V::Null);
    let boundary: Option<V> = conn
        .query_row(
            &format!("SELECT {id} FROM {from} WHERE {start} ORDER BY {id} LIMIT 1 OFFSET ?2"),
            rusqlite::params![after_param, max.saturating_sub(1) as i64],
            |r| r.get::<_, V>(0),
        )
        .map(Some)
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
    // Ties among rows sharing an id are ordered by every column, so a re-read numbers them alike.
    let order: Vec<String> =
        std::iter::once(id.clone()).chain((1..=rel.columns.len()).map(|i| i.to_string())).collect();
    let sql = format!(
        "SELECT {id}, {list} FROM {from} WHERE {start} AND (?2 IS NULL OR {id} <= ?2) ORDER BY {}",
        order.join(", ")
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params![after_param, boundary.clone().unwrap_or(V::Null)])?;
    let mut last = cursor.0.clone();
    while let Some(row) = rows.next()? {
        let Some(at) = id_cursor(row.get_ref(0)?) else {
            let origin = format!("{} row after id {}", rel.label, last);
            let message = format!("{origin}: the id field '{}' holds binary data", rel.columns[id_index]);
            records.push(Extracted::Malformed { source_id: format!("row:binary-id-after-{last}"), origin, message });
            continue;
        };
        last = at;
        let shown_id = last.split_once(':').map(|(_, v)| v).unwrap_or_default().to_string();
        let origin = format!("{} id {}", rel.label, crate::text::shown(&shown_id));
        records.push(extracted_row(row, 1, rel, id_index, origin, shown_id)?);
    }
    Ok(Batch { records, next: Cursor(last), done: boundary.is_none() })
}

#[async_trait]
impl Source for SqliteSource {
    fn describe(&self) -> String {
        format!("SQLite database {}", self.path.display())
    }

    async fn fields(&self, object: &str) -> Result<FieldNames> {
        let (conn, object, path, queries) =
            (self.conn.clone(), object.to_string(), self.path.clone(), self.queries.clone());
        on_file(self.describe(), move || Ok(relation(&*lock(&conn)?, &queries, &path, &object)?.columns.into())).await
    }

    async fn count(&self, object: &str) -> Result<u64> {
        let (conn, object, path, queries) =
            (self.conn.clone(), object.to_string(), self.path.clone(), self.queries.clone());
        on_file(self.describe(), move || {
            let conn = lock(&conn)?;
            let rel = relation(&conn, &queries, &path, &object)?;
            let n: i64 = conn
                .query_row(&format!("SELECT COUNT(*) FROM {}", rel.from), [], |r| r.get(0))
                .wrap_err_with(|| format!("counting {}", rel.label))?;
            Ok(n as u64)
        })
        .await
    }

    async fn read_batch(&self, object: &str, id_field: &str, cursor: &Cursor, max: usize) -> Result<Batch> {
        let (conn, object, id_field) = (self.conn.clone(), object.to_string(), id_field.to_string());
        let (path, queries, cursor) = (self.path.clone(), self.queries.clone(), cursor.clone());
        on_file(self.describe(), move || {
            let conn = lock(&conn)?;
            let rel = relation(&conn, &queries, &path, &object)?;
            let id_index = rel
                .columns
                .iter()
                .position(|c| *c == id_field)
                .ok_or_else(|| eyre!("{} has no id column '{id_field}'", rel.label))?;
            if !rel.by_rowid {
                return keyed_page(&conn, &rel, id_index, &cursor, max)
                    .wrap_err_with(|| format!("reading {}", rel.label));
            }
            let after: i64 = if cursor.0.is_empty() {
                i64::MIN
            } else {
                cursor.0.parse().map_err(|_| eyre!("invalid checkpoint cursor '{}' for table {object}", cursor.0))?
            };
            let list: Vec<String> = rel.columns.iter().map(|c| ident(c)).collect();
            let sql = format!(
                "SELECT rowid, {} FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
                list.join(", "),
                ident(&object)
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params![after, max as i64])?;
            let mut records = Vec::with_capacity(max);
            let mut last = after;
            while let Some(row) = rows.next()? {
                last = row.get(0)?;
                let origin = format!("{object} rowid {last}");
                records.push(extracted_row(row, 1, &rel, id_index, origin, format!("rowid:{last}"))?);
            }
            let done = records.len() < max;
            Ok(Batch { records, next: Cursor(last.to_string()), done })
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// Destination

pub struct SqliteDestination {
    path: PathBuf,
    conn: Shared,
    owners: Option<OwnersTable>,
    picklists: IndexMap<String, PicklistTable>,
    types: IndexMap<String, FieldType>,
    /// object → destination table (objects may be written under another name).
    schemas: Mutex<HashMap<String, Arc<DestSchema>>>,
}

impl SqliteDestination {
    /// Opens the destination database; `read_only` for previews. Its journal mode is left as its
    /// owner set it: a migration tool has no business changing how someone's database logs.
    pub fn open(path: &Path, conn_config: &ConnectionConfig, read_only: bool) -> Result<Self> {
        let conn = open_existing(path, read_only)?;
        let types = conn_config.types.iter().filter_map(|(k, v)| FieldType::parse(v).map(|t| (k.clone(), t))).collect();
        Ok(Self {
            path: path.to_path_buf(),
            conn: Arc::new(Mutex::new(conn)),
            owners: conn_config.owners.clone(),
            picklists: conn_config.picklists.clone(),
            types,
            schemas: Mutex::default(),
        })
    }

    async fn cached_schema(&self, object: &str) -> Result<Arc<DestSchema>> {
        if let Some(s) = self.schemas.lock().map_err(|_| eyre!("schema cache poisoned"))?.get(object) {
            return Ok(s.clone());
        }
        let schema = Arc::new(self.schema(object).await?);
        self.schemas.lock().map_err(|_| eyre!("schema cache poisoned"))?.insert(object.to_string(), schema.clone());
        Ok(schema)
    }
}

/// A pipeline value bound as the column's native type, borrowing its text (no copy per field).
enum Bound<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
}

impl rusqlite::ToSql for Bound<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Bound::Null => ValueRef::Null,
            Bound::Integer(i) => ValueRef::Integer(*i),
            Bound::Real(f) => ValueRef::Real(*f),
            Bound::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

fn bind(ty: FieldType, v: Option<&str>) -> Bound<'_> {
    match v {
        None => Bound::Null,
        Some(s) => match ty {
            FieldType::Integer => s.parse::<i64>().map(Bound::Integer).unwrap_or(Bound::Text(s)),
            FieldType::Number => s.parse::<f64>().map(Bound::Real).unwrap_or(Bound::Text(s)),
            FieldType::Boolean => match s {
                "true" => Bound::Integer(1),
                "false" => Bound::Integer(0),
                _ => Bound::Text(s),
            },
            _ => Bound::Text(s),
        },
    }
}

/// Where the destination keeps Cutover's idempotency markers (see `connect::Marks`): a table of
/// its own beside the migrated ones, written in the same transaction as the records.
const MARKS_TABLE: &str = "CREATE TABLE IF NOT EXISTS cutover_marks (
    namespace TEXT NOT NULL,
    object    TEXT NOT NULL,
    source_id TEXT NOT NULL,
    dest_id   TEXT NOT NULL,
    PRIMARY KEY (namespace, object, source_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cutover_marks_dest ON cutover_marks (object, dest_id)";

fn has_table(conn: &Connection, name: &str) -> Result<bool> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?;
    Ok(stmt.exists([name])?)
}

fn field_types(schema: &DestSchema, fields: &[String]) -> Vec<FieldType> {
    fields.iter().map(|f| schema.field(f).map(|d| d.ty).unwrap_or(FieldType::Text)).collect()
}

#[async_trait]
impl Destination for SqliteDestination {
    fn describe(&self) -> String {
        format!("SQLite database {}", self.path.display())
    }

    async fn schema(&self, object: &str) -> Result<DestSchema> {
        let (conn, object) = (self.conn.clone(), object.to_string());
        let picklists: Vec<(String, PicklistTable)> = self
            .picklists
            .iter()
            .filter_map(|(k, t)| k.strip_prefix(&format!("{object}.")).map(|f| (f.to_string(), t.clone())))
            .collect();
        let types: Vec<(String, FieldType)> = self
            .types
            .iter()
            .filter_map(|(k, t)| k.strip_prefix(&format!("{object}.")).map(|f| (f.to_string(), *t)))
            .collect();
        let path = self.path.clone();
        on_file(self.describe(), move || {
            let conn = lock(&conn)?;
            let cols = table_columns(&conn, &object)?;
            if cols.is_empty() {
                bail!("{} has no table '{object}'", path.display());
            }
            let id_field = cols.iter().find(|c| c.primary_key).map(|c| c.name.clone()).unwrap_or_else(|| "id".into());
            let mut fields = Vec::with_capacity(cols.len());
            for Column { name, declared: decl, not_null: notnull, has_default, primary_key: pk } in cols {
                let (mut ty, max_length) = declared_type(&decl);
                if let Some((_, t)) = types.iter().find(|(f, _)| *f == name) {
                    ty = *t;
                }
                let picklist = match picklists.iter().find(|(f, _)| *f == name) {
                    None => None,
                    Some((_, t)) => {
                        let sql = format!("SELECT DISTINCT {} FROM {} ORDER BY 1", ident(&t.column), ident(&t.table));
                        let mut stmt = conn.prepare(&sql).map_err(|e| {
                            super::picklist_problem(&object, &name, &t.table, &t.column, &e.to_string())
                        })?;
                        let values = stmt
                            .query_map([], |r| r.get_ref(0).map(|v| text_of(v).ok().flatten()))?
                            .filter_map(|v| v.ok().flatten())
                            .collect();
                        Some(values)
                    }
                };
                fields.push(DestField {
                    required: notnull && !has_default && !pk,
                    name,
                    ty,
                    max_length,
                    picklist,
                    multiple: false,
                });
            }
            Ok(DestSchema { object, id_field, fields })
        })
        .await
    }

    async fn users(&self) -> Result<Vec<DestUser>> {
        let Some(owners) = self.owners.clone() else {
            return Ok(Vec::new());
        };
        let conn = self.conn.clone();
        on_file(self.describe(), move || {
            let names = owners.name.items().iter().map(|c| format!("COALESCE({}, '')", ident(c))).collect::<Vec<_>>();
            let email = owners.email.as_deref().map(ident).unwrap_or_else(|| "NULL".into());
            let sql = format!(
                "SELECT {}, TRIM({}), {email} FROM {}",
                ident(&owners.id),
                names.join(" || ' ' || "),
                ident(&owners.table)
            );
            let conn = lock(&conn)?;
            let mut stmt = conn.prepare(&sql).wrap_err_with(|| format!("reading users from table {}", owners.table))?;
            let users = stmt
                .query_map([], |r| {
                    Ok(DestUser {
                        id: text_of(r.get_ref(0)?).ok().flatten().unwrap_or_default(),
                        name: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                        email: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(users)
        })
        .await
    }

    async fn scan(
        &self,
        object: &str,
        fields: &[String],
        after: &Cursor,
        max: usize,
    ) -> Result<(Vec<(String, Vec<Value>)>, Cursor, bool)> {
        let schema = self.cached_schema(object).await?;
        let (conn, fields) = (self.conn.clone(), fields.to_vec());
        let after: i64 = after.0.parse().unwrap_or(i64::MIN);
        on_file(self.describe(), move || {
            let cols: Vec<String> = fields.iter().map(|f| ident(f)).collect();
            let sql = format!(
                "SELECT rowid, {}{}{} FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
                ident(&schema.id_field),
                if cols.is_empty() { "" } else { ", " },
                cols.join(", "),
                ident(&schema.object)
            );
            let conn = lock(&conn)?;
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params![after, max as i64])?;
            let mut out = Vec::with_capacity(max);
            let mut last = after;
            while let Some(row) = rows.next()? {
                last = row.get(0)?;
                let id = text_of(row.get_ref(1)?).ok().flatten().unwrap_or_default();
                let values = (0..fields.len())
                    .map(|i| row.get_ref(i + 2).map(|v| text_of(v).ok().flatten()))
                    .collect::<rusqlite::Result<_>>()?;
                out.push((id, values));
            }
            let done = out.len() < max;
            Ok((out, Cursor(last.to_string()), done))
        })
        .await
    }

    async fn read(&self, object: &str, ids: &[String], fields: &[String]) -> Result<HashMap<String, Vec<Value>>> {
        let schema = self.cached_schema(object).await?;
        let (conn, ids, fields) = (self.conn.clone(), ids.to_vec(), fields.to_vec());
        on_file(self.describe(), move || {
            let conn = lock(&conn)?;
            let cols: Vec<String> = fields.iter().map(|f| ident(f)).collect();
            let id_ty = schema.field(&schema.id_field).map(|f| f.ty).unwrap_or(FieldType::Integer);
            let mut out = HashMap::with_capacity(ids.len());
            for chunk in ids.chunks(500) {
                let sql = format!(
                    "SELECT {}{}{} FROM {} WHERE {} IN ({})",
                    ident(&schema.id_field),
                    if cols.is_empty() { "" } else { ", " },
                    cols.join(", "),
                    ident(&schema.object),
                    ident(&schema.id_field),
                    vec!["?"; chunk.len()].join(",")
                );
                let mut stmt = conn.prepare_cached(&sql)?;
                let params = chunk.iter().map(|id| bind(id_ty, Some(id)));
                let mut rows = stmt.query(params_from_iter(params))?;
                while let Some(row) = rows.next()? {
                    let id = text_of(row.get_ref(0)?).ok().flatten().unwrap_or_default();
                    let values = (0..fields.len())
                        .map(|i| row.get_ref(i + 1).map(|v| stored_of(v).ok().flatten()))
                        .collect::<rusqlite::Result<_>>()?;
                    out.insert(id, values);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn create(&self, object: &str, records: NewRecords) -> Result<Vec<WriteResult>> {
        let system = self.describe();
        let schema = self.cached_schema(object).await?;
        let conn = self.conn.clone();
        on_file(self.describe(), move || {
            let mut conn = lock(&conn)?;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let types = field_types(&schema, &records.fields);
            let cols: Vec<String> = records.fields.iter().map(|f| ident(f)).collect();
            // An INTEGER PRIMARY KEY is the rowid: its new value is last_insert_rowid(), which
            // is cheaper than RETURNING. Other keys are read back with RETURNING.
            let rowid_key = table_columns(&tx, &schema.object)?
                .iter()
                .any(|c| c.primary_key && c.name == schema.id_field && c.declared.eq_ignore_ascii_case("INTEGER"));
            let insert = format!(
                "INSERT INTO {} ({}) VALUES ({})",
                ident(&schema.object),
                cols.join(", "),
                vec!["?"; cols.len()].join(", ")
            );
            let sql = if rowid_key { insert } else { format!("{insert} RETURNING {}", ident(&schema.id_field)) };
            let mut results = Vec::with_capacity(records.rows.len());
            if records.marks.is_some() {
                tx.execute_batch(MARKS_TABLE)?;
            }
            {
                let mut stmt = tx.prepare_cached(&sql).wrap_err_with(|| format!("insert into {}", schema.object))?;
                for row in &records.rows {
                    let params = params_from_iter(row.iter().zip(&types).map(|(v, t)| bind(*t, v.as_deref())));
                    let result = if rowid_key {
                        stmt.execute(params).map(|_| Some(tx.last_insert_rowid().to_string()))
                    } else {
                        stmt.query_row(params, |r| r.get_ref(0).map(|v| text_of(v).ok().flatten()))
                    };
                    results.push(match result {
                        Ok(Some(id)) => Ok(id),
                        Ok(None) => Err("the destination returned no id".to_string()),
                        Err(e) => Err(record_error(&system, e)?),
                    });
                }
            }
            if let Some(marks) = &records.marks {
                // The marker commits with the record, or neither does.
                let mut mark = tx.prepare_cached(
                    "INSERT OR REPLACE INTO cutover_marks (namespace, object, source_id, dest_id) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (sid, result) in marks.source_ids.iter().zip(&results) {
                    if let Ok(id) = result {
                        mark.execute(params![marks.namespace, schema.object, sid, id])?;
                    }
                }
            }
            tx.commit()?;
            Ok(results)
        })
        .await
    }

    async fn update(&self, object: &str, changes: &[Change]) -> Result<Vec<WriteResult>> {
        let system = self.describe();
        let schema = self.cached_schema(object).await?;
        let (conn, changes) = (self.conn.clone(), changes.to_vec());
        on_file(self.describe(), move || {
            let mut conn = lock(&conn)?;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let id_ty = schema.field(&schema.id_field).map(|f| f.ty).unwrap_or(FieldType::Integer);
            let mut results = Vec::with_capacity(changes.len());
            for change in &changes {
                if change.values.is_empty() {
                    results.push(Ok(change.dest_id.clone()));
                    continue;
                }
                let sets: Vec<String> = change.values.iter().map(|(f, _)| format!("{} = ?", ident(f))).collect();
                let sql = format!(
                    "UPDATE {} SET {} WHERE {} = ?",
                    ident(&schema.object),
                    sets.join(", "),
                    ident(&schema.id_field)
                );
                let mut params: Vec<Bound<'_>> = change
                    .values
                    .iter()
                    .map(|(f, v)| bind(schema.field(f).map(|d| d.ty).unwrap_or(FieldType::Text), v.as_deref()))
                    .collect();
                params.push(bind(id_ty, Some(&change.dest_id)));
                let result = tx.prepare_cached(&sql).and_then(|mut s| s.execute(params_from_iter(params)));
                results.push(match result {
                    Ok(0) => Err(format!("record {} no longer exists in {}", change.dest_id, schema.object)),
                    Ok(_) => Ok(change.dest_id.clone()),
                    Err(e) => Err(record_error(&system, e)?),
                });
            }
            tx.commit()?;
            Ok(results)
        })
        .await
    }

    async fn delete(&self, object: &str, ids: &[String]) -> Result<Vec<WriteResult>> {
        let system = self.describe();
        let schema = self.cached_schema(object).await?;
        let (conn, ids) = (self.conn.clone(), ids.to_vec());
        on_file(self.describe(), move || {
            let mut conn = lock(&conn)?;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let id_ty = schema.field(&schema.id_field).map(|f| f.ty).unwrap_or(FieldType::Integer);
            let sql = format!("DELETE FROM {} WHERE {} = ?", ident(&schema.object), ident(&schema.id_field));
            let mut results = Vec::with_capacity(ids.len());
            {
                let mut stmt = tx.prepare_cached(&sql)?;
                for id in &ids {
                    results.push(match stmt.execute([bind(id_ty, Some(id))]) {
                        Ok(0) => Err(format!("record {id} does not exist in {}", schema.object)),
                        Ok(_) => Ok(id.clone()),
                        Err(e) => Err(record_error(&system, e)?),
                    });
                }
            }
            if has_table(&tx, "cutover_marks")? {
                // Found by destination id: without the index each delete would read every marker.
                tx.execute_batch(MARKS_TABLE)?;
                let mut unmark = tx.prepare_cached("DELETE FROM cutover_marks WHERE object = ?1 AND dest_id = ?2")?;
                for id in results.iter().flatten() {
                    unmark.execute(params![schema.object, id])?;
                }
            }
            tx.commit()?;
            Ok(results)
        })
        .await
    }

    async fn record_count(&self, object: &str) -> Result<Option<u64>> {
        let schema = self.cached_schema(object).await?;
        let conn = self.conn.clone();
        on_file(self.describe(), move || {
            let n: i64 =
                lock(&conn)?.query_row(&format!("SELECT COUNT(*) FROM {}", ident(&schema.object)), [], |r| r.get(0))?;
            Ok(Some(n as u64))
        })
        .await
    }

    async fn marked(&self, namespace: &str, object: &str) -> Result<Vec<(String, String)>> {
        let schema = self.cached_schema(object).await?;
        let (conn, namespace) = (self.conn.clone(), namespace.to_string());
        on_file(self.describe(), move || {
            let conn = lock(&conn)?;
            if !has_table(&conn, "cutover_marks")? {
                return Ok(Vec::new());
            }
            let mut stmt =
                conn.prepare("SELECT source_id, dest_id FROM cutover_marks WHERE namespace = ?1 AND object = ?2")?;
            let rows = stmt
                .query_map(params![namespace, schema.object], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident(r#"we"ird"#), r#""we""ird""#);
    }
}
