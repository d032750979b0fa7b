// A producer says what it ingests by implementing the `Produces` trait the macro declares.
#[allframe::service(config = "architecture.toml", name = "ingest")]
pub struct Ingestor;

impl allframe::Service for Ingestor {
    async fn init(_: &allframe::Ctx) -> Result<Self, allframe::BoxError> {
        Ok(Self)
    }
}
