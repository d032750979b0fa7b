// A saga orchestrator must say how its saga's steps run: without an impl of the saga's trait,
// the error names the trait and lists every method to write.
#[allframe::service(config = "architecture.toml", name = "orders")]
pub struct Orders;

impl allframe::Service for Orders {
    async fn init(_: &allframe::Ctx) -> Result<Self, allframe::BoxError> {
        Ok(Self)
    }
}

impl allframe::RestApi for Orders {
    fn routes() -> allframe::Router<Self> {
        allframe::Router::new()
    }
}
