//! Logs go to a file — never to the terminal the console draws on.

use color_eyre::eyre::{Result, WrapErr};
use std::path::PathBuf;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// The default log file: `cutover.log` under the platform's data folder.
pub fn default_log_file() -> PathBuf {
    directories::ProjectDirs::from("dev", "cutover", "cutover")
        .map(|d| d.data_dir().join("logs").join("cutover.log"))
        .unwrap_or_else(|| std::env::temp_dir().join("cutover.log"))
}

/// Starts logging to `file` (or the default); keep the guard alive until exit.
pub fn init(file: Option<PathBuf>) -> Result<(WorkerGuard, PathBuf)> {
    let path = file.unwrap_or_else(default_log_file);
    let dir = path.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).wrap_err_with(|| format!("cannot create log folder {}", dir.display()))?;
    let name = path.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "cutover.log".into());
    let appender = tracing_appender::rolling::never(&dir, name);
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = EnvFilter::try_from_env("CUTOVER_LOG_LEVEL").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_writer(writer).with_ansi(false).with_env_filter(filter).try_init().ok();
    Ok((guard, path))
}
