//! Tables printed at the end of headless runs.

use crate::model::{Counts, Outcome};
use crate::pipeline::{Finish, RunSummary};
use crate::store::Store;
use color_eyre::eyre::Result;
use std::fmt::Write;

/// The width of an object-name column: 12, or the longest name.
pub fn name_width<'a>(names: impl IntoIterator<Item = &'a str>) -> usize {
    names.into_iter().map(|n| n.chars().count()).max().unwrap_or(0).max(12)
}

fn row(out: &mut String, w: usize, name: &str, source: &str, c: &Counts) {
    let _ = writeln!(
        out,
        "  {:<w$} {:>8} {:>9} {:>8} {:>8} {:>9} {:>7} {:>7} {:>8} {:>7}",
        name, source, c.extracted, c.created, c.updated, c.unchanged, c.merged, c.queued, c.skipped, c.failed
    );
}

fn header(out: &mut String, w: usize, dry_run: bool) {
    if dry_run {
        let _ = writeln!(out, "  What a run would do (nothing was written):");
    }
    let _ = writeln!(
        out,
        "  {:<w$} {:>8} {:>9} {:>8} {:>8} {:>9} {:>7} {:>7} {:>8} {:>7}",
        "object", "source", "extracted", "created", "updated", "unchanged", "merged", "queued", "skipped", "failed"
    );
}

pub fn run_table(summary: &RunSummary, dry_run: bool) -> String {
    let mut out = String::new();
    let totals = summary.totals();
    let what = if dry_run {
        "Preview (dry run)".to_string()
    } else {
        format!("Run {} ({})", summary.run_id, summary.kind.as_str())
    };
    let secs = summary.elapsed.as_secs_f64();
    let state = match &summary.finish {
        Finish::Completed => "completed".to_string(),
        Finish::Halted(reason) => format!("HALTED: {reason}"),
        Finish::Cancelled => "CANCELLED by the operator (what was written stays written and audited)".to_string(),
    };
    let _ = writeln!(out, "{what} {state}");
    let now = totals.extracted.saturating_sub(summary.carried);
    let _ = writeln!(
        out,
        "{now} records in {secs:.1}s ({:.0} records/s){}\n",
        if secs > 0.0 { now as f64 / secs } else { 0.0 },
        if summary.carried > 0 {
            format!("; {} more were done before the interruption", summary.carried)
        } else {
            String::new()
        }
    );
    let w = name_width(summary.objects.iter().map(|(n, _, _)| n.as_str()));
    header(&mut out, w, dry_run);
    for (name, source, c) in &summary.objects {
        row(&mut out, w, name, &source.map(|n| n.to_string()).unwrap_or_else(|| "-".into()), c);
    }
    row(&mut out, w, "total", "", &totals);
    let balanced = summary.objects.iter().all(|(_, _, c)| c.balanced());
    let _ = writeln!(
        out,
        "\nEvery record accounted for: {} (extracted = created + updated + unchanged + merged + queued + skipped + \
         failed)",
        if balanced { "yes" } else { "NO" }
    );
    out
}

/// A test sync's sample in detail: every held record with each issue; with `values`, what
/// each written record would hold.
pub fn sample_details(store: &Store, run_id: i64, values: bool) -> String {
    let mut out = String::new();
    let held = store.queue_held_in_run(run_id);
    if let Ok(held) = held
        && !held.is_empty()
    {
        let _ = writeln!(out, "\nEach record the sample would hold, and why:");
        for item in &held {
            let _ = writeln!(
                out,
                "  {} {} ({}) — {}",
                item.object,
                crate::text::shown(&item.source_id),
                crate::text::shown(&item.origin),
                item.reason
            );
            for issue in &item.issues {
                let _ = writeln!(
                    out,
                    "      {}: {}{}",
                    issue.field,
                    crate::text::shown(&issue.message),
                    issue.suggestion.as_deref().map(|s| format!(" → {}", crate::text::shown(s))).unwrap_or_default()
                );
            }
        }
    }
    if values {
        let rows = store.conn().prepare(
            "SELECT a.object, a.source_id, a.outcome, w.image FROM audit a
             LEFT JOIN written w ON w.object = a.object AND w.dest_id = a.dest_id
             WHERE a.run_id = ?1 AND a.outcome IN ('created', 'updated', 'merged') ORDER BY a.id",
        );
        if let Ok(mut stmt) = rows {
            let _ = writeln!(out, "\nWhat each record of the sample would be written with:");
            let lines = stmt.query_map([run_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            });
            let mut any = false;
            for (object, sid, outcome, image) in lines.into_iter().flatten().flatten() {
                any = true;
                let image: indexmap::IndexMap<String, Option<String>> =
                    image.and_then(|i| serde_json::from_str(&i).ok()).unwrap_or_default();
                let fields: Vec<String> =
                    image.iter().map(|(k, v)| format!("{k}={}", crate::text::shown_opt(v.as_deref()))).collect();
                let _ = writeln!(out, "  {object} {} → {outcome}: {}", crate::text::shown(&sid), fields.join(", "));
            }
            if !any {
                let _ = writeln!(out, "  nothing: every record of the sample is unchanged, held or skipped");
            }
        }
    }
    out
}

