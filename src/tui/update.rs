//! `update(state, msg) -> effects`: the console's only way to change state. Pure — no I/O, no
//! clock, no terminal — so every key path is unit-tested; effects are the only route to the
//! engine and the store.

use super::keymap::{Action, Key};
use super::state::*;
use crate::pipeline::map::CREATE_NEW;
use crate::pipeline::progress::Control;
use crate::pipeline::{Progress, RunState};
use crate::store::QueueItem;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind};
use ratatui_textarea::TextArea;
use std::collections::VecDeque;

/// Rows of the queue fetched per page (windowed: a million rows stay a page away).
pub const QUEUE_PAGE: usize = 200;
pub const AUDIT_PAGE: usize = 200;

#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    /// Text pasted into the terminal (bracketed paste): typed into an open edit box, never
    /// submitted by a line break in it.
    Paste(String),
    /// A new snapshot from the engine; `now` is seconds since the console started.
    Progress {
        progress: Progress,
        now: f64,
    },
    /// The engine task returned: a one-line summary, and whether it went wrong.
    RunEnded {
        summary: String,
        failed: bool,
    },
    /// A page of the queue for `query` (answers to an older query are dropped).
    QueueLoaded {
        query: QueueQuery,
        summary: Vec<(String, String, u64)>,
        items: Vec<QueueItem>,
        offset: usize,
        total: usize,
    },
    QueueIds(Vec<i64>),
    /// The held records' groups (object, reason, first issue's value) with counts.
    GroupsLoaded(Vec<crate::store::queue_view::Group>),
    /// Where `/`, `n` or `N` found the text in `query`: the record and its position (`None`: nowhere).
    Found {
        query: QueueQuery,
        text: String,
        found: Option<(i64, usize)>,
    },
    /// Where `:` found the record: the filter it is shown in and its position, or why not.
    Jumped(Result<(QueueQuery, i64, usize), String>),
    /// A reprocess waits for the project's run lock (`Some`: what it waits for), or stopped
    /// waiting because the operator cancelled (`None`).
    Waited(Option<String>),
    AuditLoaded {
        query: AuditQuery,
        before: Option<i64>,
        rows: Vec<AuditEntry>,
        more: bool,
    },
    BalanceLoaded {
        run: Option<(i64, String, String)>,
        rows: Vec<BalanceRow>,
        latest_run: Option<i64>,
        signoff: Option<crate::store::SignOff>,
    },
    /// A reconciliation report, or why none could be made.
    Reconciled(Result<Box<crate::reconcile::Report>, String>),
    /// The sign-off was recorded, or refused (why).
    SignedOff(Result<crate::store::SignOff, String>),
    /// What rolling `run` back would do, in words (or why it cannot).
    RollbackPreviewed(Result<(i64, String), String>),
    /// A rollback finished: what it did, and the records it left for a decision (with why).
    RolledBack {
        run: i64,
        message: String,
        left: Vec<String>,
    },
    /// A fix, reprocess or skip finished: what to tell the operator, and whether it went wrong.
    Done {
        message: String,
        failed: bool,
    },
    Failed(String),
    /// A second has passed: time to look whether the store changed.
    Tick,
    /// Another connection committed to the store; `latest` is its newest run.
    StoreChanged {
        latest: Option<ObservedRun>,
        now: f64,
    },
    /// The mapping sample answered.
    Sampled(SampleView),
    /// The edited project file was checked and written.
    Saved {
        text: String,
    },
    /// The edited project file was not saved: its problems (or why it could not be written).
    SaveFailed {
        problems: Vec<crate::config::Problem>,
        version: u64,
    },
    /// What a bulk correction would change (a summary with the first records before → after),
    /// or why it cannot be made.
    FixPreviewed {
        ids: Vec<i64>,
        field: String,
        value: Option<String>,
        result: Result<String, String>,
    },
    /// The store granted this console the records to edit.
    Claimed {
        ids: Vec<i64>,
        field: String,
        current: String,
        /// What the one record edited held when the operator chose to edit it.
        was: Option<Option<String>>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    StartRun {
        mode: RunMode,
    },
    Control(Control),
    LoadQueue {
        query: QueueQuery,
        offset: usize,
    },
    LoadQueueIds {
        query: QueueQuery,
    },
    /// The groups of held records (answered `GroupsLoaded`).
    LoadGroups,
    /// Find `text` in the records of `query` after (or before) record `from` (answered `Found`).
    Find {
        query: QueueQuery,
        from: i64,
        text: String,
        forward: bool,
    },
    /// Go to a queue id or source id, in `query` if it is there (answered `Jumped`).
    Jump {
        query: QueueQuery,
        text: String,
    },
    LoadAudit {
        query: AuditQuery,
        before: Option<i64>,
    },
    LoadBalance,
    Fix {
        ids: Vec<i64>,
        field: String,
        value: Option<String>,
        /// What the field held when the operator looked (one record): refused if it changed since.
        was: Option<Option<String>>,
    },
    Reprocess {
        ids: Vec<i64>,
    },
    /// Work out what setting `field` on these records would change (answered `FixPreviewed`).
    PreviewFix {
        ids: Vec<i64>,
        field: String,
        value: Option<String>,
    },
    /// Take back the last correction of each record (answered `Done`).
    Undo {
        ids: Vec<i64>,
    },
    Skip {
        ids: Vec<i64>,
        reason: String,
    },
    /// Look (cheaply) whether another connection changed the store.
    Poll,
    /// Claim records before editing them; answered `Claimed` or `Failed` naming the holder.
    Claim {
        ids: Vec<i64>,
        field: String,
        current: String,
        was: Option<Option<String>>,
    },
    Release {
        ids: Vec<i64>,
    },
    /// Map the first records of `object` with the edited text (answered `Sampled`).
    SampleMapping {
        text: String,
        object: String,
        version: u64,
    },
    /// Check the edited text against both systems and write it, if the file on disk is still
    /// `expected` (answered `Saved` or `SaveFailed`).
    SaveMapping {
        text: String,
        expected: String,
    },
    /// Record an operator's match decision (`MATCH_CHOICE`) and reprocess the record at once.
    Decide {
        id: i64,
        choice: String,
    },
    /// Reconcile the project against both systems (answered `Reconciled`).
    Reconcile,
    /// Record a sign-off of `report` (answered `SignedOff`).
    SignOff {
        report: Box<crate::reconcile::Report>,
        notes: String,
        accepted: Vec<(String, String)>,
    },
    /// Write the report as Markdown and JSON beside the project file (answered `Done`).
    WriteReport {
        report: Box<crate::reconcile::Report>,
    },
    /// Preview a rollback of the newest run that wrote records (answered `RollbackPreviewed`).
    PreviewRollback,
    /// Roll `run` back; records changed in the destination since are left, or with `keep` kept
    /// (audited). Answered `RolledBack`.
    Rollback {
        run: i64,
        keep: bool,
    },
}

/// Effects to run when the console opens.
pub fn startup() -> Vec<Effect> {
    vec![
        Effect::LoadGroups,
        Effect::LoadQueue { query: QueueQuery::default(), offset: 0 },
        Effect::LoadAudit { query: AuditQuery::default(), before: None },
        Effect::LoadBalance,
    ]
}

