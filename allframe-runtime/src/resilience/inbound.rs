//! The limits on a service's incoming REST requests: the rate limit first (a request over it
//! is answered `429` with `Retry-After` and never queues), then the bulkhead (a request beyond
//! its queue is answered `503` with `Retry-After`). Both answers are problem details marked as
//! refusals, counted in `allframe_resilience_rejections_total{policy}`.
//!
//! The same layer sits on the gRPC routes, where a refusal is a gRPC status instead:
//! `RESOURCE_EXHAUSTED` over the rate limit, `UNAVAILABLE` past the bulkhead, with
//! `grpc-retry-pushback-ms`. Health (REST and `grpc.health.v1`) and metrics are not limited:
//! an orchestrator probing a busy service must still hear that it is alive.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use futures_util::future::{BoxFuture, Either};
use ipnet::IpNet;
use prometheus_client::metrics::counter::Counter;
use tower::{Layer, Service};

use axum::body::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::bulkhead::{Bulkhead, BulkheadPolicy, Slot};
use super::metrics::ResilienceMetrics;
use super::rate_limit::{
    Client, Limited as RateLimited, RateLimitKey, RateLimitPolicy, RateLimiter,
};
#[cfg(feature = "redis")]
use super::shared_limit::SharedRateLimit;
use crate::BoxError;
use crate::component::{Component, Startup};
use crate::error::{ApiError, RuntimeError};

/// What `[resilience]` (or the service's own tables) declare for incoming requests. Constant
/// data: the macro emits it only when the file declares a bulkhead or a rate limit, so a
/// service that declares neither is not limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundLimits {
    /// The bulkhead, when declared.
    pub bulkhead: Option<BulkheadPolicy>,
    /// The rate limit, when declared.
    pub rate_limit: Option<RateLimitPolicy>,
}

/// Proxies whose `X-Forwarded-For` is believed (`ALLFRAME_TRUSTED_PROXIES`: addresses or
/// CIDR ranges, comma-separated). Without any, the client is the connection's peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses `10.0.0.0/8, 192.168.1.7` (addresses count as single-host ranges).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{item:?} is neither an IP address nor a CIDR range"))?;
            nets.push(net);
        }
        Ok(Self(nets))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// One `X-Forwarded-For` hop as an address: `1.2.3.4`, `1.2.3.4:5678`, `::1` or
    /// `[::1]:5678`, IPv4-mapped IPv6 read as IPv4.
    fn hop(text: &[u8]) -> Option<IpAddr> {
        let text = std::str::from_utf8(text).ok()?.trim();
        let ip = text
            .parse::<IpAddr>()
            .or_else(|_| text.parse::<SocketAddr>().map(|socket| socket.ip()))
            .ok()?;
        Some(ip.to_canonical())
    }

    /// The client of a request from `peer`: the peer itself unless it is a trusted proxy;
    /// then the nearest address in `X-Forwarded-For` (read right to left) that is not a
    /// trusted proxy, or the farthest one when all are. A malformed entry ends the walk: the
    /// client is the last address believed. Ports and brackets are allowed
    /// (`[::1]:5678`), and IPv4-mapped IPv6 addresses (a peer of a server bound to `::`)
    /// count as their IPv4 address.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        // Hops are split on raw bytes, so a hop a client wrote with odd bytes is malformed on
        // its own and cannot hide the hops proxies appended after it.
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|value| value.as_bytes().split(|b| *b == b','))
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            match Self::hop(hop) {
                Some(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        client
    }
}

/// The layer applying [`InboundLimits`] to each REST route. Cheap to clone: clones share the
/// limiter and the bulkhead.
#[derive(Clone)]
pub struct InboundLimitsLayer {
    shared: Arc<Shared>,
}

