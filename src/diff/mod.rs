//! Structural diff of YAML documents: which values differ, by key path, and
//! how (added, removed, modified, type changed, order changed).
//!
//! The semantics follow dyff, which platform teams already read: list
//! entries are matched by an identifier field (`name`, `key`, `id`, or a
//! string field every entry has with distinct values) rather than by
//! position, so inserting a node pool reports one added pool instead of
//! every pool after it as changed; a reordered list is an order change of
//! its own, which callers may ignore; documents of a multi-document file are
//! matched by their Kubernetes identity when they have one.
//!
//! Pure: trees in, changes out. Secrecy is decided here, not by renderers:
//! a secret value never enters a [`Change`], so no output can print it.
//! Whether promotion would copy a change is decided here too, from the
//! `promotion.keys` patterns in the [`Options`].

mod lines;
#[cfg(test)]
mod tests;
mod walk;

use std::borrow::Cow;

use crate::config::keypath::{KeyPattern, SecretPolicy};
use crate::yaml::{Node, Value};

pub use lines::{Line, line_diff};
use walk::Walker;

/// The fields that identify list entries when nothing else is configured.
pub const DEFAULT_IDENTIFIERS: [&str; 3] = ["name", "key", "id"];

/// What a secret value, or a secret value inside a shown one, is printed as.
pub const HIDDEN: &str = "***";
/// How to compare.
#[derive(Debug, Clone)]
pub struct Options {
    /// Fields that identify list entries, tried in order.
    pub identifiers: Vec<String>,
    /// Whether to guess an identifier in lists of mappings that have none of
    /// `identifiers`: a string field every entry has, with distinct values.
    pub guess_identifiers: bool,
    /// Whether to report lists whose entries only moved.
    pub order_changes: bool,
    /// Which values are secret.
    pub secrets: SecretPolicy,
    /// The `promotion.keys` patterns: a change under one is promotable.
    pub promotion: Vec<KeyPattern>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            identifiers: DEFAULT_IDENTIFIERS.iter().map(|s| s.to_string()).collect(),
            guess_identifiers: true,
            order_changes: true,
            secrets: SecretPolicy::default(),
            promotion: Vec::new(),
        }
    }
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A list entry named by its identifier: `field` holds `value`.
    Entry {
        /// The identifier field, such as `name`.
        field: String,
        /// The entry's value of it, such as `system`.
        value: String,
    },
    /// A list entry by position, from 0, where entries have no identifier.
    Index(usize),
}

impl Segment {
    /// The segment as key-path patterns see it: the key, the entry's
    /// identifier value, or the position.
    pub fn name(&self) -> Cow<'_, str> {
        match self {
            Segment::Key(k) => Cow::Borrowed(k),
            Segment::Entry { value, .. } => Cow::Borrowed(value),
            Segment::Index(i) => Cow::Owned(i.to_string()),
        }
    }
}

/// Where a value is in a document: the keys and entries leading to it. The
/// root is the empty path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Path(pub Vec<Segment>);

impl Path {
    /// Whether this is the document itself.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The names of the segments, as patterns match them.
    pub fn names(&self) -> Vec<Cow<'_, str>> {
        self.0.iter().map(Segment::name).collect()
    }

    /// The dotted form, `aws.node_pools.system.min_size`; empty for the root.
    pub fn dotted(&self) -> String {
        self.names().join(".")
    }

    /// The go-patch form, `/aws/node_pools/name=system/min_size`; `/` for the root.
    pub fn go_patch(&self) -> String {
        if self.0.is_empty() {
            return "/".to_string();
        }
        let mut out = String::new();
        for segment in &self.0 {
            out.push('/');
            match segment {
                Segment::Key(k) => out.push_str(k),
                Segment::Entry { field, value } => {
                    out.push_str(field);
                    out.push('=');
                    out.push_str(value);
                }
                Segment::Index(i) => out.push_str(&i.to_string()),
            }
        }
        out
    }

    /// The path one step up; the root's parent is the root.
    pub fn parent(&self) -> Path {
        let mut segments = self.0.clone();
        segments.pop();
        Path(segments)
    }
}

