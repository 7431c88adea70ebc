//! PostgreSQL as a destination: a table per object in one schema; field types, NOT NULL and
//! `varchar(n)` lengths come from the catalog, owners and picklists from tables the project names.
//!
//! Creating a batch takes the fast path when the id comes from a sequence: the batch's ids are
//! drawn from it, the rows go in with one `COPY`, and their idempotency markers with one insert,
//! in one transaction. When the database rejects a row, the transaction is rolled back and the
//! batch is written again one statement per record, each under a savepoint, so a rejection is
//! that record's own outcome and the others still land. Updates and deletes work the same way.

use super::{Column, Keyset, columns, ident, message, pool, qualified, stored_text, text};
use crate::config::{ConnectionConfig, OwnersTable, PicklistTable};
use crate::connect::{Change, Cursor, Destination, Marks, NewRecords, WriteResult};
use crate::model::{DestField, DestSchema, DestUser, FieldType, Value};
use async_trait::async_trait;
use color_eyre::eyre::{Result, WrapErr, eyre};
use indexmap::IndexMap;
use sqlx::postgres::PgPool;
use sqlx::{Connection, Row};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct PostgresDestination {
    pool: PgPool,
    schema: String,
    owners: Option<OwnersTable>,
    picklists: IndexMap<String, PicklistTable>,
    types: IndexMap<String, FieldType>,
    tables: Mutex<HashMap<String, Arc<Table>>>,
}

/// One destination table: what the pipeline sees, and the catalog's view for casts.
struct Table {
    schema: DestSchema,
    name: String,
    columns: Vec<Column>,
    id: Column,
}

impl Table {
    fn column(&self, field: &str) -> Result<&Column> {
        self.columns.iter().find(|c| c.name == field).ok_or_else(|| eyre!("{} has no column '{field}'", self.name))
    }

    /// `CAST($n AS type)` for each field: values travel as text in the pipeline's spelling.
    fn casts(&self, fields: &[String], first: usize) -> Result<Vec<String>> {
        fields
            .iter()
            .enumerate()
            .map(|(i, f)| Ok(format!("CAST(${} AS {})", first + i, self.column(f)?.sql_type)))
            .collect()
    }
}

/// One statement per record, answering the id it touched (none: the record is not there).
struct Statement {
    sql: Arc<str>,
    binds: Vec<Value>,
}

/// What commits with the records, in the same transaction.
enum Bookkeeping<'a> {
    None,
    Mark(&'a Marks),
    Unmark,
}

/// The database's answer per record: the id touched (`None`: no such record), or its message.
type Answers = Vec<std::result::Result<Option<String>, String>>;

const MARKS_TABLE: &str = "cutover_marks";

impl PostgresDestination {
    pub fn open(url: &str, conn: &ConnectionConfig, read_only: bool) -> Result<Self> {
        let types = conn.types.iter().filter_map(|(k, v)| FieldType::parse(v).map(|t| (k.clone(), t))).collect();
        Ok(Self {
            pool: pool(url, "destination", read_only)?,
            schema: conn.schema.clone().unwrap_or_else(|| "public".into()),
            owners: conn.owners.clone(),
            picklists: conn.picklists.clone(),
            types,
            tables: Mutex::default(),
        })
    }

    fn table_name(&self, name: &str) -> String {
        qualified(&self.schema, name)
    }

