//! Logging and tracing set-up: one global `tracing` subscriber per process, in the file's
//! [`LogFormat`], and with `[observability] tracing = "opentelemetry"` (feature `otel`) an
//! OpenTelemetry layer exporting spans over OTLP (see [`TracingSettings`]).
//!
//! Filtered by `RUST_LOG` (default `info`), written to standard output without ANSI colours.
//! Installing twice is harmless (the first subscriber stays), so in-process tests may start
//! several services. This module does not decide *what* is logged.

#[cfg(feature = "otel")]
mod otel;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::env::Environment;
use crate::settings::LogFormat;

/// The variable holding the log filter.
pub const RUST_LOG: &str = allframe_env::RUST_LOG.name;
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
    /// The OTLP span exporter could not be built.
    #[cfg(feature = "otel")]
    #[error("cannot export traces to {endpoint} (OTEL_EXPORTER_OTLP_ENDPOINT): {source}")]
    Exporter {
        /// The collector endpoint.
        endpoint: String,
        /// The exporter's complaint.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// `[observability] tracing = "opentelemetry"`, baked in by `#[allframe::service]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TracingSettings {
    /// `[observability] sampling`.
    pub sampling: TraceSampling,
    /// Whether Zipkin B3 headers are read (and written) beside W3C trace context
    /// (`propagation` lists `"b3"`).
    pub b3: bool,
    /// Whether W3C `baggage` is propagated (`propagation` lists `"baggage"`).
    pub baggage: bool,
}

/// Which traces are kept (`[observability] sampling = { strategy, rate }`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TraceSampling {
    /// `always`: every trace.
    Always,
    /// `never`: none.
    Never,
    /// `probabilistic`: this fraction of traces, by trace id, whatever the caller decided.
    Ratio(f64),
    /// `parent-based`: the caller's decision when a request carries one, else this fraction.
    ParentBased(f64),
}

/// The OTLP collector endpoint for traces (`http://host:4317`, gRPC).
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = allframe_env::OTEL_EXPORTER_OTLP_ENDPOINT.name;
/// A traces-only endpoint, taking precedence over [`OTEL_EXPORTER_OTLP_ENDPOINT`].
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str =
    allframe_env::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.name;

/// The span export of a running service, flushed and stopped at shutdown.
#[derive(Debug)]
pub(crate) struct SpanExport {
    #[cfg(feature = "otel")]
    provider: opentelemetry_sdk::trace::SdkTracerProvider,
}

impl SpanExport {
    /// Exports what is buffered and stops the exporter (blocking work, off the async threads).
    pub(crate) async fn finish(self) {
        #[cfg(feature = "otel")]
        {
            let provider = self.provider;
            let stopped = tokio::task::spawn_blocking(move || {
                provider.shutdown_with_timeout(std::time::Duration::from_secs(5))
            })
            .await;
            if let Ok(Err(error)) = stopped {
                tracing::warn!(%error, "flushing the last spans failed");
            }
        }
    }
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
    install(format, env, None).map(|(installed, _)| installed)
}

/// Installs the global subscriber, with span export when `tracing` asks for it (and the
/// `otel` feature is on); returns whether it was installed and the export to finish at
/// shutdown.
pub(crate) fn install(
    format: LogFormat,
    env: &Environment,
    tracing: Option<(&TracingSettings, &'static str)>,
) -> Result<(bool, Option<SpanExport>), TelemetryError> {
    let filter = filter(env)?;
    let lines = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(std::io::stdout);
    let lines = match format {
        LogFormat::Structured => lines.boxed(),
        LogFormat::Json => lines
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Plain => lines.compact().with_target(false).boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(lines);
    match tracing {
        #[cfg(feature = "otel")]
        Some((settings, service)) => otel::install(registry, settings, service, env),
        #[cfg(not(feature = "otel"))]
        Some(_) => {
            let installed = registry.try_init().is_ok();
            tracing::warn!(
                "architecture.toml sets `[observability] tracing = \"opentelemetry\"`, but \
                 allframe-runtime is built without its `otel` feature: no spans are exported; \
                 enable it (`features = [\"otel\"]`; ignite does) or set `tracing = \"none\"`"
            );
            Ok((installed, None))
        }
        None => Ok((registry.try_init().is_ok(), None)),
    }
}

/// Makes `span` (a request's) a child of the trace the request's headers carry (W3C
/// `traceparent`, and B3 when configured), when spans are exported.
pub(crate) fn adopt_remote_parent(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    #[cfg(feature = "otel")]
    otel::adopt_remote_parent(span, headers);
    #[cfg(not(feature = "otel"))]
    let _ = (span, headers);
}

/// Makes `span` (the handling of a message) a child of the span that published it (the
/// envelope's W3C `traceparent` and `tracestate`), when spans are exported.
pub(crate) fn adopt_message_parent(
    span: &tracing::Span,
    traceparent: &str,
    tracestate: Option<&str>,
) {
    #[cfg(feature = "otel")]
    otel::adopt_message_parent(span, traceparent, tracestate);
    #[cfg(not(feature = "otel"))]
    let _ = (span, traceparent, tracestate);
}

/// The W3C `traceparent` and `tracestate` of the current span, when spans are exported and
/// the span is being traced (events written now carry it).
pub(crate) fn current_trace_context() -> Option<(String, Option<String>)> {
    #[cfg(feature = "otel")]
    return otel::current_trace_context();
    #[cfg(not(feature = "otel"))]
    None
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
