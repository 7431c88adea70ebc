//! Errors that say a system cannot be used now — a lock another writer holds, a read-only file,
//! a full disk, an I/O failure — as opposed to errors about a record or the project file. They
//! stop the work as a whole (a batch is not a thousand failed records, a lock is not a typo in
//! the file) and are told as what they are, with the system they concern.

use color_eyre::Report;
use rusqlite::ErrorCode;
use std::fmt;
use std::time::Duration;

/// How long a SQLite connection waits for another writer's lock before giving up.
pub const SQLITE_LOCK_WAIT: Duration = Duration::from_secs(10);

/// A system that cannot be used now, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// The system, as its connector describes itself (`SQLite database ./destination.db`).
    pub system: String,
    pub cause: String,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.system, self.cause)
    }
}

impl std::error::Error for Unavailable {}

/// What about `e` says the system cannot be used now (`None`: the error is about something else).
pub fn cause(e: &Report) -> Option<String> {
    e.chain().find_map(|c| {
        if let Some(u) = c.downcast_ref::<Unavailable>() {
            return Some(u.cause.clone());
        }
        if let Some(r) = c.downcast_ref::<rusqlite::Error>() {
            return sqlite_cause(r);
        }
        c.downcast_ref::<std::io::Error>().and_then(io_cause)
    })
}

/// `e` as an [`Unavailable`] of `system` when it is one; otherwise as it is.
pub fn told(system: impl Into<String>, e: Report) -> Report {
    if e.chain().any(|c| c.is::<Unavailable>()) {
        return e;
    }
    match cause(&e) {
        Some(cause) => Unavailable { system: system.into(), cause }.into(),
        None => e,
    }
}

/// The cause when a SQLite error is about the file or the machine rather than the statement.
pub fn sqlite_cause(e: &rusqlite::Error) -> Option<String> {
    let rusqlite::Error::SqliteFailure(f, detail) = e else { return None };
    let detail = detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
    Some(match f.code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => format!(
            "is locked by another writer: waited {} s for it to let go — another program (a database \
             browser, a backup, a second Cutover) holds a write transaction on it; close it and try again",
            SQLITE_LOCK_WAIT.as_secs()
        ),
        ErrorCode::ReadOnly => format!(
            "is read-only{detail}: the file, or the folder where SQLite writes its journal beside it, is not \
             writable, or the disk is mounted read-only"
        ),
        ErrorCode::DiskFull => {
            "cannot grow: the disk is full — free some space, then `cutover run --resume` goes on from the last committed batch".into()
        }
        ErrorCode::SystemIoFailure => format!("could not be read or written: an I/O error{detail}"),
        ErrorCode::CannotOpen => format!("cannot be opened{detail}"),
        ErrorCode::PermissionDenied => format!("may not be opened: permission denied{detail}"),
        ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => format!("is damaged or not a database{detail}"),
        ErrorCode::OutOfMemory => "could not be used: the machine is out of memory".into(),
        _ => return None,
    })
}

fn io_cause(e: &std::io::Error) -> Option<String> {
    use std::io::ErrorKind;
    Some(match e.kind() {
        ErrorKind::StorageFull => "cannot be written: the disk is full".into(),
        ErrorKind::ReadOnlyFilesystem => "cannot be written: the disk is mounted read-only".into(),
        ErrorKind::PermissionDenied => format!("may not be used: {e}"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn the_machines_troubles_are_told_apart_from_the_records() {
        assert!(
            sqlite_cause(&failure(rusqlite::ffi::SQLITE_BUSY))
                .is_some_and(|c| c.contains("locked by another writer: waited 10 s"))
        );
        assert!(sqlite_cause(&failure(rusqlite::ffi::SQLITE_READONLY)).is_some_and(|c| c.contains("read-only")));
        assert!(sqlite_cause(&failure(rusqlite::ffi::SQLITE_FULL)).is_some_and(|c| c.contains("disk is full")));
        assert_eq!(sqlite_cause(&failure(rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL)), None, "a record's problem");
        assert_eq!(sqlite_cause(&rusqlite::Error::QueryReturnedNoRows), None);
        let e =
            told("SQLite database d.db", Report::new(failure(rusqlite::ffi::SQLITE_BUSY)).wrap_err("reading deals"));
        assert!(e.to_string().starts_with("SQLite database d.db is locked"), "{e}");
        let plain = told("x", color_eyre::eyre::eyre!("no such table: deals"));
        assert_eq!(plain.to_string(), "no such table: deals");
    }
}
