//! The conflict queue: held records with their field-level issues and the operator's corrections.

use super::{Store, now};
use crate::model::Issue;
use color_eyre::eyre::{Result, bail};
use indexmap::IndexMap;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueStatus {
    /// Waiting for an operator.
    Open,
    /// Corrected, waiting to be reprocessed.
    Fixed,
    /// Being edited by an operator.
    Claimed,
    /// Written on reprocess.
    Resolved,
    /// Skipped by an operator, with a reason.
    Skipped,
    /// Accepted as it is at sign-off.
    Accepted,
}

impl QueueStatus {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => Self::Open,
            "fixed" => Self::Fixed,
            "claimed" => Self::Claimed,
            "resolved" => Self::Resolved,
            "skipped" => Self::Skipped,
            "accepted" => Self::Accepted,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Fixed => "fixed",
            Self::Claimed => "claimed",
            Self::Resolved => "resolved",
            Self::Skipped => "skipped",
            Self::Accepted => "accepted",
        }
    }
    /// Still waiting for something to happen.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Open | Self::Fixed | Self::Claimed)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueItem {
    pub id: i64,
    pub object: String,
    pub source_id: String,
    /// 1 for the first row under the source id, 2 for a second one (see `pipeline::seen`).
    pub occurrence: u32,
    pub origin: String,
    pub run_id: i64,
    pub status: QueueStatus,
    pub reason: String,
    /// Raw source values, as read.
    pub source: IndexMap<String, Option<String>>,
    /// Mapped destination values, as the last attempt produced them.
    pub mapped: IndexMap<String, Option<String>>,
    pub issues: Vec<Issue>,
    /// Destination candidates of an ambiguous match: id → values.
    pub candidates: Option<serde_json::Value>,
    /// Operator corrections: destination field (or `source.FIELD`) → value.
    pub corrections: IndexMap<String, Option<String>>,
    pub waiting_on: Option<(String, String)>,
    pub created_at: String,
    pub updated_at: String,
    /// The console editing it, while its claim lasts (see [`Store::queue_claim`]).
    pub claimed_by: Option<String>,
    pub claimed_at: Option<String>,
    /// Why an operator skipped it, when skipped.
    pub skip_reason: Option<String>,
}

/// Which queue items to list.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    pub object: Option<String>,
    pub reason: Option<String>,
    /// Only items still waiting (open, fixed, claimed); otherwise every status.
    pub pending_only: bool,
    pub limit: Option<usize>,
    pub offset: usize,
}

/// A record an operator skipped from the queue.
#[derive(Debug, Clone)]
pub struct OperatorSkip {
    pub queue_id: i64,
    /// The source row as it was queued (JSON object of the source fields).
    pub source: String,
    pub reason: Option<String>,
}

pub(super) const COLUMNS: &str = "id, object, source_id, origin, run_id, status, reason, source, mapped, issues, candidates, \
                       corrections, waiting_object, waiting_source_id, created_at, updated_at, claimed_by, claimed_at, \
                       occurrence, skip_reason";

pub(super) fn item(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueueItem> {
    let json = |i: usize| -> rusqlite::Result<String> { r.get(i) };
    let parse_err = |i: usize, e: serde_json::Error| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    };
    let status: String = r.get(5)?;
    let waiting_object: Option<String> = r.get(12)?;
    let waiting_source: Option<String> = r.get(13)?;
    Ok(QueueItem {
        id: r.get(0)?,
        object: r.get(1)?,
        source_id: r.get(2)?,
        origin: r.get(3)?,
        run_id: r.get(4)?,
        status: QueueStatus::parse(&status).unwrap_or(QueueStatus::Open),
        reason: r.get(6)?,
        source: serde_json::from_str(&json(7)?).map_err(|e| parse_err(7, e))?,
        mapped: serde_json::from_str(&json(8)?).map_err(|e| parse_err(8, e))?,
        issues: serde_json::from_str(&json(9)?).map_err(|e| parse_err(9, e))?,
        candidates: r
            .get::<_, Option<String>>(10)?
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| parse_err(10, e))?,
        corrections: serde_json::from_str(&json(11)?).map_err(|e| parse_err(11, e))?,
        waiting_on: waiting_object.zip(waiting_source),
        created_at: r.get(14)?,
        updated_at: r.get(15)?,
        claimed_by: r.get(16)?,
        claimed_at: r.get(17)?,
        occurrence: r.get::<_, i64>(18)?.max(1) as u32,
        skip_reason: r.get(19)?,
    })
}

