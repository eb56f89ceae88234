//! The one redactor for everything that leaves the orchestrator as text:
//! failure issues, pull-request comments, terminal output, log files and the
//! recorded state.
//!
//! GitHub masks the secrets a workflow registers in its own logs, but not in
//! what we send through the API, and it knows nothing of the secrets in our
//! values files. So we mask, in any outgoing text:
//!
//! - every known secret value, replaced by `***`: the GitHub token(s), values
//!   under keys that look secret (`db_password`, `apiKey`: see
//!   `secrets.keys`), and values named by `secrets.sensitive` patterns;
//! - the value of any `key: value`, `key=value` or `"key": "value"` whose key
//!   looks secret, even when the value is not one we know (a component
//!   printing its own generated password);
//! - the password in a URL's user info (`https://user:***@host`).

use std::borrow::Cow;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::{Captures, Regex};
use serde_json::Value;

use crate::config::model::expand;
use crate::config::{Config, EnvName, KeyPattern, Report, values};
use crate::events::{Event, Subscriber};

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Values shorter than this are not masked where they appear as plain text:
/// masking `on` or `1` everywhere would garble every line and reveal little.
/// They are still masked after a secret-looking key.
pub const MIN_SECRET_LEN: usize = 4;

/// Masks secrets in outgoing text. Cheap to share: build one per run.
#[derive(Debug, Clone)]
pub struct Redactor {
    /// The secret-looking words, each split into its own words.
    keys: Vec<Vec<String>>,
    /// Every known secret value, longest first.
    secrets: Vec<String>,
    /// Finds any of `secrets`.
    finder: Option<AhoCorasick>,
}

impl Redactor {
    /// A redactor that treats keys containing one of `key_words` as secret
    /// and knows no secret values yet.
    pub fn new<S: AsRef<str>>(key_words: &[S]) -> Redactor {
        Redactor {
            keys: key_words
                .iter()
                .map(|k| words(k.as_ref()))
                .filter(|w| !w.is_empty())
                .collect(),
            secrets: Vec::new(),
            finder: None,
        }
    }

    /// The redactor of a run in `env`: the configured key words, the secret
    /// values of every component's values file there, the secret-looking
    /// variables components are given (see [`Redactor::add_variables`]),
    /// and `tokens`.
    pub fn for_environment(
        config: &Config,
        env: &EnvName,
        tokens: &[&str],
    ) -> Result<Redactor, Report> {
        Ok(Redactor::for_values(
            config,
            env,
            &values::load_all(config, env)?,
            tokens,
        ))
    }

