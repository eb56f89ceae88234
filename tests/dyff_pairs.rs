//! The structural diff against dyff, on dyff's own YAML pairs
//! (`tests/fixtures/dyff/`, see its README): for every pair, the changed
//! paths and kinds we find must be the ones in `expected-paths.json`.
//!
//! Our changes are finer than dyff's report in two ways, and each is
//! translated here before comparing, not hidden:
//!
//! - A key or list entry that only one side has is one change at its own
//!   path (`yaml.map.stringY` added, `scrape_configs.kubernetes-nodes`
//!   removed), so promotion and the JSON output can name it; dyff groups
//!   them under the mapping or list that holds them (`/yaml/map`:
//!   "addition: stringY, ..."). Compared at the parent's path.
//! - A list of scalars is one value, modified as a whole, because promotion
//!   copies it whole; dyff lists the entries removed and added. Compared as
//!   "removed" when `from` has entries `to` lacks and "added" for the
//!   reverse, as dyff reports it.

use std::collections::BTreeSet;
use std::path::{Path as FsPath, PathBuf};

use orchestrator_action::config::keypath::SecretPolicy;
use orchestrator_action::diff::{self, Change, Kind, Options};
use orchestrator_action::yaml;
use serde_json::Value;

fn fixtures() -> PathBuf {
    FsPath::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dyff")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected-paths.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// One comparable fact: in which document, at which path (dot or go-patch
/// form), what kind of change.
type Fact = (Option<String>, String, String);

fn diff_pair(pair: &Value, options: &Options) -> Vec<Change> {
    let read =
        |key: &str| std::fs::read_to_string(fixtures().join(pair[key].as_str().unwrap())).unwrap();
    let (from, to) = (read("from"), read("to"));
    diff::documents(
        &yaml::parse_documents(&from).unwrap(),
        &yaml::parse_documents(&to).unwrap(),
        options,
    )
}

/// Our changes as dyff reports them (see the module comment).
fn ours(changes: &[Change], go_patch: bool) -> BTreeSet<Fact> {
    let mut facts = BTreeSet::new();
    for c in changes {
        let at = match c.kind {
            Kind::Added | Kind::Removed => c.path.parent(),
            _ => c.path.clone(),
        };
        let path = match (go_patch, at.is_root()) {
            (true, _) => at.go_patch(),
            (false, true) => "(root level)".to_string(),
            (false, false) => at.dotted(),
        };
        let mut kinds = Vec::new();
        match c.kind {
            Kind::Added => kinds.push("added".to_string()),
            Kind::Removed => kinds.push("removed".to_string()),
            Kind::OrderChanged => kinds.push("order".to_string()),
            Kind::TypeChanged => kinds.push(format!(
                "type {} -> {}",
                c.from_type.unwrap(),
                c.to_type.unwrap()
            )),
            Kind::Modified if c.from_type == Some("list") => {
                let items = |v: &Option<Value>| v.as_ref().unwrap().as_array().unwrap().clone();
                let (from, to) = (items(&c.from), items(&c.to));
                if from.iter().any(|x| !to.contains(x)) {
                    kinds.push("removed".to_string());
                }
                if to.iter().any(|x| !from.contains(x)) {
                    kinds.push("added".to_string());
                }
            }
            Kind::Modified => kinds.push("modified".to_string()),
        }
        for kind in kinds {
            facts.insert((c.document.clone(), path.clone(), kind));
        }
    }
    facts
}

/// A dyff change line (`± type change from map to list`, `removal: X, Z`,
/// `+ one document added:`) as a kind.
fn dyff_kind(line: &str) -> String {
    let line = line.to_lowercase();
    let name = |t: &str| match t.trim() {
        "<nil>" => "null".to_string(),
        other => other.to_string(),
    };
    if let Some(rest) = line.split("type change from ").nth(1) {
        let (a, b) = rest.split_once(" to ").unwrap();
        return format!("type {} -> {}", name(a), name(b));
    }
    if let Some(rest) = line.split("(type change ").nth(1) {
        let (a, b) = rest.trim_end_matches(')').split_once(" -> ").unwrap();
        return format!("type {} -> {}", name(a), name(b));
    }
    // "modification: trailing newlines added" is a modification.
    let modified = ["value change", "modification", "certificate change"];
    if line.contains("order change") {
        "order".into()
    } else if modified.iter().any(|m| line.contains(m)) {
        "modified".into()
    } else if line.starts_with("removal") || line.contains("removed") {
        "removed".into()
    } else {
        assert!(
            line.starts_with("addition") || line.contains("added"),
            "unknown dyff change `{line}`"
        );
        "added".into()
    }
}

/// The facts a list of expectations (`expected_spruce`, `expected_human`,
/// `expected_gopatch`) states.
fn theirs(entries: &Value) -> BTreeSet<Fact> {
    let mut facts = BTreeSet::new();
    for e in entries.as_array().unwrap() {
        let document = match &e["document"] {
            Value::Number(n) => Some(format!("#{n}")),
            Value::String(s) => Some(s.clone()),
            _ => None,
        };
        for line in e["changes"].as_array().unwrap() {
            let kind = dyff_kind(line.as_str().unwrap());
            facts.insert((document.clone(), e["path"].as_str().unwrap().into(), kind));
        }
    }
    facts
}

/// Compares one pair under `options`, in every path form it has expectations for.
fn check(name: &str, options: &Options) {
    let all = expected();
    let pair = &all[name];
    let changes = diff_pair(pair, options);
    let mut checked = 0;
    for (key, go_patch) in [
        ("expected_spruce", false),
        ("expected_human", false),
        ("expected_gopatch", true),
    ] {
        if pair[key].is_array() {
            assert_eq!(
                ours(&changes, go_patch),
                theirs(&pair[key]),
                "{name} ({key}); our changes: {changes:#?}"
            );
            checked += 1;
        }
    }
    if let Some(paths) = pair["expected_gopatch_paths"].as_array() {
        let want: BTreeSet<String> = paths.iter().map(|p| p.as_str().unwrap().into()).collect();
        let got: BTreeSet<String> = ours(&changes, true).into_iter().map(|f| f.1).collect();
        assert_eq!(got, want, "{name} (go-patch paths)");
    }
    assert!(checked > 0, "{name} has no expectations");
}

/// dyff prints every value; so do we when nothing is secret.
fn open() -> Options {
    Options {
        secrets: SecretPolicy::none(),
        ..Options::default()
    }
}

#[test]
fn every_pair_has_a_test() {
    let all = expected();
    let names: BTreeSet<&str> = all
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| !k.starts_with('_'))
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "k8s-configmap",
            "k8s-multi-docs",
            "multiline-insert",
            "prometheus",
            "readme-example",
            "testbed",
            "type-change-map-to-list",
        ])
    );
}

