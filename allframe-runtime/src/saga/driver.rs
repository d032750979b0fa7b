//! Drives one saga to its end: runs its steps in order, compensates the completed ones in
//! reverse after a failure or the deadline, and writes its progress after every step under the
//! fence its claim gave (see [`super::store`]).

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::step::{SagaStep, StepSetup};
use super::store::{self, Fence, Invocation, Phase, SagaRecord, WriteError};
use super::{Orchestrate, SagaMetrics, SagaSettings, SagaStatus};
use crate::BoxError;
use crate::context::Ctx;
use crate::database::Database;
use crate::messaging::{Messaging, MessagingError, UnitOfWork};

/// A point where the crash tests stop the orchestrator (feature `failpoints`: the `fail`
/// crate); nothing in other builds.
macro_rules! crash_point {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name);
    };
}

/// How long a step still in flight at the saga's deadline is awaited before it counts as
/// failed.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// How long a driver waits before reading the store again after it failed.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// What drives sagas in one instance: the store, the settings, this instance's owner id and
/// lease.
#[derive(Clone)]
pub(crate) struct Engine {
    pub(crate) ctx: Ctx,
    pub(crate) publisher: Option<Messaging>,
    pub(crate) settings: SagaSettings,
    pub(crate) owner: Arc<str>,
    pub(crate) lease: Duration,
    pub(crate) grace: Duration,
    pub(crate) metrics: Option<SagaMetrics>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("saga", &self.settings.name)
            .field("owner", &self.owner)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// How driving a saga ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It reached this status (completed, compensated or stuck).
    Finished(SagaStatus),
    /// Another instance took it over.
    TakenOver,
    /// The service is shutting down: the saga stays where it is, for the next owner.
    Stopped,
    /// No saga has the id.
    Gone,
}

/// How one invocation went.
enum Outcome {
    /// It returned `Ok`; its transaction and recorded output.
    Done(Option<Box<UnitOfWork>>, Option<String>),
    /// It returned an error or panicked.
    Failed(String),
    /// It was still running past the deadline and the grace.
    InFlight,
    /// The lease could not be kept: another instance owns the saga.
    TakenOver,
}

/// How awaiting an invocation ended.
enum Guarded {
    /// It returned (or panicked).
    Returned(Result<Result<(), BoxError>, Box<dyn std::any::Any + Send>>),
    /// It was still running past the deadline and the grace.
    InFlight,
    /// The lease could not be kept.
    TakenOver,
}

/// What one pass of the loop decided.
enum Next {
    Continue,
    End(Ended),
}

impl Engine {
    fn db(&self) -> &Database {
        self.ctx.db()
    }

    fn lease_until(&self) -> i64 {
        store::now().saturating_add(self.lease.as_millis() as i64)
    }

    /// Drives the saga `fence` names until it ends, this instance loses it, or `shutdown`.
    /// Store failures are waited out (the lease may lapse meanwhile; the fence then stops this
    /// driver at its next write).
    pub(crate) async fn drive<S: Orchestrate>(
        &self,
        service: &S,
        fence: Fence,
        shutdown: &CancellationToken,
    ) -> Ended {
        loop {
            if shutdown.is_cancelled() {
                return Ended::Stopped;
            }
            match self.pass(service, &fence).await {
                Ok(Next::Continue) => {}
                Ok(Next::End(ended)) => return ended,
                Err(WriteError::Fenced(epoch)) => {
                    tracing::warn!(saga_id = %fence.id, epoch,
                        "saga taken over by another instance; this one stops driving it");
                    return Ended::TakenOver;
                }
                Err(error @ (WriteError::Store(_) | WriteError::Commit(_))) => {
                    tracing::warn!(saga_id = %fence.id, error = %error,
                        "saga store failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(STORE_RETRY) => {}
                        () = shutdown.cancelled() => return Ended::Stopped,
                    }
                }
            }
        }
    }

