//! Crash safety through the real binary: the headless demo migration is killed with SIGKILL at
//! 20 random points, resumed after each, and must end exactly as an uninterrupted run does — the
//! same outcome counts, the same destination rows (no duplicate, nothing missing). Between a
//! destination write and the store's commit, the records' markers let a resume adopt them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn cutover(args: &[&str], cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cutover"));
    c.args(args)
        .current_dir(cwd)
        .env("CUTOVER_LOG", cwd.join("cutover.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// A demo folder with smaller batches (more checkpoints to land between).
fn demo(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    cutover::demo::setup(&path).expect("demo");
    let toml = path.join("cutover.toml");
    let text = std::fs::read_to_string(&toml).expect("toml").replace("batch_size = 500", "batch_size = 200");
    std::fs::write(&toml, text).expect("toml");
    path
}

/// Committed audit rows: how far the migration has come.
fn progress(project: &Path) -> i64 {
    let Ok(c) = rusqlite::Connection::open_with_flags(
        project.join("cutover.state.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return 0;
    };
    c.query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0)).unwrap_or(0)
}

fn has_run(project: &Path) -> bool {
    rusqlite::Connection::open_with_flags(project.join("cutover.state.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM runs WHERE kind = 'full'", [], |r| r.get::<_, i64>(0)))
        .is_ok_and(|n| n > 0)
}

fn completed(project: &Path) -> bool {
    rusqlite::Connection::open_with_flags(project.join("cutover.state.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row("SELECT state FROM runs WHERE kind = 'full' ORDER BY id DESC LIMIT 1", [], |r| {
                r.get::<_, String>(0)
            })
        })
        .is_ok_and(|s| s == "completed")
}

fn start(project: &Path) -> Child {
    let args: &[&str] = if has_run(project) { &["run", "--resume"] } else { &["run"] };
    cutover(args, project).spawn().expect("spawn")
}

/// Every row of the migrated tables, ids included, in id order.
fn rows(project: &Path) -> Vec<(String, Vec<String>)> {
    let c = rusqlite::Connection::open(project.join("destination.db")).expect("dest");
    let mut out = Vec::new();
    for table in ["companies", "contacts", "deals", "notes"] {
        let mut stmt = c.prepare(&format!("SELECT * FROM {table} ORDER BY id")).expect("select");
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                (0..n).map(|i| r.get_ref(i).map(|v| format!("{v:?}"))).collect::<rusqlite::Result<Vec<String>>>()
            })
            .expect("rows");
        for row in rows {
            out.push((table.to_string(), row.expect("row")));
        }
    }
    out
}

