//! The command line. Exit codes: 0 done, 1 failed after records moved, 2 could not start
//! (bad project file, unreachable system, bad arguments), 3 halted by a threshold or check.

/// `println!` for a report on stdout: a reader that went away (`| head -1`) ends the output,
/// not the command — the run is committed and the exit code stays the command's own.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` likewise.
macro_rules! say_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that never panics: a closed stderr (`2>&1 | head -1`) is not worth a crash, and
/// the exit code stays the command's own.
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` likewise.
macro_rules! tell_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

mod progress;
mod queue;
mod reconcile;
mod rollback;
mod signals;
mod weights;
pub use reconcile::write_output;
pub mod report;

use crate::config::ConfigError;
use crate::pipeline::delta::DeltaMode;
use crate::pipeline::{Finish, RunFailure, RunSummary};
use crate::project::Project;
use crate::store::RunKind;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_NOT_STARTED: i32 = 2;
pub const EXIT_HALTED: i32 = 3;
pub const EXIT_CANCELLED: i32 = 4;

#[derive(Debug, Parser)]
#[command(
    name = "cutover",
    version,
    about = "Move business records between systems completely or not at all, and prove it."
)]
pub struct Cli {
    /// Write logs here instead of the data folder's logs/cutover.log.
    #[arg(long, global = true, env = "CUTOVER_LOG")]
    pub log_file: Option<PathBuf>,
    /// No command: open the console on the project in the current folder.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy the bundled demo (a Pipedrive-style CSV export → a HubSpot-style SQLite) into a work
    /// folder and run the whole migration headless. Needs no network and no setup.
    Demo {
        /// Work folder for the demo (replaced if it holds an earlier demo).
        #[arg(long, default_value = "cutover-demo")]
        dir: PathBuf,
        /// Only set the folder up; do not run.
        #[arg(long)]
        setup_only: bool,
        /// Open the console on the demo instead of running it headless.
        #[arg(long, conflicts_with = "setup_only")]
        console: bool,
        /// Migrate into a database server instead of SQLite; its URL comes from the environment
        /// variable CUTOVER_DEMO_URL. PostgreSQL: the schema cutover_demo; MariaDB/MySQL: the
        /// URL's database. Only tables an earlier demo made are ever replaced.
        #[arg(long, value_enum)]
        into: Option<crate::demo::databases::Dialect>,
        /// Write the demo data files from the generator into this folder (for maintainers).
        #[arg(long, hide = true)]
        regenerate: Option<PathBuf>,
    },
    /// Open the console (the default with no command): watch runs, work the queue, read the audit log.
    /// Keys are listed with `?`; your own keymap goes in the file `CUTOVER_KEYMAP` names, or
    /// keymap.toml in Cutover's config folder.
    Open {
        /// Project file, or a folder holding cutover.toml (default: the current folder).
        project: Option<PathBuf>,
        /// The project, given as an option (as `queue -p` takes it).
        #[arg(short = 'p', long = "project", value_name = "PROJECT", conflicts_with = "project")]
        project_option: Option<PathBuf>,
    },
    /// Run a migration headless: every object, parents first.
    Run {
        /// Project file, or a folder holding cutover.toml (default: the current folder).
        project: Option<PathBuf>,
        /// The project, given as an option (as `queue -p` takes it).
        #[arg(short = 'p', long = "project", value_name = "PROJECT", conflicts_with = "project")]
        project_option: Option<PathBuf>,
        /// Report would-create/update/merge/queue/skip counts; write nothing to the destination
        /// and change nothing in the project's state.
        #[arg(long)]
        dry_run: bool,
        /// Continue the last full run that did not complete (killed, stopped with Ctrl-C, halted,
        /// cancelled) from its checkpoints, under the same run.
        #[arg(long, conflicts_with = "dry_run")]
        resume: bool,
        /// After a full run: only what is new (create-new), changed in the source (update-changed),
        /// or both. A record changed in the destination since Cutover wrote it is queued, not overwritten.
        #[arg(long, value_enum, conflicts_with = "resume")]
        delta: Option<DeltaArg>,
        /// With --dry-run: a test sync of N records per object (and the parents they point at),
        /// listing every issue of each held record.
        #[arg(long, value_name = "N", requires = "dry_run", conflicts_with = "delta")]
        sample: Option<usize>,
        /// The sample's seed: the same seed picks the same records.
        #[arg(long, default_value_t = 1, requires = "sample")]
        seed: u64,
        /// With --sample: also print the values each sampled record would be written with.
        #[arg(long, requires = "sample")]
        values: bool,
    },
    /// Check a project file against the source and destination schemas, reporting every problem.
    Check {
        /// Project file, or a folder holding cutover.toml (default: the current folder).
        project: Option<PathBuf>,
        /// The project, given as an option (as `queue -p` takes it).
        #[arg(short = 'p', long = "project", value_name = "PROJECT", conflicts_with = "project")]
        project_option: Option<PathBuf>,
    },
    /// List the runs of a project with their outcome counts.
    Runs {
        /// Project file, or a folder holding cutover.toml (default: the current folder).
        project: Option<PathBuf>,
        /// The project, given as an option (as `queue -p` takes it).
        #[arg(short = 'p', long = "project", value_name = "PROJECT", conflicts_with = "project")]
        project_option: Option<PathBuf>,
    },
    /// Show the weights record linkage decides by (objects whose `match` is a table): per field
    /// and level, as the newest run estimated them, and the thresholds.
    Weights {
        /// Project file, or a folder holding cutover.toml (default: the current folder).
        project: Option<PathBuf>,
        /// The project, given as an option (as `queue -p` takes it).
        #[arg(short = 'p', long = "project", value_name = "PROJECT", conflicts_with = "project")]
        project_option: Option<PathBuf>,
        /// Only this object.
        #[arg(long)]
        object: Option<String>,
    },
    /// Work the conflict queue: list, inspect, correct, reprocess or skip held records.
    Queue {
        /// Project file, or a folder holding cutover.toml (default: the current folder).
        #[arg(short, long, global = true)]
        project: Option<PathBuf>,
        #[command(subcommand)]
        action: queue::QueueAction,
    },
    /// Reconcile: prove the migration complete — counts per object, read-back of written records,
    /// value distributions, exact sums and parent links. Exit 0 when balanced, 3 when not.
    Reconcile {
        /// Project file, or a folder holding cutover.toml (default: the current folder).
        project: Option<PathBuf>,
        /// The project, given as an option (as `queue -p` takes it).
        #[arg(short = 'p', long = "project", value_name = "PROJECT", conflicts_with = "project")]
        project_option: Option<PathBuf>,
        #[command(flatten)]
        sample: reconcile::SampleArgs,
        #[arg(long, value_enum, default_value = "markdown")]
        format: reconcile::ReportFormat,
        /// Write the report to this file (whole, or not at all) instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Sign the migration off: reconciles again and records who, when, the notes and the report's
    /// hash. Refused while anything is open, unless each open discrepancy is accepted with a reason.
    Signoff {
        /// Project file, or a folder holding cutover.toml (default: the current folder).
        project: Option<PathBuf>,
        /// The project, given as an option (as `queue -p` takes it).
        #[arg(short = 'p', long = "project", value_name = "PROJECT", conflicts_with = "project")]
        project_option: Option<PathBuf>,
        /// What was checked, and by whom (recorded with the sign-off).
        #[arg(long)]
        notes: String,
        /// Accept a remaining discrepancy by the key the report gives it: KEY=REASON (repeatable).
        #[arg(long, value_name = "KEY=REASON")]
        accept: Vec<String>,
        #[command(flatten)]
        sample: reconcile::SampleArgs,
    },
    /// Roll a run back: delete the records it created, restore the records it updated from their
    /// before-images, unlink them. Records changed in the destination since are listed, not touched.
    Rollback {
        /// The run to roll back (`cutover runs` lists them).
        run: i64,
        /// Project file, or a folder holding cutover.toml (default: the current folder).
        project: Option<PathBuf>,
        /// The project, given as an option (as `queue -p` takes it).
        #[arg(short = 'p', long = "project", value_name = "PROJECT", conflicts_with = "project")]
        project_option: Option<PathBuf>,
        /// Only this object.
        #[arg(long)]
        object: Option<String>,
        /// Show what would be deleted, restored and left; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Roll this record back even though the destination changed it since (a source id; repeatable).
        #[arg(long, value_name = "SOURCE_ID")]
        anyway: Vec<String>,
        /// Keep every record the destination changed since (audited as kept) instead of listing them.
        #[arg(long, conflicts_with = "dry_run")]
        keep: bool,
    },
    /// Export the conflict queue or the audit log as CSV or JSON Lines (streamed; any size).
    Export {
        what: reconcile::ExportWhat,
        /// Project file, or a folder holding cutover.toml (default: the current folder).
        project: Option<PathBuf>,
        /// The project, given as an option (as `queue -p` takes it).
        #[arg(short = 'p', long = "project", value_name = "PROJECT", conflicts_with = "project")]
        project_option: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "csv")]
        format: reconcile::ExportFormatArg,
        /// Write to this file (whole, or not at all) instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Only this object.
        #[arg(long)]
        object: Option<String>,
        /// Queue: only this status (open, fixed, skipped, resolved); audit: only this outcome.
        #[arg(long)]
        status: Option<String>,
        /// Audit: only this run.
        #[arg(long)]
        run: Option<i64>,
    },
    /// Benchmark the full pipeline on generated contacts and print records/s and peak memory.
    Bench {
        /// Contacts to migrate.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Contacts already in the destination (a share of the source matches them).
        #[arg(long, default_value_t = 100_000)]
        existing: u64,
        #[arg(long, default_value_t = 2000)]
        batch_size: usize,
        /// Keep the generated files in this folder instead of a temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Benchmark matching instead (#15): link damaged copies of people to a destination that
        /// holds them, by EM-weighted comparison and by exact keys, and print precision and recall.
        #[arg(long)]
        linkage: bool,
        /// Rounds of each tool, round-robin (the figures are their medians).
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Only migrate the bench project already in --dir (how the bench runs Cutover itself).
        #[arg(long, requires = "dir", hide = true)]
        run_only: bool,
    },
}

/// Runs the command line; returns the process exit code.
impl Command {
    /// Commands that only read the project and print: when what reads their output stops
    /// (`cutover queue show 3 | head`), they end quietly as Unix tools do, instead of failing.
    pub fn only_reports(&self) -> bool {
        match self {
            Command::Runs { .. }
            | Command::Check { .. }
            | Command::Export { .. }
            | Command::Reconcile { .. }
            | Command::Weights { .. } => true,
            Command::Queue { action, .. } => {
                matches!(action, queue::QueueAction::List { .. } | queue::QueueAction::Show { .. })
            }
            _ => false,
        }
    }
}

/// Lets the operating system end the process when stdout's reader has gone (SIGPIPE's default
/// action); Rust ignores the signal, so every print would fail instead.
pub fn end_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: sets a signal disposition to its default, before any other thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Keeps the process's memory in small pages. With transparent huge pages the allocator's
/// partly used regions count as whole 2 MiB pages: the 1M-record bench peaked at 270 MiB with
/// them and 224 MiB without, in the same time (`cutover bench`).
pub fn small_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with an integer option and argument changes only this process's paging.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

pub fn main_with(cli: Cli) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            tell!("error: cannot start the async runtime: {e}");
            return EXIT_NOT_STARTED;
        }
    };
    runtime.block_on(dispatch(cli.command.unwrap_or(Command::Open { project: None, project_option: None })))
}

async fn dispatch(command: Command) -> i32 {
    match command {
        Command::Demo { dir, setup_only, console, into, regenerate } => {
            crate::demo::command(dir, setup_only, console, into, regenerate).await
        }
        Command::Open { project, project_option } => match Project::load(project.or(project_option).as_deref()) {
            Ok(p) => open_console(p).await,
            Err(e) => not_started(&e),
        },
        Command::Run { project, project_option, dry_run, resume, delta, sample, seed, values } => {
            let project = project.or(project_option);
            let start = match (resume, delta, sample) {
                (true, _, _) => Start::Resume,
                (false, Some(d), _) => Start::Delta(d.mode()),
                (false, None, Some(n)) => Start::Sample { n, seed, values },
                (false, None, None) => Start::Full,
            };
            run_command(project, dry_run, start).await
        }
        Command::Check { project, project_option } => check_command(project.or(project_option)).await,
        Command::Runs { project, project_option } => runs_command(project.or(project_option)),
        Command::Weights { project, project_option, object } => weights::command(project.or(project_option), object),
        Command::Queue { project, action } => queue::command(project, action).await,
        Command::Reconcile { project, project_option, sample, format, output } => {
            reconcile::reconcile_command(project.or(project_option), sample, format, output).await
        }
        Command::Signoff { project, project_option, notes, accept, sample } => {
            reconcile::signoff_command(project.or(project_option), notes, accept, sample).await
        }
        Command::Rollback { run, project, project_option, object, dry_run, anyway, keep } => {
            let project = project.or(project_option);
            let opts = crate::pipeline::rollback::RollbackOptions {
                object,
                dry_run,
                anyway: anyway.into_iter().collect(),
                keep,
            };
            rollback::command(run, project, opts).await
        }
        Command::Export { what, project, project_option, format, output, object, status, run } => {
            let project = project.or(project_option);
            let filter = crate::store::export::ExportFilter { object, status, run };
            reconcile::export_command(what, project, format, output, filter)
        }
        Command::Bench { linkage: true, records, existing, .. } => crate::bench::linkage::command(records, existing),
        Command::Bench { records, existing, batch_size, dir, rounds, run_only, .. } => {
            crate::bench::command(crate::bench::BenchArgs { records, existing, batch_size, dir, rounds, run_only })
                .await
        }
    }
}

/// Runs the console until the operator quits. It needs a terminal on both ends.
pub async fn open_console(project: Project) -> i32 {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        tell!("error: the console needs a terminal; for scripts use `cutover run`, `cutover queue`, `cutover runs`");
        return EXIT_NOT_STARTED;
    }
    let keymap = match crate::tui::keymap::Keymap::load(crate::tui::keymap_path().as_deref()) {
        Ok(k) => k,
        Err(e) => return not_started(&e),
    };
    match crate::tui::open(project, keymap).await {
        Ok(()) => EXIT_OK,
        Err(e) => {
            tell!("error: {e:#}");
            EXIT_FAILED
        }
    }
}

/// Prints an error that stopped a command before it could start, and returns exit code 2.
pub fn not_started(e: &color_eyre::Report) -> i32 {
    if let Some(config) = e.downcast_ref::<ConfigError>() {
        tell_part!("{config}");
    } else {
        tell!("error: {e:#}");
    }
    EXIT_NOT_STARTED
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeltaArg {
    CreateNew,
    UpdateChanged,
    Both,
}

impl DeltaArg {
    fn mode(self) -> DeltaMode {
        match self {
            DeltaArg::CreateNew => DeltaMode::CreateNew,
            DeltaArg::UpdateChanged => DeltaMode::UpdateChanged,
            DeltaArg::Both => DeltaMode::Both,
        }
    }
}

/// Which run a `cutover run` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Full,
    Resume,
    Delta(DeltaMode),
    Sample { n: usize, seed: u64, values: bool },
}

pub async fn run_project(project: &Project, dry_run: bool) -> i32 {
    run_project_with(project, dry_run, Start::Full).await
}

async fn run_project_with(project: &Project, dry_run: bool, start: Start) -> i32 {
    if dry_run {
        match project.preview_engine() {
            Ok(preview) => finish_run(project, &preview.engine, RunKind::Preview, true, start).await,
            Err(e) => not_started(&e),
        }
    } else {
        match project.engine() {
            Ok(engine) => finish_run(project, &engine, RunKind::Full, false, start).await,
            Err(e) => not_started(&e),
        }
    }
}

async fn finish_run(
    project: &Project,
    engine: &crate::pipeline::Engine,
    kind: RunKind,
    dry_run: bool,
    start: Start,
) -> i32 {
    let show = progress::spawn(engine.subscribe(), std::io::stderr().is_terminal());
    let signals = signals::watch(engine.controller());
    let result = match start {
        Start::Resume => engine.resume().await,
        Start::Delta(mode) => engine.delta(mode).await,
        Start::Sample { n, seed, .. } => engine.preview_sample(n, seed).await,
        Start::Full => engine.run(kind).await,
    };
    signals.stop();
    show.finish().await;
    let preview_run = result.as_ref().ok().map(|s| s.run_id);
    // What the run would cost of a metered API's daily allowance (a whole preview only: a
    // sample's counts say nothing of the whole).
    let writes =
        if dry_run && !matches!(start, Start::Sample { .. }) { planned_writes(project, &result) } else { None };
    let code = report_run(project, result, dry_run);
    // A preview's queue lives in its scratch store (with what earlier runs hold): say what this
    // preview would hold, and why.
    if dry_run
        && let Some(run_id) = preview_run
        && let Ok(store) = engine.store().lock()
    {
        say_part!("{}", report::preview_queue_summary(&store, run_id));
        if let Start::Sample { values, .. } = start {
            say_part!("{}", report::sample_details(&store, run_id, values));
        }
    }
    if let Some(writes) = writes
        && let Some(lines) = engine.destination().cost_of(&writes)
    {
        for line in lines {
            say!("{line}");
        }
    }
    code
}

/// The creates and updates a finished preview counted, by destination object.
fn planned_writes(
    project: &Project,
    result: &Result<RunSummary, RunFailure>,
) -> Option<Vec<crate::connect::PlannedWrites>> {
    let Ok(summary) = result else { return None };
    let objects = &project.config.config.objects;
    Some(
        summary
            .objects
            .iter()
            .map(|(name, _, counts)| crate::connect::PlannedWrites {
                object: objects.get(name).map_or(name.as_str(), |o| o.destination_name(name)).to_string(),
                creates: counts.created,
                updates: counts.updated + counts.merged,
            })
            .collect(),
    )
}

pub fn report_run(project: &Project, result: Result<RunSummary, RunFailure>, dry_run: bool) -> i32 {
    match result {
        Ok(summary) => {
            say_part!("{}", report::run_table(&summary, dry_run));
            if !dry_run && let Ok(store) = project.store() {
                say_part!("{}", report::queue_hint(&store));
            }
            match summary.finish {
                Finish::Completed => EXIT_OK,
                Finish::Halted(_) => {
                    if !dry_run {
                        say!(
                            "After fixing the cause (the mapping, the owner aliases), `cutover run --resume` \
                             continues after the last committed batch; after fixing the export itself, start a new \
                             run (`cutover run`: what was written is found again, nothing is doubled)."
                        );
                    }
                    EXIT_HALTED
                }
                Finish::Cancelled => {
                    if !dry_run {
                        say!("Stopped at a checkpoint: `cutover run --resume` continues from there.");
                    }
                    EXIT_CANCELLED
                }
            }
        }
        Err(RunFailure { started: false, error }) => not_started(&error),
        Err(RunFailure { started: true, error }) => {
            tell!("error: the run failed: {error:#}");
            tell!("Everything committed before the failure is kept in {}.", project.store_path.display());
            EXIT_FAILED
        }
    }
}

async fn run_command(project: Option<PathBuf>, dry_run: bool, start: Start) -> i32 {
    let project = match Project::load(project.as_deref()) {
        Ok(p) => p,
        Err(e) => return not_started(&e),
    };
    run_project_with(&project, dry_run, start).await
}

/// The project and an engine on it, or the exit code of a command that could not start.
pub(crate) fn project_engine(project: Option<&std::path::Path>) -> Result<(Project, crate::pipeline::Engine), i32> {
    let project = Project::load(project).map_err(|e| not_started(&e))?;
    let engine = project.engine().map_err(|e| not_started(&e))?;
    Ok((project, engine))
}

/// Every problem of the project file in one pass: its own, what its keys name (folders, files,
/// variables, tables) and its mappings against both schemas. Writes nothing, not even a state file.
async fn check_command(project: Option<PathBuf>) -> i32 {
    let file = match Project::locate(project.as_deref()) {
        Ok(file) => file,
        Err(e) => return not_started(&e),
    };
    let (config, mut problems) = match crate::config::load_keeping_problems(&file) {
        Ok(read) => read,
        Err(e) => return not_started(&e.into()),
    };
    let opened = (crate::connect::open_source(&config), crate::connect::open_destination(&config, true));
    let (source, dest) = match opened {
        (Ok(source), Ok(dest)) => (source, dest),
        (source, dest) => {
            for e in [source.err(), dest.err()].into_iter().flatten() {
                match config.as_file_problem(e).downcast::<ConfigError>() {
                    Ok(c) => {
                        for p in c.problems {
                            if !problems.contains(&p) {
                                problems.push(p);
                            }
                        }
                    }
                    Err(e) if problems.is_empty() => return not_started(&e),
                    Err(_) => {}
                }
            }
            return not_started(&ConfigError { file: config.path.clone(), problems }.into());
        }
    };
    let checked = crate::pipeline::prepare::checked(&config, source.as_ref(), dest.as_ref()).await;
    let prepared = match checked {
        Ok((prepared, more)) => {
            problems.extend(more.into_iter().filter(|p| !problems.contains(p)).collect::<Vec<_>>());
            prepared
        }
        Err(e) if problems.is_empty() => return not_started(&e),
        Err(_) => None,
    };
    match prepared.filter(|_| problems.is_empty()) {
        None => not_started(&ConfigError { file: config.path.clone(), problems }.into()),
        Some(prepared) => {
            say!("{}: the project file is valid.", config.path.display());
            let w = report::name_width(prepared.plans.iter().map(|p| p.name.as_str()));
            for plan in &prepared.plans {
                say!(
                    "  {:<w$} {} → {} ({} fields, match on {})",
                    plan.name,
                    plan.source_object,
                    plan.dest_object,
                    plan.rules.len(),
                    match &plan.linkage {
                        Some(l) => format!(
                            "linkage of {} (link ≥ {}, review ≥ {})",
                            l.fields.join(", "),
                            l.linker.link_above,
                            l.linker.review_above
                        ),
                        None if plan.match_keys.is_empty() => "source id only".to_string(),
                        None => plan.match_keys.iter().map(|k| k.field.as_str()).collect::<Vec<_>>().join(", "),
                    }
                );
            }
            for notice in dest.notices() {
                say!("Note: {notice}.");
            }
            EXIT_OK
        }
    }
}

fn runs_command(project: Option<PathBuf>) -> i32 {
    let result = (|| -> color_eyre::Result<()> {
        let project = Project::load(project.as_deref())?;
        let store = project.store()?;
        // Nobody holds the run lock: a run still marked running was stopped by a crash or a kill.
        if let Ok(_lock) = crate::store::RunLock::acquire(&project.store_path) {
            store.mark_interrupted()?;
        }
        say_part!("{}", report::runs_table(&store)?);
        match store.latest_signoff()? {
            None => say!("Not signed off: `cutover reconcile`, then `cutover signoff --notes \"…\"`."),
            Some(s) => match s.voided_by_run {
                Some(run) => {
                    say!("Sign-off of {} by {} is void: run {run} came after it. Reconcile again.", s.at, s.user)
                }
                None => say!("Signed off by {} at {} ({}); report {}.", s.user, s.at, s.verdict, s.report_hash),
            },
        }
        Ok(())
    })();
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => not_started(&e),
    }
}
