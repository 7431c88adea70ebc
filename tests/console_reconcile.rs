//! The reconciliation pane: verdict first, discrepancies accepted one by one with a reason,
//! drilled down to their records, and a sign-off through a confirmation naming what it accepts.
//! The report is made for real on the demo; the keys go through `update`.

mod common;
use common::console::{ch, draw, key};
use crossterm::event::KeyCode;
use cutover::project::Project;
use cutover::reconcile::{self, Options, Report};
use cutover::store::RunKind;
use cutover::tui::keymap::Keymap;
use cutover::tui::state::{AppState, Confirm, Modal, Pane, QueueQuery, ReconLine};
use cutover::tui::update::{Effect, Msg, update};

async fn demo_report() -> (tempfile::TempDir, Project, Report) {
    let (dir, project) = common::demo();
    let engine = project.engine().expect("engine");
    engine.run(RunKind::Full).await.expect("demo runs");
    let mut report = reconcile::build(&engine, Options::default()).await.expect("report");
    // Fixed, so the snapshots do not depend on the clock or the machine.
    report.generated_at = "2026-11-22T06:00:00.000Z".into();
    report.generated_by = "ann".into();
    (dir, project, report)
}

fn typed(s: &mut AppState, text: &str) {
    for c in text.chars() {
        ch(s, c);
    }
}

fn status(s: &AppState) -> String {
    s.status.as_ref().map(|(_, t)| t.clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discrepancies_are_accepted_one_by_one_then_signed_off() {
    let (_dir, project, report) = demo_report().await;
    let mut s = AppState::new(&project.config, Keymap::defaults(), false);
    s.user = "ann".into();

    // Opening the pane asks for a reconciliation; the answer shows the verdict first.
    let effects = ch(&mut s, '5');
    assert!(effects.contains(&Effect::Reconcile), "{effects:?}");
    assert!(s.reconcile.working);
    update(&mut s, Msg::Reconciled(Ok(Box::new(report.clone()))));
    insta::assert_snapshot!("reconcile_report_80x24", draw(&s, 80, 24).backend());

    // Sign-off is refused while anything is neither resolved nor accepted.
    ch(&mut s, 'S');
    assert!(s.modal.is_none());
    assert!(status(&s).contains("cannot sign off: 3 discrepancies"), "{}", status(&s));

    // Enter opens a discrepancy down to its records; enter on a record shows it in the queue.
    ch(&mut s, 'j');
    key(&mut s, KeyCode::Enter);
    let lines = s.reconcile.lines();
    assert!(matches!(&lines[2], ReconLine::Record { source_id, .. } if source_id == "5060"), "{:?}", lines[2]);
    ch(&mut s, 'j');
    let effects = key(&mut s, KeyCode::Enter);
    assert_eq!(s.pane, Pane::Queue);
    assert_eq!(
        s.queue.query,
        QueueQuery {
            object: Some("contacts".into()),
            reason: Some("owner_not_provisioned".into()),
            issue: None,
            ..Default::default()
        }
    );
    assert!(matches!(effects.as_slice(), [Effect::LoadQueue { .. }]), "{effects:?}");

    // Back: accept each discrepancy with a reason; an empty reason accepts nothing.
    ch(&mut s, '5');
    ch(&mut s, 'k');
    key(&mut s, KeyCode::Enter); // close the records again
    ch(&mut s, 'a');
    key(&mut s, KeyCode::Enter);
    assert!(s.reconcile.accepted.is_empty());
    assert!(status(&s).contains("needs a reason"), "{}", status(&s));
    let reasons =
        ["Dana left; her accounts go to the pool", "partner deals move with the portal", "follow their contacts"];
    for reason in reasons {
        ch(&mut s, 'a');
        typed(&mut s, reason);
        key(&mut s, KeyCode::Enter);
        ch(&mut s, 'j');
    }
    assert_eq!(s.reconcile.accepted.len(), 3);
    // `a` again on an accepted one takes it back.
    ch(&mut s, 'k');
    ch(&mut s, 'a');
    assert_eq!(s.reconcile.accepted.len(), 2);
    ch(&mut s, 'a');
    typed(&mut s, reasons[2]);
    key(&mut s, KeyCode::Enter);

    // Notes, then a confirmation that names everything accepted.
    ch(&mut s, 'S');
    key(&mut s, KeyCode::Enter);
    assert!(status(&s).contains("needs notes"), "{}", status(&s));
    ch(&mut s, 'S');
    typed(&mut s, "rehearsal with the sales ops lead");
    key(&mut s, KeyCode::Enter);
    match &s.modal {
        Some(Modal::Confirm { question, what: Confirm::SignOff { notes } }) => {
            assert_eq!(notes, "rehearsal with the sales ops lead");
            assert!(question.contains("• deals/queued/no_translation (140 records): partner deals move"), "{question}");
        }
        _ => panic!("expected the sign-off confirmation"),
    }
    insta::assert_snapshot!("reconcile_signoff_confirm_80x24", draw(&s, 80, 24).backend());
    let effects = ch(&mut s, 'y');
    let [Effect::SignOff { report: approved, notes, accepted }] = effects.as_slice() else {
        panic!("expected a sign-off effect: {effects:?}");
    };
    assert_eq!(**approved, report);

    // What the runner does with it: recorded, and shown at the top of the pane.
    let store = project.store().expect("store");
    let mut signed = reconcile::signoff::sign_off(&store, approved, notes, accepted).expect("store").expect("signed");
    assert_eq!(signed.accepted.len(), 3);
    (signed.user, signed.at) = ("ann".into(), "2026-11-22T06:05:00.000Z".into());
    update(&mut s, Msg::SignedOff(Ok(signed)));
    assert_eq!(status(&s), "signed off by ann at 2026-11-22T06:05:00.000Z (balanced with accepted exceptions)");
    assert!(s.reconcile.signed());
    insta::assert_snapshot!("reconcile_signed_80x24", draw(&s, 80, 24).backend());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_older_than_the_newest_run_cannot_be_signed() {
    let (_dir, project, report) = demo_report().await;
    let mut s = AppState::new(&project.config, Keymap::defaults(), false);
    ch(&mut s, '5');
    update(&mut s, Msg::Reconciled(Ok(Box::new(report))));
    update(
        &mut s,
        Msg::BalanceLoaded {
            run: Some((2, "full".into(), "completed".into())),
            rows: Vec::new(),
            latest_run: Some(2),
            signoff: None,
        },
    );
    assert!(s.reconcile.stale());
    ch(&mut s, 'S');
    assert!(s.modal.is_none());
    assert!(status(&s).contains("a run came after this report"), "{}", status(&s));
    assert!(draw(&s, 100, 30).backend().to_string().contains("OUT OF DATE"));
    assert_eq!(ch(&mut s, 'r'), vec![Effect::Reconcile]);
}
