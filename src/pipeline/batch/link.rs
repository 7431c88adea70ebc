//! Record linkage inside a batch: a record no source id found is weighed against its candidates
//! — the destination's records as they are now, and the records the run creates (the batch's own
//! too) — and linked, held for review as `possible_match`, or created. Every verdict keeps its
//! evidence for the audit log.

use super::Work;
use crate::model::{CREATE_NEW, Issue, MATCH_CHOICE, Rule, Value};
use crate::pipeline::dedupe::{BatchDeduper, Decision};
use crate::pipeline::linkage::index::{Entry, Holder, LinkIndex, Verdict, percent, probability};
use crate::pipeline::linkage::link::Values;

/// What linkage made of a record.
pub(super) enum Linked {
    /// Update, fold into a lead, or create.
    Decided(Decision),
    /// Held for review, with the destination records to show beside it.
    Held { issue: Issue, dest_ids: Vec<String> },
}

/// The matched_by of a record linkage linked.
pub const LINKAGE: &str = "linkage";

/// A closure that reads an entry's values as they are now (named, so that it is general over
/// the entry's lifetime as `LinkIndex::rank` asks).
fn current_values<F: for<'e> Fn(&'e Entry) -> Option<std::borrow::Cow<'e, Values>>>(f: F) -> F {
    f
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
    let now = current_values(|e: &Entry| {
        let values = match &e.holder {
            // As the batch stands: a lead about to update it holds what it will write.
            Holder::Dest(d) => match dedupe.lead_of(d) {
                Some(lead) => works.get(lead).and_then(|w| w.finals.as_deref()).map(|f| plan.values(f)),
                None => current.get(d).map(|v| plan.values(v)),
            },
            Holder::Lead(p) => works.get(*p).and_then(|w| w.finals.as_deref()).map(|f| plan.values(f)),
            Holder::Gone => None,
        };
        values.map(std::borrow::Cow::Owned)
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
            let merge = dest_ids.first().map(|d| format!("merge it ({MATCH_CHOICE}={d}), ")).unwrap_or_default();
            works[i].linkage = Some((p, format!("possible match, held: {why}")));
            Linked::Held {
                issue: Issue {
                    field: MATCH_CHOICE.into(),
                    rule: Rule::PossibleMatch,
                    value: None,
                    message: format!(
                        "may be the same as {} ({}), but {why}; candidates: {}",
                        ranked.first().map(|c| index.name(c.entry)).unwrap_or_default(),
                        percent(p),
                        listed.join("; ")
                    ),
                    suggestion: Some(format!(
                        "{merge}create it as a record of its own ({MATCH_CHOICE}={CREATE_NEW}), or skip"
                    )),
                },
                dest_ids,
            }
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
