//! The scaffold templates, embedded in the binary so an installed `cargo-allframe` needs no
//! checkout of the repository, and the minijinja environment that renders them.
//!
//! The sources live in `archetypes/<type>/` and mirror the tree they produce; this module only
//! lists them, says where each one goes and when it applies. What goes into a template's context
//! is decided in [`crate::context`].

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Serde, Value};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::error::CliError;

/// When a template applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Always.
    Always,
    /// Only for services that speak gRPC.
    Grpc,
}

/// One embedded template.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    /// Its source path under `archetypes/`, e.g. `stateless/src/main.rs.jinja`.
    pub name: &'static str,
    /// The path it renders to (itself a template), relative to the crate or workspace root.
    pub output: &'static str,
    /// When it applies.
    pub when: When,
    /// Its text.
    pub source: &'static str,
}

macro_rules! template {
    ($name:literal => $output:literal, $when:ident) => {
        Template {
            name: $name,
            output: $output,
            when: When::$when,
            source: include_str!(concat!("../../archetypes/", $name)),
        }
    };
}

/// The files of a `stateless` service crate, relative to `services/<name>/`.
pub const STATELESS: &[Template] = &[
    template!("stateless/Cargo.toml.jinja" => "Cargo.toml", Always),
    template!("stateless/build.rs.jinja" => "build.rs", Always),
    template!("stateless/src/main.rs.jinja" => "src/main.rs", Always),
    template!("stateless/src/domain/mod.rs.jinja" => "src/domain/mod.rs", Always),
    template!("stateless/src/domain/entity.rs.jinja" => "src/domain/{{ entity.snake }}.rs", Always),
    template!("stateless/src/application/mod.rs.jinja" => "src/application/mod.rs", Always),
    template!("stateless/src/application/commands.rs.jinja" => "src/application/commands.rs", Always),
    template!("stateless/src/application/queries.rs.jinja" => "src/application/queries.rs", Always),
    template!("stateless/src/presentation/mod.rs.jinja" => "src/presentation/mod.rs", Always),
    template!("stateless/src/presentation/rest.rs.jinja" => "src/presentation/rest.rs", Always),
    template!("stateless/src/presentation/grpc.rs.jinja" => "src/presentation/grpc.rs", Grpc),
    template!(
        "stateless/migrations/0001_create_entities.sql.jinja"
            => "migrations/0001_create_{{ entity.plural_snake }}.sql",
        Always
    ),
    template!("stateless/proto/service.proto.jinja" => "proto/{{ service.kebab }}.proto", Grpc),
    template!("stateless/tests/entity_api.rs.jinja" => "tests/{{ entity.snake }}_api.rs", Always),
];

/// The files at the root of the generated workspace (besides `architecture.toml`).
pub const WORKSPACE: &[Template] = &[
    template!("workspace/Cargo.toml.jinja" => "Cargo.toml", Always),
    template!("workspace/README.md.jinja" => "README.md", Always),
    template!("workspace/gitignore.jinja" => ".gitignore", Always),
];

/// Renders templates: strict about undefined values, block tags take their line with them,
/// no HTML escaping, trailing newlines kept.
pub struct Renderer {
    env: Environment<'static>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer").finish_non_exhaustive()
    }
}

impl Renderer {
    /// A renderer holding every embedded template.
    pub fn new() -> Result<Self, CliError> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .map_err(|source| CliError::Template {
                template: "(syntax)".into(),
                source,
            })?;
        env.set_syntax(syntax);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.add_filter("toml_str", toml_str);
        for template in STATELESS.iter().chain(WORKSPACE) {
            env.add_template(template.name, template.source)
                .map_err(|source| CliError::Template {
                    template: template.name.into(),
                    source,
                })?;
        }
        Ok(Self { env })
    }

    /// Renders `template`'s text and its output path with `context`.
    pub fn render(
        &self,
        template: &Template,
        context: &impl Serialize,
    ) -> Result<(String, String), CliError> {
        let error = |source| CliError::Template {
            template: template.name.into(),
            source,
        };
        let context = Value::from(Serde(context));
        let text = self
            .env
            .get_template(template.name)
            .and_then(|t| t.render(context.clone()))
            .map_err(error)?;
        let path = self
            .env
            .render_str(template.output, context)
            .map_err(error)?;
        Ok((path, text))
    }
}

/// The `toml_str` filter: a string as a TOML string literal, quoted and escaped.
fn toml_str(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_are_quoted_and_escaped() {
        let rendered = toml_str(r#"C:\a "b""#);
        let parsed: toml::Table = toml::from_str(&format!("v = {rendered}")).expect("valid TOML");
        assert_eq!(parsed["v"].as_str(), Some(r#"C:\a "b""#));
    }
}
