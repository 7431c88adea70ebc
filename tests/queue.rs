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

/// Held records worked by filter from a shell, as at scale: one command skips, corrects or
/// previews every record that matches, never one per record; a mistake changes nothing.
#[test]
fn held_records_are_skipped_corrected_and_previewed_by_filter_from_the_shell() {
    let dir = tempfile::tempdir().expect("tempdir");
    let project = dir.path().join("demo");
    cutover::demo::setup(&project).expect("demo");
    let run = |args: &[&str]| common::cutover(&project, args, &[]);
    assert!(run(&["run"]).status.success());
    let state = || rusqlite::Connection::open(project.join("cutover.state.db")).expect("state");
    let count = |sql: &str| -> i64 { state().query_row(sql, [], |r| r.get(0)).expect(sql) };
    let open = |reason: &str| {
        count(&format!("SELECT COUNT(*) FROM queue WHERE status IN ('open', 'fixed') AND reason = '{reason}'"))
    };
    assert_eq!(open("owner_not_provisioned"), 34);

    // A mistake in the filter is named, and nothing changes.
    let out = run(&["queue", "skip", "--where", "phne=x", "--reason", "typo"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(common::text(&out).contains("no held record has a field 'phne'"), "{}", common::text(&out));
    let out = run(&["queue", "skip", "35", "--object", "deals", "--reason", "both"]);
    assert!(common::text(&out).contains("not both"), "{}", common::text(&out));
    // All or none: one id that is not held refuses the lot.
    let out = run(&["queue", "skip", "35", "999999", "--reason", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(open("no_translation"), 140, "nothing was skipped");

    // Every contact held for an owner nobody provisioned, in one command and one run.
    let runs_before = count("SELECT COUNT(*) FROM runs");
    let out = run(&["queue", "skip", "--held-for", "owner_not_provisioned", "--reason", "owners left the company"]);
    assert!(out.status.success(), "{}", common::text(&out));
    assert!(common::text(&out).contains("34 queue items skipped"), "{}", common::text(&out));
    assert_eq!(open("owner_not_provisioned"), 0);
    assert_eq!(count("SELECT COUNT(*) FROM runs"), runs_before + 1, "one run for the lot");
    assert_eq!(count("SELECT COUNT(*) FROM audit WHERE outcome = 'skipped' AND detail LIKE '%owners left%'"), 34);

    // --where reads the value as it stands: a source value, a blank mapped value.
    let listed = common::text(&run(&["queue", "list", "--where", "source.stage=Partner Referral", "--limit", "5"]));
    assert!(listed.contains("140 records match --where; the first 5 are listed (--limit N for more)"), "{listed}");
    let listed = common::text(&run(&["queue", "list", "--where", "source.stage=Won"]));
    assert!(listed.contains("0 records matching --where"), "{listed}");
    // Records of another object have no such field: a blank matches only where the field is.
    let listed = common::text(&run(&["queue", "list", "--where", "dealstage="]));
    assert!(listed.contains("140 records match --where"), "{listed}");

    let out = run(&["queue", "fix", "--where", "source.stage=Partner Referral", "dealstage=qualifiedtobuy"]);
    assert!(out.status.success(), "{}", common::text(&out));
    // Corrected, the field no longer holds a blank.
    assert!(common::text(&run(&["queue", "list", "--where", "dealstage="])).contains("0 records matching"));

    // A preview of the reprocess: what it would write, and nothing changes.
    let dest = || rusqlite::Connection::open(project.join("destination.db")).expect("dest");
    let deals = || -> i64 { dest().query_row("SELECT COUNT(*) FROM deals", [], |r| r.get(0)).expect("deals") };
    let (deals_before, audit_before) = (deals(), count("SELECT COUNT(*) FROM audit"));
    let out = run(&["queue", "reprocess", "--reason", "no_translation", "--dry-run"]);
    let said = common::text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("nothing was written"), "{said}");
    let created = said.lines().find(|l| l.trim_start().starts_with("deals")).expect("deals row");
    assert!(created.split_whitespace().nth(3) == Some("140"), "140 would be created: {created}");
    assert_eq!((deals(), count("SELECT COUNT(*) FROM audit")), (deals_before, audit_before));
    assert_eq!(open("no_translation"), 140, "still held after the preview");

    // And for real.
    assert!(run(&["queue", "reprocess", "--reason", "no_translation"]).status.success());
    assert_eq!((deals(), open("no_translation")), (deals_before + 140, 0));
}

/// Skipping the second row under a repeated id is that row's outcome: the first row, written,
/// stays counted written — by reconcile now and after a delta run (it was counted skipped).
#[test]
fn skipping_a_repeated_ids_second_row_leaves_the_first_written() {
    use common::{TestProject, csv_to_sqlite, cutover, text};
    let p = TestProject::new(
        &csv_to_sqlite("dup", "[objects.people.fields]\nname = { from = \"name\" }\n"),
        &[("people", "id,name\n1,A\n2,B\n2,B\n3,C\n3,Cee\n")],
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);",
    );
    assert!(cutover(p.path(), &["run"], &[]).status.success());
    let out = cutover(p.path(), &["queue", "skip", "--held-for", "duplicate_source_id", "--reason", "dup"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let counts = |p: &TestProject| -> String {
        let report = text(&cutover(p.path(), &["reconcile"], &[]));
        report.lines().skip_while(|l| !l.starts_with("### Counts")).nth(4).unwrap_or_default().to_string()
    };
    // in source, source's count, written, held, skipped, …
    assert!(counts(&p).starts_with("| 5 | 5 | 3 | 0 | 2 |"), "{}", counts(&p));
    assert!(cutover(p.path(), &["run", "--delta", "both"], &[]).status.success());
    assert!(counts(&p).starts_with("| 5 | 5 | 3 | 0 | 2 |"), "{}", counts(&p));
    assert_eq!(p.count("SELECT COUNT(*) FROM people"), 3);
}
