//! The Kafka adapter's transactional producers, for pattern `transactional`.
//!
//! A Kafka producer holds one transaction at a time, so a service instance keeps a small pool
//! of them ([`super::KafkaBusOptions::transactional_producers`]): that many units of work can
//! hold a Kafka transaction at once. Producer `i` has `transactional.id` = `<id>-<i>`, where
//! `<id>` is the one given to [`super::KafkaBus::with_transactions`].
//!
//! A producer that the cluster fenced, or whose transaction could be neither committed nor
//! aborted, is unusable: it is discarded, and the next transaction on its slot starts a new
//! producer with the same `transactional.id`. Its `init_transactions` bumps the producer
//! epoch, which fences the old instance and makes the coordinator abort whatever transaction it
//! left open. A commit that times out (a retriable error) is retried before giving up.
//!
//! Order: records are written in the order they are sent. Two units of work that the database
//! serialises (SQLite always does; on PostgreSQL, when they lock a common row such as their
//! aggregate's) send their events in that order, whichever producers carry them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer as _};
use tokio::sync::{Mutex, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use super::bus::{BusError, OutboundMessage};
use super::kafka::{join_error, kafka_error, send_all};

/// How many times a commit that failed with a retriable error (a timeout) is attempted in all.
const COMMIT_ATTEMPTS: u32 = 3;

/// The pool of transactional producers of one [`super::KafkaBus`].
pub(super) struct TransactionalProducers {
    slots: Vec<Arc<Mutex<Slot>>>,
    /// One permit per slot: a transaction holds a permit and a slot lock.
    permits: Arc<Semaphore>,
    /// `init_transactions` timeout.
    init_timeout: Duration,
    /// Commit and abort timeout.
    end_timeout: Duration,
}

/// One producer of the pool: its configuration (with its `transactional.id`) and, once started
/// and while usable, the producer.
struct Slot {
    config: ClientConfig,
    producer: Option<FutureProducer>,
}

impl Slot {
    /// The slot's producer, started (with `init_transactions`) if it has none.
    async fn producer(&mut self, init_timeout: Duration) -> Result<FutureProducer, BusError> {
        if let Some(producer) = &self.producer {
            return Ok(producer.clone());
        }
        let producer: FutureProducer = self.config.create().map_err(kafka_error)?;
        let init = producer.clone();
        tokio::task::spawn_blocking(move || init.init_transactions(init_timeout))
            .await
            .map_err(join_error)?
            .map_err(kafka_error)?;
        self.producer = Some(producer.clone());
        Ok(producer)
    }

    /// Forgets the producer: the next transaction on this slot starts a new one.
    fn discard(&mut self, why: &KafkaError) {
        let id = self.config.get("transactional.id").unwrap_or_default();
        tracing::warn!(
            transactional_id = id,
            error = %why,
            "discarding a Kafka transactional producer; the next transaction starts a new one"
        );
        self.producer = None;
    }
}

impl TransactionalProducers {
    /// A pool of `count` producers configured from `base` (which must not set
    /// `transactional.id`), the first one started now so that a cluster without transactions
    /// fails here.
    pub(super) async fn start(
        base: &ClientConfig,
        transactional_id: &str,
        count: usize,
        init_timeout: Duration,
        end_timeout: Duration,
    ) -> Result<Self, BusError> {
        let count = count.max(1);
        let slots: Vec<_> = (0..count)
            .map(|index| {
                let mut config = base.clone();
                config.set("transactional.id", format!("{transactional_id}-{index}"));
                Arc::new(Mutex::new(Slot {
                    config,
                    producer: None,
                }))
            })
            .collect();
        let _first = slots[0].lock().await.producer(init_timeout).await?;
        Ok(Self {
            slots,
            permits: Arc::new(Semaphore::new(count)),
            init_timeout,
            end_timeout,
        })
    }

    /// Opens a transaction on a free producer, waiting for one when all are in a transaction.
    pub(super) async fn begin(&self) -> Result<KafkaTransaction, BusError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|error| BusError::Adapter {
                bus: super::kafka::BUS,
                source: Box::new(error),
            })?;
        // A permit means a slot is free (each transaction holds one permit and one slot, and
        // releases the slot first); lock the first free one.
        let free = self
            .slots
            .iter()
            .find_map(|slot| Arc::clone(slot).try_lock_owned().ok());
        let mut slot = match free {
            Some(slot) => slot,
            None => Arc::clone(&self.slots[0]).lock_owned().await,
        };
        let producer = slot.producer(self.init_timeout).await?;
        let producer = match producer.begin_transaction() {
            Ok(()) => producer,
            Err(error) => {
                // A producer that cannot begin is fenced or broken; a new one starts clean.
                slot.discard(&error);
                let producer = slot.producer(self.init_timeout).await?;
                producer.begin_transaction().map_err(kafka_error)?;
                producer
            }
        };
        Ok(KafkaTransaction::new(
            producer,
            slot,
            permit,
            self.end_timeout,
        ))
    }
}

