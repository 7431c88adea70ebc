//! When the machine, not the data, is in the way (issue #14): a destination another program
//! holds locked, a read-only disk. Each is told as what it is — which file, what happened, how
//! long Cutover waited — never as a project-file problem, never as a thousand failed records,
//! and nothing of a batch is half-written: after the cause is gone, a resume ends as a clean run.

mod common;
use common::{TestProject, csv_to_sqlite, cutover, text};
use std::time::{Duration, Instant};

const PEOPLE: &str = "[objects.people.fields]\nname = { from = \"name\" }\n";

fn project(rows: usize) -> TestProject {
    let mut csv = "id,name\n".to_string();
    for i in 0..rows {
        csv.push_str(&format!("{i},Person {i}\n"));
    }
    let toml = csv_to_sqlite("machine", PEOPLE).replace("[source]", "batch_size = 50\n[source]");
    TestProject::new(&toml, &[("people", &csv)], "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);")
}

/// Holds a write lock on the project's destination until the returned sender is dropped.
fn hold_lock(p: &TestProject, exclusive: bool) -> std::sync::mpsc::Sender<()> {
    let conn = p.dest();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let begin = if exclusive { "BEGIN EXCLUSIVE" } else { "BEGIN IMMEDIATE" };
        conn.execute_batch(begin).expect("lock");
        conn.execute_batch("CREATE TABLE holding (x)").expect("write");
        ready_tx.send(()).expect("ready");
        let _ = rx.recv();
        conn.execute_batch("ROLLBACK").expect("release");
    });
    ready.recv().expect("locked");
    tx
}

#[test]
fn a_locked_destination_is_a_lock_named_with_its_wait_not_a_file_problem() {
    let p = project(10);
    let release = hold_lock(&p, true);
    let started = Instant::now();
    let out = cutover(p.path(), &["check"], &[]);
    let waited = started.elapsed();
    drop(release);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("the destination, SQLite database ./destination.db is locked by another writer: waited 10 s"),
        "{said}"
    );
    assert!(!said.contains("problem in the project file"), "a lock is no mistake of the file: {said}");
    assert!(waited < Duration::from_secs(25), "one wait, not one per object: {waited:?}");
    assert!(!p.path().join("cutover.state.db").exists(), "check writes nothing");
}

#[test]
fn a_lock_taken_while_a_run_writes_stops_the_run_and_a_resume_ends_as_a_clean_run() {
    let p = project(200);
    // A reserved lock: the run reads the schema, then waits at its first write.
    let release = hold_lock(&p, false);
    let out = cutover(p.path(), &["run"], &[]);
    drop(release);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("SQLite database ./destination.db is locked by another writer: waited 10 s"), "{said}");
    assert!(!said.contains("failed  "), "{said}");
    assert_eq!(p.count("SELECT COUNT(*) FROM people"), 0, "nothing of the batch is written");
    let out = cutover(p.path(), &["run", "--resume"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(p.count("SELECT COUNT(*) FROM people"), 200);
    assert_eq!(p.count("SELECT COUNT(DISTINCT name) FROM people"), 200);
}

/// Needs a read-only mount (root, as in CI); says so and stops where it cannot make one.
#[test]
fn a_read_only_destination_is_refused_before_anything_moves() {
    let p = project(10);
    let ro = tempfile::tempdir().expect("dir");
    let made = std::process::Command::new("mount")
        .args(["--bind", &p.path().display().to_string(), &ro.path().display().to_string()])
        .status()
        .is_ok_and(|s| s.success())
        && std::process::Command::new("mount")
            .args(["-o", "remount,bind,ro", &ro.path().display().to_string()])
            .status()
            .is_ok_and(|s| s.success());
    if !made {
        eprintln!("skipped: this machine cannot make a read-only mount here (needs root)");
        return;
    }
    let file = ro.path().join("destination.db").display().to_string();
    let toml = std::fs::read_to_string(p.file())
        .expect("toml")
        .replace("path = \"destination.db\"", &format!("path = \"{file}\""));
    let work = tempfile::tempdir().expect("work");
    std::fs::write(
        work.path().join("cutover.toml"),
        toml.replace("path = \"source\"", &format!("path = \"{}\"", p.path().join("source").display())),
    )
    .expect("toml");
    let out = cutover(work.path(), &["run"], &[]);
    let _ = std::process::Command::new("umount").arg(ro.path()).status();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains(&format!("SQLite database {file} is read-only")), "{said}");
}
