//! Helpers for console tests: a console state on the demo project, keys, drawing on a TestBackend,
//! and held records to load into the queue.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use cutover::store::{QueueItem, QueueStatus};
use cutover::tui::keymap::Keymap;
use cutover::tui::render::render;
use cutover::tui::state::AppState;
use cutover::tui::update::{Effect, Msg, update};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// A console on a fresh copy of the demo project (the folder lives as long as the TempDir).
pub fn demo_state() -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = cutover::demo::setup(&dir.path().join("demo")).expect("demo");
    let config = cutover::config::load(&file).expect("config");
    (dir, AppState::new(&config, Keymap::defaults(), false))
}

pub fn key(s: &mut AppState, code: KeyCode) -> Vec<Effect> {
    update(s, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

pub fn ch(s: &mut AppState, c: char) -> Vec<Effect> {
    key(s, KeyCode::Char(c))
}

pub fn draw(s: &AppState, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| render(s, f)).expect("draw");
    t
}

/// An open held record with no values, issues or candidates: tests fill in what they need.
pub fn held(id: i64, object: &str, source_id: &str, reason: &str) -> QueueItem {
    QueueItem {
        id,
        object: object.into(),
        source_id: source_id.into(),
        occurrence: 1,
        origin: format!("{object}.csv:{}", id + 1),
        run_id: 1,
        status: QueueStatus::Open,
        reason: reason.into(),
        source: Default::default(),
        mapped: Default::default(),
        issues: Vec::new(),
        candidates: None,
        corrections: Default::default(),
        waiting_on: None,
        created_at: String::new(),
        updated_at: String::new(),
        claimed_by: None,
        claimed_at: None,
        skip_reason: None,
    }
}
