//! Rules that hold for all generated messy input, not only for the cases someone thought of.
//!
//! - CSV: whatever quotes, commas, line breaks and stray quotes a file holds, the reader and the
//!   independent census count the same records, and a well-formed file reads back exactly.
//! - The pipeline, against a small reference model written here: sources with repeated ids, keys
//!   shared by different people and blank keys — every physical source record has exactly one
//!   latest outcome, the destination equals the model's, whatever the batch size, and a run
//!   stopped at any batch boundary and resumed ends exactly as an uninterrupted one.

use cutover::connect::csv_dir::census;
use cutover::connect::csv_dir::records::{Limits, Position, RawRecord, RecordReader};
use proptest::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

// ---- CSV ---------------------------------------------------------------------------------------

/// One field as an export might spell it: plain, quoted with commas and line breaks, doubled
/// quotes, text after a closing quote on its line, empty — or broken: a quote opened and never
/// closed, a quote in the middle (which can seem to close a quote left open rows before).
fn field() -> impl Strategy<Value = (String, Option<String>)> {
    prop_oneof![
        "[a-z0-9 ]{0,6}".prop_map(|s| (s.clone(), Some(s))),
        "[a-z ,]{0,6}(\n|\r\n)?[a-z,]{0,4}".prop_map(|s| (format!("\"{s}\""), Some(s))),
        "[a-z]{0,3}".prop_map(|s| (format!("\"{s}\"\"{s}\""), Some(format!("{s}\"{s}")))),
        Just((String::new(), Some(String::new()))),
        "[a-z]{1,3}".prop_map(|s| (format!("\"{s}\"{s}"), Some(format!("{s}{s}")))),
        "[a-z ,]{0,6}".prop_map(|s| (format!("\"{s}"), None)),
        "[a-z]{1,3}".prop_map(|s| (format!("{s}\"{s}"), None)),
    ]
}

fn csv_file() -> impl Strategy<Value = (Vec<u8>, usize, Vec<Vec<String>>, bool)> {
    (1usize..5)
        .prop_flat_map(|width| {
            let row = proptest::collection::vec(field(), width);
            (Just(width), proptest::collection::vec(row, 0..12), any::<bool>())
        })
        .prop_map(|(width, rows, crlf)| {
            let end = if crlf { "\r\n" } else { "\n" };
            let header: Vec<String> = (0..width).map(|i| format!("c{i}")).collect();
            let mut text = header.join(",") + end;
            let mut expected = Vec::new();
            let mut well_formed = true;
            for row in &rows {
                text.push_str(&row.iter().map(|(raw, _)| raw.as_str()).collect::<Vec<_>>().join(","));
                text.push_str(end);
                match row.iter().map(|(_, v)| v.clone()).collect::<Option<Vec<String>>>() {
                    // A row of one empty field is an empty line: no record.
                    Some(values) if !(values.len() == 1 && values[0].is_empty() && row[0].0.is_empty()) => {
                        expected.push(values)
                    }
                    Some(_) => {}
                    None => well_formed = false,
                }
            }
            (text.into_bytes(), width, expected, well_formed)
        })
}

