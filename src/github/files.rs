//! File commands: the files the runner names in `GITHUB_OUTPUT` and
//! `GITHUB_STEP_SUMMARY`, which a step appends to and the runner reads when
//! the step ends.
//!
//! Outputs use the heredoc form, `name<<DELIMITER`, the value's lines, then
//! the delimiter alone on a line, so values may span lines. The delimiter is
//! random (`ghadelimiter_<uuid>`, as GitHub's own toolkit makes it) and a
//! value holding it is refused: otherwise a value could end itself early and
//! set other outputs. Every record ends with a newline, or the runner fails
//! the step with "Matching delimiter not found".

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// GitHub's limit on a step summary: a larger one is not shown at all.
pub const SUMMARY_LIMIT: usize = 1024 * 1024;

/// GitHub's limit on a job's outputs, counted in UTF-16 code units.
pub const OUTPUTS_LIMIT: usize = 1_000_000;

/// Why an output could not be written.
#[derive(Debug)]
pub enum Error {
    /// The name cannot be written as a file command.
    BadName(String),
    /// The value contains the delimiter.
    Delimiter(String),
    /// The file could not be written.
    Io(PathBuf, std::io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::BadName(name) => write!(f, "`{name}` cannot be an output name"),
            Error::Delimiter(name) => write!(
                f,
                "the value of output `{name}` contains its delimiter and was not written"
            ),
            Error::Io(path, e) => write!(f, "cannot write {}: {e}", path.display()),
        }
    }
}

impl std::error::Error for Error {}

/// The step's outputs file.
#[derive(Debug, Clone)]
pub struct Outputs {
    path: PathBuf,
    /// UTF-16 code units written so far, as GitHub counts them.
    size: usize,
}

impl Outputs {
    /// The file `GITHUB_OUTPUT` names, if it does.
    pub fn from_env() -> Option<Outputs> {
        std::env::var_os("GITHUB_OUTPUT")
            .filter(|p| !p.is_empty())
            .map(|p| Outputs::new(PathBuf::from(p)))
    }

    /// Outputs appended to `path`.
    pub fn new(path: PathBuf) -> Outputs {
        Outputs { path, size: 0 }
    }

    /// Appends one output.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), Error> {
        let record = record(name, value, &delimiter())?;
        append(&self.path, record.as_bytes())?;
        self.size += name.encode_utf16().count() + value.encode_utf16().count();
        Ok(())
    }

    /// Whether what was written so far is over GitHub's limit for a job.
    pub fn over_limit(&self) -> bool {
        self.size > OUTPUTS_LIMIT
    }
}

/// A fresh delimiter.
fn delimiter() -> String {
    format!("ghadelimiter_{}", uuid::Uuid::new_v4())
}

/// One output in heredoc form.
fn record(name: &str, value: &str, delimiter: &str) -> Result<String, Error> {
    if name.is_empty() || name.contains(['=', '\n', '\r']) || name.contains("<<") {
        return Err(Error::BadName(name.to_string()));
    }
    if value.contains(delimiter) {
        return Err(Error::Delimiter(name.to_string()));
    }
    Ok(format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"))
}

fn append(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| Error::Io(path.to_path_buf(), e))
}

/// The step summary file.
#[derive(Debug, Clone)]
pub struct Summary {
    path: PathBuf,
}

impl Summary {
    /// The file `GITHUB_STEP_SUMMARY` names, if it does.
    pub fn from_env() -> Option<Summary> {
        std::env::var_os("GITHUB_STEP_SUMMARY")
            .filter(|p| !p.is_empty())
            .map(|p| Summary {
                path: PathBuf::from(p),
            })
    }

    /// How many bytes may still be added before the summary is too large
    /// to be shown.
    pub fn room(&self) -> usize {
        let used = std::fs::metadata(&self.path)
            .map(|m| m.len() as usize)
            .unwrap_or(0);
        SUMMARY_LIMIT.saturating_sub(used)
    }

    /// Appends markdown, which must already fit in [`Summary::room`].
    pub fn append(&self, markdown: &str) -> Result<(), Error> {
        let mut text = markdown.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        append(&self.path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_a_heredoc_ending_in_a_newline() {
        assert_eq!(
            record("plan", "{\n  \"a\": 1\n}", "D").unwrap(),
            "plan<<D\n{\n  \"a\": 1\n}\nD\n"
        );
        assert_eq!(record("empty", "", "D").unwrap(), "empty<<D\n\nD\n");
    }

    #[test]
    fn a_value_holding_the_delimiter_is_refused() {
        let err = record("x", "a\nD\nevil=1", "D").unwrap_err();
        assert!(matches!(err, Error::Delimiter(_)), "{err}");
        assert!(matches!(record("a=b", "v", "D"), Err(Error::BadName(_))));
        assert!(matches!(record("a<<b", "v", "D"), Err(Error::BadName(_))));
    }

    #[test]
    fn delimiters_are_random() {
        let (a, b) = (delimiter(), delimiter());
        assert!(a.starts_with("ghadelimiter_"));
        assert_ne!(a, b);
    }

    #[test]
    fn outputs_are_appended_and_counted_as_github_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(&path, "earlier=1\n").unwrap();
        let mut outputs = Outputs::new(path.clone());
        outputs.set("result", "succeeded").unwrap();
        outputs.set("note", "é").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("earlier=1\nresult<<ghadelimiter_"),
            "{text}"
        );
        assert!(text.ends_with("\n"));
        assert_eq!(outputs.size, "result".len() + "succeeded".len() + 4 + 1);
        assert!(!outputs.over_limit());
    }
}
