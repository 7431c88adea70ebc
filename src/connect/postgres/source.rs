//! PostgreSQL as a source: each object is a table (schema-qualified) or the SQL query the project
//! names for it, read in pages ordered by its id (keyset paging: a checkpoint is the last id
//! read, so a resumed run continues exactly after it). Values are read as their text form
//! (numerics stay exact), date-times in RFC 3339 UTC. Rows with no id are reported as failed rows,
//! never skipped.

use super::{Keyset, columns, ident, pool, qualified, text};
use crate::connect::sql::declared_type;
use crate::connect::{Batch, Cursor, Source};
use crate::model::{Extracted, FieldNames, FieldType};
use async_trait::async_trait;
use color_eyre::eyre::{Result, WrapErr, eyre};
use indexmap::IndexMap;
use sqlx::postgres::PgPool;
use sqlx::{Column as _, Executor, Row, TypeInfo};

pub struct PostgresSource {
    pool: PgPool,
    schema: String,
    /// Source object → the SQL query standing for it.
    queries: IndexMap<String, String>,
}

/// What one object is read from: `FROM` text and its columns (name, SQL type, field type).
struct Relation {
    from: String,
    label: String,
    columns: Vec<(String, String, FieldType)>,
}

impl PostgresSource {
    pub fn open(url: &str, schema: &str, queries: IndexMap<String, String>) -> Result<Self> {
        Ok(Self { pool: pool(url, "source", true)?, schema: schema.to_string(), queries })
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
                .map(|c| {
                    let sql_type = c.type_info().name().to_string();
                    let ty = declared_type(&sql_type).0;
                    (c.name().to_string(), sql_type, ty)
                })
                .collect();
            return Ok(Relation { from, label: format!("query {object}"), columns });
        }
        let columns =
            columns(&self.pool, &self.schema, object).await?.into_iter().map(|c| (c.name, c.sql_type, c.ty)).collect();
        let label = qualified(&self.schema, object);
        Ok(Relation { from: format!("{label} AS q"), label, columns })
    }
}

#[async_trait]
impl Source for PostgresSource {
    fn describe(&self) -> String {
        format!("PostgreSQL schema {}", self.schema)
    }

    async fn fields(&self, object: &str) -> Result<FieldNames> {
        Ok(self.relation(object).await?.columns.into_iter().map(|(n, _, _)| n).collect::<Vec<_>>().into())
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
            .position(|(n, _, _)| n == id_field)
            .ok_or_else(|| eyre!("{} has no id column '{id_field}'", rel.label))?;
        let list: Vec<String> = rel.columns.iter().map(|(n, _, _)| format!("q.{}::text", ident(n))).collect();
        let list = list.join(", ");
        let (from, label) = (&rel.from, &rel.label);
        let mut records = Vec::with_capacity(max);
        // The first page also reports the rows keyset paging cannot reach: those without an id.
        if cursor.0.is_empty() {
            let sql = format!("SELECT {list} FROM {from} WHERE q.{} IS NULL", ident(id_field));
            for (n, _) in sqlx::query(&sql).fetch_all(&self.pool).await?.iter().enumerate() {
                let origin = format!("{label} row {} without an id", n + 1);
                records.push(Extracted::Malformed {
                    source_id: format!("row:no-id-{}", n + 1),
                    message: format!("{origin}: the id field '{id_field}' is empty"),
                    origin,
                });
            }
        }
        let keyset = Keyset { from, id: id_field, sql_type: &rel.columns[id_index].1, list: &list, id_index };
        let (rows, last, done) =
            keyset.page(&self.pool, &cursor.0, max).await.wrap_err_with(|| format!("reading {label}"))?;
        for row in rows {
            let values = (0..rel.columns.len()).map(|i| text(&row, i, rel.columns[i].2)).collect::<Result<Vec<_>>>()?;
            let raw = row.try_get::<Option<String>, _>(id_index)?.unwrap_or_default();
            records.push(crate::connect::sql::extracted(label, id_field, &raw, id_index, values));
        }
        Ok(Batch { records, next: Cursor(last), done })
    }
}
