//! The map stage: source values → destination values, with a field-level issue wherever a value
//! cannot be mapped (no translation entry, owner not provisioned, parent not written, bad phone…).

use super::plan::InvalidPolicy;
use super::plan::{FieldRule, ObjectPlan, Part, SourceExpr};
use super::transform::{self, Rejection, TransformSettings};
use crate::model::{DestUser, Issue, Rule, SourceRecord, Value};
use crate::store::Store;
use color_eyre::eyre::Result;
use foldhash::HashMap;
use indexmap::IndexMap;
use std::sync::Arc;

/// A record after mapping: its destination values aligned with the plan's `dest_fields`.
#[derive(Debug, Clone)]
pub struct Mapped {
    pub source: SourceRecord,
    pub values: Vec<Value>,
    pub issues: Vec<Issue>,
    /// What was written on an assumption to verify (a phone number not assigned in its region):
    /// audited with the record, reconciled per rule. Never a reason to hold it.
    pub warnings: Vec<Issue>,
    /// The parent this record waits for, when its parent is held in the queue.
    pub waiting_on: Option<(String, String)>,
    /// An operator's decision on a held match (the [`MATCH_CHOICE`] correction).
    pub match_choice: Option<MatchChoice>,
    /// 1 for the first row under its source id in the run, 2 for a second, … (see `seen`).
    pub occurrence: u32,
    /// A later row under the id holding exactly the first row's values.
    pub same_as_first: bool,
    /// [`super::delta::source_hash_u64`] of the source values as read, when extraction took it.
    pub source_hash: Option<u64>,
}

pub use crate::model::{CREATE_NEW, MATCH_CHOICE};

/// What an operator decided for a record whose match needed a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchChoice {
    CreateNew,
    MergeInto(String),
}

impl MatchChoice {
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "" => None,
            CREATE_NEW => Some(Self::CreateNew),
            id => Some(Self::MergeInto(id.to_string())),
        }
    }
}

/// Resolves source owner values (display names, emails) to destination user ids.
#[derive(Debug, Default)]
pub struct Owners {
    ids: HashMap<String, String>,
    by_email: HashMap<String, String>,
    by_name: HashMap<String, String>,
    aliases: HashMap<String, String>,
    names: Vec<String>,
}

