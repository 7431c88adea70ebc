//! The conflict queue: a held record is corrected and reprocessed in place, without rerunning
//! the batch; children held behind a parent are released when it is written.

mod common;
use common::demo;
use cutover::model::Rule;
use cutover::store::{QueueFilter, QueueStatus, RunKind};

fn filter(object: &str, reason: &str) -> QueueFilter {
    QueueFilter { object: Some(object.into()), reason: Some(reason.into()), pending_only: true, limit: None, offset: 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrections_reprocess_in_place_and_release_children() {
    let (_dir, project) = demo();
    let engine = project.engine().expect("engine");
    engine.run(RunKind::Full).await.expect("demo runs");
    let store = project.store().expect("store");

    // Each held deal says why, with the source value and a suggestion.
    let deals = store.queue_list(&filter("deals", "no_translation")).expect("list");
    assert_eq!(deals.len(), 140);
    let first = &deals[0];
    assert_eq!(first.issues[0].field, "dealstage");
    assert_eq!(first.issues[0].rule, Rule::NoTranslation);
    assert!(matches!(first.issues[0].value.as_deref(), Some("On Hold" | "Partner Referral")));
    assert_eq!(first.source.get("stage").cloned().flatten(), first.issues[0].value, "the raw source value is kept");

    // A match decision is refused on a record that has no match to decide.
    let err = store
        .queue_correct_many(&[deals[0].id], &[("@match".into(), Some("new".into()))], &[])
        .expect_err("no candidates");
    assert!(err.to_string().contains("has no match to decide"), "{err}");

    // A correction with a typo stays held, with the new issue; the right one is written.
    store.queue_correct(deals[0].id, &[("dealstage".into(), Some("qualifiedtobuy".into()))]).expect("fix");
    store.queue_correct(deals[1].id, &[("dealstage".into(), Some("qualifedtobuy".into()))]).expect("fix");
    let run = engine.reprocess(&[deals[0].id, deals[1].id]).await.expect("reprocess");
    let counts = run.totals();
    assert_eq!((counts.extracted, counts.created, counts.queued), (2, 1, 1));
    let written = store.queue_item(deals[0].id).expect("item").expect("exists");
    assert_eq!(written.status, QueueStatus::Resolved);
    let still = store.queue_item(deals[1].id).expect("item").expect("exists");
    assert_eq!(still.status, QueueStatus::Open);
    assert_eq!(still.issues[0].rule, Rule::Picklist);
    assert_eq!(still.issues[0].suggestion.as_deref(), Some("did you mean 'qualifiedtobuy'?"));
    assert!(store.dest_id("deals", &deals[0].source_id).expect("id map").is_some());

    // The correction is in the audit log with who and when.
    let (user, detail): (String, String) = store
        .conn()
        .query_row(
            "SELECT user, detail FROM audit WHERE outcome = 'corrected' AND source_id = ?1",
            [&deals[0].source_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("correction audited");
    assert!(!user.is_empty());
    assert_eq!(detail, "dealstage = \"qualifiedtobuy\"");

    // Provisioning the rep by alias and reprocessing the 34 contacts releases their 68 notes.
    let text = std::fs::read_to_string(&project.config.path).expect("toml");
    let text = text.replace(
        "# \"Name in the export\" = \"destination user (email, name or id)\"",
        "\"Dana Whitfield\" = \"sam.taylor@northwind.example\"",
    );
    std::fs::write(&project.config.path, text).expect("write");
    let project = cutover::project::Project::load(Some(&project.config.path)).expect("reload");
    let engine = project.engine().expect("engine");
    let contacts: Vec<i64> =
        store.queue_list(&filter("contacts", "owner_not_provisioned")).expect("list").iter().map(|i| i.id).collect();
    assert_eq!(contacts.len(), 34);
    let run = engine.reprocess(&contacts).await.expect("reprocess");
    let by_object: Vec<(String, u64, u64)> =
        run.objects.iter().map(|(o, _, c)| (o.clone(), c.extracted, c.created)).collect();
    assert_eq!(by_object, vec![("contacts".into(), 34, 34), ("notes".into(), 68, 68)]);
    assert!(store.queue_list(&filter("notes", "parent_not_written")).expect("list").is_empty());
    let orphans: i64 = rusqlite::Connection::open(project.config.base_dir().join("destination.db"))
        .expect("dest")
        .query_row(
            "SELECT COUNT(*) FROM notes n LEFT JOIN contacts c ON c.id = n.associatedcontactid WHERE c.id IS NULL",
            [],
            |r| r.get(0),
        )
        .expect("orphans");
    assert_eq!(orphans, 0);
    let left: u64 = store.queue_summary().expect("summary").iter().map(|r| r.2).sum();
    assert_eq!(left, 139, "only the uncorrected deals remain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_correction_writes_all_140_deals() {
    let (_dir, project) = demo();
    let engine = project.engine().expect("engine");
    engine.run(RunKind::Full).await.expect("demo runs");
    let store = project.store().expect("store");
    let ids: Vec<i64> =
        store.queue_list(&filter("deals", "no_translation")).expect("list").iter().map(|i| i.id).collect();
    for id in &ids {
        store.queue_correct(*id, &[("dealstage".into(), Some("appointmentscheduled".into()))]).expect("fix");
    }
    let run = engine.reprocess(&ids).await.expect("reprocess");
    assert_eq!(run.totals().created, 140);
    let deals: i64 = rusqlite::Connection::open(project.config.base_dir().join("destination.db"))
        .expect("dest")
        .query_row("SELECT COUNT(*) FROM deals", [], |r| r.get(0))
        .expect("count");
    assert_eq!(deals, 1800);
    // A later full run re-applies the corrections: the deals stay written, nothing is re-queued.
    let again = engine.run(RunKind::Full).await.expect("re-run");
    let deals_again = common::counts_of(&again, "deals");
    assert_eq!((deals_again.unchanged, deals_again.created, deals_again.queued), (1800, 0, 0), "{deals_again:?}");
    assert_eq!(store.queue_list(&filter("deals", "no_translation")).expect("list").len(), 0);
    // Reprocessing a resolved item is refused, not repeated.
    let err = engine.reprocess(&ids[..1]).await.expect_err("already written");
    assert!(format!("{:#}", err.error).contains("only open items"), "{:#}", err.error);
}
