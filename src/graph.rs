//! The dependency graph of components, and the pure algorithms on it:
//! topological order, waves, transitive closures, selection, cycle reports.
//!
//! Nodes are numbered in name order and every tie is broken by that number,
//! so the same config always gives the same order, byte for byte, however
//! its file is arranged. Edges point from a dependency to its dependent: the
//! direction things are deployed in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use indexmap::IndexSet;

use petgraph::Direction::{Incoming, Outgoing};
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::config::ComponentName;

/// Which way to walk: toward dependencies or toward dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// From a component to what it depends on.
    Dependencies,
    /// From a component to what depends on it.
    Dependents,
}

impl Walk {
    fn direction(self) -> petgraph::Direction {
        match self {
            Walk::Dependencies => Incoming,
            Walk::Dependents => Outgoing,
        }
    }
}

/// What is wrong with a set of dependency declarations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphError {
    /// `(component, dependency)` pairs naming a component that does not exist.
    pub unknown: Vec<(ComponentName, ComponentName)>,
    /// Each cycle as a path in deployment order that ends where it starts:
    /// `[network, clusters, network]`.
    pub cycles: Vec<Vec<ComponentName>>,
}

/// A set of components, by node index.
pub type Selection = Vec<bool>;

/// An acyclic dependency graph.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Names in name order; a name's position is its node index.
    names: IndexSet<ComponentName, foldhash::fast::RandomState>,
    dag: DiGraph<(), ()>,
}

impl Graph {
    /// Builds the graph from each component's direct dependencies. Fails with
    /// every unknown dependency and every cycle found.
    pub fn build<'a, I, D>(components: I) -> Result<Graph, GraphError>
    where
        I: IntoIterator<Item = (&'a ComponentName, D)>,
        D: IntoIterator<Item = &'a ComponentName>,
    {
        let mut entries: Vec<(&ComponentName, D)> = components.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
        let mut names = IndexSet::with_capacity_and_hasher(entries.len(), Default::default());
        names.extend(entries.iter().map(|(n, _)| (*n).clone()));
        let mut dag = DiGraph::with_capacity(names.len(), names.len() * 3);
        for _ in 0..names.len() {
            dag.add_node(());
        }
        let mut error = GraphError::default();
        let mut seen: Vec<usize> = Vec::new();
        for (i, (name, deps)) in entries.into_iter().enumerate() {
            seen.clear();
            for dep in deps {
                match names.get_index_of(dep) {
                    Some(d) if !seen.contains(&d) => {
                        seen.push(d);
                        dag.add_edge(NodeIndex::new(d), NodeIndex::new(i), ());
                    }
                    Some(_) => {}
                    None => error.unknown.push((name.clone(), dep.clone())),
                }
            }
        }
        let graph = Graph { names, dag };
        error.cycles = graph.cycles();
        if error.unknown.is_empty() && error.cycles.is_empty() {
            Ok(graph)
        } else {
            Err(error)
        }
    }

    /// Number of components.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there are no components.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of node `i`.
    pub fn name(&self, i: usize) -> &ComponentName {
        &self.names[i]
    }

    /// The node of a component, if it exists.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.get_index_of(name)
    }

