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

/// The largest architecture file accepted: 4 MiB, about 15,000 services.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Why an architecture file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Nothing at the path.
    #[error("`{}` does not exist", path.display())]
    NotFound {
        /// The path.
        path: PathBuf,
    },
    /// Something other than a regular file (a directory, FIFO, device or socket).
    #[error("`{}` is {kind}, not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is, e.g. "a directory".
        kind: &'static str,
    },
    /// Larger than the limit.
    #[error("`{}` is larger than {} MiB", path.display(), limit / (1024 * 1024))]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// Not UTF-8 text.
    #[error("`{}` is not UTF-8 text", path.display())]
    NotUtf8 {
        /// The path.
        path: PathBuf,
    },
    /// The file system refused.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

impl ReadError {
    /// The same error, naming the file `name`.
    fn reported_as(self, name: &Path) -> Self {
        let path = name.to_path_buf();
        match self {
            ReadError::NotFound { .. } => ReadError::NotFound { path },
            ReadError::NotAFile { kind, .. } => ReadError::NotAFile { path, kind },
            ReadError::TooLarge { limit, .. } => ReadError::TooLarge { path, limit },
            ReadError::NotUtf8 { .. } => ReadError::NotUtf8 { path },
            ReadError::Io { source, .. } => ReadError::Io { path, source },
        }
    }

    /// A likely fix, for the CLI's help line and the macro's message.
    pub fn help(&self) -> &'static str {
        match self {
            ReadError::NotFound { .. } => {
                "pass the architecture file with `--config FILE` (the default is ./architecture.toml)"
            }
            ReadError::NotAFile { .. } => "name the architecture file itself, a regular TOML file",
            ReadError::TooLarge { .. } => {
                "an architecture file describes services, not data: split it, or check that the path names the right file"
            }
            ReadError::NotUtf8 { .. } => "save architecture.toml as UTF-8 text",
            ReadError::Io { .. } => "check the file's permissions",
        }
    }
}

/// Reads `path` as UTF-8 text of at most `limit` bytes, if it is a regular file.
fn read_bounded(path: &Path, limit: u64) -> Result<String, ReadError> {
    use std::io::Read;

    let owned = || path.to_path_buf();
    let io = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::NotFound => ReadError::NotFound { path: owned() },
        _ => ReadError::Io {
            path: owned(),
            source,
        },
    };
    // Inspect before opening: opening a FIFO blocks until a writer appears.
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile {
            path: owned(),
            kind: file_kind(&meta.file_type()),
        });
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge {
            path: owned(),
            limit,
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            path: owned(),
            limit,
        });
    }
    String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8 { path: owned() })
}

/// What a non-regular file is, for messages.
fn file_kind(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

/// The text of one `architecture.toml` and the name it is reported under.
#[derive(Debug)]
pub struct SourceFile {
    path: PathBuf,
    text: String,
    document: OnceLock<Option<Document<String>>>,
    /// The byte offset of every line's start, computed on the first lookup.
    line_starts: OnceLock<Vec<usize>>,
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

    /// The path made of `segments`, outermost first.
    pub(crate) fn from_segments(segments: Vec<PathSegment>) -> Self {
        Self(segments)
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
            line_starts: OnceLock::new(),
        }
    }

    /// Reads an architecture file from disk, refusing anything but a regular UTF-8 file of at
    /// most [`MAX_FILE_BYTES`]: a FIFO would block, a device never ends, and a huge file would
    /// hold the CLI or the compiler for minutes. The size is checked before and while reading,
    /// so a file that grows meanwhile is refused too.
    pub fn read(path: &Path) -> Result<Self, ReadError> {
        Self::read_as(path, path)
    }

    /// Like [`SourceFile::read`], reporting the file (in errors and diagnostics) as `name`,
    /// e.g. the path as the user wrote it rather than as resolved.
    pub fn read_as(path: &Path, name: impl Into<PathBuf>) -> Result<Self, ReadError> {
        let name = name.into();
        let text = read_bounded(path, MAX_FILE_BYTES).map_err(|e| e.reported_as(&name))?;
        Ok(Self::new(name, text))
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

    /// Line and column of a byte offset (a binary search in the line index: a file with
    /// thousands of diagnostics is not rescanned for each).
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = offset.min(self.text.len());
        let starts = self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        });
        let line = starts.partition_point(|start| *start <= offset);
        let line_start = starts[line - 1];
        let column = self
            .text
            .get(line_start..offset)
            .map_or(0, |text| text.chars().count())
            + 1;
        LineCol { line, column }
    }

    /// True when `path` itself is written in the file (not only a default of the model).
    pub(crate) fn is_written(&self, path: &KeyPath) -> bool {
        let Some(doc) = self.document() else {
            return false;
        };
        let mut node = Node::Table(doc.as_table());
        for segment in path.segments() {
            let next = match (node, segment) {
                (Node::Table(t), PathSegment::Key(k)) => t.get(k).and_then(Node::from_item),
                (Node::Inline(t), PathSegment::Key(k)) => t.get(k).map(Node::from_value),
                (Node::Tables(a), PathSegment::Index(n)) => a.get(*n).map(Node::Table),
                (Node::Array(a), PathSegment::Index(n)) => a.get(*n).map(Node::from_value),
                _ => None,
            };
            match next {
                Some(next) => node = next,
                None => return false,
            }
        }
        true
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bounded_regular_utf8_files_are_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b' '; MAX_FILE_BYTES as usize + 1]).expect("write");
        assert!(matches!(
            SourceFile::read(&big),
            Err(ReadError::TooLarge { .. })
        ));
        let binary = dir.path().join("binary.toml");
        std::fs::write(&binary, [0xff, 0xfe]).expect("write");
        assert!(matches!(
            SourceFile::read(&binary),
            Err(ReadError::NotUtf8 { .. })
        ));
        assert!(matches!(
            SourceFile::read(dir.path()),
            Err(ReadError::NotAFile {
                kind: "a directory",
                ..
            })
        ));
        assert!(matches!(
            SourceFile::read(&dir.path().join("absent.toml")),
            Err(ReadError::NotFound { .. })
        ));
        let fine = dir.path().join("fine.toml");
        std::fs::write(&fine, "[architecture]\n").expect("write");
        let read = SourceFile::read_as(&fine, "shown.toml").expect("a small file");
        assert_eq!(read.path(), Path::new("shown.toml"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn devices_fifos_and_files_that_lie_about_their_size_are_refused() {
        assert!(matches!(
            SourceFile::read(Path::new("/dev/zero")),
            Err(ReadError::NotAFile {
                kind: "a character device",
                ..
            })
        ));
        let dir = tempfile::tempdir().expect("temp dir");
        let fifo = dir.path().join("fifo.toml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        // Opening a FIFO without a writer would block forever: it must not be opened.
        assert!(matches!(
            SourceFile::read(&fifo),
            Err(ReadError::NotAFile { kind: "a FIFO", .. })
        ));
        // procfs reports size 0 for files with content: the read itself is bounded.
        assert!(matches!(
            read_bounded(Path::new("/proc/self/maps"), 16),
            Err(ReadError::TooLarge { limit: 16, .. })
        ));
    }
}
