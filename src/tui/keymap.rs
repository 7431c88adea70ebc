//! Key bindings are data: every console action has a name, the defaults are embedded from
//! `assets/keymap.toml`, and a user keymap file overrides them layer by layer. A bad user file
//! is refused with every problem named by file, line and key — never half applied.

use color_eyre::eyre::{Result, bail};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

pub const DEFAULTS: &str = include_str!("../../assets/keymap.toml");

/// Everything a key can do in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Quit,
    Help,
    NextPane,
    PrevPane,
    PaneOverview,
    PaneMapping,
    PaneQueue,
    PaneAudit,
    PaneReconcile,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Back,
    Preview,
    StartRun,
    Pause,
    Resume,
    Cancel,
    PrevObject,
    NextObject,
    FilterObject,
    FilterReason,
    PrevFilterObject,
    PrevFilterReason,
    Groups,
    Sort,
    FindNext,
    FindPrev,
    Jump,
    FilterOutcome,
    FilterWarning,
    Search,
    FocusDetail,
    EditField,
    ToggleMark,
    MarkAll,
    ClearMarks,
    Undo,
    EditMarked,
    Reprocess,
    Skip,
    PrevCandidate,
    NextCandidate,
    MergeInto,
    CreateNew,
    EditRow,
    AddField,
    AddTranslation,
    ExcludeField,
    SaveMapping,
    DiscardMapping,
    Reconcile,
    ResumeRun,
    DeltaRun,
    Rollback,
    Expand,
    Accept,
    SignOff,
    WriteReport,
}

/// The layers a binding can live in: one per pane, and `global` for all of them.
pub const LAYERS: &[&str] = &["global", "overview", "mapping", "queue", "audit", "reconcile"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
    pub alt: bool,
}

impl Key {
    pub fn from_event(e: &KeyEvent) -> Self {
        Key {
            code: e.code,
            ctrl: e.modifiers.contains(KeyModifiers::CONTROL),
            alt: e.modifiers.contains(KeyModifiers::ALT),
        }
    }

    /// "q", "G", "ctrl-c", "pgdown", …
    pub fn parse(s: &str) -> Option<Self> {
        let mut rest = s;
        let (mut ctrl, mut alt) = (false, false);
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-").filter(|r| !r.is_empty()) {
                ctrl = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-").filter(|r| !r.is_empty()) {
                alt = true;
                rest = r;
            } else {
                break;
            }
        }
        let code = match rest {
            "enter" => KeyCode::Enter,
            "esc" => KeyCode::Esc,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "space" => KeyCode::Char(' '),
            "backspace" => KeyCode::Backspace,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "pgup" => KeyCode::PageUp,
            "pgdown" => KeyCode::PageDown,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            f if f.len() > 1 && f.starts_with('f') => KeyCode::F(f[1..].parse().ok().filter(|n| (1..=12).contains(n))?),
            c => {
                let mut chars = c.chars();
                let ch = chars.next()?;
                if chars.next().is_some() {
                    return None;
                }
                KeyCode::Char(ch)
            }
        };
        Some(Key { code, ctrl, alt })
    }

    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Enter => "enter".into(),
            KeyCode::Esc => "esc".into(),
            KeyCode::Tab => "tab".into(),
            KeyCode::BackTab => "shift-tab".into(),
            KeyCode::Char(' ') => "space".into(),
            KeyCode::Backspace => "backspace".into(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::PageUp => "pgup".into(),
            KeyCode::PageDown => "pgdn".into(),
            KeyCode::Home => "home".into(),
            KeyCode::End => "end".into(),
            KeyCode::F(n) => format!("f{n}"),
            KeyCode::Char(c) => c.to_string(),
            _ => "?".into(),
        };
        format!("{}{}{base}", if self.ctrl { "ctrl-" } else { "" }, if self.alt { "alt-" } else { "" })
    }
}

#[derive(Debug, Clone)]
pub struct Binding {
    pub key: Key,
    pub action: Action,
    pub desc: String,
}

/// Bindings per layer, in file order (help lists them that way).
#[derive(Debug, Clone, Default)]
pub struct Keymap {
    layers: BTreeMap<String, Vec<Binding>>,
}