    /// Direct neighbours of `i` in the given direction, in name order.
    pub fn neighbours(&self, i: usize, walk: Walk) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .dag
            .neighbors_directed(NodeIndex::new(i), walk.direction())
            .map(NodeIndex::index)
            .collect();
        out.sort_unstable();
        out
    }

    /// A selection holding every component.
    pub fn all(&self) -> Selection {
        vec![true; self.len()]
    }

    /// Adds to `selection` everything reachable from it in the given direction.
    pub fn close(&self, selection: &mut Selection, walk: Walk) {
        let mut queue: VecDeque<usize> = (0..self.len()).filter(|&i| selection[i]).collect();
        while let Some(i) = queue.pop_front() {
            for n in self
                .dag
                .neighbors_directed(NodeIndex::new(i), walk.direction())
            {
                if !selection[n.index()] {
                    selection[n.index()] = true;
                    queue.push_back(n.index());
                }
            }
        }
    }

    /// The selected components in an order where each comes after everything
    /// it depends on (`walk = Dependents`, for deploys) or after everything
    /// that depends on it (`walk = Dependencies`, for destroys). Ties go to the
    /// name that sorts first.
    pub fn order(&self, selection: &Selection, walk: Walk) -> Vec<usize> {
        let before = match walk {
            Walk::Dependents => Incoming,
            Walk::Dependencies => Outgoing,
        };
        let mut waiting: Vec<usize> = vec![0; self.len()];
        let mut ready = BinaryHeap::new();
        for i in (0..self.len()).filter(|&i| selection[i]) {
            waiting[i] = self
                .dag
                .neighbors_directed(NodeIndex::new(i), before)
                .filter(|n| selection[n.index()])
                .count();
            if waiting[i] == 0 {
                ready.push(Reverse(i));
            }
        }
        let mut order = Vec::with_capacity(ready.len());
        while let Some(Reverse(i)) = ready.pop() {
            order.push(i);
            for n in self
                .dag
                .neighbors_directed(NodeIndex::new(i), before.opposite())
            {
                let n = n.index();
                if selection[n] {
                    waiting[n] -= 1;
                    if waiting[n] == 0 {
                        ready.push(Reverse(n));
                    }
                }
            }
        }
        order
    }

    /// The wave of each selected component: 0 for those with nothing to wait
    /// for within the selection, else one more than the latest thing it waits
    /// for. Returns the waves (each in name order) and each node's wave.
    pub fn waves(&self, selection: &Selection, walk: Walk) -> (Vec<Vec<usize>>, Vec<usize>) {
        let before = match walk {
            Walk::Dependents => Incoming,
            Walk::Dependencies => Outgoing,
        };
        let mut level = vec![0usize; self.len()];
        let mut waves: Vec<Vec<usize>> = Vec::new();
        for i in self.order(selection, walk) {
            level[i] = self
                .dag
                .neighbors_directed(NodeIndex::new(i), before)
                .filter(|n| selection[n.index()])
                .map(|n| level[n.index()] + 1)
                .max()
                .unwrap_or(0);
            if waves.len() <= level[i] {
                waves.resize_with(level[i] + 1, Vec::new);
            }
            waves[level[i]].push(i);
        }
        for wave in &mut waves {
            wave.sort_unstable();
        }
        (waves, level)
    }

    /// Every cycle, one per strongly connected component, each starting at
    /// its first name and following deployment order back to it.
    fn cycles(&self) -> Vec<Vec<ComponentName>> {
        let mut cycles: Vec<Vec<usize>> = Vec::new();
        for scc in tarjan_scc(&self.dag) {
            let start = scc.iter().map(|n| n.index()).min().unwrap_or_default();
            let self_loop = self
                .dag
                .contains_edge(NodeIndex::new(start), NodeIndex::new(start));
            if scc.len() == 1 && !self_loop {
                continue;
            }
            if self_loop {
                cycles.push(vec![start, start]);
                continue;
            }
            let members: Vec<usize> = scc.iter().map(|n| n.index()).collect();
            cycles.push(self.shortest_cycle_through(start, &members));
        }
        cycles.sort();
        cycles
            .into_iter()
            .map(|c| c.into_iter().map(|i| self.names[i].clone()).collect())
            .collect()
    }

    /// Breadth-first search from `start` back to itself, staying inside its
    /// strongly connected component, so the reported cycle is a shortest one.
    fn shortest_cycle_through(&self, start: usize, members: &[usize]) -> Vec<usize> {
        let mut parent: HashMap<usize, usize> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(i) = queue.pop_front() {
            for n in self.neighbours(i, Walk::Dependents) {
                if n == start {
                    let mut path = vec![start, i];
                    let mut at = i;
                    while at != start {
                        at = parent[&at];
                        path.push(at);
                    }
                    path.reverse();
                    return path;
                }
                if members.contains(&n) && !parent.contains_key(&n) {
                    parent.insert(n, i);
                    queue.push_back(n);
                }
            }
        }
        vec![start, start]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> ComponentName {
        ComponentName::parse(s).unwrap()
    }

    fn graph(spec: &[(&str, &[&str])]) -> Result<Graph, GraphError> {
        let owned: Vec<(ComponentName, Vec<ComponentName>)> = spec
            .iter()
            .map(|(c, d)| (n(c), d.iter().map(|x| n(x)).collect()))
            .collect();
        Graph::build(owned.iter().map(|(c, d)| (c, d.iter())))
    }

    fn names(g: &Graph, ids: &[usize]) -> Vec<String> {
        ids.iter().map(|&i| g.name(i).to_string()).collect()
    }

    fn example() -> Graph {
        graph(&[
            ("platform", &["addons", "dns"]),
            ("addons", &["clusters"]),
            ("monitoring", &["clusters"]),
            ("clusters", &["network"]),
            ("dns", &["network"]),
            ("network", &[]),
        ])
        .unwrap()
    }

    #[test]
    fn order_puts_dependencies_first_and_breaks_ties_by_name() {
        let g = example();
        let order = g.order(&g.all(), Walk::Dependents);
        assert_eq!(
            names(&g, &order),
            [
                "network",
                "clusters",
                "addons",
                "dns",
                "monitoring",
                "platform"
            ]
        );
    }

    #[test]
    fn destroy_order_is_the_reverse_dependency_order() {
        let g = example();
        let order = names(&g, &g.order(&g.all(), Walk::Dependencies));
        assert_eq!(order.first().map(String::as_str), Some("monitoring"));
        assert_eq!(order.last().map(String::as_str), Some("network"));
        let pos = |x: &str| order.iter().position(|o| o == x).unwrap();
        assert!(pos("platform") < pos("addons") && pos("addons") < pos("clusters"));
        assert!(pos("platform") < pos("dns") && pos("dns") < pos("network"));
    }

    #[test]
    fn waves_group_components_by_longest_dependency_chain() {
        let g = example();
        let (waves, _) = g.waves(&g.all(), Walk::Dependents);
        let waves: Vec<Vec<String>> = waves.iter().map(|w| names(&g, w)).collect();
        assert_eq!(
            waves,
            [
                vec!["network"],
                vec!["clusters", "dns"],
                vec!["addons", "monitoring"],
                vec!["platform"]
            ]
        );
    }

    #[test]
    fn closures_follow_dependencies_or_dependents() {
        let g = example();
        let mut sel = vec![false; g.len()];
        sel[g.index_of("addons").unwrap()] = true;
        let mut deps = sel.clone();
        g.close(&mut deps, Walk::Dependencies);
        assert_eq!(
            names(&g, &g.order(&deps, Walk::Dependents)),
            ["network", "clusters", "addons"]
        );
        g.close(&mut sel, Walk::Dependents);
        assert_eq!(
            names(&g, &g.order(&sel, Walk::Dependents)),
            ["addons", "platform"]
        );
    }

    #[test]
    fn file_order_does_not_change_the_result() {
        let a = example();
        let b = graph(&[
            ("network", &[]),
            ("dns", &["network"]),
            ("clusters", &["network"]),
            ("monitoring", &["clusters"]),
            ("addons", &["clusters"]),
            ("platform", &["dns", "addons"]),
        ])
        .unwrap();
        assert_eq!(
            a.order(&a.all(), Walk::Dependents),
            b.order(&b.all(), Walk::Dependents)
        );
        assert_eq!(
            a.waves(&a.all(), Walk::Dependents),
            b.waves(&b.all(), Walk::Dependents)
        );
    }

    #[test]
    fn cycles_are_reported_whole() {
        let err = graph(&[("network", &["clusters"]), ("clusters", &["network"])]).unwrap_err();
        assert_eq!(
            err.cycles,
            [vec![n("clusters"), n("network"), n("clusters")]]
        );
        let err = graph(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"]), ("d", &["d"])]).unwrap_err();
        assert_eq!(
            err.cycles,
            [vec![n("a"), n("b"), n("c"), n("a")], vec![n("d"), n("d")]]
        );
    }

    #[test]
    fn unknown_dependencies_are_reported_with_their_dependent() {
        let err = graph(&[("a", &["nope"])]).unwrap_err();
        assert_eq!(err.unknown, [(n("a"), n("nope"))]);
    }
}
