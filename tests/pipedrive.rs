//! The Pipedrive connector against an in-process Pipedrive (tests/common/pipedrive_server.rs),
//! every request checked against Pipedrive's official OpenAPI files: the demo read from Pipedrive
//! migrates like the CSV export does; the demo written into Pipedrive lands and reads back
//! identical; the token spend is what the files' `x-token-cost` says.

mod common;
#[path = "common/pipedrive_server.rs"]
mod pipedrive_server;

use common::{DEMO_COUNTS, DEMO_QUEUE, text};
use cutover::connect::pipedrive::Pipedrive;
use cutover::connect::{Cursor, Destination, Marks, NewRecords, Source};
use pipedrive_server::{Rules, Server, TOKEN, spec};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::process::Output;

const MARKER: &str = "0123456789abcdef0123456789abcdef01234567";

fn fold(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

fn csv(path: &Path) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).expect("csv");
    let headers: Vec<String> =
        r.headers().expect("headers").iter().map(|h| h.trim_start_matches('\u{feff}').to_string()).collect();
    r.records().map(|rec| headers.iter().cloned().zip(rec.expect("row").iter().map(String::from)).collect()).collect()
}

/// The demo's export as Pipedrive holds it: users (the demo's reps, and the one HubSpot lacks),
/// stages by name, records with ids, owners by user id, emails and phones as lists.
fn seed(server: &Server, demo: &Path) {
    let mut s = server.lock();
    let db = rusqlite::Connection::open(demo.join("destination.db")).expect("db");
    let mut names: Vec<(String, String)> = db
        .prepare("SELECT first_name || ' ' || last_name, email FROM owners ORDER BY id")
        .expect("owners")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("owners")
        .collect::<Result<_, _>>()
        .expect("owners");
    names.push(("Dana Whitfield".into(), "dana.whitfield@northwind.example".into()));
    s.users = names
        .iter()
        .enumerate()
        .map(|(i, (n, e))| json!({ "id": i + 1, "name": n, "email": e, "active_flag": true }))
        .collect();
    let user = |name: &str| -> Value {
        names.iter().position(|(n, _)| fold(n) == fold(name)).map(|i| json!(i + 1)).unwrap_or(Value::Null)
    };
    let source = demo.join("source");
    let deals = csv(&source.join("deals.csv"));
    let mut stages: Vec<String> = Vec::new();
    for d in &deals {
        if !stages.contains(&d["stage"]) {
            stages.push(d["stage"].clone());
        }
    }
    s.stages = stages.iter().enumerate().map(|(i, n)| json!({ "id": i + 1, "name": n, "pipeline_id": 1 })).collect();
    s.pipelines = vec![json!({ "id": 1, "name": "Pipeline" })];
    let num = |v: &str| -> Value { v.trim().parse::<u64>().map(Value::from).unwrap_or(Value::Null) };
    let list = |v: &str| -> Value {
        if v.trim().is_empty() { json!([]) } else { json!([{ "value": v, "primary": true, "label": "work" }]) }
    };
    let labels = ["Customer", "Hot lead", "Cold lead"];
    let put = |s: &mut pipedrive_server::State, c: &str, id: &str, r: Value| {
        s.collections.get_mut(c).expect("c").insert(id.trim().parse().expect("id"), r);
    };
    for o in csv(&source.join("organizations.csv")) {
        let r = json!({ "id": num(&o["id"]), "name": o["name"], "owner_id": user(&o["owner_name"]), "add_time": o["add_time"],
            "visible_to": num(&o["visible_to"]), "address": { "locality": o["address_locality"], "country": o["address_country"] },
            "custom_fields": { "website": o["website"], "industry": o["industry"] } });
        put(&mut s, "organizations", &o["id"], r);
    }
    for p in csv(&source.join("persons.csv")) {
        let label = labels.iter().position(|l| *l == p["label"]).map(|i| json!([i + 1])).unwrap_or(json!([]));
        let r = json!({ "id": num(&p["id"]), "name": p["name"], "emails": list(&p["email"]), "phones": list(&p["phone"]),
            "org_id": num(&p["org_id"]), "owner_id": user(&p["owner_name"]), "label_ids": label, "add_time": p["add_time"],
            "visible_to": num(&p["visible_to"]) });
        put(&mut s, "persons", &p["id"], r);
    }
    for d in &deals {
        let value = d["value"].replace(',', "").parse::<f64>().map(Value::from).unwrap_or_else(|_| json!(d["value"]));
        let stage = stages.iter().position(|n| *n == d["stage"]).map(|i| i + 1);
        let r = json!({ "id": num(&d["id"]), "title": d["title"], "value": value, "currency": d["currency"], "stage_id": stage,
            "pipeline_id": 1, "status": d["status"], "org_id": num(&d["org_id"]), "owner_id": user(&d["owner_name"]),
            "expected_close_date": d["expected_close_date"], "add_time": d["add_time"] });
        put(&mut s, "deals", &d["id"], r);
    }
    for n in csv(&source.join("notes.csv")) {
        let r = json!({ "id": num(&n["id"]), "content": n["content"], "person_id": num(&n["person_id"]),
            "user_id": user(&n["user_name"]), "add_time": n["add_time"] });
        put(&mut s, "notes", &n["id"], r);
    }
}

