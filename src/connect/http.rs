//! What the CRM API connectors share: one HTTPS client (reqwest over rustls), the API token (from
//! the environment, never logged or shown), token-bucket rate limiting (governor) set to the API's
//! documented limits, and retries:
//!
//! - **429** waits for `Retry-After` when the API sends it, else backs off exponentially with
//!   full jitter; **5xx** and timeouts are retried a bounded number of times.
//! - A retry does not draw a new token from the limiter: the API did not count the request it
//!   refused, so the attempt that failed paid for it. A real "limit reached" 429 still makes the
//!   client wait for `Retry-After`, which is what keeps it under the limit.
//! - A request that creates records is never retried blindly after an answer that leaves it
//!   unknown whether the API acted (500, 502, 504, a timeout): [`Retry::Never`] hands that back to
//!   the connector, which looks for its idempotency markers before sending again. A 429 or a 503
//!   says the request was not handled, so it is sent again as it is.
//! - A 2xx whose body breaks off or is not complete JSON is not an empty success: for a create it
//!   is an unknown outcome like a lost answer; any other request is sent again.

use color_eyre::eyre::{Result, eyre};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::num::NonZeroU32;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// An API token. Its `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The token held by the environment variable `var`.
    pub fn from_env(var: &str, role: &str) -> Result<Self> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Self(v.trim().to_string())),
            _ => Err(eyre!(crate::config::KeyProblem::new(
                format!("{role}.token_env"),
                format!("names the environment variable {var}, which is not set or empty (export the API token)")
            ))),
        }
    }

    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How many requests a lane may make: `requests` per `per`, spread evenly (a burst of one), a
/// hair under the documented figure so a window measured by the API never holds one too many.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub requests: u32,
    pub per: Duration,
}

impl Rate {
    fn quota(self) -> Quota {
        let requests = self.requests.max(1);
        let period = self.per.mul_f64(1.005) / requests;
        Quota::with_period(period.max(Duration::from_micros(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN)
    }
}

/// A budget spent by cost per call (Pipedrive's daily token budget): `tokens` per `per`, all
/// available at once.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub tokens: u32,
    pub per: Duration,
}

/// "5 h 12 min", "0 h 1 min".
fn hours_minutes(d: Duration) -> String {
    let secs = d.as_secs().max(60);
    format!("{} h {} min", secs / 3600, secs % 3600 / 60)
}

/// The longest a call waits for the daily token budget to refill before the run stops instead.
const BUDGET_WAIT: Duration = Duration::from_secs(30);

/// Whether a failed request may be sent again as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reads, updates, deletes: sending twice does no harm.
    Safe,
    /// Creates: after a 5xx or a timeout the caller must first find out what the API did.
    Never,
}

/// One request.
pub struct Call<'a> {
    pub method: Method,
    pub path: &'a str,
    pub query: Vec<(&'a str, String)>,
    pub body: Option<Value>,
    /// Which limiter it draws from (0: the general one).
    pub lane: usize,
    /// Its cost against the budget, if the API has one.
    pub cost: u32,
    pub retry: Retry,
}

impl<'a> Call<'a> {
    pub fn get(path: &'a str) -> Self {
        Call { method: Method::GET, path, query: Vec::new(), body: None, lane: 0, cost: 1, retry: Retry::Safe }
    }

    pub fn post(path: &'a str, body: Value) -> Self {
        Call { method: Method::POST, path, query: Vec::new(), body: Some(body), lane: 0, cost: 1, retry: Retry::Safe }
    }

    pub fn with(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    pub fn query(mut self, key: &'a str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    pub fn lane(mut self, lane: usize) -> Self {
        self.lane = lane;
        self
    }

    pub fn cost(mut self, cost: u32) -> Self {
        self.cost = cost;
        self
    }

    pub fn creating(mut self) -> Self {
        self.retry = Retry::Never;
        self
    }
}

/// The API's answer: any 2xx, or a 4xx the connector reads as a per-record or per-call error.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The API's own message, for an operator (HubSpot and Pipedrive both say `message`/`error`).
    pub fn message(&self) -> String {
        let m = self.body.get("message").or_else(|| self.body.get("error")).and_then(Value::as_str);
        match m {
            Some(m) => format!("{} {m}", self.status.as_u16()),
            None => format!("{} {}", self.status.as_u16(), self.body),
        }
    }
}

