//! Linking source records to destination records by the weight of evidence (issue #15):
//! candidates from several blocking keys at once (never all pairs), each pair compared field by
//! field, Fellegi–Sunter weights estimated by EM over the candidate pairs, then two thresholds —
//! link above the upper one when the best candidate clearly beats the runner-up and no other
//! source record took it (one-to-one), hold for review between them, create below.

use super::compare::{self, Kind};
use super::em::{self, Model, Vector};
use std::collections::HashMap;

/// A record as the linker sees it: one value per compared field, in the linker's field order.
pub type Values = Vec<Option<String>>;
/// A record's values as their comparisons read them (see [`compare::prepare`]).
pub type Prepared = Vec<Option<compare::Prepared>>;

/// A blocking key value shared by more records than this says little (a common surname, a
/// placeholder email): it gives no candidates.
pub const CROWDED: usize = 64;
/// Random pairs compared to measure how often non-matches agree.
const RANDOM_PAIRS: usize = 20_000;
/// A key held by at most this many records (in training, the sample is among them: a record
/// and its one copy) teaches its rule's EM; see [`Linker::found`].
const LEARN_HOLDERS: usize = 2;
/// Fewer candidate pairs than this are too few to estimate `m` from: the prior stands.
const MIN_PAIRS: usize = 500;

#[derive(Debug, Clone)]
pub struct Linker {
    pub kinds: Vec<Kind>,
    /// Each block: the fields whose keys together form one blocking key.
    pub blocks: Vec<Vec<usize>>,
    /// Link at or above this match probability…
    pub link_above: f64,
    /// …hold for review at or above this one, create below.
    pub review_above: f64,
    /// The best candidate must beat the runner-up by this many bits of weight to be linked.
    pub margin: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The destination record, and the match probability.
    Link(usize, f64),
    /// Ranked candidates with their probabilities, for an operator.
    Review(Vec<(usize, f64)>),
    Create,
}

/// One field's value as a blocking key: normalised as its comparison normalises it.
pub fn key(kind: Kind, value: Option<&str>) -> Option<String> {
    let v = value.map(str::trim).filter(|v| !v.is_empty())?;
    let k = match kind {
        Kind::Exact | Kind::Email => v.to_lowercase(),
        Kind::Name => compare::name_key(v),
        Kind::Digits => v.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect(),
        // The last ten digits: a country code written or not is the same number.
        Kind::Phone => {
            let d = compare::digits(v);
            d[d.len().saturating_sub(10)..].to_string()
        }
        Kind::Company => compare::company_key(v),
        Kind::Domain => compare::domain_key(v),
    };
    (!k.is_empty()).then_some(k)
}

/// EM's `λ` is the share of matches among the candidate pairs, which blocking chose for being
/// alike; weighed with every field's weight it would count that likeness twice. The prior of a
/// pair is the share of matches among all pairs: as many matches, over `source × dest` pairs.
fn prior_over_all_pairs(lambda: f64, candidates: usize, source: usize, dest: usize) -> f64 {
    let all = (source as f64 * dest as f64).max(1.0);
    (lambda * candidates as f64 / all).clamp(1e-12, 0.5)
}

/// A name's Double Metaphone code, from its letters with accents folded away (José → JOSE):
/// the encoder reads ASCII only. `None` for a name with no Latin letters (王), which keeps its
/// own key, and — never expected — if the encoder fails on a value.
fn phonetic(name: &str) -> Option<String> {
    use rphonetic::Encoder as _;
    use unicode_normalization::UnicodeNormalization as _;
    let ascii: String = name.nfd().filter(|c| c.is_ascii_alphabetic() || *c == ' ').collect();
    if ascii.trim().is_empty() {
        return None;
    }
    let code = std::panic::catch_unwind(|| rphonetic::DoubleMetaphone::default().encode(&ascii)).ok()?;
    (!code.is_empty()).then_some(code)
}

/// The looser form of a blocking key part: a name's phonetic code, an email's local part.
fn loose_key(kind: Kind, key: &str) -> String {
    match kind {
        Kind::Name => phonetic(key).unwrap_or_else(|| key.to_string()),
        Kind::Email => key.split('@').next().unwrap_or(key).to_string(),
        _ => key.to_string(),
    }
}

