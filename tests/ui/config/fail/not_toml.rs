// A file that is not TOML names the line of the syntax error.
#[allframe::service(config = "not-toml.toml", name = "api")]
pub struct Api;
