//! The plan: which components a run touches, with which action, in which
//! wave. Pure: it takes the configuration and a request and returns values.
//!
//! There is no recorded state yet, so every selected component is to be
//! created (or, with `destroy`, destroyed).

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::config::{CloudName, ComponentName, Config, EnvName};
use crate::graph::{Selection, Walk};

/// What the run will do to one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Deploy it for the first time.
    Create,
    /// Remove it.
    Destroy,
}

impl Action {
    /// The action as the plan prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Destroy => "destroy",
        }
    }
}

/// Which components to plan for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The components asked for; empty means all of them. Names must exist.
    pub components: Vec<ComponentName>,
    /// Also include everything they depend on, transitively.
    pub with_deps: bool,
    /// Also include everything that depends on them, transitively.
    pub with_dependents: bool,
    /// Plan a destroy: reverse dependency order.
    pub destroy: bool,
}

/// The plan for one environment and cloud.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The environment.
    pub environment: EnvName,
    /// The cloud.
    pub cloud: CloudName,
    /// Selected components wave by wave, by name within a wave: an order in
    /// which every component comes after what it waits for.
    pub components: Vec<Planned>,
    /// Components grouped by wave: `waves[w]` holds those with `wave == w`.
    pub waves: Vec<Vec<ComponentName>>,
}

/// One component in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    /// Its name.
    pub name: ComponentName,
    /// What will be done to it.
    pub action: Action,
    /// What it depends on, whether in this run or not.
    pub depends_on: Vec<ComponentName>,
    /// Its wave within this run: 0 for components with nothing to wait for.
    pub wave: usize,
}

impl Plan {
    /// Dependencies of planned components that are not in the run, with the
    /// components that need them, in name order.
    pub fn outside_dependencies(&self) -> Vec<(ComponentName, Vec<ComponentName>)> {
        let planned: HashSet<&ComponentName> = self.components.iter().map(|c| &c.name).collect();
        let mut outside: BTreeMap<&ComponentName, Vec<ComponentName>> = BTreeMap::new();
        for p in &self.components {
            for d in &p.depends_on {
                if !planned.contains(d) {
                    outside.entry(d).or_default().push(p.name.clone());
                }
            }
        }
        outside.into_iter().map(|(k, v)| (k.clone(), v)).collect()
    }
}

/// The components a request selects, closed over dependencies or dependents
/// as asked.
pub fn select(config: &Config, request: &Request) -> Selection {
    let graph = &config.graph;
    if request.components.is_empty() {
        return graph.all();
    }
    let mut selection = vec![false; graph.len()];
    for name in &request.components {
        if let Some(i) = graph.index_of(name.as_str()) {
            selection[i] = true;
        }
    }
    if request.with_deps {
        graph.close(&mut selection, Walk::Dependencies);
    }
    if request.with_dependents {
        graph.close(&mut selection, Walk::Dependents);
    }
    selection
}

/// Plans a run of `request` in `env` on `cloud`.
pub fn plan(config: &Config, env: &EnvName, cloud: &CloudName, request: &Request) -> Plan {
    let graph = &config.graph;
    let selection = select(config, request);
    let (walk, action) = if request.destroy {
        (Walk::Dependencies, Action::Destroy)
    } else {
        (Walk::Dependents, Action::Create)
    };
    let (waves, level) = graph.waves(&selection, walk);
    let components = waves
        .iter()
        .flatten()
        .map(|&i| Planned {
            name: graph.name(i).clone(),
            action,
            depends_on: config.components[i].depends_on.clone(),
            wave: level[i],
        })
        .collect();
    let waves = waves
        .into_iter()
        .map(|w| w.into_iter().map(|i| graph.name(i).clone()).collect())
        .collect();
    Plan {
        environment: env.clone(),
        cloud: cloud.clone(),
        components,
        waves,
    }
}
