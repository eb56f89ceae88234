//! Malformed configurations, each through the real binary: exit code 2, a
//! message naming the file, line, column and key, and nothing written.

mod common;

use common::{Repo, assert_contains, stderr, stdout};

/// Validates `config` (with the usual component directories present) and
/// returns stderr, asserting exit code 2 and that every expected fragment
/// appears.
fn rejects(config: &str, expected: &[&str]) -> String {
    let repo = Repo::valid();
    repo.write("orchestrator.yaml", config);
    let before = listing(&repo);
    let out = repo.run(&["validate"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "exit code; stderr:\n{err}");
    assert!(
        stdout(&out).is_empty(),
        "nothing on stdout: {}",
        stdout(&out)
    );
    assert_contains(&err, expected);
    assert_eq!(listing(&repo), before, "validation changed files");
    err
}

fn listing(repo: &Repo) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![repo.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            files.push(
                path.strip_prefix(repo.path())
                    .unwrap()
                    .display()
                    .to_string(),
            );
        }
    }
    files.sort();
    files
}

fn with(replace: &str, by: &str) -> String {
    assert!(common::VALID.contains(replace), "fixture lacks `{replace}`");
    common::VALID.replacen(replace, by, 1)
}

#[test]
fn unknown_key_suggests_the_nearest_valid_key() {
    rejects(
        &with(
            "    depends_on: [network]\n    commands: {apply: ./apply.sh}\n  clusters",
            "    dependson: [network]\n    commands: {apply: ./apply.sh}\n  clusters",
        ),
        &[
            "orchestrator.yaml:11:5",
            "unknown key `dependson`",
            "components.dns.dependson",
            "did you mean `depends_on`?",
        ],
    );
}

#[test]
fn unknown_top_level_key_lists_the_valid_ones() {
    rejects(
        &format!("{}stages: []\n", common::VALID),
        &[
            "orchestrator.yaml:25:1",
            "unknown key `stages` at the top level",
            "did you mean `state`?",
        ],
    );
}

