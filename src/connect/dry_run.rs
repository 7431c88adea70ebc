//! A destination that reads from the real one and writes nowhere: previews (`--dry-run`) run the
//! whole pipeline against it, so their would-create/update counts come from the real engine.

use super::{Change, Cursor, Destination, NewRecords, WriteResult};
use crate::model::{DestSchema, DestUser, Value};
use async_trait::async_trait;
use color_eyre::eyre::Result;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct DryRunDestination {
    inner: Arc<dyn Destination>,
    next_id: AtomicU64,
}

impl DryRunDestination {
    pub fn new(inner: Arc<dyn Destination>) -> Self {
        Self { inner, next_id: AtomicU64::new(1) }
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
        Ok(out)
    }
    async fn create(&self, _object: &str, records: NewRecords) -> Result<Vec<WriteResult>> {
        Ok(records.rows.iter().map(|_| Ok(format!("dry-{}", self.next_id.fetch_add(1, Ordering::Relaxed)))).collect())
    }
    async fn update(&self, _object: &str, changes: &[Change]) -> Result<Vec<WriteResult>> {
        Ok(changes.iter().map(|c| Ok(c.dest_id.clone())).collect())
    }
    async fn delete(&self, _object: &str, ids: &[String]) -> Result<Vec<WriteResult>> {
        Ok(ids.iter().map(|i| Ok(i.clone())).collect())
    }
    async fn marked(&self, namespace: &str, object: &str) -> Result<Vec<(String, String)>> {
        self.inner.marked(namespace, object).await
    }
}
