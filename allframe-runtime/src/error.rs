//! Errors: [`ApiError`] for handlers, [`RuntimeError`] for start-up.
//!
//! Every error a service answers over HTTP (a handler's [`ApiError`], an extractor's rejection,
//! the idempotency layer's answers, an unknown path, a wrong method, a panic) has one body
//! shape: RFC 9457 problem details, `Content-Type: application/problem+json`:
//!
//! ```json
//! {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no user 7"}
//! ```
//!
//! `type` is always `about:blank` (the status says what kind of problem it is), `title` is the
//! status's reason phrase and `detail` the message. Database and internal failures are logged
//! with their details and answered with a generic detail, so nothing internal leaks to clients.
//! `RuntimeError` names the variable or step that failed.

use std::borrow::Cow;
use std::net::SocketAddr;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::BoxError;
use crate::database::DbError;
use crate::deferred::DeferredError;
use crate::extract::Rejected;
use crate::telemetry::TelemetryError;

/// The media type of every error body (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem details object: the body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// A URI naming the problem type; always `about:blank` (the status is the type).
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase, e.g. `Not Found`.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, safe to show to the client.
    pub detail: String,
}

impl Problem {
    /// The problem of `status`, with `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // Serialising four strings and a number cannot fail.
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

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
    rejected: bool,
}

impl ApiError {
    /// An error with any status and message.
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            message: message.into(),
            rejected: false,
        }
    }

    /// Marks the error as a refusal before the handler did anything ([`Rejected`]), as the
    /// runtime's extractors do: the idempotency layer then releases the request's key instead
    /// of storing this answer, so the client can retry with a corrected request.
    pub fn rejected(mut self) -> Self {
        self.rejected = true;
        self
    }

    /// Whether the error is marked as a refusal before the handler did anything.
    pub fn is_rejected(&self) -> bool {
        self.rejected
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
    /// A problem details response (see the module docs), marked [`Rejected`] when the error is.
    fn into_response(self) -> Response {
        let mut response = Problem::new(self.status, self.message).into_response();
        if self.rejected {
            response.extensions_mut().insert(Rejected);
        }
        response
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
    /// A component of the service could not start (see [`crate::component`]): messaging
    /// (the bus, the outbox tables), idempotency (`REDIS_URL` missing, the table), …
    #[error("{name} could not start: {source}")]
    Component {
        /// The component's name, e.g. `"messaging"`.
        name: &'static str,
        /// Its error (downcast it to the component's typed error, e.g.
        /// [`crate::messaging::MessagingError`]).
        #[source]
        source: BoxError,
    },
}

impl From<allframe_env::Invalid> for RuntimeError {
    fn from(invalid: allframe_env::Invalid) -> Self {
        RuntimeError::InvalidEnv {
            var: invalid.var,
            value: invalid.value,
            reason: invalid.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn body(error: ApiError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 1 << 16).await.expect("body");
        let json = serde_json::from_slice(&bytes).expect("json body");
        (status, json)
    }

    #[tokio::test]
    async fn api_errors_are_json_with_their_status() {
        let (status, json) = body(ApiError::bad_request("name is required")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            json,
            serde_json::json!({
                "type": "about:blank",
                "title": "Bad Request",
                "status": 400,
                "detail": "name is required",
            })
        );
    }

    #[test]
    fn only_rejected_errors_carry_the_marker() {
        let handled = ApiError::conflict("taken").into_response();
        assert!(handled.extensions().get::<Rejected>().is_none());
        let refused = ApiError::unprocessable("bad").rejected();
        assert!(refused.is_rejected());
        assert!(
            refused
                .into_response()
                .extensions()
                .get::<Rejected>()
                .is_some()
        );
    }

    #[tokio::test]
    async fn row_not_found_is_404_and_other_sqlx_errors_do_not_leak() {
        let (status, _) = body(sqlx::Error::RowNotFound.into()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let leaked = sqlx::Error::Protocol("secret detail: password=hunter2".into());
        let (status, json) = body(leaked.into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(json["detail"], "internal server error");
        assert!(!json.to_string().contains("hunter2"), "{json}");
    }
}
