//! PostgreSQL as a source, against a real server (`.ci/run` starts one on 127.0.0.1 and sets
//! CUTOVER_TEST_PG_URL; the README says how to start the same locally). Without the variable the
//! test says so in one line and passes as skipped — except under CI=true, where it fails.
//! Each test makes its own database and drops it after.

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use std::path::Path;
use std::process::Command;

fn server() -> Option<String> {
    match std::env::var("CUTOVER_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but CUTOVER_TEST_PG_URL is not set: .ci/run starts PostgreSQL and sets it")
        }
        _ => {
            eprintln!("skipped: no PostgreSQL server (set CUTOVER_TEST_PG_URL, see the README)");
            None
        }
    }
}

/// The server URL with another database.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let cut = base.rfind('/').filter(|&i| i > "postgres://".len()).unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..cut]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Loads each CSV of the demo's source folder into a table of text columns.
async fn load_csvs(conn: &mut PgConnection, folder: &Path) {
    for entry in std::fs::read_dir(folder).expect("source folder") {
        let path = entry.expect("entry").path();
        let table = path.file_stem().and_then(|s| s.to_str()).expect("name").to_string();
        let data = std::fs::read(&path).expect("csv");
        let data = data.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&data).to_vec();
        let header = String::from_utf8_lossy(data.split(|b| *b == b'\n').next().expect("header")).trim().to_string();
        let cols: Vec<String> = header.split(',').map(|c| format!("\"{}\" text", c.trim())).collect();
        sqlx::query(&format!("CREATE TABLE \"{table}\" ({})", cols.join(", ")))
            .execute(&mut *conn)
            .await
            .expect("table");
        let mut copy = conn
            .copy_in_raw(&format!("COPY \"{table}\" FROM STDIN WITH (FORMAT csv, HEADER true)"))
            .await
            .expect("copy");
        copy.send(data).await.expect("send");
        copy.finish().await.expect("finish");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_migrates_from_a_postgresql_source() {
    let Some(url) = server() else { return };
    let db = format!("cutover_test_{}", std::process::id());
    let mut admin = PgConnection::connect(&url).await.expect("connect to the test server");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db}")).execute(&mut admin).await.expect("drop");
    sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut admin).await.expect("create");
    let source_url = with_database(&url, &db);

    let dir = tempfile::tempdir().expect("tempdir");
    let demo = dir.path().join("demo");
    cutover::demo::setup(&demo).expect("demo");
    {
        let mut conn = PgConnection::connect(&source_url).await.expect("connect to the test database");
        load_csvs(&mut conn, &demo.join("source")).await;
        // A row without an id is reported, never skipped.
        sqlx::query("INSERT INTO deals (id, title) VALUES (NULL, 'no id')").execute(&mut conn).await.expect("row");
        conn.close().await.expect("close");
    }
    let toml = std::fs::read_to_string(demo.join("cutover.toml")).expect("toml").replace(
        "kind = \"csv\"\npath = \"source\"               # one file per object: source/persons.csv holds \"persons\"",
        "kind = \"postgres\"\nurl_env = \"CUTOVER_SOURCE_URL\"",
    );
    assert!(toml.contains("kind = \"postgres\""), "the demo's [source] changed: update this test");
    std::fs::write(demo.join("cutover.toml"), toml).expect("toml");

    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(args)
            .current_dir(&demo)
            .env("CUTOVER_LOG", dir.path().join("cutover.log"))
            .env("CUTOVER_SOURCE_URL", &source_url)
            .output()
            .expect("the binary runs")
    };
    let out = run(&["run"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    for line in [
        "companies         400       400      400        0       0       0        0       0",
        "contacts         4200      4200     3366      800       0      34        0       0",
        "deals            1801      1801     1660        0       0     140        0       1",
        "notes            6000      6000     5932        0       0      68        0       0",
    ] {
        assert!(stdout.contains(line), "missing '{line}':\n{stdout}\n{stderr}");
    }
    assert!(!stdout.contains(&source_url) && !stderr.contains(&source_url), "the URL is a secret");
    // It reconciles like the CSV demo: only the held records (and the row without an id) are open.
    let out = run(&["reconcile", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    let keys: Vec<&str> =
        report["discrepancies"].as_array().expect("list").iter().filter_map(|d| d["key"].as_str()).collect();
    assert_eq!(
        keys,
        [
            "contacts/queued/owner_not_provisioned",
            "deals/failed",
            "deals/queued/no_translation",
            "notes/queued/parent_not_written"
        ]
    );

    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)")).execute(&mut admin).await.expect("drop");
}
