//! The position report the runtime's producer tests ingest: the `producer` unit tests
//! (`src/producer/tests.rs`) and the real-services NATS test (through `producer_support`)
//! include this file by path, each with `Event`, `Ingest`, `Invalid`, `LogFormat` and
//! `ServiceSettings` in scope of the module that includes it.
#![allow(dead_code)] // each includer uses what its tests need

use serde::{Deserialize, Serialize};

use super::{Event, Ingest, Invalid, LogFormat, ServiceSettings};

/// The settings of the producer `position-ingest` of `architecture`, on SQLite, any port,
/// draining for `shutdown_timeout_secs`.
pub const fn position_ingest(
    architecture: &'static str,
    shutdown_timeout_secs: u64,
) -> ServiceSettings {
    ServiceSettings {
        architecture,
        name: "position-ingest",
        archetype: "producer",
        rest_port: 0,
        grpc_port: None,
        logging: LogFormat::Plain,
        declared_database: "sqlite",
        shutdown_timeout_secs,
        deferred: &[],
    }
}

/// The body of `POST /position-reports`: an unknown field or a latitude out of range is
/// refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub vessel: String,
    pub lat: f64,
}

/// The event published for each accepted report, one aggregate per vessel.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Reported {
    pub vessel: String,
    pub lat: f64,
}

impl Event for Reported {
    const TYPE: &'static str = "PositionReported";
    const VERSION: u32 = 1;
    const AGGREGATE_TYPE: &'static str = "PositionReport";
    fn aggregate_id(&self) -> String {
        self.vessel.clone()
    }
}

impl Ingest for Report {
    type Event = Reported;
    fn validate(self) -> Result<Reported, Invalid> {
        if !(-90.0..=90.0).contains(&self.lat) {
            return Err(Invalid::new("lat", "must be between -90 and 90"));
        }
        Ok(Reported {
            vessel: self.vessel,
            lat: self.lat,
        })
    }
}
