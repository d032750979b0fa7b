//! The bulkhead (`[resilience] bulkhead`): at most `max_concurrent` calls run at once, at most
//! `max_queue` more wait for a slot (first come, first served), and any beyond that are
//! refused at once instead of piling up.
//!
//! Written on tokio's fair semaphore: tower's `ConcurrencyLimit` queues without bound and its
//! `LoadShed` refuses without a queue; the bulkhead needs both at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many calls run and wait. Constant data: the macro emits it from the service's bulkhead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkheadPolicy {
    /// Calls running at once (at least 1).
    pub max_concurrent: u32,
    /// Calls waiting for a slot; beyond them calls are refused.
    pub max_queue: u32,
}

/// A call refused because every slot is taken and the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the bulkhead is full: {running} calls running and {waiting} waiting")]
pub struct BulkheadFull {
    /// The calls allowed to run at once.
    pub running: u32,
    /// The calls allowed to wait.
    pub waiting: u32,
}

/// A bulkhead. Cheap to clone: clones share the slots.
#[derive(Debug, Clone)]
pub struct Bulkhead {
    slots: Arc<Semaphore>,
    waiting: Arc<AtomicU32>,
    policy: BulkheadPolicy,
}

/// A running call's slot, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Bulkhead {
    /// A bulkhead of `policy` (`max_concurrent` 0 counts as 1).
    pub fn new(policy: BulkheadPolicy) -> Self {
        let policy = BulkheadPolicy {
            max_concurrent: policy.max_concurrent.max(1),
            max_queue: policy.max_queue,
        };
        Self {
            slots: Arc::new(Semaphore::new(policy.max_concurrent as usize)),
            waiting: Arc::new(AtomicU32::new(0)),
            policy,
        }
    }

    /// A slot now, after waiting in the queue, or a refusal when the queue is full. A caller
    /// that stops waiting (its future dropped) leaves the queue.
    pub async fn acquire(&self) -> Result<Slot, BulkheadFull> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(Slot { _permit: permit });
        }
        let full = BulkheadFull {
            running: self.policy.max_concurrent,
            waiting: self.policy.max_queue,
        };
        let queued = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |waiting| {
                (waiting < self.policy.max_queue).then_some(waiting + 1)
            });
        if queued.is_err() {
            return Err(full);
        }
        let _in_queue = LeaveQueue(&self.waiting);
        let permit = self.slots.clone().acquire_owned().await.map_err(|_| full)?;
        Ok(Slot { _permit: permit })
    }

    /// Calls running now.
    pub fn running(&self) -> u32 {
        self.policy.max_concurrent - self.slots.available_permits() as u32
    }

    /// Calls waiting now.
    pub fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::Acquire)
    }
}

/// Leaves the queue when dropped: on getting a slot, or when the waiting caller gives up.
struct LeaveQueue<'a>(&'a AtomicU32);

impl Drop for LeaveQueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn runs_up_to_the_limit_queues_up_to_the_queue_and_refuses_beyond() {
        let bulkhead = Bulkhead::new(BulkheadPolicy {
            max_concurrent: 2,
            max_queue: 1,
        });
        let (a, b) = (bulkhead.acquire().await, bulkhead.acquire().await);
        let (a, _b) = (a.expect("slot 1"), b.expect("slot 2"));
        let queued = tokio::spawn({
            let bulkhead = bulkhead.clone();
            async move { bulkhead.acquire().await.map(|_| ()) }
        });
        while bulkhead.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        let refused = bulkhead.acquire().await.expect_err("queue full");
        assert_eq!((refused.running, refused.waiting), (2, 1));
        drop(a);
        queued.await.expect("task").expect("the queued call ran");
        assert_eq!((bulkhead.running(), bulkhead.waiting()), (1, 0));
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_leaves_the_queue() {
        let bulkhead = Bulkhead::new(BulkheadPolicy {
            max_concurrent: 1,
            max_queue: 1,
        });
        let _running = bulkhead.acquire().await.expect("slot");
        let gave_up = tokio::time::timeout(Duration::from_millis(20), bulkhead.acquire()).await;
        assert!(gave_up.is_err(), "it waited, then stopped waiting");
        assert_eq!(bulkhead.waiting(), 0);
        let waits = tokio::time::timeout(Duration::from_millis(20), bulkhead.acquire()).await;
        assert!(
            waits.is_err(),
            "the queue has room again: it waits instead of being refused"
        );
    }
}
