//! MySQL/MariaDB as a source: each object is a table of the URL's database or the SQL query the
//! project names for it, read in pages ordered by its id (keyset paging: a checkpoint is the
//! last id read). Rows with no id are reported as failed rows, never skipped.

use super::{Keyset, as_text, columns, ident, pool, text};
use crate::connect::sql::declared_type;
use crate::connect::{Batch, Cursor, Source};
use crate::model::{Extracted, FieldNames, FieldType};
use async_trait::async_trait;
use color_eyre::eyre::{Result, WrapErr, eyre};
use indexmap::IndexMap;
use sqlx::mysql::MySqlPool;
use sqlx::{Column as _, Executor, Row, TypeInfo};

pub struct MySqlSource {
    pool: MySqlPool,
    queries: IndexMap<String, String>,
}

struct Relation {
    from: String,
    label: String,
    columns: Vec<(String, FieldType)>,
}

impl MySqlSource {
    pub fn open(url: &str, queries: IndexMap<String, String>) -> Result<Self> {
        Ok(Self { pool: pool(url, "source", true)?, queries })
    }

    async fn relation(&self, object: &str) -> Result<Relation> {
        if let Some(query) = self.queries.get(object) {
            let from = format!("({}) AS q", query.trim().trim_end_matches(';'));
            let described = (&self.pool)
                .describe(&format!("SELECT * FROM {from}"))
                .await
                .wrap_err_with(|| format!("the query for {object} (source.queries.{object}) does not run"))?;
            let columns = described
                .columns()
                .iter()
                .map(|c| (c.name().to_string(), declared_type(c.type_info().name()).0))
                .collect();
            return Ok(Relation { from, label: format!("query {object}"), columns });
        }
        let columns = columns(&self.pool, object).await?.into_iter().map(|c| (c.name, c.ty)).collect();
        Ok(Relation { from: ident(object), label: ident(object), columns })
    }
}

#[async_trait]
impl Source for MySqlSource {
    fn describe(&self) -> String {
        "MySQL/MariaDB database".into()
    }

    async fn fields(&self, object: &str) -> Result<FieldNames> {
        Ok(self.relation(object).await?.columns.into_iter().map(|(n, _)| n).collect::<Vec<_>>().into())
    }

    async fn count(&self, object: &str) -> Result<u64> {
        let rel = self.relation(object).await?;
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", rel.from))
            .fetch_one(&self.pool)
            .await
            .wrap_err_with(|| format!("counting {}", rel.label))?;
        Ok(n as u64)
    }

    async fn read_batch(&self, object: &str, id_field: &str, cursor: &Cursor, max: usize) -> Result<Batch> {
        let rel = self.relation(object).await?;
        let id_index = rel
            .columns
            .iter()
            .position(|(n, _)| n == id_field)
            .ok_or_else(|| eyre!("{} has no id column '{id_field}'", rel.label))?;
        let list: Vec<String> = rel.columns.iter().map(|(n, _)| as_text(n)).collect();
        let (from, label) = (&rel.from, &rel.label);
        let id = ident(id_field);
        let mut records = Vec::with_capacity(max);
        if cursor.0.is_empty() {
            let sql = format!("SELECT COUNT(*) FROM {from} WHERE {id} IS NULL");
            let missing: i64 = sqlx::query_scalar(&sql).fetch_one(&self.pool).await?;
            for n in 1..=missing {
                let origin = format!("{label} row {n} without an id");
                records.push(Extracted::Malformed {
                    source_id: format!("row:no-id-{n}"),
                    message: format!("{origin}: the id field '{id_field}' is empty"),
                    origin,
                });
            }
        }
        let list = list.join(", ");
        let keyset = Keyset { from, id: id_field, ty: rel.columns[id_index].1, list: &list, id_index };
        let (rows, last, done) =
            keyset.page(&self.pool, &cursor.0, max).await.wrap_err_with(|| format!("reading {label}"))?;
        for row in rows {
            let values = (0..rel.columns.len()).map(|i| text(&row, i, rel.columns[i].1)).collect::<Result<Vec<_>>>()?;
            let raw = row.try_get::<Option<String>, _>(id_index)?.unwrap_or_default();
            records.push(crate::connect::sql::extracted(label, id_field, &raw, id_index, values));
        }
        Ok(Batch { records, next: Cursor(last), done })
    }
}
