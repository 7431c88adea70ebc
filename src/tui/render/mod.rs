//! Drawing: a pure function of [`AppState`]. One module a pane; the frame (tabs, status line,
//! modals, the too-small screen) here.

mod audit;
mod mapping;
mod overview;
mod queue;
mod reconcile;

use super::keymap::Action;
use super::state::{AppState, Modal, Pane};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// Semantic colours; all plain when colour is off (`NO_COLOR`). Colour is never the only
/// signal: every state is also a word.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub ok: Style,
    pub warn: Style,
    pub error: Style,
    pub muted: Style,
    pub accent: Style,
    pub selected: Style,
}

impl Theme {
    pub fn new(color: bool) -> Self {
        if !color {
            let plain = Style::default();
            return Self {
                ok: plain,
                warn: plain,
                error: plain.add_modifier(Modifier::BOLD),
                muted: plain,
                accent: plain.add_modifier(Modifier::BOLD),
                selected: plain.add_modifier(Modifier::REVERSED),
            };
        }
        Self {
            ok: Style::default().fg(Color::Green),
            warn: Style::default().fg(Color::Yellow),
            error: Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            muted: Style::default().fg(Color::DarkGray),
            accent: Style::default().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            selected: Style::default().add_modifier(Modifier::REVERSED),
        }
    }
}

pub fn render(state: &AppState, frame: &mut Frame) {
    let area = frame.area();
    let theme = Theme::new(state.color);
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(frame, area);
        return;
    }
    let [tabs, body, status] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(1)]).areas(area);
    render_tabs(state, frame, tabs, &theme);
    match state.pane {
        Pane::Overview => overview::render(state, frame, body, &theme),
        Pane::Mapping => mapping::render(state, frame, body, &theme),
        Pane::Queue => queue::render(state, frame, body, &theme),
        Pane::Audit => audit::render(state, frame, body, &theme),
        Pane::Reconcile => reconcile::render(state, frame, body, &theme),
    }
    render_status(state, frame, status, &theme);
    match &state.modal {
        Some(Modal::Help { scroll }) => help(state, frame, area, *scroll, &theme),
        Some(Modal::Confirm { question, .. }) => confirm(frame, area, question, &theme),
        Some(Modal::Choose { title, options, cursor, .. }) => choose(frame, area, title, options, *cursor, &theme),
        Some(Modal::Edit { target, input, error }) => edit(frame, area, target, input, error.as_deref(), &theme),
        None => {}
    }
}

fn too_small(frame: &mut Frame, area: Rect) {
    let text = format!(
        "Terminal too small: {}×{}.\nCutover needs at least {MIN_WIDTH}×{MIN_HEIGHT}.\nEnlarge the window; q quits.",
        area.width, area.height
    );
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
}

fn render_tabs(state: &AppState, frame: &mut Frame, area: Rect, theme: &Theme) {
    // Narrow terminals get short tab names; the project name takes what is left.
    let short = area.width < 120;
    let mut spans = Vec::new();
    for pane in Pane::ALL {
        let title = match (short, pane) {
            (true, Pane::Overview) => "Overview",
            (true, Pane::Audit) => "Audit",
            (true, Pane::Reconcile) => "Reconcile",
            _ => pane.title(),
        };
        let label = format!(" {} {} ", pane.index() + 1, title);
        let style = if pane == state.pane { theme.selected } else { Style::default() };
        spans.push(Span::styled(label, style));
    }
    if let Some(live) = &state.live {
        spans.push(Span::raw(" "));
        let style = if live.active() { theme.warn } else { theme.muted };
        spans.push(Span::styled(format!("[{}]", fit(&live.state_word(), 24)), style));
    }
    let used: usize = spans.iter().map(|s| s.width()).sum();
    let room = (area.width as usize).saturating_sub(used + 1);
    if room >= 6 {
        spans.push(Span::styled(format!(" {}", fit(&state.project, room)), theme.accent));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn render_status(state: &AppState, frame: &mut Frame, area: Rect, theme: &Theme) {
    let line = match &state.status {
        Some((true, text)) => {
            Line::from(vec![Span::styled("! ", theme.error), Span::styled(text.clone(), theme.error)])
        }
        Some((false, text)) => Line::from(Span::raw(text.clone())),
        None => {
            let layer = state.pane.layer();
            let k = |a| state.keymap.key_for(layer, a);
            Line::from(Span::styled(
                format!(
                    "{} help · {} next pane · {}-5 panes · {} quit",
                    k(Action::Help),
                    k(Action::NextPane),
                    k(Action::PaneOverview),
                    k(Action::Quit)
                ),
                theme.muted,
            ))
        }
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// A box in the middle of `area`.
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

fn help(state: &AppState, frame: &mut Frame, area: Rect, scroll: u16, theme: &Theme) {
    let rows = state.keymap.help(state.pane.layer());
    let width = area.width.saturating_sub(2).min(90);
    let height = (rows.len() as u16 + 2).min(area.height.saturating_sub(2));
    let overflows = rows.len() as u16 + 2 > height;
    let r = centered(area, width, height);
    let lines: Vec<Line> = rows
        .iter()
        .map(|(k, d)| Line::from(vec![Span::styled(format!("{k:>14}  "), theme.accent), Span::raw(d.clone())]))
        .collect();
    frame.render_widget(Clear, r);
    let how = if overflows { "j/k scroll, any other key closes" } else { "any key closes" };
    frame.render_widget(
        Paragraph::new(lines)
            .scroll((scroll, 0))
            .block(Block::default().borders(Borders::ALL).title(format!(" Keys: {} ({how}) ", state.pane.title()))),
        r,
    );
}

/// A list to pick from, the cursor's row highlighted and kept in view.
fn choose(frame: &mut Frame, area: Rect, title: &str, options: &[String], cursor: usize, theme: &Theme) {
    let width = area.width.saturating_sub(4).clamp(20, 70);
    let height = (options.len() as u16 + 2).clamp(3, area.height.saturating_sub(2).max(3));
    let r = centered(area, width, height);
    frame.render_widget(Clear, r);
    let items: Vec<ratatui::widgets::ListItem> =
        options.iter().map(|o| ratatui::widgets::ListItem::new(crate::text::shown(o))).collect();
    let list = ratatui::widgets::List::new(items).highlight_style(theme.selected).highlight_symbol("▶ ").block(
        Block::default()
            .borders(Borders::ALL)
            .title(title.to_string())
            .title_bottom(Line::from(vec![
                Span::styled(" ↑/↓", theme.accent),
                Span::raw(" choose   "),
                Span::styled("enter", theme.accent),
                Span::raw(" take it   "),
                Span::styled("esc", theme.accent),
                Span::raw(" abandon "),
            ]))
            .border_style(theme.accent),
    );
    let mut list_state = ratatui::widgets::ListState::default();
    list_state.select(Some(cursor.min(options.len().saturating_sub(1))));
    frame.render_stateful_widget(list, r, &mut list_state);
}

fn confirm(frame: &mut Frame, area: Rect, question: &str, theme: &Theme) {
    // Sized to the question (a sign-off lists everything it accepts); the answer keys sit in
    // the frame, so they show even when a long question is cut.
    let width = area.width.saturating_sub(4).clamp(20, 90);
    let inner = width.saturating_sub(2).max(1) as usize;
    let rows: usize = question.lines().map(|l| l.chars().count().div_ceil(inner).max(1)).sum::<usize>() + 1;
    let r = centered(area, width, (rows as u16 + 2).clamp(5, area.height.saturating_sub(2)));
    frame.render_widget(Clear, r);
    let text: Vec<Line> = question.lines().map(|l| Line::from(l.to_string())).collect();
    frame.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: true }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" Confirm ")
                .title_bottom(Line::from(vec![
                    Span::styled(" y", theme.accent),
                    Span::raw(" yes   "),
                    Span::styled("n", theme.accent),
                    Span::raw(" / esc no "),
                ]))
                .border_style(theme.warn),
        ),
        r,
    );
}

