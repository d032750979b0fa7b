//! The file being checked: its text, its name for messages, and the way from a key path
//! (`services[2].saga.compensation`) back to a byte span, a line and a column.
//!
//! The typed model carries no spans; diagnostics find their location here, through a
//! span-preserving `toml_edit` parse of the same text.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use toml_edit::{Document, Item, Table, Value};

/// The text of one `architecture.toml` and the name it is reported under.
#[derive(Debug)]
pub struct SourceFile {
    path: PathBuf,
    text: String,
    document: OnceLock<Option<Document<String>>>,
}

/// One step of a [`KeyPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// Where a value sits in the file, e.g. `services[2].saga.compensation`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<PathSegment>);

/// Whether a diagnostic points at a key or at its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The key's name (unknown keys).
    Key,
    /// The value (wrong values).
    Value,
}

impl KeyPath {
    /// The path of the whole file.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// This path extended by a key.
    pub fn key(&self, key: &str) -> Self {
        let mut next = self.clone();
        next.0.push(PathSegment::Key(key.to_owned()));
        next
    }

    /// This path extended by an index.
    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(PathSegment::Index(index));
        next
    }

    /// Parses `services[2].saga` (bare keys only).
    pub fn parse(text: &str) -> Self {
        let mut path = Self::root();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let (key, rest) = part.split_once('[').unwrap_or((part, ""));
            if !key.is_empty() {
                path = path.key(key);
            }
            for index in rest.split('[') {
                if let Ok(i) = index.trim_end_matches(']').parse() {
                    path = path.index(i);
                }
            }
        }
        path
    }

    /// The segments.
    pub fn segments(&self) -> &[PathSegment] {
        &self.0
    }

    /// The last key of the path, if the path ends in a key.
    pub fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(PathSegment::Key(k)) => Some(k),
            _ => None,
        }
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                PathSegment::Key(k) if i == 0 => write!(f, "{k}")?,
                PathSegment::Key(k) => write!(f, ".{k}")?,
                PathSegment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCol {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, counted in characters.
    pub column: usize,
}

impl SourceFile {
    /// A file's text under the name it is reported as.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            text: text.into(),
            document: OnceLock::new(),
        }
    }

    /// Reads a file from disk.
    pub fn read(path: &Path) -> std::io::Result<Self> {
        Ok(Self::new(path, std::fs::read_to_string(path)?))
    }

    /// The name the file is reported under.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The span-preserving parse, or `None` when the text is not valid TOML.
    pub(crate) fn document(&self) -> Option<&Document<String>> {
        self.document
            .get_or_init(|| Document::parse(self.text.clone()).ok())
            .as_ref()
    }

    /// Line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(&self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        LineCol { line, column }
    }

    /// The span of `path` in the file, or of its nearest ancestor that is written there
    /// (a missing table points at the table that should hold it).
    pub fn span_of(&self, path: &KeyPath, anchor: Anchor) -> Option<Range<usize>> {
        let doc = self.document()?;
        let mut node = Node::Table(doc.as_table());
        let mut best = None;
        let segments = path.segments();
        for (i, segment) in segments.iter().enumerate() {
            let (next, key_span) = match (node, segment) {
                (Node::Table(t), PathSegment::Key(k)) => (
                    t.get(k).and_then(Node::from_item),
                    t.key(k).and_then(|k| k.span()),
                ),
                (Node::Inline(t), PathSegment::Key(k)) => (
                    t.get(k).map(Node::from_value),
                    t.key(k).and_then(|k| k.span()),
                ),
                (Node::Tables(a), PathSegment::Index(n)) => (a.get(*n).map(Node::Table), None),
                (Node::Array(a), PathSegment::Index(n)) => (a.get(*n).map(Node::from_value), None),
                _ => (None, None),
            };
            let Some(next) = next else { break };
            let value_span = next.span();
            best = if i + 1 == segments.len() && anchor == Anchor::Key {
                key_span.or(value_span).or(best)
            } else {
                value_span.or(key_span).or(best)
            };
            node = next;
        }
        best.or(Some(0..0))
    }
}

/// A node of the span-preserving document, with items unwrapped to what they hold.
#[derive(Clone, Copy)]
pub(crate) enum Node<'a> {
    Table(&'a Table),
    Tables(&'a toml_edit::ArrayOfTables),
    Inline(&'a toml_edit::InlineTable),
    Array(&'a toml_edit::Array),
    Leaf(&'a Value),
}

impl<'a> Node<'a> {
    pub(crate) fn from_item(item: &'a Item) -> Option<Self> {
        match item {
            Item::Table(t) => Some(Node::Table(t)),
            Item::ArrayOfTables(a) => Some(Node::Tables(a)),
            Item::Value(v) => Some(Node::from_value(v)),
            Item::None => None,
        }
    }

    pub(crate) fn from_value(value: &'a Value) -> Self {
        match value {
            Value::InlineTable(t) => Node::Inline(t),
            Value::Array(a) => Node::Array(a),
            other => Node::Leaf(other),
        }
    }

    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Table(t) => t.span(),
            Node::Tables(a) => a.span(),
            Node::Inline(t) => t.span(),
            Node::Array(a) => a.span(),
            Node::Leaf(v) => v.span(),
        }
    }
}
