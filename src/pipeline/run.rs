//! Drives one run: for each object, parents first, a producer task extracts and maps batches
//! while this task dedupes, validates, writes and commits them. Every record read ends with
//! exactly one outcome, committed with the checkpoint that covers it.

use super::commit::CommitWriter;
use super::dedupe::{BatchDeduper, Decision, MatchLookup, RecordKeys, merge};
use super::delta::{DeltaFilter, DeltaMode};
use super::extract::{self, Item, MappedBatch};
use super::index_writer::{IndexBatch, IndexWriter};
use super::map::{MATCH_CHOICE, Mapper, MatchChoice, Owners};
use super::plan::ObjectPlan;
use super::progress::{Control, Progress, RunState};
use super::scope::{Part, Scope};
use super::timings::{Stage, Timings};
use super::transform::TransformSettings;
use super::validate::validate;
use super::write;
use crate::config::{ConfigError, LoadedConfig, MergeRule, Problems, check};
use crate::connect::{Cursor, Destination, Marks, Source};
use crate::model::{Counts, DestSchema, FieldNames, Issue, Outcome, Rule, SourceRecord, Value};
use crate::store::{
    AuditRow, BatchCommit, IdMapWrite, MatchIndex, QueueItem, QueueWrite, RunKind, RunLock, Store, match_index, os_user,
};
use color_eyre::eyre::{Result, WrapErr, eyre};
use foldhash::{HashMap, HashMapExt, HashSet};
use indexmap::IndexMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{info, warn};

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
    source: Arc<dyn Source>,
    dest: Arc<dyn Destination>,
    store: Arc<Mutex<Store>>,
    index: Arc<Mutex<MatchIndex>>,
    store_path: PathBuf,
    settings: TransformSettings,
    progress: watch::Sender<Progress>,
    control: Arc<watch::Sender<Control>>,
    timings: Arc<Timings>,
}

/// Where dedupe looks up what was written: a store connection, and the id-map entries of
/// batches handed to the writer thread but not yet committed (source id → destination id).
pub(crate) struct Lookups<'a> {
    store: &'a Mutex<Store>,
    in_flight: &'a HashMap<String, String>,
    /// The match-index writer of a run, holding the keys of the batch written last.
    index_writer: Option<&'a Mutex<IndexWriter>>,
    /// Records an interrupted attempt created (source id → destination id): adopted, not re-created.
    recovered: &'a HashMap<String, String>,
    /// A delta run: a record changed in the destination since Cutover wrote it is not overwritten.
    delta: bool,
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

/// What became of one position of a batch.
#[derive(Default)]
struct Slot {
    outcome: Option<Outcome>,
    dest_id: Option<String>,
    matched_by: Option<String>,
    detail: Option<String>,
    before_image: Option<String>,
    /// JSON of what the destination should hold after the write (mapped fields, merge applied).
    written: Option<String>,
    issues: Vec<Issue>,
    candidates: Option<String>,
}

fn lock(store: &Mutex<Store>) -> Result<MutexGuard<'_, Store>> {
    store.lock().map_err(|_| eyre!("state store lock poisoned"))
}

