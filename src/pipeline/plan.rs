//! An object's mapping compiled against the real schemas: field positions resolved once, so the
//! per-record stages do no name lookups.

use crate::config::{LoadedConfig, MergeRule, SplitPart, Transform};
use crate::model::{DestSchema, FieldNames, FieldType};
use color_eyre::eyre::{Result, eyre};
use indexmap::IndexMap;
use std::sync::Arc;

/// Where a destination field's value comes from.
#[derive(Debug, Clone)]
pub enum SourceExpr {
    /// Only a default.
    Nothing,
    Field(usize),
    Concat(Vec<usize>, String),
    Split(usize, String, Part),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    First,
    Rest,
    Last,
    Index(i64),
}

/// The transform that reads a value into a destination type's form (`$1,234.50` into a decimal,
/// `06-Feb-2021` into a date), applied after the field's own transforms when it names none: the
/// destination's type says how to read the value, so it is not held for being written otherwise.
fn reader_of(ty: FieldType) -> Option<Transform> {
    Some(match ty {
        FieldType::Text => return None,
        FieldType::Integer => Transform::Integer,
        FieldType::Number | FieldType::Decimal => Transform::Decimal,
        FieldType::Date => Transform::Date,
        FieldType::Datetime => Transform::Datetime,
        FieldType::Boolean => Transform::Boolean,
        FieldType::Email => Transform::Email,
        FieldType::Phone => Transform::Phone,
    })
}

#[derive(Debug, Clone)]
pub struct FieldRule {
    pub dest: String,
    pub expr: SourceExpr,
    pub transforms: Vec<Transform>,
    /// Translation table name and its entries.
    pub translate: Option<(String, Arc<IndexMap<String, String>>)>,
    pub parent: Option<String>,
    pub owner: bool,
    pub default: Option<String>,
    pub required: bool,
    pub max_length: Option<usize>,
    /// Cut a value longer than `max_length` to it, with a warning (`truncate = true`).
    pub truncate: bool,
    /// What a phone number that parses but is not assigned does.
    pub invalid: InvalidPolicy,
    /// The position (in the plan's rules) of the field receiving the currency this amount names.
    pub currency_to: Option<usize>,
}

/// `invalid = "warn" | "queue" | "blank"` on a phone field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InvalidPolicy {
    /// Written in E.164, with a warning in the audit log and reconciliation.
    #[default]
    Warn,
    /// Held in the queue.
    Queue,
    /// Left blank, with a warning.
    Blank,
}

impl InvalidPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "warn" => Some(Self::Warn),
            "queue" => Some(Self::Queue),
            "blank" => Some(Self::Blank),
            _ => None,
        }
    }
}

/// How a match key's values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Email,
    Phone,
    /// A company's web address, compared as its domain (`transform = "domain"`).
    Domain,
    Text,
}

#[derive(Debug, Clone)]
pub struct MatchKey {
    pub field: String,
    /// Position in the mapped values.
    pub index: usize,
    pub kind: KeyKind,
    /// The mapping already normalised the value (email/phone transform), so it is used as is.
    pub mapped_normalised: bool,
}

/// Everything the stages need to know about one object.
#[derive(Debug, Clone)]
pub struct ObjectPlan {
    pub name: String,
    pub source_object: String,
    pub dest_object: String,
    pub id_field: String,
    pub source_fields: FieldNames,
    pub dest_fields: FieldNames,
    pub rules: Vec<FieldRule>,
    pub match_keys: Vec<MatchKey>,
    pub merge: MergeRule,
    pub schema: Arc<DestSchema>,
    /// Position of the source's modified-time field, when the object names one.
    pub modified: Option<usize>,
    /// Another object of the project writes the same destination object: markers name the object.
    pub shared_destination: bool,
    /// The object's row filter, bound to the source's fields.
    pub filter: Option<super::row_filter::RowFilter>,
    /// The object is one entry of a `repeat`: a record with all the entry's fields blank makes no row.
    pub repeat: Option<RepeatRow>,
    /// Record linkage (`match` as a table): who a source record is, by the weight of evidence.
    pub linkage: Option<Arc<super::linkage::setup::LinkagePlan>>,
    /// The fields that say who a person is (see [`PersonFields::find`]).
    pub person: PersonFields,
}

/// The destination fields that say who a person is, found by their usual names: the given
/// name (`firstname`, `first_name`, `givenname`, `forename`), the family name (`lastname`,
/// `surname`, `familyname`), a full name (`fullname`, `contactname`, and `name` itself on an
/// object of people — contacts, persons, leads, … — that has neither of the others) and the
/// birth date (`birthdate`, `date_of_birth`, `dob`, `birthday`). Two records found by a shared
/// email or phone are two people when these say so (see `batch::decide::person_conflict`).
#[derive(Debug, Clone, Default)]
pub struct PersonFields {
    pub given: Option<usize>,
    pub family: Option<usize>,
    pub full: Option<usize>,
    pub born: Option<usize>,
}

