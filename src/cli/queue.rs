//! `cutover queue …`: the conflict queue from the command line.

use super::{EXIT_FAILED, EXIT_OK, not_started, report_run};
use crate::project::Project;
use crate::store::{QueueFilter, QueueItem};
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
        /// Only records whose FIELD holds VALUE now (its mapped value, or the correction made);
        /// `source.FIELD=VALUE` for a source value; `FIELD=` for blank. Repeat for several.
        #[arg(long = "where", value_name = "FIELD=VALUE")]
        wheres: Vec<String>,
        /// Also show resolved and skipped items.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One held record: source values, mapped values, each field's issue, corrections. A value
    /// longer than 2,000 characters is cut there (with its length) unless --full.
    Show {
        id: i64,
        /// Every character of every value, however long.
        #[arg(long)]
        full: bool,
    },
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
        /// Only held records whose FIELD holds VALUE now (`--where phone='n/a'`; see `list`).
        #[arg(long = "where", value_name = "FIELD=VALUE")]
        wheres: Vec<String>,
        /// FIELD=VALUE as you saw it (`queue show`): if another operator changed the field since,
        /// the correction is refused instead of overwriting theirs. `FIELD=` for blank.
        #[arg(long, value_name = "FIELD=VALUE")]
        was: Vec<String>,
    },
    /// Take back the last correction of held records: `unfix 35 dealstage` sets dealstage back
    /// to what it held before; `unfix 35` takes back the record's newest correction, whatever
    /// its field; `unfix --object deals dealstage` every held deal's. Audited; a record already
    /// written is left as it is, saying with what it was written.
    Unfix {
        #[arg(value_name = "ID|FIELD")]
        args: Vec<String>,
        #[arg(long)]
        object: Option<String>,
        #[arg(long)]
        reason: Option<String>,
        /// Only held records whose FIELD holds VALUE now (see `list`).
        #[arg(long = "where", value_name = "FIELD=VALUE")]
        wheres: Vec<String>,
    },
    /// Take skips back: the records are held again, and reprocess or the next run handles them.
    /// By ids, or every skipped record of --object (and --held-for). All or none.
    Unskip {
        ids: Vec<i64>,
        #[arg(long)]
        object: Option<String>,
        #[arg(long, value_name = "REASON")]
        held_for: Option<String>,
    },
    /// Send held records again through map → dedupe → validate → write.
    Reprocess {
        ids: Vec<i64>,
        /// Every held record (optionally narrowed with --object / --reason).
        #[arg(long)]
        all: bool,
        /// Continue the last reprocess that was stopped before it finished (killed, failed), under
        /// the same run, with the records it was given that are still held.
        #[arg(long, conflicts_with_all = ["ids", "all", "object", "reason", "wheres", "dry_run"])]
        resume: bool,
        #[arg(long)]
        object: Option<String>,
        #[arg(long)]
        reason: Option<String>,
        /// Only held records whose FIELD holds VALUE now (see `list`).
        #[arg(long = "where", value_name = "FIELD=VALUE")]
        wheres: Vec<String>,
        /// Say what the reprocess would write and hold, on a scratch copy of the state; change
        /// nothing in the destination or the queue.
        #[arg(long)]
        dry_run: bool,
    },
    /// Skip held records: they will not be written. The reason goes to the audit log. By ids
    /// (`skip 35 36 --reason …`), or every held record matching --object / --held-for / --where
    /// (`skip --held-for invalid_phone --where source.phone=n/a --reason "junk, agreed with sales"`);
    /// all are checked first and skipped in one transaction, or none.
    Skip {
        ids: Vec<i64>,
        /// Why (kept in the audit log).
        #[arg(long, required = true)]
        reason: String,
        #[arg(long)]
        object: Option<String>,
        /// Only records held for this reason (invalid_phone, conflicting_match, …).
        #[arg(long, value_name = "REASON")]
        held_for: Option<String>,
        /// Only held records whose FIELD holds VALUE now (see `list`).
        #[arg(long = "where", value_name = "FIELD=VALUE")]
        wheres: Vec<String>,
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

/// The held records an operator names by filter: object, reason, and fields holding values.
struct Selection {
    object: Option<String>,
    reason: Option<String>,
    wheres: Vec<(String, Option<String>)>,
}

impl Selection {
    fn new(project: &Project, object: Option<String>, reason: Option<String>, wheres: &[String]) -> Result<Self> {
        if let Some(o) = &object {
            known_object(project, o)?;
        }
        let wheres = wheres.iter().map(|w| parse_change(w)).collect::<Result<Vec<_>>>()?;
        Ok(Self { object, reason, wheres })
    }

    fn is_empty(&self) -> bool {
        self.object.is_none() && self.reason.is_none() && self.wheres.is_empty()
    }

    /// The matching items (held only, unless `all`), in queue order.
    fn items(&self, store: &crate::store::Store, all: bool) -> Result<Vec<QueueItem>> {
        let filter = QueueFilter {
            object: self.object.clone(),
            reason: self.reason.clone(),
            pending_only: !all,
            limit: None,
            offset: 0,
        };
        let items = store.queue_list(&filter)?;
        if let Some(reason) = &self.reason
            && items.is_empty()
            && crate::model::Rule::ALL.iter().all(|r| r.as_str() != reason)
        {
            let names: Vec<&str> = crate::model::Rule::ALL.iter().map(|r| r.as_str()).collect();
            bail!("'{reason}' is not a reason a record is held for (one of: {})", names.join(", "));
        }
        for (field, _) in &self.wheres {
            let named = items.iter().any(|it| match field.strip_prefix("source.") {
                Some(f) => it.source.contains_key(f),
                None => it.mapped.contains_key(field),
            });
            if !named && !items.is_empty() {
                let known: Vec<&str> = items[0].mapped.keys().map(String::as_str).collect();
                bail!(
                    "no held record has a field '{field}' (fields: {}; source fields as source.FIELD)",
                    known.join(", ")
                );
            }
        }
        Ok(items.into_iter().filter(|it| self.wheres.iter().all(|(f, v)| holds(it, f, v.as_deref()))).collect())
    }

    fn ids(&self, store: &crate::store::Store) -> Result<Vec<i64>> {
        Ok(self.items(store, false)?.iter().map(|i| i.id).collect())
    }

    /// The records a command acts on: the ids given, or every held record the filter matches —
    /// one or the other. `flags`: how this command names its filter flags.
    fn resolve(&self, ids: Vec<i64>, store: &crate::store::Store, flags: &str) -> Result<Vec<i64>> {
        if !ids.is_empty() {
            if !self.is_empty() {
                bail!("give queue item ids or a filter ({flags}), not both");
            }
            return Ok(ids);
        }
        if self.is_empty() {
            bail!("name the records: queue item ids, or {flags} for every held record that matches");
        }
        let ids = self.ids(store)?;
        if ids.is_empty() {
            bail!("no held record matches");
        }
        Ok(ids)
    }
}

/// Whether the record's field holds `value` now: the correction made, else the value as
/// mapped (`source.FIELD`: as read). Blank and absent are the same.
/// `--object` names an object of the project (a `repeat` entry by its own name, `emails.work`).
fn known_object(project: &Project, object: &str) -> Result<()> {
    let config = &project.config;
    if config.object(object).is_some() {
        return Ok(());
    }
    let entries: Vec<&str> = config
        .order
        .iter()
        .filter(|n| config.object(n).and_then(|o| o.repeated.as_ref()).is_some_and(|r| r.object == object))
        .map(String::as_str)
        .collect();
    if !entries.is_empty() {
        bail!("'{object}' is made into several objects by its repeat: name one of {}", entries.join(", "));
    }
    bail!("the project has no object '{object}' (its objects: {})", config.order.join(", "))
}

fn holds(it: &QueueItem, field: &str, value: Option<&str>) -> bool {
    let read = match field.strip_prefix("source.") {
        Some(f) => it.source.get(f),
        None => it.mapped.get(field),
    };
    // A record of another object, without the field, holds nothing there — not even a blank.
    let Some(read) = read else { return false };
    let now = it.corrections.get(field).cloned().or_else(|| Some(read.clone()));
    let blank_as_none = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(str::to_string);
    blank_as_none(now.flatten().as_deref()) == blank_as_none(value)
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
        QueueAction::Reprocess { ids, all, object, reason, wheres, dry_run, .. } => {
            let selection = match Selection::new(&project, object, reason, &wheres) {
                Ok(s) => s,
                Err(e) => return not_started(&e),
            };
            reprocess(&project, ids, all, selection, dry_run).await
        }
        other => match simple(&project, other) {
            Ok(()) => EXIT_OK,
            Err(e) => {
                tell!("error: {e:#}");
                EXIT_FAILED
            }
        },
    }
}

