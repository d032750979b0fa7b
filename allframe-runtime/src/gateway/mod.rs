//! Provider clients of a `gateway` service (`[services.integrations]`, feature `gateway`): one
//! [`Provider`] per name in `providers`, calling `<PROVIDER>_URL` over HTTP with the service's
//! circuit breaker, retry policy and a per-attempt timeout around every call, and the caller's
//! idempotency key forwarded on every attempt, so a provider applies a retried call once.
//!
//! What is retried: with `idempotent_only` (the default), only safe methods and calls carrying
//! an idempotency key; then 429 and 503 after their `Retry-After`, 500, 502 and 504, transport
//! errors and timeouts, until `max_attempts`. Another 4xx is the provider's answer and comes
//! back as it is. What opens the circuit: transport errors, timeouts and 5xx answers.

mod component;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::de::DeserializeOwned;

pub(crate) use component::GatewayComponent;
pub use component::{Client, GatewaySettings, Providers, client};

use crate::env::Environment;
use crate::error::ApiError;
use crate::resilience::{
    BreakerError, BreakerPolicy, CircuitBreaker, ResilienceMetrics, RetryPolicy, Verdict,
    http_verdict,
};

/// One provider of `[services.integrations] providers`, as the macro bakes it in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProviderSettings {
    /// The provider's name in the file, e.g. `"stripe"`; `<NAME>_URL` is its base URL.
    pub name: &'static str,
    /// The service's circuit breaker (`[services.integrations] circuit_breaker` over
    /// `[resilience]`).
    pub circuit_breaker: BreakerPolicy,
    /// The service's retry policy (`[services.integrations] retry` over `[resilience]`).
    pub retry: RetryPolicy,
    /// How long one attempt may take, in ms (connecting, sending, reading the answer).
    pub timeout_ms: u64,
    /// The header carrying the idempotency key to the provider.
    pub idempotency_header: &'static str,
}

impl ProviderSettings {
    /// How long one attempt may take by default: 10 s.
    pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
    /// The header carrying the idempotency key by default (Stripe's name for it, and the
    /// IETF draft's).
    pub const DEFAULT_IDEMPOTENCY_HEADER: &'static str = "Idempotency-Key";

    /// The defaults for `name`: built-in breaker and retry, [`Self::DEFAULT_TIMEOUT_MS`] per
    /// attempt, the key in [`Self::DEFAULT_IDEMPOTENCY_HEADER`].
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            circuit_breaker: BreakerPolicy::DEFAULT,
            retry: RetryPolicy::DEFAULT,
            timeout_ms: Self::DEFAULT_TIMEOUT_MS,
            idempotency_header: Self::DEFAULT_IDEMPOTENCY_HEADER,
        }
    }
}

/// The environment variable holding a provider's base URL: `stripe` → `STRIPE_URL`,
/// `legacy-erp` → `LEGACY_ERP_URL`.
pub fn url_var(provider: &str) -> String {
    allframe_env::provider_url(provider)
}

/// Why a provider call gave no usable answer, or a client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The circuit to the provider is open: the call was not made.
    #[error("{provider}: the circuit is open after repeated failures; calls resume in {} ms", retry_after.as_millis())]
    Open {
        /// The provider.
        provider: &'static str,
        /// When the breaker lets a probe through.
        retry_after: Duration,
    },
    /// Every attempt failed before an answer (connection refused, reset, TLS).
    #[error("{provider}: no answer after {attempts} attempt(s): {source}")]
    Transport {
        /// The provider.
        provider: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        source: reqwest::Error,
    },
    /// The last attempt took longer than the timeout.
    #[error("{provider}: no answer within {} ms, {attempts} attempt(s)", timeout.as_millis())]
    Timeout {
        /// The provider.
        provider: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The per-attempt timeout.
        timeout: Duration,
    },
    /// The provider answered 5xx to the last attempt.
    #[error("{provider} answered {} after {attempts} attempt(s)", response.status)]
    ServerError {
        /// The provider.
        provider: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last answer.
        response: Box<ProviderResponse>,
    },
    /// The idempotency key cannot travel in a header (a control character, non-ASCII bytes).
    #[error("the idempotency key for {provider} is not a header value: {reason}")]
    InvalidKey {
        /// The provider.
        provider: &'static str,
        /// Why.
        reason: String,
    },
    /// `<PROVIDER>_URL` is not set.
    #[error(
        "{var} is not set: the base URL of provider {provider} (e.g. https://api.{provider}.com)"
    )]
    MissingUrl {
        /// The provider.
        provider: &'static str,
        /// The variable.
        var: String,
    },
    /// `<PROVIDER>_URL` is not an http(s) URL, or the client could not be built.
    #[error("{var} is not a usable http(s) URL: {reason}")]
    InvalidUrl {
        /// The variable.
        var: String,
        /// Why.
        reason: String,
    },
}

