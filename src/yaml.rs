//! YAML parsing, behind one small interface.
//!
//! Everything the orchestrator reads as YAML (its own config, environment
//! values, files in pull requests) goes through here, so the parser is a
//! one-file choice. The parser is serde-saphyr's engine: maintained, safe
//! Rust, fuzzed against the YAML test suite. We build a position-annotated
//! tree straight from its events rather than through its serde layer, which
//! costs three times as much as the parse itself (see `benches/`), and we
//! need every node's position for error messages anyway.
//!
//! Scalars resolve the way serde-saphyr resolves them for an untyped value
//! with `strict_booleans` and `leading_zero_numbers_as_strings` set (a test
//! holds the two to the same answers): YAML 1.2 core schema, so `on`, `no`
//! and `yes` stay strings, and `0755` stays a string. Duplicate keys are
//! errors, `<<` merge keys work, and a budget bounds input size, nesting,
//! node count and alias expansion, because these files come from pull
//! requests.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde_saphyr::granit_parser::{
    Event, Options as ParserOptions, Parser, ScalarStyle, ScanError, Span, Tag,
};

/// Largest YAML document accepted, in bytes. Checked before parsing.
pub const MAX_INPUT_BYTES: usize = 32 * 1024 * 1024;
/// Deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes (scalars and collections, aliases expanded) in one document.
pub const MAX_NODES: usize = 8_000_000;

/// A position in a YAML source: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// Line, starting at 1 (0 when unknown).
    pub line: u32,
    /// Column, starting at 1 (0 when unknown).
    pub column: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: u32::try_from(span.start.line()).unwrap_or(u32::MAX),
            column: u32::try_from(span.start.col() + 1).unwrap_or(u32::MAX),
        }
    }
}

/// A YAML node with the position it was written at. Strings borrow from
/// the source text where they can, so a large document costs few allocations.
#[derive(Debug, Clone, PartialEq)]
pub struct Node<'a> {
    /// The value.
    pub value: Value<'a>,
    /// Where the node starts in the source.
    pub pos: Pos,
}

/// The value of a [`Node`]. Mappings keep the order of their keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false` (YAML 1.2 spellings only).
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating point number.
    Float(f64),
    /// A string.
    Str(Cow<'a, str>),
    /// A sequence.
    Seq(Vec<Node<'a>>),
    /// A mapping, in source order. Keys are scalars rendered as strings.
    Map(Vec<(Key<'a>, Node<'a>)>),
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key<'a> {
    /// The key as written (numbers and booleans as their text).
    pub name: Cow<'a, str>,
    /// Where the key is written.
    pub pos: Pos,
}

impl Value<'_> {
    /// A short noun for error messages: "a string", "a mapping".
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node<'_> {
    /// Converts the node to JSON, keeping key order. Non-finite floats become null.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.to_string()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }

    fn count(&self) -> usize {
        1 + match &self.value {
            Value::Seq(items) => items.iter().map(Node::count).sum(),
            Value::Map(entries) => entries.iter().map(|(_, v)| 1 + v.count()).sum(),
            _ => 0,
        }
    }
}

/// A document that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Where the parser stopped, when known.
    pub pos: Pos,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    fn at(pos: Pos, message: impl Into<String>) -> Self {
        ParseError {
            pos,
            message: message.into(),
        }
    }
}

impl From<ScanError> for ParseError {
    fn from(e: ScanError) -> Self {
        let mark = e.marker();
        ParseError {
            pos: Pos {
                line: u32::try_from(mark.line()).unwrap_or(u32::MAX),
                column: u32::try_from(mark.col() + 1).unwrap_or(u32::MAX),
            },
            message: e.info(),
        }
    }
}

