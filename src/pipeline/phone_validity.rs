//! Phone-number validity with the `phonenumber` crate's own metadata and algorithm, but with each
//! region's patterns compiled once. The crate looks every pattern up in a shared LRU cache keyed
//! by the pattern's text, so hashing those long strings cost ~4 µs per number — most of the map
//! stage's time. The answers are identical: a test compares them with `phonenumber::is_valid`
//! across many countries and random digit strings.

use phonenumber::PhoneNumber;
use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use regex::{Regex, RegexBuilder};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

struct Desc {
    re: Regex,
    lengths: Vec<u16>,
}

impl Desc {
    fn new(d: &Descriptor) -> Option<Self> {
        Some(Self { re: anchored(d.national_number().as_str())?, lengths: d.possible_length().to_vec() })
    }
    /// The crate's `Descriptor::is_match`: a possible length, and a match starting at 0.
    fn is_match(&self, value: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(value.len() as u16))) && self.re.is_match(value)
    }
}

struct Region {
    leading_digits: Option<Regex>,
    general: Desc,
    /// Every typed descriptor (premium rate … mobile): a number is valid if one matches.
    types: Vec<Desc>,
}

impl Region {
    fn new(meta: &Metadata) -> Option<Self> {
        let d = meta.descriptors();
        let typed = [
            d.premium_rate(),
            d.toll_free(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
            d.fixed_line(),
            d.mobile(),
        ];
        Some(Self {
            leading_digits: match meta.leading_digits() {
                Some(r) => Some(anchored(r.as_str())?),
                None => None,
            },
            general: Desc::new(d.general())?,
            types: typed.into_iter().flatten().map(Desc::new).collect::<Option<Vec<_>>>()?,
        })
    }
    /// The lengths a number of the region may have: the general descriptor's, or (where the
    /// metadata lists none there) every typed descriptor's.
    fn allows_length(&self, len: u16) -> Option<bool> {
        if !self.general.lengths.is_empty() {
            return Some(self.general.lengths.contains(&len));
        }
        let typed: Vec<&Vec<u16>> = self.types.iter().map(|t| &t.lengths).filter(|l| !l.is_empty()).collect();
        (!typed.is_empty()).then(|| typed.iter().any(|l| l.contains(&len)))
    }

    fn has_type(&self, national: &str) -> bool {
        self.general.is_match(national) && self.types.iter().any(|t| t.is_match(national))
    }
}

/// A pattern as the crate compiles it (whitespace ignored), anchored at the start: `find(..)`
/// starting at 0 is the same as an anchored match.
fn anchored(pattern: &str) -> Option<Regex> {
    RegexBuilder::new(&format!("^(?:{pattern}\n)")).ignore_whitespace(true).build().ok()
}

/// The regions of one country calling code, in the database's order.
struct Code {
    /// `None` for non-geographic codes ("001"): the first metadata of the code decides.
    regions: Vec<Region>,
    non_geographic: bool,
}

fn rules(code: u16) -> Option<Arc<Code>> {
    static CACHE: OnceLock<RwLock<HashMap<u16, Option<Arc<Code>>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.read().ok()?.get(&code) {
        return found.clone();
    }
    let built = build(code).map(Arc::new);
    if let Ok(mut w) = cache.write() {
        w.insert(code, built.clone());
    }
    built
}

fn build(code: u16) -> Option<Code> {
    let names = DATABASE.region(&code)?;
    if names.len() == 1 && names[0] == "001" {
        let meta = DATABASE.by_code(&code)?.into_iter().next()?;
        return Some(Code { regions: vec![Region::new(meta)?], non_geographic: true });
    }
    let regions = names.iter().map(|n| DATABASE.by_id(*n).and_then(Region::new)).collect::<Option<Vec<_>>>()?;
    Some(Code { regions, non_geographic: false })
}

/// Same answer as `phonenumber::is_valid`, faster.
pub fn is_valid(number: &PhoneNumber) -> bool {
    let Some(code) = rules(number.code().value()) else { return false };
    let national = number.national().to_string();
    if code.non_geographic || code.regions.len() == 1 {
        return code.regions.first().is_some_and(|r| r.has_type(&national));
    }
    // Several regions share the code (+1, +7, +44…): the first whose leading digits match, or
    // (without leading digits) whose patterns match, decides.
    for region in code.regions.iter() {
        match &region.leading_digits {
            Some(lead) if lead.is_match(&national) => return region.has_type(&national),
            Some(_) => {}
            None if region.has_type(&national) => return true,
            None => {}
        }
    }
    false
}

/// A number of a length its country's numbers can have (libphonenumber's "possible number"):
/// the test that tells a number with a wrong or unassigned area code (possible, not valid) from
/// junk (too few or too many digits).
pub fn is_possible(number: &PhoneNumber) -> bool {
    let Some(code) = rules(number.code().value()) else { return false };
    let national = number.national().to_string();
    let len = national.len() as u16;
    // The code's main region (first in the database: the US for +1), or a region whose leading
    // digits the number starts with (+1 246… is Barbados); a region listing no lengths says
    // nothing, and with none listed at all, what any numbering plan allows (4 to 17 digits).
    let mut judged = false;
    for (i, r) in code.regions.iter().enumerate() {
        let applies = i == 0 || r.leading_digits.as_ref().is_some_and(|re| re.is_match(&national));
        let Some(allowed) = r.allows_length(len).filter(|_| applies) else { continue };
        judged = true;
        if allowed {
            return true;
        }
    }
    !judged && (4..=17).contains(&len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_crate_on_many_numbers() {
        let mut state: u64 = 42;
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z ^ (z >> 27)
        };
        let codes =
            ["1", "44", "49", "33", "39", "7", "61", "86", "91", "55", "800", "979", "262", "590", "47", "358", "34"];
        let mut checked = 0;
        let mut valid = 0;
        for i in 0..30_000 {
            let code = codes[i % codes.len()];
            let len = 6 + (next() % 7) as usize;
            let digits: String = (0..len).map(|_| char::from(b'0' + (next() % 10) as u8)).collect();
            let text = format!("+{code}{digits}");
            let Ok(number) = phonenumber::parse(None, &text) else { continue };
            let expected = phonenumber::is_valid(&number);
            assert_eq!(is_valid(&number), expected, "{text}");
            checked += 1;
            valid += usize::from(expected);
        }
        assert!(checked > 20_000 && valid > 1_000, "checked {checked}, valid {valid}");
        for text in
            ["+1 650 253 0000", "+39 02 3661 8300", "+44 7912 345678", "+800 1234 5678", "+1 2530000", "+49 1234"]
        {
            let number = phonenumber::parse(None, text).expect(text);
            assert_eq!(is_valid(&number), phonenumber::is_valid(&number), "{text}");
        }
    }
}
