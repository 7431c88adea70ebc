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

use super::dedupe::{BatchDeduper, Decision, MatchLookup, Prefetched, RecordKeys, merge, normalize_key};
use super::extract::Item;
use super::map::{MatchChoice, Owners};
use super::plan::ObjectPlan;
use super::run::{Engine, Lookups, OPERATOR_CHOICE, lock, sync};
use super::timings::Stage;
use super::validate::validate;
use super::write;
use crate::config::MergeRule;
use crate::connect::Marks;
use crate::model::{CREATE_NEW, Counts, FieldType, Issue, MATCH_CHOICE, NOT_A_RECORD, Outcome, Rule, Value};
use crate::store::journal::Journaled;
use crate::store::members::Member;
use crate::store::{AuditRow, BatchCommit, IdMapWrite, QueueWrite};
use color_eyre::eyre::{Result, eyre};
use foldhash::{HashMap, HashMapExt, HashSet};
use indexmap::IndexMap;
use std::time::Instant;

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
            finals: None,
            own_finals: None,
            current: None,
            role: Role::Survivor { group: false },
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

fn json_object(fields: &[String], values: &[Value]) -> Result<String> {
    let map: IndexMap<&String, &Value> = fields.iter().zip(values).collect();
    Ok(serde_json::to_string(&map)?)
}

/// The fields where two records hold different non-blank values of a match key other than the
/// one that matched them: two people, not one (a shared phone, a shared office email).
fn conflicting_keys(
    plan: &ObjectPlan,
    matched_by: &str,
    ours: &[Value],
    theirs: &[Value],
    region: phonenumber::country::Id,
) -> Vec<(String, String, String)> {
    plan.match_keys
        .iter()
        .filter(|k| k.field != matched_by)
        .filter_map(|k| {
            let a =
                ours.get(k.index)?.as_deref().and_then(|v| normalize_key(k.kind, v, k.mapped_normalised, region))?;
            let b = theirs.get(k.index)?.as_deref().and_then(|v| normalize_key(k.kind, v, false, region))?;
            (a != b).then(|| (k.field.clone(), a, b))
        })
        .collect()
}

/// `merge_into`: the destination record it could still be merged into by an operator's choice.
fn conflict_issues(conflicts: Vec<(String, String, String)>, other: &str, merge_into: Option<&str>) -> Vec<Issue> {
    let suggestion = match merge_into {
        Some(d) => format!(
            "create it as a record of its own ({MATCH_CHOICE}={CREATE_NEW}), merge it anyway ({MATCH_CHOICE}={d}), or skip"
        ),
        None => format!("create it as a record of its own ({MATCH_CHOICE}={CREATE_NEW}), or skip"),
    };
    conflicts
        .into_iter()
        .map(|(field, ours, theirs)| Issue {
            field,
            rule: Rule::ConflictingMatch,
            value: Some(ours),
            message: format!("{other} holds '{theirs}' here: two different records, not one"),
            suggestion: Some(suggestion.clone()),
        })
        .collect()
}

