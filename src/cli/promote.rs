//! `promote`: copy the values under `promotion.keys` from one environment
//! into the next, once the gate says the source is ready.
//!
//! Everything is decided before anything is written: the gate, then every
//! component's new text, each checked by diffing it again. With `--write`
//! every new file is staged next to its target first and only then renamed
//! over it, so a failure leaves the targets as they were.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{Value, json};

use super::diff::{Between, DiffFormat, Sides, options, parse_sides, read_sides, write_view};
use super::{Failure, json as json_text, load, usage};
use crate::config::{Diagnostic, EnvName, Report};
use crate::diff::{ComponentDiff, Presence};
use crate::exec::engine;
use crate::fingerprint::Fingerprinter;
use crate::promote::gate::{self, NotReady};
use crate::promote::{self, Promotion};
use crate::report;

/// Arguments of `promote`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// Which environments and components; the target's `promote_from`
    /// must be --from.
    #[command(flatten)]
    pub between: Between,
    /// Edit the target's values files; without it, only show what would change.
    #[arg(long)]
    pub write: bool,
    /// Promote even though the gate refuses (needs --reason, which is printed
    /// and included in the JSON output).
    #[arg(long, requires = "reason")]
    pub force: bool,
    /// Why the gate is overridden.
    #[arg(long, value_name = "TEXT", requires = "force")]
    pub reason: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    pub format: DiffFormat,
}

/// `orchestrator promote`. Returns 1 when the gate refuses.
pub(super) fn run(file: &Path, args: &PromoteArgs, out: &mut dyn Write) -> Result<i32, Failure> {
    if args.reason.as_deref().is_some_and(|r| r.trim().is_empty()) {
        return Err(usage(
            "--reason is empty",
            Some("say why the gate is overridden: it is printed and recorded in the output".into()),
        ));
    }
    let config = load(file)?;
    let (from, to, sides) = read_sides(&config, &args.between)?;
    // Every file must parse before the gate is asked.
    parse_sides(&sides)?;
    let selected: Vec<_> = sides.iter().map(|s| s.component.clone()).collect();
    let clouds = config.environments[&from].clouds.clone();
    let observations = engine::observe(&config, &Fingerprinter::new(&config), &from, &clouds)?;
    let not_ready = gate::check(&config, &from, &to, &selected, &observations);
    let not_ready_json: Vec<Value> = not_ready.iter().map(|r| r.to_json(&from)).collect();
    if !not_ready.is_empty() && !args.force {
        let doc = json!({
            "from": from, "to": to, "ready": false, "not_ready": not_ready_json, "written": false,
        });
        let text = match args.format {
            DiffFormat::Json => json_text(&doc),
            DiffFormat::Text => refusal(&from, &to, &not_ready, false),
            DiffFormat::Markdown => refusal(&from, &to, &not_ready, true),
        };
        out.write_all(text.as_bytes())?;
        return Ok(1);
    }
    // Every component is planned (and checked) before anything is written.
    let options = options(&config, &args.between.matching, true);
    let promotions = sides
        .iter()
        .map(|s| plan(s, &options))
        .collect::<Result<Vec<_>, _>>()?;
    let overridden = (!not_ready.is_empty()).then(|| {
        let actor = std::env::var("GITHUB_ACTOR")
            .or_else(|_| std::env::var("USER"))
            .ok();
        let reason = args.reason.clone().unwrap_or_default();
        eprintln!(
            "warning: {from} is not ready to be promoted to {to}; promoting anyway, forced by {}: {reason}",
            actor.as_deref().unwrap_or("unknown")
        );
        for r in &not_ready {
            eprintln!("  - {}", r.describe(&from));
        }
        json!({"actor": actor, "reason": reason, "not_ready": not_ready_json})
    });
    let files: Vec<(&Path, &str)> = sides
        .iter()
        .zip(&promotions)
        .filter_map(|(s, p)| Some((s.to.as_ref()?.path.as_path(), p.text.as_deref()?)))
        .collect();
    if args.write {
        write_all(&files)?;
    }

    let diffs: Vec<ComponentDiff> = promotions
        .iter()
        .map(|p| ComponentDiff {
            component: p.component.clone(),
            presence: Presence::Both,
            changes: p.changes.clone(),
        })
        .collect();
    let stays: usize = promotions.iter().map(|p| p.stays).sum();
    let title = format!("{to}, promoted from {from}");
    let view = report::diff::View {
        title: &title,
        from: from.as_str(),
        to: to.as_str(),
        components: &diffs,
        mark_promotable: false,
    };
    let paths: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    let extra = json!({
        "from": from,
        "to": to,
        "ready": not_ready.is_empty(),
        "not_ready": not_ready_json,
        "override": overridden,
        "written": args.write && !files.is_empty(),
        "files": paths,
        "stays": stays,
    });
    if args.format == DiffFormat::Json {
        write_view(&view, args.format, Some(extra), out)?;
        return Ok(0);
    }
    if diffs.iter().all(|d| d.changes.is_empty()) {
        writeln!(
            out,
            "Nothing to promote: {to} already has {from}'s values under promotion.keys."
        )?;
    } else {
        write_view(&view, args.format, None, out)?;
    }
    writeln!(
        out,
        "\n{stays} environment-specific differences stay (`orchestrator diff --from {from} --to {to}` shows them)."
    )?;
    if let Some(o) = &overridden {
        writeln!(
            out,
            "\nThe gate was overridden by {}: {}",
            o["actor"].as_str().unwrap_or("unknown"),
            o["reason"].as_str().unwrap_or_default()
        )?;
    }
    if !paths.is_empty() {
        let done = if args.write {
            format!("Wrote {}.", paths.join(", "))
        } else {
            format!("Nothing was written; --write edits {}.", paths.join(", "))
        };
        writeln!(out, "\n{done}")?;
    }
    Ok(0)
}

