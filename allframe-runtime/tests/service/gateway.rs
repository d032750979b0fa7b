//! A gateway service run in-process: its provider client is built at start-up from
//! `<NAME>_URL`, handlers reach it through the context, the caller's idempotency key travels
//! to the provider, and the provider's breaker is exported with the service's metrics.
#![cfg(all(feature = "gateway", feature = "sqlite"))]

use std::sync::{Arc, Mutex};

use crate::launch_env::{stateless_settings, test_env};
use allframe_runtime::__private::{Launcher, MetricsSettings, RunningService, ServiceSettings};
use allframe_runtime::axum::http::{HeaderMap, StatusCode};
use allframe_runtime::axum::routing::post;
use allframe_runtime::error::{ApiError, RuntimeError};
use allframe_runtime::gateway::{
    Client, GatewaySettings, Provider, ProviderRequest, ProviderSettings, Providers,
};
use allframe_runtime::{BoxError, Ctx, RestApi, Router, Service};

static SETTINGS: ServiceSettings = ServiceSettings {
    archetype: "gateway",
    ..stateless_settings("shop", "payment-gateway")
};

static PROVIDERS: [ProviderSettings; 1] = [ProviderSettings::new("stripe")];

/// What the user writes per provider: typed calls over the runtime's provider client.
struct Stripe(Provider);

impl Client for Stripe {
    fn new(provider: Provider) -> Self {
        Self(provider)
    }
}

impl Stripe {
    async fn charge(&self, key: &str) -> Result<StatusCode, ApiError> {
        let request = ProviderRequest::post("/charges").idempotency_key(key);
        let answer =
            self.0.send(request).await.map_err(|error| {
                ApiError::new(StatusCode::BAD_GATEWAY, format!("stripe: {error}"))
            })?;
        Ok(answer.status)
    }
}

struct PaymentGateway;

impl Service for PaymentGateway {
    async fn init(_: &Ctx) -> Result<Self, BoxError> {
        Ok(Self)
    }
}

impl RestApi for PaymentGateway {
    fn routes() -> Router<Self> {
        Router::new().route("/payments", post(pay))
    }
}

async fn pay(cx: Ctx, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request("an Idempotency-Key header is required"))?;
    let stripe: Stripe = cx
        .get::<Providers>()
        .and_then(|providers| providers.client("stripe"))
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no stripe client"))?;
    stripe.charge(key).await
}

/// A provider on loopback answering 201 and recording the keys it got.
async fn stripe_stub() -> (String, Arc<Mutex<Vec<String>>>) {
    let keys = Arc::new(Mutex::new(Vec::new()));
    let seen = keys.clone();
    let app = allframe_runtime::axum::Router::new().route(
        "/charges",
        post(move |headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                let key = headers["idempotency-key"]
                    .to_str()
                    .expect("ascii")
                    .to_owned();
                seen.lock().expect("keys").push(key);
                StatusCode::CREATED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { allframe_runtime::axum::serve(listener, app).await });
    (format!("http://{addr}"), keys)
}

async fn start(
    dir: &std::path::Path,
    extra: &[(&str, &str)],
) -> Result<RunningService, RuntimeError> {
    Launcher::<PaymentGateway>::new(&SETTINGS)
        .metrics(MetricsSettings { port: None })
        .gateway(GatewaySettings {
            providers: &PROVIDERS,
        })
        .env(test_env(dir, extra))
        .start()
        .await
}

#[tokio::test]
async fn handlers_call_the_provider_with_the_callers_key_and_its_breaker_is_exported() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (url, keys) = stripe_stub().await;
    let running = start(temp.path(), &[("STRIPE_URL", &url)])
        .await
        .expect("starts");
    let client = reqwest::Client::new();
    let answer = client
        .post(format!("http://{}/payments", running.rest_addr()))
        .header("Idempotency-Key", "order-7")
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status(), 201, "the provider's answer");
    assert_eq!(keys.lock().expect("keys").as_slice(), ["order-7"]);
    let text = client
        .get(format!("http://{}/metrics", running.rest_addr()))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    assert!(
        text.contains("allframe_breaker_state{service=\"payment-gateway\",target=\"stripe\"} 0"),
        "{text}"
    );
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test]
async fn a_provider_without_its_url_fails_start_up_naming_the_variable() {
    let temp = tempfile::tempdir().expect("temp dir");
    let Err(error) = start(temp.path(), &[]).await else {
        panic!("a gateway without STRIPE_URL started");
    };
    let text = format!("{error}: {:?}", std::error::Error::source(&error));
    assert!(text.contains("STRIPE_URL"), "{text}");
}
