//! The rules a project file must pass before any record moves.

use super::{FieldSpec, MergeRule, Problems, ProjectConfig, SplitPart, Transform};
use crate::model::{DestSchema, FieldType};
use indexmap::IndexMap;

pub const SOURCE_KINDS: &[&str] = &["csv", "sqlite", "postgres", "mysql", "hubspot", "pipedrive"];
pub const DESTINATION_KINDS: &[&str] = &["sqlite", "postgres", "mysql", "hubspot", "pipedrive"];

/// Checks that need only the file.
pub fn static_rules(config: &ProjectConfig, problems: &mut Problems<'_>) {
    let p = &config.project;
    if p.batch_size == 0 || p.batch_size > 100_000 {
        problems.add("project.batch_size", format!("must be between 1 and 100000, not {}", p.batch_size));
    }
    if !(p.halt_error_rate > 0.0 && p.halt_error_rate <= 1.0) {
        problems.add(
            "project.halt_error_rate",
            format!("must be a fraction above 0 and at most 1 (e.g. 0.25), not {}", p.halt_error_rate),
        );
    }
    if p.default_region.parse::<phonenumber::country::Id>().is_err() {
        problems.add(
            "project.default_region",
            format!("'{}' is not a country code (use ISO 3166 alpha-2, e.g. US, GB, DE)", p.default_region),
        );
    }
    check_connection("source", &config.source, SOURCE_KINDS, problems);
    check_connection("destination", &config.destination, DESTINATION_KINDS, problems);
    for name in config.source.queries.keys() {
        let path = format!("source.queries.{name}");
        if !matches!(config.source.kind.as_str(), "postgres" | "mysql" | "sqlite") {
            continue; // the kind takes no queries: said once, for the table
        } else if !config.objects.iter().any(|(k, o)| o.source_name(k) == name) {
            problems.add(path, format!("no object reads '{name}' from the source"));
        }
    }
    if config.source.kind == "csv" {
        for (name, object) in &config.objects {
            let file = object.source_name(name);
            let leaves = std::path::Path::new(file).components().any(|c| {
                matches!(
                    c,
                    std::path::Component::ParentDir | std::path::Component::RootDir | std::path::Component::Prefix(_)
                )
            });
            if leaves && !config.source.allow_outside {
                problems.add(
                    format!("objects.{name}.source"),
                    format!(
                        "'{file}' leaves the source folder; set allow_outside = true under [source] if the file is \
                         meant to be read from there"
                    ),
                );
            }
        }
    }
    // Owners resolve against the destination's users: a database destination lists them in
    // the table `owners` names (a CRM's API lists its own).
    if matches!(config.destination.kind.as_str(), "sqlite" | "postgres" | "mysql")
        && config.destination.owners.is_none()
    {
        for (name, object) in &config.objects {
            for (field, spec) in &object.fields {
                if spec.transforms().contains(&super::Transform::Owner) {
                    problems.add(
                        format!("objects.{name}.fields.{field}"),
                        "the owner transform resolves names against the destination's users, but [destination] \
                         names no owners table: add owners = { table = \"users\", id = \"id\", name = \"name\", \
                         email = \"email\" }"
                            .to_string(),
                    );
                }
            }
        }
    }
    for (name, object) in &config.objects {
        for (field, spec) in &object.fields {
            if let Some(v) = &spec.invalid
                && crate::pipeline::plan::InvalidPolicy::parse(v).is_none()
            {
                problems.add(
                    format!("objects.{name}.fields.{field}.invalid"),
                    format!("'{v}' is not one of warn, queue, blank"),
                );
            }
        }
    }
    for key in config.destination.associations.keys() {
        check_object_field_key(config, &format!("destination.associations.\"{key}\""), key, problems);
    }
    for key in config.destination.picklists.keys() {
        check_object_field_key(config, &format!("destination.picklists.\"{key}\""), key, problems);
    }
    for (key, ty) in &config.destination.types {
        let path = format!("destination.types.\"{key}\"");
        check_object_field_key(config, &path, key, problems);
        if FieldType::parse(ty).is_none() {
            problems.add(path, format!("unknown type '{ty}'; one of: {}", FieldType::NAMES.join(", ")));
        }
    }

    for (table, entries) in &config.translations {
        for (from, to) in entries {
            if to.trim().is_empty() {
                problems.add(
                    format!("translations.{table}.\"{from}\""),
                    format!(
                        "'{from}' translates to a blank value, which would erase the field: give the destination's \
                         value, or remove the entry"
                    ),
                );
            }
        }
    }
    if config.objects.is_empty() {
        problems.add("objects", "no objects to migrate: add at least one [objects.NAME] table");
    }
    for (name, object) in &config.objects {
        let base = format!("objects.{name}");
        if MergeRule::parse(&object.merge).is_none() {
            problems.add(
                format!("{base}.merge"),
                format!("unknown merge rule '{}'; one of: {}", object.merge, MergeRule::NAMES.join(", ")),
            );
        }
        if object.fields.is_empty() {
            problems.add(format!("{base}.fields"), "no fields mapped");
        }
        if let Some(filter) = &object.filter
            && let Err(e) = crate::pipeline::row_filter::RowFilter::parse(filter)
        {
            problems.add(format!("{base}.where"), e);
        }
        if let Some(linkage) = object.matching.linkage() {
            super::matching::check(&base, linkage, &|f| object.fields.contains_key(f), problems);
        }
        for key in object.matching.keys() {
            if !object.fields.contains_key(key) {
                problems.add(
                    format!("{base}.match"),
                    format!("match key '{key}' is not a mapped destination field of {name}"),
                );
            }
        }
        for (field, spec) in &object.fields {
            check_field(config, &format!("{base}.fields.{field}"), spec, problems);
        }
    }
}

