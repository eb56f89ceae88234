//! Dotted key-path patterns over values files, such as `**.db_password` or
//! `clusters.*.token`: `*` stands for exactly one key, `**` for any number of
//! keys (none included), anything else for itself.
//!
//! Used by `secrets.sensitive` (which values are always secret) and meant for
//! `promotion.keys` too, so both read patterns the same way. Pure.

use std::fmt;

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// A key written out.
    Key(String),
    /// `*`: any one key.
    One,
    /// `**`: any number of keys, none included.
    Any,
}

/// A parsed key-path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    text: String,
    segments: Vec<Segment>,
}

impl KeyPattern {
    /// Parses `a.b`, `*.b`, `**.b`; refuses empty segments, whitespace and a
    /// `*` inside a key (`db_*`), whose meaning would be a guess.
    pub fn parse(text: &str) -> Result<KeyPattern, String> {
        if text.trim().is_empty() {
            return Err("a key pattern must not be empty".into());
        }
        if text.contains(char::is_whitespace) {
            return Err(format!("`{text}` is not a key pattern: it contains spaces"));
        }
        let mut segments = Vec::new();
        for part in text.split('.') {
            let segment = match part {
                "" => {
                    return Err(format!(
                        "`{text}` has an empty key: write keys separated by single dots, e.g. `**.db_password`"
                    ));
                }
                "*" => Segment::One,
                "**" => Segment::Any,
                p if p.contains('*') => {
                    return Err(format!(
                        "`{text}`: `*` stands for a whole key (`*.password`), not part of one (`{p}`)"
                    ));
                }
                p => Segment::Key(p.to_string()),
            };
            // `**.**` means the same as `**`; keeping one keeps matching linear.
            if segment == Segment::Any && segments.last() == Some(&Segment::Any) {
                continue;
            }
            segments.push(segment);
        }
        Ok(KeyPattern {
            text: text.to_string(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the path (one key per element; list items by their index)
    /// matches the whole pattern.
    pub fn matches<S: AsRef<str>>(&self, path: &[S]) -> bool {
        matches(&self.segments, path)
    }
}

impl fmt::Display for KeyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn matches<S: AsRef<str>>(pattern: &[Segment], path: &[S]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((Segment::Any, rest)) => (0..=path.len()).any(|skip| matches(rest, &path[skip..])),
        Some((segment, rest)) => match path.split_first() {
            None => false,
            Some((key, tail)) => {
                let here = match segment {
                    Segment::Key(k) => k == key.as_ref(),
                    _ => true,
                };
                here && matches(rest, tail)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        let path: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
        KeyPattern::parse(pattern).unwrap().matches(&path)
    }

    #[test]
    fn double_star_matches_any_depth_including_none() {
        assert!(m("**.db_password", "db_password"));
        assert!(m("**.db_password", "aws.rds.db_password"));
        assert!(!m("**.db_password", "aws.rds.db_password_hint"));
        assert!(m("a.**.z", "a.z"));
        assert!(m("a.**.z", "a.b.c.z"));
        assert!(!m("a.**.z", "a.b.c"));
    }

    #[test]
    fn single_star_matches_exactly_one_key() {
        assert!(m("*.token", "github.token"));
        assert!(!m("*.token", "token"));
        assert!(!m("*.token", "a.b.token"));
        assert!(m("users.*.password", "users.0.password"));
    }

    #[test]
    fn literal_patterns_match_only_themselves() {
        assert!(m("db.password", "db.password"));
        assert!(!m("db.password", "db.password.old"));
        assert!(!m("db.password", "db"));
    }

    #[test]
    fn malformed_patterns_are_refused_with_a_reason() {
        assert!(KeyPattern::parse("").unwrap_err().contains("empty"));
        assert!(KeyPattern::parse("a..b").unwrap_err().contains("empty key"));
        assert!(KeyPattern::parse("db_*").unwrap_err().contains("whole key"));
        assert!(KeyPattern::parse("a b").unwrap_err().contains("spaces"));
    }

    #[test]
    fn repeated_double_stars_stay_cheap() {
        let long: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        let p = KeyPattern::parse("**.**.**.**.**.**.x").unwrap();
        assert!(!p.matches(&long));
    }
}