impl Linker {
    /// A record's blocking keys: each block's fields' keys joined, and a looser variant where a
    /// block has names (their phonetic codes: Micheal meets Michael) or emails (the local part:
    /// the same person at another employer). A block of names only ignores their order (a
    /// first and last name swapped meet). A blank part gives no key.
    pub fn block_keys(&self, r: &Values) -> Vec<(usize, String)> {
        let mut out = Vec::with_capacity(self.blocks.len() * 2);
        for (b, fields) in self.blocks.iter().enumerate() {
            let names_only = fields.iter().all(|&f| self.kinds[f] == Kind::Name);
            let value = |f: usize| r.get(f).and_then(|v| v.as_deref());
            let Some(mut exact) = fields.iter().map(|&f| key(self.kinds[f], value(f))).collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let mut loose: Vec<String> = fields.iter().zip(&exact).map(|(&f, k)| loose_key(self.kinds[f], k)).collect();
            if names_only {
                exact.sort();
                loose.sort();
            }
            let (exact, loose) = (exact.join("\u{1f}"), loose.join("\u{1f}"));
            if loose != exact && !loose.is_empty() {
                out.push((b, format!("~{loose}")));
            }
            out.push((b, exact));
        }
        out
    }

    /// Every (source, destination) pair that shares at least one blocking key, once.
    pub fn candidates(&self, source: &[Values], dest: &[Values]) -> Vec<(usize, usize)> {
        self.found(source, dest).into_iter().map(|(p, _)| p).collect()
    }

    /// [`Linker::candidates`], each pair with the rules that found it through a key only it
    /// holds (bit `b` for block `b`; blocks past the 64th find pairs but are not told apart). A
    /// crowded key finds nothing.
    fn found(&self, source: &[Values], dest: &[Values]) -> Vec<((usize, usize), u64)> {
        let mut index: HashMap<(usize, String), Vec<usize>> = HashMap::new();
        for (d, r) in dest.iter().enumerate() {
            for k in self.block_keys(r) {
                index.entry(k).or_default().push(d);
            }
        }
        let mut pairs = Vec::new();
        let mut found: Vec<(usize, u64)> = Vec::new();
        for (s, r) in source.iter().enumerate() {
            found.clear();
            for k in self.block_keys(r) {
                let Some(ds) = index.get(&k).filter(|ds| ds.len() <= CROWDED) else { continue };
                // A rule learns only from the pairs it found through a key no one else holds:
                // an office's info@ address, a household's phone, a common birth date find
                // pairs of colleagues, couples and strangers that agree on everything the
                // key brings with it, and its EM would take them for the same person.
                let bit = if k.0 < 64 && ds.len() <= LEARN_HOLDERS { 1u64 << k.0 } else { 0 };
                found.extend(ds.iter().map(|&d| (d, bit)));
            }
            found.sort_unstable_by_key(|&(d, _)| d);
            let mut at = 0;
            while at < found.len() {
                let d = found[at].0;
                let mut rules = 0;
                while at < found.len() && found[at].0 == d {
                    rules |= found[at].1;
                    at += 1;
                }
                pairs.push(((s, d), rules));
            }
        }
        pairs
    }

    /// The model, estimated the way blocking calls for: `u` from seeded random pairs (nearly all
    /// non-matches); each field's `m` from EM over the pairs of every blocking rule that does not
    /// use that field (a rule's own fields agree on all its pairs, match or not, and would say
    /// nothing); then `λ` over every candidate pair. A field no rule gives enough pairs for
    /// keeps the prior `m` (agreement likely among matches).
    ///
    /// `rules`: each pair's rules that found it, through a key few enough records share (a
    /// crowded key — a company of thousands — found nothing, and the pairs that merely share it,
    /// found by other rules, would make that rule's EM see every pair as a match).
    fn estimate(
        &self,
        (source, dest): (&[Prepared], &[Values]),
        pairs: &[(usize, usize)],
        rules: &[u64],
        vectors: &[Vector],
    ) -> Model {
        let levels: Vec<usize> = self.kinds.iter().map(|k| k.levels()).collect();
        let mut u = em::shares(&self.random_pairs(source, dest), &levels);
        self.measure_exact_agreement(&mut u, dest);
        let mut m_sum: Vec<Vec<f64>> = levels.iter().map(|&n| vec![0.0; n]).collect();
        let mut m_rules = vec![0usize; levels.len()];
        for (b, fields) in self.blocks.iter().enumerate().take(64) {
            let sub: Vec<Vector> = rules
                .iter()
                .zip(vectors)
                .filter(|(r, _)| *r & (1 << b) != 0)
                .map(|(_, v)| v.iter().enumerate().map(|(f, l)| if fields.contains(&f) { None } else { *l }).collect())
                .collect();
            // Too few pairs to learn from: EM would fit their noise.
            if sub.len() < MIN_PAIRS {
                continue;
            }
            let model_b = em::estimate_holding(&sub, &levels, None, Some(&u));
            for f in (0..levels.len()).filter(|f| !fields.contains(f)) {
                for (acc, m) in m_sum[f].iter_mut().zip(&model_b.m[f]) {
                    *acc += m;
                }
                m_rules[f] += 1;
            }
        }
        let start = em::Model::start(&levels);
        let m: Vec<Vec<f64>> = m_sum
            .into_iter()
            .zip(&m_rules)
            .enumerate()
            .map(
                |(f, (sum, &n))| {
                    if n == 0 { start.m[f].clone() } else { sum.into_iter().map(|x| x / n as f64).collect() }
                },
            )
            .collect();
        let mut model = em::estimate_holding(vectors, &levels, Some(&m), Some(&u));
        model.lambda = prior_over_all_pairs(model.lambda, pairs.len(), source.len(), dest.len());
        model.monotone()
    }

