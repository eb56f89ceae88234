//! Which failures are worth another attempt.
//!
//! Infrastructure tools fail for reasons that have nothing to do with the
//! change being deployed: a registry that drops a connection, a cloud API
//! that throttles, a state lock held for a moment by another job. Such
//! failures are recognised by their output, with case-insensitive regular
//! expressions; everything else (a typo, a missing argument, a denied
//! permission) fails at once, because running it again cannot help.

use std::fmt;
use std::sync::{Arc, LazyLock};

use regex::{RegexBuilder, RegexSet, RegexSetBuilder};

/// The built-in patterns, one per kind of transient failure. Each is specific
/// enough not to match ordinary output: a bare `EOF` or `429` could appear in
/// a plan's resource attributes, so those need their surrounding words.
const DEFAULT_PATTERNS: &[&str] = &[
    // Provider and module downloads.
    r"Failed to install provider",
    r"Error installing provider",
    r"could not query provider registry",
    r"Failed to query available provider packages",
    r"failed to download",
    r"Could not download module",
    // Network: the connection never came up or broke half-way.
    r"TLS handshake timeout",
    r"connection reset by peer",
    r"connection refused",
    r"i/o timeout",
    r"no such host",
    r"temporary failure in name resolution",
    r"Client\.Timeout exceeded",
    r"net/http: request canceled",
    r"timeout awaiting response headers",
    r"unexpected EOF",
    r#"(Get|Head|Post|Put|Patch|Delete) "?https?://\S*"?: EOF"#,
    // Throttling.
    r"Too ?Many ?Requests",
    r"(status|status ?code|http|googleapi: Error)[ :=]*429\b",
    r"Rate exceeded",
    r"\brate[ -]?limit(ed\b|[ -]?exceeded)",
    r"\bThrottl(ing|ed)",
    r"RequestLimitExceeded",
    r"\bSlowDown\b",
    // The server side is briefly unavailable.
    r"(status|status ?code|http|googleapi: Error)[ :=]*50[234]\b",
    r"Bad Gateway",
    r"Service ?Unavailable",
    r"Gateway ?Time-?out",
    r"the server is currently unable to handle the request",
    // Someone else holds the lock for a moment.
    r"Error acquiring the state lock",
    r"ConditionalCheckFailedException",
    r"another operation \(install/upgrade/rollback\) is in progress",
];

/// The built-in patterns, compiled the first time a line is checked: that
/// takes milliseconds, and a run whose components print nothing never
/// needs them.
static BUILT_IN: LazyLock<RegexSet> = LazyLock::new(|| {
    // The built-in list is a constant tested below, so compiling it cannot fail.
    build_set(DEFAULT_PATTERNS)
        .expect("the built-in transient patterns are valid regular expressions")
});

static DEFAULTS: LazyLock<Arc<TransientPatterns>> =
    LazyLock::new(|| Arc::new(TransientPatterns { custom: None }));

/// A compiled set of patterns recognising transient failures. The patterns
/// are matched together, in one pass over each line: a chatty component's
/// every line is checked.
#[derive(Debug, Clone)]
pub struct TransientPatterns {
    /// The patterns, or `None` for the built-in ones.
    custom: Option<RegexSet>,
}

/// A pattern that is not a valid regular expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What the regex engine said is wrong with it.
    pub message: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a valid regular expression: {}",
            self.pattern, self.message
        )
    }
}

impl std::error::Error for PatternError {}

impl TransientPatterns {
    /// The built-in patterns, compiled once, on first use, and shared.
    pub fn defaults() -> Arc<TransientPatterns> {
        Arc::clone(&DEFAULTS)
    }

    /// Exactly the given patterns, replacing the built-in ones. Matching
    /// ignores case.
    pub fn new<I, S>(patterns: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let patterns: Vec<S> = patterns.into_iter().collect();
        for pattern in &patterns {
            check(pattern.as_ref())?;
        }
        Ok(TransientPatterns {
            custom: Some(build_set(&patterns)?),
        })
    }

