//! The local modules of OpenTofu and Terraform components that their
//! fingerprints miss.
//!
//! A root that uses `source = "../../modules/vpc"` is deployed from files
//! outside its directory; unless it `watch`es them, a change there changes
//! no fingerprint and deploys nothing. The `.tf` files of each such
//! component, and of the local modules they use in turn, are read for
//! local `source` paths, and those outside the component that nothing it
//! watches covers are reported, with where they are used.
//!
//! This reads lines, not HCL: a `source` attribute on a line of its own, as
//! `tofu fmt` writes it, is found; one inside a block comment is taken as
//! used, which only errs on the side of watching more.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Component as PathPart, Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;

use super::{Component, Config, Diagnostic, Report, Runner};
use crate::yaml::Pos;

/// A local module a component uses and does not watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwatched {
    /// The component.
    pub component: String,
    /// The file that uses it, relative to the configuration's directory.
    pub file: PathBuf,
    /// The line of the `source` attribute.
    pub line: usize,
    /// The column of its value's opening quote.
    pub column: usize,
    /// The module's directory, relative to the configuration's directory.
    pub module: PathBuf,
}

impl std::fmt::Display for Unwatched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` uses the local module `{}`, which it does not watch: a change there \
             changes no fingerprint and deploys nothing",
            self.component,
            self.module.display(),
        )
    }
}

/// The help that goes with an [`Unwatched`].
pub const HELP: &str =
    "add the module's directory to the component's `watch` (or to `defaults.watch`)";

/// Adds to `report` a warning for each local module a component of
/// `config` does not watch ([`unwatched`]), at its `source` line, with the
/// text of the files they are in.
pub fn warn(config: &Config, report: &mut Report) {
    let mut shown = BTreeSet::new();
    for u in unwatched(config) {
        let file = config.root.join(&u.file);
        if shown.insert(file.clone()) {
            if let Ok(text) = std::fs::read_to_string(&file) {
                report.add_source(&file, text);
            }
        }
        let at = Pos {
            line: u32::try_from(u.line).unwrap_or(u32::MAX),
            column: u32::try_from(u.column).unwrap_or(u32::MAX),
        };
        let key = format!("components.{}.watch", u.component);
        report.warn(Diagnostic::new(&file, at, key, u.to_string()).hint(HELP));
    }
}

/// The local modules the OpenTofu and Terraform components of `config` use,
/// in any environment and cloud, that they do not watch.
pub fn unwatched(config: &Config) -> Vec<Unwatched> {
    let mut found = Vec::new();
    // A module many roots use is read once.
    let mut read = Sources::default();
    for component in &config.components {
        if !matches!(component.runner, Runner::Tofu | Runner::Terraform) {
            continue;
        }
        // Each directory and watch list once, however many environments
        // and clouds share them.
        let mut targets = BTreeSet::new();
        for env in config.environments.values() {
            for cloud in &env.clouds {
                let dir = normal(Path::new(&component.path.expand(&env.name, cloud)));
                let watched: Vec<PathBuf> = component
                    .watch
                    .iter()
                    .map(|w| normal(Path::new(&w.expand(&env.name, cloud))))
                    .collect();
                targets.insert((dir, watched));
            }
        }
        let mut seen = BTreeSet::new();
        for (dir, watched) in &targets {
            for miss in misses(&config.root, &mut read, component, dir, watched) {
                if seen.insert((miss.module.clone(), miss.file.clone())) {
                    found.push(miss);
                }
            }
        }
    }
    found
}

/// The modules used from `dir` (relative to `root`), and from the local
/// modules it uses in turn, that lie outside `dir` and every `watched` path.
fn misses(
    root: &Path,
    read: &mut Sources,
    component: &Component,
    dir: &Path,
    watched: &[PathBuf],
) -> Vec<Unwatched> {
    let covered =
        |path: &Path| path.starts_with(dir) || watched.iter().any(|w| path.starts_with(w));
    let mut out = Vec::new();
    let mut visited = BTreeSet::from([dir.to_path_buf()]);
    let mut queue = VecDeque::from([dir.to_path_buf()]);
    while let Some(at) = queue.pop_front() {
        let found = read.entry(at.clone()).or_insert_with(|| sources(root, &at));
        for (file, line, column, source) in found.iter() {
            let module = normal(&at.join(source));
            if module.starts_with("..") || !visited.insert(module.clone()) {
                continue;
            }
            if !covered(&module) {
                out.push(Unwatched {
                    component: component.name.to_string(),
                    file: file.clone(),
                    line: *line,
                    column: *column,
                    module: module.clone(),
                });
            }
            queue.push_back(module);
        }
    }
    out
}

/// A local `source` path as written, with the file, line and column
/// (of its opening quote) it is written at.
type Source = (PathBuf, usize, usize, String);

/// The local `source` paths found in each directory read.
type Sources = std::collections::HashMap<PathBuf, Vec<Source>>;

/// The local `source` paths in the `.tf` files of `dir` (relative to
/// `root`).
fn sources(root: &Path, dir: &Path) -> Vec<Source> {
    static SOURCE: OnceLock<Regex> = OnceLock::new();
    let source = SOURCE.get_or_init(|| {
        Regex::new(r#"^\s*source\s*=\s*"(\.\.?/[^"]*)""#).expect("the pattern is valid")
    });
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tf") && p.is_file())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let file = dir.join(path.file_name().unwrap_or_default());
        for (i, line) in text.lines().enumerate() {
            if let Some(m) = source.captures(line).and_then(|c| c.get(1)) {
                // The quote just before the path.
                let column = line[..m.start()].chars().count();
                out.push((file.clone(), i + 1, column, m.as_str().to_string()));
            }
        }
    }
    out
}

/// `path` with `.` and `a/..` taken out, as far as it goes: a path that
/// climbs above where it starts keeps its leading `..`.
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            PathPart::CurDir => {}
            PathPart::ParentDir => {
                if matches!(out.components().next_back(), Some(PathPart::Normal(_))) {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        std::fs::create_dir_all(root.join(rel).parent().unwrap()).unwrap();
        std::fs::write(root.join(rel), text).unwrap();
    }

    fn found(root: &Path, watch: &str) -> Vec<(String, String, usize)> {
        let text = format!(
            "version: 1\ncomponents:\n  net: {{path: stacks/net, runner: tofu{watch}}}\n  \
             app: {{path: stacks/app, runner: shell, commands: {{apply: 'true'}}}}\n\
             environments:\n  dev: {{clouds: [aws]}}\n"
        );
        write(root, "orchestrator.yaml", &text);
        let config = crate::config::load(&root.join("orchestrator.yaml")).unwrap();
        unwatched(&config)
            .into_iter()
            .map(|u| {
                assert!(u.to_string().contains("does not watch"));
                (
                    u.module.display().to_string(),
                    u.file.display().to_string(),
                    u.line,
                )
            })
            .collect()
    }

    #[test]
    fn local_modules_outside_a_root_are_reported_until_it_watches_them() {
        let tmp = tempfile::TempDir::new().unwrap();
        let root = tmp.path();
        write(
            root,
            "stacks/net/main.tf",
            "module \"vpc\" {\n  source = \"../../modules/vpc\"\n}\n\
             module \"flow\" {\n  source = \"./flow-logs\"\n}\n\
             module \"registry\" {\n  source  = \"terraform-aws-modules/vpc/aws\"\n}\n\
             # source = \"../../modules/old\"\n",
        );
        write(root, "stacks/net/flow-logs/main.tf", "# inside the root\n");
        write(
            root,
            "modules/vpc/main.tf",
            "module \"subnets\" {\n  source = \"../subnets\"\n}\n",
        );
        write(root, "modules/subnets/main.tf", "# leaf\n");
        // A shell component's files are not read.
        write(
            root,
            "stacks/app/main.tf",
            "source = \"../../modules/app\"\n",
        );

        assert_eq!(
            found(root, ""),
            [
                ("modules/vpc".into(), "stacks/net/main.tf".into(), 2),
                ("modules/subnets".into(), "modules/vpc/main.tf".into(), 2),
            ]
        );
        assert_eq!(
            found(root, ", watch: [modules/vpc]"),
            [("modules/subnets".into(), "modules/vpc/main.tf".into(), 2)]
        );
        assert!(found(root, ", watch: [modules]").is_empty());
    }

    #[test]
    fn paths_are_made_plain_without_losing_their_climb() {
        for (path, plain) in [
            ("stacks/net/../../modules/vpc", "modules/vpc"),
            ("./stacks/./net", "stacks/net"),
            ("stacks/../../outside", "../outside"),
            ("../../x/../y", "../../y"),
        ] {
            assert_eq!(normal(Path::new(path)), Path::new(plain), "{path}");
        }
    }
}