fn cutover(dir: &Path, args: &[&str]) -> Output {
    common::cutover(dir, args, &[("CUTOVER_PIPEDRIVE_TOKEN", TOKEN)])
}

/// Every request the server received exists in Pipedrive's OpenAPI files and matches them.
fn assert_requests_match_the_spec(server: &Server) -> usize {
    let requests = server.lock().requests.clone();
    let mut problems: Vec<String> =
        requests.iter().flat_map(|r| spec().check(&r.method, &r.path, &r.query, &r.body)).collect();
    problems.sort();
    problems.dedup();
    assert!(problems.is_empty(), "requests that do not match Pipedrive's OpenAPI files:\n{}", problems.join("\n"));
    requests.len()
}

fn reconcile_keys(demo: &Path) -> Vec<String> {
    common::reconcile_keys(demo, &[("CUTOVER_PIPEDRIVE_TOKEN", TOKEN)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_migrates_from_pipedrive_and_every_call_matches_the_openapi_files() {
    let server = Server::start(Rules::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = dir.path().join("demo");
    cutover::demo::setup(&demo).expect("demo");
    seed(&server, &demo);
    let toml = std::fs::read_to_string(demo.join("cutover.toml")).expect("toml");
    let toml = toml
        .replacen(
            "kind = \"csv\"\npath = \"source\"               # one file per object: source/persons.csv holds \"persons\"",
            &format!("kind = \"pipedrive\"\ntoken_env = \"CUTOVER_PIPEDRIVE_TOKEN\"\nbase_url = \"{}\"\nrate_limit = 100000\ndaily_tokens = 100000000", server.url),
            1,
        )
        .replacen("exclude = [\"visible_to\"]", "exclude = [\"visible_to\", \"owner_id\", \"owner_email\"]", 1)
        .replacen("exclude = [\"visible_to\"]", "exclude = [\"visible_to\", \"owner_id\", \"owner_email\", \"emails\", \"phones\"]", 1)
        .replacen("exclude = [\"status\"]", "exclude = [\"status\", \"stage_id\", \"pipeline_id\", \"pipeline\", \"owner_id\", \"owner_email\"]", 1)
        .replacen("[objects.notes]\nid = \"id\"", "[objects.notes]\nid = \"id\"\nexclude = [\"user_id\", \"user_email\"]", 1)
        .replacen("from = \"label\", translate = \"lifecycle\"", "from = \"label_ids\", translate = \"lifecycle\"", 1)
        .replacen("\"Cold lead\" = \"lead\"", "\"Cold lead\" = \"lead\"\n\"1\" = \"customer\"\n\"2\" = \"salesqualifiedlead\"\n\"3\" = \"lead\"", 1);
    assert!(toml.contains("kind = \"pipedrive\""), "the demo's [source] changed: update this test");
    std::fs::write(demo.join("cutover.toml"), toml).expect("toml");

    let out = cutover(&demo, &["run"]);
    let shown = text(&out);
    for line in DEMO_COUNTS {
        assert!(shown.contains(line), "missing '{line}':\n{shown}");
    }
    assert!(!shown.contains(TOKEN), "the token is a secret");
    assert_eq!(reconcile_keys(&demo), DEMO_QUEUE);
    let n = assert_requests_match_the_spec(&server);
    assert!(n > 40, "{n} requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_lands_in_pipedrive_and_reads_back_identical() {
    let server = Server::start(Rules::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = dir.path().join("demo");
    cutover::demo::setup(&demo).expect("demo");
    seed(&server, &demo);
    // Pipedrive starts empty; its users and stages stay.
    for c in server.lock().collections.values_mut() {
        c.clear();
    }
    let stages: Vec<String> = server
        .lock()
        .stages
        .iter()
        .map(|s| format!("\"{}\" = \"{}\"", s["name"].as_str().unwrap_or(""), s["id"]))
        .collect();
    let toml = format!(
        r#"[project]
name = "Northwind: CSV → Pipedrive"
batch_size = 500
default_region = "US"

[source]
kind = "csv"
path = "source"

[destination]
kind = "pipedrive"
token_env = "CUTOVER_PIPEDRIVE_TOKEN"
base_url = "{url}"
rate_limit = 100000
daily_tokens = 100000000
source_id_property = "{MARKER}"

[translations.stages]
{stages}

[objects.organizations]
exclude = ["address_locality", "address_country", "website", "industry", "visible_to"]

[objects.organizations.fields]
name = {{ from = "name", transform = "trim" }}
owner_id = {{ from = "owner_name", transform = "owner" }}
add_time = {{ from = "add_time", transform = "datetime" }}

[objects.persons]
exclude = ["label", "visible_to"]

[objects.persons.fields]
name = {{ from = "name", transform = "trim" }}
email = {{ from = "email", transform = "email" }}
phone = {{ from = "phone", transform = "phone" }}
org_id = {{ from = "org_id", parent = "organizations" }}
owner_id = {{ from = "owner_name", transform = "owner" }}
add_time = {{ from = "add_time", transform = "datetime" }}

[objects.deals]
exclude = ["status", "add_time"]   # API v2 sets a deal's add_time itself

[objects.deals.fields]
title = {{ from = "title", transform = "trim" }}
value = {{ from = "value", transform = "decimal" }}
currency = {{ from = "currency", transform = "upper" }}
stage_id = {{ from = "stage", translate = "stages" }}
org_id = {{ from = "org_id", parent = "organizations" }}
owner_id = {{ from = "owner_name", transform = "owner" }}
expected_close_date = {{ from = "expected_close_date", transform = "date" }}

[objects.notes.fields]
content = {{ from = "content" }}
person_id = {{ from = "person_id", parent = "persons" }}
user_id = {{ from = "user_name", transform = "owner" }}
add_time = {{ from = "add_time", transform = "datetime" }}
"#,
        url = server.url,
        stages = stages.join("\n")
    );
    std::fs::write(demo.join("cutover.toml"), toml).expect("toml");
    let out = cutover(&demo, &["run"]);
    let shown = text(&out);
    assert!(shown.contains("Every record accounted for: yes"), "{shown}");
    for (object, created) in [("organizations", 400), ("persons", 4200), ("deals", 1800), ("notes", 6000)] {
        let held = server.records(object).len();
        assert!(held > created * 9 / 10 && held <= created, "{object}: {held} created:\n{shown}");
    }
    // Each created person carries its source id in the marker field.
    let marked = server.records("persons").iter().filter(|p| p["custom_fields"][MARKER].is_string()).count();
    assert_eq!(marked, server.records("persons").len());
    let keys = reconcile_keys(&demo);
    assert!(
        keys.iter().all(|k| k.contains("/queued/")),
        "read back through the API, what was written matches: {keys:?}"
    );
    assert_requests_match_the_spec(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_spend_is_what_the_openapi_files_say() {
    let server = Server::start(Rules { per_2s: 1000, daily_tokens: 1_000_000 }).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = dir.path().join("demo");
    cutover::demo::setup(&demo).expect("demo");
    seed(&server, &demo);
    let conn: cutover::config::ConnectionConfig = toml::from_str(&format!(
        "kind = \"pipedrive\"\ntoken_env = \"CUTOVER_PIPEDRIVE_TEST_TOKEN\"\nbase_url = \"{}\"\nsource_id_property = \"{MARKER}\"\nrate_limit = 1000\ndaily_tokens = 1000000",
        server.url
    ))
    .expect("config");
    // SAFETY: only this test reads the variable, and nothing else in it changes the environment.
    unsafe { std::env::set_var("CUTOVER_PIPEDRIVE_TEST_TOKEN", TOKEN) };
    let pd = Pipedrive::open(&conn, "source").expect("open");
    assert_eq!(pd.count("persons").await.expect("count"), 4200);
    let batch = pd.read_batch("notes", "id", &Cursor::start(), 700).await.expect("notes");
    assert_eq!(batch.records.len(), 1000, "two pages of 500");
    let fields: Vec<String> = vec!["name".into(), "email".into()];
    let rows = vec![vec![Some("Ann Example".into()), Some("ann@example.com".into())]];
    let marks = Marks { namespace: "t".into(), source_ids: vec!["p-1".into()] };
    let created = pd
        .create("persons", NewRecords { fields: fields.clone().into(), rows, marks: Some(marks) })
        .await
        .expect("create");
    let id = created[0].clone().expect("created");
    let change =
        cutover::connect::Change { dest_id: id.clone(), values: vec![("name".into(), Some("Ann Changed".into()))] };
    assert!(pd.update("persons", &[change]).await.expect("update")[0].is_ok());
    let read = pd.read("persons", std::slice::from_ref(&id), &fields).await.expect("read");
    assert_eq!(read[&id][0].as_deref(), Some("Ann Changed"));
    assert!(pd.delete("persons", &[id]).await.expect("delete")[0].is_ok());
    assert_requests_match_the_spec(&server);
    let spent = server.lock().spent;
    assert!(spent > 0);
    assert_eq!(pd.tokens_spent(), spent, "the connector pays what each call costs");
}