/// Why a call did not get an answer the connector can read.
#[derive(Debug)]
pub enum CallError {
    /// The API may or may not have acted (5xx, timeout, dropped connection after sending).
    Unknown(String),
    /// Nothing the connector can do about it (refused token, retries exhausted, unreachable).
    Fatal(String),
    /// The day's allowance is spent, or about to be (the API's daily limit, the project's token
    /// budget, the reserve kept for others): the run stops, resumably, until it resets.
    Spent(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unknown(m) | CallError::Fatal(m) | CallError::Spent(m) => f.write_str(m),
        }
    }
}

/// Why a run must stop for today, if that is what stopped it.
pub fn spent_for_today(e: &color_eyre::eyre::Report) -> Option<String> {
    e.chain().find_map(|c| match c.downcast_ref::<CallError>() {
        Some(CallError::Spent(m)) => Some(m.clone()),
        _ => None,
    })
}

impl std::error::Error for CallError {}

/// Counters of what the client did, for reports and the benchmark.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
    pub server_errors: AtomicU64,
    pub timeouts: AtomicU64,
    pub retries: AtomicU64,
    pub spent: AtomicU64,
    /// What the API last said is left of the day's allowance, plus one (0: it has not said).
    daily_left: AtomicU64,
}

/// The headers an API states the day's remaining allowance in: Pipedrive's (requests to
/// POST/PUT endpoints left today), HubSpot's (requests left today).
const DAILY_LEFT: [&str; 2] = ["x-daily-requests-left", "x-hubspot-ratelimit-daily-remaining"];

impl Stats {
    /// Requests the API last said are left today, if it says.
    pub fn daily_left(&self) -> Option<u64> {
        self.daily_left.load(Ordering::Relaxed).checked_sub(1)
    }

    fn note_daily_left(&self, headers: &reqwest::header::HeaderMap) {
        let left = DAILY_LEFT.iter().find_map(|h| headers.get(*h)?.to_str().ok()?.trim().parse::<u64>().ok());
        if let Some(left) = left {
            self.daily_left.store(left.saturating_add(1), Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> [u64; 6] {
        [&self.requests, &self.throttled, &self.server_errors, &self.timeouts, &self.retries, &self.spent]
            .map(|c| c.load(Ordering::Relaxed))
    }
}

/// Bounds on retrying.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Attempts after a 429 (each waits Retry-After or a backoff).
    pub throttled_attempts: u32,
    /// Attempts after a 5xx or a timeout.
    pub error_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub timeout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            throttled_attempts: 12,
            error_attempts: 8,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(60),
        }
    }
}

