//! Graceful shutdown: the running service's handle and the ordered stop sequence.
//!
//! Order: readiness flips to 503 (and gRPC health to `NOT_SERVING`) at once; for the readiness
//! propagation delay (`ALLFRAME_SHUTDOWN_DELAY_SECS`, default 0) the servers keep accepting and
//! serving new connections, so that load balancers and Kubernetes endpoints that still route
//! here while they learn of the 503 are not refused; then the servers stop accepting and drain
//! in-flight requests until the drain deadline; connections still busy then are aborted;
//! background tasks are cancelled and awaited for the rest of the budget (at least one second);
//! the pool is closed. The exit code is 0 when nothing had to be aborted, 1 otherwise. This
//! module does not start anything.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::context::Ctx;
use crate::database::Database;
use crate::health::{self, Readiness};
use crate::server::{DrainReport, Server};
use crate::tasks::{TaskRegistry, TasksStopped};

/// The variable overriding the drain deadline.
pub const ALLFRAME_SHUTDOWN_TIMEOUT_SECS: &str = allframe_env::ALLFRAME_SHUTDOWN_TIMEOUT_SECS.name;

/// The variable setting the readiness propagation delay: seconds between the shutdown signal
/// and the listeners closing, during which readiness answers 503 and new connections are still
/// served. Default 0 (Ctrl-C stops at once); the generated Kubernetes manifests set 5.
pub const ALLFRAME_SHUTDOWN_DELAY_SECS: &str = allframe_env::ALLFRAME_SHUTDOWN_DELAY_SECS.name;

/// The least time background tasks get to stop after the drain.
const MIN_TASK_GRACE: Duration = Duration::from_secs(1);

/// How long closing the pool may take after the drain.
const POOL_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Triggers graceful shutdown of a running service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    token: CancellationToken,
}

impl ShutdownHandle {
    /// Begins graceful shutdown (idempotent).
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }
}

/// How a shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections with requests still in flight at the deadline, aborted.
    pub aborted_connections: usize,
    /// Background tasks still running at the deadline, stopped.
    pub forced_tasks: usize,
    /// Server or shutdown tasks that failed unexpectedly (panicked).
    pub failures: usize,
    /// Time from the trigger to the end of the sequence (the propagation delay included).
    pub elapsed: Duration,
}

impl ShutdownReport {
    /// Whether everything stopped in time on its own.
    pub fn is_clean(&self) -> bool {
        self.aborted_connections == 0 && self.forced_tasks == 0 && self.failures == 0
    }

    /// The process exit status: 0 when clean, 1 otherwise.
    pub fn exit_status(&self) -> u8 {
        u8::from(!self.is_clean())
    }

    /// The process exit code: success when clean, 1 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit_status())
    }
}

/// A service serving in this process: its addresses, context and shutdown controls.
#[derive(Debug)]
pub struct RunningService {
    pub(crate) rest_addr: SocketAddr,
    pub(crate) grpc_addr: Option<SocketAddr>,
    pub(crate) metrics_addr: Option<SocketAddr>,
    pub(crate) ctx: Ctx,
    pub(crate) shutdown: CancellationToken,
    pub(crate) done: JoinHandle<ShutdownReport>,
}

impl RunningService {
    /// The address the REST server is bound to (with the real port when 0 was asked for).
    pub fn rest_addr(&self) -> SocketAddr {
        self.rest_addr
    }

    /// The address of the metrics listener, when `/metrics` has a port of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The address the gRPC server is bound to, when gRPC routes were registered.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc_addr
    }

    /// The service's runtime context.
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// A handle that triggers graceful shutdown, e.g. from a signal listener.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            token: self.shutdown.clone(),
        }
    }

    /// Runs the readiness checks, exactly as `/health/ready` does.
    pub async fn readiness(&self) -> Readiness {
        health::readiness(&self.ctx).await
    }

    /// Waits until the service has stopped (after someone triggered shutdown).
    pub async fn wait(self) -> ShutdownReport {
        match self.done.await {
            Ok(report) => report,
            Err(error) => {
                tracing::error!(error = %error, "the shutdown sequence failed");
                ShutdownReport {
                    aborted_connections: 0,
                    forced_tasks: 0,
                    failures: 1,
                    elapsed: Duration::ZERO,
                }
            }
        }
    }

    /// Triggers graceful shutdown and waits for it to finish.
    pub async fn shutdown(self) -> ShutdownReport {
        self.shutdown.cancel();
        self.wait().await
    }
}

/// Everything the stop sequence needs.
pub(crate) struct Sequence {
    /// Cancelled by the trigger: readiness fails from then on.
    pub(crate) shutdown: CancellationToken,
    /// Cancelled after the propagation delay: the servers stop accepting and drain.
    pub(crate) drain: CancellationToken,
    /// Cancelled at the drain deadline: the servers abort what is still in flight.
    pub(crate) abort: CancellationToken,
    pub(crate) servers: Vec<Server>,
    pub(crate) tasks: TaskRegistry,
    pub(crate) db: Database,
    /// The readiness propagation delay.
    pub(crate) delay: Duration,
    /// The drain deadline, counted from the end of the delay.
    pub(crate) timeout: Duration,
    /// The hosts' hooks, run first (e.g. gRPC health turns `NOT_SERVING`).
    pub(crate) on_shutdown: Vec<crate::component::BoxFuture<'static, ()>>,
    /// Span export to flush last, so the shutdown's own spans go out too.
    pub(crate) span_export: Option<crate::telemetry::SpanExport>,
}

