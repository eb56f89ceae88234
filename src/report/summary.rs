//! The step summary: the markdown page GitHub shows on a workflow run's
//! summary, rendered from a command's JSON document.
//!
//! For a run: the result, a table of components (status, attempts,
//! duration, and where the log is), a mermaid graph of the run coloured by
//! status, and the next step that fits (a re-run that resumes, or the
//! promotion). For a plan: the actions, and the graph coloured by action.
//!
//! GitHub refuses a summary over 1 MiB and shows nothing at all, so
//! [`render`] fits the page into the room it is given: the graph goes
//! first, then table rows, each time with a visible note.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;

use super::terminal::seconds;
use crate::config::Config;

/// A summary page before it is fitted into its room.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// The heading, without `#`.
    pub heading: String,
    /// Paragraphs under the heading.
    pub about: Vec<String>,
    /// The table's header.
    pub header: Vec<String>,
    /// The table's rows, cells already markdown.
    pub rows: Vec<Vec<String>>,
    /// A mermaid flowchart, without its fence.
    pub graph: Option<String>,
    /// What to do next, as markdown paragraphs.
    pub next: Vec<String>,
}

/// What the summary says about the workflow run around the command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunLinks {
    /// The run, as markdown (a link on GitHub).
    pub run: String,
    /// A link to the run's logs, where each component's group is.
    pub log: Option<String>,
    /// The run's id on GitHub, for `gh run rerun`.
    pub github_run_id: Option<u64>,
    /// Who started it.
    pub actor: Option<String>,
    /// The commit deployed.
    pub commit: Option<String>,
}

/// The icon and class of a status or action.
fn icon(status: &str) -> &'static str {
    match status {
        "succeeded" => "✅",
        "destroyed" => "🗑️",
        "failed" => "❌",
        "skipped" => "⏭️",
        "cancelled" => "⏹️",
        "create" => "➕",
        "update" => "🔄",
        "destroy" => "➖",
        "noop" => "✔️",
        _ => "•",
    }
}

/// Mermaid class definitions, one per status or action.
const CLASSES: &[(&str, &str)] = &[
    ("succeeded", "fill:#dafbe1,stroke:#1a7f37,color:#1f2328"),
    ("destroyed", "fill:#eaeef2,stroke:#57606a,color:#1f2328"),
    ("failed", "fill:#ffebe9,stroke:#cf222e,color:#1f2328"),
    ("skipped", "fill:#fff8c5,stroke:#9a6700,color:#1f2328"),
    ("cancelled", "fill:#fbefff,stroke:#8250df,color:#1f2328"),
    ("create", "fill:#ddf4ff,stroke:#0969da,color:#1f2328"),
    ("update", "fill:#fff8c5,stroke:#9a6700,color:#1f2328"),
    ("destroy", "fill:#ffebe9,stroke:#cf222e,color:#1f2328"),
    (
        "unchanged",
        "fill:#f6f8fa,stroke:#d0d7de,color:#57606a,stroke-dasharray:3",
    ),
];

/// Escapes text for a markdown table cell.
pub fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
        .replace('<', "&lt;")
}

/// A mermaid flowchart of every component of the environment, per cloud,
/// each coloured by its class in `classes` (keyed by cloud and component),
/// or `unchanged` when the run did not touch it.
pub fn graph(
    config: &Config,
    clouds: &[String],
    classes: &HashMap<(String, String), String>,
) -> String {
    let mut out = String::from("flowchart LR\n");
    let multi = clouds.len() > 1;
    let id =
        |cloud_index: usize, component_index: usize| format!("n{cloud_index}_{component_index}");
    let index: HashMap<&str, usize> = config
        .components
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let mut used = std::collections::BTreeSet::new();
    for (ci, cloud) in clouds.iter().enumerate() {
        let indent = if multi {
            let _ = writeln!(out, "  subgraph {cloud}");
            "    "
        } else {
            "  "
        };
        for (i, c) in config.components.iter().enumerate() {
            let class = classes
                .get(&(cloud.clone(), c.name.to_string()))
                .map(String::as_str)
                .unwrap_or("unchanged");
            used.insert(class.to_string());
            let _ = writeln!(out, "{indent}{}[\"{}\"]:::{class}", id(ci, i), c.name);
        }
        for (i, c) in config.components.iter().enumerate() {
            for d in &c.depends_on {
                if let Some(&di) = index.get(d.as_str()) {
                    let _ = writeln!(out, "{indent}{} --> {}", id(ci, di), id(ci, i));
                }
            }
        }
        if multi {
            out.push_str("  end\n");
        }
    }
    for (name, style) in CLASSES {
        if used.contains(*name) {
            let _ = writeln!(out, "  classDef {name} {style}");
        }
    }
    out
}

