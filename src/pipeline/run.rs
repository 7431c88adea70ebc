//! Drives one run: for each object, parents first, a producer task extracts and maps batches
//! while this task dedupes, validates, writes and commits them. Every record read ends with
//! exactly one outcome, committed with the checkpoint that covers it.

use super::batch::{Flight, Launch, Reach};
use super::commit::CommitWriter;
use super::delta::{DeltaFilter, DeltaMode};
use super::extract::{self, Item, MappedBatch};
use super::index_writer::IndexWriter;
use super::landing::{LandCtx, Landing};
use super::linkage::index::LinkIndex;
use super::map::{Mapper, Owners};
use super::plan::ObjectPlan;
use super::progress::{Control, Progress, RunState};
use super::scope::{Part, Scope};
use super::seen::SeenIds;
use super::timings::Timings;
use super::transform::TransformSettings;
use crate::config::LoadedConfig;
use crate::connect::{Cursor, Destination, Source};
use crate::model::{Counts, SourceRecord};
use crate::store::journal::{Journal, PendingCreate};
use crate::store::{MatchIndex, QueueItem, RunKind, RunLock, Store, match_index, os_user};
use color_eyre::eyre::{Result, WrapErr, eyre};
use foldhash::{HashMap, HashMapExt, HashSet};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{info, warn};

/// The most batches of one object whose writes are in flight at once, however small the batches.
const MOST_BATCHES_IN_FLIGHT: usize = 16;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Completed,
    Halted(String),
    /// The operator cancelled after a batch.
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_id: i64,
    pub kind: RunKind,
    pub finish: Finish,
    /// (object, source count, outcome counters), in run order.
    pub objects: Vec<(String, Option<u64>, Counts)>,
    pub elapsed: Duration,
    /// Records a resumed run had done before this attempt (they are in `objects` too).
    pub carried: u64,
}

impl RunSummary {
    pub fn totals(&self) -> Counts {
        let mut t = Counts::default();
        for (_, _, c) in &self.objects {
            t.merge(c);
        }
        t
    }
}

pub use crate::connect::DAILY_RESERVE;

/// Why a run did not finish: `started` tells whether any record was touched.
#[derive(Debug)]
pub struct RunFailure {
    pub started: bool,
    pub error: color_eyre::Report,
}

impl<E: Into<color_eyre::Report>> From<E> for RunFailure {
    fn from(e: E) -> Self {
        RunFailure { started: false, error: e.into() }
    }
}

/// The plans and lookups every run of a project needs, checked against the live schemas.
pub struct Prepared {
    pub plans: Vec<Arc<ObjectPlan>>,
    pub owners: Arc<Owners>,
}

pub struct Engine {
    pub project: Arc<LoadedConfig>,
    pub(super) source: Arc<dyn Source>,
    pub(super) dest: Arc<dyn Destination>,
    pub(super) store: Arc<Mutex<Store>>,
    index: Arc<Mutex<MatchIndex>>,
    /// The write-ahead journal of updates (see `store::journal`).
    journal: Mutex<Journal>,
    store_path: PathBuf,
    pub(super) settings: TransformSettings,
    pub(super) progress: watch::Sender<Progress>,
    control: Arc<watch::Sender<Control>>,
    pub(super) timings: Arc<Timings>,
}

/// Where dedupe looks up what was written: a store connection, and the id-map entries of
/// batches handed to the writer thread but not yet committed.
pub(crate) struct Lookups<'a> {
    pub(super) store: &'a Mutex<Store>,
    /// Source id → destination id of batches not yet committed.
    pub(super) in_flight: &'a HashMap<String, String>,
    /// Destination id → (source id, merged as a member) of batches not yet committed.
    pub(super) in_flight_dest: &'a HashMap<String, Vec<(String, bool)>>,
    /// Destination id → (batch, what Cutover wrote there) of batches not yet committed.
    pub(super) in_flight_images: &'a HashMap<String, (u64, String)>,
    /// The match-index writer of a run, holding the keys of the batch written last.
    pub(super) index_writer: Option<&'a Mutex<IndexWriter>>,
    /// Records an interrupted attempt created (source id → destination id): adopted, not re-created.
    pub(super) recovered: &'a HashMap<String, String>,
    /// Updates an interrupted attempt of this run sent but did not commit, by source id.
    pub(super) journal: &'a std::collections::HashMap<String, crate::store::journal::Journaled>,
    /// A delta run: a record changed in the destination since Cutover wrote it is not overwritten.
    pub(super) delta: bool,
    /// Records the operator skipped from the queue, by (source id, row under that id).
    pub(super) skips: &'a HashMap<(String, u32), crate::store::OperatorSkip>,
    /// The object's record-linkage index, when it matches by linkage.
    pub(super) linkage: Option<&'a Mutex<LinkIndex>>,
    /// Records an earlier run held for a person as possible matches: source id → the source
    /// values the queue holds (JSON). A run holds them again while their row is unchanged;
    /// reprocess (empty here) decides them anew.
    pub(super) held_for_review: &'a std::collections::HashMap<String, String>,
}

impl Lookups<'_> {
    /// Source records of batches in flight that feed `dest_id`: (source id, merged as a member).
    pub(super) fn in_flight_members(&self, dest_id: &str) -> Vec<(String, bool)> {
        self.in_flight_dest.get(dest_id).cloned().unwrap_or_default()
    }
}

/// One object's pass in a run.
struct ObjectRun<'a> {
    position: usize,
    /// The source's own count.
    total: u64,
    start: Start,
    recovered: &'a HashMap<String, String>,
    /// A delta's or a sample's choice of records.
    filter: Option<Arc<Scope>>,
}

