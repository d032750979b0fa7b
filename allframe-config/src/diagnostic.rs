//! Problems found in a file: each with a severity, a stable code, the key path, the byte span,
//! line and column, a message and a help line. Every stage pushes into one [`Diagnostics`] so
//! all problems are reported together.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::source::{Anchor, KeyPath, LineCol, SourceFile};

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The file can't be used.
    Error,
    /// The file works, but probably not as meant.
    Warning,
}

/// What kind of problem a diagnostic reports; its [`Code::as_str`] is stable for tooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// The text is not valid TOML.
    Syntax,
    /// A key the schema does not know.
    UnknownKey,
    /// A required key is missing.
    MissingKey,
    /// A value of the wrong type.
    InvalidType,
    /// A word outside the accepted set, or a value out of range.
    InvalidValue,
    /// A malformed `${VAR}` template.
    InvalidTemplate,
    /// Two services with one name.
    DuplicateService,
    /// A name that cannot become what it names: not a DNS label, crate, type or method name,
    /// or a reserved word.
    InvalidName,
    /// Two names that become one type, module or method.
    NameClash,
    /// A type-specific table on a service of another type.
    MisplacedTable,
    /// A table the service's type needs is missing.
    MissingTable,
    /// Saga steps and compensations of different lengths.
    SagaMismatch,
    /// A producer's events do not pair one to one with its entities.
    EventMismatch,
    /// A malformed `protocol:port` entry.
    InvalidPort,
    /// Two listeners on one port.
    PortClash,
    /// A cron expression that does not parse.
    InvalidCron,
    /// A time zone that is not an IANA name.
    InvalidTimezone,
    /// A service or event nobody declares.
    UnknownReference,
    /// A combination the chosen engines cannot provide, or a value this version refuses.
    Unsupported,
    /// A key this version accepts without giving it full effect (see [`crate::support`]).
    NotHonoured,
}

impl Code {
    /// The code as shown to users, e.g. `allframe::unknown-key`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::Syntax => "allframe::syntax",
            Code::UnknownKey => "allframe::unknown-key",
            Code::MissingKey => "allframe::missing-key",
            Code::InvalidType => "allframe::invalid-type",
            Code::InvalidValue => "allframe::invalid-value",
            Code::InvalidTemplate => "allframe::invalid-template",
            Code::DuplicateService => "allframe::duplicate-service",
            Code::InvalidName => "allframe::invalid-name",
            Code::NameClash => "allframe::name-clash",
            Code::MisplacedTable => "allframe::misplaced-table",
            Code::MissingTable => "allframe::missing-table",
            Code::SagaMismatch => "allframe::saga-mismatch",
            Code::EventMismatch => "allframe::event-mismatch",
            Code::InvalidPort => "allframe::invalid-port",
            Code::PortClash => "allframe::port-clash",
            Code::InvalidCron => "allframe::invalid-cron",
            Code::InvalidTimezone => "allframe::invalid-timezone",
            Code::UnknownReference => "allframe::unknown-reference",
            Code::Unsupported => "allframe::unsupported",
            Code::NotHonoured => "allframe::not-honoured",
        }
    }
}

/// One problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The kind of problem.
    pub code: Code,
    /// Where in the model, e.g. `services[2].saga.compensation`.
    pub path: KeyPath,
    /// What is wrong.
    pub message: String,
    /// A likely fix.
    pub help: Option<String>,
    /// Byte span in the file (set when pushed).
    pub span: Option<Range<usize>>,
    /// Line and column of the span's start (set when pushed).
    pub location: Option<LineCol>,
    anchor: Anchor,
}

impl Diagnostic {
    /// An error at `path`.
    pub fn error(code: Code, path: KeyPath, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, path, message)
    }

    /// A warning at `path`.
    pub fn warning(code: Code, path: KeyPath, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, path, message)
    }

    fn new(severity: Severity, code: Code, path: KeyPath, message: impl Into<String>) -> Self {
        Self {
            severity,
            code,
            path,
            message: message.into(),
            help: None,
            span: None,
            location: None,
            anchor: Anchor::Value,
        }
    }

    /// Adds a likely fix.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Points the diagnostic at the key's name instead of its value.
    pub fn at_key(mut self) -> Self {
        self.anchor = Anchor::Key;
        self
    }

    /// Uses an exact span instead of looking the key path up.
    pub fn with_span(mut self, span: Range<usize>) -> Self {
        self.span = Some(span);
        self
    }
}

/// Every problem found in one file.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    file: PathBuf,
    text: String,
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// An empty collection for `source`.
    pub fn new(source: &SourceFile) -> Self {
        Self {
            file: source.path().to_owned(),
            text: source.text().to_owned(),
            items: Vec::new(),
        }
    }

    /// Adds a diagnostic, locating it in `source`.
    pub fn push(&mut self, source: &SourceFile, mut diagnostic: Diagnostic) {
        if diagnostic.span.is_none() {
            diagnostic.span = source.span_of(&diagnostic.path, diagnostic.anchor);
        }
        diagnostic.location = diagnostic.span.as_ref().map(|s| source.line_col(s.start));
        self.items.push(diagnostic);
    }

    /// The file's name.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The file's text (for rendering snippets).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// All diagnostics, in the order found.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// Number of diagnostics.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// True when at least one diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// Makes every warning an error, saying `why` in its help (`--deny-warnings`, or
    /// `[settings] deny_warnings = true`).
    pub(crate) fn deny_warnings(&mut self, why: &str) {
        for item in &mut self.items {
            if item.severity == Severity::Warning {
                item.severity = Severity::Error;
                item.help = Some(match item.help.take() {
                    Some(help) => format!("{help} (a warning, made an error by {why})"),
                    None => format!("a warning, made an error by {why}"),
                });
            }
        }
    }

    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Error)
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    /// One diagnostic as a single plain-text block: `file:line:col: error[code]: key: message`
    /// and a `help:` line. Used by the macro, whose messages can't carry snippets.
    pub fn render_one(&self, diagnostic: &Diagnostic) -> String {
        let severity = match diagnostic.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let location = diagnostic
            .location
            .map(|l| format!(":{}:{}", l.line, l.column))
            .unwrap_or_default();
        let key = if diagnostic.path.segments().is_empty() {
            String::new()
        } else {
            format!("`{}`: ", diagnostic.path)
        };
        let mut out = format!(
            "{}{location}: {severity}[{}]: {key}{}",
            self.file.display(),
            diagnostic.code.as_str(),
            diagnostic.message
        );
        if let Some(help) = &diagnostic.help {
            out.push_str("\n  help: ");
            out.push_str(help);
        }
        out
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            f.write_str(&self.render_one(d))?;
        }
        Ok(())
    }
}
