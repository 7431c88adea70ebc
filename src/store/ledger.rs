//! What reconciliation reads from the store: each record's latest outcome, the id map with what
//! was written, and the records still held — streamed, so a million records stay cheap.

use super::Store;
use crate::model::Outcome;
use color_eyre::eyre::Result;
use rusqlite::{OptionalExtension, params};
use std::collections::HashMap;

/// One written record: its destination id and the JSON of what it should hold there.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub source_id: String,
    pub dest_id: String,
    pub written: Option<String>,
}

impl Store {
    /// Each physical source record's latest outcome in any run, by (source id, occurrence) —
    /// `None` when a rollback undid it (corrections and other actions aside).
    pub fn latest_outcomes(&self, object: &str) -> Result<HashMap<(String, u32), Option<Outcome>>> {
        // Along the table (its row order is the id order): every row of the object is read anyway.
        let mut stmt =
            self.conn().prepare("SELECT source_id, occurrence, outcome FROM audit WHERE +object = ?1 ORDER BY id")?;
        let mut rows = stmt.query([object])?;
        let mut out = HashMap::new();
        while let Some(r) = rows.next()? {
            let key = (r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(1) as u32);
            let outcome: String = r.get(2)?;
            if let Some(o) = Outcome::parse(&outcome) {
                out.insert(key, Some(o));
            } else if outcome == "rolled_back" {
                out.insert(key, None);
            }
        }
        Ok(out)
    }

    /// Up to `limit` id-map entries of an object after source id `after`, in source-id order.
    pub fn written_page(&self, object: &str, after: &str, limit: usize) -> Result<Vec<Written>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT m.source_id, m.dest_id, w.image FROM id_map m
             LEFT JOIN written w ON w.object = m.object AND w.dest_id = m.dest_id
             WHERE m.object = ?1 AND m.source_id > ?2 ORDER BY m.source_id LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![object, after, limit as i64], |r| {
                Ok(Written { source_id: r.get(0)?, dest_id: r.get(1)?, written: r.get(2)? })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The held records of an object: (source id, reason), in queue order.
    pub fn pending_queue(&self, object: &str) -> Result<Vec<(String, String)>> {
        let mut stmt = self.conn().prepare(
            "SELECT source_id, reason FROM queue WHERE object = ?1 AND status IN ('open', 'fixed', 'claimed') ORDER BY id",
        )?;
        let rows = stmt.query_map([object], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Records whose latest audit row (first rows) is a write with warnings: (source id, JSON).
    pub fn written_with_warnings(&self, object: &str) -> Result<Vec<(String, String)>> {
        let mut stmt = self.conn().prepare(
            "SELECT a.source_id, a.warnings FROM audit a
             JOIN (SELECT MAX(id) AS id FROM audit WHERE object = ?1 AND occurrence = 1 GROUP BY source_id) l
               ON l.id = a.id
             WHERE a.warnings IS NOT NULL AND a.outcome IN ('created', 'updated', 'unchanged', 'merged')
             ORDER BY a.source_id",
        )?;
        let rows = stmt.query_map([object], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Each written record's source hash (`None` when written before hashes were kept).
    pub fn source_hashes(&self, object: &str) -> Result<HashMap<String, Option<String>>> {
        let mut stmt = self.conn().prepare("SELECT source_id, source_hash FROM id_map WHERE object = ?1")?;
        let rows = stmt.query_map([object], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// The highest modified time the last full or delta run that finished the object read.
    pub fn high_water(&self, object: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT ro.high_water FROM run_objects ro JOIN runs r ON r.id = ro.run_id
                 WHERE ro.object = ?1 AND r.kind IN ('full', 'delta') AND ro.done = 1 AND ro.high_water IS NOT NULL
                 ORDER BY r.id DESC LIMIT 1",
                [object],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// What Cutover last wrote to these destination records (JSON of mapped fields), by id.
    pub fn written_images(&self, object: &str, dest_ids: &[String]) -> Result<HashMap<String, String>> {
        let mut out = HashMap::new();
        let mut stmt = self.conn().prepare_cached("SELECT image FROM written WHERE object = ?1 AND dest_id = ?2")?;
        for id in dest_ids {
            if let Some(image) = stmt.query_row(params![object, id], |r| r.get::<_, String>(0)).optional()? {
                out.insert(id.clone(), image);
            }
        }
        Ok(out)
    }

    /// Which of these destination records Cutover created (they follow the source on a re-run).
    pub fn created_records(&self, object: &str, dest_ids: &[String]) -> Result<std::collections::HashSet<String>> {
        let mut out = std::collections::HashSet::new();
        let mut stmt =
            self.conn().prepare_cached("SELECT 1 FROM written WHERE object = ?1 AND dest_id = ?2 AND created = 1")?;
        for id in dest_ids {
            if stmt.exists(params![object, id])? {
                out.insert(id.clone());
            }
        }
        Ok(out)
    }

    /// The newest run of the project, if any.
    pub fn last_run_id(&self) -> Result<Option<i64>> {
        Ok(self.conn().query_row("SELECT MAX(id) FROM runs", [], |r| r.get(0))?)
    }
}
