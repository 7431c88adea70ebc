//! Setting up an object's linkage when its pass starts: the destination's records read once
//! (the compared fields only), the model estimated from the first records of the source — or
//! the one this run already estimated, when it resumes — and kept in the state store.

use super::em::Model;
use super::index::{Holder, LinkIndex};
use super::link::Values;
use super::setup::LinkagePlan;
use crate::connect::Cursor;
use crate::model::Extracted;
use crate::pipeline::map::Owners;
use crate::pipeline::plan::ObjectPlan;
use crate::pipeline::run::{Engine, lock, sync};
use color_eyre::eyre::{Result, WrapErr};
use std::sync::Arc;
use tracing::info;

/// Source records the model is estimated from: the first this many in scope. Enough pairs for
/// every weight; bounded, so memory stays flat however large the source.
pub const SAMPLE: usize = 20_000;

impl Engine {
    /// The object's linkage index for run `run_id`, or `None` when it matches by exact keys;
    /// `recovered`: the records an interrupted attempt created (source id → destination id);
    /// `records`: how many the source holds, when it says.
    /// The model is the run's own when it has one (it resumes); else, with `reuse_latest` (a
    /// reprocess weighs records as the run that held them did), the newest run's; else the
    /// newest run's when it weighs the same fields the same way — a re-run decides as the run
    /// before it did, never anew on weights the records it created have moved (a second run of
    /// an unchanged export created 183 of the records the first had held for review) —; else it
    /// is estimated from the source.
    pub(crate) async fn load_linkage(
        &self,
        run_id: i64,
        plan: &Arc<ObjectPlan>,
        owners: &Arc<Owners>,
        reuse_latest: bool,
        recovered: &foldhash::HashMap<String, String>,
        records: Option<u64>,
    ) -> Result<Option<LinkIndex>> {
        let Some(linkage) = plan.linkage.clone() else { return Ok(None) };
        // Records an interrupted attempt created and the store never recorded are not there yet
        // as this run sees it: they join when their source record's turn comes (adopted), as
        // they did in the attempt.
        let adopted: std::collections::HashSet<&String> = recovered.values().collect();
        let mut dest = self.scan_for_linkage(plan, &linkage).await?;
        dest.retain(|(id, _)| !adopted.contains(id));
        let compared = linkage.compared();
        let stored = sync(|| -> Result<Option<Model>> {
            let store = lock(&self.store)?;
            if let Some(own) = store.linkage_model(run_id, &plan.name)? {
                return Ok(serde_json::from_str(&own).ok());
            }
            let Some((run, latest)) = store.latest_linkage_model(&plan.name)? else { return Ok(None) };
            let Ok(latest) = serde_json::from_str::<Model>(&latest) else { return Ok(None) };
            if reuse_latest {
                return Ok(Some(latest));
            }
            if latest.compared != compared {
                return Ok(None);
            }
            store.save_linkage_model(run_id, &plan.name, &serde_json::to_string(&latest)?)?;
            info!(object = %plan.name, from_run = run, "linkage weights of an earlier run used again");
            Ok(Some(latest))
        })?;
        let model = match stored {
            // The file's weights apply to a stored model too (they may have changed since).
            Some(model) => linkage.with_overrides(model),
            _ => {
                let sample = self.source_sample(plan, &linkage, owners).await?;
                let values: Vec<Values> = dest.iter().map(|(_, v)| v.clone()).collect();
                let records = records.map_or(sample.len(), |n| n as usize);
                let mut trained = linkage.linker.train(&sample, &values, records);
                trained.compared = compared;
                // Kept as estimated: the file's weights apply to it wherever it is used.
                let json = serde_json::to_string(&trained)?;
                let model = linkage.with_overrides(trained);
                sync(|| lock(&self.store)?.save_linkage_model(run_id, &plan.name, &json))?;
                info!(
                    object = %plan.name, sample = sample.len(), destination = values.len(), rounds = model.rounds,
                    lambda = model.lambda, "linkage weights estimated"
                );
                model
            }
        };
        let mut index = LinkIndex::new(linkage, model);
        for (id, values) in dest {
            index.add(Holder::Dest(id), values, false, false);
        }
        index.note_fed(sync(|| lock(&self.store)?.fed_records(&plan.name))?);
        for line in index.weights_table() {
            info!(object = %plan.name, "linkage weights: {line}");
        }
        Ok(Some(index))
    }

    /// Every destination record's compared fields.
    async fn scan_for_linkage(&self, plan: &ObjectPlan, linkage: &LinkagePlan) -> Result<Vec<(String, Values)>> {
        let mut out = Vec::new();
        let mut cursor = Cursor::start();
        loop {
            let (rows, next, done) = self
                .dest
                .scan(&plan.dest_object, &linkage.fields, &cursor, 5000)
                .await
                .wrap_err_with(|| format!("reading {} in the destination for record linkage", plan.dest_object))?;
            out.extend(
                rows.into_iter().map(|(id, v)| (id, v.into_iter().map(|x| x.filter(|s| !s.is_empty())).collect())),
            );
            cursor = next;
            if done {
                return Ok(out);
            }
        }
    }

    /// The compared fields of the first [`SAMPLE`] source records in the object's scope, mapped
    /// as the run maps them.
    async fn source_sample(
        &self,
        plan: &Arc<ObjectPlan>,
        linkage: &LinkagePlan,
        owners: &Arc<Owners>,
    ) -> Result<Vec<Values>> {
        let mapper = self.mapper(plan, owners)?;
        let none = indexmap::IndexMap::new();
        let mut out = Vec::new();
        let mut cursor = Cursor::start();
        loop {
            let batch = self.source.read_batch(&plan.source_object, &plan.id_field, &cursor, 1000).await?;
            for r in batch.records {
                let Extracted::Record(rec) = r else { continue };
                let in_scope = plan.filter.as_ref().is_none_or(|f| f.admits(&rec.values))
                    && plan.repeat.as_ref().is_none_or(|r| r.no_row(&rec.values).is_none());
                if !in_scope {
                    continue;
                }
                let mapped = sync(|| mapper.map(rec, &none))?;
                out.push(linkage.values(&mapped.values));
                if out.len() >= SAMPLE {
                    return Ok(out);
                }
            }
            if batch.done {
                return Ok(out);
            }
            cursor = batch.next;
        }
    }
}