pub fn update(state: &mut AppState, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Key(key) if key.kind != KeyEventKind::Release => on_key(state, key),
        Msg::Key(_) => Vec::new(),
        Msg::Paste(text) => {
            if let Some(Modal::Edit { input, .. }) = state.modal.as_mut() {
                // The boxes hold one line: line breaks and tabs become spaces.
                let line: String =
                    text.chars().map(|c| if c == '\n' || c == '\r' || c == '\t' { ' ' } else { c }).collect();
                input.insert_str(line.trim_end());
            }
            Vec::new()
        }
        Msg::Progress { progress, now } => {
            on_progress(state, progress, now);
            Vec::new()
        }
        Msg::RunEnded { summary, failed } => {
            if state.quit_after_run {
                state.quit = true;
            }
            let mode = state.live.as_ref().map(|l| l.mode);
            if let Some(live) = state.live.as_mut() {
                live.ended = Some(summary.clone());
                live.waiting = None;
            }
            // Marks stay on records a reprocess did not get to (refused, failed): only what it
            // handled is unmarked.
            let handled = std::mem::take(&mut state.queue.reprocessing);
            if mode == Some(RunMode::Reprocess) && !failed {
                for id in handled {
                    state.queue.marked.remove(&id);
                }
            }
            state.status = Some((failed, summary));
            if mode == Some(RunMode::Preview) {
                return Vec::new(); // a preview changed nothing to reload
            }
            reload_all(state)
        }
        Msg::QueueLoaded { query, summary, items, offset, total } => {
            let q = &mut state.queue;
            if query != q.query {
                return Vec::new(); // answered after the filter changed again
            }
            q.summary = summary;
            q.items = items;
            q.offset = offset;
            q.total = total;
            q.loading = false;
            if q.cursor >= total {
                q.cursor = total.saturating_sub(1);
            }
            // Marks of records no longer pending fall away with them.
            if !q.marked.is_empty() && offset == 0 && total <= QUEUE_PAGE {
                let present: Vec<i64> = q.items.iter().map(|i| i.id).collect();
                q.marked.retain(|id| present.contains(id));
            }
            if q.cursor < q.offset || q.cursor >= q.offset + q.items.len().max(1) {
                return vec![Effect::LoadQueue { query: q.query.clone(), offset: page_of(q.cursor, QUEUE_PAGE) }];
            }
            Vec::new()
        }
        Msg::Waited(waiting) => {
            if let Some(live) = state.live.as_mut() {
                live.waiting = waiting.clone();
            }
            state.queue.note = Some((false, waiting.unwrap_or_else(|| "stopped waiting; nothing reprocessed".into())));
            Vec::new()
        }
        Msg::GroupsLoaded(groups) => {
            let q = &mut state.queue;
            q.summary = summary_of(&groups);
            q.groups = groups;
            q.group_cursor = q.group_cursor.min(q.groups.len().saturating_sub(1));
            Vec::new()
        }
        Msg::Found { query, text, found } => {
            if query != state.queue.query {
                return Vec::new();
            }
            match found {
                Some((id, position)) => {
                    state.status = Some((false, format!("#{id} has {}", crate::text::quoted(Some(&text)))));
                    go_to(state, position)
                }
                None => {
                    state.status =
                        Some((true, format!("no held record of this filter has {}", crate::text::quoted(Some(&text)))));
                    Vec::new()
                }
            }
        }
        Msg::Jumped(Ok((query, id, position))) => {
            let q = &mut state.queue;
            q.mode = QueueMode::Records;
            let refilter = query != q.query;
            q.query = query;
            state.status =
                Some((false, format!("#{id}{}", if refilter { " (the filter changed to show it)" } else { "" })));
            if refilter {
                state.queue.items.clear();
                state.queue.total = position + 1;
            }
            go_to(state, position)
        }
        Msg::Jumped(Err(why)) => {
            state.status = Some((true, why));
            Vec::new()
        }
        Msg::QueueIds(ids) => {
            let n = ids.len();
            state.queue.marked.extend(ids);
            state.status = Some((false, format!("marked {n} records (of this filter)")));
            Vec::new()
        }
        Msg::AuditLoaded { query, before, rows, more } => {
            let a = &mut state.audit;
            if query != a.query || a.pages.last().copied().flatten() != before {
                return Vec::new(); // answered after the filter or page changed again
            }
            a.rows = rows;
            a.more = more;
            a.loading = false;
            a.cursor = a.cursor.min(a.rows.len().saturating_sub(1));
            Vec::new()
        }
        Msg::BalanceLoaded { run, rows, latest_run, signoff } => {
            let r = &mut state.reconcile;
            r.run = run;
            r.rows = rows;
            r.latest_run = latest_run;
            r.signoff = signoff;
            Vec::new()
        }
        Msg::Reconciled(result) => {
            let r = &mut state.reconcile;
            r.working = false;
            match result {
                Ok(report) => {
                    r.error = None;
                    if r.report.is_none() {
                        r.open.insert("discrepancies".into());
                    }
                    // Acceptances carry over only to discrepancies the new report still has; a
                    // console opened after a sign-off starts from what it accepted.
                    if r.accepted.is_empty()
                        && let Some(s) = r.signoff.as_ref().filter(|s| s.voided_by_run.is_none())
                    {
                        r.accepted = s.accepted.iter().map(|a| (a.key.clone(), a.reason.clone())).collect();
                    }
                    r.accepted.retain(|(key, _)| report.discrepancy(key).is_some());
                    let verdict = report.verdict();
                    r.report = Some(report);
                    r.cursor = r.cursor.min(r.lines().len().saturating_sub(1));
                    state.status = Some((false, format!("reconciled: {verdict}")));
                }
                Err(e) => {
                    r.error = Some(e.clone());
                    state.status = Some((true, format!("could not reconcile: {e}")));
                }
            }
            Vec::new()
        }
        Msg::RollbackPreviewed(result) => {
            match result {
                Ok((run, what)) if state.modal.is_none() => {
                    state.modal = Some(Modal::Confirm {
                        question: format!("Roll back run {run}?\n{what}"),
                        what: Confirm::Rollback { run, keep: false },
                    });
                }
                Ok(_) => {}
                Err(e) => state.status = Some((true, format!("nothing to roll back: {e}"))),
            }
            Vec::new()
        }
        Msg::RolledBack { run, message, left } => {
            state.status = Some((!left.is_empty(), message.clone()));
            if !left.is_empty() && state.modal.is_none() {
                let shown: Vec<String> = left.iter().take(8).map(|l| format!("• {l}")).collect();
                let more = if left.len() > 8 { format!("\n… and {} more", left.len() - 8) } else { String::new() };
                state.modal = Some(Modal::Confirm {
                    question: format!(
                        "{message}\nChanged in the destination since Cutover wrote them:\n{}{more}\nKeep them as they are \
                         (audited as kept)? n leaves them for later: `cutover rollback {run} --anyway SOURCE_ID` rolls one \
                         back regardless.",
                        shown.join("\n")
                    ),
                    what: Confirm::Rollback { run, keep: true },
                });
            }
            reload_all(state)
        }
        Msg::SignedOff(result) => {
            match result {
                Ok(s) => {
                    state.status = Some((false, format!("signed off by {} at {} ({})", s.user, s.at, s.verdict)));
                    state.reconcile.signoff = Some(s);
                }
                Err(e) => state.status = Some((true, format!("not signed off: {e}"))),
            }
            Vec::new()
        }
        Msg::Done { message, failed } => {
            // The queue pane shows it inline; elsewhere the status line does.
            if state.pane != Pane::Queue {
                state.status = Some((failed, message.clone()));
            }
            state.queue.note = Some((failed, message));
            reload_all(state)
        }
        Msg::Failed(message) => {
            state.status = Some((true, message));
            state.queue.loading = false;
            state.audit.loading = false;
            Vec::new()
        }
        Msg::Tick => vec![Effect::Poll],
        Msg::Sampled(sample) => {
            let m = &mut state.mapping;
            if sample.version == m.version {
                m.sampling = false;
            }
            if let Ok(ok) = &sample.result {
                m.source_fields.insert(sample.object.clone(), ok.source_fields.clone());
            }
            m.samples.insert(sample.object.clone(), sample);
            m.cursor = m.cursor.min(m.lines().len().saturating_sub(1));
            Vec::new()
        }
        Msg::Saved { text } => {
            let m = &mut state.mapping;
            m.saving = false;
            m.saved = text;
            if let Ok(config) = crate::config::parse(&m.path, &m.saved) {
                state.objects = config.order.clone();
            }
            let file = state.mapping.path.display().to_string();
            state.status = Some((false, format!("saved {file}; the next run uses it")));
            Vec::new()
        }
        Msg::SaveFailed { problems, .. } => {
            let m = &mut state.mapping;
            let version = m.version;
            m.saving = false;
            let n = problems.len();
            let first = problems.first().map(|p| format!("{}: {}", p.key, p.message)).unwrap_or_default();
            if let Some(object) = m.current().map(|o| o.name.clone()) {
                m.samples.insert(object.clone(), SampleView { object, version, result: Err(problems) });
            }
            state.status = Some((true, format!("not saved — {n} problem{}: {first}", if n == 1 { "" } else { "s" })));
            Vec::new()
        }
        Msg::StoreChanged { latest, now } => {
            observe(state, latest, now);
            reload_all(state)
        }
        Msg::FixPreviewed { ids, field, value, result } => match result {
            Ok(summary) if state.modal.is_none() => {
                let question = format!(
                    "Set {field} = {} on {} records?\n{summary}\ny writes the correction (u undoes it; r then reprocesses)",
                    crate::text::quoted(value.as_deref()),
                    crate::text::thousands(ids.len() as u64)
                );
                state.status = None;
                state.modal = Some(Modal::Confirm { question, what: Confirm::Fix { ids, field, value } });
                Vec::new()
            }
            Ok(_) => vec![Effect::Release { ids }],
            Err(why) => {
                state.status = Some((true, format!("nothing corrected: {why}")));
                vec![Effect::Release { ids }]
            }
        },
        Msg::Claimed { ids, field, current, was } => {
            if state.modal.is_some() {
                // Something else took the screen meanwhile: do not hold records nobody edits.
                return vec![Effect::Release { ids }];
            }
            open_edit(state, EditTarget::Field { ids, field, was }, &current);
            Vec::new()
        }
    }
}

/// Shows a run that another console or a headless `cutover run` drives, from the store.
fn observe(state: &mut AppState, latest: Option<ObservedRun>, now: f64) {
    let Some(run) = latest.filter(|r| !r.mine && r.kind != "preview") else { return };
    if state.live.as_ref().is_some_and(|l| l.remote.is_none() && l.active()) {
        return; // this console's own run: its engine reports first-hand
    }
    let same = state.live.as_ref().is_some_and(|l| l.remote.is_some() && l.progress.run_id == Some(run.id));
    let going = run.alive && matches!(run.state.as_str(), "running" | "paused");
    if !same && !going {
        return; // an old run: the reconciliation and audit panes show it
    }
    let mode = match run.kind.as_str() {
        "reprocess" => RunMode::Reprocess,
        _ => RunMode::Full,
    };
    let kind: &'static str = match run.kind.as_str() {
        "reprocess" => "reprocess",
        "delta" => "delta",
        _ => "full",
    };
    let run_state = match run.state.as_str() {
        "running" if run.alive => RunState::Running,
        "paused" if run.alive => RunState::Paused,
        "running" | "paused" => RunState::Failed("its process is gone (interrupted)".into()),
        "completed" => RunState::Completed,
        "cancelled" => RunState::Cancelled,
        "halted" => RunState::Halted(run.reason.clone().unwrap_or_default()),
        other => RunState::Failed(run.reason.clone().unwrap_or_else(|| other.to_string())),
    };
    if !same {
        start(state, mode);
        if let Some(live) = state.live.as_mut() {
            live.remote = Some(format!("run {} by {}, in another console or process", run.id, run.user));
        }
    }
    let progress = Progress {
        run_id: Some(run.id),
        kind,
        state: run_state,
        phase: format!("run {} · {}", run.id, run.state),
        current: None,
        objects: run.objects,
    };
    on_progress(state, progress, now);
    if let Some(live) = state.live.as_mut()
        && !going
        && live.ended.is_none()
    {
        live.ended = Some(format!("run {} {} (in another console)", run.id, run.state));
    }
}

fn page_of(cursor: usize, page: usize) -> usize {
    cursor - cursor % page
}

fn reload_all(state: &mut AppState) -> Vec<Effect> {
    state.queue.loading = true;
    vec![
        Effect::LoadGroups,
        Effect::LoadQueue { query: state.queue.query.clone(), offset: page_of(state.queue.cursor, QUEUE_PAGE) },
        Effect::LoadAudit { query: state.audit.query.clone(), before: state.audit.pages.last().copied().flatten() },
        Effect::LoadBalance,
    ]
}

