//! A project file is checked whole before any record moves: every problem is reported with its
//! key path and line, and nothing is written.

mod common;
use common::TestProject;
use cutover::config::ConfigError;

const DEST: &str =
    "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, phone TEXT, team TEXT NOT NULL);
                    CREATE TABLE teams (id INTEGER PRIMARY KEY, title TEXT);";
const CSV: &[(&str, &str)] =
    &[("people", "id,name,email,phone,fax\n1,Ann,a@x.com,,\n"), ("teams", "id,title\n1,Red\n")];

fn problems(toml: &str) -> ConfigError {
    let p = TestProject::new(toml, CSV, DEST);
    match cutover::config::load(&p.file()) {
        Err(e) => e,
        Ok(loaded) => {
            // Static checks passed; the schema checks run when the engine prepares.
            let project =
                cutover::project::Project { config: std::sync::Arc::new(loaded), store_path: p.path().join("s.db") };
            let engine = project.engine().expect("engine");
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("rt");
            let err = rt.block_on(engine.prepare()).err().expect("schema problems");
            err.downcast::<ConfigError>().expect("a ConfigError")
        }
    }
}

fn has(e: &ConfigError, key: &str, words: &str, line: Option<usize>) {
    let found = e.problems.iter().find(|p| p.key == key && p.message.contains(words));
    let p = found.unwrap_or_else(|| panic!("no problem at {key} saying '{words}' in:\n{e}"));
    if line.is_some() {
        assert_eq!(p.line, line, "line of {key}");
    }
}

#[test]
fn every_static_problem_is_reported_at_once() {
    let e = problems(
        r#"[project]
name = "x"
batch_sise = 10
default_region = "Narnia"

[source]
kind = "csv"
path = "source"

[destination]
kind = "oracle"
path = "destination.db"

[objects.people]
merge = "newest_wins"
match = ["mail"]

[objects.people.fields]
name = { from = "name", transform = ["trim", "titlecase"] }
email = { from = "email", translate = "nope" }
team = { from = "team", parent = "teams" }
phone = {}

[objects.teams.fields]
title = { from = "title", parent = "people" }
"#,
    );
    has(&e, "project.batch_sise", "unknown key", Some(3));
    has(&e, "project.default_region", "not a country code", Some(4));
    has(&e, "destination.kind", "unknown destination kind 'oracle'", Some(11));
    has(&e, "objects.people.merge", "unknown merge rule 'newest_wins'", Some(15));
    has(&e, "objects.people.match", "match key 'mail'", Some(16));
    has(&e, "objects.people.fields.name.transform", "unknown transform 'titlecase'", Some(19));
    has(&e, "objects.people.fields.email.translate", "no translation table 'nope'", Some(20));
    has(&e, "objects.people.fields.phone", "no source", Some(22));
    has(&e, "objects", "cycle", None);
    assert_eq!(e.problems.len(), 9, "{e}");
    let shown = e.to_string();
    assert!(shown.contains("9 problems in the project file; nothing was run"), "{shown}");
    assert!(shown.contains("cutover.toml:19: objects.people.fields.name.transform"), "{shown}");
}

#[test]
fn schema_problems_name_fields_of_both_systems() {
    let e = problems(
        r#"[project]
name = "x"

[source]
kind = "csv"
path = "source"

[destination]
kind = "sqlite"
path = "destination.db"

[objects.people]
exclude = ["nickname"]

[objects.people.fields]
name = { from = "name" }
email = { from = "e_mail" }
mobile = { from = "phone" }

[objects.teams]
source = "squads"

[objects.teams.fields]
title = { from = "title" }
"#,
    );
    has(&e, "objects.people.fields.email", "unknown source field 'e_mail'", Some(17));
    has(&e, "objects.people.fields.mobile", "destination 'people' has no field 'mobile'", Some(18));
    has(&e, "objects.people.fields", "'people.team' is required but nothing maps to it", None);
    has(&e, "objects.people.exclude", "'fax' of 'people' is neither mapped nor excluded", None);
    has(&e, "objects.people.exclude", "excluded field 'nickname' does not exist", None);
    has(&e, "objects.teams.source", "squads.csv cannot be opened", Some(21));
    has(&e, "objects.people.exclude", "'email' of 'people' is neither mapped nor excluded", Some(13));
    assert_eq!(e.problems.len(), 7, "{e}");
}