impl PersonFields {
    pub fn find(object: &str, dest_object: &str, dest_fields: &[String]) -> Self {
        let squash =
            |f: &str| f.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect::<String>();
        let named = |names: &[&str]| dest_fields.iter().position(|f| names.contains(&squash(f).as_str()));
        const PEOPLE: &[&str] =
            &["contact", "person", "people", "lead", "customer", "user", "member", "employee", "client"];
        let given = named(&["firstname", "givenname", "forename"]);
        let family = named(&["lastname", "surname", "familyname"]);
        let of_people = [object, dest_object].iter().any(|o| PEOPLE.iter().any(|p| squash(o).contains(p)));
        let full = named(&["fullname", "contactname", "personname"])
            .or_else(|| (given.is_none() && family.is_none() && of_people).then(|| named(&["name"])).flatten());
        let born = named(&["birthdate", "dateofbirth", "dob", "birthday"]);
        Self { given, family, full, born }
    }

    /// The field that names a person first: where a conflict of names is reported.
    pub fn name_field(&self) -> Option<usize> {
        self.given.or(self.full).or(self.family)
    }
}

/// One `repeat` entry's source fields, by position.
#[derive(Debug, Clone)]
pub struct RepeatRow {
    pub entry: String,
    pub fields: Vec<(usize, String)>,
}

impl RepeatRow {
    /// Why a record makes no row of this entry, or `None` when it makes one.
    pub fn no_row(&self, values: &[Option<String>]) -> Option<String> {
        let blank = |i: usize| values.get(i).and_then(|v| v.as_deref()).is_none_or(|v| v.trim().is_empty());
        if !self.fields.iter().all(|(i, _)| blank(*i)) {
            return None;
        }
        let names: Vec<&str> = self.fields.iter().map(|(_, n)| n.as_str()).collect();
        let verb = if names.len() == 1 { "is" } else { "are" };
        Some(format!("no row for the repeat entry '{}': {} {verb} blank", self.entry, names.join(" and ")))
    }
}

impl ObjectPlan {
    /// The destination type of each of `dest_fields` (text where the schema does not say).
    pub fn dest_types(&self) -> Vec<crate::model::FieldType> {
        self.dest_fields.iter().map(|f| self.schema.field(f).map_or(crate::model::FieldType::Text, |d| d.ty)).collect()
    }

