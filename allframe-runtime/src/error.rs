//! Errors: [`ApiError`] for handlers, [`RuntimeError`] for start-up.
//!
//! `ApiError` turns into an HTTP response with a JSON body `{"error": "<message>"}`; database
//! and internal failures are logged with their details and answered with a generic message, so
//! nothing internal leaks to clients. `RuntimeError` names the variable or step that failed.

use std::borrow::Cow;
use std::net::SocketAddr;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::BoxError;
use crate::database::DbError;
use crate::deferred::DeferredError;
use crate::telemetry::TelemetryError;

/// An error a handler returns: a status and a message safe to show to the client.
///
/// ```
/// use allframe_runtime::error::ApiError;
/// fn check(name: &str) -> Result<(), ApiError> {
///     if name.is_empty() {
///         return Err(ApiError::bad_request("name must not be empty"));
///     }
///     Ok(())
/// }
/// assert_eq!(check("").unwrap_err().status().as_u16(), 400);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    status: StatusCode,
    message: Cow<'static, str>,
}

impl ApiError {
    /// An error with any status and message.
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 409 Conflict.
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 422 Unprocessable Entity.
    pub fn unprocessable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// 503 Service Unavailable.
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// 500 Internal Server Error: `error` is logged with its details, the client sees only
    /// "internal server error".
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %error, source = ?error.source(), "internal error in a handler");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message sent to the client.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        (self.status, Json(body)).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    /// `RowNotFound` is 404; anything else is a logged 500 whose details stay in the log.
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::RowNotFound => Self::not_found("not found"),
            other => Self::internal(&other),
        }
    }
}

impl From<DbError> for ApiError {
    /// Database failures are logged 500s (503 when the database does not answer in time).
    fn from(error: DbError) -> Self {
        match error {
            DbError::PingTimeout(_) => {
                tracing::warn!(error = %error, "database unavailable");
                Self::unavailable("database unavailable")
            }
            other => Self::internal(&other),
        }
    }
}

/// Why a service could not start (or its runtime could not be built).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// An environment variable holds a value of the wrong form.
    #[error("environment variable {var} has an invalid value `{value}`: {reason}")]
    InvalidEnv {
        /// The variable, e.g. `"PORT"`.
        var: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// gRPC routes are registered but no port is known.
    #[error(
        "service `{service}` registers gRPC routes but has no gRPC port: declare \"grpc\" in \
         its protocols in architecture.toml or set GRPC_PORT"
    )]
    MissingGrpcPort {
        /// The service name.
        service: &'static str,
    },
    /// Deferred `${VAR}` values could not be resolved.
    #[error(transparent)]
    Deferred(#[from] DeferredError),
    /// Logging could not be set up.
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The user's `Service::init` failed.
    #[error("service `{service}` failed to initialise: {source}")]
    Init {
        /// The service name.
        service: &'static str,
        /// The user's error.
        #[source]
        source: BoxError,
    },
    /// A listening socket could not be opened.
    #[error("cannot listen for {protocol} on {addr}: {source}")]
    Bind {
        /// `"rest"` or `"grpc"`.
        protocol: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The tokio runtime could not be built.
    #[error("cannot start the async runtime: {0}")]
    AsyncRuntime(#[source] std::io::Error),
    /// The idempotency layer could not be set up (`REDIS_URL` missing, table creation, …).
    #[error(transparent)]
    Idempotency(#[from] crate::idempotency::IdempotencyError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn body(error: ApiError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 1 << 16).await.expect("body");
        let json = serde_json::from_slice(&bytes).expect("json body");
        (status, json)
    }

    #[tokio::test]
    async fn api_errors_are_json_with_their_status() {
        let (status, json) = body(ApiError::bad_request("name is required")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(json, serde_json::json!({ "error": "name is required" }));
    }

    #[tokio::test]
    async fn row_not_found_is_404_and_other_sqlx_errors_do_not_leak() {
        let (status, _) = body(sqlx::Error::RowNotFound.into()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let leaked = sqlx::Error::Protocol("secret detail: password=hunter2".into());
        let (status, json) = body(leaked.into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            json,
            serde_json::json!({ "error": "internal server error" })
        );
    }
}
