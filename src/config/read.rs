//! Reads the project file piece by piece — each section, each object, each field mapping on its
//! own — so that one wrong value hides nothing else: every type error and every unknown key of
//! the file is found in one pass, each named by its key and told in the user's words
//! (`project.batch_size: expected a whole number, found "x"`), never in Rust's type names.

use super::{
    ConnectionConfig, FieldSpec, ObjectConfig, OwnersConfig, Problem, Problems, ProjectConfig, ProjectSection,
};
use indexmap::IndexMap;
use serde::de::DeserializeOwned;

/// The file's sections: what each holds.
const SECTIONS: [&str; 6] = ["project", "source", "destination", "owners", "translations", "objects"];

/// Parses the text into a [`ProjectConfig`]; `None` when a piece could not be read at all. Every
/// problem of every piece is in `problems`: a config that comes back with problems left out the
/// values that were wrong (good enough to check the rest against, never to run). `Err`: the file
/// is not TOML at all.
pub(super) fn read(text: &str, problems: &mut Problems<'_>) -> Result<Option<ProjectConfig>, Problem> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| syntax_problem(text, &e))?;
    for key in table.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            problems.add(key.clone(), "unknown key (check its spelling; see config.example.toml)");
        }
    }
    let mut section = |name: &str| table.remove(name);
    let project = required::<ProjectSection>(section("project"), "project", problems);
    let source = required::<ConnectionConfig>(section("source"), "source", problems);
    let destination = required::<ConnectionConfig>(section("destination"), "destination", problems);
    let owners = optional::<OwnersConfig>(section("owners"), "owners", problems);
    let translations =
        optional::<IndexMap<String, IndexMap<String, String>>>(section("translations"), "translations", problems);
    let objects = match section("objects") {
        None => {
            problems.add("objects", "no objects to migrate: add at least one [objects.NAME] table");
            None
        }
        Some(value) => objects(value, problems),
    };
    Ok(match (project, source, destination, owners, translations, objects) {
        (Some(project), Some(source), Some(destination), Some(owners), Some(translations), Some(objects)) => {
            Some(ProjectConfig { project, source, destination, owners, translations, objects })
        }
        _ => None,
    })
}

fn required<T: DeserializeOwned>(value: Option<toml::Value>, path: &str, problems: &mut Problems<'_>) -> Option<T> {
    match value {
        Some(value) => piece(value, path, problems),
        None => {
            problems.add(path, format!("missing: the file needs a [{path}] table (see config.example.toml)"));
            None
        }
    }
}

fn optional<T: DeserializeOwned + Default>(
    value: Option<toml::Value>,
    path: &str,
    problems: &mut Problems<'_>,
) -> Option<T> {
    match value {
        Some(value) => piece(value, path, problems),
        None => Some(T::default()),
    }
}

/// Each object read without its field mappings, then each mapping on its own.
fn objects(value: toml::Value, problems: &mut Problems<'_>) -> Option<IndexMap<String, ObjectConfig>> {
    let toml::Value::Table(table) = value else {
        problems.add("objects", "expected tables: [objects.NAME] for each object to migrate");
        return None;
    };
    let mut out = IndexMap::new();
    for (name, value) in table {
        let base = format!("objects.{}", quoted(&name));
        let toml::Value::Table(mut object) = value else {
            problems.add(base, format!("expected a table: [objects.{name}] with source, fields, …"));
            continue;
        };
        let fields = object.remove("fields");
        object.insert("fields".into(), toml::Value::Table(toml::Table::new()));
        let mut specs = IndexMap::new();
        match fields {
            None => {}
            Some(toml::Value::Table(fields)) => {
                for (field, spec) in fields {
                    // A mapping that cannot be read is left out (its problem is reported).
                    if let Some(spec) = piece::<FieldSpec>(spec, &format!("{base}.fields.{}", quoted(&field)), problems)
                    {
                        specs.insert(field, spec);
                    }
                }
            }
            Some(_) => {
                problems.add(format!("{base}.fields"), "expected a table: [objects.NAME.fields] of field = { … }");
            }
        }
        if let Some(mut config) = piece::<ObjectConfig>(toml::Value::Table(object), &base, problems) {
            config.fields = specs;
            out.insert(name, config);
        }
    }
    Some(out)
}

