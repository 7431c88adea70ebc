//! The records one object's source records may be linked to during a run: the destination's (as
//! scanned when the object starts) and those the run creates, each under its blocking keys, with
//! the model that weighs a pair. The batch asks it for a record's ranked candidates and a verdict.
//!
//! One-to-one: a destination record that was there before Cutover and that a source record
//! already feeds (an earlier run linked it, or a record of this batch does) is taken — a second
//! source record as like it is held for review, never merged in silently. A record Cutover
//! created is a cluster of the source's own duplicates: later records as like it fold into it. A
//! record held for review is in no cluster, so a doubtful link never chains people together.

use super::compare::Kind;
use super::em::{Model, Vector, points_of};
use super::frequency::{Frequencies, Share, exact_weight};
use super::link::{CROWDED, Prepared, Values};
use super::setup::LinkagePlan;
use foldhash::{HashMap, HashMapExt};
use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Arc;

/// Who an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A destination record.
    Dest(String),
    /// A record of the batch being decided (its position), about to be created.
    Lead(usize),
    /// A record of an earlier batch that was not written after all.
    Gone,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub holder: Holder,
    pub values: Values,
    /// The values as their comparisons read them, prepared once.
    prepared: Prepared,
    /// A source record of this object feeds it (it is the destination record of one).
    pub fed: bool,
    /// Cutover created it: the source's own duplicates may fold into it.
    pub created: bool,
    /// The source record an earlier run wrote into it (the first, where several did).
    pub fed_by: Option<String>,
}

/// A candidate of one record: the entry, the pair's score (points), each field's level, and
/// the share of the records holding the value where that share set an exact agreement's weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub entry: usize,
    pub score: f64,
    pub levels: Vector,
    pub weights: Vec<Option<f64>>,
    pub shares: Vec<Option<Share>>,
    /// A name field only "similar" whose values are no spelling of one name (`Jesús`,
    /// `Jessica`: more than one edit, not close, not an initial, not so crosswise).
    pub name_apart: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Sure enough, clearly ahead of the runner-up, and not another source record's.
    Link { best: Candidate, runner_up: Option<Candidate> },
    /// An operator decides: why, and the ranked candidates.
    Review { why: String, ranked: Vec<Candidate> },
    /// Nobody likely enough (the best candidates, for the audit log).
    Create(Vec<Candidate>),
}

pub struct LinkIndex {
    pub plan: Arc<LinkagePlan>,
    pub model: Model,
    entries: Vec<Entry>,
    by_dest: HashMap<String, usize>,
    blocks: HashMap<(usize, String), Vec<usize>>,
    /// Entries of the batch being decided (holder `Lead`).
    batch: Vec<usize>,
    /// How many entries (not gone) hold each value.
    frequencies: Frequencies,
    /// The model's weights, per field and level.
    weights: Vec<Vec<f64>>,
    /// Pairs compared so far.
    compared: Cell<u64>,
    /// The prior in points of a pair with a destination record, and with a record Cutover
    /// created (the source's own: see `Model::lambda_within`), worked out once.
    priors: (f64, Option<f64>),
}

/// How many candidates a ranking keeps: a review shows five, a link names its runner-up.
pub const KEPT: usize = 5;

/// The record being decided, prepared once for all its candidates: its values as compared,
/// and how many entries hold each (and each email's local part).
struct Ours {
    prepared: Prepared,
    shares: Vec<Option<Share>>,
    local_shares: Vec<Option<Share>>,
}

impl Ours {
    fn new(index: &LinkIndex, values: &Values) -> Self {
        let kinds = &index.plan.linker.kinds;
        let value = |f: usize| values.get(f).and_then(|v| v.as_deref());
        Self {
            prepared: index.plan.linker.prepare(values),
            shares: (0..kinds.len()).map(|f| index.frequencies.share(f, value(f), false)).collect(),
            local_shares: (0..kinds.len())
                .map(|f| (kinds[f] == Kind::Email).then(|| index.frequencies.share(f, value(f), true)).flatten())
                .collect(),
        }
    }
}

/// A probability from a score in points.
pub fn probability(score: f64) -> f64 {
    1.0 / (1.0 + 2f64.powf(-score))
}

