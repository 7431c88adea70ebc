//! An in-process HTTP server that behaves like HubSpot's CRM v3 API as documented, for the
//! connector's contract tests and its benchmark: bearer-token auth, the batch cap of 100 inputs,
//! the ten-second rolling rate limit (429 with Retry-After and the X-HubSpot-RateLimit-* headers;
//! searches have their own limit), HubSpot-shaped error bodies (unknown properties reject the whole
//! request; invalid values fail their own input in a 207 multi-status answer), unique-value
//! properties, associations, and injected faults: spurious 429s, 503s before the request is
//! carried out, and 503s after it was (the answer lost on the way back).
//!
//! And what portals do beyond the documentation's happy path: owner properties with
//! `externalOptions` and no options listed (their values are owner ids), batch reads that return
//! only the properties asked for (the `idProperty` is not echoed), a 409 `CONFLICT` refusing a
//! whole contact batch when one email is another contact's (`Existing ID: …`), and answers that
//! break off after the request was carried out.
#![allow(dead_code, clippy::result_large_err)]

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "pat-test-0000";

#[derive(Debug, Clone)]
pub struct Rules {
    /// Requests per rolling ten seconds (HubSpot: 100, or 190 on Pro/Enterprise).
    pub per_10s: usize,
    /// Searches per second.
    pub searches_per_s: usize,
    /// Share of requests answered with an injected fault (a third each: 429, 503 before, 503 after).
    pub fault_rate: f64,
    /// Retry-After (seconds) on an injected 429.
    pub retry_after_s: u64,
    pub seed: u64,
    /// A validation rule of the account's own: inputs whose `property` starts with `prefix` are
    /// refused — in a 207 answer, or (`whole`) by refusing the whole batch with a 400.
    pub reject: Option<Reject>,
    /// Share of successful answers whose body breaks off after the request was carried out
    /// (a connection cut mid-body: what arrives is not complete JSON).
    pub truncate_rate: f64,
    /// Requests a day (HubSpot: from 250,000; every answer says what is left in
    /// `X-HubSpot-RateLimit-Daily-Remaining`); past it, 429 with the DAILY policy.
    pub per_day: u64,
    /// How long each answer takes (a portal across the internet: tens of milliseconds).
    pub latency_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Reject {
    pub object: String,
    pub property: String,
    pub prefix: String,
    pub whole: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            per_10s: 100_000,
            searches_per_s: 1000,
            fault_rate: 0.0,
            retry_after_s: 1,
            seed: 7,
            reject: None,
            truncate_rate: 0.0,
            per_day: 1_000_000,
            latency_ms: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Property {
    pub name: String,
    /// string, number, date, datetime, enumeration, bool
    pub ty: String,
    pub options: Vec<String>,
    pub read_only: bool,
    pub unique: bool,
    pub required: bool,
    /// An owner property as portals describe it: an enumeration with `externalOptions: true`,
    /// `referencedObjectType: OWNER` and no options listed; its values are owner ids.
    pub owner: bool,
}

pub fn prop(name: &str, ty: &str) -> Property {
    Property {
        name: name.into(),
        ty: ty.into(),
        options: Vec::new(),
        read_only: false,
        unique: false,
        required: false,
        owner: false,
    }
}

#[derive(Debug, Default)]
pub struct Object {
    pub properties: Vec<Property>,
    pub records: BTreeMap<u64, Map<String, Value>>,
}

/// What the server saw, for assertions.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub requests: u64,
    pub counted: u64,
    pub throttled: u64,
    pub injected: u64,
    pub largest_batch: usize,
    pub over_limit: u64,
    /// Requests to create associations apart from records (v4 batch create).
    pub association_calls: u64,
    /// Record-creating requests being answered right now, and the most there ever were.
    pub creating: usize,
    pub most_creating: usize,
}

#[derive(Default)]
pub struct State {
    pub rules: Rules,
    pub objects: BTreeMap<String, Object>,
    /// (from type, from id, to type, to id, type id)
    pub associations: Vec<(String, u64, String, u64, u64)>,
    pub owners: Vec<Value>,
    pub pipelines: Vec<(String, Vec<String>)>,
    pub next_id: u64,
    /// (object, unique property) → value → record id.
    unique: HashMap<(String, String), HashMap<String, u64>>,
    window: VecDeque<Instant>,
    searches: VecDeque<Instant>,
    /// Requests counted against today's limit.
    pub today: u64,
    /// When each record was created, in order (what a benchmark measures the rate by).
    pub created_at: Vec<Instant>,
    /// When each request counted against the ten-second limit came in.
    pub counted_at: Vec<Instant>,
    rng: u64,
    pub seen: Seen,
}

pub struct Server {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

impl Server {
    pub async fn start(rules: Rules) -> Server {
        let state = Arc::new(Mutex::new(State { rng: rules.seed | 1, rules, next_id: 1, ..State::default() }));
        let shared = state.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = shared.clone();
            async move { handle(&state, method, uri, headers, body).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        Server { url, state }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("server state")
    }

    pub fn set_rules(&self, rules: Rules) {
        self.lock().rules = rules;
    }

    /// Records of an object that are not archived.
    pub fn records(&self, object: &str) -> Vec<Map<String, Value>> {
        self.lock().objects.get(object).map(|o| o.records.values().cloned().collect()).unwrap_or_default()
    }
}

impl State {
    pub fn add_object(&mut self, name: &str, properties: Vec<Property>) {
        let mut properties = properties;
        let mut id = prop("hs_object_id", "number");
        id.read_only = true;
        properties.push(id);
        let mut lm = prop("hs_lastmodifieddate", "datetime");
        lm.read_only = true;
        properties.push(lm);
        self.objects.insert(name.to_string(), Object { properties, records: BTreeMap::new() });
    }

