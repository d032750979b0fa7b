//! Names on the bus, derived from the architecture: topics and consumer groups.
//!
//! A topic is `<architecture>.<producing service>.<event type>`, e.g.
//! `shop.user-service.UserCreated`; a consumer group is `<architecture>.<consuming service>`.
//! Each part is reduced to `[A-Za-z0-9_-]` (anything else becomes `_`), so a name is a valid
//! Kafka topic, NATS subject (dots separate tokens, no wildcards) and RabbitMQ routing key
//! (dots separate words for topic exchanges). Adapters use these names as they are.

/// The topic of events of type `event_type` produced by `service` in `architecture`.
///
/// ```
/// use allframe_runtime::messaging::topic_name;
/// assert_eq!(topic_name("shop", "user-service", "UserCreated"), "shop.user-service.UserCreated");
/// ```
pub fn topic_name(architecture: &str, service: &str, event_type: &str) -> String {
    [architecture, service, event_type].map(part).join(".")
}

/// The consumer group of `service` in `architecture`: every instance of one service shares it,
/// so each event is handled once per consuming service.
///
/// ```
/// use allframe_runtime::messaging::consumer_group;
/// assert_eq!(consumer_group("shop", "notification-service"), "shop.notification-service");
/// ```
pub fn consumer_group(architecture: &str, service: &str) -> String {
    [architecture, service].map(part).join(".")
}

/// One name part: `[A-Za-z0-9_-]` only, never empty.
fn part(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "_".to_owned()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_never_contain_separators_or_wildcards() {
        assert_eq!(topic_name("my shop", "a.b", "X>*"), "my_shop.a_b.X__");
        assert_eq!(topic_name("", "svc", "E"), "_.svc.E");
        assert_eq!(consumer_group("shop", "n/s"), "shop.n_s");
    }
}
