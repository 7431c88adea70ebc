//! The console's panes drawn on ratatui's TestBackend at 80×24 and 120×40 (insta snapshots), a
//! terminal too small to use, and hostile record values that must not reach the terminal.

mod common;
use common::console::{ch, demo_state as state, draw, held};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use cutover::model::{Counts, Issue, Rule};
use cutover::pipeline::{Progress, RunState};
use cutover::store::QueueItem;
use cutover::store::audit::{AuditEntry, AuditQuery};
use cutover::store::queue_view::Group;
use cutover::tui::state::{AppState, BalanceRow, QueueQuery};
use cutover::tui::update::{Effect, Msg, update};

fn press(s: &mut AppState, c: char) {
    ch(s, c);
}

fn item(id: i64, object: &str, reason: &str, field: &str, source: &str) -> QueueItem {
    let mut it = held(id, object, &(20000 + id).to_string(), reason);
    it.source = [("stage".to_string(), Some(source.to_string()))].into_iter().collect();
    it.mapped = [("dealname".to_string(), Some(format!("Deal {id}"))), (field.to_string(), None)].into_iter().collect();
    it.issues = vec![Issue {
        field: field.into(),
        rule: Rule::NoTranslation,
        value: Some(source.into()),
        message: format!("no entry for '{source}' in translation table deal_stage"),
        suggestion: None,
    }];
    it
}

/// A console after a demo run: live counters, a queue, an audit page, a balance.
fn busy_state() -> (tempfile::TempDir, AppState) {
    let (dir, mut s) = state();
    press(&mut s, 'R');
    let mut p = Progress::new("full", &s.objects);
    p.run_id = Some(1);
    p.state = RunState::Running;
    p.phase = "migrating deals".into();
    p.current = Some(2);
    let totals = [400u64, 4200, 1800, 6000];
    let done = [400u64, 4200, 900, 0];
    for (i, o) in p.objects.iter_mut().enumerate() {
        o.total = Some(totals[i]);
        o.counts = Counts { extracted: done[i], created: done[i] * 9 / 10, queued: done[i] / 10, ..Default::default() };
    }
    for t in 0..6 {
        let mut q = p.clone();
        q.objects[2].counts.extracted = 300 + t * 120;
        update(&mut s, Msg::Progress { progress: q, now: t as f64 });
    }
    update(&mut s, Msg::Progress { progress: p, now: 6.0 });
    let items = vec![
        item(35, "deals", "no_translation", "dealstage", "Partner Referral"),
        item(36, "deals", "no_translation", "dealstage", "On Hold"),
        item(37, "deals", "no_translation", "dealstage", "Partner Referral"),
    ];
    update(
        &mut s,
        Msg::QueueLoaded {
            query: QueueQuery::default(),
            summary: vec![
                ("contacts".into(), "owner_not_provisioned".into(), 34),
                ("deals".into(), "no_translation".into(), 140),
            ],
            items,
            offset: 0,
            total: 3,
        },
    );
    let rows = (0..30)
        .map(|i| AuditEntry {
            id: 12_000 - i,
            run_id: 1,
            at: "2026-11-22T06:11:04.123Z".into(),
            user: "operator".into(),
            object: "deals".into(),
            source_id: (21_000 - i).to_string(),
            outcome: if i % 5 == 0 { "queued".into() } else { "created".into() },
            dest_id: if i % 5 == 0 { None } else { Some((4_000_000 - i).to_string()) },
            detail: if i % 5 == 0 { Some("dealstage: no_translation".into()) } else { None },
            warnings: (i % 7 == 3).then(|| r#"[{"field":"phone","rule":"unassigned_phone"}]"#.to_string()),
        })
        .collect();
    update(&mut s, Msg::AuditLoaded { query: AuditQuery::default(), before: None, rows, more: true });
    update(
        &mut s,
        Msg::BalanceLoaded {
            run: Some((1, "full".into(), "completed".into())),
            rows: vec![balance("companies", 400, 0), balance("contacts", 4200, 34), balance("deals", 1800, 140)],
            latest_run: Some(1),
            signoff: None,
        },
    );
    (dir, s)
}

/// An object's line of the reconcile pane: `n` read, `queued` of them held, the rest created.
fn balance(object: &str, n: u64, queued: u64) -> BalanceRow {
    BalanceRow {
        object: object.into(),
        source: Some(n),
        counts: Counts { extracted: n, created: n - queued, queued, ..Default::default() },
        open_queue: queued,
    }
}

#[test]
fn every_pane_at_80x24_and_120x40() {
    let (_d, mut s) = busy_state();
    for (key, name) in [('1', "overview"), ('2', "mapping"), ('3', "queue"), ('4', "audit"), ('5', "reconcile")] {
        press(&mut s, key);
        for (w, h) in [(80, 24), (120, 40)] {
            insta::assert_snapshot!(format!("{name}_{w}x{h}"), draw(&s, w, h).backend());
        }
    }
}

#[test]
fn help_confirmation_and_editing_are_drawn_over_the_pane() {
    let (_d, mut s) = busy_state();
    press(&mut s, '3');
    press(&mut s, '?');
    insta::assert_snapshot!("queue_help_80x24", draw(&s, 80, 24).backend());
    press(&mut s, 'x');
    update(&mut s, Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)));
    press(&mut s, 'j');
    press(&mut s, 'e');
    // The editor opens once the store grants the claim.
    update(&mut s, Msg::Claimed { ids: vec![35], field: "dealstage".into(), current: String::new(), was: Some(None) });
    for c in "closedwon".chars() {
        press(&mut s, c);
    }
    insta::assert_snapshot!("queue_edit_80x24", draw(&s, 80, 24).backend());
    press(&mut s, 'q'); // typed into the box, not quitting
    assert!(!s.quit);
    update(&mut s, Msg::Key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)));
    press(&mut s, '1');
    press(&mut s, 'x');
    insta::assert_snapshot!("overview_confirm_cancel_80x24", draw(&s, 80, 24).backend());
}

