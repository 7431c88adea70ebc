//! Planted faults: reconciliation must name each one by itself, with witnesses that do not
//! share the code they check — rows a reader loses, a record someone adds to the destination,
//! two people merged into one record without a decision, two records left sharing an email, a
//! value edited behind Cutover's back — and sign-off must refuse until each is accepted.

mod common;
use common::demo;
use cutover::connect::{Batch, Cursor, Source};
use cutover::model::Extracted;
use cutover::reconcile::{self, Options};
use cutover::store::RunKind;
use std::sync::Arc;

/// A reader that loses every 500th row of one object (a quoting bug, say), while the source's
/// own count is the real one.
struct Lossy {
    inner: Arc<dyn Source>,
    object: &'static str,
}

#[async_trait::async_trait]
impl Source for Lossy {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn fields(&self, object: &str) -> color_eyre::Result<cutover::model::FieldNames> {
        self.inner.fields(object).await
    }
    async fn count(&self, object: &str) -> color_eyre::Result<u64> {
        self.inner.count(object).await
    }
    async fn read_batch(&self, object: &str, id_field: &str, cursor: &Cursor, max: usize) -> color_eyre::Result<Batch> {
        let mut batch = self.inner.read_batch(object, id_field, cursor, max).await?;
        if object == self.object {
            batch.records.retain(|r| match r {
                Extracted::Record(rec) => !rec.source_id.ends_with("00"),
                Extracted::Malformed { .. } => true,
            });
        }
        Ok(batch)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_planted_fault_is_named_and_sign_off_refuses() {
    let (_dir, project) = demo();
    project.engine().expect("engine").run(RunKind::Full).await.expect("demo runs");
    let db = rusqlite::Connection::open(project.config.base_dir().join("destination.db")).expect("destination");
    let store = project.store().expect("store");
    let dest_of = |sid: &str| store.dest_id("contacts", sid).expect("id map").expect("linked");

    // Someone adds a contact in the destination during the cutover.
    db.execute(
        "INSERT INTO contacts (firstname, lastname, email, hubspot_owner_id) VALUES ('Walk', 'In', 'walk.in@example.com', 1)",
        [],
    )
    .expect("insert");
    // Two migrated contacts end up with one email (an admin's bulk edit).
    let (a, b) = (dest_of("5010"), dest_of("5011"));
    let email_a: String = db.query_row("SELECT email FROM contacts WHERE id = ?1", [&a], |r| r.get(0)).expect("a");
    db.execute("UPDATE contacts SET email = ?1 WHERE id = ?2", rusqlite::params![email_a, b]).expect("edit");
    // A value edited behind Cutover's back.
    let c = dest_of("5020");
    db.execute("UPDATE contacts SET lastname = 'Edited' WHERE id = ?1", [&c]).expect("edit");
    // Two people linked to one record with no decision (what a wrong matcher would leave).
    store
        .conn()
        .execute("UPDATE id_map SET dest_id = ?1 WHERE object = 'contacts' AND source_id = '5030'", [dest_of("5031")])
        .expect("tamper");

    // And a reader that loses rows of deals.
    let source =
        Arc::new(Lossy { inner: cutover::connect::open_source(&project.config).expect("source"), object: "deals" });
    let dest = cutover::connect::open_destination(&project.config, false).expect("destination");
    let engine = cutover::pipeline::Engine::new(project.config.clone(), source, dest, project.store_path.clone())
        .expect("engine");
    let report = reconcile::build(&engine, Options { all: true, ..Options::default() }).await.expect("report");
    let keys: Vec<&str> = report.discrepancies.iter().map(|d| d.key.as_str()).collect();
    for wanted in [
        "deals/source_count",
        "contacts/destination_count",
        "contacts/duplicates/email",
        "contacts/readback/lastname",
        "contacts/unrecorded_merge",
    ] {
        assert!(keys.contains(&wanted), "{wanted} is named: {keys:?}");
    }
    let lost = report.discrepancy("deals/source_count").expect("source count");
    assert!(lost.summary.contains("1800") && lost.summary.contains("1782"), "{}", lost.summary);
    let extra = report.discrepancy("contacts/destination_count").expect("destination count");
    assert!(extra.summary.contains("1 records appeared or vanished"), "{}", extra.summary);
    let shared = report.discrepancy("contacts/duplicates/email").expect("duplicates");
    assert!(shared.records.ids.contains(&"5010".to_string()) && shared.records.ids.contains(&"5011".to_string()));

    // Sign-off refuses while any of them is open, naming them.
    let refused = reconcile::signoff::sign_off(&store, &report, "looks fine", &[]).expect("store ok");
    let why = refused.expect_err("refused");
    assert!(why.contains("contacts/unrecorded_merge") && why.contains("deals/source_count"), "{why}");
    assert!(store.latest_signoff().expect("read").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_the_run_decided_are_listed_with_their_survivor() {
    let (_dir, project) = demo();
    // A person comes twice in the export by one email: one contact, fed by both.
    let persons = project.config.base_dir().join("source/persons.csv");
    let text = std::fs::read_to_string(&persons).expect("persons");
    let first = text.lines().nth(1).expect("a person");
    let email = first.split(',').nth(2).expect("email").trim().to_string();
    // The same person written again (her name in capitals): a shared address alone would hold a stranger.
    let name = first.split(',').nth(1).expect("name").trim().to_uppercase();
    std::fs::write(&persons, format!("{text}99999,{name},{email},,,Ana López,,2024-01-01,3\n")).expect("persons");
    project.engine().expect("engine").run(RunKind::Full).await.expect("demo runs");
    let engine = project.engine().expect("engine");
    let report = reconcile::build(&engine, Options::default()).await.expect("report");
    let merged = report.discrepancy("contacts/merged").expect("listed");
    assert_eq!(merged.records.total, 2, "{merged:?}");
    let contacts = report.objects.iter().find(|o| o.object == "contacts").expect("contacts");
    let group = &contacts.witnesses.one_to_one.merged[0];
    assert_eq!(group.survivor.as_deref(), Some("5000"), "the first record read survives");
    assert_eq!(group.members, ["99999"]);
    assert!(!report.discrepancies.iter().any(|d| d.key == "contacts/unrecorded_merge"), "it is a recorded decision");
}
