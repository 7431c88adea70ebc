//! `cutover bench`: generates N contacts as CSV and migrates them into a SQLite destination that
//! already holds M contacts, through the full pipeline (email, phone and date transforms, owner
//! resolution, dedupe, validation, audit log). Prints records/s and peak memory.

/// `println!` that ends quietly when the reader went away (`cutover bench | head -1`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

use crate::cli::{EXIT_OK, not_started};
use crate::pipeline::Finish;
use crate::project::Project;
use crate::store::RunKind;
use color_eyre::eyre::{Result, WrapErr};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

const OWNERS: [&str; 10] = [
    "Ana López",
    "Bo Chen",
    "Carla Mendes",
    "Dev Patel",
    "Erik Larsen",
    "Fatima Khan",
    "Greg Olsen",
    "Hana Sato",
    "Ivan Petrov",
    "Julia Rossi",
];
const AREAS: [&str; 10] = ["212", "312", "415", "617", "206", "512", "303", "404", "305", "702"];

fn phone(i: u64, style: u64) -> String {
    let area = AREAS[(i % 10) as usize];
    // Exchanges 200..799, with the invalid x11 and the fictional 555 moved to unused 8xx codes.
    let mut exchange = 200 + (i / 10) % 600;
    if exchange % 100 == 11 {
        exchange = 800 + exchange / 100;
    } else if exchange == 555 {
        exchange = 820;
    }
    let line = (i / 6000) % 10000;
    match style % 4 {
        0 => format!("({area}) {exchange}-{line:04}"),
        1 => format!("{area}.{exchange}.{line:04}"),
        2 => format!("+1 {area} {exchange} {line:04}"),
        _ => format!("{area}{exchange}{line:04}"),
    }
}

const PROJECT: &str = r#"
[project]
name = "bench"
batch_size = BATCH
halt_error_rate = 0.5

[source]
kind = "csv"
path = "source"

[destination]
kind = "sqlite"
path = "destination.db"
owners = { table = "owners", id = "id", name = "name", email = "email" }

[objects.contacts]
source = "persons"
match = ["email", "phone"]
merge = "fill_blanks"

[objects.contacts.fields]
firstname = { split = "name", part = "first" }
lastname = { split = "name", part = "rest" }
email = { from = "email", transform = "email" }
phone = { from = "phone", transform = "phone" }
hubspot_owner_id = { from = "owner_name", transform = "owner" }
createdate = { from = "add_time", transform = "datetime" }
lifecyclestage = { default = "lead" }
"#;

/// Writes the bench project into `dir`: N source contacts, M of which already exist in the destination.
pub fn generate(dir: &Path, records: u64, existing: u64, batch_size: usize) -> Result<()> {
    std::fs::create_dir_all(dir.join("source"))?;
    std::fs::write(dir.join("cutover.toml"), PROJECT.replace("BATCH", &batch_size.to_string()))?;
    let file = std::fs::File::create(dir.join("source/persons.csv"))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, file));
    w.write_record(["id", "name", "email", "phone", "owner_name", "add_time"])?;
    let stride = records.checked_div(existing).map_or(u64::MAX, |s| s.max(1));
    for i in 0..records {
        let email = if i % 3 == 0 {
            format!("Person.{i}@Example{}.com", i % 997)
        } else {
            format!("person.{i}@example{}.com", i % 997)
        };
        let date = match i % 3 {
            0 => format!("2024-{:02}-{:02} 10:{:02}:00", 1 + i % 12, 1 + i % 28, i % 60),
            1 => format!("{:02}/{:02}/2023", 1 + i % 12, 1 + i % 28),
            _ => format!("2022-{:02}-{:02}T08:00:00Z", 1 + i % 12, 1 + i % 28),
        };
        w.write_record([
            &i.to_string(),
            &format!("First{} Last{}", i % 5000, i),
            &email,
            &phone(i, i),
            OWNERS[(i % 10) as usize],
            &date,
        ])?;
    }
    w.flush()?;
    let db = dir.join("destination.db");
    let _ = std::fs::remove_file(&db);
    let mut conn = rusqlite::Connection::open(&db)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE owners (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);
         CREATE TABLE contacts (id INTEGER PRIMARY KEY AUTOINCREMENT, firstname VARCHAR(100), lastname VARCHAR(100),
             email VARCHAR(254), phone VARCHAR(32), hubspot_owner_id INTEGER NOT NULL, lifecyclestage TEXT, createdate DATETIME);",
    )?;
    let tx = conn.transaction()?;
    {
        let mut owner = tx.prepare("INSERT INTO owners (id, name) VALUES (?1, ?2)")?;
        for (i, name) in OWNERS.iter().enumerate() {
            owner.execute(rusqlite::params![i as i64 + 1, name])?;
        }
        let mut c = tx.prepare(
            "INSERT INTO contacts (firstname, lastname, email, phone, hubspot_owner_id) VALUES (?1, ?2, ?3, ?4, 1)",
        )?;
        for j in 0..existing {
            // Every `stride`-th source contact is already there: by email (other case) or by phone only.
            let i = j.saturating_mul(stride);
            if i < records && j % 2 == 0 {
                c.execute(rusqlite::params![
                    format!("First{}", i % 5000),
                    format!("Last{i}"),
                    format!("PERSON.{i}@EXAMPLE{}.COM", i % 997),
                    None::<String>
                ])?;
            } else if i < records {
                c.execute(rusqlite::params![
                    format!("First{}", i % 5000),
                    format!("Last{i}"),
                    None::<String>,
                    phone(i, i + 1)
                ])?;
            } else {
                c.execute(rusqlite::params![
                    "Other",
                    format!("Contact{j}"),
                    format!("other{j}@elsewhere.example"),
                    None::<String>
                ])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// Peak resident memory of this process, in MiB (Linux; `None` elsewhere).
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub async fn command(records: u64, existing: u64, batch_size: usize, dir: Option<PathBuf>) -> i32 {
    match bench(records, existing, batch_size, dir).await {
        Ok(()) => EXIT_OK,
        Err(e) => not_started(&e),
    }
}

async fn bench(records: u64, existing: u64, batch_size: usize, dir: Option<PathBuf>) -> Result<()> {
    let temp;
    let dir = match dir {
        Some(d) => d,
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let t = Instant::now();
    generate(&dir, records, existing, batch_size).wrap_err("generating the bench data")?;
    say!(
        "generated {records} contacts (CSV) and a destination holding {existing} in {:.1}s — {}",
        t.elapsed().as_secs_f64(),
        dir.display()
    );
    let _ = std::io::stdout().flush();
    let project = Project::load(Some(&dir.join("cutover.toml")))?;
    let engine = project.engine()?;
    let t = Instant::now();
    let summary = engine.run(RunKind::Full).await.map_err(|f| f.error)?;
    let secs = t.elapsed().as_secs_f64();
    let c = summary.totals();
    if let Finish::Halted(reason) = &summary.finish {
        say!("HALTED: {reason}");
    }
    say!("migrated {} records in {secs:.2}s: {:.0} records/s end to end", c.extracted, c.extracted as f64 / secs);
    say!("  {}", crate::cli::report::outcome_line(&c));
    say!("  time per stage (extract and map overlap the rest): {}", engine.timings().summary());
    match peak_memory_mib() {
        Some(m) => say!("  peak memory (VmHWM, whole process incl. generation): {m:.0} MiB"),
        None => say!("  peak memory: not available on this platform"),
    }
    Ok(())
}