#[test]
fn a_tiny_terminal_gets_a_message_not_a_panic() {
    let (_d, mut s) = busy_state();
    for key in ['1', '2', '3', '4', '5', '?'] {
        press(&mut s, key);
        for (w, h) in [(79, 24), (30, 8), (1, 1), (0, 0)] {
            draw(&s, w, h);
        }
    }
    insta::assert_snapshot!("too_small_40x10", draw(&s, 40, 10).backend());
}

#[test]
fn record_values_cannot_move_the_cursor_or_recolour_the_terminal() {
    let (_d, mut s) = state();
    let mut evil = item(1, "deals", "no_translation", "dealstage", "\u{1b}[2J\u{1b}[31mPWNED\u{7}\r\n");
    evil.source_id = "x\u{1b}]0;title\u{7}".into();
    update(
        &mut s,
        Msg::QueueLoaded {
            query: QueueQuery::default(),
            summary: vec![("deals".into(), "no_translation".into(), 1)],
            items: vec![evil],
            offset: 0,
            total: 1,
        },
    );
    press(&mut s, '3');
    let t = draw(&s, 120, 40);
    let buffer = t.backend().buffer();
    for cell in buffer.content() {
        assert!(
            !cell.symbol().chars().any(|c| c.is_control()),
            "a control character reached a cell: {:?}",
            cell.symbol()
        );
    }
    let screen = t.backend().to_string();
    assert!(screen.contains("\\e[2J\\e[31m"), "escaped, still readable: {screen}");
}

#[test]
fn a_console_opened_after_headless_runs_says_where_their_outcomes_are() {
    let (_d, mut s) = state();
    let screen = |s: &AppState| format!("{:?}", draw(s, 80, 24).backend());
    assert!(screen(&s).contains("nothing run from this console yet"));
    assert!(!screen(&s).contains("Newest full run"));
    update(
        &mut s,
        Msg::BalanceLoaded {
            run: Some((3, "full".into(), "completed".into())),
            rows: vec![],
            latest_run: Some(5),
            signoff: None,
        },
    );
    let text = screen(&s);
    assert!(text.contains("Newest full run 3: completed, then runs 4–5 · its outcomes: 5 Reconcile"), "{text}");
}

/// The screen as text, one line per row.
fn screen(t: &ratatui::Terminal<ratatui::backend::TestBackend>) -> String {
    let buffer = t.backend().buffer();
    let width = buffer.area.width as usize;
    let cells: Vec<&str> = buffer.content().iter().map(|c| c.symbol()).collect();
    cells.chunks(width).map(|row| row.concat()).collect::<Vec<_>>().join("\n")
}