fn check_connection(key: &str, conn: &super::ConnectionConfig, kinds: &[&str], problems: &mut Problems<'_>) {
    if !kinds.contains(&conn.kind.as_str()) {
        problems
            .add(format!("{key}.kind"), format!("unknown {key} kind '{}'; one of: {}", conn.kind, kinds.join(", ")));
    } else if matches!(conn.kind.as_str(), "postgres" | "mysql") {
        if conn.url_env.as_deref().is_none_or(str::is_empty) {
            problems.add(
                format!("{key}.url_env"),
                format!("a {} {key} needs url_env: the environment variable holding its URL", conn.kind),
            );
        }
    } else if matches!(conn.kind.as_str(), "hubspot" | "pipedrive") {
        if conn.token_env.as_deref().is_none_or(str::is_empty) {
            problems.add(
                format!("{key}.token_env"),
                format!("a {} {key} needs token_env: the environment variable holding its API token", conn.kind),
            );
        }
    } else if conn.path.as_deref().is_none_or(str::is_empty) {
        problems.add(format!("{key}.path"), format!("a {} {key} needs a path", conn.kind));
    }
    if kinds.contains(&conn.kind.as_str()) {
        let takes = keys_taken(&conn.kind, key);
        for given in keys_given(conn) {
            if !takes.contains(&given) {
                problems.add(
                    format!("{key}.{given}"),
                    format!("a {} {key} takes no {given} (it takes: kind, {})", conn.kind, takes.join(", ")),
                );
            }
        }
    }
    for (name, set) in [("max_field_lines", conn.max_field_lines), ("max_field_bytes", conn.max_field_bytes)] {
        if set == Some(0) {
            problems.add(format!("{key}.{name}"), format!("{name} must be at least 1"));
        }
    }
}

/// The keys a connection of this kind takes, as a source or as a destination.
fn keys_taken(kind: &str, role: &str) -> &'static [&'static str] {
    let source = role == "source";
    match (kind, source) {
        ("csv", _) => &["path", "max_field_lines", "max_field_bytes", "allow_outside"],
        ("sqlite", true) => &["path", "queries"],
        ("sqlite", false) => &["path", "owners", "picklists", "types"],
        ("postgres", true) => &["url_env", "schema", "queries"],
        ("postgres", false) => &["url_env", "schema", "owners", "picklists", "types"],
        ("mysql", true) => &["url_env", "queries"],
        ("mysql", false) => &["url_env", "owners", "picklists", "types"],
        ("hubspot", true) => &["token_env", "base_url", "rate_limit"],
        ("hubspot", false) => {
            &["token_env", "base_url", "rate_limit", "daily_reserve", "source_id_property", "associations", "types"]
        }
        ("pipedrive", true) => &["token_env", "base_url", "rate_limit", "daily_tokens"],
        ("pipedrive", false) => &[
            "token_env",
            "base_url",
            "rate_limit",
            "daily_tokens",
            "daily_reserve",
            "source_id_property",
            "marker_fields",
        ],
        _ => &[],
    }
}

