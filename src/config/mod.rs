//! The project file: one migration described in TOML.
//!
//! Loading happens in two steps, and each reports *every* problem it finds with its key path and
//! line, never only the first:
//! 1. [`load`] parses the file and checks what can be checked from the file alone (unknown keys,
//!    unknown transforms, parent cycles, dangling references);
//! 2. [`check::against_schemas`] checks the mappings against the source and destination schemas
//!    (unknown fields, unmapped source fields, required destination fields with no source).

pub mod check;
pub mod edit;
pub mod matching;
mod read;
mod repeat;
mod spans;

use indexmap::IndexMap;
pub use matching::{LinkageConfig, MatchConfig};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

pub use spans::Spans;

/// The whole project file.
#[derive(Debug, Clone, Deserialize)]
pub struct ProjectConfig {
    pub project: ProjectSection,
    pub source: ConnectionConfig,
    pub destination: ConnectionConfig,
    #[serde(default)]
    pub owners: OwnersConfig,
    #[serde(default)]
    pub translations: IndexMap<String, IndexMap<String, String>>,
    pub objects: IndexMap<String, ObjectConfig>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProjectSection {
    pub name: String,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Halt when a batch's (failed + queued) / processed exceeds this fraction.
    #[serde(default = "default_halt_rate")]
    pub halt_error_rate: f64,
    /// Region for phone numbers written without a country code (ISO 3166 alpha-2).
    #[serde(default = "default_region")]
    pub default_region: String,
    /// Read dd/mm/yyyy rather than mm/dd/yyyy when a date is ambiguous. Not given: month first,
    /// and each date that reads either way round is written with a warning (an assumption
    /// nobody stated); given either way, it is the project's decision.
    #[serde(default)]
    pub day_first: Option<bool>,
}

impl ProjectSection {
    pub fn day_first(&self) -> bool {
        self.day_first.unwrap_or(false)
    }
}

fn default_batch_size() -> usize {
    500
}
fn default_halt_rate() -> f64 {
    0.5
}
fn default_region() -> String {
    "US".into()
}

/// A source or destination. `kind` picks the connector; the other keys belong to it.
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectionConfig {
    pub kind: String,
    /// Folder (csv) or database file (sqlite), relative to the project file.
    pub path: Option<String>,
    /// CSV: how many lines one quoted field may run over before it is taken for a quote left
    /// open (default 1000).
    pub max_field_lines: Option<usize>,
    /// CSV: how many bytes one quoted field may hold (default 1 MiB).
    pub max_field_bytes: Option<usize>,
    /// CSV: an object may name a file outside the source folder (`source = "../shared/people"`);
    /// refused unless set.
    #[serde(default)]
    pub allow_outside: bool,
    /// Databases: the environment variable holding the connection URL (a secret: it is never
    /// written to the project file, the logs or the state store).
    pub url_env: Option<String>,
    /// PostgreSQL: the schema holding the tables (default "public").
    pub schema: Option<String>,
    /// Database sources: source object → the SQL query whose rows stand for it.
    #[serde(default)]
    pub queries: IndexMap<String, String>,
    /// CRM APIs: the environment variable holding the API token (a secret, like `url_env`).
    pub token_env: Option<String>,
    /// CRM APIs: where the API answers (default: the vendor's public URL; a sandbox or a proxy).
    pub base_url: Option<String>,
    /// HubSpot: requests per ten seconds the account's plan allows (100, or 190 on Pro and
    /// Enterprise). Pipedrive: requests per two seconds.
    pub rate_limit: Option<u32>,
    /// Pipedrive: the account's daily token budget (each call costs what the API documents).
    pub daily_tokens: Option<u32>,
    /// CRM destinations: requests of the day's allowance kept for others (integrations, the
    /// team's own use); a run stops at a batch boundary, resumably, when the API says fewer are
    /// left (default 500).
    pub daily_reserve: Option<u64>,
    /// CRM destinations: the property holding each created record's source id (Cutover's
    /// idempotency marker); HubSpot: create it as a unique-value text property.
    pub source_id_property: Option<String>,
    /// Pipedrive: object → the custom field (by name or key) holding its source ids, where it is
    /// not `source_id_property` (a custom field belongs to one entity: persons and deals each
    /// need their own).
    #[serde(default)]
    pub marker_fields: IndexMap<String, String>,
    /// HubSpot: "object.field" fields that are associations to another object, not properties.
    #[serde(default)]
    pub associations: IndexMap<String, AssociationConfig>,
    /// For a SQLite destination: where its users (record owners) live.
    pub owners: Option<OwnersTable>,
    /// For a SQLite destination: "object.field" → table holding the allowed values.
    #[serde(default)]
    pub picklists: IndexMap<String, PicklistTable>,
    /// "object.field" → field type, where the database's declared type says too little
    /// (e.g. money kept as TEXT to stay exact).
    #[serde(default)]
    pub types: IndexMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OwnersTable {
    pub table: String,
    #[serde(default = "default_id")]
    pub id: String,
    /// One column, or several joined with a space (first and last name).
    pub name: OneOrMany,
    pub email: Option<String>,
}

/// A parent link kept as a HubSpot association: `{ to = "contacts", type_id = 202 }`.
#[derive(Debug, Clone, Deserialize)]
pub struct AssociationConfig {
    pub to: String,
    /// The HubSpot-defined association type (e.g. 202 note → contact, 5 deal → company).
    pub type_id: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PicklistTable {
    pub table: String,
    pub column: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct OwnersConfig {
    /// Source owner value → destination user id, email or name, for people whose names differ.
    #[serde(default)]
    pub aliases: IndexMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ObjectConfig {
    /// Source object (file stem, table) — defaults to the object's key.
    pub source: Option<String>,
    /// Destination object — defaults to the object's key.
    pub destination: Option<String>,
    /// The source field holding each record's id.
    #[serde(default = "default_id")]
    pub id: String,
    /// Source fields deliberately not migrated; `prefix*` excludes every field starting with
    /// `prefix` (a CRM's own system fields, e.g. HubSpot's `hs_*`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// How existing destination records are found: destination fields to match on, in order
    /// of trust (`["email", "phone"]`), or a linkage table (see `matching`).
    #[serde(default, rename = "match")]
    pub matching: MatchConfig,
    /// What a single match does: fill_blanks, source_wins, destination_wins, or queue.
    #[serde(default = "default_merge")]
    pub merge: String,
    /// The source field holding each record's last-modified time: delta runs take the records
    /// modified after the previous run's high-water mark (without it, a content hash decides).
    #[serde(default)]
    pub modified: Option<String>,
    /// Which source rows are in scope (`where = "status = 'active'"`; see `pipeline::row_filter`):
    /// a row outside it ends `skipped`, the filter named in its audit row.
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// One source record into several rows of this object's destination: one row per entry
    /// (`work = { email = "work_email" }`), none for an entry whose columns are all blank. The
    /// fields name an entry's aliases as if they were source fields; see `repeat`.
    #[serde(default)]
    pub repeat: IndexMap<String, IndexMap<String, RepeatColumn>>,
    pub fields: IndexMap<String, FieldSpec>,
    /// Set on the objects a `repeat` entry became (`emails.work`): which entry, and what of the
    /// source it needs.
    #[serde(skip)]
    pub repeated: Option<Repeated>,
}

/// What one alias of a `repeat` entry stands for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RepeatColumn {
    /// A source field.
    Column(String),
    /// The same value for every row of the entry (`kind = { value = "work" }`).
    Constant { value: String },
}

/// An object made from one `repeat` entry of an object in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repeated {
    /// The object's key in the file (`emails`).
    pub object: String,
    /// The entry's key (`work`).
    pub entry: String,
    /// The entry's source fields: a source record with all of them blank makes no row.
    pub columns: Vec<String>,
    /// The other entries' source fields: not this object's to map (nor to exclude).
    pub others: Vec<String>,
}

fn default_id() -> String {
    "id".into()
}
fn default_merge() -> String {
    "fill_blanks".into()
}

/// How one destination field gets its value.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FieldSpec {
    /// Copy (rename) one source field.
    pub from: Option<String>,
    /// Join several source fields.
    pub concat: Option<Vec<String>>,
    /// Take part of one source field.
    pub split: Option<String>,
    pub separator: Option<String>,
    /// With split: "first", "rest", "last" or a 0-based index.
    pub part: Option<SplitPart>,
    /// Transforms applied in order: trim, lower, upper, email, phone, date, datetime, decimal,
    /// integer, boolean, owner.
    pub transform: Option<OneOrMany>,
    /// Name of a table under [translations].
    pub translate: Option<String>,
    /// The object this field refers to; its value becomes the parent's destination id.
    pub parent: Option<String>,
    /// Used when the source value is blank.
    pub default: Option<String>,
    /// Refuse blank values even if the destination would accept them.
    #[serde(default)]
    pub required: bool,
    pub max_length: Option<usize>,
    /// A value longer than the destination takes (`max_length`, or the field's own limit) is cut
    /// to that length and written with a `truncated` warning, instead of held as `length`.
    #[serde(default)]
    pub truncate: bool,
    /// A phone number that parses but is not an assigned number: "warn" (written in E.164, the
    /// warning audited and reconciled; the default), "queue" (held) or "blank" (left blank,
    /// with a warning).
    pub invalid: Option<String>,
    /// An amount field: the destination field that receives the currency its values name
    /// (`$12.50` → USD, `EUR 5` → EUR). That field's own value, if any, must agree.
    pub currency_to: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SplitPart {
    Index(i64),
    Named(String),
}

/// The transforms a field may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    Trim,
    Lower,
    Upper,
    Email,
    Phone,
    Date,
    Datetime,
    Decimal,
    Integer,
    Boolean,
    Owner,
    /// Removes control characters (NUL, C0 but tab and line breaks, DEL).
    StripControl,
    /// The extension of a phone number (`x123`, `ext. 12` → `123`, `12`); blank without one.
    /// A field mapped with it from the same source field as a `phone` field keeps the extension
    /// the phone field's E.164 value has no place for.
    PhoneExtension,
    /// A web address as its domain: `https://www.Acme.com/about` → `acme.com`.
    Domain,
}

impl Transform {
    pub const NAMES: &'static [&'static str] = &[
        "trim",
        "lower",
        "upper",
        "email",
        "phone",
        "date",
        "datetime",
        "decimal",
        "integer",
        "boolean",
        "owner",
        "strip_control",
        "phone_extension",
        "domain",
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "trim" => Self::Trim,
            "lower" => Self::Lower,
            "upper" => Self::Upper,
            "email" => Self::Email,
            "phone" => Self::Phone,
            "date" => Self::Date,
            "datetime" => Self::Datetime,
            "decimal" => Self::Decimal,
            "integer" => Self::Integer,
            "boolean" => Self::Boolean,
            "owner" => Self::Owner,
            "strip_control" => Self::StripControl,
            "phone_extension" => Self::PhoneExtension,
            "domain" => Self::Domain,
            _ => return None,
        })
    }
}

