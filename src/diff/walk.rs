//! The walk over two trees that finds their differences: mappings by key,
//! lists by identifier, by value or by position, and what each change shows.

use std::borrow::Cow;
use std::collections::HashMap;

use super::{
    Change, HIDDEN, Kind, Options, Path, Segment, entry_id, get, id_text, same_scalar, type_name,
};
use crate::yaml::{Key, Node, Value};

/// A guessed identifier needs more than this many entries on each side, as
/// in dyff: in shorter lists a field with distinct values is likely chance.
const GUESS_THRESHOLD: usize = 3;

/// Below this many keys a mapping is searched by scanning; above it, by an index.
const SCAN_LIMIT: usize = 16;

/// Whether a node is a scalar rather than a collection.
fn is_scalar(node: &Node<'_>) -> bool {
    !matches!(node.value, Value::Seq(_) | Value::Map(_))
}

/// The field identifying the entries of both lists, if there is one: every
/// entry on both sides is a mapping that has it, with distinct values on
/// each side. Fields whose name marks them secret are never used, because
/// an identifier is printed in every path through its entry.
fn identifier<'o>(options: &'o Options, a: &[Node<'_>], b: &[Node<'_>]) -> Option<Cow<'o, str>> {
    if a.iter().chain(b).any(|n| !matches!(n.value, Value::Map(_))) {
        return None;
    }
    let identifies = |field: &str, strings_only: bool| {
        !options.secrets.is_secret_key(field)
            && [a, b].iter().all(|list| {
                let mut seen = std::collections::HashSet::with_capacity(list.len());
                list.iter().all(|entry| {
                    get(entry, field)
                        .and_then(|n| id_text(&n.value, !strings_only))
                        .is_some_and(|id| seen.insert(id))
                })
            })
    };
    if let Some(field) = options.identifiers.iter().find(|f| identifies(f, false)) {
        return Some(Cow::Borrowed(field));
    }
    if !options.guess_identifiers || a.len() <= GUESS_THRESHOLD || b.len() <= GUESS_THRESHOLD {
        return None;
    }
    let Value::Map(first) = &a[0].value else {
        return None;
    };
    first
        .iter()
        .map(|(k, _)| &*k.name)
        .find(|field| identifies(field, true))
        .map(|field| Cow::Owned(field.to_string()))
}

/// A step of the path being walked, borrowing from the trees.
#[derive(Clone)]
enum Step<'t> {
    Key(&'t str),
    Entry(&'t str, Cow<'t, str>),
    Index(usize),
}

impl<'t> Step<'t> {
    fn name(&self) -> Cow<'t, str> {
        match self {
            Step::Key(k) => Cow::Borrowed(k),
            Step::Entry(_, v) => v.clone(),
            Step::Index(i) => Cow::Owned(i.to_string()),
        }
    }

    fn owned(&self) -> Segment {
        match self {
            Step::Key(k) => Segment::Key(k.to_string()),
            Step::Entry(f, v) => Segment::Entry {
                field: f.to_string(),
                value: v.to_string(),
            },
            Step::Index(i) => Segment::Index(*i),
        }
    }
}

/// Walks two trees side by side, collecting changes.
pub(super) struct Walker<'o, 't> {
    options: &'o Options,
    /// The component whose values these are, for sensitive patterns that
    /// name it; empty for none.
    component: &'o str,
    document: Option<String>,
    path: Vec<Step<'t>>,
    pub(super) out: Vec<Change>,
}

impl<'o, 't> Walker<'o, 't> {
    pub(super) fn new(options: &'o Options, component: &'o str, document: Option<String>) -> Self {
        Walker {
            options,
            component,
            document,
            path: Vec::new(),
            out: Vec::new(),
        }
    }

    pub(super) fn node(&mut self, a: &'t Node<'t>, b: &'t Node<'t>) {
        match (&a.value, &b.value) {
            (Value::Map(x), Value::Map(y)) => self.maps(x, y),
            (Value::Seq(x), Value::Seq(y)) => self.lists(a, b, x, y),
            (x, y) if type_name(x) != type_name(y) => {
                self.emit(Kind::TypeChanged, Some(a), Some(b))
            }
            (x, y) if !same_scalar(x, y) => self.emit(Kind::Modified, Some(a), Some(b)),
            _ => {}
        }
    }

