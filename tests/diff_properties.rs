//! Properties of the diff and of promotion over many generated YAML files:
//! nested mappings, named and positional lists, scalars of every type in
//! every quoting style, block scalars, flow collections, comments and blank
//! lines. Seeds are fixed, so a failure names the seed that reproduces it.
//!
//! - A document never differs from itself.
//! - After promotion nothing promotable is left, nothing else changed, and
//!   promoting again changes nothing.
//! - Promotion leaves the target's comments and blank lines as they were,
//!   outside the entries whose values it replaced or removed.

use orchestrator_action::config::KeyPattern;
use orchestrator_action::diff::{self, Options};
use orchestrator_action::promote;
use orchestrator_action::yaml;

const CASES: u64 = 400;

/// A generated value, with how it is to be written.
#[derive(Debug, Clone)]
enum V {
    Scalar(String),
    Block(Vec<String>, bool),
    Map(Vec<(String, V)>, bool),
    Seq(Vec<V>, bool),
}

const KEYS: [&str; 14] = [
    "version",
    "image_tag",
    "tags",
    "size",
    "region",
    "chart",
    "replicas",
    "config",
    "enabled",
    "db_password",
    "note",
    "limits",
    "zone",
    "script",
];

const STRINGS: [&str; 16] = [
    "eu-west-1",
    "1.32",
    "1.2.3",
    "yes",
    "null",
    "a b",
    "with: colon",
    "#hash",
    "quote\"d",
    "it's",
    "ünïcödé",
    "",
    " lead",
    "x",
    "10.0.0.0/16",
    "-dash",
];

const LINES: [&str; 5] = ["echo one", "echo two", "set -e", "key: value", "  indented"];

fn quoted_string(rng: &mut fastrand::Rng, s: &str) -> String {
    match rng.u8(0..3) {
        0 if yaml::is_plain_string(s) => s.to_string(),
        1 if !s.contains('\'') || rng.bool() => format!("'{}'", s.replace('\'', "''")),
        _ => yaml::double_quoted(s),
    }
}

fn scalar(rng: &mut fastrand::Rng) -> V {
    let text = match rng.u8(0..8) {
        0 => ["null", "~"][rng.usize(0..2)].to_string(),
        1 => ["true", "false"][rng.usize(0..2)].to_string(),
        2 => rng.i64(-50..500).to_string(),
        3 => ["1.5", "0.25", "24.0", "1e3", "1.10"][rng.usize(0..5)].to_string(),
        _ => {
            let s = STRINGS[rng.usize(0..STRINGS.len())];
            quoted_string(rng, s)
        }
    };
    V::Scalar(text)
}

fn value(rng: &mut fastrand::Rng, depth: u32) -> V {
    let roll = if depth >= 3 { 0 } else { rng.u8(0..10) };
    match roll {
        0..=4 => scalar(rng),
        5 => {
            let lines = (0..rng.usize(2..4))
                .map(|i| LINES[(i + rng.usize(0..3)) % 4].to_string())
                .collect();
            V::Block(lines, rng.bool())
        }
        6 => V::Seq(
            (0..rng.usize(0..4)).map(|_| scalar(rng)).collect(),
            rng.bool(),
        ),
        7 => named_list(rng, depth),
        8 => V::Seq(
            (0..rng.usize(1..3))
                .map(|_| map(rng, depth + 1, false))
                .collect(),
            false,
        ),
        _ => {
            let flow = rng.u8(0..5) == 0;
            map(rng, depth + 1, flow)
        }
    }
}

fn map(rng: &mut fastrand::Rng, depth: u32, flow: bool) -> V {
    let mut keys: Vec<&str> = KEYS.to_vec();
    rng.shuffle(&mut keys);
    let n = rng.usize(1..6);
    let entries = keys[..n]
        .iter()
        .map(|k| {
            let v = if flow { scalar(rng) } else { value(rng, depth) };
            (k.to_string(), v)
        })
        .collect();
    V::Map(entries, flow)
}

fn named_list(rng: &mut fastrand::Rng, depth: u32) -> V {
    let mut names = vec!["api", "web", "worker", "batch", "cron"];
    rng.shuffle(&mut names);
    let entries = names[..rng.usize(1..5)]
        .iter()
        .map(|n| {
            let V::Map(mut entries, _) = map(rng, depth + 1, false) else {
                unreachable!()
            };
            entries.retain(|(k, _)| k != "name");
            let at = rng.usize(0..=entries.len());
            entries.insert(at, ("name".into(), V::Scalar(n.to_string())));
            V::Map(entries, false)
        })
        .collect();
    V::Seq(entries, false)
}

