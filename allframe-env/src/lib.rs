//! The environment-variable contract of a generated service: every variable the runtime reads,
//! with its meaning, its default and the parser of its value. The runtime parses with it, the
//! CLI and the infrastructure templates name variables through it, and the docs list it, so a
//! name is spelt once.
//!
//! No dependencies: it is compiled into every service and into the CLI.

#![warn(missing_docs)]

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// What a variable's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A TCP port, `0` (any free port) to `65535`.
    Port,
    /// An IP address to bind.
    IpAddr,
    /// A whole number of seconds.
    Seconds,
    /// A whole number of bytes, at least 1.
    Bytes,
    /// A whole number within a range.
    Count {
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
        /// The expectation an invalid value is told, e.g. "a whole number from 1 to 64".
        expected: &'static str,
    },
    /// A URL, checked by the component that opens it.
    Url,
    /// A directory.
    Path,
    /// A `tracing` filter directive (`info,sqlx=warn`).
    Filter,
    /// IP addresses and CIDR ranges, comma-separated (`10.0.0.0/8,192.168.1.7`), checked by
    /// the runtime.
    IpRanges,
    /// Free text for the service's own code.
    Text,
}

/// One environment variable of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var {
    /// The name, e.g. `PORT`.
    pub name: &'static str,
    /// What it sets.
    pub meaning: &'static str,
    /// What happens when it is unset.
    pub default: &'static str,
    /// What its value is.
    pub kind: Kind,
}

/// A value a variable cannot hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The variable.
    pub var: &'static str,
    /// The value found.
    pub value: String,
    /// What was expected.
    pub reason: &'static str,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?} is invalid: {}",
            self.var, self.value, self.reason
        )
    }
}

impl std::error::Error for Invalid {}

impl Var {
    fn invalid(&self, value: &str, reason: &'static str) -> Invalid {
        Invalid {
            var: self.name,
            value: value.to_owned(),
            reason,
        }
    }

    /// Parses a [`Kind::Port`] value.
    pub fn port(&self, value: &str) -> Result<u16, Invalid> {
        value
            .trim()
            .parse()
            .map_err(|_| self.invalid(value, "expected a port number from 0 to 65535"))
    }

    /// Parses a [`Kind::IpAddr`] value.
    pub fn ip_addr(&self, value: &str) -> Result<IpAddr, Invalid> {
        value.trim().parse().map_err(|_| {
            self.invalid(
                value,
                "expected an IP address such as 0.0.0.0, 127.0.0.1 or ::",
            )
        })
    }

    /// Parses a [`Kind::Seconds`] value.
    pub fn seconds(&self, value: &str) -> Result<Duration, Invalid> {
        value
            .trim()
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| self.invalid(value, "expected a whole number of seconds"))
    }

    /// Parses a [`Kind::Bytes`] value.
    pub fn bytes(&self, value: &str) -> Result<usize, Invalid> {
        match value.trim().parse::<usize>() {
            Ok(bytes) if bytes > 0 => Ok(bytes),
            _ => Err(self.invalid(value, "expected a whole number of bytes, at least 1")),
        }
    }

    /// Parses a [`Kind::Count`] value within its range.
    pub fn count(&self, value: &str) -> Result<u64, Invalid> {
        let Kind::Count { min, max, expected } = self.kind else {
            return Err(self.invalid(value, "expected a value of another kind"));
        };
        match value.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid(value, expected)),
        }
    }
}

