//! Reading and checking `architecture.toml` for the commands: the file's exact bytes (ignite
//! copies them into the workspace) and the checked [`Architecture`], or a typed error that
//! names the file.

use std::path::{Path, PathBuf};

use allframe_config::{Architecture, CheckOptions, SourceFile};

use crate::error::CliError;
use crate::report::{ConfigReport, Reporter, problems};

/// The default `--config`.
pub const DEFAULT_CONFIG: &str = "architecture.toml";

/// A checked architecture file.
#[derive(Debug)]
pub struct Loaded {
    /// The path it was read from.
    pub path: PathBuf,
    /// Its bytes, exactly as on disk.
    pub bytes: Vec<u8>,
    /// The checked model (with its warnings).
    pub architecture: Architecture,
}

impl Loaded {
    /// Renders the file's warnings; returns how many there were.
    pub fn report_warnings(&self, reporter: &mut Reporter<'_>) -> usize {
        let Some(report) = self.architecture.warning_report() else {
            return 0;
        };
        let warnings = problems(report, report.warnings());
        for warning in &warnings {
            reporter.diagnostic(warning);
        }
        warnings.len()
    }
}

/// Reads and checks `path` (a regular file of at most [`allframe_config::MAX_FILE_BYTES`]);
/// `deny_warnings` makes the file's warnings errors.
pub fn load(path: &Path, deny_warnings: bool) -> Result<Loaded, CliError> {
    let source = SourceFile::read(path).map_err(|source| CliError::ReadConfig {
        help: source.help(),
        source,
    })?;
    let bytes = source.text().as_bytes().to_vec();
    let options = CheckOptions { deny_warnings };
    let architecture = allframe_config::check_with(&source, options)
        .map_err(|diagnostics| ConfigReport::new(&diagnostics))?;
    Ok(Loaded {
        path: path.to_path_buf(),
        bytes,
        architecture,
    })
}