/// The text that says why the gate refuses, for a terminal or as markdown.
fn refusal(from: &EnvName, to: &EnvName, not_ready: &[NotReady], markdown: bool) -> String {
    let (head, bullet, gap) = if markdown {
        (
            format!("**{from} is not ready to be promoted to {to}:**\n\n"),
            "- ",
            "\n",
        )
    } else {
        (
            format!("{from} is not ready to be promoted to {to}:\n"),
            "  - ",
            "",
        )
    };
    let mut text = head;
    for r in not_ready {
        text.push_str(&format!("{bullet}{}\n", r.describe(from)));
    }
    text.push_str(&format!(
        "{gap}Deploy {from} until every component succeeds at its current inputs, or pass --force --reason \"...\" to promote anyway.\n"
    ));
    text
}

/// Plans one component, turning an edit that cannot be made in place into
/// a diagnostic at the target's line.
fn plan(side: &Sides, options: &crate::diff::Options) -> Result<Promotion, Failure> {
    let source = side.from.as_ref().map(|f| f.text.as_str());
    let target = side.to.as_ref().map(|f| f.text.as_str());
    promote::component(side.component.as_str(), source, target, options).map_err(|e| {
        let (path, text) = side
            .to
            .as_ref()
            .map(|f| (f.path.clone(), f.text.clone()))
            .unwrap_or_default();
        let mut report = Report::default();
        report.push(
            Diagnostic::new(
                &path,
                e.pos,
                e.key,
                format!("cannot promote this value in place: {}", e.message),
            )
            .hint(format!(
                "change it by hand, or leave `{}` out with --components; nothing was written",
                side.component
            )),
        );
        report.add_source(&path, text);
        Failure::Config(report)
    })
}

/// Writes every file or none: each new text is staged in a temporary file
/// beside its target (with the target's permissions) and flushed, and only
/// when all are staged are they renamed over the targets.
fn write_all(files: &[(&Path, &str)]) -> Result<(), Failure> {
    let fail = |path: &Path, what: &str, e: std::io::Error| {
        usage(
            format!("cannot {what} {}: {e}", path.display()),
            Some("no values file was changed".into()),
        )
    };
    let mut staged = Vec::with_capacity(files.len());
    for &(path, text) in files {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut temp = tempfile::Builder::new()
            .prefix(".promote.")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(|e| fail(path, "stage a new version of", e))?;
        let permissions = std::fs::metadata(path)
            .map(|m| m.permissions())
            .map_err(|e| fail(path, "read", e))?;
        temp.write_all(text.as_bytes())
            .and_then(|()| temp.as_file().set_permissions(permissions))
            .and_then(|()| temp.as_file().sync_all())
            .map_err(|e| fail(path, "stage a new version of", e))?;
        staged.push((temp, path));
    }
    for (temp, path) in staged {
        temp.persist(path).map_err(|e| {
            usage(
                format!("cannot replace {}: {}", path.display(), e.error),
                Some("files listed before it were written".into()),
            )
        })?;
    }
    Ok(())
}