/// One component's result in a run document (`apply --format json`).
struct Result<'a> {
    cloud: &'a str,
    component: &'a str,
    doc: &'a Value,
}

fn results(doc: &Value) -> Vec<Result<'_>> {
    doc["components"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(key, v)| Result {
                    cloud: v["cloud"].as_str().unwrap_or(""),
                    component: key.rsplit('/').next().unwrap_or(key),
                    doc: v,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The page for `apply` or `destroy`, from the run's JSON document.
///
/// `clouds` are the clouds the run covered; `promotes_to` the environments
/// promoted from this one, for the next step after a success.
pub fn run_page(
    config: &Config,
    command: &str,
    doc: &Value,
    clouds: &[String],
    links: &RunLinks,
    promotes_to: &[String],
) -> Page {
    let env = doc["environment"].as_str().unwrap_or("");
    let result = doc["result"].as_str().unwrap_or("failed");
    let results = results(doc);
    let multi = clouds.len() > 1;
    let mut counts: Vec<(String, usize)> = Vec::new();
    for r in &results {
        let status = r.doc["status"].as_str().unwrap_or("").to_string();
        match counts.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => counts.push((status, 1)),
        }
    }
    let mut about = Vec::new();
    let mut line = links.run.clone();
    if let Some(actor) = &links.actor {
        let _ = write!(line, " by `{actor}`");
    }
    if let Some(commit) = &links.commit {
        let _ = write!(line, " at `{}`", &commit[..commit.len().min(12)]);
    }
    if results.is_empty() {
        let _ = write!(
            line,
            ": nothing to do, every selected component is up to date."
        );
    } else {
        let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let _ = write!(
            line,
            ": {}, {}.",
            super::counted(results.len(), "component"),
            parts.join(", ")
        );
    }
    about.push(line);
    let header = [
        "Component",
        "Cloud",
        "Action",
        "Status",
        "Attempts",
        "Duration",
        "Log",
    ]
    .map(String::from)
    .to_vec();
    let mut classes = HashMap::new();
    let rows = results
        .iter()
        .map(|r| {
            let status = r.doc["status"].as_str().unwrap_or("");
            classes.insert(
                (r.cloud.to_string(), r.component.to_string()),
                status.to_string(),
            );
            let started = !r.doc["started_at"].is_null();
            let mut status_cell = format!("{} {status}", icon(status));
            if let Some(e) = r.doc["error"].as_str() {
                let _ = write!(status_cell, ": {}", cell(e));
            }
            let label = if multi {
                format!("{} ({})", r.component, r.cloud)
            } else {
                r.component.to_string()
            };
            let log = if !started {
                "-".to_string()
            } else {
                match &links.log {
                    Some(link) => format!("[{label}]({link})"),
                    None => format!(
                        "`.orchestrator/logs/{}/{}/{}.log`",
                        doc["run_id"], r.cloud, r.component
                    ),
                }
            };
            vec![
                format!("`{}`", r.component),
                r.cloud.to_string(),
                r.doc["action"].as_str().unwrap_or("").to_string(),
                status_cell,
                r.doc["attempts"].to_string(),
                if started {
                    seconds(Duration::from_millis(
                        r.doc["duration_ms"].as_u64().unwrap_or(0),
                    ))
                } else {
                    "-".to_string()
                },
                log,
            ]
        })
        .collect();
    let mut next = Vec::new();
    let cloud_flag =
        if clouds.len() == 1 && config.environment(env).is_some_and(|e| e.clouds.len() > 1) {
            format!(" --cloud {}", clouds[0])
        } else {
            String::new()
        };
    match result {
        "failed" | "cancelled" => {
            let what = if result == "failed" {
                "Fix what failed, then run it again"
            } else {
                "The run was cancelled; run it again"
            };
            let mut text =
                format!("{what}: the next run resumes, running only what did not succeed.");
            if let Some(id) = links.github_run_id {
                let _ = write!(text, "\n\n```sh\ngh run rerun {id} --failed\n```");
            }
            let _ = write!(
                text,
                "\n\nFrom a checkout:\n\n```sh\norchestrator {command} --env {env}{cloud_flag}\n```"
            );
            next.push(text);
        }
        _ if command == "destroy" => {}
        _ if promotes_to.is_empty() => next.push(format!(
            "Nothing is promoted from {env}: it is the last stage."
        )),
        _ => {
            for to in promotes_to {
                next.push(format!(
                    "Promote {env} to {to}: see what changes, then copy it over.\n\n```sh\norchestrator diff --from {env} --to {to}\norchestrator promote --from {env} --to {to} --write\n```\n\nor with the example promotion workflow:\n\n```sh\ngh workflow run environment-promotion.yml -f source_environment={env} -f target_environment={to}\n```"
                ));
            }
        }
    }
    Page {
        heading: format!("{} {command} {env}: {result}", icon_of_result(result)),
        about,
        header,
        rows,
        graph: (!results.is_empty()).then(|| graph(config, clouds, &classes)),
        next,
    }
}

fn icon_of_result(result: &str) -> &'static str {
    match result {
        "succeeded" => "✅",
        "cancelled" => "⏹️",
        "planned" => "📋",
        _ => "❌",
    }
}

