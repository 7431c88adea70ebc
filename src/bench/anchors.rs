//! The anchors `cutover bench` runs beside Cutover on the same file, round-robin: `sqlite3`'s
//! `.import` (a raw load doing no work: the limit), a hand-written Python `csv` + `sqlite3` load
//! that lower-cases emails, keeps a phone's digits and skips blanks, and pandas + SQLAlchemy
//! doing the same when they are installed. Every tool runs as a child process — Cutover too — and
//! is measured the same way: wall time, and its own peak resident memory from `wait4`.

use color_eyre::eyre::{Result, WrapErr, eyre};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// One tool beside Cutover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Sqlite,
    PythonCsv,
    Pandas,
    Cutover,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Sqlite => "sqlite3 .import",
            Tool::PythonCsv => "python csv + sqlite3",
            Tool::Pandas => "pandas + SQLAlchemy",
            Tool::Cutover => "cutover run",
        }
    }

    pub fn work(self) -> &'static str {
        match self {
            Tool::Sqlite => "raw load, no work (the limit)",
            Tool::PythonCsv | Tool::Pandas => "lower-case email, phone digits, skip blanks",
            Tool::Cutover => "full pipeline",
        }
    }
}

/// What one run of a tool took.
#[derive(Debug, Clone)]
pub struct Measured {
    pub seconds: f64,
    pub peak_mib: f64,
    pub output: String,
}

