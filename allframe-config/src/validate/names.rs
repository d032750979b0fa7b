//! Names that become code, directories or DNS labels: the architecture's and the services' names,
//! the entities, events, projections, saga steps and jobs each service declares, and the regions
//! files are named after. A name passes only when the code generated from it compiles: no
//! keyword, no prelude or imported name, no two names that become one module, no crate a service
//! depends on. Every suggestion printed is itself a valid name.

use std::collections::BTreeMap;

use super::{Checker, service_path};
use crate::diagnostic::{Code, Diagnostic};
use crate::names::{
    MAX_ARCHITECTURE_NAME, MAX_SERVICE_NAME, crate_name_conflict, is_keyword, is_pascal, is_snake,
    snake, suggest_kebab, suggest_pascal, type_name_conflict, type_name_conflict_spelt,
};
use crate::resolve::DraftService;
use crate::source::KeyPath;

/// A valid service name is a DNS label and a crate name: `a-z`, `0-9`, `-`, starting with a
/// letter, not ending with `-`, at most [`MAX_SERVICE_NAME`] characters (room for the suffixes
/// the generated manifests add).
pub fn is_service_name(name: &str) -> bool {
    is_dns_label(name, MAX_SERVICE_NAME)
}

/// `a-z`, `0-9`, `-`, starting with a letter, not ending with `-`, at most `max` characters.
fn is_dns_label(name: &str, max: usize) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= max
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// `[architecture] name`: a DNS label like a service name (it prefixes topics, names the
/// workspace directory, the compose project and the cloud resources).
pub(super) fn architecture_name(c: &mut Checker<'_>) {
    let name = c.arch.name();
    if !is_dns_label(name, MAX_ARCHITECTURE_NAME) {
        c.push(
            Diagnostic::error(
                Code::InvalidName,
                KeyPath::root().key("architecture").key("name"),
                format!(
                    "{} is not a valid architecture name: it names the workspace directory, topics and cloud resources, so it must be a DNS label",
                    quoted(name)
                ),
            )
            .with_help(format!(
                "use lowercase letters, digits and `-`, starting with a letter, at most {MAX_ARCHITECTURE_NAME} characters, e.g. `{}`",
                suggest_kebab(name, "my-system")
            )),
        );
    }
}

/// Service names: valid, not a reserved crate, declared once.
pub(super) fn service_names(c: &mut Checker<'_>) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    // `a-b` and `a--b` are one database, Terraform module and `A_B_URL`.
    let mut snakes: BTreeMap<String, &str> = BTreeMap::new();
    let events_crate = snake(&format!("{}-events", c.arch.name()));
    for service in c.arch.services() {
        // Built only for a diagnostic: most names have none.
        let path = || service_path(service).key("name");
        let name = service.name();
        let snake_name = snake(name);
        if !is_service_name(name) {
            c.push(
                Diagnostic::error(
                    Code::InvalidName,
                    path(),
                    format!(
                        "{} is not a valid service name: it must be a DNS label and a crate name",
                        quoted(name)
                    ),
                )
                .with_help(format!(
                    "use lowercase letters, digits and `-`, starting with a letter, at most {MAX_SERVICE_NAME} characters, e.g. `{}`",
                    suggest_kebab(name, "my-service")
                )),
            );
        } else if snake_name == events_crate {
            c.push(
                Diagnostic::error(
                    Code::InvalidName,
                    path(),
                    format!(
                        "`{name}` cannot name a service: `{}-events` is the workspace's shared event-types crate",
                        c.arch.name()
                    ),
                )
                .with_help(format!("rename the service, e.g. `{name}-service`")),
            );
        } else if let Some(reason) = crate_name_conflict(name) {
            c.push(
                Diagnostic::error(
                    Code::InvalidName,
                    path(),
                    format!("`{name}` cannot name a service crate: it is {reason}"),
                )
                .with_help(format!("rename the service, e.g. `{name}-service`")),
            );
        }
        if let Some(other) = snakes.insert(snake_name, name)
            && other != name
        {
            c.push(
                Diagnostic::error(
                    Code::NameClash,
                    path(),
                    format!(
                        "service `{name}` and service `{other}` both become `{}` (their database, Terraform module and `_URL` variable)",
                        snake(name)
                    ),
                )
                .with_help("give them names that differ in more than their dashes"),
            );
        }
        if let Some(first) = seen.insert(name, service.common.index) {
            seen.insert(name, first);
            c.push(
                Diagnostic::error(
                    Code::DuplicateService,
                    path(),
                    format!("service `{name}` is declared twice (first as services[{first}])"),
                )
                .with_help("give each service a unique name"),
            );
        }
    }
}

