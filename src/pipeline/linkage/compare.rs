//! Field comparisons for record linkage (issue #15): how alike two values of one field are, as a
//! level — exact, close, far, different — or no level at all when either side is blank (a blank
//! is neither agreement nor disagreement). Each kind of field has its own notion of "close":
//! names by Jaro–Winkler, ids, dates and phone digits by Damerau–Levenshtein (a typo or a
//! transposition), emails by local part and domain, company names without legal suffixes and
//! punctuation, web domains without scheme and `www.`.

/// How a field's values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Equal after trimming and ignoring case, or not.
    Exact,
    /// Person names: Jaro–Winkler on the normalised name.
    Name,
    /// Identifiers, dates and other digit strings: edit distance on the normalised characters.
    Digits,
    /// Phone numbers: edit distance on the digits (formatting never counts).
    Phone,
    /// Emails: the local part and the domain compared apart.
    Email,
    /// Company names: legal suffixes, `&`/`and`, punctuation and case normalised away.
    Company,
    /// Web domains: scheme, `www.`, path and case normalised away.
    Domain,
}

impl Kind {
    pub const NAMES: [&'static str; 7] = ["exact", "name", "digits", "phone", "email", "company", "domain"];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "exact" => Kind::Exact,
            "name" => Kind::Name,
            "digits" | "id" | "date" => Kind::Digits,
            "phone" => Kind::Phone,
            "email" => Kind::Email,
            "company" => Kind::Company,
            "domain" => Kind::Domain,
            _ => return None,
        })
    }

    /// How many levels this kind tells apart (level 0 is the closest).
    pub fn levels(self) -> usize {
        match self {
            Kind::Exact => 2,
            _ => 4,
        }
    }

    /// The kind's name in the project file.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Exact => "exact",
            Kind::Name => "name",
            Kind::Digits => "digits",
            Kind::Phone => "phone",
            Kind::Email => "email",
            Kind::Company => "company",
            Kind::Domain => "domain",
        }
    }

    /// Each level's short name, as `weights` in the project file names it.
    pub fn level_keys(self) -> &'static [&'static str] {
        match self {
            Kind::Exact => &["equal", "different"],
            Kind::Name => &["equal", "close", "similar", "different"],
            Kind::Digits | Kind::Phone => &["equal", "one_edit", "two_edits", "different"],
            Kind::Email => &["equal", "typo", "local_part", "different"],
            Kind::Company => &["equal", "legal_form", "similar", "different"],
            Kind::Domain => &["equal", "www", "registered", "different"],
        }
    }

    /// The level a short name stands for.
    pub fn level_key(self, key: &str) -> Option<usize> {
        self.level_keys().iter().position(|k| *k == key)
    }

    /// What each level means, for explanations.
    pub fn level_names(self) -> &'static [&'static str] {
        match self {
            Kind::Exact => &["equal", "different"],
            Kind::Name => &["equal", "close (Jaro–Winkler ≥ 0.92)", "similar (≥ 0.80)", "different"],
            Kind::Digits | Kind::Phone => &["equal", "one edit apart", "two edits apart", "different"],
            Kind::Email => &["equal", "same address, one typo", "same local part, other domain", "different"],
            Kind::Company => &["equal", "equal without legal form", "similar (Jaro–Winkler ≥ 0.80)", "different"],
            Kind::Domain => &["equal", "equal without www/scheme", "same registered name", "different"],
        }
    }
}

/// A value as its comparison reads it, normalised once: a record is compared with dozens of
/// candidates, and normalising both sides of every pair again was most of the linker's time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Lower case (exact, email, company, domain), the name's letters, the alphanumerics of an
    /// id or date, a phone's national digits.
    main: Box<str>,
    /// A company without its legal form, a domain without scheme and `www.`.
    key: Option<Box<str>>,
    /// A hash of `main`: most pairs compared differ, and told so without reading their text.
    hash: u64,
    /// An email's local part: the length of `main` before its last `@`.
    local: u32,
}

