//! Console flows added with the mapping editor, claims, remote runs and match decisions: `update`
//! driven key by key (no terminal), with snapshots of what the operator then sees.

mod common;
use common::console::{ch, demo_state, draw, held, key};
use crossterm::event::KeyCode;
use cutover::model::{Counts, Issue, Rule};
use cutover::pipeline::progress::ObjectProgress;
use cutover::pipeline::sample::{Sample, SampleRecord};
use cutover::store::QueueItem;
use cutover::tui::state::{AppState, Confirm, EditTarget, Modal, ObservedRun, Pane, QueueQuery, SampleView};
use cutover::tui::update::{Effect, Msg, update};

fn state() -> (tempfile::TempDir, AppState) {
    let (dir, mut s) = demo_state();
    s.me = "ann (console pid 1)".into();
    (dir, s)
}

fn typed(s: &mut AppState, text: &str) {
    for c in text.chars() {
        ch(s, c);
    }
}
fn clear_input(s: &mut AppState) {
    for _ in 0..80 {
        key(s, KeyCode::Backspace);
    }
}
fn modal_error(s: &AppState) -> Option<String> {
    match &s.modal {
        Some(Modal::Edit { error, .. }) => error.clone(),
        _ => None,
    }
}

/// What the sample of the demo's deals answers: one record's stage has no translation.
fn deals_sample(version: u64) -> Msg {
    let s = |v: &str| Some(v.to_string());
    let record = |id: &str, stage: &str, mapped: Option<String>, issue: bool| SampleRecord {
        source_id: id.into(),
        origin: format!("deals.csv:{id}"),
        source: [("title".to_string(), s("Acme — 12 seats")), ("stage".to_string(), s(stage))].into_iter().collect(),
        values: [("dealname".to_string(), s("Acme — 12 seats")), ("dealstage".to_string(), mapped)]
            .into_iter()
            .collect(),
        issues: if issue {
            vec![Issue {
                field: "dealstage".into(),
                rule: Rule::NoTranslation,
                value: s(stage),
                message: format!("no entry for '{stage}' in translation table deal_stage"),
                suggestion: None,
            }]
        } else {
            Vec::new()
        },
        skipped: None,
    };
    let fields = ["id", "title", "value", "currency", "stage", "status", "org_id", "owner_name"];
    Msg::Sampled(SampleView {
        object: "deals".into(),
        version,
        result: Ok(Sample {
            object: "deals".into(),
            source_fields: fields.iter().map(|f| f.to_string()).collect(),
            records: vec![
                record("20000", "Won", s("closedwon"), false),
                record("20001", "Partner Referral", None, true),
            ],
        }),
    })
}

fn to_deals_stage_row(s: &mut AppState) {
    ch(s, '2');
    ch(s, 'l');
    ch(s, 'l');
    assert_eq!(s.mapping.current().map(|o| o.name.as_str()), Some("deals"));
    for _ in 0..4 {
        ch(s, 'j');
    }
}