    /// [`Redactor::for_environment`] with the environment's values already
    /// loaded (in the config's component order).
    pub fn for_values(
        config: &Config,
        env: &EnvName,
        loaded: &[Value],
        tokens: &[&str],
    ) -> Redactor {
        let mut redactor = Redactor::new(&config.secrets.keys);
        redactor.add_loaded(config, loaded);
        // Components' own secret-looking variables as each cloud of `env`
        // gets them (only those are filled in: most are not).
        let clouds = config
            .environments
            .get(env)
            .map_or(&[][..], |e| e.clouds.as_slice());
        let own = config.components.iter().flat_map(|c| {
            c.env
                .iter()
                .filter(|(name, _)| redactor.key_looks_secret(name))
                .flat_map(|(name, value)| {
                    clouds
                        .iter()
                        .map(|cloud| (name.clone(), expand(value, env, cloud)))
                })
        });
        let inherited = std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        });
        let variables: Vec<(String, String)> = own.chain(inherited).collect();
        redactor.add_variables(variables.iter().map(|(n, v)| (n, v)));
        redactor.add_secrets(tokens.iter().map(|t| t.to_string()));
        redactor
    }

    /// Adds the values of the secret-looking ones among `variables` (name
    /// and value): components inherit this process's environment, where
    /// CI hands cloud credentials to a job (`AWS_SECRET_ACCESS_KEY`,
    /// `ARM_CLIENT_SECRET`), and get their own `env`. A script that echoes
    /// one, or a tool that prints it in an error, must not put it in a log
    /// or an issue. Flags and short numbers (`TF_VAR_rotate_keys=true`, a
    /// port) are left out: they are no secret, and masking them would
    /// garble every line. A number of six characters or more (a PIN, a
    /// numeric key) is masked.
    pub fn add_variables<'v>(
        &mut self,
        variables: impl IntoIterator<Item = (&'v String, &'v String)>,
    ) {
        let found: Vec<String> = variables
            .into_iter()
            .filter(|(name, value)| self.key_looks_secret(name) && !says_nothing(value))
            .map(|(_, value)| value.clone())
            .collect();
        self.add_secrets(found);
    }

    /// Adds the secret values of every component's values file in `env`.
    pub fn add_environment(&mut self, config: &Config, env: &EnvName) -> Result<(), Report> {
        let loaded = values::load_all(config, env)?;
        self.add_loaded(config, &loaded);
        Ok(())
    }

    /// Adds the secret values of every component's values, as
    /// [`values::load_all`] gives them.
    pub fn add_loaded(&mut self, config: &Config, loaded: &[Value]) {
        self.add_values(
            config
                .components
                .iter()
                .zip(loaded)
                .map(|(c, v)| (c.name.as_str(), v)),
            &config.secrets.sensitive,
        );
    }

    /// Adds the secret values of components' values (component name and
    /// values): everything under a secret-looking key or a path a
    /// `sensitive` pattern names.
    pub fn add_values<'v>(
        &mut self,
        values: impl IntoIterator<Item = (&'v str, &'v Value)>,
        sensitive: &[KeyPattern],
    ) {
        let mut found = Vec::new();
        for (component, values) in values {
            let prefix = [component.to_string()];
            self.collect(
                values,
                &prefix,
                &mut Vec::new(),
                false,
                sensitive,
                &mut found,
            );
        }
        self.add_secrets(found);
    }

    /// Adds secret values to mask wherever they appear.
    pub fn add_secrets<I: IntoIterator<Item = String>>(&mut self, values: I) {
        let before = self.secrets.len();
        for value in values {
            for form in forms(&value) {
                if form.chars().count() >= MIN_SECRET_LEN && !self.secrets.contains(&form) {
                    self.secrets.push(form);
                }
            }
        }
        if self.secrets.len() == before {
            return; // the matcher already knows them all
        }
        // Longest first, so a secret that contains another is masked whole.
        self.secrets
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.finder = if self.secrets.is_empty() {
            None
        } else {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&self.secrets)
                .ok()
        };
    }

    /// Every known secret value, in each form it may take in text.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.secrets.iter().map(String::as_str)
    }

    /// Whether a key name looks secret: one of the configured words is a
    /// whole word (or run of words) of it. Only the last dotted part counts,
    /// so a resource address like `aws_kms_key.main` is not a secret key.
    pub fn key_looks_secret(&self, key: &str) -> bool {
        let last = key.rsplit('.').next().unwrap_or(key);
        let name = words(last);
        self.keys
            .iter()
            .any(|k| name.windows(k.len()).any(|w| w == k.as_slice()))
    }

    /// The text with every secret masked.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        if let Some(finder) = &self.finder {
            if finder.is_match(text) {
                out = Cow::Owned(finder.replace_all(text, &vec![MASK; self.secrets.len()]));
            }
        }
        if out.contains(['=', ':']) {
            if let Cow::Owned(masked) = pairs().replace_all(&out, |c: &Captures<'_>| {
                let key = c["key"].trim_matches(['"', '\'']);
                if self.key_looks_secret(key) && &c["value"] != MASK {
                    let value = &c["value"];
                    let quote = match value.chars().next() {
                        Some(q @ ('"' | '\'')) if value.len() > 1 => q.to_string(),
                        _ => String::new(),
                    };
                    format!("{}{}{quote}{MASK}{quote}", &c["key"], &c["sep"])
                } else {
                    c[0].to_string()
                }
            }) {
                out = Cow::Owned(masked);
            }
        }
        if out.contains("://") {
            if let Cow::Owned(masked) =
                userinfo().replace_all(&out, |c: &Captures<'_>| format!("{}{MASK}@", &c["head"]))
            {
                out = Cow::Owned(masked);
            }
        }
        out
    }

    /// Masks a JSON value in place: every string is redacted, and the value
    /// of every secret-looking key becomes `***` whatever it was.
    pub fn redact_json(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if let Cow::Owned(masked) = self.redact(s) {
                    *s = masked;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    if self.key_looks_secret(key) && !v.is_null() {
                        *v = Value::String(MASK.to_string());
                    } else {
                        self.redact_json(v);
                    }
                }
            }
            _ => {}
        }
    }

    /// Collects the secret leaves of a values document: everything under a
    /// secret-looking key or a path a `sensitive` pattern names. A pattern
    /// matches the path inside the file, or the path with the component's
    /// name in front (`clusters.admin.token`).
    fn collect(
        &self,
        value: &Value,
        component: &[String],
        path: &mut Vec<String>,
        secret: bool,
        sensitive: &[KeyPattern],
        out: &mut Vec<String>,
    ) {
        let secret = secret
            || path.last().is_some_and(|k| self.key_looks_secret(k))
            || (!path.is_empty()
                && sensitive.iter().any(|p| {
                    p.matches(path)
                        || p.matches(&component.iter().chain(path.iter()).collect::<Vec<_>>())
                }));
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    path.push(k.clone());
                    self.collect(v, component, path, secret, sensitive, out);
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    path.push(i.to_string());
                    self.collect(v, component, path, secret, sensitive, out);
                    path.pop();
                }
            }
            Value::String(s) if secret => out.push(s.clone()),
            Value::Number(n) if secret => out.push(n.to_string()),
            _ => {}
        }
    }
}

