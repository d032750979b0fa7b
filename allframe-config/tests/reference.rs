//! The seed's complete reference file parses to the expected model, and the smallest valid file
//! gets sensible defaults.

use allframe_config::model::*;
use allframe_config::{Archetype, Architecture, Diagnostics, SourceFile, check};

fn source(path: &str) -> SourceFile {
    // The directory `cargo test` runs this from, not the one it was compiled in.
    let dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let full = format!("{dir}/../{path}");
    SourceFile::read(std::path::Path::new(&full)).expect("readable example")
}

fn load(path: &str) -> Architecture {
    match check(&source(path)) {
        Ok(arch) => arch,
        Err(d) => panic!("{path} should be valid:\n{d}"),
    }
}

/// The file as written (the model before resolution).
fn written(path: &str) -> ArchitectureFile {
    let source = source(path);
    let mut diagnostics = Diagnostics::new(&source);
    allframe_config::parse::parse(&source, &mut diagnostics).expect("parses")
}

/// The `[[services]]` entry called `name`, as written.
fn entry<'a>(file: &'a ArchitectureFile, name: &str) -> &'a Service {
    file.services
        .iter()
        .find(|s| s.name == name)
        .expect("a service of the file")
}

#[test]
fn reference_file_global_sections() {
    let arch = load("examples/reference/architecture.toml");
    let f = written("examples/reference/architecture.toml");
    assert_eq!(arch.name(), "e-commerce-platform");
    assert_eq!(f.architecture.version, "1.0.0");
    assert!(!f.architecture.multi_tenant);
    assert_eq!(f.settings.event_bus, EventBus::Kafka);
    assert_eq!(f.settings.default_database, DatabaseKind::Postgres);
    assert_eq!(f.settings.events.schema_registry, SchemaRegistry::Confluent);
    assert_eq!(f.settings.events.format, EventFormat::Avro);
    assert_eq!(f.settings.events.compatibility, Compatibility::Backward);
    assert_eq!(f.resilience.circuit_breaker.failure_threshold, Some(5));
    assert_eq!(f.resilience.retry.multiplier, Some(2.0));
    let bulkhead = f.resilience.bulkhead.as_ref().expect("bulkhead");
    assert_eq!(bulkhead.max_queue, Some(50));
    let rate_limit = f.resilience.rate_limit.as_ref().expect("rate limit");
    assert_eq!(rate_limit.burst, Some(100));
    assert_eq!(f.security.secrets_manager, SecretsManager::AwsSecrets);
    assert!(f.security.mtls);
    assert_eq!(f.security.api_key_rotation_days, Some(90));
    let auth = f.security.authentication.as_ref().expect("authentication");
    assert_eq!(auth.provider, AuthProvider::Cognito);
    let issuer = auth.jwt_issuer.as_ref().expect("issuer");
    assert!(issuer.is_deferred());
    assert_eq!(issuer.variables().collect::<Vec<_>>(), ["AUTH_ISSUER"]);
    assert_eq!(
        f.compliance.pii_fields,
        ["email", "phone", "address", "ssn"]
    );
    assert_eq!(f.compliance.data_retention_days, Some(365));
    assert!(f.compliance.gdpr_enabled && !f.compliance.hipaa_enabled && f.compliance.audit_logging);
    assert_eq!(
        f.observability.propagation,
        [Propagation::Traceparent, Propagation::B3]
    );
    assert_eq!(
        f.observability.sampling.strategy,
        SamplingStrategy::Probabilistic
    );
    assert_eq!(f.observability.sampling.rate, 0.1);
    assert_eq!(f.observability.metrics, MetricsBackend::Prometheus);
    assert_eq!(f.observability.logging, LogFormat::Structured);
    assert!(f.observability.baggage.tenant_id && f.observability.baggage.user_id);
    assert!(f.testing.contract_testing);
    assert_eq!(f.testing.contract_broker, ContractBroker::Pactflow);
    let load = f.testing.load_testing.as_ref().expect("load testing");
    assert_eq!((load.tool, load.baseline_rps), (LoadTool::K6, 1000));
    assert_eq!(f.feature_flags.provider, FlagProvider::Unleash);
    assert_eq!(
        f.feature_flags.default_strategy,
        RolloutStrategy::GradualRollout
    );
    assert_eq!(f.tenant.isolation, TenantIsolation::Schema);
    assert_eq!(f.tenant.routing, TenantRouting::Subdomain);
    assert_eq!(f.cloud.primary, Some(CloudProvider::Aws));
    assert_eq!(f.cloud.regions, ["us-east-1", "eu-west-1"]);
    assert_eq!(
        f.cloud.aws.as_ref().map(|a| a.runtime),
        Some(AwsRuntime::Lambda)
    );
    assert_eq!(
        f.cloud.gcp.as_ref().map(|g| g.runtime),
        Some(GcpRuntime::CloudRun)
    );
    assert_eq!(f.cloud.fly.as_ref().map(|c| c.org.raw()), Some("my-org"));
    assert_eq!(
        f.cloud.shuttle.as_ref().map(|c| c.project.raw()),
        Some("my-project")
    );
    assert_eq!(f.deployment.strategy, DeploymentStrategy::Canary);
    assert_eq!(f.deployment.canary_percentage, 10);
    assert_eq!(f.deployment.promotion_criteria.latency_p99_ms, 500);
}

