//! Problems found in configuration files, reported all at once.
//!
//! Each [`Diagnostic`] names the file, line, column and key, says what is
//! wrong and, where it can, what to write instead. A [`Report`] collects them
//! with the sources they point into, and renders them as rustc-style
//! snippets for a terminal or as JSON for tools.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use serde::{Deserialize, Serialize};

use crate::yaml::Pos;

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// The file, as the user named it (relative to where they ran the command).
    pub file: PathBuf,
    /// 1-based line (0 when the problem is the whole file).
    pub line: u32,
    /// 1-based column (0 when the problem is the whole file).
    pub column: u32,
    /// Dotted path of the key concerned, e.g. `components.clusters.depends_on`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A problem at `pos` in `file`, concerning `key`.
    pub fn new(file: &Path, pos: Pos, key: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            key: key.into(),
            message: message.into(),
            hint: None,
        }
    }

    /// Adds advice on how to fix the problem.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a hint when there is one.
    pub fn maybe_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// `file:line:col`, or just the file when there is no position.
    pub fn location(&self) -> String {
        if self.line == 0 {
            self.file.display().to_string()
        } else {
            format!("{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }
}

/// All the problems found in a set of files, with the sources they refer to.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// The problems, in the order found.
    pub diagnostics: Vec<Diagnostic>,
    /// What is allowed but likely not meant, in the order found. They do
    /// not make the input invalid.
    pub warnings: Vec<Diagnostic>,
    sources: BTreeMap<PathBuf, String>,
}

impl Report {
    /// Keeps a file's text so its diagnostics can show the offending line.
    pub fn add_source(&mut self, file: &Path, text: String) {
        self.sources.insert(file.to_path_buf(), text);
    }

    /// Records a problem.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    /// Records something allowed but likely not meant.
    pub fn warn(&mut self, diagnostic: Diagnostic) {
        self.warnings.push(diagnostic);
    }

    /// True when nothing is wrong (warnings aside).
    pub fn is_empty(&self) -> bool {
        self.diagnostics.is_empty()
    }

    /// Moves another report's problems and sources into this one.
    pub fn extend(&mut self, other: Report) {
        self.diagnostics.extend(other.diagnostics);
        self.warnings.extend(other.warnings);
        self.sources.extend(other.sources);
    }

    /// Sorts problems by file and position, so output does not depend on the
    /// order checks ran in.
    pub fn sort(&mut self) {
        for list in [&mut self.diagnostics, &mut self.warnings] {
            list.sort_by(|a, b| {
                (&a.file, a.line, a.column, &a.message)
                    .cmp(&(&b.file, b.line, b.column, &b.message))
            });
            list.dedup();
        }
    }

    /// Renders every problem as a snippet of its source with a caret under
    /// it, and says that nothing was changed.
    pub fn render(&self, color: bool) -> String {
        let mut out = self.snippets(&self.diagnostics, Level::ERROR, color);
        let _ = writeln!(
            out,
            "{} found; nothing was changed",
            crate::report::counted(self.diagnostics.len(), "error")
        );
        out
    }

    /// Renders every warning as [`Report::render`] renders problems.
    pub fn render_warnings(&self, color: bool) -> String {
        self.snippets(&self.warnings, Level::WARNING, color)
    }

    fn snippets(&self, list: &[Diagnostic], level: Level<'_>, color: bool) -> String {
        let renderer = if color {
            Renderer::styled()
        } else {
            Renderer::plain()
        };
        let mut out = String::new();
        for d in list {
            // A problem of the file as a whole (invalid YAML) has no key.
            let title = if d.key.is_empty() {
                d.message.clone()
            } else {
                format!("{} (at `{}`)", d.message, d.key)
            };
            let line_text = self
                .sources
                .get(&d.file)
                .filter(|_| d.line > 0)
                .and_then(|text| text.lines().nth(d.line as usize - 1));
            let mut group = Group::with_title(level.clone().primary_title(title.clone()));
            match line_text {
                Some(line) => {
                    let start = char_to_byte(line, d.column.saturating_sub(1) as usize);
                    let end = token_end(line, start);
                    group = group.element(
                        Snippet::source(line)
                            .line_start(d.line as usize)
                            .path(d.file.display().to_string())
                            .annotation(AnnotationKind::Primary.span(start..end)),
                    );
                }
                None => {
                    group = group.element(Level::NOTE.message(format!("in {}", d.location())));
                }
            }
            if let Some(hint) = &d.hint {
                group = group.element(Level::HELP.message(hint.as_str()));
            }
            let _ = writeln!(out, "{}\n", renderer.render(&[group]));
        }
        out
    }

    /// The problems as one JSON document:
    /// `{"valid": false, "errors": [...], "warnings": [...]}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "valid": self.is_empty(),
            "errors": self.diagnostics,
            "warnings": self.warnings,
        })
    }
}

fn char_to_byte(line: &str, chars: usize) -> usize {
    line.char_indices()
        .nth(chars)
        .map_or(line.len(), |(i, _)| i)
}

/// The end of the word starting at `start`: a key, a scalar, a list item.
fn token_end(line: &str, start: usize) -> usize {
    let rest = &line[start..];
    let quoted = rest.starts_with(['"', '\'']);
    let len = rest
        .char_indices()
        .skip(1)
        .find(|&(_, c)| {
            if quoted {
                c == rest.as_bytes()[0] as char
            } else {
                c.is_whitespace() || matches!(c, ',' | ']' | '}' | ':' | '#')
            }
        })
        .map_or(
            rest.len(),
            |(i, c)| if quoted { i + c.len_utf8() } else { i },
        );
    start + len.max(1).min(rest.len().max(1))
}

/// The candidate closest to `input`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a, I>(input: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(input, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_find_near_misses_only() {
        let keys = ["path", "runner", "depends_on", "commands"];
        assert_eq!(
            did_you_mean("dependson", keys).as_deref(),
            Some("did you mean `depends_on`?")
        );
        assert_eq!(
            did_you_mean("runer", keys).as_deref(),
            Some("did you mean `runner`?")
        );
        assert_eq!(did_you_mean("zzz", keys), None);
    }

    #[test]
    fn rendering_points_at_the_token_and_names_file_line_and_key() {
        let mut report = Report::default();
        let file = Path::new("orchestrator.yaml");
        report.add_source(file, "components:\n  net:\n    dependson: [x]\n".into());
        report.push(
            Diagnostic::new(
                file,
                Pos { line: 3, column: 5 },
                "components.net.dependson",
                "unknown key `dependson`",
            )
            .hint("did you mean `depends_on`?"),
        );
        let text = report.render(false);
        assert!(text.contains("orchestrator.yaml:3:5"), "{text}");
        assert!(text.contains("3 |     dependson: [x]"), "{text}");
        assert!(text.contains("^^^^^^^^^"), "{text}");
        assert!(
            !text.contains("^^^^^^^^^^"),
            "caret runs past the key: {text}"
        );
        assert!(text.contains("components.net.dependson"), "{text}");
        assert!(text.contains("did you mean `depends_on`?"), "{text}");
        assert!(text.contains("1 error found"), "{text}");
    }
}
