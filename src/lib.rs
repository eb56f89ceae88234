//! orchestrator-action: deploys a repository's infrastructure components in
//! dependency order and keeps the record in git.
//!
//! The core is pure: [`config`] model, [`graph`], [`plan`], [`diff`] and
//! [`promote`] take values and return values. Input and output live at the
//! edges: [`yaml`] parsing, the [`cli`], and the renderers in [`report`].

pub mod cli;
pub mod config;
pub mod diff;
pub mod events;
pub mod exec;
pub mod fingerprint;
pub mod github;
pub mod graph;
pub mod plan;
pub mod promote;
pub mod redact;
pub mod report;
pub mod state;
pub mod yaml;
