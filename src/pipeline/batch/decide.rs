//! Phases 1-4 of a batch: who each record is (dedupe), the destination records it reaches,
//! what each of them should hold (resolve), and whether those values may be written (validate).

use super::link::Linked;
use super::{DestRecords, KeyConflict, Role, Step, Target, Work, json_object, member_rule, merge_rule_for};
use crate::config::MergeRule;
use crate::model::{CREATE_NEW, FieldType, Issue, MATCH_CHOICE, NOT_A_RECORD, Outcome, Rule, Value};
use crate::pipeline::dedupe::{BatchDeduper, Decision, MatchLookup, Prefetched, merge, normalize_key};
use crate::pipeline::extract::Item;
use crate::pipeline::linkage::compare::{PersonName, names_differ};
use crate::pipeline::linkage::index::Holder as LinkHolder;
use crate::pipeline::map::{MatchChoice, Owners};
use crate::pipeline::plan::{KeyKind, ObjectPlan};
use crate::pipeline::run::{Engine, Lookups, OPERATOR_CHOICE, lock, sync};
use crate::pipeline::timings::Stage;
use crate::pipeline::validate::validate;
use crate::store::journal::Journaled;
use crate::store::members::Member;
use color_eyre::eyre::{Result, eyre};
use foldhash::{HashMap, HashMapExt};
use indexmap::IndexMap;
use std::time::Instant;

/// The fields where two records hold different non-blank values of a match key other than the
/// one that matched them: two people, not one (a shared phone, a shared office email). Found by
/// an email or a phone, which people share, two records whose names or birth dates say they are
/// two people are two people (Ivan Brown and Raj Patel at `sales@`, twins on one phone).
fn conflicting_keys(
    plan: &ObjectPlan,
    matched_by: &str,
    ours: &[Value],
    theirs: &[Value],
    region: phonenumber::country::Id,
) -> Vec<KeyConflict> {
    let mut conflicts: Vec<KeyConflict> = plan
        .match_keys
        .iter()
        .filter(|k| k.field != matched_by)
        .filter_map(|k| {
            let a =
                ours.get(k.index)?.as_deref().and_then(|v| normalize_key(k.kind, v, k.mapped_normalised, region))?;
            let b = theirs.get(k.index)?.as_deref().and_then(|v| normalize_key(k.kind, v, false, region))?;
            (a != b).then(|| (k.field.clone(), a, b))
        })
        .collect();
    let shared_contact =
        plan.match_keys.iter().any(|k| k.field == matched_by && matches!(k.kind, KeyKind::Email | KeyKind::Phone));
    if shared_contact && let Some(people) = person_conflict(plan, ours, theirs) {
        conflicts.push(people);
    }
    conflicts
}

/// What says two records found by a shared contact point are two people: (field, ours, theirs)
/// of their names (given names not alike, Jr and Sr, or nothing in common: see
/// [`names_differ`]), or of their birth dates where both hold one and the days differ.
fn person_conflict(plan: &ObjectPlan, ours: &[Value], theirs: &[Value]) -> Option<KeyConflict> {
    let p = &plan.person;
    fn get(values: &[Value], f: Option<usize>) -> Option<&str> {
        f.and_then(|i| values.get(i)?.as_deref()).map(str::trim)
    }
    let name = |v: &[Value]| PersonName::new(get(v, p.given), get(v, p.family), get(v, p.full));
    if let Some(field) = p.name_field()
        && names_differ(&name(ours), &name(theirs))
    {
        let shown = |v: &[Value]| {
            [p.given, p.family, p.full]
                .iter()
                .filter_map(|&f| get(v, f))
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        };
        return Some((plan.dest_fields[field].clone(), shown(ours), shown(theirs)));
    }
    let day = |v: &[Value]| {
        get(v, p.born).and_then(|d| crate::pipeline::transform::parse_when(d, false).ok()).map(|t| t.date())
    };
    match (day(ours), day(theirs), p.born) {
        (Some(a), Some(b), Some(field)) if a != b => {
            Some((plan.dest_fields[field].clone(), a.to_string(), b.to_string()))
        }
        _ => None,
    }
}