    pub fn insert(&mut self, object: &str, props: Map<String, Value>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut props = props;
        props.insert("hs_object_id".into(), json!(id.to_string()));
        self.created_at.push(Instant::now());
        self.index(object, id, &props, true);
        if let Some(o) = self.objects.get_mut(object) {
            o.records.insert(id, props);
        }
        id
    }

    /// Keeps the unique-value index in step with a record's values (`add` or remove).
    fn index(&mut self, object: &str, id: u64, props: &Map<String, Value>, add: bool) {
        let Some(o) = self.objects.get(object) else { return };
        for p in o.properties.iter().filter(|p| p.unique) {
            if let Some(v) = props.get(&p.name).and_then(Value::as_str) {
                let values = self.unique.entry((object.to_string(), p.name.clone())).or_default();
                if add {
                    values.insert(v.to_string(), id);
                } else {
                    values.remove(v);
                }
            }
        }
    }

    fn by_unique(&self, object: &str, property: &str, value: &str) -> Option<u64> {
        self.unique.get(&(object.to_string(), property.to_string()))?.get(value).copied()
    }

    fn random(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn error(status: StatusCode, category: &str, message: &str) -> Response {
    let body = json!({
        "status": "error",
        "message": message,
        "correlationId": "00000000-0000-4000-8000-000000000000",
        "category": category,
    });
    (status, axum::Json(body)).into_response()
}

fn rate_headers(h: &mut HeaderMap, max: usize, remaining: usize) {
    h.insert("X-HubSpot-RateLimit-Max", HeaderValue::from(max));
    h.insert("X-HubSpot-RateLimit-Remaining", HeaderValue::from(remaining));
    h.insert("X-HubSpot-RateLimit-Interval-Milliseconds", HeaderValue::from(10_000));
}

fn daily_headers(h: &mut HeaderMap, per_day: u64, left: u64) {
    h.insert("X-HubSpot-RateLimit-Daily", HeaderValue::from(per_day));
    h.insert("X-HubSpot-RateLimit-Daily-Remaining", HeaderValue::from(left));
}

enum Fault {
    None,
    After,
}

/// Auth, injected faults and the rate limit, in the order HubSpot's edge applies them. Requests
/// refused here are not counted against the window.
fn gate(s: &mut State, headers: &HeaderMap, search: bool) -> Result<(Fault, usize), Response> {
    s.seen.requests += 1;
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    if auth != format!("Bearer {TOKEN}") {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
        ));
    }
    let roll = s.random();
    let rate = s.rules.fault_rate;
    let mut fault = Fault::None;
    if roll < rate / 3.0 {
        s.seen.injected += 1;
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITS", "You have reached your secondly limit.");
        r.headers_mut().insert("Retry-After", HeaderValue::from(s.rules.retry_after_s));
        return Err(r);
    } else if roll < 2.0 * rate / 3.0 {
        s.seen.injected += 1;
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, "INTERNAL_ERROR", "Service temporarily unavailable"));
    } else if roll < rate {
        fault = Fault::After;
    }
    let now = Instant::now();
    let (window, max, span) = if search {
        (&mut s.searches, s.rules.searches_per_s, Duration::from_secs(1))
    } else {
        (&mut s.window, s.rules.per_10s, Duration::from_secs(10))
    };
    while window.front().is_some_and(|t| now.duration_since(*t) >= span) {
        window.pop_front();
    }
    if window.len() >= max {
        let wait = window.front().map(|t| span.saturating_sub(now.duration_since(*t))).unwrap_or(span);
        s.seen.throttled += 1;
        let policy = if search { "SECONDLY" } else { "TEN_SECONDLY_ROLLING" };
        let body = json!({
            "status": "error",
            "message": format!("You have reached your {} limit.", policy.to_lowercase()),
            "errorType": "RATE_LIMIT",
            "correlationId": "00000000-0000-4000-8000-000000000000",
            "policyName": policy,
        });
        let mut r = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        r.headers_mut().insert("Retry-After", HeaderValue::from(wait.as_secs_f64().ceil().max(1.0) as u64));
        rate_headers(r.headers_mut(), max, 0);
        return Err(r);
    }
    if s.today >= s.rules.per_day {
        s.seen.throttled += 1;
        let body = json!({
            "status": "error",
            "message": "You have reached your daily limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": "00000000-0000-4000-8000-000000000000",
            "policyName": "DAILY",
        });
        let mut r = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        daily_headers(r.headers_mut(), s.rules.per_day, 0);
        return Err(r);
    }
    window.push_back(now);
    let remaining = max - window.len();
    s.today += 1;
    s.seen.counted += 1;
    if !search {
        s.counted_at.push(now);
    }
    if matches!(fault, Fault::After) {
        s.seen.injected += 1;
    }
    Ok((fault, remaining))
}

async fn handle(state: &Arc<Mutex<State>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path: Vec<String> = uri.path().trim_matches('/').split('/').map(String::from).collect();
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), percent_decode(v))).collect()
        })
        .unwrap_or_default();
    let body: Value = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let search = matches!(p.as_slice(), ["crm", "v3", "objects", _, "search"]);
    let creating = matches!(p.as_slice(), ["crm", "v3", "objects", _, "batch", "create"]);
    let latency = {
        let mut s = state.lock().expect("state");
        if creating {
            s.seen.creating += 1;
            s.seen.most_creating = s.seen.most_creating.max(s.seen.creating);
        }
        s.rules.latency_ms
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if creating {
        state.lock().expect("state").seen.creating -= 1;
    }
    let (response, cut) = {
        let mut s = state.lock().expect("state");
        let (fault, remaining) = match gate(&mut s, &headers, search) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let max = if search { s.rules.searches_per_s } else { s.rules.per_10s };
        let mut response = route(&mut s, &method, &p, &query, &body);
        if matches!(fault, Fault::After) {
            // Carried out, but the answer is lost: the client cannot know.
            response = error(StatusCode::BAD_GATEWAY, "INTERNAL_ERROR", "Bad gateway");
        }
        rate_headers(response.headers_mut(), max, remaining);
        if !search {
            // Searches answer without the daily headers, as HubSpot's do.
            daily_headers(response.headers_mut(), s.rules.per_day, s.rules.per_day.saturating_sub(s.today));
        }
        let truncate = s.rules.truncate_rate;
        let cut = truncate > 0.0 && response.status().is_success() && s.random() < truncate;
        if cut {
            s.seen.injected += 1;
        }
        (response, cut)
    };
    if !cut {
        return response;
    }
    // Carried out, and the answer breaks off halfway (not in the documentation; what a dropped
    // connection or a proxy cut does).
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let half = bytes.slice(..bytes.len() / 2);
    let mut parts = parts;
    parts.headers.remove("content-length");
    Response::from_parts(parts, axum::body::Body::from(half))
}

fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn ok(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn q<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn route(s: &mut State, method: &Method, p: &[&str], query: &[(String, String)], body: &Value) -> Response {
    match (method.as_str(), p) {
        ("GET", ["crm", "v3", "properties", object]) => match s.objects.get(*object) {
            None => {
                error(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", &format!("Unable to infer object type from: {object}"))
            }
            Some(o) => {
                let results: Vec<Value> = o
                    .properties
                    .iter()
                    .map(|p| {
                        let mut v = json!({
                            "name": p.name, "label": p.name, "type": p.ty,
                            "fieldType": if p.ty == "enumeration" { "select" } else { "text" },
                            "options": p.options.iter().enumerate().map(|(i, v)| json!({"label": v, "value": v, "displayOrder": i, "hidden": false})).collect::<Vec<_>>(),
                            "hasUniqueValue": p.unique,
                            "modificationMetadata": { "archivable": true, "readOnlyDefinition": true, "readOnlyValue": p.read_only },
                        });
                        if p.owner {
                            v["externalOptions"] = json!(true);
                            v["referencedObjectType"] = json!("OWNER");
                        }
                        v
                    })
                    .collect();
                ok(StatusCode::OK, json!({ "results": results }))
            }
        },
        ("GET", ["crm", "v3", "owners"]) => {
            let limit: usize = q(query, "limit").and_then(|l| l.parse().ok()).unwrap_or(100);
            if limit > 500 {
                return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "limit must be at most 500");
            }
            let start: usize = q(query, "after").and_then(|a| a.parse().ok()).unwrap_or(0);
            let page: Vec<Value> = s.owners.iter().skip(start).take(limit).cloned().collect();
            let mut body = json!({ "results": page });
            if start + limit < s.owners.len() {
                body["paging"] = json!({ "next": { "after": (start + limit).to_string() } });
            }
            ok(StatusCode::OK, body)
        }
        ("GET", ["crm", "v3", "pipelines", "deals"]) => {
            let results: Vec<Value> = s
                .pipelines
                .iter()
                .map(|(id, stages)| {
                    json!({ "id": id, "label": id, "stages": stages.iter().enumerate().map(|(i, st)| json!({"id": st, "label": st, "displayOrder": i})).collect::<Vec<_>>() })
                })
                .collect();
            ok(StatusCode::OK, json!({ "results": results }))
        }
        ("GET", ["crm", "v3", "objects", object]) => list(s, object, query),
        ("POST", ["crm", "v3", "objects", object, "search"]) => search(s, object, body),
        ("POST", ["crm", "v3", "objects", object, "batch", action]) => {
            let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
            s.seen.largest_batch = s.seen.largest_batch.max(inputs.len());
            if inputs.len() > 100 {
                s.seen.over_limit += 1;
                return error(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    &format!("Batch input limit exceeded: {} inputs, at most 100 are allowed", inputs.len()),
                );
            }
            if !s.objects.contains_key(*object) {
                return error(
                    StatusCode::NOT_FOUND,
                    "OBJECT_NOT_FOUND",
                    &format!("Unable to infer object type from: {object}"),
                );
            }
            match *action {
                "create" => batch_create(s, object, &inputs),
                "read" => batch_read(s, object, body, &inputs),
                "update" => batch_update(s, object, &inputs),
                "archive" => {
                    for i in &inputs {
                        if let Some(id) = i["id"].as_str().and_then(|v| v.parse::<u64>().ok()) {
                            let removed = s.objects.get_mut(*object).and_then(|o| o.records.remove(&id));
                            if let Some(props) = removed {
                                s.index(object, id, &props, false);
                            }
                            s.associations.retain(|a| !(a.0 == *object && a.1 == id));
                        }
                    }
                    StatusCode::NO_CONTENT.into_response()
                }
                _ => error(StatusCode::NOT_FOUND, "NOT_FOUND", "unknown batch action"),
            }
        }
        ("POST", ["crm", "v4", "associations", from, to, "batch", "read"]) => {
            let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
            if inputs.len() > 1000 {
                return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "at most 1000 inputs");
            }
            let results: Vec<Value> = inputs
                .iter()
                .filter_map(|i| i["id"].as_str().and_then(|v| v.parse::<u64>().ok()))
                .map(|id| {
                    // Associations read from either end, as HubSpot keeps them.
                    let to_list: Vec<Value> = s
                        .associations
                        .iter()
                        .filter_map(|a| {
                            if a.0 == *from && a.1 == id && a.2 == *to {
                                Some((a.3, a.4))
                            } else if a.2 == *from && a.3 == id && a.0 == *to {
                                Some((a.1, a.4))
                            } else {
                                None
                            }
                        })
                        .map(|(other, ty)| json!({ "toObjectId": other, "associationTypes": [{ "category": "HUBSPOT_DEFINED", "typeId": ty, "label": null }] }))
                        .collect();
                    json!({ "from": { "id": id.to_string() }, "to": to_list })
                })
                .collect();
            ok(StatusCode::OK, json!({ "status": "COMPLETE", "results": results }))
        }
        ("POST", ["crm", "v4", "associations", from, to, "batch", "archive"]) => {
            // Removes every association between each `from` and the `to` records it names.
            s.seen.association_calls += 1;
            for i in body["inputs"].as_array().into_iter().flatten() {
                let Some(f) = i["from"]["id"].as_str().and_then(|v| v.parse::<u64>().ok()) else { continue };
                let targets: Vec<u64> = i["to"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t["id"].as_str().and_then(|v| v.parse::<u64>().ok()))
                    .collect();
                s.associations.retain(|a| !(a.0 == *from && a.1 == f && a.2 == *to && targets.contains(&a.3)));
            }
            StatusCode::NO_CONTENT.into_response()
        }
        ("GET", ["crm", "v4", "associations", from, to, "labels"]) => {
            // The association types a portal has between two objects (HubSpot-defined ones; a
            // portal may add labelled ones of its own).
            let types: &[(u64, Option<&str>)] = match (*from, *to) {
                ("contacts", "companies") => &[(279, None), (1, Some("Primary"))],
                ("companies", "contacts") => &[(280, None), (2, Some("Primary"))],
                ("deals", "companies") => &[(341, None), (5, Some("Primary"))],
                ("notes", "contacts") => &[(202, None)],
                _ => &[],
            };
            let results: Vec<Value> = types
                .iter()
                .map(|(id, label)| json!({ "category": "HUBSPOT_DEFINED", "typeId": id, "label": label }))
                .collect();
            ok(StatusCode::OK, json!({ "results": results }))
        }
        ("POST", ["crm", "v4", "associations", from, to, "batch", "create"]) => {
            s.seen.association_calls += 1;
            for i in body["inputs"].as_array().into_iter().flatten() {
                let f = i["from"]["id"].as_str().and_then(|v| v.parse::<u64>().ok());
                let t = i["to"]["id"].as_str().and_then(|v| v.parse::<u64>().ok());
                let ty = i["types"][0]["associationTypeId"].as_u64().unwrap_or(0);
                if let (Some(f), Some(t)) = (f, t) {
                    s.associations.push((from.to_string(), f, to.to_string(), t, ty));
                }
            }
            ok(StatusCode::CREATED, json!({ "status": "COMPLETE", "results": [] }))
        }
        _ => error(StatusCode::NOT_FOUND, "NOT_FOUND", &format!("{method} /{} is not an endpoint", p.join("/"))),
    }
}

