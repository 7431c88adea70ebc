//! Pipedrive as a source and a destination: persons, organizations and deals through API v2
//! (cursor paging), notes and users through v1 (offset paging); stages and pipelines (v2) for
//! translation and picklists.
//!
//! Records are flattened the way Pipedrive's own export spells them: the primary email and phone
//! as `email` and `phone` (all of them in `emails`, `phones`), nested objects as `address_locality`,
//! custom fields under their key, and beside each user id the user's name and email
//! (`owner_name`, `owner_email`; `user_name` on notes) and beside `stage_id` and `pipeline_id`
//! their names (`stage`, `pipeline`) — so owners resolve and stages translate by name.
//!
//! Every call is paced by the burst limit (`rate_limit` requests per 2 s) and paid from the daily
//! token budget (`daily_tokens`) at the cost the API documents for it (`x-token-cost`).
//! Pipedrive has no batch writes: each record is one request. A created record carries its source
//! id in the custom field `source_id_property`; after a create whose outcome is unknown, Cutover
//! looks for it by a consistent read before sending again — records of its object changed since
//! just before it was sent, or a note among its parent's notes — never by search, whose index
//! lags behind writes.

use super::http::{Auth, Budget, Call, CallError, Client, Rate, Reply, Secret};
use super::{Batch, Change, Cursor, Destination, NewRecords, PlannedWrites, Source, WriteResult};
use crate::config::ConnectionConfig;
use crate::model::{DestField, DestSchema, DestUser, Extracted, FieldNames, SourceRecord, Value};
use crate::text::thousands;
use async_trait::async_trait;
use color_eyre::eyre::{Result, eyre};
use indexmap::IndexMap;
use reqwest::Method;
use serde_json::{Map, Value as Json, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;

mod fields;
mod notes;
mod schema;
use fields::{Catalog, PdField, is_custom_key};
use notes::note_words;
use schema::{Stages, standard_fields};

pub const DEFAULT_BASE: &str = "https://api.pipedrive.com";
/// Records per page (v2 allows 500; v1 notes 500).
const PAGE: usize = 500;

/// The daily token budget when the project does not say (Pipedrive's base: 30,000 a day, more
/// by plan and seats).
const DAILY_TOKENS: u32 = 30_000;
/// Pipedrive's fair use: about this many writes (POST, PUT, PATCH) a day.
const WRITES_A_DAY: u64 = 10_000;

/// Up to this many notes are read one request each (2 tokens); more, from the list in id order
/// (20 tokens for 500).
const FEW_NOTES: usize = 20;

/// What an object is in the API.
#[derive(Debug, Clone, Copy)]
struct Entity {
    /// The collection's path.
    path: &'static str,
    v2: bool,
    /// The user field (`owner_id`, or `user_id` on notes).
    user: &'static str,
    /// Where the account describes its fields (v1; notes' in one answer, the others paged).
    fields: &'static str,
}

fn entity(object: &str) -> Result<Entity> {
    let e = |path, v2, user, fields| Entity { path, v2, user, fields };
    match object {
        "persons" => Ok(e("/api/v2/persons", true, "owner_id", "/v1/personFields")),
        "organizations" => Ok(e("/api/v2/organizations", true, "owner_id", "/v1/organizationFields")),
        "deals" => Ok(e("/api/v2/deals", true, "owner_id", "/v1/dealFields")),
        "notes" => Ok(e("/v1/notes", false, "user_id", "/v1/noteFields")),
        other => {
            Err(eyre!("Pipedrive has no object '{other}' Cutover can move (persons, organizations, deals, notes)"))
        }
    }
}

/// The token cost of each call, as Pipedrive's OpenAPI files document it (`x-token-cost`).
mod cost {
    pub const V2_LIST: u32 = 10;
    pub const V2_CREATE: u32 = 5;
    pub const V2_UPDATE: u32 = 5;
    pub const V2_DELETE: u32 = 3;
    pub const STAGES: u32 = 5;
    pub const PIPELINES: u32 = 5;
    pub const NOTES_LIST: u32 = 20;
    pub const NOTES_CREATE: u32 = 10;
    pub const NOTES_UPDATE: u32 = 10;
    pub const NOTES_DELETE: u32 = 6;
    pub const NOTES_GET: u32 = 2;
    pub const USERS: u32 = 20;
    pub const FIELDS: u32 = 20;
}

/// What a look-up after a lost answer found.
enum Lookup {
    Found(String),
    /// Not carried out: send it again.
    Absent,
    /// Nothing to look it up by.
    Unknowable,
}

/// Which custom field holds each object's source ids, as the project names them (by name or
/// key): `marker_fields` per object, else `source_id_property` for all.
#[derive(Debug, Clone, Default)]
struct Markers {
    default: Option<String>,
    per_object: IndexMap<String, String>,
}

pub struct Pipedrive {
    client: Client,
    /// The daily token budget the project allows (`daily_tokens`).
    budget: u64,
    /// What the account says is left today below which no more is written (`daily_reserve`).
    reserve: u64,
    markers: Markers,
    users: OnceCell<Vec<Json>>,
    stages: OnceCell<Stages>,
    fields: Mutex<HashMap<String, FieldNames>>,
    catalogs: Mutex<HashMap<String, Arc<Catalog>>>,
    /// Pages of the notes list in id order seen so far: (offset, first note id on it), so that
    /// reading notes back in chunks starts near the chunk's first id, not at the start.
    note_pages: Mutex<Vec<(u64, u64)>>,
}

/// The source id a record carries in the marker field (a custom field, or top level as v1
/// answers put it).
fn marker_of(record: &Json, key: &str) -> Option<String> {
    let m = &record["custom_fields"][key];
    text(if m.is_null() { &record[key] } else { m })
}

fn text(v: &Json) -> Option<String> {
    match v {
        Json::Null => None,
        Json::String(s) if s.is_empty() => None,
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

impl Pipedrive {
    pub fn open(conn: &ConnectionConfig, role: &str) -> Result<Self> {
        let var = conn.token_env.as_deref().ok_or_else(|| eyre!("{role}.token_env is missing"))?;
        let token = Secret::from_env(var, role)?;
        let burst = Rate { requests: conn.rate_limit.unwrap_or(20), per: Duration::from_secs(2) };
        let tokens = conn.daily_tokens.unwrap_or(DAILY_TOKENS);
        let budget = Budget { tokens, per: Duration::from_secs(86_400) };
        let base = conn.base_url.as_deref().unwrap_or(DEFAULT_BASE);
        Ok(Self {
            client: Client::new("Pipedrive", base, (token, Auth::Header("x-api-token")), &[burst], Some(budget))?,
            budget: u64::from(tokens),
            reserve: conn.daily_reserve.unwrap_or(super::DAILY_RESERVE),
            markers: Markers { default: conn.source_id_property.clone(), per_object: conn.marker_fields.clone() },
            users: OnceCell::new(),
            stages: OnceCell::new(),
            fields: Mutex::default(),
            catalogs: Mutex::default(),
            note_pages: Mutex::default(),
        })
    }

    /// Tokens spent from the daily budget so far.
    pub fn tokens_spent(&self) -> u64 {
        self.client.stats.snapshot()[5]
    }

    async fn send(&self, call: Call<'_>) -> Result<Reply> {
        let reply = self.client.send(call).await.map_err(|e| eyre!(e))?;
        Ok(reply)
    }

    async fn users_json(&self) -> Result<&Vec<Json>> {
        self.users
            .get_or_try_init(|| async {
                let reply = self.send(Call::get("/v1/users").cost(cost::USERS)).await?;
                if !reply.ok() {
                    return Err(eyre!("reading Pipedrive's users: {}", reply.message()));
                }
                Ok(reply.body["data"].as_array().cloned().unwrap_or_default())
            })
            .await
    }

    /// The account's fields of `object` (`*Fields`), read once.
    async fn catalog(&self, object: &str) -> Result<Arc<Catalog>> {
        if let Some(c) = self.catalogs.lock().map_err(|_| eyre!("fields cache poisoned"))?.get(object) {
            return Ok(c.clone());
        }
        let e = entity(object)?;
        // Notes' fields come in one answer; the others page by offset.
        let paged = object != "notes";
        let (mut data, mut start) = (Vec::new(), 0u64);
        loop {
            let mut call = Call::get(e.fields).cost(cost::FIELDS);
            if paged {
                call = call.query("start", start.to_string()).query("limit", PAGE.to_string());
            }
            let reply = self.send(call).await?;
            if !reply.ok() {
                return Err(eyre!("reading Pipedrive's {object} fields ({}): {}", e.fields, reply.message()));
            }
            let page = reply.body["data"].as_array().cloned().unwrap_or_default();
            let got = page.len() as u64;
            data.extend(page);
            let p = &reply.body["additional_data"]["pagination"];
            if !paged || got == 0 || p["more_items_in_collection"].as_bool() != Some(true) {
                break;
            }
            start = p["next_start"].as_u64().unwrap_or(start + got);
        }
        let catalog = Arc::new(Catalog::from_json(&data));
        self.catalogs.lock().map_err(|_| eyre!("fields cache poisoned"))?.insert(object.to_string(), catalog.clone());
        Ok(catalog)
    }

    /// The key of the custom field holding `object`'s created records' source ids: the field
    /// `marker_fields` names for the object, else `source_id_property`, by name or key, looked
    /// up among the object's own fields (a custom field's key is its entity's alone). Notes
    /// have no custom fields: none.
    async fn marker_key(&self, object: &str) -> Result<Option<String>> {
        if object == "notes" {
            return Ok(None);
        }
        let (setting, named) = match (self.markers.per_object.get(object), &self.markers.default) {
            (Some(n), _) => (format!("destination.marker_fields.{object}"), n),
            (None, Some(n)) => ("destination.source_id_property".to_string(), n),
            (None, None) => return Ok(None),
        };
        let problem = |message: String| eyre!(crate::config::KeyProblem::new(setting.clone(), message));
        match self.catalog(object).await?.find(named) {
            Ok(Some(f)) if f.custom() && matches!(f.kind.as_str(), "varchar" | "varchar_auto" | "text") => {
                Ok(Some(f.key.clone()))
            }
            Ok(Some(f)) if f.custom() => Err(problem(format!(
                "'{named}' is {object}' {} field: the source ids need a custom field of type Text",
                f.kind
            ))),
            Ok(Some(f)) => Err(problem(format!(
                "'{named}' is Pipedrive's own {object} field '{}': the source ids need a custom text field of their own",
                f.key
            ))),
            Ok(None) if is_custom_key(named) => Err(problem(format!(
                "'{named}' is not the key of {} {object} field (a custom field's key belongs to one entity alone): \
                 give the field's name instead — one name serves every object with a field of that name — or \
                 name the {object}' own under destination.marker_fields.{object}",
                if object.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
            ))),
            Ok(None) => Err(problem(format!(
                "Pipedrive has no {object} field '{named}': create a custom field of type Text on {object} \
                 (Settings → Data fields) and give its name here — it holds each created record's source id, \
                 so a crash or a lost answer never creates a record twice — or name another one under \
                 destination.marker_fields.{object}"
            ))),
            Err(why) => Err(problem(why)),
        }
    }

    /// The account's stages and pipelines, every page.
    async fn stage_names(&self) -> Result<&Stages> {
        self.stages
            .get_or_try_init(|| async {
                let mut maps = Stages::default();
                for (path, c, map) in [
                    ("/api/v2/stages", cost::STAGES, &mut maps.stage),
                    ("/api/v2/pipelines", cost::PIPELINES, &mut maps.pipeline),
                ] {
                    let mut cursor: Option<String> = None;
                    loop {
                        let mut call = Call::get(path).cost(c).query("limit", PAGE.to_string());
                        if let Some(at) = &cursor {
                            call = call.query("cursor", at.clone());
                        }
                        let reply = self.send(call).await?;
                        if !reply.ok() {
                            return Err(eyre!("reading Pipedrive's {path}: {}", reply.message()));
                        }
                        for s in reply.body["data"].as_array().into_iter().flatten() {
                            if let (Some(id), Some(name)) = (text(&s["id"]), text(&s["name"])) {
                                map.insert(id, (name, text(&s["pipeline_id"]).unwrap_or_default()));
                            }
                        }
                        cursor = text(&reply.body["additional_data"]["next_cursor"]);
                        if cursor.is_none() {
                            break;
                        }
                    }
                }
                Ok(maps)
            })
            .await
    }

    /// One page: records and the cursor after it (`None`: the last page).
    async fn page(&self, object: &str, cursor: &str) -> Result<(Vec<Json>, Option<String>)> {
        self.page_where(object, cursor, &[]).await
    }

    /// One page of the records `filters` select (query parameters the list takes: a note's
    /// `person_id`, `updated_since`).
    async fn page_where(
        &self,
        object: &str,
        cursor: &str,
        filters: &[(&str, String)],
    ) -> Result<(Vec<Json>, Option<String>)> {
        let e = entity(object)?;
        let mut call = Call::get(e.path).query("limit", PAGE.to_string());
        for (k, v) in filters {
            call = call.query(k, v.clone());
        }
        if e.v2 {
            call = call.cost(cost::V2_LIST);
            if !cursor.is_empty() {
                call = call.query("cursor", cursor);
            }
        } else {
            call = call.cost(cost::NOTES_LIST).query("start", if cursor.is_empty() { "0" } else { cursor });
        }
        let reply = self.send(call).await?;
        if !reply.ok() {
            return Err(eyre!("reading Pipedrive {object}: {}", reply.message()));
        }
        let data = reply.body["data"].as_array().cloned().unwrap_or_default();
        let next = if e.v2 {
            text(&reply.body["additional_data"]["next_cursor"])
        } else {
            let p = &reply.body["additional_data"]["pagination"];
            if p["more_items_in_collection"].as_bool() == Some(true) { text(&p["next_start"]) } else { None }
        };
        Ok((data, next))
    }

    /// A record as flat named text values, in the spelling of Pipedrive's export: custom fields
    /// under their name (and their key), option ids and labels as their labels.
    async fn flatten(&self, object: &str, record: &Json) -> Result<IndexMap<String, String>> {
        let e = entity(object)?;
        let users = self.users_json().await?;
        let stages = if object == "deals" { Some(self.stage_names().await?) } else { None };
        let catalog = self.catalog(object).await?;
        let mut out = IndexMap::new();
        let Some(fields) = record.as_object() else { return Ok(out) };
        let custom = |out: &mut IndexMap<String, String>, key: &str, v: &Json| {
            let Some(f) = catalog.by_key(key) else {
                out.insert(key.to_string(), text(v).unwrap_or_default());
                return;
            };
            let value = if f.has_options() {
                f.labels(v)
            } else if let Json::Object(inner) = v {
                text(&inner["value"])
            } else {
                text(v)
            };
            let value = value.unwrap_or_default();
            out.insert(catalog.public_name(f), value.clone());
            out.insert(key.to_string(), value);
        };
        for (k, v) in fields {
            match (k.as_str(), v) {
                ("custom_fields", Json::Object(fields)) => {
                    for (ck, cv) in fields {
                        custom(&mut out, ck, cv);
                    }
                }
                (k, v) if is_custom_key(k) => custom(&mut out, k, v),
                ("label_ids", v) => {
                    let labels = catalog.by_key("label_ids").or_else(|| catalog.by_key("label"));
                    let unlisted = PdField { key: k.clone(), name: k.clone(), kind: "set".into(), options: Vec::new() };
                    out.insert(k.clone(), labels.unwrap_or(&unlisted).labels(v).unwrap_or_default());
                }
                ("emails" | "phones", Json::Array(items)) => {
                    let values: Vec<String> = items.iter().filter_map(|i| text(&i["value"])).collect();
                    let primary = items.iter().find(|i| i["primary"].as_bool() == Some(true)).or(items.first());
                    out.insert(
                        k.trim_end_matches('s').to_string(),
                        primary.and_then(|p| text(&p["value"])).unwrap_or_default(),
                    );
                    out.insert(k.clone(), values.join("; "));
                }
                (_, Json::Object(inner)) => {
                    for (ik, iv) in inner {
                        let name = if ik == "value" { k.clone() } else { format!("{k}_{ik}") };
                        out.insert(name, text(iv).unwrap_or_default());
                    }
                }
                (_, Json::Array(items)) => {
                    out.insert(k.clone(), items.iter().filter_map(text).collect::<Vec<_>>().join(","));
                }
                _ => {
                    out.insert(k.clone(), text(v).unwrap_or_default());
                }
            }
            if k == e.user {
                let user = users.iter().find(|u| text(&u["id"]) == text(v));
                let prefix = if e.user == "user_id" { "user" } else { "owner" };
                out.insert(format!("{prefix}_name"), user.and_then(|u| text(&u["name"])).unwrap_or_default());
                out.insert(format!("{prefix}_email"), user.and_then(|u| text(&u["email"])).unwrap_or_default());
            }
            if let (Some(stages), Some(id)) = (stages, text(v)) {
                let name =
                    |m: &HashMap<String, (String, String)>| m.get(&id).map(|(n, _)| n.clone()).unwrap_or_default();
                match k.as_str() {
                    "stage_id" => {
                        out.insert("stage".into(), name(&stages.stage));
                    }
                    "pipeline_id" => {
                        out.insert("pipeline".into(), name(&stages.pipeline));
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    /// The body for a new or changed record: `email`/`phone` become Pipedrive's lists, custom
    /// fields (by name or key) go under `custom_fields` with option labels as their ids, labels
    /// as label ids, an organization's address as its `value`, a note's time in v1's
    /// `YYYY-MM-DD HH:MM:SS`, ids and numbers as numbers. A value the account cannot take (an
    /// option it does not have) refuses this record alone.
    fn body(
        &self,
        catalog: &Catalog,
        object: &str,
        values: &[(&str, &Value)],
        marker: Option<(&str, &str)>,
    ) -> std::result::Result<Json, String> {
        let named = |f: &str| values.iter().find(|(n, _)| *n == f).and_then(|(_, v)| v.as_deref());
        let mut body = Map::new();
        let mut custom = Map::new();
        let number = |v: &str| v.trim().parse::<f64>().map(Json::from).unwrap_or_else(|_| json!(v));
        let integer = |v: &str| v.trim().parse::<i64>().map(Json::from).unwrap_or_else(|_| json!(v));
        for (f, v) in values {
            let Some(v) = v else { continue };
            let field = catalog.find(f)?.filter(|field| field.custom());
            if let Some(field) = field {
                let value = match field.kind.as_str() {
                    "enum" => match field.option_ids(v)?.as_slice() {
                        [one] => one.clone(),
                        [] => continue,
                        _ => return Err(format!("'{}' takes one option, not '{v}'", field.name)),
                    },
                    "set" => match field.option_ids(v)? {
                        ids if ids.is_empty() => continue,
                        ids => Json::Array(ids),
                    },
                    "double" | "monetary" => number(v),
                    "int" | "org" | "people" | "user" => integer(v),
                    _ => json!(v),
                };
                custom.insert(field.key.clone(), value);
                continue;
            }
            match *f {
                "email" | "phone" => {
                    body.insert(format!("{f}s"), json!([{ "value": v, "primary": true, "label": "work" }]));
                }
                "label_ids" => {
                    let ids = match catalog.by_key("label_ids").or_else(|| catalog.by_key("label")) {
                        Some(labels) => labels.option_ids(v)?,
                        None => v.split([';', ',']).map(str::trim).filter(|x| !x.is_empty()).map(integer).collect(),
                    };
                    body.insert("label_ids".into(), Json::Array(ids));
                }
                "stage" | "pipeline" if object == "deals" => {
                    let stages = self.stages.get().ok_or("the account's stages were not read")?;
                    let pipeline = named("pipeline_id").or(named("pipeline"));
                    let (key, id) = match *f {
                        "stage" => ("stage_id", stages.stage_id(v, pipeline)?),
                        _ => ("pipeline_id", stages.pipeline_id(v)?),
                    };
                    body.insert(key.into(), integer(&id));
                }
                "address" if object == "organizations" => {
                    body.insert("address".into(), json!({ "value": v }));
                }
                "add_time" if object == "notes" => {
                    let at = crate::compare::instant(v).ok_or_else(|| format!("'{v}' is not a date and time"))?;
                    body.insert("add_time".into(), json!(at.format("%Y-%m-%d %H:%M:%S").to_string()));
                }
                "value" | "probability" => {
                    body.insert(f.to_string(), number(v));
                }
                f if f.ends_with("_id")
                    || matches!(f, "visible_to" | "industry" | "annual_revenue" | "employee_count") =>
                {
                    body.insert(f.to_string(), integer(v));
                }
                f => {
                    body.insert(f.to_string(), json!(v));
                }
            }
        }
        if let Some((key, sid)) = marker {
            custom.insert(key.to_string(), json!(sid));
        }
        // Notes have no custom fields in Pipedrive.
        if !custom.is_empty() && object != "notes" {
            body.insert("custom_fields".into(), Json::Object(custom));
        }
        Ok(Json::Object(body))
    }

    /// Many notes by id, from the list of notes in id order: it starts at the page known to come
    /// before the first id wanted and stops after the last one. Should notes have been added or
    /// deleted before that page since it was seen, it starts over from the beginning once.
    async fn read_notes_listed(&self, ids: &[String]) -> Result<Vec<Json>> {
        let wanted: std::collections::BTreeSet<u64> = ids.iter().filter_map(|i| i.trim().parse().ok()).collect();
        let (Some(&first), Some(&last)) = (wanted.first(), wanted.last()) else { return Ok(Vec::new()) };
        let pages = || self.note_pages.lock().map_err(|_| eyre!("note pages poisoned"));
        let mut start = pages()?.iter().filter(|(_, id)| *id <= first).map(|(at, _)| *at).max().unwrap_or(0);
        let mut out = Vec::new();
        let mut started_over = start == 0;
        loop {
            let sort = [("sort", "id ASC".to_string())];
            let (page, next) = self.page_where("notes", &start.to_string(), &sort).await?;
            let page_ids: Vec<u64> = page.iter().filter_map(|n| n["id"].as_u64()).collect();
            if let Some(&head) = page_ids.first() {
                {
                    let mut known = pages()?;
                    known.retain(|(at, _)| *at != start);
                    known.push((start, head));
                }
                if head > first && !started_over {
                    // The list moved since this page was seen: from the beginning.
                    pages()?.clear();
                    (start, started_over) = (0, true);
                    continue;
                }
            }
            out.extend(page.into_iter().filter(|n| n["id"].as_u64().is_some_and(|id| wanted.contains(&id))));
            match next.and_then(|n| n.parse::<u64>().ok()) {
                Some(n) if page_ids.last().is_some_and(|&id| id < last) => start = n,
                _ => return Ok(out),
            }
        }
    }

    /// Notes as written, found among the notes of their parent (a deal, else a person, else an
    /// organization) with the same content; each note found once. A note with no parent or no
    /// content cannot be told apart: not found.
    async fn find_notes(&self, wanted: &[(String, Json)], taken: &HashSet<String>) -> Result<Vec<Option<String>>> {
        let content = |v: &Json| text(&v["content"]).map(|c| note_words(&c));
        // A note's time tells apart two notes of one parent that say the same thing.
        let time = |v: &Json| text(&v["add_time"]).and_then(|t| crate::compare::instant(&t));
        type Found = (String, String, Option<chrono::DateTime<chrono::Utc>>);
        let mut by_parent: IndexMap<(&str, String), Vec<Found>> = IndexMap::new();
        let mut out = vec![None; wanted.len()];
        for (_, w) in wanted {
            let Some(key) = note_parent(w) else { continue };
            if by_parent.contains_key(&key) {
                continue;
            }
            let mut notes = Vec::new();
            let mut cursor = String::new();
            loop {
                let (page, next) = self.page_where("notes", &cursor, &[(key.0, key.1.clone())]).await?;
                let free = page.iter().filter_map(|n| Some((text(&n["id"])?, content(n)?, time(n))));
                notes.extend(free.filter(|(id, _, _)| !taken.contains(id)));
                match next {
                    Some(n) => cursor = n,
                    None => break,
                }
            }
            by_parent.insert(key, notes);
        }
        for (i, (_, w)) in wanted.iter().enumerate() {
            let (Some(key), Some(c)) = (note_parent(w), content(w)) else { continue };
            let Some(notes) = by_parent.get_mut(&key) else { continue };
            let at = time(w);
            if let Some(found) = notes.iter().position(|(_, n, t)| *n == c && (at.is_none() || *t == at)) {
                out[i] = Some(notes.remove(found).0);
            }
        }
        Ok(out)
    }

    /// Before each write: when the account says fewer than `daily_reserve` are left today, the
    /// run stops here, resumably — a batch of 500 creates costs thousands of tokens, so a check
    /// between batches alone would spend the reserve and run into the daily 429.
    fn check_reserve(&self, spending: u64) -> Result<()> {
        match self.client.stats.daily_left() {
            Some(left) if left < self.reserve + spending => Err(eyre!(CallError::Spent(format!(
                "stopped before Pipedrive's daily allowance ran out: it says {left} are left today, fewer than \
                 the {} kept in reserve (daily_reserve). The unfinished batch is not lost — `cutover run --resume` \
                 continues from it once the allowance resets (midnight UTC)",
                self.reserve
            )))),
            _ => Ok(()),
        }
    }

    /// Sends one create: its answer, or that the answer was lost (the write may have been
    /// carried out) and when it was sent.
    async fn send_create(&self, object: &str, body: &Json) -> Result<Sent> {
        let e = entity(object)?;
        let c = if e.v2 { cost::V2_CREATE } else { cost::NOTES_CREATE };
        let sent_at = chrono::Utc::now();
        match self.client.send(Call::post(e.path, body.clone()).cost(c).creating()).await {
            Ok(reply) if reply.ok() => Ok(Sent::Answered(
                text(&reply.body["data"]["id"]).ok_or_else(|| "Pipedrive answered no id".to_string()),
            )),
            Ok(reply) => Ok(Sent::Answered(Err(format!("Pipedrive {}", reply.message())))),
            Err(CallError::Unknown(why)) => Ok(Sent::Unsure { why, sent_at }),
            Err(CallError::Fatal(why)) => Err(eyre!(why)),
            Err(spent @ CallError::Spent(_)) => Err(eyre!(spent)),
        }
    }

    /// A batch's creates whose answers were lost, settled together: after a pause for a write
    /// still under way, one consistent read looks for all of them; the ones found are adopted
    /// (never a record another create of the batch holds), the ones absent are sent again — up
    /// to six rounds.
    async fn settle(&self, object: &str, mut unsure: Vec<Unsure>, out: &mut [Option<WriteResult>]) -> Result<()> {
        for round in 1..=6u64 {
            if unsure.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200 * round)).await;
            let taken: HashSet<String> = out.iter().flatten().filter_map(|r| r.as_ref().ok().cloned()).collect();
            let found = self.find_sent(object, &unsure, &taken).await?;
            let mut again = Vec::new();
            for (u, look) in unsure.into_iter().zip(found) {
                match look {
                    Lookup::Found(id) => out[u.at] = Some(Ok(id)),
                    Lookup::Unknowable => {
                        return Err(eyre!(
                            "{}: Pipedrive may have created this {object} record and Cutover cannot look it up — stopped rather than risk a duplicate",
                            u.why
                        ));
                    }
                    Lookup::Absent => match self.send_create(object, &u.body).await? {
                        Sent::Answered(r) => out[u.at] = Some(r),
                        Sent::Unsure { why, sent_at } => again.push(Unsure { why, sent_at, ..u }),
                    },
                }
            }
            unsure = again;
        }
        match unsure.len() {
            0 => Ok(()),
            n => Err(eyre!("Pipedrive did not confirm creating {n} {object} record(s) after 6 attempts")),
        }
    }

    /// Whether creates whose answers were lost were carried out, by a consistent read — never
    /// the search index, which lags behind writes: records with their markers among those of
    /// their object updated since just before the first was sent; notes among their parents'
    /// notes, by content. `taken`: records already confirmed as others'.
    async fn find_sent(&self, object: &str, unsure: &[Unsure], taken: &HashSet<String>) -> Result<Vec<Lookup>> {
        if object == "notes" {
            let wanted: Vec<(String, Json)> = unsure.iter().map(|u| (String::new(), u.body.clone())).collect();
            let found = self.find_notes(&wanted, taken).await?;
            return Ok(found
                .into_iter()
                .zip(unsure)
                .map(|(found, u)| match found {
                    Some(id) => Lookup::Found(id),
                    None if note_parent(&u.body).is_some() && text(&u.body["content"]).is_some() => Lookup::Absent,
                    None => Lookup::Unknowable,
                })
                .collect());
        }
        let Some(key) = self.marker_key(object).await? else {
            return Ok(unsure.iter().map(|_| Lookup::Unknowable).collect());
        };
        let Some(first) = unsure.iter().map(|u| u.sent_at).min() else { return Ok(Vec::new()) };
        // A minute of leeway for the two clocks.
        let since = (first - chrono::Duration::seconds(60)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let mut marked: HashMap<String, String> = HashMap::new();
        let mut cursor = String::new();
        loop {
            let (page, next) = self.page_where(object, &cursor, &[("updated_since", since.clone())]).await?;
            for r in &page {
                if let (Some(sid), Some(id)) = (marker_of(r, &key), text(&r["id"])) {
                    marked.entry(sid).or_insert(id);
                }
            }
            match next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        Ok(unsure
            .iter()
            .map(|u| match u.source_id.as_deref() {
                None => Lookup::Unknowable,
                Some(sid) => marked.get(sid).cloned().map_or(Lookup::Absent, Lookup::Found),
            })
            .collect())
    }
}

/// A create sent whose answer was lost.
struct Unsure {
    /// Its place in the batch.
    at: usize,
    body: Json,
    source_id: Option<String>,
    sent_at: chrono::DateTime<chrono::Utc>,
    why: String,
}

/// What sending a create came to.
enum Sent {
    Answered(WriteResult),
    Unsure { why: String, sent_at: chrono::DateTime<chrono::Utc> },
}

/// The parent a note hangs on, for looking it up: a deal, else a person, else an organization.
fn note_parent(note: &Json) -> Option<(&'static str, String)> {
    ["deal_id", "person_id", "org_id"].into_iter().find_map(|f| text(&note[f]).map(|id| (f, id)))
}

#[async_trait]
impl Source for Pipedrive {
    fn describe(&self) -> String {
        "Pipedrive".into()
    }

    async fn fields(&self, object: &str) -> Result<FieldNames> {
        if let Some(f) = self.fields.lock().map_err(|_| eyre!("fields cache poisoned"))?.get(object) {
            return Ok(f.clone());
        }
        // The account's fields (`*Fields`) tell which there are, whether or not a record holds a
        // value yet; the first page tells how records spell them (a primary `email` beside the
        // `emails`, `owner_name` beside `owner_id`, an address's parts).
        let catalog = self.catalog(object).await?;
        let (records, _) = self.page(object, "").await?;
        let mut names: IndexMap<String, ()> = IndexMap::new();
        names.insert("id".into(), ());
        for r in &records {
            for k in self.flatten(object, r).await?.into_keys() {
                // A custom field goes by its name; its key is there underneath.
                if !(is_custom_key(&k) && catalog.by_key(&k).is_some_and(|f| catalog.public_name(f) != k)) {
                    names.insert(k, ());
                }
            }
        }
        for f in catalog.customs() {
            names.insert(catalog.public_name(f), ());
        }

        let names: FieldNames = names.into_keys().collect::<Vec<_>>().into();
        self.fields.lock().map_err(|_| eyre!("fields cache poisoned"))?.insert(object.to_string(), names.clone());
        Ok(names)
    }

    async fn count(&self, object: &str) -> Result<u64> {
        // Pipedrive gives no totals: count by paging.
        let (mut n, mut cursor) = (0u64, String::new());
        loop {
            let (records, next) = self.page(object, &cursor).await?;
            n += records.len() as u64;
            match next {
                Some(c) => cursor = c,
                None => return Ok(n),
            }
        }
    }

    async fn read_batch(&self, object: &str, id_field: &str, cursor: &Cursor, max: usize) -> Result<Batch> {
        let names = Source::fields(self, object).await?;
        let mut records = Vec::new();
        let mut at = cursor.0.clone();
        loop {
            let (page, next) = self.page(object, &at).await?;
            for r in &page {
                let flat = self.flatten(object, r).await?;
                let values: Vec<Value> = names.iter().map(|n| flat.get(n).filter(|v| !v.is_empty()).cloned()).collect();
                let id = flat.get("id").cloned().unwrap_or_default();
                let origin = format!("Pipedrive {object} {id}");
                match flat.get(id_field).filter(|v| !v.is_empty()) {
                    Some(sid) => {
                        records.push(Extracted::Record(SourceRecord { source_id: sid.clone(), origin, values }))
                    }
                    None => records.push(Extracted::Malformed {
                        source_id: format!("pipedrive:{id}"),
                        message: format!("{origin}: the id field '{id_field}' is empty"),
                        origin,
                    }),
                }
            }
            match next {
                Some(c) if records.len() < max => at = c,
                Some(c) => return Ok(Batch { records, next: Cursor(c), done: false }),
                None => return Ok(Batch { records, next: Cursor(at), done: true }),
            }
        }
    }
}

#[async_trait]
impl Destination for Pipedrive {
    fn describe(&self) -> String {
        "Pipedrive".into()
    }

    fn daily_requests_left(&self) -> Option<u64> {
        self.client.stats.daily_left()
    }

    /// By listing every record, as Pipedrive gives no totals: 10 tokens per 500 records (notes
    /// 20). Reconcile's count witness needs it — a record created twice shows only there — and a
    /// first run takes it once per object, before it writes.
    async fn record_count(&self, object: &str) -> Result<Option<u64>> {
        Source::count(self, object).await.map(Some)
    }

    /// Tokens at the costs the API documents: the writes, and what the preview read (a run
    /// reads the same); days at `daily_tokens`, and at the fair use of ~10,000 writes a day.
    fn cost_of(&self, writes: &[PlannedWrites]) -> Option<Vec<String>> {
        let (mut tokens, mut creates, mut updates) = (0u64, 0u64, 0u64);
        for w in writes {
            let e = entity(&w.object).ok()?;
            let (c, u) =
                if e.v2 { (cost::V2_CREATE, cost::V2_UPDATE) } else { (cost::NOTES_CREATE, cost::NOTES_UPDATE) };
            tokens += w.creates * u64::from(c) + w.updates * u64::from(u);
            (creates, updates) = (creates + w.creates, updates + w.updates);
        }
        let read = self.tokens_spent();
        let total = tokens + read;
        let days = |n: u64, per: u64| n.div_ceil(per.max(1)).max(1);
        let (by_tokens, by_writes) = (days(total, self.budget), days(creates + updates, WRITES_A_DAY));
        let plural = |n: u64| if n == 1 { "day" } else { "days" };
        Some(vec![
            format!(
                "Pipedrive would charge about {} tokens: {} to write ({} creates, {} updates), {} to read as this preview read.",
                thousands(total),
                thousands(tokens),
                thousands(creates),
                thousands(updates),
                thousands(read)
            ),
            format!(
                "At daily_tokens = {}: {by_tokens} {}; Pipedrive's fair use of about {} writes a day: {by_writes} {}. \
                 A run stops before the day's budget runs out; `cutover run --resume` goes on the next day.",
                self.budget,
                plural(by_tokens),
                thousands(WRITES_A_DAY),
                plural(by_writes)
            ),
        ])
    }

    /// The fields API v2 documents as writable for the object, then the account's custom fields
    /// by name (and by key); not the marker field, which Cutover writes itself.
    async fn schema(&self, object: &str) -> Result<DestSchema> {
        entity(object)?;
        let mut fields = standard_fields(object);
        if object == "deals" {
            let stages = self.stage_names().await?;
            let names = |m: &HashMap<String, (String, String)>| {
                let mut n: Vec<String> = m.values().map(|(name, _)| name.clone()).collect();
                n.sort();
                n.dedup();
                n
            };
            for f in &mut fields {
                match f.name.as_str() {
                    "stage_id" => f.picklist = Some(stages.stage.keys().cloned().collect()),
                    "pipeline_id" => f.picklist = Some(stages.pipeline.keys().cloned().collect()),
                    "stage" => f.picklist = Some(names(&stages.stage)),
                    "pipeline" => f.picklist = Some(names(&stages.pipeline)),
                    _ => {}
                }
            }
        }
        let catalog = self.catalog(object).await?;
        // Labels by name, several joined with `;`.
        if let Some(labels) = catalog.by_key("label_ids").or_else(|| catalog.by_key("label"))
            && let Some(field) = fields.iter_mut().find(|f| f.name == "label_ids")
        {
            field.picklist = Some(labels.options.iter().map(|(_, l)| l.clone()).collect());
            field.multiple = true;
        }
        let marker = self.marker_key(object).await?;
        for f in catalog.customs().filter(|f| Some(&f.key) != marker.as_ref()) {
            let (ty, max_length, picklist) = f.dest_type();
            let multiple = f.kind == "set";
            let field = DestField { name: catalog.public_name(f), ty, required: false, max_length, picklist, multiple };
            if field.name != f.key {
                fields.push(DestField { name: f.key.clone(), ..field.clone() });
            }
            fields.push(field);
        }
        Ok(DestSchema { object: object.to_string(), id_field: "id".into(), fields })
    }

    async fn users(&self) -> Result<Vec<DestUser>> {
        Ok(self
            .users_json()
            .await?
            .iter()
            .filter(|u| u["active_flag"].as_bool() != Some(false))
            .map(|u| DestUser {
                id: text(&u["id"]).unwrap_or_default(),
                name: text(&u["name"]).unwrap_or_default(),
                email: text(&u["email"]),
            })
            .collect())
    }

    async fn scan(
        &self,
        object: &str,
        fields: &[String],
        after: &Cursor,
        max: usize,
    ) -> Result<(Vec<(String, Vec<Value>)>, Cursor, bool)> {
        let mut out = Vec::new();
        let mut at = after.0.clone();
        loop {
            let (page, next) = self.page(object, &at).await?;
            for r in &page {
                let flat = self.flatten(object, r).await?;
                let id = flat.get("id").cloned().unwrap_or_default();
                out.push((id, fields.iter().map(|f| flat.get(f).filter(|v| !v.is_empty()).cloned()).collect()));
            }
            match next {
                Some(c) if out.len() < max => at = c,
                Some(c) => return Ok((out, Cursor(c), false)),
                None => return Ok((out, Cursor(at), true)),
            }
        }
    }

    async fn read(&self, object: &str, ids: &[String], fields: &[String]) -> Result<HashMap<String, Vec<Value>>> {
        let e = entity(object)?;
        let mut found: Vec<Json> = Vec::with_capacity(ids.len());
        if e.v2 {
            // API v2 lists take up to 100 ids: one call (10 tokens) instead of 100 (100 tokens).
            for chunk in ids.chunks(100) {
                let call = Call::get(e.path).query("ids", chunk.join(",")).query("limit", "100").cost(cost::V2_LIST);
                let reply = self.send(call).await?;
                if !reply.ok() {
                    return Err(eyre!("reading Pipedrive {object}: {}", reply.message()));
                }
                found.extend(reply.body["data"].as_array().cloned().unwrap_or_default());
            }
        } else if ids.len() > FEW_NOTES {
            found = self.read_notes_listed(ids).await?;
        } else {
            for id in ids {
                let path = format!("{}/{id}", e.path);
                let reply = self.send(Call::get(&path).cost(cost::NOTES_GET)).await?;
                if reply.status.as_u16() == 404 || reply.body["data"].is_null() {
                    continue;
                }
                if !reply.ok() {
                    return Err(eyre!("reading Pipedrive {object} {id}: {}", reply.message()));
                }
                found.push(reply.body["data"].clone());
            }
        }
        let mut out = HashMap::with_capacity(found.len());
        for record in &found {
            let flat = self.flatten(object, record).await?;
            let Some(id) = flat.get("id").cloned() else { continue };
            out.insert(id, fields.iter().map(|f| flat.get(f).filter(|v| !v.is_empty()).cloned()).collect());
        }
        Ok(out)
    }

    async fn create(&self, object: &str, records: NewRecords) -> Result<Vec<WriteResult>> {
        let catalog = self.catalog(object).await?;
        if object == "deals" {
            self.stage_names().await?;
        }
        let marker = self.marker_key(object).await?;
        let mut out: Vec<Option<WriteResult>> = vec![None; records.rows.len()];
        let mut unsure = Vec::new();
        let mut stopped = None;
        // Records an interrupted batch can be found again by (a marker, a note's parent) stop
        // before the call that would go past the reserve; others before the batch that would.
        let findable = marker.is_some() || object == "notes";
        if !findable {
            let cost = u64::from(if entity(object)?.v2 { cost::V2_CREATE } else { cost::NOTES_CREATE });
            self.check_reserve(cost * records.rows.len() as u64)?;
        }
        for (i, row) in records.rows.iter().enumerate() {
            let values: Vec<(&str, &Value)> = records.fields.iter().map(String::as_str).zip(row.iter()).collect();
            let sid = records.marks.as_ref().map(|m| m.source_ids[i].as_str()).filter(|_| marker.is_some());
            let body = match self.body(&catalog, object, &values, marker.as_deref().zip(sid)) {
                Ok(body) => body,
                Err(refused) => {
                    out[i] = Some(Err(format!("Pipedrive cannot take it: {refused}")));
                    continue;
                }
            };
            if findable && let Err(e) = self.check_reserve(0) {
                stopped = Some(e);
                break;
            }
            match self.send_create(object, &body).await {
                Ok(Sent::Answered(r)) => out[i] = Some(r),
                Ok(Sent::Unsure { why, sent_at }) => {
                    unsure.push(Unsure { at: i, body, source_id: sid.map(String::from), sent_at, why })
                }
                Err(e) => {
                    stopped = Some(e);
                    break;
                }
            }
        }
        let pending = !unsure.is_empty();
        if stopped.is_none()
            && let Err(e) = self.settle(object, unsure, &mut out).await
        {
            stopped = Some(e);
        }
        match stopped {
            None => Ok(out.into_iter().map(|r| r.unwrap_or_else(|| Err("not written".into()))).collect()),
            // The batch stops uncommitted, none of its records failed: its creates are
            // journaled, and the next attempt finds the ones Pipedrive carried out (by marker, a
            // note by parent and content). Without a marker to find them by, the confirmed are
            // reported and the rest of the batch is not written — unless an answer was lost.
            Some(e) if pending || marker.is_some() || object == "notes" || out.iter().all(Option::is_none) => {
                tracing::warn!(object, "Pipedrive stopped a batch: {e:#}");
                Err(e)
            }
            Some(e) => {
                tracing::warn!(object, "Pipedrive stopped answering: {e:#}");
                Ok(out.into_iter().map(|r| r.unwrap_or_else(|| Err(format!("not written: {e}")))).collect())
            }
        }
    }

    async fn update(&self, object: &str, changes: &[Change]) -> Result<Vec<WriteResult>> {
        let e = entity(object)?;
        let catalog = self.catalog(object).await?;
        if object == "deals" {
            self.stage_names().await?;
        }
        let mut out = Vec::with_capacity(changes.len());
        for c in changes {
            let path = format!("{}/{}", e.path, c.dest_id);
            let values: Vec<(&str, &Value)> = c.values.iter().map(|(f, v)| (f.as_str(), v)).collect();
            let (method, cost) =
                if e.v2 { (Method::PATCH, cost::V2_UPDATE) } else { (Method::PUT, cost::NOTES_UPDATE) };
            let body = match self.body(&catalog, object, &values, None) {
                Ok(body) => body,
                Err(refused) => {
                    out.push(Err(format!("Pipedrive cannot take it: {refused}")));
                    continue;
                }
            };
            self.check_reserve(0)?;
            let reply = self.send(Call::post(&path, body).with(method).cost(cost)).await?;
            out.push(if reply.ok() { Ok(c.dest_id.clone()) } else { Err(format!("Pipedrive {}", reply.message())) });
        }
        Ok(out)
    }

    async fn delete(&self, object: &str, ids: &[String]) -> Result<Vec<WriteResult>> {
        let e = entity(object)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let path = format!("{}/{id}", e.path);
            let cost = if e.v2 { cost::V2_DELETE } else { cost::NOTES_DELETE };
            let reply = self.send(Call::get(&path).with(Method::DELETE).cost(cost)).await?;
            out.push(if reply.ok() { Ok(id.clone()) } else { Err(format!("Pipedrive {}", reply.message())) });
        }
        Ok(out)
    }

    /// Notes, which carry no marker, among their parent's notes by content. Persons,
    /// organizations and deals are left to the listing of their markers (`marked`): a consistent
    /// read, where search lags behind a resume that follows the crash closely.
    async fn find_created(&self, object: &str, wanted: &[(String, Json)]) -> Result<Option<Vec<Option<String>>>> {
        if object == "notes" {
            return self.find_notes(wanted, &HashSet::new()).await.map(Some);
        }
        Ok(None)
    }

    async fn marked(&self, _namespace: &str, object: &str) -> Result<Vec<(String, String)>> {
        let Some(marker) = self.marker_key(object).await? else { return Ok(Vec::new()) };
        let (mut out, mut cursor) = (Vec::new(), String::new());
        loop {
            let (page, next) = self.page(object, &cursor).await?;
            for r in &page {
                if let (Some(sid), Some(id)) = (marker_of(r, &marker), text(&r["id"])) {
                    out.push((sid, id));
                }
            }
            match next {
                Some(c) => cursor = c,
                None => return Ok(out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKER: &str = "abcdef0123456789abcdef0123456789abcdef01";
    const INDUSTRY: &str = "0123456789abcdef0123456789abcdef01234567";

    fn pipedrive() -> Pipedrive {
        Pipedrive {
            client: Client::new("t", "http://x", (Secret::new("t"), Auth::Bearer), &[], None).expect("test value"),
            budget: 30_000,
            reserve: 500,
            markers: Markers::default(),
            users: OnceCell::new(),
            stages: OnceCell::new(),
            fields: Mutex::default(),
            catalogs: Mutex::default(),
            note_pages: Mutex::default(),
        }
    }

    fn catalog() -> Catalog {
        Catalog::from_json(&[
            json!({ "key": "name", "name": "Name", "field_type": "varchar" }),
            json!({ "key": "label_ids", "name": "Labels", "field_type": "set",
                    "options": [{ "id": 5, "label": "Customer" }, { "id": 6, "label": "Hot lead" }] }),
            json!({ "key": INDUSTRY, "name": "Industry", "field_type": "enum",
                    "options": [{ "id": 110, "label": "Retail" }, { "id": 111, "label": "Media" }] }),
            json!({ "key": MARKER, "name": "Cutover source id", "field_type": "varchar" }),
        ])
    }

    #[test]
    fn values_become_pipedrives_shapes() {
        let (name, email, org, value) =
            (Some("Ann".into()), Some("a@x.io".into()), Some("7".into()), Some("12.50".into()));
        let (industry, labels) = (Some("media".into()), Some("Hot lead;Customer".into()));
        let values = [
            ("name", &name),
            ("email", &email),
            ("org_id", &org),
            ("value", &value),
            ("Industry", &industry),
            ("label_ids", &labels),
        ];
        let body = pipedrive().body(&catalog(), "persons", &values, Some((MARKER, "p-1"))).expect("takes it");
        assert_eq!(
            body,
            json!({ "name": "Ann", "emails": [{ "value": "a@x.io", "primary": true, "label": "work" }], "org_id": 7,
                    "value": 12.5, "label_ids": [6, 5], "custom_fields": { INDUSTRY: 111, MARKER: "p-1" } })
        );
    }

    #[test]
    fn a_stage_by_name_is_found_in_its_pipeline() {
        let pair = |n: &str, p: &str| (n.to_string(), p.to_string());
        let stages = Stages {
            stage: [("1", pair("Qualified", "1")), ("2", pair("Won", "1")), ("7", pair("Qualified", "2"))]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            pipeline: [("1", pair("Sales", "")), ("2", pair("Renewals", ""))]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        };
        assert_eq!(stages.stage_id("won", None), Ok("2".into()));
        let twice = stages.stage_id("Qualified", None).expect_err("in two pipelines");
        assert!(twice.contains("2 pipelines (Sales, Renewals)") && twice.contains("map pipeline"), "{twice}");
        assert_eq!(stages.stage_id("Qualified", Some("renewals")), Ok("7".into()));
        assert_eq!(stages.stage_id("Qualified", Some("1")), Ok("1".into()));
        assert!(stages.stage_id("Lost", None).is_err());
        assert!(
            stages.stage_id("Won", Some("Nope")).expect_err("no such pipeline").contains("'Nope' is not a pipeline")
        );
    }

    #[test]
    fn a_note_is_known_by_its_words_however_the_account_stored_them() {
        let sent = "Renewal signed \"today\"\r\nNext: call IT &  legal";
        for stored in [
            "Renewal signed \"today\"\nNext: call IT &  legal",
            "<p>Renewal signed &quot;today&quot;<br>Next: call IT &amp; legal</p>",
            " Renewal  signed \"today\"\n\nNext: call IT & legal ",
        ] {
            assert_eq!(note_words(sent), note_words(stored), "{stored}");
        }
        assert_ne!(note_words(sent), note_words("Renewal signed \"today\" Next: call HR & legal"));
    }

    #[test]
    fn a_value_the_account_cannot_take_refuses_its_record_and_a_note_gets_v1s_time() {
        let p = pipedrive();
        let unknown = Some("Farming".into());
        let refused = p.body(&catalog(), "organizations", &[("Industry", &unknown)], None).expect_err("no option");
        assert!(refused.contains("'Farming'") && refused.contains("Retail"), "{refused}");
        let when = Some("2024-03-05T16:05:00+02:00".into());
        let note = p.body(&Catalog::default(), "notes", &[("add_time", &when)], None).expect("takes it");
        assert_eq!(note, json!({ "add_time": "2024-03-05 14:05:00" }));
    }
}
