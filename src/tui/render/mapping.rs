//! Pane 2: the mapping of each object as the project file states it.

use super::Theme;
use crate::tui::state::AppState;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};

pub fn render(state: &AppState, frame: &mut Frame, area: Rect, theme: &Theme) {
    let m = &state.mapping;
    let Some(obj) = m.objects.get(m.object) else {
        frame.render_widget(Paragraph::new("No objects in the project file."), area);
        return;
    };
    let [head, body] = Layout::vertical([Constraint::Length(2), Constraint::Min(4)]).areas(area);
    let names: Vec<Span> = m
        .objects
        .iter()
        .enumerate()
        .map(|(i, o)| Span::styled(format!(" {} ", o.name), if i == m.object { theme.selected } else { theme.muted }))
        .collect();
    let info = format!(
        "{} → {} · match: {} · merge: {} · excluded: {}",
        obj.source,
        obj.destination,
        if obj.match_keys.is_empty() { "source id only".into() } else { obj.match_keys.join(", ") },
        obj.merge,
        if obj.excluded.is_empty() { "none".into() } else { obj.excluded.join(", ") }
    );
    frame.render_widget(Paragraph::new(vec![Line::from(names), Line::from(Span::styled(info, theme.muted))]), head);
    let rows: Vec<Row> = obj
        .rows
        .iter()
        .map(|r| {
            let required = if r.required { "required" } else { "" };
            let row =
                Row::new(vec![r.from.clone(), r.dest.clone(), r.transform.clone(), required.into(), r.note.clone()]);
            if r.from == "—" && r.required && r.note.is_empty() { row.style(theme.error) } else { row }
        })
        .collect();
    let mut table_state = TableState::default();
    table_state.select(Some(m.cursor.min(obj.rows.len().saturating_sub(1))));
    let table = Table::new(
        rows,
        [
            Constraint::Length(18),
            Constraint::Length(14),
            Constraint::Length(22),
            Constraint::Length(8),
            Constraint::Min(8),
        ],
    )
    .header(Row::new(["source field", "destination", "transform", "required", "notes"]).style(theme.accent))
    .row_highlight_style(theme.selected)
    .block(
        Block::default()
            .borders(Borders::ALL)
            .title(" ←/→ object · editing in the console comes later: edit the TOML, `cutover check` "),
    );
    frame.render_stateful_widget(table, body, &mut table_state);
}
