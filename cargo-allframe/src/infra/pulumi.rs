//! Pulumi YAML programs beside the Terraform: `infrastructure/pulumi/aws` and
//! `infrastructure/pulumi/gcp` for the clouds present in `[cloud]`, from the same model and
//! covering the same resources as the Terraform roots, and `infrastructure/pulumi/multi-cloud`
//! when both are present: a program of stack references exporting the endpoints of both.
//!
//! Each program has one stack per environment of the Kubernetes overlays (`dev`, `staging`,
//! `production`, in the first region of `[cloud] regions`) and a `production-<region>` stack
//! for every other region; `Pulumi.<stack>.yaml` holds their non-secret config. Values the file
//! writes as `${VAR}` become config keys of the program (`secret: true` where the Terraform
//! marks the variable sensitive), never literal values. Pulumi YAML has no loops, so the
//! templates unroll what the Terraform writes with `for_each` or `count`.

use allframe_config::model::{AwsRuntime, EventFormat, GcpRuntime};
use allframe_config::{Architecture, EnvString, Segment};
use allframe_env as vars;
use minijinja::context;
use minijinja::value::Value;
use serde::Serialize;

use super::model::{InfraContext, InfraService};
use super::terraform::{
    SENSITIVE_WORDS, TfService, gcp_region, log_retention, public_rps, tf_services,
};
use super::{OVERLAYS, v};
use crate::error::CliError;
use crate::escape::{Code, Language};
use crate::templates::{Renderer, cloud as t};
use crate::workspace::PlannedFile;

/// One entry of a service's environment: a YAML scalar, literal or interpolated.
#[derive(Debug, Clone, Serialize)]
pub struct PulumiEnv {
    /// The environment variable.
    pub name: String,
    /// Its value as a YAML double-quoted scalar.
    pub value: Code,
}

/// A service as the Pulumi templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct PulumiService {
    /// The service.
    #[serde(flatten)]
    pub service: InfraService,
    /// Its non-secret environment.
    pub env: Vec<PulumiEnv>,
    /// The connection variables it reads from its secret.
    pub secret_keys: Vec<&'static str>,
    /// Each secret key as part of a resource name (`database-url`).
    pub secret_slugs: Vec<String>,
    /// Its load balancer rule priority (1-based, unique).
    pub priority: usize,
    /// Its Google Cloud service account id (at most 30 characters).
    pub account_id: String,
}

/// A config key of a program standing for a `${VAR}` of the file.
#[derive(Debug, Clone, Serialize)]
pub struct PulumiConfig {
    /// The key (the Terraform variable's name).
    pub name: String,
    /// The environment variable of architecture.toml.
    pub env: Option<String>,
    /// What it is.
    pub description: String,
    /// Its default as a YAML scalar, from `${VAR:-default}`.
    pub default: Option<Code>,
    /// Whether Pulumi keeps it encrypted.
    pub secret: bool,
    /// The keys of architecture.toml that use it.
    pub keys: Vec<String>,
}

/// The config keys of the program on `cloud` (`aws`, `gcp`): those of another cloud's section
/// only (`[cloud.gcp] project_id` on AWS) are left out, as Pulumi requires every key without
/// a default to be set.
fn for_cloud(config: &[PulumiConfig], cloud: &str) -> Vec<PulumiConfig> {
    let own = format!("cloud.{cloud}.");
    config
        .iter()
        .filter(|c| {
            c.keys
                .iter()
                .any(|k| !k.starts_with("cloud.") || k.starts_with(&own))
        })
        .cloned()
        .collect()
}

/// A `key: value` of a stack's config, the value a YAML scalar.
#[derive(Debug, Clone, Serialize)]
pub struct StackEntry {
    /// The key, without the project's namespace.
    pub key: &'static str,
    /// The value, a YAML scalar.
    pub value: Code,
}

/// One stack of a program.
#[derive(Debug, Clone, Serialize)]
pub struct Stack {
    /// `dev`, `staging`, `production` or `production-<region>`.
    pub name: String,
    /// The environment of the Kubernetes overlay it matches.
    pub environment: &'static str,
    /// The cloud's region.
    pub region: Option<String>,
    /// Its config.
    pub config: Vec<StackEntry>,
}

/// A per-cloud program as the multi-cloud program references it.
#[derive(Debug, Clone, Serialize)]
pub struct CloudProgram {
    /// Its directory under `infrastructure/pulumi/`.
    pub dir: &'static str,
    /// The cloud's name.
    pub label: &'static str,
    /// Its Pulumi project.
    pub project: String,
    /// Its stack outputs.
    pub outputs: Vec<&'static str>,
}

/// `text` escaped inside a YAML double-quoted scalar that Pulumi reads literally (`${`
/// escaped as `$${`).
fn pulumi_text(text: &str) -> String {
    Language::Yaml.escape(text).replace("${", "$${")
}

