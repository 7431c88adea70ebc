//! The real binary, as a script or an operator at a shell uses it: the demo, the queue commands,
//! previews, and exit codes that tell success, halted and could-not-start apart.

use std::path::Path;
use std::process::{Command, Output};

fn cutover(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .current_dir(cwd)
        .env("CUTOVER_LOG", cwd.join("cutover.log"))
        .output()
        .expect("the binary runs")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn the_demo_and_the_queue_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = cutover(&["demo"], dir.path());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for line in [
        "companies         400       400      400        0         0       0       0        0       0",
        "contacts         4200      4200     3366      800         0       0      34        0       0",
        "deals            1800      1800     1660        0         0       0     140        0       0",
        "notes            6000      6000     5932        0         0       0      68        0       0",
        "Every record accounted for: yes",
        "deals        no_translation              140",
    ] {
        assert!(stdout.contains(line), "missing '{line}' in:\n{stdout}");
    }
    assert!(!stderr.contains("INFO") && !stderr.contains("WARN"), "logs go to the file, not the terminal:\n{stderr}");
    assert!(std::fs::read_to_string(dir.path().join("cutover.log")).expect("log file").contains("run finished"));

    let demo = dir.path().join("cutover-demo");
    let demo_s = demo.to_str().expect("utf-8 path");
    let out = cutover(&["queue", "list", "-p", demo_s, "--reason", "no_translation", "--limit", "1"], dir.path());
    let (stdout, _) = text(&out);
    let id = stdout
        .lines()
        .find_map(|l| l.split_whitespace().next().and_then(|w| w.parse::<i64>().ok()).filter(|_| l.contains("deals")))
        .expect("a deal in the list");
    let id = id.to_string();
    let out = cutover(&["queue", "fix", &id, "dealstage=closedwon", "-p", demo_s], dir.path());
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let out = cutover(&["queue", "fix", &id, "dealstge=closedwon", "-p", demo_s], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("deals has no field 'dealstge'"), "{:?}", text(&out));
    let out = cutover(&["queue", "fix", "dealstage=closedwon", "-p", demo_s], dir.path());
    assert_eq!(out.status.code(), Some(1), "a fix without ids or filter is refused");
    assert!(text(&out).1.contains("name the records"), "{:?}", text(&out));
    let out = cutover(&["queue", "reprocess", &id, "-p", demo_s], dir.path());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("deals               -         1        1"), "{stdout}");
    assert!(stdout.contains("deals        no_translation              139"), "{stdout}");
    let out = cutover(&["queue", "show", &id, "-p", demo_s], dir.path());
    assert!(text(&out).0.contains("(resolved)"), "{:?}", text(&out));

    // A preview of the whole project reports and writes nothing.
    let before = std::fs::read(demo.join("destination.db")).expect("dest");
    let out = cutover(&["run", demo_s, "--dry-run"], dir.path());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("Preview (dry run) completed"), "{stdout}");
    assert!(stdout.contains("What a run would do (nothing was written)"), "{stdout}");
    assert!(stdout.contains("A run would hold 241 records in the conflict queue"), "{stdout}");
    assert!(std::fs::read(demo.join("destination.db")).expect("dest") == before, "a preview changed the destination");

    // Bulk: every deal held for its stage, in one command.
    let out =
        cutover(&["queue", "fix", "--reason", "no_translation", "dealstage=closedlost", "-p", demo_s], dir.path());
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(text(&out).0.contains("139 queue items corrected"), "{:?}", text(&out));
    let out = cutover(&["queue", "reprocess", "--reason", "no_translation", "-p", demo_s], dir.path());
    assert!(text(&out).0.contains("deals               -       139      139"), "{:?}", text(&out));

    let out = cutover(&["runs", demo_s], dir.path());
    assert!(text(&out).0.contains("Run 3 reprocess — completed"), "{:?}", text(&out));
}

