//! The cloud part of the infrastructure: Terraform roots for AWS and Google Cloud with their
//! reusable modules — only for the clouds present in `[cloud]` — and, through [`super::paas`]
//! and [`super::flags`], Fly.io, Shuttle and the feature flag service.
//!
//! Values the file writes as `${VAR}` become Terraform input variables (`TF_VAR_…`), never
//! literal values; connection URLs and credentials live in the cloud's secret store, whose
//! values Terraform never sets. Terraform formatting (`terraform fmt`) aligns the `=` of
//! consecutive attributes, so this module computes the padding of generated map keys.

use allframe_config::model::{AwsRuntime, EventFormat, GcpRuntime};
use allframe_config::{Architecture, EnvString, Segment};
use allframe_env as vars;
use minijinja::context;
use minijinja::value::Value;
use serde::Serialize;

use super::model::{InfraContext, InfraService};
use super::v;
use crate::error::CliError;
use crate::escape::{Code, Language};
use crate::templates::{Renderer, cloud as t};
use crate::workspace::PlannedFile;

/// Environment variables holding connection URLs: secrets in the cloud, never plain values.
pub const SECRET_ENV: &[&str] = &[
    vars::DATABASE_URL.name,
    vars::EVENT_BUS_URL.name,
    vars::REDIS_URL.name,
    vars::MEMCACHED_URL.name,
    vars::HAZELCAST_ADDRESS.name,
    vars::SCHEMA_REGISTRY_URL.name,
];

/// Environment variables that only make sense in the local compose stack.
const LOCAL_ONLY_ENV: &[&str] = &[
    vars::ALLFRAME_DATA_DIR.name,
    vars::DYNAMODB_ENDPOINT.name,
    vars::FIRESTORE_EMULATOR_HOST.name,
    vars::OTEL_EXPORTER_OTLP_ENDPOINT.name,
];

/// Words in a variable's name that mark it as sensitive in Terraform.
pub(super) const SENSITIVE_WORDS: &[&str] = &["SECRET", "PASSWORD", "TOKEN", "KEY", "CREDENTIAL"];

/// One entry of a service's environment in Terraform: a literal or a variable.
#[derive(Debug, Clone, Serialize)]
pub struct TfEnv {
    /// The environment variable.
    pub name: String,
    /// Spaces after the name so the `=` align as `terraform fmt` does.
    pub pad: String,
    /// A literal value.
    pub literal: Option<String>,
    /// The Terraform variable holding the value.
    pub variable: Option<String>,
    /// An expression of the cloud's resources (an endpoint Terraform creates).
    pub expression: Option<Code>,
}

/// A service as the Terraform templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct TfService {
    /// The service.
    #[serde(flatten)]
    pub service: InfraService,
    /// Its non-secret environment.
    pub env: Vec<TfEnv>,
    /// The connection variables it reads from its secret.
    pub secret_keys: Vec<&'static str>,
    /// Padding of each secret key in a map literal.
    pub secret_pads: Vec<String>,
    /// Padding of its quoted name in a map literal of all services.
    pub pad: String,
    /// Its load balancer rule priority (1-based, unique).
    pub priority: usize,
}

/// A padded map entry (`key = value` aligned as `terraform fmt` does).
#[derive(Debug, Clone, Serialize)]
pub struct Padded {
    /// The key.
    pub key: String,
    /// Spaces after the key.
    pub pad: String,
    /// The service it belongs to.
    pub service: String,
}

/// A schema file of the Glue registry.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaFile {
    /// The event.
    pub name: String,
    /// Spaces after the name.
    pub pad: String,
    /// The file name under `schemas/`.
    pub file: String,
}

/// Spaces that bring `key` to `width` characters.
pub(super) fn pad(key: &str, width: usize) -> String {
    " ".repeat(width.saturating_sub(key.chars().count()))
}

/// `value` as an HCL expression: `var.name` for a lone `${NAME}`, else a quoted template
/// with `${var.name}` for each variable and literal text escaped.
pub fn hcl_expr(value: &EnvString) -> Code {
    if let [Segment::Var { name, .. }] = value.segments() {
        return Code::new(format!("var.{}", name.to_lowercase()));
    }
    let mut out = String::from("\"");
    for segment in value.segments() {
        match segment {
            Segment::Literal(text) => {
                out.push_str(&Language::Hcl.escape(text));
            }
            Segment::Var { name, .. } => {
                // Literal `$`s right before `${` would read as the escape `$${`: write them as
                // an interpolation of the string of `$`s.
                let dollars = out.len() - out.trim_end_matches('$').len();
                if dollars > 0 {
                    out.truncate(out.len() - dollars);
                    out.push_str(&format!("${{\"{}\"}}", "$".repeat(dollars)));
                }
                out.push_str(&format!("${{var.{}}}", name.to_lowercase()));
            }
        }
    }
    out.push('"');
    Code::new(out)
}