/// How the token travels.
#[derive(Debug, Clone, Copy)]
pub enum Auth {
    /// `Authorization: Bearer …` (HubSpot private apps, OAuth).
    Bearer,
    /// A header of its own (Pipedrive API tokens: `x-api-token`).
    Header(&'static str),
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    name: &'static str,
    token: Secret,
    auth: Auth,
    lanes: Vec<DefaultDirectRateLimiter>,
    budget: Option<(DefaultDirectRateLimiter, u32)>,
    policy: Policy,
    pub stats: Stats,
}

fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Another part of the process may have installed one already: either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Client {
    /// A client for the API at `base` (e.g. `https://api.hubapi.com`), one limiter per lane.
    pub fn new(
        name: &'static str,
        base: &str,
        (token, auth): (Secret, Auth),
        lanes: &[Rate],
        budget: Option<Budget>,
    ) -> Result<Self> {
        install_crypto();
        let policy = Policy::default();
        let http = reqwest::Client::builder()
            .timeout(policy.timeout)
            .user_agent(concat!("cutover/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| eyre!("cannot build the HTTPS client: {e}"))?;
        let budget = budget.map(|b| {
            let tokens = NonZeroU32::new(b.tokens.max(1)).unwrap_or(NonZeroU32::MIN);
            let quota = Quota::with_period(b.per / tokens.get())
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                .allow_burst(tokens);
            (RateLimiter::direct(quota), tokens.get())
        });
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            name,
            token,
            auth,
            lanes: lanes.iter().map(|r| RateLimiter::direct(r.quota())).collect(),
            budget,
            policy,
            stats: Stats::default(),
        })
    }

    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sends a call, waiting for its lane (and budget) first, retrying as [`Policy`] allows.
    pub async fn send(&self, call: Call<'_>) -> std::result::Result<Reply, CallError> {
        if let Some(lane) = self.lanes.get(call.lane) {
            lane.until_ready().await;
        }
        if let Some((budget, max)) = &self.budget {
            let cost = NonZeroU32::new(call.cost.clamp(1, *max)).unwrap_or(NonZeroU32::MIN);
            // A budget spent is not waited out call by call for hours (the run would crawl on
            // without a word): past a short wait the run stops, resumably, saying so.
            if let Ok(Err(not_until)) = budget.check_n(cost) {
                use governor::clock::Clock;
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                if wait > BUDGET_WAIT {
                    return Err(CallError::Spent(format!(
                        "the daily token budget this project allows {} (daily_tokens = {max}) is spent: the next call \
                         would wait {}. Stopped; records of the unfinished batch are not lost — `cutover run --resume` \
                         continues once the budget refills (raise daily_tokens if your account allows more)",
                        self.name,
                        hours_minutes(wait)
                    )));
                }
                let _ = budget.until_n_ready(cost).await;
            }
            self.stats.spent.fetch_add(u64::from(call.cost), Ordering::Relaxed);
        }
        let url = format!("{}{}", self.base, call.path);
        let (mut throttled, mut errors) = (0u32, 0u32);
        loop {
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let mut req = self.http.request(call.method.clone(), &url);
            req = match self.auth {
                Auth::Bearer => req.bearer_auth(self.token.expose()),
                Auth::Header(name) => req.header(name, self.token.expose()),
            };
            if !call.query.is_empty() {
                req = req.query(&call.query);
            }
            if let Some(body) = &call.body {
                req = req.json(body);
            }
            let wait = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    self.stats.note_daily_left(resp.headers());
                    let retry_after = retry_after(resp.headers());
                    // Kept past the body only where they may say the day is spent.
                    let limits = (status == StatusCode::TOO_MANY_REQUESTS).then(|| resp.headers().clone());
                    let (body, unreadable) = read_body(resp).await;
                    let reply = Reply { status, body };
                    if let Some(why) = unreadable.filter(|_| status.is_success()) {
                        // It acted (2xx), but what it says it did cannot be read: for a create,
                        // as unknown as a lost answer; anything else is sent again.
                        let what = format!("{} answered {} but {why}", self.name, status.as_u16());
                        if call.retry == Retry::Never {
                            return Err(CallError::Unknown(what));
                        }
                        errors += 1;
                        if errors > self.policy.error_attempts {
                            return Err(CallError::Fatal(format!("{what} ({errors} attempts)")));
                        }
                        self.backoff(errors)
                    } else if let Some(resets) = limits.as_ref().and_then(|h| daily_limit_spent(h, &reply)) {
                        // Not a burst to wait out: nothing more today. Stop now, resumably.
                        self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                        return Err(CallError::Spent(format!(
                            "{}'s daily limit is spent ({}){resets}: stopped. Records of the unfinished batch are not \
                             lost — `cutover run --resume` continues from the last committed batch once it resets",
                            self.name,
                            reply.message()
                        )));
                    } else if status == StatusCode::TOO_MANY_REQUESTS {
                        self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                        throttled += 1;
                        if throttled > self.policy.throttled_attempts {
                            return Err(CallError::Fatal(format!(
                                "{} kept answering 429 (rate limited) after {} attempts: {}",
                                self.name,
                                throttled,
                                reply.message()
                            )));
                        }
                        retry_after.unwrap_or_else(|| self.backoff(throttled))
                    } else if status.is_server_error() {
                        self.stats.server_errors.fetch_add(1, Ordering::Relaxed);
                        let what = format!("{} answered {}", self.name, reply.message());
                        // 503 says the request was not handled; 500, 502 and 504 leave it open.
                        if call.retry == Retry::Never && status != StatusCode::SERVICE_UNAVAILABLE {
                            return Err(CallError::Unknown(what));
                        }
                        errors += 1;
                        if errors > self.policy.error_attempts {
                            return Err(CallError::Fatal(format!("{what} ({errors} attempts)")));
                        }
                        self.backoff(errors)
                    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                        return Err(CallError::Fatal(format!(
                            "{} refused the token ({}): check the token and its scopes",
                            self.name,
                            reply.message()
                        )));
                    } else {
                        return Ok(reply);
                    }
                }
                Err(e) => {
                    if e.is_timeout() {
                        self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    }
                    // Without a connection nothing was sent; anything else may have arrived.
                    let sent = !e.is_connect();
                    let what = format!("{} could not be reached: {}", self.name, without_url(&e));
                    if sent && call.retry == Retry::Never {
                        return Err(CallError::Unknown(what));
                    }
                    errors += 1;
                    if errors > self.policy.error_attempts {
                        return Err(CallError::Fatal(format!("{what} ({errors} attempts)")));
                    }
                    self.backoff(errors)
                }
            };
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(api = self.name, path = call.path, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Exponential backoff with full jitter: a random wait up to base·2ⁿ, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.policy.base_delay.saturating_mul(1u32 << attempt.min(16)).min(self.policy.max_delay);
        ceiling.mul_f64(jitter())
    }
}

/// An answer's body as JSON (`Null` when empty, the text itself when it is not JSON), and why it
/// could not be read whole, if it could not: the connection broke off during the body, or what
/// arrived is not complete JSON (the APIs answer JSON; a 2xx cut short is not an empty success).
async fn read_body(resp: reqwest::Response) -> (Value, Option<String>) {
    let text = match resp.text().await {
        Ok(text) => text,
        Err(e) => return (Value::Null, Some(format!("its answer broke off: {}", without_url(&e)))),
    };
    if text.trim().is_empty() {
        return (Value::Null, None);
    }
    match serde_json::from_str(&text) {
        Ok(body) => (body, None),
        Err(e) => {
            let why = format!("its answer is not complete JSON ({e})");
            (Value::String(text), Some(why))
        }
    }
}

/// The error without the URL (query strings can carry ids an operator did not ask to log).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "");
    }
    s
}

