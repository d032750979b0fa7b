//! Provider clients against a real HTTP server on loopback that fails on demand.

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::any;

use super::*;
use crate::resilience::BreakerState;

/// What the provider answers next: a status with `Retry-After` seconds, or a delay first.
#[derive(Debug, Clone, Copy)]
enum Next {
    Status(u16, Option<u64>),
    Sleep(u64),
}

/// The provider's script (what it answers, in order; 200 once it runs out) and what it saw.
#[derive(Default)]
struct Script {
    answers: Mutex<VecDeque<Next>>,
    keys: Mutex<Vec<Option<String>>>,
}

async fn answer(State(script): State<Arc<Script>>, headers: HeaderMap) -> axum::response::Response {
    let key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().expect("ascii").to_owned());
    script.keys.lock().expect("keys").push(key);
    let next = script.answers.lock().expect("answers").pop_front();
    match next.unwrap_or(Next::Status(200, None)) {
        Next::Status(status, retry_after) => {
            let status = StatusCode::from_u16(status).expect("status");
            let mut answer = (status, r#"{"id":"ch_1"}"#).into_response();
            if let Some(seconds) = retry_after {
                answer
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from(seconds));
            }
            answer
        }
        Next::Sleep(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            (StatusCode::OK, "late").into_response()
        }
    }
}

/// Starts the scripted provider; returns its base URL and script.
async fn provider(answers: &[Next]) -> (String, Arc<Script>) {
    let script = Arc::new(Script::default());
    script.answers.lock().expect("answers").extend(answers);
    let app = axum::Router::new()
        .route("/v1/{*rest}", any(answer))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), script)
}

fn settings() -> ProviderSettings {
    ProviderSettings {
        circuit_breaker: BreakerPolicy {
            failure_threshold: 10,
            success_threshold: 1,
            timeout_ms: 60_000,
        },
        retry: RetryPolicy {
            max_attempts: 3,
            initial_interval_ms: 1,
            max_interval_ms: 1_000,
            multiplier: 2.0,
            idempotent_only: true,
        },
        timeout_ms: 2_000,
        ..ProviderSettings::new("stripe")
    }
}

fn charge(key: Option<&str>) -> ProviderRequest {
    let request = ProviderRequest::post("/charges")
        .json(&serde_json::json!({ "amount": 1250 }))
        .expect("json");
    match key {
        Some(key) => request.idempotency_key(key),
        None => request,
    }
}

#[tokio::test]
async fn a_keyed_call_is_retried_with_the_same_key_until_it_succeeds() {
    let (url, script) = provider(&[Next::Status(503, Some(0)), Next::Status(502, None)]).await;
    let stripe = Provider::new(settings(), &url, None).expect("client");
    let answer = stripe
        .send(charge(Some("order-42")))
        .await
        .expect("charged");
    assert_eq!((answer.status, answer.attempts), (StatusCode::OK, 3));
    let body: serde_json::Value = answer.json().expect("json");
    assert_eq!(body["id"], "ch_1");
    let keys = script.keys.lock().expect("keys").clone();
    assert_eq!(
        keys,
        vec![Some("order-42".to_owned()); 3],
        "the key on every attempt"
    );
}

#[tokio::test]
async fn retries_stop_at_the_budget_and_unkeyed_posts_are_not_retried() {
    let (url, script) = provider(&[Next::Status(500, None); 5]).await;
    let stripe = Provider::new(settings(), &url, None).expect("client");
    let error = stripe.send(charge(Some("k1"))).await.expect_err("500s");
    assert!(
        matches!(error, ProviderError::ServerError { attempts: 3, ref response, .. } if response.status == 500),
        "{error}"
    );
    assert_eq!(script.keys.lock().expect("keys").len(), 3);

    let error = stripe.send(charge(None)).await.expect_err("500");
    assert!(
        matches!(error, ProviderError::ServerError { attempts: 1, .. }),
        "{error}"
    );
    assert_eq!(
        script.keys.lock().expect("keys").len(),
        4,
        "one attempt without a key"
    );
}

