//! The scaffold templates, embedded in the binary so an installed `cargo-allframe` needs no
//! checkout of the repository, and the minijinja environment that renders them.
//!
//! The sources live in `archetypes/<type>/` and mirror the tree they produce. The scaffold of a
//! service crate and of the workspace is listed by each folder's `manifest.toml` (read in
//! [`crate::scaffold`]); the infrastructure templates, each rendered by code of its own in
//! [`crate::infra`], are listed here. What goes into a template's context is decided in
//! [`crate::context`].

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Serde, Value};
use minijinja::{AutoEscape, Environment, Error, Output, State, UndefinedBehavior};
use serde::Serialize;

use crate::error::CliError;
use crate::escape::Language;

/// When a template applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Always (`always`).
    Always,
    /// Only for services that speak gRPC (`grpc`).
    Grpc,
    /// Only for services that declare `[services.messaging]` (`messaging`).
    Messaging,
    /// Only for services that call providers through clients (`[services.integrations]`,
    /// `providers`).
    Providers,
    /// Only when the architecture names events (`events`: the workspace's shared event-types
    /// crate).
    Events,
    /// Only when the service's archetype lists at least one item of this name
    /// ([`crate::context::ArchetypeContext::items`]), e.g. `projection`.
    Listed(&'static str),
    /// Never on its own: a partial another template includes (a manifest's `[[partials]]`,
    /// e.g. each archetype's section of the workspace README).
    Included,
}

impl<'de> serde::Deserialize<'de> for When {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(match name.as_str() {
            "always" => When::Always,
            "grpc" => When::Grpc,
            "messaging" => When::Messaging,
            "providers" => When::Providers,
            "events" => When::Events,
            // Read once per process and kept for its life, like the manifests themselves.
            _ => When::Listed(name.leak()),
        })
    }
}

/// How many files a scaffold template renders to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Each {
    /// One.
    #[default]
    Once,
    /// One per event of the shared event-types crate (workspace templates), with `event` in
    /// the context.
    Event,
    /// One per item the service's archetype lists under this name
    /// ([`crate::context::ArchetypeContext::items`]), with the item under it in the context:
    /// `ingestion` (a `producer`'s), `aggregate` and `projection` (an `event-sourced`
    /// service's).
    Item(&'static str),
}

impl<'de> serde::Deserialize<'de> for Each {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Each::from)
    }
}

impl From<String> for Each {
    fn from(name: String) -> Self {
        match name.as_str() {
            "once" => Each::Once,
            "event" => Each::Event,
            // Read once per process and kept for its life, like the manifests themselves.
            _ => Each::Item(name.leak()),
        }
    }
}

/// One embedded template.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    /// Its source path under `archetypes/`, e.g. `stateless/src/main.rs.jinja`.
    pub name: &'static str,
    /// The path it renders to (itself a template), relative to the crate or workspace root.
    pub output: &'static str,
    /// When it applies.
    pub when: When,
    /// How many files it renders to.
    pub each: Each,
    /// Its text.
    pub source: &'static str,
}

macro_rules! template {
    ($name:literal => $output:literal, $when:ident) => {
        Template {
            name: $name,
            output: $output,
            when: When::$when,
            each: $crate::templates::Each::Once,
            source: include_str!(concat!("../../archetypes/", $name)),
        }
    };
}

/// The infrastructure, documentation and diagram templates, relative to the workspace root.
/// Which of them apply, and with which context, is decided in [`crate::infra`].
pub mod infra {
    use super::{Template, When};

