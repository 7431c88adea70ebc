//! The bundled demo: a Pipedrive-style CSV export migrated into a HubSpot-style SQLite database.
//! The files are embedded in the binary, so `cutover demo` works from anywhere, offline.

pub mod databases;
pub mod generate;

use crate::cli::{EXIT_NOT_STARTED, not_started, run_project};
use crate::project::Project;
use color_eyre::eyre::{Result, WrapErr, bail};
use std::path::{Path, PathBuf};

/// The demo's files, as committed under `assets/demo/`.
pub const FILES: &[(&str, &[u8])] = &[
    ("cutover.toml", include_bytes!("../../assets/demo/cutover.toml")),
    ("source/organizations.csv", include_bytes!("../../assets/demo/source/organizations.csv")),
    ("source/persons.csv", include_bytes!("../../assets/demo/source/persons.csv")),
    ("source/deals.csv", include_bytes!("../../assets/demo/source/deals.csv")),
    ("source/notes.csv", include_bytes!("../../assets/demo/source/notes.csv")),
    ("destination.sql", include_bytes!("../../assets/demo/destination.sql")),
    ("destination.postgres.sql", include_bytes!("../../assets/demo/destination.postgres.sql")),
    ("destination.mariadb.sql", include_bytes!("../../assets/demo/destination.mariadb.sql")),
];

/// One of the demo's files.
fn file(name: &str) -> &'static [u8] {
    FILES.iter().find(|(n, _)| *n == name).map(|(_, b)| *b).unwrap_or_default()
}

const MARKER: &str = ".cutover-demo";

/// Writes a fresh demo into `dir`: the project file, the CSV export and the destination database.
/// An earlier demo there is replaced; any other non-empty folder is left alone.
pub fn setup(dir: &Path) -> Result<PathBuf> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !empty && !dir.join(MARKER).exists() {
            bail!("{} exists and is not a Cutover demo folder; choose another with --dir", dir.display());
        }
        if !empty {
            std::fs::remove_dir_all(dir).wrap_err_with(|| format!("cannot clear the old demo in {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir.join("source")).wrap_err_with(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join(MARKER), "Created by `cutover demo`; replaced on the next run.\n")?;
    for (name, bytes) in FILES {
        std::fs::write(dir.join(name), bytes).wrap_err_with(|| format!("cannot write {name}"))?;
    }
    let sql = std::str::from_utf8(file("destination.sql"))?;
    let conn = rusqlite::Connection::open(dir.join("destination.db"))?;
    conn.execute_batch(sql).wrap_err("building the demo destination")?;
    Ok(dir.join("cutover.toml"))
}

/// Writes the generator's output (the data files) into `dir`.
pub fn regenerate(dir: &Path) -> Result<()> {
    for (name, bytes) in generate::generate() {
        let path = dir.join(&name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes).wrap_err_with(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

pub async fn command(
    dir: PathBuf,
    setup_only: bool,
    console: bool,
    into: Option<databases::Dialect>,
    regen: Option<PathBuf>,
) -> i32 {
    if let Some(target) = regen {
        return match regenerate(&target) {
            Ok(()) => {
                println!("Demo data written to {}", target.display());
                0
            }
            Err(e) => not_started(&e),
        };
    }
    let file = match setup(&dir) {
        Ok(f) => f,
        Err(e) => return not_started(&e),
    };
    let target = match into {
        None => "SQLite".to_string(),
        Some(dialect) => {
            let Ok(url) = std::env::var(databases::URL_ENV) else {
                return not_started(&color_eyre::eyre::eyre!(
                    "--into {} reads the server's URL from the environment variable {}, which is not set",
                    dialect.kind(),
                    databases::URL_ENV
                ));
            };
            if let Err(e) = databases::setup(dialect, &url, &file).await {
                return not_started(&e);
            }
            dialect.label().to_string()
        }
    };
    println!("Demo project set up in {}/ (Pipedrive-style CSV export → HubSpot-style {target})", dir.display());
    if setup_only {
        return 0;
    }
    let project = match Project::load(Some(&file)) {
        Ok(p) => p,
        Err(e) => return not_started(&e),
    };
    if console {
        return crate::cli::open_console(project).await;
    }
    println!("Running the migration headless…\n");
    let code = run_project(&project, false).await;
    if code != EXIT_NOT_STARTED {
        println!(
            "\nNext: look at the held records with `cutover queue list -p {0}`, inspect one with \
             `cutover queue show ID -p {0}`, see the runs with `cutover runs {0}`, and what is still \
             unproven with `cutover reconcile {0}`.",
            dir.display()
        );
    }
    code
}
