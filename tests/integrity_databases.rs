//! Paging on real servers: every keyset scan of the SQL connectors, over several pages of ids of
//! different lengths and types (integers 1..5,006 compare as numbers, not as text; text ids in
//! an order no collation can fold; repeated ids at a page boundary). Judged by the test's own
//! counts in the databases, not by what Cutover reports.

mod common;

use common::db::TestDb;
use common::{cutover, text};
use cutover::demo::databases::Dialect;
use std::path::Path;

fn project(dir: &Path, source: &str, destination: &str, batch: usize) {
    let toml = format!(
        r#"[project]
name = "paging"
batch_size = {batch}
halt_error_rate = 1.0

{source}

{destination}

[destination.types]
"contacts.email" = "email"

[objects.contacts]
source = "people"
match = ["email"]
merge = "fill_blanks"

[objects.contacts.fields]
name = {{ from = "name" }}
email = {{ from = "email", transform = "email" }}
"#
    );
    std::fs::write(dir.join("cutover.toml"), toml).expect("toml");
}

fn sqlite_destination(dir: &Path) -> &'static str {
    rusqlite::Connection::open(dir.join("destination.db"))
        .expect("dest")
        .execute_batch("CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, email TEXT);")
        .expect("table");
    "[destination]\nkind = \"sqlite\"\npath = \"destination.db\""
}

/// Outcome → count of the newest run, from the audit log.
fn outcomes(dir: &Path) -> Vec<(String, i64)> {
    let s = rusqlite::Connection::open(dir.join("cutover.state.db")).expect("store");
    let mut stmt = s
        .prepare(
            "SELECT outcome, COUNT(*) FROM audit WHERE run_id = (SELECT MAX(run_id) FROM audit)
             GROUP BY outcome ORDER BY outcome",
        )
        .expect("q");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("rows").collect::<Result<_, _>>().expect("rows")
}

fn id_type(dialect: Dialect, kind: &str) -> &'static str {
    match (dialect, kind) {
        (_, "integer") => "integer",
        (Dialect::Postgres, "numeric") => "numeric(20,0)",
        (Dialect::Mariadb, "numeric") => "decimal(20,0)",
        (Dialect::Postgres, "uuid") => "uuid",
        (Dialect::Mariadb, "uuid") => "char(36)",
        (Dialect::Postgres, _) => "text",
        (Dialect::Mariadb, _) => "varchar(40)",
    }
}

/// Ids of one kind, several pages of them, with lengths that sort differently as text.
fn ids(kind: &str) -> Vec<String> {
    match kind {
        "integer" | "numeric" => (1..=5006).map(|i| i.to_string()).collect(),
        "uuid" => {
            (1..=2100u64).map(|i| format!("{:08x}-0000-4000-8000-{:012x}", i * 2_654_435_761 % (1 << 32), i)).collect()
        }
        // Case and accents a case-insensitive collation folds together, and lengths 1..4.
        _ => {
            let mut v = Vec::new();
            for i in 0..700 {
                v.push(format!("k{i}"));
                v.push(format!("K{i}"));
                v.push(format!("é{i}"));
            }
            v.push("a".into());
            v.push("A".into());
            v.push("ä".into());
            v
        }
    }
}