fn edit(
    frame: &mut Frame,
    area: Rect,
    target: &super::state::EditTarget,
    input: &ratatui_textarea::TextArea<'static>,
    error: Option<&str>,
    theme: &Theme,
) {
    use super::state::EditTarget;
    let hint = match target {
        EditTarget::MappingRow { .. } => {
            r#" dest = { from = "src", transform = "trim", translate = "T", default = "x" } · enter · esc"#
        }
        EditTarget::Translation { .. } => r#" "source value" = "destination value" · enter adds it · esc"#,
        EditTarget::Field { .. } => " enter saves · esc abandons · empty clears the value",
        EditTarget::AcceptReason { .. } | EditTarget::SkipReason { .. } => " enter takes the reason · esc abandons",
        EditTarget::SignOffNotes => " enter, then a confirmation names everything accepted · esc abandons",
        EditTarget::AuditSearch => " enter filters · esc abandons · empty shows every record",
        EditTarget::QueueSearch => " enter finds the next · then n next, N previous · esc abandons",
        EditTarget::QueueJump => " enter goes there (the filter changes if it must) · esc abandons",
    };
    let title = match target {
        EditTarget::MappingRow { object, original: Some(dest) } => format!(" {object}: edit the mapping of {dest} "),
        EditTarget::MappingRow { object, original: None } => format!(" {object}: map a destination field "),
        EditTarget::Translation { table } => format!(" Add to translations.{table} "),
        EditTarget::Field { ids, field, .. } if ids.len() == 1 => format!(" Set {field} on record #{} ", ids[0]),
        EditTarget::Field { ids, field, .. } => format!(" Set {field} on {} marked records ", ids.len()),
        EditTarget::SkipReason { ids } => format!(" Why skip {} record(s)? ", ids.len()),
        EditTarget::AuditSearch => " Source id (empty: all) ".to_string(),
        EditTarget::QueueSearch => " Find a source id or value (any case) ".to_string(),
        EditTarget::QueueJump => " Go to queue id (#35) or source id ".to_string(),
        EditTarget::AcceptReason { key } => format!(" Why accept {key}? (recorded with the sign-off) "),
        EditTarget::SignOffNotes => " Sign-off notes: what was checked, and by whom ".to_string(),
    };
    let width = if matches!(target, EditTarget::MappingRow { .. }) { 96 } else { 70 };
    let r = centered(area, width, if error.is_some() { 7 } else { 5 });
    frame.render_widget(Clear, r);
    let [field, hint_area, error_area] =
        Layout::vertical([Constraint::Length(3), Constraint::Length(1), Constraint::Min(0)]).areas(r);
    let mut input = input.clone();
    input.set_block(Block::default().borders(Borders::ALL).title(title).border_style(theme.accent));
    input.set_cursor_line_style(Style::default());
    frame.render_widget(&input, field);
    frame.render_widget(Paragraph::new(Span::styled(fit(hint, hint_area.width as usize), theme.muted)), hint_area);
    if let Some(e) = error {
        frame.render_widget(
            Paragraph::new(Span::styled(format!(" NOT APPLIED: {e}"), theme.error)).wrap(Wrap { trim: true }),
            error_area,
        );
    }
}

pub use crate::text::thousands;

/// Cuts a string to `max` characters, with an ellipsis.
pub fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
