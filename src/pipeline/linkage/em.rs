//! Fellegi–Sunter weights estimated from the candidate pairs themselves, without labels: the
//! expectation–maximisation of a two-class mixture (pairs that are the same record, pairs that
//! are not) with fields independent within each class. A field blank on either side (`None`)
//! says nothing about a pair and takes no part.
//!
//! For each field and level, `m` is how often a true match agrees at that level and `u` how
//! often a non-match does; a level's weight is `log2(m / u)`, and a pair's score is the sum of
//! its fields' weights (plus the prior `log2(λ / (1 − λ))`).

/// One pair's comparison: each field's level, or `None` where a side is blank.
pub type Vector = Vec<Option<usize>>;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Model {
    /// The prior share of matches among pairs (see `link::prior_over_all_pairs`): of a source
    /// record and a destination record.
    pub lambda: f64,
    /// The prior of two records of the same source (a record and one the run created before
    /// it); `None`: as `lambda`.
    #[serde(default)]
    pub lambda_within: Option<f64>,
    /// Per field, per level: P(level | match).
    pub m: Vec<Vec<f64>>,
    /// Per field, per level: P(level | non-match).
    pub u: Vec<Vec<f64>>,
    /// Rounds EM ran before it settled (or the cap).
    pub rounds: usize,
    /// What it weighs: each compared field with its comparison (`email:email`). A later run of
    /// the object links by the same model while these stay as they are.
    #[serde(default)]
    pub compared: Vec<String>,
}

/// Keeps probabilities off 0 and 1, so that a level never seen in one class is a strong
/// weight, not an infinite one.
const FLOOR: f64 = 1e-4;
const MAX_ROUNDS: usize = 200;
const SETTLED: f64 = 1e-7;

impl Model {
    /// A start that says "closer levels are likelier among matches": EM moves from there, and
    /// it stands where there are too few pairs to learn from.
    pub fn start(levels: &[usize]) -> Self {
        let spread = |n: usize, toward_first: bool| -> Vec<f64> {
            if toward_first {
                // Matches mostly agree; the rest spread over the other levels.
                let rest = (n.max(2) - 1) as f64;
                return (0..n).map(|l| if l == 0 { 0.85 } else { 0.15 / rest }).collect();
            }
            let raw: Vec<f64> =
                (0..n).map(|l| if toward_first { 0.5f64.powi(l as i32) } else { 2f64.powi(l as i32) }).collect();
            let sum: f64 = raw.iter().sum();
            raw.into_iter().map(|x| x / sum).collect()
        };
        Self {
            lambda: 0.1,
            lambda_within: None,
            m: levels.iter().map(|&n| spread(n, true)).collect(),
            u: levels.iter().map(|&n| spread(n, false)).collect(),
            rounds: 0,
            compared: Vec::new(),
        }
    }

    /// The weight of each field's each level: `log2(m / u)`.
    pub fn weights(&self) -> Vec<Vec<f64>> {
        self.m.iter().zip(&self.u).map(|(m, u)| m.iter().zip(u).map(|(m, u)| (m / u).log2()).collect()).collect()
    }

    /// A partial agreement is weaker evidence than exact agreement: level `l` weighs at most
    /// the exact level's weight less `l` points (half the odds a level). Where the data say
    /// otherwise it is noise — a level too rare among non-matches for its share to be measured
    /// (`u` floored), as in a small export — and the cap stands instead. Without it, on 60 rows,
    /// `john.smith@gmail` and `john.smith@acme` weighed as one address, and two John Smiths were
    /// merged.
    pub fn monotone(mut self) -> Self {
        for (m, u) in self.m.iter_mut().zip(&self.u) {
            let Some(exact) = m.first().zip(u.first()).map(|(m, u)| (m / u).log2()) else { continue };
            for l in 1..m.len().min(u.len()) {
                let cap = exact - l as f64;
                if (m[l] / u[l]).log2() > cap {
                    m[l] = u[l] * 2f64.powf(cap);
                }
            }
        }
        self
    }

