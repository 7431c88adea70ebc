//! Sign-offs: who approved which reconciliation report, when, with what notes, and which
//! remaining discrepancies they accepted (each with a reason). A run after a sign-off voids it.

use super::{Store, now, os_user};
use color_eyre::eyre::Result;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// One remaining discrepancy the operator accepted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    pub key: String,
    pub records: u64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignOff {
    pub id: i64,
    pub at: String,
    pub user: String,
    pub notes: String,
    pub report_hash: String,
    pub verdict: String,
    /// The newest run when it was signed; a later run voids it.
    pub last_run_id: Option<i64>,
    pub accepted: Vec<Acceptance>,
    /// Set when a run after it voided it.
    pub voided_by_run: Option<i64>,
}

/// What is recorded with a sign-off.
pub struct NewSignOff<'a> {
    pub notes: &'a str,
    pub report_hash: &'a str,
    pub verdict: &'a str,
    pub last_run_id: Option<i64>,
    pub accepted: &'a [Acceptance],
    pub report_json: &'a str,
}

impl Store {
    /// Records a sign-off, unless a run started since the report was made.
    pub fn record_signoff(&self, new: &NewSignOff<'_>) -> Result<std::result::Result<SignOff, String>> {
        self.immediate(|| {
            let newest = self.last_run_id()?;
            if newest != new.last_run_id {
                return Ok(Err(format!(
                    "run {} started after this report was made: reconcile again before signing off",
                    newest.unwrap_or_default()
                )));
            }
            let accepted = serde_json::to_string(new.accepted)?;
            let (at, user) = (now(), os_user());
            self.conn().execute(
                "INSERT INTO signoffs (at, user, notes, report_hash, verdict, last_run_id, accepted, report)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![at, user, new.notes, new.report_hash, new.verdict, new.last_run_id, accepted, new.report_json],
            )?;
            Ok(Ok(SignOff {
                id: self.conn().last_insert_rowid(),
                at,
                user,
                notes: new.notes.to_string(),
                report_hash: new.report_hash.to_string(),
                verdict: new.verdict.to_string(),
                last_run_id: new.last_run_id,
                accepted: new.accepted.to_vec(),
                voided_by_run: None,
            }))
        })
    }

    /// The newest sign-off, with the run that voided it if one came after.
    pub fn latest_signoff(&self) -> Result<Option<SignOff>> {
        let row = self
            .conn()
            .query_row(
                "SELECT id, at, user, notes, report_hash, verdict, last_run_id, accepted FROM signoffs
                 ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<i64>>(6)?,
                        r.get::<_, String>(7)?,
                    ))
                },
            )
            .optional()?;
        let Some((id, at, user, notes, report_hash, verdict, last_run_id, accepted)) = row else {
            return Ok(None);
        };
        let voided_by_run: Option<i64> = self.conn().query_row(
            "SELECT MIN(id) FROM runs WHERE id > ?1",
            [last_run_id.unwrap_or_default()],
            |r| r.get(0),
        )?;
        Ok(Some(SignOff {
            id,
            at,
            user,
            notes,
            report_hash,
            verdict,
            last_run_id,
            accepted: serde_json::from_str(&accepted)?,
            voided_by_run,
        }))
    }

    /// The report a sign-off approved, as the JSON it was hashed from.
    pub fn signoff_report(&self, id: i64) -> Result<Option<String>> {
        Ok(self.conn().query_row("SELECT report FROM signoffs WHERE id = ?1", [id], |r| r.get(0)).optional()?)
    }
}