    /// The model a run links by, estimated from a sample of its source against the destination
    /// and against the sample itself (duplicates within the source are pairs too; a record is
    /// never paired with itself). With neither side holding pairs, the prior stands.
    ///
    /// `records`: how many source records the run will decide (the sample is their start). Each
    /// record is weighed against the destination and every record created before it, so the
    /// prior — one record's matches spread over everyone it could be — is taken over
    /// `dest + records` people, not over the sample's own size: a sample of 20,000 would make
    /// a million-record source's chance pairs look fifty times likelier to be one person.
    pub fn train(&self, sample: &[Values], dest: &[Values], records: usize) -> Model {
        let n = dest.len();
        let both: Vec<Values> = dest.iter().chain(sample).cloned().collect();
        let (pairs, rules): (Vec<(usize, usize)>, Vec<u64>) =
            self.found(sample, &both).into_iter().filter(|&((s, d), _)| d < n || d - n > s).unzip();
        let (ours, theirs) = (self.prepare_all(sample), self.prepare_all(&both));
        let vectors: Vec<Vector> = pairs.iter().map(|&(s, d)| self.compare_prepared(&ours[s], &theirs[d])).collect();
        let mut model = self.estimate((&ours, &both), &pairs, &rules, &vectors);
        // The two priors apart: a record against the destination, and against the source's
        // own records (each λ by EM over its own pairs, m and u held).
        let levels: Vec<usize> = self.kinds.iter().map(|k| k.levels()).collect();
        let (mut to_dest, mut within) = (Vec::new(), Vec::new());
        for (&(_, d), v) in pairs.iter().zip(&vectors) {
            if d < n { to_dest.push(v.clone()) } else { within.push(v.clone()) }
        }
        let share = |vs: &[Vector]| em::estimate_holding(vs, &levels, Some(&model.m), Some(&model.u)).lambda;
        let s = sample.len().max(1) as f64;
        if !to_dest.is_empty() {
            model.lambda = (share(&to_dest) * to_dest.len() as f64 / (s * n.max(1) as f64)).clamp(1e-12, 0.5);
        }
        // Duplicate pairs grow with the source, possible pairs with its square: over the whole
        // run a pair of its records is (S − 1) / (N − 1) as likely to be one person as in the sample.
        let pairs_in_sample = (s * (s - 1.0) / 2.0).max(1.0);
        let scale = (s - 1.0).max(1.0) / ((records.max(sample.len()) as f64) - 1.0).max(1.0);
        model.lambda_within = (!within.is_empty())
            .then(|| (share(&within) * within.len() as f64 / pairs_in_sample * scale).clamp(1e-12, 0.5));
        model
    }

