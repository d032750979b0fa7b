//! The embedded engine: serialised values in this process's memory, through `moka` (a
//! concurrent cache with per-entry expiry and a bounded size).
//!
//! Same semantics as the Redis engine: an entry lives for the TTL it was set with (a new set
//! restarts it), get/set/delete of JSON bytes. Each [`EmbeddedStore`] is on its own: two
//! caches in one process do not see each other's entries.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// One cached value and how long it lives.
#[derive(Clone)]
struct Entry {
    bytes: Arc<[u8]>,
    ttl: Duration,
}

/// Expires each entry `ttl` after it was set.
struct PerEntryTtl;

impl moka::Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _at: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _at: Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Serialised values in memory, at most `max_entries` of them.
#[derive(Clone)]
pub(super) struct EmbeddedStore {
    entries: moka::sync::Cache<String, Entry>,
}

impl EmbeddedStore {
    /// An empty store keeping at most `max_entries` values.
    pub(super) fn new(max_entries: u64) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .expire_after(PerEntryTtl)
                .build(),
        }
    }

    /// `decode` applied to the bytes of `key`, if present and not expired.
    pub(super) fn get_with<T>(&self, key: &str, decode: impl FnOnce(&[u8]) -> T) -> Option<T> {
        self.entries.get(key).map(|entry| decode(&entry.bytes))
    }

    /// Sets `key` to `bytes` for `ttl`.
    pub(super) fn set(&self, key: &str, bytes: Vec<u8>, ttl: Duration) {
        self.entries.insert(
            key.to_owned(),
            Entry {
                bytes: bytes.into(),
                ttl,
            },
        );
    }

    /// Removes `key`; whether it was there.
    pub(super) fn delete(&self, key: &str) -> bool {
        self.entries.remove(key).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl_of_their_last_set() {
        let store = EmbeddedStore::new(10);
        store.set("short", b"1".to_vec(), Duration::from_millis(30));
        store.set("long", b"2".to_vec(), Duration::from_secs(60));
        assert_eq!(store.get_with("short", <[u8]>::to_vec), Some(b"1".to_vec()));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(store.get_with("short", <[u8]>::to_vec), None);
        assert_eq!(store.get_with("long", <[u8]>::to_vec), Some(b"2".to_vec()));
        store.set("long", b"3".to_vec(), Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            store.get_with("long", <[u8]>::to_vec),
            None,
            "the new TTL applies"
        );
        store.set("long", b"4".to_vec(), Duration::from_secs(60));
        assert!(store.delete("long"));
        assert!(!store.delete("long"), "a second delete finds nothing");
    }
}