/// Per object: extracted, created, updated, merged, queued, skipped, failed.
fn run_counts(project: &Path) -> Vec<(String, [i64; 7])> {
    let c = rusqlite::Connection::open(project.join("cutover.state.db")).expect("store");
    let mut stmt = c
        .prepare(
            "SELECT object, extracted, created, updated, merged, queued, skipped, failed FROM run_objects
             WHERE run_id = (SELECT MAX(id) FROM runs WHERE kind = 'full') ORDER BY position",
        )
        .expect("q");
    stmt.query_map([], |r| {
        Ok((r.get(0)?, [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?]))
    })
    .expect("rows")
    .collect::<rusqlite::Result<_>>()
    .expect("counts")
}

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn twenty_kills_and_resumes_end_as_an_uninterrupted_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = demo(dir.path(), "reference");
    let status = cutover(&["run"], &reference).status().expect("reference run");
    assert!(status.success());
    let total = progress(&reference);
    assert_eq!(total, 12_400);

    let subject = demo(dir.path(), "subject");
    let seed = std::env::var("CUTOVER_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_c0de_u64);
    let mut rng = Rng(seed);
    let mut targets: Vec<i64> = (0..20).map(|_| (rng.next() % total as u64) as i64).collect();
    targets.sort_unstable();
    let mut kills = 0;
    for target in targets {
        if completed(&subject) {
            break;
        }
        let mut child = start(&subject);
        let deadline = Instant::now() + Duration::from_secs(60);
        // Run until the migration has committed past the target, then a random moment more
        // (so kills land mid-batch, mid-write, mid-commit), then SIGKILL.
        loop {
            if child.try_wait().expect("wait").is_some() || progress(&subject) >= target {
                break;
            }
            assert!(Instant::now() < deadline, "no progress towards record {target}");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.next() % 40));
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        let _ = child.wait();
    }
    assert!(kills >= 15, "only {kills} of 20 kills landed during the migration (seed {seed})");
    eprintln!("{kills} kills landed mid-migration (seed {seed})");

    // Resume until it completes.
    let mut attempts = 0;
    while !completed(&subject) {
        let status = start(&subject).wait().expect("resume");
        if status.success() {
            break;
        }
        attempts += 1;
        assert!(attempts < 5, "the resumed run does not complete: {status:?} (seed {seed})");
    }
    let resumed = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["runs"])
        .current_dir(&subject)
        .env("CUTOVER_LOG", subject.join("cutover.log"))
        .output()
        .expect("runs");
    let runs = String::from_utf8_lossy(&resumed.stdout);
    assert!(runs.contains("Run 1 full — completed"), "one run, resumed to completion (seed {seed}):\n{runs}");

    assert_eq!(run_counts(&subject), run_counts(&reference), "outcome counts (seed {seed})");
    let (a, b) = (rows(&subject), rows(&reference));
    assert_eq!(a.len(), b.len(), "row counts (seed {seed})");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "destination rows differ (seed {seed})");
    }
    // And it reconciles like the uninterrupted run: only the 242 held records are open.
    let out = cutover(&["reconcile", "--format", "json"], &subject).stdout(Stdio::piped()).output().expect("reconcile");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    let keys: Vec<&str> =
        report["discrepancies"].as_array().expect("list").iter().filter_map(|d| d["key"].as_str()).collect();
    assert_eq!(
        keys,
        ["contacts/queued/owner_not_provisioned", "deals/queued/no_translation", "notes/queued/parent_not_written"],
        "seed {seed}"
    );
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill").args([sig, &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
}

/// Without a terminal (as here, and under cron, nohup or CI) nobody can press Enter to end a
/// pause: one Ctrl-C stops the run at the next checkpoint, as SIGTERM does, and a resume
/// finishes it with the counts of an uninterrupted run.
#[test]
fn ctrl_c_without_a_terminal_stops_at_a_checkpoint_and_resume_finishes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let project = demo(dir.path(), "demo");
    let toml = project.join("cutover.toml");
    let text = std::fs::read_to_string(&toml).expect("toml").replace("batch_size = 200", "batch_size = 20");
    std::fs::write(&toml, text).expect("toml");
    let child = cutover(&["run"], &project)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress(&project) < 100 {
        assert!(Instant::now() < deadline, "the run does not start");
        std::thread::sleep(Duration::from_millis(2));
    }
    signal(&child, "-INT");
    let out = child.wait_with_output().expect("exits");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(4), "{stdout}\n{stderr}");
    assert!(stderr.contains("Stopping at the next checkpoint"), "{stderr}");
    assert!(stdout.contains("Stopped at a checkpoint: `cutover run --resume` continues"), "{stdout}");
    let paused = progress(&project);
    assert!(paused < 12_400, "stopped before the end");

    let out = cutover(&["run", "--resume"], &project).stdout(Stdio::piped()).output().expect("resume");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("Run 1 (full) completed"), "{stdout}");
    assert!(stdout.contains(&format!("; {paused} more were done before the interruption")), "{stdout}");
    for line in [
        "contacts         4200      4200     3366      800         0       0      34        0       0",
        "notes            6000      6000     5932        0         0       0      68        0       0",
    ] {
        assert!(stdout.contains(line), "missing '{line}':\n{stdout}");
    }
    // Nothing left to resume.
    let out = cutover(&["run", "--resume"], &project).stderr(Stdio::piped()).output().expect("again");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run 1 is completed: nothing to resume"));
}
