//! The Terraform of Fly.io, Shuttle and the feature flag service: generated only when the file
//! asks for it, with `${VAR}` values kept as variables and secrets out of every file. Their
//! snapshots and external validation are the cases of the parent module.

use std::collections::{BTreeMap, BTreeSet};

use super::common::{self, cargo_allframe_with_env};
use super::{REFERENCE_SERVICES, SENSORS, cases, generate, reference, yaml};

/// The Terraform files of `files` under `dir`, by path.
fn terraform_under<'a>(files: &'a BTreeMap<String, String>, dir: &str) -> BTreeSet<&'a str> {
    files
        .keys()
        .filter(|p| p.starts_with(dir))
        .map(String::as_str)
        .collect()
}

fn variables_of_fly(files: &BTreeMap<String, String>) -> &str {
    &files["infrastructure/terraform/fly/variables.tf"]
}

#[test]
fn fly_gets_a_terraform_root_with_one_module_per_service_fanned_out_over_regions() {
    let files = generate(&reference());
    let main = &files["infrastructure/terraform/fly/main.tf"];
    assert_eq!(
        main.matches("source = \"../modules/fly-service\"").count(),
        REFERENCE_SERVICES.len()
    );
    for name in REFERENCE_SERVICES {
        // The app of the Terraform root is the app of the service's fly.toml.
        let fly: toml::Table =
            toml::from_str(&files[&format!("infrastructure/fly/{name}/fly.toml")]).expect("TOML");
        let app = fly["app"].as_str().unwrap();
        assert!(
            main.contains(&format!("app_name            = \"{app}\"")),
            "{main}"
        );
        assert!(main.contains(&format!("\"registry.fly.io/{app}:${{var.image_tag}}\"")));
    }
    // [cloud] regions map to Fly regions: one Machine set per region.
    let variables = variables_of_fly(&files);
    assert!(
        variables.contains("default     = [\"iad\", \"lhr\"]"),
        "{variables}"
    );
    assert!(
        variables.contains("default     = \"my-org\""),
        "{variables}"
    );
    let module = &files["infrastructure/terraform/modules/fly-service/main.tf"];
    for resource in ["fly_app", "fly_ip", "fly_machine"] {
        assert!(
            module.contains(&format!("resource \"{resource}\"")),
            "{module}"
        );
    }
    assert!(module.contains("setproduct(var.regions, range(var.machines_per_region))"));
    let versions = &files["infrastructure/terraform/modules/fly-service/versions.tf"];
    assert!(
        versions.contains("source  = \"fly-apps/fly\""),
        "{versions}"
    );
    // Connection URLs are Fly secrets, never part of the Machines' environment.
    assert!(
        !main
            .lines()
            .any(|l| l.trim_start().starts_with("DATABASE_URL") && l.contains(" = ")),
        "{main}"
    );
    // [feature_flags] (unleash): the endpoint is a variable, the SDK key one more Fly secret.
    assert!(main.contains(
        "# Secrets: `fly secrets set DATABASE_URL=… FEATURE_FLAGS_SDK_KEY=… --app my-org-web-bff`."
    ));
    assert_eq!(
        main.matches("FEATURE_FLAGS_URL                   = var.feature_flags_url")
            .count(),
        REFERENCE_SERVICES.len(),
        "{main}"
    );
    assert!(variables_of_fly(&files).contains("variable \"feature_flags_url\""));

    // Without [cloud.fly], none of it.
    let gcp = generate(SENSORS);
    assert!(terraform_under(&gcp, "infrastructure/terraform/fly/").is_empty());
    assert!(terraform_under(&gcp, "infrastructure/terraform/modules/fly-service/").is_empty());
    assert!(terraform_under(&gcp, "infrastructure/terraform/modules/shuttle-service/").is_empty());
    assert!(terraform_under(&gcp, "infrastructure/terraform/shuttle/").is_empty());
}

