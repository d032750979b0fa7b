//! Domain events as user types, and the request context that travels with them.
//!
//! [`Event`] is what a user's serde type implements to be published: a stable type name, a
//! schema version and the aggregate it belongs to, all as associated constants the compiler
//! demands, checked at compile time for their form, and how a payload stored at an older
//! schema version is carried to today's ([`Event::upcast`], failing with [`UpcastError`]).
//! [`EventContext`] carries correlation, causation, W3C trace context and tenant from an
//! incoming request (it is an axum extractor) or an incoming message into the envelopes a unit
//! of work writes. Nothing here does I/O.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::envelope::{Envelope, is_valid_traceparent};
use crate::context::App;

/// A domain event: the user's serde type, published through a unit of work.
///
/// Every item but [`Event::upcast`] is required, so forgetting one is a compile error naming
/// it. The constants are also checked wherever the event is published: `TYPE` and
/// `AGGREGATE_TYPE` must be non-empty, at most 128 characters of `[A-Za-z0-9_-]` (they become
/// parts of topic names), and `VERSION` at least 1 — a violation fails the build.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct UserCreated { id: i64, email: String }
///
/// impl allframe_runtime::messaging::Event for UserCreated {
///     const TYPE: &'static str = "UserCreated";
///     const VERSION: u32 = 1;
///     const AGGREGATE_TYPE: &'static str = "User";
///     fn aggregate_id(&self) -> String { self.id.to_string() }
/// }
/// ```
///
/// A missing constant does not compile:
///
/// ```compile_fail,E0046
/// #[derive(serde::Serialize)]
/// struct UserCreated { id: i64 }
/// impl allframe_runtime::messaging::Event for UserCreated {
///     const TYPE: &'static str = "UserCreated";
///     const AGGREGATE_TYPE: &'static str = "User";
///     fn aggregate_id(&self) -> String { self.id.to_string() }
/// }
/// ```
///
/// Nor does a type name that cannot be part of a topic, once code publishing the event is
/// built (`cargo build`/`cargo test`; `cargo check` does not evaluate these checks):
///
/// ```compile_fail,E0080
/// use allframe_runtime::messaging::{Event, UnitOfWork};
/// #[derive(serde::Serialize)]
/// struct UserCreated { id: i64 }
/// impl Event for UserCreated {
///     const TYPE: &'static str = "user created!";
///     const VERSION: u32 = 1;
///     const AGGREGATE_TYPE: &'static str = "User";
///     fn aggregate_id(&self) -> String { self.id.to_string() }
/// }
/// fn handler(uow: &mut UnitOfWork) {
///     let _ = uow.publish(UserCreated { id: 1 });
/// }
/// fn main() {
///     let _built: fn(&mut UnitOfWork) = handler;
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is published as a domain event, so it must implement `allframe::messaging::Event`",
    label = "not an `allframe::messaging::Event`",
    note = "add `impl allframe::messaging::Event for {Self} {{ const TYPE: &'static str = \"…\"; const VERSION: u32 = 1; const AGGREGATE_TYPE: &'static str = \"…\"; fn aggregate_id(&self) -> String {{ … }} }}`"
)]
pub trait Event: serde::Serialize + Send + 'static {
    /// The stable type name, e.g. `"UserCreated"`: the last part of the topic name, and what
    /// consumers match on. Renaming the Rust type must not change it.
    const TYPE: &'static str;
    /// The payload's schema version, starting at 1; bump it on incompatible changes.
    const VERSION: u32;
    /// The aggregate type the event belongs to, e.g. `"User"`.
    const AGGREGATE_TYPE: &'static str;
    /// The aggregate instance, e.g. the user's id; events of one aggregate are published in
    /// the order they were written.
    fn aggregate_id(&self) -> String;

    /// The payload written at schema `from`, carried to `from + 1`.
    ///
    /// Stored events are upcast on read, one version at a time, up to [`Event::VERSION`]:
    /// override this when you bump `VERSION` (the default refuses, naming the type and
    /// version). An aggregate's events read through `#[derive(allframe::AggregateEvent)]` are
    /// upcast by this function.
    ///
    /// ```
    /// use allframe_runtime::messaging::{Event, UpcastError};
    /// use serde_json::{Value, json};
    ///
    /// /// Schema 2 renamed `name` to `title`.
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct AccountRenamed { id: i64, title: String }
    ///
    /// impl Event for AccountRenamed {
    ///     const TYPE: &'static str = "AccountRenamed";
    ///     const VERSION: u32 = 2;
    ///     const AGGREGATE_TYPE: &'static str = "Account";
    ///     fn aggregate_id(&self) -> String { self.id.to_string() }
    ///
    ///     fn upcast(from: u32, mut payload: Value) -> Result<Value, UpcastError> {
    ///         if from != 1 {
    ///             return Err(UpcastError::Missing { event_type: Self::TYPE.into(), from });
    ///         }
    ///         match payload.as_object_mut().and_then(|fields| fields.remove("name")) {
    ///             Some(name) => {
    ///                 payload["title"] = name;
    ///                 Ok(payload)
    ///             }
    ///             None => Err(UpcastError::Invalid {
    ///                 event_type: Self::TYPE.into(),
    ///                 from,
    ///                 reason: "no `name`".into(),
    ///             }),
    ///         }
    ///     }
    /// }
    ///
    /// let v1 = json!({ "id": 7, "name": "Savings" });
    /// let v2 = AccountRenamed::upcast(1, v1).expect("schema 1 is carried to 2");
    /// assert_eq!(v2, json!({ "id": 7, "title": "Savings" }));
    /// assert!(AccountRenamed::upcast(2, json!({})).is_err(), "2 is today's version");
    /// ```
    fn upcast(from: u32, payload: serde_json::Value) -> Result<serde_json::Value, UpcastError>
    where
        Self: Sized,
    {
        let _ = payload;
        Err(UpcastError::Missing {
            event_type: Self::TYPE.to_owned(),
            from,
        })
    }
}

