//! Benchmark (prints figures; no assertions on time): the HubSpot connector against the in-process
//! server held to HubSpot's base limit — 100 requests per rolling 10 s — with batches of 100
//! records, so the ceiling is 1,000 records/s. 10% of requests get an injected fault (a third
//! each: 429 with Retry-After: 1, 503 before the work, 502 after it). Counts what the server holds
//! afterwards: every record exactly once.
//!
//!     cargo bench --bench hubspot_rate [-- RECORDS] [engine | demo]   (only the engine's lines, or the demo's)
//!
//! Three shapes: a writer that keeps create calls of 100 records in flight (what the connector can
//! sustain), and the whole engine — `cutover run` of a CSV through `Project::engine`, with
//! batch_size 500, then 2000 — which keeps a few batches' writes in flight so that a retry
//! waiting on Retry-After at one batch's tail does not leave the limit idle.

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
    /// When the run (or the writer) started, and how long it took.
    start: Instant,
    seconds: f64,
    confirmed: usize,
    failed: usize,
}

/// The rate at which the server created records between the 10th and the 90th percent of them,
/// by its own clock: the steady state, without the run's start (schema, indexing) and tail.
fn sustained(server: &Server) -> Option<f64> {
    let at = server.lock().created_at.clone();
    let (from, to) = (at.len() / 10, at.len() * 9 / 10);
    let span = at.get(to)?.duration_since(*at.get(from)?).as_secs_f64();
    (span > 0.0).then(|| (to - from) as f64 / span)
}

fn report(shape: &str, n: usize, o: &Outcome, client: Option<[u64; 6]>, server: &Server) {
    let held = server.records("contacts");
    let markers: HashSet<String> =
        held.iter().filter_map(|r| r.get("cutover_source_id").and_then(|v| v.as_str()).map(String::from)).collect();
    let seen = server.lock().seen.clone();
    let rate = o.confirmed as f64 / o.seconds;
    println!("{shape}");
    println!("  records sent           {n}");
    println!("  confirmed / failed     {} / {}", o.confirmed, o.failed);
    println!("  held by the server     {} ({} distinct source ids)", held.len(), markers.len());
    println!("  lost / duplicated      {} / {}", n - markers.len(), held.len() - markers.len());
    println!("  time                   {:.1} s", o.seconds);
    let sustained = sustained(server).unwrap_or(0.0);
    if let Some(first) = server.lock().created_at.first() {
        println!("  first record created   {:.1} s after the start", first.duration_since(o.start).as_secs_f64());
    }
    println!(
        "  overall                {rate:.0} records/s = {:.1}% of the {CEILING:.0} records/s ceiling",
        100.0 * rate / CEILING
    );
    println!(
        "  sustained              {sustained:.0} records/s = {:.1}% of the ceiling (server's clock, 10%–90% of the records)",
        100.0 * sustained / CEILING
    );
    if let Some([requests, throttled, server_errors, timeouts, retries, _]) = client {
        println!(
            "  client: requests {requests}, 429s {throttled}, 5xx {server_errors}, timeouts {timeouts}, retries {retries}"
        );
    }
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
        .map(|from| hub.create("contacts", records(from, 100.min(n - from))))
        .buffer_unordered(8)
        .collect()
        .await;
    let seconds = start.elapsed().as_secs_f64();
    let (mut confirmed, mut failed) = (0, 0);
    for r in results {
        let r = r.expect("a batch failed for good");
        let ok = r.iter().filter(|x| x.is_ok()).count();
        confirmed += ok;
        failed += r.len() - ok;
    }
    let outcome = Outcome { start, seconds, confirmed, failed };
    report("Connector, create calls of 100 kept in flight (8)", n, &outcome, Some(hub.stats()), &server);
}

/// The whole engine: a CSV of `n` contacts run into the server through `Project::engine`, as
/// `cutover run` does.
async fn engine_run(n: usize, batch: usize) {
    let server = server(22).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("source")).expect("source folder");
    let mut csv = String::from("id,firstname,email\n");
    for i in 0..n {
        csv.push_str(&format!("{i},Person {i},p{i}@example.com\n"));
    }
    std::fs::write(dir.path().join("source/contacts.csv"), csv).expect("csv");
    let toml = format!(
        "[project]\nname = \"bench\"\nbatch_size = {batch}\n\n[source]\nkind = \"csv\"\npath = \"source\"\n\n\
         [destination]\nkind = \"hubspot\"\ntoken_env = \"CUTOVER_BENCH_TOKEN\"\nbase_url = \"{}\"\nrate_limit = 100\n\
         source_id_property = \"cutover_source_id\"\n\n[objects.contacts]\nmatch = [\"email\"]\n\n\
         [objects.contacts.fields]\nfirstname = {{ from = \"firstname\" }}\nemail = {{ from = \"email\", transform = \"email\" }}\n",
        server.url
    );
    let file = dir.path().join("cutover.toml");
    std::fs::write(&file, toml).expect("project file");
    let project = cutover::project::Project::load(Some(&file)).expect("project");
    let engine = project.engine().expect("engine");
    let _log = std::env::var_os("CUTOVER_BENCH_LOG").map(|f| cutover::logging::init(Some(f.into())).expect("log"));
    let start = Instant::now();
    let summary = engine.run(cutover::store::RunKind::Full).await.expect("the run failed");
    let seconds = start.elapsed().as_secs_f64();
    let counts = summary.objects.iter().map(|(_, _, c)| *c).next().unwrap_or_default();
    let outcome = Outcome {
        start,
        seconds,
        confirmed: counts.created as usize,
        failed: (counts.extracted - counts.created) as usize,
    };
    let shape =
        format!("Engine-shaped: `cutover run` of a {n}-contact CSV, batch_size = {batch} ({:?})", summary.finish);
    report(&shape, n, &outcome, None, &server);
}