/// Whether a record reads as the queue holds it (source values as JSON): nothing in its row
/// changed since it was held.
fn same_row(plan: &ObjectPlan, held: &str, w: &Work) -> bool {
    let Item::Mapped(m) = &w.item else { return false };
    let Ok(then) = serde_json::from_str::<IndexMap<String, Option<String>>>(held) else { return false };
    plan.source_fields.iter().zip(&m.source.values).all(|(f, v)| then.get(f).is_none_or(|t| t == v))
}

/// `merge_into`: the destination record it could still be merged into by an operator's choice.
pub(super) fn conflict_issues(conflicts: Vec<KeyConflict>, other: &str, merge_into: Option<&str>) -> Vec<Issue> {
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
    /// Phase 1: each clean record's match keys, and what the id map and the match index know of
    /// them; unreadable rows fail and rows the mapping could not map are held, here.
    pub(super) fn lookup(
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
                if let Some(why) = out_of_scope(plan, lookups, &w.item)? {
                    w.settle(Outcome::Skipped, Some(why));
                    continue;
                }
                if let Some(skipped) = operator_skip(plan, lookups, &w.item)? {
                    w.settle(Outcome::Skipped, Some(skipped));
                    continue;
                }
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
    pub(super) fn repeated_ids(&self, plan: &ObjectPlan, works: &mut [Work], lookups: &Lookups<'_>) -> Result<()> {
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
            if m.occurrence <= 1 || matches!(works[i].step, Step::Settled) {
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
    /// write, each candidate of each of its keys, an operator's choice — sorted, once each.
    pub(super) fn reachable(&self, works: &[Work], known: &Prefetched, lookups: &Lookups<'_>) -> Result<Vec<String>> {
        let mut wanted: Vec<String> = Vec::new();
        if let Some(l) = lookups.linkage {
            let ix = l.lock().map_err(|_| eyre!("linkage index lock poisoned"))?;
            for w in works.iter().filter(|w| is_clean(w)) {
                if let Item::Mapped(m) = &w.item {
                    wanted.extend(ix.reachable(&ix.plan.values(&m.values)));
                }
            }
        }
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
        wanted.sort();
        wanted.dedup();
        Ok(wanted)
    }

    /// Phase 2: the reachable destination records read, once each.
    pub(super) async fn read_current(&self, plan: &ObjectPlan, wanted: Vec<String>) -> Result<DestRecords> {
        if wanted.is_empty() {
            return Ok(std::collections::HashMap::new());
        }
        let started = Instant::now();
        let read = self.dest.read(&plan.dest_object, &wanted, &plan.dest_fields).await?;
        self.timings.add(Stage::ReadDestination, started.elapsed());
        Ok(read)
    }

    /// Phase 3, in source order: each record decides who it is, as if every record before it in
    /// the batch had been written on its own — vetoes, the survivor rule and the merge rules
    /// applied, its values validated — and only a record that will be written can lead the later
    /// ones. So where a batch ends never changes what becomes of a record.
    pub(super) fn decide_in_order(
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
        let mut linkage = match lookups.linkage {
            Some(l) => Some(l.lock().map_err(|_| eyre!("linkage index lock poisoned"))?),
            None => None,
        };
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
                if let Some(ix) = linkage.as_mut() {
                    let v = ix.plan.values(&values);
                    ix.add(LinkHolder::Lead(i), v, true, true);
                }
                works[i].finals = Some(values);
                dedupe.accept_adopted(i, &sid, &keys, dest_id);
                continue;
            }
            // Once written, the id map leads a later run to the same record: an operator's match
            // choice applies again only when that record is gone (then it says what to do
            // instead). Choosing the record's own destination record confirms an update that
            // would otherwise be held.
            let own = known.written(&sid).map(|(d, _)| d);
            let own_exists = own.as_ref().is_some_and(|d| current.contains_key(d));
            let confirmed = matches!((&choice, &own), (Some(MatchChoice::MergeInto(c)), Some(d)) if c == d);
            let choice_was_none = choice.is_none() || own_exists;
            let decision = match choice.filter(|_| !own_exists) {
                // The operator decided this record's match: no dedupe second-guesses it.
                Some(MatchChoice::MergeInto(dest_id)) => {
                    let t = Target { dest_id, matched_by: OPERATOR_CHOICE.into(), own: false, operator: true };
                    Err(t)
                }
                Some(MatchChoice::CreateNew) => Ok(Decision::Create),
                None => {
                    let standing =
                        AsItStands { known, plan, region: self.settings.region, current, dedupe: &dedupe, works };
                    Ok(dedupe.decide(&standing, &sid, &keys))
                }
            };
            // No source id found it: record linkage weighs its candidates.
            let mut held: Option<(Issue, Vec<String>, Vec<usize>)> = None;
            let decision = match (decision, linkage.as_deref()) {
                (Ok(Decision::Create), Some(ix)) if choice_was_none => {
                    let linked = super::link::decide(ix, works, i, &values, current, &dedupe);
                    let waiting = lookups.held_for_review.get(&sid).is_some_and(|held| same_row(plan, held, &works[i]));
                    let linked = if waiting { super::link::kept_for_review(linked, &mut works[i]) } else { linked };
                    match linked {
                        Linked::Decided(d) => Ok(d),
                        Linked::Held { issue, dest_ids, leads } => {
                            held = Some((issue, dest_ids, leads));
                            Ok(Decision::Create)
                        }
                    }
                }
                (d, _) => d,
            };
            let w = &mut works[i];
            let accepted: Option<Decision> = if let Some((issue, dest_ids, leads)) = held {
                w.hold(issue);
                w.linked_beside = leads;
                w.candidates = Some(sides(&dest_ids)?);
                None
            } else {
                match decision {
                    Err(t) => self.update_in_order(plan, owners, w, t, current, &context, lookups, &sides)?,
                    Ok(Decision::Create) => create_in_order(plan, owners, w, values),
                    // Under the "queue" rule a match waits for a person — but not the record's own
                    // earlier write, found by its source id.
                    Ok(Decision::Update { dest_id, matched_by })
                        if plan.merge == MergeRule::Queue && matched_by != "source_id" =>
                    {
                        let evidence = w.linkage.as_ref().map(|(_, why)| format!(" ({why})")).unwrap_or_default();
                        w.hold(Issue {
                            field: matched_by,
                            rule: Rule::MatchNeedsDecision,
                            value: None,
                            message: format!(
                                "matches destination record {dest_id}{evidence}; this object has no merge rule"
                            ),
                            suggestion: Some("merge into it, create new, or skip".into()),
                        });
                        w.candidates = Some(sides(std::slice::from_ref(&dest_id))?);
                        w.undecided = Some(dest_id);
                        None
                    }
                    Ok(Decision::Update { dest_id, matched_by }) => {
                        let own = matched_by == "source_id";
                        let t = Target { dest_id, matched_by, own, operator: own && confirmed };
                        self.update_in_order(plan, owners, w, t, current, &context, lookups, &sides)?
                    }
                    Ok(Decision::IntoLead { lead, matched_by }) => {
                        let standing = Standing {
                            region: self.settings.region,
                            known,
                            current,
                            dedupe: &dedupe,
                            context: &context,
                        };
                        follow_in_order(plan, owners, works, i, lead, matched_by, &standing)
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
                        let real: Vec<String> =
                            candidates.iter().filter(|c| !c.starts_with("batch")).cloned().collect();
                        w.candidates = Some(sides(&real)?);
                        w.ambiguous = candidates;
                        None
                    }
                }
            };
            // An update may not give its record a key value another record holds (as the batch
            // stands): two records would share it. An operator's choice may.
            let accepted = match accepted {
                Some(Decision::Update { dest_id, matched_by }) if !confirmed && matched_by != OPERATOR_CHOICE => {
                    let standing =
                        Standing { region: self.settings.region, known, current, dedupe: &dedupe, context: &context };
                    let w = &works[i];
                    let (before, after) =
                        (w.current.as_deref().unwrap_or_default(), w.finals.as_deref().unwrap_or_default());
                    match fills_anothers_key(plan, &standing, works, before, after, Holder::Dest(&dest_id)) {
                        Some(taken) => {
                            hold_for_taken_key(&mut works[i], taken, &dest_id, &sides)?;
                            None
                        }
                        None => Some(Decision::Update { dest_id, matched_by }),
                    }
                }
                other => other,
            };
            if let Some(d) = accepted {
                // A record about to be created is a candidate for the later ones: the source's
                // own duplicates gather in it.
                if let (Decision::Create, Some(ix)) = (&d, linkage.as_mut())
                    && let Some(finals) = works[i].finals.as_deref()
                {
                    let v = ix.plan.values(finals);
                    ix.add(LinkHolder::Lead(i), v, true, true);
                }
                // A record filling another in: the later records meet it by what it fills in.
                if let Some(ix) = linkage.as_mut() {
                    let filled = match &d {
                        Decision::Update { dest_id, .. } => ix.entry_of(dest_id).zip(works[i].finals.as_deref()),
                        Decision::IntoLead { lead, .. } => ix.entry_of_lead(*lead).zip(works[*lead].finals.as_deref()),
                        Decision::Create | Decision::Ambiguous { .. } => None,
                    };
                    if let Some((e, finals)) = filled {
                        let v = ix.plan.values(finals);
                        ix.also_block(e, &v);
                    }
                }
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
            let mut images = if lookups.delta && !own.is_empty() {
                store.written_images(&plan.name, &own)?
            } else {
                std::collections::HashMap::new()
            };
            if lookups.delta {
                for dest in &own {
                    if let Some((_, image)) = lookups.in_flight_images.get(dest) {
                        images.insert(dest.clone(), image.clone());
                    }
                }
            }
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
            } else if t.own
                && images.contains_key(&t.dest_id)
                && journal.get(&sid).is_none_or(|j| j.dest_id != t.dest_id)
            {
                // A delta never undoes what someone did in the destination: deleted by hand (an
                // erasure, a clean-up) waits for a decision instead of coming back.
                w.hold(Issue {
                    field: MATCH_CHOICE.into(),
                    rule: Rule::ChangedInDestination,
                    value: Some(t.dest_id.clone()),
                    message: format!("destination record {} was deleted since Cutover wrote it", t.dest_id),
                    suggestion: Some(format!("create it again ({MATCH_CHOICE}={CREATE_NEW}), or skip")),
                });
                w.candidates = Some(sides(std::slice::from_ref(&t.dest_id))?);
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
}

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

/// The match index as the destination stands for the record deciding: a candidate counts only
/// while it holds the key value — as read now, or as an earlier record of the batch is about to
/// leave it. The index is as old as the run's scan (an earlier batch may have changed a record's
/// email since) and a resumed run rebuilds it from the destination: judged this way, both decide
/// alike.
struct AsItStands<'a> {
    known: &'a Prefetched,
    plan: &'a ObjectPlan,
    region: phonenumber::country::Id,
    current: &'a DestRecords,
    dedupe: &'a BatchDeduper<'a>,
    works: &'a [Work],
}

impl MatchLookup for AsItStands<'_> {
    fn written(&self, source_id: &str) -> Option<crate::pipeline::dedupe::Written> {
        self.known.written(source_id)
    }

    fn candidates(&self, key: usize, value: &str) -> Vec<crate::pipeline::dedupe::Written> {
        let Some(mk) = self.plan.match_keys.get(key) else { return Vec::new() };
        let holds = |dest: &str| -> bool {
            let values = match self.dedupe.lead_of(dest) {
                Some(lead) => self.works.get(lead).and_then(|w| w.finals.as_deref()),
                None => self.current.get(dest).map(Vec::as_slice),
            };
            // Not read: it no longer exists.
            let Some(values) = values else { return false };
            let have = values.get(mk.index).and_then(|v| v.as_deref());
            have.and_then(|v| normalize_key(mk.kind, v, false, self.region)).as_deref() == Some(value)
        };
        self.known.candidates(key, value).into_iter().filter(|(d, _)| holds(d)).collect()
    }

    fn lead_holds(&self, lead: usize, key: usize, value: &str) -> bool {
        lead_holds(self.plan, self.region, self.works, lead, key, value)
    }
}

/// Whether the record of the batch at `lead` is about to be written holding this normalised key
/// value (its values as merged so far).
fn lead_holds(
    plan: &ObjectPlan,
    region: phonenumber::country::Id,
    works: &[Work],
    lead: usize,
    key: usize,
    value: &str,
) -> bool {
    let Some(mk) = plan.match_keys.get(key) else { return false };
    let Some(finals) = works.get(lead).and_then(|w| w.finals.as_deref()) else { return true };
    let have = finals.get(mk.index).and_then(|v| v.as_deref());
    have.and_then(|v| normalize_key(mk.kind, v, false, region)).as_deref() == Some(value)
}

/// What the batch knows of the destination and of its own records so far.
struct Standing<'a> {
    region: phonenumber::country::Id,
    known: &'a Prefetched,
    current: &'a DestRecords,
    dedupe: &'a BatchDeduper<'a>,
    context: &'a Context,
}

/// Whose key value it is not: the record being written itself.
#[derive(Clone, Copy)]
enum Holder<'a> {
    /// The destination record an update writes.
    Dest(&'a str),
    /// The record of the batch a follower merges into (and what that one updates, if anything).
    Lead(usize),
}

/// A match-key value an update or a merge would give a record, which another record holds.
struct TakenKey {
    field: String,
    value: String,
    /// The other record: a destination id, or a record of the batch (its source id).
    other: Result<String, String>,
}

/// A key value `after` gives the record (changed from `before`) that another record holds as the
/// batch stands: a destination record holding it now (or as a record of the batch leaves it), or
/// a record of the batch about to be written with it.
fn fills_anothers_key(
    plan: &ObjectPlan,
    standing: &Standing<'_>,
    works: &[Work],
    before: &[Value],
    after: &[Value],
    itself: Holder<'_>,
) -> Option<TakenKey> {
    let region = standing.region;
    let norm =
        |kind, v: Option<&Value>| v.and_then(|v| v.as_deref()).and_then(|v| normalize_key(kind, v, false, region));
    let (own_dest, own_lead): (Option<&str>, Option<usize>) = match itself {
        Holder::Dest(d) => (Some(d), standing.dedupe.lead_of(d)),
        Holder::Lead(l) => (
            match works.get(l).map(|w| &w.step) {
                Some(Step::Update(t)) => Some(t.dest_id.as_str()),
                _ => None,
            },
            Some(l),
        ),
    };
    let lookup =
        AsItStands { known: standing.known, plan, region, current: standing.current, dedupe: standing.dedupe, works };
    for (k, mk) in plan.match_keys.iter().enumerate() {
        // Most updates leave their keys as they were: nothing to normalise then.
        if after.get(mk.index) == before.get(mk.index) {
            continue;
        }
        let Some(value) = norm(mk.kind, after.get(mk.index)) else { continue };
        if norm(mk.kind, before.get(mk.index)).as_ref() == Some(&value) {
            continue;
        }
        let dest = lookup.candidates(k, &value).into_iter().map(|(d, _)| d).find(|d| Some(d.as_str()) != own_dest);
        let lead = standing
            .dedupe
            .leads_holding(k, &value)
            .iter()
            .copied()
            .find(|&l| Some(l) != own_lead && lead_holds(plan, region, works, l, k, &value));
        let other = match (dest, lead) {
            (Some(d), _) => Ok(d),
            (None, Some(l)) => Err(works.get(l).map(|w| w.source_id().to_string()).unwrap_or_default()),
            (None, None) => continue,
        };
        return Some(TakenKey { field: mk.field.clone(), value, other });
    }
    None
}

/// Holds a record whose write would give its destination record another record's key value.
fn hold_for_taken_key(
    w: &mut Work,
    taken: TakenKey,
    dest_id: &str,
    sides: &dyn Fn(&[String]) -> Result<String>,
) -> Result<()> {
    let other = match &taken.other {
        Ok(d) => format!("destination record {d}"),
        Err(sid) => format!("source record {} of this batch", crate::text::shown(sid)),
    };
    w.hold(Issue {
        field: taken.field,
        rule: Rule::ConflictingMatch,
        value: Some(taken.value.clone()),
        message: format!(
            "{other} holds '{}' too: writing it into {dest_id} would leave two records sharing it",
            taken.value
        ),
        suggestion: Some(format!(
            "correct it (here or in the export), skip it, or write it anyway ({MATCH_CHOICE}={dest_id})"
        )),
    });
    let mut ids = vec![dest_id.to_string()];
    if let Ok(d) = taken.other {
        ids.push(d);
    }
    w.candidates = Some(sides(&ids)?);
    w.current = None;
    Ok(())
}

/// The operator skipped this row from the queue, and it reads as it did then: the skip stands
/// (a row changed since is judged afresh). Returns the audit detail.
/// Why a row makes no record of this object (outside its `where`, or blank in its `repeat`
/// entry), saying so when an earlier run wrote a record for it: that record stays.
fn out_of_scope(plan: &ObjectPlan, lookups: &Lookups<'_>, item: &Item) -> Result<Option<String>> {
    let Item::Mapped(m) = item else { return Ok(None) };
    let why = match (&plan.filter, &plan.repeat) {
        (Some(filter), _) if !filter.admits(&m.source.values) => format!("outside the object's where: {filter}"),
        (_, Some(repeat)) => match repeat.no_row(&m.source.values) {
            Some(why) => why,
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    let id = &m.source.source_id;
    let written = match lookups.in_flight.get(id) {
        Some(dest) => Some(dest.clone()),
        None if m.occurrence == 1 => lock(lookups.store)?.dest_id(&plan.name, id)?,
        None => None,
    };
    Ok(Some(match written {
        Some(dest) => {
            format!("{why}; the record an earlier run wrote for it (destination id {dest}) stays in the destination")
        }
        None => why,
    }))
}

fn operator_skip(plan: &ObjectPlan, lookups: &Lookups<'_>, item: &Item) -> Result<Option<String>> {
    let Item::Mapped(m) = item else { return Ok(None) };
    if lookups.skips.is_empty() {
        return Ok(None);
    }
    let Some(skip) = lookups.skips.get(&(m.source.source_id.clone(), m.occurrence)) else { return Ok(None) };
    if json_object(&plan.source_fields, &m.source.values)? != skip.source {
        return Ok(None);
    }
    let reason = skip.reason.as_deref().map(|r| format!(": {}", crate::text::shown(r))).unwrap_or_default();
    Ok(Some(format!("skipped by the operator (queue item {}){reason}", skip.queue_id)))
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
    standing: &Standing<'_>,
) -> Option<Decision> {
    let region = standing.region;
    let Item::Mapped(m) = &works[i].item else { return None };
    let values = m.values.clone();
    let lead_sid = works[lead].source_id().to_string();
    works[i].step = Step::Follow { lead };
    works[i].matched_by = Some(matched_by.clone());
    let lead_now = works[lead].finals.clone().unwrap_or_default();
    // Found by its own source id, the record was merged into this destination record by an earlier
    // run (or an operator's choice): that decision stands, no match key second-guesses it.
    let decided = matched_by == "source_id" || matched_by == OPERATOR_CHOICE;
    let conflicts = if decided { Vec::new() } else { conflicting_keys(plan, &matched_by, &values, &lead_now, region) };
    if !conflicts.is_empty() {
        let other =
            format!("{NOT_A_RECORD}record {} of this batch (found by {matched_by})", crate::text::shown(&lead_sid));
        works[i].held_beside = Some((lead, conflicts.clone()));
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
    if plan.merge == MergeRule::Queue && !decided {
        works[i].held_beside = Some((lead, Vec::new()));
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
    // The record's own destination record, which an earlier record of the batch (found by a
    // key) is about to fill in: it is still that record's survivor and applies its own rule on
    // top — as it would one batch later.
    let survives = survivor_of_leads_record(standing, works, i, lead, &matched_by);
    if let Some(dest) = &survives
        && let Some(image) = standing.context.images.get(dest)
        && let Some(now) = standing.current.get(dest)
    {
        let issues = changed_in_destination(plan, dest, image, now).ok().unwrap_or_default();
        if !issues.is_empty() {
            for issue in issues {
                works[i].hold(issue);
            }
            return None;
        }
    }
    let rule = match &survives {
        Some(dest) if standing.context.created.contains(dest) => MergeRule::SourceWins,
        Some(_) => merge_rule_for(plan, &matched_by),
        None => member_rule(plan),
    };
    let merged = merge(&lead_now, &values, rule);
    // Found by its own id or not, what it fills in may not be a key another record holds — as
    // its own update would be judged one batch later. Only an operator's choice writes it anyway.
    if matched_by != OPERATOR_CHOICE
        && let Some(taken) = fills_anothers_key(plan, standing, works, &lead_now, &merged, Holder::Lead(lead))
    {
        let other = match &taken.other {
            Ok(d) => format!("destination record {d}"),
            Err(sid) => format!("source record {} of this batch", crate::text::shown(sid)),
        };
        works[i].hold(Issue {
            field: taken.field,
            rule: Rule::ConflictingMatch,
            value: Some(taken.value.clone()),
            message: format!(
                "{other} holds '{}' too: merging it into source record {} of this batch would leave two records \
                 sharing it",
                taken.value,
                crate::text::shown(&lead_sid)
            ),
            suggestion: Some("correct it (here or in the export), or skip it".into()),
        });
        return None;
    }
    let changed: Vec<bool> = lead_now.iter().zip(&merged).map(|(a, b)| a != b).collect();
    let issues = validate(plan, owners, &merged, &[], Some(&changed));
    if !issues.is_empty() {
        for issue in issues {
            works[i].hold(issue);
        }
        return None;
    }
    if survives.is_some() {
        works[i].current = Some(lead_now);
        works[i].own_finals = Some(merged.clone());
        works[i].role = Role::Survivor { group: true };
    } else {
        works[i].role = Role::Member { survivor: lead_sid.clone() };
    }
    works[lead].finals = Some(merged);
    works[i].merge_rule = Some(rule);
    Some(Decision::IntoLead { lead, matched_by: works[i].matched_by.clone().unwrap_or_default() })
}

/// The destination record the lead updates, when the follower found it by its own source id
/// and is its survivor (the first source record Cutover wrote there).
fn survivor_of_leads_record(
    standing: &Standing<'_>,
    works: &[Work],
    i: usize,
    lead: usize,
    matched_by: &str,
) -> Option<String> {
    if matched_by != "source_id" {
        return None;
    }
    let Step::Update(t) = &works[lead].step else { return None };
    let sid = works[i].source_id();
    let feeding = standing.context.members.get(&t.dest_id)?;
    feeding.iter().any(|m| m.source_id == sid && !m.member).then(|| t.dest_id.clone())
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
