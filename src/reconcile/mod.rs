//! Reconciliation: proof that a migration is complete. It reads the state store and both systems
//! and answers, per object: is every source record accounted for (counts), does the destination
//! hold what Cutover wrote (read-back), do the value distributions and money sums agree, does
//! every child point at a parent that exists (relationships)? What does not agree is a
//! discrepancy, named by a stable key so an operator can accept it with a reason at sign-off.

pub mod format;
mod outcomes;
mod population;
pub mod signoff;
pub mod witness;

pub use crate::compare::{canonical, decimal, same};

use crate::pipeline::Engine;
use crate::store::{now, os_user};
use color_eyre::eyre::{Result, WrapErr, eyre};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How many source ids a list in the report holds; the totals are always exact.
pub const LIST_CAP: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// Records per object compared field by field (seeded sample).
    pub sample: usize,
    /// Compare every written record instead of a sample.
    pub all: bool,
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self { sample: 200, all: false, seed: 1 }
    }
}

/// Source ids, up to [`LIST_CAP`] of them, and how many there are in all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordList {
    pub total: u64,
    pub ids: Vec<String>,
}

impl RecordList {
    pub fn push(&mut self, id: impl Into<String>) {
        self.total += 1;
        if self.ids.len() < LIST_CAP {
            self.ids.push(id.into());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// Source records in scope against what became of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountCheck {
    /// The source's own count, where it gives one.
    pub source_count: Option<u64>,
    /// Records read from the source now.
    pub in_source: u64,
    pub written: u64,
    pub queued: u64,
    pub skipped: u64,
    pub failed: RecordList,
    /// Written, then undone by a rollback (a later run writes them again).
    #[serde(default)]
    pub rolled_back: u64,
    /// The same records, listed: in the source, not in the destination.
    #[serde(default)]
    pub rolled_back_records: RecordList,
    /// Written records whose source values changed since they were written (a delta writes
    /// them): compared by the hash of the values read now against the one kept at the write.
    #[serde(default)]
    pub changed_in_source: RecordList,
    /// In the source, but no run gave them an outcome.
    pub no_outcome: RecordList,
    /// Written by Cutover, but no longer in the source.
    pub not_in_source: RecordList,
}

impl CountCheck {
    pub fn accounted(&self) -> u64 {
        self.written + self.queued + self.skipped + self.failed.total + self.rolled_back
    }

    pub fn balanced(&self) -> bool {
        self.no_outcome.is_empty() && self.not_in_source.is_empty() && self.accounted() == self.in_source
    }
}

/// A field whose destination value is not what Cutover wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDiff {
    pub source_id: String,
    pub dest_id: String,
    pub field: String,
    pub wrote: Option<String>,
    pub found: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadBack {
    /// Written records in the destination.
    pub written: u64,
    /// Records compared field by field.
    pub checked: u64,
    pub identical: u64,
    /// Records written before Cutover kept what it wrote (nothing to compare them with).
    pub no_image: u64,
    /// Written records the destination no longer has (every written record is looked up).
    pub missing: RecordList,
    pub differences: Vec<FieldDiff>,
    pub differences_total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistRow {
    pub value: Option<String>,
    /// A readable name for the value (an owner's name for an owner id).
    pub label: Option<String>,
    pub mapped: u64,
    pub destination: u64,
}

/// Counts per value of a categorical field: the mapped source (what Cutover wrote, after the
/// merge rule) against the destination, over the written records the destination still has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distribution {
    pub field: String,
    pub rows: Vec<DistRow>,
}

impl Distribution {
    pub fn balanced(&self) -> bool {
        self.rows.iter().all(|r| r.mapped == r.destination)
    }
}

/// An exact decimal sum of a numeric field, mapped source against destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SumCheck {
    pub field: String,
    pub mapped: String,
    pub destination: String,
    /// Values that are not numbers, on each side (never silently left out of a sum).
    pub mapped_not_numbers: u64,
    pub destination_not_numbers: u64,
}

impl SumCheck {
    pub fn balanced(&self) -> bool {
        self.mapped == self.destination && self.mapped_not_numbers == self.destination_not_numbers
    }
}

/// Children against their parents in the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relationship {
    pub field: String,
    pub parent: String,
    /// Written children with a parent reference.
    pub linked: u64,
    /// Children whose parent does not exist in the destination.
    pub orphans: RecordList,
    /// Sampled children pointing at another parent than the one Cutover wrote.
    pub wrong_parent: RecordList,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectReport {
    pub object: String,
    pub counts: CountCheck,
    pub readback: ReadBack,
    pub distributions: Vec<Distribution>,
    pub sums: Vec<SumCheck>,
    pub relationships: Vec<Relationship>,
    /// The independent witnesses (see `witness`).
    #[serde(default)]
    pub witnesses: witness::Witnesses,
    /// Records written with warnings, per rule (their latest outcome).
    #[serde(default)]
    pub warnings: Vec<WarningGroup>,
    /// Record linkage's decisions by confidence, over each record's latest outcome (objects
    /// that match by linkage only; left out of the JSON otherwise, so reports of other objects
    /// hash as before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub linkage: Vec<ConfidenceBand>,
}

/// Records whose latest outcome linkage decided (linked: updated/merged; held: queued; created
/// beside a candidate too unlikely), with the best candidate's match probability in a band.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfidenceBand {
    pub outcome: String,
    /// The band's floor: 0.999, 0.99, 0.95, 0.9, 0.8, 0.5 or 0.
    pub from: String,
    pub records: u64,
}