#[test]
fn a_syntax_error_names_its_line() {
    let e = problems("[project]\nname = \"x\"\nbatch_size = = 3\n");
    assert_eq!(e.problems.len(), 1);
    assert_eq!(e.problems[0].line, Some(3), "{e}");
}

#[test]
fn the_documented_example_is_a_valid_project_file() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    match cutover::config::load(&path) {
        Ok(loaded) => assert_eq!(loaded.order, ["companies", "contacts", "deals"]),
        Err(e) => panic!("config.example.toml does not pass its own checks:\n{e}"),
    }
}

#[test]
fn database_connections_need_their_url_variable_and_queries_need_a_database() {
    let e = problems(
        r#"[project]
name = "x"

[source]
kind = "csv"
path = "source"

[source.queries]
people = "SELECT * FROM people"

[destination]
kind = "mysql"

[objects.people.fields]
name = { from = "name" }
"#,
    );
    has(&e, "source.queries.people", "a csv source has no SQL queries", Some(9));
    assert!(cutover::config::excludes(&["hs_*".into()], "hs_lastmodifieddate"));
    assert!(!cutover::config::excludes(&["hs_*".into(), "email".into()], "phone"));
    has(&e, "destination.url_env", "a mysql destination needs url_env", None);
}

#[test]
fn an_exclude_pattern_covers_every_field_with_its_prefix_and_must_match_one() {
    let e = problems(
        r#"[project]
name = "x"

[source]
kind = "csv"
path = "source"

[destination]
kind = "sqlite"
path = "destination.db"

[objects.people]
exclude = ["ph*", "fa*", "zz*"]

[objects.people.fields]
name = { from = "name" }
email = { from = "email" }
team = { default = "1" }

[objects.teams.fields]
title = { from = "title" }
"#,
    );
    has(&e, "objects.people.exclude", "excluded field 'zz*' does not exist", None);
    assert!(!e.to_string().contains("'phone' of"), "ph* covers phone: {e}");
    assert!(!e.to_string().contains("'fax' of"), "fa* covers fax: {e}");
}

#[test]
fn an_object_reading_outside_the_source_folder_is_refused_unless_the_project_says_so() {
    let toml = |allow: &str| {
        format!(
            "[project]\nname = \"x\"\n[source]\nkind = \"csv\"\npath = \"source\"\n{allow}\
             [destination]\nkind = \"sqlite\"\npath = \"destination.db\"\n\
             [objects.teams]\nsource = \"../../etc/teams\"\n[objects.teams.fields]\ntitle = {{ from = \"title\" }}\n"
        )
    };
    let e = problems(&toml(""));
    has(&e, "objects.teams.source", "'../../etc/teams' leaves the source folder", Some(10));
    let p = TestProject::new(&toml("allow_outside = true\n"), CSV, DEST);
    let loaded = cutover::config::load(&p.file());
    assert!(
        !loaded.as_ref().err().is_some_and(|e| e.problems.iter().any(|p| p.key == "objects.teams.source")),
        "allowed"
    );
}

#[test]
fn an_owner_field_without_the_destinations_users_is_a_check_error_not_a_full_queue() {
    let e = problems(
        "[project]\nname = \"x\"\n[source]\nkind = \"csv\"\npath = \"source\"\n\
         [destination]\nkind = \"sqlite\"\npath = \"destination.db\"\n\
         [objects.teams]\n[objects.teams.fields]\ntitle = { from = \"title\", transform = \"owner\" }\n",
    );
    has(&e, "objects.teams.fields.title", "names no owners table", None);
}
