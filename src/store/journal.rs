//! The write-ahead journal of updates: before an update is sent to the destination, what it will
//! overwrite (its before-image) and what its outcome will be are committed here. If the process
//! dies after the destination applied it but before the batch's commit, the replay finds the
//! record already changed — and takes its before-image and outcome from the journal instead of
//! recording "no change" and losing what a rollback needs.
//!
//! It is a SQLite file of its own beside the state store (`cutover.journal.db`, WAL), so
//! journaling a batch never waits for the state store's writer committing the batch before it.
//! Entries are keyed by run, object and source id; a batch commit makes its entries moot (its
//! records are never read again in that run), and a finished run clears its own.

use color_eyre::eyre::{Result, WrapErr};
use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// An update journaled before it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journaled {
    pub source_id: String,
    pub dest_id: String,
    pub outcome: String,
    pub detail: String,
    pub before_image: Option<String>,
}

/// A create journaled before it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCreate {
    pub source_id: String,
    /// The marker it carries where the destination keeps one.
    pub marker: String,
    /// The record as written: JSON of its destination fields.
    pub written: String,
}

pub struct Journal {
    conn: Connection,
}

/// `cutover.state.db` → `cutover.journal.db`.
pub fn path_for(store: &Path) -> PathBuf {
    let name = store.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match name.strip_suffix(".state.db") {
        Some(stem) => store.with_file_name(format!("{stem}.journal.db")),
        None => store.with_file_name(format!("{name}.journal.db")),
    }
}

impl Journal {
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).wrap_err_with(|| format!("cannot open the journal {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS pending_updates (
                 run_id       INTEGER NOT NULL,
                 object       TEXT NOT NULL,
                 source_id    TEXT NOT NULL,
                 dest_id      TEXT NOT NULL,
                 outcome      TEXT NOT NULL,
                 detail       TEXT NOT NULL,
                 before_image TEXT,
                 PRIMARY KEY (run_id, object, source_id)
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS pending_creates (
                 run_id    INTEGER NOT NULL,
                 object    TEXT NOT NULL,
                 source_id TEXT NOT NULL,
                 marker    TEXT NOT NULL,
                 written   TEXT NOT NULL,
                 PRIMARY KEY (run_id, object, source_id)
             ) WITHOUT ROWID;",
        )
        .wrap_err_with(|| format!("cannot set up the journal {}", path.display()))?;
        Ok(Self { conn })
    }

    /// Journals updates about to be sent, in one transaction; a first entry is never replaced.
    pub fn write(&mut self, run_id: i64, object: &str, entries: &[Journaled]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO pending_updates (run_id, object, source_id, dest_id, outcome, detail, before_image)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (run_id, object, source_id) DO NOTHING",
            )?;
            for e in entries {
                stmt.execute(params![run_id, object, e.source_id, e.dest_id, e.outcome, e.detail, e.before_image])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// What this run journaled for an object, by source id (a resumed attempt replays from it).
    pub fn pending(&self, run_id: i64, object: &str) -> Result<HashMap<String, Journaled>> {
        let mut stmt = self.conn.prepare(
            "SELECT source_id, dest_id, outcome, detail, before_image FROM pending_updates
             WHERE run_id = ?1 AND object = ?2",
        )?;
        let rows = stmt.query_map(params![run_id, object], |r| {
            Ok(Journaled {
                source_id: r.get(0)?,
                dest_id: r.get(1)?,
                outcome: r.get(2)?,
                detail: r.get(3)?,
                before_image: r.get(4)?,
            })
        })?;
        let mut out = HashMap::new();
        for row in rows {
            let j = row?;
            out.insert(j.source_id.clone(), j);
        }
        Ok(out)
    }

    /// Journals creates about to be sent (source id, its marker, the record as written), in one
    /// transaction: if the process dies before the batch's commit, the next attempt asks the
    /// destination for exactly these — also where a record carries no marker (a Pipedrive note).
    pub fn intend_creates(&mut self, run_id: i64, object: &str, intents: &[PendingCreate]) -> Result<()> {
        if intents.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO pending_creates (run_id, object, source_id, marker, written) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (run_id, object, source_id) DO UPDATE SET marker = excluded.marker, written = excluded.written",
            )?;
            for i in intents {
                stmt.execute(params![run_id, object, i.source_id, i.marker, i.written])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every create journaled for an object by any run not yet finished (those whose batch
    /// committed are in the id map; the caller leaves them out).
    pub fn pending_creates(&self, object: &str) -> Result<Vec<PendingCreate>> {
        let mut stmt = self.conn.prepare(
            "SELECT source_id, marker, written FROM pending_creates WHERE object = ?1 ORDER BY run_id, source_id",
        )?;
        let rows = stmt.query_map([object], |r| {
            Ok(PendingCreate { source_id: r.get(0)?, marker: r.get(1)?, written: r.get(2)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Forgets what a run journaled once every batch of it is committed.
    pub fn clear(&mut self, run_id: i64) -> Result<()> {
        self.conn.execute("DELETE FROM pending_updates WHERE run_id = ?1", [run_id])?;
        self.conn.execute("DELETE FROM pending_creates WHERE run_id = ?1", [run_id])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_entry_stays_and_a_finished_run_is_cleared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut j = Journal::open(&path_for(&dir.path().join("p.state.db"))).expect("open");
        let e = |before: &str| Journaled {
            source_id: "7".into(),
            dest_id: "70".into(),
            outcome: "updated".into(),
            detail: "changed name".into(),
            before_image: Some(before.into()),
        };
        j.write(1, "contacts", &[e("{\"name\":null}")]).expect("write");
        j.write(1, "contacts", &[e("{\"name\":\"after\"}")]).expect("replay");
        let pending = j.pending(1, "contacts").expect("pending");
        assert_eq!(pending["7"].before_image.as_deref(), Some("{\"name\":null}"), "the replay keeps the first image");
        j.clear(1).expect("clear");
        assert!(j.pending(1, "contacts").expect("pending").is_empty());
    }

    #[test]
    fn creates_are_pending_until_their_run_finishes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut j = Journal::open(&path_for(&dir.path().join("p.state.db"))).expect("open");
        let intent = |sid: &str| PendingCreate {
            source_id: sid.into(),
            marker: format!("demo:{sid}"),
            written: format!("{{\"content\":\"note {sid}\"}}"),
        };
        j.intend_creates(1, "notes", &[intent("1"), intent("2")]).expect("intend");
        j.intend_creates(2, "notes", &[intent("3")]).expect("intend");
        j.intend_creates(2, "deals", &[intent("9")]).expect("intend");
        let pending = j.pending_creates("notes").expect("pending");
        assert_eq!(pending.iter().map(|p| p.source_id.as_str()).collect::<Vec<_>>(), ["1", "2", "3"]);
        assert_eq!(pending[0], intent("1"));
        j.clear(1).expect("clear");
        assert_eq!(j.pending_creates("notes").expect("pending"), [intent("3")], "another run's stay");
    }
}