/// Records written with one kind of warning: which, and one example of what was assumed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarningGroup {
    pub rule: String,
    pub records: RecordList,
    pub example: String,
}

/// The warnings of each record's latest write, grouped by rule in rule order.
fn warning_groups(engine: &Engine, plan: &crate::pipeline::plan::ObjectPlan) -> Result<Vec<WarningGroup>> {
    let rows = {
        let store = engine.store().lock().map_err(|_| eyre!("state store lock poisoned"))?;
        tokio::task::block_in_place(|| store.written_with_warnings(&plan.name))?
    };
    let mut groups: std::collections::BTreeMap<String, WarningGroup> = std::collections::BTreeMap::new();
    for (sid, json) in rows {
        let issues: Vec<crate::model::Issue> = serde_json::from_str(&json)
            .wrap_err_with(|| format!("the audit's warnings of {} {sid} are damaged", plan.name))?;
        let mut rules_seen: Vec<crate::model::Rule> = Vec::new();
        for i in issues {
            // A record with the same warning on several fields is one record to verify.
            if rules_seen.contains(&i.rule) {
                continue;
            }
            rules_seen.push(i.rule);
            let g = groups.entry(i.rule.as_str().to_string()).or_insert_with(|| WarningGroup {
                rule: i.rule.as_str().to_string(),
                records: RecordList::default(),
                example: format!("{} {}: {}", crate::text::shown(&sid), i.field, crate::text::shown(&i.message)),
            });
            g.records.push(sid.clone());
        }
    }
    Ok(groups.into_values().collect())
}

fn confidence_bands(engine: &Engine, plan: &crate::pipeline::plan::ObjectPlan) -> Result<Vec<ConfidenceBand>> {
    if plan.linkage.is_none() {
        return Ok(Vec::new());
    }
    let store = engine.store().lock().map_err(|_| eyre!("state store lock poisoned"))?;
    let bands = tokio::task::block_in_place(|| store.linkage_confidence(&plan.name))?;
    Ok(bands
        .into_iter()
        .map(|(outcome, from, records)| ConfidenceBand { outcome, from: format!("{from}"), records })
        .collect())
}

