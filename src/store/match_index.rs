//! The match index: the normalised match keys (email, E.164 phone, …) of every destination record,
//! so dedupe can find candidates without one API search per record.
//!
//! It is a cache, never the only copy of anything: rebuilt from a scan of the destination at the
//! start of every run, and extended with each record Cutover writes. So it lives in its own
//! SQLite file without a journal, in one transaction per object: random-order keys (emails,
//! phones) written through the state store's WAL cost 6× the whole commit at a million records.
//! A "clean" flag per object is set only when its transaction committed; anything else (a crash,
//! a torn file) makes the next user rebuild it from the destination.

use color_eyre::eyre::{Result, WrapErr};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct MatchIndex {
    /// Opened at first use, not when the engine is made: only a run (holding the run lock)
    /// touches the index, so a second console making an engine never reads or locks the file a
    /// running reprocess writes (it made that run fail with "database is locked").
    conn: Option<Connection>,
    path: PathBuf,
    open_object: Option<String>,
    /// (object, key) → number, looked up without allocating (an object has a few keys).
    key_ids: Vec<(String, String, i64)>,
    filter: Bloom,
    /// Recent keys, written to SQLite in key order when full: sorted inserts touch each leaf page
    /// once per flush, where hashed keys inserted one by one each land on a random page.
    buffer: BTreeMap<(i64, i64, String), Option<i64>>,
}

/// How many keys wait in memory before a flush (~100 bytes each). Measured on the 1M bench:
/// 32k flushes cheapest; 250k spends its time on cache misses in the tree, 8k on SQLite.
const BUFFER_KEYS: usize = 32_000;

/// The filter also remembers which source ids have an id-map entry, so the state store is asked
/// only about ids it may know (a first run asks it nothing). This is the filter's key number for them.
const SOURCE_IDS: i64 = -1;

/// A fixed-size Bloom filter over the (key, value-hash) pairs of the open object: most records
/// of a large first run are new, and the filter answers "certainly not there" without a B-tree
/// search. Its size is fixed (16 MiB), so memory stays flat; beyond ~30 million keys it only
/// lets more misses through to the index.
struct Bloom {
    bits: Vec<u64>,
}

impl Bloom {
    const WORDS: usize = 1 << 21; // 2^27 bits = 16 MiB

