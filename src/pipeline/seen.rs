//! The source ids a run has read so far, per object: a second row under an id already read is a
//! record of its own (its occurrence is 2, 3, …), never merged into the first or overwriting it.
//! Ids compare exactly as the source spells them: " 42", "42" and "42\u{a0}" are three ids.
//!
//! Kept as 128-bit hashes of the ids with the hash of each first row's values — 24 bytes an id,
//! in sorted segments that a small map of recent ids is merged into now and then (no hash table
//! doubling its size at a million ids), so an exact repeat of a row can be told from a different one.
//! A merge moves the entries of one segment at most: one sorted vector of every id was copied
//! whole into a larger one at each merge, twice the ids' memory for a moment, and the moment
//! came when the ids were most.

use crate::store::members::Read;
use foldhash::HashMap;

/// Recent ids kept in the map before they are merged into the sorted segments.
const RECENT: usize = 1 << 16;

/// Entries a segment holds at most (24 MiB): at four million ids, four segments to search.
const SEGMENT: usize = 1 << 20;

/// An id's hash and the hash of its first row's values (0 when it could not be read): 24 bytes,
/// where a `(u128, u64)` pair takes 32 (a `u128` is aligned to 16).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    hi: u64,
    lo: u64,
    first: u64,
}

impl Entry {
    fn new(key: u128, first: u64) -> Self {
        Self { hi: (key >> 64) as u64, lo: key as u64, first }
    }
    fn key(&self) -> u128 {
        (u128::from(self.hi) << 64) | u128::from(self.lo)
    }
}

#[derive(Default)]
pub struct SeenIds {
    /// Sorted by id hash within each segment; an id is in one segment only.
    segments: Vec<Vec<Entry>>,
    recent: HashMap<u128, u64>,
    /// Ids read more than once: how many rows so far.
    repeated: HashMap<u128, u32>,
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
        let mut seen = SeenIds::default();
        for r in reads {
            let first = r.first_hash.as_deref().and_then(|h| u64::from_str_radix(h, 16).ok()).unwrap_or(0);
            let key = id_hash(&r.source_id);
            seen.insert(key, first);
            if r.rows > 1 {
                seen.repeated.insert(key, r.rows);
            }
        }
        seen
    }

    fn first_hash(&self, key: u128) -> Option<u64> {
        if let Some(&h) = self.recent.get(&key) {
            return Some(h);
        }
        self.segments.iter().find_map(|seg| seg.binary_search_by(|e| e.key().cmp(&key)).ok().map(|i| seg[i].first))
    }

    fn insert(&mut self, key: u128, first: u64) {
        self.recent.insert(key, first);
        if self.recent.len() >= RECENT {
            self.merge();
        }
    }

    /// Merges the recent ids into the last segment, in place from the back (a new segment when
    /// they would not fit).
    fn merge(&mut self) {
        let mut fresh: Vec<Entry> = self.recent.drain().map(|(k, h)| Entry::new(k, h)).collect();
        fresh.sort_unstable();
        if self.segments.last().is_none_or(|seg| seg.len() + fresh.len() > SEGMENT) {
            // Its whole size at once: growing by doubling would copy it again and again.
            self.segments.push(Vec::with_capacity(SEGMENT.max(fresh.len())));
        }
        let Some(seg) = self.segments.last_mut() else { return };
        let old = seg.len();
        seg.resize(old + fresh.len(), Entry::default());
        let (mut i, mut j, mut k) = (old, fresh.len(), seg.len());
        while j > 0 {
            k -= 1;
            if i > 0 && seg[i - 1] > fresh[j - 1] {
                seg[k] = seg[i - 1];
                i -= 1;
            } else {
                seg[k] = fresh[j - 1];
                j -= 1;
            }
        }
    }

    /// Counts one more row under `id`, whose source values hash to `values_hash` (`None`: a row
    /// that could not be read).
    pub fn next(&mut self, id: &str, values_hash: Option<u64>) -> Occurrence {
        let key = id_hash(id);
        match self.first_hash(key) {
            Some(first) => {
                let rows = self.repeated.entry(key).or_insert(1);
                *rows += 1;
                Occurrence { n: *rows, same_as_first: first != 0 && Some(first) == values_hash }
            }
            None => {
                // 0 stands for "unreadable": a real hash of 0 is nudged to 1.
                self.insert(key, values_hash.map_or(0, |h| h.max(1)));
                Occurrence { n: 1, same_as_first: false }
            }
        }
    }

    /// Whether a row with this id was read in this run.
    pub fn contains(&self, id: &str) -> bool {
        self.first_hash(id_hash(id)).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_compare_exactly_and_repeats_are_told_from_different_rows() {
        let mut seen = SeenIds::default();
        assert_eq!(seen.next("42", Some(10)), Occurrence { n: 1, same_as_first: false });
        assert_eq!(seen.next(" 42", Some(10)).n, 1, "a leading space is another id");
        assert_eq!(seen.next("42\u{a0}", Some(10)).n, 1, "so is a trailing no-break space");
        assert_eq!(seen.next("42", Some(10)), Occurrence { n: 2, same_as_first: true });
        assert_eq!(seen.next("42", Some(11)), Occurrence { n: 3, same_as_first: false });
        assert_eq!(seen.next("43", None).n, 1);
        assert!(!seen.next("43", None).same_as_first, "an unreadable row repeats nothing");
        let mut resumed =
            SeenIds::resumed(vec![Read { source_id: "42".into(), rows: 3, first_hash: Some("a".into()) }]);
        assert_eq!(
            resumed.next("42", Some(10)),
            Occurrence { n: 4, same_as_first: true },
            "numbering goes on after a resume"
        );
    }

    #[test]
    fn ids_beyond_one_segment_are_all_found() {
        let mut seen = SeenIds::default();
        let n = SEGMENT + 3 * RECENT;
        for i in 0..n {
            seen.next(&i.to_string(), Some(7));
        }
        assert_eq!(seen.segments.len(), 2, "{:?}", seen.segments.iter().map(Vec::len).collect::<Vec<_>>());
        let probes: std::collections::BTreeSet<usize> =
            (0..n).step_by(4099).chain([n - 1, SEGMENT - 1, SEGMENT]).collect();
        for i in probes {
            assert_eq!(seen.next(&i.to_string(), Some(7)).n, 2, "{i}");
        }
        assert_eq!(seen.next("not read", None).n, 1);
        assert_eq!(std::mem::size_of::<Entry>(), 24);
    }

    #[test]
    fn merging_into_the_sorted_ids_loses_none() {
        let mut seen = SeenIds::default();
        for i in 0..(3 * RECENT + 17) {
            assert_eq!(seen.next(&i.to_string(), Some(i as u64 + 5)).n, 1);
        }
        for i in (0..(3 * RECENT + 17)).step_by(997) {
            assert_eq!(seen.next(&i.to_string(), Some(i as u64 + 5)), Occurrence { n: 2, same_as_first: true }, "{i}");
        }
        assert!(seen.segments.iter().all(|seg| seg.windows(2).all(|w| w[0].key() < w[1].key())), "kept sorted");
    }
}
