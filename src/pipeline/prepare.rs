//! Before any record moves: both systems' schemas read, every mapping checked against them, each
//! object's plan built and the destination's users read. Needs no state store, so `check` runs it
//! without leaving a file behind.

use super::map::Owners;
use super::plan::ObjectPlan;
use super::run::Prepared;
use crate::config::{ConfigError, LoadedConfig, Problem, Problems, check};
use crate::connect::unavailable::Unavailable;
use crate::connect::{Destination, Source};
use crate::model::{DestSchema, FieldNames};
use color_eyre::eyre::{Result, eyre};
use std::collections::HashMap;
use std::sync::Arc;

/// What each object's source and destination look like (or why they could not be read).
pub struct Schemas {
    source_fields: HashMap<String, Result<FieldNames, String>>,
    dest_schemas: HashMap<String, Result<Arc<DestSchema>, String>>,
    /// Destination errors caused by what a key of the file names, by object.
    key_problems: HashMap<String, crate::config::KeyProblem>,
    /// A system that could not be used (locked, read-only, …): the schemas after it were not read.
    unavailable: Option<Unavailable>,
}

impl Schemas {
    pub async fn read(project: &LoadedConfig, source: &dyn Source, dest: &dyn Destination) -> Self {
        let mut source_fields = HashMap::new();
        let mut dest_schemas = HashMap::new();
        let mut key_problems = HashMap::new();
        let mut unavailable = None;
        for (name, object) in &project.config.objects {
            let src = source.fields(object.source_name(name)).await;
            if let Err(e) = &src
                && let Some(cause) = crate::connect::unavailable::cause(e)
            {
                unavailable = Some(Unavailable { system: format!("the source, {}", source.describe()), cause });
                break;
            }
            source_fields.insert(name.clone(), src.map_err(|e| format!("{e:#}")));
            let dst = dest.schema(object.destination_name(name)).await;
            if let Err(e) = &dst
                && let Some(cause) = crate::connect::unavailable::cause(e)
            {
                unavailable = Some(Unavailable { system: format!("the destination, {}", dest.describe()), cause });
                break;
            }
            let dst = dst.map(Arc::new).map_err(|e| {
                if let Some(k) = e.chain().find_map(|c| c.downcast_ref::<crate::config::KeyProblem>()) {
                    key_problems.insert(name.clone(), k.clone());
                }
                format!("{e:#}")
            });
            dest_schemas.insert(name.clone(), dst);
        }
        Self { source_fields, dest_schemas, key_problems, unavailable }
    }