    /// A pair's score: the prior and every compared field's weight.
    pub fn score(&self, v: &[Option<usize>]) -> f64 {
        self.score_with(self.lambda, v)
    }

    /// A pair's score under another prior (see `lambda_within`).
    pub fn score_with(&self, lambda: f64, v: &[Option<usize>]) -> f64 {
        points_of(lambda)
            + v.iter().enumerate().filter_map(|(f, l)| l.map(|l| (self.m[f][l] / self.u[f][l]).log2())).sum::<f64>()
    }

    /// The probability that a pair is a match, under this model.
    pub fn match_probability(&self, v: &[Option<usize>]) -> f64 {
        let s = self.score(v);
        1.0 / (1.0 + 2f64.powf(-s))
    }
}

/// Estimates the model from the pairs by EM, from [`Model::start`]; `levels[f]` is how many
/// levels field `f` has. A level outside its field's range is an error of the caller: it is
/// ignored like a blank.
/// A probability as the points (log2 of the odds) it adds to a score: a prior of 0.001 is −10.
pub fn points_of(p: f64) -> f64 {
    (p / (1.0 - p)).log2()
}

pub fn estimate(pairs: &[Vector], levels: &[usize]) -> Model {
    run(pairs, levels, None, None)
}

/// Like [`estimate`], holding `m` and/or `u` where given (estimating the rest): `u` measured on
/// random pairs, `m` from EM on pairs where the fields that found them are left out.
pub fn estimate_holding(pairs: &[Vector], levels: &[usize], m: Option<&[Vec<f64>]>, u: Option<&[Vec<f64>]>) -> Model {
    run(pairs, levels, m, u)
}

/// The level shares among `pairs`, each field apart (blanks left out), kept off 0 and 1.
pub fn shares(pairs: &[Vector], levels: &[usize]) -> Vec<Vec<f64>> {
    let mut counts: Vec<Vec<f64>> = levels.iter().map(|&n| vec![0.0; n]).collect();
    for v in pairs {
        for (f, l) in v.iter().enumerate().take(levels.len()) {
            if let Some(l) = l.filter(|l| *l < levels[f]) {
                counts[f][l] += 1.0;
            }
        }
    }
    normalise(counts)
}

fn normalise(counts: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    counts
        .into_iter()
        .map(|c| {
            let total: f64 = c.iter().sum();
            let n = c.len() as f64;
            c.into_iter().map(|x| if total > 0.0 { (x / total).clamp(FLOOR, 1.0 - FLOOR) } else { 1.0 / n }).collect()
        })
        .collect()
}

