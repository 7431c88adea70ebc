//! `cutover bench --linkage`: how well records are matched to the people they are (issue #15).
//! A seeded generator makes a destination of people and a source where part of them come again,
//! damaged the way exports damage them (typos, a transposed digit, case and spacing, another email
//! domain, missing fields, phone formats, company legal forms), the rest new people who may share a
//! surname, a birth year or a phone with someone. The truth is the generator's; the linker never
//! sees it. Printed: pair precision and recall, how many would wait for review, and the time — for
//! the probabilistic linker, and for exact keys in order (email, then phone: today's `match`).

use crate::pipeline::linkage::compare::Kind;
use crate::pipeline::linkage::em::Model;
use crate::pipeline::linkage::link::{Linker, Values};
use crate::pipeline::linkage::setup::LinkagePlan;
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
    // Most addresses are a person's own; some are the plain first.last of a common name, which
    // namesakes share at other providers (john.smith@gmail and john.smith@acme).
    let email = if rng.chance(0.02) {
        format!("{first}.{last}@{}", DOMAINS[rng.below(DOMAINS.len())])
    } else {
        format!("{first}.{last}{n}@{}", DOMAINS[rng.below(DOMAINS.len())])
    };
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

/// The destination, and the source with each record's person (destination records are persons
/// `0..existing`; new persons come after). Half the source (at most the destination) are damaged
/// copies of destination records; the rest are new people, `dups` of them given again (damaged)
/// later in the source. Shuffled: a real export is in no convenient order.
fn population(records: usize, existing: usize, dups: f64, seed: u64) -> (Vec<Values>, Vec<Values>, Vec<usize>) {
    let mut rng = Rng(seed);
    let dest: Vec<Values> = (0..existing).map(|n| person(&mut rng, n)).collect();
    let mut order: Vec<usize> = (0..existing).collect();
    shuffle(&mut rng, &mut order);
    let again = (records / 2).min(existing);
    let mut source: Vec<(Values, usize)> = Vec::with_capacity(records);
    for &d in order.iter().take(again) {
        source.push((damaged(&mut rng, &dest[d]), d));
    }
    let mut n = existing;
    while source.len() < records {
        let p = person(&mut rng, n);
        if rng.chance(dups) && source.len() + 1 < records {
            source.push((damaged(&mut rng, &p), n));
        }
        source.push((p, n));
        n += 1;
    }
    let mut at: Vec<usize> = (0..source.len()).collect();
    shuffle(&mut rng, &mut at);
    let (source, truth) = at.into_iter().map(|i| source[i].clone()).unzip();
    (dest, source, truth)
}

fn shuffle<T>(rng: &mut Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
}

/// What became of one source record.
enum Verdict {
    /// Linked to the record of this person.
    Linked(usize),
    /// Held: why, and whether its person was among the candidates.
    Review(String, bool),
    /// Created: whether its person was among the candidates.
    Created(bool),
}

