//! Edits a YAML file's text in place: one value set, added or removed at a
//! key path, and every other byte (comments, key order, quoting, blank
//! lines) left as it was.
//!
//! Each edit parses the current text, finds the node by its path and
//! replaces only the bytes of that node (its [`crate::yaml::Span`]), or
//! inserts or removes whole lines beside its siblings. A new value keeps the
//! quoting the old one had where the value allows it. What cannot be done
//! without touching other lines (removing the only key on a line that holds
//! more) is refused rather than guessed at; the caller checks the result
//! by parsing it again.

use crate::diff::{self, Path, Segment};
use crate::yaml::{self, Key, Node, Pos, Value};

/// One change to make to the target's text.
#[derive(Debug, Clone, Copy)]
pub enum Edit<'p, 's> {
    /// Give the value at the path the value of `to`.
    Set {
        /// Where.
        path: &'p Path,
        /// The new value, a node of the source document.
        to: &'s Node<'s>,
    },
    /// Add `value` at the path: a key its mapping lacks, or an entry
    /// appended to its list.
    Add {
        /// Where.
        path: &'p Path,
        /// The value, a node of the source document.
        value: &'s Node<'s>,
    },
    /// Remove the key or list entry at the path.
    Remove {
        /// Where.
        path: &'p Path,
    },
}

impl Edit<'_, '_> {
    fn path(&self) -> &Path {
        match self {
            Edit::Set { path, .. } | Edit::Add { path, .. } | Edit::Remove { path } => path,
        }
    }
}

/// Why an edit cannot be made in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditError {
    /// The key path of the value, dotted.
    pub key: String,
    /// Where in the target file.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
}

/// Applies one edit to `text`, taking new values from `source`'s text.
pub fn apply(text: &str, source: &str, edit: &Edit<'_, '_>) -> Result<String, EditError> {
    let path = edit.path();
    let fail = |pos: Pos, message: &str| EditError {
        key: path.dotted(),
        pos,
        message: message.to_string(),
    };
    let tree = yaml::parse(text).map_err(|e| fail(e.pos, &e.message))?;
    match *edit {
        Edit::Set { to, .. } => {
            let node = locate(&tree, &path.0).ok_or_else(|| fail(tree.pos, "not found"))?;
            Ok(set(text, node, source, to))
        }
        Edit::Add { value, .. } => {
            let (last, parent_path) = path
                .0
                .split_last()
                .ok_or_else(|| fail(tree.pos, "the whole document cannot be added"))?;
            let parent = locate(&tree, parent_path)
                .ok_or_else(|| fail(tree.pos, "its parent is not found"))?;
            let rendered = render(value, source, Style::Plain, None);
            match (&parent.value, last) {
                (Value::Map(entries), Segment::Key(key)) => {
                    let line = format!("{}: {rendered}", yaml::string_text(key));
                    Ok(append(
                        text,
                        parent,
                        entries.last().map(|(_, v)| v),
                        entries.first().map(|(k, _)| k.span.start),
                        &line,
                        ('{', '}'),
                    ))
                }
                (Value::Seq(items), Segment::Entry { .. } | Segment::Index(_)) => {
                    let flow = is_flow(text, parent);
                    let dash = items
                        .first()
                        .and_then(|i| dash_before(text, i.span.start as usize));
                    if !flow && !items.is_empty() && dash.is_none() {
                        return Err(fail(
                            parent.pos,
                            "the list's layout leaves no line to add an entry on",
                        ));
                    }
                    let item = if flow {
                        rendered
                    } else {
                        format!("- {rendered}")
                    };
                    Ok(append(
                        text,
                        parent,
                        items.last(),
                        dash.map(|d| d as u32),
                        &item,
                        ('[', ']'),
                    ))
                }
                _ => Err(fail(parent.pos, "its parent is not a mapping or list")),
            }
        }
        Edit::Remove { .. } => {
            let (last, parent_path) = path
                .0
                .split_last()
                .ok_or_else(|| fail(tree.pos, "the whole document cannot be removed"))?;
            let parent = locate(&tree, parent_path)
                .ok_or_else(|| fail(tree.pos, "its parent is not found"))?;
            remove(text, parent, last).map_err(|(pos, why)| fail(pos, why))
        }
    }
}

/// The node at `path`, if there is one.
pub fn locate<'n>(root: &'n Node<'n>, path: &[Segment]) -> Option<&'n Node<'n>> {
    let mut node = root;
    for segment in path {
        node = match (&node.value, segment) {
            (Value::Map(entries), Segment::Key(key)) => entries
                .iter()
                .find(|(k, _)| k.name == *key)
                .map(|(_, v)| v)?,
            (Value::Seq(items), Segment::Index(i)) => items.get(*i)?,
            (Value::Seq(items), Segment::Entry { field, value }) => {
                items.iter().find(|item| entry_named(item, field, value))?
            }
            _ => return None,
        };
    }
    Some(node)
}

fn entry_named(item: &Node<'_>, field: &str, name: &str) -> bool {
    diff::entry_id(item, field).is_some_and(|id| id == name)
}

