use std::sync::atomic::{AtomicU32, Ordering};

use proptest::prelude::*;

use super::*;

const POLICY: BreakerPolicy = BreakerPolicy {
    failure_threshold: 3,
    success_threshold: 2,
    timeout_ms: 1_000,
};

fn fail(breaker: &CircuitBreaker, times: u32) {
    for _ in 0..times {
        breaker.try_acquire().expect("admitted").failure();
    }
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_open_the_circuit_and_a_success_resets_the_count() {
    let breaker = CircuitBreaker::new("payments", POLICY);
    fail(&breaker, 2);
    breaker.try_acquire().expect("admitted").success();
    fail(&breaker, 2);
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "2 + 2 is not 3 in a row"
    );
    fail(&breaker, 1);
    assert_eq!(breaker.state(), BreakerState::Open);
    let refused = breaker.try_acquire().expect_err("open");
    assert_eq!(refused.retry_after, Duration::from_millis(1_000));
    assert_eq!(&*refused.target, "payments");
}

#[tokio::test(start_paused = true)]
async fn after_the_timeout_probes_close_the_circuit_or_a_failed_one_reopens_it() {
    let breaker = CircuitBreaker::new("payments", POLICY);
    fail(&breaker, 3);
    tokio::time::advance(Duration::from_millis(999)).await;
    assert!(breaker.try_acquire().is_err(), "still open");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(breaker.state(), BreakerState::HalfOpen);

    let (first, second) = (breaker.try_acquire(), breaker.try_acquire());
    let (first, second) = (first.expect("probe 1"), second.expect("probe 2"));
    assert!(first.is_probe() && second.is_probe());
    assert!(breaker.try_acquire().is_err(), "two probes are the limit");
    first.success();
    assert!(
        breaker.try_acquire().is_err(),
        "one success and one probe in flight cover what is needed"
    );
    second.failure();
    assert_eq!(
        breaker.state(),
        BreakerState::Open,
        "a failed probe reopens"
    );

    tokio::time::advance(Duration::from_millis(1_000)).await;
    breaker.try_acquire().expect("probe").success();
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    breaker.try_acquire().expect("probe").success();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_gives_its_slot_back() {
    let breaker = CircuitBreaker::new("payments", POLICY);
    fail(&breaker, 3);
    tokio::time::advance(Duration::from_secs(1)).await;
    let slow = breaker.call(std::future::pending::<Result<(), ()>>());
    let cancelled = tokio::time::timeout(Duration::from_millis(10), slow).await;
    assert!(cancelled.is_err(), "the probe call was cancelled");
    let (a, b) = (breaker.try_acquire(), breaker.try_acquire());
    assert!(a.is_ok() && b.is_ok(), "both slots are free again");
}

#[tokio::test(start_paused = true)]
async fn late_outcomes_of_calls_admitted_before_a_state_change_are_ignored() {
    let breaker = CircuitBreaker::new("payments", POLICY);
    let slow = breaker.try_acquire().expect("admitted while closed");
    fail(&breaker, 3);
    tokio::time::advance(Duration::from_secs(1)).await;
    let probe = breaker.try_acquire().expect("probe");
    slow.failure();
    assert_eq!(
        breaker.state(),
        BreakerState::HalfOpen,
        "a failure from the closed era does not reopen"
    );
    probe.success();
    breaker.try_acquire().expect("probe").success();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn call_counts_errors_and_call_classified_counts_what_it_is_told() {
    let breaker = CircuitBreaker::new("payments", POLICY);
    for _ in 0..3 {
        let answer = breaker.call_classified(async { 503_u16 }, |s| *s >= 500);
        assert!(matches!(answer.await, Err(BreakerError::Call(503))));
    }
    let refused = breaker.call(async { Ok::<_, ()>(()) }).await;
    assert!(matches!(refused, Err(BreakerError::Open(_))));
}

#[test]
fn threads_racing_in_half_open_never_run_more_probes_than_allowed() {
    let policy = BreakerPolicy {
        failure_threshold: 1,
        success_threshold: 3,
        timeout_ms: 0,
    };
    let breaker = CircuitBreaker::new("racy", policy);
    breaker.try_acquire().expect("closed").failure();
    let (in_flight, most) = (AtomicU32::new(0), AtomicU32::new(0));
    std::thread::scope(|scope| {
        for worker in 0..8_u32 {
            let (breaker, in_flight, most) = (&breaker, &in_flight, &most);
            scope.spawn(move || {
                for round in 0..2_000_u32 {
                    let Ok(permit) = breaker.try_acquire() else {
                        continue;
                    };
                    if !permit.is_probe() {
                        // Closed again: fail to reopen (timeout 0: half-open at once).
                        permit.failure();
                        continue;
                    }
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::yield_now();
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    match (worker + round) % 3 {
                        0 => permit.success(),
                        1 => permit.failure(),
                        _ => drop(permit),
                    }
                }
            });
        }
    });
    let most = most.load(Ordering::SeqCst);
    assert!(
        (1..=3).contains(&most),
        "at most 3 probes at once, saw {most}"
    );
}

/// One step of a caller against the breaker, for the property test.
#[derive(Debug, Clone)]
enum Step {
    Acquire,
    Succeed(usize),
    Fail(usize),
    Cancel(usize),
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Acquire),
        2 => any::<usize>().prop_map(Step::Succeed),
        2 => any::<usize>().prop_map(Step::Fail),
        1 => any::<usize>().prop_map(Step::Cancel),
        1 => (0_u64..1_500).prop_map(Step::Wait),
    ]
}

