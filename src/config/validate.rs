//! Checks that need more than one key at a time: dependencies and cycles,
//! the promotion chain, runner and command agreement, paths on disk, state
//! settings. Every problem is reported; nothing stops at the first.

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::path::{Component as PathPart, Path};

use super::diagnostic::{Diagnostic, Report, did_you_mean};
use super::model::{ConfigFile, Located, Runner, Template};
use super::names::{CloudName, ComponentName, EnvName};
use crate::graph::{Graph, GraphError};
use crate::yaml::Pos;

/// Runs every cross-key check; returns the graph when the dependencies form
/// one. Component directories are looked for under `root`, when given.
pub fn check(
    file: &Path,
    root: Option<&Path>,
    doc: &ConfigFile,
    report: &mut Report,
) -> Option<Graph> {
    let mut v = Checks { file, report };
    v.component_settings(doc);
    v.paths(root, doc);
    v.environments(doc);
    v.state(doc);
    v.graph(doc)
}

struct Checks<'a> {
    file: &'a Path,
    report: &'a mut Report,
}

impl Checks<'_> {
    fn error(
        &mut self,
        pos: Pos,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.report
            .push(Diagnostic::new(self.file, pos, key, message));
        self.report.diagnostics.last_mut().expect("just pushed")
    }

    fn graph(&mut self, doc: &ConfigFile) -> Option<Graph> {
        for (name, spec) in &doc.components {
            for (i, dep) in spec.depends_on.iter().enumerate() {
                if spec.depends_on[..i].iter().any(|d| d.value == dep.value) {
                    self.error(
                        dep.pos,
                        format!("components.{name}.depends_on"),
                        format!("`{}` is listed twice", dep.value),
                    );
                }
            }
        }
        match Graph::build(
            doc.components
                .iter()
                .map(|(n, spec)| (n, spec.depends_on.iter().map(|d| &d.value))),
        ) {
            Ok(graph) => Some(graph),
            Err(GraphError { unknown, cycles }) => {
                for (name, dep) in unknown {
                    let pos = self.dependency_pos(doc, &name, &dep);
                    let hint = did_you_mean(
                        dep.as_str(),
                        doc.components.keys().map(ComponentName::as_str),
                    )
                    .unwrap_or_else(|| format!("components: {}", list(doc.components.keys())));
                    self.error(
                        pos,
                        format!("components.{name}.depends_on"),
                        format!("`{name}` depends on `{dep}`, which is not a component"),
                    )
                    .hint = Some(hint);
                }
                for cycle in cycles {
                    let path = cycle
                        .iter()
                        .map(ComponentName::as_str)
                        .collect::<Vec<_>>()
                        .join(" → ");
                    // Point at the declaration that closes the loop: the last
                    // component depending on the one before it.
                    let (from, to) = (&cycle[cycle.len() - 2], &cycle[cycle.len() - 1]);
                    let pos = self.dependency_pos(doc, to, from);
                    let message = if cycle.len() == 2 {
                        format!("`{to}` depends on itself")
                    } else {
                        format!("dependency cycle: {path}")
                    };
                    self.error(pos, format!("components.{to}.depends_on"), message)
                        .hint = Some(format!(
                        "each component must be deployed before the next in `{path}`; remove one of these dependencies"
                    ));
                }
                None
            }
        }
    }

    fn dependency_pos(
        &self,
        doc: &ConfigFile,
        component: &ComponentName,
        dep: &ComponentName,
    ) -> Pos {
        doc.components
            .get(component)
            .and_then(|spec| {
                spec.depends_on
                    .iter()
                    .find(|d| &d.value == dep)
                    .map(|d| d.pos)
            })
            .unwrap_or_default()
    }

    fn component_settings(&mut self, doc: &ConfigFile) {
        // Components whose runner could not be read were reported already;
        // guessing a runner for them would only add noise.
        let runner_keys: HashSet<&str> = self
            .report
            .diagnostics
            .iter()
            .filter(|d| d.key.ends_with("runner"))
            .map(|d| d.key.as_str())
            .collect();
        let runner_unknown: HashSet<&ComponentName> = if runner_keys.is_empty() {
            HashSet::new()
        } else {
            doc.components
                .iter()
                .filter(|(name, spec)| {
                    runner_keys.contains(format!("components.{name}.runner").as_str())
                        || (spec.settings.runner.is_none()
                            && runner_keys.contains("defaults.runner"))
                })
                .map(|(name, _)| name)
                .collect()
        };
        for (name, spec) in &doc.components {
            if runner_unknown.contains(name) {
                continue;
            }
            let runner = spec
                .settings
                .runner
                .or(doc.defaults.runner)
                .unwrap_or(super::DEFAULT_RUNNER);
            match (&spec.commands, runner) {
                (None, Runner::Shell) => {
                    self.error(
                        spec.pos,
                        format!("components.{name}"),
                        format!("shell component `{name}` has no `commands`"),
                    )
                    .hint = Some("add `commands:` with at least `apply:`".into());
                }
                (Some(c), Runner::Shell) if c.value.apply.is_none() => {
                    self.error(
                        c.pos,
                        format!("components.{name}.commands"),
                        format!("shell component `{name}` has no `commands.apply`"),
                    );
                }
                (Some(_), Runner::Shell) | (None, _) => {}
                (Some(c), other) => {
                    self.error(c.pos, format!("components.{name}.commands"), format!("`commands` is only used by the shell runner, and `{name}` runs with {other}"))
                        .hint = Some(format!("remove `commands`, or set `runner: shell` on `{name}`"));
                }
            }
        }
    }

    fn paths(&mut self, root: Option<&Path>, doc: &ConfigFile) {
        let mut dirs = DirCache::default();
        let targets: Vec<_> = doc
            .environments
            .iter()
            .flat_map(|(env, spec)| spec.clouds.iter().map(move |c| (env, &c.value)))
            .collect();
        for (name, spec) in &doc.components {
            let key = format!("components.{name}.path");
            self.path(root, &mut dirs, &targets, &spec.path, &key, true);
        }
        // Watched paths are checked where they are written, once.
        let watched = doc
            .defaults
            .watch
            .iter()
            .enumerate()
            .map(|(i, w)| (w, format!("defaults.watch[{i}]")))
            .chain(doc.components.iter().flat_map(|(name, spec)| {
                spec.settings
                    .watch
                    .iter()
                    .enumerate()
                    .map(move |(i, w)| (w, format!("components.{name}.watch[{i}]")))
            }));
        for (path, key) in watched {
            self.path(root, &mut dirs, &targets, path, &key, false);
        }
    }

    /// Checks `template`, written at `key`, names something inside the
    /// repository that exists in every environment and cloud: a directory
    /// when `directory`, else a file or a directory.
    fn path(
        &mut self,
        root: Option<&Path>,
        dirs: &mut DirCache,
        targets: &[(&EnvName, &CloudName)],
        template: &Located<Template>,
        key: &str,
        directory: bool,
    ) {
        let (pos, template) = (template.pos, &template.value);
        if template.as_str().is_empty() {
            return; // already reported as missing or invalid
        }
        if let Some(problem) = unsafe_relative_path(template.as_str()) {
            self.error(pos, key, format!("path `{}` {problem}", template.as_str()))
                .hint = Some(if directory {
                "component paths are directories inside the repository".into()
            } else {
                "watched paths are files or directories inside the repository".into()
            });
            return;
        }
        let Some(root) = root else {
            return;
        };
        let found = |dirs: &mut DirCache, path: &str| {
            dirs.is_dir(root, path) || (!directory && root.join(path).exists())
        };
        let expanded: BTreeSet<String> = if template.has_placeholders() {
            targets.iter().map(|(e, c)| template.expand(e, c)).collect()
        } else if found(dirs, template.as_str()) {
            return; // the common case, without building a set
        } else {
            BTreeSet::from([template.as_str().to_string()])
        };
        for path in expanded {
            if !found(dirs, &path) {
                let what = if root.join(&path).exists() {
                    "is not a directory"
                } else {
                    "does not exist"
                };
                let shown = if path == template.as_str() {
                    format!("`{path}`")
                } else {
                    format!("`{path}` (from `{}`)", template.as_str())
                };
                self.error(pos, key, format!("path {shown} {what}")).hint =
                    Some(format!("paths are relative to {}", display_root(root)));
            }
        }
    }

    fn environments(&mut self, doc: &ConfigFile) {
        for (name, spec) in &doc.environments {
            let mut seen = HashSet::new();
            for cloud in &spec.clouds {
                if !seen.insert(&cloud.value) {
                    self.error(
                        cloud.pos,
                        format!("environments.{name}.clouds"),
                        format!("cloud `{}` is listed twice", cloud.value),
                    );
                }
            }
            let Some(from) = &spec.promote_from else {
                continue;
            };
            let key = format!("environments.{name}.promote_from");
            if from.value == *name {
                self.error(
                    from.pos,
                    key,
                    format!("`{name}` cannot be promoted from itself"),
                );
            } else if !doc.environments.contains_key(&from.value) {
                let hint = did_you_mean(
                    from.value.as_str(),
                    doc.environments.keys().map(EnvName::as_str),
                )
                .unwrap_or_else(|| format!("environments: {}", list(doc.environments.keys())));
                self.error(
                    from.pos,
                    key,
                    format!("`{}` is not an environment", from.value),
                )
                .hint = Some(hint);
            }
        }
        // Follow each chain. A loop is found from every environment leading
        // into it; report it once, when starting from its first name.
        for start in doc.environments.keys() {
            let mut chain = vec![start];
            let mut at = start;
            while let Some(next) = doc
                .environments
                .get(at)
                .and_then(|s| s.promote_from.as_ref())
                .map(|f| &f.value)
            {
                if next == at || !doc.environments.contains_key(next) {
                    break;
                }
                if let Some(i) = chain.iter().position(|e| *e == next) {
                    let looped = &chain[i..];
                    let first = looped.iter().min().copied().unwrap_or(next);
                    if first == start {
                        // The chain follows promote_from; reversed, it is the
                        // direction promotion flows, starting at `first`.
                        let mut names: Vec<&str> =
                            looped.iter().rev().map(|e| e.as_str()).collect();
                        let at_first = names.iter().position(|n| *n == first.as_str()).unwrap_or(0);
                        names.rotate_left(at_first);
                        names.push(first.as_str());
                        let pos = doc.environments[first]
                            .promote_from
                            .as_ref()
                            .map(|f| f.pos)
                            .unwrap_or_default();
                        self.error(
                            pos,
                            format!("environments.{first}.promote_from"),
                            format!("promotion loop: {}", names.join(" → ")),
                        )
                        .hint =
                            Some("promotion must run one way, e.g. dev → staging → prod".into());
                    }
                    break;
                }
                chain.push(next);
                at = next;
            }
        }
    }

    fn state(&mut self, doc: &ConfigFile) {
        let branch = &doc.state.branch;
        if !(branch.value.is_empty() || branch.value == "current") {
            if let Some(problem) = bad_branch_name(&branch.value) {
                self.error(
                    branch.pos,
                    "state.branch",
                    format!("`{}` is not a valid branch name: {problem}", branch.value),
                );
            }
        }
        let dir = &doc.state.dir;
        if let Some(problem) = unsafe_relative_path(&dir.value) {
            self.error(dir.pos, "state.dir", format!("`{}` {problem}", dir.value))
                .hint = Some("the state directory is inside the repository".into());
        }
    }
}

