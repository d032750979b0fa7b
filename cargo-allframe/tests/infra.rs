//! The infrastructure and docs ignite writes: the compose files and Kubernetes manifests parsed
//! and checked for structure, the clouds and strategies each file asks for (and only those),
//! `${VAR}` values kept as variables, the diagram, snapshots of whole trees, and re-ignite
//! keeping edits to infrastructure files.

mod common;
#[path = "infra/env_contract.rs"]
mod env_contract;
#[path = "infra/kubernetes.rs"]
mod kubernetes;
#[path = "infra/paas_and_flags.rs"]
mod paas_and_flags;
#[path = "infra/pulumi.rs"]
mod pulumi;
#[path = "infra/terraform.rs"]
mod terraform;

use std::collections::{BTreeMap, BTreeSet};

use allframe_config::SourceFile;
use cargo_allframe::context::RuntimeSource;
use cargo_allframe::plan;
use cargo_allframe::templates::Renderer;
use common::{cargo_allframe, cargo_allframe_with_env, listed, read, repository};
use serde_json::Value;
use terraform::sensors_on_pubsub;

/// The infrastructure, docs and CI files ignite plans for `toml`, by path; the Pulumi
/// programs have their own tests and snapshots (`infra/pulumi.rs`).
fn generate(toml: &str) -> BTreeMap<String, String> {
    let mut files = planned(toml);
    files.retain(|path, _| !path.starts_with("infrastructure/pulumi/"));
    files
}

/// Every infrastructure, docs and CI file of `toml` as it will be once ignite generates every
/// service type, by path: the templates of every archetype, with every service deployable.
/// (What ignite plans today, with the types it does not generate left out, is checked by
/// `services_without_a_crate_get_no_infrastructure`.)
fn planned(toml: &str) -> BTreeMap<String, String> {
    let source = SourceFile::new("architecture.toml", toml);
    let architecture = allframe_config::check(&source).unwrap_or_else(|e| panic!("{e:?}"));
    let renderer = Renderer::new().expect("templates parse");
    let every_service = architecture
        .services()
        .iter()
        .map(|s| s.name().to_owned())
        .collect();
    cargo_allframe::infra::plan(&architecture, &every_service, &renderer)
        .expect("plan")
        .into_iter()
        .map(|f| (f.path, String::from_utf8(f.contents).expect("utf-8")))
        .collect()
}

/// The infrastructure, docs and CI files ignite plans for `toml` today.
fn ignited(toml: &str) -> BTreeMap<String, String> {
    let source = SourceFile::new("architecture.toml", toml);
    let architecture = allframe_config::check(&source).unwrap_or_else(|e| panic!("{e:?}"));
    let renderer = Renderer::new().expect("templates parse");
    let runtime = RuntimeSource::Version("0.1.0".into());
    plan::plan(&architecture, toml.as_bytes(), &runtime, &renderer)
        .expect("plan")
        .files
        .into_iter()
        .filter(|f| {
            ["infrastructure/", "docs/", ".github/", "Shuttle.toml"]
                .iter()
                .any(|prefix| f.path.starts_with(prefix))
        })
        .map(|f| (f.path, String::from_utf8(f.contents).expect("utf-8")))
        .collect()
}

fn reference() -> String {
    read(&repository().join("examples/reference/architecture.toml"))
}

fn yaml(files: &BTreeMap<String, String>, path: &str) -> Value {
    let text = files
        .get(path)
        .unwrap_or_else(|| panic!("{path} in {:#?}", files.keys()));
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}\n{text}"))
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Host ports a compose service publishes.
fn host_ports(service: &Value) -> Vec<u16> {
    service["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let text = p.as_str().expect("short port syntax");
            // `HOST:CONTAINER` or `IP:HOST:CONTAINER`.
            text.rsplit(':').nth(1).unwrap().parse().expect("a port")
        })
        .collect()
}

fn env<'a>(service: &'a Value, name: &str) -> Option<&'a str> {
    service["environment"][name].as_str()
}

