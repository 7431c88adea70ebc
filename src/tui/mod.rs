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
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && colour_terminal(term.as_deref());
    // Make (or migrate) the state store once, before anything reads it concurrently.
    drop(project.store()?);
    let mut state = state::AppState::new(&project.config, keymap, color);
    let project = Arc::new(project);

    let mut terminal = ratatui::try_init().wrap_err("cannot open the terminal for the console")?;
    let result = event_loop(&mut terminal, &mut state, project).await;
    ratatui::restore();
    result
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    state: &mut state::AppState,
    project: Arc<Project>,
) -> Result<()> {
    let started = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let runner = runner::Runner::new(project, tx, started, state.me.clone());
    for effect in update::startup() {
        runner.run(effect);
    }
    let mut events = EventStream::new();
    let mut frames = tokio::time::interval(Duration::from_millis(33));
    frames.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    let result = loop {
        tokio::select! {
            event = events.next() => {
                match event {
                    Some(Ok(Event::Key(key))) => {
                        for effect in update::update(state, update::Msg::Key(key)) {
                            runner.run(effect);
                        }
                    }
                    Some(Ok(Event::Resize(_, _))) => {}
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break Err(e).wrap_err("reading the terminal"),
                    None => break Ok(()),
                }
                dirty = true;
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
            _ = frames.tick() => {
                if dirty {
                    let drawn = terminal.size().and_then(|size| {
                        state.page_rows = size.height.saturating_sub(12).max(1) as usize;
                        terminal.draw(|f| render::render(state, f)).map(|_| ())
                    });
                    if let Err(e) = drawn {
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