/// The REST (HTTP) port.
pub const PORT: Var = Var {
    name: "PORT",
    meaning: "REST port",
    default: "the HTTP port from the file",
    kind: Kind::Port,
};
/// The gRPC port.
pub const GRPC_PORT: Var = Var {
    name: "GRPC_PORT",
    meaning: "gRPC port",
    default: "the gRPC port from the file",
    kind: Kind::Port,
};
/// The port of a separate `/metrics` listener.
pub const METRICS_PORT: Var = Var {
    name: "METRICS_PORT",
    meaning: "port of a separate `/metrics` listener",
    default: "the file's `metrics:` port, else `/metrics` on the REST port",
    kind: Kind::Port,
};
/// The admin API's port.
pub const ADMIN_PORT: Var = Var {
    name: "ADMIN_PORT",
    meaning: "port of the admin API (`cargo allframe dlq` talks to it)",
    default: "the file's HTTP port + 1000",
    kind: Kind::Port,
};
/// The address the admin API binds to.
pub const ALLFRAME_ADMIN_BIND_ADDR: Var = Var {
    name: "ALLFRAME_ADMIN_BIND_ADDR",
    meaning: "IP address the admin API binds to",
    default: "`127.0.0.1` (loopback only)",
    kind: Kind::IpAddr,
};
/// The admin API's bearer token.
pub const ALLFRAME_ADMIN_TOKEN: Var = Var {
    name: "ALLFRAME_ADMIN_TOKEN",
    meaning: "bearer token every admin API request must carry (`Authorization: Bearer …`)",
    default: "unset: the admin API is not served",
    kind: Kind::Text,
};

/// The admin API's port for a service whose file gives it `http_port`, when `ADMIN_PORT` is
/// unset (the runtime listens there, the CLI looks there).
pub const fn default_admin_port(http_port: u16) -> u16 {
    http_port.saturating_add(1000)
}

