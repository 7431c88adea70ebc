//! The extract stage: a producer task streams a source object in batches from a resumable
//! cursor and maps each batch, so the next batch is read and mapped while the current one is
//! deduped and written. At most two mapped batches wait: memory stays flat as the source grows.

use super::map::{Mapped, Mapper};
use super::plan::ObjectPlan;
use super::scope::Scope;
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
    Malformed { source_id: String, origin: String, message: String },
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
/// the operator corrected are mapped with their corrections.
pub fn spawn(
    source: Arc<dyn Source>,
    plan: Arc<ObjectPlan>,
    mapper: Mapper,
    corrections: Corrections,
    batch_size: usize,
    cursor: Cursor,
    filter: Option<Arc<Scope>>,
    timings: Arc<Timings>,
) -> (mpsc::Receiver<Result<MappedBatch>>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<Result<MappedBatch>>(2);
    let handle = tokio::spawn(async move {
        let no_corrections = IndexMap::new();
        let mut cursor = cursor;
        loop {
            let started = Instant::now();
            let mut batch = match source.read_batch(&plan.source_object, &plan.id_field, &cursor, batch_size).await {
                Ok(b) => b,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            if let Some(f) = &filter {
                // A delta or a sample keeps its part; unreadable rows are always reported.
                batch.records.retain(|r| match r {
                    Extracted::Record(rec) => f.wants(rec),
                    Extracted::Malformed { .. } => true,
                });
            }
            timings.add(Stage::Extract, started.elapsed());
            let started = Instant::now();
            // Mapping is CPU work with store reads for parent ids: keep it off the async threads' queue.
            let mapped = tokio::task::block_in_place(|| {
                batch
                    .records
                    .into_iter()
                    .map(|r| match r {
                        Extracted::Record(rec) => {
                            let fixes = corrections.get(&rec.source_id).unwrap_or(&no_corrections);
                            mapper.map(rec, fixes).map(Item::Mapped)
                        }
                        Extracted::Malformed { source_id, origin, message } => {
                            Ok(Item::Malformed { source_id, origin, message })
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