#[test]
fn the_mapping_editor_adds_a_translation_from_the_sample_then_saves() {
    let (_d, mut s) = state();
    let fx = ch(&mut s, '2');
    assert!(matches!(&fx[..], [Effect::SampleMapping { object, version: 0, .. }] if object == "companies"));
    to_deals_stage_row(&mut s);
    update(&mut s, deals_sample(0));
    insta::assert_snapshot!("mapping_sample_80x24", draw(&s, 80, 24).backend());

    // `t` offers the value the sample could not translate.
    ch(&mut s, 't');
    assert!(
        matches!(&s.modal, Some(Modal::Edit { target: EditTarget::Translation { table }, .. }) if table == "deal_stage")
    );
    key(&mut s, KeyCode::Left);
    typed(&mut s, "qualifiedtobuy");
    let fx = key(&mut s, KeyCode::Enter);
    assert!(s.modal.is_none(), "{:?}", modal_error(&s));
    assert!(s.mapping.text.contains(r#""Partner Referral" = "qualifiedtobuy""#));
    assert!(s.mapping.dirty());
    assert!(s.mapping.text.contains("# Pipedrive stage names → HubSpot stage ids."), "comments kept");
    assert!(matches!(&fx[..], [Effect::SampleMapping { object, version: 1, .. }] if object == "deals"));

    // Saving sends the edited text with the text the file is expected to still hold.
    let saved_before = s.mapping.saved.clone();
    let fx = ch(&mut s, 'w');
    assert_eq!(fx, vec![Effect::SaveMapping { text: s.mapping.text.clone(), expected: saved_before }]);
    assert_eq!(ch(&mut s, 'w'), Vec::<Effect>::new(), "one save at a time");
    let text = s.mapping.text.clone();
    update(&mut s, Msg::Saved { text });
    assert!(!s.mapping.dirty());
    assert!(s.status.as_ref().is_some_and(|(bad, t)| !bad && t.contains("the next run uses it")));
}

#[test]
fn a_bad_row_stays_in_the_editor_with_the_reason_and_changes_nothing() {
    let (_d, mut s) = state();
    to_deals_stage_row(&mut s);
    update(&mut s, deals_sample(0));
    let before = s.mapping.text.clone();
    ch(&mut s, 'e');
    clear_input(&mut s);
    typed(&mut s, r#"dealstage = "stage""#);
    key(&mut s, KeyCode::Enter);
    assert!(modal_error(&s).is_some_and(|e| e.contains("a mapping is an inline table")), "{:?}", modal_error(&s));
    // An unknown translation table is caught by the file's own checks, with the key and line.
    clear_input(&mut s);
    typed(&mut s, r#"dealstage = { from = "stage", translate = "deal_stages" }"#);
    key(&mut s, KeyCode::Enter);
    let e = modal_error(&s).expect("still open");
    assert!(e.contains("objects.deals.fields.dealstage.translate") && e.contains("line"), "{e}");
    insta::assert_snapshot!("mapping_edit_refused_80x24", draw(&s, 80, 24).backend());
    key(&mut s, KeyCode::Esc);
    assert_eq!(s.mapping.text, before);
    assert!(!s.mapping.dirty());
}

#[test]
fn unmapped_fields_show_and_exclusion_toggles_and_discard_restores() {
    let (_d, mut s) = state();
    to_deals_stage_row(&mut s);
    update(&mut s, deals_sample(0));
    // The excluded `status` is the last row; `x` takes it off the list: now it is unmapped.
    key(&mut s, KeyCode::End);
    ch(&mut s, 'x');
    assert!(s.mapping.text.contains("exclude = []"), "{}", s.mapping.text);
    let lines = s.mapping.lines();
    assert!(lines.iter().any(|l| matches!(l, cutover::tui::state::MappingLine::Unmapped("status"))));
    // `x` on a mapped row unmaps it and excludes its source field.
    key(&mut s, KeyCode::Home);
    ch(&mut s, 'x');
    assert!(!s.mapping.text.contains("dealname = "));
    assert!(s.mapping.text.contains(r#"exclude = ["title"]"#), "{}", s.mapping.text);
    ch(&mut s, 'D');
    assert!(matches!(&s.modal, Some(Modal::Confirm { what: Confirm::DiscardMapping, .. })));
    ch(&mut s, 'y');
    assert!(!s.mapping.dirty());
    assert!(s.mapping.text.contains("dealname = "));
}

fn ambiguous(id: i64) -> QueueItem {
    let s = |v: &str| Some(v.to_string());
    let mut it = held(id, "contacts", "5", "ambiguous_match");
    it.source = [("name".to_string(), s("Twin"))].into_iter().collect();
    it.mapped = [
        ("firstname".to_string(), s("Twin")),
        ("email".to_string(), s("twin@example.com")),
        ("phone".to_string(), s("+14155550100")),
    ]
    .into_iter()
    .collect();
    it.issues = vec![Issue {
        field: "email".into(),
        rule: Rule::AmbiguousMatch,
        value: s("twin@example.com"),
        message: "2 destination records match on email: 501, 502".into(),
        suggestion: s("choose the record to merge into, create new, or skip"),
    }];
    it.candidates = Some(serde_json::json!({
        "501": { "firstname": "Twin A", "email": "twin@example.com", "phone": null },
        "502": { "firstname": "Twin B", "email": "TWIN@example.com", "phone": "+14155550100" }
    }));
    it
}

fn queue_with(s: &mut AppState, items: Vec<QueueItem>) {
    let total = items.len();
    let summary = vec![("contacts".into(), items[0].reason.clone(), total as u64)];
    update(s, Msg::QueueLoaded { query: QueueQuery::default(), summary, items, offset: 0, total });
}

#[test]
fn an_ambiguous_match_is_decided_side_by_side() {
    let (_d, mut s) = state();
    ch(&mut s, '3');
    queue_with(&mut s, vec![ambiguous(7)]);
    insta::assert_snapshot!("queue_ambiguous_80x24", draw(&s, 80, 24).backend());
    ch(&mut s, ']');
    assert_eq!(s.queue.candidate, 1);
    insta::assert_snapshot!("queue_ambiguous_120x40", draw(&s, 120, 40).backend());
    ch(&mut s, 'M');
    assert!(
        matches!(&s.modal, Some(Modal::Confirm { what: Confirm::Decide { id: 7, merge_into: Some(d) }, .. }) if d == "502")
    );
    assert_eq!(ch(&mut s, 'y'), vec![Effect::Decide { id: 7, choice: "502".into() }]);
    assert!(s.run_active(), "the decision is reprocessed at once");
    update(&mut s, Msg::RunEnded { summary: "done".into(), failed: false });
    ch(&mut s, 'C');
    assert_eq!(ch(&mut s, 'y'), vec![Effect::Decide { id: 7, choice: "new".into() }]);
}

#[test]
fn a_record_another_console_edits_is_shown_taken_and_left_alone() {
    let (_d, mut s) = state();
    ch(&mut s, '3');
    let mut theirs = ambiguous(7);
    theirs.claimed_by = Some("bob (console pid 2)".into());
    queue_with(&mut s, vec![theirs]);
    let screen = draw(&s, 120, 40).backend().to_string();
    assert!(screen.contains("TAKEN by bob (console pid 2)"), "{screen}");
    for c in ['e', 'r', 's', 'M', 'C'] {
        assert_eq!(ch(&mut s, c), Vec::<Effect>::new(), "{c}");
        assert!(s.modal.is_none(), "{c}");
        assert!(s.status.as_ref().is_some_and(|(bad, t)| *bad && t.contains("being edited by bob")), "{c}");
    }
    // Once released (the store changed, the page reloads), it can be edited here: claimed first.
    let mut free = ambiguous(7);
    free.claimed_by = None;
    queue_with(&mut s, vec![free]);
    key(&mut s, KeyCode::Enter);
    let fx = ch(&mut s, 'e');
    assert!(matches!(&fx[..], [Effect::Claim { ids, field, .. }] if ids == &vec![7] && field == "firstname"));
}

fn observed(state: &str, alive: bool, done: u64) -> Msg {
    let objects = ["companies", "contacts", "deals", "notes"]
        .iter()
        .map(|n| ObjectProgress {
            name: n.to_string(),
            total: Some(400),
            counts: Counts { extracted: done, created: done, ..Default::default() },
        })
        .collect();
    Msg::StoreChanged {
        latest: Some(ObservedRun {
            id: 9,
            kind: "full".into(),
            state: state.into(),
            reason: None,
            user: "bob".into(),
            alive,
            mine: false,
            objects,
        }),
        now: done as f64 / 100.0,
    }
}

#[test]
fn a_run_started_elsewhere_shows_live_and_cannot_be_paused_from_here() {
    let (_d, mut s) = state();
    let fx = update(&mut s, observed("running", true, 100));
    assert!(fx.iter().any(|e| matches!(e, Effect::LoadQueue { .. })), "the store changed: pages reload");
    assert!(s.run_active());
    assert!(s.live.as_ref().and_then(|l| l.remote.as_deref()).is_some_and(|r| r.contains("run 9 by bob")));
    update(&mut s, observed("running", true, 300));
    insta::assert_snapshot!("overview_remote_80x24", draw(&s, 80, 24).backend());
    assert_eq!(ch(&mut s, 'p'), Vec::<Effect>::new());
    assert!(s.status.as_ref().is_some_and(|(bad, t)| *bad && t.contains("where it runs")));
    assert_eq!(ch(&mut s, 'R'), Vec::<Effect>::new(), "one run at a time, whoever started it");
    update(&mut s, observed("completed", false, 400));
    assert!(!s.run_active());
    // A run whose process died is not shown as running.
    let (_d2, mut t) = state();
    update(&mut t, observed("running", false, 100));
    assert!(!t.run_active());
}

#[test]
fn a_long_help_scrolls_and_any_other_key_closes_it() {
    let (_d, mut s) = state();
    ch(&mut s, '3');
    ch(&mut s, '?');
    ch(&mut s, 'j');
    ch(&mut s, 'j');
    assert!(matches!(s.modal, Some(Modal::Help { scroll: 2 })));
    insta::assert_snapshot!("queue_help_scrolled_80x24", draw(&s, 80, 24).backend());
    ch(&mut s, 'k');
    assert!(matches!(s.modal, Some(Modal::Help { scroll: 1 })));
    ch(&mut s, '1');
    assert!(s.modal.is_none());
    assert_eq!(s.pane, Pane::Queue, "the closing key is not also a command");
}
