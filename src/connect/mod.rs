//! Sources and destinations. The engine talks to every system through these two traits, so
//! HTTP APIs (batch caps, rate limits, partial failures) and other databases fit without changing it.
//!
//! Dedupe does not ask the destination to search record by record: CRM search endpoints are
//! rate-limited far below migration speed (HubSpot: 4 searches/s), and a destination query cannot
//! compare "(415) 555-0134" with "+14155550134". Instead the engine pages through the destination
//! once with [`Destination::scan`], normalises each match key with the same transforms as the
//! mapping, and keeps those keys in the state store; [`Destination::read`] then fetches the full
//! candidates (for the merge rule and the before-image).

pub mod csv_dir;
pub mod dry_run;
pub mod http;
pub mod hubspot;
pub mod mysql;
pub mod pipedrive;
pub mod postgres;
pub mod sql;
pub mod sqlite;
pub mod unavailable;

use crate::config::{ConnectionConfig, LoadedConfig};
use crate::model::{DestSchema, DestUser, Extracted, FieldNames, Value};
use async_trait::async_trait;
use color_eyre::eyre::{Result, eyre};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a source stopped reading; opaque to the engine, stored with each checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor(pub String);

impl Cursor {
    pub fn start() -> Self {
        Self(String::new())
    }
}

/// One page of a source.
#[derive(Debug, Clone)]
pub struct Batch {
    pub records: Vec<Extracted>,
    pub next: Cursor,
    pub done: bool,
}

/// The source's own account of an object, read independently of [`Source::read_batch`]: how
/// many records it holds, and where its structure is broken (a CSV quote left open).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    pub records: u64,
    /// "line 11: …", the first few.
    pub problems: Vec<String>,
    pub problem_count: u64,
    /// Records read as valid that look like a quote left open ("line 2: …"), the first few:
    /// for a person to look at, not counted otherwise.
    pub doubts: Vec<String>,
    pub doubt_count: u64,
}

#[async_trait]
pub trait Source: Send + Sync {
    /// One line naming the source, for messages.
    fn describe(&self) -> String;
    /// The fields of one object (file columns, table columns).
    async fn fields(&self, object: &str) -> Result<FieldNames>;
    /// The source's own count of records (`SELECT count(*)`, the API's total, an independent
    /// scan of a file), checked against what extraction read.
    async fn count(&self, object: &str) -> Result<u64>;
    /// The count with what the counting found broken; sources with nothing to add only count.
    async fn census(&self, object: &str) -> Result<Census> {
        Ok(Census { records: self.count(object).await?, ..Default::default() })
    }
    /// Up to `max` records from `cursor` on; `id_field` names each record's id.
    async fn read_batch(&self, object: &str, id_field: &str, cursor: &Cursor, max: usize) -> Result<Batch>;
}

/// Records to create: values aligned with `fields`.
#[derive(Debug, Clone)]
pub struct NewRecords {
    pub fields: FieldNames,
    pub rows: Vec<Vec<Value>>,
    /// Each row's source record, for the destination to mark it with (see [`Marks`]).
    pub marks: Option<Marks>,
}

/// Idempotency markers: a destination that cannot share a transaction with the state store
/// records, with each record it creates, which source record it came from — in the same write.
/// After a crash between the destination's write and the store's commit, the engine finds the
/// records already created ([`Destination::marked`]) and adopts them instead of creating them again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marks {
    /// Separates projects writing into the same destination.
    pub namespace: String,
    /// One per row.
    pub source_ids: Vec<String>,
}

/// Changes to one existing destination record.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub dest_id: String,
    pub values: Vec<(String, Value)>,
}

/// Requests of a CRM's daily allowance a run leaves unspent unless the project says otherwise.
pub const DAILY_RESERVE: u64 = 500;

/// The writes a run would make into one destination object, as a preview counted them.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedWrites {
    pub object: String,
    pub creates: u64,
    pub updates: u64,
}

/// Per-record answer of the destination: the record's id, or the destination's message.
pub type WriteResult = std::result::Result<String, String>;

/// A create refused because the destination already holds a record with one of its unique values
/// (HubSpot's 409 `Contact already exists. Existing ID: 555`): the refusal names that record, and
/// the engine holds the source record as a match to decide, not as a failure.
pub fn exists_as(existing_id: &str, message: &str) -> String {
    format!("{EXISTS_AS}{existing_id}: {message}")
}

