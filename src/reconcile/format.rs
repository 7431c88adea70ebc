//! The report as Markdown (for a terminal or a change ticket) and JSON (for tools). Markdown is
//! written line by line to any writer; record values are escaped so they cannot break a table.

use super::{ObjectReport, RecordList, Report};
use crate::store::SignOff;
use crate::text::shown_opt;
use std::io::{self, Write};

/// How many records of a discrepancy the Markdown lists (JSON lists up to [`super::LIST_CAP`]).
const SHOWN: usize = 20;

fn cell(v: Option<&str>) -> String {
    shown_opt(v).replace('|', "\\|")
}

fn ids(list: &RecordList) -> String {
    let mut s = list.ids.iter().take(SHOWN).map(|i| cell(Some(i))).collect::<Vec<_>>().join(", ");
    if list.total > SHOWN as u64 {
        s.push_str(&format!(" … and {} more", list.total - SHOWN as u64));
    }
    s
}

fn mark(ok: bool) -> &'static str {
    if ok { "yes" } else { "**NO**" }
}

pub fn markdown(report: &Report, signoff: Option<&SignOff>, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "# Reconciliation: {}", report.project)?;
    writeln!(out)?;
    let how = if report.options.all {
        "every written record compared field by field".to_string()
    } else {
        format!(
            "a seeded sample of {} written records per object compared field by field (seed {})",
            report.options.sample, report.options.seed
        )
    };
    writeln!(
        out,
        "Made {} by {} after run {}; {how}. Counts, missing records, distributions, sums and parent links cover every record.",
        report.generated_at,
        report.generated_by,
        report.last_run_id.unwrap_or_default()
    )?;
    writeln!(out)?;
    if report.balanced() {
        writeln!(
            out,
            "**Verdict: BALANCED** — every source record is accounted for and the destination holds what was written."
        )?;
    } else {
        writeln!(
            out,
            "**Verdict: NOT BALANCED** — {}:",
            crate::text::count(report.discrepancies.len() as u64, "discrepancy")
        )?;
        writeln!(out)?;
        writeln!(out, "| key | check | records | what |")?;
        writeln!(out, "|---|---|---:|---|")?;
        for d in &report.discrepancies {
            let n = if d.records.total > 0 { d.records.total.to_string() } else { "—".into() };
            writeln!(out, "| `{}` | {} | {n} | {} |", d.key, d.check, cell(Some(&d.summary)))?;
        }
    }
    writeln!(out)?;
    if let Some(s) = signoff {
        signoff_lines(s, out)?;
    }
    for o in &report.objects {
        object(o, out)?;
    }
    if !report.discrepancies.is_empty() {
        writeln!(out, "## Records behind each discrepancy")?;
        writeln!(out)?;
        for d in report.discrepancies.iter().filter(|d| d.records.total > 0) {
            writeln!(out, "- `{}`: {}", d.key, ids(&d.records))?;
        }
        writeln!(out)?;
    }
    writeln!(out, "Report hash (SHA-256 of the JSON report): `{}`", report.hash().unwrap_or_default())?;
    Ok(())
}

fn signoff_lines(s: &SignOff, out: &mut dyn Write) -> io::Result<()> {
    match s.voided_by_run {
        Some(run) => writeln!(
            out,
            "Sign-off {} by {} at {} is **void**: run {run} came after it. Reconcile and sign off again.",
            s.id, s.user, s.at
        )?,
        None => {
            writeln!(out, "**Signed off** by {} at {} ({}): {}", s.user, s.at, s.verdict, cell(Some(&s.notes)))?;
            for a in &s.accepted {
                writeln!(
                    out,
                    "- accepted `{}` ({}): {}",
                    a.key,
                    crate::text::count(a.records, "record"),
                    cell(Some(&a.reason))
                )?;
            }
            writeln!(out, "- approved report hash `{}`", s.report_hash)?;
        }
    }
    writeln!(out)
}

/// How sure record linkage was of what it decided: records per outcome and band of probability.
fn linkage(o: &ObjectReport, out: &mut dyn Write) -> io::Result<()> {
    if o.linkage.is_empty() {
        return Ok(());
    }
    writeln!(out, "### Record linkage (best candidate's match probability)")?;
    writeln!(out)?;
    writeln!(
        out,
        "Records linkage decided with a candidate in view; records with none are created and not counted here."
    )?;
    writeln!(out)?;
    writeln!(out, "| outcome | probability from | records |")?;
    writeln!(out, "|---|---:|---:|")?;
    for b in &o.linkage {
        let outcome = match b.outcome.as_str() {
            "updated" | "unchanged" | "merged" => format!("linked ({})", b.outcome),
            "queued" => "held in the queue".to_string(),
            "created" => "created (a candidate, too unlikely)".to_string(),
            other => other.to_string(),
        };
        writeln!(out, "| {outcome} | {} | {} |", b.from, b.records)?;
    }
    writeln!(out)
}