const REFERENCE_SERVICES: &[&str] = &[
    "user-service",
    "web-bff",
    "order-service",
    "payment-gateway",
    "inventory-service",
    "notification-service",
    "realtime-gateway",
    "report-generator",
    "legacy-erp-adapter",
    "analytics-processor",
    "product-cache",
];

#[test]
fn compose_runs_every_service_and_exactly_the_engines_of_the_reference_file() {
    let files = generate(&reference());
    let compose = yaml(&files, "infrastructure/docker/docker-compose.yml");
    let services = &compose["services"];
    let mut expected = set(REFERENCE_SERVICES);
    expected.extend(set(&[
        "postgres",
        "redis",
        "kafka",
        "schema-registry",
        "otel-collector",
    ]));
    assert_eq!(keys(services), expected);

    // Every host port is published once.
    let mut seen = BTreeMap::new();
    for (name, service) in services.as_object().unwrap() {
        for port in host_ports(service) {
            if let Some(other) = seen.insert(port, name.clone()) {
                panic!("host port {port} published by {other} and {name}");
            }
        }
    }

    // Each service: built from its Dockerfile, health-checked on its own readiness endpoint,
    // its ports from the file, and waiting for the engines its URLs name.
    for name in REFERENCE_SERVICES {
        let service = &services[*name];
        assert_eq!(
            service["build"]["dockerfile"].as_str(),
            Some(format!("infrastructure/docker/services/{name}/Dockerfile").as_str())
        );
        let port = env(service, "PORT").expect("PORT");
        let test = service["healthcheck"]["test"].as_array().expect("test");
        assert_eq!(
            test.last().and_then(Value::as_str),
            Some(format!("http://127.0.0.1:{port}/health/ready").as_str())
        );
        assert!(host_ports(service).contains(&port.parse().unwrap()));
        for dependency in keys(&service["depends_on"]) {
            assert!(
                services.get(&dependency).is_some(),
                "{name} waits for {dependency}"
            );
        }
        let database =
            env(service, "DATABASE_URL").expect("every reference service is on postgres");
        assert!(
            database.starts_with("postgres://allframe@postgres:5432/"),
            "{database}"
        );
        assert_eq!(
            service["depends_on"]["postgres"]["condition"].as_str(),
            Some("service_healthy")
        );
    }
    let users = &services["user-service"];
    assert_eq!(env(users, "GRPC_PORT"), Some("9090"));
    assert_eq!(host_ports(users), [8080, 9090]);
    assert_eq!(
        env(users, "DATABASE_URL"),
        Some("postgres://allframe@postgres:5432/user_service")
    );
    assert_eq!(env(users, "EVENT_BUS_URL"), Some("kafka://kafka:9092"));
    assert_eq!(env(users, "REDIS_URL"), Some("redis://redis:6379"));
    assert!(keys(&users["depends_on"]).contains("kafka"));
    // Only services that use Redis (idempotency store, cache backend) get it.
    let redis_users: BTreeSet<String> = REFERENCE_SERVICES
        .iter()
        .filter(|n| env(&services[**n], "REDIS_URL").is_some())
        .map(|n| (*n).to_owned())
        .collect();
    assert_eq!(redis_users, set(&["user-service", "product-cache"]));
    // The payment gateway neither publishes nor consumes: no bus.
    assert_eq!(env(&services["payment-gateway"], "EVENT_BUS_URL"), None);
    assert_eq!(
        env(&services["notification-service"], "EVENT_BUS_URL"),
        Some("kafka://kafka:9092")
    );
    // The BFF reaches the services it aggregates by their compose names.
    assert_eq!(
        env(&services["web-bff"], "ORDER_SERVICE_URL"),
        Some("http://order-service:8082")
    );

    // CI builds an image for each generated crate, and tests against the test engines.
    let ci = yaml(&files, ".github/workflows/ci.yml");
    assert_eq!(
        keys(&ci["jobs"]),
        set(&["check", "test", "images", "manifests"])
    );
    assert_eq!(
        ci["jobs"]["images"]["strategy"]["matrix"]["service"],
        serde_json::json!(REFERENCE_SERVICES)
    );
    let steps = ci["jobs"]["test"]["steps"].as_array().unwrap();
    let against = steps
        .iter()
        .find(|s| s["name"] == "Tests against the engines")
        .expect("a step against the engines");
    assert_eq!(
        against["env"]["DATABASE_URL"],
        "postgres://allframe@localhost:5432/allframe"
    );

    let init = &files["infrastructure/docker/postgres/init.sql"];
    assert_eq!(
        init.matches("CREATE DATABASE").count(),
        REFERENCE_SERVICES.len()
    );

    // The test stack: the same engines on tmpfs, and a test runner waiting for them.
    let test = yaml(&files, "infrastructure/docker/docker-compose.test.yml");
    let mut engines = set(&[
        "postgres",
        "redis",
        "kafka",
        "schema-registry",
        "otel-collector",
    ]);
    engines.insert("tests".into());
    assert_eq!(keys(&test["services"]), engines);
    assert!(test["services"]["postgres"]["tmpfs"].is_array());
    assert_eq!(
        test["services"]["tests"]["environment"]["EVENT_BUS_URL"].as_str(),
        Some("kafka://kafka:9092")
    );
    assert_eq!(
        keys(&test["services"]["tests"]["depends_on"]),
        set(&[
            "postgres",
            "redis",
            "kafka",
            "schema-registry",
            "otel-collector"
        ])
    );
}

