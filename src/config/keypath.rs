//! Key paths and the patterns that select them, and which paths hold secrets.
//!
//! A key path names a value inside a YAML document by its keys, joined with
//! dots: `aws.node_pools.system.min_size`, where a list entry is named by its
//! identifier (`system`) or, when it has none, by its position. A pattern is
//! written the same way, with two wildcards: `*` stands for exactly one key,
//! `**` for any number of keys, none included. `**.version` selects every
//! `version` key at any depth, top level included.
//!
//! `promotion.keys` uses these patterns to say what promotion copies; the
//! same matcher says which values are sensitive. Secrecy is otherwise decided
//! by the words of a key's name ([`has_secret_word`]), so that `db_password`
//! and `apiKey` are hidden without anyone listing them.

use std::fmt;

/// The words that make a key secret when no other list is given.
pub const DEFAULT_SECRET_WORDS: [&str; 5] = ["password", "secret", "token", "key", "credential"];

/// A pattern over key paths, such as `**.version` or `services.*.image_tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// This key exactly.
    Key(String),
    /// `*`: any one key.
    One,
    /// `**`: any number of keys, none included.
    Any,
}

/// Why a text is not a key pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// What is wrong, for a diagnostic.
    pub message: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PatternError {}

impl KeyPattern {
    /// Parses a dotted pattern: keys separated by `.`, each a name, `*` or `**`.
    pub fn parse(text: &str) -> Result<KeyPattern, PatternError> {
        let fail = |why: &str| {
            Err(PatternError {
                message: format!("`{text}` is not a key pattern: {why}"),
            })
        };
        if text.trim().is_empty() {
            return fail("it is empty");
        }
        if text.contains(char::is_whitespace) {
            return fail("keys in a pattern have no spaces");
        }
        let mut segments = Vec::new();
        for part in text.split('.') {
            let segment = match part {
                "" => return fail("it has an empty key (two dots in a row, or a dot at an end)"),
                "*" => Segment::One,
                "**" => Segment::Any,
                _ if part.contains('*') => {
                    return fail("`*` and `**` stand for whole keys, as in `**.version`");
                }
                _ => Segment::Key(part.to_string()),
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

    /// Whether the pattern matches the whole of `path`.
    pub fn matches<S: AsRef<str>>(&self, path: &[S]) -> bool {
        // Glob matching with backtracking to the last `**` only: `**` is a
        // star over keys, `*` a single-key wildcard. Linear for one `**`,
        // and never worse than the product of the lengths.
        let (mut p, mut k) = (0, 0);
        let mut retry: Option<(usize, usize)> = None;
        while k < path.len() {
            match self.segments.get(p) {
                Some(Segment::Any) => {
                    retry = Some((p, k));
                    p += 1;
                }
                Some(Segment::One) => {
                    p += 1;
                    k += 1;
                }
                Some(Segment::Key(name)) if name == path[k].as_ref() => {
                    p += 1;
                    k += 1;
                }
                _ => match retry {
                    Some((star, from)) => {
                        p = star + 1;
                        k = from + 1;
                        retry = Some((star, from + 1));
                    }
                    None => return false,
                },
            }
        }
        self.segments[p..].iter().all(|s| *s == Segment::Any)
    }

    /// Whether the pattern matches `path` or one of its ancestors: the value
    /// at `path` is then inside a selected value.
    pub fn selects<S: AsRef<str>>(&self, path: &[S]) -> bool {
        (1..=path.len()).any(|n| self.matches(&path[..n]))
    }
}

impl fmt::Display for KeyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Whether a word of `key` is one of `words` (compared without case). Words
/// are split at every character that is not a letter or digit and where
/// camelCase changes case: `api_key`, `dbPassword` and `TLS_KEY` hold a
/// secret word; `keys`, `monkey` and `tokenizer` do not.
pub fn has_secret_word<W: AsRef<str>>(key: &str, words: &[W]) -> bool {
    split_words(key).any(|word| words.iter().any(|w| w.as_ref().eq_ignore_ascii_case(word)))
}

/// The words of a key: runs of letters and digits, split where lower case
/// turns to upper case (`dbPassword`), before the last capital of a run of
/// capitals followed by lower case (`APIKey` is `API`, `Key`), and between
/// letters and digits (`token2`).
pub fn split_words(key: &str) -> impl Iterator<Item = &str> {
    let chars: Vec<(usize, char)> = key.char_indices().collect();
    let mut bounds = Vec::new();
    let mut start: Option<usize> = None;
    for (i, &(at, c)) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if let Some(s) = start.take() {
                bounds.push((s, at));
            }
            continue;
        }
        if let Some(s) = start {
            let prev = chars[i - 1].1;
            let next_lower = chars.get(i + 1).is_some_and(|&(_, n)| n.is_lowercase());
            let camel = (prev.is_lowercase() || prev.is_ascii_digit()) && c.is_uppercase();
            let acronym_end = prev.is_uppercase() && c.is_uppercase() && next_lower;
            let digits = prev.is_ascii_digit() != c.is_ascii_digit();
            if camel || acronym_end || digits {
                bounds.push((s, at));
                start = Some(at);
            }
        } else {
            start = Some(at);
        }
    }
    if let Some(s) = start {
        bounds.push((s, key.len()));
    }
    bounds.into_iter().map(move |(s, e)| &key[s..e])
}

/// Which values are secret: shown as changed, never printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretPolicy {
    words: Vec<String>,
    sensitive: Vec<KeyPattern>,
}

