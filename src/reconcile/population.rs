//! One pass over every written record: each is looked up in the destination (missing records),
//! a seeded sample (or all) is compared field by field with what Cutover wrote (read-back), and
//! every record present counts towards the value distributions, the exact sums and the parent
//! links. Then each parent reference is checked to exist.

use super::{DistRow, Distribution, FieldDiff, LIST_CAP, Options, ReadBack, RecordList, Relationship, SumCheck};
use crate::compare::{canonical, decimal, same};
use crate::model::{DestUser, FieldType, Value};
use crate::pipeline::Engine;
use crate::pipeline::plan::ObjectPlan;
use crate::pipeline::scope::seeded_rank;
use color_eyre::eyre::{Result, WrapErr, eyre};
use indexmap::IndexMap;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

const PAGE: usize = 500;
/// A field with more distinct values than this is not categorical; its distribution is dropped.
const MAX_CATEGORIES: usize = 500;

pub struct Population {
    pub readback: ReadBack,
    pub distributions: Vec<Distribution>,
    pub sums: Vec<SumCheck>,
    pub relationships: Vec<Relationship>,
    /// Written or matched records sharing a match-key value (see `witness`), and how many values.
    pub duplicates: (Vec<super::witness::SharedKey>, u64),
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Categorical,
    Sum,
    Link,
    Plain,
}

fn role(plan: &ObjectPlan, field: &str, ty: FieldType) -> Role {
    let rule = plan.rules.iter().find(|r| r.dest == field);
    let picklist = plan.schema.field(field).is_some_and(|f| f.picklist.is_some());
    match rule {
        Some(r) if r.parent.is_some() => Role::Link,
        Some(r) if r.owner || r.translate.is_some() || picklist => Role::Categorical,
        _ if picklist || ty == FieldType::Boolean => Role::Categorical,
        // Whole numbers that name something (an owner id, an external id, a match key) are
        // identifiers: their sum means nothing.
        _ if ty == FieldType::Integer && (names_an_id(field) || plan.match_keys.iter().any(|k| k.field == field)) => {
            Role::Plain
        }
        _ if matches!(ty, FieldType::Decimal | FieldType::Number | FieldType::Integer) => Role::Sum,
        _ => Role::Plain,
    }
}

/// `id`, `owner_id`, `hubspot_owner_id`, `ownerId`, `externalid`: a field named for an identifier.
fn names_an_id(field: &str) -> bool {
    let f = field.to_ascii_lowercase();
    f == "id" || f.ends_with("_id") || field.ends_with("Id") || ["ownerid", "externalid"].iter().any(|s| f.ends_with(s))
}

fn sample(ids: Vec<String>, options: Options) -> Option<HashSet<String>> {
    if options.all {
        return None;
    }
    let mut ranked: Vec<(u64, String)> = ids.into_iter().map(|id| (seeded_rank(options.seed, &id), id)).collect();
    let n = options.sample.min(ranked.len());
    if n < ranked.len() {
        ranked.select_nth_unstable(n);
        ranked.truncate(n);
    }
    Some(ranked.into_iter().map(|(_, id)| id).collect())
}

#[derive(Default)]
struct Tally {
    mapped: HashMap<Option<String>, u64>,
    destination: HashMap<Option<String>, u64>,
    overflow: bool,
}

impl Tally {
    fn add(&mut self, mapped: Option<String>, destination: Option<String>) {
        if self.overflow {
            return;
        }
        *self.mapped.entry(mapped).or_default() += 1;
        *self.destination.entry(destination).or_default() += 1;
        if self.mapped.len() > MAX_CATEGORIES || self.destination.len() > MAX_CATEGORIES {
            self.overflow = true;
            self.mapped.clear();
            self.destination.clear();
        }
    }
}

#[derive(Default)]
struct Sum {
    mapped: Decimal,
    destination: Decimal,
    mapped_not_numbers: u64,
    destination_not_numbers: u64,
}

