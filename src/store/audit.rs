//! Reading the audit log a page at a time, newest first: keyset paging on the row id, so the
//! page after a million rows costs what the first one does.

use super::Store;
use color_eyre::eyre::Result;
use rusqlite::types::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub run_id: i64,
    pub at: String,
    pub user: String,
    pub object: String,
    pub source_id: String,
    pub outcome: String,
    pub dest_id: Option<String>,
    pub detail: Option<String>,
    /// The warnings the record was written with, as the audit keeps them (a JSON list).
    pub warnings: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub object: Option<String>,
    pub outcome: Option<String>,
    pub source_id: Option<String>,
    /// Only records written with this warning (`unassigned_phone`, `ambiguous_date`, …).
    pub warning: Option<String>,
}

const COLUMNS: &str = "id, run_id, at, user, object, source_id, outcome, dest_id, detail, warnings";

/// One arm of a page: the rows of one object (and one outcome), newest first.
type Arm = (Option<String>, Option<String>);

impl Store {
    /// Up to `limit` rows older than `before` (all when `None`), newest first, and whether
    /// older rows remain.
    pub fn audit_page(&self, query: &AuditQuery, before: Option<i64>, limit: usize) -> Result<(Vec<AuditEntry>, bool)> {
        let Some((sql, args)) = self.page_sql(query, before, limit)? else {
            return Ok((Vec::new(), false));
        };
        let mut stmt = self.conn().prepare(&sql)?;
        let mut rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok(AuditEntry {
                    id: r.get(0)?,
                    run_id: r.get(1)?,
                    at: r.get(2)?,
                    user: r.get(3)?,
                    object: r.get(4)?,
                    source_id: r.get(5)?,
                    outcome: r.get(6)?,
                    dest_id: r.get(7)?,
                    detail: r.get(8)?,
                    warnings: r.get(9)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        Ok((rows, more))
    }

    /// A page's SQL. Each filter is read from an index in id order, never by sorting the log: an
    /// object alone is one arm per outcome it has, an outcome or a source id alone one arm per
    /// object, each arm read newest first from (object, outcome) or (object, source id), and the
    /// arms merged. `None` when the log holds nothing of the object asked for.
    fn page_sql(&self, query: &AuditQuery, before: Option<i64>, limit: usize) -> Result<Option<(String, Vec<Value>)>> {
        let arms: Vec<Arm> = match (&query.object, &query.outcome, &query.source_id) {
            (None, None, None) => vec![(None, None)],
            (Some(object), None, None) => {
                self.audit_values(Some(object))?.into_iter().map(|o| (Some(object.clone()), Some(o))).collect()
            }
            (None, outcome, _) => self.audit_values(None)?.into_iter().map(|o| (Some(o), outcome.clone())).collect(),
            (Some(object), outcome, _) => vec![(Some(object.clone()), outcome.clone())],
        };
        let mut args: Vec<Value> = vec![before.unwrap_or(i64::MAX).into()];
        let warning = query.warning.as_ref().map(|rule| {
            // Read along the id order like the rest; a warning names its rule in the JSON list.
            args.push(format!("%\"rule\":\"{rule}\"%").into());
            format!(" AND warnings LIKE ?{}", args.len())
        });
        let mut selects = Vec::new();
        for (object, outcome) in arms {
            let mut sql = format!("SELECT {COLUMNS} FROM audit WHERE id < ?1");
            for (column, value) in [("object", object), ("outcome", outcome), ("source_id", query.source_id.clone())] {
                if let Some(v) = value {
                    args.push(v.into());
                    sql.push_str(&format!(" AND {column} = ?{}", args.len()));
                }
            }
            sql.push_str(warning.as_deref().unwrap_or_default());
            selects.push(sql);
        }
        if selects.is_empty() {
            return Ok(None);
        }
        let sql = format!("{} ORDER BY id DESC LIMIT {}", selects.join(" UNION ALL "), limit + 1);
        Ok(Some((sql, args)))
    }

    /// The objects the audit log holds (`within` none), or the outcomes one object has: one seek
    /// along the (object, outcome) index per value, however many rows there are.
    fn audit_values(&self, within: Option<&str>) -> Result<Vec<String>> {
        let sql = match within {
            None => {
                "WITH RECURSIVE v(x) AS (SELECT MIN(object) FROM audit
                    UNION ALL SELECT (SELECT MIN(object) FROM audit WHERE object > v.x) FROM v WHERE v.x IS NOT NULL)
                 SELECT x FROM v WHERE x IS NOT NULL"
            }
            Some(_) => {
                "WITH RECURSIVE v(x) AS (SELECT MIN(outcome) FROM audit WHERE object = ?1
                    UNION ALL SELECT (SELECT MIN(outcome) FROM audit WHERE object = ?1 AND outcome > v.x) FROM v
                              WHERE v.x IS NOT NULL)
                 SELECT x FROM v WHERE x IS NOT NULL"
            }
        };
        let mut stmt = self.conn().prepare_cached(sql)?;
        let rows = match within {
            None => stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?,
            Some(object) => stmt.query_map([object], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?,
        };
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queries() -> Vec<AuditQuery> {
        let q =
            |object: Option<&str>, outcome: Option<&str>, source_id: Option<&str>, warning: Option<&str>| AuditQuery {
                object: object.map(Into::into),
                outcome: outcome.map(Into::into),
                source_id: source_id.map(Into::into),
                warning: warning.map(Into::into),
            };
        vec![
            q(None, None, None, None),
            q(Some("deals"), None, None, None),
            q(None, Some("failed"), None, None),
            q(Some("deals"), Some("failed"), None, None),
            q(None, None, Some("7"), None),
            q(Some("people"), None, Some("7"), None),
            q(None, Some("created"), Some("7"), None),
            q(None, None, None, Some("unassigned_phone")),
            q(Some("people"), None, None, Some("unassigned_phone")),
            q(Some("nobody"), None, None, None),
        ]
    }

    /// Rows of two objects with every outcome, interleaved the way batches write them.
    fn filled() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("p.state.db")).expect("store");
        let outcomes = ["created", "updated", "merged", "queued", "failed", "skipped"];
        for i in 0..300u32 {
            let object = if i % 7 < 4 { "people" } else { "deals" };
            let outcome = outcomes[(i * i % 11) as usize % outcomes.len()];
            let warnings = (i % 5 == 0).then_some(r#"[{"field":"phone","rule":"unassigned_phone"}]"#);
            store
                .conn()
                .execute(
                    "INSERT INTO audit (run_id, at, user, object, source_id, outcome, warnings)
                     VALUES (1, 'now', 'op', ?1, ?2, ?3, ?4)",
                    rusqlite::params![object, (i % 13).to_string(), outcome, warnings],
                )
                .expect("row");
        }
        (dir, store)
    }

    #[test]
    fn every_filter_pages_through_an_index() {
        let (_dir, store) = filled();
        for q in queries() {
            let Some((sql, args)) = store.page_sql(&q, Some(5), 10).expect("sql") else {
                assert_eq!(q.object.as_deref(), Some("nobody"), "only an object the log lacks has no arm");
                continue;
            };
            let mut stmt = store.conn().prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("plan");
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("plan");
            assert!(plan.iter().any(|p| p.starts_with("SEARCH audit")), "{q:?}: {plan:?}");
            assert!(!plan.iter().any(|p| p.starts_with("SCAN audit")), "no scan of the log: {q:?}: {plan:?}");
            assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "no sort of the log: {q:?}: {plan:?}");
        }
    }

