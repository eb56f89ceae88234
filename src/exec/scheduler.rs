//! The eager scheduler: a component starts the moment everything it waits
//! for in the run has succeeded and a slot under the concurrency cap is
//! free. Unlike a wave schedule, nothing waits for the slowest member of a
//! level.
//!
//! The scheduler knows nothing about processes or output. It hands each
//! ready unit to a visitor (an async function) and acts on the answer;
//! what the visitor does, and who hears about it, is decided elsewhere.
//! Ties between ready units go to the first cloud, then the first name, so
//! runs are reproducible.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::graph::{Graph, Selection, Walk};

/// What to do when a component fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FailurePolicy {
    /// Skip what depends on the failed component; independent branches go on.
    #[default]
    SkipDependents,
    /// Start nothing new; let running components finish.
    Stop,
    /// Run dependents anyway.
    Continue,
}

/// One thing to run: a component on a cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Unit {
    /// Index into the run's clouds.
    pub cloud: usize,
    /// Node index of the component in the graph.
    pub component: usize,
}

/// How a visited unit ended, as the visitor reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// It did its work.
    Succeeded,
    /// It failed.
    Failed,
    /// It was stopped by cancellation.
    Cancelled,
    /// It never started: by the time it could, the run had been cancelled
    /// or stopped after a failure. Ends as a unit never handed out does.
    Withheld,
}

/// How every unit of the run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Visited, with the visitor's answer.
    Visited(Visit),
    /// Not run because a unit it waits for failed (named).
    Skipped(Unit),
    /// Not run because the run stopped after a failure (`--on-failure stop`).
    Stopped,
    /// Not run because the run was cancelled before it could start.
    NotStarted,
}

/// The plan of a run for the scheduler.
#[derive(Debug)]
pub struct Schedule<'g> {
    /// The dependency graph.
    pub graph: &'g Graph,
    /// For each cloud of the run, the components to run on it.
    pub selections: Vec<Selection>,
    /// `Dependents` for deploys, `Dependencies` for destroys (reverse order).
    pub walk: Walk,
    /// How many units are handed to visitors at once (at least 1). A
    /// visitor may hold a unit back until a slot of its own frees up, and
    /// so prepare it while others run.
    pub max_parallel: usize,
    /// What a failure does to the rest.
    pub policy: FailurePolicy,
}

impl Schedule<'_> {
    fn index(&self, unit: Unit) -> usize {
        unit.cloud * self.graph.len() + unit.component
    }

    fn selected(&self, unit: Unit) -> bool {
        self.selections[unit.cloud][unit.component]
    }

    /// Units this one waits for (within the run).
    fn before(&self, unit: Unit) -> impl Iterator<Item = Unit> + '_ {
        let walk = match self.walk {
            Walk::Dependents => Walk::Dependencies,
            Walk::Dependencies => Walk::Dependents,
        };
        self.graph
            .neighbours(unit.component, walk)
            .into_iter()
            .map(move |c| Unit {
                cloud: unit.cloud,
                component: c,
            })
            .filter(|u| self.selected(*u))
    }

    /// Units waiting for this one (within the run).
    fn after(&self, unit: Unit) -> impl Iterator<Item = Unit> + '_ {
        self.graph
            .neighbours(unit.component, self.walk)
            .into_iter()
            .map(move |c| Unit {
                cloud: unit.cloud,
                component: c,
            })
            .filter(|u| self.selected(*u))
    }

    /// Every selected unit, cloud by cloud, in node order.
    pub fn units(&self) -> Vec<Unit> {
        (0..self.selections.len())
            .flat_map(|cloud| (0..self.graph.len()).map(move |component| Unit { cloud, component }))
            .filter(|u| self.selected(*u))
            .collect()
    }
}