fn add_to(total: &mut Decimal, not_numbers: &mut u64, value: Option<&str>) {
    let Some(v) = value.filter(|v| !v.trim().is_empty()) else { return };
    match decimal(v).and_then(|d| total.checked_add(d)) {
        Some(t) => *total = t,
        None => *not_numbers += 1,
    }
}

pub async fn check(
    engine: &Engine,
    plan: &ObjectPlan,
    plans: &[Arc<ObjectPlan>],
    users: &[DestUser],
    options: Options,
) -> Result<Population> {
    let dest = engine.destination();
    let fields: Vec<String> = plan.dest_fields.to_vec();
    let types: Vec<FieldType> =
        fields.iter().map(|f| plan.schema.field(f).map(|d| d.ty).unwrap_or(FieldType::Text)).collect();
    let roles: Vec<Role> = fields.iter().zip(&types).map(|(f, &t)| role(plan, f, t)).collect();
    let lock_store = || engine.store().lock().map_err(|_| eyre!("state store lock poisoned"));
    let ids = {
        let store = lock_store()?;
        tokio::task::block_in_place(|| store.id_map_ids(&plan.name))?
    };
    let sampled = sample(ids, options);
    let mut readback = ReadBack::default();
    let mut tallies: Vec<Tally> = fields.iter().map(|_| Tally::default()).collect();
    let mut sums: Vec<Sum> = fields.iter().map(|_| Sum::default()).collect();
    // Per link field: parent destination id → the children pointing at it.
    let mut links: Vec<HashMap<String, Vec<String>>> = fields.iter().map(|_| HashMap::new()).collect();
    let mut linked: Vec<u64> = vec![0; fields.len()];
    let mut wrong_parent: Vec<RecordList> = fields.iter().map(|_| RecordList::default()).collect();
    let mut keys = super::witness::KeyWitness::new(engine, plan);
    let mut after = String::new();
    // A destination record fed by several source records (members) counts once in the
    // distributions, the sums and the links.
    let mut counted: HashSet<String> = HashSet::new();
    loop {
        let page = {
            let store = lock_store()?;
            tokio::task::block_in_place(|| store.written_page(&plan.name, &after, PAGE))?
        };
        let Some(last) = page.last() else { break };
        after = last.source_id.clone();
        let mut dest_ids: Vec<String> = page.iter().map(|w| w.dest_id.clone()).collect();
        dest_ids.sort_unstable();
        dest_ids.dedup();
        let found = dest
            .read(&plan.dest_object, &dest_ids, &fields)
            .await
            .wrap_err_with(|| format!("reading {} back from the destination", plan.name))?;
        for w in &page {
            readback.written += 1;
            let Some(actual) = found.get(&w.dest_id) else {
                readback.missing.push(w.source_id.clone());
                continue;
            };
            keys.see(&w.dest_id, actual);
            let image: Option<IndexMap<String, Value>> = match &w.written {
                Some(json) => Some(serde_json::from_str(json).wrap_err_with(|| {
                    format!("the store's record of what was written for {} {} is damaged", plan.name, w.source_id)
                })?),
                None => None,
            };
            let Some(image) = image else {
                readback.no_image += 1;
                continue;
            };
            let compare = sampled.as_ref().is_none_or(|s| s.contains(&w.source_id));
            let first_time = counted.insert(w.dest_id.clone());
            let mut identical = true;
            for (i, field) in fields.iter().enumerate() {
                // A field mapped only after this record was written has nothing to compare with.
                let Some(wrote) = image.get(field) else { continue };
                let found = actual.get(i).cloned().flatten();
                let (wrote, found) = (wrote.as_deref(), found.as_deref());
                match roles[i] {
                    _ if !first_time => {}
                    Role::Categorical => tallies[i].add(canonical(types[i], wrote), canonical(types[i], found)),
                    Role::Sum => {
                        let s = &mut sums[i];
                        add_to(&mut s.mapped, &mut s.mapped_not_numbers, wrote);
                        add_to(&mut s.destination, &mut s.destination_not_numbers, found);
                    }
                    Role::Link => {
                        if let Some(parent) = found.filter(|v| !v.trim().is_empty()) {
                            linked[i] += 1;
                            links[i].entry(parent.to_string()).or_default().push(w.source_id.clone());
                        }
                    }
                    Role::Plain => {}
                }
                if compare && !same(types[i], wrote, found) {
                    identical = false;
                    readback.differences_total += 1;
                    if roles[i] == Role::Link {
                        wrong_parent[i].push(w.source_id.clone());
                    }
                    if readback.differences.len() < LIST_CAP {
                        readback.differences.push(FieldDiff {
                            source_id: w.source_id.clone(),
                            dest_id: w.dest_id.clone(),
                            field: field.clone(),
                            wrote: wrote.map(str::to_string),
                            found: found.map(str::to_string),
                        });
                    }
                }
            }
            if compare {
                readback.checked += 1;
                if identical {
                    readback.identical += 1;
                }
            }
        }
    }

    let owner_names: HashMap<&str, &str> = users.iter().map(|u| (u.id.as_str(), u.name.as_str())).collect();
    let mut distributions = Vec::new();
    let mut sum_checks = Vec::new();
    let mut relationships = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        match roles[i] {
            Role::Categorical => {
                let t = std::mem::take(&mut tallies[i]);
                if t.overflow {
                    continue;
                }
                let owner = plan.rules.iter().any(|r| r.dest == *field && r.owner);
                let mut values: BTreeMap<Option<String>, (u64, u64)> = BTreeMap::new();
                for (v, n) in t.mapped {
                    values.entry(v).or_default().0 = n;
                }
                for (v, n) in t.destination {
                    values.entry(v).or_default().1 = n;
                }
                let mut rows: Vec<DistRow> = values
                    .into_iter()
                    .map(|(value, (mapped, destination))| DistRow {
                        label: if owner {
                            value.as_deref().and_then(|v| owner_names.get(v)).map(|n| n.to_string())
                        } else {
                            None
                        },
                        value,
                        mapped,
                        destination,
                    })
                    .collect();
                rows.sort_by(|a, b| b.mapped.cmp(&a.mapped).then_with(|| a.value.cmp(&b.value)));
                distributions.push(Distribution { field: field.clone(), rows });
            }
            Role::Sum => {
                let s = &sums[i];
                sum_checks.push(SumCheck {
                    field: field.clone(),
                    mapped: s.mapped.normalize().to_string(),
                    destination: s.destination.normalize().to_string(),
                    mapped_not_numbers: s.mapped_not_numbers,
                    destination_not_numbers: s.destination_not_numbers,
                });
            }
            Role::Link => {
                let Some(parent) = plan.rules.iter().find(|r| r.dest == *field).and_then(|r| r.parent.clone()) else {
                    continue;
                };
                let parent_object = plans
                    .iter()
                    .find(|p| p.name == parent)
                    .map(|p| p.dest_object.clone())
                    .unwrap_or_else(|| parent.clone());
                let children = std::mem::take(&mut links[i]);
                let mut parents: Vec<String> = children.keys().cloned().collect();
                parents.sort_unstable();
                let mut orphans = Vec::new();
                for chunk in parents.chunks(PAGE) {
                    let exists = dest
                        .read(&parent_object, chunk, &[])
                        .await
                        .wrap_err_with(|| format!("reading {parent} from the destination"))?;
                    for p in chunk {
                        if !exists.contains_key(p)
                            && let Some(kids) = children.get(p)
                        {
                            orphans.extend(kids.iter().cloned());
                        }
                    }
                }
                orphans.sort_unstable();
                let mut list = RecordList::default();
                for o in orphans {
                    list.push(o);
                }
                relationships.push(Relationship {
                    field: field.clone(),
                    parent,
                    linked: linked[i],
                    orphans: list,
                    wrong_parent: std::mem::take(&mut wrong_parent[i]),
                });
            }
            Role::Plain => {}
        }
    }
    see_the_others(engine, plan, &mut keys).await?;
    let mut duplicates = shared_keys(dest.as_ref(), plan, &fields, keys).await?;
    if !duplicates.0.is_empty() {
        let store = lock_store()?;
        for d in &mut duplicates.0 {
            let ids: Vec<&str> = d.dest_ids.iter().map(String::as_str).collect();
            let members = tokio::task::block_in_place(|| store.members(&plan.name, &ids))?;
            d.source_ids = d
                .dest_ids
                .iter()
                .flat_map(|id| members.get(id).into_iter().flatten().map(|m| m.source_id.clone()))
                .collect();
        }
    }
    Ok(Population { readback, distributions, sums: sum_checks, relationships, duplicates })
}