/// A stored payload that cannot be carried to today's schema.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpcastError {
    /// No upcaster for this version.
    #[error("no upcaster carries `{event_type}` from schema version {from}")]
    Missing {
        /// The event type.
        event_type: String,
        /// The version it is at.
        from: u32,
    },
    /// The upcaster refused the payload.
    #[error("`{event_type}` at schema version {from} cannot be upcast: {reason}")]
    Invalid {
        /// The event type.
        event_type: String,
        /// The version it is at.
        from: u32,
        /// Why.
        reason: String,
    },
}

/// The longest `TYPE` / `AGGREGATE_TYPE` accepted.
pub const MAX_NAME_LEN: usize = 128;

/// Whether `name` is a valid event or aggregate type name: 1 to [`MAX_NAME_LEN`] characters of
/// `[A-Za-z0-9_-]`. Usable in constant expressions.
pub const fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_NAME_LEN {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return false;
        }
        i += 1;
    }
    true
}

/// Evaluated at compile time for every event type that is published (an inline `const` block
/// in [`super::UnitOfWork::publish`]): a violation is a build error with this message.
pub(crate) const fn check_event<E: Event>() {
    assert!(
        is_valid_name(E::TYPE),
        "Event::TYPE must be 1 to 128 characters of [A-Za-z0-9_-] (it becomes part of the topic name)"
    );
    assert!(
        is_valid_name(E::AGGREGATE_TYPE),
        "Event::AGGREGATE_TYPE must be 1 to 128 characters of [A-Za-z0-9_-]"
    );
    assert!(E::VERSION >= 1, "Event::VERSION starts at 1");
}

/// The incoming request header carrying a correlation id.
pub const CORRELATION_HEADER: &str = "x-correlation-id";
/// Read as the correlation id when [`CORRELATION_HEADER`] is absent.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The incoming request header carrying a causation id.
pub const CAUSATION_HEADER: &str = "x-causation-id";

