//! The envelope's header mapping through the public API: every field survives a trip through
//! string headers (here an HTTP-style header map, as NATS and AMQP carry them), names are
//! case-insensitive, and decoding checks the event type and schema version.

use std::time::{Duration, SystemTime};

use allframe_runtime::axum::http::{HeaderMap, HeaderName, HeaderValue};
use allframe_runtime::messaging::envelope::header;
use allframe_runtime::messaging::{Envelope, EnvelopeError, Event, PayloadFormat, Uuid};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct OrderPlaced {
    order: u64,
    #[serde(default)]
    note: Option<String>,
}

impl Event for OrderPlaced {
    const TYPE: &'static str = "OrderPlaced";
    const VERSION: u32 = 2;
    const AGGREGATE_TYPE: &'static str = "Order";
    fn aggregate_id(&self) -> String {
        self.order.to_string()
    }
}

fn envelope(version: u32) -> Envelope {
    Envelope {
        id: Uuid::now_v7(),
        event_type: "OrderPlaced".into(),
        schema_version: version,
        aggregate_type: "Order".into(),
        aggregate_id: "991".into(),
        occurred_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_225_600_250),
        source: "order-service".into(),
        correlation_id: "c0ffee".into(),
        causation_id: Some("0199a7e2-0000-7000-8000-000000000001".into()),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        tracestate: Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".into()),
        tenant_id: Some("tenant-7".into()),
        format: PayloadFormat::Json,
        payload: br#"{"order":991}"#.to_vec(),
    }
}

#[test]
fn every_field_survives_string_headers() {
    let sent = envelope(2);
    let mut native = HeaderMap::new();
    for (name, value) in sent.headers() {
        native.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).expect("header values are visible ASCII"),
        );
    }
    assert_eq!(native.len(), 14, "all fields present");
    assert_eq!(native[header::TIME], "2026-01-01T00:00:00.250Z");
    assert_eq!(native[header::CONTENT_TYPE], "application/json");
    assert_eq!(native[header::SPEC_VERSION], "1.0");
    assert_eq!(
        native[header::TRACEPARENT],
        sent.traceparent.as_deref().expect("set")
    );

    let pairs: Vec<(String, String)> = native
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_uppercase(),
                v.to_str().expect("ascii").to_owned(),
            )
        })
        .collect();
    let received = Envelope::from_headers(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        sent.payload.clone(),
    )
    .expect("reads back");
    assert_eq!(received, sent);
    assert_eq!(
        received.decode::<OrderPlaced>().expect("decodes"),
        OrderPlaced {
            order: 991,
            note: None
        }
    );
}

#[test]
fn decoding_checks_type_and_version() {
    // Older schema versions are read (serde defaults fill what they lack)…
    assert!(envelope(1).decode::<OrderPlaced>().is_ok());
    // …newer ones are refused rather than misread.
    let error = envelope(3).decode::<OrderPlaced>().expect_err("too new");
    assert!(
        matches!(
            error,
            EnvelopeError::NewerSchema {
                found: 3,
                known: 2,
                ..
            }
        ),
        "{error}"
    );
    let mut other = envelope(1);
    other.event_type = "OrderCancelled".into();
    let error = other.decode::<OrderPlaced>().expect_err("wrong type");
    assert!(matches!(error, EnvelopeError::WrongType { .. }), "{error}");
    let mut broken = envelope(1);
    broken.payload = b"not json".to_vec();
    assert!(matches!(
        broken.decode::<OrderPlaced>(),
        Err(EnvelopeError::Payload { .. })
    ));
}

#[test]
fn foreign_formats_and_missing_fields_are_refused() {
    let sent = envelope(1);
    let mut headers = sent.headers();
    for (name, value) in &mut headers {
        if *name == header::CONTENT_TYPE {
            *value = "application/avro".into();
        }
    }
    let error = Envelope::from_headers(headers.iter().map(|(k, v)| (*k, v.as_str())), vec![])
        .expect_err("avro is not supported yet");
    assert!(matches!(
        error,
        EnvelopeError::InvalidHeader {
            name: header::CONTENT_TYPE,
            ..
        }
    ));
    let error = Envelope::from_headers([("ce-id", "x")], vec![]).expect_err("almost nothing");
    assert_eq!(error, EnvelopeError::MissingHeader(header::SPEC_VERSION));
}
