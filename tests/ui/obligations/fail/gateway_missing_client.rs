// The file lists `stripe` as a provider of this gateway; its client is an associated type of
// `Integrations`, so an impl without it is the compiler's own E0046, naming it.
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

impl Integrations for Payments {}