/// The engine's own way, record by record in source order (`pipeline::linkage::index`): ranked
/// candidates among the destination's records and those created before it, the verdict with
/// one-to-one and clusters, a created record becoming a candidate for the later ones.
fn link_in_order(linker: &Linker, source: &[Values], dest: &[Values], truth: &[usize]) -> (Model, Vec<Verdict>) {
    use crate::pipeline::linkage::index::{Entry, Holder, LinkIndex, Verdict as V};
    let sample: Vec<Values> = source.iter().take(crate::pipeline::linkage::SAMPLE).cloned().collect();
    let t = Instant::now();
    let model = linker.train(&sample, dest, source.len());
    say(&format!("  weights estimated from {} source records in {:.2}s", sample.len(), t.elapsed().as_secs_f64()));
    let plan = LinkagePlan {
        fields: NAMES.iter().map(|n| n.to_string()).collect(),
        comparisons: linker.kinds.iter().map(|k| k.name().to_string()).collect(),
        index: (0..NAMES.len()).collect(),
        linker: linker.clone(),
        overrides: Vec::new(),
    };
    let mut index = LinkIndex::new(std::sync::Arc::new(plan), model.clone());
    // Entry → person.
    let mut person: Vec<usize> = Vec::with_capacity(dest.len() + source.len());
    for (d, r) in dest.iter().enumerate() {
        index.add(Holder::Dest(d.to_string()), r.clone(), false, false);
        person.push(d);
    }
    fn now(e: &Entry) -> Option<std::borrow::Cow<'_, Values>> {
        Some(std::borrow::Cow::Borrowed(&e.values))
    }
    let mut verdicts = Vec::with_capacity(source.len());
    let mut created = std::collections::HashSet::new();
    for (s, r) in source.iter().enumerate() {
        let ranked = index.rank(r, &now);
        // Whether its person was among the records it was compared with (for the misses; only
        // asked of a record whose person was there to find).
        let findable = truth[s] < dest.len() || created.contains(&truth[s]);
        let found = |index: &LinkIndex| findable && index.candidates(r).iter().any(|&e| person[e] == truth[s]);
        verdicts.push(match index.judge(ranked, &|_| false) {
            V::Link { best, .. } => {
                // Fed from now on: one-to-one.
                if let Holder::Dest(d) = index.entry(best.entry).holder.clone() {
                    index.settle_batch(&[(usize::MAX, d, None)]);
                }
                Verdict::Linked(person[best.entry])
            }
            V::Review { why, .. } => Verdict::Review(why, found(&index)),
            V::Create(_) => {
                let found = found(&index);
                index.add(Holder::Dest(format!("new {s}")), r.clone(), true, true);
                person.push(truth[s]);
                created.insert(truth[s]);
                Verdict::Created(found)
            }
        });
    }
    let compared = index.pairs_compared();
    say(&format!(
        "  {} pairs compared ({:.1} a record)",
        crate::text::thousands(compared),
        compared as f64 / source.len().max(1) as f64
    ));
    (model, verdicts)
}

const NAMES: [&str; 6] = ["first name", "last name", "email", "phone", "birth date", "company"];

struct Score {
    precision: f64,
    recall: f64,
    links: usize,
    wrong: usize,
    review: usize,
}

/// Links against the truth: a link is right when it reaches the record of the same person;
/// recall is over the records whose person was there to find (in the destination, or earlier in
/// the source).
fn score(verdicts: &[Verdict], truth: &[usize], existing: usize) -> Score {
    let (mut links, mut wrong, mut review, mut findable) = (0, 0, 0, 0);
    let mut seen = std::collections::HashSet::new();
    for (v, &t) in verdicts.iter().zip(truth) {
        if t < existing || seen.contains(&t) {
            findable += 1;
        }
        seen.insert(t);
        match v {
            Verdict::Linked(p) => {
                links += 1;
                if *p != t {
                    wrong += 1;
                }
            }
            Verdict::Review(..) => review += 1,
            Verdict::Created(_) => {}
        }
    }
    Score {
        precision: if links == 0 { 1.0 } else { (links - wrong) as f64 / links as f64 },
        recall: if findable == 0 { 1.0 } else { (links - wrong) as f64 / findable as f64 },
        links,
        wrong,
        review,
    }
}

/// Where recall is lost: each findable record not linked to its person, by what became of it.
fn misses(verdicts: &[Verdict], truth: &[usize], existing: usize) -> Vec<(String, usize)> {
    let mut seen = std::collections::HashSet::new();
    let mut by: HashMap<String, usize> = HashMap::new();
    for (v, &t) in verdicts.iter().zip(truth) {
        let findable = t < existing || seen.contains(&t);
        seen.insert(t);
        if !findable {
            continue;
        }
        let what = match v {
            Verdict::Linked(p) if *p == t => continue,
            Verdict::Linked(_) => "linked to someone else".to_string(),
            Verdict::Created(false) => "created: its match was never a candidate (blocking)".to_string(),
            Verdict::Created(true) => "created: its match scored below review_above".to_string(),
            Verdict::Review(why, found) => {
                // Without the figures: "p 0.9752 is below link_above (0.99)" → "is below link_above".
                let words = why.split(['(', ':']).next().unwrap_or_default().split_whitespace();
                let why: Vec<&str> =
                    words.filter(|w| !w.starts_with(|c: char| c.is_ascii_digit()) && *w != "p").collect();
                let why = why.join(" ");
                format!("held{}: {why}", if *found { "" } else { " (its match not a candidate)" })
            }
        };
        *by.entry(what).or_default() += 1;
    }
    let mut by: Vec<(String, usize)> = by.into_iter().collect();
    by.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    by
}