/// Parses one YAML document into a [`Node`] tree.
///
/// An empty document (or one holding only comments) is `Value::Null`.
pub fn parse(text: &str) -> Result<Node<'_>, ParseError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(ParseError::at(
            Pos::default(),
            format!(
                "the file is {} bytes, over the limit of {} bytes",
                text.len(),
                MAX_INPUT_BYTES
            ),
        ));
    }
    let mut options = ParserOptions::default();
    options.flow_nesting_limit = MAX_DEPTH;
    options.block_nesting_limit = MAX_DEPTH + 1;
    let mut builder = Builder::default();
    for event in Parser::new_from_str_with_options(text, options) {
        let (event, span) = event?;
        if builder.feed(event, &span)? {
            break;
        }
    }
    Ok(builder.root.unwrap_or(Node {
        value: Value::Null,
        pos: Pos { line: 1, column: 1 },
    }))
}

enum Frame<'a> {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node<'a>>,
    },
    Map(MapFrame<'a>),
}

/// Below this many keys a mapping finds duplicates by scanning; above it, by
/// an index. Nearly every mapping is small; a few (the component list) are huge.
const SCAN_LIMIT: usize = 16;

struct MapFrame<'a> {
    pos: Pos,
    anchor: usize,
    entries: Vec<(Key<'a>, Node<'a>)>,
    index: Option<foldhash::HashMap<Cow<'a, str>, Pos>>,
    pending_key: Option<(Key<'a>, bool)>,
    merged: Vec<(Key<'a>, Node<'a>)>,
}

#[derive(Default)]
struct Builder<'a> {
    stack: Vec<Frame<'a>>,
    /// Anchored nodes with their size, so an alias is charged before it is copied.
    anchors: HashMap<usize, (Node<'a>, usize)>,
    root: Option<Node<'a>>,
    nodes: usize,
    documents: usize,
}

impl<'a> Builder<'a> {
    /// Takes one event; returns true when the document is complete.
    fn feed(&mut self, event: Event<'a>, span: &Span) -> Result<bool, ParseError> {
        let pos = Pos::of(span);
        match event {
            Event::StreamStart => {}
            Event::DocumentStart(..) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(ParseError::at(
                        pos,
                        "only one YAML document is allowed here",
                    ));
                }
            }
            Event::DocumentEnd => {}
            Event::StreamEnd => return Ok(true),
            Event::Scalar(text, style, anchor, tag) => {
                let plain_merge = style == ScalarStyle::Plain && tag.is_none() && text == "<<";
                let value = resolve_scalar(text, style, tag.as_deref(), pos)?;
                let node = Node { value, pos };
                self.remember(anchor, &node);
                self.place(node, plain_merge)?;
            }
            Event::Alias(id) => {
                let size = self
                    .anchors
                    .get(&id)
                    .map(|(_, size)| *size)
                    .ok_or_else(|| ParseError::at(pos, "alias to an unknown anchor"))?;
                self.count(pos, size)?;
                let mut node = self.anchors[&id].0.clone();
                node.pos = pos;
                self.place(node, false)?;
            }
            Event::SequenceStart(_, anchor, tag) => {
                reject_collection_tag(tag.as_deref(), "seq", pos)?;
                self.open(pos)?;
                self.stack.push(Frame::Seq {
                    pos,
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(_, anchor, tag) => {
                reject_collection_tag(tag.as_deref(), "map", pos)?;
                self.open(pos)?;
                self.stack.push(Frame::Map(MapFrame {
                    pos,
                    anchor,
                    entries: Vec::new(),
                    index: None,
                    pending_key: None,
                    merged: Vec::new(),
                }));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { pos, anchor, items }) => (
                        Node {
                            value: Value::Seq(items),
                            pos,
                        },
                        anchor,
                    ),
                    Some(Frame::Map(frame)) => {
                        let anchor = frame.anchor;
                        (frame.finish(), anchor)
                    }
                    None => return Err(ParseError::at(pos, "unbalanced collection end")),
                };
                self.remember(anchor, &node);
                self.place(node, false)?;
            }
            _ => return Err(ParseError::at(pos, "unsupported YAML construct")),
        }
        Ok(false)
    }

    fn open(&mut self, pos: Pos) -> Result<(), ParseError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(ParseError::at(
                pos,
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.count(pos, 1)
    }

    fn count(&mut self, pos: Pos, n: usize) -> Result<(), ParseError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(ParseError::at(
                pos,
                format!("the document has more than {MAX_NODES} nodes (aliases expanded)"),
            ));
        }
        Ok(())
    }

    fn remember(&mut self, anchor: usize, node: &Node<'a>) {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), node.count()));
        }
    }

    /// Puts a finished node where it belongs: the root, a list item, a key or a value.
    fn place(&mut self, node: Node<'a>, plain_merge: bool) -> Result<(), ParseError> {
        if matches!(
            node.value,
            Value::Str(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_) | Value::Null
        ) {
            self.count(node.pos, 1)?;
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map(frame)) => match frame.pending_key.take() {
                None => frame.pending_key = Some((key_of(node)?, plain_merge)),
                Some((key, true)) => frame.merge(node, &key)?,
                Some((key, false)) => frame.insert(key, node)?,
            },
        }
        Ok(())
    }
}

