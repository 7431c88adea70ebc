//! Witnesses that do not take the engine's word: each judges with its own reading.
//!
//! - **Source count** — the source's own count (a CSV file counted by the independent scanner of
//!   `connect::csv_dir::census`, `SELECT count(*)` over a table or query, an API's total) against
//!   the records reading finds; with where the source's structure is broken.
//! - **Destination count** — the destination's own count of each object against what it held
//!   before the first run plus what Cutover created and did not roll back.
//! - **One-to-one** — destination records fed by more than one source record, each with its
//!   recorded survivor; and any fed by several without a recorded decision.
//! - **Duplicates** — records this migration wrote or matched that share a match-key value, by
//!   a normalisation of its own (lower-cased emails, E.164 phones by the phonenumber crate, text
//!   by case and spacing) — not the matcher's.

use super::{LIST_CAP, RecordList};
use crate::model::FieldType;
use crate::pipeline::Engine;
use crate::pipeline::plan::ObjectPlan;
use color_eyre::eyre::{Result, eyre};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// The source's own count against what reading it finds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCensus {
    pub records: u64,
    /// Where the source's structure is broken ("line 11: a quote opened here is never closed…").
    pub problems: Vec<String>,
    pub problem_count: u64,
    /// Records that read as valid but look like a quote left open (see `census.rs`).
    #[serde(default)]
    pub doubts: Vec<String>,
    #[serde(default)]
    pub doubt_count: u64,
}

/// The destination's own count against what it should hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationCount {
    pub dest_object: String,
    /// Its count before Cutover's first run wrote to it.
    pub before: u64,
    /// Records Cutover created there since, less those rolled back.
    pub created: u64,
    pub expected: u64,
    pub now: u64,
}

impl DestinationCount {
    pub fn balanced(&self) -> bool {
        self.expected == self.now
    }
}

/// A destination record fed by more than one source record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedRecord {
    pub dest_id: String,
    /// The source record that survives in it (applies the merge rule); `None` when none is recorded.
    pub survivor: Option<String>,
    /// The others, merged into it (they fill blanks only).
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneToOne {
    /// Up to [`LIST_CAP`] of them.
    pub merged: Vec<MergedRecord>,
    pub merged_total: u64,
    /// Destination records fed by several source records without one recorded survivor, or
    /// whose members have no audited merge.
    pub unrecorded: RecordList,
}

/// Records sharing one value of a match key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedKey {
    pub field: String,
    pub value: String,
    pub dest_ids: Vec<String>,
    /// The source records written to or matched with them.
    #[serde(default)]
    pub source_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witnesses {
    pub census: Option<SourceCensus>,
    pub destination: Option<DestinationCount>,
    /// Why the destination's count is not witnessed, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_unwitnessed: Option<String>,
    #[serde(default)]
    pub one_to_one: OneToOne,
    #[serde(default)]
    pub duplicates: Vec<SharedKey>,
    #[serde(default)]
    pub duplicates_total: u64,
}

fn lock(engine: &Engine) -> Result<std::sync::MutexGuard<'_, crate::store::Store>> {
    engine.store().lock().map_err(|_| eyre!("state store lock poisoned"))
}

pub async fn source_census(engine: &Engine, plan: &ObjectPlan) -> Result<SourceCensus> {
    let c = engine.source().census(&plan.source_object).await?;
    Ok(SourceCensus {
        records: c.records,
        problems: c.problems,
        problem_count: c.problem_count,
        doubts: c.doubts,
        doubt_count: c.doubt_count,
    })
}

/// The destination object's count witness, reported by the first object writing to it; else why
/// it is not witnessed here.
pub async fn destination_count(
    engine: &Engine,
    plan: &ObjectPlan,
    plans: &[Arc<ObjectPlan>],
) -> Result<std::result::Result<DestinationCount, String>> {
    if let Some(first) = plans.iter().find(|p| p.dest_object == plan.dest_object).filter(|f| f.name != plan.name) {
        return Ok(Err(format!("{} writes the same destination object and reports its count", first.name)));
    }
    let baseline = tokio::task::block_in_place(|| lock(engine)?.baseline(&plan.dest_object))?;
    let Some(baseline) = baseline else {
        return Ok(Err(format!(
            "no run counted {} in the destination before writing to it (the project's first run does)",
            plan.dest_object
        )));
    };
    let Some(now) = engine.destination().record_count(&plan.dest_object).await? else {
        return Ok(Err(format!("{} cannot count {}", engine.destination().describe(), plan.dest_object)));
    };
    let objects: Vec<&str> =
        plans.iter().filter(|p| p.dest_object == plan.dest_object).map(|p| p.name.as_str()).collect();
    let created_now = tokio::task::block_in_place(|| lock(engine)?.created_count(&objects))?;
    let created = created_now.saturating_sub(baseline.created);
    Ok(Ok(DestinationCount {
        dest_object: plan.dest_object.clone(),
        before: baseline.count,
        created,
        expected: baseline.count + created,
        now,
    }))
}