fn simple(project: &Project, action: QueueAction) -> Result<()> {
    let store = project.store()?;
    match action {
        QueueAction::List { object, reason, wheres, all, limit } => {
            let selection = Selection::new(project, object, reason, &wheres)?;
            say_part!("{}", super::report::queue_hint(&store));
            let items = if selection.wheres.is_empty() {
                let filter = QueueFilter {
                    object: selection.object,
                    reason: selection.reason,
                    pending_only: !all,
                    limit: Some(limit),
                    offset: 0,
                };
                store.queue_list(&filter)?
            } else {
                let mut items = selection.items(&store, all)?;
                let n = items.len();
                if n > limit {
                    say!("\n{n} records match --where; the first {limit} are listed (--limit N for more).");
                } else {
                    say!("\n{} matching --where.", crate::text::count(n as u64, "record"));
                }
                items.truncate(limit);
                items
            };
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
                // A possible match's ranked candidates are for `queue show`: the list keeps a line each.
                let first = it
                    .issues
                    .first()
                    .map(|i| match i.message.split_once("; candidates: ") {
                        Some((head, _)) => format!("{}: {head} (candidates: queue show {})", i.field, it.id),
                        None => format!("{}: {}", i.field, i.message),
                    })
                    .unwrap_or_default();
                say!(
                    "  {:>6}  {:<10} {:<12} {:<9} {:<24} {}",
                    it.id,
                    it.object,
                    crate::text::shown(&it.source_id),
                    it.status.as_str(),
                    it.reason,
                    crate::text::shown(&first)
                );
            }
        }
        QueueAction::Show { id, full } => {
            let clip = |v: &str| clipped(v, full);
            let Some(it) = store.queue_item(id)? else { bail!("no queue item {id}") };
            say!(
                "Queue item {} — {} {} ({}) from {}",
                it.id,
                it.object,
                crate::text::shown(&it.source_id),
                it.status.as_str(),
                crate::text::shown(&it.origin)
            );
            say!("Reason: {}", it.reason);
            if let Some(why) = &it.skip_reason {
                say!("Skipped by an operator: {}", crate::text::shown(why));
            }
            if let Some((o, s)) = &it.waiting_on {
                say!("Waiting on: {o} {}", crate::text::shown(s));
            }
            say!("\nIssues:");
            for i in &it.issues {
                say!(
                    "  {} [{}] value {}: {}{}",
                    i.field,
                    i.rule,
                    i.value.as_deref().map(|v| format!("\"{}\"", clip(v))).unwrap_or_else(|| "(blank)".into()),
                    clip(&i.message),
                    i.suggestion.as_deref().map(|s| format!(" — {}", crate::text::shown(s))).unwrap_or_default()
                );
            }
            say!("\nMapped values:");
            for (f, v) in &it.mapped {
                let corrected = it
                    .corrections
                    .get(f)
                    .map(|c| format!("  → corrected to \"{}\"", clip(c.as_deref().unwrap_or(""))))
                    .unwrap_or_default();
                say!("  {f:<20} {}{corrected}", v.as_deref().map(clip).unwrap_or_else(|| "(blank)".into()));
            }
            say!("\nSource values:");
            for (f, v) in &it.source {
                say!("  {f:<20} {}", v.as_deref().map(clip).unwrap_or_else(|| "(blank)".into()));
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
                                let v = v.as_str().map(clip).unwrap_or_else(|| "(blank)".into());
                                say!("  {f:<20} {v}");
                            }
                        }
                        _ => say!("  (not read)"),
                    }
                }
            }
        }
        QueueAction::Fix { args, object, reason, wheres, was } => {
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
            let selection = Selection::new(project, object, reason, &wheres)?;
            let ids = selection.resolve(ids, &store, "--object, --reason, --where")?;
            let was = was.iter().map(|w| parse_change(w)).collect::<Result<Vec<_>>>()?;
            let n = store.queue_correct_many(&ids, &changes, &was)?;
            let what = if n == 1 { format!("Queue item {}", ids[0]) } else { format!("{n} queue items") };
            say!("{what} corrected; run `cutover queue reprocess` with the same ids or filter to write them.");
        }
        QueueAction::Skip { ids, reason, object, held_for, wheres } => {
            let selection = Selection::new(project, object, held_for, &wheres)?;
            let mut ids = selection.resolve(ids, &store, "--object, --held-for, --where")?;
            let mut seen = std::collections::HashSet::new();
            ids.retain(|id| seen.insert(*id));
            let (_, items) = store.skip_queued_many(&ids, &reason, &project.config.hash)?;
            match items.as_slice() {
                [item] => say!(
                    "Queue item {} ({} {}) skipped: {}",
                    item.id,
                    item.object,
                    crate::text::shown(&item.source_id),
                    crate::text::shown(&reason)
                ),
                _ => say!(
                    "{} skipped: {}",
                    crate::text::count(items.len() as u64, "queue item"),
                    crate::text::shown(&reason)
                ),
            }
        }
        QueueAction::Unfix { args, object, reason, wheres } => {
            let (mut ids, mut fields) = (Vec::new(), Vec::new());
            for arg in &args {
                match arg.parse::<i64>() {
                    Ok(id) => ids.push(id),
                    Err(_) => fields.push(arg.clone()),
                }
            }
            if fields.len() > 1 {
                bail!(
                    "name one field to take back (got {}), or none for each record's newest correction",
                    fields.join(", ")
                );
            }
            let selection = Selection::new(project, object, reason, &wheres)?;
            let ids = selection.resolve(ids, &store, "--object, --reason, --where")?;
            let undone = store.queue_undo(&ids, fields.first().map(String::as_str))?;
            say!("{}", undone.describe());
            for (_, why) in undone.left.iter().skip(1).take(20) {
                say!("  {why}");
            }
            if undone.restored.is_empty() {
                bail!("nothing was undone");
            }
        }
        QueueAction::Unskip { mut ids, object, held_for } => {
            if ids.is_empty() {
                let Some(object) = object else {
                    bail!("name the records: queue item ids, or --object (with --held-for) for every skipped one")
                };
                known_object(project, &object)?;
                let filter =
                    QueueFilter { object: Some(object), reason: held_for, pending_only: false, ..Default::default() };
                ids = store
                    .queue_list(&filter)?
                    .into_iter()
                    .filter(|i| i.status == crate::store::QueueStatus::Skipped)
                    .map(|i| i.id)
                    .collect();
                if ids.is_empty() {
                    bail!("no skipped record matches");
                }
            } else if object.is_some() || held_for.is_some() {
                bail!("give queue item ids or a filter (--object, --held-for), not both");
            }
            let (_, items) = store.unskip_many(&ids, &project.config.hash)?;
            say!(
                "{} held again; `cutover queue reprocess` writes them, or the next run takes them up.",
                crate::text::count(items.len() as u64, "record")
            );
        }
        QueueAction::Reprocess { .. } => {}
    }
    Ok(())
}

