//! An object's linkage as the engine runs it: which mapped fields are compared and how, the
//! blocking keys that find candidates, the thresholds, and the weights set by hand.

use super::compare::Kind;
use super::em::Model;
use super::link::{Linker, Values};
use crate::config::LinkageConfig;
use crate::model::Value;
use color_eyre::eyre::{Result, eyre};

#[derive(Debug, Clone)]
pub struct LinkagePlan {
    /// The compared destination fields, in the linker's order.
    pub fields: Vec<String>,
    /// Each field's comparison as the project file names it (`date`, `id`: both compare digits).
    pub comparisons: Vec<String>,
    /// Each compared field's position in the mapped values.
    pub index: Vec<usize>,
    pub linker: Linker,
    /// (field, level, points) set in the project file: they replace the estimated weight.
    pub overrides: Vec<(usize, usize, f64)>,
}

impl LinkagePlan {
    /// `name`: the object, for errors; `dest_fields`: the mapped fields, in order.
    pub fn new(name: &str, config: &LinkageConfig, dest_fields: &[String]) -> Result<Self> {
        let mut fields = Vec::new();
        let mut index = Vec::new();
        let mut kinds = Vec::new();
        let mut comparisons = Vec::new();
        for (field, kind) in &config.fields {
            let at = dest_fields
                .iter()
                .position(|f| f == field)
                .ok_or_else(|| eyre!("objects.{name}.match.fields.{field}: '{field}' is not a mapped field"))?;
            comparisons.push(kind.to_string());
            let kind = Kind::parse(kind)
                .ok_or_else(|| eyre!("objects.{name}.match.fields.{field}: unknown comparison '{kind}'"))?;
            fields.push(field.clone());
            index.push(at);
            kinds.push(kind);
        }
        let field_no = |f: &String| -> Result<usize> {
            fields
                .iter()
                .position(|x| x == f)
                .ok_or_else(|| eyre!("objects.{name}.match.blocks: '{f}' is not compared"))
        };
        let blocks = if config.blocks.is_empty() {
            default_blocks(&kinds)
        } else {
            config.blocks.iter().map(|b| b.iter().map(field_no).collect::<Result<Vec<_>>>()).collect::<Result<_>>()?
        };
        let mut overrides = Vec::new();
        for (field, levels) in &config.weights {
            let f = field_no(field)?;
            for (level, points) in levels {
                let l = kinds[f]
                    .level_key(level)
                    .ok_or_else(|| eyre!("objects.{name}.match.weights.{field}: no level '{level}'"))?;
                overrides.push((f, l, *points));
            }
        }
        Ok(Self {
            fields,
            comparisons,
            index,
            linker: Linker {
                kinds,
                blocks,
                link_above: config.link_above,
                review_above: config.review_above,
                margin: config.margin,
            },
            overrides,
        })
    }

    /// The compared fields' values of a mapped record.
    pub fn values(&self, mapped: &[Value]) -> Values {
        self.index.iter().map(|&i| mapped.get(i).cloned().flatten()).collect()
    }

    /// Whether a mapped record's compared fields hold `values` (what [`LinkagePlan::values`]
    /// would make of it), without copying them.
    pub fn same_values(&self, mapped: &[Value], values: &Values) -> bool {
        self.index.len() == values.len()
            && self.index.iter().zip(values).all(|(&i, v)| mapped.get(i).and_then(|m| m.as_deref()) == v.as_deref())
    }

    /// The estimated model with the project file's weights put in: a level's weight is
    /// `log2(m / u)`, so `m` is set to give exactly the points asked for.
    /// Each compared field with its comparison: what a model must weigh to be used again.
    pub fn compared(&self) -> Vec<String> {
        self.fields.iter().zip(&self.comparisons).map(|(f, c)| format!("{f}:{c}")).collect()
    }

    pub fn with_overrides(&self, mut model: Model) -> Model {
        for &(f, l, points) in &self.overrides {
            if let (Some(u), Some(m)) = (model.u.get(f).and_then(|u| u.get(l)).copied(), model.m.get_mut(f)) {
                m[l] = u * 2f64.powf(points);
            }
        }
        model
    }
}

/// The blocking keys when the file names none: each field that alone may say who someone is
/// (email, phone, id or date, exact, domain, company) alone; every pair of name fields (first +
/// last name); each name field with each id or date (surname + birth date). A name alone is too
/// common to find candidates by. An id or a date alone finds the copy whose names were both
/// mistyped (FEBRL's `georhe` for `webb`); a value too many records share (a birth date in a
/// large file, a street number) is crowded and finds nothing, so it costs no comparisons.
pub fn default_blocks(kinds: &[Kind]) -> Vec<Vec<usize>> {
    let mut blocks = Vec::new();
    for (f, k) in kinds.iter().enumerate() {
        if matches!(k, Kind::Email | Kind::Phone | Kind::Digits | Kind::Exact | Kind::Domain | Kind::Company) {
            blocks.push(vec![f]);
        }
    }
    let names: Vec<usize> = (0..kinds.len()).filter(|&f| kinds[f] == Kind::Name).collect();
    for (i, &a) in names.iter().enumerate() {
        for &b in &names[i + 1..] {
            blocks.push(vec![a, b]);
        }
    }
    for &n in &names {
        for (f, k) in kinds.iter().enumerate() {
            if *k == Kind::Digits {
                blocks.push(vec![n, f]);
            }
        }
    }
    // Nothing above (ids only, a single name): each field alone, rather than no candidates.
    if blocks.is_empty() {
        blocks = (0..kinds.len()).map(|f| vec![f]).collect();
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;

    fn config(fields: &[(&str, &str)]) -> LinkageConfig {
        LinkageConfig {
            fields: fields.iter().map(|(f, k)| (f.to_string(), k.to_string())).collect(),
            link_above: 0.99,
            review_above: 0.8,
            margin: 4.0,
            blocks: Vec::new(),
            weights: IndexMap::new(),
        }
    }

    #[test]
    fn default_blocks_pair_names_with_each_other_and_with_dates() {
        let dest: Vec<String> = ["id", "first", "last", "email", "born", "phone"].map(String::from).to_vec();
        let c =
            config(&[("first", "name"), ("last", "name"), ("email", "email"), ("born", "date"), ("phone", "phone")]);
        let p = LinkagePlan::new("contacts", &c, &dest).unwrap();
        assert_eq!(p.index, vec![1, 2, 3, 4, 5]);
        assert_eq!(p.linker.blocks, vec![vec![2], vec![3], vec![4], vec![0, 1], vec![0, 3], vec![1, 3]]);
        let values = p.values(&[Some("7".into()), Some("Ann".into()), None, Some("a@x".into()), None, None]);
        assert_eq!(values[0].as_deref(), Some("Ann"));
        assert_eq!(values[2].as_deref(), Some("a@x"));
    }

    #[test]
    fn weights_set_by_hand_replace_the_estimate() {
        let dest: Vec<String> = ["email"].map(String::from).to_vec();
        let mut c = config(&[("email", "email")]);
        c.weights.insert("email".into(), [("equal".to_string(), 10.0)].into_iter().collect());
        let p = LinkagePlan::new("contacts", &c, &dest).unwrap();
        let model = p.with_overrides(Model::start(&[4]));
        assert!((model.weights()[0][0] - 10.0).abs() < 1e-9);
        let mut bad = config(&[("email", "email")]);
        bad.weights.insert("email".into(), [("close".to_string(), 1.0)].into_iter().collect());
        assert!(LinkagePlan::new("contacts", &bad, &dest).is_err());
    }
}
