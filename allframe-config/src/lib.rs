//! The schema of `architecture.toml`, shared by the CLI and the `#[allframe::service]` macro so the
//! two can never disagree about what a file means.
//!
//! The flow is one module per stage: [`parse`] (syntax, unknown keys and types against the
//! [`json_schema`], then serde) → [`resolve`] (defaults that need the whole file) → [`validate`]
//! (cross-references), each reporting [`Diagnostic`]s with file, line, column and key path.
//! Values written as `${VAR}` stay [`EnvString`]s: nothing is resolved before run time.

pub mod diagnostic;
pub mod interpolate;
pub mod json_schema;
pub mod model;
pub mod names;
pub mod parse;
pub mod resolve;
mod schema_check;
pub mod source;
pub mod suggest;
pub mod validate;

pub use diagnostic::{Diagnostic, Diagnostics, Severity};
pub use interpolate::{EnvString, Segment, UnsetVariable};
pub use model::ArchitectureFile;
pub use resolve::{Architecture, Archetype, CommonService, Globals, ResolvedService};
pub use source::{KeyPath, MAX_FILE_BYTES, ReadError, SourceFile};

/// Reads, resolves and validates one file. `Err` holds at least one error; `Ok` may carry
/// warnings in [`Architecture::warnings`].
pub fn check(source: &SourceFile) -> Result<Architecture, Diagnostics> {
    let mut diagnostics = Diagnostics::new(source);
    let Some(file) = parse::parse(source, &mut diagnostics) else {
        return Err(diagnostics);
    };
    let draft = resolve::resolve(file);
    validate::validate(&draft, source, &mut diagnostics);
    if diagnostics.has_errors() {
        Err(diagnostics)
    } else {
        Ok(draft.finish(diagnostics))
    }
}
