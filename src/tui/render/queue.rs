//! Pane 3: the conflict queue — counts per reason, the filtered list (windowed from the store),
//! and the selected record's fields: source value, mapped value (or the correction), issue.

use super::{Theme, fit, thousands};
use crate::text::{shown, shown_opt};
use crate::tui::keymap::Action;
use crate::tui::state::AppState;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState, Wrap};

pub fn render(state: &AppState, frame: &mut Frame, area: Rect, theme: &Theme) {
    let q = &state.queue;

    // Counts per reason (of the object filter), then the filters in force.
    // The groups list every held record: so do their counts.
    let object_filter = if q.in_groups() { None } else { q.query.object.as_ref() };
    let mut reasons: Vec<(String, u64)> = Vec::new();
    for (o, r, n) in &q.summary {
        if object_filter.is_none_or(|f| f == o) {
            match reasons.iter_mut().find(|(x, _)| x == r) {
                Some((_, c)) => *c += n,
                None => reasons.push((r.clone(), *n)),
            }
        }
    }
    let total: u64 = reasons.iter().map(|(_, n)| n).sum();
    let mut counts = vec![Span::styled(format!("{} open: ", thousands(total)), theme.accent)];
    for (i, (r, n)) in reasons.iter().enumerate() {
        if i > 0 {
            counts.push(Span::raw(" · "));
        }
        let style = if q.query.reason.as_ref() == Some(r) { theme.selected } else { Style::default() };
        counts.push(Span::styled(format!("{r} {}", thousands(*n)), style));
    }
    let layer = state.pane.layer();
    let k = |a| state.keymap.key_for(layer, a);
    let filter_line = if q.in_groups() {
        Line::from(Span::styled(
            format!(
                "every held record, by group · marked: {} · {} the records of the filter",
                thousands(q.marked.len() as u64),
                k(Action::Groups)
            ),
            theme.muted,
        ))
    } else {
        records_filter_line(state, theme)
    };
    // Every reason with its count, on as many lines as they take (up to three): at 80 columns
    // five reasons do not fit on one, and a reason left out is a reason not seen.
    let counts = Line::from(counts);
    let count_rows = counts.width().div_ceil(area.width.max(1) as usize).clamp(1, 3) as u16;
    // The result of the last action in full (what was refused and why), up to three lines.
    let note_line = note_line(state, theme);
    let note_rows = note_line.width().div_ceil(area.width.max(1) as usize).clamp(1, 3) as u16;
    let [count_area, filter_area, body, note] = Layout::vertical([
        Constraint::Length(count_rows),
        Constraint::Length(1),
        Constraint::Min(6),
        Constraint::Length(note_rows),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(counts).wrap(Wrap { trim: true }), count_area);
    frame.render_widget(Paragraph::new(filter_line), filter_area);

    let wide = body.width >= 110;
    // The groups take most of the room: their detail is a few lines of keys.
    let list_share = if q.in_groups() {
        if wide { 60 } else { 65 }
    } else if wide {
        40
    } else {
        45
    };
    let shares = [Constraint::Percentage(list_share), Constraint::Percentage(100 - list_share)];
    let (list_area, detail_area) = if wide {
        let [l, d] = Layout::horizontal(shares).areas(body);
        (l, d)
    } else {
        let [l, d] = Layout::vertical(shares).areas(body);
        (l, d)
    };
    if q.in_groups() {
        groups(state, frame, list_area, theme);
        group_detail(state, frame, detail_area, theme);
    } else {
        list(state, frame, list_area, theme);
        detail(state, frame, detail_area, theme);
    }

    frame.render_widget(Paragraph::new(note_line).wrap(Wrap { trim: true }), note);
}

fn note_line(state: &AppState, theme: &Theme) -> Line<'static> {
    let layer = state.pane.layer();
    let k = |a| state.keymap.key_for(layer, a);
    if state.queue.note.is_none() && state.queue.in_groups() {
        return Line::from(Span::styled(
            format!(
                "{} its records · {} mark the group · {} records view · {} find · {} go to",
                k(Action::FocusDetail),
                k(Action::MarkAll),
                k(Action::Groups),
                k(Action::Search),
                k(Action::Jump)
            ),
            theme.muted,
        ));
    }
    match &state.queue.note {
        Some((true, text)) => Line::from(Span::styled(text.clone(), theme.error)),
        Some((false, text)) => Line::from(Span::styled(text.clone(), theme.ok)),
        None => Line::from(Span::styled(
            format!(
                "{} fields · {} edit · {} mark · {} mark all · {} set on marked · {} reprocess · {} skip",
                k(Action::FocusDetail),
                k(Action::EditField),
                k(Action::ToggleMark),
                k(Action::MarkAll),
                k(Action::EditMarked),
                k(Action::Reprocess),
                k(Action::Skip)
            ),
            theme.muted,
        )),
    }
}

