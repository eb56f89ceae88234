//! Rendering for people and tools: tables, graphs in mermaid and DOT, JSON.
//! Renderers take values and return text; writing it is the caller's job.

pub mod diff;
pub mod graph;
pub mod impact;
pub mod logs;
pub mod plan;
pub mod promotion;
pub mod summary;
pub mod terminal;

/// `n` and `noun`, plural unless `n` is 1: `1 component`, `3 waves`.
pub fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Whether text for people on stderr may be coloured: stderr is a terminal
/// and `NO_COLOR` is not set.
pub fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `text` in the ANSI style `code` (`1` bold, `31` red, ...) when `colour`,
/// else as it is.
pub fn paint(colour: bool, code: &str, text: &str) -> String {
    if colour {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The ANSI style of a component's status: green when it went as asked,
/// red when it failed, yellow when it did not run to its end.
pub fn status_style(status: crate::events::Status) -> &'static str {
    use crate::events::Status;
    match status {
        Status::Succeeded | Status::Destroyed => "32",
        Status::Failed => "31",
        Status::Skipped | Status::Cancelled => "33",
        Status::Pending | Status::Running => "0",
    }
}

/// Lays out rows as left-aligned columns separated by two spaces, with no
/// trailing spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_aligns_columns_without_trailing_spaces() {
        let text = super::table(
            &["A", "LONG"],
            &[vec!["xyz".into(), "1".into()], vec!["q".into(), "".into()]],
        );
        assert_eq!(text, "A    LONG\nxyz  1\nq\n");
    }
}