/// Something that does not balance. `key` is stable between reports of the same state, so a
/// sign-off can name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discrepancy {
    pub key: String,
    pub object: String,
    pub check: String,
    pub summary: String,
    pub records: RecordList,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub project: String,
    pub generated_at: String,
    pub generated_by: String,
    /// The newest run in the store when the report was made.
    pub last_run_id: Option<i64>,
    pub options: Options,
    pub objects: Vec<ObjectReport>,
    pub discrepancies: Vec<Discrepancy>,
}

impl Report {
    pub fn balanced(&self) -> bool {
        self.discrepancies.is_empty()
    }

    pub fn verdict(&self) -> &'static str {
        if self.balanced() { "balanced" } else { "not balanced" }
    }

    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// SHA-256 of the JSON report: what a sign-off approved, byte for byte.
    pub fn hash(&self) -> Result<String> {
        let digest = Sha256::digest(serde_json::to_vec(self)?);
        Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn discrepancy(&self, key: &str) -> Option<&Discrepancy> {
        self.discrepancies.iter().find(|d| d.key == key)
    }
}

/// Reconciles every object of the project, parents first. Reads both systems; writes nothing.
pub async fn build(engine: &Engine, options: Options) -> Result<Report> {
    let prepared = engine.prepare().await?;
    let users = engine.destination().users().await?;
    let last_run_id = {
        let store = engine.store().lock().map_err(|_| eyre!("state store lock poisoned"))?;
        store.last_run_id()?
    };
    if last_run_id.is_none() {
        return Err(eyre!("nothing has run yet: run the migration (`cutover run`) before reconciling it"));
    }
    let mut objects = Vec::new();
    for plan in &prepared.plans {
        let counts = outcomes::check(engine, plan).await?;
        let pop = population::check(engine, plan, &prepared.plans, &users, options).await?;
        let destination = witness::destination_count(engine, plan, &prepared.plans).await?;
        let witnesses = witness::Witnesses {
            census: Some(witness::source_census(engine, plan).await?),
            destination_unwitnessed: destination.as_ref().err().cloned(),
            destination: destination.ok(),
            one_to_one: witness::one_to_one(engine, plan)?,
            duplicates: pop.duplicates.0,
            duplicates_total: pop.duplicates.1,
        };
        objects.push(ObjectReport {
            object: plan.name.clone(),
            counts,
            readback: pop.readback,
            distributions: pop.distributions,
            sums: pop.sums,
            relationships: pop.relationships,
            witnesses,
            warnings: warning_groups(engine, plan)?,
            linkage: confidence_bands(engine, plan)?,
        });
    }
    let queued = {
        let store = engine.store().lock().map_err(|_| eyre!("state store lock poisoned"))?;
        let mut held = Vec::new();
        for plan in &prepared.plans {
            held.push((plan.name.clone(), store.pending_queue(&plan.name)?));
        }
        held
    };
    let discrepancies = discrepancies(&objects, &queued, options);
    Ok(Report {
        project: engine.project.config.project.name.clone(),
        generated_at: now(),
        generated_by: os_user(),
        last_run_id,
        options,
        objects,
        discrepancies,
    })
}

fn list(ids: impl IntoIterator<Item = String>) -> RecordList {
    let mut l = RecordList::default();
    for id in ids {
        l.push(id);
    }
    l
}

