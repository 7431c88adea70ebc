//! The real binary in a pseudo-terminal at 80×24: open the demo, run it, go to the queue, filter
//! "no stage mapping", set one deal's stage, reprocess it, see it written and the count drop by
//! one; quit, and check the terminal was given back (alternate screen left, cursor shown).

use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Screen {
    parser: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    writer: Box<dyn Write + Send>,
}

impl Screen {
    fn text(&self) -> String {
        self.parser.lock().expect("parser").screen().contents()
    }
    fn wait_for(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.text();
            if text.contains(what) {
                return text;
            }
            assert!(Instant::now() < deadline, "waited 60 s for {what:?}; the screen shows:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    fn keys(&mut self, keys: &str) {
        for b in keys.bytes() {
            self.writer.write_all(&[b]).expect("write key");
            self.writer.flush().expect("flush");
            // One key per frame, as a person types: the console draws between them.
            std::thread::sleep(Duration::from_millis(60));
        }
    }
}

#[test]
fn fix_one_deal_in_the_console_and_see_it_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = dir.path().join("demo");
    cutover::demo::setup(&demo).expect("demo");

    let pty = native_pty_system();
    let pair = pty.openpty(PtySize { rows: 24, cols: 80, pixel_width: 0, pixel_height: 0 }).expect("pty");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.arg("open");
    cmd.arg(&demo);
    cmd.env("TERM", "xterm-256color");
    cmd.env("NO_COLOR", "1");
    cmd.env("CUTOVER_LOG", dir.path().join("cutover.log"));
    cmd.env("CUTOVER_KEYMAP", dir.path().join("no-keymap.toml"));
    let mut child = pair.slave.spawn_command(cmd).expect("spawn the console");
    drop(pair.slave);

    let size = |n: u16| std::num::NonZero::new(n).expect("non-zero");
    let parser = Arc::new(Mutex::new(vt100::Parser::new(size(24), size(80), 0)));
    let raw = Arc::new(Mutex::new(Vec::new()));
    let mut reader = pair.master.try_clone_reader().expect("reader");
    let (p, r) = (parser.clone(), raw.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            p.lock().expect("parser").process(&buf[..n]);
            r.lock().expect("raw").extend_from_slice(&buf[..n]);
        }
    });
    let mut screen = Screen { parser, raw, writer: pair.master.take_writer().expect("writer") };

    screen.wait_for("1 Overview");
    screen.keys("R");
    let overview = screen.wait_for("full run: done");
    assert!(overview.contains("deals     █████ 100% 1660"), "{overview}");
    screen.keys("3");
    screen.wait_for("no_translation 140");
    screen.keys("f");
    screen.wait_for("reason: no_translation (f)");
    screen.keys("\r");
    screen.keys("jjjj");
    screen.keys("e");
    screen.wait_for("Set dealstage on record #35");
    screen.keys("qualifiedtobuy\r");
    screen.wait_for("dealstage = qualifiedtobuy on record #35");
    screen.keys("r");
    let after = screen.wait_for("reprocessed 1: 1 written");
    let after = if after.contains("no_translation 139") { after } else { screen.wait_for("no_translation 139") };
    assert!(after.contains("1 of 139"), "{after}");
    // The reconciliation pane reconciles for real on opening: 139 deals, 34 contacts and 68
    // notes are still held.
    screen.keys("5");
    let pane = screen.wait_for("NOT BALANCED: 3 discrepancies");
    assert!(pane.contains("deals/queued/no_translation: 139 records"), "{pane}");
    screen.keys("w");
    screen.wait_for("report written");
    assert!(demo.join("cutover.reconciliation.md").is_file());
    screen.keys("q");

    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "the console did not quit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    std::thread::sleep(Duration::from_millis(200));
    let raw = String::from_utf8_lossy(&screen.raw.lock().expect("raw")).into_owned();
    let left = raw.rfind("\u{1b}[?1049l").expect("the alternate screen was left");
    let entered = raw.rfind("\u{1b}[?1049h").expect("the alternate screen was used");
    assert!(left > entered, "left after the last entry");
    assert!(raw[left..].contains("\u{1b}[?25h") || raw[..left].rfind("\u{1b}[?25h") > raw[..left].rfind("\u{1b}[?25l"));

    // The store agrees with what the screen said.
    let store = cutover::project::Project::load(Some(&demo)).expect("project").store().expect("store");
    let held: u64 = store
        .queue_summary()
        .expect("summary")
        .iter()
        .filter(|(o, r, _)| o == "deals" && r == "no_translation")
        .map(|(_, _, n)| n)
        .sum();
    assert_eq!(held, 139);
    assert!(store.dest_id("deals", "20005").expect("id").is_some(), "deal 20005 (#35) written");
}
