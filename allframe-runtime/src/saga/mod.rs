//! Durable sagas (`type = "saga-orchestrator"`, `[services.saga]`): a sequence of steps, each
//! undone by its compensation, driven to the end whatever crashes on the way.
//!
//! - **State in the service's database.** A saga is a row of `allframe_sagas` (its input, its
//!   status, where it is) and its log is `allframe_saga_steps` (each step's and compensation's
//!   input, output, attempts and last error), written after every step, in the database the
//!   service already uses: SQLite by default, PostgreSQL with `DATABASE_URL`.
//! - **Exactly once where the database allows.** A step's [`SagaStep::uow`] is a transaction of
//!   that database; the saga's progress is written into the same transaction, so a step whose
//!   work is local commits with it or not at all. A step that calls out is at least once, with
//!   [`SagaStep::key`] — the saga id and the step's name, the same on every attempt and after
//!   a crash — as the idempotency key its participant dedups by.
//! - **Failures compensate.** A step that still fails after the service's retry policy
//!   compensates exactly the completed steps, in reverse order. Past `timeout_seconds` the saga
//!   compensates too; a step in flight then is awaited for a short grace, then treated as failed
//!   and compensated as well (its participant dedups by key, so undoing an unknown outcome is
//!   safe). A compensation that keeps failing leaves the saga `stuck`: logged, counted in
//!   `allframe_sagas_stuck`, listed by `GET /sagas?status=stuck` and retried by an operator
//!   (`POST /sagas/{id}/retry` on the admin API, `cargo allframe sagas retry`).
//! - **Crash-resume, several instances.** Each unfinished saga is driven by one instance at a
//!   time, which holds its lease; a lease not renewed expires and another instance (or the
//!   restarted one) takes the saga over. Every takeover increments the saga's *epoch*, and every
//!   state write is conditioned on the epoch its writer claimed: a former owner that was paused
//!   past its lease can never overwrite what the new owner wrote.
//!
//! - **Replies on the bus.** A step of `[services.saga.replies]` sends its participant a
//!   command and the saga waits, parked, for the event answering it (see [`Reply`]).
//!
//! The macro turns `[services.saga]` into a trait with one method per step and compensation
//! and implements [`Orchestrate`] from it; [`routes`] serves `POST /sagas` and `GET /sagas/…`.

mod driver;
mod host;
mod http;
mod metrics;
mod replies;
mod step;
mod store;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::consumer::ConsumedEvent;
use crate::resilience::RetryPolicy;
use crate::{BoxError, Service};
use futures_util::future::BoxFuture;

pub use host::{DEFAULT_LEASE, Sagas};
pub(crate) use host::{SagaComponent, SagaHost};
pub use http::routes;
pub use metrics::SagaMetrics;
pub(crate) use metrics::SagaMetricsSlot;
pub use replies::{REPLIES_TABLE, Reply};
pub use step::SagaStep;
pub use store::{SAGAS_TABLE, STEPS_TABLE, SagaRecord, StepRecord};

/// `[services.saga]` as the orchestrator applies it. Constant data the macro emits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SagaSettings {
    /// The saga's name (`name`), e.g. `"CreateOrderSaga"`.
    pub name: &'static str,
    /// Its steps in order, each with the compensation that undoes it (`steps`,
    /// `compensation`).
    pub steps: &'static [StepNames],
    /// Deadline of a whole saga (`timeout_seconds`); past it, the saga compensates.
    pub timeout_seconds: u64,
    /// How a failing step or compensation is retried (the service's retry policy).
    pub retry: RetryPolicy,
    /// The reply events the steps await (`[services.saga.replies]`), once per service
    /// publishing each: the topics the orchestrator consumes. Empty when no step awaits one.
    pub replies: &'static [ConsumedEvent],
}

/// A step and its compensation, as the file names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepNames {
    /// The step, e.g. `"ReservePayment"`.
    pub step: &'static str,
    /// The compensation undoing it, e.g. `"RefundPayment"`.
    pub compensation: &'static str,
    /// The events answering it, when its participant replies on the bus: the step sends its
    /// command and the saga waits for one of them.
    pub reply: Option<Reply>,
}

/// The input of a saga: what `POST /sagas` takes as its JSON body, stored with the saga and
/// given to every step.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is a saga's input, so it must serialize and deserialize",
    label = "not a saga input",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it (or use `serde_json::Value`)"
)]
pub trait Input: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Input for T {}

/// A service that orchestrates a saga: the macro implements it for a `saga-orchestrator`'s
/// struct, dispatching each step and compensation by position to the user's methods.
pub trait Orchestrate: Service {
    /// The saga's input.
    type Input: Input;

    /// Runs step `index` (0-based, the file's order).
    fn step<'a>(
        &'a self,
        index: usize,
        step: &'a mut SagaStep<Self::Input>,
    ) -> BoxFuture<'a, Result<(), BoxError>>;

    /// Runs the compensation of step `index`.
    fn compensate<'a>(
        &'a self,
        index: usize,
        step: &'a mut SagaStep<Self::Input>,
    ) -> BoxFuture<'a, Result<(), BoxError>>;
}

/// Where a saga is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SagaStatus {
    /// Its steps are running.
    Running,
    /// Every step completed.
    Completed,
    /// A step failed or the deadline passed: the completed steps are being undone.
    Compensating,
    /// Every completed step was undone.
    Compensated,
    /// A compensation failed past its retries: an operator must look, then retry it.
    Stuck,
}

impl SagaStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 5] = [
        Self::Running,
        Self::Completed,
        Self::Compensating,
        Self::Compensated,
        Self::Stuck,
    ];

    /// Its name in the store and the API: `running`, `completed`, …
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Compensating => "compensating",
            Self::Compensated => "compensated",
            Self::Stuck => "stuck",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }
}

impl fmt::Display for SagaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Saga failures an operator or a caller sees.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SagaError {
    /// The state store failed.
    #[error("saga store: {0}")]
    Store(#[from] sqlx::Error),
    /// The input could not be stored.
    #[error("the saga input cannot be serialized: {0}")]
    Input(#[source] serde_json::Error),
    /// No saga has this id.
    #[error("no saga has the id `{0}`")]
    NotFound(String),
    /// Only a stuck saga can be retried.
    #[error("saga `{id}` is {status}, not stuck: only a stuck saga can be retried")]
    NotStuck {
        /// The saga.
        id: String,
        /// Its status.
        status: SagaStatus,
    },
    /// The service was not started as a saga orchestrator.
    #[error("this service runs no saga orchestrator")]
    NotRunning,
}
