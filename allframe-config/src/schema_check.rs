//! Walks the span-preserving document against the JSON Schema and reports every unknown key,
//! missing key, wrong type, word outside an enum and malformed `${VAR}` template at once.
//!
//! serde stops at the first problem; this walk does not, which is what lets `allframe check` and
//! the macro list all mistakes of a file together. It understands exactly the schema shapes that
//! schemars produces for the model: `$ref`, `anyOf`/`oneOf` with `null`, `const`/`enum` strings,
//! objects with `properties`/`additionalProperties`/`required`, arrays, scalars with bounds.

use serde_json::Value as Json;

use crate::diagnostic::{Code, Diagnostic};
use crate::interpolate::EnvString;
use crate::source::{KeyPath, Node};
use crate::suggest;

/// Checks `node` at `path` against `schema`, pushing problems into `out`.
pub(crate) fn check(
    root: &Json,
    schema: &Json,
    node: Node<'_>,
    path: &KeyPath,
    out: &mut Vec<Diagnostic>,
) {
    let schema = resolve(root, schema);
    if let Some(words) = enum_words(root, schema) {
        check_word(&words, node, path, out);
        return;
    }
    if is_env_string(schema)
        && let Some(text) = as_str(node)
    {
        if let Err(e) = EnvString::parse(text) {
            out.push(
                Diagnostic::error(Code::InvalidTemplate, path.clone(), e.to_string())
                    .with_help("write `${NAME}` or `${NAME:-default}`; `$$` is a literal `$`"),
            );
        }
        return;
    }
    let Some(expected) = schema_type(root, schema) else {
        return;
    };
    match expected {
        "object" => check_object(root, schema, node, path, out),
        "array" => check_array(root, schema, node, path, out),
        scalar => check_scalar(scalar, schema, node, path, out),
    }
}

fn check_object(
    root: &Json,
    schema: &Json,
    node: Node<'_>,
    path: &KeyPath,
    out: &mut Vec<Diagnostic>,
) {
    let entries: Vec<(&str, Node<'_>)> = match node {
        Node::Table(t) => t
            .iter()
            .filter_map(|(k, item)| Node::from_item(item).map(|n| (k, n)))
            .collect(),
        Node::Inline(t) => t.iter().map(|(k, v)| (k, Node::from_value(v))).collect(),
        other => {
            out.push(type_error("a table", other, path));
            return;
        }
    };
    let empty = serde_json::Map::new();
    let properties = schema
        .get("properties")
        .and_then(Json::as_object)
        .unwrap_or(&empty);
    let additional = schema.get("additionalProperties").filter(|v| v.is_object());
    for (key, child) in &entries {
        let child_path = path.key(key);
        match (properties.get(*key), additional) {
            (Some(sub), _) | (None, Some(sub)) => check(root, sub, *child, &child_path, out),
            (None, None) => {
                let known: Vec<&str> = properties.keys().map(String::as_str).collect();
                out.push(
                    Diagnostic::error(
                        Code::UnknownKey,
                        child_path,
                        format!("unknown key `{key}`{}", location_suffix(path)),
                    )
                    .with_help(suggest::help(key, &known))
                    .at_key(),
                );
            }
        }
    }
    if let Some(required) = schema.get("required").and_then(Json::as_array) {
        for key in required.iter().filter_map(Json::as_str) {
            if !entries.iter().any(|(k, _)| k == &key) {
                out.push(
                    Diagnostic::error(
                        Code::MissingKey,
                        path.clone(),
                        format!("missing required key `{key}`{}", location_suffix(path)),
                    )
                    .with_help(format!(
                        "add `{key} = …`{}",
                        describe(root, properties.get(key))
                    )),
                );
            }
        }
    }
}

fn check_array(
    root: &Json,
    schema: &Json,
    node: Node<'_>,
    path: &KeyPath,
    out: &mut Vec<Diagnostic>,
) {
    let items = schema.get("items").unwrap_or(&Json::Null);
    match node {
        Node::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                check(root, items, Node::from_value(v), &path.index(i), out);
            }
        }
        Node::Tables(a) => {
            for (i, t) in a.iter().enumerate() {
                check(root, items, Node::Table(t), &path.index(i), out);
            }
        }
        other => out.push(type_error("an array", other, path)),
    }
}

fn check_scalar(
    expected: &str,
    schema: &Json,
    node: Node<'_>,
    path: &KeyPath,
    out: &mut Vec<Diagnostic>,
) {
    let Node::Leaf(value) = node else {
        out.push(type_error(article(expected), node, path));
        return;
    };
    use toml_edit::Value as V;
    let ok = match (expected, value) {
        ("string", V::String(_)) | ("boolean", V::Boolean(_)) => true,
        ("integer", V::Integer(i)) => {
            check_bounds(*i.value() as f64, schema, path, out);
            true
        }
        ("number", V::Integer(i)) => {
            check_bounds(*i.value() as f64, schema, path, out);
            true
        }
        ("number", V::Float(f)) => {
            check_bounds(*f.value(), schema, path, out);
            true
        }
        _ => false,
    };
    if !ok {
        out.push(type_error(article(expected), node, path));
    }
}

