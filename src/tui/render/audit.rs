//! Pane 4: the audit log, newest first, a page at a time from the store (keyset paging).

use super::{Theme, fit};
use crate::text::{shown, shown_opt};
use crate::tui::keymap::Action;
use crate::tui::state::AppState;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};

pub fn render(state: &AppState, frame: &mut Frame, area: Rect, theme: &Theme) {
    let a = &state.audit;
    let [filters, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(4)]).areas(area);
    let layer = state.pane.layer();
    let k = |x| state.keymap.key_for(layer, x);
    frame.render_widget(
        Paragraph::new(Line::from(vec![Span::styled(
            format!(
                "object: {} ({}) · outcome: {} ({}) · warning: {} ({}) · source id: {} ({}) · page {}{}",
                a.query.object.as_deref().unwrap_or("all"),
                k(Action::FilterObject),
                a.query.outcome.as_deref().unwrap_or("all"),
                k(Action::FilterOutcome),
                a.query.warning.as_deref().unwrap_or("any"),
                k(Action::FilterWarning),
                a.query.source_id.as_deref().map(shown).unwrap_or_else(|| "any".into()),
                k(Action::Search),
                a.pages.len(),
                if a.loading { " · loading…" } else { "" }
            ),
            theme.muted,
        )])),
        filters,
    );
    let rows: Vec<Row> = a
        .rows
        .iter()
        .map(|r| {
            let style = match r.outcome.as_str() {
                "failed" => theme.error,
                "queued" => theme.warn,
                "skipped" => theme.muted,
                _ => ratatui::style::Style::default(),
            };
            Row::new(vec![
                r.id.to_string(),
                r.run_id.to_string(),
                r.object.clone(),
                fit(&shown(&r.source_id), 10),
                r.outcome.clone(),
                fit(&shown_opt(r.dest_id.as_deref()), 8),
                r.at.get(5..19).unwrap_or(&r.at).replace('T', " "),
                detail_with_warnings(r),
            ])
            .style(style)
        })
        .collect();
    let mut table_state = TableState::default();
    if !a.rows.is_empty() {
        table_state.select(Some(a.cursor.min(a.rows.len() - 1)));
    }
    let title = if a.rows.is_empty() {
        " no audit rows for this filter ".to_string()
    } else {
        format!(
            " newest first · {} rows on this page{} ",
            a.rows.len(),
            if a.more { " · ↓ past the end for older" } else { "" }
        )
    };
    let table = Table::new(
        rows,
        [
            Constraint::Length(7),
            Constraint::Length(3),
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(14),
            Constraint::Min(8),
        ],
    )
    .header(Row::new(["id", "run", "object", "source", "outcome", "dest", "when (UTC)", "detail"]).style(theme.accent))
    .row_highlight_style(theme.selected)
    .block(Block::default().borders(Borders::ALL).title(title));
    frame.render_stateful_widget(table, body, &mut table_state);
}

/// The row's detail, then the rules of the warnings it was written with (`⚠ unassigned_phone`).
fn detail_with_warnings(r: &crate::tui::state::AuditEntry) -> String {
    let rules: Vec<String> = r
        .warnings
        .as_deref()
        .and_then(|w| serde_json::from_str::<Vec<serde_json::Value>>(w).ok())
        .map(|list| list.iter().filter_map(|w| w["rule"].as_str().map(String::from)).collect())
        .unwrap_or_default();
    let detail = shown_opt(r.detail.as_deref());
    if rules.is_empty() {
        return detail;
    }
    let marks = format!("⚠ {}", rules.join(", "));
    if r.detail.is_none() { marks } else { format!("{detail} · {marks}") }
}
