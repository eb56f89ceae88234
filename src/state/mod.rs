//! The record of what is deployed: one JSON state file per environment and
//! cloud, saying for each component what was last done to it, with which
//! inputs (the fingerprint change detection compares), and how it ended.
//!
//! The file at `<state.dir>/<env>-<cloud>.json` in the working tree is the
//! local copy every command reads and writes; a run resumes from it. The git
//! store keeps that copy in sync with the state branch: it loads the branch's
//! file when that one is newer (same lineage, higher serial) and commits and
//! pushes after each write.
//!
//! [`model`] is the format, pure; [`store`] reads and writes it atomically.

pub mod model;
pub mod recorder;
pub mod store;

pub use model::{
    ComponentRecord, HISTORY_LIMIT, HistoryEntry, RecordAction, RunInfo, SCHEMA_VERSION, StateFile,
    Status, Timestamp,
};
pub use store::StateError;