/// What a single dedupe match does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeRule {
    /// Keep destination values; fill only its blank fields from the source.
    FillBlanks,
    /// Overwrite destination values with non-blank source values.
    SourceWins,
    /// Link the records and change nothing in the destination.
    DestinationWins,
    /// Hold every match in the conflict queue for an operator's decision.
    Queue,
}

impl MergeRule {
    pub const NAMES: &'static [&'static str] = &["fill_blanks", "source_wins", "destination_wins", "queue"];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "fill_blanks" => Self::FillBlanks,
            "source_wins" => Self::SourceWins,
            "destination_wins" => Self::DestinationWins,
            "queue" => Self::Queue,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FillBlanks => "fill_blanks",
            Self::SourceWins => "source_wins",
            Self::DestinationWins => "destination_wins",
            Self::Queue => "queue",
        }
    }
}

/// Whether an `exclude` entry covers `field`: its name, or `prefix*` for a prefix.
pub fn excludes(patterns: &[String], field: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => field.starts_with(prefix),
        None => p == field,
    })
}

impl ObjectConfig {
    pub fn source_name<'a>(&'a self, key: &'a str) -> &'a str {
        self.source.as_deref().unwrap_or(key)
    }
    pub fn destination_name<'a>(&'a self, key: &'a str) -> &'a str {
        self.destination.as_deref().unwrap_or(key)
    }
    pub fn merge_rule(&self) -> MergeRule {
        MergeRule::parse(&self.merge).unwrap_or(MergeRule::Queue)
    }
    /// The objects this one refers to, in field order, without repeats.
    pub fn parents(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for spec in self.fields.values() {
            if let Some(p) = spec.parent.as_deref()
                && !out.contains(&p)
            {
                out.push(p);
            }
        }
        out
    }
}