const SENSORS: &str = r#"[architecture]
name = "sensors"

[settings]
event_bus = "nats"
default_database = "sqlite"
observability = "none"

[observability]
tracing = "none"

[deployment]
strategy = "blue-green"

[cloud]
primary = "gcp"
regions = ["eu-west-1"]

[cloud.gcp]
project_id = "${GCP_PROJECT_ID}"
runtime = "cloud-run"

[[services]]
name = "ingest"
type = "producer"

[services.domain]
entities = ["Reading"]
events = ["ReadingTaken"]

[services.messaging]
pattern = "outbox"

[services.ports]
inbound = ["rest:4222"]

[[services]]
name = "alerts"
type = "consumer"

[services.consumer]
events = ["ReadingTaken"]
max_retries = 7
"#;

#[test]
fn compose_engines_follow_the_bus_and_databases_and_avoid_service_ports() {
    let files = generate(SENSORS);
    let compose = yaml(&files, "infrastructure/docker/docker-compose.yml");
    let services = &compose["services"];
    // SQLite services need no database engine; no tracing, no collector.
    assert_eq!(keys(services), set(&["ingest", "alerts", "nats"]));
    // `ingest` listens on 4222, so NATS takes the next free host port.
    assert_eq!(host_ports(&services["ingest"]), [4222]);
    assert_eq!(host_ports(&services["nats"]), [4223]);
    assert_eq!(
        env(&services["alerts"], "EVENT_BUS_URL"),
        Some("nats://nats:4222")
    );
    assert_eq!(env(&services["alerts"], "DATABASE_URL"), None);
    assert!(!files.contains_key("infrastructure/docker/postgres/init.sql"));
    assert!(!files.contains_key("infrastructure/docker/otel-collector.yaml"));

    let quiet = generate(
        "[architecture]\nname = \"solo\"\n\n[settings]\ndefault_database = \"sqlite\"\n\n[[services]]\nname = \"api\"\ntype = \"stateless\"\n",
    );
    let compose = yaml(&quiet, "infrastructure/docker/docker-compose.yml");
    // No service publishes or consumes: no bus, although `event_bus` defaults to kafka.
    assert_eq!(keys(&compose["services"]), set(&["api", "otel-collector"]));
    let test = yaml(&quiet, "infrastructure/docker/docker-compose.test.yml");
    assert!(test["services"]["tests"].get("environment").is_none());
}