pub fn one_to_one(engine: &Engine, plan: &ObjectPlan) -> Result<OneToOne> {
    let (groups, unaudited) = tokio::task::block_in_place(|| -> Result<_> {
        let store = lock(engine)?;
        Ok((store.merged_records(&plan.name)?, store.unaudited_members(&plan.name)?))
    })?;
    let mut out = OneToOne::default();
    for (dest_id, members) in groups {
        let survivors: Vec<&str> = members.iter().filter(|m| !m.member).map(|m| m.source_id.as_str()).collect();
        let unrecorded = survivors.len() != 1 || members.iter().any(|m| m.member && unaudited.contains(&m.source_id));
        if unrecorded {
            out.unrecorded.push(dest_id.clone());
        }
        out.merged_total += 1;
        if out.merged.len() < LIST_CAP {
            out.merged.push(MergedRecord {
                survivor: (survivors.len() == 1).then(|| survivors[0].to_string()),
                members: members
                    .iter()
                    .filter(|m| survivors.len() != 1 || m.source_id != survivors[0])
                    .map(|m| m.source_id.clone())
                    .collect(),
                dest_id,
            });
        }
    }
    Ok(out)
}

/// How the witness compares values of one match key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Email,
    Phone,
    Domain,
    Text,
}

/// Collects the match-key values of every written record the read-back pass sees. Values are
/// kept as 64-bit hashes beside a record number (16 bytes a record and key), so a million
/// records stay cheap; the records of each shared value are read again to show and confirm it.
pub struct KeyWitness {
    region: Option<phonenumber::country::Id>,
    /// (field, position in the destination fields, how to compare).
    keys: Vec<(String, usize, Kind)>,
    dests: Vec<Box<str>>,
    /// How many of `dests` (the first ones) this migration wrote or matched; the others are
    /// the destination's own records, read to find one sharing a key with a written record.
    ours: usize,
    /// Per key: (hash of the normalised value, index into `dests`).
    entries: Vec<Vec<(u64, u32)>>,
}

/// Destination records that may share a value of `field` (same hash), to confirm by reading them.
pub struct Suspects {
    pub field: String,
    pub index: usize,
    pub dest_ids: Vec<String>,
}

impl KeyWitness {
    pub fn new(engine: &Engine, plan: &ObjectPlan) -> Self {
        let keys: Vec<(String, usize, Kind)> = plan
            .match_keys
            .iter()
            .filter_map(|k| {
                let i = plan.dest_fields.iter().position(|f| *f == k.field)?;
                let ty = plan.schema.field(&k.field).map(|f| f.ty);
                let rule = plan.rules.iter().find(|r| r.dest == k.field);
                let has = |t: crate::config::Transform| rule.is_some_and(|r| r.transforms.contains(&t));
                let kind = if ty == Some(FieldType::Email) || has(crate::config::Transform::Email) {
                    Kind::Email
                } else if ty == Some(FieldType::Phone) || has(crate::config::Transform::Phone) {
                    Kind::Phone
                } else if has(crate::config::Transform::Domain) {
                    Kind::Domain
                } else {
                    Kind::Text
                };
                Some((k.field.clone(), i, kind))
            })
            .collect();
        Self {
            region: engine.project.config.project.default_region.parse().ok(),
            entries: keys.iter().map(|_| Vec::new()).collect(),
            keys,
            dests: Vec::new(),
            ours: 0,
        }
    }

    /// The key fields, in the destination's field order positions: (field, position).
    pub fn fields(&self) -> Vec<(String, usize)> {
        self.keys.iter().map(|(f, i, _)| (f.clone(), *i)).collect()
    }

