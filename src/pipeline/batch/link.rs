//! Record linkage inside a batch: a record no source id found is weighed against its candidates
//! — the destination's records as they are now, and the records the run creates (the batch's own
//! too) — and linked, held for review as `possible_match`, or created. Every verdict keeps its
//! evidence for the audit log.

use super::Work;
use crate::model::{CREATE_NEW, Issue, MATCH_CHOICE, Rule, Value};
use crate::pipeline::dedupe::{BatchDeduper, Decision};
use crate::pipeline::linkage::index::{Entry, Holder, LinkIndex, Verdict, percent, probability};
use crate::pipeline::linkage::link::Values;
use crate::pipeline::linkage::setup::LinkagePlan;

/// What linkage made of a record.
pub(super) enum Linked {
    /// Update, fold into a lead, or create.
    Decided(Decision),
    /// Held for review, with the destination records to show beside it, and the records of the
    /// batch among its candidates (their positions).
    Held { issue: Issue, dest_ids: Vec<String>, leads: Vec<usize> },
}

/// The matched_by of a record linkage linked.
pub const LINKAGE: &str = "linkage";

/// A closure that reads an entry's values as they are now (named, so that it is general over
/// the entry's lifetime as `LinkIndex::rank` asks).
fn current_values<F: for<'e> Fn(&'e Entry) -> Option<std::borrow::Cow<'e, Values>>>(f: F) -> F {
    f
}

/// An entry's values as a record read now has them: read anew as indexed (nearly always), as
/// indexed, not copied once per pair.
fn as_now<'e>(plan: &LinkagePlan, e: &'e Entry, mapped: &[Value]) -> std::borrow::Cow<'e, Values> {
    if plan.same_values(mapped, &e.values) {
        std::borrow::Cow::Borrowed(&e.values)
    } else {
        std::borrow::Cow::Owned(plan.values(mapped))
    }
}

/// Weighs the record at `i` (its mapped `values`); its evidence goes to `works[i].linkage`.
pub(super) fn decide(
    index: &LinkIndex,
    works: &mut [Work],
    i: usize,
    values: &[Value],
    current: &std::collections::HashMap<String, Vec<Value>>,
    dedupe: &BatchDeduper<'_>,
) -> Linked {
    let plan = &index.plan;
    let ours = plan.values(values);
    // As the batch stands: a lead about to update a record holds what it will write.
    let now = current_values(|e: &Entry| {
        let mapped = match &e.holder {
            Holder::Dest(d) => match dedupe.lead_of(d) {
                Some(lead) => works.get(lead).and_then(|w| w.finals.as_deref()),
                None => current.get(d).map(Vec::as_slice),
            },
            Holder::Lead(p) => works.get(*p).and_then(|w| w.finals.as_deref()),
            Holder::Gone => None,
        };
        mapped.map(|m| as_now(plan, e, m))
    });
    let ranked = index.rank(&ours, &now);
    let taken = |e: usize| matches!(&index.entry(e).holder, Holder::Dest(d) if dedupe.lead_of(d).is_some());
    match index.judge(ranked, &taken) {
        Verdict::Link { best: c, runner_up } => {
            let p = probability(c.score);
            let runner = match runner_up {
                Some(r) => format!("; runner-up {} at {:.1} points", index.name(r.entry), r.score),
                None => "; no other candidate".into(),
            };
            works[i].linkage = Some((p, format!("linked to {}: {}{runner}", index.name(c.entry), index.explain(&c))));
            Linked::Decided(match index.entry(c.entry).holder.clone() {
                Holder::Lead(lead) => Decision::IntoLead { lead, matched_by: LINKAGE.into() },
                Holder::Dest(d) => match dedupe.lead_of(&d) {
                    Some(lead) => Decision::IntoLead { lead, matched_by: LINKAGE.into() },
                    None => Decision::Update { dest_id: d, matched_by: LINKAGE.into() },
                },
                Holder::Gone => Decision::Create,
            })
        }
        Verdict::Review { why, ranked } => {
            let p = ranked.first().map_or(0.0, |c| probability(c.score));
            // Taken by a record of this batch: named.
            let lead = ranked.first().and_then(|c| match &index.entry(c.entry).holder {
                Holder::Dest(d) => dedupe.lead_of(d),
                _ => None,
            });
            let why = match lead.and_then(|l| works.get(l)) {
                Some(w) if why.contains("of another source record") => why.replace(
                    "of another source record",
                    &format!("of source record {} of this batch", crate::text::shown(w.source_id())),
                ),
                _ => why,
            };
            let listed: Vec<String> = ranked
                .iter()
                .enumerate()
                .map(|(n, c)| format!("{}. {} — {}", n + 1, index.name(c.entry), index.explain(c)))
                .collect();
            let dest_ids: Vec<String> = ranked
                .iter()
                .filter_map(|c| match &index.entry(c.entry).holder {
                    Holder::Dest(d) => Some(d.clone()),
                    _ => None,
                })
                .collect();
            let leads: Vec<usize> = ranked
                .iter()
                .filter_map(|c| match &index.entry(c.entry).holder {
                    Holder::Lead(p) => Some(*p),
                    _ => None,
                })
                .collect();
            works[i].linkage = Some((p, format!("possible match, held: {why}")));
            let message = format!(
                "may be the same as {} ({}), but {why}; candidates: {}",
                ranked.first().map(|c| index.name(c.entry)).unwrap_or_default(),
                percent(p),
                listed.join("; ")
            );
            possible_match(message, "", dest_ids, leads)
        }
        Verdict::Create(ranked) => {
            works[i].linkage = Some(match ranked.first() {
                Some(best) => (
                    probability(best.score),
                    format!(
                        "no likely match (review_above {}); nearest: {} — {}",
                        index.plan.linker.review_above,
                        index.name(best.entry),
                        index.explain(best)
                    ),
                ),
                None => (
                    0.0,
                    "no candidate: no record shares a blocking key with it (or only keys too many records share)"
                        .to_string(),
                ),
            });
            Linked::Decided(Decision::Create)
        }
    }
}