proptest! {
    #[test]
    fn probes_in_flight_of_any_period_never_exceed_the_successes_still_needed(
        success_threshold in 1_u32..4,
        steps in proptest::collection::vec(step(), 1..200),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let policy = BreakerPolicy { failure_threshold: 2, success_threshold, timeout_ms: 1_000 };
            let breaker = CircuitBreaker::new("prop", policy);
            let mut permits: Vec<Permit> = Vec::new();
            for step in steps {
                match step {
                    Step::Acquire => {
                        if let Ok(permit) = breaker.try_acquire() {
                            permits.push(permit);
                        }
                    }
                    Step::Succeed(i) if !permits.is_empty() => {
                        permits.swap_remove(i % permits.len()).success();
                    }
                    Step::Fail(i) if !permits.is_empty() => {
                        permits.swap_remove(i % permits.len()).failure();
                    }
                    Step::Cancel(i) if !permits.is_empty() => {
                        drop(permits.swap_remove(i % permits.len()));
                    }
                    Step::Wait(ms) => tokio::time::advance(Duration::from_millis(ms)).await,
                    _ => {}
                }
                let live_probes = permits.iter().filter(|p| p.probe).count();
                prop_assert!(live_probes <= success_threshold as usize);
                let machine = breaker.lock();
                prop_assert_eq!(machine.probes as usize, live_probes);
                if let Phase::HalfOpen { successes } = machine.phase {
                    prop_assert!(machine.probes + successes <= success_threshold);
                }
            }
            Ok(())
        })?;
    }
}

#[test]
fn the_exported_state_follows_the_timeout_without_a_call() {
    let metrics = crate::resilience::ResilienceMetrics::default();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let scrape = || {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        text
    };
    let breaker = metrics.breaker(
        "stripe",
        BreakerPolicy {
            failure_threshold: 1,
            success_threshold: 1,
            timeout_ms: 30,
        },
    );
    fail(&breaker, 1);
    assert!(scrape().contains("allframe_breaker_state{target=\"stripe\"} 1"));
    std::thread::sleep(std::time::Duration::from_millis(40));
    // No call since it opened: the scrape reads the state as it is now, half-open.
    assert!(
        scrape().contains("allframe_breaker_state{target=\"stripe\"} 2"),
        "{}",
        scrape()
    );
}
