//! Claims on held records: the console an operator edits a record in holds it, so a second
//! console on the same project (another SSH session) shows it as taken and will not edit it.
//! A claim lapses by itself after [`CLAIM_MINUTES`], so a console that died holds nothing for long.

use super::{Store, now};
use color_eyre::eyre::{Result, bail};
use rusqlite::params;

/// How long a claim holds without being renewed.
pub const CLAIM_MINUTES: i64 = 10;

/// Who holds a record, when another console does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub id: i64,
    pub by: String,
    pub since: String,
}

/// The oldest claim time still in force (claims older than this have lapsed).
pub fn claim_cutoff() -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(CLAIM_MINUTES)).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// This console, as others see it: the operating-system user and the process.
pub fn console_identity() -> String {
    format!("{} (console pid {})", super::os_user(), std::process::id())
}

impl Store {
    /// Claims pending records for `who`, all or none: refused with the first holder when another
    /// console's claim on any of them is still in force. Renews `who`'s own claims.
    pub fn queue_claim(&self, ids: &[i64], who: &str) -> Result<std::result::Result<(), Taken>> {
        self.immediate(|| -> Result<std::result::Result<(), Taken>> {
            let cutoff = claim_cutoff();
            let mut check =
                self.conn.prepare_cached("SELECT status, claimed_by, claimed_at FROM queue WHERE id = ?1")?;
            for &id in ids {
                let row: Option<(String, Option<String>, Option<String>)> = check
                    .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map(Some)
                    .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
                let Some((status, by, at)) = row else { bail!("no queue item {id}") };
                if !matches!(status.as_str(), "open" | "fixed" | "claimed") {
                    bail!("queue item {id} is {status}; only held records can be edited");
                }
                if let (Some(by), Some(at)) = (by, at)
                    && by != who
                    && at > cutoff
                {
                    return Ok(Err(Taken { id, by, since: at }));
                }
            }
            let at = now();
            let mut claim =
                self.conn.prepare_cached("UPDATE queue SET claimed_by = ?2, claimed_at = ?3 WHERE id = ?1")?;
            for &id in ids {
                claim.execute(params![id, who, at])?;
            }
            Ok(Ok(()))
        })
    }

    /// Lets go of `who`'s claims on these records (all of them when `ids` is `None`).
    pub fn queue_release(&self, ids: Option<&[i64]>, who: &str) -> Result<usize> {
        match ids {
            None => Ok(self
                .conn
                .execute("UPDATE queue SET claimed_by = NULL, claimed_at = NULL WHERE claimed_by = ?1", [who])?),
            Some(ids) => {
                let mut stmt = self.conn.prepare_cached(
                    "UPDATE queue SET claimed_by = NULL, claimed_at = NULL WHERE id = ?1 AND claimed_by = ?2",
                )?;
                let mut n = 0;
                for &id in ids {
                    n += stmt.execute(params![id, who])?;
                }
                Ok(n)
            }
        }
    }

    /// A number that changes whenever another connection commits to the store: a console polls
    /// it to learn, cheaply, that it has something to reload.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self.conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Issue, Rule};

    fn store_with_items(n: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("p.state.db")).expect("store");
        for i in 0..n {
            store
                .conn
                .execute(
                    "INSERT INTO queue (object, source_id, origin, run_id, status, reason, source, mapped, issues,
                                        created_at, updated_at)
                     VALUES ('deals', ?1, 'deals.csv', 1, 'open', 'no_translation', '{}', '{}', ?2, '', '')",
                    params![
                        format!("s{i}"),
                        serde_json::to_string(&vec![Issue {
                            field: "dealstage".into(),
                            rule: Rule::NoTranslation,
                            value: None,
                            message: String::new(),
                            suggestion: None
                        }])
                        .expect("json")
                    ],
                )
                .expect("insert");
        }
        (dir, store)
    }

    #[test]
    fn a_claim_holds_against_another_console_until_released_or_lapsed() {
        let (_dir, store) = store_with_items(3);
        assert_eq!(store.queue_claim(&[1, 2], "alice (console pid 1)").expect("claim"), Ok(()));
        // Bob asks for 3 and 2: refused as a whole, naming Alice; 3 stays unclaimed.
        let refused = store.queue_claim(&[3, 2], "bob (console pid 2)").expect("claim");
        let taken = refused.expect_err("2 is Alice's");
        assert_eq!((taken.id, taken.by.as_str()), (2, "alice (console pid 1)"));
        assert_eq!(store.queue_item(3).expect("item").expect("3").claimed_by, None);
        // Alice renews her own claim freely.
        assert_eq!(store.queue_claim(&[2], "alice (console pid 1)").expect("renew"), Ok(()));
        // Bob cannot release Alice's claim; Alice can.
        assert_eq!(store.queue_release(Some(&[2]), "bob (console pid 2)").expect("release"), 0);
        assert_eq!(store.queue_release(Some(&[2]), "alice (console pid 1)").expect("release"), 1);
        assert_eq!(store.queue_claim(&[2, 3], "bob (console pid 2)").expect("claim"), Ok(()));
        // A claim older than the limit has lapsed: someone else may take it.
        store
            .conn
            .execute("UPDATE queue SET claimed_at = '2000-01-01T00:00:00.000Z' WHERE id = 1", [])
            .expect("age the claim");
        assert_eq!(store.queue_claim(&[1], "bob (console pid 2)").expect("claim"), Ok(()));
        assert_eq!(store.queue_release(None, "bob (console pid 2)").expect("release all"), 3);
    }

    #[test]
    fn data_version_moves_when_another_connection_commits() {
        let (dir, store) = store_with_items(1);
        let watcher = Store::open_reader(&dir.path().join("p.state.db")).expect("reader");
        let before = watcher.data_version().expect("version");
        assert_eq!(watcher.data_version().expect("version"), before, "nothing committed yet");
        store.queue_claim(&[1], "alice").expect("claim").expect("free");
        assert_ne!(watcher.data_version().expect("version"), before);
    }
}
