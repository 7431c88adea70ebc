//! `cutover reconcile`, `cutover signoff` and `cutover export`: the proof, the approval, and the
//! files to attach to a change ticket. Files are written whole or not at all.

use super::{EXIT_HALTED, EXIT_NOT_STARTED, EXIT_OK, not_started};
use crate::project::Project;
use crate::reconcile::{self, Options, Report, format};
use crate::store::RunLock;
use crate::store::export::{ExportFilter, ExportFormat, ExportTable};
use clap::ValueEnum;
use color_eyre::eyre::{Result, WrapErr, eyre};
use std::io::IsTerminal;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Markdown,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportWhat {
    Queue,
    Audit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormatArg {
    Csv,
    Jsonl,
}

/// Sample options shared by reconcile and signoff.
#[derive(Debug, Clone, clap::Args)]
pub struct SampleArgs {
    /// Written records per object compared field by field (a seeded sample).
    #[arg(long, default_value_t = 200)]
    pub sample: usize,
    /// Compare every written record field by field.
    #[arg(long)]
    pub all: bool,
    /// Seed of the sample: the same seed picks the same records.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl SampleArgs {
    fn options(&self) -> Options {
        Options { sample: self.sample, all: self.all, seed: self.seed }
    }
}

/// Writes to `path` through a temporary file renamed into place (never a half-written file),
/// or to standard output.
pub fn write_output<T>(path: Option<&Path>, f: impl FnOnce(&mut dyn Write) -> Result<T>) -> Result<T> {
    match path {
        // A terminal gets record values with their control codes spelt out; a pipe the bytes.
        None if std::io::stdout().is_terminal() => {
            let mut w = BufWriter::new(crate::text::TerminalSafe::new(std::io::stdout().lock()));
            let done = f(&mut w)?;
            w.flush()?;
            Ok(done)
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = BufWriter::new(stdout.lock());
            let done = f(&mut w)?;
            w.flush()?;
            Ok(done)
        }
        Some(path) => {
            let target = followed(path);
            let before = std::fs::metadata(&target).ok();
            if before.as_ref().is_some_and(|m| !m.is_file() && !m.is_dir()) {
                // A device or a pipe (`/dev/stdout`, a FIFO) is written to as it is: renaming a
                // file over it would replace it.
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&target)
                    .wrap_err_with(|| format!("cannot write {}", path.display()))?;
                let mut w = BufWriter::new(file);
                let done = f(&mut w)?;
                w.flush()?;
                return Ok(done);
            }
            let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let tmp =
                tempfile::NamedTempFile::new_in(dir).wrap_err_with(|| format!("cannot write in {}", dir.display()))?;
            let mut w = BufWriter::new(tmp);
            let done = f(&mut w)?;
            let tmp = w.into_inner().map_err(|e| eyre!("writing {}: {}", path.display(), e.error()))?;
            tmp.as_file().sync_all()?;
            if let Some(m) = &before {
                // The file it replaces keeps its permissions.
                let _ = tmp.as_file().set_permissions(m.permissions());
            }
            tmp.persist(&target).map_err(|e| eyre!("cannot write {}: {}", path.display(), e.error))?;
            Ok(done)
        }
    }
}

/// The file a path names, through symbolic links: an export to a link replaces the file the
/// link points at and keeps the link.
fn followed(path: &Path) -> std::path::PathBuf {
    let mut at = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => match std::fs::read_link(&at) {
                Ok(to) => at = at.parent().map_or(to.clone(), |dir| dir.join(&to)),
                Err(_) => return at,
            },
            _ => return at,
        }
    }
    at
}

async fn build(project: &Project, options: Options) -> Result<Report> {
    let engine = project.engine()?;
    reconcile::build(&engine, options).await
}

pub async fn reconcile_command(
    project: Option<PathBuf>,
    sample: SampleArgs,
    format_arg: ReportFormat,
    output: Option<PathBuf>,
) -> i32 {
    let project = match Project::load(project.as_deref()) {
        Ok(p) => p,
        Err(e) => return not_started(&e),
    };
    // A run must not move records while they are being counted.
    let lock = match RunLock::acquire(&project.store_path) {
        Ok(l) => l,
        Err(e) => return not_started(&e),
    };
    let report = match build(&project, sample.options()).await {
        Ok(r) => r,
        Err(e) => return not_started(&e),
    };
    drop(lock);
    let signoff = project.store().and_then(|s| s.latest_signoff()).ok().flatten();
    let written = write_output(output.as_deref(), |out| {
        match format_arg {
            ReportFormat::Markdown => format::markdown(&report, signoff.as_ref(), out)?,
            ReportFormat::Json => writeln!(out, "{}", report.to_json()?)?,
        }
        Ok(())
    });
    if let Err(e) = written
        && !broken_pipe(&e)
    {
        tell!("error: {e:#}");
        return EXIT_NOT_STARTED;
    }
    if let Some(path) = &output {
        tell!("Report written to {} ({}).", path.display(), report.verdict());
    }
    if report.balanced() { EXIT_OK } else { EXIT_HALTED }
}