/// `None` for a blank value (nothing but spaces).
pub fn prepare(kind: Kind, value: Option<&str>) -> Option<Prepared> {
    let v = value.map(str::trim).filter(|v| !v.is_empty())?;
    let (main, key): (String, Option<String>) = match kind {
        Kind::Exact | Kind::Email => (v.to_lowercase(), None),
        Kind::Name => (name_key(v), None),
        Kind::Digits => (alnum(v), None),
        Kind::Phone => (national(&digits(v)).to_string(), None),
        Kind::Company => (v.to_lowercase(), Some(company_key(v))),
        Kind::Domain => (v.to_lowercase(), Some(domain_key(v))),
    };
    let hash = std::hash::BuildHasher::hash_one(&foldhash::fast::FixedState::with_seed(0x5eed), main.as_bytes());
    let local = match kind {
        Kind::Email => main.rfind('@').unwrap_or(main.len()) as u32,
        _ => 0,
    };
    Some(Prepared { main: main.into(), key: key.map(Into::into), hash, local })
}

/// The level at which `a` and `b` agree (0: exactly), or `None` when either is blank.
pub fn level(kind: Kind, a: Option<&str>, b: Option<&str>) -> Option<usize> {
    level_of(kind, &prepare(kind, a)?, &prepare(kind, b)?)
}

/// [`level`] of two prepared values.
pub fn level_of(kind: Kind, a: &Prepared, b: &Prepared) -> Option<usize> {
    let (x, y) = (&*a.main, &*b.main);
    if x.is_empty() || y.is_empty() {
        // Only a name, id or phone can be left with nothing to compare.
        return match kind {
            Kind::Name | Kind::Digits | Kind::Phone => None,
            _ => Some(usize::from(x != y)),
        };
    }
    // Equal 64-bit hashes of equal-length texts are taken for equal texts without reading them
    // again: a collision among the pairs of a billion-record run is about one chance in 10⁸.
    if a.hash == b.hash && x.len() == y.len() {
        return Some(0);
    }
    // From here on the two differ.
    Some(match kind {
        Kind::Exact => 1,
        Kind::Name => similarity_of_different(x, y),
        Kind::Digits | Kind::Phone => edits_of_different(x, y),
        Kind::Email => email_level((x, a.local as usize), (y, b.local as usize)),
        Kind::Company => {
            let (x, y) = (a.key.as_deref().unwrap_or_default(), b.key.as_deref().unwrap_or_default());
            if x.is_empty() || y.is_empty() {
                return None;
            }
            match by_similarity(x, y) {
                0 => 1,
                1 | 2 => 2,
                _ => 3,
            }
        }
        Kind::Domain => {
            let (x, y) = (a.key.as_deref().unwrap_or_default(), b.key.as_deref().unwrap_or_default());
            if x.is_empty() || y.is_empty() {
                return None;
            }
            if x == y {
                1
            } else if registered_name(x) == registered_name(y) {
                2
            } else {
                3
            }
        }
    })
}

/// Jaro–Winkler levels; a single typo or transposed pair is at least "similar" however short
/// the name (`lee`/`lxe` scores 0.78, below the "similar" line, and was taken for another name).
fn by_similarity(a: &str, b: &str) -> usize {
    if a == b { 0 } else { similarity_of_different(a, b) }
}

/// [`by_similarity`] of two names known to differ; an initial is "similar" to its name (`H`,
/// `Hannah`).
fn similarity_of_different(a: &str, b: &str) -> usize {
    let s = jaro_winkler(a, b);
    if s >= 0.92 {
        1
    } else if s >= 0.80 || one_edit_apart(a, b) || is_initial(a, b) || is_initial(b, a) {
        2
    } else {
        3
    }
}

/// A name's generational suffix (`jr`, `sr`, `iii`, …), when its last word is one.
pub fn suffix_of(p: &Prepared) -> Option<&str> {
    let last = p.main.rsplit(' ').next()?;
    (p.main.contains(' ') && SUFFIXES.contains(&last)).then_some(match last {
        "junior" => "jr",
        "senior" => "sr",
        other => other,
    })
}

