//! `cutover bench --linkage`: how well records are matched to the people they are (issue #15).
//! A seeded generator makes a destination of people and a source where part of them come again,
//! damaged the way exports damage them (typos, a transposed digit, case and spacing, another email
//! domain, missing fields, phone formats, company legal forms), the rest new people who may share a
//! surname, a birth year or a phone with someone. The truth is the generator's; the linker never
//! sees it. Printed: pair precision and recall, how many would wait for review, and the time — for
//! the probabilistic linker, and for exact keys in order (email, then phone: today's `match`).

use crate::pipeline::linkage::compare::Kind;
use crate::pipeline::linkage::link::{Decision, Linker, Values};
use crate::seeded::Rng;
use std::collections::HashMap;
use std::time::Instant;

const FIRST: &[&str] = &[
    "james",
    "mary",
    "john",
    "patricia",
    "robert",
    "jennifer",
    "michael",
    "linda",
    "william",
    "elizabeth",
    "david",
    "barbara",
    "richard",
    "susan",
    "joseph",
    "jessica",
    "thomas",
    "sarah",
    "charles",
    "karen",
    "daniel",
    "nancy",
    "matthew",
    "lisa",
    "anthony",
    "betty",
    "mark",
    "margaret",
    "donald",
    "sandra",
    "steven",
    "ashley",
    "paul",
    "kimberly",
    "andrew",
    "emily",
    "joshua",
    "donna",
    "kenneth",
    "michelle",
    "kevin",
    "carol",
    "brian",
    "amanda",
    "george",
    "melissa",
    "timothy",
    "deborah",
    "ronald",
    "stephanie",
];
const LAST: &[&str] = &[
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "rodriguez",
    "martinez",
    "hernandez",
    "lopez",
    "gonzalez",
    "wilson",
    "anderson",
    "thomas",
    "taylor",
    "moore",
    "jackson",
    "martin",
    "lee",
    "perez",
    "thompson",
    "white",
    "harris",
    "sanchez",
    "clark",
    "ramirez",
    "lewis",
    "robinson",
    "walker",
    "young",
    "allen",
    "king",
    "wright",
    "scott",
    "torres",
    "nguyen",
    "hill",
    "flores",
    "green",
    "adams",
    "nelson",
    "baker",
    "hall",
    "rivera",
    "campbell",
    "mitchell",
    "carter",
    "roberts",
    "kowalski",
    "okafor",
    "berg",
    "rossi",
    "novak",
];
const COMPANY: &[&str] =
    &["acme", "globex", "initech", "umbrella", "hooli", "vandelay", "wayne", "stark", "pied piper"];
const FORMS: &[&str] = &["", " Inc.", " Corp", " Corporation", " LLC", ", Inc", " Ltd"];
const DOMAINS: &[&str] = &["gmail.example", "yahoo.example", "outlook.example", "work.example"];

/// first, last, email, phone, birth date, company
fn person(rng: &mut Rng, n: usize) -> Values {
    let first = FIRST[rng.below(FIRST.len())];
    let last = LAST[rng.below(LAST.len())];
    let company = format!("{}{}", COMPANY[rng.below(COMPANY.len())], FORMS[rng.below(FORMS.len())]);
    let email = format!("{first}.{last}{}@{}", n % 1000, DOMAINS[rng.below(DOMAINS.len())]);
    let phone = format!("({}) {:03}-{:04}", 200 + rng.below(700), rng.below(1000), rng.below(10_000));
    let birth = format!("19{:02}-{:02}-{:02}", 40 + rng.below(60), 1 + rng.below(12), 1 + rng.below(28));
    vec![Some(first.into()), Some(last.into()), Some(email), Some(phone), Some(birth), Some(company)]
}

fn typo(rng: &mut Rng, v: &str) -> String {
    let mut c: Vec<char> = v.chars().collect();
    if c.len() < 3 {
        return v.to_string();
    }
    let i = 1 + rng.below(c.len() - 2);
    if rng.chance(0.5) {
        c.swap(i, i + 1);
    } else {
        c[i] = (b'a' + rng.below(26) as u8) as char;
    }
    c.into_iter().collect()
}

/// A copy as an export would give it.
fn damaged(rng: &mut Rng, r: &Values) -> Values {
    let mut r = r.clone();
    let set = |r: &mut Values, f: usize, v: Option<String>| r[f] = v;
    if rng.chance(0.15) {
        let v = r[0].as_deref().map(|v| typo(rng, v));
        set(&mut r, 0, v);
    }
    if rng.chance(0.15) {
        let v = r[1].as_deref().map(|v| typo(rng, v));
        set(&mut r, 1, v);
    }
    if rng.chance(0.05) {
        r.swap(0, 1); // first and last name swapped
    }
    match rng.below(10) {
        0 => set(&mut r, 2, None),
        1 => {
            let v = r[2].as_deref().map(|e| e.split('@').next().unwrap_or_default().to_string() + "@newjob.example");
            set(&mut r, 2, v)
        }
        2..=4 => {
            let v = r[2].as_deref().map(|e| format!(" {} ", e.to_uppercase()));
            set(&mut r, 2, v)
        }
        _ => {}
    }
    match rng.below(10) {
        0 | 1 => set(&mut r, 3, None),
        2..=6 => {
            let v =
                r[3].as_deref().map(|p| format!("+1 {}", p.chars().filter(char::is_ascii_digit).collect::<String>()));
            set(&mut r, 3, v)
        }
        7 => {
            let v = r[3].as_deref().map(|p| typo(rng, p));
            set(&mut r, 3, v)
        }
        _ => {}
    }
    match rng.below(10) {
        0 | 1 => set(&mut r, 4, None),
        2 => {
            let v = r[4].as_deref().map(|d| typo(rng, d));
            set(&mut r, 4, v)
        }
        _ => {}
    }
    if rng.chance(0.3) {
        let v = r[5].as_deref().map(|c| {
            let base = crate::pipeline::linkage::compare::company_key(c);
            format!("{base}{}", FORMS[rng.below(FORMS.len())]).to_uppercase()
        });
        set(&mut r, 5, v);
    }
    if rng.chance(0.1) {
        set(&mut r, 5, None);
    }
    r
}