/// A record an earlier run held for a person, its row unchanged: held again whatever the
/// verdict now (the destination holds more records than when it was held, and their counts move
/// the weights of rare values), so a re-run decides nothing a person has not. `queue reprocess`
/// decides it anew; `@match` decides it.
pub(super) fn kept_for_review(linked: Linked, w: &mut Work) -> Linked {
    let Linked::Decided(decision) = linked else { return linked };
    let (dest_ids, leads) = match &decision {
        Decision::Update { dest_id, .. } => (vec![dest_id.clone()], Vec::new()),
        Decision::IntoLead { lead, .. } => (Vec::new(), vec![*lead]),
        Decision::Create | Decision::Ambiguous { .. } => (Vec::new(), Vec::new()),
    };
    let (p, now) = w.linkage.clone().unwrap_or_default();
    w.linkage = Some((p, format!("possible match, held: waits for a person since an earlier run; now {now}")));
    let message = format!(
        "held for a person by an earlier run, and its row has not changed since: a run does not decide it again \
         (now: {now})"
    );
    possible_match(message, "; `cutover queue reprocess` weighs it again", dest_ids, leads)
}

/// A record held as `possible_match`: the message, what an operator can do (merging into the
/// first destination record shown, when there is one), and the candidates shown beside it.
fn possible_match(message: String, more: &str, dest_ids: Vec<String>, leads: Vec<usize>) -> Linked {
    let merge = dest_ids.first().map(|d| format!("merge it ({MATCH_CHOICE}={d}), ")).unwrap_or_default();
    Linked::Held {
        issue: Issue {
            field: MATCH_CHOICE.into(),
            rule: Rule::PossibleMatch,
            value: None,
            message,
            suggestion: Some(format!(
                "{merge}create it as a record of its own ({MATCH_CHOICE}={CREATE_NEW}), or skip{more}"
            )),
        },
        dest_ids,
        leads,
    }
}

/// After the batch's write: a record held beside candidates of its own batch is shown the
/// destination records they were written to — their values side by side, the message naming
/// them, `@match` able to choose one (before, only "new" or skip were left).
pub(super) fn show_written_candidates(works: &mut [Work]) -> color_eyre::Result<()> {
    for i in 0..works.len() {
        let leads = std::mem::take(&mut works[i].linked_beside);
        let mut sides: serde_json::Map<String, serde_json::Value> = match works[i].candidates.as_deref() {
            Some(json) => serde_json::from_str(json)?,
            None => serde_json::Map::new(),
        };
        let mut named = Vec::new();
        for p in leads {
            let Some(lead) = works.get(p) else { continue };
            let (Some(o), Some(dest), Some(written)) = (lead.outcome, lead.dest_id.clone(), lead.written.as_deref())
            else {
                continue;
            };
            if !o.is_written() {
                continue;
            }
            sides.insert(dest.clone(), serde_json::from_str(written)?);
            named.push((p, dest));
        }
        if named.is_empty() {
            continue;
        }
        let w = &mut works[i];
        for issue in w.issues.iter_mut().filter(|is| is.rule == Rule::PossibleMatch) {
            for (p, dest) in &named {
                let batch = format!("batch record #{}", p + 1);
                issue.message =
                    replace_name(&issue.message, &batch, &format!("destination record {dest} (written from {batch})"));
            }
            if let Some(s) = issue.suggestion.as_mut()
                && !s.starts_with("merge it")
            {
                *s = format!("merge it ({MATCH_CHOICE}={}), {s}", named[0].1);
            }
        }
        w.candidates = Some(serde_json::to_string(&sides)?);
    }
    Ok(())
}

/// `text` with each `name` (not followed by another digit: `#1` is not `#12`) replaced.
fn replace_name(text: &str, name: &str, with: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(name) {
        let after = &rest[at + name.len()..];
        out.push_str(&rest[..at]);
        if after.starts_with(|c: char| c.is_ascii_digit()) {
            out.push_str(name);
        } else {
            out.push_str(with);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_batch_record_is_renamed_only_where_named_whole() {
        let text =
            "may be the same as batch record #1 (p 0.9); candidates: 1. batch record #1 — …; 2. batch record #12";
        assert_eq!(
            super::replace_name(text, "batch record #1", "destination record 7"),
            "may be the same as destination record 7 (p 0.9); candidates: 1. destination record 7 — …; 2. batch record #12"
        );
    }
}
