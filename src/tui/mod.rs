//! The console: a ratatui TUI over the engine. Elm-shaped — `update` (pure) turns messages into
//! state changes and effects, `render` draws state, `runner` carries effects out on other tasks.
//! The loop here only moves messages: it never waits on the store or a connector.

pub mod keymap;
pub mod render;
pub mod runner;
pub mod state;

pub mod update;

use crate::project::Project;
use color_eyre::eyre::{Result, WrapErr};
use crossterm::event::{Event, EventStream};
use futures_util::StreamExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Where the user's keymap lives: `CUTOVER_KEYMAP`, else `keymap.toml` in the config folder.
pub fn keymap_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CUTOVER_KEYMAP") {
        return Some(PathBuf::from(p));
    }
    directories::ProjectDirs::from("", "", "cutover").map(|d| d.config_dir().join("keymap.toml"))
}

/// Whether the terminal `TERM` names shows colours: not a `dumb` one, nor a DEC VT (`vt100`,
/// `vt220`: monochrome, and the colour codes the console would send are 256-colour ones they
/// print as text). An unknown or missing `TERM` gets none either.
fn colour_terminal(term: Option<&str>) -> bool {
    match term.map(str::trim).filter(|t| !t.is_empty()) {
        None => false,
        Some(t) => t != "dumb" && !t.starts_with("vt") && t != "unknown",
    }
}

/// Opens the console on a project and returns when the operator quits.
/// Load the keymap first ([`keymap::Keymap::load`]): bad input fails before the terminal is taken.
pub async fn open(project: Project, keymap: keymap::Keymap) -> Result<()> {
    let term = std::env::var("TERM").ok();
    let modern = colour_terminal(term.as_deref());
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && modern;
    // Make (or migrate) the state store once, before anything reads it concurrently; a run
    // killed before its end left the held records' value index down: build it while no run holds
    // the project.
    let store = project.store()?;
    if crate::store::RunLock::is_free(&project.store_path)
        && let Err(e) = store.queue_value_index(true)
    {
        tracing::warn!(error = %format!("{e:#}"), "could not index the held records by value");
    }
    drop(store);
    let mut state = state::AppState::new(&project.config, keymap, color);
    let project = Arc::new(project);

    let mut terminal = ratatui::try_init().wrap_err("cannot open the terminal for the console")?;
    // Pasted text arrives as one event (a multi-line paste must not submit at its first line).
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::EnableBracketedPaste);
    let result = event_loop(&mut terminal, &mut state, project, Frames { synchronized: modern }).await;
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableBracketedPaste);
    ratatui::restore();
    result
}

/// How frames reach the terminal.
struct Frames {
    /// Wrap each frame in a synchronized update (DEC mode 2026): the terminal shows it whole,
    /// never half drawn. Terminals without it ignore the mode; dumb and DEC terminals are not sent it.
    synchronized: bool,
}

impl Frames {
    fn draw(&self, terminal: &mut ratatui::DefaultTerminal, state: &mut state::AppState) -> Result<()> {
        let size = terminal.size()?;
        state.page_rows = size.height.saturating_sub(12).max(1) as usize;
        if self.synchronized {
            crossterm::queue!(terminal.backend_mut(), crossterm::terminal::BeginSynchronizedUpdate)?;
        }
        terminal.draw(|f| render::render(state, f))?;
        if self.synchronized {
            crossterm::execute!(terminal.backend_mut(), crossterm::terminal::EndSynchronizedUpdate)?;
        }
        Ok(())
    }
}

/// Hands a terminal event to `update`; false when it changes nothing on screen.
fn on_event(state: &mut state::AppState, runner: &runner::Runner, event: Event) -> bool {
    let msg = match event {
        Event::Key(key) => update::Msg::Key(key),
        Event::Paste(text) => update::Msg::Paste(text),
        Event::Resize(_, _) => return true,
        _ => return false,
    };
    for effect in update::update(state, msg) {
        runner.run(effect);
    }
    true
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    state: &mut state::AppState,
    project: Arc<Project>,
    frames: Frames,
) -> Result<()> {
    let started = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let runner = runner::Runner::new(project, tx, started, state.me.clone());
    for effect in update::startup() {
        runner.run(effect);
    }
    let mut events = EventStream::new();
    // Engine and store answers are drawn at most every 33 ms (live counters change constantly);
    // a keypress is drawn at once.
    let mut ticker = tokio::time::interval(Duration::from_millis(33));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    // Set by input: draw as soon as no further input is waiting (a burst is one frame). The
    // stream is only ever polled with the loop's own waker — a drain with a no-op waker left
    // it unable to wake the loop, and each key waited for the 33 ms timer.
    let mut draw_now = false;
    let result = loop {
        tokio::select! {
            biased;
            event = events.next() => {
                match event {
                    Some(Ok(event)) => {
                        if on_event(state, &runner, event) {
                            draw_now = true;
                            dirty = true;
                        }
                    }
                    Some(Err(e)) => break Err(e).wrap_err("reading the terminal"),
                    None => break Ok(()),
                }
            }
            _ = std::future::ready(()), if draw_now => {
                draw_now = false;
                if let Err(e) = frames.draw(terminal, state) {
                    break Err(e).wrap_err("drawing the console");
                }
                dirty = false;
            }
            Some(msg) = rx.recv() => {
                let mut pending = vec![msg];
                while let Ok(m) = rx.try_recv() {
                    pending.push(m);
                }
                for m in pending {
                    for effect in update::update(state, m) {
                        runner.run(effect);
                    }
                }
                dirty = true;
            }
            _ = ticks.tick() => {
                for effect in update::update(state, update::Msg::Tick) {
                    runner.run(effect);
                }
            }
            _ = ticker.tick() => {
                if dirty {
                    if let Err(e) = frames.draw(terminal, state) {
                        break Err(e).wrap_err("drawing the console");
                    }
                    dirty = false;
                }
            }
        }
        if state.quit {
            break Ok(());
        }
    };
    runner.release_all();
    result
}

#[cfg(test)]
mod colour_tests {
    #[test]
    fn monochrome_and_unknown_terminals_get_no_colour() {
        for t in [None, Some(""), Some("dumb"), Some("vt100"), Some("vt220"), Some("unknown")] {
            assert!(!super::colour_terminal(t), "{t:?}");
        }
        for t in ["xterm-256color", "xterm", "screen", "tmux-256color", "linux", "alacritty"] {
            assert!(super::colour_terminal(Some(t)), "{t}");
        }
    }
}
