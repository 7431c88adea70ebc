//! Signing a migration off: allowed when the report balances, or when the operator accepts each
//! remaining discrepancy by its key with a reason. The sign-off records who, when, the notes and
//! the hash of the report it approved.

use super::Report;
use crate::store::{Acceptance, NewSignOff, SignOff, Store};
use color_eyre::eyre::Result;

/// Why a sign-off was refused, in words for the operator.
pub type Refusal = String;

/// Checks the acceptances against the report and records the sign-off; `Err` inside says why not.
pub fn sign_off(
    store: &Store,
    report: &Report,
    notes: &str,
    accepted: &[(String, String)],
) -> Result<std::result::Result<SignOff, Refusal>> {
    match acceptances(report, notes, accepted) {
        Ok(accepted) => {
            let json = serde_json::to_string(report)?;
            let verdict = if report.balanced() { "balanced" } else { "balanced with accepted exceptions" };
            store.record_signoff(&NewSignOff {
                notes: notes.trim(),
                report_hash: &report.hash()?,
                verdict,
                last_run_id: report.last_run_id,
                accepted: &accepted,
                report_json: &json,
            })
        }
        Err(refusal) => Ok(Err(refusal)),
    }
}

/// Each remaining discrepancy must be accepted, with a reason, and nothing else may be named.
pub fn acceptances(
    report: &Report,
    notes: &str,
    accepted: &[(String, String)],
) -> std::result::Result<Vec<Acceptance>, Refusal> {
    if notes.trim().is_empty() {
        return Err("a sign-off needs notes: what was checked, and by whom".into());
    }
    let mut out: Vec<Acceptance> = Vec::new();
    for (key, reason) in accepted {
        let Some(d) = report.discrepancy(key) else {
            let known: Vec<&str> = report.discrepancies.iter().map(|d| d.key.as_str()).collect();
            return Err(if known.is_empty() {
                format!("'{key}' is not a discrepancy of this report: it has none")
            } else {
                format!("'{key}' is not a discrepancy of this report; its keys are: {}", known.join(", "))
            });
        };
        if reason.trim().is_empty() {
            return Err(format!("accepting '{key}' needs a reason"));
        }
        if out.iter().any(|a| a.key == *key) {
            return Err(format!("'{key}' is accepted twice"));
        }
        out.push(Acceptance { key: key.clone(), records: d.records.total, reason: reason.trim().to_string() });
    }
    let open: Vec<String> = report
        .discrepancies
        .iter()
        .filter(|d| !out.iter().any(|a| a.key == d.key))
        .map(|d| format!("  {}  {}", d.key, d.summary))
        .collect();
    if !open.is_empty() {
        return Err(format!(
            "cannot sign off: {} {} neither resolved nor accepted:\n{}\n\
             Fix them (the queue, a rerun), or accept each with --accept KEY=REASON.",
            crate::text::count(open.len() as u64, "discrepancy"),
            if open.len() == 1 { "is" } else { "are" },
            open.join("\n")
        ));
    }
    Ok(out)
}
