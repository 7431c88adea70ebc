//! The vocabulary shared by every layer: records, schemas, issues and outcomes.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The correction key holding an operator's decision on an ambiguous or undecided match:
/// [`CREATE_NEW`], or the destination id to merge into.
pub const MATCH_CHOICE: &str = "@match";
pub const CREATE_NEW: &str = "new";
/// How a queue item's candidates name a side that is another source row, not a destination
/// record: shown beside the record for a decision, never merged into.
pub const NOT_A_RECORD: &str = "source ";

/// A value as it travels through the pipeline. Sources hand over text (CSV) or typed values
/// converted to their canonical text; typing is checked by the validate stage against the
/// destination schema, and connectors convert to native types when they write.
pub type Value = Option<String>;

/// The field names of one source object, shared by every record of a batch.
pub type FieldNames = Arc<[String]>;

/// One record read from a source, its values aligned with the source schema's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub source_id: String,
    /// Where the record came from (file:line for files, table row for databases).
    pub origin: String,
    pub values: Vec<Value>,
}

/// What extraction yields for one position of the source: a record, or a row that could not
/// be read (it becomes a `failed` outcome, never a crash and never a silent drop).
#[derive(Debug, Clone, PartialEq)]
pub enum Extracted {
    Record(SourceRecord),
    Malformed { source_id: String, origin: String, message: String },
}

/// The kinds of destination fields the validate stage checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Integer,
    Number,
    Decimal,
    Date,
    Datetime,
    Boolean,
    Email,
    Phone,
}

impl FieldType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "text" => Self::Text,
            "integer" => Self::Integer,
            "number" => Self::Number,
            "decimal" => Self::Decimal,
            "date" => Self::Date,
            "datetime" => Self::Datetime,
            "boolean" => Self::Boolean,
            "email" => Self::Email,
            "phone" => Self::Phone,
            _ => return None,
        })
    }

    pub const NAMES: &'static [&'static str] =
        &["text", "integer", "number", "decimal", "date", "datetime", "boolean", "email", "phone"];
}

#[derive(Debug, Clone, PartialEq)]
pub struct DestField {
    pub name: String,
    pub ty: FieldType,
    /// The destination refuses a record without it (NOT NULL without default, or required property).
    pub required: bool,
    pub max_length: Option<usize>,
    /// Allowed values, when the field is a picklist (stage ids, lifecycle stages...).
    pub picklist: Option<Vec<String>>,
    /// A value may hold several of the picklist's values, joined with `;` (a multi-select).
    pub multiple: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DestSchema {
    pub object: String,
    pub id_field: String,
    pub fields: Vec<DestField>,
}

impl DestSchema {
    pub fn field(&self, name: &str) -> Option<&DestField> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// A user of the destination system that records can be owned by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestUser {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
}

/// A field-level problem that keeps a record out of the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    pub field: String,
    pub rule: Rule,
    pub value: Option<String>,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

/// Why a record is held. The names are stable: they are stored, filtered on and exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// A value with no entry in a translation table (e.g. a deal stage).
    NoTranslation,
    /// An owner that does not resolve to a destination user.
    OwnerNotProvisioned,
    /// Several destination records match.
    AmbiguousMatch,
    /// Record linkage found a likely match, but not sure enough to link it: between the two
    /// thresholds, too close to the runner-up, or already another source record's.
    PossibleMatch,
    /// A match was found but the object has no merge rule.
    MatchNeedsDecision,
    /// The parent record is held in the queue.
    ParentNotWritten,
    /// The parent record is not known at all.
    ParentMissing,
    /// A delta would overwrite a record someone changed in the destination since Cutover wrote it.
    ChangedInDestination,
    /// A match key found a destination record, but another match key holds a different,
    /// non-blank value on each side: two people, not one.
    ConflictingMatch,
    /// The source id was already read in this run: a second, different row under the same id.
    DuplicateSourceId,
    /// A NUL or another control character that no destination field of this kind should hold.
    ControlCharacter,
    Required,
    Type,
    Length,
    Picklist,
    InvalidPhone,
    InvalidEmail,
    InvalidDate,
    /// A warning, not a hold: the phone number parses (written in E.164) but is not an
    /// assigned number of its region (`invalid = "warn"`, the default).
    UnassignedPhone,
    /// A warning: a date like `03/04/2024` that reads either way round was read in the
    /// project's order (`day_first`); the message gives the other reading.
    AmbiguousDate,
    /// A warning: a phone's extension (`x123`, `ext. 12`) was dropped — the destination has no
    /// field for it.
    DroppedExtension,
    /// A warning: a value longer than the destination takes was cut to its length, as the
    /// field's `truncate = true` says.
    Truncated,
}