#[tokio::test]
async fn other_client_errors_come_back_as_answers_without_a_retry() {
    let (url, script) = provider(&[Next::Status(402, None)]).await;
    let stripe = Provider::new(settings(), &url, None).expect("client");
    let answer = stripe.send(charge(Some("k2"))).await.expect("an answer");
    assert_eq!(
        (answer.status, answer.attempts),
        (StatusCode::PAYMENT_REQUIRED, 1)
    );
    assert_eq!(script.keys.lock().expect("keys").len(), 1);
    assert_eq!(
        stripe.breaker().state(),
        BreakerState::Closed,
        "a 4xx is no failure"
    );
}

#[tokio::test]
async fn failures_open_the_breaker_and_an_open_breaker_sends_nothing() {
    let (url, script) = provider(&[Next::Status(500, None); 4]).await;
    let settings = ProviderSettings {
        circuit_breaker: BreakerPolicy {
            failure_threshold: 2,
            success_threshold: 1,
            timeout_ms: 60_000,
        },
        ..settings()
    };
    let stripe = Provider::new(settings, &url, None).expect("client");
    let error = stripe.send(charge(Some("k3"))).await.expect_err("open");
    assert!(
        matches!(error, ProviderError::Open { .. }),
        "the third attempt met the open circuit: {error}"
    );
    assert_eq!(script.keys.lock().expect("keys").len(), 2);
    assert_eq!(stripe.breaker().state(), BreakerState::Open);
    let error = stripe
        .send(ProviderRequest::get("/balance"))
        .await
        .expect_err("open");
    assert!(matches!(error, ProviderError::Open { .. }), "{error}");
    assert_eq!(script.keys.lock().expect("keys").len(), 2, "nothing sent");
}

#[tokio::test]
async fn a_slow_provider_times_out_per_attempt() {
    let (url, _script) = provider(&[Next::Sleep(2_000), Next::Sleep(2_000)]).await;
    let settings = ProviderSettings {
        timeout_ms: 100,
        retry: RetryPolicy {
            max_attempts: 2,
            ..settings().retry
        },
        ..settings()
    };
    let stripe = Provider::new(settings, &url, None).expect("client");
    let error = stripe
        .send(ProviderRequest::get("/balance"))
        .await
        .expect_err("timeout");
    assert!(
        matches!(error, ProviderError::Timeout { attempts: 2, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_key_that_cannot_be_a_header_is_a_400_before_anything_is_sent() {
    let (url, script) = provider(&[]).await;
    let stripe = Provider::new(settings(), &url, None).expect("client");
    let error = stripe
        .send(charge(Some("bad\nkey")))
        .await
        .expect_err("refused");
    assert!(matches!(error, ProviderError::InvalidKey { .. }), "{error}");
    assert_eq!(ApiError::from(error).status(), StatusCode::BAD_REQUEST);
    assert!(script.keys.lock().expect("keys").is_empty(), "nothing sent");
}

#[tokio::test]
async fn the_base_url_comes_from_the_providers_variable() {
    assert_eq!(url_var("legacy-erp"), "LEGACY_ERP_URL");
    let missing = Provider::from_env(settings(), &Environment::from_pairs([("X", "y")]), None)
        .expect_err("unset");
    assert!(missing.to_string().contains("STRIPE_URL"), "{missing}");
    let env = Environment::from_pairs([("STRIPE_URL", "ftp://example.com")]);
    let bad = Provider::from_env(settings(), &env, None).expect_err("scheme");
    assert!(matches!(bad, ProviderError::InvalidUrl { .. }), "{bad}");
    let (url, script) = provider(&[]).await;
    let env = Environment::from_pairs([("STRIPE_URL", url)]);
    let stripe = Provider::from_env(settings(), &env, None).expect("client");
    let answer = stripe
        .send(ProviderRequest::get("/balance"))
        .await
        .expect("ok");
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(script.keys.lock().expect("keys").as_slice(), [None]);
}