/// Runs every selected unit, each as soon as it may, at most `max_parallel`
/// at once, calling `visit` for each. Returns how each unit ended, in
/// [`Schedule::units`] order.
///
/// `decided` hears, once, of each unit that ends without being visited,
/// as soon as that is known: what depends on a failure is skipped as it
/// fails, and under `--on-failure stop` what has not started is stopped as
/// the failure comes in; a unit its visitor withholds, and what a
/// cancellation leaves unstarted, when the run ends.
///
/// `cancel` stops the run: nothing new starts, and visitors see the same
/// token so they can stop what they are running.
pub async fn run<F, Fut, D>(
    schedule: &Schedule<'_>,
    cancel: &CancellationToken,
    visit: F,
    mut decided: D,
) -> Vec<(Unit, Ending)>
where
    F: Fn(Unit) -> Fut,
    Fut: Future<Output = Visit> + Send + 'static,
    D: FnMut(Unit, &Ending),
{
    let units = schedule.units();
    let slots = schedule.selections.len() * schedule.graph.len();
    let mut waiting = vec![0usize; slots];
    let mut ending: Vec<Option<Ending>> = vec![None; slots];
    let mut ready = BinaryHeap::new();
    for &u in &units {
        waiting[schedule.index(u)] = schedule.before(u).count();
        if waiting[schedule.index(u)] == 0 {
            ready.push(Reverse(u));
        }
    }
    let mut running = JoinSet::new();
    let mut tasks = foldhash::HashMap::default();
    let mut stopped = false;
    let cap = schedule.max_parallel.max(1);
    loop {
        while !stopped && !cancel.is_cancelled() && running.len() < cap {
            let Some(Reverse(unit)) = ready.pop() else {
                break;
            };
            let work = visit(unit);
            let handle = running.spawn(work);
            tasks.insert(handle.id(), unit);
        }
        let Some(joined) = running.join_next_with_id().await else {
            break;
        };
        // A visitor that panicked is a bug; it counts as a failure of its
        // unit rather than taking the whole run down.
        let (id, result) = match joined {
            Ok((id, visit)) => (id, visit),
            Err(e) => (e.id(), Visit::Failed),
        };
        let Some(unit) = tasks.remove(&id) else {
            continue;
        };
        if result == Visit::Withheld {
            continue;
        }
        ending[schedule.index(unit)] = Some(Ending::Visited(result));
        match (result, schedule.policy) {
            (Visit::Succeeded, _) | (Visit::Failed, FailurePolicy::Continue) => {
                for next in schedule.after(unit) {
                    let i = schedule.index(next);
                    waiting[i] -= 1;
                    if waiting[i] == 0 && ending[i].is_none() {
                        ready.push(Reverse(next));
                    }
                }
            }
            (Visit::Failed, FailurePolicy::SkipDependents) => {
                skip_after(schedule, unit, &mut ending, &mut decided)
            }
            (Visit::Failed, FailurePolicy::Stop) => {
                stopped = true;
                // What is handed out already ends as its visitor says.
                for &u in &units {
                    let i = schedule.index(u);
                    if ending[i].is_none() && !tasks.values().any(|t| *t == u) {
                        ending[i] = Some(Ending::Stopped);
                        decided(u, &Ending::Stopped);
                    }
                }
            }
            (Visit::Cancelled | Visit::Withheld, _) => {}
        }
    }
    units
        .into_iter()
        .map(|u| {
            let end = match &ending[schedule.index(u)] {
                Some(end) => end.clone(),
                None => {
                    let end = if stopped && !cancel.is_cancelled() {
                        Ending::Stopped
                    } else {
                        Ending::NotStarted
                    };
                    decided(u, &end);
                    end
                }
            };
            (u, end)
        })
        .collect()
}