#[test]
fn reference_file_services() {
    let arch = load("examples/reference/architecture.toml");
    let file = written("examples/reference/architecture.toml");
    let kinds: Vec<ServiceType> = arch.services().iter().map(|s| s.kind()).collect();
    assert_eq!(
        kinds,
        [
            ServiceType::Stateless,
            ServiceType::Bff,
            ServiceType::SagaOrchestrator,
            ServiceType::Gateway,
            ServiceType::EventSourced,
            ServiceType::Consumer,
            ServiceType::WebsocketGateway,
            ServiceType::Scheduled,
            ServiceType::AntiCorruptionLayer,
            ServiceType::StreamProcessor,
            ServiceType::Cache,
        ]
    );
    let user = arch.service("user-service").expect("user-service");
    assert_eq!(
        (user.common.http_port, user.common.grpc_port),
        (8080, Some(9090))
    );
    assert_eq!(user.entities(), ["User", "Profile", "Session"]);
    assert_eq!(
        entry(&file, "user-service")
            .ports
            .as_ref()
            .map(|p| p.outbound.len()),
        Some(3)
    );
    let db = entry(&file, "user-service")
        .database
        .as_ref()
        .expect("database");
    assert_eq!(
        (db.migrations, db.strategy),
        (MigrationTool::Sqlx, MigrationStrategy::ExpandContract)
    );
    let idem = user.common.idempotency.as_ref().expect("idempotency");
    assert_eq!(
        (idem.key_header.as_str(), idem.ttl_hours, idem.storage),
        ("Idempotency-Key", 24, IdempotencyStorage::Redis)
    );
    assert_eq!(
        user.common
            .messaging
            .as_ref()
            .map(|m| (m.pattern, m.outbox_polling_ms)),
        Some((MessagingPattern::Outbox, 100))
    );

    let bff = arch.service("web-bff").expect("bff");
    let caching = entry(&file, "web-bff")
        .bff
        .as_ref()
        .and_then(|b| b.caching.as_ref())
        .expect("caching");
    assert_eq!(caching.strategy, CachingStrategy::StaleWhileRevalidate);
    let bff_limit = bff.common.resilience.rate_limit.expect("declared");
    assert_eq!(bff_limit.rps, 100, "bff.rate_limit overrides [resilience]");
    assert_eq!(bff_limit.per, RateLimitKey::User);
    assert!(
        entry(&file, "web-bff")
            .graphql
            .as_ref()
            .is_some_and(|g| g.federation && !g.schema_stitching)
    );

    let order = arch.service("order-service").expect("order");
    let Archetype::SagaOrchestrator { saga, .. } = &order.archetype else {
        panic!("a saga orchestrator resolves with its [services.saga] table")
    };
    assert_eq!(Some(saga), entry(&file, "order-service").saga.as_ref());
    assert_eq!(
        saga.steps,
        ["ValidateInventory", "ReservePayment", "CreateShipment"]
    );
    assert_eq!(saga.state_store, Some(SagaStateStore::Postgres));
    assert_eq!(
        order.common.idempotency.as_ref().map(|i| i.storage),
        Some(IdempotencyStorage::Postgres),
        "storage follows the database"
    );
    assert_eq!(order.common.grpc_port, Some(9091), "next free gRPC port");

    let payment = arch.service("payment-gateway").expect("payment");
    assert_eq!(payment.common.resilience.call_retry.max_attempts, 3);
    assert!(payment.common.resilience.call_retry.idempotent_only);
    assert_eq!(
        payment.common.resilience.call_retry.initial_interval_ms, 100,
        "inherited from [resilience]"
    );
    assert_eq!(
        payment.common.idempotency.as_ref().map(|i| i.ttl_hours),
        Some(72)
    );

    assert!(matches!(
        arch.service("inventory-service").map(|s| &s.archetype),
        Some(Archetype::EventSourced(_))
    ));
    let cqrs = entry(&file, "inventory-service")
        .cqrs
        .as_ref()
        .expect("cqrs");
    assert_eq!(
        (cqrs.event_store, cqrs.snapshot_frequency),
        (Some(EventStoreKind::Postgres), 100)
    );

    assert!(matches!(
        arch.service("notification-service").map(|s| &s.archetype),
        Some(Archetype::Consumer(_))
    ));
    let consumer = entry(&file, "notification-service")
        .consumer
        .as_ref()
        .expect("consumer");
    assert_eq!(
        consumer.channels,
        [Channel::Email, Channel::Sms, Channel::Push]
    );
    assert_eq!(
        (
            consumer.dlq,
            consumer.max_retries,
            consumer.retry_backoff,
            consumer.concurrency
        ),
        (true, 3, Backoff::Exponential, 10)
    );

    assert!(matches!(
        arch.service("realtime-gateway").map(|s| &s.archetype),
        Some(Archetype::WebsocketGateway { .. })
    ));
    let socket = entry(&file, "realtime-gateway")
        .websocket
        .as_ref()
        .expect("websocket");
    assert_eq!(
        (socket.protocol, socket.scaling),
        (WsProtocol::SocketIo, WsScaling::StickySessions)
    );
    assert_eq!(
        entry(&file, "realtime-gateway")
            .subscriptions
            .as_ref()
            .map(|s| s.authorization),
        Some(SubscriptionAuth::Jwt)
    );

    assert!(matches!(
        arch.service("report-generator").map(|s| &s.archetype),
        Some(Archetype::Scheduled { .. })
    ));
    let jobs = entry(&file, "report-generator")
        .jobs
        .as_ref()
        .expect("jobs");
    assert_eq!(jobs["monthly_reconciliation"].cron, "0 0 1 * *");
    assert_eq!(jobs["weekly_inventory"].timeout_minutes, Some(60));
    assert_eq!(
        entry(&file, "report-generator")
            .schedule
            .as_ref()
            .map(|s| s.overlap_policy),
        Some(OverlapPolicy::Skip)
    );

    let acl = arch.service("legacy-erp-adapter").expect("acl");
    let cb = acl.common.resilience.circuit_breaker;
    assert_eq!(
        (cb.failure_threshold, cb.timeout_ms, cb.success_threshold),
        (3, 60_000, 3),
        "override field by field"
    );
    assert_eq!(
        entry(&file, "legacy-erp-adapter")
            .acl
            .as_ref()
            .map(|a| a.protocol),
        Some(AclProtocol::Soap)
    );

    let stream = arch.service("analytics-processor").expect("stream");
    let Archetype::StreamProcessor(table) = &stream.archetype else {
        panic!("a stream processor resolves with its [services.stream] table")
    };
    let windowing = table.windowing.as_ref().expect("windowing");
    assert_eq!(
        (windowing.kind, windowing.duration_seconds),
        (WindowType::Tumbling, 60)
    );

    assert!(matches!(
        arch.service("product-cache").map(|s| &s.archetype),
        Some(Archetype::Cache(_))
    ));
    let c = entry(&file, "product-cache")
        .cache
        .as_ref()
        .expect("cache table");
    assert_eq!(
        (c.backend, c.strategy, c.ttl_seconds),
        (CacheBackend::Redis, CacheWriteStrategy::WriteThrough, 3600)
    );

    let ports: std::collections::BTreeSet<u16> =
        arch.services().iter().map(|s| s.common.http_port).collect();
    assert_eq!(
        ports.len(),
        arch.services().len(),
        "every service gets its own HTTP port"
    );
    assert!(
        arch.warnings().count() >= 1,
        "external references are warnings"
    );
}

