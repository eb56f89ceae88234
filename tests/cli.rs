//! The commands on a valid configuration, through the real binary.

mod common;

use common::{Repo, assert_contains, stderr, stdout};
use serde_json::json;

fn ok(repo: &Repo, args: &[&str]) -> String {
    let out = repo.run(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?} failed:\n{}",
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn validate_summarises_a_valid_config() {
    let repo = Repo::valid();
    let text = ok(&repo, &["validate"]);
    assert_eq!(
        text,
        "orchestrator.yaml is valid: 4 components in 3 waves, 3 environments (4 environment/cloud targets)\n"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&ok(&repo, &["validate", "--format", "json"])).unwrap();
    assert_eq!(
        doc,
        json!({"valid": true, "errors": [], "warnings": [], "components": 4, "environments": ["dev", "staging", "prod"]})
    );
}

#[test]
fn validate_counts_one_of_each_in_the_singular() {
    let repo = Repo::new();
    repo.mkdir("c");
    repo.write(
        "orchestrator.yaml",
        "version: 1\ncomponents:\n  a:\n    path: c\n    runner: shell\n    commands:\n      apply: \"true\"\nenvironments:\n  dev: {clouds: [aws]}\n",
    );
    assert_eq!(
        ok(&repo, &["validate"]),
        "orchestrator.yaml is valid: 1 component in 1 wave, 1 environment (1 environment/cloud target)\n"
    );
    // And one error is an error.
    repo.write(
        "orchestrator.yaml",
        "version: 1\ncomponents:\n  a:\n    path: c\n    runner: shell\n    commands:\n      apply: \"true\"\nenvironments:\n  dev: {clouds: [aws]}\nextra: 1\n",
    );
    let out = repo.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).ends_with("\n1 error found; nothing was changed\n"),
        "{}",
        stderr(&out)
    );
}

/// A root whose local module is outside its directory: `validate` warns
/// until it watches the module, and the file stays valid.
#[test]
fn a_local_module_a_root_does_not_watch_is_a_warning() {
    let repo = Repo::new();
    repo.write(
        "stacks/net/main.tf",
        "module \"vpc\" {\n  source = \"../../modules/vpc\"\n}\n",
    );
    repo.write("modules/vpc/main.tf", "# vpc\n");
    let config = "version: 1\ncomponents:\n  net: {path: stacks/net, runner: tofu}\nenvironments:\n  dev: {clouds: [aws]}\n";
    repo.write("orchestrator.yaml", config);
    let (err, doc) = validated_with_warnings(&repo);
    assert_contains(
        &err,
        &[
            "warning: `net` uses the local module `modules/vpc`, which it does not watch",
            "--> stacks/net/main.tf:2:12",
            "2 |   source = \"../../modules/vpc\"",
        ],
    );
    assert_eq!(doc["warnings"][0]["key"], "components.net.watch");
    assert_eq!(doc["warnings"][0]["line"], 2);

    repo.write(
        "orchestrator.yaml",
        config.replace("runner: tofu}", "runner: tofu, watch: [modules/vpc]}"),
    );
    validated_quietly(&repo);
}

/// A decimal whose last zeros YAML drops (`1.30` is 1.3) is most often a
/// version meant as text: `validate` warns at its line, and the file stays
/// valid; quoted, it is text and nothing is said.
#[test]
fn a_decimal_that_loses_its_last_zeros_is_a_warning() {
    let repo = Repo::valid();
    repo.write(
        "environments/dev/clusters.yaml",
        "kubernetes_version: 1.30\nnode_ratio: 0.5\ncpu: 1.0\n",
    );
    let (err, doc) = validated_with_warnings(&repo);
    assert_contains(
        &err,
        &[
            "warning: `1.30` is the number 1.3: components get 1.3 (at `kubernetes_version`)",
            "environments/dev/clusters.yaml:1:21",
            "if it is a version or other text, quote it: \"1.30\"",
        ],
    );
    assert_eq!(err.matches("warning:").count(), 1, "{err}");
    assert_eq!(doc["warnings"].as_array().map(Vec::len), Some(1), "{doc}");
    assert_eq!(doc["warnings"][0]["key"], "kubernetes_version");
    assert_eq!(doc["warnings"][0]["file"], "environments/dev/clusters.yaml");
    assert_eq!(doc["warnings"][0]["line"], 1);

    repo.write(
        "environments/dev/clusters.yaml",
        "kubernetes_version: \"1.30\"\n",
    );
    validated_quietly(&repo);
}