/// The destination, the source, and for each source record the destination record it is.
fn population(records: usize, existing: usize, seed: u64) -> (Vec<Values>, Vec<Values>, Vec<Option<usize>>) {
    let mut rng = Rng(seed);
    let dest: Vec<Values> = (0..existing).map(|n| person(&mut rng, n)).collect();
    let mut order: Vec<usize> = (0..existing).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let again = (records / 2).min(existing);
    let mut source = Vec::with_capacity(records);
    let mut truth = Vec::with_capacity(records);
    for (k, &d) in order.iter().take(again).enumerate() {
        source.push(damaged(&mut rng, &dest[d]));
        truth.push(Some(d));
        let _ = k;
    }
    for n in again..records {
        source.push(person(&mut rng, existing + n));
        truth.push(None);
    }
    (dest, source, truth)
}

struct Score {
    precision: f64,
    recall: f64,
    links: usize,
    wrong: usize,
    review: usize,
}

fn score(decisions: &[Decision], truth: &[Option<usize>]) -> Score {
    let (mut links, mut wrong, mut review) = (0, 0, 0);
    for (d, t) in decisions.iter().zip(truth) {
        match d {
            Decision::Link(to, _) => {
                links += 1;
                if Some(*to) != *t {
                    wrong += 1;
                }
            }
            Decision::Review(_) => review += 1,
            Decision::Create => {}
        }
    }
    let matches = truth.iter().filter(|t| t.is_some()).count();
    Score {
        precision: if links == 0 { 1.0 } else { (links - wrong) as f64 / links as f64 },
        recall: if matches == 0 { 1.0 } else { (links - wrong) as f64 / matches as f64 },
        links,
        wrong,
        review,
    }
}

/// Exact keys in order, the first key with a candidate deciding (what `match = ["email",
/// "phone"]` does): several candidates wait for review.
fn exact_keys(source: &[Values], dest: &[Values]) -> Vec<Decision> {
    let key = |k: Kind, v: &Option<String>| crate::pipeline::linkage::link::key(k, v.as_deref());
    let mut by: [HashMap<String, Vec<usize>>; 2] = [HashMap::new(), HashMap::new()];
    for (d, r) in dest.iter().enumerate() {
        for (i, (f, k)) in [(2, Kind::Email), (3, Kind::Phone)].into_iter().enumerate() {
            if let Some(v) = key(k, &r[f]) {
                by[i].entry(v).or_default().push(d);
            }
        }
    }
    source
        .iter()
        .map(|r| {
            for (i, (f, k)) in [(2, Kind::Email), (3, Kind::Phone)].into_iter().enumerate() {
                if let Some(found) = key(k, &r[f]).and_then(|v| by[i].get(&v)) {
                    return if found.len() == 1 {
                        Decision::Link(found[0], 1.0)
                    } else {
                        Decision::Review(found.iter().map(|&d| (d, 0.5)).collect())
                    };
                }
            }
            Decision::Create
        })
        .collect()
}

pub fn command(records: u64, existing: u64) -> i32 {
    let (records, existing) = (records as usize, existing as usize);
    let started = Instant::now();
    let (dest, source, truth) = population(records, existing, 42);
    say(&format!(
        "generated {records} source records ({} of them damaged copies of destination records) against {existing} in {:.1}s",
        truth.iter().filter(|t| t.is_some()).count(),
        started.elapsed().as_secs_f64()
    ));
    let linker = Linker {
        kinds: vec![Kind::Name, Kind::Name, Kind::Email, Kind::Phone, Kind::Digits, Kind::Company],
        blocks: vec![vec![2], vec![3], vec![1, 4], vec![0, 1], vec![0, 4]],
        link_above: 0.995,
        review_above: 0.5,
        margin: 4.0,
    };
    let t = Instant::now();
    let (model, decisions) = linker.link(&source, &dest);
    let linked = t.elapsed();
    let t = Instant::now();
    let exact = exact_keys(&source, &dest);
    let exact_time = t.elapsed();
    for (name, d, time) in
        [("probabilistic (EM weights)", &decisions, linked), ("exact keys: email, then phone", &exact, exact_time)]
    {
        let s = score(d, &truth);
        say(&format!(
            "  {name:<30} precision {:.4}  recall {:.4}  links {} ({} wrong)  held for review {} ({:.2}%)  {:.2}s",
            s.precision,
            s.recall,
            s.links,
            s.wrong,
            s.review,
            100.0 * s.review as f64 / records.max(1) as f64,
            time.as_secs_f64()
        ));
    }
    let names = ["first name", "last name", "email", "phone", "birth date", "company"];
    say(&format!(
        "  weights estimated by EM in {} rounds (λ = {:.3}), log2(m/u) per level:",
        model.rounds, model.lambda
    ));
    for (f, w) in model.weights().iter().enumerate() {
        let levels: Vec<String> = w.iter().map(|x| format!("{x:+.1}")).collect();
        say(&format!("    {:<11} {}", names[f], levels.join("  ")));
    }
    crate::cli::EXIT_OK
}

fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{line}");
}