/// The file with the later line of each key given twice left out (blank, so every line keeps its
/// number), and a problem for each: the rest of the file is read on. `Err`: it is not TOML.
pub(super) fn without_repeated_keys(text: &str) -> Result<(String, Vec<Problem>), Problem> {
    let mut text = text.to_string();
    let mut problems = Vec::new();
    loop {
        let Err(e) = toml::from_str::<toml::Table>(&text) else { return Ok((text, problems)) };
        let problem = syntax_problem(&text, &e);
        let Some(line) = problem.line.filter(|_| problem.message.starts_with("duplicate key") && problems.len() < 100)
        else {
            return Err(problem);
        };
        problems.push(problem);
        text = text.lines().enumerate().map(|(i, l)| if i + 1 == line { "" } else { l }).collect::<Vec<_>>().join("\n");
    }
}

/// One piece of the file read as `T`; its unknown keys and each wrong value are problems. A
/// wrong value is left out and the piece read again, so that the values after it are checked
/// too (the file is refused all the same); `None` when the piece cannot be read without it.
fn piece<T: DeserializeOwned>(mut value: toml::Value, path: &str, problems: &mut Problems<'_>) -> Option<T> {
    let mut left_out: Vec<String> = Vec::new();
    for _ in 0..64 {
        let mut unknown = Vec::new();
        let result = {
            let mut note = |p: serde_ignored::Path<'_>| unknown.push(p.to_string());
            let de = serde_ignored::Deserializer::new(value.clone(), &mut note);
            serde_path_to_error::deserialize::<_, T>(de)
        };
        let e = match result {
            Ok(v) => {
                for key in unknown {
                    problems.add(format!("{path}.{key}"), "unknown key (check its spelling; see config.example.toml)");
                }
                return Some(v);
            }
            Err(e) => e,
        };
        let mut key = path.to_string();
        let mut keys = Vec::new();
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Map { key: k } | serde_path_to_error::Segment::Enum { variant: k } => {
                    key.push('.');
                    key.push_str(&quoted(k));
                    keys.push(k.clone());
                }
                serde_path_to_error::Segment::Seq { index } => key.push_str(&format!("[{index}]")),
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        let message = e.inner().message().trim().to_string();
        let missing = message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`'));
        // A required key left out for its wrong value was reported already.
        if !missing.is_some_and(|m| left_out.contains(&format!("{key}.{}", quoted(m)))) {
            problems.add(key.clone(), in_user_words(&message));
        }
        left_out.push(key);
        // A value with a wrong type is left out; a table missing a key it needs, whole (when it
        // is an entry of the piece, not the piece itself).
        if !remove(&mut value, &keys) {
            for key in unknown {
                problems.add(format!("{path}.{key}"), "unknown key (check its spelling; see config.example.toml)");
            }
            return None;
        }
    }
    None
}

/// Removes the value at `keys` (a path of table keys); whether there was one.
fn remove(value: &mut toml::Value, keys: &[String]) -> bool {
    let Some((last, parents)) = keys.split_last() else { return false };
    let mut at = value;
    for k in parents {
        match at.get_mut(k.as_str()) {
            Some(next) => at = next,
            None => return false,
        }
    }
    at.as_table_mut().and_then(|t| t.remove(last.as_str())).is_some()
}

/// A key as it is written in a dotted path: quoted when it holds a dot.
fn quoted(key: &str) -> String {
    if key.contains('.') { format!("\"{key}\"") } else { key.to_string() }
}

/// serde's message about a wrong value, told in the words of the file's reader.
pub(super) fn in_user_words(message: &str) -> String {
    if let Some(field) = message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
        return format!("missing key '{field}'");
    }
    if let Some(field) = message.strip_prefix("duplicate field `").and_then(|m| m.strip_suffix('`')) {
        return format!("'{field}' is given twice");
    }
    if message.starts_with("data did not match any variant of untagged enum OneOrMany") {
        return "expected a name in quotes or a list of them, like \"trim\" or [\"first\", \"last\"]".into();
    }
    let rest = message.strip_prefix("invalid type: ").or_else(|| message.strip_prefix("invalid value: "));
    let Some((found, expected)) = rest.and_then(|r| r.split_once(", expected ")) else {
        return message.to_string();
    };
    format!("expected {}, found {}", expected_words(expected), found_words(found))
}

