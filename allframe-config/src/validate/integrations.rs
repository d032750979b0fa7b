//! The checks of `[services.integrations]`, a gateway's or a saga orchestrator's: the service
//! calls each provider through a client type named after it (`stripe` → `Stripe`, module and
//! accessor `stripe`), so the table lists at least one, and two names may not make the same
//! client.

use std::collections::BTreeMap;

use super::{Checker, service_path};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::ServiceType;
use crate::names::{is_keyword, pascal, snake};
use crate::resolve::DraftService;

pub(super) fn integrations(c: &mut Checker<'_>, service: &DraftService) {
    let kind = service.kind();
    if !matches!(kind, ServiceType::Gateway | ServiceType::SagaOrchestrator) {
        return;
    }
    let Some(integrations) = &service.raw.integrations else {
        return;
    };
    let path = service_path(service).key("integrations").key("providers");
    let name = service.name();
    if integrations.timeout_ms == Some(0) {
        c.push(
            Diagnostic::error(
                Code::InvalidValue,
                service_path(service).key("integrations").key("timeout_ms"),
                format!("{kind} `{name}` has `timeout_ms = 0`: every provider call would time out before it is sent"),
            )
            .with_help("give one attempt of a provider call a limit in milliseconds, e.g. `timeout_ms = 5000`, or remove the key (10 s)"),
        );
    }
    if integrations.providers.is_empty() {
        c.push(
            Diagnostic::error(
                Code::MissingKey,
                path.clone(),
                format!("{kind} `{name}` calls the providers of `[services.integrations] providers`, and lists none"),
            )
            .with_help("name each external API it calls, e.g. `providers = [\"stripe\", \"paypal\"]`: each gets a client and a `<PROVIDER>_URL` variable"),
        );
    }
    let mut clients: BTreeMap<String, &str> = BTreeMap::new();
    for (i, provider) in integrations.providers.iter().enumerate() {
        let (client, method) = (pascal(provider), snake(provider));
        if is_keyword(&method) || is_keyword(&client) {
            c.push(
                Diagnostic::error(
                    Code::InvalidName,
                    path.clone().index(i),
                    format!("provider `{provider}` would make a client `{client}` or an accessor `{method}`, and that is a Rust keyword"),
                )
                .with_help(format!("name it after the API, e.g. `{provider}-api`")),
            );
            continue;
        }
        match clients.get(&client) {
            Some(other) => c.push(
                Diagnostic::error(
                    Code::NameClash,
                    path.clone().index(i),
                    format!("providers `{other}` and `{provider}` of {kind} `{name}` would both make the client `{client}`"),
                )
                .with_help("list each provider once, under one spelling"),
            ),
            None => {
                clients.insert(client, provider);
            }
        }
    }
}
