//! A destination that reads from the real one and writes nowhere: previews (`--dry-run`) run the
//! whole pipeline against it, so their would-create/update counts come from the real engine.

use super::{Change, Cursor, Destination, NewRecords, WriteResult};
use crate::model::{DestSchema, DestUser, Value};
use async_trait::async_trait;
use color_eyre::eyre::{Result, eyre};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub struct DryRunDestination {
    inner: Arc<dyn Destination>,
    next_id: AtomicU64,
    /// What the preview pretended to write, by object and id: a later batch reads a record it
    /// "created" or "updated" as the run would have left it (a duplicate further down the file
    /// finds it, as in a real run), not as blank.
    written: Mutex<HashMap<(String, String), HashMap<String, Value>>>,
}

impl DryRunDestination {
    pub fn new(inner: Arc<dyn Destination>) -> Self {
        Self { inner, next_id: AtomicU64::new(1), written: Mutex::new(HashMap::new()) }
    }

    fn remember(&self, object: &str, id: &str, values: impl IntoIterator<Item = (String, Value)>) {
        if let Ok(mut written) = self.written.lock() {
            written.entry((object.to_string(), id.to_string())).or_default().extend(values);
        }
    }
}

#[async_trait]
impl Destination for DryRunDestination {
    fn describe(&self) -> String {
        format!("{} (dry run: nothing is written)", self.inner.describe())
    }
    async fn schema(&self, object: &str) -> Result<DestSchema> {
        self.inner.schema(object).await
    }
    async fn users(&self) -> Result<Vec<DestUser>> {
        self.inner.users().await
    }
    async fn scan(
        &self,
        object: &str,
        fields: &[String],
        after: &Cursor,
        max: usize,
    ) -> Result<(Vec<(String, Vec<Value>)>, Cursor, bool)> {
        self.inner.scan(object, fields, after, max).await
    }
    async fn read(&self, object: &str, ids: &[String], fields: &[String]) -> Result<HashMap<String, Vec<Value>>> {
        let real: Vec<String> = ids.iter().filter(|i| !i.starts_with("dry-")).cloned().collect();
        let mut out = self.inner.read(object, &real, fields).await?;
        for id in ids.iter().filter(|i| i.starts_with("dry-")) {
            out.insert(id.clone(), vec![None; fields.len()]);
        }
        let written = self.written.lock().map_err(|_| eyre!("the preview's written records lock is poisoned"))?;
        for (id, values) in out.iter_mut() {
            if let Some(wrote) = written.get(&(object.to_string(), id.clone())) {
                for (f, v) in fields.iter().zip(values.iter_mut()) {
                    if let Some(w) = wrote.get(f) {
                        *v = w.clone();
                    }
                }
            }
        }
        Ok(out)
    }
    async fn create(&self, object: &str, records: NewRecords) -> Result<Vec<WriteResult>> {
        Ok(records
            .rows
            .iter()
            .map(|row| {
                let id = format!("dry-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
                self.remember(object, &id, records.fields.iter().cloned().zip(row.iter().cloned()));
                Ok(id)
            })
            .collect())
    }
    async fn update(&self, object: &str, changes: &[Change]) -> Result<Vec<WriteResult>> {
        Ok(changes
            .iter()
            .map(|c| {
                self.remember(object, &c.dest_id, c.values.iter().cloned());
                Ok(c.dest_id.clone())
            })
            .collect())
    }
    async fn delete(&self, _object: &str, ids: &[String]) -> Result<Vec<WriteResult>> {
        Ok(ids.iter().map(|i| Ok(i.clone())).collect())
    }
    fn cost_of(&self, writes: &[super::PlannedWrites]) -> Option<Vec<String>> {
        self.inner.cost_of(writes)
    }
    fn notices(&self) -> Vec<String> {
        self.inner.notices()
    }
    async fn marked(&self, namespace: &str, object: &str) -> Result<Vec<(String, String)>> {
        self.inner.marked(namespace, object).await
    }
    async fn find_created(
        &self,
        object: &str,
        wanted: &[(String, serde_json::Value)],
    ) -> Result<Option<Vec<Option<String>>>> {
        self.inner.find_created(object, wanted).await
    }
}