#[test]
fn exit_codes_tell_outcomes_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Could not start: a project file with problems.
    std::fs::write(dir.path().join("cutover.toml"), "[project]\nname = 1\n").expect("write");
    let out = cutover(&["run"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("cutover.toml"), "{:?}", text(&out));
    // Could not start: no project here.
    let empty = tempfile::tempdir().expect("tempdir");
    let out = cutover(&["run"], empty.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("no cutover.toml in ."), "{:?}", text(&out));
    // Halted: most records of a batch cannot be written.
    let halt = dir.path().join("halt");
    std::fs::create_dir_all(halt.join("source")).expect("mkdir");
    let mut csv = String::from("id,name\n");
    for i in 0..50 {
        csv.push_str(&format!("{i},{}\n", if i < 10 { "ok" } else { "" }));
    }
    std::fs::write(halt.join("source/people.csv"), csv).expect("csv");
    rusqlite::Connection::open(halt.join("dest.db"))
        .expect("db")
        .execute_batch("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL);")
        .expect("schema");
    std::fs::write(
        halt.join("cutover.toml"),
        "[project]\nname = \"h\"\nbatch_size = 25\nhalt_error_rate = 0.3\n[source]\nkind = \"csv\"\npath = \"source\"\n\
         [destination]\nkind = \"sqlite\"\npath = \"dest.db\"\n[objects.people.fields]\nname = { from = \"name\" }\n",
    )
    .expect("toml");
    let out = cutover(&["run", halt.to_str().expect("path")], dir.path());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("HALTED: 15 of 25 records in batch 1 of people"), "{stdout}");
    assert!(stdout.contains("required (15, e.g. records 10, 11, 12, …)"), "{stdout}");
    assert!(stdout.contains("`cutover run --resume` continues after the last committed batch"), "{stdout}");
}

#[test]
fn help_explains_each_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (stdout, _) = text(&cutover(&["--help"], dir.path()));
    for cmd in ["demo", "run", "check", "runs", "queue", "bench"] {
        assert!(stdout.contains(cmd), "{cmd} missing from --help:\n{stdout}");
    }
    let (stdout, _) = text(&cutover(&["queue", "fix", "--help"], dir.path()));
    assert!(stdout.contains("source.FIELD=VALUE"), "{stdout}");
}

#[test]
fn reconcile_signoff_and_exports_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(cutover(&["demo"], dir.path()).status.code(), Some(0));
    let demo = dir.path().join("cutover-demo");

    // Not balanced while 242 records are held: exit 3, the verdict first, every key named.
    let out = cutover(&["reconcile"], &demo);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("**Verdict: NOT BALANCED** — 3 discrepancies"), "{stdout}");
    assert!(stdout.contains("| `deals/queued/no_translation` | queue | 140 |"), "{stdout}");
    assert!(stdout.contains("| amount | 210496864.45 | 210496864.45 | 0/0 | yes |"), "{stdout}");

    // The JSON report goes to a file, whole.
    let out = cutover(&["reconcile", "--format", "json", "-o", "report.json"], &demo);
    assert_eq!(out.status.code(), Some(3));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(demo.join("report.json")).expect("report")).expect("json");
    assert_eq!(json["discrepancies"].as_array().map(Vec::len), Some(3));
    assert_eq!(json["objects"][1]["counts"]["queued"], 34);

    // Sign-off: refused with what is open; recorded once each is accepted with a reason.
    let out = cutover(&["signoff", "--notes", "dry run of the cutover"], &demo);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr.contains("cannot sign off: 3 discrepancies"), "{stderr}");
    let out = cutover(
        &[
            "signoff",
            "--notes",
            "rehearsal sign-off",
            "--accept",
            "contacts/queued/owner_not_provisioned=Dana left; her contacts go to the pool next week",
            "--accept",
            "deals/queued/no_translation=partner deals move with the partner portal",
            "--accept",
            "notes/queued/parent_not_written=follow their contacts",
        ],
        &demo,
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("balanced with accepted exceptions"), "{stdout}");
    assert!(stdout.contains("accepted deals/queued/no_translation (140 records)"), "{stdout}");
    let (stdout, _) = text(&cutover(&["reconcile"], &demo));
    assert!(stdout.contains("**Signed off** by"), "{stdout}");

    // Exports: every held record, as CSV and as JSON Lines with nested values.
    let out = cutover(&["export", "queue", "--format", "csv", "-o", "queue.csv"], &demo);
    assert_eq!(out.status.code(), Some(0));
    let mut csv = csv::Reader::from_path(demo.join("queue.csv")).expect("csv");
    assert_eq!(csv.records().count(), 242);
    let out = cutover(&["export", "audit", "--format", "jsonl", "--object", "deals"], &demo);
    let (stdout, _) = text(&out);
    assert_eq!(stdout.lines().count(), 1800);
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().expect("a line")).expect("jsonl");
    assert_eq!(first["object"], "deals");
}

