//! The source ids a run has read so far, per object: a second row under an id already read is a
//! record of its own (its occurrence is 2, 3, …), never merged into the first or overwriting it.
//! Ids compare exactly as the source spells them: " 42", "42" and "42\u{a0}" are three ids.
//!
//! Kept as 128-bit hashes of the ids (about 40 bytes a record at a million), with the hash of
//! each first row's values, so an exact repeat of a row can be told from a different one.

use crate::store::members::Read;
use foldhash::{HashMap, HashMapExt};

#[derive(Default)]
pub struct SeenIds {
    /// id hash → (hash of the first row's source values, rows read under the id).
    ids: HashMap<u128, (String, u32)>,
}

/// FNV-1a over 128 bits: collisions between two different ids are out of reach (at a billion
/// ids, about one chance in 10^20), so "seen" is exact in practice.
fn id_hash(id: &str) -> u128 {
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013B;
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for &b in id.as_bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// What a row is among the rows under its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    /// 1 for the first row under the id, 2 for the second, …
    pub n: u32,
    /// A later row whose values are exactly the first row's.
    pub same_as_first: bool,
}

impl SeenIds {
    /// What an interrupted attempt of the run had read already.
    pub fn resumed(reads: Vec<Read>) -> Self {
        let mut ids = HashMap::with_capacity(reads.len());
        for r in reads {
            ids.insert(id_hash(&r.source_id), (r.first_hash.unwrap_or_default(), r.rows));
        }
        Self { ids }
    }

    /// Counts one more row under `id`, whose source values hash to `values_hash`.
    pub fn next(&mut self, id: &str, values_hash: &str) -> Occurrence {
        match self.ids.get_mut(&id_hash(id)) {
            Some((first, rows)) => {
                *rows += 1;
                Occurrence { n: *rows, same_as_first: !first.is_empty() && first == values_hash }
            }
            None => {
                self.ids.insert(id_hash(id), (values_hash.to_string(), 1));
                Occurrence { n: 1, same_as_first: false }
            }
        }
    }

    /// Whether a row with this id was read in this run.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains_key(&id_hash(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_compare_exactly_and_repeats_are_told_from_different_rows() {
        let mut seen = SeenIds::default();
        assert_eq!(seen.next("42", "a"), Occurrence { n: 1, same_as_first: false });
        assert_eq!(seen.next(" 42", "a").n, 1, "a leading space is another id");
        assert_eq!(seen.next("42\u{a0}", "a").n, 1, "so is a trailing no-break space");
        assert_eq!(seen.next("42", "a"), Occurrence { n: 2, same_as_first: true });
        assert_eq!(seen.next("42", "b"), Occurrence { n: 3, same_as_first: false });
        let resumed = SeenIds::resumed(vec![Read { source_id: "42".into(), rows: 3, first_hash: Some("a".into()) }]);
        let mut resumed = resumed;
        assert_eq!(
            resumed.next("42", "a"),
            Occurrence { n: 4, same_as_first: true },
            "numbering goes on after a resume"
        );
    }
}