#[test]
fn rabbitmq_and_mysql_get_their_engines_and_urls() {
    // MySQL is refused on the generated types (the runtime cannot open it yet); a type that is
    // not generated yet may name it, and its infrastructure is ready for when it is.
    let files = generate(
        r#"[architecture]
name = "shop"

[settings]
event_bus = "rabbitmq"
default_database = "mysql"

[[services]]
name = "orders"
type = "websocket-gateway"

[services.websocket]
scaling = "redis-adapter"

[services.subscriptions]
events = ["OrderPlaced"]
"#,
    );
    let compose = yaml(&files, "infrastructure/docker/docker-compose.yml");
    let services = &compose["services"];
    assert_eq!(
        keys(services),
        set(&["orders", "mysql", "rabbitmq", "redis", "otel-collector"])
    );
    let orders = &services["orders"];
    assert_eq!(
        env(orders, "DATABASE_URL"),
        Some("mysql://root@mysql:3306/orders")
    );
    assert_eq!(
        env(orders, "EVENT_BUS_URL"),
        Some("amqp://guest:guest@rabbitmq:5672/%2f")
    );
    assert_eq!(host_ports(&services["rabbitmq"]), [5672, 15672]);
    assert!(files["infrastructure/docker/mysql/init.sql"].contains("`orders`"));
}

#[test]
fn the_diagram_shows_services_the_bus_stores_and_event_flows() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("architecture.toml"), reference()).expect("write");
    let dot = cargo_allframe(dir.path(), &["graph", "--format", "dot"])
        .ok()
        .stdout;
    assert!(
        dot.starts_with("digraph \"e-commerce-platform\" {"),
        "{dot}"
    );
    let nodes: BTreeSet<&str> = dot
        .lines()
        .filter(|l| l.contains("[shape="))
        .map(|l| l.trim().split(' ').next().unwrap())
        .collect();
    let edges: Vec<(&str, &str)> = dot
        .lines()
        .filter_map(|l| l.trim().split_once(" -> "))
        .map(|(from, rest)| (from, rest.split([' ', ';']).next().unwrap()))
        .collect();
    for (from, to) in &edges {
        assert!(nodes.contains(from) && nodes.contains(to), "{from} -> {to}");
    }
    assert!(edges.contains(&("svc_user_service", "bus")));
    assert!(edges.contains(&("bus", "svc_notification_service")));
    assert!(edges.contains(&("svc_web_bff", "ext_product_service")));
    assert!(edges.contains(&("svc_user_service", "redis")));
    assert!(dot.contains("label=\"OrderCreated, PaymentSucceeded, ShipmentDispatched\""));

    let mermaid = cargo_allframe(dir.path(), &["graph"]).ok().stdout;
    assert!(mermaid.starts_with("flowchart LR\n"));
    let doc = ignited(&reference())["docs/architecture.md"].clone();
    assert!(
        doc.contains(&format!("```mermaid\n{}", mermaid.trim_end())),
        "{doc}"
    );
}

#[test]
fn reignite_keeps_an_edited_infrastructure_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("architecture.toml");
    std::fs::write(&config, SENSORS).expect("write");
    cargo_allframe(dir.path(), &["ignite", "--out", "ws"]).ok();
    let ws = dir.path().join("ws");
    let compose = ws.join("infrastructure/docker/docker-compose.yml");
    let edited = format!("{}\n# my own override\n", read(&compose));
    std::fs::write(&compose, &edited).expect("edit");
    let untouched = ws.join("infrastructure/k8s/base/kustomization.yaml");

    std::fs::write(
        &config,
        SENSORS.replace("max_retries = 7", "max_retries = 9"),
    )
    .expect("write");
    let run = cargo_allframe(dir.path(), &["ignite", "--out", "ws"]).ok();
    assert_eq!(read(&compose), edited);
    let files = listed(&run.stdout);
    assert!(
        files["infrastructure/docker/docker-compose.yml"].starts_with("kept"),
        "{}",
        run.stdout
    );
    assert_eq!(files["docs/architecture.md"], "updated", "{}", run.stdout);
    assert!(read(&ws.join("docs/architecture.md")).contains("after 9 failed deliveries"));
    assert!(read(&untouched).contains("kind: Kustomization"));
}