    async fn table(&self, object: &str) -> Result<Arc<Table>> {
        if let Some(t) = self.tables.lock().map_err(|_| eyre!("schema cache poisoned"))?.get(object) {
            return Ok(t.clone());
        }
        let cols = columns(&self.pool, &self.schema, object).await?;
        let id = cols
            .iter()
            .find(|c| c.primary_key)
            .or_else(|| cols.iter().find(|c| c.name == "id"))
            .cloned()
            .ok_or_else(|| eyre!("{} has no primary key and no id column", self.table_name(object)))?;
        let mut fields = Vec::with_capacity(cols.len());
        for c in &cols {
            let ty = self.types.get(&format!("{object}.{}", c.name)).copied().unwrap_or(c.ty);
            let picklist = match self.picklists.get(&format!("{object}.{}", c.name)) {
                None => None,
                Some(t) => Some(self.picklist(object, &c.name, t).await?),
            };
            fields.push(DestField {
                name: c.name.clone(),
                ty,
                required: c.not_null && !c.has_default && !c.primary_key,
                max_length: c.max_length,
                picklist,
                multiple: false,
            });
        }
        let table = Arc::new(Table {
            schema: DestSchema { object: object.to_string(), id_field: id.name.clone(), fields },
            name: self.table_name(object),
            columns: cols,
            id,
        });
        self.tables.lock().map_err(|_| eyre!("schema cache poisoned"))?.insert(object.to_string(), table.clone());
        Ok(table)
    }

    async fn picklist(&self, object: &str, field: &str, t: &PicklistTable) -> Result<Vec<String>> {
        let sql = format!(
            "SELECT DISTINCT {c}::text FROM {} WHERE {c} IS NOT NULL ORDER BY 1",
            self.table_name(&t.table),
            c = ident(&t.column)
        );
        sqlx::query_scalar(&sql).fetch_all(&self.pool).await.map_err(|e| {
            crate::connect::picklist_problem(object, field, &t.table, &t.column, &super::super::sql::db_message(&e))
        })
    }

    /// Runs one statement per record in one transaction: first straight through; when the
    /// database rejects a record, again from the start with a savepoint per record, so the
    /// rejection is that record's outcome alone. Anything but a rejection (the connection
    /// dropped) is an error for the whole batch: nothing is reported written unless committed.
    async fn per_record(&self, table: &Table, statements: &[Statement], book: Bookkeeping<'_>) -> Result<Answers> {
        match self.attempt(table, statements, &book, false).await {
            Ok(answers) => Ok(answers),
            Err(sqlx::Error::Database(_)) => self
                .attempt(table, statements, &book, true)
                .await
                .wrap_err_with(|| format!("writing to {}", table.name)),
            Err(e) => Err(e).wrap_err_with(|| format!("writing to {}", table.name)),
        }
    }

