//! Helpers for integration tests: small projects in temporary folders, run through the real engine.
#![allow(dead_code)]

pub mod console;
pub mod db;

use cutover::model::Counts;
use cutover::pipeline::{RunFailure, RunSummary};
use cutover::project::Project;
use cutover::store::RunKind;
use std::path::{Path, PathBuf};

pub struct TestProject {
    pub dir: tempfile::TempDir,
}

impl TestProject {
    /// A project folder with `cutover.toml`, CSV files under `source/` and a destination built from SQL.
    pub fn new(toml: &str, csv: &[(&str, &str)], destination_sql: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("source")).expect("mkdir");
        std::fs::write(dir.path().join("cutover.toml"), toml).expect("write toml");
        for (name, content) in csv {
            std::fs::write(dir.path().join("source").join(format!("{name}.csv")), content).expect("write csv");
        }
        let conn = rusqlite::Connection::open(dir.path().join("destination.db")).expect("dest");
        conn.execute_batch(destination_sql).expect("destination sql");
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self) -> PathBuf {
        self.dir.path().join("cutover.toml")
    }

    pub fn project(&self) -> Project {
        Project::load(Some(&self.file())).expect("project loads")
    }

    pub async fn run(&self) -> Result<RunSummary, RunFailure> {
        let project = self.project();
        let engine = project.engine().expect("engine");
        engine.run(RunKind::Full).await
    }

    pub fn dest(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join("destination.db")).expect("dest")
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.dest().query_row(sql, [], |r| r.get(0)).expect(sql)
    }
}

/// A project file for a [`TestProject`]: CSV files under `source/` into `destination.db`,
/// followed by `rest` (objects, types…).
pub fn csv_to_sqlite(name: &str, rest: &str) -> String {
    format!(
        "[project]\nname = \"{name}\"\n[source]\nkind = \"csv\"\npath = \"source\"\n\
         [destination]\nkind = \"sqlite\"\npath = \"destination.db\"\n{rest}"
    )
}

/// The demo, set up in a temporary folder.
pub fn demo() -> (tempfile::TempDir, Project) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = cutover::demo::setup(&dir.path().join("demo")).expect("demo setup");
    let project = Project::load(Some(&file)).expect("demo project");
    (dir, project)
}

pub fn counts_of(summary: &RunSummary, object: &str) -> Counts {
    summary
        .objects
        .iter()
        .find(|(o, _, _)| o == object)
        .map(|(_, _, c)| *c)
        .unwrap_or_else(|| panic!("no {object} in run"))
}

pub fn c(created: u64, updated: u64, merged: u64, queued: u64, skipped: u64, failed: u64) -> Counts {
    Counts {
        extracted: created + updated + merged + queued + skipped + failed,
        created,
        updated,
        merged,
        queued,
        skipped,
        failed,
        unchanged: 0,
    }
}

/// Runs the real binary in `dir`, logging into the folder, with `env` (URLs and tokens reach it
/// only this way).
pub fn cutover(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.args(args).current_dir(dir).env("CUTOVER_LOG", dir.join("cutover.log"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

/// How many audit rows `export audit` gives with these filters.
pub fn audit_rows(demo: &Path, filters: &[&str], env: &[(&str, &str)]) -> usize {
    let mut args = vec!["export", "audit", "--format", "jsonl"];
    args.extend_from_slice(filters);
    String::from_utf8_lossy(&cutover(demo, &args, env).stdout).lines().count()
}

/// Starts `cutover run` in `dir` and kills it without warning (SIGKILL) once `reached` says so,
/// polling; fails the test if that takes longer than `within` seconds.
pub async fn run_killed_when(dir: &Path, env: &[(&str, &str)], within: u64, reached: impl Fn() -> bool) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.arg("run").current_dir(dir).env("CUTOVER_LOG", dir.join("cutover.log"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().expect("spawn");
    let started = std::time::Instant::now();
    while !reached() {
        assert!(started.elapsed().as_secs() < within, "the run did not reach the point to kill it at");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    child.kill().expect("kill");
    child.wait().expect("wait");
}

/// Standard output and error of a run, together.
pub fn text(out: &std::process::Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The discrepancy keys of `cutover reconcile --all` in `dir`.
pub fn reconcile_keys(dir: &Path, env: &[(&str, &str)]) -> Vec<String> {
    let out = cutover(dir, &["reconcile", "--all", "--format", "json"], env);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    report["discrepancies"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|d| d["key"].as_str().map(String::from))
        .collect()
}

/// The demo's run summary lines, and what its reconciliation leaves open (the held records).
pub const DEMO_COUNTS: [&str; 4] = [
    "companies         400       400      400        0         0       0       0        0       0",
    "contacts         4200      4200     3366      800         0       0      34        0       0",
    "deals            1800      1800     1660        0         0       0     140        0       0",
    "notes            6000      6000     5932        0         0       0      68        0       0",
];
pub const DEMO_QUEUE: [&str; 3] =
    ["contacts/queued/owner_not_provisioned", "deals/queued/no_translation", "notes/queued/parent_not_written"];
