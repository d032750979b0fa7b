//! What each resilience policy adds to one call, beside the bare call measured in the same run
//! (the limit: a policy can only add to it).
//!
//! `cargo bench -p allframe-runtime --bench resilience`. `ALLFRAME_BENCH_SCALE=0.1` shortens
//! the run. With `--features redis` and a Redis at `ALLFRAME_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`), two more rows: the rate limit shared through Redis, beside a bare
//! `PING` round trip to the same Redis (its limit).
//!
//! Every row awaits the same ready future (`Ok(n)`) on a current-thread runtime, 1,000 calls per
//! sample; the figures are per call, p50 and p99 over the samples. "added" is the row's p50 minus
//! the bare call's. The rate limiter rows have budgets no call exhausts.

use std::hint::black_box;
use std::time::Instant;

use allframe_runtime::resilience::{
    BreakerPolicy, Bulkhead, BulkheadPolicy, CircuitBreaker, Client, RateLimitKey, RateLimitPolicy,
    RateLimiter, RetryPolicy, Verdict,
};

const CALLS_PER_SAMPLE: u32 = 1_000;

async fn bare(n: u64) -> Result<u64, ()> {
    Ok(black_box(n))
}

/// Per-call ns of `calls` samples of `CALLS_PER_SAMPLE` calls each, sorted.
async fn measure<F, Fut>(samples: usize, mut call: F) -> Vec<f64>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = Result<u64, ()>>,
{
    let mut per_call = Vec::with_capacity(samples);
    for _ in 0..samples / 10 {
        for n in 0..u64::from(CALLS_PER_SAMPLE) {
            let _ = black_box(call(n).await);
        }
    }
    for _ in 0..samples {
        let started = Instant::now();
        for n in 0..u64::from(CALLS_PER_SAMPLE) {
            let _ = black_box(call(n).await);
        }
        per_call.push(started.elapsed().as_nanos() as f64 / f64::from(CALLS_PER_SAMPLE));
    }
    per_call.sort_by(f64::total_cmp);
    per_call
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let scale: f64 = std::env::var("ALLFRAME_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let samples = ((2_000.0 * scale) as usize).max(20);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let breaker = CircuitBreaker::new("bench", BreakerPolicy::DEFAULT);
        let bulkhead = Bulkhead::new(BulkheadPolicy {
            max_concurrent: 100,
            max_queue: 50,
        });
        let unlimited = |per| RateLimitPolicy {
            rps: u32::MAX,
            burst: u32::MAX,
            per,
        };
        let global = RateLimiter::new(unlimited(RateLimitKey::Global));
        let per_ip = RateLimiter::new(unlimited(RateLimitKey::Ip));
        let client = Client::Ip("203.0.113.7".parse().expect("ip"));
        let retry = RetryPolicy::DEFAULT;
        let (breaker, bulkhead, global, per_ip, client, retry) =
            (&breaker, &bulkhead, &global, &per_ip, &client, &retry);

        let mut rows: Vec<(&str, Vec<f64>)> = Vec::new();
        rows.push(("bare call (the limit)", measure(samples, bare).await));
        rows.push((
            "circuit breaker (closed)",
            measure(samples, |n| async move {
                breaker.call(bare(n)).await.map_err(drop)
            })
            .await,
        ));
        rows.push((
            "retry (first attempt succeeds)",
            measure(samples, |n| {
                retry.run(
                    move |_| bare(n),
                    |outcome| match outcome {
                        Ok(_) => Verdict::Final,
                        Err(()) => Verdict::Retry,
                    },
                )
            })
            .await,
        ));
        rows.push((
            "bulkhead (a free slot)",
            measure(samples, |n| async move {
                let _slot = bulkhead.acquire().await.map_err(drop)?;
                bare(n).await
            })
            .await,
        ));
        rows.push((
            "rate limit, global",
            measure(samples, |n| async move {
                global.check(client).map_err(drop)?;
                bare(n).await
            })
            .await,
        ));
        rows.push((
            "rate limit, per IP",
            measure(samples, |n| async move {
                per_ip.check(client).map_err(drop)?;
                bare(n).await
            })
            .await,
        ));
        rows.push((
            "breaker + retry + bulkhead + rate limit",
            measure(samples, |n| async move {
                global.check(client).map_err(drop)?;
                let _slot = bulkhead.acquire().await.map_err(drop)?;
                retry
                    .run(
                        move |_| async move { breaker.call(bare(n)).await.map_err(drop) },
                        |outcome| match outcome {
                            Ok(_) => Verdict::Final,
                            Err(()) => Verdict::Retry,
                        },
                    )
                    .await
            })
            .await,
        ));

        #[cfg(feature = "redis")]
        redis_rows(&mut rows, samples / 10).await;

        let bare_p50 = percentile(&rows[0].1, 0.5);
        println!("| per call | p50 ns | p99 ns | added to the bare call (p50) |");
        println!("|---|---|---|---|");
        for (name, sorted) in &rows {
            let (p50, p99) = (percentile(sorted, 0.5), percentile(sorted, 0.99));
            println!(
                "| {name} | {p50:.1} | {p99:.1} | {:.1} ns |",
                p50 - bare_p50
            );
        }
    });
}

/// The rate limit counted in Redis, beside a `PING` on its own connection (one round trip each).
#[cfg(feature = "redis")]
async fn redis_rows(rows: &mut Vec<(&'static str, Vec<f64>)>, samples: usize) {
    use allframe_runtime::resilience::SharedRateLimit;
    let url = std::env::var("ALLFRAME_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let client = redis::Client::open(url.as_str()).expect("Redis URL");
    let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
        eprintln!("no Redis at {url}: the shared rate limit rows are left out");
        return;
    };
    let samples = samples.max(20);
    let ping = measure(samples, |n| {
        let mut connection = connection.clone();
        async move {
            let _: String = redis::cmd("PING")
                .query_async(&mut connection)
                .await
                .map_err(drop)?;
            bare(n).await
        }
    })
    .await;
    let _: () = redis::cmd("PING")
        .query_async(&mut connection)
        .await
        .unwrap_or(());
    let policy = RateLimitPolicy {
        rps: 1_000_000,
        burst: u32::MAX,
        per: RateLimitKey::Global,
    };
    let service = format!("bench-{}", std::process::id());
    let shared = SharedRateLimit::new(&url, &service, policy).expect("limit");
    let client = Client::Instance;
    let limited = measure(samples, |n| {
        let (shared, client) = (&shared, &client);
        async move {
            shared.check(client).await.map_err(drop)?.map_err(drop)?;
            bare(n).await
        }
    })
    .await;
    rows.push(("Redis PING round trip (the shared limit's limit)", ping));
    rows.push(("rate limit shared through Redis", limited));
}
