// A misspelt attribute key is an error that names the accepted keys.
#[allframe::service(confg = "architecture.toml", name = "rest-only")]
pub struct RestOnly;
