//! The consumer's series on `/metrics`:
//!
//! - `allframe_consumer_messages_total{event, outcome}`: deliveries by what became of them,
//!   `handled | retried | dead_lettered | duplicate`;
//! - `allframe_consumer_handler_duration_seconds{event}`: one attempt (the inbox check, the
//!   handler and the commit);
//! - `allframe_consumer_commits_total`: transactions the consumer committed (a group of
//!   deliveries commits once: `messages_total ÷ commits_total` is the events per commit);
//! - `allframe_consumer_dead_letters`: the dead letters of the consumer's group in its table;
//! - `allframe_consumer_notifications_total{channel, outcome}`: sends of the channel outbox,
//!   `sent | retried | failed` (failed: parked for good);
//! - `allframe_consumer_notifications_parked`: notifications parked in the channel outbox;
//! - `allframe_consumer_lag`: the messages of its topics the group has not handled yet, as the
//!   bus reports them (absent on a bus that does not).
//!
//! `event` is one of the events the file lists, or `unknown` for a message of any other type
//! (so a stream of garbage cannot grow the label set). The series appear once a consumer runs:
//! the registry holds a `ConsumerMetricsSlot` that stays silent until then.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use super::Outcome;
use crate::channel::SendOutcome;

/// The label value of an event type the consumer does not handle.
pub const UNKNOWN_EVENT: &str = "unknown";

/// The consumer series of one service's registry, empty until a consumer [`Self::get`]s them.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConsumerMetricsSlot(Arc<OnceLock<ConsumerMetrics>>);

impl ConsumerMetricsSlot {
    /// The series, created (and from then on rendered) on first use.
    pub(crate) fn get(&self) -> ConsumerMetrics {
        self.0.get_or_init(ConsumerMetrics::default).clone()
    }
}

/// The consumer series; cheap to clone (the families share their series).
#[derive(Debug, Clone)]
pub struct ConsumerMetrics {
    messages: Family<MessageLabels, Counter>,
    durations: Family<EventLabels, Histogram>,
    commits: Counter,
    dead_letters: Gauge<i64, AtomicI64>,
    notifications: Family<NotificationLabels, Counter>,
    parked_notifications: Gauge<i64, AtomicI64>,
    lag: Gauge<i64, AtomicI64>,
    lag_known: Arc<AtomicBool>,
}

impl Default for ConsumerMetrics {
    fn default() -> Self {
        Self {
            messages: Family::default(),
            // 1 ms to about 16 s, doubling: handlers are I/O.
            durations: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 15))
            }),
            commits: Counter::default(),
            dead_letters: Gauge::default(),
            notifications: Family::default(),
            parked_notifications: Gauge::default(),
            lag: Gauge::default(),
            lag_known: Arc::default(),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    event: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    channel: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: &'static str,
}

impl ConsumerMetrics {
    /// Counts one delivery of `event` (a known event's name, or [`UNKNOWN_EVENT`]) and its
    /// attempt's duration.
    pub(crate) fn observe(&self, event: &'static str, outcome: &Outcome, took: Duration) {
        let outcome = match outcome {
            Outcome::Handled => "handled",
            Outcome::Duplicate => "duplicate",
            Outcome::Retry { .. } => "retried",
            Outcome::DeadLettered(_) => "dead_lettered",
        };
        self.messages
            .get_or_create(&MessageLabels { event, outcome })
            .inc();
        self.durations
            .get_or_create(&EventLabels { event })
            .observe(took.as_secs_f64());
    }

    /// How many deliveries of `event` ended in `outcome` (`handled`, `retried`,
    /// `dead_lettered`, `duplicate`) so far.
    pub fn messages(&self, event: &'static str, outcome: &'static str) -> u64 {
        self.messages
            .get(&MessageLabels { event, outcome })
            .map_or(0, |counter| counter.get())
    }

    /// Counts one committed transaction.
    pub(crate) fn observe_commit(&self) {
        self.commits.inc();
    }

    /// How many transactions the consumer committed so far.
    pub fn commits(&self) -> u64 {
        self.commits.get()
    }

    /// Counts one send of a notification of `channel`.
    pub(crate) fn observe_notification(&self, channel: &'static str, outcome: SendOutcome) {
        let outcome = outcome.label();
        self.notifications
            .get_or_create(&NotificationLabels { channel, outcome })
            .inc();
    }

    /// How many sends of `channel` ended in `outcome` (`sent`, `retried`, `failed`) so far.
    pub fn notifications(&self, channel: &'static str, outcome: &'static str) -> u64 {
        self.notifications
            .get(&NotificationLabels { channel, outcome })
            .map_or(0, |counter| counter.get())
    }

    /// The notifications parked in the channel outbox when last counted.
    pub fn parked_notifications(&self) -> i64 {
        self.parked_notifications.get()
    }

    /// Sets the parked notifications gauge to `count`.
    pub(crate) fn set_parked_notifications(&self, count: i64) {
        self.parked_notifications.set(count);
    }

    /// The dead letters in the table when last counted.
    pub fn dead_letters(&self) -> i64 {
        self.dead_letters.get()
    }

    /// Sets the dead letter gauge to `count`.
    pub(crate) fn set_dead_letters(&self, count: i64) {
        self.dead_letters.set(count);
    }

    /// The group's lag when last measured; `None` before the bus reported one.
    pub fn lag(&self) -> Option<i64> {
        self.lag_known
            .load(Ordering::Acquire)
            .then(|| self.lag.get())
    }

    /// Sets the lag gauge to `messages`.
    pub(crate) fn set_lag(&self, messages: u64) {
        self.lag.set(i64::try_from(messages).unwrap_or(i64::MAX));
        self.lag_known.store(true, Ordering::Release);
    }
}

impl Collector for ConsumerMetricsSlot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(metrics) = self.0.get() else {
            return Ok(());
        };
        metrics.messages.encode(encoder.encode_descriptor(
            "allframe_consumer_messages",
            "Deliveries the consumer decided, by event and outcome",
            None,
            metrics.messages.metric_type(),
        )?)?;
        metrics.durations.encode(encoder.encode_descriptor(
            "allframe_consumer_handler_duration_seconds",
            "Time of one attempt at a delivery: inbox check, handler and commit",
            None,
            metrics.durations.metric_type(),
        )?)?;
        metrics.commits.encode(encoder.encode_descriptor(
            "allframe_consumer_commits",
            "Transactions the consumer committed (a group of deliveries commits once)",
            None,
            metrics.commits.metric_type(),
        )?)?;
        metrics.dead_letters.encode(encoder.encode_descriptor(
            "allframe_consumer_dead_letters",
            "Dead letters of the consumer's group waiting in its table",
            None,
            metrics.dead_letters.metric_type(),
        )?)?;
        metrics.notifications.encode(encoder.encode_descriptor(
            "allframe_consumer_notifications",
            "Sends of the notifications handlers enqueued, by channel and outcome",
            None,
            metrics.notifications.metric_type(),
        )?)?;
        metrics
            .parked_notifications
            .encode(encoder.encode_descriptor(
                "allframe_consumer_notifications_parked",
                "Notifications parked in the channel outbox after a permanent failure",
                None,
                metrics.parked_notifications.metric_type(),
            )?)?;
        if metrics.lag().is_some() {
            metrics.lag.encode(encoder.encode_descriptor(
                "allframe_consumer_lag",
                "Messages of the consumer's topics its group has not handled yet, as the bus reports them",
                None,
                metrics.lag.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
