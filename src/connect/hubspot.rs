//! HubSpot CRM v3 as a destination and a source: contacts, companies, deals, notes (any object
//! type the account has). Fields are the object's properties (`/crm/v3/properties`), with
//! enumeration options as picklists; `pipeline` and `dealstage` come from the deal pipelines;
//! owners from `/crm/v3/owners`. Parent links the project names under `associations` are
//! associations (`/crm/v4/associations`), not properties.
//!
//! Writes go in batches of at most 100 inputs, sent concurrently through the rate limiter. A batch
//! HubSpot answers 207 maps error by error onto its records (each input carries an
//! `objectWriteTraceId`); a batch it rejects whole (400) is split in halves until the records it
//! refuses stand alone, so every other record is still written. Nothing is reported written until
//! HubSpot answered with its id.
//!
//! Each created record carries its source id in `source_id_property` (a unique-value property).
//! After a create HubSpot may or may not have carried out (a 5xx, a timeout), Cutover reads those
//! source ids back by that property before sending anything again, so a retry never makes a second
//! record; after a crash, the run adopts the marked records instead of creating them again.

use super::http::{Auth, Call, CallError, Client, Rate, Secret};
use super::{Batch, Change, Cursor, Destination, NewRecords, Source, WriteResult};
use crate::config::{AssociationConfig, ConnectionConfig};
use crate::model::{DestField, DestSchema, DestUser, Extracted, FieldNames, FieldType, SourceRecord, Value};
use async_trait::async_trait;
use color_eyre::eyre::{Result, WrapErr, eyre};
use futures_util::future::join_all;
use indexmap::IndexMap;
use serde_json::{Map, Value as Json, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DEFAULT_BASE: &str = "https://api.hubapi.com";
/// Records of one object whose writes may be in flight at once (see `records_in_flight`): 30
/// requests, three seconds of the base limit.
const RECORDS_IN_FLIGHT: usize = 3000;
/// Inputs per batch request: HubSpot's documented cap.
pub const BATCH: usize = 100;
/// The general lane and the search lane (searches have their own, lower limit: 4/s).
const SEARCH: usize = 1;
/// Attempts at a create whose outcome HubSpot left unknown.
const UNKNOWN_ATTEMPTS: u32 = 6;

pub struct HubSpot {
    client: Client,
    marker: Option<String>,
    associations: IndexMap<String, AssociationConfig>,
    types: IndexMap<String, FieldType>,
    objects: Mutex<HashMap<String, Arc<Object>>>,
    /// The portal's owner ids, once read.
    owners: Mutex<Option<Vec<String>>>,
    /// What `check` should say of how this portal is written (an object without a marker).
    notices: Mutex<Vec<String>>,
}

/// One association field: the project's name for it, the object it points at, and its type.
#[derive(Debug, Clone)]
struct Link {
    field: String,
    to: String,
    type_id: u32,
}

struct Object {
    schema: DestSchema,
    /// Every property name, writable or not (what a source reads).
    properties: Vec<String>,
    links: Vec<Link>,
    marking: Marking,
}

/// How a record HubSpot may have created unseen is found again.
#[derive(Debug, Clone, PartialEq)]
enum Marking {
    /// By its source id in this unique property (read as `idProperty`).
    ByProperty(String),
    /// Among its parent's records (through its first association), by the values written.
    ByParent,
    /// It cannot be: a lost answer stops the batch.
    None,
}

impl Object {
    fn link(&self, field: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.field == field)
    }

    fn ty(&self, field: &str) -> FieldType {
        self.schema.field(field).map_or(FieldType::Text, |f| f.ty)
    }

    /// The parent a record written with these values hangs on: its first association that has
    /// a value.
    fn parent_of<'a>(&'a self, written: &Map<String, Json>) -> Option<(&'a Link, String)> {
        self.links.iter().find_map(|l| written.get(&l.field).and_then(json_text).map(|id| (l, id)))
    }
}

/// A row as written: field → value (null for none), as the journal keeps it.
fn written_values(fields: &[String], row: &[Value]) -> Map<String, Json> {
    fields.iter().zip(row).map(|(f, v)| (f.clone(), v.clone().map_or(Json::Null, Json::String))).collect()
}

impl HubSpot {
    pub fn open(conn: &ConnectionConfig, role: &str) -> Result<Self> {
        let var = conn.token_env.as_deref().ok_or_else(|| eyre!("{role}.token_env is missing"))?;
        let token = Secret::from_env(var, role)?;
        let per10 = conn.rate_limit.unwrap_or(100);
        let lanes =
            [Rate { requests: per10, per: Duration::from_secs(10) }, Rate { requests: 4, per: Duration::from_secs(1) }];
        let base = conn.base_url.as_deref().unwrap_or(DEFAULT_BASE);
        let types = conn.types.iter().filter_map(|(k, v)| FieldType::parse(v).map(|t| (k.clone(), t))).collect();
        Ok(Self {
            client: Client::new("HubSpot", base, (token, Auth::Bearer), &lanes, None)?,
            marker: conn.source_id_property.clone(),
            associations: conn.associations.clone(),
            types,
            objects: Mutex::default(),
            owners: Mutex::default(),
            notices: Mutex::default(),
        })
    }

    /// What the client did: requests, 429s, 5xx, timeouts, retries.
    pub fn stats(&self) -> [u64; 6] {
        self.client.stats.snapshot()
    }

    fn notice(&self, line: String) -> Result<()> {
        let mut notices = lock(&self.notices)?;
        if !notices.contains(&line) {
            notices.push(line);
        }
        Ok(())
    }

    async fn send(&self, call: Call<'_>) -> Result<super::http::Reply> {
        self.client.send(call).await.map_err(|e| eyre!(e))
    }

