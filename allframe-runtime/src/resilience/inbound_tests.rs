use std::sync::Arc;

use axum::body::Body;
use axum::routing::get;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use super::*;

fn counters() -> (Counter, Counter, impl Fn(&'static str) -> Counter) {
    let (rate, bulk) = (Counter::default(), Counter::default());
    let (r, b) = (rate.clone(), bulk.clone());
    (rate, bulk, move |policy| match policy {
        "rate_limit" => r.clone(),
        _ => b.clone(),
    })
}

fn request(peer: &str, forwarded: Option<&str>) -> Request {
    let mut request = Request::builder().uri("/work");
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    let mut request = request.body(Body::empty()).expect("request");
    let peer: SocketAddr = format!("{peer}:40000").parse().expect("peer");
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

async fn status(router: &axum::Router, request: Request) -> Response {
    router.clone().oneshot(request).await.expect("infallible")
}

fn limited_router(limits: InboundLimits, proxies: &str) -> (axum::Router, Counter, Counter) {
    let (rate, bulk, rejections) = counters();
    let layer = InboundLimitsLayer::new(
        limits,
        TrustedProxies::parse(proxies).expect("proxies"),
        None,
        rejections,
    )
    .expect("layer");
    let router = axum::Router::new()
        .route("/work", get(|| async { "done" }))
        .route_layer(layer);
    (router, rate, bulk)
}

#[tokio::test]
async fn over_the_rate_limit_requests_get_429_with_retry_after() {
    let limits = InboundLimits {
        bulkhead: None,
        rate_limit: Some(RateLimitPolicy {
            rps: 1,
            burst: 2,
            per: RateLimitKey::Global,
        }),
    };
    let (router, rate, _) = limited_router(limits, "");
    for _ in 0..2 {
        let ok = status(&router, request("10.0.0.1", None)).await;
        assert_eq!(ok.status(), StatusCode::OK);
    }
    let refused = status(&router, request("10.0.0.2", None)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
    assert_eq!(
        refused.headers()[header::CONTENT_TYPE],
        crate::error::PROBLEM_JSON
    );
    assert_eq!(rate.get(), 1);
}

#[tokio::test]
async fn per_ip_budgets_believe_forwarded_for_only_from_trusted_proxies() {
    let limits = InboundLimits {
        bulkhead: None,
        rate_limit: Some(RateLimitPolicy {
            rps: 1,
            burst: 1,
            per: RateLimitKey::Ip,
        }),
    };
    let (router, _, _) = limited_router(limits, "10.1.0.0/16");
    let via_proxy = |client: &str| request("10.1.2.3", Some(client));
    let first = status(&router, via_proxy("203.0.113.7")).await;
    assert_eq!(first.status(), StatusCode::OK);
    let other_client = status(&router, via_proxy("203.0.113.8")).await;
    assert_eq!(other_client.status(), StatusCode::OK, "a budget per client");
    let again = status(&router, via_proxy("203.0.113.7")).await;
    assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);

    let untrusted = status(&router, request("198.51.100.1", Some("203.0.113.9"))).await;
    assert_eq!(untrusted.status(), StatusCode::OK);
    let spoofed = status(&router, request("198.51.100.1", Some("203.0.113.10"))).await;
    assert_eq!(
        spoofed.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "an untrusted peer's X-Forwarded-For is ignored: both count for the peer"
    );
}

#[tokio::test]
async fn beyond_the_bulkhead_queue_requests_get_503_with_retry_after() {
    let (_, bulk, rejections) = counters();
    let limits = InboundLimits {
        bulkhead: Some(BulkheadPolicy {
            max_concurrent: 1,
            max_queue: 1,
        }),
        rate_limit: None,
    };
    let layer = InboundLimitsLayer::new(limits, TrustedProxies::default(), None, rejections)
        .expect("layer");
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(Semaphore::new(0));
    let router = axum::Router::new()
        .route(
            "/work",
            get({
                let (gate, entered) = (gate.clone(), entered.clone());
                move || async move {
                    entered.add_permits(1);
                    gate.acquire().await.expect("gate").forget();
                    "done"
                }
            }),
        )
        .route_layer(layer);
    let running = tokio::spawn(status_of(router.clone()));
    entered.acquire().await.expect("running").forget();
    let queued = tokio::spawn(status_of(router.clone()));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let refused = status(&router, request("10.0.0.1", None)).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
    assert_eq!(bulk.get(), 1);
    gate.add_permits(2);
    assert_eq!(running.await.expect("task"), StatusCode::OK);
    assert_eq!(
        queued.await.expect("task"),
        StatusCode::OK,
        "the queued one ran"
    );
}

#[tokio::test]
async fn a_streamed_answer_holds_its_bulkhead_slot_until_its_body_ends() {
    let (_, bulk, rejections) = counters();
    let limits = InboundLimits {
        bulkhead: Some(BulkheadPolicy {
            max_concurrent: 1,
            max_queue: 0,
        }),
        rate_limit: None,
    };
    let layer = InboundLimitsLayer::new(limits, TrustedProxies::default(), None, rejections)
        .expect("layer");
    let endless = || async {
        Body::from_stream(futures_util::stream::pending::<Result<Bytes, std::io::Error>>())
    };
    let router = axum::Router::new()
        .route("/work", get(endless))
        .route_layer(layer);
    let streaming = status(&router, request("10.0.0.1", None)).await;
    assert_eq!(streaming.status(), StatusCode::OK);
    let refused = status(&router, request("10.0.0.1", None)).await;
    assert_eq!(
        refused.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "still streaming"
    );
    assert_eq!(bulk.get(), 1);
    drop(streaming);
    let next = status(&router, request("10.0.0.1", None)).await;
    assert_eq!(
        next.status(),
        StatusCode::OK,
        "the body ended: its slot is free"
    );
}

async fn status_of(router: axum::Router) -> StatusCode {
    status(&router, request("10.0.0.1", None)).await.status()
}

#[test]
fn the_client_is_the_nearest_untrusted_forwarded_address() {
    let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7").expect("proxies");
    let headers = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_str(value).expect("value"),
        );
        headers
    };
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    let chain = headers("1.1.1.1, 2.2.2.2, 10.0.0.5");
    assert_eq!(proxies.client(ip("192.168.1.7"), &chain), ip("2.2.2.2"));
    assert_eq!(proxies.client(ip("8.8.8.8"), &chain), ip("8.8.8.8"));
    let all_trusted = headers("10.0.0.9, 10.0.0.5");
    assert_eq!(proxies.client(ip("10.0.0.1"), &all_trusted), ip("10.0.0.9"));
    let garbage = headers("1.1.1.1, nonsense, 10.0.0.5");
    assert_eq!(proxies.client(ip("10.0.0.1"), &garbage), ip("10.0.0.5"));
    assert!(TrustedProxies::parse("10.0.0.0/33").is_err());

    let ported = headers("1.1.1.1:5678, [2001:db8::1]:443");
    assert_eq!(proxies.client(ip("10.0.0.1"), &ported), ip("2001:db8::1"));
    let mapped_peer = ip("::ffff:10.0.0.1");
    assert_eq!(
        proxies.client(mapped_peer, &chain),
        ip("2.2.2.2"),
        "a server bound to :: sees IPv4 proxies as mapped IPv6"
    );
    let mut odd_bytes = HeaderMap::new();
    odd_bytes.insert(
        "x-forwarded-for",
        HeaderValue::from_bytes(b"1.1.1.1\xff, 2.2.2.2").expect("value"),
    );
    assert_eq!(
        proxies.client(ip("10.0.0.1"), &odd_bytes),
        ip("2.2.2.2"),
        "a client's odd bytes cannot hide the hop the proxy appended"
    );
}