    /// A destination record this migration did not write, with its key values (in the order of
    /// [`KeyWitness::fields`]): it counts only where it shares a value with a written record.
    pub fn see_other(&mut self, dest_id: &str, key_values: &[Option<String>]) {
        let at = self.dests.len() as u32;
        self.dests.push(dest_id.into());
        for k in 0..self.keys.len() {
            if let Some(v) = key_values.get(k).and_then(|v| v.as_deref()).and_then(|v| self.normalise(k, v)) {
                self.entries[k].push((crate::config::fnv1a(v.as_bytes()), at));
            }
        }
    }

    pub fn normalise(&self, field: usize, v: &str) -> Option<String> {
        let t = v.trim();
        if t.is_empty() {
            return None;
        }
        Some(match self.keys[field].2 {
            Kind::Email => t.to_lowercase(),
            // A number with its country code is read without a region (given one, the parser
            // strips that region's trunk prefix after the code).
            Kind::Phone => match phonenumber::parse(if t.starts_with('+') { None } else { self.region }, t) {
                Ok(n) => n.format().mode(phonenumber::Mode::E164).to_string(),
                Err(_) => t.chars().filter(char::is_ascii_digit).collect(),
            },
            // Read here on its own terms: the host of a web address, without `www.`.
            Kind::Domain => {
                let t = t.to_lowercase();
                let host = t.split("//").last().unwrap_or_default().split('/').next().unwrap_or_default().to_string();
                host.trim_start_matches("www.").trim_end_matches('.').to_string()
            }
            Kind::Text => t.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase(),
        })
    }

    /// One written record as the destination holds it now.
    pub fn see(&mut self, dest_id: &str, values: &[Option<String>]) {
        if self.keys.is_empty() {
            return;
        }
        let at = self.dests.len() as u32;
        self.dests.push(dest_id.into());
        self.ours = self.dests.len();
        for k in 0..self.keys.len() {
            let i = self.keys[k].1;
            if let Some(v) = values.get(i).and_then(|v| v.as_deref()).and_then(|v| self.normalise(k, v)) {
                self.entries[k].push((crate::config::fnv1a(v.as_bytes()), at));
            }
        }
    }

    /// Groups of different destination records whose key values hash alike, per key.
    pub fn suspects(&mut self) -> Vec<Suspects> {
        let mut out = Vec::new();
        for (k, entries) in self.entries.iter_mut().enumerate() {
            entries.sort_unstable();
            let mut i = 0;
            while i < entries.len() {
                let mut j = i + 1;
                while j < entries.len() && entries[j].0 == entries[i].0 {
                    j += 1;
                }
                let dests: BTreeSet<&str> = entries[i..j].iter().map(|(_, d)| &*self.dests[*d as usize]).collect();
                let ours = entries[i..j].iter().any(|(_, d)| (*d as usize) < self.ours);
                if dests.len() > 1 && ours {
                    out.push(Suspects {
                        field: self.keys[k].0.clone(),
                        index: self.keys[k].1,
                        dest_ids: dests.into_iter().map(str::to_string).collect(),
                    });
                }
                i = j;
            }
        }
        out
    }

    /// Confirms suspects with the values read again: records sharing one normalised value.
    pub fn confirm(&self, suspects: &Suspects, read: &HashMap<String, Vec<Option<String>>>) -> Vec<SharedKey> {
        let k = self.keys.iter().position(|(f, _, _)| *f == suspects.field).unwrap_or_default();
        let mut by_value: HashMap<String, BTreeSet<String>> = HashMap::new();
        for d in &suspects.dest_ids {
            if let Some(v) = read.get(d).and_then(|vals| vals.get(suspects.index)).and_then(|v| v.as_deref())
                && let Some(n) = self.normalise(k, v)
            {
                by_value.entry(n).or_default().insert(d.clone());
            }
        }
        let mut shared: Vec<SharedKey> = by_value
            .into_iter()
            .filter(|(_, d)| d.len() > 1)
            .map(|(value, d)| SharedKey {
                field: suspects.field.clone(),
                value,
                dest_ids: d.into_iter().collect(),
                source_ids: Vec::new(),
            })
            .collect();
        shared.sort_by(|a, b| a.value.cmp(&b.value));
        shared
    }
}
