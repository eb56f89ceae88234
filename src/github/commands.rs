//! Workflow commands: the `::name key=value::data` lines the runner reads
//! from a step's output to group the log, annotate the run, mask secrets,
//! and stop reading commands while untrusted text is printed.
//!
//! The runner parses them on stdout and on stderr alike; we print them on
//! stderr, where all our text for people goes, so they keep their order
//! with it. Data is escaped as the runner unescapes it (`%`, CR, LF), and
//! property values also escape `:` and `,`, or a component's error message
//! could end the title early and inject properties of its own.

use std::fmt::Write as _;

/// The most error annotations worth emitting for one step: the run page
/// shows only about ten of each kind and drops the rest silently.
pub const MAX_ERRORS: usize = 10;

/// Escapes a command's data (the text after `::`).
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value (`title=...`).
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// Where an annotation points, when it is about a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The file, relative to the workspace.
    pub file: String,
    /// Its line, from 1.
    pub line: Option<usize>,
    /// Its column, from 1.
    pub column: Option<usize>,
}

/// How serious an annotation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Fails nothing by itself, but shows in red.
    Error,
    /// Shows in yellow.
    Warning,
    /// Shows in blue.
    Notice,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
        }
    }
}

/// An annotation line: `::error file=...,line=...,title=...::message`.
pub fn annotation(level: Level, title: &str, location: Option<&Location>, message: &str) -> String {
    let mut properties = Vec::new();
    if let Some(at) = location {
        properties.push(format!("file={}", escape_property(&at.file)));
        if let Some(line) = at.line {
            properties.push(format!("line={line}"));
        }
        if let Some(column) = at.column {
            properties.push(format!("col={column}"));
        }
    }
    if !title.is_empty() {
        properties.push(format!("title={}", escape_property(title)));
    }
    let mut out = format!("::{}", level.as_str());
    if !properties.is_empty() {
        let _ = write!(out, " {}", properties.join(","));
    }
    let _ = writeln!(out, "::{}", escape_data(message));
    out
}

/// Lines that register secrets with the runner, which then masks them in
/// the log and the step summary. A multi-line value is registered line by
/// line, since the runner masks line by line.
pub fn masks<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for value in values {
        for line in value.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let _ = writeln!(out, "::add-mask::{}", escape_data(line));
        }
    }
    out
}

/// A collapsed section of the log holding `body`, which the runner does not
/// read commands from: a component printing `::add-mask::`, `::error::` or
/// `::endgroup::` is shown, not obeyed. The resume token is random, so the
/// body cannot guess it and resume command processing itself.
pub fn group(title: &str, body: &str) -> String {
    let token = format!("orchestrator-{}", uuid::Uuid::new_v4().simple());
    let mut out = String::with_capacity(body.len() + title.len() + 128);
    let _ = writeln!(out, "::group::{}", escape_data(title));
    out.push_str(&untrusted_with(&token, body));
    out.push_str("::endgroup::\n");
    out
}

/// `text` wrapped so that the runner reads no command from it.
pub fn untrusted(text: &str) -> String {
    untrusted_with(
        &format!("orchestrator-{}", uuid::Uuid::new_v4().simple()),
        text,
    )
}

fn untrusted_with(token: &str, text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let mut out = String::with_capacity(text.len() + 2 * token.len() + 24);
    let _ = writeln!(out, "::stop-commands::{token}");
    out.push_str(text);
    if !text.ends_with('\n') {
        out.push('\n');
    }
    let _ = writeln!(out, "::{token}::");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_and_properties_are_escaped_as_the_runner_unescapes_them() {
        assert_eq!(escape_data("50% done\r\nnext"), "50%25 done%0D%0Anext");
        assert_eq!(
            escape_property("a: b, c%\n"),
            "a%3A b%2C c%25%0A".to_string()
        );
    }

    #[test]
    fn an_annotation_carries_its_location_and_title_as_properties() {
        let at = Location {
            file: "orchestrator.yaml".into(),
            line: Some(12),
            column: Some(5),
        };
        assert_eq!(
            annotation(Level::Error, "bad key", Some(&at), "unknown key `x`\nhelp"),
            "::error file=orchestrator.yaml,line=12,col=5,title=bad key::unknown key `x`%0Ahelp\n"
        );
        assert_eq!(
            annotation(Level::Warning, "", None, "careful"),
            "::warning::careful\n"
        );
        // A title cannot end early and smuggle in properties.
        assert_eq!(
            annotation(Level::Error, "x,file=evil::y", None, "m"),
            "::error title=x%2Cfile=evil%3A%3Ay::m\n"
        );
    }

    #[test]
    fn masks_register_each_line_of_a_value() {
        assert_eq!(
            masks(["s3cr3t", "-----BEGIN KEY-----\nabc\n-----END KEY-----\n"]),
            "::add-mask::s3cr3t\n::add-mask::-----BEGIN KEY-----\n::add-mask::abc\n::add-mask::-----END KEY-----\n"
        );
    }

    #[test]
    fn a_group_stops_command_processing_for_its_body_with_a_fresh_token() {
        let text = group(
            "network (aws): apply succeeded",
            "::endgroup::\n::add-mask::x",
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "::group::network (aws): apply succeeded");
        let token = lines[1].strip_prefix("::stop-commands::").unwrap();
        assert!(token.len() > 32, "{token}");
        assert_eq!(lines[2], "::endgroup::");
        assert_eq!(lines[3], "::add-mask::x");
        assert_eq!(lines[4], format!("::{token}::"));
        assert_eq!(lines[5], "::endgroup::");
        let other = group("t", "b");
        assert!(!other.contains(token));
        assert_eq!(group("empty", ""), "::group::empty\n::endgroup::\n");
    }
}
