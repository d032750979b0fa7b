//! The cache scenarios every engine must pass. Each takes a [`Fixture`] whose namespace no
//! other test uses.

use std::time::Duration;

use allframe_runtime::cache::{
    Cache, CacheError, CacheSettings, WriteBehindSettings, WriteStrategy,
};
use futures_util::future::join_all;

use super::source::product;
use super::{Fixture, ReadOnly, Recorder, eventually};

/// A hit answers from the cache, a miss loads and caches, an entry expires after the TTL.
pub async fn hits_misses_and_expires_after_the_ttl(f: &Fixture) {
    let source = Recorder::with(&[("sku-1", product("sku-1", 100))]);
    let settings = CacheSettings {
        ttl: Duration::from_millis(600),
        ..f.settings(WriteStrategy::CacheAside)
    };
    let cache = f.open(source.clone(), settings).await;

    assert_eq!(
        cache.get("sku-1").await.expect("get"),
        Some(product("sku-1", 100))
    );
    assert_eq!(source.loads("sku-1"), 1, "a miss loads");
    source.set("sku-1", product("sku-1", 200));
    assert_eq!(
        cache.get("sku-1").await.expect("get"),
        Some(product("sku-1", 100)),
        "a hit answers from the cache, not the source"
    );
    assert_eq!(source.loads("sku-1"), 1, "a hit does not load");
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.loads),
        (1, 1, 1),
        "{stats:?}"
    );

    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        cache.get("sku-1").await.expect("get"),
        Some(product("sku-1", 200)),
        "past the TTL the entry is gone and the source answers"
    );
    assert_eq!(source.loads("sku-1"), 2);
}

/// 50 concurrent gets of one missing key load it once; a cancelled caller does not strand
/// the others.
pub async fn concurrent_misses_load_once(f: &Fixture) {
    let source = Recorder::with(&[("hot", product("hot", 7)), ("warm", product("warm", 8))]);
    source.slow_loads(Duration::from_millis(150));
    let cache = f
        .open(source.clone(), f.settings(WriteStrategy::CacheAside))
        .await;

    let gets = (0..50).map(|_| {
        let cache = cache.clone();
        tokio::spawn(async move { cache.get("hot").await })
    });
    for result in join_all(gets).await {
        let value = result.expect("task").expect("get");
        assert_eq!(value, Some(product("hot", 7)));
    }
    assert_eq!(source.loads("hot"), 1, "one load for 50 concurrent misses");
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.loads), (50, 1), "{stats:?}");

    // The caller running the load goes away; the one waiting on it still gets the value.
    let first = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get("warm").await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let second = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get("warm").await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    first.abort();
    let value = second.await.expect("task").expect("get");
    assert_eq!(value, Some(product("warm", 8)));
}

/// A key the source does not have is not cached: the next get asks the source again.
pub async fn none_is_not_cached(f: &Fixture) {
    let source = Recorder::default();
    let cache = f
        .open(source.clone(), f.settings(WriteStrategy::CacheAside))
        .await;
    assert_eq!(cache.get("ghost").await.expect("get"), None);
    assert_eq!(cache.get("ghost").await.expect("get"), None);
    assert_eq!(source.loads("ghost"), 2, "None is not cached");
    source.set("ghost", product("ghost", 1));
    assert_eq!(
        cache.get("ghost").await.expect("get"),
        Some(product("ghost", 1)),
        "a key that appears is found at once"
    );
}

