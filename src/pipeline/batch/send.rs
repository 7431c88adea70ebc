//! Phase 5 of a batch: creates with their markers, updates journaled before they are sent.

use super::{DestRecords, Role, Step, Work, json_object};
use crate::connect::{Change, Destination, Marks, WriteResult};
use crate::model::{Issue, MATCH_CHOICE, Outcome, Rule, Value};
use crate::pipeline::dedupe::BatchDeduper;
use crate::pipeline::plan::ObjectPlan;
use crate::pipeline::run::{Engine, Lookups, sync};
use crate::pipeline::timings::{Stage, Timings};
use crate::pipeline::write;
use crate::store::journal::{Journaled, PendingCreate};
use color_eyre::eyre::Result;

use indexmap::IndexMap;
use std::sync::Arc;
use std::time::Instant;

/// A create the destination refused because another of its records already holds a unique value
/// of this one (a contact's email): not a failure but a match to decide, held with that record as
/// its candidate (`@match=ID` merges into it).
fn hold_as_existing(plan: &ObjectPlan, w: &mut Work, existing: &str, refusal: &str) {
    let said = refusal.split_once(": ").map_or(refusal, |(_, said)| said);
    w.written = None;
    w.keys = Vec::new();
    w.hold(Issue {
        // Which value HubSpot does not say: the decision is the operator's match.
        field: MATCH_CHOICE.to_string(),
        rule: Rule::MatchNeedsDecision,
        value: None,
        message: format!(
            "the destination already holds {} {existing} with a value of this record that must be unique there ({said})",
            plan.dest_object
        ),
        suggestion: Some(format!(
            "merge into it ({MATCH_CHOICE}={existing}), correct the value and reprocess, or skip"
        )),
    });
    let mut side = serde_json::Map::new();
    side.insert(existing.to_string(), serde_json::Value::Null);
    w.candidates = Some(serde_json::Value::Object(side).to_string());
    w.undecided = Some(existing.to_string());
}

/// What a batch sends, planned and journaled: its creates (rows with their markers) and its
/// updates, each beside the record it answers for. Owns what it sends, so the sending can run
/// on a task of its own while the next batch is decided.
pub(crate) struct Outgoing {
    creates: Vec<usize>,
    rows: Vec<Vec<Value>>,
    marks: Marks,
    updates: Vec<usize>,
    changes: Vec<Change>,
}

/// The destination's answers to an [`Outgoing`], beside the records they answer for.
pub(crate) struct Answers {
    creates: Vec<usize>,
    created: Vec<WriteResult>,
    updates: Vec<usize>,
    updated: Vec<WriteResult>,
}

impl Outgoing {
    /// Creates first, then updates; one answer per record.
    pub(crate) async fn send(
        self,
        dest: Arc<dyn Destination>,
        plan: Arc<ObjectPlan>,
        timings: Arc<Timings>,
    ) -> Result<Answers> {
        let Outgoing { creates, rows, marks, updates, changes } = self;
        let mut created = Vec::new();
        if !rows.is_empty() {
            let started = Instant::now();
            created = write::create(dest.as_ref(), &plan, rows, marks).await?;
            timings.add(Stage::Write, started.elapsed());
        }
        let mut updated = Vec::new();
        if !changes.is_empty() {
            let started = Instant::now();
            updated = write::update(dest.as_ref(), &plan, &changes).await?;
            timings.add(Stage::Write, started.elapsed());
        }
        Ok(Answers { creates, created, updates, updated })
    }
}

impl Engine {
    /// Phase 5, before anything is sent: adopted records settle; creates get their markers and
    /// are journaled; updates are planned field by field and journaled. What is journaled is
    /// looked up (creates) or replayed (updates) if the process dies before the batch commits.
    pub(super) fn plan_writes(
        &self,
        run_id: i64,
        plan: &ObjectPlan,
        works: &mut [Work],
        stored: &DestRecords,
        lookups: &Lookups<'_>,
    ) -> Result<Outgoing> {
        let fields = &plan.dest_fields;
        let dedupe = BatchDeduper::new(plan, self.settings.region);
        let mut creates: Vec<usize> = Vec::new();
        for (i, w) in works.iter_mut().enumerate() {
            match w.step.clone() {
                Step::Adopt(dest_id) => {
                    if let Some(values) = w.finals.take() {
                        w.keys = dedupe.keys_of(&values);
                        w.written = Some(json_object(fields, &values)?);
                    }
                    w.outcome = Some(Outcome::Created);
                    w.dest_id = Some(dest_id);
                    w.detail = Some("created by an interrupted attempt; found by its marker, not created again".into());
                }
                Step::Create if w.finals.is_some() => creates.push(i),
                _ => {}
            }
        }
        let mut rows = Vec::with_capacity(creates.len());
        let mut markers = Vec::with_capacity(creates.len());
        let mut intents: Vec<PendingCreate> = Vec::with_capacity(creates.len());
        for &i in &creates {
            let w = &mut works[i];
            if let Some(values) = w.finals.take() {
                w.keys = dedupe.keys_of(&values);
                let written = json_object(fields, &values)?;
                let marker = plan.marker(w.source_id());
                intents.push(PendingCreate {
                    source_id: w.source_id().to_string(),
                    marker: marker.clone(),
                    written: written.clone(),
                });
                w.written = Some(written);
                rows.push(values);
                markers.push(marker);
            }
        }
        // Journaled before they are sent: if the process dies before this batch commits, the
        // next attempt looks these up instead of creating them again.
        if !intents.is_empty() {
            sync(|| self.journal()?.intend_creates(run_id, &plan.name, &intents))?;
        }
        let marks = Marks { namespace: self.project.config.project.name.clone(), source_ids: markers };
        let (updates, changes) = self.plan_updates(run_id, plan, works, stored, lookups, &dedupe)?;
        Ok(Outgoing { creates, rows, marks, updates, changes })
    }

