//! Everything the console shows, as plain data: `update` changes it, `render` only reads it.

use super::keymap::Keymap;
use crate::config::LoadedConfig;
use crate::model::Counts;
use crate::pipeline::progress::Control;
use crate::pipeline::{Progress, RunState};
use crate::reconcile::Report;
use crate::store::{QueueItem, SignOff};
use ratatui_textarea::TextArea;
use std::collections::{BTreeSet, VecDeque};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Overview,
    Mapping,
    Queue,
    Audit,
    Reconcile,
}

impl Pane {
    pub const ALL: [Pane; 5] = [Pane::Overview, Pane::Mapping, Pane::Queue, Pane::Audit, Pane::Reconcile];

    pub fn layer(self) -> &'static str {
        match self {
            Pane::Overview => "overview",
            Pane::Mapping => "mapping",
            Pane::Queue => "queue",
            Pane::Audit => "audit",
            Pane::Reconcile => "reconcile",
        }
    }
    pub fn title(self) -> &'static str {
        match self {
            Pane::Overview => "Overview",
            Pane::Mapping => "Mapping",
            Pane::Queue => "Queue",
            Pane::Audit => "Audit log",
            Pane::Reconcile => "Reconciliation",
        }
    }
    pub fn index(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

/// What kind of engine work is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    Preview,
    Full,
    /// The last unfinished full run, continued from its checkpoints.
    Resume,
    /// Only what is new or changed since the last run.
    Delta,
    Reprocess,
}

impl RunMode {
    pub fn label(self) -> &'static str {
        match self {
            RunMode::Preview => "test sync (dry run)",
            RunMode::Full => "full run",
            RunMode::Resume => "resumed run",
            RunMode::Delta => "delta run",
            RunMode::Reprocess => "reprocess",
        }
    }
}

/// The run the console started (or last started), from the engine's watch channel.
#[derive(Debug, Clone)]
pub struct Live {
    pub mode: RunMode,
    pub progress: Progress,
    /// Seconds since the console started, when the run began.
    pub started_at: f64,
    /// Per object: (time, processed) of the last samples, for records/s.
    pub samples: Vec<VecDeque<(f64, u64)>>,
    /// Per object: records/s over time, for the sparkline.
    pub rates: Vec<VecDeque<u64>>,
    /// Set once the engine task returned.
    pub ended: Option<String>,
    pub control: Control,
    /// A run another console (or a headless `cutover run`) started, seen through the store:
    /// who runs it, for the header. This console cannot pause or cancel it.
    pub remote: Option<String>,
    /// Waiting for the project's run lock (another console's reprocess, a headless run): for what.
    pub waiting: Option<String>,
}

impl Live {
    pub fn active(&self) -> bool {
        self.ended.is_none()
    }
    pub fn state_word(&self) -> String {
        if let Some(end) = &self.ended
            && !matches!(
                self.progress.state,
                RunState::Completed | RunState::Halted(_) | RunState::Cancelled | RunState::Failed(_)
            )
        {
            return end.clone();
        }
        match &self.progress.state {
            RunState::Starting if self.waiting.is_some() => "waiting for the other run".into(),
            RunState::Starting => "starting".into(),
            RunState::Running if self.control == Control::Pause => "pausing after this batch".into(),
            RunState::Running if self.control == Control::Cancel => "cancelling after this batch".into(),
            RunState::Running => match self.mode {
                RunMode::Preview => "previewing".into(),
                RunMode::Full | RunMode::Resume | RunMode::Delta => "running".into(),
                RunMode::Reprocess => "reprocessing".into(),
            },
            RunState::Paused => "paused".into(),
            RunState::Completed if self.mode == RunMode::Preview => "preview done (nothing written)".into(),
            RunState::Completed => "done".into(),
            RunState::Cancelled => "cancelled".into(),
            RunState::Halted(r) => format!("halted: {r}"),
            RunState::Failed(e) => format!("failed: {e}"),
        }
    }
}

/// Which queue items are shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct QueueQuery {
    pub object: Option<String>,
    pub reason: Option<String>,
    /// The field and value of the first issue (a group); `None` value: blank.
    pub issue: Option<(String, Option<String>)>,
    pub order: crate::store::queue_view::Order,
}

