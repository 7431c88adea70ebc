//! The demo into a real database server: `cutover demo --into postgres|mariadb`. The destination's
//! tables (and its 800 existing contacts) are created from the dialect's DDL and the data rows of
//! `destination.sql`; the project file is pointed at them, with the URL read from the environment
//! variable [`URL_ENV`] — the project file never holds it.
//!
//! Cutover only ever replaces what an earlier demo made: the PostgreSQL schema `cutover_demo`, or
//! in MariaDB the demo's tables in the URL's database, recognised by the `cutover_demo_marker`
//! table beside them. Anything else of the same name is left alone and named in the error.

use color_eyre::eyre::{Result, WrapErr, bail};
use std::path::Path;

/// The environment variable holding the demo server's URL.
pub const URL_ENV: &str = "CUTOVER_DEMO_URL";

/// The PostgreSQL schema the demo writes into.
pub const PG_SCHEMA: &str = "cutover_demo";

const MARKER: &str = "cutover_demo_marker";
const TABLES: [&str; 7] = ["notes", "deals", "contacts", "companies", "pipeline_stages", "pipelines", "owners"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    Postgres,
    Mariadb,
}

impl Dialect {
    pub fn kind(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Mariadb => "mysql",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Dialect::Postgres => "PostgreSQL",
            Dialect::Mariadb => "MariaDB",
        }
    }
}

/// The whole script building the demo destination in `dialect`: its DDL, its owners, then (with
/// `records`) the contacts already there — the rows of the SQLite script, which both servers read
/// as they are once date-times are spelled the way MariaDB's DATETIME takes them.
pub fn destination_script(dialect: Dialect, records: bool) -> Result<String> {
    let sqlite = std::str::from_utf8(super::file("destination.sql"))?;
    let ddl = match dialect {
        Dialect::Postgres => std::str::from_utf8(super::file("destination.postgres.sql"))?,
        Dialect::Mariadb => std::str::from_utf8(super::file("destination.mariadb.sql"))?,
    };
    let owners: String =
        sqlite.lines().filter(|l| l.starts_with("INSERT INTO owners")).map(|l| format!("{l}\n")).collect();
    let start = sqlite.find("\nBEGIN;").map(|i| i + 1).unwrap_or(sqlite.len());
    let data: String = match records {
        true => {
            sqlite[start..].lines().filter(|l| !l.starts_with("INSERT INTO owners")).map(|l| format!("{l}\n")).collect()
        }
        false => String::new(),
    };
    let data = match dialect {
        Dialect::Postgres => data,
        Dialect::Mariadb => data.replace("T09:00:00Z'", " 09:00:00'"),
    };
    Ok(format!("{ddl}{owners}{data}"))
}

/// Builds the demo destination on the server at `url` and points `project_file` at it.
pub async fn setup(dialect: Dialect, url: &str, project_file: &Path) -> Result<()> {
    let script = destination_script(dialect, true)?;
    match dialect {
        Dialect::Postgres => setup_postgres(url, &script).await?,
        Dialect::Mariadb => setup_mariadb(url, &script).await?,
    }
    point_project_at(dialect, project_file)
}

async fn setup_postgres(url: &str, script: &str) -> Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.wrap_err("cannot connect to the PostgreSQL server")?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(PG_SCHEMA)
        .fetch_one(&mut conn)
        .await?;
    if exists {
        let ours: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(format!("{PG_SCHEMA}.{MARKER}"))
            .fetch_one(&mut conn)
            .await?;
        if !ours {
            bail!("the PostgreSQL schema {PG_SCHEMA} exists and was not made by `cutover demo`: it is left alone");
        }
    }
    let full = format!(
        "BEGIN; DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE; CREATE SCHEMA {PG_SCHEMA}; SET LOCAL search_path TO {PG_SCHEMA};
         CREATE TABLE {MARKER} (note text); {script}
         INSERT INTO {MARKER} VALUES ('Made by cutover demo; replaced on the next run.'); COMMIT;",
        script = script.replace("BEGIN;", "").replace("COMMIT;", "")
    );
    sqlx::raw_sql(&full).execute(&mut conn).await.wrap_err("building the demo destination in PostgreSQL")?;
    conn.close().await.ok();
    Ok(())
}

async fn setup_mariadb(url: &str, script: &str) -> Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::MySqlConnection::connect(url).await.wrap_err("cannot connect to the MariaDB server")?;
    let present: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE()",
    )
    .fetch_all(&mut conn)
    .await?;
    let clash: Vec<&str> = TABLES.iter().copied().filter(|t| present.iter().any(|p| p == t)).collect();
    if !clash.is_empty() && !present.iter().any(|p| p == MARKER) {
        bail!(
            "the MariaDB database already has tables named {} that were not made by `cutover demo`: they are left alone",
            clash.join(", ")
        );
    }
    let drops: Vec<String> =
        TABLES.iter().chain([&MARKER, &"cutover_marks"]).map(|t| format!("DROP TABLE IF EXISTS `{t}`;")).collect();
    let full = format!(
        "SET FOREIGN_KEY_CHECKS = 0; {} SET FOREIGN_KEY_CHECKS = 1; CREATE TABLE {MARKER} (note text); {script}
         INSERT INTO {MARKER} VALUES ('Made by cutover demo; replaced on the next run.');",
        drops.join(" ")
    );
    sqlx::raw_sql(&full).execute(&mut conn).await.wrap_err("building the demo destination in MariaDB")?;
    conn.close().await.ok();
    Ok(())
}

/// Rewrites the demo project's `[destination]` for the server, keeping everything else.
fn point_project_at(dialect: Dialect, project_file: &Path) -> Result<()> {
    let text = std::fs::read_to_string(project_file)?;
    let mut doc: toml_edit::DocumentMut = text.parse()?;
    let dest =
        doc["destination"].as_table_mut().ok_or_else(|| color_eyre::eyre::eyre!("the demo has no [destination]"))?;
    dest.remove("path");
    dest.insert("kind", toml_edit::value(dialect.kind()));
    dest.insert("url_env", toml_edit::value(URL_ENV));
    if dialect == Dialect::Postgres {
        dest.insert("schema", toml_edit::value(PG_SCHEMA));
    }
    dest.sort_values_by(|a, _, b, _| rank(a.get()).cmp(&rank(b.get())));
    std::fs::write(project_file, doc.to_string()).wrap_err_with(|| format!("cannot write {}", project_file.display()))
}

fn rank(key: &str) -> usize {
    ["kind", "url_env", "schema"].iter().position(|k| *k == key).unwrap_or(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_dialect_gets_its_ddl_and_the_same_rows() {
        for dialect in [Dialect::Postgres, Dialect::Mariadb] {
            let script = destination_script(dialect, true).expect("test value");
            assert_eq!(script.matches("INSERT INTO contacts").count(), 800, "{dialect:?}");
            assert_eq!(script.matches("INSERT INTO owners").count(), 19, "{dialect:?}");
            assert!(!script.contains("sqlite_sequence") && !script.contains("PRAGMA"), "{dialect:?}");
        }
        assert!(destination_script(Dialect::Mariadb, true).expect("test value").contains("'2022-06-01 09:00:00'"));
        assert!(destination_script(Dialect::Postgres, true).expect("test value").contains("'2022-06-01T09:00:00Z'"));
        let empty = destination_script(Dialect::Postgres, false).expect("test value");
        assert!(!empty.contains("INSERT INTO contacts") && empty.matches("INSERT INTO owners").count() == 19);
    }
}
