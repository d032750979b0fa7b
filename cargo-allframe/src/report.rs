//! Printing: problems of `architecture.toml` as miette diagnostics with source snippets, the
//! warnings of ignite, and the [`Reporter`] that renders all of them to stderr.
//!
//! This module decides how things look, never whether a command succeeds.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use allframe_config::{Diagnostic as ConfigDiagnostic, Diagnostics, Severity};
use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode,
};

/// One problem of `architecture.toml`, renderable by miette with its snippet.
#[derive(Debug)]
pub struct ConfigProblem {
    diagnostic: ConfigDiagnostic,
    source: NamedSource<Arc<String>>,
}

impl ConfigProblem {
    /// `diagnostic`, shown against `source` (the file's text under its name).
    pub fn new(diagnostic: ConfigDiagnostic, source: NamedSource<Arc<String>>) -> Self {
        Self { diagnostic, source }
    }

    /// The problem as reported by allframe-config.
    pub fn diagnostic(&self) -> &ConfigDiagnostic {
        &self.diagnostic
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.diagnostic.path.segments().is_empty() {
            f.write_str(&self.diagnostic.message)
        } else {
            write!(f, "`{}`: {}", self.diagnostic.path, self.diagnostic.message)
        }
    }
}

impl std::error::Error for ConfigProblem {}

impl Diagnostic for ConfigProblem {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.diagnostic.code.as_str()))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diagnostic
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.diagnostic.span.clone()?;
        let label = if self.diagnostic.path.segments().is_empty() {
            None
        } else {
            Some(self.diagnostic.path.to_string())
        };
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(label, span),
        )))
    }
}

/// Each diagnostic of `diagnostics` as a [`ConfigProblem`] sharing the file's text.
pub fn problems<'a>(
    diagnostics: &Diagnostics,
    selected: impl Iterator<Item = &'a ConfigDiagnostic>,
) -> Vec<ConfigProblem> {
    let text = Arc::new(diagnostics.text().to_owned());
    let name = diagnostics.file().display().to_string();
    selected
        .map(|d| ConfigProblem::new(d.clone(), NamedSource::new(&name, Arc::clone(&text))))
        .collect()
}

/// An architecture file with errors: every problem found (errors and warnings), rendered
/// together.
#[derive(Debug)]
pub struct ConfigReport {
    file: PathBuf,
    errors: usize,
    warnings: usize,
    problems: Vec<ConfigProblem>,
}

impl ConfigReport {
    /// The report of a failed check.
    pub fn new(diagnostics: &Diagnostics) -> Self {
        Self {
            file: diagnostics.file().to_path_buf(),
            errors: diagnostics.errors().count(),
            warnings: diagnostics.warnings().count(),
            problems: problems(diagnostics, diagnostics.iter()),
        }
    }

    /// The file checked.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Every problem, errors and warnings, in the order found.
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.problems
    }
}

impl fmt::Display for ConfigReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a valid architecture file: {}",
            self.file.display(),
            count(self.errors, "error")
        )?;
        if self.warnings > 0 {
            write!(f, ", {}", count(self.warnings, "warning"))?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigReport {}

impl Diagnostic for ConfigReport {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("allframe::invalid_config"))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(
            "`cargo allframe schema` prints the JSON Schema of the file, for editor completion",
        ))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.problems.iter().map(|p| p as &dyn Diagnostic)))
    }
}

