//! One run at a time per project: an exclusive lock on `<name>.state.lock` beside the store,
//! held for the whole run. The operating system releases it when the process ends, however it
//! ends, so a killed run never leaves a stale lock behind.

use color_eyre::eyre::{Result, WrapErr};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

pub struct RunLock {
    _file: File,
}

/// The project's run lock is held by another process (a run, a reprocess, a rollback, a sign-off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    pub path: PathBuf,
    /// What the holder wrote in the lock file: `pid N since TIME`.
    pub holder: String,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "another Cutover process is running this project ({}; {}); wait for it, or stop it",
            self.path.display(),
            self.holder
        )
    }
}

impl std::error::Error for Busy {}

/// Whether an error is the run lock refused because another process holds it.
pub fn is_busy(e: &color_eyre::Report) -> Option<&Busy> {
    e.chain().find_map(|c| c.downcast_ref::<Busy>())
}

/// `cutover.state.db` → `cutover.state.lock`.
pub fn path_for(store: &Path) -> PathBuf {
    store.with_extension("lock")
}

impl RunLock {
    /// Whether no process holds the project's lock now — looked at without taking it or writing
    /// to it (the file keeps naming the last holder, which consoles read to tell a dead run).
    pub fn is_free(store: &Path) -> bool {
        let Ok(file) = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path_for(store))
        else {
            return false;
        };
        let free = file.try_lock().is_ok();
        drop(file); // releases it
        free
    }

    pub fn acquire(store: &Path) -> Result<Self> {
        let path = path_for(store);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .wrap_err_with(|| format!("cannot open the run lock {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(Busy { path, holder: holder.trim().to_string() }.into());
            }
            Err(TryLockError::Error(e)) => return Err(e).wrap_err_with(|| format!("cannot lock {}", path.display())),
        }
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "pid {} since {}", std::process::id(), super::now())?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_is_refused_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("p.state.db");
        let first = RunLock::acquire(&store).expect("first");
        let err = RunLock::acquire(&store).err().expect("second refused");
        assert!(err.to_string().contains("another Cutover process is running this project"), "{err}");
        assert!(err.to_string().contains(&format!("pid {}", std::process::id())), "{err}");
        assert!(is_busy(&err).is_some_and(|b| b.holder.starts_with("pid ")), "told apart from other failures");
        assert!(!RunLock::is_free(&store));
        drop(first);
        assert!(RunLock::is_free(&store));
        assert!(
            std::fs::read_to_string(path_for(&store)).expect("file").contains(&format!("pid {}", std::process::id())),
            "looking leaves the last holder's name"
        );
        RunLock::acquire(&store).expect("free again");
    }
}
