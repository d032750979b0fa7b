//! What ignite writes for an architecture: the workspace files, a copy of the architecture
//! file, one crate per generated service, and the infrastructure and docs of every service
//! ([`crate::infra`]), rendered from the embedded templates. Pure with
//! respect to the output directory: planning reads nothing there and writes nothing.

use allframe_config::Architecture;

use crate::context::{
    ArchetypeContext, CrateContext, RuntimeSource, ServiceContext, Skipped, WorkspaceContext,
};
use crate::error::CliError;
use crate::events::{EventsCrate, shared_events};
use crate::scaffold::Scaffold;
use crate::templates::{Each, Renderer, Template, When};
use crate::workspace::PlannedFile;

/// The name of the architecture file's copy at the workspace root (the services' attribute
/// reads `../../architecture.toml`).
pub const ARCHITECTURE_FILE: &str = "architecture.toml";

/// Everything ignite would write.
#[derive(Debug)]
pub struct Plan {
    /// The files: workspace files first, then each service's, then infrastructure and docs.
    pub files: Vec<PlannedFile>,
    /// The generated services, in file order.
    pub services: Vec<ServiceContext>,
    /// The services not generated, in file order.
    pub skipped: Vec<Skipped>,
}

/// Plans the workspace of `architecture`, whose file's bytes are `architecture_bytes`.
pub fn plan(
    architecture: &Architecture,
    architecture_bytes: &[u8],
    runtime: &RuntimeSource,
    renderer: &Renderer,
) -> Result<Plan, CliError> {
    let mut services = Vec::new();
    let mut skipped = Vec::new();
    for service in architecture.services() {
        // The same plan the macro expands from: a service it can expand gets a crate, with
        // the runtime features that plan needs.
        if !allframe_config::support::is_generated(service.kind()) {
            skipped.push(Skipped {
                name: service.name().to_owned(),
                kind: service.kind().as_str(),
            });
            continue;
        }
        match allframe_codegen::plan::plan(architecture, service) {
            Ok(plan) => services.extend(ServiceContext::new(&plan, architecture.name())),
            Err(errors) => {
                return Err(CliError::Plan {
                    service: service.name().to_owned(),
                    reason: errors
                        .into_iter()
                        .map(|e| e.message)
                        .collect::<Vec<_>>()
                        .join("; "),
                });
            }
        }
    }

    let mut files = Vec::new();
    let events_crate = EventsCrate::new(architecture.name());
    let events = shared_events(architecture, &services);
    for service in &mut services {
        if let ArchetypeContext::Cache(cache) = &mut service.archetype {
            cache.shape_events(&events);
        }
    }
    let (runtime_path, runtime_version) = runtime.dependency();
    let workspace = WorkspaceContext {
        architecture: architecture.name(),
        services: &services,
        skipped: &skipped,
        generated: allframe_config::support::GENERATED_TYPES
            .iter()
            .map(|kind| kind.as_str())
            .collect(),
        events_crate: &events_crate,
        events: &events,
        event: None,
        runtime_path,
        runtime_version,
    };
    let scaffold = Scaffold::get()?;
    for template in &scaffold.workspace {
        if template.when == When::Included || (template.when == When::Events && events.is_empty()) {
            continue;
        }
        let rendered = match template.each {
            Each::Event => events
                .iter()
                .map(|event| {
                    let each = WorkspaceContext {
                        event: Some(event),
                        generated: workspace.generated.clone(),
                        ..workspace
                    };
                    renderer.render(template, &each)
                })
                .collect::<Result<_, _>>()?,
            _ => vec![renderer.render(template, &workspace)?],
        };
        files.extend(
            rendered
                .into_iter()
                .map(|(path, text)| PlannedFile::new(path, text)),
        );
    }
    files.push(PlannedFile::new(ARCHITECTURE_FILE, architecture_bytes));

    for service in &services {
        let context = CrateContext::new(service, runtime, &events_crate);
        let templates = scaffold.archetype(service.kind);
        for template in templates.iter().filter(|t| applies(t, service)) {
            let rendered = match template.each {
                Each::Once | Each::Event => vec![renderer.render(template, &context)?],
                Each::Item(name) => service
                    .archetype
                    .items(name)
                    .ok_or_else(|| CliError::Scaffold {
                        reason: format!(
                            "`{}` says `each = \"{name}\"`, which a `{}` service does not list",
                            template.name, service.kind
                        ),
                    })?
                    .into_iter()
                    .map(|item| {
                        let each = CrateContext {
                            each: [(name, item)].into(),
                            ..CrateContext::new(service, runtime, &events_crate)
                        };
                        renderer.render(template, &each)
                    })
                    .collect::<Result<_, _>>()?,
            };
            for (path, text) in rendered {
                files.push(PlannedFile::new(
                    format!("services/{}/{path}", service.names.kebab),
                    text,
                ));
            }
        }
    }
    let generated = services.iter().map(|s| s.names.kebab.clone()).collect();
    files.extend(crate::infra::plan(architecture, &generated, renderer)?);
    Ok(Plan {
        files,
        services,
        skipped,
    })
}

