//! Benchmark (ignored by `cargo test`; it prints figures, it asserts none): keypress-to-frame
//! latency of the real console in a pseudo-terminal, on a project whose store holds a million
//! audit rows and 480,000 held records. Run it with
//!
//!     cargo test --release --test console_latency -- --ignored --nocapture
//!
//! Each key's latency is the time from writing it to the end of the frame that answers it (the
//! console wraps every frame in a synchronized update, so the frame's end is visible in the
//! output); for keys that change the filter, also the time until the frame that shows the new
//! records ("loading…" gone).

use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FRAME_END: &[u8] = b"\x1b[?2026l";

/// Output bytes, and when each read ended (its end offset).
type Output = Arc<Mutex<(Vec<u8>, Vec<(Instant, usize)>)>>;

struct Term {
    out: Output,
    parser: Arc<Mutex<vt100::Parser>>,
    writer: Box<dyn Write + Send>,
}

impl Term {
    fn len(&self) -> usize {
        self.out.lock().expect("out").0.len()
    }
    /// When the first frame ending after byte `from` arrived, if it has.
    fn frame_end_after(&self, from: usize) -> Option<(Instant, usize)> {
        let out = self.out.lock().expect("out");
        let at = out.0[from..].windows(FRAME_END.len()).position(|w| w == FRAME_END)? + from + FRAME_END.len();
        out.1.iter().find(|(_, end)| *end >= at).map(|(t, _)| (*t, at))
    }
    fn screen(&self) -> String {
        self.parser.lock().expect("parser").screen().contents()
    }
    fn wait_for(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.screen().contains(what) {
            assert!(Instant::now() < deadline, "waited for {what:?}:\n{}", self.screen());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    /// Writes a key; returns ms to the frame answering it, and to the first frame after it whose
    /// screen has no "loading…" (when `data`).
    fn press(&mut self, key: &str, data: bool) -> (f64, Option<f64>) {
        std::thread::sleep(Duration::from_millis(80)); // settle: nothing in flight
        let from = self.len();
        let t0 = Instant::now();
        self.writer.write_all(key.as_bytes()).expect("key");
        self.writer.flush().expect("flush");
        let deadline = t0 + Duration::from_secs(30);
        let (first, mut at) = loop {
            if let Some(found) = self.frame_end_after(from) {
                break found;
            }
            assert!(Instant::now() < deadline, "no frame for {key:?}");
            std::thread::sleep(Duration::from_micros(200));
        };
        let frame = first.duration_since(t0).as_secs_f64() * 1e3;
        if !data {
            return (frame, None);
        }
        loop {
            std::thread::sleep(Duration::from_millis(1));
            if !self.screen().contains("loading…") {
                let end = self.frame_end_after(at.saturating_sub(1)).map(|(t, _)| t).unwrap_or(first);
                return (frame, Some(end.max(first).duration_since(t0).as_secs_f64() * 1e3));
            }
            if let Some((_, next)) = self.frame_end_after(at) {
                at = next;
            }
            assert!(Instant::now() < deadline, "data never came for {key:?}");
        }
    }
}

fn fill(store: &std::path::Path, audit: u64, held: u64) {
    let db = rusqlite::Connection::open(store).expect("store");
    db.execute_batch(&format!(
        "BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {audit})
         INSERT INTO audit (run_id, at, user, object, source_id, outcome, dest_id, detail, occurrence)
         SELECT 1, '2026-12-07T00:00:00.000Z', 'op', 'contacts', 'a' || i,
                CASE WHEN i % 9 = 0 THEN 'queued' ELSE 'created' END, i, NULL, 1 FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {held})
         INSERT INTO queue (object, source_id, origin, run_id, status, reason, source, mapped, issues, corrections,
                            created_at, updated_at, occurrence)
         SELECT 'contacts', 'h' || i, 'persons.csv:' || i, 1, 'open',
                CASE WHEN i % 10 < 8 THEN 'invalid_phone' ELSE 'owner_not_provisioned' END,
                json_object('id', i, 'phone', CASE i % 7 WHEN 0 THEN 'n/a' WHEN 1 THEN '000-000-0000' ELSE 'x' || (i % 5000) END),
                json_object('firstname', 'P' || i, 'phone', NULL),
                json_array(json_object('field', 'phone', 'rule', 'invalid_phone',
                    'value', CASE i % 7 WHEN 0 THEN 'n/a' WHEN 1 THEN '000-000-0000' ELSE 'x' || (i % 5000) END,
                    'message', 'not a phone number', 'suggestion', NULL)),
                '{{}}', '2026-12-07T00:00:00Z', '2026-12-07T00:00:00Z', 1 FROM n;
         COMMIT;"
    ))
    .expect("fill the store");
}

fn stats(name: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "  {name:<34} median {:>6.1} ms   p95 {:>6.1} ms   max {:>6.1} ms   (n={})",
        at(0.5),
        at(0.95),
        at(1.0),
        v.len()
    );
}

