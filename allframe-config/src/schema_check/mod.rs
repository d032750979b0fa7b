//! Walks the span-preserving document against the JSON Schema and reports every unknown key,
//! missing key, wrong type, word outside an enum and malformed `${VAR}` template at once.
//!
//! serde stops at the first problem; this walk does not, which is what lets `allframe check` and
//! the macro list all mistakes of a file together. The schema is walked as [`shape`] compiled
//! it, and the position as a borrowed [`path::Path`]: a file without mistakes allocates nothing
//! here.

mod path;
mod shape;

use crate::diagnostic::{Code, Diagnostic};
use crate::interpolate::EnvString;
use crate::source::{KeyPath, Node};
use crate::suggest;
use path::Path;
use shape::{Compiled, Kind, Object, Scalar, ShapeId};

/// Checks the file's root table against the schema, pushing problems into `out`.
pub(crate) fn check_file(root: Node<'_>, out: &mut Vec<Diagnostic>) {
    let schema = Compiled::get();
    Walk { schema, out }.check(schema.root(), root, &Path::Root);
}

/// One walk of a document: the schema and the problems found so far.
struct Walk<'s, 'o> {
    schema: &'s Compiled,
    out: &'o mut Vec<Diagnostic>,
}

impl Walk<'_, '_> {
    /// Checks `node` at `path` against the shape `id`.
    fn check(&mut self, id: ShapeId, node: Node<'_>, path: &Path<'_>) {
        let shape = self.schema.shape(id);
        if let Some(words) = &shape.words {
            self.check_word(words, node, path);
            return;
        }
        if shape.env_string
            && let Some(text) = as_str(node)
        {
            // Only a `$` can make a template malformed.
            if text.contains('$')
                && let Err(e) = EnvString::parse(text)
            {
                self.out.push(
                    Diagnostic::error(Code::InvalidTemplate, path.to_key_path(), e.to_string())
                        .with_help("write `${NAME}` or `${NAME:-default}`; `$$` is a literal `$`"),
                );
            }
            return;
        }
        match &shape.kind {
            Kind::Any => {}
            Kind::Object(object) => self.check_object(object, node, path),
            Kind::Array { items } => self.check_array(*items, node, path),
            Kind::Scalar { scalar, min, max } => {
                self.check_scalar(*scalar, (*min, *max), node, path)
            }
        }
    }

    fn check_object(&mut self, object: &Object, node: Node<'_>, path: &Path<'_>) {
        if !matches!(node, Node::Table(_) | Node::Inline(_)) {
            self.out
                .push(type_error("a table", node, &path.to_key_path()));
            return;
        }
        for (key, child) in entries(node) {
            let child_path = Path::Key(path, key);
            match object.property(key).or(object.additional) {
                Some(sub) => self.check(sub, child, &child_path),
                None => {
                    let path = path.to_key_path();
                    self.out.push(
                        Diagnostic::error(
                            Code::UnknownKey,
                            path.key(key),
                            format!("unknown key `{key}`{}", location_suffix(&path)),
                        )
                        .with_help(suggest::help(key, &object.known))
                        .at_key(),
                    );
                }
            }
        }
        for key in &object.required {
            if !entries(node).any(|(k, _)| k == *key) {
                let path = path.to_key_path();
                self.out.push(
                    Diagnostic::error(
                        Code::MissingKey,
                        path.clone(),
                        format!("missing required key `{key}`{}", location_suffix(&path)),
                    )
                    .with_help(format!("add `{key} = …`{}", self.describe(object, key))),
                );
            }
        }
    }

