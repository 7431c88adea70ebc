//! Committing batches to the state store, behind the pipeline: the commit of batch k (its
//! outcomes, audit rows, id map, queue items and checkpoint, in one transaction) runs on a writer
//! thread while batch k+1 is deduped and written. At most one batch waits behind the one being
//! committed. Until the writer confirms a batch, its id-map entries are kept in memory, so dedupe
//! of the very next batch still finds the records it wrote.

use super::timings::{Stage, Timings};
use crate::store::{BatchCommit, Store};
use color_eyre::eyre::{Result, eyre};
use foldhash::{HashMap, HashMapExt};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::task::JoinHandle;

pub struct CommitWriter {
    send: Option<SyncSender<(u64, BatchCommit)>>,
    confirmed: Receiver<(u64, Result<()>)>,
    handle: JoinHandle<()>,
    /// Source id → destination id of batches not yet confirmed committed.
    in_flight: HashMap<String, String>,
    /// Destination id → (source id, merged as a member) of the same batches.
    in_flight_dest: HashMap<String, Vec<(String, bool)>>,
    /// Destination id → what Cutover wrote there (the batch, the image) in the same batches: a
    /// delta's next batch compares the destination with it, not with the store's older image.
    in_flight_images: HashMap<String, (u64, String)>,
    /// Only a delta compares images: a full run does not keep them in flight.
    keep_images: bool,
    /// Per batch handed over: its number and its id-map entries (source id, destination id).
    batches: Vec<(u64, Vec<(String, String)>)>,
    /// The newest batch handed over, and the newest the writer confirmed.
    sent: u64,
    committed: u64,
}

impl CommitWriter {
    pub fn start(store: Arc<Mutex<Store>>, timings: Arc<Timings>, keep_images: bool) -> Self {
        let (send, batches) = std::sync::mpsc::sync_channel::<(u64, BatchCommit)>(1);
        let (confirm, confirmed) = std::sync::mpsc::channel::<(u64, Result<()>)>();
        let handle = tokio::task::spawn_blocking(move || {
            for (no, commit) in batches {
                let started = Instant::now();
                let result = store.lock().map_err(|_| eyre!("state store lock poisoned")).and_then(|mut s| {
                    let store = format!("the state store {}", s.path().display());
                    s.commit_batch(&commit).map_err(|e| crate::connect::unavailable::told(store, e))
                });
                timings.add(Stage::Commit, started.elapsed());
                let failed = result.is_err();
                if confirm.send((no, result)).is_err() || failed {
                    return;
                }
            }
        });
        Self {
            send: Some(send),
            confirmed,
            handle,
            in_flight: HashMap::new(),
            in_flight_dest: HashMap::new(),
            in_flight_images: HashMap::new(),
            keep_images,
            batches: Vec::new(),
            sent: 0,
            committed: 0,
        }
    }

    /// The id-map entries handed over but not yet committed.
    pub fn in_flight(&self) -> &HashMap<String, String> {
        &self.in_flight
    }

    /// The same entries by destination id: (source id, merged as a member).
    pub fn in_flight_dest(&self) -> &HashMap<String, Vec<(String, bool)>> {
        &self.in_flight_dest
    }

    /// What batches not yet committed wrote to each destination record.
    pub fn in_flight_images(&self) -> &HashMap<String, (u64, String)> {
        &self.in_flight_images
    }

    /// Waits until every batch handed over so far is committed (the store then answers for them).
    pub fn flush(&mut self) -> Result<()> {
        while self.committed < self.sent {
            let Ok((confirmed, result)) = tokio::task::block_in_place(|| self.confirmed.recv()) else {
                return Err(eyre!("the store writer stopped"));
            };
            result?;
            self.forget(confirmed, false);
        }
        Ok(())
    }

    /// Hands a batch to the writer; waits while another batch is already waiting.
    pub fn send(&mut self, batch: u64, commit: BatchCommit) -> Result<()> {
        for w in &commit.id_map {
            self.in_flight.insert(w.source_id.clone(), w.dest_id.clone());
            self.in_flight_dest.entry(w.dest_id.clone()).or_default().push((w.source_id.clone(), w.member));
            if self.keep_images
                && let Some(image) = &w.written
            {
                self.in_flight_images.insert(w.dest_id.clone(), (batch, image.clone()));
            }
        }
        self.batches.push((batch, commit.id_map.iter().map(|w| (w.source_id.clone(), w.dest_id.clone())).collect()));
        self.sent = self.sent.max(batch);
        let send = self.send.as_ref().ok_or_else(|| eyre!("the store writer is closed"))?;
        let sent = tokio::task::block_in_place(|| send.send((batch, commit)).is_ok());
        if !sent {
            return Err(eyre!("the store writer stopped"));
        }
        self.settle(false)
    }

    /// Waits until every batch handed over is committed; returns the first failure.
    pub async fn finish(mut self) -> Result<()> {
        self.send = None;
        let joined = (&mut self.handle).await;
        self.settle(true)?;
        joined.map_err(|e| eyre!("the store writer failed: {e}"))
    }

    /// Forgets batches the writer confirmed; `all` waits for every one (the writer is closing).
    fn settle(&mut self, all: bool) -> Result<()> {
        loop {
            let next = if all { self.confirmed.recv().ok() } else { self.confirmed.try_recv().ok() };
            let Some((confirmed, result)) = next else { return Ok(()) };
            result?;
            self.forget(confirmed, all);
        }
    }

    /// Drops what batches up to `confirmed` kept in memory: the store has them now.
    fn forget(&mut self, confirmed: u64, all: bool) {
        self.committed = self.committed.max(confirmed);
        let (ids, dests, images) = (&mut self.in_flight, &mut self.in_flight_dest, &mut self.in_flight_images);
        // The newest batch stays known until the next one is sent: the match index learns its
        // source ids only after the next lookup (see `index_writer`).
        let newest = self.batches.last().map(|(b, _)| *b);
        self.batches.retain(|(batch, entries)| {
            let keep = *batch > confirmed || (!all && Some(*batch) == newest);
            if !keep {
                for (sid, dest) in entries {
                    ids.remove(sid);
                    if images.get(dest).is_some_and(|(b, _)| b == batch) {
                        images.remove(dest);
                    }
                    if let Some(list) = dests.get_mut(dest) {
                        list.retain(|(s, _)| s != sid);
                        if list.is_empty() {
                            dests.remove(dest);
                        }
                    }
                }
            }
            keep
        });
    }
}
