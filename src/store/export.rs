//! The conflict queue and the audit log exported as CSV or JSON Lines, streamed row by row from
//! SQLite (a million rows never sit in memory). Columns holding JSON (source values, issues,
//! before-images…) are nested as JSON in JSONL and kept as JSON text in CSV.

use super::Store;
use color_eyre::eyre::{Result, eyre};
use rusqlite::types::ValueRef;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportTable {
    Queue,
    Audit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    pub object: Option<String>,
    /// Queue: a status (open, fixed, skipped, resolved…); audit: an outcome or action.
    pub status: Option<String>,
    /// Audit only: one run.
    pub run: Option<i64>,
}

const QUEUE_COLUMNS: &[&str] = &[
    "id",
    "object",
    "source_id",
    "origin",
    "status",
    "reason",
    "issues",
    "source",
    "mapped",
    "corrections",
    "candidates",
    "waiting_object",
    "waiting_source_id",
    "run_id",
    "created_at",
    "updated_at",
    "claimed_by",
];
const QUEUE_JSON: &[&str] = &["issues", "source", "mapped", "corrections", "candidates"];
const AUDIT_COLUMNS: &[&str] = &[
    "id",
    "run_id",
    "at",
    "user",
    "object",
    "source_id",
    "outcome",
    "dest_id",
    "matched_by",
    "merge_rule",
    "detail",
    "before_image",
    "warnings",
];
const AUDIT_JSON: &[&str] = &["before_image", "warnings"];

enum Sink<'a> {
    Csv(Box<csv::Writer<&'a mut dyn Write>>),
    Jsonl(&'a mut dyn Write),
}

impl Store {
    /// Writes the rows to `out`; returns how many were written.
    pub fn export(
        &self,
        table: ExportTable,
        format: ExportFormat,
        filter: &ExportFilter,
        out: &mut dyn Write,
    ) -> Result<u64> {
        let (name, columns, json_columns, status_column) = match table {
            ExportTable::Queue => ("queue", QUEUE_COLUMNS, QUEUE_JSON, "status"),
            ExportTable::Audit => ("audit", AUDIT_COLUMNS, AUDIT_JSON, "outcome"),
        };
        let mut sql = format!("SELECT {} FROM {name} WHERE 1 = 1", columns.join(", "));
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(o) = &filter.object {
            args.push(o.clone().into());
            sql.push_str(&format!(" AND object = ?{}", args.len()));
        }
        if let Some(s) = &filter.status {
            args.push(s.clone().into());
            sql.push_str(&format!(" AND {status_column} = ?{}", args.len()));
        }
        if let Some(r) = filter.run {
            if table == ExportTable::Queue {
                return Err(eyre!("--run filters the audit log only"));
            }
            args.push(r.into());
            sql.push_str(&format!(" AND run_id = ?{}", args.len()));
        }
        sql.push_str(" ORDER BY id");
        let mut stmt = self.conn().prepare(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
        let mut sink = match format {
            ExportFormat::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(columns)?;
                Sink::Csv(Box::new(w))
            }
            ExportFormat::Jsonl => Sink::Jsonl(out),
        };
        let mut n = 0u64;
        let mut cells: Vec<Option<String>> = Vec::with_capacity(columns.len());
        while let Some(row) = rows.next()? {
            cells.clear();
            for i in 0..columns.len() {
                cells.push(match row.get_ref(i)? {
                    ValueRef::Null => None,
                    ValueRef::Integer(v) => Some(v.to_string()),
                    ValueRef::Real(v) => Some(v.to_string()),
                    ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
                });
            }
            match &mut sink {
                Sink::Csv(w) => w.write_record(cells.iter().map(|c| c.as_deref().unwrap_or("")))?,
                Sink::Jsonl(out) => {
                    let mut obj = serde_json::Map::new();
                    for (col, cell) in columns.iter().zip(&cells) {
                        let value = match cell {
                            None => serde_json::Value::Null,
                            Some(text) if json_columns.contains(col) => {
                                serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.clone()))
                            }
                            Some(text) if *col == "id" || *col == "run_id" => {
                                text.parse::<i64>().map(Into::into).unwrap_or_else(|_| text.clone().into())
                            }
                            Some(text) => serde_json::Value::String(text.clone()),
                        };
                        obj.insert((*col).to_string(), value);
                    }
                    serde_json::to_writer(&mut **out, &obj)?;
                    out.write_all(b"\n")?;
                }
            }
            n += 1;
        }
        match sink {
            Sink::Csv(mut w) => w.flush()?,
            Sink::Jsonl(out) => out.flush()?,
        }
        Ok(n)
    }
}
