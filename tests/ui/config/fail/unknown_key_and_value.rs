// Unknown keys and words outside an enum suggest the nearest valid one.
#[allframe::service(config = "typo.toml", name = "api")]
pub struct Api;
