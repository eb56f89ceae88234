//! Promotion of one component, text in and text out.

use super::*;
use crate::config::KeyPattern;

fn options(patterns: &[&str]) -> Options {
    Options {
        promotion: patterns
            .iter()
            .map(|p| KeyPattern::parse(p).unwrap())
            .collect(),
        ..Options::default()
    }
}

/// The target's text after promoting `**.version` and `**.image_tag`.
fn promote(source: &str, target: &str) -> String {
    let p = component(
        "c",
        Some(source),
        Some(target),
        &options(&["**.version", "**.image_tag"]),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    p.text.unwrap_or_else(|| target.to_string())
}

#[test]
fn only_the_promoted_value_changes_byte_for_byte() {
    let source = "# dev\nkubernetes:\n  version: \"1.32\"  # newest\nsize: 1\n";
    let target = "# staging: keep me\n\nkubernetes:\n  # pinned by promotion\n  version: \"1.31\"   # note\n\nsize: 3\n";
    assert_eq!(
        promote(source, target),
        "# staging: keep me\n\nkubernetes:\n  # pinned by promotion\n  version: \"1.32\"   # note\n\nsize: 3\n"
    );
}

#[test]
fn the_target_keeps_its_quoting_where_the_value_allows() {
    assert_eq!(
        promote("version: 1.2.4\n", "version: '1.2.3'\n"),
        "version: '1.2.4'\n"
    );
    assert_eq!(
        promote("version: \"1.2.4\"\n", "version: 1.2.3\n"),
        "version: 1.2.4\n"
    );
    assert_eq!(
        promote("version: \"1.32\"\n", "version: v1\n"),
        "version: \"1.32\"\n",
        "a plain 1.32 would read back as a number"
    );
    assert_eq!(
        promote("version: 1.10\n", "version: 1.9\n"),
        "version: 1.10\n"
    );
    assert_eq!(
        promote("version: 12\n", "version: \"11\"\n"),
        "version: 12\n"
    );
}

#[test]
fn list_entries_are_found_by_name() {
    let source = "services:\n  - name: api\n    image_tag: \"1.44.0\"\n    replicas: 1\n  - name: web\n    image_tag: \"2.9.1\"\n";
    let target = "services:\n  # two replicas here\n  - name: web\n    image_tag: \"2.9.0\"\n  - name: api\n    image_tag: \"1.43.2\"\n    replicas: 2\n";
    assert_eq!(
        promote(source, target),
        "services:\n  # two replicas here\n  - name: web\n    image_tag: \"2.9.1\"\n  - name: api\n    image_tag: \"1.44.0\"\n    replicas: 2\n"
    );
}

#[test]
fn a_key_only_the_source_has_is_added_after_its_siblings() {
    let source = "chart:\n  name: x\n  version: 2\n";
    let target = "chart:\n  name: x  # the chart\n  # end of chart\nother: 1\n";
    assert_eq!(
        promote(source, target),
        "chart:\n  name: x  # the chart\n  version: 2\n  # end of chart\nother: 1\n"
    );
    let in_item = "l:\n  - name: a\n    size: 1\n";
    assert_eq!(
        promote("l:\n  - name: a\n    version: 3\n", in_item),
        "l:\n  - name: a\n    size: 1\n    version: 3\n"
    );
}

#[test]
fn a_key_only_the_target_has_is_removed_with_its_line() {
    let source = "chart:\n  name: x\n";
    let target = "chart:\n  name: x\n  # why pinned\n  version: 1  # note\n  # after\nz: 1\n";
    assert_eq!(
        promote(source, target),
        "chart:\n  name: x\n  # why pinned\n  # after\nz: 1\n"
    );
    assert_eq!(
        promote("l:\n  - name: a\n", "l:\n  - version: 1\n    name: a\n"),
        "l:\n  - name: a\n",
        "the next key moves up onto the dash"
    );
    assert_eq!(promote("a: {}\n", "a:\n  version: 1\n"), "a:\n  {}\n");
}

#[test]
fn flow_collections_are_edited_in_place() {
    assert_eq!(
        promote("x: {version: 2, size: 1}\n", "x: {size: 5, version: 1}\n"),
        "x: {size: 5, version: 2}\n"
    );
    assert_eq!(
        promote("x: {size: 1, version: 2}\n", "x: {size: 5}\n"),
        "x: {size: 5, version: 2}\n"
    );
    assert_eq!(
        promote("x: {size: 1}\n", "x: {version: 1, size: 5}\n"),
        "x: {size: 5}\n"
    );
    assert_eq!(
        promote("x: {size: 1}\n", "x: {size: 5, version: 1}\n"),
        "x: {size: 5}\n"
    );
}

#[test]
fn a_promoted_list_or_map_is_written_in_flow_style() {
    let options = options(&["versions", "chart"]);
    let p = component(
        "c",
        Some("versions: [a, \"1.0\"]\nchart: {name: x, pin: true}\n"),
        Some("# keep\nversions:\n  - a\n  - b\nchart:\n  name: y\n"),
        &options,
    )
    .unwrap();
    assert_eq!(
        p.text.unwrap(),
        "# keep\nversions:\n  [a, \"1.0\"]\nchart:\n  name: x\n  pin: true\n"
    );
}

#[test]
fn a_block_scalar_stays_a_block_scalar_at_its_indentation() {
    let options = options(&["script"]);
    let p = component(
        "c",
        Some("script: |\n  echo one\n  echo two\n"),
        Some("script: |\n    echo one\n\n# next\nx: 1\n"),
        &options,
    )
    .unwrap();
    assert_eq!(
        p.text.unwrap(),
        "script: |\n    echo one\n    echo two\n\n# next\nx: 1\n"
    );
}

#[test]
fn an_empty_value_and_a_type_change_are_filled_in() {
    assert_eq!(
        promote("version: 3\n", "version:\nz: 1\n"),
        "version: 3\nz: 1\n"
    );
    assert_eq!(
        promote("version: \"3\"\n", "version: 3\n"),
        "version: \"3\"\n"
    );
}

#[test]
fn environment_specific_differences_stay_and_are_counted() {
    let p = component(
        "c",
        Some("version: 2\nregion: eu-west-1\nsize: 1\n"),
        Some("version: 1\nregion: eu-central-1\nsize: 3\n"),
        &options(&["**.version"]),
    )
    .unwrap();
    assert_eq!(p.stays, 2);
    assert_eq!(p.changes.len(), 1);
    assert_eq!(p.changes[0].path.dotted(), "version");
}

#[test]
fn nothing_is_promoted_into_or_out_of_a_missing_file() {
    let options = options(&["**.version"]);
    let p = component("c", Some("version: 2\n"), None, &options).unwrap();
    assert_eq!((p.text, p.stays), (None, 1));
    let p = component("c", None, None, &options).unwrap();
    assert_eq!((p.text, p.stays), (None, 0));
}

#[test]
fn a_value_shared_through_an_anchor_is_refused_not_half_edited() {
    let err = component(
        "c",
        Some("base: {size: 1}\na: {version: 2, size: 1}\n"),
        Some("base: &b {version: 1, size: 1}\na: *b\n"),
        &options(&["a.version"]),
    )
    .unwrap_err();
    assert_eq!(err.key, "base.version");
    assert!(err.message.contains("cannot be edited in place"), "{err:?}");
}