/// How a value differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Only the `to` side has it.
    Added,
    /// Only the `from` side has it.
    Removed,
    /// Both have it, of the same type, with different values.
    Modified,
    /// Both have it, of different types (`from_type` → `to_type`).
    TypeChanged,
    /// A list holds the same entries in another order.
    OrderChanged,
}

impl Kind {
    /// The kind as JSON spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Added => "added",
            Kind::Removed => "removed",
            Kind::Modified => "modified",
            Kind::TypeChanged => "type_changed",
            Kind::OrderChanged => "order_changed",
        }
    }
}

/// One difference.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The document, in a multi-document file: its Kubernetes identity
    /// (`v1/Service/foo`) or its position (`#2`). `None` for single documents.
    pub document: Option<String>,
    /// Where.
    pub path: Path,
    /// How.
    pub kind: Kind,
    /// The `from` side's value; `None` when it has none or it is secret.
    /// For an order change, the entries in `from`'s order.
    pub from: Option<serde_json::Value>,
    /// The `to` side's value; `None` when it has none or it is secret.
    pub to: Option<serde_json::Value>,
    /// The YAML type on the `from` side (`string`, `int`, `map`, ...).
    pub from_type: Option<&'static str>,
    /// The YAML type on the `to` side.
    pub to_type: Option<&'static str>,
    /// Whether the values are secret, and so left out.
    pub secret: bool,
    /// Whether promotion copies this change: it is under a `promotion.keys`
    /// pattern. Order changes never are.
    pub promotable: bool,
}

impl Change {
    /// Whether both sides are strings and one of them spans lines, so a line
    /// diff says more than the two values.
    pub fn is_multiline(&self) -> bool {
        match (&self.from, &self.to) {
            (Some(serde_json::Value::String(a)), Some(serde_json::Value::String(b))) => {
                self.kind == Kind::Modified && (a.contains('\n') || b.contains('\n'))
            }
            _ => false,
        }
    }
}

/// Whether a component's values file exists on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Both environments have it.
    Both,
    /// Only the `from` environment has it.
    FromOnly,
    /// Only the `to` environment has it.
    ToOnly,
}

/// The differences of one component's values between two environments.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentDiff {
    /// The component.
    pub component: String,
    /// Which sides have a values file.
    pub presence: Presence,
    /// The differences, in document order.
    pub changes: Vec<Change>,
}

impl ComponentDiff {
    /// How many of the changes promotion would copy.
    pub fn promotable(&self) -> usize {
        self.changes.iter().filter(|c| c.promotable).count()
    }
}

/// Compares one component's values in two environments; `None` is a
/// missing file, reported as a whole document added or removed.
pub fn component(
    name: &str,
    from: Option<&Node<'_>>,
    to: Option<&Node<'_>>,
    options: &Options,
) -> ComponentDiff {
    let mut walker = Walker::new(options, name, None);
    let presence = match (from, to) {
        (Some(a), Some(b)) => {
            walker.node(a, b);
            Presence::Both
        }
        (Some(a), None) => {
            walker.emit(Kind::Removed, Some(a), None);
            Presence::FromOnly
        }
        (None, Some(b)) => {
            walker.emit(Kind::Added, None, Some(b));
            Presence::ToOnly
        }
        (None, None) => Presence::Both,
    };
    ComponentDiff {
        component: name.to_string(),
        presence,
        changes: walker.out,
    }
}

