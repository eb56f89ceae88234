//! The plan: which components a run touches, with which action, in which
//! wave. Pure: it takes the configuration, what the state records about each
//! component with its current fingerprint, and a request, and returns
//! values.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{CloudName, ComponentName, Config, EnvName};
use crate::graph::{Selection, Walk};

/// What the run will do to one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Deploy it for the first time (nothing recorded, or recorded destroyed).
    Create,
    /// Deploy it again: its inputs changed, its last run did not succeed,
    /// or (with `--changed`) something it depends on changed.
    Update,
    /// Nothing to do: it succeeded at its current fingerprint (or, for a
    /// destroy, nothing is recorded as deployed).
    Noop,
    /// Remove it.
    Destroy,
}

impl Action {
    /// The action as the plan prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Noop => "noop",
            Action::Destroy => "destroy",
        }
    }
}

/// What the state records about a component, reduced to what planning needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Recorded {
    /// No record, or one that no run ever started: never deployed by the
    /// orchestrator.
    #[default]
    Absent,
    /// Recorded as destroyed.
    Destroyed,
    /// Its last apply succeeded, at this fingerprint.
    Succeeded(Option<String>),
    /// Its last run did not finish well (failed, skipped, cancelled, running).
    Incomplete,
}

/// A component as observed before a run: its record and its fingerprint now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// What the state says.
    pub recorded: Recorded,
    /// The fingerprint it has now.
    pub fingerprint: String,
}

impl Observed {
    /// Whether it is deployed and up to date: it counts as satisfied when
    /// something depending on it runs without it.
    pub fn is_current(&self) -> bool {
        matches!(&self.recorded, Recorded::Succeeded(Some(f)) if *f == self.fingerprint)
    }

    fn action(&self, destroy: bool) -> Action {
        match (&self.recorded, destroy) {
            (Recorded::Absent | Recorded::Destroyed, true) => Action::Noop,
            (_, true) => Action::Destroy,
            (Recorded::Absent | Recorded::Destroyed, false) => Action::Create,
            _ if self.is_current() => Action::Noop,
            _ => Action::Update,
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
    /// Only components whose fingerprint changed or whose last run did not
    /// succeed, plus everything that depends on them.
    pub changed: bool,
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
    /// What stands outside the run in its way, each with the planned
    /// components concerned: for a deploy, dependencies not deployed at
    /// their current fingerprint; for a destroy, dependents still deployed.
    /// A run refuses to start while this is not empty.
    pub missing: Vec<Missing>,
    /// A destroy (reverse order) rather than a deploy.
    #[serde(skip)]
    pub destroy: bool,
}

/// A dependency the run needs but does not include.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    /// The dependency.
    pub name: ComponentName,
    /// The planned components that need it.
    pub needed_by: Vec<ComponentName>,
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
    /// Its fingerprint now (empty when planned without looking at files).
    #[serde(skip)]
    pub fingerprint: String,
}

impl Plan {
    /// How each of [`Plan::missing`] relates to the planned components it
    /// names: a deploy's are `needed by` them, a destroy's `depends on`
    /// them.
    pub fn missing_relation(&self) -> &'static str {
        if self.destroy {
            "depends on"
        } else {
            "needed by"
        }
    }

    /// Dependencies outside the run that are deployed and current, with the
    /// components that need them: the run relies on them as they are. A
    /// destroy relies on none.
    pub fn satisfied_outside(&self) -> Vec<(ComponentName, Vec<ComponentName>)> {
        if self.destroy {
            return Vec::new();
        }
        let mut outside: BTreeMap<&ComponentName, Vec<ComponentName>> = BTreeMap::new();
        let planned: std::collections::HashSet<&ComponentName> =
            self.components.iter().map(|c| &c.name).collect();
        for p in &self.components {
            for d in &p.depends_on {
                if !planned.contains(d) && !self.missing.iter().any(|m| &m.name == d) {
                    outside.entry(d).or_default().push(p.name.clone());
                }
            }
        }
        outside.into_iter().map(|(k, v)| (k.clone(), v)).collect()
    }

    /// The components the run will act on (everything but `noop`).
    pub fn to_run(&self) -> impl Iterator<Item = &Planned> {
        self.components.iter().filter(|c| c.action != Action::Noop)
    }
}