/// What the records list is filtered by.
fn records_filter_line(state: &AppState, theme: &Theme) -> Line<'static> {
    let q = &state.queue;
    let layer = state.pane.layer();
    let k = |a| state.keymap.key_for(layer, a);
    // A group's filter is long: its key hints give way to the marks (help lists the keys).
    let hint = |a| if q.query.issue.is_some() { String::new() } else { format!(" ({})", k(a)) };
    Line::from(vec![
        Span::styled(
            format!(
                "object: {}{} · reason: {}{}{} · marked: {} ",
                q.query.object.as_deref().unwrap_or("all"),
                hint(Action::FilterObject),
                q.query.reason.as_deref().unwrap_or("all"),
                hint(Action::FilterReason),
                match &q.query.issue {
                    Some((f, v)) => format!(" · {f} = {}", crate::text::quoted(v.as_deref())),
                    None => String::new(),
                } + &match q.query.order {
                    crate::store::queue_view::Order::Oldest => String::new(),
                    other => format!(" · {}", other.label()),
                },
                thousands(q.marked.len() as u64)
            ),
            theme.muted,
        ),
        if q.loading { Span::styled("loading…", theme.muted) } else { Span::raw("") },
    ])
}

/// The held records by object, reason and the value their first issue is about, the most
/// frequent first: what an operator clears a group at a time.
fn groups(state: &AppState, frame: &mut Frame, area: Rect, theme: &Theme) {
    let q = &state.queue;
    let rows: Vec<Row> = q
        .groups
        .iter()
        .map(|g| {
            let value = match &g.field {
                Some(f) => format!("{f} = {}", crate::text::quoted(g.value.as_deref())),
                None => "(other values)".to_string(),
            };
            Row::new(vec![thousands(g.count), g.object.clone(), g.reason.clone(), value])
        })
        .collect();
    let mut table_state = TableState::default();
    table_state.select(Some(q.group_cursor.min(q.groups.len().saturating_sub(1))));
    let title = format!(" groups · {} of {} ", q.group_cursor + 1, q.groups.len());
    let table =
        Table::new(rows, [Constraint::Length(9), Constraint::Length(10), Constraint::Length(22), Constraint::Min(10)])
            .header(Row::new(["held", "object", "reason", "first issue's value"]).style(theme.accent))
            .row_highlight_style(theme.selected)
            .block(Block::default().borders(Borders::ALL).title(title).border_style(theme.accent));
    frame.render_stateful_widget(table, area, &mut table_state);
}

fn group_detail(state: &AppState, frame: &mut Frame, area: Rect, theme: &Theme) {
    let q = &state.queue;
    let layer = state.pane.layer();
    let k = |a| state.keymap.key_for(layer, a);
    let mut lines = Vec::new();
    if let Some(g) = q.selected_group() {
        let what = match &g.field {
            Some(f) => format!("{f} = {}", crate::text::quoted(g.value.as_deref())),
            None => "the values not listed above".into(),
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{} {} ", thousands(g.count), g.object), theme.accent),
            Span::raw(format!("held for {} · {what}", g.reason)),
        ]));
        lines.push(Line::from(""));
    }
    for (key, text) in [
        (k(Action::FocusDetail), "shows these records"),
        (k(Action::MarkAll), "marks them all, then E sets a field on them, s skips them, r reprocesses"),
        (k(Action::Groups), "switches between groups and records"),
        (k(Action::Search), "finds a source id or value · : goes to a queue id"),
    ] {
        lines.push(Line::from(vec![Span::styled(format!("{key:>6} "), theme.accent), Span::raw(text)]));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" group ").border_style(theme.muted)),
        area,
    );
}

