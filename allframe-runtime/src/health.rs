//! The health endpoints every service serves: `/health/live` and `/health/ready`.
//!
//! Liveness answers 200 while the process serves HTTP at all. Readiness answers 200 when the
//! database answers a ping, takes writes, and shutdown has not begun, else 503 naming the
//! failing checks. "Takes writes": fewer than [`WRITE_FAILURE_THRESHOLD`] units of work in a
//! row failed to open or commit their transaction, or, when that many did, a write probe
//! succeeds now (see [`crate::database::WriteHealth`]). The event bus is not checked for
//! publishing (the outbox lets writes succeed while it is down); a consumer adds `bus`,
//! failing while it is not a member of its consumer group. The answer also says which database the
//! service runs on (engine, whether it is the embedded default, what the file declares).
//! Failure details are logged; the response only says which check failed and how, never an
//! error text that could carry a host name or credentials.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::consumer::dispatch::Membership;
use crate::context::{App, Ctx};
use crate::database::{DbError, WRITE_FAILURE_THRESHOLD};

/// The liveness path.
pub const LIVE_PATH: &str = "/health/live";
/// The readiness path.
pub const READY_PATH: &str = "/health/ready";

/// One readiness check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `"ok"` or `"failing"`.
    pub status: &'static str,
    /// Why it fails, in a few safe words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
}

impl Check {
    const OK: Self = Self {
        status: "ok",
        detail: None,
    };

    fn failing(detail: &'static str) -> Self {
        Self {
            status: "failing",
            detail: Some(detail),
        }
    }

    /// Whether the check passed.
    pub fn is_ok(&self) -> bool {
        self.detail.is_none()
    }
}

/// The answer of `/health/ready`, also available in-process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// `"ready"` or `"unavailable"`.
    pub status: &'static str,
    /// The names of the failing checks (empty when ready).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<&'static str>,
    /// Every check by name: `"database"`, `"writes"`, `"shutdown"`.
    pub checks: BTreeMap<&'static str, Check>,
    /// The database the service runs on.
    pub database: DatabaseInUse,
}

/// Which database a service runs on, as readiness reports it (never its URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DatabaseInUse {
    /// `"sqlite"` or `"postgres"`.
    pub engine: &'static str,
    /// True for the embedded SQLite file used because `DATABASE_URL` is unset.
    pub embedded_default: bool,
    /// What architecture.toml declares for the service (`"postgres"`, `"sqlite"`, …).
    pub declared: &'static str,
}

impl Readiness {
    /// Whether every check passed.
    pub fn is_ready(&self) -> bool {
        self.failing.is_empty()
    }

    /// 200 when ready, 503 otherwise.
    pub fn http_status(&self) -> StatusCode {
        if self.is_ready() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

impl IntoResponse for Readiness {
    fn into_response(self) -> Response {
        (self.http_status(), Json(self)).into_response()
    }
}

/// Runs the readiness checks.
pub async fn readiness(ctx: &Ctx) -> Readiness {
    let shutdown = if ctx.is_shutting_down() {
        Check::failing("shutdown in progress")
    } else {
        Check::OK
    };
    let database = match ctx.db().ping().await {
        Ok(()) => Check::OK,
        Err(error) => {
            tracing::warn!(error = %error, "readiness: database check failed");
            Check::failing(match error {
                DbError::PingTimeout(_) => "database did not answer in time",
                _ => "database ping failed",
            })
        }
    };
    let writes = writes(ctx).await;
    let mut checks = BTreeMap::from([
        ("database", database),
        ("shutdown", shutdown),
        ("writes", writes),
    ]);
    if let Some(membership) = ctx.get::<Membership>() {
        let bus = if membership.is_joined() {
            Check::OK
        } else {
            Check::failing(
                "the consumer is not a member of its group (the event bus is unreachable)",
            )
        };
        checks.insert("bus", bus);
    }
    let failing: Vec<&'static str> = checks
        .iter()
        .filter(|(_, check)| !check.is_ok())
        .map(|(name, _)| *name)
        .collect();
    Readiness {
        status: if failing.is_empty() {
            "ready"
        } else {
            "unavailable"
        },
        failing,
        checks,
        database: DatabaseInUse {
            engine: ctx.db().backend().as_str(),
            embedded_default: ctx.db().is_embedded_default(),
            declared: ctx.settings().declared_database,
        },
    }
}

/// The `writes` check: ok until [`WRITE_FAILURE_THRESHOLD`] units of work in a row failed
/// (or were abandoned); then ok again as soon as a write probe succeeds (which resets the
/// record). Probes are shared: one at a time, each answer reused for a second.
async fn writes(ctx: &Ctx) -> Check {
    let writes = ctx.db().writes();
    match writes.check(|| ctx.db().probe_write()).await {
        Ok(()) => Check::OK,
        Err(error) => {
            if let Some(error) = error {
                tracing::warn!(
                    error = %error,
                    failures = writes.consecutive_failures(),
                    threshold = WRITE_FAILURE_THRESHOLD,
                    "readiness: database writes keep failing"
                );
            }
            Check::failing("database writes are failing")
        }
    }
}

/// The health routes, to be served before the user's routes.
pub(crate) fn routes<S: Send + Sync + 'static>() -> axum::Router<App<S>> {
    axum::Router::new()
        .route(LIVE_PATH, get(live))
        .route(READY_PATH, get(ready::<S>))
}

async fn live() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "alive" }))
}

async fn ready<S: Send + Sync + 'static>(State(app): State<App<S>>) -> Readiness {
    readiness(app.ctx()).await
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::database::{Database, DatabaseTarget};
    use crate::deferred::ResolvedValues;
    use crate::settings::{LogFormat, ServiceSettings};
    use crate::tasks::TaskRegistry;
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tokio_util::sync::CancellationToken;
    use tower::ServiceExt as _;

    static SETTINGS: ServiceSettings = ServiceSettings {
        architecture: "test",
        name: "health-test",
        archetype: "stateless",
        rest_port: 0,
        grpc_port: None,
        logging: LogFormat::Plain,
        declared_database: "sqlite",
        shutdown_timeout_secs: 1,
        deferred: &[],
    };

    async fn get(router: &axum::Router, path: &str) -> (StatusCode, serde_json::Value) {
        let request = Request::get(path).body(Body::empty()).expect("request");
        let response = router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 1 << 16).await.expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn readiness_flips_to_503_when_shutdown_begins_or_the_database_is_gone() {
        let target = DatabaseTarget::parse("sqlite::memory:").expect("target");
        let db = Database::connect(&target).await.expect("in-memory sqlite");
        let shutdown = CancellationToken::new();
        let ctx = Ctx::new(
            &SETTINGS,
            db.clone(),
            ResolvedValues::default(),
            TaskRegistry::new(),
            shutdown.clone(),
            crate::context::Limits::default(),
        );
        let router = routes::<()>().with_state(App::new((), ctx));

        let (status, body) = get(&router, READY_PATH).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ready");
        assert_eq!(body["checks"]["database"]["status"], "ok");

        shutdown.cancel();
        let (status, body) = get(&router, READY_PATH).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["failing"], serde_json::json!(["shutdown"]));
        assert_eq!(body["checks"]["database"]["status"], "ok");
        // Liveness is unaffected by readiness.
        let (status, _) = get(&router, LIVE_PATH).await;
        assert_eq!(status, StatusCode::OK);

        db.close().await;
        let (status, body) = get(&router, READY_PATH).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["failing"], serde_json::json!(["database", "shutdown"]));
        assert_eq!(body["checks"]["database"]["detail"], "database ping failed");
    }
}
