//! Sources for the cache scenarios: [`Recorder`] keeps its values in memory and records every
//! load and store; it can be slowed, made to fail its next stores, or to hang in `store` (a
//! process killed mid-flush). [`ReadOnly`] implements `load` only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use allframe_runtime::BoxError;
use allframe_runtime::cache::CacheSource;
use serde::{Deserialize, Serialize};

/// The cached value of the scenarios.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub sku: String,
    pub price: u32,
}

/// `Product { sku, price }`.
pub fn product(sku: &str, price: u32) -> Product {
    Product {
        sku: sku.to_owned(),
        price,
    }
}

/// A source over an in-memory map that counts what the cache asks. Clones share everything,
/// so a test keeps one to look at while the cache owns another.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    data: Mutex<HashMap<String, Product>>,
    loads: Mutex<HashMap<String, usize>>,
    load_delay: Mutex<Duration>,
    stores: Mutex<Vec<Vec<(String, Product)>>>,
    store_attempts: AtomicUsize,
    failures_left: AtomicUsize,
    hang: AtomicBool,
}

impl Recorder {
    /// A source holding `pairs`.
    pub fn with(pairs: &[(&str, Product)]) -> Self {
        let recorder = Self::default();
        for (key, value) in pairs {
            recorder.set(key, value.clone());
        }
        recorder
    }

    /// Changes the source's value of `key` behind the cache's back.
    pub fn set(&self, key: &str, value: Product) {
        self.inner
            .data
            .lock()
            .expect("data")
            .insert(key.to_owned(), value);
    }

    /// The source's value of `key`.
    pub fn value(&self, key: &str) -> Option<Product> {
        self.inner.data.lock().expect("data").get(key).cloned()
    }

    /// Every `load` waits this long first.
    pub fn slow_loads(&self, delay: Duration) {
        *self.inner.load_delay.lock().expect("delay") = delay;
    }

    /// The next `n` stores fail.
    pub fn fail_stores(&self, n: usize) {
        self.inner.failures_left.store(n, Ordering::SeqCst);
    }

    /// Every `store` from now on never returns.
    pub fn hang_stores(&self) {
        self.inner.hang.store(true, Ordering::SeqCst);
    }

    /// How many times `key` was loaded.
    pub fn loads(&self, key: &str) -> usize {
        self.inner
            .loads
            .lock()
            .expect("loads")
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    /// The batches stored, in order.
    pub fn stores(&self) -> Vec<Vec<(String, Product)>> {
        self.inner.stores.lock().expect("stores").clone()
    }

    /// How many times `store` was called (failed and hung calls included).
    pub fn store_attempts(&self) -> usize {
        self.inner.store_attempts.load(Ordering::SeqCst)
    }
}

impl CacheSource for Recorder {
    type Value = Product;

    async fn load(&self, key: &str) -> Result<Option<Product>, BoxError> {
        *self
            .inner
            .loads
            .lock()
            .expect("loads")
            .entry(key.to_owned())
            .or_default() += 1;
        let delay = *self.inner.load_delay.lock().expect("delay");
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok(self.value(key))
    }

    async fn store(&self, writes: &[(String, Product)]) -> Result<(), BoxError> {
        self.inner.store_attempts.fetch_add(1, Ordering::SeqCst);
        if self.inner.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let failing =
            self.inner
                .failures_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err("the source is down".into());
        }
        let mut data = self.inner.data.lock().expect("data");
        for (key, value) in writes {
            data.insert(key.clone(), value.clone());
        }
        self.inner
            .stores
            .lock()
            .expect("stores")
            .push(writes.to_vec());
        Ok(())
    }
}

/// A source that only loads (`store` keeps its default).
pub struct ReadOnly;

impl CacheSource for ReadOnly {
    type Value = Product;

    async fn load(&self, key: &str) -> Result<Option<Product>, BoxError> {
        Ok(Some(product(key, 1)))
    }
}