#[test]
fn shuttle_deploys_through_the_cli_with_secrets_from_the_environment() {
    let files = generate(&reference());
    let module = &files["infrastructure/terraform/modules/shuttle-service/main.tf"];
    assert!(
        module.contains("resource \"terraform_data\" \"deploy\""),
        "{module}"
    );
    assert!(
        module.contains("shuttle --name \"$SHUTTLE_PROJECT\" deploy \"$@\""),
        "{module}"
    );
    let variables = &files["infrastructure/terraform/modules/shuttle-service/variables.tf"];
    let secrets = variables
        .split("variable ")
        .find(|v| v.starts_with("\"secrets\""))
        .expect("a secrets variable");
    assert!(secrets.contains("sensitive   = true"), "{secrets}");
    let root = &files["infrastructure/terraform/shuttle/main.tf"];
    assert!(
        root.contains("project         = var.shuttle_project"),
        "{root}"
    );
    assert!(
        files["infrastructure/terraform/shuttle/variables.tf"]
            .contains("default     = \"my-project\"")
    );
}

#[test]
fn fly_and_shuttle_names_from_the_environment_stay_variables() {
    let arch = reference()
        .replace("org = \"my-org\"", "org = \"${FLY_ORG}\"")
        .replace(
            "project = \"my-project\"",
            "project = \"${SHUTTLE_PROJECT}\"",
        );
    let files = generate(&arch);
    let fly = &files["infrastructure/terraform/fly/main.tf"];
    assert!(fly.contains("org                 = var.fly_org"), "{fly}");
    let variables = &files["infrastructure/terraform/fly/variables.tf"];
    assert!(variables.contains("variable \"fly_org\""));
    assert!(!variables.contains("default     = \"my-org\""));
    assert!(
        files["infrastructure/terraform/shuttle/main.tf"]
            .contains("project         = var.shuttle_project")
    );
    assert!(
        files["infrastructure/terraform/shuttle/variables.tf"].contains("TF_VAR_shuttle_project")
    );

    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("architecture.toml"), &arch).expect("write");
    cargo_allframe_with_env(
        dir.path(),
        &["ignite", "--out", "ws"],
        &[
            ("FLY_ORG", "fly-secret-org-5d1e"),
            ("SHUTTLE_PROJECT", "shuttle-secret-77ab"),
            ("AWS_ACCOUNT_ID", "aws-secret-0c4f"),
            ("GCP_PROJECT_ID", "gcp-secret-e9a0"),
        ],
    )
    .ok();
    for (path, bytes) in common::snapshot(&dir.path().join("ws")) {
        let text = String::from_utf8_lossy(&bytes);
        for value in [
            "secret-org-5d1e",
            "secret-77ab",
            "secret-0c4f",
            "secret-e9a0",
        ] {
            assert!(
                !text.contains(value),
                "{} holds a value of the environment",
                path.display()
            );
        }
    }
}

/// `base` (two services) with `sections` before its services.
fn with_sections(sections: &str) -> String {
    let (_, base) = cases()
        .into_iter()
        .find(|(name, _)| *name == "shuttle_literal_project")
        .expect("the case");
    base.replace("[cloud.shuttle]\nproject = \"shop-prod\"\n", sections)
}