struct Shared {
    limiter: Option<RateLimiter>,
    /// The same limit counted in Redis for every replica, when `REDIS_URL` is set.
    redis: Option<SharedRateLimit>,
    /// When Redis last failed to answer was logged (seconds since `started`).
    redis_failure_logged: AtomicU64,
    started: Instant,
    bulkhead: Option<Bulkhead>,
    proxies: TrustedProxies,
    tenant_header: Option<HeaderName>,
    rate_limited: Counter,
    bulkhead_full: Counter,
}

impl std::fmt::Debug for InboundLimitsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundLimitsLayer")
            .field(
                "rate_limit",
                &self.shared.limiter.as_ref().map(RateLimiter::policy),
            )
            .field("bulkhead", &self.shared.bulkhead.is_some())
            .field("proxies", &self.shared.proxies)
            .finish()
    }
}

impl InboundLimitsLayer {
    /// The layer for `limits`, reading the client from `proxies` and the tenant from
    /// `tenant_header`; `rejections` gives the counters of refused requests by policy.
    pub fn new(
        limits: InboundLimits,
        proxies: TrustedProxies,
        tenant_header: Option<&str>,
        rejections: impl Fn(&'static str) -> Counter,
    ) -> Result<Self, String> {
        Self::build(limits, proxies, tenant_header, rejections, None)
    }

    /// [`InboundLimitsLayer::new`], with the rate limit counted in Redis when `redis` is given
    /// (the in-process limit stays as the fallback while Redis does not answer).
    pub(crate) fn build(
        limits: InboundLimits,
        proxies: TrustedProxies,
        tenant_header: Option<&str>,
        rejections: impl Fn(&'static str) -> Counter,
        redis: Option<SharedRateLimit>,
    ) -> Result<Self, String> {
        let tenant_header = tenant_header
            .map(|name| {
                HeaderName::try_from(name).map_err(|_| format!("invalid tenant header {name:?}"))
            })
            .transpose()?;
        let layer = Self {
            shared: Arc::new(Shared {
                limiter: limits.rate_limit.map(RateLimiter::new),
                redis,
                redis_failure_logged: AtomicU64::new(u64::MAX),
                started: Instant::now(),
                bulkhead: limits.bulkhead.map(Bulkhead::new),
                proxies,
                tenant_header,
                rate_limited: rejections("rate_limit"),
                bulkhead_full: rejections("bulkhead"),
            }),
        };
        // Outside a tokio runtime (a layer built for a test) the table is not trimmed.
        if layer.tracks_clients()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(forget_idle_clients(Arc::downgrade(&layer.shared)));
        }
        Ok(layer)
    }

    fn tracks_clients(&self) -> bool {
        self.shared
            .limiter
            .as_ref()
            .is_some_and(|l| l.policy().per != RateLimitKey::Global)
    }
}

/// Every 10 s, forgets the clients whose budget is full again, until the layer is gone.
async fn forget_idle_clients(shared: Weak<Shared>) {
    let mut every = tokio::time::interval(Duration::from_secs(10));
    every.tick().await;
    loop {
        every.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if let Some(limiter) = &shared.limiter {
            limiter.forget_idle_clients();
        }
    }
}

impl<S> Layer<S> for InboundLimitsLayer {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Limited<S> {
        Limited {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service [`InboundLimitsLayer`] wraps around each route.
#[derive(Clone)]
pub struct Limited<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for Limited<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limited").finish_non_exhaustive()
    }
}

impl Shared {
    /// Counts one request of `client`: in Redis when it is shared and answers, else here.
    async fn check_shared(
        &self,
        client: &Client,
        redis: &SharedRateLimit,
    ) -> Result<(), RateLimited> {
        match redis.check(client).await {
            Ok(outcome) => outcome,
            Err(error) => {
                let now = self.started.elapsed().as_secs();
                let last = self.redis_failure_logged.load(Ordering::Relaxed);
                if (last == u64::MAX || now >= last + 60)
                    && self
                        .redis_failure_logged
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::warn!(error = %error,
                        "the shared rate limit (REDIS_URL) does not answer; each replica counts on its own until it does");
                }
                self.check_here(client)
            }
        }
    }

