//! In-process expansion tests: build the attribute's input, expand, inspect the items produced.

use allframe_codegen::{Env, expand_service, pretty};
use proc_macro2::TokenStream;
use quote::quote;

const ARCH: &str = r#"
[architecture]
name = "shop"

[observability]
logging = "json"

[security.authentication]
provider = "custom"
jwt_issuer = "https://${AUTH_HOST:-auth.local}/"

[[services]]
name = "user-service"
type = "stateless"
protocols = ["rest", "grpc"]
[services.ports]
inbound = ["rest:8181", "grpc:9191"]
[services.idempotency]
key_header = "X-Request-Key"
ttl_hours = 12
storage = "redis"
[services.messaging]
pattern = "outbox"
outbox_polling_ms = 250
[services.retry]
max_attempts = 7

[[services]]
name = "catalog"
type = "stateless"

[[services]]
name = "direct"
type = "stateless"
[services.messaging]
pattern = "direct"

[[services]]
name = "mailer"
type = "consumer"
[services.consumer]
events = ["UserCreated"]

[[services]]
name = "payments"
type = "gateway"
[services.integrations]
providers = ["stripe"]
circuit_breaker = { failure_threshold = 2 }

[[services]]
name = "order-service"
type = "saga-orchestrator"
retry = { max_attempts = 4 }
[services.saga]
name = "CreateOrderSaga"
steps = ["ValidateInventory", "ReservePayment"]
compensation = ["ReleaseInventory", "RefundPayment"]
timeout_seconds = 120

[[services]]
name = "web"
type = "bff"
[services.bff]
aggregates = []
"#;

struct Crate {
    dir: tempfile::TempDir,
}

impl Crate {
    fn new(arch: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("architecture.toml"), arch).expect("write");
        std::fs::create_dir(dir.path().join("migrations")).expect("mkdir");
        std::fs::write(
            dir.path().join("migrations/0002_add_email.sql"),
            "ALTER TABLE users ADD COLUMN email TEXT;",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("migrations/0001_create_users.sql"),
            "CREATE TABLE users (id TEXT PRIMARY KEY);",
        )
        .expect("write");
        Self { dir }
    }

    fn env(&self) -> Env {
        Env {
            manifest_dir: self.dir.path().to_owned(),
            debug: false,
        }
    }

    fn expand(&self, attr: TokenStream) -> syn::File {
        let out = expand_service(
            attr,
            quote!(
                pub struct UserService;
            ),
            &self.env(),
        );
        syn::parse2(out).expect("expansion is valid Rust")
    }
}

fn compile_errors(file: &syn::File) -> Vec<String> {
    file.items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Macro(m)
                if m.mac
                    .path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "compile_error") =>
            {
                Some(m.mac.parse_body::<syn::LitStr>().expect("message").value())
            }
            _ => None,
        })
        .collect()
}

fn static_named<'a>(file: &'a syn::File, name: &str) -> &'a syn::ItemStatic {
    file.items
        .iter()
        .find_map(|item| match item {
            syn::Item::Static(s) if s.ident == name => Some(s),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no static {name}"))
}

fn field<'a>(init: &'a syn::Expr, name: &str) -> &'a syn::Expr {
    let syn::Expr::Struct(s) = init else {
        panic!("not a struct literal")
    };
    &s.fields
        .iter()
        .find(|f| matches!(&f.member, syn::Member::Named(i) if i == name))
        .unwrap_or_else(|| panic!("no field {name}"))
        .expr
}

fn lit_int(expr: &syn::Expr) -> u64 {
    match expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(i),
            ..
        }) => i.base10_parse().expect("int"),
        other => panic!("not an int: {}", quote!(#other)),
    }
}