/// The keys a connection's table sets (besides `kind`).
fn keys_given(conn: &super::ConnectionConfig) -> Vec<&'static str> {
    let mut given = Vec::new();
    let mut set = |name: &'static str, is: bool| {
        if is {
            given.push(name);
        }
    };
    set("path", conn.path.is_some());
    set("max_field_lines", conn.max_field_lines.is_some());
    set("max_field_bytes", conn.max_field_bytes.is_some());
    set("allow_outside", conn.allow_outside);
    set("url_env", conn.url_env.is_some());
    set("schema", conn.schema.is_some());
    set("queries", !conn.queries.is_empty());
    set("token_env", conn.token_env.is_some());
    set("base_url", conn.base_url.is_some());
    set("rate_limit", conn.rate_limit.is_some());
    set("daily_tokens", conn.daily_tokens.is_some());
    set("daily_reserve", conn.daily_reserve.is_some());
    set("source_id_property", conn.source_id_property.is_some());
    set("marker_fields", !conn.marker_fields.is_empty());
    set("associations", !conn.associations.is_empty());
    set("owners", conn.owners.is_some());
    set("picklists", !conn.picklists.is_empty());
    set("types", !conn.types.is_empty());
    given
}

/// `"object.field"` must name a field some object of the project writes to that destination
/// object: a typo (`"contacts.emial"`) would otherwise be a silent no-op.
fn check_object_field_key(config: &ProjectConfig, path: &str, key: &str, problems: &mut Problems<'_>) {
    let Some((object, field)) = key.split_once('.') else {
        problems.add(path, "expected \"object.field\"");
        return;
    };
    let writers: Vec<&super::ObjectConfig> =
        config.objects.iter().filter(|(name, o)| o.destination_name(name) == object).map(|(_, o)| o).collect();
    if writers.is_empty() {
        let known: Vec<&str> = config.objects.iter().map(|(name, o)| o.destination_name(name)).collect();
        problems.add(path, format!("no object writes to '{object}' (objects write to: {})", list_or_none(&known)));
        return;
    }
    if !writers.iter().any(|o| o.fields.contains_key(field)) {
        let mut mapped: Vec<&str> = writers.iter().flat_map(|o| o.fields.keys().map(String::as_str)).collect();
        mapped.dedup();
        problems
            .add(path, format!("no object maps a field '{field}' of '{object}' (mapped: {})", list_or_none(&mapped)));
    }
}

