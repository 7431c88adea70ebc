//! The write stage: creates and updates go to the destination in batches, and every record gets
//! its own answer (its destination id, or the destination's message). An update changes only the
//! fields whose value differs, and keeps a before-image of what it overwrote for the audit log.

use super::plan::ObjectPlan;
use crate::connect::{Change, Destination, Marks, NewRecords, WriteResult};
use crate::model::{FieldType, Value};
use color_eyre::eyre::{Result, eyre};
use indexmap::IndexMap;

/// One destination record to update.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedUpdate {
    pub change: Change,
    /// JSON of the changed fields' values before the update; `None` when nothing changes.
    pub before_image: Option<String>,
    /// "changed a, b" or "no change", for the audit log.
    pub detail: String,
}

/// Compares the destination's current values (blanks as `None`) with the final ones, each as its
/// field's type holds it — `92872.90` is the `92872.9` a destination hands back, a date-time is
/// the same instant however it is spelled — so a re-run of unchanged data changes nothing. The
/// before-image keeps the values as `stored` (an empty string told apart from NULL) when given.
pub fn plan_update(
    fields: &[String],
    types: &[FieldType],
    dest_id: &str,
    current: &[Value],
    stored: Option<&[Value]>,
    target: &[Value],
) -> Result<PlannedUpdate> {
    let ty = |f: usize| types.get(f).copied().unwrap_or(FieldType::Text);
    let value = |v: &[Value], f: usize| v.get(f).cloned().flatten();
    let changed: Vec<usize> = (0..fields.len())
        .filter(|&f| !crate::compare::same(ty(f), value(target, f).as_deref(), value(current, f).as_deref()))
        .collect();
    let before_image = if changed.is_empty() {
        None
    } else {
        let was = stored.filter(|s| s.len() == current.len()).unwrap_or(current);
        let before: IndexMap<&String, &Value> = changed.iter().map(|&f| (&fields[f], &was[f])).collect();
        Some(serde_json::to_string(&before)?)
    };
    let detail = if changed.is_empty() {
        "no change".to_string()
    } else {
        format!("changed {}", changed.iter().map(|&f| fields[f].as_str()).collect::<Vec<_>>().join(", "))
    };
    let values = changed.iter().map(|&f| (fields[f].clone(), target[f].clone())).collect();
    Ok(PlannedUpdate { change: Change { dest_id: dest_id.to_string(), values }, before_image, detail })
}

/// Creates records (values aligned with the plan's destination fields), each marked with its
/// source record; one answer per record.
pub async fn create(
    dest: &dyn Destination,
    plan: &ObjectPlan,
    rows: Vec<Vec<Value>>,
    marks: Marks,
) -> Result<Vec<WriteResult>> {
    let n = rows.len();
    let records = NewRecords { fields: plan.dest_fields.clone(), rows, marks: Some(marks) };
    let results = dest.create(&plan.dest_object, records).await?;
    if results.len() != n {
        return Err(eyre!("the destination answered {} results for {n} new records", results.len()));
    }
    Ok(results)
}

/// Applies changes; one answer per change.
pub async fn update(dest: &dyn Destination, plan: &ObjectPlan, changes: &[Change]) -> Result<Vec<WriteResult>> {
    let results = dest.update(&plan.dest_object, changes).await?;
    if results.len() != changes.len() {
        return Err(eyre!("the destination answered {} results for {} updates", results.len(), changes.len()));
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_changes_only_what_differs_and_keeps_what_it_overwrote() {
        let fields: Vec<String> = ["name", "phone", "owner"].map(String::from).to_vec();
        let types = [FieldType::Text, FieldType::Phone, FieldType::Integer];
        let s = |v: &str| Some(v.to_string());
        let planned = plan_update(&fields, &types, "7", &[s("Ann"), None, s("3")], None, &[s("Ann"), s("+1"), s("4")])
            .expect("plan");
        assert_eq!(planned.change.values, vec![("phone".to_string(), s("+1")), ("owner".to_string(), s("4"))]);
        assert_eq!(planned.before_image.as_deref(), Some(r#"{"phone":null,"owner":"3"}"#));
        assert_eq!(planned.detail, "changed phone, owner");
        let same =
            plan_update(&fields, &types, "7", &[s("Ann"), None, None], None, &[s("Ann"), None, None]).expect("plan");
        assert!(same.change.values.is_empty() && same.before_image.is_none());
        assert_eq!(same.detail, "no change");
        // A blank stored as '' is a blank to compare, and '' again in the before-image.
        let stored = [s("Ann"), s(""), s("3")];
        let filled =
            plan_update(&fields, &types, "7", &[s("Ann"), None, s("3")], Some(&stored), &[s("Ann"), s("+1"), s("3")])
                .expect("plan");
        assert_eq!(filled.before_image.as_deref(), Some(r#"{"phone":""}"#));
    }

    #[test]
    fn a_value_the_destination_spells_its_own_way_is_no_change() {
        let fields: Vec<String> = ["value", "add_time", "note"].map(String::from).to_vec();
        let types = [FieldType::Decimal, FieldType::Datetime, FieldType::Text];
        let s = |v: &str| Some(v.to_string());
        let held = [s("92872.9"), s("2024-02-11 07:31:00"), s("Call back")];
        let again = [s("92872.90"), s("2024-02-11T09:31:00+02:00"), s("Call back")];
        let planned = plan_update(&fields, &types, "7", &held, None, &again).expect("plan");
        assert_eq!(planned.detail, "no change", "{:?}", planned.change.values);
        let moved = [s("92873"), s("2024-02-11T09:31:00Z"), s("Call back.")];
        let planned = plan_update(&fields, &types, "7", &held, None, &moved).expect("plan");
        assert_eq!(planned.detail, "changed value, add_time, note");
    }
}
