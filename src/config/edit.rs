//! Edits of the project file that keep the operator's comments, order and layout (toml_edit):
//! what the console's mapping editor does before it validates and saves. Pure functions on the
//! file's text; every edit is refused with a message naming the key when it cannot apply.

use toml_edit::{DocumentMut, InlineTable, Item, Table, Value};

/// One `key = value` line the operator typed, e.g. `dealstage = { from = "stage" }`.
fn one_line(line: &str) -> Result<(String, Value), String> {
    let doc: DocumentMut = line
        .trim()
        .parse()
        .map_err(|e: toml_edit::TomlError| format!("not a TOML line `key = value`: {}", e.message().trim()))?;
    let mut entries = doc.as_table().iter();
    let (key, item) = entries.next().ok_or("type one line: key = value")?;
    if entries.next().is_some() {
        return Err("one key = value at a time".into());
    }
    let value = item.as_value().cloned().ok_or("the value must be on the same line")?;
    Ok((key.to_string(), value))
}

fn parse(text: &str) -> Result<DocumentMut, String> {
    text.parse().map_err(|e: toml_edit::TomlError| format!("the project file does not parse: {}", e.message().trim()))
}

fn table_mut<'a>(doc: &'a mut DocumentMut, path: &[&str]) -> Result<&'a mut Table, String> {
    let mut table = doc.as_table_mut();
    for (i, key) in path.iter().enumerate() {
        let item = table.entry(key).or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(i + 1 < path.len());
            Item::Table(t)
        });
        table = item.as_table_mut().ok_or_else(|| format!("{} is not a table", path[..=i].join(".")))?;
    }
    Ok(table)
}

/// The line the editor offers for a mapped field: `dest = { ... }` as the file has it.
pub fn field_line(text: &str, object: &str, dest: &str) -> Option<String> {
    let doc = parse(text).ok()?;
    let item = doc.get("objects")?.get(object)?.get("fields")?.get(dest)?;
    let value = match item {
        Item::Value(v) => v.clone(),
        Item::Table(t) => Value::InlineTable(t.clone().into_inline_table()),
        _ => return None,
    };
    let mut value = value;
    value.decor_mut().clear();
    Some(format!("{} = {}", toml_edit::Key::new(dest).display_repr(), value))
}

/// Sets (or adds, or renames from `original`) one field mapping from a line the operator typed.
pub fn set_field(text: &str, object: &str, original: Option<&str>, line: &str) -> Result<String, String> {
    let (dest, value) = one_line(line)?;
    if !matches!(value, Value::InlineTable(_)) {
        return Err(format!("{dest}: a mapping is an inline table, e.g. {dest} = {{ from = \"source_field\" }}"));
    }
    let mut doc = parse(text)?;
    if doc.get("objects").and_then(|o| o.get(object)).is_none() {
        return Err(format!("no object '{object}' in the project file"));
    }
    let fields = table_mut(&mut doc, &["objects", object, "fields"])?;
    if original != Some(dest.as_str()) && fields.contains_key(&dest) {
        return Err(format!("objects.{object}.fields.{dest} already exists: edit that row instead"));
    }
    let mut value = value;
    match original.and_then(|o| fields.get_mut(o)) {
        Some(Item::Value(old)) if original == Some(dest.as_str()) => {
            // Keep the comment after the old value.
            let decor = old.decor().clone();
            *value.decor_mut() = decor;
            *old = value;
        }
        _ => {
            if let Some(o) = original {
                fields.remove(o);
            }
            value.decor_mut().set_prefix(" ");
            fields.insert(&dest, Item::Value(value));
        }
    }
    Ok(doc.to_string())
}

/// Removes one field mapping.
pub fn remove_field(text: &str, object: &str, dest: &str) -> Result<String, String> {
    let mut doc = parse(text)?;
    let fields = table_mut(&mut doc, &["objects", object, "fields"])?;
    fields.remove(dest).ok_or_else(|| format!("objects.{object}.fields has no '{dest}'"))?;
    Ok(doc.to_string())
}

/// Adds `source value = destination value` to a translation table (made if missing).
pub fn add_translation(text: &str, table: &str, line: &str) -> Result<String, String> {
    let (from, to) = one_line(line)?;
    let Some(to_text) = to.as_str().map(str::to_string) else {
        return Err(format!("\"{from}\": the destination value must be a quoted string"));
    };
    if to_text.trim().is_empty() {
        return Err(format!("\"{from}\": give the destination value it translates to"));
    }
    let mut doc = parse(text)?;
    let entries = table_mut(&mut doc, &["translations", table])?;
    if let Some(existing) = entries.get(&from).and_then(Item::as_str) {
        return Err(format!("translations.{table} already maps \"{from}\" to \"{existing}\""));
    }
    entries.insert(&from, toml_edit::value(to_text));
    Ok(doc.to_string())
}