/// The forms a secret may take in text: as is, each of its lines (a PEM key
/// is printed line by line), and escaped as inside a JSON string.
fn forms(value: &str) -> Vec<String> {
    let mut out = vec![value.to_string()];
    if value.contains('\n') {
        out.extend(
            value
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
    }
    if let Ok(quoted) = serde_json::to_string(value) {
        let escaped = &quoted[1..quoted.len() - 1];
        if escaped != value {
            out.push(escaped.to_string());
        }
    }
    out
}

/// Numbers shorter than this, in a variable with a secret-looking name,
/// are settings (a port, a TTL, a count of days); longer ones may be a PIN
/// or a numeric key.
const SETTING_DIGITS: usize = 6;

/// Whether `value` is a flag or a short number, which a variable with a
/// secret-looking name may hold without being a secret.
fn says_nothing(value: &str) -> bool {
    let value = value.trim();
    const FLAGS: [&str; 10] = [
        "true", "false", "yes", "no", "on", "off", "null", "none", "enabled", "disabled",
    ];
    FLAGS.iter().any(|f| value.eq_ignore_ascii_case(f))
        || (value.len() < SETTING_DIGITS
            && value
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == '-'))
}

/// The lowercase words of a key name, split on `_`, `-`, `.`, spaces,
/// camelCase and letter/digit boundaries: `dbPassword` → `db`, `password`;
/// `APIKey2` → `api`, `key`, `2`.
pub fn words(name: &str) -> Vec<String> {
    crate::config::keypath::split_words(name)
        .map(str::to_lowercase)
        .collect()
}

