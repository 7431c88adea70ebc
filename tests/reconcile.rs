//! Reconciliation and sign-off: the demo balances only once its queue is worked; a destination
//! changed behind Cutover's back shows up in read-back; sums are exact; sign-off is refused while
//! anything is open and recorded when each remaining discrepancy is accepted.

mod common;
use common::{TestProject, demo};
use cutover::project::Project;
use cutover::reconcile::{self, Options, Report};
use cutover::store::{QueueFilter, RunKind};

async fn report(project: &Project, options: Options) -> Report {
    let engine = project.engine().expect("engine");
    reconcile::build(&engine, options).await.expect("report")
}

fn keys(report: &Report) -> Vec<&str> {
    report.discrepancies.iter().map(|d| d.key.as_str()).collect()
}

fn pending(project: &Project, object: &str) -> Vec<i64> {
    let store = project.store().expect("store");
    let filter = QueueFilter { object: Some(object.into()), pending_only: true, ..Default::default() };
    store.queue_list(&filter).expect("queue").iter().map(|i| i.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_balances_only_after_its_queue_is_worked_and_then_signs_off() {
    let (_dir, project) = demo();
    project.engine().expect("engine").run(RunKind::Full).await.expect("demo runs");

    // Before: every record is accounted for, but 242 are still held.
    let before = report(&project, Options::default()).await;
    assert!(!before.balanced());
    assert_eq!(
        keys(&before),
        vec!["contacts/queued/owner_not_provisioned", "deals/queued/no_translation", "notes/queued/parent_not_written"]
    );
    assert_eq!(before.discrepancy("deals/queued/no_translation").expect("deals").records.total, 140);
    let deals = before.objects.iter().find(|o| o.object == "deals").expect("deals");
    assert_eq!((deals.counts.in_source, deals.counts.written, deals.counts.queued), (1800, 1660, 140));
    assert!(deals.counts.balanced());
    assert_eq!((deals.readback.checked, deals.readback.identical, deals.readback.missing.total), (200, 200, 0));
    let amount = deals.sums.iter().find(|s| s.field == "amount").expect("amount sum");
    assert!(amount.balanced(), "{amount:?}");
    let stages = deals.distributions.iter().find(|d| d.field == "dealstage").expect("stages");
    assert!(stages.balanced() && stages.rows.iter().map(|r| r.mapped).sum::<u64>() == 1660);

    // Sign-off is refused while anything is open, and names what is.
    let store = project.store().expect("store");
    let refused = reconcile::signoff::sign_off(&store, &before, "all good", &[]).expect("store ok");
    let why = refused.expect_err("refused while the queue is open");
    assert!(why.contains("3 discrepancies") && why.contains("deals/queued/no_translation"), "{why}");
    assert!(store.latest_signoff().expect("read").is_none(), "nothing recorded");

    // Work the queue: provision the rep by alias, translate the stage, reprocess.
    let text = std::fs::read_to_string(&project.config.path).expect("toml");
    let text = text
        .replace(
            "# \"Name in the export\" = \"destination user (email, name or id)\"",
            "\"Dana Whitfield\" = \"sam.taylor@northwind.example\"",
        )
        .replace("\"Lost\" = \"closedlost\"", "\"Lost\" = \"closedlost\"\n\"Partner Referral\" = \"qualifiedtobuy\"");
    std::fs::write(&project.config.path, text).expect("write");
    let project = Project::load(Some(&project.config.path)).expect("reload");
    let engine = project.engine().expect("engine");
    engine.reprocess(&pending(&project, "contacts")).await.expect("contacts");
    engine.reprocess(&pending(&project, "deals")).await.expect("deals");
    assert!(pending(&project, "notes").is_empty(), "the notes followed their contacts");

    let after = report(&project, Options::default()).await;
    assert!(after.balanced(), "{:?}", after.discrepancies);
    for o in &after.objects {
        assert_eq!(o.counts.in_source, o.counts.written, "{}", o.object);
    }
    let signed = reconcile::signoff::sign_off(&store, &after, "checked with the sales ops lead", &[])
        .expect("store ok")
        .expect("signed");
    assert_eq!(signed.verdict, "balanced");
    assert_eq!(signed.report_hash, after.hash().expect("hash"));
    assert!(!signed.user.is_empty());
    let latest = store.latest_signoff().expect("read").expect("recorded");
    assert_eq!((latest.notes.as_str(), latest.voided_by_run), ("checked with the sales ops lead", None));
    let approved: Report =
        serde_json::from_str(&store.signoff_report(latest.id).expect("read").expect("kept")).expect("json");
    assert_eq!(approved, after, "the approved report is kept as it was");

    // A later run voids the sign-off until it is reconciled again.
    engine.run(RunKind::Full).await.expect("re-run");
    let voided = store.latest_signoff().expect("read").expect("recorded");
    assert!(voided.voided_by_run.is_some());
    // And a report made before that run cannot be signed any more.
    let late = reconcile::signoff::sign_off(&store, &after, "again", &[]).expect("store ok");
    assert!(late.expect_err("stale report").contains("reconcile again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_changed_or_deleted_behind_cutovers_back_show_up() {
    let (_dir, project) = demo();
    project.engine().expect("engine").run(RunKind::Full).await.expect("demo runs");
    let store = project.store().expect("store");
    let dest = rusqlite::Connection::open(project.config.base_dir().join("destination.db")).expect("dest");
    // A deal edited in the destination, a contact deleted there.
    let (deal_sid, deal_id): (String, i64) = store
        .conn()
        .query_row("SELECT source_id, dest_id FROM id_map WHERE object = 'deals' ORDER BY source_id LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get::<_, String>(1)?.parse().unwrap_or_default()))
        })
        .expect("a deal");
    let stage: String =
        dest.query_row("SELECT dealstage FROM deals WHERE id = ?1", [deal_id], |r| r.get(0)).expect("stage");
    let other = if stage == "closedwon" { "closedlost" } else { "closedwon" };
    dest.execute("UPDATE deals SET dealstage = ?1, amount = '0.01' WHERE id = ?2", rusqlite::params![other, deal_id])
        .expect("edit");
    let (contact_sid, contact_id): (String, i64) = store
        .conn()
        .query_row(
            "SELECT m.source_id, m.dest_id FROM id_map m WHERE m.object = 'contacts' ORDER BY m.source_id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get::<_, String>(1)?.parse().unwrap_or_default())),
        )
        .expect("a contact");
    let children: i64 = dest
        .query_row("SELECT COUNT(*) FROM notes WHERE associatedcontactid = ?1", [contact_id], |r| r.get(0))
        .expect("notes");
    dest.execute("DELETE FROM contacts WHERE id = ?1", [contact_id]).expect("delete");

    let all = report(&project, Options { all: true, ..Options::default() }).await;
    assert!(!all.balanced());
    let deals = all.objects.iter().find(|o| o.object == "deals").expect("deals");
    let diffs: Vec<(&str, &str, Option<&str>, Option<&str>)> = deals
        .readback
        .differences
        .iter()
        .map(|d| (d.source_id.as_str(), d.field.as_str(), d.wrote.as_deref(), d.found.as_deref()))
        .collect();
    assert!(diffs.contains(&(deal_sid.as_str(), "dealstage", Some(stage.as_str()), Some(other))), "{diffs:?}");
    assert!(diffs.iter().any(|d| d.0 == deal_sid && d.1 == "amount" && d.3 == Some("0.01")), "{diffs:?}");
    assert_eq!(deals.readback.checked, 1660);
    assert_eq!(all.discrepancy("deals/readback/dealstage").expect("key").records.ids, vec![deal_sid.clone()]);
    assert!(all.discrepancy("deals/sum/amount").is_some(), "the money no longer adds up");
    let missing = all.discrepancy("contacts/missing").expect("missing");
    assert_eq!(missing.records.ids, vec![contact_sid]);
    if children > 0 {
        let orphans = all.discrepancy("notes/orphans/associatedcontactid").expect("orphans");
        assert_eq!(orphans.records.total, children as u64);
    }

    // The default sample may not hold the edited deal; the distribution and the sum still catch it.
    let sampled = report(&project, Options::default()).await;
    assert!(sampled.discrepancy("deals/distribution/dealstage").is_some(), "{:?}", keys(&sampled));
    assert!(sampled.discrepancy("deals/sum/amount").is_some());
    assert!(sampled.discrepancy("contacts/missing").is_some());

    // Accepting each remaining discrepancy with a reason signs off; the reasons are kept.
    let accept: Vec<(String, String)> =
        sampled.discrepancies.iter().map(|d| (d.key.clone(), format!("known: {}", d.check))).collect();
    let err = reconcile::signoff::acceptances(&sampled, "notes", &[("contacts/missing".into(), " ".into())])
        .expect_err("a reason is required");
    assert!(err.contains("needs a reason"), "{err}");
    let err = reconcile::signoff::acceptances(&sampled, "notes", &[("contacts/typo".into(), "x".into())])
        .expect_err("unknown key");
    assert!(err.contains("not a discrepancy of this report"), "{err}");
    let signed = reconcile::signoff::sign_off(&store, &sampled, "accepted with the client", &accept)
        .expect("store ok")
        .expect("signed");
    assert_eq!(signed.verdict, "balanced with accepted exceptions");
    assert_eq!(signed.accepted.len(), sampled.discrepancies.len());
    assert_eq!(signed.accepted.iter().find(|a| a.key == "contacts/missing").expect("kept").records, 1);
}

const SUMS: &str = r#"
[destination.types]
"deals.amount" = "decimal"
[objects.deals]
id = "id"
[objects.deals.fields]
name = { from = "name" }
amount = { from = "amount", transform = "decimal" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sums_are_exact_decimals() {
    // 0.1 + 0.2 is 0.3 here, not 0.30000000000000004; the destination keeps amounts as REAL.
    let p = TestProject::new(
        &common::csv_to_sqlite("sums", SUMS),
        &[("deals", "id,name,amount\n1,a,0.1\n2,b,0.2\n3,c,\n4,d,1000000000000.01\n")],
        "CREATE TABLE deals (id INTEGER PRIMARY KEY, name TEXT NOT NULL, amount REAL);",
    );
    p.run().await.expect("runs");
    let r = report(&p.project(), Options::default()).await;
    let sum = &r.objects[0].sums[0];
    assert_eq!((sum.field.as_str(), sum.mapped.as_str()), ("amount", "1000000000000.31"));
    assert!(r.balanced(), "{:?}", r.discrepancies);
    assert_eq!(sum.destination, "1000000000000.31");
    p.dest().execute("UPDATE deals SET amount = 0.30000000000000004 WHERE id = 2", []).expect("edit");
    let r = report(&p.project(), Options::default()).await;
    // 28 significant digits: the float noise rounds into the cents, and the sums no longer agree.
    assert_eq!(r.objects[0].sums[0].destination, "1000000000000.41");
    assert!(r.discrepancy("deals/sum/amount").is_some());
}
