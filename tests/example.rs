//! The example that ships at the repository root: the README's first
//! command must work on it, and its files must stay valid.

mod common;

use assert_cmd::Command;
use common::{project_root, stderr, stdout};

fn run(args: &[&str]) -> std::process::Output {
    Command::cargo_bin("orchestrator")
        .unwrap()
        .current_dir(project_root())
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_example_config_and_every_values_file_validate() {
    let out = run(&["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("orchestrator.yaml is valid: 7 components in 4 waves"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_example_points_editors_at_the_committed_schema() {
    let text = std::fs::read_to_string(project_root().join("orchestrator.yaml")).unwrap();
    assert_eq!(
        text.lines().next(),
        Some("# yaml-language-server: $schema=./schema/orchestrator.schema.json")
    );
}

#[test]
fn planning_dev_covers_both_clouds_with_the_chain_and_parallel_branches() {
    let out = run(&["plan", "--env", "dev", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plans: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    for (plan, cloud) in plans.as_array().unwrap().iter().zip(["aws", "azure"]) {
        assert_eq!(plan["environment"], "dev");
        assert_eq!(plan["cloud"], cloud);
        assert_eq!(
            plan["waves"],
            serde_json::json!([
                ["network", "registry"],
                ["clusters", "dns"],
                ["addons", "monitoring"],
                ["platform"]
            ])
        );
    }
}

#[test]
fn planning_prod_from_the_readme_prints_a_table() {
    let out = run(&["plan", "--env", "prod"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("Plan for prod / aws: 7 to create\n"),
        "{text}"
    );
    assert!(
        text.contains("3     platform    create  shell   addons, dns, registry  examples/platform"),
        "{text}"
    );
}