/// How a scalar is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
    Block,
}

fn style_of(raw: &str) -> Style {
    match raw.chars().next() {
        Some('"') => Style::Double,
        Some('\'') => Style::Single,
        Some('|' | '>') => Style::Block,
        _ => Style::Plain,
    }
}

fn is_flow(text: &str, node: &Node<'_>) -> bool {
    matches!(
        text.as_bytes().get(node.span.start as usize),
        Some(b'{' | b'[')
    )
}

fn splice(text: &str, range: std::ops::Range<usize>, with: &str) -> String {
    let mut out = String::with_capacity(text.len() + with.len());
    out.push_str(&text[..range.start]);
    out.push_str(with);
    out.push_str(&text[range.end..]);
    out
}

fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |i| i + 1)
}

fn line_end(text: &str, at: usize) -> usize {
    text[at..].find('\n').map_or(text.len(), |i| at + i)
}

/// Where a node's text ends, without the blank lines a block scalar's span
/// takes in.
fn value_end(text: &str, node: &Node<'_>) -> usize {
    let range = node.span.range();
    range.start + text[range].trim_end().len()
}

/// Whether only spaces come before `at` on its line.
fn starts_line(text: &str, at: usize) -> bool {
    text[line_start(text, at)..at].bytes().all(|b| b == b' ')
}

/// The `-` that introduces the block list item starting at `at`: on its
/// line, or alone on an earlier one, with only comments in between.
fn dash_before(text: &str, at: usize) -> Option<usize> {
    let mut end = at;
    loop {
        let before = text[..end].trim_end_matches([' ', '\n']);
        if before.ends_with('-') {
            return Some(before.len() - 1);
        }
        let line_at = line_start(text, before.len());
        let line = &text[line_at..before.len()];
        let content = line.trim_start();
        if content.starts_with('#') && line_at < end {
            end = line_at;
            continue;
        }
        // `-  # a note`: the dash, then only a comment.
        let dash = line_at + (line.len() - content.len());
        let rest = content.strip_prefix('-')?;
        return (rest.starts_with(' ') && rest.trim_start().starts_with('#')).then_some(dash);
    }
}

/// The spaces that put text in the column `at` is in.
fn indent_of(text: &str, at: usize) -> String {
    " ".repeat(text[line_start(text, at)..at].chars().count())
}

fn set(text: &str, node: &Node<'_>, source: &str, to: &Node<'_>) -> String {
    let range = node.span.range();
    if range.is_empty() {
        // `key:` with no value: the empty node sits at the `:` (or the `-`
        // of a list item), and the value goes after it.
        let at = range.start;
        let after = match text.as_bytes().get(at) {
            Some(b':' | b'-') => at + 1,
            _ => at,
        };
        let value = render(to, source, Style::Plain, None);
        return splice(text, after..after, &format!(" {value}"));
    }
    let old = &text[range.clone()];
    let trimmed = old.trim_end();
    // Blank lines a block value takes in stay after the new value.
    let trailing = &old[trimmed.len()..];
    let style = style_of(old);
    let indent = (style == Style::Block).then(|| block_indent(old)).flatten();
    let value = render(to, source, style, indent.as_deref());
    splice(text, range, &format!("{value}{trailing}"))
}

/// The indentation of a block scalar's content lines.
fn block_indent(raw: &str) -> Option<String> {
    raw.lines()
        .skip(1)
        .find(|l| !l.trim().is_empty())
        .map(|l| " ".repeat(l.len() - l.trim_start_matches(' ').len()))
}

/// Writes a new key or list entry after the last one of `parent`, on a line
/// of its own at the column of the first (`first_at`); in a flow collection,
/// after a comma.
fn append(
    text: &str,
    parent: &Node<'_>,
    last: Option<&Node<'_>>,
    first_at: Option<u32>,
    item: &str,
    (open, close): (char, char),
) -> String {
    if is_flow(text, parent) {
        return match last {
            Some(last) => {
                let at = value_end(text, last);
                splice(text, at..at, &format!(", {item}"))
            }
            None => splice(text, parent.span.range(), &format!("{open}{item}{close}")),
        };
    }
    // A block collection is never empty: it has a last value and a first key or dash.
    let (Some(last), Some(first)) = (last, first_at) else {
        return text.to_string();
    };
    let at = line_end(text, value_end(text, last));
    let line = format!("\n{}{item}", indent_of(text, first as usize));
    splice(text, at..at, &line)
}