impl FieldSpec {
    /// Every source field this mapping reads.
    pub fn source_fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        if let Some(f) = &self.from {
            out.push(f.as_str());
        }
        if let Some(list) = &self.concat {
            out.extend(list.iter().map(String::as_str));
        }
        if let Some(f) = &self.split {
            out.push(f.as_str());
        }
        out
    }

    pub fn transforms(&self) -> Vec<Transform> {
        self.transform
            .as_ref()
            .map(|t| t.items().into_iter().filter_map(Transform::parse).collect())
            .unwrap_or_default()
    }
}

/// One problem found in a project file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `objects.deals.fields.stage.translate`.
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

/// A problem a connector found with what one key of the project file names — a folder that is
/// not there, an environment variable not set, a table missing — so it is reported with that
/// key and its line, like the file's own problems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProblem {
    pub key: String,
    pub message: String,
}

impl KeyProblem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for KeyProblem {}

/// Every problem found in a project file, reported together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{}: {n} problem{} in the project file; nothing was run:",
            self.file.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            match p.line {
                Some(line) => writeln!(f, "  {}:{line}: {}: {}", self.file.display(), p.key, p.message)?,
                None => writeln!(f, "  {}: {}: {}", self.file.display(), p.key, p.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Collects problems with their lines, looked up from the file's text.
pub struct Problems<'a> {
    spans: &'a Spans,
    list: Vec<Problem>,
}

impl<'a> Problems<'a> {
    pub fn new(spans: &'a Spans) -> Self {
        Self { spans, list: Vec::new() }
    }
    pub fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        let key = key.into();
        let line = self.spans.line_of(&key);
        self.list.push(Problem { key, line, message: message.into() });
    }
    /// A problem at a line the caller knows (the file's syntax).
    pub fn add_at(&mut self, key: impl Into<String>, line: Option<usize>, message: impl Into<String>) {
        self.list.push(Problem { key: key.into(), line, message: message.into() });
    }
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    pub fn into_vec(self) -> Vec<Problem> {
        self.list
    }
}

