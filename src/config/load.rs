//! Turns the YAML tree of `orchestrator.yaml` into a [`ConfigFile`],
//! collecting every structural problem (unknown keys, wrong types, missing
//! keys, bad names) instead of stopping at the first.
//!
//! A field that cannot be read is reported and replaced by its default, so
//! one mistake does not hide the others or cascade into false ones.

use std::fmt;
use std::path::Path;

use indexmap::IndexMap;

use super::diagnostic::{Diagnostic, Report, did_you_mean};
use super::keypath::KeyPattern;
use super::model::{
    Commands, ComponentSpec, ConfigFile, DEFAULT_MAX_PARALLEL, EnvironmentSpec, IssuesSpec,
    Located, PromotionSpec, Runner, SecretsSpec, Settings, StateSpec, Template, Timeout,
};
use super::names::{CloudName, ComponentName, EnvName, NameError};
use crate::yaml::{Key, Node, Pos, Value};

/// The only format version this build reads.
pub const SUPPORTED_VERSION: i64 = 1;

/// Top-level keys with this prefix are extension fields, left alone: a
/// place for YAML anchors that components then merge in (`<<: *defaults`),
/// as in Docker Compose files.
pub const EXTENSION_PREFIX: &str = "x-";

/// Reads the document into a [`ConfigFile`]; problems go to `report`.
/// Returns `None` only when the document is not a mapping at all.
pub fn read(file: &Path, text: &str, root: &Node, report: &mut Report) -> Option<ConfigFile> {
    let mut w = Walker { file, text, report };
    let top = match &root.value {
        Value::Map(entries) => w.fields(entries, "", ConfigFile::KEYS),
        Value::Null => {
            w.error(
                root.pos,
                At::top(""),
                "the file is empty; it needs at least `version`, `components` and `environments`",
            );
            return None;
        }
        other => {
            let message = format!("the file must be a mapping of keys, found {}", other.kind());
            w.error(root.pos, At::top(""), message);
            return None;
        }
    };
    let version = match top.get("version") {
        None => {
            w.push(
                Diagnostic::new(file, root.pos, "version", "missing required key `version`").hint(
                    format!("add `version: {SUPPORTED_VERSION}` at the top of the file"),
                ),
            );
            0
        }
        Some((_, node)) => match node.value {
            Value::Int(SUPPORTED_VERSION) => SUPPORTED_VERSION as u32,
            Value::Int(v) => {
                w.push(
                    Diagnostic::new(file, node.pos, "version", format!("version {v} is not supported")).hint(
                        format!("this orchestrator reads version {SUPPORTED_VERSION}; upgrade it to read newer files"),
                    ),
                );
                0
            }
            _ => {
                w.expected(node, At::top("version"), "the integer 1");
                0
            }
        },
    };
    let defaults = top
        .get("defaults")
        .map(|(_, n)| w.defaults(n))
        .unwrap_or_default();
    let max_parallel = top
        .get("max_parallel")
        .and_then(|(_, n)| w.int(n, At::top("max_parallel"), 1))
        .unwrap_or(DEFAULT_MAX_PARALLEL);
    let components = match top.get("components") {
        Some((_, n)) => w.components(n),
        None => {
            w.error(
                root.pos,
                At::top("components"),
                "missing required key `components`",
            );
            IndexMap::new()
        }
    };
    let environments = match top.get("environments") {
        Some((_, n)) => w.environments(n),
        None => {
            w.error(
                root.pos,
                At::top("environments"),
                "missing required key `environments`",
            );
            IndexMap::new()
        }
    };
    let promotion = top
        .get("promotion")
        .map(|(_, n)| w.promotion(n))
        .unwrap_or_default();
    let state = top
        .get("state")
        .map(|(_, n)| w.state(n))
        .unwrap_or_default();
    let secrets = top
        .get("secrets")
        .map(|(_, n)| w.secrets(n))
        .unwrap_or_default();
    let issues = top
        .get("issues")
        .map(|(_, n)| w.issues(n))
        .unwrap_or_default();
    Some(ConfigFile {
        version,
        defaults,
        max_parallel,
        components,
        environments,
        promotion,
        state,
        secrets,
        issues,
    })
}

