//! What the SQL database connectors share: reading a declared column type as a pipeline field
//! type, and handing values back in the pipeline's spelling (RFC 3339 UTC date-times,
//! `true`/`false`), whatever the server's own text form.

use crate::model::FieldType;
use chrono::{DateTime, SecondsFormat, Utc};
use color_eyre::eyre::{Result, eyre};

/// The URL held by the environment variable `var` (its value is a secret: never logged).
pub fn url_from_env(var: &str, role: &str) -> Result<String> {
    std::env::var(var).map_err(|_| {
        eyre!(crate::config::KeyProblem::new(
            format!("{role}.url_env"),
            format!("names the environment variable {var}, which is not set (export it before running)")
        ))
    })
}

/// The database's own message for a failed statement (what the operator needs to fix the
/// record), without sqlx's framing.
pub fn db_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_string(),
        other => other.to_string(),
    }
}

/// Users from rows of `(id, display name, email)` read as text, whichever server they came from.
pub fn users_from_rows<R: sqlx::Row>(rows: &[R]) -> Result<Vec<crate::model::DestUser>>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter()
        .map(|r| {
            Ok(crate::model::DestUser {
                id: r.try_get::<Option<String>, _>(0)?.unwrap_or_default(),
                name: r.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
                email: r.try_get(2)?,
            })
        })
        .collect()
}

/// A row of a database source as the pipeline takes it: a record under its id, or — with an id
/// of nothing but blanks — a row that could not be read (it fails; it is never skipped).
pub fn extracted(
    label: &str,
    id_field: &str,
    raw_id: &str,
    id_index: usize,
    values: Vec<crate::model::Value>,
) -> crate::model::Extracted {
    use crate::model::{Extracted, SourceRecord};
    let origin = format!("{label} {id_field} {raw_id}");
    match values[id_index].clone().filter(|v| !v.trim().is_empty()) {
        Some(source_id) => Extracted::Record(SourceRecord { origin, source_id, values }),
        None => Extracted::Malformed {
            source_id: format!("row:blank-id-{raw_id}"),
            message: format!("{origin}: the id field '{id_field}' is blank"),
            origin,
        },
    }
}

/// The field type and maximum length a declared SQL column type stands for
/// (`VARCHAR(40)`, `character varying(40)`, `numeric(12,2)`, `timestamp with time zone`, …).
pub fn declared_type(decl: &str) -> (FieldType, Option<usize>) {
    let upper = decl.to_ascii_uppercase();
    let length =
        upper.split_once('(').and_then(|(_, rest)| rest.split([')', ',']).next()).and_then(|n| n.trim().parse().ok());
    let ty = if upper.contains("INT") && !upper.contains("INTERVAL") && !upper.contains("POINT") {
        FieldType::Integer
    } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") {
        FieldType::Text
    } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
        FieldType::Number
    } else if upper.contains("DATETIME") || upper.contains("TIMESTAMP") {
        FieldType::Datetime
    } else if upper.contains("DATE") {
        FieldType::Date
    } else if upper.contains("BOOL") {
        FieldType::Boolean
    } else if upper.contains("DEC") || upper.contains("NUM") {
        FieldType::Decimal
    } else {
        FieldType::Text
    };
    let length = if ty == FieldType::Text { length } else { None };
    (ty, length)
}

/// A value as the server spelled it, in the pipeline's spelling for its field type. Date-times
/// with an offset become UTC; those without one (MySQL DATETIME, PostgreSQL `timestamp`) are
/// taken as UTC, which is how Cutover writes them.
pub fn from_server(ty: FieldType, text: String) -> String {
    match ty {
        FieldType::Datetime => datetime(&text).unwrap_or(text),
        FieldType::Boolean => match text.as_str() {
            "t" | "1" => "true".into(),
            "f" | "0" => "false".into(),
            _ => text,
        },
        _ => text,
    }
}

fn datetime(text: &str) -> Option<String> {
    Some(crate::compare::instant(text)?.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// A pipeline date-time as a server without time zones (MySQL DATETIME) takes it: UTC, no offset.
pub fn naive_utc(text: &str) -> Option<String> {
    let utc = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
    Some(utc.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_map_to_field_types() {
        assert_eq!(declared_type("VARCHAR(40)"), (FieldType::Text, Some(40)));
        assert_eq!(declared_type("character varying(40)"), (FieldType::Text, Some(40)));
        assert_eq!(declared_type("INTEGER"), (FieldType::Integer, None));
        assert_eq!(declared_type("bigint"), (FieldType::Integer, None));
        assert_eq!(declared_type("DECIMAL(12,2)"), (FieldType::Decimal, None));
        assert_eq!(declared_type("numeric(12,2)"), (FieldType::Decimal, None));
        assert_eq!(declared_type("DATE"), (FieldType::Date, None));
        assert_eq!(declared_type("TIMESTAMP"), (FieldType::Datetime, None));
        assert_eq!(declared_type("timestamp with time zone"), (FieldType::Datetime, None));
        assert_eq!(declared_type("double precision"), (FieldType::Number, None));
        assert_eq!(declared_type("interval"), (FieldType::Text, None));
        assert_eq!(declared_type(""), (FieldType::Text, None));
    }

    #[test]
    fn server_spellings_become_the_pipelines() {
        let dt = |s: &str| from_server(FieldType::Datetime, s.into());
        assert_eq!(dt("2024-03-05 14:05:00+00"), "2024-03-05T14:05:00Z");
        assert_eq!(dt("2024-03-05 16:05:00.25+02"), "2024-03-05T14:05:00.250Z");
        assert_eq!(dt("2024-03-05 19:35:00+05:30"), "2024-03-05T14:05:00Z");
        assert_eq!(dt("2024-03-05 14:05:00"), "2024-03-05T14:05:00Z");
        assert_eq!(dt("not a date"), "not a date");
        assert_eq!(from_server(FieldType::Boolean, "t".into()), "true");
        assert_eq!(from_server(FieldType::Boolean, "0".into()), "false");
        assert_eq!(from_server(FieldType::Text, "t".into()), "t");
        assert_eq!(naive_utc("2024-03-05T16:05:00+02:00").as_deref(), Some("2024-03-05 14:05:00"));
    }
}