fn broken_pipe(e: &color_eyre::Report) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<csv::Error>().is_some_and(
                |e| matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe),
            )
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|e| e.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

/// `KEY=REASON` → (key, reason).
fn parse_accept(arg: &str) -> Result<(String, String)> {
    let (key, reason) = arg
        .split_once('=')
        .ok_or_else(|| eyre!("--accept '{arg}': write KEY=REASON, e.g. deals/failed=\"known bad rows\""))?;
    Ok((key.trim().to_string(), reason.trim().to_string()))
}

pub async fn signoff_command(project: Option<PathBuf>, notes: String, accept: Vec<String>, sample: SampleArgs) -> i32 {
    let project = match Project::load(project.as_deref()) {
        Ok(p) => p,
        Err(e) => return not_started(&e),
    };
    let accepted = match accept.iter().map(|a| parse_accept(a)).collect::<Result<Vec<_>>>() {
        Ok(a) => a,
        Err(e) => return not_started(&e),
    };
    // No run may start between the report and the sign-off.
    let _lock = match RunLock::acquire(&project.store_path) {
        Ok(l) => l,
        Err(e) => return not_started(&e),
    };
    let report = match build(&project, sample.options()).await {
        Ok(r) => r,
        Err(e) => return not_started(&e),
    };
    let result = project.store().and_then(|store| reconcile::signoff::sign_off(&store, &report, &notes, &accepted));
    match result {
        Ok(Ok(s)) => {
            say!("Signed off by {} at {} ({}).", s.user, s.at, s.verdict);
            for a in &s.accepted {
                say!("  accepted {} ({}): {}", a.key, crate::text::count(a.records, "record"), a.reason);
            }
            say!("Report hash: {}", s.report_hash);
            EXIT_OK
        }
        Ok(Err(refusal)) => {
            tell!("{refusal}");
            EXIT_HALTED
        }
        Err(e) => not_started(&e),
    }
}

pub fn export_command(
    what: ExportWhat,
    project: Option<PathBuf>,
    format_arg: ExportFormatArg,
    output: Option<PathBuf>,
    filter: ExportFilter,
) -> i32 {
    let result = (|| -> Result<u64> {
        let project = Project::load(project.as_deref())?;
        let store = project.store()?;
        let table = match what {
            ExportWhat::Queue => ExportTable::Queue,
            ExportWhat::Audit => ExportTable::Audit,
        };
        let format = match format_arg {
            ExportFormatArg::Csv => ExportFormat::Csv,
            ExportFormatArg::Jsonl => ExportFormat::Jsonl,
        };
        write_output(output.as_deref(), |out| store.export(table, format, &filter, out))
    })();
    match result {
        Ok(n) => {
            if let Some(path) = &output {
                tell!("{n} rows written to {}.", path.display());
            }
            EXIT_OK
        }
        // `cutover export audit | head`: the reader has all it wanted.
        Err(e) if broken_pipe(&e) => EXIT_OK,
        Err(e) => not_started(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acceptance_needs_a_key_and_a_reason() {
        assert_eq!(parse_accept("deals/failed = known bad").expect("ok"), ("deals/failed".into(), "known bad".into()));
        assert!(parse_accept("deals/failed").is_err());
    }
}

#[cfg(test)]
mod output_tests {
    use super::*;

    #[test]
    fn an_export_through_a_link_or_to_a_device_replaces_neither() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("target.txt");
        std::fs::write(&target, "old").expect("target");
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink("target.txt", &link).expect("link");
        write_output(Some(&link), |w| Ok(w.write_all(b"new")?)).expect("write");
        assert!(std::fs::symlink_metadata(&link).expect("link").file_type().is_symlink(), "the link stays");
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "new");
        write_output(Some(Path::new("/dev/null")), |w| Ok(w.write_all(b"gone")?)).expect("device");
        assert!(!std::fs::metadata("/dev/null").expect("null").is_file(), "a device stays a device");
    }
}