/// The address servers bind to.
pub const ALLFRAME_BIND_ADDR: Var = Var {
    name: "ALLFRAME_BIND_ADDR",
    meaning: "IP address to bind",
    default: "`0.0.0.0`",
    kind: Kind::IpAddr,
};
/// The largest gRPC message accepted.
pub const ALLFRAME_GRPC_MAX_MESSAGE_BYTES: Var = Var {
    name: "ALLFRAME_GRPC_MAX_MESSAGE_BYTES",
    meaning: "largest gRPC request message, in bytes",
    default: "`4194304` (4 MiB)",
    kind: Kind::Bytes,
};
/// The drain deadline.
pub const ALLFRAME_SHUTDOWN_TIMEOUT_SECS: Var = Var {
    name: "ALLFRAME_SHUTDOWN_TIMEOUT_SECS",
    meaning: "drain deadline: seconds in-flight work gets after the listeners close",
    default: "`30`",
    kind: Kind::Seconds,
};
/// The readiness propagation delay.
pub const ALLFRAME_SHUTDOWN_DELAY_SECS: Var = Var {
    name: "ALLFRAME_SHUTDOWN_DELAY_SECS",
    meaning: "readiness propagation delay: seconds between the shutdown signal and the listeners closing",
    default: "`0` (the generated Kubernetes manifests set `5`)",
    kind: Kind::Seconds,
};
/// The database.
pub const DATABASE_URL: Var = Var {
    name: "DATABASE_URL",
    meaning: "database: `sqlite:…` or `postgres://…`",
    default: "an embedded SQLite file in `ALLFRAME_DATA_DIR`",
    kind: Kind::Url,
};
/// The directory of the embedded SQLite file.
pub const ALLFRAME_DATA_DIR: Var = Var {
    name: "ALLFRAME_DATA_DIR",
    meaning: "directory of the embedded SQLite file",
    default: "`./.data`",
    kind: Kind::Path,
};
/// The event bus.
pub const EVENT_BUS_URL: Var = Var {
    name: "EVENT_BUS_URL",
    meaning: "event bus: `nats://`, `amqp://`, `kafka://` or `local:`",
    default: "the embedded SQLite log",
    kind: Kind::Url,
};
/// Kafka transactional producers held at once.
pub const ALLFRAME_KAFKA_TRANSACTIONAL_PRODUCERS: Var = Var {
    name: "ALLFRAME_KAFKA_TRANSACTIONAL_PRODUCERS",
    meaning: "pattern `transactional` on Kafka: units of work that can hold a Kafka transaction at once (1–64)",
    default: "`4`",
    kind: Kind::Count {
        min: 1,
        max: 64,
        expected: "expected a whole number from 1 to 64",
    },
};
/// How long a consumer remembers the events it handled.
pub const ALLFRAME_INBOX_RETENTION_SECS: Var = Var {
    name: "ALLFRAME_INBOX_RETENTION_SECS",
    meaning: "consumers: seconds an inbox row (a handled event's id) is kept; a redelivery older than this is handled again",
    default: "`604800` (7 days)",
    kind: Kind::Seconds,
};
/// The SMTP relay of a consumer's `email` channel.
pub const SMTP_URL: Var = Var {
    name: "SMTP_URL",
    meaning: "consumers with the `email` channel: SMTP relay (`smtp://user:password@host:587`, `smtps://host:465`)",
    default: "each mail written to `<data dir>/channels/email/<key>.json`",
    kind: Kind::Url,
};
/// The sender of mails that name none.
pub const EMAIL_FROM: Var = Var {
    name: "EMAIL_FROM",
    meaning: "consumers with the `email` channel: the sender of mails whose handler sets none",
    default: "`<service>@localhost`",
    kind: Kind::Text,
};
/// The gateway of a consumer's `sms` channel.
pub const SMS_WEBHOOK_URL: Var = Var {
    name: "SMS_WEBHOOK_URL",
    meaning: "consumers with the `sms` channel: the SMS gateway each message is POSTed to as JSON",
    default: "each message written to `<data dir>/channels/sms/<key>.json`",
    kind: Kind::Url,
};
/// The gateway of a consumer's `push` channel.
pub const PUSH_WEBHOOK_URL: Var = Var {
    name: "PUSH_WEBHOOK_URL",
    meaning: "consumers with the `push` channel: the push gateway each message is POSTed to as JSON",
    default: "each message written to `<data dir>/channels/push/<key>.json`",
    kind: Kind::Url,
};
/// The endpoint of a consumer's `webhook` channel.
pub const WEBHOOK_URL: Var = Var {
    name: "WEBHOOK_URL",
    meaning: "consumers with the `webhook` channel: the endpoint each document is POSTed to",
    default: "each document written to `<data dir>/channels/webhook/<key>.json`",
    kind: Kind::Url,
};
/// The variable naming where a consumer's notification channel `channel` (as the file spells
/// it: `email`, `sms`, `push`, `webhook`) delivers; `None` for another name.
pub fn channel_url(channel: &str) -> Option<Var> {
    match channel {
        "email" => Some(SMTP_URL),
        "sms" => Some(SMS_WEBHOOK_URL),
        "push" => Some(PUSH_WEBHOOK_URL),
        "webhook" => Some(WEBHOOK_URL),
        _ => None,
    }
}
/// The variable holding the base URL of a gateway's provider: `stripe` → `STRIPE_URL`,
/// `legacy-erp` → `LEGACY_ERP_URL` (each character that is not an ASCII letter or digit
/// becomes `_`).
pub fn provider_url(provider: &str) -> String {
    let name: String = provider
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{name}_URL")
}

