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
use crate::store::{RunKind, Store, os_user};
use color_eyre::eyre::{Result, WrapErr, eyre};
use indexmap::IndexMap;
use std::collections::{HashMap, HashSet};

const CHUNK: usize = 2000;

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
    let _lock = engine.take_lock()?;
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
    // A rollback of the same run that was stopped before finishing goes on under its own id.
    let run_id = if opts.dry_run {
        None
    } else {
        let store = lock(engine.store())?;
        Some(match store.resumable_rollback(of_run)? {
            Some(id) => {
                store.resume_run(id, &engine.project.hash)?;
                id
            }
            None => {
                let id = store.begin_run(RunKind::Rollback, &os_user(), &engine.project.hash)?;
                store.set_rollback_of(id, of_run)?;
                id
            }
        })
    };
    let mut report = RollbackReport { of_run, run_id, dry_run: opts.dry_run, objects: Vec::new() };
    let result = async {
        // Children before parents: a parent is never deleted under its children, and a parent
        // a kept (or undecided) child still points at is left with it.
        let mut protected: Protected = HashMap::new();
        let mut unlinking: Unlinking = HashMap::new();
        for plan in prepared.plans.iter().rev() {
            if opts.object.as_ref().is_some_and(|o| *o != plan.name) {
                continue;
            }
            protect_pointed_at(engine, &prepared.plans, plan, &unlinking, &mut protected)?;
            let object = rollback_object(engine, plan, of_run, run_id, opts, &mut protected, &mut unlinking).await?;
            report.objects.push(object);
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

/// Per object: the source records this rollback unlinks (or, in a dry run, would).
type Unlinking = HashMap<String, HashSet<String>>;

/// Every record of a child object that stays linked after this rollback — written by another
/// run, or by this one and kept — protects the parent record it points at: the parent is not
/// deleted under it (reading what Cutover last wrote to the child, its destination parent id).
fn protect_pointed_at(
    engine: &Engine,
    plans: &[std::sync::Arc<ObjectPlan>],
    parent: &ObjectPlan,
    unlinking: &Unlinking,
    protected: &mut Protected,
) -> Result<()> {
    for child in plans {
        let fields: Vec<&str> = child
            .rules
            .iter()
            .filter(|r| r.parent.as_deref() == Some(parent.name.as_str()))
            .map(|r| r.dest.as_str())
            .collect();
        if fields.is_empty() {
            continue;
        }
        let linked = {
            let store = lock(engine.store())?;
            tokio::task::block_in_place(|| store.linked_images(&child.name))?
        };
        let gone = unlinking.get(&child.name);
        let mine = protected.entry(parent.name.clone()).or_default();
        for (source_id, dest_id, image) in linked {
            if gone.is_some_and(|g| g.contains(&source_id)) {
                continue;
            }
            let Some(image) = self::image(image.as_deref())? else { continue };
            for f in &fields {
                if let Some(Some(p)) = image.get(*f) {
                    mine.entry(p.clone()).or_insert_with(|| {
                        format!("{} {} (destination record {dest_id})", child.name, crate::text::shown(&source_id))
                    });
                }
            }
        }
    }
    Ok(())
}

/// What a rollback does to one destination record the run wrote.
enum Action {
    Delete,
    Restore(Change),
    /// Nothing to put back: the run's writes changed nothing there.
    Nothing,
}

/// A destination record the run wrote, with every write of the run that reached it (in order).
struct Touched<'a> {
    dest_id: String,
    targets: Vec<&'a Written>,
}

/// The run's writes grouped by the destination record they are linked to now, children of a
/// group together; writes no longer linked are reported apart.
fn touched(targets: &[Written]) -> (Vec<Touched<'_>>, u64) {
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Vec<&Written>> = HashMap::new();
    let mut not_linked = 0;
    for t in targets {
        match &t.linked {
            None => not_linked += 1,
            Some((dest, _, _)) => {
                if !groups.contains_key(dest) {
                    order.push(dest.clone());
                }
                groups.entry(dest.clone()).or_default().push(t);
            }
        }
    }
    let groups =
        order.into_iter().filter_map(|d| groups.remove(&d).map(|targets| Touched { dest_id: d, targets })).collect();
    (groups, not_linked)
}

/// What the record held before the run's first write to each field: the earliest before-image
/// wins, so undoing a survivor's update and a member's fill-in together is exact.
fn restore_values(group: &Touched<'_>) -> Result<IndexMap<String, Value>> {
    let mut out: IndexMap<String, Value> = IndexMap::new();
    for t in &group.targets {
        if let Some(b) = image(t.before_image.as_deref())? {
            for (f, v) in b {
                out.entry(f).or_insert(v);
            }
        }
    }
    Ok(out)
}

async fn rollback_object(
    engine: &Engine,
    plan: &ObjectPlan,
    of_run: i64,
    run_id: Option<i64>,
    opts: &RollbackOptions,
    protected: &mut Protected,
    unlinking: &mut Unlinking,
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
    let (groups, not_linked) = touched(&targets);
    out.not_linked = not_linked;
    // Source records linked to a destination record that this run did not write there: a
    // member another run merged in. Deleting the record would leave their links dangling.
    let others: HashMap<String, Vec<String>> = {
        let store = lock(engine.store())?;
        let links = tokio::task::block_in_place(|| store.id_map_links(&plan.name))?;
        let mine: HashSet<&str> = targets.iter().map(|t| t.source_id.as_str()).collect();
        let mut by_dest: HashMap<String, Vec<String>> = HashMap::new();
        for (sid, dest) in links {
            if !mine.contains(sid.as_str()) {
                by_dest.entry(dest).or_default().push(sid);
            }
        }
        by_dest
    };
    let unlinked = unlinking.entry(plan.name.clone()).or_default();
    let fields: Vec<String> = plan.dest_fields.to_vec();
    let types: HashMap<&str, FieldType> = plan.schema.fields.iter().map(|f| (f.name.as_str(), f.ty)).collect();
    let ty = |f: &str| types.get(f).copied().unwrap_or(FieldType::Text);
    let dest = engine.destination();
    for chunk in groups.chunks(CHUNK) {
        let ids: Vec<String> = chunk.iter().map(|g| g.dest_id.clone()).collect();
        let current = dest.read(&plan.dest_object, &ids, &fields).await?;
        let mut records: Vec<RolledBack> = Vec::new();
        let mut deletes: Vec<String> = Vec::new();
        let mut restores: Vec<Change> = Vec::new();
        for group in chunk {
            let now: Option<IndexMap<&str, Option<&str>>> = current
                .get(&group.dest_id)
                .map(|vals| fields.iter().map(String::as_str).zip(vals.iter().map(|v| v.as_deref())).collect());
            let row = |t: &Written, outcome: &'static str, detail: String| RolledBack {
                source_id: t.source_id.clone(),
                dest_id: group.dest_id.clone(),
                outcome,
                detail,
                before_image: None,
                relink: None,
                after: None,
            };
            let Some(now) = now else {
                out.already_done += 1;
                for t in &group.targets {
                    records.push(row(t, "rolled_back", "already gone from the destination: unlinked".into()));
                }
                continue;
            };
            let created = group.targets.iter().any(|t| t.outcome == "created" && t.linked_before.is_none());
            let restore = restore_values(group)?;
            let (_, last_run, written) = group.targets[0].linked.clone().unwrap_or_default();
            let wrote = image(written.as_deref())?;
            // An interrupted rollback already put the values back: only unlink.
            let restored_already = !created
                && !restore.is_empty()
                && restore.iter().all(|(f, v)| now.get(f.as_str()).is_some_and(|n| same(ty(f), v.as_deref(), *n)))
                && wrote.as_ref().is_some_and(|w| {
                    restore.keys().any(|f| {
                        w.get(f).is_some_and(|x| !same(ty(f), x.as_deref(), now.get(f.as_str()).copied().flatten()))
                    })
                });
            if restored_already {
                out.already_done += 1;
                for t in &group.targets {
                    records.push(finish_row(t, &group.dest_id, "before-image already restored", &now, &fields, true)?);
                }
                continue;
            }
            // Changed since Cutover wrote it?
            let mut why = Vec::new();
            for t in &group.targets {
                if t.dest_id != group.dest_id {
                    why.push(format!(
                        "{} is now linked to destination record {}",
                        crate::text::shown(&t.source_id),
                        group.dest_id
                    ));
                }
            }
            // A run that only found the record as it was (unchanged) leaves the last writer earlier.
            let undone = || -> Result<bool> {
                let sids: Vec<&str> = group.targets.iter().map(|t| t.source_id.as_str()).collect();
                let store = lock(engine.store())?;
                tokio::task::block_in_place(|| store.undone_by_rollback(&plan.name, &sids, &group.dest_id, last_run))
            };
            if last_run > of_run && !undone()? {
                why.push(format!("written again by run {last_run} since"));
            }
            // A child left in place matters only to a record the rollback would delete; one it
            // restores or leaves as it was still exists for the child to point at.
            if created && let Some(child) = mine.get(&group.dest_id) {
                why.push(format!("{child}, left in place, points at it"));
            }
            if created && let Some(linked) = others.get(&group.dest_id) {
                let shown: Vec<String> = linked.iter().take(3).map(|s| crate::text::shown(s)).collect();
                why.push(format!(
                    "source record{} {} of a later run {} linked to it too",
                    if linked.len() == 1 { "" } else { "s" },
                    shown.join(", "),
                    if linked.len() == 1 { "is" } else { "are" }
                ));
            }
            match &wrote {
                None => why.push("written before Cutover kept what it wrote: cannot tell whether it changed".into()),
                Some(wrote) => {
                    for (f, w) in wrote {
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
            let anyway = group.targets.iter().any(|t| opts.anyway.contains(&t.source_id));
            if !why.is_empty() && !anyway {
                for (field, parent) in &links {
                    if let Some(Some(p)) = now.get(field) {
                        let sid = crate::text::shown(&group.targets[0].source_id);
                        protected
                            .entry(parent.to_string())
                            .or_default()
                            .insert(p.to_string(), format!("{} {sid}", plan.name));
                    }
                }
                for t in &group.targets {
                    let changed =
                        Changed { source_id: t.source_id.clone(), dest_id: group.dest_id.clone(), why: why.join("; ") };
                    if opts.keep {
                        records.push(RolledBack {
                            detail: format!(
                                "kept: changed in the destination since Cutover wrote it ({})",
                                changed.why
                            ),
                            ..row(t, "rollback_kept", String::new())
                        });
                        out.kept.push(changed);
                    } else {
                        out.undecided.push(changed);
                    }
                }
                continue;
            }
            let action = if created {
                Action::Delete
            } else if restore.is_empty() {
                Action::Nothing
            } else {
                Action::Restore(Change {
                    dest_id: group.dest_id.clone(),
                    values: restore.clone().into_iter().collect(),
                })
            };
            let snapshot = |names: &mut dyn Iterator<Item = &str>| -> Result<String> {
                let m: IndexMap<&str, Option<&str>> = names.map(|f| (f, now.get(f).copied().flatten())).collect();
                Ok(serde_json::to_string(&m)?)
            };
            match action {
                Action::Delete => {
                    deletes.push(group.dest_id.clone());
                    let snap = snapshot(&mut fields.iter().map(String::as_str))?;
                    for t in &group.targets {
                        records.push(RolledBack {
                            before_image: Some(snap.clone()),
                            ..row(t, "rolled_back", "deleted".into())
                        });
                    }
                }
                Action::Nothing => {
                    out.nothing_to_restore += 1;
                    for t in &group.targets {
                        records.push(finish_row(
                            t,
                            &group.dest_id,
                            "its writes changed nothing",
                            &now,
                            &fields,
                            false,
                        )?);
                    }
                }
                Action::Restore(change) => {
                    let detail = format!("restored {}", restore.keys().cloned().collect::<Vec<_>>().join(", "));
                    let snap = snapshot(&mut restore.keys().map(String::as_str))?;
                    let mut after = now.clone();
                    for (f, v) in &restore {
                        after.insert(f.as_str(), v.as_deref());
                    }
                    for t in &group.targets {
                        let mut r = finish_row(t, &group.dest_id, &detail, &after, &fields, true)?;
                        r.before_image = Some(snap.clone());
                        records.push(r);
                    }
                    restores.push(change);
                }
            }
        }
        if opts.dry_run {
            out.deleted += deletes.len() as u64;
            out.restored += restores.len() as u64;
            unlinked.extend(records.iter().filter(|r| r.outcome == "rolled_back").map(|r| r.source_id.clone()));
            continue;
        }
        // Destination first; a record it refuses stays linked and is reported.
        let mut refused: HashMap<String, String> = HashMap::new();
        if !deletes.is_empty() {
            let results = dest.delete(&plan.dest_object, &deletes).await?;
            for (id, r) in deletes.iter().zip(results) {
                match r {
                    Ok(_) => out.deleted += 1,
                    Err(msg) => {
                        refused.insert(id.clone(), msg);
                    }
                }
            }
        }
        if !restores.is_empty() {
            let results = dest.update(&plan.dest_object, &restores).await?;
            for (c, r) in restores.iter().zip(results) {
                match r {
                    Ok(_) => out.restored += 1,
                    Err(msg) => {
                        refused.insert(c.dest_id.clone(), msg);
                    }
                }
            }
        }
        records.retain(|r| match refused.get(&r.dest_id) {
            Some(msg) => {
                out.failed.push((r.source_id.clone(), msg.clone()));
                false
            }
            None => true,
        });
        unlinked.extend(records.iter().filter(|r| r.outcome == "rolled_back").map(|r| r.source_id.clone()));
        if let Some(id) = run_id {
            let store = lock(engine.store())?;
            tokio::task::block_in_place(|| store.record_rollback(id, of_run, &plan.name, &records))?;
        }
    }
    Ok(out)
}

/// The audit row of a record whose destination record stays (`restored`: values were put back;
/// otherwise the run changed nothing there): unlinked when this run made the link, otherwise kept
/// linked, with what the record holds after the rollback where values were put back.
fn finish_row(
    t: &Written,
    dest_id: &str,
    detail: &str,
    after: &IndexMap<&str, Option<&str>>,
    fields: &[String],
    restored: bool,
) -> Result<RolledBack> {
    // As the pipeline writes images: a blank is a blank, whether the destination holds '' or NULL.
    let image: IndexMap<&str, Option<&str>> = fields
        .iter()
        .map(|f| (f.as_str(), after.get(f.as_str()).copied().flatten().filter(|v| !v.is_empty())))
        .collect();
    let image = serde_json::to_string(&image)?;
    let base = RolledBack {
        source_id: t.source_id.clone(),
        dest_id: dest_id.to_string(),
        outcome: "rolled_back",
        detail: format!("{detail}: unlinked"),
        before_image: None,
        relink: None,
        after: None,
    };
    Ok(match t.linked_before {
        None => RolledBack { after: Some(image), ..base },
        Some(by_run) => RolledBack {
            outcome: "rollback_restored",
            detail: format!("{detail}; linked since run {by_run}, so it stays linked"),
            relink: restored.then_some((image, by_run)),
            ..base
        },
    })
}
