//! Names on the bus, derived from the architecture: topics and consumer groups.
//!
//! A topic is `<architecture>.<producing service>.<event type>`, e.g.
//! `shop.user-service.UserCreated`; a consumer group is `<architecture>.<consuming service>`.
//! Each part is reduced to `[A-Za-z0-9_-]` (anything else becomes `_`), so a name is a valid
//! Kafka topic, NATS subject (dots separate tokens, no wildcards) and RabbitMQ routing key
//! (dots separate words for topic exchanges). Adapters use these names as they are.
//!
//! Buses without partitions of their own (NATS, RabbitMQ) carry a topic in
//! [`BUS_PARTITIONS`] partitions: the subject or routing key is the topic plus one more token,
//! the event's [`bus_partition`] (`shop.user-service.UserCreated.7`). The events of one
//! aggregate share a partition and keep their order in it, while the members of a consumer
//! group share the partitions. The partition is the outbox relay's partition hash, so one
//! relay partition always feeds one bus partition.

use super::envelope::Envelope;
use super::outbox::partition_of;

/// How many partitions a topic has on buses that partition by subject or routing key (NATS,
/// RabbitMQ): the most members of one consumer group that can work at once. A divisor of the
/// outbox's [`super::outbox::PARTITIONS`].
pub const BUS_PARTITIONS: u32 = 16;

/// The partition of `envelope` on a partitioned topic: its aggregate's outbox partition
/// modulo [`BUS_PARTITIONS`]; an event without an aggregate id goes by its own id.
pub fn bus_partition(envelope: &Envelope) -> u32 {
    let outbox_partition = if envelope.aggregate_id.is_empty() {
        partition_of("", &envelope.id.hyphenated().to_string())
    } else {
        partition_of(&envelope.aggregate_type, &envelope.aggregate_id)
    };
    u32::try_from(outbox_partition).unwrap_or(0) % BUS_PARTITIONS
}

/// The subject (routing key) of `partition` of `topic`: `<topic>.<partition>`.
pub fn partition_subject(topic: &str, partition: u32) -> String {
    format!("{topic}.{partition}")
}

/// The topic and partition of a partitioned subject; `None` when `subject` does not end in a
/// partition token.
pub fn split_partition_subject(subject: &str) -> Option<(&str, u32)> {
    let (topic, token) = subject.rsplit_once('.')?;
    let partition: u32 = token.parse().ok()?;
    (partition < BUS_PARTITIONS && token == partition.to_string()).then_some((topic, partition))
}

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

/// What separates a per-instance group's name from its unique suffix
/// ([`SubscribeOptions::per_instance`](super::SubscribeOptions::per_instance)): `~` never
/// occurs in a [`consumer_group`], so the bus recognises the groups it may forget.
const PER_INSTANCE_MARK: &str = ".instance~";

/// The name of a new per-instance group of `group`: `<group>.instance~<uuid>`, unique to one
/// subscription (a Kafka `group.id`, a RabbitMQ queue, a NATS consumer's, the local bus's).
pub(crate) fn per_instance_group(group: &str) -> String {
    format!(
        "{group}{PER_INSTANCE_MARK}{}",
        uuid::Uuid::new_v4().simple()
    )
}

/// Whether `name` is one the bus gave a per-instance subscriber: `<group>.instance~<uuid>`.
pub fn is_per_instance_group(name: &str) -> bool {
    name.rsplit_once(PER_INSTANCE_MARK)
        .is_some_and(|(_, suffix)| {
            suffix.len() == 32 && suffix.bytes().all(|b| b.is_ascii_hexdigit())
        })
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

    #[test]
    fn per_instance_groups_are_unique_and_recognised() {
        let group = consumer_group("shop", "instance-service");
        let (a, b) = (per_instance_group(&group), per_instance_group(&group));
        assert_ne!(a, b);
        assert!(a.starts_with("shop.instance-service.instance~"), "{a}");
        assert!(is_per_instance_group(&a));
        assert!(!is_per_instance_group(&group));
        assert!(!is_per_instance_group("shop.instance-x"));
    }

    #[test]
    fn partition_subjects_round_trip() {
        let topic = topic_name("shop", "user-service", "UserCreated");
        for partition in 0..BUS_PARTITIONS {
            let subject = partition_subject(&topic, partition);
            assert_eq!(
                split_partition_subject(&subject),
                Some((topic.as_str(), partition))
            );
        }
        assert_eq!(split_partition_subject(&topic), None);
        assert_eq!(split_partition_subject("shop.a.E.16"), None);
        assert_eq!(split_partition_subject("shop.a.E.07"), None);
    }

    #[test]
    fn one_aggregate_one_partition_and_aggregates_spread() {
        let mut envelope = Envelope::salvage(&[], Vec::new());
        envelope.aggregate_type = "Order".into();
        envelope.aggregate_id = "1".into();
        let first = bus_partition(&envelope);
        envelope.id = uuid::Uuid::now_v7();
        assert_eq!(
            bus_partition(&envelope),
            first,
            "the aggregate decides, not the event"
        );
        let used: std::collections::HashSet<u32> = (0..200)
            .map(|id| {
                envelope.aggregate_id = id.to_string();
                bus_partition(&envelope)
            })
            .collect();
        assert_eq!(
            used.len(),
            BUS_PARTITIONS as usize,
            "200 aggregates use every partition"
        );
        envelope.aggregate_id.clear();
        let spread: std::collections::HashSet<u32> = (0..200)
            .map(|_| {
                envelope.id = uuid::Uuid::now_v7();
                bus_partition(&envelope)
            })
            .collect();
        assert!(
            spread.len() > 1,
            "events without an aggregate spread by their id"
        );
    }
}
