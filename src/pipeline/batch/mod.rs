//! One batch through the stages after mapping. Each source record is a [`Work`] item that the
//! phases take in turn and hand on:
//!
//! 1. **dedupe** — who is it? Its own earlier write (by source id), a destination record its
//!    match keys find, an earlier record of the batch, or nobody (create). A second row under a
//!    source id the run already read waits in the queue (or, repeating the first exactly, is skipped).
//! 2. **read current** — the destination records about to be updated or offered as candidates.
//! 3. **resolve** — what each destination record should hold: vetoes (another match key holding
//!    a different value on each side, a key the destination no longer has, a delta overwriting
//!    someone's edit), the survivor rule for records several source records feed, merge rules.
//! 4. **validate** — the values about to be written.
//! 5. **write** — creates with their markers; updates journaled first, then sent.
//! 6. **settle** — followers take their lead's outcome, and every record must have exactly one
//!    outcome: one without is a bug and fails the batch, never counted as something it is not.
//!
//! The survivor rule: the first source record to reach a destination record is its survivor and
//! applies the object's merge rule; every later one is a member merged into it, which only fills
//! blanks. Who is which is kept in the id map, so every run, resume and delta decides the same.

mod decide;
mod link;
mod send;

use super::dedupe::RecordKeys;
use super::extract::Item;
use super::map::Owners;
use super::plan::ObjectPlan;
use super::run::{Engine, Lookups, OPERATOR_CHOICE};
use crate::config::MergeRule;
use crate::model::{CREATE_NEW, Counts, Issue, MATCH_CHOICE, Outcome, Rule, Value};
use crate::store::{AuditRow, BatchCommit, IdMapWrite, QueueWrite};
use color_eyre::eyre::{Result, eyre};
use foldhash::HashSet;
use indexmap::IndexMap;

/// Where a record stands between phases.
#[derive(Debug, Clone)]
enum Step {
    /// Its outcome is decided (failed, skipped): nothing more to do.
    Settled,
    /// Waits in the queue with its issues.
    Held,
    Create,
    /// Created by an interrupted attempt (found by its marker): adopted, not created again.
    Adopt(String),
    Update(Target),
    /// Folded into an earlier record of the batch (its lead), as a member of the lead's record.
    Follow {
        lead: usize,
    },
}

#[derive(Debug, Clone)]
struct Target {
    dest_id: String,
    matched_by: String,
    /// Found by its own source id: Cutover wrote this destination record from it before.
    own: bool,
    /// An operator chose the record (`@match`).
    operator: bool,
}

/// Who a record is to the destination record it updates.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    /// The first source record of the destination record; `group`: others were merged into it.
    Survivor { group: bool },
    /// Merged into the destination record `survivor` leads.
    Member { survivor: String },
}

/// One source record's way through the batch.
struct Work {
    item: Item,
    keys: RecordKeys,
    step: Step,
    outcome: Option<Outcome>,
    dest_id: Option<String>,
    matched_by: Option<String>,
    merge_rule: Option<MergeRule>,
    detail: Option<String>,
    before_image: Option<String>,
    /// JSON of what the destination record should hold after the write.
    written: Option<String>,
    issues: Vec<Issue>,
    /// Side-by-side an operator decides from (candidates' current values, or a first row).
    candidates: Option<String>,
    /// The destination record an undecided match (merge rule "queue") would go into.
    undecided: Option<String>,
    ambiguous: Vec<String>,
    /// The values to write; a lead also holds what its followers filled in.
    finals: Option<Vec<Value>>,
    /// An update's values before followers filled anything in (what it changes itself).
    own_finals: Option<Vec<Value>>,
    current: Option<Vec<Value>>,
    role: Role,
    /// Held beside an earlier record of the batch (its index) for these conflicting keys (none:
    /// the object's rule is "queue"): once that one is written, the operator is shown the
    /// destination record it became, which `@match` can name.
    held_beside: Option<(usize, Vec<KeyConflict>)>,
    /// Held by record linkage with records of this batch among its candidates (their indexes):
    /// once they are written, the operator is shown the destination records they became, which
    /// `@match` can name.
    linked_beside: Vec<usize>,
    /// Record linkage's verdict: the best candidate's match probability and the evidence.
    linkage: Option<(f64, String)>,
}