#[test]
fn smallest_file_gets_defaults() {
    let source = SourceFile::new(
        "architecture.toml",
        "[architecture]\nname = \"tiny\"\n\n[[services]]\nname = \"api\"\ntype = \"stateless\"\n",
    );
    let arch = check(&source).expect("valid");
    let api = arch.service("api").expect("api");
    assert_eq!(api.common.http_port, 8080);
    assert_eq!(api.common.grpc_port, None);
    assert_eq!(api.common.protocols, [Protocol::Rest]);
    assert_eq!(api.common.database, DatabaseKind::Postgres);
    assert_eq!(arch.globals().settings.event_bus, EventBus::Kafka);
    assert_eq!(
        api.common.resilience.circuit_breaker,
        builtin::CIRCUIT_BREAKER
    );
    assert_eq!(
        api.common.resilience.retry.max_attempts,
        builtin::RETRY.max_attempts
    );
    assert_eq!(arch.globals().observability.logging, LogFormat::Structured);
    assert_eq!(arch.globals().architecture.version, "0.1.0");
    assert_eq!(arch.warnings().count(), 0);
}

#[test]
fn deferred_values_are_listed_with_their_keys_and_never_resolved() {
    let arch = load("examples/reference/architecture.toml");
    let acl = arch.service("legacy-erp-adapter").expect("acl");
    let keys: Vec<String> = arch
        .deferred_values(acl)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(keys.contains(&"security.authentication.jwt_issuer".to_owned()));
    assert!(keys.contains(&"cloud.aws.account_id".to_owned()));
    assert!(keys.contains(&"services[8].acl.upstream".to_owned()));
    let (_, issuer) = arch
        .deferred_values(acl)
        .into_iter()
        .find(|(k, _)| k == "security.authentication.jwt_issuer")
        .expect("issuer");
    let err = issuer
        .resolve("security.authentication.jwt_issuer", |_| None)
        .unwrap_err();
    assert_eq!(err.variable, "AUTH_ISSUER");
    assert_eq!(
        issuer.resolve("k", |_| Some("https://id".into())).unwrap(),
        "https://id"
    );
}

#[test]
fn json_schema_describes_every_top_level_section() {
    let schema = allframe_config::json_schema::schema();
    let props = schema["properties"].as_object().expect("properties");
    for key in [
        "architecture",
        "settings",
        "resilience",
        "security",
        "compliance",
        "observability",
        "testing",
        "feature_flags",
        "tenant",
        "cloud",
        "deployment",
        "services",
    ] {
        assert!(props.contains_key(key), "schema lacks {key}");
    }
    assert_eq!(schema["required"], serde_json::json!(["architecture"]));
}
