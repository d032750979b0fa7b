//! Every environment variable the generated infrastructure sets for a service is one of the
//! contract (`allframe-env`): read by the runtime, or listed as handed to service code. A name
//! spelt differently in a template than in the runtime fails here, not in production.

use std::collections::BTreeSet;

use super::kubernetes::manifests;
use super::{cases, generate, yaml};

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
        let services: Vec<String> = allframe_config::check(&source)
            .expect("a valid case")
            .services()
            .iter()
            .map(|s| s.name().to_owned())
            .collect();
        for name in variables_set(&files, &services) {
            // `<SERVICE>_URL`: where another service of the file listens.
            let peer = name.strip_suffix("_URL").is_some_and(|prefix| {
                services
                    .iter()
                    .any(|s| s.replace('-', "_").to_uppercase() == prefix)
            });
            assert!(
                peer || allframe_env::lookup(&name).is_some(),
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
    ] {
        assert!(seen.contains(var.name), "no case sets {}", var.name);
    }
}
