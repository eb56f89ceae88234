//! Renderers for config diffs: text for terminals (coloured when asked),
//! markdown for pull-request comments, step summaries and promotion PRs,
//! and JSON for tools.
//!
//! They print what the [`crate::diff`] changes hold and nothing more:
//! secret values never reach a change, so they cannot reach the output.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::diff::{Change, ComponentDiff, HIDDEN, Kind, Line, Presence, line_diff};

/// Unchanged lines shown around each change in a multiline value.
const CONTEXT_LINES: usize = 3;

/// A value shorter than this is written on one line, in flow style.
const FLOW_WIDTH: usize = 60;

/// What to render.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// What is compared, for the headline: `dev → staging`.
    pub title: &'a str,
    /// The name of the `from` side, for files only it has.
    pub from: &'a str,
    /// The name of the `to` side.
    pub to: &'a str,
    /// Every compared component, changed or not.
    pub components: &'a [ComponentDiff],
    /// Whether to say which changes promotion would copy.
    pub mark_promotable: bool,
}

impl View<'_> {
    fn changed(&self) -> impl Iterator<Item = &ComponentDiff> {
        self.components.iter().filter(|c| !c.changes.is_empty())
    }

    fn headline(&self) -> String {
        let changes: usize = self.components.iter().map(|c| c.changes.len()).sum();
        if changes == 0 {
            return format!(
                "{}: no differences in {}",
                self.title,
                super::counted(self.components.len(), "component")
            );
        }
        let mut line = format!(
            "{}: {} in {} of {}",
            self.title,
            super::counted(changes, "change"),
            self.changed().count(),
            super::counted(self.components.len(), "component")
        );
        if self.mark_promotable {
            let promotable: usize = self.components.iter().map(ComponentDiff::promotable).sum();
            let _ = write!(
                line,
                "; promotion copies {promotable}, {} stay environment-specific",
                changes - promotable
            );
        }
        line
    }

    fn component_summary(&self, c: &ComponentDiff) -> String {
        let mut line = match c.presence {
            Presence::FromOnly => format!("only in {}", self.from),
            Presence::ToOnly => format!("only in {}", self.to),
            Presence::Both => super::counted(c.changes.len(), "change"),
        };
        if self.mark_promotable && c.promotable() > 0 {
            let _ = write!(line, ", {} promotable", c.promotable());
        }
        line
    }
}

/// How one side's value of a change is introduced in a diff.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Old,
    New,
    Same,
    Note,
}

/// The lines that show one change, each with its mark: the old value, the
/// new one, or a note (type, order, secrecy, multiline summary).
fn body(change: &Change) -> (String, Vec<(Mark, String)>) {
    let mut note = String::new();
    let mut lines = Vec::new();
    let value_lines = |mark: Mark, value: &Option<Value>, lines: &mut Vec<(Mark, String)>| {
        if let Some(v) = value {
            lines.extend(yaml_lines(v).into_iter().map(|l| (mark, l)));
        }
    };
    match change.kind {
        Kind::TypeChanged => {
            note = format!(
                "type changed from {} to {}",
                change.from_type.unwrap_or("?"),
                change.to_type.unwrap_or("?")
            );
        }
        Kind::OrderChanged => note = "order changed".into(),
        Kind::Added if change.path.is_root() => note = "whole file".into(),
        Kind::Removed if change.path.is_root() => note = "whole file".into(),
        _ => {}
    }
    if change.secret {
        let hidden = "secret, value hidden";
        note = if note.is_empty() {
            hidden.into()
        } else {
            format!("{note}; {hidden}")
        };
        return (note, lines);
    }
    if change.is_multiline() {
        let (Some(Value::String(a)), Some(Value::String(b))) = (&change.from, &change.to) else {
            return (note, lines);
        };
        let diff = line_diff(a, b, CONTEXT_LINES);
        let added = diff.iter().filter(|l| matches!(l, Line::Added(_))).count();
        let removed = diff
            .iter()
            .filter(|l| matches!(l, Line::Removed(_)))
            .count();
        note = format!(
            "multiline text: {} added, {} removed",
            super::counted(added, "line"),
            removed
        );
        for line in diff {
            lines.push(match line {
                Line::Same(t) => (Mark::Same, t.to_string()),
                Line::Removed(t) => (Mark::Old, t.to_string()),
                Line::Added(t) => (Mark::New, t.to_string()),
                Line::Skipped(n) => (
                    Mark::Note,
                    format!("({} unchanged)", super::counted(n, "line")),
                ),
            });
        }
        return (note, lines);
    }
    if change.kind == Kind::OrderChanged {
        let joined = |v: &Option<Value>| {
            v.as_ref()
                .and_then(Value::as_array)
                .map(|items| items.iter().map(scalar_text).collect::<Vec<_>>().join(", "))
        };
        lines.extend(joined(&change.from).map(|l| (Mark::Old, l)));
        lines.extend(joined(&change.to).map(|l| (Mark::New, l)));
        return (note, lines);
    }
    value_lines(Mark::Old, &change.from, &mut lines);
    value_lines(Mark::New, &change.to, &mut lines);
    (note, lines)
}

