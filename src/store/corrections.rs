//! Undo in the conflict queue: every correction keeps what the field held before it, so an
//! operator can take a mistaken (bulk) correction back, audited; and a skip can be taken back,
//! holding the record again. A correction a reprocess has already written is never undone
//! silently: the store says what was written, and leaves it.

use super::{QueueItem, QueueStatus, RunKind, Store, now, os_user};
use color_eyre::eyre::{Result, bail};
use rusqlite::{OptionalExtension, params};

/// What an undo did, record by record.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Undone {
    /// (queue id, field, the value it holds again, the value taken back).
    pub restored: Vec<(i64, String, Option<String>, Option<String>)>,
    /// Records left as they are, with why (written already, skipped, nothing to undo).
    pub left: Vec<(i64, String)>,
}

impl Undone {
    /// "dealstage back to (blank) on 34 records; 2 left: #35 was written …".
    pub fn describe(&self) -> String {
        let mut out = match self.restored.as_slice() {
            [] => "nothing undone".to_string(),
            [(id, field, back, _)] => {
                format!("#{id}: {field} back to {}", crate::text::quoted(back.as_deref()))
            }
            many => {
                let mut fields: Vec<&str> = many.iter().map(|(_, f, _, _)| f.as_str()).collect();
                fields.sort_unstable();
                fields.dedup();
                format!(
                    "undid the last correction of {} records ({})",
                    crate::text::thousands(many.len() as u64),
                    fields.join(", ")
                )
            }
        };
        if let Some((_, why)) = self.left.first() {
            out.push_str(&format!("; {} left as they are — {why}", self.left.len()));
            if self.left.len() > 1 {
                out.push_str(" …");
            }
        }
        out
    }
}

struct Entry {
    id: i64,
    field: String,
    had_before: bool,
    before: Option<String>,
    after: Option<String>,
}

