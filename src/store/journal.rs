//! The write-ahead journal of updates: before an update is sent to the destination, what it
//! will overwrite (its before-image) and what its outcome will be are committed here. If the
//! process dies after the destination applied it but before the batch's commit, the replay finds
//! the record already changed — and takes its before-image and outcome from the journal instead
//! of recording "no change" and losing what a rollback needs. The batch commit clears its entries.

use super::Store;
use color_eyre::eyre::Result;
use rusqlite::params;
use std::collections::HashMap;

/// An update journaled before it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journaled {
    pub source_id: String,
    pub dest_id: String,
    pub outcome: String,
    pub detail: String,
    pub before_image: Option<String>,
}

impl Store {
    /// Journals updates about to be sent, in one transaction.
    pub fn journal_updates(&self, run_id: i64, object: &str, entries: &[Journaled]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.immediate(|| {
            let mut stmt = self.conn().prepare_cached(
                "INSERT INTO pending_updates (run_id, object, source_id, dest_id, outcome, detail, before_image)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (run_id, object, source_id) DO NOTHING",
            )?;
            for e in entries {
                stmt.execute(params![run_id, object, e.source_id, e.dest_id, e.outcome, e.detail, e.before_image])?;
            }
            Ok(())
        })
    }

    /// Updates an interrupted attempt of this run journaled but never committed, by source id.
    pub fn journaled(&self, run_id: i64, object: &str) -> Result<HashMap<String, Journaled>> {
        let mut stmt = self.conn().prepare(
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
}
