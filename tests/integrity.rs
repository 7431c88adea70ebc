//! Integrity on data nobody here designed: each test is a way a real export or a real destination
//! once lost, doubled or mixed up records while Cutover said all was well. Every test runs the
//! real binary on a small project and judges with its own reading of the files and databases.

mod common;

use common::{cutover, text};
use std::path::Path;

/// A project of one CSV object `contacts` (id,name,email,phone) into a SQLite `contacts` table.
fn contacts_project(dir: &Path, merge: &str, batch: usize, csv: &[u8], existing: &str) {
    let toml = format!(
        r#"[project]
name = "integrity"
batch_size = {batch}
halt_error_rate = 1.0

[source]
kind = "csv"
path = "source"

[destination]
kind = "sqlite"
path = "destination.db"

[destination.types]
"contacts.email" = "email"
"contacts.phone" = "phone"

[objects.contacts]
match = ["email", "phone"]
merge = "{merge}"

[objects.contacts.fields]
name = {{ from = "name" }}
email = {{ from = "email", transform = "email" }}
phone = {{ from = "phone", transform = "phone" }}
"#
    );
    std::fs::create_dir_all(dir.join("source")).expect("mkdir");
    std::fs::write(dir.join("cutover.toml"), toml).expect("toml");
    std::fs::write(dir.join("source/contacts.csv"), csv).expect("csv");
    let db = rusqlite::Connection::open(dir.join("destination.db")).expect("dest");
    db.execute_batch(&format!(
        "CREATE TABLE contacts (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, email TEXT, phone TEXT); {existing}"
    ))
    .expect("destination");
}

fn store(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("cutover.state.db")).expect("store")
}

fn dest(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("destination.db")).expect("dest")
}

/// The outcome counts of the newest run of `object`: outcome → number, from the audit log.
fn outcomes(dir: &Path, object: &str) -> Vec<(String, i64)> {
    let s = store(dir);
    let mut stmt = s
        .prepare(
            "SELECT outcome, COUNT(*) FROM audit WHERE object = ?1 AND run_id = (SELECT MAX(run_id) FROM audit
             WHERE object = ?1) GROUP BY outcome ORDER BY outcome",
        )
        .expect("q");
    stmt.query_map([object], |r| Ok((r.get(0)?, r.get(1)?))).expect("rows").collect::<Result<_, _>>().expect("rows")
}

fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// `cutover reconcile --all --format json` in `dir`.
fn reconcile(dir: &Path) -> serde_json::Value {
    let out = cutover(dir, &["reconcile", "--all", "--format", "json"], &[]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)))
}

fn keys(report: &serde_json::Value) -> Vec<String> {
    report["discrepancies"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|d| d["key"].as_str().map(String::from))
        .collect()
}

fn people(n: usize, special: &[(usize, &str)]) -> Vec<u8> {
    let mut csv = String::from("id,name,email,phone\n");
    for i in 1..=n {
        match special.iter().find(|(at, _)| *at == i) {
            Some((_, row)) => csv.push_str(row),
            None => csv.push_str(&format!("{i},Person {i},p{i}@example.com,")),
        }
        csv.push('\n');
    }
    csv.into_bytes()
}

#[test]
fn an_open_quote_fails_its_own_record_and_every_later_row_keeps_its_outcome() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Row 10 (line 11) opens a quote that never closes: the rest of the file is not one field.
    let csv = people(2000, &[(10, "10,\"Ann Smith,ann@example.com,")]);
    contacts_project(dir.path(), "fill_blanks", 100, &csv, "");
    let out = cutover(dir.path(), &["run"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(outcomes(dir.path(), "contacts"), [("created".into(), 1999), ("failed".into(), 1)], "{}", text(&out));
    let detail: String = store(dir.path())
        .query_row("SELECT detail FROM audit WHERE outcome = 'failed'", [], |r| r.get(0))
        .expect("failed row");
    assert!(detail.contains("unterminated quote opened at line 11"), "{detail}");
    assert_eq!(count(&dest(dir.path()), "SELECT COUNT(*) FROM contacts"), 1999);
    let report = reconcile(dir.path());
    assert_eq!(report["objects"][0]["counts"]["in_source"], 2000, "{report:#}");
    assert_eq!(keys(&report), ["contacts/failed"], "only the broken row is open");

    // A quote closed much later by another row's quotes swallows nothing either.
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = people(300, &[(10, "10,\"Ann Smith,ann@example.com,"), (60, "60,\"Bob, Jr.\",bob@example.com,")]);
    contacts_project(dir.path(), "fill_blanks", 100, &csv, "");
    let out = cutover(dir.path(), &["run"], &[]);
    assert_eq!(outcomes(dir.path(), "contacts"), [("created".into(), 299), ("failed".into(), 1)], "{}", text(&out));
    assert_eq!(count(&dest(dir.path()), "SELECT COUNT(*) FROM contacts WHERE name = 'Bob, Jr.'"), 1);

    // A stray quote inside a later row's unquoted name ends the open field with the right width:
    // a quote followed by a letter is not a field's end, so the rows between keep their own.
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = people(300, &[(10, "10,\"Ann Smith,ann@example.com,"), (110, "110,Pat O\"Brien,pat@example.com,")]);
    contacts_project(dir.path(), "fill_blanks", 100, &csv, "");
    let out = cutover(dir.path(), &["run"], &[]);
    assert_eq!(outcomes(dir.path(), "contacts"), [("created".into(), 299), ("failed".into(), 1)], "{}", text(&out));
    let detail: String = store(dir.path())
        .query_row("SELECT detail FROM audit WHERE outcome = 'failed'", [], |r| r.get(0))
        .expect("failed row");
    assert!(detail.contains("line 11") && detail.contains("line 111 is followed by 'B'"), "{detail}");
    assert_eq!(count(&dest(dir.path()), "SELECT COUNT(*) FROM contacts WHERE name = 'Pat O\"Brien'"), 1);
    assert_eq!(count(&dest(dir.path()), "SELECT MAX(length(name)) FROM contacts"), 11);
    let report = reconcile(dir.path());
    assert_eq!(report["objects"][0]["counts"]["in_source"], 300, "{report:#}");
    assert_eq!(keys(&report), ["contacts/failed"], "only the broken row is open");
}

#[test]
fn a_quoted_field_of_absurd_size_is_named_and_swallows_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Row 5 opens a quote that a row 1,500 lines later happens to close with the right width.
    let mut rows: Vec<String> = (1..=4).map(|i| format!("{i},Person {i},p{i}@example.com,")).collect();
    rows.push("5,\"Long".into());
    rows.extend((6..1506).map(|i| format!("{i} Person {i} p{i}@example.com")));
    rows.push("1506 end\",p5@example.com,".into());
    rows.push("1507,Last,last@example.com,".into());
    let csv = format!("id,name,email,phone\n{}\n", rows.join("\n"));
    contacts_project(dir.path(), "fill_blanks", 500, csv.as_bytes(), "");
    let out = cutover(dir.path(), &["run"], &[]);
    let o = outcomes(dir.path(), "contacts");
    let total: i64 = o.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 1507, "every physical line after the suspect quote has an outcome: {o:?}\n{}", text(&out));
    let detail: String =
        store(dir.path()).query_row("SELECT detail FROM audit WHERE source_id = '5'", [], |r| r.get(0)).expect("row 5");
    assert!(detail.contains("line 6") && detail.contains("more than 1000 lines"), "{detail}");
}

#[test]
fn a_repeated_source_id_waits_in_the_queue_and_ids_compare_as_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = "id,name,email,phone\n\
               7,Ann Able,ann@example.com,\n\
               8,Cy Dee,cy@example.com,\n\
               7,Bob Baker,bob@example.com,\n\
               8,Cy Dee,cy@example.com,\n\
               9,Nine Plain,nine@example.com,\n \
               9,Nine Spaced,nine.spaced@example.com,\n\
               9\u{a0},Nine Nbsp,nine.nbsp@example.com,\n";
    contacts_project(dir.path(), "source_wins", 2, csv.as_bytes(), "");
    let out = cutover(dir.path(), &["run"], &[]);
    assert_eq!(
        outcomes(dir.path(), "contacts"),
        [("created".into(), 5), ("queued".into(), 1), ("skipped".into(), 1)],
        "{}",
        text(&out)
    );
    let d = dest(dir.path());
    assert_eq!(count(&d, "SELECT COUNT(*) FROM contacts WHERE name = 'Ann Able'"), 1, "the first 7 is kept");
    assert_eq!(count(&d, "SELECT COUNT(*) FROM contacts WHERE name = 'Bob Baker'"), 0, "the second 7 waits");
    assert_eq!(count(&d, "SELECT COUNT(*) FROM contacts WHERE name LIKE 'Nine%'"), 3, "three different ids");
    let s = store(dir.path());
    let reason: String =
        s.query_row("SELECT reason FROM queue WHERE source_id = '7'", [], |r| r.get(0)).expect("queued 7");
    assert_eq!(reason, "duplicate_source_id");
    let skipped: String =
        s.query_row("SELECT detail FROM audit WHERE outcome = 'skipped'", [], |r| r.get(0)).expect("skipped 8");
    assert!(skipped.contains("repeat"), "{skipped}");
    let report = reconcile(dir.path());
    assert_eq!(report["objects"][0]["counts"]["in_source"], 7, "{report:#}");
    assert_eq!(keys(&report), ["contacts/queued/duplicate_source_id"], "{report:#}");
}

