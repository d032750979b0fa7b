//! Fly.io and Shuttle: `fly.toml` per service and the `terraform/fly` root instantiating the
//! `fly-service` module per service (`[cloud.fly]`); `Shuttle.toml` and the `terraform/shuttle`
//! root running the Shuttle CLI through the `shuttle-service` module (`[cloud.shuttle]`).
//!
//! As in the other roots, `${VAR}` values are Terraform variables and credentials are never in
//! a file: Fly secrets are set with `fly secrets set`, Shuttle secrets come from a sensitive
//! variable set in the environment of `terraform apply`.

use allframe_config::Architecture;
use allframe_config::model::DeploymentStrategy;
use minijinja::context;
use minijinja::value::Value;
use serde::Serialize;

use super::flags::FlagsContext;
use super::model::InfraContext;
use super::terraform::{TfEnv, TfService, fly_region, hcl_expr, pad};
use super::v;
use crate::error::CliError;
use crate::escape::Code;
use crate::templates::{Renderer, cloud as t};
use crate::workspace::PlannedFile;

/// A service of the Fly.io root.
#[derive(Debug, Clone, Serialize)]
pub struct FlyService {
    /// The service.
    #[serde(flatten)]
    pub service: TfService,
    /// Its Fly app (also in its `fly.toml`).
    pub fly_app: String,
}

/// The Fly regions of `[cloud] regions`, nearest first-come, without duplicates.
pub fn fly_regions(regions: &[String]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for region in regions.iter().filter_map(|r| fly_region(r)) {
        if !out.contains(&region) {
            out.push(region);
        }
    }
    out
}

/// Plans the Fly.io and Shuttle files of `architecture`, rendering with `common` (the context
/// of every cloud template). Returns the reusable modules the roots use.
pub fn plan(
    infra: &InfraContext,
    architecture: &Architecture,
    services: &[TfService],
    flags: Option<&FlagsContext>,
    renderer: &Renderer,
    common: &Value,
    files: &mut Vec<PlannedFile>,
) -> Result<Vec<&'static str>, CliError> {
    let file = architecture.globals();
    let cloud = &file.cloud;
    let mut modules = Vec::new();
    let mut render = |template, context: Value| -> Result<(), CliError> {
        let (path, text) = renderer.render(template, &context)?;
        files.push(PlannedFile::new(path, text));
        Ok(())
    };

    if let Some(fly) = &cloud.fly {
        let strategy = match file.deployment.strategy {
            DeploymentStrategy::Canary => "canary",
            DeploymentStrategy::BlueGreen => "bluegreen",
            DeploymentStrategy::Rolling => "rolling",
            DeploymentStrategy::Recreate => "immediate",
        };
        let org = fly.org.literal();
        let regions = fly_regions(&cloud.regions);
        let mut fly_services = Vec::new();
        for service in services {
            let fly_app = match &org {
                Some(org) => format!("{org}-{}", service.service.name),
                None => format!("{}-{}", infra.architecture, service.service.name),
            };
            let service_env: Vec<&TfEnv> =
                service.env.iter().filter(|e| e.literal.is_some()).collect();
            render(
                &t::FLY,
                context! {
                    service => v(&service.service),
                    fly_app => &fly_app,
                    fly_region => regions.first().copied(),
                    fly_strategy => strategy,
                    service_env => v(service_env),
                    ..common.clone()
                },
            )?;
            let mut service = service.clone();
            if let Some(flags) = flags {
                // The SDK key is a Fly secret; the rest is plain environment.
                for (name, expression) in super::flags::service_env(flags, "fly") {
                    service.env.push(TfEnv {
                        name: name.to_owned(),
                        pad: String::new(),
                        literal: None,
                        variable: None,
                        expression: Some(expression),
                    });
                }
                service.secret_keys.push(super::flags::SDK_KEY);
                let width = service.env.iter().map(|e| e.name.len()).max().unwrap_or(0);
                for entry in &mut service.env {
                    entry.pad = pad(&entry.name, width);
                }
            }
            fly_services.push(FlyService { service, fly_app });
        }
        let fly_context = context! {
            tf_services => v(&fly_services),
            fly_regions => regions,
            fly_org => if fly.org.is_deferred() { hcl_expr(&fly.org) } else { Code::new("var.fly_org") },
            fly_org_literal => org,
            ..common.clone()
        };
        for template in t::FLY_ROOT {
            render(template, fly_context.clone())?;
        }
        modules.push("fly-service");
    }

    if let Some(shuttle) = &cloud.shuttle {
        let project = &shuttle.project;
        let literal = project.literal();
        render(
            &t::SHUTTLE,
            context! {
                shuttle_project => literal.clone(),
                shuttle_project_raw => project.raw(),
                ..common.clone()
            },
        )?;
        let shuttle_context = context! {
            shuttle_project => if project.is_deferred() { hcl_expr(project) } else { Code::new("var.shuttle_project") },
            shuttle_project_literal => literal,
            ..common.clone()
        };
        for template in t::SHUTTLE_ROOT {
            render(template, shuttle_context.clone())?;
        }
        modules.push("shuttle-service");
    }
    Ok(modules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fly_regions_fan_out_without_duplicates() {
        let regions: Vec<String> = ["us-east-1", "eu-west-1", "eu-west-2", "mars-north-1"]
            .iter()
            .map(|r| (*r).to_owned())
            .collect();
        assert_eq!(fly_regions(&regions), ["iad", "lhr"]);
    }
}
