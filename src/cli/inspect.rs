//! Commands that read and report without changing anything: `validate`,
//! `graph` and `plan`.

use std::io::Write;
use std::path::Path;

use super::{Failure, Format, GraphFormat, PlanArgs, environment, json, load, request};
use crate::config;
use crate::exec::engine;
use crate::fingerprint::Fingerprinter;
use crate::report;

pub(super) fn validate(file: &Path, format: Format, out: &mut dyn Write) -> Result<(), Failure> {
    let config = config::load(file);
    let mut report = match &config {
        Ok(c) => config::values::check(c, &c.environments.keys().collect::<Vec<_>>(), true),
        Err(report) => report.clone(),
    };
    if let (Ok(c), true) = (&config, report.is_empty()) {
        config::modules::warn(c, &mut report);
        report.sort();
    }
    if format == Format::Json {
        let mut doc = report.to_json();
        if let Ok(c) = &config {
            doc["components"] = c.components.len().into();
            doc["environments"] = c
                .environments
                .keys()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .into();
        }
        out.write_all(json(&doc).as_bytes())?;
        // The document on stdout already carries the errors; the exit code
        // still says the input is bad.
        return if report.is_empty() {
            Ok(())
        } else {
            Err(Failure::Reported)
        };
    }
    if !report.is_empty() {
        return Err(Failure::Config(report));
    }
    if let Ok(c) = config {
        let targets: usize = c.environments.values().map(|e| e.clouds.len()).sum();
        let (waves, _) = c
            .graph
            .waves(&c.graph.all(), crate::graph::Walk::Dependents);
        writeln!(
            out,
            "{} is valid: {} in {}, {} ({})",
            c.file.display(),
            report::counted(c.components.len(), "component"),
            report::counted(waves.len(), "wave"),
            report::counted(c.environments.len(), "environment"),
            report::counted(targets, "environment/cloud target"),
        )?;
    }
    eprint!(
        "{}",
        report.render_warnings(crate::report::colour_on_stderr())
    );
    Ok(())
}

pub(super) fn graph(file: &Path, format: GraphFormat, out: &mut dyn Write) -> Result<(), Failure> {
    let config = load(file)?;
    let doc = report::graph::document(&config);
    let text = match format {
        GraphFormat::Text => report::graph::text(&doc),
        GraphFormat::Mermaid => report::graph::mermaid(&doc),
        GraphFormat::Dot => report::graph::dot(&doc),
        GraphFormat::Json => json(&doc),
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

pub(super) fn plan(file: &Path, args: &PlanArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let (config, plans) = planned(file, args)?;
    write_plans(&config, &plans, args.format, out)?;
    // A preview: it says what `destroy` would refuse, and shows the plan.
    if let Some(problem) = super::deploy::undestroyable(&config, &plans) {
        eprintln!(
            "warning: `destroy` would refuse to run: {problem}\n  = help: {}",
            super::deploy::UNDESTROYABLE_HINT
        );
    }
    Ok(())
}

/// What `plan` prints, before it is printed: the config, and a plan per
/// cloud from the state (brought up to date with the state branch first)
/// and every component's fingerprint.
pub(super) fn planned(
    file: &Path,
    args: &PlanArgs,
) -> Result<(config::Config, Vec<crate::plan::Plan>), Failure> {
    let config = load(file)?;
    let (env, clouds) = environment(&config, &args.select.env, args.select.cloud.as_deref())?;
    let request = request(&config, &args.select, args.destroy)?;
    // Checked and digested in one pass, as `apply` does: the fingerprints
    // take the digests rather than read every values file again.
    let loaded = config::values::load_checked(&config, &env).map_err(Failure::Config)?;
    super::refresh_quietly(&config, &env, &clouds, crate::github::token(None));
    let fingerprinter = Fingerprinter::new(&config).with_values(&env, loaded.digests);
    let observations = engine::observe(&config, &fingerprinter, &env, &clouds)?;
    super::warn_orphans(file, &config, &env, &observations);
    let plans = engine::plans(&config, &env, &observations, &request);
    Ok((config, plans))
}

/// Prints plans: one JSON object for one cloud, an array for several, or
/// one table per cloud.
pub(super) fn write_plans(
    config: &config::Config,
    plans: &[crate::plan::Plan],
    format: Format,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    match format {
        Format::Json if plans.len() == 1 => out.write_all(json(&plans[0]).as_bytes())?,
        Format::Json => out.write_all(json(&plans).as_bytes())?,
        Format::Text => {
            let texts: Vec<String> = plans
                .iter()
                .map(|p| report::plan::text(config, p))
                .collect();
            out.write_all(texts.join("\n").as_bytes())?;
        }
    }
    Ok(())
}
