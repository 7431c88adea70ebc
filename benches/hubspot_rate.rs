//! Benchmark (prints figures; no assertions on time): the HubSpot connector against the in-process
//! server held to HubSpot's base limit — 100 requests per rolling 10 s — with batches of 100
//! records, so the ceiling is 1,000 records/s. 10% of requests get an injected fault (a third
//! each: 429 with Retry-After: 1, 503 before the work, 502 after it). Counts what the server holds
//! afterwards: every record exactly once.
//!
//!     cargo bench --bench hubspot_rate [-- RECORDS]
//!
//! Three shapes: a writer that keeps create calls of 100 records in flight (what the connector can
//! sustain), and the engine's shape today — one create call of a batch (500, then 2000 records) at
//! a time, waiting for each (retries at a batch's tail stall it).

#[path = "../tests/common/hubspot_server.rs"]
mod hubspot_server;

use cutover::connect::hubspot::HubSpot;
use cutover::connect::{Destination, Marks, NewRecords};
use futures_util::StreamExt;
use hubspot_server::{Rules, Server, TOKEN, prop};
use std::collections::HashSet;
use std::time::Instant;

const CEILING: f64 = 1000.0;

async fn server(seed: u64) -> Server {
    let rules = Rules { per_10s: 100, fault_rate: 0.10, retry_after_s: 1, seed, ..Rules::default() };
    let server = Server::start(rules).await;
    let mut marker = prop("cutover_source_id", "string");
    marker.unique = true;
    server.lock().add_object("contacts", vec![prop("firstname", "string"), prop("email", "string"), marker]);
    server
}

fn connector(server: &Server) -> HubSpot {
    let conn: cutover::config::ConnectionConfig = toml::from_str(&format!(
        "kind = \"hubspot\"\ntoken_env = \"CUTOVER_BENCH_TOKEN\"\nbase_url = \"{}\"\nrate_limit = 100\nsource_id_property = \"cutover_source_id\"",
        server.url
    ))
    .expect("config");
    HubSpot::open(&conn, "destination").expect("connector")
}

fn records(from: usize, n: usize) -> NewRecords {
    let fields: Vec<String> = vec!["firstname".into(), "email".into()];
    NewRecords {
        fields: fields.into(),
        rows: (from..from + n).map(|i| vec![Some(format!("Person {i}")), Some(format!("p{i}@example.com"))]).collect(),
        marks: Some(Marks {
            namespace: "bench".into(),
            source_ids: (from..from + n).map(|i| format!("src-{i}")).collect(),
        }),
    }
}

struct Outcome {
    seconds: f64,
    confirmed: usize,
    failed: usize,
    /// Seconds after the start at which each call's records were confirmed, with their number.
    done: Vec<(f64, usize)>,
}

impl Outcome {
    /// Records/s between 10% and 90% of the run: the steady state, without ramp-up and tail.
    fn sustained(&self) -> f64 {
        let (from, to) = (self.seconds * 0.1, self.seconds * 0.9);
        let n: usize = self.done.iter().filter(|(t, _)| *t > from && *t <= to).map(|(_, n)| n).sum();
        n as f64 / (to - from)
    }
}

fn report(shape: &str, n: usize, o: &Outcome, hub: &HubSpot, server: &Server) {
    let held = server.records("contacts");
    let markers: HashSet<String> =
        held.iter().filter_map(|r| r.get("cutover_source_id").and_then(|v| v.as_str()).map(String::from)).collect();
    let [requests, throttled, server_errors, timeouts, retries, _] = hub.stats();
    let seen = server.lock().seen.clone();
    let rate = o.confirmed as f64 / o.seconds;
    println!("{shape}");
    println!("  records sent           {n}");
    println!("  confirmed / failed     {} / {}", o.confirmed, o.failed);
    println!("  held by the server     {} ({} distinct source ids)", held.len(), markers.len());
    println!("  lost / duplicated      {} / {}", n - markers.len(), held.len() - markers.len());
    println!("  time                   {:.1} s", o.seconds);
    let sustained = o.sustained();
    println!(
        "  overall                {rate:.0} records/s = {:.1}% of the {CEILING:.0} records/s ceiling",
        100.0 * rate / CEILING
    );
    println!("  sustained (10%–90%)    {sustained:.0} records/s = {:.1}% of the ceiling", 100.0 * sustained / CEILING);
    println!(
        "  client: requests {requests}, 429s {throttled}, 5xx {server_errors}, timeouts {timeouts}, retries {retries}"
    );
    println!(
        "  server: requests {}, counted {}, injected faults {} ({:.1}%), limit 429s {}, largest batch {}",
        seen.requests,
        seen.counted,
        seen.injected,
        100.0 * seen.injected as f64 / seen.requests.max(1) as f64,
        seen.throttled,
        seen.largest_batch
    );
}

async fn pipelined(n: usize) {
    let server = server(std::env::var("CUTOVER_BENCH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(21)).await;
    let hub = &connector(&server);
    let start = Instant::now();
    let results: Vec<_> = futures_util::stream::iter((0..n).step_by(100))
        .map(|from| async move {
            let r = hub.create("contacts", records(from, 100.min(n - from))).await;
            (start.elapsed().as_secs_f64(), r)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let seconds = start.elapsed().as_secs_f64();
    let mut done = Vec::new();
    let (mut confirmed, mut failed) = (0, 0);
    for (t, r) in results {
        let r = r.expect("a batch failed for good");
        let ok = r.iter().filter(|x| x.is_ok()).count();
        done.push((t, ok));
        confirmed += ok;
        failed += r.len() - ok;
    }
    let outcome = Outcome { seconds, confirmed, failed, done };
    report("Connector, create calls of 100 kept in flight (8)", n, &outcome, hub, &server);
}

async fn engine_shaped(n: usize, batch: usize) {
    let server = server(22).await;
    let hub = connector(&server);
    let start = Instant::now();
    let (mut confirmed, mut failed, mut done) = (0, 0, Vec::new());
    for from in (0..n).step_by(batch) {
        let results =
            hub.create("contacts", records(from, batch.min(n - from))).await.expect("a batch failed for good");
        let ok = results.iter().filter(|r| r.is_ok()).count();
        done.push((start.elapsed().as_secs_f64(), ok));
        confirmed += ok;
        failed += results.len() - ok;
    }
    let seconds = start.elapsed().as_secs_f64();
    let shape = format!("Engine-shaped, one create call of {batch} at a time (batch_size = {batch})");
    report(&shape, n, &Outcome { seconds, confirmed, failed, done }, &hub, &server);
}

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(30_000);
    // Set before the runtime starts any thread.
    unsafe { std::env::set_var("CUTOVER_BENCH_TOKEN", TOKEN) };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        println!("HubSpot connector: 100 requests/10 s, 100 records a request, 10% injected 429/5xx\n");
        pipelined(n).await;
        println!();
        engine_shaped(n / 3, 500).await;
        println!();
        engine_shaped(n / 3, 2000).await;
    });
}
