//! Turns the YAML tree of `orchestrator.yaml` into a [`ConfigFile`],
//! collecting every structural problem (unknown keys, wrong types, missing
//! keys, bad names) instead of stopping at the first.
//!
//! A field that cannot be read is reported and replaced by its default, so
//! one mistake does not hide the others or cascade into false ones.

use std::path::Path;

use indexmap::IndexMap;

use super::diagnostic::{Diagnostic, Report, did_you_mean};
use super::model::{
    Commands, ComponentSpec, ConfigFile, DEFAULT_MAX_PARALLEL, Defaults, EnvironmentSpec, Located,
    PromotionSpec, Runner, StateSpec, Template, Timeout,
};
use super::names::{CloudName, ComponentName, EnvName, NameError};
use crate::yaml::{Key, Node, Pos, Value};

/// The only format version this build reads.
pub const SUPPORTED_VERSION: i64 = 1;

/// Reads the document into a [`ConfigFile`]; problems go to `report`.
/// Returns `None` only when the document is not a mapping at all.
pub fn read(file: &Path, root: &Node, report: &mut Report) -> Option<ConfigFile> {
    let mut w = Walker { file, report };
    let top = match &root.value {
        Value::Map(entries) => w.fields(entries, "", ConfigFile::KEYS),
        Value::Null => {
            w.error(
                root.pos,
                "",
                "the file is empty; it needs at least `version`, `components` and `environments`",
            );
            return None;
        }
        other => {
            w.error(
                root.pos,
                "",
                format!("the file must be a mapping of keys, found {}", other.kind()),
            );
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
                    Diagnostic::new(file, node.pos, "version", format!("version {v} is not supported"))
                        .hint(format!("this orchestrator reads version {SUPPORTED_VERSION}; upgrade it to read newer files")),
                );
                0
            }
            _ => {
                w.expected(node, "version", "the integer 1");
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
        .and_then(|(_, n)| w.int(n, "max_parallel", 1))
        .unwrap_or(DEFAULT_MAX_PARALLEL);
    let components = match top.get("components") {
        Some((_, n)) => w.components(n),
        None => {
            w.error(root.pos, "components", "missing required key `components`");
            IndexMap::new()
        }
    };
    let environments = match top.get("environments") {
        Some((_, n)) => w.environments(n),
        None => {
            w.error(
                root.pos,
                "environments",
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
    Some(ConfigFile {
        version,
        defaults,
        max_parallel,
        components,
        environments,
        promotion,
        state,
    })
}

/// The recognised keys of one mapping, by name.
struct Fields<'n> {
    entries: Vec<(&'n Key, &'n Node)>,
}

impl<'n> Fields<'n> {
    fn get(&self, name: &str) -> Option<(&'n Key, &'n Node)> {
        self.entries.iter().find(|(k, _)| k.name == name).copied()
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

struct Walker<'a> {
    file: &'a Path,
    report: &'a mut Report,
}

impl Walker<'_> {
    fn push(&mut self, d: Diagnostic) {
        self.report.push(d);
    }

    fn error(&mut self, pos: Pos, key: &str, message: impl Into<String>) {
        let d = Diagnostic::new(self.file, pos, key, message);
        self.push(d);
    }

    fn expected(&mut self, node: &Node, key: &str, what: &str) {
        let found = node.value.kind();
        let hint = match &node.value {
            Value::Int(_) | Value::Float(_) | Value::Bool(_) if what.contains("string") => {
                Some("quote the value to make it a string".to_string())
            }
            _ => None,
        };
        let d = Diagnostic::new(
            self.file,
            node.pos,
            key,
            format!("expected {what}, found {found}"),
        )
        .maybe_hint(hint);
        self.push(d);
    }

    /// The entries of a mapping whose keys are in `allowed`; others are reported.
    fn fields<'n>(
        &mut self,
        entries: &'n [(Key, Node)],
        path: &str,
        allowed: &[&str],
    ) -> Fields<'n> {
        let mut known = Vec::with_capacity(entries.len());
        for (key, node) in entries {
            if allowed.contains(&key.name.as_str()) {
                known.push((key, node));
            } else {
                let where_ = if path.is_empty() {
                    "at the top level".to_string()
                } else {
                    format!("in `{path}`")
                };
                let hint = did_you_mean(&key.name, allowed.iter().copied())
                    .unwrap_or_else(|| format!("valid keys here: {}", allowed.join(", ")));
                self.push(
                    Diagnostic::new(
                        self.file,
                        key.pos,
                        join(path, &key.name),
                        format!("unknown key `{}` {where_}", key.name),
                    )
                    .hint(hint),
                );
            }
        }
        Fields { entries: known }
    }

    fn mapping<'n>(&mut self, node: &'n Node, path: &str, allowed: &[&str]) -> Option<Fields<'n>> {
        match &node.value {
            Value::Map(entries) => Some(self.fields(entries, path, allowed)),
            Value::Null => Some(Fields {
                entries: Vec::new(),
            }),
            _ => {
                self.expected(node, path, "a mapping");
                None
            }
        }
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            _ => {
                self.expected(node, path, "a string");
                None
            }
        }
    }

    /// A scalar as text: environment variable values may be written as numbers or booleans.
    fn scalar_text(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => {
                self.expected(node, path, "a string, number or boolean");
                None
            }
        }
    }

    fn int(&mut self, node: &Node, path: &str, min: i64) -> Option<u32> {
        match node.value {
            Value::Int(i) if i >= min && i <= i64::from(u32::MAX) => Some(i as u32),
            Value::Int(i) => {
                self.error(
                    node.pos,
                    path,
                    format!("{i} is out of range: the smallest value is {min}"),
                );
                None
            }
            _ => {
                self.expected(node, path, "an integer");
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            Value::Str(s) if matches!(s.as_str(), "yes" | "no" | "on" | "off" | "y" | "n") => {
                let d = Diagnostic::new(
                    self.file,
                    node.pos,
                    path,
                    format!("expected true or false, found the string `{s}`"),
                )
                .hint("YAML 1.2 reads only true and false as booleans");
                self.push(d);
                None
            }
            _ => {
                self.expected(node, path, "true or false");
                None
            }
        }
    }

    fn list<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            Value::Null => Some(&[]),
            _ => {
                let d = Diagnostic::new(
                    self.file,
                    node.pos,
                    path,
                    format!("expected a list, found {}", node.value.kind()),
                );
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
        path: &str,
        parse: fn(&str) -> Result<T, NameError>,
    ) -> Option<T> {
        match parse(text) {
            Ok(name) => Some(name),
            Err(e) => {
                let hint = e.suggestion.map(|s| format!("did you mean `{s}`?"));
                self.push(Diagnostic::new(self.file, pos, path, e.message).maybe_hint(hint));
                None
            }
        }
    }

    fn names<T>(
        &mut self,
        node: &Node,
        path: &str,
        parse: fn(&str) -> Result<T, NameError>,
    ) -> Vec<Located<T>> {
        let Some(items) = self.list(node, path) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| {
                let text = self.string(item, path)?;
                self.name(&text, item.pos, path, parse)
                    .map(|n| Located::new(n, item.pos))
            })
            .collect()
    }

    fn runner(&mut self, node: &Node, path: &str) -> Option<Runner> {
        let text = self.string(node, path)?;
        let found = Runner::ALL.into_iter().find(|r| r.as_str() == text);
        if found.is_none() {
            let names = Runner::ALL.map(Runner::as_str);
            let hint = did_you_mean(&text, names)
                .unwrap_or_else(|| format!("runners: {}", names.join(", ")));
            self.push(
                Diagnostic::new(
                    self.file,
                    node.pos,
                    path,
                    format!("unknown runner `{text}`"),
                )
                .hint(hint),
            );
        }
        found
    }

    fn timeout(&mut self, node: &Node, path: &str) -> Option<Timeout> {
        let text = match &node.value {
            Value::Int(i) => i.to_string(),
            _ => self.string(node, path)?,
        };
        Timeout::parse(&text)
            .map_err(|e| self.error(node.pos, path, e))
            .ok()
    }

    fn template(&mut self, node: &Node, path: &str) -> Option<Template> {
        let text = self.string(node, path)?;
        if text.trim().is_empty() {
            self.error(node.pos, path, "must not be empty");
            return None;
        }
        Template::parse(&text)
            .map_err(|e| self.error(node.pos, path, e))
            .ok()
    }

    fn env_vars(&mut self, node: &Node, path: &str) -> IndexMap<String, String> {
        let fields = match &node.value {
            Value::Map(entries) => entries.as_slice(),
            Value::Null => &[],
            _ => {
                self.expected(node, path, "a mapping of variable names to values");
                return IndexMap::new();
            }
        };
        let mut vars = IndexMap::new();
        for (key, value) in fields {
            let key_path = join(path, &key.name);
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
                    &key_path,
                    format!("`{}` is not a valid environment variable name", key.name),
                );
                continue;
            }
            if key.name.starts_with("ORCHESTRATOR_") {
                let d = Diagnostic::new(
                    self.file,
                    key.pos,
                    &key_path,
                    format!("`{}` is reserved", key.name),
                )
                .hint("variables starting with ORCHESTRATOR_ are set by the orchestrator itself");
                self.push(d);
                continue;
            }
            if let Some(text) = self.scalar_text(value, &key_path) {
                vars.insert(key.name.clone(), text);
            }
        }
        vars
    }

    fn defaults(&mut self, node: &Node) -> Defaults {
        let Some(f) = self.mapping(node, "defaults", Defaults::KEYS) else {
            return Defaults::default();
        };
        Defaults {
            runner: f
                .get("runner")
                .and_then(|(_, n)| self.runner(n, "defaults.runner")),
            timeout: f
                .get("timeout")
                .and_then(|(_, n)| self.timeout(n, "defaults.timeout")),
            retries: f
                .get("retries")
                .and_then(|(_, n)| self.int(n, "defaults.retries", 0)),
            env: f
                .get("env")
                .map(|(_, n)| self.env_vars(n, "defaults.env"))
                .unwrap_or_default(),
        }
    }

    /// The entries of a required, non-empty mapping from names to things.
    fn named_entries<'n>(&mut self, node: &'n Node, key: &str, things: &str) -> &'n [(Key, Node)] {
        match &node.value {
            Value::Map(entries) if !entries.is_empty() => entries,
            Value::Map(_) | Value::Null => {
                self.error(node.pos, key, format!("no {key} are defined"));
                &[]
            }
            _ => {
                self.expected(node, key, &format!("a mapping of names to {things}"));
                &[]
            }
        }
    }

    fn components(&mut self, node: &Node) -> IndexMap<ComponentName, ComponentSpec> {
        let mut out = IndexMap::new();
        let entries = self.named_entries(node, "components", "components");
        for (key, value) in entries {
            let path = join("components", &key.name);
            let Some(name) = self.name(&key.name, key.pos, &path, ComponentName::parse) else {
                continue;
            };
            let spec = self.component(key.pos, value, &path);
            out.insert(name, spec);
        }
        out
    }

    fn component(&mut self, pos: Pos, node: &Node, path: &str) -> ComponentSpec {
        let mut spec = ComponentSpec {
            description: None,
            path: Located::new(Template::default(), Pos::default()),
            runner: None,
            depends_on: Vec::new(),
            commands: None,
            timeout: None,
            retries: None,
            env: IndexMap::new(),
            verify: Vec::new(),
            pos,
        };
        let Some(f) = self.mapping(node, path, ComponentSpec::KEYS) else {
            return spec;
        };
        let key = |k: &str| join(path, k);
        match f.get("path") {
            Some((_, n)) => {
                if let Some(t) = self.template(n, &key("path")) {
                    spec.path = Located::new(t, n.pos);
                }
            }
            None => self.push(
                Diagnostic::new(
                    self.file,
                    pos,
                    key("path"),
                    format!(
                        "component `{}` has no `path`",
                        path.trim_start_matches("components.")
                    ),
                )
                .hint("set `path:` to the component's directory, relative to the repository root"),
            ),
        }
        spec.description = f
            .get("description")
            .and_then(|(_, n)| self.string(n, &key("description")));
        spec.runner = f.get("runner").and_then(|(_, n)| {
            self.runner(n, &key("runner"))
                .map(|r| Located::new(r, n.pos))
        });
        spec.depends_on = f
            .get("depends_on")
            .map(|(_, n)| self.names(n, &key("depends_on"), ComponentName::parse))
            .unwrap_or_default();
        spec.commands = f.get("commands").and_then(|(_, n)| {
            let cpath = key("commands");
            let c = self.mapping(n, &cpath, Commands::KEYS)?;
            let mut cmd = |action: &str| {
                c.get(action)
                    .and_then(|(_, n)| self.template(n, &join(&cpath, action)))
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
        spec.timeout = f
            .get("timeout")
            .and_then(|(_, n)| self.timeout(n, &key("timeout")));
        spec.retries = f
            .get("retries")
            .and_then(|(_, n)| self.int(n, &key("retries"), 0));
        spec.env = f
            .get("env")
            .map(|(_, n)| self.env_vars(n, &key("env")))
            .unwrap_or_default();
        spec.verify = f
            .get("verify")
            .and_then(|(_, n)| self.list(n, &key("verify")))
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| match item.to_json() {
                        serde_json::Value::Object(m) => Some(m),
                        _ => {
                            self.expected(item, &key("verify"), "a mapping describing a check");
                            None
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        spec
    }

    fn environments(&mut self, node: &Node) -> IndexMap<EnvName, EnvironmentSpec> {
        let mut out = IndexMap::new();
        let entries = self.named_entries(node, "environments", "environments");
        for (key, value) in entries {
            let path = join("environments", &key.name);
            let Some(name) = self.name(&key.name, key.pos, &path, EnvName::parse) else {
                continue;
            };
            let mut spec = EnvironmentSpec {
                clouds: Vec::new(),
                promote_from: None,
                protected: false,
                pos: key.pos,
            };
            if let Some(f) = self.mapping(value, &path, EnvironmentSpec::KEYS) {
                match f.get("clouds") {
                    Some((_, n)) => {
                        spec.clouds = self.names(n, &join(&path, "clouds"), CloudName::parse);
                        if matches!(&n.value, Value::Seq(items) if items.is_empty()) {
                            self.error(n.pos, &join(&path, "clouds"), "list at least one cloud");
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
                    let p = join(&path, "promote_from");
                    let text = self.string(n, &p)?;
                    self.name(&text, n.pos, &p, EnvName::parse)
                        .map(|e| Located::new(e, n.pos))
                });
                spec.protected = f
                    .get("protected")
                    .and_then(|(_, n)| self.boolean(n, &join(&path, "protected")))
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
        let keys = f
            .get("keys")
            .and_then(|(_, n)| self.list(n, "promotion.keys"))
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| {
                        let text = self.string(item, "promotion.keys")?;
                        if text.trim().is_empty() || text.contains(char::is_whitespace) {
                            self.error(
                                item.pos,
                                "promotion.keys",
                                format!("`{text}` is not a key pattern"),
                            );
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
            if let Some(text) = self.string(n, "state.branch") {
                spec.branch = Located::new(text, n.pos);
            }
        }
        if let Some((_, n)) = f.get("dir") {
            if let Some(text) = self.string(n, "state.dir") {
                spec.dir = Located::new(text, n.pos);
            }
        }
        spec
    }
}