    /// `infrastructure/docker/docker-compose.yml`.
    pub const COMPOSE: Template = template!("infra/docker/docker-compose.yml.jinja" => "infrastructure/docker/docker-compose.yml", Always);
    /// `infrastructure/docker/docker-compose.test.yml`.
    pub const COMPOSE_TEST: Template = template!("infra/docker/docker-compose.test.yml.jinja" => "infrastructure/docker/docker-compose.test.yml", Always);
    /// The engines shared by both compose files (included, not rendered alone).
    pub const COMPOSE_ENGINES: Template = template!("infra/docker/engines.yml.jinja" => "", Always);
    /// The comment listing the services a deployable file leaves out (included, in YAML, HCL
    /// and TOML alike).
    pub const SKIPPED: Template = template!("infra/partials/skipped.yaml.jinja" => "", Always);
    /// One `Dockerfile` per service.
    pub const DOCKERFILE: Template = template!("infra/docker/Dockerfile.jinja" => "infrastructure/docker/services/{{ service.name }}/Dockerfile", Always);
    /// The PostgreSQL init script creating one database per service.
    pub const POSTGRES_INIT: Template = template!("infra/docker/postgres/init.sql.jinja" => "infrastructure/docker/postgres/init.sql", Always);
    /// The MySQL init script creating one database per service.
    pub const MYSQL_INIT: Template = template!("infra/docker/mysql/init.sql.jinja" => "infrastructure/docker/mysql/init.sql", Always);
    /// The local OpenTelemetry collector's configuration.
    pub const OTEL_COLLECTOR: Template = template!("infra/docker/otel-collector.yaml.jinja" => "infrastructure/docker/otel-collector.yaml", Always);

    /// `infrastructure/k8s/base/kustomization.yaml`.
    pub const K8S_KUSTOMIZATION: Template = template!("infra/k8s/base/kustomization.yaml.jinja" => "infrastructure/k8s/base/kustomization.yaml", Always);
    /// Kustomize configuration for Argo Rollouts' name references.
    pub const K8S_ROLLOUT_CONFIG: Template = template!("infra/k8s/base/kustomizeconfig-argo-rollouts.yaml.jinja" => "infrastructure/k8s/base/kustomizeconfig/argo-rollouts.yaml", Always);
    /// The Argo Rollouts analysis of `[deployment] promotion_criteria`.
    pub const K8S_ANALYSIS: Template = template!("infra/k8s/base/analysis-template.yaml.jinja" => "infrastructure/k8s/base/analysis-template.yaml", Always);
    /// A service's Deployment or Rollout.
    pub const K8S_WORKLOAD: Template = template!("infra/k8s/base/workload.yaml.jinja" => "infrastructure/k8s/base/{{ service.name }}/{{ workload_file }}", Always);
    /// A service's Service (also its canary or preview Service, with `suffix`).
    pub const K8S_SERVICE: Template = template!("infra/k8s/base/service.yaml.jinja" => "infrastructure/k8s/base/{{ service.name }}/service{{ suffix }}.yaml", Always);
    /// A service's HorizontalPodAutoscaler.
    pub const K8S_HPA: Template = template!("infra/k8s/base/hpa.yaml.jinja" => "infrastructure/k8s/base/{{ service.name }}/hpa.yaml", Always);
    /// A service's PodDisruptionBudget.
    pub const K8S_PDB: Template = template!("infra/k8s/base/pdb.yaml.jinja" => "infrastructure/k8s/base/{{ service.name }}/pdb.yaml", Always);
    /// A service's NetworkPolicy.
    pub const K8S_NETWORK_POLICY: Template = template!("infra/k8s/base/networkpolicy.yaml.jinja" => "infrastructure/k8s/base/{{ service.name }}/networkpolicy.yaml", Always);
    /// An overlay's kustomization.
    pub const K8S_OVERLAY: Template = template!("infra/k8s/overlays/kustomization.yaml.jinja" => "infrastructure/k8s/overlays/{{ overlay.name }}/kustomization.yaml", Always);
    /// An overlay's Namespace.
    pub const K8S_NAMESPACE: Template = template!("infra/k8s/overlays/namespace.yaml.jinja" => "infrastructure/k8s/overlays/{{ overlay.name }}/namespace.yaml", Always);

    /// `.github/workflows/ci.yml` of the generated workspace.
    pub const CI: Template =
        template!("infra/ci/ci.yml.jinja" => ".github/workflows/ci.yml", Always);
    /// `docs/architecture.md`.
    pub const ARCHITECTURE_DOC: Template =
        template!("infra/docs/architecture.md.jinja" => "docs/architecture.md", Always);
    /// The diagram as Mermaid.
    pub const MERMAID: Template = template!("infra/graph/mermaid.jinja" => "", Always);
    /// The diagram as Graphviz DOT.
    pub const DOT: Template = template!("infra/graph/dot.jinja" => "", Always);