/// Whether an email's local part is made of the person's names and their initials only
/// (`henry.mariani`, `hmariani`, `mariani_h`): it repeats the names and says nothing more, so
/// namesakes at two employers share it. Digits or any other word make it the person's own.
pub fn made_of_names(local: &str, names: &[&str]) -> bool {
    let s: String = local.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect();
    let words: Vec<String> = names
        .iter()
        .flat_map(|n| name_key(n).split(' ').map(String::from).collect::<Vec<_>>())
        .filter(|w| !w.is_empty())
        .collect();
    if s.is_empty() || words.is_empty() || s.chars().any(|c| c.is_ascii_digit()) {
        return false;
    }
    // Can s be cut into names and initials? (s is short: a table over its positions.)
    let chars: Vec<char> = s.chars().collect();
    let mut reach = vec![false; chars.len() + 1];
    reach[0] = true;
    for at in 0..chars.len() {
        if !reach[at] {
            continue;
        }
        for w in &words {
            let w: Vec<char> = w.chars().collect();
            if chars[at..].starts_with(&w) {
                reach[at + w.len()] = true;
            }
            if w.first() == Some(&chars[at]) {
                reach[at + 1] = true;
            }
        }
    }
    reach[chars.len()]
}

/// `x` is a single letter that `y` begins with.
fn is_initial(x: &str, y: &str) -> bool {
    x.chars().count() == 1 && y.starts_with(x)
}

/// Whether two prepared names are spellings of one name: equal, close (Jaro–Winkler 0.92), a
/// typo apart, or an initial — word by word, any word of one with any of the other. Merely
/// "similar" names (`Jesús`, `Jessica`) are not.
pub fn one_name(a: &Prepared, b: &Prepared) -> bool {
    let close = |x: &str, y: &str| {
        x == y || jaro_winkler(x, y) >= 0.92 || one_edit_apart(x, y) || is_initial(x, y) || is_initial(y, x)
    };
    a.main.split(' ').any(|x| b.main.split(' ').any(|y| !x.is_empty() && close(x, y)))
}

/// Jaro–Winkler similarity, as `strsim` computes it to the last bit, without its allocation for
/// the ASCII names of at most 64 letters that nearly every comparison is (it runs for each name
/// of each candidate pair); anything else goes to `strsim`.
fn jaro_winkler(a: &str, b: &str) -> f64 {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    if !(a.is_ascii() && b.is_ascii()) || x.len() > 64 || y.len() > 64 {
        return strsim::jaro_winkler(a, b);
    }
    let jaro = ascii_jaro(x, y);
    if jaro > 0.7 {
        let prefix = x.iter().take(4).zip(y).take_while(|(p, q)| p == q).count();
        jaro + 0.1 * prefix as f64 * (1.0 - jaro)
    } else {
        jaro
    }
}

