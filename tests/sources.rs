//! SQLite as a source; a source whose own count disagrees with what was read halts the run;
//! skipping a held record is an audited outcome.

mod common;
use async_trait::async_trait;
use common::{TestProject, counts_of};
use cutover::connect::{Batch, Cursor, Source};
use cutover::model::FieldNames;
use cutover::pipeline::{Engine, Finish};
use cutover::store::{QueueFilter, QueueStatus, RunKind};
use std::sync::Arc;

const DEST: &str = "CREATE TABLE people (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, email TEXT);";

fn toml(kind: &str, path: &str) -> String {
    format!(
        "[project]\nname = \"s\"\nbatch_size = 2\n[source]\nkind = \"{kind}\"\npath = \"{path}\"\n\
         [destination]\nkind = \"sqlite\"\npath = \"destination.db\"\n\
         [objects.people]\nmatch = [\"email\"]\nexclude = [\"photo\"]\n\
         [objects.people.fields]\nname = {{ from = \"name\", transform = \"trim\" }}\nemail = {{ from = \"email\", transform = \"email\" }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_source_migrates_with_binary_values_as_failed_rows() {
    let p = TestProject::new(&toml("sqlite", "source.db"), &[], DEST);
    let src = rusqlite::Connection::open(p.path().join("source.db")).expect("source");
    src.execute_batch(
        "CREATE TABLE people (id TEXT, name TEXT, email TEXT, photo BLOB);
         INSERT INTO people VALUES ('a1', ' Ann ', 'ANN@x.com', NULL), ('a2', 'Bo', 'bo@x.com', NULL),
                                   ('a3', 'Cy', 'cy@x.com', x'00ff'), (NULL, 'No Id', 'n@x.com', NULL),
                                   ('a5', 'Ann again', 'ann@X.com', NULL);",
    )
    .expect("source rows");
    let run = p.run().await.expect("runs");
    let c = counts_of(&run, "people");
    assert_eq!((c.extracted, c.created, c.merged, c.failed), (5, 2, 1, 2), "{c:?}");
    assert_eq!(p.count("SELECT COUNT(*) FROM people"), 2);
    let name: String =
        p.dest().query_row("SELECT name FROM people WHERE email = 'ann@x.com'", [], |r| r.get(0)).expect("ann");
    assert_eq!(name, "Ann", "trimmed, and fill_blanks kept the first name");
    let details: Vec<String> = p
        .project()
        .store()
        .expect("store")
        .conn()
        .prepare("SELECT detail FROM audit WHERE outcome = 'failed' ORDER BY id")
        .expect("q")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("details");
    assert!(details[0].contains("people rowid 3: field 'photo' holds binary data"), "{details:?}");
    assert!(details[1].contains("the id field 'id' is empty"), "{details:?}");
}

/// A source that claims one more record than it holds, as a live table that lost a row would.
struct Overcounting(Arc<dyn Source>);

#[async_trait]
impl Source for Overcounting {
    fn describe(&self) -> String {
        self.0.describe()
    }
    async fn fields(&self, object: &str) -> color_eyre::Result<FieldNames> {
        self.0.fields(object).await
    }
    async fn count(&self, object: &str) -> color_eyre::Result<u64> {
        Ok(self.0.count(object).await? + 1)
    }
    async fn read_batch(&self, object: &str, id: &str, cursor: &Cursor, max: usize) -> color_eyre::Result<Batch> {
        self.0.read_batch(object, id, cursor, max).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_that_does_not_match_what_was_read_halts() {
    let csv = "id,name,email,photo\n1,Ann,ann@x.com,\n2,Bo,bo@x.com,\n3,Cy,cy@x.com,\n";
    let p = TestProject::new(&toml("csv", "source"), &[("people", csv)], DEST);
    let project = p.project();
    let source = Arc::new(Overcounting(cutover::connect::open_source(&project.config).expect("source")));
    let dest = cutover::connect::open_destination(&project.config, false).expect("dest");
    let engine = Engine::new(project.config.clone(), source, dest, project.store_path.clone()).expect("engine");
    let run = engine.run(RunKind::Full).await.expect("runs");
    let Finish::Halted(reason) = &run.finish else { panic!("expected a halt") };
    assert!(reason.contains("the source reported 4 records but 3 were read"), "{reason}");
    assert!(counts_of(&run, "people").balanced(), "what was read is still accounted for");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipping_a_held_record_is_audited_and_counted() {
    let csv = "id,name,email,photo\n1,,ann@x.com,\n";
    let p = TestProject::new(&toml("csv", "source"), &[("people", csv)], DEST);
    p.run().await.expect("runs");
    let store = p.project().store().expect("store");
    let item = store.queue_list(&QueueFilter { pending_only: true, ..Default::default() }).expect("q").remove(0);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["queue", "skip", &item.id.to_string(), "--reason", "test record", "-p"])
        .arg(p.path())
        .env("CUTOVER_LOG", p.path().join("log"))
        .output()
        .expect("binary");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let item = store.queue_item(item.id).expect("item").expect("exists");
    assert_eq!(item.status, QueueStatus::Skipped);
    let runs = store.runs().expect("runs");
    let counts = store.run_counts(runs[0].id).expect("counts");
    assert_eq!((counts[0].2.extracted, counts[0].2.skipped), (1, 1));
    assert_eq!(store.audit_counts(runs[0].id, "people").expect("audit"), counts[0].2);
    let reason: String = store
        .conn()
        .query_row("SELECT detail FROM audit WHERE outcome = 'skipped'", [], |r| r.get(0))
        .expect("audited");
    assert_eq!(reason, "test record");
}