fn remove(text: &str, parent: &Node<'_>, last: &Segment) -> Result<String, (Pos, &'static str)> {
    // Each entry as (where it starts, its value).
    let (entries, index): (Vec<(usize, &Node<'_>)>, Option<usize>) = match (&parent.value, last) {
        (Value::Map(entries), Segment::Key(key)) => (
            entries
                .iter()
                .map(|(k, v)| (k.span.start as usize, v))
                .collect(),
            entries.iter().position(|(k, _)| k.name == *key),
        ),
        (Value::Seq(items), _) => {
            let index = match last {
                Segment::Index(i) => Some(*i).filter(|i| *i < items.len()),
                Segment::Entry { field, value } => {
                    items.iter().position(|i| entry_named(i, field, value))
                }
                Segment::Key(_) => None,
            };
            let starts = items
                .iter()
                .map(|i| {
                    let at = i.span.start as usize;
                    (
                        if is_flow(text, parent) {
                            at
                        } else {
                            dash_before(text, at).unwrap_or(at)
                        },
                        i,
                    )
                })
                .collect();
            (starts, index)
        }
        _ => (Vec::new(), None),
    };
    let Some(i) = index else {
        return Err((parent.pos, "not found"));
    };
    let (start, value) = entries[i];
    let end = value_end(text, value);
    if entries.len() == 1 {
        // Keeps the parent a (now empty) mapping or list.
        let empty = match (is_flow(text, parent), &parent.value) {
            (true, _) => "",
            (false, Value::Map(_)) => "{}",
            (false, _) => "[]",
        };
        return Ok(splice(text, start..end, empty));
    }
    if is_flow(text, parent) {
        return Ok(match entries.get(i + 1) {
            Some(&(next, _)) => splice(text, start..next, ""),
            None => splice(text, value_end(text, entries[i - 1].1)..end, ""),
        });
    }
    if starts_line(text, start) {
        let from = line_start(text, start);
        let to = line_end(text, end);
        return Ok(if to < text.len() {
            splice(text, from..to + 1, "")
        } else {
            splice(text, from.saturating_sub(1)..to, "")
        });
    }
    // The first key of a list item shares its line with the `-`. The next
    // key moves up to take its place when only spaces lie between; else
    // the `-` stays alone on its line, which keeps what lies between.
    match entries.get(i + 1) {
        Some(&(next, _)) if i == 0 => {
            let gap = &text[end..next];
            if gap.matches('\n').count() <= 1 && !gap.contains('#') {
                Ok(splice(text, start..next, ""))
            } else {
                let dash = dash_before(text, start).ok_or((value.pos, SHARED_LINE))?;
                Ok(splice(text, dash + 1..line_end(text, end), ""))
            }
        }
        _ => Err((value.pos, SHARED_LINE)),
    }
}

const SHARED_LINE: &str =
    "it shares its line with other content, so it cannot be removed without rewriting that line";

/// A source value as YAML text for the target: scalars in `style` where
/// the value allows it, collections in flow style. Numbers, booleans and
/// nulls keep the spelling the source gave them when it reads back the same.
fn render(node: &Node<'_>, source: &str, style: Style, indent: Option<&str>) -> String {
    match &node.value {
        Value::Str(s) => match style {
            Style::Double => yaml::double_quoted(s),
            Style::Single if !s.chars().any(char::is_control) => {
                format!("'{}'", s.replace('\'', "''"))
            }
            Style::Block => indent
                .and_then(|indent| literal(s, indent))
                .unwrap_or_else(|| render(node, source, Style::Plain, None)),
            _ => yaml::string_text(s),
        },
        Value::Map(entries) => {
            let items: Vec<String> = entries
                .iter()
                .map(|(k, v): &(Key<'_>, Node<'_>)| {
                    format!(
                        "{}: {}",
                        yaml::string_text(&k.name),
                        render(v, source, Style::Plain, None)
                    )
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Seq(items) => {
            let items: Vec<String> = items
                .iter()
                .map(|v| render(v, source, Style::Plain, None))
                .collect();
            format!("[{}]", items.join(", "))
        }
        scalar => {
            let raw = source.get(node.span.range()).unwrap_or_default();
            if crate::diff::same_scalar(&yaml::plain_value(raw), scalar) {
                raw.to_string()
            } else {
                canonical(scalar)
            }
        }
    }
}

fn canonical(scalar: &Value<'_>) -> String {
    match scalar {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) if f.is_nan() => ".nan".into(),
        Value::Float(f) if f.is_infinite() => if *f > 0.0 { ".inf" } else { "-.inf" }.into(),
        Value::Float(f) => format!("{f:?}"),
        Value::Str(s) => yaml::double_quoted(s),
        // `render` writes collections itself.
        Value::Seq(_) | Value::Map(_) => String::new(),
    }
}

/// A multiline string as a literal block scalar (`|`, `|-`) with its lines
/// at `indent`, or `None` when a block cannot hold it as it is (leading
/// spaces, carriage returns, control characters, several trailing newlines).
fn literal(s: &str, indent: &str) -> Option<String> {
    let body = s.trim_end_matches('\n');
    let chomp = match s.len() - body.len() {
        0 => "-",
        1 => "",
        _ => return None,
    };
    let awkward = body.is_empty()
        || body.starts_with([' ', '\t'])
        || !body.contains('\n')
        || s.chars().any(|c| c.is_control() && c != '\n' && c != '\t');
    if awkward {
        return None;
    }
    let mut out = format!("|{chomp}");
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(indent);
            out.push_str(line);
        }
    }
    Some(out)
}
