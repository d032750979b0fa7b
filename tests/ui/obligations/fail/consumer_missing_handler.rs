// The file lists `SomethingHappened` in `[services.consumer] events`: its handler
// `on_something_happened` is missing, and the compiler names it.

#[allframe::service(config = "architecture.toml", name = "mailer")]
pub struct Mailer;

impl allframe::Service for Mailer {
    async fn init(_: &allframe::Ctx) -> Result<Self, allframe::BoxError> {
        Ok(Self)
    }
}

#[derive(serde::Deserialize, serde::Serialize)]
pub struct SomethingHappened {
    id: String,
}

impl allframe::Event for SomethingHappened {
    const TYPE: &'static str = "SomethingHappened";
    const VERSION: u32 = 1;
    const AGGREGATE_TYPE: &'static str = "Thing";
    fn aggregate_id(&self) -> String {
        self.id.clone()
    }
}

impl Consumes for Mailer {
    type SomethingHappened = SomethingHappened;
}
