//! Crash safety on every destination, on data with pre-existing matches, merges, in-file
//! duplicates, repeated ids and people sharing a phone: the real binary is killed with SIGKILL
//! at random points (by how many records the store has committed, then a random moment more),
//! resumed after each, and must end exactly as an uninterrupted run on an identical destination —
//! the same outcome counts, the same destination rows. Also for kills during a reprocess, a delta
//! and a rollback.
//!
//! The destination is judged by the test's own reading of it: every row of every migrated table
//! (a record Cutover created is named by its marker, not its id, since a killed attempt may use up
//! ids of a sequence), with parent references named the same way.
//! `CUTOVER_CRASH_SEED` replays a seed; `CUTOVER_CRASH_KILLS` sets how many kills a scenario makes.

mod common;
#[path = "common/hubspot_server.rs"]
mod hubspot_server;
#[path = "common/pipedrive_server.rs"]
mod pipedrive_server;

use common::db::TestDb;
use cutover::demo::databases::Dialect;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TABLES: [(&str, &[&str]); 4] = [
    ("companies", &["name", "domain", "city", "country", "industry", "hubspot_owner_id", "createdate"]),
    (
        "contacts",
        &[
            "firstname",
            "lastname",
            "email",
            "phone",
            "associatedcompanyid",
            "hubspot_owner_id",
            "lifecyclestage",
            "createdate",
        ],
    ),
    (
        "deals",
        &[
            "dealname",
            "amount",
            "deal_currency_code",
            "pipeline",
            "dealstage",
            "closedate",
            "associatedcompanyid",
            "hubspot_owner_id",
            "createdate",
        ],
    ),
    ("notes", &["hs_note_body", "hs_timestamp", "associatedcontactid", "hubspot_owner_id"]),
];