impl QueueQuery {
    pub fn slice(&self) -> crate::store::queue_view::Slice {
        crate::store::queue_view::Slice {
            object: self.object.clone(),
            reason: self.reason.clone(),
            issue: self.issue.clone(),
            order: self.order,
        }
    }
    /// The records of a group.
    pub fn of_group(g: &crate::store::queue_view::Group) -> Self {
        QueueQuery {
            object: Some(g.object.clone()),
            reason: Some(g.reason.clone()),
            issue: g.field.clone().map(|f| (f, g.value.clone())),
            order: Default::default(),
        }
    }
}

/// Held records per (object, reason), from the groups.
pub fn summary_of(groups: &[crate::store::queue_view::Group]) -> Vec<(String, String, u64)> {
    let mut out: Vec<(String, String, u64)> = Vec::new();
    for g in groups {
        match out.last_mut() {
            Some((o, r, n)) if *o == g.object && *r == g.reason => *n += g.count,
            _ => out.push((g.object.clone(), g.reason.clone(), g.count)),
        }
    }
    out
}

/// What the queue pane lists: the groups of held records (object, reason, offending value), or
/// the records of the filter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueMode {
    #[default]
    Groups,
    Records,
}

#[derive(Debug, Default)]
pub struct QueueView {
    /// Pending items per (object, reason), for the counts and the filters.
    pub summary: Vec<(String, String, u64)>,
    pub query: QueueQuery,
    /// The loaded window of the filtered list, starting at `offset`.
    pub items: Vec<QueueItem>,
    pub offset: usize,
    pub total: usize,
    /// Absolute position of the selection in the filtered list.
    pub cursor: usize,
    /// Selected row of the detail (fields of the record).
    pub field: usize,
    pub focus_detail: bool,
    pub marked: BTreeSet<i64>,
    /// The inline result of the last fix, reprocess or skip.
    pub note: Option<(bool, String)>,
    pub loading: bool,
    /// For an ambiguous or undecided match: which destination candidate is chosen.
    pub candidate: usize,
    /// The records of the reprocess under way: unmarked once it has handled them.
    pub reprocessing: Vec<i64>,
    pub mode: QueueMode,
    /// Held records by object, reason and first issue's value, the most frequent first.
    pub groups: Vec<crate::store::queue_view::Group>,
    pub group_cursor: usize,
    /// The text `/` last searched for (`n`/`N` search again).
    pub search: Option<String>,
}

impl QueueView {
    /// Whether the pane shows the groups (there are some, and the operator has not opened one).
    pub fn in_groups(&self) -> bool {
        self.mode == QueueMode::Groups && !self.groups.is_empty()
    }
    pub fn selected_group(&self) -> Option<&crate::store::queue_view::Group> {
        self.groups.get(self.group_cursor)
    }
    pub fn selected(&self) -> Option<&QueueItem> {
        self.cursor.checked_sub(self.offset).and_then(|i| self.items.get(i))
    }
    /// The records an action applies to: the marked ones, else the selected one.
    pub fn targets(&self) -> Vec<i64> {
        if self.marked.is_empty() {
            self.selected().map(|i| vec![i.id]).unwrap_or_default()
        } else {
            self.marked.iter().copied().collect()
        }
    }
    /// The fields the detail lists for the selected item: every mapped field, then source-only ones.
    pub fn fields(&self) -> Vec<String> {
        let Some(item) = self.selected() else { return Vec::new() };
        let mut out: Vec<String> = item.mapped.keys().cloned().collect();
        for i in &item.issues {
            if !out.contains(&i.field) && !i.field.is_empty() {
                out.push(i.field.clone());
            }
        }
        out
    }
    /// The console holding the selected record (or any marked one), when it is not `me`.
    pub fn taken(&self, ids: &[i64], me: &str) -> Option<(i64, String)> {
        self.items
            .iter()
            .filter(|i| ids.contains(&i.id))
            .find_map(|i| i.claimed_by.as_ref().filter(|by| *by != me).map(|by| (i.id, by.clone())))
    }
    pub fn reasons(&self) -> Vec<String> {
        let mut r: Vec<String> = self
            .summary
            .iter()
            .filter(|(o, _, _)| self.query.object.as_ref().is_none_or(|q| q == o))
            .map(|(_, r, _)| r.clone())
            .collect();
        r.sort();
        r.dedup();
        r
    }
}

