//! Values as real exports write them (issue #14), end to end through the binary: amounts with
//! currency signs and accounting negatives, dates in every common export form, read into typed
//! destination fields without a transform named in the project — and what cannot be read is
//! held with the value named, never guessed.

mod common;
use common::{TestProject, csv_to_sqlite, cutover, text};

const DEALS: &str = r#"
[destination.types]
"deals.amount" = "decimal"
"deals.closed_on" = "date"
"deals.updated_at" = "datetime"

[objects.deals.fields]
title = { from = "title" }
amount = { from = "value" }
closed_on = { from = "close_date" }
updated_at = { from = "update_time" }
"#;

#[test]
fn amounts_and_dates_as_exports_write_them_are_read_not_held() {
    let csv = "\
id,title,value,close_date,update_time
1,Dollars,\"$12,345.00\",06-Feb-2021,06-Feb-2021 21:32
2,Refund,\"(1,234.50)\",20210304,1549695766000
3,Euros,\"1.234,50 €\",\"Mar 5, 2024\",1549695766
4,Codes,\"USD 1,234.50\",03/04/2024,2024-03-05T14:22:01+02:00
5,Sheet,0.10,44927,\"Tue, 05 Mar 2024 14:00:00 +0100\"
6,Guess,12 apples,March 2024,10:30
7,Short year,5,3/4/55,2024-02-30 10:00
";
    let p = TestProject::new(
        &csv_to_sqlite("exports", DEALS),
        &[("deals", csv)],
        "CREATE TABLE deals (id INTEGER PRIMARY KEY, title TEXT, amount TEXT, closed_on TEXT, updated_at TEXT);",
    );
    let out = cutover(p.path(), &["run"], &[]);
    let report = text(&out);
    let rows: Vec<(String, String, String, String)> = {
        let d = p.dest();
        let mut stmt = d.prepare("SELECT title, amount, closed_on, updated_at FROM deals ORDER BY id").expect("q");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    let row = |t: &str, a: &str, c: &str, u: &str| (t.to_string(), a.to_string(), c.to_string(), u.to_string());
    assert_eq!(
        rows,
        [
            row("Dollars", "12345.00", "2021-02-06", "2021-02-06T21:32:00Z"),
            row("Refund", "-1234.50", "2021-03-04", "2019-02-09T07:02:46Z"),
            row("Euros", "1234.50", "2024-03-05", "2019-02-09T07:02:46Z"),
            row("Codes", "1234.50", "2024-03-04", "2024-03-05T12:22:01Z"),
            row("Sheet", "0.10", "2023-01-01", "2024-03-05T13:00:00Z"),
        ],
        "{report}"
    );
    // What would have to be guessed waits, each field named with its value.
    let queue = text(&cutover(p.path(), &["queue", "list"], &[]));
    let shown = |id: &str| text(&cutover(p.path(), &["queue", "show", id], &[]));
    let first = shown("1");
    assert!(queue.contains("deals") && first.contains("'12 apples' is not a number"), "{queue}\n{first}");
    assert!(first.contains("'March 2024' is not a date"), "{first}");
    assert!(first.contains("'10:30' is not a date"), "{first}");
    let second = shown("2");
    assert!(second.contains("'3/4/55' is not a date"), "{second}");
    assert!(second.contains("'2024-02-30 10:00' has no such day: February 2024 has 29 days"), "{second}");
}

fn phones_project(policy: &str) -> TestProject {
    let fields = format!(
        "[objects.people.fields]\nname = {{ from = \"name\" }}\nphone = {{ from = \"phone\", transform = \"phone\"{policy} }}\n"
    );
    let csv = "id,name,phone\n1,Valid,(415) 555-2671\n2,Unassigned,+1 999 555 0100\n3,Junk,n/a\n4,Short,12\n";
    TestProject::new(
        &csv_to_sqlite("phones", &fields),
        &[("people", csv)],
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, phone TEXT);",
    )
}

fn phone_of(p: &TestProject, name: &str) -> Option<Option<String>> {
    p.dest().query_row("SELECT phone FROM people WHERE name = ?1", [name], |r| r.get(0)).ok()
}