/// Compares two YAML streams document by document. Single documents are
/// compared directly. Otherwise documents are matched by Kubernetes
/// identity (`apiVersion/kind/namespace/name`) when every one has it, and
/// by position (`#1`, `#2`) when not; a document only one side has is
/// reported whole. Empty documents (a trailing `---`) are left out.
pub fn documents(from: &[Node<'_>], to: &[Node<'_>], options: &Options) -> Vec<Change> {
    let keep = |docs: &[Node<'_>]| -> Vec<usize> {
        (0..docs.len())
            .filter(|&i| docs.len() == 1 || docs[i].value != Value::Null)
            .collect()
    };
    let (a, b) = (keep(from), keep(to));
    if a.len() <= 1 && b.len() <= 1 {
        let (x, y) = (a.first().map(|&i| &from[i]), b.first().map(|&i| &to[i]));
        return component("", x, y, options).changes;
    }
    let labels = |docs: &[Node<'_>], kept: &[usize]| -> Vec<String> {
        kept.iter()
            .map(|&i| resource_identity(&docs[i]))
            .collect::<Option<Vec<_>>>()
            .filter(|ids| distinct(ids))
            .unwrap_or_else(|| kept.iter().map(|i| format!("#{}", i + 1)).collect())
    };
    let (mut la, mut lb) = (labels(from, &a), labels(to, &b));
    // Both sides must name documents the same way.
    if la.iter().any(|l| l.starts_with('#')) != lb.iter().any(|l| l.starts_with('#')) {
        la = a.iter().map(|i| format!("#{}", i + 1)).collect();
        lb = b.iter().map(|i| format!("#{}", i + 1)).collect();
    }
    let mut out = Vec::new();
    for (label, &i) in la.iter().zip(&a) {
        let mut walker = Walker::new(options, "", Some(label.clone()));
        match lb.iter().position(|l| l == label) {
            Some(j) => walker.node(&from[i], &to[b[j]]),
            None => walker.emit(Kind::Removed, Some(&from[i]), None),
        }
        out.append(&mut walker.out);
    }
    for (label, &j) in lb.iter().zip(&b) {
        if !la.contains(label) {
            let mut walker = Walker::new(options, "", Some(label.clone()));
            walker.emit(Kind::Added, None, Some(&to[j]));
            out.append(&mut walker.out);
        }
    }
    out
}

/// `apiVersion/kind/namespace/name` of a Kubernetes resource (namespace left
/// out when absent), as dyff names documents.
fn resource_identity(doc: &Node<'_>) -> Option<String> {
    let text = |node: Option<&Node<'_>>| match node.map(|n| &n.value) {
        Some(Value::Str(s)) => Some(s.to_string()),
        _ => None,
    };
    let metadata = get(doc, "metadata");
    let mut parts = vec![text(get(doc, "apiVersion"))?, text(get(doc, "kind"))?];
    if let Some(namespace) = text(metadata.and_then(|m| get(m, "namespace"))) {
        parts.push(namespace);
    }
    parts.push(text(metadata.and_then(|m| get(m, "name")))?);
    Some(parts.join("/"))
}

/// The value of `key` in a mapping.
fn get<'n, 'a>(node: &'n Node<'a>, key: &str) -> Option<&'n Node<'a>> {
    match &node.value {
        Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
        _ => None,
    }
}

/// The name a list entry has under the identifier `field`, as a
/// [`Segment::Entry`] holds it: the field's string, or its integer as text.
pub fn entry_id<'n>(entry: &'n Node<'_>, field: &str) -> Option<Cow<'n, str>> {
    get(entry, field).and_then(|n| id_text(&n.value, true))
}

/// The text an identifier value names its entry by: a string, or an
/// integer when `ints` allows it.
fn id_text<'n>(value: &'n Value<'_>, ints: bool) -> Option<Cow<'n, str>> {
    match value {
        Value::Str(s) => Some(Cow::Borrowed(s)),
        Value::Int(i) if ints => Some(Cow::Owned(i.to_string())),
        _ => None,
    }
}

fn distinct(values: &[String]) -> bool {
    let mut seen = std::collections::HashSet::with_capacity(values.len());
    values.iter().all(|v| seen.insert(v.as_str()))
}

/// The YAML type of a value, as changes name it.
pub fn type_name(value: &Value<'_>) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) => "string",
        Value::Seq(_) => "list",
        Value::Map(_) => "map",
    }
}

/// Scalars of the same type with the same value. NaN equals NaN here, so a
/// document always equals itself.
pub fn same_scalar(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        _ => a == b,
    }
}