/// The services whose crates ignite generates (the types it has archetypes for).
pub fn generated_services(architecture: &Architecture) -> std::collections::BTreeSet<String> {
    architecture
        .services()
        .iter()
        .filter(|s| allframe_config::support::is_generated(s.kind()))
        .map(|s| s.name().to_owned())
        .collect()
}

fn applies(template: &Template, service: &ServiceContext) -> bool {
    match template.when {
        When::Always => true,
        When::Grpc => service.grpc,
        When::Messaging => service.messaging.is_some(),
        When::Providers => !service.archetype.providers().is_empty(),
        When::Listed(name) => service
            .archetype
            .items(name)
            .is_some_and(|items| !items.is_empty()),
        // Workspace templates only (see `plan`).
        When::Events => true,
        When::Included => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rustfmt;
    use allframe_config::SourceFile;

    const ARCH: &str = r#"[architecture]
name = "shop"

[[services]]
name = "user-service"
type = "stateless"
responsibility = "User registration and profiles"
protocols = ["rest", "grpc"]

[services.domain]
entities = ["User"]

[services.messaging]
pattern = "outbox"

[services.idempotency]
enabled = true

[[services]]
name = "catalog"
type = "stateless"

[[services]]
name = "position-ingest"
type = "producer"

[services.domain]
entities = ["PositionReport", "Alert"]
events = ["PositionReported", "AlertRaised"]

[services.messaging]
pattern = "direct"

[services.idempotency]
enabled = true

[[services]]
name = "ledger"
type = "event-sourced"

[services.domain]
entities = ["Account", "Card"]
events = ["AccountOpened", "AccountRenamed"]

[services.cqrs]
projections = ["Balances"]

[services.messaging]
pattern = "outbox"
"#;

    fn shop_plan() -> Plan {
        let source = SourceFile::new("architecture.toml", ARCH);
        let architecture = allframe_config::check(&source).expect("valid");
        let runtime = RuntimeSource::Version("0.1.0".into());
        let renderer = Renderer::new().expect("templates parse");
        plan(&architecture, ARCH.as_bytes(), &runtime, &renderer).expect("plan")
    }

    #[test]
    fn rendered_rust_is_already_rustfmt_clean() {
        let plan = shop_plan();
        let program = rustfmt::program();
        let mut checked = 0;
        for file in plan.files.iter().filter(|f| f.path.ends_with(".rs")) {
            let text = std::str::from_utf8(&file.contents).expect("utf-8");
            let formatted = rustfmt::format(&program, text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e:?}\n{text}", file.path));
            assert_eq!(formatted, text, "{} is not rustfmt-clean", file.path);
            checked += 1;
        }
        // Stateless: main, build, domain (2), application (3), presentation (2, + grpc),
        // tests. Producer: main, tests, the inputs module and one input per entity. The
        // shared events crate: lib, tests, one file per event. Event-sourced: main, tests, the
        // aggregates module and one file per aggregate, the projections module and one file
        // per projection.
        assert_eq!(checked, 11 + 10 + (3 + 2) + (2 + 3 + 3) + (2 + 3 + 2));
    }

    /// PascalCase names a file brings into scope from elsewhere (`use` leaves and renames) and
    /// the types it defines.
    fn names_in_scope(file: &syn::File) -> Vec<String> {
        fn leaves(tree: &syn::UseTree, out: &mut Vec<String>) {
            match tree {
                syn::UseTree::Path(p) => leaves(&p.tree, out),
                syn::UseTree::Name(n) => out.push(n.ident.to_string()),
                syn::UseTree::Rename(r) => out.push(r.rename.to_string()),
                syn::UseTree::Group(g) => g.items.iter().for_each(|t| leaves(t, out)),
                syn::UseTree::Glob(_) => {}
            }
        }
        let mut out = Vec::new();
        for item in &file.items {
            match item {
                syn::Item::Use(u) => leaves(&u.tree, &mut out),
                syn::Item::Struct(s) => out.push(s.ident.to_string()),
                syn::Item::Enum(e) => out.push(e.ident.to_string()),
                syn::Item::Trait(t) => out.push(t.ident.to_string()),
                syn::Item::Type(t) => out.push(t.ident.to_string()),
                _ => {}
            }
        }
        out.retain(|name| allframe_config::names::is_pascal(name));
        out
    }

    #[test]
    fn every_name_the_scaffold_brings_into_scope_is_reserved_by_the_config_check() {
        use allframe_config::names::{GENERATED_NAMES, INPUT_NAMES, PRELUDE};

        let plan = shop_plan();
        // Names derived from the file's own names are the file's business (their clashes are
        // checked as clashes of those names).
        let derived = [
            "User",
            "UserService",
            "Item",
            "Catalog",
            "PositionIngest",
            "PositionReport",
            "PositionReported",
            "Alert",
            "AlertRaised",
            "Ledger",
            "Account",
            "Card",
            "Balances",
        ];
        let mut checked = 0;
        for file in plan.files.iter().filter(|f| f.path.ends_with(".rs")) {
            let text = std::str::from_utf8(&file.contents).expect("utf-8");
            let parsed = syn::parse_file(text).expect("generated Rust parses");
            for name in names_in_scope(&parsed) {
                if derived.iter().any(|d| name.contains(d)) {
                    continue;
                }
                assert!(
                    [GENERATED_NAMES, INPUT_NAMES, PRELUDE]
                        .iter()
                        .any(|names| names.contains(&name.as_str())),
                    "`{name}` ({}) is not in allframe_config::names::GENERATED_NAMES: an entity \
                     or event of that name would clash with it",
                    file.path
                );
                checked += 1;
            }
        }
        assert!(checked > 10, "only {checked} names seen");
    }

    #[test]
    fn grpc_files_only_for_services_that_speak_grpc() {
        let plan = shop_plan();
        let has = |path: &str| plan.files.iter().any(|f| f.path == path);
        assert!(has("services/user-service/proto/user-service.proto"));
        assert!(has("services/user-service/src/presentation/grpc.rs"));
        assert!(!has("services/catalog/src/presentation/grpc.rs"));
        assert!(
            !plan
                .files
                .iter()
                .any(|f| f.path.starts_with("services/catalog/proto/"))
        );
        let presentation = plan
            .files
            .iter()
            .find(|f| f.path == "services/catalog/src/presentation/mod.rs")
            .expect("presentation module");
        assert_eq!(
            String::from_utf8_lossy(&presentation.contents)
                .matches("pub mod")
                .count(),
            1,
            "only the REST module is declared"
        );
    }
}
