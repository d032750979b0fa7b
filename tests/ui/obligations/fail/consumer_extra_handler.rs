// A handler for an event the file does not list (`on_something_else`) is an error: the
// file, not the code, says what the consumer handles.
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

impl Consumes for Mailer {
    type SomethingHappened = SomethingHappened;

    async fn on_something_happened(
        &self,
        _uow: &mut UnitOfWork,
        _event: SomethingHappened,
    ) -> Result<(), BoxError> {
        Ok(())
    }

    async fn on_something_else(
        &self,
        _uow: &mut UnitOfWork,
        _event: SomethingHappened,
    ) -> Result<(), BoxError> {
        Ok(())
    }
}
