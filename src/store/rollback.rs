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
}

impl Store {
    pub fn written_by_run(&self, run_id: i64, object: &str) -> Result<Vec<Written>> {
        let mut stmt = self.conn().prepare(
            "SELECT a.source_id, a.outcome, a.dest_id, a.before_image, m.dest_id, COALESCE(w.run_id, m.run_id), w.image
             FROM audit a LEFT JOIN id_map m ON m.object = a.object AND m.source_id = a.source_id
             LEFT JOIN written w ON w.object = m.object AND w.dest_id = m.dest_id
             WHERE a.run_id = ?1 AND a.object = ?2 AND a.outcome IN ('created', 'updated', 'merged')
               AND a.dest_id IS NOT NULL
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
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
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

    /// Audits each record and unlinks the rolled-back ones, all or nothing.
    pub fn record_rollback(&self, run_id: i64, object: &str, records: &[RolledBack]) -> Result<()> {
        let (at, user) = (now(), os_user());
        self.immediate(|| {
            let mut audit = self.conn().prepare_cached(
                "INSERT INTO audit (run_id, at, user, object, source_id, outcome, dest_id, detail, before_image)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut unlink = self.conn().prepare_cached("DELETE FROM id_map WHERE object = ?1 AND source_id = ?2")?;
            let mut forget = self.conn().prepare_cached("DELETE FROM written WHERE object = ?1 AND dest_id = ?2")?;
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
                if r.outcome == "rolled_back" {
                    unlink.execute(params![object, r.source_id])?;
                    forget.execute(params![object, r.dest_id])?;
                }
            }
            Ok(())
        })
    }
}
