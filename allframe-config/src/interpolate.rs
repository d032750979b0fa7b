//! `${VAR}` and `${VAR:-default}` values: parsed when the file is read, resolved only at run time.
//!
//! A value such as `jwt_issuer = "https://${AUTH_DOMAIN:-auth.local}/"` is kept as a list of
//! [`Segment`]s. Nothing here reads the process environment on its own: resolution takes a lookup
//! function, so the macro never bakes a secret into a binary and tests inject their environment.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The JSON Schema description of an [`EnvString`]; the schema walk recognises it by this text.
pub(crate) const SCHEMA_DESCRIPTION: &str = "A string that may reference environment variables as ${VAR} or ${VAR:-default}; resolved at run time, never at build time.";

/// One piece of an interpolated string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text copied as it is.
    Literal(String),
    /// `${name}` or `${name:-default}`.
    Var {
        /// The environment variable's name.
        name: String,
        /// The value used when the variable is unset (or empty).
        default: Option<String>,
    },
}

/// A string value that may reference environment variables; resolved at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvString {
    raw: String,
    segments: Vec<Segment>,
}

/// Why a `${…}` template could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `${` without its closing `}`.
    #[error("`${{` at byte {offset} is never closed with `}}`")]
    Unclosed {
        /// Byte offset of the `${` within the value.
        offset: usize,
    },
    /// `${}` or `${:-x}`.
    #[error("`${{}}` at byte {offset} names no variable")]
    EmptyName {
        /// Byte offset of the `${` within the value.
        offset: usize,
    },
    /// A name with characters other than ASCII letters, digits and `_`, or starting with a digit.
    #[error(
        "`{name}` is not a valid environment variable name (use A-Z, 0-9 and _, not starting with a digit)"
    )]
    BadName {
        /// The offending name.
        name: String,
    },
}

/// Why a deferred value could not be resolved at run time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "environment variable `{variable}` is not set, and `{key}` uses it without a default (write `${{{variable}:-default}}` to give one)"
)]
pub struct UnsetVariable {
    /// The variable that is missing.
    pub variable: String,
    /// The key path of the value that needs it, e.g. `security.authentication.jwt_issuer`.
    pub key: String,
}

impl EnvString {
    /// Parses a value, splitting it into literal text and variable references.
    /// `$$` stands for a literal `$`.
    pub fn parse(raw: &str) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = raw;
        let mut offset = 0;
        while let Some(pos) = rest.find('$') {
            literal.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                literal.push('$');
                offset += pos + 2;
                rest = tail;
                continue;
            }
            let Some(body_start) = after.strip_prefix('{') else {
                literal.push('$');
                offset += pos + 1;
                rest = after;
                continue;
            };
            let at = offset + pos;
            let close = body_start
                .find('}')
                .ok_or(TemplateError::Unclosed { offset: at })?;
            let body = &body_start[..close];
            let (name, default) = match body.split_once(":-") {
                Some((name, default)) => (name, Some(default.to_owned())),
                None => (body, None),
            };
            if name.is_empty() {
                return Err(TemplateError::EmptyName { offset: at });
            }
            if !is_var_name(name) {
                return Err(TemplateError::BadName {
                    name: name.to_owned(),
                });
            }
            if !literal.is_empty() {
                segments.push(Segment::Literal(std::mem::take(&mut literal)));
            }
            segments.push(Segment::Var {
                name: name.to_owned(),
                default,
            });
            let consumed = pos + 2 + close + 1;
            offset += consumed;
            rest = &rest[consumed..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Self {
            raw: raw.to_owned(),
            segments,
        })
    }

    /// The value exactly as written in the file.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The parsed pieces.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The value's text when it references no variable (`$$` read as `$`), else `None`.
    pub fn literal(&self) -> Option<String> {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(text) => Some(text.as_str()),
                Segment::Var { .. } => None,
            })
            .collect()
    }

    /// True when the value references at least one variable.
    pub fn is_deferred(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Var { .. }))
    }

    /// The names of the variables the value references, in order.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Var { name, .. } => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// Resolves the value with `lookup` (usually `std::env::var(..).ok()`); `key` names the value
    /// in errors. An empty variable counts as unset when a default is given, as in POSIX shells.
    pub fn resolve(
        &self,
        key: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<String, UnsetVariable> {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Var { name, default } => match (lookup(name), default) {
                    (Some(value), Some(_)) if !value.is_empty() => out.push_str(&value),
                    (Some(value), None) => out.push_str(&value),
                    (_, Some(default)) => out.push_str(default),
                    (None, None) => {
                        return Err(UnsetVariable {
                            variable: name.clone(),
                            key: key.to_owned(),
                        });
                    }
                },
            }
        }
        Ok(out)
    }
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl fmt::Display for EnvString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for EnvString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for EnvString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        EnvString::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for EnvString {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EnvString".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": SCHEMA_DESCRIPTION,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn splits_literals_and_variables() {
        let v = EnvString::parse("https://${HOST:-localhost}:${PORT}/x").unwrap();
        assert_eq!(
            v.segments(),
            &[
                Segment::Literal("https://".into()),
                Segment::Var {
                    name: "HOST".into(),
                    default: Some("localhost".into())
                },
                Segment::Literal(":".into()),
                Segment::Var {
                    name: "PORT".into(),
                    default: None
                },
                Segment::Literal("/x".into()),
            ]
        );
        assert!(v.is_deferred());
        assert_eq!(v.variables().collect::<Vec<_>>(), ["HOST", "PORT"]);
    }

    #[test]
    fn resolves_set_default_and_unset() {
        let v = EnvString::parse("${A}-${B:-dflt}").unwrap();
        assert_eq!(
            v.resolve("k", env(&[("A", "1"), ("B", "2")])).unwrap(),
            "1-2"
        );
        assert_eq!(v.resolve("k", env(&[("A", "1")])).unwrap(), "1-dflt");
        assert_eq!(
            v.resolve("k", env(&[("A", "1"), ("B", "")])).unwrap(),
            "1-dflt"
        );
        let err = v.resolve("security.x", env(&[("B", "2")])).unwrap_err();
        assert_eq!(err.variable, "A");
        assert_eq!(err.key, "security.x");
        assert!(err.to_string().contains("`A`"));
        assert!(err.to_string().contains("security.x"));
    }

    #[test]
    fn dollar_escapes_and_plain_dollars() {
        let v = EnvString::parse("cost $5 and $${NOT}").unwrap();
        assert!(!v.is_deferred());
        assert_eq!(v.resolve("k", env(&[])).unwrap(), "cost $5 and ${NOT}");
    }

    #[test]
    fn rejects_malformed_templates() {
        assert_eq!(
            EnvString::parse("x${A").unwrap_err(),
            TemplateError::Unclosed { offset: 1 }
        );
        assert_eq!(
            EnvString::parse("${}").unwrap_err(),
            TemplateError::EmptyName { offset: 0 }
        );
        assert!(matches!(
            EnvString::parse("${1X}").unwrap_err(),
            TemplateError::BadName { .. }
        ));
    }
}