    /// Every template of this module, for registration.
    pub const ALL: &[Template] = &[
        COMPOSE,
        COMPOSE_TEST,
        COMPOSE_ENGINES,
        SKIPPED,
        DOCKERFILE,
        POSTGRES_INIT,
        MYSQL_INIT,
        OTEL_COLLECTOR,
        K8S_KUSTOMIZATION,
        K8S_ROLLOUT_CONFIG,
        K8S_ANALYSIS,
        K8S_WORKLOAD,
        K8S_SERVICE,
        K8S_HPA,
        K8S_PDB,
        K8S_NETWORK_POLICY,
        K8S_OVERLAY,
        K8S_NAMESPACE,
        CI,
        ARCHITECTURE_DOC,
        MERMAID,
        DOT,
    ];
}

/// The cloud templates: Terraform roots and modules, Fly.io and Shuttle. Which of them apply is
/// decided in [`crate::infra::terraform`].
pub mod cloud {
    use super::{Template, When};

    /// The AWS root module, relative to the workspace root.
    pub const AWS: &[Template] = &[
        template!("infra/terraform/aws/versions.tf.jinja" => "infrastructure/terraform/aws/versions.tf", Always),
        template!("infra/terraform/aws/variables.tf.jinja" => "infrastructure/terraform/aws/variables.tf", Always),
        template!("infra/terraform/aws/main.tf.jinja" => "infrastructure/terraform/aws/main.tf", Always),
        template!("infra/terraform/aws/networking.tf.jinja" => "infrastructure/terraform/aws/networking.tf", Always),
        template!("infra/terraform/aws/database.tf.jinja" => "infrastructure/terraform/aws/database.tf", Always),
        template!("infra/terraform/aws/messaging.tf.jinja" => "infrastructure/terraform/aws/messaging.tf", Always),
        template!("infra/terraform/aws/observability.tf.jinja" => "infrastructure/terraform/aws/observability.tf", Always),
        template!("infra/terraform/aws/secrets.tf.jinja" => "infrastructure/terraform/aws/secrets.tf", Always),
        template!("infra/terraform/aws/waf.tf.jinja" => "infrastructure/terraform/aws/waf.tf", Always),
        template!("infra/terraform/aws/outputs.tf.jinja" => "infrastructure/terraform/aws/outputs.tf", Always),
    ];
    /// One Glue schema per event.
    pub const AWS_SCHEMA: Template = template!("infra/terraform/aws/schema.jinja" => "infrastructure/terraform/aws/schemas/{{ event }}.{{ ext }}", Always);
    /// One variables file per region.
    pub const AWS_REGION: Template = template!("infra/terraform/aws/region.tfvars.jinja" => "infrastructure/terraform/aws/regions/{{ region }}.tfvars", Always);
    /// The Google Cloud root module.
    pub const GCP: &[Template] = &[
        template!("infra/terraform/gcp/versions.tf.jinja" => "infrastructure/terraform/gcp/versions.tf", Always),
        template!("infra/terraform/gcp/variables.tf.jinja" => "infrastructure/terraform/gcp/variables.tf", Always),
        template!("infra/terraform/gcp/main.tf.jinja" => "infrastructure/terraform/gcp/main.tf", Always),
        template!("infra/terraform/gcp/networking.tf.jinja" => "infrastructure/terraform/gcp/networking.tf", Always),
        template!("infra/terraform/gcp/database.tf.jinja" => "infrastructure/terraform/gcp/database.tf", Always),
        template!("infra/terraform/gcp/messaging.tf.jinja" => "infrastructure/terraform/gcp/messaging.tf", Always),
        template!("infra/terraform/gcp/observability.tf.jinja" => "infrastructure/terraform/gcp/observability.tf", Always),
        template!("infra/terraform/gcp/secrets.tf.jinja" => "infrastructure/terraform/gcp/secrets.tf", Always),
    ];
    /// One variables file per region.
    pub const GCP_REGION: Template = template!("infra/terraform/gcp/region.tfvars.jinja" => "infrastructure/terraform/gcp/regions/{{ region }}.tfvars", Always);
    /// The reusable modules, `modules/<name>/{main,variables,outputs}.tf`.
    pub const MODULES: &[Template] = &[
        template!("infra/terraform/modules/lambda-service/main.tf.jinja" => "infrastructure/terraform/modules/lambda-service/main.tf", Always),
        template!("infra/terraform/modules/lambda-service/variables.tf.jinja" => "infrastructure/terraform/modules/lambda-service/variables.tf", Always),
        template!("infra/terraform/modules/lambda-service/outputs.tf.jinja" => "infrastructure/terraform/modules/lambda-service/outputs.tf", Always),
        template!("infra/terraform/modules/fargate-service/main.tf.jinja" => "infrastructure/terraform/modules/fargate-service/main.tf", Always),
        template!("infra/terraform/modules/fargate-service/variables.tf.jinja" => "infrastructure/terraform/modules/fargate-service/variables.tf", Always),
        template!("infra/terraform/modules/fargate-service/outputs.tf.jinja" => "infrastructure/terraform/modules/fargate-service/outputs.tf", Always),
        template!("infra/terraform/modules/cloud-run-service/main.tf.jinja" => "infrastructure/terraform/modules/cloud-run-service/main.tf", Always),
        template!("infra/terraform/modules/cloud-run-service/variables.tf.jinja" => "infrastructure/terraform/modules/cloud-run-service/variables.tf", Always),
        template!("infra/terraform/modules/cloud-run-service/outputs.tf.jinja" => "infrastructure/terraform/modules/cloud-run-service/outputs.tf", Always),
        template!("infra/terraform/modules/canary-deployment/main.tf.jinja" => "infrastructure/terraform/modules/canary-deployment/main.tf", Always),
        template!("infra/terraform/modules/canary-deployment/variables.tf.jinja" => "infrastructure/terraform/modules/canary-deployment/variables.tf", Always),
        template!("infra/terraform/modules/canary-deployment/outputs.tf.jinja" => "infrastructure/terraform/modules/canary-deployment/outputs.tf", Always),
        template!("infra/terraform/modules/dead-letter-queue/main.tf.jinja" => "infrastructure/terraform/modules/dead-letter-queue/main.tf", Always),
        template!("infra/terraform/modules/dead-letter-queue/variables.tf.jinja" => "infrastructure/terraform/modules/dead-letter-queue/variables.tf", Always),
        template!("infra/terraform/modules/dead-letter-queue/outputs.tf.jinja" => "infrastructure/terraform/modules/dead-letter-queue/outputs.tf", Always),
        template!("infra/terraform/modules/schema-registry/main.tf.jinja" => "infrastructure/terraform/modules/schema-registry/main.tf", Always),
        template!("infra/terraform/modules/schema-registry/variables.tf.jinja" => "infrastructure/terraform/modules/schema-registry/variables.tf", Always),
        template!("infra/terraform/modules/schema-registry/outputs.tf.jinja" => "infrastructure/terraform/modules/schema-registry/outputs.tf", Always),
        template!("infra/terraform/modules/secrets-manager/main.tf.jinja" => "infrastructure/terraform/modules/secrets-manager/main.tf", Always),
        template!("infra/terraform/modules/secrets-manager/variables.tf.jinja" => "infrastructure/terraform/modules/secrets-manager/variables.tf", Always),
        template!("infra/terraform/modules/secrets-manager/outputs.tf.jinja" => "infrastructure/terraform/modules/secrets-manager/outputs.tf", Always),
        template!("infra/terraform/modules/fly-service/versions.tf.jinja" => "infrastructure/terraform/modules/fly-service/versions.tf", Always),
        template!("infra/terraform/modules/fly-service/main.tf.jinja" => "infrastructure/terraform/modules/fly-service/main.tf", Always),
        template!("infra/terraform/modules/fly-service/variables.tf.jinja" => "infrastructure/terraform/modules/fly-service/variables.tf", Always),
        template!("infra/terraform/modules/fly-service/outputs.tf.jinja" => "infrastructure/terraform/modules/fly-service/outputs.tf", Always),
        template!("infra/terraform/modules/shuttle-service/versions.tf.jinja" => "infrastructure/terraform/modules/shuttle-service/versions.tf", Always),
        template!("infra/terraform/modules/shuttle-service/main.tf.jinja" => "infrastructure/terraform/modules/shuttle-service/main.tf", Always),
        template!("infra/terraform/modules/shuttle-service/variables.tf.jinja" => "infrastructure/terraform/modules/shuttle-service/variables.tf", Always),
        template!("infra/terraform/modules/shuttle-service/outputs.tf.jinja" => "infrastructure/terraform/modules/shuttle-service/outputs.tf", Always),
        template!("infra/terraform/modules/feature-flags/versions.tf.jinja" => "infrastructure/terraform/modules/feature-flags/versions.tf", Always),
        template!("infra/terraform/modules/feature-flags/main.tf.jinja" => "infrastructure/terraform/modules/feature-flags/main.tf", Always),
        template!("infra/terraform/modules/feature-flags/variables.tf.jinja" => "infrastructure/terraform/modules/feature-flags/variables.tf", Always),
        template!("infra/terraform/modules/feature-flags/outputs.tf.jinja" => "infrastructure/terraform/modules/feature-flags/outputs.tf", Always),
    ];
    /// The Fly.io root module (`[cloud.fly]`).
    pub const FLY_ROOT: &[Template] = &[
        template!("infra/terraform/fly/versions.tf.jinja" => "infrastructure/terraform/fly/versions.tf", Always),
        template!("infra/terraform/fly/variables.tf.jinja" => "infrastructure/terraform/fly/variables.tf", Always),
        template!("infra/terraform/fly/main.tf.jinja" => "infrastructure/terraform/fly/main.tf", Always),
        template!("infra/terraform/fly/outputs.tf.jinja" => "infrastructure/terraform/fly/outputs.tf", Always),
    ];
    /// The Shuttle root module (`[cloud.shuttle]`).
    pub const SHUTTLE_ROOT: &[Template] = &[
        template!("infra/terraform/shuttle/versions.tf.jinja" => "infrastructure/terraform/shuttle/versions.tf", Always),
        template!("infra/terraform/shuttle/variables.tf.jinja" => "infrastructure/terraform/shuttle/variables.tf", Always),
        template!("infra/terraform/shuttle/main.tf.jinja" => "infrastructure/terraform/shuttle/main.tf", Always),
    ];
    /// The feature flag root module (`[feature_flags]` with a flag service), applied once.
    pub const FLAGS_ROOT: &[Template] = &[
        template!("infra/terraform/feature-flags/versions.tf.jinja" => "infrastructure/terraform/feature-flags/versions.tf", Always),
        template!("infra/terraform/feature-flags/variables.tf.jinja" => "infrastructure/terraform/feature-flags/variables.tf", Always),
        template!("infra/terraform/feature-flags/main.tf.jinja" => "infrastructure/terraform/feature-flags/main.tf", Always),
        template!("infra/terraform/feature-flags/outputs.tf.jinja" => "infrastructure/terraform/feature-flags/outputs.tf", Always),
    ];
    /// The feature flag wiring of the AWS root.
    pub const AWS_FLAGS: Template = template!("infra/terraform/aws/feature-flags.tf.jinja" => "infrastructure/terraform/aws/feature-flags.tf", Always);
    /// The feature flag wiring of the Google Cloud root.
    pub const GCP_FLAGS: Template = template!("infra/terraform/gcp/feature-flags.tf.jinja" => "infrastructure/terraform/gcp/feature-flags.tf", Always);
    /// `fly.toml` of one service.
    pub const FLY: Template = template!("infra/fly/fly.toml.jinja" => "infrastructure/fly/{{ service.name }}/fly.toml", Always);
    /// The Shuttle project file, at the workspace root where Shuttle reads it.
    pub const SHUTTLE: Template =
        template!("infra/shuttle/Shuttle.toml.jinja" => "Shuttle.toml", Always);