pub use crate::store::audit::{AuditEntry, AuditQuery};

pub const AUDIT_OUTCOMES: &[&str] = &["created", "updated", "merged", "queued", "skipped", "failed"];
/// The warnings a record may be written with (the audit pane's warning filter).
pub const AUDIT_WARNINGS: &[&str] = &["unassigned_phone", "ambiguous_date", "dropped_extension", "truncated"];

#[derive(Debug, Default)]
pub struct AuditView {
    pub query: AuditQuery,
    pub rows: Vec<AuditEntry>,
    /// `before` id of each page shown so far (None: the newest page); the last is the current one.
    pub pages: Vec<Option<i64>>,
    pub cursor: usize,
    /// Whether an older page exists.
    pub more: bool,
    pub loading: bool,
}

/// One object's balance in the latest real run.
#[derive(Debug, Clone, PartialEq)]
pub struct BalanceRow {
    pub object: String,
    pub source: Option<u64>,
    pub counts: Counts,
    pub open_queue: u64,
}

/// The reconciliation pane: the counts balance of the latest run (read from the store, free),
/// and the newest full reconciliation report with its sign-off.
#[derive(Debug, Default)]
pub struct ReconcileView {
    pub run: Option<(i64, String, String)>,
    pub rows: Vec<BalanceRow>,
    /// The newest run in the store: a report made before it is out of date.
    pub latest_run: Option<i64>,
    pub report: Option<Box<Report>>,
    pub signoff: Option<SignOff>,
    /// A reconciliation is being made.
    pub working: bool,
    pub error: Option<String>,
    /// Sections and discrepancies opened (by id).
    pub open: BTreeSet<String>,
    pub cursor: usize,
    /// Discrepancies accepted here for the coming sign-off: (key, reason).
    pub accepted: Vec<(String, String)>,
}

/// One row of the reconciliation pane.
#[derive(Debug, Clone, PartialEq)]
pub enum ReconLine {
    Section {
        id: String,
        title: String,
        ok: bool,
        open: bool,
    },
    Discrepancy {
        key: String,
        summary: String,
        accepted: Option<String>,
        open: bool,
    },
    /// A record behind a discrepancy or a difference: enter shows it in the queue or audit log.
    Record {
        object: String,
        source_id: String,
        queue_reason: Option<String>,
        text: String,
    },
    Detail {
        text: String,
        ok: bool,
    },
}

/// Records of a discrepancy listed in the pane (the report file lists up to its cap).
pub const RECON_RECORDS: usize = 50;

impl ReconcileView {
    /// The report is older than the newest run.
    pub fn stale(&self) -> bool {
        match (&self.report, self.latest_run) {
            (Some(r), Some(latest)) => r.last_run_id.is_some_and(|id| id < latest),
            _ => false,
        }
    }

    /// The sign-off approved this very report and no run came after it.
    pub fn signed(&self) -> bool {
        match (&self.signoff, &self.report) {
            (Some(s), Some(r)) => s.voided_by_run.is_none() && r.hash().is_ok_and(|h| h == s.report_hash),
            _ => false,
        }
    }

    pub fn reason_for(&self, key: &str) -> Option<&str> {
        self.accepted.iter().find(|(k, _)| k == key).map(|(_, r)| r.as_str())
    }

