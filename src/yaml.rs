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
//!
//! Every node also carries its byte [`Span`] in the source, so a value can be
//! replaced in place without touching the comments and layout around it
//! (promotion does this), and two helpers say how a string may be written
//! back: plain when [`is_plain_string`] allows it, otherwise [`double_quoted`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use serde_saphyr::granit_parser::{
    Event, Options as ParserOptions, Parser, ScalarStyle, ScanError, Span as ParserSpan, Tag,
};

/// Largest YAML document accepted, in bytes. Checked before parsing.
pub const MAX_INPUT_BYTES: usize = 32 * 1024 * 1024;
/// Deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes (scalars and collections, aliases expanded) in one document:
/// serde-saphyr's own default budget of parser events. A config of 2,000
/// components has about 20,000; an alias bomb is refused after building
/// about 75 MB of tree rather than 600 MB.
pub const MAX_NODES: usize = 1_000_000;

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
    fn of(span: &ParserSpan) -> Pos {
        Pos {
            line: u32::try_from(span.start.line()).unwrap_or(u32::MAX),
            column: u32::try_from(span.start.col() + 1).unwrap_or(u32::MAX),
        }
    }
}

/// Where a node is written in the source: byte offsets, start inclusive and
/// end exclusive. Offsets fit in `u32` because inputs are capped at
/// [`MAX_INPUT_BYTES`].
///
/// A scalar's span covers its text with any quotes; a block scalar's runs
/// from its `|` or `>` indicator to the end of its content, trailing blank
/// lines included. A flow collection's span runs from its opening to its
/// closing bracket; a block collection's from its first key or `-` to the end
/// of its last value. An empty value (`key:` with nothing after it) has an
/// empty span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// The first byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    fn new(range: Range<usize>) -> Span {
        Span {
            start: u32::try_from(range.start).unwrap_or(u32::MAX),
            end: u32::try_from(range.end).unwrap_or(u32::MAX),
        }
    }

    /// The span as a range of byte offsets, for slicing the source.
    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
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
    /// The bytes it is written in (see [`Span`]).
    pub span: Span,
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
    /// The bytes the key is written in, quotes included.
    pub span: Span,
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

    /// A number's or boolean's text as written in `source`, the text this
    /// node was parsed from: `1.10` where the value is 1.1. `None` for
    /// other nodes, and where the written text is not a plain scalar of
    /// this value (a tagged one, `!!float 1`, or an alias, whose text is
    /// `*name`).
    pub fn written<'t>(&self, source: &'t str) -> Option<&'t str> {
        let text = source.get(self.span.range())?;
        let same = match (&self.value, plain_value(text)) {
            (Value::Int(a), Value::Int(b)) => *a == b,
            (Value::Bool(a), Value::Bool(b)) => *a == b,
            (Value::Float(a), Value::Float(b)) => a == &b || (a.is_nan() && b.is_nan()),
            _ => false,
        };
        same.then_some(text)
    }

    /// What JSON would make of this number, when that is not the number
    /// as written in `source`; `None` for everything else.
    ///
    /// JSON has no infinity or NaN (they would become `null`), and an
    /// integer beyond 64 bits is read as a float, keeping about 17 digits
    /// (`123456789012345678901` becomes `1.2345678901234568e20`); a
    /// decimal loses its last zeros (`1.30` is 1.3).
    pub fn json_loss(&self, source: &str) -> Option<JsonLoss> {
        let Value::Float(f) = self.value else {
            return None;
        };
        if !f.is_finite() {
            return Some(JsonLoss::NotFinite);
        }
        let text = self.written(source)?;
        let json = serde_json::Value::from(f).to_string();
        if !text.contains(['.', 'e', 'E']) {
            return Some(JsonLoss::TooLarge(json));
        }
        let decimal = !text.contains(['e', 'E']);
        (decimal && text.ends_with('0') && json != text.trim_start_matches('+'))
            .then_some(JsonLoss::Zeros(json))
    }

    fn count(&self) -> usize {
        1 + match &self.value {
            Value::Seq(items) => items.iter().map(Node::count).sum(),
            Value::Map(entries) => entries.iter().map(|(_, v)| 1 + v.count()).sum(),
            _ => 0,
        }
    }
}