    /// The Pulumi YAML program on AWS.
    pub const PULUMI_AWS: Template = template!("infra/pulumi/aws/Pulumi.yaml.jinja" => "infrastructure/pulumi/aws/Pulumi.yaml", Always);
    /// The Pulumi YAML program on Google Cloud.
    pub const PULUMI_GCP: Template = template!("infra/pulumi/gcp/Pulumi.yaml.jinja" => "infrastructure/pulumi/gcp/Pulumi.yaml", Always);
    /// The Pulumi YAML program joining the per-cloud stacks (more than one cloud).
    pub const PULUMI_MULTI: Template = template!("infra/pulumi/multi-cloud/Pulumi.yaml.jinja" => "infrastructure/pulumi/multi-cloud/Pulumi.yaml", Always);
    /// One Glue schema per event, read by the AWS Pulumi program.
    pub const PULUMI_AWS_SCHEMA: Template = template!("infra/terraform/aws/schema.jinja" => "infrastructure/pulumi/aws/schemas/{{ event }}.{{ ext }}", Always);
    /// The config of one stack of a Pulumi program.
    pub const PULUMI_STACK: Template = template!("infra/pulumi/stack.yaml.jinja" => "infrastructure/pulumi/{{ dir }}/Pulumi.{{ stack.name }}.yaml", Always);
    /// Parts the Pulumi programs include; never rendered alone.
    pub const PULUMI_PARTS: &[Template] = &[
        template!("infra/pulumi/aws/runtime.yaml.jinja" => "", Always),
        template!("infra/pulumi/aws/data.yaml.jinja" => "", Always),
        template!("infra/pulumi/gcp/runtime.yaml.jinja" => "", Always),
        template!("infra/pulumi/gcp/data.yaml.jinja" => "", Always),
    ];

