//! PostgreSQL as a source: each object is a table (schema-qualified, identifiers always quoted),
//! read in pages ordered by its id column (keyset paging: a checkpoint is the last id read, so a
//! resumed run continues exactly after it). Every value is read as its text form (`::text`:
//! numerics stay exact, timestamps keep their offset). Rows with no id are reported as failed
//! rows, never skipped. The connection URL comes from the environment variable the project names.

use super::{Batch, Cursor, Source};
use crate::model::{Extracted, FieldNames, SourceRecord};
use async_trait::async_trait;
use color_eyre::eyre::{Result, WrapErr, eyre};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};

pub struct PostgresSource {
    pool: PgPool,
    schema: String,
    describe: String,
}

/// `"name"` with embedded quotes doubled: identifiers are never spliced raw.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The URL held by the environment variable `var` (its value is a secret: never logged).
pub fn url_from_env(var: &str, role: &str) -> Result<String> {
    std::env::var(var).map_err(|_| eyre!("{role}.url_env names the environment variable {var}, which is not set"))
}

impl PostgresSource {
    /// Connects on first use (opening a project never waits on the network).
    pub fn open(url: &str, schema: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_lazy(url)
            .map_err(|e| eyre!("the PostgreSQL source URL is not valid: {e}"))?;
        let describe = format!("PostgreSQL schema {schema}");
        Ok(Self { pool, schema: schema.to_string(), describe })
    }

    fn table(&self, object: &str) -> String {
        format!("{}.{}", ident(&self.schema), ident(object))
    }

    async fn columns(&self, object: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        )
        .bind(&self.schema)
        .bind(object)
        .fetch_all(&self.pool)
        .await
        .wrap_err_with(|| format!("reading the columns of {}", self.table(object)))?;
        if rows.is_empty() {
            return Err(eyre!("the PostgreSQL source has no table {}", self.table(object)));
        }
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }
}

#[async_trait]
impl Source for PostgresSource {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn fields(&self, object: &str) -> Result<FieldNames> {
        Ok(self.columns(object).await?.into_iter().map(|(n, _)| n).collect::<Vec<_>>().into())
    }

    async fn count(&self, object: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", self.table(object)))
            .fetch_one(&self.pool)
            .await
            .wrap_err_with(|| format!("counting {}", self.table(object)))?;
        Ok(n as u64)
    }

    async fn read_batch(&self, object: &str, id_field: &str, cursor: &Cursor, max: usize) -> Result<Batch> {
        let cols = self.columns(object).await?;
        let id_index = cols
            .iter()
            .position(|(n, _)| n == id_field)
            .ok_or_else(|| eyre!("table {} has no id column '{id_field}'", self.table(object)))?;
        let id_type = &cols[id_index].1;
        let list: Vec<String> = cols.iter().map(|(n, _)| format!("{}::text", ident(n))).collect();
        let table = self.table(object);
        let id = ident(id_field);
        let mut records = Vec::with_capacity(max);
        // The first page also reports the rows keyset paging cannot reach: those without an id.
        if cursor.0.is_empty() {
            let sql = format!("SELECT ctid::text, {} FROM {table} WHERE {id} IS NULL", list.join(", "));
            for row in sqlx::query(&sql).fetch_all(&self.pool).await? {
                let ctid: String = row.try_get(0)?;
                let origin = format!("{table} row {ctid}");
                records.push(Extracted::Malformed {
                    source_id: format!("row:{ctid}"),
                    message: format!("{origin}: the id field '{id_field}' is empty"),
                    origin,
                });
            }
        }
        let sql = if cursor.0.is_empty() {
            format!("SELECT {} FROM {table} WHERE {id} IS NOT NULL ORDER BY {id} LIMIT $1", list.join(", "))
        } else {
            // `id_type` comes from the catalog (format_type), not from the project file.
            format!("SELECT {} FROM {table} WHERE {id} > CAST($2 AS {id_type}) ORDER BY {id} LIMIT $1", list.join(", "))
        };
        let mut q = sqlx::query(&sql).bind(max as i64);
        if !cursor.0.is_empty() {
            q = q.bind(&cursor.0);
        }
        let rows = q.fetch_all(&self.pool).await.wrap_err_with(|| format!("reading {table}"))?;
        let mut last = cursor.0.clone();
        let page = rows.len();
        for row in rows {
            let values: Vec<Option<String>> =
                (0..cols.len()).map(|i| row.try_get::<Option<String>, _>(i)).collect::<Result<_, _>>()?;
            let source_id = values[id_index].clone().unwrap_or_default();
            last = source_id.clone();
            records.push(Extracted::Record(SourceRecord {
                origin: format!("{table} {id_field} {source_id}"),
                source_id,
                values,
            }));
        }
        Ok(Batch { records, next: Cursor(last), done: page < max })
    }
}
