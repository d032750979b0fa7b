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

use super::replies;
use super::step::{SagaStep, StepSetup};
use super::store::{self, Fence, Invocation, Phase, SagaRecord, WriteError};
use super::{Orchestrate, SagaMetrics, SagaSettings, SagaStatus};
use crate::BoxError;
use crate::context::Ctx;
use crate::database::Database;
use crate::messaging::{Messaging, MessagingError, UnitOfWork};

/// How long a step still in flight at the saga's deadline is awaited before it counts as
/// failed.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// How long a step still running at shutdown is awaited before it is cut off (the next
/// owner runs it again under the same key): short, so the lease is given up before the
/// service's shutdown deadline.
const STOP_GRACE: Duration = Duration::from_secs(1);
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
    /// Fires at shutdown: drivers stop between steps (a step still running then gets the
    /// grace) and give their leases up.
    pub(crate) shutdown: CancellationToken,
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
    /// Its step awaits a reply: no one drives it until the reply or the deadline comes.
    Parked,
}

/// How one invocation went.
enum Outcome {
    /// It returned `Ok`; its transaction and recorded output.
    Done(Option<Box<UnitOfWork>>, Option<String>),
    /// It returned an error or panicked.
    Failed(String),
    /// It was still running past the deadline and the grace.
    InFlight,
    /// Shutdown cut it off: its outcome is in doubt, for the next owner.
    Stopped,
}

/// How awaiting an invocation ended.
enum Guarded {
    /// It returned (or panicked).
    Returned(Result<Result<(), BoxError>, Box<dyn std::any::Any + Send>>),
    /// It was still running past the deadline and the grace.
    InFlight,
    /// Shutdown cut it off after the grace.
    Stopped,
}

/// What one pass of the loop decided.
pub(super) enum Next {
    Continue,
    End(Ended),
}

impl Engine {
    fn db(&self) -> &Database {
        self.ctx.db()
    }

    /// The fence of a claim of saga `id` at `epoch`: every write through it extends the lease.
    pub(crate) fn fence(&self, id: String, epoch: i64) -> Fence {
        Fence::new(id, epoch, self.lease)
    }

    /// Drives the saga `fence` names until it ends, this instance loses it, or shutdown; the
    /// lease is renewed every third of it the whole time, beside the work (never blocking it).
    /// Store failures are waited out (the lease may lapse meanwhile; the fence then stops this
    /// driver at its next write). Stopped by shutdown, it gives its lease up.
    pub(crate) async fn drive<S: Orchestrate>(&self, service: &S, fence: Fence) -> Ended {
        let renewing = self.keep_lease(&fence);
        tokio::pin!(renewing);
        let ended = loop {
            if self.shutdown.is_cancelled() {
                break Ended::Stopped;
            }
            let passed = tokio::select! {
                passed = self.pass(service, &fence) => passed,
                () = &mut renewing => self.lease_lost(&fence).await,
            };
            match passed {
                Ok(Next::Continue) => {}
                Ok(Next::End(ended)) => break ended,
                Err(WriteError::Fenced(epoch)) => {
                    tracing::warn!(saga_id = %fence.id, epoch,
                        "saga taken over by another instance; this one stops driving it");
                    break Ended::TakenOver;
                }
                Err(error @ (WriteError::Store(_) | WriteError::Commit(_))) => {
                    tracing::warn!(saga_id = %fence.id, error = %error,
                        "saga store failed; retrying");
                    if !self.pause(STORE_RETRY).await {
                        break Ended::Stopped;
                    }
                }
            }
        };
        if ended == Ended::Stopped
            && let Err(error) = store::release_one(self.db(), &fence).await
        {
            tracing::warn!(saga_id = %fence.id, error = %error,
                "giving the saga's lease up failed; another instance takes it when it lapses");
        }
        ended
    }

