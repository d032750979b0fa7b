// The file gives `notifier` the channels `email` and `sms`: each handler takes them as
// `notify: &mut dyn Channels` (a trait of both), and one written without it does not compile.

#[allframe::service(config = "architecture.toml", name = "notifier")]
pub struct Notifier;

impl allframe::Service for Notifier {
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

impl Consumes for Notifier {
    type SomethingHappened = SomethingHappened;

    async fn on_something_happened(
        &self,
        _uow: &mut allframe::UnitOfWork,
        _event: SomethingHappened,
    ) -> Result<(), allframe::BoxError> {
        Ok(())
    }
}
