//! An in-process Pipedrive for the connector's contract tests, and the official OpenAPI files
//! (tests/specs/pipedrive, Pipedrive's published v1 and v2 descriptions, unchanged) to check every
//! request against: the path and method exist, the query parameters are declared, the JSON body
//! validates against the operation's schema, and each call's token cost is the `x-token-cost`
//! the files give it. The server enforces the API token header, the burst limit per 2 s and the
//! daily token budget (429s), pages with v2 cursors and v1 offsets, and keeps custom fields.
#![allow(dead_code, clippy::result_large_err)]

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "pd-test-token";
/// The name of the custom field on persons, organizations and deals holding Cutover's markers.
pub const MARKER_NAME: &str = "Cutover source id";

/// Pipedrive's OpenAPI files, parsed once.
pub struct Spec {
    v1: Value,
    v2: Value,
}

pub fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/specs/pipedrive");
        let load = |name: &str| -> Value {
            let text = std::fs::read_to_string(dir.join(name)).expect("spec file");
            serde_yaml_ng::from_str(&text).expect("spec YAML")
        };
        Spec { v1: load("v1.yaml"), v2: load("v2.yaml") }
    })
}

impl Spec {
    /// The operation for a request, and its path template: `/api/v2/persons/7` → `/persons/{id}`.
    pub fn operation(&self, method: &str, path: &str) -> Option<(&Value, String)> {
        let (doc, rest) = if let Some(r) = path.strip_prefix("/api/v2") {
            (&self.v2, r)
        } else {
            (&self.v1, path.strip_prefix("/v1")?)
        };
        let segments: Vec<&str> = rest.split('/').collect();
        let paths = doc["paths"].as_object()?;
        let (template, item) = paths.iter().find(|(t, _)| {
            let ts: Vec<&str> = t.split('/').collect();
            ts.len() == segments.len() && ts.iter().zip(&segments).all(|(t, s)| t.starts_with('{') || t == s)
        })?;
        Some((item.get(method.to_ascii_lowercase())?, template.clone()))
    }

    pub fn cost(&self, method: &str, path: &str) -> Option<u64> {
        self.operation(method, path)?.0["x-token-cost"].as_u64()
    }

    /// Problems with a request, against its operation in the spec.
    pub fn check(&self, method: &str, path: &str, query: &[(String, String)], body: &Value) -> Vec<String> {
        let Some((op, template)) = self.operation(method, path) else {
            return vec![format!("{method} {path}: no such path and method in Pipedrive's OpenAPI files")];
        };
        let mut problems = Vec::new();
        let params: Vec<&Value> = op["parameters"].as_array().into_iter().flatten().collect();
        for (k, v) in query {
            match params.iter().find(|p| p["in"] == "query" && p["name"] == k.as_str()) {
                None => problems.push(format!("{method} {template}: query parameter '{k}' is not declared")),
                Some(p) => {
                    let allowed = p["schema"]["enum"].as_array();
                    if let Some(allowed) =
                        allowed.filter(|a| !v.split(',').all(|x| a.iter().any(|y| y.as_str() == Some(x))))
                    {
                        problems.push(format!("{method} {template}: {k}={v} is not one of {allowed:?}"));
                    }
                }
            }
        }
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        if !body.is_null() {
            if schema.is_null() {
                problems.push(format!("{method} {template}: sends a JSON body the operation does not take"));
            } else {
                match jsonschema::validator_for(schema) {
                    Err(e) => problems.push(format!("{method} {template}: schema does not compile: {e}")),
                    Ok(v) => {
                        for e in v.iter_errors(body) {
                            problems.push(format!("{method} {template}: body {e} at {}", e.instance_path()));
                        }
                    }
                }
                // Unknown top-level keys (besides custom fields) are not in the schema.
                if let (Some(props), Some(sent)) = (schema["properties"].as_object(), body.as_object()) {
                    for k in sent.keys() {
                        if !props.contains_key(k) {
                            problems.push(format!("{method} {template}: body key '{k}' is not in the schema"));
                        }
                    }
                }
            }
        }
        problems
    }
}