fn fold(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

impl Owners {
    pub fn new(users: &[DestUser], aliases: &IndexMap<String, String>) -> Self {
        let mut o = Owners::default();
        for u in users {
            o.ids.insert(u.id.clone(), u.id.clone());
            if let Some(e) = &u.email {
                o.by_email.insert(fold(e), u.id.clone());
            }
            if !u.name.trim().is_empty() {
                o.by_name.insert(fold(&u.name), u.id.clone());
                o.names.push(u.name.clone());
            }
        }
        o.aliases = aliases.iter().map(|(k, v)| (fold(k), v.clone())).collect();
        o
    }

    fn direct(&self, v: &str) -> Option<String> {
        let k = fold(v);
        self.ids.get(v.trim()).or_else(|| self.by_email.get(&k)).or_else(|| self.by_name.get(&k)).cloned()
    }

    pub fn is_user(&self, id: &str) -> bool {
        self.ids.contains_key(id)
    }

    pub fn resolve(&self, value: &str) -> Result<String, Rejection> {
        if let Some(target) = self.aliases.get(&fold(value)) {
            return self.direct(target).ok_or_else(|| Rejection {
                rule: Rule::OwnerNotProvisioned,
                message: format!("owner '{}' is aliased to '{target}', which is not a destination user", value.trim()),
                suggestion: Some("fix the alias under [owners.aliases]".into()),
            });
        }
        self.direct(value).ok_or_else(|| {
            let wanted = fold(value);
            let close = self
                .names
                .iter()
                .map(|n| (strsim::jaro_winkler(&fold(n), &wanted), n))
                .filter(|(score, _)| *score > 0.9)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            Rejection {
                rule: Rule::OwnerNotProvisioned,
                message: format!("owner '{}' is not a user in the destination", value.trim()),
                suggestion: Some(match close {
                    Some((_, name)) => format!("did you mean '{name}'? map it under [owners.aliases]"),
                    None => "provision the user in the destination, or map the name under [owners.aliases]".into(),
                }),
            }
        })
    }
}

/// Maps records of one object. Holds a read connection to the state store for parent ids.
pub struct Mapper {
    pub plan: Arc<ObjectPlan>,
    settings: TransformSettings,
    owners: Arc<Owners>,
    store: Store,
    /// Owner values repeat on nearly every record: each distinct one is resolved once.
    owner_cache: std::cell::RefCell<HashMap<String, Result<String, Rejection>>>,
    /// Each field's default as it is written (see [`default_value`]), by destination field.
    defaults: HashMap<String, Result<Value, Rejection>>,
}

/// A field's default read like one of its values: through its transforms (an email checked, a
/// date made ISO), its translation (unless it is a translation's target already) and the owner
/// lookup (a user's email or name becomes their id). `check` reports a default that does not read.
pub fn default_value(rule: &FieldRule, settings: &TransformSettings, owners: &Owners) -> Result<Value, Rejection> {
    let Some(mut v) = rule.default.clone().filter(|d| !d.trim().is_empty()) else { return Ok(None) };
    for t in &rule.transforms {
        v = transform::apply(*t, v, settings)?;
    }
    if let Some((table, entries)) = &rule.translate
        && !entries.values().any(|target| *target == v)
    {
        v = translate(table, entries, &v)?;
    }
    if rule.owner {
        v = owners.resolve(&v)?;
    }
    Ok((!v.is_empty()).then_some(v))
}

/// Distinct owner values remembered per mapper (a source has a few dozen owners, not thousands).
const OWNER_CACHE: usize = 10_000;

fn blank(v: &Value) -> bool {
    v.as_deref().is_none_or(|s| s.trim().is_empty())
}

fn split_part(s: &str, sep: &str, part: Part) -> Option<String> {
    let s = s.trim();
    let piece = match part {
        Part::First => s.split(sep).next().map(str::to_string),
        Part::Rest => s.split_once(sep).map(|(_, rest)| rest.to_string()),
        Part::Last => s.rsplit(sep).next().map(str::to_string),
        Part::Index(i) => {
            let pieces: Vec<&str> = s.split(sep).collect();
            let idx = if i < 0 { pieces.len() as i64 + i } else { i };
            usize::try_from(idx).ok().and_then(|i| pieces.get(i)).map(|p| p.to_string())
        }
    };
    piece.map(|p| p.trim().to_string()).filter(|p| !p.is_empty())
}

impl Mapper {
    pub fn new(plan: Arc<ObjectPlan>, settings: TransformSettings, owners: Arc<Owners>, store: Store) -> Self {
        let defaults = plan
            .rules
            .iter()
            .filter(|r| r.default.is_some())
            .map(|r| (r.dest.clone(), default_value(r, &settings, &owners)))
            .collect();
        Self { plan, settings, owners, store, owner_cache: Default::default(), defaults }
    }

    /// Maps one record. `corrections` are the operator's: `source.FIELD` replaces a source value
    /// before mapping, any other key replaces the mapped value of that destination field.
    pub fn map(&self, record: SourceRecord, corrections: &IndexMap<String, Option<String>>) -> Result<Mapped> {
        // The record keeps its values as read (what the queue shows, what the source hash and a
        // delta compare with); a `source.FIELD` correction applies to a copy that is mapped.
        let mut corrected: Option<Vec<Value>> = None;
        for (key, value) in corrections {
            if let Some(field) = key.strip_prefix("source.")
                && let Some(i) = self.plan.source_fields.iter().position(|f| f == field)
            {
                corrected.get_or_insert_with(|| record.values.clone())[i] = value.clone();
            }
        }
        let source = record;
        let read: &[Value] = corrected.as_deref().unwrap_or(&source.values);
        let mut values = Vec::with_capacity(self.plan.rules.len());
        let mut issues = Vec::new();
        let mut warnings = Vec::new();
        let mut waiting_on = None;
        for rule in &self.plan.rules {
            if let Some(corrected) = corrections.get(&rule.dest) {
                // A correction is read like a value of the field: an email is checked, a phone
                // written in E.164, a parent resolved — it never goes to the destination raw.
                match self.corrected_value(rule, corrected.clone()) {
                    Ok(v) => values.push(v),
                    Err(r) => {
                        issues.push(Issue {
                            field: rule.dest.clone(),
                            rule: r.rule,
                            value: corrected.clone(),
                            message: format!("the correction: {}", r.message),
                            suggestion: r.suggestion.or_else(|| Some("correct it again".into())),
                        });
                        values.push(corrected.clone());
                    }
                }
                continue;
            }
            let raw = extract(rule, read);
            let mut warning = None;
            match self.map_value(rule, raw.clone(), &mut waiting_on, &mut warning) {
                Ok(v) => {
                    if let Some(w) = warning {
                        warnings.push(Issue { field: rule.dest.clone(), value: raw, ..w });
                    }
                    values.push(v)
                }
                Err(r) => {
                    issues.push(Issue {
                        field: rule.dest.clone(),
                        rule: r.rule,
                        value: raw,
                        message: r.message,
                        suggestion: r.suggestion,
                    });
                    values.push(None);
                }
            }
        }
        self.currencies(read, &mut values, &mut issues);
        let match_choice = corrections.get(MATCH_CHOICE).cloned().flatten().as_deref().and_then(MatchChoice::parse);
        Ok(Mapped {
            source,
            values,
            issues,
            warnings,
            waiting_on,
            match_choice,
            occurrence: 1,
            same_as_first: false,
            source_hash: None,
        })
    }

    fn map_value(
        &self,
        rule: &FieldRule,
        raw: Value,
        waiting_on: &mut Option<(String, String)>,
        warning: &mut Option<Issue>,
    ) -> Result<Value, Rejection> {
        let Some(mut v) = raw.filter(|s| !s.trim().is_empty()) else {
            return match self.defaults.get(&rule.dest) {
                None => Ok(None),
                Some(Ok(v)) => Ok(v.clone()),
                Some(Err(r)) => Err(Rejection { message: format!("the default: {}", r.message), ..r.clone() }),
            };
        };
        for t in &rule.transforms {
            if matches!(t, crate::config::Transform::Date | crate::config::Transform::Datetime)
                && warning.is_none()
                && !self.settings.order_stated
                && let Some(message) = transform::ambiguous_order(&v, self.settings.day_first)
            {
                let read = transform::apply(*t, v, &self.settings)?;
                *warning = Some(Issue {
                    field: String::new(),
                    rule: Rule::AmbiguousDate,
                    value: None,
                    message,
                    suggestion: Some("check a few of these records in the source system".into()),
                });
                v = read;
                continue;
            }
            if *t != crate::config::Transform::Phone {
                v = transform::apply(*t, v, &self.settings)?;
                continue;
            }
            // A number that parses but is not assigned: the field's `invalid` policy decides.
            let (e164, unassigned) = transform::phone_e164(&v, self.settings.region)?;
            // Only a value with letters or `;`/`#` can carry an extension: no second parse otherwise.
            if v.contains(|c: char| c.is_ascii_alphabetic() || c == ';' || c == '#')
                && let Some(ext) = transform::phone_extension(&v, self.settings.region)
                && !self.keeps_extension(rule)
            {
                *warning = Some(Issue {
                    field: String::new(),
                    rule: Rule::DroppedExtension,
                    value: None,
                    message: format!("extension {ext} dropped: written as {e164}, and no field keeps the extension"),
                    suggestion: Some(
                        "map a destination field with transform = \"phone_extension\" from the same source field"
                            .into(),
                    ),
                });
            }
            let Some(why) = unassigned else {
                v = e164;
                continue;
            };
            let warn = |message: String| Issue {
                field: String::new(),
                rule: Rule::UnassignedPhone,
                value: None,
                message,
                suggestion: why.suggestion.clone(),
            };
            match rule.invalid {
                InvalidPolicy::Queue => return Err(why),
                InvalidPolicy::Warn => {
                    *warning = Some(warn(format!("{}: written as {e164}", why.message)));
                    v = e164;
                }
                InvalidPolicy::Blank => {
                    *warning = Some(warn(format!("{}: left blank", why.message)));
                    return Ok(None);
                }
            }
        }
        if rule.transforms.contains(&crate::config::Transform::PhoneExtension) && v.is_empty() {
            return Ok(None);
        }
        if let Some((table, entries)) = &rule.translate {
            v = translate(table, entries, &v)?;
        }
        if rule.owner {
            v = self.resolve_owner(v)?;
        }
        if let Some(parent) = &rule.parent {
            let key = v.trim().to_string();
            v = match self.store.dest_id(parent, &key) {
                Ok(Some(id)) => id,
                Ok(None) => {
                    let queued = self.store.is_queued(parent, &key).unwrap_or(false);
                    if queued {
                        *waiting_on = Some((parent.clone(), key.clone()));
                        return Err(Rejection {
                            rule: Rule::ParentNotWritten,
                            message: format!("parent {parent} {key} is held in the conflict queue"),
                            suggestion: Some(format!("fix {parent} {key}; this record is released when it is written")),
                        });
                    }
                    let why = match self.store.latest_outcome(parent, &key).ok().flatten() {
                        Some((outcome, detail)) if outcome == "skipped" || outcome == "failed" => format!(
                            "was {outcome}{}",
                            detail.map(|d| format!(" ({})", crate::text::shown(&d))).unwrap_or_default()
                        ),
                        Some(_) => "is not in the destination".to_string(),
                        None => "has no outcome in any run (it is not in the source, or its row could not be \
                                 read)"
                            .to_string(),
                    };
                    // Also waits for it: a reprocess or a delta that writes it releases this record.
                    *waiting_on = Some((parent.clone(), key.clone()));
                    return Err(Rejection {
                        rule: Rule::ParentMissing,
                        message: format!("parent {parent} {key} {why}: this record cannot point at it"),
                        suggestion: Some(format!(
                            "bring {parent} {key} into the migration, correct the reference, or skip this record"
                        )),
                    });
                }
                Err(e) => {
                    return Err(Rejection {
                        rule: Rule::ParentMissing,
                        message: format!("cannot look up parent: {e}"),
                        suggestion: None,
                    });
                }
            };
        }
        if rule.truncate
            && let Some(max) = rule.max_length
            && v.chars().count() > max
        {
            let n = v.chars().count();
            v = transform::cut_to(&v, max);
            warning.get_or_insert(Issue {
                field: String::new(),
                rule: Rule::Truncated,
                value: None,
                message: format!("{n} characters, cut to {} (the field takes {max})", v.chars().count()),
                suggestion: Some("the whole value stays in the source and in this audit row".into()),
            });
        }
        Ok(Some(v))
    }
}

impl Mapper {
    /// Each amount's currency into the field its `currency_to` names: filled when that field is
    /// blank; a field that says another currency than the amount holds the record.
    fn currencies(&self, read: &[Value], values: &mut [Value], issues: &mut Vec<Issue>) {
        for rule in &self.plan.rules {
            let Some(target) = rule.currency_to else { continue };
            // The value read, or the default that stood in for a blank one.
            let raw = extract(rule, read).filter(|v| !v.trim().is_empty()).or_else(|| rule.default.clone());
            let Some(raw) = raw else { continue };
            let Some(code) = transform::money(&raw).ok().and_then(|m| m.currency) else { continue };
            let Some(slot) = values.get_mut(target) else { continue };
            match slot.as_deref().map(str::trim) {
                None | Some("") => *slot = Some(code.to_string()),
                Some(said) if said.eq_ignore_ascii_case(code) => {}
                Some(said) => issues.push(Issue {
                    field: rule.dest.clone(),
                    rule: Rule::Type,
                    value: Some(raw.clone()),
                    message: format!(
                        "'{}' is an amount in {code}, but {} says {}",
                        crate::text::shown(&raw),
                        self.plan.rules[target].dest,
                        crate::text::shown(said)
                    ),
                    suggestion: Some("correct the amount or the currency (here or in the export)".into()),
                }),
            }
        }
    }

    /// Whether another field of the object keeps the extension of this phone field's source.
    fn keeps_extension(&self, phone: &FieldRule) -> bool {
        self.plan.rules.iter().any(|r| {
            r.transforms.contains(&crate::config::Transform::PhoneExtension)
                && matches!((&r.expr, &phone.expr), (SourceExpr::Field(a), SourceExpr::Field(b)) if a == b)
        })
    }

    /// An operator's value for a destination field, through the field's transforms; a value of
    /// a translated field may be a translation's source or its target; an owner is resolved as a
    /// name, an email or a user id; a parent is the parent's source id, or the destination id of
    /// a parent record Cutover wrote. A blank is a blank (a required field says so later).
    fn corrected_value(&self, rule: &FieldRule, value: Value) -> Result<Value, Rejection> {
        let Some(mut v) = value.filter(|s| !s.trim().is_empty()) else { return Ok(None) };
        for t in &rule.transforms {
            v = transform::apply(*t, v, &self.settings)?;
        }
        // A picklist checks the value itself later (suggesting the closest option).
        let picklist = self.plan.schema.field(&rule.dest).is_some_and(|f| f.picklist.is_some());
        if let Some((table, entries)) = &rule.translate
            && !entries.values().any(|target| *target == v)
        {
            match translate(table, entries, &v) {
                Ok(t) => v = t,
                Err(_) if picklist => {}
                Err(r) => return Err(r),
            }
        }
        if rule.owner {
            v = self.resolve_owner(v)?;
        }
        if let Some(parent) = &rule.parent {
            let key = v.trim().to_string();
            let failed = |e: color_eyre::Report| Rejection {
                rule: Rule::ParentMissing,
                message: format!("cannot look up parent: {e}"),
                suggestion: None,
            };
            v = match self.store.dest_id(parent, &key).map_err(failed)? {
                Some(id) => id,
                None if self.store.links_to(parent, &key).map_err(failed)? => key,
                None => {
                    return Err(Rejection {
                        rule: Rule::ParentMissing,
                        message: format!(
                            "'{}' is neither the source id nor the destination id of a {parent} record Cutover wrote",
                            crate::text::shown(&key)
                        ),
                        suggestion: Some(format!("give the source id of a {parent} record that was written")),
                    });
                }
            };
        }
        Ok(Some(v))
    }

    fn resolve_owner(&self, value: String) -> Result<String, Rejection> {
        if let Some(hit) = self.owner_cache.borrow().get(&value) {
            return hit.clone();
        }
        let resolved = self.owners.resolve(&value);
        let mut cache = self.owner_cache.borrow_mut();
        if cache.len() < OWNER_CACHE {
            cache.insert(value, resolved.clone());
        }
        resolved
    }
}

fn extract(rule: &FieldRule, values: &[Value]) -> Value {
    let get = |i: usize| values.get(i).cloned().flatten();
    match &rule.expr {
        SourceExpr::Nothing => None,
        SourceExpr::Field(i) => get(*i),
        SourceExpr::Concat(list, sep) => {
            let parts: Vec<String> =
                list.iter().filter_map(|i| get(*i)).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            if parts.is_empty() { None } else { Some(parts.join(sep)) }
        }
        SourceExpr::Split(i, sep, part) => get(*i).and_then(|s| split_part(&s, sep, *part)),
    }
}

fn translate(table: &str, entries: &IndexMap<String, String>, value: &str) -> Result<String, Rejection> {
    let v = value.trim();
    if let Some(t) = entries.get(v) {
        return Ok(t.clone());
    }
    let folded = fold(v);
    if let Some((_, t)) = entries.iter().find(|(k, _)| fold(k) == folded) {
        return Ok(t.clone());
    }
    let close = entries
        .keys()
        .map(|k| (strsim::jaro_winkler(&fold(k), &folded), k))
        .filter(|(s, _)| *s > 0.88)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    Err(Rejection {
        rule: Rule::NoTranslation,
        message: format!("no entry for '{v}' in translation table '{table}'"),
        suggestion: Some(match close {
            Some((_, k)) => {
                format!("did you mean '{k}'? or add \"{v}\" = \"…\" under [translations.{table}]")
            }
            None => format!("add \"{v}\" = \"…\" under [translations.{table}], or set the field on the queued records"),
        }),
    })
}

/// True when the value is blank (absent or only whitespace).
pub fn is_blank(v: &Value) -> bool {
    blank(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Vec<DestUser> {
        vec![
            DestUser { id: "7".into(), name: "Ana López".into(), email: Some("ana@acme.example".into()) },
            DestUser { id: "9".into(), name: "Bo Chen".into(), email: None },
        ]
    }

    #[test]
    fn owners_resolve_by_name_email_id_and_alias() {
        let mut aliases = IndexMap::new();
        aliases.insert("Bobby".to_string(), "Bo Chen".to_string());
        aliases.insert("Ghost".to_string(), "nobody@x".to_string());
        let o = Owners::new(&users(), &aliases);
        assert_eq!(o.resolve("  ana   LÓPEZ ").as_deref(), Ok("7"));
        assert_eq!(o.resolve("ANA@acme.example").as_deref(), Ok("7"));
        assert_eq!(o.resolve("9").as_deref(), Ok("9"));
        assert_eq!(o.resolve("bobby").as_deref(), Ok("9"));
        let err = o.resolve("Ghost").expect_err("bad alias");
        assert!(err.message.contains("aliased"));
        let err = o.resolve("Ana Lopez").expect_err("not exact");
        assert_eq!(err.rule, Rule::OwnerNotProvisioned);
        assert!(err.suggestion.as_deref().is_some_and(|s| s.contains("Ana López")), "{err:?}");
    }

    #[test]
    fn translations_match_case_insensitively_and_suggest() {
        let mut t = IndexMap::new();
        t.insert("Qualified".to_string(), "qualifiedtobuy".to_string());
        assert_eq!(translate("stage", &t, " qualified ").as_deref(), Ok("qualifiedtobuy"));
        let err = translate("stage", &t, "Qualifed").expect_err("typo");
        assert_eq!(err.rule, Rule::NoTranslation);
        assert!(err.suggestion.as_deref().is_some_and(|s| s.contains("did you mean 'Qualified'")));
        let err = translate("stage", &t, "On Hold").expect_err("missing");
        assert!(err.message.contains("'On Hold'"));
    }

    #[test]
    fn split_parts() {
        assert_eq!(split_part("Mary Ann Smith", " ", Part::First).as_deref(), Some("Mary"));
        assert_eq!(split_part("Mary Ann Smith", " ", Part::Rest).as_deref(), Some("Ann Smith"));
        assert_eq!(split_part("Mary Ann Smith", " ", Part::Last).as_deref(), Some("Smith"));
        assert_eq!(split_part("Mary Ann Smith", " ", Part::Index(-2)).as_deref(), Some("Ann"));
        assert_eq!(split_part("Cher", " ", Part::Rest), None);
        assert_eq!(split_part("Cher", " ", Part::Index(5)), None);
    }
}
