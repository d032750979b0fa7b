//! Every environment variable the generated infrastructure sets for a service is one of the
//! contract (`allframe-env`): read by the runtime, or listed as handed to service code. A name
//! spelt differently in a template than in the runtime fails here, not in production.

use std::collections::BTreeSet;

use super::kubernetes::manifests;
use serde_json::Value;

use super::{cases, generate, planned, reference, yaml};

/// The names of every variable `files` sets for the services called `services`: compose
/// `environment`, Kubernetes container `env`, kustomize config-map literals and Dockerfile
/// `ENV`. (The engines compose runs beside them have variables of their own.)
fn variables_set(
    files: &std::collections::BTreeMap<String, String>,
    services: &[String],
) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let compose = yaml(files, "infrastructure/docker/docker-compose.yml");
    for service in services {
        if let Some(environment) = compose["services"][service]["environment"].as_object() {
            names.extend(environment.keys().cloned());
        }
    }
    for manifest in manifests(files).values() {
        let containers = &manifest["spec"]["template"]["spec"]["containers"];
        for container in containers.as_array().into_iter().flatten() {
            for var in container["env"].as_array().into_iter().flatten() {
                names.extend(var["name"].as_str().map(str::to_owned));
            }
        }
        for generator in manifest["configMapGenerator"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for literal in generator["literals"].as_array().into_iter().flatten() {
                let literal = literal.as_str().unwrap_or_default();
                names.extend(literal.split_once('=').map(|(name, _)| name.to_owned()));
            }
        }
    }
    for (path, text) in files {
        if path.ends_with("Dockerfile") {
            for line in text.lines() {
                let assignment = line.trim_start().trim_start_matches("ENV ");
                if let Some((name, _)) = assignment.split_once('=')
                    && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                {
                    names.insert(name.to_owned());
                }
            }
        }
    }
    names
}

#[test]
fn every_variable_the_infrastructure_sets_is_in_the_contract() {
    let mut seen = BTreeSet::new();
    for (case, toml) in cases() {
        let files = generate(&toml);
        let source = allframe_config::SourceFile::new("architecture.toml", toml.as_str());
        let arch = allframe_config::check(&source).expect("a valid case");
        let services: Vec<String> = arch
            .services()
            .iter()
            .map(|s| s.name().to_owned())
            .collect();
        // `<PROVIDER>_URL`: where a provider of a gateway or a saga orchestrator answers.
        let providers: Vec<String> = arch
            .services()
            .iter()
            .filter_map(|s| s.archetype.integrations().map(|i| &i.providers))
            .flatten()
            .map(|p| allframe_env::provider_url(p))
            .collect();
        for name in variables_set(&files, &services) {
            // `<SERVICE>_URL`: where another service of the file listens.
            let peer = name.strip_suffix("_URL").is_some_and(|prefix| {
                services
                    .iter()
                    .any(|s| s.replace('-', "_").to_uppercase() == prefix)
            });
            assert!(
                peer || providers.contains(&name) || allframe_env::lookup(&name).is_some(),
                "case `{case}` sets `{name}`, which allframe-env does not list"
            );
            seen.insert(name);
        }
    }
    // The runtime's own variables are among them, spelt as the runtime reads them.
    for var in [
        allframe_env::PORT,
        allframe_env::DATABASE_URL,
        allframe_env::ALLFRAME_SHUTDOWN_DELAY_SECS,
        allframe_env::ADMIN_PORT,
        allframe_env::ALLFRAME_ADMIN_BIND_ADDR,
    ] {
        assert!(seen.contains(var.name), "no case sets {}", var.name);
    }
}

/// A consumer's admin API (its dead letters, for `cargo allframe dlq`) is published on the
/// host's loopback at its HTTP port + 1000 under Compose, and is a container port under
/// Kubernetes; the token comes from the developer's shell or the service's Secret and is never
/// written down. A service without an admin API gets none of it.
#[test]
fn a_consumers_admin_api_is_reachable_on_the_host_loopback_only() {
    let toml = "[architecture]\nname = \"shop\"\n\n[[services]]\nname = \"orders\"\ntype = \"stateless\"\n\n[services.domain]\nevents = [\"OrderPlaced\"]\n\n[[services]]\nname = \"mailer\"\ntype = \"consumer\"\n\n[services.consumer]\nevents = [\"OrderPlaced\"]\n";
    let files = generate(toml);
    let compose = yaml(&files, "infrastructure/docker/docker-compose.yml");
    let mailer = &compose["services"]["mailer"];
    let environment = &mailer["environment"];
    let http = match &environment["PORT"] {
        Value::String(port) => port.parse::<u16>().ok(),
        port => port.as_u64().and_then(|port| u16::try_from(port).ok()),
    }
    .expect("PORT");
    let admin = http + 1000;
    let ports: Vec<&str> = mailer["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        ports.contains(&format!("127.0.0.1:{admin}:{admin}").as_str()),
        "{ports:?}"
    );
    let set = |value: &Value| {
        value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned)
    };
    assert_eq!(set(&environment["ADMIN_PORT"]), admin.to_string());
    assert_eq!(environment["ALLFRAME_ADMIN_BIND_ADDR"], "0.0.0.0");
    assert_eq!(
        environment["ALLFRAME_ADMIN_TOKEN"],
        "${ALLFRAME_ADMIN_TOKEN:-}"
    );
    assert!(compose["services"]["orders"]["environment"]["ADMIN_PORT"].is_null());

    let workloads: Vec<Value> = manifests(&files)
        .into_values()
        .filter(|m| m["metadata"]["name"] == "mailer" && m["spec"]["template"].is_object())
        .collect();
    let [workload] = workloads.as_slice() else {
        panic!("one workload of mailer: {workloads:?}");
    };
    let container = &workload["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .any(|p| p["name"] == "admin" && p["containerPort"] == admin),
        "{container}"
    );
}

/// What Compose takes from the developer's shell (`${ALLFRAME_ADMIN_TOKEN:-}`, a channel's
/// URL) means nothing on a cloud: written into fly.toml or a task definition it would be that
/// literal text — an admin token anyone can read. Only Compose gets those entries.
#[test]
fn values_from_the_developers_shell_stay_in_compose() {
    let files = planned(&reference());
    let compose = &files["infrastructure/docker/docker-compose.yml"];
    for shell in [
        "${ALLFRAME_ADMIN_TOKEN:-}",
        "${SMTP_URL:-}",
        "${EMAIL_FROM:-}",
    ] {
        assert!(compose.contains(shell), "Compose passes {shell} on");
        for (path, text) in &files {
            assert!(
                path.starts_with("infrastructure/docker/") || !text.contains(&shell[1..]),
                "{path} holds {shell}"
            );
        }
    }
}