fn on_progress(state: &mut AppState, progress: Progress, now: f64) {
    let live = match state.live.as_mut() {
        Some(l) if l.progress.kind == progress.kind || l.progress.run_id.is_none() => l,
        _ => return,
    };
    if live.samples.is_empty() {
        live.started_at = now;
    }
    if live.samples.len() != progress.objects.len() {
        live.samples = vec![VecDeque::new(); progress.objects.len()];
        live.rates = vec![VecDeque::new(); progress.objects.len()];
    }
    for (i, o) in progress.objects.iter().enumerate() {
        let s = &mut live.samples[i];
        s.push_back((now, o.counts.extracted));
        while s.len() > 2 && s.front().is_some_and(|(t, _)| now - t > 3.0) {
            s.pop_front();
        }
        // One sparkline point per second of the object's activity.
        let rates = &mut live.rates[i];
        if o.counts.extracted > 0 && o.total.is_some_and(|t| o.counts.extracted <= t) {
            let due = rates.len() as f64 <= now - live.started_at;
            if due {
                rates.push_back(rate(s) as u64);
                if rates.len() > 120 {
                    rates.pop_front();
                }
            }
        }
    }
    live.progress = progress;
}

/// Records/s over the samples kept (the last ~3 s).
pub fn rate(samples: &VecDeque<(f64, u64)>) -> f64 {
    match (samples.front(), samples.back()) {
        (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => (n1.saturating_sub(*n0)) as f64 / (t1 - t0),
        _ => 0.0,
    }
}

fn on_key(state: &mut AppState, key: KeyEvent) -> Vec<Effect> {
    // Esc then a key, arriving together over a slow link, reads as Alt+key: unless the keymap
    // binds that Alt+key, it is what the operator typed — Esc, then the key.
    if let KeyCode::Char(c) = key.code
        && key.modifiers.contains(crossterm::event::KeyModifiers::ALT)
        && state.keymap.action(state.pane.layer(), Key::from_event(&key)).is_none()
    {
        let mut effects = on_key(state, KeyEvent::new(KeyCode::Esc, crossterm::event::KeyModifiers::NONE));
        let plain = key.modifiers.difference(crossterm::event::KeyModifiers::ALT);
        effects.extend(on_key(state, KeyEvent::new(KeyCode::Char(c), plain)));
        return effects;
    }
    if let Some(modal) = state.modal.take() {
        return on_modal_key(state, modal, key);
    }
    let Some(action) = state.keymap.action(state.pane.layer(), Key::from_event(&key)) else {
        return Vec::new();
    };
    on_action(state, action)
}

fn on_modal_key(state: &mut AppState, modal: Modal, key: KeyEvent) -> Vec<Effect> {
    match modal {
        Modal::Help { scroll } => {
            // Arrows and j/k scroll a help taller than the screen; any other key closes it and is
            // not also taken as a command.
            let scroll = match key.code {
                KeyCode::Down | KeyCode::Char('j') => Some(scroll.saturating_add(1)),
                KeyCode::Up | KeyCode::Char('k') => Some(scroll.saturating_sub(1)),
                KeyCode::PageDown => Some(scroll.saturating_add(10)),
                KeyCode::PageUp => Some(scroll.saturating_sub(10)),
                _ => None,
            };
            let rows = state.keymap.help(state.pane.layer()).len() as u16;
            if let Some(scroll) = scroll {
                state.modal = Some(Modal::Help { scroll: scroll.min(rows.saturating_sub(1)) });
            }
            Vec::new()
        }
        Modal::Choose { title, options, cursor, purpose } => {
            let n = options.len().max(1);
            let cursor = match key.code {
                KeyCode::Down | KeyCode::Char('j') => (cursor + 1) % n,
                KeyCode::Up | KeyCode::Char('k') => (cursor + n - 1) % n,
                KeyCode::Esc => {
                    state.status = Some((false, "nothing done".into()));
                    return Vec::new();
                }
                KeyCode::Enter => return chosen(purpose, options.get(cursor).cloned()),
                // A letter jumps to the next option starting with it.
                KeyCode::Char(c) => (1..=n)
                    .map(|d| (cursor + d) % n)
                    .find(|&i| options.get(i).is_some_and(|o| o.starts_with(c)))
                    .unwrap_or(cursor),
                _ => cursor,
            };
            state.modal = Some(Modal::Choose { title, options, cursor, purpose });
            Vec::new()
        }
        Modal::Confirm { question, what } => match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => confirmed(state, what),
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                state.status = Some((false, "nothing done".into()));
                match what {
                    Confirm::Fix { ids, .. } => vec![Effect::Release { ids }],
                    _ => Vec::new(),
                }
            }
            _ => {
                state.modal = Some(Modal::Confirm { question, what });
                Vec::new()
            }
        },
        Modal::Edit { target, mut input, error } => match key.code {
            KeyCode::Esc => {
                state.status = Some((false, "edit abandoned; nothing changed".into()));
                match target {
                    EditTarget::Field { ids, .. } => vec![Effect::Release { ids }],
                    _ => Vec::new(),
                }
            }
            KeyCode::Enter => {
                let text = input.lines().join(" ");
                match target {
                    EditTarget::MappingRow { .. } | EditTarget::Translation { .. } => {
                        submit_mapping_edit(state, target, input, text)
                    }
                    _ => submit_edit(state, target, text),
                }
            }
            _ => {
                input.input(key);
                state.modal = Some(Modal::Edit { target, input, error });
                Vec::new()
            }
        },
    }
}

fn submit_edit(state: &mut AppState, target: EditTarget, text: String) -> Vec<Effect> {
    match target {
        EditTarget::Field { ids, field, was } => {
            let value = if text.is_empty() { None } else { Some(text) };
            if ids.len() > 1 {
                // A bulk edit is shown before it is made: what changes, on how many records.
                state.status = Some((false, format!("working out what {field} changes on {} records…", ids.len())));
                return vec![Effect::PreviewFix { ids, field, value }];
            }
            vec![Effect::Fix { ids, field, value, was }]
        }
        EditTarget::SkipReason { ids } => {
            let reason = text.trim().to_string();
            if reason.is_empty() {
                state.status = Some((true, "a skip needs a reason; nothing skipped".into()));
                return Vec::new();
            }
            let question = format!(
                "Skip {} record(s) with the reason \"{}\"? They will not be migrated; the audit log keeps why.",
                crate::text::thousands(ids.len() as u64),
                crate::text::shown(&reason)
            );
            state.modal = Some(Modal::Confirm { question, what: Confirm::Skip { ids, reason } });
            Vec::new()
        }
        EditTarget::MappingRow { .. } | EditTarget::Translation { .. } => Vec::new(),
        EditTarget::QueueSearch => {
            let text = text.trim().to_string();
            if text.is_empty() {
                state.queue.search = None;
                return Vec::new();
            }
            state.queue.search = Some(text.clone());
            let from = state.queue.selected().map_or(0, |i| i.id);
            vec![Effect::Find { query: state.queue.query.clone(), from, text, forward: true }]
        }
        EditTarget::QueueJump => {
            let text = text.trim().to_string();
            if text.is_empty() {
                return Vec::new();
            }
            vec![Effect::Jump { query: state.queue.query.clone(), text }]
        }
        EditTarget::AuditSearch => {
            let id = text.trim();
            state.audit.query.source_id = if id.is_empty() { None } else { Some(id.to_string()) };
            audit_reload(state)
        }
        EditTarget::AcceptReason { key } => {
            let reason = text.trim().to_string();
            if reason.is_empty() {
                state.status = Some((true, "accepting a discrepancy needs a reason; nothing accepted".into()));
            } else {
                state.status = Some((false, format!("{key} accepted for the sign-off")));
                state.reconcile.accepted.push((key, reason));
            }
            Vec::new()
        }
        EditTarget::SignOffNotes => {
            let notes = text.trim().to_string();
            if notes.is_empty() {
                state.status = Some((true, "a sign-off needs notes: what was checked, and by whom".into()));
                return Vec::new();
            }
            let Some(report) = &state.reconcile.report else { return Vec::new() };
            let hash = report.hash().unwrap_or_default();
            let accepted: Vec<String> = state
                .reconcile
                .accepted
                .iter()
                .map(|(key, reason)| {
                    let n = report.discrepancy(key).map_or(0, |d| d.records.total);
                    format!("{key} ({n} records): {}", crate::text::shown(reason))
                })
                .collect();
            let mut question = format!(
                "Sign off \"{}\" as {}?\nIt approves the report made {} (hash {}), recorded as {}.",
                crate::text::shown(&state.project),
                if accepted.is_empty() { "balanced" } else { "balanced with accepted exceptions" },
                report.generated_at,
                &hash[..hash.len().min(12)],
                crate::text::shown(&state.user)
            );
            if !accepted.is_empty() {
                question.push_str("\nAccepting:");
                for a in &accepted {
                    question.push_str(&format!("\n• {a}"));
                }
            }
            state.modal = Some(Modal::Confirm { question, what: Confirm::SignOff { notes } });
            Vec::new()
        }
    }
}

fn confirmed(state: &mut AppState, what: Confirm) -> Vec<Effect> {
    match what {
        Confirm::Quit => {
            if state.run_active() {
                // Leave after the engine has committed its current batch and stopped.
                state.quit_after_run = true;
                if let Some(live) = state.live.as_mut() {
                    live.control = Control::Cancel;
                }
                state.status = Some((false, "stopping the run after its current batch, then closing…".into()));
                return vec![Effect::Control(Control::Cancel)];
            }
            state.quit = true;
            Vec::new()
        }
        Confirm::Cancel => {
            if let Some(live) = state.live.as_mut() {
                live.control = Control::Cancel;
            }
            vec![Effect::Control(Control::Cancel)]
        }
        Confirm::Fix { ids, field, value } => vec![Effect::Fix { ids, field, value, was: None }],
        Confirm::Skip { ids, reason } => {
            state.queue.marked.clear();
            vec![Effect::Skip { ids, reason }]
        }
        Confirm::Decide { id, merge_into } => {
            if state.run_active() {
                state.status = Some((true, "wait for the active run to finish".into()));
                return Vec::new();
            }
            start(state, RunMode::Reprocess);
            let choice = merge_into.clone().unwrap_or_else(|| CREATE_NEW.to_string());
            state.queue.note = Some((
                false,
                match merge_into {
                    Some(dest) => format!("merging #{id} into destination record {}…", crate::text::shown(&dest)),
                    None => format!("creating #{id} as a new record…"),
                },
            ));
            vec![Effect::Decide { id, choice }]
        }
        Confirm::DiscardMapping => {
            discard_mapping(state);
            Vec::new()
        }
        Confirm::Rollback { run, keep } => {
            if state.run_active() {
                state.status = Some((true, "wait for the active run to finish".into()));
                return Vec::new();
            }
            state.status = Some((false, format!("rolling back run {run}…")));
            vec![Effect::Rollback { run, keep }]
        }
        Confirm::SignOff { notes } => match &state.reconcile.report {
            Some(report) => {
                vec![Effect::SignOff { report: report.clone(), notes, accepted: state.reconcile.accepted.clone() }]
            }
            None => Vec::new(),
        },
    }
}

