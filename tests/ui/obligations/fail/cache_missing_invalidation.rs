// The file makes `AccountOpened` invalidate `shelf-cache`; the method naming the keys it makes
// stale is an item of `Caches`, so an impl without it is the compiler's own E0046, naming it.
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
    const TYPE: &'static str = "AccountOpened";
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
}