impl Work {
    fn new(item: Item) -> Self {
        Self {
            item,
            keys: Vec::new(),
            step: Step::Held,
            outcome: None,
            dest_id: None,
            matched_by: None,
            merge_rule: None,
            detail: None,
            before_image: None,
            written: None,
            issues: Vec::new(),
            candidates: None,
            undecided: None,
            ambiguous: Vec::new(),
            linked_beside: Vec::new(),
            finals: None,
            own_finals: None,
            current: None,
            role: Role::Survivor { group: false },
            held_beside: None,
            linkage: None,
        }
    }

    fn source_id(&self) -> &str {
        match &self.item {
            Item::Mapped(m) => &m.source.source_id,
            Item::Malformed { source_id, .. } => source_id,
        }
    }

    fn settle(&mut self, outcome: Outcome, detail: Option<String>) {
        self.step = Step::Settled;
        self.outcome = Some(outcome);
        self.detail = detail;
    }

    fn hold(&mut self, issue: Issue) {
        self.step = Step::Held;
        self.finals = None;
        self.issues.push(issue);
    }
}

/// The merge rule a member applies: it fills blanks only (the survivor's values win), and
/// changes nothing where the object's rule says the destination wins.
fn member_rule(plan: &ObjectPlan) -> MergeRule {
    if plan.merge == MergeRule::DestinationWins { MergeRule::DestinationWins } else { MergeRule::FillBlanks }
}

/// The merge rule applied to a match. An operator's "merge into this one" on an object whose
/// rule is `queue` keeps the destination's values and fills its blanks.
pub(crate) fn merge_rule_for(plan: &ObjectPlan, matched_by: &str) -> MergeRule {
    if matched_by == OPERATOR_CHOICE && plan.merge == MergeRule::Queue { MergeRule::FillBlanks } else { plan.merge }
}

/// A match key on which two records disagree: (field, this record's value, the other's).
type KeyConflict = (String, String, String);

/// Destination records by id, their values aligned with the plan's destination fields.
type DestRecords = std::collections::HashMap<String, Vec<Value>>;

/// The records as the pipeline judges them: an empty string is a blank, as NULL is.
fn blanks_as_none(stored: &DestRecords) -> DestRecords {
    stored
        .iter()
        .map(|(id, values)| {
            (id.clone(), values.iter().map(|v| v.as_ref().filter(|s| !s.is_empty()).cloned()).collect())
        })
        .collect()
}

fn json_object(fields: &[String], values: &[Value]) -> Result<String> {
    let map: IndexMap<&String, &Value> = fields.iter().zip(values).collect();
    Ok(serde_json::to_string(&map)?)
}

/// What a batch whose writes are on their way reaches: its source ids, every match key its
/// records looked up or will write, and every destination record it reads, updates or adopts.
/// A later batch that reaches none of these decides the same whether or not this one has
/// landed, so it may be decided and sent while this one's writes are in flight.
#[derive(Debug, Default)]
pub(crate) struct Reach {
    sources: HashSet<String>,
    keys: HashSet<(usize, String)>,
    dests: HashSet<String>,
}

impl Reach {
    /// The newest of `others` (their index) this one meets: it and those before it land first.
    fn newest_met(&self, others: &[&Reach]) -> Option<usize> {
        others.iter().rposition(|o| self.meets(o))
    }

    fn meets(&self, other: &Reach) -> bool {
        let any = |a: &HashSet<String>, b: &HashSet<String>| {
            let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
            small.iter().any(|x| large.contains(x))
        };
        any(&self.sources, &other.sources)
            || any(&self.dests, &other.dests)
            || self.keys.iter().any(|k| other.keys.contains(k))
    }

    /// What the records reach now: their source ids, keys (looked up, or of the values they
    /// will write) and destination records (`dests`: what they read).
    fn of(works: &[Work], plan: &ObjectPlan, region: phonenumber::country::Id, dests: &[String]) -> Self {
        let dedupe = crate::pipeline::dedupe::BatchDeduper::new(plan, region);
        let mut reach = Reach { dests: dests.iter().cloned().collect(), ..Default::default() };
        for w in works {
            reach.sources.insert(w.source_id().to_string());
            reach.keys.extend(w.keys.iter().cloned());
            if let Some(finals) = &w.finals {
                reach.keys.extend(dedupe.keys_of(finals));
            }
            if let Some(d) = &w.dest_id {
                reach.dests.insert(d.clone());
            }
            if let Step::Adopt(d) | Step::Update(Target { dest_id: d, .. }) = &w.step {
                reach.dests.insert(d.clone());
            }
        }
        reach
    }

