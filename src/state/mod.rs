//! The record of what is deployed: one JSON state file per environment and
//! cloud, saying for each component what was last done to it, with which
//! inputs (the fingerprint change detection compares), and how it ended.
//!
//! The file at `<state.dir>/<env>-<cloud>.json` in the working tree is the
//! local copy every command reads and writes; a run resumes from it. The
//! store ([`sync`]) keeps that copy in step with the state branch: before a
//! run it merges in what other runs pushed, and after each write it commits
//! and pushes, merging again when another writer got there first.
//!
//! [`model`] is the format and [`lock`] the run lock inside it, both pure;
//! [`merge`] combines two copies, pure; [`store`] reads and writes files
//! atomically, and [`render`] renders one again after a few records
//! changed; [`git`] talks to the repository; [`recorder`] and [`publish`]
//! follow a run and keep the local copy and the branch current, the
//! recorder writing through a [`writer`] that shares the file with other
//! processes.

pub mod git;
pub mod lock;
pub mod merge;
pub mod model;
pub mod publish;
pub mod recorder;
pub mod render;
pub mod store;
pub mod sync;
pub mod writer;

pub use lock::{Holder, Lock};
pub use model::{
    ComponentRecord, HISTORY_LIMIT, HistoryEntry, RecordAction, RunInfo, SCHEMA_VERSION, StateFile,
    Status, Timestamp,
};
pub use store::StateError;
pub use sync::{Store, StoreError, Target};