fn check_field(config: &ProjectConfig, key: &str, spec: &FieldSpec, problems: &mut Problems<'_>) {
    let sources = [spec.from.is_some(), spec.concat.is_some(), spec.split.is_some()].iter().filter(|&&b| b).count();
    if sources > 1 {
        problems.add(key, "give only one of from, concat or split");
    }
    if sources == 0 && spec.default.is_none() {
        problems.add(key, "no source: give from, concat, split or default");
    }
    if spec.concat.as_ref().is_some_and(Vec::is_empty) {
        problems.add(format!("{key}.concat"), "concat needs at least one source field");
    }
    if spec.max_length == Some(0) {
        problems.add(format!("{key}.max_length"), "max_length must be at least 1 (0 would blank every value)");
    }
    if spec.part.is_some() && spec.split.is_none() {
        problems.add(format!("{key}.part"), "part only applies with split");
    }
    if let Some(SplitPart::Named(name)) = &spec.part
        && !["first", "rest", "last"].contains(&name.as_str())
    {
        problems.add(format!("{key}.part"), format!("unknown part '{name}'; use first, rest, last or an index"));
    }
    if spec.separator.is_some() && spec.concat.is_none() && spec.split.is_none() {
        problems.add(format!("{key}.separator"), "separator only applies with concat or split");
    }
    if let Some(t) = &spec.transform {
        for name in t.items() {
            if Transform::parse(name).is_none() {
                problems.add(
                    format!("{key}.transform"),
                    format!("unknown transform '{name}'; one of: {}", Transform::NAMES.join(", ")),
                );
            }
        }
    }
    if let Some(table) = &spec.translate
        && !config.translations.contains_key(table)
    {
        let known: Vec<&str> = config.translations.keys().map(String::as_str).collect();
        problems.add(
            format!("{key}.translate"),
            format!("no translation table '{table}' under [translations] (known: {})", list_or_none(&known)),
        );
    }
    if let Some(parent) = &spec.parent
        && !config.objects.contains_key(parent)
    {
        let made: Vec<&str> = config
            .objects
            .iter()
            .filter(|(_, o)| o.repeated.as_ref().is_some_and(|r| &r.object == parent))
            .map(|(n, _)| n.as_str())
            .collect();
        let message = if made.is_empty() {
            format!("parent '{parent}' is not an object of this project")
        } else {
            format!("parent '{parent}' is made into several objects by its repeat: name one of {}", made.join(", "))
        };
        problems.add(format!("{key}.parent"), message);
    }
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() { "none".into() } else { items.join(", ") }
}

/// Orders objects so that every parent comes before its children (stable in file order).
/// Returns a cycle when there is one.
pub fn parent_order(config: &ProjectConfig) -> Result<Vec<String>, Vec<String>> {
    let names: Vec<&String> = config.objects.keys().collect();
    let mut order: Vec<String> = Vec::new();
    let mut state: IndexMap<&str, u8> = names.iter().map(|n| (n.as_str(), 0u8)).collect();
    fn visit<'a>(
        config: &'a ProjectConfig,
        name: &'a str,
        state: &mut IndexMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
        order: &mut Vec<String>,
    ) -> Result<(), Vec<String>> {
        match state.get(name) {
            Some(2) | None => return Ok(()),
            Some(1) => {
                let start = stack.iter().position(|s| *s == name).unwrap_or(0);
                let mut cycle: Vec<String> = stack[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(name.to_string());
                return Err(cycle);
            }
            _ => {}
        }
        state.insert(name, 1);
        stack.push(name);
        if let Some(object) = config.objects.get(name) {
            for parent in object.parents() {
                visit(config, parent, state, stack, order)?;
            }
        }
        stack.pop();
        state.insert(name, 2);
        order.push(name.to_string());
        Ok(())
    }
    let mut stack = Vec::new();
    for name in names {
        visit(config, name, &mut state, &mut stack, &mut order)?;
    }
    Ok(order)
}

/// The schemas one object is checked against.
pub struct ObjectSchemas<'a> {
    pub source_fields: Result<&'a [String], String>,
    pub destination: Result<&'a DestSchema, String>,
}