    /// Phase 5 after the destination answered: each record takes its answer.
    pub(super) fn apply_answers(plan: &ObjectPlan, works: &mut [Work], answers: Answers) {
        for (i, r) in answers.creates.into_iter().zip(answers.created) {
            let w = &mut works[i];
            match r {
                Ok(id) => {
                    w.outcome = Some(Outcome::Created);
                    w.dest_id = Some(id);
                }
                Err(msg) => match crate::connect::existing_record(&msg) {
                    Some(existing) => hold_as_existing(plan, w, existing, &msg),
                    None => {
                        w.outcome = Some(Outcome::Failed);
                        w.detail = Some(format!("the destination refused it: {msg}"));
                        w.written = None;
                    }
                },
            }
        }
        for (i, r) in answers.updates.into_iter().zip(answers.updated) {
            let w = &mut works[i];
            if let Err(msg) = r {
                w.outcome = Some(Outcome::Failed);
                w.detail = Some(format!("the destination refused the update: {msg}"));
                w.before_image = None;
                w.written = None;
            }
        }
    }

    /// Updates planned field by field; the ones that change something are journaled. Returns
    /// them with the records they answer for.
    fn plan_updates(
        &self,
        run_id: i64,
        plan: &ObjectPlan,
        works: &mut [Work],
        stored: &DestRecords,
        lookups: &Lookups<'_>,
        dedupe: &BatchDeduper<'_>,
    ) -> Result<(Vec<usize>, Vec<Change>)> {
        let fields = &plan.dest_fields;
        let types = plan.dest_types();
        let mut sending: Vec<(usize, Change)> = Vec::new();
        let mut journal: Vec<Journaled> = Vec::new();
        for (i, w) in works.iter_mut().enumerate() {
            let Step::Update(t) = w.step.clone() else { continue };
            let (Some(cur), Some(fin)) = (w.current.as_ref(), w.finals.as_ref()) else { continue };
            let was = stored.get(&t.dest_id).map(Vec::as_slice);
            let planned = write::plan_update(fields, &types, &t.dest_id, cur, was, fin)?;
            let changed = !planned.change.values.is_empty();
            // What this record changed itself, apart from what members of the batch filled in
            // (their own outcomes say that): the outcome a batch boundary cannot change.
            let own = match &w.own_finals {
                Some(own) if own != fin => write::plan_update(fields, &types, &t.dest_id, cur, was, own)?,
                _ => planned.clone(),
            };
            let changed_itself = !own.change.values.is_empty();
            w.written = Some(json_object(fields, fin)?);
            w.keys = dedupe.keys_of(fin);
            w.dest_id = Some(t.dest_id.clone());
            let member = matches!(w.role, Role::Member { .. });
            let mut outcome = match (member, changed_itself) {
                (true, _) => Outcome::Merged,
                (false, true) => Outcome::Updated,
                (false, false) => Outcome::Unchanged,
            };
            let mut before = planned.before_image.clone();
            let mut detail = if own.detail == planned.detail {
                planned.detail.clone()
            } else {
                format!("{}; with the members of this batch, {}", own.detail, planned.detail)
            };
            if let Some(j) = lookups.journal.get(w.source_id()).filter(|j| j.dest_id == t.dest_id) {
                // An interrupted attempt sent this update before the process died: what it
                // overwrote and what became of the record are in the journal, not in the
                // destination any more.
                before = merge_images(j.before_image.as_deref(), before.as_deref())?;
                outcome = Outcome::parse(&j.outcome).unwrap_or(outcome);
                if !changed {
                    detail = j.detail.clone();
                }
            } else if changed {
                journal.push(Journaled {
                    source_id: w.source_id().to_string(),
                    dest_id: t.dest_id.clone(),
                    outcome: outcome.as_str().to_string(),
                    detail: detail.clone(),
                    before_image: before.clone(),
                });
            }
            if let Role::Member { survivor } = &w.role {
                detail = format!(
                    "merged into {} {}, which source record {} feeds first (its survivor): it fills blanks only; {detail}",
                    plan.dest_object,
                    t.dest_id,
                    crate::text::shown(survivor)
                );
            }
            w.before_image = before;
            w.detail = Some(detail);
            w.outcome = Some(outcome);
            if changed {
                sending.push((i, planned.change));
            }
        }
        if !journal.is_empty() {
            sync(|| self.journal()?.write(run_id, &plan.name, &journal))?;
        }
        Ok(sending.into_iter().unzip())
    }
}

/// The before-image of an update replayed after a crash: the journal's (what the first attempt
/// overwrote), with what this attempt overwrites besides.
fn merge_images(journal: Option<&str>, now: Option<&str>) -> Result<Option<String>> {
    let parse = |j: Option<&str>| -> Result<IndexMap<String, Value>> {
        Ok(match j {
            Some(j) => serde_json::from_str(j)?,
            None => IndexMap::new(),
        })
    };
    let mut image = parse(journal)?;
    for (k, v) in parse(now)? {
        image.entry(k).or_insert(v);
    }
    Ok(if image.is_empty() { None } else { Some(serde_json::to_string(&image)?) })
}