/// `x-` keys at the top level hold YAML anchors for components to merge
/// in; anywhere else, or without the dash, a key is still checked.
#[test]
fn extension_keys_at_the_top_level_hold_anchors_and_are_left_alone() {
    let repo = Repo::new();
    repo.mkdir("c/net");
    repo.mkdir("c/app");
    let config = "version: 1\n\
        x-tofu: &tofu\n  runner: shell\n  timeout: 5m\n  commands: {apply: 'echo applied'}\n\
        x-notes: [anything, {goes: here}]\n\
        components:\n  net:\n    <<: *tofu\n    path: c/net\n  app:\n    <<: *tofu\n    path: c/app\n    depends_on: [net]\n\
        environments:\n  dev: {clouds: [aws]}\n";
    repo.write("orchestrator.yaml", config);
    let out = repo.run(&["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for name in ["net", "app"] {
        assert!(
            stderr(&out).contains(&format!("{name:<13} | applied")),
            "{}",
            stderr(&out)
        );
    }

    rejects(
        &format!("{}xnotes: []\n", common::VALID),
        &[
            "orchestrator.yaml:25:1",
            "unknown key `xnotes` at the top level",
        ],
    );
    rejects(
        &with(
            "    path: stacks/network\n",
            "    path: stacks/network\n    x-owner: team-a\n",
        ),
        &["unknown key `x-owner` in `components.network`"],
    );
}

#[test]
fn an_unknown_placeholder_in_a_variable_is_refused_at_its_line() {
    rejects(
        &with(
            "    path: stacks/network\n",
            "    path: stacks/network\n    env:\n      AWS_PROFILE: acme-{enviroment}\n",
        ),
        &[
            "orchestrator.yaml:9:20",
            "unknown placeholder `{enviroment}`",
            "components.network.env.AWS_PROFILE",
        ],
    );
}

#[test]
fn unknown_key_with_no_near_miss_lists_the_valid_ones() {
    rejects(
        &with(
            "    path: stacks/network\n",
            "    path: stacks/network\n    owner: team-a\n",
        ),
        &[
            "orchestrator.yaml:8:5",
            "unknown key `owner` in `components.network`",
            "valid keys here: description, path, depends_on, commands, verify, runner",
        ],
    );
}

#[test]
fn wrong_type_names_what_was_expected() {
    rejects(
        &with("version: 1\n", "version: 1\nmax_parallel: many\n"),
        &[
            "orchestrator.yaml:2:15",
            "max_parallel",
            "expected an integer, found a string",
        ],
    );
}

#[test]
fn a_string_where_a_list_belongs_is_explained() {
    rejects(
        &with("depends_on: [network]", "depends_on: network"),
        &[
            "orchestrator.yaml:11:17",
            "components.dns.depends_on",
            "expected a list",
            "[a, b]",
        ],
    );
}

#[test]
fn missing_version_is_reported() {
    rejects(
        &with("version: 1\n", ""),
        &[
            "orchestrator.yaml:1:1",
            "missing required key `version`",
            "add `version: 1`",
        ],
    );
}

#[test]
fn unsupported_version_says_to_upgrade() {
    rejects(
        &with("version: 1", "version: 2"),
        &[
            "orchestrator.yaml:1:10",
            "version 2 is not supported",
            "upgrade",
        ],
    );
}

#[test]
fn unknown_dependency_names_it_and_suggests_the_nearest_component() {
    rejects(
        &with("depends_on: [clusters]", "depends_on: [clusterz]"),
        &[
            "orchestrator.yaml:20:18",
            "`addons` depends on `clusterz`, which is not a component",
            "components.addons.depends_on",
            "did you mean `clusters`?",
        ],
    );
}

#[test]
fn self_dependency_is_a_cycle_of_one() {
    rejects(
        &with("depends_on: [clusters]", "depends_on: [addons]"),
        &[
            "orchestrator.yaml:20:18",
            "`addons` depends on itself",
            "addons → addons",
        ],
    );
}

#[test]
fn two_node_cycle_is_printed_whole() {
    let config = with(
        "  network:\n    path: stacks/network\n",
        "  network:\n    path: stacks/network\n    depends_on: [dns]\n",
    );
    rejects(
        &config,
        &[
            "dependency cycle: dns → network → dns",
            "components.dns.depends_on",
            "orchestrator.yaml:12:18",
        ],
    );
}

#[test]
fn three_node_cycle_is_printed_whole() {
    let config = with(
        "  network:\n    path: stacks/network\n",
        "  network:\n    path: stacks/network\n    depends_on: [addons]\n",
    );
    rejects(
        &config,
        &[
            "dependency cycle: addons → network → clusters → addons",
            "components.addons.depends_on",
        ],
    );
}

#[test]
fn duplicate_component_key_names_both_lines() {
    let config = with("  dns:\n", "  network:\n    path: stacks/network\n  dns:\n");
    rejects(
        &config,
        &[
            "orchestrator.yaml:9:3",
            "duplicate key `network` (first written at line 6)",
        ],
    );
}

#[test]
fn bad_name_characters_are_refused_with_a_spelling_that_works() {
    rejects(
        &with("  dns:", "  DNS:"),
        &[
            "orchestrator.yaml:9:3",
            "`DNS` is not a valid component name",
            "components.DNS",
            "did you mean `dns`?",
        ],
    );
}

#[test]
fn path_traversal_in_a_name_is_refused() {
    rejects(
        &with("  dns:", "  ../dns:"),
        &[
            "orchestrator.yaml:9:3",
            "`../dns` is not a valid component name",
        ],
    );
}

#[test]
fn path_traversal_in_a_path_is_refused() {
    rejects(
        &with("path: stacks/dns", "path: ../../etc"),
        &[
            "orchestrator.yaml:10:11",
            "components.dns.path",
            "must not use `..`",
        ],
    );
}

#[test]
fn absolute_paths_are_refused() {
    rejects(
        &with("path: stacks/dns", "path: /etc"),
        &["orchestrator.yaml:10:11", "must be relative"],
    );
}

#[test]
fn missing_component_directory_is_reported_per_cloud() {
    let repo = Repo::valid();
    std::fs::remove_dir_all(repo.path().join("stacks/azure")).unwrap();
    let out = repo.run(&["validate"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("orchestrator.yaml:14:11"), "{err}");
    assert!(
        err.contains(
            "path `stacks/azure/clusters` (from `stacks/{cloud}/clusters`) does not exist"
        ),
        "{err}"
    );
    assert!(!err.contains("stacks/aws/clusters"), "aws exists: {err}");
}

#[test]
fn missing_path_key_is_reported() {
    rejects(
        &with("    path: stacks/dns\n", ""),
        &["orchestrator.yaml:9:3", "component `dns` has no `path`"],
    );
}

#[test]
fn durations_need_units() {
    rejects(
        &with("timeout: 5m", "timeout: 30"),
        &[
            "orchestrator.yaml:4:12",
            "defaults.timeout",
            "`30` has no unit",
        ],
    );
    rejects(
        &with("timeout: 5m", "timeout: soon"),
        &["orchestrator.yaml:4:12", "`soon` is not a duration"],
    );
}

#[test]
fn unknown_runner_suggests_the_nearest() {
    rejects(
        &with("runner: helm", "runner: hlm"),
        &[
            "orchestrator.yaml:18:13",
            "unknown runner `hlm`",
            "did you mean `helm`?",
        ],
    );
}

#[test]
fn commands_on_a_non_shell_runner_are_refused() {
    rejects(
        &with("runner: helm\n", "runner: helm\n    commands: {apply: x}\n"),
        &[
            "components.addons.commands",
            "only used by the shell runner",
            "set `runner: shell`",
        ],
    );
}

#[test]
fn promote_from_loop_is_printed_whole() {
    let config = with(
        "dev: {clouds: [aws, azure]}",
        "dev: {clouds: [aws, azure], promote_from: prod}",
    );
    rejects(
        &config,
        &[
            "promotion loop: dev → staging → prod → dev",
            "environments.dev.promote_from",
            "orchestrator.yaml:22:",
        ],
    );
}

#[test]
fn promote_from_must_name_an_environment() {
    rejects(
        &with("promote_from: dev", "promote_from: devv"),
        &[
            "orchestrator.yaml:23:42",
            "`devv` is not an environment",
            "did you mean `dev`?",
        ],
    );
}

#[test]
fn promotion_key_patterns_must_use_whole_key_wildcards() {
    rejects(
        &format!(
            "{}promotion:\n  keys: [\"**.version\", \"image_*\"]\n",
            common::VALID
        ),
        &[
            "orchestrator.yaml:26:24",
            "`image_*` is not a key pattern",
            "`*` and `**` stand for whole keys",
            "promotion.keys",
        ],
    );
}

#[test]
fn empty_file_says_what_it_needs() {
    rejects(
        "",
        &[
            "orchestrator.yaml",
            "the file is empty",
            "`version`, `components` and `environments`",
        ],
    );
    rejects("# just a comment\n", &["the file is empty"]);
}

#[test]
fn not_yaml_at_all_is_a_parse_error_with_a_position() {
    rejects(
        "components: [unclosed\n  - x: {\n",
        &["orchestrator.yaml:", "invalid YAML"],
    );
    rejects(
        "just some words\n",
        &[
            "orchestrator.yaml:1:1",
            "the file must be a mapping of keys, found a string",
        ],
    );
}

#[test]
fn a_50_mb_file_is_refused_by_the_budget_without_reading_it() {
    let repo = Repo::valid();
    let mut big = common::VALID.to_string();
    let filler = "# padding padding padding padding padding padding padding padding\n";
    while big.len() < 50 * 1024 * 1024 {
        big.push_str(filler);
    }
    repo.write("orchestrator.yaml", &big);
    let out = repo.run(&["validate"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("orchestrator.yaml"), "{err}");
    assert!(err.contains("over the limit of 33554432 bytes"), "{err}");
}

/// Nine levels of nine aliases: a few hundred bytes that expand to 387
/// million nodes.
#[test]
fn an_alias_bomb_is_refused_by_the_node_budget_at_its_line() {
    let mut config = common::VALID.to_string();
    config.push_str("x-bomb:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for (prev, name) in ('a'..='h').zip('b'..='i') {
        let refs = vec![format!("*{prev}"); 9].join(", ");
        config.push_str(&format!("  {name}: &{name} [{refs}]\n"));
    }
    let err = rejects(
        &config,
        &["invalid YAML: the document has more than 1000000 nodes (aliases expanded)"],
    );
    // `g` expands to 9^7 = 4.8 million nodes: the budget runs out there.
    let line = config.lines().position(|l| l.starts_with("  g: ")).unwrap() + 1;
    assert!(
        err.contains(&format!("orchestrator.yaml:{line}:")),
        "the line where the budget ran out:\n{err}"
    );
    assert!(
        !err.contains("(at `"),
        "a problem of the whole file has no key:\n{err}"
    );
}

#[test]
fn tabs_in_indentation_are_refused_with_a_position() {
    rejects(
        &with("  dns:\n    path", "  dns:\n\tpath"),
        &["orchestrator.yaml:10:", "invalid YAML"],
    );
}

#[test]
fn yes_no_on_off_stay_strings_so_they_cannot_pass_as_booleans() {
    rejects(
        &with("protected: true", "protected: yes"),
        &[
            "orchestrator.yaml:24:59",
            "expected true or false, found the string `yes`",
            "YAML 1.2 reads only true and false",
        ],
    );
}

#[test]
fn on_and_no_are_ordinary_names() {
    let repo = Repo::valid();
    let config = with(
        "  dns:\n    path: stacks/dns\n    depends_on: [network]",
        "  on:\n    path: stacks/dns\n    depends_on: [network]\n    commands: {apply: x}\n  no:\n    path: stacks/dns\n    depends_on: [on]",
    );
    repo.write("orchestrator.yaml", config);
    let out = repo.run(&["graph", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let names: Vec<&str> = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"on") && names.contains(&"no"), "{names:?}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let config = with("runner: helm", "runner: hlm")
        .replace("version: 1\n", "version: 1\nmax_parallel: 0\n")
        .replace("[clusters]", "[clusterz]");
    let err = rejects(
        &config,
        &[
            "unknown runner `hlm`",
            "max_parallel",
            "out of range",
            "clusterz",
        ],
    );
    assert!(err.contains("3 errors found; nothing was changed"), "{err}");
}

#[test]
fn shell_components_need_an_apply_command() {
    rejects(
        &with("    commands: {apply: ./apply.sh}\n  dns", "  dns"),
        &[
            "orchestrator.yaml:6:3",
            "shell component `network` has no `commands`",
        ],
    );
}

#[test]
fn reserved_and_invalid_environment_variables_are_refused() {
    let config = with(
        "  timeout: 5m\n",
        "  timeout: 5m\n  env:\n    ORCHESTRATOR_ENV: x\n    1BAD: y\n",
    );
    rejects(
        &config,
        &[
            "defaults.env.ORCHESTRATOR_ENV",
            "is reserved",
            "`1BAD` is not a valid environment variable name",
        ],
    );
}

#[test]
fn unknown_placeholders_in_paths_are_refused() {
    rejects(
        &with("stacks/{cloud}/clusters", "stacks/{region}/clusters"),
        &["orchestrator.yaml:14:11", "unknown placeholder `{region}`"],
    );
}

#[test]
fn unknown_environment_in_env_suggests_the_nearest() {
    let repo = Repo::valid();
    let out = repo.run(&["plan", "--env", "stagin"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown environment `stagin`"), "{err}");
    assert!(err.contains("did you mean `staging`?"), "{err}");
}

#[test]
fn unknown_cloud_names_the_environment_s_clouds() {
    let repo = Repo::valid();
    let out = repo.run(&["plan", "--env", "prod", "--cloud", "azure"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("environment `prod` has no cloud `azure`"),
        "{err}"
    );
    assert!(err.contains("clouds: aws"), "{err}");
}

#[test]
fn unknown_component_in_components_suggests_the_nearest() {
    let repo = Repo::valid();
    let out = repo.run(&["plan", "--env", "dev", "--components", "network,adons"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown component `adons`"), "{err}");
    assert!(err.contains("did you mean `addons`?"), "{err}");
}

#[test]
fn missing_config_file_says_how_to_point_at_one() {
    let repo = Repo::new();
    let out = repo.run(&["validate"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("orchestrator.yaml") && err.contains("--config PATH"),
        "{err}"
    );
}

#[test]
fn misnamed_values_files_are_refused() {
    let repo = Repo::valid();
    repo.write("environments/dev/clusterz.yaml", "nodes: 3\n");
    repo.write("environments/dev/dns.yml", "zone: x\n");
    repo.write("environments/qa/network.yaml", "cidr: 10.0.0.0/16\n");
    let out = repo.run(&["validate"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`clusterz.yaml` matches no component")
            && err.contains("did you mean `clusters`?"),
        "{err}"
    );
    assert!(err.contains("rename it to `dns.yaml`"), "{err}");
    assert!(err.contains("folder `qa` matches no environment"), "{err}");
}

#[test]
fn values_files_must_be_mappings_and_valid_yaml() {
    let repo = Repo::valid();
    repo.write("environments/dev/network.yaml", "- just\n- a list\n");
    repo.write("environments/prod/dns.yaml", "zone: a\nzone: b\n");
    let out = repo.run(&["validate"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("network.yaml:1:1") && err.contains("must be a mapping"),
        "{err}"
    );
    assert!(
        err.contains("dns.yaml:2:1") && err.contains("duplicate key `zone`"),
        "{err}"
    );
}

/// Components get their values as JSON, which has no infinity or NaN and
/// reads an integer beyond 64 bits as a float: such a value is refused at
/// its line rather than handed on as null or rounded, and nothing runs.
#[test]
fn values_json_cannot_carry_as_written_are_refused_before_anything_runs() {
    let repo = Repo::valid();
    repo.write(
        "environments/dev/network.yaml",
        "cidr: 10.0.0.0/16\nlimits:\n  burst: .inf\n  ratios: [0.5, .nan]\naccount: 123456789012345678901\nmax: 9223372036854775807\n",
    );
    for args in [&["validate"][..], &["apply", "--env", "dev", "--no-commit"]] {
        let out = repo.run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for expected in [
            "environments/dev/network.yaml:3:10",
            "`.inf` has no JSON form: components would get null (at `limits.burst`)",
            "environments/dev/network.yaml:4:17",
            "(at `limits.ratios.1`)",
            "environments/dev/network.yaml:5:10",
            "`123456789012345678901` is too large for a 64-bit integer: components would get 1.2345678901234568e+20 (at `account`)",
            "quote the value to pass its text",
            "3 errors found; nothing was changed",
        ] {
            assert!(
                err.contains(expected),
                "{args:?}: missing {expected:?} in\n{err}"
            );
        }
        assert!(
            !err.contains("`max`"),
            "the largest 64-bit integer is fine: {err}"
        );
    }
    assert!(
        !repo.path().join(".orchestrator").exists(),
        "nothing was run or recorded"
    );
}

#[test]
fn validate_json_lists_errors_on_stdout_and_still_exits_2() {
    let repo = Repo::valid();
    repo.write("orchestrator.yaml", with("runner: helm", "runner: hlm"));
    let out = repo.run(&["validate", "--format", "json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).is_empty(),
        "the errors are in the document: {}",
        stderr(&out)
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    assert_eq!(doc["valid"], false);
    let e = &doc["errors"][0];
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(18), Some(13))
    );
    assert_eq!(e["key"], "components.addons.runner");
    assert_eq!(e["hint"], "did you mean `helm`?");
}

#[test]
fn retry_patterns_must_be_valid_regular_expressions() {
    rejects(
        &with(
            "  timeout: 5m\n",
            "  timeout: 5m\n  retry_on: ['rate limit', 'unclosed (group']\n",
        ),
        &[
            "orchestrator.yaml:5:28",
            "defaults.retry_on",
            "`unclosed (group` is not a valid regular expression",
        ],
    );
}

#[test]
fn a_sensitive_pattern_with_an_empty_key_is_refused() {
    rejects(
        &format!(
            "{}secrets:\n  sensitive: [\"db..password\"]\n",
            common::VALID
        ),
        &[
            "orchestrator.yaml:26:15",
            "secrets.sensitive",
            "it has an empty key",
        ],
    );
}

#[test]
fn a_star_inside_a_key_is_refused() {
    rejects(
        &format!(
            "{}secrets:\n  sensitive:\n    - \"**.db_*\"\n",
            common::VALID
        ),
        &[
            "orchestrator.yaml:27:7",
            "secrets.sensitive",
            "`*` and `**` stand for whole keys",
        ],
    );
}

#[test]
fn secret_key_words_must_be_words_in_a_list() {
    rejects(
        &format!("{}secrets:\n  keys: password\n", common::VALID),
        &["orchestrator.yaml:26:9", "secrets.keys", "expected a list"],
    );
    rejects(
        &format!("{}secrets:\n  keys: [\"pass word\"]\n", common::VALID),
        &["orchestrator.yaml:26:10", "`pass word` is not a key word"],
    );
}

#[test]
fn a_misspelt_secrets_key_suggests_the_right_one() {
    rejects(
        &format!("{}secrets:\n  sensitve: []\n", common::VALID),
        &[
            "orchestrator.yaml:26:3",
            "unknown key `sensitve` in `secrets`",
            "did you mean `sensitive`?",
        ],
    );
}

#[test]
fn issue_labels_must_be_usable_and_at_least_one() {
    rejects(
        &format!("{}issues:\n  labels: [\"a,b\"]\n", common::VALID),
        &[
            "orchestrator.yaml:26:12",
            "issues.labels",
            "may not contain commas",
        ],
    );
    rejects(
        &format!("{}issues:\n  labels: []\n", common::VALID),
        &[
            "orchestrator.yaml:26:11",
            "list at least one label",
            "found by their first label",
        ],
    );
}

#[test]
fn issue_assignees_must_be_github_user_names() {
    rejects(
        &format!("{}issues:\n  assignees: [\"-oncall\"]\n", common::VALID),
        &[
            "orchestrator.yaml:26:15",
            "issues.assignees",
            "`-oncall` is not a GitHub user name",
        ],
    );
}

#[test]
fn a_state_author_must_be_a_name_and_an_email() {
    rejects(
        &format!(
            "{}state:\n  branch: orchestrator-state\n  author: deploy-bot\n",
            common::VALID
        ),
        &[
            "orchestrator.yaml:27:11",
            "state.author",
            "not an author like `orchestrator[bot] <bot@example.com>`",
        ],
    );
}
