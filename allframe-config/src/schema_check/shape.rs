//! The JSON Schema compiled once into the shapes the walk needs, so checking a file never looks
//! up a schema keyword, follows a `$ref` or collects an enum's words again.
//!
//! Compiling understands exactly the schema shapes that schemars produces for the model: `$ref`,
//! `anyOf`/`oneOf` with `null`, `const`/`enum` strings, objects with
//! `properties`/`additionalProperties`/`required`, arrays, scalars with bounds. Each schema is
//! first resolved (its `$ref`s followed, the `null` branch that `Option` adds dropped); schemas
//! that resolve to the same definition share one shape, which also ends recursion.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value as Json;

use crate::json_schema;

/// The index of a [`Shape`] in [`Compiled::shapes`].
pub(super) type ShapeId = usize;

/// The whole schema: the shapes and the one the file's root table has.
pub(super) struct Compiled {
    shapes: Vec<Shape>,
    root: ShapeId,
}

/// What one position of the file must hold.
pub(super) struct Shape {
    /// The accepted words when the schema is a closed set of strings; checked before anything
    /// else.
    pub(super) words: Option<Box<[&'static str]>>,
    /// A string that may hold `${VAR}` templates; a value of another type falls through to
    /// [`Shape::kind`].
    pub(super) env_string: bool,
    /// The schema's `description`, for the help of a missing key.
    pub(super) description: Option<&'static str>,
    /// The JSON type expected, with what depends on it.
    pub(super) kind: Kind,
}

/// The JSON type a shape expects.
pub(super) enum Kind {
    /// No `type`: anything is accepted.
    Any,
    /// A table.
    Object(Object),
    /// An array whose items have the shape `items`.
    Array { items: ShapeId },
    /// A string, boolean or number, with the bounds of a number.
    Scalar {
        scalar: Scalar,
        min: Option<f64>,
        max: Option<f64>,
    },
}

/// The JSON scalar types (any other `type` word accepts no value).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Scalar {
    String,
    Boolean,
    Integer,
    Number,
    Other,
}

/// A table's keys.
pub(super) struct Object {
    /// The properties in the schema's order, for the list of known keys.
    pub(super) known: Box<[&'static str]>,
    /// The properties sorted by name, for lookups.
    sorted: Box<[(&'static str, ShapeId)]>,
    /// The shape of every key that is not a property, when other keys are accepted.
    pub(super) additional: Option<ShapeId>,
    /// The keys that must be present, in the schema's order.
    pub(super) required: Box<[&'static str]>,
}

impl Object {
    /// The shape of property `key`, if it is one.
    pub(super) fn property(&self, key: &str) -> Option<ShapeId> {
        self.sorted
            .binary_search_by(|(name, _)| (*name).cmp(key))
            .ok()
            .map(|i| self.sorted[i].1)
    }
}

impl Compiled {
    /// The schema of `architecture.toml`, compiled on first use.
    pub(super) fn get() -> &'static Compiled {
        static COMPILED: OnceLock<Compiled> = OnceLock::new();
        COMPILED.get_or_init(|| Compiled::new(json_schema::schema()))
    }

    fn new(root: &'static Json) -> Self {
        let mut compiler = Compiler {
            root,
            shapes: vec![ANY],
            by_schema: HashMap::new(),
        };
        let root_shape = compiler.compile(root);
        Compiled {
            shapes: compiler.shapes,
            root: root_shape,
        }
    }

    /// The shape of the whole file.
    pub(super) fn root(&self) -> ShapeId {
        self.root
    }

    /// The shape `id`.
    pub(super) fn shape(&self, id: ShapeId) -> &Shape {
        &self.shapes[id]
    }
}

/// The shape of a schema without keywords (and of an array without `items`): it accepts
/// anything. Always at index 0.
const ANY: Shape = Shape {
    words: None,
    env_string: false,
    description: None,
    kind: Kind::Any,
};

struct Compiler {
    root: &'static Json,
    shapes: Vec<Shape>,
    /// The shape of every resolved schema compiled so far, by address.
    by_schema: HashMap<*const Json, ShapeId>,
}

impl Compiler {
    fn compile(&mut self, schema: &'static Json) -> ShapeId {
        let schema = resolve(self.root, schema);
        if let Some(id) = self.by_schema.get(&(schema as *const Json)) {
            return *id;
        }
        // Reserve the index first: a recursive schema finds it while its children compile.
        let id = self.shapes.len();
        self.shapes.push(ANY);
        self.by_schema.insert(schema, id);
        let words = enum_words(self.root, schema).map(Vec::into_boxed_slice);
        let kind = match schema_type(schema) {
            None => Kind::Any,
            Some("object") => Kind::Object(self.object(schema)),
            Some("array") => Kind::Array {
                items: schema.get("items").map_or(0, |items| self.compile(items)),
            },
            Some(scalar) => Kind::Scalar {
                scalar: match scalar {
                    "string" => Scalar::String,
                    "boolean" => Scalar::Boolean,
                    "integer" => Scalar::Integer,
                    "number" => Scalar::Number,
                    _ => Scalar::Other,
                },
                min: schema.get("minimum").and_then(Json::as_f64),
                max: schema.get("maximum").and_then(Json::as_f64),
            },
        };
        self.shapes[id] = Shape {
            words,
            env_string: is_env_string(schema),
            description: schema.get("description").and_then(Json::as_str),
            kind,
        };
        id
    }

    fn object(&mut self, schema: &'static Json) -> Object {
        let properties = schema.get("properties").and_then(Json::as_object);
        let known: Box<[&str]> = properties
            .into_iter()
            .flat_map(|p| p.keys().map(String::as_str))
            .collect();
        let mut sorted: Vec<(&str, ShapeId)> = properties
            .into_iter()
            .flatten()
            .map(|(name, sub)| (name.as_str(), self.compile(sub)))
            .collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let additional = schema
            .get("additionalProperties")
            .filter(|v| v.is_object())
            .map(|sub| self.compile(sub));
        let required = schema
            .get("required")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .collect();
        Object {
            known,
            sorted: sorted.into_boxed_slice(),
            additional,
            required,
        }
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

/// The JSON type `schema` expects: its `type`, or the first of its types that is not `null`.
fn schema_type(schema: &Json) -> Option<&str> {
    match schema.get("type")? {
        Json::String(t) => Some(t),
        Json::Array(types) => types.iter().filter_map(Json::as_str).find(|t| *t != "null"),
        _ => None,
    }
}