#[derive(Debug, Clone)]
pub struct Rules {
    pub per_2s: usize,
    pub daily_tokens: u64,
    /// Share of creates carried out whose answer is lost (a 502 after the write).
    pub lose_rate: f64,
    /// How long a new record takes to reach the search index (Pipedrive's search is eventually
    /// consistent; lists and reads by id are not).
    pub search_lag: Duration,
    pub seed: u64,
    /// What a write naming a custom-field key the entity does not have gets. Pipedrive's
    /// documentation does not say; accounts have been seen to refuse it and to drop it silently.
    pub unknown_custom: Unknown,
    /// The most stages and pipelines one page gives (the docs: 100 by default, 500 at most).
    pub stage_page: usize,
    /// Notes kept as HTML, as Pipedrive's editor keeps them: line breaks become `<br>`, `&`
    /// becomes `&amp;`. The API documentation does not say what it does to a note sent as plain
    /// text; off, a note is kept as sent.
    pub notes_as_html: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unknown {
    Refuse,
    Drop,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            per_2s: 1_000_000,
            daily_tokens: u64::MAX,
            lose_rate: 0.0,
            search_lag: Duration::ZERO,
            seed: 7,
            unknown_custom: Unknown::Refuse,
            stage_page: 500,
            notes_as_html: false,
        }
    }
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Value,
}

#[derive(Default)]
pub struct State {
    pub rules: Rules,
    pub collections: BTreeMap<String, BTreeMap<u64, Value>>,
    pub users: Vec<Value>,
    pub stages: Vec<Value>,
    pub pipelines: Vec<Value>,
    /// Each entity's fields as its `*Fields` endpoint describes them (`persons` → personFields).
    pub fields: BTreeMap<String, Vec<Value>>,
    pub next_id: u64,
    pub requests: Vec<Request>,
    /// Tokens spent, at the spec's costs.
    pub spent: u64,
    pub throttled: u64,
    /// Answers lost after a create was carried out.
    pub lost: u64,
    window: VecDeque<Instant>,
    /// When each new record reaches the search index.
    searchable_at: std::collections::HashMap<(String, u64), Instant>,
    rng: u64,
}

impl State {
    fn random(&mut self) -> f64 {
        let mut x = self.rng | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Now, as Pipedrive v2 writes times.
fn now_text() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A custom field's key as an account generates it: 40 hexadecimal characters, different for
/// each entity even where two fields share a name.
pub fn custom_key(entity: &str, name: &str) -> String {
    use std::hash::{Hash, Hasher};
    let part = |salt: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (salt, entity, name).hash(&mut h);
        h.finish()
    };
    format!("{:016x}{:016x}{:08x}", part(1), part(2), part(3) as u32)
}

fn field(key: &str, name: &str, kind: &str) -> Value {
    json!({ "id": null, "key": key, "name": name, "field_type": kind, "active_flag": true,
            "edit_flag": is_custom(key), "mandatory_flag": false, "options": null })
}

pub fn is_custom(key: &str) -> bool {
    key.len() == 40 && key.chars().all(|c| c.is_ascii_hexdigit())
}

/// The standard fields an account describes for each entity (a subset: those Cutover meets).
fn standard_fields(entity: &str) -> Vec<Value> {
    let labels = |names: &[&str]| {
        let mut f = field("label_ids", "Labels", "set");
        f["options"] = names.iter().enumerate().map(|(i, l)| json!({ "id": i + 1, "label": l })).collect();
        f
    };
    let mut out = match entity {
        "persons" => vec![
            field("name", "Name", "varchar"),
            labels(&["Customer", "Hot lead", "Cold lead"]),
            field("org_id", "Organization", "org"),
            field("email", "Email", "varchar"),
            field("phone", "Phone", "phone"),
        ],
        "organizations" => {
            vec![
                field("name", "Name", "varchar"),
                labels(&["Partner", "Prospect"]),
                field("address", "Address", "address"),
            ]
        }
        "deals" => vec![
            field("title", "Title", "varchar"),
            field("value", "Value", "monetary"),
            field("stage_id", "Stage", "stage"),
            field("status", "Status", "status"),
            labels(&["Hot", "Warm", "Cold"]),
        ],
        _ => vec![field("content", "Content", "text"), field("deal_id", "Deal", "deal")],
    };
    let user = if entity == "notes" { "user_id" } else { "owner_id" };
    out.push(field(user, "Owner", "user"));
    out.push(field("add_time", "Add time", "date"));
    out
}

impl State {
    /// Adds a custom field to an entity; its key.
    pub fn add_custom(&mut self, entity: &str, name: &str, kind: &str, options: &[&str]) -> String {
        let key = custom_key(entity, name);
        let mut f = field(&key, name, kind);
        if !options.is_empty() {
            f["options"] = options.iter().enumerate().map(|(i, l)| json!({ "id": 100 + i, "label": l })).collect();
        }
        self.fields.entry(entity.to_string()).or_default().push(f);
        key
    }