#[test]
fn rollback_previews_then_undoes_a_run_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(cutover(&["demo"], dir.path()).status.code(), Some(0));
    let demo = dir.path().join("cutover-demo");
    let out = cutover(&["rollback", "1", "--dry-run"], &demo);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("Rollback of run 1 — preview: nothing was changed"), "{stdout}");
    assert!(stdout.contains("contacts         3366       800"), "{stdout}");
    let out = cutover(&["rollback", "1"], &demo);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("(itself run 2, audited record by record)"), "{stdout}");
    let (runs, _) = text(&cutover(&["runs"], &demo));
    assert!(runs.contains("Run 2 rollback — completed"), "{runs}");
    assert!(runs.contains("rolled back run 1: 11358 deleted, 800 restored, 0 left for a decision"), "{runs}");
    let out = cutover(&["rollback", "2"], &demo);
    assert_eq!(out.status.code(), Some(2), "a rollback is not rolled back");
    assert!(text(&out).1.contains("run 2 is a rollback run"));
}

#[test]
fn a_test_sync_on_a_seeded_sample_lists_every_issue_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(cutover(&["demo", "--setup-only"], dir.path()).status.code(), Some(0));
    let demo = dir.path().join("cutover-demo");
    let out = cutover(&["run", "--dry-run", "--sample", "20"], &demo);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    // 20 of each, plus the parents they point at (no child is an orphan of the sample).
    assert!(stdout.contains("deals            1800        20       19        0         0       0       1"), "{stdout}");
    assert!(stdout.contains("notes            6000        20       20        0         0       0       0"), "{stdout}");
    assert!(stdout.contains("Each record the sample would hold, and why:"), "{stdout}");
    assert!(
        stdout.contains("dealstage: no entry for 'Partner Referral' in translation table 'deal_stage'"),
        "{stdout}"
    );
    assert!(!demo.join("cutover.state.db").exists(), "a test sync keeps no state");
    let dest = rusqlite::Connection::open(demo.join("destination.db")).expect("dest");
    let deals: i64 = dest.query_row("SELECT COUNT(*) FROM deals", [], |r| r.get(0)).expect("count");
    assert_eq!(deals, 0, "nothing written");
    // The same seed picks the same records; the values are there on request.
    let again = text(&cutover(&["run", "--dry-run", "--sample", "20"], &demo)).0;
    let strip = |s: &str| s.lines().filter(|l| !l.contains("records in")).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(&again), strip(&stdout));
    let values = text(&cutover(&["run", "--dry-run", "--sample", "2", "--seed", "7", "--values"], &demo)).0;
    assert!(values.contains("What each record of the sample would be written with:"), "{values}");
    assert!(values.lines().any(|l| l.starts_with("  deals ") && l.contains("dealstage=")), "{values}");
    let refused = cutover(&["run", "--sample", "20"], &demo);
    assert_eq!(refused.status.code(), Some(2), "a sample is a test sync: --dry-run is required");
    // After a real run, a preview speaks of itself: not the run's created records, not its queue.
    assert!(cutover(&["run"], &demo).status.success());
    let after = text(&cutover(&["run", "--dry-run", "--sample", "2", "--seed", "7", "--values"], &demo)).0;
    assert!(after.contains("A run would hold nothing in the conflict queue."), "{after}");
    assert!(after.contains("nothing: every record of the sample is unchanged, held or skipped"), "{after}");
    assert!(!after.contains("→ created"), "{after}");
}

