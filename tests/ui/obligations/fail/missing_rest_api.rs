// Every service serves HTTP, so it must implement `allframe::RestApi`.
#[allframe::service(config = "architecture.toml", name = "rest-only")]
pub struct RestOnly;

impl allframe::Service for RestOnly {
    async fn init(_: &allframe::Ctx) -> Result<Self, allframe::BoxError> {
        Ok(Self)
    }
}
