// The file lists "grpc" in this service's protocols, so it must implement `allframe::GrpcApi`.
#[allframe::service(config = "architecture.toml", name = "with-grpc")]
pub struct WithGrpc;

impl allframe::Service for WithGrpc {
    async fn init(_: &allframe::Ctx) -> Result<Self, allframe::BoxError> {
        Ok(Self)
    }
}

impl allframe::RestApi for WithGrpc {
    fn routes() -> allframe::Router<Self> {
        allframe::Router::new()
    }
}