/// Write-through stores through the source, then serves the value from the cache.
pub async fn write_through_stores_then_serves(f: &Fixture) {
    let source = Recorder::default();
    let cache = f
        .open(source.clone(), f.settings(WriteStrategy::WriteThrough))
        .await;
    cache.put("sku-1", product("sku-1", 10)).await.expect("put");
    assert_eq!(
        source.stores(),
        vec![vec![("sku-1".to_owned(), product("sku-1", 10))]],
        "one store of one write"
    );
    assert_eq!(
        cache.get("sku-1").await.expect("get"),
        Some(product("sku-1", 10))
    );
    cache.put("sku-1", product("sku-1", 11)).await.expect("put");
    assert_eq!(
        cache.get("sku-1").await.expect("get"),
        Some(product("sku-1", 11))
    );
    assert_eq!(
        source.loads("sku-1"),
        0,
        "written values are served without a load"
    );
    assert_eq!(cache.stats().hits, 2);

    source.fail_stores(1);
    let error = cache
        .put("sku-1", product("sku-1", 12))
        .await
        .expect_err("the source refuses");
    assert!(matches!(error, CacheError::Store { .. }), "{error}");
    assert_eq!(
        cache.get("sku-1").await.expect("get"),
        Some(product("sku-1", 11)),
        "a refused write is not cached"
    );
}

/// Cache-aside stores through the source and evicts, so the next get loads the new value; a
/// read-only source refuses puts with a clear error.
pub async fn cache_aside_stores_and_evicts(f: &Fixture) {
    let source = Recorder::with(&[("sku-1", product("sku-1", 1))]);
    let cache = f
        .open(source.clone(), f.settings(WriteStrategy::CacheAside))
        .await;
    assert_eq!(
        cache.get("sku-1").await.expect("get"),
        Some(product("sku-1", 1))
    );
    cache.put("sku-1", product("sku-1", 2)).await.expect("put");
    assert_eq!(
        source.stores(),
        vec![vec![("sku-1".to_owned(), product("sku-1", 2))]]
    );
    assert_eq!(cache.stats().evictions, 1, "the cached entry was evicted");
    assert_eq!(
        cache.get("sku-1").await.expect("get"),
        Some(product("sku-1", 2))
    );
    assert_eq!(source.loads("sku-1"), 2, "the next get loads");

    let settings = CacheSettings {
        namespace: format!("{}-ro", f.namespace).into(),
        ..f.settings(WriteStrategy::CacheAside)
    };
    let read_only = Cache::open(ReadOnly, settings, &f.engine, None)
        .await
        .expect("cache-aside needs no database");
    assert_eq!(
        read_only.get("x").await.expect("get"),
        Some(product("x", 1))
    );
    let error = read_only
        .put("x", product("x", 2))
        .await
        .expect_err("a read-only source");
    assert!(error.to_string().contains("read-only"), "{error}");
}

/// Evicting is idempotent: an absent key, twice, or none at all, all succeed.
pub async fn eviction_is_idempotent(f: &Fixture) {
    let source = Recorder::with(&[
        ("sku-1", product("sku-1", 1)),
        ("sku-2", product("sku-2", 2)),
    ]);
    let cache = f
        .open(source.clone(), f.settings(WriteStrategy::CacheAside))
        .await;
    cache.get("sku-1").await.expect("get");
    cache.get("sku-2").await.expect("get");
    cache.evict("sku-1").await.expect("evict");
    cache.evict("sku-1").await.expect("evict again");
    cache
        .evict("never-cached")
        .await
        .expect("evict an absent key");
    cache
        .evict_all(["sku-1", "sku-2", "never-cached"])
        .await
        .expect("evict_all");
    cache
        .evict_all(Vec::<String>::new())
        .await
        .expect("evict nothing");
    assert_eq!(cache.stats().evictions, 2, "each cached entry removed once");
    cache.get("sku-1").await.expect("get");
    cache.get("sku-2").await.expect("get");
    assert_eq!((source.loads("sku-1"), source.loads("sku-2")), (2, 2));
}