/// What a name of the file becomes, for the messages.
#[derive(Clone, Copy)]
enum Becomes {
    /// A Rust type (and its snake_case module): entities, events, projections, sagas.
    Type,
    /// A Rust method, from a PascalCase name: saga steps and compensations.
    Method,
}

/// One declared name and where it is written.
struct Declared<'a> {
    name: &'a str,
    path: KeyPath,
}

/// The type and method names one service declares.
pub(super) fn identifiers(c: &mut Checker<'_>, service: &DraftService) {
    let base = service_path(service);
    let s = &service.raw;
    let mut types: Vec<(KeyPath, &Vec<String>, &'static str)> = Vec::new();
    if let Some(d) = &s.domain {
        types.push((base.key("domain").key("entities"), &d.entities, "entity"));
        types.push((base.key("domain").key("events"), &d.events, "event"));
    }
    if let Some(q) = &s.cqrs {
        types.push((
            base.key("cqrs").key("projections"),
            &q.projections,
            "projection",
        ));
    }
    if let Some(consumer) = &s.consumer {
        types.push((
            base.key("consumer").key("events"),
            &consumer.events,
            "event",
        ));
    }
    if let Some(subscriptions) = &s.subscriptions {
        let path = base.key("subscriptions").key("events");
        types.push((path, &subscriptions.events, "event"));
    }
    if let Some(cache) = &s.cache {
        let path = base.key("cache").key("invalidation");
        types.push((path, &cache.invalidation, "event"));
    }
    for (i, target) in s.bff.iter().flat_map(|b| b.aggregates.iter()).enumerate() {
        if !is_dns_label(target, 63) {
            c.push(
                Diagnostic::error(
                    Code::InvalidName,
                    base.key("bff").key("aggregates").index(i),
                    format!("{} is not a service name", quoted(target)),
                )
                .with_help(format!(
                    "name a service of this file or an external one by its DNS name, e.g. `{}`",
                    suggest_kebab(target, "product-service")
                )),
            );
        }
    }
    // Entities, events and projections become modules of one crate: no two may share a
    // snake_case name unless they are the same event named twice (entities come first, so an
    // event named like one gets its `_event` module).
    let mut modules: BTreeMap<String, (&str, &'static str, KeyPath)> = BTreeMap::new();
    for (path, names, what) in &types {
        let mut in_list: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, name) in names.iter().enumerate() {
            let at = path.index(i);
            if let Some(first) = in_list.insert(name, i) {
                in_list.insert(name, first);
                c.push(
                    Diagnostic::error(
                        Code::NameClash,
                        at,
                        format!("{what} `{name}` is listed twice (first at index {first})"),
                    )
                    .with_help("remove the repeated name"),
                );
                continue;
            }
            let Some(mut module) = check_type_name(c, name, &at, what, Becomes::Type) else {
                continue;
            };
            // An event named like an entity of the service is spelt `<Name>Event` in code.
            if *what == "event"
                && modules
                    .get(&module)
                    .is_some_and(|(_, other_what, _)| *other_what == "entity")
            {
                module.push_str("_event");
            }
            match modules.get(&module) {
                Some((other, other_what, _)) if *other == name.as_str() && other_what == what => {}
                Some((other, other_what, other_path)) => {
                    let message = format!(
                        "{what} `{name}` and {other_what} `{other}` ({other_path}) both become the module `{module}`"
                    );
                    let help = "give them names that differ in more than letter case";
                    c.push(Diagnostic::error(Code::NameClash, at, message).with_help(help));
                }
                None => {
                    modules.insert(module, (name, what, at));
                }
            }
        }
    }
    if let Some(saga) = &s.saga {
        let path = base.key("saga");
        check_type_name(c, &saga.name, &path.key("name"), "saga", Becomes::Type);
        let methods = saga
            .steps
            .iter()
            .enumerate()
            .map(|(i, name)| (path.key("steps").index(i), name))
            .chain(
                saga.compensation
                    .iter()
                    .enumerate()
                    .map(|(i, name)| (path.key("compensation").index(i), name)),
            )
            .map(|(path, name)| Declared { name, path });
        unique_methods(c, methods, "saga step");
        for (step, reply) in &saga.replies {
            let at = path.key("replies").key(step);
            check_type_name(
                c,
                &reply.success,
                &at.key("success"),
                "event",
                Becomes::Type,
            );
            if let Some(failure) = &reply.failure {
                check_type_name(c, failure, &at.key("failure"), "event", Becomes::Type);
            }
        }
    }
    for job in s.jobs.iter().flat_map(|j| j.keys()) {
        let path = base.key("jobs").key(job);
        if !is_snake(job) {
            c.push(
                Diagnostic::error(
                    Code::InvalidName,
                    path,
                    format!("job name `{job}` is not snake_case; it becomes a Rust method"),
                )
                .with_help(format!(
                    "use lowercase letters, digits and `_`, starting with a letter, e.g. `{}`",
                    job_suggestion(job)
                ))
                .at_key(),
            );
        } else if is_keyword(job) {
            c.push(
                Diagnostic::error(
                    Code::InvalidName,
                    path,
                    format!("job name `{job}` is a Rust keyword; it becomes a Rust method"),
                )
                .with_help(format!("rename the job, e.g. `{job}_job`"))
                .at_key(),
            );
        }
    }
}

/// A snake_case, non-keyword job name close to `job`.
fn job_suggestion(job: &str) -> String {
    let name = snake(&suggest_pascal(job, "NightlyJob"));
    if is_keyword(&name) {
        format!("{name}_job")
    } else {
        name
    }
}

/// Checks one PascalCase name that becomes a type or a method: its snake_case spelling (the
/// module or method), or `None` when it is unusable.
fn check_type_name(
    c: &mut Checker<'_>,
    name: &str,
    path: &KeyPath,
    what: &str,
    becomes: Becomes,
) -> Option<String> {
    let role = match becomes {
        Becomes::Type => "a Rust type",
        Becomes::Method => "a Rust method",
    };
    if !is_pascal(name) {
        c.push(
            Diagnostic::error(
                Code::InvalidName,
                path.clone(),
                format!(
                    "{what} {} is not a PascalCase name; it becomes {role}",
                    quoted(name)
                ),
            )
            .with_help(format!(
                "write it as `{}`",
                usable(&suggest_pascal(name, "Renamed"), what)
            )),
        );
        return None;
    }
    let snake_name = snake(name);
    let conflict = match becomes {
        Becomes::Type => type_name_conflict_spelt(name, &snake_name),
        Becomes::Method => {
            (is_keyword(name) || is_keyword(&snake_name)).then_some("a Rust keyword")
        }
    };
    if let Some(reason) = conflict {
        c.push(
            Diagnostic::error(
                Code::InvalidName,
                path.clone(),
                format!("{what} `{name}` is {reason}, so it cannot become {role}"),
            )
            .with_help(format!(
                "choose a more specific name, e.g. `{}`",
                usable(name, what)
            )),
        );
        return None;
    }
    Some(snake_name)
}

/// `name` when it is usable, else `name` with a suffix for `what` that makes it usable.
fn usable(name: &str, what: &str) -> String {
    if type_name_conflict(name).is_none() {
        return name.to_owned();
    }
    let suffix = match what {
        "event" => "Happened",
        "projection" => "View",
        "saga" => "Saga",
        "saga step" => "Step",
        _ => "Record",
    };
    format!("{name}{suffix}")
}

/// Saga steps and compensations: each a valid PascalCase name whose snake_case method exists
/// once.
fn unique_methods<'a>(c: &mut Checker<'_>, names: impl Iterator<Item = Declared<'a>>, what: &str) {
    let mut seen: BTreeMap<String, (&str, KeyPath)> = BTreeMap::new();
    for Declared { name, path } in names {
        let Some(method) = check_type_name(c, name, &path, what, Becomes::Method) else {
            continue;
        };
        if let Some((other, other_path)) = seen.get(&method) {
            let message = if *other == name {
                format!("{what} `{name}` is listed twice (first at {other_path})")
            } else {
                format!(
                    "{what} `{name}` and `{other}` ({other_path}) both become the method `{method}`"
                )
            };
            c.push(
                Diagnostic::error(Code::NameClash, path, message)
                    .with_help("every step and compensation needs its own name"),
            );
        } else {
            seen.insert(method, (name, path));
        }
    }
}

/// `[cloud] regions`: each becomes a file name (`regions/<region>.tfvars`) and a stack name.
pub(super) fn regions(c: &mut Checker<'_>) {
    let path = KeyPath::root().key("cloud").key("regions");
    for (i, region) in c.arch.file().cloud.regions.iter().enumerate() {
        if !is_dns_label(region, 63) {
            c.push(
                Diagnostic::error(
                    Code::InvalidName,
                    path.index(i),
                    format!(
                        "{} is not a cloud region name; regions name files and stacks",
                        quoted(region)
                    ),
                )
                .with_help(format!(
                    "write the provider's region id, lowercase letters, digits and `-`, e.g. `{}`",
                    suggest_kebab(region, "us-east-1")
                )),
            );
        }
    }
}

/// A value quoted for a message, with control characters escaped so a message stays one line.
pub(super) fn quoted(value: &str) -> String {
    format!("`{}`", value.escape_debug())
}
