//! MySQL/MariaDB as a destination: a table per object in the URL's database; field types, NOT
//! NULL and `varchar(n)` lengths come from information_schema, owners and picklists from tables
//! the project names.
//!
//! Creating a batch takes the fast path: multi-row `INSERT … RETURNING` (MariaDB 10.5+), with the
//! idempotency markers in the same transaction. A rejected statement rolls back only itself in
//! MySQL, so when the database rejects the multi-row insert the batch is written record by
//! record in the same transaction, and each rejection is that record's own outcome. MySQL
//! (which has no `INSERT … RETURNING`) always writes record by record and reads each new id.

use super::{Column, Keyset, as_text, columns, ident, message, pool, stored_text, text, to_server};
use crate::config::{ConnectionConfig, OwnersTable, PicklistTable};
use crate::connect::{Change, Cursor, Destination, Marks, NewRecords, WriteResult};
use crate::model::{DestField, DestSchema, DestUser, FieldType, Value};
use async_trait::async_trait;
use color_eyre::eyre::{Result, WrapErr, eyre};
use indexmap::IndexMap;
use sqlx::Row;
use sqlx::mysql::{MySqlConnection, MySqlPool};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

pub struct MySqlDestination {
    pool: MySqlPool,
    owners: Option<OwnersTable>,
    picklists: IndexMap<String, PicklistTable>,
    types: IndexMap<String, FieldType>,
    tables: Mutex<HashMap<String, Arc<Table>>>,
    /// Whether the server takes `INSERT … RETURNING` (MariaDB does, MySQL does not).
    returning: OnceCell<bool>,
    read_only: bool,
}

struct Table {
    schema: DestSchema,
    name: String,
    columns: Vec<Column>,
}

impl Table {
    fn ty(&self, field: &str) -> FieldType {
        self.schema.field(field).map_or(FieldType::Text, |f| f.ty)
    }

    fn check(&self, field: &str) -> Result<String> {
        self.columns
            .iter()
            .find(|c| c.name == field)
            .map(|c| ident(&c.name))
            .ok_or_else(|| eyre!("{} has no column '{field}'", self.name))
    }
}

const MARKS_TABLE: &str = "CREATE TABLE IF NOT EXISTS cutover_marks (
    namespace VARCHAR(200) NOT NULL,
    object    VARCHAR(64) NOT NULL,
    source_id VARCHAR(255) NOT NULL,
    dest_id   VARCHAR(255) NOT NULL,
    PRIMARY KEY (namespace, object, source_id),
    KEY by_dest (object, dest_id)
) DEFAULT CHARSET = utf8mb4";

/// At most this many bound values in one statement (the protocol's limit is 65,535).
const MAX_BINDS: usize = 60_000;

impl MySqlDestination {
    pub fn open(url: &str, conn: &ConnectionConfig, read_only: bool) -> Result<Self> {
        let types = conn.types.iter().filter_map(|(k, v)| FieldType::parse(v).map(|t| (k.clone(), t))).collect();
        Ok(Self {
            pool: pool(url, "destination", read_only)?,
            owners: conn.owners.clone(),
            picklists: conn.picklists.clone(),
            types,
            tables: Mutex::default(),
            returning: OnceCell::new(),
            read_only,
        })
    }

