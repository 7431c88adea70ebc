//! Pane 5: reconciliation — here the counts balance of the latest full run, per object.

use super::{Theme, thousands};
use crate::tui::state::AppState;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};

pub fn render(state: &AppState, frame: &mut Frame, area: Rect, theme: &Theme) {
    let r = &state.reconcile;
    let [head, body] = Layout::vertical([Constraint::Length(2), Constraint::Min(4)]).areas(area);
    let Some((run_id, kind, run_state)) = &r.run else {
        frame.render_widget(Paragraph::new("No full run yet: nothing to reconcile."), area);
        return;
    };
    let balanced = r.rows.iter().all(|b| b.counts.balanced());
    let open: u64 = r.rows.iter().map(|b| b.open_queue).sum();
    let verdict = match (balanced, open) {
        (false, _) => Span::styled("NOT BALANCED: records unaccounted for", theme.error),
        (true, 0) => Span::styled("BALANCED: every record accounted for, nothing open", theme.ok),
        (true, n) => Span::styled(format!("BALANCED, {n} records still open in the queue"), theme.warn),
    };
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(verdict),
            Line::from(Span::styled(
                format!("run {run_id} ({kind}, {run_state}) · extracted = written + queued + skipped + failed"),
                theme.muted,
            )),
        ]),
        head,
    );
    let rows: Vec<Row> = r
        .rows
        .iter()
        .map(|b| {
            let c = &b.counts;
            let ok = c.balanced();
            Row::new(vec![
                b.object.clone(),
                b.source.map(thousands).unwrap_or_else(|| "—".into()),
                thousands(c.extracted),
                thousands(c.created + c.updated + c.merged),
                thousands(c.queued),
                thousands(c.skipped),
                thousands(c.failed),
                thousands(b.open_queue),
                if ok { "yes".into() } else { "NO".into() },
            ])
            .style(if ok { ratatui::style::Style::default() } else { theme.error })
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(10),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(8),
            Constraint::Length(8),
        ],
    )
    .header(
        Row::new(["object", "source", "extracted", "written", "queued", "skipped", "failed", "open now", "balanced"])
            .style(theme.accent),
    )
    .block(
        Block::default()
            .borders(Borders::ALL)
            .title(" counts (read-back, sums and sign-off come with reconciliation) "),
    );
    frame.render_widget(table, body);
}