impl Rule {
    /// Every rule, in the order they are declared.
    pub const ALL: [Rule; 22] = [
        Rule::NoTranslation,
        Rule::OwnerNotProvisioned,
        Rule::AmbiguousMatch,
        Rule::PossibleMatch,
        Rule::MatchNeedsDecision,
        Rule::ParentNotWritten,
        Rule::ParentMissing,
        Rule::ChangedInDestination,
        Rule::ConflictingMatch,
        Rule::DuplicateSourceId,
        Rule::ControlCharacter,
        Rule::Required,
        Rule::Type,
        Rule::Length,
        Rule::Picklist,
        Rule::InvalidPhone,
        Rule::InvalidEmail,
        Rule::InvalidDate,
        Rule::UnassignedPhone,
        Rule::AmbiguousDate,
        Rule::DroppedExtension,
        Rule::Truncated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::NoTranslation => "no_translation",
            Rule::OwnerNotProvisioned => "owner_not_provisioned",
            Rule::AmbiguousMatch => "ambiguous_match",
            Rule::PossibleMatch => "possible_match",
            Rule::MatchNeedsDecision => "match_needs_decision",
            Rule::ParentNotWritten => "parent_not_written",
            Rule::ParentMissing => "parent_missing",
            Rule::ChangedInDestination => "changed_in_destination",
            Rule::ConflictingMatch => "conflicting_match",
            Rule::DuplicateSourceId => "duplicate_source_id",
            Rule::ControlCharacter => "control_character",
            Rule::Required => "required",
            Rule::Type => "type",
            Rule::Length => "length",
            Rule::Picklist => "picklist",
            Rule::InvalidPhone => "invalid_phone",
            Rule::InvalidEmail => "invalid_email",
            Rule::InvalidDate => "invalid_date",
            Rule::UnassignedPhone => "unassigned_phone",
            Rule::AmbiguousDate => "ambiguous_date",
            Rule::DroppedExtension => "dropped_extension",
            Rule::Truncated => "truncated",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to one source record in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Updated,
    /// Found in the destination (its own earlier write, or a match) and nothing had to change.
    Unchanged,
    /// Fed into a destination record another source record leads (its survivor).
    Merged,
    Queued,
    Skipped,
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Created,
        Outcome::Updated,
        Outcome::Unchanged,
        Outcome::Merged,
        Outcome::Queued,
        Outcome::Skipped,
        Outcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
            Outcome::Merged => "merged",
            Outcome::Queued => "queued",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// The record is in the destination after it (created, updated, unchanged or merged).
    pub fn is_written(self) -> bool {
        matches!(self, Outcome::Created | Outcome::Updated | Outcome::Unchanged | Outcome::Merged)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-object outcome counters of a run. `extracted` must equal the sum of the outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub extracted: u64,
    pub created: u64,
    pub updated: u64,
    #[serde(default)]
    pub unchanged: u64,
    pub merged: u64,
    pub queued: u64,
    pub skipped: u64,
    pub failed: u64,
}

impl Counts {
    pub fn add(&mut self, outcome: Outcome) {
        *self.slot(outcome) += 1;
    }

    pub fn slot(&mut self, outcome: Outcome) -> &mut u64 {
        match outcome {
            Outcome::Created => &mut self.created,
            Outcome::Updated => &mut self.updated,
            Outcome::Unchanged => &mut self.unchanged,
            Outcome::Merged => &mut self.merged,
            Outcome::Queued => &mut self.queued,
            Outcome::Skipped => &mut self.skipped,
            Outcome::Failed => &mut self.failed,
        }
    }

    pub fn get(&self, outcome: Outcome) -> u64 {
        match outcome {
            Outcome::Created => self.created,
            Outcome::Updated => self.updated,
            Outcome::Unchanged => self.unchanged,
            Outcome::Merged => self.merged,
            Outcome::Queued => self.queued,
            Outcome::Skipped => self.skipped,
            Outcome::Failed => self.failed,
        }
    }

    pub fn outcomes(&self) -> u64 {
        Outcome::ALL.iter().map(|&o| self.get(o)).sum()
    }

    /// Counters as the store keeps them: extracted, then one per outcome in [`Outcome::ALL`] order.
    pub fn from_columns(extracted: u64, per_outcome: [u64; 7]) -> Self {
        let mut c = Counts { extracted, ..Default::default() };
        for (o, n) in Outcome::ALL.iter().zip(per_outcome) {
            *c.slot(*o) = n;
        }
        c
    }

    /// The promise: every extracted record has exactly one outcome.
    pub fn balanced(&self) -> bool {
        self.extracted == self.outcomes()
    }

    pub fn merge(&mut self, other: &Counts) {
        self.extracted += other.extracted;
        for o in Outcome::ALL {
            *self.slot(o) += other.get(o);
        }
    }
}