    /// A filter not in use: it answers "maybe" to everything.
    fn new() -> Self {
        Self { bits: Vec::new() }
    }
    /// An empty filter in use: exact for an empty index, kept up to date by every insert.
    fn clear(&mut self) {
        if self.bits.is_empty() {
            self.bits = vec![0; Self::WORDS];
        } else {
            self.bits.iter_mut().for_each(|w| *w = 0);
        }
    }
    /// Four bits within one 512-bit block, so a lookup touches one cache line, not four.
    fn probes(k: i64, h: i64) -> impl Iterator<Item = usize> {
        let mut x = (h as u64) ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let block = ((x >> 36) as usize % (Self::WORDS / 8)) * 512;
        (0..4u32).map(move |i| block + ((x >> (i * 9)) & 511) as usize)
    }
    fn insert(&mut self, k: i64, h: i64) {
        if self.bits.is_empty() {
            return;
        }
        for bit in Self::probes(k, h) {
            self.bits[bit / 64] |= 1 << (bit % 64);
        }
    }
    /// False only when the pair was certainly never inserted (or the filter is not in use).
    fn may_contain(&self, k: i64, h: i64) -> bool {
        self.bits.is_empty() || Self::probes(k, h).all(|bit| self.bits[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

// Values are kept as 64-bit hashes and (object, key) as a small number: a compact B-tree with
// integer comparisons. A hash can collide, so the engine checks the destination record's own
// value before it merges into it (see `run.rs`, "verify").
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS objects (object TEXT PRIMARY KEY, clean INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS key_names (k INTEGER PRIMARY KEY, object TEXT NOT NULL, key TEXT NOT NULL, UNIQUE (object, key));
    CREATE TABLE IF NOT EXISTS keys (
        k       INTEGER NOT NULL,
        h       INTEGER NOT NULL,
        dest_id NOT NULL, -- no type: integers stay integers, text stays text ('007' too)
        run_id  INTEGER,
        PRIMARY KEY (k, h, dest_id)
    ) WITHOUT ROWID;";

/// The layout version; an index file of another version is discarded and rebuilt.
const VERSION: i64 = 2;

/// Destination ids that are plain integers (most databases, HubSpot) are stored as integers:
/// half the bytes of their text, so more of the index stays in the page cache.
fn id_value(dest_id: &str) -> rusqlite::types::Value {
    match dest_id.parse::<i64>() {
        Ok(n) if n.to_string() == dest_id => rusqlite::types::Value::Integer(n),
        _ => rusqlite::types::Value::Text(dest_id.to_string()),
    }
}

fn id_text(v: rusqlite::types::ValueRef<'_>) -> rusqlite::Result<String> {
    match v {
        rusqlite::types::ValueRef::Integer(n) => Ok(n.to_string()),
        other => Ok(other
            .as_str()
            .map_err(|_| rusqlite::Error::InvalidColumnType(0, "dest_id".into(), other.data_type()))?
            .to_string()),
    }
}

fn hash(value: &str) -> i64 {
    crate::config::fnv1a(value.as_bytes()) as i64
}

/// Where the index of a state store lives: `cutover.state.db` → `cutover.index.db`.
pub fn path_for(store: &Path) -> PathBuf {
    let name = store.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match name.strip_suffix(".state.db") {
        Some(stem) => store.with_file_name(format!("{stem}.index.db")),
        None => store.with_file_name(format!("{name}.index.db")),
    }
}

/// Another process holds the file: wait, do not rebuild.
fn is_busy(e: &color_eyre::Report) -> bool {
    e.downcast_ref::<rusqlite::Error>().is_some_and(|e| {
        matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
    })
}

fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-16000;")?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let empty: bool = conn.query_row("SELECT COUNT(*) = 0 FROM sqlite_schema", [], |r| r.get(0))?;
    if version != VERSION && !empty {
        return Err(color_eyre::eyre::eyre!("match index of layout {version}, not {VERSION}"));
    }
    if version != VERSION {
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(&format!("PRAGMA user_version = {VERSION}"))?;
    }
    Ok(conn)
}

impl MatchIndex {
    /// The index at `path`; the file is opened (checked, made or rebuilt) at first use.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            conn: None,
            path: path.to_path_buf(),
            open_object: None,
            key_ids: Default::default(),
            filter: Bloom::new(),
            buffer: BTreeMap::new(),
        })
    }

    /// Opens the file: a damaged one is discarded and started afresh (it is a cache); a busy one
    /// is waited for, never taken for damaged.
    fn ensure_open(&mut self) -> Result<()> {
        if self.conn.is_some() {
            return Ok(());
        }
        let path = &self.path;
        let conn = match connect(path).and_then(|c| {
            let check: String = c.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
            if check != "ok" {
                return Err(color_eyre::eyre::eyre!("match index damaged: {check}"));
            }
            Ok(c)
        }) {
            Ok(c) => c,
            Err(e) if is_busy(&e) => {
                return Err(e).wrap_err_with(|| format!("the match index {} is in use", path.display()));
            }
            Err(_) => {
                let _ = std::fs::remove_file(path);
                connect(path).wrap_err_with(|| format!("cannot create the match index {}", path.display()))?
            }
        };
        self.conn = Some(conn);
        Ok(())
    }

    /// The open connection (after `ensure_open`), borrowing only that field.
    fn db(conn: &Option<Connection>) -> Result<&Connection> {
        conn.as_ref().ok_or_else(|| color_eyre::eyre::eyre!("the match index is not open"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the object's keys were completely written (not interrupted since).
    pub fn is_clean(&mut self, object: &str) -> Result<bool> {
        self.ensure_open()?;
        Ok(Self::db(&self.conn)?
            .query_row("SELECT clean FROM objects WHERE object = ?1", [object], |r| r.get::<_, bool>(0))
            .optional()?
            .unwrap_or(false))
    }

    /// Marks the object dirty (durably), then opens the transaction its writes go into. The
    /// filter starts empty: call [`MatchIndex::clear`] (rebuild) or [`MatchIndex::load_filter`].
    pub fn begin(&mut self, object: &str) -> Result<()> {
        self.ensure_open()?;
        self.finish()?;
        self.filter = Bloom::new();
        Self::db(&self.conn)?.execute(
            "INSERT INTO objects (object, clean) VALUES (?1, 0) ON CONFLICT (object) DO UPDATE SET clean = 0",
            [object],
        )?;
        Self::db(&self.conn)?.execute_batch("BEGIN")?;
        self.open_object = Some(object.to_string());
        Ok(())
    }

    /// Commits the open object's writes and marks it clean.
    pub fn finish(&mut self) -> Result<()> {
        self.flush()?;
        if let Some(object) = self.open_object.take() {
            Self::db(&self.conn)?.execute("UPDATE objects SET clean = 1 WHERE object = ?1", [&object])?;
            Self::db(&self.conn)?.execute_batch("COMMIT")?;
        }
        Ok(())
    }

    fn key_id(&mut self, object: &str, key: &str) -> Result<i64> {
        self.ensure_open()?;
        if let Some((_, _, k)) = self.key_ids.iter().find(|(o, n, _)| o == object && n == key) {
            return Ok(*k);
        }
        Self::db(&self.conn)?
            .execute("INSERT OR IGNORE INTO key_names (object, key) VALUES (?1, ?2)", [object, key])?;
        let k: i64 = Self::db(&self.conn)?.query_row(
            "SELECT k FROM key_names WHERE object = ?1 AND key = ?2",
            [object, key],
            |r| r.get(0),
        )?;
        self.key_ids.push((object.to_string(), key.to_string(), k));
        Ok(k)
    }

    /// Forgets every key of the object (before a rebuild from the destination).
    pub fn clear(&mut self, object: &str) -> Result<()> {
        self.ensure_open()?;
        self.flush()?;
        Self::db(&self.conn)?
            .execute("DELETE FROM keys WHERE k IN (SELECT k FROM key_names WHERE object = ?1)", [object])?;
        self.filter.clear();
        Ok(())
    }

    /// Writes the buffered keys in key order.
    fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut stmt = Self::db(&self.conn)?.prepare_cached(
            "INSERT INTO keys (k, h, dest_id, run_id) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO UPDATE SET run_id = COALESCE(excluded.run_id, run_id)",
        )?;
        for ((k, h, dest_id), run_id) in std::mem::take(&mut self.buffer) {
            stmt.execute(params![k, h, id_value(&dest_id), run_id])?;
        }
        Ok(())
    }

    /// Fills the filter from the object's stored keys (when the index is reused, not rebuilt);
    /// the written source ids come from the store (`note_written`).
    pub fn load_filter(&mut self, object: &str) -> Result<()> {
        self.ensure_open()?;
        self.filter.clear();
        let mut stmt = Self::db(&self.conn)?.prepare(
            "SELECT keys.k, keys.h FROM keys JOIN key_names ON key_names.k = keys.k WHERE key_names.object = ?1",
        )?;
        let mut rows = stmt.query([object])?;
        while let Some(row) = rows.next()? {
            self.filter.insert(row.get(0)?, row.get(1)?);
        }
        Ok(())
    }

    /// Adds keys: (key, value, destination id), written by `run_id` (`None`: found by a scan).
    pub fn add(&mut self, object: &str, keys: &[(String, String, String)], run_id: Option<i64>) -> Result<()> {
        let mut ids = Vec::with_capacity(keys.len());
        for (key, _, _) in keys {
            ids.push(self.key_id(object, key)?);
        }
        for ((_, value, dest_id), k) in keys.iter().zip(ids) {
            let h = hash(value);
            self.filter.insert(k, h);
            let slot = self.buffer.entry((k, h, dest_id.clone())).or_insert(run_id);
            if run_id.is_some() {
                *slot = run_id;
            }
        }
        if self.buffer.len() >= BUFFER_KEYS {
            self.flush()?;
        }
        Ok(())
    }

    /// Notes source ids that have an id-map entry (the store keeps the entries themselves).
    pub fn note_written(&mut self, source_ids: impl IntoIterator<Item = impl AsRef<str>>) {
        for sid in source_ids {
            self.filter.insert(SOURCE_IDS, hash(sid.as_ref()));
        }
    }

    /// The source ids among `ids` that may have an id-map entry.
    pub fn maybe_written<'a>(&self, ids: &[&'a str]) -> Vec<&'a str> {
        ids.iter().copied().filter(|sid| self.filter.may_contain(SOURCE_IDS, hash(sid))).collect()
    }

