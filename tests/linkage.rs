//! Record linkage end to end through the binary (issue #15): `match` as a table links damaged
//! copies to the people they are, creates strangers (a shared phone or a namesake is not enough),
//! holds what is doubtful as `possible_match` with its ranked candidates and their evidence,
//! keeps one destination record to one source record, and gathers the source's own duplicates
//! into one new record. The destination is read with the test's own SQL, not the engine's.

mod common;
use common::{TestProject, csv_to_sqlite, cutover, text};
use proptest::prelude::*;

const MATCH: &str = r#"
[objects.contacts]
source = "people"
[objects.contacts.match]
link_above = 0.99
review_above = 0.8
[objects.contacts.match.fields]
firstname = "name"
lastname = "name"
email = "email"
phone = "phone"
[objects.contacts.fields]
firstname = { from = "first" }
lastname = { from = "last" }
email = { from = "email", transform = "email" }
phone = { from = "phone" }
"#;

const TABLE: &str =
    "CREATE TABLE contacts (id INTEGER PRIMARY KEY, firstname TEXT, lastname TEXT, email TEXT, phone TEXT);";

const FIRST: [&str; 20] = [
    "amara", "bruno", "chloe", "dmitri", "elena", "farid", "greta", "hiro", "ines", "jonas", "kiri", "lars", "mina",
    "nadia", "oscar", "priya", "quentin", "rosa", "soren", "talia",
];
const LAST: [&str; 15] = [
    "abbott",
    "becker",
    "castillo",
    "delacroix",
    "eriksen",
    "fontaine",
    "gallagher",
    "haddad",
    "iversen",
    "jankowski",
    "kaur",
    "lindqvist",
    "moreau",
    "nakamura",
    "ortega",
];

/// Person `n` of the destination: distinct names, emails and phones.
fn person(n: usize) -> (String, String, String, String) {
    let (f, l) = (FIRST[n % FIRST.len()], LAST[(n / FIRST.len()) % LAST.len()]);
    (f.to_string(), l.to_string(), format!("{f}.{l}{n}@corp.test"), format!("+1617555{:04}", 1000 + n))
}

fn destination(n: usize, extra: &str) -> String {
    let mut sql = format!("{TABLE}\n");
    for i in 0..n {
        let (f, l, e, p) = person(i);
        sql.push_str(&format!("INSERT INTO contacts VALUES ({}, '{f}', '{l}', '{e}', '{p}');\n", 100 + i));
    }
    sql.push_str(extra);
    sql
}

fn state(p: &TestProject) -> rusqlite::Connection {
    rusqlite::Connection::open(p.path().join("cutover.state.db")).expect("state store")
}

