//! The infrastructure and documentation ignite writes beside the service crates, for the whole
//! architecture (every service, crate or not): `infrastructure/docker` (compose files and a
//! Dockerfile per service), `infrastructure/k8s` (kustomize base and overlays),
//! `infrastructure/terraform` and the other clouds present in `[cloud]`, `infrastructure/pulumi`
//! (Pulumi YAML programs for AWS and Google Cloud),
//! `.github/workflows/ci.yml` and `docs/architecture.md`.
//!
//! [`model`] decides what every file says; this module only chooses which templates apply and
//! with which context. The files go through the same manifest as the crates, so re-ignite keeps
//! the user's edits to them. Nothing here reads or writes the output directory.

mod compose_env;
mod engines;
pub mod flags;
pub mod model;
pub mod paas;
pub mod pulumi;
pub mod shutdown;
pub mod terraform;

use allframe_env as vars;
use std::collections::BTreeSet;

use allframe_config::Architecture;
use allframe_config::model::DeploymentStrategy;
use minijinja::context;
use minijinja::value::{Serde, Value};
use serde::Serialize;

use crate::error::CliError;
use crate::escape::Code;
use crate::graph::{Format, Graph};
use crate::templates::{Renderer, infra as t};
use crate::workspace::PlannedFile;
use model::{EnvVar, InfraContext, Scope};

/// One environment of the kustomize overlays.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Overlay {
    /// `dev`, `staging` or `production`.
    pub name: &'static str,
    /// The image tag it deploys.
    pub tag: &'static str,
    /// HPA floor.
    pub min_replicas: u32,
    /// HPA ceiling.
    pub max_replicas: u32,
    /// CPU request per pod.
    pub cpu: &'static str,
    /// Memory request per pod.
    pub memory: &'static str,
    /// Memory limit per pod.
    pub memory_limit: &'static str,
    /// PodDisruptionBudget `maxUnavailable`, when it differs from the base's 1.
    pub max_unavailable: Option<u32>,
}

/// The overlays under `infrastructure/k8s/overlays/`.
pub const OVERLAYS: &[Overlay] = &[
    Overlay {
        name: "dev",
        tag: "dev",
        min_replicas: 1,
        max_replicas: 2,
        cpu: "50m",
        memory: "64Mi",
        memory_limit: "256Mi",
        max_unavailable: None,
    },
    Overlay {
        name: "staging",
        tag: "staging",
        min_replicas: 2,
        max_replicas: 4,
        cpu: "100m",
        memory: "128Mi",
        memory_limit: "512Mi",
        max_unavailable: None,
    },
    Overlay {
        name: "production",
        tag: "stable",
        min_replicas: 3,
        max_replicas: 12,
        cpu: "250m",
        memory: "256Mi",
        memory_limit: "1Gi",
        max_unavailable: Some(1),
    },
];

/// Any serializable value as a template value.
pub fn v<T: Serialize>(value: T) -> Value {
    Value::from(Serde(value))
}