    async fn attempt(
        &self,
        table: &Table,
        statements: &[Statement],
        book: &Bookkeeping<'_>,
        savepoints: bool,
    ) -> std::result::Result<Answers, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut answers = Vec::with_capacity(statements.len());
        for s in statements {
            let mut q = sqlx::query_scalar::<_, String>(&s.sql);
            for v in &s.binds {
                q = q.bind(v.as_deref());
            }
            if savepoints {
                let mut sp = tx.begin().await?;
                match q.fetch_optional(&mut *sp).await {
                    Ok(id) => {
                        sp.commit().await?;
                        answers.push(Ok(id));
                    }
                    Err(e @ sqlx::Error::Database(_)) => {
                        sp.rollback().await?;
                        answers.push(Err(message(&e)));
                    }
                    Err(e) => return Err(e),
                }
            } else {
                answers.push(Ok(q.fetch_optional(&mut *tx).await?));
            }
        }
        let touched: Vec<String> = answers.iter().map(|a| a.clone().ok().flatten().unwrap_or_default()).collect();
        self.bookkeeping(&mut tx, table, book, &touched).await?;
        tx.commit().await?;
        Ok(answers)
    }

    /// Markers for created records, or their removal for deleted ones (`touched`: the id each
    /// record ended with, empty where it failed).
    async fn bookkeeping(
        &self,
        tx: &mut sqlx::PgConnection,
        table: &Table,
        book: &Bookkeeping<'_>,
        touched: &[String],
    ) -> std::result::Result<(), sqlx::Error> {
        let marks = self.table_name(MARKS_TABLE);
        match book {
            Bookkeeping::None => {}
            Bookkeeping::Mark(m) => {
                let (sources, dests): (Vec<&str>, Vec<&str>) = m
                    .source_ids
                    .iter()
                    .zip(touched)
                    .filter(|(_, d)| !d.is_empty())
                    .map(|(s, d)| (s.as_str(), d.as_str()))
                    .unzip();
                sqlx::query(&format!(
                    "CREATE TABLE IF NOT EXISTS {marks} (namespace text NOT NULL, object text NOT NULL,
                     source_id text NOT NULL, dest_id text NOT NULL, PRIMARY KEY (namespace, object, source_id))"
                ))
                .execute(&mut *tx)
                .await?;
                // Rollback finds markers by destination id.
                sqlx::query(&format!("CREATE INDEX IF NOT EXISTS cutover_marks_dest ON {marks} (object, dest_id)"))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(&format!(
                    "INSERT INTO {marks} (namespace, object, source_id, dest_id)
                     SELECT $1, $2, s, d FROM unnest($3::text[], $4::text[]) AS u(s, d)
                     ON CONFLICT (namespace, object, source_id) DO UPDATE SET dest_id = EXCLUDED.dest_id"
                ))
                .bind(&m.namespace)
                .bind(&table.schema.object)
                .bind(sources)
                .bind(dests)
                .execute(&mut *tx)
                .await?;
            }
            Bookkeeping::Unmark => {
                let exists: bool =
                    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(&marks).fetch_one(&mut *tx).await?;
                if exists {
                    sqlx::query(&format!("DELETE FROM {marks} WHERE object = $1 AND dest_id = ANY($2::text[])"))
                        .bind(&table.schema.object)
                        .bind(touched.iter().filter(|d| !d.is_empty()).collect::<Vec<_>>())
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// The fast path: ids drawn from the id's sequence, rows in with one COPY, markers with
    /// one insert — one transaction. A database error means some row was rejected.
    async fn create_by_copy(
        &self,
        table: &Table,
        sequence: &str,
        records: &NewRecords,
    ) -> std::result::Result<Vec<WriteResult>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<String> = sqlx::query_scalar("SELECT nextval($1::regclass)::text FROM generate_series(1, $2)")
            .bind(sequence)
            .bind(records.rows.len() as i64)
            .fetch_all(&mut *tx)
            .await?;
        let mut cols = vec![ident(&table.id.name)];
        cols.extend(records.fields.iter().map(|f| ident(f)));
        let mut data = Vec::with_capacity(records.rows.len() * 64);
        for (id, row) in ids.iter().zip(&records.rows) {
            copy_text(&mut data, Some(id));
            for v in row {
                data.push(b'\t');
                copy_text(&mut data, v.as_deref());
            }
            data.push(b'\n');
        }
        let mut copy = tx.copy_in_raw(&format!("COPY {} ({}) FROM STDIN", table.name, cols.join(", "))).await?;
        copy.send(data).await?;
        copy.finish().await?;
        if let Some(marks) = &records.marks {
            self.bookkeeping(&mut tx, table, &Bookkeeping::Mark(marks), &ids).await?;
        }
        tx.commit().await?;
        Ok(ids.into_iter().map(Ok).collect())
    }
}

impl PostgresDestination {
    /// The fast path of updates: the changes grouped by the fields they set, one
    /// `UPDATE … FROM unnest(…)` per group, all in one transaction. A database error means some
    /// record was rejected (the caller then writes record by record).
    async fn update_by_sets(
        &self,
        table: &Table,
        changes: &[Change],
    ) -> std::result::Result<Vec<WriteResult>, sqlx::Error> {
        let mut groups: IndexMap<Vec<&str>, Vec<usize>> = IndexMap::new();
        for (i, c) in changes.iter().enumerate() {
            groups.entry(c.values.iter().map(|(f, _)| f.as_str()).collect()).or_default().push(i);
        }
        let id = ident(&table.id.name);
        let mut done: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut tx = self.pool.begin().await?;
        for (fields, members) in &groups {
            let mut sets = Vec::with_capacity(fields.len());
            let mut cols = vec!["id".to_string()];
            let mut arrays = vec!["$1::text[]".to_string()];
            for (n, f) in fields.iter().enumerate() {
                let Ok(column) = table.column(f) else { return Err(sqlx::Error::ColumnNotFound(f.to_string())) };
                sets.push(format!("{} = CAST(v.c{n} AS {})", ident(f), column.sql_type));
                cols.push(format!("c{n}"));
                arrays.push(format!("${}::text[]", n + 2));
            }
            let sql = format!(
                "UPDATE {} AS t SET {} FROM unnest({}) AS v({}) WHERE t.{id} = CAST(v.id AS {}) RETURNING t.{id}::text",
                table.name,
                sets.join(", "),
                arrays.join(", "),
                cols.join(", "),
                table.id.sql_type
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql)
                .bind(members.iter().map(|&i| changes[i].dest_id.clone()).collect::<Vec<_>>());
            for n in 0..fields.len() {
                q = q.bind(members.iter().map(|&i| changes[i].values[n].1.clone()).collect::<Vec<Option<String>>>());
            }
            done.extend(q.fetch_all(&mut *tx).await?);
        }
        tx.commit().await?;
        let name = &table.name;
        Ok(changes
            .iter()
            .map(|c| match done.contains(&c.dest_id) {
                true => Ok(c.dest_id.clone()),
                false => Err(format!("record {} no longer exists in {name}", c.dest_id)),
            })
            .collect())
    }

    /// The fast path of deletes: one statement for every id, markers removed with them.
    async fn delete_at_once(
        &self,
        table: &Table,
        ids: &[String],
    ) -> std::result::Result<Vec<WriteResult>, sqlx::Error> {
        let id = ident(&table.id.name);
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "DELETE FROM {} WHERE {id} = ANY(CAST($1 AS {}[])) RETURNING {id}::text",
            table.name, table.id.sql_type
        );
        let gone: Vec<String> = sqlx::query_scalar(&sql).bind(ids).fetch_all(&mut *tx).await?;
        self.bookkeeping(&mut tx, table, &Bookkeeping::Unmark, &gone).await?;
        tx.commit().await?;
        let gone: std::collections::HashSet<String> = gone.into_iter().collect();
        let name = &table.name;
        Ok(ids
            .iter()
            .map(|i| if gone.contains(i) { Ok(i.clone()) } else { Err(format!("record {i} does not exist in {name}")) })
            .collect())
    }
}

