//! Before any record moves: both systems' schemas read, every mapping checked against them, each
//! object's plan built and the destination's users read. Needs no state store, so `check` runs it
//! without leaving a file behind.

use super::map::Owners;
use super::plan::ObjectPlan;
use super::run::Prepared;
use crate::config::{ConfigError, LoadedConfig, Problem, Problems, check};
use crate::connect::{Destination, Source};
use crate::model::{DestSchema, FieldNames};
use color_eyre::eyre::{Result, eyre};
use std::collections::HashMap;
use std::sync::Arc;

/// What each object's source and destination look like (or why they could not be read).
pub struct Schemas {
    source_fields: HashMap<String, Result<FieldNames, String>>,
    dest_schemas: HashMap<String, Result<Arc<DestSchema>, String>>,
}

impl Schemas {
    pub async fn read(project: &LoadedConfig, source: &dyn Source, dest: &dyn Destination) -> Self {
        let mut source_fields = HashMap::new();
        let mut dest_schemas = HashMap::new();
        for (name, object) in &project.config.objects {
            let src = source.fields(object.source_name(name)).await.map_err(|e| format!("{e:#}"));
            source_fields.insert(name.clone(), src);
            let dst = dest.schema(object.destination_name(name)).await.map(Arc::new).map_err(|e| format!("{e:#}"));
            dest_schemas.insert(name.clone(), dst);
        }
        Self { source_fields, dest_schemas }
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
        problems.into_vec()
    }
}

/// The plans and lookups a run needs; the project file's problems (every one) when it does not check.
pub async fn prepare(project: &LoadedConfig, source: &dyn Source, dest: &dyn Destination) -> Result<Prepared> {
    let mut schemas = Schemas::read(project, source, dest).await;
    let problems = schemas.problems(project);
    if !problems.is_empty() {
        return Err(ConfigError { file: project.path.clone(), problems }.into());
    }
    let mut plans = Vec::new();
    for name in &project.order {
        let fields =
            schemas.source_fields.remove(name).and_then(Result::ok).ok_or_else(|| eyre!("no fields for {name}"))?;
        let schema =
            schemas.dest_schemas.remove(name).and_then(Result::ok).ok_or_else(|| eyre!("no schema for {name}"))?;
        plans.push(Arc::new(ObjectPlan::build(project, name, fields, schema)?));
    }
    let users = match dest.users().await {
        Ok(users) => users,
        // The table `owners =` names: a problem of the file, at that key's line.
        Err(e) if project.config.destination.owners.is_some() => {
            let problem = crate::config::KeyProblem::new("destination.owners", format!("{e:#}"));
            return Err(project.as_file_problem(eyre!(problem)));
        }
        Err(e) => return Err(e.wrap_err("reading the destination's users")),
    };
    let owners = Arc::new(Owners::new(&users, &project.config.owners.aliases));
    let problems = default_problems(project, &plans, &owners)?;
    if !problems.is_empty() {
        return Err(ConfigError { file: project.path.clone(), problems }.into());
    }
    Ok(Prepared { plans, owners })
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
            if let Err(r) = super::map::default_value(rule, &settings, owners) {
                problems.add(format!("objects.{}.fields.{}.default", plan.name, rule.dest), r.message);
            }
        }
    }
    Ok(problems.into_vec())
}