impl Engine {
    /// Dedupe → read current → resolve → validate → write → settle one batch; returns what to commit.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn process_batch(
        &self,
        run_id: i64,
        plan: &ObjectPlan,
        owners: &Owners,
        items: Vec<Item>,
        counts: &mut Counts,
        cursor: Option<String>,
        done: bool,
        resolve_queue: bool,
        lookups: &Lookups<'_>,
    ) -> Result<BatchCommit> {
        let mut works: Vec<Work> = items.into_iter().map(Work::new).collect();
        let known = self.lookup(plan, owners, &mut works, lookups, run_id)?;
        self.repeated_ids(plan, &mut works, lookups)?;
        let current = self.read_current(plan, &works, &known).await?;
        self.decide_in_order(plan, owners, &mut works, &known, &current, lookups)?;
        self.write(run_id, plan, &mut works, lookups).await?;
        settle_followers(&mut works);
        assemble(plan, run_id, works, counts, cursor, done, resolve_queue)
    }

    /// Phase 1: each clean record's match keys, and what the id map and the match index know of
    /// them; unreadable rows fail and rows the mapping could not map are held, here.
    fn lookup(
        &self,
        plan: &ObjectPlan,
        owners: &Owners,
        works: &mut [Work],
        lookups: &Lookups<'_>,
        run_id: i64,
    ) -> Result<Prefetched> {
        let started = Instant::now();
        let known = sync(|| -> Result<Prefetched> {
            let dedupe = BatchDeduper::new(plan, self.settings.region);
            for w in works.iter_mut() {
                match &w.item {
                    Item::Malformed { message, .. } => {
                        let message = message.clone();
                        w.settle(Outcome::Failed, Some(message));
                    }
                    Item::Mapped(m) if m.occurrence > 1 => {} // see `repeated_ids`
                    Item::Mapped(m) if !m.issues.is_empty() => {
                        let mut issues = m.issues.clone();
                        issues.extend(validate(plan, owners, &m.values, &m.issues, None));
                        w.issues = issues;
                        w.step = Step::Held;
                    }
                    Item::Mapped(m) => {
                        w.keys = dedupe.keys_of(&m.values);
                        w.step = Step::Create; // until `decide_in_order` says otherwise
                    }
                }
            }
            let clean = works.iter().filter(|w| is_clean(w)).map(|w| (w.source_id(), &w.keys));
            let mut index_writer = match lookups.index_writer {
                Some(w) => Some(w.lock().map_err(|_| eyre!("match index writer lock poisoned"))?),
                None => None,
            };
            if let Some(w) = index_writer.as_mut() {
                w.wait_applied()?;
            }
            let known = Prefetched::load(
                &*lock(lookups.store)?,
                &mut *self.index()?,
                plan,
                clean,
                lookups.in_flight,
                index_writer.as_ref().map_or(&[][..], |w| w.pending()),
                run_id,
            )?;
            // The lookup has seen the previous batch's keys: they may go into the index now,
            // while this batch is validated and written.
            if let Some(w) = index_writer.as_mut() {
                w.release()?;
            }
            Ok(known)
        })?;
        self.timings.add(Stage::Dedupe, started.elapsed());
        Ok(known)
    }

    /// Phase 1, second rows: a row under a source id the run already read is a record of its own.
    /// An exact repeat of the first row is skipped, with its reason; a different one waits in the
    /// queue beside the first — never merged into it, never overwriting it.
    fn repeated_ids(&self, plan: &ObjectPlan, works: &mut [Work], lookups: &Lookups<'_>) -> Result<()> {
        let firsts: HashMap<String, usize> = works
            .iter()
            .enumerate()
            .filter_map(|(i, w)| match &w.item {
                Item::Mapped(m) if m.occurrence == 1 => Some((m.source.source_id.clone(), i)),
                Item::Malformed { occurrence: 1, source_id, .. } => Some((source_id.clone(), i)),
                _ => None,
            })
            .collect();
        for i in 0..works.len() {
            let Item::Mapped(m) = &works[i].item else { continue };
            if m.occurrence <= 1 {
                continue;
            }
            let sid = m.source.source_id.clone();
            let (origin, occurrence, same) = (m.source.origin.clone(), m.occurrence, m.same_as_first);
            // The first row: in this batch, or in the store.
            let first: Option<(Option<String>, Option<String>, Option<String>)> = match firsts.get(&sid) {
                Some(&f) => match &works[f].item {
                    Item::Mapped(first) => Some((
                        Some(first.source.origin.clone()),
                        Some("in this batch".to_string()),
                        Some(json_object(&plan.dest_fields, &first.values)?),
                    )),
                    Item::Malformed { origin, .. } => Some((Some(origin.clone()), Some("unreadable".into()), None)),
                },
                None => sync(|| lock(lookups.store)?.first_row(&plan.name, &sid))?.map(|r| {
                    let values = r.values.and_then(|v| serde_json::to_string(&v).ok());
                    (r.origin, Some(r.outcome), values)
                }),
            };
            let (first_origin, first_outcome, first_values) = first.unwrap_or((None, None, None));
            let at = first_origin.clone().map(|o| format!(" at {o}")).unwrap_or_default();
            let w = &mut works[i];
            if same {
                w.settle(
                    Outcome::Skipped,
                    Some(format!(
                        "an exact repeat of the row with source id {} read first{at}: the same values; row {occurrence} \
                         under this id skipped",
                        crate::text::shown(&sid)
                    )),
                );
                continue;
            }
            w.hold(Issue {
                field: plan.id_field.clone(),
                rule: Rule::DuplicateSourceId,
                value: Some(sid.clone()),
                message: format!(
                    "source id {} was read already{at}{}; this is row {occurrence} under that id ({origin}), with other \
                     values",
                    crate::text::shown(&sid),
                    first_outcome.map(|o| format!(" ({o})")).unwrap_or_default()
                ),
                suggestion: Some(
                    "skip it if it is the same record, or give it an id of its own in the export and run again".into(),
                ),
            });
            if let Some(values) = first_values {
                let label = format!("{NOT_A_RECORD}row with this id read first{at}");
                w.candidates = Some(format!("{{{}:{values}}}", serde_json::to_string(&label)?));
            }
        }
        Ok(())
    }

    /// Phase 2: every destination record a clean record of the batch can reach — its own earlier
    /// write, each candidate of each of its keys, an operator's choice — read once.
    async fn read_current(
        &self,
        plan: &ObjectPlan,
        works: &[Work],
        known: &Prefetched,
    ) -> Result<std::collections::HashMap<String, Vec<Value>>> {
        let mut wanted: Vec<String> = Vec::new();
        for w in works.iter().filter(|w| is_clean(w)) {
            let Item::Mapped(m) = &w.item else { continue };
            if let Some((dest, _)) = known.written(&m.source.source_id) {
                wanted.push(dest);
            }
            if let Some(MatchChoice::MergeInto(dest)) = &m.match_choice {
                wanted.push(dest.clone());
            }
            for (k, v) in &w.keys {
                wanted.extend(known.candidates(*k, v).into_iter().map(|(d, _)| d));
            }
        }
        if wanted.is_empty() {
            return Ok(std::collections::HashMap::new());
        }
        wanted.sort();
        wanted.dedup();
        let started = Instant::now();
        let read = self.dest.read(&plan.dest_object, &wanted, &plan.dest_fields).await?;
        self.timings.add(Stage::ReadDestination, started.elapsed());
        Ok(read)
    }

    /// Phase 3, in source order: each record decides who it is, as if every record before it in
    /// the batch had been written on its own — vetoes, the survivor rule and the merge rules
    /// applied, its values validated — and only a record that will be written can lead the later
    /// ones. So where a batch ends never changes what becomes of a record.
    fn decide_in_order(
        &self,
        plan: &ObjectPlan,
        owners: &Owners,
        works: &mut [Work],
        known: &Prefetched,
        current: &std::collections::HashMap<String, Vec<Value>>,
        lookups: &Lookups<'_>,
    ) -> Result<()> {
        let started = Instant::now();
        let fields = &plan.dest_fields;
        let sides = |ids: &[String]| -> Result<String> {
            let sides: IndexMap<&String, Option<IndexMap<&String, &Value>>> =
                ids.iter().map(|c| (c, current.get(c).map(|vals| fields.iter().zip(vals).collect()))).collect();
            Ok(serde_json::to_string(&sides)?)
        };
        let context = self.context(plan, current, known, works, lookups)?;
        let mut dedupe = BatchDeduper::new(plan, self.settings.region);
        for i in 0..works.len() {
            if !is_clean(&works[i]) {
                continue;
            }
            let (sid, values, choice) = match &works[i].item {
                Item::Mapped(m) => (m.source.source_id.clone(), m.values.clone(), m.match_choice.clone()),
                Item::Malformed { .. } => continue,
            };
            let keys = works[i].keys.clone();
            if let Some(dest_id) = lookups.recovered.get(&sid) {
                // Created by an interrupted attempt: the decision an uninterrupted run made.
                works[i].step = Step::Adopt(dest_id.clone());
                works[i].finals = Some(values);
                dedupe.accept_adopted(i, &sid, &keys, dest_id);
                continue;
            }
            let decision = match choice.filter(|_| known.written(&sid).is_none()) {
                // The operator decided this record's match: no dedupe second-guesses it.
                // (Once written, the id map leads a later run to the same record.)
                Some(MatchChoice::MergeInto(dest_id)) => {
                    let t = Target { dest_id, matched_by: OPERATOR_CHOICE.into(), own: false, operator: true };
                    Err(t)
                }
                Some(MatchChoice::CreateNew) => Ok(Decision::Create),
                None => Ok(dedupe.decide(known, &sid, &keys)),
            };
            let w = &mut works[i];
            let accepted: Option<Decision> = match decision {
                Err(t) => self.update_in_order(plan, owners, w, t, current, &context, lookups, &sides)?,
                Ok(Decision::Create) => create_in_order(plan, owners, w, values),
                // Under the "queue" rule a match waits for a person — but not the record's own
                // earlier write, found by its source id.
                Ok(Decision::Update { dest_id, matched_by })
                    if plan.merge == MergeRule::Queue && matched_by != "source_id" =>
                {
                    w.hold(Issue {
                        field: matched_by,
                        rule: Rule::MatchNeedsDecision,
                        value: None,
                        message: format!("matches destination record {dest_id}; this object has no merge rule"),
                        suggestion: Some("merge into it, create new, or skip".into()),
                    });
                    w.candidates = Some(sides(std::slice::from_ref(&dest_id))?);
                    w.undecided = Some(dest_id);
                    None
                }
                Ok(Decision::Update { dest_id, matched_by }) => {
                    let own = matched_by == "source_id";
                    let t = Target { dest_id, matched_by, own, operator: false };
                    self.update_in_order(plan, owners, w, t, current, &context, lookups, &sides)?
                }
                Ok(Decision::IntoLead { lead, matched_by }) => {
                    follow_in_order(plan, owners, works, i, lead, matched_by, self.settings.region)
                }
                Ok(Decision::Ambiguous { matched_by, candidates }) => {
                    let value = values.get(plan.dest_fields.iter().position(|f| *f == matched_by).unwrap_or(0));
                    w.hold(Issue {
                        field: matched_by.clone(),
                        rule: Rule::AmbiguousMatch,
                        value: value.cloned().flatten(),
                        message: format!(
                            "{} destination records match on {matched_by}: {}",
                            candidates.len(),
                            candidates.join(", ")
                        ),
                        suggestion: Some("choose the record to merge into, create new, or skip".into()),
                    });
                    let real: Vec<String> = candidates.iter().filter(|c| !c.starts_with("batch")).cloned().collect();
                    w.candidates = Some(sides(&real)?);
                    w.ambiguous = candidates;
                    None
                }
            };
            if let Some(d) = accepted {
                dedupe.accept(i, &sid, &keys, &d);
            }
        }
        self.timings.add(Stage::Dedupe, started.elapsed());
        Ok(())
    }

    /// Who already feeds the destination records the batch can reach, which of them Cutover
    /// created, and (for a delta) what it wrote there — fetched once for the batch.
    fn context(
        &self,
        plan: &ObjectPlan,
        current: &std::collections::HashMap<String, Vec<Value>>,
        known: &Prefetched,
        works: &[Work],
        lookups: &Lookups<'_>,
    ) -> Result<Context> {
        let reachable: Vec<&str> = current.keys().map(String::as_str).collect();
        let own: Vec<String> =
            works.iter().filter(|w| is_clean(w)).filter_map(|w| known.written(w.source_id()).map(|(d, _)| d)).collect();
        sync(|| -> Result<Context> {
            let store = lock(lookups.store)?;
            let mut members: HashMap<String, Vec<Member>> = if reachable.is_empty() {
                HashMap::new()
            } else {
                store.members(&plan.name, &reachable)?.into_iter().collect()
            };
            for dest in &reachable {
                for (sid, member) in lookups.in_flight_members(dest) {
                    let list = members.entry(dest.to_string()).or_default();
                    if !list.iter().any(|x| x.source_id == sid) {
                        list.push(Member { source_id: sid, member });
                    }
                }
            }
            let created = if own.is_empty() { Default::default() } else { store.created_records(&plan.name, &own)? };
            let images = if lookups.delta && !own.is_empty() {
                store.written_images(&plan.name, &own)?
            } else {
                std::collections::HashMap::new()
            };
            Ok(Context { members, created, images })
        })
    }

    /// An update decided in order: resolved against the destination record as it is, validated;
    /// the decision to accept (an update, or a create when the record is gone), or `None` (held).
    #[allow(clippy::too_many_arguments)]
    fn update_in_order(
        &self,
        plan: &ObjectPlan,
        owners: &Owners,
        w: &mut Work,
        t: Target,
        current: &std::collections::HashMap<String, Vec<Value>>,
        context: &Context,
        lookups: &Lookups<'_>,
        sides: &dyn Fn(&[String]) -> Result<String>,
    ) -> Result<Option<Decision>> {
        w.step = Step::Update(t.clone());
        let (dest_id, matched_by) = (t.dest_id.clone(), t.matched_by.clone());
        self.resolve_update(
            plan,
            w,
            t,
            current,
            &context.members,
            &context.created,
            &context.images,
            lookups.journal,
            sides,
        )?;
        Ok(match w.step {
            Step::Held => None,
            Step::Create => create_in_order(plan, owners, w, w.finals.clone().unwrap_or_default()),
            _ => {
                validate_finals(plan, owners, w);
                (!matches!(w.step, Step::Held)).then_some(Decision::Update { dest_id, matched_by })
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn resolve_update(
        &self,
        plan: &ObjectPlan,
        w: &mut Work,
        t: Target,
        current: &std::collections::HashMap<String, Vec<Value>>,
        members: &HashMap<String, Vec<Member>>,
        created: &std::collections::HashSet<String>,
        images: &std::collections::HashMap<String, String>,
        journal: &std::collections::HashMap<String, Journaled>,
        sides: &dyn Fn(&[String]) -> Result<String>,
    ) -> Result<()> {
        let Item::Mapped(m) = &w.item else { return Ok(()) };
        let values = m.values.clone();
        let sid = m.source.source_id.clone();
        w.matched_by = Some(t.matched_by.clone());
        let Some(cur) = current.get(&t.dest_id) else {
            if t.operator {
                w.hold(Issue {
                    field: MATCH_CHOICE.into(),
                    rule: Rule::AmbiguousMatch,
                    value: Some(t.dest_id.clone()),
                    message: format!("the chosen destination record {} no longer exists", t.dest_id),
                    suggestion: Some("choose another record to merge into, or create new".into()),
                });
            } else {
                // The destination no longer has it: write it anew.
                w.detail = Some(format!("destination record {} no longer exists; created anew", t.dest_id));
                w.step = Step::Create;
                w.finals = Some(values);
                w.matched_by = None;
            }
            return Ok(());
        };
        let by_key = !t.own && !t.operator;
        if by_key && let Some(message) = self.stale_match(plan, &t.matched_by, &t.dest_id, cur, &values) {
            w.hold(Issue {
                field: t.matched_by.clone(),
                rule: Rule::AmbiguousMatch,
                value: None,
                message,
                suggestion: Some("reprocess it: the next attempt matches on the destination's current values".into()),
            });
            return Ok(());
        }
        if by_key {
            let conflicts = conflicting_keys(plan, &t.matched_by, &values, cur, self.settings.region);
            if !conflicts.is_empty() {
                let other = format!("destination record {} (found by {})", t.dest_id, t.matched_by);
                for issue in conflict_issues(conflicts, &other, Some(&t.dest_id)) {
                    w.hold(issue);
                }
                w.candidates = Some(sides(std::slice::from_ref(&t.dest_id))?);
                w.undecided = Some(t.dest_id.clone());
                return Ok(());
            }
        }
        // A delta never overwrites what someone changed in the destination since Cutover wrote it
        // — the update an interrupted attempt of this run sent (journaled) is no one else's change.
        let replayed = journal.get(&sid).is_some_and(|j| j.dest_id == t.dest_id);
        if t.own
            && !replayed
            && let Some(image) = images.get(&t.dest_id)
        {
            let issues = changed_in_destination(plan, &t.dest_id, image, cur)?;
            if !issues.is_empty() {
                for issue in issues {
                    w.hold(issue);
                }
                w.candidates = Some(sides(std::slice::from_ref(&t.dest_id))?);
                return Ok(());
            }
        }
        let feeding = members.get(&t.dest_id).map(Vec::as_slice).unwrap_or_default();
        let others: Vec<&Member> = feeding.iter().filter(|x| x.source_id != sid).collect();
        w.role = match feeding.iter().find(|x| x.source_id == sid) {
            Some(me) if me.member => Role::Member {
                survivor: others
                    .iter()
                    .find(|x| !x.member)
                    .or(others.first())
                    .map(|x| x.source_id.clone())
                    .unwrap_or_default(),
            },
            Some(_) => Role::Survivor { group: !others.is_empty() },
            None if !others.is_empty() => {
                Role::Member { survivor: others.iter().find(|x| !x.member).unwrap_or(&others[0]).source_id.clone() }
            }
            None => Role::Survivor { group: false },
        };
        let rule = match &w.role {
            Role::Member { .. } => member_rule(plan),
            Role::Survivor { .. } => merge_rule_for(plan, &t.matched_by),
        };
        w.finals = Some(match &w.role {
            // A record Cutover created follows its source — wholesale when it alone feeds it;
            // with members merged in, its non-blank values win and their fill-ins stay.
            Role::Survivor { group: false } if t.own && created.contains(&t.dest_id) => values,
            Role::Survivor { group: true } if t.own && created.contains(&t.dest_id) => {
                merge(cur, &values, MergeRule::SourceWins)
            }
            _ => merge(cur, &values, rule),
        });
        w.merge_rule = Some(rule);
        w.current = Some(cur.clone());
        w.own_finals = w.finals.clone();
        Ok(())
    }

    /// Verifies a key match against the destination record as it is now. The match index keeps
    /// hashes and is as old as the run's scan, so a collision or an edit made in the destination
    /// since then must not merge a record into the wrong one. `None` when the match holds.
    fn stale_match(
        &self,
        plan: &ObjectPlan,
        key: &str,
        dest_id: &str,
        current: &[Value],
        ours: &[Value],
    ) -> Option<String> {
        let mk = plan.match_keys.iter().find(|k| k.field == key)?;
        let region = self.settings.region;
        let want = ours.get(mk.index)?.as_deref().and_then(|v| normalize_key(mk.kind, v, mk.mapped_normalised, region));
        let have = current.get(mk.index)?.as_deref().and_then(|v| normalize_key(mk.kind, v, false, region));
        (want != have).then(|| {
            format!(
                "destination record {dest_id} was found by {key}, but its {key} is now {}",
                have.map(|h| format!("'{h}'")).unwrap_or_else(|| "blank".into())
            )
        })
    }

    /// Phase 5: creates (with their markers) and updates (journaled first), one answer per record.
    async fn write(&self, run_id: i64, plan: &ObjectPlan, works: &mut [Work], lookups: &Lookups<'_>) -> Result<()> {
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
        if !creates.is_empty() {
            let mut rows = Vec::with_capacity(creates.len());
            let mut markers = Vec::with_capacity(creates.len());
            for &i in &creates {
                let w = &mut works[i];
                if let Some(values) = w.finals.take() {
                    w.keys = dedupe.keys_of(&values);
                    w.written = Some(json_object(fields, &values)?);
                    rows.push(values);
                    markers.push(plan.marker(w.source_id()));
                }
            }
            let marks = Marks { namespace: self.project.config.project.name.clone(), source_ids: markers };
            let started = Instant::now();
            let results = write::create(self.dest.as_ref(), plan, rows, marks).await?;
            self.timings.add(Stage::Write, started.elapsed());
            for (&i, r) in creates.iter().zip(results) {
                let w = &mut works[i];
                match r {
                    Ok(id) => {
                        w.outcome = Some(Outcome::Created);
                        w.dest_id = Some(id);
                    }
                    Err(msg) => {
                        w.outcome = Some(Outcome::Failed);
                        w.detail = Some(format!("the destination refused it: {msg}"));
                        w.written = None;
                    }
                }
            }
        }
        self.write_updates(run_id, plan, works, lookups, &dedupe).await
    }

    async fn write_updates(
        &self,
        run_id: i64,
        plan: &ObjectPlan,
        works: &mut [Work],
        lookups: &Lookups<'_>,
        dedupe: &BatchDeduper<'_>,
    ) -> Result<()> {
        let fields = &plan.dest_fields;
        let mut sending: Vec<(usize, crate::connect::Change)> = Vec::new();
        let mut journal: Vec<Journaled> = Vec::new();
        for (i, w) in works.iter_mut().enumerate() {
            let Step::Update(t) = w.step.clone() else { continue };
            let (Some(cur), Some(fin)) = (w.current.as_ref(), w.finals.as_ref()) else { continue };
            let planned = write::plan_update(fields, &t.dest_id, cur, fin)?;
            let changed = !planned.change.values.is_empty();
            // What this record changed itself, apart from what members of the batch filled in
            // (their own outcomes say that): the outcome a batch boundary cannot change.
            let own = match &w.own_finals {
                Some(own) if own != fin => write::plan_update(fields, &t.dest_id, cur, own)?,
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
        if sending.is_empty() {
            return Ok(());
        }
        sync(|| self.journal()?.write(run_id, &plan.name, &journal))?;
        let changes: Vec<crate::connect::Change> = sending.iter().map(|(_, c)| c.clone()).collect();
        let started = Instant::now();
        let results = write::update(self.dest.as_ref(), plan, &changes).await?;
        self.timings.add(Stage::Write, started.elapsed());
        for ((i, _), r) in sending.iter().zip(results) {
            let w = &mut works[*i];
            if let Err(msg) = r {
                w.outcome = Some(Outcome::Failed);
                w.detail = Some(format!("the destination refused the update: {msg}"));
                w.before_image = None;
                w.written = None;
            }
        }
        Ok(())
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

/// A record found by its own source id in a delta: what changed in the destination since
/// Cutover wrote it (field by field), which the delta must not overwrite.
fn changed_in_destination(plan: &ObjectPlan, dest_id: &str, image: &str, now: &[Value]) -> Result<Vec<Issue>> {
    let wrote: IndexMap<String, Value> = serde_json::from_str(image)?;
    let mut issues = Vec::new();
    for (f, w) in &wrote {
        let Some(pos) = plan.dest_fields.iter().position(|x| x == f) else { continue };
        let found = now.get(pos).cloned().flatten();
        let ty = plan.schema.field(f).map(|d| d.ty).unwrap_or(FieldType::Text);
        if !crate::compare::same(ty, w.as_deref(), found.as_deref()) {
            issues.push(Issue {
                field: f.clone(),
                rule: Rule::ChangedInDestination,
                value: found,
                message: format!(
                    "changed in the destination since Cutover wrote {} there",
                    crate::text::shown_opt(w.as_deref())
                ),
                suggestion: Some(format!(
                    "keep the destination's version (skip), or overwrite it ({MATCH_CHOICE}={dest_id})"
                )),
            });
        }
    }
    Ok(issues)
}

/// What the batch needs to know of the destination records it can reach.
struct Context {
    members: HashMap<String, Vec<Member>>,
    created: std::collections::HashSet<String>,
    images: std::collections::HashMap<String, String>,
}

/// A record decided in order that is still to be judged (not failed, held or a second row).
fn is_clean(w: &Work) -> bool {
    matches!(&w.item, Item::Mapped(m) if m.issues.is_empty() && m.occurrence == 1)
        && !matches!(w.step, Step::Held | Step::Settled)
}

/// A new record: its own values validated; the decision to accept, or `None` (held).
fn create_in_order(plan: &ObjectPlan, owners: &Owners, w: &mut Work, values: Vec<Value>) -> Option<Decision> {
    w.step = Step::Create;
    w.finals = Some(values);
    validate_finals(plan, owners, w);
    (!matches!(w.step, Step::Held)).then_some(Decision::Create)
}

/// A record folded into an earlier one of the batch: vetoed when another match key holds a
/// different value in the lead as it stands (with what earlier followers filled in), held under
/// the "queue" rule, held when what it would fill in is not valid; otherwise a member that fills
/// its lead's blanks. The decision to accept, or `None`.
fn follow_in_order(
    plan: &ObjectPlan,
    owners: &Owners,
    works: &mut [Work],
    i: usize,
    lead: usize,
    matched_by: String,
    region: phonenumber::country::Id,
) -> Option<Decision> {
    let Item::Mapped(m) = &works[i].item else { return None };
    let values = m.values.clone();
    let lead_sid = works[lead].source_id().to_string();
    works[i].step = Step::Follow { lead };
    works[i].matched_by = Some(matched_by.clone());
    let lead_now = works[lead].finals.clone().unwrap_or_default();
    let conflicts = conflicting_keys(plan, &matched_by, &values, &lead_now, region);
    if !conflicts.is_empty() {
        let other =
            format!("{NOT_A_RECORD}record {} of this batch (found by {matched_by})", crate::text::shown(&lead_sid));
        for issue in conflict_issues(conflicts, &other, None) {
            works[i].hold(issue);
        }
        // The other side, for the operator deciding (it has no destination id yet: "new" or skip).
        let side: IndexMap<&String, &Value> = plan.dest_fields.iter().zip(&lead_now).collect();
        works[i].candidates = serde_json::to_string(&side)
            .ok()
            .and_then(|v| serde_json::to_string(&other).ok().map(|k| format!("{{{k}:{v}}}")));
        return None;
    }
    if plan.merge == MergeRule::Queue {
        works[i].hold(Issue {
            field: matched_by,
            rule: Rule::MatchNeedsDecision,
            value: None,
            message: format!(
                "the same record as source record {lead_sid} of this batch; this object has no merge rule"
            ),
            suggestion: Some(format!("reprocess it once {lead_sid} is written, then decide, or skip")),
        });
        return None;
    }
    let rule = member_rule(plan);
    let merged = merge(&lead_now, &values, rule);
    let changed: Vec<bool> = lead_now.iter().zip(&merged).map(|(a, b)| a != b).collect();
    let issues = validate(plan, owners, &merged, &[], Some(&changed));
    if !issues.is_empty() {
        for issue in issues {
            works[i].hold(issue);
        }
        return None;
    }
    works[lead].finals = Some(merged);
    works[i].merge_rule = Some(rule);
    works[i].role = Role::Member { survivor: lead_sid.clone() };
    Some(Decision::IntoLead { lead, matched_by: works[i].matched_by.clone().unwrap_or_default() })
}

/// The values about to be written (for an update, the fields it changes); a problem holds the record.
fn validate_finals(plan: &ObjectPlan, owners: &Owners, w: &mut Work) {
    let Some(values) = &w.finals else { return };
    let written: Option<Vec<bool>> =
        w.current.as_ref().map(|cur| cur.iter().zip(values).map(|(c, v)| c != v).collect());
    let issues = validate(plan, owners, values, &[], written.as_deref());
    if !issues.is_empty() {
        for issue in issues {
            w.hold(issue);
        }
        w.current = None;
    }
}

/// Phase 6: followers take their lead's outcome.
fn settle_followers(works: &mut [Work]) {
    for i in 0..works.len() {
        let Step::Follow { lead, .. } = works[i].step.clone() else { continue };
        if works[i].outcome.is_some() || !works[i].issues.is_empty() {
            continue;
        }
        let lead_sid = crate::text::shown(works[lead].source_id());
        match (works[lead].outcome, works[lead].dest_id.clone()) {
            (Some(o), Some(id)) if o.is_written() => {
                works[i].outcome = Some(Outcome::Merged);
                works[i].written = works[lead].written.clone();
                works[i].detail = Some(format!(
                    "merged into {id} with source record {lead_sid} of the same batch, its survivor: it fills blanks only"
                ));
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
                    _ => w.detail,
                };
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
                });
            }
        }
    }
    *counts = batch_counts;
    commit.counts = batch_counts;
    Ok(commit)
}
