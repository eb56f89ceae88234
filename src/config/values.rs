//! The values handed to each component per environment:
//! `environments/<env>/<component>.yaml`.
//!
//! A missing file means the component takes no values. A file must hold a
//! mapping; a file or directory that matches no component or environment is
//! an error, because a misspelt file name would otherwise be silently
//! ignored and a deploy would run without its values.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::diagnostic::{Diagnostic, Report, did_you_mean};
use super::{ComponentName, Config, EnvName, parse_yaml, read_text};
use crate::yaml::{JsonLoss, Node, Pos, Value};

/// The directory, under the repository root, holding one folder per environment.
pub const VALUES_DIR: &str = "environments";

/// The values file of a component in an environment (which may not exist).
pub fn path(config: &Config, env: &EnvName, component: &ComponentName) -> PathBuf {
    config
        .root
        .join(VALUES_DIR)
        .join(env.as_str())
        .join(file_name(component))
}

/// Reads a component's values for an environment as a JSON object; `{}` when
/// there is no file.
pub fn load(
    config: &Config,
    env: &EnvName,
    component: &ComponentName,
) -> Result<serde_json::Value, Report> {
    let file = path(config, env, component);
    if !file.exists() {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    let mut report = Report::default();
    let value = read_mapping(&file, &mut report);
    match value {
        Some((v, _)) if report.is_empty() => Ok(v),
        _ => Err(report),
    }
}

/// Every component's values for an environment, in the config's component
/// order, each read once.
pub fn load_all(config: &Config, env: &EnvName) -> Result<Vec<serde_json::Value>, Report> {
    let present = present(config, env);
    config
        .components
        .iter()
        .map(|c| match &present {
            Some(files) if !files.contains(&file_name(&c.name)) => {
                Ok(serde_json::Value::Object(Default::default()))
            }
            _ => load(config, env, &c.name),
        })
        .collect()
}

/// An environment's values files as a run uses them, each read once: every
/// component's values and the [`digest`] of its file, both in the config's
/// component order.
pub struct Loaded {
    /// The values handed to each component (`{}` when it has no file).
    pub values: Vec<serde_json::Value>,
    /// The digest of each component's file, of nothing when it has none:
    /// what its fingerprint covers of its values.
    pub digests: Vec<[u8; 32]>,
}

/// What a fingerprint covers of a values file: the SHA-256 of its bytes
/// (of no bytes for a component without one).
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Checks the values files of `env` as [`check`] does and, when they are
/// all right, returns what they hold: each file listed, read and parsed
/// once for the check, the values and their digests.
pub fn load_checked(config: &Config, env: &EnvName) -> Result<Loaded, Report> {
    let mut report = Report::default();
    let mut found: std::collections::HashMap<String, Read> = Default::default();
    check_env(config, env, &mut report, &mut |stem, read| {
        found.insert(stem.to_string(), read);
    });
    if !report.is_empty() {
        report.sort();
        return Err(report);
    }
    let (values, digests) = config
        .components
        .iter()
        .map(|c| {
            found
                .remove(c.name.as_str())
                .unwrap_or_else(|| (serde_json::Value::Object(Default::default()), digest(b"")))
        })
        .unzip();
    Ok(Loaded { values, digests })
}

/// The names of the files in an environment's values folder, from one
/// listing: most components of a large repository have no values, and
/// asking for each file in turn would cost a lookup apiece. Empty when
/// there is no folder; `None` when it cannot be listed, and then each file
/// is looked for on its own.
pub fn present(config: &Config, env: &EnvName) -> Option<HashSet<OsString>> {
    match std::fs::read_dir(config.root.join(VALUES_DIR).join(env.as_str())) {
        Ok(entries) => Some(
            entries
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect(),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(HashSet::new()),
        Err(_) => None,
    }
}

/// The name of a component's values file.
pub fn file_name(component: &ComponentName) -> OsString {
    format!("{component}.yaml").into()
}

/// Checks every values file of the given environments, and that nothing
/// under `environments/` is misnamed. With `all_envs`, folders for
/// undeclared environments are reported too.
pub fn check(config: &Config, envs: &[&EnvName], all_envs: bool) -> Report {
    let mut report = Report::default();
    let base = config.root.join(VALUES_DIR);
    if all_envs {
        for entry in sorted_entries(&base) {
            let name = name_of(&entry);
            if entry.is_dir() && config.environment(&name).is_none() {
                let hint = did_you_mean(&name, config.environments.keys().map(EnvName::as_str))
                    .unwrap_or_else(|| {
                        "declare it under `environments:` in the config, or remove the folder"
                            .into()
                    });
                report.push(
                    Diagnostic::new(
                        &entry,
                        Pos::default(),
                        format!("environments.{name}"),
                        format!(
                            "folder `{name}` matches no environment in {}",
                            config.file.display()
                        ),
                    )
                    .hint(hint),
                );
            }
        }
    }
    for env in envs {
        check_env(config, env, &mut report, &mut |_, _| {});
    }
    report.sort();
    report
}

/// Checks the values files of `env` into `report`, handing each component's
/// parsed values, and the digest of its file, to `found`.
fn check_env(
    config: &Config,
    env: &EnvName,
    report: &mut Report,
    found: &mut dyn FnMut(&str, Read),
) {
    let base = config.root.join(VALUES_DIR).join(env.as_str());
    for file in sorted_entries(&base) {
        let file_name = name_of(&file);
        let (stem, ext) = file_name.rsplit_once('.').unwrap_or((&file_name, ""));
        if !matches!(ext, "yaml" | "yml") || file.is_dir() {
            continue;
        }
        let key = format!("environments.{env}.{stem}");
        if ext == "yml" {
            report.push(
                Diagnostic::new(
                    &file,
                    Pos::default(),
                    key,
                    format!("`{file_name}` is not read: values files end in `.yaml`"),
                )
                .hint(format!("rename it to `{stem}.yaml`")),
            );
            continue;
        }
        if config.component(stem).is_none() {
            let hint = did_you_mean(stem, config.components.iter().map(|c| c.name.as_str()))
                .unwrap_or_else(|| {
                    "values files are named after a component: environments/<env>/<component>.yaml"
                        .into()
                });
            report.push(
                Diagnostic::new(
                    &file,
                    Pos::default(),
                    key,
                    format!("`{file_name}` matches no component"),
                )
                .hint(hint),
            );
            continue;
        }
        if let Some(read) = read_mapping(&file, report) {
            found(stem, read);
        }
    }
}

/// The last part of `path` as text; empty when it is not UTF-8 (no
/// environment or component can be named so).
fn name_of(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string()
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.sort();
    entries
}

/// Parses a values file, which must be a mapping (or empty), into JSON.
/// A values file read: what it holds, and the [`digest`] of its text.
type Read = (serde_json::Value, [u8; 32]);

fn read_mapping(file: &Path, report: &mut Report) -> Option<Read> {
    let text = match read_text(file, report) {
        Ok(text) => text,
        Err(_) => return None,
    };
    let before = report.diagnostics.len() + report.warnings.len();
    let value = parse(file, &text, report).map(|node| match node.value {
        Value::Null => serde_json::Value::Object(Default::default()),
        _ => node.to_json(),
    });
    let digest = digest(text.as_bytes());
    if report.diagnostics.len() + report.warnings.len() > before {
        report.add_source(file, text);
    }
    value.map(|value| (value, digest))
}

/// Parses the text of a values file, which must be a mapping (or empty)
/// whose numbers reach components as written (see [`check_numbers`]);
/// problems go to `report`, without the source.
pub fn parse<'t>(file: &Path, text: &'t str, report: &mut Report) -> Option<Node<'t>> {
    let node = parse_yaml(file, text, report)?;
    match node.value {
        Value::Map(_) | Value::Null => {
            check_numbers(file, text, &node, &mut Vec::new(), report);
            Some(node)
        }
        ref other => {
            report.push(
                Diagnostic::new(
                    file,
                    node.pos,
                    "",
                    format!(
                        "a values file must be a mapping of keys, found {}",
                        other.kind()
                    ),
                )
                .hint("components receive their values as a JSON object"),
            );
            None
        }
    }
}

