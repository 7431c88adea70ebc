//! Carries out the effects `update` asks for, off the render path: engine work on its own tokio
//! task, store queries on blocking threads. Every answer comes back as a [`Msg`].

use super::state::{BalanceRow, ObservedRun, QueueQuery, RunMode, SampleView};
use super::update::{AUDIT_PAGE, Effect, Msg, QUEUE_PAGE};
use crate::config::{ConfigError, Problem};
use crate::pipeline::progress::Control;
use crate::pipeline::progress::ObjectProgress;
use crate::pipeline::{Engine, Finish, RunFailure, RunSummary};
use crate::project::Project;
use crate::store::queue_view::Group;
use crate::store::{QueueStatus, RunKind, Store};
use color_eyre::eyre::{Result, eyre};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use tokio::sync::{mpsc, watch};

pub struct Runner {
    /// Replaced when the mapping editor saves the project file: later runs use the new mapping.
    project: Arc<RwLock<Arc<Project>>>,
    tx: mpsc::UnboundedSender<Msg>,
    control: Arc<Mutex<Option<Arc<watch::Sender<Control>>>>>,
    started: Instant,
    /// The connection that watches the store for other writers, and the last version it saw.
    watcher: Arc<Mutex<Option<(Store, i64, bool)>>>,
    me: String,
    /// The queue's groups as last read (the pages take their counts from them), and whether a
    /// reading is under way (one at a time: during a run the store changes every second).
    groups: Arc<Mutex<Option<Vec<Group>>>>,
    grouping: Arc<std::sync::atomic::AtomicUsize>,
    /// Held records per filter, as last counted: paging within a filter counts once. Forgotten
    /// whenever the store changes (a write here, a commit seen by the watcher).
    counts: Arc<Mutex<std::collections::HashMap<QueueQuery, u64>>>,
}

impl Runner {
    pub fn new(project: Arc<Project>, tx: mpsc::UnboundedSender<Msg>, started: Instant, me: String) -> Self {
        Self {
            project: Arc::new(RwLock::new(project)),
            tx,
            control: Arc::default(),
            started,
            watcher: Arc::default(),
            me,
            groups: Arc::default(),
            grouping: Arc::default(),
            counts: Arc::default(),
        }
    }

