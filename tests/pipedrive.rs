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
use std::path::{Path, PathBuf};
use std::process::Output;

/// The custom field holding source ids, by name: each entity has its own key for it.
const MARKER: &str = pipedrive_server::MARKER_NAME;

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

/// The demo's project written into the server, an account empty but for its users and stages;
/// `adjust` edits the project file.
fn demo_into_an_empty_account(server: &Server, adjust: impl Fn(String) -> String) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = dir.path().join("demo");
    cutover::demo::setup(&demo).expect("demo");
    pipedrive_server::seed_demo(server, &demo);
    for c in server.lock().collections.values_mut() {
        c.clear();
    }
    let stages = pipedrive_server::stage_translations(server);
    let toml = pipedrive_server::demo_into_pipedrive(&server.url, &stages, MARKER, true);
    std::fs::write(demo.join("cutover.toml"), adjust(toml)).expect("toml");
    (dir, demo)
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
    pipedrive_server::seed_demo(&server, &demo);
    let toml = std::fs::read_to_string(demo.join("cutover.toml")).expect("toml");
    let toml = toml
        .replacen(
            "kind = \"csv\"\npath = \"source\"               # one file per object: source/persons.csv holds \"persons\"",
            &format!("kind = \"pipedrive\"\ntoken_env = \"CUTOVER_PIPEDRIVE_TOKEN\"\nbase_url = \"{}\"\nrate_limit = 100000\ndaily_tokens = 100000000", server.url),
            1,
        )
        // Custom fields by their names, an enum as its labels; the marker field is not data.
        .replacen("exclude = [\"visible_to\"]", "exclude = [\"visible_to\", \"owner_id\", \"owner_email\", \"Cutover source id\"]", 1)
        .replacen("from = \"website\"", "from = \"Website\"", 1)
        .replacen("from = \"industry\"", "from = \"Industry\"", 1)
        .replacen("exclude = [\"visible_to\"]", "exclude = [\"visible_to\", \"owner_id\", \"owner_email\", \"emails\", \"phones\", \"Cutover source id\"]", 1)
        .replacen("exclude = [\"status\"]", "exclude = [\"status\", \"stage_id\", \"pipeline_id\", \"pipeline\", \"owner_id\", \"owner_email\", \"Cutover source id\"]", 1)
        .replacen("[objects.notes]\nid = \"id\"", "[objects.notes]\nid = \"id\"\nexclude = [\"user_id\", \"user_email\"]", 1)
        // Labels by their names, as the export spells them.
        .replacen("from = \"label\", translate = \"lifecycle\"", "from = \"label_ids\", translate = \"lifecycle\"", 1);
    assert!(toml.contains("kind = \"pipedrive\""), "the demo's [source] changed: update this test");
    std::fs::write(demo.join("cutover.toml"), &toml).expect("toml");

    // A person field only records after the first page hold is found all the same: the
    // account's fields say what there is, not a sample of records.
    let shown = text(&cutover(&demo, &["check"]));
    assert!(shown.contains("'Source campaign'") && shown.contains("neither mapped nor excluded"), "{shown}");
    let toml = toml.replacen(
        "\"phones\", \"Cutover source id\"]",
        "\"phones\", \"Cutover source id\", \"Source campaign\"]",
        1,
    );
    std::fs::write(demo.join("cutover.toml"), &toml).expect("toml");

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
    // Stages and pipelines come two a page: every page is read.
    let server = Server::start(Rules { stage_page: 2, ..Rules::default() }).await;
    // Stages by name: no translation table of stage ids needed.
    let (_dir, demo) = demo_into_an_empty_account(&server, |toml| {
        let by_id = "stage_id = { from = \"stage\", translate = \"stages\" }";
        assert!(toml.contains(by_id), "the project maps stages by id: update this test");
        toml.replace(by_id, "stage = { from = \"stage\" }")
    });
    // Labels are a multi-select: two of the account's labels land, one it lacks is held.
    let persons = demo.join("source/persons.csv");
    let csv = std::fs::read_to_string(&persons).expect("persons");
    let csv = csv.replacen(",Hot lead,", ",Hot lead;Customer,", 5).replacen(",Cold lead,", ",Cold lead;VIP,", 3);
    std::fs::write(&persons, csv).expect("persons");
    let out = cutover(&demo, &["run"]);
    let shown = text(&out);
    assert!(shown.contains("Every record accounted for: yes"), "{shown}");
    for (object, created) in [("organizations", 400), ("persons", 4200), ("deals", 1800), ("notes", 6000)] {
        let held = server.records(object).len();
        assert!(held > created * 9 / 10 && held <= created, "{object}: {held} created:\n{shown}");
    }
    // Each created record carries its source id in its own entity's marker field.
    for object in ["organizations", "persons", "deals"] {
        let key = server.custom_key(object, MARKER);
        let marked = server.records(object).iter().filter(|p| p["custom_fields"][&key].is_string()).count();
        assert_eq!(marked, server.records(object).len(), "{object}");
    }
    // Custom fields and labels written by name land as the account's option ids; the deal's
    // status and the organization's address as v2 takes them; a note's time as v1 documents.
    let industry = server.custom_key("organizations", "Industry");
    let orgs = server.records("organizations");
    let with_industry = orgs.iter().filter(|o| o["custom_fields"][&industry].as_u64().is_some_and(|id| id >= 100));
    assert!(with_industry.count() > orgs.len() * 9 / 10, "industries as option ids");
    assert!(orgs.iter().filter(|o| o["address"]["value"].is_string()).count() > orgs.len() / 2);
    let persons = server.records("persons");
    let labelled = persons.iter().filter(|p| p["label_ids"].as_array().is_some_and(|l| !l.is_empty())).count();
    assert!(labelled > persons.len() / 2, "labels as label ids: {labelled}");
    let both = persons.iter().filter(|p| p["label_ids"] == serde_json::json!([2, 1])).count();
    assert_eq!(both, 5, "Hot lead;Customer");
    let queue = cutover(&demo, &["export", "queue", "--format", "jsonl", "--object", "persons"]);
    let held = String::from_utf8_lossy(&queue.stdout)
        .lines()
        .filter(|l| l.contains("'VIP' is not an allowed value of 'label_ids'"))
        .count();
    assert_eq!(held, 3, "a label the account lacks waits in the queue");
    let staged = server.records("deals").iter().filter(|d| d["stage_id"].as_u64().is_some()).count();
    assert_eq!(staged, server.records("deals").len(), "every deal's stage, by name");
    let won = server.records("deals").iter().filter(|d| d["status"] == "won").count();
    assert!(won > 100, "won deals arrive won: {won}");
    let note_time = server.records("notes").iter().filter_map(|n| n["add_time"].as_str().map(String::from)).next();
    assert!(note_time.is_some_and(|t| t.len() == 19 && t.as_bytes()[10] == b' '), "YYYY-MM-DD HH:MM:SS");

    let before = server.lock().requests.len();
    let keys = reconcile_keys(&demo);
    assert!(
        keys.iter().all(|k| k.contains("/queued/")),
        "read back through the API, what was written matches: {keys:?}"
    );
    // Notes are read back from the list, not one request each.
    let one_by_one = server.lock().requests[before..]
        .iter()
        .filter(|r| r.path.starts_with("/v1/notes/") && r.method == "GET")
        .count();
    assert!(one_by_one < 100, "{one_by_one} notes read one by one");
    // The same export again changes nothing: values the account spells its own way (a note's
    // time, an amount's trailing zero) are the values sent.
    let before = server.lock().requests.len();
    let shown = text(&cutover(&demo, &["run"]));
    assert!(shown.contains("Every record accounted for: yes"), "{shown}");
    let updated = audit_rows(&demo, &["--run", "2", "--status", "updated"]);
    let writes =
        server.lock().requests[before..].iter().filter(|r| matches!(r.method.as_str(), "PUT" | "PATCH")).count();
    assert_eq!((updated, writes), (0, 0), "a re-run of the same data updates nothing");
    assert_requests_match_the_spec(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marker_field_belongs_to_one_entity_and_check_says_which_one_is_missing() {
    // This account drops custom-field keys it does not know, without a word (the docs are
    // silent; the stricter account that refuses them is the default of every other test).
    let server = Server::start(Rules { unknown_custom: pipedrive_server::Unknown::Drop, ..Rules::default() }).await;
    let persons_key = pipedrive_server::custom_key("persons", MARKER);
    // One key for every object, as a project would copy it from the persons' settings.
    let (_dir, demo) = demo_into_an_empty_account(&server, |toml| {
        toml.replace(&format!("source_id_property = \"{MARKER}\""), &format!("source_id_property = \"{persons_key}\""))
    });
    let out = cutover(&demo, &["check"]);
    let shown = text(&out);
    assert_ne!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("not the key of an organizations field") && shown.contains("marker_fields"), "{shown}");
    assert!(shown.contains("not the key of a deals field"), "{shown}");
    assert!(!shown.contains("persons field"), "{shown}");
    // An option field cannot hold source ids.
    let toml = std::fs::read_to_string(demo.join("cutover.toml")).expect("toml");
    let enum_marker = toml.replace(
        &format!("source_id_property = \"{persons_key}\""),
        &format!("source_id_property = \"{MARKER}\"\nmarker_fields = {{ organizations = \"Industry\" }}"),
    );
    std::fs::write(demo.join("cutover.toml"), enum_marker).expect("toml");
    let shown = text(&cutover(&demo, &["check"]));
    assert!(shown.contains("'Industry' is organizations' enum field"), "{shown}");
    std::fs::write(demo.join("cutover.toml"), toml).expect("toml");
    // Each object named its own field — organizations' by a name of their own, the rest by the
    // shared name; the organization's website by its key.
    let legacy = server.lock().add_custom("organizations", "Legacy id", "varchar", &[]);
    let website = server.custom_key("organizations", "Website");
    let toml = std::fs::read_to_string(demo.join("cutover.toml")).expect("toml");
    let toml = toml
        .replace(
            &format!("source_id_property = \"{persons_key}\""),
            &format!("source_id_property = \"{MARKER}\"\nmarker_fields = {{ organizations = \"legacy ID\" }}"),
        )
        .replace("Website = {", &format!("\"{website}\" = {{"));
    std::fs::write(demo.join("cutover.toml"), toml).expect("toml");
    let shown = text(&cutover(&demo, &["run"]));
    assert!(shown.contains("Every record accounted for: yes"), "{shown}");
    for (object, field) in [("organizations", legacy), ("persons", server.custom_key("persons", MARKER))] {
        let records = server.records(object);
        let marked = records.iter().filter(|r| r["custom_fields"][&field].is_string()).count();
        assert_eq!(marked, records.len(), "{object}: each created record carries its marker");
    }
    let websites = server.records("organizations").iter().filter(|o| o["custom_fields"][&website].is_string()).count();
    assert!(websites > 300, "a custom field mapped by its key: {websites}");
    assert!(reconcile_keys(&demo).iter().all(|k| k.contains("/queued/")));
    assert_requests_match_the_spec(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_spend_is_what_the_openapi_files_say() {
    let server = Server::start(Rules { per_2s: 1000, daily_tokens: 1_000_000, ..Rules::default() }).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = dir.path().join("demo");
    cutover::demo::setup(&demo).expect("demo");
    pipedrive_server::seed_demo(&server, &demo);
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

fn audit_rows(demo: &Path, filters: &[&str]) -> usize {
    common::audit_rows(demo, filters, &[])
}

/// Every record of `object` in the account is exactly one `created` outcome of the audit (none
/// sent twice, none unaccounted for); returns how many.
fn assert_created_once(server: &Server, demo: &Path, object: &str) -> usize {
    let created = audit_rows(demo, &["--object", object, "--status", "created"]);
    assert_eq!(server.records(object).len(), created, "{object}: in the account, each one created outcome");
    created
}

/// Kills a run into Pipedrive once `object` holds `at` records, then resumes it: every record of
/// `object` in the account is exactly one `created` outcome of the audit — none sent twice.
async fn killed_while_writing(object: &str, at: usize) {
    // Notes kept as HTML: a note is looked up by its words, not the bytes it was sent as.
    let server = Server::start(Rules { notes_as_html: true, ..Rules::default() }).await;
    // Paced at ~400 requests/s, so that the kill lands while it writes.
    let (_dir, demo) =
        demo_into_an_empty_account(&server, |toml| toml.replace("rate_limit = 100000", "rate_limit = 800"));
    common::run_killed_when(&demo, &[("CUTOVER_PIPEDRIVE_TOKEN", TOKEN)], 180, || server.records(object).len() >= at)
        .await;
    let shown = text(&cutover(&demo, &["run", "--resume"]));
    assert!(shown.contains("completed") && shown.contains("Every record accounted for: yes"), "{shown}");
    let created = assert_created_once(&server, &demo, object);
    assert!(created > 1000, "{created}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_while_writing_notes_resumes_without_a_duplicate_note() {
    // Notes carry no marker in Pipedrive: the journal of creates and their parent's notes tell.
    killed_while_writing("notes", 1500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_while_writing_persons_resumes_without_a_duplicate_person() {
    killed_while_writing("persons", 1500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_and_a_lagging_search_index_duplicate_nothing() {
    // 5% of creates are carried out and their answer lost; new records reach the search index a
    // second late. A lost answer is settled by a consistent read, not by search.
    let rules = Rules {
        lose_rate: 0.05,
        search_lag: std::time::Duration::from_secs(1),
        seed: 3,
        notes_as_html: true,
        ..Rules::default()
    };
    let server = Server::start(rules).await;
    let (_dir, demo) = demo_into_an_empty_account(&server, |toml| toml);
    let shown = text(&cutover(&demo, &["run"]));
    assert!(shown.contains("Every record accounted for: yes"), "{shown}");
    assert!(server.lock().lost > 50, "answers lost: {}", server.lock().lost);
    for object in ["organizations", "persons", "deals", "notes"] {
        assert_created_once(&server, &demo, object);
    }
    assert_eq!(audit_rows(&demo, &["--status", "failed"]), 0, "no record failed for a lost answer");
    // Reconcile counts each object in the account: what was there before the first write plus
    // what Cutover created. A note created twice by anyone shows there, not in the read-back.
    let keys = reconcile_keys(&demo);
    assert!(!keys.iter().any(|k| k.contains("destination_count")), "{keys:?}");
    {
        let mut s = server.lock();
        let notes = s.collections.get_mut("notes").expect("notes");
        let twice = notes.values().next().cloned().expect("a note");
        notes.insert(9_999_999, twice);
    }
    let keys = reconcile_keys(&demo);
    assert!(keys.iter().any(|k| k == "notes/destination_count"), "{keys:?}");
    assert_requests_match_the_spec(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_daily_budget_stops_the_run_saying_when_and_a_resume_the_next_day_duplicates_nothing() {
    // A budget that runs out among the persons.
    let rules = Rules { daily_tokens: 20_000, ..Rules::default() };
    let server = Server::start(rules).await;
    // No reserve: the run goes on until the account answers 429 for the day.
    let (_dir, demo) = demo_into_an_empty_account(&server, |toml| {
        toml.replace("daily_tokens = 100000000", "daily_tokens = 100000000\ndaily_reserve = 0")
    });
    let started = std::time::Instant::now();
    let out = cutover(&demo, &["run"]);
    let shown = text(&out);
    assert_ne!(out.status.code(), Some(0), "{shown}");
    assert!(server.lock().throttled > 0, "the day's 429 was met");
    assert!(started.elapsed().as_secs() < 60, "stopped at once, not after minutes of retries");
    assert!(shown.contains("daily") && shown.contains("resets in"), "says why and when: {shown}");
    assert!(shown.contains("run --resume"), "and what to do: {shown}");
    // The next day.
    server.lock().rules.daily_tokens = u64::MAX;
    let shown = text(&cutover(&demo, &["run", "--resume"]));
    assert!(shown.contains("Every record accounted for: yes"), "{shown}");
    for object in ["organizations", "persons", "deals", "notes"] {
        assert_created_once(&server, &demo, object);
    }
    assert_eq!(audit_rows(&demo, &["--status", "failed"]), 0, "no record failed for the budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_the_project_allows_stops_the_run_instead_of_crawling_and_a_resume_duplicates_nothing() {
    // The account could do more; the project allows 3,000 tokens a day (300 creates).
    let server = Server::start(Rules::default()).await;
    let (_dir, demo) =
        demo_into_an_empty_account(&server, |toml| toml.replace("daily_tokens = 100000000", "daily_tokens = 3000"));
    let started = std::time::Instant::now();
    let out = cutover(&demo, &["run"]);
    let shown = text(&out);
    assert_ne!(out.status.code(), Some(0), "{shown}");
    assert!(started.elapsed().as_secs() < 60, "stopped, not waiting call by call for the budget to refill: {shown}");
    assert!(shown.contains("daily_tokens = 3000") && shown.contains("run --resume"), "{shown}");
    assert_eq!(audit_rows(&demo, &["--status", "failed"]), 0, "no record failed for the budget");
    // The budget raised, the run resumed.
    let toml = std::fs::read_to_string(demo.join("cutover.toml")).expect("toml");
    std::fs::write(demo.join("cutover.toml"), toml.replace("daily_tokens = 3000", "daily_tokens = 100000000"))
        .expect("toml");
    let shown = text(&cutover(&demo, &["run", "--resume"]));
    assert!(shown.contains("Every record accounted for: yes"), "{shown}");
    for object in ["organizations", "persons", "deals", "notes"] {
        assert_created_once(&server, &demo, object);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_says_what_the_migration_costs_in_tokens_and_days_and_the_run_costs_that() {
    let server = Server::start(Rules::default()).await;
    let (_dir, demo) =
        demo_into_an_empty_account(&server, |toml| toml.replace("daily_tokens = 100000000", "daily_tokens = 30000"));
    let shown = text(&cutover(&demo, &["run", "--dry-run"]));
    let line =
        shown.lines().find(|l| l.starts_with("Pipedrive would charge about")).unwrap_or_else(|| panic!("{shown}"));
    let figure = |after: &str| -> u64 {
        let rest = &line[line.find(after).expect("figure") + after.len()..];
        rest.split_whitespace().next().expect("number").replace(',', "").parse().expect("number")
    };
    let estimate = figure("about ");
    assert!(shown.contains("At daily_tokens = 30000: ") && shown.contains("days"), "{shown}");
    let preview_spent = server.lock().spent;
    // The real run, with room for all of it, spends what the server counts at the spec's costs.
    let toml = std::fs::read_to_string(demo.join("cutover.toml")).expect("toml");
    std::fs::write(demo.join("cutover.toml"), toml.replace("daily_tokens = 30000", "daily_tokens = 100000000"))
        .expect("toml");
    assert!(text(&cutover(&demo, &["run"])).contains("Every record accounted for: yes"));
    let spent = server.lock().spent - preview_spent;
    let off = estimate.abs_diff(spent) as f64 / spent as f64;
    assert!(off < 0.1, "estimated {estimate} tokens, the run spent {spent}");
    let days = spent.div_ceil(30_000);
    assert!(shown.contains(&format!("30000: {days} days")), "{days} days at 30,000 a day:\n{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_an_interrupted_attempt_sent_is_told_from_its_parents_note_that_says_the_same() {
    // Exports repeat notes: one person, the same words on two days. The one an interrupted
    // attempt sent is found by its words and its time, not the first that says the same.
    let server = Server::start(Rules::default()).await;
    let conn: cutover::config::ConnectionConfig = toml::from_str(&format!(
        "kind = \"pipedrive\"\ntoken_env = \"CUTOVER_PIPEDRIVE_NOTES_TOKEN\"\nbase_url = \"{}\"",
        server.url
    ))
    .expect("config");
    // SAFETY: only this test reads the variable, and nothing else in it changes the environment.
    unsafe { std::env::set_var("CUTOVER_PIPEDRIVE_NOTES_TOKEN", TOKEN) };
    let pd = Pipedrive::open(&conn, "destination").expect("open");
    let fields: Vec<String> = vec!["content".into(), "person_id".into(), "add_time".into()];
    let note = |at: &str| vec![Some("Trial extended.".to_string()), Some("7".to_string()), Some(at.to_string())];
    let rows = vec![note("2022-05-03T16:37:48Z"), note("2021-01-12T09:45:19Z")];
    let ids: Vec<String> = pd
        .create("notes", NewRecords { fields: fields.into(), rows, marks: None })
        .await
        .expect("create")
        .into_iter()
        .map(|r| r.expect("created"))
        .collect();
    let written =
        serde_json::json!({ "content": "Trial extended.", "person_id": "7", "add_time": "2021-01-12T09:45:19Z" });
    let found = pd.find_created("notes", &[("m".into(), written)]).await.expect("lookup").expect("notes can");
    assert_eq!(found, vec![Some(ids[1].clone())], "the later-sent note, not the first with those words");
    assert_requests_match_the_spec(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reserve_stops_the_run_before_the_days_budget_mid_batch_halted_not_failed() {
    // 20,000 tokens: the budget ends in the middle of a batch of 500 persons (2,500 tokens).
    // The account says on every answer what is left; the run stops before the reserve is
    // spent, never meeting the day's 429, and the run is halted — resumable — not failed.
    let server = Server::start(Rules { daily_tokens: 20_000, ..Rules::default() }).await;
    let (_dir, demo) = demo_into_an_empty_account(&server, |toml| toml);
    let out = cutover(&demo, &["run"]);
    let shown = text(&out);
    assert_ne!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("fewer than the 500 kept in reserve") && shown.contains("run --resume"), "{shown}");
    assert_eq!(server.lock().throttled, 0, "no 429: stopped before the budget ran out");
    assert!(server.lock().spent > 19_000, "and not long before: {}", server.lock().spent);
    let runs = text(&cutover(&demo, &["runs"]));
    assert!(runs.contains("full — halted"), "{runs}");
    assert_eq!(audit_rows(&demo, &["--status", "failed"]), 0);
    server.lock().rules.daily_tokens = u64::MAX;
    let shown = text(&cutover(&demo, &["run", "--resume"]));
    assert!(shown.contains("Every record accounted for: yes"), "{shown}");
    for object in ["organizations", "persons", "deals", "notes"] {
        assert_created_once(&server, &demo, object);
    }
}