/// The destination's other records, key fields only, so a record added beside Cutover that
/// shares an email with one it wrote is found too. Database destinations only: a CRM's API
/// would be read record by record at its rate limit.
async fn see_the_others(engine: &Engine, plan: &ObjectPlan, keys: &mut super::witness::KeyWitness) -> Result<()> {
    let kind = engine.project.config.destination.kind.as_str();
    let key_fields = keys.fields();
    if key_fields.is_empty() || !matches!(kind, "sqlite" | "postgres" | "mysql") {
        return Ok(());
    }
    let ours: HashSet<String> = {
        let store = engine.store().lock().map_err(|_| eyre!("state store lock poisoned"))?;
        tokio::task::block_in_place(|| store.id_map_links(&plan.name))?.into_values().collect()
    };
    let names: Vec<String> = key_fields.iter().map(|(f, _)| f.clone()).collect();
    let dest = engine.destination();
    let mut after = crate::connect::Cursor::start();
    loop {
        let (rows, next, done) = dest
            .scan(&plan.dest_object, &names, &after, 5000)
            .await
            .wrap_err_with(|| format!("reading {} in the destination for shared keys", plan.dest_object))?;
        for (id, values) in rows {
            if !ours.contains(&id) {
                keys.see_other(&id, &values);
            }
        }
        if done {
            return Ok(());
        }
        after = next;
    }
}