#[test]
fn testbed_nil_types_values_order_multiline_certificate_and_a_second_document() {
    check("testbed", &open());
    check("testbed", &Options::default());
}

#[test]
fn map_to_list_and_map_to_null_are_type_changes() {
    check("type-change-map-to-list", &open());
    check("type-change-map-to-list", &Options::default());
}

/// How many lines the line diff of a modified string adds and removes, as
/// dyff counts its inserts and deletions.
fn lines_added_and_removed(change: &Change) -> (usize, usize) {
    let from = change.from.as_ref().and_then(Value::as_str).unwrap();
    let to = change.to.as_ref().and_then(Value::as_str).unwrap();
    let lines = diff::line_diff(from, to, 3);
    let count = |added: bool| {
        lines
            .iter()
            .filter(|l| match l {
                diff::Line::Added(_) => added,
                diff::Line::Removed(_) => !added,
                _ => false,
            })
            .count()
    };
    (count(true), count(false))
}

#[test]
fn a_line_inserted_into_a_block_scalar_is_a_multiline_change() {
    check("multiline-insert", &open());
    let changes = diff_pair(&expected()["multiline-insert"], &open());
    assert!(changes[0].is_multiline());
    assert_eq!(
        lines_added_and_removed(&changes[0]),
        (3, 0),
        "dyff: three lines inserted, none deleted"
    );
}

#[test]
fn an_embedded_yaml_string_in_a_configmap_is_one_multiline_change() {
    check("k8s-configmap", &open());
    check("k8s-configmap", &Options::default());
    let changes = diff_pair(&expected()["k8s-configmap"], &open());
    assert_eq!(
        lines_added_and_removed(&changes[0]),
        (1, 2),
        "dyff: one insert, two deletions"
    );
}

#[test]
fn kubernetes_documents_are_matched_by_identity() {
    check("k8s-multi-docs", &open());
    check("k8s-multi-docs", &Options::default());
}

#[test]
fn readme_example_map_keys_types_whitespace_and_named_lists() {
    check("readme-example", &open());
}

/// A deliberate difference: `key` is both a default identifier and, by
/// default, a secret word. An identifier is printed in every path through
/// its entry, so a secret-looking field is never used as one: under the
/// default policy the `key`-named list is compared by position and its
/// values are hidden, where dyff (which knows no secrets) names entries
/// `key=X`. The `name` and `id` lists are unaffected.
#[test]
fn readme_example_under_the_default_secret_policy_compares_key_lists_by_position() {
    let changes = diff_pair(&expected()["readme-example"], &Options::default());
    let key_list: Vec<(String, Kind, bool)> = changes
        .iter()
        .filter(|c| {
            c.path
                .dotted()
                .starts_with("yaml.named-entry-list-using-key")
        })
        .map(|c| (c.path.go_patch(), c.kind, c.secret))
        .collect();
    assert_eq!(
        key_list,
        [
            (
                "/yaml/named-entry-list-using-key/3/key".into(),
                Kind::Modified,
                true
            ),
            (
                "/yaml/named-entry-list-using-key/4/key".into(),
                Kind::Modified,
                true
            ),
        ]
    );
    let others = |c: &&Change| {
        !c.path
            .dotted()
            .starts_with("yaml.named-entry-list-using-key")
    };
    let open_changes = diff_pair(&expected()["readme-example"], &open());
    assert_eq!(
        changes
            .iter()
            .filter(others)
            .map(|c| c.path.clone())
            .collect::<Vec<_>>(),
        open_changes
            .iter()
            .filter(others)
            .map(|c| c.path.clone())
            .collect::<Vec<_>>(),
    );
}

#[test]
fn prometheus_scrape_configs_are_named_by_a_guessed_job_name() {
    check("prometheus", &open());
    check("prometheus", &Options::default());
}