fn open_edit(state: &mut AppState, target: EditTarget, initial: &str) {
    state.modal = Some(Modal::Edit { target, input: Box::new(text_input(initial)), error: None });
}

/// Applies a mapping-row or translation line to the edited text; on a problem the editor stays
/// open with the operator's line and the reason.
fn submit_mapping_edit(
    state: &mut AppState,
    target: EditTarget,
    input: Box<TextArea<'static>>,
    line: String,
) -> Vec<Effect> {
    let m = &state.mapping;
    let (edited, what) = match &target {
        EditTarget::MappingRow { object, original } => (
            crate::config::edit::set_field(&m.text, object, original.as_deref(), &line),
            format!("objects.{object}.fields changed"),
        ),
        EditTarget::Translation { table } => {
            (crate::config::edit::add_translation(&m.text, table, &line), format!("translations.{table} changed"))
        }
        _ => return Vec::new(),
    };
    match edited.and_then(|text| apply_text(state, text, &what)) {
        Ok(effects) => effects,
        Err(error) => {
            state.modal = Some(Modal::Edit { target, input, error: Some(error) });
            Vec::new()
        }
    }
}

/// Takes an edited project text if it still checks (the checks that need no connection); the
/// sample then checks it against both systems.
fn apply_text(state: &mut AppState, text: String, what: &str) -> Result<Vec<Effect>, String> {
    let m = &mut state.mapping;
    let config = crate::config::parse(&m.path, &text).map_err(|e| {
        let n = e.problems.len();
        let first: Vec<String> = e
            .problems
            .iter()
            .take(2)
            .map(|p| format!("{}{}: {}", p.key, p.line.map(|l| format!(" (line {l})")).unwrap_or_default(), p.message))
            .collect();
        format!("{n} problem{}: {}", if n == 1 { "" } else { "s" }, first.join("; "))
    })?;
    let name = m.current().map(|o| o.name.clone());
    m.objects = mapping_objects(&config);
    m.object = name.and_then(|n| m.objects.iter().position(|o| o.name == n)).unwrap_or(0);
    m.text = text;
    m.version += 1;
    m.cursor = m.cursor.min(m.lines().len().saturating_sub(1));
    state.status = Some((false, format!("{what} (unsaved: w saves, D discards)")));
    Ok(sample_effect(state))
}

fn sample_effect(state: &mut AppState) -> Vec<Effect> {
    let m = &mut state.mapping;
    let Some(object) = m.current().map(|o| o.name.clone()) else { return Vec::new() };
    if m.sample().is_some() {
        return Vec::new();
    }
    m.sampling = true;
    vec![Effect::SampleMapping { text: m.text.clone(), object, version: m.version }]
}

fn discard_mapping(state: &mut AppState) {
    let m = &mut state.mapping;
    let saved = m.saved.clone();
    match crate::config::parse(&m.path, &saved) {
        Ok(config) => {
            m.objects = mapping_objects(&config);
            m.text = saved;
            m.version += 1;
            m.cursor = 0;
            m.object = m.object.min(m.objects.len().saturating_sub(1));
            state.status = Some((false, "unsaved mapping changes discarded".into()));
        }
        Err(e) => state.status = Some((true, format!("{e}"))),
    }
}

