//! What an account says of an object's fields, read from its `*Fields` endpoints
//! (`/v1/personFields`, `/v1/organizationFields`, `/v1/dealFields`, `/v1/noteFields`): every
//! field, standard and custom, whether or not any record holds a value yet.
//!
//! A custom field is keyed by a 40-character hash of its own entity; people know it by its name.
//! Cutover shows and takes it by name (the hash is kept as the key underneath and is accepted too),
//! and turns the option ids of `enum` and `set` fields — and of `label_ids` — into their labels
//! on the way out and back into ids on the way in. Several values of a `set` are joined with
//! `;` (as HubSpot's multi-select values are).

use crate::model::FieldType;
use serde_json::{Value as Json, json};

/// One field of one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct PdField {
    /// The key records use (`name`, `owner_id`, or a custom field's hash).
    pub key: String,
    /// The name the account shows (`Name`, `Owner`, `Industry`).
    pub name: String,
    /// `varchar`, `enum`, `set`, `date`, … as Pipedrive types it.
    pub kind: String,
    /// Option id → label, for `enum` and `set` fields (and labels).
    pub options: Vec<(String, String)>,
}

/// A custom field's key: 40 hexadecimal characters.
pub fn is_custom_key(key: &str) -> bool {
    key.len() == 40 && key.chars().all(|c| c.is_ascii_hexdigit())
}

/// Text of a JSON scalar (an option id may come as a number or a string).
fn id_text(v: &Json) -> Option<String> {
    match v {
        Json::Number(n) => Some(n.to_string()),
        Json::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

impl PdField {
    pub fn custom(&self) -> bool {
        is_custom_key(&self.key)
    }

    /// Whether its values are option ids (`enum`, `set`, and the labels of a record).
    pub fn has_options(&self) -> bool {
        matches!(self.kind.as_str(), "enum" | "set") || self.key == "label_ids" || self.key == "label"
    }

    fn label(&self, id: &str) -> String {
        self.options.iter().find(|(i, _)| i == id).map(|(_, l)| l.clone()).unwrap_or_else(|| id.to_string())
    }

    /// A value as people read it: option ids as their labels (`110` → `Manufacturing`, a set's
    /// `[122,123]` or `"122,123"` → `Red;Blue`); an id the field does not list stays as it is.
    pub fn labels(&self, v: &Json) -> Option<String> {
        let ids: Vec<String> = match v {
            Json::Null => return None,
            Json::Array(items) => items.iter().filter_map(id_text).collect(),
            Json::String(s) => {
                let s = s.trim().trim_start_matches('[').trim_end_matches(']');
                s.split(',').map(|x| x.trim().trim_matches('"').to_string()).filter(|x| !x.is_empty()).collect()
            }
            other => id_text(other).into_iter().collect(),
        };
        (!ids.is_empty()).then(|| ids.iter().map(|i| self.label(i)).collect::<Vec<_>>().join(";"))
    }

    /// The option ids of a value written by label (or by id): `Red;Blue` → `[122, 123]`. A label
    /// the field does not have is refused, naming the ones it has.
    pub fn option_ids(&self, text: &str) -> Result<Vec<Json>, String> {
        let mut out = Vec::new();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let found = self
                .options
                .iter()
                .find(|(_, l)| l.trim().eq_ignore_ascii_case(part))
                .or_else(|| self.options.iter().find(|(i, _)| i == part));
            let Some((id, _)) = found else {
                let known: Vec<&str> = self.options.iter().take(8).map(|(_, l)| l.as_str()).collect();
                return Err(format!("'{part}' is not an option of '{}' (it has: {})", self.name, known.join(", ")));
            };
            out.push(id.parse::<i64>().map(Json::from).unwrap_or_else(|_| json!(id)));
        }
        Ok(out)
    }

    /// The type a custom field holds, how long its text may be, and the labels of an `enum`.
    pub fn dest_type(&self) -> (FieldType, Option<usize>, Option<Vec<String>>) {
        match self.kind.as_str() {
            "double" | "monetary" => (FieldType::Decimal, None, None),
            "int" => (FieldType::Integer, None, None),
            "org" | "people" | "user" => (FieldType::Integer, None, None),
            "date" => (FieldType::Date, None, None),
            "enum" | "set" => (FieldType::Text, None, Some(self.options.iter().map(|(_, l)| l.clone()).collect())),
            "varchar" | "varchar_auto" | "phone" => (FieldType::Text, Some(255), None),
            _ => (FieldType::Text, None, None),
        }
    }
}

/// The fields of one entity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    fields: Vec<PdField>,
}