fn check_bounds(value: f64, schema: &Json, path: &KeyPath, out: &mut Vec<Diagnostic>) {
    let min = schema.get("minimum").and_then(Json::as_f64);
    let max = schema.get("maximum").and_then(Json::as_f64);
    let below = min.is_some_and(|m| value < m);
    let above = max.is_some_and(|m| value > m);
    if below || above {
        let range = match (min, max) {
            (Some(a), Some(b)) => format!("from {a} to {b}"),
            (Some(a), None) => format!("at least {a}"),
            (None, Some(b)) => format!("at most {b}"),
            (None, None) => String::new(),
        };
        out.push(
            Diagnostic::error(
                Code::InvalidValue,
                path.clone(),
                format!("{value} is out of range"),
            )
            .with_help(format!("use a value {range}")),
        );
    }
}

fn check_word(words: &[&str], node: Node<'_>, path: &KeyPath, out: &mut Vec<Diagnostic>) {
    match as_str(node) {
        Some(word) if words.contains(&word) => {}
        Some(word) => out.push(
            Diagnostic::error(
                Code::InvalidValue,
                path.clone(),
                format!(
                    "`{word}` is not a valid value for `{}`",
                    path.last_key().unwrap_or("this key")
                ),
            )
            .with_help(match suggest::closest(word, words.iter().copied()) {
                Some(best) => format!(
                    "did you mean `{best}`? expected one of: {}",
                    suggest::quoted_list(words)
                ),
                None => format!("expected one of: {}", suggest::quoted_list(words)),
            }),
        ),
        None => out.push(type_error("a string", node, path)),
    }
}

/// Follows `$ref`s and drops the `null` branch that `Option` adds.
fn resolve<'a>(root: &'a Json, mut schema: &'a Json) -> &'a Json {
    for _ in 0..16 {
        if let Some(target) = schema.get("$ref").and_then(Json::as_str) {
            let name = target.rsplit('/').next().unwrap_or(target);
            match root.get("$defs").and_then(|d| d.get(name)) {
                Some(def) => {
                    schema = def;
                    continue;
                }
                None => return schema,
            }
        }
        let branches = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Json::as_array);
        if let Some(branches) = branches {
            let non_null: Vec<&Json> = branches.iter().filter(|b| !is_null(b)).collect();
            if let [only] = non_null.as_slice()
                && non_null.len() < branches.len()
            {
                schema = only;
                continue;
            }
        }
        return schema;
    }
    schema
}

fn is_null(schema: &Json) -> bool {
    schema.get("type").and_then(Json::as_str) == Some("null")
}

fn is_env_string(schema: &Json) -> bool {
    schema
        .get("description")
        .and_then(Json::as_str)
        .is_some_and(|d| d.starts_with(crate::interpolate::SCHEMA_DESCRIPTION))
}

/// The accepted words when `schema` is a closed set of strings.
fn enum_words<'a>(root: &'a Json, schema: &'a Json) -> Option<Vec<&'a str>> {
    if let Some(values) = schema.get("enum").and_then(Json::as_array) {
        return values.iter().map(Json::as_str).collect();
    }
    let branches = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))?
        .as_array()?;
    branches
        .iter()
        .map(|b| {
            let b = resolve(root, b);
            b.get("const")
                .and_then(Json::as_str)
                .map(|w| vec![w])
                .or_else(|| {
                    b.get("enum")?
                        .as_array()?
                        .iter()
                        .map(Json::as_str)
                        .collect()
                })
        })
        .collect::<Option<Vec<_>>>()
        .map(|v| v.into_iter().flatten().collect())
}

fn schema_type<'a>(root: &'a Json, schema: &'a Json) -> Option<&'a str> {
    match schema.get("type")? {
        Json::String(t) => Some(t),
        Json::Array(types) => types.iter().filter_map(Json::as_str).find(|t| *t != "null"),
        _ => {
            let _ = root;
            None
        }
    }
}

fn as_str<'a>(node: Node<'a>) -> Option<&'a str> {
    match node {
        Node::Leaf(toml_edit::Value::String(s)) => Some(s.value()),
        _ => None,
    }
}

fn article(expected: &str) -> &'static str {
    match expected {
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "a boolean (`true` or `false`)",
        "array" => "an array",
        _ => "a table",
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

fn describe(root: &Json, schema: Option<&Json>) -> String {
    schema
        .map(|s| resolve(root, s))
        .and_then(|s| s.get("description"))
        .and_then(Json::as_str)
        .map(|d| format!(" ({})", d.trim_end_matches('.').to_lowercase()))
        .unwrap_or_default()
}