impl LinkIndex {
    pub fn new(plan: Arc<LinkagePlan>, model: Model) -> Self {
        let frequencies = Frequencies::new(&plan.linker.kinds);
        let weights = model.weights();
        let priors = (points_of(model.lambda), model.lambda_within.map(points_of));
        Self {
            plan,
            model,
            entries: Vec::new(),
            by_dest: HashMap::new(),
            blocks: HashMap::new(),
            batch: Vec::new(),
            frequencies,
            weights,
            compared: Cell::new(0),
            priors,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entry(&self, e: usize) -> &Entry {
        &self.entries[e]
    }

    pub fn entry_of(&self, dest_id: &str) -> Option<usize> {
        self.by_dest.get(dest_id).copied()
    }

    /// Adds a record; a destination record already in the index is not added twice.
    pub fn add(&mut self, holder: Holder, values: Values, fed: bool, created: bool) -> usize {
        if let Holder::Dest(d) = &holder
            && let Some(&e) = self.by_dest.get(d)
        {
            return e;
        }
        let e = self.entries.len();
        for key in self.plan.linker.block_keys(&values) {
            self.blocks.entry(key).or_default().push(e);
        }
        match &holder {
            Holder::Dest(d) => {
                self.by_dest.insert(d.clone(), e);
            }
            Holder::Lead(_) => self.batch.push(e),
            Holder::Gone => {}
        }
        if holder != Holder::Gone {
            self.frequencies.count(&values, true);
        }
        let prepared = self.plan.linker.prepare(&values);
        self.entries.push(Entry { holder, values, prepared, fed, created, fed_by: None });
        e
    }

    /// Marks the destination records source records feed (an earlier run's links), which of
    /// them Cutover created, and the source record that feeds each.
    pub fn note_fed(&mut self, fed: impl IntoIterator<Item = (String, bool, String)>) {
        for (dest, created, source_id) in fed {
            if let Some(&e) = self.by_dest.get(&dest) {
                self.entries[e].fed = true;
                self.entries[e].created |= created;
                self.entries[e].fed_by.get_or_insert(source_id);
            }
        }
    }

    /// After the batch's write: each lead written becomes the destination record it was written
    /// to, the others are gone; destination records the batch wrote into are fed from now on,
    /// and hold what was written (indexed anew: a filled-in phone finds candidates from now on,
    /// as a fresh scan would). `written`: (position in the batch, destination id, the compared
    /// fields as written) of every record written.
    pub fn settle_batch(&mut self, written: &[(usize, String, Option<Values>)]) {
        let at: HashMap<usize, &String> = written.iter().map(|(p, d, _)| (*p, d)).collect();
        for e in std::mem::take(&mut self.batch) {
            let Holder::Lead(p) = self.entries[e].holder else { continue };
            match at.get(&p) {
                Some(dest) if !self.by_dest.contains_key(*dest) => {
                    self.entries[e].holder = Holder::Dest((*dest).clone());
                    self.entries[e].fed = true;
                    self.entries[e].created = true;
                    self.by_dest.insert((*dest).clone(), e);
                }
                _ => {
                    self.entries[e].holder = Holder::Gone;
                    self.frequencies.count(&self.entries[e].values, false);
                }
            }
        }
        for (_, dest, values) in written {
            let Some(&e) = self.by_dest.get(dest) else { continue };
            self.entries[e].fed = true;
            if let Some(values) = values
                && *values != self.entries[e].values
            {
                self.reindex(e, values.clone());
            }
        }
    }

    /// The entry of the batch's record at `position` (a record about to be created).
    pub fn entry_of_lead(&self, position: usize) -> Option<usize> {
        self.batch.iter().copied().find(|&e| self.entries[e].holder == Holder::Lead(position))
    }

    /// Also finds entry `e` by the keys of `values`: what a record of the batch is about to
    /// write there (a phone it fills in) — so the records after it in the batch meet it by that
    /// phone, as they would one batch later. Its old keys stay until the batch is settled.
    pub fn also_block(&mut self, e: usize, values: &Values) {
        for key in self.plan.linker.block_keys(values) {
            let list = self.blocks.entry(key).or_default();
            if !list.contains(&e) {
                list.push(e);
            }
        }
    }

    fn reindex(&mut self, e: usize, values: Values) {
        for key in self.plan.linker.block_keys(&self.entries[e].values) {
            if let Some(list) = self.blocks.get_mut(&key) {
                list.retain(|&x| x != e);
            }
        }
        for key in self.plan.linker.block_keys(&values) {
            let list = self.blocks.entry(key).or_default();
            if !list.contains(&e) {
                list.push(e);
            }
        }
        if self.entries[e].holder != Holder::Gone {
            self.frequencies.count(&self.entries[e].values, false);
            self.frequencies.count(&values, true);
        }
        self.entries[e].prepared = self.plan.linker.prepare(&values);
        self.entries[e].values = values;
    }

    /// The entries sharing a blocking key with `values` (keys shared by more than a crowd say
    /// nothing), the best [`KEPT`] of them first: scored against each entry's values as
    /// `current` has them now; an entry `current` has no values for (gone since the scan) is no
    /// candidate. Ties keep the index's order, so every run ranks alike. Only the kept are
    /// written out field by field: a record is compared with dozens.
    pub fn rank(&self, values: &Values, current: &dyn Fn(&Entry) -> Option<Cow<'_, Values>>) -> Vec<Candidate> {
        let ours = Ours::new(self, values);
        let mut top: Vec<Candidate> = Vec::with_capacity(KEPT + 1);
        let mut levels = Vector::with_capacity(self.plan.linker.kinds.len());
        let mut compared = 0;
        for e in self.blocked(values) {
            let entry = &self.entries[e];
            let Some(theirs) = current(entry) else { continue };
            compared += 1;
            // Read anew but unchanged since indexed (nearly always): prepared already.
            let prepared = if std::ptr::eq(&*theirs, &entry.values) || *theirs == entry.values {
                Cow::Borrowed(&entry.prepared)
            } else {
                Cow::Owned(self.plan.linker.prepare(&theirs))
            };
            self.plan.linker.compare_into(&ours.prepared, &prepared, &mut levels);
            let score = self.prior_points(e)
                + (0..levels.len()).filter_map(|f| self.weigh(&ours, f, &levels).map(|w| w.0)).sum::<f64>();
            if top.len() == KEPT && top.last().is_some_and(|last| score <= last.score) {
                continue;
            }
            let at = top.iter().position(|c| c.score < score).unwrap_or(top.len());
            top.insert(at, self.candidate(e, &ours, &levels));
            top.truncate(KEPT);
        }
        self.compared.set(self.compared.get() + compared as u64);
        top
    }

    /// Pairs compared by [`LinkIndex::rank`] so far.
    pub fn pairs_compared(&self) -> u64 {
        self.compared.get()
    }

    /// The entries `values` would be compared with (not gone, as indexed).
    pub fn candidates(&self, values: &Values) -> Vec<usize> {
        self.blocked(values)
    }

    /// A field's weight in a pair at these levels, and the share of records holding the value
    /// when that share set it: exact agreement, and an email's same local part at another
    /// domain, weigh by how many records hold the value (see `frequency`); a partial level stays
    /// below the exact one. `None` for a blank.
    fn weigh(&self, ours: &Ours, f: usize, levels: &Vector) -> Option<(f64, Option<Share>)> {
        let l = levels[f]?;
        let w = self.weights[f][l];
        let share = match l {
            0 => ours.shares[f],
            2 if self.plan.linker.kinds[f] == Kind::Email => ours.local_shares[f],
            _ => return Some((w, None)),
        };
        let cap = if l == 0 { f64::INFINITY } else { self.weights[f][0] - l as f64 };
        match share.and_then(|s| exact_weight(self.model.m[f][l], self.model.u[f][l], cap, s)) {
            Some(tf) => Some((tf, share)),
            None => Some((w, None)),
        }
    }

    /// A pair weighed, field by field, with the prior.
    fn candidate(&self, e: usize, ours: &Ours, levels: &Vector) -> Candidate {
        let (weights, shares): (Vec<Option<f64>>, Vec<Option<Share>>) = (0..levels.len())
            .map(|f| match self.weigh(ours, f, levels) {
                Some((w, share)) => (Some(w), share),
                None => (None, None),
            })
            .unzip();
        let score = self.prior_points(e) + weights.iter().flatten().sum::<f64>();
        let name_apart = self.name_apart(&ours.prepared, &self.entries[e].prepared, levels);
        Candidate { entry: e, score, levels: levels.clone(), weights, shares, name_apart }
    }

    /// The first name field at the "similar" level whose two values are no spelling of one name,
    /// straight or crosswise with the other name field.
    fn name_apart(&self, ours: &Prepared, theirs: &Prepared, levels: &Vector) -> Option<usize> {
        let kinds = &self.plan.linker.kinds;
        let names: Vec<usize> = (0..kinds.len()).filter(|&f| kinds[f] == Kind::Name).collect();
        fn value(p: &Prepared, f: usize) -> Option<&crate::pipeline::linkage::compare::Prepared> {
            p.get(f).and_then(Option::as_ref)
        }
        let close = |f: usize, g: usize| match (value(ours, f), value(theirs, g)) {
            (Some(a), Some(b)) => crate::pipeline::linkage::compare::one_name(a, b),
            _ => true,
        };
        // Jr and Sr: a father and his son of one name.
        fn suffix(p: &Prepared, f: usize) -> Option<&str> {
            p.get(f).and_then(Option::as_ref).and_then(crate::pipeline::linkage::compare::suffix_of)
        }
        let (a, b) = (names.iter().find_map(|&g| suffix(ours, g)), names.iter().find_map(|&g| suffix(theirs, g)));
        let suffixes = match (a, b) {
            (Some(a), Some(b)) if a != b => names.last().copied(),
            _ => None,
        };
        suffixes
            .or_else(|| names.iter().copied().find(|&f| levels[f] == Some(2) && !names.iter().any(|&g| close(f, g))))
    }

    /// The prior of a pair with this entry in points.
    fn prior_points(&self, e: usize) -> f64 {
        match self.priors.1 {
            Some(within) if self.entries[e].created => within,
            _ => self.priors.0,
        }
    }

    /// The destination records that may be candidates of `values`: to read before deciding.
    pub fn reachable(&self, values: &Values) -> Vec<String> {
        self.blocked(values)
            .into_iter()
            .filter_map(|e| match &self.entries[e].holder {
                Holder::Dest(d) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }

    /// The entries (not gone) sharing an uncrowded blocking key with `values`, once each, in
    /// index order.
    fn blocked(&self, values: &Values) -> Vec<usize> {
        let mut found: Vec<usize> = self
            .plan
            .linker
            .block_keys(values)
            .into_iter()
            .filter_map(|k| self.blocks.get(&k))
            .filter(|es| es.len() <= CROWDED)
            .flatten()
            .copied()
            .filter(|&e| self.entries[e].holder != Holder::Gone)
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// The verdict on a record's ranked candidates. `taken`: whether another source record
    /// already feeds an entry (beyond what the index knows: a record of this batch updating it).
    pub fn judge(&self, ranked: Vec<Candidate>, taken: &dyn Fn(usize) -> bool) -> Verdict {
        let linker = &self.plan.linker;
        let Some(best) = ranked.first().cloned() else { return Verdict::Create(ranked) };
        let p = probability(best.score);
        if p < linker.review_above {
            return Verdict::Create(ranked.into_iter().take(3).collect());
        }
        let entry = &self.entries[best.entry];
        let is_taken = !entry.created && (entry.fed || taken(best.entry));
        let runner_up = ranked.get(1).map(|c| c.score);
        let why = if p < linker.link_above {
            format!("{} is below link_above ({})", percent(p), linker.link_above)
        } else if !self.identified(&best) {
            "no identifying field (email, phone, id, date, domain) agrees exactly or within one typo".to_string()
        } else if let Some(f) = self.name_disagreeing(&best) {
            format!(
                "its {} says another person and no id agrees: people who share everything else (twins, a \
                 household, an office, a father and his son) are not merged without a person",
                self.plan.fields[f]
            )
        } else if is_taken {
            match &entry.fed_by {
                Some(sid) => format!(
                    "its best candidate is already the destination record of source record {} (one source record \
                     to one destination record: a person decides)",
                    crate::text::shown(sid)
                ),
                None => "its best candidate is already the destination record of another source record".to_string(),
            }
        } else if let Some(r) = runner_up.filter(|r| best.score - r < linker.margin) {
            format!(
                "the runner-up ({}) is within the margin: {:.1} points apart, {} needed",
                percent(probability(r)),
                best.score - r,
                linker.margin
            )
        } else {
            return Verdict::Link { best, runner_up: ranked.get(1).cloned() };
        };
        Verdict::Review { why, ranked: ranked.into_iter().take(5).collect() }
    }

    /// A compared name that disagrees entirely (not even similar, nor agreeing crosswise with
    /// the other name: swapped names are not "different"), with no personal id (a field compared
    /// as `id`) agreeing exactly. Phones, emails, addresses and birth dates are shared by twins,
    /// couples and colleagues; points alone would merge them. A nickname or a changed surname
    /// is left to a person too — unless an id says who it is (a record whose name was replaced
    /// by another, as FEBRL's are, keeps its id).
    ///
    /// So is a birth date (a field compared as `date`) that differs beyond typos (a father and
    /// his son of one name), and a name only "similar" that is no spelling of the other
    /// (`Jesús`/`Jessica` on a family's address and phone).
    fn name_disagreeing(&self, c: &Candidate) -> Option<usize> {
        let kinds = &self.plan.linker.kinds;
        let id_agrees =
            (0..kinds.len()).any(|f| self.plan.comparisons[f] == "id" && c.levels[f].is_some_and(|l| l <= 1));
        if id_agrees {
            return None;
        }
        let different = |f: usize| c.levels[f] == Some(kinds[f].levels() - 1);
        (0..kinds.len())
            .find(|&f| (kinds[f] == Kind::Name || self.plan.comparisons[f] == "date") && different(f))
            .or(c.name_apart)
    }

    /// Whether a pair's evidence rests on more than names and partial agreements: an automatic
    /// link needs one identifying field (email, phone, id or date, domain, exact) agreeing
    /// exactly or within one typo, when the object compares any. Two John Smiths with
    /// `john.smith@` at two employers are a possible match, not a link.
    ///
    /// An email's local part at another domain identifies too when the records show it rare
    /// (its weight raised by how few hold it: `jonathan.smith.1974` moving employer), never
    /// on the model's average alone.
    fn identified(&self, c: &Candidate) -> bool {
        let kinds = &self.plan.linker.kinds;
        let identifying = |k: &Kind| matches!(k, Kind::Email | Kind::Phone | Kind::Digits | Kind::Exact | Kind::Domain);
        // A local part that only repeats the names (`henry.mariani@` at two employers) says
        // nothing the names did not: namesakes share it.
        let theirs = &self.entries[c.entry].values;
        let names: Vec<&str> =
            (0..kinds.len()).filter(|&f| kinds[f] == Kind::Name).filter_map(|f| theirs.get(f)?.as_deref()).collect();
        let own_words = |f: usize| {
            let email = theirs.get(f).and_then(|v| v.as_deref()).unwrap_or_default();
            let local = email.rsplit_once('@').map_or(email, |(l, _)| l);
            !crate::pipeline::linkage::compare::made_of_names(local, &names)
        };
        let rare_local_part = |f: usize| {
            kinds[f] == Kind::Email
                && c.levels[f] == Some(2)
                && c.shares[f].is_some()
                && c.weights[f].is_some_and(|w| w > self.weights[f][2])
                && own_words(f)
        };
        // A contact point several records hold (a family's address) identifies no one of them
        // when another one disagrees outright (Ann and Anna Müller on one address, two phones).
        let one_disagrees = kinds.iter().zip(&c.levels).any(|(k, l)| identifying(k) && *l == Some(k.levels() - 1));
        let shared = |f: usize| one_disagrees && c.shares[f].is_some_and(|s| s.holders > 1);
        !kinds.iter().any(identifying)
            || kinds
                .iter()
                .zip(&c.levels)
                .enumerate()
                .any(|(f, (k, l))| identifying(k) && ((l.is_some_and(|l| l <= 1) && !shared(f)) || rare_local_part(f)))
    }

    /// A candidate's evidence, field by field: `email equal +12.3 · lastname close +3.1 ·
    /// phone blank · prior −5.8 = 9.6 points (p 0.9987)`.
    pub fn explain(&self, c: &Candidate) -> String {
        let mut parts: Vec<String> = Vec::with_capacity(c.levels.len() + 1);
        for (f, level) in c.levels.iter().enumerate() {
            let name = &self.plan.fields[f];
            let kind: Kind = self.plan.linker.kinds[f];
            let weight = c.weights.get(f).copied().flatten();
            parts.push(match (level, weight) {
                (Some(l), Some(w)) => {
                    let share = match c.shares.get(f).copied().flatten() {
                        Some(s) => format!(" ({} of {} records hold it)", group(s.holders), group(s.of)),
                        None => String::new(),
                    };
                    format!("{name} {} {}{share}", kind.level_keys()[*l], points(w))
                }
                _ => format!("{name} blank"),
            });
        }
        parts.push(format!("prior {}", points(self.prior_points(c.entry))));
        format!("{} = {:.1} points ({})", parts.join(" · "), c.score, percent(probability(c.score)))
    }

    /// Who an entry is, in words.
    pub fn name(&self, e: usize) -> String {
        match &self.entries[e].holder {
            Holder::Dest(d) => format!("destination record {d}"),
            Holder::Lead(p) => format!("batch record #{}", p + 1),
            Holder::Gone => "a record not written".into(),
        }
    }

    /// The estimated weights, one line per field: `email  equal +12.3  typo +8.1  …`.
    pub fn weights_table(&self) -> Vec<String> {
        let weights = &self.weights;
        self.plan
            .fields
            .iter()
            .enumerate()
            .map(|(f, name)| {
                let kind = self.plan.linker.kinds[f];
                let levels: Vec<String> =
                    kind.level_keys().iter().zip(&weights[f]).map(|(k, w)| format!("{k} {}", points(*w))).collect();
                format!("{name} ({}): {}", self.plan.comparisons[f], levels.join(", "))
            })
            .collect()
    }
}

fn group(n: u32) -> String {
    crate::text::thousands(u64::from(n))
}

fn points(w: f64) -> String {
    if w >= 0.0 { format!("+{w:.1}") } else { format!("−{:.1}", -w) }
}

/// A probability as people read it: `p 0.9987`.
pub fn percent(p: f64) -> String {
    format!("p {p:.4}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LinkageConfig;
    use indexmap::IndexMap;

    fn plan() -> Arc<LinkagePlan> {
        plan_of(&[("first", "name"), ("last", "name"), ("email", "email"), ("phone", "phone")])
    }

    /// A plan comparing these fields (field, comparison), in this order.
    fn plan_of(compared: &[(&str, &str)]) -> Arc<LinkagePlan> {
        let config = LinkageConfig {
            fields: compared.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
            link_above: 0.99,
            review_above: 0.5,
            margin: 4.0,
            blocks: Vec::new(),
            weights: IndexMap::new(),
        };
        let fields: Vec<String> = compared.iter().map(|(f, _)| f.to_string()).collect();
        Arc::new(LinkagePlan::new("contacts", &config, &fields).expect("plan"))
    }

    fn rec(v: &[&str]) -> Values {
        v.iter().map(|s| (!s.is_empty()).then(|| s.to_string())).collect()
    }

    /// A model that trusts emails and phones, names less.
    fn model() -> Model {
        Model {
            lambda: 0.01,
            lambda_within: None,
            m: vec![vec![0.8, 0.1, 0.05, 0.05]; 2]
                .into_iter()
                .chain([vec![0.9, 0.05, 0.02, 0.03], vec![0.9, 0.05, 0.02, 0.03]])
                .collect(),
            u: vec![vec![0.01, 0.02, 0.07, 0.9]; 2]
                .into_iter()
                .chain([vec![0.0001, 0.0001, 0.001, 0.9988], vec![0.0001, 0.0002, 0.001, 0.9987]])
                .collect(),
            rounds: 0,
            compared: Vec::new(),
        }
    }

    fn index() -> LinkIndex {
        let mut ix = LinkIndex::new(plan(), model());
        ix.add(Holder::Dest("10".into()), rec(&["ann", "lee", "ann@x.com", "4155550100"]), false, false);
        ix.add(Holder::Dest("11".into()), rec(&["bob", "ray", "bob@x.com", "4155550199"]), false, false);
        ix
    }

    /// Every entry as indexed (none read anew).
    fn none(e: &Entry) -> Option<Cow<'_, Values>> {
        (e.holder != Holder::Gone).then_some(Cow::Borrowed(&e.values))
    }

    #[test]
    fn a_damaged_copy_links_and_a_stranger_is_created() {
        let ix = index();
        let ranked = ix.rank(&rec(&["Anne", "Lee", "ANN@x.com", "(415) 555-0100"]), &none);
        let Verdict::Link { best: c, .. } = ix.judge(ranked, &|_| false) else { panic!("not linked") };
        assert_eq!(ix.name(c.entry), "destination record 10");
        let why = ix.explain(&c);
        assert!(why.contains("email equal +") && why.contains("first close +") && why.contains("prior −"), "{why}");
        let ranked = ix.rank(&rec(&["zed", "quinn", "zed@new.com", ""]), &none);
        assert!(matches!(ix.judge(ranked, &|_| false), Verdict::Create(_)));
    }

    #[test]
    fn a_destination_record_another_source_record_feeds_goes_to_review() {
        let mut ix = index();
        ix.note_fed([("10".to_string(), false, "s7".to_string())]);
        let ranked = ix.rank(&rec(&["ann", "lee", "ann@x.com", "4155550100"]), &none);
        assert!(
            matches!(ix.judge(ranked, &|_| false), Verdict::Review { ref why, .. } if why.contains("of source record s7")),
            "names the source record that took it"
        );
        // The batch's own lead taking it counts the same.
        let ix = index();
        let ranked = ix.rank(&rec(&["ann", "lee", "ann@x.com", "4155550100"]), &none);
        assert!(matches!(ix.judge(ranked, &|e| e == 0), Verdict::Review { .. }));
    }

    #[test]
    fn records_cutover_created_gather_the_sources_duplicates() {
        let mut ix = index();
        let lead = ix.add(Holder::Lead(3), rec(&["cy", "berg", "cy@x.com", "4155550300"]), true, true);
        let ranked = ix.rank(&rec(&["cy", "berg", "cy@x.com", ""]), &none);
        let Verdict::Link { best: c, .. } = ix.judge(ranked, &|_| true) else { panic!("not linked") };
        assert_eq!(c.entry, lead);
        assert_eq!(ix.name(lead), "batch record #4");
        // Written: it becomes the destination record; not written: no candidate any more.
        ix.settle_batch(&[(3, "12".into(), None)]);
        assert_eq!(ix.entry(lead).holder, Holder::Dest("12".into()));
        let other = ix.add(Holder::Lead(0), rec(&["di", "okafor", "di@x.com", ""]), true, true);
        ix.settle_batch(&[]);
        assert_eq!(ix.entry(other).holder, Holder::Gone);
        assert!(ix.rank(&rec(&["di", "okafor", "di@x.com", ""]), &none).is_empty());
    }

    #[test]
    fn names_and_a_partial_email_are_a_possible_match_not_a_link() {
        // Weights that would link it on points alone: the rule, not the score, holds it.
        let mut m = model();
        m.lambda = 0.5;
        let mut ix = LinkIndex::new(plan(), m);
        ix.add(Holder::Dest("4".into()), rec(&["john", "smith", "john.smith@acme.test", ""]), false, false);
        let ranked = ix.rank(&rec(&["john", "smith", "john.smith@gmail.test", ""]), &none);
        assert!(probability(ranked[0].score) >= 0.99, "{ranked:?}");
        match ix.judge(ranked, &|_| false) {
            Verdict::Review { why, .. } => assert!(why.contains("no identifying field"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_value_many_records_hold_weighs_less_than_ones_own() {
        let mut ix = index();
        for n in 0..5 {
            let (first, last, phone) = (format!("x{n}"), format!("y{n}"), format!("41555502{n:02}"));
            ix.add(Holder::Dest(format!("2{n}")), rec(&[&first, &last, "info@acme.test", &phone]), false, false);
        }
        let shared = ix.rank(&rec(&["zed", "quinn", "INFO@acme.test", ""]), &none);
        let own = ix.rank(&rec(&["zed", "quinn", "ann@x.com", ""]), &none);
        let email = |c: &Candidate| c.weights[2].expect("compared");
        assert_eq!(shared.len(), 5);
        assert!(email(&shared[0]) < 1.0, "a placeholder five of seven hold: {}", ix.explain(&shared[0]));
        assert!(
            ix.explain(&shared[0]).contains("email equal +0.3 (5 of 7 records hold it)"),
            "{}",
            ix.explain(&shared[0])
        );
        assert!(email(&own[0]) > 10.0, "{}", ix.explain(&own[0]));
        assert!(!matches!(ix.judge(shared, &|_| false), Verdict::Link { .. }));
        // Gone records are counted out: the one left holds it alone.
        let mut ix = index();
        let lead = ix.add(Holder::Lead(0), rec(&["ann", "lee", "ann@x.com", ""]), true, true);
        ix.settle_batch(&[]);
        assert_eq!(ix.entry(lead).holder, Holder::Gone);
        assert_eq!(ix.frequencies.share(2, Some("ann@x.com"), false), Some(Share { holders: 1, of: 2 }));
    }

    #[test]
    fn twins_sharing_everything_but_a_first_name_wait_for_a_person() {
        // Weights that would link on points alone: the differing first name holds it.
        let mut m = model();
        m.lambda = 0.5;
        let mut ix = LinkIndex::new(plan(), m);
        ix.add(
            Holder::Dest("1".into()),
            rec(&["jonathan", "ovaewha", "home@ovaewha.test", "4155550100"]),
            false,
            false,
        );
        let ranked = ix.rank(&rec(&["linda", "ovaewha", "home@ovaewha.test", "4155550100"]), &none);
        assert!(probability(ranked[0].score) > 0.999, "{}", ix.explain(&ranked[0]));
        match ix.judge(ranked, &|_| false) {
            Verdict::Review { why, .. } => assert!(why.contains("first says another person"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Swapped first and last names are not a disagreement.
        let ranked = ix.rank(&rec(&["ovaewha", "jonathan", "home@ovaewha.test", "4155550100"]), &none);
        assert!(matches!(ix.judge(ranked, &|_| false), Verdict::Link { .. }));
    }

    #[test]
    fn a_similar_name_that_is_another_name_waits_and_an_initial_links() {
        let mut m = model();
        m.lambda = 0.5;
        let mut ix = LinkIndex::new(plan(), m);
        ix.add(Holder::Dest("1".into()), rec(&["jessica", "wojcik", "home@wojcik.test", "4155550100"]), false, false);
        ix.add(Holder::Dest("2".into()), rec(&["hannah", "okafor", "h.okafor@x.test", "4155550111"]), false, false);
        let judged = |ix: &LinkIndex, r: &[&str]| ix.judge(ix.rank(&rec(r), &none), &|_| false);
        match judged(&ix, &["jesus", "wojcik", "home@wojcik.test", "4155550100"]) {
            Verdict::Review { why, .. } => assert!(why.contains("first says another person"), "{why}"),
            other => panic!("{other:?}"),
        }
        for typo in ["jesica", "jessika", "jessica"] {
            assert!(matches!(judged(&ix, &[typo, "wojcik", "home@wojcik.test", "4155550100"]), Verdict::Link { .. }));
        }
        assert!(matches!(judged(&ix, &["h", "okafor", "h.okafor@x.test", "4155550111"]), Verdict::Link { .. }));
    }

    #[test]
    fn a_father_and_his_son_of_one_name_wait_for_a_person() {
        let plan = plan_of(&[("first", "name"), ("last", "name"), ("phone", "phone"), ("born", "date")]);
        let mut m = model();
        m.lambda = 0.5;
        let mut ix = LinkIndex::new(plan, m);
        ix.add(Holder::Dest("1".into()), rec(&["henry", "brown", "4157300101", "1951-03-02"]), false, false);
        let judged = |ix: &LinkIndex, r: &[&str]| ix.judge(ix.rank(&rec(r), &none), &|_| false);
        match judged(&ix, &["henry", "brown", "4157300101", "1983-07-19"]) {
            Verdict::Review { why, .. } => assert!(why.contains("born says another person"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(judged(&ix, &["henry", "brown", "4157300101", "1951-03-20"]), Verdict::Link { .. }), "a typo");
    }

    #[test]
    fn junior_and_senior_of_one_name_and_namesakes_at_two_employers_wait_for_a_person() {
        let mut m = model();
        m.lambda = 0.5;
        let mut ix = LinkIndex::new(plan(), m);
        ix.add(
            Holder::Dest("1".into()),
            rec(&["ann", "de angelis jr", "family@angelis.test", "4155550100"]),
            false,
            false,
        );
        ix.add(
            Holder::Dest("2".into()),
            rec(&["henry", "mariani", "henry.mariani@web.test", "4155550122"]),
            false,
            false,
        );
        let judged = |ix: &LinkIndex, r: &[&str]| ix.judge(ix.rank(&rec(r), &none), &|_| false);
        match judged(&ix, &["ann", "de angelis sr", "family@angelis.test", "4155550100"]) {
            Verdict::Review { why, .. } => assert!(why.contains("says another person"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(
            !matches!(
                judged(&ix, &["henry", "mariani", "henry.mariani@outlook.test", "2125550999"]),
                Verdict::Link { .. }
            ),
            "a local part of the names is no identity at another domain"
        );
    }

    #[test]
    fn an_address_two_records_hold_identifies_neither_when_the_phones_disagree() {
        let mut m = model();
        m.lambda = 0.5;
        let mut ix = LinkIndex::new(plan(), m);
        ix.add(Holder::Dest("182".into()), rec(&["renee", "muller", "family@muller.test", "6464331480"]), false, false);
        ix.add(Holder::Dest("183".into()), rec(&["anna", "muller", "family@muller.test", "6175905188"]), false, false);
        for n in 0..200 {
            let (email, phone) = (format!("p{n}@x.test"), format!("41555{n:05}"));
            ix.add(Holder::Dest(n.to_string()), rec(&["zed", &format!("other{n}"), &email, &phone]), false, false);
        }
        let judged = |ix: &LinkIndex, r: &[&str]| ix.judge(ix.rank(&rec(r), &none), &|_| false);
        match judged(&ix, &["ann", "muller", "family@muller.test", "2126552725"]) {
            Verdict::Review { why, .. } => assert!(why.contains("no identifying field"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(judged(&ix, &["anna", "muller", "family@muller.test", "6175905188"]), Verdict::Link { .. }));
    }

    #[test]
    fn two_close_candidates_are_reviewed_not_guessed() {
        // Sure enough of the first on points, the second a phone typo behind: within a margin
        // of six points, the margin, not the score, holds it.
        let mut m = model();
        m.lambda = 0.5;
        let mut plan = (*plan()).clone();
        plan.linker.margin = 6.0;
        let mut ix = LinkIndex::new(Arc::new(plan), m);
        ix.add(Holder::Dest("1".into()), rec(&["ann", "lee", "", "4155550100"]), false, false);
        ix.add(Holder::Dest("2".into()), rec(&["ann", "lee", "", "4155550101"]), false, false);
        let ranked = ix.rank(&rec(&["ann", "lee", "", "415 555 0100"]), &none);
        assert!(probability(ranked[0].score) > 0.999, "{}", ix.explain(&ranked[0]));
        match ix.judge(ranked, &|_| false) {
            Verdict::Review { why, ranked } => {
                assert_eq!(ranked.len(), 2);
                assert!(why.contains("margin"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }
}
