//! Term frequencies (issue #15): agreement on a value few records hold says more than agreement
//! on one many hold. `smith` = `smith` is weak evidence, `wojciechowski` = `wojciechowski`
//! strong; a placeholder email a thousand records share is almost none, while an address only
//! one person has outweighs what 20,000 random pairs could ever measure (their `u` cannot go
//! below 1 in 20,000, which capped an exact email at about 13 points — less than the prior of
//! a million-record run).
//!
//! Counted over the records a run may link to (the destination's and those it created), by each
//! field's blocking key, as a 64-bit hash: a million records cost a few dozen bytes each.

use super::compare::Kind;
use super::link::{Values, key};
use foldhash::{HashMap, HashMapExt};
use std::hash::BuildHasher;

/// How many records hold each value, field by field; for emails, each local part too (the
/// same `jonathan.smith.1974` at another employer is strong evidence, the same `info` none).
#[derive(Debug, Clone)]
pub struct Frequencies {
    kinds: Vec<Kind>,
    counts: Vec<HashMap<u64, u32>>,
    /// Records with a value in each field.
    filled: Vec<u32>,
    /// Per field: the local parts' counts (emails only) and how many records have one.
    local: Vec<Option<(HashMap<u64, u32>, u32)>>,
    hasher: foldhash::fast::FixedState,
}

/// An email's local part, as its level compares it (lower case, before the last `@`).
fn local_part(email: &str) -> Option<&str> {
    email.rsplit_once('@').map(|(l, _)| l).filter(|l| !l.is_empty())
}

/// A value's share among the records, and how many hold it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    pub holders: u32,
    pub of: u32,
}

impl Frequencies {
    pub fn new(kinds: &[Kind]) -> Self {
        Self {
            kinds: kinds.to_vec(),
            counts: kinds.iter().map(|_| HashMap::new()).collect(),
            filled: vec![0; kinds.len()],
            local: kinds.iter().map(|k| (*k == Kind::Email).then(|| (HashMap::new(), 0))).collect(),
            hasher: foldhash::fast::FixedState::with_seed(0x15),
        }
    }

    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Counts a record's values in (`add`) or out.
    pub fn count(&mut self, values: &Values, add: bool) {
        for f in 0..self.kinds.len() {
            let Some(k) = key(self.kinds[f], values.get(f).and_then(|v| v.as_deref())) else { continue };
            let h = self.hash(&k);
            tally(&mut self.counts[f], &mut self.filled[f], h, add);
            if let Some(l) = local_part(&k) {
                let h = self.hash(l);
                if let Some((counts, filled)) = &mut self.local[f] {
                    tally(counts, filled, h, add);
                }
            }
        }
    }

    /// How many of the records hold `value` in field `f` (at least the one it agrees with); with
    /// `local`, how many hold its local part (emails only).
    pub fn share(&self, f: usize, value: Option<&str>, local: bool) -> Option<Share> {
        let k = key(*self.kinds.get(f)?, value)?;
        let (counts, filled, k) = if local {
            let (counts, filled) = self.local[f].as_ref()?;
            (counts, *filled, local_part(&k)?)
        } else {
            (&self.counts[f], self.filled[f], k.as_str())
        };
        let holders = counts.get(&self.hash(k)).copied().unwrap_or(0).max(1);
        Some(Share { holders, of: filled.max(holders) })
    }
}

fn tally(counts: &mut HashMap<u64, u32>, filled: &mut u32, h: u64, add: bool) {
    if add {
        *counts.entry(h).or_insert(0) += 1;
        *filled += 1;
    } else if let Some(n) = counts.get_mut(&h) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(&h);
        }
        *filled = filled.saturating_sub(1);
    }
}

/// The weight of agreement on a value with this share, from the model's `m` and `u` of the
/// level. The share replaces `u` where it tells more: a value rarer than the model could
/// measure (only a large index can show that), or one that several records hold and more often
/// than the model's average. A value held once in a small index says nothing beyond the model.
/// Agreement never weighs less than nothing (a placeholder everyone holds is no evidence
/// either way), nor more than `cap`.
pub fn exact_weight(m: f64, u_model: f64, cap: f64, share: Share) -> Option<f64> {
    let u = f64::from(share.holders) / f64::from(share.of.max(1));
    let rarer = u < u_model;
    let commoner = share.holders >= 2 && u > u_model;
    if !(rarer || commoner) {
        return None;
    }
    let w = (m / u).log2();
    Some(w.min(cap).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: &[&str]) -> Values {
        v.iter().map(|s| (!s.is_empty()).then(|| s.to_string())).collect()
    }

    #[test]
    fn values_are_counted_by_their_key_and_uncounted() {
        let mut f = Frequencies::new(&[Kind::Email, Kind::Name]);
        f.count(&rec(&["Ann@X.com", "Smith"]), true);
        f.count(&rec(&[" ann@x.com ", "smith"]), true);
        f.count(&rec(&["bob@x.com", ""]), true);
        f.count(&rec(&["ann@y.com", ""]), true);
        assert_eq!(f.share(0, Some("ANN@x.com"), false), Some(Share { holders: 2, of: 4 }));
        assert_eq!(f.share(0, Some("ANN@z.com"), true), Some(Share { holders: 3, of: 4 }), "the local part");
        assert_eq!(f.share(1, Some("SMITH"), false), Some(Share { holders: 2, of: 2 }));
        assert_eq!(f.share(1, Some("SMITH"), true), None, "a name has no local part");
        assert_eq!(f.share(1, Some("  "), false), None, "a blank has no share");
        f.count(&rec(&["bob@x.com", ""]), false);
        assert_eq!(
            f.share(0, Some("bob@x.com"), false),
            Some(Share { holders: 1, of: 3 }),
            "at least the one it agrees with"
        );
    }

    #[test]
    fn rare_values_weigh_more_common_ones_less_and_small_indexes_say_nothing() {
        let (m0, u0) = (0.9, 1e-4);
        // Held once among a million: rarer than 20,000 random pairs could tell.
        let cap = f64::INFINITY;
        let rare = exact_weight(m0, u0, cap, Share { holders: 1, of: 1_000_000 }).unwrap();
        assert!(rare > (m0 / u0).log2() + 6.0, "{rare}");
        assert_eq!(exact_weight(m0, u0, 15.0, Share { holders: 1, of: 1_000_000 }), Some(15.0), "capped");
        // A placeholder a thousand records share: close to nothing, never below nothing.
        let common = exact_weight(m0, u0, cap, Share { holders: 1000, of: 100_000 }).unwrap();
        assert!((common - 6.5).abs() < 0.1, "{common}");
        assert_eq!(exact_weight(m0, 0.001, cap, Share { holders: 900, of: 1000 }), Some(0.0));
        // Once among sixty: as rare as anything sixty records can show — the model stands.
        assert_eq!(exact_weight(m0, u0, cap, Share { holders: 1, of: 60 }), None);
    }
}