#[test]
fn a_gateway_declares_a_client_per_provider_and_wires_them_with_its_breaker() {
    let c = Crate::new(ARCH);
    let file = c.expand(quote!(config = "architecture.toml", name = "payments"));
    assert!(
        compile_errors(&file).is_empty(),
        "{}",
        pretty(&quote!(#file))
    );
    let integrations = file
        .items
        .iter()
        .find_map(|i| match i {
            syn::Item::Trait(t) if t.ident == "Integrations" => Some(t),
            _ => None,
        })
        .expect("the Integrations obligation");
    let clients: Vec<String> = integrations
        .items
        .iter()
        .filter_map(|i| match i {
            syn::TraitItem::Type(t) => Some(t.ident.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(clients, ["Stripe"]);
    let accessors: Vec<String> = file
        .items
        .iter()
        .filter_map(|i| match i {
            syn::Item::Impl(imp) if imp.trait_.is_none() => Some(imp),
            _ => None,
        })
        .flat_map(|imp| imp.items.iter())
        .filter_map(|i| match i {
            syn::ImplItem::Fn(f) => Some(f.sig.ident.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(accessors, ["stripe"]);
    let launcher = launcher_fn(&file);
    let body = quote!(#launcher).to_string();
    assert!(body.contains(". gateway ("), "{body}");
    assert!(body.contains("name : \"stripe\""), "{body}");
    assert!(
        body.contains("failure_threshold : 2"),
        "the file's breaker: {body}"
    );
}

#[test]
fn a_saga_orchestrator_declares_its_saga_as_a_trait_and_wires_its_steps() {
    let c = Crate::new(ARCH);
    let file = c.expand(quote!(config = "architecture.toml", name = "order-service"));
    assert!(
        compile_errors(&file).is_empty(),
        "{}",
        pretty(&quote!(#file))
    );
    let saga = file
        .items
        .iter()
        .find_map(|i| match i {
            syn::Item::Trait(t) if t.ident == "CreateOrderSaga" => Some(t),
            _ => None,
        })
        .expect("the saga's trait");
    let items: Vec<String> = saga
        .items
        .iter()
        .filter_map(|i| match i {
            syn::TraitItem::Type(t) => Some(t.ident.to_string()),
            syn::TraitItem::Fn(f) => Some(f.sig.ident.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        items,
        [
            "Input",
            "validate_inventory",
            "reserve_payment",
            "release_inventory",
            "refund_payment"
        ]
    );
    let orchestrate = file
        .items
        .iter()
        .find_map(|i| match i {
            syn::Item::Impl(imp)
                if imp.trait_.as_ref().is_some_and(|(_, path, _)| {
                    quote!(#path).to_string().ends_with("Orchestrate")
                }) =>
            {
                Some(imp)
            }
            _ => None,
        })
        .expect("Orchestrate derived");
    let body = quote!(#orchestrate).to_string();
    assert!(
        body.contains("1usize => < Self as CreateOrderSaga > :: reserve_payment"),
        "{body}"
    );
    assert!(
        body.contains("1usize => < Self as CreateOrderSaga > :: refund_payment"),
        "{body}"
    );
    let launcher = launcher_fn(&file);
    let body = quote!(#launcher).to_string();
    assert!(body.contains(". saga ("), "{body}");
    assert!(
        body.contains("step : \"ReservePayment\" , compensation : \"RefundPayment\""),
        "{body}"
    );
    assert!(body.contains("timeout_seconds : 120"), "{body}");
    assert!(
        body.contains("max_attempts : 4"),
        "the service's retry policy: {body}"
    );
}

#[test]
fn stateless_service_gets_main_settings_and_migrations() {
    let c = Crate::new(ARCH);
    let file = c.expand(quote!(config = "architecture.toml", name = "user-service"));
    assert!(
        compile_errors(&file).is_empty(),
        "{}",
        pretty(&quote!(#file))
    );

    assert!(
        file.items
            .iter()
            .any(|i| matches!(i, syn::Item::Fn(f) if f.sig.ident == "main")),
        "main generated"
    );
    let launcher = launcher_fn(&file);
    let body = quote!(#launcher).to_string();
    assert!(
        body.contains(". grpc ("),
        "grpc registered because protocols lists grpc: {body}"
    );

    let settings = static_named(&file, "__ALLFRAME_SETTINGS");
    assert_eq!(lit_int(field(&settings.expr, "rest_port")), 8181);
    let logging = field(&settings.expr, "logging");
    assert!(quote!(#logging).to_string().ends_with("Json"));
    let deferred = field(&settings.expr, "deferred");
    let deferred = quote!(#deferred).to_string();
    assert!(
        deferred.contains("\"security.authentication.jwt_issuer\""),
        "{deferred}"
    );
    assert!(deferred.contains("name : \"AUTH_HOST\""), "{deferred}");
    assert!(
        !deferred.contains("auth.local\" )") || deferred.contains("Some (\"auth.local\")"),
        "default kept as default: {deferred}"
    );

    let migrations = static_named(&file, "__ALLFRAME_MIGRATIONS");
    let syn::Expr::Reference(r) = &*migrations.expr else {
        panic!("not a slice")
    };
    let syn::Expr::Array(arr) = &*r.expr else {
        panic!("not an array")
    };
    let versions: Vec<u64> = arr
        .elems
        .iter()
        .map(|e| lit_int(field(e, "version")))
        .collect();
    assert_eq!(versions, [1, 2], "sorted by version");
}

#[test]
fn rebuilds_when_the_file_changes() {
    let c = Crate::new(ARCH);
    let file = c.expand(quote!(config = "architecture.toml", name = "catalog"));
    let expected = c
        .dir
        .path()
        .join("architecture.toml")
        .to_string_lossy()
        .into_owned();
    let included = file.items.iter().any(|item| match item {
        syn::Item::Const(k) => {
            let e = &k.expr;
            let text = quote!(#e).to_string();
            text.contains("include_bytes") && text.contains(&format!("{expected:?}"))
        }
        _ => false,
    });
    assert!(included, "include_bytes! of the config file is emitted");
    let main = quote!(#file).to_string();
    assert!(
        !main.contains(". grpc ("),
        "no gRPC for a REST-only service"
    );
}

#[test]
fn errors_become_compile_errors_with_a_skeleton() {
    let c = Crate::new(ARCH);
    let unknown = c.expand(quote!(config = "architecture.toml", name = "user-servic"));
    let errors = compile_errors(&unknown);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("did you mean `user-service`?"),
        "{errors:?}"
    );
    assert!(
        unknown
            .items
            .iter()
            .any(|i| matches!(i, syn::Item::Struct(s) if s.ident == "UserService")),
        "item kept"
    );
    assert!(
        unknown
            .items
            .iter()
            .any(|i| matches!(i, syn::Item::Fn(f) if f.sig.ident == "main")),
        "skeleton main"
    );

    let bff = compile_errors(&c.expand(quote!(config = "architecture.toml", name = "web")));
    assert!(
        bff[0].contains(
            "does not generate yet (it generates: stateless, producer, consumer, gateway, saga-orchestrator, event-sourced, cache)"
        ),
        "{bff:?}"
    );

    let transactional = Crate::new(
        "[architecture]\nname = \"x\"\n[[services]]\nname = \"t\"\ntype = \"stateless\"\n[services.messaging]\npattern = \"transactional\"\n",
    );
    let file = transactional.expand(quote!(config = "architecture.toml", name = "t"));
    assert!(
        compile_errors(&file).is_empty(),
        "{:?}",
        compile_errors(&file)
    );
    let text = quote!(#file).to_string();
    assert!(
        text.contains(". transactional_publish ()"),
        "transactional → .transactional_publish(): {text}"
    );

    let absolute = compile_errors(&c.expand(quote!(config = "/etc/architecture.toml", name = "x")));
    assert!(absolute[0].contains("is absolute"), "{absolute:?}");

    let missing = compile_errors(&c.expand(quote!(config = "nope.toml", name = "x")));
    assert!(
        missing[0].contains("`nope.toml` does not exist"),
        "{missing:?}"
    );

    // The macro reads the file with the CLI's bounds: a huge file is refused before it is read.
    let huge = c.dir.path().join("huge.toml");
    let size = allframe_config::MAX_FILE_BYTES as usize + 1;
    std::fs::write(&huge, vec![b'#'; size]).expect("write");
    let huge = compile_errors(&c.expand(quote!(config = "huge.toml", name = "x")));
    assert!(huge[0].contains("larger than 4 MiB"), "{huge:?}");

    let typo = compile_errors(&c.expand(quote!(confg = "architecture.toml", name = "x")));
    assert!(typo.iter().any(|e| e.contains("config")), "{typo:?}");
}

/// The `.metrics(…)` call of the generated launcher, as tokens (empty when there is none).
fn metrics_call(arch: &str) -> Result<String, Vec<String>> {
    launcher_call(arch, "metrics")
}

/// The `.<method>(…)` call of the generated launcher, as tokens up to the next call (empty
/// when there is none).
fn launcher_call(arch: &str, method: &str) -> Result<String, Vec<String>> {
    let file = Crate::new(arch).expand(quote!(config = "architecture.toml", name = "m"));
    let errors = compile_errors(&file);
    if !errors.is_empty() {
        return Err(errors);
    }
    let launcher = launcher_fn(&file);
    let body = quote!(#launcher).to_string();
    Ok(body
        .split(&format!(". {method} ("))
        .nth(1)
        .map(|rest| {
            let end = rest.find(") .").unwrap_or(rest.len());
            rest[..end].to_owned()
        })
        .unwrap_or_default())
}

#[test]
fn span_export_follows_observability_tracing() {
    let base = "[architecture]\nname = \"x\"\n[[services]]\nname = \"m\"\ntype = \"stateless\"\n";
    let default = launcher_call(base, "tracing").expect("expands");
    assert!(
        default.contains("TraceSampling :: ParentBased (1f64)") && default.contains("b3 : false"),
        "tracing defaults to opentelemetry, parent-based, W3C only: {default}"
    );

    let declared = format!(
        "{base}[observability]\ntracing = \"opentelemetry\"\npropagation = [\"traceparent\", \"b3\", \"baggage\"]\n\
         sampling = {{ strategy = \"probabilistic\", rate = 0.1 }}\n"
    );
    let declared = launcher_call(&declared, "tracing").expect("expands");
    for part in [
        "TraceSampling :: Ratio (0.1f64)",
        "b3 : true",
        "baggage : true",
    ] {
        assert!(declared.contains(part), "{part} in {declared}");
    }

    let none = format!("{base}[observability]\ntracing = \"none\"\n");
    assert_eq!(launcher_call(&none, "tracing").expect("expands"), "");

    let jaeger = format!("{base}[observability]\npropagation = [\"jaeger\"]\n");
    let errors = launcher_call(&jaeger, "tracing").expect_err("jaeger is refused");
    assert!(
        errors[0].contains("\"jaeger\"") && errors[0].contains("\"traceparent\""),
        "{errors:?}"
    );
}

#[test]
fn prometheus_endpoint_follows_observability_metrics() {
    let base = "[architecture]\nname = \"x\"\n[[services]]\nname = \"m\"\ntype = \"stateless\"\n";
    let default = metrics_call(base).expect("expands");
    assert!(
        default.contains("port : :: core :: option :: Option :: None"),
        "{default}"
    );

    let own_port = format!("{base}[services.ports]\ninbound = [\"http:8080\", \"metrics:9464\"]\n");
    let own_port = metrics_call(&own_port).expect("expands");
    assert!(own_port.contains("Option :: Some (9464)"), "{own_port}");

    let none = format!("{base}[observability]\nmetrics = \"none\"\n");
    assert_eq!(metrics_call(&none).expect("expands"), "");

    let otlp = format!("{base}[observability]\nmetrics = \"otlp\"\n");
    let errors = metrics_call(&otlp).expect_err("otlp is refused");
    assert!(
        errors[0].contains("`[observability] metrics = \"otlp\"`"),
        "{errors:?}"
    );
}

/// `fn launcher()` of the generated `impl allframe::__private::Launch` (what `main` runs).
fn launcher_fn(file: &syn::File) -> syn::ImplItemFn {
    file.items
        .iter()
        .find_map(|item| match item {
            syn::Item::Impl(i)
                if i.trait_
                    .as_ref()
                    .and_then(|(_, path, _)| path.segments.last())
                    .is_some_and(|s| s.ident == "Launch") =>
            {
                i.items.iter().find_map(|item| match item {
                    syn::ImplItem::Fn(f) if f.sig.ident == "launcher" => Some(f.clone()),
                    _ => None,
                })
            }
            _ => None,
        })
        .expect("an `impl Launch` with `fn launcher()`")
}

/// The launcher calls of the generated `launcher()`, outermost last: `(method, arguments)`.
fn launcher_chain(arch: &str) -> Vec<(String, Vec<syn::Expr>)> {
    let file = Crate::new(arch).expand(quote!(config = "architecture.toml", name = "m"));
    assert!(
        compile_errors(&file).is_empty(),
        "{:?}",
        compile_errors(&file)
    );
    let launcher = launcher_fn(&file);
    let Some(syn::Stmt::Expr(mut expr, None)) = launcher.block.stmts.last().cloned() else {
        panic!("`launcher()` ends in the launcher expression")
    };
    let mut calls = Vec::new();
    while let syn::Expr::MethodCall(call) = expr {
        calls.push((call.method.to_string(), call.args.into_iter().collect()));
        expr = *call.receiver;
    }
    calls.reverse();
    calls
}

#[test]
fn the_tenant_header_reaches_the_launcher_that_scopes_idempotency_keys() {
    let base = "[architecture]\nname = \"x\"\n[[services]]\nname = \"m\"\ntype = \"stateless\"\n\
                [services.idempotency]\nenabled = true\n";
    let tenancy = format!("{base}[tenant]\nenabled = true\nheader = \"X-Org\"\n");
    let chain = launcher_chain(&tenancy);
    let methods: Vec<&str> = chain.iter().map(|(m, _)| m.as_str()).collect();
    assert!(methods.contains(&"idempotency"), "{methods:?}");
    let (_, args) = chain
        .iter()
        .find(|(method, _)| method == "tenant_header")
        .unwrap_or_else(|| panic!("no .tenant_header(..) in {methods:?}"));
    let [
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(header),
            ..
        }),
    ] = args.as_slice()
    else {
        panic!("one string argument: {}", quote!(#(#args),*))
    };
    assert_eq!(
        header.value(),
        "X-Org",
        "the configured header, not the default"
    );

    let off = launcher_chain(base);
    assert!(
        off.iter().all(|(method, _)| method != "tenant_header"),
        "tenancy off: nothing scopes keys by tenant"
    );
}

#[test]
fn every_file_error_is_reported_at_once() {
    let c = Crate::new(
        "[architecture]\nname = \"x\"\n[[services]]\nname = \"A\"\ntype = \"stateless\"\n[[services]]\nname = \"A\"\ntype = \"stateless\"\n",
    );
    let errors = compile_errors(&c.expand(quote!(config = "architecture.toml", name = "A")));
    assert!(errors.len() >= 3, "{errors:?}");
    assert!(
        errors.iter().all(|e| e.starts_with("architecture.toml:")),
        "file:line:col first: {errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("allframe::duplicate-service")),
        "{errors:?}"
    );
}

#[test]
fn crate_override_changes_every_runtime_path() {
    let c = Crate::new(ARCH);
    let file = c.expand(quote!(
        config = "architecture.toml",
        name = "catalog",
        crate = "my_runtime"
    ));
    let text = quote!(#file).to_string();
    assert!(text.contains("my_runtime :: __private"), "{text}");
    assert!(!text.contains("allframe ::"), "{text}");
}

#[test]
fn expansion_snapshot() {
    let c = Crate::new(ARCH);
    let file = c.expand(quote!(config = "architecture.toml", name = "user-service"));
    let text =
        pretty(&quote!(#file)).replace(&c.dir.path().to_string_lossy().into_owned(), "$CRATE");
    insta::assert_snapshot!(text);
}

#[test]
fn producer_expansion_snapshot() {
    let c = Crate::new(
        r#"[architecture]
name = "fleet"
[observability]
tracing = "none"
metrics = "none"
[[services]]
name = "position-ingest"
type = "producer"
[services.domain]
entities = ["PositionReport", "Alert"]
events = ["PositionReported", "AlertRaised"]
[services.messaging]
pattern = "direct"
"#,
    );
    let file = c.expand(quote!(
        config = "architecture.toml",
        name = "position-ingest"
    ));
    assert!(
        compile_errors(&file).is_empty(),
        "{:?}",
        compile_errors(&file)
    );
    let text =
        pretty(&quote!(#file)).replace(&c.dir.path().to_string_lossy().into_owned(), "$CRATE");
    insta::assert_snapshot!(text);
}

#[test]
fn consumer_expansion_snapshot() {
    let c = Crate::new(
        r#"[architecture]
name = "harbour"
[observability]
tracing = "none"
metrics = "none"
[[services]]
name = "berths"
type = "producer"
[services.domain]
entities = ["Berth"]
events = ["BerthBooked"]
[services.messaging]
pattern = "outbox"
[[services]]
name = "harbour-mail"
type = "consumer"
[services.consumer]
events = ["BerthBooked", "TideTurned"]
channels = ["email", "sms"]
max_retries = 4
retry_backoff = "linear"
concurrency = 8
"#,
    );
    let file = c.expand(quote!(config = "architecture.toml", name = "harbour-mail"));
    assert!(
        compile_errors(&file).is_empty(),
        "{:?}",
        compile_errors(&file)
    );
    let text =
        pretty(&quote!(#file)).replace(&c.dir.path().to_string_lossy().into_owned(), "$CRATE");
    insta::assert_snapshot!(text);
}

#[test]
fn event_sourced_expansion_snapshot() {
    let c = Crate::new(
        r#"[architecture]
name = "harbour"
[observability]
tracing = "none"
metrics = "none"
[[services]]
name = "berth-ledger"
type = "event-sourced"
[services.domain]
entities = ["Berth", "Pilot"]
events = ["BerthBooked", "BerthFreed"]
[services.cqrs]
projections = ["Occupancy"]
snapshot_frequency = 50
[services.messaging]
pattern = "outbox"
"#,
    );
    let file = c.expand(quote!(config = "architecture.toml", name = "berth-ledger"));
    assert!(
        compile_errors(&file).is_empty(),
        "{:?}",
        compile_errors(&file)
    );
    let text =
        pretty(&quote!(#file)).replace(&c.dir.path().to_string_lossy().into_owned(), "$CRATE");
    insta::assert_snapshot!(text);
}

#[test]
fn cache_expansion_snapshot() {
    let c = Crate::new(
        r#"[architecture]
name = "harbour"
[observability]
tracing = "none"
metrics = "none"
[[services]]
name = "berth-cache"
type = "cache"
[services.cache]
strategy = "write-behind"
ttl_seconds = 120
invalidation = ["BerthBooked"]
"#,
    );
    let file = c.expand(quote!(config = "architecture.toml", name = "berth-cache"));
    assert!(
        compile_errors(&file).is_empty(),
        "{:?}",
        compile_errors(&file)
    );
    let text =
        pretty(&quote!(#file)).replace(&c.dir.path().to_string_lossy().into_owned(), "$CRATE");
    insta::assert_snapshot!(text);
}