#[test]
fn services_without_a_crate_get_no_infrastructure() {
    // Ignite generates `stateless`, `producer`, `consumer`, `gateway`, `saga-orchestrator`,
    // `event-sourced` and `cache` crates: of the reference file's services, `user-service`,
    // `order-service`, `payment-gateway`, `notification-service`, `inventory-service` and
    // `product-cache` have images, so they alone are deployed; the others are listed as left
    // out.
    let files = ignited(&reference());
    let generated = [
        "user-service",
        "order-service",
        "payment-gateway",
        "inventory-service",
        "notification-service",
        "product-cache",
    ];
    let skipped: Vec<&str> = REFERENCE_SERVICES
        .iter()
        .copied()
        .filter(|name| !generated.contains(name))
        .collect();
    let compose = yaml(&files, "infrastructure/docker/docker-compose.yml");
    let deployed: BTreeSet<String> = keys(&compose["services"])
        .into_iter()
        .filter(|name| REFERENCE_SERVICES.contains(&name.as_str()))
        .collect();
    assert_eq!(deployed, set(&generated));
    let ci = yaml(&files, ".github/workflows/ci.yml");
    assert_eq!(
        ci["jobs"]["images"]["strategy"]["matrix"]["service"],
        serde_json::json!(generated)
    );
    for name in &skipped {
        for prefix in [
            format!("infrastructure/docker/services/{name}/"),
            format!("infrastructure/k8s/base/{name}/"),
            format!("infrastructure/fly/{name}/"),
        ] {
            assert!(
                !files.keys().any(|path| path.starts_with(&prefix)),
                "{prefix} is generated for a service without a crate"
            );
        }
    }
    let kustomization = yaml(&files, "infrastructure/k8s/base/kustomization.yaml");
    let resources = kustomization["resources"].as_array().expect("resources");
    assert!(
        resources.iter().filter_map(Value::as_str).all(|r| !skipped
            .iter()
            .any(|name| r.starts_with(&format!("{name}/")))),
        "{resources:?}"
    );
    // No cloud program names a service whose image does not exist.
    for path in [
        "infrastructure/terraform/aws/main.tf",
        "infrastructure/pulumi/aws/Pulumi.yaml",
    ] {
        let text = &files[path];
        let listing = text
            .split("left out here")
            .nth(1)
            .unwrap_or_else(|| panic!("{path} lists what it leaves out"));
        let (listing, rest) = listing.split_at(listing.find("\n\n").unwrap_or(listing.len()));
        for name in &skipped {
            assert!(
                listing.contains(&format!("#   - {name} (")),
                "{path}: {name}"
            );
            assert!(!rest.contains(&format!("{name}-")), "{path} deploys {name}");
        }
    }
    for path in [
        "infrastructure/docker/docker-compose.yml",
        "infrastructure/k8s/base/kustomization.yaml",
        ".github/workflows/ci.yml",
    ] {
        assert!(files[path].contains("#   - web-bff (bff)"), "{path}");
    }
    // The architecture document still describes every service and says which are missing.
    let doc = &files["docs/architecture.md"];
    assert!(doc.contains(
        "| `web-bff` | bff | rest, graphql | HTTP 8081 | postgres | not generated yet |"
    ));
    assert!(doc.contains("| `user-service` | stateless | rest, grpc | HTTP 8080, gRPC 9090 | postgres + Redis | `services/user-service` |"));
    assert!(doc.contains("### notification-service"));
}

/// Every generated file under the infrastructure, docs and CI directories, one after another.
fn tree(files: &BTreeMap<String, String>) -> String {
    files
        .iter()
        .map(|(path, text)| format!("=== {path}\n{text}"))
        .collect()
}

#[test]
fn snapshot_of_the_reference_tree() {
    insta::assert_snapshot!("reference", tree(&generate(&reference())));
}

