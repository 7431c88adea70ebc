//! `cutover rollback RUN`: undo what a run wrote, after a preview if wanted; records changed in
//! the destination since are listed for a decision instead of being touched.

use super::{EXIT_HALTED, EXIT_OK, not_started};
use crate::pipeline::rollback::{RollbackOptions, RollbackReport, rollback};
use std::fmt::Write;
use std::path::PathBuf;

pub async fn command(run: i64, project: Option<PathBuf>, opts: RollbackOptions) -> i32 {
    let (_project, engine) = match super::project_engine(project.as_deref()) {
        Ok(pe) => pe,
        Err(code) => return code,
    };
    match rollback(&engine, run, &opts).await {
        Ok(report) => {
            say_part!("{}", table(&report));
            if report.undecided() > 0 { EXIT_HALTED } else { EXIT_OK }
        }
        Err(e) => not_started(&e),
    }
}

pub fn table(r: &RollbackReport) -> String {
    let mut out = String::new();
    let _ = match (r.dry_run, r.run_id) {
        (true, _) => writeln!(out, "Rollback of run {} — preview: nothing was changed", r.of_run),
        (false, Some(id)) => writeln!(out, "Rollback of run {} (itself run {id}, audited record by record)", r.of_run),
        (false, None) => writeln!(out, "Rollback of run {}", r.of_run),
    };
    let verb = if r.dry_run { "would be " } else { "" };
    let w = super::report::name_width(r.objects.iter().map(|o| o.object.as_str()));
    let _ = writeln!(
        out,
        "  {:<w$} {:>8} {:>9} {:>10} {:>12} {:>11} {:>6} {:>7} {:>7}",
        "object", "deleted", "restored", "no change", "done before", "not linked", "kept", "decide", "failed"
    );
    for o in &r.objects {
        let _ = writeln!(
            out,
            "  {:<w$} {:>8} {:>9} {:>10} {:>12} {:>11} {:>6} {:>7} {:>7}",
            o.object,
            o.deleted,
            o.restored,
            o.nothing_to_restore,
            o.already_done,
            o.not_linked,
            o.kept.len(),
            o.undecided.len(),
            o.failed.len()
        );
    }
    let _ = writeln!(
        out,
        "(deleted: created by the run, {verb}deleted; restored: updated by it, {verb}put back from the before-image;\n \
         no change: its update changed nothing; done before: deleted or restored by an earlier attempt;\n \
         not linked: rolled back earlier; decide: changed since, left untouched until you decide)"
    );
    let undecided: Vec<_> = r.objects.iter().flat_map(|o| o.undecided.iter().map(move |c| (&o.object, c))).collect();
    if !undecided.is_empty() {
        let _ = writeln!(
            out,
            "\n{} changed since this run wrote them (in the destination, or by a later run) {} left untouched:",
            crate::text::count(undecided.len() as u64, "record"),
            if undecided.len() == 1 { "was" } else { "were" }
        );
        for (object, c) in undecided.iter().take(50) {
            let _ = writeln!(
                out,
                "  {object} {} (destination {}): {}",
                crate::text::shown(&c.source_id),
                crate::text::shown(&c.dest_id),
                c.why
            );
        }
        if undecided.len() > 50 {
            let _ = writeln!(out, "  … and {} more", undecided.len() - 50);
        }
        let _ = writeln!(
            out,
            "Decide: `--anyway SOURCE_ID` (repeatable) rolls one back regardless; `--keep` keeps them all (audited)."
        );
    }
    for o in &r.objects {
        for (sid, msg) in &o.failed {
            let _ = writeln!(out, "  FAILED {} {}: {msg}", o.object, crate::text::shown(sid));
        }
    }
    out
}