    fn add(&mut self, more: Reach) {
        self.sources.extend(more.sources);
        self.keys.extend(more.keys);
        self.dests.extend(more.dests);
    }
}

/// A batch decided and journaled whose writes are on their way (on a task of their own).
pub(crate) struct Flight {
    works: Vec<Work>,
    reach: Reach,
    sending: tokio::task::JoinHandle<Result<send::Answers>>,
    /// Set by the sending task as it ends, before it tells the waiting engine.
    answered: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Marks a batch answered and wakes whoever waits for an answer, when the sending task ends
/// in any way (a panic included: the engine must not wait for a wake that never comes).
struct Told {
    answered: std::sync::Arc<std::sync::atomic::AtomicBool>,
    wake: std::sync::Arc<tokio::sync::Notify>,
}

impl Drop for Told {
    fn drop(&mut self) {
        self.answered.store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_one();
    }
}

impl Flight {
    pub(crate) fn reach(&self) -> &Reach {
        &self.reach
    }

    /// The destination answered (or the sending failed): it can land without waiting.
    pub(crate) fn answered(&self) -> bool {
        self.answered.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits for the destination's answers without using them: the batch stays uncommitted,
    /// its journal and markers let the next attempt find what it wrote.
    pub(crate) async fn abandon(self) {
        let _ = self.sending.await;
    }
}

/// A batch started, or handed back untouched because it reaches what a batch in flight reaches:
/// the newest such batch (its place among those in flight), which and all before it must land.
pub(crate) enum Launch {
    Started(Flight),
    Blocked(Vec<Item>, usize),
}

impl Engine {
    /// Dedupe → read current → resolve → validate → write → settle one batch; returns what to commit.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn process_batch(
        &self,
        run_id: i64,
        plan: &std::sync::Arc<ObjectPlan>,
        owners: &Owners,
        items: Vec<Item>,
        counts: &mut Counts,
        cursor: Option<String>,
        done: bool,
        resolve_queue: bool,
        lookups: &Lookups<'_>,
    ) -> Result<BatchCommit> {
        let answered = std::sync::Arc::new(tokio::sync::Notify::new());
        match self.launch_batch(run_id, plan, owners, items, lookups, None, &answered).await? {
            Launch::Started(flight) => {
                self.land_batch(run_id, plan, flight, counts, cursor, done, resolve_queue, lookups.linkage).await
            }
            Launch::Blocked(..) => Err(eyre!("a batch with nothing in flight cannot be blocked")),
        }
    }

    /// Phases 1–4 and the journal of phase 5, then the writes sent on a task of their own. With
    /// `flying` (what the batches in flight reach), a batch that reaches any of it is handed back
    /// before anything is read or journaled; the caller lands those batches and launches it again.
    /// Without (`None`: batches go one at a time), nothing is compared and no reach is kept.
    /// `answered` is told when the destination has answered.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn launch_batch(
        &self,
        run_id: i64,
        plan: &std::sync::Arc<ObjectPlan>,
        owners: &Owners,
        items: Vec<Item>,
        lookups: &Lookups<'_>,
        flying: Option<&[&Reach]>,
        answered: &std::sync::Arc<tokio::sync::Notify>,
    ) -> Result<Launch> {
        let region = self.settings.region;
        let mut works: Vec<Work> = items.into_iter().map(Work::new).collect();
        let blocked =
            |works: Vec<Work>, met: usize| Ok(Launch::Blocked(works.into_iter().map(|w| w.item).collect(), met));
        let known = self.lookup(plan, owners, &mut works, lookups, run_id)?;
        self.repeated_ids(plan, &mut works, lookups)?;
        let reachable = self.reachable(&works, &known, lookups)?;
        if let Some(flying) = flying.filter(|f| !f.is_empty())
            && let Some(met) = Reach::of(&works, plan, region, &reachable).newest_met(flying)
        {
            return blocked(works, met);
        }
        let stored = self.read_current(plan, reachable).await?;
        let current = blanks_as_none(&stored);
        self.decide_in_order(plan, owners, &mut works, &known, &current, lookups)?;
        let mut reach = Reach::default();
        if let Some(flying) = flying {
            reach = Reach::of(&works, plan, region, &stored.keys().cloned().collect::<Vec<_>>());
            if let Some(met) = reach.newest_met(flying) {
                return blocked(works, met);
            }
        }
        let outgoing = self.plan_writes(run_id, plan, &mut works, &stored, lookups)?;
        if flying.is_some() {
            reach.add(Reach::of(&works, plan, region, &[]));
        }
        let sent = outgoing.send(self.dest.clone(), plan.clone(), self.timings.clone());
        let told = Told { answered: Default::default(), wake: answered.clone() };
        let answered = told.answered.clone();
        let sending = tokio::spawn(async move {
            let _told = told;
            sent.await
        });
        Ok(Launch::Started(Flight { works, reach, sending, answered }))
    }