    async fn object(&self, object: &str) -> Result<Arc<Object>> {
        if let Some(o) = self.objects.lock().map_err(|_| eyre!("schema cache poisoned"))?.get(object) {
            return Ok(o.clone());
        }
        let path = format!("/crm/v3/properties/{object}");
        let reply = self.send(Call::get(&path)).await?;
        if !reply.ok() {
            return Err(eyre!("HubSpot has no object type '{object}' ({})", reply.message()));
        }
        let mut pipelines: Option<(Vec<String>, Vec<String>)> = None;
        if object == "deals" {
            pipelines = Some(self.pipelines().await?);
        }
        let mut fields = Vec::new();
        let mut properties = Vec::new();
        let mut unique = Vec::new();
        for p in reply.body["results"].as_array().into_iter().flatten() {
            let Some(name) = p["name"].as_str() else { continue };
            properties.push(name.to_string());
            if p["hasUniqueValue"].as_bool() == Some(true) {
                unique.push(name.to_string());
            }
            if p["modificationMetadata"]["readOnlyValue"].as_bool() == Some(true) {
                continue;
            }
            let field_type = p["fieldType"].as_str().unwrap_or_default();
            let mut ty = match (p["type"].as_str().unwrap_or("string"), field_type) {
                (_, "booleancheckbox") | ("bool", _) => FieldType::Boolean,
                ("number", _) => FieldType::Decimal,
                ("date", _) => FieldType::Date,
                ("datetime", _) => FieldType::Datetime,
                (_, "phonenumber") => FieldType::Phone,
                _ => FieldType::Text,
            };
            if let Some(t) = self.types.get(&format!("{object}.{name}")) {
                ty = *t;
            }
            let options = || -> Vec<String> {
                p["options"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|o| o["hidden"].as_bool() != Some(true))
                    .filter_map(|o| o["value"].as_str().map(String::from))
                    .collect()
            };
            // An enumeration with `externalOptions` lists no options of its own: an owner
            // property's are the portal's owners; any other's are not a closed list.
            let external = p["externalOptions"].as_bool() == Some(true);
            let owner = p["referencedObjectType"].as_str() == Some("OWNER") || name == "hubspot_owner_id";
            let picklist = match (name, &pipelines) {
                ("pipeline", Some((ids, _))) => Some(ids.clone()),
                ("dealstage", Some((_, stages))) => Some(stages.clone()),
                _ if external && owner => Some(self.owner_ids().await?),
                _ if external => None,
                _ if p["type"].as_str() == Some("enumeration") && ty != FieldType::Boolean => Some(options()),
                _ => None,
            };
            fields.push(DestField {
                name: name.to_string(),
                ty,
                required: false,
                max_length: None,
                picklist,
                // A checkbox enumeration holds several options, as `a;b`.
                multiple: p["fieldType"].as_str() == Some("checkbox") && ty != FieldType::Boolean,
            });
        }
        let links: Vec<Link> = self
            .associations
            .iter()
            .filter_map(|(k, a)| {
                let (o, f) = k.split_once('.')?;
                (o == object).then(|| Link { field: f.to_string(), to: a.to.clone(), type_id: a.type_id })
            })
            .collect();
        for l in &links {
            self.check_association_type(object, l).await?;
        }
        for l in &links {
            fields.retain(|f| f.name != l.field);
            fields.push(DestField {
                name: l.field.clone(),
                ty: FieldType::Text,
                required: false,
                max_length: None,
                picklist: None,
                multiple: false,
            });
        }
        let marking = match &self.marker {
            None => Marking::None,
            Some(m) if unique.contains(m) => {
                fields.retain(|f| f.name != *m);
                Marking::ByProperty(m.clone())
            }
            // Some portals take no unique property on notes: a record that hangs on a parent is
            // found among its parent's records by what was written.
            Some(m) if !links.is_empty() => {
                fields.retain(|f| f.name != *m);
                let why = if properties.contains(m) { "has no unique values" } else { "does not exist" };
                self.notice(format!(
                    "{object}: the property '{m}' {why} there, so {object} carry no marker; after a crash or a lost \
                     answer, each is looked up among its {}'s {object} by the values it wrote before it is sent again",
                    links[0].to.trim_end_matches('s')
                ))?;
                tracing::warn!(object, property = %m, "no unique marker property: records are found by their parent");
                Marking::ByParent
            }
            Some(m) => {
                return Err(eyre!(
                    "HubSpot has no property '{m}' with unique values on {object}: create it (single-line text, unique \
                     values) — it holds each record's source id so a replay never creates a record twice — or set \
                     destination.source_id_property"
                ));
            }
        };
        let object_info = Arc::new(Object {
            schema: DestSchema { object: object.to_string(), id_field: "id".into(), fields },
            properties,
            links,
            marking,
        });
        self.objects
            .lock()
            .map_err(|_| eyre!("schema cache poisoned"))?
            .insert(object.to_string(), object_info.clone());
        Ok(object_info)
    }