/// Which table a reference column points into.
fn points_at(column: &str) -> Option<&'static str> {
    match column {
        "associatedcompanyid" => Some("companies"),
        "associatedcontactid" => Some("contacts"),
        _ => None,
    }
}

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn seed() -> u64 {
    std::env::var("CUTOVER_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_c0de_u64)
}

fn kills(default: usize) -> usize {
    std::env::var("CUTOVER_CRASH_KILLS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// The demo's export made messier: people sharing an email with an earlier person (merged into
/// one contact), people sharing a phone but not an email (two people: held), second rows under an
/// id (held), exact repeats of a row (skipped) — and smaller batches, for more checkpoints.
fn messy_demo(project: &Path) {
    let persons = project.join("source/persons.csv");
    let text = std::fs::read_to_string(&persons).expect("persons");
    let rows: Vec<Vec<String>> = text.lines().skip(1).map(|l| l.split(',').map(String::from).collect()).collect();
    // Each extra row goes a while after the row it echoes, spread through the file.
    let mut extra: Vec<(usize, String)> = Vec::new();
    for (n, (i, r)) in rows.iter().enumerate().step_by(70).enumerate() {
        // An earlier person again under another id: the same email, the name in capitals, no
        // phone: merged into that contact (a stranger's name on it would be held).
        let name = r[1].trim().to_uppercase();
        let row = format!("{},{name},{},,{},{},,2024-02-0{},3", 90_000 + n, r[2].trim(), r[4], r[5], n % 9 + 1);
        extra.push((i + 23, row));
    }
    for (n, (i, r)) in rows.iter().enumerate().skip(35).step_by(140).enumerate() {
        // Same phone, another person's email: two people, held.
        let row =
            format!("{},Shared Phone {n},shared.phone{n}@example.com,{},,{},,2024-03-01,3", 91_000 + n, r[3], r[5]);
        extra.push((i + 41, row));
    }
    for (i, r) in rows.iter().enumerate().skip(11).step_by(400) {
        extra.push((i + 7, r.join(",")));
        extra.push((
            i + 300,
            format!("{},Someone Else,someone.else.{}@example.com,,,{},,2024-04-01,3", r[0], r[0], r[5]),
        ));
    }
    extra.sort();
    let mut out = vec![text.lines().next().unwrap_or_default().to_string()];
    let mut pending = extra.into_iter().peekable();
    for (i, line) in text.lines().skip(1).enumerate() {
        out.push(line.to_string());
        while let Some((_, row)) = pending.next_if(|(at, _)| *at <= i) {
            out.push(row);
        }
    }
    out.extend(pending.map(|(_, row)| row));
    std::fs::write(&persons, out.join("\n") + "\n").expect("persons");
    let toml = project.join("cutover.toml");
    let t = std::fs::read_to_string(&toml).expect("toml").replace("batch_size = 500", "batch_size = 150");
    std::fs::write(&toml, t).expect("toml");
}

/// One destination the scenarios run against.
enum Dest {
    Sqlite,
    Sql(TestDb),
    Hubspot(hubspot_server::Server),
    Pipedrive(pipedrive_server::Server),
}

/// The Pipedrive custom field holding each created record's source id, by its name (each
/// entity has its own, under its own key).
const MARKER: &str = pipedrive_server::MARKER_NAME;

/// A project folder pointed at a fresh destination, with the environment its binary needs.
struct Subject {
    project: PathBuf,
    env: Vec<(String, String)>,
    dest: Dest,
}

async fn subject(kind: &str, dir: &Path, name: &str, scenario: &str) -> Option<Subject> {
    let project = dir.join(name);
    let (dest, env) = match kind {
        "sqlite" => {
            cutover::demo::setup(&project).expect("demo");
            (Dest::Sqlite, Vec::new())
        }
        "postgres" | "mariadb" => {
            let dialect = if kind == "postgres" { Dialect::Postgres } else { Dialect::Mariadb };
            let db = TestDb::create(dialect, &format!("crash_{scenario}_{name}")).await?;
            let env = vec![("CUTOVER_DEMO_URL".to_string(), db.url.clone())];
            let args = ["demo", "--dir", name, "--into", kind, "--setup-only"];
            let out = common::cutover(dir, &args, &[("CUTOVER_DEMO_URL", db.url.as_str())]);
            assert!(out.status.success(), "{}", common::text(&out));
            (Dest::Sql(db), env)
        }
        "pipedrive" => {
            // 5% of creates carried out and their answers lost; new records reach the search
            // index a second late.
            let rules = pipedrive_server::Rules {
                lose_rate: 0.05,
                search_lag: std::time::Duration::from_secs(1),
                ..pipedrive_server::Rules::default()
            };
            let server = pipedrive_server::Server::start(rules).await;
            cutover::demo::setup(&project).expect("demo");
            pipedrive_server::seed_demo(&server, &project);
            // The account starts empty but for its users and stages.
            for c in server.lock().collections.values_mut() {
                c.clear();
            }
            let stages = pipedrive_server::stage_translations(&server);
            let toml = pipedrive_server::demo_into_pipedrive(&server.url, &stages, MARKER, true).replace(
                "[objects.persons]\n",
                "[objects.persons]\nmatch = [\"email\", \"phone\"]\nmerge = \"fill_blanks\"\n",
            );
            std::fs::write(project.join("cutover.toml"), toml).expect("toml");
            (
                Dest::Pipedrive(server),
                vec![("CUTOVER_PIPEDRIVE_TOKEN".to_string(), pipedrive_server::TOKEN.to_string())],
            )
        }
        _ => {
            let server = hubspot_server::Server::start(hubspot_server::Rules::default()).await;
            cutover::demo::setup(&project).expect("demo");
            hubspot_server::seed_demo(&mut server.lock(), &project.join("destination.db"));
            point_at_hubspot(&project, &server.url);
            (Dest::Hubspot(server), vec![("CUTOVER_HUBSPOT_TOKEN".to_string(), hubspot_server::TOKEN.to_string())])
        }
    };
    messy_demo(&project);
    Some(Subject { project, env, dest })
}

fn point_at_hubspot(project: &Path, url: &str) {
    let toml = std::fs::read_to_string(project.join("cutover.toml")).expect("toml");
    let start = toml.find("[destination]").expect("[destination]");
    let end = toml.find("[destination.types]").expect("[destination.types]");
    let destination = format!(
        "[destination]\nkind = \"hubspot\"\ntoken_env = \"CUTOVER_HUBSPOT_TOKEN\"\nbase_url = \"{url}\"\n\
         rate_limit = 100000\nsource_id_property = \"cutover_source_id\"\n\n[destination.associations]\n\
         \"contacts.associatedcompanyid\" = {{ to = \"companies\", type_id = 279 }}\n\
         \"deals.associatedcompanyid\" = {{ to = \"companies\", type_id = 5 }}\n\
         \"notes.associatedcontactid\" = {{ to = \"contacts\", type_id = 202 }}\n\n"
    );
    let toml =
        format!("{}{destination}{}", &toml[..start], &toml[end..]).replace("\"contacts.phone\" = \"phone\"\n", "");
    std::fs::write(project.join("cutover.toml"), toml).expect("toml");
}

impl Subject {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cutover"));
        c.args(args)
            .current_dir(&self.project)
            .env("CUTOVER_LOG", self.project.join("cutover.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        common::cutover(&self.project, args, &env)
    }

    fn store(&self) -> Option<rusqlite::Connection> {
        rusqlite::Connection::open_with_flags(
            self.project.join("cutover.state.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .ok()
    }

    /// Committed audit rows: how far the store has come.
    fn progress(&self) -> i64 {
        self.store().and_then(|c| c.query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0)).ok()).unwrap_or(0)
    }

    fn newest_state(&self, kind: &str) -> Option<String> {
        self.store().and_then(|c| {
            c.query_row(&format!("SELECT state FROM runs WHERE kind = '{kind}' ORDER BY id DESC LIMIT 1"), [], |r| {
                r.get(0)
            })
            .ok()
        })
    }

    /// Per object of the newest run of `kind`: the outcome counters.
    fn counts(&self, kind: &str) -> Vec<(String, [i64; 8])> {
        let c = self.store().expect("store");
        let mut stmt = c
            .prepare(&format!(
                "SELECT object, extracted, created, updated, unchanged, merged, queued, skipped, failed FROM run_objects
                 WHERE run_id = (SELECT MAX(id) FROM runs WHERE kind = '{kind}') ORDER BY position"
            ))
            .expect("counts");
        stmt.query_map([], |r| {
            let mut n = [0i64; 8];
            for (i, slot) in n.iter_mut().enumerate() {
                *slot = r.get(i + 1)?;
            }
            Ok((r.get(0)?, n))
        })
        .expect("rows")
        .collect::<rusqlite::Result<_>>()
        .expect("counts")
    }

    /// Every migrated row, canonical: created records named by their marker, references too.
    async fn rows(&self) -> Vec<String> {
        match &self.dest {
            Dest::Hubspot(server) => hubspot_rows(server),
            Dest::Pipedrive(server) => pipedrive_rows(server),
            _ => {
                let mut raw: HashMap<&str, Vec<Vec<Option<String>>>> = HashMap::new();
                for (table, cols) in TABLES {
                    raw.insert(table, self.table(table, cols).await);
                }
                let marks = self.marks().await;
                canonical(&raw, &marks)
            }
        }
    }

    async fn table(&self, table: &str, cols: &[&str]) -> Vec<Vec<Option<String>>> {
        let list = std::iter::once("id").chain(cols.iter().copied()).collect::<Vec<_>>();
        match &self.dest {
            Dest::Sqlite => {
                let c = rusqlite::Connection::open(self.project.join("destination.db")).expect("dest");
                let sql = format!("SELECT {} FROM {table}", list.join(", "));
                let mut stmt = c.prepare(&sql).expect("select");
                stmt.query_map([], |r| {
                    (0..list.len()).map(|i| r.get_ref(i).map(|v| text_of(v))).collect::<rusqlite::Result<Vec<_>>>()
                })
                .expect("rows")
                .collect::<rusqlite::Result<_>>()
                .expect("rows")
            }
            Dest::Sql(db) => db.rows(&db.table(table), &list).await,
            Dest::Hubspot(_) | Dest::Pipedrive(_) => Vec::new(),
        }
    }

    /// Destination id → source id of every record Cutover created, per table.
    async fn marks(&self) -> HashMap<(String, String), String> {
        let rows: Vec<Vec<Option<String>>> = match &self.dest {
            Dest::Sqlite => {
                let c = rusqlite::Connection::open(self.project.join("destination.db")).expect("dest");
                let Ok(mut stmt) = c.prepare("SELECT object, dest_id, source_id FROM cutover_marks") else {
                    return HashMap::new();
                };
                stmt.query_map([], |r| (0..3).map(|i| r.get_ref(i).map(|v| text_of(v))).collect())
                    .expect("marks")
                    .collect::<rusqlite::Result<_>>()
                    .expect("marks")
            }
            Dest::Sql(db) => db.rows_if_any(&db.table("cutover_marks"), &["object", "dest_id", "source_id"]).await,
            Dest::Hubspot(_) | Dest::Pipedrive(_) => Vec::new(),
        };
        rows.into_iter().filter_map(|r| Some(((r[0].clone()?, r[1].clone()?), r[2].clone()?))).collect()
    }
}

fn text_of(v: rusqlite::types::ValueRef<'_>) -> Option<String> {
    match v {
        rusqlite::types::ValueRef::Null => None,
        rusqlite::types::ValueRef::Integer(i) => Some(i.to_string()),
        rusqlite::types::ValueRef::Real(f) => Some(f.to_string()),
        rusqlite::types::ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        rusqlite::types::ValueRef::Blob(b) => Some(format!("{b:?}")),
    }
}

/// Rows as lines, ids replaced by what names the record whatever ids a database handed out.
fn canonical(raw: &HashMap<&str, Vec<Vec<Option<String>>>>, marks: &HashMap<(String, String), String>) -> Vec<String> {
    let name = |table: &str, id: &str| match marks.get(&(table.to_string(), id.to_string())) {
        Some(sid) => format!("created:{sid}"),
        None => format!("existing:{id}"),
    };
    let mut out = Vec::new();
    for (table, cols) in TABLES {
        for row in raw.get(table).into_iter().flatten() {
            let mut line = vec![table.to_string(), name(table, row[0].as_deref().unwrap_or_default())];
            for (col, v) in cols.iter().zip(&row[1..]) {
                line.push(match (points_at(col), v) {
                    (Some(parent), Some(id)) => name(parent, id),
                    (_, v) => v.clone().unwrap_or_else(|| "∅".into()),
                });
            }
            out.push(line.join("|"));
        }
    }
    out.sort();
    out
}

fn hubspot_rows(server: &hubspot_server::Server) -> Vec<String> {
    let s = server.lock();
    let mut names: HashMap<(String, u64), String> = HashMap::new();
    for (object, o) in &s.objects {
        for (id, props) in &o.records {
            let n = match props.get("cutover_source_id").and_then(|v| v.as_str()) {
                Some(sid) => format!("created:{sid}"),
                None => format!("existing:{id}"),
            };
            names.insert((object.clone(), *id), n);
        }
    }
    let mut out = Vec::new();
    for (object, o) in &s.objects {
        for (id, props) in &o.records {
            let mut fields: Vec<String> = props
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "hs_object_id" | "hs_lastmodifieddate" | "cutover_source_id"))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            fields.sort();
            out.push(format!("{object}|{}|{}", names[&(object.clone(), *id)], fields.join("|")));
        }
    }
    for (from, from_id, to, to_id, ty) in &s.associations {
        let n = |o: &str, i: u64| names.get(&(o.to_string(), i)).cloned().unwrap_or_else(|| format!("gone:{i}"));
        out.push(format!("assoc|{}|{}|{ty}", n(from, *from_id), n(to, *to_id)));
    }
    out.sort();
    out
}

fn pipedrive_rows(server: &pipedrive_server::Server) -> Vec<String> {
    let s = server.lock();
    let name = |collection: &str, id: &serde_json::Value| -> String {
        let id = id.as_u64().unwrap_or_default();
        match s
            .collections
            .get(collection)
            .and_then(|c| c.get(&id))
            .and_then(|r| r["custom_fields"][pipedrive_server::custom_key(collection, MARKER)].as_str())
        {
            Some(sid) => format!("created:{sid}"),
            // Notes carry no marker: a note is its values and its parent's name.
            None if collection == "notes" => "note".to_string(),
            None => format!("existing:{id}"),
        }
    };
    let mut out = Vec::new();
    for (collection, records) in &s.collections {
        for r in records.values() {
            let mut fields: Vec<String> = r
                .as_object()
                .into_iter()
                .flatten()
                // The server's own id and time of last change are not migrated data.
                .filter(|(k, _)| *k != "id" && *k != "update_time")
                .map(|(k, v)| match k.as_str() {
                    "org_id" => format!("{k}={}", name("organizations", v)),
                    "person_id" => format!("{k}={}", name("persons", v)),
                    "deal_id" => format!("{k}={}", name("deals", v)),
                    _ => format!("{k}={v}"),
                })
                .collect();
            fields.sort();
            out.push(format!("{collection}|{}|{}", name(collection, &r["id"]), fields.join("|")));
        }
    }
    out.sort();
    out
}

/// Starts `args` and kills it at `kills` random points, then runs `resume` until it completes.
/// `span`: how many audit rows the operation commits when nothing stops it (kill targets lie in it).
fn kill_and_resume(
    s: &Subject,
    args: &[&str],
    resume: &[&str],
    kind: &str,
    kills: usize,
    span: i64,
    seed: u64,
) -> usize {
    let base = s.progress();
    let mut rng = Rng(seed);
    let mut targets: Vec<i64> = (0..kills).map(|_| base + (rng.next() % span.max(1) as u64) as i64).collect();
    targets.sort_unstable();
    let mut landed = 0;
    let mut first = true;
    for target in targets {
        if !first && s.newest_state(kind).as_deref() == Some("completed") {
            break;
        }
        let mut child = s.command(if first { args } else { resume }).spawn().expect("spawn");
        first = false;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if child.try_wait().expect("wait").is_some() || s.progress() >= target {
                break;
            }
            assert!(Instant::now() < deadline, "no progress towards record {target} (seed {seed})");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.next() % 40));
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("SIGKILL");
            landed += 1;
        }
        let _ = child.wait();
    }
    let mut attempts = 0;
    while s.newest_state(kind).as_deref() != Some("completed") {
        let out = s.run(if first { args } else { resume });
        first = false;
        attempts += 1;
        assert!(attempts < 6, "{kind} does not complete (seed {seed}): {}", common::text(&out));
    }
    landed
}

