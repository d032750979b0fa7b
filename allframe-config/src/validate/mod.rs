//! Stage 3: checks across the whole file, after types are known. Every problem is pushed; none
//! stops the others. Each check is one function; the checks of names live in `names`.

mod cache;
mod consumer;
mod event_sourced;
mod events;
mod integrations;
mod names;
mod producer;
mod saga;
mod tokens;

pub use names::is_service_name;
pub use tokens::{is_header_name, is_topic_name};

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::model::{EventBus, MessagingPattern, Protocol, ServiceType};
use crate::resolve::{Draft, DraftService, Listener, PORT_PROTOCOLS, parse_port, tables_present};
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
    arch: &'a Draft,
    source: &'a SourceFile,
    out: &'a mut Diagnostics,
    /// Every service's name.
    service_names: BTreeSet<&'a str>,
    /// Every event some service declares in `[services.domain] events`.
    produced: BTreeSet<&'a str>,
    /// Did-you-mean comparisons left. A lookup compares a word with every candidate, so a file
    /// with thousands of unknown references among thousands of names gets suggestions for the
    /// first ones only, and its check stays linear in its size.
    suggestions_left: usize,
}

/// How many word comparisons the did-you-mean lookups of one check make at most (a few
/// milliseconds).
const SUGGESTION_BUDGET: usize = 20_000;

/// The closest of `candidates` to `word`, when comparing with all of them fits in `budget`.
fn closest<'a>(
    budget: &mut usize,
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let (_, most) = candidates.size_hint();
    *budget = budget.checked_sub(most.unwrap_or(usize::MAX))?;
    suggest::closest(word, candidates)
}

impl Checker<'_> {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.out.push(self.source, diagnostic);
    }
}

/// Runs every check of `arch`, pushing into `out`.
pub(crate) fn validate(arch: &Draft, source: &SourceFile, out: &mut Diagnostics) {
    let mut c = Checker {
        arch,
        source,
        out,
        service_names: arch.services().iter().map(|s| s.name()).collect(),
        produced: arch
            .services()
            .iter()
            .flat_map(|s| s.events().iter().map(String::as_str))
            .collect(),
        suggestions_left: SUGGESTION_BUDGET,
    };
    names::architecture_name(&mut c);
    if arch.services().is_empty() {
        c.push(
            Diagnostic::error(
                Code::MissingTable,
                KeyPath::root(),
                "the architecture declares no services, so there is nothing to generate",
            )
            .with_help("add a service: `[[services]]` with `name = \"user-service\"` and `type = \"stateless\"`"),
        );
    }
    names::service_names(&mut c);
    events::events_across_services(&mut c);
    names::regions(&mut c);
    tokens::headers(&mut c);
    tokens::pii_fields(&mut c);
    for service in arch.services() {
        tables_match_type(&mut c, service);
        names::identifiers(&mut c, service);
        events::entity_shadowing_events_crate(&mut c, service);
        tokens::service_tokens(&mut c, service);
        idempotency(&mut c, service);
        saga::saga(&mut c, service);
        event_sourced::event_sourced(&mut c, service);
        cache::cache(&mut c, service);
        schedule(&mut c, service);
        messaging(&mut c, service);
        producer::producer(&mut c, service);
        integrations::integrations(&mut c, service);
        consumer::consumer(&mut c, service);
        references(&mut c, service);
    }
    retry_multipliers(&mut c);
    ports(&mut c);
    cloud_and_deployment(&mut c);
}

/// The key path of `service`'s `[[services]]` entry.
pub(crate) fn service_path(service: &DraftService) -> KeyPath {
    KeyPath::root().key("services").index(service.common.index)
}