    /// An association field's type id is one the portal has between the two objects
    /// (`/crm/v4/associations/{from}/{to}/labels`): a wrong one would fail every record, or
    /// link them under a label nobody asked for.
    async fn check_association_type(&self, object: &str, link: &Link) -> Result<()> {
        let path = format!("/crm/v4/associations/{object}/{}/labels", link.to);
        let reply = self.send(Call::get(&path)).await?;
        if !reply.ok() {
            return Err(eyre!("reading HubSpot's {object} → {} association types: {}", link.to, reply.message()));
        }
        let types: Vec<(u64, String)> = reply.body["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let label =
                    r["label"].as_str().filter(|l| !l.is_empty()).map_or("unlabeled".into(), |l| format!("'{l}'"));
                Some((r["typeId"].as_u64()?, label))
            })
            .collect();
        if types.iter().any(|(id, _)| *id == u64::from(link.type_id)) {
            return Ok(());
        }
        let known: Vec<String> = types.iter().map(|(id, label)| format!("{id} ({label})")).collect();
        Err(eyre!(crate::config::KeyProblem::new(
            format!("destination.associations.\"{object}.{}\"", link.field),
            format!(
                "has type_id = {}, which is not a {object} → {} association type in this portal; it has: {}",
                link.type_id,
                link.to,
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )
        )))
    }

    /// The ids of the portal's owners (what an owner property takes), read once.
    async fn owner_ids(&self) -> Result<Vec<String>> {
        if let Some(ids) = lock(&self.owners)?.clone() {
            return Ok(ids);
        }
        let ids: Vec<String> = Destination::users(self).await?.into_iter().map(|u| u.id).collect();
        *lock(&self.owners)? = Some(ids.clone());
        Ok(ids)
    }

    /// Deal pipeline ids and every stage id.
    async fn pipelines(&self) -> Result<(Vec<String>, Vec<String>)> {
        let reply = self.send(Call::get("/crm/v3/pipelines/deals")).await?;
        if !reply.ok() {
            return Err(eyre!("reading the deal pipelines: {}", reply.message()));
        }
        let (mut ids, mut stages) = (Vec::new(), Vec::new());
        for p in reply.body["results"].as_array().into_iter().flatten() {
            ids.extend(p["id"].as_str().map(String::from));
            for s in p["stages"].as_array().into_iter().flatten() {
                stages.extend(s["id"].as_str().map(String::from));
            }
        }
        Ok((ids, stages))
    }

    /// One page of the object's records: `(id, properties)`, and the cursor after it.
    async fn list(
        &self,
        object: &str,
        properties: &[String],
        after: &str,
    ) -> Result<(Vec<(String, Json)>, Option<String>)> {
        let path = format!("/crm/v3/objects/{object}");
        let mut call = Call::get(&path).query("limit", BATCH.to_string()).query("archived", "false");
        if !properties.is_empty() {
            call = call.query("properties", properties.join(","));
        }
        if !after.is_empty() {
            call = call.query("after", after);
        }
        let reply = self.send(call).await?;
        if !reply.ok() {
            return Err(eyre!("listing {object}: {}", reply.message()));
        }
        let rows = reply.body["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| Some((json_text(&r["id"])?, r["properties"].clone())))
            .collect();
        let next = reply.body["paging"]["next"]["after"].as_str().map(String::from);
        Ok((rows, next))
    }

    /// Records by id (or by a unique property): id → properties. Ids HubSpot does not have are absent.
    async fn batch_read(
        &self,
        object: &str,
        ids: &[String],
        properties: &[String],
        id_property: Option<&str>,
    ) -> Result<HashMap<String, Json>> {
        let path = format!("/crm/v3/objects/{object}/batch/read");
        // A record is keyed by the id property read back, and a portal returns only the
        // properties asked for: ask for it.
        let mut properties = properties.to_vec();
        if let Some(p) = id_property.filter(|p| !properties.iter().any(|x| x == p)) {
            properties.push(p.to_string());
        }
        let calls = ids.chunks(BATCH).map(|chunk| {
            let mut body = json!({
                "properties": properties,
                "inputs": chunk.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>(),
            });
            if let Some(p) = id_property {
                body["idProperty"] = json!(p);
            }
            self.send(Call::post(&path, body))
        });
        let mut out = HashMap::with_capacity(ids.len());
        for reply in join_all(calls).await {
            let reply = reply?;
            if !reply.ok() && reply.status.as_u16() != 404 {
                return Err(eyre!("reading {object}: {}", reply.message()));
            }
            for r in reply.body["results"].as_array().into_iter().flatten() {
                let key = match id_property {
                    Some(p) => r["properties"][p].as_str().map(String::from),
                    None => json_text(&r["id"]),
                };
                if let Some(k) = key {
                    let mut props = r["properties"].clone();
                    props["__id"] = r["id"].clone();
                    out.insert(k, props);
                }
            }
        }
        Ok(out)
    }

    /// Records written with these values, each found among its parent's records of the object
    /// (through its first association) holding every value it wrote; a record found once, and
    /// never one of `taken`. `None` where none is there.
    async fn find_by_parents(
        &self,
        object: &Object,
        wanted: &[Map<String, Json>],
        taken: &HashSet<String>,
    ) -> Result<Vec<Option<String>>> {
        let name = &object.schema.object;
        let mut parents: IndexMap<&str, Vec<String>> = IndexMap::new();
        for w in wanted {
            if let Some((link, id)) = object.parent_of(w) {
                let ids = parents.entry(link.to.as_str()).or_default();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        // Parent → its records of this object (associations read from the parent's side).
        let mut children: HashMap<(String, String), Vec<String>> = HashMap::new();
        for (to, ids) in &parents {
            let path = format!("/crm/v4/associations/{to}/{name}/batch/read");
            for chunk in ids.chunks(BATCH) {
                let body = json!({ "inputs": chunk.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>() });
                let reply = self.send(Call::post(&path, body)).await?;
                if !reply.ok() && reply.status.as_u16() != 404 {
                    return Err(eyre!("reading the {name} of {to}: {}", reply.message()));
                }
                for r in reply.body["results"].as_array().into_iter().flatten() {
                    let Some(from) = json_text(&r["from"]["id"]) else { continue };
                    let kids = r["to"].as_array().into_iter().flatten().filter_map(|t| json_text(&t["toObjectId"]));
                    children.entry((to.to_string(), from)).or_default().extend(kids);
                }
            }
        }
        let candidates: Vec<String> =
            children.values().flatten().cloned().collect::<HashSet<_>>().into_iter().collect();
        let linked: HashSet<&str> = object.links.iter().map(|l| l.field.as_str()).collect();
        let written: Vec<String> = wanted
            .iter()
            .flat_map(|w| w.keys())
            .filter(|f| !linked.contains(f.as_str()))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let held = self.batch_read(name, &candidates, &written, None).await?;
        let mut adopted: HashSet<String> = HashSet::new();
        Ok(wanted
            .iter()
            .map(|w| {
                let (link, parent) = object.parent_of(w)?;
                let kids = children.get(&(link.to.clone(), parent))?;
                let holds = |id: &String| {
                    held.get(id).is_some_and(|props| {
                        w.iter().filter(|(f, _)| !linked.contains(f.as_str())).all(|(f, v)| {
                            let v = json_text(v);
                            crate::compare::same(object.ty(f), v.as_deref(), json_text(&props[f]).as_deref())
                        })
                    })
                };
                let id = kids.iter().find(|id| !taken.contains(*id) && !adopted.contains(*id) && holds(id))?.clone();
                adopted.insert(id.clone());
                Some(id)
            })
            .collect())
    }

    /// For each id, the first record it is associated with through `link`.
    async fn linked(&self, object: &str, link: &Link, ids: &[String]) -> Result<HashMap<String, String>> {
        let path = format!("/crm/v4/associations/{object}/{}/batch/read", link.to);
        let calls = ids.chunks(BATCH).map(|chunk| {
            let body = json!({ "inputs": chunk.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>() });
            self.send(Call::post(&path, body))
        });
        let mut out = HashMap::new();
        for reply in join_all(calls).await {
            let reply = reply?;
            for r in reply.body["results"].as_array().into_iter().flatten() {
                let Some(from) = json_text(&r["from"]["id"]) else { continue };
                let to = r["to"].as_array().into_iter().flatten().find(|t| {
                    t["associationTypes"].as_array().is_none_or(|types| {
                        types.is_empty() || types.iter().any(|x| x["typeId"].as_u64() == Some(u64::from(link.type_id)))
                    })
                });
                if let Some(id) = to.and_then(|t| json_text(&t["toObjectId"])) {
                    out.insert(from, id);
                }
            }
        }
        Ok(out)
    }

    /// Records for rows of values, by field; association fields become associations.
    fn inputs(
        &self,
        object: &Object,
        fields: &[String],
        rows: &[(usize, &Vec<Value>)],
        marks: Option<&[String]>,
    ) -> Vec<Json> {
        rows.iter()
            .map(|(i, row)| {
                let mut props = Map::new();
                let mut assocs = Vec::new();
                for (f, v) in fields.iter().zip(row.iter()) {
                    let Some(v) = v else { continue };
                    match object.link(f) {
                        Some(l) => assocs.push(json!({
                            "to": { "id": v },
                            "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": l.type_id }],
                        })),
                        None => {
                            props.insert(f.clone(), Json::String(v.clone()));
                        }
                    }
                }
                if let (Some(m), Some(sids)) = (&self.marker, marks) {
                    props.insert(m.clone(), Json::String(sids[*i].clone()));
                }
                let mut input = json!({ "properties": props, "objectWriteTraceId": i.to_string() });
                if !assocs.is_empty() {
                    input["associations"] = Json::Array(assocs);
                }
                input
            })
            .collect()
    }

    /// Creates one batch (≤ 100 rows); `rows` holds each row's index in the call. A batch HubSpot
    /// refuses whole is halved until the records it refuses stand alone — unless both halves are
    /// refused with the very same 400, which then belongs to the request (an unknown property),
    /// not to a record, and every record fails with it. A 409 (a unique value, such as a contact's
    /// email, another record already holds) names one record of the batch only: the batch is
    /// halved down to that record, whose refusal names the record that holds the value.
    async fn create_batch(
        &self,
        object: &Object,
        records: &NewRecords,
        rows: Vec<usize>,
        results: &Mutex<Vec<Option<WriteResult>>>,
    ) -> Result<()> {
        match self.create_attempt(object, records, rows.clone(), results).await? {
            None => Ok(()),
            Some(refused) => self.split_refused(object, records, rows, refused, results).await,
        }
    }

    async fn split_refused(
        &self,
        object: &Object,
        records: &NewRecords,
        mut rows: Vec<usize>,
        refused: Refused,
        results: &Mutex<Vec<Option<WriteResult>>>,
    ) -> Result<()> {
        if rows.len() == 1 {
            lock(results)?[rows[0]] = Some(Err(refused.for_the_record()));
            return Ok(());
        }
        let second = rows.split_off(rows.len() / 2);
        let a = self.create_attempt(object, records, rows.clone(), results).await?;
        let b = self.create_attempt(object, records, second.clone(), results).await?;
        if refused.status == 400 && a.as_ref() == Some(&refused) && b.as_ref() == Some(&refused) {
            let mut r = lock(results)?;
            for i in rows.iter().chain(&second) {
                r[*i] = Some(Err(refused.message.clone()));
            }
            return Ok(());
        }
        for (half, refused) in [(rows, a), (second, b)] {
            if let Some(m) = refused {
                Box::pin(self.split_refused(object, records, half, m, results)).await?;
            }
        }
        Ok(())
    }

    /// One batch request, until HubSpot's answer is known: `Some(refusal)` when it refused the
    /// batch whole (nothing written), otherwise every row's result is in `results`.
    async fn create_attempt(
        &self,
        object: &Object,
        records: &NewRecords,
        rows: Vec<usize>,
        results: &Mutex<Vec<Option<WriteResult>>>,
    ) -> Result<Option<Refused>> {
        let by_property = matches!(object.marking, Marking::ByProperty(_));
        let marks = records.marks.as_ref().map(|m| m.source_ids.as_slice()).filter(|_| by_property);
        let path = format!("/crm/v3/objects/{}/batch/create", object.schema.object);
        let mut pending = rows;
        let mut unknown = 0;
        while !pending.is_empty() {
            let selected: Vec<(usize, &Vec<Value>)> = pending.iter().map(|&i| (i, &records.rows[i])).collect();
            let inputs = self.inputs(object, &records.fields, &selected, marks);
            match self.client.send(Call::post(&path, json!({ "inputs": inputs })).creating()).await {
                Ok(reply) if reply.ok() => {
                    let mut got = self.apply_batch_reply(&reply, &pending, results)?;
                    // A record HubSpot neither created nor refused is an error of its own.
                    got.sort_unstable();
                    let mut r = lock(results)?;
                    for i in &pending {
                        if got.binary_search(i).is_err() {
                            r[*i] = Some(Err("HubSpot's answer did not mention this record".into()));
                        }
                    }
                    return Ok(None);
                }
                Ok(reply) if matches!(reply.status.as_u16(), 400 | 409) => {
                    return Ok(Some(Refused { status: reply.status.as_u16(), message: reply_error(&reply) }));
                }
                Ok(reply) => {
                    let message = reply_error(&reply);
                    let mut r = lock(results)?;
                    for i in &pending {
                        r[*i] = Some(Err(message.clone()));
                    }
                    return Ok(None);
                }
                Err(CallError::Unknown(why)) => {
                    unknown += 1;
                    if object.marking == Marking::None {
                        return Err(eyre!(
                            "{why}: HubSpot may have created some of these {} records, and without \
                             destination.source_id_property Cutover cannot tell which — stopped rather than risk duplicates",
                            pending.len()
                        ));
                    }
                    if unknown > UNKNOWN_ATTEMPTS {
                        return Err(eyre!("{why} ({unknown} attempts)"));
                    }
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(unknown))).await;
                    // Find out what HubSpot did before sending again.
                    let found: Vec<Option<String>> = match (marks, &object.marking) {
                        (Some(sids), Marking::ByProperty(marker)) => {
                            let wanted: Vec<String> = pending.iter().map(|&i| sids[i].clone()).collect();
                            let found = self.batch_read(&object.schema.object, &wanted, &[], Some(marker)).await?;
                            wanted.iter().map(|sid| found.get(sid).and_then(|p| json_text(&p["__id"]))).collect()
                        }
                        _ => {
                            let wanted: Vec<Map<String, Json>> =
                                pending.iter().map(|&i| written_values(&records.fields, &records.rows[i])).collect();
                            if let Some(w) = wanted.iter().find(|w| object.parent_of(w).is_none()) {
                                return Err(eyre!(
                                    "{why}: HubSpot may have created this {} record, which has no parent to look it up \
                                     by ({}) — stopped rather than risk a duplicate",
                                    object.schema.object,
                                    Json::Object(w.clone())
                                ));
                            }
                            let taken: HashSet<String> =
                                lock(results)?.iter().flatten().filter_map(|r| r.as_ref().ok().cloned()).collect();
                            self.find_by_parents(object, &wanted, &taken).await?
                        }
                    };
                    let mut r = lock(results)?;
                    let mut found = found.into_iter();
                    pending.retain(|&i| match found.next().flatten() {
                        Some(id) => {
                            r[i] = Some(Ok(id));
                            false
                        }
                        None => true,
                    });
                }
                Err(CallError::Fatal(why)) => return Err(eyre!(why)),
                Err(spent @ CallError::Spent(_)) => return Err(eyre!(spent)),
            }
        }
        Ok(None)
    }

    /// Reads a 2xx/207 batch answer into `results`; the rows it mentions.
    fn apply_batch_reply(
        &self,
        reply: &super::http::Reply,
        rows: &[usize],
        results: &Mutex<Vec<Option<WriteResult>>>,
    ) -> Result<Vec<usize>> {
        let mut r = lock(results)?;
        let mut seen = Vec::new();
        let ok = reply.body["results"].as_array().cloned().unwrap_or_default();
        for (n, item) in ok.iter().enumerate() {
            let index = trace_index(&item["objectWriteTraceId"]).or_else(|| rows.get(n).copied());
            if let (Some(i), Some(id)) = (index, json_text(&item["id"])) {
                r[i] = Some(Ok(id));
                seen.push(i);
            }
        }
        for e in reply.body["errors"].as_array().into_iter().flatten() {
            let message = error_text(e);
            for t in e["context"]["objectWriteTraceId"].as_array().into_iter().flatten() {
                if let Some(i) = trace_index(t) {
                    r[i] = Some(Err(message.clone()));
                    seen.push(i);
                }
            }
        }
        Ok(seen)
    }

    /// Applies one batch of property changes (≤ 100).
    async fn update_batch(
        &self,
        object: &str,
        changes: &[(usize, &Change)],
        results: &Mutex<Vec<Option<WriteResult>>>,
    ) -> Result<()> {
        let path = format!("/crm/v3/objects/{object}/batch/update");
        let inputs: Vec<Json> = changes
            .iter()
            .map(|(i, c)| {
                let props: Map<String, Json> = c
                    .values
                    .iter()
                    .map(|(f, v)| (f.clone(), v.clone().map(Json::String).unwrap_or(Json::String(String::new()))))
                    .collect();
                json!({ "id": c.dest_id, "properties": props, "objectWriteTraceId": i.to_string() })
            })
            .collect();
        let reply = self.send(Call::post(&path, json!({ "inputs": inputs }))).await?;
        if reply.ok() {
            let rows: Vec<usize> = changes.iter().map(|(i, _)| *i).collect();
            let seen = self.apply_batch_reply(&reply, &rows, results)?;
            let mut r = lock(results)?;
            for (i, c) in changes {
                if !seen.contains(i) {
                    r[*i] = Some(Ok(c.dest_id.clone()));
                }
            }
            return Ok(());
        }
        if changes.len() > 1 && matches!(reply.status.as_u16(), 400 | 409) {
            let (a, b) = changes.split_at(changes.len() / 2);
            Box::pin(self.update_batch(object, a, results)).await?;
            return Box::pin(self.update_batch(object, b, results)).await;
        }
        let message = reply_error(&reply);
        let mut r = lock(results)?;
        for (i, _) in changes {
            r[*i] = Some(Err(message.clone()));
        }
        Ok(())
    }
}

