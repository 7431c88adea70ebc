//! What Pipedrive's API documents as writable for each object, and the account's stages and
//! pipelines by name.

use crate::model::{DestField, FieldType};
use std::collections::HashMap;

/// The fields API v2 (v1 for notes) documents as writable for an object, typed.
pub(super) fn standard_fields(object: &str) -> Vec<DestField> {
    let field = |name: &str, ty: FieldType| DestField {
        multiple: false,
        name: name.into(),
        ty,
        required: false,
        max_length: None,
        picklist: None,
    };
    let required = |name: &str| DestField { required: true, ..field(name, FieldType::Text) };
    let (text, int, when) = (FieldType::Text, FieldType::Integer, FieldType::Datetime);
    let mut fields = match object {
        "persons" => vec![
            required("name"),
            field("email", FieldType::Email),
            field("phone", FieldType::Phone),
            field("org_id", int),
            field("label_ids", text),
            field("job_title", text),
            field("birthday", FieldType::Date),
        ],
        "organizations" => vec![
            required("name"),
            field("label_ids", text),
            field("address", text),
            field("website", text),
            field("linkedin", text),
            field("industry", int),
            field("annual_revenue", int),
            field("employee_count", int),
        ],
        "deals" => vec![
            required("title"),
            field("value", FieldType::Decimal),
            field("currency", text),
            field("stage_id", int),
            field("pipeline_id", int),
            field("stage", text),
            field("pipeline", text),
            DestField { picklist: Some(vec!["open".into(), "won".into(), "lost".into()]), ..field("status", text) },
            field("person_id", int),
            field("org_id", int),
            field("label_ids", text),
            field("probability", FieldType::Decimal),
            field("lost_reason", text),
            field("expected_close_date", FieldType::Date),
            field("won_time", when),
            field("lost_time", when),
            field("close_time", when),
        ],
        _ => vec![
            required("content"),
            field("person_id", int),
            field("org_id", int),
            field("deal_id", int),
            field("user_id", int),
            field("add_time", when),
        ],
    };
    if object != "notes" {
        fields.push(field("owner_id", int));
        fields.push(field("visible_to", int));
    }
    // API v2 takes no creation time for a deal (it sets its own).
    if matches!(object, "persons" | "organizations") {
        fields.push(field("add_time", when));
    }
    fields
}

/// The account's stages and pipelines: id → (name, a stage's pipeline id).
#[derive(Debug, Default)]
pub(super) struct Stages {
    pub(super) stage: HashMap<String, (String, String)>,
    pub(super) pipeline: HashMap<String, (String, String)>,
}

impl Stages {
    /// A deal's stage id by the stage's name, within its pipeline when the deal names one (by
    /// name or id): stage names repeat across pipelines.
    pub(super) fn stage_id(&self, name: &str, pipeline: Option<&str>) -> std::result::Result<String, String> {
        let pipeline_id = pipeline.map(|p| self.pipeline_id(p)).transpose()?;
        let mut found: Vec<(&String, &String)> = self
            .stage
            .iter()
            .filter(|(_, (n, p))| {
                n.trim().eq_ignore_ascii_case(name.trim()) && pipeline_id.as_ref().is_none_or(|w| w == p)
            })
            .map(|(id, (_, p))| (id, p))
            .collect();
        found.sort();
        match found.as_slice() {
            [(id, _)] => Ok((*id).clone()),
            [] => Err(format!(
                "'{name}' is not a stage{}",
                pipeline.map(|p| format!(" of pipeline '{p}'")).unwrap_or_default()
            )),
            many => Err(format!(
                "'{name}' is a stage of {} pipelines ({}): map pipeline too, or stage_id",
                many.len(),
                many.iter()
                    .map(|(_, p)| self.pipeline.get(*p).map_or(p.as_str(), |(n, _)| n.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    pub(super) fn pipeline_id(&self, name_or_id: &str) -> std::result::Result<String, String> {
        if self.pipeline.contains_key(name_or_id.trim()) {
            return Ok(name_or_id.trim().to_string());
        }
        self.pipeline
            .iter()
            .find(|(_, (n, _))| n.trim().eq_ignore_ascii_case(name_or_id.trim()))
            .map(|(id, _)| id.clone())
            .ok_or_else(|| format!("'{name_or_id}' is not a pipeline"))
    }
}
