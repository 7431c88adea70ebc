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

/// Column `i` of a row selected as `::text`, in the pipeline's spelling; blanks are `None`.
fn text(row: &sqlx::postgres::PgRow, i: usize, ty: FieldType) -> Result<Option<String>> {
    let v: Option<String> = row.try_get(i)?;
    Ok(v.filter(|s| !s.is_empty()).map(|s| super::sql::from_server(ty, s)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(super::ident(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(super::qualified("public", "deals"), r#""public"."deals""#);
    }
}