impl<'a> MapFrame<'a> {
    fn position_of(&self, name: &str) -> Option<Pos> {
        match &self.index {
            Some(index) => index.get(name).copied(),
            None => self
                .entries
                .iter()
                .find(|(k, _)| k.name == name)
                .map(|(k, _)| k.pos),
        }
    }

    fn push(&mut self, key: Key<'a>, value: Node<'a>) {
        if let Some(index) = &mut self.index {
            index.insert(key.name.clone(), key.pos);
        } else if self.entries.len() == SCAN_LIMIT {
            let seen = self.entries.iter().map(|(k, _)| (k.name.clone(), k.pos));
            self.index = Some(seen.chain([(key.name.clone(), key.pos)]).collect());
        }
        self.entries.push((key, value));
    }

    fn insert(&mut self, key: Key<'a>, value: Node<'a>) -> Result<(), ParseError> {
        if let Some(first) = self.position_of(&key.name) {
            return Err(ParseError::at(
                key.pos,
                format!(
                    "duplicate key `{}` (first written at line {})",
                    key.name, first.line
                ),
            ));
        }
        self.push(key, value);
        Ok(())
    }

    /// `<<: *base` or `<<: [*a, *b]`: earlier sources win over later ones,
    /// and keys written in the mapping itself win over all of them.
    fn merge(&mut self, value: Node<'a>, key: &Key<'a>) -> Result<(), ParseError> {
        let sources = match value.value {
            Value::Map(entries) => vec![entries],
            Value::Seq(items) => items
                .into_iter()
                .map(|item| match item.value {
                    Value::Map(entries) => Ok(entries),
                    other => Err(ParseError::at(
                        item.pos,
                        format!("a `<<` merge list holds mappings, found {}", other.kind()),
                    )),
                })
                .collect::<Result<_, _>>()?,
            other => {
                return Err(ParseError::at(
                    key.pos,
                    format!(
                        "`<<` merges a mapping or a list of mappings, found {}",
                        other.kind()
                    ),
                ));
            }
        };
        for entries in sources {
            for (k, v) in entries {
                if !self.merged.iter().any(|(m, _)| m.name == k.name) {
                    self.merged.push((k, v));
                }
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Node<'a> {
        for (k, v) in std::mem::take(&mut self.merged) {
            if self.position_of(&k.name).is_none() {
                self.push(k, v);
            }
        }
        Node {
            value: Value::Map(self.entries),
            pos: self.pos,
        }
    }
}

fn key_of(node: Node<'_>) -> Result<Key<'_>, ParseError> {
    let name = match node.value {
        Value::Str(s) => s,
        Value::Int(i) => Cow::Owned(i.to_string()),
        Value::Bool(b) => Cow::Owned(b.to_string()),
        Value::Float(f) => Cow::Owned(f.to_string()),
        other => {
            return Err(ParseError::at(
                node.pos,
                format!("mapping keys must be strings, found {}", other.kind()),
            ));
        }
    };
    Ok(Key {
        name,
        pos: node.pos,
    })
}

fn reject_collection_tag(tag: Option<&Tag>, expected: &str, pos: Pos) -> Result<(), ParseError> {
    match tag {
        None => Ok(()),
        Some(t) if t.core_suffix() == Some(expected) => Ok(()),
        Some(t) => Err(ParseError::at(
            pos,
            format!("unsupported YAML tag `{}`", t.original()),
        )),
    }
}

/// Resolves a scalar to a typed value: YAML 1.2 core schema, strict booleans,
/// leading-zero numbers kept as strings.
fn resolve_scalar<'a>(
    text: Cow<'a, str>,
    style: ScalarStyle,
    tag: Option<&Tag>,
    pos: Pos,
) -> Result<Value<'a>, ParseError> {
    if let Some(tag) = tag {
        let invalid = |ty: &str| ParseError::at(pos, format!("`{text}` is not a valid {ty}"));
        return match tag.core_suffix() {
            Some("str") => Ok(Value::Str(text)),
            Some("null") => Ok(Value::Null),
            Some("bool") => parse_bool(&text)
                .map(Value::Bool)
                .ok_or_else(|| invalid("boolean")),
            Some("int") => parse_int(&text)
                .map(Value::Int)
                .ok_or_else(|| invalid("integer")),
            Some("float") => parse_float(&text)
                .or_else(|| parse_int(&text).map(|i| i as f64))
                .map(Value::Float)
                .ok_or_else(|| invalid("number")),
            // The non-specific tag `!` means "a string" on a scalar.
            _ if tag.original() == "!" => Ok(Value::Str(text)),
            _ => Err(ParseError::at(
                pos,
                format!("unsupported YAML tag `{}`", tag.original()),
            )),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::Str(text));
    }
    if matches!(&*text, "" | "~" | "null" | "Null" | "NULL") {
        return Ok(Value::Null);
    }
    if let Some(b) = parse_bool(&text) {
        return Ok(Value::Bool(b));
    }
    // Only digits, signs and `.` can start a number (`.5`, `.inf`): anything
    // else, like most names and paths, is a string without trying to parse it.
    if !matches!(text.as_bytes()[0], b'0'..=b'9' | b'+' | b'-' | b'.') {
        return Ok(Value::Str(text));
    }
    if leading_zero_decimal(&text) {
        return Ok(Value::Str(text));
    }
    if let Some(i) = parse_int(&text) {
        return Ok(Value::Int(i));
    }
    if let Some(f) = parse_float(&text) {
        return Ok(Value::Float(f));
    }
    Ok(Value::Str(text))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn leading_zero_decimal(text: &str) -> bool {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Decimal, `0x`, `0o` and `0b` integers with an optional sign; `_` may
/// separate digits.
fn parse_int(text: &str) -> Option<i64> {
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = match rest.get(..2) {
        Some("0x" | "0X") => (16, &rest[2..]),
        Some("0o" | "0O") => (8, &rest[2..]),
        Some("0b" | "0B") => (2, &rest[2..]),
        _ => (10, rest),
    };
    let bytes = digits.as_bytes();
    if bytes.is_empty()
        || bytes[0] == b'_'
        || bytes[bytes.len() - 1] == b'_'
        || digits.contains("__")
    {
        return None;
    }
    let mut magnitude: i128 = 0;
    for &b in bytes {
        if b == b'_' {
            continue;
        }
        let d = char::from(b).to_digit(radix)?;
        magnitude = magnitude
            .checked_mul(i128::from(radix))?
            .checked_add(i128::from(d))?;
    }
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

fn parse_float(text: &str) -> Option<f64> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    match unsigned {
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        ".inf" | ".Inf" | ".INF" => {
            return Some(if negative {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        _ => {}
    }
    text.parse::<f64>().ok().filter(|f| f.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map<'n>(node: &'n Node<'_>) -> &'n [(Key<'n>, Node<'n>)] {
        match &node.value {
            Value::Map(m) => m,
            other => panic!("expected a mapping, got {other:?}"),
        }
    }

    #[test]
    fn yaml_1_1_booleans_and_leading_zeros_stay_strings() {
        let node = parse("on: true\nflag: on\ncountry: no\nmode: 0755\nver: 1.10\n").unwrap();
        let m = map(&node);
        assert_eq!(m[0].0.name, "on");
        assert_eq!(m[0].1.value, Value::Bool(true));
        assert_eq!(m[1].1.value, Value::Str("on".into()));
        assert_eq!(m[2].1.value, Value::Str("no".into()));
        assert_eq!(m[3].1.value, Value::Str("0755".into()));
        assert_eq!(m[4].1.value, Value::Float(1.1));
    }

    #[test]
    fn nodes_and_keys_carry_their_positions() {
        let node = parse("a:\n  b: [1, x]\n").unwrap();
        let (key, inner) = &map(&node)[0];
        assert_eq!(key.pos, Pos { line: 1, column: 1 });
        let (bkey, list) = &map(inner)[0];
        assert_eq!(bkey.pos, Pos { line: 2, column: 3 });
        let Value::Seq(items) = &list.value else {
            panic!("not a list")
        };
        assert_eq!(
            items[1].pos,
            Pos {
                line: 2,
                column: 10
            }
        );
    }

    #[test]
    fn duplicate_keys_are_errors_that_name_both_lines() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, column: 1 });
        assert_eq!(err.message, "duplicate key `a` (first written at line 1)");
    }

    #[test]
    fn tabs_in_indentation_are_errors_with_a_position() {
        let err = parse("a:\n\tb: 1\n").unwrap_err();
        assert_eq!(err.pos.line, 2, "{err:?}");
    }

    #[test]
    fn comment_only_documents_are_null() {
        assert_eq!(parse("# nothing\n\n").unwrap().value, Value::Null);
        assert_eq!(parse("").unwrap().value, Value::Null);
    }

    #[test]
    fn a_second_document_is_refused() {
        let err = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(err.pos.line, 2);
    }

    #[test]
    fn oversized_documents_are_refused_before_parsing() {
        let text = "a: ".to_string() + &"x".repeat(MAX_INPUT_BYTES);
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("over the limit"), "{}", err.message);
    }

    #[test]
    fn alias_bombs_hit_the_node_budget() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
        }
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("nodes"), "{}", err.message);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(200) + &"]".repeat(200);
        assert!(parse(&text).is_err());
    }