    /// Every template of this module that is not in a list above, for registration.
    pub const SINGLE: &[Template] = &[
        AWS_SCHEMA,
        AWS_REGION,
        GCP_REGION,
        FLY,
        SHUTTLE,
        AWS_FLAGS,
        GCP_FLAGS,
        PULUMI_AWS,
        PULUMI_GCP,
        PULUMI_MULTI,
        PULUMI_STACK,
        PULUMI_PARTS[0],
        PULUMI_PARTS[1],
        PULUMI_PARTS[2],
        PULUMI_PARTS[3],
    ];
}

/// Renders templates: strict about undefined values, block tags take their line with them,
/// trailing newlines kept, and every printed value escaped for the language of the template's
/// file ([`crate::escape`]) unless it is already code of that language. There is no `safe`
/// filter: only this crate's [`crate::escape::Code`] values and the quoting filters are printed
/// as they are.
pub struct Renderer {
    env: Environment<'static>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer").finish_non_exhaustive()
    }
}

impl Renderer {
    /// A renderer holding every embedded template.
    pub fn new() -> Result<Self, CliError> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .map_err(|source| CliError::Template {
                template: "(syntax)".into(),
                source,
            })?;
        env.set_syntax(syntax);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| match Language::of_template(name) {
            Some(language) => AutoEscape::Custom(language.name().into()),
            // Output paths: made of names the file checks, and checked again when written.
            None => AutoEscape::None,
        });
        env.set_formatter(escape_formatter);
        env.remove_filter("safe");
        // `{{ env.PORT }}`: the names of the environment variables of a service, from the one
        // contract (`allframe-env`); a name it lacks is an error at render time.
        env.add_global(
            "env",
            Value::from(
                allframe_env::ALL
                    .iter()
                    .chain(allframe_env::FOR_SERVICE_CODE)
                    .map(|var| (var.name, var.name))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            ),
        );
        env.add_filter("toml_str", |v: &str| Value::from_safe_string(toml_str(v)));
        env.add_filter("yaml", |v: Value| Value::from_safe_string(yaml_str(v)));
        env.add_filter("hcl", |v: Value| Value::from_safe_string(hcl_str(v)));
        env.add_filter("mermaid_label", |v: &str| {
            Value::from_safe_string(crate::graph::mermaid_label(v))
        });
        env.add_filter("dot_str", |v: &str| {
            Value::from_safe_string(crate::graph::dot_str(v))
        });
        let scaffold = crate::scaffold::Scaffold::get()?;
        for template in scaffold
            .all()
            .chain(infra::ALL)
            .chain(cloud::AWS)
            .chain(cloud::GCP)
            .chain(cloud::MODULES)
            .chain(cloud::FLY_ROOT)
            .chain(cloud::SHUTTLE_ROOT)
            .chain(cloud::FLAGS_ROOT)
            .chain(cloud::SINGLE)
        {
            if Language::of_template(template.name).is_none() {
                return Err(CliError::Template {
                    template: template.name.into(),
                    source: Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        "no output language is known for this template, so its values could not be escaped",
                    ),
                });
            }
            env.add_template(template.name, template.source)
                .map_err(|source| CliError::Template {
                    template: template.name.into(),
                    source,
                })?;
        }
        Ok(Self { env })
    }

    /// Renders `template`'s text and its output path with `context`.
    pub fn render(
        &self,
        template: &Template,
        context: &impl Serialize,
    ) -> Result<(String, String), CliError> {
        let error = |source| CliError::Template {
            template: template.name.into(),
            source,
        };
        let context = Value::from(Serde(context));
        let text = self
            .env
            .get_template(template.name)
            .and_then(|t| t.render(context.clone()))
            .map_err(error)?;
        let path = self
            .env
            .render_str(template.output, context)
            .map_err(error)?;
        Ok((path, text))
    }
}