pub fn queue_hint(store: &Store) -> String {
    queue_summary(store, false)
}

/// What a preview (run `run_id` in its scratch state) would hold, by object and reason — its
/// own, not what earlier runs hold.
pub fn preview_queue_summary(store: &Store, run_id: i64) -> String {
    let Ok(held) = store.queue_held_in_run(run_id) else { return String::new() };
    let mut summary: Vec<(String, String, u64)> = Vec::new();
    for it in &held {
        match summary.iter_mut().find(|(o, r, _)| *o == it.object && *r == it.reason) {
            Some(row) => row.2 += 1,
            None => summary.push((it.object.clone(), it.reason.clone(), 1)),
        }
    }
    summary.sort();
    summarised(summary, true)
}

/// The held records by object and reason; `preview` words it as what a run would hold.
pub fn queue_summary(store: &Store, preview: bool) -> String {
    let Ok(summary) = store.queue_summary() else {
        return String::new();
    };
    summarised(summary, preview)
}

fn summarised(summary: Vec<(String, String, u64)>, preview: bool) -> String {
    if summary.is_empty() {
        return if preview { "A run would hold nothing in the conflict queue.\n" } else { "Conflict queue: empty.\n" }
            .into();
    }
    let total: u64 = summary.iter().map(|r| r.2).sum();
    let w = name_width(summary.iter().map(|r| r.0.as_str()));
    if preview {
        let mut out = format!("A run would hold {} in the conflict queue:\n", crate::text::count(total, "record"));
        for (object, reason, n) in &summary {
            let _ = writeln!(out, "  {object:<w$} {reason:<24} {n:>6}");
        }
        return out;
    }
    let mut out =
        format!("Conflict queue: {} held (nothing was written for them):\n", crate::text::count(total, "record"));
    for (object, reason, n) in &summary {
        let _ = writeln!(out, "  {object:<w$} {reason:<24} {n:>6}");
    }
    let _ = writeln!(
        out,
        "See them with `cutover queue list`, correct with `cutover queue fix`, then `cutover queue reprocess`."
    );
    out
}

pub fn runs_table(store: &Store) -> Result<String> {
    let mut out = String::new();
    for run in store.runs()? {
        let _ = writeln!(
            out,
            "Run {} {} — {} by {}, started {}{}{}",
            run.id,
            run.kind,
            run.state,
            run.user,
            run.started_at,
            run.ended_at.as_deref().map(|e| format!(", ended {e}")).unwrap_or_default(),
            run.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
        );
        let counts = store.run_counts(run.id)?;
        if !counts.is_empty() {
            let w = name_width(counts.iter().map(|(n, _, _)| n.as_str()));
            header(&mut out, w, false);
            for (name, source, c) in &counts {
                row(&mut out, w, name, &source.map(|n| n.to_string()).unwrap_or_else(|| "-".into()), c);
            }
        }
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str("No runs yet.\n");
    }
    Ok(out)
}

/// One line per outcome, for scripts and tests.
pub fn outcome_line(c: &Counts) -> String {
    Outcome::ALL.iter().map(|o| format!("{}={}", o.as_str(), c.get(*o))).collect::<Vec<_>>().join(" ")
}