    /// Reads the saga and does its next piece of work.
    async fn pass<S: Orchestrate>(&self, service: &S, fence: &Fence) -> Result<Next, WriteError> {
        let mut conn = self.db().pool().acquire().await?;
        let Some(saga) = store::load(&mut conn, &fence.id).await? else {
            return Ok(Next::End(Ended::Gone));
        };
        drop(conn);
        if saga.epoch != fence.epoch {
            return Err(WriteError::Fenced(fence.epoch));
        }
        let steps = self.settings.steps.len() as i64;
        match saga.status {
            SagaStatus::Running if saga.next_position >= steps => {
                self.finish(fence, SagaStatus::Completed, steps).await
            }
            SagaStatus::Running if store::now() >= saga.deadline => {
                let failure = format!(
                    "the saga timed out after {} s",
                    self.settings.timeout_seconds
                );
                self.timed_out(fence, &saga, &failure).await?;
                Ok(Next::Continue)
            }
            SagaStatus::Running => {
                self.forward(service, fence, &saga).await?;
                Ok(Next::Continue)
            }
            SagaStatus::Compensating if saga.next_position < 0 => {
                self.finish(fence, SagaStatus::Compensated, -1).await
            }
            SagaStatus::Compensating => self.backward(service, fence, &saga).await,
            status => Ok(Next::End(Ended::Finished(status))),
        }
    }

    /// Writes a final status.
    async fn finish(
        &self,
        fence: &Fence,
        status: SagaStatus,
        position: i64,
    ) -> Result<Next, WriteError> {
        let mut tx = self.db().begin_write().await?;
        store::set_state(&mut tx, fence, status, position, None).await?;
        tx.commit().await?;
        tracing::info!(saga_id = %fence.id, saga = self.settings.name, %status, "saga finished");
        if let Some(metrics) = &self.metrics {
            metrics.finished(self.settings.name, status);
        }
        Ok(Next::End(Ended::Finished(status)))
    }

    /// Starts compensating from `position` (the last step to undo) for `failure`.
    async fn compensate_from(
        &self,
        fence: &Fence,
        position: i64,
        failure: &str,
    ) -> Result<(), WriteError> {
        let mut tx = self.db().begin_write().await?;
        store::set_state(
            &mut tx,
            fence,
            SagaStatus::Compensating,
            position,
            Some(failure),
        )
        .await?;
        tx.commit().await?;
        tracing::warn!(saga_id = %fence.id, saga = self.settings.name, failure,
            "saga compensating");
        Ok(())
    }

    /// The deadline passed between steps: undo what completed, and the next step too if an
    /// earlier owner started it (its outcome is unknown).
    async fn timed_out(
        &self,
        fence: &Fence,
        saga: &SagaRecord,
        failure: &str,
    ) -> Result<(), WriteError> {
        let index = saga.next_position as usize;
        let started = store::attempts(self.db(), &fence.id, Phase::Step, index).await? > 0;
        let last = if started {
            saga.next_position
        } else {
            saga.next_position - 1
        };
        self.compensate_from(fence, last, failure).await
    }

