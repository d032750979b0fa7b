//! The tower layer that makes unsafe requests carrying an idempotency key run at most once.
//!
//! For `POST`, `PUT`, `PATCH` and `DELETE` requests with the key header, the layer validates
//! the key, buffers and fingerprints the request, and claims the key in the store *before* the
//! handler runs. Only the claimant runs; everyone else is answered from the store: a replay of
//! the stored response, 409 while the first request is in flight, 422 when the fingerprint
//! differs. An answer marked [`Rejected`] (the request was refused before its handler ran)
//! releases the key instead of being stored, so a corrected retry runs. If the store cannot be
//! reached the answer is 503 and nothing runs. Safe methods and requests without the header
//! pass through untouched. This module holds the HTTP policy; the stores only record.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse as _, Response};
use futures_util::StreamExt as _;
use futures_util::future::{BoxFuture, Either};
use tower::{Layer, Service};

use super::fingerprint::{Fingerprint, KeyError, parse_key, parse_tenant, scoped_id};
use super::store::{
    Begin, Claim, Clock, IdempotencyStore, Lock, StoreError, StoredResponse, SystemClock,
};
use super::{
    BODY_OMITTED_HEADER, DEFAULT_LEASE, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_STORE_TIMEOUT, IdempotencyError, REPLAYED_HEADER, STORED_HEADERS,
};
use crate::error::ApiError;
use crate::extract::Rejected;

/// How the layer behaves. Build it with [`IdempotencyConfig::new`] and adjust the fields.
#[derive(Debug, Clone)]
pub struct IdempotencyConfig {
    /// The service name: the first part of every key's scope.
    pub service: String,
    /// The request header carrying the key (e.g. `Idempotency-Key`).
    pub key_header: HeaderName,
    /// The tenant header (`[tenant] header` when tenancy is on): when set and present on a
    /// request, keys are scoped per tenant id as well. `None` (the default) scopes keys by
    /// service only, whatever headers a request carries.
    pub tenant_header: Option<HeaderName>,
    /// How long a stored response is replayed, counted from when it was stored.
    pub ttl: Duration,
    /// How long an in-flight claim holds without being extended. While the handler runs, the
    /// layer extends it every third of this; if the process dies, the key is free again after
    /// at most this long.
    pub lease: Duration,
    /// Larger request bodies are refused with 413 when they carry a key (they must be buffered
    /// to be fingerprinted).
    pub max_request_bytes: usize,
    /// Larger response bodies are sent but not stored: a replay then has the status and
    /// headers, an empty body and `Idempotent-Body-Omitted: true`.
    pub max_response_bytes: usize,
    /// How long one store operation may take before the request is answered 503.
    pub store_timeout: Duration,
}

impl IdempotencyConfig {
    /// The defaults for `service`, reading keys from `key_header`: 24 h TTL, 60 s lease, no
    /// tenant scoping, 2 MiB requests, 1 MiB stored responses, 5 s store timeout.
    pub fn new(service: impl Into<String>, key_header: &str) -> Result<Self, IdempotencyError> {
        let key_header = HeaderName::from_bytes(key_header.as_bytes()).map_err(|_| {
            IdempotencyError::InvalidHeader {
                header: key_header.to_owned(),
            }
        })?;
        Ok(Self {
            service: service.into(),
            key_header,
            tenant_header: None,
            ttl: Duration::from_secs(24 * 3600),
            lease: DEFAULT_LEASE,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            store_timeout: DEFAULT_STORE_TIMEOUT,
        })
    }

    /// Scopes keys per tenant id, read from `header` (the `[tenant] header` of the file).
    pub fn with_tenant_header(mut self, header: &str) -> Result<Self, IdempotencyError> {
        let header = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
            IdempotencyError::InvalidHeader {
                header: header.to_owned(),
            }
        })?;
        self.tenant_header = Some(header);
        Ok(self)
    }
}