/// Exact keys in order, the first key with a candidate deciding (what `match = ["email",
/// "phone"]` does): several candidates wait for review; a record created is found by the later ones.
fn exact_keys(source: &[Values], dest: &[Values], truth: &[usize]) -> Vec<Verdict> {
    let key = |k: Kind, v: &Option<String>| crate::pipeline::linkage::link::key(k, v.as_deref());
    let mut by: [HashMap<String, Vec<usize>>; 2] = [HashMap::new(), HashMap::new()];
    let index = |by: &mut [HashMap<String, Vec<usize>>; 2], r: &Values, p: usize| {
        for (i, (f, k)) in [(2, Kind::Email), (3, Kind::Phone)].into_iter().enumerate() {
            if let Some(v) = key(k, &r[f]) {
                by[i].entry(v).or_default().push(p);
            }
        }
    };
    for (d, r) in dest.iter().enumerate() {
        index(&mut by, r, d);
    }
    let mut out = Vec::with_capacity(source.len());
    'records: for (s, r) in source.iter().enumerate() {
        for (i, (f, k)) in [(2, Kind::Email), (3, Kind::Phone)].into_iter().enumerate() {
            if let Some(found) = key(k, &r[f]).and_then(|v| by[i].get(&v)) {
                out.push(if found.len() == 1 {
                    Verdict::Linked(found[0])
                } else {
                    Verdict::Review("several".into(), found.contains(&truth[s]))
                });
                continue 'records;
            }
        }
        index(&mut by, r, truth[s]);
        out.push(Verdict::Created(false));
    }
    out
}

/// The linker a project file with these six fields and no `blocks` gets.
fn linker() -> Linker {
    let kinds = vec![Kind::Name, Kind::Name, Kind::Email, Kind::Phone, Kind::Digits, Kind::Company];
    Linker {
        blocks: crate::pipeline::linkage::setup::default_blocks(&kinds),
        kinds,
        link_above: 0.99,
        review_above: 0.8,
        margin: 4.0,
    }
}

/// One scenario: its source against its destination, both ways of matching, one line each.
fn scenario(title: &str, records: usize, existing: usize, dups: f64) -> Model {
    let started = Instant::now();
    let (dest, source, truth) = population(records, existing, dups, 42);
    let again = truth.iter().filter(|&&t| t < existing).count();
    say(&format!(
        "{title}: {records} source records ({again} of them damaged copies of destination records, {} given twice in \
         the source) against {existing}, generated in {:.1}s",
        records - truth.iter().collect::<std::collections::HashSet<_>>().len(),
        started.elapsed().as_secs_f64()
    ));
    let l = linker();
    let t = Instant::now();
    let (model, verdicts) = link_in_order(&l, &source, &dest, &truth);
    let linked = t.elapsed();
    let t = Instant::now();
    let exact = exact_keys(&source, &dest, &truth);
    let exact_time = t.elapsed();
    for (name, v, time) in [
        (format!("linkage (link ≥ {}, review ≥ {})", l.link_above, l.review_above), &verdicts, linked),
        ("exact keys: email, then phone".to_string(), &exact, exact_time),
    ] {
        let s = score(v, &truth, existing);
        say(&format!(
            "  {name:<36} precision {:.4}  recall {:.4}  links {} ({} wrong)  held for review {} ({:.2}%)  {:.2}s",
            s.precision,
            s.recall,
            s.links,
            s.wrong,
            s.review,
            100.0 * s.review as f64 / records.max(1) as f64,
            time.as_secs_f64()
        ));
        if std::ptr::eq(v, &verdicts) {
            for (what, n) in misses(v, &truth, existing) {
                say(&format!("    missed {n:>6}  {what}"));
            }
        }
    }
    model
}

pub fn command(records: u64, existing: u64) -> i32 {
    let (records, existing) = (records as usize, existing as usize);
    let model = scenario("linking to the destination", records, existing, 0.0);
    scenario("deduplicating one source (empty destination)", records, 0, 0.2);
    say(&format!(
        "  weights of the first, estimated by EM (prior {:+.1} points), log2(m/u) per level:",
        crate::pipeline::linkage::em::points_of(model.lambda)
    ));
    for (f, w) in model.weights().iter().enumerate() {
        let levels: Vec<String> = w.iter().map(|x| format!("{x:+.1}")).collect();
        say(&format!("    {:<11} {}", NAMES[f], levels.join("  ")));
    }
    crate::cli::EXIT_OK
}

fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{line}");
}
