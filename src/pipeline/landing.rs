//! Batches landing, in the order they were read: a batch whose writes were sent on their own
//! task takes the destination's answers, settles every record's outcome and is handed to the
//! store writer with its checkpoint. Several batches of an object may be in flight at once (see
//! [`super::batch::Reach`] for why that decides nothing differently); they land one by one,
//! oldest first, so checkpoints, counters and the match index advance exactly as in a run that
//! waited for each batch.

use super::batch::Flight;
use super::commit::CommitWriter;
use super::extract::Item;
use super::index_writer::{IndexBatch, IndexWriter};
use super::linkage::index::LinkIndex;
use super::plan::ObjectPlan;
use super::run::Engine;
use crate::model::Counts;
use crate::store::BatchCommit;
use color_eyre::eyre::{Result, eyre};
use indexmap::IndexMap;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// What stays the same for every batch of an object's pass.
pub(super) struct LandCtx<'a> {
    pub run_id: i64,
    pub plan: &'a Arc<ObjectPlan>,
    /// The object's place in the run's progress.
    pub position: usize,
    pub resolve_queue: bool,
    /// The share of a batch failed or queued above which the run halts.
    pub threshold: f64,
    pub linkage: Option<&'a Mutex<LinkIndex>>,
}

/// A batch in flight's place in the source: what its commit records beside its outcomes.
pub(super) struct Landing {
    pub batch_no: u64,
    /// Records read.
    pub n: u64,
    /// Where the next batch starts (the checkpoint this batch's commit writes).
    pub cursor: String,
    /// The source's last batch.
    pub done: bool,
    /// The newest modification time among its records (where a delta run starts next time).
    pub high_water: Option<String>,
}

impl Engine {
    /// Lands one batch: answers taken, outcomes settled, handed to the store and match-index
    /// writers. Returns why the run halts when too much of the batch failed or was queued.
    pub(super) async fn land(
        &self,
        ctx: &LandCtx<'_>,
        flight: Flight,
        landing: Landing,
        counts: &mut Counts,
        writer: &mut CommitWriter,
        index_writer: &Mutex<IndexWriter>,
    ) -> Result<Option<String>> {
        let plan = ctx.plan;
        let before = *counts;
        let Landing { batch_no, n, cursor, done, high_water } = landing;
        let mut commit = self
            .land_batch(ctx.run_id, plan, flight, counts, Some(cursor), done, ctx.resolve_queue, ctx.linkage)
            .await?;
        let rules = rule_tally(&commit);
        commit.high_water = high_water;
        let for_index = IndexBatch {
            object: plan.name.clone(),
            run_id: ctx.run_id,
            keys: std::mem::take(&mut commit.match_keys),
            written: commit.id_map.iter().map(|w| w.source_id.clone()).collect(),
        };
        index_writer.lock().map_err(|_| eyre!("match index writer lock poisoned"))?.defer(for_index)?;
        writer.send(batch_no, commit)?;
        let now = *counts;
        self.progress.send_modify(|p| p.objects[ctx.position].counts = now);
        let bad = (now.failed - before.failed) + (now.queued - before.queued);
        Ok((n >= 20 && bad as f64 / n as f64 > ctx.threshold).then(|| {
            format!(
                "{bad} of {n} records in batch {batch_no} of {} were failed or queued ({:.0}%, above the halt \
                 threshold of {:.0}%); most common: {}",
                plan.name,
                100.0 * bad as f64 / n as f64,
                100.0 * ctx.threshold,
                rules
            )
        }))
    }

    /// Lands every batch in flight, oldest first. A halt found on the way is returned after all
    /// of them landed: what was sent is committed.
    pub(super) async fn land_all(
        &self,
        ctx: &LandCtx<'_>,
        flights: &mut VecDeque<(Flight, Landing)>,
        counts: &mut Counts,
        writer: &mut CommitWriter,
        index_writer: &Mutex<IndexWriter>,
    ) -> Result<Option<String>> {
        let n = flights.len();
        self.land_first(ctx, flights, n, counts, writer, index_writer).await
    }

    /// Lands the `n` oldest batches in flight, in order; a halt found on the way is returned
    /// after they all landed.
    pub(super) async fn land_first(
        &self,
        ctx: &LandCtx<'_>,
        flights: &mut VecDeque<(Flight, Landing)>,
        n: usize,
        counts: &mut Counts,
        writer: &mut CommitWriter,
        index_writer: &Mutex<IndexWriter>,
    ) -> Result<Option<String>> {
        let mut halt = None;
        for _ in 0..n {
            let Some((flight, landing)) = flights.pop_front() else { break };
            let why = self.land(ctx, flight, landing, counts, writer, index_writer).await?;
            if halt.is_none() {
                halt = why;
            }
        }
        Ok(halt)
    }

    /// The newest modification time among a batch's records, as a delta run compares it.
    pub(super) fn high_water(&self, plan: &ObjectPlan, items: &[Item]) -> Option<String> {
        let i = plan.modified?;
        items
            .iter()
            .filter_map(|it| match it {
                Item::Mapped(m) => m.source.values.get(i).cloned().flatten(),
                Item::Malformed { .. } => None,
            })
            .filter(|v| !v.trim().is_empty())
            .map(|v| super::delta::modified_key(&v, self.settings.day_first))
            .max()
    }
}

/// "no_translation on dealstage (180), …" for a halt message.
fn rule_tally(commit: &BatchCommit) -> String {
    // Per rule: how many, and the first few records, so the operator can look at them.
    let mut tally: IndexMap<String, (u64, Vec<&str>)> = IndexMap::new();
    for q in &commit.queue {
        let e = tally.entry(q.reason.clone()).or_default();
        e.0 += 1;
        if e.1.len() < 3 {
            e.1.push(&q.source_id);
        }
    }
    for a in commit.audit.iter().filter(|a| a.outcome == "failed") {
        let e = tally.entry("failed writes or unreadable rows".into()).or_default();
        e.0 += 1;
        if e.1.len() < 3 {
            e.1.push(&a.source_id);
        }
    }
    tally.sort_by(|_, a, _, b| b.0.cmp(&a.0));
    let parts: Vec<String> = tally
        .iter()
        .take(3)
        .map(|(k, (n, ids))| {
            let ids: Vec<String> = ids.iter().map(|i| crate::text::shown(i)).collect();
            format!("{k} ({n}, e.g. records {}{})", ids.join(", "), if *n > ids.len() as u64 { ", …" } else { "" })
        })
        .collect();
    if parts.is_empty() { "none".into() } else { parts.join("; ") }
}
