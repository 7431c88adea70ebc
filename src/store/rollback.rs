//! What a rollback reads and writes in the store: the records a run wrote, with their
//! before-images and what Cutover last wrote; and, per record rolled back, an audit row and
//! the id-map entry unlinked — in one transaction per batch.

use super::{Store, now, os_user};
use color_eyre::eyre::Result;
use rusqlite::params;

/// A record a run created or updated, and where it stands now.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub source_id: String,
    /// created, updated or merged.
    pub outcome: String,
    pub dest_id: String,
    /// JSON of the fields the run overwrote, as they were (updates only).
    pub before_image: Option<String>,
    /// The id-map entry now: (destination id, the run that last wrote that destination record,
    /// what it should hold). `None` when the record is no longer linked (already rolled back).
    pub linked: Option<(String, i64, Option<String>)>,
    /// The latest earlier run that had written the record to the same destination record:
    /// rolling this run back restores its values but keeps that run's link.
    pub linked_before: Option<i64>,
}

/// One record's rollback, for the audit log.
#[derive(Debug, Clone)]
pub struct RolledBack {
    pub source_id: String,
    pub dest_id: String,
    /// `rolled_back` (unlinked) or `rollback_kept` (left as it is, still linked).
    pub outcome: &'static str,
    pub detail: String,
    /// JSON of the destination's values before the rollback changed them.
    pub before_image: Option<String>,
    /// The link stays (an earlier run made it) and the rollback put values back: what the
    /// destination record holds now becomes what Cutover wrote there (image, linking run).
    pub relink: Option<(String, i64)>,
    /// Unlinked from a destination record that stays (restored, or unchanged): what it holds
    /// after the rollback, for the source records still linked to it.
    pub after: Option<String>,
}