    fn project(&self) -> Arc<Project> {
        match self.project.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Lets go of every claim this console holds (on quit).
    pub fn release_all(&self) {
        if let Ok(store) = Store::open(&self.project().store_path) {
            let _ = store.queue_release(None, &self.me);
        }
    }

    pub fn run(&self, effect: Effect) {
        match effect {
            Effect::Poll => self.poll(),
            Effect::Claim { ids, field, current, was } => {
                let me = self.me.clone();
                self.write(move |store| match store.queue_claim(&ids, &me)? {
                    Ok(()) => Ok(Msg::Claimed { ids, field, current, was }),
                    Err(t) => Ok(Msg::Failed(format!(
                        "record #{} is being edited by {} since {} — leave it to them",
                        t.id,
                        crate::text::shown(&t.by),
                        t.since.get(11..19).unwrap_or(&t.since)
                    ))),
                })
            }
            Effect::Release { ids } => {
                let me = self.me.clone();
                self.write(move |store| {
                    store.queue_release(Some(&ids), &me)?;
                    Ok(Msg::Done { message: "edit abandoned; nothing changed".into(), failed: false })
                })
            }
            Effect::Decide { id, choice } => {
                let project = self.project();
                let tx = self.tx.clone();
                let this = self.clone_handle();
                tokio::task::spawn_blocking(move || {
                    let stored = project.store().and_then(|s| {
                        s.queue_correct_many(&[id], &[(crate::model::MATCH_CHOICE.to_string(), Some(choice))], &[])
                    });
                    match stored {
                        Ok(_) => this.start(RunMode::Reprocess, vec![id]),
                        Err(e) => {
                            let _ = tx.send(Msg::RunEnded { summary: format!("not decided: {e:#}"), failed: true });
                        }
                    }
                });
            }
            Effect::SampleMapping { text, object, version } => {
                let project = self.project();
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let result = match edited_engine(&project, &text) {
                        Ok(engine) => engine.sample(&object, SAMPLE_RECORDS).await.map_err(problems_of),
                        Err(problems) => Err(problems),
                    };
                    let _ = tx.send(Msg::Sampled(SampleView { object, version, result }));
                });
            }
            Effect::SaveMapping { text, expected } => self.save_mapping(text, expected),
            Effect::Reconcile => {
                let project = self.project();
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let result = async {
                        let p = project.clone();
                        let engine =
                            tokio::task::spawn_blocking(move || p.engine()).await.map_err(|e| eyre!("{e}"))??;
                        crate::reconcile::build(&engine, crate::reconcile::Options::default()).await
                    }
                    .await;
                    let _ = tx.send(Msg::Reconciled(result.map(Box::new).map_err(|e| format!("{e:#}"))));
                });
            }
            Effect::SignOff { report, notes, accepted } => {
                let path = self.project().store_path.clone();
                let tx = self.tx.clone();
                tokio::task::spawn_blocking(move || {
                    let result = (|| -> Result<std::result::Result<crate::store::SignOff, String>> {
                        // No run may start while the sign-off is recorded.
                        let _lock = crate::store::RunLock::acquire(&path)?;
                        let store = Store::open(&path)?;
                        crate::reconcile::signoff::sign_off(&store, &report, &notes, &accepted)
                    })();
                    let msg = match result {
                        Ok(done) => Msg::SignedOff(done),
                        Err(e) => Msg::SignedOff(Err(format!("{e:#}"))),
                    };
                    let _ = tx.send(msg);
                });
            }
            Effect::PreviewRollback => {
                let project = self.project();
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let msg = match preview_rollback(project).await {
                        Ok(found) => Msg::RollbackPreviewed(Ok(found)),
                        Err(e) => Msg::RollbackPreviewed(Err(format!("{e:#}"))),
                    };
                    let _ = tx.send(msg);
                });
            }
            Effect::Rollback { run, keep } => {
                let project = self.project();
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let opts = crate::pipeline::rollback::RollbackOptions { keep, ..Default::default() };
                    let done = async {
                        let p = project.clone();
                        let engine =
                            tokio::task::spawn_blocking(move || p.engine()).await.map_err(|e| eyre!("{e}"))??;
                        crate::pipeline::rollback::rollback(&engine, run, &opts).await
                    }
                    .await;
                    let msg = match done {
                        Ok(r) => Msg::RolledBack {
                            run,
                            message: rollback_words(&r),
                            left: r
                                .objects
                                .iter()
                                .flat_map(|o| {
                                    o.undecided.iter().map(move |c| {
                                        format!("{} {}: {}", o.object, crate::text::shown(&c.source_id), c.why)
                                    })
                                })
                                .collect(),
                        },
                        Err(e) => Msg::Done { message: format!("rollback failed: {e:#}"), failed: true },
                    };
                    let _ = tx.send(msg);
                });
            }
            Effect::WriteReport { report } => {
                let project = self.project();
                let tx = self.tx.clone();
                tokio::task::spawn_blocking(move || {
                    let msg = match write_report(&project, &report) {
                        Ok(names) => Msg::Done { message: format!("report written: {names}"), failed: false },
                        Err(e) => Msg::Failed(format!("could not write the report: {e:#}")),
                    };
                    let _ = tx.send(msg);
                });
            }
            Effect::StartRun { mode } => self.start(mode, Vec::new()),
            Effect::Reprocess { ids } => self.start(RunMode::Reprocess, ids),
            Effect::Control(c) => {
                if let Ok(guard) = self.control.lock()
                    && let Some(sender) = guard.as_ref()
                {
                    sender.send_replace(c);
                }
            }
            Effect::LoadQueue { query, offset } => {
                let (groups, counts) = (self.groups.clone(), self.counts.clone());
                self.query(move |store| {
                    let cached = groups.lock().ok().and_then(|g| g.clone());
                    let all = match cached {
                        Some(g) => g,
                        None => store.queue_groups()?,
                    };
                    let summary = crate::tui::state::summary_of(&all);
                    let slice = query.slice();
                    let known = counts.lock().ok().and_then(|c| c.get(&query).copied());
                    let total = match known {
                        Some(n) => n,
                        None => {
                            let n = store.queue_count(&slice)?;
                            if let Ok(mut c) = counts.lock() {
                                c.insert(query.clone(), n);
                            }
                            n
                        }
                    };
                    let mut items = store.queue_page(&slice, offset, QUEUE_PAGE, Some(total))?;
                    let total = total as usize;
                    // A lapsed claim holds nothing.
                    let cutoff = crate::store::claims::claim_cutoff();
                    for i in &mut items {
                        if i.claimed_at.as_ref().is_none_or(|at| *at <= cutoff) {
                            i.claimed_by = None;
                        }
                    }
                    Ok(Msg::QueueLoaded { query, summary, items, offset, total })
                })
            }
            Effect::LoadGroups => {
                use std::sync::atomic::Ordering;
                // Asked for whenever the store changed (see `update::reload_all`): the counts
                // of the filters go with it, before the page asked next is loaded.
                forget(&self.counts);
                // One reading at a time (during a run the store changes every second); a change
                // during a reading makes it read once more, so the last answer is never stale.
                if self.grouping.fetch_add(1, Ordering::AcqRel) > 0 {
                    return;
                }
                let (groups, grouping, tx) = (self.groups.clone(), self.grouping.clone(), self.tx.clone());
                let path = self.project().store_path.clone();
                tokio::task::spawn_blocking(move || {
                    loop {
                        let read = Store::open_reader(&path).and_then(|s| s.queue_groups());
                        let msg = match read {
                            Ok(read) => {
                                if let Ok(mut g) = groups.lock() {
                                    *g = Some(read.clone());
                                }
                                Msg::GroupsLoaded(read)
                            }
                            Err(e) => Msg::Failed(format!("{e:#}")),
                        };
                        let _ = tx.send(msg);
                        if grouping.compare_exchange(1, 0, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                            break;
                        }
                        grouping.store(1, Ordering::Release);
                    }
                });
            }
            Effect::Find { query, from, text, forward } => self.query(move |store| {
                let slice = query.slice();
                let found = match store.queue_find(&slice, from, &text, forward)? {
                    Some(id) => Some((id, store.queue_position(&slice, id)? as usize)),
                    None => None,
                };
                Ok(Msg::Found { query, text, found })
            }),
            Effect::Jump { query, text } => self.query(move |store| {
                let Some((id, object, reason)) = store.queue_locate(&text)? else {
                    return Ok(Msg::Jumped(Err(format!(
                        "no held record has queue id or source id {}",
                        crate::text::quoted(Some(&text))
                    ))));
                };
                // Shown in the filter in force when it is there; else in its object and reason.
                let slice = query.slice();
                let at = store.queue_position(&slice, id)?;
                let inside = store.queue_position(&slice, id + 1)? > at;
                let (query, at) = if inside {
                    (query, at)
                } else {
                    let q = QueueQuery { object: Some(object), reason: Some(reason), issue: None, order: query.order };
                    let at = store.queue_position(&q.slice(), id)?;
                    (q, at)
                };
                Ok(Msg::Jumped(Ok((query, id, at as usize))))
            }),
            Effect::LoadQueueIds { query } => {
                self.query(move |store| Ok(Msg::QueueIds(store.queue_ids(&query.slice())?)))
            }
            Effect::LoadAudit { query, before } => self.query(move |store| {
                let (rows, more) = store.audit_page(&query, before, AUDIT_PAGE)?;
                Ok(Msg::AuditLoaded { query, before, rows, more })
            }),
            Effect::LoadBalance => self.query(balance),
            Effect::Fix { ids, field, value, was } => {
                let me = self.me.clone();
                self.write(move |store| {
                    let was: Vec<(String, Option<String>)> = was.map(|w| (field.clone(), w)).into_iter().collect();
                    // A bulk correction changes what its preview said it changes: records that
                    // already hold the value are left as they are (not marked corrected).
                    let (change, same) = if ids.len() > 1 {
                        let mut change = Vec::with_capacity(ids.len());
                        for &id in &ids {
                            match store.queue_item(id)? {
                                Some(item) if item.already_holds(&field, value.as_deref()) => {}
                                _ => change.push(id),
                            }
                        }
                        let same = ids.len() - change.len();
                        (change, same)
                    } else {
                        (ids.clone(), 0)
                    };
                    let corrected = store.queue_correct_many(&change, &[(field.clone(), value.clone())], &was);
                    store.queue_release(Some(&ids), &me)?;
                    let n = corrected?;
                    let v = value.as_deref().map(crate::text::shown).unwrap_or_else(|| "blank".into());
                    let which = if ids.len() == 1 {
                        format!("record #{}", ids[0])
                    } else {
                        format!("{} records", crate::text::thousands(n as u64))
                    };
                    let kept = if same > 0 {
                        format!(" ({} already held it: left as they are)", crate::text::thousands(same as u64))
                    } else {
                        String::new()
                    };
                    Ok(Msg::Done {
                        message: format!("{field} = {v} on {which}{kept}; r reprocesses it now"),
                        failed: false,
                    })
                })
            }
            Effect::PreviewFix { ids, field, value } => self.query(move |store| {
                let result = preview_fix(store, &ids, &field, value.as_deref());
                Ok(Msg::FixPreviewed { ids, field, value, result })
            }),
            Effect::Undo { ids } => self.write(move |store| {
                let undone = store.queue_undo(&ids, None)?;
                let mut message = undone.describe();
                if !undone.restored.is_empty() {
                    message.push_str(" (audited)");
                }
                Ok(Msg::Done { message, failed: undone.restored.is_empty() })
            }),
            Effect::Skip { ids, reason } => {
                let project = self.project();
                self.write(move |store| {
                    // One run, one transaction: all of them are skipped, or none.
                    let (_, items) = store.skip_queued_many(&ids, &reason, &project.config.hash)?;
                    let n = crate::text::thousands(items.len() as u64);
                    Ok(Msg::Done { message: format!("skipped {n} record(s): {reason} (audited)"), failed: false })
                })
            }
        }
    }

    /// A change to the store on a blocking thread (a writing connection), answered as a message.
    fn write(&self, f: impl FnOnce(&Store) -> Result<Msg> + Send + 'static) {
        let tx = self.tx.clone();
        let path = self.project().store_path.clone();
        let counts = self.counts.clone();
        tokio::task::spawn_blocking(move || {
            let msg = Store::open(&path).and_then(|s| f(&s)).unwrap_or_else(|e| Msg::Failed(format!("{e:#}")));
            forget(&counts);
            let _ = tx.send(msg);
        });
    }

    /// A handle for tasks that start engine work later (same channels, same project).
    fn clone_handle(&self) -> Runner {
        Runner {
            project: self.project.clone(),
            tx: self.tx.clone(),
            control: self.control.clone(),
            started: self.started,
            watcher: self.watcher.clone(),
            me: self.me.clone(),
            groups: self.groups.clone(),
            grouping: self.grouping.clone(),
            counts: self.counts.clone(),
        }
    }

    /// Looks whether another connection committed to the store (a run in another console, a
    /// claim, a fix); if so, says so with the newest run. Skipped while the last look is running.
    fn poll(&self) {
        let tx = self.tx.clone();
        let watcher = self.watcher.clone();
        let path = self.project().store_path.clone();
        let started = self.started;
        let counts = self.counts.clone();
        tokio::task::spawn_blocking(move || {
            let Ok(mut guard) = watcher.try_lock() else { return };
            if guard.is_none() {
                if !path.exists() {
                    return;
                }
                match Store::open_reader(&path) {
                    Ok(s) => *guard = Some((s, i64::MIN, false)),
                    Err(_) => return,
                }
            }
            let Some((store, seen, alive)) = guard.as_mut() else { return };
            let Ok(version) = store.data_version() else { return };
            // A run killed elsewhere changes nothing in the store: while one was last seen
            // alive, look again each time, so its death shows within a second.
            if version == *seen && !*alive {
                return;
            }
            let changed = version != *seen;
            *seen = version;
            if changed {
                forget(&counts);
            }
            match observed(store) {
                Ok(latest) => {
                    let now_alive = latest.as_ref().is_some_and(|r| r.alive);
                    if changed || now_alive != *alive {
                        let _ = tx.send(Msg::StoreChanged { latest, now: started.elapsed().as_secs_f64() });
                    }
                    *alive = now_alive;
                }
                Err(e) => tracing::warn!("watching the store: {e:#}"),
            }
        });
    }

    /// Checks the edited project file against both systems, then writes it in place of the
    /// old one (a new file renamed over it: never half-written) and reloads the project.
    fn save_mapping(&self, text: String, expected: String) {
        let project_lock = self.project.clone();
        let project = self.project();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let version_problems = |problems| Msg::SaveFailed { problems, version: u64::MAX };
            let engine = match edited_engine(&project, &text) {
                Ok(e) => e,
                Err(problems) => {
                    let _ = tx.send(version_problems(problems));
                    return;
                }
            };
            if let Err(e) = engine.prepare().await {
                let _ = tx.send(version_problems(problems_of(e)));
                return;
            }
            let path = project.config.path.clone();
            let written =
                tokio::task::spawn_blocking(move || write_project_file(&path, &text, &expected).map(|()| text))
                    .await
                    .map_err(|e| eyre!("{e}"))
                    .and_then(|r| r);
            let msg = match written.and_then(|text| {
                let reloaded = Project::load(Some(&project.config.path))?;
                Ok((text, reloaded))
            }) {
                Ok((text, reloaded)) => {
                    if let Ok(mut p) = project_lock.write() {
                        *p = Arc::new(reloaded);
                    }
                    Msg::Saved { text }
                }
                Err(e) => {
                    version_problems(vec![Problem { key: "(file)".into(), line: None, message: format!("{e:#}") }])
                }
            };
            let _ = tx.send(msg);
        });
    }

    /// A store query on a blocking thread, answered as a message (or `Failed`).
    fn query(&self, f: impl FnOnce(&Store) -> Result<Msg> + Send + 'static) {
        let tx = self.tx.clone();
        let path = self.project().store_path.clone();
        tokio::task::spawn_blocking(move || {
            // `tui::open` made the store before the console started.
            let store = Store::open_reader(&path);
            let msg = store.and_then(|s| f(&s)).unwrap_or_else(|e| Msg::Failed(format!("{e:#}")));
            let _ = tx.send(msg);
        });
    }

    /// Starts engine work on its own task; its progress is forwarded as it changes.
    fn start(&self, mode: RunMode, ids: Vec<i64>) {
        let project = self.project();
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
            let result = loop {
                let result = match mode {
                    RunMode::Preview => engine.run(RunKind::Preview).await,
                    RunMode::Full => engine.run(RunKind::Full).await,
                    RunMode::Resume => engine.resume().await,
                    RunMode::Delta => engine.delta(crate::pipeline::delta::DeltaMode::Both).await,
                    RunMode::Reprocess => engine.reprocess(&ids).await,
                };
                // A reprocess while another console's (or a headless run) holds the project waits
                // its turn, saying so, instead of failing: the operator's corrections and marks
                // stay; x stops waiting.
                let busy = match &result {
                    Err(f) if mode == RunMode::Reprocess && !f.started => {
                        crate::store::run_lock::is_busy(&f.error).map(|b| b.holder.clone())
                    }
                    _ => None,
                };
                let Some(holder) = busy else { break result };
                if *engine.controller().borrow() == Control::Cancel {
                    let _ = tx.send(Msg::Waited(None));
                    if let Ok(mut c) = control.lock() {
                        *c = None;
                    }
                    let summary = "not reprocessed: stopped waiting for the other run; corrections and marks are kept";
                    let _ = tx.send(Msg::RunEnded { summary: summary.into(), failed: true });
                    return;
                }
                let _ = tx.send(Msg::Waited(Some(format!(
                    "waiting for the other console's reprocess or run on this project to finish ({holder}); x stops \
                     waiting"
                ))));
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
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

/// Forgets the counted filters (the store changed).
fn forget(counts: &Mutex<std::collections::HashMap<QueueQuery, u64>>) {
    if let Ok(mut c) = counts.lock() {
        c.clear();
    }
}

/// Records of the mapping editor's live sample.
pub const SAMPLE_RECORDS: usize = 5;

/// An engine over the project with the edited text in place of the file's: it reads both systems
/// and writes nothing (a dry-run destination). Problems of the text come back as a list.
fn edited_engine(project: &Project, text: &str) -> std::result::Result<Engine, Vec<Problem>> {
    let config = crate::config::parse(&project.config.path, text).map_err(|e| e.problems)?;
    let config = Arc::new(config);
    let one =
        |e: color_eyre::Report| vec![Problem { key: "(connection)".into(), line: None, message: format!("{e:#}") }];
    let source = crate::connect::open_source(&config).map_err(one)?;
    let dest = crate::connect::open_destination(&config, true).map_err(one)?;
    let dest = Arc::new(crate::connect::dry_run::DryRunDestination::new(dest));
    Engine::new(config, source, dest, project.store_path.clone()).map_err(one)
}

/// Every problem of a failed check, or the one error that stopped it.
fn problems_of(e: color_eyre::Report) -> Vec<Problem> {
    match e.downcast::<ConfigError>() {
        Ok(c) => c.problems,
        Err(e) => vec![Problem { key: "(sample)".into(), line: None, message: format!("{e:#}") }],
    }
}

/// Writes the project file only if nobody changed it since the console read it; through a new
/// file renamed over the old one, so a crash leaves the old file or the new one, never half of one.
fn write_project_file(path: &std::path::Path, text: &str, expected: &str) -> Result<()> {
    let on_disk = std::fs::read_to_string(path).map_err(|e| eyre!("cannot read {}: {e}", path.display()))?;
    if on_disk != expected {
        return Err(eyre!(
            "{} changed on disk since the console read it; nothing written (D discards your changes, or merge by hand)",
            path.display()
        ));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or_else(|| std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| eyre!("cannot write in {}: {e}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.as_file().sync_all()?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(tmp.path(), meta.permissions());
    }
    tmp.persist(path).map_err(|e| eyre!("cannot replace {}: {}", path.display(), e.error))?;
    Ok(())
}

/// The newest run of the store, with its counters, and whether its process still runs.
fn observed(store: &Store) -> Result<Option<ObservedRun>> {
    let Some(run) = store.runs()?.into_iter().next() else { return Ok(None) };
    let objects = store
        .run_counts(run.id)?
        .into_iter()
        .map(|(name, total, counts)| ObjectProgress { name, total, counts })
        .collect();
    let holder = lock_holder(store.path());
    let me = std::process::id();
    let open = run.ended_at.is_none();
    Ok(Some(ObservedRun {
        id: run.id,
        kind: run.kind,
        state: run.state,
        reason: run.reason,
        user: run.user,
        alive: open && holder.is_none_or(pid_alive),
        mine: open && holder == Some(me),
        objects,
    }))
}

/// The process id written in the run lock file (`pid N since …`).
fn lock_holder(store: &std::path::Path) -> Option<u32> {
    let text = std::fs::read_to_string(crate::store::run_lock::path_for(store)).ok()?;
    text.strip_prefix("pid ")?.split_whitespace().next()?.parse().ok()
}

#[cfg(target_os = "linux")]
fn pid_alive(pid: u32) -> bool {
    // A killed process nobody has reaped yet is a zombie: dead, though /proc still lists it.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()).is_some_and(|c| c != 'Z' && c != 'X')
        }
        Err(_) => false,
    }
}

#[cfg(not(target_os = "linux"))]
fn pid_alive(_pid: u32) -> bool {
    true
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
                    "{what} {end}: {} records, {verb}{} created, {} updated, {} unchanged, {} merged, {} queued, {} \
                     skipped, {} failed",
                    t.extracted, t.created, t.updated, t.unchanged, t.merged, t.queued, t.skipped, t.failed
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

/// What setting `field` to `value` on these records would change: how many change and how many
/// already hold it, with the first few before → after; refused when a record is no longer held or
/// has no such field (the correction would be refused as a whole).
fn preview_fix(store: &Store, ids: &[i64], field: &str, value: Option<&str>) -> std::result::Result<String, String> {
    const SHOWN: usize = 5;
    let (mut change, mut same) = (0u64, 0u64);
    let mut examples = Vec::new();
    for &id in ids {
        let item = store.queue_item(id).map_err(|e| format!("{e:#}"))?.ok_or_else(|| format!("no queue item {id}"))?;
        if !item.status.is_pending() {
            return Err(format!("#{id} is {} — only held records can be corrected", item.status.as_str()));
        }
        let known = match field.strip_prefix("source.") {
            Some(f) => item.source.contains_key(f),
            None => item.mapped.contains_key(field),
        };
        if !known {
            return Err(format!("#{id} ({}) has no field {field}", item.object));
        }
        let now = item.value_of(field);
        if item.already_holds(field, value) {
            same += 1;
            continue;
        }
        change += 1;
        if examples.len() < SHOWN {
            examples.push(format!(
                "  #{id} {} {}: {} → {}",
                item.object,
                crate::text::shown(&item.source_id),
                crate::text::quoted(now.as_deref()),
                crate::text::quoted(value)
            ));
        }
    }
    let mut out = format!("{} change", crate::text::thousands(change));
    if same > 0 {
        out.push_str(&format!(", {} already hold it", crate::text::thousands(same)));
    }
    if !examples.is_empty() {
        out.push_str(":\n");
        out.push_str(&examples.join("\n"));
        if change as usize > examples.len() {
            out.push_str(&format!("\n  … and {} more", crate::text::thousands(change - examples.len() as u64)));
        }
    }
    Ok(out)
}

/// The counts of the latest real run, per object, with what is still open in the queue.
/// The newest run whose writes are still linked, and what rolling it back would do, in words.
async fn preview_rollback(project: Arc<Project>) -> Result<(i64, String)> {
    let run = Store::open_reader(&project.store_path)?
        .newest_rollback_target()?
        .ok_or_else(|| eyre!("no run has records still linked in the destination"))?;
    let p = project.clone();
    let engine = tokio::task::spawn_blocking(move || p.engine()).await.map_err(|e| eyre!("{e}"))??;
    let opts = crate::pipeline::rollback::RollbackOptions { dry_run: true, ..Default::default() };
    let report = crate::pipeline::rollback::rollback(&engine, run, &opts).await?;
    Ok((run, rollback_words(&report)))
}

/// "deletes 11,358 records, restores 800 from their before-images, leaves 1 changed since".
fn rollback_words(r: &crate::pipeline::rollback::RollbackReport) -> String {
    let deleted: u64 = r.objects.iter().map(|o| o.deleted).sum();
    let restored: u64 = r.objects.iter().map(|o| o.restored).sum();
    let left = r.undecided();
    let failed: usize = r.objects.iter().map(|o| o.failed.len()).sum();
    let verb =
        if r.dry_run { ("It deletes", "restores", "leaves") } else { ("rolled back: deleted", "restored", "left") };
    let mut s = format!(
        "{} {deleted} records the run created and {} {restored} it updated from their before-images",
        verb.0, verb.1
    );
    if left > 0 {
        s.push_str(&format!(
            "; {} {left} changed in the destination since Cutover wrote them untouched (`cutover rollback {} --anyway …` or --keep decides)",
            verb.2, r.of_run
        ));
    }
    let kept: usize = r.objects.iter().map(|o| o.kept.len()).sum();
    if kept > 0 {
        s.push_str(&format!("; kept {kept} changed in the destination since (audited)"));
    }
    if failed > 0 {
        s.push_str(&format!("; {failed} refused by the destination"));
    }
    if r.dry_run {
        s.push_str(". The rollback is itself a run, audited record by record.");
    }
    s
}

/// Writes `<project>.reconciliation.md` and `.json` beside the project file, each whole or not at all.
pub fn write_report(project: &Project, report: &crate::reconcile::Report) -> Result<String> {
    let stem = project.config.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = project.config.base_dir();
    let signoff = Store::open_reader(&project.store_path).and_then(|s| s.latest_signoff()).ok().flatten();
    let md = dir.join(format!("{stem}.reconciliation.md"));
    let json = dir.join(format!("{stem}.reconciliation.json"));
    crate::cli::write_output(Some(&md), |out| Ok(crate::reconcile::format::markdown(report, signoff.as_ref(), out)?))?;
    crate::cli::write_output(Some(&json), |out| Ok(writeln!(out, "{}", report.to_json()?)?))?;
    Ok(format!("{} and {}", md.display(), json.display()))
}

fn balance(store: &Store) -> Result<Msg> {
    let runs = store.runs()?;
    let latest_run = store.last_run_id()?;
    let signoff = store.latest_signoff()?;
    let Some(run) = runs.iter().find(|r| r.kind == "full") else {
        return Ok(Msg::BalanceLoaded { run: None, rows: Vec::new(), latest_run, signoff });
    };
    let mut rows = Vec::new();
    for (object, source, counts) in store.run_counts(run.id)? {
        let open_queue = store.open_queue_count(&object)?;
        rows.push(BalanceRow { object, source, counts, open_queue });
    }
    Ok(Msg::BalanceLoaded { run: Some((run.id, run.kind.clone(), run.state.clone())), rows, latest_run, signoff })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_file_is_replaced_whole_and_only_if_nobody_changed_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cutover.toml");
        std::fs::write(&path, "# mine\na = 1\n").expect("write");
        write_project_file(&path, "# mine\na = 2\n", "# mine\na = 1\n").expect("saved");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "# mine\na = 2\n");
        // Someone edited it meanwhile: refused, and their text stays.
        let err = write_project_file(&path, "# mine\na = 3\n", "# mine\na = 1\n").expect_err("changed on disk");
        assert!(err.to_string().contains("changed on disk since the console read it"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "# mine\na = 2\n");
        let leftovers = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(leftovers, 1, "no temporary file left behind");
    }

    #[test]
    fn the_run_lock_names_its_process() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("p.state.db");
        assert_eq!(lock_holder(&store), None);
        let _lock = crate::store::RunLock::acquire(&store).expect("lock");
        assert_eq!(lock_holder(&store), Some(std::process::id()));
        assert!(pid_alive(std::process::id()));
    }
}