/// `text` as an HCL quoted string Terraform reads literally.
pub fn hcl_literal(text: &str) -> Code {
    Code::new(format!("\"{}\"", Language::Hcl.escape(text)))
}

/// The Fly.io region nearest to a region of `[cloud] regions` (AWS or Google Cloud names).
pub fn fly_region(region: &str) -> Option<&'static str> {
    const NEAREST: &[(&str, &str)] = &[
        ("us-east-1", "iad"),
        ("us-east-2", "ord"),
        ("us-west-1", "sjc"),
        ("us-west-2", "sea"),
        ("ca-central-1", "yyz"),
        ("eu-west-1", "lhr"),
        ("eu-west-2", "lhr"),
        ("eu-west-3", "cdg"),
        ("eu-central-1", "fra"),
        ("eu-north-1", "arn"),
        ("ap-southeast-1", "sin"),
        ("ap-southeast-2", "syd"),
        ("ap-northeast-1", "nrt"),
        ("ap-south-1", "bom"),
        ("sa-east-1", "gru"),
        ("us-east4", "iad"),
        ("us-central1", "ord"),
        ("us-west1", "sea"),
        ("europe-west1", "ams"),
        ("europe-west2", "lhr"),
        ("europe-west3", "fra"),
        ("asia-southeast1", "sin"),
        ("asia-northeast1", "nrt"),
    ];
    NEAREST
        .iter()
        .find(|(name, _)| *name == region)
        .map(|(_, fly)| *fly)
}

/// The Google Cloud region for a region of `[cloud] regions`: AWS names map to the nearest
/// Google Cloud region; other names are taken as Google Cloud names.
pub fn gcp_region(region: &str) -> String {
    const NEAREST: &[(&str, &str)] = &[
        ("us-east-1", "us-east4"),
        ("us-east-2", "us-east5"),
        ("us-west-1", "us-west2"),
        ("us-west-2", "us-west1"),
        ("ca-central-1", "northamerica-northeast1"),
        ("eu-west-1", "europe-west1"),
        ("eu-west-2", "europe-west2"),
        ("eu-west-3", "europe-west9"),
        ("eu-central-1", "europe-west3"),
        ("eu-north-1", "europe-north1"),
        ("ap-southeast-1", "asia-southeast1"),
        ("ap-southeast-2", "australia-southeast1"),
        ("ap-northeast-1", "asia-northeast1"),
        ("ap-south-1", "asia-south1"),
        ("sa-east-1", "southamerica-east1"),
    ];
    NEAREST
        .iter()
        .find(|(aws, _)| *aws == region)
        .map_or_else(|| region.to_owned(), |(_, gcp)| (*gcp).to_owned())
}

/// CloudWatch's accepted retention periods, in days.
const RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// The shortest CloudWatch retention keeping logs at least `days` (30 when unset).
pub fn log_retention(days: Option<u32>) -> u32 {
    let wanted = days.unwrap_or(30);
    RETENTION_DAYS
        .iter()
        .copied()
        .find(|d| *d >= wanted)
        .unwrap_or(3653)
}

/// The per-client rate the WAF allows: the lowest `[resilience] rate_limit` of the services
/// clients reach (of all services when none is public), 1000 requests per second by default.
pub(super) fn public_rps(services: &[TfService]) -> u32 {
    services
        .iter()
        .filter(|s| s.service.public)
        .map(|s| s.service.rate_limit_rps)
        .min()
        .or_else(|| services.iter().map(|s| s.service.rate_limit_rps).min())
        .unwrap_or(1000)
}