/// Answers "is this a directory?" for many paths with one listing per
/// parent directory instead of one `stat` per path: thousands of components
/// usually sit in a handful of directories.
#[derive(Default)]
struct DirCache {
    /// Subdirectory names by parent, the parent relative to the root.
    listings: foldhash::HashMap<String, foldhash::HashSet<OsString>>,
}

impl DirCache {
    fn is_dir(&mut self, root: &Path, rel: &str) -> bool {
        let plain = !rel.is_empty() && rel.split('/').all(|part| !part.is_empty() && part != ".");
        if !plain {
            return root.join(rel).is_dir();
        }
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        if let Some(listing) = self.listings.get(parent) {
            return listing.contains(std::ffi::OsStr::new(name));
        }
        let listing = subdirectories(&root.join(parent));
        let found = listing.contains(std::ffi::OsStr::new(name));
        self.listings.insert(parent.to_string(), listing);
        found
    }
}

/// Names of the directories in `dir`, following symbolic links.
fn subdirectories(dir: &Path) -> foldhash::HashSet<OsString> {
    let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return Default::default();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| match e.file_type() {
            Ok(t) if t.is_symlink() => e.path().is_dir(),
            Ok(t) => t.is_dir(),
            Err(_) => false,
        })
        .map(|e| e.file_name())
        .collect()
}