/// Prints `value` into a template's output: as it is when it is code already (safe), else
/// escaped for the template's language.
fn escape_formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    let language = match state.auto_escape() {
        AutoEscape::Custom(name) => Language::from_name(name),
        _ => None,
    };
    let plain = value.is_safe()
        || language.is_none()
        || matches!(
            value.kind(),
            minijinja::value::ValueKind::Number
                | minijinja::value::ValueKind::Bool
                | minijinja::value::ValueKind::None
                | minijinja::value::ValueKind::Undefined
        );
    let text = match value.as_str() {
        Some(text) => std::borrow::Cow::Borrowed(text),
        None => std::borrow::Cow::Owned(value.to_string()),
    };
    let escaped = match language {
        Some(language) if !plain => language.escape(&text),
        _ => text,
    };
    out.write_str(&escaped).map_err(Error::from)
}

/// The `yaml` filter: a scalar as a YAML double-quoted string on one line, so no value can
/// change the document's structure.
fn yaml_str(value: Value) -> String {
    quoted(Language::Yaml, &value)
}

/// The `hcl` filter: a string as an HCL quoted string with template sequences (`${`, `%{`)
/// escaped, so a value is never interpolated by Terraform.
fn hcl_str(value: Value) -> String {
    quoted(Language::Hcl, &value)
}