    fn maps(&mut self, x: &'t [(Key<'t>, Node<'t>)], y: &'t [(Key<'t>, Node<'t>)]) {
        let index: Option<HashMap<&str, usize>> = (y.len() > SCAN_LIMIT).then(|| {
            y.iter()
                .enumerate()
                .map(|(j, (k, _))| (&*k.name, j))
                .collect()
        });
        let mut matched = vec![false; y.len()];
        for (i, (key, value)) in x.iter().enumerate() {
            // Files of one component mostly share their key order: try the
            // same position before searching.
            let j = match y.get(i) {
                Some((k, _)) if k.name == key.name => Some(i),
                _ => match &index {
                    Some(index) => index.get(&*key.name).copied(),
                    None => y.iter().position(|(k, _)| k.name == key.name),
                },
            };
            self.path.push(Step::Key(&key.name));
            match j {
                Some(j) => {
                    matched[j] = true;
                    self.node(value, &y[j].1);
                }
                None => self.emit(Kind::Removed, Some(value), None),
            }
            self.path.pop();
        }
        for ((key, value), _) in y.iter().zip(&matched).filter(|(_, m)| !**m) {
            self.path.push(Step::Key(&key.name));
            self.emit(Kind::Added, None, Some(value));
            self.path.pop();
        }
    }

    fn lists(&mut self, a: &'t Node<'t>, b: &'t Node<'t>, x: &'t [Node<'t>], y: &'t [Node<'t>]) {
        if x.is_empty() && y.is_empty() {
            return;
        }
        if let Some(field) = identifier(self.options, x, y) {
            return self.named(x, y, &field);
        }
        if x.iter().chain(y).all(is_scalar) {
            return self.scalar_list(a, b, x, y);
        }
        let common = x.len().min(y.len());
        for i in 0..x.len().max(y.len()) {
            self.path.push(Step::Index(i));
            match (x.get(i), y.get(i)) {
                _ if i < common => self.node(&x[i], &y[i]),
                (Some(old), _) => self.emit(Kind::Removed, Some(old), None),
                (_, Some(new)) => self.emit(Kind::Added, None, Some(new)),
                (None, None) => {}
            }
            self.path.pop();
        }
    }

    fn named(&mut self, x: &'t [Node<'t>], y: &'t [Node<'t>], field: &str) {
        // `identifier` checked that every entry on both sides has the field,
        // so ids line up with entries; the field's name is borrowed from the
        // first entry, to live as long as the path does.
        let ids = |list: &'t [Node<'t>]| -> Vec<Cow<'t, str>> {
            list.iter().filter_map(|n| entry_id(n, field)).collect()
        };
        let (xs, ys) = (ids(x), ids(y));
        let field: &'t str = match x.first().or(y.first()).map(|n| &n.value) {
            Some(Value::Map(m)) => m
                .iter()
                .find(|(k, _)| k.name == field)
                .map_or("", |(k, _)| &*k.name),
            _ => "",
        };
        let position: HashMap<&str, usize> =
            ys.iter().enumerate().map(|(j, id)| (&**id, j)).collect();
        let in_x: std::collections::HashSet<&str> = xs.iter().map(|id| &**id).collect();
        if self.options.order_changes {
            let kept_x = xs
                .iter()
                .map(|id| &**id)
                .filter(|id| position.contains_key(id));
            let kept_y = ys.iter().map(|id| &**id).filter(|id| in_x.contains(id));
            if !kept_x.eq(kept_y) {
                let list = |ids: &[Cow<'_, str>]| {
                    serde_json::Value::from(ids.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                };
                let (from, to) = (list(&xs), list(&ys));
                self.emit_values(Kind::OrderChanged, from, to);
            }
        }
        for (entry, id) in x.iter().zip(&xs) {
            self.path.push(Step::Entry(field, id.clone()));
            match position.get(&**id) {
                Some(&j) => self.node(entry, &y[j]),
                None => self.emit(Kind::Removed, Some(entry), None),
            }
            self.path.pop();
        }
        for (entry, id) in y.iter().zip(&ys) {
            if !in_x.contains(&**id) {
                self.path.push(Step::Entry(field, id.clone()));
                self.emit(Kind::Added, None, Some(entry));
                self.path.pop();
            }
        }
    }

    /// Lists of scalars (tags, zones, CIDRs) are one value: modified as a
    /// whole, or only reordered.
    fn scalar_list(&mut self, a: &'t Node<'t>, b: &'t Node<'t>, x: &[Node<'t>], y: &[Node<'t>]) {
        let same = |p: &[Node<'_>], q: &[Node<'_>]| {
            p.len() == q.len()
                && p.iter()
                    .zip(q)
                    .all(|(m, n)| same_scalar(&m.value, &n.value))
        };
        if same(x, y) {
            return;
        }
        let sorted = |list: &[Node<'t>]| {
            let mut list = list.to_vec();
            list.sort_by_cached_key(|n| (type_name(&n.value), shown_scalar(&n.value).to_string()));
            list
        };
        if same(&sorted(x), &sorted(y)) {
            if self.options.order_changes {
                self.emit(Kind::OrderChanged, Some(a), Some(b));
            }
        } else {
            self.emit(Kind::Modified, Some(a), Some(b));
        }
    }

    pub(super) fn emit(&mut self, kind: Kind, a: Option<&'t Node<'t>>, b: Option<&'t Node<'t>>) {
        let names: Vec<Cow<'t, str>> = self.path.iter().map(Step::name).collect();
        let secret = self.options.secrets.is_secret(self.component, &names);
        let show = |n: &'t Node<'t>| shown(n, &mut names.clone(), self.component, self.options);
        let (from, to) = if secret {
            (None, None)
        } else {
            (a.map(show), b.map(show))
        };
        let types = (
            a.map(|n| type_name(&n.value)),
            b.map(|n| type_name(&n.value)),
        );
        self.push(kind, (from, to), types, secret, &names);
    }

    /// An order change of named entries: the values are their identifiers.
    fn emit_values(&mut self, kind: Kind, from: serde_json::Value, to: serde_json::Value) {
        let names: Vec<Cow<'t, str>> = self.path.iter().map(Step::name).collect();
        let secret = self.options.secrets.is_secret(self.component, &names);
        let values = if secret {
            (None, None)
        } else {
            (Some(from), Some(to))
        };
        self.push(kind, values, (Some("list"), Some("list")), secret, &names);
    }

    fn push(
        &mut self,
        kind: Kind,
        (from, to): (Option<serde_json::Value>, Option<serde_json::Value>),
        (from_type, to_type): (Option<&'static str>, Option<&'static str>),
        secret: bool,
        names: &[Cow<'_, str>],
    ) {
        let promotable =
            kind != Kind::OrderChanged && self.options.promotion.iter().any(|p| p.selects(names));
        self.out.push(Change {
            document: self.document.clone(),
            path: Path(self.path.iter().map(Step::owned).collect()),
            kind,
            from,
            to,
            from_type,
            to_type,
            secret,
            promotable,
        });
    }
}

