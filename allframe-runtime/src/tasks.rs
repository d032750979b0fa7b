//! Shutdown-aware background tasks (outbox relays, consumers, schedulers, user loops).
//!
//! A task is spawned with [`TaskRegistry::spawn`] and receives a [`CancellationToken`] that is
//! cancelled once in-flight requests have drained. The launcher then waits for the tasks to
//! return; a task still running at the shutdown deadline is stopped at its next `.await` and
//! the process exits with code 1. This module knows nothing about HTTP or the database.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::BoxError;

/// The registry of a service's background tasks. Cheap to clone; reach it with `ctx.tasks()`.
#[derive(Debug, Clone, Default)]
pub struct TaskRegistry {
    tracker: TaskTracker,
    cancel: CancellationToken,
    hard_stop: CancellationToken,
}

/// How stopping the background tasks went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TasksStopped {
    /// Every task returned after cancellation.
    Cleanly,
    /// Some tasks were still running at the deadline and were stopped.
    Forced {
        /// How many.
        remaining: usize,
    },
}

impl TaskRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns a background task. `task` receives a token that is cancelled at shutdown: select
    /// on `token.cancelled()` and return promptly. An `Err` is logged with the task's name.
    ///
    /// ```no_run
    /// # fn demo(cx: &allframe_runtime::Ctx) {
    /// cx.tasks().spawn("ticker", |token| async move {
    ///     let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    ///     loop {
    ///         tokio::select! {
    ///             _ = token.cancelled() => return Ok(()),
    ///             _ = tick.tick() => tracing::info!("tick"),
    ///         }
    ///     }
    /// });
    /// # }
    /// ```
    pub fn spawn<F, Fut>(&self, name: &'static str, task: F) -> JoinHandle<()>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let work = task(self.cancel.child_token());
        let hard_stop = self.hard_stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                biased;
                () = hard_stop.cancelled() => {
                    tracing::error!(task = name, "background task stopped at the shutdown deadline");
                }
                result = work => match result {
                    Ok(()) => tracing::debug!(task = name, "background task finished"),
                    Err(error) => tracing::error!(task = name, error = %error, "background task failed"),
                },
            }
        })
    }

    /// A token cancelled when shutdown reaches the background tasks.
    pub fn cancellation(&self) -> CancellationToken {
        self.cancel.child_token()
    }

    /// Whether shutdown has reached the background tasks.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// How many tasks are running.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// Whether no task is running.
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Cancels every task and waits until `deadline` for them to return; stragglers are
    /// stopped at their next `.await`.
    pub(crate) async fn stop(&self, deadline: Instant) -> TasksStopped {
        self.cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout_at(deadline, self.tracker.wait())
            .await
            .is_ok()
        {
            return TasksStopped::Cleanly;
        }
        let remaining = self.tracker.len();
        self.hard_stop.cancel();
        // Stopped tasks return at their next poll; give them a moment to unwind.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.tracker.wait()).await;
        TasksStopped::Forced { remaining }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn cooperative_tasks_stop_cleanly() {
        let registry = TaskRegistry::new();
        let saw_cancel = Arc::new(AtomicBool::new(false));
        let flag = saw_cancel.clone();
        registry.spawn("loop", move |token| async move {
            token.cancelled().await;
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        assert_eq!(registry.len(), 1);
        let outcome = registry.stop(Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(outcome, TasksStopped::Cleanly);
        assert!(saw_cancel.load(Ordering::SeqCst));
        assert!(registry.is_empty());
    }

    #[tokio::test]
    async fn stubborn_tasks_are_stopped_at_the_deadline() {
        let registry = TaskRegistry::new();
        registry.spawn("stubborn", |_token| async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        });
        let outcome = registry
            .stop(Instant::now() + Duration::from_millis(50))
            .await;
        assert_eq!(outcome, TasksStopped::Forced { remaining: 1 });
        assert!(registry.is_empty());
    }
}