/// The components a request selects, closed over dependencies or dependents
/// as asked. `observed` is indexed like the graph's nodes.
pub fn select(config: &Config, request: &Request, observed: &[Observed]) -> Selection {
    let graph = &config.graph;
    let mut selection = if request.components.is_empty() {
        graph.all()
    } else {
        let mut s = vec![false; graph.len()];
        for name in &request.components {
            if let Some(i) = graph.index_of(name.as_str()) {
                s[i] = true;
            }
        }
        s
    };
    if request.changed {
        for (i, selected) in selection.iter_mut().enumerate() {
            *selected = *selected && observed[i].action(request.destroy) != Action::Noop;
        }
        graph.close(&mut selection, Walk::Dependents);
    }
    if request.with_deps {
        graph.close(&mut selection, Walk::Dependencies);
    }
    if request.with_dependents {
        graph.close(&mut selection, Walk::Dependents);
    }
    selection
}

/// Plans a run of `request` in `env` on `cloud`, given what is observed of
/// each component (indexed like the graph's nodes).
pub fn plan(
    config: &Config,
    env: &EnvName,
    cloud: &CloudName,
    request: &Request,
    observed: &[Observed],
) -> Plan {
    let graph = &config.graph;
    let selection = select(config, request, observed);
    let walk = if request.destroy {
        Walk::Dependencies
    } else {
        Walk::Dependents
    };
    let (waves, level) = graph.waves(&selection, walk);
    let components: Vec<Planned> = waves
        .iter()
        .flatten()
        .map(|&i| Planned {
            name: graph.name(i).clone(),
            action: match observed[i].action(request.destroy) {
                // `--changed` selects what depends on a change so that it runs
                // again with the changed outputs, even though its own inputs
                // are as they were.
                Action::Noop if request.changed && !request.destroy => Action::Update,
                action => action,
            },
            depends_on: config.components[i].depends_on.clone(),
            wave: level[i],
            fingerprint: observed[i].fingerprint.clone(),
        })
        .collect();
    // A deploy needs what it depends on to be deployed and current; a destroy
    // needs what depends on it to be gone already.
    let mut missing: BTreeMap<ComponentName, Vec<ComponentName>> = BTreeMap::new();
    for p in components.iter().filter(|p| p.action != Action::Noop) {
        let i = graph.index_of(p.name.as_str()).unwrap_or_default();
        let needs = if request.destroy {
            Walk::Dependents
        } else {
            Walk::Dependencies
        };
        for n in graph.neighbours(i, needs) {
            let ok = if request.destroy {
                matches!(observed[n].recorded, Recorded::Absent | Recorded::Destroyed)
            } else {
                observed[n].is_current()
            };
            if !selection[n] && !ok {
                missing
                    .entry(graph.name(n).clone())
                    .or_default()
                    .push(p.name.clone());
            }
        }
    }
    let missing = missing
        .into_iter()
        .map(|(name, needed_by)| Missing { name, needed_by })
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
        missing,
        destroy: request.destroy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(recorded: Recorded, fingerprint: &str) -> Observed {
        Observed {
            recorded,
            fingerprint: fingerprint.to_string(),
        }
    }

    #[test]
    fn actions_follow_the_record_and_the_fingerprint() {
        let f = || Some("sha256:a".to_string());
        assert_eq!(
            observed(Recorded::Absent, "sha256:a").action(false),
            Action::Create
        );
        assert_eq!(
            observed(Recorded::Destroyed, "sha256:a").action(false),
            Action::Create
        );
        assert_eq!(
            observed(Recorded::Succeeded(f()), "sha256:a").action(false),
            Action::Noop
        );
        assert_eq!(
            observed(Recorded::Succeeded(f()), "sha256:b").action(false),
            Action::Update
        );
        assert_eq!(
            observed(Recorded::Incomplete, "sha256:a").action(false),
            Action::Update
        );
        assert_eq!(observed(Recorded::Absent, "x").action(true), Action::Noop);
        assert_eq!(
            observed(Recorded::Destroyed, "x").action(true),
            Action::Noop
        );
        assert_eq!(
            observed(Recorded::Incomplete, "x").action(true),
            Action::Destroy
        );
        assert_eq!(
            observed(Recorded::Succeeded(f()), "x").action(true),
            Action::Destroy
        );
    }
}