    /// The option id of a field's label.
    pub fn option_id(&self, entity: &str, key: &str, label: &str) -> Option<u64> {
        self.fields.get(entity)?.iter().find(|f| f["key"] == key)?["options"]
            .as_array()?
            .iter()
            .find(|o| o["label"] == label)?["id"]
            .as_u64()
    }

    fn field_of(&self, entity: &str, key: &str) -> Option<&Value> {
        self.fields.get(entity)?.iter().find(|f| f["key"] == key)
    }
}

pub struct Server {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

impl Server {
    pub async fn start(rules: Rules) -> Server {
        let rng = rules.seed;
        let state = Arc::new(Mutex::new(State { rules, next_id: 1_000_000, rng, ..State::default() }));
        for c in ["persons", "organizations", "deals", "notes"] {
            let mut s = state.lock().expect("state");
            s.collections.insert(c.into(), BTreeMap::new());
            s.fields.insert(c.into(), standard_fields(c));
        }
        let shared = state.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = shared.clone();
            async move { handle(&state, method, uri, headers, body) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        Server { url, state }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("server state")
    }

    /// The key of an entity's custom field, by its name.
    pub fn custom_key(&self, entity: &str, name: &str) -> String {
        let s = self.lock();
        let f = s
            .fields
            .get(entity)
            .and_then(|fs| fs.iter().find(|f| f["name"] == name && is_custom(f["key"].as_str().unwrap_or(""))));
        f.and_then(|f| f["key"].as_str())
            .map(String::from)
            .unwrap_or_else(|| panic!("{entity} has no custom field '{name}'"))
    }

    pub fn records(&self, collection: &str) -> Vec<Value> {
        self.lock().collections.get(collection).map(|c| c.values().cloned().collect()).unwrap_or_default()
    }
}

fn fail(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "success": false, "error": message, "errorCode": status.as_u16() }))).into_response()
}

fn ok(data: Value) -> Response {
    (StatusCode::OK, axum::Json(json!({ "success": true, "data": data }))).into_response()
}

fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 2 < b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()))
            .flatten();
        if let Some(x) = hex {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn handle(state: &Arc<Mutex<State>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), percent_decode(v))).collect()
        })
        .unwrap_or_default();
    let body: Value = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
    let mut s = state.lock().expect("state");
    s.requests.push(Request {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        body: body.clone(),
    });
    if headers.get("x-api-token").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
        return fail(StatusCode::UNAUTHORIZED, "unauthorized access");
    }
    let now = Instant::now();
    while s.window.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(2)) {
        s.window.pop_front();
    }
    if s.window.len() >= s.rules.per_2s {
        s.throttled += 1;
        let mut r = fail(StatusCode::TOO_MANY_REQUESTS, "Request over limit");
        r.headers_mut().insert("x-ratelimit-limit", HeaderValue::from(s.rules.per_2s));
        r.headers_mut().insert("x-ratelimit-remaining", HeaderValue::from(0));
        r.headers_mut().insert("x-ratelimit-reset", HeaderValue::from(2));
        r.headers_mut().insert("Retry-After", HeaderValue::from(2));
        return r;
    }
    let cost = spec().cost(method.as_str(), &path).unwrap_or(0);
    if s.spent + cost > s.rules.daily_tokens {
        s.throttled += 1;
        let mut r = fail(StatusCode::TOO_MANY_REQUESTS, "Daily token budget exceeded");
        r.headers_mut().insert("x-daily-requests-left", HeaderValue::from(0));
        // Seconds until the budget resets (the account's midnight; here UTC's).
        let secs = 86_400 - chrono::Utc::now().timestamp().rem_euclid(86_400);
        r.headers_mut().insert("x-ratelimit-reset", HeaderValue::from(secs));
        return r;
    }
    s.window.push_back(now);
    s.spent += cost;
    let mut answer = route(&mut s, method.as_str(), &path, &query, body);
    // What is left of the day's budget, on every answer.
    if s.rules.daily_tokens != u64::MAX {
        answer.headers_mut().insert("x-daily-requests-left", HeaderValue::from(s.rules.daily_tokens - s.spent));
    }
    answer
}

