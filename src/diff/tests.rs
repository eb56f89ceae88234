//! The structural diff's behaviour, case by case.

use super::*;
use crate::yaml::parse;
use serde_json::json;

fn diff_with(a: &str, b: &str, options: &Options) -> Vec<Change> {
    component(
        "",
        Some(&parse(a).unwrap()),
        Some(&parse(b).unwrap()),
        options,
    )
    .changes
}

fn diff(a: &str, b: &str) -> Vec<Change> {
    diff_with(a, b, &Options::default())
}

/// `(dotted path, kind)` of each change.
fn summary(changes: &[Change]) -> Vec<(String, Kind)> {
    changes.iter().map(|c| (c.path.dotted(), c.kind)).collect()
}

/// `(dotted path, flag)` of each change.
fn flagged(changes: &[Change], flag: impl Fn(&Change) -> bool) -> Vec<(String, bool)> {
    changes.iter().map(|c| (c.path.dotted(), flag(c))).collect()
}

#[test]
fn a_document_equals_itself_nan_included() {
    let text = "a: .nan\nb: [1, x, {name: n, v: .inf}]\nc: |\n  text\n";
    assert!(diff(text, text).is_empty());
}

#[test]
fn mapping_keys_are_added_removed_and_modified_in_document_order() {
    let changes = diff("a: 1\nb: 2\nc: {d: x}\n", "c: {d: y}\nb: 2\ne: 5\n");
    assert_eq!(
        summary(&changes),
        [
            ("a".to_string(), Kind::Removed),
            ("c.d".to_string(), Kind::Modified),
            ("e".to_string(), Kind::Added),
        ]
    );
    assert_eq!(changes[0].from, Some(json!(1)));
    assert_eq!(changes[0].to, None);
    assert_eq!(
        (changes[1].from.clone(), changes[1].to.clone()),
        (Some(json!("x")), Some(json!("y")))
    );
}

#[test]
fn types_differ_between_strings_numbers_nulls_and_collections() {
    let changes = diff(
        "a: \"12\"\nb: 24\nc: ~\nd: {x: 1}\ne: 1.0\n",
        "a: 12\nb: 24.0\nc: value\nd: [1]\ne: 1.0\n",
    );
    let types: Vec<_> = changes
        .iter()
        .map(|c| (c.path.dotted(), c.kind, c.from_type, c.to_type))
        .collect();
    assert_eq!(
        types,
        [
            ("a".into(), Kind::TypeChanged, Some("string"), Some("int")),
            ("b".into(), Kind::TypeChanged, Some("int"), Some("float")),
            ("c".into(), Kind::TypeChanged, Some("null"), Some("string")),
            ("d".into(), Kind::TypeChanged, Some("map"), Some("list")),
        ]
    );
}

#[test]
fn list_entries_are_matched_by_name_not_position() {
    let from =
        "nodes:\n  pools:\n    - {name: system, count: 1}\n    - {name: general, count: 2}\n";
    let to = "nodes:\n  pools:\n    - {name: batch, count: 0}\n    - {name: system, count: 3}\n    - {name: general, count: 2}\n";
    let changes = diff(from, to);
    assert_eq!(
        summary(&changes),
        [
            ("nodes.pools.system.count".to_string(), Kind::Modified),
            ("nodes.pools.batch".to_string(), Kind::Added),
        ]
    );
    assert_eq!(changes[0].path.go_patch(), "/nodes/pools/name=system/count");
    assert_eq!(changes[1].to, Some(json!({"name": "batch", "count": 0})));
}

#[test]
fn reordered_entries_are_an_order_change_of_their_own_that_can_be_ignored() {
    let from = "l: [{id: 1, v: a}, {id: 2, v: b}, {id: 3, v: c}]\n";
    let to = "l: [{id: 2, v: b}, {id: 1, v: x}, {id: 3, v: c}]\n";
    let changes = diff(from, to);
    assert_eq!(
        summary(&changes),
        [
            ("l".to_string(), Kind::OrderChanged),
            ("l.1.v".to_string(), Kind::Modified),
        ]
    );
    assert_eq!(changes[0].from, Some(json!(["1", "2", "3"])));
    assert_eq!(changes[0].to, Some(json!(["2", "1", "3"])));
    assert!(!changes[0].promotable);
    let quiet = Options {
        order_changes: false,
        ..Options::default()
    };
    assert_eq!(diff_with(from, to, &quiet).len(), 1);
}