fn shown(props: &Map<String, Value>, wanted: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    for w in wanted {
        out.insert(w.clone(), props.get(w).cloned().unwrap_or(Value::Null));
    }
    out.insert("hs_object_id".into(), props.get("hs_object_id").cloned().unwrap_or(Value::Null));
    out
}

fn record_json(id: u64, props: Map<String, Value>) -> Value {
    json!({ "id": id.to_string(), "properties": props, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z", "archived": false })
}

fn list(s: &mut State, object: &str, query: &[(String, String)]) -> Response {
    let limit: usize = q(query, "limit").and_then(|l| l.parse().ok()).unwrap_or(10);
    if limit > 100 {
        return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "limit must be at most 100");
    }
    let Some(o) = s.objects.get(object) else {
        return error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            &format!("Unable to infer object type from: {object}"),
        );
    };
    let wanted: Vec<String> = q(query, "properties")
        .map(|p| p.split(',').filter(|x| !x.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    let after: u64 = q(query, "after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let page: Vec<(u64, Map<String, Value>)> =
        o.records.range(after..).take(limit + 1).map(|(id, p)| (*id, p.clone())).collect();
    let more = page.len() > limit;
    let results: Vec<Value> = page.iter().take(limit).map(|(id, p)| record_json(*id, shown(p, &wanted))).collect();
    let mut body = json!({ "results": results });
    if more {
        body["paging"] = json!({ "next": { "after": page[limit].0.to_string() } });
    }
    ok(StatusCode::OK, body)
}

fn search(s: &mut State, object: &str, body: &Value) -> Response {
    // HubSpot's published schema of a search request (PublicObjectSearchRequest) lists these
    // as required; whether a portal refuses a body without them is not documented.
    for field in ["filterGroups", "sorts", "properties", "limit", "after"] {
        if body.get(field).is_none() {
            return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &format!("{field} is required"));
        }
    }
    let limit = body["limit"].as_u64().unwrap_or(10) as usize;
    if limit > 200 {
        return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "limit must be at most 200");
    }
    let Some(o) = s.objects.get(object) else {
        return error(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", "no such object");
    };
    let filters: Vec<Value> = body["filterGroups"][0]["filters"].as_array().cloned().unwrap_or_default();
    let matching: Vec<(u64, &Map<String, Value>)> = o
        .records
        .iter()
        .filter(|(_, p)| {
            filters.iter().all(|f| {
                let name = f["propertyName"].as_str().unwrap_or("");
                let v = p.get(name).and_then(Value::as_str);
                match f["operator"].as_str() {
                    Some("EQ") => v == f["value"].as_str(),
                    Some("IN") => f["values"].as_array().is_some_and(|vs| vs.iter().any(|x| x.as_str() == v)),
                    Some("HAS_PROPERTY") => v.is_some_and(|x| !x.is_empty()),
                    _ => false,
                }
            })
        })
        .map(|(id, p)| (*id, p))
        .collect();
    let results: Vec<Value> = matching.iter().take(limit).map(|(id, p)| record_json(*id, (*p).clone())).collect();
    ok(StatusCode::OK, json!({ "total": matching.len(), "results": results }))
}

/// Checks an input's property names: HubSpot rejects the whole request for an unknown or
/// read-only one.
fn check_names(o: &Object, props: &Map<String, Value>) -> Result<(), Response> {
    for name in props.keys() {
        match o.properties.iter().find(|p| p.name == *name) {
            None => {
                let detail = json!([{ "isValid": false, "message": format!("Property \"{name}\" does not exist"), "error": "PROPERTY_DOESNT_EXIST", "name": name }]);
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    &format!("Property values were not valid: {detail}"),
                ));
            }
            Some(p) if p.read_only => {
                let detail = json!([{ "isValid": false, "message": format!("\"{name}\" is a read only property; its value cannot be set."), "error": "READ_ONLY_VALUE", "name": name }]);
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    &format!("Property values were not valid: {detail}"),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// An input's values, checked against their property definitions: the first invalid one's message.
fn check_values(
    s: &State,
    object: &str,
    o: &Object,
    props: &Map<String, Value>,
    except: Option<u64>,
) -> Option<String> {
    for p in &o.properties {
        let v = props.get(&p.name).and_then(Value::as_str).unwrap_or("");
        if v.is_empty() {
            if p.required && except.is_none() {
                return Some(format!("Property \"{}\" is required", p.name));
            }
            continue;
        }
        let valid = match p.ty.as_str() {
            "number" => v.parse::<f64>().is_ok(),
            "date" => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok(),
            // A bare date is taken as midnight UTC (as portals do; the documentation asks for
            // a date-time or epoch milliseconds).
            "datetime" => {
                chrono::DateTime::parse_from_rfc3339(v).is_ok()
                    || v.parse::<i64>().is_ok()
                    || chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok()
            }
            "enumeration" if p.owner => s.owners.iter().any(|o| o["id"].as_str() == Some(v)),
            "enumeration" => p.options.is_empty() || p.options.iter().any(|x| x == v),
            "bool" => v == "true" || v == "false",
            _ => true,
        };
        if !valid {
            return Some(format!("{v} was not a valid {} for property {}", p.ty, p.name));
        }
        if let Some(id) = s.by_unique(object, &p.name, v).filter(|id| p.unique && Some(*id) != except) {
            return Some(format!("A {object} record with {} \"{v}\" already exists (id {id})", p.name));
        }
    }
    None
}

fn batch_create(s: &mut State, object: &str, inputs: &[Value]) -> Response {
    let Some(o) = s.objects.get(object) else {
        return error(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", "no such object");
    };
    for i in inputs {
        let props = i["properties"].as_object().cloned().unwrap_or_default();
        if let Err(r) = check_names(o, &props) {
            return r;
        }
    }
    let refused = |i: &Value| {
        s.rules.reject.as_ref().filter(|r| r.object == object).and_then(|r| {
            let v = i["properties"][&r.property].as_str()?;
            v.starts_with(&r.prefix)
                .then(|| (format!("{} \"{v}\" is not allowed by this account's validation rules", r.property), r.whole))
        })
    };
    if let Some((message, true)) = inputs.iter().find_map(refused) {
        return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &message);
    }
    // A contact's email is unique in a portal: one input whose email another contact holds
    // refuses the whole batch with a 409 naming the first such contact (HubSpot's answer, as
    // users report it; the documentation lists 409 without its body).
    if object == "contacts" {
        let o = s.objects.get(object).expect("checked");
        // A contact's secondary emails (`hs_additional_emails`, `;`-separated) are taken too.
        // Read once per request (a scan per input made the server, not the client, the
        // bottleneck of a 30,000-record benchmark).
        let mut holders: HashMap<String, u64> = HashMap::new();
        for (id, r) in &o.records {
            let primary = r.get("email").and_then(Value::as_str).into_iter();
            let more = r.get("hs_additional_emails").and_then(Value::as_str).into_iter().flat_map(|v| v.split(';'));
            for e in primary.chain(more) {
                holders.entry(e.trim().to_lowercase()).or_insert(*id);
            }
        }
        let holder = |email: &str| holders.get(&email.trim().to_lowercase()).copied();
        if let Some(id) = inputs.iter().find_map(|i| i["properties"]["email"].as_str().and_then(holder)) {
            return error(StatusCode::CONFLICT, "CONFLICT", &format!("Contact already exists. Existing ID: {id}"));
        }
    }
    let refusals: Vec<Option<String>> = inputs.iter().map(|i| refused(i).map(|(m, _)| m)).collect();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for (n, i) in inputs.iter().enumerate() {
        let trace = i["objectWriteTraceId"].clone();
        let props = i["properties"].as_object().cloned().unwrap_or_default();
        let o = s.objects.get(object).expect("checked");
        let mut problem = refusals[n].clone().or_else(|| check_values(s, object, o, &props, None));
        let mut links = Vec::new();
        for a in i["associations"].as_array().into_iter().flatten() {
            let to = a["to"]["id"].as_str().and_then(|v| v.parse::<u64>().ok());
            let ty = a["types"][0]["associationTypeId"].as_u64().unwrap_or(0);
            let target = match (object, ty) {
                (_, 202) => "contacts",
                (_, 5) | (_, 279) | (_, 341) => "companies",
                _ => "",
            };
            match to {
                Some(t) if s.objects.get(target).is_some_and(|o| o.records.contains_key(&t)) => {
                    links.push((target, t, ty))
                }
                _ => problem = Some(format!("association to {} {} is invalid: no such record", target, a["to"]["id"])),
            }
        }
        match problem {
            Some(message) => errors.push(json!({
                "status": "error", "category": "VALIDATION_ERROR", "message": message,
                "context": { "objectWriteTraceId": [trace] },
            })),
            None => {
                let stored = as_stored(o, props);
                let id = s.insert(object, stored.clone());
                for (target, t, ty) in links {
                    s.associations.push((object.to_string(), id, target.to_string(), t, ty));
                }
                let mut r = record_json(id, stored);
                r["objectWriteTraceId"] = trace;
                results.push(r);
            }
        }
    }
    let status = if errors.is_empty() { StatusCode::CREATED } else { StatusCode::MULTI_STATUS };
    ok(status, json!({ "status": "COMPLETE", "results": results, "numErrors": errors.len(), "errors": errors }))
}

/// Values as a portal keeps them: a date-time (RFC 3339 or epoch milliseconds) in UTC with
/// milliseconds, `2025-08-20T00:00:00.000Z`, whatever spelling was sent.
fn as_stored(o: &Object, mut props: Map<String, Value>) -> Map<String, Value> {
    for p in o.properties.iter().filter(|p| p.ty == "datetime") {
        let Some(v) = props.get(&p.name).and_then(Value::as_str) else { continue };
        let at = chrono::DateTime::parse_from_rfc3339(v)
            .map(|d| d.with_timezone(&chrono::Utc))
            .ok()
            .or_else(|| v.parse::<i64>().ok().and_then(chrono::DateTime::from_timestamp_millis))
            .or_else(|| {
                chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .ok()
                    .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
            });
        if let Some(at) = at {
            props.insert(p.name.clone(), json!(at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()));
        }
    }
    props
}

fn batch_read(s: &mut State, object: &str, body: &Value, inputs: &[Value]) -> Response {
    let o = s.objects.get(object).expect("checked");
    let wanted: Vec<String> =
        body["properties"].as_array().into_iter().flatten().filter_map(|p| p.as_str().map(String::from)).collect();
    let by = body["idProperty"].as_str();
    if let Some(p) = by.filter(|p| !o.properties.iter().any(|x| x.name == *p && x.unique)) {
        return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &format!("{p} is not a unique value property"));
    }
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for i in inputs {
        let key = i["id"].as_str().unwrap_or("");
        let found = match by {
            None => key.parse::<u64>().ok().and_then(|id| o.records.get(&id).map(|p| (id, p))),
            Some(p) => s.by_unique(object, p, key).and_then(|id| o.records.get(&id).map(|r| (id, r))),
        };
        match found {
            // Only the properties asked for: the id property is not echoed unless listed.
            Some((id, p)) => results.push(record_json(id, shown(p, &wanted))),
            None => missing.push(json!(key)),
        }
    }
    if missing.is_empty() {
        return ok(StatusCode::OK, json!({ "status": "COMPLETE", "results": results }));
    }
    let errors = json!([{ "status": "error", "category": "OBJECT_NOT_FOUND", "message": "Could not get some records", "context": { "ids": missing } }]);
    ok(StatusCode::MULTI_STATUS, json!({ "status": "COMPLETE", "results": results, "numErrors": 1, "errors": errors }))
}

fn batch_update(s: &mut State, object: &str, inputs: &[Value]) -> Response {
    let o = s.objects.get(object).expect("checked");
    for i in inputs {
        if let Err(r) = check_names(o, &i["properties"].as_object().cloned().unwrap_or_default()) {
            return r;
        }
    }
    let mut results = Vec::new();
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    for i in inputs {
        let trace = i["objectWriteTraceId"].clone();
        let id = i["id"].as_str().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let props = i["properties"].as_object().cloned().unwrap_or_default();
        let o = s.objects.get(object).expect("checked");
        let problem = if !seen.insert(id) {
            Some(format!("Duplicate IDs found in batch input: [{id}]"))
        } else if !o.records.contains_key(&id) {
            Some(format!("Object with id {id} not found"))
        } else {
            check_values(s, object, o, &props, Some(id))
        };
        match problem {
            Some(message) => errors.push(json!({
                "status": "error", "category": "VALIDATION_ERROR", "message": message,
                "context": { "objectWriteTraceId": [trace], "ids": [id.to_string()] },
            })),
            None => {
                let props = as_stored(o, props);
                let old = s.objects.get(object).and_then(|o| o.records.get(&id)).cloned().unwrap_or_default();
                s.index(object, id, &old, false);
                let o = s.objects.get_mut(object).expect("checked");
                let r = o.records.get_mut(&id).expect("checked");
                for (k, v) in props {
                    r.insert(k, v);
                }
                let r = r.clone();
                s.index(object, id, &r, true);
                let mut out = record_json(id, r);
                out["objectWriteTraceId"] = trace;
                results.push(out);
            }
        }
    }
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::MULTI_STATUS };
    ok(status, json!({ "status": "COMPLETE", "results": results, "numErrors": errors.len(), "errors": errors }))
}

/// The demo's HubSpot: its properties, owners, pipeline, and the 800 contacts it already holds
/// (read from the demo's SQLite destination, so both demos start from the same data).
pub fn seed_demo(s: &mut State, demo_destination: &std::path::Path) {
    let db = rusqlite::Connection::open(demo_destination).expect("demo destination");
    let owners: Vec<(i64, String, String, String)> = db
        .prepare("SELECT id, email, first_name, last_name FROM owners ORDER BY id")
        .expect("owners")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("owners")
        .collect::<Result<_, _>>()
        .expect("owners");
    s.owners = owners
        .iter()
        .map(|(id, email, f, l)| json!({ "id": id.to_string(), "email": email, "firstName": f, "lastName": l, "archived": false }))
        .collect();
    let stages: Vec<String> = db
        .prepare("SELECT id FROM pipeline_stages ORDER BY display_order")
        .expect("stages")
        .query_map([], |r| r.get(0))
        .expect("stages")
        .collect::<Result<_, _>>()
        .expect("stages");
    s.pipelines = vec![("default".into(), stages.clone())];
    let owner = || {
        let mut p = prop("hubspot_owner_id", "enumeration");
        p.owner = true;
        p
    };
    let marker = || {
        let mut p = prop("cutover_source_id", "string");
        p.unique = true;
        p
    };
    let mut lifecycle = prop("lifecyclestage", "enumeration");
    lifecycle.options = [
        "subscriber",
        "lead",
        "marketingqualifiedlead",
        "salesqualifiedlead",
        "opportunity",
        "customer",
        "evangelist",
        "other",
    ]
    .map(String::from)
    .to_vec();
    s.add_object(
        "companies",
        vec![
            prop("name", "string"),
            prop("domain", "string"),
            prop("city", "string"),
            prop("country", "string"),
            prop("industry", "string"),
            owner(),
            prop("createdate", "datetime"),
            marker(),
        ],
    );
    s.add_object(
        "contacts",
        vec![
            prop("firstname", "string"),
            prop("lastname", "string"),
            prop("email", "string"),
            prop("phone", "string"),
            owner(),
            lifecycle,
            prop("createdate", "datetime"),
            marker(),
        ],
    );
    let mut pipeline = prop("pipeline", "enumeration");
    pipeline.options = vec!["default".into()];
    let mut stage = prop("dealstage", "enumeration");
    stage.options = stages;
    let mut dealname = prop("dealname", "string");
    dealname.required = true;
    s.add_object(
        "deals",
        vec![
            dealname,
            prop("amount", "number"),
            prop("deal_currency_code", "string"),
            pipeline,
            stage,
            // A portal's deal close date is a date-time.
            prop("closedate", "datetime"),
            owner(),
            prop("createdate", "datetime"),
            marker(),
        ],
    );
    let mut body = prop("hs_note_body", "string");
    body.required = true;
    let mut ts = prop("hs_timestamp", "datetime");
    ts.required = true;
    s.add_object("notes", vec![body, ts, owner(), marker()]);

    let mut stmt = db
        .prepare("SELECT id, firstname, lastname, email, phone, hubspot_owner_id, lifecyclestage, createdate FROM contacts ORDER BY id")
        .expect("contacts");
    let rows: Vec<Vec<Option<String>>> = stmt
        .query_map([], |r| {
            (0..8).map(|i| r.get::<_, rusqlite::types::Value>(i)).collect::<Result<Vec<_>, _>>().map(|vs| {
                vs.into_iter()
                    .map(|v| match v {
                        rusqlite::types::Value::Null => None,
                        rusqlite::types::Value::Integer(i) => Some(i.to_string()),
                        rusqlite::types::Value::Text(t) => Some(t),
                        other => Some(format!("{other:?}")),
                    })
                    .collect()
            })
        })
        .expect("contacts")
        .collect::<Result<_, _>>()
        .expect("contacts");
    let names = ["firstname", "lastname", "email", "phone", "hubspot_owner_id", "lifecyclestage", "createdate"];
    for row in rows {
        let mut props = Map::new();
        for (n, v) in names.iter().zip(row.iter().skip(1)) {
            if let Some(v) = v {
                props.insert(n.to_string(), json!(v));
            }
        }
        // Keep the demo's ids: HubSpot ids are the account's own, and the demo's are unique.
        let id: u64 = row[0].as_deref().and_then(|v| v.parse().ok()).expect("id");
        props.insert("hs_object_id".into(), json!(id.to_string()));
        s.objects.get_mut("contacts").expect("contacts").records.insert(id, props);
    }
    s.next_id = 50_000_000;
}

/// The demo project set up in a temporary folder, its destination seeded into the server and
/// its project file pointed at it (`rate_limit` requests per ten seconds).
pub fn demo_project(server: &Server, rate_limit: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = dir.path().join("demo");
    cutover::demo::setup(&demo).expect("demo");
    seed_demo(&mut server.lock(), &demo.join("destination.db"));
    let toml = std::fs::read_to_string(demo.join("cutover.toml")).expect("toml");
    let start = toml.find("[destination]").expect("[destination]");
    let end = toml.find("[destination.types]").expect("[destination.types]");
    let destination = format!(
        r#"[destination]
kind = "hubspot"
token_env = "CUTOVER_HUBSPOT_TOKEN"
base_url = "{}"
rate_limit = {rate_limit}
source_id_property = "cutover_source_id"

[destination.associations]
"contacts.associatedcompanyid" = {{ to = "companies", type_id = 279 }}
"deals.associatedcompanyid" = {{ to = "companies", type_id = 5 }}
"notes.associatedcontactid" = {{ to = "contacts", type_id = 202 }}

"#,
        server.url
    );
    let toml =
        format!("{}{destination}{}", &toml[..start], &toml[end..]).replace("\"contacts.phone\" = \"phone\"\n", "");
    std::fs::write(demo.join("cutover.toml"), toml).expect("toml");
    (dir, demo)
}
