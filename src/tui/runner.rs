//! Carries out the effects `update` asks for, off the render path: engine work on its own tokio
//! task, store queries on blocking threads. Every answer comes back as a [`Msg`].

use super::state::{BalanceRow, QueueQuery, RunMode};
use super::update::{AUDIT_PAGE, Effect, Msg, QUEUE_PAGE};
use crate::pipeline::progress::Control;
use crate::pipeline::{Engine, Finish, RunFailure, RunSummary};
use crate::project::Project;
use crate::store::{QueueFilter, QueueStatus, RunKind, Store};
use color_eyre::eyre::{Result, eyre};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{mpsc, watch};

pub struct Runner {
    project: Arc<Project>,
    tx: mpsc::UnboundedSender<Msg>,
    control: Arc<Mutex<Option<Arc<watch::Sender<Control>>>>>,
    started: Instant,
}

impl Runner {
    pub fn new(project: Arc<Project>, tx: mpsc::UnboundedSender<Msg>, started: Instant) -> Self {
        Self { project, tx, control: Arc::default(), started }
    }

    pub fn run(&self, effect: Effect) {
        match effect {
            Effect::StartRun { mode } => self.start(mode, Vec::new()),
            Effect::Reprocess { ids } => self.start(RunMode::Reprocess, ids),
            Effect::Control(c) => {
                if let Ok(guard) = self.control.lock()
                    && let Some(sender) = guard.as_ref()
                {
                    sender.send_replace(c);
                }
            }
            Effect::LoadQueue { query, offset } => self.query(move |store| {
                let summary = store.queue_summary()?;
                let total = summary
                    .iter()
                    .filter(|(o, r, _)| {
                        query.object.as_ref().is_none_or(|q| q == o) && query.reason.as_ref().is_none_or(|q| q == r)
                    })
                    .map(|(_, _, n)| *n as usize)
                    .sum();
                let items = store.queue_list(&filter(&query, Some(QUEUE_PAGE), offset))?;
                Ok(Msg::QueueLoaded { query, summary, items, offset, total })
            }),
            Effect::LoadQueueIds { query } => self.query(move |store| {
                Ok(Msg::QueueIds(store.queue_list(&filter(&query, None, 0))?.into_iter().map(|i| i.id).collect()))
            }),
            Effect::LoadAudit { query, before } => self.query(move |store| {
                let (rows, more) = store.audit_page(&query, before, AUDIT_PAGE)?;
                Ok(Msg::AuditLoaded { query, before, rows, more })
            }),
            Effect::LoadBalance => self.query(balance),
            Effect::Fix { ids, field, value } => {
                let project = self.project.clone();
                self.query(move |_| {
                    let store = project.store()?;
                    let n = store.queue_correct_many(&ids, &[(field.clone(), value.clone())])?;
                    let v = value.as_deref().map(crate::text::shown).unwrap_or_else(|| "blank".into());
                    let which = if ids.len() == 1 { format!("record #{}", ids[0]) } else { format!("{n} records") };
                    Ok(Msg::Done { message: format!("{field} = {v} on {which}; r reprocesses it now"), failed: false })
                })
            }
            Effect::Skip { ids, reason } => {
                let project = self.project.clone();
                self.query(move |_| {
                    let store = project.store()?;
                    for id in &ids {
                        store.skip_queued(*id, &reason, &project.config.hash)?;
                    }
                    Ok(Msg::Done { message: format!("skipped {} record(s): {reason}", ids.len()), failed: false })
                })
            }
        }
    }

    /// A store query on a blocking thread, answered as a message (or `Failed`).
    fn query(&self, f: impl FnOnce(&Store) -> Result<Msg> + Send + 'static) {
        let tx = self.tx.clone();
        let path = self.project.store_path.clone();
        tokio::task::spawn_blocking(move || {
            // Before the first run there is no state store yet: make the empty one.
            let store = if path.exists() { Store::open_reader(&path) } else { Store::open(&path) };
            let msg = store.and_then(|s| f(&s)).unwrap_or_else(|e| Msg::Failed(format!("{e:#}")));
            let _ = tx.send(msg);
        });
    }