/// Where an object's pass starts: the beginning, or a resumed run's checkpoint.
struct Start {
    cursor: Cursor,
    counts: Counts,
}

pub(super) fn lock(store: &Mutex<Store>) -> Result<MutexGuard<'_, Store>> {
    store.lock().map_err(|_| eyre!("state store lock poisoned"))
}

/// Runs blocking store work on this worker without starving the runtime.
pub(super) fn sync<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

impl Engine {
    pub fn new(
        project: Arc<LoadedConfig>,
        source: Arc<dyn Source>,
        dest: Arc<dyn Destination>,
        store_path: PathBuf,
    ) -> Result<Self> {
        let store = Store::open(&store_path)?;
        let region = project
            .config
            .project
            .default_region
            .parse()
            .map_err(|_| eyre!("project.default_region is not a country code"))?;
        let p = &project.config.project;
        let settings = TransformSettings { region, day_first: p.day_first(), order_stated: p.day_first.is_some() };
        let (progress, _) = watch::channel(Progress::new("idle", &project.order));
        let (control, _) = watch::channel(Control::Go);
        Ok(Self {
            project,
            source,
            dest,
            store: Arc::new(Mutex::new(store)),
            index: Arc::new(Mutex::new(MatchIndex::open(&match_index::path_for(&store_path))?)),
            journal: Mutex::new(Journal::open(&crate::store::journal::path_for(&store_path))?),
            store_path,
            settings,
            progress,
            control: Arc::new(control),
            timings: Arc::default(),
        })
    }

    /// Pause, resume and cancel for whoever drives this engine (console, signal handler).
    /// The engine looks between batches: a batch in progress always finishes and commits.
    pub fn controller(&self) -> Arc<watch::Sender<Control>> {
        self.control.clone()
    }

    /// Why to stop before the next batch: the destination's API says fewer requests are left
    /// today than the project keeps in reserve. Stopped at a batch boundary, the run resumes
    /// where it stopped; run on into the limit, it would stop mid-batch on a 429 instead.
    fn day_nearly_spent(&self) -> Option<String> {
        let left = self.dest.daily_requests_left()?;
        let reserve = self.project.config.destination.daily_reserve.unwrap_or(DAILY_RESERVE);
        (left < reserve).then(|| {
            format!(
                "stopped before the destination's daily request limit: it says {left} requests are left today, \
                 fewer than the {reserve} kept in reserve (daily_reserve). Nothing is lost — `cutover run --resume` \
                 continues from this batch once the allowance resets (HubSpot: midnight in the account's time \
                 zone; Pipedrive: midnight UTC)"
            )
        })
    }

    /// Waits while paused; true when the operator cancelled.
    async fn checkpoint_control(&self) -> bool {
        let mut rx = self.control.subscribe();
        loop {
            let wanted = *rx.borrow_and_update();
            match wanted {
                Control::Go => return false,
                Control::Cancel => return true,
                Control::Pause => {
                    let newly = self.progress.send_if_modified(|p| {
                        let changed = p.state != RunState::Paused;
                        p.state = RunState::Paused;
                        changed
                    });
                    // Other consoles on the project read the run's state from the store.
                    if newly {
                        self.record_run_state("paused");
                    }
                    if rx.changed().await.is_err() {
                        return false;
                    }
                    self.progress.send_modify(|p| p.state = RunState::Running);
                    self.record_run_state("running");
                }
            }
        }
    }