    /// Every problem of the mappings against the schemas.
    pub fn problems(&self, project: &LoadedConfig) -> Vec<Problem> {
        let mut problems = Problems::new(&project.spans);
        check::against_schemas(
            &project.config,
            |name| check::ObjectSchemas {
                source_fields: match self.source_fields.get(name) {
                    Some(Ok(f)) => Ok(&f[..]),
                    Some(Err(e)) => Err(e.clone()),
                    None => Err("not read".into()),
                },
                destination: match self.dest_schemas.get(name) {
                    Some(Ok(s)) => Ok(s.as_ref()),
                    Some(Err(e)) => Err(e.clone()),
                    None => Err("not read".into()),
                },
            },
            &mut problems,
        );
        // A destination error a key of the file caused is that key's problem, at its line.
        let mut out: Vec<Problem> = Vec::new();
        for p in problems.into_vec() {
            let object = p.key.strip_prefix("objects.").and_then(|k| k.strip_suffix(".destination"));
            let p = match object.and_then(|o| self.key_problems.get(o)) {
                Some(k) => {
                    Problem { key: k.key.clone(), line: project.spans.line_of(&k.key), message: k.message.clone() }
                }
                None => p,
            };
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }
}

/// The plans and lookups a run needs; the project file's problems (every one) when it does not check.
pub async fn prepare(project: &LoadedConfig, source: &dyn Source, dest: &dyn Destination) -> Result<Prepared> {
    let (prepared, problems) = checked(project, source, dest).await?;
    match prepared {
        Some(prepared) if problems.is_empty() => Ok(prepared),
        _ => Err(ConfigError { file: project.path.clone(), problems }.into()),
    }
}

/// Everything [`prepare`] checks, as far as it can go, and every problem it found on the way:
/// the mappings against both schemas, the owners table, each object's plan and each default.
/// `check` reports these together with the file's own problems.
pub async fn checked(
    project: &LoadedConfig,
    source: &dyn Source,
    dest: &dyn Destination,
) -> Result<(Option<Prepared>, Vec<Problem>)> {
    let mut schemas = Schemas::read(project, source, dest).await;
    if let Some(u) = schemas.unavailable.take() {
        return Err(u.into());
    }
    let mut problems = schemas.problems(project);
    let users = match dest.users().await {
        Ok(users) => Some(users),
        Err(e) if crate::connect::unavailable::cause(&e).is_some() => {
            return Err(crate::connect::unavailable::told(format!("the destination, {}", dest.describe()), e));
        }
        // The table `owners =` names: a problem of the file, at that key's line.
        Err(e) if project.config.destination.owners.is_some() => {
            let key = "destination.owners";
            let message = format!("{e:#}");
            let message = message.split(": Error code").next().unwrap_or(&message).to_string();
            problems.push(Problem { key: key.into(), line: project.spans.line_of(key), message });
            None
        }
        Err(e) => return Err(e.wrap_err("reading the destination's users")),
    };
    // Plans of the objects whose schemas read (the others said why above).
    let mut plans = Vec::new();
    for name in &project.order {
        let fields = schemas.source_fields.remove(name).and_then(Result::ok);
        let schema = schemas.dest_schemas.remove(name).and_then(Result::ok);
        if let (Some(fields), Some(schema)) = (fields, schema)
            && let Ok(plan) = ObjectPlan::build(project, name, fields, schema)
        {
            plans.push(Arc::new(plan));
        }
    }
    let Some(users) = users else { return Ok((None, problems)) };
    let owners = Arc::new(Owners::new(&users, &project.config.owners.aliases));
    problems.extend(default_problems(project, &plans, &owners)?);
    if plans.len() != project.order.len() || !problems.is_empty() {
        if problems.is_empty() {
            // Every schema read and checked, yet a plan was not built: say why.
            for name in &project.order {
                if !plans.iter().any(|p| &p.name == name) {
                    return Err(eyre!("objects.{name}: the plan could not be built"));
                }
            }
        }
        return Ok((None, problems));
    }
    Ok((Some(Prepared { plans, owners }), problems))
}

/// Every default that does not read as a value of its field (a constant owner nobody is, a date
/// that is no date, a stage with no translation).
fn default_problems(project: &LoadedConfig, plans: &[Arc<ObjectPlan>], owners: &Owners) -> Result<Vec<Problem>> {
    let settings = super::transform::TransformSettings {
        region: project.config.project.default_region.parse().map_err(|_| eyre!("project.default_region"))?,
        day_first: project.config.project.day_first(),
        order_stated: project.config.project.day_first.is_some(),
    };
    let mut problems = Problems::new(&project.spans);
    for plan in plans {
        for rule in plan.rules.iter().filter(|r| r.default.is_some()) {
            match super::map::default_value(rule, &settings, owners) {
                Err(r) => problems.add(format!("objects.{}.fields.{}.default", plan.name, rule.dest), r.message),
                Ok(Some(v)) if !rule.truncate && rule.max_length.is_some_and(|max| v.chars().count() > max) => problems
                    .add(
                        format!("objects.{}.fields.{}.default", plan.name, rule.dest),
                        format!(
                            "'{}' holds {} characters; the field takes at most {}",
                            crate::text::shown(&v),
                            v.chars().count(),
                            rule.max_length.unwrap_or_default()
                        ),
                    ),
                Ok(_) => {}
            }
        }
        for rule in plan.rules.iter().filter(|r| r.truncate && r.max_length.is_none()) {
            problems.add(
                format!("objects.{}.fields.{}.truncate", plan.name, rule.dest),
                format!(
                    "'{}.{}' takes values of any length: give max_length to cut them to",
                    plan.dest_object, rule.dest
                ),
            );
        }
    }
    Ok(problems.into_vec())
}