/// `key: value`, `key=value`, `"key": "value"`: a key, a separator and one
/// value (quoted, or up to the next space or delimiter).
fn pairs() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r#"(?P<key>["']?[A-Za-z_][A-Za-z0-9_.\-]*["']?)(?P<sep>[ \t]*[:=][ \t]*)(?P<value>"(?:[^"\\]|\\.)*"|'[^']*'|[^\s,;&"'<>]+)"#,
        )
        .expect("the pair pattern is valid")
    })
}

/// A URL with a password in it: `scheme://user:password@`.
fn userinfo() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]+:)[^/\s@]+@")
            .expect("the URL pattern is valid")
    })
}

/// A subscriber that passes every event on to others with its text
/// redacted (output lines, errors, the failure tail, component outputs), so
/// what prints, writes logs or records state never sees a secret. Each event
/// is redacted once, however many subscribers it goes to.
pub struct Redacting<'a> {
    redactor: &'a Redactor,
    inner: Vec<&'a mut dyn Subscriber>,
}

impl<'a> Redacting<'a> {
    /// Wraps `inner`.
    pub fn new(redactor: &'a Redactor, inner: Vec<&'a mut dyn Subscriber>) -> Redacting<'a> {
        Redacting { redactor, inner }
    }

    fn send(&mut self, event: &Event) {
        for s in self.inner.iter_mut() {
            s.on_event(event);
        }
    }
}

impl Subscriber for Redacting<'_> {
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::Line {
                target,
                stream,
                text,
            } => match self.redactor.redact(text) {
                Cow::Borrowed(_) => self.send(event),
                Cow::Owned(text) => self.send(&Event::Line {
                    target: target.clone(),
                    stream: *stream,
                    text,
                }),
            },
            Event::Step { target, command } => match self.redactor.redact(command) {
                Cow::Borrowed(_) => self.send(event),
                Cow::Owned(command) => self.send(&Event::Step {
                    target: target.clone(),
                    command,
                }),
            },
            // Most records hold nothing to mask, and go on without a copy.
            Event::Finished(f) if self.redactor.leaves_alone(f) => self.send(event),
            Event::Finished(f) => {
                let mut f = f.clone();
                self.redactor.redact_finished(&mut f);
                self.send(&Event::Finished(f));
            }
            other => self.send(other),
        }
    }

    fn flush(&mut self) {
        for subscriber in &mut self.inner {
            subscriber.flush();
        }
    }
}

impl Redactor {
    /// Whether [`Redactor::redact_finished`] would leave `f` as it is: no
    /// outputs, and nothing to mask in its error and last lines.
    fn leaves_alone(&self, f: &crate::events::Finished) -> bool {
        let untouched = |text: &str| matches!(self.redact(text), Cow::Borrowed(_));
        f.outputs.is_empty()
            && f.error.as_deref().is_none_or(untouched)
            && f.tail.iter().all(|line| untouched(line))
    }