fn read_all(path: &Path, width: usize) -> Vec<(u64, Vec<String>, bool)> {
    let mut reader = RecordReader::open(path, Position { byte: 0, line: 1 }, Limits::default()).expect("open");
    let mut rec = RawRecord::default();
    assert!(reader.next_record(&mut rec).expect("header"), "a header line");
    reader.expect_width(width);
    let mut out = Vec::new();
    while reader.next_record(&mut rec).expect("record") {
        let fields = rec.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect();
        out.push((rec.line, fields, rec.broken_quote.is_some()));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_reader_and_the_census_count_the_same_records((bytes, width, expected, well_formed) in csv_file()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.csv");
        std::fs::write(&path, &bytes).expect("write");
        let read = read_all(&path, width);
        let counted = census::count(&path, Limits::default()).expect("census");
        prop_assert_eq!(read.len() as u64, counted.records, "{:?}", String::from_utf8_lossy(&bytes));
        prop_assert!(read.windows(2).all(|w| w[0].0 < w[1].0), "records start on later and later lines");
        if well_formed {
            let fields: Vec<Vec<String>> = read.iter().map(|r| r.1.clone()).collect();
            prop_assert_eq!(fields, expected, "{:?}", String::from_utf8_lossy(&bytes));
            prop_assert!(read.iter().all(|r| !r.2), "nothing is suspect in a well-formed file");
        }
    }
}

// ---- the pipeline against a reference model ------------------------------------------------------

const EMAILS: [&str; 4] = ["a@example.com", "b@example.com", "c@example.com", "d@example.com"];
const PHONES: [&str; 4] = ["+12122000001", "+12122000002", "+13122000003", "+14152000004"];
const NAMES: [&str; 4] = ["Ann", "Bob", "Cy", "Di"];

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Person {
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

fn person() -> impl Strategy<Value = Person> {
    let pick = |pool: &'static [&'static str; 4]| prop_oneof![1 => Just(None), 3 => (0usize..4).prop_map(move |i| Some(pool[i].to_string()))];
    (pick(&NAMES), pick(&EMAILS), pick(&PHONES)).prop_map(|(name, email, phone)| Person { name, email, phone })
}

/// A messy source: ids from a small pool (some repeat, some rows repeat exactly), shared keys.
fn source() -> impl Strategy<Value = (Vec<Person>, Vec<(String, Person)>, usize)> {
    (
        proptest::collection::vec(person(), 0..4),
        proptest::collection::vec((0u8..14, person(), 0u8..6), 1..24),
        1usize..8,
    )
        .prop_map(|(existing, rows, batch)| {
            let mut out: Vec<(String, Person)> = Vec::new();
            for (id, p, repeat) in rows {
                let sid = format!("s{id}");
                // Now and then the export repeats the previous row word for word.
                if repeat == 0
                    && let Some(last) = out.last().cloned()
                {
                    out.push(last);
                }
                out.push((sid, p));
            }
            (existing, out, batch)
        })
}

/// What the engine must do, written independently: rows in order; a second row under an id is
/// skipped when it repeats the first exactly, else held; a record is found by email first, then
/// by phone (the first key with any candidate decides); several candidates hold it; one candidate
/// whose other key holds another non-blank value holds it (two people), so does one whose name is
/// another (the names of the pool share nothing), and so does a blank key it would fill with a
/// value another record holds (two records sharing it); else it is merged: the
/// first source record to reach a destination record fills its blanks (updated, or unchanged),
/// later ones are members that fill blanks too (merged); no candidate creates a record.
fn model(existing: &[Person], rows: &[(String, Person)]) -> (Vec<Person>, Vec<(String, u32, &'static str)>) {
    struct Rec {
        p: Person,
        linked: bool,
    }
    let mut dest: Vec<Rec> = existing.iter().map(|p| Rec { p: p.clone(), linked: false }).collect();
    let mut firsts: HashMap<String, (Person, u32)> = HashMap::new();
    let mut outcomes = Vec::new();
    for (sid, row) in rows {
        if let Some((first, n)) = firsts.get_mut(sid) {
            *n += 1;
            outcomes.push((sid.clone(), *n, if first == row { "skipped" } else { "queued" }));
            continue;
        }
        firsts.insert(sid.clone(), (row.clone(), 1));
        let by = |f: fn(&Person) -> &Option<String>| -> Vec<usize> {
            match f(row) {
                None => Vec::new(),
                Some(v) => (0..dest.len()).filter(|&i| f(&dest[i].p).as_deref() == Some(v.as_str())).collect(),
            }
        };
        let email: fn(&Person) -> &Option<String> = |p| &p.email;
        let phone: fn(&Person) -> &Option<String> = |p| &p.phone;
        let (found, other) = match by(email) {
            e if !e.is_empty() => (e, phone),
            _ => (by(phone), email),
        };
        let outcome = match found.as_slice() {
            [] => {
                dest.push(Rec { p: row.clone(), linked: true });
                "created"
            }
            [d] => {
                let (ours, theirs) = (other(row), other(&dest[*d].p));
                // Filling a blank key with a value another record holds would leave two sharing it.
                let takes = [email, phone].into_iter().any(|f| {
                    f(&dest[*d].p).is_none()
                        && f(row).is_some()
                        && (0..dest.len()).any(|j| j != *d && f(&dest[j].p) == f(row))
                });
                // Found by a shared contact point, a record of another name is another person.
                let renamed = row.name.is_some() && dest[*d].p.name.is_some() && row.name != dest[*d].p.name;
                if ours.is_some() && theirs.is_some() && ours != theirs || takes || renamed {
                    "queued"
                } else {
                    let rec = &mut dest[*d];
                    let before = rec.p.clone();
                    for (slot, v) in
                        [(&mut rec.p.name, &row.name), (&mut rec.p.email, &row.email), (&mut rec.p.phone, &row.phone)]
                    {
                        if slot.is_none() {
                            slot.clone_from(v);
                        }
                    }
                    let o = if rec.linked {
                        "merged"
                    } else if rec.p != before {
                        "updated"
                    } else {
                        "unchanged"
                    };
                    rec.linked = true;
                    o
                }
            }
            _ => "queued",
        };
        outcomes.push((sid.clone(), 1, outcome));
    }
    let mut people: Vec<Person> = dest.into_iter().map(|r| r.p).collect();
    people.sort();
    (people, outcomes)
}

fn project(dir: &Path, existing: &[Person], rows: &[(String, Person)], batch: usize) {
    let toml = format!(
        r#"[project]
name = "model"
batch_size = {batch}
halt_error_rate = 1.0

[source]
kind = "csv"
path = "source"

[destination]
kind = "sqlite"
path = "destination.db"

[destination.types]
"contacts.email" = "email"
"contacts.phone" = "phone"

[objects.contacts]
match = ["email", "phone"]
merge = "fill_blanks"

[objects.contacts.fields]
name = {{ from = "name" }}
email = {{ from = "email", transform = "email" }}
phone = {{ from = "phone", transform = "phone" }}
"#
    );
    std::fs::create_dir_all(dir.join("source")).expect("mkdir");
    std::fs::write(dir.join("cutover.toml"), toml).expect("toml");
    write_rows(dir, rows);
    let db = rusqlite::Connection::open(dir.join("destination.db")).expect("dest");
    db.execute_batch("CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, email TEXT, phone TEXT);")
        .expect("table");
    for p in existing {
        db.execute(
            "INSERT INTO contacts (name, email, phone) VALUES (?1, ?2, ?3)",
            rusqlite::params![p.name, p.email, p.phone],
        )
        .expect("row");
    }
}

/// The export: `source/contacts.csv` with these rows.
fn write_rows(dir: &Path, rows: &[(String, Person)]) {
    let cell = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut csv = String::from("id,name,email,phone\n");
    for (sid, p) in rows {
        csv.push_str(&format!("{sid},{},{},{}\n", cell(&p.name), cell(&p.email), cell(&p.phone)));
    }
    std::fs::write(dir.join("source/contacts.csv"), csv).expect("csv");
}

fn destination(dir: &Path) -> Vec<Person> {
    let db = rusqlite::Connection::open(dir.join("destination.db")).expect("dest");
    let mut stmt = db.prepare("SELECT name, email, phone FROM contacts").expect("select");
    let mut people: Vec<Person> = stmt
        .query_map([], |r| Ok(Person { name: r.get(0)?, email: r.get(1)?, phone: r.get(2)? }))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    people.sort();
    people
}

/// Each physical record's latest outcome, in source order: (source id, row under the id, outcome).
fn outcomes(dir: &Path) -> Vec<(String, u32, String)> {
    let s = rusqlite::Connection::open(dir.join("cutover.state.db")).expect("store");
    let mut stmt = s
        .prepare(
            "SELECT source_id, occurrence, outcome, origin FROM audit a WHERE id = (SELECT MAX(id) FROM audit b
             WHERE b.object = a.object AND b.source_id = a.source_id AND b.occurrence = a.occurrence)",
        )
        .expect("q");
    let mut rows: Vec<(u64, String, u32, String)> = stmt
        .query_map([], |r| {
            let origin: String = r.get(3)?;
            let line = origin.rsplit(':').next().and_then(|l| l.parse().ok()).unwrap_or(0);
            Ok((line, r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    rows.sort();
    rows.into_iter().map(|(_, s, n, o)| (s, n, o)).collect()
}

/// The CSV source, failing its `fail_at`-th read: the run stops at that batch boundary.
struct Stopping {
    inner: Arc<dyn cutover::connect::Source>,
    reads: AtomicUsize,
    fail_at: usize,
}

#[async_trait::async_trait]
impl cutover::connect::Source for Stopping {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn fields(&self, object: &str) -> color_eyre::Result<cutover::model::FieldNames> {
        self.inner.fields(object).await
    }
    async fn count(&self, object: &str) -> color_eyre::Result<u64> {
        self.inner.count(object).await
    }
    async fn read_batch(
        &self,
        object: &str,
        id_field: &str,
        cursor: &cutover::connect::Cursor,
        max: usize,
    ) -> color_eyre::Result<cutover::connect::Batch> {
        if self.reads.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            color_eyre::eyre::bail!("the source went away (test)");
        }
        self.inner.read_batch(object, id_field, cursor, max).await
    }
}

fn engine(dir: &Path, fail_at: Option<usize>) -> cutover::pipeline::Engine {
    let project = cutover::project::Project::load(Some(&dir.join("cutover.toml"))).expect("project");
    let mut source = cutover::connect::open_source(&project.config).expect("source");
    if let Some(fail_at) = fail_at {
        source = Arc::new(Stopping { inner: source, reads: AtomicUsize::new(0), fail_at });
    }
    let dest = cutover::connect::open_destination(&project.config, false).expect("destination");
    cutover::pipeline::Engine::new(project.config.clone(), source, dest, project.store_path.clone()).expect("engine")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_pipeline_does_what_the_model_does_at_any_batch_size((existing, rows, batch) in source()) {
        let (want_people, want_outcomes) = model(&existing, &rows);
        let dir = tempfile::tempdir().expect("tempdir");
        project(dir.path(), &existing, &rows, batch);
        let rt = runtime();
        rt.block_on(async { engine(dir.path(), None).run(cutover::store::RunKind::Full).await }).expect("runs");
        let got: Vec<(String, u32, String)> = outcomes(dir.path());
        let want: Vec<(String, u32, String)> = want_outcomes.iter().map(|(s, n, o)| (s.clone(), *n, o.to_string())).collect();
        prop_assert_eq!(got.len(), rows.len(), "every physical record has exactly one latest outcome");
        prop_assert_eq!(got, want, "outcomes (batch {})", batch);
        prop_assert_eq!(destination(dir.path()), want_people, "destination (batch {})", batch);
    }

    /// A later export changes people's keys (found by their own ids, they keep what the merge
    /// rule keeps) and brings new people: the delta decides every record as it would one batch
    /// at a time.
    #[test]
    fn a_delta_after_a_run_decides_alike_at_any_batch_size(
        (existing, rows, batch) in source(),
        (_, later, _) in source(),
    ) {
        let rt = runtime();
        let mut ends = Vec::new();
        for size in [1, batch.max(2) * 3] {
            let dir = tempfile::tempdir().expect("tempdir");
            project(dir.path(), &existing, &rows, size);
            rt.block_on(async { engine(dir.path(), None).run(cutover::store::RunKind::Full).await }).expect("runs");
            write_rows(dir.path(), &later);
            rt.block_on(async { engine(dir.path(), None).delta(cutover::pipeline::delta::DeltaMode::Both).await })
                .expect("delta runs");
            ends.push((size, outcomes(dir.path()), destination(dir.path())));
        }
        let (one, many) = (&ends[0], &ends[1]);
        prop_assert_eq!(&many.1, &one.1, "outcomes at batch {} against batch 1", many.0);
        prop_assert_eq!(&many.2, &one.2, "destination at batch {} against batch 1", many.0);
    }

    #[test]
    fn a_run_stopped_at_any_batch_boundary_resumes_to_the_same_end((existing, rows, batch) in source(), stop in 1usize..6) {
        let rt = runtime();
        let whole = tempfile::tempdir().expect("tempdir");
        project(whole.path(), &existing, &rows, batch);
        rt.block_on(async { engine(whole.path(), None).run(cutover::store::RunKind::Full).await }).expect("runs");
        let broken = tempfile::tempdir().expect("tempdir");
        project(broken.path(), &existing, &rows, batch);
        let first = rt.block_on(async { engine(broken.path(), Some(stop)).run(cutover::store::RunKind::Full).await });
        if first.is_err() {
            rt.block_on(async { engine(broken.path(), None).resume().await }).expect("resumes");
        }
        prop_assert_eq!(outcomes(broken.path()), outcomes(whole.path()));
        prop_assert_eq!(destination(broken.path()), destination(whole.path()));
    }
}
