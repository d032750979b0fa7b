//! The checks of a saga (`[services.saga]`): at least one step, one compensation per step, a
//! deadline, a trait name of its own, its state in the service's own database, and replies
//! (`[services.saga.replies]`) that answer steps it has, each event answering one step one way.

use std::collections::HashMap;

use super::{Checker, service_path};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{Saga, SagaStateStore};
use crate::names::pascal;
use crate::resolve::DraftService;
use crate::source::KeyPath;
use crate::suggest;

pub(super) fn saga(c: &mut Checker<'_>, service: &DraftService) {
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
    if saga.timeout_seconds == 0 {
        c.push(
            Diagnostic::error(
                Code::InvalidValue,
                path.key("timeout_seconds"),
                format!("saga `{}` has `timeout_seconds = 0`: every saga would time out before its first step", saga.name),
            )
            .with_help("give the whole saga a deadline in seconds, e.g. `timeout_seconds = 300`"),
        );
    }
    if saga.state_store == Some(SagaStateStore::Redis) {
        c.push(
            Diagnostic::error(
                Code::Unsupported,
                path.key("state_store"),
                format!("saga `{}` cannot keep its state in Redis: a step whose work is in the service's database commits in the same transaction as the saga's state, so the state lives in that database", saga.name),
            )
            .with_help("remove `state_store` (the service's database: SQLite by default, PostgreSQL with DATABASE_URL) or write `state_store = \"postgres\"`"),
        );
    }
    let service_type = pascal(service.name());
    if saga.name == service_type {
        c.push(
            Diagnostic::error(
                Code::NameClash,
                path.key("name"),
                format!("saga `{}` has the name of its service's type `{service_type}`; the saga's trait is declared beside that type", saga.name),
            )
            .with_help(format!("name the saga after what it does, e.g. `{service_type}Saga`")),
        );
    }
    replies(c, saga, &path.key("replies"));
}

/// Each reply answers a step of the saga, with two different events, and no event answers
/// two steps (the orchestrator tells which step an event answers by its type).
fn replies(c: &mut Checker<'_>, saga: &Saga, path: &KeyPath) {
    let steps: Vec<&str> = saga.steps.iter().map(String::as_str).collect();
    let mut answering: HashMap<&str, &str> = HashMap::new();
    for (step, reply) in &saga.replies {
        let at = path.key(step);
        if !steps.contains(&step.as_str()) {
            c.push(
                Diagnostic::error(
                    Code::SagaMismatch,
                    at.clone(),
                    format!(
                        "`{step}` is not a step of saga `{}`, so nothing awaits this reply",
                        saga.name
                    ),
                )
                .with_help(suggest::help(step, &steps))
                .at_key(),
            );
        }
        if reply.failure.as_deref() == Some(reply.success.as_str()) {
            c.push(
                Diagnostic::error(
                    Code::SagaMismatch,
                    at.key("failure"),
                    format!("step `{step}` is answered by `{}` both when it succeeds and when it is declined", reply.success),
                )
                .with_help("name the event the participant sends when it declines the step, e.g. `failure = \"ShipmentRejected\"`, or remove `failure`"),
            );
        }
        let events = [
            ("success", Some(&reply.success)),
            ("failure", reply.failure.as_ref()),
        ];
        for (key, event) in events {
            let Some(event) = event else { continue };
            match answering.get(event.as_str()) {
                Some(other) if *other != step.as_str() => c.push(
                    Diagnostic::error(
                        Code::SagaMismatch,
                        at.key(key),
                        format!("event `{event}` already answers step `{other}`; the orchestrator tells which step an event answers by its type"),
                    )
                    .with_help(format!("let each step's participant answer with events of its own, e.g. `{step}Done`")),
                ),
                Some(_) => {}
                None => {
                    answering.insert(event, step);
                }
            }
        }
    }
}