#[derive(Deserialize)]
struct RawBinding {
    on: toml::Spanned<String>,
    run: toml::Spanned<String>,
    #[serde(default)]
    desc: String,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn parse_layers(text: &str, origin: &str) -> Result<BTreeMap<String, Vec<Binding>>> {
    let raw: BTreeMap<String, toml::Spanned<Vec<RawBinding>>> =
        toml::from_str(text).map_err(|e| color_eyre::eyre::eyre!("{origin}: {}", e.to_string().trim_end()))?;
    let mut problems = Vec::new();
    let mut layers = BTreeMap::new();
    for (layer, bindings) in raw {
        if !LAYERS.contains(&layer.as_str()) {
            problems.push(format!(
                "{origin}:{}: unknown layer `{layer}` (layers: {})",
                line_of(text, bindings.span().start),
                LAYERS.join(", ")
            ));
            continue;
        }
        let mut out = Vec::new();
        for b in bindings.into_inner() {
            let key = Key::parse(b.on.get_ref());
            if key.is_none() {
                problems.push(format!(
                    "{origin}:{}: {layer}: `{}` is not a key (e.g. \"q\", \"ctrl-c\", \"pgdown\")",
                    line_of(text, b.on.span().start),
                    b.on.get_ref()
                ));
            }
            let action = toml::Value::String(b.run.get_ref().clone()).try_into::<Action>().ok();
            if action.is_none() {
                problems.push(format!(
                    "{origin}:{}: {layer}: `{}` is not an action of the console",
                    line_of(text, b.run.span().start),
                    b.run.get_ref()
                ));
            }
            if let (Some(key), Some(action)) = (key, action) {
                out.push(Binding { key, action, desc: b.desc });
            }
        }
        layers.insert(layer, out);
    }
    if !problems.is_empty() {
        bail!("the keymap has {} problem(s):\n  {}", problems.len(), problems.join("\n  "));
    }
    Ok(layers)
}

impl Keymap {
    pub fn defaults() -> Self {
        match parse_layers(DEFAULTS, "assets/keymap.toml") {
            Ok(layers) => Keymap { layers },
            // A test proves the embedded defaults parse; never reached in a released binary.
            Err(_) => Keymap::default(),
        }
    }

    /// The defaults, with the user's file (if it exists) overriding binding by binding.
    pub fn load(user_file: Option<&Path>) -> Result<Self> {
        let mut map = Self::defaults();
        let Some(path) = user_file.filter(|p| p.exists()) else { return Ok(map) };
        let text = std::fs::read_to_string(path)
            .map_err(|e| color_eyre::eyre::eyre!("cannot read keymap {}: {e}", path.display()))?;
        for (layer, bindings) in parse_layers(&text, &path.display().to_string())? {
            let current = map.layers.entry(layer).or_default();
            for b in bindings {
                // A user binding replaces whatever that key did in the layer.
                current.retain(|c| c.key != b.key);
                current.insert(0, b);
            }
        }
        Ok(map)
    }

    /// What a key does in a pane's layer, falling back to `global`.
    pub fn action(&self, layer: &str, key: Key) -> Option<Action> {
        let find = |l: &str| self.layers.get(l).and_then(|bs| bs.iter().find(|b| b.key == key)).map(|b| b.action);
        find(layer).or_else(|| find("global"))
    }

    /// The bindings `?` shows for a pane: its own, then the global ones; one line per action.
    pub fn help(&self, layer: &str) -> Vec<(String, String)> {
        let mut out: Vec<(Action, String, String)> = Vec::new();
        for l in [layer, "global"] {
            for b in self.layers.get(l).into_iter().flatten() {
                match out.iter_mut().find(|(a, _, _)| *a == b.action) {
                    Some((_, keys, _)) => {
                        keys.push_str(", ");
                        keys.push_str(&b.key.label());
                    }
                    None => out.push((b.action, b.key.label(), b.desc.clone())),
                }
            }
        }
        out.into_iter().map(|(_, k, d)| (k, d)).collect()
    }

    /// The first key bound to an action (for hints in the status line).
    pub fn key_for(&self, layer: &str, action: Action) -> String {
        [layer, "global"]
            .iter()
            .filter_map(|l| self.layers.get(*l))
            .flatten()
            .find(|b| b.action == action)
            .map(|b| b.key.label())
            .unwrap_or_else(|| "—".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_cover_every_pane() {
        parse_layers(DEFAULTS, "defaults").expect("embedded keymap is valid");
        let map = Keymap::defaults();
        let q = Key::parse("q").expect("key");
        assert_eq!(map.action("queue", q), Some(Action::Quit));
        assert_eq!(map.action("queue", Key::parse("r").expect("key")), Some(Action::Reprocess));
        assert_eq!(map.action("overview", Key::parse("r").expect("key")), None);
        assert!(map.help("queue").iter().any(|(k, d)| k == "space" && d.contains("Mark")));
    }

    #[test]
    fn a_user_file_overrides_and_a_bad_one_names_every_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("keymap.toml");
        std::fs::write(&good, "queue = [ { on = \"x\", run = \"reprocess\", desc = \"mine\" } ]\n").expect("write");
        let map = Keymap::load(Some(&good)).expect("loads");
        assert_eq!(map.action("queue", Key::parse("x").expect("key")), Some(Action::Reprocess));
        assert_eq!(map.action("queue", Key::parse("r").expect("key")), Some(Action::Reprocess), "defaults stay");

        let bad = dir.path().join("bad.toml");
        std::fs::write(
            &bad,
            "queue = [\n  { on = \"ctrl-\", run = \"reprocess\" },\n  { on = \"z\", run = \"explode\" },\n]\nsideways = []\n",
        )
        .expect("write");
        let err = Keymap::load(Some(&bad)).expect_err("refused").to_string();
        assert!(err.contains("bad.toml:2: queue: `ctrl-` is not a key"), "{err}");
        assert!(err.contains("bad.toml:3: queue: `explode` is not an action"), "{err}");
        assert!(err.contains("unknown layer `sideways`"), "{err}");
    }
}
