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
use crate::model::{Counts, FieldType, Issue, MATCH_CHOICE, Outcome, Rule, Value};
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
        matched_by: String,
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
    current: Option<Vec<Value>>,
    role: Role,
    /// The destination record its dedupe decision pointed at, kept when a veto holds it: a
    /// follower of a held lead then decides against that record on its own.
    target: Option<Target>,
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
            current: None,
            role: Role::Survivor { group: false },
            target: None,
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

fn conflict_issues(conflicts: Vec<(String, String, String)>, other: &str) -> Vec<Issue> {
    conflicts
        .into_iter()
        .map(|(field, ours, theirs)| Issue {
            field,
            rule: Rule::ConflictingMatch,
            value: Some(ours),
            message: format!("{other} holds '{theirs}' here: two different records, not one"),
            suggestion: Some(format!(
                "create it as a record of its own ({MATCH_CHOICE}=new), merge it anyway, or skip"
            )),
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
        self.dedupe(run_id, plan, owners, &mut works, lookups)?;
        self.repeated_ids(plan, &mut works, lookups)?;
        let current = self.read_current(plan, &works).await?;
        self.resolve(plan, &mut works, &current, lookups)?;
        for w in &mut works {
            validate_finals(plan, owners, w);
        }
        self.write(run_id, plan, &mut works, lookups).await?;
        settle_followers(&mut works);
        assemble(plan, run_id, works, counts, cursor, done, resolve_queue)
    }

    /// Phase 1: finds who each clean record is, against the store's match index and the batch.
    fn dedupe(
        &self,
        run_id: i64,
        plan: &ObjectPlan,
        owners: &Owners,
        works: &mut [Work],
        lookups: &Lookups<'_>,
    ) -> Result<()> {
        let started = Instant::now();
        sync(|| -> Result<()> {
            let mut dedupe = BatchDeduper::new(plan, self.settings.region);
            for w in works.iter_mut() {
                if let Item::Mapped(m) = &w.item
                    && m.issues.is_empty()
                    && m.occurrence == 1
                {
                    w.keys = dedupe.keys_of(&m.values);
                }
            }
            let clean = works.iter().filter_map(|w| match &w.item {
                Item::Mapped(m) if m.issues.is_empty() && m.occurrence == 1 => {
                    Some((m.source.source_id.as_str(), &w.keys))
                }
                _ => None,
            });
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
            for (i, w) in works.iter_mut().enumerate() {
                let Item::Mapped(m) = &w.item else {
                    if let Item::Malformed { message, .. } = &w.item {
                        let message = message.clone();
                        w.settle(Outcome::Failed, Some(message));
                    }
                    continue;
                };
                if m.occurrence > 1 {
                    continue; // see `repeated_ids`
                }
                if !m.issues.is_empty() {
                    let mut issues = m.issues.clone();
                    issues.extend(validate(plan, owners, &m.values, &m.issues, None));
                    w.issues = issues;
                    w.step = Step::Held;
                    continue;
                }
                let sid = m.source.source_id.clone();
                if let Some(dest_id) = lookups.recovered.get(&sid) {
                    // Created by an interrupted attempt: the decision an uninterrupted run made.
                    // Its keys still go into the batch, for duplicates after it.
                    let _ = dedupe.decide(&known, i, &sid, &w.keys);
                    w.step = Step::Adopt(dest_id.clone());
                    continue;
                }
                if let Some(choice) = m.match_choice.clone().filter(|_| known.written(&sid).is_none()) {
                    // The operator decided this record's match: no dedupe second-guesses it.
                    // (Once written, the id map leads a later run to the same record.)
                    w.step = match choice {
                        MatchChoice::MergeInto(dest_id) => Step::Update(Target {
                            dest_id,
                            matched_by: OPERATOR_CHOICE.into(),
                            own: false,
                            operator: true,
                        }),
                        MatchChoice::CreateNew => Step::Create,
                    };
                    continue;
                }
                let decision = dedupe.decide(&known, i, &sid, &w.keys);
                let by_key = |matched_by: &str| matched_by != "source_id";
                match decision {
                    Decision::Create => w.step = Step::Create,
                    // Under the "queue" rule a match waits for a person — but not the record's
                    // own earlier write, found by its source id.
                    Decision::Update { dest_id, matched_by }
                        if plan.merge == MergeRule::Queue && by_key(&matched_by) =>
                    {
                        w.hold(Issue {
                            field: matched_by,
                            rule: Rule::MatchNeedsDecision,
                            value: None,
                            message: format!("matches destination record {dest_id}; this object has no merge rule"),
                            suggestion: Some("merge into it, create new, or skip".into()),
                        });
                        w.undecided = Some(dest_id);
                    }
                    Decision::Update { dest_id, matched_by } => {
                        let own = !by_key(&matched_by);
                        w.step = Step::Update(Target { dest_id, matched_by, own, operator: false });
                    }
                    Decision::IntoLead { lead, matched_by } => w.step = Step::Follow { lead, matched_by },
                    Decision::Ambiguous { matched_by, candidates } => {
                        let value = m.values.get(plan.dest_fields.iter().position(|f| *f == matched_by).unwrap_or(0));
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
                        w.ambiguous = candidates;
                    }
                }
            }
            Ok(())
        })?;
        self.timings.add(Stage::Dedupe, started.elapsed());
        Ok(())
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
                        Some(json_object(&plan.source_fields, &first.source.values)?),
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
                let label = format!("first row with this id{at}");
                w.candidates = Some(format!("{{{}:{values}}}", serde_json::to_string(&label)?));
            }
        }
        Ok(())
    }

    /// Phase 2: the destination records about to be updated, and the candidates an operator decides between.
    async fn read_current(
        &self,
        plan: &ObjectPlan,
        works: &[Work],
    ) -> Result<std::collections::HashMap<String, Vec<Value>>> {
        let mut wanted: Vec<String> = Vec::new();
        for w in works {
            if let Step::Update(t) = &w.step {
                wanted.push(t.dest_id.clone());
            }
            wanted.extend(w.ambiguous.iter().filter(|c| !c.starts_with("batch")).cloned());
            wanted.extend(w.undecided.iter().cloned());
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

    /// Phase 3: what each destination record should hold.
    fn resolve(
        &self,
        plan: &ObjectPlan,
        works: &mut [Work],
        current: &std::collections::HashMap<String, Vec<Value>>,
        lookups: &Lookups<'_>,
    ) -> Result<()> {
        let fields = &plan.dest_fields;
        let sides = |ids: &[String]| -> Result<String> {
            let sides: IndexMap<&String, Option<IndexMap<&String, &Value>>> =
                ids.iter().map(|c| (c, current.get(c).map(|vals| fields.iter().zip(vals).collect()))).collect();
            Ok(serde_json::to_string(&sides)?)
        };
        // Who already feeds the records about to be updated (the id map, and batches in flight).
        let targets: Vec<&str> = works
            .iter()
            .filter_map(|w| if let Step::Update(t) = &w.step { Some(t.dest_id.as_str()) } else { None })
            .collect();
        let members: HashMap<String, Vec<Member>> = if targets.is_empty() {
            HashMap::new()
        } else {
            let mut m: HashMap<String, Vec<Member>> =
                sync(|| lock(lookups.store)?.members(&plan.name, &targets))?.into_iter().collect();
            for dest in &targets {
                for (sid, member) in lookups.in_flight_members(dest) {
                    let list = m.entry(dest.to_string()).or_default();
                    if !list.iter().any(|x| x.source_id == sid) {
                        list.push(Member { source_id: sid, member });
                    }
                }
            }
            m
        };
        let own_ids: Vec<String> = works
            .iter()
            .filter_map(|w| match &w.step {
                Step::Update(t) if t.own => Some(t.dest_id.clone()),
                _ => None,
            })
            .collect();
        // Records Cutover created follow the source; those it merged into keep the merge rule.
        let created: std::collections::HashSet<String> = if own_ids.is_empty() {
            Default::default()
        } else {
            sync(|| lock(lookups.store)?.created_records(&plan.name, &own_ids))?
        };
        let images = if lookups.delta && !own_ids.is_empty() {
            sync(|| lock(lookups.store)?.written_images(&plan.name, &own_ids))?
        } else {
            std::collections::HashMap::new()
        };
        let mut relead: HashMap<usize, usize> = HashMap::new();
        for i in 0..works.len() {
            if let Some(dest) = works[i].undecided.clone() {
                works[i].candidates = Some(sides(std::slice::from_ref(&dest))?);
            }
            if !works[i].ambiguous.is_empty() {
                let c = works[i].ambiguous.clone();
                works[i].candidates = Some(sides(&c)?);
            }
            match works[i].step.clone() {
                Step::Create => {
                    if let Item::Mapped(m) = &works[i].item {
                        works[i].finals = Some(m.values.clone());
                    }
                }
                Step::Adopt(_) => {
                    if let Item::Mapped(m) = &works[i].item {
                        works[i].finals = Some(m.values.clone());
                    }
                }
                Step::Update(t) => {
                    works[i].target = Some(t.clone());
                    self.resolve_update(
                        plan,
                        &mut works[i],
                        t,
                        current,
                        &members,
                        &created,
                        &images,
                        lookups.journal,
                        &sides,
                    )?
                }
                Step::Follow { lead, matched_by } => match (&works[lead].step, works[lead].target.clone()) {
                    // Its lead was vetoed (another key disagrees with the destination record
                    // they both matched): this record is judged against that record on its own,
                    // and leads the lead's other followers in its place.
                    (Step::Held, Some(t)) if !t.own && !t.operator => match relead.get(&lead) {
                        Some(&new_lead) => {
                            works[i].step = Step::Follow { lead: new_lead, matched_by: matched_by.clone() };
                            resolve_follower(plan, works, i, new_lead, matched_by, self.settings.region)
                        }
                        None => {
                            relead.insert(lead, i);
                            let t = Target { matched_by, ..t };
                            works[i].step = Step::Update(t.clone());
                            works[i].target = Some(t.clone());
                            self.resolve_update(
                                plan,
                                &mut works[i],
                                t,
                                current,
                                &members,
                                &created,
                                &images,
                                lookups.journal,
                                &sides,
                            )?
                        }
                    },
                    _ => resolve_follower(plan, works, i, lead, matched_by, self.settings.region),
                },
                Step::Settled | Step::Held => {}
            }
        }
        Ok(())
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
                for issue in conflict_issues(conflicts, &other) {
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
            w.written = Some(json_object(fields, fin)?);
            w.keys = dedupe.keys_of(fin);
            w.dest_id = Some(t.dest_id.clone());
            let member = matches!(w.role, Role::Member { .. });
            let mut outcome = match (member, changed) {
                (true, _) => Outcome::Merged,
                (false, true) => Outcome::Updated,
                (false, false) => Outcome::Unchanged,
            };
            let mut before = planned.before_image.clone();
            let mut detail = planned.detail.clone();
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

/// A record folded into an earlier one of the batch: vetoed when another match key disagrees,
/// held under the "queue" rule, otherwise a member that fills its lead's blanks.
fn resolve_follower(
    plan: &ObjectPlan,
    works: &mut [Work],
    i: usize,
    lead: usize,
    matched_by: String,
    region: phonenumber::country::Id,
) {
    let Item::Mapped(m) = &works[i].item else { return };
    let values = m.values.clone();
    let lead_sid = works[lead].source_id().to_string();
    works[i].matched_by = Some(matched_by.clone());
    let lead_values = match &works[lead].item {
        Item::Mapped(l) => l.values.clone(),
        Item::Malformed { .. } => Vec::new(),
    };
    let conflicts = conflicting_keys(plan, &matched_by, &values, &lead_values, region);
    if !conflicts.is_empty() {
        let other = format!("source record {} of this batch (found by {matched_by})", crate::text::shown(&lead_sid));
        for issue in conflict_issues(conflicts, &other) {
            works[i].hold(issue);
        }
        // The other side, for the operator deciding (it has no destination id yet: "new" or skip).
        let side: IndexMap<&String, &Value> = plan.dest_fields.iter().zip(&lead_values).collect();
        works[i].candidates = serde_json::to_string(&side)
            .ok()
            .and_then(|v| serde_json::to_string(&other).ok().map(|k| format!("{{{k}:{v}}}")));
        return;
    }
    if plan.merge == MergeRule::Queue {
        works[i].hold(Issue {
            field: matched_by,
            rule: Rule::MatchNeedsDecision,
            value: None,
            message: format!(
                "the same record as source record {} of this batch; this object has no merge rule",
                lead_sid
            ),
            suggestion: Some(format!("reprocess it once {lead_sid} is written, then decide, or skip")),
        });
        return;
    }
    let rule = member_rule(plan);
    if let Some(lead_values) = works[lead].finals.take() {
        works[lead].finals = Some(merge(&lead_values, &values, rule));
    }
    works[i].merge_rule = Some(rule);
    works[i].role = Role::Member { survivor: lead_sid };
}

/// Phase 4: the final values of every record about to be written (for an update, the fields it
/// changes); a problem holds the record.
fn validate_finals(plan: &ObjectPlan, owners: &Owners, w: &mut Work) {
    let Some(values) = &w.finals else { return };
    if !matches!(w.step, Step::Create | Step::Update(_)) {
        return;
    }
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