/// A project file that parsed and passed the checks that need no connection.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub path: PathBuf,
    pub config: ProjectConfig,
    pub spans: Spans,
    /// Objects in the order they must run: parents before children.
    pub order: Vec<String>,
    /// Hash of the file's text: which mapping a run used.
    pub hash: String,
    /// The file's text as read (the console's mapping editor edits it, keeping its layout).
    pub text: String,
}

impl LoadedConfig {
    /// Folder the project's relative paths start from.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or_else(|| Path::new("."))
    }
    pub fn object(&self, name: &str) -> Option<&ObjectConfig> {
        self.config.objects.get(name)
    }
    /// The key under `[objects]` that holds `name`'s mapping in the file: the object itself, or
    /// the object whose `repeat` entry it is.
    pub fn file_object<'a>(&'a self, name: &'a str) -> &'a str {
        match self.object(name).and_then(|o| o.repeated.as_ref()) {
            Some(r) => &r.object,
            None => name,
        }
    }

    /// An error caused by what a key of this file names, as a problem of the file (with the
    /// key's line); any other error as it is.
    pub fn as_file_problem(&self, e: color_eyre::Report) -> color_eyre::Report {
        match e.chain().find_map(|c| c.downcast_ref::<KeyProblem>()) {
            Some(k) => ConfigError {
                file: self.path.clone(),
                problems: vec![Problem {
                    key: k.key.clone(),
                    line: self.spans.line_of(&k.key),
                    message: k.message.clone(),
                }],
            }
            .into(),
            None => e,
        }
    }
}

/// Reads and checks a project file.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        problems: vec![Problem { key: "(file)".into(), line: None, message: format!("cannot read: {e}") }],
    })?;
    parse(path, &text)
}

/// Reads a project file like [`load`], keeping the problems of a file that reads (see
/// [`parse_keeping_problems`]).
pub fn load_keeping_problems(path: &Path) -> Result<(LoadedConfig, Vec<Problem>), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        problems: vec![Problem { key: "(file)".into(), line: None, message: format!("cannot read: {e}") }],
    })?;
    parse_keeping_problems(path, &text)
}

/// Parses and checks a project file's text; `path` names it in messages and anchors relative paths.
pub fn parse(path: &Path, text: &str) -> Result<LoadedConfig, ConfigError> {
    let (config, problems) = parse_keeping_problems(path, text)?;
    if !problems.is_empty() {
        return Err(ConfigError { file: path.to_path_buf(), problems });
    }
    Ok(config)
}

/// Like [`parse`], but a file that reads (every value of the right type) comes back together
/// with the problems the rules found in it, so that `check` can add the schema's problems to them
/// and report all at once. `Err`: a piece of the file did not read.
pub fn parse_keeping_problems(path: &Path, text: &str) -> Result<(LoadedConfig, Vec<Problem>), ConfigError> {
    let fail = |problems| ConfigError { file: path.to_path_buf(), problems };
    let (clean, repeated) = read::without_repeated_keys(text).map_err(|syntax| fail(vec![syntax]))?;
    let spans = Spans::parse(&clean);
    let mut problems = Problems::new(&spans);
    for p in repeated {
        problems.add_at(p.key, p.line, p.message);
    }
    let config = match read::read(&clean, &mut problems) {
        Err(syntax) => return Err(fail(vec![syntax])),
        Ok(None) => return Err(fail(problems.into_vec())),
        Ok(Some(config)) => config,
    };
    let config = repeat::expand(config, &mut problems);
    check::static_rules(&config, &mut problems);
    let order = match check::parent_order(&config) {
        Ok(order) => order,
        Err(cycle) => {
            problems.add("objects", format!("parent references form a cycle: {}", cycle.join(" → ")));
            Vec::new()
        }
    };
    let problems = problems.into_vec();
    let hash = format!("{:016x}", fnv1a(text.as_bytes()));
    Ok((LoadedConfig { path: path.to_path_buf(), config, spans, order, hash, text: text.to_string() }, problems))
}

pub(crate) fn line_of_offset(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// A stable 64-bit hash (FNV-1a) for identifying a config or report version.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