/// The idempotency layer; apply it to an axum router with `.layer(..)`.
///
/// ```no_run
/// # async fn demo(db: &allframe_runtime::Database) -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use allframe_runtime::idempotency::{IdempotencyConfig, IdempotencyLayer, SqlStore};
/// let store = SqlStore::open(db).await?;
/// let layer = IdempotencyLayer::new(Arc::new(store), IdempotencyConfig::new("orders", "Idempotency-Key")?);
/// let app: allframe_runtime::axum::Router = allframe_runtime::axum::Router::new().layer(layer);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct IdempotencyLayer {
    shared: Arc<Shared>,
}

struct Shared {
    config: IdempotencyConfig,
    store: Arc<dyn IdempotencyStore>,
    clock: Arc<dyn Clock>,
    observer: Option<Observer>,
}

/// Told how each protected request was answered, see [`IdempotencyLayer::observe`].
type Observer = Arc<dyn Fn(IdempotencyOutcome) + Send + Sync>;

/// How the idempotency layer answered a protected request (an unsafe method carrying a key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdempotencyOutcome {
    /// The first request with its key: the handler ran.
    Executed,
    /// The first request with its key was refused before its handler ran (an extractor's
    /// rejection, marked [`Rejected`]): the key was released, nothing stored.
    Rejected,
    /// A repeat of a completed request: its stored response was replayed.
    Replayed,
    /// A repeat while the first was still running: 409, the handler did not run.
    InFlight,
    /// The key was used before with a different request: 422.
    Mismatch,
    /// A malformed or over-long key, or an unreadable body: 400.
    Invalid,
    /// A body over the limit: 413.
    TooLarge,
    /// The store did not answer: 503, the handler did not run.
    StoreUnavailable,
}

impl IdempotencyOutcome {
    /// The outcome's name, as in metric labels (`executed`, `replayed`, `in_flight`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Executed => "executed",
            Self::Rejected => "rejected",
            Self::Replayed => "replayed",
            Self::InFlight => "in_flight",
            Self::Mismatch => "mismatch",
            Self::Invalid => "invalid",
            Self::TooLarge => "too_large",
            Self::StoreUnavailable => "store_unavailable",
        }
    }
}

impl std::fmt::Debug for IdempotencyLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyLayer")
            .field("store", &self.shared.store.name())
            .field("config", &self.shared.config)
            .finish()
    }
}

impl IdempotencyLayer {
    /// A layer keeping keys in `store`, on the system clock.
    pub fn new(store: Arc<dyn IdempotencyStore>, config: IdempotencyConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                store,
                clock: Arc::new(SystemClock),
                observer: None,
            }),
        }
    }

    /// The same layer reading time from `clock` (tests move time this way).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self {
            shared: Arc::new(Shared {
                config: self.shared.config.clone(),
                store: Arc::clone(&self.shared.store),
                clock,
                observer: self.shared.observer.clone(),
            }),
        }
    }

    /// The same layer telling `observer` how it answered each protected request (the launcher
    /// counts them in `/metrics`).
    pub fn observe(self, observer: impl Fn(IdempotencyOutcome) + Send + Sync + 'static) -> Self {
        Self {
            shared: Arc::new(Shared {
                config: self.shared.config.clone(),
                store: Arc::clone(&self.shared.store),
                clock: Arc::clone(&self.shared.clock),
                observer: Some(Arc::new(observer)),
            }),
        }
    }

    /// The configuration in effect.
    pub fn config(&self) -> &IdempotencyConfig {
        &self.shared.config
    }

    /// The store's name (`"sqlite"`, `"postgres"`, `"redis"`).
    pub fn store_name(&self) -> &'static str {
        self.shared.store.name()
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = Idempotency<S>;

    fn layer(&self, inner: S) -> Idempotency<S> {
        Idempotency {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service [`IdempotencyLayer`] wraps around each route.
#[derive(Clone)]
pub struct Idempotency<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for Idempotency<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency")
            .field("store", &self.shared.store.name())
            .finish_non_exhaustive()
    }
}

