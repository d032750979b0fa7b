//! Stage 3: checks across the whole file, after types are known. Every problem is pushed; none
//! stops the others. Each check is one function.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::model::{EventBus, MessagingPattern, Protocol, ServiceType};
use crate::resolve::{Architecture, Listener, PORT_PROTOCOLS, ResolvedService, parse_port};
use crate::source::{KeyPath, SourceFile};
use crate::suggest;

/// Engines a service may name in `ports.outbound` besides other services.
pub const OUTBOUND_ENGINES: &[&str] = &[
    "postgres",
    "mysql",
    "redis",
    "event-bus",
    "kafka",
    "rabbitmq",
    "nats",
    "sqs",
    "pubsub",
    "memcached",
    "hazelcast",
    "dynamodb",
    "firestore",
    "s3",
    "gcs",
];

struct Checker<'a> {
    arch: &'a Architecture,
    source: &'a SourceFile,
    out: &'a mut Diagnostics,
}

impl Checker<'_> {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.out.push(self.source, diagnostic);
    }
}

/// Runs every check of `arch`, pushing into `out`.
pub fn validate(arch: &Architecture, source: &SourceFile, out: &mut Diagnostics) {
    let mut c = Checker { arch, source, out };
    names(&mut c);
    for service in arch.services() {
        tables_match_type(&mut c, service);
        identifiers(&mut c, service);
        saga(&mut c, service);
        schedule(&mut c, service);
        messaging(&mut c, service);
        references(&mut c, service);
    }
    ports(&mut c);
    cloud_and_deployment(&mut c);
}

fn service_path(service: &ResolvedService) -> KeyPath {
    KeyPath::root().key("services").index(service.index)
}

/// A valid service name is a DNS label and a crate name: `a-z`, `0-9`, `-`, starting with a
/// letter, not ending with `-`, at most 63 characters.
pub fn is_service_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 && !out.ends_with('-') {
            out.push('-');
        }
        match ch {
            c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_lowercase()),
            _ if !out.ends_with('-') => out.push('-'),
            _ => {}
        }
    }
    let trimmed = out
        .trim_matches('-')
        .trim_start_matches(|c: char| c.is_ascii_digit());
    let mut result: String = trimmed.trim_matches('-').chars().take(63).collect();
    if result.is_empty() {
        result.push_str("service");
    }
    result
}

fn names(c: &mut Checker<'_>) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for service in c.arch.services() {
        let path = service_path(service).key("name");
        let name = service.name();
        if !is_service_name(name) {
            c.push(
                Diagnostic::error(
                    Code::InvalidName,
                    path.clone(),
                    format!("`{name}` is not a valid service name: it must be a DNS label and a crate name"),
                )
                .with_help(format!(
                    "use lowercase letters, digits and `-`, starting with a letter, at most 63 characters, e.g. `{}`",
                    kebab(name)
                )),
            );
        }
        if let Some(first) = seen.insert(name, service.index) {
            seen.insert(name, first);
            c.push(
                Diagnostic::error(
                    Code::DuplicateService,
                    path,
                    format!("service `{name}` is declared twice (first as services[{first}])"),
                )
                .with_help("give each service a unique name"),
            );
        }
    }
}

/// The type a type-specific table belongs to; `None` for tables any service may carry.
fn owner_of(table: &str) -> Option<&'static [ServiceType]> {
    use ServiceType as T;
    Some(match table {
        "bff" => &[T::Bff],
        "saga" => &[T::SagaOrchestrator],
        "integrations" => &[T::Gateway],
        "cqrs" => &[T::EventSourced],
        "consumer" => &[T::Consumer],
        "websocket" | "subscriptions" => &[T::WebsocketGateway],
        "schedule" | "jobs" => &[T::Scheduled],
        "acl" => &[T::AntiCorruptionLayer],
        "stream" => &[T::StreamProcessor],
        "cache" => &[T::Cache],
        _ => return None,
    })
}