/// (outcome, destination id, matched_by, confidence, detail) of a source record's latest audit row.
fn audit(p: &TestProject, sid: &str) -> (String, Option<String>, Option<String>, Option<f64>, String) {
    state(p)
        .query_row(
            "SELECT outcome, dest_id, matched_by, confidence, COALESCE(detail, '') FROM audit
             WHERE object = 'contacts' AND source_id = ?1 ORDER BY id DESC LIMIT 1",
            [sid],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .expect(sid)
}

#[test]
fn copies_link_strangers_are_created_and_doubtful_ones_wait_with_their_evidence() {
    // The destination holds 300 people, and one person twice (a duplicate no one cleaned up).
    let dup = "INSERT INTO contacts VALUES (900, 'yan', 'ito', 'yan.ito@corp.test', '+16175559000');
               INSERT INTO contacts VALUES (901, 'yan', 'ito', 'yan.ito@corp.test', '+16175559000');";
    let (f5, l5, e5, _) = person(5);
    let (f7, l7, e7, p7) = person(7);
    let (_, _, _, p9) = person(9);
    let (f11, l11, _, _) = person(11);
    let csv = format!(
        "id,first,last,email,phone\n\
         s1,{F5},{l5}x,{E5},(617) 555-1005\n\
         s2,{l7},{f7},{e7},{p7}\n\
         s3,Wendell,Okoro,w.okoro@home.test,{p9}\n\
         s4,{f11},{l11},someone.else@elsewhere.test,+13125550199\n\
         s5,Ursula,Vance,ursula.vance@new.test,+14155550123\n\
         s6,Ursla,Vance,URSULA.VANCE@NEW.TEST,(415) 555-0123\n\
         s7,{f5},{l5},{e5},+16175551005\n\
         s8,Yan,Ito,yan.ito@corp.test,+16175559000\n",
        F5 = f5.to_uppercase(),
        E5 = e5.to_uppercase(),
    );
    let p = TestProject::new(&csv_to_sqlite("linkage", MATCH), &[("people", &csv)], &destination(300, dup));
    let check = text(&cutover(p.path(), &["check"], &[]));
    assert!(check.contains("linkage of firstname, lastname, email, phone"), "{check}");
    let out = cutover(p.path(), &["run"], &[]);
    let report = text(&out);
    assert!(out.status.success(), "{report}");

    // A copy with a typo in the surname, case and phone formats: its original is updated.
    let (outcome, dest, by, confidence, detail) = audit(&p, "s1");
    assert!(matches!(outcome.as_str(), "updated" | "unchanged"), "{outcome}: {detail}");
    assert_eq!((dest.as_deref(), by.as_deref()), (Some("105"), Some("linkage")), "{detail}");
    assert!(confidence.is_some_and(|c| c >= 0.99), "{confidence:?}");
    assert!(detail.contains("linked to destination record 105") && detail.contains("email equal +"), "{detail}");
    // First and last name swapped: the same person.
    let (outcome, dest, ..) = audit(&p, "s2");
    assert!(matches!(outcome.as_str(), "updated" | "unchanged") && dest.as_deref() == Some("107"), "{outcome}");
    // Sharing only a phone (a household) or only a name (a namesake) is no match.
    assert_eq!(audit(&p, "s3").0, "created");
    assert_eq!(audit(&p, "s4").0, "created");
    // The source's own duplicate folds into the record its first copy created.
    let (o5, d5, ..) = audit(&p, "s5");
    let (o6, d6, _, _, detail6) = audit(&p, "s6");
    assert_eq!((o5.as_str(), o6.as_str()), ("created", "merged"), "{detail6}");
    assert_eq!(d5, d6);
    assert_eq!(p.count("SELECT COUNT(*) FROM contacts WHERE lastname = 'Vance'"), 1);
    // One destination record, one source record: a second copy of 105 waits for a person.
    let (o7, _, _, _, why7) = audit(&p, "s7");
    assert_eq!(o7, "queued", "{why7}");
    assert!(why7.contains("already the destination record of source record s1"), "{why7}");
    // Two destination records alike: no guess between them.
    let (o8, _, _, _, why8) = audit(&p, "s8");
    assert_eq!(o8, "queued", "{why8}");
    assert!(why8.contains("destination record 900") && why8.contains("destination record 901"), "{why8}");
    assert!(why8.contains("margin"), "{why8}");
    // Nothing else was written: 300 + 2 + s3, s4, s5.
    assert_eq!(p.count("SELECT COUNT(*) FROM contacts"), 305);

    // The queue shows both candidates side by side with their evidence; the operator decides.
    let list = text(&cutover(p.path(), &["queue", "list"], &[]));
    assert!(list.contains("possible_match"), "{list}");
    let id: String = state(&p)
        .query_row("SELECT id FROM queue WHERE source_id = 's8'", [], |r| r.get::<_, i64>(0))
        .expect("queue item")
        .to_string();
    let show = text(&cutover(p.path(), &["queue", "show", &id], &[]));
    assert!(show.contains("Destination candidate 900") && show.contains("Destination candidate 901"), "{show}");
    assert!(show.contains("points") && show.contains("@match=900"), "{show}");
    let fix = cutover(p.path(), &["queue", "fix", &id, "@match=901"], &[]);
    assert!(fix.status.success(), "{}", text(&fix));
    let again = cutover(p.path(), &["queue", "reprocess", &id], &[]);
    assert!(again.status.success(), "{}", text(&again));
    let (o8, d8, ..) = audit(&p, "s8");
    assert!(matches!(o8.as_str(), "updated" | "unchanged") && d8.as_deref() == Some("901"), "{o8} {d8:?}");

    // Reconciliation says how sure the links were.
    let rec = text(&cutover(p.path(), &["reconcile"], &[]));
    assert!(rec.contains("Record linkage"), "{rec}");
}

#[test]
fn a_wrong_linkage_table_is_named_in_check() {
    let bad = r#"
[objects.contacts]
source = "people"
[objects.contacts.match]
link_above = 0.7
review_above = 0.9
blocks = [["email", "birthday"]]
[objects.contacts.match.fields]
email = "emial"
nickname = "name"
[objects.contacts.match.weights]
nickname = { typo = 3 }
[objects.contacts.fields]
email = { from = "email" }
"#;
    let p = TestProject::new(&csv_to_sqlite("bad", bad), &[("people", "id,email\n1,a@x.test\n")], TABLE);
    let out = cutover(p.path(), &["check"], &[]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    for expected in [
        "unknown comparison 'emial'",
        "'nickname' is not a mapped destination field",
        "is above link_above",
        "names 'birthday', which is not one of the compared fields",
        "no level 'typo' for a name field",
    ] {
        assert!(said.contains(expected), "missing {expected:?} in:\n{said}");
    }
    let list = r#"
[objects.contacts]
source = "people"
match = "email"
[objects.contacts.fields]
email = { from = "email" }
"#;
    let p = TestProject::new(&csv_to_sqlite("bad", list), &[("people", "id,email\n1,a@x.test\n")], TABLE);
    let said = text(&cutover(p.path(), &["check"], &[]));
    assert!(said.contains("objects.contacts.match") && said.contains("a list of fields"), "{said}");
}

/// Messy people: names with case, spaces and typos; emails with case; phones in any format;
/// blanks anywhere.
fn messy_person() -> impl Strategy<Value = (usize, u8, u8, u8)> {
    (0usize..40, 0u8..6, 0u8..4, 0u8..4)
}

fn damage(n: usize, name: u8, email: u8, phone: u8) -> [String; 4] {
    let (f, l, e, p) = person(n);
    let first = match name {
        0 => f.to_uppercase(),
        1 => format!("  {f} "),
        2 => f.chars().rev().collect(), // unrecognisable
        3 => l.clone(),                 // swapped with the surname
        4 => String::new(),
        _ => f.clone(),
    };
    let last = if name == 3 { f } else { l };
    let email = match email {
        0 => e.to_uppercase(),
        1 => String::new(),
        2 => e.replace("corp.test", "gmail.test"),
        _ => e,
    };
    let digits = &p[2..];
    let phone = match phone {
        0 => format!("({}) {}-{}", &digits[..3], &digits[3..6], &digits[6..]),
        1 => String::new(),
        2 => format!("+1 {digits}"),
        _ => p,
    };
    [first, last, email, phone]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// For any messy source: every record has exactly one outcome; no destination record that
    /// was there before is linked to by two source records; nothing is written twice for one
    /// person; and the batch size changes nothing.
    #[test]
    fn outcomes_are_one_each_one_to_one_and_batch_independent(
        people in proptest::collection::vec(messy_person(), 1..30),
    ) {
        let mut csv = String::from("id,first,last,email,phone\n");
        for (i, (n, name, email, phone)) in people.iter().enumerate() {
            let [f, l, e, p] = damage(*n, *name, *email, *phone);
            csv.push_str(&format!("r{i},{f},{l},{e},{p}\n"));
        }
        let mut seen: Vec<Vec<(String, String, Option<String>)>> = Vec::new();
        for batch in [1, 50] {
            let config = csv_to_sqlite("prop", MATCH)
                .replacen("[source]", &format!("batch_size = {batch}\nhalt_error_rate = 1.0\n[source]"), 1);
            let p = TestProject::new(&config, &[("people", &csv)], &destination(40, ""));
            let out = cutover(p.path(), &["run"], &[]);
            prop_assert!(out.status.success(), "{}", text(&out));
            let rows: Vec<(String, String, Option<String>)> = {
                let st = state(&p);
                let mut q = st.prepare(
                    "SELECT source_id, outcome, dest_id FROM audit WHERE object = 'contacts' ORDER BY source_id",
                ).expect("audit");
                q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).expect("rows")
                    .collect::<Result<_, _>>().expect("rows")
            };
            prop_assert_eq!(rows.len(), people.len(), "one outcome each");
            // One-to-one: a destination record from before the run gets at most one source record
            // by linkage (an operator may add more; none here).
            let mut linked: Vec<&String> = rows
                .iter()
                .filter(|(_, o, _)| matches!(o.as_str(), "updated" | "unchanged" | "merged"))
                .filter_map(|(_, _, d)| d.as_ref())
                .filter(|d| d.parse::<i64>().is_ok_and(|n| (100..140).contains(&n)))
                .collect();
            let before = linked.len();
            linked.sort();
            linked.dedup();
            prop_assert_eq!(before, linked.len(), "a destination record linked twice: {:?}", rows);
            // A record that lost nothing (only case, spaces and formats differ) is never created
            // beside the person it is: linked, or held when another source record took them.
            for (i, (_, name, email, phone)) in people.iter().enumerate() {
                let intact = matches!(name, 0 | 1 | 5) && matches!(email, 0 | 3) && matches!(phone, 0 | 2 | 3);
                let outcome = &rows.iter().find(|(sid, ..)| *sid == format!("r{i}")).expect("row").1;
                prop_assert!(!intact || outcome != "created", "r{} created beside its original: {:?}", i, rows);
            }
            seen.push(rows);
        }
        prop_assert_eq!(&seen[0], &seen[1], "batch size 1 and 50 decide alike");
    }
}

/// A larger project for kills: 1,500 people in the destination; 3,000 source records, half of them
/// damaged copies, a tenth of the new people given twice. Small batches: many checkpoints.
fn kill_project(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.join("source")).expect("mkdir");
    let config =
        csv_to_sqlite("kills", MATCH).replacen("[source]", "batch_size = 60\nhalt_error_rate = 1.0\n[source]", 1);
    std::fs::write(path.join("cutover.toml"), config).expect("toml");
    let mut csv = String::from("id,first,last,email,phone\n");
    let mut x: u64 = 0x1234_5678;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n) as u8
    };
    for i in 0..3000usize {
        let n = if i % 2 == 0 { (i * 7) % 1500 } else { 1500 + i / 2 - (i / 20) };
        let [f, l, e, p] = damage(n, next(6), next(4), next(4));
        csv.push_str(&format!("k{i},{f},{l},{e},{p}\n"));
    }
    std::fs::write(path.join("source/people.csv"), csv).expect("csv");
    let conn = rusqlite::Connection::open(path.join("destination.db")).expect("dest");
    conn.execute_batch(&destination(1500, "")).expect("sql");
    path
}