fn expected_words(expected: &str) -> String {
    match expected {
        "usize" | "u64" | "u32" | "u16" | "u8" | "i64" | "i32" => "a whole number".into(),
        "f64" | "f32" => "a number (like 0.25)".into(),
        "a boolean" => "true or false".into(),
        "a string" => "text in quotes".into(),
        "a sequence" => "a list like [\"a\", \"b\"]".into(),
        "a map" => "a table".into(),
        "struct FieldSpec" => "a field mapping like { from = \"column\" }".into(),
        s if s.starts_with("struct ") => "a table".into(),
        other => other.to_string(),
    }
}

fn found_words(found: &str) -> String {
    if let Some(s) = found.strip_prefix("string ") {
        return s.to_string();
    }
    for kind in ["integer ", "floating point ", "boolean "] {
        if let Some(v) = found.strip_prefix(kind) {
            return v.trim_matches('`').to_string();
        }
    }
    match found {
        "sequence" => "a list".into(),
        "map" => "a table".into(),
        other => other.to_string(),
    }
}

/// A file that is not TOML: where, and what. A key given twice is named.
fn syntax_problem(text: &str, e: &toml::de::Error) -> Problem {
    let line = e.span().map(|s| super::line_of_offset(text, s.start));
    let mut message = e.message().trim().to_string();
    if message.starts_with("duplicate key")
        && let Some(key) = e.span().and_then(|s| text.get(s)).map(str::trim).filter(|k| !k.is_empty())
    {
        message = format!("duplicate key `{key}`: each key may be given once in its table");
    }
    Problem { key: "(syntax)".into(), line, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_read_as_a_person_would_say_them() {
        assert_eq!(in_user_words("invalid type: string \"x\", expected usize"), "expected a whole number, found \"x\"");
        assert_eq!(in_user_words("invalid value: integer `-5`, expected usize"), "expected a whole number, found -5");
        assert_eq!(
            in_user_words("invalid type: string \"yes\", expected a boolean"),
            "expected true or false, found \"yes\""
        );
        assert_eq!(
            in_user_words("invalid type: string \"a\", expected struct FieldSpec"),
            "expected a field mapping like { from = \"column\" }, found \"a\""
        );
        assert_eq!(in_user_words("missing field `name`"), "missing key 'name'");
        assert_eq!(in_user_words("something else"), "something else");
    }

    #[test]
    fn every_wrong_value_of_the_file_is_found_in_one_pass() {
        let text = "[project]\nname = \"x\"\nbatch_size = \"many\"\n\n[source]\nkind = \"csv\"\npath = 5\n\n\
                    [destination]\nkind = \"sqlite\"\npath = \"d.db\"\ncolour = \"red\"\n\n[objects.a.fields]\n\
                    x = \"y\"\nz = { from = \"z\", tranform = \"trim\" }\n";
        let spans = super::super::Spans::parse(text);
        let mut problems = Problems::new(&spans);
        read(text, &mut problems).expect("toml");
        let got: Vec<(String, Option<usize>)> = problems.into_vec().into_iter().map(|p| (p.key, p.line)).collect();
        for (key, line) in [
            ("project.batch_size", 3),
            ("source.path", 7),
            ("destination.colour", 12),
            ("objects.a.fields.x", 15),
            ("objects.a.fields.z.tranform", 16),
        ] {
            assert!(got.contains(&(key.to_string(), Some(line))), "{key} at line {line} in {got:?}");
        }
    }

    #[test]
    fn a_key_given_twice_is_named_and_hides_nothing_else() {
        let text = "[project]\nname = \"x\"\nbatch_size = 5\nbatch_size = 6\nhalt_error_rate = \"x\"\n";
        let (clean, mut problems) = without_repeated_keys(text).expect("toml");
        let spans = super::super::Spans::parse(&clean);
        let mut more = Problems::new(&spans);
        read(&clean, &mut more).expect("read on");
        problems.extend(more.into_vec());
        let twice = problems.iter().find(|p| p.message.contains("duplicate key `batch_size`")).expect("named");
        assert_eq!(twice.line, Some(4));
        assert!(problems.iter().any(|p| p.key == "project.halt_error_rate" && p.line == Some(5)), "{problems:?}");
    }
}
