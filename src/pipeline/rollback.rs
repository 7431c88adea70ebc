//! Rollback of a run: the records it created are deleted and the records it updated get their
//! before-images back, then their id-map entries are unlinked — children before parents, a batch
//! at a time, each batch audited record by record in one store transaction.
//!
//! A destination record changed since Cutover wrote it (by a person, or by a later run) is not
//! touched: it is listed for a decision — `anyway` rolls it back regardless, `keep` leaves it
//! (audited as kept). A rollback killed midway is simply run again: records already deleted
//! or restored are recognised and only unlinked.

use super::Engine;
use super::plan::ObjectPlan;
use crate::compare::same;
use crate::connect::Change;
use crate::model::{FieldType, Value};
use crate::store::rollback::{RolledBack, Written};
use crate::store::{RunKind, RunLock, Store, os_user};
use color_eyre::eyre::{Result, WrapErr, eyre};
use indexmap::IndexMap;
use std::collections::{HashMap, HashSet};

const CHUNK: usize = 500;

/// Per parent object: destination ids a record left in place points at, and which record.
type Protected = HashMap<String, HashMap<String, String>>;

#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    /// Only this object.
    pub object: Option<String>,
    /// Say what would happen; change nothing.
    pub dry_run: bool,
    /// Source ids to roll back even though the destination changed them since.
    pub anyway: HashSet<String>,
    /// Leave every changed record as it is (audited as kept) instead of listing it.
    pub keep: bool,
}

