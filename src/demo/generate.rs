//! The deterministic generator behind `assets/demo/`: a mid-quarter switch from a Pipedrive-style
//! CSV export to a HubSpot-style destination. Its output is committed; a test checks that the
//! committed files still equal what it generates. It uses its own tiny PRNG (SplitMix64) so that
//! the data never changes with a dependency's version.
//!
//! What it builds in (the demo's expected outcome counts follow from these):
//! - 400 companies, 4,200 contacts, 1,800 deals, 6,000 notes, 20 owners (19 provisioned);
//! - 800 contacts already in the destination, some differing only in email case or phone format;
//! - 140 deals with a stage that has no translation entry;
//! - 34 contacts owned by a rep not provisioned in the destination, each with 2 notes.

use crate::seeded::Rng;
use std::fmt::Write;

pub const COMPANIES: usize = 400;
pub const CONTACTS: usize = 4200;
pub const DEALS: usize = 1800;
pub const NOTES: usize = 6000;
pub const EXISTING_CONTACTS: usize = 800;
pub const UNMAPPED_STAGE_DEALS: usize = 140;
pub const UNPROVISIONED_CONTACTS: usize = 34;
pub const NOTES_PER_UNPROVISIONED: usize = 2;

const ORG_BASE: usize = 100;
const PERSON_BASE: usize = 5000;
const DEAL_BASE: usize = 20000;
const NOTE_BASE: usize = 60000;

const OWNERS: [(&str, &str); 20] = [
    ("Ana", "López"),
    ("Bo", "Chen"),
    ("Carla", "Mendes"),
    ("Dev", "Patel"),
    ("Erik", "Larsen"),
    ("Fatima", "Khan"),
    ("Greg", "Olsen"),
    ("Hana", "Sato"),
    ("Ivan", "Petrov"),
    ("Julia", "Rossi"),
    ("Kofi", "Mensah"),
    ("Lena", "Vogel"),
    ("Marco", "Bianchi"),
    ("Nora", "Kelly"),
    ("Omar", "Haddad"),
    ("Priya", "Nair"),
    ("Quinn", "Harper"),
    ("Rosa", "Diaz"),
    ("Sam", "Taylor"),
    ("Dana", "Whitfield"),
];
/// Index of the rep who left before the destination was provisioned.
const UNPROVISIONED_OWNER: usize = 19;

const FIRST: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Chris",
    "Karen",
    "Daniel",
    "Nancy",
    "Matthew",
    "Lisa",
    "Anthony",
    "Betty",
    "Mark",
    "Sandra",
    "Paul",
    "Ashley",
    "Steven",
    "Kimberly",
    "Andrew",
    "Emily",
    "Joshua",
    "Donna",
    "Kenji",
    "Amélie",
    "Søren",
    "Zoë",
    "Ngozi",
    "Mateo",
    "Aisha",
    "Luca",
];
const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "O'Brien",
    "Nakamura",
    "Müller",
    "Okafor",
    "Van der Berg",
    "Dubois",
];
const WORDS: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Wonka",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Aperture",
    "Gringotts",
    "Oscorp",
    "Nakatomi",
    "Monarch",
    "Pied Piper",
    "Dunder",
    "Sterling",
];
const SUFFIX: &[&str] = &["Inc", "LLC", "GmbH", "Ltd", "Group", "Labs", "Systems", "Partners", "Holdings", "Co"];
const INDUSTRY: &[&str] =
    &["Software", "Manufacturing", "Retail", "Healthcare", "Finance", "Logistics", "Education", "Media"];
const CITIES: &[(&str, &str)] = &[
    ("New York", "United States"),
    ("San Francisco", "United States"),
    ("Chicago", "United States"),
    ("Austin", "United States"),
    ("London", "United Kingdom"),
    ("Berlin", "Germany"),
    ("Lisbon", "Portugal"),
    ("Toronto", "Canada"),
];
const AREAS: &[&str] = &["212", "312", "415", "617", "206", "512", "303", "404", "305", "702"];
const STAGES: &[&str] =
    &["Lead In", "Contact Made", "Demo Scheduled", "Proposal Made", "Negotiations Started", "Won", "Lost"];