/// Adds a source field to the object's `exclude` list, or takes it off; returns the new text and
/// whether the field is now excluded.
pub fn toggle_exclude(text: &str, object: &str, source_field: &str) -> Result<(String, bool), String> {
    let mut doc = parse(text)?;
    let obj = table_mut(&mut doc, &["objects", object])?;
    let list = obj.entry("exclude").or_insert_with(|| toml_edit::value(toml_edit::Array::new()));
    let array = list.as_array_mut().ok_or_else(|| format!("objects.{object}.exclude is not a list"))?;
    let at = array.iter().position(|v| v.as_str() == Some(source_field));
    let excluded = match at {
        Some(i) => {
            array.remove(i);
            false
        }
        None => {
            array.push(source_field);
            true
        }
    };
    array.fmt();
    Ok((doc.to_string(), excluded))
}

/// An inline table for a line the editor proposes (`{ from = "field" }`).
pub fn from_line(dest: &str, source_field: &str) -> String {
    let mut t = InlineTable::new();
    t.insert("from", source_field.into());
    format!("{} = {}", toml_edit::Key::new(dest).display_repr(), Value::InlineTable(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# Northwind
[translations.deal_stage]
"Won" = "closedwon"   # the happy end

[objects.deals]
id = "id"
exclude = ["status"]          # HubSpot derives it

[objects.deals.fields]
dealname = { from = "title", transform = "trim" }   # keep this comment
dealstage = { from = "stage", translate = "deal_stage" }
"#;

    #[test]
    fn a_row_edit_keeps_comments_order_and_layout() {
        let line = field_line(TEXT, "deals", "dealname").expect("line");
        assert_eq!(line, r#"dealname = { from = "title", transform = "trim" }"#);
        let out = set_field(TEXT, "deals", Some("dealname"), r#"dealname = { from = "title", transform = "upper" }"#)
            .expect("edit");
        assert!(out.contains(r#"dealname = { from = "title", transform = "upper" }   # keep this comment"#), "{out}");
        assert!(out.starts_with("# Northwind\n"));
        assert!(out.contains(r#"exclude = ["status"]          # HubSpot derives it"#));
        // Order kept: dealname still before dealstage.
        assert!(out.find("dealname").expect("name") < out.find("dealstage =").expect("stage"));
    }

    #[test]
    fn add_rename_and_remove_rows() {
        let out = set_field(TEXT, "deals", None, r#"amount = { from = "value", transform = "decimal" }"#).expect("add");
        assert!(out.contains(r#"amount = { from = "value", transform = "decimal" }"#), "{out}");
        let err = set_field(&out, "deals", None, r#"amount = { from = "x" }"#).expect_err("exists");
        assert!(err.contains("objects.deals.fields.amount already exists"), "{err}");
        let out = set_field(&out, "deals", Some("amount"), r#"value_total = { from = "value" }"#).expect("rename");
        assert!(!out.contains("amount =") && out.contains("value_total"), "{out}");
        let out = remove_field(&out, "deals", "value_total").expect("remove");
        assert!(!out.contains("value_total"));
        assert!(remove_field(&out, "deals", "nope").expect_err("missing").contains("has no 'nope'"));
    }

    #[test]
    fn bad_lines_are_refused_with_a_reason() {
        for (line, why) in [
            ("dealname = ", "not a TOML line"),
            ("dealname = \"title\"", "a mapping is an inline table"),
            ("a = {}\nb = {}", "one key = value at a time"),
            ("", "type one line"),
        ] {
            let err = set_field(TEXT, "deals", Some("dealname"), line).expect_err(line);
            assert!(err.contains(why), "{line:?}: {err}");
        }
        assert!(set_field(TEXT, "ghosts", None, "a = { from = \"b\" }").expect_err("object").contains("no object"));
    }

    #[test]
    fn translations_are_added_quoted_and_never_overwritten() {
        let out = add_translation(TEXT, "deal_stage", r#""On Hold" = "appointmentscheduled""#).expect("add");
        assert!(out.contains(r#""Won" = "closedwon"   # the happy end"#));
        assert!(out.contains(r#""On Hold" = "appointmentscheduled""#), "{out}");
        let err = add_translation(&out, "deal_stage", r#""Won" = "closedlost""#).expect_err("exists");
        assert!(err.contains("already maps \"Won\" to \"closedwon\""), "{err}");
        assert!(
            add_translation(TEXT, "deal_stage", r#""X" = """#).expect_err("blank").contains("give the destination")
        );
        let out = add_translation(TEXT, "lifecycle", r#"Customer = "customer""#).expect("new table");
        assert!(out.contains("[translations.lifecycle]"), "{out}");
    }

    #[test]
    fn exclusion_toggles() {
        let (out, now) = toggle_exclude(TEXT, "deals", "visible_to").expect("add");
        assert!(now);
        assert!(out.contains(r#"exclude = ["status", "visible_to"]"#), "{out}");
        let (out, now) = toggle_exclude(&out, "deals", "status").expect("remove");
        assert!(!now);
        assert!(out.contains(r#"exclude = ["visible_to"]"#), "{out}");
    }
}