/// A scalar as JSON. Infinities and NaN, which JSON cannot hold, are shown
/// as YAML writes them.
fn shown_scalar(value: &Value<'_>) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or_else(
            || {
                serde_json::Value::from(if f.is_nan() {
                    ".nan"
                } else if *f > 0.0 {
                    ".inf"
                } else {
                    "-.inf"
                })
            },
            serde_json::Value::Number,
        ),
        Value::Str(s) => s.to_string().into(),
        Value::Seq(_) | Value::Map(_) => serde_json::Value::Null,
    }
}

/// A value as JSON for showing, with every secret value inside it replaced
/// by [`HIDDEN`]. `path` is where the value is; list entries inside are
/// named as the diff would name them, so a secret is recognised the same
/// way wherever it appears.
fn shown<'n>(
    node: &'n Node<'n>,
    path: &mut Vec<Cow<'n, str>>,
    component: &str,
    options: &Options,
) -> serde_json::Value {
    match &node.value {
        Value::Map(entries) => {
            let mut out = serde_json::Map::with_capacity(entries.len());
            for (key, value) in entries {
                path.push(Cow::Borrowed(&key.name));
                let v = if options.secrets.is_secret(component, path) {
                    HIDDEN.into()
                } else {
                    shown(value, path, component, options)
                };
                path.pop();
                out.insert(key.name.to_string(), v);
            }
            serde_json::Value::Object(out)
        }
        Value::Seq(items) => {
            let field = identifier(options, items, items);
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let name = field
                    .as_deref()
                    .and_then(|f| entry_id(item, f))
                    .unwrap_or_else(|| Cow::Owned(i.to_string()));
                path.push(name);
                out.push(if options.secrets.is_secret(component, path) {
                    HIDDEN.into()
                } else {
                    shown(item, path, component, options)
                });
                path.pop();
            }
            serde_json::Value::Array(out)
        }
        scalar => shown_scalar(scalar),
    }
}
