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

/// Every row of a SQLite view, a query and a table without rowid is read exactly once, in pages
/// of two, with ids of both storage classes, repeated ids across a page boundary and a row
/// without an id — judged by the test's own reading of the source and the destination.
#[test]
fn sqlite_views_queries_and_tables_without_rowid_are_read_row_by_row() {
    for (what, object_source, queries, exclude) in [
        ("view", "people_v", "", "[]"),
        ("query", "people_q", "[source.queries]\npeople_q = \"SELECT id, name FROM raw WHERE keep = 1;\"\n", "[]"),
        ("table without rowid", "people_w", "", "[\"seq\"]"),
    ] {
        let toml = format!(
            "[project]\nname = \"s\"\nbatch_size = 2\nhalt_error_rate = 1.0\n[source]\nkind = \"sqlite\"\npath = \"source.db\"\n\
             {queries}[destination]\nkind = \"sqlite\"\npath = \"destination.db\"\n\
             [objects.people]\nsource = \"{object_source}\"\nexclude = {exclude}\n\
             [objects.people.fields]\nname = {{ from = \"name\" }}\n"
        );
        let p = TestProject::new(&toml, &[], "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);");
        let src = rusqlite::Connection::open(p.path().join("source.db")).expect("source");
        src.execute_batch(
            "CREATE TABLE raw (id, name TEXT, keep INTEGER);
             INSERT INTO raw VALUES (1, 'One', 1), (10, 'Ten', 1), (9, 'Nine', 1), (100, 'Hundred', 1),
               ('a', 'Text a', 1), ('B', 'Text B', 1), (2, 'Two', 1), (2, 'Two again', 1), (2, 'Two thrice', 1),
               (NULL, 'No id', 1), ('10', 'Text ten', 1), (3, 'Dropped', 0);
             CREATE VIEW people_v AS SELECT id, name FROM raw WHERE keep = 1;
             CREATE TABLE people_w (id TEXT NOT NULL, seq INTEGER NOT NULL, name TEXT, PRIMARY KEY (id, seq)) WITHOUT ROWID;
             INSERT INTO people_w SELECT COALESCE(id, 'x'), rowid, name FROM raw WHERE keep = 1 AND id IS NOT NULL;",
        )
        .expect("source rows");
        let expected: i64 = src
            .query_row(
                &format!("SELECT COUNT(*) FROM {}", if what == "query" { "raw WHERE keep = 1" } else { object_source }),
                [],
                |r| r.get(0),
            )
            .expect("count");
        let out = common::cutover(p.path(), &["run"], &[]);
        let report = common::text(&out);
        let store = rusqlite::Connection::open(p.path().join("cutover.state.db")).expect("store");
        let audited: i64 = store.query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0)).expect("audit");
        assert_eq!(audited, expected, "{what}: one outcome per source row\n{report}");
        let names: std::collections::BTreeSet<String> = {
            let d = p.dest();
            let mut stmt = d.prepare("SELECT name FROM people").expect("q");
            stmt.query_map([], |r| r.get(0)).expect("rows").collect::<Result<_, _>>().expect("names")
        };
        for name in ["One", "Ten", "Nine", "Hundred", "Text a", "Text B", "Two"] {
            assert!(names.contains(name), "{what}: {name} written\n{names:?}\n{report}");
        }
        assert!(!names.contains("Dropped"), "{what}");
        // The second and third rows under id 2, and '10' after 10 (ids compare as text), wait
        // as repeated ids; the row without an id fails.
        let repeated: i64 = store
            .query_row("SELECT COUNT(*) FROM queue WHERE reason = 'duplicate_source_id'", [], |r| r.get(0))
            .expect("queue");
        assert_eq!(repeated, 3, "{what}\n{report}");
    }
}
