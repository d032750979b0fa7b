// The attribute goes on the service's struct.
#[allframe::service(config = "architecture.toml", name = "rest-only")]
fn rest_only() {}