    /// The built-in patterns followed by `extra`.
    pub fn with_extra<I, S>(extra: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut all: Vec<String> = DEFAULT_PATTERNS.iter().map(|p| p.to_string()).collect();
        for pattern in extra {
            check(pattern.as_ref())?;
            all.push(pattern.as_ref().to_string());
        }
        Ok(TransientPatterns {
            custom: Some(build_set(&all)?),
        })
    }

    /// The first pattern that matches any of `lines`, as written, so it can
    /// be reported as the reason for a retry.
    pub fn matches(&self, lines: &[String]) -> Option<&str> {
        lines.iter().find_map(|line| self.match_line(line))
    }

    /// The first pattern, in the order given, that matches `line`.
    pub fn match_line(&self, line: &str) -> Option<&str> {
        let set = self.set();
        // Most lines match nothing, and telling that is the cheap question.
        if !set.is_match(line) {
            return None;
        }
        let first = set.matches(line).iter().next()?;
        set.patterns().get(first).map(String::as_str)
    }

    fn set(&self) -> &RegexSet {
        self.custom.as_ref().unwrap_or(&BUILT_IN)
    }
}

/// Checks one pattern on its own, so an error names the pattern at fault.
fn check(pattern: &str) -> Result<(), PatternError> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .build()
        .map(drop)
        .map_err(|e| PatternError {
            pattern: pattern.to_string(),
            message: e.to_string(),
        })
}

