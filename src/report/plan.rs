//! A plan as a table for people.

use std::fmt::Write as _;

use crate::config::{ComponentName, Config};
use crate::plan::{Action, Plan};

/// The plan as a heading, a table and notes on the dependencies outside the
/// run: those it relies on as deployed, and those it is missing.
pub fn text(config: &Config, plan: &Plan) -> String {
    let mut out = String::new();
    let count = |a: Action| plan.components.iter().filter(|c| c.action == a).count();
    let mut totals: Vec<String> = Vec::new();
    for (action, verb) in [
        (Action::Create, "to create"),
        (Action::Update, "to update"),
        (Action::Destroy, "to destroy"),
        (Action::Noop, "unchanged"),
    ] {
        let n = count(action);
        if n > 0 {
            totals.push(format!("{n} {verb}"));
        }
    }
    let totals = if plan.to_run().next().is_none() {
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
                names(&p.depends_on)
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
    let outside = plan.satisfied_outside();
    if !outside.is_empty() {
        out.push_str("\nNot in this run, deployed and current:\n");
        for (dep, needed_by) in &outside {
            let _ = writeln!(out, "  {dep} (needed by {})", names(needed_by));
        }
    }
    if !plan.missing.is_empty() {
        // What stands in a destroy's way depends on what it destroys.
        let (heading, advice) = if plan.destroy {
            (
                "Not in this run, and still deployed though they depend on what it destroys:",
                "Add --with-dependents to include them; a destroy refuses to start while they remain.",
            )
        } else {
            (
                "Not in this run, and not deployed at their current version:",
                "Add --with-deps to include them; a run refuses to start without them.",
            )
        };
        let _ = writeln!(out, "\n{heading}");
        let relation = plan.missing_relation();
        for m in &plan.missing {
            let _ = writeln!(out, "  {} ({relation} {})", m.name, names(&m.needed_by));
        }
        let _ = writeln!(out, "{advice}");
    }
    out
}

fn names(list: &[ComponentName]) -> String {
    list.iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
