//! The text of a promotion pull request: its title, its description (the
//! diff of the target's values, and the evidence the gate went by), and
//! the message of the commit it carries.
//!
//! The evidence is what the source's state files said when the promotion
//! was made: each cloud's state serial, and for each promoted component its
//! status, when it finished, and the run that deployed it. A reviewer can
//! follow every run link to see what was deployed before approving.

use std::fmt::Write as _;

use super::diff::{self, View};
use crate::config::{ComponentName, Config, EnvName};
use crate::diff::ComponentDiff;
use crate::exec::engine::Observation;
use crate::github::body::marker;
use crate::promote::gate::NotReady;
use crate::state::RunInfo;

/// Who overrode the gate, and why.
#[derive(Debug, Clone, Copy)]
pub struct Override<'a> {
    /// `GITHUB_ACTOR`, else `USER`.
    pub actor: &'a str,
    /// The `--reason`.
    pub reason: &'a str,
}

/// Everything a promotion pull request says.
#[derive(Debug, Clone, Copy)]
pub struct Promotion<'a> {
    /// The configuration.
    pub config: &'a Config,
    /// Where the values come from.
    pub from: &'a EnvName,
    /// Where they go.
    pub to: &'a EnvName,
    /// What changes in the target, component by component.
    pub diffs: &'a [ComponentDiff],
    /// How many environment-specific differences stay.
    pub stays: usize,
    /// The promoted components; empty for all.
    pub selected: &'a [ComponentName],
    /// The source's clouds as the gate saw them.
    pub observations: &'a [Observation],
    /// What the gate found not ready (empty when it was ready).
    pub not_ready: &'a [NotReady],
    /// Set when the gate was overridden.
    pub overridden: Option<Override<'a>>,
    /// The commit the promotion starts from.
    pub base_commit: &'a str,
    /// The run that made it, as markdown (a link, or who ran it locally).
    pub run: &'a str,
}

/// The hidden marker of a promotion pull request's description.
fn pr_marker(from: &EnvName, to: &EnvName) -> String {
    marker("promotion", &[("from", from.as_str()), ("to", to.as_str())])
}

/// The pull request's title.
pub fn title(p: &Promotion<'_>) -> String {
    format!("Promote {} to {}", p.from, p.to)
}

/// The pull request's description, in markdown.
pub fn body(p: &Promotion<'_>) -> String {
    let mut out = pr_marker(p.from, p.to);
    let _ = writeln!(
        out,
        "\n## Promote {} to {}\n\nThe values under `promotion.keys`, copied from **{}** into **{}**:\n",
        p.from, p.to, p.from, p.to
    );
    let heading = format!("{}, promoted from {}", p.to, p.from);
    out.push_str(&diff::markdown(&View {
        title: &heading,
        from: p.from.as_str(),
        to: p.to.as_str(),
        components: p.diffs,
        mark_promotable: false,
    }));
    let _ = writeln!(
        out,
        "\n{} environment-specific difference{} stay{} (`orchestrator diff --from {} --to {}` shows {}).",
        p.stays,
        if p.stays == 1 { "" } else { "s" },
        if p.stays == 1 { "s" } else { "" },
        p.from,
        p.to,
        if p.stays == 1 { "it" } else { "them" },
    );
    out.push_str(&evidence(p));
    let _ = writeln!(
        out,
        "\n---\nOpened by `orchestrator promote --from {} --to {} --open-pr` from commit `{}` in {}. Merging it changes only the values files; deploy {} afterwards.",
        p.from, p.to, p.base_commit, p.run, p.to
    );
    out
}

/// What the gate went by: a warning when it was overridden, then each
/// cloud's state serial and each promoted component's last run.
fn evidence(p: &Promotion<'_>) -> String {
    let mut out = String::new();
    match &p.overridden {
        Some(o) => {
            let _ = writeln!(
                out,
                "\n> [!WARNING]\n> **The promotion gate was overridden** by {}: {}\n>\n> {} was not ready:",
                o.actor,
                one_line(o.reason),
                p.from
            );
            for r in p.not_ready {
                let _ = writeln!(out, "> - {}", r.describe(p.from));
            }
        }
        None => {
            let _ = writeln!(
                out,
                "\n### Why {} is ready\n\nIn every cloud of {}, each promoted component succeeded at the inputs it has now, nothing is failed or running, and no run holds the state lock.",
                p.from, p.from
            );
        }
    }
    out.push_str("\n| Cloud | State serial | Component | Status | Finished | Run |\n| --- | ---: | --- | --- | --- | --- |\n");
    for o in p.observations {
        let serial = o
            .state
            .as_ref()
            .map_or("no state".to_string(), |s| s.serial.to_string());
        let mut rows = 0;
        for c in &p.config.components {
            if !p.selected.is_empty() && !p.selected.contains(&c.name) {
                continue;
            }
            rows += 1;
            let record = o.state.as_ref().and_then(|s| s.components.get(&c.name));
            let (status, finished, run) = match record {
                Some(r) => (
                    r.status.as_str().to_string(),
                    r.finished_at.map(|t| t.to_string()).unwrap_or_default(),
                    r.run.as_ref().map(run_cell).unwrap_or_default(),
                ),
                None => ("never deployed".to_string(), String::new(), String::new()),
            };
            let _ = writeln!(
                out,
                "| {} | {serial} | `{}` | {status} | {finished} | {run} |",
                o.cloud, c.name
            );
        }
        if rows == 0 {
            let _ = writeln!(out, "| {} | {serial} | | | | |", o.cloud);
        }
    }
    out
}

/// A run in a table cell: a link on GitHub, else who ran it locally.
fn run_cell(run: &RunInfo) -> String {
    let attempt = if run.attempt > 1 {
        format!(", attempt {}", run.attempt)
    } else {
        String::new()
    };
    match (&run.url, &run.actor) {
        (Some(url), _) => format!("[run {}{attempt}]({url})", run.id),
        (None, Some(actor)) => format!("local run {} by {}", run.id, one_line(actor)),
        (None, None) => format!("local run {}", run.id),
    }
}

/// The message of the commit the pull request carries: what it promotes
/// and which files it changes, and the override when there was one.
pub fn commit_message(p: &Promotion<'_>, files: &[String]) -> String {
    let components: Vec<&str> = p
        .diffs
        .iter()
        .filter(|d| !d.changes.is_empty())
        .map(|d| d.component.as_str())
        .collect();
    let mut text = format!(
        "{}\n\nCopy the values under promotion.keys from {} into {} for {}.\n\nChanged: {}\n",
        title(p),
        p.from,
        p.to,
        components.join(", "),
        files.join(", ")
    );
    if let Some(o) = &p.overridden {
        let _ = write!(
            text,
            "\nThe promotion gate was overridden by {}: {}\n",
            o.actor,
            one_line(o.reason)
        );
    }
    text
}

/// Text on one line, as table cells and quoted lines need it.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
