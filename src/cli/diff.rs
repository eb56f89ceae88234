//! `diff`: compare two environments' values, component by component, and
//! say which differences promotion would copy.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::{Failure, environment, json, load, selected_components, usage};
use crate::config::{ComponentName, Config, EnvName, Report, values};
use crate::diff::{self, ComponentDiff, Options};
use crate::report;
use crate::yaml::Node;

/// Arguments of `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Which environments and components.
    #[command(flatten)]
    pub between: Between,
    /// Leave out lists whose entries only moved.
    #[arg(long)]
    pub ignore_order_changes: bool,
    /// Exit with 1 when there are differences, 0 when there are none.
    #[arg(long)]
    pub exit_code: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    pub format: DiffFormat,
}

/// Two environments, which components of theirs, and how list entries are
/// matched between them (shared by `diff` and `promote`).
#[derive(Debug, Args)]
pub struct Between {
    /// The environment the values come from (the `-` side of a diff).
    #[arg(long, value_name = "ENV")]
    pub from: String,
    /// The environment compared with or promoted into (the `+` side).
    #[arg(long, value_name = "ENV")]
    pub to: String,
    /// Only these components (comma-separated or repeated); default: all.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub components: Vec<String>,
    /// How list entries are matched.
    #[command(flatten)]
    pub matching: Matching,
}

/// How list entries are matched between environments.
#[derive(Debug, Args)]
pub struct Matching {
    /// A field that identifies list entries, tried before `name`, `key` and
    /// `id` (repeatable).
    #[arg(long = "identifier", value_name = "FIELD")]
    pub identifiers: Vec<String>,
}

/// Output format of `diff` and `promote`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    /// For people, coloured in a terminal.
    Text,
    /// For pull-request comments and step summaries.
    Markdown,
    /// One JSON document on stdout.
    Json,
}

/// One component's values file in each of two environments.
pub(super) struct Sides {
    pub component: ComponentName,
    pub from: Option<ValuesFile>,
    pub to: Option<ValuesFile>,
}

/// A values file as read.
pub(super) struct ValuesFile {
    pub path: PathBuf,
    pub text: String,
}

/// The diff options for this configuration: list matching as asked, the
/// default secret policy, and the promotion patterns.
pub(super) fn options(config: &Config, matching: &Matching, order_changes: bool) -> Options {
    let defaults = Options::default();
    let mut identifiers = matching.identifiers.clone();
    identifiers.extend(defaults.identifiers.iter().cloned());
    Options {
        identifiers,
        order_changes,
        promotion: config.promotion_keys.clone(),
        secrets: crate::config::keypath::SecretPolicy::new(
            config.secrets.keys.iter().cloned(),
            config.secrets.sensitive.iter().cloned(),
        ),
        ..defaults
    }
}

/// Resolves both environments and the components, and reads each
/// component's pair of values files.
pub(super) fn read_sides(
    config: &Config,
    between: &Between,
) -> Result<(EnvName, EnvName, Vec<Sides>), Failure> {
    let (from, _) = environment(config, &between.from, None)?;
    let (to, _) = environment(config, &between.to, None)?;
    let mut selected = selected_components(config, &between.components)?;
    if selected.is_empty() {
        selected = config.components.iter().map(|c| c.name.clone()).collect();
    }
    let read = |env: &EnvName, component: &ComponentName| -> Result<Option<ValuesFile>, Failure> {
        let path = values::path(config, env, component);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| usage(format!("cannot read {}: {e}", path.display()), None))?;
        Ok(Some(ValuesFile { path, text }))
    };
    let sides = selected
        .into_iter()
        .map(|component| {
            Ok(Sides {
                from: read(&from, &component)?,
                to: read(&to, &component)?,
                component,
            })
        })
        .collect::<Result<_, Failure>>()?;
    Ok((from, to, sides))
}

/// A component's two values files, parsed (`None` where there is no file).
pub(super) type Parsed<'t> = (Option<Node<'t>>, Option<Node<'t>>);

/// Parses every file once, reporting every problem in every file at once,
/// each with its file, line and key.
pub(super) fn parse_sides(sides: &[Sides]) -> Result<Vec<Parsed<'_>>, Failure> {
    let mut report = Report::default();
    let parsed: Vec<Parsed<'_>> = sides
        .iter()
        .map(|s| {
            (
                parse_one(&s.from, &mut report),
                parse_one(&s.to, &mut report),
            )
        })
        .collect();
    if report.is_empty() {
        Ok(parsed)
    } else {
        report.sort();
        Err(Failure::Config(report))
    }
}

fn parse_one<'t>(file: &'t Option<ValuesFile>, report: &mut Report) -> Option<Node<'t>> {
    let file = file.as_ref()?;
    let before = report.diagnostics.len();
    let node = values::parse(&file.path, &file.text, report);
    if report.diagnostics.len() > before {
        report.add_source(&file.path, file.text.clone());
    }
    node
}

/// Compares each component's values in the two environments.
pub(super) fn compare(sides: &[Sides], options: &Options) -> Result<Vec<ComponentDiff>, Failure> {
    let parsed = parse_sides(sides)?;
    Ok(sides
        .iter()
        .zip(&parsed)
        .map(|(s, (from, to))| {
            diff::component(s.component.as_str(), from.as_ref(), to.as_ref(), options)
        })
        .collect())
}

/// Writes a comparison in the asked format; text is coloured on a terminal
/// unless `NO_COLOR` is set.
pub(super) fn write_view(
    view: &report::diff::View<'_>,
    format: DiffFormat,
    extra: Option<serde_json::Value>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let text = match format {
        DiffFormat::Text => {
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            report::diff::text(view, color)
        }
        DiffFormat::Markdown => report::diff::markdown(view),
        DiffFormat::Json => {
            let mut doc = report::diff::json(view);
            if let (Some(serde_json::Value::Object(more)), Some(target)) =
                (extra, doc.as_object_mut())
            {
                target.extend(more);
            }
            json(&doc)
        }
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// `orchestrator diff`. Returns 1 with `--exit-code` when anything differs.
pub(super) fn run(file: &Path, args: &DiffArgs, out: &mut dyn Write) -> Result<i32, Failure> {
    let config = load(file)?;
    let (from, to, sides) = read_sides(&config, &args.between)?;
    let options = options(&config, &args.between.matching, !args.ignore_order_changes);
    let diffs = compare(&sides, &options)?;
    let title = format!("{from} → {to}");
    let view = report::diff::View {
        title: &title,
        from: from.as_str(),
        to: to.as_str(),
        components: &diffs,
        mark_promotable: true,
    };
    write_view(&view, args.format, None, out)?;
    let differs = diffs.iter().any(|d| !d.changes.is_empty());
    Ok(if args.exit_code && differs { 1 } else { 0 })
}