impl Default for SecretPolicy {
    /// The [`DEFAULT_SECRET_WORDS`], and no sensitive patterns.
    fn default() -> Self {
        SecretPolicy::new(DEFAULT_SECRET_WORDS.iter().map(|w| w.to_string()), [])
    }
}

impl SecretPolicy {
    /// Secret when a key on the path holds one of `words`, or when the path
    /// is selected by one of the `sensitive` patterns.
    pub fn new(
        words: impl IntoIterator<Item = String>,
        sensitive: impl IntoIterator<Item = KeyPattern>,
    ) -> SecretPolicy {
        SecretPolicy {
            words: words.into_iter().collect(),
            sensitive: sensitive.into_iter().collect(),
        }
    }

    /// Nothing is secret (for comparing files that hold no secrets).
    pub fn none() -> SecretPolicy {
        SecretPolicy::new([], [])
    }

    /// Whether the field `key` is secret by its name alone.
    pub fn is_secret_key(&self, key: &str) -> bool {
        has_secret_word(key, &self.words)
    }

    /// Whether the value at `path` in `component`'s values is secret: a key
    /// or list entry name on the path holds a secret word, or a sensitive
    /// pattern selects the path, or the path with the component's name in
    /// front (`clusters.admin.token`), as the redactor matches them. A value
    /// inside a secret one is secret too, so `db_password.value` and
    /// `env.DB_PASSWORD.value` (an entry named `DB_PASSWORD`) are hidden.
    /// `component` is empty where the values belong to none.
    pub fn is_secret<S: AsRef<str>>(&self, component: &str, path: &[S]) -> bool {
        if path.iter().any(|k| self.is_secret_key(k.as_ref())) {
            return true;
        }
        if self.sensitive.iter().any(|p| p.selects(path)) {
            return true;
        }
        if component.is_empty() || path.is_empty() || self.sensitive.is_empty() {
            return false;
        }
        let full: Vec<&str> = std::iter::once(component)
            .chain(path.iter().map(AsRef::as_ref))
            .collect();
        // The component alone is no path inside its values.
        self.sensitive
            .iter()
            .any(|p| (2..=full.len()).any(|n| p.matches(&full[..n])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> KeyPattern {
        KeyPattern::parse(text).unwrap()
    }

    fn path(text: &str) -> Vec<&str> {
        if text.is_empty() {
            Vec::new()
        } else {
            text.split('.').collect()
        }
    }

    #[test]
    fn double_star_matches_any_depth_top_level_included() {
        let p = pattern("**.version");
        for yes in ["version", "kubernetes.version", "a.b.c.version"] {
            assert!(p.matches(&path(yes)), "{yes}");
        }
        for no in ["", "versions", "version.major", "a.myversion"] {
            assert!(!p.matches(&path(no)), "{no}");
        }
    }

    #[test]
    fn single_star_matches_exactly_one_key() {
        let p = pattern("services.*.image_tag");
        assert!(p.matches(&path("services.api.image_tag")));
        assert!(!p.matches(&path("services.image_tag")));
        assert!(!p.matches(&path("services.a.b.image_tag")));
    }

    #[test]
    fn double_star_in_the_middle_and_at_the_end_backtracks() {
        let p = pattern("a.**.b.*");
        assert!(p.matches(&path("a.b.x")));
        assert!(p.matches(&path("a.x.b.y.b.z")));
        assert!(!p.matches(&path("a.x.b")));
        assert!(pattern("releases.**").matches(&path("releases.x.y")));
        assert!(pattern("**").matches(&path("")));
        assert!(pattern("**.**.x").matches(&path("x")));
    }

    #[test]
    fn selects_matches_a_path_or_any_of_its_ancestors() {
        let p = pattern("**.version");
        assert!(p.selects(&path("kubernetes.version.major")));
        assert!(p.selects(&path("kubernetes.version")));
        assert!(!p.selects(&path("kubernetes")));
    }

    #[test]
    fn malformed_patterns_say_why() {
        for (text, why) in [
            ("", "empty"),
            ("a..b", "empty key"),
            (".a", "empty key"),
            ("a b", "spaces"),
            ("image_*", "whole keys"),
            ("***", "whole keys"),
        ] {
            let err = KeyPattern::parse(text).unwrap_err();
            assert!(err.message.contains(why), "{text}: {}", err.message);
        }
    }

    #[test]
    fn secret_words_are_whole_words_of_the_key() {
        let words = DEFAULT_SECRET_WORDS;
        for yes in [
            "password",
            "api_key",
            "dbPassword",
            "DB_PASSWORD",
            "APIKey",
            "client-secret",
            "tls.key",
            "githubToken2",
            "aws_credential",
        ] {
            assert!(has_secret_word(yes, &words), "{yes}");
        }
        for no in [
            "keys",
            "monkey",
            "tokenizer",
            "passwords_policy_url",
            "credentials",
            "keyring",
            "",
        ] {
            assert!(!has_secret_word(no, &words), "{no}");
        }
    }

    #[test]
    fn a_value_under_a_secret_key_or_a_sensitive_pattern_is_secret() {
        let policy = SecretPolicy::new(["password".to_string()], [pattern("**.connection_string")]);
        assert!(policy.is_secret("", &["db_password", "value"]));
        assert!(policy.is_secret("", &["env", "DB_PASSWORD", "value"]));
        assert!(policy.is_secret("", &["db", "connection_string"]));
        assert!(policy.is_secret("", &["a", "connection_string", "x"]));
        assert!(!policy.is_secret("", &["db", "host"]));
        assert!(!SecretPolicy::none().is_secret("", &["password"]));
    }

    #[test]
    fn a_sensitive_pattern_may_name_the_component_in_front_of_the_path() {
        let policy = SecretPolicy::new([], [pattern("clusters.admin")]);
        assert!(policy.is_secret("clusters", &["admin"]));
        assert!(policy.is_secret("clusters", &["admin", "user"]));
        assert!(!policy.is_secret("clusters", &["region"]));
        assert!(!policy.is_secret("platform", &["admin"]));
        assert!(!policy.is_secret("", &["admin"]));
        let whole = SecretPolicy::new([], [pattern("clusters")]);
        assert!(!whole.is_secret("clusters", &["region"]));
    }
}
