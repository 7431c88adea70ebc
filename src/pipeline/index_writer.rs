//! Adding each batch's match keys to the match index, off the engine's path: the keys of batch k
//! go into the index on a writer thread while batch k+1 is deduped, validated and written.
//!
//! The order that keeps dedupe exact: batch k's keys are held back ("deferred") until batch k+1
//! has looked its candidates up, and that lookup sees them from memory ([`IndexWriter::pending`]).
//! Then they are released to the thread, and the lookup of batch k+2 first waits until they are
//! applied ([`IndexWriter::wait_applied`]). So every lookup sees every earlier batch: from the
//! index, or from memory — never neither.

use super::timings::{Stage, Timings};
use crate::store::match_index::MatchIndex;
use color_eyre::eyre::{Result, eyre};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::task::JoinHandle;

/// A written batch's contribution to the index.
pub struct IndexBatch {
    pub object: String,
    pub run_id: i64,
    /// (key, normalised value, destination id) of the records written.
    pub keys: Vec<(String, String, String)>,
    /// Source ids that now have an id-map entry.
    pub written: Vec<String>,
}

pub struct IndexWriter {
    send: Option<SyncSender<IndexBatch>>,
    applied: Receiver<Result<()>>,
    handle: JoinHandle<()>,
    deferred: Option<IndexBatch>,
    /// Batches released to the thread and not yet confirmed applied.
    outstanding: usize,
}

impl IndexWriter {
    pub fn start(index: Arc<Mutex<MatchIndex>>, timings: Arc<Timings>) -> Self {
        let (send, batches) = std::sync::mpsc::sync_channel::<IndexBatch>(1);
        let (confirm, applied) = std::sync::mpsc::channel::<Result<()>>();
        let handle = tokio::task::spawn_blocking(move || {
            for batch in batches {
                let started = Instant::now();
                let result = index.lock().map_err(|_| eyre!("match index lock poisoned")).and_then(|mut idx| {
                    idx.add(&batch.object, &batch.keys, Some(batch.run_id))?;
                    idx.note_written(&batch.written);
                    Ok(())
                });
                timings.add(Stage::Index, started.elapsed());
                let failed = result.is_err();
                if confirm.send(result).is_err() || failed {
                    return;
                }
            }
        });
        Self { send: Some(send), applied, handle, deferred: None, outstanding: 0 }
    }

    /// Keys of the batch written last, not yet handed to the index: lookups must see them here.
    pub fn pending(&self) -> &[(String, String, String)] {
        self.deferred.as_ref().map_or(&[], |b| &b.keys)
    }

    /// Blocks until every released batch is in the index; returns the first failure.
    pub fn wait_applied(&mut self) -> Result<()> {
        while self.outstanding > 0 {
            let result = tokio::task::block_in_place(|| self.applied.recv())
                .map_err(|_| eyre!("the match index writer stopped"))?;
            self.outstanding -= 1;
            result?;
        }
        Ok(())
    }

    /// Hands the deferred batch to the thread (call once the next batch has looked up).
    pub fn release(&mut self) -> Result<()> {
        let Some(batch) = self.deferred.take() else { return Ok(()) };
        let send = self.send.as_ref().ok_or_else(|| eyre!("the match index writer is closed"))?;
        if tokio::task::block_in_place(|| send.send(batch)).is_err() {
            return Err(eyre!("the match index writer stopped"));
        }
        self.outstanding += 1;
        Ok(())
    }

    /// Holds a written batch back until the next lookup has seen it.
    pub fn defer(&mut self, batch: IndexBatch) -> Result<()> {
        self.release()?;
        self.deferred = Some(batch);
        Ok(())
    }

    /// Applies everything still held or queued, then stops the thread.
    pub async fn finish(mut self) -> Result<()> {
        let released = self.release();
        let applied = self.wait_applied();
        self.send = None;
        let joined = (&mut self.handle).await;
        released?;
        applied?;
        joined.map_err(|e| eyre!("the match index writer failed: {e}"))
    }
}