/// The destination record an [`exists_as`] refusal names.
pub fn existing_record(refusal: &str) -> Option<&str> {
    refusal.strip_prefix(EXISTS_AS)?.split_once(": ").map(|(id, _)| id).filter(|id| !id.is_empty())
}

const EXISTS_AS: &str = "already in the destination as record ";

#[async_trait]
pub trait Destination: Send + Sync {
    fn describe(&self) -> String;
    /// Fields with types, required flags, lengths and picklists.
    async fn schema(&self, object: &str) -> Result<DestSchema>;
    /// The users records can be owned by.
    async fn users(&self) -> Result<Vec<DestUser>>;
    /// Pages through every record: `(cursor, id, values of fields)`, resuming after `after`.
    async fn scan(
        &self,
        object: &str,
        fields: &[String],
        after: &Cursor,
        max: usize,
    ) -> Result<(Vec<(String, Vec<Value>)>, Cursor, bool)>;
    /// Fetches records by id; ids that do not exist are absent from the answer. Values are as
    /// stored: an empty string is `Some("")`, not `None`, where the destination tells the two
    /// apart (a SQL NULL and `''`), so a rollback restores the one that was there.
    async fn read(&self, object: &str, ids: &[String], fields: &[String]) -> Result<HashMap<String, Vec<Value>>>;
    /// Creates records; one result per row, in order.
    async fn create(&self, object: &str, records: NewRecords) -> Result<Vec<WriteResult>>;
    /// Applies changes; one result per change, in order (Ok holds the id).
    async fn update(&self, object: &str, changes: &[Change]) -> Result<Vec<WriteResult>>;
    /// Deletes records (used by rollback); one result per id, in order.
    async fn delete(&self, object: &str, ids: &[String]) -> Result<Vec<WriteResult>>;
    /// How many records the destination holds in `object`, by its own count; `None` where it
    /// cannot count short of reading everything.
    /// Requests the destination's API says are left of today's allowance (HubSpot's daily limit,
    /// Pipedrive's daily requests), when it says: a run stops at a batch boundary before it runs
    /// out (`daily_reserve`).
    /// How many records of `object` may have their writes in flight at once, across batches (0:
    /// one batch at a time). More than a batch only where a record of one batch can never be
    /// taken for a record of another while both are unanswered: a unique marker finds each
    /// after a lost answer.
    async fn records_in_flight(&self, _object: &str) -> usize {
        0
    }

    fn daily_requests_left(&self) -> Option<u64> {
        None
    }

    /// What a run making `writes` would cost of the destination's daily allowance, as lines for
    /// the operator (Pipedrive: tokens and days at its budget), where the API meters it. A
    /// preview asks, with what it counted; what the preview itself read is part of the cost.
    fn cost_of(&self, _writes: &[PlannedWrites]) -> Option<Vec<String>> {
        None
    }

    /// What `check` should tell of how this destination will be written, found while reading
    /// its schemas (an object that cannot carry a marker, and how its records are found instead).
    fn notices(&self) -> Vec<String> {
        Vec::new()
    }

    async fn record_count(&self, _object: &str) -> Result<Option<u64>> {
        Ok(None)
    }
    /// Every record created with a marker of `namespace` in `object`: (source id, destination id).
    /// Destinations that keep no markers answer nothing.
    async fn marked(&self, _namespace: &str, _object: &str) -> Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }
    /// For creates an interrupted attempt may have sent — each its marker and the record as
    /// written (a JSON object of destination fields) — the destination record that holds each,
    /// if one exists, found without reading every record (and for records that carry no
    /// marker). `None`: this destination cannot tell; the caller reads [`Destination::marked`].
    async fn find_created(
        &self,
        _object: &str,
        _wanted: &[(String, serde_json::Value)],
    ) -> Result<Option<Vec<Option<String>>>> {
        Ok(None)
    }
}

fn resolve_path(project: &LoadedConfig, conn: &ConnectionConfig, role: &str) -> Result<PathBuf> {
    let path = conn.path.as_deref().ok_or_else(|| eyre!("{role}.path is missing"))?;
    let full = project.base_dir().join(path);
    if !full.exists() {
        let what = if conn.kind == "csv" { "folder" } else { "file" };
        return Err(eyre!(crate::config::KeyProblem::new(
            format!("{role}.path"),
            format!("the {what} {} does not exist (a path is read from the project file's folder)", full.display())
        )));
    }
    Ok(full)
}

