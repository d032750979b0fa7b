// The file keeps this service's idempotency keys in Redis; the runtime is built here without its
// `redis` feature, so the build must fail at the struct and say which feature to enable.
#[allframe::service(config = "architecture.toml", name = "redis-keys")]
pub struct RedisKeys;

impl allframe::Service for RedisKeys {
    async fn init(_: &allframe::Ctx) -> Result<Self, allframe::BoxError> {
        Ok(Self)
    }
}

impl allframe::RestApi for RedisKeys {
    fn routes() -> allframe::Router<Self> {
        allframe::Router::new()
    }
}
