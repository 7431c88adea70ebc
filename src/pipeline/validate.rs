//! The validate stage: the values about to be written are checked against the destination's
//! rules — required, type, length, picklist, owner. Any failure holds the record in the queue.

use super::map::Owners;
use super::plan::ObjectPlan;
use super::transform;
use crate::model::{FieldType, Issue, Rule, Value};

/// Issues of the final values; fields that already have an issue (from mapping) are not re-checked.
/// `written` marks the fields Cutover is about to write (for an update, the changed ones): only
/// they are checked for type, length, picklist and owner — a destination's own values that
/// Cutover leaves alone are not its to judge. Required fields are checked on the final record.
pub fn validate(
    plan: &ObjectPlan,
    owners: &Owners,
    values: &[Value],
    known: &[Issue],
    written: Option<&[bool]>,
) -> Vec<Issue> {
    let mut issues = Vec::new();
    for (i, (rule, value)) in plan.rules.iter().zip(values).enumerate() {
        if known.iter().any(|i| i.field == rule.dest) {
            continue;
        }
        let checked = written.is_none_or(|w| w.get(i).copied().unwrap_or(true));
        let issue = |r: Rule, message: String, suggestion: Option<String>| Issue {
            field: rule.dest.clone(),
            rule: r,
            value: value.clone(),
            message,
            suggestion,
        };
        if checked
            && let Some(v) = value.as_deref()
            && let Some(message) = control_character(plan, rule, v)
        {
            issues.push(issue(
                Rule::ControlCharacter,
                message,
                Some("correct the value, or clean the field with transform = \"strip_control\"".into()),
            ));
            continue;
        }
        let Some(v) = value.as_deref().filter(|s| !s.trim().is_empty()) else {
            if rule.required {
                issues.push(issue(
                    Rule::Required,
                    format!("'{}' is required but blank", rule.dest),
                    Some("set a value, or give the field a default in the mapping".into()),
                ));
            }
            continue;
        };
        // A parent reference holds an id the destination itself gave (from the id map).
        if !checked || rule.parent.is_some() {
            continue;
        }
        let field = plan.schema.field(&rule.dest);
        if let Some(f) = field
            && let Some(message) = type_problem(f.ty, v)
        {
            issues.push(issue(Rule::Type, message, None));
            continue;
        }
        if let Some(max) = rule.max_length
            && v.chars().count() > max
        {
            issues.push(issue(
                Rule::Length,
                format!("'{}' holds {} characters; the destination takes at most {max}", rule.dest, v.chars().count()),
                Some(format!("shorten it to {max} characters")),
            ));
            continue;
        }
        // A multi-select's value is several allowed values joined with `;`.
        let parts: Vec<&str> = match field {
            Some(f) if f.multiple => v.split(';').map(str::trim).filter(|p| !p.is_empty()).collect(),
            _ => vec![v],
        };
        if let Some(list) = field.and_then(|f| f.picklist.as_ref())
            && let Some(bad) = parts.iter().find(|p| !list.iter().any(|allowed| allowed == *p))
        {
            let close = list
                .iter()
                .map(|a| (strsim::jaro_winkler(&a.to_lowercase(), &bad.to_lowercase()), a))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .filter(|(s, _)| *s > 0.85);
            let shown: Vec<&str> = list.iter().take(8).map(String::as_str).collect();
            issues.push(issue(
                Rule::Picklist,
                format!("'{bad}' is not an allowed value of '{}'", rule.dest),
                Some(match close {
                    Some((_, a)) => format!("did you mean '{a}'?"),
                    None => format!("one of: {}{}", shown.join(", "), if list.len() > 8 { ", …" } else { "" }),
                }),
            ));
            continue;
        }
        if rule.owner && !owners.is_user(v) {
            issues.push(issue(
                Rule::OwnerNotProvisioned,
                format!("'{v}' is not the id of a destination user"),
                Some("use a user id from the destination".into()),
            ));
        }
    }
    issues
}

