//! The circuit breaker: closed → open after `failure_threshold` consecutive failures → half-open
//! once `timeout_ms` has passed → closed after `success_threshold` successful probes (a failed
//! probe opens it again).
//!
//! In half-open state no more probes are in flight than successes are still needed, however
//! many callers race for them — probes of an earlier half-open period that are still running
//! included; a probe whose call is cancelled (its [`Permit`] dropped without an outcome) gives
//! its slot back. Outcomes of calls admitted before the last state change
//! (a slow call that started while the circuit was closed and ends after it opened) are
//! ignored: they say nothing about the state they would change.
//!
//! Written by hand: the maintained tower breakers either count failures in time windows
//! (not `failure_threshold` consecutive ones) or do not bound half-open probes under
//! concurrency (docs/resilience.md).

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;

/// When a circuit opens and closes again (`[resilience] circuit_breaker`, overridden by
/// `[services.circuit_breaker]` and `[services.integrations] circuit_breaker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the circuit (at least 1).
    pub failure_threshold: u32,
    /// Successful probes in half-open state that close it again; also how many probes may be
    /// in flight at once (at least 1).
    pub success_threshold: u32,
    /// How long the circuit stays open before the first probe, in ms.
    pub timeout_ms: u64,
}

impl BreakerPolicy {
    /// The built-in policy: open after 5 failures, probe after 30 s, close after 3 successes.
    pub const DEFAULT: Self = Self {
        failure_threshold: 5,
        success_threshold: 3,
        timeout_ms: 30_000,
    };
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The state of a circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass; consecutive failures are counted.
    Closed,
    /// Calls are refused until the timeout has passed.
    Open,
    /// A bounded number of probe calls pass; their outcomes close or reopen the circuit.
    HalfOpen,
}

impl BreakerState {
    /// The value of `allframe_breaker_state{target}`: 0 closed, 1 open, 2 half-open.
    pub const fn gauge_value(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }

    /// `closed`, `open` or `half_open`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A call refused because the circuit is open (or half-open with every probe slot taken).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the circuit to {target} is open; calls are tried again in {} ms", retry_after.as_millis())]
pub struct BreakerOpen {
    /// What the breaker protects.
    pub target: Arc<str>,
    /// How long until the breaker may let a call through: the rest of the open period, or
    /// while every probe slot is taken, a short wait for their outcome (at most 1 s).
    pub retry_after: Duration,
}

/// A call through [`CircuitBreaker::call`] that failed.
#[derive(Debug, thiserror::Error)]
pub enum BreakerError<E> {
    /// The breaker refused the call; it was not made.
    #[error(transparent)]
    Open(BreakerOpen),
    /// The call was made and failed.
    #[error(transparent)]
    Call(E),
}

/// A circuit breaker guarding one target. Cheap to clone: clones share the state.
#[derive(Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("target", &self.inner.target)
            .field("state", &self.state())
            .finish()
    }
}

struct Inner {
    target: Arc<str>,
    policy: BreakerPolicy,
    machine: Mutex<Machine>,
    metrics: Option<BreakerMetrics>,
}

/// A breaker known to the metrics registry, without keeping it alive.
#[derive(Debug, Clone)]
pub(crate) struct WeakBreaker(std::sync::Weak<Inner>);

impl WeakBreaker {
    /// Sets the breaker's gauge to its state now; `false` once the breaker is gone.
    pub(crate) fn refresh(&self) -> bool {
        let Some(inner) = self.0.upgrade() else {
            return false;
        };
        let breaker = CircuitBreaker { inner };
        if let Some(metrics) = &breaker.inner.metrics {
            metrics.state.set(breaker.state().gauge_value());
        }
        true
    }
}

/// The gauge and rejection counter of one breaker (see [`crate::resilience::ResilienceMetrics`]).
#[derive(Debug, Clone)]
pub(crate) struct BreakerMetrics {
    pub(crate) state: Gauge,
    pub(crate) rejected: Counter,
}