/// A changed copy: values replaced, keys added and removed, list entries
/// added, removed and moved.
fn mutate(rng: &mut fastrand::Rng, v: &V, depth: u32) -> V {
    match v {
        V::Map(entries, flow) => {
            let mut out: Vec<(String, V)> = Vec::new();
            for (k, child) in entries {
                match rng.u8(0..10) {
                    0 if k != "name" => {}
                    1 | 2 if k != "name" => {
                        let new = if *flow {
                            scalar(rng)
                        } else {
                            value(rng, depth + 1)
                        };
                        out.push((k.clone(), new));
                    }
                    _ => out.push((k.clone(), mutate(rng, child, depth + 1))),
                }
            }
            if rng.u8(0..4) == 0 {
                let k = KEYS[rng.usize(0..KEYS.len())];
                if !out.iter().any(|(o, _)| o == k) {
                    let new = if *flow {
                        scalar(rng)
                    } else {
                        value(rng, depth + 1)
                    };
                    out.push((k.to_string(), new));
                }
            }
            if out.is_empty() {
                return v.clone();
            }
            V::Map(out, *flow)
        }
        V::Seq(items, flow) => {
            let mut out: Vec<V> = items.iter().map(|i| mutate(rng, i, depth + 1)).collect();
            let named = items.iter().all(|i| matches!(i, V::Map(..))) && !items.is_empty();
            if named && rng.u8(0..3) == 0 {
                rng.shuffle(&mut out);
            }
            if out.len() > 1 && rng.u8(0..4) == 0 {
                out.remove(rng.usize(0..out.len()));
            }
            V::Seq(out, *flow)
        }
        V::Scalar(_) | V::Block(..) if rng.u8(0..3) == 0 => match v {
            V::Block(..) => value(rng, 3),
            _ => scalar(rng),
        },
        other => other.clone(),
    }
}

fn flow(v: &V) -> String {
    match v {
        V::Scalar(s) => s.clone(),
        V::Map(entries, _) => {
            let items: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{k}: {}", flow(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        V::Seq(items, _) => {
            let items: Vec<String> = items.iter().map(flow).collect();
            format!("[{}]", items.join(", "))
        }
        V::Block(lines, _) => yaml::double_quoted(&lines.join("\n")),
    }
}

fn inline(v: &V) -> bool {
    match v {
        V::Scalar(_) => true,
        V::Map(entries, flow) => *flow || entries.is_empty(),
        V::Seq(items, flow) => *flow || items.is_empty(),
        V::Block(..) => false,
    }
}

/// Writes `key: value` lines at `indent`; with `dash`, the first one after
/// a list item's `- `.
fn write_map(
    rng: &mut fastrand::Rng,
    entries: &[(String, V)],
    indent: usize,
    dash: bool,
    out: &mut String,
) {
    let pad = " ".repeat(indent);
    for (i, (k, v)) in entries.iter().enumerate() {
        let first = dash && i == 0;
        if !first && rng.u8(0..5) == 0 {
            out.push_str(&format!("{pad}# about {k}\n"));
        }
        if !first && rng.u8(0..6) == 0 {
            out.push('\n');
        }
        let lead = if first {
            format!("{}- ", " ".repeat(indent - 2))
        } else {
            pad.clone()
        };
        write_entry(rng, &lead, k, v, indent, out);
    }
}

fn write_entry(
    rng: &mut fastrand::Rng,
    lead: &str,
    key: &str,
    v: &V,
    indent: usize,
    out: &mut String,
) {
    let comment = if rng.u8(0..5) == 0 { "  # why" } else { "" };
    match v {
        _ if inline(v) => out.push_str(&format!("{lead}{key}: {}{comment}\n", flow(v))),
        V::Block(lines, strip) => {
            out.push_str(&format!(
                "{lead}{key}: |{}\n",
                if *strip { "-" } else { "" }
            ));
            for l in lines {
                out.push_str(&format!("{}{l}\n", " ".repeat(indent + 2)));
            }
        }
        V::Map(entries, _) => {
            out.push_str(&format!("{lead}{key}:{comment}\n"));
            write_map(rng, entries, indent + 2, false, out);
        }
        V::Seq(items, _) => {
            out.push_str(&format!("{lead}{key}:\n"));
            for item in items {
                match item {
                    V::Map(entries, false) if !entries.is_empty() => {
                        write_map(rng, entries, indent + 4, true, out)
                    }
                    other => {
                        out.push_str(&format!("{}- {}\n", " ".repeat(indent + 2), flow(other)))
                    }
                }
            }
        }
        V::Scalar(_) => {}
    }
}

fn document(rng: &mut fastrand::Rng, v: &V) -> String {
    let mut out = String::from("# generated\n");
    if let V::Map(entries, _) = v {
        write_map(rng, entries, 0, false, &mut out);
    }
    out
}

fn options() -> Options {
    Options {
        promotion: ["**.version", "**.image_tag", "**.tags", "**.script"]
            .iter()
            .map(|p| KeyPattern::parse(p).unwrap())
            .collect(),
        ..Options::default()
    }
}