#[test]
#[ignore = "a benchmark: cargo test --release --test console_latency -- --ignored --nocapture"]
fn keypress_to_frame_on_a_million_audit_rows_and_480k_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = dir.path().join("demo");
    cutover::demo::setup(&demo).expect("demo");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["run", "-p"])
        .arg(&demo)
        .env("CUTOVER_LOG", dir.path().join("log"))
        .output()
        .expect("run");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let started = Instant::now();
    fill(&demo.join("cutover.state.db"), 1_000_000, 480_000);
    println!("store filled (1,000,000 audit rows, 480,000 held) in {:.1} s", started.elapsed().as_secs_f64());

    let pty = native_pty_system();
    let pair = pty.openpty(PtySize { rows: 24, cols: 80, pixel_width: 0, pixel_height: 0 }).expect("pty");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.args(["open"]);
    cmd.arg(&demo);
    cmd.env("TERM", "xterm-256color");
    cmd.env("CUTOVER_LOG", dir.path().join("log"));
    cmd.env("CUTOVER_KEYMAP", dir.path().join("no-keymap.toml"));
    let mut child = pair.slave.spawn_command(cmd).expect("console");
    drop(pair.slave);
    let size = |n: u16| std::num::NonZero::new(n).expect("non-zero");
    let parser = Arc::new(Mutex::new(vt100::Parser::new(size(24), size(80), 0)));
    let out: Output = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let mut reader = pair.master.try_clone_reader().expect("reader");
    let (p, o) = (parser.clone(), out.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            let now = Instant::now();
            p.lock().expect("parser").process(&buf[..n]);
            let mut o = o.lock().expect("out");
            o.0.extend_from_slice(&buf[..n]);
            let end = o.0.len();
            o.1.push((now, end));
        }
    });
    let mut term = Term { out, parser, writer: pair.master.take_writer().expect("writer") };
    term.wait_for("1 Overview");
    println!("keypress → frame, 80×24, TERM=xterm-256color:");

    let mut times: Vec<(&str, Vec<f64>, Vec<f64>)> = Vec::new();
    let mut record = |name: &'static str, r: (f64, Option<f64>)| match times.iter_mut().find(|(n, _, _)| *n == name) {
        Some((_, f, d)) => {
            f.push(r.0);
            d.extend(r.1);
        }
        None => times.push((name, vec![r.0], r.1.into_iter().collect())),
    };
    record("pane switch to queue (3)", term.press("3", false));
    term.wait_for("groups");
    for _ in 0..30 {
        record("queue groups: down (j)", term.press("j", false));
    }
    record("queue: open a group (enter)", term.press("\r", true));
    for _ in 0..60 {
        record("queue records: down (j)", term.press("j", false));
    }
    for _ in 0..15 {
        record("queue records: page down (pgdn)", term.press("\x1b[6~", true));
    }
    for _ in 0..6 {
        record("queue: next reason (f)", term.press("f", true));
        record("queue: next object (o)", term.press("o", true));
    }
    for _ in 0..10 {
        record("queue: last row (G)", term.press("G", true));
        record("queue: first row (g)", term.press("g", true));
    }
    record("pane switch to audit (4)", term.press("4", false));
    for _ in 0..60 {
        record("audit: down (j)", term.press("j", false));
    }
    for _ in 0..10 {
        record("audit: next outcome (f)", term.press("f", true));
    }
    for (name, frames, data) in times {
        stats(name, frames);
        if !data.is_empty() {
            stats(&format!("{name}, records shown"), data);
        }
    }
    let _ = term.writer.write_all(b"q");
    let _ = term.writer.flush();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
}