/// Runs blocking store work on this worker without starving the runtime.
fn sync<R>(f: impl FnOnce() -> R) -> R {
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
        let settings = TransformSettings { region, day_first: project.config.project.day_first };
        let (progress, _) = watch::channel(Progress::new("idle", &project.order));
        let (control, _) = watch::channel(Control::Go);
        Ok(Self {
            project,
            source,
            dest,
            store: Arc::new(Mutex::new(store)),
            index: Arc::new(Mutex::new(MatchIndex::open(&match_index::path_for(&store_path))?)),
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
        let mut source_fields: HashMap<String, Result<FieldNames, String>> = HashMap::new();
        let mut dest_schemas: HashMap<String, Result<Arc<DestSchema>, String>> = HashMap::new();
        for name in &self.project.order {
            let Some(object) = self.project.object(name) else {
                continue;
            };
            let src = self.source.fields(object.source_name(name)).await.map_err(|e| format!("{e:#}"));
            source_fields.insert(name.clone(), src);
            let dst = self.dest.schema(object.destination_name(name)).await.map(Arc::new).map_err(|e| format!("{e:#}"));
            dest_schemas.insert(name.clone(), dst);
        }
        let mut problems = Problems::new(&self.project.spans);
        check::against_schemas(
            &self.project.config,
            |name| check::ObjectSchemas {
                source_fields: match source_fields.get(name) {
                    Some(Ok(f)) => Ok(&f[..]),
                    Some(Err(e)) => Err(e.clone()),
                    None => Err("not read".into()),
                },
                destination: match dest_schemas.get(name) {
                    Some(Ok(s)) => Ok(s.as_ref()),
                    Some(Err(e)) => Err(e.clone()),
                    None => Err("not read".into()),
                },
            },
            &mut problems,
        );
        if !problems.is_empty() {
            return Err(ConfigError { file: self.project.path.clone(), problems: problems.into_vec() }.into());
        }
        let mut plans = Vec::new();
        for name in &self.project.order {
            let fields =
                source_fields.remove(name).and_then(Result::ok).ok_or_else(|| eyre!("no fields for {name}"))?;
            let schema = dest_schemas.remove(name).and_then(Result::ok).ok_or_else(|| eyre!("no schema for {name}"))?;
            plans.push(Arc::new(ObjectPlan::build(&self.project, name, fields, schema)?));
        }
        let users = self.dest.users().await.wrap_err("reading the destination's users")?;
        let owners = Arc::new(Owners::new(&users, &self.project.config.owners.aliases));
        Ok(Prepared { plans, owners })
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

    /// Continues the newest full run that did not complete (killed, stopped, halted, cancelled)
    /// from its checkpoints, under the same run id: each object goes on after its last committed
    /// batch, and records the interrupted attempt created are adopted, never created twice.
    pub async fn resume(&self) -> std::result::Result<RunSummary, RunFailure> {
        self.start_run(RunKind::Full, true).await
    }

    async fn start_run(&self, kind: RunKind, resume: bool) -> std::result::Result<RunSummary, RunFailure> {
        self.start_run_with(kind, resume, None).await
    }

    async fn start_run_with(
        &self,
        kind: RunKind,
        resume: bool,
        part: Option<Part>,
    ) -> std::result::Result<RunSummary, RunFailure> {
        let started_at = Instant::now();
        let _lock = RunLock::acquire(&self.store_path)?;
        let prepared = self.prepare().await?;
        let run_id = sync(|| -> Result<i64> {
            let store = lock(&self.store)?;
            let interrupted = store.mark_interrupted()?;
            if interrupted > 0 {
                warn!(interrupted, "earlier runs had stopped without finishing");
            }
            if resume {
                let run = store.resumable_run()?.map_err(|why| eyre!(why))?;
                store.resume_run(run.id, &self.project.hash)?;
                return Ok(run.id);
            }
            store.begin_run(kind, &os_user(), &self.project.hash)
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
        let result = self.run_objects(run_id, &prepared, resume, part).await;
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
        match result {
            Ok(finish) => {
                let (state, reason) = match &finish {
                    Finish::Completed => ("completed", None),
                    Finish::Halted(r) => ("halted", Some(r.as_str())),
                    Finish::Cancelled => ("cancelled", Some("cancelled by the operator")),
                };
                sync(|| lock(&store)?.finish_run(run_id, state, reason)).map_err(failure)?;
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
                let message = format!("{e:#}");
                warn!(run_id, error = %message, "run failed");
                let _ = sync(|| lock(&store).and_then(|s| s.finish_run(run_id, "failed", Some(&message))));
                self.progress.send_modify(|p| p.state = RunState::Failed(message));
                Err(failure(e))
            }
        }
    }

    async fn run_objects(&self, run_id: i64, prepared: &Prepared, resume: bool, part: Option<Part>) -> Result<Finish> {
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
        let marked = self
            .dest
            .marked(&self.project.config.project.name, &plan.dest_object)
            .await
            .wrap_err_with(|| format!("reading Cutover's markers in {}", plan.dest_object))?;
        if marked.is_empty() {
            return Ok(HashMap::new());
        }
        let known: HashSet<String> = sync(|| lock(&self.store)?.id_map_ids(&plan.name))?.into_iter().collect();
        let unknown: Vec<(String, String)> = marked
            .into_iter()
            .filter_map(|(marker, dest)| plan.unmark(&marker).map(|sid| (sid.to_string(), dest)))
            .filter(|(sid, _)| !known.contains(sid))
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

    fn index(&self) -> Result<MutexGuard<'_, MatchIndex>> {
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

    fn mapper(&self, plan: &Arc<ObjectPlan>, owners: &Arc<Owners>) -> Result<Mapper> {
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
        let corrections = sync(|| lock(&self.store)?.corrections_for(&plan.name))?;
        let (mut rx, producer) = extract::spawn(
            self.source.clone(),
            plan.clone(),
            mapper,
            corrections,
            batch_size,
            start.cursor,
            filter,
            self.timings.clone(),
        );
        let resolve_queue = sync(|| lock(&self.store)?.open_queue_count(&plan.name))? > 0;
        let mut counts = start.counts;
        let threshold = self.project.config.project.halt_error_rate;
        let mut halt = None;
        let mut cancelled = false;

        let mut writer = CommitWriter::start(self.store.clone(), self.timings.clone());
        let index_writer = Mutex::new(IndexWriter::start(self.index.clone(), self.timings.clone()));
        let reader = Mutex::new(Store::open_reader(&self.store_path)?);
        let mut batch_no = 0u64;
        let outcome: Result<()> = async {
            while let Some(msg) = rx.recv().await {
                let MappedBatch { items, next, done } = msg?;
                batch_no += 1;
                let n = items.len() as u64;
                let before = counts;
                let lookups = Lookups {
                    store: &reader,
                    in_flight: writer.in_flight(),
                    index_writer: Some(&index_writer),
                    recovered,
                    delta,
                };
                let high_water = plan.modified.and_then(|i| {
                    items
                        .iter()
                        .filter_map(|it| match it {
                            Item::Mapped(m) => m.source.values.get(i).cloned().flatten(),
                            Item::Malformed { .. } => None,
                        })
                        .filter(|v| !v.trim().is_empty())
                        .map(|v| super::delta::modified_key(&v, self.settings.day_first))
                        .max()
                });
                let commit = self
                    .process_batch(
                        run_id,
                        plan,
                        &prepared.owners,
                        items,
                        &mut counts,
                        Some(next.0),
                        done,
                        resolve_queue,
                        &lookups,
                    )
                    .await?;
                let rules = rule_tally(&commit);
                let mut commit = commit;
                commit.high_water = high_water;
                let for_index = IndexBatch {
                    object: plan.name.clone(),
                    run_id,
                    keys: std::mem::take(&mut commit.match_keys),
                    written: commit.id_map.iter().map(|w| w.source_id.clone()).collect(),
                };
                index_writer.lock().map_err(|_| eyre!("match index writer lock poisoned"))?.defer(for_index)?;
                writer.send(batch_no, commit)?;
                self.progress.send_modify(|p| p.objects[position].counts = counts);
                let bad = (counts.failed - before.failed) + (counts.queued - before.queued);
                if n >= 20 && bad as f64 / n as f64 > threshold {
                    halt = Some(format!(
                        "{bad} of {n} records in batch {batch_no} of {} were failed or queued ({:.0}%, above the \
                         halt threshold of {:.0}%); most common: {}",
                        plan.name,
                        100.0 * bad as f64 / n as f64,
                        100.0 * threshold,
                        rules
                    ));
                    break;
                }
                if done {
                    break;
                }
                if self.checkpoint_control().await {
                    cancelled = true;
                    break;
                }
            }
            Ok(())
        }
        .await;
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

    /// Dedupe → validate → write one batch; returns what to commit.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn process_batch(
        &self,
        run_id: i64,
        plan: &ObjectPlan,
        owners: &Owners,
        items: Vec<Item>,
        counts: &mut Counts,
        cursor: Option<String>,
        done: bool,
        resolve_queue: bool,
        lookups: &Lookups<'_>,
    ) -> Result<BatchCommit> {
        let n = items.len();
        let mut slots: Vec<Slot> = (0..n).map(|_| Slot::default()).collect();
        let mut decisions: Vec<Option<Decision>> = vec![None; n];
        // Matches held for an operator (merge rule "queue"): the destination record they match.
        let mut undecided: Vec<Option<String>> = vec![None; n];
        // Records an interrupted attempt already created: their destination id.
        let mut adopted: Vec<Option<String>> = vec![None; n];

        // Dedupe, against the store's match index and earlier records of the batch.
        let started = Instant::now();
        sync(|| -> Result<()> {
            let mut dedupe = BatchDeduper::new(plan, run_id, self.settings.region);
            let record_keys: Vec<RecordKeys> = items
                .iter()
                .map(|i| match i {
                    Item::Mapped(m) if m.issues.is_empty() => dedupe.keys_of(&m.values),
                    _ => Vec::new(),
                })
                .collect();
            let clean = items.iter().zip(&record_keys).filter_map(|(i, k)| match i {
                Item::Mapped(m) if m.issues.is_empty() => Some((m.source.source_id.as_str(), k)),
                _ => None,
            });
            let mut index_writer = match lookups.index_writer {
                Some(w) => Some(w.lock().map_err(|_| eyre!("match index writer lock poisoned"))?),
                None => None,
            };
            if let Some(w) = index_writer.as_mut() {
                w.wait_applied()?;
            }
            let known = super::dedupe::Prefetched::load(
                &*lock(lookups.store)?,
                &mut *self.index()?,
                plan,
                clean,
                lookups.in_flight,
                index_writer.as_ref().map_or(&[][..], |w| w.pending()),
                run_id,
            )?;
            // The lookup has seen the previous batch's keys: they may go into the index now,
            // while this batch is validated and written.
            if let Some(w) = index_writer.as_mut() {
                w.release()?;
            }
            for (i, item) in items.iter().enumerate() {
                match item {
                    Item::Malformed { message, .. } => {
                        slots[i].outcome = Some(Outcome::Failed);
                        slots[i].detail = Some(message.clone());
                    }
                    Item::Mapped(m) if !m.issues.is_empty() => {
                        let mut issues = m.issues.clone();
                        issues.extend(validate(plan, owners, &m.values, &m.issues, None));
                        slots[i].issues = issues;
                    }
                    Item::Mapped(m) if lookups.recovered.contains_key(&m.source.source_id) => {
                        // Created by an interrupted attempt: the decision an uninterrupted run
                        // made. Its keys still go into the batch, for duplicates after it.
                        let _ = dedupe.decide(&known, i, &m.source.source_id, &record_keys[i]);
                        decisions[i] = Some(Decision::Create);
                        adopted[i] = lookups.recovered.get(&m.source.source_id).cloned();
                    }
                    Item::Mapped(m) if m.match_choice.is_some() && known.written(&m.source.source_id).is_none() => {
                        // The operator decided this record's match: no dedupe second-guesses it.
                        // (Once written, the id map leads a later run to the same record.)
                        decisions[i] = Some(match &m.match_choice {
                            Some(MatchChoice::MergeInto(dest_id)) => Decision::Update {
                                dest_id: dest_id.clone(),
                                matched_by: OPERATOR_CHOICE.into(),
                                written_this_run: false,
                            },
                            _ => Decision::Create,
                        });
                    }
                    Item::Mapped(m) => {
                        let d = dedupe.decide(&known, i, &m.source.source_id, &record_keys[i]);
                        // Under the "queue" rule a match waits for a person — but not the
                        // record's own earlier write, found by its source id.
                        if plan.merge == MergeRule::Queue
                            && let Decision::Update { dest_id, matched_by, .. } = &d
                            && matched_by != "source_id"
                        {
                            slots[i].issues.push(Issue {
                                field: matched_by.clone(),
                                rule: Rule::MatchNeedsDecision,
                                value: None,
                                message: format!("matches destination record {dest_id}; this object has no merge rule"),
                                suggestion: Some("merge into it, create new, or skip".into()),
                            });
                            undecided[i] = Some(dest_id.clone());
                            continue;
                        }
                        decisions[i] = Some(d);
                    }
                }
            }
            Ok(())
        })?;

        self.timings.add(Stage::Dedupe, started.elapsed());

        // Read the destination records about to be updated, and the candidates of ambiguous matches.
        let mut wanted: Vec<String> = Vec::new();
        for d in decisions.iter().flatten() {
            match d {
                Decision::Update { dest_id, .. } => wanted.push(dest_id.clone()),
                Decision::Ambiguous { candidates, .. } => {
                    wanted.extend(candidates.iter().filter(|c| !c.starts_with("batch")).cloned())
                }
                _ => {}
            }
        }
        wanted.extend(undecided.iter().flatten().cloned());
        let fields: Vec<String> = plan.dest_fields.to_vec();
        let current = if wanted.is_empty() {
            std::collections::HashMap::new()
        } else {
            wanted.sort();
            wanted.dedup();
            let started = Instant::now();
            let read = self.dest.read(&plan.dest_object, &wanted, &fields).await?;
            self.timings.add(Stage::ReadDestination, started.elapsed());
            read
        };

        // Merge: leads hold the final values of the records to write.
        let mut finals: Vec<Option<Vec<Value>>> = vec![None; n];
        let mut updates: HashMap<usize, (String, Vec<Value>, bool)> = HashMap::new();
        // The side-by-side an operator decides from: each candidate's current values.
        let sides = |ids: &[String]| -> Result<String> {
            let sides: IndexMap<&String, Option<IndexMap<&String, &Value>>> =
                ids.iter().map(|c| (c, current.get(c).map(|vals| fields.iter().zip(vals).collect()))).collect();
            Ok(serde_json::to_string(&sides)?)
        };
        for i in 0..n {
            if let Some(dest_id) = &undecided[i] {
                slots[i].candidates = Some(sides(std::slice::from_ref(dest_id))?);
            }
        }
        // Records found by their own source id: Cutover wrote them in an earlier run.
        let own: Vec<(usize, String)> = (0..n)
            .filter_map(|i| match (&items[i], &decisions[i]) {
                (Item::Mapped(m), Some(Decision::Update { dest_id, matched_by, written_this_run: false }))
                    if matched_by == "source_id" && m.match_choice.is_none() =>
                {
                    Some((i, dest_id.clone()))
                }
                _ => None,
            })
            .collect();
        // Those Cutover created follow the source; those it merged into keep the merge rule.
        let follows_source: std::collections::HashSet<String> = if own.is_empty() {
            Default::default()
        } else {
            let ids: Vec<String> = own.iter().map(|(_, d)| d.clone()).collect();
            sync(|| lock(lookups.store)?.created_records(&plan.name, &ids))?
        };
        // A delta never overwrites what someone changed in the destination since Cutover wrote
        // it: such a record waits in the queue with both versions (an operator's decision —
        // `@match` — is the exception).
        if lookups.delta && !own.is_empty() {
            let ids: Vec<String> = own.iter().map(|(_, d)| d.clone()).collect();
            let images = sync(|| lock(lookups.store)?.written_images(&plan.name, &ids))?;
            for (i, dest_id) in own {
                let (Some(image), Some(now)) = (images.get(&dest_id), current.get(&dest_id)) else { continue };
                let wrote: IndexMap<String, Value> = serde_json::from_str(image)?;
                let mut issues = Vec::new();
                for (f, w) in &wrote {
                    let Some(pos) = fields.iter().position(|x| x == f) else { continue };
                    let found = now.get(pos).cloned().flatten();
                    let ty = plan.schema.field(f).map(|d| d.ty).unwrap_or(crate::model::FieldType::Text);
                    if !crate::compare::same(ty, w.as_deref(), found.as_deref()) {
                        issues.push(Issue {
                            field: f.clone(),
                            rule: Rule::ChangedInDestination,
                            value: found,
                            message: format!(
                                "changed in the destination since Cutover wrote {} there",
                                crate::text::shown_opt(w.as_deref())
                            ),
                            suggestion: Some(format!(
                                "keep the destination's version (skip), or overwrite it (@match={dest_id})"
                            )),
                        });
                    }
                }
                if !issues.is_empty() {
                    slots[i].issues = issues;
                    slots[i].candidates = Some(sides(std::slice::from_ref(&dest_id))?);
                    decisions[i] = None;
                }
            }
        }
        for i in 0..n {
            let Item::Mapped(m) = &items[i] else { continue };
            let Some(decision) = decisions[i].clone() else {
                if slots[i].outcome.is_none() {
                    slots[i].outcome = Some(Outcome::Queued);
                }
                continue;
            };
            match decision {
                Decision::Create => finals[i] = Some(m.values.clone()),
                Decision::Update { dest_id, matched_by, written_this_run } => {
                    slots[i].matched_by = Some(matched_by.clone());
                    match current.get(&dest_id) {
                        Some(cur)
                            if let Some(message) = self.stale_match(plan, &matched_by, &dest_id, cur, &m.values) =>
                        {
                            slots[i].issues.push(Issue {
                                field: matched_by,
                                rule: Rule::AmbiguousMatch,
                                value: None,
                                message,
                                suggestion: Some(
                                    "reprocess it: the next attempt matches on the destination's current values".into(),
                                ),
                            });
                            slots[i].outcome = Some(Outcome::Queued);
                            decisions[i] = None;
                        }
                        Some(cur) => {
                            finals[i] = Some(if matched_by == "source_id" && follows_source.contains(&dest_id) {
                                m.values.clone()
                            } else {
                                merge(cur, &m.values, merge_rule_for(plan, &matched_by))
                            });
                            updates.insert(i, (dest_id, cur.clone(), written_this_run));
                        }
                        None if matched_by == OPERATOR_CHOICE => {
                            slots[i].issues.push(Issue {
                                field: MATCH_CHOICE.into(),
                                rule: Rule::AmbiguousMatch,
                                value: Some(dest_id.clone()),
                                message: format!("the chosen destination record {dest_id} no longer exists"),
                                suggestion: Some("choose another record to merge into, or create new".into()),
                            });
                            slots[i].outcome = Some(Outcome::Queued);
                            decisions[i] = None;
                        }
                        None => {
                            // The destination no longer has it: write it anew.
                            slots[i].detail =
                                Some(format!("destination record {dest_id} no longer exists; created anew"));
                            decisions[i] = Some(Decision::Create);
                            finals[i] = Some(m.values.clone());
                        }
                    }
                }
                Decision::IntoLead { lead, matched_by } => {
                    slots[i].matched_by = Some(matched_by);
                    if let Some(lead_values) = finals[lead].take() {
                        finals[lead] = Some(merge(&lead_values, &m.values, plan.merge));
                    }
                }
                Decision::Ambiguous { matched_by, candidates } => {
                    slots[i].candidates = Some(sides(&candidates)?);
                    slots[i].issues.push(Issue {
                        field: matched_by.clone(),
                        rule: Rule::AmbiguousMatch,
                        value: m
                            .values
                            .get(plan.dest_fields.iter().position(|f| *f == matched_by).unwrap_or(0))
                            .cloned()
                            .flatten(),
                        message: format!(
                            "{} destination records match on {matched_by}: {}",
                            candidates.len(),
                            candidates.join(", ")
                        ),
                        suggestion: Some("choose the record to merge into, create new, or skip".into()),
                    });
                    slots[i].outcome = Some(Outcome::Queued);
                    decisions[i] = None;
                }
            }
        }

        // Validate the final values of every record about to be written.
        for i in 0..n {
            if let Some(values) = &finals[i] {
                let written: Option<Vec<bool>> =
                    updates.get(&i).map(|(_, cur, _)| cur.iter().zip(values).map(|(c, v)| c != v).collect());
                let issues = validate(plan, owners, values, &[], written.as_deref());
                if !issues.is_empty() {
                    slots[i].issues = issues;
                    slots[i].outcome = Some(Outcome::Queued);
                    finals[i] = None;
                    decisions[i] = None;
                    updates.remove(&i);
                }
            }
        }

        // Write: creates and updates in batches, one result per record.
        let dedupe_keys = BatchDeduper::new(plan, run_id, self.settings.region);
        let mut keys: Vec<RecordKeys> = vec![Vec::new(); n];
        let mut creates: Vec<usize> = (0..n).filter(|&i| finals[i].is_some() && !updates.contains_key(&i)).collect();
        creates.retain(|&i| {
            let Some(dest_id) = adopted[i].take() else { return true };
            if let Some(values) = finals[i].take() {
                keys[i] = dedupe_keys.keys_of(&values);
                slots[i].written = json_object(&fields, &values).ok();
            }
            slots[i].outcome = Some(Outcome::Created);
            slots[i].dest_id = Some(dest_id);
            slots[i].detail = Some("created by an interrupted attempt; found by its marker, not created again".into());
            false
        });
        if !creates.is_empty() {
            // Keys are taken before the values move into the write.
            for &i in &creates {
                if let Some(values) = &finals[i] {
                    keys[i] = dedupe_keys.keys_of(values);
                    slots[i].written = Some(json_object(&fields, values)?);
                }
            }
            let rows = creates.iter().filter_map(|&i| finals[i].take()).collect();
            let source_ids = creates
                .iter()
                .map(|&i| match &items[i] {
                    Item::Mapped(m) => plan.marker(&m.source.source_id),
                    Item::Malformed { source_id, .. } => plan.marker(source_id),
                })
                .collect();
            let marks = Marks { namespace: self.project.config.project.name.clone(), source_ids };
            let started = Instant::now();
            let results = write::create(self.dest.as_ref(), plan, rows, marks).await?;
            self.timings.add(Stage::Write, started.elapsed());
            for (&i, r) in creates.iter().zip(results) {
                match r {
                    Ok(id) => {
                        slots[i].outcome = Some(Outcome::Created);
                        slots[i].dest_id = Some(id);
                    }
                    Err(msg) => {
                        slots[i].outcome = Some(Outcome::Failed);
                        slots[i].detail = Some(format!("the destination refused it: {msg}"));
                    }
                }
            }
        }
        let mut order: Vec<usize> = updates.keys().copied().collect();
        order.sort_unstable();
        let mut changes = Vec::with_capacity(order.len());
        for &i in &order {
            let (dest_id, cur, _) = &updates[&i];
            let fin = finals[i].as_ref().ok_or_else(|| eyre!("update without values"))?;
            let planned = write::plan_update(&fields, dest_id, cur, fin)?;
            slots[i].before_image = planned.before_image;
            slots[i].detail = Some(planned.detail);
            slots[i].written = Some(json_object(&fields, fin)?);
            keys[i] = dedupe_keys.keys_of(fin);
            changes.push(planned.change);
        }
        if !changes.is_empty() {
            let started = Instant::now();
            let results = write::update(self.dest.as_ref(), plan, &changes).await?;
            self.timings.add(Stage::Write, started.elapsed());
            for (&i, r) in order.iter().zip(results) {
                let written_this_run = updates[&i].2;
                match r {
                    Ok(id) => {
                        slots[i].outcome = Some(if written_this_run { Outcome::Merged } else { Outcome::Updated });
                        slots[i].dest_id = Some(id);
                    }
                    Err(msg) => {
                        slots[i].outcome = Some(Outcome::Failed);
                        slots[i].detail = Some(format!("the destination refused the update: {msg}"));
                        slots[i].before_image = None;
                        slots[i].written = None;
                    }
                }
            }
        }

        // Followers take the outcome of their lead.
        for i in 0..n {
            if let Some(Decision::IntoLead { lead, .. }) = &decisions[i] {
                let lead = *lead;
                let lead_sid = match &items[lead] {
                    Item::Mapped(m) => m.source.source_id.clone(),
                    Item::Malformed { source_id, .. } => source_id.clone(),
                };
                match (slots[lead].outcome, slots[lead].dest_id.clone()) {
                    (Some(Outcome::Created | Outcome::Updated | Outcome::Merged), Some(id)) => {
                        slots[i].outcome = Some(Outcome::Merged);
                        slots[i].dest_id = Some(id);
                        slots[i].written = slots[lead].written.clone();
                        slots[i].detail = Some(format!("merged with source record {lead_sid} of the same batch"));
                    }
                    (Some(Outcome::Failed), _) => {
                        slots[i].outcome = Some(Outcome::Failed);
                        slots[i].detail =
                            Some(format!("merged with source record {lead_sid}, which the destination refused"));
                    }
                    _ => {
                        slots[i].outcome = Some(Outcome::Queued);
                        let field = slots[i].matched_by.clone().unwrap_or_default();
                        slots[i].issues.push(Issue {
                            field,
                            rule: Rule::MatchNeedsDecision,
                            value: None,
                            message: format!("duplicate of source record {lead_sid}, which is held in the queue"),
                            suggestion: Some(format!("fix {lead_sid} first, then reprocess this one")),
                        });
                    }
                }
            }
        }

        // Assemble the commit.
        let mut commit = BatchCommit { run_id, object: plan.name.clone(), cursor, done, ..Default::default() };
        for (i, item) in items.into_iter().enumerate() {
            let slot = std::mem::take(&mut slots[i]);
            let outcome = slot.outcome.unwrap_or(Outcome::Queued);
            counts.extracted += 1;
            counts.add(outcome);
            match item {
                Item::Malformed { source_id, .. } => commit.audit.push(AuditRow {
                    source_id,
                    outcome: outcome.as_str(),
                    detail: slot.detail,
                    ..Default::default()
                }),
                Item::Mapped(m) => {
                    let sid = m.source.source_id.clone();
                    if outcome == Outcome::Queued {
                        let reason = slot.issues.first().map(|i| i.rule.as_str()).unwrap_or("invalid_value");
                        commit.queue.push(QueueWrite {
                            source_id: sid.clone(),
                            origin: m.source.origin.clone(),
                            reason: reason.to_string(),
                            source: json_object(&plan.source_fields, &m.source.values)?,
                            mapped: json_object(&plan.dest_fields, &m.values)?,
                            issues: serde_json::to_string(&slot.issues)?,
                            candidates: slot.candidates,
                            waiting_on: m.waiting_on.clone(),
                        });
                    }
                    if let Some(dest_id) = &slot.dest_id {
                        commit.id_map.push(IdMapWrite {
                            source_id: sid.clone(),
                            dest_id: dest_id.clone(),
                            written: slot.written,
                            source_hash: Some(super::delta::source_hash(&m.source.values)),
                            created: outcome == Outcome::Created,
                        });
                        let own = if keys[i].is_empty() {
                            dedupe_keys.keys_of(&m.values)
                        } else {
                            std::mem::take(&mut keys[i])
                        };
                        for (k, v) in own {
                            commit.match_keys.push((plan.match_keys[k].field.clone(), v, dest_id.clone()));
                        }
                        if resolve_queue {
                            commit.resolved.push(sid.clone());
                        }
                    }
                    let detail = match outcome {
                        Outcome::Queued => Some(
                            slot.issues
                                .iter()
                                .map(|i| format!("{}: {}", i.field, i.message))
                                .collect::<Vec<_>>()
                                .join("; "),
                        ),
                        _ => slot.detail,
                    };
                    commit.audit.push(AuditRow {
                        source_id: sid,
                        outcome: outcome.as_str(),
                        dest_id: slot.dest_id,
                        merge_rule: matches!(outcome, Outcome::Updated | Outcome::Merged)
                            .then(|| merge_rule_for(plan, slot.matched_by.as_deref().unwrap_or_default()).as_str()),
                        matched_by: slot.matched_by,
                        detail,
                        before_image: slot.before_image,
                    });
                }
            }
        }
        commit.counts = *counts;
        Ok(commit)
    }

    /// Verifies a key match against the destination record as it is now. The match index keeps
    /// hashes and is as old as the run's scan, so a collision or an edit made in the destination
    /// since then must not merge a record into the wrong one. `None` when the match holds.
    fn stale_match(
        &self,
        plan: &ObjectPlan,
        key: &str,
        dest_id: &str,
        current: &[Value],
        ours: &[Value],
    ) -> Option<String> {
        let mk = plan.match_keys.iter().find(|k| k.field == key)?;
        let region = self.settings.region;
        let want = ours
            .get(mk.index)?
            .as_deref()
            .and_then(|v| super::dedupe::normalize_key(mk.kind, v, mk.mapped_normalised, region));
        let have =
            current.get(mk.index)?.as_deref().and_then(|v| super::dedupe::normalize_key(mk.kind, v, false, region));
        (want != have).then(|| {
            format!(
                "destination record {dest_id} was found by {key}, but its {key} is now {}",
                have.map(|h| format!("'{h}'")).unwrap_or_else(|| "blank".into())
            )
        })
    }

    /// Sends held records again through map → dedupe → validate → write, with their corrections.
    /// Children waiting on a parent that gets written are released in the same run.
    pub async fn reprocess(&self, ids: &[i64]) -> std::result::Result<RunSummary, RunFailure> {
        let started_at = Instant::now();
        let _lock = RunLock::acquire(&self.store_path)?;
        let prepared = self.prepare().await?;
        let mut wanted: HashMap<String, Vec<QueueItem>> = HashMap::new();
        {
            let store = sync(|| lock(&self.store))?;
            for &id in ids {
                let item = store.queue_item(id)?.ok_or_else(|| eyre!("no queue item {id}"))?;
                if !item.status.is_pending() {
                    return Err(
                        eyre!("queue item {id} is {}; only open items are reprocessed", item.status.as_str()).into()
                    );
                }
                wanted.entry(item.object.clone()).or_default().push(item);
            }
        }
        let run_id = sync(|| lock(&self.store)?.begin_run(RunKind::Reprocess, &os_user(), &self.project.hash))?;
        self.progress.send_modify(|p| {
            *p = Progress::new("reprocess", &self.project.order);
            p.run_id = Some(run_id);
            p.state = RunState::Running;
        });
        let result = self.reprocess_objects(run_id, &prepared, wanted).await;
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
            let mapper = self.mapper(plan, &prepared.owners)?;
            let mut counts = Counts::default();
            for chunk in items.chunks(self.project.config.project.batch_size) {
                let batch: Vec<Item> = sync(|| {
                    chunk
                        .iter()
                        .map(|q| mapper.map(source_record(plan, q), &q.corrections).map(Item::Mapped))
                        .collect::<Result<_>>()
                })?;
                let commit = {
                    let none = HashMap::new();
                    let lookups = Lookups {
                        store: &self.store,
                        in_flight: &none,
                        index_writer: None,
                        recovered: &recovered,
                        delta: false,
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
                    // Release children held until these records were written.
                    for sid in &written {
                        for child in store.queue_waiting_on(&plan.name, sid)? {
                            if seen.insert(child)
                                && let Some(item) = store.queue_item(child)?
                            {
                                wanted.entry(item.object.clone()).or_default().push(item);
                            }
                        }
                    }
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

/// The merge rule applied to a match. An operator's "merge into this one" on an object whose rule
/// is `queue` keeps the destination's values and fills its blanks.
fn merge_rule_for(plan: &ObjectPlan, matched_by: &str) -> MergeRule {
    if matched_by == OPERATOR_CHOICE && plan.merge == MergeRule::Queue { MergeRule::FillBlanks } else { plan.merge }
}

/// The source record a queue item was made from, realigned with the source's current fields.
fn source_record(plan: &ObjectPlan, item: &QueueItem) -> SourceRecord {
    SourceRecord {
        source_id: item.source_id.clone(),
        origin: item.origin.clone(),
        values: plan.source_fields.iter().map(|f| item.source.get(f).cloned().flatten()).collect(),
    }
}

fn json_object(fields: &[String], values: &[Value]) -> Result<String> {
    let map: IndexMap<&String, &Value> = fields.iter().zip(values).collect();
    Ok(serde_json::to_string(&map)?)
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
