// The file says `PositionReport` publishes `PositionReported`; an input whose event has
// another `Event::TYPE` (here the alert input, given for both entities) does not compile.
use allframe::producer::{Ingest, Invalid};

#[allframe::service(config = "architecture.toml", name = "ingest")]
pub struct Ingestor;

impl allframe::Service for Ingestor {
    async fn init(_: &allframe::Ctx) -> Result<Self, allframe::BoxError> {
        Ok(Self)
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
    type PositionReport = Alert;
    type Alert = Alert;
}