/// Write-behind: a put is served at once and stored later, in one batch per flush with one
/// entry per key (its last value); the background flusher stores batches of `max_batch`.
pub async fn write_behind_serves_at_once_and_stores_coalesced_batches(f: &Fixture) {
    let source = Recorder::default();
    let cache = f
        .open(source.clone(), f.settings(WriteStrategy::WriteBehind))
        .await;
    let writes = [("k1", 1), ("k2", 2), ("k1", 3), ("k3", 4), ("k1", 5)];
    for (key, price) in writes {
        cache.put(key, product(key, price)).await.expect("put");
    }
    assert_eq!(cache.get("k1").await.expect("get"), Some(product("k1", 5)));
    assert_eq!(source.loads("k1"), 0, "served from the cache");
    assert!(source.stores().is_empty(), "nothing stored before a flush");
    assert_eq!(cache.pending_writes().await.expect("count"), 5);
    assert_eq!(cache.stats().pending_writes, 5);

    // Evicted before it is stored, a pending write is still what a get answers.
    cache.evict("k3").await.expect("evict");
    assert_eq!(cache.get("k3").await.expect("get"), Some(product("k3", 4)));
    assert_eq!(
        source.loads("k3"),
        0,
        "the pending write answers, not the source"
    );

    cache.flush().await.expect("flush");
    assert_eq!(
        source.stores(),
        vec![vec![
            ("k1".to_owned(), product("k1", 5)),
            ("k2".to_owned(), product("k2", 2)),
            ("k3".to_owned(), product("k3", 4)),
        ]],
        "one batch, one entry per key with its last value, oldest first"
    );
    assert_eq!(cache.pending_writes().await.expect("count"), 0);
    let stats = cache.stats();
    assert_eq!(
        (stats.pending_writes, stats.flushed_writes),
        (0, 5),
        "{stats:?}"
    );
    cache.flush().await.expect("nothing left to flush");
    assert_eq!(source.stores().len(), 1);

    // The background flusher: batches of at most 2 keys, woken by the backlog.
    let batched = Recorder::default();
    let settings = CacheSettings {
        namespace: format!("{}-batched", f.namespace).into(),
        write_behind: WriteBehindSettings {
            max_batch: 2,
            flush_interval: Duration::from_millis(50),
        },
        ..f.settings(WriteStrategy::WriteBehind)
    };
    let background = f.open(batched.clone(), settings).await;
    for n in 0..7 {
        let key = format!("b{}", n % 5);
        background.put(&key, product(&key, n)).await.expect("put");
    }
    eventually("the flusher stored every write", || {
        (0..5).all(|n| {
            let key = format!("b{n}");
            let last = if n < 2 { n + 5 } else { n };
            batched.value(&key) == Some(product(&key, last))
        })
    })
    .await;
    let stores = batched.stores();
    assert!(
        stores
            .iter()
            .all(|batch| batch.len() <= 2 && !batch.is_empty()),
        "{stores:?}"
    );
    assert!(stores.len() >= 3, "5 keys in batches of 2: {stores:?}");
    eventually("the table is empty", || {
        background.stats().pending_writes == 0
    })
    .await;
}

/// Write-behind loses nothing: a cache dropped while its flusher is stuck in `store` (a
/// process killed mid-flush) leaves its writes in the table, and a cache reopened on the same
/// database stores every one of them, coalesced.
pub async fn write_behind_loses_nothing_when_dropped_mid_flush(f: &Fixture) {
    let stuck = Recorder::default();
    stuck.hang_stores();
    let settings = CacheSettings {
        write_behind: WriteBehindSettings {
            max_batch: 100,
            flush_interval: Duration::from_millis(20),
        },
        ..f.settings(WriteStrategy::WriteBehind)
    };
    let cache = f.open(stuck.clone(), settings.clone()).await;
    for (key, price) in [("k1", 1), ("k2", 2), ("k1", 3), ("k3", 4)] {
        cache.put(key, product(key, price)).await.expect("put");
    }
    eventually("the flusher is inside store", || {
        stuck.store_attempts() >= 1
    })
    .await;
    drop(cache);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        stuck.stores().is_empty(),
        "nothing reached the stuck source"
    );

    let source = Recorder::default();
    let reopened = f.open(source.clone(), settings).await;
    eventually("the reopened cache stored the pending writes", || {
        !source.stores().is_empty()
    })
    .await;
    assert_eq!(
        source.value("k1"),
        Some(product("k1", 3)),
        "the last write of k1"
    );
    assert_eq!(source.value("k2"), Some(product("k2", 2)));
    assert_eq!(source.value("k3"), Some(product("k3", 4)));
    let stored: usize = source.stores().iter().map(Vec::len).sum();
    assert_eq!(stored, 3, "one entry per key: {:?}", source.stores());
    eventually("the table is empty", || {
        reopened.stats().pending_writes == 0
    })
    .await;
    assert_eq!(reopened.pending_writes().await.expect("count"), 0);
}