#[test]
fn a_phone_that_parses_but_is_not_assigned_is_written_with_a_warning_junk_is_held() {
    let p = phones_project("");
    let out = cutover(p.path(), &["run"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(phone_of(&p, "Valid"), Some(Some("+14155552671".into())));
    assert_eq!(phone_of(&p, "Unassigned"), Some(Some("+19995550100".into())), "written, in E.164");
    assert_eq!(phone_of(&p, "Junk"), None, "held");
    assert_eq!(phone_of(&p, "Short"), None, "held");
    // The warning is in the audit log with the record, and reconciliation asks to accept it.
    let warnings: String = p
        .project()
        .store()
        .expect("store")
        .conn()
        .query_row("SELECT warnings FROM audit WHERE source_id = '2'", [], |r| r.get(0))
        .expect("audited");
    assert!(warnings.contains("unassigned_phone") && warnings.contains("not an assigned number of +1"), "{warnings}");
    let keys = common::reconcile_keys(p.path(), &[]);
    assert!(keys.contains(&"people/warning/unassigned_phone".to_string()), "{keys:?}");
    assert!(keys.contains(&"people/queued/invalid_phone".to_string()), "{keys:?}");
    let audit = text(&cutover(p.path(), &["export", "audit", "--format", "jsonl"], &[]));
    assert!(audit.contains("unassigned_phone"), "the export carries it\n{audit}");
}

#[test]
fn a_phone_fields_invalid_policy_holds_or_blanks_instead() {
    let p = phones_project(", invalid = \"queue\"");
    assert!(cutover(p.path(), &["run"], &[]).status.success());
    assert_eq!(phone_of(&p, "Unassigned"), None, "held");
    let p = phones_project(", invalid = \"blank\"");
    assert!(cutover(p.path(), &["run"], &[]).status.success());
    assert_eq!(phone_of(&p, "Unassigned"), Some(None), "written without the number");
    assert!(common::reconcile_keys(p.path(), &[]).contains(&"people/warning/unassigned_phone".to_string()));
    let p = phones_project(", invalid = \"ignore\"");
    let out = cutover(p.path(), &["check"], &[]);
    assert!(text(&out).contains("'ignore' is not one of warn, queue, blank"), "{}", text(&out));
}

#[test]
fn a_record_several_source_records_feed_counts_once_in_the_sums() {
    let fields = "[destination.types]\n\"people.amount\" = \"decimal\"\n[objects.people]\nmatch = [\"email\"]\n\
                  [objects.people.fields]\nname = { from = \"name\" }\nemail = { from = \"email\", transform = \"email\" }\n\
                  amount = { from = \"amount\" }\n";
    let csv = "id,name,email,amount\n1,Ann,ann@x.com,10.5\n2,Ann again,ANN@x.com,99\n3,Bo,bo@x.com,1\n";
    let p = TestProject::new(
        &csv_to_sqlite("sums", fields),
        &[("people", csv)],
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, email TEXT, amount TEXT);",
    );
    assert!(cutover(p.path(), &["run"], &[]).status.success());
    let out = cutover(p.path(), &["reconcile", "--all", "--format", "json"], &[]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let sum = &report["objects"][0]["sums"][0];
    assert_eq!((sum["mapped"].as_str(), sum["destination"].as_str()), (Some("11.5"), Some("11.5")), "{sum}");
}

/// Two assumptions a record is written with, each a warning to verify: a date that reads either
/// way round, and a phone extension nobody keeps. Mapped to a field of its own, the extension
/// is kept and no warning is given.
#[test]
fn a_date_read_in_the_projects_order_and_a_dropped_extension_are_written_with_warnings() {
    let project = |ext: &str| {
        let fields = format!(
            "[destination.types]\n\"people.met_on\" = \"date\"\n[objects.people.fields]\nname = {{ from = \"name\" }}\n\
             phone = {{ from = \"phone\", transform = \"phone\" }}\nmet_on = {{ from = \"met\" }}\n{ext}"
        );
        let csv = "id,name,phone,met\n1,Ann,(415) 555-2671 x123,03/04/2024\n2,Bob,(415) 555-2672,13/04/2024\n\
                   3,Cy,415.555.2673 ext. 7,2024-03-04\n";
        TestProject::new(
            &csv_to_sqlite("assumptions", &fields),
            &[("people", csv)],
            "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, phone TEXT, phone_ext TEXT, met_on TEXT);",
        )
    };
    let p = project("");
    let out = cutover(p.path(), &["run"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let row = |name: &str| -> (Option<String>, Option<String>) {
        p.dest()
            .query_row("SELECT phone, met_on FROM people WHERE name = ?1", [name], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    assert_eq!(row("Ann"), (Some("+14155552671".into()), Some("2024-03-04".into())), "written, month first");
    assert_eq!(row("Bob"), (Some("+14155552672".into()), Some("2024-04-13".into())), "13 can only be a day");
    let warnings = |id: &str| -> String {
        p.project()
            .store()
            .expect("store")
            .conn()
            .query_row("SELECT coalesce(warnings, '') FROM audit WHERE source_id = ?1", [id], |r| r.get(0))
            .expect("audited")
    };
    let ann = warnings("1");
    assert!(ann.contains("ambiguous_date") && ann.contains("2024-04-03"), "{ann}");
    assert!(ann.contains("dropped_extension") && ann.contains("extension 123"), "{ann}");
    assert!(!warnings("2").contains("ambiguous_date"), "{}", warnings("2"));
    assert!(warnings("3").contains("extension 7"), "{}", warnings("3"));
    let keys = common::reconcile_keys(p.path(), &[]);
    for key in ["people/warning/ambiguous_date", "people/warning/dropped_extension"] {
        assert!(keys.contains(&key.to_string()), "{key} in {keys:?}");
    }

    // With a field for it, the extension is kept, and nothing was dropped.
    let p = project("phone_ext = { from = \"phone\", transform = \"phone_extension\" }\n");
    assert!(cutover(p.path(), &["run"], &[]).status.success());
    let ext = |name: &str| -> Option<String> {
        p.dest().query_row("SELECT phone_ext FROM people WHERE name = ?1", [name], |r| r.get(0)).expect("row")
    };
    assert_eq!((ext("Ann"), ext("Bob"), ext("Cy")), (Some("123".into()), None, Some("7".into())));
    let keys = common::reconcile_keys(p.path(), &[]);
    assert!(!keys.contains(&"people/warning/dropped_extension".to_string()), "{keys:?}");
    assert!(keys.contains(&"people/warning/ambiguous_date".to_string()), "{keys:?}");

    // A project that says which order its export writes has decided: no warning.
    let p = project("phone_ext = { from = \"phone\", transform = \"phone_extension\" }\n");
    let toml = std::fs::read_to_string(p.file()).expect("toml").replacen("[source]", "day_first = false\n[source]", 1);
    std::fs::write(p.file(), toml).expect("toml");
    assert!(cutover(p.path(), &["run"], &[]).status.success());
    let keys = common::reconcile_keys(p.path(), &[]);
    assert!(!keys.iter().any(|k| k.contains("/warning/")), "{keys:?}");
}

/// `currency_to`: the currency an amount names goes to a field of its own; a currency column
/// that says another currency than the amount holds the record instead of writing either.
#[test]
fn an_amounts_currency_goes_to_its_field_and_a_contradiction_is_held() {
    let project = |currency: &str| {
        let fields = format!(
            "[destination.types]\n\"deals.amount\" = \"decimal\"\n[objects.deals]\nexclude = [{}]\n\
             [objects.deals.fields]\ntitle = {{ from = \"title\" }}\n\
             amount = {{ from = \"value\", currency_to = \"currency_code\" }}\n{currency}",
            if currency.is_empty() { "\"currency\"" } else { "" }
        );
        let csv = "id,title,value,currency\n1,Dollars,\"$12,345.00\",\n2,Euros,EUR 5,\n3,Comma,\"1.234,50 €\",EUR\n\
                   4,Plain,42,\n5,Clash,€5,USD\n";
        TestProject::new(
            &csv_to_sqlite("currency", &fields),
            &[("deals", csv)],
            "CREATE TABLE deals (id INTEGER PRIMARY KEY, title TEXT, amount TEXT, currency_code TEXT);",
        )
    };
    let written = |p: &TestProject| -> Vec<(String, String, Option<String>)> {
        let d = p.dest();
        let mut stmt = d.prepare("SELECT title, amount, currency_code FROM deals ORDER BY title").expect("q");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).expect("rows").map(|r| r.expect("row")).collect()
    };
    // Without a currency column: the amount says it.
    let p = project("");
    let out = cutover(p.path(), &["run"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = written(&p);
    assert!(rows.contains(&("Dollars".into(), "12345.00".into(), Some("USD".into()))), "{rows:?}");
    assert!(rows.contains(&("Euros".into(), "5".into(), Some("EUR".into()))), "{rows:?}");
    assert!(rows.contains(&("Comma".into(), "1234.50".into(), Some("EUR".into()))), "{rows:?}");
    assert!(rows.contains(&("Plain".into(), "42".into(), None)), "no currency named: {rows:?}");
    // With one: it fills nothing it has, agrees, or the record waits.
    let p = project("currency_code = { from = \"currency\" }\n");
    assert!(cutover(p.path(), &["run"], &[]).status.success());
    let rows = written(&p);
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(!rows.iter().any(|r| r.0 == "Clash"), "{rows:?}");
    let shown = text(&cutover(p.path(), &["queue", "show", "1"], &[]));
    assert!(shown.contains("'€5' is an amount in EUR, but currency_code says USD"), "{shown}");
    // currency_to on a field not read as an amount, or naming no field, is a check error.
    let bad = TestProject::new(
        &csv_to_sqlite(
            "currency",
            "[objects.deals.fields]\ntitle = { from = \"title\", currency_to = \"nope\" }\namount = { from = \"value\" }\n\
             currency_code = { from = \"currency\" }\n",
        ),
        &[("deals", "id,title,value,currency\n1,a,5,\n")],
        "CREATE TABLE deals (id INTEGER PRIMARY KEY, title TEXT, amount TEXT, currency_code TEXT);",
    );
    let said = text(&cutover(bad.path(), &["check"], &[]));
    assert!(said.contains("objects.deals.fields.title.currency_to: destination 'deals' has no field 'nope'"), "{said}");
    assert!(said.contains("'title' is not read as an amount"), "{said}");
}

/// A default is read like a value of its field: a constant owner given by email is written as
/// that user's id, a default date in ISO form, a default stage through its translation.
#[test]
fn a_default_goes_through_the_fields_transforms_owner_and_translation() {
    let fields = "[destination.owners]\ntable = \"users\"\nid = \"id\"\nname = \"name\"\nemail = \"email\"\n\
                  [translations.stage]\n\"Won\" = \"closedwon\"\n\"Open\" = \"open\"\n\
                  [objects.deals.fields]\ntitle = { from = \"title\" }\n\
                  owner_id = { from = \"owner\", transform = \"owner\", default = \"Sam@Example.com\" }\n\
                  closed_on = { from = \"closed\", transform = \"date\", default = \"12/31/2024\" }\n\
                  stage = { from = \"stage\", translate = \"stage\", default = \"Open\" }\n";
    let csv = "id,title,owner,closed,stage\n1,With,Ann,2024-01-02,Won\n2,Without,,,\n";
    let p = TestProject::new(
        &csv_to_sqlite("defaults", fields),
        &[("deals", csv)],
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT);
         INSERT INTO users VALUES (7, 'Ann', 'ann@example.com'), (9, 'Sam', 'sam@example.com');
         CREATE TABLE deals (id INTEGER PRIMARY KEY, title TEXT, owner_id TEXT, closed_on TEXT, stage TEXT);",
    );
    let out = cutover(p.path(), &["run"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let row = |title: &str| -> (String, String, String) {
        p.dest()
            .query_row("SELECT owner_id, closed_on, stage FROM deals WHERE title = ?1", [title], |r| {
                Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap_or_else(|e| panic!("{title}: {e}"))
    };
    assert_eq!(row("With"), ("7".into(), "2024-01-02".into(), "closedwon".into()));
    assert_eq!(row("Without"), ("9".into(), "2024-12-31".into(), "open".into()), "defaults read as values");
}

/// `where` keeps rows out of scope without losing them: each ends skipped with the filter named,
/// so every physical record still has its outcome; a filter naming no source field is refused.
#[test]
fn a_row_filter_skips_what_is_out_of_scope_and_says_so() {
    let project = |filter: &str| {
        let fields = format!(
            "[objects.people]\nwhere = \"{filter}\"\n[objects.people.fields]\nname = {{ from = \"name\" }}\n\
             status = {{ from = \"status\" }}\nregion = {{ from = \"region\" }}\n"
        );
        let csv =
            "id,name,status,region\n1,Ann,active,EU\n2,Bob,inactive,EU\n3,Cy, active ,US\n4,Di,,EU\n5,Ed,active,\n";
        TestProject::new(
            &csv_to_sqlite("scope", &fields),
            &[("people", csv)],
            "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, status TEXT, region TEXT);",
        )
    };
    let p = project("status = 'active' and region in ('EU', 'US')");
    let out = cutover(p.path(), &["run"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let names: Vec<String> = {
        let d = p.dest();
        let mut stmt = d.prepare("SELECT name FROM people ORDER BY name").expect("q");
        stmt.query_map([], |r| r.get(0)).expect("rows").map(|r| r.expect("row")).collect()
    };
    assert_eq!(names, ["Ann", "Cy"]);
    let skipped: Vec<(String, String)> = {
        let s = p.project().store().expect("store");
        let mut stmt = s
            .conn()
            .prepare("SELECT source_id, detail FROM audit WHERE outcome = 'skipped' ORDER BY source_id")
            .expect("q");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("rows").map(|r| r.expect("row")).collect()
    };
    assert_eq!(skipped.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), ["2", "4", "5"]);
    assert!(skipped[0].1.contains("outside the object's where: status = 'active'"), "{skipped:?}");
    assert!(text(&out).contains("accounted for: yes"), "{}", text(&out));
    // A row that comes into scope later is new to a delta run.
    let csv = std::fs::read_to_string(p.path().join("source/people.csv")).expect("csv");
    std::fs::write(p.path().join("source/people.csv"), csv.replace("Bob,inactive", "Bob,active")).expect("write");
    let out = cutover(p.path(), &["run", "--delta", "create-new"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(p.count("SELECT COUNT(*) FROM people WHERE name = 'Bob'"), 1, "{}", text(&out));
    // Mistakes are check errors with the key.
    let said = text(&cutover(project("staus = 'active'").path(), &["check"], &[]));
    assert!(said.contains("objects.people.where: the source has no field 'staus'"), "{said}");
    let said = text(&cutover(project("status = active").path(), &["check"], &[]));
    assert!(said.contains("objects.people.where: expected a value in single quotes"), "{said}");
}

const PARTIES: &str = r#"
[objects.people]
source = "parties"
exclude = ["work_email", "home_email"]
[objects.people.fields]
name = { from = "name" }

[objects.emails]
source = "parties"
destination = "mechanisms"
exclude = ["name"]
repeat.work = { address = "work_email", label = { value = "Work" } }
repeat.home = { address = "home_email", label = { value = "Home" } }
[objects.emails.fields]
person_id = { from = "id", parent = "people" }
value = { from = "address", transform = "email" }
label = { from = "label" }
kind = { default = "email" }
"#;

const MECHANISMS: &str = "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);
     CREATE TABLE mechanisms (id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL REFERENCES people(id),
                              kind TEXT NOT NULL, label TEXT NOT NULL, value TEXT NOT NULL);";

fn mechanisms(p: &TestProject) -> Vec<String> {
    let d = p.dest();
    let mut stmt = d
        .prepare(
            "SELECT p.name || ' ' || m.label || ' ' || m.value FROM mechanisms m JOIN people p ON p.id = m.person_id
             ORDER BY 1",
        )
        .expect("q");
    stmt.query_map([], |r| r.get(0)).expect("rows").map(|r| r.expect("row")).collect()
}

/// A party's emails into one contact-mechanism table: one row per `repeat` entry that has a
/// value, none for a blank one (spaces are blank), each row linked to its person; a bad value
/// holds only its own row; every source record has one outcome per entry, and a delta adds
/// the rows of values filled in since — and says which rows stay although their value is gone.
#[test]
fn one_source_record_becomes_several_child_rows_without_blank_ones() {
    let csv = "id,name,work_email,home_email\n\
               P1,\"Lee, Ann\",ann@work.example,ANN@home.example\n\
               P2,Bo,,bo@home.example\n\
               P3,Cy,,\n\
               P4,Di,not-an-email,di@home.example\n\
               P5,Ed,\"  \",ed@home.example\n";
    let p = TestProject::new(&csv_to_sqlite("parties", PARTIES), &[("parties", csv)], MECHANISMS);
    let out = cutover(p.path(), &["check"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let out = cutover(p.path(), &["run"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("accounted for: yes"), "{said}");
    assert_eq!(
        mechanisms(&p),
        [
            "Bo Home bo@home.example",
            "Di Home di@home.example",
            "Ed Home ed@home.example",
            "Lee, Ann Home ann@home.example",
            "Lee, Ann Work ann@work.example",
        ]
    );
    assert_eq!(p.count("SELECT COUNT(*) FROM mechanisms WHERE kind != 'email' OR trim(value) = ''"), 0);
    let store = p.project().store().expect("store");
    let outcomes = |object: &str| -> Vec<(String, String)> {
        let mut stmt = store
            .conn()
            .prepare("SELECT source_id, outcome FROM audit WHERE object = ?1 AND run_id = (SELECT MAX(id) FROM runs) ORDER BY source_id")
            .expect("q");
        stmt.query_map([object], |r| Ok((r.get(0)?, r.get(1)?))).expect("rows").map(|r| r.expect("row")).collect()
    };
    let work = outcomes("emails.work");
    assert_eq!(
        work.iter().map(|(s, o)| format!("{s} {o}")).collect::<Vec<_>>(),
        ["P1 created", "P2 skipped", "P3 skipped", "P4 queued", "P5 skipped"]
    );
    assert_eq!(outcomes("emails.home").iter().filter(|(_, o)| o == "created").count(), 4);
    let why: String = store
        .conn()
        .query_row("SELECT detail FROM audit WHERE object = 'emails.work' AND source_id = 'P3'", [], |r| r.get(0))
        .expect("detail");
    assert_eq!(why, "no row for the repeat entry 'work': work_email is blank");

    // The held row is worked from the queue like any other, by its object's name.
    let out = cutover(p.path(), &["queue", "list", "--object", "emails"], &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out)
            .contains("'emails' is made into several objects by its repeat: name one of emails.work, emails.home"),
        "{}",
        text(&out)
    );
    let out = cutover(p.path(), &["queue", "list", "--object", "emials.work"], &[]);
    assert!(
        text(&out).contains("the project has no object 'emials.work' (its objects: people, emails.work, emails.home)"),
        "{}",
        text(&out)
    );
    let out = cutover(p.path(), &["queue", "fix", "--object", "emails.work", "value=di@work.example"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let out = cutover(p.path(), &["queue", "reprocess", "--object", "emails.work"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(mechanisms(&p).contains(&"Di Work di@work.example".to_string()));
    let out = cutover(p.path(), &["reconcile"], &[]);
    assert!(text(&out).contains("Verdict: BALANCED"), "{}", text(&out));

    // Later: Bo has a work email now, Ann's home email is gone.
    let later = csv.replace("P2,Bo,,", "P2,Bo,bo@work.example,").replace(",ANN@home.example", ",");
    std::fs::write(p.path().join("source/parties.csv"), later).expect("write");
    let out = cutover(p.path(), &["run", "--delta", "both"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = mechanisms(&p);
    assert!(rows.contains(&"Bo Work bo@work.example".to_string()), "{rows:?}");
    assert_eq!(rows.len(), 7, "{rows:?}");
    let why: String = store
        .conn()
        .query_row(
            "SELECT detail FROM audit WHERE object = 'emails.home' AND source_id = 'P1' ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("detail");
    assert!(why.contains("home_email is blank; the record an earlier run wrote for it"), "{why}");
}

/// A repeat's mistakes are `check` errors with their key: an entry missing an alias the fields
/// read, an alias nothing reads, a parent naming the repeated object instead of one entry.
#[test]
fn a_repeat_mistake_is_a_check_error_with_its_line() {
    let broken = PARTIES
        .replace("repeat.home = { address = \"home_email\"", "repeat.home = { adress = \"home_email\"")
        .replace("kind = { default = \"email\" }", "kind = { default = \"email\" }\n[objects.notes]\nsource = \"parties\"\nexclude = [\"name\", \"work_email\", \"home_email\"]\n[objects.notes.fields]\nabout = { from = \"id\", parent = \"emails\" }\n");
    let p = TestProject::new(
        &csv_to_sqlite("parties", &broken),
        &[("parties", "id,name,work_email,home_email\n")],
        MECHANISMS,
    );
    let out = cutover(p.path(), &["check"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    for wanted in [
        "objects.emails.repeat.home.adress: no field of [objects.emails.fields] reads 'adress'",
        "objects.emails.fields.value.from: the entry 'home' has no 'address' (other entries do)",
        "objects.notes.fields.about.parent: parent 'emails' is made into several objects by its repeat: name one of emails.work, emails.home",
    ] {
        assert!(said.contains(wanted), "wanted {wanted} in\n{said}");
    }
}

mod repeat_property {
    use super::{MECHANISMS, PARTIES, mechanisms};
    use crate::common::{TestProject, csv_to_sqlite, cutover, text};
    use proptest::prelude::*;

    /// An email cell as exports have them: blank, spaces, valid in any case with spaces around,
    /// junk — with what a row for it would hold (`None`: no row or a held one).
    fn email() -> impl Strategy<Value = (String, Option<String>, bool)> {
        prop_oneof![
            Just((String::new(), None, false)),
            Just(("   ".to_string(), None, false)),
            "[a-z]{1,4}".prop_map(|l| (format!("{l}@x.example"), Some(format!("{l}@x.example")), false)),
            "[a-z]{1,4}".prop_map(|l| (
                format!(" {}@X.Example ", l.to_uppercase()),
                Some(format!("{l}@x.example")),
                false
            )),
            prop_oneof![Just("n/a"), Just("none@"), Just("a b@c")].prop_map(|j| (j.to_string(), None, true)),
        ]
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof!["[A-Za-z]{1,6}", "[A-Za-z]{1,4}, [A-Za-z]{1,4}", "[a-z]{1,3}\n[a-z]{1,3}", "[a-z]{1,3}\"[a-z]{1,3}"]
    }

    fn quoted(s: &str) -> String {
        format!("\"{}\"", s.replace('"', "\"\""))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Whatever the cells hold, the destination has exactly one row per valid value of each
        /// entry, linked to its own person, and no row for a blank one; junk is held, never
        /// written; every source record has one outcome per entry object.
        #[test]
        fn each_non_blank_value_makes_exactly_its_own_row(rows in proptest::collection::vec((name(), email(), email()), 1..10)) {
            let mut csv = "id,name,work_email,home_email\n".to_string();
            let mut expected = Vec::new();
            let mut junk = 0;
            for (i, (n, (work, w, wj), (home, h, hj))) in rows.iter().enumerate() {
                let name = format!("{n}{i}");
                csv.push_str(&format!("P{i},{},{},{}\n", quoted(&name), quoted(work), quoted(home)));
                for (label, v) in [("Work", w), ("Home", h)] {
                    if let Some(v) = v {
                        expected.push(format!("{name} {label} {v}"));
                    }
                }
                junk += usize::from(*wj) + usize::from(*hj);
            }
            expected.sort();
            let p = TestProject::new(&csv_to_sqlite("parties", PARTIES), &[("parties", &csv)], MECHANISMS);
            let out = cutover(p.path(), &["run"], &[]);
            prop_assert!(out.status.success(), "{}", text(&out));
            let mut got = mechanisms(&p);
            got.sort();
            prop_assert_eq!(got, expected);
            let held = p.project().store().expect("store").conn()
                .query_row("SELECT COUNT(*) FROM queue WHERE status = 'open'", [], |r| r.get::<_, i64>(0)).expect("q");
            prop_assert_eq!(held as usize, junk);
            let said = String::from_utf8_lossy(&out.stdout).to_string();
            for object in ["emails.work", "emails.home", "people"] {
                let line = said.lines().find(|l| l.trim_start().starts_with(&format!("{object} "))).expect("row");
                let n: Vec<u64> = line.split_whitespace().skip(1).map(|x| x.parse().expect("n")).collect();
                prop_assert_eq!((n[0] as usize, n[1] as usize), (rows.len(), rows.len()), "{}", line);
                prop_assert_eq!(n[2..].iter().sum::<u64>(), n[1], "one outcome per record read: {}", line);
            }
        }
    }
}

/// `truncate = true`: a value longer than the field takes is cut to its length (counted in
/// characters, not bytes) and written with a `truncated` warning that reconcile lists; without
/// it the record is held as `length`; a field with no limit to cut to is a `check` error.
#[test]
fn a_value_too_long_is_cut_with_a_warning_only_where_the_field_says_so() {
    let project = |rule: &str| {
        let fields =
            format!("[objects.people.fields]\nname = {{ from = \"name\" }}\nbio = {{ from = \"bio\"{rule} }}\n");
        let csv = "id,name,bio\n1,Ann,Ébène ☕ café!\n2,Bob,exactly 10\n3,Cy,\"line one\nline two\"\n";
        TestProject::new(
            &csv_to_sqlite("cut", &fields),
            &[("people", csv)],
            "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, bio TEXT);",
        )
    };
    let p = project(", max_length = 10, truncate = true");
    let out = cutover(p.path(), &["run"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let bio = |name: &str| -> String {
        p.dest().query_row("SELECT bio FROM people WHERE name = ?1", [name], |r| r.get(0)).expect("row")
    };
    assert_eq!((bio("Ann"), bio("Bob"), bio("Cy")), ("Ébène ☕ ca".into(), "exactly 10".into(), "line one\nl".into()));
    let warned: String = p
        .project()
        .store()
        .expect("store")
        .conn()
        .query_row("SELECT coalesce(warnings, '') FROM audit WHERE source_id = '1'", [], |r| r.get(0))
        .expect("audited");
    assert!(
        warned.contains("truncated") && warned.contains("13 characters, cut to 10 (the field takes 10)"),
        "{warned}"
    );
    let keys = common::reconcile_keys(p.path(), &[]);
    assert!(keys.contains(&"people/warning/truncated".to_string()), "{keys:?}");

    let p = project(", max_length = 10");
    assert!(cutover(p.path(), &["run"], &[]).status.success());
    assert_eq!(p.count("SELECT COUNT(*) FROM people"), 1, "held as length, not cut");

    for (rule, says) in [
        (", max_length = 0, truncate = true", "objects.people.fields.bio.max_length: max_length must be at least 1"),
        (
            ", max_length = 2, default = \"abc\"",
            "objects.people.fields.bio.default: 'abc' holds 3 characters; the field takes at most 2",
        ),
    ] {
        let out = cutover(project(rule).path(), &["check"], &[]);
        assert_eq!(out.status.code(), Some(2), "{rule}: {}", text(&out));
        assert!(text(&out).contains(says), "{rule}: {}", text(&out));
    }
    let p = project(", truncate = true");
    let out = cutover(p.path(), &["check"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("objects.people.fields.bio.truncate: 'people.bio' takes values of any length"),
        "{}",
        text(&out)
    );
}