async fn full_run_survives_kills(kind: &str, kills_wanted: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(reference) = subject(kind, dir.path(), "reference", "full").await else { return };
    let Some(subj) = subject(kind, dir.path(), "subject", "full").await else { return };
    let before = reference.progress();
    let out = reference.run(&["run"]);
    assert!(out.status.success(), "{kind}: {}", common::text(&out));
    let span = reference.progress() - before;
    let seed = seed();
    let landed = kill_and_resume(&subj, &["run"], &["run", "--resume"], "full", kills(kills_wanted), span, seed);
    eprintln!("{kind}: {landed} kills landed mid-run (seed {seed})");
    assert!(landed * 2 >= kills(kills_wanted), "{kind}: only {landed} kills landed (seed {seed})");
    if subj.counts("full") != reference.counts("full") {
        let latest = |s: &Subject| -> std::collections::BTreeMap<(String, String, i64), (String, Option<String>)> {
            let c = s.store().expect("store");
            let mut stmt = c
                .prepare("SELECT object, source_id, occurrence, outcome, detail FROM audit WHERE run_id = 1")
                .expect("q");
            stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), (r.get(3)?, r.get(4)?))))
                .expect("rows")
                .collect::<rusqlite::Result<_>>()
                .expect("rows")
        };
        let (x, y) = (latest(&subj), latest(&reference));
        for (k, v) in &x {
            if y.get(k).map(|w| &w.0) != Some(&v.0) {
                eprintln!("{k:?}: resumed {v:?}, uninterrupted {:?}", y.get(k));
            }
        }
    }
    assert_eq!(subj.counts("full"), reference.counts("full"), "{kind}: outcome counts (seed {seed})");
    let (a, b) = (subj.rows().await, reference.rows().await);
    if a.len() != b.len() {
        // Say which rows: a record written twice, or one lost, by its marker and values.
        fn count(rows: &[String]) -> HashMap<&str, usize> {
            let mut n: HashMap<&str, usize> = HashMap::new();
            for r in rows {
                *n.entry(r.as_str()).or_default() += 1;
            }
            n
        }
        let (na, nb) = (count(&a), count(&b));
        for (row, n) in &na {
            let m = nb.get(row).copied().unwrap_or(0);
            if *n > m {
                eprintln!("{kind}: {} more after the kills: {row:?}", n - m);
            }
        }
        for (row, n) in &nb {
            let m = na.get(row).copied().unwrap_or(0);
            if *n > m {
                eprintln!("{kind}: {} more in the uninterrupted run: {row:?}", n - m);
            }
        }
    }
    assert_eq!(a.len(), b.len(), "{kind}: row counts (seed {seed})");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "{kind}: destination rows differ (seed {seed})");
    }
    // Killed or not, the merges, held twins and repeats are the ones an uninterrupted run makes.
    let merged: i64 = reference.counts("full").iter().map(|(_, c)| c[4]).sum();
    assert!(merged > 0, "the data has merges");
    for s in [reference, subj] {
        if let Dest::Sql(db) = s.dest {
            db.drop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kills_into_sqlite_end_as_an_uninterrupted_run() {
    full_run_survives_kills("sqlite", 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kills_into_postgresql_end_as_an_uninterrupted_run() {
    full_run_survives_kills("postgres", 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kills_into_mariadb_end_as_an_uninterrupted_run() {
    full_run_survives_kills("mariadb", 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kills_into_hubspot_end_as_an_uninterrupted_run() {
    full_run_survives_kills("hubspot", 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kills_into_pipedrive_end_as_an_uninterrupted_run() {
    full_run_survives_kills("pipedrive", 20).await;
}

/// The queue's held records corrected and reprocessed: killed, resumed, the same as uninterrupted.
async fn reprocess_survives_kills(kind: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(reference) = subject(kind, dir.path(), "reference", "reprocess").await else { return };
    let Some(subj) = subject(kind, dir.path(), "subject", "reprocess").await else { return };
    for s in [&reference, &subj] {
        assert!(s.run(&["run"]).status.success());
        for fix in [
            vec!["queue", "fix", "--reason", "no_translation", "dealstage=qualifiedtobuy"],
            vec!["queue", "fix", "--reason", "owner_not_provisioned", "hubspot_owner_id=1"],
            vec!["queue", "fix", "--reason", "conflicting_match", "@match=new"],
        ] {
            let out = s.run(&fix);
            assert!(out.status.success(), "{kind}: {}", common::text(&out));
        }
    }
    let before = reference.progress();
    assert!(reference.run(&["queue", "reprocess", "--all"]).status.success());
    let span = reference.progress() - before;
    let seed = seed() ^ 0x9e37;
    let args = ["queue", "reprocess", "--all"];
    let landed = kill_and_resume(&subj, &args, &["queue", "reprocess", "--resume"], "reprocess", kills(8), span, seed);
    eprintln!("{kind}: {landed} kills landed mid-reprocess (seed {seed})");
    assert_eq!(subj.rows().await, reference.rows().await, "{kind}: after the reprocess (seed {seed})");
    assert_eq!(subj.counts("reprocess"), reference.counts("reprocess"), "{kind}: reprocess counts (seed {seed})");
    for s in [reference, subj] {
        if let Dest::Sql(db) = s.dest {
            db.drop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_during_a_reprocess_into_sqlite_change_nothing() {
    reprocess_survives_kills("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_during_a_reprocess_into_postgresql_change_nothing() {
    reprocess_survives_kills("postgres").await;
}

/// Changed and new people in the source, then a delta: killed, resumed, the same as uninterrupted.
async fn delta_survives_kills(kind: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(reference) = subject(kind, dir.path(), "reference", "delta").await else { return };
    let Some(subj) = subject(kind, dir.path(), "subject", "delta").await else { return };
    for s in [&reference, &subj] {
        assert!(s.run(&["run"]).status.success());
        let persons = s.project.join("source/persons.csv");
        let text = std::fs::read_to_string(&persons).expect("persons");
        let mut changed: Vec<String> = text
            .lines()
            .enumerate()
            .map(|(i, l)| if i > 0 && i % 9 == 0 { l.replacen(',', ",Renamed ", 1) } else { l.to_string() })
            .collect();
        for n in 0..300 {
            changed.push(format!("{},New Person {n},new.person{n}@example.com,,,Ana López,,2024-05-01,3", 95_000 + n));
        }
        std::fs::write(&persons, changed.join("\n") + "\n").expect("persons");
    }
    let before = reference.progress();
    assert!(reference.run(&["run", "--delta", "both"]).status.success());
    let span = reference.progress() - before;
    let seed = seed() ^ 0xde17a;
    let args = ["run", "--delta", "both"];
    let landed = kill_and_resume(&subj, &args, &["run", "--resume"], "delta", kills(8), span, seed);
    eprintln!("{kind}: {landed} kills landed mid-delta (seed {seed})");
    assert_eq!(subj.rows().await, reference.rows().await, "{kind}: after the delta (seed {seed})");
    assert_eq!(subj.counts("delta"), reference.counts("delta"), "{kind}: delta counts (seed {seed})");
    for s in [reference, subj] {
        if let Dest::Sql(db) = s.dest {
            db.drop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_during_a_delta_into_sqlite_change_nothing() {
    delta_survives_kills("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_during_a_delta_into_postgresql_change_nothing() {
    delta_survives_kills("postgres").await;
}

/// Someone deleted a third of the contacts Cutover created; the next run creates them anew. Killed,
/// resumed: each is created once (a marker left by the deleted record must not hide the new one).
async fn recreate_survives_kills(kind: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(reference) = subject(kind, dir.path(), "reference", "recreate").await else { return };
    let Some(subj) = subject(kind, dir.path(), "subject", "recreate").await else { return };
    let delete = "DELETE FROM contacts WHERE id % 3 = 0";
    for s in [&reference, &subj] {
        assert!(s.run(&["run"]).status.success());
        match &s.dest {
            Dest::Sql(db) => db.sql(&delete.replace("contacts", &db.table("contacts"))).await,
            _ => {
                let c = rusqlite::Connection::open(s.project.join("destination.db")).expect("dest");
                c.execute_batch(delete).expect("delete");
            }
        }
    }
    let before = reference.progress();
    assert!(reference.run(&["run"]).status.success());
    let span = reference.progress() - before;
    let seed = seed() ^ 0x2ec2;
    let landed = kill_and_resume(&subj, &["run"], &["run", "--resume"], "full", kills(8), span, seed);
    eprintln!("{kind}: {landed} kills landed mid-run (seed {seed})");
    assert_eq!(subj.rows().await, reference.rows().await, "{kind}: after the re-creating run (seed {seed})");
    assert_eq!(subj.counts("full"), reference.counts("full"), "{kind}: counts (seed {seed})");
    for s in [reference, subj] {
        if let Dest::Sql(db) = s.dest {
            db.drop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_during_a_run_recreating_deleted_records_in_sqlite_double_nothing() {
    recreate_survives_kills("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_during_a_run_recreating_deleted_records_in_postgresql_double_nothing() {
    recreate_survives_kills("postgres").await;
}

/// A rollback killed at random points and run again leaves the destination as before the run.
async fn rollback_survives_kills(kind: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(subj) = subject(kind, dir.path(), "subject", "rollback").await else { return };
    let pristine = subj.rows().await;
    assert!(subj.run(&["run"]).status.success());
    assert_ne!(subj.rows().await, pristine);
    let span = subj.progress();
    let seed = seed() ^ 0xb0c4;
    let landed = kill_and_resume(&subj, &["rollback", "1"], &["rollback", "1"], "rollback", kills(8), span, seed);
    eprintln!("{kind}: {landed} kills landed mid-rollback (seed {seed})");
    let mut rows = subj.rows().await;
    rows.retain(|r| !r.contains("|created:"));
    assert_eq!(rows, pristine, "{kind}: the destination as before the run (seed {seed})");
    assert_eq!(subj.rows().await.len(), pristine.len(), "{kind}: nothing created is left (seed {seed})");
    let runs = subj.run(&["runs"]);
    assert!(!common::text(&runs).contains("— running"), "no run left 'running':\n{}", common::text(&runs));
    if let Dest::Sql(db) = subj.dest {
        db.drop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_during_a_rollback_of_sqlite_leave_it_as_before() {
    rollback_survives_kills("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_during_a_rollback_of_postgresql_leave_it_as_before() {
    rollback_survives_kills("postgres").await;
}