pub(super) fn tf_services(infra: &InfraContext) -> Vec<TfService> {
    let name_width = infra
        .services
        .iter()
        .map(|s| s.name.len() + 2)
        .max()
        .unwrap_or(0);
    infra
        .services
        .iter()
        .enumerate()
        .map(|(index, service)| {
            let mut entries: Vec<(String, Option<String>, Option<String>)> = service
                .compose_env
                .iter()
                .filter(|e| {
                    !e.from_shell
                        && !SECRET_ENV.contains(&e.name.as_str())
                        && !LOCAL_ONLY_ENV.contains(&e.name.as_str())
                        && !e.name.ends_with("_URL")
                })
                .map(|e| (e.name.clone(), Some(e.value.clone()), None))
                .collect();
            for variable in infra.variables.iter().filter(|v| {
                v.keys.iter().any(|k| {
                    !k.starts_with("services[") || service.deferred.iter().any(|d| d.key == *k)
                })
            }) {
                if !variable.keys.iter().any(|k| k.starts_with("cloud.")) {
                    entries.push((variable.env.clone(), None, Some(variable.name.clone())));
                }
            }
            let width = entries.iter().map(|e| e.0.len()).max().unwrap_or(0);
            let env = entries
                .into_iter()
                .map(|(name, literal, variable)| TfEnv {
                    pad: pad(&name, width),
                    name,
                    literal,
                    variable,
                    expression: None,
                })
                .collect();
            let mut secret_keys: Vec<&'static str> = SECRET_ENV
                .iter()
                .copied()
                .filter(|key| service.compose_env.iter().any(|e| e.name == *key))
                .collect();
            if service.database_name.is_some() && !secret_keys.contains(&vars::DATABASE_URL.name) {
                secret_keys.insert(0, vars::DATABASE_URL.name);
            }
            let secret_width = secret_keys.iter().map(|k| k.len()).max().unwrap_or(0);
            TfService {
                secret_pads: secret_keys.iter().map(|k| pad(k, secret_width)).collect(),
                secret_keys,
                env,
                pad: pad(&format!("\"{}\"", service.name), name_width),
                priority: index + 1,
                service: service.clone(),
            }
        })
        .collect()
}

