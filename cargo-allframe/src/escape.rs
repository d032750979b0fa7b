//! Every value a template prints is escaped for the language of the file it lands in, unless it
//! is already code for that file ([`Code`], or the output of a quoting filter such as `|yaml`).
//!
//! The renderer calls [`Language::escape`] for each `{{ value }}` automatically, so a template
//! cannot forget it. The escape is the one that is valid both in a comment and inside a
//! double-quoted string of the language: a value can end neither, and never starts a new line.
//! Names the file declares are validated by allframe-config to characters no escape touches;
//! what is left to escape is free text (responsibilities, versions, `${VAR}` templates, topics),
//! which templates put in comments, prose and quoted strings. A value in any other position must
//! go through a quoting filter (`|yaml`, `|hcl`, `|toml_str`), which returns a complete literal.

use std::borrow::Cow;
use std::fmt::Write;

use serde::{Serialize, Serializer};

/// The language of a generated file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Rust sources and `build.rs`.
    Rust,
    /// Protocol Buffers definitions.
    Proto,
    /// TOML: `Cargo.toml`, `fly.toml`, `Shuttle.toml`.
    Toml,
    /// YAML: compose, Kubernetes, CI, Pulumi.
    Yaml,
    /// JSON: event schemas.
    Json,
    /// HCL: Terraform.
    Hcl,
    /// SQL init scripts and migrations.
    Sql,
    /// A Dockerfile.
    Dockerfile,
    /// Markdown documentation.
    Markdown,
    /// A Mermaid diagram.
    Mermaid,
    /// A Graphviz DOT diagram.
    Dot,
    /// Line-oriented text such as `.gitignore`.
    Text,
}

impl Language {
    /// Every language, for the renderer's registration and the tests.
    pub const ALL: [Language; 12] = [
        Language::Rust,
        Language::Proto,
        Language::Toml,
        Language::Yaml,
        Language::Json,
        Language::Hcl,
        Language::Sql,
        Language::Dockerfile,
        Language::Markdown,
        Language::Mermaid,
        Language::Dot,
        Language::Text,
    ];

    /// The name the renderer knows the language by.
    pub const fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Proto => "proto",
            Language::Toml => "toml",
            Language::Yaml => "yaml",
            Language::Json => "json",
            Language::Hcl => "hcl",
            Language::Sql => "sql",
            Language::Dockerfile => "dockerfile",
            Language::Markdown => "markdown",
            Language::Mermaid => "mermaid",
            Language::Dot => "dot",
            Language::Text => "text",
        }
    }

    /// The language called `name` (see [`Language::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.name() == name)
    }

    /// The language of the template `name` (its path under `archetypes/`), from the file it
    /// renders to: `stateless/src/main.rs.jinja` is Rust, `infra/graph/dot.jinja` is DOT.
    pub fn of_template(name: &str) -> Option<Self> {
        let file = name.strip_suffix(".jinja")?;
        let base = file.rsplit('/').next().unwrap_or(file);
        let extension = base.rsplit_once('.').map(|(_, ext)| ext);
        Some(match (base, extension) {
            ("Dockerfile", _) => Language::Dockerfile,
            ("gitignore", _) => Language::Text,
            ("mermaid", _) => Language::Mermaid,
            ("dot", _) => Language::Dot,
            // Event schemas: JSON Schema or Avro, both JSON.
            ("schema", _) => Language::Json,
            (_, Some("rs")) => Language::Rust,
            (_, Some("proto")) => Language::Proto,
            (_, Some("toml")) => Language::Toml,
            (_, Some("yaml" | "yml")) => Language::Yaml,
            (_, Some("json")) => Language::Json,
            (_, Some("tf" | "tfvars")) => Language::Hcl,
            (_, Some("sql")) => Language::Sql,
            (_, Some("md")) => Language::Markdown,
            _ => return None,
        })
    }

    /// `text` escaped so that it can end neither a comment nor a double-quoted string of this
    /// language, and starts no new line. Text that needs none of it is returned as is.
    pub fn escape(self, text: &str) -> Cow<'_, str> {
        if !text.chars().any(|c| self.needs_escape(c)) {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len() + 8);
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if !self.needs_escape(c) {
                out.push(c);
                continue;
            }
            match self {
                Language::Rust => rust_char(&mut out, c),
                Language::Proto => proto_char(&mut out, c),
                Language::Toml | Language::Yaml | Language::Json | Language::Dockerfile => {
                    json_char(&mut out, c);
                }
                Language::Hcl => match (c, chars.peek()) {
                    // `${` and `%{` start Terraform templates; doubled they are literal.
                    ('$' | '%', Some('{')) => {
                        out.push(c);
                        out.push(c);
                    }
                    ('$' | '%', _) => out.push(c),
                    _ => json_char(&mut out, c),
                },
                Language::Sql => match c {
                    '\'' => out.push_str("''"),
                    _ => out.push(' '),
                },
                Language::Markdown => match c {
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    c if c.is_control() || breaks_line(c) => out.push(' '),
                    c => {
                        out.push('\\');
                        out.push(c);
                    }
                },
                // Mermaid's entity codes, as `mermaid_label` writes them.
                Language::Mermaid => match c {
                    '"' => out.push_str("#quot;"),
                    '<' => out.push_str("#lt;"),
                    '>' => out.push_str("#gt;"),
                    c if c.is_control() || breaks_line(c) => out.push(' '),
                    c => {
                        let _ = write!(out, "#{};", u32::from(c));
                    }
                },
                Language::Dot => match c {
                    '"' | '\\' => {
                        out.push('\\');
                        out.push(c);
                    }
                    // DOT's own escape: a line break inside the label, not in the file.
                    '\n' => out.push_str("\\n"),
                    _ => out.push(' '),
                },
                Language::Text => out.push(' '),
            }
        }
        Cow::Owned(out)
    }

    fn needs_escape(self, c: char) -> bool {
        if breaks_line(c) || c.is_control() {
            return true;
        }
        match self {
            Language::Rust | Language::Proto => matches!(c, '"' | '\\'),
            Language::Toml | Language::Yaml | Language::Json | Language::Dockerfile => {
                matches!(c, '"' | '\\')
            }
            Language::Hcl => matches!(c, '"' | '\\' | '$' | '%'),
            Language::Sql => c == '\'',
            Language::Markdown => matches!(c, '\\' | '`' | '|' | '<' | '>' | '[' | ']'),
            Language::Mermaid => matches!(c, '"' | '#' | '<' | '>' | '`'),
            Language::Dot => matches!(c, '"' | '\\'),
            Language::Text => false,
        }
    }
}

