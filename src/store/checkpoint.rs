//! Resuming a run: the newest full run that did not complete, and where each object stopped.
//! A batch's outcomes and the cursor after it commit together, so a checkpoint is always exact.

use super::{COUNT_COLUMNS, RunInfo, Store, counts_at, run_info};
use crate::model::Counts;
use color_eyre::eyre::Result;
use rusqlite::{OptionalExtension, params};

/// Where one object of a run stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub counts: Counts,
    /// Where the source continues; `None` before the first batch committed.
    pub cursor: Option<String>,
    pub done: bool,
}

/// Run states a run can be resumed from.
pub const RESUMABLE: &[&str] = &["interrupted", "paused", "stopped", "halted", "cancelled", "failed"];

impl Store {
    /// The newest full run, when it did not complete; `Err` says why there is nothing to resume.
    pub fn resumable_run(&self) -> Result<std::result::Result<RunInfo, String>> {
        let run = self
            .conn()
            .query_row(
                "SELECT id, kind, state, reason, started_at, ended_at, user FROM runs WHERE kind IN ('full', 'delta')
                 ORDER BY id DESC LIMIT 1",
                [],
                run_info,
            )
            .optional()?;
        Ok(match run {
            None => Err("no full or delta run to resume: start one with `cutover run`".into()),
            Some(r) if RESUMABLE.contains(&r.state.as_str()) => Ok(r),
            Some(r) => Err(format!("run {} is {}: nothing to resume (`cutover run` starts a new run)", r.id, r.state)),
        })
    }

    /// The newest reprocess run that stopped before finishing, with the queue items it was given
    /// that are still held; `Err` says why there is nothing to resume.
    pub fn resumable_reprocess(&self) -> Result<std::result::Result<(RunInfo, Vec<i64>), String>> {
        let run = self
            .conn()
            .query_row(
                "SELECT id, kind, state, reason, started_at, ended_at, user FROM runs r WHERE kind = 'reprocess'
                   AND EXISTS (SELECT 1 FROM run_items i WHERE i.run_id = r.id)
                 ORDER BY id DESC LIMIT 1",
                [],
                run_info,
            )
            .optional()?;
        let Some(run) = run else {
            return Ok(Err("no reprocess to resume: `cutover queue reprocess` starts one".into()));
        };
        if !RESUMABLE.contains(&run.state.as_str()) {
            return Ok(Err(format!("reprocess run {} is {}: nothing to resume", run.id, run.state)));
        }
        // Still held, and not given an outcome by the interrupted attempt (a record it held again
        // is done: the attempt's outcome stands).
        let mut stmt = self.conn().prepare(
            "SELECT i.queue_id FROM run_items i JOIN queue q ON q.id = i.queue_id
             WHERE i.run_id = ?1 AND q.status IN ('open', 'fixed', 'claimed')
               AND NOT EXISTS (SELECT 1 FROM audit a WHERE a.run_id = i.run_id AND a.object = q.object
                                 AND a.source_id = q.source_id AND a.occurrence = q.occurrence
                                 AND a.outcome IN ('created', 'updated', 'unchanged', 'merged', 'queued', 'skipped', 'failed'))
             ORDER BY i.queue_id",
        )?;
        let ids = stmt.query_map([run.id], |r| r.get(0))?.collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok(Ok((run, ids)))
    }

    /// Records the queue items a reprocess run works (so a resumed attempt knows them).
    pub fn add_run_items(&self, run_id: i64, ids: &[i64]) -> Result<()> {
        self.immediate(|| {
            let mut stmt =
                self.conn().prepare_cached("INSERT OR IGNORE INTO run_items (run_id, queue_id) VALUES (?1, ?2)")?;
            for id in ids {
                stmt.execute(params![run_id, id])?;
            }
            Ok(())
        })
    }

    /// The newest rollback of `of_run` that stopped before finishing.
    pub fn resumable_rollback(&self, of_run: i64) -> Result<Option<i64>> {
        let states = RESUMABLE.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT id FROM runs WHERE kind = 'rollback' AND of_run = ?1 AND state IN ({states})
                     AND id = (SELECT MAX(id) FROM runs WHERE kind = 'rollback' AND of_run = ?1)"
                ),
                [of_run],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// What part of the source a run takes (a delta's mode), for a resumed attempt.
    pub fn run_mode(&self, run_id: i64) -> Result<Option<String>> {
        Ok(self.conn().query_row("SELECT mode FROM runs WHERE id = ?1", [run_id], |r| r.get(0)).optional()?.flatten())
    }

    pub fn set_run_mode(&self, run_id: i64, mode: &str) -> Result<()> {
        self.conn().execute("UPDATE runs SET mode = ?2 WHERE id = ?1", params![run_id, mode])?;
        Ok(())
    }

    /// Names the run a rollback undoes.
    pub fn set_rollback_of(&self, run_id: i64, of_run: i64) -> Result<()> {
        self.conn().execute("UPDATE runs SET of_run = ?2 WHERE id = ?1", params![run_id, of_run])?;
        Ok(())
    }

    /// Takes a stopped run up again under the current project file.
    pub fn resume_run(&self, run_id: i64, config_hash: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE runs SET state = 'running', ended_at = NULL, reason = NULL, config_hash = ?2 WHERE id = ?1",
            params![run_id, config_hash],
        )?;
        Ok(())
    }

    pub fn checkpoint(&self, run_id: i64, object: &str) -> Result<Option<Checkpoint>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT cursor, done, {COUNT_COLUMNS} FROM run_objects WHERE run_id = ?1 AND object = ?2"),
                params![run_id, object],
                |r| Ok(Checkpoint { cursor: r.get(0)?, done: r.get(1)?, counts: counts_at(r, 2)? }),
            )
            .optional()?)
    }
}