#[test]
fn scalar_lists_are_one_value_modified_or_reordered() {
    assert_eq!(
        summary(&diff("z: [a, b]\n", "z: [a, b, c]\n")),
        [("z".to_string(), Kind::Modified)]
    );
    assert_eq!(
        summary(&diff("z: [a, b, 1]\n", "z: [1, b, a]\n")),
        [("z".to_string(), Kind::OrderChanged)]
    );
    assert_eq!(
        summary(&diff("z: [\"1\"]\n", "z: [1]\n")),
        [("z".to_string(), Kind::Modified)],
        "a string and a number are different entries"
    );
}

#[test]
fn lists_without_identifiers_are_compared_by_position() {
    let changes = diff("r: [{a: 1}, {a: 2}]\n", "r: [{a: 1}, {a: 3}, {a: 4}]\n");
    assert_eq!(
        summary(&changes),
        [
            ("r.1.a".to_string(), Kind::Modified),
            ("r.2".to_string(), Kind::Added)
        ]
    );
    assert_eq!(changes[0].path.go_patch(), "/r/1/a");
}

#[test]
fn an_identifier_is_guessed_only_in_lists_of_more_than_three_entries() {
    let list = |names: &[&str]| {
        let entries: Vec<String> = names
            .iter()
            .map(|n| format!("{{job: {n}, x: 1}}"))
            .collect();
        format!("l: [{}]\n", entries.join(", "))
    };
    let four = diff(&list(&["a", "b", "c", "d"]), &list(&["b", "a", "c", "d"]));
    assert_eq!(four[0].kind, Kind::OrderChanged);
    let three = diff(&list(&["a", "b", "c"]), &list(&["b", "a", "c"]));
    assert_eq!(
        summary(&three),
        [
            ("l.0.job".to_string(), Kind::Modified),
            ("l.1.job".to_string(), Kind::Modified)
        ]
    );
}

#[test]
fn secret_values_are_marked_changed_and_left_out() {
    let changes = diff(
        "api_key: old\ndb:\n  dbPassword: a\nmonkey: 1\n",
        "api_key: new\ndb:\n  dbPassword: b\nmonkey: 2\n",
    );
    let hidden: Vec<_> = changes
        .iter()
        .map(|c| (c.path.dotted(), c.secret, c.from.is_none()))
        .collect();
    assert_eq!(
        hidden,
        [
            ("api_key".into(), true, true),
            ("db.dbPassword".into(), true, true),
            ("monkey".into(), false, false),
        ]
    );
}

#[test]
fn secrets_inside_shown_values_are_hidden_wherever_they_are() {
    let changes = diff(
        "x: 1\n",
        "x: 1\nservice:\n  user: app\n  password: hunter2\n  env:\n    - {name: DB_TOKEN, value: t0k}\n    - {name: LOG, value: info}\n",
    );
    assert_eq!(
        changes[0].to,
        Some(json!({
            "user": "app",
            "password": HIDDEN,
            "env": [HIDDEN, {"name": "LOG", "value": "info"}],
        }))
    );
    let text = format!("{changes:?}");
    assert!(!text.contains("hunter2") && !text.contains("t0k"), "{text}");
}

#[test]
fn sensitive_patterns_may_name_the_component_as_the_redactor_reads_them() {
    let options = Options {
        secrets: SecretPolicy::new([], [KeyPattern::parse("clusters.admin").unwrap()]),
        ..Options::default()
    };
    let (a, b) = (
        parse(
            "admin: {user: root}
region: a
",
        )
        .unwrap(),
        parse(
            "admin: {user: ops}
region: b
extra: {admin: x}
",
        )
        .unwrap(),
    );
    let changes = component("clusters", Some(&a), Some(&b), &options).changes;
    assert_eq!(
        flagged(&changes, |c| c.secret),
        [
            ("admin.user".into(), true),
            ("region".into(), false),
            ("extra".into(), false),
        ]
    );
    let text = format!("{changes:?}");
    assert!(!text.contains("root") && !text.contains("ops"), "{text}");
    let elsewhere = component("platform", Some(&a), Some(&b), &options).changes;
    assert!(elsewhere.iter().all(|c| !c.secret), "{elsewhere:?}");
}