/// The methods the layer protects: the unsafe ones (RFC 9110 §9.2.1).
fn is_protected(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

impl<S> Service<Request> for Idempotency<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    /// A request the layer lets through is the inner service's own future, not boxed.
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if !is_protected(request.method())
            || !request
                .headers()
                .contains_key(&self.shared.config.key_header)
        {
            return Either::Left(self.inner.call(request));
        }
        // `inner` is the instance `poll_ready` readied; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Either::Right(Box::pin(protect(Arc::clone(&self.shared), inner, request)))
    }
}

/// The scoped key of a request, or the message of the 400 explaining why it has none.
fn scoped_key(config: &IdempotencyConfig, headers: &HeaderMap) -> Result<String, String> {
    let name = &config.key_header;
    let invalid = |error: KeyError| format!("invalid {name} header: the key {error}");
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or_else(|| invalid(KeyError::Empty))?;
    if values.next().is_some() {
        return Err(invalid(KeyError::Repeated));
    }
    let key = parse_key(value.as_bytes()).map_err(invalid)?;
    let tenant = match config
        .tenant_header
        .as_ref()
        .and_then(|tenant_header| headers.get(tenant_header).map(|v| (tenant_header, v)))
    {
        None => None,
        Some((tenant_header, value)) => {
            Some(parse_tenant(value.as_bytes()).map_err(|error| {
                format!("invalid {tenant_header} header: the tenant id {error}")
            })?)
        }
    };
    Ok(scoped_id(&config.service, tenant, key))
}

async fn protect<S>(shared: Arc<Shared>, inner: S, request: Request) -> Result<Response, S::Error>
where
    S: Service<Request, Response = Response>,
{
    let observer = shared.observer.clone();
    let (outcome, answer) = answer(shared, inner, request).await;
    if let Some(observer) = observer {
        observer(outcome);
    }
    answer
}

/// Answers a protected request, and says how.
async fn answer<S>(
    shared: Arc<Shared>,
    mut inner: S,
    request: Request,
) -> (IdempotencyOutcome, Result<Response, S::Error>)
where
    S: Service<Request, Response = Response>,
{
    use IdempotencyOutcome as Outcome;
    let config = &shared.config;
    let id = match scoped_key(config, request.headers()) {
        Ok(id) => id,
        Err(message) => {
            return (
                Outcome::Invalid,
                Ok(reject(StatusCode::BAD_REQUEST, message)),
            );
        }
    };
    let (parts, body) = request.into_parts();
    let declared_length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|len| len > config.max_request_bytes as u64) {
        return (Outcome::TooLarge, Ok(too_large(config.max_request_bytes)));
    }
    let body = match collect(body, config.max_request_bytes).await {
        Collected::Full(bytes) => bytes,
        Collected::TooLarge { .. } => {
            return (Outcome::TooLarge, Ok(too_large(config.max_request_bytes)));
        }
        Collected::Failed(error) => {
            tracing::debug!(error = %error, "could not read a request body");
            return (
                Outcome::Invalid,
                Ok(reject(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read",
                )),
            );
        }
    };
    let fingerprint = Fingerprint::of(&parts.method, &parts.uri, &body);
    let owner = owner_token();
    let claim = Claim {
        id: &id,
        fingerprint: &fingerprint,
        owner: &owner,
        now_ms: shared.clock.now_ms(),
        lease: config.lease,
    };
    let begun = match within(config.store_timeout, shared.store.begin(claim)).await {
        Ok(begun) => begun,
        Err(error) => {
            tracing::error!(error = %error, store = shared.store.name(), "idempotency store unavailable; request refused");
            return (Outcome::StoreUnavailable, Ok(unavailable()));
        }
    };
    let existing = match begun {
        Begin::Started => {
            let claimed = Claimed {
                shared: Arc::clone(&shared),
                id,
                owner,
                settled: false,
            };
            let request = Request::from_parts(parts, Body::from(body));
            return run(claimed, inner.call(request)).await;
        }
        Begin::Existing(existing) => existing,
    };
    if existing.fingerprint != fingerprint {
        return (
            Outcome::Mismatch,
            Ok(reject(
                StatusCode::UNPROCESSABLE_ENTITY,
                "this idempotency key was already used with a different request (method, path or body)",
            )),
        );
    }
    match existing.response {
        None => {
            let mut answer = reject(
                StatusCode::CONFLICT,
                "a request with this idempotency key is still being processed; retry later",
            );
            answer
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            (Outcome::InFlight, Ok(answer))
        }
        Some(stored) => (Outcome::Replayed, Ok(replay(stored))),
    }
}

