//! Databases of their own on the test servers (PostgreSQL and MariaDB on 127.0.0.1, started by
//! `.ci/run`): one per test, dropped at the end. Without a server URL a test is skipped, except
//! under CI=true.

use cutover::demo::databases::Dialect;
use sqlx::Connection;
use sqlx::mysql::MySqlConnection;
use sqlx::postgres::PgConnection;

pub fn server(var: &str, name: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but {var} is not set: .ci/run starts {name} and sets it")
        }
        _ => {
            eprintln!("skipped: no {name} server (set {var}, see the README)");
            None
        }
    }
}

/// The server URL with another database.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let cut = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &base[..cut]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A database of its own on one of the servers, for one test.
pub struct TestDb {
    pub dialect: Dialect,
    pub admin: String,
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create(dialect: Dialect, test: &str) -> Option<TestDb> {
        let admin = match dialect {
            Dialect::Postgres => server("CUTOVER_TEST_PG_URL", "PostgreSQL")?,
            Dialect::Mariadb => server("CUTOVER_TEST_MYSQL_URL", "MariaDB")?,
        };
        let name = format!("cutover_{test}_{}", std::process::id());
        let db = TestDb { dialect, url: with_database(&admin, &name), admin, name };
        db.admin_sql(&format!("DROP DATABASE IF EXISTS {}", db.name)).await;
        db.admin_sql(&format!("CREATE DATABASE {}", db.name)).await;
        Some(db)
    }

    pub async fn admin_sql(&self, sql: &str) {
        match self.dialect {
            Dialect::Postgres => {
                let mut c = PgConnection::connect(&self.admin).await.expect("connect to PostgreSQL");
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            Dialect::Mariadb => {
                let mut c = MySqlConnection::connect(&self.admin).await.expect("connect to MariaDB");
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    /// Runs SQL in the test's database.
    pub async fn sql(&self, sql: &str) {
        match self.dialect {
            Dialect::Postgres => {
                let mut c = PgConnection::connect(&self.url).await.expect("connect");
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            Dialect::Mariadb => {
                let mut c = MySqlConnection::connect(&self.url).await.expect("connect");
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    /// One text value from the test's database.
    pub async fn text(&self, sql: &str) -> String {
        match self.dialect {
            Dialect::Postgres => {
                let mut c = PgConnection::connect(&self.url).await.expect("connect");
                sqlx::query_scalar::<_, String>(sql).fetch_one(&mut c).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            Dialect::Mariadb => {
                let mut c = MySqlConnection::connect(&self.url).await.expect("connect");
                sqlx::query_scalar::<_, String>(sql).fetch_one(&mut c).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
        }
    }

    /// The demo's tables, as `cutover demo --into` makes them (PostgreSQL: schema cutover_demo).
    pub fn table(&self, name: &str) -> String {
        match self.dialect {
            Dialect::Postgres => format!("cutover_demo.{name}"),
            Dialect::Mariadb => name.to_string(),
        }
    }

    pub async fn count(&self, table: &str) -> i64 {
        self.text(&format!("SELECT CAST(COUNT(*) AS CHAR(20)) FROM {}", self.table(table)))
            .await
            .trim()
            .parse()
            .expect("count")
    }

    /// A fingerprint of the demo's 800 existing contacts, every column.
    pub async fn contacts_fingerprint(&self) -> String {
        let t = self.table("contacts");
        let cols = "CONCAT_WS('|', id, firstname, lastname, email, phone, associatedcompanyid, hubspot_owner_id, lifecyclestage, createdate)";
        match self.dialect {
            Dialect::Postgres => {
                self.text(&format!("SELECT md5(string_agg({cols}, ',' ORDER BY id)) FROM {t} WHERE id < 1300000")).await
            }
            Dialect::Mariadb => {
                self.text(&format!(
                    "SELECT md5(GROUP_CONCAT({cols} ORDER BY id SEPARATOR ',')) FROM {t} WHERE id < 1300000"
                ))
                .await
            }
        }
    }

    pub async fn drop(self) {
        let force = if self.dialect == Dialect::Postgres { " WITH (FORCE)" } else { "" };
        self.admin_sql(&format!("DROP DATABASE {}{force}", self.name)).await;
    }
}

impl TestDb {
    /// Every row of `table`, the columns read as text (NULL as `None`), in no particular order.
    pub async fn rows(&self, table: &str, columns: &[&str]) -> Vec<Vec<Option<String>>> {
        self.try_rows(table, columns).await.unwrap_or_else(|e| panic!("{table}: {e}"))
    }

    /// As [`TestDb::rows`], nothing when the table does not exist.
    pub async fn rows_if_any(&self, table: &str, columns: &[&str]) -> Vec<Vec<Option<String>>> {
        self.try_rows(table, columns).await.unwrap_or_default()
    }

    async fn try_rows(&self, table: &str, columns: &[&str]) -> Result<Vec<Vec<Option<String>>>, sqlx::Error> {
        use sqlx::Row;
        match self.dialect {
            Dialect::Postgres => {
                let list: Vec<String> = columns.iter().map(|c| format!("{c}::text")).collect();
                let mut c = PgConnection::connect(&self.url).await?;
                let rows = sqlx::query(&format!("SELECT {} FROM {table}", list.join(", "))).fetch_all(&mut c).await?;
                rows.iter().map(|r| (0..columns.len()).map(|i| r.try_get::<Option<String>, _>(i)).collect()).collect()
            }
            Dialect::Mariadb => {
                let list: Vec<String> = columns.iter().map(|c| format!("CAST({c} AS CHAR)")).collect();
                let mut c = MySqlConnection::connect(&self.url).await?;
                let rows = sqlx::query(&format!("SELECT {} FROM {table}", list.join(", "))).fetch_all(&mut c).await?;
                rows.iter().map(|r| (0..columns.len()).map(|i| r.try_get::<Option<String>, _>(i)).collect()).collect()
            }
        }
    }
}
