//! The clouds' Terraform: only the clouds the file names are generated, and `${VAR}` values
//! become Terraform variables that are never written into a file.

use super::*;

/// `SENSORS` on Pub/Sub. The producer publishes, and no runtime adapter speaks Pub/Sub yet (a
/// config error), so here `ingest` is a stateless service declaring the event it would publish.
pub(super) fn sensors_on_pubsub() -> String {
    SENSORS
        .replace("\"nats\"", "\"pubsub\"")
        .replace("type = \"producer\"", "type = \"stateless\"")
        .replace("[services.messaging]\npattern = \"outbox\"\n", "")
}

#[test]
fn only_the_clouds_of_the_file_are_generated() {
    let files = generate(SENSORS);
    let has = |prefix: &str| files.keys().any(|p| p.starts_with(prefix));
    assert!(has("infrastructure/terraform/gcp/"));
    assert!(has("infrastructure/terraform/modules/cloud-run-service/"));
    assert!(!has("infrastructure/terraform/aws/"));
    assert!(!has("infrastructure/terraform/modules/lambda-service/"));
    assert!(!has("infrastructure/fly/"));
    assert!(!files.contains_key("Shuttle.toml"));
    // AWS region names map to the nearest Google Cloud region.
    assert_eq!(
        files["infrastructure/terraform/gcp/regions/europe-west1.tfvars"].trim(),
        "region = \"europe-west1\""
    );
    // On Pub/Sub, the consumer's subscription dead-letters after its max_retries deliveries.
    let pubsub = generate(&sensors_on_pubsub());
    let messaging = &pubsub["infrastructure/terraform/gcp/messaging.tf"];
    assert!(
        messaging.contains("max_delivery_attempts = 7"),
        "{messaging}"
    );
    assert!(messaging.contains("resource \"google_pubsub_topic\" \"alerts_dlq\""));

    let full = generate(&reference());
    for name in REFERENCE_SERVICES {
        let fly: toml::Table =
            toml::from_str(&full[&format!("infrastructure/fly/{name}/fly.toml")])
                .expect("fly.toml is TOML");
        assert_eq!(fly["app"].as_str(), Some(format!("my-org-{name}").as_str()));
        assert_eq!(fly["deploy"]["strategy"].as_str(), Some("canary"));
        assert_eq!(fly["primary_region"].as_str(), Some("iad"));
        assert_eq!(
            fly["http_service"]["checks"][0]["path"].as_str(),
            Some("/health/ready")
        );
        assert!(!fly["env"].as_table().unwrap().contains_key("DATABASE_URL"));
    }
    let shuttle: toml::Table = toml::from_str(&full["Shuttle.toml"]).expect("TOML");
    assert_eq!(shuttle["name"].as_str(), Some("my-project"));
    for region in ["us-east-1", "eu-west-1"] {
        assert!(full.contains_key(&format!(
            "infrastructure/terraform/aws/regions/{region}.tfvars"
        )));
    }
    // Lambda runtime, canary: CodeDeploy per service, Glue only when the registry is glue.
    let main = &full["infrastructure/terraform/aws/main.tf"];
    assert_eq!(
        main.matches("source = \"../modules/lambda-service\"")
            .count(),
        11
    );
    assert_eq!(
        main.matches("source = \"../modules/canary-deployment\"")
            .count(),
        11
    );
    assert!(!full.keys().any(|p| p.contains("schema-registry")));
    let glue = generate(&reference().replace("\"confluent\"", "\"glue\""));
    assert!(glue.contains_key("infrastructure/terraform/aws/schemas/UserCreated.avsc"));
    assert!(
        glue["infrastructure/terraform/aws/messaging.tf"].contains("../modules/schema-registry")
    );
}

#[test]
fn deferred_values_become_terraform_variables_and_are_never_written() {
    let arch = SENSORS.replace(
        "[[services]]\nname = \"ingest\"",
        "[security.authentication]\nprovider = \"custom\"\njwt_issuer = \"https://${AUTH_DOMAIN}/\"\n\n[[services]]\nname = \"ingest\"",
    );
    let files = generate(&arch);
    let variables = &files["infrastructure/terraform/gcp/variables.tf"];
    assert!(
        variables.contains("variable \"auth_domain\""),
        "{variables}"
    );
    assert!(
        variables.contains("variable \"gcp_project_id\""),
        "{variables}"
    );
    let main = &files["infrastructure/terraform/gcp/main.tf"];
    assert!(main.contains("project = var.gcp_project_id"), "{main}");
    assert!(
        main.contains("AUTH_DOMAIN") && main.contains("= var.auth_domain"),
        "{main}"
    );

    // Set in the environment of ignite, the values still appear nowhere.
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("architecture.toml"), &arch).expect("write");
    cargo_allframe_with_env(
        dir.path(),
        &["ignite", "--out", "ws"],
        &[
            ("AUTH_DOMAIN", "auth-secret-7f3a"),
            ("GCP_PROJECT_ID", "project-secret-91c2"),
        ],
    )
    .ok();
    for (path, bytes) in common::snapshot(&dir.path().join("ws")) {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("secret-7f3a") && !text.contains("secret-91c2"),
            "{} holds a value of the environment",
            path.display()
        );
    }
}
