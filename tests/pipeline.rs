//! The stages on small, deliberately messy data: bad rows become outcomes naming file and line,
//! dedupe finds people across formats and batches, merge rules do what they say, a high error
//! rate halts, and a preview writes nothing.

mod common;
use common::{TestProject, counts_of};
use cutover::model::Rule;
use cutover::pipeline::Finish;
use cutover::store::{QueueFilter, RunKind};

fn toml(batch: usize, merge: &str, halt: f64) -> String {
    format!(
        r#"[project]
name = "test"
batch_size = {batch}
halt_error_rate = {halt}

[source]
kind = "csv"
path = "source"

[destination]
kind = "sqlite"
path = "destination.db"
owners = {{ table = "users", id = "id", name = "name", email = "email" }}

[objects.companies]
match = ["name"]

[objects.companies.fields]
name = {{ from = "name", transform = "trim" }}

[objects.contacts]
match = ["email", "phone"]
merge = "{merge}"

[objects.contacts.fields]
name = {{ from = "name" }}
email = {{ from = "email", transform = "email" }}
phone = {{ from = "phone", transform = "phone" }}
company_id = {{ from = "company", parent = "companies" }}
owner_id = {{ from = "owner", transform = "owner" }}
signed_up = {{ from = "signed_up", transform = "date" }}
"#
    )
}

const DEST: &str = "
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT);
INSERT INTO users VALUES (1, 'Ann Owner', 'ann@corp.example');
CREATE TABLE companies (id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(20) NOT NULL);
CREATE TABLE contacts (id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(30), email TEXT, phone TEXT,
                       company_id INTEGER, owner_id INTEGER, signed_up DATE);
INSERT INTO contacts (id, name, email, phone) VALUES
    (500, 'Existing', 'Dup@Example.com', NULL),
    (501, 'Twin A', 'twin@example.com', NULL),
    (502, 'Twin B', 'TWIN@example.com', NULL),
    (503, 'By Phone', NULL, '(415) 555-2671');
";
const COMPANIES: &str = "id,name\nc1,Acme\nc2,Globex\n";

