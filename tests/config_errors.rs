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
    has(&e, "source.queries", "a csv source takes no queries", Some(8));
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

/// The demo's project file with one mistake a person makes, and what `check` must say: the key,
/// words of the message, and that the message carries the key's line. Through the binary; `check`
/// leaves no state file behind.
#[test]
fn a_catalogue_of_bad_project_files_each_named_by_its_key_and_line() {
    type Variant = (&'static str, &'static [(&'static str, &'static str)], &'static str, &'static str);
    const BAD: &[Variant] = &[
        (
            "batch size as text",
            &[("batch_size = 500", "batch_size = \"x\"")],
            "project.batch_size",
            "expected a whole number, found \"x\"",
        ),
        ("negative batch size", &[("batch_size = 500", "batch_size = -5")], "project.batch_size", "found -5"),
        ("batch size zero", &[("batch_size = 500", "batch_size = 0")], "project.batch_size", "between 1 and 100000"),
        (
            "halt rate as text",
            &[("halt_error_rate = 0.25", "halt_error_rate = \"lots\"")],
            "project.halt_error_rate",
            "expected a number",
        ),
        (
            "halt rate above 1",
            &[("halt_error_rate = 0.25", "halt_error_rate = 5")],
            "project.halt_error_rate",
            "at most 1",
        ),
        (
            "day_first as text",
            &[("day_first = false", "day_first = \"yes\"")],
            "project.day_first",
            "expected true or false",
        ),
        (
            "region not a country",
            &[("default_region = \"US\"", "default_region = \"USA\"")],
            "project.default_region",
            "not a country code",
        ),
        (
            "a key twice",
            &[("batch_size = 500", "batch_size = 500\nbatch_size = 600")],
            "(syntax)",
            "duplicate key `batch_size`",
        ),
        ("not TOML", &[("batch_size = 500", "batch_size = = 500")], "(syntax)", "expected"),
        ("unknown section", &[("[owners.aliases]", "[ownrs.aliases]")], "ownrs", "unknown key"),
        ("project section misspelt", &[("[project]", "[projet]")], "project", "needs a [project] table"),
        (
            "unknown source kind",
            &[("kind = \"csv\"", "kind = \"excel\"")],
            "source.kind",
            "unknown source kind 'excel'",
        ),
        (
            "schema on a csv source",
            &[("path = \"source\" ", "path = \"source\"\nschema = \"public\" ")],
            "source.schema",
            "a csv source takes no schema",
        ),
        (
            "token_env on a csv source",
            &[("path = \"source\" ", "path = \"source\"\ntoken_env = \"T\" ")],
            "source.token_env",
            "a csv source takes no token_env",
        ),
        (
            "queries on a csv source",
            &[("path = \"source\" ", "path = \"source\"\nqueries = { persons = \"SELECT 1\" } ")],
            "source.queries",
            "takes no queries",
        ),
        (
            "url_env on a sqlite destination",
            &[("path = \"destination.db\"", "path = \"destination.db\"\nurl_env = \"U\"")],
            "destination.url_env",
            "a sqlite destination takes no url_env",
        ),
        (
            "rate_limit on a sqlite destination",
            &[("path = \"destination.db\"", "path = \"destination.db\"\nrate_limit = 5")],
            "destination.rate_limit",
            "takes no rate_limit",
        ),
        ("source folder missing", &[("path = \"source\" ", "path = \"sourcez\" ")], "source.path", "does not exist"),
        (
            "destination file missing",
            &[("path = \"destination.db\"", "path = \"nope.db\"")],
            "destination.path",
            "does not exist",
        ),
        (
            "owners table missing",
            &[("owners = { table = \"owners\"", "owners = { table = \"ownerz\"")],
            "destination.owners",
            "ownerz",
        ),
        (
            "owners name not a column",
            &[("name = [\"first_name\", \"last_name\"]", "name = 5")],
            "destination.owners.name",
            "a name in quotes or a list",
        ),
        (
            "URL variable not set",
            &[(
                "kind = \"sqlite\"\npath = \"destination.db\"",
                "kind = \"postgres\"\nurl_env = \"CUTOVER_NOT_SET_URL\"",
            )],
            "destination.url_env",
            "CUTOVER_NOT_SET_URL, which is not set",
        ),
        (
            "types names a field nobody maps",
            &[("\"contacts.email\" = \"email\"", "\"contacts.emial\" = \"email\"")],
            "destination.types.\"contacts.emial\"",
            "no object maps a field 'emial'",
        ),
        (
            "types names an object nobody writes",
            &[("\"contacts.email\" = \"email\"", "\"contcts.email\" = \"email\"")],
            "destination.types.\"contcts.email\"",
            "no object writes to 'contcts'",
        ),
        (
            "unknown type",
            &[("\"deals.amount\" = \"decimal\"", "\"deals.amount\" = \"money\"")],
            "destination.types.\"deals.amount\"",
            "unknown type 'money'",
        ),
        (
            "picklist names a field nobody maps",
            &[("\"deals.dealstage\" = {", "\"deals.dealstag\" = {")],
            "destination.picklists.\"deals.dealstag\"",
            "no object maps a field 'dealstag'",
        ),
        (
            "translation to a blank",
            &[("\"Won\" = \"closedwon\"", "\"Won\" = \"\"")],
            "translations.deal_stage.\"Won\"",
            "blank value",
        ),
        (
            "unknown transform",
            &[("transform = \"trim\"", "transform = \"trimm\"")],
            "objects.companies.fields.name.transform",
            "unknown transform 'trimm'",
        ),
        (
            "unknown merge rule",
            &[("merge = \"fill_blanks\"", "merge = \"fillblanks\"")],
            "objects.companies.merge",
            "unknown merge rule",
        ),
        (
            "match key not mapped",
            &[("match = [\"domain\"]", "match = [\"domian\"]")],
            "objects.companies.match",
            "'domian' is not a mapped",
        ),
        (
            "match as one string",
            &[("match = [\"domain\"]", "match = \"domain\"")],
            "objects.companies.match",
            "expected a list",
        ),
        (
            "field mapping as a string",
            &[("city = { from = \"address_locality\" }", "city = \"address_locality\"")],
            "objects.companies.fields.city",
            "expected a field mapping",
        ),
        (
            "misspelt key of a mapping",
            &[("city = { from = \"address_locality\" }", "city = { form = \"address_locality\" }")],
            "objects.companies.fields.city.form",
            "unknown key",
        ),
        (
            "translation table unknown",
            &[("translate = \"deal_stage\"", "translate = \"deal_stages\"")],
            "objects.deals.fields.dealstage.translate",
            "no translation table 'deal_stages'",
        ),
        (
            "parent unknown",
            &[("parent = \"companies\"", "parent = \"company\"")],
            "objects.contacts.fields.associatedcompanyid.parent",
            "not an object",
        ),
        (
            "source field unknown",
            &[("from = \"website\"", "from = \"webiste\"")],
            "objects.companies.fields.domain",
            "unknown source field 'webiste'",
        ),
        (
            "destination field unknown",
            &[("city = { from", "cty = { from")],
            "objects.companies.fields.cty",
            "has no field 'cty'",
        ),
        (
            "invalid policy unknown",
            &[("phone = { from = \"phone\"", "phone = { invalid = \"ignore\", from = \"phone\"")],
            "objects.contacts.fields.phone.invalid",
            "not one of warn, queue, blank",
        ),
        (
            "outside the source folder",
            &[("source = \"organizations\"", "source = \"../organizations\"")],
            "objects.companies.source",
            "leaves the source folder",
        ),
        (
            "a default owner nobody is",
            &[(
                "hubspot_owner_id = { from = \"owner_name\", transform = \"owner\" }",
                "hubspot_owner_id = { from = \"owner_name\", transform = \"owner\", default = \"nobody@nowhere.example\" }",
            )],
            "objects.companies.fields.hubspot_owner_id.default",
            "nobody@nowhere.example",
        ),
        (
            "a default date that is no date",
            &[(
                "createdate = { from = \"add_time\", transform = \"datetime\" }",
                "createdate = { from = \"add_time\", transform = \"datetime\", default = \"soon\" }",
            )],
            "objects.companies.fields.createdate.default",
            "'soon' is not a date",
        ),
        (
            "owners id column misspelt",
            &[("id = \"id\", name = [", "id = \"ident\", name = [")],
            "destination.owners",
            "ident",
        ),
        (
            "picklist column misspelt",
            &[(
                "\"deals.dealstage\" = { table = \"pipeline_stages\", column = \"id\" }",
                "\"deals.dealstage\" = { table = \"pipeline_stages\", column = \"nosuchcol\" }",
            )],
            "destination.picklists.\"deals.dealstage\"",
            "nosuchcol",
        ),
        (
            "currency_to into a number field",
            &[("amount = { from = \"value\"", "amount = { currency_to = \"hubspot_owner_id\", from = \"value\"")],
            "objects.deals.fields.amount.currency_to",
            "holds numbers",
        ),
        // Several mistakes of different kinds: each is found in the one pass.
        (
            "a key twice hides nothing",
            &[("batch_size = 500", "batch_size = 500\nbatch_size = 600"), ("city = { from", "cty = { from")],
            "objects.companies.fields.cty",
            "has no field 'cty'",
        ),
        (
            "a picklist missing its column hides nothing",
            &[
                (
                    "\"deals.pipeline\" = { table = \"pipelines\", column = \"id\" }",
                    "\"deals.pipeline\" = { table = \"pipelines\" }",
                ),
                ("\"contacts.email\" = \"email\"", "\"contacts.emial\" = \"email\""),
            ],
            "destination.types.\"contacts.emial\"",
            "no object maps",
        ),
        (
            "a schema error hides no bad default",
            &[
                ("city = { from", "cty = { from"),
                (
                    "createdate = { from = \"add_time\", transform = \"datetime\" }",
                    "createdate = { from = \"add_time\", transform = \"datetime\", default = \"soon\" }",
                ),
            ],
            "objects.companies.fields.createdate.default",
            "'soon' is not a date",
        ),
        (
            "a type error and a schema error",
            &[("batch_size = 500", "batch_size = \"x\""), ("city = { from", "cty = { from")],
            "objects.companies.fields.cty",
            "has no field 'cty'",
        ),
        (
            "a rule and a schema error",
            &[("merge = \"fill_blanks\"", "merge = \"fillblanks\""), ("city = { from", "cty = { from")],
            "objects.companies.merge",
            "unknown merge rule",
        ),
    ];
    let base = tempfile::tempdir().expect("tempdir");
    cutover::demo::setup(&base.path().join("demo")).expect("demo");
    let demo = std::fs::read_to_string(base.path().join("demo/cutover.toml")).expect("toml");
    for (name, edits, key, words) in BAD {
        let dir = tempfile::tempdir().expect("tempdir");
        cutover::demo::setup(dir.path()).expect("demo");
        let mut toml = demo.clone();
        for (from, to) in *edits {
            assert!(toml.contains(from), "{name}: the demo has no {from:?}");
            toml = toml.replacen(from, to, 1);
        }
        std::fs::write(dir.path().join("cutover.toml"), &toml).expect("toml");
        let out = common::cutover(dir.path(), &["check"], &[]);
        let said = common::text(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: exit code\n{said}");
        let line = said.lines().find(|l| l.contains(&format!(": {key}: ")) && l.contains(words));
        let line = line.unwrap_or_else(|| panic!("{name}: no line naming {key} with {words:?} in\n{said}"));
        if *key != "project" {
            assert!(
                line.contains("cutover.toml:") && line.split(':').nth(1).is_some_and(|n| n.parse::<u32>().is_ok()),
                "{name}: no line number in {line:?}"
            );
        }
        assert!(!said.contains("panicked") && !said.contains("usize") && !said.contains("struct "), "{name}: {said}");
        assert!(!dir.path().join("cutover.state.db").exists(), "{name}: check left a state file");
    }
}
