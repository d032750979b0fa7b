//! Stage 1: text → [`ArchitectureFile`]. TOML syntax first, then the schema walk (every unknown
//! key, wrong type and bad word at once), then serde into the typed model.

use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::model::ArchitectureFile;
use crate::schema_check;
use crate::source::{KeyPath, Node, SourceFile};

/// Parses `source`; on failure the problems are in `diagnostics` and `None` is returned.
pub fn parse(source: &SourceFile, diagnostics: &mut Diagnostics) -> Option<ArchitectureFile> {
    let Some(document) = source.document() else {
        let error = match toml_edit::Document::parse(source.text()) {
            Err(e) => e,
            Ok(_) => return None,
        };
        let message = error.message().trim().to_owned();
        let span = error.span().unwrap_or(0..0);
        diagnostics.push(
            source,
            Diagnostic::error(
                Code::Syntax,
                KeyPath::root(),
                format!("invalid TOML: {message}"),
            )
            .with_span(span)
            .with_help("fix the TOML syntax; see https://toml.io/en/v1.0.0"),
        );
        return None;
    };

    let mut found = Vec::new();
    schema_check::check_file(Node::Table(document.as_table()), &mut found);
    if !found.is_empty() {
        for d in found {
            diagnostics.push(source, d);
        }
        return None;
    }

    match toml::from_str::<ArchitectureFile>(source.text()) {
        Ok(file) => Some(file),
        Err(error) => {
            let mut diagnostic = Diagnostic::error(
                Code::InvalidValue,
                KeyPath::root(),
                error.message().trim().to_owned(),
            );
            if let Some(span) = error.span() {
                diagnostic = diagnostic.with_span(span);
            }
            diagnostics.push(source, diagnostic);
            None
        }
    }
}