/// Redis, for idempotency keys stored there and for rate limits shared by replicas.
pub const REDIS_URL: Var = Var {
    name: "REDIS_URL",
    meaning: "Redis for `[services.idempotency] storage = \"redis\"`, where a rate limit is counted for every replica, and where a `cache` service keeps its entries (shared by its instances)",
    default: "none: start-up fails when the idempotency storage needs it; rate limits count per replica; a cache keeps its entries in its own process",
    kind: Kind::Url,
};
/// Overrides the lifetime of idempotency keys.
pub const ALLFRAME_IDEMPOTENCY_TTL_SECS: Var = Var {
    name: "ALLFRAME_IDEMPOTENCY_TTL_SECS",
    meaning: "lifetime of idempotency keys, in seconds",
    default: "`ttl_hours` from the file",
    kind: Kind::Seconds,
};
/// The proxies whose `X-Forwarded-For` a per-IP rate limit believes.
pub const ALLFRAME_TRUSTED_PROXIES: Var = Var {
    name: "ALLFRAME_TRUSTED_PROXIES",
    meaning: "proxies (IP addresses, CIDR ranges) whose `X-Forwarded-For` names the client of a `per = \"ip\"` rate limit",
    default: "none: the client is the connection's peer",
    kind: Kind::IpRanges,
};
/// How long a saga orchestrator's lease on a saga lasts.
pub const ALLFRAME_SAGA_LEASE_SECS: Var = Var {
    name: "ALLFRAME_SAGA_LEASE_SECS",
    meaning: "seconds a saga orchestrator holds a saga without renewing its lease; another instance takes over a saga whose lease lapsed",
    default: "10",
    kind: Kind::Seconds,
};
/// The log filter.
pub const RUST_LOG: Var = Var {
    name: "RUST_LOG",
    meaning: "log filter (`info,sqlx=warn`, …)",
    default: "`info`",
    kind: Kind::Filter,
};
/// Where spans are exported.
pub const OTEL_EXPORTER_OTLP_ENDPOINT: Var = Var {
    name: "OTEL_EXPORTER_OTLP_ENDPOINT",
    meaning: "OTLP/gRPC collector spans are exported to",
    default: "`http://localhost:4317`",
    kind: Kind::Url,
};
/// Where spans are exported, for traces only (wins over the general endpoint).
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: Var = Var {
    name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    meaning: "OTLP/gRPC collector for traces, over `OTEL_EXPORTER_OTLP_ENDPOINT`",
    default: "`OTEL_EXPORTER_OTLP_ENDPOINT`",
    kind: Kind::Url,
};

/// Every variable of the contract, in the order the docs list them.
pub const ALL: &[Var] = &[
    PORT,
    GRPC_PORT,
    METRICS_PORT,
    ALLFRAME_BIND_ADDR,
    ADMIN_PORT,
    ALLFRAME_ADMIN_BIND_ADDR,
    ALLFRAME_ADMIN_TOKEN,
    ALLFRAME_GRPC_MAX_MESSAGE_BYTES,
    ALLFRAME_SHUTDOWN_TIMEOUT_SECS,
    ALLFRAME_SHUTDOWN_DELAY_SECS,
    DATABASE_URL,
    ALLFRAME_DATA_DIR,
    EVENT_BUS_URL,
    ALLFRAME_INBOX_RETENTION_SECS,
    SMTP_URL,
    EMAIL_FROM,
    SMS_WEBHOOK_URL,
    PUSH_WEBHOOK_URL,
    WEBHOOK_URL,
    ALLFRAME_KAFKA_TRANSACTIONAL_PRODUCERS,
    REDIS_URL,
    ALLFRAME_IDEMPOTENCY_TTL_SECS,
    ALLFRAME_TRUSTED_PROXIES,
    ALLFRAME_SAGA_LEASE_SECS,
    RUST_LOG,
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
];

