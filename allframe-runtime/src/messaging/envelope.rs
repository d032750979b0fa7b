//! The event envelope: what travels on every bus, and its mapping to string headers.
//!
//! An [`Envelope`] wraps one serialized domain event with the metadata consumers need to route,
//! deduplicate, order, trace and attribute it. Buses carry the envelope as *headers + payload*:
//! [`Envelope::headers`] gives the header list and [`Envelope::from_headers`] reads it back. The
//! header names follow the binary content mode of CloudEvents 1.0 (`ce-` attributes; the
//! AllFrame-specific attributes are CloudEvents extensions, lowercase alphanumeric), and the W3C
//! trace context keeps its own `traceparent` / `tracestate` names so that tracing
//! instrumentation of every bus finds it where it looks. Each adapter maps this list onto its
//! native headers (Kafka record headers, NATS headers, AMQP header table; the local bus stores it
//! as a JSON object). This module does no I/O.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

/// The header names of the envelope mapping (see the table in `docs/messaging.md`).
pub mod header {
    /// CloudEvents spec version, always `1.0`.
    pub const SPEC_VERSION: &str = "ce-specversion";
    /// The envelope id (UUIDv7, hyphenated lowercase).
    pub const ID: &str = "ce-id";
    /// The event type name, e.g. `UserCreated`.
    pub const TYPE: &str = "ce-type";
    /// The producing service, e.g. `user-service`.
    pub const SOURCE: &str = "ce-source";
    /// When the event occurred: RFC 3339, UTC, millisecond precision.
    pub const TIME: &str = "ce-time";
    /// The payload's schema version, a positive integer.
    pub const SCHEMA_VERSION: &str = "ce-schemaversion";
    /// The aggregate type, e.g. `User`.
    pub const AGGREGATE_TYPE: &str = "ce-aggregatetype";
    /// The aggregate id, e.g. `42`.
    pub const AGGREGATE_ID: &str = "ce-aggregateid";
    /// The correlation id shared by everything one request or flow caused.
    pub const CORRELATION_ID: &str = "ce-correlationid";
    /// The id of the message that caused this one (absent for events caused by a request).
    pub const CAUSATION_ID: &str = "ce-causationid";
    /// The tenant, present when tenancy is on.
    pub const TENANT_ID: &str = "ce-tenantid";
    /// W3C trace context: `version-traceid-parentid-flags`.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C trace context: vendor-specific state.
    pub const TRACESTATE: &str = "tracestate";
    /// The payload format as a media type, e.g. `application/json`.
    pub const CONTENT_TYPE: &str = "content-type";
}

/// The CloudEvents spec version the headers follow.
pub const SPEC_VERSION: &str = "1.0";

/// How the payload bytes are encoded. A field of the envelope, so other formats can follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PayloadFormat {
    /// UTF-8 JSON (serde_json).
    #[default]
    Json,
}

impl PayloadFormat {
    /// The media type written to the `content-type` header.
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
        }
    }

    /// The format named by a media type (parameters such as `; charset=utf-8` are ignored).
    pub fn from_content_type(value: &str) -> Option<Self> {
        let media = value.split(';').next().unwrap_or("").trim();
        media
            .eq_ignore_ascii_case("application/json")
            .then_some(Self::Json)
    }
}