fn run(pairs: &[Vector], levels: &[usize], fixed_m: Option<&[Vec<f64>]>, fixed_u: Option<&[Vec<f64>]>) -> Model {
    let mut model = Model::start(levels);
    if let Some(m) = fixed_m {
        model.m = m.to_vec();
    }
    if let Some(u) = fixed_u {
        model.u = u.to_vec();
    }
    if pairs.is_empty() {
        return model;
    }
    let fields = levels.len();
    for round in 1..=MAX_ROUNDS {
        // E: each pair's probability of being a match.
        let mut lambda = 0.0;
        let mut m_count: Vec<Vec<f64>> = levels.iter().map(|&n| vec![0.0; n]).collect();
        let mut u_count = m_count.clone();
        for v in pairs {
            let p = model.match_probability(v);
            lambda += p;
            for (f, l) in v.iter().enumerate().take(fields) {
                if let Some(l) = l.filter(|l| *l < levels[f]) {
                    m_count[f][l] += p;
                    u_count[f][l] += 1.0 - p;
                }
            }
        }
        // M: the shares that would produce what E expects.
        let next = Model {
            lambda: (lambda / pairs.len() as f64).clamp(FLOOR, 1.0 - FLOOR),
            lambda_within: None,
            m: fixed_m.map_or_else(|| normalise(m_count), <[Vec<f64>]>::to_vec),
            u: fixed_u.map_or_else(|| normalise(u_count), <[Vec<f64>]>::to_vec),
            rounds: round,
            compared: Vec::new(),
        };
        let moved = (next.lambda - model.lambda)
            .abs()
            .max(next.m.iter().flatten().zip(model.m.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max));
        model = next;
        if moved < SETTLED {
            break;
        }
    }
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_partial_agreement_outweighs_an_exact_one() {
        let model = Model {
            lambda: 0.1,
            lambda_within: None,
            m: vec![vec![0.8, 0.1, 0.05, 0.05]],
            // "close" never seen among non-matches: floored, it would weigh more than "equal".
            u: vec![vec![0.01, FLOOR, 0.05, 0.94]],
            rounds: 0,
            compared: Vec::new(),
        };
        let w = model.clone().monotone().weights();
        assert!((w[0][1] - (w[0][0] - 1.0)).abs() < 1e-9, "{w:?}");
        assert!(w[0][2] <= w[0][0] - 2.0 && w[0][3] <= w[0][0] - 3.0, "{w:?}");
        assert_eq!(model.weights()[0][0], w[0][0], "the closest level is kept");
    }

    use crate::seeded::Rng;

    fn pick(rng: &mut Rng, shares: &[f64]) -> usize {
        let x = rng.unit();
        let mut acc = 0.0;
        for (i, s) in shares.iter().enumerate() {
            acc += s;
            if x < acc {
                return i;
            }
        }
        shares.len() - 1
    }

    #[test]
    fn em_finds_the_weights_that_made_the_pairs() {
        let (m, u, lambda) = (
            [vec![0.90, 0.06, 0.03, 0.01], vec![0.80, 0.15, 0.05], vec![0.95, 0.05]],
            [vec![0.02, 0.05, 0.13, 0.80], vec![0.05, 0.15, 0.80], vec![0.10, 0.90]],
            0.2,
        );
        let levels = [4, 3, 2];
        let mut rng = Rng(7);
        let pairs: Vec<Vector> = (0..20_000)
            .map(|_| {
                let is_match = rng.unit() < lambda;
                (0..3)
                    .map(|f| {
                        // A field blank in one pair in ten: it must not bend the estimate.
                        if rng.unit() < 0.1 {
                            return None;
                        }
                        Some(pick(&mut rng, if is_match { &m[f] } else { &u[f] }))
                    })
                    .collect()
            })
            .collect();
        let model = estimate(&pairs, &levels);
        assert!((model.lambda - lambda).abs() < 0.02, "λ {}", model.lambda);
        for f in 0..3 {
            for l in 0..levels[f] {
                assert!((model.m[f][l] - m[f][l]).abs() < 0.03, "m[{f}][{l}] {} vs {}", model.m[f][l], m[f][l]);
                assert!((model.u[f][l] - u[f][l]).abs() < 0.03, "u[{f}][{l}] {} vs {}", model.u[f][l], u[f][l]);
            }
        }
        // Agreement weighs for a match, disagreement against.
        let w = model.weights();
        assert!(w[0][0] > 4.0 && w[0][3] < -4.0, "{w:?}");
        assert!(model.match_probability(&[Some(0), Some(0), Some(0)]) > 0.99);
        assert!(model.match_probability(&[Some(3), Some(2), Some(1)]) < 0.01);
        assert!(model.rounds < 200, "settled");
    }

    #[test]
    fn blanks_say_nothing_and_no_pairs_give_the_start() {
        let levels = [2, 2];
        assert_eq!(estimate(&[], &levels), Model::start(&levels));
        let model = estimate(&[vec![Some(0), None], vec![Some(1), None], vec![None, None]], &levels);
        let blank_only = model.match_probability(&[None, None]);
        assert!((blank_only - model.lambda).abs() < 1e-9, "a pair with nothing compared is the prior");
        assert!(model.m.iter().flatten().chain(model.u.iter().flatten()).all(|p| p.is_finite() && *p > 0.0));
    }
}