    /// Runs the next step once and records how it went.
    async fn forward<S: Orchestrate>(
        &self,
        service: &S,
        fence: &Fence,
        saga: &SagaRecord,
    ) -> Result<(), WriteError> {
        let index = saga.next_position as usize;
        let name = self.settings.steps[index].step;
        let invocation = Invocation {
            phase: Phase::Step,
            index,
            name,
        };
        let spent = store::attempts(self.db(), &fence.id, Phase::Step, index).await?;
        let budget = i64::from(self.settings.retry.max_attempts.max(1));
        if spent >= budget {
            // Earlier attempts ended without a word (the process died in each): the outcome of
            // the last one is unknown, so it is undone too.
            let failure = format!("step `{name}` did not finish in {spent} attempts");
            return self
                .compensate_from(fence, saga.next_position, &failure)
                .await;
        }
        let attempt = spent + 1;
        let input = saga.input.to_string();
        store::started(self.db(), fence, &invocation, &input, attempt).await?;
        crash_point!("saga-step-started");
        let deadline = deadline_instant(saga.deadline);
        let outcome = match self.step_context(saga, name, attempt).await? {
            Ok(step) => {
                self.invoke(fence, service, &invocation, step, Some(deadline))
                    .await
            }
            Err(error) => Outcome::Failed(error),
        };
        match outcome {
            Outcome::Done(uow, output) => {
                crash_point!("saga-step-applied");
                let committed = self
                    .commit(
                        fence,
                        &invocation,
                        uow,
                        output,
                        SagaStatus::Running,
                        saga.next_position + 1,
                    )
                    .await;
                if committed.is_ok() {
                    crash_point!("saga-step-committed");
                }
                match committed {
                    Err(WriteError::Commit(error)) => {
                        let error = format!("committing the step failed: {error}");
                        self.failed_attempt(fence, &invocation, saga, attempt, &error, deadline)
                            .await
                    }
                    other => other,
                }
            }
            Outcome::Failed(error) => {
                self.failed_attempt(fence, &invocation, saga, attempt, &error, deadline)
                    .await
            }
            Outcome::InFlight => {
                let failure = format!(
                    "the saga timed out after {} s with step `{name}` still running",
                    self.settings.timeout_seconds
                );
                self.log_failure(fence, &invocation, &failure).await?;
                self.compensate_from(fence, saga.next_position, &failure)
                    .await
            }
            Outcome::TakenOver => Err(WriteError::Fenced(fence.epoch)),
        }
    }

    /// A step attempt failed: wait and let the next pass retry it, or, past the budget,
    /// compensate the steps before it.
    async fn failed_attempt(
        &self,
        fence: &Fence,
        invocation: &Invocation<'_>,
        saga: &SagaRecord,
        attempt: i64,
        error: &str,
        deadline: Instant,
    ) -> Result<(), WriteError> {
        self.log_failure(fence, invocation, error).await?;
        let budget = i64::from(self.settings.retry.max_attempts.max(1));
        tracing::warn!(saga_id = %fence.id, step = invocation.name, attempt, error,
            "saga step failed");
        if attempt >= budget {
            let failure = format!(
                "step `{}` failed after {attempt} attempts: {error}",
                invocation.name
            );
            return self
                .compensate_from(fence, saga.next_position - 1, &failure)
                .await;
        }
        // Past the deadline the next pass compensates; no need to wait for it.
        let wait = self.delay(attempt);
        tokio::time::sleep_until((Instant::now() + wait).min(deadline)).await;
        Ok(())
    }

    /// Runs the compensation at the saga's position once and records how it went.
    async fn backward<S: Orchestrate>(
        &self,
        service: &S,
        fence: &Fence,
        saga: &SagaRecord,
    ) -> Result<Next, WriteError> {
        let index = saga.next_position as usize;
        let name = self.settings.steps[index].compensation;
        let invocation = Invocation {
            phase: Phase::Compensation,
            index,
            name,
        };
        let spent = store::attempts(self.db(), &fence.id, Phase::Compensation, index).await?;
        // Each operator retry gives the compensation a fresh budget.
        let budget = i64::from(self.settings.retry.max_attempts.max(1)) * (saga.retries + 1);
        if spent >= budget {
            return self.stuck(fence, &invocation, spent).await;
        }
        let attempt = spent + 1;
        let input = saga.input.to_string();
        store::started(self.db(), fence, &invocation, &input, attempt).await?;
        crash_point!("saga-compensation-started");
        let outcome = match self.step_context(saga, name, attempt).await? {
            Ok(step) => self.invoke(fence, service, &invocation, step, None).await,
            Err(error) => Outcome::Failed(error),
        };
        let error = match outcome {
            Outcome::Done(uow, output) => {
                crash_point!("saga-compensation-applied");
                match self
                    .commit(
                        fence,
                        &invocation,
                        uow,
                        output,
                        SagaStatus::Compensating,
                        saga.next_position - 1,
                    )
                    .await
                {
                    Ok(()) => {
                        crash_point!("saga-compensation-committed");
                        return Ok(Next::Continue);
                    }
                    Err(WriteError::Commit(error)) => {
                        format!("committing the compensation failed: {error}")
                    }
                    Err(fenced) => return Err(fenced),
                }
            }
            Outcome::Failed(error) => error,
            // Compensations run without a deadline: never in flight past one.
            Outcome::InFlight => "the compensation did not finish".to_owned(),
            Outcome::TakenOver => return Err(WriteError::Fenced(fence.epoch)),
        };
        self.log_failure(fence, &invocation, &error).await?;
        tracing::warn!(saga_id = %fence.id, compensation = name, attempt, error,
            "saga compensation failed");
        if attempt >= budget {
            return self.stuck(fence, &invocation, attempt).await;
        }
        tokio::time::sleep(self.delay(attempt)).await;
        Ok(Next::Continue)
    }