impl QueueItem {
    /// What a field holds now: the operator's correction, else the mapped value (`source.FIELD`:
    /// the source value; `@match`: the decision, if any).
    pub fn value_of(&self, field: &str) -> Option<String> {
        if let Some(corrected) = self.corrections.get(field) {
            return corrected.clone();
        }
        match field.strip_prefix("source.") {
            Some(f) => self.source.get(f).cloned().flatten(),
            None => self.mapped.get(field).cloned().flatten(),
        }
    }

    /// Whether the field already holds `value` now, blanks alike (empty, spaces or none).
    pub fn already_holds(&self, field: &str, value: Option<&str>) -> bool {
        let blank = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        blank(self.value_of(field).as_deref()) == blank(value)
    }

    /// Destination ids an operator may merge this record into (an ambiguous or undecided match).
    pub fn candidate_ids(&self) -> Vec<String> {
        match &self.candidates {
            Some(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            Some(serde_json::Value::Array(ids)) => {
                ids.iter().map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// A match decision names "new" or one of the record's candidates; anything else would merge a
/// record into an arbitrary destination record.
fn check_match_choice(item: &QueueItem, value: Option<&str>) -> Result<()> {
    use crate::model::{CREATE_NEW, MATCH_CHOICE};
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else { return Ok(()) };
    // A second row under a source id is not a match to decide: the id map holds one destination
    // record per source id, so it can be neither merged nor created beside the first.
    if item.reason == crate::model::Rule::DuplicateSourceId.as_str() {
        bail!(
            "queue item {} ({} {}) is a second row under a source id already read: {MATCH_CHOICE} does not apply. \
             Fix the export (give it its own id, or remove the repeat) and run again, or skip it; nothing was \
             corrected",
            item.id,
            item.object,
            crate::text::shown(&item.source_id)
        );
    }
    let ids = item.candidate_ids();
    if ids.is_empty() {
        bail!(
            "queue item {} ({} {}) has no match to decide; {MATCH_CHOICE} applies to ambiguous or undecided matches",
            item.id,
            item.object,
            item.source_id
        );
    }
    if v.starts_with(crate::model::NOT_A_RECORD) && ids.iter().any(|c| c == v) {
        bail!(
            "queue item {}: '{v}' is another row of the source, not a destination record: create this one anew \
             ({MATCH_CHOICE}={CREATE_NEW}), skip it, or fix the export; nothing was corrected",
            item.id
        );
    }
    if v == CREATE_NEW || ids.iter().any(|c| c == v) {
        return Ok(());
    }
    let real: Vec<&String> = ids.iter().filter(|c| !c.starts_with(crate::model::NOT_A_RECORD)).collect();
    if real.is_empty() {
        bail!(
            "queue item {}: '{v}' is not a record it can be merged into: it was held beside another row of the source \
             ({}), which has no destination record yet. Create it anew ({MATCH_CHOICE}={CREATE_NEW}), skip it, or \
             reprocess it once the other is written; nothing was corrected",
            item.id,
            ids.join(", ")
        );
    }
    bail!(
        "queue item {}: {MATCH_CHOICE} must be '{CREATE_NEW}' or one of its candidates ({}), not '{v}'; nothing was corrected",
        item.id,
        ids.join(", ")
    )
}

impl Store {
    pub fn queue_list(&self, filter: &QueueFilter) -> Result<Vec<QueueItem>> {
        let mut sql = format!("SELECT {COLUMNS} FROM queue WHERE 1=1");
        let mut args: Vec<String> = Vec::new();
        if let Some(o) = &filter.object {
            args.push(o.clone());
            sql.push_str(&format!(" AND object = ?{}", args.len()));
        }
        if let Some(r) = &filter.reason {
            args.push(r.clone());
            sql.push_str(&format!(" AND reason = ?{}", args.len()));
        }
        if filter.pending_only {
            sql.push_str(" AND status IN ('open', 'fixed', 'claimed')");
        }
        sql.push_str(&format!(
            " ORDER BY id LIMIT {} OFFSET {}",
            filter.limit.unwrap_or(usize::MAX >> 1),
            filter.offset
        ));
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), item)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Counts of pending items per (object, reason).
    pub fn queue_summary(&self) -> Result<Vec<(String, String, u64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT object, reason, COUNT(*) FROM queue WHERE status IN ('open', 'fixed', 'claimed')
             GROUP BY object, reason ORDER BY object, reason",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The pending items a run held (a preview's own, not those earlier runs left), with counts
    /// per (object, reason).
    pub fn queue_held_in_run(&self, run_id: i64) -> Result<Vec<QueueItem>> {
        let columns: Vec<String> = COLUMNS.split(',').map(|c| format!("q.{}", c.trim())).collect();
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {} FROM queue q WHERE q.status IN ('open', 'fixed', 'claimed') AND EXISTS
               (SELECT 1 FROM audit a WHERE a.run_id = ?1 AND a.object = q.object AND a.source_id = q.source_id
                AND a.outcome = 'queued')
             ORDER BY q.id",
            columns.join(", ")
        ))?;
        let rows = stmt.query_map([run_id], item)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn queue_item(&self, id: i64) -> Result<Option<QueueItem>> {
        let mut stmt = self.conn.prepare_cached(&format!("SELECT {COLUMNS} FROM queue WHERE id = ?1"))?;
        Ok(stmt.query_row([id], item).optional()?)
    }

    /// The operator's corrections of an object's records (source id → corrections): decisions
    /// that every later run re-applies, so a re-run never undoes the triage.
    pub fn corrections_for(&self, object: &str) -> Result<HashMap<String, IndexMap<String, Option<String>>>> {
        let mut stmt = self.conn.prepare(
            "SELECT source_id, corrections FROM queue
             WHERE object = ?1 AND occurrence = 1 AND corrections != '{}' AND status != 'skipped'",
        )?;
        let rows = stmt.query_map([object], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = HashMap::new();
        for row in rows {
            let (sid, json) = row?;
            let corrections = serde_json::from_str(&json)
                .map_err(|e| color_eyre::eyre::eyre!("corrections of {object} {sid} are unreadable: {e}"))?;
            out.insert(sid, corrections);
        }
        Ok(out)
    }

    /// The records an operator skipped, by (source id, row under that id): what the source row
    /// held then, so a later run keeps the skip only while the row is unchanged.
    pub fn skips_for(&self, object: &str) -> Result<HashMap<(String, u32), OperatorSkip>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, source_id, occurrence, source, skip_reason FROM queue WHERE object = ?1 AND status = 'skipped'",
        )?;
        let rows = stmt.query_map([object], |r| {
            Ok((
                (r.get::<_, String>(1)?, r.get::<_, i64>(2)?.max(1) as u32),
                OperatorSkip { queue_id: r.get(0)?, source: r.get(3)?, reason: r.get(4)? },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The source values (JSON) of each record's newest queue item that is still held or was
    /// skipped by an operator — first rows only: what the queue decided on.
    pub fn settled_sources(&self, object: &str) -> Result<HashMap<String, String>> {
        let mut stmt = self.conn.prepare(
            "SELECT source_id, source FROM queue WHERE object = ?1 AND occurrence <= 1
               AND status IN ('open', 'fixed', 'claimed', 'skipped') ORDER BY id",
        )?;
        let rows = stmt.query_map([object], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The source values (JSON) of records held for a person as possible matches (open or
    /// claimed, not corrected since; first rows only): a later run holds them again while their
    /// row is unchanged, instead of deciding them anew.
    pub fn held_for_review(&self, object: &str) -> Result<HashMap<String, String>> {
        let mut stmt = self.conn.prepare(
            "SELECT source_id, source FROM queue WHERE object = ?1 AND occurrence <= 1
               AND status IN ('open', 'claimed') AND reason = 'possible_match'",
        )?;
        let rows = stmt.query_map([object], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Source ids held (first occurrence) because their parent was not written, where that parent
    /// has a destination record now: a delta takes them again, so a parent written since (by a
    /// reprocess, or this delta) releases them.
    pub fn released_by_parents(&self, object: &str) -> Result<std::collections::HashSet<String>> {
        let mut stmt = self.conn.prepare(
            "SELECT q.source_id FROM queue q
             WHERE q.object = ?1 AND q.occurrence <= 1 AND q.status IN ('open', 'fixed', 'claimed')
               AND q.reason IN ('parent_missing', 'parent_not_written')
               AND EXISTS (SELECT 1 FROM id_map m WHERE m.object = q.waiting_object AND m.source_id = q.waiting_source_id)",
        )?;
        let rows = stmt.query_map([object], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Pending items held until the given parent record is written.
    pub fn queue_waiting_on(&self, object: &str, source_id: &str) -> Result<Vec<i64>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM queue WHERE waiting_object = ?1 AND waiting_source_id = ?2
             AND status IN ('open', 'fixed', 'claimed') ORDER BY id",
        )?;
        let ids = stmt.query_map(params![object, source_id], |r| r.get(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(ids)
    }

    /// Stores corrections on a pending item (they apply at the next reprocess) and audits them.
    pub fn queue_correct(&self, id: i64, changes: &[(String, Option<String>)]) -> Result<QueueItem> {
        let Some(mut it) = self.queue_item(id)? else { bail!("no queue item {id}") };
        if !it.status.is_pending() {
            bail!("queue item {id} is {} — only open items can be corrected", it.status.as_str());
        }
        for (field, value) in changes {
            let before = it.corrections.insert(field.clone(), value.clone());
            self.remember_correction(id, field, before, value.as_deref())?;
        }
        let corrections = serde_json::to_string(&it.corrections)?;
        self.conn.execute(
            "UPDATE queue SET corrections = ?2, status = 'fixed', updated_at = ?3 WHERE id = ?1",
            params![id, corrections, now()],
        )?;
        let detail = changes
            .iter()
            .map(|(f, v)| {
                format!("{f} = {}", v.as_deref().map(|s| format!("{s:?}")).unwrap_or_else(|| "(blank)".into()))
            })
            .collect::<Vec<_>>()
            .join(", ");
        self.audit_action(it.run_id, &it.object, (&it.source_id, it.occurrence), "corrected", &detail)?;
        it.status = QueueStatus::Fixed;
        Ok(it)
    }

    /// Corrects several pending items at once: every field is checked on every item first, and
    /// all are corrected in one transaction, or none. `was` holds what the operator saw in the
    /// fields they correct (field, value): a correction of a value that has changed since —
    /// another operator corrected it first — is refused, never silently overwritten.
    pub fn queue_correct_many(
        &self,
        ids: &[i64],
        changes: &[(String, Option<String>)],
        was: &[(String, Option<String>)],
    ) -> Result<usize> {
        self.immediate(|| {
            for &id in ids {
                self.check_correction(id, changes, was)?;
            }
            ids.iter().try_for_each(|&id| self.queue_correct(id, changes).map(|_| ()))?;
            Ok(ids.len())
        })
    }

    fn check_correction(
        &self,
        id: i64,
        changes: &[(String, Option<String>)],
        was: &[(String, Option<String>)],
    ) -> Result<()> {
        {
            let Some(item) = self.queue_item(id)? else { bail!("no queue item {id}") };
            if !item.status.is_pending() {
                bail!("queue item {id} is {} — only held records can be corrected", item.status.as_str());
            }
            for (field, seen) in was {
                let now = item.value_of(field);
                if now.as_deref().map(str::trim).filter(|v| !v.is_empty())
                    != seen.as_deref().map(str::trim).filter(|v| !v.is_empty())
                {
                    bail!(
                        "queue item {id}: {field} changed since you looked (it was {}, it is now {}); nothing was \
                         corrected — look again and decide on the value it holds now",
                        crate::text::shown_opt(seen.as_deref()),
                        crate::text::shown_opt(now.as_deref())
                    );
                }
            }
            for (field, value) in changes {
                if field == crate::model::MATCH_CHOICE {
                    check_match_choice(&item, value.as_deref())?;
                    continue;
                }
                let known = match field.strip_prefix("source.") {
                    Some(f) => item.source.contains_key(f),
                    None => item.mapped.contains_key(field),
                };
                if !known {
                    let fields: Vec<&str> = item.mapped.keys().map(String::as_str).collect();
                    bail!(
                        "{} has no field '{field}' (fields: {}; source fields as source.NAME); nothing was corrected",
                        item.object,
                        fields.join(", ")
                    );
                }
            }
        }
        Ok(())
    }

    /// Skips a pending item with a reason, as a run of its own: the record's outcome is
    /// `skipped`, counted and audited, in one transaction.
    pub fn skip_queued(&self, id: i64, reason: &str, config_hash: &str) -> Result<(i64, QueueItem)> {
        let (run_id, mut items) = self.skip_queued_many(&[id], reason, config_hash)?;
        let item = items.pop().ok_or_else(|| color_eyre::eyre::eyre!("no queue item {id}"))?;
        Ok((run_id, item))
    }

    /// Skips several held records in one run and one transaction: every id is checked first
    /// (exists, still open), so either all are skipped or none.
    pub fn skip_queued_many(&self, ids: &[i64], reason: &str, config_hash: &str) -> Result<(i64, Vec<QueueItem>)> {
        self.immediate(|| -> Result<(i64, Vec<QueueItem>)> {
            let mut per_object: IndexMap<String, i64> = IndexMap::new();
            for &id in ids {
                let Some(item) = self.queue_item(id)? else { bail!("no queue item {id}") };
                if !item.status.is_pending() {
                    bail!("queue item {id} is {} — only open items can be skipped", item.status.as_str());
                }
                *per_object.entry(item.object).or_default() += 1;
            }
            let mut items = Vec::with_capacity(ids.len());
            let run_id = self.operator_run(super::RunKind::Skip, config_hash, &per_object, "skipped", |run_id| {
                for &id in ids {
                    items.push(self.queue_skip(id, reason, run_id)?);
                }
                Ok(())
            })?;
            Ok((run_id, items))
        })
    }

    /// A run of an operator's own decision (a skip, an unskip) over `per_object` records, inside
    /// the caller's transaction: begun, `act` done under its id, each object's records counted
    /// as read and as `outcome` (a counter column of `run_objects`), finished.
    pub(super) fn operator_run(
        &self,
        kind: super::RunKind,
        config_hash: &str,
        per_object: &IndexMap<String, i64>,
        outcome: &'static str,
        act: impl FnOnce(i64) -> Result<()>,
    ) -> Result<i64> {
        let run_id = self.begin_run(kind, &super::os_user(), config_hash)?;
        for (position, object) in per_object.keys().enumerate() {
            self.begin_object(run_id, object, position, None)?;
        }
        act(run_id)?;
        for (object, n) in per_object {
            self.conn.execute(
                &format!(
                    "UPDATE run_objects SET extracted = ?3, {outcome} = ?3, done = 1 WHERE run_id = ?1 AND object = ?2"
                ),
                params![run_id, object, n],
            )?;
        }
        self.finish_run(run_id, "completed", None)?;
        Ok(run_id)
    }

    /// Marks a pending item skipped and audits the reason (inside `skip_queued`'s run).
    fn queue_skip(&self, id: i64, reason: &str, run_id: i64) -> Result<QueueItem> {
        let Some(mut it) = self.queue_item(id)? else { bail!("no queue item {id}") };
        if !it.status.is_pending() {
            bail!("queue item {id} is {} — only open items can be skipped", it.status.as_str());
        }
        self.conn.execute(
            "UPDATE queue SET status = 'skipped', skip_reason = ?3, updated_at = ?2 WHERE id = ?1",
            params![id, now(), reason],
        )?;
        self.audit_action(run_id, &it.object, (&it.source_id, it.occurrence), "skipped", reason)?;
        it.status = QueueStatus::Skipped;
        Ok(it)
    }
}