    /// How often two different records agree exactly on a field, counted over every pair of
    /// `records` from their values' frequencies rather than over random pairs: 20,000 random
    /// pairs cannot tell a share below 1 in 20,000, and an email or an id only one person has
    /// is far rarer than that. Counting every pair (true duplicates among them, so it errs
    /// toward caution) measures it down to one pair in all. The other levels keep their
    /// random-pair shares, scaled to what is left.
    fn measure_exact_agreement(&self, u: &mut [Vec<f64>], records: &[Values]) {
        for (f, &kind) in self.kinds.iter().enumerate() {
            let mut counts: HashMap<String, u64> = HashMap::new();
            for r in records {
                if let Some(k) = key(kind, r.get(f).and_then(|v| v.as_deref())) {
                    *counts.entry(k).or_default() += 1;
                }
            }
            let n: u64 = counts.values().sum();
            if n < 2 {
                continue;
            }
            let pairs = (n * (n - 1)) as f64;
            let agreeing: f64 = counts.values().map(|&c| (c * (c - 1)) as f64).sum();
            let exact = (agreeing.max(1.0) / pairs).min(u[f][0]);
            let rest: f64 = u[f][1..].iter().sum();
            if rest <= 0.0 {
                continue;
            }
            let scale = (1.0 - exact) / rest;
            u[f][0] = exact;
            for x in &mut u[f][1..] {
                *x *= scale;
            }
        }
    }

    /// Comparisons of seeded random (source, destination) pairs: nearly all non-matches, so
    /// their level shares are the `u` probabilities.
    fn random_pairs(&self, source: &[Prepared], dest: &[Values]) -> Vec<Vector> {
        if source.is_empty() || dest.is_empty() {
            return Vec::new();
        }
        let mut state: u64 = 0x5eed_1234_abcd;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        (0..RANDOM_PAIRS)
            .map(|_| {
                let s = &source[next(source.len())];
                self.compare_prepared(s, &self.prepare(&dest[next(dest.len())]))
            })
            .collect()
    }

    fn prepare_all(&self, records: &[Values]) -> Vec<Prepared> {
        records.iter().map(|r| self.prepare(r)).collect()
    }

    /// Each field's level. Two name fields that disagree both ways round but agree crosswise
    /// (first and last name swapped, as exports do) count as agreeing one level less closely.
    pub fn compare(&self, a: &Values, b: &Values) -> Vector {
        self.compare_prepared(&self.prepare(a), &self.prepare(b))
    }

    /// A record's compared values, each as its comparison reads it.
    pub fn prepare(&self, r: &Values) -> Prepared {
        self.kinds.iter().enumerate().map(|(f, &k)| compare::prepare(k, r.get(f).and_then(|v| v.as_deref()))).collect()
    }

    /// [`Linker::compare`] of two prepared records.
    pub fn compare_prepared(&self, a: &Prepared, b: &Prepared) -> Vector {
        let mut levels = Vector::with_capacity(self.kinds.len());
        self.compare_into(a, b, &mut levels);
        levels
    }

    /// [`Linker::compare_prepared`] into a vector the caller keeps (one per record ranked, not
    /// one per pair).
    pub fn compare_into(&self, a: &Prepared, b: &Prepared, levels: &mut Vector) {
        let level = |kind: Kind, x: &Option<compare::Prepared>, y: &Option<compare::Prepared>| {
            compare::level_of(kind, x.as_ref()?, y.as_ref()?)
        };
        levels.clear();
        levels.extend(self.kinds.iter().enumerate().map(|(f, &k)| match (a.get(f), b.get(f)) {
            (Some(x), Some(y)) => level(k, x, y),
            _ => None,
        }));
        let mut names = (0..self.kinds.len()).filter(|&f| self.kinds[f] == Kind::Name);
        if let (Some(x), Some(y), None) = (names.next(), names.next(), names.next())
            && a.len() > x.max(y)
            && b.len() > x.max(y)
        {
            let far = |l: Option<usize>| l.is_some_and(|l| l >= 2);
            if far(levels[x]) && far(levels[y]) {
                let (sx, sy) = (level(Kind::Name, &a[x], &b[y]), level(Kind::Name, &a[y], &b[x]));
                // Crosswise, one name close and the other at least similar (a swap and a typo).
                if let (Some(lx), Some(ly)) = (sx, sy)
                    && lx.max(ly) <= 2
                    && lx.min(ly) <= 1
                {
                    let swapped = |l: usize| (l + 1).min(2);
                    levels[x] = levels[x].map(|l| l.min(swapped(lx)));
                    levels[y] = levels[y].map(|l| l.min(swapped(ly)));
                }
            }
        }
    }