    /// A compensation failed past its budget: the saga is stuck until an operator retries it.
    async fn stuck(
        &self,
        fence: &Fence,
        invocation: &Invocation<'_>,
        attempts: i64,
    ) -> Result<Next, WriteError> {
        let mut tx = self.db().begin_write().await?;
        store::set_state(
            &mut tx,
            fence,
            SagaStatus::Stuck,
            invocation.index as i64,
            None,
        )
        .await?;
        tx.commit().await?;
        tracing::error!(saga_id = %fence.id, saga = self.settings.name,
            compensation = invocation.name, attempts,
            "saga stuck: a compensation keeps failing; fix its cause, then retry it \
             (`cargo allframe sagas retry`, or POST /sagas/{{id}}/retry on the admin API)");
        if let Some(metrics) = &self.metrics {
            metrics.finished(self.settings.name, SagaStatus::Stuck);
            metrics.stuck_changed(1);
        }
        Ok(Next::End(Ended::Finished(SagaStatus::Stuck)))
    }

    /// Records a failed attempt's error (fenced).
    async fn log_failure(
        &self,
        fence: &Fence,
        invocation: &Invocation<'_>,
        error: &str,
    ) -> Result<(), WriteError> {
        let mut tx = self.db().begin_write().await?;
        store::check_fence(&mut tx, fence).await?;
        store::finished(&mut tx, fence, invocation, "failed", None, Some(error)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Commits an invocation's own transaction (or a new one) with the saga's next state and
    /// its log row: both or neither.
    async fn commit(
        &self,
        fence: &Fence,
        invocation: &Invocation<'_>,
        uow: Option<Box<UnitOfWork>>,
        output: Option<String>,
        status: SagaStatus,
        next: i64,
    ) -> Result<(), WriteError> {
        let output = output.as_deref();
        match uow {
            Some(mut uow) => {
                let written = async {
                    store::set_state(uow.conn(), fence, status, next, None).await?;
                    store::finished(uow.conn(), fence, invocation, "completed", output, None)
                        .await?;
                    Ok::<_, WriteError>(())
                }
                .await;
                match written {
                    Ok(()) => match uow.commit().await {
                        Ok(()) => Ok(()),
                        // The database committed (the saga moved on); only the step's events
                        // did not reach the bus, which these patterns report and do not retry.
                        Err(
                            error @ (MessagingError::DirectPublish { .. }
                            | MessagingError::TransactionalCommit { .. }),
                        ) => {
                            tracing::error!(saga_id = %fence.id, step = invocation.name,
                                error = %error, "a saga step's events were not published");
                            Ok(())
                        }
                        Err(error) => Err(WriteError::Commit(error.to_string())),
                    },
                    Err(error) => {
                        if let Err(rollback) = uow.rollback().await {
                            tracing::warn!(error = %rollback, "rolling back a saga step failed");
                        }
                        Err(error)
                    }
                }
            }
            None => {
                let mut tx = self.db().begin_write().await?;
                store::set_state(&mut tx, fence, status, next, None).await?;
                store::finished(&mut tx, fence, invocation, "completed", output, None).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// The context of one invocation; `Err` with the reason when the stored input no longer
    /// decodes (its type changed under a running saga): a failure of the invocation, not a
    /// panic.
    async fn step_context<I: super::Input>(
        &self,
        saga: &SagaRecord,
        name: &'static str,
        attempt: i64,
    ) -> Result<Result<SagaStep<I>, String>, WriteError> {
        let input: I = match serde_json::from_value(saga.input.clone()) {
            Ok(input) => input,
            Err(error) => {
                return Ok(Err(format!(
                    "the stored saga input does not decode: {error}"
                )));
            }
        };
        let outputs: BTreeMap<String, String> = store::outputs(self.db(), &saga.id)
            .await?
            .into_iter()
            .collect();
        Ok(Ok(SagaStep::new(StepSetup {
            saga_id: Arc::from(saga.id.as_str()),
            name,
            attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
            input: Arc::new(input),
            outputs: Arc::new(outputs),
            ctx: self.ctx.clone(),
            publisher: self.publisher.clone(),
        })))
    }

    /// Runs one invocation keeping the lease alive meanwhile, then
    /// says how it went; with a `deadline`, a call still running then gets [`Engine::grace`]
    /// more before it counts as in flight.
    async fn invoke<S: Orchestrate>(
        &self,
        fence: &Fence,
        service: &S,
        invocation: &Invocation<'_>,
        mut step: SagaStep<S::Input>,
        deadline: Option<Instant>,
    ) -> Outcome {
        let run = match invocation.phase {
            Phase::Step => service.step(invocation.index, &mut step),
            Phase::Compensation => service.compensate(invocation.index, &mut step),
        };
        let result = self.guard(fence, deadline, run).await;
        match result {
            Guarded::InFlight => Outcome::InFlight,
            Guarded::TakenOver => Outcome::TakenOver,
            Guarded::Returned(Ok(Ok(()))) => {
                let (uow, output) = step.finish();
                Outcome::Done(uow.map(Box::new), output)
            }
            Guarded::Returned(Ok(Err(error))) => Outcome::Failed(error.to_string()),
            Guarded::Returned(Err(panic)) => {
                Outcome::Failed(format!("panicked: {}", panic_text(panic.as_ref())))
            }
        }
    }

    /// Awaits `run` with the lease renewed every third of it, until `deadline` and its grace.
    async fn guard(
        &self,
        fence: &Fence,
        deadline: Option<Instant>,
        run: BoxFuture<'_, Result<(), BoxError>>,
    ) -> Guarded {
        let run = AssertUnwindSafe(run).catch_unwind();
        tokio::pin!(run);
        let mut renew = tokio::time::interval(self.lease / 3);
        renew.tick().await;
        let mut cutoff = deadline;
        loop {
            let sleep = async {
                match cutoff {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = &mut run => return Guarded::Returned(result),
                _ = renew.tick() => {
                    match store::renew_one(self.db(), fence, self.lease_until()).await {
                        Ok(true) => {}
                        Ok(false) => return Guarded::TakenOver,
                        Err(error) => tracing::warn!(saga_id = %fence.id, error = %error,
                            "renewing the saga's lease failed"),
                    }
                }
                () = sleep => match (cutoff, deadline) {
                    (Some(at), Some(first)) if at == first => cutoff = Some(at + self.grace),
                    _ => return Guarded::InFlight,
                },
            }
        }
    }

    /// The wait after failed attempt number `attempt` (the retry policy's schedule; its last
    /// delay again past its end).
    fn delay(&self, attempt: i64) -> Duration {
        let policy = self.settings.retry;
        let index = usize::try_from(attempt - 1).unwrap_or(0);
        policy
            .delays()
            .enumerate()
            .take_while(|(at, _)| *at <= index)
            .last()
            .map(|(_, delay)| delay)
            .unwrap_or(Duration::from_millis(
                policy.initial_interval_ms.min(policy.max_interval_ms),
            ))
    }
}

/// The `tokio` instant of a deadline in Unix milliseconds.
fn deadline_instant(deadline_ms: i64) -> Instant {
    let left = deadline_ms.saturating_sub(store::now()).max(0);
    Instant::now() + Duration::from_millis(left as u64)
}

/// A panic's message.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}
