//! Running components: the scheduler that walks the graph, the process
//! runner for one component, and the runner presets.

mod child;
pub mod engine;
pub mod presets;
pub mod runner;
pub mod scheduler;
pub mod transient;