/// Runs the claimed request, extending the claim while it runs, then stores or releases it.
async fn run<F, E>(claimed: Claimed, handler: F) -> (IdempotencyOutcome, Result<Response, E>)
where
    F: Future<Output = Result<Response, E>>,
{
    use IdempotencyOutcome as Outcome;
    let response = match heartbeat(&claimed, handler).await {
        Ok(response) => response,
        Err(error) => {
            claimed.release("the service failed").await;
            return (Outcome::Executed, Err(error));
        }
    };
    if response.extensions().get::<Rejected>().is_some() {
        // Refused before the handler ran (an extractor's rejection): nothing happened, so
        // nothing is kept, not even the fingerprint; a corrected retry with the key runs.
        claimed
            .release("the request was rejected before its handler ran")
            .await;
        return (Outcome::Rejected, Ok(response));
    }
    (Outcome::Executed, Ok(settle(claimed, response).await))
}

/// Stores the handler's answer under the claimed key, or releases the key when the answer
/// says the handler failed.
async fn settle(claimed: Claimed, response: Response) -> Response {
    let shared = Arc::clone(&claimed.shared);
    let config = &shared.config;
    let status = response.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        // The handler failed (or was throttled): free the key so a retry can run.
        claimed.release("the response was a 5xx or 429").await;
        return response;
    }
    let (parts, body) = response.into_parts();
    let headers = selected_headers(&parts.headers);
    let (body, stored_body) = match collect(body, config.max_response_bytes).await {
        Collected::Full(bytes) => (Body::from(bytes.clone()), Some(bytes)),
        Collected::TooLarge { prefix, rest } => {
            tracing::warn!(
                limit = config.max_response_bytes,
                "response too large to store for idempotent replay; replays will omit the body"
            );
            let stream = futures_util::stream::once(async move { Ok(prefix) }).chain(rest);
            (Body::from_stream(stream), None)
        }
        Collected::Failed(error) => {
            tracing::error!(error = %error, "the response body failed; releasing the idempotency key");
            claimed.release("the response body failed").await;
            return reject(StatusCode::INTERNAL_SERVER_ERROR, "internal server error");
        }
    };
    let stored = StoredResponse {
        status: status.as_u16(),
        headers,
        body: stored_body,
    };
    claimed.complete(&stored).await;
    Response::from_parts(parts, body)
}

/// Polls `handler`, extending the claim every third of the lease until it finishes.
async fn heartbeat<F: Future>(claimed: &Claimed, handler: F) -> F::Output {
    let shared = &claimed.shared;
    let period = (shared.config.lease / 3).max(Duration::from_millis(10));
    let mut handler = std::pin::pin!(handler);
    loop {
        tokio::select! {
            biased;
            output = &mut handler => return output,
            () = tokio::time::sleep(period) => {
                let lock = claimed.lock();
                let now = shared.clock.now_ms();
                match within(shared.config.store_timeout, shared.store.refresh(lock, now, shared.config.lease)).await {
                    Ok(true) => {}
                    Ok(false) => tracing::error!(
                        "an idempotency claim was lost while its request was running; a duplicate may run"
                    ),
                    Err(error) => tracing::warn!(error = %error, "could not extend an idempotency claim"),
                }
            }
        }
    }
}

/// A key this request owns. Completing or releasing it settles it; dropping it unsettled
/// (the request was cancelled: the client went away or shutdown aborted it) releases it in
/// the background.
struct Claimed {
    shared: Arc<Shared>,
    id: String,
    owner: String,
    settled: bool,
}

