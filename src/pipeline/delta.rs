//! Delta runs: after a full run, while the source stays live, only what is new or changed moves.
//! "New" is a source record Cutover has never given an outcome (or one that failed); "changed"
//! is a written record modified after the previous run's high-water mark (when the object names
//! its modified-time field), or whose source values hash differently from when it was written.

use super::plan::ObjectPlan;
use super::transform::parse_when;
use crate::model::{Outcome, SourceRecord, Value};
use crate::store::Store;
use color_eyre::eyre::Result;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaMode {
    CreateNew,
    UpdateChanged,
    Both,
}

impl DeltaMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DeltaMode::CreateNew => "create-new",
            DeltaMode::UpdateChanged => "update-changed",
            DeltaMode::Both => "both",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [DeltaMode::CreateNew, DeltaMode::UpdateChanged, DeltaMode::Both].into_iter().find(|m| m.as_str() == s)
    }
}

/// A short, stable hash of a record's source values (what the id map keeps per written
/// record): FNV-1a over each value with its length and a blank marker — fixed by this code, so
/// it never changes with a library version, and cheap enough for every record of a run.
pub fn source_hash(values: &[Value]) -> String {
    hash_text(source_hash_u64(values))
}

/// A source hash as the store keeps it.
pub fn hash_text(h: u64) -> String {
    format!("{h:016x}")
}

/// [`source_hash`] as a number.
pub fn source_hash_u64(values: &[Value]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for v in values {
        match v {
            None => eat(&[0]),
            Some(s) => {
                eat(&[1]);
                eat(&(s.len() as u64).to_le_bytes());
                eat(s.as_bytes());
            }
        }
    }
    h
}

/// A modified time in one comparable spelling (`2024-03-01T09:30:00`); text that is no date
/// compares as it is.
pub fn modified_key(value: &str, day_first: bool) -> String {
    parse_when(value, day_first)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_else(|_| value.to_string())
}

/// Which source records of one object a delta run takes.
pub struct DeltaFilter {
    mode: DeltaMode,
    /// Written records: source id → hash of their source values when written.
    written: HashMap<String, Option<String>>,
    /// Held in the queue or skipped by an operator: not new (the queue owns them) — unless
    /// their row changed in the export since (then the fix is judged): source id → the source
    /// values (JSON) the queue holds, where the queue holds them.
    settled: HashMap<String, Option<String>>,
    /// Held because their parent was not written, which is written now (by a reprocess, or earlier
    /// in this delta: parents go first): taken again, so they are released.
    for_parents: std::collections::HashSet<String>,
    source_fields: Vec<String>,
    high_water: Option<String>,
    modified: Option<usize>,
    day_first: bool,
}

impl DeltaFilter {
    pub fn load(store: &Store, plan: &ObjectPlan, mode: DeltaMode, day_first: bool) -> Result<Self> {
        let written = store.source_hashes(&plan.name)?;
        let for_parents = store.released_by_parents(&plan.name)?;
        let mut held = store.settled_sources(&plan.name)?;
        // A row skipped by the object's scope (its `where`, a blank `repeat` entry) has no queue
        // row: it is judged again, and taken once it is in scope.
        let settled = store
            .latest_outcomes(&plan.name)?
            .into_iter()
            .filter(|((_, n), _)| *n == 1)
            .filter_map(|((sid, _), o)| {
                let source = held.remove(&sid);
                match o {
                    Some(Outcome::Queued) => Some((sid, source)),
                    Some(Outcome::Skipped) if source.is_some() => Some((sid, source)),
                    _ => None,
                }
            })
            .collect();
        let high_water = match plan.modified {
            Some(_) => store.high_water(&plan.name)?,
            None => None,
        };
        let source_fields = plan.source_fields.to_vec();
        Ok(Self { mode, written, settled, for_parents, source_fields, high_water, modified: plan.modified, day_first })
    }

    pub fn wants(&self, r: &SourceRecord) -> bool {
        match self.written.get(&r.source_id) {
            None => {
                self.mode != DeltaMode::UpdateChanged
                    && match self.settled.get(&r.source_id) {
                        None => true,
                        Some(_) if self.for_parents.contains(&r.source_id) => true,
                        Some(held) => self.changed_since_held(r, held.as_deref()),
                    }
            }
            Some(hash) => self.mode != DeltaMode::CreateNew && self.changed(r, hash.as_deref()),
        }
    }

    /// The row reads otherwise than when the queue took it (or skipped it).
    fn changed_since_held(&self, r: &SourceRecord, held: Option<&str>) -> bool {
        let Some(held) = held else { return false };
        let Ok(then) = serde_json::from_str::<indexmap::IndexMap<String, Option<String>>>(held) else { return false };
        self.source_fields.iter().zip(&r.values).any(|(f, v)| then.get(f).is_some_and(|t| t != v))
    }

    fn changed(&self, r: &SourceRecord, hash: Option<&str>) -> bool {
        if let (Some(i), Some(mark)) = (self.modified, &self.high_water) {
            return match r.values.get(i).and_then(|v| v.as_deref()).filter(|v| !v.trim().is_empty()) {
                Some(m) => modified_key(m, self.day_first) > *mark,
                None => true, // no modified time: it cannot be ruled out
            };
        }
        hash != Some(source_hash(&r.values).as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_tells_values_apart_and_blanks_from_nothing() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(source_hash(&[s("a"), None]), source_hash(&[s("a"), None]));
        assert_ne!(source_hash(&[s("a"), None]), source_hash(&[s("a"), s("")]));
        assert_ne!(source_hash(&[s("ab"), s("c")]), source_hash(&[s("a"), s("bc")]));
    }

    #[test]
    fn modified_times_compare_in_one_spelling() {
        assert!(modified_key("2024-03-02 08:00", false) > modified_key("03/01/2024", false));
        assert_eq!(modified_key("2024-03-01", false), "2024-03-01T00:00:00");
    }
}