/// The page for `plan` (or a dry run), from its plan documents, one per
/// cloud.
pub fn plan_page(config: &Config, command: &str, plans: &[Value], links: &RunLinks) -> Page {
    let env = plans
        .first()
        .and_then(|p| p["environment"].as_str())
        .unwrap_or("");
    let clouds: Vec<String> = plans
        .iter()
        .filter_map(|p| p["cloud"].as_str().map(String::from))
        .collect();
    let mut classes = HashMap::new();
    let mut rows = Vec::new();
    let mut to_run = 0;
    for plan in plans {
        let cloud = plan["cloud"].as_str().unwrap_or("");
        for c in plan["components"].as_array().into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or("");
            let action = c["action"].as_str().unwrap_or("");
            if action != "noop" {
                to_run += 1;
                classes.insert((cloud.to_string(), name.to_string()), action.to_string());
            }
            let deps: Vec<String> = c["depends_on"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str().map(|d| format!("`{d}`")))
                .collect();
            rows.push(vec![
                format!("`{name}`"),
                cloud.to_string(),
                format!("{} {action}", icon(action)),
                c["wave"].to_string(),
                deps.join(", "),
            ]);
        }
    }
    let missing: Vec<String> = plans
        .iter()
        .flat_map(|p| {
            let cloud = p["cloud"].as_str().unwrap_or("").to_string();
            p["missing"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |m| m["name"].as_str().map(|n| format!("`{n}` on {cloud}")))
        })
        .collect();
    let mut about = vec![format!(
        "{}: {to_run} of {} to run.",
        links.run,
        super::counted(rows.len(), "component")
    )];
    if !missing.is_empty() {
        about.push(format!(
            "Not deployed at their current version, and needed: {}. Apply them first, or add them to the run.",
            missing.join(", ")
        ));
    }
    let next = if to_run == 0 {
        vec!["Nothing to do.".to_string()]
    } else {
        let verb = if command == "destroy" {
            "destroy"
        } else {
            "apply"
        };
        let cloud_flag =
            if clouds.len() == 1 && config.environment(env).is_some_and(|e| e.clouds.len() > 1) {
                format!(" --cloud {}", clouds[0])
            } else {
                String::new()
            };
        vec![format!(
            "Run it:\n\n```sh\norchestrator {verb} --env {env}{cloud_flag}\n```"
        )]
    };
    Page {
        heading: format!("📋 plan {env}"),
        about,
        header: ["Component", "Cloud", "Action", "Wave", "Depends on"]
            .map(String::from)
            .to_vec(),
        rows,
        graph: (!plans.is_empty()).then(|| graph(config, &clouds, &classes)),
        next,
    }
}

