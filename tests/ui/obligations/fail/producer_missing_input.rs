// The file declares two entities for this producer; each is an input type of `Produces`, so
// leaving one out is the compiler's own E0046, naming it.

/// A position report, published as itself (`PositionReported`).
#[derive(serde::Deserialize, serde::Serialize)]
pub struct Report;

impl allframe::Event for Report {
    const TYPE: &'static str = "PositionReported";
    const VERSION: u32 = 1;
    const AGGREGATE_TYPE: &'static str = "PositionReport";
    fn aggregate_id(&self) -> String {
        String::new()
    }
}

impl allframe::producer::Ingest for Report {
    type Event = Self;
    fn validate(self) -> Result<Self, allframe::producer::Invalid> {
        Ok(self)
    }
}

#[allframe::service(config = "architecture.toml", name = "ingest")]
pub struct Ingestor;

impl allframe::Service for Ingestor {
    async fn init(_: &allframe::Ctx) -> Result<Self, allframe::BoxError> {
        Ok(Self)
    }
}

impl Produces for Ingestor {
    type PositionReport = Report;
}