    /// Decides every source record; the model estimated from the candidate pairs comes with it.
    pub fn link(&self, source: &[Values], dest: &[Values]) -> (Model, Vec<Decision>) {
        let (pairs, rules): (Vec<(usize, usize)>, Vec<u64>) = self.found(source, dest).into_iter().unzip();
        let (ours, theirs) = (self.prepare_all(source), self.prepare_all(dest));
        let vectors: Vec<Vector> = pairs.iter().map(|&(s, d)| self.compare_prepared(&ours[s], &theirs[d])).collect();
        let model = self.estimate((&ours, dest), &pairs, &rules, &vectors);
        let mut ranked: Vec<Vec<(usize, f64)>> = vec![Vec::new(); source.len()];
        for (&(s, d), v) in pairs.iter().zip(&vectors) {
            ranked[s].push((d, model.score(v)));
        }
        for r in &mut ranked {
            r.sort_by(|a, b| b.1.total_cmp(&a.1));
        }
        // One-to-one: the surest links first; a destination record taken is no candidate after.
        let mut order: Vec<usize> = (0..source.len()).collect();
        order.sort_by(|&a, &b| {
            let top = |s: usize| ranked[s].first().map_or(f64::NEG_INFINITY, |c| c.1);
            top(b).total_cmp(&top(a))
        });
        let probability = |score: f64| 1.0 / (1.0 + 2f64.powf(-score));
        let mut taken = vec![false; dest.len()];
        let mut decisions = vec![Decision::Create; source.len()];
        for s in order {
            let open: Vec<(usize, f64)> = ranked[s].iter().copied().filter(|(d, _)| !taken[*d]).collect();
            let Some(&(best, score)) = open.first() else { continue };
            let clear = open.get(1).is_none_or(|(_, runner)| score - runner >= self.margin);
            // A candidate another record took makes this one doubtful too.
            let contested = ranked[s].first().is_some_and(|(d, _)| taken[*d]);
            let p = probability(score);
            decisions[s] = if p >= self.link_above && clear && !contested {
                taken[best] = true;
                Decision::Link(best, p)
            } else if p >= self.review_above {
                Decision::Review(open.iter().take(5).map(|&(d, sc)| (d, probability(sc))).collect())
            } else {
                Decision::Create
            };
        }
        (model, decisions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: &[&str]) -> Values {
        v.iter().map(|s| (!s.is_empty()).then(|| s.to_string())).collect()
    }

    fn linker() -> Linker {
        Linker {
            kinds: vec![Kind::Name, Kind::Name, Kind::Email, Kind::Phone, Kind::Digits],
            blocks: vec![vec![2], vec![3], vec![1, 4], vec![0, 1]],
            link_above: 0.99,
            review_above: 0.5,
            margin: 3.0,
        }
    }

    /// A destination of distinct people, and a source of the same people with export damage.
    fn people() -> (Vec<Values>, Vec<Values>) {
        let firsts = ["ann", "bob", "cy", "di", "ed", "flo", "gus", "hal", "ivy", "jo", "kai", "lu"];
        let lasts = ["lee", "kowalski", "smith", "nguyen", "garcia", "okafor", "berg", "rossi"];
        let mut dest = Vec::new();
        for (i, f) in firsts.iter().enumerate() {
            for (j, l) in lasts.iter().enumerate() {
                let n = i * lasts.len() + j;
                dest.push(rec(&[
                    f,
                    l,
                    &format!("{f}.{l}{n}@x.example"),
                    &format!("(415) 555-{:04}", 1000 + n),
                    &format!("19{:02}-0{}-1{}", 50 + n % 40, 1 + n % 9, n % 10),
                ]));
            }
        }
        let source = dest
            .iter()
            .enumerate()
            .map(|(n, r)| {
                let mut r = r.clone();
                match n % 4 {
                    0 => r[2] = r[2].as_ref().map(|e| e.to_uppercase()), // case
                    1 => r[3] = None,                                    // a phone missing
                    2 => r[1] = r[1].as_ref().map(|l| format!("{l}e")),  // a typo in the surname
                    _ => r[2] = r[2].as_ref().map(|e| e.replace("x.example", "y.example")), // another domain
                }
                r
            })
            .collect();
        (source, dest)
    }

    #[test]
    fn damaged_copies_link_to_their_originals_one_to_one() {
        let (source, dest) = people();
        let (model, decisions) = linker().link(&source, &dest);
        let linked: Vec<usize> = decisions
            .iter()
            .enumerate()
            .filter_map(|(s, d)| match d {
                Decision::Link(to, _) => Some((s, *to)),
                _ => None,
            })
            .map(|(s, to)| {
                assert_eq!(s, to, "source {s} linked to the wrong person {to}");
                to
            })
            .collect();
        assert!(
            linked.len() as f64 >= 0.95 * source.len() as f64,
            "{} of {} linked; {model:?}",
            linked.len(),
            source.len()
        );
        let mut unique = linked.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), linked.len(), "one-to-one");
    }

    #[test]
    fn strangers_are_created_and_a_shared_value_alone_does_not_link() {
        let (_, dest) = people();
        // New people; one shares a phone with someone in the destination (a household, an office).
        let source = vec![
            rec(&["zed", "quinn", "zed.q@new.example", "(212) 555-0000", "1971-02-03"]),
            rec(&["yara", "holm", "yara@new.example", "(415) 555-1000", "1982-07-19"]),
        ];
        let (_, decisions) = linker().link(&source, &dest);
        assert_eq!(decisions[0], Decision::Create);
        assert!(!matches!(decisions[1], Decision::Link(..)), "{:?}", decisions[1]);
    }

    #[test]
    fn two_equally_good_candidates_go_to_review_not_to_a_guess() {
        let dest = vec![
            rec(&["ann", "lee", "", "(415) 555-2671", ""]),
            rec(&["ann", "lee", "", "(415) 555-2671", ""]),
            rec(&["bob", "ray", "bob@x.example", "(415) 555-9999", "1990-01-01"]),
        ];
        let source = vec![rec(&["ann", "lee", "", "415 555 2671", ""])];
        let l = Linker { link_above: 0.5, review_above: 0.1, ..linker() };
        let (_, decisions) = l.link(&source, &dest);
        assert!(matches!(&decisions[0], Decision::Review(c) if c.len() == 2), "{:?}", decisions[0]);
    }

    #[test]
    fn swapped_names_and_spelling_variants_still_meet() {
        let l = linker();
        let a = rec(&["Michael", "Jones", "m.jones@old.example", "", ""]);
        let b = rec(&["Jones", "Micheal", "M.Jones@new.example", "", ""]);
        let (ka, kb) = (l.block_keys(&a), l.block_keys(&b));
        assert!(ka.iter().any(|k| kb.contains(k)), "{ka:?} / {kb:?}");
        // Compared crosswise: one level less close than in place (equal → close, close → similar).
        let levels = l.compare(&a, &b);
        assert_eq!((levels[0], levels[1]), (Some(2), Some(1)), "{levels:?}");
        // Swapped, and one of them mistyped: still not two different names.
        let d = rec(&["Jnoes", "Michael", "", "", ""]);
        assert_eq!(&l.compare(&a, &d)[..2], &[Some(1), Some(2)]);
        // Different people are not made alike by it.
        let c = rec(&["Ann", "Lee", "", "", ""]);
        assert_eq!(&l.compare(&a, &c)[..2], &[Some(3), Some(3)]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 400, ..Default::default() })]
        /// Whatever an export holds — any script, marks, controls, digits — comparing and
        /// blocking give an answer, never a panic, and a record always meets itself.
        #[test]
        fn any_values_compare_and_block_without_panic(
            v in proptest::collection::vec(proptest::option::of("\\PC{0,14}|[0-9 ()+.-]{0,14}|[a-zA-Zéëñ .@-]{0,14}"), 5),
            w in proptest::collection::vec(proptest::option::of("\\PC{0,14}"), 5),
        ) {
            let l = linker();
            let levels = l.compare(&v, &w);
            proptest::prop_assert_eq!(levels.len(), 5);
            let mine = l.block_keys(&v);
            let _ = l.block_keys(&w);
            let found = l.candidates(std::slice::from_ref(&v), std::slice::from_ref(&v));
            proptest::prop_assert_eq!(found.is_empty(), mine.is_empty());
        }
    }

    #[test]
    fn the_prior_of_two_source_records_shrinks_as_the_source_grows() {
        let (source, dest) = people();
        let l = linker();
        let with_dest = l.train(&source, &dest, source.len());
        // A source record against a destination record: about one match among the destination.
        assert!(with_dest.lambda > 0.2 / dest.len() as f64 && with_dest.lambda < 5.0 / dest.len() as f64);
        // Ten people given twice in one source.
        let mut twice = source.clone();
        twice.extend(dest[..10].iter().cloned());
        let small = l.train(&twice, &[], twice.len()).lambda_within.expect("pairs within the source");
        let large = l.train(&twice, &[], twice.len() * 50).lambda_within.expect("pairs within the source");
        let n = twice.len() as f64;
        assert!((small / large - (50.0 * n - 1.0) / (n - 1.0)).abs() < 1e-6 * small / large, "{small} {large}");
    }

    #[test]
    fn names_in_any_script_have_keys_and_never_panic() {
        assert_eq!(phonetic("josé"), phonetic("jose"));
        assert_eq!(phonetic("zoë"), phonetic("zoe"));
        assert_eq!(phonetic("王"), None);
        let l = linker();
        for name in ["JOSÉ", "Zoë", "García", "Björn", "王伟", "ǅemal", "Ñúñez", "a\u{301}"] {
            let r = rec(&[name, name, "", "", ""]);
            assert!(!l.block_keys(&r).is_empty(), "{name}");
        }
        // No letters at all: no name to block on, and no panic.
        assert!(l.block_keys(&rec(&["😀", "42", "", "", ""])).is_empty());
    }

    #[test]
    fn a_rule_finds_pairs_only_through_keys_few_records_share() {
        // Everyone works at Acme: every pair shares the company, but it finds no one, and its
        // rule learns nothing from pairs the email found.
        let l = Linker { kinds: vec![Kind::Email, Kind::Company], blocks: vec![vec![0], vec![1]], ..linker() };
        let dest: Vec<Values> = (0..100).map(|n| rec(&[&format!("p{n}@x.example"), "Acme Inc"])).collect();
        let source = vec![rec(&["P7@x.example", "ACME"]), rec(&["nobody@y.example", "Acme"])];
        assert_eq!(l.found(&source, &dest), vec![((0, 7), 0b01)]);
        // Three at Acme: the company finds them all, but a key others hold too teaches nothing.
        let three = &dest[..3];
        assert_eq!(
            l.found(&source, three),
            vec![((0, 0), 0), ((0, 1), 0), ((0, 2), 0), ((1, 0), 0), ((1, 1), 0), ((1, 2), 0)]
        );
        let one = &dest[7..8];
        assert_eq!(l.found(&source, one), vec![((0, 0), 0b11), ((1, 0), 0b10)]);
    }

    #[test]
    fn exact_agreement_is_measured_below_what_random_pairs_can_tell() {
        let l = Linker { kinds: vec![Kind::Email, Kind::Name], blocks: vec![vec![0]], ..linker() };
        // 1,000 people, each their own email; two first names between them.
        let records: Vec<Values> =
            (0..1000).map(|n| rec(&[&format!("p{n}@x.example"), if n % 2 == 0 { "ann" } else { "bob" }])).collect();
        let mut u = vec![vec![0.01, 0.01, 0.01, 0.97], vec![0.5, 0.1, 0.1, 0.3]];
        l.measure_exact_agreement(&mut u, &records);
        assert!(u[0][0] <= 1.0 / (1000.0 * 999.0) + 1e-12, "one pair at most: {}", u[0][0]);
        assert!((u[0].iter().sum::<f64>() - 1.0).abs() < 1e-9, "{:?}", u[0]);
        // Half the pairs share a first name: nearly what random pairs said, kept.
        assert!((u[1][0] - 0.4995).abs() < 1e-3, "{:?}", u[1]);
    }

    #[test]
    fn blocking_keys_ignore_formatting_and_skip_blanks() {
        assert_eq!(key(Kind::Phone, Some("+1 (415) 555-2671")), key(Kind::Phone, Some("415.555.2671")));
        assert_eq!(key(Kind::Phone, Some("415.555.2671 ext. 12")), key(Kind::Phone, Some("4155552671")));
        assert_eq!(key(Kind::Email, Some(" Ann@X.com ")), Some("ann@x.com".into()));
        assert_eq!(key(Kind::Company, Some("ABC, Inc.")), Some("abc".into()));
        assert_eq!(key(Kind::Name, Some("  ")), None);
        let l = linker();
        let a = rec(&["ann", "", "", "", ""]);
        assert!(
            l.candidates(std::slice::from_ref(&a), std::slice::from_ref(&a)).is_empty(),
            "a key with a blank part gives no candidates"
        );
    }
}
