//! The config-diff comment of a pull request, in markdown: the changes to
//! `orchestrator.yaml`, then per environment what runs after merge (with a
//! mermaid graph of it) and how each component's values change.

use std::fmt::Write as _;

use super::diff::{self, View};
use super::graph::mermaid_subgraph;
use crate::config::Config;
use crate::diff::{ComponentDiff, Presence};
use crate::graph::Walk;
use crate::impact::{EnvImpact, Impact};

/// The two commits compared, as the comment names them.
#[derive(Debug, Clone, Copy)]
pub struct Compared<'a> {
    /// The commit the pull request starts from, shortened.
    pub base: &'a str,
    /// The pull request's head commit, shortened.
    pub head: &'a str,
}

/// The comment's text. `config` is the pull request's configuration.
pub fn markdown(impact: &Impact, config: Option<&Config>, compared: Compared<'_>) -> String {
    let mut out = String::from("### Configuration changes\n\n");
    let _ = writeln!(
        out,
        "What merging this pull request changes, comparing `{}` with `{}`.",
        compared.base, compared.head
    );
    if impact.is_empty() {
        out.push_str(
            "\nNo changes to `orchestrator.yaml`, the values under `environments/` or the \
             components' files: merging this pull request deploys nothing.\n",
        );
        return out;
    }
    if !impact.config.is_empty() {
        let whole = [ComponentDiff {
            component: "orchestrator.yaml".into(),
            presence: Presence::Both,
            changes: impact.config.clone(),
        }];
        out.push('\n');
        out.push_str(&diff::markdown(&View {
            title: "orchestrator.yaml",
            from: "base",
            to: "head",
            components: &whole,
            mark_promotable: false,
        }));
    }
    for env in impact.environments.iter().filter(|e| !e.is_empty()) {
        if let Some(config) = config {
            environment(&mut out, config, env);
        }
    }
    let quiet: Vec<String> = impact
        .environments
        .iter()
        .filter(|e| e.is_empty())
        .map(|e| format!("`{}`", e.env))
        .collect();
    if !quiet.is_empty() {
        let _ = writeln!(out, "\nNothing changes in {}.", quiet.join(", "));
    }
    if !impact.removed_environments.is_empty() {
        let names: Vec<String> = impact
            .removed_environments
            .iter()
            .map(|e| format!("`{e}`"))
            .collect();
        let _ = writeln!(
            out,
            "\nRemoved environments: {}. Their deployments stay until destroyed \
             (`orchestrator destroy --env ENV` before merging).",
            names.join(", ")
        );
    }
    out
}

/// The comment when the pull request's configuration does not load:
/// `problems`, as the command prints them.
pub fn invalid(problems: &str, compared: Compared<'_>) -> String {
    format!(
        "### Configuration changes\n\nThe configuration at `{}` does not load, so what merging this pull request deploys cannot be told:\n\n{}\n",
        compared.head,
        crate::github::body::fenced(problems.trim_end(), "text")
    )
}

/// One environment's section.
fn environment(out: &mut String, config: &Config, env: &EnvImpact) {
    let _ = writeln!(out, "\n#### `{}`\n", env.env);
    let g = &config.graph;
    let mut changed = vec![false; g.len()];
    for (name, _) in &env.changed {
        if let Some(i) = g.index_of(name.as_str()) {
            changed[i] = true;
        }
    }
    if env.runs.is_empty() {
        out.push_str("Nothing runs after merge.\n");
    } else {
        let names: Vec<String> = env.runs.iter().map(|n| format!("`{n}`")).collect();
        let _ = writeln!(
            out,
            "After merge, `orchestrator apply --env {} --changed` runs {}: {}.\n",
            env.env,
            super::counted(env.runs.len(), "component"),
            names.join(", ")
        );
        out.push_str("| Component | Why it runs |\n| --- | --- |\n");
        for name in &env.runs {
            let why = match env.changed.iter().find(|(n, _)| n == name) {
                Some((_, why)) => why
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                None => depends_on_changed(config, name.as_str(), &changed),
            };
            let _ = writeln!(out, "| `{name}` | {why} |");
        }
        let mut selected = vec![false; g.len()];
        for name in &env.runs {
            if let Some(i) = g.index_of(name.as_str()) {
                selected[i] = true;
            }
        }
        let _ = writeln!(
            out,
            "\n```mermaid\n{}```",
            mermaid_subgraph(config, &selected, &changed)
        );
    }
    if !env.removed.is_empty() {
        let names: Vec<String> = env.removed.iter().map(|n| format!("`{n}`")).collect();
        let _ = writeln!(
            out,
            "\nRemoved from the configuration: {}. What they deployed stays until destroyed \
             (`orchestrator destroy --env {} --components ...` before merging).",
            names.join(", "),
            env.env
        );
    }
    if !env.diffs.is_empty() {
        let title = format!("Values in {}", env.env);
        out.push('\n');
        out.push_str(&diff::markdown(&View {
            title: &title,
            from: "base",
            to: "head",
            components: &env.diffs,
            mark_promotable: false,
        }));
    }
}

/// Why a component that did not change runs: the changed components it
/// depends on, directly or not.
fn depends_on_changed(config: &Config, name: &str, changed: &[bool]) -> String {
    let g = &config.graph;
    let mut upstream = vec![false; g.len()];
    if let Some(i) = g.index_of(name) {
        upstream[i] = true;
    }
    g.close(&mut upstream, Walk::Dependencies);
    let names: Vec<String> = (0..g.len())
        .filter(|&i| upstream[i] && changed[i])
        .map(|i| format!("`{}`", g.name(i)))
        .collect();
    format!("depends on {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::impact::{Snapshot, compare, options};

    #[test]
    fn the_comment_shows_what_runs_its_graph_and_the_values_diff() {
        let text = "\
version: 1
defaults: {runner: shell}
components:
  network: {path: c/network, commands: {apply: ./apply.sh}}
  clusters: {path: c/clusters, depends_on: [network], commands: {apply: ./apply.sh}}
  dns: {path: c/dns, depends_on: [network], commands: {apply: ./apply.sh}}
  registry: {path: c/registry, commands: {apply: ./apply.sh}}
environments:
  dev: {clouds: [aws]}
  prod: {clouds: [aws]}
";
        let config = crate::config::from_text(Path::new("orchestrator.yaml"), text).unwrap();
        let values = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let before = values(&[(
            "dev/clusters.yaml",
            "version: \"1.31\"\napi_token: abc123\n",
        )]);
        let after = values(&[(
            "dev/clusters.yaml",
            "version: \"1.32\"\napi_token: def456\n",
        )]);
        let (old, new) = (
            values(&[("c/network", "t1")]),
            values(&[("c/network", "t2")]),
        );
        let side = |values, dirs| Snapshot {
            config: Some(&config),
            config_text: Some(text),
            values,
            dirs,
        };
        let impact = compare(
            &side(&before, &old),
            &side(&after, &new),
            Path::new("environments"),
            &options(Some(&config), Some(&config)),
        )
        .unwrap();
        let compared = Compared {
            base: "1111111",
            head: "2222222",
        };
        insta::assert_snapshot!(markdown(&impact, Some(&config), compared));
    }
}