/// The tables a type cannot do without (any one of them).
fn required_tables(kind: ServiceType) -> &'static [&'static str] {
    use ServiceType as T;
    match kind {
        T::Bff => &["bff"],
        T::SagaOrchestrator => &["saga"],
        T::Gateway => &["integrations"],
        T::EventSourced => &["cqrs"],
        T::Consumer => &["consumer"],
        T::WebsocketGateway => &["websocket"],
        T::Scheduled => &["jobs", "schedule"],
        T::AntiCorruptionLayer => &["acl"],
        T::StreamProcessor => &["stream"],
        T::Cache => &["cache"],
        T::Stateless | T::Producer => &[],
    }
}

fn present_tables(service: &ResolvedService) -> Vec<&'static str> {
    let s = &service.raw;
    [
        ("bff", s.bff.is_some()),
        ("graphql", s.graphql.is_some()),
        ("saga", s.saga.is_some()),
        ("integrations", s.integrations.is_some()),
        ("cqrs", s.cqrs.is_some()),
        ("consumer", s.consumer.is_some()),
        ("websocket", s.websocket.is_some()),
        ("subscriptions", s.subscriptions.is_some()),
        ("schedule", s.schedule.is_some()),
        ("jobs", s.jobs.is_some()),
        ("acl", s.acl.is_some()),
        ("stream", s.stream.is_some()),
        ("cache", s.cache.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, present)| present.then_some(name))
    .collect()
}

fn tables_match_type(c: &mut Checker<'_>, service: &ResolvedService) {
    let kind = service.kind();
    let present = present_tables(service);
    for table in &present {
        if *table == "graphql" {
            if kind != ServiceType::Bff && !service.speaks(Protocol::Graphql) {
                c.push(
                    Diagnostic::error(
                        Code::MisplacedTable,
                        service_path(service).key(table),
                        format!("`[services.graphql]` on `{}`, which neither is a `bff` nor speaks `graphql`", service.name()),
                    )
                    .with_help("add \"graphql\" to `protocols`, or remove the table"),
                );
            }
            continue;
        }
        if let Some(owners) = owner_of(table)
            && !owners.contains(&kind)
        {
            c.push(
                    Diagnostic::error(
                        Code::MisplacedTable,
                        service_path(service).key(table),
                        format!("`[services.{table}]` belongs to services of type `{}`, but `{}` is `{kind}`", owners[0], service.name()),
                    )
                    .with_help(format!("set `type = \"{}\"`, or remove `[services.{table}]`", owners[0]))
                    .at_key(),
                );
        }
    }
    let needed = required_tables(kind);
    if !needed.is_empty() && !needed.iter().any(|t| present.contains(t)) {
        c.push(
            Diagnostic::error(
                Code::MissingTable,
                service_path(service).key("type"),
                format!(
                    "a `{kind}` service needs `[services.{}]`, and `{}` has none",
                    needed[0],
                    service.name()
                ),
            )
            .with_help(format!(
                "add a `[services.{}]` table after this service's `[[services]]` header",
                needed[0]
            )),
        );
    }
}

fn is_pascal(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphanumeric())
}