    /// The destination's answers taken, then phase 6 and the batch's commit.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn land_batch(
        &self,
        run_id: i64,
        plan: &ObjectPlan,
        flight: Flight,
        counts: &mut Counts,
        cursor: Option<String>,
        done: bool,
        resolve_queue: bool,
        linkage: Option<&std::sync::Mutex<crate::pipeline::linkage::index::LinkIndex>>,
    ) -> Result<BatchCommit> {
        let Flight { mut works, sending, .. } = flight;
        let answers = sending.await.map_err(|e| eyre!("the batch's writes stopped: {e}"))??;
        Self::apply_answers(plan, &mut works, answers);
        settle_followers(plan, &mut works);
        if let Some(l) = linkage {
            let mut ix = l.lock().map_err(|_| eyre!("linkage index lock poisoned"))?;
            let mut written = Vec::new();
            for (i, w) in works.iter().enumerate().filter(|(_, w)| w.outcome.is_some_and(Outcome::is_written)) {
                let Some(dest) = w.dest_id.clone() else { continue };
                let values = match &w.written {
                    Some(json) => {
                        let image: IndexMap<String, Value> = serde_json::from_str(json)?;
                        Some(
                            ix.plan
                                .fields
                                .iter()
                                .map(|f| image.get(f).cloned().flatten().filter(|v| !v.is_empty()))
                                .collect(),
                        )
                    }
                    None => None,
                };
                written.push((i, dest, values));
            }
            ix.settle_batch(&written);
        }
        show_written_leads(plan, &mut works)?;
        link::show_written_candidates(&mut works)?;
        assemble(plan, run_id, works, counts, cursor, done, resolve_queue)
    }
}

/// Phase 6: followers take their lead's outcome.
fn settle_followers(plan: &ObjectPlan, works: &mut [Work]) {
    for i in 0..works.len() {
        let Step::Follow { lead, .. } = works[i].step.clone() else { continue };
        if works[i].outcome.is_some() || !works[i].issues.is_empty() {
            continue;
        }
        let lead_sid = crate::text::shown(works[lead].source_id());
        match (works[lead].outcome, works[lead].dest_id.clone()) {
            // The record's own destination record, which the lead (a member) filled in first.
            (Some(o), Some(id)) if o.is_written() && matches!(works[i].role, Role::Survivor { .. }) => {
                let types = plan.dest_types();
                let changed = match (&works[i].current, &works[i].own_finals) {
                    (Some(cur), Some(own)) => (0..types.len()).any(|f| {
                        let v = |r: &[crate::model::Value]| r.get(f).cloned().flatten();
                        !crate::compare::same(types[f], v(own).as_deref(), v(cur).as_deref())
                    }),
                    (cur, own) => cur != own,
                };
                works[i].outcome = Some(if changed { Outcome::Updated } else { Outcome::Unchanged });
                works[i].written = works[lead].written.clone();
                works[i].detail = Some(format!(
                    "its own record {id} (it survives there); source record {lead_sid} of the same batch merged into it too"
                ));
                works[i].dest_id = Some(id);
            }
            (Some(o), Some(id)) if o.is_written() => {
                works[i].outcome = Some(Outcome::Merged);
                works[i].written = works[lead].written.clone();
                // The lead may itself be a member of a record another source record survives in.
                works[i].detail = Some(match &works[lead].role {
                    Role::Member { survivor } => format!(
                        "merged into {id} (source record {} survives there) with source record {lead_sid} of the same \
                         batch: it fills blanks only",
                        crate::text::shown(survivor)
                    ),
                    Role::Survivor { .. } => format!(
                        "merged into {id} with source record {lead_sid} of the same batch, its survivor: it fills \
                         blanks only"
                    ),
                });
                works[i].dest_id = Some(id);
            }
            (Some(Outcome::Failed), _) => {
                works[i].outcome = Some(Outcome::Failed);
                works[i].detail = Some(format!("merged with source record {lead_sid}, which the destination refused"));
            }
            _ => {
                let field = works[i].matched_by.clone().unwrap_or_default();
                works[i].hold(Issue {
                    field,
                    rule: Rule::MatchNeedsDecision,
                    value: None,
                    message: format!("duplicate of source record {lead_sid}, which is held in the queue"),
                    suggestion: Some(format!("fix {lead_sid} first, then reprocess this one")),
                });
            }
        }
    }
}