/// Why headers could not be read back into an [`Envelope`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// A required header is absent.
    #[error("the event envelope has no `{0}` header")]
    MissingHeader(&'static str),
    /// A header holds a value of the wrong form.
    #[error("the event envelope header `{name}` has an invalid value `{value}`: {reason}")]
    InvalidHeader {
        /// The header name.
        name: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// The stored header map is not a JSON object of strings.
    #[error("the stored envelope headers are not a JSON object of strings: {0}")]
    StoredHeaders(String),
    /// The payload could not be decoded into the requested event type.
    #[error("cannot decode the payload of a `{event_type}` event: {reason}")]
    Payload {
        /// The envelope's event type.
        event_type: String,
        /// The decoder's message.
        reason: String,
    },
    /// The envelope holds a different event type than the one asked for.
    #[error("the envelope holds a `{found}` event, not a `{expected}`")]
    WrongType {
        /// The type asked for.
        expected: &'static str,
        /// The type in the envelope.
        found: String,
    },
    /// The envelope's schema version is newer than the consumer's type understands.
    #[error(
        "the `{event_type}` event has schema version {found}, newer than the {known} this consumer knows"
    )]
    NewerSchema {
        /// The event type.
        event_type: String,
        /// The version in the envelope.
        found: u32,
        /// The version of the consumer's type.
        known: u32,
    },
}

/// One event as it travels on a bus: metadata plus the serialized payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Unique id, a UUIDv7 (time-ordered); consumers deduplicate on it.
    pub id: Uuid,
    /// The stable type name, e.g. `UserCreated` (`Event::TYPE`).
    pub event_type: String,
    /// The payload's schema version (`Event::VERSION`), at least 1.
    pub schema_version: u32,
    /// The aggregate the event belongs to, e.g. `User` (`Event::AGGREGATE_TYPE`).
    pub aggregate_type: String,
    /// The aggregate instance, e.g. `42`; order is kept per (type, id).
    pub aggregate_id: String,
    /// When the event occurred (millisecond precision).
    pub occurred_at: SystemTime,
    /// The producing service, e.g. `user-service`.
    pub source: String,
    /// Shared by everything one request or flow caused.
    pub correlation_id: String,
    /// The id of the message that caused this event, when a message did.
    pub causation_id: Option<String>,
    /// W3C `traceparent`, when the producer had a trace.
    pub traceparent: Option<String>,
    /// W3C `tracestate`, only together with a `traceparent`.
    pub tracestate: Option<String>,
    /// The tenant, when tenancy is on.
    pub tenant_id: Option<String>,
    /// How `payload` is encoded.
    pub format: PayloadFormat,
    /// The serialized event.
    pub payload: Vec<u8>,
}

