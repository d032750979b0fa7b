//! How the generated Kubernetes workloads stop a pod: the numbers the workload template writes
//! into `ALLFRAME_SHUTDOWN_DELAY_SECS`, `ALLFRAME_SHUTDOWN_TIMEOUT_SECS` and
//! `terminationGracePeriodSeconds`, decided once here.

use serde::Serialize;

/// How the generated Kubernetes workloads stop a pod. On SIGTERM the service keeps serving new
/// connections for `delay_secs` while readiness answers 503 (so endpoints and load balancers
/// stop routing to it before it stops accepting), then drains in-flight requests for at most
/// `drain_secs`, then stops background tasks (at least 1 s), closes its pool (at most 5 s) and
/// flushes spans (at most 5 s). The pod's grace period covers all of it; one mechanism, the
/// in-app delay, so there is no `preStop` sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ShutdownContext {
    /// `ALLFRAME_SHUTDOWN_DELAY_SECS`: the readiness propagation delay.
    pub delay_secs: u32,
    /// `ALLFRAME_SHUTDOWN_TIMEOUT_SECS`: the drain deadline.
    pub drain_secs: u32,
    /// `terminationGracePeriodSeconds`: delay + drain + [`ShutdownContext::MARGIN_SECS`].
    pub grace_secs: u32,
}

impl ShutdownContext {
    /// Time after the drain for tasks, the pool and span export (1 + 5 + 5 s, plus slack).
    pub const MARGIN_SECS: u32 = 15;

    /// The Kubernetes defaults: a 5 s delay (a few kube-proxy / ingress sync periods) and the
    /// runtime's 30 s drain deadline.
    pub const KUBERNETES: Self = Self::new(5, 30);

    /// A delay and a drain deadline, with the grace period that covers them.
    pub const fn new(delay_secs: u32, drain_secs: u32) -> Self {
        Self {
            delay_secs,
            drain_secs,
            grace_secs: delay_secs + drain_secs + Self::MARGIN_SECS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grace_period_covers_the_delay_the_drain_and_what_follows() {
        let k8s = ShutdownContext::KUBERNETES;
        assert_eq!(
            (k8s.delay_secs, k8s.drain_secs, k8s.grace_secs),
            (5, 30, 50)
        );
        let long = ShutdownContext::new(10, 120);
        assert_eq!(long.grace_secs, 10 + 120 + ShutdownContext::MARGIN_SECS);
    }
}
