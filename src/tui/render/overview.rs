//! Pane 1: live sync — per object a processed/total bar, the outcome counters, records/s and ETA,
//! the run state, and a sparkline of the current object's rate.

use super::{Theme, thousands};
use crate::tui::keymap::Action;
use crate::tui::state::{AppState, Live};
use crate::tui::update::rate;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Sparkline, Table};

fn bar(done: u64, total: Option<u64>, width: usize) -> String {
    match total {
        Some(t) if t > 0 => {
            let frac = (done as f64 / t as f64).clamp(0.0, 1.0);
            let filled = (frac * width as f64).round() as usize;
            format!("{}{} {:>3.0}%", "█".repeat(filled), "░".repeat(width - filled), frac * 100.0)
        }
        Some(_) => format!("{} 100%", "█".repeat(width)),
        None => format!("{} ---%", "░".repeat(width)),
    }
}

fn eta(live: &Live, i: usize) -> String {
    let o = &live.progress.objects[i];
    let r = live.samples.get(i).map(rate).unwrap_or(0.0);
    match o.total {
        Some(t) if o.counts.extracted >= t => "done".into(),
        Some(t) if r > 0.0 && live.active() => {
            let secs = ((t - o.counts.extracted) as f64 / r).ceil() as u64;
            format!("{}:{:02}", secs / 60, secs % 60)
        }
        _ => "—".into(),
    }
}

pub fn render(state: &AppState, frame: &mut Frame, area: Rect, theme: &Theme) {
    let layer = state.pane.layer();
    let k = |a| state.keymap.key_for(layer, a);
    let head_text = match &state.live {
        None => {
            // The newest full run did not finish (killed, stopped, halted): say it can go on.
            let unfinished = state.reconcile.run.as_ref().filter(|(_, kind, st)| kind == "full" && st != "completed");
            let mut lines = vec![Line::from(format!("Project {} — nothing run from this console yet.", state.project))];
            if let Some((id, _, st)) = state.reconcile.run.as_ref().filter(|_| unfinished.is_none()) {
                let later = match state.reconcile.latest_run {
                    Some(l) if l == id + 1 => format!(", then run {l}"),
                    Some(l) if l > *id => format!(", then runs {}–{l}", id + 1),
                    _ => String::new(),
                };
                lines.push(Line::from(Span::styled(
                    format!("Newest full run {id}: {st}{later} · its outcomes: 5 Reconcile, 4 Audit"),
                    theme.muted,
                )));
            }
            if let Some((id, _, st)) = unfinished {
                let st = if st == "running" || st == "paused" { "interrupted" } else { st.as_str() };
                lines.push(Line::from(Span::styled(
                    format!(
                        "Run {id} did not finish ({st}): {} continues it from its checkpoint",
                        k(Action::ResumeRun)
                    ),
                    theme.warn,
                )));
            }
            lines.push(Line::from(Span::styled(
                format!(
                    "{} test sync (writes nothing) · {} full run{}",
                    k(Action::Preview),
                    k(Action::StartRun),
                    if unfinished.is_some() { format!(" · {} continue", k(Action::ResumeRun)) } else { String::new() }
                ),
                theme.muted,
            )));
            lines
        }
        Some(live) => {
            let style = match &live.progress.state {
                crate::pipeline::RunState::Halted(_) | crate::pipeline::RunState::Failed(_) => theme.error,
                crate::pipeline::RunState::Completed => theme.ok,
                _ => theme.warn,
            };
            let whose = live.remote.as_ref().map(|r| format!(" — {r}")).unwrap_or_default();
            vec![
                Line::from(vec![
                    Span::raw(format!("{}: ", live.mode.label())),
                    Span::styled(live.state_word(), style),
                    Span::styled(whose, theme.muted),
                ]),
                Line::from(Span::styled(
                    format!(
                        "{} · {} of {} records{}",
                        live.progress.phase,
                        thousands(live.progress.processed()),
                        thousands(live.progress.total()),
                        match live.progress.objects.iter().map(|o| o.counts.unchanged).sum::<u64>() {
                            0 => String::new(),
                            n => format!(" · {} unchanged", thousands(n)),
                        }
                    ),
                    theme.muted,
                )),
            ]
        }
    };
    let [head, table, spark, keys] = Layout::vertical([
        Constraint::Length(head_text.len().clamp(2, 3) as u16),
        Constraint::Min(4),
        Constraint::Length(5),
        Constraint::Length(2),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(head_text), head);

    // At 80 columns the table has no room for "unchanged": the line above the table says it.
    let wide = area.width >= 89;
    let mut labels =
        vec!["object", "progress", "created", "updated", "unchanged", "merged", "queued", "skipped", "failed"];
    labels.extend(["rec/s", "ETA"]);
    if !wide {
        labels.retain(|l| *l != "unchanged");
    }
    let header = Row::new(labels).style(theme.accent);
    let rows: Vec<Row> = match &state.live {
        None => state.objects.iter().map(|o| Row::new(vec![o.clone(), bar(0, None, 5)])).collect(),
        Some(live) => live
            .progress
            .objects
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let c = &o.counts;
                let r = live.samples.get(i).map(rate).unwrap_or(0.0);
                let mut cells = vec![o.name.clone(), bar(c.extracted, o.total, 5), c.created.to_string()];
                cells.push(c.updated.to_string());
                if wide {
                    cells.push(c.unchanged.to_string());
                }
                cells.extend([c.merged.to_string(), c.queued.to_string(), c.skipped.to_string(), c.failed.to_string()]);
                cells.push(if live.active() && r > 0.0 { format!("{:.0}", r) } else { "—".into() });
                cells.push(eta(live, i));
                Row::new(cells)
            })
            .collect(),
    };
    // Fits 80 columns exactly: 9 + 10 + 6×7 + 6 + 4 and nine gaps; "unchanged" takes 9 more.
    let mut widths = vec![Constraint::Length(9), Constraint::Length(10), Constraint::Length(7), Constraint::Length(7)];
    if wide {
        widths.push(Constraint::Length(9));
    }
    widths.extend([Constraint::Length(7); 4]);
    widths.extend([Constraint::Length(6), Constraint::Length(4)]);
    // A test sync's counts are what a run would do: the table says so.
    let title = match &state.live {
        Some(live) if live.mode == crate::tui::state::RunMode::Preview => " what a run WOULD do (nothing written) ",
        _ => "",
    };
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .column_spacing(1)
            .block(Block::default().borders(Borders::TOP).title(Span::styled(title, theme.warn))),
        table,
    );

    let (title, data): (String, Vec<u64>) = match &state.live {
        Some(live) => {
            let i = live.progress.current.unwrap_or(0);
            let name = live.progress.objects.get(i).map(|o| o.name.clone()).unwrap_or_default();
            (format!(" records/s: {name} "), live.rates.get(i).map(|r| r.iter().copied().collect()).unwrap_or_default())
        }
        None => (" records/s ".into(), Vec::new()),
    };
    frame.render_widget(
        Sparkline::default().block(Block::default().borders(Borders::TOP).title(title)).data(&data).style(theme.ok),
        spark,
    );
    let hint = format!(
        "{} test sync · {} full run · {} delta · {} pause · {} resume · {} cancel · {} roll back · ? more",
        k(Action::Preview),
        k(Action::StartRun),
        k(Action::DeltaRun),
        k(Action::Pause),
        k(Action::Resume),
        k(Action::Cancel),
        k(Action::Rollback),
    );
    frame.render_widget(
        Paragraph::new(Span::styled(hint, theme.muted)).block(Block::default().borders(Borders::TOP)),
        keys,
    );
}
