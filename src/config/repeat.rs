//! One source record into several rows: an object's `repeat` table makes one object per entry.
//!
//! ```toml
//! [objects.emails]
//! source = "parties"
//! destination = "contact_mechanisms"
//! repeat.work = { address = "work_email", kind = { value = "work" } }
//! repeat.home = { address = "home_email", kind = { value = "home" } }
//! [objects.emails.fields]
//! party_id = { from = "id", parent = "parties" }
//! value = { from = "address", transform = "email" }
//! kind = { from = "kind" }
//! ```
//!
//! becomes the objects `emails.work` and `emails.home`, each reading every record of `parties`
//! with the entry's aliases standing for its source fields (an alias wins over a source field of
//! the same name). A record whose entry fields are all blank makes no row: it ends `skipped` for
//! that entry, so every record of the source still has its one outcome per object, and the
//! objects are counted, reconciled and rolled back like any other.

use super::{FieldSpec, ObjectConfig, Problems, ProjectConfig, RepeatColumn, Repeated};
use indexmap::IndexMap;
use std::collections::BTreeSet;

type Entry = IndexMap<String, RepeatColumn>;

/// The project with every repeated object replaced by its entries' objects, in its place.
pub fn expand(mut config: ProjectConfig, problems: &mut Problems<'_>) -> ProjectConfig {
    if config.objects.values().all(|o| o.repeat.is_empty()) {
        return config;
    }
    let taken: BTreeSet<String> = config.objects.keys().cloned().collect();
    let mut objects = IndexMap::with_capacity(config.objects.len());
    for (name, object) in std::mem::take(&mut config.objects) {
        if object.repeat.is_empty() {
            objects.insert(name, object);
            continue;
        }
        check_aliases_used(&name, &object, problems);
        for (entry, aliases) in &object.repeat {
            let key = format!("objects.{name}.repeat.{entry}");
            let made = format!("{name}.{entry}");
            if entry.is_empty() || !entry.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
                problems
                    .add(&key, format!("an entry's name is letters, digits, _ or - (it names the object '{made}')"));
                continue;
            }
            if taken.contains(&made) {
                problems.add(&key, format!("makes the object '{made}', which the file already has"));
                continue;
            }
            if let Some(one) = entry_object(&name, &object, entry, aliases, &key, problems) {
                objects.insert(made, one);
            }
        }
    }
    config.objects = objects;
    config
}

/// An alias that no field reads is a typo or a leftover: say so rather than ignore it.
fn check_aliases_used(name: &str, object: &ObjectConfig, problems: &mut Problems<'_>) {
    let read: BTreeSet<&str> = object.fields.values().flat_map(FieldSpec::source_fields).collect();
    for (entry, aliases) in &object.repeat {
        for alias in aliases.keys().filter(|a| !read.contains(a.as_str())) {
            problems.add(
                format!("objects.{name}.repeat.{entry}.{alias}"),
                format!("no field of [objects.{name}.fields] reads '{alias}'"),
            );
        }
    }
}