/// True for every character some parser of a generated file reads as the end of a line: LF,
/// CR, vertical tab, form feed, NEL and the Unicode line and paragraph separators.
pub fn breaks_line(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

fn rust_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\0' => out.push_str("\\0"),
        c => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
}

fn proto_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if u32::from(c) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        c => {
            // Outside ASCII: its UTF-8 bytes, which is how protobuf strings carry them.
            let mut bytes = [0u8; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
}

/// A character as inside a JSON string, which YAML, TOML and HCL double-quoted strings read the
/// same way.
fn json_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        }
    }
}

/// Text that is already code of the file it is printed into (an HCL expression, a quoted
/// literal, a rendered diagram): the renderer prints it as it is. Only this crate builds it,
/// never from an unescaped value of the architecture file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code(String);

impl Code {
    /// `text`, which the caller has made valid code of the output file.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Code> for minijinja::Value {
    fn from(code: Code) -> Self {
        minijinja::Value::from_safe_string(code.0)
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Inside a template context, a minijinja value keeps its "safe" mark through serde.
        minijinja::Value::from_safe_string(self.0.clone()).serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "a\nb\rc\"d'e\\f*/g#h${i}%{j}`k\0l\u{2028}m\u{2029}n\u{85}o<p>|q[r]";

    #[test]
    fn every_template_extension_has_a_language() {
        for (name, language) in [
            ("stateless/src/main.rs.jinja", Language::Rust),
            ("stateless/Cargo.toml.jinja", Language::Toml),
            ("infra/docker/Dockerfile.jinja", Language::Dockerfile),
            ("infra/k8s/base/hpa.yaml.jinja", Language::Yaml),
            ("infra/ci/ci.yml.jinja", Language::Yaml),
            ("infra/terraform/aws/region.tfvars.jinja", Language::Hcl),
            ("workspace/gitignore.jinja", Language::Text),
            ("infra/terraform/aws/schema.jinja", Language::Json),
        ] {
            assert_eq!(Language::of_template(name), Some(language), "{name}");
        }
        assert_eq!(Language::of_template("notes.txt"), None);
        for language in Language::ALL {
            assert_eq!(Language::from_name(language.name()), Some(language));
        }
    }

    #[test]
    fn escaped_text_never_breaks_a_line_or_keeps_a_control_character() {
        for language in Language::ALL {
            let escaped = language.escape(HOSTILE);
            assert!(
                !escaped.chars().any(|c| breaks_line(c) || c.is_control()),
                "{language:?}: {escaped:?}"
            );
        }
        assert!(matches!(
            Language::Yaml.escape("user-service"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn escaped_text_stays_inside_a_double_quoted_string() {
        let quoted = |l: Language| format!("\"{}\"", l.escape(HOSTILE));
        let json: serde_json::Value = serde_json::from_str(&quoted(Language::Json)).expect("json");
        assert_eq!(json.as_str(), Some(HOSTILE));
        let toml: toml::Table =
            toml::from_str(&format!("v = {}", quoted(Language::Toml))).expect("toml");
        assert_eq!(toml["v"].as_str(), Some(HOSTILE));
        let yaml: String = serde_saphyr::from_str(&quoted(Language::Yaml)).expect("yaml");
        assert_eq!(yaml, HOSTILE);
        let rust: syn::LitStr = syn::parse_str(&quoted(Language::Rust)).expect("rust");
        assert_eq!(rust.value(), HOSTILE);
        // HCL reads JSON escapes and `$${` / `%%{` as literal `${` / `%{`.
        assert!(quoted(Language::Hcl).contains("$${i}%%{j}"));
        assert_eq!(Language::Sql.escape("it's"), "it''s");
    }
}
