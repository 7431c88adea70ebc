//! Runs over part of the source: a delta (what is new or changed) or a seeded sample for a test
//! sync. The extract stage keeps only the records in scope; everything after it is the same.

use super::delta::DeltaFilter;
use super::plan::{ObjectPlan, SourceExpr};
use crate::connect::{Cursor, Source};
use crate::model::{Extracted, SourceRecord};
use color_eyre::eyre::{Result, WrapErr};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Which part of the source a run takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Delta(super::delta::DeltaMode),
    /// `n` records per object, chosen by `seed` (the same seed, the same records).
    Sample {
        n: usize,
        seed: u64,
    },
}

/// One object's scope.
pub enum Scope {
    Delta(DeltaFilter),
    Ids(HashSet<String>),
}

impl Scope {
    pub fn wants(&self, r: &SourceRecord) -> bool {
        match self {
            Scope::Delta(f) => f.wants(r),
            Scope::Ids(ids) => ids.contains(&r.source_id),
        }
    }

    /// How many records the scope holds, when known in advance: never — a sample knows its
    /// ids, but an id the export repeats is two records, and children come with their parents
    /// ("9 of 8 records processed" was shown).
    pub fn size(&self) -> Option<u64> {
        match self {
            Scope::Delta(_) | Scope::Ids(_) => None,
        }
    }
}

/// A record's place in the sample, its id, and the parents it points at: (object, source id).
type Ranked = (u64, String, Vec<(String, String)>);

/// A record's place in a seeded sample (the sample is the `n` smallest): the same seed, the same
/// records, whatever order the source returns them in. Test syncs and read-back share it.
pub fn seeded_rank(seed: u64, id: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(id.as_bytes());
    let d = h.finalize();
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// A seeded sample of `n` records per object, closed over parents: every parent a sampled
/// record points at is sampled too, so the test sync shows the children as a run would treat
/// them — not as orphans of the sample. Reads each object's source once.
pub async fn sample(
    source: &dyn Source,
    plans: &[Arc<ObjectPlan>],
    n: usize,
    seed: u64,
) -> Result<HashMap<String, HashSet<String>>> {
    let mut required: HashMap<String, HashSet<String>> = HashMap::new();
    let mut out = HashMap::new();
    // Children first: their parents' samples must hold what they point at.
    for plan in plans.iter().rev() {
        let links: Vec<(usize, &str)> = plan
            .rules
            .iter()
            .filter_map(|r| match (&r.expr, r.parent.as_deref()) {
                (SourceExpr::Field(i), Some(p)) => Some((*i, p)),
                _ => None,
            })
            .collect();
        let mut records: Vec<Ranked> = Vec::new();
        let mut cursor = Cursor::start();
        loop {
            let batch = source
                .read_batch(&plan.source_object, &plan.id_field, &cursor, 5000)
                .await
                .wrap_err_with(|| format!("reading {} for the sample", plan.name))?;
            for r in batch.records {
                let (id, parents) = match r {
                    Extracted::Record(rec) => {
                        let parents = links
                            .iter()
                            .filter_map(|(i, p)| {
                                rec.values
                                    .get(*i)
                                    .and_then(|v| v.as_deref())
                                    .map(str::trim)
                                    .filter(|v| !v.is_empty())
                                    .map(|v| (p.to_string(), v.to_string()))
                            })
                            .collect();
                        (rec.source_id, parents)
                    }
                    Extracted::Malformed { source_id, .. } => (source_id, Vec::new()),
                };
                records.push((seeded_rank(seed, &id), id, parents));
            }
            cursor = batch.next;
            if batch.done {
                break;
            }
        }
        let must = required.remove(&plan.name).unwrap_or_default();
        records.sort_unstable_by_key(|r| r.0);
        let mut chosen = HashSet::new();
        for (i, (_, id, parents)) in records.into_iter().enumerate() {
            if i < n || must.contains(&id) {
                for (p, v) in parents {
                    required.entry(p).or_default().insert(v);
                }
                chosen.insert(id);
            }
        }
        out.insert(plan.name.clone(), chosen);
    }
    Ok(out)
}