impl Store {
    /// Notes a correction about to be stored: what the field held before (`None`: no correction).
    pub(crate) fn remember_correction(
        &self,
        queue_id: i64,
        field: &str,
        before: Option<Option<String>>,
        after: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO correction_history (queue_id, field, had_before, before, after, at, user)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![queue_id, field, before.is_some(), before.flatten(), after, now(), os_user()],
        )?;
        Ok(())
    }

    /// The newest correction of a record not taken back (of `field`, when given).
    fn last_correction(&self, queue_id: i64, field: Option<&str>) -> Result<Option<Entry>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, field, had_before, before, after FROM correction_history
             WHERE queue_id = ?1 AND undone_at IS NULL AND (?2 IS NULL OR field = ?2) ORDER BY id DESC LIMIT 1",
        )?;
        Ok(stmt
            .query_row(params![queue_id, field], |r| {
                Ok(Entry {
                    id: r.get(0)?,
                    field: r.get(1)?,
                    had_before: r.get(2)?,
                    before: r.get(3)?,
                    after: r.get(4)?,
                })
            })
            .optional()?)
    }

    /// Takes back the newest correction of each record (of `field` only, when given): the field
    /// holds again what it held before, audited as `uncorrected`. A record already written, or
    /// skipped, is left with the reason. One transaction.
    pub fn queue_undo(&self, ids: &[i64], field: Option<&str>) -> Result<Undone> {
        self.immediate(|| {
            let mut done = Undone::default();
            for &id in ids {
                let Some(item) = self.queue_item(id)? else { bail!("no queue item {id}") };
                let entry = self.last_correction(id, field)?;
                if let Some(why) = not_undoable(&item, entry.as_ref(), field) {
                    done.left.push((id, why));
                    continue;
                }
                let (entry_id, field, back, undid) = match entry {
                    Some(e) => (Some(e.id), e.field, e.had_before.then_some(e.before), e.after),
                    // A correction made before history was kept: taken off.
                    None => {
                        let field = field.unwrap_or_default().to_string();
                        let undid = item.corrections.get(&field).cloned().flatten();
                        (None, field, None, undid)
                    }
                };
                self.restore(&item, &field, back.clone())?;
                if let Some(entry_id) = entry_id {
                    self.conn.execute(
                        "UPDATE correction_history SET undone_at = ?2 WHERE id = ?1",
                        params![entry_id, now()],
                    )?;
                }
                // What the field holds now: the earlier correction, or the value as mapped (read).
                let holds = match &back {
                    Some(v) => v.clone(),
                    None => match field.strip_prefix("source.") {
                        Some(f) => item.source.get(f).cloned().flatten(),
                        None => item.mapped.get(&field).cloned().flatten(),
                    },
                };
                let detail = format!(
                    "{field} back to {}{} (took back {})",
                    crate::text::quoted(holds.as_deref()),
                    if back.is_none() { ", as mapped" } else { "" },
                    crate::text::quoted(undid.as_deref())
                );
                self.audit_action(
                    item.run_id,
                    &item.object,
                    (&item.source_id, item.occurrence),
                    "uncorrected",
                    &detail,
                )?;
                done.restored.push((id, field, holds, undid));
            }
            Ok(done)
        })
    }

    /// Sets a field's correction back (`None`: no correction at all); a record left without
    /// corrections is open again.
    fn restore(&self, item: &QueueItem, field: &str, back: Option<Option<String>>) -> Result<()> {
        let mut corrections = item.corrections.clone();
        match back {
            Some(v) => {
                corrections.insert(field.to_string(), v);
            }
            None => {
                corrections.shift_remove(field);
            }
        }
        let status = match item.status {
            QueueStatus::Fixed if corrections.is_empty() => QueueStatus::Open,
            other => other,
        };
        self.conn.execute(
            "UPDATE queue SET corrections = ?2, status = ?3, updated_at = ?4 WHERE id = ?1",
            params![item.id, serde_json::to_string(&corrections)?, status.as_str(), now()],
        )?;
        Ok(())
    }

    /// Takes operators' skips back: the records are held again (their outcome `queued`, in a run
    /// of its own), and later runs process them. Every id is checked first: all or none.
    pub fn unskip_many(&self, ids: &[i64], config_hash: &str) -> Result<(i64, Vec<QueueItem>)> {
        self.immediate(|| {
            let mut items = Vec::with_capacity(ids.len());
            let mut per_object: indexmap::IndexMap<String, i64> = indexmap::IndexMap::new();
            for &id in ids {
                let Some(item) = self.queue_item(id)? else { bail!("no queue item {id}") };
                if item.status != QueueStatus::Skipped {
                    bail!(
                        "queue item {id} ({} {}) is {}, not skipped; nothing was unskipped",
                        item.object,
                        crate::text::shown(&item.source_id),
                        item.status.as_str()
                    );
                }
                *per_object.entry(item.object.clone()).or_default() += 1;
                items.push(item);
            }
            let run_id = self.operator_run(RunKind::Unskip, config_hash, &per_object, "queued", |run_id| {
                for item in &mut items {
                    let status = if item.corrections.is_empty() { QueueStatus::Open } else { QueueStatus::Fixed };
                    self.conn.execute(
                        "UPDATE queue SET status = ?2, skip_reason = NULL, updated_at = ?3 WHERE id = ?1",
                        params![item.id, status.as_str(), now()],
                    )?;
                    let detail = format!(
                        "unskipped: held again (it was skipped: {})",
                        item.skip_reason.as_deref().map(crate::text::shown).unwrap_or_else(|| "no reason kept".into())
                    );
                    self.audit_action(run_id, &item.object, (&item.source_id, item.occurrence), "queued", &detail)?;
                    item.status = status;
                    item.skip_reason = None;
                }
                Ok(())
            })?;
            Ok((run_id, items))
        })
    }
}