    /// Masks what a finished component carries: its error, its last lines
    /// and its outputs.
    pub fn redact_finished(&self, f: &mut crate::events::Finished) {
        if let Some(error) = &mut f.error {
            if let Cow::Owned(masked) = self.redact(error) {
                *error = masked;
            }
        }
        for line in &mut f.tail {
            if let Cow::Owned(masked) = self.redact(line) {
                *line = masked;
            }
        }
        let mut outputs = Value::Object(std::mem::take(&mut f.outputs));
        self.redact_json(&mut outputs);
        if let Value::Object(map) = outputs {
            f.outputs = map;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> Redactor {
        Redactor::new(&crate::config::DEFAULT_SECRET_KEYS)
    }

    /// Keeps what it is sent.
    struct Kept(Vec<Event>);

    impl Subscriber for Kept {
        fn on_event(&mut self, event: &Event) {
            self.0.push(event.clone());
        }
    }

    #[test]
    fn finished_records_reach_subscribers_masked_and_only_when_needed() {
        use crate::config::{CloudName, ComponentName};
        use crate::events::{Finished, Status, Target};
        let mut r = default();
        r.add_secrets(["hunter2hunter2".to_string()]);
        let finished = |error: &str, tail: &[&str], outputs: Value| {
            Event::Finished(Box::new(Finished {
                target: Target {
                    cloud: CloudName::parse("aws").unwrap(),
                    component: ComponentName::parse("db").unwrap(),
                },
                action: crate::plan::Action::Create,
                status: Status::Failed,
                attempts: 1,
                started_at: None,
                finished_at: std::time::SystemTime::UNIX_EPOCH,
                error: Some(error.to_string()),
                fingerprint: "sha256:0".to_string(),
                outputs: outputs.as_object().cloned().unwrap_or_default(),
                tail: tail.iter().map(|l| l.to_string()).collect(),
            }))
        };
        let plain = finished("exited with code 1", &["no route"], Value::Null);
        let secret_error = finished("login hunter2hunter2 refused", &[], Value::Null);
        let secret_tail = finished("exited", &["ok", "pw=hunter2hunter2"], Value::Null);
        let secret_output = finished(
            "exited",
            &[],
            serde_json::json!({"password": "x", "url": "u"}),
        );
        let mut kept = Kept(Vec::new());
        {
            let mut redacting = Redacting::new(&r, vec![&mut kept]);
            for e in [&plain, &secret_error, &secret_tail, &secret_output] {
                redacting.on_event(e);
            }
        }
        let got: Vec<&Finished> = kept
            .0
            .iter()
            .map(|e| match e {
                Event::Finished(f) => f.as_ref(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got[0].error.as_deref(), Some("exited with code 1"));
        assert_eq!(got[0].tail, ["no route"]);
        for f in &got[1..] {
            let text = format!("{:?} {:?} {:?}", f.error, f.tail, f.outputs);
            assert!(!text.contains("hunter2"), "{text}");
        }
        assert_ne!(
            got[3].outputs["password"], "x",
            "a secret-looking key is masked"
        );
        assert_eq!(got[3].outputs["url"], "u");
    }

    #[test]
    fn key_words_match_whole_words_of_the_name() {
        let r = default();
        for key in [
            "api_key",
            "dbPassword",
            "APIKey",
            "db-password",
            "GITHUB_TOKEN",
            "client.secret",
            "password2",
            "TF_VAR_db_password",
        ] {
            assert!(r.key_looks_secret(key), "{key}");
        }
        for key in [
            "keys",
            "monkey",
            "keyboard",
            "tokenizer",
            "aws_kms_key.main",
            "region",
        ] {
            assert!(!r.key_looks_secret(key), "{key}");
        }
    }

    #[test]
    fn configured_words_replace_the_default_and_may_span_words() {
        let r = Redactor::new(&["private_key", "pin"]);
        assert!(r.key_looks_secret("sshPrivateKey"));
        assert!(r.key_looks_secret("card_pin"));
        assert!(!r.key_looks_secret("api_key"));
        assert!(!r.key_looks_secret("password"));
    }

    #[test]
    fn known_secrets_are_masked_everywhere_longest_first() {
        let mut r = default();
        r.add_secrets(["hunter2-long".to_string(), "hunter2".to_string()]);
        assert_eq!(
            r.redact("a hunter2-long b hunter2 c"),
            "a *** b *** c".to_string()
        );
    }

    #[test]
    fn the_values_of_secret_looking_variables_are_masked_but_flags_and_short_numbers() {
        let mut r = default();
        let vars: Vec<(String, String)> = [
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG"),
            ("ARM_CLIENT_SECRET", "s3cr3t~value"),
            ("VAULT_TOKEN", "hvs.CAESIJ"),
            ("TF_VAR_rotate_keys", "true"),
            ("API_KEY_PORT", "8443"),
            ("TOKEN_TTL", "86400"),
            ("DB_PASSWORD", "20481977"),
            ("PATH", "/usr/local/bin:/usr/bin"),
            ("HOME", "/home/runner"),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        r.add_variables(vars.iter().map(|(n, v)| (n, v)));
        assert_eq!(
            r.redact(
                "key wJalrXUtnFEMI/K7MDENG, secret s3cr3t~value, vault hvs.CAESIJ, pin 20481977"
            ),
            "key ***, secret ***, vault ***, pin ***"
        );
        assert_eq!(
            r.redact(
                "rotate: true, port 8443, ttl 86400, in /home/runner, PATH=/usr/local/bin:/usr/bin"
            ),
            "rotate: true, port 8443, ttl 86400, in /home/runner, PATH=/usr/local/bin:/usr/bin"
        );
    }

    #[test]
    fn short_values_are_not_masked_as_plain_text() {
        let mut r = default();
        r.add_secrets(["on".to_string()]);
        assert_eq!(r.redact("turn it on"), "turn it on");
    }

    #[test]
    fn multi_line_and_json_escaped_secrets_are_masked() {
        let mut r = default();
        let pem = "-----BEGIN KEY-----\nMIIEabcdefg\n-----END KEY-----";
        r.add_secrets([pem.to_string(), "quo\"te-secret".to_string()]);
        assert_eq!(r.redact("line: MIIEabcdefg"), "line: ***");
        assert_eq!(r.redact(r#"{"x": "quo\"te-secret"}"#), r#"{"x": "***"}"#);
    }

    #[test]
    fn secret_looking_pairs_are_masked_in_every_usual_form() {
        let r = default();
        assert_eq!(r.redact("password: hunter2"), "password: ***");
        assert_eq!(r.redact("DB_PASSWORD=hunter2 next"), "DB_PASSWORD=*** next");
        assert_eq!(
            r.redact(r#"{"api_key": "abc\"def", "user": "bob"}"#),
            r#"{"api_key": "***", "user": "bob"}"#
        );
        assert_eq!(r.redact("token = 'abc'"), "token = '***'");
        assert_eq!(
            r.redact("aws_kms_key.main: Creation complete [id=1234]"),
            "aws_kms_key.main: Creation complete [id=1234]"
        );
        assert_eq!(r.redact("keys: 3"), "keys: 3");
    }

    #[test]
    fn url_passwords_are_masked() {
        let r = default();
        assert_eq!(
            r.redact("cloning https://x-access:ghp_abc123@github.com/o/r"),
            "cloning https://x-access:***@github.com/o/r"
        );
    }

    #[test]
    fn json_values_under_secret_keys_are_masked_whatever_they_are() {
        let r = default();
        let mut v =
            serde_json::json!({"db": {"password": 12345, "host": "db.local"}, "apiKey": ["a"]});
        r.redact_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"db": {"password": "***", "host": "db.local"}, "apiKey": "***"})
        );
    }

    #[test]
    fn values_under_secret_keys_and_sensitive_paths_are_collected() {
        let r = default();
        let doc = serde_json::json!({
            "db": {"password": "pw-123456", "host": "db.internal"},
            "gitCredential": {"user": "admin-user", "pass": "p4ssw0rd!"},
            "admin": {"login": "root-login"},
            "port": 5432
        });
        let sensitive = [
            KeyPattern::parse("**.login").unwrap(),
            KeyPattern::parse("app.port").unwrap(),
        ];
        let mut out = Vec::new();
        r.collect(
            &doc,
            &["app".to_string()],
            &mut Vec::new(),
            false,
            &sensitive,
            &mut out,
        );
        out.sort();
        assert_eq!(
            out,
            ["5432", "admin-user", "p4ssw0rd!", "pw-123456", "root-login"]
        );
    }

    #[test]
    fn words_split_like_people_write_names() {
        assert_eq!(words("dbPassword"), ["db", "password"]);
        assert_eq!(words("APIKey2"), ["api", "key", "2"]);
        assert_eq!(
            words("TF_VAR_db-password.x"),
            ["tf", "var", "db", "password", "x"]
        );
    }
}