fn list(state: &AppState, frame: &mut Frame, area: Rect, theme: &Theme) {
    let q = &state.queue;
    let rows: Vec<Row> = q
        .items
        .iter()
        .map(|i| {
            let mark = if q.marked.contains(&i.id) { "●" } else { " " };
            let status = match &i.claimed_by {
                Some(by) if *by != state.me => format!(" [TAKEN by {}]", shown(by)),
                Some(_) => " [editing here]".to_string(),
                None if i.status.as_str() == "open" => String::new(),
                None => format!(" [{}]", i.status.as_str()),
            };
            Row::new(vec![
                mark.to_string(),
                format!("#{}", i.id),
                i.object.clone(),
                shown(&i.source_id),
                format!("{}{status}", i.reason),
            ])
        })
        .collect();
    let mut table_state = TableState::default();
    if let Some(sel) = q.cursor.checked_sub(q.offset).filter(|s| *s < q.items.len()) {
        table_state.select(Some(sel));
    }
    let title =
        format!(" {} of {} ", thousands(if q.total == 0 { 0 } else { q.cursor as u64 + 1 }), thousands(q.total as u64));
    let border = if q.focus_detail { theme.muted } else { theme.accent };
    let table = Table::new(
        rows,
        [
            Constraint::Length(1),
            Constraint::Length(5),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(["", "id", "object", "source", "reason"]).style(theme.accent))
    .row_highlight_style(theme.selected)
    .block(Block::default().borders(Borders::ALL).title(title).border_style(border));
    frame.render_stateful_widget(table, area, &mut table_state);
}

fn detail(state: &AppState, frame: &mut Frame, area: Rect, theme: &Theme) {
    let q = &state.queue;
    let border = if q.focus_detail { theme.accent } else { theme.muted };
    let Some(item) = q.selected() else {
        let text = if q.total == 0 { "Nothing waiting in the queue for this filter." } else { "" };
        frame.render_widget(
            Paragraph::new(text).block(Block::default().borders(Borders::ALL).title(" record ").border_style(border)),
            area,
        );
        return;
    };
    if !item.candidate_ids().is_empty() {
        decide(state, frame, area, theme);
        return;
    }
    let fields = q.fields();
    // Source values are keyed by source field: find each destination field's `from`.
    let mapping = state.mapping.objects.iter().find(|o| o.name == item.object);
    let source_of = |f: &str| -> Option<String> {
        let from = mapping.and_then(|m| m.rows.iter().find(|r| r.dest == f)).map(|r| r.from.as_str()).unwrap_or(f);
        item.source.get(from).map(|v| shown_opt(v.as_deref()))
    };
    let rows: Vec<Row> = fields
        .iter()
        .map(|f| {
            let source = source_of(f).unwrap_or_default();
            let (mapped, corrected) = match item.corrections.get(f) {
                Some(v) => (shown_opt(v.as_deref()), true),
                None => (item.mapped.get(f).map(|v| shown_opt(v.as_deref())).unwrap_or_default(), false),
            };
            let issue = item.issues.iter().find(|i| &i.field == f);
            let issue_text = issue.map(|i| format!("{}: {}", i.rule.as_str(), shown(&i.message))).unwrap_or_default();
            let style = if issue.is_some() { theme.error } else { Style::default() };
            Row::new(vec![
                f.clone(),
                fit(&source, 16),
                if corrected { format!("{} (fixed)", fit(&mapped, 12)) } else { fit(&mapped, 20) },
                issue_text,
            ])
            .style(style)
        })
        .collect();
    let mut table_state = TableState::default();
    if q.focus_detail {
        table_state.select(Some(q.field.min(fields.len().saturating_sub(1))));
    }
    let waiting = item.waiting_on.as_ref().map(|(o, s)| format!(" · waits for {o} {}", shown(s))).unwrap_or_default();
    let taken = taken_note(state, item);
    let title =
        format!("{taken} #{} {} {} · {}{} ", item.id, item.object, shown(&item.source_id), item.origin, waiting);
    let height = rows.len() + 1;
    let table =
        Table::new(rows, [Constraint::Length(16), Constraint::Length(16), Constraint::Length(20), Constraint::Min(10)])
            .header(Row::new(["field", "source", "mapped", "issue"]).style(theme.accent))
            .row_highlight_style(theme.selected);
    let block = Block::default().borders(Borders::ALL).title(fit(&title, area.width as usize - 2)).border_style(border);
    let mut issues = issues(item, None, theme);
    // The selected field's values in full (the table has room for their start only).
    if q.focus_detail
        && let Some(f) = fields.get(q.field.min(fields.len().saturating_sub(1)))
    {
        let now = item.value_of(f);
        let from = mapping.and_then(|m| m.rows.iter().find(|r| r.dest == *f)).map(|r| r.from.as_str()).unwrap_or(f);
        let source: Option<String> = item.source.get(from).cloned().flatten();
        let long = now.as_deref().is_some_and(|v| v.chars().count() > 20)
            || source.as_deref().is_some_and(|v| v.chars().count() > 16);
        if long {
            issues.insert(
                0,
                Line::from(vec![
                    Span::styled(format!("{f}: "), theme.accent),
                    Span::raw(format!(
                        "{} (source {})",
                        crate::text::quoted(now.as_deref()),
                        source.map(|v| crate::text::quoted(Some(&v))).unwrap_or_else(|| "—".into())
                    )),
                ]),
            );
        }
    }
    let [table_area, issues_area] = with_issues(frame, area, block, height, &issues);
    // On a short screen the field the record is held for is scrolled into view, not left below.
    let visible = table_area.height.saturating_sub(1) as usize;
    if !q.focus_detail
        && let Some(at) = fields.iter().position(|f| item.issues.iter().any(|i| i.field == *f))
        && visible > 0
        && at >= visible
    {
        *table_state.offset_mut() = at + 1 - visible;
    }
    frame.render_stateful_widget(table, table_area, &mut table_state);
    frame.render_widget(Paragraph::new(issues).wrap(Wrap { trim: false }), issues_area);
}

/// Draws the block and splits its inside: the table on top, the issues (`issues`, with the
/// lines they wrap to) below; when both do not fit, the issues get up to half, the table the rest.
fn with_issues(frame: &mut Frame, area: Rect, block: Block<'_>, table_rows: usize, issues: &[Line]) -> [Rect; 2] {
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width.max(1) as usize;
    let wanted: usize = issues.iter().map(|l| l.width().div_ceil(width).max(1)).sum();
    let wanted = wanted.min(u16::MAX as usize) as u16;
    let table = (table_rows as u16).min(inner.height.saturating_sub(wanted.min(inner.height / 2) + 1));
    let [table, _, issues] =
        Layout::vertical([Constraint::Length(table), Constraint::Length(1), Constraint::Min(0)]).areas(inner);
    [table, issues]
}

/// Every issue of the record in full — field, rule, message, suggestion — wrapped: the table's
/// issue column and the title only have room for their start. `keys`: the decision keys.
fn issues<'a>(item: &crate::store::QueueItem, keys: Option<String>, theme: &Theme) -> Vec<Line<'a>> {
    let mut lines = Vec::new();
    for i in &item.issues {
        lines.push(Line::from(vec![
            Span::styled(format!("{} · {}: ", i.field, i.rule.as_str()), theme.error),
            Span::raw(shown(&i.message)),
        ]));
        if let Some(s) = &i.suggestion {
            lines.push(Line::from(Span::styled(format!("  → {}", shown(s)), theme.muted)));
        }
    }
    if let Some(keys) = keys {
        lines.push(Line::from(Span::styled(keys, theme.accent)));
    }
    lines
}

fn taken_note(state: &AppState, item: &crate::store::QueueItem) -> String {
    match &item.claimed_by {
        Some(by) if *by != state.me => format!(" TAKEN by {} ·", shown(by)),
        _ => String::new(),
    }
}

/// An ambiguous or undecided match: the record beside each destination candidate, field by field,
/// with the chosen candidate marked; `M` merges into it, `N` creates new, `s` skips.
fn decide(state: &AppState, frame: &mut Frame, area: Rect, theme: &Theme) {
    let q = &state.queue;
    let Some(item) = q.selected() else { return };
    let ids = item.candidate_ids();
    let chosen = q.candidate.min(ids.len().saturating_sub(1));
    let values = |id: &str, field: &str| -> String {
        match item.candidates.as_ref().and_then(|c| c.get(id)) {
            Some(serde_json::Value::Object(fields)) => match fields.get(field) {
                Some(serde_json::Value::String(v)) => shown(v),
                Some(serde_json::Value::Null) | None => "—".into(),
                Some(other) => shown(&other.to_string()),
            },
            _ => "(not read)".into(),
        }
    };
    // As many candidate columns as fit, keeping the chosen one in view.
    let col = 18usize;
    let fit_n = ((area.width as usize).saturating_sub(2 + 16 + col) / col).max(1);
    let start = chosen.saturating_sub(fit_n - 1);
    let shown_ids: Vec<&String> = ids.iter().skip(start).take(fit_n).collect();
    let fields: Vec<&String> = item.mapped.keys().collect();
    let rows: Vec<Row> = fields
        .iter()
        .map(|f| {
            let ours = item.mapped.get(*f).map(|v| shown_opt(v.as_deref())).unwrap_or_default();
            let mut cells = vec![(*f).clone(), fit(&ours, col - 1)];
            let mut differs = false;
            for id in &shown_ids {
                let theirs = values(id, f);
                differs |= theirs != ours && theirs != "—" && !ours.is_empty();
                cells.push(fit(&theirs, col - 1));
            }
            let issue = item.issues.iter().any(|i| &i.field == *f);
            let style = if issue {
                theme.error
            } else if differs {
                theme.warn
            } else {
                Style::default()
            };
            Row::new(cells).style(style)
        })
        .collect();
    let mut header = vec!["field".to_string(), "this record".to_string()];
    for (i, id) in shown_ids.iter().enumerate() {
        let mark = if start + i == chosen { "▶ " } else { "  " };
        header.push(format!("{mark}{}", shown(id)));
    }
    let mut widths = vec![Constraint::Length(16), Constraint::Length(col as u16)];
    widths.extend(shown_ids.iter().map(|_| Constraint::Length(col as u16)));
    let layer = state.pane.layer();
    let k = |a| state.keymap.key_for(layer, a);
    let title = format!(
        "{} #{} {} {} · {} · candidate {} of {} ",
        taken_note(state, item),
        item.id,
        item.object,
        shown(&item.source_id),
        item.origin,
        chosen + 1,
        ids.len(),
    );
    let keys = format!(
        "{}/{} choose · {} merge into {} · {} create new · {} skip",
        k(Action::PrevCandidate),
        k(Action::NextCandidate),
        k(Action::MergeInto),
        ids.get(chosen).map(|s| shown(s)).unwrap_or_default(),
        k(Action::CreateNew),
        k(Action::Skip),
    );
    let border = if q.focus_detail { theme.accent } else { theme.muted };
    let height = rows.len() + 1;
    let table = Table::new(rows, widths).header(Row::new(header).style(theme.accent));
    let block = Block::default().borders(Borders::ALL).title(fit(&title, area.width as usize - 2)).border_style(border);
    let issues = issues(item, Some(keys), theme);
    let [table_area, issues_area] = with_issues(frame, area, block, height, &issues);
    frame.render_widget(table, table_area);
    frame.render_widget(Paragraph::new(issues).wrap(Wrap { trim: false }), issues_area);
}