/// Why a record's correction cannot be taken back, if it cannot.
fn not_undoable(item: &QueueItem, entry: Option<&Entry>, field: Option<&str>) -> Option<String> {
    match item.status {
        QueueStatus::Resolved => {
            let what = match entry {
                Some(e) => format!("{} = {}", e.field, crate::text::shown_opt(e.after.as_deref())),
                None => "its corrections".into(),
            };
            Some(format!(
                "#{} ({} {}) was already written with {what}: undoing would not change the destination \
                 (its audit log names the run; roll that run back, or correct it there)",
                item.id,
                item.object,
                crate::text::shown(&item.source_id)
            ))
        }
        QueueStatus::Skipped | QueueStatus::Accepted => Some(format!(
            "#{} is {}: `cutover queue unskip {}` holds it again first",
            item.id,
            item.status.as_str(),
            item.id
        )),
        _ if entry.is_none() && field.is_none_or(|f| !item.corrections.contains_key(f)) => Some(format!(
            "#{} has no correction{} to undo",
            item.id,
            field.map(|f| format!(" of {f}")).unwrap_or_default()
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{QueueFilter, Store};

    fn store_with_held(n: usize) -> (tempfile::TempDir, Store, Vec<i64>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("p.state.db")).expect("store");
        let run = store.begin_run(RunKind::Full, "op", "h").expect("run");
        store.begin_object(run, "deals", 0, None).expect("object");
        for i in 0..n {
            let issue = crate::model::Issue {
                field: "dealstage".into(),
                rule: crate::model::Rule::NoTranslation,
                value: Some("Partner".into()),
                message: "no entry".into(),
                suggestion: None,
            };
            let mapped: indexmap::IndexMap<String, Option<String>> =
                [("dealstage".to_string(), None), ("dealname".to_string(), Some(format!("Deal {i}")))]
                    .into_iter()
                    .collect();
            store
                .conn
                .execute(
                    "INSERT INTO queue (object, source_id, origin, run_id, status, reason, source, mapped, issues,
                                        created_at, updated_at)
                     VALUES ('deals', ?1, 'deals.csv', ?2, 'open', 'no_translation', '{}', ?3, ?4, '', '')",
                    params![
                        format!("{}", 100 + i),
                        run,
                        serde_json::to_string(&mapped).expect("json"),
                        serde_json::to_string(&vec![issue]).expect("json")
                    ],
                )
                .expect("held");
            store.audit_action(run, "deals", (&format!("{}", 100 + i), 1), "queued", "").expect("audit");
        }
        let ids = store
            .queue_list(&QueueFilter { pending_only: true, ..Default::default() })
            .expect("list")
            .iter()
            .map(|i| i.id)
            .collect();
        (dir, store, ids)
    }

    #[test]
    fn a_bulk_correction_is_taken_back_field_by_field_and_audited() {
        let (_d, store, ids) = store_with_held(3);
        store.queue_correct_many(&ids[..1], &[("dealstage".into(), Some("won".into()))], &[]).expect("first");
        store.queue_correct_many(&ids, &[("dealstage".into(), Some("James3".into()))], &[]).expect("mistake");
        let undone = store.queue_undo(&ids, None).expect("undo");
        assert_eq!(undone.restored.len(), 3, "{undone:?}");
        let first = store.queue_item(ids[0]).expect("read").expect("item");
        assert_eq!(first.value_of("dealstage").as_deref(), Some("won"), "the correction before the mistake");
        assert_eq!(first.status, QueueStatus::Fixed);
        let second = store.queue_item(ids[1]).expect("read").expect("item");
        assert!(second.corrections.is_empty() && second.status == QueueStatus::Open, "{second:?}");
        // Again: the first record's own correction goes too; the others have nothing left.
        let again = store.queue_undo(&ids, None).expect("undo");
        assert_eq!(again.restored.len(), 1);
        assert_eq!(again.left.len(), 2);
        assert!(again.describe().contains("has no correction to undo"), "{}", again.describe());
        let audited: i64 = store
            .conn
            .query_row("SELECT COUNT(*) FROM audit WHERE outcome = 'uncorrected'", [], |r| r.get(0))
            .expect("count");
        assert_eq!(audited, 4);
        // Back to the value as mapped, and said so (not "blank").
        store.queue_correct_many(&ids[..1], &[("dealname".into(), Some("X".into()))], &[]).expect("fix");
        let back = store.queue_undo(&ids[..1], Some("dealname")).expect("undo");
        assert_eq!(back.restored[0].2.as_deref(), Some("Deal 0"));
        assert!(back.describe().contains("dealname back to \"Deal 0\""), "{}", back.describe());
        // Taking corrections back is no outcome: the records are still only held.
        assert!(
            store
                .latest_outcomes("deals")
                .expect("outcomes")
                .values()
                .all(|o| *o == Some(crate::model::Outcome::Queued))
        );
    }

    #[test]
    fn a_written_record_keeps_its_correction_and_a_skip_is_taken_back() {
        let (_d, store, ids) = store_with_held(2);
        store.queue_correct_many(&ids, &[("dealstage".into(), Some("won".into()))], &[]).expect("fix");
        store.conn.execute("UPDATE queue SET status = 'resolved' WHERE id = ?1", [ids[0]]).expect("written");
        let undone = store.queue_undo(&ids, Some("dealstage")).expect("undo");
        assert_eq!(undone.restored.len(), 1);
        assert!(undone.left[0].1.contains("was already written with dealstage = won"), "{:?}", undone.left);
        store.skip_queued(ids[1], "junk", "h").expect("skip");
        let skipped = store.queue_item(ids[1]).expect("read").expect("item");
        assert_eq!(skipped.skip_reason.as_deref(), Some("junk"), "`queue show` has the reason to show");
        let err = store.unskip_many(&ids, "h").expect_err("one is not skipped: none unskipped");
        assert!(err.to_string().contains("not skipped"), "{err}");
        store.unskip_many(&ids[1..], "h").expect("unskip");
        let item = store.queue_item(ids[1]).expect("read").expect("item");
        assert_eq!(item.status, QueueStatus::Open);
        assert_eq!(item.skip_reason, None);
        assert_eq!(
            store.latest_outcomes("deals").expect("o").get(&("101".to_string(), 1)),
            Some(&Some(crate::model::Outcome::Queued))
        );
        assert!(store.skips_for("deals").expect("skips").is_empty(), "later runs process it again");
    }
}
