//! Reading the audit log a page at a time, newest first: keyset paging on the row id, so the
//! page after a million rows costs what the first one does.

use super::Store;
use color_eyre::eyre::Result;

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

impl Store {
    /// Up to `limit` rows older than `before` (all when `None`), newest first, and whether
    /// older rows remain.
    pub fn audit_page(&self, query: &AuditQuery, before: Option<i64>, limit: usize) -> Result<(Vec<AuditEntry>, bool)> {
        let mut sql = String::from(
            "SELECT id, run_id, at, user, object, source_id, outcome, dest_id, detail, warnings FROM audit WHERE id < ?1",
        );
        let mut args: Vec<rusqlite::types::Value> = vec![before.unwrap_or(i64::MAX).into()];
        for (column, value) in [("object", &query.object), ("outcome", &query.outcome), ("source_id", &query.source_id)]
        {
            if let Some(v) = value {
                args.push(v.clone().into());
                sql.push_str(&format!(" AND {column} = ?{}", args.len()));
            }
        }
        if let Some(rule) = &query.warning {
            // Read along the id order like the rest; a warning names its rule in the JSON list.
            args.push(format!("%\"rule\":\"{rule}\"%").into());
            sql.push_str(&format!(" AND warnings LIKE ?{}", args.len()));
        }
        if query.source_id.is_some() && query.object.is_none() {
            // Lets the (object, source_id) index answer: a scan of the whole log otherwise.
            sql.push_str(" AND object IN (SELECT object FROM run_objects GROUP BY object)");
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", limit + 1));
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_pages_through_an_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("p.state.db")).expect("store");
        for q in [
            AuditQuery::default(),
            AuditQuery { object: Some("deals".into()), ..Default::default() },
            AuditQuery { outcome: Some("failed".into()), ..Default::default() },
            AuditQuery { object: Some("deals".into()), outcome: Some("failed".into()), ..Default::default() },
            AuditQuery { source_id: Some("7".into()), ..Default::default() },
            AuditQuery { warning: Some("unassigned_phone".into()), ..Default::default() },
        ] {
            store.audit_page(&q, None, 10).expect("page");
            let mut sql = String::from("EXPLAIN QUERY PLAN SELECT id FROM audit WHERE id < 5");
            for (c, v) in [("object", &q.object), ("outcome", &q.outcome), ("source_id", &q.source_id)] {
                if let Some(v) = v {
                    sql.push_str(&format!(" AND {c} = '{v}'"));
                }
            }
            if let Some(w) = &q.warning {
                sql.push_str(&format!(" AND warnings LIKE '%{w}%'"));
            }
            if q.source_id.is_some() && q.object.is_none() {
                sql.push_str(" AND object IN (SELECT object FROM run_objects GROUP BY object)");
            }
            sql.push_str(" ORDER BY id DESC LIMIT 11");
            let mut stmt = store.conn().prepare(&sql).expect("plan");
            let plan: Vec<String> =
                stmt.query_map([], |r| r.get::<_, String>(3)).expect("rows").collect::<Result<_, _>>().expect("plan");
            let first = &plan[0];
            assert!(first.starts_with("SEARCH audit"), "{q:?}: {plan:?}");
            if q.source_id.is_none() {
                assert!(!plan.iter().any(|p| p.contains("ORDER BY")), "no sort of the whole log: {q:?}: {plan:?}");
            }
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