    fn check_here(&self, client: &Client) -> Result<(), RateLimited> {
        self.limiter.as_ref().map_or(Ok(()), |l| l.check(client))
    }

    fn client(&self, request: &Request) -> Client {
        let Some(limiter) = &self.limiter else {
            return Client::Instance;
        };
        match limiter.policy().per {
            RateLimitKey::Global => Client::Instance,
            RateLimitKey::Tenant => {
                let tenant = self
                    .tenant_header
                    .as_ref()
                    .and_then(|name| request.headers().get(name))
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default();
                Client::Tenant(tenant.into())
            }
            RateLimitKey::Ip | RateLimitKey::User => {
                let peer = request
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
                Client::Ip(self.proxies.client(peer, request.headers()))
            }
        }
    }
}

impl<S> Service<Request> for Limited<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<
        std::future::Ready<Result<Response, S::Error>>,
        BoxFuture<'static, Result<Response, S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let client = shared.limiter.as_ref().map(|_| shared.client(&request));
        let grpc = is_grpc(&request);
        if shared.redis.is_none()
            && let Some(client) = &client
            && let Err(limited) = shared.check_here(client)
        {
            shared.rate_limited.inc();
            return Either::Left(std::future::ready(Ok(too_many(limited, grpc))));
        }
        // `inner` is the instance `poll_ready` readied; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Either::Right(Box::pin(async move {
            if let (Some(redis), Some(client)) = (&shared.redis, &client)
                && let Err(limited) = shared.check_shared(client, redis).await
            {
                shared.rate_limited.inc();
                return Ok(too_many(limited, grpc));
            }
            let slot = match &shared.bulkhead {
                Some(bulkhead) => match bulkhead.acquire().await {
                    Ok(slot) => Some(slot),
                    Err(full) => {
                        shared.bulkhead_full.inc();
                        return Ok(refusal(
                            Refused::Busy,
                            format!(
                                "the service is busy ({full}); retry after the delay in Retry-After"
                            ),
                            Duration::from_secs(1),
                            grpc,
                        ));
                    }
                },
                None => None,
            };
            let answer = inner.call(request).await?;
            // The slot is held until the body ends: a streamed answer (server streaming, SSE)
            // is still work the bulkhead counts.
            Ok(match slot {
                Some(slot) => {
                    answer.map(|body| axum::body::Body::new(SlotBody { body, _slot: slot }))
                }
                None => answer,
            })
        }))
    }
}

pin_project_lite::pin_project! {
    /// A response body holding its request's bulkhead slot until it is dropped.
    struct SlotBody {
        #[pin]
        body: axum::body::Body,
        _slot: Slot,
    }
}

impl HttpBody for SlotBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Whether `request` is a gRPC call (its refusal is then a gRPC status).
fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// What refused a request.
#[derive(Debug, Clone, Copy)]
enum Refused {
    /// The rate limit: `429`, or gRPC `RESOURCE_EXHAUSTED`.
    RateLimited,
    /// The bulkhead: `503`, or gRPC `UNAVAILABLE`.
    Busy,
}

/// The refusal of a request over the rate limit.
fn too_many(limited: RateLimited, grpc: bool) -> Response {
    refusal(
        Refused::RateLimited,
        "too many requests: the rate limit is reached; retry after the delay in Retry-After",
        limited.retry_after,
        grpc,
    )
}

/// A refusal with `Retry-After` in whole seconds (at least 1): a problem details answer, or
/// for a gRPC call a trailers-only answer with the status (`RESOURCE_EXHAUSTED` or
/// `UNAVAILABLE`), the message and `grpc-retry-pushback-ms` (gRPC's own retry delay).
fn refusal(
    refused: Refused,
    message: impl Into<String>,
    retry_after: Duration,
    grpc: bool,
) -> Response {
    let message = message.into();
    let mut answer = if grpc {
        let code = match refused {
            Refused::RateLimited => "8",
            Refused::Busy => "14",
        };
        let mut answer = Response::new(axum::body::Body::empty());
        let headers = answer.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", HeaderValue::from_static(code));
        // The message is ASCII text of ours, which gRPC's percent-encoding leaves as is.
        if let Ok(value) = HeaderValue::from_str(&message) {
            headers.insert("grpc-message", value);
        }
        let pushback = retry_after.as_millis().max(1).to_string();
        if let Ok(value) = HeaderValue::from_str(&pushback) {
            headers.insert("grpc-retry-pushback-ms", value);
        }
        answer
    } else {
        let status = match refused {
            Refused::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Refused::Busy => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, message).rejected().into_response()
    };
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    answer
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    answer
}

