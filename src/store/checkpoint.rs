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
                "SELECT id, kind, state, reason, started_at, ended_at, user FROM runs WHERE kind = 'full'
                 ORDER BY id DESC LIMIT 1",
                [],
                run_info,
            )
            .optional()?;
        Ok(match run {
            None => Err("no full run to resume: start one with `cutover run`".into()),
            Some(r) if RESUMABLE.contains(&r.state.as_str()) => Ok(r),
            Some(r) => Err(format!("run {} is {}: nothing to resume (`cutover run` starts a new run)", r.id, r.state)),
        })
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
