//! orchestrator-action: deploys a repository's infrastructure components in
//! dependency order and keeps the record in git.

pub mod yaml;