/// What the independent witnesses found that does not agree.
fn witness_discrepancies(o: &ObjectReport, add: &mut dyn FnMut(&str, &str, String, String, RecordList)) {
    let name = o.object.as_str();
    let w = &o.witnesses;
    if let Some(census) = &w.census
        && census.records != o.counts.in_source
    {
        let problems = if census.problems.is_empty() {
            String::new()
        } else {
            format!(
                "; where the source is broken: {}",
                census.problems.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            )
        };
        add(
            name,
            "source count",
            format!("{name}/source_count"),
            format!(
                "the source's own count finds {} records, reading it finds {}: records may be lost or invented by \
                 the reading{problems}",
                census.records, o.counts.in_source
            ),
            RecordList::default(),
        );
    }
    if let Some(census) = w.census.as_ref().filter(|c| c.doubt_count > 0) {
        add(
            name,
            "source count",
            format!("{name}/quoting_doubt"),
            format!(
                "{} read as valid CSV but look like a quote left open — each line of the quoted field holds a \
                 whole row of its own, so two rows may have been read as one: {}",
                crate::text::count(census.doubt_count, "record"),
                census.doubts.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            ),
            RecordList::default(),
        );
    }
    if let Some(d) = w.destination.as_ref().filter(|d| !d.balanced()) {
        add(
            name,
            "destination count",
            format!("{name}/destination_count"),
            format!(
                "{} holds {} records: it held {} before the migration and Cutover created {} since, so {} records \
                 appeared or vanished beside Cutover",
                d.dest_object,
                d.now,
                d.before,
                d.created,
                d.now.abs_diff(d.expected)
            ),
            RecordList::default(),
        );
    }
    let merged = &w.one_to_one;
    if merged.merged_total > 0 {
        add(
            name,
            "one-to-one",
            format!("{name}/merged"),
            format!(
                "{} {} fed by more than one source record (the first is its survivor, the others filled its \
                 blanks): confirm they are the same people",
                crate::text::count(merged.merged_total, "destination record"),
                if merged.merged_total == 1 { "is" } else { "are each" }
            ),
            list(merged.merged.iter().flat_map(|m| m.survivor.iter().chain(&m.members).cloned())),
        );
    }
    if !merged.unrecorded.is_empty() {
        add(
            name,
            "one-to-one",
            format!("{name}/unrecorded_merge"),
            format!(
                "{} fed by several source records without one recorded survivor and an audited merge for each \
                 of the others",
                crate::text::count(merged.unrecorded.total, "destination record")
            ),
            merged.unrecorded.clone(),
        );
    }
    let mut fields: Vec<&str> = w.duplicates.iter().map(|d| d.field.as_str()).collect();
    fields.dedup();
    for field in fields {
        let groups: Vec<&witness::SharedKey> = w.duplicates.iter().filter(|d| d.field == field).collect();
        add(
            name,
            "duplicates",
            format!("{name}/duplicates/{field}"),
            format!(
                "{} values of {field} are held by more than one record this migration wrote or matched (e.g. {} on \
                 {})",
                groups.len(),
                crate::text::shown(&groups[0].value),
                groups[0].dest_ids.join(", ")
            ),
            list(groups.iter().flat_map(|g| g.source_ids.iter().cloned())),
        );
    }
}

