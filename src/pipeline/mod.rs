//! The pipeline: extract → map → dedupe → validate → write, one module a stage; `run` drives them.
//!
//! `extract` streams batches from the source connector and maps them on a producer task;
//! `run` dedupes, validates and writes each batch, and hands its commit to the store writer.

pub mod batch;
pub mod commit;
pub mod dedupe;
pub mod delta;
pub mod extract;
pub mod index_writer;
pub mod landing;
pub mod linkage;
pub mod map;
pub mod phone_validity;
pub mod plan;
pub mod prepare;
pub mod progress;
pub mod rollback;
pub mod row_filter;
pub mod run;
pub mod sample;
pub mod scope;
pub mod seen;
pub mod timings;
pub mod transform;
pub mod validate;
pub mod write;

pub use progress::{Progress, RunState};
pub use run::{Engine, Finish, RunFailure, RunSummary};
