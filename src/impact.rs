//! What a change to the repository does to its deployments, environment by
//! environment: how each component's values change, which components change
//! (their values, their definition in `orchestrator.yaml`, or their files),
//! and which run again once the change is merged: those and everything that
//! depends on them, as `apply --changed` selects them.
//!
//! Pure: two snapshots of the repository (the configuration, the values
//! files, and the tree id of each component's directory, as read from git)
//! in, an [`Impact`] out. A component changes exactly when its fingerprint
//! would: its files, its values file's bytes, or its definition.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{CloudName, Component, ComponentName, Config, EnvName, Report, values};
use crate::diff::{self, Change, ComponentDiff, Options};
use crate::fingerprint::definition;
use crate::graph::Walk;
use crate::yaml;

/// The repository at one commit, as far as deployments go.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    /// The configuration; `None` when the commit has none that loads.
    pub config: Option<&'a Config>,
    /// The text of `orchestrator.yaml`, for the diff of the file itself.
    pub config_text: Option<&'a str>,
    /// The values files under `environments/`, by their path below it
    /// (`dev/app.yaml`).
    pub values: &'a BTreeMap<String, String>,
    /// What each component directory and watched path holds (its path with
    /// `{env}` and `{cloud}` filled in, relative to the configuration's
    /// directory) as an id that changes with its content; absent when there
    /// is nothing.
    pub dirs: &'a BTreeMap<String, String>,
}

/// Why a component changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// It is new in the configuration.
    New,
    /// The environment is new: everything in it is deployed for the first time.
    NewEnvironment,
    /// Its values changed (this many changes).
    Values(usize),
    /// Its values file changed, but not its values (comments, layout):
    /// still a new fingerprint, so it runs again.
    Reformatted,
    /// Its runner, path, commands or environment variables changed.
    Definition,
    /// Files in its directory changed.
    Files,
    /// Files in a path it watches changed.
    Watched,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::New => f.write_str("new component"),
            Why::NewEnvironment => f.write_str("new environment"),
            Why::Values(1) => f.write_str("values: 1 change"),
            Why::Values(n) => write!(f, "values: {n} changes"),
            Why::Reformatted => f.write_str("values file edited, values unchanged"),
            Why::Definition => f.write_str("its definition in orchestrator.yaml"),
            Why::Files => f.write_str("files in its directory"),
            Why::Watched => f.write_str("files it watches"),
        }
    }
}

/// What the change does in one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvImpact {
    /// The environment.
    pub env: EnvName,
    /// Each component that changes, in name order, and why.
    pub changed: Vec<(ComponentName, Vec<Why>)>,
    /// What runs after merge: the changed components and everything that
    /// depends on them, wave by wave as `plan` lists them.
    pub runs: Vec<ComponentName>,
    /// The values diffs of components whose values file changed.
    pub diffs: Vec<ComponentDiff>,
    /// Components the change removes from the configuration.
    pub removed: Vec<ComponentName>,
}

impl EnvImpact {
    /// Whether nothing changes here.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.diffs.is_empty() && self.removed.is_empty()
    }
}

/// What a change does, environment by environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Impact {
    /// The changes to `orchestrator.yaml` itself.
    pub config: Vec<Change>,
    /// Each environment of the new configuration, in the order written.
    pub environments: Vec<EnvImpact>,
    /// Environments the change removes.
    pub removed_environments: Vec<EnvName>,
}

impl Impact {
    /// Whether the change touches no deployment at all.
    pub fn is_empty(&self) -> bool {
        self.config.is_empty()
            && self.removed_environments.is_empty()
            && self.environments.iter().all(EnvImpact::is_empty)
    }
}

/// How two snapshots' values are compared: list entries matched by `name`,
/// `key` or `id`, and secrets as either configuration defines them, so a
/// change that drops a secret word still hides the values it covered.
pub fn options(base: Option<&Config>, head: Option<&Config>) -> Options {
    let configs: Vec<&Config> = base.into_iter().chain(head).collect();
    let mut words: Vec<String> = Vec::new();
    let mut sensitive = Vec::new();
    for config in &configs {
        for w in &config.secrets.keys {
            if !words.contains(w) {
                words.push(w.clone());
            }
        }
        sensitive.extend(config.secrets.sensitive.iter().cloned());
    }
    if configs.is_empty() {
        return Options::default();
    }
    Options {
        secrets: crate::config::keypath::SecretPolicy::new(words, sensitive),
        ..Options::default()
    }
}