#[test]
fn half_a_million_held_shows_every_reason_and_whole_figures_at_80x24() {
    let (_d, mut s) = busy_state();
    let reasons = [
        ("contacts", "invalid_phone", 418_513),
        ("contacts", "owner_not_provisioned", 34_204),
        ("deals", "no_translation", 21_140),
        ("contacts", "possible_match", 12_731),
        ("notes", "parent_not_written", 39),
    ];
    update(
        &mut s,
        Msg::QueueLoaded {
            query: QueueQuery::default(),
            summary: reasons.iter().map(|(o, r, n)| (o.to_string(), r.to_string(), *n)).collect(),
            items: vec![item(35, "deals", "no_translation", "dealstage", "Partner Referral")],
            offset: 0,
            total: 486_627,
        },
    );
    update(
        &mut s,
        Msg::BalanceLoaded {
            run: Some((1, "full".into(), "completed".into())),
            rows: vec![balance("contacts", 1_000_000, 465_448), balance("deals", 180_000, 21_140)],
            latest_run: Some(1),
            signoff: None,
        },
    );
    press(&mut s, '3');
    let queue = screen(&draw(&s, 80, 24));
    let words = queue.split_whitespace().collect::<Vec<_>>().join(" ");
    for (_, reason, n) in reasons {
        let shown = format!("{reason} {}", cutover::text::thousands(n));
        assert!(words.contains(&shown), "'{shown}' is on the screen:\n{queue}");
    }
    assert!(queue.contains("486,627 open"), "{queue}");
    insta::assert_snapshot!("queue_half_a_million_80x24", draw(&s, 80, 24).backend());
    press(&mut s, '5');
    let reconcile = screen(&draw(&s, 80, 24));
    let contacts = reconcile.lines().find(|l| l.contains("contacts")).unwrap_or_default();
    assert_eq!(contacts.matches("1,000,000").count(), 2, "source and extracted whole, not 1,000,00:\n{reconcile}");
    assert!(reconcile.contains("BALANCED, 486,588 records still open"), "{reconcile}");
    insta::assert_snapshot!("reconcile_a_million_80x24", draw(&s, 80, 24).backend());
    // While both systems are read, the counts are no verdict.
    s.reconcile.working = true;
    let reading = screen(&draw(&s, 80, 24));
    assert!(!reading.contains("BALANCED"), "{reading}");
    assert!(reading.contains("RECONCILING: the counts balance (486,588 open)"), "{reading}");
}

#[test]
fn a_bulk_edit_asks_for_the_field_then_shows_what_changes_before_asking() {
    let (_d, mut s) = busy_state();
    press(&mut s, '3');
    update(&mut s, Msg::QueueIds(vec![35, 36, 37]));
    press(&mut s, 'E');
    for (w, h) in [(80, 24), (120, 40)] {
        insta::assert_snapshot!(format!("queue_bulk_field_{w}x{h}"), draw(&s, w, h).backend());
    }
    update(&mut s, Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)));
    update(
        &mut s,
        Msg::Claimed { ids: vec![35, 36, 37], field: "dealstage".into(), current: String::new(), was: None },
    );
    for c in "closedwon".chars() {
        press(&mut s, c);
    }
    update(&mut s, Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)));
    update(
        &mut s,
        Msg::FixPreviewed {
            ids: vec![35, 36, 37],
            field: "dealstage".into(),
            value: Some("closedwon".into()),
            result: Ok("2 change, 1 already hold it:\n  #35 deals 20035: (blank) → \"closedwon\"\n  #36 deals 20036: \
                        \"On Hold\" → \"closedwon\""
                .into()),
        },
    );
    for (w, h) in [(80, 24), (120, 40)] {
        insta::assert_snapshot!(format!("queue_bulk_preview_{w}x{h}"), draw(&s, w, h).backend());
    }
}

fn group(object: &str, reason: &str, field: Option<&str>, value: Option<&str>, count: u64) -> Group {
    Group {
        object: object.into(),
        reason: reason.into(),
        field: field.map(str::to_string),
        value: value.map(str::to_string),
        count,
    }
}

