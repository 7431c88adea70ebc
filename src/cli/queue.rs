//! `cutover queue …`: the conflict queue from the command line.

use super::{EXIT_FAILED, EXIT_OK, not_started, report_run};
use crate::project::Project;
use crate::store::QueueFilter;
use clap::Subcommand;
use color_eyre::eyre::{Result, bail};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum QueueAction {
    /// Held records, with counts per object and reason.
    List {
        #[arg(long)]
        object: Option<String>,
        /// Reason, e.g. no_translation, owner_not_provisioned, parent_not_written, ambiguous_match.
        #[arg(long)]
        reason: Option<String>,
        /// Also show resolved and skipped items.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One held record: source values, mapped values, each field's issue, corrections.
    Show { id: i64 },
    /// Correct fields of held records, by id (`fix 35 dealstage=closedwon`) or every held record
    /// of --object / --reason (`fix --reason no_translation dealstage=closedwon`). FIELD is a
    /// destination field; `source.FIELD=VALUE` corrects a source value before mapping; `FIELD=`
    /// blanks it; `@match=ID` merges an ambiguous match into candidate ID, `@match=new` creates
    /// it anew. All records are checked first: either all are corrected or none. The
    /// corrections apply at the next reprocess, and again in every later run.
    Fix {
        #[arg(required = true, value_name = "ID|FIELD=VALUE")]
        args: Vec<String>,
        #[arg(long)]
        object: Option<String>,
        #[arg(long)]
        reason: Option<String>,
        /// FIELD=VALUE as you saw it (`queue show`): if another operator changed the field since,
        /// the correction is refused instead of overwriting theirs. `FIELD=` for blank.
        #[arg(long, value_name = "FIELD=VALUE")]
        was: Vec<String>,
    },
    /// Send held records again through map → dedupe → validate → write.
    Reprocess {
        ids: Vec<i64>,
        /// Every held record (optionally narrowed with --object / --reason).
        #[arg(long)]
        all: bool,
        /// Continue the last reprocess that was stopped before it finished (killed, failed), under
        /// the same run, with the records it was given that are still held.
        #[arg(long, conflicts_with_all = ["ids", "all", "object", "reason"])]
        resume: bool,
        #[arg(long)]
        object: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Skip a held record: it will not be written. The reason goes to the audit log.
    Skip {
        id: i64,
        #[arg(long, required = true)]
        reason: String,
    },
}

fn parse_change(s: &str) -> Result<(String, Option<String>)> {
    let Some((field, value)) = s.split_once('=') else { bail!("'{s}' is not FIELD=VALUE") };
    let field = field.trim();
    if field.is_empty() {
        bail!("'{s}' names no field");
    }
    Ok((field.to_string(), (!value.is_empty()).then(|| value.to_string())))
}

pub async fn command(project: Option<PathBuf>, action: QueueAction) -> i32 {
    let project = match Project::load(project.as_deref()) {
        Ok(p) => p,
        Err(e) => return not_started(&e),
    };
    match action {
        QueueAction::Reprocess { resume: true, .. } => match project.engine() {
            Ok(engine) => report_run(&project, engine.resume_reprocess().await, false),
            Err(e) => not_started(&e),
        },
        QueueAction::Reprocess { ids, all, object, reason, .. } => reprocess(&project, ids, all, object, reason).await,
        other => match simple(&project, other) {
            Ok(()) => EXIT_OK,
            Err(e) => {
                eprintln!("error: {e:#}");
                EXIT_FAILED
            }
        },
    }
}

fn simple(project: &Project, action: QueueAction) -> Result<()> {
    let store = project.store()?;
    match action {
        QueueAction::List { object, reason, all, limit } => {
            say_part!("{}", super::report::queue_hint(&store));
            let items =
                store.queue_list(&QueueFilter { object, reason, pending_only: !all, limit: Some(limit), offset: 0 })?;
            if !items.is_empty() {
                say!(
                    "\n  {:>6}  {:<10} {:<12} {:<9} {:<24} first issue",
                    "id",
                    "object",
                    "source id",
                    "status",
                    "reason"
                );
            }
            for it in &items {
                let first = it.issues.first().map(|i| format!("{}: {}", i.field, i.message)).unwrap_or_default();
                say!(
                    "  {:>6}  {:<10} {:<12} {:<9} {:<24} {}",
                    it.id,
                    it.object,
                    it.source_id,
                    it.status.as_str(),
                    it.reason,
                    crate::text::shown(&first)
                );
            }
        }
        QueueAction::Show { id } => {
            let Some(it) = store.queue_item(id)? else { bail!("no queue item {id}") };
            say!("Queue item {} — {} {} ({}) from {}", it.id, it.object, it.source_id, it.status.as_str(), it.origin);
            say!("Reason: {}", it.reason);
            if let Some((o, s)) = &it.waiting_on {
                say!("Waiting on: {o} {s}");
            }
            say!("\nIssues:");
            for i in &it.issues {
                say!(
                    "  {} [{}] value {}: {}{}",
                    i.field,
                    i.rule,
                    i.value
                        .as_deref()
                        .map(|v| format!("{:?}", crate::text::shown(v)))
                        .unwrap_or_else(|| "(blank)".into()),
                    crate::text::shown(&i.message),
                    i.suggestion.as_deref().map(|s| format!(" — {}", crate::text::shown(s))).unwrap_or_default()
                );
            }
            say!("\nMapped values:");
            for (f, v) in &it.mapped {
                let corrected = it
                    .corrections
                    .get(f)
                    .map(|c| format!("  → corrected to {:?}", c.as_deref().unwrap_or("")))
                    .unwrap_or_default();
                say!(
                    "  {f:<20} {}{corrected}",
                    v.as_deref().map(crate::text::shown).unwrap_or_else(|| "(blank)".into())
                );
            }
            say!("\nSource values:");
            for (f, v) in &it.source {
                say!("  {f:<20} {}", v.as_deref().map(crate::text::shown).unwrap_or_else(|| "(blank)".into()));
            }
            if let Some(serde_json::Value::Object(sides)) = &it.candidates {
                for (name, values) in sides {
                    match name.strip_prefix(crate::model::NOT_A_RECORD) {
                        Some(row) => say!("\nBeside it, the source {}:", crate::text::shown(row)),
                        None => say!("\nDestination candidate {}:", crate::text::shown(name)),
                    }
                    match values {
                        serde_json::Value::Object(fields) => {
                            for (f, v) in fields {
                                let v = v.as_str().map(crate::text::shown).unwrap_or_else(|| "(blank)".into());
                                say!("  {f:<20} {v}");
                            }
                        }
                        _ => say!("  (not read)"),
                    }
                }
            }
        }
        QueueAction::Fix { args, object, reason, was } => {
            let (mut ids, mut changes) = (Vec::new(), Vec::new());
            for arg in &args {
                match arg.parse::<i64>() {
                    Ok(id) if !arg.contains('=') => ids.push(id),
                    _ => changes.push(parse_change(arg)?),
                }
            }
            if changes.is_empty() {
                bail!("nothing to correct: give FIELD=VALUE");
            }
            if ids.is_empty() {
                if object.is_none() && reason.is_none() {
                    bail!(
                        "name the records: queue item ids, or --object / --reason for every held record that matches"
                    );
                }
                let filter = QueueFilter { object, reason, pending_only: true, limit: None, offset: 0 };
                ids = store.queue_list(&filter)?.iter().map(|i| i.id).collect();
                if ids.is_empty() {
                    bail!("no held record matches");
                }
            }
            let was = was.iter().map(|w| parse_change(w)).collect::<Result<Vec<_>>>()?;
            let n = store.queue_correct_many(&ids, &changes, &was)?;
            let what = if n == 1 { format!("Queue item {}", ids[0]) } else { format!("{n} queue items") };
            say!("{what} corrected; run `cutover queue reprocess` with the same ids or filter to write them.");
        }
        QueueAction::Skip { id, reason } => {
            let (_, item) = store.skip_queued(id, &reason, &project.config.hash)?;
            say!("Queue item {id} ({} {}) skipped: {reason}", item.object, item.source_id);
        }
        QueueAction::Reprocess { .. } => {}
    }
    Ok(())
}

async fn reprocess(project: &Project, ids: Vec<i64>, all: bool, object: Option<String>, reason: Option<String>) -> i32 {
    let ids = if all || object.is_some() || reason.is_some() {
        match project
            .store()
            .and_then(|s| s.queue_list(&QueueFilter { object, reason, pending_only: true, limit: None, offset: 0 }))
        {
            Ok(items) => items.into_iter().map(|i| i.id).collect(),
            Err(e) => return not_started(&e),
        }
    } else {
        ids
    };
    if ids.is_empty() {
        say!("Nothing to reprocess.");
        return EXIT_OK;
    }
    let engine = match project.engine() {
        Ok(e) => e,
        Err(e) => return not_started(&e),
    };
    let result = engine.reprocess(&ids).await;
    report_run(project, result, false)
}
