//! The pipeline: extract → map → dedupe → validate → write, one module a stage; `run` drives them.
//!
//! Extraction is the source connector's `read_batch` (see `connect`), streamed by the producer
//! task in `run`; writing is the destination connector's batched create/update, driven from `run`.

pub mod dedupe;
pub mod map;
pub mod phone_validity;
pub mod plan;
pub mod progress;
pub mod run;
pub mod timings;
pub mod transform;
pub mod validate;

pub use progress::{Progress, RunState};
pub use run::{Engine, Finish, RunFailure, RunSummary};
