//! The database connectors against real servers: PostgreSQL and MariaDB on 127.0.0.1, as a CI
//! service step provides them (`.ci/run` starts both and sets CUTOVER_TEST_PG_URL and
//! CUTOVER_TEST_MYSQL_URL; the README says how to start the same locally). Without a URL a test
//! says so in one line and passes as skipped — except under CI=true, where that is a failure.
//! Each test makes its own database and drops it at the end.
//!
//! Everything runs through the real binary, as an operator would.

mod common;

use common::db::TestDb;
use common::{DEMO_COUNTS, DEMO_QUEUE, cutover, reconcile_keys};
use cutover::demo::databases::{Dialect, destination_script};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use std::path::Path;

/// `cutover demo --into DIALECT`: the demo's numbers, a reconciliation that finds only the held
/// records, markers for every record created, and a rollback that leaves the database as it was.
async fn demo_into(dialect: Dialect) {
    let Some(db) = TestDb::create(dialect, "demo").await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [("CUTOVER_DEMO_URL", db.url.as_str())];
    let kind = match dialect {
        Dialect::Postgres => "postgres",
        Dialect::Mariadb => "mariadb",
    };
    let out = cutover(dir.path(), &["demo", "--dir", "demo", "--into", kind, "--setup-only"], &env);
    assert!(out.status.success(), "{}", common::text(&out));
    let before = db.contacts_fingerprint().await;
    let demo = dir.path().join("demo");

    let out = cutover(&demo, &["run"], &env);
    let text = common::text(&out);
    for line in DEMO_COUNTS {
        assert!(text.contains(line), "{dialect:?}: missing '{line}':\n{text}");
    }
    assert!(!text.contains(&db.url), "the URL is a secret");
    assert_eq!(db.count("contacts").await, 800 + 3366);
    assert_eq!(db.count("cutover_marks").await, 400 + 3366 + 1660 + 5932, "every created record is marked");
    assert_eq!(reconcile_keys(&demo, &env), DEMO_QUEUE, "{dialect:?}");

    // Rolled back, the destination is what it was: created records gone, updated ones restored.
    let out = cutover(&demo, &["rollback", "1"], &env);
    assert!(out.status.success(), "{}", common::text(&out));
    for table in ["companies", "deals", "notes", "cutover_marks"] {
        assert_eq!(db.count(table).await, 0, "{dialect:?} {table}");
    }
    assert_eq!(db.count("contacts").await, 800);
    assert_eq!(db.contacts_fingerprint().await, before, "{dialect:?}: the 800 contacts are restored exactly");
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_into_postgresql_reconciles_and_rolls_back() {
    demo_into(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_into_mariadb_reconciles_and_rolls_back() {
    demo_into(Dialect::Mariadb).await;
}

/// A row the database rejects (a CHECK constraint Cutover cannot know about) fails on its own,
/// with the database's message, and the rest of its batch is written.
async fn rejected_rows_fail_alone(dialect: Dialect) {
    let Some(db) = TestDb::create(dialect, "reject").await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [("CUTOVER_DEMO_URL", db.url.as_str())];
    let kind = if dialect == Dialect::Postgres { "postgres" } else { "mariadb" };
    let out = cutover(dir.path(), &["demo", "--dir", "demo", "--into", kind, "--setup-only"], &env);
    assert!(out.status.success(), "{}", common::text(&out));
    db.sql(&format!("ALTER TABLE {} ADD CONSTRAINT no_wayne CHECK (name NOT LIKE 'Wayne%')", db.table("companies")))
        .await;
    let demo = dir.path().join("demo");
    let out = cutover(&demo, &["run"], &env);
    let text = common::text(&out);
    assert!(
        text.contains("companies         400       400      380        0         0       0       0        0      20"),
        "{text}"
    );
    assert_eq!(db.count("companies").await, 380);
    let marked =
        format!("SELECT CAST(COUNT(*) AS CHAR(20)) FROM {} WHERE object = 'companies'", db.table("cutover_marks"));
    assert_eq!(db.text(&marked).await.trim(), "380", "only the rows written are marked");
    let out =
        cutover(&demo, &["export", "audit", "--format", "jsonl", "--object", "companies", "--status", "failed"], &env);
    let audit = String::from_utf8_lossy(&out.stdout);
    assert_eq!(audit.lines().count(), 20, "{audit}");
    assert!(audit.lines().all(|l| l.contains("no_wayne")), "the database's own message: {audit}");
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_postgresql_rejects_fails_alone() {
    rejected_rows_fail_alone(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_mariadb_rejects_fails_alone() {
    rejected_rows_fail_alone(Dialect::Mariadb).await;
}

/// Loads each CSV of the demo's source folder into a PostgreSQL table of text columns.
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
    let Some(db) = TestDb::create(Dialect::Postgres, "source").await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = dir.path().join("demo");
    cutover::demo::setup(&demo).expect("demo");
    {
        let mut conn = PgConnection::connect(&db.url).await.expect("connect to the test database");
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
    let env = [("CUTOVER_SOURCE_URL", db.url.as_str())];

    let text = common::text(&cutover(&demo, &["run"], &env));
    for line in [
        DEMO_COUNTS[0],
        DEMO_COUNTS[1],
        "deals            1801      1801     1660        0         0       0     140        0       1",
        DEMO_COUNTS[3],
    ] {
        assert!(text.contains(line), "missing '{line}':\n{text}");
    }
    assert!(!text.contains(&db.url), "the URL is a secret");
    // It reconciles like the CSV demo: only the held records (and the row without an id) are open.
    assert_eq!(reconcile_keys(&demo, &env), [DEMO_QUEUE[0], "deals/failed", DEMO_QUEUE[1], DEMO_QUEUE[2]]);
    db.drop().await;
}

/// A project copying the demo's HubSpot-shaped tables from one database to another as they are:
/// owners by id, parents remapped, stages checked against the destination's picklists. One
/// object of the source is read through a SQL query instead of its table.
fn hop_project(source: (&str, Option<&str>), destination: (&str, Option<&str>), query: (&str, &str)) -> String {
    let schema = |s: Option<&str>| s.map(|s| format!("schema = \"{s}\"\n")).unwrap_or_default();
    format!(
        r#"[project]
name = "Round trip"
batch_size = 500

[source]
kind = "{}"
url_env = "CUTOVER_HOP_SOURCE"
{}
[source.queries]
{} = "{}"

[destination]
kind = "{}"
url_env = "CUTOVER_HOP_DESTINATION"
{}owners = {{ table = "owners", id = "id", name = ["first_name", "last_name"], email = "email" }}

[destination.picklists]
"deals.dealstage" = {{ table = "pipeline_stages", column = "id" }}
"deals.pipeline" = {{ table = "pipelines", column = "id" }}

[destination.types]
"deals.amount" = "decimal"
"contacts.email" = "email"

[objects.companies.fields]
name = {{ from = "name" }}
domain = {{ from = "domain" }}
city = {{ from = "city" }}
country = {{ from = "country" }}
industry = {{ from = "industry" }}
hubspot_owner_id = {{ from = "hubspot_owner_id", transform = "owner" }}
createdate = {{ from = "createdate", transform = "datetime" }}

[objects.contacts.fields]
firstname = {{ from = "firstname" }}
lastname = {{ from = "lastname" }}
email = {{ from = "email", transform = "email" }}
phone = {{ from = "phone" }}
associatedcompanyid = {{ from = "associatedcompanyid", parent = "companies" }}
hubspot_owner_id = {{ from = "hubspot_owner_id", transform = "owner" }}
lifecyclestage = {{ from = "lifecyclestage" }}
createdate = {{ from = "createdate", transform = "datetime" }}

[objects.deals.fields]
dealname = {{ from = "dealname" }}
amount = {{ from = "amount", transform = "decimal" }}
deal_currency_code = {{ from = "deal_currency_code" }}
pipeline = {{ from = "pipeline" }}
dealstage = {{ from = "dealstage" }}
closedate = {{ from = "closedate", transform = "date" }}
associatedcompanyid = {{ from = "associatedcompanyid", parent = "companies" }}
hubspot_owner_id = {{ from = "hubspot_owner_id", transform = "owner" }}
createdate = {{ from = "createdate", transform = "datetime" }}

[objects.notes.fields]
hs_note_body = {{ from = "hs_note_body" }}
hs_timestamp = {{ from = "hs_timestamp", transform = "datetime" }}
associatedcontactid = {{ from = "associatedcontactid", parent = "contacts" }}
hubspot_owner_id = {{ from = "hubspot_owner_id", transform = "owner" }}
"#,
        source.0,
        schema(source.1),
        query.0,
        query.1,
        destination.0,
        schema(destination.1),
    )
}

/// The demo CSV → PostgreSQL → MariaDB → PostgreSQL, balanced at every hop: every record of
/// each hop's source written, read back identical, distributions and sums equal, no orphans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_round_trips_csv_postgresql_mariadb_postgresql_balanced_at_each_hop() {
    let Some(pg) = TestDb::create(Dialect::Postgres, "trip").await else { return };
    let Some(maria) = TestDb::create(Dialect::Mariadb, "trip").await else { return };
    let dir = tempfile::tempdir().expect("tempdir");

    // Hop 1: the demo into PostgreSQL, with the queue's causes fixed up front so it balances.
    let env = [("CUTOVER_DEMO_URL", pg.url.as_str())];
    let out = cutover(dir.path(), &["demo", "--dir", "hop1", "--into", "postgres", "--setup-only"], &env);
    assert!(out.status.success(), "{}", common::text(&out));
    let hop1 = dir.path().join("hop1");
    let toml = std::fs::read_to_string(hop1.join("cutover.toml")).expect("toml");
    let toml = toml
        .replace(
            "# \"Name in the export\" = \"destination user (email, name or id)\"",
            "\"Dana Whitfield\" = \"sam.taylor@northwind.example\"",
        )
        .replace("\"Lost\" = \"closedlost\"", "\"Lost\" = \"closedlost\"\n\"Partner Referral\" = \"qualifiedtobuy\"");
    std::fs::write(hop1.join("cutover.toml"), toml).expect("toml");
    let text = common::text(&cutover(&hop1, &["run"], &env));
    assert!(text.contains("contacts         4200      4200     3400      800         0       0       0"), "{text}");
    assert_eq!(reconcile_keys(&hop1, &env), Vec::<String>::new(), "hop 1 balances");

    // Hop 2: PostgreSQL → MariaDB (empty tables: owners and stages only); deals through a query.
    maria.sql(&destination_script(Dialect::Mariadb, false).expect("script")).await;
    let hop2 = dir.path().join("hop2");
    std::fs::create_dir_all(&hop2).expect("mkdir");
    let toml = hop_project(
        ("postgres", Some("cutover_demo")),
        ("mysql", None),
        ("deals", "SELECT * FROM cutover_demo.deals WHERE amount IS NOT NULL OR amount IS NULL"),
    );
    std::fs::write(hop2.join("cutover.toml"), toml).expect("toml");
    let env = [("CUTOVER_HOP_SOURCE", pg.url.as_str()), ("CUTOVER_HOP_DESTINATION", maria.url.as_str())];
    let out = cutover(&hop2, &["check"], &env);
    assert!(out.status.success(), "{}", common::text(&out));
    let text = common::text(&cutover(&hop2, &["run"], &env));
    for line in [
        "companies         400       400      400        0         0       0       0        0       0",
        "contacts         4200      4200     4200        0         0       0       0        0       0",
        "deals            1800      1800     1800        0         0       0       0        0       0",
        "notes            6000      6000     6000        0         0       0       0        0       0",
    ] {
        assert!(text.contains(line), "hop 2: missing '{line}':\n{text}");
    }
    assert_eq!(reconcile_keys(&hop2, &env), Vec::<String>::new(), "hop 2 balances");

    // Hop 3: MariaDB → PostgreSQL (a second schema); notes through a query.
    pg.sql(&format!(
        "CREATE SCHEMA hop3; SET search_path TO hop3; {}",
        destination_script(Dialect::Postgres, false).expect("script")
    ))
    .await;
    let hop3 = dir.path().join("hop3");
    std::fs::create_dir_all(&hop3).expect("mkdir");
    let toml = hop_project(("mysql", None), ("postgres", Some("hop3")), ("notes", "SELECT * FROM notes"));
    std::fs::write(hop3.join("cutover.toml"), toml).expect("toml");
    let env = [("CUTOVER_HOP_SOURCE", maria.url.as_str()), ("CUTOVER_HOP_DESTINATION", pg.url.as_str())];
    let text = common::text(&cutover(&hop3, &["run"], &env));
    assert!(
        text.contains("notes            6000      6000     6000        0         0       0       0        0       0"),
        "{text}"
    );
    assert_eq!(reconcile_keys(&hop3, &env), Vec::<String>::new(), "hop 3 balances");

    // Hop 3 holds what hop 1 wrote, value for value (ids are the destination's own).
    let amounts = |schema: &str| format!("SELECT CAST(SUM(CAST(amount AS numeric)) AS text) FROM {schema}.deals");
    assert_eq!(pg.text(&amounts("cutover_demo")).await, pg.text(&amounts("hop3")).await);
    pg.drop().await;
    maria.drop().await;
}
