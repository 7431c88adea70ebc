//! The bundled demo migrates with the exact outcome counts the issue describes, the destination
//! holds no duplicates, children point at their parents, and a re-run duplicates nothing.

mod common;
use common::{c, counts_of, demo};
use cutover::demo::generate as g;
use cutover::store::RunKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_migrates_with_the_documented_outcomes() {
    let (dir, project) = demo();
    let engine = project.engine().expect("engine");
    let run = engine.run(RunKind::Full).await.expect("demo runs");
    assert_eq!(run.finish, cutover::pipeline::Finish::Completed);

    let contacts_created = (g::CONTACTS - g::EXISTING_CONTACTS - g::UNPROVISIONED_CONTACTS) as u64;
    let deals_created = (g::DEALS - g::UNMAPPED_STAGE_DEALS) as u64;
    let held_notes = (g::UNPROVISIONED_CONTACTS * g::NOTES_PER_UNPROVISIONED) as u64;
    assert_eq!(counts_of(&run, "companies"), c(400, 0, 0, 0, 0, 0));
    assert_eq!(counts_of(&run, "contacts"), c(contacts_created, 800, 0, 34, 0, 0));
    assert_eq!(counts_of(&run, "deals"), c(deals_created, 0, 0, 140, 0, 0));
    assert_eq!(counts_of(&run, "notes"), c(6000 - held_notes, 0, 0, held_notes, 0, 0));
    assert_eq!((contacts_created, deals_created, held_notes), (3366, 1660, 68));

    // The invariant, from the counters and from the audit log.
    let store = project.store().expect("store");
    for (object, _, counts) in &run.objects {
        assert!(counts.balanced(), "{object}: {counts:?}");
        assert_eq!(store.audit_counts(run.run_id, object).expect("audit"), *counts, "{object}");
    }

    // The destination: 800 pre-existing contacts updated in place, nothing duplicated.
    let dest = rusqlite::Connection::open(dir.path().join("demo/destination.db")).expect("dest");
    let one = |sql: &str| -> i64 { dest.query_row(sql, [], |r| r.get(0)).expect(sql) };
    assert_eq!(one("SELECT COUNT(*) FROM contacts"), 800 + 3366);
    assert_eq!(
        one("SELECT COUNT(DISTINCT lower(trim(email))) FROM contacts WHERE email IS NOT NULL"),
        one("SELECT COUNT(email) FROM contacts")
    );
    assert_eq!(one("SELECT COUNT(*) FROM contacts WHERE id <= 1200800"), 800, "existing contacts keep their ids");
    assert_eq!(
        one("SELECT COUNT(*) FROM contacts WHERE id <= 1200800 AND associatedcompanyid IS NOT NULL"),
        800,
        "fill_blanks filled their company"
    );
    // Children point at destination ids, never at nothing.
    assert_eq!(
        one("SELECT COUNT(*) FROM notes n LEFT JOIN contacts c ON c.id = n.associatedcontactid WHERE c.id IS NULL"),
        0
    );
    assert_eq!(
        one("SELECT COUNT(*) FROM deals d LEFT JOIN companies c ON c.id = d.associatedcompanyid WHERE c.id IS NULL"),
        0
    );
    assert_eq!(
        one("SELECT COUNT(*) FROM notes WHERE associatedcontactid < 1200000"),
        0,
        "note parents remapped to destination ids"
    );
    // No blank owners written, no stage outside the pipeline.
    assert_eq!(one("SELECT COUNT(*) FROM deals WHERE dealstage NOT IN (SELECT id FROM pipeline_stages)"), 0);
    assert_eq!(
        one("SELECT COUNT(*) FROM contacts WHERE phone IS NOT NULL AND phone NOT LIKE '+%' AND id > 1200800"),
        0,
        "E.164 phones"
    );
    // Before-images of what was overwritten.
    let before: i64 = store
        .conn()
        .query_row("SELECT COUNT(*) FROM audit WHERE outcome = 'updated' AND before_image IS NOT NULL", [], |r| {
            r.get(0)
        })
        .expect("before images");
    assert_eq!(before, 800);

    // A second full run finds everything it wrote: updates only, no new record.
    let again = engine.run(RunKind::Full).await.expect("second run");
    assert_eq!(again.totals().created, 0, "{:?}", again.objects);
    assert_eq!(one("SELECT COUNT(*) FROM contacts"), 800 + 3366);
    assert_eq!(one("SELECT COUNT(*) FROM notes"), 6000 - 68);
    assert_eq!(counts_of(&again, "contacts").queued, 34);
}

#[test]
fn committed_demo_data_matches_its_generator() {
    for (name, bytes) in g::generate() {
        let committed = cutover::demo::FILES.iter().find(|(n, _)| *n == name).map(|(_, b)| *b).expect(&name);
        assert!(
            committed == bytes.as_slice(),
            "assets/demo/{name} differs from the generator: run `cutover demo --regenerate assets/demo`"
        );
    }
}
