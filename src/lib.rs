//! Cutover: move business records from one system to another completely or not at all, and prove it.
//!
//! Layers, data flowing one way: `connect` (sources and destinations) → `pipeline` (extract → map →
//! dedupe → validate → write) → `store` (the SQLite state: runs, audit, queue, id map, checkpoints).
//! `reconcile` proves a migration complete (counts, read-back, distributions, sums, links) and
//! records the sign-off. `project` ties a project file to its connectors and store; `tui` is the console over the
//! engine; `cli` is the command line.

pub mod bench;
pub mod cli;
pub mod compare;
pub mod config;
pub mod connect;
pub mod demo;
pub mod logging;
pub mod model;
pub mod pipeline;
pub mod project;
pub mod reconcile;
pub mod seeded;
pub mod store;
pub mod text;
pub mod tui;