/// What changing `base` into `head` does. Fails when a values file of
/// `head` does not parse (named below `values_dir`, as the user knows it);
/// one of `base` that does not parse counts as absent.
pub fn compare(
    base: &Snapshot<'_>,
    head: &Snapshot<'_>,
    values_dir: &Path,
    options: &Options,
) -> Result<Impact, Report> {
    let (base_file, head_file) = (parse(base.config_text), parse(head.config_text));
    let config = diff::component(
        "orchestrator.yaml",
        base_file.as_ref(),
        head_file.as_ref(),
        options,
    )
    .changes;
    let mut report = Report::default();
    let mut environments = Vec::new();
    if let Some(config) = head.config {
        for env in config.environments.keys() {
            environments.push(environment(
                base,
                head,
                config,
                env,
                values_dir,
                options,
                &mut report,
            ));
        }
    }
    if !report.is_empty() {
        report.sort();
        return Err(report);
    }
    let removed_environments = base
        .config
        .map(|b| {
            b.environments
                .keys()
                .filter(|e| {
                    head.config
                        .is_none_or(|h| h.environment(e.as_str()).is_none())
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    Ok(Impact {
        config,
        environments,
        removed_environments,
    })
}

/// A YAML text's tree; `None` for no text or one that does not parse.
fn parse(text: Option<&str>) -> Option<yaml::Node<'_>> {
    text.and_then(|t| yaml::parse(t).ok())
}

/// What the change does in `env` of the new configuration `config`.
fn environment(
    base: &Snapshot<'_>,
    head: &Snapshot<'_>,
    config: &Config,
    env: &EnvName,
    values_dir: &Path,
    options: &Options,
    report: &mut Report,
) -> EnvImpact {
    let new_env = base
        .config
        .and_then(|b| b.environment(env.as_str()))
        .is_none();
    let clouds = &config.environments[env].clouds;
    let mut changed = Vec::new();
    let mut diffs = Vec::new();
    let mut selection = vec![false; config.components.len()];
    for (i, component) in config.components.iter().enumerate() {
        let old = base
            .config
            .and_then(|b| b.component(component.name.as_str()));
        let mut why = Vec::new();
        match old {
            None => why.push(Why::New),
            Some(_) if new_env => why.push(Why::NewEnvironment),
            Some(_) => {}
        }
        let file = format!("{env}/{}.yaml", component.name);
        let (before, after) = (base.values.get(&file), head.values.get(&file));
        if before != after {
            let shown = values_dir.join(&file);
            let after_tree = after.and_then(|t| {
                let mut problems = Report::default();
                let node = values::parse(&shown, t, &mut problems);
                if !problems.is_empty() {
                    problems.add_source(&shown, t.clone());
                    report.extend(problems);
                }
                node
            });
            let before_tree = before.and_then(|t| values::parse(&shown, t, &mut Report::default()));
            let d = diff::component(
                component.name.as_str(),
                before_tree.as_ref(),
                after_tree.as_ref(),
                options,
            );
            why.push(match d.changes.len() {
                0 => Why::Reformatted,
                n => Why::Values(n),
            });
            if !d.changes.is_empty() {
                diffs.push(d);
            }
        }
        if let Some(old) = old {
            if clouds
                .iter()
                .any(|c| definition(old, env, c) != definition(component, env, c))
            {
                why.push(Why::Definition);
            }
            let (mut dir, mut watched) = (false, false);
            for cloud in clouds {
                let (before, after) = (
                    files(base, old, env, cloud),
                    files(head, component, env, cloud),
                );
                dir |= before[0] != after[0];
                watched |= before[1..] != after[1..];
            }
            if dir {
                why.push(Why::Files);
            }
            if watched {
                why.push(Why::Watched);
            }
        }
        if !why.is_empty() {
            selection[i] = true;
            changed.push((component.name.clone(), why));
        }
    }
    config.graph.close(&mut selection, Walk::Dependents);
    // Wave by wave, by name within a wave, as `plan` lists a run.
    let (waves, _) = config.graph.waves(&selection, Walk::Dependents);
    let runs = waves
        .into_iter()
        .flatten()
        .map(|i| config.graph.name(i).clone())
        .collect();
    let removed = base
        .config
        .map(|b| {
            b.components
                .iter()
                .filter(|c| config.component(c.name.as_str()).is_none())
                .map(|c| c.name.clone())
                .collect()
        })
        .unwrap_or_default();
    EnvImpact {
        env: env.clone(),
        changed,
        runs,
        diffs,
        removed,
    }
}

/// What a snapshot holds at a component's directory, and at each path it
/// watches, in `env` on `cloud`.
fn files<'s>(
    snapshot: &Snapshot<'s>,
    component: &Component,
    env: &EnvName,
    cloud: &CloudName,
) -> Vec<Option<&'s String>> {
    component
        .paths()
        .map(|path| snapshot.dirs.get(&path.expand(env, cloud)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
version: 1
defaults: {runner: shell}
components:
  network: {path: c/network, commands: {apply: ./apply.sh}}
  clusters: {path: c/clusters, depends_on: [network], commands: {apply: ./apply.sh}}
  addons: {path: c/addons, depends_on: [clusters], commands: {apply: ./apply.sh}}
  dns: {path: c/dns, commands: {apply: ./apply.sh}}
environments:
  dev: {clouds: [aws]}
  prod: {clouds: [aws]}
";

    fn config(text: &str) -> Config {
        crate::config::from_text(Path::new("orchestrator.yaml"), text)
            .unwrap_or_else(|r| panic!("{}", r.render(false)))
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn snapshot<'a>(
        config: &'a Config,
        text: &'a str,
        values: &'a BTreeMap<String, String>,
        dirs: &'a BTreeMap<String, String>,
    ) -> Snapshot<'a> {
        Snapshot {
            config: Some(config),
            config_text: Some(text),
            values,
            dirs,
        }
    }

    /// The impact of changing one values file of [`CONFIG`] from `before`
    /// to `after` (`None`: no file).
    fn values_change(
        file: &str,
        before: Option<&str>,
        after: Option<&str>,
    ) -> Result<Impact, Report> {
        let c = config(CONFIG);
        let dirs = map(&[]);
        let side =
            |text: Option<&str>| map(&text.map(|t| (file, t)).into_iter().collect::<Vec<_>>());
        let (before, after) = (side(before), side(after));
        compare(
            &snapshot(&c, CONFIG, &before, &dirs),
            &snapshot(&c, CONFIG, &after, &dirs),
            Path::new("environments"),
            &options(Some(&c), Some(&c)),
        )
    }

    fn names(list: &[ComponentName]) -> Vec<&str> {
        list.iter().map(ComponentName::as_str).collect()
    }

    #[test]
    fn changed_values_run_their_component_and_what_depends_on_it_in_that_environment_only() {
        let impact = values_change(
            "dev/network.yaml",
            Some("cidr: 10.0.0.0/16\n"),
            Some("cidr: 10.1.0.0/16\n"),
        )
        .unwrap();
        assert!(impact.config.is_empty());
        let dev = &impact.environments[0];
        assert_eq!(names(&dev.runs), ["network", "clusters", "addons"]);
        assert_eq!(dev.changed.len(), 1);
        assert_eq!(dev.changed[0].1, [Why::Values(1)]);
        assert_eq!(dev.diffs[0].changes[0].path.dotted(), "cidr");
        assert!(impact.environments[1].is_empty(), "prod is untouched");
    }

    #[test]
    fn a_change_in_a_watched_path_is_a_change_of_the_component_that_watches_it() {
        let text = CONFIG.replace(
            "network: {path: c/network,",
            "network: {path: c/network, watch: [modules/vpc, \"modules/{env}.tfvars\"],",
        );
        let c = config(&text);
        let values = map(&[]);
        let before = map(&[
            ("c/network", "n"),
            ("modules/vpc", "v1"),
            ("modules/dev.tfvars", "d1"),
            ("modules/prod.tfvars", "p1"),
        ]);
        let after = map(&[
            ("c/network", "n"),
            ("modules/vpc", "v1"),
            ("modules/dev.tfvars", "d2"),
            ("modules/prod.tfvars", "p1"),
        ]);
        let impact = compare(
            &snapshot(&c, &text, &values, &before),
            &snapshot(&c, &text, &values, &after),
            Path::new("environments"),
            &options(Some(&c), Some(&c)),
        )
        .unwrap();
        let (dev, prod) = (&impact.environments[0], &impact.environments[1]);
        assert_eq!(names(&dev.runs), ["network", "clusters", "addons"]);
        assert_eq!(
            dev.changed,
            [(ComponentName::parse("network").unwrap(), vec![Why::Watched])]
        );
        assert!(prod.is_empty(), "its own file did not change");
    }

    #[test]
    fn a_definition_or_files_change_runs_the_component_in_every_environment() {
        let (a, b) = (
            config(CONFIG),
            config(&CONFIG.replace(
                "c/dns, commands: {apply: ./apply.sh}",
                "c/dns, commands: {apply: ./apply.sh --v2}",
            )),
        );
        let values = map(&[]);
        let before_dirs = map(&[("c/clusters", "t1"), ("c/dns", "d")]);
        let after_dirs = map(&[("c/clusters", "t2"), ("c/dns", "d")]);
        let impact = compare(
            &snapshot(&a, CONFIG, &values, &before_dirs),
            &snapshot(&b, CONFIG, &values, &after_dirs),
            Path::new("environments"),
            &options(Some(&a), Some(&b)),
        )
        .unwrap();
        for env in &impact.environments {
            assert_eq!(names(&env.runs), ["clusters", "dns", "addons"]);
            let whys: Vec<(&str, &[Why])> = env
                .changed
                .iter()
                .map(|(n, w)| (n.as_str(), w.as_slice()))
                .collect();
            assert_eq!(
                whys,
                [
                    ("clusters", &[Why::Files][..]),
                    ("dns", &[Why::Definition][..])
                ]
            );
        }
    }

    #[test]
    fn an_edit_that_changes_no_value_still_runs_the_component_but_shows_no_diff() {
        let impact = values_change(
            "prod/dns.yaml",
            Some("zone: example.com\n"),
            Some("# the public zone\nzone: example.com\n"),
        )
        .unwrap();
        let prod = &impact.environments[1];
        assert_eq!(prod.changed[0].1, [Why::Reformatted]);
        assert!(prod.diffs.is_empty());
        assert_eq!(names(&prod.runs), ["dns"]);
    }

    #[test]
    fn secret_words_of_either_side_hide_values_and_new_things_are_named() {
        let base_text = format!("{CONFIG}secrets: {{keys: [passphrase]}}\n");
        let head_text = CONFIG.replace(
            "  prod: {clouds: [aws]}\n",
            "  prod: {clouds: [aws]}\n  qa: {clouds: [aws]}\n",
        ) + "secrets: {keys: [token]}\n";
        let (a, b) = (config(&base_text), config(&head_text));
        let dirs = map(&[]);
        let before = map(&[("dev/dns.yaml", "passphrase: old-one\n")]);
        let after = map(&[("dev/dns.yaml", "passphrase: new-one\n")]);
        let impact = compare(
            &snapshot(&a, &base_text, &before, &dirs),
            &snapshot(&b, &head_text, &after, &dirs),
            Path::new("environments"),
            &options(Some(&a), Some(&b)),
        )
        .unwrap();
        let change = &impact.environments[0].diffs[0].changes[0];
        assert!(change.secret && change.from.is_none() && change.to.is_none());
        let qa = &impact.environments[2];
        assert_eq!(qa.env.as_str(), "qa");
        assert_eq!(qa.runs.len(), 4, "a new environment deploys everything");
        assert!(qa.changed.iter().all(|(_, w)| w == &[Why::NewEnvironment]));
        assert!(
            !impact.config.is_empty(),
            "orchestrator.yaml itself changed"
        );
    }

    #[test]
    fn a_values_file_of_the_head_that_does_not_parse_is_an_error_naming_it() {
        let report = values_change("dev/dns.yaml", None, Some("zone: [unclosed\n")).unwrap_err();
        assert!(
            report.render(false).contains("environments/dev/dns.yaml:"),
            "{}",
            report.render(false)
        );
    }
}