fn tables_match_type(c: &mut Checker<'_>, service: &DraftService) {
    let kind = service.kind();
    if service.raw.graphql.is_some()
        && kind != ServiceType::Bff
        && !service.speaks(Protocol::Graphql)
    {
        c.push(
            Diagnostic::error(
                Code::MisplacedTable,
                service_path(service).key("graphql"),
                format!(
                    "`[services.graphql]` on `{}`, which neither is a `bff` nor speaks `graphql`",
                    service.name()
                ),
            )
            .with_help("add \"graphql\" to `protocols`, or remove the table"),
        );
    }
    for (table, owners) in tables_present(&service.raw) {
        if !owners.contains(&kind) {
            let types: Vec<String> = owners.iter().map(|o| format!("`{o}`")).collect();
            let owner = owners[0];
            c.push(
                Diagnostic::error(
                    Code::MisplacedTable,
                    service_path(service).key(table),
                    format!(
                        "`[services.{table}]` belongs to services of type {}, but `{}` is `{kind}`",
                        types.join(" or "),
                        service.name()
                    ),
                )
                .with_help(format!(
                    "set `type = \"{owner}\"`, or remove `[services.{table}]`"
                ))
                .at_key(),
            );
        }
    }
    if let Err(needed) = service.archetype {
        c.push(
            Diagnostic::error(
                Code::MissingTable,
                service_path(service).key("type"),
                format!(
                    "a `{kind}` service needs `[services.{needed}]`, and `{}` has none",
                    service.name()
                ),
            )
            .with_help(format!(
                "add a `[services.{needed}]` table after this service's `[[services]]` header"
            )),
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

fn schedule(c: &mut Checker<'_>, service: &DraftService) {
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

fn messaging(c: &mut Checker<'_>, service: &DraftService) {
    let Some(m) = &service.common.messaging else {
        return;
    };
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

/// A retry `multiplier` grows each delay: below 1 (or not a number) it would shrink or lose
/// the schedule, and the macro could not write it.
fn retry_multiplier(c: &mut Checker<'_>, at: KeyPath, retry: Option<&crate::model::RetryConfig>) {
    let Some(multiplier) = retry.and_then(|r| r.multiplier) else {
        return;
    };
    if !(multiplier.is_finite() && multiplier >= 1.0) {
        c.push(
            Diagnostic::error(
                Code::InvalidValue,
                at.key("multiplier"),
                format!("a retry `multiplier` of {multiplier} would not grow the delays between attempts"),
            )
            .with_help("use 1.0 for a fixed delay or more for exponential backoff; 2.0 is usual"),
        );
    }
}

/// Every retry table's `multiplier`: `[resilience]`, the services' own and their integrations'.
fn retry_multipliers(c: &mut Checker<'_>) {
    let arch = c.arch;
    retry_multiplier(
        c,
        KeyPath::root().key("resilience").key("retry"),
        Some(&arch.file().resilience.retry),
    );
    for service in arch.services() {
        let base = service_path(service);
        retry_multiplier(c, base.clone().key("retry"), service.raw.retry.as_ref());
        let integrations = service.raw.integrations.as_ref();
        retry_multiplier(
            c,
            base.key("integrations").key("retry"),
            integrations.and_then(|i| i.retry.as_ref()),
        );
    }
}

fn idempotency(c: &mut Checker<'_>, service: &DraftService) {
    if service
        .common
        .idempotency
        .as_ref()
        .is_some_and(|i| i.ttl_hours == 0)
    {
        c.push(
            Diagnostic::error(
                Code::InvalidValue,
                service_path(service).key("idempotency").key("ttl_hours"),
                "a key kept for 0 hours expires at once, so a retry would run the request again",
            )
            .with_help("keep keys at least as long as clients retry; the usual value is 24"),
        );
    }
}

fn references(c: &mut Checker<'_>, service: &DraftService) {
    let base = service_path(service);

    if let Some(bff) = &service.raw.bff {
        for (i, target) in bff.aggregates.iter().enumerate() {
            if !c.service_names.contains(target.as_str()) {
                let mut d = Diagnostic::warning(
                    Code::UnknownReference,
                    base.key("bff").key("aggregates").index(i),
                    format!("`{target}` is not a service in this file; it is treated as external"),
                );
                let names = c.service_names.iter().copied();
                if let Some(best) = closest(&mut c.suggestions_left, target, names) {
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
            if !c.produced.contains(event.as_str()) {
                let mut d = Diagnostic::warning(
                    Code::UnknownReference,
                    base.key(table).key(key).index(i),
                    format!(
                        "no service in this file declares the event `{event}` in `[services.domain] events`; it must come from outside"
                    ),
                );
                let produced = c.produced.iter().copied();
                if let Some(best) = closest(&mut c.suggestions_left, event, produced) {
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
        if !c.service_names.contains(target.as_str())
            && !OUTBOUND_ENGINES.contains(&target.as_str())
        {
            let candidates = c
                .service_names
                .iter()
                .copied()
                .chain(OUTBOUND_ENGINES.iter().copied());
            let hint = match closest(&mut c.suggestions_left, target, candidates) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!(
                    "name a service of this file or one of {}",
                    suggest::quoted_list(OUTBOUND_ENGINES)
                ),
            };
            c.push(
                Diagnostic::error(
                    Code::UnknownReference,
                    base.key("ports").key("outbound").index(i),
                    format!("`{target}` is neither a service in this file nor a known engine"),
                )
                .with_help(format!(
                    "{hint}; external APIs belong in `[services.integrations]` or an anti-corruption-layer service"
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