/// Records held beside an earlier record of the batch that has now been written: what they are
/// held against is that destination record, shown as the candidate `@match` may name.
fn show_written_leads(plan: &ObjectPlan, works: &mut [Work]) -> Result<()> {
    for i in 0..works.len() {
        let Some((lead, conflicts)) = works[i].held_beside.take() else { continue };
        let (Some(o), Some(dest), Some(written)) =
            (works[lead].outcome, works[lead].dest_id.clone(), works[lead].written.clone())
        else {
            continue;
        };
        if !o.is_written() || !matches!(works[i].step, Step::Held) {
            continue;
        }
        let lead_sid = crate::text::shown(works[lead].source_id());
        let matched_by = works[i].matched_by.clone().unwrap_or_default();
        let w = &mut works[i];
        w.issues = if conflicts.is_empty() {
            w.undecided = Some(dest.clone());
            vec![Issue {
                field: matched_by,
                rule: Rule::MatchNeedsDecision,
                value: None,
                message: format!(
                    "matches {} {dest}, which source record {lead_sid} of this batch was written to; this object has \
                     no merge rule",
                    plan.dest_object
                ),
                suggestion: Some(format!(
                    "merge into it ({MATCH_CHOICE}={dest}), create it as a record of its own \
                     ({MATCH_CHOICE}={CREATE_NEW}), or skip"
                )),
            }]
        } else {
            let other = format!(
                "destination record {dest} (written from source record {lead_sid} of this batch, found by {matched_by})"
            );
            decide::conflict_issues(conflicts, &other, Some(&dest))
        };
        w.candidates = Some(format!("{{{}:{written}}}", serde_json::to_string(&dest)?));
    }
    Ok(())
}