    /// Candidates of many values of one key: (value, destination id, run that wrote it).
    /// Equal hashes are reported as candidates; the caller verifies the destination's value.
    pub fn candidates_many(
        &mut self,
        object: &str,
        key: &str,
        values: &[&str],
    ) -> Result<Vec<(String, String, Option<i64>)>> {
        let k = self.key_id(object, key)?;
        let mut by_hash: std::collections::HashMap<i64, Vec<&str>> = std::collections::HashMap::new();
        for v in values {
            let h = hash(v);
            if self.filter.may_contain(k, h) {
                by_hash.entry(h).or_default().push(v);
            }
        }
        let hashes: Vec<i64> = by_hash.keys().copied().collect();
        let mut out = Vec::new();
        for chunk in hashes.chunks(500) {
            let list = (2..2 + chunk.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
            let sql = format!("SELECT h, dest_id, run_id FROM keys WHERE k = ?1 AND h IN ({list})");
            let mut stmt = Self::db(&self.conn)?.prepare_cached(&sql)?;
            let params = std::iter::once(k).chain(chunk.iter().copied());
            let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
            while let Some(row) = rows.next()? {
                let (h, dest_id, run_id): (i64, String, Option<i64>) =
                    (row.get(0)?, id_text(row.get_ref(1)?)?, row.get(2)?);
                if self.buffer.contains_key(&(k, h, dest_id.clone())) {
                    continue; // the buffered entry is newer
                }
                for v in by_hash.get(&h).into_iter().flatten() {
                    out.push((v.to_string(), dest_id.clone(), run_id));
                }
            }
        }
        for (&h, vals) in &by_hash {
            for ((_, _, dest_id), run_id) in
                self.buffer.range((k, h, String::new())..).take_while(|((bk, bh, _), _)| *bk == k && *bh == h)
            {
                for v in vals {
                    out.push((v.to_string(), dest_id.clone(), *run_id));
                }
            }
        }
        Ok(out)
    }
}

impl Drop for MatchIndex {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_only_after_finish_and_rebuilt_when_torn() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = path_for(&dir.path().join("p.state.db"));
        assert!(path.ends_with("p.index.db"));
        let mut idx = MatchIndex::open(&path).expect("open");
        idx.begin("contacts").expect("begin");
        idx.add("contacts", &[("email".into(), "a@x.com".into(), "7".into())], Some(3)).expect("add");
        idx.add("contacts", &[("phone".into(), "+1".into(), "007".into())], Some(3)).expect("add");
        idx.add("contacts", &[("phone".into(), "+2".into(), "0xa1".into())], Some(3)).expect("add");
        assert!(!idx.is_clean("contacts").expect("flag"), "dirty while the transaction is open");
        assert_eq!(
            idx.candidates_many("contacts", "email", &["a@x.com", "b@x.com"]).expect("q"),
            vec![("a@x.com".into(), "7".into(), Some(3))]
        );
        idx.finish().expect("finish");
        assert!(idx.is_clean("contacts").expect("flag"));
        let ids = idx.candidates_many("contacts", "phone", &["+1", "+2"]).expect("q");
        let mut ids: Vec<&str> = ids.iter().map(|(_, id, _)| id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["007", "0xa1"], "ids that merely look numeric come back as written");
        idx.begin("contacts").expect("begin again");
        let found =
            |idx: &mut MatchIndex| idx.candidates_many("contacts", "email", &["a@x.com", "zz@x.com"]).expect("q").len();
        assert_eq!(found(&mut idx), 1, "without a prepared filter every lookup reaches the index");
        idx.load_filter("contacts").expect("filter");
        assert_eq!(found(&mut idx), 1, "a reloaded filter lets known keys through");
        idx.clear("contacts").expect("clear");
        assert_eq!(found(&mut idx), 0);
        idx.add("contacts", &[("email".into(), "zz@x.com".into(), "9".into())], None).expect("add");
        assert_eq!(found(&mut idx), 1, "keys added after a rebuild pass the filter");
        idx.finish().expect("finish");
        drop(idx);
        std::fs::write(&path, b"not a database").expect("tear");
        let mut idx = MatchIndex::open(&path).expect("reopened afresh");
        assert!(!idx.is_clean("contacts").expect("flag"), "a torn index is rebuilt, not trusted");
    }