/// Plans every infrastructure and documentation file of `architecture`; `generated` names the
/// services whose crates ignite writes.
pub fn plan(
    architecture: &Architecture,
    generated: &BTreeSet<String>,
    renderer: &Renderer,
) -> Result<Vec<PlannedFile>, CliError> {
    let infra = model::build(architecture, Scope::Deployable(generated));
    let strategy = architecture.globals().deployment.strategy;
    let progressive = model::progressive(strategy);
    let base = context! {
        progressive,
        workload_file => if progressive { "rollout.yaml" } else { "deployment.yaml" },
        extra_service => match strategy {
            DeploymentStrategy::Canary => Some("canary"),
            DeploymentStrategy::BlueGreen => Some("preview"),
            _ => None,
        },
        with_crate => v(infra.services.iter().filter(|s| s.has_crate).map(|s| &s.name).collect::<Vec<_>>()),
        host_test_env => v(host_test_env(&infra)),
        // `[feature_flags]` unless its provider is `env`: compose, k8s and fly.toml pass it on.
        flags => v(flags::context(architecture)),
        ..v(&infra)
    };
    let mut files = Vec::new();
    let mut render = |template, context: Value| -> Result<(), CliError> {
        let (path, text) = renderer.render(template, &context)?;
        files.push(PlannedFile::new(path, text));
        Ok(())
    };

    // Local: compose, images.
    render(&t::COMPOSE, context! { test => false, ..base.clone() })?;
    render(&t::COMPOSE_TEST, context! { test => true, ..base.clone() })?;
    if infra.engines.postgres.is_some() {
        render(&t::POSTGRES_INIT, base.clone())?;
    }
    if infra.engines.mysql.is_some() {
        render(&t::MYSQL_INIT, base.clone())?;
    }
    if infra.engines.otel.is_some() {
        render(&t::OTEL_COLLECTOR, base.clone())?;
    }
    for service in &infra.services {
        render(
            &t::DOCKERFILE,
            context! { service => v(service), ..base.clone() },
        )?;
    }

    // Kubernetes.
    render(&t::K8S_KUSTOMIZATION, base.clone())?;
    if progressive {
        render(&t::K8S_ROLLOUT_CONFIG, base.clone())?;
        render(&t::K8S_ANALYSIS, base.clone())?;
    }
    for service in &infra.services {
        let scope = context! { service => v(service), ..base.clone() };
        render(&t::K8S_WORKLOAD, scope.clone())?;
        render(&t::K8S_SERVICE, context! { suffix => "", ..scope.clone() })?;
        let extra = match strategy {
            DeploymentStrategy::Canary => Some("-canary"),
            DeploymentStrategy::BlueGreen => Some("-preview"),
            _ => None,
        };
        if let Some(suffix) = extra {
            render(&t::K8S_SERVICE, context! { suffix, ..scope.clone() })?;
        }
        render(&t::K8S_HPA, scope.clone())?;
        render(&t::K8S_PDB, scope.clone())?;
        render(&t::K8S_NETWORK_POLICY, scope)?;
    }
    // `overlay`, not `env`: `env` is the global of environment-variable names.
    for overlay in OVERLAYS {
        render(
            &t::K8S_OVERLAY,
            context! { overlay => v(overlay), ..base.clone() },
        )?;
        render(
            &t::K8S_NAMESPACE,
            context! { overlay => v(overlay), ..base.clone() },
        )?;
    }

    // CI, docs.
    render(&t::CI, base.clone())?;
    // The document and its diagram describe the whole file, generated or not.
    let whole = model::build(architecture, Scope::Whole(generated));
    let diagram = Code::new(graph(&whole, Format::Mermaid, renderer)?);
    render(&t::ARCHITECTURE_DOC, context! { diagram, ..v(&whole) })?;

    files.extend(terraform::plan(&infra, architecture, renderer, &base)?);
    files.extend(pulumi::plan(&infra, architecture, renderer, &base)?);
    Ok(files)
}

/// The diagram of `infra` in `format`.
pub fn graph(
    infra: &InfraContext,
    format: Format,
    renderer: &Renderer,
) -> Result<String, CliError> {
    let template = match format {
        Format::Mermaid => &t::MERMAID,
        Format::Dot => &t::DOT,
    };
    let graph = Graph::new(infra);
    renderer
        .render(template, &context! { graph => v(graph) })
        .map(|(_, text)| text)
}

/// The environment of tests run on the CI host against the engines of
/// `docker-compose.test.yml`, through their published host ports.
fn host_test_env(infra: &InfraContext) -> Vec<EnvVar> {
    let engines = &infra.engines;
    let mut out = Vec::new();
    let mut push = |name: &str, value: String| out.push(model::env(name, value));
    if let Some(pg) = engines.postgres {
        push(
            vars::DATABASE_URL.name,
            format!("postgres://allframe@localhost:{}/allframe", pg.host),
        );
    }
    if let Some(kafka) = engines.kafka {
        push(
            vars::EVENT_BUS_URL.name,
            format!("kafka://localhost:{}", kafka.host),
        );
    } else if let Some(nats) = engines.nats {
        push(
            vars::EVENT_BUS_URL.name,
            format!("nats://localhost:{}", nats.host),
        );
    } else if let Some(rabbit) = engines.rabbitmq {
        push(
            vars::EVENT_BUS_URL.name,
            format!("amqp://guest:guest@localhost:{}/%2f", rabbit.host),
        );
    }
    if let Some(redis) = engines.redis {
        push(
            vars::REDIS_URL.name,
            format!("redis://localhost:{}", redis.host),
        );
    }
    out
}