#[test]
fn feature_flag_infrastructure_follows_the_provider_and_reaches_the_services() {
    for (provider, resources, source) in [
        (
            "unleash",
            &[
                "unleash_project",
                "unleash_environment",
                "unleash_project_environment",
                "unleash_api_token",
            ][..],
            "Unleash/unleash",
        ),
        (
            "launchdarkly",
            &["launchdarkly_project"][..],
            "launchdarkly/launchdarkly",
        ),
        (
            "flagsmith",
            &["flagsmith_project", "flagsmith_environment"][..],
            "Flagsmith/flagsmith",
        ),
    ] {
        let files = generate(&with_sections(&format!(
            "[feature_flags]\nprovider = \"{provider}\"\nsync_interval_seconds = 30\n\n[cloud]\nregions = [\"us-east-1\", \"eu-west-1\"]\n\n[cloud.aws]\nruntime = \"fargate\"\n\n[cloud.gcp]\nproject_id = \"shop-prod\"\n"
        )));
        let module = &files["infrastructure/terraform/modules/feature-flags/main.tf"];
        for resource in resources {
            assert!(
                module.contains(&format!("resource \"{resource}\"")),
                "{provider}: {module}"
            );
        }
        let versions = &files["infrastructure/terraform/modules/feature-flags/versions.tf"];
        assert!(
            versions.contains(&format!("source  = \"{source}\"")),
            "{versions}"
        );
        assert!(
            files["infrastructure/terraform/modules/feature-flags/outputs.tf"]
                .contains("output \"server_keys\"")
        );
        // The root, applied once, stores each environment's key in both clouds' secret stores;
        // the AWS secret is replicated to the other region.
        let root = &files["infrastructure/terraform/feature-flags/main.tf"];
        assert!(
            root.contains("source   = \"../modules/secrets-manager\""),
            "{root}"
        );
        assert!(root.contains("resource \"google_secret_manager_secret_version\" \"sdk_key\""));
        let variables = &files["infrastructure/terraform/feature-flags/variables.tf"];
        assert!(
            variables.contains("default     = \"us-east-1\""),
            "{variables}"
        );
        assert!(
            variables.contains("default     = [\"eu-west-1\"]"),
            "{variables}"
        );
        assert!(variables.contains("default     = [\"dev\", \"staging\", \"production\"]"));
        // Every service learns the provider, the endpoint and where its key is.
        let aws = &files["infrastructure/terraform/aws/main.tf"];
        assert_eq!(
            aws.matches(&format!(
                "FEATURE_FLAGS_PROVIDER              = \"{provider}\""
            ))
            .count(),
            2,
            "{aws}"
        );
        assert_eq!(
            aws.matches("FEATURE_FLAGS_SYNC_INTERVAL_SECONDS = \"30\"")
                .count(),
            2
        );
        assert_eq!(aws.matches("FEATURE_FLAGS_SECRET_ARN            = data.aws_secretsmanager_secret.feature_flags.arn").count(), 2);
        assert_eq!(
            aws.matches("Resource = [data.aws_secretsmanager_secret.feature_flags.arn]")
                .count(),
            2
        );
        assert!(files.contains_key("infrastructure/terraform/aws/feature-flags.tf"));
        let gcp = &files["infrastructure/terraform/gcp/main.tf"];
        assert_eq!(
            gcp.matches(
                "FEATURE_FLAGS_SDK_KEY = data.google_secret_manager_secret.feature_flags.secret_id"
            )
            .count(),
            2,
            "{gcp}"
        );
        assert!(files["infrastructure/terraform/gcp/feature-flags.tf"].contains("secretAccessor"));
    }

    // `env` flags (the default) need no infrastructure.
    for sections in [
        "[feature_flags]\nprovider = \"env\"\n\n[cloud.aws]\nruntime = \"lambda\"\n",
        "[cloud.aws]\nruntime = \"lambda\"\n",
    ] {
        let files = generate(&with_sections(sections));
        assert!(terraform_under(&files, "infrastructure/terraform/feature-flags/").is_empty());
        assert!(
            terraform_under(&files, "infrastructure/terraform/modules/feature-flags/").is_empty()
        );
        assert!(!files.contains_key("infrastructure/terraform/aws/feature-flags.tf"));
        assert!(!files["infrastructure/terraform/aws/main.tf"].contains("FEATURE_FLAGS"));
    }

    // Without a cloud, the root only creates the flag project and outputs the keys.
    let alone = generate(&with_sections("[feature_flags]\nprovider = \"unleash\"\n"));
    assert_eq!(
        terraform_under(&alone, "infrastructure/terraform/"),
        [
            "infrastructure/terraform/feature-flags/main.tf",
            "infrastructure/terraform/feature-flags/outputs.tf",
            "infrastructure/terraform/feature-flags/variables.tf",
            "infrastructure/terraform/feature-flags/versions.tf",
            "infrastructure/terraform/modules/feature-flags/main.tf",
            "infrastructure/terraform/modules/feature-flags/outputs.tf",
            "infrastructure/terraform/modules/feature-flags/variables.tf",
            "infrastructure/terraform/modules/feature-flags/versions.tf",
        ]
        .into_iter()
        .collect::<BTreeSet<_>>()
    );
}