/// The slot and permit an open transaction holds; the slot is released before the permit.
struct Lease {
    slot: OwnedMutexGuard<Slot>,
    _permit: OwnedSemaphorePermit,
}

/// A transaction of a [`super::KafkaBus`]'s transactional producer, see
/// [`super::BusTransaction`]. Dropped without [`commit`](Self::commit) or
/// [`abort`](Self::abort), it is aborted in the background.
pub struct KafkaTransaction {
    producer: FutureProducer,
    lease: Option<Lease>,
    timeout: Duration,
}

impl fmt::Debug for KafkaTransaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaTransaction").finish_non_exhaustive()
    }
}

impl KafkaTransaction {
    fn new(
        producer: FutureProducer,
        slot: OwnedMutexGuard<Slot>,
        permit: OwnedSemaphorePermit,
        timeout: Duration,
    ) -> Self {
        Self {
            producer,
            lease: Some(Lease {
                slot,
                _permit: permit,
            }),
            timeout,
        }
    }

    /// Sends `messages` in order into the transaction and waits for their delivery reports;
    /// `read_committed` consumers see them only after [`commit`](Self::commit).
    pub async fn send(&mut self, messages: &[OutboundMessage]) -> Result<(), BusError> {
        send_all(&self.producer, messages)
            .await
            .map_err(|error| error.source)
    }

    /// Commits the transaction: its messages become visible together. A commit that times out
    /// is retried; one that fails otherwise is aborted when the error allows it. A producer
    /// left unusable is replaced for the next transaction.
    pub async fn commit(mut self) -> Result<(), BusError> {
        let lease = self.lease.take();
        let producer = self.producer.clone();
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || {
            let result = commit_with_retries(&producer, timeout);
            if let (Err(error), Some(mut lease)) = (&result, lease)
                && !recovered_after_failed_commit(&producer, error, timeout)
            {
                lease.slot.discard(error);
            }
            result
        })
        .await
        .map_err(join_error)?
        .map_err(kafka_error)
    }

    /// Aborts the transaction: none of its messages become visible. A producer that cannot
    /// abort is replaced for the next transaction.
    pub async fn abort(mut self) -> Result<(), BusError> {
        let lease = self.lease.take();
        let producer = self.producer.clone();
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || abort_or_discard(&producer, lease, timeout))
            .await
            .map_err(join_error)?
            .map_err(kafka_error)
    }
}

impl Drop for KafkaTransaction {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let producer = self.producer.clone();
        let timeout = self.timeout;
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || {
                    if let Err(error) = abort_or_discard(&producer, Some(lease), timeout) {
                        tracing::warn!(%error, "aborting a dropped Kafka transaction failed");
                    }
                });
            }
            // Outside a runtime the abort cannot wait; the new producer started on this slot
            // next time fences this one and has its open transaction aborted.
            Err(_) => {
                let mut lease = lease;
                lease.slot.discard(&KafkaError::Canceled);
            }
        }
    }
}

/// Commits, retrying while the failure is retriable (the commit timed out but may still
/// complete), up to [`COMMIT_ATTEMPTS`] attempts.
fn commit_with_retries(producer: &FutureProducer, timeout: Duration) -> Result<(), KafkaError> {
    let mut attempt = 1;
    loop {
        match producer.commit_transaction(timeout) {
            Err(KafkaError::Transaction(error))
                if error.is_retriable() && attempt < COMMIT_ATTEMPTS =>
            {
                tracing::debug!(%error, attempt, "retrying the Kafka transaction commit");
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// After a failed commit: aborts the transaction when that is possible, and says whether the
/// producer can carry another transaction.
fn recovered_after_failed_commit(
    producer: &FutureProducer,
    error: &KafkaError,
    timeout: Duration,
) -> bool {
    let KafkaError::Transaction(error) = error else {
        return false;
    };
    if error.is_fatal() {
        return false;
    }
    match producer.abort_transaction(timeout) {
        Ok(()) => true,
        Err(abort) => {
            tracing::warn!(error = %abort, "aborting the failed Kafka transaction failed");
            false
        }
    }
}

/// Aborts; on failure the producer is discarded (its successor fences it and has its open
/// transaction aborted).
fn abort_or_discard(
    producer: &FutureProducer,
    lease: Option<Lease>,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let result = producer.abort_transaction(timeout);
    if let (Err(error), Some(mut lease)) = (&result, lease) {
        lease.slot.discard(error);
    }
    result
}