#[test]
fn a_shared_phone_does_not_merge_two_different_people() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = "id,name,email,phone\n\
               1,Bob Other,bob@example.com,(415) 555-2671\n\
               2,Ann Same,,415.555.2671\n\
               3,Cy One,cy@example.com,+1 617 555 0100\n\
               4,Di Two,di@example.com,617-555-0100\n";
    let existing = "INSERT INTO contacts (id, name, email, phone) VALUES (500, 'Ann Existing', 'ann@example.com', '+14155552671');";
    contacts_project(dir.path(), "fill_blanks", 10, csv.as_bytes(), existing);
    let out = cutover(dir.path(), &["run"], &[]);
    assert_eq!(
        outcomes(dir.path(), "contacts"),
        [("created".into(), 1), ("queued".into(), 2), ("unchanged".into(), 1)],
        "{}",
        text(&out)
    );
    let s = store(dir.path());
    let held: Vec<(String, String)> = s
        .prepare("SELECT source_id, reason FROM queue ORDER BY source_id")
        .expect("q")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(held, [("1".into(), "conflicting_match".into()), ("4".into(), "conflicting_match".into())]);
    let issues: String = s.query_row("SELECT issues FROM queue WHERE source_id = '1'", [], |r| r.get(0)).expect("1");
    assert!(issues.contains("\"field\":\"email\""), "names the field that disagrees: {issues}");
    let ann: (String, String) = dest(dir.path())
        .query_row("SELECT name, email FROM contacts WHERE id = 500", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("500");
    assert_eq!(ann, ("Ann Existing".into(), "ann@example.com".into()));
}

#[test]
fn two_source_records_into_one_destination_record_are_one_decision_on_every_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = "id,name,email,phone\n\
               1,Ann Able,shared@example.com,+14155550101\n\
               2,Filler,filler@example.com,\n\
               3,ANN ABLE,SHARED@example.com,\n";
    contacts_project(dir.path(), "source_wins", 2, csv.as_bytes(), "");
    let first = cutover(dir.path(), &["run"], &[]);
    assert_eq!(outcomes(dir.path(), "contacts"), [("created".into(), 2), ("merged".into(), 1)], "{}", text(&first));
    let row = |d: &rusqlite::Connection| -> (String, Option<String>) {
        d.query_row("SELECT name, phone FROM contacts WHERE email = 'shared@example.com'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("shared")
    };
    assert_eq!(row(&dest(dir.path())), ("Ann Able".into(), Some("+14155550101".into())), "the survivor's values");
    let merged: String = store(dir.path())
        .query_row("SELECT detail FROM audit WHERE outcome = 'merged'", [], |r| r.get(0))
        .expect("merged row");
    assert!(merged.contains("source record 1"), "names the survivor: {merged}");

    // Run again: nothing changes, nothing flips, and the counts say so.
    let again = cutover(dir.path(), &["run"], &[]);
    assert_eq!(outcomes(dir.path(), "contacts"), [("merged".into(), 1), ("unchanged".into(), 2)], "{}", text(&again));
    assert_eq!(row(&dest(dir.path())), ("Ann Able".into(), Some("+14155550101".into())));
    let report = reconcile(dir.path());
    assert!(keys(&report).contains(&"contacts/merged".to_string()), "{report:#}");
}

#[test]
fn two_objects_writing_one_table_keep_their_own_markers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = r#"[project]
name = "mechanisms"

[source]
kind = "csv"
path = "source"

[destination]
kind = "sqlite"
path = "destination.db"

[objects.emails]
destination = "mechanisms"

[objects.emails.fields]
party = { from = "party" }
kind = { default = "email" }
value = { from = "value" }

[objects.phones]
destination = "mechanisms"

[objects.phones.fields]
party = { from = "party" }
kind = { default = "phone" }
value = { from = "value" }
"#;
    std::fs::create_dir_all(dir.path().join("source")).expect("mkdir");
    std::fs::write(dir.path().join("cutover.toml"), toml).expect("toml");
    let rows = |what: &str| {
        let mut s = String::from("id,party,value\n");
        for i in 1..=5 {
            s.push_str(&format!("{i},p{i},{what}{i}\n"));
        }
        s
    };
    std::fs::write(dir.path().join("source/emails.csv"), rows("e")).expect("csv");
    std::fs::write(dir.path().join("source/phones.csv"), rows("+1415555010")).expect("csv");
    rusqlite::Connection::open(dir.path().join("destination.db"))
        .expect("dest")
        .execute_batch("CREATE TABLE mechanisms (id INTEGER PRIMARY KEY, party TEXT, kind TEXT, value TEXT);")
        .expect("table");
    let out = cutover(dir.path(), &["run"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let d = dest(dir.path());
    assert_eq!(count(&d, "SELECT COUNT(*) FROM mechanisms WHERE kind = 'email'"), 5, "{}", text(&out));
    assert_eq!(count(&d, "SELECT COUNT(*) FROM mechanisms WHERE kind = 'phone'"), 5, "{}", text(&out));
}

#[test]
fn nul_and_control_characters_are_held_never_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv =
        "id,name,email,phone\n1,Nu\0ll,nul@example.com,\n2,Bell\u{7},bell@example.com,\n3,Fine,fine@example.com,\n";
    contacts_project(dir.path(), "fill_blanks", 10, csv.as_bytes(), "");
    let out = cutover(dir.path(), &["run"], &[]);
    assert_eq!(outcomes(dir.path(), "contacts"), [("created".into(), 1), ("queued".into(), 2)], "{}", text(&out));
    let reasons: Vec<String> = store(dir.path())
        .prepare("SELECT reason FROM queue ORDER BY source_id")
        .expect("q")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(reasons, ["control_character", "control_character"]);
    assert_eq!(count(&dest(dir.path()), "SELECT COUNT(*) FROM contacts WHERE instr(name, char(0)) > 0"), 0);
}

#[test]
fn an_empty_translation_target_is_refused_by_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    contacts_project(dir.path(), "fill_blanks", 10, b"id,name,email,phone\n1,A,a@example.com,\n", "");
    let toml = std::fs::read_to_string(dir.path().join("cutover.toml"))
        .expect("toml")
        .replace("name = { from = \"name\" }", "name = { from = \"name\", translate = \"names\" }")
        .replace("[objects.contacts]\n", "[translations.names]\n\"A\" = \"\"\n\n[objects.contacts]\n");
    std::fs::write(dir.path().join("cutover.toml"), toml).expect("toml");
    let out = cutover(dir.path(), &["check"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("translations.names") && said.contains("blank"), "{said}");
}