    fn check_array(&mut self, items: ShapeId, node: Node<'_>, path: &Path<'_>) {
        match node {
            Node::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    self.check(items, Node::from_value(v), &Path::Index(path, i));
                }
            }
            Node::Tables(a) => {
                for (i, t) in a.iter().enumerate() {
                    self.check(items, Node::Table(t), &Path::Index(path, i));
                }
            }
            other => self
                .out
                .push(type_error("an array", other, &path.to_key_path())),
        }
    }

    fn check_scalar(
        &mut self,
        expected: Scalar,
        bounds: (Option<f64>, Option<f64>),
        node: Node<'_>,
        path: &Path<'_>,
    ) {
        let Node::Leaf(value) = node else {
            self.out
                .push(type_error(article(expected), node, &path.to_key_path()));
            return;
        };
        use toml_edit::Value as V;
        let ok = match (expected, value) {
            (Scalar::String, V::String(_)) | (Scalar::Boolean, V::Boolean(_)) => true,
            (Scalar::Integer | Scalar::Number, V::Integer(i)) => {
                self.check_bounds(*i.value() as f64, bounds, path);
                true
            }
            (Scalar::Number, V::Float(f)) => {
                self.check_bounds(*f.value(), bounds, path);
                true
            }
            _ => false,
        };
        if !ok {
            self.out
                .push(type_error(article(expected), node, &path.to_key_path()));
        }
    }

    fn check_bounds(&mut self, value: f64, bounds: (Option<f64>, Option<f64>), path: &Path<'_>) {
        let (min, max) = bounds;
        let below = min.is_some_and(|m| value < m);
        let above = max.is_some_and(|m| value > m);
        if below || above {
            let range = match (min, max) {
                (Some(a), Some(b)) => format!("from {a} to {b}"),
                (Some(a), None) => format!("at least {a}"),
                (None, Some(b)) => format!("at most {b}"),
                (None, None) => String::new(),
            };
            self.out.push(
                Diagnostic::error(
                    Code::InvalidValue,
                    path.to_key_path(),
                    format!("{value} is out of range"),
                )
                .with_help(format!("use a value {range}")),
            );
        }
    }

    fn check_word(&mut self, words: &[&str], node: Node<'_>, path: &Path<'_>) {
        match as_str(node) {
            Some(word) if words.contains(&word) => {}
            Some(word) => {
                let path = path.to_key_path();
                let message = format!(
                    "`{word}` is not a valid value for `{}`",
                    path.last_key().unwrap_or("this key")
                );
                let help = match suggest::closest(word, words.iter().copied()) {
                    Some(best) => format!(
                        "did you mean `{best}`? expected one of: {}",
                        suggest::quoted_list(words)
                    ),
                    None => format!("expected one of: {}", suggest::quoted_list(words)),
                };
                self.out
                    .push(Diagnostic::error(Code::InvalidValue, path, message).with_help(help));
            }
            None => self
                .out
                .push(type_error("a string", node, &path.to_key_path())),
        }
    }

    /// ` (the description)` of property `key`, for the help of a missing key.
    fn describe(&self, object: &Object, key: &str) -> String {
        object
            .property(key)
            .and_then(|id| self.schema.shape(id).description)
            .map(|d| format!(" ({})", d.trim_end_matches('.').to_lowercase()))
            .unwrap_or_default()
    }
}

/// The keys of a table and what they hold (keys without a value are skipped).
fn entries<'a>(node: Node<'a>) -> impl Iterator<Item = (&'a str, Node<'a>)> {
    let (table, inline) = match node {
        Node::Table(t) => (Some(t), None),
        Node::Inline(t) => (None, Some(t)),
        _ => (None, None),
    };
    let table = table
        .into_iter()
        .flat_map(|t| t.iter())
        .filter_map(|(k, item)| Node::from_item(item).map(|n| (k, n)));
    let inline = inline
        .into_iter()
        .flat_map(|t| t.iter())
        .map(|(k, v)| (k, Node::from_value(v)));
    table.chain(inline)
}

fn as_str<'a>(node: Node<'a>) -> Option<&'a str> {
    match node {
        Node::Leaf(toml_edit::Value::String(s)) => Some(s.value()),
        _ => None,
    }
}

fn article(expected: Scalar) -> &'static str {
    match expected {
        Scalar::String => "a string",
        Scalar::Integer => "an integer",
        Scalar::Number => "a number",
        Scalar::Boolean => "a boolean (`true` or `false`)",
        Scalar::Other => "a table",
    }
}

fn found(node: Node<'_>) -> &'static str {
    use toml_edit::Value as V;
    match node {
        Node::Table(_) | Node::Inline(_) => "a table",
        Node::Tables(_) => "an array of tables",
        Node::Array(_) => "an array",
        Node::Leaf(V::String(_)) => "a string",
        Node::Leaf(V::Integer(_)) => "an integer",
        Node::Leaf(V::Float(_)) => "a float",
        Node::Leaf(V::Boolean(_)) => "a boolean",
        Node::Leaf(V::Datetime(_)) => "a date-time",
        Node::Leaf(_) => "a value",
    }
}

fn type_error(expected: &str, node: Node<'_>, path: &KeyPath) -> Diagnostic {
    Diagnostic::error(
        Code::InvalidType,
        path.clone(),
        format!("expected {expected}, found {}", found(node)),
    )
    .with_help(match path.last_key() {
        Some(key) => format!("write `{key}` as {expected}"),
        None => format!("write `{path}` as {expected}"),
    })
}

fn location_suffix(path: &KeyPath) -> String {
    if path.segments().is_empty() {
        " at the top level".to_owned()
    } else {
        format!(" in `{path}`")
    }
}