/// A key's dotted path in two parts (`components.dns` + `path`), joined only
/// when a problem is reported: most keys are fine, and formatting every path
/// up front would cost more than reading the values.
#[derive(Debug, Clone, Copy)]
struct At<'a>(&'a str, &'a str);

impl At<'_> {
    fn top(key: &str) -> At<'_> {
        At("", key)
    }
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0.is_empty(), self.1.is_empty()) {
            (true, _) => f.write_str(self.1),
            (false, true) => f.write_str(self.0),
            (false, false) => write!(f, "{}.{}", self.0, self.1),
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    At(parent, key).to_string()
}

/// The recognised keys of one mapping, by name.
struct Fields<'n> {
    entries: Vec<(&'n Key<'n>, &'n Node<'n>)>,
}

impl<'n> Fields<'n> {
    fn get(&self, name: &str) -> Option<(&'n Key<'n>, &'n Node<'n>)> {
        self.entries.iter().find(|(k, _)| k.name == name).copied()
    }
}

struct Walker<'a> {
    file: &'a Path,
    /// The text the document was parsed from.
    text: &'a str,
    report: &'a mut Report,
}

impl Walker<'_> {
    fn push(&mut self, d: Diagnostic) {
        self.report.push(d);
    }

    fn error(&mut self, pos: Pos, at: At<'_>, message: impl Into<String>) {
        let d = Diagnostic::new(self.file, pos, at.to_string(), message);
        self.push(d);
    }

    fn expected(&mut self, node: &Node, at: At<'_>, what: &str) {
        let hint = match &node.value {
            Value::Int(_) | Value::Float(_) | Value::Bool(_) if what.contains("string") => {
                Some("quote the value to make it a string".to_string())
            }
            _ => None,
        };
        let message = format!("expected {what}, found {}", node.value.kind());
        self.push(Diagnostic::new(self.file, node.pos, at.to_string(), message).maybe_hint(hint));
    }

    /// The entries of a mapping whose keys are in `allowed`; others are reported.
    fn fields<'n>(
        &mut self,
        entries: &'n [(Key<'n>, Node<'n>)],
        path: &str,
        allowed: &[&str],
    ) -> Fields<'n> {
        let mut known = Vec::with_capacity(entries.len());
        for (key, node) in entries {
            if allowed.contains(&key.name.as_ref()) {
                known.push((key, node));
                continue;
            }
            if path.is_empty() && key.name.starts_with(EXTENSION_PREFIX) {
                continue;
            }
            let where_ = if path.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in `{path}`")
            };
            let hint = did_you_mean(&key.name, allowed.iter().copied())
                .unwrap_or_else(|| format!("valid keys here: {}", allowed.join(", ")));
            let message = format!("unknown key `{}` {where_}", key.name);
            self.push(
                Diagnostic::new(self.file, key.pos, join(path, &key.name), message).hint(hint),
            );
        }
        Fields { entries: known }
    }

    fn mapping<'n>(
        &mut self,
        node: &'n Node<'n>,
        path: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        match &node.value {
            Value::Map(entries) => Some(self.fields(entries, path, allowed)),
            Value::Null => Some(Fields {
                entries: Vec::new(),
            }),
            _ => {
                self.expected(node, At::top(path), "a mapping");
                None
            }
        }
    }

    fn string(&mut self, node: &Node, at: At<'_>) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.to_string()),
            _ => {
                self.expected(node, at, "a string");
                None
            }
        }
    }

    /// A scalar as text: environment variable values may be written as
    /// numbers or booleans. A number is its text as written (`1.10`, not
    /// the 1.1 YAML reads), since variables hold text; a boolean is `true`
    /// or `false`, however it is spelt.
    fn scalar_text(&mut self, node: &Node, at: At<'_>) -> Option<String> {
        if let (Value::Int(_) | Value::Float(_), Some(written)) =
            (&node.value, node.written(self.text))
        {
            return Some(written.to_string());
        }
        match &node.value {
            Value::Str(s) => Some(s.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => {
                self.expected(node, at, "a string, number or boolean");
                None
            }
        }
    }

    fn int(&mut self, node: &Node, at: At<'_>, min: i64) -> Option<u32> {
        match node.value {
            Value::Int(i) if i >= min && i <= i64::from(u32::MAX) => Some(i as u32),
            Value::Int(i) => {
                self.error(
                    node.pos,
                    at,
                    format!("{i} is out of range: the smallest value is {min}"),
                );
                None
            }
            _ => {
                self.expected(node, at, "an integer");
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, at: At<'_>) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            Value::Str(s) if matches!(s.as_ref(), "yes" | "no" | "on" | "off" | "y" | "n") => {
                let message = format!("expected true or false, found the string `{s}`");
                self.push(
                    Diagnostic::new(self.file, node.pos, at.to_string(), message)
                        .hint("YAML 1.2 reads only true and false as booleans"),
                );
                None
            }
            _ => {
                self.expected(node, at, "true or false");
                None
            }
        }
    }

    fn list<'n>(&mut self, node: &'n Node<'n>, at: At<'_>) -> Option<&'n [Node<'n>]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            Value::Null => Some(&[]),
            _ => {
                let message = format!("expected a list, found {}", node.value.kind());
                let d = Diagnostic::new(self.file, node.pos, at.to_string(), message);
                let d = if matches!(node.value, Value::Str(_)) {
                    d.hint("write a list: `[a, b]`")
                } else {
                    d
                };
                self.push(d);
                None
            }
        }
    }

    fn name<T>(
        &mut self,
        text: &str,
        pos: Pos,
        at: At<'_>,
        parse: fn(&str) -> Result<T, NameError>,
    ) -> Option<T> {
        match parse(text) {
            Ok(name) => Some(name),
            Err(e) => {
                let hint = e.suggestion.map(|s| format!("did you mean `{s}`?"));
                self.push(
                    Diagnostic::new(self.file, pos, at.to_string(), e.message).maybe_hint(hint),
                );
                None
            }
        }
    }

    fn names<T>(
        &mut self,
        node: &Node,
        at: At<'_>,
        parse: fn(&str) -> Result<T, NameError>,
    ) -> Vec<Located<T>> {
        let Some(items) = self.list(node, at) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| match &item.value {
                Value::Str(text) => self
                    .name(text, item.pos, at, parse)
                    .map(|n| Located::new(n, item.pos)),
                _ => {
                    self.expected(item, at, "a string");
                    None
                }
            })
            .collect()
    }

    fn runner(&mut self, node: &Node, at: At<'_>) -> Option<Runner> {
        let text = self.string(node, at)?;
        let found = Runner::ALL.into_iter().find(|r| r.as_str() == text);
        if found.is_none() {
            let names = Runner::ALL.map(Runner::as_str);
            let hint = did_you_mean(&text, names)
                .unwrap_or_else(|| format!("runners: {}", names.join(", ")));
            let message = format!("unknown runner `{text}`");
            self.push(Diagnostic::new(self.file, node.pos, at.to_string(), message).hint(hint));
        }
        found
    }

    fn timeout(&mut self, node: &Node, at: At<'_>) -> Option<Timeout> {
        let text = match &node.value {
            Value::Int(i) => i.to_string(),
            _ => self.string(node, at)?,
        };
        Timeout::parse(&text)
            .map_err(|e| self.error(node.pos, at, e))
            .ok()
    }

    fn template(&mut self, node: &Node, at: At<'_>) -> Option<Template> {
        let Value::Str(text) = &node.value else {
            self.expected(node, at, "a string");
            return None;
        };
        if text.trim().is_empty() {
            self.error(node.pos, at, "must not be empty");
            return None;
        }
        Template::parse(text)
            .map_err(|e| self.error(node.pos, at, e))
            .ok()
    }

    /// A list of regular expressions, each compiled to check it.
    fn patterns(&mut self, node: &Node, at: At<'_>) -> Option<Vec<Located<String>>> {
        let items = self.list(node, at)?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some(text) = self.string(item, at) else {
                continue;
            };
            match regex::RegexBuilder::new(&text)
                .case_insensitive(true)
                .build()
            {
                Ok(_) => out.push(Located::new(text, item.pos)),
                Err(e) => {
                    let detail = e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim()
                        .trim_start_matches("error: ")
                        .to_string();
                    self.error(
                        item.pos,
                        at,
                        format!("`{text}` is not a valid regular expression: {detail}"),
                    );
                }
            }
        }
        Some(out)
    }

    fn env_vars(&mut self, node: &Node, at: At<'_>) -> IndexMap<String, String> {
        let entries = match &node.value {
            Value::Map(entries) => entries.as_slice(),
            Value::Null => &[],
            _ => {
                self.expected(node, at, "a mapping of variable names to values");
                return IndexMap::new();
            }
        };
        let parent = at.to_string();
        let mut vars = IndexMap::new();
        for (key, value) in entries {
            let var = At(&parent, &key.name);
            let valid = key
                .name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && key
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                self.error(
                    key.pos,
                    var,
                    format!("`{}` is not a valid environment variable name", key.name),
                );
                continue;
            }
            if key.name.starts_with("ORCHESTRATOR_") {
                self.push(
                    Diagnostic::new(
                        self.file,
                        key.pos,
                        var.to_string(),
                        format!("`{}` is reserved", key.name),
                    )
                    .hint(
                        "variables starting with ORCHESTRATOR_ are set by the orchestrator itself",
                    ),
                );
                continue;
            }
            // A value may name the environment and cloud (`AWS_PROFILE:
            // acme-{env}`), checked here and filled in when a step runs.
            if let Some(text) = self.scalar_text(value, var) {
                match Template::parse(&text) {
                    Ok(_) => {
                        vars.insert(key.name.to_string(), text);
                    }
                    Err(e) => self.error(value.pos, var, e),
                }
            }
        }
        vars
    }

    fn defaults(&mut self, node: &Node) -> Settings {
        match self.mapping(node, "defaults", Settings::KEYS) {
            Some(f) => self.settings(&f, "defaults"),
            None => Settings::default(),
        }
    }

    /// The [`Settings`] keys of a mapping (`defaults`, or a component).
    fn settings(&mut self, f: &Fields<'_>, path: &str) -> Settings {
        let at = |key| At(path, key);
        Settings {
            runner: f
                .get("runner")
                .and_then(|(_, n)| self.runner(n, at("runner"))),
            timeout: f
                .get("timeout")
                .and_then(|(_, n)| self.timeout(n, at("timeout"))),
            retries: f
                .get("retries")
                .and_then(|(_, n)| self.int(n, at("retries"), 0)),
            retry_delay: f
                .get("retry_delay")
                .and_then(|(_, n)| self.timeout(n, at("retry_delay"))),
            retry_on: f
                .get("retry_on")
                .and_then(|(_, n)| self.patterns(n, at("retry_on"))),
            env: f
                .get("env")
                .map(|(_, n)| self.env_vars(n, at("env")))
                .unwrap_or_default(),
            watch: f
                .get("watch")
                .map(|(_, n)| self.templates(n, at("watch")))
                .unwrap_or_default(),
        }
    }

    /// A list of templates, each with where it was written.
    fn templates(&mut self, node: &Node, at: At<'_>) -> Vec<Located<Template>> {
        let Some(items) = self.list(node, at) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| {
                let template = self.template(item, at)?;
                Some(Located::new(template, item.pos))
            })
            .collect()
    }

    /// The entries of a required, non-empty mapping from names to things.
    fn named_entries<'n>(
        &mut self,
        node: &'n Node<'n>,
        key: &str,
        things: &str,
    ) -> &'n [(Key<'n>, Node<'n>)] {
        match &node.value {
            Value::Map(entries) if !entries.is_empty() => entries,
            Value::Map(_) | Value::Null => {
                self.error(node.pos, At::top(key), format!("no {key} are defined"));
                &[]
            }
            _ => {
                self.expected(
                    node,
                    At::top(key),
                    &format!("a mapping of names to {things}"),
                );
                &[]
            }
        }
    }

    fn components(&mut self, node: &Node) -> IndexMap<ComponentName, ComponentSpec> {
        let entries = self.named_entries(node, "components", "components");
        let allowed = [ComponentSpec::OWN_KEYS, Settings::KEYS].concat();
        let mut out = IndexMap::with_capacity(entries.len());
        for (key, value) in entries {
            let at = At("components", &key.name);
            let Some(name) = self.name(&key.name, key.pos, at, ComponentName::parse) else {
                continue;
            };
            let spec = self.component(key.pos, value, &at.to_string(), &allowed);
            out.insert(name, spec);
        }
        out
    }

    fn component(&mut self, pos: Pos, node: &Node, path: &str, allowed: &[&str]) -> ComponentSpec {
        let mut spec = ComponentSpec {
            description: None,
            path: Located::new(Template::default(), Pos::default()),
            depends_on: Vec::new(),
            commands: None,
            settings: Settings::default(),
            verify: Vec::new(),
            pos,
        };
        let Some(f) = self.mapping(node, path, allowed) else {
            return spec;
        };
        let at = |key| At(path, key);
        match f.get("path") {
            Some((_, n)) => {
                if let Some(t) = self.template(n, at("path")) {
                    spec.path = Located::new(t, n.pos);
                }
            }
            None => {
                let name = path.trim_start_matches("components.");
                self.push(
                    Diagnostic::new(
                        self.file,
                        pos,
                        join(path, "path"),
                        format!("component `{name}` has no `path`"),
                    )
                    .hint(
                        "set `path:` to the component's directory, relative to the repository root",
                    ),
                );
            }
        }
        spec.description = f
            .get("description")
            .and_then(|(_, n)| self.string(n, at("description")));
        spec.depends_on = f
            .get("depends_on")
            .map(|(_, n)| self.names(n, at("depends_on"), ComponentName::parse))
            .unwrap_or_default();
        spec.commands = f.get("commands").and_then(|(_, n)| {
            let commands = join(path, "commands");
            let c = self.mapping(n, &commands, Commands::KEYS)?;
            let mut cmd = |action| {
                c.get(action)
                    .and_then(|(_, n)| self.template(n, At(&commands, action)))
            };
            Some(Located::new(
                Commands {
                    plan: cmd("plan"),
                    apply: cmd("apply"),
                    destroy: cmd("destroy"),
                },
                n.pos,
            ))
        });
        spec.settings = self.settings(&f, path);
        spec.verify = f
            .get("verify")
            .and_then(|(_, n)| self.list(n, at("verify")))
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| match item.to_json() {
                        serde_json::Value::Object(m) => Some(m),
                        _ => {
                            self.expected(item, at("verify"), "a mapping describing a check");
                            None
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        spec
    }

    fn environments(&mut self, node: &Node) -> IndexMap<EnvName, EnvironmentSpec> {
        let entries = self.named_entries(node, "environments", "environments");
        let mut out = IndexMap::with_capacity(entries.len());
        for (key, value) in entries {
            let path = join("environments", &key.name);
            let Some(name) = self.name(&key.name, key.pos, At::top(&path), EnvName::parse) else {
                continue;
            };
            let mut spec = EnvironmentSpec {
                clouds: Vec::new(),
                promote_from: None,
                protected: false,
                pos: key.pos,
            };
            if let Some(f) = self.mapping(value, &path, EnvironmentSpec::KEYS) {
                let at = |key| At(&path, key);
                match f.get("clouds") {
                    Some((_, n)) => {
                        spec.clouds = self.names(n, at("clouds"), CloudName::parse);
                        if matches!(&n.value, Value::Seq(items) if items.is_empty()) {
                            self.error(n.pos, at("clouds"), "list at least one cloud");
                        }
                    }
                    None => self.push(
                        Diagnostic::new(
                            self.file,
                            key.pos,
                            join(&path, "clouds"),
                            format!("environment `{name}` has no `clouds`"),
                        )
                        .hint("add e.g. `clouds: [aws]`"),
                    ),
                }
                spec.promote_from = f.get("promote_from").and_then(|(_, n)| {
                    let text = self.string(n, at("promote_from"))?;
                    self.name(&text, n.pos, at("promote_from"), EnvName::parse)
                        .map(|e| Located::new(e, n.pos))
                });
                spec.protected = f
                    .get("protected")
                    .and_then(|(_, n)| self.boolean(n, at("protected")))
                    .unwrap_or(false);
            }
            out.insert(name, spec);
        }
        out
    }

    fn promotion(&mut self, node: &Node) -> PromotionSpec {
        let Some(f) = self.mapping(node, "promotion", PromotionSpec::KEYS) else {
            return PromotionSpec::default();
        };
        let at = At("promotion", "keys");
        let keys = f
            .get("keys")
            .and_then(|(_, n)| self.list(n, at))
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| {
                        let text = self.string(item, at)?;
                        if let Err(e) = super::KeyPattern::parse(&text) {
                            self.error(item.pos, at, e.message);
                            return None;
                        }
                        Some(Located::new(text, item.pos))
                    })
                    .collect()
            })
            .unwrap_or_default();
        PromotionSpec { keys }
    }

    fn state(&mut self, node: &Node) -> StateSpec {
        let mut spec = StateSpec::default();
        let Some(f) = self.mapping(node, "state", StateSpec::KEYS) else {
            return spec;
        };
        if let Some((_, n)) = f.get("branch") {
            if let Some(text) = self.string(n, At("state", "branch")) {
                spec.branch = Located::new(text, n.pos);
            }
        }
        if let Some((_, n)) = f.get("dir") {
            if let Some(text) = self.string(n, At("state", "dir")) {
                spec.dir = Located::new(text, n.pos);
            }
        }
        if let Some((_, n)) = f.get("author") {
            if let Some(text) = self.string(n, At("state", "author")) {
                match super::model::parse_author(&text) {
                    Ok(_) => spec.author = Some(Located::new(text, n.pos)),
                    Err(e) => self.error(n.pos, At("state", "author"), e),
                }
            }
        }
        spec
    }

    /// A list of strings, each checked by `check` (which says what is wrong).
    fn checked_strings(
        &mut self,
        node: &Node,
        at: At<'_>,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> Option<Vec<Located<String>>> {
        let items = self.list(node, at)?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some(text) = self.string(item, at) else {
                continue;
            };
            match check(&text) {
                Ok(()) => out.push(Located::new(text, item.pos)),
                Err(e) => self.error(item.pos, at, e),
            }
        }
        Some(out)
    }

    fn secrets(&mut self, node: &Node) -> SecretsSpec {
        let Some(f) = self.mapping(node, "secrets", SecretsSpec::KEYS) else {
            return SecretsSpec::default();
        };
        let keys = f.get("keys").and_then(|(_, n)| {
            self.checked_strings(n, At("secrets", "keys"), |word| {
                let ok = !word.is_empty()
                    && word
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                    && word.chars().any(|c| c.is_ascii_alphanumeric());
                if ok {
                    Ok(())
                } else {
                    Err(format!(
                        "`{word}` is not a key word: use letters and digits, e.g. `password` or `api_key`"
                    ))
                }
            })
        });
        let sensitive = f
            .get("sensitive")
            .and_then(|(_, n)| {
                self.checked_strings(n, At("secrets", "sensitive"), |p| {
                    KeyPattern::parse(p).map(|_| ()).map_err(|e| e.to_string())
                })
            })
            .unwrap_or_default();
        SecretsSpec { keys, sensitive }
    }

    fn issues(&mut self, node: &Node) -> IssuesSpec {
        let Some(f) = self.mapping(node, "issues", IssuesSpec::KEYS) else {
            return IssuesSpec::default();
        };
        let labels = f.get("labels").and_then(|(_, n)| {
            let at = At("issues", "labels");
            let labels = self.checked_strings(n, at, |label| {
                // Labels are sent comma-separated when issues are listed.
                if label.trim().is_empty() || label.contains(',') || label.chars().count() > 50 {
                    Err(format!(
                        "`{label}` is not a usable label: GitHub labels are 1 to 50 characters, and these may not contain commas"
                    ))
                } else {
                    Ok(())
                }
            })?;
            if matches!(&n.value, Value::Seq(items) if items.is_empty()) || matches!(n.value, Value::Null) {
                self.push(
                    Diagnostic::new(self.file, n.pos, at.to_string(), "list at least one label")
                        .hint("failure issues are found by their first label; the default is `[orchestrator]`"),
                );
            }
            Some(labels)
        });
        let assignees = f
            .get("assignees")
            .and_then(|(_, n)| {
                self.checked_strings(n, At("issues", "assignees"), |login| {
                    let ok = (1..=39).contains(&login.len())
                        && login.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !login.starts_with('-')
                        && !login.ends_with('-');
                    if ok {
                        Ok(())
                    } else {
                        Err(format!("`{login}` is not a GitHub user name"))
                    }
                })
            })
            .unwrap_or_default();
        IssuesSpec { labels, assignees }
    }
}