/// `services` with the endpoints a cloud's Terraform creates wired in as plain environment
/// (they are not secrets): `wiring` gives, per service, variables and HCL expressions; those
/// variables leave the service's secret.
fn wire(
    services: &[TfService],
    wiring: impl Fn(&TfService) -> Vec<(&'static str, Code)>,
) -> Vec<TfService> {
    services
        .iter()
        .map(|service| {
            let mut service = service.clone();
            for (name, expression) in wiring(&service) {
                service.secret_keys.retain(|k| *k != name);
                service.env.push(TfEnv {
                    name: name.to_owned(),
                    pad: String::new(),
                    literal: None,
                    variable: None,
                    expression: Some(expression),
                });
            }
            let width = service.env.iter().map(|e| e.name.len()).max().unwrap_or(0);
            for entry in &mut service.env {
                entry.pad = pad(&entry.name, width);
            }
            let width = service
                .secret_keys
                .iter()
                .map(|k| k.len())
                .max()
                .unwrap_or(0);
            service.secret_pads = service.secret_keys.iter().map(|k| pad(k, width)).collect();
            service
        })
        .collect()
}

/// Plans the files of every cloud present in `[cloud]`, rendering with `base` (the context of
/// every infrastructure template) extended with the cloud's own values.
pub fn plan(
    infra: &InfraContext,
    architecture: &Architecture,
    renderer: &Renderer,
    base: &Value,
) -> Result<Vec<PlannedFile>, CliError> {
    let file = architecture.globals();
    let cloud = &file.cloud;
    let mut files = Vec::new();
    let mut render = |template, context: Value| -> Result<(), CliError> {
        let (path, text) = renderer.render(template, &context)?;
        files.push(PlannedFile::new(path, text));
        Ok(())
    };
    let services = tf_services(infra);
    let variables: Vec<Value> = infra
        .variables
        .iter()
        .map(|var| {
            let sensitive = SENSITIVE_WORDS.iter().any(|w| var.env.contains(w));
            context! { sensitive, ..v(var) }
        })
        .collect();
    let db_services: Vec<&TfService> = services
        .iter()
        .filter(|s| s.service.database_name.is_some())
        .collect();
    let sampling = file.observability.sampling.rate;
    let public_rps = public_rps(&services);
    let flags = super::flags::context(architecture);
    let common = context! {
        tf_services => v(&services),
        variables,
        flags => v(&flags),
        ..base.clone()
    };
    let regions = &cloud.regions;
    let mut modules: Vec<&'static str> = Vec::new();

    if let Some(aws) = &cloud.aws {
        let runtime = aws.runtime;
        let alb = matches!(runtime, AwsRuntime::Fargate | AwsRuntime::Ecs);
        let events_width = infra.events.iter().map(String::len).max().unwrap_or(0);
        let ext = match file.settings.events.format {
            EventFormat::Avro => "avsc",
            EventFormat::Protobuf => "proto",
            EventFormat::JsonSchema => "json",
        };
        let schema_files: Vec<SchemaFile> = infra
            .events
            .iter()
            .map(|e| SchemaFile {
                pad: pad(e, events_width),
                file: format!("{e}.{ext}"),
                name: e.clone(),
            })
            .collect();
        let glue = infra.schema_registry == "glue" && !schema_files.is_empty();
        let bus = infra.event_bus;
        let aws_services = wire(&services, |s| {
            let s = &s.service;
            let mut out = Vec::new();
            if s.bus && bus == Some("kafka") {
                out.push((
                    vars::EVENT_BUS_URL.name,
                    Code::new(
                        "\"kafka://${aws_msk_serverless_cluster.main.bootstrap_brokers_sasl_iam}\"",
                    ),
                ));
            }
            if s.bus && bus == Some("sqs") {
                out.push((
                    vars::EVENT_BUS_NAME.name,
                    Code::new("aws_cloudwatch_event_bus.main.name"),
                ));
                if !s.consumes.is_empty() {
                    out.push((
                        vars::EVENT_QUEUE_URL.name,
                        Code::new(format!("module.{}_queue.queue_url", s.snake)),
                    ));
                }
            }
            if s.redis {
                out.push((vars::REDIS_URL.name, Code::new("\"rediss://${aws_elasticache_replication_group.main.primary_endpoint_address}:6379\"")));
            }
            if let Some(flags) = &flags {
                out.extend(super::flags::service_env(flags, "aws"));
            }
            out
        });
        let aws_context = context! {
            tf_services => v(&aws_services),
            aws_runtime => runtime.as_str(),
            alb,
            aws_account => aws.account_id.as_ref().map(|a| if a.is_deferred() { hcl_expr(a) } else { hcl_literal(&a.literal().unwrap_or_default()) }),
            aws_db_services => v(db_services.iter().filter(|s| matches!(s.service.database, "postgres" | "mysql")).collect::<Vec<_>>()),
            glue_format => match file.settings.events.format {
                EventFormat::Avro => "AVRO",
                EventFormat::Protobuf => "PROTOBUF",
                EventFormat::JsonSchema => "JSON",
            },
            schema_files => v(&schema_files),
            log_retention_days => log_retention(file.compliance.data_retention_days),
            sampling_rate => sampling,
            waf_rps => public_rps,
            waf_limit => (u64::from(public_rps) * 60).max(10),
            ..common.clone()
        };
        for template in t::AWS {
            render(template, aws_context.clone())?;
        }
        if glue {
            for event in &infra.events {
                render(
                    &t::AWS_SCHEMA,
                    context! { event, ext, ..aws_context.clone() },
                )?;
            }
            modules.push("schema-registry");
        }
        for region in regions {
            render(&t::AWS_REGION, context! { region, ..aws_context.clone() })?;
        }
        if flags.is_some() {
            render(&t::AWS_FLAGS, aws_context.clone())?;
        }
        modules.push(match runtime {
            AwsRuntime::Lambda => "lambda-service",
            AwsRuntime::Fargate | AwsRuntime::Ecs => "fargate-service",
            AwsRuntime::Eks => "",
        });
        if runtime != AwsRuntime::Eks && super::model::progressive(file.deployment.strategy) {
            modules.push("canary-deployment");
        }
        if infra.event_bus == Some("sqs") && services.iter().any(|s| !s.service.consumes.is_empty())
        {
            modules.push("dead-letter-queue");
        }
        modules.push("secrets-manager");
    }

    if let Some(gcp) = &cloud.gcp {
        let runtime = gcp.runtime;
        let project = gcp.project_id.as_ref();
        let deferred = project.is_some_and(EnvString::is_deferred);
        let mut gcp_services = wire(&services, |s| {
            let mut out = Vec::new();
            if s.service.redis {
                out.push((vars::REDIS_URL.name, Code::new("\"rediss://${google_redis_instance.main.host}:${google_redis_instance.main.port}\"")));
            }
            if let Some(flags) = &flags {
                out.extend(super::flags::service_env(flags, "gcp"));
            }
            out
        });
        if flags.is_some() {
            // FEATURE_FLAGS_SDK_KEY joins each service's secret environment: align with it.
            for service in &mut gcp_services {
                service.secret_pads = service
                    .secret_keys
                    .iter()
                    .map(|k| pad(k, super::flags::SDK_KEY.len()))
                    .collect();
            }
        }
        let entries: Vec<(String, String)> = gcp_services
            .iter()
            .flat_map(|s| {
                s.secret_keys
                    .iter()
                    .map(|k| (format!("{}/{k}", s.service.name), s.service.name.clone()))
            })
            .collect();
        let width = entries.iter().map(|(k, _)| k.len() + 2).max().unwrap_or(0);
        let gcp_secret_entries: Vec<Padded> = entries
            .into_iter()
            .map(|(key, service)| Padded {
                pad: pad(&format!("\"{key}\""), width),
                key,
                service,
            })
            .collect();
        let gcp_context = context! {
            tf_services => v(&gcp_services),
            gcp_runtime => runtime.as_str(),
            gcp_project => if deferred { project.map(hcl_expr) } else { Some(Code::new("var.gcp_project_id")) },
            gcp_project_variable => deferred,
            gcp_project_literal => project.and_then(EnvString::literal),
            gcp_db_services => v(db_services.iter().filter(|s| matches!(s.service.database, "postgres" | "mysql")).collect::<Vec<_>>()),
            gcp_secret_entries => v(gcp_secret_entries),
            ..common.clone()
        };
        for template in t::GCP {
            render(template, gcp_context.clone())?;
        }
        for region in regions {
            render(
                &t::GCP_REGION,
                context! { region => gcp_region(region), ..gcp_context.clone() },
            )?;
        }
        if flags.is_some() {
            render(&t::GCP_FLAGS, gcp_context.clone())?;
        }
        if runtime != GcpRuntime::Gke {
            modules.push("cloud-run-service");
        }
    }

    // Fly.io and Shuttle, the feature flag service.
    modules.extend(super::paas::plan(
        infra,
        architecture,
        &services,
        flags.as_ref(),
        renderer,
        &common,
        &mut files,
    )?);
    if flags.is_some() {
        super::flags::plan(architecture, renderer, &common, &mut files)?;
        modules.push("feature-flags");
        if cloud.aws.is_some() {
            modules.push("secrets-manager");
        }
    }

    modules.retain(|m| !m.is_empty());
    modules.sort_unstable();
    modules.dedup();
    for module in modules {
        for template in t::MODULES
            .iter()
            .filter(|tpl| tpl.name.contains(&format!("/{module}/")))
        {
            let (path, text) = renderer.render(template, &common)?;
            files.push(PlannedFile::new(path, text));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferred_values_become_variable_references_and_literals_are_escaped() {
        let lone = EnvString::parse("${AWS_ACCOUNT_ID}").expect("valid");
        assert_eq!(hcl_expr(&lone).as_str(), "var.aws_account_id");
        let mixed = EnvString::parse("https://${AUTH_DOMAIN:-auth.local}/\"x\"$${").expect("valid");
        assert_eq!(
            hcl_expr(&mixed).as_str(),
            r#""https://${var.auth_domain}/\"x\"$${""#
        );
        let dollar = EnvString::parse("cost $$${PRICE}\u{2028}").expect("valid");
        assert_eq!(
            hcl_expr(&dollar).as_str(),
            r#""cost ${"$"}${var.price}\u2028""#
        );
        let dollars = EnvString::parse("x$$$$${ACCOUNT}").expect("valid");
        assert_eq!(hcl_expr(&dollars).as_str(), r#""x${"$$"}${var.account}""#);
    }

    #[test]
    fn retention_rounds_up_to_a_period_cloudwatch_accepts() {
        assert_eq!(log_retention(None), 30);
        assert_eq!(log_retention(Some(365)), 365);
        assert_eq!(log_retention(Some(366)), 400);
        assert_eq!(log_retention(Some(100_000)), 3653);
    }

    #[test]
    fn regions_map_between_clouds() {
        assert_eq!(gcp_region("eu-west-1"), "europe-west1");
        assert_eq!(gcp_region("europe-west4"), "europe-west4");
        assert_eq!(fly_region("us-east-1"), Some("iad"));
        assert_eq!(fly_region("mars-north-1"), None);
    }
}
