//! Pane 2: the mapping editor — each object's rows (mapped, unmapped, excluded), the edits not yet
//! saved, and a live sample: the first source records mapped with the rules as they stand now,
//! with each field's issue, or every problem the edited file has against the two systems.

use super::{Theme, fit};
use crate::text::shown_opt;
use crate::tui::keymap::Action;
use crate::tui::state::{AppState, MappingLine};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState, Wrap};

pub fn render(state: &AppState, frame: &mut Frame, area: Rect, theme: &Theme) {
    let m = &state.mapping;
    let Some(obj) = m.current() else {
        frame.render_widget(Paragraph::new("No objects in the project file."), area);
        return;
    };
    let preview_height = (area.height / 3).clamp(5, 9);
    let [head, body, preview, keys] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(4),
        Constraint::Length(preview_height),
        Constraint::Length(1),
    ])
    .areas(area);
    let mut names: Vec<Span> = m
        .objects
        .iter()
        .enumerate()
        .map(|(i, o)| Span::styled(format!(" {} ", o.name), if i == m.object { theme.selected } else { theme.muted }))
        .collect();
    if m.dirty() {
        names.push(Span::styled("  MODIFIED (not saved)", theme.warn));
    }
    if m.saving {
        names.push(Span::styled("  saving…", theme.muted));
    }
    let info = format!(
        "{} → {} · id: {} · match: {} · merge: {}",
        obj.source, obj.destination, obj.id, obj.matching, obj.merge,
    );
    frame.render_widget(Paragraph::new(vec![Line::from(names), Line::from(Span::styled(info, theme.muted))]), head);

    // Problems the edited file has, by key, to mark the rows they concern.
    let problems = match m.sample().map(|s| &s.result) {
        Some(Err(p)) => p.as_slice(),
        _ => &[],
    };
    let problem_of = |dest: &str| {
        let key = format!("objects.{}.fields.{dest}", obj.name);
        problems.iter().find(|p| p.key == key || p.key.starts_with(&format!("{key}."))).map(|p| p.message.clone())
    };
    let lines = m.lines();
    let rows: Vec<Row> = lines
        .iter()
        .map(|line| match line {
            MappingLine::Mapped(r) => {
                let problem = problem_of(&r.dest);
                let required = if r.required { "required" } else { "" };
                let note = problem.clone().map(|p| format!("PROBLEM: {p}")).unwrap_or_else(|| r.note.clone());
                let row = Row::new(vec![r.from.clone(), r.dest.clone(), r.transform.clone(), required.into(), note]);
                if problem.is_some() { row.style(theme.error) } else { row }
            }
            MappingLine::Unmapped(f) => Row::new(vec![
                (*f).to_string(),
                "—".into(),
                String::new(),
                String::new(),
                "UNMAPPED: e maps it, x excludes it".into(),
            ])
            .style(theme.warn),
            MappingLine::Excluded(f) => {
                Row::new(vec![(*f).to_string(), "—".into(), String::new(), String::new(), "excluded".into()])
                    .style(theme.muted)
            }
            MappingLine::OtherEntry(f) => Row::new(vec![
                (*f).to_string(),
                "—".into(),
                String::new(),
                String::new(),
                "another repeat entry's".into(),
            ])
            .style(theme.muted),
        })
        .collect();
    let mut table_state = TableState::default();
    if !lines.is_empty() {
        table_state.select(Some(m.cursor.min(lines.len() - 1)));
    }
    let table = Table::new(
        rows,
        [
            Constraint::Length(18),
            Constraint::Length(18),
            Constraint::Length(20),
            Constraint::Length(8),
            Constraint::Min(8),
        ],
    )
    .header(Row::new(["source field", "destination", "transform", "required", "notes"]).style(theme.accent))
    .row_highlight_style(theme.selected)
    .block(Block::default().borders(Borders::ALL).title(format!(" {} rows ", lines.len())));
    frame.render_stateful_widget(table, body, &mut table_state);

    render_sample(state, frame, preview, lines.get(m.cursor), theme);

    let layer = state.pane.layer();
    let k = |a| state.keymap.key_for(layer, a);
    let hint = format!(
        "{}/{} object · {} edit · {} add field · {} add translation · {} exclude · {} save · {} discard",
        k(Action::PrevObject),
        k(Action::NextObject),
        k(Action::EditRow),
        k(Action::AddField),
        k(Action::AddTranslation),
        k(Action::ExcludeField),
        k(Action::SaveMapping),
        k(Action::DiscardMapping)
    );
    frame.render_widget(Paragraph::new(Span::styled(fit(&hint, keys.width as usize), theme.muted)), keys);
}

