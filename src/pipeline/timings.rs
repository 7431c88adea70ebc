//! Where a run spends its time, stage by stage: logged at the end of each object and printed by
//! the benchmark, so a slow migration can be explained rather than guessed at.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Extract,
    Map,
    Dedupe,
    ReadDestination,
    Write,
    Commit,
    Index,
}

impl Stage {
    const ALL: [Stage; 7] =
        [Stage::Extract, Stage::Map, Stage::Dedupe, Stage::ReadDestination, Stage::Write, Stage::Commit, Stage::Index];
    fn name(self) -> &'static str {
        match self {
            Stage::Extract => "extract",
            Stage::Map => "map",
            Stage::Dedupe => "dedupe",
            Stage::ReadDestination => "read destination",
            Stage::Write => "write",
            Stage::Commit => "commit",
            Stage::Index => "match index",
        }
    }
}

#[derive(Debug, Default)]
pub struct Timings {
    nanos: [AtomicU64; 7],
}

impl Timings {
    pub fn add(&self, stage: Stage, d: Duration) {
        self.nanos[stage as usize].fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Runs `f` and adds its time to `stage`.
    pub fn time<R>(&self, stage: Stage, f: impl FnOnce() -> R) -> R {
        let t = Instant::now();
        let r = f();
        self.add(stage, t.elapsed());
        r
    }

    pub fn get(&self, stage: Stage) -> Duration {
        Duration::from_nanos(self.nanos[stage as usize].load(Ordering::Relaxed))
    }

    /// "extract 0.4s, map 2.1s, …" (extract and map run beside the other stages).
    pub fn summary(&self) -> String {
        Stage::ALL
            .iter()
            .map(|s| format!("{} {:.2}s", s.name(), self.get(*s).as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