    #[test]
    fn merge_keys_fill_in_without_overriding() {
        let node = parse("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n").unwrap();
        assert_eq!(node.to_json()["use"], serde_json::json!({"y": 3, "x": 1}));
    }

    #[test]
    fn core_tags_force_types_and_custom_tags_are_refused() {
        let node = parse("a: !!str 12\nb: !!int '7'\n").unwrap();
        assert_eq!(node.to_json(), serde_json::json!({"a": "12", "b": 7}));
        assert!(parse("a: !Ref x\n").is_err());
    }

    #[test]
    fn to_json_keeps_key_order() {
        let node = parse("z: 1\na: [true, ~]\n").unwrap();
        assert_eq!(node.to_json().to_string(), r#"{"z":1,"a":[true,null]}"#);
    }

    /// The resolution rules must give the answers serde-saphyr's own serde
    /// layer gives with the options we promise.
    #[test]
    fn scalars_resolve_as_serde_saphyr_resolves_them() {
        let spellings = [
            "true",
            "True",
            "TRUE",
            "false",
            "yes",
            "no",
            "on",
            "off",
            "y",
            "n",
            "~",
            "null",
            "Null",
            "NULL",
            "0",
            "-0",
            "+1",
            "42",
            "-17",
            "0755",
            "-0755",
            "007",
            "0x1F",
            "0o17",
            "0b101",
            "1_000",
            "1__0",
            "_1",
            "1_",
            "1.5",
            "1.10",
            "-2.5e3",
            ".5",
            "1.",
            "1e5",
            "inf",
            "nan",
            "Infinity",
            "9223372036854775807",
            "abc",
            "1.2.3",
            "v1.29",
            "10.0.0.0/16",
            "30m",
        ];
        let options = serde_saphyr::options! {
            strict_booleans: true,
            leading_zero_numbers_as_strings: true,
        };
        for s in spellings {
            let doc = format!("k: {s}\n");
            let theirs: serde_json::Value =
                serde_saphyr::from_str_with_options(&doc, options.clone()).unwrap();
            let ours = parse(&doc).unwrap().to_json();
            assert_eq!(ours, theirs, "scalar `{s}`");
        }
    }
}
