//! Who feeds which destination record: several source records may end in one destination record
//! (two people on one email), and each id-map entry says whether it is that record's survivor or
//! a member merged into it — a decision recorded once and applied the same way on every run.
//! Also what the run has read under a source id already: a second row with the same id is a
//! record of its own, told apart by its occurrence.

use super::{Store, placeholders};
use color_eyre::eyre::Result;
use indexmap::IndexMap;
use rusqlite::{OptionalExtension, params};
use std::collections::HashMap;

/// One source record feeding a destination record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub source_id: String,
    /// Merged into a record another source record survives in.
    pub member: bool,
}

/// The first row a run read under a source id, as the store knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstRow {
    pub origin: Option<String>,
    pub outcome: String,
    pub dest_id: Option<String>,
    /// Its mapped values: as it waits in the queue, or as it was written.
    pub values: Option<IndexMap<String, Option<String>>>,
}

/// A source id the run has read: how many rows so far, and the hash of the first one's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub source_id: String,
    pub rows: u32,
    pub first_hash: Option<String>,
}

impl Store {
    /// The source records feeding each of these destination records.
    pub fn members(&self, object: &str, dest_ids: &[&str]) -> Result<HashMap<String, Vec<Member>>> {
        let mut out: HashMap<String, Vec<Member>> = HashMap::new();
        for chunk in dest_ids.chunks(500) {
            // Found through the index by destination id (an ORDER BY here would walk the table).
            let sql = format!(
                "SELECT dest_id, source_id, role FROM id_map INDEXED BY id_map_dest WHERE object = ?1 AND dest_id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut stmt = self.conn().prepare_cached(&sql)?;
            let params = std::iter::once(&object).chain(chunk.iter());
            let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })?;
            for row in rows {
                let (dest, source_id, role) = row?;
                out.entry(dest).or_default().push(Member { source_id, member: role == "member" });
            }
        }
        // The survivor first, then by source id: a stable answer.
        for members in out.values_mut() {
            members.sort_by(|a, b| a.member.cmp(&b.member).then_with(|| a.source_id.cmp(&b.source_id)));
        }
        Ok(out)
    }

    /// Destination records fed by more than one source record: (destination id, members, survivor first).
    pub fn merged_records(&self, object: &str) -> Result<Vec<(String, Vec<Member>)>> {
        let mut stmt = self.conn().prepare(
            "SELECT m.dest_id, m.source_id, m.role FROM id_map m
             JOIN (SELECT dest_id FROM id_map WHERE object = ?1 GROUP BY dest_id HAVING COUNT(*) > 1) g
               ON g.dest_id = m.dest_id
             WHERE m.object = ?1 ORDER BY m.dest_id, m.role = 'member', m.source_id",
        )?;
        let rows =
            stmt.query_map([object], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
        let mut out: Vec<(String, Vec<Member>)> = Vec::new();
        for row in rows {
            let (dest, source_id, role) = row?;
            let m = Member { source_id, member: role == "member" };
            match out.last_mut() {
                Some((d, members)) if *d == dest => members.push(m),
                _ => out.push((dest, vec![m])),
            }
        }
        Ok(out)
    }

    /// Members of merged destination records with no audited merge into that record (a merge
    /// nobody decided, which the one-to-one witness reports).
    pub fn unaudited_members(&self, object: &str) -> Result<std::collections::HashSet<String>> {
        let mut stmt = self.conn().prepare(
            "SELECT m.source_id FROM id_map m WHERE m.object = ?1 AND m.role = 'member' AND NOT EXISTS
               (SELECT 1 FROM audit a WHERE a.object = m.object AND a.source_id = m.source_id
                  AND a.outcome = 'merged' AND a.dest_id = m.dest_id)",
        )?;
        let rows = stmt.query_map([object], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Every source id a run read for an object so far (a resumed run continues numbering them).
    pub fn read_in_run(&self, run_id: i64, object: &str) -> Result<Vec<Read>> {
        let mut stmt = self.conn().prepare(
            "SELECT source_id, MAX(occurrence), MAX(CASE WHEN occurrence = 1 THEN source_hash END) FROM audit
             WHERE run_id = ?1 AND object = ?2 AND outcome IN
                   ('created', 'updated', 'unchanged', 'merged', 'queued', 'skipped', 'failed')
             GROUP BY source_id",
        )?;
        let rows = stmt
            .query_map(params![run_id, object], |r| {
                Ok(Read { source_id: r.get(0)?, rows: r.get::<_, i64>(1)?.max(1) as u32, first_hash: r.get(2)? })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The first row read under `source_id` in its latest run, for the operator deciding about a second.
    pub fn first_row(&self, object: &str, source_id: &str) -> Result<Option<FirstRow>> {
        let row: Option<(Option<String>, String, Option<String>)> = self
            .conn()
            .query_row(
                "SELECT origin, outcome, dest_id FROM audit WHERE object = ?1 AND source_id = ?2 AND occurrence = 1
                   AND outcome IN ('created', 'updated', 'unchanged', 'merged', 'queued', 'skipped', 'failed')
                 ORDER BY id DESC LIMIT 1",
                params![object, source_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((origin, outcome, dest_id)) = row else { return Ok(None) };
        let json: Option<String> = if outcome == "queued" {
            self.conn()
                .query_row(
                    "SELECT mapped FROM queue WHERE object = ?1 AND source_id = ?2 AND occurrence = 1",
                    params![object, source_id],
                    |r| r.get(0),
                )
                .optional()?
        } else if let Some(d) = &dest_id {
            self.conn()
                .query_row("SELECT image FROM written WHERE object = ?1 AND dest_id = ?2", params![object, d], |r| {
                    r.get(0)
                })
                .optional()?
        } else {
            None
        };
        let values = json.and_then(|j| serde_json::from_str(&j).ok());
        Ok(Some(FirstRow { origin, outcome, dest_id, values }))
    }
}

/// A destination object's own count before Cutover's first run wrote to it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Baseline {
    pub count: u64,
    /// Records Cutover had created there at that moment (none, unless the store predates baselines).
    pub created: u64,
    pub run_id: i64,
    pub at: String,
}

impl Store {
    pub fn baseline(&self, dest_object: &str) -> Result<Option<Baseline>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT count, created, run_id, at FROM destination_baseline WHERE dest_object = ?1",
                [dest_object],
                |r| {
                    Ok(Baseline {
                        count: r.get::<_, i64>(0)?.max(0) as u64,
                        created: r.get::<_, i64>(1)?.max(0) as u64,
                        run_id: r.get(2)?,
                        at: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// Keeps the first baseline of a destination object; later calls change nothing.
    pub fn set_baseline(&self, dest_object: &str, count: u64, objects: &[&str], run_id: i64) -> Result<()> {
        let created = self.created_count(objects)?;
        self.conn().execute(
            "INSERT INTO destination_baseline (dest_object, count, created, run_id, at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (dest_object) DO NOTHING",
            params![dest_object, count as i64, created as i64, run_id, super::now()],
        )?;
        Ok(())
    }

    /// Records Cutover created (and has not rolled back) for these objects.
    pub fn created_count(&self, objects: &[&str]) -> Result<u64> {
        let mut n = 0u64;
        let mut stmt = self.conn().prepare_cached("SELECT COUNT(*) FROM written WHERE object = ?1 AND created = 1")?;
        for o in objects {
            n += stmt.query_row([o], |r| r.get::<_, i64>(0))?.max(0) as u64;
        }
        Ok(n)
    }
}