    pub fn lines(&self) -> Vec<ReconLine> {
        let Some(report) = &self.report else { return Vec::new() };
        let mut out = Vec::new();
        let section = |out: &mut Vec<ReconLine>, id: &str, title: String, ok: bool| -> bool {
            let open = self.open.contains(id);
            out.push(ReconLine::Section { id: id.to_string(), title, ok, open });
            open
        };
        let n = report.discrepancies.len();
        let title = if n == 0 {
            "Discrepancies: none".to_string()
        } else {
            let accepted = report.discrepancies.iter().filter(|d| self.reason_for(&d.key).is_some()).count();
            format!("Discrepancies: {n} ({accepted} accepted for sign-off)")
        };
        if section(&mut out, "discrepancies", title, n == 0) {
            for d in &report.discrepancies {
                let open = self.open.contains(&d.key);
                out.push(ReconLine::Discrepancy {
                    key: d.key.clone(),
                    summary: d.summary.clone(),
                    accepted: self.reason_for(&d.key).map(str::to_string),
                    open,
                });
                if open {
                    let queue_reason = d.key.split_once("/queued/").map(|(_, r)| r.to_string());
                    for id in d.records.ids.iter().take(RECON_RECORDS) {
                        out.push(ReconLine::Record {
                            object: d.object.clone(),
                            source_id: id.clone(),
                            queue_reason: queue_reason.clone(),
                            text: format!("{} {}", d.object, crate::text::shown(id)),
                        });
                    }
                    let more = d.records.total.saturating_sub(RECON_RECORDS.min(d.records.ids.len()) as u64);
                    if more > 0 {
                        out.push(ReconLine::Detail {
                            text: format!("… and {more} more (w writes them all to the report file)"),
                            ok: false,
                        });
                    }
                    if d.records.total == 0 {
                        out.push(ReconLine::Detail {
                            text: "an aggregate check: the object's section shows the values".into(),
                            ok: false,
                        });
                    }
                }
            }
        }
        for o in &report.objects {
            let c = &o.counts;
            let broken = report.discrepancies.iter().filter(|d| d.object == o.object).count();
            let title = format!(
                "{}: {} in source = {} written + {} held + {} skipped + {} failed{}{}",
                o.object,
                c.in_source,
                c.written,
                c.queued,
                c.skipped,
                c.failed.total,
                if c.rolled_back > 0 { format!(" + {} rolled back", c.rolled_back) } else { String::new() },
                if broken == 0 {
                    String::new()
                } else {
                    format!(" · {}", crate::text::count(broken as u64, "discrepancy"))
                }
            );
            if !section(&mut out, &format!("object:{}", o.object), title, broken == 0) {
                continue;
            }
            let detail = |text: String, ok: bool| ReconLine::Detail { text, ok };
            out.push(detail(
                format!(
                    "counts: source says {}, read {}; no outcome {}, no longer in source {}",
                    c.source_count.map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
                    c.in_source,
                    c.no_outcome.total,
                    c.not_in_source.total
                ),
                c.balanced(),
            ));
            let w = &o.witnesses;
            if let Some(census) = &w.census {
                out.push(detail(
                    format!(
                        "source count (its own reading): {} records{}",
                        census.records,
                        match census.problems.first() {
                            Some(p) =>
                                format!("; broken in {} places, first {}", census.problem_count, crate::text::shown(p)),
                            None => String::new(),
                        }
                    ),
                    census.records == c.in_source,
                ));
            }
            if let Some(d) = &w.destination {
                out.push(detail(
                    format!(
                        "destination count: {} held {} before, Cutover created {} since: expected {}, holds {}",
                        d.dest_object, d.before, d.created, d.expected, d.now
                    ),
                    d.balanced(),
                ));
            }
            let m = &w.one_to_one;
            out.push(detail(
                format!(
                    "one-to-one: {} destination records fed by more than one source record{}; {} match-key values \
                     shared by records this migration wrote or matched",
                    m.merged_total,
                    if m.unrecorded.is_empty() {
                        String::new()
                    } else {
                        format!(" ({} without a recorded decision)", m.unrecorded.total)
                    },
                    w.duplicates_total
                ),
                m.unrecorded.is_empty() && w.duplicates_total == 0,
            ));
            let r = &o.readback;
            out.push(detail(
                format!(
                    "read-back: {} written, {} missing; {} compared field by field, {} identical",
                    r.written, r.missing.total, r.checked, r.identical
                ),
                r.missing.is_empty() && r.differences_total == 0,
            ));
            for d in r.differences.iter().take(RECON_RECORDS) {
                out.push(ReconLine::Record {
                    object: o.object.clone(),
                    source_id: d.source_id.clone(),
                    queue_reason: None,
                    text: format!(
                        "{} {}: {} wrote {} · destination has {}",
                        o.object,
                        crate::text::shown(&d.source_id),
                        d.field,
                        crate::text::shown_opt(d.wrote.as_deref()),
                        crate::text::shown_opt(d.found.as_deref())
                    ),
                });
            }
            for dist in &o.distributions {
                let off: Vec<String> = dist
                    .rows
                    .iter()
                    .filter(|r| r.mapped != r.destination)
                    .map(|r| {
                        let v = r.label.clone().or_else(|| r.value.clone()).unwrap_or_else(|| "∅".into());
                        format!("{} {}≠{}", crate::text::shown(&v), r.mapped, r.destination)
                    })
                    .collect();
                let text = if off.is_empty() {
                    let top: Vec<String> = dist
                        .rows
                        .iter()
                        .take(4)
                        .map(|r| {
                            let v = r.label.clone().or_else(|| r.value.clone()).unwrap_or_else(|| "∅".into());
                            format!("{} {}", crate::text::shown(&v), r.mapped)
                        })
                        .collect();
                    format!(
                        "distribution of {}: same ({} values: {}{})",
                        dist.field,
                        dist.rows.len(),
                        top.join(", "),
                        if dist.rows.len() > 4 { ", …" } else { "" }
                    )
                } else {
                    format!("distribution of {}: DIFFERENT — {}", dist.field, off.join(", "))
                };
                out.push(detail(text, off.is_empty()));
            }
            for s in &o.sums {
                out.push(detail(
                    format!("sum of {}: mapped source {} · destination {}", s.field, s.mapped, s.destination),
                    s.balanced(),
                ));
            }
            for rel in &o.relationships {
                out.push(detail(
                    format!(
                        "{} → {}: {} linked, {} pointing at nothing, {} at another parent (sample)",
                        rel.field, rel.parent, rel.linked, rel.orphans.total, rel.wrong_parent.total
                    ),
                    rel.orphans.is_empty() && rel.wrong_parent.is_empty(),
                ));
            }
        }
        out
    }
}