fn linkage_outcomes(project: &std::path::Path) -> Vec<(String, String, Option<String>)> {
    let c = rusqlite::Connection::open(project.join("cutover.state.db")).expect("state");
    let mut q = c
        .prepare("SELECT source_id, outcome, dest_id FROM audit WHERE object = 'contacts' ORDER BY source_id")
        .expect("q");
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).expect("rows").collect::<Result<_, _>>().expect("rows")
}

fn contact_rows(project: &std::path::Path) -> Vec<(i64, String, String, String, String)> {
    let c = rusqlite::Connection::open(project.join("destination.db")).expect("dest");
    let mut q = c
        .prepare("SELECT id, COALESCE(firstname,''), COALESCE(lastname,''), COALESCE(email,''), COALESCE(phone,'') FROM contacts ORDER BY id")
        .expect("q");
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// Killed with SIGKILL at several moments and resumed, a linkage run ends as an uninterrupted one:
/// the same outcome and destination record for every source record, the same rows — the model is
/// the run's own (kept in the store), and the records an attempt created are found, not doubled.
#[test]
fn kills_and_resumes_link_as_an_uninterrupted_run() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |project: &std::path::Path, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(args)
            .current_dir(project)
            .env("CUTOVER_LOG", project.join("cutover.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn")
    };
    let reference = kill_project(dir.path(), "reference");
    assert!(run(&reference, &["run"]).wait().expect("run").success());
    let expected = linkage_outcomes(&reference);
    assert_eq!(expected.len(), 3000);
    assert!(expected.iter().any(|(_, o, _)| o == "queued"), "some records held for review");

    let subject = kill_project(dir.path(), "subject");
    let committed = |p: &std::path::Path| -> usize {
        rusqlite::Connection::open_with_flags(p.join("cutover.state.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("SELECT COUNT(*) FROM audit", [], |r| r.get::<_, i64>(0)))
            .map(|n| n as usize)
            .unwrap_or(0)
    };
    let mut kills = 0;
    for (k, target) in [300usize, 900, 1500, 2100, 2700].into_iter().enumerate() {
        let args: &[&str] = if k == 0 { &["run"] } else { &["run", "--resume"] };
        let mut child = run(&subject, args);
        let deadline = Instant::now() + Duration::from_secs(120);
        while child.try_wait().expect("wait").is_none() && committed(&subject) < target {
            assert!(Instant::now() < deadline, "no progress towards {target}");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(3 * k as u64));
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        let _ = child.wait();
    }
    assert!(kills >= 3, "only {kills} kills landed");
    assert!(run(&subject, &["run", "--resume"]).wait().expect("resume").success());
    let got = linkage_outcomes(&subject);
    assert_eq!(got.len(), expected.len(), "one outcome per record");
    let mut differing: Vec<_> = got.iter().zip(&expected).filter(|(a, b)| a != b).collect();
    differing.sort_by_key(|(a, _)| a.0[1..].parse::<usize>().unwrap_or(0));
    if let Some(((sid, ..), _)) = differing.first() {
        let why = |p: &std::path::Path| -> String {
            rusqlite::Connection::open(p.join("cutover.state.db"))
                .and_then(|c| {
                    c.query_row(
                        "SELECT run_id || ' ' || outcome || ' ' || COALESCE(detail, '') FROM audit WHERE source_id = ?1",
                        [sid],
                        |r| r.get::<_, String>(0),
                    )
                })
                .unwrap_or_default()
        };
        panic!(
            "{} records differ, first in source order {sid}:\n  resumed: {}\n  uninterrupted: {}",
            differing.len(),
            why(&subject),
            why(&reference)
        );
    }
    assert_eq!(contact_rows(&subject), contact_rows(&reference), "the destination rows");
}

/// The linkage example of config.example.toml, uncommented in place of `match = [...]`, passes
/// `check`: what a newcomer copies works.
#[test]
fn the_example_linkage_table_is_valid() {
    let example = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml"))
        .expect("example");
    let start = example.find("# [objects.contacts.match]").expect("the example has a linkage table");
    let end = start + example[start..].find("\n\n").unwrap_or(example.len() - start);
    let table: Vec<String> = example[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| {
            l.starts_with('[')
                || l.split_once(" = ").is_some_and(|(k, _)| k.chars().all(|c| c.is_alphanumeric() || c == '_'))
        })
        .map(|l| l.to_string())
        .collect();
    assert!(table.len() >= 8, "{table:?}");
    let mut text = example[..start].replacen("match = [\"email\", \"phone\"]\n", "", 1);
    text.push_str(&table.join("\n"));
    text.push('\n');
    text.push_str(&example[end..]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("cutover.toml"), &text).expect("write");
    let project = cutover::config::load(&dir.path().join("cutover.toml"));
    match project {
        Ok(c) => assert!(c.object("contacts").and_then(|o| o.matching.linkage()).is_some()),
        Err(e) => panic!("the uncommented example does not pass:\n{e}\n---\n{}", table.join("\n")),
    }
}

/// Names with accents (the phonetic encoder reads ASCII only) and in other scripts link like
/// any other; and on a small export, the same local part at another domain with the same name
/// is not enough to merge two John Smiths: it waits for a person.
#[test]
fn accented_names_link_and_a_namesake_at_another_domain_waits() {
    let dest = format!(
        "{TABLE}
         INSERT INTO contacts VALUES (1, 'José', 'García', 'jose.garcia@corp.test', '+16175550001');
         INSERT INTO contacts VALUES (2, 'Zoë', 'Müller', 'zoe@corp.test', '+16175550002');
         INSERT INTO contacts VALUES (3, '伟', '王', 'wang.wei@corp.test', '+16175550003');
         INSERT INTO contacts VALUES (4, 'John', 'Smith', 'john.smith@acme.test', '+16175550004');
         {}",
        (10..60)
            .map(|i| format!(
                "INSERT INTO contacts VALUES ({i}, 'P{i}', 'Q{i}', 'p{i}@corp.test', '+1617555{:04}');",
                1000 + i
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let csv = "id,first,last,email,phone\n\
               a,JOSÉ,Garcia,Jose.Garcia@corp.test,(617) 555-0001\n\
               b,Zoe,Muller,ZOE@CORP.TEST,617 555 0002\n\
               c,伟,王,wang.wei@corp.test,\n\
               d,John,Smith,john.smith@gmail.test,\n\
               e,Björn,Ñúñez,,\n";
    let p = TestProject::new(&csv_to_sqlite("accents", MATCH), &[("people", csv)], &dest);
    let out = cutover(p.path(), &["run"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    for (sid, dest) in [("a", "1"), ("b", "2"), ("c", "3")] {
        let (outcome, d, _, _, detail) = audit(&p, sid);
        assert!(matches!(outcome.as_str(), "updated" | "unchanged") && d.as_deref() == Some(dest), "{sid}: {detail}");
    }
    let (outcome, _, _, _, why) = audit(&p, "d");
    assert_eq!(outcome, "queued", "{why}");
    assert!(why.contains("destination record 4") && why.contains("email local_part"), "{why}");
    assert_eq!(audit(&p, "e").0, "created");
}

#[test]
fn a_record_held_beside_one_of_its_own_batch_can_be_merged_into_what_that_one_became() {
    let dest = format!(
        "{TABLE}\n{}",
        (10..60)
            .map(|i| format!(
                "INSERT INTO contacts VALUES ({i}, 'P{i}', 'Q{i}', 'p{i}@corp.test', '+1617555{:04}');",
                1000 + i
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The same John Smith twice in one export, the second at another employer: a possible match
    // with a record the same batch creates, which has no destination id when it is held.
    let csv = "id,first,last,email,phone\n\
               x1,John,Smith,john.smith@acme.test,+16175550004\n\
               x2,John,Smith,john.smith@gmail.test,\n";
    let p = TestProject::new(&csv_to_sqlite("same_batch", MATCH), &[("people", csv)], &dest);
    let out = cutover(p.path(), &["run"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let (o1, d1, ..) = audit(&p, "x1");
    assert_eq!(o1, "created");
    let d1 = d1.expect("a destination id");
    let (o2, _, _, _, why) = audit(&p, "x2");
    assert_eq!(o2, "queued", "{why}");
    let id: String = state(&p)
        .query_row("SELECT id FROM queue WHERE source_id = 'x2'", [], |r| r.get::<_, i64>(0))
        .expect("queue item")
        .to_string();
    // Shown as the destination record it became, with its values, and choosable.
    let show = text(&cutover(p.path(), &["queue", "show", &id], &[]));
    assert!(show.contains(&format!("destination record {d1} (written from batch record #1)")), "{show}");
    assert!(show.contains(&format!("Destination candidate {d1}")) && show.contains(&format!("@match={d1}")), "{show}");
    let fix = cutover(p.path(), &["queue", "fix", &id, &format!("@match={d1}")], &[]);
    assert!(fix.status.success(), "{}", text(&fix));
    let again = cutover(p.path(), &["queue", "reprocess", &id], &[]);
    assert!(again.status.success(), "{}", text(&again));
    let (o2, d2, ..) = audit(&p, "x2");
    assert!(matches!(o2.as_str(), "updated" | "merged" | "unchanged") && d2 == Some(d1), "{o2} {d2:?}");
    assert_eq!(p.count("SELECT COUNT(*) FROM contacts WHERE lastname = 'Smith'"), 1);
}

/// Twins, a couple and two colleagues share phones, addresses, office emails and birth dates;
/// a record whose first name was replaced by another (as the FEBRL benchmark's are) keeps its
/// id. Only the id may merge past a first name that disagrees entirely.
#[test]
fn twins_households_and_colleagues_are_not_merged_but_an_id_links_past_a_replaced_name() {
    let config = r#"
[objects.people]
source = "people"
destination = "people"
[objects.people.match]
link_above = 0.99
review_above = 0.8
[objects.people.match.fields]
first = "name"
last = "name"
email = "email"
phone = "phone"
born = "date"
ssn = "id"
[objects.people.fields]
first = { from = "first" }
last = { from = "last" }
email = { from = "email" }
phone = { from = "phone" }
born = { from = "born" }
ssn = { from = "ssn" }
"#;
    let mut sql = String::from(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, first TEXT, last TEXT, email TEXT, phone TEXT, born TEXT, ssn TEXT);\n\
         INSERT INTO people VALUES (1, 'Jonathan', 'Ovaewha', 'home@ovaewha.test', '+14155550100', '1990-04-02', NULL);\n\
         INSERT INTO people VALUES (2, 'Brian', 'Lopez', 'info@initech.test', '+14155550199', NULL, NULL);\n\
         INSERT INTO people VALUES (3, 'Michaela', 'Neumann', NULL, NULL, '1915-11-11', '5304218');\n",
    );
    for i in 10..80 {
        sql.push_str(&format!(
            "INSERT INTO people VALUES ({i}, 'P{i}', 'Q{i}', 'p{i}@corp.test', '+1617555{:04}', '19{}-01-0{}', '{}');\n",
            1000 + i,
            10 + i,
            1 + i % 9,
            7_000_000 + i
        ));
    }
    let csv = "id,first,last,email,phone,born,ssn\n\
               twin,Linda,Ovaewha,home@ovaewha.test,(415) 555-0100,1990-04-02,\n\
               colleague,Kenneth,Wilson,INFO@initech.test,415.555.0199,,\n\
               replaced,Kiria,Neumann,,,1915-11-11,5304218\n";
    let p = TestProject::new(&csv_to_sqlite("twins", config), &[("people", csv)], &sql);
    let out = cutover(p.path(), &["run"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let row = |sid: &str| -> (String, Option<String>, String) {
        state(&p)
            .query_row(
                "SELECT outcome, dest_id, COALESCE(detail, '') FROM audit WHERE object = 'people' AND source_id = ?1
                 ORDER BY id DESC LIMIT 1",
                [sid],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect(sid)
    };
    for sid in ["twin", "colleague"] {
        let (outcome, dest, detail) = row(sid);
        assert!(outcome == "queued" || outcome == "created", "{sid} was {outcome} into {dest:?}: {detail}");
    }
    // Both names of Linda's record and her twin's destination record are still their own.
    assert_eq!(p.count("SELECT COUNT(*) FROM people WHERE first = 'Jonathan' AND last = 'Ovaewha'"), 1);
    let (outcome, dest, detail) = row("replaced");
    assert!(matches!(outcome.as_str(), "updated" | "unchanged"), "{outcome}: {detail}");
    assert_eq!(dest.as_deref(), Some("3"), "{detail}");
}

/// A name of letters for a number (names are compared by their letters only).
fn letters(mut n: usize) -> String {
    let mut out = String::from("Nu");
    loop {
        out.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
        if n == 0 {
            return out;
        }
    }
}

/// A re-run of an unchanged export decides as the first run did: it links by the weights the
/// first run estimated (the records the first run created would move them), so nothing the
/// first run held for a person is created or merged without one, and nothing is created twice.
#[test]
fn a_re_run_links_by_the_first_runs_weights_and_decides_nothing_anew() {
    let mut csv = String::from("id,first,last,email,phone\n");
    for n in 0..240 {
        let (f, l, e, p) = person(n);
        let row = match n % 6 {
            0 => format!("s{n},{f},{l},{},{p}", e.to_uppercase()),
            1 => format!("s{n},{f},{l}x,,{p}"),                   // a typo, no email
            2 => format!("s{n},{f},{l},{f}.{l}@elsewhere.test,"), // a namesake elsewhere
            3 => format!("s{n},{},Stranger,new{n}@fresh.test,+1312{:07}", letters(n), n * 7919),
            4 => format!("s{n},{l},{f},{e},"), // swapped names
            _ => format!("s{n},{f},,,{p}"),    // a first name and a phone
        };
        csv.push_str(&row);
        csv.push('\n');
    }
    let p = TestProject::new(&csv_to_sqlite("rerun", MATCH), &[("people", &csv)], &destination(200, ""));
    assert!(cutover(p.path(), &["run"], &[]).status.success());
    let held = |p: &TestProject| -> Vec<String> {
        state(p)
            .prepare("SELECT source_id FROM queue WHERE status = 'open' ORDER BY source_id")
            .expect("q")
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    let before = (held(&p), p.count("SELECT COUNT(*) FROM contacts"));
    assert!(!before.0.is_empty(), "the data holds doubtful records");
    let out = cutover(p.path(), &["run"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!((held(&p), p.count("SELECT COUNT(*) FROM contacts")), before, "{}", text(&out));
    let models: Vec<String> = state(&p)
        .prepare("SELECT model FROM linkage_models ORDER BY run_id")
        .expect("q")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(models.len(), 2);
    assert_eq!(models[0], models[1], "the second run links by the first run's weights");
}

/// A record that fills another in (a phone it brings) is met by that phone by the records after
/// it in the same batch, as it would be one batch later: batch size changes no decision.
#[test]
fn what_a_record_fills_in_is_met_by_the_rest_of_its_batch() {
    let csv = "id,first,last,email,phone\n\
               r1,Andrew,Okonkwo,andrew.okonkwo@web.test,\n\
               r2,Andrew,Okonkwo,ANDREW.OKONKWO@web.test,+44 20 8575 6907\n\
               r3,A.,Okkonkwo,a.okonkwo@blackmesa.test,+44.20.8575.6907\n";
    let outcomes = |batch: usize| -> Vec<(String, String, Option<String>)> {
        let toml = csv_to_sqlite("batches", MATCH).replace("[source]", &format!("batch_size = {batch}\n[source]"));
        let p = TestProject::new(&toml, &[("people", csv)], &destination(50, ""));
        assert!(cutover(p.path(), &["run"], &[]).status.success());
        linkage_outcomes(p.path())
    };
    let one = outcomes(1);
    assert_eq!(one.iter().filter(|(_, o, _)| o == "created").count(), 1, "{one:?}");
    assert_eq!(outcomes(500), one);
}

/// A record held for a person stays held on later runs while its row is unchanged, even when
/// the destination moved so that the weights would now decide it (here: one of its two alike
/// candidates was deleted); once its row changes, it is weighed anew.
#[test]
fn a_record_held_for_a_person_is_not_decided_by_a_later_run_until_its_row_changes() {
    let dup = "INSERT INTO contacts VALUES (900, 'yan', 'ito', 'yan.ito@corp.test', '+16175559000');
               INSERT INTO contacts VALUES (901, 'yan', 'ito', 'yan.ito@corp.test', '+16175559000');";
    let csv = "id,first,last,email,phone\ns8,Yan,Ito,yan.ito@corp.test,+16175559000\n";
    let p = TestProject::new(&csv_to_sqlite("held", MATCH), &[("people", csv)], &destination(30, dup));
    assert!(cutover(p.path(), &["run"], &[]).status.success());
    assert_eq!(audit(&p, "s8").0, "queued", "two alike candidates");
    p.dest().execute("DELETE FROM contacts WHERE id = 901", []).expect("delete");
    let again = cutover(p.path(), &["run"], &[]);
    assert!(again.status.success(), "{}", text(&again));
    let (outcome, _, _, _, why) = audit(&p, "s8");
    assert_eq!(outcome, "queued", "{why}");
    assert!(why.contains("held for a person by an earlier run"), "{why}");
    std::fs::write(
        p.path().join("source/people.csv"),
        "id,first,last,email,phone\ns8,Yan,Ito,yan.ito@corp.test,(617) 555-9000\n",
    )
    .expect("csv");
    assert!(cutover(p.path(), &["run"], &[]).status.success());
    let (outcome, dest, ..) = audit(&p, "s8");
    assert!(matches!(outcome.as_str(), "updated" | "unchanged") && dest.as_deref() == Some("900"), "{outcome}");
}
