//! The sender: a task of the consumer's service that delivers the channel outbox.
//!
//! It claims due rows (a lease, so that instances of one service sharing a database do not
//! send the same row at once), sends up to [`IN_FLIGHT`] at a time, and settles each row:
//! delivered rows are deleted, transient failures come back after the consumer's retry
//! backoff (capped, without end: a mail server down for an hour loses nothing), permanent
//! failures are parked with their error. A handler that enqueued wakes it at once; otherwise it
//! looks every [`POLL`] (for retries and rows other instances enqueued).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Transports;
use super::outbox::{self, Pending};
use crate::consumer::{ConsumerMetrics, RetryPolicy};
use crate::database::Database;

/// Rows claimed at once.
const BATCH: u32 = 32;
/// Sends in flight at once.
const IN_FLIGHT: usize = 8;
/// How long a claim keeps other senders off a row (longer than a send's timeout).
const LEASE: Duration = Duration::from_secs(60);
/// How often the outbox is looked at without a wake-up.
const POLL: Duration = Duration::from_secs(1);

/// What became of one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendOutcome {
    /// Delivered; the row is gone.
    Sent,
    /// Failed for now; due again later.
    Retried,
    /// Failed for good; parked in the table.
    Parked,
}

impl SendOutcome {
    /// The `outcome` label of `allframe_consumer_notifications_total`.
    pub(crate) const fn label(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Retried => "retried",
            Self::Parked => "failed",
        }
    }
}

/// Delivers the channel outbox of one service's database.
pub struct ChannelSender {
    db: Database,
    transports: Transports,
    policy: RetryPolicy,
    metrics: Option<ConsumerMetrics>,
    wake: Arc<Notify>,
}

impl ChannelSender {
    /// A sender of `db`'s outbox through `transports`, retrying with `policy`'s backoff.
    pub fn new(db: Database, transports: Transports, policy: RetryPolicy) -> Self {
        Self {
            db,
            transports,
            policy,
            metrics: None,
            wake: Arc::default(),
        }
    }

    /// Counts each send in `metrics`.
    #[must_use]
    pub fn observed_by(mut self, metrics: ConsumerMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// What a consumer notifies after committing messages, to have them sent at once.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Sends what is due now, once; how many rows it claimed.
    pub async fn send_due(&self) -> Result<usize, sqlx::Error> {
        let due = outbox::claim_due(&self.db, BATCH, LEASE).await?;
        let claimed = due.len();
        let settled: Vec<Result<(), sqlx::Error>> = futures_util::stream::iter(due)
            .map(|pending| self.send_one(pending))
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        settled.into_iter().collect::<Result<(), _>>()?;
        Ok(claimed)
    }

    /// Sends and settles one row.
    async fn send_one(&self, pending: Pending) -> Result<(), sqlx::Error> {
        let channel = pending.message.channel().as_str();
        let outcome = match self.transports.send(&pending.key, &pending.message).await {
            Ok(()) => {
                outbox::delivered(&self.db, pending.id).await?;
                SendOutcome::Sent
            }
            Err(error) if error.permanent => {
                tracing::error!(key = %pending.key, channel, error = %error,
                    "notification rejected for good; parked in the channel outbox");
                outbox::park(&self.db, pending.id, &error.message).await?;
                SendOutcome::Parked
            }
            Err(error) => {
                let failures = pending.attempts.saturating_add(1);
                let after = self.policy.delay(failures);
                tracing::warn!(key = %pending.key, channel, attempts = failures,
                    retry_in_ms = after.as_millis() as u64, error = %error, "notification not sent; retrying");
                outbox::retry_later(&self.db, pending.id, &error.message, after).await?;
                SendOutcome::Retried
            }
        };
        if let Some(metrics) = &self.metrics {
            metrics.observe_notification(channel, outcome);
        }
        if outcome == SendOutcome::Parked {
            self.count_parked().await?;
        }
        Ok(())
    }

    /// Sets the parked notifications gauge from the table (without metrics, nothing).
    async fn count_parked(&self) -> Result<(), sqlx::Error> {
        if let Some(metrics) = &self.metrics {
            metrics.set_parked_notifications(outbox::parked(&self.db).await?);
        }
        Ok(())
    }

    /// Sends until `shutdown` (see the module docs). A database failure is logged and tried
    /// again at the next poll.
    pub async fn run(self, shutdown: CancellationToken) {
        if let Err(error) = self.count_parked().await {
            tracing::warn!(error = %error, "channel sender: counting parked notifications failed");
        }
        loop {
            let full = match self.send_due().await {
                Ok(claimed) => claimed == BATCH as usize,
                Err(error) => {
                    tracing::warn!(error = %error, "channel sender: reading the outbox failed");
                    false
                }
            };
            if full {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}