fn object(o: &ObjectReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "## {}", o.object)?;
    writeln!(out)?;
    let c = &o.counts;
    writeln!(out, "### Counts")?;
    writeln!(out)?;
    writeln!(
        out,
        "| in source | source's count | written | held | skipped | failed | rolled back | no outcome | no longer in source | balanced |"
    )?;
    writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")?;
    writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        c.in_source,
        c.source_count.map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
        c.written,
        c.queued,
        c.skipped,
        c.failed.total,
        c.rolled_back,
        c.no_outcome.total,
        c.not_in_source.total,
        mark(c.balanced())
    )?;
    writeln!(out)?;
    witnesses(o, out)?;
    let r = &o.readback;
    writeln!(out, "### Read-back")?;
    writeln!(out)?;
    writeln!(
        out,
        "{} looked up: {} missing. {} compared field by field: {} identical, {}.{}",
        crate::text::count(r.written, "written record"),
        r.missing.total,
        r.checked,
        r.identical,
        crate::text::count(r.differences_total, "field difference"),
        if r.no_image > 0 {
            format!(" {} records were written before Cutover kept what it wrote: not compared.", r.no_image)
        } else {
            String::new()
        }
    )?;
    if !r.differences.is_empty() {
        writeln!(out)?;
        writeln!(out, "| source id | destination id | field | Cutover wrote | destination has |")?;
        writeln!(out, "|---|---|---|---|---|")?;
        for d in r.differences.iter().take(SHOWN) {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(Some(&d.source_id)),
                cell(Some(&d.dest_id)),
                d.field,
                cell(d.wrote.as_deref()),
                cell(d.found.as_deref())
            )?;
        }
        if r.differences_total > SHOWN as u64 {
            writeln!(out, "\n… and {} more differences (all in the JSON report).", r.differences_total - SHOWN as u64)?;
        }
    }
    writeln!(out)?;
    linkage(o, out)?;
    if !o.distributions.is_empty() {
        writeln!(out, "### Distributions (mapped source vs destination)")?;
        writeln!(out)?;
        for d in &o.distributions {
            writeln!(out, "`{}` — {}", d.field, if d.balanced() { "same" } else { "**DIFFERENT**" })?;
            writeln!(out)?;
            writeln!(out, "| value | mapped source | destination | |")?;
            writeln!(out, "|---|---:|---:|---|")?;
            for row in &d.rows {
                let value = match (&row.value, &row.label) {
                    (Some(v), Some(l)) => format!("{} ({})", cell(Some(l)), cell(Some(v))),
                    (v, _) => cell(v.as_deref()),
                };
                writeln!(
                    out,
                    "| {value} | {} | {} | {} |",
                    row.mapped,
                    row.destination,
                    if row.mapped == row.destination { "" } else { "**≠**" }
                )?;
            }
            writeln!(out)?;
        }
    }
    if !o.sums.is_empty() {
        writeln!(out, "### Sums (exact decimals)")?;
        writeln!(out)?;
        writeln!(out, "| field | mapped source | destination | not numbers (source/destination) | same |")?;
        writeln!(out, "|---|---:|---:|---:|---|")?;
        for s in &o.sums {
            writeln!(
                out,
                "| {} | {} | {} | {}/{} | {} |",
                s.field,
                s.mapped,
                s.destination,
                s.mapped_not_numbers,
                s.destination_not_numbers,
                mark(s.balanced())
            )?;
        }
        writeln!(out)?;
    }
    if !o.relationships.is_empty() {
        writeln!(out, "### Relationships")?;
        writeln!(out)?;
        writeln!(out, "| field | parent | linked | pointing at nothing | other parent than written (sample) |")?;
        writeln!(out, "|---|---|---:|---:|---:|")?;
        for rel in &o.relationships {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                rel.field, rel.parent, rel.linked, rel.orphans.total, rel.wrong_parent.total
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// The independent witnesses of one object.
fn witnesses(o: &ObjectReport, out: &mut dyn Write) -> io::Result<()> {
    let w = &o.witnesses;
    writeln!(out, "### Witnesses (each with its own reading)")?;
    writeln!(out)?;
    if let Some(c) = &w.census {
        writeln!(
            out,
            "- Source count: the source's own count finds {}; reading it finds {} — {}.",
            crate::text::count(c.records, "record"),
            o.counts.in_source,
            mark(c.records == o.counts.in_source)
        )?;
        if c.problem_count > 0 {
            writeln!(out, "  Where the source is broken ({} places):", c.problem_count)?;
            for p in c.problems.iter().take(SHOWN) {
                writeln!(out, "  - {}", cell(Some(p)))?;
            }
        }
    }
    match &w.destination {
        Some(d) => writeln!(
            out,
            "- Destination count: {} held {} before the migration; Cutover created {} since (less what it rolled \
             back), so it should hold {}; it holds {} — {}.",
            d.dest_object,
            d.before,
            d.created,
            d.expected,
            d.now,
            mark(d.balanced())
        )?,
        None => writeln!(
            out,
            "- Destination count: not witnessed here: {}.",
            w.destination_unwitnessed.as_deref().unwrap_or("the destination cannot count it")
        )?,
    }
    let m = &w.one_to_one;
    writeln!(
        out,
        "- One-to-one: {} destination records are fed by more than one source record{}.",
        m.merged_total,
        if m.unrecorded.is_empty() {
            String::new()
        } else {
            format!(", {} without a recorded decision", m.unrecorded.total)
        }
    )?;
    if !m.merged.is_empty() {
        writeln!(out)?;
        writeln!(out, "| destination id | survivor | merged into it |")?;
        writeln!(out, "|---|---|---|")?;
        for r in m.merged.iter().take(SHOWN) {
            let members: Vec<String> = r.members.iter().map(|x| cell(Some(x))).collect();
            writeln!(out, "| {} | {} | {} |", cell(Some(&r.dest_id)), cell(r.survivor.as_deref()), members.join(", "))?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "- Duplicates: {} match-key values are held by more than one record this migration wrote or matched.",
        w.duplicates_total
    )?;
    if !w.duplicates.is_empty() {
        writeln!(out)?;
        writeln!(out, "| field | value | destination records |")?;
        writeln!(out, "|---|---|---|")?;
        for d in w.duplicates.iter().take(SHOWN) {
            writeln!(out, "| {} | {} | {} |", d.field, cell(Some(&d.value)), d.dest_ids.join(", "))?;
        }
    }
    writeln!(out)
}