/// A v2 list paged by cursor (here: the offset), at most `most` a page.
fn cursor_page(all: &[Value], query: &[(String, String)], most: usize) -> Response {
    let at: usize = q(query, "cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let limit = q(query, "limit").and_then(|l| l.parse().ok()).unwrap_or(100usize).min(most);
    let data: Vec<Value> = all.iter().skip(at).take(limit).cloned().collect();
    let next = (at + limit < all.len()).then(|| (at + limit).to_string());
    let body = json!({ "success": true, "data": data, "additional_data": { "next_cursor": next } });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// What a v2 write's custom fields and labels must be: keys of the entity's own custom fields
/// (an unknown key refused or dropped, per the rules), an `enum` one option id, a `set` a list
/// of them, `label_ids` ids of the entity's labels. A note's `add_time` in v1's documented
/// `YYYY-MM-DD HH:MM:SS`.
fn check_fields(s: &State, collection: &str, body: &mut Value) -> Result<(), Response> {
    let bad = |m: String| fail(StatusCode::BAD_REQUEST, &m);
    if collection == "notes" {
        if let Some(t) = body["add_time"].as_str()
            && chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").is_err()
        {
            return Err(bad(format!("add_time '{t}' is not in the format YYYY-MM-DD HH:MM:SS")));
        }
        return Ok(());
    }
    let options = |f: &Value| -> Vec<u64> {
        f["options"].as_array().into_iter().flatten().filter_map(|o| o["id"].as_u64()).collect()
    };
    if let Some(labels) = body.get("label_ids").and_then(Value::as_array) {
        let allowed = s.field_of(collection, "label_ids").map(options).unwrap_or_default();
        if let Some(x) = labels.iter().find(|l| l.as_u64().is_none_or(|l| !allowed.contains(&l))) {
            return Err(bad(format!("label_ids: {x} is not a label of {collection}")));
        }
    }
    let Some(custom) = body.get_mut("custom_fields").and_then(Value::as_object_mut) else { return Ok(()) };
    let keys: Vec<String> = custom.keys().cloned().collect();
    for k in keys {
        let Some(f) = s.field_of(collection, &k).filter(|_| is_custom(&k)) else {
            match s.rules.unknown_custom {
                Unknown::Refuse => return Err(bad(format!("Custom field '{k}' does not exist on {collection}"))),
                Unknown::Drop => {
                    custom.remove(&k);
                    continue;
                }
            }
        };
        let v = &custom[&k];
        let allowed = options(f);
        let valid = match f["field_type"].as_str() {
            _ if v.is_null() => true,
            Some("enum") => v.as_u64().is_some_and(|o| allowed.contains(&o)),
            Some("set") => v
                .as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(|o| o.as_u64().is_some_and(|o| allowed.contains(&o)))),
            Some("double" | "monetary") => v.is_number(),
            _ => v.is_string(),
        };
        if !valid {
            return Err(bad(format!("Invalid value {v} for the field '{}'", f["name"].as_str().unwrap_or(&k))));
        }
    }
    Ok(())
}

fn q<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn route(s: &mut State, method: &str, path: &str, query: &[(String, String)], body: Value) -> Response {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (collection, rest): (&str, &[&str]) = match segments.as_slice() {
        ["v1", "users"] => return ok(Value::Array(s.users.clone())),
        ["api", "v2", "stages"] => return cursor_page(&s.stages, query, s.rules.stage_page),
        ["api", "v2", "pipelines"] => return cursor_page(&s.pipelines, query, s.rules.stage_page),
        ["v1", fields] if fields.ends_with("Fields") => {
            let entity = match *fields {
                "personFields" => "persons",
                "organizationFields" => "organizations",
                "dealFields" => "deals",
                "noteFields" => "notes",
                _ => return fail(StatusCode::NOT_FOUND, "Unknown method ."),
            };
            let all = s.fields.get(entity).cloned().unwrap_or_default();
            if entity == "notes" {
                return ok(Value::Array(all));
            }
            let start: usize = q(query, "start").and_then(|c| c.parse().ok()).unwrap_or(0);
            let limit: usize = q(query, "limit").and_then(|c| c.parse().ok()).unwrap_or(100).min(500);
            let data: Vec<Value> = all.iter().skip(start).take(limit).cloned().collect();
            let more = start + limit < all.len();
            let body = json!({ "success": true, "data": data, "additional_data": { "pagination": {
                "start": start, "limit": limit, "more_items_in_collection": more, "next_start": start + limit } } });
            return (StatusCode::OK, axum::Json(body)).into_response();
        }
        ["api", "v2", c, rest @ ..] => (c, rest),
        ["v1", "notes", rest @ ..] => ("notes", rest),
        _ => return fail(StatusCode::NOT_FOUND, "Unknown method ."),
    };
    let v2 = path.starts_with("/api/v2");
    if !s.collections.contains_key(collection) {
        return fail(StatusCode::NOT_FOUND, "Unknown method .");
    }
    match (method, rest) {
        ("GET", []) => {
            let limit: usize = q(query, "limit").and_then(|l| l.parse().ok()).unwrap_or(100);
            if limit > 500 {
                return fail(StatusCode::BAD_REQUEST, "limit must be at most 500");
            }
            let c = &s.collections[collection];
            if let Some(ids) = q(query, "ids").filter(|_| v2) {
                let wanted: Vec<u64> = ids.split(',').filter_map(|i| i.parse().ok()).collect();
                if wanted.len() > 100 {
                    return fail(StatusCode::BAD_REQUEST, "ids takes at most 100 ids");
                }
                let data: Vec<Value> = wanted.iter().filter_map(|i| c.get(i).cloned()).collect();
                let body = json!({ "success": true, "data": data, "additional_data": { "next_cursor": null } });
                return (StatusCode::OK, axum::Json(body)).into_response();
            }
            if v2 {
                let after: u64 = q(query, "cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
                let since = q(query, "updated_since").and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                let recent = |r: &Value| {
                    since.is_none_or(|since| {
                        r["update_time"]
                            .as_str()
                            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                            .is_some_and(|t| t >= since)
                    })
                };
                let page: Vec<(u64, Value)> =
                    c.range(after..).filter(|(_, v)| recent(v)).take(limit + 1).map(|(k, v)| (*k, v.clone())).collect();
                let next = (page.len() > limit).then(|| page[limit].0.to_string());
                let data: Vec<Value> = page.into_iter().take(limit).map(|(_, v)| v).collect();
                let body = json!({ "success": true, "data": data, "additional_data": { "next_cursor": next } });
                (StatusCode::OK, axum::Json(body)).into_response()
            } else {
                let start: usize = q(query, "start").and_then(|c| c.parse().ok()).unwrap_or(0);
                // v1 notes filter by their parent (`deal_id`, `person_id`, `org_id`).
                let filters: Vec<(&str, u64)> = ["deal_id", "person_id", "org_id"]
                    .into_iter()
                    .filter_map(|f| Some((f, q(query, f)?.parse().ok()?)))
                    .collect();
                let all: Vec<&Value> =
                    c.values().filter(|r| filters.iter().all(|(f, id)| r[*f].as_u64() == Some(*id))).collect();
                let data: Vec<Value> = all.iter().skip(start).take(limit).map(|v| (*v).clone()).collect();
                let more = start + limit < all.len();
                let body = json!({ "success": true, "data": data, "additional_data": { "pagination": {
                    "start": start, "limit": limit, "more_items_in_collection": more, "next_start": start + limit } } });
                (StatusCode::OK, axum::Json(body)).into_response()
            }
        }
        ("GET", ["search"]) => {
            let term = q(query, "term").unwrap_or("");
            let now = Instant::now();
            let indexed = |r: &Value| {
                let id = r["id"].as_u64().unwrap_or(0);
                s.searchable_at.get(&(collection.to_string(), id)).is_none_or(|at| *at <= now)
            };
            let items: Vec<Value> = s.collections[collection]
                .values()
                .filter(|r| indexed(r))
                .filter(|r| r["custom_fields"].as_object().is_some_and(|c| c.values().any(|v| v.as_str() == Some(term))))
                .map(|r| json!({ "result_score": 1.0, "item": { "id": r["id"], "type": collection.trim_end_matches('s') } }))
                .collect();
            ok(json!({ "items": items }))
        }
        ("GET", [id]) => match id.parse::<u64>().ok().and_then(|id| s.collections[collection].get(&id)) {
            Some(r) => ok(r.clone()),
            None => fail(StatusCode::NOT_FOUND, "Item not found"),
        },
        ("POST", []) => {
            let required = if collection == "notes" {
                "content"
            } else if collection == "deals" {
                "title"
            } else {
                "name"
            };
            if body[required].as_str().is_none_or(str::is_empty) {
                return fail(StatusCode::BAD_REQUEST, &format!("{required} is required"));
            }
            let mut body = body;
            if let Err(refused) = check_fields(s, collection, &mut body) {
                return refused;
            }
            if collection == "notes"
                && s.rules.notes_as_html
                && let Some(c) = body["content"].as_str()
            {
                let html = c.replace('&', "&amp;").replace("\r\n", "\n").replace('\n', "<br>");
                body["content"] = json!(html);
            }
            let id = s.next_id;
            s.next_id += 1;
            let mut record = body;
            record["id"] = json!(id);
            record["update_time"] = json!(now_text());
            s.collections.get_mut(collection).expect("collection").insert(id, record.clone());
            let lag = s.rules.search_lag;
            s.searchable_at.insert((collection.to_string(), id), Instant::now() + lag);
            let lose = s.rules.lose_rate;
            if lose > 0.0 && s.random() < lose {
                // Carried out; the answer is lost on the way back.
                s.lost += 1;
                return fail(StatusCode::BAD_GATEWAY, "Bad gateway");
            }
            let status = if v2 { StatusCode::OK } else { StatusCode::CREATED };
            (status, axum::Json(json!({ "success": true, "data": record }))).into_response()
        }
        ("PATCH" | "PUT", [id]) => {
            let mut body = body;
            if let Err(refused) = check_fields(s, collection, &mut body) {
                return refused;
            }
            let Some(r) =
                id.parse::<u64>().ok().and_then(|id| s.collections.get_mut(collection).expect("c").get_mut(&id))
            else {
                return fail(StatusCode::NOT_FOUND, "Item not found");
            };
            for (k, v) in body.as_object().into_iter().flatten() {
                match (k.as_str(), r[k].as_object_mut(), v.as_object()) {
                    // Custom fields not named keep their values.
                    ("custom_fields", Some(held), Some(given)) => held.extend(given.clone()),
                    _ => r[k] = v.clone(),
                }
            }
            r["update_time"] = json!(now_text());
            ok(r.clone())
        }
        ("DELETE", [id]) => {
            match id.parse::<u64>().ok().and_then(|n| s.collections.get_mut(collection).expect("c").remove(&n)) {
                Some(_) => ok(json!({ "id": id.parse::<u64>().unwrap_or(0) })),
                None => fail(StatusCode::NOT_FOUND, "Item not found"),
            }
        }
        _ => fail(StatusCode::NOT_FOUND, "Unknown method ."),
    }
}

/// The demo's export as Pipedrive holds it: users (the demo's reps, and the one HubSpot lacks),
/// stages by name, records with ids, owners by user id, emails and phones as lists.
fn fold(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

fn csv(path: &std::path::Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).expect("csv");
    let headers: Vec<String> =
        r.headers().expect("headers").iter().map(|h| h.trim_start_matches('\u{feff}').to_string()).collect();
    r.records().map(|rec| headers.iter().cloned().zip(rec.expect("row").iter().map(String::from)).collect()).collect()
}

/// The demo's export as Pipedrive holds it: users (the demo's reps, and the one HubSpot lacks),
/// stages by name, records with ids, owners by user id, emails and phones as lists.
pub fn seed_demo(server: &Server, demo: &std::path::Path) {
    let mut s = server.lock();
    let db = rusqlite::Connection::open(demo.join("destination.db")).expect("db");
    let mut names: Vec<(String, String)> = db
        .prepare("SELECT first_name || ' ' || last_name, email FROM owners ORDER BY id")
        .expect("owners")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("owners")
        .collect::<Result<_, _>>()
        .expect("owners");
    names.push(("Dana Whitfield".into(), "dana.whitfield@northwind.example".into()));
    s.users = names
        .iter()
        .enumerate()
        .map(|(i, (n, e))| json!({ "id": i + 1, "name": n, "email": e, "active_flag": true }))
        .collect();
    let user = |name: &str| -> Value {
        names.iter().position(|(n, _)| fold(n) == fold(name)).map(|i| json!(i + 1)).unwrap_or(Value::Null)
    };
    let source = demo.join("source");
    let deals = csv(&source.join("deals.csv"));
    let mut stages: Vec<String> = Vec::new();
    for d in &deals {
        if !stages.contains(&d["stage"]) {
            stages.push(d["stage"].clone());
        }
    }
    s.stages = stages.iter().enumerate().map(|(i, n)| json!({ "id": i + 1, "name": n, "pipeline_id": 1 })).collect();
    s.pipelines = vec![json!({ "id": 1, "name": "Pipeline" })];
    let num = |v: &str| -> Value { v.trim().parse::<u64>().map(Value::from).unwrap_or(Value::Null) };
    let list = |v: &str| -> Value {
        if v.trim().is_empty() { json!([]) } else { json!([{ "value": v, "primary": true, "label": "work" }]) }
    };
    let labels = ["Customer", "Hot lead", "Cold lead"];
    let put = |s: &mut State, c: &str, id: &str, r: Value| {
        s.collections.get_mut(c).expect("c").insert(id.trim().parse().expect("id"), r);
    };
    // Custom fields as an account keeps them: by per-entity keys, an enum's value as its option
    // id; a marker field of its own on each entity Cutover marks; and a person field only
    // later records hold (after the first page).
    let organizations = csv(&source.join("organizations.csv"));
    let mut industries: Vec<&str> = organizations.iter().map(|o| o["industry"].as_str()).collect();
    industries.sort_unstable();
    industries.dedup();
    let website = s.add_custom("organizations", "Website", "varchar", &[]);
    let industry = s.add_custom("organizations", "Industry", "enum", &industries);
    for entity in ["persons", "organizations", "deals"] {
        s.add_custom(entity, MARKER_NAME, "varchar", &[]);
    }
    let campaign = s.add_custom("persons", "Source campaign", "varchar", &[]);
    for o in &organizations {
        let industry_id = s.option_id("organizations", &industry, &o["industry"]);
        let r = json!({ "id": num(&o["id"]), "name": o["name"], "owner_id": user(&o["owner_name"]), "add_time": o["add_time"],
            "visible_to": num(&o["visible_to"]), "address": { "locality": o["address_locality"], "country": o["address_country"] },
            "custom_fields": { website.clone(): o["website"], industry.clone(): industry_id } });
        put(&mut s, "organizations", &o["id"], r);
    }
    for (i, p) in csv(&source.join("persons.csv")).into_iter().enumerate() {
        let label = labels.iter().position(|l| *l == p["label"]).map(|i| json!([i + 1])).unwrap_or(json!([]));
        let later = if i >= 600 { json!(format!("spring-{}", i % 7)) } else { Value::Null };
        let r = json!({ "id": num(&p["id"]), "name": p["name"], "emails": list(&p["email"]), "phones": list(&p["phone"]),
            "org_id": num(&p["org_id"]), "owner_id": user(&p["owner_name"]), "label_ids": label, "add_time": p["add_time"],
            "visible_to": num(&p["visible_to"]), "custom_fields": { campaign.clone(): later } });
        put(&mut s, "persons", &p["id"], r);
    }
    for d in &deals {
        let value = d["value"].replace(',', "").parse::<f64>().map(Value::from).unwrap_or_else(|_| json!(d["value"]));
        let stage = stages.iter().position(|n| *n == d["stage"]).map(|i| i + 1);
        let r = json!({ "id": num(&d["id"]), "title": d["title"], "value": value, "currency": d["currency"], "stage_id": stage,
            "pipeline_id": 1, "status": d["status"], "org_id": num(&d["org_id"]), "owner_id": user(&d["owner_name"]),
            "expected_close_date": d["expected_close_date"], "add_time": d["add_time"] });
        put(&mut s, "deals", &d["id"], r);
    }
    for n in csv(&source.join("notes.csv")) {
        let r = json!({ "id": num(&n["id"]), "content": n["content"], "person_id": num(&n["person_id"]),
            "user_id": user(&n["user_name"]), "add_time": n["add_time"] });
        put(&mut s, "notes", &n["id"], r);
    }
}

const NOTES: &str = r#"[objects.notes.fields]
content = { from = "content" }
person_id = { from = "person_id", parent = "persons" }
user_id = { from = "user_name", transform = "owner" }
add_time = { from = "add_time", transform = "datetime" }
"#;

/// The demo's project written into Pipedrive (an empty account but for users and stages):
/// `stages` the translation entries, `marker` the custom field holding source ids.
pub fn demo_into_pipedrive(url: &str, stages: &str, marker: &str, with_notes: bool) -> String {
    let notes = if with_notes { NOTES } else { "" };
    format!(
        r#"[project]
name = "Northwind: CSV → Pipedrive"
batch_size = 500
default_region = "US"
day_first = false

[source]
kind = "csv"
path = "source"

[destination]
kind = "pipedrive"
token_env = "CUTOVER_PIPEDRIVE_TOKEN"
base_url = "{url}"
rate_limit = 100000
daily_tokens = 100000000
source_id_property = "{marker}"

[translations.stages]
{stages}

[objects.organizations]
exclude = ["address_country", "visible_to"]

[objects.organizations.fields]
name = {{ from = "name", transform = "trim" }}
address = {{ from = "address_locality" }}
Website = {{ from = "website" }}
Industry = {{ from = "industry" }}
owner_id = {{ from = "owner_name", transform = "owner" }}
add_time = {{ from = "add_time", transform = "datetime" }}

[objects.persons]
exclude = ["visible_to"]

[objects.persons.fields]
name = {{ from = "name", transform = "trim" }}
email = {{ from = "email", transform = "email" }}
phone = {{ from = "phone", transform = "phone" }}
org_id = {{ from = "org_id", parent = "organizations" }}
owner_id = {{ from = "owner_name", transform = "owner" }}
add_time = {{ from = "add_time", transform = "datetime" }}
label_ids = {{ from = "label" }}

[objects.deals]
exclude = ["add_time"]   # API v2 sets a deal's add_time itself

[objects.deals.fields]
title = {{ from = "title", transform = "trim" }}
value = {{ from = "value", transform = "decimal" }}
currency = {{ from = "currency", transform = "upper" }}
stage_id = {{ from = "stage", translate = "stages" }}
org_id = {{ from = "org_id", parent = "organizations" }}
owner_id = {{ from = "owner_name", transform = "owner" }}
expected_close_date = {{ from = "expected_close_date", transform = "date" }}
status = {{ from = "status" }}

{notes}"#,
        url = url,
        marker = marker
    )
}

/// The account's stages as translation entries: `"Stage name" = "id"` lines.
pub fn stage_translations(server: &Server) -> String {
    let stages: Vec<String> = server
        .lock()
        .stages
        .iter()
        .map(|s| format!("\"{}\" = \"{}\"", s["name"].as_str().unwrap_or(""), s["id"]))
        .collect();
    stages.join("\n")
}