const PYTHON_CSV: &str = r#"import csv, re, sqlite3, sys
src, db = sys.argv[1], sys.argv[2]
conn = sqlite3.connect(db)
conn.execute("CREATE TABLE contacts (id TEXT, name TEXT, email TEXT, phone TEXT, owner TEXT, added TEXT, notes TEXT)")
digits = re.compile(r"\D")
def rows():
    with open(src, newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        next(r)
        for row in r:
            if not any(v.strip() for v in row):
                continue
            row[2] = row[2].strip().lower()
            row[3] = digits.sub("", row[3])
            yield row
conn.executemany("INSERT INTO contacts VALUES (?, ?, ?, ?, ?, ?, ?)", rows())
conn.commit()
"#;

const PANDAS: &str = r#"import sys
import pandas as pd
from sqlalchemy import create_engine
src, db = sys.argv[1], sys.argv[2]
df = pd.read_csv(src, dtype=str, keep_default_na=False)
df = df[(df != "").any(axis=1)]
df["email"] = df["email"].str.strip().str.lower()
df["phone"] = df["phone"].str.replace(r"\D", "", regex=True)
df.to_sql("contacts", create_engine(f"sqlite:///{db}"), index=False, chunksize=50000)
"#;

/// Why a tool cannot run here, if it cannot.
pub fn missing(tool: Tool) -> Option<String> {
    let works = |program: &str, args: &[&str]| {
        Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    };
    match tool {
        Tool::Sqlite if !works("sqlite3", &["-version"]) => Some("the sqlite3 command is not installed".into()),
        Tool::PythonCsv if !works("python3", &["-c", "import csv, sqlite3"]) => Some("python3 is not installed".into()),
        Tool::Pandas if !works("python3", &["-c", "import pandas, sqlalchemy"]) => {
            Some("pandas and SQLAlchemy are not installed (pip install pandas sqlalchemy)".into())
        }
        _ => None,
    }
}

/// The command that runs `tool` on `csv`, loading into the fresh database `db` (Cutover: the
/// project folder `db` prepared for one round).
pub fn command(tool: Tool, csv: &Path, db: &Path, scripts: &Path) -> Result<Command> {
    let cmd = match tool {
        Tool::Sqlite => {
            let mut c = Command::new("sqlite3");
            c.arg(db).arg(".mode csv").arg(format!(".import '{}' contacts", csv.display()));
            c
        }
        Tool::PythonCsv | Tool::Pandas => {
            let (name, text) = if tool == Tool::Pandas { ("pandas.py", PANDAS) } else { ("csv_load.py", PYTHON_CSV) };
            let script = scripts.join(name);
            std::fs::write(&script, text).wrap_err_with(|| format!("writing {}", script.display()))?;
            let mut c = Command::new("python3");
            c.arg(script).arg(csv).arg(db);
            c
        }
        Tool::Cutover => {
            let mut c = Command::new(std::env::current_exe()?);
            c.args(["bench", "--run-only", "--dir"]).arg(db);
            c
        }
    };
    Ok(cmd)
}

/// GNU time's report of its child's peak memory, in KiB.
const MAXRSS: &str = "cutover-bench-maxrss-kib=";

/// Runs a child to its end: wall time, its peak resident memory, and what it printed. A child
/// that fails is an error naming it, with what it said.
///
/// The peak is the child's own. A child spawned from this process shares its memory until it
/// starts its program, and the kernel counts that in the child's peak: so the child is started
/// from GNU `time` (a small process) where it is installed, which reports the peak of its own
/// child; elsewhere from here, and the figure includes this process's size at the time.
pub fn measure(cmd: Command, what: &str) -> Result<Measured> {
    let time = Path::new("/usr/bin/time");
    let mut cmd = if time.is_file() {
        let mut wrapped = Command::new(time);
        wrapped.arg("-f").arg(format!("{MAXRSS}%M")).arg(cmd.get_program()).args(cmd.get_args());
        if let Some(d) = cmd.get_current_dir() {
            wrapped.current_dir(d);
        }
        wrapped
    } else {
        cmd
    };
    // Each tool starts with the system's paging, not the one Cutover sets for itself (a
    // process's choice of small pages is inherited): Cutover's own run sets it again.
    #[cfg(target_os = "linux")]
    // SAFETY: between fork and exec the closure only makes one async-signal-safe system call.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0);
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().wrap_err_with(|| format!("starting {what}"))?;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(o) = out.as_mut() {
            let _ = std::io::Read::read_to_string(o, &mut text);
        }
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(e) = err.as_mut() {
            let _ = std::io::Read::read_to_string(e, &mut text);
        }
        text
    });
    let (status, peak_kib) = wait_with_peak(child.id())?;
    let seconds = started.elapsed().as_secs_f64();
    let output = reader.join().unwrap_or_default();
    let errors = err_reader.join().unwrap_or_default();
    let reported = errors.lines().rev().find_map(|l| l.strip_prefix(MAXRSS)?.trim().parse::<i64>().ok());
    let errors: Vec<&str> =
        errors.lines().filter(|l| !l.starts_with(MAXRSS) && !l.starts_with("Command exited")).collect();
    if status != 0 {
        return Err(eyre!("{what} failed (exit status {status}): {}", errors.join("\n").trim()));
    }
    Ok(Measured { seconds, peak_mib: reported.unwrap_or(peak_kib) as f64 / 1024.0, output })
}

/// Waits for the child `pid`: its exit status and the most memory it held (KiB).
#[cfg(unix)]
fn wait_with_peak(pid: u32) -> Result<(i32, i64)> {
    let mut status = 0;
    // SAFETY: `rusage` is plain data, zeroed is a valid value; wait4 writes it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for a child this process spawned and has not waited for.
    let got = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    if got < 0 {
        return Err(eyre!("waiting for a benchmark child: {}", std::io::Error::last_os_error()));
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
    Ok((code, usage.ru_maxrss))
}

#[cfg(not(unix))]
fn wait_with_peak(_pid: u32) -> Result<(i32, i64)> {
    Err(eyre!("the side-by-side benchmark needs a Unix system"))
}

/// The middle value (the mean of the two middle ones).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_measured_by_its_own_peak_and_a_failing_one_is_named() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo hello"]);
        let m = measure(cmd, "echo").expect("runs");
        assert_eq!(m.output.trim(), "hello");
        assert!(m.peak_mib > 0.0 && m.peak_mib < 64.0, "{}", m.peak_mib);
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo broken >&2; exit 3"]);
        let e = measure(cmd, "the failing tool").expect_err("fails");
        assert!(format!("{e}").contains("the failing tool failed (exit status 3): broken"), "{e}");
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0]), 2.5);
    }
}