/// `1 error`, `2 errors`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Something ignite did not do, or did differently than asked.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum IgniteWarning {
    /// A service whose type ignite does not generate yet.
    #[error(
        "service `{name}` is of type `{kind}`, which ignite does not generate yet: no crate was written for it"
    )]
    #[diagnostic(
        severity(Warning),
        code(allframe::skipped_service),
        help(
            "ignite generates `stateless` services so far; the service stays in architecture.toml and is listed in the workspace README"
        )
    )]
    SkippedService {
        /// The service.
        name: String,
        /// Its type.
        kind: &'static str,
    },

    /// A service crate ignite wrote earlier that is no longer generated.
    #[error(
        "`{dir}` is no longer generated (`{name}` is not a generated service of the architecture any more): its {} are kept",
        count(*files, "file")
    )]
    #[diagnostic(
        severity(Warning),
        code(allframe::orphaned_service),
        help(
            "ignite never deletes files: the crate stays on disk and recorded in .allframe/manifest.json, but is no longer a member of the workspace; delete the directory yourself if the service is gone for good"
        )
    )]
    OrphanedService {
        /// The service's name (its directory under `services/`).
        name: String,
        /// `services/<name>/`.
        dir: String,
        /// How many files ignite recorded there.
        files: usize,
    },

    /// Other files ignite wrote earlier that are no longer generated.
    #[error(
        "{} ignite wrote earlier {} no longer generated and {} on disk: {list}",
        count(*files, "file"),
        if *files == 1 { "is" } else { "are" },
        if *files == 1 { "stays" } else { "stay" }
    )]
    #[diagnostic(
        severity(Warning),
        code(allframe::orphaned_files),
        help(
            "ignite never deletes files; delete them yourself if they are not needed any more (their records in .allframe/manifest.json go with them)"
        )
    )]
    OrphanedFiles {
        /// How many.
        files: usize,
        /// Their paths, comma-separated.
        list: String,
    },

    /// rustfmt could not be run.
    #[error(
        "rustfmt could not be run ({reason}): the generated Rust files are written unformatted"
    )]
    #[diagnostic(
        severity(Warning),
        code(allframe::rustfmt_unavailable),
        help("install it with `rustup component add rustfmt`, or set RUSTFMT to its path")
    )]
    RustfmtUnavailable {
        /// Why.
        reason: String,
    },

    /// rustfmt refused a generated file.
    #[error("rustfmt could not format `{file}`; it is written unformatted:\n{stderr}")]
    #[diagnostic(severity(Warning), code(allframe::rustfmt_failed))]
    RustfmtFailed {
        /// The file, relative to the workspace.
        file: String,
        /// What rustfmt said.
        stderr: String,
    },
}

/// Where command output goes: results to `out`, diagnostics to `err`, rendered by miette.
pub struct Reporter<'w> {
    out: &'w mut dyn Write,
    err: &'w mut dyn Write,
    handler: GraphicalReportHandler,
}

impl fmt::Debug for Reporter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter").finish_non_exhaustive()
    }
}

impl<'w> Reporter<'w> {
    /// A reporter writing to `out` and `err`, with colours when `color`.
    pub fn new(out: &'w mut dyn Write, err: &'w mut dyn Write, color: bool) -> Self {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        Self {
            out,
            err,
            handler: GraphicalReportHandler::new_themed(theme).with_links(false),
        }
    }

    /// Renders a diagnostic (error or warning) to `err`.
    pub fn diagnostic(&mut self, diagnostic: &dyn Diagnostic) {
        let mut text = String::new();
        // Rendering into a String cannot fail.
        let _ = self.handler.render_report(&mut text, diagnostic);
        // A closed stderr leaves nowhere to report to.
        let _ = writeln!(self.err, "{text}");
    }

    /// Writes one line of results to `out`.
    pub fn line(&mut self, line: impl fmt::Display) {
        // A closed stdout (e.g. `| head`) is not an error of the command.
        let _ = writeln!(self.out, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use allframe_config::SourceFile;

    fn render(diagnostic: &dyn Diagnostic) -> String {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        Reporter::new(&mut out, &mut err, false).diagnostic(diagnostic);
        String::from_utf8(err).expect("utf-8")
    }

    #[test]
    fn config_problems_render_with_file_line_key_code_and_help() {
        let text = "[architecture]\nname = \"shop\"\n\n[[services]]\nname = \"api\"\ntype = \"stateles\"\n";
        let source = SourceFile::new("arch/architecture.toml", text);
        let diagnostics = allframe_config::check(&source).expect_err("a typo in the type");
        let report = ConfigReport::new(&diagnostics);
        assert_eq!(report.problems().len(), diagnostics.len());
        let rendered = render(&report);
        assert!(rendered.contains("arch/architecture.toml:6:"), "{rendered}");
        assert!(rendered.contains("services[0].type"), "{rendered}");
        assert!(rendered.contains("allframe::invalid-value"), "{rendered}");
        assert!(rendered.contains("stateless"), "{rendered}");
    }
}