    #[test]
    fn pages_hold_exactly_the_matching_rows_newest_first() {
        let (_dir, store) = filled();
        let all: Vec<(i64, String, String, String, Option<String>)> = store
            .conn()
            .prepare("SELECT id, object, outcome, source_id, warnings FROM audit")
            .expect("all")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        for q in queries() {
            let mut expected: Vec<i64> = all
                .iter()
                .filter(|(_, object, outcome, sid, warnings)| {
                    q.object.as_ref().is_none_or(|o| o == object)
                        && q.outcome.as_ref().is_none_or(|o| o == outcome)
                        && q.source_id.as_ref().is_none_or(|s| s == sid)
                        && q.warning.as_ref().is_none_or(|w| warnings.as_ref().is_some_and(|j| j.contains(w.as_str())))
                })
                .map(|r| r.0)
                .collect();
            expected.sort_unstable_by(|a, b| b.cmp(a));
            let (mut got, mut before) = (Vec::new(), None);
            loop {
                let (rows, more) = store.audit_page(&q, before, 7).expect("page");
                got.extend(rows.iter().map(|r| r.id));
                before = rows.last().map(|r| r.id);
                if !more {
                    break;
                }
            }
            assert_eq!(got, expected, "{q:?}");
        }
    }

    #[test]
    fn the_warning_filter_finds_the_records_written_with_that_warning() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("p.state.db")).expect("store");
        for (sid, warnings) in [
            ("1", None),
            ("2", Some(r#"[{"field":"phone","rule":"unassigned_phone","message":"x"}]"#)),
            ("3", Some(r#"[{"field":"met","rule":"ambiguous_date","message":"mentions unassigned_phone"}]"#)),
        ] {
            store
                .conn()
                .execute(
                    "INSERT INTO audit (run_id, at, user, object, source_id, outcome, warnings)
                     VALUES (1, 'now', 'op', 'people', ?1, 'created', ?2)",
                    rusqlite::params![sid, warnings],
                )
                .expect("row");
        }
        let q = AuditQuery { warning: Some("unassigned_phone".into()), ..Default::default() };
        let (rows, more) = store.audit_page(&q, None, 10).expect("page");
        let ids: Vec<&str> = rows.iter().map(|r| r.source_id.as_str()).collect();
        assert_eq!((ids, more), (vec!["2"], false), "by the rule, not a message naming it");
    }
}
