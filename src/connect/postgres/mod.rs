//! PostgreSQL, as a source ([`source`]) and as a destination ([`destination`]), through sqlx over
//! rustls. Identifiers are always quoted; values are always bound, as text cast to the column's
//! type from the catalog, so numerics and dates travel exactly in the pipeline's spelling.

pub mod destination;
pub mod source;

pub use destination::PostgresDestination;
pub use source::PostgresSource;

use super::sql::{db_message as message, declared_type};
use crate::model::FieldType;
use color_eyre::eyre::{Result, WrapErr, eyre};
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;

/// `"name"` with embedded quotes doubled: identifiers are never spliced raw.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A pool that connects on first use (opening a project never waits on the network). A
/// `read_only` pool (previews) runs every transaction read-only, so nothing can change.
pub fn pool(url: &str, role: &str, read_only: bool) -> Result<PgPool> {
    let mut options =
        PgConnectOptions::from_str(url).map_err(|e| eyre!("the PostgreSQL {role} URL is not valid: {e}"))?;
    if read_only {
        options = options.options([("default_transaction_read_only", "on")]);
    }
    Ok(PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_lazy_with(options))
}

/// A table column as the catalog describes it.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// The type as PostgreSQL writes it (`character varying(100)`): used in casts.
    pub sql_type: String,
    pub ty: FieldType,
    pub max_length: Option<usize>,
    pub not_null: bool,
    pub has_default: bool,
    pub primary_key: bool,
    /// The sequence behind a serial or identity column.
    pub sequence: Option<String>,
}

/// The columns of `schema.table`, in order; an error naming the table when there is none.
pub async fn columns(pool: &PgPool, schema: &str, table: &str) -> Result<Vec<Column>> {
    let rows = sqlx::query(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''),
                EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary AND a.attnum = ANY(i.indkey)),
                pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname)
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(pool)
    .await
    .wrap_err_with(|| format!("reading the columns of {}", qualified(schema, table)))?;
    if rows.is_empty() {
        return Err(eyre!("PostgreSQL has no table {}", qualified(schema, table)));
    }
    rows.iter()
        .map(|r| {
            let sql_type: String = r.try_get(1)?;
            let (ty, max_length) = declared_type(&sql_type);
            Ok(Column {
                name: r.try_get(0)?,
                ty,
                max_length,
                sql_type,
                not_null: r.try_get(2)?,
                has_default: r.try_get(3)?,
                primary_key: r.try_get(4)?,
                sequence: r.try_get(5)?,
            })
        })
        .collect()
}

/// `"schema"."table"`.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", ident(schema), ident(table))
}

/// Keyset paging that never skips or repeats a row, in the id column's own type and order.
///
/// Each page is bounded by the id of its `max`-th row, found by an index-only probe, and then
/// takes every row up to and including that id: rows sharing an id (a repeated source id) are
/// never split across pages, so `> last` cannot step over the rest of them. Ids are compared as
/// the column's type (integers as numbers, never as text) and text ids in code-point order
/// (`COLLATE "C"`), whatever the database's collation. `from` must alias the relation `q`.
pub struct Keyset<'a> {
    /// `FROM` text, the relation aliased `q`.
    pub from: &'a str,
    /// The id column's name.
    pub id: &'a str,
    /// The id column's type as PostgreSQL spells it (from the catalog, never from the project file).
    pub sql_type: &'a str,
    /// The select list, every column as `::text`.
    pub list: &'a str,
    /// Where the id is in the select list.
    pub id_index: usize,
}

/// Text types, which keyset paging orders by code point.
fn textual(sql_type: &str) -> bool {
    let t = sql_type.trim().to_ascii_lowercase();
    ["text", "character", "varchar", "char", "bpchar", "citext", "name"].iter().any(|p| t.starts_with(p))
}

impl Keyset<'_> {
    /// `q."id"`, in code-point order for text.
    fn order(&self) -> String {
        let col = format!("q.{}", ident(self.id));
        if textual(self.sql_type) { format!("{col} COLLATE \"C\"") } else { col }
    }

    /// The id as a bound parameter, in the column's type (and order).
    fn param(&self, n: usize) -> String {
        if textual(self.sql_type) {
            format!("CAST(${n} AS text) COLLATE \"C\"")
        } else {
            format!("CAST(${n} AS {})", self.sql_type)
        }
    }

    /// The rows after `after` (all of them from the start when it is empty): one page, the
    /// cursor to continue from, and whether the relation is read to the end.
    pub async fn page(
        &self,
        pool: &PgPool,
        after: &str,
        max: usize,
    ) -> Result<(Vec<sqlx::postgres::PgRow>, String, bool)> {
        let order = self.order();
        let (from, list) = (self.from, self.list);
        let (start, binds): (String, Vec<&str>) = if after.is_empty() {
            (format!("q.{} IS NOT NULL", ident(self.id)), Vec::new())
        } else {
            (format!("{order} > {}", self.param(1)), vec![after])
        };
        let probe = format!(
            "SELECT q.{}::text FROM {from} WHERE {start} ORDER BY {order} LIMIT 1 OFFSET {}",
            ident(self.id),
            max.saturating_sub(1)
        );
        let mut q = sqlx::query_scalar::<_, Option<String>>(&probe);
        for b in &binds {
            q = q.bind(*b);
        }
        let boundary = q.fetch_optional(pool).await?.flatten();
        let sql = match &boundary {
            None => format!("SELECT {list} FROM {from} WHERE {start} ORDER BY {order}"),
            Some(_) => {
                format!(
                    "SELECT {list} FROM {from} WHERE {start} AND {order} <= {} ORDER BY {order}",
                    self.param(binds.len() + 1)
                )
            }
        };
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(*b);
        }
        if let Some(b) = &boundary {
            q = q.bind(b.as_str());
        }
        let rows = q.fetch_all(pool).await?;
        match boundary {
            Some(b) => Ok((rows, b, false)),
            None => {
                let last = match rows.last() {
                    Some(r) => r.try_get::<Option<String>, _>(self.id_index)?.unwrap_or_default(),
                    None => after.to_string(),
                };
                Ok((rows, last, true))
            }
        }
    }
}

/// Column `i` of a row selected as `::text`, in the pipeline's spelling; blanks are `None`.
fn text(row: &sqlx::postgres::PgRow, i: usize, ty: FieldType) -> Result<Option<String>> {
    let v: Option<String> = row.try_get(i)?;
    Ok(v.filter(|s| !s.is_empty()).map(|s| super::sql::from_server(ty, s)))
}

/// Column `i` as stored: `''` is `Some("")`, told apart from NULL (what a rollback restores).
fn stored_text(row: &sqlx::postgres::PgRow, i: usize, ty: FieldType) -> Result<Option<String>> {
    let v: Option<String> = row.try_get(i)?;
    Ok(v.map(|s| if s.is_empty() { s } else { super::sql::from_server(ty, s) }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(super::ident(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(super::qualified("public", "deals"), r#""public"."deals""#);
    }
}