/// The `FEATURE_FLAGS_*` entries of the first container of `workload`, by name.
fn flag_env(workload: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    workload["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter(|e| e["name"].as_str().unwrap().starts_with("FEATURE_FLAGS"))
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

#[test]
fn k8s_fly_and_compose_services_get_the_flag_settings_but_never_the_key() {
    // The reference file: unleash, a canary (Rollouts), Fly.io.
    let files = generate(&reference());
    let compose = yaml(&files, "infrastructure/docker/docker-compose.yml");
    for name in REFERENCE_SERVICES {
        let rollout = yaml(
            &files,
            &format!("infrastructure/k8s/base/{name}/rollout.yaml"),
        );
        let env = flag_env(&rollout);
        assert_eq!(env["FEATURE_FLAGS_PROVIDER"]["value"], "unleash", "{env:?}");
        assert_eq!(env["FEATURE_FLAGS_SYNC_INTERVAL_SECONDS"]["value"], "10");
        assert_eq!(
            env["FEATURE_FLAGS_DEFAULT_STRATEGY"]["value"],
            "gradual-rollout"
        );
        let url = &env["FEATURE_FLAGS_URL"]["valueFrom"]["configMapKeyRef"];
        assert_eq!(url["name"], "e-commerce-platform-feature-flags");
        let key = &env["FEATURE_FLAGS_SDK_KEY"];
        assert!(key.get("value").is_none(), "{key}");
        assert_eq!(
            key["valueFrom"]["secretKeyRef"],
            serde_json::json!({"name": "e-commerce-platform-feature-flags", "key": "FEATURE_FLAGS_SDK_KEY"})
        );

        let fly: toml::Table =
            toml::from_str(&files[&format!("infrastructure/fly/{name}/fly.toml")]).expect("TOML");
        let fly_env = fly["env"].as_table().expect("[env]");
        assert_eq!(fly_env["FEATURE_FLAGS_PROVIDER"].as_str(), Some("unleash"));
        assert_eq!(
            fly_env["FEATURE_FLAGS_SYNC_INTERVAL_SECONDS"].as_str(),
            Some("10")
        );
        assert!(!fly_env.contains_key("FEATURE_FLAGS_SDK_KEY"));

        // Compose: the provider, overridable, and the endpoint and key from the shell.
        let service_env = &compose["services"][name]["environment"];
        assert_eq!(
            service_env["FEATURE_FLAGS_PROVIDER"],
            "${FEATURE_FLAGS_PROVIDER:-unleash}"
        );
        assert_eq!(service_env["FEATURE_FLAGS_URL"], "${FEATURE_FLAGS_URL:-}");
        assert_eq!(
            service_env["FEATURE_FLAGS_SDK_KEY"],
            "${FEATURE_FLAGS_SDK_KEY:-}"
        );
    }
    // The endpoint is a ConfigMap key of the base, replaced by every overlay.
    let base = yaml(&files, "infrastructure/k8s/base/kustomization.yaml");
    let generators = base["configMapGenerator"].as_array().unwrap();
    assert!(
        generators
            .iter()
            .any(|g| g["name"] == "e-commerce-platform-feature-flags"
                && g["literals"] == serde_json::json!(["FEATURE_FLAGS_URL="]))
    );
    for overlay in ["dev", "staging", "production"] {
        let k = yaml(
            &files,
            &format!("infrastructure/k8s/overlays/{overlay}/kustomization.yaml"),
        );
        assert_eq!(k["configMapGenerator"][0]["behavior"], "merge", "{k}");
        assert_eq!(
            k["configMapGenerator"][0]["name"],
            "e-commerce-platform-feature-flags"
        );
    }
    // Kustomize renames the generated ConfigMap in the Rollouts' references too.
    assert!(
        files["infrastructure/k8s/base/kustomizeconfig/argo-rollouts.yaml"]
            .contains("path: spec/template/spec/containers/env/valueFrom/configMapKeyRef/name")
    );
    // A hosted service has a known endpoint.
    let hosted =
        generate(&reference().replace("provider = \"unleash\"", "provider = \"launchdarkly\""));
    let fly: toml::Table =
        toml::from_str(&hosted["infrastructure/fly/web-bff/fly.toml"]).expect("TOML");
    assert_eq!(
        fly["env"]["FEATURE_FLAGS_URL"].as_str(),
        Some("https://sdk.launchdarkly.com")
    );
    assert!(
        hosted["infrastructure/k8s/base/kustomization.yaml"]
            .contains("- FEATURE_FLAGS_URL=https://sdk.launchdarkly.com")
    );

    // `env` flags: nothing to pass on.
    let env = generate(&reference().replace("provider = \"unleash\"", "provider = \"env\""));
    for (path, text) in &env {
        if path.starts_with("infrastructure/k8s/")
            || path.starts_with("infrastructure/fly/")
            || path.starts_with("infrastructure/docker/")
        {
            assert!(!text.contains("FEATURE_FLAGS"), "{path}: {text}");
        }
    }
}
