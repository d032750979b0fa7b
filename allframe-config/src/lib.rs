//! The schema of `architecture.toml`, shared by the CLI and the `#[allframe::service]` macro so the
//! two can never disagree about what a file means.
//!
//! The flow is one module per stage: [`parse`] (syntax, unknown keys and types against the
//! [`json_schema`], then serde) → [`resolve`] (defaults that need the whole file) → [`validate`]
//! (cross-references) → [`support`] (what this version honours), each reporting
//! [`Diagnostic`]s with file, line, column and key path. Only [`check`] runs them, so every
//! [`Architecture`] has passed all four.
//! Values written as `${VAR}` stay [`EnvString`]s: nothing is resolved before run time.

pub mod diagnostic;
pub mod interpolate;
pub mod json_schema;
pub mod model;
pub mod names;
pub mod parse;
pub mod plural;
pub mod resolve;
mod schema_check;
pub mod source;
pub mod suggest;
pub mod support;
pub mod validate;

pub use diagnostic::{Diagnostic, Diagnostics, Severity};
pub use interpolate::{EnvString, Segment, UnsetVariable};
pub use model::ArchitectureFile;
pub use resolve::{Archetype, Architecture, CommonService, Globals, ResolvedService};
pub use source::{KeyPath, MAX_FILE_BYTES, ReadError, SourceFile};

/// How strict [`check_with`] is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Make every warning an error (`--deny-warnings`). `[settings] deny_warnings = true` in
    /// the file does the same whatever this says.
    pub deny_warnings: bool,
}

/// Reads, resolves, validates and checks the support of one file, as the file's own
/// `[settings] deny_warnings` says. `Err` holds at least one error; `Ok` may carry warnings in
/// [`Architecture::warnings`].
pub fn check(source: &SourceFile) -> Result<Architecture, Diagnostics> {
    check_with(source, CheckOptions::default())
}

/// [`check`] with options from the command line.
pub fn check_with(source: &SourceFile, options: CheckOptions) -> Result<Architecture, Diagnostics> {
    let mut diagnostics = Diagnostics::new(source);
    let Some(file) = parse::parse(source, &mut diagnostics) else {
        return Err(diagnostics);
    };
    let draft = resolve::resolve(file);
    validate::validate(&draft, source, &mut diagnostics);
    support::check(&draft, source, &mut diagnostics);
    if draft.file().settings.deny_warnings {
        diagnostics.deny_warnings("`[settings] deny_warnings = true`");
    } else if options.deny_warnings {
        diagnostics.deny_warnings("--deny-warnings");
    }
    if diagnostics.has_errors() {
        Err(diagnostics)
    } else {
        Ok(draft.finish(diagnostics))
    }
}