const UNMAPPED_STAGES: &[&str] = &["On Hold", "Partner Referral"];
const LABELS: &[&str] = &["Customer", "Hot lead", "Cold lead", ""];
const NOTE_TEXT: &[&str] = &[
    "Called, left voicemail.",
    "Discussed renewal, pricing \"too high\" — follow up next week.",
    "Sent proposal v2, waiting on legal.\nThey asked about SSO, SCIM, and the EU data residency option.",
    "Met at the conference; interested in the analytics add-on, budget approved for Q3.",
    "Asked for references in healthcare, sent three.",
    "Champion moved to another team; new contact is the VP of Ops.",
    "Trial extended by 14 days, usage up 40%.",
    "Requested a call with our CTO about the integration roadmap, cc'd their IT lead, and asked for the security questionnaire.",
];

/// Whether contact `i` (0-based) belongs to the rep who is not provisioned.
fn unprovisioned_contact(i: usize) -> bool {
    i % 120 == 60 && i < 120 * UNPROVISIONED_CONTACTS
}
/// Whether contact `i` is already in the destination, and its position among those.
fn existing_contact(i: usize) -> Option<usize> {
    (i % 5 == 1 && i < 5 * EXISTING_CONTACTS).then_some(i / 5)
}
/// Whether deal `i` has a stage the translation table does not know.
fn unmapped_deal(i: usize) -> bool {
    i % 12 == 5 && i < 12 * UNMAPPED_STAGE_DEALS
}

fn digits(i: usize) -> (&'static str, usize, usize) {
    let area = AREAS[i % AREAS.len()];
    let mut exchange = 200 + (i * 37) % 700;
    if exchange % 100 == 11 || exchange == 555 {
        exchange += 1;
    }
    (area, exchange, i % 10000)
}

fn phone_formatted(i: usize, style: usize) -> String {
    let (a, e, l) = digits(i);
    match style % 5 {
        0 => format!("({a}) {e}-{l:04}"),
        1 => format!("{a}.{e}.{l:04}"),
        2 => format!("+1 {a} {e} {l:04}"),
        3 => format!("{a}{e}{l:04}"),
        _ => format!("1-{a}-{e}-{l:04}"),
    }
}

fn person_name(i: usize) -> (String, String) {
    (FIRST[(i * 7) % FIRST.len()].to_string(), LAST[(i * 13 + i / 40) % LAST.len()].to_string())
}

fn email_of(i: usize, domain: &str) -> String {
    let (f, l) = person_name(i);
    let clean = |s: &str| s.to_lowercase().chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>();
    format!("{}.{}{}@{}", clean(&f), clean(&l), i, domain)
}

fn company_domain(i: usize) -> String {
    let w = WORDS[i % WORDS.len()].to_lowercase().replace(' ', "");
    format!("{w}{i}.example.com")
}

fn timestamp(rng: &mut Rng, style: usize) -> String {
    let (y, m, d) = (2021 + rng.below(4), 1 + rng.below(12), 1 + rng.below(28));
    let (h, min, s) = (rng.below(24), rng.below(60), rng.below(60));
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    match style % 10 {
        0 => format!("{m:02}/{d:02}/{y}"),
        1 => format!("{d} {} {y}", MONTHS[m - 1]),
        _ => format!("{y}-{m:02}-{d:02} {h:02}:{min:02}:{s:02}"),
    }
}

