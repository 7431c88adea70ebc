//! Pane 5: reconciliation — the verdict first, then the discrepancies (each accepted with a
//! reason, or opened down to its records) and one section per object; the sign-off at the top.
//! Until a report is made, the counts balance of the latest full run (from the store).

use super::{Theme, fit, thousands};
use crate::text::shown;
use crate::tui::keymap::Action;
use crate::tui::state::{AppState, ReconLine};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph, Row, Table};

pub fn render(state: &AppState, frame: &mut Frame, area: Rect, theme: &Theme) {
    if state.reconcile.report.is_some() {
        report(state, frame, area, theme);
    } else {
        balance(state, frame, area, theme);
    }
}

fn report(state: &AppState, frame: &mut Frame, area: Rect, theme: &Theme) {
    let r = &state.reconcile;
    let Some(report) = &r.report else { return };
    let layer = state.pane.layer();
    let k = |x| state.keymap.key_for(layer, x);
    let [head, body] = Layout::vertical([Constraint::Length(3), Constraint::Min(3)]).areas(area);
    let open = report.discrepancies.iter().filter(|d| r.reason_for(&d.key).is_none()).count();
    let verdict = if report.balanced() {
        Span::styled("BALANCED: every record accounted for; the destination holds what was written", theme.ok)
    } else if open == 0 {
        Span::styled(
            format!(
                "NOT BALANCED: {}, each accepted — {}",
                crate::text::count(report.discrepancies.len() as u64, "discrepancy"),
                if r.signed() { "signed off" } else { "ready to sign off" }
            ),
            theme.warn,
        )
    } else {
        Span::styled(
            format!(
                "NOT BALANCED: {}, {open} neither resolved nor accepted",
                crate::text::count(report.discrepancies.len() as u64, "discrepancy")
            ),
            theme.error,
        )
    };
    let made = format!(
        "report of {} by {} after run {}{}{}",
        report.generated_at.get(..19).unwrap_or(&report.generated_at).replace('T', " "),
        shown(&report.generated_by),
        report.last_run_id.unwrap_or_default(),
        if r.stale() { " — OUT OF DATE: a run came after it" } else { "" },
        if r.working { " · reconciling…" } else { "" },
    );
    let signoff = match &r.signoff {
        None => Span::styled("not signed off", theme.muted),
        Some(s) if s.voided_by_run.is_some() => Span::styled(
            format!(
                "sign-off by {} at {} is VOID: run {} came after it",
                shown(&s.user),
                s.at.get(..19).unwrap_or(&s.at).replace('T', " "),
                s.voided_by_run.unwrap_or_default()
            ),
            theme.warn,
        ),
        Some(s) => Span::styled(
            format!(
                "SIGNED OFF by {} at {} · {} accepted · report {}{}: {}",
                shown(&s.user),
                s.at.get(..16).unwrap_or(&s.at).replace('T', " "),
                s.accepted.len(),
                s.report_hash.get(..12).unwrap_or(&s.report_hash),
                if r.signed() { "" } else { " (an earlier report)" },
                shown(&s.notes)
            ),
            theme.ok,
        ),
    };
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(verdict),
            Line::from(Span::styled(made, if r.stale() { theme.warn } else { theme.muted })),
            Line::from(signoff),
        ]),
        head,
    );
    let width = body.width.saturating_sub(4) as usize;
    let items: Vec<ListItem> = r
        .lines()
        .into_iter()
        .map(|line| {
            let (text, style) = match line {
                ReconLine::Section { title, ok, open, .. } => {
                    (format!("{} {title}", if open { "▾" } else { "▸" }), if ok { theme.accent } else { theme.error })
                }
                ReconLine::Discrepancy { key, summary, accepted, open } => match accepted {
                    Some(reason) => (
                        format!("  {} ✓ {key}: {summary} — accepted: {}", if open { "▾" } else { "▸" }, shown(&reason)),
                        theme.warn,
                    ),
                    None => (format!("  {} ✗ {key}: {summary}", if open { "▾" } else { "▸" }), theme.error),
                },
                ReconLine::Record { text, .. } => (format!("      → {text}"), ratatui::style::Style::default()),
                ReconLine::Detail { text, ok } => {
                    (format!("    {} {text}", if ok { "ok" } else { "!!" }), if ok { theme.muted } else { theme.warn })
                }
            };
            ListItem::new(Line::from(Span::styled(fit(&text, width), style)))
        })
        .collect();
    let mut list_state = ListState::default();
    if !items.is_empty() {
        list_state.select(Some(r.cursor.min(items.len() - 1)));
    }
    let list =
        List::new(items).highlight_style(theme.selected).block(Block::default().borders(Borders::ALL).title(format!(
            " {} opens · {} accepts · {} signs off · {} reconciles again · {} writes the report ",
            k(Action::Expand),
            k(Action::Accept),
            k(Action::SignOff),
            k(Action::Reconcile),
            k(Action::WriteReport),
        )));
    frame.render_stateful_widget(list, body, &mut list_state);
}

fn balance(state: &AppState, frame: &mut Frame, area: Rect, theme: &Theme) {
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
        // The counts balance, but the verdict is the read-back's: not "BALANCED" before it.
        (true, n) if r.working => Span::styled(
            format!("RECONCILING: the counts balance ({} open); reading both systems…", thousands(n)),
            theme.muted,
        ),
        (true, 0) => Span::styled("BALANCED: every record accounted for, nothing open", theme.ok),
        (true, n) => Span::styled(format!("BALANCED, {} records still open in the queue", thousands(n)), theme.warn),
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
    let cells: Vec<(bool, Vec<String>)> = r
        .rows
        .iter()
        .map(|b| {
            let c = &b.counts;
            let ok = c.balanced();
            let cells = vec![
                b.object.clone(),
                b.source.map(thousands).unwrap_or_else(|| "—".into()),
                thousands(c.extracted),
                thousands(c.created + c.updated + c.unchanged + c.merged),
                thousands(c.queued),
                thousands(c.skipped),
                thousands(c.failed),
                thousands(b.open_queue),
                if ok { "yes".into() } else { "NO".into() },
            ];
            (ok, cells)
        })
        .collect();
    // Each column as wide as its header or its widest cell, whichever is wider: a million whole
    // (not `1,000,00`) at 80 columns.
    const HEADER: [&str; 9] =
        ["object", "source", "extracted", "written", "queued", "skipped", "failed", "open now", "balanced"];
    let widths: Vec<Constraint> = HEADER
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let widest = cells.iter().map(|(_, c)| c[i].chars().count()).max().unwrap_or(0);
            Constraint::Length(widest.max(h.chars().count()) as u16)
        })
        .collect();
    let rows: Vec<Row> = cells
        .into_iter()
        .map(|(ok, cells)| Row::new(cells).style(if ok { ratatui::style::Style::default() } else { theme.error }))
        .collect();
    let table = Table::new(rows, widths).header(Row::new(HEADER).style(theme.accent)).block(
        Block::default().borders(Borders::ALL).title(if r.working {
            " counts of the run · reconciling: reading both systems… ".to_string()
        } else {
            match &r.error {
                Some(e) => format!(" counts of the run · could not reconcile: {} ", fit(e, 60)),
                None => format!(
                    " counts of the run · {} reconciles: read-back, distributions, sums, sign-off ",
                    state.keymap.key_for(state.pane.layer(), Action::Reconcile)
                ),
            }
        }),
    );
    frame.render_widget(table, body);
}