#[derive(Debug)]
struct Machine {
    phase: Phase,
    /// Bumped at every state change, so late outcomes of earlier calls are told apart.
    generation: u64,
    /// Probe calls still running, of this half-open period or an earlier one: a probe that
    /// outlives its period (another probe failed meanwhile) still holds its slot, so the target
    /// never sees more than `success_threshold` probes at once.
    probes: u32,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { successes: u32 },
}

impl Phase {
    fn state(self) -> BreakerState {
        match self {
            Self::Closed { .. } => BreakerState::Closed,
            Self::Open { .. } => BreakerState::Open,
            Self::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker for `target` (a provider, a host; it names the breaker in logs and
    /// metrics). Thresholds of 0 count as 1.
    pub fn new(target: impl Into<Arc<str>>, policy: BreakerPolicy) -> Self {
        Self::build(target.into(), policy, None)
    }

    pub(crate) fn build(
        target: Arc<str>,
        policy: BreakerPolicy,
        metrics: Option<BreakerMetrics>,
    ) -> Self {
        let policy = BreakerPolicy {
            failure_threshold: policy.failure_threshold.max(1),
            success_threshold: policy.success_threshold.max(1),
            timeout_ms: policy.timeout_ms,
        };
        if let Some(metrics) = &metrics {
            metrics.state.set(BreakerState::Closed.gauge_value());
        }
        Self {
            inner: Arc::new(Inner {
                target,
                policy,
                machine: Mutex::new(Machine {
                    phase: Phase::Closed { failures: 0 },
                    generation: 0,
                    probes: 0,
                }),
                metrics,
            }),
        }
    }

    /// What the breaker protects.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// The policy in effect (thresholds of 0 raised to 1).
    pub fn policy(&self) -> BreakerPolicy {
        self.inner.policy
    }

    /// A handle that does not keep the breaker alive (for the metrics registry).
    pub(crate) fn downgrade(&self) -> WeakBreaker {
        WeakBreaker(Arc::downgrade(&self.inner))
    }

    /// The state now. An open circuit whose timeout has passed reads as half-open: the next
    /// call is a probe.
    pub fn state(&self) -> BreakerState {
        match self.lock().phase {
            Phase::Open { until } if Instant::now() >= until => BreakerState::HalfOpen,
            phase => phase.state(),
        }
    }

    /// Admits one call, or refuses it. Report the call's outcome on the permit; dropping it
    /// unreported counts as a cancelled call (a probe's slot is given back).
    pub fn try_acquire(&self) -> Result<Permit, BreakerOpen> {
        let mut machine = self.lock();
        let now = Instant::now();
        let successes = match machine.phase {
            Phase::Closed { .. } => None,
            Phase::Open { until } if now < until => {
                drop(machine);
                return Err(self.refuse(until - now));
            }
            Phase::Open { .. } => {
                self.enter(&mut machine, Phase::HalfOpen { successes: 0 });
                Some(0)
            }
            Phase::HalfOpen { successes } => Some(successes),
        };
        let probe = successes.is_some();
        if let Some(successes) = successes {
            if machine.probes + successes >= self.inner.policy.success_threshold {
                drop(machine);
                // The probes in flight decide; their outcome is due within a call's time.
                let hint = self.inner.policy.timeout_ms.clamp(1, 1_000);
                return Err(self.refuse(Duration::from_millis(hint)));
            }
            machine.probes += 1;
        }
        Ok(Permit {
            breaker: self.clone(),
            generation: machine.generation,
            probe,
            reported: false,
        })
    }

    /// Runs `call` if the circuit lets it through; an `Err` counts as a failure.
    pub async fn call<T, E, F>(&self, call: F) -> Result<T, BreakerError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        let permit = self.try_acquire().map_err(BreakerError::Open)?;
        match call.await {
            Ok(value) => {
                permit.success();
                Ok(value)
            }
            Err(error) => {
                permit.failure();
                Err(BreakerError::Call(error))
            }
        }
    }

    /// Runs `call` if the circuit lets it through; `is_failure` decides whether its output
    /// counts as a failure (an HTTP 503 is an `Ok` that should). A failing output comes back
    /// as [`BreakerError::Call`].
    pub async fn call_classified<T, F>(
        &self,
        call: F,
        is_failure: impl FnOnce(&T) -> bool,
    ) -> Result<T, BreakerError<T>>
    where
        F: Future<Output = T>,
    {
        let permit = self.try_acquire().map_err(BreakerError::Open)?;
        let output = call.await;
        if is_failure(&output) {
            permit.failure();
            Err(BreakerError::Call(output))
        } else {
            permit.success();
            Ok(output)
        }
    }

    fn lock(&self) -> MutexGuard<'_, Machine> {
        // The machine is left consistent at every unlock; a panic elsewhere cannot break it.
        self.inner
            .machine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn refuse(&self, retry_after: Duration) -> BreakerOpen {
        if let Some(metrics) = &self.inner.metrics {
            metrics.rejected.inc();
        }
        BreakerOpen {
            target: self.inner.target.clone(),
            retry_after,
        }
    }

    /// Moves to `phase` (a new state): bumps the generation, sets the gauge and logs.
    fn enter(&self, machine: &mut Machine, phase: Phase) {
        let from = machine.phase.state();
        machine.phase = phase;
        machine.generation += 1;
        let to = phase.state();
        if let Some(metrics) = &self.inner.metrics {
            metrics.state.set(to.gauge_value());
        }
        match to {
            BreakerState::Open => tracing::warn!(
                target_name = %self.inner.target, from = from.as_str(), to = to.as_str(),
                retry_in_ms = self.inner.policy.timeout_ms, "circuit breaker opened"
            ),
            _ => tracing::info!(
                target_name = %self.inner.target, from = from.as_str(), to = to.as_str(),
                "circuit breaker state changed"
            ),
        }
    }

    fn open_until(&self) -> Phase {
        Phase::Open {
            until: Instant::now() + Duration::from_millis(self.inner.policy.timeout_ms),
        }
    }

    fn report(&self, generation: u64, probe: bool, outcome: Outcome) {
        let mut machine = self.lock();
        if probe {
            machine.probes = machine.probes.saturating_sub(1);
        }
        if machine.generation != generation {
            return;
        }
        let policy = self.inner.policy;
        match (machine.phase, outcome) {
            (Phase::Closed { failures }, Outcome::Failure) => {
                let failures = failures + 1;
                if failures >= policy.failure_threshold {
                    let open = self.open_until();
                    self.enter(&mut machine, open);
                } else {
                    machine.phase = Phase::Closed { failures };
                }
            }
            (Phase::Closed { failures }, Outcome::Success) if failures > 0 => {
                machine.phase = Phase::Closed { failures: 0 };
            }
            (Phase::HalfOpen { successes }, outcome) if probe => match outcome {
                Outcome::Success if successes + 1 >= policy.success_threshold => {
                    self.enter(&mut machine, Phase::Closed { failures: 0 });
                }
                Outcome::Success => {
                    machine.phase = Phase::HalfOpen {
                        successes: successes + 1,
                    };
                }
                Outcome::Failure => {
                    let open = self.open_until();
                    self.enter(&mut machine, open);
                }
                // The slot was given back above.
                Outcome::Cancelled => {}
            },
            _ => {}
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
    Cancelled,
}

/// One admitted call. Report its outcome with [`Permit::success`] or [`Permit::failure`];
/// dropped unreported, the call counts as cancelled and changes nothing but a probe's slot.
#[must_use = "report the call's outcome on the permit"]
#[derive(Debug)]
pub struct Permit {
    breaker: CircuitBreaker,
    generation: u64,
    probe: bool,
    reported: bool,
}

impl Permit {
    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The call succeeded.
    pub fn success(mut self) {
        self.reported = true;
        self.breaker
            .report(self.generation, self.probe, Outcome::Success);
    }

    /// The call failed.
    pub fn failure(mut self) {
        self.reported = true;
        self.breaker
            .report(self.generation, self.probe, Outcome::Failure);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker
                .report(self.generation, self.probe, Outcome::Cancelled);
        }
    }
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;
