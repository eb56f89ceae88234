//! Line diffs of multiline values (scripts, embedded YAML, certificates),
//! for renderers to show inside a modified value.

/// A line of a multiline value's diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// In both.
    Same(&'a str),
    /// Only in `from`.
    Removed(&'a str),
    /// Only in `to`.
    Added(&'a str),
    /// This many unchanged lines, left out.
    Skipped(usize),
}

/// The line diff of two texts, with `context` unchanged lines around each
/// change and longer unchanged runs collapsed into [`Line::Skipped`].
pub fn line_diff<'a>(from: &'a str, to: &'a str, context: usize) -> Vec<Line<'a>> {
    use similar::{ChangeTag, TextDiff};
    let (old, new): (Vec<&str>, Vec<&str>) = (from.lines().collect(), to.lines().collect());
    let diff = TextDiff::from_lines(from, to);
    let mut out = Vec::new();
    let mut shown_up_to = 0;
    for group in diff.grouped_ops(context) {
        let Some(first) = group.first() else { continue };
        let start = first.old_range().start;
        if start > shown_up_to {
            out.push(Line::Skipped(start - shown_up_to));
        }
        for op in &group {
            for change in diff.iter_changes(op) {
                let line = |lines: &[&'a str], i: Option<usize>| {
                    i.and_then(|i| lines.get(i).copied()).unwrap_or_default()
                };
                out.push(match change.tag() {
                    ChangeTag::Equal => Line::Same(line(&old, change.old_index())),
                    ChangeTag::Delete => Line::Removed(line(&old, change.old_index())),
                    ChangeTag::Insert => Line::Added(line(&new, change.new_index())),
                });
            }
        }
        shown_up_to = group.last().map_or(start, |op| op.old_range().end);
    }
    if !out.is_empty() && shown_up_to < old.len() {
        out.push(Line::Skipped(old.len() - shown_up_to));
    }
    out
}