/// The limits component: builds the layer at start-up (reading `ALLFRAME_TRUSTED_PROXIES`)
/// and leaves it for the HTTP host, which puts it on every REST route and the gRPC routes.
#[derive(Debug)]
pub(crate) struct LimitsComponent {
    pub(crate) limits: InboundLimits,
}

impl Component for LimitsComponent {
    fn name(&self) -> &'static str {
        "limits"
    }

    fn start<'a>(self: Box<Self>, startup: &'a mut Startup) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let var = allframe_env::ALLFRAME_TRUSTED_PROXIES;
            let proxies = match startup.env().get_non_empty(var.name) {
                Some(value) => TrustedProxies::parse(&value).map_err(|_| {
                    RuntimeError::from(allframe_env::Invalid {
                        var: var.name,
                        value,
                        reason: "expected IP addresses or CIDR ranges separated by commas, e.g. 10.0.0.0/8,192.168.1.7",
                    })
                })?,
                None => TrustedProxies::default(),
            };
            let metrics = startup
                .get::<ResilienceMetrics>()
                .cloned()
                .unwrap_or_default();
            let redis_url = startup.env().get_non_empty(allframe_env::REDIS_URL.name);
            let redis = match (self.limits.rate_limit, redis_url) {
                (Some(policy), Some(url)) => {
                    shared_limit(&url, startup.ctx().settings().name, policy)?
                }
                _ => None,
            };
            let layer = InboundLimitsLayer::build(
                self.limits,
                proxies,
                startup.tenant_header(),
                |policy| metrics.rejections(policy, "inbound"),
                redis,
            )?;
            startup.insert(layer);
            Ok(())
        })
    }
}

/// The rate limit counted in the Redis at `url` (`REDIS_URL`).
#[cfg(feature = "redis")]
fn shared_limit(
    url: &str,
    service: &str,
    policy: RateLimitPolicy,
) -> Result<Option<SharedRateLimit>, RuntimeError> {
    let limit = SharedRateLimit::new(url.trim(), service, policy).map_err(|_| {
        RuntimeError::InvalidEnv {
            var: allframe_env::REDIS_URL.name,
            value: "(hidden: it may hold a password)".to_owned(),
            reason: "expected a Redis URL such as redis://host:6379",
        }
    })?;
    tracing::info!("the rate limit is counted in Redis (REDIS_URL), shared by every replica");
    Ok(Some(limit))
}

/// Without the `redis` feature the limit stays per replica; ignite turns the feature on for a
/// service with a rate limit, so only a hand-built service gets here.
#[cfg(not(feature = "redis"))]
fn shared_limit(
    _url: &str,
    _service: &str,
    _policy: RateLimitPolicy,
) -> Result<Option<SharedRateLimit>, RuntimeError> {
    tracing::warn!(
        "REDIS_URL is set, but this build of allframe has no `redis` feature: the rate limit is counted per replica"
    );
    Ok(None)
}

/// Stands for the Redis limit in builds without the `redis` feature: there is never one.
#[cfg(not(feature = "redis"))]
#[derive(Debug, Clone, Copy)]
pub(crate) enum SharedRateLimit {}

#[cfg(not(feature = "redis"))]
impl SharedRateLimit {
    async fn check(&self, _: &Client) -> Result<Result<(), RateLimited>, std::convert::Infallible> {
        match *self {}
    }
}

#[cfg(test)]
#[path = "inbound_tests.rs"]
mod tests;