/// `value` (as text) escaped for `language` between double quotes.
fn quoted(language: Language, value: &Value) -> String {
    let text = match value.as_str() {
        Some(text) => std::borrow::Cow::Borrowed(text),
        None => std::borrow::Cow::Owned(value.to_string()),
    };
    format!("\"{}\"", language.escape(&text))
}

/// The `toml_str` filter: a string as a TOML basic string on one line, quoted and escaped.
fn toml_str(value: &str) -> String {
    format!("\"{}\"", Language::Toml.escape(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_hcl_strings_cannot_break_out_of_their_quotes() {
        let tricky = "a\": b\n- c ${X} %{if}";
        let yaml = yaml_str(Value::from(tricky));
        let parsed: serde_json::Value = serde_json::from_str(&yaml).expect("a JSON string");
        assert_eq!(parsed.as_str(), Some(tricky));
        assert_eq!(yaml_str(Value::from(8080)), "\"8080\"");
        let hcl = hcl_str(Value::from(tricky));
        assert_eq!(hcl, r#""a\": b\n- c $${X} %%{if}""#);
    }

    #[test]
    fn toml_strings_are_quoted_and_escaped() {
        let rendered = toml_str(r#"C:\a "b""#);
        let parsed: toml::Table = toml::from_str(&format!("v = {rendered}")).expect("valid TOML");
        assert_eq!(parsed["v"].as_str(), Some(r#"C:\a "b""#));
    }
}
