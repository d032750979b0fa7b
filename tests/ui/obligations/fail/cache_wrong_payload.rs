// `shelf-cache` is invalidated by `AccountOpened`: a payload whose `Event::TYPE` is another
// name fails the build naming the event and where the file lists it.
use allframe::cache::CacheSource;
use allframe::{BoxError, Ctx};

#[allframe::service(config = "architecture.toml", name = "shelf-cache")]
pub struct ShelfCache;

impl allframe::Service for ShelfCache {
    async fn init(_: &Ctx) -> Result<Self, BoxError> {
        Ok(Self)
    }
}

impl allframe::RestApi for ShelfCache {
    fn routes() -> allframe::Router<Self> {
        Self::cache_routes()
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AccountOpened {
    id: String,
}

impl allframe::Event for AccountOpened {
    const TYPE: &'static str = "AccountClosed";
    const VERSION: u32 = 1;
    const AGGREGATE_TYPE: &'static str = "Account";
    fn aggregate_id(&self) -> String {
        self.id.clone()
    }
}

pub struct Shelves;

impl CacheSource for Shelves {
    type Value = String;

    async fn load(&self, key: &str) -> Result<Option<String>, BoxError> {
        Ok(Some(key.to_owned()))
    }
}

impl Caches for ShelfCache {
    type Source = Shelves;

    async fn source(_: &Ctx) -> Result<Shelves, BoxError> {
        Ok(Shelves)
    }

    type AccountOpened = AccountOpened;

    async fn on_account_opened(&self, event: AccountOpened) -> Result<Vec<String>, BoxError> {
        Ok(vec![event.id])
    }
}