    /// Starts engine work on its own task; its progress is forwarded as it changes.
    fn start(&self, mode: RunMode, ids: Vec<i64>) {
        let project = self.project.clone();
        let tx = self.tx.clone();
        let control = self.control.clone();
        let started = self.started;
        tokio::spawn(async move {
            // Opening connectors touches files and networks: not on the console's thread.
            let made = tokio::task::spawn_blocking(move || -> Result<(Engine, Option<tempfile::TempDir>)> {
                match mode {
                    RunMode::Preview => project.preview_engine().map(|p| (p.engine, Some(p.scratch))),
                    _ => project.engine().map(|e| (e, None)),
                }
            })
            .await
            .map_err(|e| eyre!("{e}"))
            .and_then(|r| r);
            let (engine, _scratch) = match made {
                Ok(e) => e,
                Err(e) => {
                    let _ = tx.send(Msg::RunEnded { summary: format!("could not start: {e:#}"), failed: true });
                    return;
                }
            };
            if let Ok(mut c) = control.lock() {
                *c = Some(engine.controller());
            }
            let mut progress = engine.subscribe();
            let forward_tx = tx.clone();
            let forward = tokio::spawn(async move {
                while progress.changed().await.is_ok() {
                    let snapshot = progress.borrow_and_update().clone();
                    let now = started.elapsed().as_secs_f64();
                    if forward_tx.send(Msg::Progress { progress: snapshot, now }).is_err() {
                        return;
                    }
                }
            });
            let result = match mode {
                RunMode::Preview => engine.run(RunKind::Preview).await,
                RunMode::Full => engine.run(RunKind::Full).await,
                RunMode::Reprocess => engine.reprocess(&ids).await,
            };
            // The last snapshot first, then the end.
            let now = started.elapsed().as_secs_f64();
            let _ = tx.send(Msg::Progress { progress: engine.subscribe().borrow().clone(), now });
            forward.abort();
            if let Ok(mut c) = control.lock() {
                *c = None;
            }
            let (summary, failed) = describe(mode, &result);
            if mode == RunMode::Reprocess && result.is_ok() {
                let path = engine.store_path().to_path_buf();
                let tx2 = tx.clone();
                tokio::task::spawn_blocking(move || {
                    let message = Store::open_reader(&path)
                        .and_then(|s| reprocess_report(&s, &ids))
                        .unwrap_or_else(|e| format!("reprocessed; could not read the results: {e:#}"));
                    let _ = tx2.send(Msg::Done { message, failed: false });
                });
            }
            let _ = tx.send(Msg::RunEnded { summary, failed });
        });
    }
}

fn filter(query: &QueueQuery, limit: Option<usize>, offset: usize) -> QueueFilter {
    QueueFilter { object: query.object.clone(), reason: query.reason.clone(), pending_only: true, limit, offset }
}

fn describe(mode: RunMode, result: &std::result::Result<RunSummary, RunFailure>) -> (String, bool) {
    match result {
        Ok(s) => {
            let t = s.totals();
            let what = match mode {
                RunMode::Preview => "Test sync (nothing written)".to_string(),
                _ => format!("Run {} ({})", s.run_id, s.kind.as_str()),
            };
            let verb = if mode == RunMode::Preview { "would be " } else { "" };
            let end = match &s.finish {
                Finish::Completed => "finished".to_string(),
                Finish::Halted(r) => format!("HALTED: {r}"),
                Finish::Cancelled => "cancelled; what was written stays written".to_string(),
            };
            (
                format!(
                    "{what} {end}: {} records, {verb}{} created, {} updated, {} merged, {} queued, {} skipped, {} failed",
                    t.extracted, t.created, t.updated, t.merged, t.queued, t.skipped, t.failed
                ),
                matches!(s.finish, Finish::Halted(_)),
            )
        }
        Err(f) => (format!("{} failed: {:#}", mode.label(), f.error), true),
    }
}

/// What became of each reprocessed record: written, or still queued with its first issue.
fn reprocess_report(store: &Store, ids: &[i64]) -> Result<String> {
    let mut written = 0;
    let mut still = Vec::new();
    for id in ids {
        let Some(item) = store.queue_item(*id)? else { continue };
        match item.status {
            QueueStatus::Resolved => written += 1,
            QueueStatus::Skipped | QueueStatus::Accepted => {}
            _ => {
                let why = item
                    .issues
                    .first()
                    .map(|i| format!("{}: {}", i.field, crate::text::shown(&i.message)))
                    .unwrap_or_else(|| item.reason.clone());
                still.push(format!("#{id} still queued — {why}"));
            }
        }
    }
    let mut out = format!("reprocessed {}: {written} written", ids.len());
    if !still.is_empty() {
        out.push_str(&format!(", {} still queued", still.len()));
        if still.len() == 1 {
            out = still.remove(0);
            if written > 0 {
                out = format!("{written} written; {out}");
            }
        }
    }
    Ok(out)
}

/// The counts of the latest real run, per object, with what is still open in the queue.
fn balance(store: &Store) -> Result<Msg> {
    let runs = store.runs()?;
    let Some(run) = runs.iter().rev().find(|r| r.kind == "full") else {
        return Ok(Msg::BalanceLoaded { run: None, rows: Vec::new() });
    };
    let mut rows = Vec::new();
    for (object, source, counts) in store.run_counts(run.id)? {
        let open_queue = store.open_queue_count(&object)?;
        rows.push(BalanceRow { object, source, counts, open_queue });
    }
    Ok(Msg::BalanceLoaded { run: Some((run.id, run.kind.clone(), run.state.clone())), rows })
}