/// Marks everything downstream of `failed` as skipped because it failed,
/// telling `decided` of each.
fn skip_after(
    schedule: &Schedule<'_>,
    failed: Unit,
    ending: &mut [Option<Ending>],
    decided: &mut impl FnMut(Unit, &Ending),
) {
    let skipped = Ending::Skipped(failed);
    let mut stack = vec![failed];
    while let Some(u) = stack.pop() {
        for next in schedule.after(u) {
            let i = schedule.index(next);
            if ending[i].is_none() {
                ending[i] = Some(skipped.clone());
                decided(next, &skipped);
                stack.push(next);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::config::ComponentName;

    fn graph(spec: &[(&str, &[&str])]) -> Graph {
        let owned: Vec<(ComponentName, Vec<ComponentName>)> = spec
            .iter()
            .map(|(c, d)| {
                (
                    ComponentName::parse(c).unwrap(),
                    d.iter().map(|x| ComponentName::parse(x).unwrap()).collect(),
                )
            })
            .collect();
        Graph::build(owned.iter().map(|(c, d)| (c, d.iter()))).unwrap()
    }

    /// Runs the schedule with units that sleep for the given milliseconds and
    /// fail when named; returns endings by name and (name, start, end) times.
    async fn simulate(
        g: &Graph,
        walk: Walk,
        cap: usize,
        policy: FailurePolicy,
        millis: &[(&str, u64)],
        failing: &[&str],
    ) -> Simulated {
        let schedule = Schedule {
            graph: g,
            selections: vec![g.all()],
            walk,
            max_parallel: cap,
            policy,
        };
        let log = Arc::new(Mutex::new(Vec::new()));
        let t0 = Instant::now();
        let millis: Vec<(String, u64)> = millis.iter().map(|(n, m)| (n.to_string(), *m)).collect();
        let failing: Vec<String> = failing.iter().map(|s| s.to_string()).collect();
        let mut decided = Vec::new();
        let endings = run(
            &schedule,
            &CancellationToken::new(),
            |u| {
                let name = g.name(u.component).to_string();
                let ms = millis
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or(10, |(_, m)| *m);
                let fails = failing.contains(&name);
                let log = log.clone();
                async move {
                    let start = t0.elapsed();
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    log.lock().unwrap().push((name, start, t0.elapsed()));
                    if fails {
                        Visit::Failed
                    } else {
                        Visit::Succeeded
                    }
                }
            },
            |u, e: &Ending| {
                decided.push((g.name(u.component).to_string(), e.clone(), t0.elapsed()))
            },
        )
        .await;
        let endings = endings
            .into_iter()
            .map(|(u, e)| (g.name(u.component).to_string(), e))
            .collect();
        let log = log.lock().unwrap().clone();
        Simulated {
            endings,
            log,
            decided,
        }
    }

    /// What [`simulate`] saw.
    struct Simulated {
        /// How each unit ended, by name.
        endings: Vec<(String, Ending)>,
        /// (name, start, end) of each visit.
        log: Vec<(String, Duration, Duration)>,
        /// (name, ending, when) of each unit reported as it was decided.
        decided: Vec<(String, Ending, Duration)>,
    }

    fn times<'a>(
        log: &'a [(String, Duration, Duration)],
        name: &str,
    ) -> &'a (String, Duration, Duration) {
        log.iter().find(|(n, _, _)| n == name).unwrap()
    }

    fn diamond() -> Graph {
        graph(&[
            ("net", &[]),
            ("slow", &["net"]),
            ("fast", &["net"]),
            ("after-fast", &["fast"]),
            ("top", &["slow", "after-fast"]),
        ])
    }

    #[tokio::test]
    async fn components_start_when_their_own_dependencies_finish_not_their_wave() {
        let g = diamond();
        let Simulated { endings, log, .. } = simulate(
            &g,
            Walk::Dependents,
            4,
            FailurePolicy::SkipDependents,
            &[("slow", 300), ("fast", 20)],
            &[],
        )
        .await;
        assert!(
            endings
                .iter()
                .all(|(_, e)| *e == Ending::Visited(Visit::Succeeded))
        );
        // after-fast is in the same wave as nothing slow, but a wave scheduler
        // would hold it behind `slow`; here it starts as soon as `fast` ends.
        let (_, after_fast_start, _) = times(&log, "after-fast");
        let (_, _, slow_end) = times(&log, "slow");
        assert!(after_fast_start < slow_end, "{log:?}");
        for (name, deps) in [
            ("slow", vec!["net"]),
            ("fast", vec!["net"]),
            ("after-fast", vec!["fast"]),
            ("top", vec!["slow", "after-fast"]),
        ] {
            let (_, start, _) = times(&log, name);
            for d in deps {
                assert!(
                    times(&log, d).2 <= *start,
                    "{name} started before {d} finished: {log:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn the_cap_bounds_how_many_run_at_once() {
        let g = graph(&[("a", &[]), ("b", &[]), ("c", &[]), ("d", &[])]);
        let Simulated { log, .. } = simulate(
            &g,
            Walk::Dependents,
            2,
            FailurePolicy::SkipDependents,
            &[],
            &[],
        )
        .await;
        for (n, s, _) in &log {
            let overlapping = log.iter().filter(|(_, s2, e2)| s2 <= s && e2 > s).count();
            assert!(
                overlapping <= 2,
                "{n}: {overlapping} running at once: {log:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_failure_skips_only_its_dependents() {
        let g = diamond();
        let Simulated { endings, .. } = simulate(
            &g,
            Walk::Dependents,
            4,
            FailurePolicy::SkipDependents,
            &[],
            &["fast"],
        )
        .await;
        let end = |n: &str| endings.iter().find(|(x, _)| x == n).unwrap().1.clone();
        assert_eq!(end("fast"), Ending::Visited(Visit::Failed));
        assert!(matches!(end("after-fast"), Ending::Skipped(_)));
        assert!(matches!(end("top"), Ending::Skipped(_)));
        assert_eq!(end("slow"), Ending::Visited(Visit::Succeeded));
    }

    #[tokio::test]
    async fn skips_and_stops_are_heard_as_the_failure_comes_not_at_the_end() {
        let g = diamond();
        for policy in [FailurePolicy::SkipDependents, FailurePolicy::Stop] {
            let Simulated {
                endings,
                log,
                decided,
            } = simulate(
                &g,
                Walk::Dependents,
                4,
                policy,
                &[("slow", 300), ("fast", 10)],
                &["fast"],
            )
            .await;
            let (_, _, slow_end) = times(&log, "slow");
            let mut heard: Vec<&str> = decided.iter().map(|(n, _, _)| n.as_str()).collect();
            heard.sort_unstable();
            assert_eq!(heard, ["after-fast", "top"], "{policy:?}: {decided:?}");
            for (name, ending, at) in &decided {
                assert!(
                    at < slow_end,
                    "{policy:?}: {name} heard at {at:?}, slow ended {slow_end:?}"
                );
                let last = endings.iter().find(|(n, _)| n == name).unwrap();
                assert_eq!(last.1, *ending, "{policy:?}: the result agrees");
            }
        }
    }

    #[tokio::test]
    async fn stop_starts_nothing_new_but_lets_running_ones_finish() {
        let g = diamond();
        let Simulated { endings, .. } = simulate(
            &g,
            Walk::Dependents,
            4,
            FailurePolicy::Stop,
            &[("slow", 150), ("fast", 10)],
            &["fast"],
        )
        .await;
        let end = |n: &str| endings.iter().find(|(x, _)| x == n).unwrap().1.clone();
        assert_eq!(
            end("slow"),
            Ending::Visited(Visit::Succeeded),
            "running one finished"
        );
        assert_eq!(end("after-fast"), Ending::Stopped);
        assert_eq!(end("top"), Ending::Stopped);
    }

    #[tokio::test]
    async fn continue_runs_dependents_anyway() {
        let g = diamond();
        let Simulated { endings, .. } = simulate(
            &g,
            Walk::Dependents,
            4,
            FailurePolicy::Continue,
            &[],
            &["fast"],
        )
        .await;
        let end = |n: &str| endings.iter().find(|(x, _)| x == n).unwrap().1.clone();
        assert_eq!(end("after-fast"), Ending::Visited(Visit::Succeeded));
        assert_eq!(end("top"), Ending::Visited(Visit::Succeeded));
    }

    #[tokio::test]
    async fn destroys_walk_the_graph_in_reverse() {
        let g = diamond();
        let Simulated { log, .. } = simulate(
            &g,
            Walk::Dependencies,
            4,
            FailurePolicy::SkipDependents,
            &[],
            &[],
        )
        .await;
        assert!(times(&log, "top").2 <= times(&log, "slow").1);
        assert!(times(&log, "slow").2 <= times(&log, "net").1);
    }

    /// Every unit of `g`, two at a time.
    fn of_two(g: &Graph, policy: FailurePolicy) -> Schedule<'_> {
        Schedule {
            graph: g,
            selections: vec![g.all()],
            walk: Walk::Dependents,
            max_parallel: 2,
            policy,
        }
    }

    #[tokio::test]
    async fn a_withheld_unit_ends_as_one_never_handed_out() {
        let g = graph(&[("a", &[]), ("b", &[])]);
        let schedule = of_two(&g, FailurePolicy::Stop);
        let mut decided = Vec::new();
        let endings = run(
            &schedule,
            &CancellationToken::new(),
            |u| async move {
                if u.component == 0 {
                    Visit::Failed
                } else {
                    Visit::Withheld
                }
            },
            |u, e: &Ending| decided.push((u, e.clone())),
        )
        .await;
        assert_eq!(endings[0].1, Ending::Visited(Visit::Failed));
        assert_eq!(endings[1].1, Ending::Stopped);
        assert_eq!(decided, [endings[1].clone()], "told once, at the end");
    }

    #[tokio::test]
    async fn cancellation_starts_nothing_more() {
        let g = graph(&[("a", &[]), ("b", &["a"])]);
        let schedule = of_two(&g, FailurePolicy::SkipDependents);
        let cancel = CancellationToken::new();
        let mut decided = Vec::new();
        let endings = run(
            &schedule,
            &cancel,
            |_| {
                let cancel = cancel.clone();
                async move {
                    cancel.cancel();
                    Visit::Cancelled
                }
            },
            |u, e: &Ending| decided.push((u, e.clone())),
        )
        .await;
        assert_eq!(endings[0].1, Ending::Visited(Visit::Cancelled));
        assert_eq!(endings[1].1, Ending::NotStarted);
        assert_eq!(decided, [endings[1].clone()], "the unstarted one, once");
    }
}
