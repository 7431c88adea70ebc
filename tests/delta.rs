//! Delta runs after a full run: exactly the new and changed source records move; a record also
//! changed in the destination since Cutover wrote it waits in the queue instead of being
//! overwritten; deltas repeat without duplicating; a modified-time field and the previous run's
//! high-water mark choose the changed records where the source has one.

mod common;
use common::{TestProject, counts_of, demo};
use cutover::model::Rule;
use cutover::pipeline::delta::DeltaMode;
use cutover::store::{QueueFilter, RunKind};
use std::path::Path;

/// Renames the first `renamed` deals of the demo source and appends two new ones (copies of
/// existing rows with new ids).
fn edit_deals(source: &Path, renamed: usize) -> Vec<String> {
    let path = source.join("deals.csv");
    let mut rows: Vec<Vec<String>> = csv::Reader::from_path(&path)
        .expect("csv")
        .records()
        .map(|r| r.expect("row").iter().map(String::from).collect())
        .collect();
    let header: Vec<String> =
        csv::Reader::from_path(&path).expect("csv").headers().expect("headers").iter().map(String::from).collect();
    let title = header.iter().position(|h| h == "title").expect("title");
    let stage = header.iter().position(|h| h == "stage").expect("stage");
    let mut ids = Vec::new();
    for row in rows.iter_mut().take(renamed) {
        row[title].push_str(" (renamed)");
        ids.push(row[0].clone());
    }
    for (i, id) in ["29998", "29999"].iter().enumerate() {
        let mut row = rows[10 + i].clone();
        row[0] = id.to_string();
        row[stage] = "Won".into();
        rows.push(row);
    }
    let mut w = csv::Writer::from_path(&path).expect("write");
    w.write_record(&header).expect("header");
    for r in rows {
        w.write_record(&r).expect("row");
    }
    w.flush().expect("flush");
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_updates_exactly_the_changed_records_and_queues_those_changed_in_the_destination() {
    let (_dir, project) = demo();
    let engine = project.engine().expect("engine");
    engine.run(RunKind::Full).await.expect("full run");
    // Right after a full run there is nothing to do.
    let idle = engine.delta(DeltaMode::Both).await.expect("delta");
    assert_eq!(idle.totals().extracted, 0);

    let renamed = edit_deals(&project.config.base_dir().join("source"), 3);
    let store = project.store().expect("store");
    let dest = rusqlite::Connection::open(project.config.base_dir().join("destination.db")).expect("dest");
    let edited = store.dest_id("deals", &renamed[1]).expect("id map").expect("written");
    dest.execute("UPDATE deals SET dealname = 'Edited in HubSpot' WHERE id = ?1", [&edited]).expect("edit");

    let run = engine.delta(DeltaMode::Both).await.expect("delta");
    assert_eq!(run.kind, RunKind::Delta);
    let d = counts_of(&run, "deals");
    assert_eq!((d.extracted, d.created, d.updated, d.queued), (5, 2, 2, 1), "{d:?}");
    assert_eq!(counts_of(&run, "contacts").extracted, 0, "nothing else moves");
    for sid in [&renamed[0], &renamed[2]] {
        let id = store.dest_id("deals", sid).expect("id map").expect("written");
        let name: String =
            dest.query_row("SELECT dealname FROM deals WHERE id = ?1", [&id], |r| r.get(0)).expect("deal");
        assert!(name.ends_with(" (renamed)"), "{name}");
    }
    let kept: String =
        dest.query_row("SELECT dealname FROM deals WHERE id = ?1", [&edited], |r| r.get(0)).expect("deal");
    assert_eq!(kept, "Edited in HubSpot", "the destination's edit is not overwritten");
    let held = store
        .queue_list(&QueueFilter {
            object: Some("deals".into()),
            reason: Some("changed_in_destination".into()),
            pending_only: true,
            ..Default::default()
        })
        .expect("queue");
    assert_eq!(held.len(), 1);
    let item = &held[0];
    assert_eq!(item.source_id, renamed[1]);
    assert_eq!(item.issues[0].rule, Rule::ChangedInDestination);
    assert_eq!(item.issues[0].value.as_deref(), Some("Edited in HubSpot"));
    assert!(item.mapped.get("dealname").cloned().flatten().is_some_and(|v| v.ends_with(" (renamed)")));
    assert_eq!(item.candidate_ids(), vec![edited.clone()], "both versions side by side");

    // Again: nothing new is created, nothing duplicated; the held record is still held.
    let again = engine.delta(DeltaMode::Both).await.expect("delta again");
    let d = counts_of(&again, "deals");
    assert_eq!((d.created, d.updated, d.queued), (0, 0, 1), "{d:?}");
    let deals: i64 = dest.query_row("SELECT COUNT(*) FROM deals", [], |r| r.get(0)).expect("count");
    assert_eq!(deals, 1660 + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_new_and_update_changed_each_take_only_their_part() {
    let (_dir, project) = demo();
    let engine = project.engine().expect("engine");
    engine.run(RunKind::Full).await.expect("full run");
    edit_deals(&project.config.base_dir().join("source"), 3);
    let only_new = engine.delta(DeltaMode::CreateNew).await.expect("create-new");
    let d = counts_of(&only_new, "deals");
    assert_eq!((d.extracted, d.created, d.updated), (2, 2, 0), "{d:?}");
    let only_changed = engine.delta(DeltaMode::UpdateChanged).await.expect("update-changed");
    let d = counts_of(&only_changed, "deals");
    assert_eq!((d.extracted, d.created, d.updated), (3, 0, 3), "{d:?}");
    assert_eq!(engine.delta(DeltaMode::Both).await.expect("nothing left").totals().extracted, 0);
}

const OBJECTS: &str = r#"
[objects.accounts]
id = "id"
modified = "updated_at"
[objects.accounts.fields]
name = { from = "name" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modified_time_field_and_the_high_water_mark_choose_the_changed_records() {
    let p = TestProject::new(
        &common::csv_to_sqlite("modified", OBJECTS),
        &[(
            "accounts",
            "id,name,updated_at\n1,Acme,2024-03-01 09:00\n2,Globex,2024-03-02 10:00\n3,Initech,03/01/2024\n",
        )],
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
    );
    p.run().await.expect("full run");
    // Record 1 is modified after the high-water mark (2024-03-02 10:00); record 3's name
    // changes without a newer modified time: by the modified field, it did not change.
    std::fs::write(
        p.path().join("source/accounts.csv"),
        "id,name,updated_at\n1,Acme Corp,2024-03-05 08:00\n2,Globex,2024-03-02 10:00\n3,Initech (typo),03/01/2024\n4,Hooli,2024-03-06\n",
    )
    .expect("source");
    let engine = p.project().engine().expect("engine");
    let run = engine.delta(DeltaMode::Both).await.expect("delta");
    let a = counts_of(&run, "accounts");
    assert_eq!((a.extracted, a.created, a.updated), (2, 1, 1), "{a:?}");
    let names: Vec<String> = p
        .dest()
        .prepare("SELECT name FROM accounts ORDER BY id")
        .expect("q")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("names");
    assert_eq!(names, vec!["Acme Corp", "Globex", "Initech", "Hooli"]);
    // The mark moved to 2024-03-06: the same delta again takes nothing.
    assert_eq!(engine.delta(DeltaMode::Both).await.expect("again").totals().extracted, 0);
}

/// A contact held because its company's row could not be read is released by the delta that
/// writes the company once the export is mended — its own row did not change, so only the
/// hold's reason brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_that_writes_a_missing_parent_releases_its_held_children() {
    let toml = common::csv_to_sqlite(
        "parents",
        r#"
[objects.companies]
match = ["domain"]
[objects.companies.fields]
name = { from = "name" }
domain = { from = "domain" }

[objects.contacts]
match = ["email"]
[objects.contacts.fields]
email = { from = "email", transform = "email" }
company_id = { from = "company", parent = "companies" }
"#,
    );
    let broken = "id,name,domain\n1,\"Acme,acme.example\n2,Globex,globex.example\n";
    let contacts = "id,email,company\n10,ann@acme.example,1\n11,bo@globex.example,2\n";
    let t = common::TestProject::new(
        &toml,
        &[("companies", broken), ("contacts", contacts)],
        "CREATE TABLE companies (id INTEGER PRIMARY KEY, name TEXT, domain TEXT);
         CREATE TABLE contacts (id INTEGER PRIMARY KEY, email TEXT, company_id TEXT);",
    );
    t.run().await.expect("full run");
    let held = |t: &common::TestProject| t.count("SELECT COUNT(*) FROM contacts WHERE email = 'ann@acme.example'");
    assert_eq!(held(&t), 0, "ann waits for her company");
    std::fs::write(
        t.path().join("source/companies.csv"),
        "id,name,domain\n1,Acme,acme.example\n2,Globex,globex.example\n",
    )
    .expect("mend");
    let project = t.project();
    let summary = project.engine().expect("engine").delta(DeltaMode::Both).await.expect("delta");
    assert!(counts_of(&summary, "contacts").created >= 1, "{summary:?}");
    assert_eq!(held(&t), 1, "ann is written");
    let linked = t.count(
        "SELECT COUNT(*) FROM contacts c JOIN companies o ON o.id = c.company_id
         WHERE c.email = 'ann@acme.example' AND o.name = 'Acme'",
    );
    assert_eq!(linked, 1, "ann points at Acme");
    // Nothing else is taken again: a second delta has nothing to do.
    let idle = project.engine().expect("engine").delta(DeltaMode::Both).await.expect("delta");
    assert_eq!(idle.totals().extracted, 0, "{idle:?}");
    let store = project.store().expect("store");
    let open = store.queue_list(&QueueFilter::default()).expect("queue");
    assert!(open.iter().all(|q| q.source_id != "10" || !q.status.is_pending()), "no longer held: {open:?}");
}
