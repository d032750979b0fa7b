// Every error of the file is reported at once, each naming file, line, column and key.
#[allframe::service(config = "invalid.toml", name = "orders")]
pub struct Orders;

impl allframe::Service for Orders {
    async fn init(_: &allframe::Ctx) -> Result<Self, allframe::BoxError> {
        Ok(Self)
    }
}