#[test]
fn the_queue_opens_on_its_groups_and_a_group_opens_marks_finds_and_jumps() {
    let (_d, mut s) = busy_state();
    let groups = vec![
        group("contacts", "invalid_phone", Some("phone"), Some("n/a"), 212_204),
        group("contacts", "invalid_phone", Some("phone"), Some("000-000-0000"), 103_118),
        group("contacts", "invalid_phone", Some("phone"), None, 90_000),
        group("contacts", "invalid_phone", None, None, 13_191),
        group("contacts", "owner_not_provisioned", Some("hubspot_owner_id"), Some("Dana Whitfield"), 34_204),
        group("deals", "no_translation", Some("dealstage"), Some("Partner Referral"), 21_140),
    ];
    update(&mut s, Msg::GroupsLoaded(groups));
    press(&mut s, '3');
    for (w, h) in [(80, 24), (120, 40)] {
        insta::assert_snapshot!(format!("queue_groups_{w}x{h}"), draw(&s, w, h).backend());
    }
    let text = screen(&draw(&s, 80, 24));
    assert!(text.contains("473,857 open"), "the counts come from the groups:\n{text}");
    assert!(text.contains("212,204") && text.contains("phone = \"n/a\""), "{text}");
    // Down to the blank phones; enter shows them (the filter is the group).
    press(&mut s, 'j');
    press(&mut s, 'j');
    let fx = update(&mut s, Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)));
    let blank = QueueQuery {
        object: Some("contacts".into()),
        reason: Some("invalid_phone".into()),
        issue: Some(("phone".into(), None)),
        ..Default::default()
    };
    assert_eq!(fx, vec![Effect::LoadQueue { query: blank.clone(), offset: 0 }]);
    assert!(!s.queue.in_groups());
    assert!(screen(&draw(&s, 80, 24)).contains("phone = (blank)"), "the filter line names the group");
    // esc: back to the groups, where a marks a whole group.
    update(&mut s, Msg::Key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)));
    assert!(s.queue.in_groups());
    press(&mut s, 'k');
    let fx = ch(&mut s, 'a');
    let na = QueueQuery {
        object: Some("contacts".into()),
        reason: Some("invalid_phone".into()),
        issue: Some(("phone".into(), Some("000-000-0000".into()))),
        ..Default::default()
    };
    assert_eq!(
        fx,
        vec![Effect::LoadQueue { query: na.clone(), offset: 0 }, Effect::LoadQueueIds { query: na.clone() }]
    );
    // Find: / then n and N, within the group; the answer moves the cursor and loads its page.
    let items: Vec<QueueItem> =
        (100..300).map(|id| item(id, "contacts", "invalid_phone", "phone", "000-000-0000")).collect();
    update(&mut s, Msg::QueueLoaded { query: na.clone(), summary: vec![], items, offset: 0, total: 103_118 });
    press(&mut s, '/');
    for c in "5551".chars() {
        press(&mut s, c);
    }
    let fx = update(&mut s, Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)));
    assert_eq!(fx, vec![Effect::Find { query: na.clone(), from: 100, text: "5551".into(), forward: true }]);
    let fx = update(&mut s, Msg::Found { query: na.clone(), text: "5551".into(), found: Some((90_123, 60_001)) });
    assert_eq!(fx, vec![Effect::LoadQueue { query: na.clone(), offset: 60_000 }]);
    assert_eq!(s.queue.cursor, 60_001);
    assert!(matches!(&ch(&mut s, 'N')[..], [Effect::Find { forward: false, text, .. }] if text == "5551"));
    update(&mut s, Msg::Found { query: na.clone(), text: "nope".into(), found: None });
    assert!(s.status.as_ref().is_some_and(|(bad, t)| *bad && t.contains("no held record of this filter has \"nope\"")));
    // Jump: : then a source id; shown in its own object and reason when the filter does not hold it.
    press(&mut s, ':');
    for c in "20035".chars() {
        press(&mut s, c);
    }
    let fx = update(&mut s, Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)));
    assert_eq!(fx, vec![Effect::Jump { query: na.clone(), text: "20035".into() }]);
    let deals = QueueQuery {
        object: Some("deals".into()),
        reason: Some("no_translation".into()),
        issue: None,
        ..Default::default()
    };
    let fx = update(&mut s, Msg::Jumped(Ok((deals.clone(), 35, 4))));
    assert_eq!(fx, vec![Effect::LoadQueue { query: deals.clone(), offset: 0 }]);
    assert_eq!((s.queue.query.clone(), s.queue.cursor), (deals, 4));
    assert!(s.status.as_ref().is_some_and(|(_, t)| t.contains("the filter changed to show it")));
    // From the groups, which stand for every held record, / searches every held record — not
    // the group opened last.
    update(&mut s, Msg::Key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)));
    assert!(s.queue.in_groups());
    let fx = ch(&mut s, '/');
    assert_eq!(fx, vec![Effect::LoadQueue { query: QueueQuery::default(), offset: 0 }]);
    assert_eq!(s.queue.query, QueueQuery::default());
    assert!(matches!(s.modal, Some(cutover::tui::state::Modal::Edit { .. })), "the search box is open");
}

#[test]
fn on_a_short_screen_the_field_a_record_is_held_for_is_in_view() {
    let (_d, mut s) = busy_state();
    let mut it = item(35, "deals", "no_translation", "dealstage", "Partner Referral");
    // Nine fields before the one it is held for: more than 80×24 shows.
    let mut mapped: indexmap::IndexMap<String, Option<String>> =
        (1..=9).map(|n| (format!("field{n}"), Some(format!("value {n}")))).collect();
    mapped.insert("dealstage".into(), None);
    it.mapped = mapped;
    update(
        &mut s,
        Msg::QueueLoaded { query: QueueQuery::default(), summary: vec![], items: vec![it], offset: 0, total: 1 },
    );
    press(&mut s, '3');
    let text = screen(&draw(&s, 80, 24));
    // The table's row (the issue's full text below it starts "dealstage · …").
    let row = text.lines().find(|l| l.starts_with("│dealstage ") && !l.contains('·')).unwrap_or_default();
    assert!(row.contains("Partner Referral"), "its row, with the source value, is shown:\n{text}");
}