impl Envelope {
    /// The header list of this envelope, in a fixed order; optional fields are omitted when
    /// absent. The payload travels separately as the message body.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            (header::SPEC_VERSION, SPEC_VERSION.to_owned()),
            (header::ID, self.id.hyphenated().to_string()),
            (header::TYPE, self.event_type.clone()),
            (header::SOURCE, self.source.clone()),
            (header::TIME, format_time(self.occurred_at)),
            (header::SCHEMA_VERSION, self.schema_version.to_string()),
            (header::AGGREGATE_TYPE, self.aggregate_type.clone()),
            (header::AGGREGATE_ID, self.aggregate_id.clone()),
            (header::CORRELATION_ID, self.correlation_id.clone()),
            (header::CONTENT_TYPE, self.format.content_type().to_owned()),
        ];
        let optional = [
            (header::CAUSATION_ID, &self.causation_id),
            (header::TENANT_ID, &self.tenant_id),
            (header::TRACEPARENT, &self.traceparent),
            (header::TRACESTATE, &self.tracestate),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                headers.push((name, value.clone()));
            }
        }
        headers
    }

    /// Reads an envelope back from headers (names compared case-insensitively; unknown headers
    /// ignored) and the message body.
    ///
    /// A `traceparent` that is not valid W3C trace context is dropped, as the W3C
    /// recommendation requires of receivers, and a `tracestate` without a valid
    /// `traceparent` with it.
    pub fn from_headers<'a, I>(headers: I, payload: Vec<u8>) -> Result<Self, EnvelopeError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        Self::from_headers_or_payload(headers, payload).map_err(|(error, _)| error)
    }

    /// [`Envelope::from_headers`], handing the payload back with the error.
    pub(crate) fn from_headers_or_payload<'a, I>(
        headers: I,
        payload: Vec<u8>,
    ) -> Result<Self, (EnvelopeError, Vec<u8>)>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        match Self::header_fields(headers) {
            Ok(envelope) => Ok(Self {
                payload,
                ..envelope
            }),
            Err(error) => Err((error, payload)),
        }
    }

    /// The envelope the headers describe, with an empty payload.
    fn header_fields<'a, I>(headers: I) -> Result<Self, EnvelopeError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut found: [Option<&'a str>; 14] = [None; 14];
        for (name, value) in headers {
            if let Some(index) = ALL.iter().position(|h| h.eq_ignore_ascii_case(name)) {
                found[index] = Some(value);
            }
        }
        let get = |name: &'static str| {
            let index = ALL.iter().position(|h| *h == name).unwrap_or(0);
            found[index]
        };
        let required = |name: &'static str| get(name).ok_or(EnvelopeError::MissingHeader(name));

        let spec = required(header::SPEC_VERSION)?;
        if spec != SPEC_VERSION {
            return Err(invalid(header::SPEC_VERSION, spec, "expected `1.0`"));
        }
        let id_text = required(header::ID)?;
        let id = Uuid::parse_str(id_text)
            .map_err(|_| invalid(header::ID, id_text, "expected a UUID"))?;
        let version_text = required(header::SCHEMA_VERSION)?;
        let schema_version = version_text
            .parse::<u32>()
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| {
                invalid(
                    header::SCHEMA_VERSION,
                    version_text,
                    "expected a positive integer",
                )
            })?;
        let time_text = required(header::TIME)?;
        let occurred_at = parse_time(time_text)
            .ok_or_else(|| invalid(header::TIME, time_text, "expected an RFC 3339 timestamp"))?;
        let format_text = required(header::CONTENT_TYPE)?;
        let format = PayloadFormat::from_content_type(format_text).ok_or_else(|| {
            invalid(
                header::CONTENT_TYPE,
                format_text,
                "unsupported payload format; expected application/json",
            )
        })?;
        let non_empty = |name: &'static str| -> Result<String, EnvelopeError> {
            let value = required(name)?;
            if value.is_empty() {
                return Err(invalid(name, value, "must not be empty"));
            }
            Ok(value.to_owned())
        };
        let traceparent = get(header::TRACEPARENT)
            .filter(|value| is_valid_traceparent(value))
            .map(str::to_owned);
        let tracestate = traceparent
            .as_ref()
            .and(get(header::TRACESTATE))
            .map(str::to_owned);
        Ok(Self {
            id,
            event_type: non_empty(header::TYPE)?,
            schema_version,
            aggregate_type: non_empty(header::AGGREGATE_TYPE)?,
            aggregate_id: required(header::AGGREGATE_ID)?.to_owned(),
            occurred_at,
            source: non_empty(header::SOURCE)?,
            correlation_id: non_empty(header::CORRELATION_ID)?,
            causation_id: get(header::CAUSATION_ID).map(str::to_owned),
            traceparent,
            tracestate,
            tenant_id: get(header::TENANT_ID).map(str::to_owned),
            format,
            payload: Vec::new(),
        })
    }

    /// What can be read of `headers` that [`Envelope::from_headers`] refused: each field that
    /// parses, a neutral value for the others (empty text, version 1, the Unix epoch, JSON),
    /// and as id the `ce-id` header when it is a UUID, else a UUIDv5 of the headers and payload
    /// (the same for every delivery of one message, so a consumer parks it once).
    pub fn salvage(headers: &[(&str, &str)], payload: Vec<u8>) -> Self {
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, value)| *value)
        };
        let text = |name: &str| get(name).unwrap_or_default().to_owned();
        let id = get(header::ID)
            .and_then(|value| Uuid::parse_str(value).ok())
            .unwrap_or_else(|| {
                let mut name = Vec::with_capacity(payload.len() + 256);
                for (header, value) in headers {
                    name.extend_from_slice(header.as_bytes());
                    name.push(0);
                    name.extend_from_slice(value.as_bytes());
                    name.push(0);
                }
                name.extend_from_slice(&payload);
                Uuid::new_v5(&Uuid::NAMESPACE_OID, &name)
            });
        let traceparent = get(header::TRACEPARENT)
            .filter(|value| is_valid_traceparent(value))
            .map(str::to_owned);
        Self {
            id,
            event_type: text(header::TYPE),
            schema_version: get(header::SCHEMA_VERSION)
                .and_then(|value| value.parse().ok())
                .filter(|version| *version >= 1)
                .unwrap_or(1),
            aggregate_type: text(header::AGGREGATE_TYPE),
            aggregate_id: text(header::AGGREGATE_ID),
            occurred_at: get(header::TIME).and_then(parse_time).unwrap_or(UNIX_EPOCH),
            source: text(header::SOURCE),
            correlation_id: text(header::CORRELATION_ID),
            causation_id: get(header::CAUSATION_ID).map(str::to_owned),
            tracestate: traceparent
                .as_ref()
                .and(get(header::TRACESTATE))
                .map(str::to_owned),
            traceparent,
            tenant_id: get(header::TENANT_ID).map(str::to_owned),
            format: PayloadFormat::Json,
            payload,
        }
    }

    /// The headers as a JSON object (how the outbox and the local bus store them).
    pub fn headers_json(&self) -> String {
        /// The header list written as a JSON object, in its order, with no map in between.
        struct Object(Vec<(&'static str, String)>);
        impl serde::Serialize for Object {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_map(self.0.iter().map(|(name, value)| (name, value)))
            }
        }
        // Writing string keys and values to a `String` cannot fail.
        serde_json::to_string(&Object(self.headers())).unwrap_or_else(|_| String::from("{}"))
    }

    /// Reads an envelope from headers stored by [`Envelope::headers_json`] and the payload.
    pub fn from_headers_json(headers: &str, payload: Vec<u8>) -> Result<Self, EnvelopeError> {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(headers)
            .map_err(|error| EnvelopeError::StoredHeaders(error.to_string()))?;
        let mut pairs = Vec::with_capacity(map.len());
        for (name, value) in &map {
            let value = value
                .as_str()
                .ok_or_else(|| EnvelopeError::StoredHeaders(format!("`{name}` is not a string")))?;
            pairs.push((name.as_str(), value));
        }
        Self::from_headers(pairs, payload)
    }

    /// Decodes the payload into the event type `E`, checking the type name and that the
    /// envelope's schema version is not newer than `E::VERSION` (older versions are decoded as
    /// is, so additive changes with `#[serde(default)]` stay readable).
    pub fn decode<E>(&self) -> Result<E, EnvelopeError>
    where
        E: super::Event + serde::de::DeserializeOwned,
    {
        if self.event_type != E::TYPE {
            return Err(EnvelopeError::WrongType {
                expected: E::TYPE,
                found: self.event_type.clone(),
            });
        }
        if self.schema_version > E::VERSION {
            return Err(EnvelopeError::NewerSchema {
                event_type: self.event_type.clone(),
                found: self.schema_version,
                known: E::VERSION,
            });
        }
        match self.format {
            PayloadFormat::Json => {
                serde_json::from_slice(&self.payload).map_err(|error| EnvelopeError::Payload {
                    event_type: self.event_type.clone(),
                    reason: error.to_string(),
                })
            }
        }
    }
}