/// `text` as a YAML double-quoted scalar Pulumi reads literally.
pub fn literal(text: &str) -> Code {
    Code::new(format!("\"{}\"", pulumi_text(text)))
}

/// `value` as a YAML scalar: each `${VAR}` a reference to its config key, literal text kept.
/// A literal `$` right before a variable cannot be written in one Pulumi string (`$${` is the
/// escape of `${`): such a value is joined from its parts with `fn::join`.
pub fn expr(value: &EnvString) -> Code {
    let parts: Vec<String> = value
        .segments()
        .iter()
        .map(|segment| match segment {
            Segment::Literal(text) => pulumi_text(text),
            Segment::Var { name, .. } => format!("${{{}}}", name.to_lowercase()),
        })
        .collect();
    let ambiguous = value.segments().windows(2).any(
        |pair| matches!(pair, [Segment::Literal(text), Segment::Var { .. }] if text.ends_with('$')),
    );
    if ambiguous {
        let quoted: Vec<String> = parts.iter().map(|p| format!("\"{p}\"")).collect();
        Code::new(format!(
            "{{ \"fn::join\": [\"\", [{}]] }}",
            quoted.join(", ")
        ))
    } else {
        Code::new(format!("\"{}\"", parts.concat()))
    }
}

/// `key` as part of a resource name: `DATABASE_URL` → `database-url`.
fn slug(key: &str) -> String {
    key.to_lowercase().replace('_', "-")
}

/// The services with their environment for one cloud: `wiring` gives the endpoints the
/// program creates (YAML scalars with interpolations); those variables leave the secret.
fn services(
    tf: &[TfService],
    wiring: impl Fn(&InfraService) -> Vec<(&'static str, Code)>,
) -> Vec<PulumiService> {
    tf.iter()
        .map(|s| {
            let mut env: Vec<PulumiEnv> = s
                .env
                .iter()
                .map(|e| PulumiEnv {
                    name: e.name.clone(),
                    value: match (&e.variable, &e.literal) {
                        (Some(variable), _) => Code::new(format!("\"${{{variable}}}\"")),
                        (None, Some(text)) => literal(text),
                        (None, None) => literal(""),
                    },
                })
                .collect();
            let mut secret_keys = s.secret_keys.clone();
            for (name, value) in wiring(&s.service) {
                secret_keys.retain(|k| *k != name);
                env.push(PulumiEnv {
                    name: name.to_owned(),
                    value,
                });
            }
            let account: String = format!("{}-sa", s.service.name).chars().take(30).collect();
            PulumiService {
                secret_slugs: secret_keys.iter().map(|k| slug(k)).collect(),
                secret_keys,
                env,
                priority: s.priority,
                account_id: account.trim_end_matches('-').to_owned(),
                service: s.service.clone(),
            }
        })
        .collect()
}

/// The stacks of a program: one per overlay in the first region (`fallback` without regions),
/// and a production stack per further region; `map` turns a region of `[cloud] regions` into
/// the cloud's, `extra` gives the cloud's own config of a (production or other) stack.
fn stacks(
    regions: &[String],
    map: impl Fn(&str) -> String,
    fallback: &str,
    extra: impl Fn(bool) -> Vec<StackEntry>,
) -> Vec<Stack> {
    let stack = |name: String, environment: &'static str, tag: &str, region: String| {
        let mut config = vec![
            StackEntry {
                key: "region",
                value: literal(&region),
            },
            StackEntry {
                key: "environment",
                value: literal(environment),
            },
            StackEntry {
                key: "image_tag",
                value: literal(tag),
            },
        ];
        config.extend(extra(environment == "production"));
        Stack {
            name,
            environment,
            region: Some(region),
            config,
        }
    };
    let first = regions
        .first()
        .map_or_else(|| fallback.to_owned(), |r| map(r));
    let mut out: Vec<Stack> = OVERLAYS
        .iter()
        .map(|env| stack(env.name.to_owned(), env.name, env.tag, first.clone()))
        .collect();
    let tag = OVERLAYS
        .iter()
        .find(|o| o.name == "production")
        .map_or("stable", |o| o.tag);
    for region in regions.iter().skip(1) {
        out.push(stack(
            format!("production-{region}"),
            "production",
            tag,
            map(region),
        ));
    }
    out
}