/// Checks each object's mapping against its source and destination schemas.
pub fn against_schemas<'a>(
    config: &ProjectConfig,
    schemas: impl Fn(&str) -> ObjectSchemas<'a>,
    problems: &mut Problems<'_>,
) {
    for (name, object) in &config.objects {
        let base = format!("objects.{name}");
        let schemas = schemas(name);
        match schemas.source_fields {
            Err(e) => problems.add(format!("{base}.source"), e),
            Ok(fields) => {
                let has = |f: &str| fields.iter().any(|x| x == f);
                let source = object.source_name(name);
                if !has(&object.id) {
                    problems.add(format!("{base}.id"), format!("source '{source}' has no field '{}'", object.id));
                }
                if let Some(m) = &object.modified
                    && !has(m)
                {
                    problems.add(format!("{base}.modified"), format!("source '{source}' has no field '{m}'"));
                }
                for (field, spec) in &object.fields {
                    for used in spec.source_fields() {
                        if !has(used) {
                            problems.add(
                                format!("{base}.fields.{field}"),
                                format!("unknown source field '{used}' (source '{source}' has: {})", fields.join(", ")),
                            );
                        }
                    }
                }
                for excluded in &object.exclude {
                    let matches = match excluded.strip_suffix('*') {
                        Some(prefix) => fields.iter().any(|f| f.starts_with(prefix)),
                        None => has(excluded),
                    };
                    if !matches {
                        problems.add(
                            format!("{base}.exclude"),
                            format!("excluded field '{excluded}' does not exist in source '{source}'"),
                        );
                    }
                }
                if let Some(filter) =
                    object.filter.as_deref().and_then(|f| crate::pipeline::row_filter::RowFilter::parse(f).ok())
                    && let Err(e) = filter.clone().bind(fields)
                {
                    problems
                        .add(format!("{base}.where"), format!("{e} (source '{source}' has: {})", fields.join(", ")));
                }
                let filtered: Vec<String> = object
                    .filter
                    .as_deref()
                    .and_then(|f| crate::pipeline::row_filter::RowFilter::parse(f).ok())
                    .map(|f| f.fields().map(String::from).collect())
                    .unwrap_or_default();
                for field in fields {
                    let used = filtered.contains(field)
                        || *field == object.id
                        || object.modified.as_ref() == Some(field)
                        || super::excludes(&object.exclude, field)
                        || object.repeated.as_ref().is_some_and(|r| r.others.contains(field))
                        || object.fields.values().any(|s| s.source_fields().contains(&field.as_str()));
                    if !used {
                        problems.add(
                            format!("{base}.exclude"),
                            format!(
                                "source field '{field}' of '{source}' is neither mapped nor excluded \
                                 (map it under [{base}.fields] or add it to exclude)"
                            ),
                        );
                    }
                }
            }
        }
        match schemas.destination {
            Err(e) => problems.add(format!("{base}.destination"), e),
            Ok(dest) => {
                for (field, spec) in &object.fields {
                    match dest.field(field) {
                        None => problems.add(
                            format!("{base}.fields.{field}"),
                            format!("destination '{}' has no field '{field}'", dest.object),
                        ),
                        Some(df) => {
                            if spec.parent.is_some() && !matches!(df.ty, FieldType::Integer | FieldType::Text) {
                                problems.add(
                                    format!("{base}.fields.{field}.parent"),
                                    format!("'{field}' holds {:?} values, it cannot hold a record id", df.ty),
                                );
                            }
                        }
                    }
                }
                for (field, spec) in &object.fields {
                    let Some(target) = &spec.currency_to else { continue };
                    let key = format!("{base}.fields.{field}.currency_to");
                    let numeric = |f: &str| {
                        dest.field(f).is_some_and(|d| {
                            matches!(d.ty, FieldType::Decimal | FieldType::Number | FieldType::Integer)
                        }) || object.fields.get(f).is_some_and(|s| {
                            s.transforms().iter().any(|t| matches!(t, Transform::Decimal | Transform::Integer))
                        })
                    };
                    if dest.field(target).is_none() {
                        problems.add(&key, format!("destination '{}' has no field '{target}'", dest.object));
                    } else if target == field {
                        problems.add(&key, "names the amount's own field: give the field for the currency code");
                    } else if numeric(target) {
                        problems.add(
                            &key,
                            format!("'{target}' holds numbers: the currency code (USD, EUR) needs a text field"),
                        );
                    }
                    let amount = spec.transforms().contains(&Transform::Decimal)
                        || dest.field(field).is_some_and(|f| matches!(f.ty, FieldType::Decimal | FieldType::Number));
                    if !amount {
                        problems.add(
                            key,
                            format!(
                                "'{field}' is not read as an amount: give it transform = \"decimal\" or type it \
                                 decimal under [destination.types]"
                            ),
                        );
                    }
                }
                let currency_targets: Vec<&str> =
                    object.fields.values().filter_map(|s| s.currency_to.as_deref()).collect();
                for df in &dest.fields {
                    if df.required
                        && df.name != dest.id_field
                        && !object.fields.contains_key(&df.name)
                        && !currency_targets.contains(&df.name.as_str())
                    {
                        problems.add(
                            format!("{base}.fields"),
                            format!(
                                "destination field '{}.{}' is required but nothing maps to it \
                                 (map a source field or give a default)",
                                dest.object, df.name
                            ),
                        );
                    }
                }
            }
        }
    }
}