/// How a number would change on its way into JSON (see [`Node::json_loss`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonLoss {
    /// `.inf`, `-.inf` or `.nan`, which JSON cannot hold.
    NotFinite,
    /// An integer too large for 64 bits, and the float JSON would hold.
    TooLarge(String),
    /// A decimal whose last zeros JSON drops (`1.30` is 1.3), and the
    /// number it holds: the same number, but not the text a version or a
    /// string-typed variable meant.
    Zeros(String),
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
/// An empty document (or one holding only comments) is `Value::Null`. A
/// second document is an error: configuration and values files hold one.
pub fn parse(text: &str) -> Result<Node<'_>, ParseError> {
    let mut documents = parse_stream(text, false)?;
    Ok(documents.pop().unwrap_or(Node {
        value: Value::Null,
        pos: Pos { line: 1, column: 1 },
        span: Span::default(),
    }))
}

/// Parses every document of a YAML stream (`---` separated), in order. Text
/// with no document at all (empty, or only comments) gives none. The budget
/// applies to the whole stream.
pub fn parse_documents(text: &str) -> Result<Vec<Node<'_>>, ParseError> {
    parse_stream(text, true)
}

fn parse_stream(text: &str, many: bool) -> Result<Vec<Node<'_>>, ParseError> {
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
    let mut builder = Builder {
        text,
        many,
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        documents: Vec::new(),
        document_pos: Pos::default(),
        last_end: 0,
        nodes: 0,
    };
    for event in Parser::new_from_str_with_options(text, options) {
        let (event, span) = event?;
        if builder.feed(event, &span)? {
            break;
        }
    }
    Ok(builder.documents)
}

