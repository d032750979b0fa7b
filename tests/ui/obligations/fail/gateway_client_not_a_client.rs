// A provider's client must be built from the runtime's provider client: a type that does not
// implement `allframe::gateway::Client` is refused with the note saying what to write.
#[allframe::service(config = "architecture.toml", name = "payments")]
pub struct Payments;

impl allframe::Service for Payments {
    async fn init(_: &allframe::Ctx) -> Result<Self, allframe::BoxError> {
        Ok(Self)
    }
}

impl allframe::RestApi for Payments {
    fn routes() -> allframe::Router<Self> {
        allframe::Router::new()
    }
}

impl Integrations for Payments {
    type Stripe = String;
}
