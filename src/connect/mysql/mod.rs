//! MySQL and MariaDB, as a source ([`source`]) and as a destination ([`destination`]), through
//! sqlx over rustls. Objects are tables of the URL's database. Identifiers are always quoted with
//! backticks; values are always bound. Values are read as `CAST(… AS CHAR)` so numbers and dates
//! travel as exact text, and date-times come back in the pipeline's RFC 3339 UTC spelling.

pub mod destination;
pub mod source;

pub use destination::MySqlDestination;
pub use source::MySqlSource;

use super::sql::{db_message as message, declared_type};
use crate::model::FieldType;
use color_eyre::eyre::{Result, WrapErr, eyre};
use sqlx::Row;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow};
use std::str::FromStr;

/// `` `name` `` with embedded backticks doubled: identifiers are never spliced raw.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A column read as text in the pipeline's spelling.
fn as_text(name: &str) -> String {
    format!("CAST({} AS CHAR CHARACTER SET utf8mb4)", ident(name))
}

/// A pool that connects on first use (opening a project never waits on the network). A
/// `read_only` pool (sources, previews) runs every transaction read-only.
pub fn pool(url: &str, role: &str, read_only: bool) -> Result<MySqlPool> {
    let options = MySqlConnectOptions::from_str(url)
        .map_err(|e| eyre!("the MySQL/MariaDB {role} URL is not valid: {e}"))?
        .charset("utf8mb4");
    Ok(MySqlPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                use sqlx::Executor;
                // Date-times are written and read as UTC, whatever the server's zone.
                conn.execute("SET time_zone = '+00:00'").await?;
                if read_only {
                    conn.execute("SET SESSION TRANSACTION READ ONLY").await?;
                }
                Ok(())
            })
        })
        .connect_lazy_with(options))
}

/// A table column as information_schema describes it.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: FieldType,
    pub max_length: Option<usize>,
    pub not_null: bool,
    pub has_default: bool,
    pub primary_key: bool,
    pub auto_increment: bool,
}

/// The columns of `table` in the URL's database, in order; an error naming it when there is none.
pub async fn columns(pool: &MySqlPool, table: &str) -> Result<Vec<Column>> {
    let rows = sqlx::query(
        "SELECT CAST(column_name AS CHAR), CAST(column_type AS CHAR), is_nullable = 'NO',
                column_default IS NOT NULL AND NOT (is_nullable = 'YES' AND column_default = 'NULL'),
                column_key = 'PRI', extra LIKE '%auto_increment%'
         FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?
         ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .wrap_err_with(|| format!("reading the columns of {}", ident(table)))?;
    if rows.is_empty() {
        return Err(eyre!("the MySQL/MariaDB database has no table {}", ident(table)));
    }
    rows.iter()
        .map(|r| {
            let sql_type: String = r.try_get(1)?;
            let (mut ty, max_length) = declared_type(&sql_type);
            if sql_type.eq_ignore_ascii_case("tinyint(1)") {
                ty = FieldType::Boolean;
            }
            Ok(Column {
                name: r.try_get(0)?,
                ty,
                max_length,
                not_null: r.try_get(2)?,
                has_default: r.try_get(3)?,
                primary_key: r.try_get(4)?,
                auto_increment: r.try_get(5)?,
            })
        })
        .collect()
}

/// Column `i` of a row read as text, in the pipeline's spelling; blanks are `None`.
fn text(row: &MySqlRow, i: usize, ty: FieldType) -> Result<Option<String>> {
    let v: Option<String> = row.try_get(i)?;
    Ok(v.filter(|s| !s.is_empty()).map(|s| super::sql::from_server(ty, s)))
}

/// Column `i` as stored: `''` is `Some("")`, told apart from NULL (what a rollback restores).
fn stored_text(row: &MySqlRow, i: usize, ty: FieldType) -> Result<Option<String>> {
    let v: Option<String> = row.try_get(i)?;
    Ok(v.map(|s| if s.is_empty() { s } else { super::sql::from_server(ty, s) }))
}

/// Keyset paging that never skips or repeats a row (see `postgres::Keyset`): each page is bounded
/// by the id of its `max`-th row and takes every row up to and including that id, so rows the
/// column's collation holds equal ('k1' and 'K1' under a case-insensitive collation, a repeated
/// id) are never split across pages. Integers and decimals are bound as exact numbers.
pub struct Keyset<'a> {
    pub from: &'a str,
    pub id: &'a str,
    pub ty: FieldType,
    /// The select list, every column as text.
    pub list: &'a str,
    pub id_index: usize,
}

impl Keyset<'_> {
    fn param(&self) -> &'static str {
        match self.ty {
            FieldType::Integer | FieldType::Decimal => "CAST(? AS DECIMAL(65,30))",
            _ => "?",
        }
    }

    pub async fn page(&self, pool: &MySqlPool, after: &str, max: usize) -> Result<(Vec<MySqlRow>, String, bool)> {
        let (id, from, list) = (ident(self.id), self.from, self.list);
        let start = if after.is_empty() { format!("{id} IS NOT NULL") } else { format!("{id} > {}", self.param()) };
        let probe = format!(
            "SELECT {} FROM {from} WHERE {start} ORDER BY {id} LIMIT 1 OFFSET {}",
            as_text(self.id),
            max.saturating_sub(1)
        );
        let mut q = sqlx::query_scalar::<_, Option<String>>(&probe);
        if !after.is_empty() {
            q = q.bind(after);
        }
        let boundary = q.fetch_optional(pool).await?.flatten();
        let sql = match &boundary {
            None => format!("SELECT {list} FROM {from} WHERE {start} ORDER BY {id}"),
            Some(_) => format!("SELECT {list} FROM {from} WHERE {start} AND {id} <= {} ORDER BY {id}", self.param()),
        };
        let mut q = sqlx::query(&sql);
        if !after.is_empty() {
            q = q.bind(after);
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

/// A pipeline value as the server takes it: date-times without an offset (UTC), booleans as 1/0.
fn to_server(ty: FieldType, v: Option<&str>) -> Option<String> {
    let v = v?;
    Some(match ty {
        FieldType::Datetime => super::sql::naive_utc(v).unwrap_or_else(|| v.to_string()),
        FieldType::Boolean => match v {
            "true" => "1".into(),
            "false" => "0".into(),
            other => other.to_string(),
        },
        _ => v.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_with_backticks() {
        assert_eq!(ident("we`ird"), "`we``ird`");
    }

    #[test]
    fn values_go_to_the_server_in_its_spelling() {
        assert_eq!(
            to_server(FieldType::Datetime, Some("2024-03-05T14:05:00Z")).as_deref(),
            Some("2024-03-05 14:05:00")
        );
        assert_eq!(to_server(FieldType::Boolean, Some("true")).as_deref(), Some("1"));
        assert_eq!(to_server(FieldType::Text, Some("true")).as_deref(), Some("true"));
        assert_eq!(to_server(FieldType::Text, None), None);
    }
}