pub fn open_source(project: &LoadedConfig) -> Result<Arc<dyn Source>> {
    let conn = &project.config.source;
    match conn.kind.as_str() {
        "postgres" => return open_postgres_source(conn),
        "mysql" => {
            return Ok(Arc::new(mysql::MySqlSource::open(&database_url(conn, "source")?, conn.queries.clone())?));
        }
        "hubspot" => return Ok(Arc::new(hubspot::HubSpot::open(conn, "source")?)),
        "pipedrive" => return Ok(Arc::new(pipedrive::Pipedrive::open(conn, "source")?)),
        _ => {}
    }
    let path = resolve_path(project, conn, "source")?;
    match conn.kind.as_str() {
        "csv" => Ok(Arc::new(csv_dir::CsvDirSource::open(path, csv_limits(conn))?)),
        "sqlite" => Ok(Arc::new(sqlite::SqliteSource::open(&path, conn.queries.clone())?)),
        other => Err(eyre!("unknown source kind '{other}'")),
    }
}

/// How far a quoted CSV field may run before it is taken for a quote left open.
pub fn csv_limits(conn: &ConnectionConfig) -> csv_dir::records::Limits {
    let d = csv_dir::records::Limits::default();
    csv_dir::records::Limits {
        max_field_lines: conn.max_field_lines.unwrap_or(d.max_field_lines),
        max_field_bytes: conn.max_field_bytes.unwrap_or(d.max_field_bytes),
    }
}

fn database_url(conn: &ConnectionConfig, role: &str) -> Result<String> {
    let var = conn.url_env.as_deref().ok_or_else(|| eyre!("{role}.url_env is missing"))?;
    sql::url_from_env(var, role)
}

fn open_postgres_source(conn: &ConnectionConfig) -> Result<Arc<dyn Source>> {
    let url = database_url(conn, "source")?;
    let schema = conn.schema.as_deref().unwrap_or("public");
    Ok(Arc::new(postgres::PostgresSource::open(&url, schema, conn.queries.clone())?))
}

/// Opens the destination; `read_only` for previews, which must not change it in any way.
pub fn open_destination(project: &LoadedConfig, read_only: bool) -> Result<Arc<dyn Destination>> {
    let conn = &project.config.destination;
    match conn.kind.as_str() {
        "postgres" => {
            let url = database_url(conn, "destination")?;
            return Ok(Arc::new(postgres::PostgresDestination::open(&url, conn, read_only)?));
        }
        "mysql" => {
            let url = database_url(conn, "destination")?;
            return Ok(Arc::new(mysql::MySqlDestination::open(&url, conn, read_only)?));
        }
        // Previews never reach the API's write endpoints: they run against DryRunDestination.
        "hubspot" => return Ok(Arc::new(hubspot::HubSpot::open(conn, "destination")?)),
        "pipedrive" => return Ok(Arc::new(pipedrive::Pipedrive::open(conn, "destination")?)),
        _ => {}
    }
    let path = resolve_path(project, conn, "destination")?;
    match conn.kind.as_str() {
        "sqlite" => Ok(Arc::new(sqlite::SqliteDestination::open(&path, conn, read_only)?)),
        other => Err(eyre!("unknown destination kind '{other}'")),
    }
}

/// A picklist table or column the project names that the destination cannot read: a problem of
/// that `[destination.picklists]` entry, at its line.
pub(crate) fn picklist_problem(object: &str, field: &str, table: &str, column: &str, why: &str) -> color_eyre::Report {
    let why = why.split(": Error code").next().unwrap_or(why);
    eyre!(crate::config::KeyProblem::new(
        format!("destination.picklists.\"{object}.{field}\""),
        format!("cannot read the allowed values from {table}.{column}: {why}")
    ))
}

/// Runs blocking work (file and SQLite I/O) off the async threads.
pub(crate) async fn blocking<R: Send + 'static>(f: impl FnOnce() -> Result<R> + Send + 'static) -> Result<R> {
    tokio::task::spawn_blocking(f).await.map_err(|e| eyre!("background task failed: {e}"))?
}