fn list<'a, T: AsRef<str> + 'a>(names: impl Iterator<Item = &'a T>) -> String {
    names.map(|n| n.as_ref()).collect::<Vec<_>>().join(", ")
}

fn display_root(root: &Path) -> String {
    if root.as_os_str().is_empty() || root == Path::new(".") {
        "the directory of the config file".to_string()
    } else {
        format!("`{}`", root.display())
    }
}

/// Why a path may not be used as a directory inside the repository, if it may not.
pub fn unsafe_relative_path(path: &str) -> Option<&'static str> {
    let p = Path::new(path);
    if path.trim().is_empty() {
        return Some("is empty");
    }
    if p.is_absolute() || path.starts_with('~') {
        return Some("must be relative to the repository root");
    }
    if p.components().any(|c| matches!(c, PathPart::ParentDir)) {
        return Some("must not use `..` to leave the repository");
    }
    None
}

/// Git's rules for ref names (`git check-ref-format`), as they apply to a branch.
fn bad_branch_name(name: &str) -> Option<&'static str> {
    if name.starts_with('-') || name.starts_with('/') || name.ends_with('/') {
        return Some("it may not start with `-` or start or end with `/`");
    }
    if name.ends_with(".lock") || name.ends_with('.') {
        return Some("it may not end with `.lock` or `.`");
    }
    if name.contains("..") || name.contains("//") || name.contains("@{") || name == "@" {
        return Some("it may not contain `..`, `//` or `@{`");
    }
    if name
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
    {
        return Some("it may not contain spaces or any of ~ ^ : ? * [ \\");
    }
    if name.split('/').any(|part| part.starts_with('.')) {
        return Some("no part of it may start with `.`");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_stay_inside_the_repository() {
        assert_eq!(unsafe_relative_path("components/net"), None);
        assert!(unsafe_relative_path("/etc").is_some());
        assert!(unsafe_relative_path("../outside").is_some());
        assert!(unsafe_relative_path("a/../../b").is_some());
        assert!(unsafe_relative_path("~/x").is_some());
    }

    #[test]
    fn a_config_of_another_commit_is_checked_but_for_its_directories() {
        let text = "version: 1\ncomponents:\n  a: {path: nowhere/a}\n  b: {path: /etc, depends_on: [a]}\nenvironments:\n  dev: {clouds: [aws]}\n";
        let report = crate::config::from_text(Path::new("orchestrator.yaml"), text)
            .expect_err("an absolute path is still refused");
        let messages: Vec<&str> = report
            .diagnostics
            .iter()
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(
            messages,
            ["path `/etc` must be relative to the repository root"]
        );
        let fixed = text.replace("/etc", "nowhere/b");
        let config = crate::config::from_text(Path::new("orchestrator.yaml"), &fixed)
            .expect("directories are not looked for");
        assert_eq!(config.components.len(), 2);
    }

    #[test]
    fn directory_cache_agrees_with_stat() {
        let tmp = tempfile::TempDir::new().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("stacks/aws/net")).unwrap();
        std::fs::write(root.join("stacks/file"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("stacks/aws"), root.join("stacks/linked")).unwrap();
        let mut dirs = DirCache::default();
        for (rel, expected) in [
            ("stacks", true),
            ("stacks/aws/net", true),
            ("stacks/aws/net/", true),
            ("stacks/aws/net/.", true),
            ("stacks/linked", true),
            ("stacks/linked/net", true),
            ("stacks/file", false),
            ("stacks/missing", false),
            ("missing/x", false),
        ] {
            assert_eq!(dirs.is_dir(root, rel), expected, "{rel}");
            assert_eq!(root.join(rel).is_dir(), expected, "stat disagrees on {rel}");
        }
    }

    #[test]
    fn branch_names_follow_git_rules() {
        assert_eq!(bad_branch_name("orchestrator-state"), None);
        assert_eq!(bad_branch_name("infra/state"), None);
        for bad in [
            "a..b", "-x", "x.lock", "a b", "a:b", "x/", ".hidden", "a/.b", "a~1",
        ] {
            assert!(bad_branch_name(bad).is_some(), "{bad}");
        }
    }
}
