//! Logging set-up: one global `tracing` subscriber per process, in the file's [`LogFormat`].
//!
//! Filtered by `RUST_LOG` (default `info`), written to standard output without ANSI colours.
//! Installing twice is harmless (the first subscriber stays), so in-process tests may start
//! several services. This module does not decide *what* is logged.

use tracing_subscriber::EnvFilter;

use crate::env::Environment;
use crate::settings::LogFormat;

/// The variable holding the log filter.
pub const RUST_LOG: &str = "RUST_LOG";
/// The filter used when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// `RUST_LOG` is not a valid filter.
    #[error(
        "RUST_LOG has an invalid filter `{value}`: {source} (example: RUST_LOG=info,sqlx=warn)"
    )]
    InvalidFilter {
        /// The value found.
        value: String,
        /// The parser's complaint.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
}

/// The filter from `RUST_LOG`, or `info`.
pub fn filter(env: &Environment) -> Result<EnvFilter, TelemetryError> {
    match env.get_non_empty(RUST_LOG) {
        Some(value) => EnvFilter::try_new(&value)
            .map_err(|source| TelemetryError::InvalidFilter { value, source }),
        None => Ok(EnvFilter::new(DEFAULT_FILTER)),
    }
}

/// Installs the global subscriber. Returns `false` when one was already installed (then the
/// existing one is kept and nothing changes).
pub fn init(format: LogFormat, env: &Environment) -> Result<bool, TelemetryError> {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(env)?)
        .with_ansi(false)
        .with_writer(std::io::stdout);
    let installed = match format {
        LogFormat::Structured => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Plain => builder.compact().with_target(false).try_init(),
    };
    Ok(installed.is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_filters_are_typed_errors_naming_rust_log() {
        let env = Environment::from_pairs([(RUST_LOG, "sqlx=loud")]);
        let error = filter(&env).expect_err("`loud` is no level");
        assert!(error.to_string().contains("RUST_LOG"));
    }

    #[test]
    fn installing_twice_keeps_the_first_subscriber() {
        let env = Environment::from_pairs([(RUST_LOG, "warn")]);
        let first = init(LogFormat::Plain, &env).expect("valid filter");
        let second = init(LogFormat::Json, &env).expect("valid filter");
        assert!(!second, "a second install is refused, not a panic");
        // `first` is false only if another test of this binary installed one before.
        let _ = first;
    }
}