enum Frame<'a> {
    Seq {
        pos: Pos,
        span: Span,
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
    /// Start, and the end of the furthest key or value placed so far.
    span: Span,
    anchor: usize,
    entries: Vec<(Key<'a>, Node<'a>)>,
    index: Option<foldhash::HashMap<Cow<'a, str>, Pos>>,
    pending_key: Option<(Key<'a>, bool)>,
    merged: Vec<(Key<'a>, Node<'a>)>,
}

struct Builder<'a> {
    text: &'a str,
    /// Whether more than one document is allowed.
    many: bool,
    stack: Vec<Frame<'a>>,
    /// Anchored nodes with their size, so an alias is charged before it is copied.
    anchors: HashMap<usize, (Node<'a>, usize)>,
    /// The current document's root, once complete.
    root: Option<Node<'a>>,
    documents: Vec<Node<'a>>,
    /// Where the current document starts.
    document_pos: Pos,
    /// The end of the previous event, where a block scalar's header starts.
    last_end: usize,
    nodes: usize,
}

impl<'a> Builder<'a> {
    /// Takes one event; returns true when the stream is complete.
    fn feed(&mut self, event: Event<'a>, span: &ParserSpan) -> Result<bool, ParseError> {
        let pos = Pos::of(span);
        let range = span.byte_range().unwrap_or(self.last_end..self.last_end);
        let previous_end = std::mem::replace(&mut self.last_end, range.end);
        match event {
            Event::StreamStart => {}
            Event::DocumentStart(..) => {
                if !self.many && !self.documents.is_empty() {
                    return Err(ParseError::at(
                        pos,
                        "only one YAML document is allowed here",
                    ));
                }
                self.anchors.clear();
                self.document_pos = pos;
            }
            Event::DocumentEnd => {
                let root = self.root.take().unwrap_or(Node {
                    value: Value::Null,
                    pos: self.document_pos,
                    span: Span::new(range),
                });
                self.documents.push(root);
            }
            Event::StreamEnd => return Ok(true),
            Event::Scalar(text, style, anchor, tag) => {
                let plain_merge = style == ScalarStyle::Plain && tag.is_none() && text == "<<";
                let start = match style {
                    // The event's span starts at the content; the node starts
                    // at its `|` or `>` header, so replacing the node replaces
                    // the header too.
                    ScalarStyle::Literal | ScalarStyle::Folded => self
                        .text
                        .get(previous_end..range.start)
                        .and_then(|gap| gap.find(['|', '>']))
                        .map_or(range.start, |i| previous_end + i),
                    _ => range.start,
                };
                let value = resolve_scalar(text, style, tag.as_deref(), pos)?;
                let node = Node {
                    value,
                    pos,
                    span: Span::new(start..range.end),
                };
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
                node.span = Span::new(range);
                self.place(node, false)?;
            }
            Event::SequenceStart(_, anchor, tag) => {
                reject_collection_tag(tag.as_deref(), "seq", pos)?;
                self.open(pos)?;
                self.stack.push(Frame::Seq {
                    pos,
                    span: Span::new(range),
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(_, anchor, tag) => {
                reject_collection_tag(tag.as_deref(), "map", pos)?;
                self.open(pos)?;
                self.stack.push(Frame::Map(MapFrame {
                    pos,
                    span: Span::new(range),
                    anchor,
                    entries: Vec::new(),
                    index: None,
                    pending_key: None,
                    merged: Vec::new(),
                }));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                // A flow collection ends at its closing bracket; a block
                // collection's end event sits at whatever comes next, so it
                // ends where its last value does.
                let closing = self
                    .text
                    .get(range.clone())
                    .is_some_and(|t| t == "]" || t == "}");
                let (mut node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq {
                        pos,
                        span,
                        anchor,
                        items,
                    }) => (
                        Node {
                            value: Value::Seq(items),
                            pos,
                            span,
                        },
                        anchor,
                    ),
                    Some(Frame::Map(frame)) => {
                        let anchor = frame.anchor;
                        (frame.finish(), anchor)
                    }
                    None => return Err(ParseError::at(pos, "unbalanced collection end")),
                };
                if closing {
                    node.span.end = Span::new(range).end;
                }
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
            Some(Frame::Seq { items, span, .. }) => {
                span.end = span.end.max(node.span.end);
                items.push(node);
            }
            Some(Frame::Map(frame)) => {
                frame.span.end = frame.span.end.max(node.span.end);
                match frame.pending_key.take() {
                    None => frame.pending_key = Some((key_of(node)?, plain_merge)),
                    Some((key, true)) => frame.merge(node, &key)?,
                    Some((key, false)) => frame.insert(key, node)?,
                }
            }
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
            span: self.span,
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
        span: node.span,
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

/// Whether `text` may be written as a plain (unquoted) scalar, in block and
/// flow context alike, and read back as the same string. Conservative: a
/// string it refuses is written with [`double_quoted`] instead.
pub fn is_plain_string(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    let indicator = matches!(
        first,
        '-' | '?'
            | ':'
            | ','
            | '['
            | ']'
            | '{'
            | '}'
            | '#'
            | '&'
            | '*'
            | '!'
            | '|'
            | '>'
            | '\''
            | '"'
            | '%'
            | '@'
            | '`'
    );
    let awkward = text
        .chars()
        .any(|c| c.is_control() || matches!(c, ',' | '[' | ']' | '{' | '}' | '\u{feff}'))
        || text.contains(": ")
        || text.contains(" #")
        || text.ends_with(':')
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace);
    !indicator && !awkward && text != "<<" && matches!(plain_value(text), Value::Str(_))
}

/// What `text` reads back as when written as a plain scalar: null, a
/// boolean, a number, or else a string.
pub fn plain_value(text: &str) -> Value<'_> {
    resolve_scalar(
        Cow::Borrowed(text),
        ScalarStyle::Plain,
        None,
        Pos::default(),
    )
    .unwrap_or(Value::Str(Cow::Borrowed(text)))
}

/// `text` as YAML writes a string: plain when that reads back as the same
/// string, double-quoted otherwise.
pub fn string_text(text: &str) -> String {
    if is_plain_string(text) {
        text.to_string()
    } else {
        double_quoted(text)
    }
}

/// `text` as a double-quoted YAML scalar, which can hold any string.
pub fn double_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || c == '\u{feff}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
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

    fn at<'t>(text: &'t str, node: &Node<'_>) -> &'t str {
        &text[node.span.range()]
    }

    #[test]
    fn spans_cover_scalars_as_written_quotes_and_block_headers_included() {
        let text = "a: 1.32  # note\nb: \"x\"\nc: 'y'\nd: |-  # kept\n  one\n  two\n\ne:\nf: end\n";
        let node = parse(text).unwrap();
        let m = map(&node);
        assert_eq!(at(text, &m[0].1), "1.32");
        assert_eq!(&text[m[0].0.span.range()], "a");
        assert_eq!(at(text, &m[1].1), "\"x\"");
        assert_eq!(at(text, &m[2].1), "'y'");
        assert_eq!(at(text, &m[3].1), "|-  # kept\n  one\n  two\n\n");
        assert_eq!(m[4].1.value, Value::Null);
        assert!(m[4].1.span.range().is_empty());
        assert_eq!(at(text, &m[5].1), "end");
    }

    #[test]
    fn spans_cover_collections_to_their_last_value_or_closing_bracket() {
        let text = "list:\n  - n: 1\n    v: [1, 2]\n  - n: 3\n# after\nflow: {x: 1, y: 2}  # c\n";
        let node = parse(text).unwrap();
        let m = map(&node);
        assert_eq!(at(text, &m[0].1), "- n: 1\n    v: [1, 2]\n  - n: 3");
        let Value::Seq(items) = &m[0].1.value else {
            panic!("not a list")
        };
        assert_eq!(at(text, &items[0]), "n: 1\n    v: [1, 2]");
        assert_eq!(at(text, &m[1].1), "{x: 1, y: 2}");
        assert_eq!(at(text, &node), &text[..text.len() - "  # c\n".len()]);
    }

    #[test]
    fn an_alias_spans_its_own_token() {
        let text = "a: &x 1\nb: *x\n";
        let node = parse(text).unwrap();
        assert_eq!(at(text, &map(&node)[1].1), "*x");
    }

    #[test]
    fn streams_hold_every_document_in_order() {
        let docs = parse_documents("a: 1\n---\n- x\n---\n").unwrap();
        let values: Vec<_> = docs.iter().map(Node::to_json).collect();
        assert_eq!(
            values,
            [
                serde_json::json!({"a": 1}),
                serde_json::json!(["x"]),
                serde_json::Value::Null
            ]
        );
        assert_eq!(docs[1].pos.line, 3);
        assert!(parse_documents("# only a comment\n").unwrap().is_empty());
    }

    #[test]
    fn anchors_do_not_reach_into_the_next_document() {
        assert!(parse_documents("a: &x 1\n---\nb: *x\n").is_err());
    }

    #[test]
    fn strings_written_plain_or_double_quoted_read_back_unchanged() {
        let strings = [
            "plain",
            "1.32",
            "4.12.1",
            "yes",
            "on",
            "null",
            "~",
            "true",
            "0755",
            "12",
            "",
            " lead",
            "trail ",
            "a: b",
            "a #b",
            "#c",
            "-x",
            "- x",
            "[x]",
            "x, y",
            "quote\"s",
            "back\\slash",
            "line\nbreak",
            "tab\there",
            "ctl\u{1}",
            "eu-west-1",
            "10.0.0.0/16",
            "<<",
            "é🦀",
            "x:",
            "http://example.com/a?b=c",
        ];
        for s in strings {
            let written = if is_plain_string(s) {
                s.to_string()
            } else {
                double_quoted(s)
            };
            for doc in [format!("k: {written}\n"), format!("k: [{written}]\n")] {
                let node = parse(&doc).unwrap_or_else(|e| panic!("{doc:?}: {e}"));
                let back = node.to_json();
                let back = back["k"].as_array().map_or(&back["k"], |a| &a[0]);
                assert_eq!(back, &serde_json::json!(s), "{doc:?}");
            }
        }
        assert!(is_plain_string("eu-west-1"));
        assert!(!is_plain_string("1.32"), "would read back as a number");
        assert!(!is_plain_string("null"));
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

    #[test]
    fn numbers_and_booleans_keep_the_text_they_are_written_in() {
        let text =
            "a: 1.10\nb: 0x1F\nc: true\nd: \"1.10\"\ne: !!float 1\nf: &n 2.50\ng: *n\nh: .nan\n";
        let doc = parse(text).unwrap();
        let written: Vec<Option<&str>> = map(&doc).iter().map(|(_, v)| v.written(text)).collect();
        assert_eq!(
            written,
            [
                Some("1.10"),
                Some("0x1F"),
                Some("true"),
                None, // a string
                None, // tagged: its text alone is the integer 1
                Some("2.50"),
                None, // an alias: its own text is `*n`
                Some(".nan"),
            ]
        );
    }

    #[test]
    fn numbers_json_cannot_carry_as_written_are_found() {
        let text = "a: .inf\nb: -.Inf\nc: .nan\nd: 123456789012345678901\ne: -9223372036854775809\nf: 9223372036854775807\ng: 1.10\nh: 1e300\ni: '.inf'\nj: 1.0\nk: +2.50\nl: 1.5\nm: 1.50e2\n";
        let doc = parse(text).unwrap();
        let losses: Vec<Option<JsonLoss>> =
            map(&doc).iter().map(|(_, v)| v.json_loss(text)).collect();
        assert_eq!(
            losses,
            [
                Some(JsonLoss::NotFinite),
                Some(JsonLoss::NotFinite),
                Some(JsonLoss::NotFinite),
                Some(JsonLoss::TooLarge("1.2345678901234568e+20".into())),
                Some(JsonLoss::TooLarge("-9.223372036854776e+18".into())),
                None,
                Some(JsonLoss::Zeros("1.1".into())),
                None,
                None,
                None, // JSON writes 1.0 too
                Some(JsonLoss::Zeros("2.5".into())),
                None,
                None, // written with an exponent: a number, not a version
            ]
        );
    }
}
