//! `cutover weights`: the weights record linkage decided by, per object whose `match` is a table
//! — as the newest run estimated them from the data, with the project file's own on top — and
//! how to set one by hand.

use super::{EXIT_OK, not_started};
use crate::pipeline::linkage::em::Model;
use crate::pipeline::linkage::setup::LinkagePlan;
use crate::project::Project;
use color_eyre::eyre::{Result, eyre};
use std::path::PathBuf;

pub fn command(project: Option<PathBuf>, object: Option<String>) -> i32 {
    match show(project, object) {
        Ok(()) => EXIT_OK,
        Err(e) => not_started(&e),
    }
}

fn show(project: Option<PathBuf>, only: Option<String>) -> Result<()> {
    let project = Project::load(project.as_deref())?;
    let store = project.store()?;
    let config = &project.config;
    let linked: Vec<(&String, &crate::config::LinkageConfig)> = config
        .order
        .iter()
        .filter_map(|name| Some((name, config.object(name)?.matching.linkage()?)))
        .filter(|(name, _)| only.as_ref().is_none_or(|o| o == *name))
        .collect();
    if linked.is_empty() {
        return Err(match only {
            Some(o) => eyre!("object '{o}' does not match by record linkage (its `match` is not a table)"),
            None => eyre!("no object of this project matches by record linkage: `match` is a list of keys everywhere"),
        });
    }
    for (name, linkage) in linked {
        let fields: Vec<String> = config.object(name).map(|o| o.fields.keys().cloned().collect()).unwrap_or_default();
        let plan = LinkagePlan::new(name, linkage, &fields)?;
        let Some((run, json)) = store.latest_linkage_model(name)? else {
            say!("{name}: no weights yet — a run estimates them from the data (`cutover run`, or `--dry-run`).");
            continue;
        };
        let model = plan.with_overrides(serde_json::from_str::<Model>(&json)?);
        say!("{name}: weights of run {run}, estimated from the data, in points (log2 m/u; a point doubles the odds):");
        let weights = model.weights();
        let w = fields.iter().map(|f| f.chars().count()).max().unwrap_or(0).max(5);
        for (f, field) in plan.fields.iter().enumerate() {
            let kind = plan.linker.kinds[f];
            let levels: Vec<String> = kind
                .level_keys()
                .iter()
                .enumerate()
                .map(|(l, key)| {
                    let set = plan.overrides.iter().any(|&(of, ol, _)| of == f && ol == l);
                    format!("{key} {:+.1}{}", weights[f][l], if set { " (set)" } else { "" })
                })
                .collect();
            say!("  {field:<w$} {:<8} {}", plan.comparisons[f], levels.join(", "));
        }
        let prior = crate::pipeline::linkage::em::points_of(model.lambda);
        say!(
            "  {:<w$} {:<8} an exact agreement (and an email's local part) weighs by how many records hold the value",
            "",
            ""
        );
        say!(
            "  {:<w$} {:<8} {prior:+.1} (about 1 match in {:.0} pairs of a source and a destination record)",
            "prior",
            "",
            1.0 / model.lambda.max(1e-12)
        );
        if let Some(within) = model.lambda_within {
            say!(
                "  {:<w$} {:<8} {:+.1} (about 1 in {:.0} pairs of two source records: duplicates in the export)",
                "",
                "",
                crate::pipeline::linkage::em::points_of(within),
                1.0 / within.max(1e-12)
            );
        }
        say!(
            "  link at p ≥ {}, hold for review at p ≥ {}, runner-up at least {} points behind",
            plan.linker.link_above,
            plan.linker.review_above,
            plan.linker.margin
        );
        if let Some(first) = plan.fields.first() {
            say!(
                "  To set a weight by hand: [objects.{name}.match.weights] {first} = {{ {} = 12 }}",
                plan.linker.kinds[0].level_keys()[0]
            );
        }
    }
    Ok(())
}