impl HubSpot {
    /// Before a record is associated with a new parent, the association with the parent it had
    /// (of the same type) is archived: a contact moved to another company is not left in both.
    async fn archive_replaced(&self, object: &str, to: &str, links: &[(usize, &Link, String, String)]) -> Result<()> {
        let Some(link) = links.first().map(|l| l.1) else { return Ok(()) };
        let from: Vec<String> = links.iter().map(|l| l.2.clone()).collect();
        let current = self.linked(object, link, &from).await?;
        let inputs: Vec<Json> = links
            .iter()
            .filter_map(|(_, _, from, new)| {
                let old = current.get(from).filter(|old| *old != new)?;
                Some(json!({ "from": { "id": from }, "to": [{ "id": old }] }))
            })
            .collect();
        if inputs.is_empty() {
            return Ok(());
        }
        let path = format!("/crm/v4/associations/{object}/{to}/batch/archive");
        let reply = self.send(Call::post(&path, json!({ "inputs": inputs }))).await?;
        if !reply.ok() {
            return Err(eyre!("archiving the {object} → {to} associations that changed: {}", reply.message()));
        }
        Ok(())
    }

    /// Creates associations in one batch request (v4); a batch refused whole is halved until the
    /// refused ones stand alone, each failing its own record; a multi-status answer is sent again
    /// one by one, so that each record learns its own answer.
    async fn associate(
        &self,
        object: &str,
        to: &str,
        links: &[(usize, &Link, String, String)],
        results: &Mutex<Vec<Option<WriteResult>>>,
    ) -> Result<()> {
        self.archive_replaced(object, to, links).await?;
        let path = format!("/crm/v4/associations/{object}/{to}/batch/create");
        let inputs: Vec<Json> = links
            .iter()
            .map(|(_, l, from, to)| {
                json!({
                    "from": { "id": from }, "to": { "id": to },
                    "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": l.type_id }],
                })
            })
            .collect();
        let reply = self.send(Call::post(&path, json!({ "inputs": inputs }))).await?;
        let partial = reply.status.as_u16() == 207;
        if reply.ok() && !partial {
            return Ok(());
        }
        if links.len() == 1 {
            if !reply.ok() || reply.body["errors"].as_array().is_some_and(|e| !e.is_empty()) {
                lock(results)?[links[0].0] = Some(Err(reply_error(&reply)));
            }
            return Ok(());
        }
        if partial {
            for one in links.chunks(1) {
                Box::pin(self.associate(object, to, one, results)).await?;
            }
            return Ok(());
        }
        let (a, b) = links.split_at(links.len() / 2);
        Box::pin(self.associate(object, to, a, results)).await?;
        Box::pin(self.associate(object, to, b, results)).await
    }
}

