//! Counts: every source record in scope, read again now, against its latest outcome in the store.

use super::CountCheck;
use crate::connect::Cursor;
use crate::model::{Extracted, Outcome};
use crate::pipeline::Engine;
use crate::pipeline::plan::ObjectPlan;
use color_eyre::eyre::{Result, WrapErr, eyre};
use std::collections::HashMap;

const PAGE: usize = 5000;

pub async fn check(engine: &Engine, plan: &ObjectPlan) -> Result<CountCheck> {
    let mut latest: HashMap<String, Option<Outcome>> = {
        let store = engine.store().lock().map_err(|_| eyre!("state store lock poisoned"))?;
        tokio::task::block_in_place(|| store.latest_outcomes(&plan.name))?
    };
    let source = engine.source();
    let mut check = CountCheck { source_count: source.count(&plan.source_object).await.ok(), ..Default::default() };
    let mut cursor = Cursor::start();
    loop {
        let batch = source
            .read_batch(&plan.source_object, &plan.id_field, &cursor, PAGE)
            .await
            .wrap_err_with(|| format!("reading {} from the source", plan.name))?;
        for record in &batch.records {
            let sid = match record {
                Extracted::Record(r) => &r.source_id,
                Extracted::Malformed { source_id, .. } => source_id,
            };
            check.in_source += 1;
            match latest.remove(sid) {
                Some(Some(Outcome::Created | Outcome::Updated | Outcome::Merged)) => check.written += 1,
                Some(Some(Outcome::Queued)) => check.queued += 1,
                Some(Some(Outcome::Skipped)) => check.skipped += 1,
                Some(Some(Outcome::Failed)) => check.failed.push(sid.clone()),
                Some(None) => check.rolled_back += 1,
                None => check.no_outcome.push(sid.clone()),
            }
        }
        cursor = batch.next;
        if batch.done {
            break;
        }
    }
    // What is left had an outcome but is gone from the source; only written ones matter.
    let mut gone: Vec<String> = latest
        .into_iter()
        .filter(|(_, o)| matches!(o, Some(Outcome::Created | Outcome::Updated | Outcome::Merged)))
        .map(|(sid, _)| sid)
        .collect();
    gone.sort_unstable();
    for sid in gone {
        check.not_in_source.push(sid);
    }
    Ok(check)
}
