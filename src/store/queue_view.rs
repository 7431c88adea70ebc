//! The console's reading of the conflict queue: a slice of the held records (object, reason,
//! the field and value of the first issue), its pages, counts, groups by value, search and
//! jumps — each answered from the queue's partial indexes (see schema 11), so a queue of half a
//! million answers in milliseconds, never by reading every record.

use super::{QueueItem, Store};
use color_eyre::eyre::Result;
use rusqlite::types::Value;

/// The held records the console shows. `issue`: the first issue's field and value (`None`
/// value: blank).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slice {
    pub object: Option<String>,
    pub reason: Option<String>,
    pub issue: Option<(String, Option<String>)>,
    pub order: Order,
}

/// The order a slice is listed in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Order {
    /// Held longest first (queue order).
    #[default]
    Oldest,
    /// Held most recently first.
    Newest,
    /// By object, then reason, then age.
    Grouped,
}

/// A record's place in an order: its object, reason and id.
type Place = (String, String, i64);

impl Order {
    pub fn label(self) -> &'static str {
        match self {
            Order::Oldest => "oldest first",
            Order::Newest => "newest first",
            Order::Grouped => "by object and reason",
        }
    }
    pub fn next(self) -> Self {
        match self {
            Order::Oldest => Order::Newest,
            Order::Newest => Order::Grouped,
            Order::Grouped => Order::Oldest,
        }
    }

    /// ORDER BY, forwards or (`back`) backwards.
    fn by(self, back: bool) -> &'static str {
        match (self, back) {
            (Order::Oldest, false) | (Order::Newest, true) => "id",
            (Order::Oldest, true) | (Order::Newest, false) => "id DESC",
            (Order::Grouped, false) => "object, reason, id",
            (Order::Grouped, true) => "object DESC, reason DESC, id DESC",
        }
    }

    /// The condition "comes `cmp` the place" (`cmp`: "<", ">", ">=" in this order's direction),
    /// its arguments numbered from `first`.
    fn compare(self, cmp: &str, first: usize) -> String {
        let flipped = match cmp {
            "<" => ">",
            ">" => "<",
            ">=" => "<=",
            other => other,
        };
        match self {
            Order::Oldest => format!("id {cmp} ?{}", first + 2),
            Order::Newest => format!("id {flipped} ?{}", first + 2),
            Order::Grouped => format!("(object, reason, id) {cmp} (?{first}, ?{}, ?{})", first + 1, first + 2),
        }
    }
}

fn place_args(args: &mut Vec<Value>, place: &Place) {
    args.push(Value::Text(place.0.clone()));
    args.push(Value::Text(place.1.clone()));
    args.push(Value::Integer(place.2));
}

/// Held records sharing object, reason and first issue's field and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub object: String,
    pub reason: String,
    pub field: Option<String>,
    pub value: Option<String>,
    pub count: u64,
}

const PENDING: &str = "status IN ('open', 'fixed', 'claimed')";
const FIELD: &str = "json_extract(issues, '$[0].field')";
const VALUE: &str = "json_extract(issues, '$[0].value')";

/// Groups listed per object and reason; the rest are summed into one "other values" group.
pub const GROUPS_PER_REASON: usize = 12;

/// The index of held records by their first issue's value. A run drops it and builds it again
/// at its end (one sorted build instead of a random insert per held record: 2.4 s of a run
/// holding 480,000); meanwhile the console's readings go without it.
const VALUE_INDEX: &str = "CREATE INDEX IF NOT EXISTS queue_issue ON queue (object, reason,
    json_extract(issues, '$[0].field'), json_extract(issues, '$[0].value'), id)
    WHERE status IN ('open', 'fixed', 'claimed')";

