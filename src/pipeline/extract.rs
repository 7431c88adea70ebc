//! The extract stage: a producer task streams a source object in batches from a resumable
//! cursor and maps each batch, so the next batch is read and mapped while the current one is
//! deduped and written. At most two mapped batches wait: memory stays flat as the source grows.

use super::map::{Mapped, Mapper};
use super::plan::ObjectPlan;
use super::scope::Scope;
use super::seen::SeenIds;
use super::timings::{Stage, Timings};
use crate::connect::{Cursor, Source};
use crate::model::Extracted;
use color_eyre::eyre::Result;
use indexmap::IndexMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// One position of a batch: a mapped record, or a row the source could not read.
pub enum Item {
    Malformed { source_id: String, origin: String, message: String, occurrence: u32 },
    Mapped(Mapped),
}

/// A mapped batch and where the source continues after it.
pub struct MappedBatch {
    pub items: Vec<Item>,
    pub next: Cursor,
    pub done: bool,
}

/// The operator's corrections, by source id (see `Store::corrections_for`).
pub type Corrections = HashMap<String, IndexMap<String, Option<String>>>;

#[allow(clippy::too_many_arguments)]
/// Starts the producer at `cursor` (the start, or a resumed run's checkpoint). It stops after
/// the last batch, on the first error (which it sends), or when the receiver is dropped. Records
/// the operator corrected are mapped with their corrections. Every row read is numbered among
/// the rows under its source id (`seen`: what the run read before), before a delta or a sample
/// keeps its part — a second row under an id is a record of its own wherever it is.
pub fn spawn(
    source: Arc<dyn Source>,
    plan: Arc<ObjectPlan>,
    mapper: Mapper,
    corrections: Corrections,
    batch_size: usize,
    cursor: Cursor,
    filter: Option<Arc<Scope>>,
    timings: Arc<Timings>,
    seen: SeenIds,
) -> (mpsc::Receiver<Result<MappedBatch>>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<Result<MappedBatch>>(2);
    let handle = tokio::spawn(async move {
        let no_corrections = IndexMap::new();
        let mut cursor = cursor;
        let mut seen = seen;
        // A resumed delta or sample left no trace of the rows its part did not take: number the
        // rows before the checkpoint again, so a second row under an id is still the second.
        if filter.is_some() && cursor != Cursor::start() {
            match renumber(source.as_ref(), &plan, batch_size, &cursor).await {
                Ok(Some(again)) => seen = again,
                Ok(None) => tracing::warn!(
                    object = %plan.name,
                    "the checkpoint was not met reading the source again: rows are numbered from the audit log"
                ),
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
        loop {
            let started = Instant::now();
            let batch = match source.read_batch(&plan.source_object, &plan.id_field, &cursor, batch_size).await {
                Ok(b) => b,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let occurrences: Vec<(super::seen::Occurrence, u64)> = batch
                .records
                .iter()
                .map(|r| match r {
                    Extracted::Record(rec) => {
                        let hash = super::delta::source_hash_u64(&rec.values);
                        (seen.next(&rec.source_id, Some(hash)), hash)
                    }
                    Extracted::Malformed { source_id, .. } => (seen.next(source_id, None), 0),
                })
                .collect();
            let mut numbered: Vec<(Extracted, (super::seen::Occurrence, u64))> =
                batch.records.into_iter().zip(occurrences).collect();
            if let Some(f) = &filter {
                // A delta or a sample keeps its part; unreadable rows and second rows under an id
                // are always reported.
                numbered.retain(|(r, (o, _))| match r {
                    Extracted::Record(rec) => o.n > 1 || f.wants(rec),
                    Extracted::Malformed { .. } => true,
                });
            }
            timings.add(Stage::Extract, started.elapsed());
            let started = Instant::now();
            // Mapping is CPU work with store reads for parent ids: keep it off the async threads' queue.
            let mapped = tokio::task::block_in_place(|| {
                numbered
                    .into_iter()
                    .map(|(r, (o, hash))| match r {
                        Extracted::Record(rec) => {
                            let fixes = if o.n == 1 { corrections.get(&rec.source_id) } else { None };
                            let mut m = mapper.map(rec, fixes.unwrap_or(&no_corrections))?;
                            m.occurrence = o.n;
                            m.same_as_first = o.same_as_first;
                            m.source_hash = Some(hash);
                            Ok(Item::Mapped(m))
                        }
                        Extracted::Malformed { source_id, origin, message } => {
                            Ok(Item::Malformed { source_id, origin, message, occurrence: o.n })
                        }
                    })
                    .collect::<Result<Vec<_>>>()
            });
            timings.add(Stage::Map, started.elapsed());
            let done = batch.done;
            let next = batch.next.clone();
            let msg = mapped.map(|items| MappedBatch { items, next: batch.next, done });
            let failed = msg.is_err();
            if tx.send(msg).await.is_err() || done || failed {
                return;
            }
            cursor = next;
        }
    });
    (rx, handle)
}

/// The ids of every row before `upto`, read again from the start in batches of the same size;
/// `None` when no batch ends at `upto` (the batch size changed since the checkpoint).
async fn renumber(source: &dyn Source, plan: &ObjectPlan, batch_size: usize, upto: &Cursor) -> Result<Option<SeenIds>> {
    let mut seen = SeenIds::default();
    let mut cursor = Cursor::start();
    loop {
        let batch = source.read_batch(&plan.source_object, &plan.id_field, &cursor, batch_size).await?;
        for r in &batch.records {
            match r {
                Extracted::Record(rec) => seen.next(&rec.source_id, Some(super::delta::source_hash_u64(&rec.values))),
                Extracted::Malformed { source_id, .. } => seen.next(source_id, None),
            };
        }
        if batch.next == *upto {
            return Ok(Some(seen));
        }
        if batch.done {
            return Ok(None);
        }
        cursor = batch.next;
    }
}