/// Whether a 429 says the day's allowance is spent, not a burst — Pipedrive's
/// `x-daily-requests-left: 0`, HubSpot's `X-HubSpot-RateLimit-Daily-Remaining: 0` or its `DAILY`
/// policy — and when it resets, in words (` — it resets in 5 h 12 min, at 00:00 UTC`), when the
/// answer says (`x-ratelimit-reset` seconds, or `Retry-After`).
fn daily_limit_spent(headers: &reqwest::header::HeaderMap, reply: &Reply) -> Option<String> {
    let zero = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() == "0");
    let daily_policy = reply.body["policyName"].as_str().is_some_and(|p| p.eq_ignore_ascii_case("DAILY"));
    if !(zero("x-daily-requests-left") || zero("x-hubspot-ratelimit-daily-remaining") || daily_policy) {
        return None;
    }
    let secs = headers
        .get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .or_else(|| retry_after(headers));
    Some(match secs {
        Some(wait) => {
            let at = chrono::Utc::now() + chrono::Duration::seconds(wait.as_secs() as i64);
            format!(" — it resets in {}, at {} UTC", hours_minutes(wait), at.format("%H:%M"))
        }
        None => " — it resets when the account's day ends".to_string(),
    })
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let ms = (when.timestamp_millis() - chrono::Utc::now().timestamp_millis()).max(0);
    Some(Duration::from_millis(ms as u64))
}

/// A number in [0, 1): xorshift over the clock and a counter (no cryptographic need).
fn jitter() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let nanos = chrono::Utc::now().timestamp_subsec_nanos() as u64;
    let mut x = COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ nanos;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_day_is_told_from_a_burst_with_when_it_resets() {
        let reply = |body: Value| Reply { status: StatusCode::TOO_MANY_REQUESTS, body };
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = reqwest::header::HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, reqwest::header::HeaderValue::from_static(v));
            }
            h
        };
        let pipedrive = headers(&[("x-daily-requests-left", "0"), ("x-ratelimit-reset", "18720")]);
        let said = daily_limit_spent(&pipedrive, &reply(Value::Null)).expect("spent");
        assert!(said.contains("resets in 5 h 12 min"), "{said}");
        let hubspot = headers(&[("x-hubspot-ratelimit-daily-remaining", "0")]);
        assert!(daily_limit_spent(&hubspot, &reply(Value::Null)).is_some());
        assert!(daily_limit_spent(&headers(&[]), &reply(serde_json::json!({ "policyName": "DAILY" }))).is_some());
        // A burst: wait and send again.
        let burst = headers(&[("x-daily-requests-left", "4000"), ("x-ratelimit-remaining", "0")]);
        assert!(
            daily_limit_spent(&burst, &reply(serde_json::json!({ "policyName": "TEN_SECONDLY_ROLLING" }))).is_none()
        );
    }

    #[test]
    fn a_secret_never_shows() {
        let s = Secret::new("pat-na1-123");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "2".parse().expect("test value"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(reqwest::header::RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("test value"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past: go now");
        h.insert(reqwest::header::RETRY_AFTER, "soon".parse().expect("test value"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn jitter_stays_in_range_and_varies() {
        let xs: Vec<f64> = (0..1000).map(|_| jitter()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / 1000.0;
        assert!((0.4..0.6).contains(&mean), "{mean}");
    }

    #[test]
    fn a_lane_stays_under_its_documented_rate() {
        let q = Rate { requests: 100, per: Duration::from_secs(10) }.quota();
        // One request every 100.5 ms: at most 100 in any ten seconds.
        assert_eq!(q.replenish_interval(), Duration::from_micros(100_500));
        assert_eq!(q.burst_size().get(), 1);
    }
}