/// Small architectures exercising each cloud, runtime, bus and deployment strategy.
fn cases() -> Vec<(&'static str, String)> {
    let base = "[architecture]\nname = \"shop\"\n\n[[services]]\nname = \"orders\"\ntype = \"stateless\"\nprotocols = [\"rest\", \"grpc\"]\n\n[services.domain]\nevents = [\"OrderPlaced\"]\n\n[[services]]\nname = \"mailer\"\ntype = \"consumer\"\n\n[services.consumer]\nevents = [\"OrderPlaced\"]\nmax_retries = 4\n";
    let sections = [
        (
            "aws_fargate_canary_sqs",
            "[settings]\nevent_bus = \"sqs\"\n\n[deployment]\nstrategy = \"canary\"\ncanary_percentage = 20\n\n[cloud]\nregions = [\"us-east-1\"]\n\n[cloud.aws]\naccount_id = \"${AWS_ACCOUNT_ID}\"\nruntime = \"fargate\"\n",
        ),
        (
            "aws_ecs_recreate_rabbitmq",
            "[settings]\nevent_bus = \"rabbitmq\"\n\n[deployment]\nstrategy = \"recreate\"\n\n[cloud.aws]\nruntime = \"ecs\"\n",
        ),
        (
            "aws_eks_rolling_glue",
            "[settings.events]\nschema_registry = \"glue\"\nformat = \"json-schema\"\n\n[cloud.aws]\nruntime = \"eks\"\n",
        ),
        (
            "gcp_gke_kafka",
            "[cloud.gcp]\nproject_id = \"shop-prod\"\nruntime = \"gke\"\n",
        ),
        (
            "gcp_functions_pubsub_canary",
            "[settings]\nevent_bus = \"pubsub\"\n\n[deployment]\nstrategy = \"canary\"\n\n[security]\napi_key_rotation_days = 30\n\n[cloud.gcp]\nruntime = \"cloud-functions\"\n",
        ),
        (
            "fly_and_shuttle_blue_green",
            "[deployment]\nstrategy = \"blue-green\"\n\n[cloud]\nregions = [\"eu-central-1\"]\n\n[cloud.fly]\norg = \"acme\"\n\n[cloud.shuttle]\nproject = \"${SHUTTLE_PROJECT}\"\n",
        ),
        (
            "fly_regions_deferred_org",
            "[cloud]\nregions = [\"us-east-1\", \"eu-west-1\", \"eu-west-2\"]\n\n[cloud.fly]\norg = \"${FLY_ORG}\"\n",
        ),
        (
            "shuttle_literal_project",
            "[cloud.shuttle]\nproject = \"shop-prod\"\n",
        ),
        (
            "flags_unleash_aws_lambda",
            "[feature_flags]\nprovider = \"unleash\"\ndefault_strategy = \"gradual-rollout\"\nsync_interval_seconds = 15\n\n[cloud]\nregions = [\"us-east-1\", \"eu-west-1\"]\n\n[cloud.aws]\nruntime = \"lambda\"\n",
        ),
        (
            "flags_launchdarkly_gcp",
            "[feature_flags]\nprovider = \"launchdarkly\"\n\n[settings]\nevent_bus = \"pubsub\"\n\n[cloud.gcp]\nproject_id = \"${GCP_PROJECT_ID}\"\nruntime = \"cloud-run\"\n",
        ),
        (
            "flags_flagsmith_fargate_and_gke",
            "[feature_flags]\nprovider = \"flagsmith\"\ndefault_strategy = \"user-ids\"\n\n[settings]\nevent_bus = \"sqs\"\n\n[cloud]\nregions = [\"eu-central-1\"]\n\n[cloud.aws]\nruntime = \"fargate\"\n\n[cloud.gcp]\nproject_id = \"shop-prod\"\nruntime = \"gke\"\n",
        ),
        (
            "flags_unleash_without_cloud",
            "[feature_flags]\nprovider = \"unleash\"\n",
        ),
    ];
    let mut out = vec![
        ("reference", reference()),
        ("gcp_cloud_run_blue_green_nats", SENSORS.to_owned()),
    ];
    for (name, sections) in sections {
        out.push((
            name,
            base.replacen(
                "\n\n[[services]]",
                &format!("\n\n{sections}\n[[services]]"),
                1,
            ),
        ));
    }
    out
}