impl Slice {
    /// The WHERE clause (with the index it is answered from: "INDEXED BY …", or nothing while a
    /// run has the value index down) and its arguments.
    fn clause(&self, value_index: bool) -> (String, String, Vec<Value>) {
        let mut sql = PENDING.to_string();
        let mut args: Vec<Value> = Vec::new();
        let mut push = |sql: &mut String, expr: &str, v: Value| {
            args.push(v);
            sql.push_str(&format!(" AND {expr} = ?{}", args.len()));
        };
        if let Some(o) = &self.object {
            push(&mut sql, "object", Value::Text(o.clone()));
        }
        if let Some(r) = &self.reason {
            push(&mut sql, "reason", Value::Text(r.clone()));
        }
        if let Some((field, value)) = &self.issue {
            push(&mut sql, FIELD, Value::Text(field.clone()));
            match value {
                Some(v) => push(&mut sql, VALUE, Value::Text(v.clone())),
                // Blank: no value, or an empty one (one group, as the CLI's `--where FIELD=`).
                None => sql.push_str(&format!(" AND ({VALUE} IS NULL OR {VALUE} = '')")),
            }
        }
        let index = match (&self.object, &self.reason, &self.issue) {
            (None, None, None) if self.order == Order::Grouped => "INDEXED BY queue_pending_reason",
            (None, None, None) => "INDEXED BY queue_pending_id",
            (Some(_), _, None) => "INDEXED BY queue_pending_reason",
            _ if value_index => "INDEXED BY queue_issue",
            _ => "",
        };
        (index.to_string(), sql, args)
    }
}

impl Store {
    fn has_value_index(&self) -> Result<bool> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND name = 'queue_issue'",
            [],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// Drops the value index for a run's writes (`false`), or builds it again (`true`).
    pub fn queue_value_index(&self, on: bool) -> Result<()> {
        if on {
            self.conn.execute_batch(VALUE_INDEX)?;
        } else {
            self.conn.execute_batch("DROP INDEX IF EXISTS queue_issue")?;
        }
        Ok(())
    }

