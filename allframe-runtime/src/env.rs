//! Where the runtime reads environment variables from.
//!
//! Every run-time lookup (`PORT`, `DATABASE_URL`, `${VAR}` templates, …) goes through an
//! [`Environment`], so tests inject a map instead of mutating the process environment (which is
//! `unsafe` in edition 2024 and races between parallel tests). This module only reads; it never
//! interprets a value.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// A variable lookup: the name in, the value (if set) out.
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// A source of environment variables: the process environment or an injected lookup.
#[derive(Clone)]
pub struct Environment {
    lookup: Arc<Lookup>,
}

impl Environment {
    /// The process environment. Variables whose value is not valid UTF-8 read as unset.
    pub fn process() -> Self {
        Self::from_fn(|name| std::env::var_os(name).and_then(|value| value.into_string().ok()))
    }

    /// An environment answered by `lookup`.
    pub fn from_fn<F>(lookup: F) -> Self
    where
        F: Fn(&str) -> Option<String> + Send + Sync + 'static,
    {
        Self {
            lookup: Arc::new(lookup),
        }
    }

    /// An environment holding exactly `pairs` (nothing is read from the process).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let map: HashMap<String, String> = pairs
            .into_iter()
            .map(|(key, value)| (key.into(), value.into()))
            .collect();
        Self::from_fn(move |name| map.get(name).cloned())
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// The value of `name`, treating an empty or all-blank value as unset.
    pub fn get_non_empty(&self, name: &str) -> Option<String> {
        self.get(name).filter(|value| !value.trim().is_empty())
    }

    /// `var`'s value parsed by `parse` (a parser of the `allframe_env` contract), when set and
    /// not blank.
    pub fn parsed<T>(
        &self,
        var: allframe_env::Var,
        parse: fn(&allframe_env::Var, &str) -> Result<T, allframe_env::Invalid>,
    ) -> Result<Option<T>, allframe_env::Invalid> {
        self.get_non_empty(var.name)
            .map(|value| parse(&var, &value))
            .transpose()
    }
}

impl Default for Environment {
    fn default() -> Self {
        Self::process()
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: never print them.
        f.debug_struct("Environment").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_pairs_are_the_only_variables() {
        let env = Environment::from_pairs([("PORT", "8080"), ("EMPTY", " ")]);
        assert_eq!(env.get("PORT").as_deref(), Some("8080"));
        assert_eq!(env.get("PATH"), None);
        assert_eq!(env.get("EMPTY").as_deref(), Some(" "));
        assert_eq!(env.get_non_empty("EMPTY"), None);
    }
}
