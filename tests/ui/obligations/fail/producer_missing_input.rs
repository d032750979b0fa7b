// The file declares two entities for this producer; each is an input type of `Produces`, so
// leaving one out is the compiler's own E0046, naming it.
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
    const TYPE: &'static str = "PositionReported";
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

impl Produces for Ingestor {
    type PositionReport = Report;
}