/// A batch HubSpot refused whole (400 or 409): nothing of it was written.
#[derive(Debug, Clone, PartialEq)]
struct Refused {
    status: u16,
    message: String,
}

impl Refused {
    /// The refusal of the one record a batch came down to: a 409 that names the record holding
    /// its unique value (`Contact already exists. Existing ID: 555`) says so as a match.
    fn for_the_record(&self) -> String {
        match self.existing_id().filter(|_| self.status == 409) {
            Some(id) => super::exists_as(id, &self.message),
            None => self.message.clone(),
        }
    }

    fn existing_id(&self) -> Option<&str> {
        let (_, rest) = self.message.split_once("Existing ID: ")?;
        let id = rest.split(|c: char| !c.is_ascii_digit()).next()?;
        (!id.is_empty()).then_some(id)
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    m.lock().map_err(|_| eyre!("results lock poisoned"))
}

/// A JSON id or value as text (HubSpot sends ids as strings, sometimes as numbers).
fn json_text(v: &Json) -> Option<String> {
    match v {
        Json::String(s) if !s.is_empty() => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn trace_index(v: &Json) -> Option<usize> {
    json_text(v)?.parse().ok()
}

/// One error of a batch answer, as an operator should read it.
fn error_text(e: &Json) -> String {
    let message = e["message"].as_str().unwrap_or("rejected");
    match e["category"].as_str() {
        Some(c) => format!("{c}: {message}"),
        None => message.to_string(),
    }
}

fn reply_error(reply: &super::http::Reply) -> String {
    let b = &reply.body;
    let category = b["category"].as_str().unwrap_or("ERROR");
    let message = b["message"].as_str().map(String::from).unwrap_or_else(|| b.to_string());
    format!("HubSpot {} {category}: {message}", reply.status.as_u16())
}

/// A property value as the pipeline spells it.
fn value_of(props: &Json, field: &str, ty: FieldType) -> Value {
    json_text(&props[field]).map(|s| super::sql::from_server(ty, s))
}

#[async_trait]
impl Destination for HubSpot {
    fn describe(&self) -> String {
        "HubSpot CRM".into()
    }

    async fn schema(&self, object: &str) -> Result<DestSchema> {
        Ok(self.object(object).await?.schema.clone())
    }

    async fn users(&self) -> Result<Vec<DestUser>> {
        let mut users = Vec::new();
        let mut after = String::new();
        loop {
            let mut call = Call::get("/crm/v3/owners").query("limit", "100");
            if !after.is_empty() {
                call = call.query("after", after.clone());
            }
            let reply = self.send(call).await?;
            if !reply.ok() {
                return Err(eyre!("reading HubSpot's owners: {}", reply.message()));
            }
            for o in reply.body["results"].as_array().into_iter().flatten() {
                if o["archived"].as_bool() == Some(true) {
                    continue;
                }
                let name =
                    format!("{} {}", o["firstName"].as_str().unwrap_or(""), o["lastName"].as_str().unwrap_or(""));
                users.push(DestUser {
                    id: json_text(&o["id"]).unwrap_or_default(),
                    name: name.trim().to_string(),
                    email: o["email"].as_str().map(String::from),
                });
            }
            match reply.body["paging"]["next"]["after"].as_str() {
                Some(a) => after = a.to_string(),
                None => return Ok(users),
            }
        }
    }

    async fn scan(
        &self,
        object: &str,
        fields: &[String],
        after: &Cursor,
        max: usize,
    ) -> Result<(Vec<(String, Vec<Value>)>, Cursor, bool)> {
        let info = self.object(object).await?;
        let props: Vec<String> = fields.iter().filter(|f| info.link(f).is_none()).cloned().collect();
        let mut out = Vec::with_capacity(max);
        let mut cursor = after.0.clone();
        loop {
            let (rows, next) = self.list(object, &props, &cursor).await?;
            for (id, p) in rows {
                out.push((id, fields.iter().map(|f| value_of(&p, f, info.ty(f))).collect()));
            }
            match next {
                Some(n) if out.len() < max => cursor = n,
                Some(n) => return Ok((out, Cursor(n), false)),
                None => return Ok((out, Cursor(cursor), true)),
            }
        }
    }

    async fn read(&self, object: &str, ids: &[String], fields: &[String]) -> Result<HashMap<String, Vec<Value>>> {
        let info = self.object(object).await?;
        let props: Vec<String> = fields.iter().filter(|f| info.link(f).is_none()).cloned().collect();
        let found = self.batch_read(object, ids, &props, None).await?;
        let present: Vec<String> = found.keys().cloned().collect();
        let mut links = HashMap::new();
        for f in fields {
            if let Some(l) = info.link(f) {
                links.insert(f.clone(), self.linked(object, l, &present).await?);
            }
        }
        Ok(found
            .into_iter()
            .map(|(id, p)| {
                let values = fields
                    .iter()
                    .map(|f| match links.get(f) {
                        Some(map) => map.get(&id).cloned(),
                        None => value_of(&p, f, info.ty(f)),
                    })
                    .collect();
                (id, values)
            })
            .collect())
    }

    async fn create(&self, object: &str, records: NewRecords) -> Result<Vec<WriteResult>> {
        let info = self.object(object).await?;
        let results = Mutex::new(vec![None; records.rows.len()]);
        let batches: Vec<Vec<usize>> =
            (0..records.rows.len()).collect::<Vec<_>>().chunks(BATCH).map(<[usize]>::to_vec).collect();
        let outcomes =
            join_all(batches.into_iter().map(|rows| self.create_batch(&info, &records, rows, &results))).await;
        // Records HubSpot confirmed are reported even when another batch failed for good: they exist.
        let results = results.into_inner().map_err(|_| eyre!("results lock poisoned"))?;
        if let Some(e) = outcomes.into_iter().find_map(Result::err) {
            let done = results.iter().filter(|r| matches!(r, Some(Ok(_)))).count();
            // With a marker the engine's batch stops uncommitted, none of its records failed:
            // its creates were journaled, and the next attempt adopts what HubSpot confirmed
            // (a spent daily limit failed hundreds of records that had done nothing wrong).
            if done == 0 || info.marking != Marking::None {
                if done > 0 {
                    tracing::warn!(object, confirmed = done, "a HubSpot batch stopped: {e:#}");
                }
                return Err(e);
            }
            tracing::warn!(object, confirmed = done, "a HubSpot batch failed for good: {e:#}");
            return Ok(results.into_iter().map(|r| r.unwrap_or_else(|| Err(format!("not written: {e}")))).collect());
        }
        Ok(results.into_iter().map(|r| r.unwrap_or_else(|| Err("not written".into()))).collect())
    }

    async fn update(&self, object: &str, changes: &[Change]) -> Result<Vec<WriteResult>> {
        let info = self.object(object).await?;
        let results = Mutex::new(vec![None; changes.len()]);
        // Property changes in batches; association changes as associations.
        let mut props: Vec<(usize, Change)> = Vec::new();
        let mut links: Vec<(usize, &Link, String, String)> = Vec::new();
        for (i, c) in changes.iter().enumerate() {
            let mut own = Change { dest_id: c.dest_id.clone(), values: Vec::new() };
            for (f, v) in &c.values {
                match (info.link(f), v) {
                    (Some(l), Some(to)) => links.push((i, l, c.dest_id.clone(), to.clone())),
                    (Some(_), None) => {}
                    (None, _) => own.values.push((f.clone(), v.clone())),
                }
            }
            props.push((i, own));
        }
        let with_values: Vec<(usize, &Change)> =
            props.iter().filter(|(_, c)| !c.values.is_empty()).map(|(i, c)| (*i, c)).collect();
        let calls = with_values.chunks(BATCH).map(|chunk| self.update_batch(object, chunk, &results));
        for outcome in join_all(calls).await {
            outcome?;
        }
        // Associations in batches per target object (one request per record was 83% of a run's
        // requests when 800 contacts were updated).
        let mut by_target: IndexMap<&str, Vec<(usize, &Link, String, String)>> = IndexMap::new();
        for link in links {
            by_target.entry(link.1.to.as_str()).or_default().push(link);
        }
        for (to, links) in by_target {
            for chunk in links.chunks(BATCH) {
                self.associate(object, to, chunk, &results).await?;
            }
        }
        let results = results.into_inner().map_err(|_| eyre!("results lock poisoned"))?;
        Ok(results.into_iter().zip(changes).map(|(r, c)| r.unwrap_or_else(|| Ok(c.dest_id.clone()))).collect())
    }

    async fn delete(&self, object: &str, ids: &[String]) -> Result<Vec<WriteResult>> {
        let path = format!("/crm/v3/objects/{object}/batch/archive");
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH) {
            let body = json!({ "inputs": chunk.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>() });
            let reply = self.send(Call::post(&path, body)).await?;
            let result = if reply.ok() { Ok(()) } else { Err(reply_error(&reply)) };
            out.extend(chunk.iter().map(|id| result.clone().map(|_| id.clone())));
        }
        Ok(out)
    }

    fn notices(&self) -> Vec<String> {
        lock(&self.notices).map(|n| n.clone()).unwrap_or_default()
    }

    /// A batch waiting on a Retry-After at its tail would leave the limit idle: with a unique
    /// marker, the next batches are sent meanwhile. Without one (a note found again among its
    /// parent's records by its values), one batch's lost answer could adopt another's record.
    async fn records_in_flight(&self, object: &str) -> usize {
        match self.object(object).await {
            Ok(o) if matches!(o.marking, Marking::ByProperty(_)) => RECORDS_IN_FLIGHT,
            _ => 0,
        }
    }

    fn daily_requests_left(&self) -> Option<u64> {
        self.client.stats.daily_left()
    }

    /// HubSpot's search total (eventually consistent: a count right after writes may lag).
    async fn record_count(&self, object: &str) -> Result<Option<u64>> {
        Source::count(self, object).await.map(Some)
    }

    /// By marker, a hundred a request (the unique property as `idProperty`): not the whole
    /// object listed at the start of every run.
    /// An object without a marker: among each record's parent's records, by what it wrote.
    async fn find_created(&self, object: &str, wanted: &[(String, Json)]) -> Result<Option<Vec<Option<String>>>> {
        let info = self.object(object).await?;
        if wanted.is_empty() {
            return Ok(Some(Vec::new()));
        }
        match &info.marking {
            Marking::None => Ok(None),
            Marking::ByProperty(marker) => {
                let keys: Vec<String> = wanted.iter().map(|(m, _)| m.clone()).collect();
                let found = self.batch_read(object, &keys, &[], Some(marker)).await?;
                Ok(Some(keys.iter().map(|k| found.get(k).and_then(|p| json_text(&p["__id"]))).collect()))
            }
            Marking::ByParent => {
                let written: Vec<Map<String, Json>> =
                    wanted.iter().map(|(_, w)| w.as_object().cloned().unwrap_or_default()).collect();
                self.find_by_parents(&info, &written, &HashSet::new()).await.map(Some)
            }
        }
    }

    async fn marked(&self, _namespace: &str, object: &str) -> Result<Vec<(String, String)>> {
        let Marking::ByProperty(marker) = self.object(object).await?.marking.clone() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let (rows, next) = self.list(object, std::slice::from_ref(&marker), &after).await?;
            out.extend(rows.into_iter().filter_map(|(id, p)| Some((json_text(&p[&marker])?, id))));
            match next {
                Some(n) => after = n,
                None => return Ok(out),
            }
        }
    }
}

/// HubSpot as a source: every property of the object, in pages of 100 following HubSpot's own
/// cursor (a checkpoint is that cursor); association fields are filled from the associations.
#[async_trait]
impl Source for HubSpot {
    fn describe(&self) -> String {
        "HubSpot CRM".into()
    }