/// A control character the field must not hold: NUL in any field (databases refuse or truncate
/// it); any other C0 control but tab, line feed and carriage return, or DEL, in every field that
/// is not free text. Free text is a text field without a length limit that is not a key, owner,
/// parent, picklist or translation, and not a name — a note keeps what its author typed.
fn control_character(plan: &ObjectPlan, rule: &super::plan::FieldRule, v: &str) -> Option<String> {
    let at = |c: char| v.chars().position(|x| x == c).map_or(0, |p| p + 1);
    if v.contains('\0') {
        return Some(format!("'{}' holds a NUL character (at character {})", crate::text::shown(v), at('\0')));
    }
    let bad = v.chars().find(|&c| (c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{7f}')?;
    let field = plan.schema.field(&rule.dest);
    let free_text = field.is_none_or(|f| f.ty == FieldType::Text && f.picklist.is_none())
        && rule.max_length.is_none()
        && !rule.owner
        && rule.parent.is_none()
        && rule.translate.is_none()
        && !plan.match_keys.iter().any(|k| k.field == rule.dest)
        && !rule.dest.to_ascii_lowercase().contains("name");
    (!free_text).then(|| {
        format!(
            "'{}' holds the control character U+{:04X} (at character {})",
            crate::text::shown(v),
            bad as u32,
            at(bad)
        )
    })
}

fn type_problem(ty: FieldType, v: &str) -> Option<String> {
    let ok = match ty {
        FieldType::Text => true,
        FieldType::Integer => v.parse::<i64>().is_ok(),
        FieldType::Number => v.parse::<f64>().is_ok_and(f64::is_finite),
        FieldType::Decimal => transform::decimal(v).is_ok_and(|d| d == v),
        FieldType::Date => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok(),
        FieldType::Datetime => chrono::DateTime::parse_from_rfc3339(v).is_ok(),
        FieldType::Boolean => matches!(v, "true" | "false"),
        FieldType::Email => transform::email(v).is_ok_and(|e| e == v),
        FieldType::Phone => v.starts_with('+') && v.len() > 4 && v[1..].bytes().all(|b| b.is_ascii_digit()),
    };
    (!ok).then(|| {
        let what = match ty {
            FieldType::Text => "text",
            FieldType::Integer => "a whole number",
            FieldType::Number => "a number",
            FieldType::Decimal => "a decimal number like 1234.50",
            FieldType::Date => "a date (YYYY-MM-DD)",
            FieldType::Datetime => "a date-time (YYYY-MM-DDTHH:MM:SSZ)",
            FieldType::Boolean => "true or false",
            FieldType::Email => "a lower-case email address",
            FieldType::Phone => "a phone number in E.164 form (+14155552671)",
        };
        format!("'{v}' is not {what}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MergeRule;
    use crate::model::{DestField, DestSchema, DestUser};
    use crate::pipeline::plan::{FieldRule, SourceExpr};
    use std::sync::Arc;

    fn rule(dest: &str, required: bool, max_length: Option<usize>, owner: bool) -> FieldRule {
        FieldRule {
            dest: dest.into(),
            expr: SourceExpr::Nothing,
            transforms: vec![],
            translate: None,
            parent: None,
            owner,
            default: None,
            required,
            max_length,
            truncate: false,
            invalid: Default::default(),
            currency_to: None,
        }
    }

    fn plan() -> ObjectPlan {
        let f = |name: &str, ty, picklist: Option<Vec<&str>>| DestField {
            multiple: false,
            name: name.into(),
            ty,
            required: false,
            max_length: None,
            picklist: picklist.map(|p| p.into_iter().map(String::from).collect()),
        };
        ObjectPlan {
            person: Default::default(),
            name: "deals".into(),
            source_object: "deals".into(),
            dest_object: "deals".into(),
            id_field: "id".into(),
            source_fields: vec!["id".to_string()].into(),
            dest_fields: vec![].into(),
            rules: vec![
                rule("dealname", true, Some(5), false),
                rule("amount", false, None, false),
                rule("dealstage", false, None, false),
                rule("owner", false, None, true),
                rule("closedate", false, None, false),
            ],
            match_keys: vec![],
            merge: MergeRule::FillBlanks,
            schema: Arc::new(DestSchema {
                object: "deals".into(),
                id_field: "id".into(),
                fields: vec![
                    f("dealname", FieldType::Text, None),
                    f("amount", FieldType::Decimal, None),
                    f("dealstage", FieldType::Text, Some(vec!["closedwon", "closedlost"])),
                    f("owner", FieldType::Integer, None),
                    f("closedate", FieldType::Date, None),
                ],
            }),
            modified: None,
            shared_destination: false,
            filter: None,
            repeat: None,
            linkage: None,
        }
    }

    #[test]
    fn every_rule_reports_its_field() {
        let owners = Owners::new(&[DestUser { id: "7".into(), name: "Ann".into(), email: None }], &Default::default());
        let vals = |v: [Option<&str>; 5]| v.map(|x| x.map(String::from)).to_vec();
        let ok = validate(
            &plan(),
            &owners,
            &vals([Some("Deal"), Some("10.50"), Some("closedwon"), Some("7"), Some("2024-01-31")]),
            &[],
            None,
        );
        assert!(ok.is_empty(), "{ok:?}");
        let bad = validate(
            &plan(),
            &owners,
            &vals([None, Some("ten"), Some("closedwn"), Some("8"), Some("31/01/2024")]),
            &[],
            None,
        );
        let rules: Vec<(String, Rule)> = bad.iter().map(|i| (i.field.clone(), i.rule)).collect();
        assert_eq!(
            rules,
            vec![
                ("dealname".into(), Rule::Required),
                ("amount".into(), Rule::Type),
                ("dealstage".into(), Rule::Picklist),
                ("owner".into(), Rule::OwnerNotProvisioned),
                ("closedate".into(), Rule::Type),
            ]
        );
        assert_eq!(bad[2].suggestion.as_deref(), Some("did you mean 'closedwon'?"));
        let long = validate(&plan(), &owners, &vals([Some("Too long"), None, None, None, None]), &[], None);
        assert_eq!(long[0].rule, Rule::Length);
        let legacy = vals([Some("Deal"), Some("ten"), None, None, None]);
        let only_name = [true, false, false, false, false];
        assert!(
            validate(&plan(), &owners, &legacy, &[], Some(&only_name)).is_empty(),
            "unwritten fields are not judged"
        );
        let blank_required = vals([None, None, None, None, None]);
        assert_eq!(validate(&plan(), &owners, &blank_required, &[], Some(&[false; 5]))[0].rule, Rule::Required);
    }

    #[test]
    fn a_multi_select_holds_each_of_its_values_to_the_picklist() {
        let owners = Owners::new(&[], &Default::default());
        let mut plan = plan();
        let mut schema = (*plan.schema).clone();
        schema.fields[2].multiple = true;
        plan.schema = Arc::new(schema);
        let vals = |stage: &str| [Some("Deal"), None, Some(stage), None, None].map(|x| x.map(String::from)).to_vec();
        for fine in ["closedwon", "closedwon;closedlost", " closedlost ; closedwon ;"] {
            assert!(validate(&plan, &owners, &vals(fine), &[], None).is_empty(), "{fine}");
        }
        let held = validate(&plan, &owners, &vals("closedwon;closedwn"), &[], None);
        assert_eq!(held.len(), 1);
        assert!(held[0].message.starts_with("'closedwn' is not an allowed value"), "{}", held[0].message);
        assert_eq!(held[0].suggestion.as_deref(), Some("did you mean 'closedwon'?"));
    }
}