/// A mapping row as the project file states it.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingRow {
    pub dest: String,
    pub from: String,
    /// The source fields it reads.
    pub reads: Vec<String>,
    pub transform: String,
    /// The translation table it uses, if any.
    pub translate: Option<String>,
    pub required: bool,
    pub note: String,
}

/// What a row of the mapping table stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum MappingLine<'a> {
    Mapped(&'a MappingRow),
    /// A source field neither mapped nor excluded (the sample tells which fields exist).
    Unmapped(&'a str),
    Excluded(&'a str),
    /// A source field another entry of the object's `repeat` reads.
    OtherEntry(&'a str),
}

#[derive(Debug, Clone, PartialEq)]
pub struct MappingObject {
    pub name: String,
    /// The key under `[objects]` its mapping is edited at (the repeated object, for a `repeat` entry).
    pub file_key: String,
    pub source: String,
    pub destination: String,
    /// How existing records are found (`email, phone`, or the linkage fields and thresholds).
    pub matching: String,
    pub merge: String,
    /// The source field holding each record's id.
    pub id: String,
    pub rows: Vec<MappingRow>,
    pub excluded: Vec<String>,
    /// Source fields the other entries of this object's `repeat` read.
    pub other_entries: Vec<String>,
}

/// The sample's answer for one object at one version of the edited text.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleView {
    pub object: String,
    pub version: u64,
    /// The mapped records, or every problem the project file has against the two systems.
    pub result: Result<crate::pipeline::sample::Sample, Vec<crate::config::Problem>>,
}

#[derive(Debug, Default)]
pub struct MappingView {
    pub objects: Vec<MappingObject>,
    pub object: usize,
    pub cursor: usize,
    /// The project file as edited here; `saved` as it is on disk.
    pub text: String,
    pub saved: String,
    pub path: std::path::PathBuf,
    /// Bumped at each edit: samples answered for an older text are dropped.
    pub version: u64,
    /// The latest sample of each object (answers may arrive in any order).
    pub samples: std::collections::BTreeMap<String, SampleView>,
    /// Each object's source fields, from its last sample that read them (kept while the edited
    /// file has problems, so unmapped fields still show).
    pub source_fields: std::collections::BTreeMap<String, Vec<String>>,
    pub sampling: bool,
    pub saving: bool,
}

impl MappingView {
    pub fn dirty(&self) -> bool {
        self.text != self.saved
    }
    pub fn current(&self) -> Option<&MappingObject> {
        self.objects.get(self.object)
    }
    /// The sample of the selected object, when it answers the current text.
    pub fn sample(&self) -> Option<&SampleView> {
        self.current().and_then(|o| self.samples.get(&o.name)).filter(|s| s.version == self.version)
    }
    /// The table's rows: mapped fields, then source fields neither mapped nor excluded, then
    /// the excluded ones.
    pub fn lines(&self) -> Vec<MappingLine<'_>> {
        let Some(obj) = self.current() else { return Vec::new() };
        let mut out: Vec<MappingLine> = obj.rows.iter().map(MappingLine::Mapped).collect();
        if let Some(fields) = self.source_fields.get(&obj.name) {
            for f in fields {
                let read = obj.rows.iter().any(|r| r.reads.contains(f));
                if !read && *f != obj.id && !crate::config::excludes(&obj.excluded, f) && !obj.other_entries.contains(f)
                {
                    out.push(MappingLine::Unmapped(f));
                }
            }
        }
        out.extend(obj.excluded.iter().map(|f| MappingLine::Excluded(f)));
        out.extend(obj.other_entries.iter().map(|f| MappingLine::OtherEntry(f)));
        out
    }
}

/// What a confirmation step confirms.
#[derive(Debug, Clone, PartialEq)]
pub enum Confirm {
    Quit,
    Cancel,
    Skip {
        ids: Vec<i64>,
        reason: String,
    },
    /// Merge into a destination record (`Some(id)`) or create a new one (`None`).
    Decide {
        id: i64,
        merge_into: Option<String>,
    },
    /// Leave the mapping editor's unsaved changes behind.
    DiscardMapping,
    /// Sign the migration off with these notes and acceptances.
    SignOff {
        notes: String,
    },
    /// Set `field` to `value` on these records (the preview was shown in the question).
    Fix {
        ids: Vec<i64>,
        field: String,
        value: Option<String>,
    },
    /// Roll this run back (its preview was shown in the question); `keep`: and keep the records
    /// changed in the destination since (audited as kept).
    Rollback {
        run: i64,
        keep: bool,
    },
}

/// What the text box being edited is for.
#[derive(Debug, Clone, PartialEq)]
pub enum EditTarget {
    /// A mapping row of `object` (`original`: the destination field it replaces; None adds one).
    MappingRow {
        object: String,
        original: Option<String>,
    },
    /// An entry of a translation table.
    Translation {
        table: String,
    },
    /// Set `field` on these queue items (the selected one, or every marked one).
    Field {
        ids: Vec<i64>,
        field: String,
        /// What the one record held when the edit began (see `Store::queue_correct_many`).
        was: Option<Option<String>>,
    },
    SkipReason {
        ids: Vec<i64>,
    },
    AuditSearch,
    /// Text to find among the held records of the filter (`/`).
    QueueSearch,
    /// A queue id or source id to go to (`:`).
    QueueJump,
    /// Why a discrepancy is accepted.
    AcceptReason {
        key: String,
    },
    SignOffNotes,
}

/// What a choice from a list is for.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    /// The field a bulk edit of these records sets.
    BulkField { ids: Vec<i64> },
}