#[test]
fn a_secret_field_is_never_used_as_an_identifier() {
    // `key` is a default identifier and a secret word: entries named by
    // it would print its values in every path.
    let changes = diff("l: [{key: a}, {key: b}]\n", "l: [{key: a}, {key: c}]\n");
    assert_eq!(summary(&changes), [("l.1.key".to_string(), Kind::Modified)]);
    assert!(changes[0].secret);
    let open = Options {
        secrets: SecretPolicy::none(),
        ..Options::default()
    };
    let changes = diff_with(
        "l: [{key: a}, {key: b}]\n",
        "l: [{key: a}, {key: c}]\n",
        &open,
    );
    assert_eq!(
        summary(&changes),
        [
            ("l.b".to_string(), Kind::Removed),
            ("l.c".to_string(), Kind::Added)
        ]
    );
}

#[test]
fn changes_under_promotion_patterns_are_promotable() {
    let options = Options {
        promotion: vec![KeyPattern::parse("**.version").unwrap()],
        ..Options::default()
    };
    let changes = diff_with(
        "k: {version: 1, size: 2}\nr: [{name: a, version: 1}]\nv: {version: {major: 1}}\n",
        "k: {version: 2, size: 3}\nr: [{name: a, version: 2}]\nv: {version: {major: 2}}\n",
        &options,
    );
    assert_eq!(
        flagged(&changes, |c| c.promotable),
        [
            ("k.version".into(), true),
            ("k.size".into(), false),
            ("r.a.version".into(), true),
            ("v.version.major".into(), true),
        ]
    );
}

#[test]
fn documents_match_by_kubernetes_identity_or_position() {
    let parse_all = |t| crate::yaml::parse_documents(t).unwrap();
    let from = parse_all(
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: x}\n",
    );
    let to = parse_all(
        "apiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: x}\nspec: {}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: c}\n---\n",
    );
    let changes = documents(&from, &to, &Options::default());
    let seen: Vec<_> = changes
        .iter()
        .map(|c| (c.document.clone().unwrap(), c.path.dotted(), c.kind))
        .collect();
    assert_eq!(
        seen,
        [
            ("v1/Service/a".into(), "".into(), Kind::Removed),
            ("v1/Service/x/b".into(), "spec".into(), Kind::Added),
            ("v1/Service/c".into(), "".into(), Kind::Added),
        ]
    );
    let by_position = documents(
        &parse_all("a: 1\n---\nb: 1\n"),
        &parse_all("a: 1\n---\nb: 2\n"),
        &Options::default(),
    );
    assert_eq!(by_position[0].document.as_deref(), Some("#2"));
    let single = documents(
        &parse_all("a: 1\n"),
        &parse_all("a: 2\n"),
        &Options::default(),
    );
    assert_eq!(single[0].document, None);
}

#[test]
fn a_file_on_one_side_only_is_reported_whole() {
    let doc = parse("a: 1\ntoken: t\n").unwrap();
    let only = component("dns", Some(&doc), None, &Options::default());
    assert_eq!(only.presence, Presence::FromOnly);
    assert_eq!(summary(&only.changes), [(String::new(), Kind::Removed)]);
    assert_eq!(only.changes[0].from, Some(json!({"a": 1, "token": HIDDEN})));
    assert_eq!(only.changes[0].path.go_patch(), "/");
}

#[test]
fn multiline_values_get_a_line_diff_with_long_runs_collapsed() {
    let from = "1\n2\n3\n4\n5\n6\n7\n8\n";
    let to = "1\n2\n3\n4\n5\nsix\n7\n8\n";
    assert_eq!(
        line_diff(from, to, 1),
        [
            Line::Skipped(4),
            Line::Same("5"),
            Line::Removed("6"),
            Line::Added("six"),
            Line::Same("7"),
            Line::Skipped(1),
        ]
    );
    let change = &diff("t: |\n  a\n  b\n", "t: |\n  a\n  c\n")[0];
    assert!(change.is_multiline());
}