    /// Records a pause or resume in the store; a failure only costs other consoles the news.
    fn record_run_state(&self, state: &str) {
        let Some(run_id) = self.progress.borrow().run_id else { return };
        let done = sync(|| lock(&self.store)?.set_run_state(run_id, state));
        if let Err(e) = done {
            tracing::warn!("could not record run {run_id} as {state}: {e:#}");
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Time spent per stage since this engine was made.
    pub fn timings(&self) -> &Timings {
        &self.timings
    }

    pub fn store_path(&self) -> &std::path::Path {
        &self.store_path
    }

    pub fn store(&self) -> &Arc<Mutex<Store>> {
        &self.store
    }

    pub fn source(&self) -> &Arc<dyn Source> {
        &self.source
    }

    pub fn destination(&self) -> &Arc<dyn Destination> {
        &self.dest
    }

    /// Reads the schemas of both systems and checks the mappings against them, reporting every problem.
    pub async fn prepare(&self) -> Result<Prepared> {
        super::prepare::prepare(&self.project, self.source.as_ref(), self.dest.as_ref()).await
    }

    /// The first `n` records of `object` mapped and validated with the current rules; writes
    /// nothing. Fails with the project file's problems (every one) when the mapping does not check.
    pub async fn sample(&self, object: &str, n: usize) -> Result<super::sample::Sample> {
        let prepared = self.prepare().await?;
        let plan = prepared
            .plans
            .iter()
            .find(|p| p.name == object)
            .ok_or_else(|| eyre!("no object '{object}' in the project"))?;
        let batch = super::sample::read(self.source.as_ref(), plan, n).await?;
        sync(|| super::sample::map(batch, plan, &prepared.owners, &self.mapper(plan, &prepared.owners)?, n))
    }

    /// A full pass over every object of the project (also used for previews, on a scratch store).
    pub async fn run(&self, kind: RunKind) -> std::result::Result<RunSummary, RunFailure> {
        self.start_run(kind, false).await
    }

    /// A delta run: only the records new or changed since the last run (see `pipeline::delta`);
    /// a record someone changed in the destination since Cutover wrote it is queued as
    /// `changed_in_destination`, never overwritten. As many deltas as needed: none duplicates.
    pub async fn delta(&self, mode: DeltaMode) -> std::result::Result<RunSummary, RunFailure> {
        self.start_run_with(RunKind::Delta, false, Some(Part::Delta(mode))).await
    }

    /// A test sync of `n` records per object chosen by `seed` (and the parents they point at),
    /// for a preview engine: every issue and mapped value of the sample, nothing written.
    pub async fn preview_sample(&self, n: usize, seed: u64) -> std::result::Result<RunSummary, RunFailure> {
        self.start_run_with(RunKind::Preview, false, Some(Part::Sample { n, seed })).await
    }

    /// Continues the newest full or delta run that did not complete (killed, stopped, halted,
    /// cancelled) from its checkpoints, under the same run id: each object goes on after its last
    /// committed batch, and records the interrupted attempt created are adopted, never created twice.
    pub async fn resume(&self) -> std::result::Result<RunSummary, RunFailure> {
        self.start_run(RunKind::Full, true).await
    }

    async fn start_run(&self, kind: RunKind, resume: bool) -> std::result::Result<RunSummary, RunFailure> {
        self.start_run_with(kind, resume, None).await
    }

    /// Takes the project's run lock; runs still marked running then were stopped by a crash or a
    /// kill (whatever their kind) and are marked interrupted.
    pub fn take_lock(&self) -> Result<RunLock> {
        let lock_file = RunLock::acquire(&self.store_path)?;
        let interrupted = sync(|| lock(&self.store)?.mark_interrupted())?;
        if interrupted > 0 {
            warn!(interrupted, "earlier runs had stopped without finishing");
        }
        Ok(lock_file)
    }

    async fn start_run_with(
        &self,
        kind: RunKind,
        resume: bool,
        part: Option<Part>,
    ) -> std::result::Result<RunSummary, RunFailure> {
        let started_at = Instant::now();
        let _lock = self.take_lock()?;
        let prepared = self.prepare().await?;
        let (run_id, kind, part) = sync(|| -> Result<(i64, RunKind, Option<Part>)> {
            let store = lock(&self.store)?;
            if resume {
                let run = store.resumable_run()?.map_err(|why| eyre!(why))?;
                store.resume_run(run.id, &self.project.hash)?;
                // A delta goes on taking the same part of the source.
                if run.kind == "delta" {
                    let mode = store.run_mode(run.id)?.as_deref().and_then(DeltaMode::parse).unwrap_or(DeltaMode::Both);
                    return Ok((run.id, RunKind::Delta, Some(Part::Delta(mode))));
                }
                return Ok((run.id, kind, part));
            }
            let id = store.begin_run(kind, &os_user(), &self.project.hash)?;
            if let Some(Part::Delta(mode)) = part {
                store.set_run_mode(id, mode.as_str())?;
            }
            Ok((id, kind, part))
        })?;
        info!(run_id, kind = kind.as_str(), resume, "run started");
        self.control.send_replace(Control::Go);
        self.progress.send_modify(|p| {
            *p = Progress::new(kind.as_str(), &self.project.order);
            p.run_id = Some(run_id);
            p.state = RunState::Running;
        });
        let carried = if resume {
            sync(|| lock(&self.store)?.run_counts(run_id))?.iter().map(|(_, _, c)| c.extracted).sum()
        } else {
            0
        };
        // Held records are indexed by value once, at the end, not one random insert at a time.
        sync(|| lock(&self.store)?.queue_value_index(false))?;
        let result = self.run_objects(run_id, &prepared, resume, part).await;
        if let Err(e) = sync(|| lock(&self.store)?.queue_value_index(true)) {
            warn!(error = %format!("{e:#}"), "could not index the held records by value; the console reads without it");
        }
        self.finish(run_id, kind, started_at, result).await.map(|s| RunSummary { carried, ..s })
    }

    async fn finish(
        &self,
        run_id: i64,
        kind: RunKind,
        started_at: Instant,
        result: Result<Finish>,
    ) -> std::result::Result<RunSummary, RunFailure> {
        let failure = |error| RunFailure { started: true, error };
        let store = self.store.clone();
        // The day's allowance spent (or about to be) is a halt, not a failure: the run resumes
        // tomorrow. The batch it stopped in was not committed; its journal stays for the resume.
        let (result, uncommitted) = match result {
            Err(e) if let Some(why) = crate::connect::http::spent_for_today(&e) => (Ok(Finish::Halted(why)), true),
            other => (other, false),
        };
        match result {
            Ok(finish) => {
                let (state, reason) = match &finish {
                    Finish::Completed => ("completed", None),
                    Finish::Halted(r) => ("halted", Some(r.as_str())),
                    Finish::Cancelled => ("cancelled", Some("cancelled by the operator")),
                };
                sync(|| lock(&store)?.finish_run(run_id, state, reason)).map_err(failure)?;
                // Every batch of this attempt is committed: its journal has nothing left to replay.
                if !uncommitted {
                    sync(|| self.journal()?.clear(run_id)).map_err(failure)?;
                }
                let objects = sync(|| lock(&store)?.run_counts(run_id)).map_err(failure)?;
                self.progress.send_modify(|p| {
                    p.state = match &finish {
                        Finish::Completed => RunState::Completed,
                        Finish::Halted(r) => RunState::Halted(r.clone()),
                        Finish::Cancelled => RunState::Cancelled,
                    };
                    p.phase = state.into();
                });
                info!(run_id, state, "run finished");
                Ok(RunSummary { run_id, kind, finish, objects, elapsed: started_at.elapsed(), carried: 0 })
            }
            Err(e) => {
                // The connectors name their own systems; a SQLite error left is the state's.
                let e = if e.chain().any(|c| c.is::<rusqlite::Error>()) {
                    let folder = self.store_path.parent().unwrap_or(std::path::Path::new("."));
                    let folder = std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_path_buf());
                    crate::connect::unavailable::told(
                        format!(
                            "the project's state (cutover.state.db and its index and journal in {})",
                            folder.display()
                        ),
                        e,
                    )
                } else {
                    e
                };
                let message = format!("{e:#}");
                warn!(run_id, error = %message, "run failed");
                let _ = sync(|| lock(&store).and_then(|s| s.finish_run(run_id, "failed", Some(&message))));
                self.progress.send_modify(|p| p.state = RunState::Failed(message));
                Err(failure(e))
            }
        }
    }

    /// Counts each destination object before the migration first writes to it (reconciliation's
    /// count witness: what it holds later must be that plus what Cutover created).
    async fn take_baselines(&self, run_id: i64, plans: &[Arc<ObjectPlan>]) -> Result<()> {
        let mut seen = HashSet::default();
        let dests: Vec<&str> = plans.iter().map(|p| p.dest_object.as_str()).filter(|d| seen.insert(*d)).collect();
        for dest in dests {
            if sync(|| lock(&self.store)?.baseline(dest))?.is_some() {
                continue;
            }
            let Some(n) =
                self.dest.record_count(dest).await.wrap_err_with(|| format!("counting {dest} in the destination"))?
            else {
                continue;
            };
            let objects: Vec<&str> = plans.iter().filter(|p| p.dest_object == dest).map(|p| p.name.as_str()).collect();
            sync(|| lock(&self.store)?.set_baseline(dest, n, &objects, run_id))?;
        }
        Ok(())
    }

    async fn run_objects(&self, run_id: i64, prepared: &Prepared, resume: bool, part: Option<Part>) -> Result<Finish> {
        self.take_baselines(run_id, &prepared.plans).await?;
        let mut sampled = match part {
            Some(Part::Sample { n, seed }) => {
                self.progress.send_modify(|p| p.phase = "choosing the sample".into());
                super::scope::sample(self.source.as_ref(), &prepared.plans, n, seed).await?
            }
            _ => std::collections::HashMap::new(),
        };
        for (position, plan) in prepared.plans.iter().enumerate() {
            let total = self
                .source
                .count(&plan.source_object)
                .await
                .wrap_err_with(|| format!("counting {} in the source", plan.name))?;
            let checkpoint = if resume { sync(|| lock(&self.store)?.checkpoint(run_id, &plan.name))? } else { None };
            if let Some(done) = checkpoint.as_ref().filter(|c| c.done) {
                let counts = done.counts;
                // A finished object that did not read what the source holds is not completed by
                // resuming: the records it missed would never be read.
                if part.is_none() && counts.extracted != total {
                    return Ok(Finish::Halted(format!(
                        "{}: the interrupted attempt read {} of the {total} records the source reports, and a \
                         resume cannot read a finished object again — start a new run (`cutover run`): it finds \
                         every record already written by its source id",
                        plan.name, counts.extracted
                    )));
                }
                self.progress.send_modify(|p| {
                    p.objects[position].total = Some(total);
                    p.objects[position].counts = counts;
                });
                continue;
            }
            // An object begins with reads of its own (the destination's match keys): not on the
            // last of the day's allowance.
            if let Some(why) = self.day_nearly_spent() {
                return Ok(Finish::Halted(why));
            }
            sync(|| lock(&self.store)?.begin_object(run_id, &plan.name, position, Some(total)))?;
            self.progress.send_modify(|p| {
                p.current = Some(position);
                p.objects[position].total = Some(total);
                p.phase = format!("indexing {} in the destination", plan.dest_object);
            });
            self.refresh_match_index(plan).await?;
            let recovered = self.recover_created(plan).await?;
            let start = match checkpoint {
                Some(c) => {
                    info!(object = %plan.name, records = c.counts.extracted, "resuming after the last checkpoint");
                    Start { cursor: Cursor(c.cursor.unwrap_or_default()), counts: c.counts }
                }
                None => Start { cursor: Cursor::start(), counts: Counts::default() },
            };
            self.progress.send_modify(|p| {
                p.objects[position].counts = start.counts;
                p.phase = format!("migrating {}", plan.name);
            });
            let filter = match part {
                Some(Part::Delta(mode)) => Some(Arc::new(Scope::Delta(sync(|| {
                    DeltaFilter::load(&*lock(&self.store)?, plan, mode, self.settings.day_first)
                })?))),
                Some(Part::Sample { .. }) => Some(Arc::new(Scope::Ids(sampled.remove(&plan.name).unwrap_or_default()))),
                None => None,
            };
            if let Some(scope) = &filter {
                // Part of the source: the source's count is no total to check against.
                let size = scope.size();
                self.progress.send_modify(|p| p.objects[position].total = size);
            }
            let run = ObjectRun { position, total, start, recovered: &recovered, filter };
            if let Some(stop) = self.run_object(run_id, plan, prepared, run).await? {
                return Ok(stop);
            }
        }
        Ok(Finish::Completed)
    }

    /// Records the destination holds with this project's marker but the id map does not know:
    /// created by an attempt killed between the destination's write and the store's commit.
    /// They are adopted (outcome created, nothing written again). Only records that still exist.
    async fn recover_created(&self, plan: &ObjectPlan) -> Result<HashMap<String, String>> {
        if let Some(found) = self.recover_journaled(plan).await? {
            return Ok(found);
        }
        let marked = self
            .dest
            .marked(&self.project.config.project.name, &plan.dest_object)
            .await
            .wrap_err_with(|| format!("reading Cutover's markers in {}", plan.dest_object))?;
        if marked.is_empty() {
            return Ok(HashMap::new());
        }
        // A marker the id map does not link as it is — no link, or a link to another destination
        // record (one deleted by hand, which this attempt created anew) — is a write the store
        // never recorded.
        let known = sync(|| lock(&self.store)?.id_map_links(&plan.name))?;
        let unknown: Vec<(String, String)> = marked
            .into_iter()
            .filter_map(|(marker, dest)| plan.unmark(&marker).map(|sid| (sid.to_string(), dest)))
            .filter(|(sid, dest)| known.get(sid) != Some(dest))
            .collect();
        if unknown.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<String> = unknown.iter().map(|(_, d)| d.clone()).collect();
        let exists = self.dest.read(&plan.dest_object, &ids, &[]).await?;
        let recovered: HashMap<String, String> = unknown.into_iter().filter(|(_, d)| exists.contains_key(d)).collect();
        if !recovered.is_empty() {
            warn!(
                object = %plan.name,
                records = recovered.len(),
                "records created by an interrupted attempt found by their markers: adopted, not created again"
            );
        }
        Ok(recovered)
    }

    /// The creates an unfinished attempt journaled and never committed, looked up one by one in a
    /// destination that can (`Destination::find_created`): by marker, or by parent and content
    /// where a record carries none. One destination record is adopted by one source record, and
    /// never one the id map already links. `None`: the destination cannot look them up.
    async fn recover_journaled(&self, plan: &ObjectPlan) -> Result<Option<HashMap<String, String>>> {
        let known = sync(|| lock(&self.store)?.id_map_links(&plan.name))?;
        let pending: Vec<PendingCreate> = sync(|| self.journal()?.pending_creates(&plan.name))?
            .into_iter()
            .filter(|p| !known.contains_key(&p.source_id))
            .collect();
        let wanted: Vec<(String, serde_json::Value)> = pending
            .iter()
            .map(|p| (p.marker.clone(), serde_json::from_str(&p.written).unwrap_or(serde_json::Value::Null)))
            .collect();
        let Some(found) = self
            .dest
            .find_created(&plan.dest_object, &wanted)
            .await
            .wrap_err_with(|| format!("looking up {} an interrupted attempt may have created", plan.dest_object))?
        else {
            return Ok(None);
        };
        let taken: HashSet<&String> = known.values().collect();
        let mut adopted: HashSet<String> = HashSet::default();
        let mut recovered = HashMap::new();
        for (p, dest) in pending.iter().zip(found) {
            if let Some(dest) = dest.filter(|d| !taken.contains(d) && adopted.insert(d.clone())) {
                recovered.insert(p.source_id.clone(), dest);
            }
        }
        if !recovered.is_empty() {
            warn!(
                object = %plan.name,
                records = recovered.len(),
                looked_up = pending.len(),
                "records created by an interrupted attempt found by their journaled writes: adopted, not created again"
            );
        }
        Ok(Some(recovered))
    }

    pub(super) fn journal(&self) -> Result<MutexGuard<'_, Journal>> {
        self.journal.lock().map_err(|_| eyre!("journal lock poisoned"))
    }

