//! The dependency graph as text, mermaid, DOT or JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::config::{ComponentName, Config};
use crate::graph::{Selection, Walk};

/// The graph wave by wave (by name within a wave), with each component's wave.
#[derive(Debug, Serialize)]
pub struct GraphDocument<'a> {
    /// Components in deployment order.
    pub components: Vec<GraphNode<'a>>,
    /// Components grouped by wave.
    pub waves: Vec<Vec<&'a ComponentName>>,
}

/// One component of [`GraphDocument`].
#[derive(Debug, Serialize)]
pub struct GraphNode<'a> {
    /// Its name.
    pub name: &'a ComponentName,
    /// What it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    /// The tool that deploys it.
    pub runner: &'static str,
    /// Its directory (may hold `{env}` and `{cloud}`).
    pub path: &'a str,
    /// What it depends on directly.
    pub depends_on: &'a [ComponentName],
    /// What depends on it directly.
    pub dependents: Vec<&'a ComponentName>,
    /// Its wave.
    pub wave: usize,
}

/// Builds the document every format renders.
pub fn document(config: &Config) -> GraphDocument<'_> {
    let g = &config.graph;
    let all = g.all();
    let (waves, level) = g.waves(&all, Walk::Dependents);
    let components = waves
        .iter()
        .flatten()
        .map(|&i| {
            let c = &config.components[i];
            GraphNode {
                name: &c.name,
                description: c.description.as_deref(),
                runner: c.runner.as_str(),
                path: c.path.as_str(),
                depends_on: &c.depends_on,
                dependents: g
                    .neighbours(i, Walk::Dependents)
                    .into_iter()
                    .map(|d| g.name(d))
                    .collect(),
                wave: level[i],
            }
        })
        .collect();
    let waves = waves
        .into_iter()
        .map(|w| w.into_iter().map(|i| g.name(i)).collect())
        .collect();
    GraphDocument { components, waves }
}

/// Waves, one line per component with what it needs.
pub fn text(doc: &GraphDocument<'_>) -> String {
    let mut out = String::new();
    let n = doc.components.len();
    let _ = writeln!(
        out,
        "{} in {}\n",
        super::counted(n, "component"),
        super::counted(doc.waves.len(), "wave")
    );
    let width = doc
        .components
        .iter()
        .map(|c| c.name.as_str().len())
        .max()
        .unwrap_or(0);
    let mut last_wave = None;
    for c in &doc.components {
        let label = if last_wave == Some(c.wave) {
            String::new()
        } else {
            format!("wave {}", c.wave)
        };
        last_wave = Some(c.wave);
        let needs = if c.depends_on.is_empty() {
            String::new()
        } else {
            format!(
                "needs {}",
                c.depends_on
                    .iter()
                    .map(|d| d.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let line = format!("{label:<8}{:<width$}  {needs}", c.name.as_str());
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// A mermaid flowchart, left to right.
pub fn mermaid(doc: &GraphDocument<'_>) -> String {
    let mut out = String::from("flowchart LR\n");
    let ids: std::collections::HashMap<&ComponentName, usize> = doc
        .components
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name, i))
        .collect();
    let id = |name: &ComponentName| ids.get(name).copied().unwrap_or_default();
    for (i, c) in doc.components.iter().enumerate() {
        let _ = writeln!(out, "  c{i}[\"{}\"]", c.name);
    }
    for c in &doc.components {
        for d in c.depends_on {
            let _ = writeln!(out, "  c{} --> c{}", id(d), id(c.name));
        }
    }
    out
}

/// A mermaid flowchart of the `selected` components (indexed like the
/// graph's nodes) and the dependencies among them, wave by wave, with the
/// `marked` ones drawn in bold.
pub fn mermaid_subgraph(config: &Config, selected: &Selection, marked: &Selection) -> String {
    let g = &config.graph;
    let mut out = String::from("flowchart LR\n");
    let order: Vec<usize> = g.waves(selected, Walk::Dependents).0.concat();
    for &i in &order {
        let _ = writeln!(out, "  c{i}[\"{}\"]", g.name(i));
    }
    for &i in &order {
        for d in g.neighbours(i, Walk::Dependencies) {
            if selected[d] {
                let _ = writeln!(out, "  c{d} --> c{i}");
            }
        }
    }
    let bold: Vec<String> = order
        .iter()
        .filter(|&&i| marked[i])
        .map(|i| format!("c{i}"))
        .collect();
    if !bold.is_empty() {
        out.push_str("  classDef changed stroke-width:3px\n");
        let _ = writeln!(out, "  class {} changed", bold.join(","));
    }
    out
}

/// A Graphviz DOT digraph, left to right.
pub fn dot(doc: &GraphDocument<'_>) -> String {
    let mut out = String::from("digraph orchestrator {\n  rankdir=LR;\n  node [shape=box];\n");
    for c in &doc.components {
        let _ = writeln!(out, "  \"{}\";", c.name);
    }
    for c in &doc.components {
        for d in c.depends_on {
            let _ = writeln!(out, "  \"{d}\" -> \"{}\";", c.name);
        }
    }
    out.push_str("}\n");
    out
}
