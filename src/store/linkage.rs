//! What record linkage keeps in the state store: the model each run of an object linked by, and
//! which destination records source records feed (one-to-one).

use super::Store;
use color_eyre::eyre::Result;
use rusqlite::{OptionalExtension, params};

impl Store {
    /// Keeps the model (JSON) a run links an object by; a resumed run finds it again.
    pub fn save_linkage_model(&self, run_id: i64, object: &str, model: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO linkage_models (run_id, object, model) VALUES (?1, ?2, ?3)
             ON CONFLICT (run_id, object) DO UPDATE SET model = excluded.model",
            params![run_id, object, model],
        )?;
        Ok(())
    }

    /// The model this run links the object by, if it has one yet.
    pub fn linkage_model(&self, run_id: i64, object: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT model FROM linkage_models WHERE run_id = ?1 AND object = ?2",
                params![run_id, object],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The newest run's model of the object: (run, model JSON).
    pub fn latest_linkage_model(&self, object: &str) -> Result<Option<(i64, String)>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT run_id, model FROM linkage_models WHERE object = ?1 ORDER BY run_id DESC LIMIT 1",
                [object],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Every destination record a source record of the object feeds, whether Cutover created it,
    /// and the source record that feeds it (its survivor where several do).
    pub fn fed_records(&self, object: &str) -> Result<Vec<(String, bool, String)>> {
        let mut stmt = self.conn().prepare(
            "SELECT i.dest_id, COALESCE(MAX(w.created), 0),
                    COALESCE(MIN(CASE WHEN i.role = 'survivor' THEN i.source_id END), MIN(i.source_id))
             FROM id_map i
             LEFT JOIN written w ON w.object = i.object AND w.dest_id = i.dest_id
             WHERE i.object = ?1 GROUP BY i.dest_id",
        )?;
        let rows = stmt.query_map([object], |r| {
            let id = match r.get_ref(0)? {
                rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                v => v.as_str().unwrap_or_default().to_string(),
            };
            Ok((id, r.get::<_, i64>(1)? != 0, r.get::<_, String>(2)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many of an object's records linkage linked, held or let be created, by band of match
    /// probability, over each record's latest outcome: (outcome, band floor, count).
    pub fn linkage_confidence(&self, object: &str) -> Result<Vec<(String, f64, u64)>> {
        let mut stmt = self.conn().prepare(
            "SELECT outcome, confidence FROM audit a
             WHERE object = ?1 AND confidence IS NOT NULL
               AND id = (SELECT MAX(id) FROM audit b WHERE b.object = a.object AND b.source_id = a.source_id
                                                     AND b.occurrence = a.occurrence)",
        )?;
        let mut bands: std::collections::BTreeMap<(String, i64), u64> = Default::default();
        for row in stmt.query_map([object], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))? {
            let (outcome, p) = row?;
            *bands.entry((outcome, (band(p) * 1000.0) as i64)).or_default() += 1;
        }
        Ok(bands.into_iter().map(|((o, b), n)| (o, b as f64 / 1000.0, n)).collect())
    }
}

/// The floor of a probability's band: 0.999, 0.99, 0.95, 0.9, 0.8, 0.5 or 0.
pub fn band(p: f64) -> f64 {
    [0.999, 0.99, 0.95, 0.9, 0.8, 0.5].into_iter().find(|b| p >= *b).unwrap_or(0.0)
}