pub enum Modal {
    /// Pick one of `options` (↑/↓, enter; esc abandons).
    Choose {
        title: String,
        options: Vec<String>,
        cursor: usize,
        purpose: Choice,
    },
    /// The keys of the pane; `scroll` rows are scrolled past (a short terminal shows part).
    Help {
        scroll: u16,
    },
    Confirm {
        question: String,
        what: Confirm,
    },
    Edit {
        target: EditTarget,
        input: Box<TextArea<'static>>,
        error: Option<String>,
    },
}

pub struct AppState {
    pub project: String,
    pub pane: Pane,
    pub keymap: Keymap,
    pub objects: Vec<String>,
    pub live: Option<Live>,
    pub queue: QueueView,
    pub audit: AuditView,
    pub mapping: MappingView,
    pub reconcile: ReconcileView,
    pub modal: Option<Modal>,
    /// This console, as claims name it (see `store::claims`).
    pub me: String,
    /// The operating-system user, as a sign-off records it.
    pub user: String,
    /// One line for the last thing that happened: (is it bad news, text).
    pub status: Option<(bool, String)>,
    /// Rows a page moves (set from the terminal height).
    pub page_rows: usize,
    pub quit: bool,
    /// Quit once the engine task has returned (the operator quit during a run).
    pub quit_after_run: bool,
    pub color: bool,
}