fn queue_rules(p: &TestProject, object: &str) -> Vec<(String, Rule, String)> {
    let store = p.project().store().expect("store");
    let items = store
        .queue_list(&QueueFilter { object: Some(object.into()), pending_only: true, ..Default::default() })
        .expect("queue");
    items.iter().flat_map(|i| i.issues.iter().map(|x| (i.source_id.clone(), x.rule, x.field.clone()))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_become_outcomes_that_name_file_and_line() {
    let mut contacts = b"id,name,email,phone,company,owner,signed_up\n".to_vec();
    contacts.extend_from_slice(b"1,Good One,one@example.com,415-555-0101,c1,Ann Owner,2024-01-02\n");
    contacts.extend_from_slice(b"2,Too,many,fields,c1,Ann Owner,2024-01-02,extra\n");
    contacts.extend_from_slice(b"3,Bad \xff UTF8,three@example.com,,c1,Ann Owner,\n");
    contacts.extend_from_slice(b",No Id,noid@example.com,,c1,Ann Owner,\n");
    contacts.extend_from_slice(b"5,Zero Date,five@example.com,,c1,Ann Owner,0000-00-00\n");
    contacts.extend_from_slice(b"6,Bad Phone,six@example.com,12,c1,Ann Owner,\n");
    contacts.extend_from_slice(b"7,Ghost Owner,seven@example.com,,c1,Casper,\n");
    contacts.extend_from_slice(b"8,No Company,eight@example.com,,c9,Ann Owner,\n");
    contacts.extend_from_slice(b"9,\"Quoted, with\nnewline\",nine@example.com,,c2,ann@corp.example,03/04/2024\n");
    let csv = String::from_utf8_lossy(&contacts).into_owned();
    // Write raw bytes: the invalid UTF-8 must reach the reader as it is.
    let p = TestProject::new(&toml(100, "fill_blanks", 1.0), &[("companies", COMPANIES), ("contacts", &csv)], DEST);
    std::fs::write(p.path().join("source/contacts.csv"), &contacts).expect("raw csv");

    let run = p.run().await.expect("runs");
    let c = counts_of(&run, "contacts");
    assert_eq!((c.extracted, c.created, c.failed, c.queued), (9, 2, 3, 4), "{c:?}");
    assert!(c.balanced());

    let store = p.project().store().expect("store");
    let failed: Vec<(String, String)> = store
        .conn()
        .prepare("SELECT source_id, detail FROM audit WHERE outcome = 'failed' ORDER BY id")
        .expect("q")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("failed rows");
    assert_eq!(failed[0].0, "2");
    assert!(failed[0].1.starts_with("contacts.csv:3: expected 7 fields"), "{}", failed[0].1);
    assert!(failed[1].1.starts_with("contacts.csv:4: field 'name' is not valid UTF-8"), "{}", failed[1].1);
    assert_eq!(failed[2].0, "line:5");
    assert!(failed[2].1.contains("the id field 'id' is empty"), "{}", failed[2].1);

    let rules = queue_rules(&p, "contacts");
    assert!(rules.contains(&("5".into(), Rule::InvalidDate, "signed_up".into())), "{rules:?}");
    assert!(rules.contains(&("6".into(), Rule::InvalidPhone, "phone".into())), "{rules:?}");
    assert!(rules.contains(&("7".into(), Rule::OwnerNotProvisioned, "owner_id".into())), "{rules:?}");
    assert!(rules.contains(&("8".into(), Rule::ParentMissing, "company_id".into())), "{rules:?}");

    // Nothing bad landed; the good rows did, with remapped parents and normalised values.
    assert_eq!(p.count("SELECT COUNT(*) FROM contacts WHERE id > 503"), 2);
    assert_eq!(
        p.count("SELECT COUNT(*) FROM contacts WHERE signed_up IS NULL AND id > 503"),
        0,
        "no zero date turned into NULL"
    );
    let (name, phone, date): (String, Option<String>, String) = p
        .dest()
        .query_row("SELECT name, phone, signed_up FROM contacts WHERE email = 'nine@example.com'", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("nine");
    assert_eq!((name.as_str(), phone, date.as_str()), ("Quoted, with\nnewline", None, "2024-03-04"));
    assert_eq!(
        p.count("SELECT COUNT(*) FROM contacts c JOIN companies co ON co.id = c.company_id WHERE c.id > 503"),
        2
    );
}

fn people(rows: &[&str]) -> String {
    let mut s = String::from("id,name,email,phone,company,owner,signed_up\n");
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedupe_finds_people_across_formats_batches_and_runs() {
    let csv = people(&[
        "1,Existing Person,  dup@example.COM ,415-555-0199,c1,Ann Owner,", // existing 500 by email (case, spaces)
        "2,New Person,new@example.com,,c1,Ann Owner,",
        "3,New Again,NEW@example.com,,c2,Ann Owner,", // same batch as 2
        "4,By Phone,,+1 415 555 2671,c1,Ann Owner,",  // existing 503 by phone format
        "5,Twin,twin@example.com,,c1,Ann Owner,",     // two destination candidates
        "6,New Later,new@example.com,,c1,Ann Owner,", // batch 2, duplicate of 2
    ]);
    let p = TestProject::new(&toml(5, "fill_blanks", 1.0), &[("companies", COMPANIES), ("contacts", &csv)], DEST);
    let run = p.run().await.expect("runs");
    let c = counts_of(&run, "contacts");
    assert_eq!((c.created, c.updated, c.merged, c.queued), (1, 2, 2, 1), "{c:?}");
    assert_eq!(p.count("SELECT COUNT(*) FROM contacts WHERE lower(email) = 'new@example.com'"), 1, "never duplicated");
    // fill_blanks: 500 keeps its name, gains the phone and company.
    let (name, phone, company): (String, String, Option<i64>) = p
        .dest()
        .query_row("SELECT name, phone, company_id FROM contacts WHERE id = 500", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("500");
    assert_eq!((name.as_str(), phone.as_str()), ("Existing", "+14155550199"));
    assert!(company.is_some());
    let ambiguous = queue_rules(&p, "contacts");
    assert_eq!(ambiguous, vec![("5".to_string(), Rule::AmbiguousMatch, "email".to_string())]);
    let store = p.project().store().expect("store");
    let held = store.queue_list(&QueueFilter { pending_only: true, ..Default::default() }).expect("q");
    let sides = held[0].candidates.as_ref().expect("both sides kept").to_string();
    assert!(sides.contains("Twin A") && sides.contains("Twin B"), "{sides}");
    // Both source records merged into one id: their children would find it.
    assert_eq!(store.dest_id("contacts", "2").expect("id"), store.dest_id("contacts", "6").expect("id"));

    // A re-run writes nothing new.
    let again = p.run().await.expect("again");
    let c = counts_of(&again, "contacts");
    assert_eq!(c.created, 0, "{c:?}");
    assert_eq!(p.count("SELECT COUNT(*) FROM contacts"), 4 + 1);
}

/// The match index learns each batch's keys behind the engine (see `pipeline::index_writer`):
/// a duplicate one, two or three batches after its first record must still be found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_found_at_every_distance_in_batches() {
    let csv = people(&[
        "10,A,a@ex.com,,c1,Ann Owner,",             // batch 1
        "11,B,b@ex.com,,c1,Ann Owner,",             //
        "12,A2,a@ex.com,,c1,Ann Owner,",            // batch 2: 10, one batch later
        "13,C,c@ex.com,415-555-0142,c1,Ann Owner,", //
        "14,B2,B@EX.com,,c1,Ann Owner,",            // batch 3: 11, two batches later
        "15,C2,,+1 (415) 555-0142,c1,Ann Owner,",   //          13 by phone, one batch later
        "16,A3,a@ex.com,,c1,Ann Owner,",            // batch 4: 10, three batches later
        "17,D,d@ex.com,,c1,Ann Owner,",             //
        "18,D2, d@ex.com ,,c1,Ann Owner,",          // batch 5: 17, in the next batch
        "19,C3,c@ex.com,,c1,Ann Owner,",            //          13, three batches later
        "20,E,e@ex.com,,c1,Ann Owner,",             // batch 6
    ]);
    let p = TestProject::new(&toml(2, "fill_blanks", 1.0), &[("companies", COMPANIES), ("contacts", &csv)], DEST);
    let run = p.run().await.expect("runs");
    let c = counts_of(&run, "contacts");
    assert_eq!(c.created, 5, "10, 11, 13, 17, 20: {c:?}");
    assert_eq!(c.updated + c.merged, 6, "{c:?}");
    assert_eq!(p.count("SELECT COUNT(*) FROM contacts WHERE id > 503"), 5);
    for email in ["a@ex.com", "b@ex.com", "c@ex.com", "d@ex.com"] {
        assert_eq!(p.count(&format!("SELECT COUNT(*) FROM contacts WHERE email = '{email}'")), 1, "{email}");
    }
    let store = p.project().store().expect("store");
    for (first, dup) in [("10", "12"), ("10", "16"), ("11", "14"), ("13", "15"), ("13", "19"), ("17", "18")] {
        assert_eq!(store.dest_id("contacts", first).expect("id"), store.dest_id("contacts", dup).expect("id"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_rules_do_what_they_say() {
    let csv = people(&["1,Existing Renamed,dup@example.com,,c1,Ann Owner,"]);
    for (rule, name, queued) in
        [("source_wins", "Existing Renamed", 0), ("destination_wins", "Existing", 0), ("queue", "Existing", 1)]
    {
        let p = TestProject::new(&toml(10, rule, 1.0), &[("companies", COMPANIES), ("contacts", &csv)], DEST);
        let run = p.run().await.expect("runs");
        let got: String =
            p.dest().query_row("SELECT name FROM contacts WHERE id = 500", [], |r| r.get(0)).expect("500");
        assert_eq!(got, name, "{rule}");
        assert_eq!(counts_of(&run, "contacts").queued, queued, "{rule}");
        if queued == 1 {
            assert_eq!(queue_rules(&p, "contacts")[0].1, Rule::MatchNeedsDecision);
        }
    }
}

/// The decisions an operator takes on a held match: merge into the chosen candidate, create new;
/// a choice outside the candidates is refused and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_decide_held_matches() {
    let csv = people(&[
        "5,Twin,twin@example.com,415-555-0100,c1,Ann Owner,", // ambiguous: 501 and 502
        "7,Existing Renamed,dup@example.com,,c1,Ann Owner,",  // merge = queue: matches 500, held
    ]);
    let p = TestProject::new(&toml(10, "queue", 1.0), &[("companies", COMPANIES), ("contacts", &csv)], DEST);
    p.run().await.expect("runs");
    let store = p.project().store().expect("store");
    let held = store.queue_list(&QueueFilter { pending_only: true, ..Default::default() }).expect("q");
    let twin = held.iter().find(|i| i.source_id == "5").expect("5 held");
    let renamed = held.iter().find(|i| i.source_id == "7").expect("7 held");
    assert_eq!(twin.candidate_ids(), vec!["501".to_string(), "502".to_string()]);
    // The undecided match carries the destination record's values for the side-by-side view.
    assert_eq!(renamed.candidate_ids(), vec!["500".to_string()]);
    assert!(renamed.candidates.as_ref().expect("sides").to_string().contains("Existing"));

    let err = store
        .queue_correct_many(&[twin.id], &[("@match".into(), Some("500".into()))], &[])
        .expect_err("500 is not one of its candidates");
    assert!(err.to_string().contains("one of its candidates (501, 502)"), "{err}");
    assert!(store.queue_item(twin.id).expect("item").expect("it").corrections.is_empty(), "nothing half-done");

    let err = store
        .queue_correct_many(&[twin.id, renamed.id], &[("@match".into(), Some("501".into()))], &[])
        .expect_err("501 is not a candidate of 7");
    assert!(err.to_string().contains("one of its candidates (500)"), "{err}");
    store.queue_correct_many(&[twin.id], &[("@match".into(), Some("502".into()))], &[]).expect("merge into 502");
    store.queue_correct_many(&[renamed.id], &[("@match".into(), Some("new".into()))], &[]).expect("create new");
    let engine = p.project().engine().expect("engine");
    let run = engine.reprocess(&[twin.id, renamed.id]).await.expect("reprocess");
    let c = run.totals();
    assert_eq!((c.extracted, c.created, c.updated, c.queued), (2, 1, 1, 0), "{c:?}");
    // 502 kept its values and gained the phone (the queue rule merges as fill_blanks); 501 untouched.
    let (name, phone): (String, Option<String>) = p
        .dest()
        .query_row("SELECT name, phone FROM contacts WHERE id = 502", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("502");
    assert_eq!((name.as_str(), phone.as_deref()), ("Twin B", Some("+14155550100")));
    assert_eq!(p.count("SELECT COUNT(*) FROM contacts WHERE id = 501 AND phone IS NULL"), 1);
    assert_eq!(store.dest_id("contacts", "5").expect("id"), Some("502".to_string()));
    // "Create new" wrote a second record beside 500, as asked.
    assert_eq!(p.count("SELECT COUNT(*) FROM contacts WHERE lower(email) = 'dup@example.com'"), 2);
    let matched_by: String = store
        .conn()
        .query_row("SELECT matched_by FROM audit WHERE source_id = '5' AND outcome = 'updated'", [], |r| r.get(0))
        .expect("audited");
    assert_eq!(matched_by, "operator's choice");
    // A later full run keeps the decisions: nothing is duplicated or re-queued.
    let again = p.run().await.expect("again");
    assert_eq!(counts_of(&again, "contacts").queued, 0);
    assert_eq!(p.count("SELECT COUNT(*) FROM contacts WHERE lower(email) = 'dup@example.com'"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_error_rate_halts_and_keeps_what_was_done() {
    let rows: Vec<String> = (1..=60)
        .map(|i| {
            let owner = if i > 20 { "Nobody Known" } else { "Ann Owner" };
            format!("{i},Person {i},p{i}@example.com,,c1,{owner},")
        })
        .collect();
    let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
    let p = TestProject::new(
        &toml(20, "fill_blanks", 0.25),
        &[("companies", COMPANIES), ("contacts", &people(&refs))],
        DEST,
    );
    let run = p.run().await.expect("runs");
    let Finish::Halted(reason) = &run.finish else { panic!("expected a halt, got {:?}", run.finish) };
    assert!(reason.contains("20 of 20 records in batch 2 of contacts"), "{reason}");
    // Which rule tripped, and on which records.
    assert!(reason.contains("owner_not_provisioned (20, e.g. records 21, 22, 23, …)"), "{reason}");
    let c = counts_of(&run, "contacts");
    assert_eq!((c.extracted, c.created, c.queued), (40, 20, 20), "stops after the batch that tripped");
    assert_eq!(p.count("SELECT COUNT(*) FROM contacts WHERE id > 503"), 20, "the first batch stays written");
    let store = p.project().store().expect("store");
    let state = store.run(run.run_id).expect("run").expect("exists");
    assert_eq!((state.state.as_str(), state.reason.as_deref()), ("halted", Some(reason.as_str())));

    // The operator maps the unknown owner; resume goes on after the batch that tripped, in the
    // same run, and the held batch is reprocessed from the queue.
    let text = std::fs::read_to_string(p.file()).expect("toml")
        + "\n[owners.aliases]\n\"Nobody Known\" = \"ann@corp.example\"\n";
    std::fs::write(p.file(), text).expect("toml");
    let engine = p.project().engine().expect("engine");
    let resumed = engine.resume().await.expect("resumes");
    assert_eq!((resumed.run_id, &resumed.finish), (run.run_id, &Finish::Completed));
    let c = counts_of(&resumed, "contacts");
    assert_eq!((c.extracted, c.created, c.queued), (60, 40, 20), "{c:?}");
    let held: Vec<i64> = store
        .queue_list(&cutover::store::QueueFilter { pending_only: true, ..Default::default() })
        .expect("queue")
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(held.len(), 20);
    assert_eq!(engine.reprocess(&held).await.expect("reprocess").totals().created, 20);
    assert_eq!(p.count("SELECT COUNT(*) FROM contacts WHERE id > 503"), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_counts_everything_and_writes_nothing() {
    let csv = people(&[
        "1,Existing Dup,dup@example.com,,c1,Ann Owner,",
        "2,New,new@example.com,,c1,Ann Owner,",
        "3,Ghost,g@example.com,,c1,Casper,",
    ]);
    let p = TestProject::new(&toml(10, "fill_blanks", 1.0), &[("companies", COMPANIES), ("contacts", &csv)], DEST);
    let before = std::fs::read(p.path().join("destination.db")).expect("dest bytes");
    let preview = p.project().preview_engine().expect("preview");
    let run = preview.engine.run(RunKind::Preview).await.expect("preview runs");
    let c = counts_of(&run, "contacts");
    assert_eq!((c.created, c.updated, c.queued), (1, 1, 1));
    assert_eq!(counts_of(&run, "companies").created, 2);
    assert_eq!(p.count("SELECT COUNT(*) FROM companies"), 0, "nothing written");
    assert_eq!(p.count("SELECT COUNT(*) FROM contacts"), 4);
    let after = std::fs::read(p.path().join("destination.db")).expect("dest bytes");
    assert!(after == before, "the destination file changed during a preview");
    let store = p.project().store().expect("store");
    assert!(store.runs().expect("runs").is_empty(), "the project's own state is untouched");
    assert!(store.queue_list(&QueueFilter::default()).expect("queue").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_at_a_time_and_killed_runs_are_marked_interrupted() {
    let csv = people(&["1,Ann,ann@example.com,,c1,Ann Owner,"]);
    let p = TestProject::new(&toml(10, "fill_blanks", 1.0), &[("companies", COMPANIES), ("contacts", &csv)], DEST);
    let project = p.project();
    // A run that was killed: it stays "running" in the store.
    let store = project.store().expect("store");
    let killed = store.begin_run(RunKind::Full, "someone", "h").expect("run");
    // While another process holds the project's run lock, a run does not start.
    let held = cutover::store::RunLock::acquire(&project.store_path).expect("lock");
    let refused = p.run().await.expect_err("refused");
    assert!(!refused.started);
    assert!(format!("{:#}", refused.error).contains("another Cutover process is running this project"));
    assert_eq!(p.count("SELECT COUNT(*) FROM contacts"), 4, "nothing written");
    drop(held);
    let run = p.run().await.expect("runs once the lock is free");
    assert_eq!(counts_of(&run, "contacts").created, 1);
    let old = store.run(killed).expect("run").expect("exists");
    assert_eq!(old.state, "interrupted");
    assert!(old.reason.as_deref().is_some_and(|r| r.contains("what it committed is kept")));
}