fn symbol(kind: Kind) -> &'static str {
    match kind {
        Kind::Added => "+",
        Kind::Removed => "-",
        Kind::Modified | Kind::TypeChanged => "±",
        Kind::OrderChanged => "⇆",
    }
}

fn where_(change: &Change) -> String {
    let path = if change.path.is_root() {
        "(root level)".to_string()
    } else {
        change.path.dotted()
    };
    match &change.document {
        Some(doc) => format!("{path}  (document {doc})"),
        None => path,
    }
}

/// A scalar as YAML would write it: plain when that reads back as the same
/// string, quoted otherwise, so `"1.32"` and `1.32` look different.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) if s == HIDDEN => HIDDEN.to_string(),
        Value::String(s) => crate::yaml::string_text(s),
        other => other.to_string(),
    }
}

/// A value as YAML lines: scalars and short collections on one line (flow
/// style), longer collections in block style.
fn yaml_lines(value: &Value) -> Vec<String> {
    let flow = flow_text(value);
    if flow.chars().count() <= FLOW_WIDTH {
        return vec![flow];
    }
    let mut out = Vec::new();
    block_lines(value, "", &mut out);
    out
}

fn flow_text(value: &Value) -> String {
    match value {
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(flow_text).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", crate::yaml::string_text(k), flow_text(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        scalar => scalar_text(scalar),
    }
}

fn block_lines(value: &Value, indent: &str, out: &mut Vec<String>) {
    let nested = format!("{indent}  ");
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        out.push(format!("{indent}{}:", crate::yaml::string_text(k)));
                        block_lines(v, &nested, out);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push(format!("{indent}{}:", crate::yaml::string_text(k)));
                        block_lines(v, &nested, out);
                    }
                    _ => out.push(format!(
                        "{indent}{}: {}",
                        crate::yaml::string_text(k),
                        flow_text(v)
                    )),
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                let mut inner = Vec::new();
                block_lines(item, &nested, &mut inner);
                let Some(first) = inner.first_mut() else {
                    continue;
                };
                // The first line of an item goes after its dash.
                *first = format!("{indent}- {}", first.trim_start());
                out.append(&mut inner);
            }
        }
        other => out.push(format!("{indent}{}", flow_text(other))),
    }
}

/// ANSI styles, or nothing.
struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        super::paint(self.color, code, text)
    }
}

/// The diff for a terminal, grouped per component. `color` adds ANSI
/// colours: the caller decides (a terminal, and `NO_COLOR` unset).
pub fn text(view: &View<'_>, color: bool) -> String {
    let style = Style { color };
    let mut out = format!("{}\n", style.paint("1", &view.headline()));
    for component in view.changed() {
        let _ = writeln!(
            out,
            "\n{} ({})",
            style.paint("1", &component.component),
            view.component_summary(component)
        );
        for change in &component.changes {
            let (note, lines) = body(change);
            let sym_color = match change.kind {
                Kind::Added => "32",
                Kind::Removed => "31",
                _ => "33",
            };
            let mut head = format!(
                "  {} {}",
                style.paint(sym_color, symbol(change.kind)),
                style.paint("1", &where_(change))
            );
            if !note.is_empty() {
                let _ = write!(head, "  {note}");
            }
            if view.mark_promotable && change.promotable {
                let _ = write!(head, "  {}", style.paint("36", "[promotable]"));
            }
            out.push_str(&head);
            out.push('\n');
            for (mark, line) in lines {
                let (prefix, code) = match mark {
                    Mark::Old => ("- ", "31"),
                    Mark::New => ("+ ", "32"),
                    Mark::Same => ("  ", "2"),
                    Mark::Note => ("  ", "2"),
                };
                let _ = writeln!(out, "    {}", style.paint(code, &format!("{prefix}{line}")));
            }
        }
    }
    out
}

