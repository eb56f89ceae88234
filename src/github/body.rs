//! The text of issues and comments: hidden markers, code fences that survive
//! any content, and GitHub's size limit.
//!
//! GitHub refuses a body over 65,536 characters ("Body is too long"), counted
//! in characters, markers included. A body that would be longer is cut on a
//! character boundary and ends with a visible note saying so, with a link to
//! the run where the whole text is.

/// The most characters GitHub accepts in an issue or comment body.
pub const MAX_BODY_CHARS: usize = 65_536;

/// A hidden marker: `<!-- orchestrator:KIND k=v ... -->`. Markers find what
/// we wrote before; they are invisible in the rendered page.
pub fn marker(kind: &str, fields: &[(&str, &str)]) -> String {
    let mut text = format!("<!-- orchestrator:{kind}");
    for (k, v) in fields {
        text.push_str(&format!(" {k}={v}"));
    }
    text.push_str(" -->");
    text
}

/// Wraps `text` in a fenced code block whose fence is longer than any run
/// of backticks inside it, so log lines cannot end the block early.
pub fn fenced(text: &str, language: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}{language}\n{text}\n{fence}")
}

/// `body` cut to at most `limit` characters, if it is longer: on a character
/// boundary, with an open code fence closed and a note saying what happened
/// and where the whole text is (`link`).
pub fn fit(body: &str, limit: usize, link: Option<&str>) -> String {
    let total = body.chars().count();
    if total <= limit {
        return body.to_string();
    }
    let whole = match link {
        Some(link) => format!("The whole text is in the [run's log]({link})."),
        None => "The whole text is in the run's log.".to_string(),
    };
    let note = format!(
        "\n\n> [!NOTE]\n> Cut to fit GitHub's limit of {MAX_BODY_CHARS} characters: the full text was {total} characters. {whole}\n"
    );
    // Room for the note and for closing a fence of up to 16 backticks.
    let reserve = note.chars().count() + 18;
    let keep = limit.saturating_sub(reserve);
    let end = body.char_indices().nth(keep).map_or(body.len(), |(i, _)| i);
    let mut out = body[..end].to_string();
    if let Some(fence) = open_fence(&out) {
        out.push('\n');
        out.push_str(&fence);
    }
    out.push_str(&note);
    out
}

/// The fence of a code block left open at the end of `text`, if any.
fn open_fence(text: &str) -> Option<String> {
    let mut open: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let ticks = trimmed.chars().take_while(|&c| c == '`').count();
        if ticks < 3 {
            continue;
        }
        match &open {
            None => open = Some("`".repeat(ticks)),
            Some(fence) if ticks >= fence.len() && trimmed[ticks..].trim().is_empty() => {
                open = None
            }
            Some(_) => {}
        }
    }
    open.filter(|f| f.len() <= 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_html_comments_with_their_fields() {
        assert_eq!(
            marker(
                "failure",
                &[("env", "dev"), ("cloud", "aws"), ("component", "clusters")]
            ),
            "<!-- orchestrator:failure env=dev cloud=aws component=clusters -->"
        );
    }

    #[test]
    fn fences_outgrow_backticks_in_the_text() {
        assert_eq!(fenced("a", "text"), "```text\na\n```");
        assert_eq!(fenced("x ```` y", ""), "`````\nx ```` y\n`````");
    }

    #[test]
    fn short_bodies_are_left_alone() {
        assert_eq!(fit("hello", 10, None), "hello");
    }

    #[test]
    fn long_bodies_are_cut_on_a_character_boundary_with_a_note() {
        let body = "é".repeat(200_000);
        let out = fit(&body, MAX_BODY_CHARS, Some("https://x/run/1"));
        assert!(out.chars().count() <= MAX_BODY_CHARS);
        assert!(out.contains("the full text was 200000 characters"));
        assert!(out.contains("(https://x/run/1)"));
    }

    #[test]
    fn a_cut_inside_a_code_block_closes_it_before_the_note() {
        let body = format!("intro\n```text\n{}", "line\n".repeat(100));
        let out = fit(&body, 300, None);
        let before_note = out.split("\n\n> [!NOTE]").next().unwrap();
        assert!(before_note.ends_with("\n```"), "{out}");
        assert!(out.chars().count() <= 300);
    }
}