/// The sample under the table: for the selected row, each record's source value, mapped value and
/// issue; or the file's problems.
fn render_sample(state: &AppState, frame: &mut Frame, area: Rect, line: Option<&MappingLine>, theme: &Theme) {
    let m = &state.mapping;
    let block = |title: String| Block::default().borders(Borders::ALL).title(title).border_style(theme.muted);
    let Some(sample) = m.sample() else {
        let text = if m.sampling { "mapping the first records with the current rules…" } else { "" };
        frame.render_widget(Paragraph::new(Span::styled(text, theme.muted)).block(block(" sample ".into())), area);
        return;
    };
    let sample = match &sample.result {
        Err(problems) => {
            let lines: Vec<Line> = problems
                .iter()
                .map(|p| {
                    let at = p.line.map(|l| format!(" (line {l})")).unwrap_or_default();
                    Line::from(Span::styled(format!("{}{at}: {}", p.key, p.message), theme.error))
                })
                .collect();
            let title = format!(" {} problem(s): nothing can run until they are fixed ", problems.len());
            frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }).block(block(title)), area);
            return;
        }
        Ok(s) => s,
    };
    let (source_field, dest_field): (Option<&str>, Option<&str>) = match line {
        Some(MappingLine::Mapped(r)) => (r.reads.first().map(String::as_str), Some(r.dest.as_str())),
        Some(MappingLine::Unmapped(f) | MappingLine::Excluded(f) | MappingLine::OtherEntry(f)) => (Some(f), None),
        None => (None, None),
    };
    let rows: Vec<Row> = sample
        .records
        .iter()
        .map(|r| {
            let source =
                source_field.and_then(|f| r.source.get(f)).map(|v| shown_opt(v.as_deref())).unwrap_or_default();
            let mapped = dest_field.and_then(|f| r.values.get(f)).map(|v| shown_opt(v.as_deref())).unwrap_or_default();
            let issue = dest_field.and_then(|f| r.issues.iter().find(|i| i.field == f));
            let others = r.issues.iter().filter(|i| Some(i.field.as_str()) != dest_field).count();
            let issue_text = match issue {
                _ if r.skipped.is_some() => format!("skipped: {}", r.skipped.as_deref().unwrap_or_default()),
                Some(i) => format!("{}: {}", i.rule.as_str(), crate::text::shown(&i.message)),
                None if dest_field.is_some() => "ok".into(),
                None => String::new(),
            };
            let style = if r.skipped.is_some() {
                theme.muted
            } else if issue.is_some() {
                theme.error
            } else {
                Style::default()
            };
            Row::new(vec![
                fit(&crate::text::shown(&r.source_id), 10),
                fit(&source, 18),
                fit(&mapped, 18),
                if others > 0 { format!("{others} other") } else { String::new() },
                issue_text,
            ])
            .style(style)
        })
        .collect();
    let title = format!(
        " sample: first {} {} records as mapped now (nothing written) ",
        sample.records.len(),
        m.current().map_or("", |o| o.source.as_str())
    );
    let table = Table::new(
        rows,
        [
            Constraint::Length(10),
            Constraint::Length(18),
            Constraint::Length(18),
            Constraint::Length(8),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(["id", "source value", "mapped value", "issues", "this field"]).style(theme.accent))
    .block(block(title));
    frame.render_widget(table, area);
}
