// The file says `PositionReport` publishes `PositionReported`; an input whose event has
// another `Event::TYPE` does not compile.
use allframe::producer::{Ingest, Invalid};

#[allframe::service(config = "architecture.toml", name = "ingest")]
pub struct Ingestor;

impl allframe::Service for Ingestor {
    async fn init(_: &allframe::Ctx) -> Result<Self, allframe::BoxError> {
        Ok(Self)
    }
}

#[derive(serde::Deserialize, serde::Serialize)]
pub struct Report {
    vessel: String,
}

impl allframe::Event for Report {
    const TYPE: &'static str = "PositionSent";
    const VERSION: u32 = 1;
    const AGGREGATE_TYPE: &'static str = "PositionReport";
    fn aggregate_id(&self) -> String {
        self.vessel.clone()
    }
}

impl Ingest for Report {
    type Event = Report;
    fn validate(self) -> Result<Report, Invalid> {
        Ok(self)
    }
}

#[derive(serde::Deserialize, serde::Serialize)]
pub struct Alert {
    vessel: String,
}

impl allframe::Event for Alert {
    const TYPE: &'static str = "AlertRaised";
    const VERSION: u32 = 1;
    const AGGREGATE_TYPE: &'static str = "Alert";
    fn aggregate_id(&self) -> String {
        self.vessel.clone()
    }
}

impl Ingest for Alert {
    type Event = Alert;
    fn validate(self) -> Result<Alert, Invalid> {
        Ok(self)
    }
}

impl Produces for Ingestor {
    type PositionReport = Report;
    type Alert = Alert;
}
