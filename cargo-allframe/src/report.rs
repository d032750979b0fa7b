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
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError,
    MietteSpanContents, SourceCode, SourceSpan, SpanContents,
};

/// The text of `architecture.toml` under its name, with the offset of every line: a snippet is
/// read from its own lines, where miette's `String` source scans the file from its start for
/// each one (thousands of warnings on a large file made rendering quadratic).
#[derive(Debug)]
pub struct IndexedSource {
    name: String,
    text: String,
    line_starts: Vec<usize>,
}

impl IndexedSource {
    /// `text`, reported as `name`.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// The 0-based line holding byte `offset`.
    fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|start| *start <= offset) - 1
    }
}

impl SourceCode for IndexedSource {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        // The same window as miette's own sources: `before` lines above the span's first line
        // (or the span's start without them); the span's last byte; then the rest of the line
        // after the span and `after` more lines.
        let (start, end) = (span.offset(), span.offset() + span.len());
        if end.saturating_sub(1) > self.text.len() {
            return Err(MietteError::OutOfBounds);
        }
        let first = self.line_of(start.min(self.text.len()));
        // miette counts the rest of the span's line from the first newline at or after here.
        let after_span = end.max(1).min(self.text.len());
        let newline_after = self.line_starts.last().is_some_and(|s| *s > after_span);
        let (from, line, column) = if before == 0 {
            let column = if after > 0 && newline_after {
                0
            } else {
                start - self.line_starts[first]
            };
            (start, first, column)
        } else {
            let line = first.saturating_sub(before);
            (self.line_starts[line], line, 0)
        };
        let to = if after == 0 {
            end.max(1).min(self.text.len())
        } else {
            self.line_starts
                .get(self.line_of(after_span) + after + 1)
                .copied()
                .unwrap_or(self.text.len())
        }
        .max(from);
        let line_count = self.line_starts.partition_point(|s| *s <= to) - 1;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            &self.text.as_bytes()[from..to],
            (from, to - from).into(),
            line,
            column,
            line_count,
        )))
    }
}

/// One problem of `architecture.toml`, renderable by miette with its snippet.
#[derive(Debug)]
pub struct ConfigProblem {
    diagnostic: ConfigDiagnostic,
    source: Arc<IndexedSource>,
}

impl ConfigProblem {
    /// `diagnostic`, shown against `source` (the file's text under its name).
    pub fn new(diagnostic: ConfigDiagnostic, source: Arc<IndexedSource>) -> Self {
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
        Some(self.source.as_ref())
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
    let source = Arc::new(IndexedSource::new(
        diagnostics.file().display().to_string(),
        diagnostics.text(),
    ));
    selected
        .map(|d| ConfigProblem::new(d.clone(), Arc::clone(&source)))
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

    /// Writes one line for the user, not a result (a question, a note), to `err`.
    pub fn note(&mut self, line: impl fmt::Display) {
        let _ = writeln!(self.err, "{line}");
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
    fn indexed_snippets_are_the_ones_miette_reads_from_the_whole_text() {
        for text in [
            "[a]\nx = 1\n\n[[b]]\nname = \"api\"\ntype = \"stateles\"\nlast = true",
            "\n\nx = 1\n",
        ] {
            same_snippets_as_miette(text);
        }
    }

    fn same_snippets_as_miette(text: &str) {
        let indexed = IndexedSource::new("f.toml", text);
        for start in 0..text.len() {
            for len in 0..=(text.len() - start).min(12) {
                for (before, after) in [(0, 0), (1, 1), (2, 3), (0, 2), (3, 0)] {
                    let span = SourceSpan::from((start, len));
                    let theirs = text.read_span(&span, before, after).expect("in bounds");
                    let ours = indexed.read_span(&span, before, after).expect("in bounds");
                    let at = format!("{start}+{len} ({before}, {after})");
                    assert_eq!(ours.data(), theirs.data(), "{at}");
                    assert_eq!(ours.span(), theirs.span(), "{at}");
                    assert_eq!(ours.line(), theirs.line(), "{at}");
                    assert_eq!(ours.column(), theirs.column(), "{at}");
                    assert_eq!(ours.line_count(), theirs.line_count(), "{at}");
                    assert_eq!(ours.name(), Some("f.toml"));
                }
            }
        }
        let beyond = SourceSpan::from((text.len() + 1, 1));
        assert!(indexed.read_span(&beyond, 1, 1).is_err());
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
