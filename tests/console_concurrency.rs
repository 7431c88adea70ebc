//! The console's runner against a real project: a reprocess started while another console holds
//! the project's run lock waits its turn (saying so), then writes — it never fails falsely; and
//! a bulk correction changes exactly what its preview said.

mod common;
use cutover::store::{QueueFilter, QueueStatus, RunLock};
use cutover::tui::runner::Runner;
use cutover::tui::update::{Effect, Msg};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Msg>) -> Msg {
    tokio::time::timeout(Duration::from_secs(60), rx.recv()).await.expect("an answer within a minute").expect("open")
}

/// The demo run, and three of the deals it held (no stage translation).
async fn three_held_deals() -> (tempfile::TempDir, cutover::project::Project, cutover::store::Store, Vec<i64>) {
    let (dir, project) = common::demo();
    let engine = project.engine().expect("engine");
    engine.run(cutover::store::RunKind::Full).await.expect("demo run");
    drop(engine);
    let store = project.store().expect("store");
    let filter = QueueFilter { object: Some("deals".into()), pending_only: true, ..Default::default() };
    let ids: Vec<i64> = store.queue_list(&filter).expect("list").iter().take(3).map(|i| i.id).collect();
    (dir, project, store, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reprocess_waits_for_the_other_consoles_and_then_writes() {
    let (_dir, project, store, ids) = three_held_deals().await;
    store.queue_correct_many(&ids, &[("dealstage".into(), Some("closedwon".into()))], &[]).expect("fix");

    // The other console's reprocess holds the project.
    let other = RunLock::acquire(&project.store_path).expect("the other console's lock");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let path = project.store_path.clone();
    let runner = Runner::new(Arc::new(project), tx, Instant::now(), "me (console pid 1)".into());
    runner.run(Effect::Reprocess { ids: ids.clone() });
    let waiting = loop {
        match next(&mut rx).await {
            Msg::Waited(Some(text)) => break text,
            Msg::Progress { .. } => {}
            other => panic!("expected to wait for the lock, got {other:?}"),
        }
    };
    assert!(waiting.contains("waiting for the other console's reprocess"), "{waiting}");
    assert!(waiting.contains(&format!("pid {}", std::process::id())), "names who holds it: {waiting}");
    drop(other);
    let (summary, failed) = loop {
        if let Msg::RunEnded { summary, failed } = next(&mut rx).await {
            break (summary, failed);
        }
    };
    assert!(!failed, "{summary}");
    let store = cutover::store::Store::open(&path).expect("store");
    for id in &ids {
        let item = store.queue_item(*id).expect("read").expect("item");
        assert_eq!(item.status, QueueStatus::Resolved, "#{id} written once the lock was free: {summary}");
    }
    let runs = store.runs().expect("runs");
    assert!(runs.iter().all(|r| r.state != "failed"), "no run recorded as failed: {runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reprocess_waiting_for_the_lock_stops_when_told() {
    let (_dir, project) = common::demo();
    let other = RunLock::acquire(&project.store_path).expect("the other console's lock");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let runner = Runner::new(Arc::new(project), tx, Instant::now(), "me (console pid 1)".into());
    runner.run(Effect::Reprocess { ids: vec![1] });
    loop {
        if let Msg::Waited(Some(_)) = next(&mut rx).await {
            break;
        }
    }
    runner.run(Effect::Control(cutover::pipeline::progress::Control::Cancel));
    let mut stopped = false;
    loop {
        match next(&mut rx).await {
            Msg::Waited(None) => stopped = true,
            Msg::RunEnded { failed, .. } => {
                assert!(stopped && failed, "told it stopped waiting, and that nothing was reprocessed");
                break;
            }
            _ => {}
        }
    }
    drop(other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_correction_changes_what_its_preview_said_and_no_more() {
    let (_dir, project, store, ids) = three_held_deals().await;
    // One of them already holds the value (typed with a trailing space: the same value).
    store.queue_correct_many(&ids[..1], &[("dealstage".into(), Some("closedwon ".into()))], &[]).expect("fix");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let path = project.store_path.clone();
    let runner = Runner::new(Arc::new(project), tx, Instant::now(), "me (console pid 1)".into());
    let field = "dealstage".to_string();
    let value = Some("closedwon".to_string());
    runner.run(Effect::PreviewFix { ids: ids.clone(), field: field.clone(), value: value.clone() });
    let preview = loop {
        if let Msg::FixPreviewed { result, .. } = next(&mut rx).await {
            break result.expect("previewed");
        }
    };
    assert!(preview.starts_with("2 change, 1 already hold it"), "{preview}");
    runner.run(Effect::Fix { ids: ids.clone(), field, value, was: None });
    let done = loop {
        if let Msg::Done { message, .. } = next(&mut rx).await {
            break message;
        }
    };
    assert!(done.contains("on 2 records (1 already held it: left as they are)"), "{done}");
    let store = cutover::store::Store::open(&path).expect("store");
    let untouched = store.queue_item(ids[0]).expect("read").expect("item");
    assert_eq!(untouched.corrections.get("dealstage"), Some(&Some("closedwon ".to_string())), "left as it was");
    let corrected: i64 = store
        .conn()
        .query_row("SELECT COUNT(*) FROM audit WHERE outcome = 'corrected'", [], |r| r.get(0))
        .expect("count");
    assert_eq!(corrected, 3, "the first correction, then the two the preview named");
}
