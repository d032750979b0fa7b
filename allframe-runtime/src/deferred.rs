//! Resolution of deferred `${VAR}` values at start-up.
//!
//! The templates were parsed at compile time (by allframe-config, through the macro) into
//! [`Segment`]s; this module only substitutes environment values. It must not parse template
//! text: a `$` inside a literal segment is plain text.

use std::collections::HashMap;
use std::fmt;

use crate::env::Environment;
use crate::settings::{DeferredValue, Segment};

/// An environment variable a deferred value needs but that is unset and has no default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVariable {
    /// The variable's name, e.g. `"AUTH_ISSUER"`.
    pub var: &'static str,
    /// The key path in `architecture.toml` whose value needs it.
    pub key: &'static str,
}

impl fmt::Display for MissingVariable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "environment variable `{}` is not set (needed by `{}` in architecture.toml)",
            self.var, self.key
        )
    }
}

/// Why deferred values could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeferredError {
    /// Variables without a default were unset; every one is listed.
    #[error(
        "{} required environment variable(s) unset: {}; set them, or give a default in the file with `${{VAR:-default}}`",
        .0.len(),
        join(.0)
    )]
    MissingVariables(Vec<MissingVariable>),
}

impl DeferredError {
    /// The unset variables, each with the key that needs it.
    pub fn missing(&self) -> &[MissingVariable] {
        match self {
            Self::MissingVariables(missing) => missing,
        }
    }
}

fn join(missing: &[MissingVariable]) -> String {
    missing
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Deferred values after resolution, by key path.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ResolvedValues {
    values: HashMap<&'static str, String>,
}

impl ResolvedValues {
    /// The resolved value of `key`, if the file declared one.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// How many values were resolved.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no value was declared.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl fmt::Debug for ResolvedValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Resolved values may be secrets: show only the keys.
        let mut keys: Vec<&&str> = self.values.keys().collect();
        keys.sort();
        f.debug_struct("ResolvedValues")
            .field("keys", &keys)
            .finish()
    }
}

/// Resolves every deferred value from `env`.
///
/// `${VAR}` takes the variable's value as is (an empty value is kept); `${VAR:-default}` takes
/// the default when the variable is unset *or empty*, as in POSIX shells. Every unset variable
/// without a default is reported at once.
pub fn resolve(
    deferred: &'static [DeferredValue],
    env: &Environment,
) -> Result<ResolvedValues, DeferredError> {
    let mut values = HashMap::with_capacity(deferred.len());
    let mut missing = Vec::new();
    for value in deferred {
        let mut text = String::new();
        for segment in value.segments {
            match *segment {
                Segment::Literal(literal) => text.push_str(literal),
                Segment::Var { name, default } => match (env.get(name), default) {
                    (Some(found), Some(default)) if found.is_empty() => text.push_str(default),
                    (Some(found), _) => text.push_str(&found),
                    (None, Some(default)) => text.push_str(default),
                    (None, None) => {
                        let entry = MissingVariable {
                            var: name,
                            key: value.key,
                        };
                        if !missing.contains(&entry) {
                            missing.push(entry);
                        }
                    }
                },
            }
        }
        values.insert(value.key, text);
    }
    if missing.is_empty() {
        Ok(ResolvedValues { values })
    } else {
        Err(DeferredError::MissingVariables(missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static ISSUER: DeferredValue = DeferredValue {
        key: "security.authentication.jwt_issuer",
        segments: &[
            Segment::Literal("https://"),
            Segment::Var {
                name: "AUTH_HOST",
                default: None,
            },
            Segment::Literal("/realms/"),
            Segment::Var {
                name: "AUTH_REALM",
                default: Some("main"),
            },
        ],
    };
    static BROKER: DeferredValue = DeferredValue {
        key: "messaging.url",
        segments: &[Segment::Var {
            name: "BROKER_URL",
            default: None,
        }],
    };
    static ALL: [DeferredValue; 2] = [ISSUER, BROKER];

    #[test]
    fn set_variables_and_defaults_are_substituted() {
        let env = Environment::from_pairs([
            ("AUTH_HOST", "id.example.com"),
            ("BROKER_URL", "nats://127.0.0.1:4222"),
        ]);
        let values = resolve(&ALL, &env).expect("all variables are set");
        assert_eq!(
            values.get("security.authentication.jwt_issuer"),
            Some("https://id.example.com/realms/main")
        );
        assert_eq!(values.get("messaging.url"), Some("nats://127.0.0.1:4222"));
        assert_eq!(values.get("unknown.key"), None);
        assert_eq!(values.len(), 2);
    }

    #[test]
    fn a_set_variable_wins_over_its_default_and_empty_takes_the_default() {
        let env = Environment::from_pairs([
            ("AUTH_HOST", "h"),
            ("AUTH_REALM", "staff"),
            ("BROKER_URL", ""),
        ]);
        let values = resolve(&ALL, &env).expect("all variables are set");
        assert_eq!(
            values.get("security.authentication.jwt_issuer"),
            Some("https://h/realms/staff")
        );
        // `${BROKER_URL}` without default keeps an empty value.
        assert_eq!(values.get("messaging.url"), Some(""));

        let env = Environment::from_pairs([("AUTH_HOST", "h"), ("AUTH_REALM", "")]);
        let values = resolve(&ALL[..1], &env).expect("AUTH_HOST is set");
        assert_eq!(
            values.get("security.authentication.jwt_issuer"),
            Some("https://h/realms/main")
        );
    }

    #[test]
    fn unset_variables_without_default_name_the_variable_and_the_key() {
        let env = Environment::from_pairs([("AUTH_REALM", "x")]);
        let error = resolve(&ALL, &env).expect_err("AUTH_HOST and BROKER_URL are unset");
        assert_eq!(
            error.missing(),
            &[
                MissingVariable {
                    var: "AUTH_HOST",
                    key: "security.authentication.jwt_issuer"
                },
                MissingVariable {
                    var: "BROKER_URL",
                    key: "messaging.url"
                },
            ]
        );
        let message = error.to_string();
        assert!(message.contains("`AUTH_HOST`"), "{message}");
        assert!(
            message.contains("`security.authentication.jwt_issuer`"),
            "{message}"
        );
        assert!(message.contains("`BROKER_URL`"), "{message}");
    }

    #[test]
    fn debug_output_hides_values() {
        let env = Environment::from_pairs([("AUTH_HOST", "secret-host"), ("BROKER_URL", "b")]);
        let values = resolve(&ALL, &env).expect("all variables are set");
        let shown = format!("{values:?}");
        assert!(!shown.contains("secret-host"), "{shown}");
        assert!(shown.contains("messaging.url"), "{shown}");
    }
}