    /// Why the lease of `fence` could not be renewed: this driver let the saga go itself (it
    /// parked it for a reply, or finished it, in the pass the renewal raced), or another
    /// instance took it over.
    async fn lease_lost(&self, fence: &Fence) -> Result<Next, WriteError> {
        let mut conn = self.db().pool().acquire().await?;
        let saga = store::load(&mut conn, &fence.id).await?;
        Ok(match saga {
            None => Next::End(Ended::Gone),
            Some(saga) if saga.epoch != fence.epoch => return Err(WriteError::Fenced(fence.epoch)),
            Some(saga) if saga.status == SagaStatus::Running => Next::End(Ended::Parked),
            Some(saga) => Next::End(Ended::Finished(saga.status)),
        })
    }

    /// Renews the lease of `fence` every third of it; returns once the saga is no longer this
    /// instance's to hold (taken over, parked or finished).
    async fn keep_lease(&self, fence: &Fence) {
        let mut every = tokio::time::interval(self.lease / 3);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            match store::renew_one(self.db(), fence).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => tracing::warn!(saga_id = %fence.id, error = %error,
                    "renewing the saga's lease failed"),
            }
        }
    }

    /// Sleeps `wait`, or less when shutdown starts; `false` then.
    async fn pause(&self, wait: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = self.shutdown.cancelled() => false,
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
                self.timed_out(fence, &saga, &failure).await
            }
            SagaStatus::Running => self.forward(service, fence, &saga).await,
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
    pub(super) async fn compensate_from(
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
    /// attempt of it never said how it ended (its outcome is unknown); one that failed cleanly
    /// did nothing to undo.
    async fn timed_out(
        &self,
        fence: &Fence,
        saga: &SagaRecord,
        failure: &str,
    ) -> Result<Next, WriteError> {
        let index = saga.next_position as usize;
        let progress = store::progress(self.db(), &fence.id, Phase::Step, index).await?;
        if progress.awaiting
            && let Some(names) = self.settings.steps.get(index)
            && let Some(reply) = replies::received(self.db(), &fence.id, index).await?
            && reply.received_at <= saga.deadline
        {
            // The reply came in time; only its handling is late.
            let invocation = Invocation {
                phase: Phase::Step,
                index,
                name: names.step,
            };
            return self.answered(fence, saga, &invocation, reply).await;
        }
        let last = if progress.in_doubt {
            saga.next_position
        } else {
            saga.next_position - 1
        };
        self.compensate_from(fence, last, failure).await?;
        Ok(Next::Continue)
    }

    /// Runs the next step once and records how it went (or, when it awaits its reply, looks
    /// for that).
    async fn forward<S: Orchestrate>(
        &self,
        service: &S,
        fence: &Fence,
        saga: &SagaRecord,
    ) -> Result<Next, WriteError> {
        let index = saga.next_position as usize;
        let name = self.settings.steps[index].step;
        let invocation = Invocation {
            phase: Phase::Step,
            index,
            name,
        };
        let progress = store::progress(self.db(), &fence.id, Phase::Step, index).await?;
        if progress.awaiting {
            return self.awaited(fence, saga, &invocation).await;
        }
        let spent = progress.attempts;
        let budget = i64::from(self.settings.retry.max_attempts.max(1));
        if spent >= budget {
            // The attempts are spent: the last one either failed (nothing to undo) or never
            // said how it ended (a crash, a takeover): then its outcome is unknown, and it is
            // undone too.
            let failure = format!("step `{name}` did not succeed in {spent} attempts");
            let last = if progress.in_doubt {
                saga.next_position
            } else {
                saga.next_position - 1
            };
            self.compensate_from(fence, last, &failure).await?;
            return Ok(Next::Continue);
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
                // A step answered on the bus stays where it is, awaiting its reply.
                let landing = if replies::awaits(&self.settings, &invocation) {
                    Landing::awaiting(saga.next_position)
                } else {
                    Landing::completed(SagaStatus::Running, saga.next_position + 1)
                };
                let committed = self.commit(fence, &invocation, uow, output, landing).await;
                if committed.is_ok() {
                    crash_point!("saga-step-committed");
                }
                match committed {
                    Err(WriteError::Commit(error)) => {
                        // The connection may have dropped after the database committed.
                        if self.landed(fence, &invocation, landing).await? {
                            return Ok(Next::Continue);
                        }
                        let error = format!("committing the step failed: {error}");
                        self.failed_attempt(fence, &invocation, saga, attempt, &error, deadline)
                            .await?;
                    }
                    other => other?,
                }
            }
            Outcome::Failed(error) => {
                self.failed_attempt(fence, &invocation, saga, attempt, &error, deadline)
                    .await?;
            }
            Outcome::InFlight => {
                let failure = format!(
                    "the saga timed out after {} s with step `{name}` still running",
                    self.settings.timeout_seconds
                );
                self.log_failure(fence, &invocation, &failure).await?;
                self.compensate_from(fence, saga.next_position, &failure)
                    .await?;
            }
            // The driver loop sees the shutdown and stops.
            Outcome::Stopped => {}
        }
        Ok(Next::Continue)
    }

    /// Whether the commit of `landing` happened under `fence` after all (its answer was lost):
    /// the saga stands at its position, and an awaiting step is logged so.
    async fn landed(
        &self,
        fence: &Fence,
        invocation: &Invocation<'_>,
        landing: Landing,
    ) -> Result<bool, WriteError> {
        let mut conn = self.db().pool().acquire().await?;
        let saga = store::load(&mut conn, &fence.id).await?;
        drop(conn);
        if !saga.is_some_and(|saga| saga.epoch == fence.epoch && saga.next_position == landing.next)
        {
            return Ok(false);
        }
        if landing.log != replies::AWAITING {
            return Ok(true);
        }
        let progress =
            store::progress(self.db(), &fence.id, invocation.phase, invocation.index).await?;
        Ok(progress.awaiting)
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
        let wait = self
            .delay(attempt)
            .min(deadline.saturating_duration_since(Instant::now()));
        self.pause(wait).await;
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
        let Some(names) = self.settings.steps.get(index) else {
            // Stored by a version whose file had more steps: nothing here can undo it.
            let why = format!(
                "the saga is at step {} but `{}` has {} steps now: it was started by a version with more; undo that step by hand, then retry it",
                index + 1,
                self.settings.name,
                self.settings.steps.len()
            );
            return self.stuck(fence, index, "(unknown)", 0, Some(&why)).await;
        };
        let name = names.compensation;
        let invocation = Invocation {
            phase: Phase::Compensation,
            index,
            name,
        };
        let spent = store::progress(self.db(), &fence.id, Phase::Compensation, index)
            .await?
            .attempts;
        // Each operator retry gives the compensation it was stuck on a fresh budget.
        let retried = store::retries_at(self.db(), &fence.id, index).await?;
        let budget = i64::from(self.settings.retry.max_attempts.max(1)) * (retried + 1);
        if spent >= budget {
            return self.stuck(fence, index, name, spent, None).await;
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
                let landing = Landing::completed(SagaStatus::Compensating, saga.next_position - 1);
                match self.commit(fence, &invocation, uow, output, landing).await {
                    Ok(()) => {
                        crash_point!("saga-compensation-committed");
                        return Ok(Next::Continue);
                    }
                    Err(WriteError::Commit(error)) => {
                        if self.landed(fence, &invocation, landing).await? {
                            return Ok(Next::Continue);
                        }
                        format!("committing the compensation failed: {error}")
                    }
                    Err(fenced) => return Err(fenced),
                }
            }
            Outcome::Failed(error) => error,
            // Compensations run without a deadline: never in flight past one.
            Outcome::InFlight => "the compensation did not finish".to_owned(),
            Outcome::Stopped => return Ok(Next::Continue),
        };
        self.log_failure(fence, &invocation, &error).await?;
        tracing::warn!(saga_id = %fence.id, compensation = name, attempt, error,
            "saga compensation failed");
        if attempt >= budget {
            return self.stuck(fence, index, name, attempt, None).await;
        }
        self.pause(self.delay(attempt)).await;
        Ok(Next::Continue)
    }

    /// A compensation failed past its budget: the saga is stuck until an operator retries it.
    async fn stuck(
        &self,
        fence: &Fence,
        index: usize,
        name: &str,
        attempts: i64,
        why: Option<&str>,
    ) -> Result<Next, WriteError> {
        let mut tx = self.db().begin_write().await?;
        store::set_state(&mut tx, fence, SagaStatus::Stuck, index as i64, why).await?;
        tx.commit().await?;
        tracing::error!(saga_id = %fence.id, saga = self.settings.name,
            compensation = name, attempts, why,
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
        landing: Landing,
    ) -> Result<(), WriteError> {
        let output = output.as_deref();
        let Landing { status, next, log } = landing;
        match uow {
            Some(mut uow) => {
                let written = async {
                    store::set_state(uow.conn(), fence, status, next, None).await?;
                    store::finished(uow.conn(), fence, invocation, log, output, None).await?;
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
                store::finished(&mut tx, fence, invocation, log, output, None).await?;
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
        let result = match call(service, invocation, &mut step) {
            Ok(run) => self.guard(fence, deadline, run).await,
            Err(panic) => Guarded::Returned(Err(panic)),
        };
        match result {
            Guarded::InFlight => Outcome::InFlight,
            Guarded::Stopped => Outcome::Stopped,
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

    /// Awaits `run` until `deadline` and its grace; at shutdown, for [`STOP_GRACE`] at most
    /// (then the invocation is left in doubt, for the next owner to run again under the same
    /// key).
    async fn guard(
        &self,
        fence: &Fence,
        deadline: Option<Instant>,
        run: BoxFuture<'_, Result<(), BoxError>>,
    ) -> Guarded {
        let run = AssertUnwindSafe(run).catch_unwind();
        tokio::pin!(run);
        let mut cutoff = deadline;
        let mut stopping = false;
        loop {
            let sleep = async {
                match cutoff {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = &mut run => return Guarded::Returned(result),
                () = self.shutdown.cancelled(), if !stopping => {
                    stopping = true;
                    let last = Instant::now() + STOP_GRACE.min(self.grace);
                    cutoff = Some(cutoff.map_or(last, |at| at.min(last)));
                }
                () = sleep => match (cutoff, deadline) {
                    _ if stopping => {
                        tracing::warn!(saga_id = %fence.id,
                            "a saga step still running at shutdown was cut off; the next owner runs it again");
                        return Guarded::Stopped;
                    }
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
        let taken = usize::try_from(attempt).unwrap_or(1).max(1);
        policy
            .delays()
            .take(taken)
            .last()
            .unwrap_or(Duration::from_millis(
                policy.initial_interval_ms.min(policy.max_interval_ms),
            ))
    }
}

/// Where a returned invocation leaves the saga: its status and position, and the invocation's
/// log status.
#[derive(Debug, Clone, Copy)]
struct Landing {
    status: SagaStatus,
    next: i64,
    log: &'static str,
}

impl Landing {
    /// The invocation completed; the saga moves to `next`.
    const fn completed(status: SagaStatus, next: i64) -> Self {
        Self {
            status,
            next,
            log: "completed",
        }
    }

    /// The step at `position` sent its command and awaits the reply there.
    const fn awaiting(position: i64) -> Self {
        Self {
            status: SagaStatus::Running,
            next: position,
            log: replies::AWAITING,
        }
    }
}

/// Calls the user's step or compensation: its future, or the panic it raised before returning
/// one (a hand-written `Orchestrate` may).
fn call<'a, S: Orchestrate>(
    service: &'a S,
    invocation: &Invocation<'_>,
    step: &'a mut SagaStep<S::Input>,
) -> std::thread::Result<BoxFuture<'a, Result<(), BoxError>>> {
    let (phase, index) = (invocation.phase, invocation.index);
    std::panic::catch_unwind(AssertUnwindSafe(move || {
        // Moved out of the capture (not reborrowed): the future keeps the borrow.
        let step = step;
        match phase {
            Phase::Step => service.step(index, step),
            Phase::Compensation => service.compensate(index, step),
        }
    }))
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