/// A failing `store` keeps the rows: `flush` reports the error, the background flusher
/// retries with backoff until the source takes them, and shutdown drains what is left.
pub async fn write_behind_failing_store_keeps_rows_and_retries(f: &Fixture) {
    let source = Recorder::default();
    let cache = f
        .open(source.clone(), f.settings(WriteStrategy::WriteBehind))
        .await;
    cache.put("k1", product("k1", 1)).await.expect("put");
    source.fail_stores(1);
    let error = cache.flush().await.expect_err("the source is down");
    assert!(
        matches!(error, CacheError::Store { writes: 1, .. }),
        "{error}"
    );
    assert_eq!(
        cache.pending_writes().await.expect("count"),
        1,
        "the row is kept"
    );
    assert_eq!(cache.stats().flush_failures, 1);
    assert_eq!(cache.get("k1").await.expect("get"), Some(product("k1", 1)));
    cache.shutdown_flush().await.expect("shutdown drains");
    assert_eq!(source.value("k1"), Some(product("k1", 1)));
    assert_eq!(cache.pending_writes().await.expect("count"), 0);

    let retried = Recorder::default();
    retried.fail_stores(2);
    let settings = CacheSettings {
        namespace: format!("{}-retry", f.namespace).into(),
        write_behind: WriteBehindSettings {
            max_batch: 100,
            flush_interval: Duration::from_millis(20),
        },
        ..f.settings(WriteStrategy::WriteBehind)
    };
    let background = f.open(retried.clone(), settings).await;
    background.put("k2", product("k2", 2)).await.expect("put");
    eventually("the flusher stored after two failures", || {
        retried.value("k2").is_some()
    })
    .await;
    assert_eq!(
        retried.store_attempts(),
        3,
        "two failures, then the retry that worked"
    );
    assert_eq!(background.stats().flush_failures, 2);
    eventually("the table is empty", || {
        background.stats().pending_writes == 0
    })
    .await;
}

/// Two caches of one namespace: on the embedded engine each has its own entries (and needs
/// its own eviction); on Redis they share them (one eviction reaches both).
pub async fn two_caches_share_entries_only_on_a_shared_engine(f: &Fixture) {
    let a_source = Recorder::with(&[("sku-1", product("sku-1", 1))]);
    let b_source = Recorder::with(&[("sku-1", product("sku-1", 1))]);
    let a = f
        .open(a_source.clone(), f.settings(WriteStrategy::CacheAside))
        .await;
    let b = f
        .open(b_source.clone(), f.settings(WriteStrategy::CacheAside))
        .await;
    a.get("sku-1").await.expect("get");
    b.get("sku-1").await.expect("get");
    let b_loads = if f.shared { 0 } else { 1 };
    assert_eq!(b_source.loads("sku-1"), b_loads, "shared: {}", f.shared);

    a_source.set("sku-1", product("sku-1", 2));
    b_source.set("sku-1", product("sku-1", 2));
    a.evict("sku-1").await.expect("evict");
    let seen_by_b = b.get("sku-1").await.expect("get");
    if f.shared {
        assert_eq!(
            seen_by_b,
            Some(product("sku-1", 2)),
            "one eviction reaches both"
        );
    } else {
        assert_eq!(
            seen_by_b,
            Some(product("sku-1", 1)),
            "b keeps its own entry until it is evicted"
        );
        b.evict("sku-1").await.expect("evict");
        assert_eq!(
            b.get("sku-1").await.expect("get"),
            Some(product("sku-1", 2))
        );
    }
    assert_eq!(
        a.get("sku-1").await.expect("get"),
        Some(product("sku-1", 2))
    );
}