    #[test]
    fn a_second_engine_neither_touches_nor_discards_an_index_in_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = path_for(&dir.path().join("p.state.db"));
        let mut running = MatchIndex::open(&path).expect("open");
        running.begin("contacts").expect("begin");
        running.add("contacts", &[("email".into(), "a@x.com".into(), "7".into())], Some(3)).expect("add");
        running.flush().expect("flush");
        // Another console makes an engine meanwhile: nothing is opened, read or locked.
        let other = MatchIndex::open(&path).expect("made without opening the file");
        assert!(other.conn.is_none());
        drop(other);
        // A reader held on the file while the run commits: the commit waits for it, then succeeds.
        let reader = Connection::open(&path).expect("reader");
        reader.execute_batch("BEGIN").expect("begin");
        let _: i64 = reader.query_row("SELECT COUNT(*) FROM key_names", [], |r| r.get(0)).expect("shared lock");
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            reader.execute_batch("COMMIT").expect("release");
        });
        running.finish().expect("the commit waits for the reader instead of failing");
        release.join().expect("thread");
        let mut again = MatchIndex::open(&path).expect("open");
        assert!(again.is_clean("contacts").expect("flag"), "kept, not discarded as damaged");
        assert_eq!(again.candidates_many("contacts", "email", &["a@x.com"]).expect("q").len(), 1);
    }
}
