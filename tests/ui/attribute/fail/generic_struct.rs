// The runtime builds exactly one instance: no generics.
#[allframe::service(config = "architecture.toml", name = "rest-only")]
pub struct RestOnly<T>(T);