/// The advice for a number JSON cannot carry.
const QUOTE_IT: &str = "components get their values as JSON; quote the value to pass its text";

/// Reports every number of a values file that would not reach components
/// as written: they get the values as JSON, which has no infinity or NaN,
/// and reads an integer beyond 64 bits as a float. A decimal whose last
/// zeros go (`1.30`, most often a version) is a warning: it is a number
/// all the same.
fn check_numbers<'t>(
    file: &Path,
    text: &str,
    node: &'t Node<'t>,
    path: &mut Vec<Cow<'t, str>>,
    report: &mut Report,
) {
    match &node.value {
        Value::Map(entries) => {
            for (key, value) in entries {
                path.push(Cow::Borrowed(&key.name));
                check_numbers(file, text, value, path, report);
                path.pop();
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Cow::Owned(i.to_string()));
                check_numbers(file, text, item, path, report);
                path.pop();
            }
        }
        _ => {
            let Some(loss) = node.json_loss(text) else {
                return;
            };
            let written = node.written(text).unwrap_or("the number");
            let at = |message: String| Diagnostic::new(file, node.pos, path.join("."), message);
            match loss {
                JsonLoss::NotFinite => report.push(
                    at(format!("`{written}` has no JSON form: components would get null"))
                        .hint(QUOTE_IT),
                ),
                JsonLoss::TooLarge(float) => report.push(
                    at(format!(
                        "`{written}` is too large for a 64-bit integer: components would get {float}"
                    ))
                    .hint(QUOTE_IT),
                ),
                JsonLoss::Zeros(number) => report.warn(
                    at(format!("`{written}` is the number {number}: components get {number}"))
                        .hint(format!("if it is a version or other text, quote it: \"{written}\"")),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(root: &Path) -> Config {
        std::fs::create_dir_all(root.join("c")).unwrap();
        std::fs::write(
            root.join("orchestrator.yaml"),
            "version: 1\ndefaults:\n  runner: shell\ncomponents:\n  \
             a: {path: c, commands: {apply: \"true\"}}\n  \
             b: {path: c, commands: {apply: \"true\"}}\n\
             environments:\n  dev: {clouds: [aws]}\n",
        )
        .unwrap();
        crate::config::load(&root.join("orchestrator.yaml")).unwrap()
    }

    #[test]
    fn load_checked_gives_the_values_only_when_every_file_is_right() {
        let tmp = tempfile::TempDir::new().unwrap();
        let config = config(tmp.path());
        let env = EnvName::parse("dev").unwrap();
        std::fs::create_dir_all(tmp.path().join("environments/dev")).unwrap();
        std::fs::write(tmp.path().join("environments/dev/b.yaml"), "size: 3\n").unwrap();
        let loaded = load_checked(&config, &env).unwrap();
        assert_eq!(
            loaded.values,
            [serde_json::json!({}), serde_json::json!({"size": 3})]
        );
        assert_eq!(loaded.digests, [digest(b""), digest(b"size: 3\n")]);
        std::fs::write(tmp.path().join("environments/dev/bb.yaml"), "x: 1\n").unwrap();
        let Err(report) = load_checked(&config, &env) else {
            panic!("a misnamed file is an error");
        };
        assert_eq!(
            report.render(false),
            check(&config, &[&env], false).render(false)
        );
        assert!(!report.is_empty());
    }

    #[test]
    fn components_without_a_file_take_no_values_and_those_with_one_take_it() {
        let tmp = tempfile::TempDir::new().unwrap();
        let config = config(tmp.path());
        let env = EnvName::parse("dev").unwrap();
        let empty = serde_json::json!({});
        assert_eq!(present(&config, &env), Some(HashSet::new()));
        assert_eq!(
            load_all(&config, &env).unwrap(),
            [empty.clone(), empty.clone()]
        );

        std::fs::create_dir_all(tmp.path().join("environments/dev")).unwrap();
        std::fs::write(tmp.path().join("environments/dev/b.yaml"), "size: 3\n").unwrap();
        assert_eq!(
            present(&config, &env),
            Some(HashSet::from([OsString::from("b.yaml")]))
        );
        assert_eq!(
            load_all(&config, &env).unwrap(),
            [empty, serde_json::json!({"size": 3})]
        );
    }
}