/// `validate` of a repository that is valid and warns: what it printed, and
/// its JSON document, which says it is valid.
fn validated_with_warnings(repo: &Repo) -> (String, serde_json::Value) {
    let out = repo.run(&["validate"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let doc: serde_json::Value =
        serde_json::from_str(&ok(repo, &["validate", "--format", "json"])).unwrap();
    assert_eq!(doc["valid"], true, "{doc}");
    (err, doc)
}

/// `validate` of a repository that is valid and warns of nothing.
fn validated_quietly(repo: &Repo) {
    let out = repo.run(&["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

/// On GitHub Actions, starting libgit2 adds the workspace to
/// `safe.directory` in `$HOME/.gitconfig`: the commands that read only the
/// config do not start it, those that may open the repository do.
#[test]
fn only_commands_that_may_open_the_repository_start_git() {
    let repo = Repo::valid();
    common::git(repo.path(), &["init", "-q", "-b", "main"]);
    let home = tempfile::TempDir::new().unwrap();
    let gitconfig = home.path().join(".gitconfig");
    let run = |args: &[&str]| {
        let out = assert_cmd::Command::cargo_bin("orchestrator")
            .unwrap()
            .current_dir(repo.path())
            .env("NO_COLOR", "1")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", repo.path())
            .env("HOME", home.path())
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    };
    for args in [&["validate"][..], &["graph"], &["schema"]] {
        run(args);
        assert!(!gitconfig.exists(), "{args:?} started libgit2");
    }
    run(&["plan", "--env", "dev"]);
    let written = std::fs::read_to_string(&gitconfig).expect("plan started libgit2");
    assert!(written.contains("safe"), "{written}");
}

#[test]
fn graph_renders_text_mermaid_and_dot() {
    let repo = Repo::valid();
    insta::assert_snapshot!("graph_text", ok(&repo, &["graph"]));
    insta::assert_snapshot!(
        "graph_mermaid",
        ok(&repo, &["graph", "--format", "mermaid"])
    );
    insta::assert_snapshot!("graph_dot", ok(&repo, &["graph", "--format", "dot"]));
}

#[test]
fn graph_json_lists_components_in_deployment_order_with_both_directions() {
    let repo = Repo::valid();
    let doc: serde_json::Value =
        serde_json::from_str(&ok(&repo, &["graph", "--format", "json"])).unwrap();
    let names: Vec<&str> = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["network", "clusters", "dns", "addons"]);
    assert_eq!(
        doc["components"][0]["dependents"],
        json!(["clusters", "dns"])
    );
    assert_eq!(doc["components"][1]["path"], "stacks/{cloud}/clusters");
    assert_eq!(doc["components"][3]["runner"], "helm");
    assert_eq!(
        doc["waves"],
        json!([["network"], ["clusters", "dns"], ["addons"]])
    );
}

#[test]
fn plan_json_is_one_document_in_the_documented_shape() {
    let repo = Repo::valid();
    let out = repo.run(&["plan", "--env", "prod", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).is_empty(),
        "nothing else on stderr: {}",
        stderr(&out)
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        doc,
        json!({
            "environment": "prod",
            "cloud": "aws",
            "components": [
                {"name": "network", "action": "create", "depends_on": [], "wave": 0},
                {"name": "clusters", "action": "create", "depends_on": ["network"], "wave": 1},
                {"name": "dns", "action": "create", "depends_on": ["network"], "wave": 1},
                {"name": "addons", "action": "create", "depends_on": ["clusters"], "wave": 2}
            ],
            "waves": [["network"], ["clusters", "dns"], ["addons"]],
            "missing": []
        })
    );
}

#[test]
fn plan_text_shows_every_cloud_of_the_environment() {
    let repo = Repo::valid();
    insta::assert_snapshot!("plan_dev_text", ok(&repo, &["plan", "--env", "dev"]));
}

#[test]
fn plan_without_cloud_on_a_multi_cloud_environment_prints_one_plan_per_cloud() {
    let repo = Repo::valid();
    let doc: serde_json::Value =
        serde_json::from_str(&ok(&repo, &["plan", "--env", "dev", "--format", "json"])).unwrap();
    let clouds: Vec<&str> = doc
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["cloud"].as_str().unwrap())
        .collect();
    assert_eq!(clouds, ["aws", "azure"]);
    let one: serde_json::Value = serde_json::from_str(&ok(
        &repo,
        &[
            "plan", "--env", "dev", "--cloud", "azure", "--format", "json",
        ],
    ))
    .unwrap();
    assert_eq!(one, doc[1]);
}

fn planned(repo: &Repo, args: &[&str]) -> Vec<(String, String, u64)> {
    let mut full = vec!["plan", "--env", "prod", "--format", "json"];
    full.extend_from_slice(args);
    let doc: serde_json::Value = serde_json::from_str(&ok(repo, &full)).unwrap();
    doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
                c["wave"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn names(plan: &[(String, String, u64)]) -> Vec<&str> {
    plan.iter().map(|(n, _, _)| n.as_str()).collect()
}

#[test]
fn components_select_a_subset_whose_waves_start_at_zero() {
    let repo = Repo::valid();
    let plan = planned(&repo, &["--components", "clusters,addons"]);
    assert_eq!(
        plan,
        [
            ("clusters".into(), "create".into(), 0),
            ("addons".into(), "create".into(), 1)
        ]
    );
    let text = ok(&repo, &["plan", "--env", "prod", "--components", "addons"]);
    assert!(
        text.contains(
            "Not in this run, and not deployed at their current version:\n  clusters (needed by addons)\nAdd --with-deps"
        ),
        "{text}"
    );
}

#[test]
fn with_deps_adds_everything_the_selection_depends_on() {
    let repo = Repo::valid();
    assert_eq!(
        names(&planned(&repo, &["--components", "addons", "--with-deps"])),
        ["network", "clusters", "addons"]
    );
}

#[test]
fn with_dependents_adds_everything_that_depends_on_the_selection() {
    let repo = Repo::valid();
    assert_eq!(
        names(&planned(
            &repo,
            &["--components", "clusters", "--with-dependents"]
        )),
        ["clusters", "addons"]
    );
    assert_eq!(
        names(&planned(
            &repo,
            &["--components", "network", "--with-dependents"]
        )),
        ["network", "clusters", "dns", "addons"]
    );
    assert_eq!(
        names(&planned(
            &repo,
            &[
                "--components",
                "clusters",
                "--components",
                "dns",
                "--with-deps",
                "--with-dependents"
            ]
        )),
        ["network", "clusters", "dns", "addons"]
    );
}

#[test]
fn destroy_plans_in_reverse_dependency_order() {
    let repo = Repo::valid();
    assert!(
        planned(&repo, &["--destroy"])
            .iter()
            .all(|(_, action, _)| action == "noop"),
        "nothing is deployed yet"
    );
    for name in ["network", "clusters", "dns", "addons"] {
        ok(
            &repo,
            &[
                "state",
                "set",
                "--env",
                "prod",
                "--component",
                name,
                "--status",
                "succeeded",
                "--reason",
                "test",
            ],
        );
    }
    let plan = planned(&repo, &["--destroy"]);
    assert_eq!(names(&plan), ["addons", "dns", "clusters", "network"]);
    assert!(plan.iter().all(|(_, action, _)| action == "destroy"));
    let waves: Vec<u64> = plan.iter().map(|(_, _, w)| *w).collect();
    assert_eq!(waves, [0, 0, 1, 2]);
}

#[test]
fn the_same_config_written_in_another_order_gives_byte_identical_output() {
    let a = Repo::valid();
    let b = Repo::valid();
    // Components in reverse order, dependencies listed differently, flow style.
    b.write(
        "orchestrator.yaml",
        "\
version: 1
environments:
  dev: {clouds: [aws, azure]}
  staging: {clouds: [aws], promote_from: dev}
  prod: {clouds: [aws], promote_from: staging, protected: true}
components:
  addons: {runner: helm, path: stacks/addons, depends_on: [clusters]}
  clusters: {path: 'stacks/{cloud}/clusters', depends_on: [network], commands: {apply: ./apply.sh}}
  dns: {depends_on: [network], path: stacks/dns, commands: {apply: ./apply.sh}}
  network: {path: stacks/network, commands: {apply: ./apply.sh}}
defaults: {timeout: 5m, runner: shell}
",
    );
    for args in [
        &["plan", "--env", "dev", "--format", "json"][..],
        &["plan", "--env", "dev"],
        &["plan", "--env", "prod", "--destroy", "--format", "json"],
        &["graph", "--format", "mermaid"],
        &["graph", "--format", "dot"],
        &["graph", "--format", "json"],
        &["graph"],
    ] {
        assert_eq!(ok(&a, args), ok(&b, args), "{args:?}");
    }
}

#[test]
fn config_flag_points_at_a_config_elsewhere_with_paths_relative_to_it() {
    let repo = Repo::valid();
    let elsewhere = Repo::new();
    let out = elsewhere.run(&[
        "--config",
        repo.path().join("orchestrator.yaml").to_str().unwrap(),
        "validate",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn schema_prints_the_committed_schema() {
    let repo = Repo::new();
    let committed =
        std::fs::read_to_string(common::project_root().join("schema/orchestrator.schema.json"))
            .unwrap();
    assert_eq!(ok(&repo, &["schema"]), committed);
}

#[test]
fn usage_errors_exit_2() {
    let repo = Repo::valid();
    let out = repo.run(&["plan"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--env"), "{}", stderr(&out));
    let out = repo.run(&["graph", "--format", "png"]);
    assert_eq!(out.status.code(), Some(2));
}