/// Every header name, in the index order `from_headers` uses.
const ALL: [&str; 14] = [
    header::SPEC_VERSION,
    header::ID,
    header::TYPE,
    header::SOURCE,
    header::TIME,
    header::SCHEMA_VERSION,
    header::AGGREGATE_TYPE,
    header::AGGREGATE_ID,
    header::CORRELATION_ID,
    header::CAUSATION_ID,
    header::TENANT_ID,
    header::TRACEPARENT,
    header::TRACESTATE,
    header::CONTENT_TYPE,
];

fn invalid(name: &'static str, value: &str, reason: &'static str) -> EnvelopeError {
    EnvelopeError::InvalidHeader {
        name,
        value: value.to_owned(),
        reason,
    }
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-02T10:11:12.345Z`.
pub(crate) fn format_time(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_time(text: &str) -> Option<SystemTime> {
    let parsed = DateTime::parse_from_rfc3339(text).ok()?;
    Some(SystemTime::from(parsed.with_timezone(&Utc)))
}

/// `time` truncated to whole milliseconds (what the headers and the outbox keep).
pub(crate) fn truncate_to_millis(time: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(unix_millis(time).max(0).unsigned_abs())
}

/// Milliseconds since the Unix epoch (negative before it).
pub(crate) fn unix_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Whether `value` is a W3C `traceparent` of version `00` (or a later version, whose first four
/// fields have the same form): `vv-<32 hex>-<16 hex>-<2 hex>`, lowercase, trace and parent ids
/// not all zeros, version not `ff`.
pub fn is_valid_traceparent(value: &str) -> bool {
    let bytes = value.as_bytes();
    if bytes.len() < 55 || (bytes.len() > 55 && bytes[55] != b'-') {
        return false;
    }
    let hex = |range: std::ops::Range<usize>| {
        bytes[range]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    let zeros = |range: std::ops::Range<usize>| bytes[range].iter().all(|b| *b == b'0');
    let version_ok = hex(0..2) && &bytes[0..2] != b"ff";
    let layout_ok = bytes[2] == b'-' && bytes[35] == b'-' && bytes[52] == b'-';
    if !(version_ok && layout_ok && hex(3..35) && hex(36..52) && hex(53..55)) {
        return false;
    }
    if &bytes[0..2] == b"00" && bytes.len() != 55 {
        return false;
    }
    !zeros(3..35) && !zeros(36..52)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn sample() -> Envelope {
        Envelope {
            id: Uuid::now_v7(),
            event_type: "UserCreated".into(),
            schema_version: 2,
            aggregate_type: "User".into(),
            aggregate_id: "42".into(),
            occurred_at: truncate_to_millis(SystemTime::now()),
            source: "user-service".into(),
            correlation_id: "corr-1".into(),
            causation_id: Some("cause-1".into()),
            traceparent: Some(TRACEPARENT.into()),
            tracestate: Some("congo=t61rcWkgMzE".into()),
            tenant_id: Some("acme".into()),
            format: PayloadFormat::Json,
            payload: br#"{"id":42}"#.to_vec(),
        }
    }

    #[test]
    fn headers_round_trip_exactly() {
        let envelope = sample();
        let headers = envelope.headers();
        let back = Envelope::from_headers(
            headers.iter().map(|(k, v)| (*k, v.as_str())),
            envelope.payload.clone(),
        )
        .expect("round trip");
        assert_eq!(back, envelope);

        let json = envelope.headers_json();
        assert_eq!(
            Envelope::from_headers_json(&json, envelope.payload.clone()).expect("json"),
            envelope
        );
    }

    #[test]
    fn stored_headers_escape_what_json_must() {
        let mut envelope = sample();
        envelope.aggregate_id = "say \"hi\"\\ \n\u{1}".into();
        let json = envelope.headers_json();
        assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
        assert_eq!(
            Envelope::from_headers_json(&json, envelope.payload.clone()).expect("json"),
            envelope
        );
    }

    #[test]
    fn optional_headers_are_omitted_and_names_are_case_insensitive() {
        let mut envelope = sample();
        envelope.causation_id = None;
        envelope.tenant_id = None;
        envelope.traceparent = None;
        envelope.tracestate = None;
        let headers = envelope.headers();
        assert_eq!(headers.len(), 10);
        let upper: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
            .collect();
        let back = Envelope::from_headers(
            upper.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            envelope.payload.clone(),
        )
        .expect("upper-case names");
        assert_eq!(back, envelope);
    }

    #[test]
    fn missing_and_invalid_headers_are_typed_errors() {
        let envelope = sample();
        let without_id: Vec<(&str, String)> = envelope
            .headers()
            .into_iter()
            .filter(|(k, _)| *k != header::ID)
            .collect();
        let error =
            Envelope::from_headers(without_id.iter().map(|(k, v)| (*k, v.as_str())), vec![])
                .expect_err("no id");
        assert_eq!(error, EnvelopeError::MissingHeader(header::ID));

        let mut bad_version = envelope.headers();
        for (k, v) in &mut bad_version {
            if *k == header::SCHEMA_VERSION {
                *v = "0".into();
            }
        }
        let error =
            Envelope::from_headers(bad_version.iter().map(|(k, v)| (*k, v.as_str())), vec![])
                .expect_err("version 0");
        assert!(matches!(
            error,
            EnvelopeError::InvalidHeader {
                name: header::SCHEMA_VERSION,
                ..
            }
        ));
    }

    #[test]
    fn invalid_trace_context_is_dropped() {
        let mut headers = sample().headers();
        for (k, v) in &mut headers {
            if *k == header::TRACEPARENT {
                *v = "00-00000000000000000000000000000000-00f067aa0ba902b7-01".into();
            }
        }
        let back = Envelope::from_headers(headers.iter().map(|(k, v)| (*k, v.as_str())), vec![])
            .expect("decodes");
        assert_eq!(back.traceparent, None);
        assert_eq!(
            back.tracestate, None,
            "tracestate needs a valid traceparent"
        );
    }

    #[test]
    fn traceparent_validation_follows_w3c() {
        assert!(is_valid_traceparent(TRACEPARENT));
        assert!(!is_valid_traceparent(&TRACEPARENT.to_uppercase()));
        assert!(!is_valid_traceparent(
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!is_valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"
        ));
        assert!(!is_valid_traceparent(&format!("{TRACEPARENT}-extra")));
        assert!(is_valid_traceparent(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"
        ));
        assert!(!is_valid_traceparent("garbage"));
    }

    #[test]
    fn times_are_rfc3339_utc_millis() {
        let time = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(format_time(time), "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_time("2023-11-14T23:13:20.123+01:00"), Some(time));
        assert_eq!(unix_millis(time), 1_700_000_000_123);
    }

    #[test]
    fn content_types_name_formats() {
        assert_eq!(
            PayloadFormat::from_content_type("application/json; charset=utf-8"),
            Some(PayloadFormat::Json)
        );
        assert_eq!(PayloadFormat::from_content_type("application/avro"), None);
    }

    #[test]
    fn salvage_keeps_what_parses_and_names_a_message_the_same_way_each_time() {
        let headers = [
            (header::TYPE, "OrderPlaced"),
            (header::AGGREGATE_ID, "o-1"),
            (header::SCHEMA_VERSION, "two"),
        ];
        let first = Envelope::salvage(&headers, b"{}".to_vec());
        assert_eq!(
            (first.event_type.as_str(), first.aggregate_id.as_str()),
            ("OrderPlaced", "o-1")
        );
        assert_eq!(first.schema_version, 1, "an unreadable version reads as 1");
        assert_eq!(Envelope::salvage(&headers, b"{}".to_vec()).id, first.id);
        assert_ne!(Envelope::salvage(&headers, b"[]".to_vec()).id, first.id);
        let id = Uuid::now_v7().hyphenated().to_string();
        let with_id = Envelope::salvage(&[(header::ID, id.as_str())], Vec::new());
        assert_eq!(with_id.id.hyphenated().to_string(), id);
    }
}