impl Claimed {
    fn lock(&self) -> Lock<'_> {
        Lock {
            id: &self.id,
            owner: &self.owner,
        }
    }

    async fn complete(mut self, response: &StoredResponse) {
        self.settled = true;
        let shared = &self.shared;
        let now = shared.clock.now_ms();
        let stored = shared
            .store
            .complete(self.lock(), response, now, shared.config.ttl);
        match within(shared.config.store_timeout, stored).await {
            Ok(true) => {}
            Ok(false) => tracing::error!(
                "an idempotency claim was lost before its response could be stored; a retry may run again"
            ),
            Err(error) => tracing::error!(
                error = %error,
                "could not store a response for idempotent replay; a retry after the lease may run again"
            ),
        }
    }

    async fn release(mut self, why: &'static str) {
        self.settled = true;
        release(&self.shared, self.lock(), why).await;
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let shared = Arc::clone(&self.shared);
        let id = std::mem::take(&mut self.id);
        let owner = std::mem::take(&mut self.owner);
        runtime.spawn(async move {
            let lock = Lock {
                id: &id,
                owner: &owner,
            };
            release(&shared, lock, "the request was cancelled").await;
        });
    }
}

async fn release(shared: &Shared, lock: Lock<'_>, why: &'static str) {
    match within(shared.config.store_timeout, shared.store.release(lock)).await {
        Ok(_) => tracing::debug!(reason = why, "idempotency key released"),
        Err(error) => tracing::warn!(
            error = %error,
            reason = why,
            "could not release an idempotency key; it frees itself when its lease ends"
        ),
    }
}

/// Runs a store operation with a deadline.
async fn within<T>(
    limit: Duration,
    operation: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, operation)
        .await
        .unwrap_or(Err(StoreError::Timeout(limit)))
}

/// A body read into memory, or why it was not.
enum Collected {
    Full(Bytes),
    TooLarge { prefix: Bytes, rest: BodyDataStream },
    Failed(axum::Error),
}

/// Reads `body` until it ends or exceeds `limit` bytes.
async fn collect(body: Body, limit: usize) -> Collected {
    let mut stream = body.into_data_stream();
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                total = total.saturating_add(chunk.len());
                chunks.push(chunk);
                if total > limit {
                    return Collected::TooLarge {
                        prefix: concat(chunks),
                        rest: stream,
                    };
                }
            }
            Err(error) => return Collected::Failed(error),
        }
    }
    Collected::Full(concat(chunks))
}

fn concat(mut chunks: Vec<Bytes>) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => Bytes::from(chunks.concat()),
    }
}

/// The headers of `headers` that a replay repeats (see [`STORED_HEADERS`]).
fn selected_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    STORED_HEADERS
        .iter()
        .flat_map(|name| {
            headers.get_all(*name).iter().filter_map(move |value| {
                value
                    .to_str()
                    .ok()
                    .map(|value| ((*name).to_owned(), value.to_owned()))
            })
        })
        .collect()
}

/// The stored response, marked as a replay.
fn replay(stored: StoredResponse) -> Response {
    let omitted = stored.body.is_none();
    let mut response = Response::new(stored.body.map_or_else(Body::empty, Body::from));
    *response.status_mut() =
        StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in &stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    if omitted {
        headers.insert(BODY_OMITTED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

fn reject(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Response {
    ApiError::new(status, message).into_response()
}

fn too_large(limit: usize) -> Response {
    reject(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("a request with an idempotency key may carry at most {limit} bytes of body"),
    )
}

fn unavailable() -> Response {
    let mut answer = reject(
        StatusCode::SERVICE_UNAVAILABLE,
        "the idempotency store is unavailable; the request was not processed",
    );
    answer
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    answer
}

/// A token unique to one request: a per-process random value (from std's randomly keyed
/// hasher) and a counter. Only compared for equality, never trusted for secrecy.
fn owner_token() -> String {
    static PROCESS: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
        use std::hash::BuildHasher as _;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        std::collections::hash_map::RandomState::new().hash_one((std::process::id(), nanos))
    });
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{:016x}{:016x}",
        *PROCESS,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests;
