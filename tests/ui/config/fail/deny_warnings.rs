// The macro cannot print warnings on stable Rust; `[settings] deny_warnings = true` makes the
// file's warnings (here a key this version does not honour) compile errors.
#[allframe::service(config = "strict.toml", name = "orders")]
pub struct Orders;

impl allframe::Service for Orders {
    async fn init(_: &allframe::Ctx) -> Result<Self, allframe::BoxError> {
        Ok(Self)
    }
}