fn is_layout(line: &str) -> bool {
    line.trim().is_empty() || line.trim_start().starts_with('#')
}

/// The comment and blank lines of a text, in order.
fn layout(text: &str) -> Vec<&str> {
    text.lines().filter(|l| is_layout(l)).collect()
}

/// The bytes of the target a change may rewrite: the whole entry (key or
/// dash line through the end of its value) of a changed or removed value.
fn touched(target: &str, tree: &yaml::Node<'_>, change: &diff::Change) -> std::ops::Range<usize> {
    let Some((last, parent)) = change.path.0.split_last() else {
        return 0..target.len();
    };
    let parent = promote::edit::locate(tree, parent).expect("parent");
    let node = promote::edit::locate(tree, &change.path.0).expect("node");
    let start = match (&parent.value, last) {
        (yaml::Value::Map(entries), diff::Segment::Key(k)) => {
            entries
                .iter()
                .find(|(key, _)| key.name == *k)
                .expect("key")
                .0
                .span
                .start
        }
        _ => node.span.start,
    } as usize;
    let line_start = target[..start].rfind('\n').map_or(0, |i| i + 1);
    line_start..node.span.end as usize
}

/// Whether `small` appears in `big` in order, not necessarily together.
fn subsequence(small: &[&str], big: &[&str]) -> bool {
    let mut rest = big.iter();
    small.iter().all(|s| rest.any(|b| b == s))
}

/// The target's comment and blank lines that no change touches.
fn untouched_layout<'t>(target: &'t str, changes: &[diff::Change]) -> Vec<&'t str> {
    let tree = yaml::parse(target).unwrap();
    let ranges: Vec<_> = changes
        .iter()
        .filter(|c| c.kind != diff::Kind::Added)
        .map(|c| touched(target, &tree, c))
        .collect();
    let mut offset = 0;
    let mut out = Vec::new();
    for line in target.split_inclusive('\n') {
        let text = line.trim_end_matches('\n');
        if is_layout(text) && !ranges.iter().any(|r| r.contains(&offset)) {
            out.push(text);
        }
        offset += line.len();
    }
    out
}

/// The changes from one values document of the component `c` to another,
/// as promotion sees them.
fn compare(from: &yaml::Node<'_>, to: &yaml::Node<'_>, options: &Options) -> Vec<diff::Change> {
    diff::component("c", Some(from), Some(to), options).changes
}

fn pair(seed: u64) -> (String, String) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let source = map(&mut rng, 0, false);
    let target = mutate(&mut rng, &source, 0);
    (document(&mut rng, &source), document(&mut rng, &target))
}

#[test]
fn a_document_never_differs_from_itself() {
    for seed in 0..CASES {
        let (source, target) = pair(seed);
        for text in [&source, &target] {
            let node = yaml::parse(text).unwrap_or_else(|e| panic!("seed {seed}: {e}\n{text}"));
            let changes = compare(&node, &node, &options());
            assert!(changes.is_empty(), "seed {seed}:\n{text}\n{changes:#?}");
        }
    }
}

#[test]
fn promotion_leaves_nothing_promotable_and_changes_nothing_else() {
    let options = options();
    let mut promoted = 0;
    for seed in 0..CASES {
        let (source, target) = pair(seed);
        let context = || format!("seed {seed}\n--- source\n{source}--- target\n{target}");
        let p = promote::component("c", Some(&source), Some(&target), &options)
            .unwrap_or_else(|e| panic!("{e:?}\n{}", context()));
        let Some(text) = p.text else {
            let left = compare(
                &yaml::parse(&target).unwrap(),
                &yaml::parse(&source).unwrap(),
                &options,
            );
            assert!(left.iter().all(|c| !c.promotable), "{}", context());
            continue;
        };
        promoted += 1;
        let after = yaml::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}\n{}", context()));
        let left = compare(&after, &yaml::parse(&source).unwrap(), &options);
        assert!(
            left.iter().all(|c| !c.promotable),
            "left: {left:#?}\n{text}\n{}",
            context()
        );
        let made = compare(&yaml::parse(&target).unwrap(), &after, &options);
        assert!(
            made.iter().all(|c| c.promotable),
            "made: {made:#?}\n{text}\n{}",
            context()
        );
        let kept = untouched_layout(&target, &made);
        assert!(
            subsequence(&kept, &layout(&text)) && subsequence(&layout(&text), &layout(&target)),
            "comments or blank lines moved: kept {kept:?}\nnow {:?}\n{text}\n{}",
            layout(&text),
            context()
        );
        let again = promote::component("c", Some(&source), Some(&text), &options).unwrap();
        assert_eq!(
            again.text,
            None,
            "promoting twice changed more:\n{text}\n{}",
            context()
        );
    }
    assert!(
        promoted > CASES / 3,
        "only {promoted} of {CASES} cases promoted anything"
    );
}