impl Store {
    /// Each earlier write is looked up by its record (`INDEXED BY audit_record`): SQLite's
    /// planner otherwise took the (object, outcome) index and scanned the object's audit rows
    /// once per record — a rollback of 120,000 records ran for 15 minutes.
    pub fn written_by_run(&self, run_id: i64, object: &str) -> Result<Vec<Written>> {
        let mut stmt = self.conn().prepare(
            "SELECT a.source_id, a.outcome, a.dest_id, a.before_image, m.dest_id, COALESCE(w.run_id, m.run_id), w.image,
                    (SELECT MAX(b.run_id) FROM audit b INDEXED BY audit_record
                              WHERE b.object = a.object AND b.source_id = a.source_id
                              AND b.run_id < a.run_id AND b.dest_id = a.dest_id
                              AND b.outcome IN ('created', 'updated', 'unchanged', 'merged')
                              -- a link a rollback undid since is no earlier link
                              AND NOT EXISTS (SELECT 1 FROM audit r INDEXED BY audit_record WHERE r.object = a.object
                                                AND r.source_id = a.source_id AND r.outcome = 'rolled_back'
                                                AND r.run_id > b.run_id AND r.run_id < a.run_id))
             FROM audit a LEFT JOIN id_map m ON m.object = a.object AND m.source_id = a.source_id
             LEFT JOIN written w ON w.object = m.object AND w.dest_id = m.dest_id
             WHERE a.run_id = ?1 AND a.object = ?2 AND a.outcome IN ('created', 'updated', 'unchanged', 'merged')
               AND a.dest_id IS NOT NULL AND a.occurrence = 1
             ORDER BY a.id",
        )?;
        let rows = stmt
            .query_map(params![run_id, object], |r| {
                let linked = match r.get::<_, Option<String>>(4)? {
                    Some(dest) => Some((dest, r.get(5)?, r.get(6)?)),
                    None => None,
                };
                Ok(Written {
                    source_id: r.get(0)?,
                    outcome: r.get(1)?,
                    dest_id: r.get(2)?,
                    before_image: r.get(3)?,
                    linked,
                    linked_before: r.get(7)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Whether a rollback of `run` already undid (or found nothing to undo in) its write of one
    /// of these source records to `dest_id`: that run no longer counts as a later writer.
    pub fn undone_by_rollback(&self, object: &str, source_ids: &[&str], dest_id: &str, run: i64) -> Result<bool> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT 1 FROM audit r INDEXED BY audit_record JOIN runs rr ON rr.id = r.run_id
             WHERE r.object = ?1 AND r.source_id = ?2 AND r.dest_id = ?3 AND rr.kind = 'rollback' AND rr.of_run = ?4
               AND r.outcome IN ('rolled_back', 'rollback_restored') LIMIT 1",
        )?;
        for sid in source_ids {
            if stmt.exists(params![object, sid, dest_id, run])? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every linked record of an object with what Cutover last wrote to it: (source id,
    /// destination id, image JSON).
    pub fn linked_images(&self, object: &str) -> Result<Vec<(String, String, Option<String>)>> {
        let mut stmt = self.conn().prepare(
            "SELECT m.source_id, m.dest_id, w.image FROM id_map m
             LEFT JOIN written w ON w.object = m.object AND w.dest_id = m.dest_id WHERE m.object = ?1",
        )?;
        let rows = stmt.query_map([object], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The newest run whose writes are still linked (what "roll back the last run" means).
    pub fn newest_rollback_target(&self) -> Result<Option<i64>> {
        Ok(self.conn().query_row(
            "SELECT MAX(a.run_id) FROM audit a JOIN runs r ON r.id = a.run_id
             WHERE a.outcome IN ('created', 'updated', 'merged') AND r.kind IN ('full', 'delta', 'reprocess')
               AND EXISTS (SELECT 1 FROM id_map m WHERE m.object = a.object AND m.source_id = a.source_id)",
            [],
            |r| r.get(0),
        )?)
    }

    /// Audits each record and unlinks the rolled-back ones (or, where an earlier run made the
    /// link, keeps it with what the destination holds now), all or nothing.
    pub fn record_rollback(&self, run_id: i64, of_run: i64, object: &str, records: &[RolledBack]) -> Result<()> {
        let (at, user) = (now(), os_user());
        self.immediate(|| {
            let mut audit = self.conn().prepare_cached(
                "INSERT INTO audit (run_id, at, user, object, source_id, outcome, dest_id, detail, before_image)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut unlink = self.conn().prepare_cached("DELETE FROM id_map WHERE object = ?1 AND source_id = ?2")?;
            let mut rehash = self
                .conn()
                .prepare_cached("UPDATE id_map SET source_hash = NULL WHERE object = ?1 AND source_id = ?2")?;
            // What the record holds again is what the last earlier run that changed it left (a run
            // that found it unchanged wrote nothing). The record's links drive the lookup (CROSS
            // JOIN keeps id_map outside): the planner otherwise scanned the object's audit rows per
            // record — a delta's 12,768 records took 4 min 52 s to roll back, now 0.9 s.
            let last_writer =
                "(SELECT MAX(a.run_id) FROM id_map m INDEXED BY id_map_dest CROSS JOIN audit a INDEXED BY audit_record
                                  ON a.object = m.object AND a.source_id = m.source_id
                                WHERE m.object = ?1 AND m.dest_id = ?2 AND a.dest_id = ?2 AND a.run_id < ?4
                                  AND a.outcome IN ('created', 'updated', 'merged'))";
            let mut reimage = self.conn().prepare_cached(&format!(
                "UPDATE written SET image = ?3, run_id = COALESCE({last_writer}, ?5) WHERE object = ?1 AND dest_id = ?2"
            ))?;
            let mut forget = self.conn().prepare_cached(
                "DELETE FROM written WHERE object = ?1 AND dest_id = ?2
                   AND NOT EXISTS (SELECT 1 FROM id_map WHERE object = ?1 AND dest_id = ?2)",
            )?;
            for r in records {
                audit.execute(params![
                    run_id,
                    at,
                    user,
                    object,
                    r.source_id,
                    r.outcome,
                    r.dest_id,
                    r.detail,
                    r.before_image
                ])?;
                match (r.outcome, &r.relink) {
                    ("rolled_back", _) => {
                        unlink.execute(params![object, r.source_id])?;
                    }
                    ("rollback_restored", relink) => {
                        // A delta's source hash no longer says what the destination holds.
                        rehash.execute(params![object, r.source_id])?;
                        if let Some((image, by_run)) = relink {
                            reimage.execute(params![object, r.dest_id, image, of_run, by_run])?;
                        }
                    }
                    _ => {}
                }
            }
            // A record other source records still feed: it holds again what it held before the
            // rolled-back run, as the last earlier run that wrote it left it.
            // (No earlier run changed it: the run that first linked one of its source records.)
            let first_link =
                "(SELECT MIN(a.run_id) FROM id_map m INDEXED BY id_map_dest CROSS JOIN audit a INDEXED BY audit_record
                                 ON a.object = m.object AND a.source_id = m.source_id
                               WHERE m.object = ?1 AND m.dest_id = ?2 AND a.dest_id = ?2 AND a.run_id < ?4
                                 AND a.outcome IN ('created', 'updated', 'unchanged', 'merged'))";
            let mut still_fed = self.conn().prepare_cached(&format!(
                "UPDATE written SET image = ?3, run_id = COALESCE({last_writer}, {first_link}, run_id)
                 WHERE object = ?1 AND dest_id = ?2"
            ))?;
            for r in records.iter().filter(|r| r.outcome == "rolled_back") {
                forget.execute(params![object, r.dest_id])?;
                if let Some(after) = &r.after {
                    still_fed.execute(params![object, r.dest_id, after, of_run])?;
                }
            }
            Ok(())
        })
    }
}
