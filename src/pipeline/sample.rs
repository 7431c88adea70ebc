//! A mapping sample: the first records of one object, mapped and validated with the project's
//! rules as they stand, written nowhere. The console's mapping editor shows it while the
//! operator edits, so each field's issue is visible before anything runs.

use super::map::{Mapper, Owners};
use super::plan::ObjectPlan;
use super::validate::validate;
use crate::connect::{Batch, Cursor, Source};
use crate::model::{Extracted, Issue, Value};
use color_eyre::eyre::Result;
use indexmap::IndexMap;

/// One source record as the current mapping would write it.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRecord {
    pub source_id: String,
    pub origin: String,
    /// Source field → value, as read.
    pub source: IndexMap<String, Value>,
    /// Destination field → value, in the mapping's order.
    pub values: IndexMap<String, Value>,
    /// What would hold it in the queue (or fail it), field by field.
    pub issues: Vec<Issue>,
    /// Why a run would make no record of it (outside the object's `where`, a blank `repeat` entry).
    pub skipped: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub object: String,
    /// Every field the source has for this object (mapped, excluded or not).
    pub source_fields: Vec<String>,
    pub records: Vec<SampleRecord>,
}

/// The first `n` records of `plan`'s object, as read.
pub async fn read(source: &dyn Source, plan: &ObjectPlan, n: usize) -> Result<Batch> {
    source.read_batch(&plan.source_object, &plan.id_field, &Cursor::start(), n).await
}

/// Maps and validates the records read (mapping may read the store: call it off the async threads).
pub fn map(batch: Batch, plan: &ObjectPlan, owners: &Owners, mapper: &Mapper, n: usize) -> Result<Sample> {
    let none = IndexMap::new();
    let mut records = Vec::with_capacity(batch.records.len());
    for r in batch.records.into_iter().take(n) {
        match r {
            Extracted::Record(rec) => {
                let source = plan.source_fields.iter().cloned().zip(rec.values.iter().cloned()).collect();
                let skipped = match (&plan.filter, &plan.repeat) {
                    (Some(f), _) if !f.admits(&rec.values) => Some(format!("outside the object's where: {f}")),
                    (_, Some(r)) => r.no_row(&rec.values),
                    _ => None,
                };
                let m = mapper.map(rec, &none)?;
                let mut issues = m.issues.clone();
                issues.extend(validate(plan, owners, &m.values, &m.issues, None));
                records.push(SampleRecord {
                    source_id: m.source.source_id.clone(),
                    origin: m.source.origin.clone(),
                    source,
                    values: plan.dest_fields.iter().cloned().zip(m.values).collect(),
                    issues: if skipped.is_some() { Vec::new() } else { issues },
                    skipped,
                });
            }
            Extracted::Malformed { source_id, origin, message } => records.push(SampleRecord {
                source_id,
                origin,
                source: IndexMap::new(),
                values: IndexMap::new(),
                issues: vec![Issue {
                    field: String::new(),
                    rule: crate::model::Rule::Type,
                    value: None,
                    message,
                    suggestion: None,
                }],
                skipped: None,
            }),
        }
    }
    Ok(Sample { object: plan.name.clone(), source_fields: plan.source_fields.to_vec(), records })
}
