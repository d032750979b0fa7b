// The payload of `SomethingHappened` must be the event of that name: a type whose
// `Event::TYPE` is another event's fails the build, naming the event and the fix.
use allframe::{BoxError, UnitOfWork};

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

#[derive(serde::Deserialize, serde::Serialize)]
pub struct SomethingElse {
    id: String,
}

impl allframe::Event for SomethingElse {
    const TYPE: &'static str = "SomethingElse";
    const VERSION: u32 = 1;
    const AGGREGATE_TYPE: &'static str = "Thing";
    fn aggregate_id(&self) -> String {
        self.id.clone()
    }
}

impl Consumes for Mailer {
    type SomethingHappened = SomethingElse;

    async fn on_something_happened(
        &self,
        _uow: &mut UnitOfWork,
        _event: SomethingElse,
    ) -> Result<(), BoxError> {
        Ok(())
    }
}