/// A record the destination changed since Cutover wrote it: field, what Cutover wrote, what is there now.
#[derive(Debug, Clone, PartialEq)]
pub struct Changed {
    pub source_id: String,
    pub dest_id: String,
    pub why: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectRollback {
    pub object: String,
    pub deleted: u64,
    pub restored: u64,
    /// Updated records whose update changed nothing: only unlinked.
    pub nothing_to_restore: u64,
    /// Already deleted or restored (an earlier, interrupted rollback): only unlinked.
    pub already_done: u64,
    /// No longer linked: rolled back before.
    pub not_linked: u64,
    pub kept: Vec<Changed>,
    /// Changed since written, waiting for a decision (anyway / keep).
    pub undecided: Vec<Changed>,
    pub failed: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollbackReport {
    pub of_run: i64,
    /// The rollback's own run (none for a dry run).
    pub run_id: Option<i64>,
    pub dry_run: bool,
    pub objects: Vec<ObjectRollback>,
}

impl RollbackReport {
    pub fn undecided(&self) -> usize {
        self.objects.iter().map(|o| o.undecided.len()).sum()
    }
}

fn lock(store: &std::sync::Mutex<Store>) -> Result<std::sync::MutexGuard<'_, Store>> {
    store.lock().map_err(|_| eyre!("state store lock poisoned"))
}

fn image(json: Option<&str>) -> Result<Option<IndexMap<String, Value>>> {
    json.map(|j| serde_json::from_str(j).wrap_err("a stored image is damaged")).transpose()
}

pub async fn rollback(engine: &Engine, of_run: i64, opts: &RollbackOptions) -> Result<RollbackReport> {
    let _lock = RunLock::acquire(engine.store_path())?;
    let run = lock(engine.store())?
        .run(of_run)?
        .ok_or_else(|| eyre!("there is no run {of_run} (`cutover runs` lists them)"))?;
    if !matches!(run.kind.as_str(), "full" | "reprocess" | "delta") {
        return Err(eyre!("run {of_run} is a {} run: only full, delta and reprocess runs write records", run.kind));
    }
    let prepared = engine.prepare().await?;
    if let Some(o) = &opts.object
        && !prepared.plans.iter().any(|p| p.name == *o)
    {
        return Err(eyre!("the project has no object '{o}'"));
    }
    let run_id = if opts.dry_run {
        None
    } else {
        Some(lock(engine.store())?.begin_run(RunKind::Rollback, &os_user(), &engine.project.hash)?)
    };
    let mut report = RollbackReport { of_run, run_id, dry_run: opts.dry_run, objects: Vec::new() };
    let result = async {
        // Children before parents: a parent is never deleted under its children, and a parent
        // a kept (or undecided) child still points at is left with it.
        let mut protected: Protected = HashMap::new();
        for plan in prepared.plans.iter().rev() {
            if opts.object.as_ref().is_some_and(|o| *o != plan.name) {
                continue;
            }
            report.objects.push(rollback_object(engine, plan, of_run, run_id, opts, &mut protected).await?);
        }
        Ok::<(), color_eyre::Report>(())
    }
    .await;
    if let Some(id) = run_id {
        let store = lock(engine.store())?;
        match &result {
            Ok(()) => {
                let d: u64 = report.objects.iter().map(|o| o.deleted).sum();
                let r: u64 = report.objects.iter().map(|o| o.restored).sum();
                let summary = format!(
                    "rolled back run {of_run}: {d} deleted, {r} restored, {} left for a decision",
                    report.undecided()
                );
                store.finish_run(id, "completed", Some(&summary))?;
            }
            Err(e) => store.finish_run(id, "failed", Some(&format!("{e:#}")))?,
        }
    }
    result.map(|()| report)
}

async fn rollback_object(
    engine: &Engine,
    plan: &ObjectPlan,
    of_run: i64,
    run_id: Option<i64>,
    opts: &RollbackOptions,
    protected: &mut Protected,
) -> Result<ObjectRollback> {
    let links: Vec<(&str, &str)> =
        plan.rules.iter().filter_map(|r| r.parent.as_deref().map(|p| (r.dest.as_str(), p))).collect();
    let mine = protected.remove(&plan.name).unwrap_or_default();
    let mut out = ObjectRollback { object: plan.name.clone(), ..Default::default() };
    let targets = {
        let store = lock(engine.store())?;
        tokio::task::block_in_place(|| store.written_by_run(of_run, &plan.name))?
    };
    // One row per record (its last write in that run).
    let mut seen = HashSet::new();
    let mut targets: Vec<Written> = targets.into_iter().rev().filter(|t| seen.insert(t.source_id.clone())).collect();
    targets.reverse();
    let fields: Vec<String> = plan.dest_fields.to_vec();
    let types: HashMap<&str, FieldType> = plan.schema.fields.iter().map(|f| (f.name.as_str(), f.ty)).collect();
    let ty = |f: &str| types.get(f).copied().unwrap_or(FieldType::Text);
    let dest = engine.destination();
    let mut deleted_ids: HashSet<String> = HashSet::new();
    for chunk in targets.chunks(CHUNK) {
        let mut ids: Vec<String> = chunk.iter().filter_map(|t| t.linked.as_ref().map(|l| l.0.clone())).collect();
        ids.sort_unstable();
        ids.dedup();
        let current = if ids.is_empty() { HashMap::new() } else { dest.read(&plan.dest_object, &ids, &fields).await? };
        let now_of = |dest_id: &str| -> Option<IndexMap<&str, Option<&str>>> {
            current
                .get(dest_id)
                .map(|vals| fields.iter().map(String::as_str).zip(vals.iter().map(|v| v.as_deref())).collect())
        };
        let mut records: Vec<RolledBack> = Vec::new();
        let mut deletes: Vec<(String, String)> = Vec::new(); // (source id, dest id)
        let mut restores: Vec<(String, Change, String)> = Vec::new(); // (source id, change, detail)
        for t in chunk {
            let Some((linked_id, last_run, written)) = &t.linked else {
                out.not_linked += 1;
                continue;
            };
            let unlink = |detail: String| RolledBack {
                source_id: t.source_id.clone(),
                dest_id: linked_id.clone(),
                outcome: "rolled_back",
                detail,
                before_image: None,
            };
            let Some(now) = now_of(linked_id) else {
                out.already_done += 1;
                records.push(unlink("already gone from the destination: unlinked".into()));
                continue;
            };
            let before = image(t.before_image.as_deref())?;
            // An interrupted rollback already put the before-image back: only unlink.
            if t.outcome != "created"
                && let Some(b) = &before
                && b.iter().all(|(f, v)| now.get(f.as_str()).is_some_and(|n| same(ty(f), v.as_deref(), *n)))
                && written.as_deref().is_some_and(|w| w != "{}")
            {
                let wrote = image(written.as_deref())?.unwrap_or_default();
                let differs_from_write = b.iter().any(|(f, _)| {
                    wrote.get(f).is_some_and(|w| !same(ty(f), w.as_deref(), now.get(f.as_str()).copied().flatten()))
                });
                if differs_from_write {
                    out.already_done += 1;
                    records.push(unlink("before-image already restored: unlinked".into()));
                    continue;
                }
            }
            // Changed since Cutover wrote it?
            let mut why = Vec::new();
            if *linked_id != t.dest_id {
                why.push(format!("now linked to destination record {linked_id}"));
            }
            if *last_run != of_run {
                why.push(format!("written again by run {last_run} since"));
            }
            if let Some(child) = mine.get(linked_id) {
                why.push(format!("{child}, left in place, points at it"));
            }
            match image(written.as_deref())? {
                None => why.push("written before Cutover kept what it wrote: cannot tell whether it changed".into()),
                Some(wrote) => {
                    for (f, w) in &wrote {
                        let n = now.get(f.as_str()).copied().flatten();
                        if !same(ty(f), w.as_deref(), n) {
                            why.push(format!(
                                "{f} is {} (Cutover wrote {})",
                                crate::text::shown_opt(n),
                                crate::text::shown_opt(w.as_deref())
                            ));
                        }
                    }
                }
            }
            if !why.is_empty() && !opts.anyway.contains(&t.source_id) {
                let changed =
                    Changed { source_id: t.source_id.clone(), dest_id: linked_id.clone(), why: why.join("; ") };
                for (field, parent) in &links {
                    if let Some(Some(p)) = now.get(field) {
                        protected
                            .entry(parent.to_string())
                            .or_default()
                            .insert(p.to_string(), format!("{} {}", plan.name, crate::text::shown(&t.source_id)));
                    }
                }
                if opts.keep {
                    records.push(RolledBack {
                        source_id: t.source_id.clone(),
                        dest_id: linked_id.clone(),
                        outcome: "rollback_kept",
                        detail: format!("kept: changed in the destination since Cutover wrote it ({})", changed.why),
                        before_image: None,
                    });
                    out.kept.push(changed);
                } else {
                    out.undecided.push(changed);
                }
                continue;
            }
            let snapshot = |names: &mut dyn Iterator<Item = &str>| -> Result<String> {
                let m: IndexMap<&str, Option<&str>> = names.map(|f| (f, now.get(f).copied().flatten())).collect();
                Ok(serde_json::to_string(&m)?)
            };
            if t.outcome == "created" {
                if deleted_ids.insert(linked_id.clone()) {
                    deletes.push((t.source_id.clone(), linked_id.clone()));
                }
                records.push(RolledBack {
                    before_image: Some(snapshot(&mut fields.iter().map(String::as_str))?),
                    ..unlink("deleted".into())
                });
            } else if deleted_ids.contains(linked_id) {
                records.push(unlink("its record was deleted with the record that created it".into()));
            } else {
                match before.filter(|b| !b.is_empty()) {
                    None => {
                        out.nothing_to_restore += 1;
                        records.push(unlink("the update changed nothing: unlinked".into()));
                    }
                    Some(b) => {
                        let detail = format!("restored {}", b.keys().cloned().collect::<Vec<_>>().join(", "));
                        let snap = snapshot(&mut b.keys().map(String::as_str))?;
                        restores.push((
                            t.source_id.clone(),
                            Change { dest_id: linked_id.clone(), values: b.into_iter().collect() },
                            detail.clone(),
                        ));
                        records.push(RolledBack { before_image: Some(snap), ..unlink(detail) });
                    }
                }
            }
        }
        if opts.dry_run {
            out.deleted += deletes.len() as u64;
            out.restored += restores.len() as u64;
            continue;
        }
        // Destination first; a record it refuses stays linked and is reported.
        let mut refused: HashMap<String, String> = HashMap::new();
        if !deletes.is_empty() {
            let ids: Vec<String> = deletes.iter().map(|(_, d)| d.clone()).collect();
            let results = dest.delete(&plan.dest_object, &ids).await?;
            for ((sid, _), r) in deletes.iter().zip(results) {
                match r {
                    Ok(_) => out.deleted += 1,
                    Err(msg) => {
                        refused.insert(sid.clone(), msg);
                    }
                }
            }
        }
        if !restores.is_empty() {
            let changes: Vec<Change> = restores.iter().map(|(_, c, _)| c.clone()).collect();
            let results = dest.update(&plan.dest_object, &changes).await?;
            for ((sid, _, _), r) in restores.iter().zip(results) {
                match r {
                    Ok(_) => out.restored += 1,
                    Err(msg) => {
                        refused.insert(sid.clone(), msg);
                    }
                }
            }
        }
        records.retain(|r| match refused.get(&r.source_id) {
            Some(msg) => {
                out.failed.push((r.source_id.clone(), msg.clone()));
                false
            }
            None => true,
        });
        if let Some(id) = run_id {
            let store = lock(engine.store())?;
            tokio::task::block_in_place(|| store.record_rollback(id, &plan.name, &records))?;
        }
    }
    Ok(out)
}