/// A value in COPY's text format: `\N` for none; backslash, tab and line breaks escaped.
fn copy_text(out: &mut Vec<u8>, v: Option<&str>) {
    let Some(s) = v else {
        out.extend_from_slice(b"\\N");
        return;
    };
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

fn results(answers: Answers, ids: impl Iterator<Item = String>, missing: impl Fn(&str) -> String) -> Vec<WriteResult> {
    answers
        .into_iter()
        .zip(ids)
        .map(|(a, id)| match a {
            Ok(Some(touched)) => Ok(touched),
            Ok(None) => Err(missing(&id)),
            Err(m) => Err(m),
        })
        .collect()
}

#[async_trait]
impl Destination for PostgresDestination {
    fn describe(&self) -> String {
        format!("PostgreSQL schema {}", self.schema)
    }

    async fn schema(&self, object: &str) -> Result<DestSchema> {
        Ok(self.table(object).await?.schema.clone())
    }

    async fn users(&self) -> Result<Vec<DestUser>> {
        let Some(owners) = &self.owners else {
            return Ok(Vec::new());
        };
        let names: Vec<String> = owners.name.items().iter().map(|c| format!("{}::text", ident(c))).collect();
        let email = owners.email.as_deref().map(|e| format!("{}::text", ident(e))).unwrap_or_else(|| "NULL".into());
        let sql = format!(
            "SELECT {}::text, TRIM(CONCAT_WS(' ', {})), {email} FROM {}",
            ident(&owners.id),
            names.join(", "),
            self.table_name(&owners.table)
        );
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .wrap_err_with(|| format!("reading users from table {}", owners.table))?;
        crate::connect::sql::users_from_rows(&rows)
    }

    async fn scan(
        &self,
        object: &str,
        fields: &[String],
        after: &Cursor,
        max: usize,
    ) -> Result<(Vec<(String, Vec<Value>)>, Cursor, bool)> {
        let table = self.table(object).await?;
        let mut list = vec![format!("q.{}::text", ident(&table.id.name))];
        for f in fields {
            list.push(format!("q.{}::text", ident(&table.column(f)?.name)));
        }
        let (list, from) = (list.join(", "), format!("{} AS q", table.name));
        let keyset = Keyset { from: &from, id: &table.id.name, sql_type: &table.id.sql_type, list: &list, id_index: 0 };
        let (rows, last, done) =
            keyset.page(&self.pool, &after.0, max).await.wrap_err_with(|| format!("reading {}", table.name))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = row.try_get::<Option<String>, _>(0)?.unwrap_or_default();
            let values = fields
                .iter()
                .enumerate()
                .map(|(i, f)| text(row, i + 1, table.schema.field(f).map_or(FieldType::Text, |d| d.ty)))
                .collect::<Result<Vec<_>>>()?;
            out.push((id, values));
        }
        Ok((out, Cursor(last), done))
    }

    async fn read(&self, object: &str, ids: &[String], fields: &[String]) -> Result<HashMap<String, Vec<Value>>> {
        let table = self.table(object).await?;
        let id = ident(&table.id.name);
        let mut list = vec![format!("{id}::text")];
        for f in fields {
            list.push(format!("{}::text", ident(&table.column(f)?.name)));
        }
        let sql = format!(
            "SELECT {} FROM {} WHERE {id} = ANY(CAST($1 AS {}[]))",
            list.join(", "),
            table.name,
            table.id.sql_type
        );
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(5000) {
            let rows = sqlx::query(&sql)
                .bind(chunk)
                .fetch_all(&self.pool)
                .await
                .wrap_err_with(|| format!("reading {}", table.name))?;
            for row in &rows {
                let values = fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| stored_text(row, i + 1, table.schema.field(f).map_or(FieldType::Text, |d| d.ty)))
                    .collect::<Result<Vec<_>>>()?;
                out.insert(row.try_get::<Option<String>, _>(0)?.unwrap_or_default(), values);
            }
        }
        Ok(out)
    }

    async fn create(&self, object: &str, records: NewRecords) -> Result<Vec<WriteResult>> {
        let table = self.table(object).await?;
        if records.rows.is_empty() {
            return Ok(Vec::new());
        }
        let id_given = records.fields.iter().any(|f| *f == table.id.name);
        if let (Some(sequence), false) = (&table.id.sequence, id_given) {
            match self.create_by_copy(&table, sequence, &records).await {
                Ok(results) => return Ok(results),
                Err(e @ sqlx::Error::Database(_)) => {
                    tracing::debug!("COPY into {} rejected ({}); writing record by record", table.name, message(&e))
                }
                Err(e) => return Err(e).wrap_err_with(|| format!("writing to {}", table.name)),
            }
        }
        let cols: Vec<String> = records.fields.iter().map(|f| ident(f)).collect();
        let sql: Arc<str> = format!(
            "INSERT INTO {} ({}) VALUES ({}) RETURNING {}::text",
            table.name,
            cols.join(", "),
            table.casts(&records.fields, 1)?.join(", "),
            ident(&table.id.name)
        )
        .into();
        let statements: Vec<Statement> =
            records.rows.iter().map(|row| Statement { sql: sql.clone(), binds: row.clone() }).collect();
        let book = records.marks.as_ref().map_or(Bookkeeping::None, Bookkeeping::Mark);
        let answers = self.per_record(&table, &statements, book).await?;
        Ok(results(answers, std::iter::repeat(String::new()), |_| "the destination returned no id".into()))
    }

    async fn update(&self, object: &str, changes: &[Change]) -> Result<Vec<WriteResult>> {
        let table = self.table(object).await?;
        if !changes.is_empty() && changes.iter().all(|c| !c.values.is_empty()) {
            match self.update_by_sets(&table, changes).await {
                Ok(results) => return Ok(results),
                Err(e @ sqlx::Error::Database(_)) => {
                    tracing::debug!("batched update of {} rejected ({}); record by record", table.name, message(&e))
                }
                Err(e) => return Err(e).wrap_err_with(|| format!("writing to {}", table.name)),
            }
        }
        let mut statements = Vec::with_capacity(changes.len());
        for change in changes {
            let fields: Vec<String> = change.values.iter().map(|(f, _)| f.clone()).collect();
            let casts = table.casts(&fields, 1)?;
            let sets: Vec<String> = fields.iter().zip(&casts).map(|(f, c)| format!("{} = {c}", ident(f))).collect();
            let id = ident(&table.id.name);
            let where_id = format!("{id} = CAST(${} AS {})", fields.len() + 1, table.id.sql_type);
            let sql = if sets.is_empty() {
                format!("SELECT {id}::text FROM {} WHERE {where_id}", table.name)
            } else {
                format!("UPDATE {} SET {} WHERE {where_id} RETURNING {id}::text", table.name, sets.join(", "))
            };
            let mut binds: Vec<Value> = change.values.iter().map(|(_, v)| v.clone()).collect();
            binds.push(Some(change.dest_id.clone()));
            statements.push(Statement { sql: sql.into(), binds });
        }
        let answers = self.per_record(&table, &statements, Bookkeeping::None).await?;
        let name = table.name.clone();
        Ok(results(answers, changes.iter().map(|c| c.dest_id.clone()), |id| {
            format!("record {id} no longer exists in {name}")
        }))
    }

    async fn delete(&self, object: &str, ids: &[String]) -> Result<Vec<WriteResult>> {
        let table = self.table(object).await?;
        match self.delete_at_once(&table, ids).await {
            Ok(results) => return Ok(results),
            Err(e @ sqlx::Error::Database(_)) => {
                tracing::debug!("deleting from {} at once rejected ({}); record by record", table.name, message(&e))
            }
            Err(e) => return Err(e).wrap_err_with(|| format!("deleting from {}", table.name)),
        }
        let id = ident(&table.id.name);
        let sql: Arc<str> =
            format!("DELETE FROM {} WHERE {id} = CAST($1 AS {}) RETURNING {id}::text", table.name, table.id.sql_type)
                .into();
        let statements: Vec<Statement> =
            ids.iter().map(|i| Statement { sql: sql.clone(), binds: vec![Some(i.clone())] }).collect();
        let answers = self.per_record(&table, &statements, Bookkeeping::Unmark).await?;
        let name = table.name.clone();
        Ok(results(answers, ids.iter().cloned(), |id| format!("record {id} does not exist in {name}")))
    }

    async fn record_count(&self, object: &str) -> Result<Option<u64>> {
        let table = self.table(object).await?;
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", table.name))
            .fetch_one(&self.pool)
            .await
            .wrap_err_with(|| format!("counting {}", table.name))?;
        Ok(Some(n as u64))
    }

    async fn marked(&self, namespace: &str, object: &str) -> Result<Vec<(String, String)>> {
        let marks = self.table_name(MARKS_TABLE);
        let exists: bool =
            sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(&marks).fetch_one(&self.pool).await?;
        if !exists {
            return Ok(Vec::new());
        }
        let rows =
            sqlx::query_as(&format!("SELECT source_id, dest_id FROM {marks} WHERE namespace = $1 AND object = $2"))
                .bind(namespace)
                .bind(object)
                .fetch_all(&self.pool)
                .await
                .wrap_err_with(|| format!("reading {marks}"))?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_the_format_reserves() {
        let mut out = Vec::new();
        copy_text(&mut out, Some("a\tb\\c\nd\re"));
        out.push(b'|');
        copy_text(&mut out, None);
        out.push(b'|');
        copy_text(&mut out, Some("ü \\N"));
        assert_eq!(String::from_utf8(out).expect("test value"), "a\\tb\\\\c\\nd\\re|\\N|ü \\\\N");
    }
}