impl AppState {
    pub fn new(config: &LoadedConfig, keymap: Keymap, color: bool) -> Self {
        Self {
            project: config.config.project.name.clone(),
            pane: Pane::Overview,
            keymap,
            objects: config.order.clone(),
            live: None,
            queue: QueueView::default(),
            audit: AuditView { pages: vec![None], ..Default::default() },
            mapping: MappingView {
                objects: mapping_objects(config),
                text: config.text.clone(),
                saved: config.text.clone(),
                path: config.path.clone(),
                ..Default::default()
            },
            reconcile: ReconcileView::default(),
            modal: None,
            me: crate::store::claims::console_identity(),
            user: crate::store::os_user(),
            status: None,
            page_rows: 10,
            quit: false,
            quit_after_run: false,
            color,
        }
    }

    pub fn run_active(&self) -> bool {
        self.live.as_ref().is_some_and(Live::active)
    }
}

pub fn mapping_objects(config: &LoadedConfig) -> Vec<MappingObject> {
    config
        .order
        .iter()
        .filter_map(|name| config.config.objects.get(name).map(|o| (name, o)))
        .map(|(name, o)| MappingObject {
            name: name.clone(),
            file_key: config.file_object(name).to_string(),
            source: o.source.clone().unwrap_or_else(|| name.clone()),
            destination: o.destination.clone().unwrap_or_else(|| name.clone()),
            matching: o.matching.describe(),
            merge: o.merge.clone(),
            id: o.id.clone(),
            excluded: o.exclude.clone(),
            other_entries: o.repeated.as_ref().map(|r| r.others.clone()).unwrap_or_default(),
            rows: o
                .fields
                .iter()
                .map(|(dest, f)| {
                    let from = if let Some(c) = &f.concat {
                        format!("concat({})", c.join(", "))
                    } else if let Some(s) = &f.split {
                        format!("split({s})")
                    } else {
                        f.from.clone().unwrap_or_else(|| "—".into())
                    };
                    let mut transform: Vec<String> = f
                        .transform
                        .as_ref()
                        .map(|t| t.items().into_iter().map(String::from).collect())
                        .unwrap_or_default();
                    if let Some(t) = &f.translate {
                        transform.push(format!("translate:{t}"));
                    }
                    let mut note = Vec::new();
                    if let Some(p) = &f.parent {
                        note.push(format!("parent → {p}"));
                    }
                    if let Some(d) = &f.default {
                        note.push(format!("default {d:?}"));
                    }
                    if let Some(n) = f.max_length {
                        note.push(format!("≤{n} chars"));
                    }
                    MappingRow {
                        dest: dest.clone(),
                        from,
                        reads: f.source_fields().into_iter().map(String::from).collect(),
                        translate: f.translate.clone(),
                        transform: transform.join(", "),
                        required: f.required,
                        note: note.join("; "),
                    }
                })
                .collect(),
        })
        .collect()
}

/// The newest run in the store, as a console polling it sees it (see `Effect::Poll`).
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedRun {
    pub id: i64,
    pub kind: String,
    /// running, paused, completed, halted, cancelled, failed, interrupted.
    pub state: String,
    pub reason: Option<String>,
    pub user: String,
    /// Still going: not ended, and the process holding the run lock is alive.
    pub alive: bool,
    /// The process that holds the run lock is this console.
    pub mine: bool,
    pub objects: Vec<crate::pipeline::progress::ObjectProgress>,
}