/// Plans the Pulumi programs of the clouds present in `[cloud]`, rendering with `base` (the
/// context of every infrastructure template) extended with the program's own values.
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
    let tf = tf_services(infra);
    let config: Vec<PulumiConfig> = infra
        .variables
        .iter()
        .map(|var| PulumiConfig {
            name: var.name.clone(),
            env: Some(var.env.clone()),
            description: format!(
                "{} of architecture.toml ({}).",
                var.env,
                var.keys.join(", ")
            ),
            default: var.default.as_deref().map(literal),
            secret: SENSITIVE_WORDS.iter().any(|w| var.env.contains(w)),
            keys: var.keys.clone(),
        })
        .collect();
    // The keys a stack must set: the program's own, then the `${VAR}` without default.
    let required = |own: &[(&str, bool)], config: &[PulumiConfig]| -> Vec<PulumiConfig> {
        own.iter()
            .map(|(name, secret)| PulumiConfig {
                name: (*name).to_owned(),
                env: None,
                description: String::new(),
                default: None,
                secret: *secret,
                keys: Vec::new(),
            })
            .chain(config.iter().filter(|c| c.default.is_none()).cloned())
            .collect()
    };
    let db_services = |list: &[PulumiService]| -> Vec<PulumiService> {
        list.iter()
            .filter(|s| matches!(s.service.database, "postgres" | "mysql"))
            .cloned()
            .collect()
    };
    let regions = &cloud.regions;
    let bus = infra.event_bus;
    let mut programs: Vec<CloudProgram> = Vec::new();

    if let Some(aws) = &cloud.aws {
        let runtime = aws.runtime;
        let config = for_cloud(&config, "aws");
        let alb = matches!(runtime, AwsRuntime::Fargate | AwsRuntime::Ecs);
        let list = services(&tf, |s| {
            let mut out = Vec::new();
            if s.bus && bus == Some("kafka") {
                out.push((
                    vars::EVENT_BUS_URL.name,
                    Code::new("\"kafka://${msk-cluster.bootstrapBrokersSaslIam}\""),
                ));
            }
            if s.bus && bus == Some("sqs") {
                out.push((
                    vars::EVENT_BUS_NAME.name,
                    Code::new("\"${event-bus.name}\""),
                ));
                if !s.consumes.is_empty() {
                    out.push((
                        vars::EVENT_QUEUE_URL.name,
                        Code::new(format!("\"${{{}-queue.url}}\"", s.name)),
                    ));
                }
            }
            if s.redis {
                out.push((
                    vars::REDIS_URL.name,
                    Code::new("\"rediss://${redis.primaryEndpointAddress}:6379\""),
                ));
            }
            out
        });
        let project = format!("{}-aws", infra.architecture);
        let dbs = db_services(&list);
        let format = file.settings.events.format;
        let ext = match format {
            EventFormat::Avro => "avsc",
            EventFormat::Protobuf => "proto",
            EventFormat::JsonSchema => "json",
        };
        let glue = infra.schema_registry == "glue" && !infra.events.is_empty();
        let context = context! {
            project => &project,
            p_services => v(&list),
            pulumi_config => v(&config),
            aws_runtime => runtime.as_str(),
            alb,
            aws_account => aws.account_id.as_ref().map(|a| if a.is_deferred() { expr(a) } else { literal(&a.literal().unwrap_or_default()) }),
            aws_db_services => v(&dbs),
            log_retention_days => log_retention(file.compliance.data_retention_days),
            glue,
            glue_format => match format {
                EventFormat::Avro => "AVRO",
                EventFormat::Protobuf => "PROTOBUF",
                EventFormat::JsonSchema => "JSON",
            },
            schema_ext => ext,
            waf_rps => public_rps(&tf),
            waf_limit => (u64::from(public_rps(&tf)) * 60).max(10),
            ..base.clone()
        };
        render(&t::PULUMI_AWS, context.clone())?;
        if glue {
            for event in &infra.events {
                render(
                    &t::PULUMI_AWS_SCHEMA,
                    context! { event, ext, ..context.clone() },
                )?;
            }
        }
        let mut own: Vec<(&str, bool)> = Vec::new();
        if alb {
            own.extend([("domain_name", false), ("certificate_arn", false)]);
        }
        if infra.rotation_days.is_some() {
            own.push(("rotation_lambda_arn", false));
        }
        if bus == Some("rabbitmq") {
            own.push(("rabbitmq_password", true));
        }
        let with_db = !dbs.is_empty();
        for stack in stacks(regions, str::to_owned, "us-east-1", |production| {
            if with_db {
                vec![StackEntry {
                    key: "multi_az",
                    value: Code::new(production.to_string()),
                }]
            } else {
                Vec::new()
            }
        }) {
            render(
                &t::PULUMI_STACK,
                context! { dir => "aws", project => &project, stack => v(&stack), required => v(required(&own, &config)), provider => "aws" },
            )?;
        }
        let mut outputs = vec!["imageRepositories"];
        match runtime {
            AwsRuntime::Lambda => outputs.push("serviceUrls"),
            AwsRuntime::Fargate | AwsRuntime::Ecs => {
                outputs.extend(["loadBalancerDnsName", "serviceUrls"]);
            }
            AwsRuntime::Eks => outputs.push("clusterName"),
        }
        if bus == Some("sqs") {
            outputs.push("eventBusName");
        }
        programs.push(CloudProgram {
            dir: "aws",
            label: "AWS",
            project,
            outputs,
        });
    }

    if let Some(gcp) = &cloud.gcp {
        let runtime = gcp.runtime;
        let config = for_cloud(&config, "gcp");
        let gke = runtime == GcpRuntime::Gke;
        let project_id = gcp.project_id.as_ref();
        let deferred = project_id.is_some_and(EnvString::is_deferred);
        let list = services(&tf, |s| {
            if s.redis {
                vec![(
                    vars::REDIS_URL.name,
                    Code::new("\"rediss://${redis.host}:${redis.port}\""),
                )]
            } else {
                Vec::new()
            }
        });
        let dbs = db_services(&list);
        let mut apis = vec![
            "artifactregistry.googleapis.com",
            "cloudtrace.googleapis.com",
            "compute.googleapis.com",
        ];
        if gke {
            apis.push("container.googleapis.com");
        } else {
            apis.extend(["run.googleapis.com", "vpcaccess.googleapis.com"]);
        }
        apis.extend([
            "secretmanager.googleapis.com",
            "servicenetworking.googleapis.com",
        ]);
        if !dbs.is_empty() {
            apis.push("sqladmin.googleapis.com");
        }
        if list.iter().any(|s| s.service.database == "firestore") {
            apis.push("firestore.googleapis.com");
        }
        if infra.engines.redis.is_some() {
            apis.push("redis.googleapis.com");
        }
        match bus {
            Some("pubsub") => apis.push("pubsub.googleapis.com"),
            Some("kafka") => apis.push("managedkafka.googleapis.com"),
            _ => {}
        }
        let project = format!("{}-gcp", infra.architecture);
        let context = context! {
            project => &project,
            p_services => v(&list),
            pulumi_config => v(&config),
            gcp_runtime => runtime.as_str(),
            gcp_apis => apis.iter().map(|a: &&str| context! { id => a.split('.').next(), service => *a }).collect::<Vec<_>>(),
            gcp_project => if deferred { project_id.map(expr) } else { Some(Code::new("${gcp_project_id}")) },
            gcp_project_variable => deferred,
            gcp_project_literal => project_id.and_then(EnvString::literal),
            gcp_db_services => v(&dbs),
            ..base.clone()
        };
        render(&t::PULUMI_GCP, context)?;
        let mut own: Vec<(&str, bool)> = Vec::new();
        if project_id.is_none() {
            own.push(("gcp_project_id", false));
        }
        let with_db = !dbs.is_empty();
        let with_redis = infra.engines.redis.is_some();
        for stack in stacks(regions, gcp_region, "us-central1", |production| {
            let mut out = Vec::new();
            if with_db {
                out.push(StackEntry {
                    key: "sql_availability",
                    value: literal(if production { "REGIONAL" } else { "ZONAL" }),
                });
            }
            if with_redis {
                out.push(StackEntry {
                    key: "redis_tier",
                    value: literal(if production { "STANDARD_HA" } else { "BASIC" }),
                });
            }
            out
        }) {
            render(
                &t::PULUMI_STACK,
                context! { dir => "gcp", project => &project, stack => v(&stack), required => v(required(&own, &config)), provider => "gcp" },
            )?;
        }
        programs.push(CloudProgram {
            dir: "gcp",
            label: "Google Cloud",
            project,
            outputs: if gke {
                vec!["imagePrefix", "clusterName"]
            } else {
                vec!["imagePrefix", "serviceUrls"]
            },
        });
    }

    if programs.len() > 1 {
        let project = format!("{}-multi-cloud", infra.architecture);
        render(
            &t::PULUMI_MULTI,
            context! { project, clouds => v(&programs), ..base.clone() },
        )?;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferred_values_become_config_references_and_literals_are_escaped() {
        let lone = EnvString::parse("${AWS_ACCOUNT_ID}").expect("valid");
        assert_eq!(expr(&lone).as_str(), r#""${aws_account_id}""#);
        let mixed = EnvString::parse("https://${AUTH_DOMAIN:-auth.local}/\"x\"").expect("valid");
        assert_eq!(expr(&mixed).as_str(), r#""https://${auth_domain}/\"x\"""#);
        assert_eq!(literal("a ${b}").as_str(), r#""a $${b}""#);
        // A literal `$` right before a variable, and a line separator, in a Pulumi scalar.
        let dollar = EnvString::parse("cost $$${PRICE}\u{2028}").expect("valid");
        assert_eq!(
            expr(&dollar).as_str(),
            r#"{ "fn::join": ["", ["cost $", "${price}", "\u2028"]] }"#
        );
        assert_eq!(slug("DATABASE_URL"), "database-url");
    }
}
