//! Stampede protection: one load per key per process, and the locks that keep a load from
//! caching a value a concurrent write has replaced.
//!
//! A miss joins the key's [`Flight`] (creating it when there is none) and awaits its cell.
//! `tokio::sync::OnceCell::get_or_init` runs one initialiser at a time: if the caller running
//! the load is cancelled, the next waiter runs it, so a dropped request never strands the
//! others. The loader removes the flight before the cell is filled, so a later miss starts a
//! new load (the value is cached by then, unless it was `None`).
//!
//! A `put` or `evict` marks the key's flight, if any, as invalidated under the key's stripe
//! lock; the loader checks the mark and caches under the same lock. Either the load's value
//! is cached before the write changes the entry, or it is not cached at all.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{MutexGuard, OnceCell};

/// What a load gives every caller that awaited it.
pub(super) type Shared<V> = Result<Option<V>, Arc<dyn std::error::Error + Send + Sync>>;

/// One key's load in progress.
pub(super) struct Flight<V> {
    cell: OnceCell<Shared<V>>,
    invalidated: AtomicBool,
}

impl<V> Flight<V> {
    /// The load's outcome, running `load` unless another caller already is (or did).
    pub(super) async fn outcome<F>(&self, load: impl FnOnce() -> F) -> &Shared<V>
    where
        F: Future<Output = Shared<V>>,
    {
        self.cell.get_or_init(load).await
    }

    /// Whether a write touched the key since the flight began (checked under the key's
    /// stripe lock).
    pub(super) fn is_invalidated(&self) -> bool {
        self.invalidated.load(Ordering::Acquire)
    }
}

/// The loads in progress, by key.
pub(super) struct Flights<V> {
    map: Mutex<HashMap<String, Arc<Flight<V>>>>,
}

impl<V> Default for Flights<V> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<V> Flights<V> {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Flight<V>>>> {
        // The map is consistent after any panic (single inserts and removes).
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The flight of `key`, created if none is in progress.
    pub(super) fn join(&self, key: &str) -> Arc<Flight<V>> {
        let mut map = self.map();
        if let Some(flight) = map.get(key) {
            return Arc::clone(flight);
        }
        let flight = Arc::new(Flight {
            cell: OnceCell::new(),
            invalidated: AtomicBool::new(false),
        });
        map.insert(key.to_owned(), Arc::clone(&flight));
        flight
    }

    /// Removes `flight` (and only it) from the map.
    pub(super) fn finish(&self, key: &str, flight: &Arc<Flight<V>>) {
        let mut map = self.map();
        if map
            .get(key)
            .is_some_and(|current| Arc::ptr_eq(current, flight))
        {
            map.remove(key);
        }
    }

    /// Marks the flight of `key`, if any, so that its value is not cached.
    pub(super) fn invalidate(&self, key: &str) {
        if let Some(flight) = self.map().get(key) {
            flight.invalidated.store(true, Ordering::Release);
        }
    }
}

/// How many stripes the write locks are spread over.
const STRIPES: usize = 64;

/// Locks by key hash: writes to one key (and a load caching it) take its stripe in turn.
pub(super) struct Stripes {
    locks: Box<[tokio::sync::Mutex<()>]>,
    hasher: RandomState,
}

impl Default for Stripes {
    fn default() -> Self {
        Self {
            locks: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl Stripes {
    fn index(&self, key: &str) -> usize {
        usize::try_from(self.hasher.hash_one(key) % STRIPES as u64).unwrap_or(0)
    }

    /// Waits for the stripe of `key`.
    pub(super) async fn lock(&self, key: &str) -> MutexGuard<'_, ()> {
        self.locks[self.index(key)].lock().await
    }

    /// Waits for the stripes of every key of `keys`, in ascending order (a holder of one
    /// stripe never waits for another, so this cannot deadlock).
    pub(super) async fn lock_many(&self, keys: &[&str]) -> Vec<MutexGuard<'_, ()>> {
        let mut indices: Vec<usize> = keys.iter().map(|key| self.index(key)).collect();
        indices.sort_unstable();
        indices.dedup();
        let mut guards = Vec::with_capacity(indices.len());
        for index in indices {
            guards.push(self.locks[index].lock().await);
        }
        guards
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_load_and_a_finished_flight_is_gone() {
        let flights = Flights::<u32>::default();
        let first = flights.join("k");
        let second = flights.join("k");
        assert!(Arc::ptr_eq(&first, &second));
        let runs = std::sync::atomic::AtomicUsize::new(0);
        let load = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(Some(7))
        };
        let (a, b) = tokio::join!(first.outcome(load), second.outcome(load));
        assert_eq!(
            (a.as_ref().ok(), b.as_ref().ok()),
            (Some(&Some(7)), Some(&Some(7)))
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        flights.invalidate("k");
        assert!(first.is_invalidated());
        flights.finish("k", &first);
        assert!(
            !Arc::ptr_eq(&flights.join("k"), &first),
            "a new flight after finish"
        );
    }
}