/// The bundled demo (12,400 records in four objects, parents first, 800 contacts already in the
/// portal) run into the server, owners external and ids not echoed as portals do.
async fn demo_run() {
    let server = server(23).await;
    let (_dir, demo) = hubspot_server::demo_project(&server, 100);
    server.lock().created_at.clear();
    server.lock().counted_at.clear();
    let project = cutover::project::Project::load(Some(&demo.join("cutover.toml"))).expect("demo project");
    let engine = project.engine().expect("engine");
    let start = Instant::now();
    let summary = engine.run(cutover::store::RunKind::Full).await.expect("the demo run failed");
    let seconds = start.elapsed().as_secs_f64();
    let written: u64 = summary.objects.iter().map(|(_, _, c)| c.created + c.updated + c.merged).sum();
    let created: u64 = summary.objects.iter().map(|(_, _, c)| c.created).sum();
    let at = server.lock().created_at.clone();
    println!("The demo, `cutover run` end to end ({:?})", summary.finish);
    for (object, _, c) in &summary.objects {
        println!(
            "  {object:<10} created {:>5}, updated {:>4}, merged {:>3}, queued {:>3}, failed {}",
            c.created, c.updated, c.merged, c.queued, c.failed
        );
    }
    let distinct = |object: &str| {
        let held = server.records(object);
        let marked: HashSet<String> =
            held.iter().filter_map(|r| r.get("cutover_source_id").and_then(|v| v.as_str()).map(String::from)).collect();
        (held.iter().filter(|r| r.get("cutover_source_id").is_some()).count(), marked.len())
    };
    let duplicated: usize = ["companies", "contacts", "deals", "notes"]
        .iter()
        .map(|o| {
            let (marked, distinct) = distinct(o);
            marked - distinct
        })
        .sum();
    println!("  created by the server  {} (the run says {created}); duplicated {duplicated}", at.len());
    println!("  time                   {seconds:.1} s, {:.0} records written/s", written as f64 / seconds);
    if let Some(s) = sustained(&server) {
        println!(
            "  sustained              {s:.0} records/s = {:.1}% of the ceiling (server's clock, 10%–90% of the records \
             created, across four objects)",
            100.0 * s / CEILING
        );
    }
    // Of what the limit allows, how much the run used: requests the limit counted, per second
    // between the 10th and 90th percent of them (startup and tail apart).
    let counted = server.lock().counted_at.clone();
    let (from, to) = (counted.len() / 10, counted.len() * 9 / 10);
    if let (Some(a), Some(b)) = (counted.get(from), counted.get(to)) {
        let per_s = (to - from) as f64 / b.duration_since(*a).as_secs_f64();
        println!(
            "  limit kept full        {per_s:.1} of the 10 requests/s the limit allows = {:.1}% (server's clock, 10%–90% \
             of the requests it counted: reads, creates, updates, associations)",
            10.0 * per_s
        );
    }
    let seen = server.lock().seen.clone();
    println!(
        "  server: requests {}, counted {}, injected faults {} ({:.1}%), limit 429s {}",
        seen.requests,
        seen.counted,
        seen.injected,
        100.0 * seen.injected as f64 / seen.requests.max(1) as f64,
        seen.throttled
    );
}

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(30_000);
    let engine_only = std::env::args().any(|a| a == "engine");
    let demo_only = std::env::args().any(|a| a == "demo");
    // Set before the runtime starts any thread.
    unsafe {
        std::env::set_var("CUTOVER_BENCH_TOKEN", TOKEN);
        std::env::set_var("CUTOVER_HUBSPOT_TOKEN", TOKEN);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        println!("HubSpot connector: 100 requests/10 s, 100 records a request, 10% injected 429/5xx\n");
        if !engine_only && !demo_only {
            pipelined(n).await;
            println!();
        }
        if !demo_only {
            engine_run(n / 3, 500).await;
            println!();
            engine_run(n / 3, 2000).await;
            println!();
        }
        demo_run().await;
    });
}