/// The batch's commit: every record with exactly one outcome, or an error naming the first
/// record without one (a bug in Cutover, never silently counted as queued).
fn assemble(
    plan: &ObjectPlan,
    run_id: i64,
    works: Vec<Work>,
    counts: &mut Counts,
    cursor: Option<String>,
    done: bool,
    resolve_queue: bool,
) -> Result<BatchCommit> {
    let mut commit = BatchCommit { run_id, object: plan.name.clone(), cursor, done, ..Default::default() };
    let mut batch_counts = *counts;
    let mut seen: HashSet<(String, u32)> = HashSet::default();
    for w in works {
        let outcome = match (w.outcome, &w.step) {
            (Some(o), _) => o,
            (None, Step::Held) => Outcome::Queued,
            (None, _) if !w.issues.is_empty() => Outcome::Queued,
            (None, step) => {
                return Err(eyre!(
                    "INVARIANT BROKEN: {} {} reached the end of its batch without an outcome ({step:?}). This is a \
                     bug in Cutover; nothing of this batch was committed.",
                    plan.name,
                    crate::text::shown(w.source_id())
                ));
            }
        };
        batch_counts.extracted += 1;
        batch_counts.add(outcome);
        match w.item {
            Item::Malformed { source_id, origin, occurrence, .. } => {
                seen.insert((source_id.clone(), occurrence));
                commit.audit.push(AuditRow {
                    source_id,
                    outcome: outcome.as_str(),
                    detail: w.detail,
                    occurrence,
                    origin: Some(origin),
                    ..Default::default()
                });
            }
            Item::Mapped(m) => {
                let sid = m.source.source_id.clone();
                let source_hash = super::delta::hash_text(
                    m.source_hash.unwrap_or_else(|| super::delta::source_hash_u64(&m.source.values)),
                );
                if outcome == Outcome::Queued {
                    let reason = w.issues.first().map(|i| i.rule.as_str()).unwrap_or("invalid_value");
                    commit.queue.push(QueueWrite {
                        source_id: sid.clone(),
                        occurrence: m.occurrence,
                        origin: m.source.origin.clone(),
                        reason: reason.to_string(),
                        source: json_object(&plan.source_fields, &m.source.values)?,
                        mapped: json_object(&plan.dest_fields, &m.values)?,
                        issues: serde_json::to_string(&w.issues)?,
                        candidates: w.candidates,
                        waiting_on: m.waiting_on.clone(),
                    });
                }
                if outcome.is_written()
                    && let Some(dest_id) = &w.dest_id
                {
                    commit.id_map.push(IdMapWrite {
                        source_id: sid.clone(),
                        dest_id: dest_id.clone(),
                        written: w.written,
                        source_hash: Some(source_hash.clone()),
                        created: outcome == Outcome::Created,
                        member: matches!(w.role, Role::Member { .. }),
                    });
                    for (k, v) in w.keys {
                        commit.match_keys.push((plan.match_keys[k].field.clone(), v, dest_id.clone()));
                    }
                    if resolve_queue {
                        commit.resolved.push(sid.clone());
                    }
                }
                let detail = match outcome {
                    Outcome::Queued => Some(
                        w.issues.iter().map(|i| format!("{}: {}", i.field, i.message)).collect::<Vec<_>>().join("; "),
                    ),
                    // What linkage weighed goes with the outcome it led to.
                    _ => match (w.detail, w.linkage.as_ref().filter(|_| outcome.is_written())) {
                        (Some(d), Some((_, why))) => Some(format!("{d}; {why}")),
                        (None, Some((_, why))) => Some(why.clone()),
                        (d, None) => d,
                    },
                };
                let confidence = w.linkage.as_ref().map(|(p, _)| *p).filter(|_| outcome != Outcome::Skipped);
                if !seen.insert((sid.clone(), m.occurrence)) {
                    return Err(eyre!("INVARIANT BROKEN: {} {} has two outcomes in one batch", plan.name, sid));
                }
                commit.audit.push(AuditRow {
                    source_id: sid,
                    outcome: outcome.as_str(),
                    dest_id: w.dest_id,
                    merge_rule: matches!(outcome, Outcome::Updated | Outcome::Unchanged | Outcome::Merged)
                        .then(|| w.merge_rule.unwrap_or(plan.merge).as_str()),
                    matched_by: w.matched_by,
                    detail,
                    before_image: w.before_image,
                    occurrence: m.occurrence,
                    origin: Some(m.source.origin),
                    source_hash: Some(source_hash),
                    warnings: (outcome.is_written() && !m.warnings.is_empty())
                        .then(|| serde_json::to_string(&m.warnings))
                        .transpose()?,
                    confidence,
                });
            }
        }
    }
    *counts = batch_counts;
    commit.counts = batch_counts;
    Ok(commit)
}

#[cfg(test)]
mod tests {
    use super::Reach;

    fn reach(sources: &[&str], keys: &[(usize, &str)], dests: &[&str]) -> Reach {
        Reach {
            sources: sources.iter().map(|s| s.to_string()).collect(),
            keys: keys.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            dests: dests.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_batch_meets_one_in_flight_through_a_source_id_a_key_value_or_a_destination_record() {
        let flying = reach(&["s1", "s2"], &[(0, "ann@x.example"), (1, "15551234567")], &["d7"]);
        assert_eq!(reach(&["s2"], &[], &[]).newest_met(&[&flying]), Some(0), "the same source id");
        assert_eq!(reach(&["s9"], &[(0, "ann@x.example")], &[]).newest_met(&[&flying]), Some(0), "the same email");
        assert_eq!(reach(&["s9"], &[], &["d7"]).newest_met(&[&flying]), Some(0), "the same destination record");
        // The same value under another key is no match (a phone number is not an email).
        assert_eq!(reach(&["s9"], &[(1, "ann@x.example")], &["d8"]).newest_met(&[&flying]), None);
        assert_eq!(reach(&["s9"], &[(0, "bob@x.example")], &["d8"]).newest_met(&[&flying]), None);
        assert_eq!(reach(&["s1"], &[], &[]).newest_met(&[]), None, "nothing in flight");
        // Of several in flight, the newest one met: it and the older ones land first.
        let other = reach(&["s5"], &[], &["d8"]);
        let third = reach(&["s6"], &[], &[]);
        let both = reach(&["s9"], &[], &["d7", "d8"]);
        assert_eq!(both.newest_met(&[&flying, &other, &third]), Some(1));
    }
}