/// How many characters of a value `queue show` prints unless asked for all.
const SHOWN_CHARS: usize = 2000;

/// A value as a terminal may show it (see `text::shown`), cut after [`SHOWN_CHARS`] characters
/// with its length said, unless `full`.
fn clipped(v: &str, full: bool) -> String {
    let n = v.chars().count();
    if full || n <= SHOWN_CHARS {
        return crate::text::shown(v);
    }
    let head: String = v.chars().take(SHOWN_CHARS).collect();
    format!("{}… ({n} characters in all; --full shows every one)", crate::text::shown(&head))
}

async fn reprocess(project: &Project, ids: Vec<i64>, all: bool, selection: Selection, dry_run: bool) -> i32 {
    let ids = if all || !selection.is_empty() {
        match project.store().and_then(|s| selection.ids(&s)) {
            Ok(ids) => ids,
            Err(e) => return not_started(&e),
        }
    } else {
        ids
    };
    if ids.is_empty() {
        say!("Nothing to reprocess.");
        return EXIT_OK;
    }
    if dry_run {
        // On a scratch copy of the state, against a destination that only pretends to write.
        let preview = match project.preview_engine() {
            Ok(p) => p,
            Err(e) => return not_started(&e),
        };
        let result = preview.engine.reprocess(&ids).await;
        let succeeded = result.is_ok();
        let code = report_run(project, result, true);
        if succeeded && let Ok(store) = preview.engine.store().lock() {
            say_part!("{}", super::report::queue_summary(&store, true));
        }
        return code;
    }
    let engine = match project.engine() {
        Ok(e) => e,
        Err(e) => return not_started(&e),
    };
    let result = engine.reprocess(&ids).await;
    report_run(project, result, false)
}
