//! `cutover bench`: generates a messy export of N contacts as CSV — phones in four forms and some
//! junk, dates in three, emails repeated in another case, owners nobody has, multi-line quoted
//! unicode notes — and migrates it into a SQLite destination that already holds M contacts,
//! through the full pipeline (transforms, owner resolution, dedupe, validation, audit, queue).
//! Beside it, on the same file and round-robin, the anchors of `anchors`: sqlite3's `.import`, a
//! hand-written Python load, pandas when installed. Prints each one's wall time, peak memory and
//! ratio, Cutover's time per stage, and whether the targets are met.

/// `println!` that ends quietly when the reader went away (`cutover bench | head -1`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod anchors;
pub mod linkage;

use crate::cli::{EXIT_OK, not_started};
use crate::pipeline::Finish;
use crate::project::Project;
use crate::store::RunKind;
use anchors::Tool;
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
path = "SOURCE"

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
description = { from = "notes" }
lifecyclestage = { default = "lead" }
"#;

/// Notes as exports carry them: quoted, over several lines, with quotes, commas and unicode.
const NOTES: [&str; 5] = [
    "Called twice, no answer.\nLeft a voicemail — will try again Tuesday.",
    "Asked about pricing, \"too high\" for now; revisit in Q3.",
    "Met at the Zürich fair. Interested in the API, SSO and SCIM.\nCC: François, Søren",
    "Renewal signed ✅\n\nNext: onboarding call with IT, 30 min.",
    "Prefers email. 日本語の資料を送付済み.",
];