fn is_snake(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn pascal(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut chars = p.chars();
            chars
                .next()
                .map(|f| f.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn identifiers(c: &mut Checker<'_>, service: &ResolvedService) {
    let base = service_path(service);
    let s = &service.raw;
    let mut lists: Vec<(KeyPath, &Vec<String>)> = Vec::new();
    if let Some(d) = &s.domain {
        lists.push((base.key("domain").key("entities"), &d.entities));
        lists.push((base.key("domain").key("events"), &d.events));
    }
    if let Some(q) = &s.cqrs {
        lists.push((base.key("cqrs").key("projections"), &q.projections));
    }
    if let Some(consumer) = &s.consumer {
        lists.push((base.key("consumer").key("events"), &consumer.events));
    }
    if let Some(saga) = &s.saga {
        lists.push((base.key("saga").key("steps"), &saga.steps));
        lists.push((base.key("saga").key("compensation"), &saga.compensation));
    }
    for (path, names) in lists {
        for (i, name) in names.iter().enumerate() {
            if !is_pascal(name) {
                c.push(
                    Diagnostic::error(
                        Code::InvalidName,
                        path.index(i),
                        format!(
                            "`{name}` is not a PascalCase name; it becomes a Rust type or method"
                        ),
                    )
                    .with_help(format!("write it as `{}`", pascal(name))),
                );
            }
        }
    }
    if let Some(saga) = &s.saga
        && !is_pascal(&saga.name)
    {
        c.push(
            Diagnostic::error(
                Code::InvalidName,
                base.key("saga").key("name"),
                format!(
                    "`{}` is not a PascalCase name; it becomes a Rust trait",
                    saga.name
                ),
            )
            .with_help(format!("write it as `{}`", pascal(&saga.name))),
        );
    }
    for job in s.jobs.iter().flat_map(|j| j.keys()) {
        if !is_snake(job) {
            c.push(
                Diagnostic::error(
                    Code::InvalidName,
                    base.key("jobs").key(job),
                    format!("job name `{job}` is not snake_case; it becomes a Rust method"),
                )
                .with_help("use lowercase letters, digits and `_`, starting with a letter")
                .at_key(),
            );
        }
    }
}

fn saga(c: &mut Checker<'_>, service: &ResolvedService) {
    let Some(saga) = &service.raw.saga else {
        return;
    };
    let path = service_path(service).key("saga");
    if saga.steps.is_empty() {
        c.push(
            Diagnostic::error(
                Code::SagaMismatch,
                path.key("steps"),
                "a saga needs at least one step",
            )
            .with_help("list the steps in order, e.g. `steps = [\"ReserveStock\"]`"),
        );
    }
    if saga.steps.len() != saga.compensation.len() {
        c.push(
            Diagnostic::error(
                Code::SagaMismatch,
                path.key("compensation"),
                format!("saga `{}` has {} steps but {} compensations", saga.name, saga.steps.len(), saga.compensation.len()),
            )
            .with_help("give one compensation per step, in the same order: `compensation[i]` undoes `steps[i]`"),
        );
    }
}

fn check_cron(c: &mut Checker<'_>, path: KeyPath, expr: &str) {
    if let Err(e) = croner::Cron::from_str(expr) {
        c.push(
            Diagnostic::error(Code::InvalidCron, path, format!("`{expr}` is not a valid cron expression: {e}"))
                .with_help("use five fields: minute hour day-of-month month day-of-week, e.g. \"0 2 * * *\" for 2 AM daily"),
        );
    }
}

fn check_timezone(c: &mut Checker<'_>, path: KeyPath, zone: &str) {
    if chrono_tz::Tz::from_str(zone).is_err() {
        let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
        let help = match suggest::closest(zone, names.iter().copied()) {
            Some(best) => format!(
                "did you mean `{best}`? use an IANA name such as \"UTC\" or \"Europe/Paris\""
            ),
            None => "use an IANA name such as \"UTC\" or \"Europe/Paris\"".to_owned(),
        };
        c.push(
            Diagnostic::error(
                Code::InvalidTimezone,
                path,
                format!("`{zone}` is not an IANA time zone"),
            )
            .with_help(help),
        );
    }
}

fn schedule(c: &mut Checker<'_>, service: &ResolvedService) {
    let base = service_path(service);
    if let Some(schedule) = &service.raw.schedule {
        if let Some(cron) = &schedule.cron {
            check_cron(c, base.key("schedule").key("cron"), cron);
        }
        check_timezone(c, base.key("schedule").key("timezone"), &schedule.timezone);
    }
    for (name, job) in service.raw.jobs.iter().flatten() {
        let path = base.key("jobs").key(name);
        check_cron(c, path.key("cron"), &job.cron);
        if let Some(zone) = &job.timezone {
            check_timezone(c, path.key("timezone"), zone);
        }
    }
}

fn messaging(c: &mut Checker<'_>, service: &ResolvedService) {
    let Some(m) = &service.messaging else { return };
    let bus = c.arch.file().settings.event_bus;
    if m.pattern == MessagingPattern::Transactional && bus != EventBus::Kafka {
        c.push(
            Diagnostic::error(
                Code::Unsupported,
                service_path(service).key("messaging").key("pattern"),
                format!("`transactional` publishing needs a bus with transactions, and `[settings] event_bus` is `{bus}`"),
            )
            .with_help("use `pattern = \"outbox\"` (same guarantee through the database), or set `event_bus = \"kafka\"`"),
        );
    }
    if m.outbox_polling_ms == 0 {
        c.push(
            Diagnostic::error(
                Code::InvalidValue,
                service_path(service)
                    .key("messaging")
                    .key("outbox_polling_ms"),
                "the outbox polling interval must be at least 1 ms",
            )
            .with_help("the usual value is 100"),
        );
    }
}

fn references(c: &mut Checker<'_>, service: &ResolvedService) {
    let base = service_path(service);
    let names: BTreeSet<&str> = c.arch.services().iter().map(|s| s.name()).collect();
    let produced: BTreeSet<&str> = c
        .arch
        .services()
        .iter()
        .flat_map(|s| s.events().iter().map(String::as_str))
        .collect();

    if let Some(bff) = &service.raw.bff {
        for (i, target) in bff.aggregates.iter().enumerate() {
            if !names.contains(target.as_str()) {
                let mut d = Diagnostic::warning(
                    Code::UnknownReference,
                    base.key("bff").key("aggregates").index(i),
                    format!("`{target}` is not a service in this file; it is treated as external"),
                );
                if let Some(best) = suggest::closest(target, names.iter().copied()) {
                    d = d.with_help(format!("did you mean `{best}`?"));
                }
                c.push(d);
            }
        }
    }

    let consumed = [
        ("consumer", service.raw.consumer.as_ref().map(|x| &x.events)),
        (
            "subscriptions",
            service.raw.subscriptions.as_ref().map(|x| &x.events),
        ),
        ("cache", service.raw.cache.as_ref().map(|x| &x.invalidation)),
    ];
    for (table, events) in consumed {
        let key = if table == "cache" {
            "invalidation"
        } else {
            "events"
        };
        for (i, event) in events.into_iter().flatten().enumerate() {
            if !produced.contains(event.as_str()) {
                let mut d = Diagnostic::warning(
                    Code::UnknownReference,
                    base.key(table).key(key).index(i),
                    format!(
                        "no service in this file declares the event `{event}` in `[services.domain] events`; it must come from outside"
                    ),
                );
                if let Some(best) = suggest::closest(event, produced.iter().copied()) {
                    d = d.with_help(format!("did you mean `{best}`?"));
                }
                c.push(d);
            }
        }
    }

    for (i, target) in service
        .raw
        .ports
        .iter()
        .flat_map(|p| &p.outbound)
        .enumerate()
    {
        if !names.contains(target.as_str()) && !OUTBOUND_ENGINES.contains(&target.as_str()) {
            let candidates: Vec<&str> = names
                .iter()
                .copied()
                .chain(OUTBOUND_ENGINES.iter().copied())
                .collect();
            c.push(
                Diagnostic::error(
                    Code::UnknownReference,
                    base.key("ports").key("outbound").index(i),
                    format!("`{target}` is neither a service in this file nor a known engine"),
                )
                .with_help(format!(
                    "{}; external APIs belong in `[services.integrations]` or an anti-corruption-layer service",
                    suggest::help(target, &candidates)
                )),
            );
        }
    }
}

fn ports(c: &mut Checker<'_>) {
    let mut taken: BTreeMap<u16, String> = BTreeMap::new();
    for service in c.arch.services() {
        let base = service_path(service).key("ports").key("inbound");
        let entries = service.raw.ports.iter().flat_map(|p| &p.inbound);
        let mut http_declared = false;
        for (i, entry) in entries.enumerate() {
            let (listener, port) = match parse_port(entry) {
                Ok(parsed) => parsed,
                Err(e) => {
                    c.push(
                        Diagnostic::error(Code::InvalidPort, base.index(i), e.to_string())
                            .with_help(format!("write `protocol:port` with a protocol among {} and a port from 1 to 65535, e.g. \"rest:8080\"", suggest::quoted_list(PORT_PROTOCOLS))),
                    );
                    continue;
                }
            };
            if listener == Listener::Grpc && !service.speaks(Protocol::Grpc) {
                c.push(
                    Diagnostic::error(Code::InvalidPort, base.index(i), format!("a gRPC port is declared but `{}` does not list \"grpc\" in `protocols`", service.name()))
                        .with_help("add \"grpc\" to `protocols`, or remove this entry"),
                );
            }
            if listener == Listener::Http && std::mem::replace(&mut http_declared, true) {
                c.push(
                    Diagnostic::error(Code::InvalidPort, base.index(i), format!("`{}` declares a second HTTP port; REST, GraphQL, WebSocket and health share one HTTP listener", service.name()))
                        .with_help("keep one of the `rest:`, `http:`, `graphql:` or `websocket:` entries"),
                );
                continue;
            }
            let owner = format!("`{}` ({entry})", service.name());
            match taken.get(&port) {
                Some(first) => c.push(
                    Diagnostic::error(Code::PortClash, base.index(i), format!("port {port} of {owner} is already used by {first}"))
                        .with_help("give every listener its own port; omit the entry to have a free one assigned"),
                ),
                None => {
                    taken.insert(port, owner);
                }
            }
        }
    }
}

fn cloud_and_deployment(c: &mut Checker<'_>) {
    use crate::model::CloudProvider as P;
    let file = c.arch.file();
    let cloud = &file.cloud;
    if let Some(primary) = cloud.primary {
        let present = match primary {
            P::Aws => cloud.aws.is_some(),
            P::Gcp => cloud.gcp.is_some(),
            P::Fly => cloud.fly.is_some(),
            P::Shuttle => cloud.shuttle.is_some(),
        };
        if !present {
            c.push(
                Diagnostic::error(
                    Code::MissingTable,
                    KeyPath::root().key("cloud").key("primary"),
                    format!("`primary = \"{primary}\"` but there is no `[cloud.{primary}]` table"),
                )
                .with_help(format!(
                    "add `[cloud.{primary}]`, or choose a primary among the clouds configured"
                )),
            );
        }
    }
    let deployment = &file.deployment;
    if !(1..=100).contains(&deployment.canary_percentage) {
        c.push(
            Diagnostic::error(
                Code::InvalidValue,
                KeyPath::root().key("deployment").key("canary_percentage"),
                format!(
                    "{}% is not a share of traffic",
                    deployment.canary_percentage
                ),
            )
            .with_help("use a percentage from 1 to 100"),
        );
    }
    let rate = file.observability.sampling.rate;
    if !(0.0..=1.0).contains(&rate) {
        c.push(
            Diagnostic::error(
                Code::InvalidValue,
                KeyPath::root()
                    .key("observability")
                    .key("sampling")
                    .key("rate"),
                format!("{rate} is not a sampling rate"),
            )
            .with_help("use a fraction from 0.0 (none) to 1.0 (every trace)"),
        );
    }
    if file.tenant.enabled != file.architecture.multi_tenant {
        c.push(
            Diagnostic::warning(
                Code::InvalidValue,
                KeyPath::root().key("tenant").key("enabled"),
                format!(
                    "`[tenant] enabled = {}` disagrees with `[architecture] multi_tenant = {}`",
                    file.tenant.enabled, file.architecture.multi_tenant
                ),
            )
            .with_help("set both to the same value"),
        );
    }
}