    async fn fields(&self, object: &str) -> Result<FieldNames> {
        let info = self.object(object).await?;
        let mut names = vec!["id".to_string()];
        names.extend(info.properties.iter().filter(|p| *p != "hs_object_id").cloned());
        names.extend(info.links.iter().map(|l| l.field.clone()));
        Ok(names.into())
    }

    async fn count(&self, object: &str) -> Result<u64> {
        let path = format!("/crm/v3/objects/{object}/search");
        // Every field HubSpot's published request schema lists as required, none filtering.
        let body = json!({ "filterGroups": [], "sorts": [], "properties": ["hs_object_id"], "limit": 1, "after": "0" });
        let reply = self.send(Call::post(&path, body).lane(SEARCH)).await?;
        if !reply.ok() {
            return Err(eyre!("counting {object}: {}", reply.message()));
        }
        reply.body["total"].as_u64().ok_or_else(|| eyre!("HubSpot's search answer for {object} has no total"))
    }

    async fn read_batch(&self, object: &str, id_field: &str, cursor: &Cursor, max: usize) -> Result<Batch> {
        let info = self.object(object).await?;
        let names = Source::fields(self, object).await?;
        let props: Vec<String> = info.properties.clone();
        // Long property lists do not fit a URL: list ids, then read them in a body.
        let in_url = props.join(",").len() < 4000;
        let mut records = Vec::with_capacity(max);
        let mut after = cursor.0.clone();
        let mut done = false;
        while records.len() < max && !done {
            let (rows, next) = self.list(object, if in_url { &props } else { &[] }, &after).await?;
            let ids: Vec<String> = rows.iter().map(|(id, _)| id.clone()).collect();
            let mut full: HashMap<String, Json> =
                if in_url { rows.into_iter().collect() } else { self.batch_read(object, &ids, &props, None).await? };
            let mut links = HashMap::new();
            for l in &info.links {
                links.insert(l.field.clone(), self.linked(object, l, &ids).await.wrap_err("reading associations")?);
            }
            for id in ids {
                let p = full.remove(&id).unwrap_or(Json::Null);
                let values: Vec<Value> = names
                    .iter()
                    .map(|f| match (f.as_str(), links.get(f)) {
                        ("id", _) => Some(id.clone()),
                        (_, Some(map)) => map.get(&id).cloned(),
                        _ => value_of(&p, f, info.ty(f)),
                    })
                    .collect();
                let source_id = names.iter().position(|n| n == id_field).and_then(|i| values[i].clone());
                let origin = format!("HubSpot {object} {id}");
                records.push(match source_id {
                    Some(source_id) => Extracted::Record(SourceRecord { source_id, origin, values }),
                    None => Extracted::Malformed {
                        source_id: format!("hubspot:{id}"),
                        message: format!("{origin}: the id field '{id_field}' is empty"),
                        origin,
                    },
                });
            }
            match next {
                Some(n) => after = n,
                None => done = true,
            }
        }
        Ok(Batch { records, next: Cursor(after), done })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_errors_read_as_an_operator_needs_them() {
        let e =
            json!({ "status": "error", "category": "VALIDATION_ERROR", "message": "Property values were not valid" });
        assert_eq!(error_text(&e), "VALIDATION_ERROR: Property values were not valid");
        assert_eq!(trace_index(&json!("17")), Some(17));
        assert_eq!(json_text(&json!(12345)), Some("12345".into()));
        assert_eq!(json_text(&json!("")), None);
    }

    #[test]
    fn a_conflict_names_the_record_that_holds_the_value_and_nothing_else_does() {
        let conflict = Refused { status: 409, message: "409 Contact already exists. Existing ID: 12345".into() };
        let said = conflict.for_the_record();
        assert_eq!(crate::connect::existing_record(&said), Some("12345"), "{said}");
        assert!(said.contains("Contact already exists"), "HubSpot's words are kept: {said}");
        // A 409 that names no record, and a 400 that happens to carry the words, are refusals.
        let unnamed = Refused { status: 409, message: "409 Conflict".into() };
        assert_eq!(crate::connect::existing_record(&unnamed.for_the_record()), None);
        let invalid = Refused { status: 400, message: "400 Existing ID: 7 is not a valid value".into() };
        assert_eq!(crate::connect::existing_record(&invalid.for_the_record()), None);
        assert_eq!(crate::connect::existing_record("already in the destination as record : x"), None);
    }
}