/// Every command names its project the same two ways: as its argument, or with `-p` / `--project`
/// as `queue` takes it — run from anywhere.
#[test]
fn every_command_takes_the_project_as_an_argument_or_with_dash_p() {
    let dir = tempfile::tempdir().expect("tempdir");
    cutover::demo::setup(&dir.path().join("demo")).expect("demo");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("demo");
    let p = p.to_str().expect("utf-8 path");
    assert!(cutover(&["run", "-p", p], elsewhere.path()).status.success());
    for args in [
        vec!["check", "-p", p],
        vec!["check", "--project", p],
        vec!["runs", "-p", p],
        vec!["run", "--dry-run", "-p", p],
        vec!["queue", "list", "-p", p],
        vec!["export", "audit", "-p", p],
        vec!["rollback", "1", "--dry-run", "-p", p],
    ] {
        let out = cutover(&args, elsewhere.path());
        assert_eq!(out.status.code(), Some(0), "{args:?}: {:?}", text(&out));
    }
    // Reconcile says NOT BALANCED (3) while the demo's queue is held: it found the project.
    assert_eq!(cutover(&["reconcile", "-p", p], elsewhere.path()).status.code(), Some(3));
    let both = cutover(&["check", p, "-p", p], elsewhere.path());
    assert_eq!(both.status.code(), Some(2), "one way or the other, not both");
}

/// The bytes a command writes to a pseudo-terminal, until it exits.
fn in_a_terminal(args: &[&str], cwd: &Path) -> Vec<u8> {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    use std::io::Read;
    let pair =
        native_pty_system().openpty(PtySize { rows: 50, cols: 200, pixel_width: 0, pixel_height: 0 }).expect("pty");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.args(args);
    cmd.cwd(cwd);
    cmd.env("CUTOVER_LOG", cwd.join("cutover.log"));
    let mut child = pair.slave.spawn_command(cmd).expect("spawn");
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().expect("reader");
    let reading = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    });
    child.wait().expect("exits");
    drop(pair.master);
    reading.join().expect("read")
}

/// Record values carrying terminal codes — OSC 0 (window title), OSC 52 (clipboard), CSI 2J
/// (clear screen), a C1 CSI — never reach a terminal raw, whatever the command; a pipe gets the
/// exact bytes.
#[test]
fn hostile_values_reach_a_terminal_spelt_out_and_a_pipe_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("source")).expect("mkdir");
    let toml = "[project]\nname = \"hostile\"\n[source]\nkind = \"csv\"\npath = \"source\"\n\
                [destination]\nkind = \"sqlite\"\npath = \"destination.db\"\n\
                [objects.people.fields]\nname = { from = \"name\" }\nnote = { from = \"note\" }\n";
    std::fs::write(dir.path().join("cutover.toml"), toml).expect("toml");
    let csv = "id,name,note\n\
               1\u{1b}[2J,Held for its id,x\n\
               2,Eve\u{1b}]0;PWNED\u{7} Mallory,\"clip\u{1b}]52;c;ZXZpbA==\u{7}\"\n\
               3,Ann,\u{9b}2J\n";
    std::fs::write(dir.path().join("source/people.csv"), csv).expect("csv");
    rusqlite::Connection::open(dir.path().join("destination.db"))
        .expect("dest")
        .execute_batch("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, note TEXT);")
        .expect("table");
    let run = cutover(&["run"], dir.path());
    assert!(run.status.code().is_some_and(|c| c == 0 || c == 3), "{:?}", text(&run));
    // ESC followed by `]` (OSC) or `[` (CSI), or the one-byte C1 CSI.
    let raw = |bytes: &[u8]| -> bool {
        bytes.windows(2).any(|w| w == [0x1b, b']'] || w == [0x1b, b'['] || w == [0xc2, 0x9b])
    };
    let commands: [&[&str]; 7] = [
        &["queue", "list"],
        &["queue", "show", "1"],
        &["queue", "show", "1", "--full"],
        &["export", "audit", "--format", "csv"],
        &["export", "queue", "--format", "csv"],
        &["export", "audit", "--format", "jsonl"],
        &["runs"],
    ];
    for args in commands {
        let shown = in_a_terminal(args, dir.path());
        assert!(!raw(&shown), "{args:?} wrote terminal codes raw:\n{}", String::from_utf8_lossy(&shown));
    }
    let piped = cutover(&["export", "audit", "--format", "csv"], dir.path());
    assert!(piped.stdout.windows(2).any(|w| w == [0x1b, b'[']), "a pipe gets the exact bytes");
}
