//! The dedupe stage: before every write, find the destination record a source record already is.
//! Keys are tried in order — the record's own source id (the id map: a re-run never duplicates),
//! then each configured match key — against the destination's match index and against records
//! earlier in the same batch. One candidate decides; several hold the record for an operator.

use super::map::is_blank;
use super::plan::{KeyKind, ObjectPlan};
use super::transform;
use crate::config::MergeRule;
use crate::model::Value;
use crate::store::{MatchIndex, Store};
use color_eyre::eyre::Result;
use foldhash::{HashMap, HashMapExt};

/// What the write stage should do with a mapped record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Create,
    /// Apply the merge rule to an existing destination record.
    Update {
        dest_id: String,
        matched_by: String,
    },
    /// Fold into an earlier record of this batch (the "lead", by batch position).
    IntoLead {
        lead: usize,
        matched_by: String,
    },
    /// Several candidates: an operator decides.
    Ambiguous {
        matched_by: String,
        candidates: Vec<String>,
    },
}

/// A destination id and the run that wrote it (`None`: there before Cutover, or found by a scan).
pub type Written = (String, Option<i64>);

/// A record's normalised match keys: (position in the plan's `match_keys`, value).
pub type RecordKeys = Vec<(usize, String)>;

/// What dedupe needs to ask the state store and the match index.
pub trait MatchLookup {
    /// The destination id Cutover wrote this source record to, and the run that wrote it.
    fn written(&self, source_id: &str) -> Option<Written>;
    /// Destination records whose key (by position) has this normalised value.
    fn candidates(&self, key: usize, value: &str) -> Vec<Written>;
    /// Whether the record of the batch at position `lead` is about to hold this key value. A
    /// record merged into a destination record that keeps its own value (fill blanks) does not
    /// give it the record's key, so it leads nobody by that key — as one batch later.
    fn lead_holds(&self, _lead: usize, _key: usize, _value: &str) -> bool {
        true
    }
}

/// Normalises a match key value so that equal people compare equal: emails by case, phones by
/// E.164, other text by case and surrounding space. `None` when there is nothing to match on.
pub fn normalize_key(kind: KeyKind, value: &str, already: bool, region: phonenumber::country::Id) -> Option<String> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if already {
        return Some(v.to_string());
    }
    Some(match kind {
        KeyKind::Email => transform::email(v).unwrap_or_else(|_| v.to_lowercase()),
        // E.164 also for a number not assigned in its region: the record was written with it
        // (with a warning), and the destination's copy must compare equal, not as bare digits.
        KeyKind::Phone => transform::phone_e164(v, region)
            .map(|(e164, _)| e164)
            .unwrap_or_else(|_| v.chars().filter(char::is_ascii_digit).collect()),
        KeyKind::Domain => transform::domain(v).unwrap_or_else(|_| v.to_lowercase()),
        KeyKind::Text => v.to_lowercase(),
    })
}

/// The answers to every lookup a batch will make, fetched with a few set queries instead of
/// several single-row queries per record.
#[derive(Debug, Default)]
pub struct Prefetched {
    written: HashMap<String, Written>,
    /// Per key position: value → candidates.
    keys: Vec<HashMap<String, Vec<Written>>>,
}

