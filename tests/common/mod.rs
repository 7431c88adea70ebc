//! Helpers for integration tests: small projects in temporary folders, run through the real engine.
#![allow(dead_code)]

pub mod console;

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
    }
}