macro_rules! for_service_code {
    ($($(#[$doc:meta])* $name:ident: $kind:ident, $meaning:literal;)*) => {
        $(
            $(#[$doc])*
            pub const $name: Var = Var {
                name: stringify!($name),
                meaning: $meaning,
                default: "unset",
                kind: Kind::$kind,
            };
        )*
        /// The variables generated infrastructure hands to a service for its own code (the
        /// runtime does not read them): the support stage reports the keys behind them as
        /// honoured by the infrastructure only.
        pub const FOR_SERVICE_CODE: &[Var] = &[$($name),*];
    };
}

for_service_code! {
    /// The schema registry (`[settings.events] schema_registry`).
    SCHEMA_REGISTRY_URL: Url, "schema registry (`[settings.events] schema_registry`)";
    /// Memcached (`[services.cache] backend = "memcached"`).
    MEMCACHED_URL: Url, "Memcached of a `cache` service";
    /// Hazelcast (`[services.cache] backend = "hazelcast"`).
    HAZELCAST_ADDRESS: Url, "Hazelcast of a `cache` service";
    /// The local DynamoDB emulator.
    DYNAMODB_ENDPOINT: Url, "local DynamoDB emulator";
    /// The local Firestore emulator.
    FIRESTORE_EMULATOR_HOST: Url, "local Firestore emulator";
    /// The feature-flag provider (`[feature_flags] provider`).
    FEATURE_FLAGS_PROVIDER: Text, "feature-flag provider";
    /// The feature-flag service.
    FEATURE_FLAGS_URL: Url, "feature-flag service";
    /// The feature-flag SDK key (a secret).
    FEATURE_FLAGS_SDK_KEY: Text, "feature-flag SDK key (a secret)";
    /// `[feature_flags] sync_interval_seconds`.
    FEATURE_FLAGS_SYNC_INTERVAL_SECONDS: Seconds, "feature-flag refresh interval";
    /// `[feature_flags] default_strategy`.
    FEATURE_FLAGS_DEFAULT_STRATEGY: Text, "feature-flag default strategy";
    /// Where the feature-flag SDK key is stored (AWS).
    FEATURE_FLAGS_SECRET_ARN: Text, "ARN of the secret holding the feature-flag SDK key";
    /// The cloud event bus (EventBridge) name.
    EVENT_BUS_NAME: Text, "EventBridge bus of `event_bus = \"sqs\"`";
    /// The cloud queue (SQS) URL.
    EVENT_QUEUE_URL: Url, "SQS queue of `event_bus = \"sqs\"`";
    /// Where the service's secrets are stored (AWS Lambda).
    ALLFRAME_SECRET_ARN: Text, "ARN of the service's secret (Lambda)";
}

/// The variable called `name`, when the contract has one: read by the runtime ([`ALL`]) or
/// handed to service code ([`FOR_SERVICE_CODE`]).
pub fn lookup(name: &str) -> Option<Var> {
    ALL.iter()
        .chain(FOR_SERVICE_CODE)
        .copied()
        .find(|var| var.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_or_name_the_variable_and_the_expectation() {
        assert_eq!(PORT.port(" 8080 "), Ok(8080));
        let bad = PORT.port("http").expect_err("not a port");
        assert_eq!(
            bad.to_string(),
            "PORT=\"http\" is invalid: expected a port number from 0 to 65535"
        );
        assert_eq!(
            ALLFRAME_SHUTDOWN_DELAY_SECS.seconds("5"),
            Ok(Duration::from_secs(5))
        );
        assert!(ALLFRAME_GRPC_MAX_MESSAGE_BYTES.bytes("0").is_err());
        assert_eq!(ALLFRAME_KAFKA_TRANSACTIONAL_PRODUCERS.count("64"), Ok(64));
        assert!(ALLFRAME_KAFKA_TRANSACTIONAL_PRODUCERS.count("65").is_err());
        assert!(ALLFRAME_BIND_ADDR.ip_addr("::1").is_ok());
    }

    #[test]
    fn the_runtime_docs_list_every_variable_the_runtime_reads() {
        let docs =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/runtime.md"))
                .expect("docs/runtime.md");
        for var in ALL {
            assert!(
                docs.contains(&format!("| `{}` |", var.name)),
                "docs/runtime.md lacks {}",
                var.name
            );
        }
    }

    #[test]
    fn names_are_unique_and_found() {
        let every: Vec<Var> = ALL.iter().chain(FOR_SERVICE_CODE).copied().collect();
        for (i, var) in every.iter().enumerate() {
            assert!(
                every[..i].iter().all(|other| other.name != var.name),
                "{}",
                var.name
            );
            assert_eq!(lookup(var.name), Some(*var));
        }
        assert_eq!(lookup("PATH"), None);
    }
}