/// The generated files: (path relative to the demo folder, content).
pub fn generate() -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(20_261_122);
    let owner_name = |o: usize| format!("{} {}", OWNERS[o].0, OWNERS[o].1);
    // One rep's name is typed differently in the export than in the destination.
    let source_owner = |o: usize| {
        if o == 11 { "  lena   VOGEL".to_string() } else { owner_name(o) }
    };

    let mut orgs = csv_writer(false);
    row(
        &mut orgs,
        &[
            "id",
            "name",
            "address_locality",
            "address_country",
            "website",
            "industry",
            "owner_name",
            "add_time",
            "visible_to",
        ],
    );
    for i in 0..COMPANIES {
        let (city, country) = CITIES[i % CITIES.len()];
        let name = format!("{} {}", WORDS[i % WORDS.len()], SUFFIX[(i / WORDS.len()) % SUFFIX.len()]);
        let website = if i % 9 == 4 { format!("https://www.{}/", company_domain(i)) } else { company_domain(i) };
        let owner = rng.below(UNPROVISIONED_OWNER);
        let t = timestamp(&mut rng, i);
        row(
            &mut orgs,
            &[
                &(ORG_BASE + i).to_string(),
                &name,
                city,
                country,
                &website,
                rng.pick(INDUSTRY),
                &source_owner(owner),
                &t,
                "3",
            ],
        );
    }

    let mut persons = csv_writer(false);
    row(&mut persons, &["id", "name", "email", "phone", "org_id", "owner_name", "label", "add_time", "visible_to"]);
    let mut existing_rows = Vec::new();
    for i in 0..CONTACTS {
        let (f, l) = person_name(i);
        let org = rng.below(COMPANIES);
        let domain = company_domain(org);
        let email = email_of(i, &domain);
        let shown_email = match i % 7 {
            0 => email.to_uppercase(),
            1 => format!("  {email} "),
            2 => {
                let mut c = email.chars();
                c.next().map(|x| x.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
            }
            _ => email.clone(),
        };
        let owner = if unprovisioned_contact(i) { UNPROVISIONED_OWNER } else { rng.below(UNPROVISIONED_OWNER) };
        let label = rng.pick(LABELS);
        let t = timestamp(&mut rng, i / 3);
        row(
            &mut persons,
            &[
                &(PERSON_BASE + i).to_string(),
                &format!("{f} {l}"),
                &shown_email,
                &phone_formatted(i, i),
                &(ORG_BASE + org).to_string(),
                &source_owner(owner),
                label,
                &t,
                "3",
            ],
        );
        if let Some(k) = existing_contact(i) {
            let dest_owner = 1 + rng.below(UNPROVISIONED_OWNER);
            let (dest_email, dest_phone) = match k % 4 {
                0 => (Some(email.clone()), Some(phone_formatted(i, i + 2))),
                1 => (Some(email.to_uppercase()), None),
                2 => (None, Some(phone_formatted(i, i + 1))),
                _ => (Some(format!(" {email}")), None),
            };
            existing_rows.push((k, f.clone(), l.clone(), dest_email, dest_phone, dest_owner));
        }
    }

    let mut deals = csv_writer(false);
    row(
        &mut deals,
        &[
            "id",
            "title",
            "value",
            "currency",
            "stage",
            "status",
            "org_id",
            "owner_name",
            "expected_close_date",
            "add_time",
        ],
    );
    for i in 0..DEALS {
        let org = rng.below(COMPANIES);
        let stage = if unmapped_deal(i) { UNMAPPED_STAGES[i % 2] } else { STAGES[rng.below(STAGES.len())] };
        let status = match stage {
            "Won" => "won",
            "Lost" => "lost",
            _ => "open",
        };
        let cents = rng.below(100);
        let whole = 500 + rng.below(250_000);
        let value = if i % 6 == 0 && whole >= 1000 {
            format!("{},{:03}.{cents:02}", whole / 1000, whole % 1000)
        } else {
            format!("{whole}.{cents:02}")
        };
        let close =
            if i % 10 == 3 { String::new() } else { format!("2025-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28)) };
        let owner = rng.below(UNPROVISIONED_OWNER);
        let t = timestamp(&mut rng, i);
        let title = format!("{} — {} seats", WORDS[org % WORDS.len()], 5 + rng.below(500));
        row(
            &mut deals,
            &[
                &(DEAL_BASE + i).to_string(),
                &title,
                &value,
                if i % 4 == 0 { "EUR" } else { "USD" },
                stage,
                status,
                &(ORG_BASE + org).to_string(),
                &source_owner(owner),
                &close,
                &t,
            ],
        );
    }

    let held: Vec<usize> = (0..CONTACTS).filter(|&i| unprovisioned_contact(i)).collect();
    let mut notes = csv_writer(true);
    row(&mut notes, &["id", "content", "person_id", "user_name", "add_time"]);
    for i in 0..NOTES {
        let person = if i % 88 == 0 && i / 88 < held.len() * NOTES_PER_UNPROVISIONED {
            held[i / 88 / NOTES_PER_UNPROVISIONED]
        } else {
            let mut p = (i * 7919) % CONTACTS;
            while unprovisioned_contact(p) {
                p = (p + 1) % CONTACTS;
            }
            p
        };
        let author = rng.below(UNPROVISIONED_OWNER);
        let t = timestamp(&mut rng, 2);
        row(
            &mut notes,
            &[
                &(NOTE_BASE + i).to_string(),
                rng.pick(NOTE_TEXT),
                &(PERSON_BASE + person).to_string(),
                &source_owner(author),
                &t,
            ],
        );
    }

    let mut sql = String::from(DESTINATION_SCHEMA);
    sql.push_str("BEGIN;\n");
    for (o, (f, l)) in OWNERS.iter().enumerate().take(UNPROVISIONED_OWNER) {
        let _ = writeln!(
            sql,
            "INSERT INTO owners (id, email, first_name, last_name) VALUES ({}, '{}.{}@northwind.example', {}, {});",
            o + 1,
            ascii_lower(f),
            ascii_lower(l),
            quote(f),
            quote(l)
        );
    }
    for (k, f, l, email, phone, owner) in existing_rows {
        let _ = writeln!(
            sql,
            "INSERT INTO contacts (id, firstname, lastname, email, phone, hubspot_owner_id, lifecyclestage, createdate) \
             VALUES ({}, {}, {}, {}, {}, {}, 'customer', '2022-06-01T09:00:00Z');",
            1_200_001 + k,
            quote(&f),
            quote(&l),
            email.map(|e| quote(&e)).unwrap_or_else(|| "NULL".into()),
            phone.map(|p| quote(&p)).unwrap_or_else(|| "NULL".into()),
            owner
        );
    }
    sql.push_str("COMMIT;\n");

    let mut persons_bytes = "\u{feff}".as_bytes().to_vec();
    persons_bytes.extend(finish(persons));
    vec![
        ("source/organizations.csv".into(), finish(orgs)),
        ("source/persons.csv".into(), persons_bytes),
        ("source/deals.csv".into(), finish(deals)),
        ("source/notes.csv".into(), finish(notes)),
        ("destination.sql".into(), sql.into_bytes()),
    ]
}

fn ascii_lower(s: &str) -> String {
    s.to_lowercase().replace('ó', "o")
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn csv_writer(crlf: bool) -> csv::Writer<Vec<u8>> {
    let mut b = csv::WriterBuilder::new();
    if crlf {
        b.terminator(csv::Terminator::CRLF);
    }
    b.from_writer(Vec::new())
}

fn row(w: &mut csv::Writer<Vec<u8>>, fields: &[&str]) {
    // Writing to a Vec cannot fail.
    let _ = w.write_record(fields);
}

fn finish(w: csv::Writer<Vec<u8>>) -> Vec<u8> {
    w.into_inner().unwrap_or_default()
}

/// The HubSpot-style destination: owners, a deal pipeline with stages, and the four objects.
/// Ids continue from high numbers, as a real CRM's do, so source and destination ids never coincide.
pub const DESTINATION_SCHEMA: &str = r#"-- HubSpot-style destination for the Cutover demo.
PRAGMA journal_mode = WAL;
CREATE TABLE owners (
    id         INTEGER PRIMARY KEY,
    email      TEXT NOT NULL UNIQUE,
    first_name TEXT NOT NULL,
    last_name  TEXT NOT NULL,
    archived   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE pipelines (id TEXT PRIMARY KEY, label TEXT NOT NULL);
CREATE TABLE pipeline_stages (
    id            TEXT PRIMARY KEY,
    pipeline_id   TEXT NOT NULL REFERENCES pipelines(id),
    label         TEXT NOT NULL,
    display_order INTEGER NOT NULL
);
INSERT INTO pipelines VALUES ('default', 'Sales Pipeline');
INSERT INTO pipeline_stages VALUES
    ('appointmentscheduled', 'default', 'Appointment Scheduled', 0),
    ('qualifiedtobuy', 'default', 'Qualified To Buy', 1),
    ('presentationscheduled', 'default', 'Presentation Scheduled', 2),
    ('decisionmakerboughtin', 'default', 'Decision Maker Bought-In', 3),
    ('contractsent', 'default', 'Contract Sent', 4),
    ('closedwon', 'default', 'Closed Won', 5),
    ('closedlost', 'default', 'Closed Lost', 6);
CREATE TABLE companies (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             VARCHAR(200) NOT NULL,
    domain           VARCHAR(253),
    city             VARCHAR(100),
    country          VARCHAR(100),
    industry         VARCHAR(100),
    hubspot_owner_id INTEGER,
    createdate       DATETIME
);
CREATE TABLE contacts (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    firstname           VARCHAR(100),
    lastname            VARCHAR(100),
    email               VARCHAR(254),
    phone               VARCHAR(32),
    associatedcompanyid INTEGER,
    hubspot_owner_id    INTEGER NOT NULL,
    lifecyclestage      VARCHAR(40),
    createdate          DATETIME
);
CREATE TABLE deals (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    dealname            VARCHAR(200) NOT NULL,
    amount              TEXT,
    deal_currency_code  VARCHAR(3),
    pipeline            TEXT NOT NULL,
    dealstage           TEXT NOT NULL,
    closedate           DATE,
    associatedcompanyid INTEGER,
    hubspot_owner_id    INTEGER,
    createdate          DATETIME
);
CREATE TABLE notes (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    hs_note_body        TEXT NOT NULL,
    hs_timestamp        DATETIME,
    associatedcontactid INTEGER NOT NULL,
    hubspot_owner_id    INTEGER
);
INSERT INTO sqlite_sequence (name, seq) VALUES
    ('companies', 3000000), ('contacts', 1300000), ('deals', 4000000), ('notes', 8000000);
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_cases_have_the_documented_sizes() {
        assert_eq!((0..CONTACTS).filter(|&i| unprovisioned_contact(i)).count(), UNPROVISIONED_CONTACTS);
        assert_eq!((0..CONTACTS).filter(|&i| existing_contact(i).is_some()).count(), EXISTING_CONTACTS);
        assert_eq!((0..DEALS).filter(|&i| unmapped_deal(i)).count(), UNMAPPED_STAGE_DEALS);
        assert!((0..CONTACTS).all(|i| !(unprovisioned_contact(i) && existing_contact(i).is_some())));
    }

    #[test]
    fn every_generated_phone_is_valid_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..CONTACTS {
            for style in 0..5 {
                let e164 = crate::pipeline::transform::phone(&phone_formatted(i, style), phonenumber::country::Id::US)
                    .unwrap_or_else(|e| panic!("contact {i} style {style}: {e:?}"));
                if style == 0 {
                    assert!(seen.insert(e164), "phone of contact {i} repeats");
                }
            }
        }
    }
}
