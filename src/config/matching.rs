//! How an object finds the destination record a source record already is: `match`.
//!
//! - A list of fields (`match = ["email", "phone"]`): exact keys, tried in order, with the
//!   conflicting-key veto — the simple case, as before.
//! - A table: probabilistic record linkage (`pipeline::linkage`). Each compared field names how
//!   its values are compared; weights are estimated from the data, two thresholds decide:
//!
//! ```toml
//! [objects.contacts.match]
//! link_above = 0.99      # merge into the best candidate at or above this match probability
//! review_above = 0.80    # hold as possible_match between the two; create below
//! [objects.contacts.match.fields]
//! email = "email"
//! firstname = "name"
//! lastname = "name"
//! phone = "phone"
//! ```

use super::Problems;
use indexmap::IndexMap;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// An object's `match`: exact keys in order, or linkage by weight of evidence.
#[derive(Debug, Clone, PartialEq)]
pub enum MatchConfig {
    Keys(Vec<String>),
    Linkage(LinkageConfig),
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig::Keys(Vec::new())
    }
}

/// `match = { fields = { … }, link_above = …, review_above = … }`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct LinkageConfig {
    /// Destination field → how its values are compared: exact, name, id, date, digits, phone,
    /// email, company, domain.
    pub fields: IndexMap<String, String>,
    /// Link (merge into the best candidate) at or above this match probability…
    #[serde(default = "default_link_above")]
    pub link_above: f64,
    /// …hold for review at or above this one; create below.
    #[serde(default = "default_review_above")]
    pub review_above: f64,
    /// How much surer the best candidate must be than the runner-up, in points of weight (bits
    /// of evidence: 4 points = 16 times likelier).
    #[serde(default = "default_margin")]
    pub margin: f64,
    /// Which fields, taken together, find candidates (each list one blocking key). Default: each
    /// email, phone, exact and domain field alone; each company field alone; every pair of name
    /// fields; each name field with each id or date field.
    #[serde(default)]
    pub blocks: Vec<Vec<String>>,
    /// Weights set by hand instead of estimated: field → level → points (`email = { equal = 12 }`).
    #[serde(default)]
    pub weights: IndexMap<String, IndexMap<String, f64>>,
}

fn default_link_above() -> f64 {
    0.99
}
fn default_review_above() -> f64 {
    0.80
}
fn default_margin() -> f64 {
    4.0
}

impl<'de> Deserialize<'de> for MatchConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = MatchConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a list of fields (match = [\"email\"]) or a table (match = { fields = { email = \"email\" } })",
                )
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<MatchConfig, A::Error> {
                Vec::<String>::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(MatchConfig::Keys)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MatchConfig, A::Error> {
                LinkageConfig::deserialize(de::value::MapAccessDeserializer::new(map)).map(MatchConfig::Linkage)
            }
        }
        deserializer.deserialize_any(Either)
    }
}

impl MatchConfig {
    /// The exact keys (none for linkage).
    pub fn keys(&self) -> &[String] {
        match self {
            MatchConfig::Keys(k) => k,
            MatchConfig::Linkage(_) => &[],
        }
    }

    pub fn linkage(&self) -> Option<&LinkageConfig> {
        match self {
            MatchConfig::Linkage(l) => Some(l),
            MatchConfig::Keys(_) => None,
        }
    }

    /// How the console and `check` describe it.
    pub fn describe(&self) -> String {
        match self {
            MatchConfig::Keys(k) if k.is_empty() => "source id only".into(),
            MatchConfig::Keys(k) => k.join(", "),
            MatchConfig::Linkage(l) => format!(
                "linkage on {} (link ≥ {}, review ≥ {})",
                l.fields.keys().cloned().collect::<Vec<_>>().join(", "),
                l.link_above,
                l.review_above
            ),
        }
    }
}

/// The comparison kinds a field may name, and what each is for.
pub const KINDS: [&str; 9] = ["exact", "name", "id", "date", "digits", "phone", "email", "company", "domain"];

