// The file lists the projection `Balances` of `ledger`; each projection is an associated type of
// `EventSourced`, so an impl without it is the compiler's own E0046, naming `Balances`.
use allframe::eventstore::Aggregate;
use serde::{Deserialize, Serialize};

#[allframe::service(config = "architecture.toml", name = "ledger")]
pub struct Ledger;

impl allframe::Service for Ledger {
    async fn init(_: &allframe::Ctx) -> Result<Self, allframe::BoxError> {
        Ok(Self)
    }
}

impl allframe::RestApi for Ledger {
    fn routes() -> allframe::Router<Self> {
        Self::aggregate_routes()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountOpened {
    id: String,
}

impl allframe::Event for AccountOpened {
    const TYPE: &'static str = "AccountOpened";
    const VERSION: u32 = 1;
    const AGGREGATE_TYPE: &'static str = "Account";
    fn aggregate_id(&self) -> String {
        self.id.clone()
    }
}

#[derive(Debug, Clone, allframe::AggregateEvent)]
pub enum AccountEvent {
    Opened(AccountOpened),
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Account;

impl Aggregate for Account {
    const TYPE: &'static str = "Account";
    type Event = AccountEvent;
    type Command = String;
    type Error = std::fmt::Error;

    fn handle(&self, id: &str, _: String) -> Result<Vec<AccountEvent>, std::fmt::Error> {
        Ok(vec![AccountEvent::Opened(AccountOpened { id: id.to_owned() })])
    }

    fn apply(&mut self, _: &AccountEvent) {}
}

impl EventSourced for Ledger {
    type Account = Account;
}
