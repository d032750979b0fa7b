//! The errors of a bus: what failed ([`BusError`]) and how much of a batch got out first
//! ([`PublishError`]).

use std::path::PathBuf;
use std::time::Duration;

use super::ACCEPTED_BUS_SCHEMES;
use crate::BoxError;

/// Failures of a bus: configuration, connection, storage, protocol.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// `EVENT_BUS_URL` could not be understood (the URL itself is never included: it may hold
    /// a password).
    #[error("EVENT_BUS_URL is not a valid bus URL ({reason}); accepted: {ACCEPTED_BUS_SCHEMES}")]
    InvalidUrl {
        /// What was wrong.
        reason: String,
    },
    /// `EVENT_BUS_URL` names a scheme no adapter handles.
    #[error(
        "EVENT_BUS_URL has the unsupported scheme `{scheme}`; accepted: {ACCEPTED_BUS_SCHEMES}"
    )]
    UnsupportedScheme {
        /// The scheme found.
        scheme: String,
    },
    /// `EVENT_BUS_URL` names a bus whose adapter is not compiled in.
    #[error(
        "EVENT_BUS_URL names {bus}, but allframe-runtime was built without its `{feature}` \
         feature; enable it: `allframe = {{ package = \"allframe-runtime\", features = [\"{feature}\"] }}`"
    )]
    FeatureDisabled {
        /// The bus's name.
        bus: &'static str,
        /// The cargo feature that brings its adapter.
        feature: &'static str,
    },
    /// The directory of the local bus file could not be created.
    #[error("cannot create the local bus directory `{}` (set ALLFRAME_DATA_DIR or EVENT_BUS_URL): {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The local bus's SQLite file failed.
    #[error("local event bus storage failed: {0}")]
    Local(#[source] sqlx::Error),
    /// This subscriber no longer owns the topic for its group (it was idle past its lease);
    /// unacknowledged deliveries will be delivered again, possibly to another member.
    #[error(
        "consumer group `{group}` lost its claim on topic `{topic}`; unacknowledged messages will be redelivered"
    )]
    LeaseLost {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
    },
    /// An ack or nack named a delivery this subscription did not hand out.
    #[error("the delivery from topic `{topic}` does not belong to this subscription")]
    ForeignDelivery {
        /// The topic of the delivery.
        topic: String,
    },
    /// A subscription needs at least one topic.
    #[error("a subscription needs at least one topic")]
    NoTopics,
    /// A broker object exists with settings this version cannot use (declared by an earlier
    /// version, or by hand), and the broker cannot change them in place.
    #[error("{bus}: {object} exists with settings this version cannot use: {detail}; {fix}")]
    Conflict {
        /// The bus.
        bus: &'static str,
        /// The object, e.g. ``queue `shop.billing` ``.
        object: String,
        /// What differs.
        detail: String,
        /// How to fix it.
        fix: String,
    },
    /// An operation did not finish in time.
    #[error("the event bus did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// Pattern `transactional` was asked of a bus without transactions.
    #[error(
        "pattern `transactional` needs an event bus with transactions, but EVENT_BUS_URL names \
         {bus}, which has none; use a `kafka://` EVENT_BUS_URL (or the local bus), or pattern \
         `outbox` in `[services.messaging]`"
    )]
    TransactionsUnsupported {
        /// The bus's name.
        bus: &'static str,
    },
    /// An adapter's own failure.
    #[error("{bus} event bus: {source}")]
    Adapter {
        /// The adapter's name.
        bus: &'static str,
        /// The failure.
        #[source]
        source: BoxError,
    },
}

/// A batch publish that failed: the first `delivered` messages are on the bus (in order), the
/// rest are not.
#[derive(Debug, thiserror::Error)]
#[error("publishing stopped after {delivered} message(s) of the batch: {source}")]
pub struct PublishError {
    /// How many leading messages of the batch the bus confirmed.
    pub delivered: usize,
    /// Why it stopped.
    #[source]
    pub source: BusError,
}

impl PublishError {
    /// Nothing of the batch was published.
    pub fn nothing(source: BusError) -> Self {
        Self {
            delivered: 0,
            source,
        }
    }
}
