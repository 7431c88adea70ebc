//! What the engine publishes while it runs: the latest counters on a `watch` channel (readers
//! always see the newest, never a backlog). Durable truth stays in the store.

use crate::model::Counts;

#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    Starting,
    Running,
    /// Stopped at a batch boundary by the operator; everything before is committed.
    Paused,
    Completed,
    /// Stopped by the operator after a batch; what was written stays written and audited.
    Cancelled,
    Halted(String),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectProgress {
    pub name: String,
    /// The source's own count, once known.
    pub total: Option<u64>,
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub run_id: Option<i64>,
    pub kind: &'static str,
    pub state: RunState,
    pub phase: String,
    pub objects: Vec<ObjectProgress>,
    pub current: Option<usize>,
}

impl Progress {
    pub fn new(kind: &'static str, objects: &[String]) -> Self {
        Self {
            run_id: None,
            kind,
            state: RunState::Starting,
            phase: "starting".into(),
            objects: objects
                .iter()
                .map(|n| ObjectProgress { name: n.clone(), total: None, counts: Counts::default() })
                .collect(),
            current: None,
        }
    }

    pub fn processed(&self) -> u64 {
        self.objects.iter().map(|o| o.counts.extracted).sum()
    }

    pub fn total(&self) -> u64 {
        self.objects.iter().map(|o| o.total.unwrap_or(0)).sum()
    }
}

/// What the operator wants of a run; the engine looks at it between batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Go,
    Pause,
    Cancel,
}
