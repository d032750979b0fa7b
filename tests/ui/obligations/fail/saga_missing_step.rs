// The file lists `ChargeCard` as a step of `CheckoutSaga`; each step is a method of the saga's
// trait, so an impl without it is the compiler's own E0046, naming `charge_card`.
use allframe::BoxError;
use allframe::saga::SagaStep;

#[allframe::service(config = "architecture.toml", name = "orders")]
pub struct Orders;

impl allframe::Service for Orders {
    async fn init(_: &allframe::Ctx) -> Result<Self, BoxError> {
        Ok(Self)
    }
}

impl allframe::RestApi for Orders {
    fn routes() -> allframe::Router<Self> {
        allframe::saga::routes::<Self>()
    }
}

impl CheckoutSaga for Orders {
    type Input = serde_json::Value;

    async fn reserve_stock(&self, _: &mut SagaStep<Self::Input>) -> Result<(), BoxError> {
        Ok(())
    }

    async fn release_stock(&self, _: &mut SagaStep<Self::Input>) -> Result<(), BoxError> {
        Ok(())
    }

    async fn refund_card(&self, _: &mut SagaStep<Self::Input>) -> Result<(), BoxError> {
        Ok(())
    }
}