/// A provider failure as the answer of the request that needed it: an open circuit is `503`,
/// a timeout `504`, no answer or a 5xx `502`, a key that cannot be sent `400` (the message
/// says which provider and why).
impl From<ProviderError> for ApiError {
    fn from(error: ProviderError) -> Self {
        let status = match &error {
            ProviderError::Open { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProviderError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProviderError::Transport { .. } | ProviderError::ServerError { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ProviderError::InvalidKey { .. } => StatusCode::BAD_REQUEST,
            ProviderError::MissingUrl { .. } | ProviderError::InvalidUrl { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, error.to_string())
    }
}

/// One call to a provider: a method, a path below its base URL, a body, headers and the
/// idempotency key (sent on every attempt).
#[derive(Debug, Clone)]
pub struct ProviderRequest {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    idempotency_key: Option<String>,
}

impl ProviderRequest {
    /// A call of `method` to `path` (relative to the provider's base URL).
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            headers: HeaderMap::new(),
            body: None,
            idempotency_key: None,
        }
    }

    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    /// `POST path`.
    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }

    /// A JSON body (and its content type).
    pub fn json(mut self, body: &impl serde::Serialize) -> Result<Self, serde_json::Error> {
        self.body = Some(serde_json::to_vec(body)?);
        self.headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(self)
    }

    /// A header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// The idempotency key the provider dedups by: the same on every attempt. Pass the key of
    /// the request being served (or a saga's step id) so a retried call is applied once.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// A provider's answer.
#[derive(Debug, Clone)]
pub struct ProviderResponse {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Vec<u8>,
    /// The attempts it took.
    pub attempts: u32,
}

impl ProviderResponse {
    /// The body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// A client of one provider. Cheap to clone: clones share the connection pool and breaker.
#[derive(Clone)]
pub struct Provider {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ProviderSettings,
    base: reqwest::Url,
    http: reqwest::Client,
    breaker: CircuitBreaker,
    key_header: HeaderName,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.inner.settings.name)
            .field("base", &self.inner.base.as_str())
            .field("breaker", &self.inner.breaker.state())
            .finish()
    }
}

/// What one attempt ended with, before the retry policy looks at it.
enum Attempt {
    Answer(ProviderResponse),
    Transport(reqwest::Error),
    Timeout,
}