impl Prefetched {
    /// `records`: (source id, keys) of the records to decide. `pending`: (key, value, destination
    /// id) of records this run wrote that are not in the index yet.
    pub fn load<'a>(
        store: &Store,
        index: &mut MatchIndex,
        plan: &ObjectPlan,
        records: impl Iterator<Item = (&'a str, &'a RecordKeys)>,
        in_flight: &HashMap<String, String>,
        pending: &[(String, String, String)],
        run_id: i64,
    ) -> Result<Self> {
        let mut ids: Vec<&str> = Vec::new();
        let mut values: Vec<Vec<&str>> = vec![Vec::new(); plan.match_keys.len()];
        for (sid, keys) in records {
            ids.push(sid);
            for (k, v) in keys {
                values[*k].push(v);
            }
        }
        let mut out = Prefetched { written: HashMap::new(), keys: vec![HashMap::new(); plan.match_keys.len()] };
        // Batches still on their way into the store are known from memory.
        ids.retain(|sid| match in_flight.get(*sid) {
            Some(dest) => {
                out.written.insert(sid.to_string(), (dest.clone(), Some(run_id)));
                false
            }
            None => true,
        });
        for (sid, dest, run) in store.id_map_entries(&plan.name, &index.maybe_written(&ids))? {
            out.written.insert(sid, (dest, Some(run)));
        }
        for (k, vals) in values.iter().enumerate() {
            if vals.is_empty() {
                continue;
            }
            for (value, dest, run) in index.candidates_many(&plan.name, &plan.match_keys[k].field, vals)? {
                out.keys[k].entry(value).or_default().push((dest, run));
            }
        }
        if !pending.is_empty() {
            let mut by_value: HashMap<(usize, &str), Vec<&str>> = HashMap::new();
            for (field, value, dest) in pending {
                if let Some(k) = plan.match_keys.iter().position(|m| &m.field == field) {
                    by_value.entry((k, value.as_str())).or_default().push(dest.as_str());
                }
            }
            for (k, vals) in values.iter().enumerate() {
                for v in vals {
                    for dest in by_value.get(&(k, *v)).into_iter().flatten() {
                        let found = out.keys[k].entry(v.to_string()).or_default();
                        if !found.iter().any(|(d, _)| d == dest) {
                            found.push((dest.to_string(), Some(run_id)));
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

impl MatchLookup for Prefetched {
    fn written(&self, source_id: &str) -> Option<Written> {
        self.written.get(source_id).cloned()
    }
    fn candidates(&self, key: usize, value: &str) -> Vec<Written> {
        self.keys.get(key).and_then(|m| m.get(value)).cloned().unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Target {
    Dest(String),
    Lead(usize),
}

/// Dedupe state of one batch.
pub struct BatchDeduper<'p> {
    plan: &'p ObjectPlan,
    region: phonenumber::country::Id,
    /// Source id → lead position in the batch.
    pending_ids: HashMap<String, usize>,
    /// Per key position: value → lead position in the batch.
    /// Per key position: value → every lead holding it in the batch (several records may).
    pending_keys: Vec<HashMap<String, Vec<usize>>>,
    /// destination id → lead position, for records this batch already updates.
    lead_of_dest: HashMap<String, usize>,
}

impl<'p> BatchDeduper<'p> {
    pub fn new(plan: &'p ObjectPlan, region: phonenumber::country::Id) -> Self {
        Self {
            plan,
            region,
            pending_ids: HashMap::new(),
            pending_keys: vec![HashMap::new(); plan.match_keys.len()],
            lead_of_dest: HashMap::new(),
        }
    }

    /// The normalised match keys of a record's values.
    pub fn keys_of(&self, values: &[Option<String>]) -> RecordKeys {
        self.plan
            .match_keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| {
                let v = values.get(k.index)?.as_deref()?;
                normalize_key(k.kind, v, k.mapped_normalised, self.region).map(|n| (i, n))
            })
            .collect()
    }

    fn key_name(&self, key: usize) -> String {
        self.plan.match_keys.get(key).map(|k| k.field.clone()).unwrap_or_default()
    }

    /// The records of the batch (leads) that hold this normalised key value.
    pub fn leads_holding(&self, key: usize, value: &str) -> &[usize] {
        self.pending_keys.get(key).and_then(|m| m.get(value)).map(Vec::as_slice).unwrap_or_default()
    }

    /// The record of the batch that updates this destination record, if one does.
    pub fn lead_of(&self, dest_id: &str) -> Option<usize> {
        self.lead_of_dest.get(dest_id).copied()
    }

    /// Who the record at `position` is; nothing is remembered until [`BatchDeduper::accept`].
    pub fn decide(&self, lookup: &impl MatchLookup, sid: &str, keys: &RecordKeys) -> Decision {
        let mut decision = None;
        // 1. The record's own id: written before by Cutover, or repeated in this batch.
        if let Some(&lead) = self.pending_ids.get(sid) {
            decision = Some(Decision::IntoLead { lead, matched_by: "source_id".into() });
        } else if let Some((dest_id, _)) = lookup.written(sid) {
            decision = Some(self.resolve_one(Target::Dest(dest_id), "source_id".into()));
        }
        // 2. The match keys, in order; the first key with any candidate decides.
        if decision.is_none() {
            for (key, value) in keys {
                let mut targets: Vec<Target> = Vec::new();
                for (dest_id, _) in lookup.candidates(*key, value) {
                    let t = match self.lead_of_dest.get(&dest_id) {
                        Some(&lead) => Target::Lead(lead),
                        None => Target::Dest(dest_id),
                    };
                    if !targets.contains(&t) {
                        targets.push(t);
                    }
                }
                for &lead in self.pending_keys[*key].get(value.as_str()).into_iter().flatten() {
                    if !lookup.lead_holds(lead, *key, value) {
                        continue;
                    }
                    if !targets.contains(&Target::Lead(lead)) {
                        targets.push(Target::Lead(lead));
                    }
                }
                match targets.len() {
                    0 => continue,
                    1 => decision = Some(self.resolve_one(targets.remove(0), self.key_name(*key))),
                    _ => {
                        let candidates = targets
                            .into_iter()
                            .map(|t| match t {
                                Target::Dest(id) => id,
                                Target::Lead(p) => format!("batch record #{}", p + 1),
                            })
                            .collect();
                        decision = Some(Decision::Ambiguous { matched_by: self.key_name(*key), candidates });
                    }
                }
                break;
            }
        }
        decision.unwrap_or(Decision::Create)
    }

    /// Takes up a record an interrupted attempt already created as `dest_id`: later records of
    /// the batch that find that destination record (the index has it now) fold into this one.
    pub fn accept_adopted(&mut self, position: usize, sid: &str, keys: &RecordKeys, dest_id: &str) {
        self.lead_of_dest.insert(dest_id.to_string(), position);
        self.register(position, sid, keys);
    }

    /// Takes a decision up for the rest of the batch: a record that will be written leads later
    /// duplicates of it. A record held instead (a veto, a problem) is never taken up, so the
    /// records after it decide as if it were not there — as they would in a later batch.
    pub fn accept(&mut self, position: usize, sid: &str, keys: &RecordKeys, decision: &Decision) {
        match decision {
            Decision::Create => self.register(position, sid, keys),
            Decision::Update { dest_id, .. } => {
                self.lead_of_dest.insert(dest_id.clone(), position);
                self.register(position, sid, keys);
            }
            Decision::IntoLead { lead, .. } => self.register(*lead, sid, keys),
            Decision::Ambiguous { .. } => {}
        }
    }

    fn resolve_one(&self, target: Target, key: String) -> Decision {
        match target {
            Target::Lead(lead) => Decision::IntoLead { lead, matched_by: key },
            Target::Dest(dest_id) => match self.lead_of_dest.get(&dest_id) {
                Some(&lead) => Decision::IntoLead { lead, matched_by: key },
                None => Decision::Update { dest_id, matched_by: key },
            },
        }
    }

    fn register(&mut self, position: usize, sid: &str, keys: &RecordKeys) {
        self.pending_ids.entry(sid.to_string()).or_insert(position);
        for (k, v) in keys {
            let leads = self.pending_keys[*k].entry(v.clone()).or_default();
            if !leads.contains(&position) {
                leads.push(position);
            }
        }
    }
}

/// Applies a merge rule: `current` is what the destination (or the lead record) holds.
pub fn merge(current: &[Value], incoming: &[Value], rule: MergeRule) -> Vec<Value> {
    current
        .iter()
        .zip(incoming)
        .map(|(cur, inc)| match rule {
            MergeRule::FillBlanks if is_blank(cur) && !is_blank(inc) => inc.clone(),
            MergeRule::SourceWins if !is_blank(inc) => inc.clone(),
            _ => cur.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DestSchema;
    use crate::pipeline::plan::MatchKey;
    use std::sync::Arc;

    struct Fake {
        written: HashMap<String, Written>,
        keys: HashMap<(String, String), Vec<Written>>,
    }
    impl MatchLookup for Fake {
        fn written(&self, sid: &str) -> Option<Written> {
            self.written.get(sid).cloned()
        }
        fn candidates(&self, key: usize, value: &str) -> Vec<Written> {
            let name = ["email", "phone"][key];
            self.keys.get(&(name.to_string(), value.to_string())).cloned().unwrap_or_default()
        }
    }

    fn plan() -> ObjectPlan {
        ObjectPlan {
            person: Default::default(),
            name: "contacts".into(),
            source_object: "persons".into(),
            dest_object: "contacts".into(),
            id_field: "id".into(),
            source_fields: vec!["id".to_string()].into(),
            dest_fields: vec!["email".to_string(), "phone".to_string()].into(),
            rules: Vec::new(),
            match_keys: vec![
                MatchKey { field: "email".into(), index: 0, kind: KeyKind::Email, mapped_normalised: true },
                MatchKey { field: "phone".into(), index: 1, kind: KeyKind::Phone, mapped_normalised: true },
            ],
            merge: MergeRule::FillBlanks,
            schema: Arc::new(DestSchema { object: "contacts".into(), id_field: "id".into(), fields: vec![] }),
            modified: None,
            shared_destination: false,
            filter: None,
            repeat: None,
            linkage: None,
        }
    }

    fn decide(
        d: &mut BatchDeduper<'_>,
        fake: &Fake,
        pos: usize,
        id: &str,
        email: Option<&str>,
        phone: Option<&str>,
    ) -> Decision {
        let values = vec![email.map(str::to_string), phone.map(str::to_string)];
        let keys = d.keys_of(&values);
        let decision = d.decide(fake, id, &keys);
        d.accept(pos, id, &keys, &decision);
        decision
    }

    #[test]
    fn keys_in_order_and_in_batch_duplicates() {
        let mut keys = HashMap::new();
        keys.insert(("email".into(), "a@x.com".into()), vec![("10".into(), None)]);
        keys.insert(("phone".into(), "+14155552671".into()), vec![("11".into(), None), ("12".into(), None)]);
        keys.insert(("email".into(), "run@x.com".into()), vec![("13".into(), Some(5))]);
        let mut written = HashMap::new();
        written.insert("s9".to_string(), ("99".to_string(), Some(4)));
        let fake = Fake { written, keys };
        let plan = plan();
        let mut d = BatchDeduper::new(&plan, phonenumber::country::Id::US);

        let upd = decide(&mut d, &fake, 0, "s1", Some("a@x.com"), Some("+16175550100"));
        assert_eq!(
            upd,
            Decision::Update { dest_id: "10".into(), matched_by: "email".into() },
            "email decides before phone"
        );
        let amb = decide(&mut d, &fake, 1, "s2", None, Some("+14155552671"));
        assert!(matches!(amb, Decision::Ambiguous { ref candidates, .. } if candidates.len() == 2));
        let new = decide(&mut d, &fake, 2, "s3", Some("new@x.com"), None);
        assert_eq!(new, Decision::Create);
        let dup = decide(&mut d, &fake, 3, "s4", Some("new@x.com"), None);
        assert_eq!(dup, Decision::IntoLead { lead: 2, matched_by: "email".into() });
        let again = decide(&mut d, &fake, 4, "s5", Some("a@x.com"), None);
        assert_eq!(
            again,
            Decision::IntoLead { lead: 0, matched_by: "email".into() },
            "second update of one record merges into the first"
        );
        let rerun = decide(&mut d, &fake, 5, "s9", None, None);
        assert_eq!(rerun, Decision::Update { dest_id: "99".into(), matched_by: "source_id".into() });
        let same_run = decide(&mut d, &fake, 6, "s6", Some("run@x.com"), None);
        assert_eq!(same_run, Decision::Update { dest_id: "13".into(), matched_by: "email".into() });
        let repeated_id = decide(&mut d, &fake, 7, "s3", None, None);
        assert_eq!(repeated_id, Decision::IntoLead { lead: 2, matched_by: "source_id".into() });
    }

    #[test]
    fn normalisation_compares_people_not_formats() {
        let us = phonenumber::country::Id::US;
        assert_eq!(normalize_key(KeyKind::Email, " Ann@X.com ", false, us).as_deref(), Some("ann@x.com"));
        assert_eq!(normalize_key(KeyKind::Phone, "(415) 555-2671", false, us).as_deref(), Some("+14155552671"));
        // A number its region has not assigned (written with a warning) is the same key either way.
        for v in ["+447911551167", "+44 7911 551167"] {
            assert!(crate::pipeline::transform::phone(v, us).is_err(), "unassigned: {v}");
            assert_eq!(normalize_key(KeyKind::Phone, v, false, us).as_deref(), Some("+447911551167"), "{v}");
        }
        assert_eq!(normalize_key(KeyKind::Text, "  ", false, us), None);
    }

    #[test]
    fn merge_rules() {
        let s = |v: &str| Some(v.to_string());
        let cur = vec![s("Ann"), None, s("old")];
        let inc = vec![s("Anne"), s("+1"), None];
        assert_eq!(merge(&cur, &inc, MergeRule::FillBlanks), vec![s("Ann"), s("+1"), s("old")]);
        assert_eq!(merge(&cur, &inc, MergeRule::SourceWins), vec![s("Anne"), s("+1"), s("old")]);
        assert_eq!(merge(&cur, &inc, MergeRule::DestinationWins), cur);
    }
}
