//! The diagram of an architecture: services, the event bus, databases, caches and the flows
//! between them, as a small graph rendered to Mermaid (in `docs/architecture.md`) or Graphviz
//! DOT (`cargo allframe graph --format dot`).
//!
//! The graph is built from the infrastructure model, so the diagram, the compose file and the
//! manifests always agree. Rendering goes through the `infra/graph/*.jinja` templates.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::infra::model::InfraContext;

/// The output formats of `cargo allframe graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A Mermaid flowchart (GitHub renders it in Markdown).
    Mermaid,
    /// A Graphviz digraph.
    Dot,
}

impl Format {
    /// The template that renders the graph in this format.
    pub fn template(self) -> &'static str {
        match self {
            Format::Mermaid => "infra/graph/mermaid.jinja",
            Format::Dot => "infra/graph/dot.jinja",
        }
    }
}

/// What a node stands for; decides its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    /// A service of the file.
    Service,
    /// A service named by the file but not defined in it.
    External,
    /// The event bus.
    Bus,
    /// A database.
    Database,
    /// A cache engine.
    Cache,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// An identifier safe in Mermaid and DOT (`[a-z0-9_]`).
    pub id: String,
    /// The first line of its label.
    pub label: String,
    /// The second line (a service's type, a database's name).
    pub detail: String,
    /// What it stands for.
    pub kind: NodeKind,
}

/// What an edge stands for; decides its line style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgeKind {
    /// A synchronous call (HTTP or gRPC).
    Call,
    /// Events published or delivered.
    Event,
    /// Reads and writes of a data store.
    Data,
}

/// One edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    /// Source node id.
    pub from: String,
    /// Target node id.
    pub to: String,
    /// What flows (event names), possibly empty.
    pub label: String,
    /// What it stands for.
    pub kind: EdgeKind,
}

/// The diagram of one architecture.
#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    /// The architecture's name.
    pub title: String,
    /// Nodes, services first in file order.
    pub nodes: Vec<Node>,
    /// Edges.
    pub edges: Vec<Edge>,
}

/// An identifier made of `[a-z0-9_]` only.
fn id(prefix: &str, name: &str) -> String {
    let body: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}{body}")
}

/// The display name of a database engine.
fn engine_label(database: &str) -> &'static str {
    match database {
        "postgres" => "PostgreSQL",
        "mysql" => "MySQL",
        "dynamodb" => "DynamoDB",
        "firestore" => "Firestore",
        _ => "SQLite",
    }
}

/// The display name of an event bus.
pub fn bus_label(bus: &str) -> &'static str {
    match bus {
        "kafka" => "Kafka",
        "rabbitmq" => "RabbitMQ",
        "sqs" => "SQS/SNS",
        "pubsub" => "Pub/Sub",
        _ => "NATS JetStream",
    }
}

impl Graph {
    /// The graph of `infra`.
    pub fn new(infra: &InfraContext) -> Self {
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        for service in &infra.services {
            nodes.push(Node {
                id: id("svc_", &service.name),
                label: service.name.clone(),
                detail: service.kind.to_owned(),
                kind: NodeKind::Service,
            });
        }
        let mut externals = BTreeSet::new();
        for service in &infra.services {
            let from = id("svc_", &service.name);
            for target in &service.calls {
                edges.push(Edge {
                    from: from.clone(),
                    to: id("svc_", target),
                    label: String::new(),
                    kind: EdgeKind::Call,
                });
            }
            for target in &service.external_calls {
                externals.insert(target.clone());
                edges.push(Edge {
                    from: from.clone(),
                    to: id("ext_", target),
                    label: String::new(),
                    kind: EdgeKind::Call,
                });
            }
        }
        for name in externals {
            nodes.push(Node {
                id: id("ext_", &name),
                label: name,
                detail: "not in this file".to_owned(),
                kind: NodeKind::External,
            });
        }
        if let Some(bus) = infra.event_bus {
            nodes.push(Node {
                id: "bus".to_owned(),
                label: bus_label(bus).to_owned(),
                detail: "event bus".to_owned(),
                kind: NodeKind::Bus,
            });
            for service in infra.services.iter().filter(|s| s.bus) {
                let node = id("svc_", &service.name);
                let published: Vec<&str> = service
                    .produces
                    .iter()
                    .map(|e| e.name.as_str())
                    .chain(service.output_topics.iter().map(String::as_str))
                    .collect();
                if !published.is_empty() {
                    edges.push(Edge {
                        from: node.clone(),
                        to: "bus".to_owned(),
                        label: published.join(", "),
                        kind: EdgeKind::Event,
                    });
                }
                let received: Vec<&str> = service
                    .consumes
                    .iter()
                    .map(|e| e.name.as_str())
                    .chain(service.input_topics.iter().map(String::as_str))
                    .collect();
                if !received.is_empty() {
                    edges.push(Edge {
                        from: "bus".to_owned(),
                        to: node,
                        label: received.join(", "),
                        kind: EdgeKind::Event,
                    });
                }
            }
        }
        for service in &infra.services {
            if let Some(db) = &service.database_name {
                let node = id("db_", &service.name);
                nodes.push(Node {
                    id: node.clone(),
                    label: engine_label(service.database).to_owned(),
                    detail: db.clone(),
                    kind: NodeKind::Database,
                });
                edges.push(Edge {
                    from: id("svc_", &service.name),
                    to: node,
                    label: String::new(),
                    kind: EdgeKind::Data,
                });
            }
        }
        if infra.engines.redis.is_some() {
            nodes.push(Node {
                id: "redis".to_owned(),
                label: "Redis".to_owned(),
                detail: "cache, idempotency keys".to_owned(),
                kind: NodeKind::Cache,
            });
            for service in infra.services.iter().filter(|s| s.redis) {
                edges.push(Edge {
                    from: id("svc_", &service.name),
                    to: "redis".to_owned(),
                    label: String::new(),
                    kind: EdgeKind::Data,
                });
            }
        }
        Self {
            title: infra.architecture.clone(),
            nodes,
            edges,
        }
    }
}

/// The `mermaid_label` filter: text safe inside a Mermaid `"…"` label.
pub fn mermaid_label(text: &str) -> String {
    crate::escape::Language::Mermaid.escape(text).into_owned()
}

/// The `dot_str` filter: a DOT double-quoted string.
pub fn dot_str(text: &str) -> String {
    format!("\"{}\"", crate::escape::Language::Dot.escape(text))
}