impl Provider {
    /// A client of `settings.name` at `base_url`, whose breaker is exported through `metrics`
    /// when given.
    pub fn new(
        settings: ProviderSettings,
        base_url: &str,
        metrics: Option<&ResilienceMetrics>,
    ) -> Result<Self, ProviderError> {
        let var = url_var(settings.name);
        let invalid = |reason: String| ProviderError::InvalidUrl {
            var: var.clone(),
            reason,
        };
        let mut base = reqwest::Url::parse(base_url.trim()).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(format!("the scheme is {:?}", base.scheme())));
        }
        // A base without a trailing slash would lose its last segment when joined.
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let key_header = HeaderName::try_from(settings.idempotency_header)
            .map_err(|e| invalid(format!("idempotency header: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(settings.timeout_ms))
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        let breaker = match metrics {
            Some(metrics) => metrics.breaker(settings.name, settings.circuit_breaker),
            None => CircuitBreaker::new(settings.name, settings.circuit_breaker),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                base,
                http,
                breaker,
                key_header,
            }),
        })
    }

    /// A client of `settings.name` at `<NAME>_URL` from `env`.
    pub fn from_env(
        settings: ProviderSettings,
        env: &Environment,
        metrics: Option<&ResilienceMetrics>,
    ) -> Result<Self, ProviderError> {
        let var = url_var(settings.name);
        let url = env
            .get_non_empty(&var)
            .ok_or_else(|| ProviderError::MissingUrl {
                provider: settings.name,
                var: var.clone(),
            })?;
        Self::new(settings, &url, metrics)
    }

    /// The provider's name.
    pub fn name(&self) -> &'static str {
        self.inner.settings.name
    }

    /// The breaker guarding the provider.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.inner.breaker
    }

    /// Sends `request` through the breaker, retrying as the policy allows; see the module docs.
    pub async fn send(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        let inner = &self.inner;
        let mut headers = request.headers.clone();
        if let Some(key) = &request.idempotency_key {
            let value = HeaderValue::from_str(key).map_err(|e| ProviderError::InvalidKey {
                provider: inner.settings.name,
                reason: e.to_string(),
            })?;
            headers.insert(inner.key_header.clone(), value);
        }
        let url = inner
            .base
            .join(request.path.trim_start_matches('/'))
            .map_err(|e| ProviderError::InvalidUrl {
                var: url_var(inner.settings.name),
                reason: format!("{:?} does not join it: {e}", request.path),
            })?;
        let retryable = inner.settings.retry.may_retry(
            &request.method,
            &headers,
            inner.settings.idempotency_header,
        );
        let policy = RetryPolicy {
            max_attempts: if retryable {
                inner.settings.retry.max_attempts
            } else {
                1
            },
            ..inner.settings.retry
        };
        let attempts = AtomicU32::new(0);
        let outcome = policy
            .run(
                |number| {
                    attempts.store(number, Ordering::Relaxed);
                    let call = self.attempt(&request, &url, &headers, number);
                    inner
                        .breaker
                        .call_classified(call, |attempt| match attempt {
                            Attempt::Answer(answer) => answer.status.is_server_error(),
                            Attempt::Transport(_) | Attempt::Timeout => true,
                        })
                },
                |outcome| match outcome {
                    Ok(Attempt::Answer(answer))
                    | Err(BreakerError::Call(Attempt::Answer(answer))) => {
                        http_verdict(answer.status, &answer.headers)
                    }
                    Ok(_) | Err(BreakerError::Call(_)) => Verdict::Retry,
                    Err(BreakerError::Open(_)) => Verdict::Final,
                },
            )
            .await;
        let attempts = attempts.load(Ordering::Relaxed);
        let provider = inner.settings.name;
        let attempt = match outcome {
            Ok(attempt) | Err(BreakerError::Call(attempt)) => attempt,
            Err(BreakerError::Open(open)) => {
                return Err(ProviderError::Open {
                    provider,
                    retry_after: open.retry_after,
                });
            }
        };
        match attempt {
            Attempt::Answer(response) if response.status.is_server_error() => {
                Err(ProviderError::ServerError {
                    provider,
                    attempts,
                    response: Box::new(response),
                })
            }
            Attempt::Answer(response) => Ok(response),
            Attempt::Transport(source) => Err(ProviderError::Transport {
                provider,
                attempts,
                source,
            }),
            Attempt::Timeout => Err(ProviderError::Timeout {
                provider,
                attempts,
                timeout: Duration::from_millis(inner.settings.timeout_ms),
            }),
        }
    }

    /// One attempt: send and read the whole answer within the timeout.
    async fn attempt(
        &self,
        request: &ProviderRequest,
        url: &reqwest::Url,
        headers: &HeaderMap,
        number: u32,
    ) -> Attempt {
        let inner = &self.inner;
        let mut builder = inner
            .http
            .request(request.method.clone(), url.clone())
            .headers(headers.clone());
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let exchange = async {
            let answer = builder.send().await?;
            let (status, headers) = (answer.status(), answer.headers().clone());
            let body = answer.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(ProviderResponse {
                status,
                headers,
                body,
                attempts: number,
            })
        };
        match tokio::time::timeout(Duration::from_millis(inner.settings.timeout_ms), exchange).await
        {
            Ok(Ok(response)) => Attempt::Answer(response),
            Ok(Err(error)) => {
                tracing::debug!(provider = inner.settings.name, attempt = number, error = %error, "provider call failed");
                Attempt::Transport(error)
            }
            Err(_) => {
                tracing::debug!(
                    provider = inner.settings.name,
                    attempt = number,
                    "provider call timed out"
                );
                Attempt::Timeout
            }
        }
    }
}

#[cfg(test)]
mod tests;