#[test]
fn a_correction_made_on_a_stale_value_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    contacts_project(dir.path(), "fill_blanks", 10, b"id,name,email,phone\n1,Ann,not-an-email,\n", "");
    let out = cutover(dir.path(), &["run"], &[]);
    assert_eq!(outcomes(dir.path(), "contacts"), [("queued".into(), 1)], "{}", text(&out));
    let id: i64 = store(dir.path()).query_row("SELECT id FROM queue", [], |r| r.get(0)).expect("item");
    let id = id.to_string();
    // Two operators looked at the blank email; the first fixes it, the second is refused.
    let first = cutover(dir.path(), &["queue", "fix", &id, "email=ann@example.com", "--was", "email="], &[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let second = cutover(dir.path(), &["queue", "fix", &id, "email=ann.other@example.com", "--was", "email="], &[]);
    assert_ne!(second.status.code(), Some(0), "{}", text(&second));
    assert!(text(&second).contains("changed since you looked"), "{}", text(&second));
    let corrections: String =
        store(dir.path()).query_row("SELECT corrections FROM queue", [], |r| r.get(0)).expect("corrections");
    assert!(corrections.contains("ann@example.com") && !corrections.contains("ann.other"), "{corrections}");
}

/// A source whose own count disagrees with what it yields (rows deleted while it was read).
struct Shrinking {
    inner: std::sync::Arc<dyn cutover::connect::Source>,
}

#[async_trait::async_trait]
impl cutover::connect::Source for Shrinking {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn fields(&self, object: &str) -> color_eyre::Result<cutover::model::FieldNames> {
        self.inner.fields(object).await
    }
    async fn count(&self, object: &str) -> color_eyre::Result<u64> {
        Ok(self.inner.count(object).await? + 5)
    }
    async fn read_batch(
        &self,
        object: &str,
        id_field: &str,
        cursor: &cutover::connect::Cursor,
        max: usize,
    ) -> color_eyre::Result<cutover::connect::Batch> {
        self.inner.read_batch(object, id_field, cursor, max).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_never_completes_a_run_that_read_less_than_the_source_holds() {
    use cutover::pipeline::Finish;
    let dir = tempfile::tempdir().expect("tempdir");
    contacts_project(dir.path(), "fill_blanks", 10, &people(30, &[]), "");
    let project = cutover::project::Project::load(Some(&dir.path().join("cutover.toml"))).expect("project");
    let engine = || {
        let source = cutover::connect::open_source(&project.config).expect("source");
        let dest = cutover::connect::open_destination(&project.config, false).expect("destination");
        cutover::pipeline::Engine::new(
            project.config.clone(),
            std::sync::Arc::new(Shrinking { inner: source }),
            dest,
            project.store_path.clone(),
        )
        .expect("engine")
    };
    let first = engine().run(cutover::store::RunKind::Full).await.expect("runs");
    assert!(matches!(&first.finish, Finish::Halted(why) if why.contains("35")), "{:?}", first.finish);
    let resumed = engine().resume().await.expect("resumes");
    assert!(
        matches!(&resumed.finish, Finish::Halted(why) if why.contains("read 30 of the 35")),
        "a resume that reads nothing more is not completed: {:?}",
        resumed.finish
    );
}

/// Every row of a table, every column, in id order (the test's own reading of the destination).
fn rows(dir: &Path, table: &str) -> Vec<Vec<String>> {
    let d = dest(dir);
    let mut stmt = d.prepare(&format!("SELECT * FROM {table} ORDER BY id")).expect("select");
    let n = stmt.column_count();
    stmt.query_map([], |r| (0..n).map(|i| r.get_ref(i).map(|v| format!("{v:?}"))).collect())
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn rolling_back_a_clean_run_restores_every_row_exactly_with_merges_and_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Two source people on one pre-existing contact (the first fills its name, the second its
    // phone), an in-file pair on one new email, an exact repeat, and plain new ones.
    // Six hundred other people stand between the two halves of the pre-existing contact.
    let mut csv = String::from("id,name,email,phone\n1,Ann Able,ann@example.com,\n");
    for i in 0..600 {
        csv.push_str(&format!("f{i},Filler {i},filler{i}@example.com,\n"));
    }
    csv.push_str(
        "2,,ANN@example.com,+14155550102\n\
         3,Bob New,bob@example.com,\n\
         4,,bob@example.com,+14155550104\n\
         5,Cy,cy@example.com,\n\
         5,Cy,cy@example.com,\n\
         6,Di,di@example.com,+14155550106\n",
    );
    let existing = "INSERT INTO contacts (id, name, email, phone) VALUES
        (500, '', 'ann@example.com', NULL), (501, 'Keep Me', 'keep@example.com', '+14155550199');";
    contacts_project(dir.path(), "fill_blanks", 2, csv.as_bytes(), existing);
    let before = rows(dir.path(), "contacts");
    let out = cutover(dir.path(), &["run"], &[]);
    assert_eq!(
        outcomes(dir.path(), "contacts"),
        [("created".into(), 603), ("merged".into(), 2), ("skipped".into(), 1), ("updated".into(), 1)],
        "{}",
        text(&out)
    );
    assert_ne!(rows(dir.path(), "contacts"), before);
    // A second run finds everything as the first left it: it writes nothing, so it stands in the
    // way of nothing.
    let written = rows(dir.path(), "contacts");
    let out = cutover(dir.path(), &["run"], &[]);
    let o = outcomes(dir.path(), "contacts");
    assert!(o.iter().all(|(k, _)| ["unchanged", "merged", "skipped"].contains(&k.as_str())), "{o:?}\n{}", text(&out));
    assert_eq!(rows(dir.path(), "contacts"), written);
    let out = cutover(dir.path(), &["rollback", "1"], &[]);
    assert_eq!(out.status.code(), Some(0), "nothing is 'changed since' after a clean run:\n{}", text(&out));
    // Row for row as before the run: the blank name '' stays '', the missing phone NULL.
    assert_eq!(rows(dir.path(), "contacts"), before, "row for row as before the run");
    assert_eq!(count(&store(dir.path()), "SELECT COUNT(*) FROM id_map"), 0);
    assert_eq!(count(&dest(dir.path()), "SELECT COUNT(*) FROM cutover_marks"), 0, "no marker is left behind");
}

fn queue_id(dir: &Path, source_id: &str, occurrence: i64) -> String {
    let id: i64 = store(dir)
        .query_row(
            "SELECT id FROM queue WHERE source_id = ?1 AND occurrence = ?2",
            rusqlite::params![source_id, occurrence],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("queue item of {source_id}/{occurrence}: {e}"));
    id.to_string()
}

#[test]
fn the_operators_triage_stands_through_every_later_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Row 2 shares row 1's email with another phone (held beside it); row 3 comes twice with
    // different names (the second is held).
    let csv = "id,name,email,phone\n1,Ann,ann@example.com,(212) 200-0001\n2,Ann B,ANN@example.com,(212) 200-0002\n\
               3,Bob,bob@example.com,\n3,Bobby,bob@example.com,\n";
    contacts_project(dir.path(), "fill_blanks", 100, csv.as_bytes(), "");
    let out = cutover(dir.path(), &["run"], &[]);
    assert_eq!(outcomes(dir.path(), "contacts"), [("created".into(), 2), ("queued".into(), 2)], "{}", text(&out));
    let ann: String = dest(dir.path())
        .query_row("SELECT id FROM contacts WHERE name = 'Ann'", [], |r| r.get::<_, i64>(0))
        .expect("Ann")
        .to_string();
    // Held beside a record of its own batch, row 2 is shown the destination record that record
    // became, and may be merged into it straight away.
    let row2 = queue_id(dir.path(), "2", 1);
    let show = cutover(dir.path(), &["queue", "show", &row2], &[]);
    assert!(text(&show).contains(&format!("@match={ann}")), "{}", text(&show));
    let fix = cutover(dir.path(), &["queue", "fix", &row2, &format!("@match={ann}")], &[]);
    assert_eq!(fix.status.code(), Some(0), "{}", text(&fix));
    let out = cutover(dir.path(), &["queue", "reprocess", &row2], &[]);
    assert_eq!(outcomes(dir.path(), "contacts"), [("merged".into(), 1)], "{}", text(&out));
    let repeat = queue_id(dir.path(), "3", 2);
    let skip = cutover(dir.path(), &["queue", "skip", &repeat, "--reason", "typo of row 3"], &[]);
    assert_eq!(skip.status.code(), Some(0), "{}", text(&skip));

    // A plain run after the triage keeps every decision: nothing goes back to the queue.
    let out = cutover(dir.path(), &["run"], &[]);
    assert_eq!(
        outcomes(dir.path(), "contacts"),
        [("merged".into(), 1), ("skipped".into(), 1), ("unchanged".into(), 2)],
        "{}",
        text(&out)
    );
    assert_eq!(count(&store(dir.path()), "SELECT COUNT(*) FROM queue WHERE status IN ('open', 'fixed')"), 0);
    let detail: String = store(dir.path())
        .query_row("SELECT detail FROM audit WHERE outcome = 'skipped' ORDER BY id DESC LIMIT 1", [], |r| r.get(0))
        .expect("skip");
    assert!(detail.contains("skipped by the operator") && detail.contains("typo of row 3"), "{detail}");
    assert_eq!(count(&dest(dir.path()), "SELECT COUNT(*) FROM contacts"), 2);
    let report = reconcile(dir.path());
    assert_eq!(keys(&report), ["contacts/merged"], "only the merge to confirm: {report:#}");

    // The skipped row changed in the export since: it is judged afresh, and waits again.
    let csv = csv.replace("3,Bobby,", "3,Robert,");
    std::fs::write(dir.path().join("source/contacts.csv"), csv).expect("csv");
    let out = cutover(dir.path(), &["run"], &[]);
    let o = outcomes(dir.path(), "contacts");
    assert!(o.contains(&("queued".into(), 1)), "{o:?}\n{}", text(&out));
}

#[test]
fn a_report_piped_into_a_reader_that_stops_ends_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    contacts_project(dir.path(), "fill_blanks", 500, &people(30, &[(7, "7,Ann,not-an-email,")]), "");
    let out = cutover(dir.path(), &["run"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let item = queue_id(dir.path(), "7", 1);
    // The reader takes nothing and goes away (`| head` once it has its lines): each report must
    // end without a panic or a backtrace.
    for args in [vec!["queue", "list"], vec!["queue", "show", &item], vec!["runs"], vec!["export", "audit"]] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(&args)
            .current_dir(dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
    // Commands that change something keep their own exit code: the work is committed.
    for args in [vec!["run"], vec!["queue", "reprocess", &item], vec!["rollback", "1", "--dry-run"]] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(&args)
            .current_dir(dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(matches!(out.status.code(), Some(0 | 3)), "{args:?}: {:?} {stderr}", out.status);
    }
}

#[test]
fn rollbacks_in_any_order_undo_exactly_what_their_run_did() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = "id,name,email,phone\n1,Ann A,a@example.com,\n2,Bo,b@example.com,+14155550100\n";
    contacts_project(
        dir.path(),
        "fill_blanks",
        10,
        csv.as_bytes(),
        "INSERT INTO contacts VALUES (1, 'Ann', 'a@example.com', '');",
    );
    let before = rows(dir.path(), "contacts");
    assert!(cutover(dir.path(), &["run"], &[]).status.success());
    let after_first = rows(dir.path(), "contacts");
    // Run 2: a new row on Ann's email fills her blank phone; row 2 is spelled differently but
    // maps to the same values (unchanged).
    let csv2 = "id,name,email,phone\n1,Ann A,a@example.com,\n2,Bo,b@example.com,(415) 555-0100\n\
                3,Ann Again,A@example.com,+14155550199\n";
    std::fs::write(dir.path().join("source/contacts.csv"), csv2).expect("csv");
    let out = cutover(dir.path(), &["run", "--delta", "both"], &[]);
    let o = outcomes(dir.path(), "contacts");
    assert!(o.contains(&("merged".into(), 1)) && o.contains(&("unchanged".into(), 1)), "{o:?}\n{}", text(&out));
    // Rolled back (run 3): the unchanged row asks for no decision.
    let out = cutover(dir.path(), &["rollback", "2"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(rows(dir.path(), "contacts"), after_first);
    // The same delta again (run 4), and its rollback: run 2's undone link is no earlier link.
    assert!(cutover(dir.path(), &["run", "--delta", "both"], &[]).status.success());
    let out = cutover(dir.path(), &["rollback", "4"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(rows(dir.path(), "contacts"), after_first, "the blank phone is '' again");
    // And the first run, with nothing left in its way.
    let out = cutover(dir.path(), &["rollback", "1"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(rows(dir.path(), "contacts"), before);
    assert_eq!(count(&store(dir.path()), "SELECT COUNT(*) FROM id_map"), 0);
}

#[test]
fn a_key_an_earlier_record_changed_in_this_run_finds_nobody_at_any_batch_size() {
    for batch in [2, 1000] {
        let dir = tempfile::tempdir().expect("tempdir");
        let csv = people(40, &[(1, "1,Ann,old@example.com,")]);
        contacts_project(dir.path(), "fill_blanks", batch, &csv, "");
        assert!(cutover(dir.path(), &["run"], &[]).status.success());
        // Ann moves to a new address; a new person arrives with her old one, later in the file.
        let mut csv = String::from_utf8(people(40, &[(1, "1,Ann,new@example.com,")])).expect("utf-8");
        csv.push_str("41,Nina,old@example.com,\n");
        std::fs::write(dir.path().join("source/contacts.csv"), csv).expect("csv");
        let out = cutover(dir.path(), &["run", "--delta", "both"], &[]);
        assert_eq!(
            outcomes(dir.path(), "contacts"),
            [("created".into(), 1), ("updated".into(), 1)],
            "batch {batch}: the destination no longer holds old@example.com when Nina comes\n{}",
            text(&out)
        );
        let d = dest(dir.path());
        assert_eq!(count(&d, "SELECT COUNT(*) FROM contacts WHERE email = 'old@example.com' AND name = 'Nina'"), 1);
        assert_eq!(count(&d, "SELECT COUNT(*) FROM contacts WHERE email = 'new@example.com' AND name = 'Ann'"), 1);
    }
}

#[test]
fn an_update_that_would_give_a_record_another_records_email_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let existing = "INSERT INTO contacts VALUES (100, 'Stranger', 'taken@example.com', '');";
    contacts_project(dir.path(), "fill_blanks", 10, b"id,name,email,phone\n1,Ann,ann@example.com,\n", existing);
    assert!(cutover(dir.path(), &["run"], &[]).status.success());
    let ann: i64 =
        dest(dir.path()).query_row("SELECT id FROM contacts WHERE name = 'Ann'", [], |r| r.get(0)).expect("Ann");
    std::fs::write(dir.path().join("source/contacts.csv"), "id,name,email,phone\n1,Ann,Taken@example.com,\n")
        .expect("csv");
    let out = cutover(dir.path(), &["run", "--delta", "both"], &[]);
    assert_eq!(outcomes(dir.path(), "contacts"), [("queued".into(), 1)], "{}", text(&out));
    assert_eq!(count(&dest(dir.path()), "SELECT COUNT(*) FROM contacts WHERE email = 'taken@example.com'"), 1);
    let item = queue_id(dir.path(), "1", 1);
    let show = cutover(dir.path(), &["queue", "show", &item], &[]);
    assert!(text(&show).contains("destination record 100 holds 'taken@example.com' too"), "{}", text(&show));
    // The operator says it is right: written, and that decision stands on the next run.
    let fix = cutover(dir.path(), &["queue", "fix", &item, &format!("@match={ann}")], &[]);
    assert_eq!(fix.status.code(), Some(0), "{}", text(&fix));
    let out = cutover(dir.path(), &["queue", "reprocess", &item], &[]);
    assert_eq!(outcomes(dir.path(), "contacts"), [("updated".into(), 1)], "{}", text(&out));
    let out = cutover(dir.path(), &["run"], &[]);
    assert_eq!(outcomes(dir.path(), "contacts"), [("unchanged".into(), 1)], "{}", text(&out));
}

#[test]
fn a_record_deleted_in_the_destination_comes_back_only_when_someone_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = b"id,name,email,phone\n1,Ann,ann@example.com,\n2,Bo,bo@example.com,\n";
    contacts_project(dir.path(), "fill_blanks", 10, csv, "");
    assert!(cutover(dir.path(), &["run"], &[]).status.success());
    dest(dir.path()).execute("DELETE FROM contacts WHERE name = 'Ann'", []).expect("delete");
    let csv = "id,name,email,phone\n1,Ann Lee,ann@example.com,\n2,Bo,bo@example.com,\n";
    std::fs::write(dir.path().join("source/contacts.csv"), csv).expect("csv");
    // Ann changed in the source too; the delta does not undo the deletion (an erasure, a
    // clean-up): she waits for a decision.
    let out = cutover(dir.path(), &["run", "--delta", "both"], &[]);
    assert_eq!(outcomes(dir.path(), "contacts"), [("queued".into(), 1)], "{}", text(&out));
    assert_eq!(count(&dest(dir.path()), "SELECT COUNT(*) FROM contacts"), 1);
    let item = queue_id(dir.path(), "1", 1);
    let fix = cutover(dir.path(), &["queue", "fix", &item, "@match=new"], &[]);
    assert_eq!(fix.status.code(), Some(0), "{}", text(&fix));
    let out = cutover(dir.path(), &["queue", "reprocess", &item], &[]);
    assert_eq!(outcomes(dir.path(), "contacts"), [("created".into(), 1)], "{}", text(&out));
    // The choice made it once: later runs find the new record, they do not create another.
    for args in [&["run"][..], &["run", "--delta", "both"][..]] {
        let out = cutover(dir.path(), args, &[]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(count(&dest(dir.path()), "SELECT COUNT(*) FROM contacts"), 2, "{args:?}");
    }
    // A full run is the source's word: a record deleted by hand is created anew.
    dest(dir.path()).execute("DELETE FROM contacts WHERE name = 'Bo'", []).expect("delete");
    let out = cutover(dir.path(), &["run"], &[]);
    let o = outcomes(dir.path(), "contacts");
    assert!(o.contains(&("created".into(), 1)), "{o:?}\n{}", text(&out));
    assert_eq!(count(&dest(dir.path()), "SELECT COUNT(*) FROM contacts"), 2);
}

#[test]
fn rolling_back_a_run_never_deletes_a_record_a_later_run_still_points_at_or_merged_into() {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = r#"[project]
name = "later"
batch_size = 10
[source]
kind = "csv"
path = "source"
[destination]
kind = "sqlite"
path = "destination.db"
[objects.companies]
[objects.companies.fields]
name = { from = "name" }
[objects.contacts]
match = ["email"]
merge = "fill_blanks"
[objects.contacts.fields]
name = { from = "name" }
email = { from = "email", transform = "email" }
company = { from = "company", parent = "companies" }
"#;
    std::fs::create_dir_all(dir.path().join("source")).expect("mkdir");
    std::fs::write(dir.path().join("cutover.toml"), toml).expect("toml");
    std::fs::write(dir.path().join("source/companies.csv"), "id,name\nc1,Acme\nc2,Initech\nc3,Hooli\n").expect("csv");
    std::fs::write(
        dir.path().join("source/contacts.csv"),
        "id,name,email,company\na,Ann,ann@x.com,c1\nb,Bo,bo@x.com,c2\n",
    )
    .expect("csv");
    let db = rusqlite::Connection::open(dir.path().join("destination.db")).expect("dest");
    db.execute_batch(
        "CREATE TABLE companies (id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, email TEXT, company INTEGER REFERENCES companies(id));",
    )
    .expect("tables");
    drop(db);
    assert!(cutover(dir.path(), &["run"], &[]).status.success());
    // Run 2: Cy joins Hooli (a new child of a company run 1 created and nobody else works at),
    // Ann's colleague shares her address (a member merged into run 1's contact).
    std::fs::write(
        dir.path().join("source/contacts.csv"),
        "id,name,email,company\na,Ann,ann@x.com,c1\nb,Bo,bo@x.com,c2\ncy,Cy,cy@x.com,c3\nm,,ANN@x.com,\n",
    )
    .expect("csv");
    let out = cutover(dir.path(), &["run", "--delta", "create-new"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let out = cutover(dir.path(), &["rollback", "1"], &[]);
    let said = text(&out);
    let d = dest(dir.path());
    // Hooli stays under Cy, Ann under her member (and Acme under Ann); Bo and Initech, which
    // nothing else reaches, are gone.
    assert_eq!(count(&d, "SELECT COUNT(*) FROM companies WHERE name = 'Hooli'"), 1, "{said}");
    assert_eq!(count(&d, "SELECT COUNT(*) FROM companies WHERE name = 'Acme'"), 1, "{said}");
    assert_eq!(count(&d, "SELECT COUNT(*) FROM contacts WHERE name = 'Ann'"), 1, "{said}");
    assert_eq!(count(&d, "SELECT COUNT(*) FROM companies WHERE name = 'Initech'"), 0, "{said}");
    assert_eq!(count(&d, "SELECT COUNT(*) FROM contacts WHERE name = 'Bo'"), 0, "{said}");
    assert_eq!(
        count(
            &d,
            "SELECT COUNT(*) FROM contacts c WHERE c.company IS NOT NULL AND NOT EXISTS (SELECT 1 FROM companies p WHERE p.id = c.company)"
        ),
        0,
        "no contact points at a deleted company\n{said}"
    );
    assert!(
        said.contains("contacts cy (destination record ") && said.contains("left in place, points at it"),
        "{said}"
    );
    assert!(said.contains("source record m of a later run is linked to it too"), "{said}");
    assert_eq!(out.status.code(), Some(3), "records left for a decision: {said}");
    // Rolling back the later run first, then the first, undoes both completely.
    assert!(cutover(dir.path(), &["rollback", "2"], &[]).status.success());
    let out = cutover(dir.path(), &["rollback", "1"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(count(&dest(dir.path()), "SELECT COUNT(*) FROM contacts"), 0);
    assert_eq!(count(&dest(dir.path()), "SELECT COUNT(*) FROM companies"), 0);
}

#[test]
fn a_record_that_survives_in_its_own_destination_record_stays_its_survivor_at_any_batch_size() {
    let mut seen = Vec::new();
    for batch in [1, 2, 500] {
        let dir = tempfile::tempdir().expect("tempdir");
        let csv = b"id,name,email,phone\na1,Ann,ann@example.com,\nb1,Bob,bob@example.com,\n";
        contacts_project(dir.path(), "fill_blanks", batch, csv, "");
        assert!(cutover(dir.path(), &["run"], &[]).status.success());
        // Ann moves to a new address; Cleo, earlier in the file, comes with Ann's old one.
        let csv = "id,name,email,phone\nc0,Cleo,ann@example.com,+1 415 555 0177\na1,Ann,ann.new@example.com,\n\
                   b1,Bob,bob@example.com,\n";
        std::fs::write(dir.path().join("source/contacts.csv"), csv).expect("csv");
        let out = cutover(dir.path(), &["run", "--delta", "both"], &[]);
        assert!(out.status.success(), "{}", text(&out));
        // Ann's change is written whatever the batch size, and the store keeps her the survivor.
        let d = dest(dir.path());
        assert_eq!(
            count(&d, "SELECT COUNT(*) FROM contacts WHERE email = 'ann.new@example.com' AND name = 'Ann'"),
            1,
            "batch {batch}: Ann's new address is written\n{}",
            text(&out)
        );
        let s = store(dir.path());
        assert_eq!(
            count(&s, "SELECT COUNT(*) FROM id_map WHERE source_id = 'a1' AND role <> 'member'"),
            1,
            "batch {batch}"
        );
        let a1: String = s
            .query_row("SELECT outcome FROM audit WHERE source_id = 'a1' ORDER BY id DESC LIMIT 1", [], |r| r.get(0))
            .expect("a1");
        assert_eq!(a1, "updated", "batch {batch}");
        let reconcile = cutover(dir.path(), &["reconcile", "--all"], &[]);
        assert!(!text(&reconcile).contains("unrecorded_merge"), "batch {batch}\n{}", text(&reconcile));
        seen.push((outcomes(dir.path(), "contacts"), rows(dir.path(), "contacts")));
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "batches change nothing: {seen:#?}");
}

#[test]
fn a_correction_is_read_like_the_fields_own_values_never_written_raw() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No destination types: only the fields' transforms say what a value must be.
    let toml = r#"[project]
name = "fixes"
[source]
kind = "csv"
path = "source"
[destination]
kind = "sqlite"
path = "destination.db"
[objects.companies]
[objects.companies.fields]
name = { from = "name" }
[objects.contacts]
match = ["email"]
[objects.contacts.fields]
name = { from = "name" }
email = { from = "email", transform = "email" }
phone = { from = "phone", transform = "phone" }
company = { from = "company", parent = "companies" }
"#;
    std::fs::create_dir_all(dir.path().join("source")).expect("mkdir");
    std::fs::write(dir.path().join("cutover.toml"), toml).expect("toml");
    std::fs::write(dir.path().join("source/companies.csv"), "id,name\nc1,Acme\n").expect("csv");
    std::fs::write(dir.path().join("source/contacts.csv"), "id,name,email,phone,company\n1,Ann,ann@x.com,12,c9\n")
        .expect("csv");
    let db = rusqlite::Connection::open(dir.path().join("destination.db")).expect("dest");
    db.execute_batch(
        "CREATE TABLE companies (id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, email TEXT, phone TEXT, company INTEGER);",
    )
    .expect("tables");
    drop(db);
    assert!(cutover(dir.path(), &["run"], &[]).status.success());
    let item = queue_id(dir.path(), "1", 1);
    let fix = |args: &[&str]| {
        let mut all = vec!["queue", "fix", item.as_str()];
        all.extend_from_slice(args);
        let out = cutover(dir.path(), &all, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        text(&cutover(dir.path(), &["queue", "reprocess", &item], &[]))
    };
    // Wrong again: held, each correction named; nothing is written.
    let said = fix(&["phone=not-a-phone", "email=notanemail", "company=abc"]);
    assert_eq!(count(&dest(dir.path()), "SELECT COUNT(*) FROM contacts"), 0, "{said}");
    let show = text(&cutover(dir.path(), &["queue", "show", &item], &[]));
    for part in [
        "the correction: 'not-a-phone' is not a phone number",
        "the correction: 'notanemail' is not an email",
        "the correction: 'abc' is neither the source id nor the destination id of a companies record",
    ] {
        assert!(show.contains(part), "{part}\n{show}");
    }
    // Right, in the operator's own spelling: read as the fields read theirs.
    let said = fix(&["phone=(415) 555-2671", "email= Ann@X.com ", "company=c1"]);
    let acme: i64 = dest(dir.path()).query_row("SELECT id FROM companies", [], |r| r.get(0)).expect("acme");
    let (email, phone, company): (String, String, i64) = dest(dir.path())
        .query_row("SELECT email, phone, company FROM contacts", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap_or_else(|e| panic!("{e}\n{said}"));
    assert_eq!((email.as_str(), phone.as_str(), company), ("ann@x.com", "+14155552671", acme), "{said}");
}

#[test]
fn a_source_changed_since_the_run_and_a_rolled_back_run_are_open_discrepancies() {
    let dir = tempfile::tempdir().expect("tempdir");
    contacts_project(dir.path(), "fill_blanks", 2, &people(5, &[]), "");
    assert!(cutover(dir.path(), &["run"], &[]).status.success());
    assert_eq!(common::reconcile_keys(dir.path(), &[]), Vec::<String>::new(), "a clean run balances");
    // The export changes after the run: reconciliation reads it again and says so.
    std::fs::write(dir.path().join("source/contacts.csv"), people(5, &[(3, "3,Person Three,p3@example.com,")]))
        .expect("csv");
    assert_eq!(common::reconcile_keys(dir.path(), &[]), ["contacts/source_changed"]);
    let refused = cutover(dir.path(), &["signoff", "--notes", "looks fine"], &[]);
    assert_ne!(refused.status.code(), Some(0), "{}", text(&refused));
    // A delta writes the change: nothing is open again.
    assert!(cutover(dir.path(), &["run", "--delta", "update-changed"], &[]).status.success());
    assert_eq!(common::reconcile_keys(dir.path(), &[]), Vec::<String>::new());
    // Every run rolled back: the records are in the source and not in the destination.
    assert!(cutover(dir.path(), &["rollback", "2"], &[]).status.success());
    assert!(cutover(dir.path(), &["rollback", "1"], &[]).status.success());
    assert_eq!(count(&dest(dir.path()), "SELECT COUNT(*) FROM contacts"), 0);
    assert_eq!(common::reconcile_keys(dir.path(), &[]), ["contacts/rolled_back"]);
    let refused = cutover(dir.path(), &["signoff", "--notes", "looks fine"], &[]);
    assert_ne!(refused.status.code(), Some(0), "{}", text(&refused));
}

#[test]
fn a_resume_after_the_export_was_edited_refuses_to_read_from_a_stale_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad: Vec<(usize, String)> = (21..=40).map(|i| (i, format!("{i},Person {i},p{i}@example.com,12"))).collect();
    let special: Vec<(usize, &str)> = bad.iter().map(|(i, r)| (*i, r.as_str())).collect();
    contacts_project(dir.path(), "fill_blanks", 20, &people(100, &special), "");
    // Every record of the second batch is held: the run halts there.
    let toml = std::fs::read_to_string(dir.path().join("cutover.toml")).expect("toml");
    std::fs::write(dir.path().join("cutover.toml"), toml.replace("halt_error_rate = 1.0", "halt_error_rate = 0.5"))
        .expect("toml");
    let out = cutover(dir.path(), &["run"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // The operator fixes the export (the rows get shorter), then resumes as told.
    std::fs::write(dir.path().join("source/contacts.csv"), people(100, &[])).expect("csv");
    let out = cutover(dir.path(), &["run", "--resume"], &[]);
    let said = text(&out);
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("changed since this run read it up to line 41"), "{said}");
    assert!(!said.contains("accounted for: yes"), "{said}");
    // A new run reads it all, once.
    let out = cutover(dir.path(), &["run"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(count(&dest(dir.path()), "SELECT COUNT(*) FROM contacts"), 100);
    assert_eq!(common::reconcile_keys(dir.path(), &[]), Vec::<String>::new());
}

#[test]
fn a_delta_judges_again_a_skipped_or_held_row_that_was_fixed_in_the_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    contacts_project(
        dir.path(),
        "fill_blanks",
        10,
        b"id,name,email,phone\n1,A,a@x.com,12\n2,B,b@x.com,\n3,C,c@x.com,13\n",
        "",
    );
    assert!(cutover(dir.path(), &["run"], &[]).status.success());
    let skip = queue_id(dir.path(), "1", 1);
    assert!(cutover(dir.path(), &["queue", "skip", &skip, "--reason", "wrong"], &[]).status.success());
    // Unchanged, the skip and the hold stand: a delta takes nothing.
    let out = cutover(dir.path(), &["run", "--delta", "both"], &[]);
    assert!(text(&out).contains("0 records"), "{}", text(&out));
    // Both rows fixed in the export: the delta writes them.
    std::fs::write(
        dir.path().join("source/contacts.csv"),
        "id,name,email,phone\n1,A,a@x.com,+1 415 555 0101\n2,B,b@x.com,\n3,C,c@x.com,+1 415 555 0103\n",
    )
    .expect("csv");
    for mode in ["create-new", "both"] {
        let out = cutover(dir.path(), &["run", "--delta", mode], &[]);
        assert!(out.status.success(), "{}", text(&out));
    }
    assert_eq!(count(&dest(dir.path()), "SELECT COUNT(*) FROM contacts"), 3);
    assert_eq!(common::reconcile_keys(dir.path(), &[]), Vec::<String>::new());
}

#[test]
fn a_repeated_id_is_not_a_match_to_decide_and_a_control_character_shows_its_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    contacts_project(
        dir.path(),
        "fill_blanks",
        10,
        b"id,name,email,phone\n1,Ann,ann@x.com,\n1,Bob,bob@x.com,\n2,Nu\0ll,n@x.com,\n",
        "",
    );
    assert!(cutover(dir.path(), &["run"], &[]).status.success());
    let item = queue_id(dir.path(), "1", 2);
    for choice in ["@match=new", "@match=1"] {
        let out = cutover(dir.path(), &["queue", "fix", &item, choice], &[]);
        assert_ne!(out.status.code(), Some(0), "{choice}: {}", text(&out));
        assert!(text(&out).contains("second row under a source id"), "{}", text(&out));
    }
    let nul = queue_id(dir.path(), "2", 1);
    let show = text(&cutover(dir.path(), &["queue", "show", &nul], &[]));
    assert!(show.contains("'Nu\\u{0}ll' holds a NUL character (at character 3)"), "{show}");
}

#[test]
fn two_rows_a_stray_quote_joined_into_valid_csv_are_a_discrepancy_to_look_at() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = b"id,name,email,phone\n1,\"Ann,ann@x.com,\n2,Bob\",bob@x.com,\n3,Cy,cy@x.com,\n";
    contacts_project(dir.path(), "fill_blanks", 10, csv, "");
    assert!(cutover(dir.path(), &["run"], &[]).status.success());
    let keys = common::reconcile_keys(dir.path(), &[]);
    assert_eq!(keys, ["contacts/quoting_doubt"], "the reading is valid CSV, but someone must look");
    let report = text(&cutover(dir.path(), &["reconcile", "--all"], &[]));
    assert!(report.contains("line 2: the quoted field runs to line 3"), "{report}");
    let refused = cutover(dir.path(), &["signoff", "--notes", "x"], &[]);
    assert_ne!(refused.status.code(), Some(0), "{}", text(&refused));
}

#[test]
fn a_member_found_by_its_own_id_may_not_take_a_key_another_record_holds_at_any_batch_size() {
    let mut seen = Vec::new();
    for batch in [1, 2, 500] {
        let dir = tempfile::tempdir().expect("tempdir");
        // a2 is merged into Ann's record by the shared phone; Zed has his own.
        let csv = b"id,name,email,phone\na1,Ann,,4155550001\na2,Ann Two,,4155550001\na3,Zed,z@x.com,\n";
        contacts_project(dir.path(), "fill_blanks", batch, csv, "");
        assert!(cutover(dir.path(), &["run"], &[]).status.success());
        // a2 now brings Zed's email: filling it into Ann's record would leave two sharing it.
        let csv = "id,name,email,phone\na1,Ann,,4155550001\na2,Ann Two,z@x.com,4155550001\na3,Zed,z@x.com,\n";
        std::fs::write(dir.path().join("source/contacts.csv"), csv).expect("csv");
        let out = cutover(dir.path(), &["run", "--delta", "both"], &[]);
        assert!(out.status.success(), "{}", text(&out));
        let d = dest(dir.path());
        assert_eq!(
            count(&d, "SELECT COUNT(*) FROM contacts WHERE email = 'z@x.com'"),
            1,
            "batch {batch}\n{}",
            text(&out)
        );
        let item = queue_id(dir.path(), "a2", 1);
        let show = text(&cutover(dir.path(), &["queue", "show", &item], &[]));
        assert!(show.contains("holds 'z@x.com' too"), "batch {batch}\n{show}");
        seen.push((outcomes(dir.path(), "contacts"), rows(dir.path(), "contacts")));
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "batches change nothing: {seen:#?}");
}

#[test]
fn a_run_whose_rollback_was_done_in_another_order_no_longer_blocks_an_earlier_rollback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = b"id,name,email,phone\na1,Ann,ann@x.com,\na2,Ann Dup,ann@x.com,\na3,Ann Three,ann@x.com,12\n";
    contacts_project(dir.path(), "fill_blanks", 10, csv, "");
    assert!(cutover(dir.path(), &["run"], &[]).status.success());
    // Run 2: a2 changes its name, merged again into Ann's record, changing nothing there.
    let csv = "id,name,email,phone\na1,Ann,ann@x.com,\na2,Ann Dup B,ann@x.com,\na3,Ann Three,ann@x.com,12\n";
    std::fs::write(dir.path().join("source/contacts.csv"), csv).expect("csv");
    assert!(cutover(dir.path(), &["run", "--delta", "both"], &[]).status.success());
    // Run 3: a3 fixed and reprocessed fills Ann's phone.
    let item = queue_id(dir.path(), "a3", 1);
    assert!(cutover(dir.path(), &["queue", "fix", &item, "phone=415 555 0003"], &[]).status.success());
    assert!(cutover(dir.path(), &["queue", "reprocess", &item], &[]).status.success());
    let blocked = cutover(dir.path(), &["rollback", "2"], &[]);
    assert!(text(&blocked).contains("written again by run 3"), "{}", text(&blocked));
    for run in ["3", "2", "1"] {
        let out = cutover(dir.path(), &["rollback", run], &[]);
        assert_eq!(out.status.code(), Some(0), "rollback {run}: {}", text(&out));
    }
    assert_eq!(count(&dest(dir.path()), "SELECT COUNT(*) FROM contacts"), 0, "every run undone");
    assert_eq!(count(&store(dir.path()), "SELECT COUNT(*) FROM id_map"), 0);
}

#[test]
fn a_record_added_beside_cutover_sharing_an_email_is_named_even_when_the_count_balances() {
    let dir = tempfile::tempdir().expect("tempdir");
    let existing = "INSERT INTO contacts VALUES (101, 'Old', 'old@x.com', '');";
    contacts_project(dir.path(), "fill_blanks", 10, b"id,name,email,phone\n1,Ann,ann@x.com,\n", existing);
    assert!(cutover(dir.path(), &["run"], &[]).status.success());
    assert_eq!(common::reconcile_keys(dir.path(), &[]), Vec::<String>::new());
    // Someone deletes one record and adds a copy of Ann: the count is what it was.
    dest(dir.path())
        .execute_batch(
            "DELETE FROM contacts WHERE id = 101; INSERT INTO contacts (name, email) VALUES ('Dup', 'ANN@x.com');",
        )
        .expect("planted");
    let keys = common::reconcile_keys(dir.path(), &[]);
    assert!(keys.contains(&"contacts/duplicates/email".to_string()), "{keys:?}");
    assert_ne!(cutover(dir.path(), &["signoff", "--notes", "x"], &[]).status.code(), Some(0));
}

#[test]
fn a_source_correction_is_no_change_in_the_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    contacts_project(dir.path(), "fill_blanks", 10, b"id,name,email,phone\n1,Ann,ann@x.com,12\n2,Bo,bo@x.com,\n", "");
    assert!(cutover(dir.path(), &["run"], &[]).status.success());
    let item = queue_id(dir.path(), "1", 1);
    assert!(cutover(dir.path(), &["queue", "fix", &item, "source.phone=415 555 0101"], &[]).status.success());
    assert!(cutover(dir.path(), &["queue", "reprocess", &item], &[]).status.success());
    assert_eq!(count(&dest(dir.path()), "SELECT COUNT(*) FROM contacts WHERE phone = '+14155550101'"), 1);
    assert_eq!(common::reconcile_keys(dir.path(), &[]), Vec::<String>::new(), "the export did not change");
    // A full run maps the row with its correction again: nothing changes, nothing is held.
    assert!(cutover(dir.path(), &["run"], &[]).status.success());
    assert_eq!(outcomes(dir.path(), "contacts"), [("unchanged".into(), 2)]);
}

#[test]
fn a_key_a_merge_did_not_write_leads_nobody_later_in_the_batch() {
    let mut seen = Vec::new();
    for batch in [1, 2, 500] {
        let dir = tempfile::tempdir().expect("tempdir");
        let existing = "INSERT INTO contacts (name, email, phone) VALUES ('Ann', 'ann@x.com', '+14155550001');";
        let csv = b"id,name,email,phone\nb1,Ann B,,4155550001\n";
        contacts_project(dir.path(), "fill_blanks", batch, csv, existing);
        assert!(cutover(dir.path(), &["run"], &[]).status.success());
        // b1 (merged into Ann by her phone) now brings another email: fill_blanks keeps Ann's.
        // Bea comes later with that other email: nobody holds it, so she is new — as she is
        // when the two are in different batches.
        let csv = "id,name,email,phone\nb1,Ann B,other@x.com,4155550001\nb2,Bea,other@x.com,4155550002\n";
        std::fs::write(dir.path().join("source/contacts.csv"), csv).expect("csv");
        let out = cutover(dir.path(), &["run", "--delta", "both"], &[]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(
            outcomes(dir.path(), "contacts"),
            [("created".into(), 1), ("unchanged".into(), 1)],
            "batch {batch}\n{}",
            text(&out)
        );
        let d = dest(dir.path());
        assert_eq!(count(&d, "SELECT COUNT(*) FROM contacts WHERE email = 'other@x.com' AND name = 'Bea'"), 1);
        assert_eq!(count(&d, "SELECT COUNT(*) FROM contacts WHERE email = 'ann@x.com'"), 1);
        seen.push((outcomes(dir.path(), "contacts"), rows(dir.path(), "contacts")));
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "batches change nothing: {seen:#?}");
}

#[test]
fn a_ten_megabyte_value_is_shown_cut_with_its_length_and_whole_on_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let huge = "x".repeat(10 * 1024 * 1024);
    let csv = format!("id,name,email,phone\n1,Ann,{huge},\n2,Bob,bob@x.com,\n");
    contacts_project(dir.path(), "fill_blanks", 500, csv.as_bytes(), "");
    assert!(cutover(dir.path(), &["run"], &[]).status.success());
    let item = queue_id(dir.path(), "1", 1);
    let out = cutover(dir.path(), &["queue", "show", &item], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(out.stdout.len() < 64 * 1024, "queue show printed {} bytes", out.stdout.len());
    assert!(text(&out).contains("10485760 characters in all"), "{}", &text(&out)[..2000.min(text(&out).len())]);
    let full = cutover(dir.path(), &["queue", "show", &item, "--full"], &[]);
    assert!(full.stdout.len() > 10 * 1024 * 1024, "--full prints every character");
}

/// An office's `sales@` is shared: found by it, a record whose name has nothing in common with
/// the destination record's is another person and waits for a decision, and so does one with an
/// initial (`I. Brown` may be Ivan or Irene), while the same person written otherwise
/// (`Brown, Ivan`, in capitals) is still merged.
#[test]
fn a_shared_office_email_never_merges_two_people_whose_names_share_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = "id,name,email,phone\n\
               1,Raj Patel,SALES@office.example,\n\
               2,\"Brown, Ivan\",sales@office.example,\n\
               3,I. Brown,Sales@Office.example,(646) 736-5950\n\
               4,Zoë Müller,info@shop.example,\n\
               5,Zoe Muller,INFO@shop.example,\n";
    let existing = "INSERT INTO contacts (id, name, email, phone) VALUES
                    (500, 'Ivan Brown', 'sales@office.example', '+16467365950');";
    contacts_project(dir.path(), "fill_blanks", 2, csv.as_bytes(), existing);
    let out = cutover(dir.path(), &["run"], &[]);
    let s = store(dir.path());
    let held: Vec<(String, String, String)> = s
        .prepare("SELECT source_id, reason, issues FROM queue ORDER BY source_id")
        .expect("q")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(held.len(), 2, "{held:?}\n{}", text(&out));
    assert_eq!((held[1].0.as_str(), held[1].1.as_str()), ("3", "conflicting_match"), "an initial: {held:?}");
    let (sid, reason, issues) = &held[0];
    assert_eq!((sid.as_str(), reason.as_str()), ("1", "conflicting_match"));
    assert!(issues.contains("Ivan Brown") && issues.contains("Raj Patel"), "names both people: {issues}");
    let d = dest(dir.path());
    assert_eq!(count(&d, "SELECT COUNT(*) FROM contacts WHERE name LIKE '%Patel%'"), 0, "Raj is nobody's member");
    assert_eq!(count(&d, "SELECT COUNT(*) FROM contacts WHERE email = 'sales@office.example'"), 1);
    assert_eq!(count(&d, "SELECT COUNT(*) FROM contacts WHERE email = 'info@shop.example'"), 1, "Zoë once");

    // The operator decides: Raj is a person of his own.
    let id: i64 = s.query_row("SELECT id FROM queue WHERE source_id = '1'", [], |r| r.get(0)).expect("item");
    let fix = cutover(dir.path(), &["queue", "fix", &id.to_string(), "@match=new"], &[]);
    assert!(fix.status.success(), "{}", text(&fix));
    let again = cutover(dir.path(), &["queue", "reprocess", "--all"], &[]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(
        count(&dest(dir.path()), "SELECT COUNT(*) FROM contacts WHERE name = 'Raj Patel'"),
        1,
        "{}",
        text(&again)
    );
}

/// Companies by their web address: `https://www.co30.example.com/` and `co30.example.com` are one
/// company, whichever side wrote the scheme or `www.`; a record whose domain is junk is held,
/// never created beside the others.
#[test]
fn companies_match_by_domain_however_the_address_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = r#"[project]
name = "domains"
halt_error_rate = 1.0
[source]
kind = "csv"
path = "source"
[destination]
kind = "sqlite"
path = "destination.db"
[objects.companies]
match = ["domain"]
merge = "fill_blanks"
[objects.companies.fields]
name = { from = "name" }
domain = { from = "website", transform = "domain" }
city = { from = "city" }
"#;
    std::fs::create_dir_all(dir.path().join("source")).expect("mkdir");
    std::fs::write(dir.path().join("cutover.toml"), toml).expect("toml");
    std::fs::write(
        dir.path().join("source/companies.csv"),
        "id,name,website,city\n\
         1,Co 30,https://www.co30.example.com/,Oslo\n\
         2,Co 40,CO40.example.com,Bergen\n\
         3,Co 50,http://co50.example.com/about,Molde\n\
         4,Co 50 again,co50.example.com,\n\
         5,Nobody,N/A,Oslo\n",
    )
    .expect("csv");
    let db = rusqlite::Connection::open(dir.path().join("destination.db")).expect("dest");
    db.execute_batch(
        "CREATE TABLE companies (id INTEGER PRIMARY KEY, name TEXT, domain TEXT, city TEXT);
         INSERT INTO companies VALUES (7, 'Co 30', 'co30.example.com', NULL), (8, 'Co 40', 'www.co40.example.com/', NULL);",
    )
    .expect("destination");
    drop(db);
    let out = cutover(dir.path(), &["run"], &[]);
    let d = dest(dir.path());
    assert_eq!(count(&d, "SELECT COUNT(*) FROM companies"), 3, "7, 8 and one Co 50: {}", text(&out));
    assert_eq!(count(&d, "SELECT COUNT(*) FROM companies WHERE id = 7 AND city = 'Oslo'"), 1);
    assert_eq!(count(&d, "SELECT COUNT(*) FROM companies WHERE id = 8 AND city = 'Bergen'"), 1);
    assert_eq!(count(&d, "SELECT COUNT(*) FROM companies WHERE domain = 'co50.example.com'"), 1);
    assert_eq!(
        outcomes(dir.path(), "companies"),
        [("created".into(), 1), ("merged".into(), 1), ("queued".into(), 1), ("updated".into(), 2)]
    );
    let held: String = store(dir.path()).query_row("SELECT issues FROM queue", [], |r| r.get(0)).expect("held");
    assert!(held.contains("'N/A' is not a web address or domain"), "{held}");
}

/// A household and an office share contact points, not identities: twins on one phone, spouses
/// on a family address, a father and his son of one name on the household phone (born 32 years
/// apart), colleagues of one surname at `contact@`. Each waits beside the other person; the same
/// person written otherwise (in capitals, the date in another form) is still found.
#[test]
fn families_and_colleagues_sharing_a_phone_or_an_email_stay_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = r#"[project]
name = "households"
halt_error_rate = 1.0
[source]
kind = "csv"
path = "source"
[destination]
kind = "sqlite"
path = "destination.db"
[objects.contacts]
match = ["email", "phone"]
merge = "fill_blanks"
[objects.contacts.fields]
firstname = { from = "first_name" }
lastname = { from = "last_name" }
email = { from = "email", transform = "email" }
phone = { from = "phone", transform = "phone" }
birthdate = { from = "birth_date", transform = "date" }
city = { from = "city" }
"#;
    std::fs::create_dir_all(dir.path().join("source")).expect("mkdir");
    std::fs::write(dir.path().join("cutover.toml"), toml).expect("toml");
    std::fs::write(
        dir.path().join("source/contacts.csv"),
        "id,first_name,last_name,email,phone,birth_date,city\n\
         e1,Anna,Kowalski,,+1 212 555 0199,1990-05-06,Boston\n\
         e2,Zoe,Kristensen,family12@mail.example,,1972-01-09,New York\n\
         e3,Henry,Brown,,(415) 730-0101,1983-07-19,Austin\n\
         e4,Müge,Smith,contact@litware.example,,1967-02-16,Bristol\n\
         e5,MARIA,KOWALSKI,maria.k@mail.example,,05/06/1990,Boston\n",
    )
    .expect("csv");
    let db = rusqlite::Connection::open(dir.path().join("destination.db")).expect("dest");
    db.execute_batch(
        "CREATE TABLE contacts (id INTEGER PRIMARY KEY, firstname TEXT, lastname TEXT, email TEXT, phone TEXT,
                                birthdate TEXT, city TEXT);
         INSERT INTO contacts VALUES
           (101, 'Maria', 'Kowalski', 'maria.k@mail.example', '212-555-0199', '1990-05-06', NULL),
           (102, 'John', 'Kristensen', 'family12@mail.example', '+16463881200', '1969-11-30', NULL),
           (103, 'Henry', 'Brown', 'henry.brown@example.org', '+14157300101', '1951-03-02', NULL),
           (104, 'Zoe', 'Smith', 'contact@litware.example', NULL, '1994-04-17', NULL);",
    )
    .expect("destination");
    drop(db);
    let out = cutover(dir.path(), &["run"], &[]);
    let held: Vec<(String, String, String)> = store(dir.path())
        .prepare("SELECT source_id, reason, json_extract(issues, '$[0].field') FROM queue ORDER BY source_id")
        .expect("q")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    let expected = [("e1", "firstname"), ("e2", "firstname"), ("e3", "birthdate"), ("e4", "firstname")]
        .map(|(s, f)| (s.to_string(), "conflicting_match".to_string(), f.to_string()));
    assert_eq!(held, expected, "{}", text(&out));
    let d = dest(dir.path());
    assert_eq!(count(&d, "SELECT COUNT(*) FROM contacts WHERE city IS NOT NULL"), 1, "only Maria gained a city");
    assert_eq!(count(&d, "SELECT COUNT(*) FROM contacts WHERE id = 101 AND city = 'Boston'"), 1);
    assert_eq!(count(&d, "SELECT COUNT(*) FROM contacts"), 4, "nobody created beside a held record");
}
