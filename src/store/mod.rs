//! The state store: one SQLite file per project (WAL). Durable truth lives here — runs, outcome
//! counters with their checkpoints, the per-record audit log, the id map and the
//! conflict queue. A batch's outcomes and the checkpoint covering them commit in one transaction.

pub mod audit;
mod checkpoint;
pub mod claims;
pub mod corrections;
pub mod export;
pub mod journal;
mod ledger;
mod linkage;
pub mod match_index;
pub mod members;
mod queue;
pub mod queue_view;
pub mod rollback;
pub mod run_lock;
mod schema;
mod signoff;

pub use checkpoint::{Checkpoint, RESUMABLE};
pub use ledger::Written;
pub use match_index::MatchIndex;
pub use queue::{OperatorSkip, QueueFilter, QueueItem, QueueStatus};
pub use run_lock::RunLock;
pub use signoff::{Acceptance, NewSignOff, SignOff};

use crate::model::{Counts, Outcome};
use color_eyre::eyre::{Result, WrapErr, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;
use std::path::{Path, PathBuf};

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// The kinds of run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Full,
    Preview,
    Reprocess,
    Rollback,
    Delta,
    /// An operator skipping queued records: one transaction, nothing written.
    Skip,
    /// An operator taking skips back: the records are held again.
    Unskip,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Full => "full",
            RunKind::Preview => "preview",
            RunKind::Reprocess => "reprocess",
            RunKind::Rollback => "rollback",
            RunKind::Delta => "delta",
            RunKind::Skip => "skip",
            RunKind::Unskip => "unskip",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub id: i64,
    pub kind: String,
    pub state: String,
    pub reason: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub user: String,
}

/// One audit row.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditRow {
    pub source_id: String,
    pub outcome: &'static str,
    pub dest_id: Option<String>,
    /// Which match key found the destination record ("source_id", "email", ...).
    pub matched_by: Option<String>,
    pub merge_rule: Option<&'static str>,
    /// The reason (queued, skipped, failed) or what changed (updated).
    pub detail: Option<String>,
    /// JSON of the destination record's values before Cutover changed them.
    pub before_image: Option<String>,
    /// 1 for the first row with this source id in the run, 2 for a second one, …
    pub occurrence: u32,
    /// Where the record came from (file and line, table and id).
    pub origin: Option<String>,
    /// Hash of the source values read (see `pipeline::delta::source_hash`).
    pub source_hash: Option<String>,
    /// JSON list of the warnings the record was written with (see `Mapped::warnings`).
    pub warnings: Option<String>,
    /// The match probability when record linkage decided (linked, held, or created with a
    /// candidate below the thresholds).
    pub confidence: Option<f64>,
}

/// A queue item to insert or refresh.
#[derive(Debug, Clone)]
pub struct QueueWrite {
    pub source_id: String,
    pub occurrence: u32,
    pub origin: String,
    pub reason: String,
    pub source: String,
    pub mapped: String,
    pub issues: String,
    pub candidates: Option<String>,
    pub waiting_on: Option<(String, String)>,
}

/// A record written: where it went, and what that destination record should now hold in its
/// mapped fields (JSON object; read-back, delta and rollback compare the destination with it).
#[derive(Debug, Clone, Default)]
pub struct IdMapWrite {
    pub source_id: String,
    pub dest_id: String,
    pub written: Option<String>,
    /// Hash of the source values written (delta runs compare it).
    pub source_hash: Option<String>,
    /// Cutover created the destination record (rather than matching an existing one).
    pub created: bool,
    /// Another source record is the destination record's survivor; this one was merged into it.
    pub member: bool,
}

/// Everything one batch changes in the store, committed in one transaction.
#[derive(Debug, Default)]
pub struct BatchCommit {
    pub run_id: i64,
    pub object: String,
    /// The object's counters after this batch (cumulative for the run).
    pub counts: Counts,
    /// Where the next batch starts; `None` when the run is not resumable at this point.
    pub cursor: Option<String>,
    pub done: bool,
    pub audit: Vec<AuditRow>,
    pub id_map: Vec<IdMapWrite>,
    /// Match keys of the records written: (key, value, destination id); they go to the match index.
    pub match_keys: Vec<(String, String, String)>,
    pub queue: Vec<QueueWrite>,
    /// Source ids whose open queue items are now resolved (the record was written).
    pub resolved: Vec<String>,
    /// The highest modified time in the batch (see `delta::modified_key`).
    pub high_water: Option<String>,
}

pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The operating-system user, recorded as "who" in the audit log.
pub fn os_user() -> String {
    // Read once: a bulk skip audits each of half a million records with it.
    static USER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    USER.get_or_init(|| {
        ["USER", "USERNAME", "LOGNAME"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
            .or_else(uid)
            .unwrap_or_else(|| "unknown".into())
    })
    .clone()
}

/// The numeric user id, where no user name is in the environment (cron, containers).
#[cfg(unix)]
fn uid() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| format!("uid {}", m.uid()))
}

#[cfg(not(unix))]
fn uid() -> Option<String> {
    None
}

impl Store {
    /// Opens (creating and migrating as needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).wrap_err_with(|| format!("cannot open state store {}", path.display()))?;
        Self::setup(conn, path)
    }

    /// Opens an existing store for reading only (a second connection beside the writer).
    pub fn open_reader(path: &Path) -> Result<Self> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .wrap_err_with(|| format!("cannot open state store {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        Ok(Self { conn, path: path.to_path_buf() })
    }

    fn setup(mut conn: Connection, path: &Path) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-16000;",
        )?;
        let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
        if version > schema::MIGRATIONS.len() {
            bail!(
                "state store {} was written by a newer Cutover (schema {version}, this one knows {})",
                path.display(),
                schema::MIGRATIONS.len()
            );
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql).wrap_err_with(|| format!("state store migration {}", i + 1))?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
            tx.commit()?;
        }
        Ok(Self { conn, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Runs `f` in one write transaction (taken at once, so two writers queue instead of
    /// failing midway): all of it is committed, or none of it.
    pub(crate) fn immediate<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        match f() {
            Ok(done) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(done)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    // ---- runs ------------------------------------------------------------------------------

    pub fn begin_run(&self, kind: RunKind, user: &str, config_hash: &str) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO runs (kind, state, started_at, user, config_hash) VALUES (?1, 'running', ?2, ?3, ?4)",
            params![kind.as_str(), now(), user, config_hash],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Runs still marked running when a new one starts (under the run lock) were stopped by a
    /// crash or a kill: they are marked interrupted. Returns how many.
    pub fn mark_interrupted(&self) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE runs SET state = 'interrupted', ended_at = ?1,
                    reason = 'the process stopped before the run finished; what it committed is kept' ||
                      CASE kind WHEN 'full' THEN ' (`cutover run --resume` continues it)'
                                WHEN 'reprocess' THEN ' (`cutover queue reprocess --resume` continues it)'
                                WHEN 'rollback' THEN ' (`cutover rollback ' || COALESCE(of_run, 'RUN') || '` continues it)'
                                ELSE '' END
             WHERE state IN ('running', 'paused')",
            [now()],
        )?)
    }

    /// Running ⇄ paused, for whoever watches the store.
    pub fn set_run_state(&self, run_id: i64, state: &str) -> Result<()> {
        self.conn.execute("UPDATE runs SET state = ?2 WHERE id = ?1 AND ended_at IS NULL", params![run_id, state])?;
        Ok(())
    }

    pub fn finish_run(&self, run_id: i64, state: &str, reason: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET state = ?2, reason = ?3, ended_at = ?4 WHERE id = ?1",
            params![run_id, state, reason, now()],
        )?;
        Ok(())
    }

    pub fn begin_object(&self, run_id: i64, object: &str, position: usize, source_count: Option<u64>) -> Result<()> {
        self.conn.execute(
            "INSERT INTO run_objects (run_id, object, position, source_count) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (run_id, object) DO UPDATE SET source_count = excluded.source_count",
            params![run_id, object, position as i64, source_count.map(|n| n as i64)],
        )?;
        Ok(())
    }

    pub fn run(&self, run_id: i64) -> Result<Option<RunInfo>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, kind, state, reason, started_at, ended_at, user FROM runs WHERE id = ?1",
                [run_id],
                run_info,
            )
            .optional()?)
    }

    pub fn runs(&self) -> Result<Vec<RunInfo>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, kind, state, reason, started_at, ended_at, user FROM runs ORDER BY id DESC")?;
        let rows = stmt.query_map([], run_info)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The outcome counters of every object of a run, in run order.
    pub fn run_counts(&self, run_id: i64) -> Result<Vec<(String, Option<u64>, Counts)>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT object, source_count, {COUNT_COLUMNS} FROM run_objects WHERE run_id = ?1 ORDER BY position"
        ))?;
        let rows = stmt
            .query_map([run_id], |r| Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.map(|v| v as u64), counts_at(r, 2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Outcomes of a run counted from the audit log, to check the counters against.
    pub fn audit_counts(&self, run_id: i64, object: &str) -> Result<Counts> {
        let mut stmt = self
            .conn
            .prepare("SELECT outcome, COUNT(*) FROM audit WHERE run_id = ?1 AND object = ?2 GROUP BY outcome")?;
        let mut counts = Counts::default();
        let rows = stmt.query_map(params![run_id, object], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (outcome, n) = row?;
            if let Some(o) = Outcome::parse(&outcome) {
                *counts.slot(o) += n as u64;
                counts.extracted += n as u64;
            }
        }
        Ok(counts)
    }

    // ---- id map and match keys ----------------------------------------------------------------

    pub fn dest_id(&self, object: &str, source_id: &str) -> Result<Option<String>> {
        let mut stmt = self.conn.prepare_cached("SELECT dest_id FROM id_map WHERE object = ?1 AND source_id = ?2")?;
        Ok(stmt.query_row(params![object, source_id], |r| r.get(0)).optional()?)
    }

    /// The destination id a source record was written to, and the run that wrote it.
    pub fn id_map_entry(&self, object: &str, source_id: &str) -> Result<Option<(String, i64)>> {
        let mut stmt =
            self.conn.prepare_cached("SELECT dest_id, run_id FROM id_map WHERE object = ?1 AND source_id = ?2")?;
        Ok(stmt.query_row(params![object, source_id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?)
    }

    /// Whether a source record of the object is linked to this destination id.
    pub fn links_to(&self, object: &str, dest_id: &str) -> Result<bool> {
        let mut stmt = self.conn.prepare_cached("SELECT 1 FROM id_map WHERE object = ?1 AND dest_id = ?2 LIMIT 1")?;
        Ok(stmt.exists(params![object, dest_id])?)
    }

    /// Every id-map link of an object: source id → destination id.
    pub fn id_map_links(&self, object: &str) -> Result<std::collections::HashMap<String, String>> {
        let mut stmt = self.conn.prepare("SELECT source_id, dest_id FROM id_map WHERE object = ?1")?;
        let rows = stmt.query_map([object], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// The source ids of an object that have an id-map entry.
    pub fn id_map_ids(&self, object: &str) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare("SELECT source_id FROM id_map WHERE object = ?1")?;
        let rows = stmt.query_map([object], |r| r.get(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Id-map entries of many source records at once: (source id, destination id, run).
    pub fn id_map_entries(&self, object: &str, source_ids: &[&str]) -> Result<Vec<(String, String, i64)>> {
        let mut out = Vec::new();
        for chunk in source_ids.chunks(500) {
            let sql = format!(
                "SELECT source_id, dest_id, run_id FROM id_map WHERE object = ?1 AND source_id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let params = std::iter::once(&object).chain(chunk.iter());
            let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            for row in rows {
                out.push(row?);
            }
        }
        Ok(out)
    }

    // ---- the batch commit ---------------------------------------------------------------------

    pub fn commit_batch(&mut self, batch: &BatchCommit) -> Result<()> {
        let at = now();
        let user = os_user();
        let tx = self.conn.transaction()?;
        {
            let mut audit = tx.prepare_cached(
                "INSERT INTO audit (run_id, at, user, object, source_id, outcome, dest_id, matched_by, merge_rule, detail,
                                    before_image, occurrence, origin, source_hash, warnings, confidence)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?;
            for a in &batch.audit {
                audit.execute(params![
                    batch.run_id,
                    at,
                    user,
                    batch.object,
                    a.source_id,
                    a.outcome,
                    a.dest_id,
                    a.matched_by,
                    a.merge_rule,
                    a.detail,
                    a.before_image,
                    a.occurrence.max(1),
                    a.origin,
                    a.source_hash,
                    a.warnings,
                    a.confidence
                ])?;
            }
            let mut idmap = tx.prepare_cached(
                "INSERT INTO id_map (object, source_id, dest_id, run_id, source_hash, role) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (object, source_id) DO UPDATE SET dest_id = excluded.dest_id, run_id = excluded.run_id,
                    source_hash = excluded.source_hash, role = excluded.role",
            )?;
            let mut image = tx.prepare_cached(
                "INSERT INTO written (object, dest_id, run_id, image, created) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (object, dest_id) DO UPDATE SET
                    run_id = CASE WHEN image IS excluded.image THEN run_id ELSE excluded.run_id END,
                    image = excluded.image, created = MAX(created, excluded.created)",
            )?;
            for w in &batch.id_map {
                let role = if w.member { "member" } else { "survivor" };
                idmap.execute(params![batch.object, w.source_id, w.dest_id, batch.run_id, w.source_hash, role])?;
                if let Some(written) = &w.written {
                    image.execute(params![batch.object, w.dest_id, batch.run_id, written, w.created])?;
                }
            }
            let mut queue = tx.prepare_cached(
                "INSERT INTO queue (object, source_id, origin, run_id, status, reason, source, mapped, issues, candidates,
                                    waiting_object, waiting_source_id, created_at, updated_at, occurrence)
                 VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13)
                 ON CONFLICT (object, source_id, occurrence) DO UPDATE SET
                    origin = excluded.origin, run_id = excluded.run_id, status = 'open', reason = excluded.reason,
                    source = excluded.source, mapped = excluded.mapped, issues = excluded.issues,
                    candidates = excluded.candidates, waiting_object = excluded.waiting_object,
                    waiting_source_id = excluded.waiting_source_id, updated_at = excluded.updated_at",
            )?;
            for q in &batch.queue {
                let (wo, ws) = match &q.waiting_on {
                    Some((o, s)) => (Some(o.as_str()), Some(s.as_str())),
                    None => (None, None),
                };
                queue.execute(params![
                    batch.object,
                    q.source_id,
                    q.origin,
                    batch.run_id,
                    q.reason,
                    q.source,
                    q.mapped,
                    q.issues,
                    q.candidates,
                    wo,
                    ws,
                    at,
                    q.occurrence.max(1)
                ])?;
            }
            if !batch.resolved.is_empty() {
                let mut resolve = tx.prepare_cached(
                    "UPDATE queue SET status = 'resolved', updated_at = ?3
                     WHERE object = ?1 AND source_id = ?2 AND occurrence = 1 AND status IN ('open', 'fixed', 'claimed')",
                )?;
                for source_id in &batch.resolved {
                    resolve.execute(params![batch.object, source_id, at])?;
                }
            }
            if let Some(mark) = &batch.high_water {
                tx.prepare_cached(
                    "UPDATE run_objects SET high_water = ?3
                     WHERE run_id = ?1 AND object = ?2 AND (high_water IS NULL OR high_water < ?3)",
                )?
                .execute(params![batch.run_id, batch.object, mark])?;
            }
            let c = &batch.counts;
            tx.prepare_cached(
                "UPDATE run_objects SET extracted = ?3, created = ?4, updated = ?5, merged = ?6, queued = ?7,
                        skipped = ?8, failed = ?9, cursor = COALESCE(?10, cursor), done = ?11, unchanged = ?12
                 WHERE run_id = ?1 AND object = ?2",
            )?
            .execute(params![
                batch.run_id,
                batch.object,
                c.extracted as i64,
                c.created as i64,
                c.updated as i64,
                c.merged as i64,
                c.queued as i64,
                c.skipped as i64,
                c.failed as i64,
                batch.cursor,
                batch.done,
                c.unchanged as i64
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// How many open queue items an object has (decides whether writes must resolve items).
    pub fn open_queue_count(&self, object: &str) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM queue WHERE object = ?1 AND status IN ('open', 'fixed', 'claimed')",
            [object],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Whether a record is held in the queue.
    pub fn is_queued(&self, object: &str, source_id: &str) -> Result<bool> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT 1 FROM queue WHERE object = ?1 AND source_id = ?2 AND status IN ('open', 'fixed', 'claimed')",
        )?;
        Ok(stmt.exists(params![object, source_id])?)
    }

    /// The latest outcome a source record was given, and its detail (why a parent is not there).
    pub fn latest_outcome(&self, object: &str, source_id: &str) -> Result<Option<(String, Option<String>)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT outcome, detail FROM audit WHERE object = ?1 AND source_id = ?2 ORDER BY id DESC LIMIT 1",
        )?;
        Ok(stmt.query_row(params![object, source_id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?)
    }

    /// Records an operator action (a correction, a skip) on the `occurrence`-th source row under
    /// `source_id` in the audit log: a skip of a second row under an id is that row's outcome,
    /// never the first row's.
    pub fn audit_action(
        &self,
        run_id: i64,
        object: &str,
        (source_id, occurrence): (&str, u32),
        action: &str,
        detail: &str,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO audit (run_id, at, user, object, source_id, outcome, detail, occurrence)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![run_id, now(), os_user(), object, source_id, action, detail, occurrence.max(1)])?;
        Ok(())
    }
}

/// The outcome counters of `run_objects`, in the order [`counts_at`] reads them.
pub(crate) const COUNT_COLUMNS: &str = "extracted, created, updated, unchanged, merged, queued, skipped, failed";

/// Counters selected as [`COUNT_COLUMNS`] from column `first` on.
pub(crate) fn counts_at(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Counts> {
    let n = |i: usize| r.get::<_, i64>(first + i).map(|v| v.max(0) as u64);
    Ok(Counts::from_columns(n(0)?, [n(1)?, n(2)?, n(3)?, n(4)?, n(5)?, n(6)?, n(7)?]))
}

/// "?3, ?4, …" — `n` numbered placeholders from `first` on.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
}

pub(crate) fn run_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunInfo> {
    Ok(RunInfo {
        id: r.get(0)?,
        kind: r.get(1)?,
        state: r.get(2)?,
        reason: r.get(3)?,
        started_at: r.get(4)?,
        ended_at: r.get(5)?,
        user: r.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        drop(Store::open(&path).expect("first open"));
        let store = Store::open(&path).expect("second open");
        let v: i64 = store.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
        assert_eq!(v as usize, schema::MIGRATIONS.len());
        store.conn.execute_batch("PRAGMA user_version = 99").expect("bump");
        drop(store);
        let err = Store::open(&path).err().expect("newer schema refused");
        assert!(err.to_string().contains("newer Cutover"), "{err}");
    }

    #[test]
    fn batch_commit_writes_outcomes_and_checkpoint_together() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("s.db")).expect("open");
        let run = store.begin_run(RunKind::Full, "tester", "h").expect("run");
        store.begin_object(run, "contacts", 0, Some(2)).expect("object");
        let mut counts = Counts { extracted: 2, ..Counts::default() };
        counts.add(Outcome::Created);
        counts.add(Outcome::Queued);
        store
            .commit_batch(&BatchCommit {
                run_id: run,
                object: "contacts".into(),
                counts,
                cursor: Some("c1".into()),
                done: true,
                high_water: None,
                audit: vec![
                    AuditRow {
                        source_id: "1".into(),
                        outcome: "created",
                        dest_id: Some("10".into()),
                        ..Default::default()
                    },
                    AuditRow { source_id: "2".into(), outcome: "queued", ..Default::default() },
                ],
                id_map: vec![IdMapWrite {
                    source_id: "1".into(),
                    dest_id: "10".into(),
                    written: None,
                    source_hash: None,
                    created: false,
                    member: false,
                }],
                match_keys: vec![("email".into(), "a@b.c".into(), "10".into())],
                queue: vec![QueueWrite {
                    source_id: "2".into(),
                    occurrence: 1,
                    origin: "x.csv:3".into(),
                    reason: "owner_not_provisioned".into(),
                    source: "{}".into(),
                    mapped: "{}".into(),
                    issues: "[]".into(),
                    candidates: None,
                    waiting_on: None,
                }],
                resolved: vec![],
            })
            .expect("commit");
        assert_eq!(store.dest_id("contacts", "1").expect("id"), Some("10".into()));
        assert!(store.is_queued("contacts", "2").expect("queued"));
        let counts = store.run_counts(run).expect("counts");
        assert_eq!(counts[0].2, store.audit_counts(run, "contacts").expect("audit"));
        assert!(counts[0].2.balanced());
    }
}