fn ascii_jaro(a: &[u8], b: &[u8]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    } else if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let range = (a.len().max(b.len()) / 2).saturating_sub(1);
    let (mut a_flags, mut b_flags) = (0u64, 0u64);
    let mut matches = 0usize;
    for (i, &c) in a.iter().enumerate() {
        let (low, high) = (i.saturating_sub(range), b.len().min(i + range + 1));
        for (j, &d) in b.iter().enumerate().take(high).skip(low) {
            if d == c && b_flags & (1 << j) == 0 {
                a_flags |= 1 << i;
                b_flags |= 1 << j;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let mut transpositions = 0usize;
    let mut j = 0;
    for (i, &c) in a.iter().enumerate() {
        if a_flags & (1 << i) == 0 {
            continue;
        }
        while b_flags & (1 << j) == 0 {
            j += 1;
        }
        if b[j] != c {
            transpositions += 1;
        }
        j += 1;
    }
    transpositions /= 2;
    ((matches as f64 / a.len() as f64)
        + (matches as f64 / b.len() as f64)
        + ((matches - transpositions) as f64 / matches as f64))
        / 3.0
}

/// Whether two different values are one edit apart (a typo, a letter more or less, a transposed
/// pair): what `edits(a, b) == 1` says, in one pass over the text.
fn one_edit_apart(a: &str, b: &str) -> bool {
    if !(a.is_ascii() && b.is_ascii()) {
        return a != b && strsim::osa_distance(a, b) == 1;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let start = short.iter().zip(long).take_while(|(p, q)| p == q).count();
    if start == short.len() {
        // One side is the other and a letter more (or they are equal: not one edit apart).
        return long.len() != short.len();
    }
    let (s, l) = (&short[start..], &long[start..]);
    if s.len() == l.len() {
        // A substitution, or a transposed pair.
        s[1..] == l[1..] || (s.len() >= 2 && s[0] == l[1] && s[1] == l[0] && s[2..] == l[2..])
    } else {
        // A letter inserted in the longer.
        *s == l[1..]
    }
}

/// Edits between two different values, counting a transposed pair as one (optimal string alignment), up
/// to 3: lengths 3 or more apart are "different" without a comparison.
fn edits_of_different(a: &str, b: &str) -> usize {
    if one_edit_apart(a, b) {
        return 1;
    }
    if a.len().abs_diff(b.len()) >= 3 && a.chars().count().abs_diff(b.chars().count()) >= 3 {
        return 3;
    }
    // Most pairs compared are strangers: the characters one has and the other lacks bound the
    // edits from below (a transposition moves none), so they are told apart without the table.
    if a.is_ascii() && b.is_ascii() {
        let mut count = [0i32; 128];
        for c in a.bytes() {
            count[c as usize] += 1;
        }
        for c in b.bytes() {
            count[c as usize] -= 1;
        }
        let (more, fewer) = count.iter().fold((0, 0), |(m, f), &n| if n > 0 { (m + n, f) } else { (m, f - n) });
        if more.max(fewer) >= 3 {
            return 3;
        }
    }
    strsim::osa_distance(a, b).min(3)
}

/// The last ten digits of a long number: `+1 415…` and `415…` are one number.
fn national(d: &str) -> &str {
    &d[d.len().saturating_sub(10)..]
}

/// A phone number's digits without its extension (`+1 404 551 2040 ext 317`, `x317`, `#317`,
/// `, 317`): once a number has begun, a letter or `#`, `,`, `;` starts the extension.
pub fn digits(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if c.is_ascii_digit() {
            out.push(c);
        } else if out.len() >= 7 && (c.is_alphabetic() || matches!(c, '#' | ',' | ';')) {
            break;
        }
    }
    out
}

fn alnum(v: &str) -> String {
    v.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// A name in one spelling: lower case, letters and single spaces only.
pub fn name_key(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for w in v.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(w.chars().flat_map(char::to_lowercase));
    }
    out
}

/// Generational suffixes: `Henry Brown Jr` and `Henry Brown Sr` are a father and his son.
const SUFFIXES: &[&str] = &["jr", "sr", "junior", "senior", "ii", "iii", "iv"];

/// A person's name as a comparison of two records needs it: given and family names as words
/// (lower case, letters only), and a generational suffix.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PersonName {
    given: Vec<String>,
    family: Vec<String>,
    /// Words of a full name that could not be told apart (a single word).
    other: Vec<String>,
    suffix: Option<String>,
}

impl PersonName {
    /// From a given and a family name, or else a full name: `Ivan Brown`, `Brown, Ivan` (family
    /// first when a comma says so), `Henry Brown Jr` (the first word is the given name, the last
    /// the family name).
    pub fn new(given: Option<&str>, family: Option<&str>, full: Option<&str>) -> Self {
        let words = |v: Option<&str>| -> Vec<String> {
            v.map(name_key).unwrap_or_default().split(' ').filter(|w| !w.is_empty()).map(String::from).collect()
        };
        let mut name = PersonName::default();
        let (mut g, mut f) = (words(given), words(family));
        if g.is_empty() && f.is_empty() {
            match full.map(str::trim).and_then(|v| v.split_once(',')) {
                Some((family, given)) => (g, f) = (words(Some(given)), words(Some(family))),
                None => {
                    let mut all = words(full);
                    name.suffix = take_suffix(&mut all);
                    match all.len() {
                        0 => {}
                        1 => name.other = all,
                        _ => (g, f) = (vec![all[0].clone()], vec![all[all.len() - 1].clone()]),
                    }
                }
            }
        }
        name.suffix = name.suffix.or_else(|| take_suffix(&mut f)).or_else(|| take_suffix(&mut g));
        (name.given, name.family) = (g, f);
        name
    }

    fn words(&self) -> impl Iterator<Item = &String> {
        self.given.iter().chain(&self.family).chain(&self.other)
    }
}

fn take_suffix(words: &mut Vec<String>) -> Option<String> {
    if words.len() > 1 && words.last().is_some_and(|w| SUFFIXES.contains(&w.as_str())) {
        return words.pop().map(|s| {
            if s == "junior" {
                "jr".into()
            } else if s == "senior" {
                "sr".into()
            } else {
                s
            }
        });
    }
    None
}

/// Whether two words are one name: equal, close (`Jon`/`John`, Jaro–Winkler 0.92) or a typo
/// apart. An initial is not: on a family's address `A. Johnson` may be Ann or Andrew, and in an
/// office `S. Hansen` is not Stefan Farina; `Mark` and `Martini` are merely "similar".
fn alike(x: &str, y: &str) -> bool {
    x == y || (x.chars().count() > 1 && y.chars().count() > 1 && (jaro_winkler(x, y) >= 0.92 || one_edit_apart(x, y)))
}

/// Whether two people's names say they are two people: given names that are not one name either
/// way round (twins, spouses, colleagues of one surname: Anna and Maria Kowalski; an initial is
/// not enough, nor a "similar" name), generational
/// suffixes that differ (Jr and Sr), or — where a given name is missing on either side — no
/// word in common at all. A blank name on either side is no evidence: false.
pub fn names_differ(a: &PersonName, b: &PersonName) -> bool {
    if a.words().next().is_none() || b.words().next().is_none() {
        return false;
    }
    if let (Some(x), Some(y)) = (&a.suffix, &b.suffix)
        && x != y
    {
        return true;
    }
    let any = |xs: &[String], ys: &[String]| xs.iter().any(|x| ys.iter().any(|y| alike(x, y)));
    if !a.given.is_empty() && !b.given.is_empty() {
        let swapped = any(&a.given, &b.family) && any(&a.family, &b.given);
        return !any(&a.given, &b.given) && !swapped;
    }
    !a.words().any(|x| b.words().any(|y| alike(x, y)))
}

/// Two different lower-case emails, each with the length of its local part (before the last `@`).
fn email_level((a, la): (&str, usize), (b, lb): (&str, usize)) -> usize {
    let (local_a, local_b) = (&a[..la], &b[..lb]);
    let (dom_a, dom_b) = (&a[la..], &b[lb..]);
    if la > 0 && lb > 0 && one_edit_apart(a, b) && !differs_in_a_digit(a, b) {
        1
    } else if local_a == local_b && la > 0 && dom_a != dom_b {
        2
    } else {
        3
    }
}

/// Whether the part where two texts differ holds a digit: `nils.cohen.3849@` and
/// `nils.cohen.349@`, `jsmith1@` and `jsmith2@` are numbered addresses of different people,
/// not one address mistyped.
fn differs_in_a_digit(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let room = a.len().min(b.len()) - prefix;
    let suffix = a.iter().rev().zip(b.iter().rev()).take(room).take_while(|(x, y)| x == y).count();
    let middle = |t: &[u8]| t[prefix..t.len() - suffix].iter().any(u8::is_ascii_digit);
    middle(a) || middle(b)
}

/// Words a company's name carries for its legal form, not its identity.
const LEGAL_FORMS: &[&str] = &[
    "inc",
    "incorporated",
    "corp",
    "corporation",
    "co",
    "company",
    "llc",
    "llp",
    "lp",
    "ltd",
    "limited",
    "plc",
    "gmbh",
    "ag",
    "kg",
    "sa",
    "sas",
    "sarl",
    "srl",
    "spa",
    "bv",
    "nv",
    "oy",
    "ab",
    "as",
    "aps",
    "pty",
    "pte",
    "kk",
    "group",
];

/// A company's name without case, punctuation, `the`, `&` (as `and`) and legal forms:
/// `ABC, Inc.`, `ABC Corp` and `abc corporation` are all `abc`.
pub fn company_key(v: &str) -> String {
    let lowered = v.to_lowercase().replace('&', " and ");
    let words: Vec<&str> = lowered.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let mut end = words.len();
    while end > 1 && LEGAL_FORMS.contains(&words[end - 1]) {
        end -= 1;
    }
    let start = usize::from(words.first() == Some(&"the") && end > 1);
    words[start..end].join(" ")
}

/// A web domain without scheme, `www.`, port, path and case: `https://www.Acme.com/about` is
/// `acme.com`.
pub fn domain_key(v: &str) -> String {
    let v = v.trim().to_lowercase();
    let v = v.split_once("://").map_or(v.as_str(), |(_, rest)| rest);
    let v = v.split(['/', '?', '#']).next().unwrap_or_default();
    let v = v.rsplit_once('@').map_or(v, |(_, host)| host);
    let v = v.split(':').next().unwrap_or_default();
    v.strip_prefix("www.").unwrap_or(v).trim_end_matches('.').to_string()
}

/// The name a domain was registered under, without its public suffix as far as one can tell
/// without a list: `acme.co.uk` and `acme.com` are both `acme`.
fn registered_name(domain: &str) -> &str {
    let labels: Vec<&str> = domain.split('.').collect();
    match labels.len() {
        0 | 1 => domain,
        n if n >= 3 && labels[n - 2].len() <= 3 => labels[n - 3],
        n => labels[n - 2],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KINDS: [Kind; 7] =
        [Kind::Exact, Kind::Name, Kind::Digits, Kind::Phone, Kind::Email, Kind::Company, Kind::Domain];

    proptest! {
        /// For every kind and any text: a value agrees with itself exactly, a comparison reads
        /// the same both ways, and a level is one the kind has.
        #[test]
        fn levels_are_reflexive_symmetric_and_in_range(a in "\\PC{0,12}", b in "\\PC{0,12}") {
            for kind in KINDS {
                if let Some(l) = level(kind, Some(&a), Some(&a)) {
                    prop_assert_eq!(l, 0, "{:?} {:?}", kind, a);
                }
                let (ab, ba) = (level(kind, Some(&a), Some(&b)), level(kind, Some(&b), Some(&a)));
                prop_assert_eq!(ab, ba, "{:?} {:?} {:?}", kind, a, b);
                prop_assert!(ab.is_none_or(|l| l < kind.levels()), "{:?} {:?}", kind, ab);
            }
        }
    }

    proptest! {
        /// The allocation-free Jaro–Winkler gives strsim's value to the last bit, for names,
        /// any ASCII, and (through strsim itself) anything else.
        #[test]
        fn jaro_winkler_is_strsims(a in "[a-e ]{0,12}|[ -~]{0,70}|\\PC{0,8}", b in "[a-e ]{0,12}|[ -~]{0,70}|\\PC{0,8}") {
            prop_assert_eq!(jaro_winkler(&a, &b).to_bits(), strsim::jaro_winkler(&a, &b).to_bits(), "{:?} {:?}", a, b);
        }
    }

    proptest! {
        /// The one-pass check says what the edit distance says, for near and far pairs alike.
        #[test]
        fn one_edit_apart_is_an_edit_distance_of_one(a in "[ab]{0,6}|[a-z]{0,10}|\\PC{0,5}", b in "[ab]{0,6}|[a-z]{0,10}|\\PC{0,5}") {
            prop_assert_eq!(one_edit_apart(&a, &b), strsim::osa_distance(&a, &b) == 1, "{:?} {:?}", a, b);
            let (joined, typo) = (format!("{}{}", a, b), format!("{}x{}", a, b));
            prop_assert!(one_edit_apart(&joined, &typo), "{:?} {:?}", joined, typo);
        }
    }

    #[test]
    fn a_blank_on_either_side_is_no_level() {
        for kind in [Kind::Exact, Kind::Name, Kind::Digits, Kind::Phone, Kind::Email, Kind::Company, Kind::Domain] {
            assert_eq!(level(kind, None, Some("x")), None, "{kind:?}");
            assert_eq!(level(kind, Some("  "), Some("x")), None, "{kind:?}");
            assert_eq!(level(kind, Some("x"), Some("")), None, "{kind:?}");
        }
        assert_eq!(level(Kind::Phone, Some("n/a"), Some("4155552671")), None, "no digits: nothing to compare");
    }

    #[test]
    fn names_by_jaro_winkler() {
        assert_eq!(level(Kind::Name, Some("Jonathan  Smith"), Some("jonathan smith")), Some(0));
        assert_eq!(level(Kind::Name, Some("Jonathan Smith"), Some("Jonathon Smith")), Some(1));
        assert_eq!(level(Kind::Name, Some("Smith"), Some("Smyth")), Some(2));
        assert_eq!(level(Kind::Name, Some("Ann Lee"), Some("Bob Kowalski")), Some(3));
        assert_eq!(level(Kind::Name, Some("lee"), Some("lxe")), Some(2), "one typo in a short name");
        assert_eq!(level(Kind::Name, Some("ed"), Some("de")), Some(2), "a transposed pair");
        assert_eq!(level(Kind::Name, Some("ann"), Some("dan")), Some(3));
    }

    #[test]
    fn ids_dates_and_phones_by_edits_formatting_aside() {
        assert_eq!(level(Kind::Digits, Some("1984-03-12"), Some("19840312")), Some(0));
        assert_eq!(level(Kind::Digits, Some("1984-03-12"), Some("1984-03-21")), Some(1), "a transposition");
        assert_eq!(level(Kind::Digits, Some("AB-1234"), Some("ab1243")), Some(1));
        assert_eq!(level(Kind::Digits, Some("1234"), Some("9876")), Some(3));
        assert_eq!(level(Kind::Phone, Some("(415) 555-2671"), Some("+1 415.555.2671")), Some(0), "the country code");
        assert_eq!(level(Kind::Phone, Some("(415) 555-2671"), Some("(415) 555-2617")), Some(1));
        assert_eq!(level(Kind::Phone, Some("415 555 2671"), Some("4155552671")), Some(0));
        for with_extension in ["+1 404 551 2040 ext 317", "(404) 551-2040 x317", "404.551.2040#317", "4045512040, 317"]
        {
            assert_eq!(level(Kind::Phone, Some(with_extension), Some("+14045512040")), Some(0), "{with_extension}");
        }
        assert_eq!(level(Kind::Phone, Some("tel: +1 404 551 2040"), Some("4045512040")), Some(0));
    }

    #[test]
    fn names_tell_two_people_apart_by_given_name_suffix_or_no_word_in_common() {
        let full = |v: &str| PersonName::new(None, None, Some(v));
        let parts = |g: &str, f: &str| PersonName::new(Some(g), Some(f), None);
        for (a, b) in [
            (full("Ivan Brown"), full("Raj Patel")),
            (full("Anna Kowalski"), full("Maria Kowalski")),
            (parts("Zoe", "Kristensen"), parts("John", "Kristensen")),
            (full("Henry Brown Jr"), full("Henry Brown Sr")),
            (parts("Henry", "Brown Jr."), parts("Henry", "Brown Sr")),
            (full("Ana"), full("Zoë Müller")),
            (full("S. Hansen"), full("Stefan Farina")),
            (full("A. Johnson"), full("Ann Johnson")),
            (parts("Martini,", "Richard"), parts("Mark", "Martini")),
            (full("Martini, Richard"), full("Mark Martini")),
            (parts("Ann", "Able"), parts("Annie", "Able")),
        ] {
            assert!(names_differ(&a, &b), "{a:?} / {b:?}");
            assert!(names_differ(&b, &a), "{b:?} / {a:?}");
        }
        for (a, b) in [
            (full("Ivan Brown"), full("Brown, Ivan")),
            (full("Ivan Brown"), full("Ivan Petrov")),
            (full("Smith John"), full("John Smith")),
            (full("Jon Smyth"), parts("John", "Smith")),
            (full("Henry Brown Jr"), full("Henry Brown")),
            (full("Ivan Brown"), full("")),
            (full("José García"), parts("JOSE", "GARCIA")),
            (full("Existing"), full("Existing Renamed")),
            (parts("Ann", "Able"), parts("ANN", "ABLE")),
        ] {
            assert!(!names_differ(&a, &b), "{a:?} / {b:?}");
            assert!(!names_differ(&b, &a), "{b:?} / {a:?}");
        }
    }

    #[test]
    fn a_local_part_of_names_and_initials_only_says_nothing_more() {
        for local in ["henry.mariani", "hmariani", "mariani_h", "henrymariani", "h.m", "Henry-Mariani"] {
            assert!(made_of_names(local, &["Henry", "Mariani"]), "{local}");
        }
        for local in ["henry.mariani.1974", "hmariani2", "henry.m.sales", "info", ""] {
            assert!(!made_of_names(local, &["Henry", "Mariani"]), "{local}");
        }
        let p = |v: &str| prepare(Kind::Name, Some(v)).expect("name");
        assert_eq!(suffix_of(&p("De Angelis Sr")), Some("sr"));
        assert_eq!(suffix_of(&p("Brown Junior")), Some("jr"));
        assert_eq!(suffix_of(&p("Jr")), None, "a name that is only a suffix has none");
        assert_eq!(suffix_of(&p("Brown")), None);
    }

    #[test]
    fn a_digit_more_or_other_in_an_email_is_another_address() {
        let email = |a: &str, b: &str| level(Kind::Email, Some(a), Some(b));
        assert_eq!(email("nils.cohen.3849@mail6.example", "NILS.COHEN.349@MAIL6.EXAMPLE"), Some(3));
        assert_eq!(email("jsmith1@acme.example", "jsmith2@acme.example"), Some(3));
        assert_eq!(email("jsmith12@acme.example", "jsmith21@acme.example"), Some(3));
        assert_eq!(email("jsmith@acme.example", "jsmiht@acme.example"), Some(1), "a letter typo is still one");
        assert_eq!(email("ann.lee1@acme.example", "ann.le1@acme.example"), Some(1));
    }

    #[test]
    fn emails_by_local_part_and_domain() {
        assert_eq!(level(Kind::Email, Some("Ann@X.com"), Some("ann@x.com")), Some(0));
        assert_eq!(level(Kind::Email, Some("ann@x.com"), Some("anne@x.com")), Some(1));
        assert_eq!(level(Kind::Email, Some("ann.lee@work.com"), Some("ann.lee@gmail.com")), Some(2));
        assert_eq!(level(Kind::Email, Some("ann@x.com"), Some("bob@y.com")), Some(3));
    }

    #[test]
    fn companies_without_their_legal_form() {
        for (a, b) in
            [("ABC Corp", "ABC Corporation"), ("ABC, Inc.", "abc"), ("The Smith & Sons Ltd", "Smith and Sons")]
        {
            assert_eq!(level(Kind::Company, Some(a), Some(b)), Some(1), "{a} / {b}");
        }
        assert_eq!(company_key("Co"), "co", "a name that is only a legal form keeps it");
        assert_eq!(level(Kind::Company, Some("Acme GmbH"), Some("Acme AG")), Some(1));
        assert_eq!(level(Kind::Company, Some("Acme"), Some("Acne Corp")), Some(2));
        assert_eq!(level(Kind::Company, Some("Acme"), Some("Globex")), Some(3));
    }

    #[test]
    fn domains_without_scheme_www_or_path() {
        assert_eq!(domain_key("https://www.Acme.com/about?x=1"), "acme.com");
        assert_eq!(domain_key("sales@acme.com"), "acme.com");
        assert_eq!(level(Kind::Domain, Some("http://www.acme.com"), Some("acme.com")), Some(1));
        assert_eq!(level(Kind::Domain, Some("acme.co.uk"), Some("acme.com")), Some(2));
        assert_eq!(level(Kind::Domain, Some("acme.com"), Some("globex.com")), Some(3));
    }
}
