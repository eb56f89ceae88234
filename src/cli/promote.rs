//! `promote`: copy the values under `promotion.keys` from one environment
//! into the next, once the gate says the source is ready.
//!
//! Everything is decided before anything is written: the gate, then every
//! component's new text, each checked by diffing it again. With `--write`
//! every new file is staged next to its target first and only then renamed
//! over it, so a failure leaves the targets as they were. With `--open-pr`
//! the new texts are committed and proposed as a pull request instead
//! ([`super::open_pr`]). A forced promotion that changed something is
//! recorded, with who forced it and why, in the history of the target's
//! state.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use clap::Args;
use serde_json::{Value, json};

use super::diff::{Between, DiffFormat, Sides, options, parse_sides, read_sides, write_view};
use super::{Failure, GithubArgs, StoreArgs, json as json_text, load, open_pr, open_store, usage};
use crate::config::{ComponentName, Config, Diagnostic, EnvName, Report};
use crate::diff::{ComponentDiff, Presence};
use crate::exec::engine;
use crate::fingerprint::Fingerprinter;
use crate::github::{self, RunContext};
use crate::promote::gate::{self, NotReady};
use crate::promote::{self, Promotion};
use crate::redact::Redactor;
use crate::report;
use crate::report::promotion::{self as pr_text, Override};
use crate::state::{Timestamp, publish};

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
    /// Commit the edited files on a branch of their own, push it, and open
    /// a pull request (or update the open one for the same environments).
    #[arg(long)]
    pub open_pr: bool,
    /// Promote even though the gate refuses (needs --reason, which is printed,
    /// included in the JSON output, and recorded in the target's state
    /// history when the promotion writes files or opens a pull request).
    #[arg(long, requires = "reason")]
    pub force: bool,
    /// Why the gate is overridden.
    #[arg(long, value_name = "TEXT", requires = "force")]
    pub reason: Option<String>,
    /// How to reach GitHub (the token also pushes the branch over https).
    #[command(flatten)]
    pub github: GithubArgs,
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
    let token = github::token(args.github.github_token.as_deref());
    // The gate reads the source's state as the state branch has it.
    super::refresh_quietly(&config, &from, &clouds, token.clone());
    // What leaves as text (the reason, the pull request, the commit, the
    // state's note) is redacted with the secrets of both environments.
    let redactor = if args.open_pr || args.force {
        let mut r = Redactor::for_environment(&config, &to, &[])
            .and_then(|mut r| r.add_environment(&config, &from).map(|()| r))
            .map_err(Failure::Config)?;
        r.add_secrets(token.clone());
        r
    } else {
        Redactor::new(&config.secrets.keys)
    };
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
    // Who overrode the gate (`None` when unknown) and why, when it refused.
    let overridden: Option<(Option<String>, String)> = (!not_ready.is_empty()).then(|| {
        let actor = std::env::var("GITHUB_ACTOR")
            .or_else(|_| std::env::var("USER"))
            .ok();
        let reason = redactor
            .redact(args.reason.as_deref().unwrap_or_default())
            .into_owned();
        eprintln!(
            "warning: {from} is not ready to be promoted to {to}; promoting anyway, forced by {}: {reason}",
            actor.as_deref().unwrap_or("unknown")
        );
        for r in &not_ready {
            eprintln!("  - {}", r.describe(&from));
        }
        (actor, reason)
    });
    let edits: Vec<(&Path, &str, &str)> = sides
        .iter()
        .zip(&promotions)
        .filter_map(|(s, p)| {
            let to = s.to.as_ref()?;
            Some((to.path.as_path(), to.text.as_str(), p.text.as_deref()?))
        })
        .collect();
    let files: Vec<(&Path, &str)> = edits.iter().map(|&(p, _, t)| (p, t)).collect();
    let diffs: Vec<ComponentDiff> = promotions
        .iter()
        .map(|p| ComponentDiff {
            component: p.component.clone(),
            presence: Presence::Both,
            changes: p.changes.clone(),
        })
        .collect();
    let stays: usize = promotions.iter().map(|p| p.stays).sum();
    let forced = overridden.as_ref().map(|(actor, reason)| Override {
        actor: actor.as_deref().unwrap_or("unknown"),
        reason,
    });

    let paths: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();

    // The pull request first: when it cannot be opened, nothing is written.
    let pull_request = if args.open_pr && !edits.is_empty() {
        let text = |base_commit: &str, run: &str| -> [String; 3] {
            let promotion = pr_text::Promotion {
                config: &config,
                from: &from,
                to: &to,
                diffs: &diffs,
                stays,
                selected: &asked_for(&config, &selected),
                observations: &observations,
                not_ready: &not_ready,
                overridden: forced,
                base_commit,
                run,
            };
            [
                pr_text::title(&promotion),
                pr_text::body(&promotion),
                pr_text::commit_message(&promotion, &paths),
            ]
        };
        Some(propose(
            &config,
            &from,
            &to,
            &edits,
            token.clone(),
            &redactor,
            text,
        )?)
    } else {
        None
    };
    if args.write {
        write_all(&files)?;
    }
    if let (Some(o), true) = (
        forced,
        pull_request.is_some() || (args.write && !files.is_empty()),
    ) {
        let what = match &pull_request {
            Some(done) => format!("pull request #{}", done.opened.pull_request().number),
            None => "values files written".to_string(),
        };
        let note = format!(
            "promotion from {from} forced by {}: {} ({what})",
            o.actor, o.reason
        );
        record(&config, &to, &args.github, &redactor.redact(&note))?;
    }

    let title = format!("{to}, promoted from {from}");
    let view = report::diff::View {
        title: &title,
        from: from.as_str(),
        to: to.as_str(),
        components: &diffs,
        mark_promotable: false,
    };
    let extra = json!({
        "from": from,
        "to": to,
        "ready": not_ready.is_empty(),
        "not_ready": not_ready_json,
        "override": overridden.as_ref().map(|(actor, reason)| {
            json!({"actor": actor, "reason": reason, "not_ready": not_ready_json})
        }),
        "written": args.write && !files.is_empty(),
        "files": paths,
        "stays": stays,
        "pull_request": pull_request.as_ref().map(|done| {
            let p = done.opened.pull_request();
            json!({"number": p.number, "url": p.html_url, "branch": done.branch, "result": done.opened.as_str()})
        }),
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
    if let Some(o) = forced {
        writeln!(
            out,
            "\nThe gate was overridden by {}: {}",
            o.actor, o.reason
        )?;
    }
    if let Some(done) = &pull_request {
        let p = done.opened.pull_request();
        writeln!(
            out,
            "\nPull request #{} {} ({}), from branch `{}`: it changes {}.",
            p.number,
            done.opened.as_str(),
            p.html_url,
            done.branch,
            paths.join(", ")
        )?;
    } else if args.open_pr {
        writeln!(out, "\nNothing to promote, so no pull request was opened.")?;
    }
    if !paths.is_empty() {
        let done = if args.write {
            format!("Wrote {}.", paths.join(", "))
        } else if args.open_pr {
            "The working tree was left as it is; --write edits it too.".to_string()
        } else {
            format!("Nothing was written; --write edits {}.", paths.join(", "))
        };
        writeln!(out, "\n{done}")?;
    }
    Ok(0)
}

/// Opens the promotion's pull request (or updates the open one), with the
/// title, description and commit message `text` makes from the commit it
/// starts from and the run; the client redacts what it sends, and the
/// commit message is redacted here.
fn propose(
    config: &Config,
    from: &EnvName,
    to: &EnvName,
    edits: &[(&Path, &str, &str)],
    token: Option<String>,
    redactor: &Redactor,
    text: impl Fn(&str, &str) -> [String; 3],
) -> Result<open_pr::Done, Failure> {
    let prepared = open_pr::prepare(config, from, to, edits, token, redactor.clone())?;
    let context = RunContext::from_env();
    let run = match (context.link(), &context.actor) {
        (Some(_), _) => context.describe(0),
        (None, Some(actor)) => format!("a local run by {actor}"),
        (None, None) => "a local run".to_string(),
    };
    let [title, body, message] = text(&prepared.short_commit(), &run);
    prepared.open(&title, &body, &redactor.redact(&message))
}

/// The components the promotion was asked for; empty when all were.
fn asked_for(config: &Config, selected: &[ComponentName]) -> Vec<ComponentName> {
    if selected.len() == config.components.len() {
        Vec::new()
    } else {
        selected.to_vec()
    }
}

/// Records a forced promotion in the history of each of the target's state
/// files, through the store (committed and pushed like any state write).
fn record(config: &Config, to: &EnvName, github: &GithubArgs, note: &str) -> Result<(), Failure> {
    let store = open_store(
        config,
        &StoreArgs {
            no_commit: false,
            github: github.clone(),
        },
    )?;
    let run = RunContext::from_env().run_info(0);
    for cloud in &config.environments[to].clouds {
        let target = store.target(to, cloud);
        let written = store.transact(&target, true, |state| {
            let now = Timestamp::from(SystemTime::now());
            state.bump(
                BTreeMap::new(),
                Some(run.clone()),
                now,
                Some(note.to_string()),
            );
            Ok(Some(publish::message(
                &target.label(),
                &BTreeMap::new(),
                &[note.to_string()],
            )))
        })?;
        super::warn_if_stale(&written);
    }
    Ok(())
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