/// The diff as markdown: a headline, a table of components, then one
/// collapsible section per changed component holding a `diff` block.
pub fn markdown(view: &View<'_>) -> String {
    let mut out = format!("**{}**\n", view.headline());
    if view.changed().next().is_none() {
        return out;
    }
    out.push('\n');
    if view.mark_promotable {
        out.push_str("| Component | Changes | Promotable | Environment-specific |\n| --- | ---: | ---: | ---: |\n");
    } else {
        out.push_str("| Component | Changes |\n| --- | ---: |\n");
    }
    for c in view.changed() {
        let changes = match c.presence {
            Presence::Both => c.changes.len().to_string(),
            _ => view.component_summary(c),
        };
        if view.mark_promotable {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                c.component,
                changes,
                c.promotable(),
                c.changes.len() - c.promotable()
            );
        } else {
            let _ = writeln!(out, "| `{}` | {} |", c.component, changes);
        }
    }
    for c in view.changed() {
        let mut block = String::new();
        for change in &c.changes {
            let (note, lines) = body(change);
            let mut head = format!("@@ {} @@", where_(change));
            if view.mark_promotable && change.promotable {
                head.push_str(" promotable");
            }
            block.push_str(&head);
            block.push('\n');
            let mut notes = vec![];
            if !note.is_empty() {
                notes.push(format!("! {} {note}", symbol(change.kind)));
            } else if change.kind == Kind::Added || change.kind == Kind::Removed {
                notes.push(format!(
                    "! {} {}",
                    symbol(change.kind),
                    change.kind.as_str()
                ));
            }
            for n in notes {
                block.push_str(&n);
                block.push('\n');
            }
            for (mark, line) in lines {
                let prefix = match mark {
                    Mark::Old => "- ",
                    Mark::New => "+ ",
                    Mark::Same => "  ",
                    Mark::Note => "# ",
                };
                block.push_str(prefix);
                block.push_str(&line);
                block.push('\n');
            }
        }
        let fence = fence_for(&block);
        let _ = write!(
            out,
            "\n<details>\n<summary><code>{}</code>: {}</summary>\n\n{fence}diff\n{block}{fence}\n\n</details>\n",
            c.component,
            view.component_summary(c)
        );
    }
    out
}

