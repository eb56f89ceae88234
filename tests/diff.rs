//! `orchestrator diff` through the real binary, on real values files.

mod common;

use common::{Repo, stderr, stdout};
use serde_json::{Value, json};

/// The common test repository, with promotion keys and values for dev and
/// staging: a version to promote, sizes that stay, a secret, a node pool
/// only dev has, a reordered list, and a component only dev configures.
fn repo() -> Repo {
    let repo = Repo::valid();
    repo.write(
        "orchestrator.yaml",
        format!(
            "{}promotion:\n  keys: [\"**.version\", \"**.image_tag\"]\n",
            common::VALID
        ),
    );
    repo.write(
        "environments/dev/clusters.yaml",
        "# dev clusters\nkubernetes:\n  version: \"1.32\"\nnode_pools:\n  - name: system\n    size: 1\n  - name: batch\n    size: 0\nzones: [a, b]\ndb_password: hunter2\n",
    );
    repo.write(
        "environments/staging/clusters.yaml",
        "# staging clusters\nkubernetes:\n  version: \"1.31\"\nnode_pools:\n  - name: system\n    size: 3\nzones: [b, a]\ndb_password: correct-horse\n",
    );
    repo.write(
        "environments/dev/dns.yaml",
        "zone: dev.example.com\napiToken: t0k3n\n",
    );
    repo.write(
        "environments/dev/addons.yaml",
        "image_tag: \"2.0\"\nreplicas: 1\n",
    );
    repo.write(
        "environments/staging/addons.yaml",
        "image_tag: \"2.0\"\nreplicas: 1\n",
    );
    repo
}

fn run(repo: &Repo, args: &[&str]) -> (Option<i32>, String, String) {
    let out = repo.run(args);
    (out.status.code(), stdout(&out), stderr(&out))
}

/// `diff --from dev --to staging` with more arguments.
fn dev_to_staging(repo: &Repo, more: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["diff", "--from", "dev", "--to", "staging"];
    args.extend_from_slice(more);
    run(repo, &args)
}

#[test]
fn text_groups_changes_per_component_and_marks_what_promotion_copies() {
    let repo = repo();
    let (code, text, err) = dev_to_staging(&repo, &[]);
    assert_eq!(code, Some(0), "{err}");
    insta::assert_snapshot!("diff_dev_staging_text", text);
}

#[test]
fn markdown_has_a_summary_table_and_a_collapsible_section_per_component() {
    let repo = repo();
    let (code, text, err) = dev_to_staging(&repo, &["--format", "markdown"]);
    assert_eq!(code, Some(0), "{err}");
    insta::assert_snapshot!("diff_dev_staging_markdown", text);
}

#[test]
fn json_is_one_document_listing_each_change_with_its_promotion() {
    let repo = repo();
    let (code, text, err) = dev_to_staging(&repo, &["--format", "json"]);
    assert_eq!(code, Some(0));
    assert!(err.is_empty(), "nothing on stderr: {err}");
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["from"], "dev");
    assert_eq!(doc["only_in_from"], json!(["dns"]));
    let changes: Vec<(String, String, String, bool)> = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["component"].as_str().unwrap().to_string(),
                c["path"].as_str().unwrap().to_string(),
                c["kind"].as_str().unwrap().to_string(),
                c["promotable"].as_bool().unwrap(),
            )
        })
        .collect();
    let expect = |c: &str, p: &str, k: &str, promotable: bool| {
        (c.to_string(), p.to_string(), k.to_string(), promotable)
    };
    assert_eq!(
        changes,
        [
            expect("clusters", "kubernetes.version", "modified", true),
            expect("clusters", "node_pools.system.size", "modified", false),
            expect("clusters", "node_pools.batch", "removed", false),
            expect("clusters", "zones", "order_changed", false),
            expect("clusters", "db_password", "modified", false),
            expect("dns", "", "removed", false),
        ]
    );
    assert_eq!(
        doc["changes"][1]["go_patch"],
        "/node_pools/name=system/size"
    );
    assert_eq!(doc["changes"][0]["from"], "1.32");
}