    pub fn build(
        project: &LoadedConfig,
        name: &str,
        source_fields: FieldNames,
        schema: Arc<DestSchema>,
    ) -> Result<Self> {
        let object = project.object(name).ok_or_else(|| eyre!("no object '{name}' in the project"))?;
        let pos = |f: &str| {
            source_fields.iter().position(|x| x == f).ok_or_else(|| eyre!("objects.{name}: unknown source field '{f}'"))
        };
        let mut rules = Vec::with_capacity(object.fields.len());
        for (dest, spec) in &object.fields {
            let separator = spec.separator.clone().unwrap_or_else(|| " ".into());
            let expr = if let Some(f) = &spec.from {
                SourceExpr::Field(pos(f)?)
            } else if let Some(list) = &spec.concat {
                SourceExpr::Concat(list.iter().map(|f| pos(f)).collect::<Result<_>>()?, separator)
            } else if let Some(f) = &spec.split {
                let part = match &spec.part {
                    None => Part::First,
                    Some(SplitPart::Index(i)) => Part::Index(*i),
                    Some(SplitPart::Named(n)) => match n.as_str() {
                        "rest" => Part::Rest,
                        "last" => Part::Last,
                        _ => Part::First,
                    },
                };
                SourceExpr::Split(pos(f)?, separator, part)
            } else {
                SourceExpr::Nothing
            };
            let field = schema.field(dest);
            let mut transforms = spec.transforms();
            if spec.translate.is_none()
                && spec.parent.is_none()
                && !transforms.contains(&Transform::Owner)
                && let Some(reader) = field.and_then(|f| reader_of(f.ty))
                && !transforms.contains(&reader)
            {
                transforms.push(reader);
            }
            rules.push(FieldRule {
                dest: dest.clone(),
                expr,
                owner: transforms.contains(&Transform::Owner),
                transforms: transforms.into_iter().filter(|t| *t != Transform::Owner).collect(),
                translate: spec.translate.as_ref().and_then(|t| {
                    project.config.translations.get(t).map(|entries| (t.clone(), Arc::new(entries.clone())))
                }),
                parent: spec.parent.clone(),
                default: spec.default.clone(),
                required: spec.required || field.is_some_and(|f| f.required),
                max_length: spec.max_length.or(field.and_then(|f| f.max_length)),
                truncate: spec.truncate,
                invalid: spec.invalid.as_deref().and_then(InvalidPolicy::parse).unwrap_or_default(),
                currency_to: None,
            });
        }
        // A currency field named by `currency_to` only: a field of its own, filled from the amount.
        for (i, spec) in object.fields.values().enumerate() {
            let Some(target) = &spec.currency_to else { continue };
            let at = match rules.iter().position(|r| &r.dest == target) {
                Some(at) => at,
                None => {
                    let field = schema.field(target);
                    rules.push(FieldRule {
                        dest: target.clone(),
                        expr: SourceExpr::Nothing,
                        transforms: Vec::new(),
                        translate: None,
                        parent: None,
                        owner: false,
                        default: None,
                        required: field.is_some_and(|f| f.required),
                        max_length: field.and_then(|f| f.max_length),
                        truncate: false,
                        invalid: InvalidPolicy::default(),
                        currency_to: None,
                    });
                    rules.len() - 1
                }
            };
            rules[i].currency_to = Some(at);
        }
        let dest_fields: FieldNames = rules.iter().map(|r| r.dest.clone()).collect::<Vec<_>>().into();
        let match_keys = object
            .matching
            .keys()
            .iter()
            .filter_map(|k| {
                let index = dest_fields.iter().position(|f| f == k)?;
                let rule = &rules[index];
                let ty = schema.field(k).map(|f| f.ty);
                let kind = if rule.transforms.contains(&Transform::Email) || ty == Some(FieldType::Email) {
                    KeyKind::Email
                } else if rule.transforms.contains(&Transform::Phone) || ty == Some(FieldType::Phone) {
                    KeyKind::Phone
                } else if rule.transforms.contains(&Transform::Domain) {
                    KeyKind::Domain
                } else {
                    KeyKind::Text
                };
                let mapped_normalised = match kind {
                    KeyKind::Email => rule.transforms.contains(&Transform::Email),
                    KeyKind::Phone => rule.transforms.contains(&Transform::Phone),
                    KeyKind::Domain => true,
                    KeyKind::Text => false,
                };
                Some(MatchKey { field: k.clone(), index, kind, mapped_normalised })
            })
            .collect();
        let modified = object.modified.as_ref().and_then(|m| source_fields.iter().position(|f| f == m));
        let filter = match &object.filter {
            None => None,
            Some(text) => Some(
                super::row_filter::RowFilter::parse(text)
                    .and_then(|f| f.bind(&source_fields))
                    .map_err(|e| eyre!("objects.{name}.where: {e}"))?,
            ),
        };
        let repeat = match &object.repeated {
            None => None,
            Some(r) => Some(RepeatRow {
                entry: r.entry.clone(),
                fields: r.columns.iter().map(|c| Ok((pos(c)?, c.clone()))).collect::<Result<_>>()?,
            }),
        };
        let linkage = match object.matching.linkage() {
            Some(l) => Some(Arc::new(super::linkage::setup::LinkagePlan::new(name, l, &dest_fields)?)),
            None => None,
        };
        let dest_object = object.destination_name(name).to_string();
        Ok(Self {
            person: PersonFields::find(name, &dest_object, &dest_fields),
            name: name.to_string(),
            repeat,
            linkage,
            source_object: object.source_name(name).to_string(),
            dest_object,
            id_field: object.id.clone(),
            source_fields,
            dest_fields,
            rules,
            match_keys,
            merge: object.merge_rule(),
            modified,
            filter,
            schema,
            shared_destination: project
                .order
                .iter()
                .filter(|o| project.object(o).is_some_and(|x| x.destination_name(o) == object.destination_name(name)))
                .count()
                > 1,
        })
    }

    /// The idempotency marker a record created from `source_id` carries (see `connect::Marks`):
    /// the source id, prefixed with the object's name when another object of the project writes
    /// the same destination object — two objects' records must never be taken for each other.
    pub fn marker(&self, source_id: &str) -> String {
        if self.shared_destination { format!("{}/{source_id}", self.name) } else { source_id.to_string() }
    }

    /// The source id a marker of this object stands for; `None` for another object's marker.
    pub fn unmark<'m>(&self, marker: &'m str) -> Option<&'m str> {
        if self.shared_destination {
            marker.strip_prefix(self.name.as_str()).and_then(|rest| rest.strip_prefix('/'))
        } else {
            Some(marker)
        }
    }
}
