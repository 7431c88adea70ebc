//! Rollback: a run's created records are deleted and its updated records restored exactly from
//! their before-images; a record edited in the destination after the write is left alone and
//! listed (with the parent it points at) until the operator decides.

mod common;
use common::demo;
use cutover::pipeline::rollback::{RollbackOptions, rollback};
use cutover::store::RunKind;
use std::collections::HashSet;
use std::path::Path;

fn table(db: &Path, t: &str) -> Vec<Vec<String>> {
    let c = rusqlite::Connection::open(db).expect("db");
    let mut stmt = c.prepare(&format!("SELECT * FROM {t} ORDER BY id")).expect("select");
    let n = stmt.column_count();
    stmt.query_map([], |r| (0..n).map(|i| r.get_ref(i).map(|v| format!("{v:?}"))).collect())
        .expect("rows")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

const TABLES: [&str; 5] = ["owners", "companies", "contacts", "deals", "notes"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_deletes_what_the_run_created_and_restores_what_it_updated_exactly() {
    let (_dir, project) = demo();
    let db = project.config.base_dir().join("destination.db");
    let pristine: Vec<_> = TABLES.iter().map(|t| table(&db, t)).collect();
    let engine = project.engine().expect("engine");
    engine.run(RunKind::Full).await.expect("run");
    let migrated: Vec<_> = TABLES.iter().map(|t| table(&db, t)).collect();
    assert_ne!(migrated, pristine);

    // The preview says what would happen and changes nothing.
    let preview =
        rollback(&engine, 1, &RollbackOptions { dry_run: true, ..Default::default() }).await.expect("preview");
    let contacts = preview.objects.iter().find(|o| o.object == "contacts").expect("contacts");
    assert_eq!((contacts.deleted, contacts.restored), (3366, 800));
    assert_eq!(TABLES.iter().map(|t| table(&db, t)).collect::<Vec<_>>(), migrated);
    assert_eq!(preview.run_id, None);

    let done = rollback(&engine, 1, &RollbackOptions::default()).await.expect("rollback");
    assert_eq!(done.undecided(), 0);
    let by: Vec<(String, u64, u64)> = done.objects.iter().map(|o| (o.object.clone(), o.deleted, o.restored)).collect();
    assert_eq!(
        by,
        vec![
            ("notes".into(), 5932, 0),
            ("deals".into(), 1660, 0),
            ("contacts".into(), 3366, 800),
            ("companies".into(), 400, 0)
        ]
    );
    // Every table exactly as before the run: the 800 updated contacts have their old values back.
    for (t, before) in TABLES.iter().zip(&pristine) {
        assert_eq!(&table(&db, t), before, "{t}");
    }
    let store = project.store().expect("store");
    let (linked, audited): (i64, i64) = store
        .conn()
        .query_row(
            "SELECT (SELECT COUNT(*) FROM id_map), (SELECT COUNT(*) FROM audit WHERE outcome = 'rolled_back' AND run_id = ?1)",
            [done.run_id.expect("a run of its own")],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("store");
    assert_eq!((linked, audited), (0, 11_358 + 800), "unlinked, and audited record by record");

    // Rolling back again finds nothing linked; a new run migrates everything again, once.
    let again = rollback(&engine, 1, &RollbackOptions::default()).await.expect("again");
    assert_eq!(again.objects.iter().map(|o| o.deleted + o.restored).sum::<u64>(), 0);
    let rerun = engine.run(RunKind::Full).await.expect("rerun");
    let c = common::counts_of(&rerun, "contacts");
    assert_eq!((c.created, c.updated), (3366, 800), "{c:?}");
    assert_eq!(table(&db, "deals").len(), 1660);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_edited_after_the_write_are_left_for_a_decision() {
    let (_dir, project) = demo();
    let db = project.config.base_dir().join("destination.db");
    let engine = project.engine().expect("engine");
    engine.run(RunKind::Full).await.expect("run");
    let store = project.store().expect("store");
    let dest_of = |object: &str, sid: &str| store.dest_id(object, sid).expect("id map").expect("linked");
    // A sales rep edits a migrated deal, and a contact Cutover updated, after go-live.
    let conn = rusqlite::Connection::open(&db).expect("dest");
    let deal = dest_of("deals", "20000");
    conn.execute("UPDATE deals SET dealname = 'Renewal (edited)' WHERE id = ?1", [&deal]).expect("edit");
    let updated: String = store
        .conn()
        .query_row(
            "SELECT source_id FROM audit WHERE object = 'contacts' AND outcome = 'updated' AND before_image IS NOT NULL LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("an updated contact");
    let contact = dest_of("contacts", &updated);
    conn.execute("UPDATE contacts SET lastname = 'Edited' WHERE id = ?1", [&contact]).expect("edit");
    let deal_company: String = conn
        .query_row("SELECT associatedcompanyid FROM deals WHERE id = ?1", [&deal], |r| r.get::<_, i64>(0))
        .expect("company")
        .to_string();

    let first = rollback(&engine, 1, &RollbackOptions::default()).await.expect("rollback");
    let undecided: Vec<(String, String)> = first
        .objects
        .iter()
        .flat_map(|o| o.undecided.iter().map(move |c| (o.object.clone(), c.source_id.clone())))
        .collect();
    assert!(undecided.contains(&("deals".into(), "20000".into())), "{undecided:?}");
    assert!(undecided.contains(&("contacts".into(), updated.clone())), "{undecided:?}");
    let why = &first.objects.iter().find(|o| o.object == "deals").expect("deals").undecided[0].why;
    assert!(why.contains("dealname is Renewal (edited) (Cutover wrote"), "{why}");
    // Untouched: the edits stay, and the deal's company stays under it.
    let name: String = conn.query_row("SELECT dealname FROM deals WHERE id = ?1", [&deal], |r| r.get(0)).expect("deal");
    assert_eq!(name, "Renewal (edited)");
    let company_left: i64 =
        conn.query_row("SELECT COUNT(*) FROM companies WHERE id = ?1", [&deal_company], |r| r.get(0)).expect("company");
    assert_eq!(company_left, 1, "a parent a kept child points at is not deleted");
    let last: String =
        conn.query_row("SELECT lastname FROM contacts WHERE id = ?1", [&contact], |r| r.get(0)).expect("c");
    assert_eq!(last, "Edited");

    // Decide: the contact is kept (audited), the deal rolled back anyway — then its company goes too.
    let anyway: HashSet<String> = ["20000".to_string()].into();
    let second =
        rollback(&engine, 1, &RollbackOptions { anyway, keep: true, ..Default::default() }).await.expect("decide");
    assert_eq!(second.undecided(), 0);
    let deals_left: i64 = conn.query_row("SELECT COUNT(*) FROM deals", [], |r| r.get(0)).expect("deals");
    assert_eq!(deals_left, 0);
    let company_left: i64 =
        conn.query_row("SELECT COUNT(*) FROM companies WHERE id = ?1", [&deal_company], |r| r.get(0)).expect("company");
    assert_eq!(company_left, 0);
    let kept: String = store
        .conn()
        .query_row("SELECT detail FROM audit WHERE outcome = 'rollback_kept' AND source_id = ?1", [&updated], |r| {
            r.get(0)
        })
        .expect("kept is audited");
    assert!(kept.contains("lastname is Edited"), "{kept}");
    assert!(store.dest_id("contacts", &updated).expect("id map").is_some(), "a kept record stays linked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_killed_midway_is_run_again_and_finishes_the_job() {
    let (_dir, project) = demo();
    let db = project.config.base_dir().join("destination.db");
    let pristine: Vec<_> = TABLES.iter().map(|t| table(&db, t)).collect();
    let engine = project.engine().expect("engine");
    engine.run(RunKind::Full).await.expect("run");
    let store = project.store().expect("store");
    // What a rollback killed after its destination writes but before its store commit leaves:
    // a created deal already deleted, an updated contact already restored, both still linked.
    let deal = store.dest_id("deals", "20000").expect("id map").expect("linked");
    let (contact_sid, before): (String, String) = store
        .conn()
        .query_row(
            "SELECT source_id, before_image FROM audit WHERE object = 'contacts' AND outcome = 'updated'
             AND before_image IS NOT NULL LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("an updated contact");
    let contact = store.dest_id("contacts", &contact_sid).expect("id map").expect("linked");
    let conn = rusqlite::Connection::open(&db).expect("dest");
    conn.execute("DELETE FROM deals WHERE id = ?1", [&deal]).expect("delete");
    let before: indexmap::IndexMap<String, Option<String>> = serde_json::from_str(&before).expect("json");
    for (field, value) in &before {
        conn.execute(&format!("UPDATE contacts SET {field} = ?1 WHERE id = ?2"), rusqlite::params![value, contact])
            .expect("restore");
    }
    let done = rollback(&engine, 1, &RollbackOptions::default()).await.expect("rollback");
    assert_eq!(done.undecided(), 0, "{:?}", done.objects);
    let already: u64 = done.objects.iter().map(|o| o.already_done).sum();
    assert_eq!(already, 2);
    for (t, before) in TABLES.iter().zip(&pristine) {
        assert_eq!(&table(&db, t), before, "{t}");
    }
}

/// A run that found every record as it was wrote nothing, so its rollback changes nothing and
/// asks nothing: the children earlier runs wrote still point at parents that stay (it asked for
/// a decision on 4,539 contacts and companies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_back_a_run_that_changed_nothing_asks_no_decision() {
    let (_dir, project) = demo();
    let db = project.config.base_dir().join("destination.db");
    let engine = project.engine().expect("engine");
    engine.run(RunKind::Full).await.expect("run");
    let migrated: Vec<_> = TABLES.iter().map(|t| table(&db, t)).collect();
    let again = engine.run(RunKind::Full).await.expect("re-run");
    let done = rollback(&engine, again.run_id, &RollbackOptions::default()).await.expect("rollback");
    assert_eq!(
        done.undecided(),
        0,
        "{:?}",
        done.objects.iter().map(|o| (&o.object, o.undecided.len())).collect::<Vec<_>>()
    );
    let by: Vec<(String, u64, u64, u64)> =
        done.objects.iter().map(|o| (o.object.clone(), o.deleted, o.restored, o.nothing_to_restore)).collect();
    assert_eq!(
        by,
        vec![
            ("notes".into(), 0, 0, 5932),
            ("deals".into(), 0, 0, 1660),
            ("contacts".into(), 0, 0, 4166),
            ("companies".into(), 0, 0, 400)
        ]
    );
    assert_eq!(TABLES.iter().map(|t| table(&db, t)).collect::<Vec<_>>(), migrated, "the destination as it was");
}