#[test]
fn secrets_never_appear_in_any_format() {
    let repo = repo();
    for format in ["text", "markdown", "json"] {
        let (code, text, err) = dev_to_staging(&repo, &["--format", format]);
        assert_eq!(code, Some(0), "{err}");
        for secret in ["hunter2", "correct-horse", "t0k3n"] {
            assert!(!text.contains(secret), "{format} shows {secret}:\n{text}");
            assert!(!err.contains(secret), "{format} stderr shows {secret}");
        }
        assert!(text.contains("db_password"), "the change itself is shown");
    }
}

/// One field of every change in a JSON document.
fn field(text: &str, name: &str) -> Vec<String> {
    let doc: Value = serde_json::from_str(text).unwrap();
    doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[name].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn exit_code_says_whether_anything_differs() {
    let repo = repo();
    assert_eq!(dev_to_staging(&repo, &["--exit-code"]).0, Some(1));
    let (code, text, _) = dev_to_staging(&repo, &["--exit-code", "--components", "addons"]);
    assert_eq!(code, Some(0));
    assert_eq!(text, "dev → staging: no differences in 1 component\n");
}

#[test]
fn order_changes_can_be_left_out() {
    let repo = repo();
    let json = ["--components", "clusters", "--format", "json"];
    let all = field(&dev_to_staging(&repo, &json).1, "kind");
    assert!(all.contains(&"order_changed".to_string()), "{all:?}");
    let quiet = [&json[..], &["--ignore-order-changes"]].concat();
    let kinds = field(&dev_to_staging(&repo, &quiet).1, "kind");
    assert_eq!(kinds.len(), all.len() - 1);
    assert!(!kinds.contains(&"order_changed".to_string()), "{kinds:?}");
}

#[test]
fn an_extra_identifier_matches_list_entries_by_it() {
    let repo = repo();
    repo.write(
        "environments/dev/network.yaml",
        "peers:\n  - {peer: hub, cidr: 10.0.0.0/16}\n  - {peer: vpn, cidr: 10.1.0.0/16}\n",
    );
    repo.write(
        "environments/staging/network.yaml",
        "peers:\n  - {peer: vpn, cidr: 10.1.0.0/16}\n",
    );
    let json = ["--components", "network", "--format", "json"];
    assert_eq!(
        field(&dev_to_staging(&repo, &json).1, "go_patch"),
        ["/peers/0/peer", "/peers/0/cidr", "/peers/1"]
    );
    let by_peer = [&json[..], &["--identifier", "peer"]].concat();
    assert_eq!(
        field(&dev_to_staging(&repo, &by_peer).1, "go_patch"),
        ["/peers/peer=hub"]
    );
}

#[test]
fn an_unknown_environment_is_bad_input_with_a_suggestion() {
    let repo = repo();
    let (code, text, err) = run(&repo, &["diff", "--from", "dev", "--to", "stagin"]);
    assert_eq!(code, Some(2));
    assert!(text.is_empty());
    assert!(err.contains("unknown environment `stagin`"), "{err}");
    assert!(err.contains("did you mean `staging`?"), "{err}");
}

#[test]
fn a_broken_values_file_is_reported_with_its_file_line_and_key() {
    let repo = repo();
    repo.write(
        "environments/staging/addons.yaml",
        "image_tag: \"2.0\"\nreplicas: 1\nreplicas: 2\n",
    );
    let (code, text, err) = dev_to_staging(&repo, &[]);
    assert_eq!(code, Some(2));
    assert!(text.is_empty());
    assert!(
        err.contains("environments/staging/addons.yaml:3:1"),
        "{err}"
    );
    assert!(err.contains("duplicate key `replicas`"), "{err}");
    repo.write("environments/dev/addons.yaml", "- not a mapping\n");
    let (code, _, err) = dev_to_staging(&repo, &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("environments/dev/addons.yaml:1:1"), "{err}");
    assert!(
        err.contains("a values file must be a mapping of keys, found a list"),
        "{err}"
    );
    assert!(
        err.contains("duplicate key `replicas`"),
        "every problem at once: {err}"
    );
}