    pub(super) fn index(&self) -> Result<MutexGuard<'_, MatchIndex>> {
        self.index.lock().map_err(|_| eyre!("match index lock poisoned"))
    }

    /// Rebuilds the object's match index from a scan of the destination, normalising each key
    /// the way the mapping does, and leaves its transaction open for the run's own writes.
    async fn refresh_match_index(&self, plan: &ObjectPlan) -> Result<()> {
        sync(|| -> Result<()> {
            let mut index = self.index()?;
            index.begin(&plan.name)?;
            index.clear(&plan.name)?;
            // The records Cutover wrote before: a re-run finds them by id and updates them.
            index.note_written(lock(&self.store)?.id_map_ids(&plan.name)?);
            Ok(())
        })?;
        if plan.match_keys.is_empty() {
            return Ok(());
        }
        let fields: Vec<String> = plan.match_keys.iter().map(|k| k.field.clone()).collect();
        let mut cursor = Cursor::start();
        loop {
            let (rows, next, done) = self.dest.scan(&plan.dest_object, &fields, &cursor, 5000).await?;
            let mut keys = Vec::with_capacity(rows.len() * fields.len());
            for (id, values) in rows {
                for (k, v) in plan.match_keys.iter().zip(values) {
                    if let Some(n) =
                        v.and_then(|v| super::dedupe::normalize_key(k.kind, &v, false, self.settings.region))
                    {
                        keys.push((k.field.clone(), n, id.clone()));
                    }
                }
            }
            sync(|| self.index()?.add(&plan.name, &keys, None))?;
            cursor = next;
            if done {
                return Ok(());
            }
        }
    }

    /// Before a reprocess: the index must be whole; an interrupted one is rebuilt.
    async fn ensure_match_index(&self, plan: &ObjectPlan) -> Result<()> {
        if sync(|| self.index()?.is_clean(&plan.name))? {
            sync(|| -> Result<()> {
                let mut index = self.index()?;
                index.begin(&plan.name)?;
                index.load_filter(&plan.name)?;
                index.note_written(lock(&self.store)?.id_map_ids(&plan.name)?);
                Ok(())
            })
        } else {
            self.refresh_match_index(plan).await
        }
    }

    pub(super) fn mapper(&self, plan: &Arc<ObjectPlan>, owners: &Arc<Owners>) -> Result<Mapper> {
        Ok(Mapper::new(plan.clone(), self.settings.clone(), owners.clone(), Store::open_reader(&self.store_path)?))
    }

    /// Returns how the run stops if it must stop here (halted, cancelled).
    async fn run_object(
        &self,
        run_id: i64,
        plan: &Arc<ObjectPlan>,
        prepared: &Prepared,
        run: ObjectRun<'_>,
    ) -> Result<Option<Finish>> {
        let ObjectRun { position, total, start, recovered, filter } = run;
        let partial = filter.is_some();
        let delta = matches!(filter.as_deref(), Some(Scope::Delta(_)));
        let batch_size = self.project.config.project.batch_size;
        let mapper = self.mapper(plan, &prepared.owners)?;
        let (corrections, skips, seen, journal) = sync(|| -> Result<_> {
            let store = lock(&self.store)?;
            // A resumed run goes on numbering the rows under each source id, and replays the
            // updates its interrupted attempt sent from their journal.
            let seen = SeenIds::resumed(store.read_in_run(run_id, &plan.name)?);
            let skips: HashMap<_, _> = store.skips_for(&plan.name)?.into_iter().collect();
            Ok((store.corrections_for(&plan.name)?, skips, seen, self.journal()?.pending(run_id, &plan.name)?))
        })?;
        let held_for_review = match plan.linkage {
            Some(_) => sync(|| lock(&self.store)?.held_for_review(&plan.name))?,
            None => std::collections::HashMap::new(),
        };
        let (mut rx, producer) = extract::spawn(
            self.source.clone(),
            plan.clone(),
            mapper,
            corrections,
            batch_size,
            start.cursor,
            filter,
            self.timings.clone(),
            seen,
        );
        let resolve_queue = sync(|| lock(&self.store)?.open_queue_count(&plan.name))? > 0;
        let mut counts = start.counts;
        let threshold = self.project.config.project.halt_error_rate;
        let mut halt = None;
        let mut cancelled = false;

        let linkage =
            self.load_linkage(run_id, plan, &prepared.owners, false, recovered, Some(total)).await?.map(Mutex::new);
        let mut writer = CommitWriter::start(self.store.clone(), self.timings.clone(), delta);
        let index_writer = Mutex::new(IndexWriter::start(self.index.clone(), self.timings.clone()));
        let reader = Mutex::new(Store::open_reader(&self.store_path)?);
        let mut batch_no = 0u64;
        // Batches whose writes are on their way, oldest first: a destination whose retries wait
        // on Retry-After keeps its limit full when the next batches are sent meanwhile.
        let most = match self.dest.records_in_flight(&plan.dest_object).await {
            // Linkage weighs every written record as a candidate: one batch at a time.
            _ if linkage.is_some() => 1,
            0 => 1,
            records => (records / batch_size.max(1)).clamp(2, MOST_BATCHES_IN_FLIGHT),
        };
        info!(object = %plan.name, batches = most, "batches whose writes may be in flight at once");
        let mut flights: VecDeque<(Flight, Landing)> = VecDeque::new();
        let answered = Arc::new(tokio::sync::Notify::new());
        let ctx = LandCtx { run_id, plan, position, resolve_queue, threshold, linkage: linkage.as_ref() };
        let outcome: Result<()> = async {
            'batches: while let Some(msg) = rx.recv().await {
                let MappedBatch { items, next, done } = msg?;
                batch_no += 1;
                let landing = Landing {
                    batch_no,
                    n: items.len() as u64,
                    cursor: next.0,
                    done,
                    high_water: self.high_water(plan, &items),
                };
                if repeats_earlier_batch(&items) {
                    // A second row under an id read in an earlier batch: its first row must be
                    // in the store to be shown beside it.
                    if let Some(why) =
                        self.land_all(&ctx, &mut flights, &mut counts, &mut writer, &index_writer).await?
                    {
                        halt = Some(why);
                        break;
                    }
                    writer.flush()?;
                }
                let mut items = items;
                let flight = loop {
                    let lookups = Lookups {
                        store: &reader,
                        in_flight: writer.in_flight(),
                        in_flight_dest: writer.in_flight_dest(),
                        in_flight_images: writer.in_flight_images(),
                        index_writer: Some(&index_writer),
                        recovered,
                        journal: &journal,
                        delta,
                        skips: &skips,
                        linkage: linkage.as_ref(),
                        held_for_review: &held_for_review,
                    };
                    let flying: Vec<&Reach> = flights.iter().map(|(f, _)| f.reach()).collect();
                    let flying = (most > 1).then_some(&flying[..]);
                    match self.launch_batch(run_id, plan, &prepared.owners, items, &lookups, flying, &answered).await? {
                        Launch::Started(flight) => break flight,
                        // It reaches what a batch in flight reaches: that one and those before
                        // it land first; later ones fly on.
                        Launch::Blocked(back, met) => {
                            items = back;
                            let landed =
                                self.land_first(&ctx, &mut flights, met + 1, &mut counts, &mut writer, &index_writer);
                            if let Some(why) = landed.await? {
                                halt = Some(why);
                                break 'batches;
                            }
                        }
                    }
                };
                flights.push_back((flight, landing));
                // Batches land in order, each as soon as it and those before it are answered.
                // A batch waiting on a retry holds back its landing, never the sending of the
                // next ones: only unanswered batches count against the limit (and all that
                // wait, answered or not, against four times it).
                loop {
                    while flights.front().is_some_and(|(f, _)| f.answered() || done) {
                        let Some((flight, landing)) = flights.pop_front() else { break };
                        if let Some(why) =
                            self.land(&ctx, flight, landing, &mut counts, &mut writer, &index_writer).await?
                        {
                            halt = Some(why);
                            break 'batches;
                        }
                    }
                    let unanswered = flights.iter().filter(|(f, _)| !f.answered()).count();
                    if unanswered < most && flights.len() < 4 * most {
                        break;
                    }
                    answered.notified().await;
                }
                if done {
                    break;
                }
                if let Some(why) = self.day_nearly_spent() {
                    halt = Some(why);
                    break;
                }
                if *self.control.borrow() != Control::Go {
                    // A pause or a cancel waits for every batch in flight to land first.
                    if let Some(why) =
                        self.land_all(&ctx, &mut flights, &mut counts, &mut writer, &index_writer).await?
                    {
                        halt = Some(why);
                        break;
                    }
                    if self.checkpoint_control().await {
                        cancelled = true;
                        break;
                    }
                }
            }
            // Batches still in flight land (a halt or a stop between batches) unless something
            // failed: then they stay uncommitted, found again by their journal and markers.
            if let Some(why) = self.land_all(&ctx, &mut flights, &mut counts, &mut writer, &index_writer).await? {
                halt.get_or_insert(why);
            }
            Ok(())
        }
        .await;
        for (flight, _) in flights {
            flight.abandon().await;
        }
        // Whatever happened, every batch handed to the writers is committed before going on.
        let written = writer.finish().await;
        let indexed = match index_writer.into_inner() {
            Ok(w) => w.finish().await,
            Err(_) => Err(eyre!("match index writer lock poisoned")),
        };
        outcome?;
        written?;
        indexed?;
        drop(rx);
        let _ = producer.await;
        if cancelled {
            sync(|| self.index()?.finish())?;
            self.check_invariant(run_id, &plan.name, &counts)?;
            info!(object = %plan.name, records = counts.extracted, "cancelled by the operator");
            return Ok(Some(Finish::Cancelled));
        }
        if halt.is_none() && !partial && counts.extracted != total {
            halt = Some(format!(
                "{}: the source reported {total} records but {} were read — the source changed during the run or \
                 could not be read to the end",
                plan.name, counts.extracted
            ));
        }
        sync(|| self.index()?.finish())?;
        self.check_invariant(run_id, &plan.name, &counts)?;
        info!(object = %plan.name, records = counts.extracted, timings = %self.timings.summary(), "object done");
        Ok(halt.map(Finish::Halted))
    }

    /// Every extracted record has exactly one outcome, in the counters and in the audit log.
    fn check_invariant(&self, run_id: i64, object: &str, counts: &Counts) -> Result<()> {
        let audited = sync(|| lock(&self.store)?.audit_counts(run_id, object))?;
        if !counts.balanced() || audited != *counts {
            return Err(eyre!(
                "INVARIANT BROKEN for {object} in run {run_id}: extracted {} but outcomes {} (audit log: {:?}, \
                 counters: {:?}). This is a bug in Cutover; the store keeps everything done so far.",
                counts.extracted,
                counts.outcomes(),
                audited,
                counts
            ));
        }
        Ok(())
    }

    /// Sends held records again through map → dedupe → validate → write, with their corrections.
    /// Children waiting on a parent that gets written are released in the same run.
    pub async fn reprocess(&self, ids: &[i64]) -> std::result::Result<RunSummary, RunFailure> {
        let started_at = Instant::now();
        let _lock = self.take_lock()?;
        let prepared = self.prepare().await?;
        let wanted = self.held_items(ids, true)?;
        let run_id = sync(|| -> Result<i64> {
            let store = lock(&self.store)?;
            let run_id = store.begin_run(RunKind::Reprocess, &os_user(), &self.project.hash)?;
            store.add_run_items(run_id, ids)?;
            Ok(run_id)
        })?;
        self.reprocess_run(run_id, started_at, &prepared, wanted).await
    }

    /// Continues the newest reprocess that stopped before finishing (killed, failed), under the
    /// same run id, with the queue items it was given that are still held: what it wrote before
    /// is not written again, and the result is the one an uninterrupted reprocess gives.
    pub async fn resume_reprocess(&self) -> std::result::Result<RunSummary, RunFailure> {
        let started_at = Instant::now();
        let _lock = self.take_lock()?;
        let prepared = self.prepare().await?;
        let (run, ids) = sync(|| lock(&self.store)?.resumable_reprocess())?.map_err(|why| eyre!(why))?;
        let wanted = self.held_items(&ids, false)?;
        sync(|| lock(&self.store)?.resume_run(run.id, &self.project.hash))?;
        info!(run_id = run.id, items = ids.len(), "resuming a reprocess");
        self.reprocess_run(run.id, started_at, &prepared, wanted).await
    }

    /// Queue items by object; `strict`: an item that is not held is an error.
    fn held_items(&self, ids: &[i64], strict: bool) -> Result<HashMap<String, Vec<QueueItem>>> {
        let mut wanted: HashMap<String, Vec<QueueItem>> = HashMap::new();
        let store = sync(|| lock(&self.store))?;
        for &id in ids {
            let item = store.queue_item(id)?.ok_or_else(|| eyre!("no queue item {id}"))?;
            if !item.status.is_pending() {
                if strict {
                    return Err(eyre!("queue item {id} is {}; only open items are reprocessed", item.status.as_str()));
                }
                continue;
            }
            wanted.entry(item.object.clone()).or_default().push(item);
        }
        Ok(wanted)
    }

    async fn reprocess_run(
        &self,
        run_id: i64,
        started_at: Instant,
        prepared: &Prepared,
        wanted: HashMap<String, Vec<QueueItem>>,
    ) -> std::result::Result<RunSummary, RunFailure> {
        self.progress.send_modify(|p| {
            *p = Progress::new("reprocess", &self.project.order);
            p.run_id = Some(run_id);
            p.state = RunState::Running;
        });
        let result = self.reprocess_objects(run_id, prepared, wanted).await;
        self.finish(run_id, RunKind::Reprocess, started_at, result.map(|()| Finish::Completed)).await
    }

    async fn reprocess_objects(
        &self,
        run_id: i64,
        prepared: &Prepared,
        mut wanted: HashMap<String, Vec<QueueItem>>,
    ) -> Result<()> {
        let mut seen: HashSet<i64> = wanted.values().flatten().map(|i| i.id).collect();
        for (position, plan) in prepared.plans.iter().enumerate() {
            let Some(items) = wanted.remove(&plan.name) else {
                continue;
            };
            sync(|| lock(&self.store)?.begin_object(run_id, &plan.name, position, None))?;
            self.ensure_match_index(plan).await?;
            // A reprocess killed after its write finds its records here, instead of writing twice.
            let recovered = self.recover_created(plan).await?;
            let linkage =
                self.load_linkage(run_id, plan, &prepared.owners, true, &recovered, None).await?.map(Mutex::new);
            let journal = sync(|| self.journal()?.pending(run_id, &plan.name))?;
            let mapper = self.mapper(plan, &prepared.owners)?;
            // A resumed reprocess goes on counting where its interrupted attempt stopped.
            let mut counts =
                sync(|| lock(&self.store)?.checkpoint(run_id, &plan.name))?.map(|c| c.counts).unwrap_or_default();
            for chunk in items.chunks(self.project.config.project.batch_size) {
                let batch: Vec<Item> = sync(|| {
                    chunk
                        .iter()
                        .map(|q| {
                            let record = source_record(plan, q);
                            // The hash of the values as read, before any `source.FIELD` correction:
                            // what a delta and reconciliation compare the source with later.
                            let hash = super::delta::source_hash_u64(&record.values);
                            let mut m = mapper.map(record, &q.corrections)?;
                            m.source_hash = Some(hash);
                            m.occurrence = q.occurrence;
                            Ok(Item::Mapped(m))
                        })
                        .collect::<Result<_>>()
                })?;
                let commit = {
                    let (none, nobody, no_skips, no_images) =
                        (HashMap::new(), HashMap::new(), HashMap::new(), HashMap::new());
                    let none_held = std::collections::HashMap::new();
                    let lookups = Lookups {
                        store: &self.store,
                        in_flight: &none,
                        in_flight_dest: &nobody,
                        in_flight_images: &no_images,
                        index_writer: None,
                        recovered: &recovered,
                        journal: &journal,
                        delta: false,
                        skips: &no_skips,
                        linkage: linkage.as_ref(),
                        held_for_review: &none_held,
                    };
                    self.process_batch(run_id, plan, &prepared.owners, batch, &mut counts, None, false, true, &lookups)
                        .await?
                };
                let written: Vec<String> = commit.id_map.iter().map(|w| w.source_id.clone()).collect();
                sync(|| -> Result<()> {
                    let store = &mut *lock(&self.store)?;
                    store.commit_batch(&commit)?;
                    let mut index = self.index()?;
                    index.add(&plan.name, &commit.match_keys, Some(run_id))?;
                    index.note_written(commit.id_map.iter().map(|w| &w.source_id));
                    drop(index);
                    // Release children held until these records were written (kept with the
                    // run, so a resumed attempt releases them too).
                    let mut released = Vec::new();
                    for sid in &written {
                        for child in store.queue_waiting_on(&plan.name, sid)? {
                            if seen.insert(child)
                                && let Some(item) = store.queue_item(child)?
                            {
                                released.push(child);
                                wanted.entry(item.object.clone()).or_default().push(item);
                            }
                        }
                    }
                    store.add_run_items(run_id, &released)?;
                    Ok(())
                })?;
                self.progress.send_modify(|p| p.objects[position].counts = counts);
            }
            sync(|| self.index()?.finish())?;
            self.check_invariant(run_id, &plan.name, &counts)?;
        }
        Ok(())
    }
}

/// What a match is called in the audit log when an operator chose the record.
pub const OPERATOR_CHOICE: &str = "operator's choice";

/// The source record a queue item was made from, realigned with the source's current fields.
fn source_record(plan: &ObjectPlan, item: &QueueItem) -> SourceRecord {
    SourceRecord {
        source_id: item.source_id.clone(),
        origin: item.origin.clone(),
        values: plan.source_fields.iter().map(|f| item.source.get(f).cloned().flatten()).collect(),
    }
}

/// Whether the batch holds a second row under an id whose first row an earlier batch read.
fn repeats_earlier_batch(items: &[Item]) -> bool {
    let firsts: HashSet<&str> = items
        .iter()
        .filter_map(|i| match i {
            Item::Mapped(m) if m.occurrence == 1 => Some(m.source.source_id.as_str()),
            Item::Malformed { source_id, occurrence: 1, .. } => Some(source_id.as_str()),
            _ => None,
        })
        .collect();
    items
        .iter()
        .any(|i| matches!(i, Item::Mapped(m) if m.occurrence > 1 && !firsts.contains(m.source.source_id.as_str())))
}