/// Every check that does not balance, in report order.
fn discrepancies(
    objects: &[ObjectReport],
    queued: &[(String, Vec<(String, String)>)],
    options: Options,
) -> Vec<Discrepancy> {
    let mut out = Vec::new();
    let mut add = |object: &str, check: &str, key: String, summary: String, records: RecordList| {
        out.push(Discrepancy { key, object: object.into(), check: check.into(), summary, records });
    };
    for o in objects {
        let name = o.object.as_str();
        let c = &o.counts;
        if !c.no_outcome.is_empty() {
            add(
                name,
                "counts",
                format!("{name}/no_outcome"),
                format!("{} source records have no outcome: no run has processed them", c.no_outcome.total),
                c.no_outcome.clone(),
            );
        }
        if !c.failed.is_empty() {
            add(
                name,
                "counts",
                format!("{name}/failed"),
                format!(
                    "{} failed: unreadable in the source or refused by the destination (`cutover export audit` \
                     gives each one's reason)",
                    crate::text::count(c.failed.total, "record")
                ),
                c.failed.clone(),
            );
        }
        if !c.rolled_back_records.is_empty() {
            add(
                name,
                "counts",
                format!("{name}/rolled_back"),
                format!(
                    "{} rolled back: in the source, not in the destination (run them again, or accept this)",
                    crate::text::count(c.rolled_back_records.total, "record")
                ),
                c.rolled_back_records.clone(),
            );
        }
        if !c.changed_in_source.is_empty() {
            add(
                name,
                "counts",
                format!("{name}/source_changed"),
                format!(
                    "{} changed in the source since Cutover wrote them (`cutover run --delta update-changed` \
                     writes them)",
                    crate::text::count(c.changed_in_source.total, "record")
                ),
                c.changed_in_source.clone(),
            );
        }
        for g in &o.warnings {
            add(
                name,
                "warnings",
                format!("{name}/warning/{}", g.rule),
                format!(
                    "{} written with a warning ({}) to verify — e.g. {}",
                    crate::text::count(g.records.total, "record"),
                    g.rule,
                    g.example
                ),
                g.records.clone(),
            );
        }
        witness_discrepancies(o, &mut add);
        let mut reasons: Vec<(String, RecordList)> = Vec::new();
        if let Some((_, held)) = queued.iter().find(|(n, _)| n == name) {
            for (sid, reason) in held {
                match reasons.iter_mut().find(|(r, _)| r == reason) {
                    Some((_, l)) => l.push(sid.clone()),
                    None => reasons.push((reason.clone(), list([sid.clone()]))),
                }
            }
        }
        for (reason, records) in reasons {
            add(
                name,
                "queue",
                format!("{name}/queued/{reason}"),
                format!("{} held in the conflict queue ({reason})", crate::text::count(records.total, "record")),
                records,
            );
        }
        if !c.not_in_source.is_empty() {
            add(
                name,
                "counts",
                format!("{name}/not_in_source"),
                format!("{} no longer in the source", crate::text::count(c.not_in_source.total, "written record")),
                c.not_in_source.clone(),
            );
        }
        let r = &o.readback;
        if !r.missing.is_empty() {
            add(
                name,
                "read-back",
                format!("{name}/missing"),
                format!("{} missing from the destination", crate::text::count(r.missing.total, "written record")),
                r.missing.clone(),
            );
        }
        let mut by_field: Vec<(String, RecordList)> = Vec::new();
        for d in &r.differences {
            match by_field.iter_mut().find(|(f, _)| *f == d.field) {
                Some((_, l)) => l.push(d.source_id.clone()),
                None => by_field.push((d.field.clone(), list([d.source_id.clone()]))),
            }
        }
        for (field, records) in &by_field {
            add(
                name,
                "read-back",
                format!("{name}/readback/{field}"),
                format!("{field} differs from what Cutover wrote on {}", crate::text::count(records.total, "record")),
                records.clone(),
            );
        }
        for d in o.distributions.iter().filter(|d| !d.balanced()) {
            // With every record compared, the read-back already names the records.
            if options.all && by_field.iter().any(|(f, _)| *f == d.field) {
                continue;
            }
            let off: u64 = d.rows.iter().map(|r| r.mapped.abs_diff(r.destination)).sum();
            add(
                name,
                "distribution",
                format!("{name}/distribution/{}", d.field),
                format!("{} values differ between the mapped source and the destination ({off} counts off)", d.field),
                RecordList::default(),
            );
        }
        for s in o.sums.iter().filter(|s| !s.balanced()) {
            add(
                name,
                "sum",
                format!("{name}/sum/{}", s.field),
                format!("sum of {}: mapped source {} vs destination {}", s.field, s.mapped, s.destination),
                RecordList::default(),
            );
        }
        for rel in &o.relationships {
            if !rel.orphans.is_empty() {
                add(
                    name,
                    "relationship",
                    format!("{name}/orphans/{}", rel.field),
                    format!(
                        "{} records point at a {} that does not exist ({})",
                        rel.orphans.total, rel.parent, rel.field
                    ),
                    rel.orphans.clone(),
                );
            }
        }
    }
    out
}