/// The page as markdown, in at most `room` bytes: when it does not fit, the
/// graph is left out, then table rows, each with a note saying so.
pub fn render(page: &Page, room: usize) -> String {
    let full = assemble(page, page.rows.len(), true, None);
    if full.len() <= room {
        return full;
    }
    let note =
        "> [!NOTE]\n> The graph is left out: the summary would exceed GitHub's limit of 1 MiB.\n";
    let without_graph = assemble(page, page.rows.len(), false, Some(note));
    if without_graph.len() <= room {
        return without_graph;
    }
    // Keep as many rows as fit, found by bisection over the row count.
    let (mut lo, mut hi) = (0, page.rows.len());
    let cut = |n: usize| {
        format!(
            "> [!NOTE]\n> Cut to fit GitHub's limit of 1 MiB: {} of {} components are listed; the run's JSON output has them all.\n",
            n,
            page.rows.len()
        )
    };
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if assemble(page, mid, false, Some(&cut(mid))).len() <= room {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let text = assemble(page, lo, false, Some(&cut(lo)));
    if text.len() <= room {
        text
    } else {
        fit_text(&text, room)
    }
}

fn assemble(page: &Page, rows: usize, graph: bool, note: Option<&str>) -> String {
    let mut out = format!("## {}\n\n", page.heading);
    for p in &page.about {
        out.push_str(p);
        out.push_str("\n\n");
    }
    if let Some(note) = note {
        out.push_str(note);
        out.push('\n');
    }
    if !page.rows.is_empty() {
        let _ = writeln!(out, "| {} |", page.header.join(" | "));
        let _ = writeln!(
            out,
            "|{}",
            page.header.iter().map(|_| " --- |").collect::<String>()
        );
        for row in &page.rows[..rows] {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out.push('\n');
    }
    if graph {
        if let Some(g) = &page.graph {
            let _ = write!(out, "```mermaid\n{g}```\n\n");
        }
    }
    if !page.next.is_empty() {
        out.push_str("### Next step\n\n");
        for p in &page.next {
            out.push_str(p);
            out.push_str("\n\n");
        }
    }
    out
}

/// Markdown cut to at most `room` bytes at a line boundary, with an open
/// code fence and open `<details>` closed, and a note saying so.
pub fn fit_text(markdown: &str, room: usize) -> String {
    if markdown.len() <= room {
        return markdown.to_string();
    }
    let note = "\n> [!NOTE]\n> Cut to fit GitHub's limit of 1 MiB for a step summary; the log has the whole text.\n";
    let budget = room.saturating_sub(note.len() + 64);
    let mut end = 0;
    for (i, _) in markdown.match_indices('\n') {
        if i + 1 > budget {
            break;
        }
        end = i + 1;
    }
    let mut out = markdown[..end].to_string();
    let mut fence: Option<usize> = None;
    let mut details = 0usize;
    for line in out.lines() {
        let trimmed = line.trim_start();
        let ticks = trimmed.chars().take_while(|&c| c == '`').count();
        if ticks >= 3 {
            fence = match fence {
                None => Some(ticks),
                Some(open) if ticks >= open && trimmed[ticks..].trim().is_empty() => None,
                other => other,
            };
        } else if fence.is_none() {
            details += trimmed.matches("<details").count();
            details = details.saturating_sub(trimmed.matches("</details>").count());
        }
    }
    if let Some(ticks) = fence.filter(|t| *t <= 16) {
        out.push_str(&"`".repeat(ticks));
        out.push('\n');
    }
    for _ in 0..details.min(4) {
        out.push_str("</details>\n");
    }
    out.push_str(note);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        for d in ["network", "clusters", "dns"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(
            dir.path().join("orchestrator.yaml"),
            "version: 1\ndefaults: {runner: shell}\ncomponents:\n  network: {path: network, commands: {apply: 'true'}}\n  clusters: {path: clusters, depends_on: [network], commands: {apply: 'true'}}\n  dns: {path: dns, depends_on: [network], commands: {apply: 'true'}}\nenvironments:\n  dev: {clouds: [aws, azure]}\n  staging: {clouds: [aws], promote_from: dev}\n",
        )
        .unwrap();
        let config = crate::config::load(&dir.path().join("orchestrator.yaml")).unwrap();
        (dir, config)
    }

    fn failed_run() -> Value {
        serde_json::json!({
            "result": "failed", "run_id": 17, "environment": "dev",
            "components": {
                "network": {"cloud": "aws", "action": "create", "status": "succeeded", "attempts": 1,
                    "started_at": "2026-11-22T10:00:00Z", "finished_at": "2026-11-22T10:00:01Z", "duration_ms": 1200, "error": null},
                "clusters": {"cloud": "aws", "action": "create", "status": "failed", "attempts": 2,
                    "started_at": "2026-11-22T10:00:01Z", "finished_at": "2026-11-22T10:01:05Z", "duration_ms": 64000,
                    "error": "`sh ./apply.sh` exited with code 1 | see <log>"},
                "dns": {"cloud": "aws", "action": "create", "status": "skipped", "attempts": 0,
                    "started_at": null, "finished_at": "2026-11-22T10:01:05Z", "duration_ms": 0, "error": "network failed"}
            }
        })
    }

    fn links() -> RunLinks {
        RunLinks {
            run: "[run 42](https://github.com/acme/infra/actions/runs/42)".into(),
            log: Some("https://github.com/acme/infra/actions/runs/42".into()),
            github_run_id: Some(42),
            actor: Some("ana".into()),
            commit: Some("3f2a9c0d1e2f3a4b5c6d".into()),
        }
    }

    #[test]
    fn a_failed_run_summary_has_the_table_graph_and_a_rerun() {
        let (_dir, config) = config();
        let page = run_page(
            &config,
            "apply",
            &failed_run(),
            &["aws".into()],
            &links(),
            &["staging".into()],
        );
        insta::assert_snapshot!(render(&page, usize::MAX));
    }

    #[test]
    fn a_successful_run_points_at_the_promotion() {
        let (_dir, config) = config();
        let mut doc = failed_run();
        doc["result"] = "succeeded".into();
        for c in ["network", "clusters", "dns"] {
            doc["components"][c]["status"] = "succeeded".into();
            doc["components"][c]["error"] = Value::Null;
            doc["components"][c]["started_at"] = "2026-11-22T10:00:00Z".into();
        }
        let page = run_page(
            &config,
            "apply",
            &doc,
            &["aws".into()],
            &links(),
            &["staging".into()],
        );
        let text = render(&page, usize::MAX);
        assert!(text.starts_with("## ✅ apply dev: succeeded\n"), "{text}");
        assert!(text.contains("gh workflow run environment-promotion.yml -f source_environment=dev -f target_environment=staging"), "{text}");
        assert!(!text.contains("rerun"));
    }

    #[test]
    fn a_plan_summary_colours_the_graph_by_action() {
        let (_dir, config) = config();
        let plans = [
            serde_json::json!({"environment": "dev", "cloud": "aws", "components": [
                {"name": "network", "action": "noop", "depends_on": [], "wave": 0},
                {"name": "clusters", "action": "update", "depends_on": ["network"], "wave": 1}],
                "waves": [["network"], ["clusters"]], "missing": []}),
            serde_json::json!({"environment": "dev", "cloud": "azure", "components": [
                {"name": "network", "action": "create", "depends_on": [], "wave": 0}],
                "waves": [["network"]], "missing": []}),
        ];
        let page = plan_page(&config, "plan", &plans, &links());
        insta::assert_snapshot!(render(&page, usize::MAX));
    }

    #[test]
    fn a_summary_too_large_drops_the_graph_then_rows_and_says_so() {
        let (_dir, config) = config();
        let mut doc = failed_run();
        let template = doc["components"]["network"].clone();
        for i in 0..20_000 {
            doc["components"][format!("c{i:05}")] = template.clone();
        }
        let page = run_page(&config, "apply", &doc, &["aws".into()], &links(), &[]);
        let full = render(&page, usize::MAX);
        assert!(
            full.len() > crate::github::files::SUMMARY_LIMIT,
            "{}",
            full.len()
        );
        let fitted = render(&page, crate::github::files::SUMMARY_LIMIT);
        assert!(fitted.len() <= crate::github::files::SUMMARY_LIMIT);
        assert!(!fitted.contains("```mermaid"));
        assert!(fitted.contains("components are listed; the run's JSON output has them all"));
        assert!(fitted.contains("### Next step"));
        let small = render(&page, 2_000);
        assert!(small.len() <= 2_000, "{}", small.len());
    }

    #[test]
    fn free_text_is_cut_at_a_line_with_blocks_closed() {
        let text = format!(
            "# diff\n\n<details><summary>x</summary>\n\n```diff\n{}```\n\n</details>\n",
            "+ line\n".repeat(1000)
        );
        let out = fit_text(&text, 500);
        assert!(out.len() <= 500, "{}", out.len());
        assert!(out.contains("```\n</details>\n"), "{out}");
        assert!(out.ends_with("the log has the whole text.\n"));
        assert_eq!(fit_text("short", 500), "short");
    }
}