/// Written records sharing a match-key value: the witness's suspects, read again to confirm.
async fn shared_keys(
    dest: &dyn crate::connect::Destination,
    plan: &ObjectPlan,
    fields: &[String],
    mut keys: super::witness::KeyWitness,
) -> Result<(Vec<super::witness::SharedKey>, u64)> {
    let mut out = Vec::new();
    let mut total = 0u64;
    for s in keys.suspects() {
        let mut read = HashMap::new();
        for chunk in s.dest_ids.chunks(PAGE) {
            read.extend(dest.read(&plan.dest_object, chunk, fields).await?);
        }
        for shared in keys.confirm(&s, &read) {
            total += 1;
            if out.len() < LIST_CAP {
                out.push(shared);
            }
        }
    }
    Ok((out, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_seeded_and_independent_of_order() {
        let ids: Vec<String> = (0..1000).map(|i| format!("P-{i}")).collect();
        let mut reversed = ids.clone();
        reversed.reverse();
        let opts = Options { sample: 20, all: false, seed: 7 };
        let a = sample(ids.clone(), opts).expect("sample");
        assert_eq!(a.len(), 20);
        assert_eq!(a, sample(reversed, opts).expect("sample"));
        assert_ne!(a, sample(ids.clone(), Options { seed: 8, ..opts }).expect("sample"));
        assert!(sample(ids, Options { all: true, ..opts }).is_none());
    }

    #[test]
    fn identifiers_are_not_amounts() {
        for id in ["id", "hubspot_owner_id", "ownerId", "externalid", "pd_ownerid"] {
            assert!(names_an_id(id), "{id}");
        }
        for amount in ["amount", "paid", "seats", "valid", "width"] {
            assert!(!names_an_id(amount), "{amount}");
        }
    }

    #[test]
    fn sums_are_exact_and_never_drop_a_value() {
        let (mut total, mut bad) = (Decimal::ZERO, 0);
        for v in ["0.1", "0.2", "", "n/a"] {
            add_to(&mut total, &mut bad, Some(v));
        }
        assert_eq!(total.normalize().to_string(), "0.3");
        assert_eq!(bad, 1);
    }
}