fn build_set<S: AsRef<str>>(patterns: &[S]) -> Result<RegexSet, PatternError> {
    RegexSetBuilder::new(patterns)
        .case_insensitive(true)
        .build()
        .map_err(|e| PatternError {
            pattern: patterns
                .iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(" | "),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matched(line: &str) -> Option<String> {
        TransientPatterns::defaults()
            .matches(&[line.to_string()])
            .map(str::to_string)
    }

    #[track_caller]
    fn assert_transient(line: &str) {
        assert!(matched(line).is_some(), "should be transient: {line}");
    }

    #[test]
    fn the_built_in_patterns_compile() {
        assert_eq!(
            TransientPatterns::defaults().set().len(),
            DEFAULT_PATTERNS.len()
        );
    }

    #[test]
    fn provider_and_module_download_failures_are_transient() {
        assert_transient(
            "Error: Failed to install provider from shared cache: hashicorp/aws 5.31.0",
        );
        assert_transient(
            "│ Error: Failed to query available provider packages: could not query provider \
             registry for registry.opentofu.org/hashicorp/aws",
        );
        assert_transient(
            "Error installing provider \"aws\": openpgp: signature made by unknown entity.",
        );
        assert_transient("Error: Failed to download module \"vpc\" (main.tf:1) source code");
        assert_transient(
            "│ Could not download module \"eks\" (main.tf:12) source code from \"git::https://github.com/x/y\"",
        );
    }

    #[test]
    fn network_failures_are_transient() {
        assert_transient(
            "│ Error: Failed to retrieve provider: Get \"https://registry.opentofu.org/v1/providers/hashicorp/aws/versions\": \
             net/http: TLS handshake timeout",
        );
        assert_transient("read tcp 10.0.0.4:52514->52.94.0.1:443: read: connection reset by peer");
        assert_transient(
            "Error: Kubernetes cluster unreachable: Get \"https://10.0.0.1/version\": dial tcp 10.0.0.1:443: connect: connection refused",
        );
        assert_transient("dial tcp 52.94.0.1:443: i/o timeout");
        assert_transient(
            "dial tcp: lookup sts.eu-west-1.amazonaws.com on 127.0.0.53:53: no such host",
        );
        assert_transient("Error: Post \"https://sts.amazonaws.com/\": EOF");
        assert_transient("Error: unexpected EOF");
        assert_transient(
            "net/http: request canceled (Client.Timeout exceeded while awaiting headers)",
        );
    }

    #[test]
    fn throttling_is_transient() {
        assert_transient(
            "│ Error: creating EC2 Instance: operation error EC2: RunInstances, https response error StatusCode: 429, RequestLimitExceeded",
        );
        assert_transient("Error: reading S3 Bucket: api error Throttling: Rate exceeded");
        assert_transient("Original Error: Code=\"TooManyRequests\" Message=\"Too Many Requests\"");
        assert_transient("Error: Status=429 Code=\"TooManyRequests\"");
        assert_transient("api error SlowDown: Please reduce your request rate.");
        // Google's APIs, GitHub's and generic ones say it in words.
        assert_transient("Error: googleapi: Error 403: Rate Limit Exceeded, rateLimitExceeded");
        assert_transient(
            "Error: googleapi: Error 429: Quota exceeded for quota metric 'Write requests'",
        );
        assert_transient(
            "Error: GET https://api.github.com/repos/acme/infra: 403 API rate limit exceeded for installation",
        );
        assert_transient("Error: rate limited, retry later");
    }

    #[test]
    fn unavailable_servers_are_transient() {
        assert_transient("Error: Failed to request discovery document: 502 Bad Gateway");
        assert_transient("https response error StatusCode: 503, api error ServiceUnavailable");
        assert_transient("unexpected status code 504 (Gateway Timeout)");
        assert_transient("Error: googleapi: Error 503: The service is currently unavailable.");
        assert_transient(
            "Error: the server is currently unable to handle the request (get deployments.apps)",
        );
    }

    #[test]
    fn state_lock_contention_is_transient() {
        assert_transient("│ Error: Error acquiring the state lock");
        assert_transient(
            "Error message: operation error DynamoDB: PutItem, https response error StatusCode: 400, \
             ConditionalCheckFailedException: The conditional request failed",
        );
        assert_transient(
            "Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress",
        );
    }

    #[test]
    fn matching_ignores_case() {
        assert_transient("ERROR: TLS HANDSHAKE TIMEOUT");
    }

    #[test]
    fn ordinary_errors_are_not_transient() {
        for line in [
            "│ Error: Invalid reference",
            "│ Error: Missing required argument",
            "│ The argument \"region\" is required, but was not set.",
            "Error: UPGRADE FAILED: template: addons/templates/deployment.yaml:12: function \"nope\" not defined",
            "Error: creating IAM Role: AccessDenied: User is not authorized to perform: iam:CreateRole",
            "  + eof_marker = \"EOF\"",
            "  + port       = 4290",
            "  + rate_limit = 100",
            "  + rate_limiting_enabled = true",
            "  + rate_limited = false",
            "Error: googleapi: Error 400: Invalid value for field 'resource.name'",
            "Plan: 3 to add, 0 to change, 0 to destroy.",
        ] {
            assert_eq!(matched(line), None, "should not be transient: {line}");
        }
    }

    #[test]
    fn the_matching_pattern_is_reported() {
        let lines = vec![
            "Initializing the backend...".to_string(),
            "Error: Error acquiring the state lock".to_string(),
        ];
        assert_eq!(
            TransientPatterns::defaults().matches(&lines),
            Some("Error acquiring the state lock")
        );
    }

    #[test]
    fn of_several_matching_patterns_the_first_listed_is_reported() {
        let line = "Error: Post \"https://sts.amazonaws.com/\": EOF after connection reset by peer";
        assert_eq!(
            TransientPatterns::defaults().match_line(line),
            Some("connection reset by peer")
        );
        let patterns = TransientPatterns::new(["later", "EARLY|later"]).unwrap();
        assert_eq!(patterns.match_line("later"), Some("later"));
    }

    #[test]
    fn extra_patterns_add_to_the_built_in_ones() {
        let patterns = TransientPatterns::with_extra(["quota .* temporarily exceeded"]).unwrap();
        assert!(
            patterns
                .match_line("Error: quota CPUS temporarily exceeded")
                .is_some()
        );
        assert!(
            patterns
                .match_line("net/http: TLS handshake timeout")
                .is_some()
        );
    }

    #[test]
    fn given_patterns_replace_the_built_in_ones() {
        let patterns = TransientPatterns::new(["flaky"]).unwrap();
        assert_eq!(patterns.match_line("a FLAKY test"), Some("flaky"));
        assert_eq!(patterns.match_line("net/http: TLS handshake timeout"), None);
    }

    #[test]
    fn an_invalid_pattern_is_an_error_naming_it() {
        let err = TransientPatterns::with_extra(["ok", "unclosed (group"]).unwrap_err();
        assert_eq!(err.pattern, "unclosed (group");
        assert!(
            err.to_string()
                .contains("`unclosed (group` is not a valid regular expression")
        );
    }
}
