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
    let mut latest: HashMap<(String, u32), Option<Outcome>> = {
        let store = engine.store().lock().map_err(|_| eyre!("state store lock poisoned"))?;
        tokio::task::block_in_place(|| store.latest_outcomes(&plan.name))?
    };
    // What each written record's source values hashed to when written (the engine's hash of
    // the values as read; compared here with the values this pass reads).
    let hashes: HashMap<String, Option<String>> = {
        let store = engine.store().lock().map_err(|_| eyre!("state store lock poisoned"))?;
        tokio::task::block_in_place(|| store.source_hashes(&plan.name))?
    };
    let source = engine.source();
    let mut check = CountCheck { source_count: source.count(&plan.source_object).await.ok(), ..Default::default() };
    // Rows under each id, counted here: the second row under an id is a record of its own.
    let mut rows: HashMap<String, u32> = HashMap::new();
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
            let n = rows.entry(sid.clone()).or_default();
            *n += 1;
            let shown = if *n == 1 { sid.clone() } else { format!("{sid} (row {n} under this id)") };
            match latest.remove(&(sid.clone(), *n)) {
                Some(Some(o)) if o.is_written() => {
                    check.written += 1;
                    if let (Extracted::Record(r), 1, Some(Some(then))) = (record, *n, hashes.get(sid))
                        && crate::pipeline::delta::source_hash(&r.values) != *then
                    {
                        check.changed_in_source.push(shown.clone());
                    }
                }
                Some(Some(Outcome::Queued)) => check.queued += 1,
                Some(Some(Outcome::Skipped)) => check.skipped += 1,
                Some(Some(_)) => check.failed.push(shown),
                Some(None) => {
                    check.rolled_back += 1;
                    check.rolled_back_records.push(shown);
                }
                None => check.no_outcome.push(shown),
            }
        }
        cursor = batch.next;
        if batch.done {
            break;
        }
    }
    // What is left had an outcome but is gone from the source; only written ones matter.
    let mut gone: Vec<String> =
        latest.into_iter().filter(|(_, o)| o.is_some_and(Outcome::is_written)).map(|((sid, _), _)| sid).collect();
    gone.sort_unstable();
    for sid in gone {
        check.not_in_source.push(sid);
    }
    Ok(check)
}