fn mapping_action(state: &mut AppState, action: Action) -> Vec<Effect> {
    use crate::config::edit;
    let m = &state.mapping;
    let Some(obj) = m.current() else { return Vec::new() };
    let object = obj.file_key.clone();
    let lines = m.lines();
    let line = lines.get(m.cursor).cloned();
    match action {
        Action::EditRow => match line {
            Some(MappingLine::Mapped(row)) => {
                let dest = row.dest.clone();
                let current = edit::field_line(&m.text, &object, &dest).unwrap_or_default();
                open_edit(state, EditTarget::MappingRow { object, original: Some(dest) }, &current);
            }
            Some(MappingLine::Unmapped(f)) => {
                let proposal = edit::from_line(f, f);
                open_edit(state, EditTarget::MappingRow { object, original: None }, &proposal);
            }
            Some(MappingLine::Excluded(f)) => {
                let f = f.to_string();
                state.status = Some((true, format!("{f} is excluded: x takes it off the list, then e maps it")));
            }
            Some(MappingLine::OtherEntry(f)) => {
                let f = f.to_string();
                state.status = Some((true, format!("{f} is read by another entry of this object's repeat")));
            }
            None => {}
        },
        Action::AddField => {
            open_edit(state, EditTarget::MappingRow { object, original: None }, r#"field = { from = "" }"#);
        }
        Action::AddTranslation => {
            let Some(MappingLine::Mapped(row)) = line else {
                state.status = Some((true, "select a mapped row that translates values".into()));
                return Vec::new();
            };
            let Some(table) = row.translate.clone() else {
                let dest = row.dest.clone();
                state.status =
                    Some((true, format!(r#"{dest} has no translation table: e edits the row (translate = "TABLE")"#)));
                return Vec::new();
            };
            // Offer the first value the sample could not translate.
            let missing = m.sample().and_then(|s| s.result.as_ref().ok()).and_then(|sample| {
                sample.records.iter().flat_map(|r| &r.issues).find_map(|i| {
                    (i.field == row.dest && i.rule == crate::model::Rule::NoTranslation)
                        .then(|| i.value.clone())
                        .flatten()
                })
            });
            let key = toml_edit::Key::new(missing.unwrap_or_default()).display_repr().to_string();
            open_edit(state, EditTarget::Translation { table }, &format!(r#"{key} = """#));
        }
        Action::ExcludeField => {
            let result = match line {
                Some(MappingLine::Mapped(row)) => {
                    let (dest, reads) = (row.dest.clone(), row.reads.clone());
                    let excluded = obj.excluded.clone();
                    edit::remove_field(&m.text, &object, &dest).and_then(|mut text| {
                        for f in reads.iter().filter(|f| !excluded.contains(f)) {
                            text = edit::toggle_exclude(&text, &object, f)?.0;
                        }
                        Ok((
                            text,
                            format!(
                                "{dest} unmapped; {} excluded",
                                if reads.is_empty() { "nothing".into() } else { reads.join(", ") }
                            ),
                        ))
                    })
                }
                Some(MappingLine::Unmapped(f) | MappingLine::Excluded(f)) => {
                    let f = f.to_string();
                    edit::toggle_exclude(&m.text, &object, &f).map(|(text, now)| {
                        (text, if now { format!("{f} excluded") } else { format!("{f} no longer excluded") })
                    })
                }
                Some(MappingLine::OtherEntry(f)) => {
                    Err(format!("{f} is read by another entry of this object's repeat"))
                }
                None => return Vec::new(),
            };
            match result.and_then(|(text, what)| apply_text(state, text, &what)) {
                Ok(effects) => return effects,
                Err(e) => state.status = Some((true, e)),
            }
        }
        Action::SaveMapping => {
            if !m.dirty() {
                state.status = Some((false, "nothing to save: the mapping is as the file has it".into()));
            } else if !m.saving {
                let effect = Effect::SaveMapping { text: m.text.clone(), expected: m.saved.clone() };
                state.mapping.saving = true;
                state.status = Some((false, "checking the mapping against both systems, then saving…".into()));
                return vec![effect];
            }
        }
        Action::DiscardMapping => {
            if m.dirty() {
                state.modal = Some(Modal::Confirm {
                    question: "Discard the mapping changes not saved to the project file?".into(),
                    what: Confirm::DiscardMapping,
                });
            } else {
                state.status = Some((false, "no unsaved changes".into()));
            }
        }
        _ => {}
    }
    Vec::new()
}

fn text_input(initial: &str) -> TextArea<'static> {
    let mut t = TextArea::new(vec![initial.to_string()]);
    t.move_cursor(ratatui_textarea::CursorMove::End);
    t
}

fn on_action(state: &mut AppState, action: Action) -> Vec<Effect> {
    use Action::*;
    if state.pane == Pane::Queue
        && state.queue.in_groups()
        && let Some(effects) = group_action(state, action)
    {
        return effects;
    }
    match action {
        Quit => {
            if state.run_active() {
                state.modal = Some(Modal::Confirm {
                    question: "A run is active. Quit anyway? The run is cancelled after its current batch is \
                               committed; what was written stays written and audited."
                        .into(),
                    what: Confirm::Quit,
                });
            } else {
                state.quit = true;
            }
            Vec::new()
        }
        Help => {
            state.modal = Some(Modal::Help { scroll: 0 });
            Vec::new()
        }
        NextPane => switch(state, Pane::ALL[(state.pane.index() + 1) % Pane::ALL.len()]),
        PrevPane => switch(state, Pane::ALL[(state.pane.index() + Pane::ALL.len() - 1) % Pane::ALL.len()]),
        PaneOverview => switch(state, Pane::Overview),
        PaneMapping => switch(state, Pane::Mapping),
        PaneQueue => switch(state, Pane::Queue),
        PaneAudit => switch(state, Pane::Audit),
        PaneReconcile => switch(state, Pane::Reconcile),
        Up => move_by(state, -1),
        Down => move_by(state, 1),
        PageUp => move_by(state, -(state.page_rows.max(1) as i64)),
        PageDown => move_by(state, state.page_rows.max(1) as i64),
        Top => move_by(state, i64::MIN / 2),
        Bottom => move_by(state, i64::MAX / 2),
        Back => {
            let q = &mut state.queue;
            if state.pane == Pane::Queue && q.focus_detail && q.total > 0 {
                q.focus_detail = false;
            } else if state.pane == Pane::Queue && !q.groups.is_empty() {
                // Out of a group (or a filter left empty): back to the groups.
                q.focus_detail = false;
                q.mode = QueueMode::Groups;
            }
            Vec::new()
        }
        Sort => {
            let q = &mut state.queue;
            q.query.order = q.query.order.next();
            q.mode = QueueMode::Records;
            state.status = Some((false, format!("sorted {}", state.queue.query.order.label())));
            queue_reload(state)
        }
        Groups => {
            let q = &mut state.queue;
            q.mode = if q.mode == QueueMode::Groups { QueueMode::Records } else { QueueMode::Groups };
            if q.groups.is_empty() && q.mode == QueueMode::Groups {
                state.status = Some((false, "no groups: nothing is held".into()));
            }
            Vec::new()
        }
        PrevFilterObject => {
            let mut objects: Vec<String> = state.queue.summary.iter().map(|(o, _, _)| o.clone()).collect();
            objects.dedup();
            objects.reverse();
            state.queue.query.object = cycle(&objects, state.queue.query.object.as_deref());
            state.queue.query.reason = None;
            state.queue.query.issue = None;
            queue_reload(state)
        }
        PrevFilterReason => {
            let mut reasons = state.queue.reasons();
            reasons.reverse();
            state.queue.query.reason = cycle(&reasons, state.queue.query.reason.as_deref());
            state.queue.query.issue = None;
            queue_reload(state)
        }
        FindNext | FindPrev => {
            let Some(text) = state.queue.search.clone() else {
                state.status = Some((true, "nothing to find yet: / searches".into()));
                return Vec::new();
            };
            let from = state.queue.selected().map_or(0, |i| i.id);
            vec![Effect::Find { query: state.queue.query.clone(), from, text, forward: action == FindNext }]
        }
        Jump => {
            open_edit(state, EditTarget::QueueJump, "");
            Vec::new()
        }
        Rollback => {
            if state.run_active() {
                state.status = Some((true, "wait for the active run to finish".into()));
                return Vec::new();
            }
            state.status = Some((false, "working out what a rollback would do…".into()));
            vec![Effect::PreviewRollback]
        }
        Preview | StartRun | ResumeRun | DeltaRun => {
            if state.run_active() {
                state.status = Some((true, "a run is already active".into()));
                return Vec::new();
            }
            let mode = match action {
                Preview => RunMode::Preview,
                ResumeRun => RunMode::Resume,
                DeltaRun => RunMode::Delta,
                _ => RunMode::Full,
            };
            start(state, mode);
            vec![Effect::StartRun { mode }]
        }
        Pause | Resume | Cancel if state.live.as_ref().is_some_and(|l| l.active() && l.remote.is_some()) => {
            let who = state.live.as_ref().and_then(|l| l.remote.clone()).unwrap_or_default();
            state.status = Some((true, format!("{who}: pause, resume or cancel it where it runs")));
            Vec::new()
        }
        Pause | Resume => {
            let Some(live) = state.live.as_mut().filter(|l| l.active() && l.mode != RunMode::Reprocess) else {
                state.status = Some((true, "no run to pause or resume".into()));
                return Vec::new();
            };
            live.control = if action == Pause { Control::Pause } else { Control::Go };
            vec![Effect::Control(live.control)]
        }
        Cancel if state.live.as_ref().is_some_and(|l| l.active() && l.waiting.is_some()) => {
            if let Some(live) = state.live.as_mut() {
                live.control = Control::Cancel;
            }
            state.queue.note = Some((false, "stopping the wait…".into()));
            vec![Effect::Control(Control::Cancel)]
        }
        Cancel => {
            if !state.live.as_ref().is_some_and(|l| l.active() && l.mode != RunMode::Reprocess) {
                state.status = Some((true, "no run to cancel".into()));
                return Vec::new();
            }
            state.modal = Some(Modal::Confirm {
                question: "Cancel the run after its current batch? What was written stays written and audited.".into(),
                what: Confirm::Cancel,
            });
            Vec::new()
        }
        PrevObject | NextObject => {
            let n = state.mapping.objects.len().max(1);
            let m = &mut state.mapping;
            m.object = if action == NextObject { (m.object + 1) % n } else { (m.object + n - 1) % n };
            m.cursor = 0;
            sample_effect(state)
        }
        FilterObject => match state.pane {
            Pane::Queue => {
                let objects: Vec<String> = state.queue.summary.iter().map(|(o, _, _)| o.clone()).collect();
                let mut objects = objects;
                objects.dedup();
                state.queue.query.object = cycle(&objects, state.queue.query.object.as_deref());
                state.queue.query.reason = None;
                state.queue.query.issue = None;
                queue_reload(state)
            }
            Pane::Audit => {
                state.audit.query.object = cycle(&state.objects, state.audit.query.object.as_deref());
                audit_reload(state)
            }
            _ => Vec::new(),
        },
        FilterReason => {
            let reasons = state.queue.reasons();
            state.queue.query.reason = cycle(&reasons, state.queue.query.reason.as_deref());
            state.queue.query.issue = None;
            queue_reload(state)
        }
        FilterOutcome => {
            let outcomes: Vec<String> = AUDIT_OUTCOMES.iter().map(|s| s.to_string()).collect();
            state.audit.query.outcome = cycle(&outcomes, state.audit.query.outcome.as_deref());
            audit_reload(state)
        }
        FilterWarning => {
            let warnings: Vec<String> = AUDIT_WARNINGS.iter().map(|s| s.to_string()).collect();
            state.audit.query.warning = cycle(&warnings, state.audit.query.warning.as_deref());
            audit_reload(state)
        }
        Search if state.pane == Pane::Queue => {
            open_edit(state, EditTarget::QueueSearch, "");
            Vec::new()
        }
        Search => {
            let current = state.audit.query.source_id.clone().unwrap_or_default();
            open_edit(state, EditTarget::AuditSearch, &current);
            Vec::new()
        }
        FocusDetail => {
            if state.queue.selected().is_some() {
                state.queue.focus_detail = !state.queue.focus_detail;
            }
            Vec::new()
        }
        EditField => {
            let q = &state.queue;
            let Some(item) = q.selected() else {
                state.status = Some((true, "no record selected".into()));
                return Vec::new();
            };
            let fields = q.fields();
            let Some(field) = fields.get(q.field).cloned() else {
                state.status = Some((true, "select a field first (enter, then ↑/↓)".into()));
                return Vec::new();
            };
            let ids = vec![item.id];
            let current =
                item.corrections.get(&field).cloned().flatten().or_else(|| item.mapped.get(&field).cloned().flatten());
            if let Some(refused) = taken(state, &ids) {
                return refused;
            }
            // The editor opens once the store has given this console the record (`Msg::Claimed`);
            // what it holds now is what the operator decides on.
            let was = Some(current.clone());
            vec![Effect::Claim { ids, field, current: current.unwrap_or_default(), was }]
        }
        EditMarked => bulk_field_choice(state),
        ToggleMark => {
            if let Some(id) = state.queue.selected().map(|i| i.id)
                && !state.queue.marked.remove(&id)
            {
                state.queue.marked.insert(id);
            }
            move_by(state, 1)
        }
        MarkAll => vec![Effect::LoadQueueIds { query: state.queue.query.clone() }],
        ClearMarks => {
            state.queue.marked.clear();
            Vec::new()
        }
        Undo => {
            let Some(ids) = free_targets(state) else { return Vec::new() };
            vec![Effect::Undo { ids }]
        }
        Reprocess => {
            if state.run_active() {
                state.status = Some((true, "wait for the active run to finish".into()));
                return Vec::new();
            }
            let Some(ids) = free_targets(state) else { return Vec::new() };
            state.queue.reprocessing = ids.clone();
            start(state, RunMode::Reprocess);
            state.queue.note = Some((false, format!("reprocessing {} record(s)…", ids.len())));
            vec![Effect::Reprocess { ids }]
        }
        EditRow | AddField | AddTranslation | ExcludeField | SaveMapping | DiscardMapping => {
            mapping_action(state, action)
        }
        PrevCandidate | NextCandidate => {
            let n = state.queue.selected().map_or(0, |i| i.candidate_ids().len());
            if n == 0 {
                state.status = Some((true, "this record has no match to decide".into()));
                return Vec::new();
            }
            let q = &mut state.queue;
            q.candidate = if action == NextCandidate { (q.candidate + 1) % n } else { (q.candidate + n - 1) % n };
            Vec::new()
        }
        MergeInto | CreateNew => {
            let Some(item) = state.queue.selected() else { return Vec::new() };
            let candidates = item.candidate_ids();
            if candidates.is_empty() {
                state.status =
                    Some((true, "this record has no match to decide (only ambiguous or undecided matches)".into()));
                return Vec::new();
            }
            let id = item.id;
            let object = item.object.clone();
            let source_id = crate::text::shown(&item.source_id);
            if let Some(refused) = taken(state, &[id]) {
                return refused;
            }
            let (question, merge_into) = if action == MergeInto {
                let dest = candidates[state.queue.candidate.min(candidates.len() - 1)].clone();
                if let Some(row) = dest.strip_prefix(crate::model::NOT_A_RECORD) {
                    state.status = Some((
                        true,
                        format!(
                            "beside it is the source {}, not a destination record: N creates this one anew, s skips it",
                            crate::text::shown(row)
                        ),
                    ));
                    return Vec::new();
                }
                (
                    format!(
                        "Merge {object} {source_id} (#{id}) into destination record {}? It is written now, by the \
                         object's merge rule, and audited as the operator's choice.",
                        crate::text::shown(&dest)
                    ),
                    Some(dest),
                )
            } else {
                (
                    format!(
                        "Create {object} {source_id} (#{id}) as a new record, beside the {} that match? It is written now.",
                        candidates.len()
                    ),
                    None,
                )
            };
            state.modal = Some(Modal::Confirm { question, what: Confirm::Decide { id, merge_into } });
            Vec::new()
        }
        Reconcile => start_reconcile(state),
        Expand | Accept | SignOff | WriteReport => reconcile_action(state, action),
        Skip => {
            let Some(ids) = free_targets(state) else { return Vec::new() };
            open_edit(state, EditTarget::SkipReason { ids }, "");
            Vec::new()
        }
    }
}

/// `E`: the field of a bulk edit is chosen from a list first — never the row the cursor happens
/// to be on — and the value typed into an empty box.
fn bulk_field_choice(state: &mut AppState) -> Vec<Effect> {
    let q = &state.queue;
    if q.marked.is_empty() {
        state.status = Some((true, "no records marked (space marks, a marks the whole filter)".into()));
        return Vec::new();
    }
    let ids: Vec<i64> = q.marked.iter().copied().collect();
    let mut objects: Vec<&str> =
        q.items.iter().filter(|i| q.marked.contains(&i.id)).map(|i| i.object.as_str()).collect();
    objects.sort_unstable();
    objects.dedup();
    if objects.len() > 1 {
        state.status = Some((
            true,
            format!(
                "the marked records are of several objects ({}): mark one object's (o filters)",
                objects.join(", ")
            ),
        ));
        return Vec::new();
    }
    let object = q.query.object.clone().or_else(|| objects.first().map(|o| o.to_string()));
    let selected = q.selected().filter(|i| object.as_deref().is_none_or(|o| o == i.object));
    let mut options: Vec<String> = state
        .mapping
        .objects
        .iter()
        .find(|o| object.as_deref() == Some(o.name.as_str()))
        .map(|o| o.rows.iter().map(|r| r.dest.clone()).collect())
        .unwrap_or_default();
    if selected.is_some() {
        for f in q.fields() {
            if !options.contains(&f) {
                options.push(f);
            }
        }
    }
    if options.is_empty() {
        state.status = Some((true, "no fields known for the marked records: select one of them first".into()));
        return Vec::new();
    }
    let flagged = selected.and_then(|i| i.issues.iter().find(|x| options.contains(&x.field)).map(|x| x.field.clone()));
    let cursor = flagged.and_then(|f| options.iter().position(|o| *o == f)).unwrap_or(0);
    if let Some(refused) = taken(state, &ids) {
        return refused;
    }
    let title = format!(
        " Which field to set on {} marked {}? ",
        crate::text::thousands(ids.len() as u64),
        object.as_deref().unwrap_or("records")
    );
    state.modal = Some(Modal::Choose { title, options, cursor, purpose: Choice::BulkField { ids } });
    Vec::new()
}

fn chosen(purpose: Choice, option: Option<String>) -> Vec<Effect> {
    let Some(field) = option else { return Vec::new() };
    match purpose {
        // Claimed first (another console sees them taken); the value box opens empty.
        Choice::BulkField { ids } => vec![Effect::Claim { ids, field, current: String::new(), was: None }],
    }
}

/// The marked records (or the selected one) when no other console is editing any of them;
/// `None` (with the status naming who holds one) otherwise, or when there is none.
fn free_targets(state: &mut AppState) -> Option<Vec<i64>> {
    let ids = state.queue.targets();
    if ids.is_empty() || taken(state, &ids).is_some() {
        return None;
    }
    Some(ids)
}

/// Refuses to act on records another console is editing; names who.
fn taken(state: &mut AppState, ids: &[i64]) -> Option<Vec<Effect>> {
    let (id, by) = state.queue.taken(ids, &state.me)?;
    state.status =
        Some((true, format!("record #{id} is being edited by {} — leave it to them", crate::text::shown(&by))));
    Some(Vec::new())
}

fn start(state: &mut AppState, mode: RunMode) {
    state.live = Some(Live {
        mode,
        progress: Progress::new("starting", &state.objects),
        started_at: 0.0,
        samples: Vec::new(),
        rates: Vec::new(),
        ended: None,
        control: Control::Go,
        remote: None,
        waiting: None,
    });
}

/// The next value of a filter: all → first → … → last → all.
fn cycle(values: &[String], current: Option<&str>) -> Option<String> {
    match current {
        None => values.first().cloned(),
        Some(c) => values.iter().position(|v| v == c).and_then(|i| values.get(i + 1)).cloned(),
    }
}

fn start_reconcile(state: &mut AppState) -> Vec<Effect> {
    let r = &state.reconcile;
    if r.working {
        state.status = Some((false, "already reconciling…".into()));
        return Vec::new();
    }
    if state.run_active() {
        state.status = Some((true, "wait for the active run to finish, then reconcile".into()));
        return Vec::new();
    }
    state.reconcile.working = true;
    state.status = Some((false, "reconciling: reading the source and the destination…".into()));
    vec![Effect::Reconcile]
}

fn reconcile_action(state: &mut AppState, action: Action) -> Vec<Effect> {
    let r = &mut state.reconcile;
    let line = r.lines().get(r.cursor).cloned();
    match action {
        Action::Expand => match line {
            Some(ReconLine::Section { id, .. }) => toggle(&mut r.open, id),
            Some(ReconLine::Discrepancy { key, .. }) => toggle(&mut r.open, key),
            Some(ReconLine::Record { object, source_id, queue_reason: Some(reason), .. }) => {
                state.queue.query =
                    QueueQuery { object: Some(object), reason: Some(reason), issue: None, ..Default::default() };
                state.queue.mode = QueueMode::Records;
                state.status = Some((false, format!("{} is among these held records", crate::text::shown(&source_id))));
                state.pane = Pane::Queue;
                queue_reload(state)
            }
            Some(ReconLine::Record { object, source_id, .. }) => {
                state.audit.query =
                    AuditQuery { object: Some(object), outcome: None, source_id: Some(source_id), warning: None };
                state.pane = Pane::Audit;
                audit_reload(state)
            }
            _ => Vec::new(),
        },
        Action::Accept => {
            let Some(ReconLine::Discrepancy { key, .. }) = line else {
                state.status = Some((true, "select a discrepancy to accept (open the list with enter)".into()));
                return Vec::new();
            };
            if let Some(pos) = r.accepted.iter().position(|(k, _)| *k == key) {
                r.accepted.remove(pos);
                state.status = Some((false, format!("{key} no longer accepted")));
            } else {
                open_edit(state, EditTarget::AcceptReason { key }, "");
            }
            Vec::new()
        }
        Action::SignOff => {
            let Some(report) = &r.report else {
                state.status = Some((true, "reconcile first (r)".into()));
                return Vec::new();
            };
            if r.stale() {
                state.status = Some((true, "a run came after this report: r reconciles again".into()));
                return Vec::new();
            }
            let open = report.discrepancies.iter().filter(|d| r.reason_for(&d.key).is_none()).count();
            if open > 0 {
                state.status = Some((
                    true,
                    format!(
                        "cannot sign off: {} {} neither resolved nor accepted (a accepts the selected one with a \
                         reason)",
                        crate::text::count(open as u64, "discrepancy"),
                        if open == 1 { "is" } else { "are" }
                    ),
                ));
                return Vec::new();
            }
            if state.run_active() {
                state.status = Some((true, "wait for the active run to finish".into()));
                return Vec::new();
            }
            state.status = None;
            open_edit(state, EditTarget::SignOffNotes, "");
            Vec::new()
        }
        Action::WriteReport => match &r.report {
            Some(report) => vec![Effect::WriteReport { report: report.clone() }],
            None => {
                state.status = Some((true, "reconcile first (r)".into()));
                Vec::new()
            }
        },
        _ => Vec::new(),
    }
}

fn toggle(set: &mut std::collections::BTreeSet<String>, id: String) -> Vec<Effect> {
    if !set.remove(&id) {
        set.insert(id);
    }
    Vec::new()
}

fn switch(state: &mut AppState, pane: Pane) -> Vec<Effect> {
    state.pane = pane;
    match pane {
        Pane::Reconcile if state.reconcile.report.is_none() && !state.reconcile.working && !state.run_active() => {
            let mut effects = vec![Effect::LoadBalance];
            effects.extend(start_reconcile(state));
            effects
        }
        Pane::Reconcile => vec![Effect::LoadBalance],
        Pane::Mapping => sample_effect(state),
        _ => Vec::new(),
    }
}

/// Puts the queue's cursor on `position` of the filter, loading its page when it is not loaded.
fn go_to(state: &mut AppState, position: usize) -> Vec<Effect> {
    let q = &mut state.queue;
    q.cursor = position;
    q.field = 0;
    q.candidate = 0;
    q.focus_detail = false;
    if position < q.offset || position >= q.offset + q.items.len() || q.items.is_empty() {
        q.loading = true;
        return vec![Effect::LoadQueue { query: q.query.clone(), offset: page_of(position, QUEUE_PAGE) }];
    }
    Vec::new()
}

/// Keys of the queue's group list: move, open a group (its records), mark a group.
fn group_action(state: &mut AppState, action: Action) -> Option<Vec<Effect>> {
    use Action::*;
    let q = &mut state.queue;
    let n = q.groups.len();
    let step = |pos: usize, d: i64| clamp_move(pos, d, n);
    match action {
        Up => q.group_cursor = step(q.group_cursor, -1),
        Down => q.group_cursor = step(q.group_cursor, 1),
        PageUp => q.group_cursor = step(q.group_cursor, -(state.page_rows.max(1) as i64)),
        PageDown => q.group_cursor = step(q.group_cursor, state.page_rows.max(1) as i64),
        Top => q.group_cursor = 0,
        Bottom => q.group_cursor = n.saturating_sub(1),
        FocusDetail | MarkAll => {
            let group = q.selected_group()?.clone();
            q.query = QueueQuery::of_group(&group);
            q.mode = QueueMode::Records;
            let mut effects = queue_reload(state);
            if action == MarkAll {
                effects.push(Effect::LoadQueueIds { query: state.queue.query.clone() });
            }
            return Some(effects);
        }
        EditField | EditMarked | Skip | Reprocess | Undo | ToggleMark => {
            state.status = Some((
                true,
                "on a group: enter shows its records, a marks them all; then E sets a field, s skips, r reprocesses"
                    .into(),
            ));
        }
        // The groups stand for every held record: so does a search or a jump from them.
        Search | FindNext | FindPrev | Jump => {
            q.mode = QueueMode::Records;
            if q.query.object.is_some() || q.query.reason.is_some() || q.query.issue.is_some() {
                q.query = QueueQuery { order: q.query.order, ..Default::default() };
                q.items.clear();
                let mut effects = queue_reload(state);
                effects.extend(on_action(state, action));
                return Some(effects);
            }
            return None;
        }
        // Filtering is about records: the pane shows them.
        FilterObject | FilterReason | PrevFilterObject | PrevFilterReason | Sort => {
            q.mode = QueueMode::Records;
            return None;
        }
        _ => return None,
    }
    Some(Vec::new())
}

fn queue_reload(state: &mut AppState) -> Vec<Effect> {
    let q = &mut state.queue;
    q.cursor = 0;
    q.field = 0;
    q.loading = true;
    vec![Effect::LoadQueue { query: q.query.clone(), offset: 0 }]
}

fn audit_reload(state: &mut AppState) -> Vec<Effect> {
    let a = &mut state.audit;
    a.pages = vec![None];
    a.cursor = 0;
    a.loading = true;
    vec![Effect::LoadAudit { query: a.query.clone(), before: None }]
}

fn clamp_move(pos: usize, delta: i64, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    (pos as i64).saturating_add(delta).clamp(0, len as i64 - 1) as usize
}

fn move_by(state: &mut AppState, delta: i64) -> Vec<Effect> {
    match state.pane {
        Pane::Queue if state.queue.focus_detail => {
            let n = state.queue.fields().len();
            state.queue.field = clamp_move(state.queue.field, delta, n);
            Vec::new()
        }
        Pane::Queue => {
            let q = &mut state.queue;
            let before = q.cursor;
            q.cursor = clamp_move(q.cursor, delta, q.total);
            if q.cursor != before {
                q.field = 0;
                q.candidate = 0;
            }
            if q.total > 0 && (q.cursor < q.offset || q.cursor >= q.offset + q.items.len()) && !q.loading {
                q.loading = true;
                return vec![Effect::LoadQueue { query: q.query.clone(), offset: page_of(q.cursor, QUEUE_PAGE) }];
            }
            Vec::new()
        }
        Pane::Audit => {
            let a = &mut state.audit;
            let target = a.cursor as i64 + delta.clamp(-(AUDIT_PAGE as i64) * 1000, AUDIT_PAGE as i64 * 1000);
            if target >= a.rows.len() as i64 && a.more && !a.loading && delta > 0 && delta < i64::MAX / 4 {
                // Older page: keyset paging by id, instant at any depth.
                let before = a.rows.last().map(|r| r.id);
                a.pages.push(before);
                a.cursor = 0;
                a.loading = true;
                return vec![Effect::LoadAudit { query: a.query.clone(), before }];
            }
            if target < 0 && a.pages.len() > 1 && !a.loading && delta > i64::MIN / 4 {
                a.pages.pop();
                a.cursor = AUDIT_PAGE - 1;
                a.loading = true;
                return vec![Effect::LoadAudit { query: a.query.clone(), before: a.pages.last().copied().flatten() }];
            }
            a.cursor = clamp_move(a.cursor, delta, a.rows.len());
            Vec::new()
        }
        Pane::Mapping => {
            let n = state.mapping.lines().len();
            state.mapping.cursor = clamp_move(state.mapping.cursor, delta, n);
            Vec::new()
        }
        Pane::Reconcile => {
            let n = state.reconcile.lines().len();
            state.reconcile.cursor = clamp_move(state.reconcile.cursor, delta, n);
            Vec::new()
        }
        Pane::Overview => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Issue, Rule};
    use crate::store::QueueStatus;
    use crossterm::event::{KeyCode, KeyModifiers};

    fn state() -> (tempfile::TempDir, AppState) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = crate::demo::setup(&dir.path().join("demo")).expect("demo");
        let config = crate::config::load(&file).expect("config");
        let s = AppState::new(&config, super::super::keymap::Keymap::defaults(), false);
        (dir, s)
    }

    fn key(s: &mut AppState, code: KeyCode) -> Vec<Effect> {
        update(s, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
    }
    fn ch(s: &mut AppState, c: char) -> Vec<Effect> {
        key(s, KeyCode::Char(c))
    }

    pub fn deal(id: i64) -> QueueItem {
        QueueItem {
            id,
            object: "deals".into(),
            source_id: format!("{}", 20000 + id),
            occurrence: 1,
            origin: "deals.csv:7".into(),
            run_id: 1,
            status: QueueStatus::Open,
            reason: "no_translation".into(),
            source: [("stage".to_string(), Some("Partner Referral".to_string()))].into_iter().collect(),
            mapped: [("dealname".to_string(), Some("Acme".to_string())), ("dealstage".to_string(), None)]
                .into_iter()
                .collect(),
            issues: vec![Issue {
                field: "dealstage".into(),
                rule: Rule::NoTranslation,
                value: Some("Partner Referral".into()),
                message: "no entry for 'Partner Referral'".into(),
                suggestion: None,
            }],
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

    fn loaded(s: &mut AppState, ids: std::ops::RangeInclusive<i64>) {
        let items: Vec<QueueItem> = ids.map(deal).collect();
        let total = items.len();
        let query = s.queue.query.clone();
        let summary = vec![("deals".into(), "no_translation".into(), total as u64)];
        update(s, Msg::QueueLoaded { query, summary, items, offset: 0, total });
    }

    #[test]
    fn panes_switch_by_number_and_tab_and_help_takes_one_key() {
        let (_d, mut s) = state();
        ch(&mut s, '3');
        assert_eq!(s.pane, Pane::Queue);
        key(&mut s, KeyCode::Tab);
        assert_eq!(s.pane, Pane::Audit);
        assert_eq!(
            key(&mut s, KeyCode::Tab),
            vec![Effect::LoadBalance, Effect::Reconcile],
            "the reconciliation pane refreshes, and reconciles the first time"
        );
        assert!(s.reconcile.working);
        ch(&mut s, '1');
        assert_eq!(ch(&mut s, '5'), vec![Effect::LoadBalance], "not twice while one is being made");
        ch(&mut s, '?');
        assert!(matches!(s.modal, Some(Modal::Help { scroll: 0 })));
        ch(&mut s, '1');
        assert!(s.modal.is_none());
        assert_eq!(s.pane, Pane::Reconcile, "the key that closes help is not also a command");
        ch(&mut s, 'q');
        assert!(s.quit, "nothing running: q quits at once");
    }

    #[test]
    fn edit_a_field_in_place_then_reprocess() {
        let (_d, mut s) = state();
        ch(&mut s, '3');
        loaded(&mut s, 35..=40);
        ch(&mut s, 'j');
        assert_eq!(s.queue.selected().map(|i| i.id), Some(36));
        key(&mut s, KeyCode::Enter);
        ch(&mut s, 'j');
        // The record is claimed first; the editor opens when the store grants it.
        let fx = ch(&mut s, 'e');
        assert_eq!(
            fx,
            vec![Effect::Claim { ids: vec![36], field: "dealstage".into(), current: String::new(), was: Some(None) }]
        );
        assert!(s.modal.is_none());
        update(
            &mut s,
            Msg::Claimed { ids: vec![36], field: "dealstage".into(), current: String::new(), was: Some(None) },
        );
        assert!(matches!(&s.modal, Some(Modal::Edit { target: EditTarget::Field { field, ids, .. }, .. })
            if field == "dealstage" && ids == &vec![36]));
        for c in "closedwon".chars() {
            ch(&mut s, c);
        }
        let fx = key(&mut s, KeyCode::Enter);
        assert_eq!(
            fx,
            vec![Effect::Fix {
                ids: vec![36],
                field: "dealstage".into(),
                value: Some("closedwon".into()),
                was: Some(None)
            }],
            "the correction carries what the field held when the operator looked"
        );
        assert!(s.modal.is_none());
        let fx = ch(&mut s, 'r');
        assert_eq!(fx, vec![Effect::Reprocess { ids: vec![36] }]);
        assert!(s.run_active());
        assert_eq!(ch(&mut s, 'r'), Vec::<Effect>::new(), "one engine job at a time");
    }

    #[test]
    fn bulk_mark_set_and_skip_with_a_reason_after_confirmation() {
        let (_d, mut s) = state();
        ch(&mut s, '3');
        loaded(&mut s, 35..=37);
        assert_eq!(ch(&mut s, 'a'), vec![Effect::LoadQueueIds { query: QueueQuery::default() }]);
        update(&mut s, Msg::QueueIds(vec![35, 36, 37]));
        // The cursor on another row changes nothing: E asks for the field, from a list.
        key(&mut s, KeyCode::Enter);
        ch(&mut s, 'j');
        assert!(ch(&mut s, 'E').is_empty(), "nothing claimed before a field is chosen");
        match &s.modal {
            Some(Modal::Choose { options, cursor, .. }) => {
                assert!(options.contains(&"dealname".to_string()), "{options:?}");
                assert_eq!(options[*cursor], "dealstage", "starts on the field the selected record is held for");
            }
            _ => panic!("expected the field list"),
        }
        let fx = key(&mut s, KeyCode::Enter);
        assert_eq!(
            fx,
            vec![Effect::Claim { ids: vec![35, 36, 37], field: "dealstage".into(), current: String::new(), was: None }],
            "nothing pre-filled from one record into a bulk edit"
        );
        update(
            &mut s,
            Msg::Claimed { ids: vec![35, 36, 37], field: "dealstage".into(), current: String::new(), was: None },
        );
        assert!(matches!(&s.modal, Some(Modal::Edit { target: EditTarget::Field { ids, .. }, input, .. })
            if ids.len() == 3 && input.lines() == [""]));
        for c in "closedwon".chars() {
            ch(&mut s, c);
        }
        let fx = key(&mut s, KeyCode::Enter);
        assert_eq!(
            fx,
            vec![Effect::PreviewFix {
                ids: vec![35, 36, 37],
                field: "dealstage".into(),
                value: Some("closedwon".into())
            }],
            "shown before it is made"
        );
        update(
            &mut s,
            Msg::FixPreviewed {
                ids: vec![35, 36, 37],
                field: "dealstage".into(),
                value: Some("closedwon".into()),
                result: Ok("3 change:\n  #35 deals 20035: ∅ → 'closedwon'".into()),
            },
        );
        match &s.modal {
            Some(Modal::Confirm { question, .. }) => {
                assert!(question.starts_with("Set dealstage = \"closedwon\" on 3 records?\n3 change"), "{question}")
            }
            _ => panic!("expected the confirmation with the preview"),
        }
        assert_eq!(ch(&mut s, 'n'), vec![Effect::Release { ids: vec![35, 36, 37] }], "no: nothing written, let go");
        // Again, and yes this time.
        ch(&mut s, 'E');
        key(&mut s, KeyCode::Enter);
        update(
            &mut s,
            Msg::Claimed { ids: vec![35, 36, 37], field: "dealstage".into(), current: String::new(), was: None },
        );
        update(
            &mut s,
            Msg::FixPreviewed {
                ids: vec![35, 36, 37],
                field: "dealstage".into(),
                value: None,
                result: Ok("3 change".into()),
            },
        );
        assert!(matches!(s.modal, Some(Modal::Edit { .. })), "a preview answering while the box is open waits");
        key(&mut s, KeyCode::Esc);
        ch(&mut s, 'E');
        key(&mut s, KeyCode::Enter);
        update(
            &mut s,
            Msg::Claimed { ids: vec![35, 36, 37], field: "dealstage".into(), current: String::new(), was: None },
        );
        let fx = key(&mut s, KeyCode::Esc);
        assert!(s.modal.is_none(), "esc abandons the edit");
        assert_eq!(fx, vec![Effect::Release { ids: vec![35, 36, 37] }], "and lets go of the records");
        ch(&mut s, 's');
        assert_eq!(key(&mut s, KeyCode::Enter), Vec::<Effect>::new(), "an empty reason is refused");
        assert!(s.status.as_ref().is_some_and(|(bad, t)| *bad && t.contains("needs a reason")));
        ch(&mut s, 's');
        for c in "duplicate of 34".chars() {
            ch(&mut s, c);
        }
        assert_eq!(key(&mut s, KeyCode::Enter), Vec::<Effect>::new(), "asks first");
        assert!(matches!(s.modal, Some(Modal::Confirm { .. })));
        let fx = ch(&mut s, 'y');
        assert_eq!(fx, vec![Effect::Skip { ids: vec![35, 36, 37], reason: "duplicate of 34".into() }]);
        assert!(s.queue.marked.is_empty());
    }

    #[test]
    fn marks_stay_until_a_reprocess_has_handled_them_and_a_wait_can_be_stopped() {
        let (_d, mut s) = state();
        ch(&mut s, '3');
        loaded(&mut s, 35..=40);
        for _ in 0..3 {
            ch(&mut s, ' ');
        }
        assert_eq!(ch(&mut s, 'r'), vec![Effect::Reprocess { ids: vec![35, 36, 37] }]);
        assert_eq!(s.queue.marked.len(), 3, "marks stay while it runs");
        update(&mut s, Msg::Waited(Some("waiting for the other console's reprocess (pid 9)".into())));
        assert!(s.queue.note.as_ref().is_some_and(|(bad, t)| !bad && t.contains("waiting for the other")));
        assert_eq!(ch(&mut s, 'x'), vec![Effect::Control(Control::Cancel)], "x stops waiting, without a question");
        update(&mut s, Msg::RunEnded { summary: "not reprocessed: stopped waiting".into(), failed: true });
        assert_eq!(s.queue.marked.len(), 3, "nothing reprocessed: every mark kept");
        assert_eq!(ch(&mut s, 'r'), vec![Effect::Reprocess { ids: vec![35, 36, 37] }]);
        update(&mut s, Msg::RunEnded { summary: "Run 3 (reprocess) finished".into(), failed: false });
        assert!(s.queue.marked.is_empty(), "handled: unmarked");
    }

    #[test]
    fn a_paste_types_into_the_box_without_submitting_and_esc_then_a_key_is_not_alt() {
        let (_d, mut s) = state();
        ch(&mut s, '3');
        loaded(&mut s, 35..=37);
        ch(&mut s, 's');
        assert!(update(&mut s, Msg::Paste("duplicate\nof 34\n".into())).is_empty(), "nothing submitted");
        match &s.modal {
            Some(Modal::Edit { input, .. }) => assert_eq!(input.lines(), ["duplicate of 34"]),
            _ => panic!("the box stays open"),
        }
        // Esc and j in one read (alt-j): the box closes, then the cursor moves.
        update(&mut s, Msg::Key(KeyEvent::new(KeyCode::Char('j'), KeyModifiers::ALT)));
        assert!(s.modal.is_none());
        assert_eq!(s.queue.cursor, 1);
        assert!(update(&mut s, Msg::Paste("ignored".into())).is_empty(), "no box: a paste does nothing");
    }

    #[test]
    fn s_steps_the_order_and_reloads_from_the_top() {
        use crate::store::queue_view::Order;
        let (_d, mut s) = state();
        ch(&mut s, '3');
        loaded(&mut s, 35..=40);
        ch(&mut s, 'j');
        let fx = ch(&mut s, 'S');
        let newest = QueueQuery { order: Order::Newest, ..Default::default() };
        assert_eq!(fx, vec![Effect::LoadQueue { query: newest, offset: 0 }]);
        assert_eq!(s.queue.cursor, 0);
        ch(&mut s, 'S');
        assert_eq!(s.queue.query.order, Order::Grouped);
        ch(&mut s, 'S');
        assert_eq!(s.queue.query.order, Order::Oldest);
    }

    #[test]
    fn a_delta_starts_with_d_and_a_rollback_is_previewed_then_confirmed() {
        let (_d, mut s) = state();
        assert_eq!(ch(&mut s, 'd'), vec![Effect::StartRun { mode: RunMode::Delta }]);
        update(&mut s, Msg::RunEnded { summary: "delta done".into(), failed: false });
        assert_eq!(ch(&mut s, 'B'), vec![Effect::PreviewRollback]);
        assert!(s.modal.is_none(), "nothing is asked before the preview answers");
        update(&mut s, Msg::RollbackPreviewed(Ok((1, "It deletes 3 records the run created".into()))));
        match &s.modal {
            Some(Modal::Confirm { question, what: Confirm::Rollback { run: 1, keep: false } }) => {
                assert!(question.starts_with("Roll back run 1?\nIt deletes 3 records"), "{question}");
            }
            _ => panic!("expected the rollback confirmation"),
        }
        assert_eq!(ch(&mut s, 'y'), vec![Effect::Rollback { run: 1, keep: false }]);
        // Records changed since were left: the console asks whether to keep them.
        update(
            &mut s,
            Msg::RolledBack {
                run: 1,
                message: "rolled back: deleted 2".into(),
                left: vec!["deals 20000: amount is 1.00 (Cutover wrote 197923.47)".into()],
            },
        );
        match &s.modal {
            Some(Modal::Confirm { question, what: Confirm::Rollback { run: 1, keep: true } }) => {
                assert!(question.contains("• deals 20000: amount is 1.00"), "{question}");
            }
            _ => panic!("expected the keep question"),
        }
        assert_eq!(ch(&mut s, 'y'), vec![Effect::Rollback { run: 1, keep: true }]);
        update(&mut s, Msg::RollbackPreviewed(Err("no run has records still linked".into())));
        assert_eq!(s.status, Some((true, "nothing to roll back: no run has records still linked".into())));
    }

    #[test]
    fn an_unfinished_run_is_continued_with_c_and_not_twice() {
        let (_d, mut s) = state();
        assert_eq!(ch(&mut s, 'C'), vec![Effect::StartRun { mode: RunMode::Resume }]);
        assert_eq!(s.live.as_ref().map(|l| l.mode), Some(RunMode::Resume));
        assert_eq!(ch(&mut s, 'C'), Vec::new());
        assert_eq!(s.status, Some((true, "a run is already active".into())));
    }

    #[test]
    fn quitting_during_a_run_asks_then_cancels_and_closes_when_it_stops() {
        let (_d, mut s) = state();
        assert_eq!(ch(&mut s, 'R'), vec![Effect::StartRun { mode: RunMode::Full }]);
        ch(&mut s, 'q');
        assert!(!s.quit && matches!(s.modal, Some(Modal::Confirm { .. })));
        ch(&mut s, 'n');
        assert!(!s.quit && s.modal.is_none());
        ch(&mut s, 'q');
        assert_eq!(ch(&mut s, 'y'), vec![Effect::Control(Control::Cancel)]);
        assert!(!s.quit, "waits for the batch to commit");
        update(&mut s, Msg::RunEnded { summary: "cancelled".into(), failed: false });
        assert!(s.quit);
    }

    #[test]
    fn pause_resume_and_cancel_go_to_the_engine() {
        let (_d, mut s) = state();
        assert!(ch(&mut s, 'p').is_empty(), "nothing to pause");
        ch(&mut s, 'R');
        assert_eq!(ch(&mut s, 'p'), vec![Effect::Control(Control::Pause)]);
        assert_eq!(ch(&mut s, 'c'), vec![Effect::Control(Control::Go)]);
        assert!(ch(&mut s, 'x').is_empty());
        assert_eq!(ch(&mut s, 'y'), vec![Effect::Control(Control::Cancel)]);
        assert!(ch(&mut s, 'R').is_empty(), "a run is already active");
    }

    #[test]
    fn answers_to_an_older_filter_are_dropped() {
        let (_d, mut s) = state();
        ch(&mut s, '3');
        loaded(&mut s, 35..=37);
        ch(&mut s, 'f');
        assert_eq!(s.queue.query.reason.as_deref(), Some("no_translation"));
        let stale = Msg::QueueLoaded {
            query: QueueQuery::default(),
            summary: vec![],
            items: vec![deal(99)],
            offset: 0,
            total: 1,
        };
        update(&mut s, stale);
        assert_ne!(s.queue.items.first().map(|i| i.id), Some(99));
    }

    #[test]
    fn the_audit_log_pages_by_keyset() {
        let (_d, mut s) = state();
        ch(&mut s, '4');
        let row = |id| AuditEntry {
            id,
            run_id: 1,
            at: "2026-01-01T00:00:00.000Z".into(),
            user: "op".into(),
            object: "deals".into(),
            source_id: id.to_string(),
            outcome: "created".into(),
            dest_id: None,
            detail: None,
            warnings: None,
        };
        let rows: Vec<AuditEntry> = (801..=1000).rev().map(row).collect();
        update(&mut s, Msg::AuditLoaded { query: AuditQuery::default(), before: None, rows, more: true });
        ch(&mut s, 'G');
        assert_eq!(s.audit.cursor, AUDIT_PAGE - 1);
        let fx = ch(&mut s, 'j');
        assert_eq!(fx, vec![Effect::LoadAudit { query: AuditQuery::default(), before: Some(801) }]);
        let fx = ch(&mut s, 'k');
        assert!(fx.is_empty(), "one load at a time");
    }
}