async fn source_reads_every_id(dialect: Dialect, kind: &str) {
    let Some(db) = TestDb::create(dialect, &format!("src_{kind}")).await else { return };
    let collation = if dialect == Dialect::Mariadb && kind == "text" { " COLLATE utf8mb4_general_ci" } else { "" };
    db.sql(&format!("CREATE TABLE people (id {}{collation}, name text, email text)", id_type(dialect, kind))).await;
    let ids = ids(kind);
    let rows: Vec<String> =
        ids.iter().enumerate().map(|(n, i)| format!("('{i}', 'Person {n}', 'p{n}@example.com')")).collect();
    for chunk in rows.chunks(500) {
        db.sql(&format!("INSERT INTO people (id, name, email) VALUES {}", chunk.join(", "))).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let source = match dialect {
        Dialect::Postgres => "[source]\nkind = \"postgres\"\nurl_env = \"CUTOVER_SRC\"",
        Dialect::Mariadb => "[source]\nkind = \"mysql\"\nurl_env = \"CUTOVER_SRC\"",
    };
    project(dir.path(), source, sqlite_destination(dir.path()), 1000);
    let env = [("CUTOVER_SRC", db.url.as_str())];
    let out = cutover(dir.path(), &["run"], &env);
    assert_eq!(out.status.code(), Some(0), "{dialect:?} {kind}: {}", text(&out));
    assert_eq!(outcomes(dir.path()), [("created".to_string(), ids.len() as i64)], "{dialect:?} {kind}: {}", text(&out));
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_source_reads_every_id_of_every_type() {
    for kind in ["integer", "numeric", "uuid", "text"] {
        source_reads_every_id(Dialect::Postgres, kind).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_source_reads_every_id_of_every_type() {
    for kind in ["integer", "numeric", "uuid", "text"] {
        source_reads_every_id(Dialect::Mariadb, kind).await;
    }
}

/// More pre-existing destination rows than one scan page: each source person matches its own
/// row by email, none is created twice.
async fn destination_scan_finds_every_candidate(dialect: Dialect) {
    let Some(db) = TestDb::create(dialect, "scan").await else { return };
    let (table, id) = match dialect {
        Dialect::Postgres => ("contacts", "id serial PRIMARY KEY"),
        Dialect::Mariadb => ("contacts", "id integer AUTO_INCREMENT PRIMARY KEY"),
    };
    db.sql(&format!("CREATE TABLE {table} ({id}, name varchar(100), email varchar(100))")).await;
    let n = 5813;
    let rows: Vec<String> = (1..=n).map(|i| format!("('Existing {i}', 'e{i}@example.com')")).collect();
    for chunk in rows.chunks(1000) {
        db.sql(&format!("INSERT INTO {table} (name, email) VALUES {}", chunk.join(", "))).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("source")).expect("mkdir");
    let mut csv = String::from("id,name,email\n");
    for i in (1..=n).rev() {
        csv.push_str(&format!("s{i},Source {i},E{i}@Example.com\n"));
    }
    std::fs::write(dir.path().join("source/people.csv"), csv).expect("csv");
    let destination = match dialect {
        Dialect::Postgres => "[destination]\nkind = \"postgres\"\nurl_env = \"CUTOVER_DST\"",
        Dialect::Mariadb => "[destination]\nkind = \"mysql\"\nurl_env = \"CUTOVER_DST\"",
    };
    project(dir.path(), "[source]\nkind = \"csv\"\npath = \"source\"", destination, 500);
    let env = [("CUTOVER_DST", db.url.as_str())];
    let out = cutover(dir.path(), &["run"], &env);
    assert_eq!(out.status.code(), Some(0), "{dialect:?}: {}", text(&out));
    let total: i64 = db.text("SELECT CAST(COUNT(*) AS CHAR(20)) FROM contacts").await.trim().parse().expect("count");
    assert_eq!(total, n, "{dialect:?}: no pre-existing contact is created again\n{}", text(&out));
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_destination_with_several_pages_keeps_every_match_candidate() {
    destination_scan_finds_every_candidate(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_destination_with_several_pages_keeps_every_match_candidate() {
    destination_scan_finds_every_candidate(Dialect::Mariadb).await;
}

/// Every row of `contacts`, every column, in id order, as one text (the test's own reading).
async fn contacts_rows(db: &TestDb) -> String {
    match db.dialect {
        Dialect::Postgres => {
            db.text("SELECT COALESCE(string_agg(CONCAT_WS('|', id, COALESCE(name, '<null>'), email), ',' ORDER BY id), '') FROM contacts")
                .await
        }
        Dialect::Mariadb => {
            db.text(
                "SELECT COALESCE(GROUP_CONCAT(CONCAT_WS('|', id, COALESCE(name, '<null>'), email) ORDER BY id SEPARATOR ','), '') FROM contacts",
            )
            .await
        }
    }
}

/// A clean run with two source records on one pre-existing row (one fills its name, the other
/// sits six hundred rows later), in-file pairs and exact repeats, then its rollback: the table
/// is row for row what it was, and nothing is reported changed since.
async fn rollback_of_a_clean_run_is_exact(dialect: Dialect) {
    let Some(db) = TestDb::create(dialect, "rollback").await else { return };
    let id = match dialect {
        Dialect::Postgres => "id serial PRIMARY KEY",
        Dialect::Mariadb => "id integer AUTO_INCREMENT PRIMARY KEY",
    };
    db.sql(&format!("CREATE TABLE contacts ({id}, name varchar(100), email varchar(100))")).await;
    // An empty name, not a missing one: the rollback puts back '' where '' was.
    db.sql("INSERT INTO contacts (name, email) VALUES ('', 'ann@example.com'), ('Keep Me', 'keep@example.com')").await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("source")).expect("mkdir");
    let mut csv = String::from("id,name,email\n1,Ann Able,ann@example.com\n");
    for i in 0..600 {
        csv.push_str(&format!("f{i},Filler {i},filler{i}@example.com\n"));
    }
    csv.push_str(
        "2,,ANN@example.com\n3,Bob,bob@example.com\n4,,bob@example.com\n5,Cy,cy@example.com\n5,Cy,cy@example.com\n",
    );
    std::fs::write(dir.path().join("source/people.csv"), csv).expect("csv");
    let destination = match dialect {
        Dialect::Postgres => "[destination]\nkind = \"postgres\"\nurl_env = \"CUTOVER_DST\"",
        Dialect::Mariadb => "[destination]\nkind = \"mysql\"\nurl_env = \"CUTOVER_DST\"",
    };
    project(dir.path(), "[source]\nkind = \"csv\"\npath = \"source\"", destination, 2);
    let env = [("CUTOVER_DST", db.url.as_str())];
    let before = contacts_rows(&db).await;
    let out = cutover(dir.path(), &["run"], &env);
    assert_eq!(
        outcomes(dir.path()),
        [("created".to_string(), 602), ("merged".into(), 2), ("skipped".into(), 1), ("updated".into(), 1)],
        "{dialect:?}: {}",
        text(&out)
    );
    let out = cutover(dir.path(), &["rollback", "1"], &env);
    assert_eq!(out.status.code(), Some(0), "{dialect:?}: {}", text(&out));
    assert_eq!(contacts_rows(&db).await, before, "{dialect:?}: row for row as before the run");
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_back_a_clean_run_into_postgresql_is_exact() {
    rollback_of_a_clean_run_is_exact(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_back_a_clean_run_into_mariadb_is_exact() {
    rollback_of_a_clean_run_is_exact(Dialect::Mariadb).await;
}