    /// How many held records the slice has.
    pub fn queue_count(&self, slice: &Slice) -> Result<u64> {
        let (index, sql, args) = slice.clause(self.has_value_index()?);
        let n: i64 = self.conn.query_row(
            &format!("SELECT COUNT(*) FROM queue {index} WHERE {sql}"),
            rusqlite::params_from_iter(args),
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// `limit` held records of the slice from position `offset`, in queue order: the page's first
    /// id is found in the index, then only the page's records are read.
    /// `total`: the slice's count, when known — a page in its second half is found walking the
    /// index from the end.
    pub fn queue_page(&self, slice: &Slice, offset: usize, limit: usize, total: Option<u64>) -> Result<Vec<QueueItem>> {
        let (index, sql, mut args) = slice.clause(self.has_value_index()?);
        let (back, skip) = match total {
            Some(t) if offset as u64 > t / 2 && (offset as u64) < t => (true, t - 1 - offset as u64),
            _ => (false, offset as u64),
        };
        let first: Option<Place> = {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT object, reason, id FROM queue {index} WHERE {sql} ORDER BY {} LIMIT 1 OFFSET {skip}",
                slice.order.by(back)
            ))?;
            let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
            rows.next()?.map(|r| Ok::<_, rusqlite::Error>((r.get(0)?, r.get(1)?, r.get(2)?))).transpose()?
        };
        let Some(first) = first else { return Ok(Vec::new()) };
        let at = args.len() + 1;
        place_args(&mut args, &first);
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {} FROM queue {index} WHERE {sql} AND {} ORDER BY {} LIMIT {limit}",
            super::queue::COLUMNS,
            slice.order.compare(">=", at),
            slice.order.by(false)
        ))?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), super::queue::item)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// A record's place (object, reason, id), if it is in the queue.
    fn place(&self, id: i64) -> Result<Option<Place>> {
        let mut stmt = self.conn.prepare_cached("SELECT object, reason, id FROM queue WHERE id = ?1")?;
        let mut rows = stmt.query([id])?;
        Ok(rows.next()?.map(|r| Ok::<_, rusqlite::Error>((r.get(0)?, r.get(1)?, r.get(2)?))).transpose()?)
    }

    /// The ids of every held record of the slice (to mark them all).
    pub fn queue_ids(&self, slice: &Slice) -> Result<Vec<i64>> {
        let (index, sql, args) = slice.clause(self.has_value_index()?);
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT id FROM queue {index} WHERE {sql} ORDER BY {}", slice.order.by(false)))?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The position of record `id` in the slice (how many come before it in its order).
    pub fn queue_position(&self, slice: &Slice, id: i64) -> Result<u64> {
        let Some(place) = self.place(id)? else { return Ok(0) };
        let (index, sql, mut args) = slice.clause(self.has_value_index()?);
        let at = args.len() + 1;
        place_args(&mut args, &place);
        let n: i64 = self.conn.query_row(
            &format!("SELECT COUNT(*) FROM queue {index} WHERE {sql} AND {}", slice.order.compare("<", at)),
            rusqlite::params_from_iter(args),
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// Every held record's group — object, reason, first issue's field and value — with counts,
    /// the most frequent first within each object and reason; past [`GROUPS_PER_REASON`] the
    /// rest of a reason is one group without a value (`field: None`).
    pub fn queue_groups(&self) -> Result<Vec<Group>> {
        let index = if self.has_value_index()? { "INDEXED BY queue_issue" } else { "" };
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT object, reason, {FIELD}, {VALUE}, COUNT(*) FROM queue {index} WHERE {PENDING}
             GROUP BY 1, 2, 3, 4"
        ))?;
        let text = |v: rusqlite::types::ValueRef<'_>| match v {
            rusqlite::types::ValueRef::Null => None,
            rusqlite::types::ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
            other => Some(match other {
                rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                rusqlite::types::ValueRef::Real(f) => f.to_string(),
                _ => String::new(),
            }),
        };
        let rows = stmt.query_map([], |r| {
            Ok(Group {
                object: r.get(0)?,
                reason: r.get(1)?,
                field: text(r.get_ref(2)?),
                value: text(r.get_ref(3)?),
                count: r.get::<_, i64>(4)?.max(0) as u64,
            })
        })?;
        // An empty value is no value: one blank group.
        let mut all: Vec<Group> = Vec::new();
        for row in rows {
            let mut g = row?;
            if g.value.as_deref() == Some("") {
                g.value = None;
            }
            match all
                .iter_mut()
                .find(|a| a.object == g.object && a.reason == g.reason && a.field == g.field && a.value == g.value)
            {
                Some(a) => a.count += g.count,
                None => all.push(g),
            }
        }
        all.sort_by(|a, b| (&a.object, &a.reason, b.count).cmp(&(&b.object, &b.reason, a.count)));
        let mut out: Vec<Group> = Vec::new();
        let mut shown = 0;
        for g in all {
            let same = out.last().is_some_and(|l| l.object == g.object && l.reason == g.reason);
            shown = if same { shown + 1 } else { 1 };
            if shown <= GROUPS_PER_REASON {
                out.push(g);
            } else if shown == GROUPS_PER_REASON + 1 {
                out.push(Group { field: None, value: None, ..g });
            } else if let Some(rest) = out.last_mut() {
                rest.count += g.count;
            }
        }
        Ok(out)
    }

    /// The next held record of the slice after `from` (before it, when not `forward`) whose
    /// source id is `text` or whose values contain it (any case), wrapping around; `None` when
    /// no record has it.
    pub fn queue_find(&self, slice: &Slice, from: i64, text: &str, forward: bool) -> Result<Option<i64>> {
        let (index, sql, args) = slice.clause(self.has_value_index()?);
        let n = args.len();
        let (cmp, by) = if forward { (">", slice.order.by(false)) } else { ("<", slice.order.by(true)) };
        let from = self.place(from)?;
        // Values only, never the field names the JSON keys hold; the text as a whole is looked
        // at first (cheap), its values only when it has the needle somewhere.
        let values = |column: &str| {
            format!(
                "(instr(lower({column}), ?{n3}) > 0 AND \
                 EXISTS (SELECT 1 FROM json_each({column}) WHERE instr(lower(json_each.value), ?{n2}) > 0))",
                n2 = n + 2,
                n3 = n + 3
            )
        };
        let matches = format!(
            "(source_id = ?{} OR {} OR {} OR {})",
            n + 1,
            values("source"),
            values("mapped"),
            values("corrections")
        );
        let needle = text.to_lowercase();
        // In the stored JSON text the needle is escaped as JSON escapes it (quotes, backslashes).
        let quoted = serde_json::to_string(&needle).unwrap_or_default();
        let escaped = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')).unwrap_or(&needle).to_string();
        let find = |bound: Option<&Place>| -> Result<Option<i64>> {
            let mut a = args.clone();
            a.push(Value::Text(text.to_string()));
            a.push(Value::Text(needle.clone()));
            a.push(Value::Text(escaped.clone()));
            let limit = match bound {
                Some(place) => {
                    let at = a.len() + 1;
                    place_args(&mut a, place);
                    format!(" AND {}", slice.order.compare(cmp, at))
                }
                None => String::new(),
            };
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT id FROM queue {index} WHERE {sql} AND {matches}{limit} ORDER BY {by} LIMIT 1"
            ))?;
            let mut rows = stmt.query(rusqlite::params_from_iter(a))?;
            Ok(rows.next()?.map(|r| r.get(0)).transpose()?)
        };
        // From the record the cursor is on; wrapping round to the other end.
        match from.as_ref().map(|p| find(Some(p))).transpose()?.flatten() {
            Some(id) => Ok(Some(id)),
            None => find(None),
        }
    }

    /// A held record by queue id (`#35`, `35`) or source id, for a jump: its id and object.
    pub fn queue_locate(&self, text: &str) -> Result<Option<(i64, String, String)>> {
        let t = text.trim();
        let by_id = t.trim_start_matches('#').parse::<i64>().ok();
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT id, object, reason FROM queue WHERE {PENDING} AND (id = ?1 OR source_id = ?2)
             ORDER BY (id = ?1) DESC, id LIMIT 1"
        ))?;
        let mut rows = stmt.query(rusqlite::params![by_id, t])?;
        Ok(rows.next()?.map(|r| Ok::<_, rusqlite::Error>((r.get(0)?, r.get(1)?, r.get(2)?))).transpose()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    /// `n` held contacts: reason by i % 3, first issue phone with one of five values (empty and none: both blank).
    fn store(n: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("p.state.db")).expect("store");
        for i in 0..n {
            let reason = ["invalid_phone", "required", "owner_not_provisioned"][i % 3];
            let value = [Some("n/a"), Some("000-000-0000"), None, Some("Call \"me\""), Some("")][i % 5];
            let issues = serde_json::json!([{"field": "phone", "rule": reason, "value": value, "message": "m"}]);
            store
                .conn
                .execute(
                    "INSERT INTO queue (object, source_id, origin, run_id, status, reason, source, mapped, issues,
                                        created_at, updated_at)
                     VALUES (?1, ?2, 'p.csv', 1, ?3, ?4, ?5, '{}', ?6, '', '')",
                    params![
                        if i % 5 == 0 { "companies" } else { "contacts" },
                        format!("s{i}"),
                        if i % 11 == 0 { "resolved" } else { "open" },
                        reason,
                        serde_json::json!({"phone": value, "name": format!("Name {i}")}).to_string(),
                        issues.to_string()
                    ],
                )
                .expect("insert");
        }
        (dir, store)
    }

    #[test]
    fn slices_count_page_and_group_as_a_plain_reading_would() {
        let (_d, store) = store(600);
        let all = store.queue_list(&crate::store::QueueFilter { pending_only: true, ..Default::default() }).expect("l");
        let slices = [
            Slice::default(),
            Slice { object: Some("contacts".into()), ..Default::default() },
            Slice { object: Some("contacts".into()), reason: Some("invalid_phone".into()), ..Default::default() },
            Slice { object: None, reason: Some("required".into()), ..Default::default() },
            Slice {
                object: Some("contacts".into()),
                reason: Some("invalid_phone".into()),
                issue: Some(("phone".into(), None)),
                ..Default::default()
            },
            Slice {
                object: Some("contacts".into()),
                reason: Some("invalid_phone".into()),
                issue: Some(("phone".into(), Some("Call \"me\"".into()))),
                ..Default::default()
            },
        ];
        for slice in &slices {
            for order in [Order::Oldest, Order::Newest, Order::Grouped] {
                let slice = Slice { order, ..slice.clone() };
                // The plain reading: every held record, filtered and sorted in Rust.
                let mut want: Vec<&QueueItem> = all
                    .iter()
                    .filter(|i| slice.object.as_ref().is_none_or(|o| *o == i.object))
                    .filter(|i| slice.reason.as_ref().is_none_or(|r| *r == i.reason))
                    .filter(|i| {
                        slice.issue.as_ref().is_none_or(|(f, v)| {
                            // A blank group holds no value and empty ones alike.
                            i.issues.first().is_some_and(|x| {
                                x.field == *f && x.value.as_deref().filter(|v| !v.is_empty()) == v.as_deref()
                            })
                        })
                    })
                    .collect();
                match order {
                    Order::Oldest => want.sort_by_key(|i| i.id),
                    Order::Newest => want.sort_by_key(|i| std::cmp::Reverse(i.id)),
                    Order::Grouped => {
                        want.sort_by(|a, b| (&a.object, &a.reason, a.id).cmp(&(&b.object, &b.reason, b.id)))
                    }
                }
                let want: Vec<i64> = want.iter().map(|i| i.id).collect();
                assert!(!want.is_empty(), "{slice:?}");
                assert_eq!(store.queue_count(&slice).expect("count"), want.len() as u64, "{slice:?}");
                assert_eq!(store.queue_ids(&slice).expect("ids"), want, "{slice:?}");
                let page: Vec<i64> = store.queue_page(&slice, 7, 5, None).expect("page").iter().map(|i| i.id).collect();
                assert_eq!(page, want[7.min(want.len())..(12).min(want.len())], "{slice:?}");
                let end = want.len() - 3;
                let total = Some(want.len() as u64);
                let tail: Vec<i64> =
                    store.queue_page(&slice, end, 5, total).expect("page").iter().map(|i| i.id).collect();
                assert_eq!(tail, want[end..], "found from the end: {slice:?}");
                for (at, id) in want.iter().enumerate().step_by(17) {
                    assert_eq!(store.queue_position(&slice, *id).expect("pos"), at as u64, "{slice:?}");
                }
                // Find goes to the next record in the order shown, wrapping round.
                let hits: Vec<i64> = want
                    .iter()
                    .copied()
                    .filter(|id| all.iter().any(|i| i.id == *id && i.source.get("phone") == Some(&Some("n/a".into()))))
                    .collect();
                if hits.len() > 1 {
                    assert_eq!(
                        store.queue_find(&slice, hits[0], "N/A", true).expect("find"),
                        Some(hits[1]),
                        "{slice:?}"
                    );
                    assert_eq!(store.queue_find(&slice, hits[0], "n/a", false).expect("find"), hits.last().copied());
                }
            }
        }
        let groups = store.queue_groups().expect("groups");
        // While a run has the value index down, the same answers, read without it.
        store.queue_value_index(false).expect("drop");
        assert_eq!(store.queue_groups().expect("groups"), groups);
        for slice in &slices {
            assert_eq!(store.queue_count(slice).expect("count"), store.queue_ids(slice).expect("ids").len() as u64);
        }
        let grouped = Slice { object: Some("contacts".into()), issue: None, reason: None, order: Order::Grouped };
        assert_eq!(store.queue_page(&grouped, 3, 4, None).expect("page").len(), 4, "read without the index too");
        store.queue_value_index(true).expect("build");
        assert!(store.has_value_index().expect("index"));
        let total: u64 = groups.iter().map(|g| g.count).sum();
        assert_eq!(total, all.len() as u64, "every held record is in one group");
        let blank = groups
            .iter()
            .find(|g| g.object == "contacts" && g.reason == "invalid_phone" && g.value.is_none() && g.field.is_some())
            .expect("a blank value is a group of its own");
        assert_eq!(blank.count, store.queue_count(&slices[4]).expect("count"));
    }

    #[test]
    fn find_wraps_around_and_jump_takes_a_queue_or_source_id() {
        let (_d, store) = store(60);
        let slice = Slice { object: Some("contacts".into()), ..Default::default() };
        let hits: Vec<i64> = store
            .queue_ids(&slice)
            .expect("ids")
            .into_iter()
            .filter(|id| {
                let it = store.queue_item(*id).expect("i").expect("i");
                it.source.values().any(|v| v.as_deref().is_some_and(|v| v.to_lowercase().contains("call \"me")))
            })
            .collect();
        assert!(hits.len() > 2);
        let first = store.queue_find(&slice, 0, "CALL \"ME", true).expect("find");
        assert_eq!(first, Some(hits[0]), "any case, quotes as typed");
        let next = store.queue_find(&slice, hits[0], "call \"me", true).expect("find");
        assert_eq!(next, Some(hits[1]));
        let back = store.queue_find(&slice, hits[0], "call \"me", false).expect("find");
        assert_eq!(back, Some(*hits.last().expect("last")), "wraps around backwards");
        assert_eq!(store.queue_find(&slice, 0, "nobody has this", true).expect("find"), None);
        assert_eq!(store.queue_find(&slice, 0, "phone", true).expect("find"), None, "field names are not values");
        let by_source = store.queue_find(&slice, 0, "s7", true).expect("find");
        assert_eq!(store.queue_item(by_source.expect("found")).expect("i").expect("i").source_id, "s7");
        assert_eq!(store.queue_locate("#7").expect("l").map(|(id, _, _)| id), Some(7));
        assert_eq!(
            store.queue_locate("s12").expect("l").map(|(_, o, r)| (o, r)),
            Some(("contacts".into(), "invalid_phone".into()))
        );
        assert_eq!(store.queue_locate("s0").expect("l"), None, "resolved: not held");
    }
}