/// Writes the bench project into `dir`: N source contacts, M of which already exist in the destination.
pub fn generate(dir: &Path, records: u64, existing: u64, batch_size: usize) -> Result<()> {
    std::fs::create_dir_all(dir.join("source"))?;
    let project = PROJECT.replace("BATCH", &batch_size.to_string());
    std::fs::write(dir.join("cutover.toml"), project.replace("SOURCE", "source"))?;
    let file = std::fs::File::create(dir.join("source/persons.csv"))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, file));
    w.write_record(["id", "name", "email", "phone", "owner_name", "add_time", "notes"])?;
    let stride = records.checked_div(existing).map_or(u64::MAX, |s| s.max(1));
    for i in 0..records {
        // One in 40 repeats an earlier person (name, phone, and email in another case): the
        // same person twice in one export.
        let person = if i % 40 == 39 { i - 17 } else { i };
        let email = if i % 3 == 0 || person != i {
            format!("Person.{person}@Example{}.com", person % 997)
        } else {
            format!("person.{person}@example{}.com", person % 997)
        };
        let date = match i % 3 {
            0 => format!("2024-{:02}-{:02} 10:{:02}:00", 1 + i % 12, 1 + i % 28, i % 60),
            1 => format!("{:02}/{:02}/2023", 1 + i % 12, 1 + i % 28),
            _ => format!("2022-{:02}-{:02}T08:00:00Z", 1 + i % 12, 1 + i % 28),
        };
        // Junk phones (held) and owners nobody has (held), now and then.
        let phone = match i % 250 {
            7 => "n/a".to_string(),
            130 => "000".to_string(),
            _ => phone(person, i),
        };
        let owner = if i % 400 == 11 { "Former Employee" } else { OWNERS[(i % 10) as usize] };
        let notes = if i % 20 == 3 { NOTES[(i / 20 % 5) as usize] } else { "" };
        w.write_record([
            &i.to_string(),
            &format!("First{} Last{}", person % 5000, person),
            &email,
            &phone,
            owner,
            &date,
            notes,
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
             email VARCHAR(254), phone VARCHAR(32), hubspot_owner_id INTEGER NOT NULL, lifecyclestage TEXT, createdate DATETIME,
             description TEXT);",
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

/// What `cutover bench` was asked.
pub struct BenchArgs {
    pub records: u64,
    pub existing: u64,
    pub batch_size: usize,
    pub dir: Option<PathBuf>,
    pub rounds: usize,
    /// Only migrate the project already in `dir` (one measured round, as a child of the bench).
    pub run_only: bool,
}

pub async fn command(args: BenchArgs) -> i32 {
    let result = match (&args.dir, args.run_only) {
        (Some(dir), true) => run_only(dir).await,
        _ => bench(args).await,
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => not_started(&e),
    }
}

/// One migration of the project in `dir`: counts, records/s and the time per stage.
async fn run_only(dir: &Path) -> Result<()> {
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
    Ok(())
}

/// A fresh place for one tool's round: a database path that does not exist, or for Cutover a
/// project folder with the pristine destination.
fn fresh_target(dir: &Path, tool: Tool, round: usize) -> Result<PathBuf> {
    let target = dir.join(format!("round-{round}-{}", tool.name().split_whitespace().next().unwrap_or("tool")));
    if target.exists() {
        if target.is_dir() {
            std::fs::remove_dir_all(&target)?;
        } else {
            std::fs::remove_file(&target)?;
        }
    }
    if tool == Tool::Cutover {
        std::fs::create_dir_all(&target)?;
        std::fs::copy(dir.join("destination.db"), target.join("destination.db"))?;
        let project = std::fs::read_to_string(dir.join("cutover.toml"))?;
        std::fs::write(target.join("cutover.toml"), project.replace("path = \"source\"", "path = \"../source\""))?;
    }
    Ok(target)
}

async fn bench(args: BenchArgs) -> Result<()> {
    let BenchArgs { records, existing, batch_size, dir, rounds, .. } = args;
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
    let csv = dir.join("source/persons.csv");
    let size = std::fs::metadata(&csv).map(|m| m.len() as f64 / 1048576.0).unwrap_or(0.0);
    say!(
        "generated a messy export of {records} contacts ({size:.0} MiB of CSV) and a destination holding {existing} \
         in {:.1}s — {}",
        t.elapsed().as_secs_f64(),
        dir.display()
    );
    let mut tools = Vec::new();
    for tool in [Tool::Sqlite, Tool::PythonCsv, Tool::Pandas, Tool::Cutover] {
        match anchors::missing(tool) {
            None => tools.push(tool),
            Some(why) => say!("  {}: skipped — {why}", tool.name()),
        }
    }
    let _ = std::io::stdout().flush();
    let mut measured: Vec<(Tool, Vec<anchors::Measured>)> = tools.iter().map(|t| (*t, Vec::new())).collect();
    for round in 0..rounds.max(1) {
        for (tool, runs) in &mut measured {
            let target = fresh_target(&dir, *tool, round)?;
            let cmd = anchors::command(*tool, &csv, &target, &dir)?;
            let m = anchors::measure(cmd, tool.name())?;
            say!("  round {}: {:<22} {:>7.1} s {:>7.0} MiB", round + 1, tool.name(), m.seconds, m.peak_mib);
            let _ = std::io::stdout().flush();
            runs.push(m);
        }
    }
    report(&measured, rounds.max(1));
    Ok(())
}

/// The side-by-side table (medians), Cutover's own lines, and the targets.
fn report(measured: &[(Tool, Vec<anchors::Measured>)], rounds: usize) {
    let med = |tool: Tool, f: fn(&anchors::Measured) -> f64| {
        measured
            .iter()
            .find(|(t, _)| *t == tool)
            .map(|(_, runs)| anchors::median(&mut runs.iter().map(f).collect::<Vec<_>>()))
    };
    let limit = med(Tool::Sqlite, |m| m.seconds);
    say!("\nside by side on the same file, medians of {rounds} round(s):");
    say!("  {:<22} {:<44} {:>8} {:>9} {:>9}", "tool", "work", "wall", "ratio", "peak RSS");
    for (tool, _) in measured {
        let (Some(wall), Some(peak)) = (med(*tool, |m| m.seconds), med(*tool, |m| m.peak_mib)) else { continue };
        let ratio = limit.map_or("—".to_string(), |l| format!("{:.2}×", wall / l));
        say!("  {:<22} {:<44} {:>6.1} s {:>9} {:>5.0} MiB", tool.name(), tool.work(), wall, ratio, peak);
    }
    if let Some((_, runs)) = measured.iter().find(|(t, _)| *t == Tool::Cutover)
        && let Some(last) = runs.last()
    {
        say!("\ncutover, last round:");
        for line in last.output.lines() {
            say!("  {}", line.trim_start());
        }
    }
    let Some(cutover) = med(Tool::Cutover, |m| m.seconds) else { return };
    let verdict = |met: bool| if met { "met" } else { "not met" };
    say!("\ntargets:");
    match limit {
        Some(l) => {
            say!("  full pipeline ≤ 2.5× sqlite3 .import: {:.2}× — {}", cutover / l, verdict(cutover / l <= 2.5))
        }
        None => say!("  full pipeline ≤ 2.5× sqlite3 .import: no sqlite3 here"),
    }
    match med(Tool::Pandas, |m| m.seconds) {
        Some(p) => {
            say!("  ≥ 4× faster than pandas + SQLAlchemy: {:.2}× — {}", p / cutover, verdict(p / cutover >= 4.0))
        }
        None => say!("  ≥ 4× faster than pandas + SQLAlchemy: pandas is not installed here"),
    }
    if let Some(peak) = med(Tool::Cutover, |m| m.peak_mib) {
        say!("  peak memory under 150 MiB: {peak:.0} MiB — {}", verdict(peak < 150.0));
    }
}