/// The problems of a linkage table: fields not mapped, kinds unknown, thresholds out of order,
/// blocks naming fields not compared, weights for levels that do not exist.
pub fn check(base: &str, linkage: &LinkageConfig, mapped: &dyn Fn(&str) -> bool, problems: &mut Problems<'_>) {
    use crate::pipeline::linkage::compare::Kind;
    let key = format!("{base}.match");
    if linkage.fields.is_empty() {
        problems.add(format!("{key}.fields"), "no fields to compare: name at least one, e.g. email = \"email\"");
    }
    for (field, kind) in &linkage.fields {
        if !mapped(field) {
            problems.add(format!("{key}.fields.{field}"), format!("'{field}' is not a mapped destination field"));
        }
        if Kind::parse(kind).is_none() {
            problems.add(
                format!("{key}.fields.{field}"),
                format!("unknown comparison '{kind}'; one of: {}", KINDS.join(", ")),
            );
        }
    }
    let unit = |v: f64| v > 0.0 && v < 1.0;
    if !unit(linkage.link_above) {
        problems.add(
            format!("{key}.link_above"),
            format!("{} is no probability between 0 and 1 (e.g. 0.99)", linkage.link_above),
        );
    }
    if !unit(linkage.review_above) {
        problems.add(
            format!("{key}.review_above"),
            format!("{} is no probability between 0 and 1 (e.g. 0.8)", linkage.review_above),
        );
    } else if linkage.review_above > linkage.link_above {
        problems.add(
            format!("{key}.review_above"),
            format!(
                "{} is above link_above ({}): records between the two are held for review, so it must be lower",
                linkage.review_above, linkage.link_above
            ),
        );
    }
    if !(linkage.margin >= 0.0 && linkage.margin.is_finite()) {
        problems.add(format!("{key}.margin"), "expected a number of points of 0 or more (e.g. 4)");
    }
    for (i, block) in linkage.blocks.iter().enumerate() {
        if block.is_empty() {
            problems.add(format!("{key}.blocks"), format!("block {} names no field", i + 1));
        }
        for f in block.iter().filter(|f| !linkage.fields.contains_key(*f)) {
            problems.add(
                format!("{key}.blocks"),
                format!("block {} names '{f}', which is not one of the compared fields", i + 1),
            );
        }
    }
    for (field, levels) in &linkage.weights {
        let Some(kind) = linkage.fields.get(field) else {
            problems.add(format!("{key}.weights.{field}"), format!("'{field}' is not one of the compared fields"));
            continue;
        };
        // An unknown comparison is reported with the field.
        let Some(kind) = Kind::parse(kind) else { continue };
        for (level, w) in levels {
            if kind.level_key(level).is_none() {
                problems.add(
                    format!("{key}.weights.{field}.{level}"),
                    format!(
                        "no level '{level}' for {} field; one of: {}",
                        crate::text::a_or_an(kind.name()),
                        kind.level_keys().join(", ")
                    ),
                );
            } else if !w.is_finite() {
                problems.add(format!("{key}.weights.{field}.{level}"), "expected a number of points");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Obj {
        #[serde(rename = "match")]
        m: MatchConfig,
    }

    #[test]
    fn a_list_is_exact_keys_and_a_table_is_linkage() {
        let o: Obj = toml::from_str("match = [\"email\", \"phone\"]").unwrap();
        assert_eq!(o.m.keys(), ["email", "phone"]);
        let o: Obj = toml::from_str("[match]\nlink_above = 0.95\n[match.fields]\nemail = \"email\"\n").unwrap();
        let l = o.m.linkage().unwrap();
        assert_eq!((l.link_above, l.review_above, l.margin), (0.95, 0.80, 4.0));
        assert!(o.m.keys().is_empty());
        let e = toml::from_str::<Obj>("match = \"email\"").err().unwrap().to_string();
        assert!(e.contains("a list of fields"), "{e}");
        let e = toml::from_str::<Obj>("match = { link_above = 0.9 }").err().unwrap().to_string();
        assert!(e.contains("fields"), "{e}");
    }
}
