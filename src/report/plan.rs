//! A plan as a table for people.

use std::fmt::Write as _;

use crate::config::Config;
use crate::plan::{Action, Plan};

/// The plan as a heading, a table and, when some dependencies are outside
/// the run, a note saying which and how to include them.
pub fn text(config: &Config, plan: &Plan) -> String {
    let mut out = String::new();
    let count = |a: Action| plan.components.iter().filter(|c| c.action == a).count();
    let mut totals: Vec<String> = Vec::new();
    for action in [Action::Create, Action::Destroy] {
        let n = count(action);
        if n > 0 {
            totals.push(format!("{n} to {}", action.as_str()));
        }
    }
    let totals = if totals.is_empty() {
        "nothing to do".to_string()
    } else {
        totals.join(", ")
    };
    let _ = writeln!(
        out,
        "Plan for {} / {}: {totals}\n",
        plan.environment, plan.cloud
    );
    let rows: Vec<Vec<String>> = plan
        .components
        .iter()
        .map(|p| {
            let c = config.component(p.name.as_str());
            let deps = if p.depends_on.is_empty() {
                "-".to_string()
            } else {
                p.depends_on
                    .iter()
                    .map(|d| d.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            vec![
                p.wave.to_string(),
                p.name.to_string(),
                p.action.as_str().to_string(),
                c.map(|c| c.runner.as_str()).unwrap_or_default().to_string(),
                deps,
                c.map(|c| c.path.expand(&plan.environment, &plan.cloud))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&crate::report::table(
        &[
            "WAVE",
            "COMPONENT",
            "ACTION",
            "RUNNER",
            "DEPENDS ON",
            "PATH",
        ],
        &rows,
    ));
    let outside = plan.outside_dependencies();
    if !outside.is_empty() {
        out.push_str("\nNot in this run, and needed by it:\n");
        for (dep, needed_by) in &outside {
            let by = needed_by
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(out, "  {dep} (needed by {by})");
        }
        out.push_str("Add --with-deps to include them.\n");
    }
    out
}