#[test]
fn snapshots_per_cloud_and_strategy() {
    for (name, arch) in cases().into_iter().skip(1) {
        insta::assert_snapshot!(name, tree(&generate(&arch)));
    }
}

/// Runs `program` with `args` in `dir`; a missing tool or a failure fails the test.
fn run_tool(dir: &std::path::Path, program: &str, args: &[String]) {
    let output = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{program}` (install it, see docs/infrastructure.md): {e}")
        });
    assert!(
        output.status.success(),
        "`{program} {}` failed in {}:\n{}\n{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The external validators on every generated tree: the Compose specification's schema,
/// the Kubernetes schemas with unknown fields rejected, `terraform fmt`, and a python-hcl2
/// check that every reference between resources, modules and variables resolves, and a PyYAML
/// check of the Pulumi programs' interpolations.
#[test]
#[ignore = "validators: needs check-jsonschema, kubernetes-validate, terraform, python-hcl2, pyyaml"]
fn generated_trees_pass_the_external_validators() {
    let manifest_dir = common::manifest_dir();
    let checker = manifest_dir.join("tests/validators/check_hcl_refs.py");
    let pulumi_checker = manifest_dir.join("tests/validators/check_pulumi_refs.py");
    for (name, arch) in cases() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = planned(&arch);
        for (path, text) in &files {
            let target = dir.path().join(path);
            std::fs::create_dir_all(target.parent().unwrap()).expect("mkdir");
            std::fs::write(&target, text).expect("write");
        }
        let compose: Vec<String> = ["docker-compose.yml", "docker-compose.test.yml"]
            .iter()
            .map(|f| format!("infrastructure/docker/{f}"))
            .collect();
        let mut args = vec![
            "--builtin-schema".to_owned(),
            "vendor.compose-spec".to_owned(),
        ];
        args.extend(compose);
        run_tool(dir.path(), "check-jsonschema", &args);

        // Argo Rollouts have no schema there: their pod template is checked as a Deployment's.
        let mut manifests = vec!["--strict".to_owned()];
        for (path, text) in files.iter().filter(|(p, _)| {
            p.starts_with("infrastructure/k8s/")
                && !p.ends_with("kustomization.yaml")
                && !p.contains("kustomizeconfig")
        }) {
            manifests.push(path.clone());
            if path.ends_with("rollout.yaml") {
                let mut rollout: Value = serde_saphyr::from_str(text).expect("YAML");
                rollout["apiVersion"] = "apps/v1".into();
                rollout["kind"] = "Deployment".into();
                rollout["spec"].as_object_mut().unwrap().remove("strategy");
                let as_deployment = path.replace("rollout.yaml", "rollout-as-deployment.yaml");
                std::fs::write(dir.path().join(&as_deployment), rollout.to_string())
                    .expect("write");
                manifests.push(as_deployment);
            }
        }
        run_tool(dir.path(), "kubernetes-validate", &manifests);

        if files
            .keys()
            .any(|p| p.starts_with("infrastructure/terraform/"))
        {
            let tf = "infrastructure/terraform".to_owned();
            run_tool(
                dir.path(),
                "terraform",
                &[
                    "fmt".into(),
                    "-check".into(),
                    "-recursive".into(),
                    "-diff".into(),
                    tf.clone(),
                ],
            );
            run_tool(dir.path(), "python3", &[checker.display().to_string(), tf]);
        }
        if files
            .keys()
            .any(|p| p.starts_with("infrastructure/pulumi/"))
        {
            run_tool(
                dir.path(),
                "python3",
                &[
                    pulumi_checker.display().to_string(),
                    "infrastructure/pulumi".into(),
                ],
            );
        }
        eprintln!("{name}: valid");
    }
}