/// A code fence longer than any run of backticks in `text`, so a value
/// holding ``` cannot end the block early.
fn fence_for(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// One change as JSON: where, how, the values, and whether promotion copies it.
pub fn change_json(component: &str, change: &Change) -> Value {
    let mut doc = json!({
        "component": component,
        "path": change.path.dotted(),
        "go_patch": change.path.go_patch(),
        "kind": change.kind.as_str(),
        "promotable": change.promotable,
        "secret": change.secret,
    });
    if let Some(document) = &change.document {
        doc["document"] = document.clone().into();
    }
    if let Some(from) = &change.from {
        doc["from"] = from.clone();
    }
    if let Some(to) = &change.to {
        doc["to"] = to.clone();
    }
    if change.kind == Kind::TypeChanged {
        doc["from_type"] = change.from_type.into();
        doc["to_type"] = change.to_type.into();
    }
    doc
}

/// Every change of every component, in order, as JSON objects.
pub fn changes_json(components: &[ComponentDiff]) -> Vec<Value> {
    components
        .iter()
        .flat_map(|c| c.changes.iter().map(|ch| change_json(&c.component, ch)))
        .collect()
}

/// The whole comparison as one JSON document.
pub fn json(view: &View<'_>) -> Value {
    let changes = changes_json(view.components);
    let only = |presence: Presence| -> Vec<&str> {
        view.components
            .iter()
            .filter(|c| c.presence == presence)
            .map(|c| c.component.as_str())
            .collect()
    };
    json!({
        "from": view.from,
        "to": view.to,
        "components": view.components.iter().map(|c| c.component.as_str()).collect::<Vec<_>>(),
        "only_in_from": only(Presence::FromOnly),
        "only_in_to": only(Presence::ToOnly),
        "summary": {
            "changes": changes.len(),
            "promotable": view.components.iter().map(ComponentDiff::promotable).sum::<usize>(),
            "changed_components": view.changed().count(),
        },
        "changes": changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeyPattern;
    use crate::diff::{Options, component};
    use crate::yaml::parse;

    fn sample() -> Vec<ComponentDiff> {
        let options = Options {
            promotion: vec![KeyPattern::parse("**.version").unwrap()],
            ..Options::default()
        };
        let from = parse(
            "kubernetes:\n  version: \"1.32\"\nregion: eu-west-1\npools:\n  - {name: a, size: 1}\n  - {name: b, size: 2}\nscript: |\n  one\n  two\n  three\napi_token: s3cr3t\nlabel: \"```\"\n",
        )
        .unwrap();
        let to = parse(
            "kubernetes:\n  version: \"1.31\"\nregion: eu-central-1\npools:\n  - {name: b, size: 2}\n  - {name: a, size: 1}\n  - {name: c, size: 5, tags: [x]}\nscript: |\n  one\n  2\n  three\napi_token: n3wT0k3n\nlabel: 7\n",
        )
        .unwrap();
        let only = parse("zone: dev.example.com\n").unwrap();
        vec![
            component("clusters", Some(&from), Some(&to), &options),
            component("dns", Some(&only), None, &options),
            component("network", Some(&only), Some(&only), &options),
        ]
    }

    fn view(components: &[ComponentDiff]) -> View<'_> {
        View {
            title: "dev → staging",
            from: "dev",
            to: "staging",
            components,
            mark_promotable: true,
        }
    }

    #[test]
    fn text_groups_changes_per_component() {
        let components = sample();
        insta::assert_snapshot!("diff_text", text(&view(&components), false));
    }

    #[test]
    fn text_is_coloured_only_when_asked() {
        let components = sample();
        let coloured = text(&view(&components), true);
        assert!(coloured.contains("\x1b[32m+ \"1.31\"\x1b[0m"), "{coloured}");
        assert!(!text(&view(&components), false).contains('\x1b'));
    }

    #[test]
    fn markdown_has_a_summary_table_and_a_section_per_component() {
        let components = sample();
        insta::assert_snapshot!("diff_markdown", markdown(&view(&components)));
    }

    #[test]
    fn no_output_prints_a_secret() {
        let components = sample();
        let v = view(&components);
        for rendered in [text(&v, true), markdown(&v), json(&v).to_string()] {
            assert!(
                !rendered.contains("s3cr3t") && !rendered.contains("n3wT0k3n"),
                "{rendered}"
            );
        }
    }

    #[test]
    fn json_lists_every_change_with_its_promotion() {
        let components = sample();
        let doc = json(&view(&components));
        assert_eq!(
            doc["summary"],
            json!({"changes": 8, "promotable": 1, "changed_components": 2})
        );
        assert_eq!(doc["only_in_from"], json!(["dns"]));
        assert_eq!(
            doc["changes"][0],
            json!({
                "component": "clusters",
                "path": "kubernetes.version",
                "go_patch": "/kubernetes/version",
                "kind": "modified",
                "from": "1.32",
                "to": "1.31",
                "promotable": true,
                "secret": false,
            })
        );
        let secret = doc["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["path"] == "api_token")
            .unwrap();
        assert_eq!(secret.get("from"), None);
        assert_eq!(secret["secret"], true);
    }

    #[test]
    fn a_fence_is_longer_than_any_backtick_run_inside() {
        assert_eq!(fence_for("a ``` b"), "````");
        assert_eq!(fence_for("plain"), "```");
    }

    #[test]
    fn long_values_are_written_in_block_style() {
        let value = json!({"name": "a-rather-long-name", "tags": ["one", "two", "three"], "nested": {"x": "1.5", "y": null}});
        assert_eq!(
            yaml_lines(&value),
            [
                "name: a-rather-long-name",
                "tags:",
                "  - one",
                "  - two",
                "  - three",
                "nested:",
                "  x: \"1.5\"",
                "  y: null",
            ]
        );
    }
}