    async fn table(&self, object: &str) -> Result<Arc<Table>> {
        if let Some(t) = self.tables.lock().map_err(|_| eyre!("schema cache poisoned"))?.get(object) {
            return Ok(t.clone());
        }
        let cols = columns(&self.pool, object).await?;
        let id = cols
            .iter()
            .find(|c| c.primary_key)
            .or_else(|| cols.iter().find(|c| c.name == "id"))
            .ok_or_else(|| eyre!("{} has no primary key and no id column", ident(object)))?
            .name
            .clone();
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
                required: c.not_null && !c.has_default && !c.primary_key && !c.auto_increment,
                max_length: c.max_length,
                picklist,
                multiple: false,
            });
        }
        let table = Arc::new(Table {
            schema: DestSchema { object: object.to_string(), id_field: id, fields },
            name: ident(object),
            columns: cols,
        });
        self.tables.lock().map_err(|_| eyre!("schema cache poisoned"))?.insert(object.to_string(), table.clone());
        Ok(table)
    }

    async fn picklist(&self, object: &str, field: &str, t: &PicklistTable) -> Result<Vec<String>> {
        let sql = format!(
            "SELECT DISTINCT {} FROM {} WHERE {} IS NOT NULL ORDER BY 1",
            as_text(&t.column),
            ident(&t.table),
            ident(&t.column)
        );
        sqlx::query_scalar(&sql).fetch_all(&self.pool).await.map_err(|e| {
            crate::connect::picklist_problem(object, field, &t.table, &t.column, &super::super::sql::db_message(&e))
        })
    }

    async fn returning(&self) -> Result<bool> {
        Ok(*self
            .returning
            .get_or_try_init(|| async {
                let version: String = sqlx::query_scalar("SELECT VERSION()").fetch_one(&self.pool).await?;
                Ok::<_, sqlx::Error>(version.contains("MariaDB"))
            })
            .await?)
    }

    /// The multi-row insert: all rows or none (a rejection rolls back the statement alone).
    async fn insert_many(
        conn: &mut MySqlConnection,
        table: &Table,
        records: &NewRecords,
    ) -> std::result::Result<Vec<String>, sqlx::Error> {
        let cols: Vec<String> = records.fields.iter().map(|f| ident(f)).collect();
        let per_row = format!("({})", vec!["?"; cols.len()].join(", "));
        let rows_per_statement = (MAX_BINDS / cols.len().max(1)).max(1);
        let mut ids = Vec::with_capacity(records.rows.len());
        for chunk in records.rows.chunks(rows_per_statement) {
            let sql = format!(
                "INSERT INTO {} ({}) VALUES {} RETURNING {}",
                table.name,
                cols.join(", "),
                vec![per_row.as_str(); chunk.len()].join(", "),
                as_text(&table.schema.id_field)
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for row in chunk {
                for (f, v) in records.fields.iter().zip(row) {
                    q = q.bind(to_server(table.ty(f), v.as_deref()));
                }
            }
            ids.extend(q.fetch_all(&mut *conn).await?);
        }
        Ok(ids)
    }

    /// One insert per record; a rejection is that record's outcome and the others still land.
    async fn insert_each(
        conn: &mut MySqlConnection,
        table: &Table,
        records: &NewRecords,
        returning: bool,
    ) -> std::result::Result<Vec<WriteResult>, sqlx::Error> {
        let cols: Vec<String> = records.fields.iter().map(|f| ident(f)).collect();
        let insert =
            format!("INSERT INTO {} ({}) VALUES ({})", table.name, cols.join(", "), vec!["?"; cols.len()].join(", "));
        let sql = if returning { format!("{insert} RETURNING {}", as_text(&table.schema.id_field)) } else { insert };
        let mut results = Vec::with_capacity(records.rows.len());
        for row in &records.rows {
            let binds = records.fields.iter().zip(row).map(|(f, v)| to_server(table.ty(f), v.as_deref()));
            let result = if returning {
                let mut q = sqlx::query_scalar::<_, String>(&sql);
                for b in binds {
                    q = q.bind(b);
                }
                q.fetch_one(&mut *conn).await
            } else {
                let mut q = sqlx::query(&sql);
                for b in binds {
                    q = q.bind(b);
                }
                q.execute(&mut *conn).await.map(|done| done.last_insert_id().to_string())
            };
            results.push(match result {
                Ok(id) => Ok(id),
                Err(e @ sqlx::Error::Database(_)) => Err(message(&e)),
                Err(e) => return Err(e),
            });
        }
        Ok(results)
    }

    async fn write_marks(
        conn: &mut MySqlConnection,
        object: &str,
        marks: &Marks,
        results: &[WriteResult],
    ) -> std::result::Result<(), sqlx::Error> {
        let pairs: Vec<(&String, &String)> =
            marks.source_ids.iter().zip(results).filter_map(|(s, r)| r.as_ref().ok().map(|d| (s, d))).collect();
        for chunk in pairs.chunks(MAX_BINDS / 4) {
            let sql = format!(
                "INSERT INTO cutover_marks (namespace, object, source_id, dest_id) VALUES {}
                 ON DUPLICATE KEY UPDATE dest_id = VALUES(dest_id)",
                vec!["(?, ?, ?, ?)"; chunk.len()].join(", ")
            );
            let mut q = sqlx::query(&sql);
            for (s, d) in chunk {
                q = q.bind(&marks.namespace).bind(object).bind(*s).bind(*d);
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Destination for MySqlDestination {
    fn describe(&self) -> String {
        "MySQL/MariaDB database".into()
    }

    async fn schema(&self, object: &str) -> Result<DestSchema> {
        Ok(self.table(object).await?.schema.clone())
    }

    async fn users(&self) -> Result<Vec<DestUser>> {
        let Some(owners) = &self.owners else {
            return Ok(Vec::new());
        };
        let names: Vec<String> = owners.name.items().iter().map(|c| as_text(c)).collect();
        let email = owners.email.as_deref().map(as_text).unwrap_or_else(|| "NULL".into());
        let sql = format!(
            "SELECT {}, TRIM(CONCAT_WS(' ', {})), {email} FROM {}",
            as_text(&owners.id),
            names.join(", "),
            ident(&owners.table)
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
        let id_field = &table.schema.id_field;
        let mut list = vec![as_text(id_field)];
        for f in fields {
            table.check(f)?;
            list.push(as_text(f));
        }
        let list = list.join(", ");
        let keyset = Keyset { from: &table.name, id: id_field, ty: table.ty(id_field), list: &list, id_index: 0 };
        let (rows, last, done) =
            keyset.page(&self.pool, &after.0, max).await.wrap_err_with(|| format!("reading {}", table.name))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = row.try_get::<Option<String>, _>(0)?.unwrap_or_default();
            let values =
                fields.iter().enumerate().map(|(i, f)| text(row, i + 1, table.ty(f))).collect::<Result<Vec<_>>>()?;
            out.push((id, values));
        }
        Ok((out, Cursor(last), done))
    }

    async fn read(&self, object: &str, ids: &[String], fields: &[String]) -> Result<HashMap<String, Vec<Value>>> {
        let table = self.table(object).await?;
        let id_field = &table.schema.id_field;
        let mut list = vec![as_text(id_field)];
        for f in fields {
            table.check(f)?;
            list.push(as_text(f));
        }
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            let sql = format!(
                "SELECT {} FROM {} WHERE {} IN ({})",
                list.join(", "),
                table.name,
                ident(id_field),
                vec!["?"; chunk.len()].join(", ")
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            let rows = q.fetch_all(&self.pool).await.wrap_err_with(|| format!("reading {}", table.name))?;
            for row in &rows {
                let values = fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| stored_text(row, i + 1, table.ty(f)))
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
        for f in records.fields.iter() {
            table.check(f)?;
        }
        let returning = self.returning().await?;
        let context = || format!("writing to {}", table.name);
        if records.marks.is_some() && !self.read_only {
            // DDL commits implicitly in MySQL: the markers' table is made before the transaction.
            sqlx::query(MARKS_TABLE).execute(&self.pool).await.wrap_err("creating cutover_marks")?;
        }
        let mut tx = self.pool.begin().await.wrap_err_with(context)?;
        let results = match returning {
            true => match Self::insert_many(&mut tx, &table, &records).await {
                Ok(ids) if ids.len() == records.rows.len() => ids.into_iter().map(Ok).collect(),
                Ok(_) => return Err(eyre!("{} answered a different number of ids than rows inserted", table.name)),
                Err(e @ sqlx::Error::Database(_)) => {
                    tracing::debug!(
                        "multi-row insert into {} rejected ({}); record by record",
                        table.name,
                        message(&e)
                    );
                    Self::insert_each(&mut tx, &table, &records, true).await.wrap_err_with(context)?
                }
                Err(e) => return Err(e).wrap_err_with(context),
            },
            false => Self::insert_each(&mut tx, &table, &records, false).await.wrap_err_with(context)?,
        };
        if let Some(marks) = &records.marks {
            Self::write_marks(&mut tx, &table.schema.object, marks, &results).await.wrap_err_with(context)?;
        }
        tx.commit().await.wrap_err_with(context)?;
        Ok(results)
    }

    async fn update(&self, object: &str, changes: &[Change]) -> Result<Vec<WriteResult>> {
        let table = self.table(object).await?;
        let context = || format!("writing to {}", table.name);
        let id = ident(&table.schema.id_field);
        let exists = format!("SELECT COUNT(*) FROM {} WHERE {id} = ?", table.name);
        let mut tx = self.pool.begin().await.wrap_err_with(context)?;
        let mut results = Vec::with_capacity(changes.len());
        for change in changes {
            let mut sets = Vec::with_capacity(change.values.len());
            for (f, _) in &change.values {
                sets.push(format!("{} = ?", table.check(f)?));
            }
            let result = if sets.is_empty() {
                Ok(0)
            } else {
                let sql = format!("UPDATE {} SET {} WHERE {id} = ?", table.name, sets.join(", "));
                let mut q = sqlx::query(&sql);
                for (f, v) in &change.values {
                    q = q.bind(to_server(table.ty(f), v.as_deref()));
                }
                q.bind(&change.dest_id).execute(&mut *tx).await.map(|d| d.rows_affected())
            };
            results.push(match result {
                Ok(0) => {
                    // MySQL counts rows changed, not rows found: an update to the same values is 0.
                    let n: i64 = sqlx::query_scalar(&exists)
                        .bind(&change.dest_id)
                        .fetch_one(&mut *tx)
                        .await
                        .wrap_err_with(context)?;
                    if n > 0 {
                        Ok(change.dest_id.clone())
                    } else {
                        Err(format!("record {} no longer exists in {}", change.dest_id, table.name))
                    }
                }
                Ok(_) => Ok(change.dest_id.clone()),
                Err(e @ sqlx::Error::Database(_)) => Err(message(&e)),
                Err(e) => return Err(e).wrap_err_with(context),
            });
        }
        tx.commit().await.wrap_err_with(context)?;
        Ok(results)
    }

    async fn delete(&self, object: &str, ids: &[String]) -> Result<Vec<WriteResult>> {
        let table = self.table(object).await?;
        let context = || format!("deleting from {}", table.name);
        let sql = format!("DELETE FROM {} WHERE {} = ?", table.name, ident(&table.schema.id_field));
        let marks: bool = sqlx::query_scalar(
            "SELECT COUNT(*) > 0 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'cutover_marks'",
        )
        .fetch_one(&self.pool)
        .await?;
        let mut tx = self.pool.begin().await.wrap_err_with(context)?;
        let mut results = Vec::with_capacity(ids.len());
        for id in ids {
            results.push(match sqlx::query(&sql).bind(id).execute(&mut *tx).await {
                Ok(d) if d.rows_affected() == 0 => Err(format!("record {id} does not exist in {}", table.name)),
                Ok(_) => Ok(id.clone()),
                Err(e @ sqlx::Error::Database(_)) => Err(message(&e)),
                Err(e) => return Err(e).wrap_err_with(context),
            });
            if marks && results.last().is_some_and(Result::is_ok) {
                sqlx::query("DELETE FROM cutover_marks WHERE object = ? AND dest_id = ?")
                    .bind(&table.schema.object)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .wrap_err_with(context)?;
            }
        }
        tx.commit().await.wrap_err_with(context)?;
        Ok(results)
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
        let present: bool = sqlx::query_scalar(
            "SELECT COUNT(*) > 0 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'cutover_marks'",
        )
        .fetch_one(&self.pool)
        .await?;
        if !present {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_as("SELECT source_id, dest_id FROM cutover_marks WHERE namespace = ? AND object = ?")
            .bind(namespace)
            .bind(object)
            .fetch_all(&self.pool)
            .await
            .wrap_err("reading cutover_marks")?)
    }
}