/// Where the events a unit of work writes come from: correlation, causation, W3C trace context
/// and tenant. Absent fields are filled in by the unit of work (a fresh correlation id shared
/// by all its events; no causation, trace or tenant).
///
/// It is an axum extractor that reads `x-correlation-id` (else `x-request-id`),
/// `x-causation-id`, `traceparent`/`tracestate` (dropped when not valid W3C trace context) and,
/// when the service has tenancy on, its tenant header:
///
/// ```no_run
/// # use allframe_runtime::{Ctx, error::ApiError, messaging::EventContext};
/// async fn create(cx: Ctx, events: EventContext) -> Result<(), ApiError> {
///     let mut uow = cx.begin_with(events).await?;
///     // … uow.publish(..)?; …
///     uow.commit().await?;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventContext {
    /// Shared by everything one request or flow caused.
    pub correlation_id: Option<String>,
    /// The id of the message (or request) that caused these events.
    pub causation_id: Option<String>,
    /// W3C `traceparent`.
    pub traceparent: Option<String>,
    /// W3C `tracestate`.
    pub tracestate: Option<String>,
    /// The tenant, when tenancy is on.
    pub tenant_id: Option<String>,
}

impl EventContext {
    /// The context of events caused by handling `message`: same correlation, trace and tenant;
    /// the message's id as the causation.
    pub fn caused_by(message: &Envelope) -> Self {
        Self {
            correlation_id: Some(message.correlation_id.clone()),
            causation_id: Some(message.id.hyphenated().to_string()),
            traceparent: message.traceparent.clone(),
            tracestate: message.tracestate.clone(),
            tenant_id: message.tenant_id.clone(),
        }
    }

    /// Reads the context from request headers; `tenant_header` is the service's tenant header
    /// when tenancy is on.
    pub fn from_headers(headers: &HeaderMap, tenant_header: Option<&str>) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
                .filter(|value| !value.is_empty() && value.len() <= 512)
                .map(str::to_owned)
        };
        let traceparent = text("traceparent").filter(|value| is_valid_traceparent(value));
        let tracestate = traceparent.as_ref().and(text("tracestate"));
        Self {
            correlation_id: text(CORRELATION_HEADER).or_else(|| text(REQUEST_ID_HEADER)),
            causation_id: text(CAUSATION_HEADER),
            traceparent,
            tracestate,
            tenant_id: tenant_header.and_then(text),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<App<S>> for EventContext {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &App<S>) -> Result<Self, Infallible> {
        let tenant_header = state.ctx().messaging().and_then(|m| m.tenant_header());
        Ok(Self::from_headers(&parts.headers, tenant_header))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn names_are_checked_like_topic_parts() {
        assert!(is_valid_name("UserCreated"));
        assert!(is_valid_name("user_created-v2"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("user.created"));
        assert!(!is_valid_name("user created"));
        assert!(!is_valid_name(&"x".repeat(MAX_NAME_LEN + 1)));
    }

    #[test]
    fn request_headers_fill_the_context() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", HeaderValue::from_static("req-1"));
        headers.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        headers.insert("tracestate", HeaderValue::from_static("a=b"));
        headers.insert("x-tenant-id", HeaderValue::from_static("acme"));
        let context = EventContext::from_headers(&headers, Some("X-Tenant-ID"));
        assert_eq!(context.correlation_id.as_deref(), Some("req-1"));
        assert_eq!(context.tracestate.as_deref(), Some("a=b"));
        assert_eq!(context.tenant_id.as_deref(), Some("acme"));

        let without_tenancy = EventContext::from_headers(&headers, None);
        assert_eq!(without_tenancy.tenant_id, None);

        headers.insert("traceparent", HeaderValue::from_static("bogus"));
        let context = EventContext::from_headers(&headers, None);
        assert_eq!((context.traceparent, context.tracestate), (None, None));
    }
}