/// Waits for the trigger, then stops everything in order.
pub(crate) async fn run(sequence: Sequence) -> ShutdownReport {
    sequence.shutdown.cancelled().await;
    let started = Instant::now();
    for hook in sequence.on_shutdown {
        hook.await;
    }
    if !sequence.delay.is_zero() {
        tracing::info!(
            delay_secs = sequence.delay.as_secs_f64(),
            "shutdown started: readiness is now 503; still serving new connections while that propagates"
        );
        tokio::time::sleep(sequence.delay).await;
    }
    sequence.drain.cancel();
    let deadline = deadline_after(Instant::now(), sequence.timeout);
    tracing::info!(
        timeout_secs = sequence.timeout.as_secs_f64(),
        "readiness is 503; stopped accepting, draining in-flight requests"
    );

    let mut report = ShutdownReport {
        aborted_connections: 0,
        forced_tasks: 0,
        failures: 0,
        elapsed: Duration::ZERO,
    };
    let protocols: Vec<&'static str> = sequence.servers.iter().map(|s| s.protocol).collect();
    let drains = futures_util::future::join_all(sequence.servers.into_iter().map(|s| s.handle));
    tokio::pin!(drains);
    let results = tokio::select! {
        results = &mut drains => results,
        () = tokio::time::sleep_until(deadline) => {
            sequence.abort.cancel();
            drains.await
        }
    };
    for (protocol, result) in protocols.into_iter().zip(results) {
        match result {
            Ok(DrainReport { aborted }) => report.aborted_connections += aborted,
            Err(error) => {
                tracing::error!(protocol, error = %error, "server task failed");
                report.failures += 1;
            }
        }
    }

    // Background tasks (outbox relays, consumers) keep running while requests drain, then get
    // the rest of the budget, and at least MIN_TASK_GRACE even when the drain used it all up.
    let tasks_deadline = deadline.max(Instant::now() + MIN_TASK_GRACE);
    match sequence.tasks.stop(tasks_deadline).await {
        TasksStopped::Cleanly => {}
        TasksStopped::Forced { remaining } => {
            tracing::error!(
                tasks = remaining,
                "background tasks still running at the shutdown deadline were stopped"
            );
            report.forced_tasks = remaining;
        }
    }

    if tokio::time::timeout(POOL_CLOSE_TIMEOUT, sequence.db.close())
        .await
        .is_err()
    {
        tracing::warn!("the database pool did not close in time");
    }

    if let Some(export) = sequence.span_export {
        export.finish().await;
    }
    report.elapsed = started.elapsed();
    if report.is_clean() {
        tracing::info!(
            elapsed_ms = report.elapsed.as_millis() as u64,
            "shutdown complete"
        );
    } else {
        tracing::error!(
            elapsed_ms = report.elapsed.as_millis() as u64,
            aborted_connections = report.aborted_connections,
            forced_tasks = report.forced_tasks,
            failures = report.failures,
            "shutdown finished after aborting work; exit code 1"
        );
    }
    report
}

/// `start + timeout`, saturating far in the future instead of overflowing.
fn deadline_after(start: Instant, timeout: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);
    start
        .checked_add(timeout.min(FAR))
        .unwrap_or_else(|| start + Duration::from_secs(60))
}

/// Completes on SIGTERM or SIGINT (Ctrl-C elsewhere), naming the signal. Listeners are
/// installed when this is created, so a signal arriving during start-up is not lost.
pub(crate) struct Signals {
    #[cfg(unix)]
    listeners: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    /// Installs the listeners (inside a tokio runtime).
    pub(crate) fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listeners = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(term), Ok(int)) => Some((term, int)),
                (Err(error), _) | (_, Err(error)) => {
                    tracing::warn!(error = %error, "cannot listen for SIGTERM/SIGINT; falling back to Ctrl-C");
                    None
                }
            };
            Self { listeners }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Waits for the first signal.
    pub(crate) async fn recv(self) -> &'static str {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = self.listeners {
            return tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
        }
        match tokio::signal::ctrl_c().await {
            Ok(()) => "ctrl-c",
            Err(error) => {
                tracing::warn!(error = %error, "cannot listen for Ctrl-C; only an explicit trigger stops the service");
                std::future::pending::<&'static str>().await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_is_one_when_anything_was_aborted() {
        let clean = ShutdownReport {
            aborted_connections: 0,
            forced_tasks: 0,
            failures: 0,
            elapsed: Duration::ZERO,
        };
        assert_eq!(clean.exit_status(), 0);
        assert_eq!(
            ShutdownReport {
                aborted_connections: 2,
                ..clean
            }
            .exit_status(),
            1
        );
        assert_eq!(
            ShutdownReport {
                forced_tasks: 1,
                ..clean
            }
            .exit_status(),
            1
        );
    }

    #[test]
    fn huge_timeouts_do_not_overflow() {
        let now = Instant::now();
        assert!(deadline_after(now, Duration::from_secs(u64::MAX)) > now);
    }
}