impl Catalog {
    /// From the `data` of a `*Fields` answer; inactive fields are left out.
    pub fn from_json(data: &[Json]) -> Self {
        let fields = data
            .iter()
            .filter(|f| f["active_flag"].as_bool() != Some(false))
            .filter_map(|f| {
                let key = f["key"].as_str()?.to_string();
                let name = f["name"].as_str().map(str::trim).filter(|n| !n.is_empty()).unwrap_or(&key).to_string();
                let options = f["options"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|o| Some((id_text(&o["id"])?, o["label"].as_str()?.to_string())))
                    .collect();
                Some(PdField { key, name, kind: f["field_type"].as_str().unwrap_or("varchar").to_string(), options })
            })
            .collect();
        Self { fields }
    }

    pub fn by_key(&self, key: &str) -> Option<&PdField> {
        self.fields.iter().find(|f| f.key == key)
    }

    /// A field by its key, or else by its name in any case. Two fields of that name: an error
    /// naming their keys, to write instead.
    pub fn find(&self, name_or_key: &str) -> Result<Option<&PdField>, String> {
        if let Some(f) = self.by_key(name_or_key) {
            return Ok(Some(f));
        }
        let wanted = name_or_key.trim();
        let named: Vec<&PdField> = self.fields.iter().filter(|f| f.name.trim().eq_ignore_ascii_case(wanted)).collect();
        match named.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            many => Err(format!(
                "several fields are named '{wanted}': give one's key instead ({})",
                many.iter().map(|f| f.key.as_str()).collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// The name a custom field goes by in Cutover: its own, unless a standard key or another
    /// custom field has it — then its key.
    pub fn public_name(&self, f: &PdField) -> String {
        if !f.custom() {
            return f.key.clone();
        }
        let taken =
            self.fields.iter().any(|o| o.key != f.key && (o.name.eq_ignore_ascii_case(&f.name) || o.key == f.name));
        if taken { f.key.clone() } else { f.name.clone() }
    }

    pub fn customs(&self) -> impl Iterator<Item = &PdField> {
        self.fields.iter().filter(|f| f.custom())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9dc80c50d78a15643bfc4ca79d76156a73a1ca0e";

    fn catalog() -> Catalog {
        Catalog::from_json(&[
            json!({ "key": "name", "name": "Name", "field_type": "varchar" }),
            json!({ "key": "label_ids", "name": "Labels", "field_type": "set",
                    "options": [{ "id": 1, "label": "Customer" }, { "id": 2, "label": "Hot lead" }] }),
            json!({ "key": HASH, "name": "Customer Type", "field_type": "enum",
                    "options": [{ "id": 190, "label": "Private person" }, { "id": 191, "label": "Company" }] }),
            json!({ "key": "0000000000000000000000000000000000000001", "name": "Name", "field_type": "varchar" }),
            json!({ "key": "0000000000000000000000000000000000000002", "name": "Old", "active_flag": false }),
        ])
    }

    #[test]
    fn custom_fields_go_by_name_unless_the_name_is_taken() {
        let c = catalog();
        let f = c.find("customer type").expect("one").expect("found");
        assert_eq!(f.key, HASH);
        assert_eq!(c.find(HASH).expect("one").expect("found").name, "Customer Type");
        assert_eq!(c.public_name(f), "Customer Type");
        let clash = c.by_key("0000000000000000000000000000000000000001").expect("field");
        assert_eq!(c.public_name(clash), clash.key, "a custom 'Name' would hide the standard one");
        assert!(c.find("Old").expect("fine").is_none(), "inactive fields are not offered");
    }

    #[test]
    fn option_ids_become_labels_and_labels_become_ids() {
        let c = catalog();
        let ty = c.find(HASH).expect("one").expect("found");
        assert_eq!(ty.labels(&json!(191)).as_deref(), Some("Company"));
        assert_eq!(ty.labels(&json!("190")).as_deref(), Some("Private person"));
        assert_eq!(ty.labels(&json!(999)).as_deref(), Some("999"), "an unknown id is kept, not lost");
        let labels = c.by_key("label_ids").expect("labels");
        assert_eq!(labels.labels(&json!([2, 1])).as_deref(), Some("Hot lead;Customer"));
        assert_eq!(labels.labels(&json!("[2,1]")).as_deref(), Some("Hot lead;Customer"));
        assert_eq!(labels.labels(&json!([])), None);
        assert_eq!(labels.option_ids("hot LEAD; Customer"), Ok(vec![json!(2), json!(1)]));
        assert_eq!(labels.option_ids("2"), Ok(vec![json!(2)]));
        let refused = labels.option_ids("Cold").expect_err("not an option");
        assert!(refused.contains("'Cold'") && refused.contains("Hot lead"), "{refused}");
    }
}