fn entry_object(
    name: &str,
    object: &ObjectConfig,
    entry: &str,
    aliases: &Entry,
    key: &str,
    problems: &mut Problems<'_>,
) -> Option<ObjectConfig> {
    let columns: Vec<String> = aliases
        .values()
        .filter_map(|c| match c {
            RepeatColumn::Column(c) => Some(c.clone()),
            RepeatColumn::Constant { .. } => None,
        })
        .fold(Vec::new(), |mut v, c| {
            if !v.contains(&c) {
                v.push(c);
            }
            v
        });
    if columns.is_empty() {
        problems.add(key, "an entry needs at least one source field: its row is made where one is not blank");
        return None;
    }
    let others: Vec<String> = object
        .repeat
        .values()
        .flat_map(|e| e.values())
        .filter_map(|c| match c {
            RepeatColumn::Column(c) if !columns.contains(c) => Some(c.clone()),
            _ => None,
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut fields = IndexMap::with_capacity(object.fields.len());
    for (dest, spec) in &object.fields {
        let at = format!("objects.{name}.fields.{dest}");
        fields.insert(dest.clone(), entry_field(object, entry, aliases, spec, &at, problems));
    }
    Some(ObjectConfig {
        source: Some(object.source_name(name).to_string()),
        destination: Some(object.destination_name(name).to_string()),
        repeat: IndexMap::new(),
        fields,
        repeated: Some(Repeated { object: name.to_string(), entry: entry.to_string(), columns, others }),
        ..object.clone()
    })
}

/// One field mapping with the entry's aliases put in: a column alias becomes the source field it
/// names; a constant alias read with `from` becomes the field's value (its `default`).
fn entry_field(
    object: &ObjectConfig,
    entry: &str,
    aliases: &Entry,
    spec: &FieldSpec,
    key: &str,
    problems: &mut Problems<'_>,
) -> FieldSpec {
    let mut out = spec.clone();
    let column = |field: &str, at: &str, problems: &mut Problems<'_>| -> String {
        match aliases.get(field) {
            Some(RepeatColumn::Column(c)) => c.clone(),
            Some(RepeatColumn::Constant { .. }) => {
                problems.add(
                    format!("{key}.{at}"),
                    format!("'{field}' is a constant of the entry '{entry}': read it with from, not {at}"),
                );
                field.to_string()
            }
            None if object.repeat.values().any(|e| e.contains_key(field)) => {
                problems.add(
                    format!("{key}.{at}"),
                    format!(
                        "the entry '{entry}' has no '{field}' (other entries do): give it one, \
                         {field} = {{ value = \"\" }} for a blank"
                    ),
                );
                field.to_string()
            }
            None => field.to_string(),
        }
    };
    if let Some(from) = &spec.from {
        match aliases.get(from) {
            Some(RepeatColumn::Constant { value }) => {
                out.from = None;
                // A blank constant is a blank value: the field's own default, if any, stands in.
                out.default = if value.trim().is_empty() {
                    spec.default.clone().or_else(|| Some(String::new()))
                } else {
                    Some(value.clone())
                };
            }
            _ => out.from = Some(column(from, "from", problems)),
        }
    }
    if let Some(list) = &spec.concat {
        out.concat = Some(list.iter().map(|f| column(f, "concat", problems)).collect());
    }
    if let Some(f) = &spec.split {
        out.split = Some(column(f, "split", problems));
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::parse_keeping_problems;
    use std::path::Path;

    const HEAD: &str = "[project]\nname = \"t\"\n[source]\nkind = \"csv\"\npath = \"s\"\n\
                        [destination]\nkind = \"sqlite\"\npath = \"d.db\"\n";

    fn read(objects: &str) -> (crate::config::LoadedConfig, Vec<String>) {
        let text = format!("{HEAD}{objects}");
        let (config, problems) = parse_keeping_problems(Path::new("p.toml"), &text).expect("reads");
        (config, problems.iter().map(|p| format!("{} (line {:?}): {}", p.key, p.line, p.message)).collect())
    }

    #[test]
    fn each_entry_becomes_an_object_in_the_repeated_objects_place() {
        let (config, problems) = read(
            "[objects.people]\nsource = \"parties\"\n[objects.people.fields]\nname = { from = \"name\" }\n\
             [objects.emails]\nsource = \"parties\"\ndestination = \"mechanisms\"\n\
             repeat.work = { address = \"work_email\", kind = { value = \"work\" } }\n\
             repeat.home = { address = \"home_email\", kind = { value = \"home\" } }\n\
             [objects.emails.fields]\nperson = { from = \"id\", parent = \"people\" }\n\
             value = { from = \"address\", transform = \"email\" }\nkind = { from = \"kind\" }\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(config.order, ["people", "emails.work", "emails.home"]);
        let work = config.object("emails.work").expect("made");
        assert_eq!(work.source_name("emails.work"), "parties");
        assert_eq!(work.destination_name("emails.work"), "mechanisms");
        assert_eq!(work.fields["value"].from.as_deref(), Some("work_email"));
        assert_eq!(work.fields["kind"].from, None);
        assert_eq!(work.fields["kind"].default.as_deref(), Some("work"));
        assert_eq!(work.fields["person"].from.as_deref(), Some("id"), "a source field stays itself");
        let r = work.repeated.as_ref().expect("marked");
        assert_eq!(
            (r.object.as_str(), r.columns.clone(), r.others.clone()),
            ("emails", vec!["work_email".to_string()], vec!["home_email".to_string()])
        );
        assert_eq!(config.file_object("emails.home"), "emails");
        assert_eq!(config.file_object("people"), "people");
    }

    #[test]
    fn a_blank_constant_is_a_blank_value_as_checks_suggest() {
        let (config, problems) = read(
            "[objects.emails]\nsource = \"parties\"\n\
             repeat.work = { address = \"work_email\", label = \"work_label\" }\n\
             repeat.home = { address = \"home_email\", label = { value = \"\" } }\n\
             [objects.emails.fields]\nvalue = { from = \"address\" }\nlabel = { from = \"label\", default = \"none\" }\n\
             note = { from = \"label\" }\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let home = config.object("emails.home").expect("made");
        assert_eq!(
            (home.fields["label"].from.as_deref(), home.fields["label"].default.as_deref()),
            (None, Some("none"))
        );
        assert_eq!((home.fields["note"].from.as_deref(), home.fields["note"].default.as_deref()), (None, Some("")));
    }

    #[test]
    fn mistakes_in_a_repeat_are_named_with_their_line() {
        let (_, problems) = read(
            "[objects.emails]\nsource = \"parties\"\n\
             repeat.work = { address = \"work_email\", label = \"work_label\", kind = { value = \"w\" } }\n\
             repeat.home = { address = \"home_email\", unused = \"x\" }\n\
             repeat.fax = { kind = { value = \"f\" } }\n\
             repeat.\"a b\" = { address = \"ab\" }\n\
             [objects.emails.fields]\nvalue = { from = \"address\" }\nlabel = { from = \"label\" }\n\
             kind = { concat = [\"kind\", \"address\"] }\n\
             [objects.other]\nsource = \"parties\"\n[objects.other.fields]\nx = { from = \"id\", parent = \"emails\" }\n",
        );
        let all = problems.join("\n");
        for says in [
            "objects.emails.repeat.home.unused (line Some(12)): no field of [objects.emails.fields] reads 'unused'",
            "objects.emails.fields.kind.concat (line Some(18)): 'kind' is a constant of the entry 'work': read it with from, not concat",
            "objects.emails.fields.label.from (line Some(17)): the entry 'home' has no 'label'",
            "objects.emails.repeat.fax (line Some(13)): an entry needs at least one source field",
            "objects.emails.repeat.a b",
            "parent 'emails' is made into several objects by its repeat: name one of emails.work",
        ] {
            assert!(all.contains(says), "wanted {says}\n in\n{all}");
        }
    }
}
