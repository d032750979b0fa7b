//! The entry point generated `main()` calls: read the environment, set up logging, open and
//! migrate the database, start the service's components, build the user's service, start its
//! hosts, stop gracefully.
//!
//! [`Launcher::run`] owns the tokio runtime and the signals and returns the process exit code;
//! [`Launcher::start`] does the same start-up inside an existing runtime and hands back a
//! [`RunningService`], which is how tests run a service in-process on port 0.
//!
//! What a service runs is a list of [`Component`]s (messaging, idempotency, metrics, …) and of
//! [`Host`]s (the HTTP host every service has; a bus consumer or a scheduler for the
//! archetypes that need one): see [`crate::component`]. The pattern methods below
//! (`outbox`, `idempotency`, `metrics`, …) each add a component; the launcher itself knows
//! none of them.

use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::component::{Component, Host, Hosted, Startup};
use crate::context::{App, Ctx, Limits};
use crate::database::{Database, DatabaseTarget};
use crate::env::Environment;
use crate::error::RuntimeError;
#[cfg(feature = "grpc")]
pub use crate::http_host::GrpcRoutesFn;
use crate::http_host::HttpHost;
use crate::idempotency::{IdempotencyComponent, IdempotencySettings};
use crate::messaging::{MessagingComponent, MessagingPlan, OutboxSettings};
use crate::metrics::{MetricsComponent, MetricsSettings};
use crate::settings::{EmbeddedMigration, ServiceSettings};
use crate::shutdown::{self, RunningService, Sequence, Signals};
use crate::tasks::TaskRegistry;
use crate::telemetry::TracingSettings;
use crate::{RestApi, Service, deferred, telemetry};

/// The variable overriding the REST port.
pub const PORT: &str = allframe_env::PORT.name;
/// The variable overriding the gRPC port.
pub const GRPC_PORT: &str = allframe_env::GRPC_PORT.name;
/// The variable overriding the address servers bind to (default `0.0.0.0`).
pub const ALLFRAME_BIND_ADDR: &str = allframe_env::ALLFRAME_BIND_ADDR.name;
/// The largest gRPC message accepted by default: 4 MiB, tonic's own default.
pub const DEFAULT_GRPC_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Implemented by `#[allframe::service]` for the user's struct: the launcher its `main()` runs,
/// with every pattern the file declares wired. [`crate::testing`] starts the same launcher
/// in-process, so a test runs the service exactly as the binary does.
pub trait Launch: Sized {
    /// The launcher, reading the process environment (tests replace it with
    /// [`Launcher::env`]).
    fn launcher() -> Launcher<Self>;
}

/// Starts a service: `Launcher::<S>::new(&SETTINGS).migrations(M).run()`.
pub struct Launcher<S> {
    settings: &'static ServiceSettings,
    migrations: &'static [EmbeddedMigration],
    env: Environment,
    tenant_header: Option<&'static str>,
    tracing: Option<TracingSettings>,
    components: Vec<Box<dyn Component>>,
    http: HttpHost<S>,
    hosts: Vec<Box<dyn Host<S>>>,
}

impl<S: 'static> std::fmt::Debug for Launcher<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let components: Vec<&str> = self.components.iter().map(|c| c.name()).collect();
        let hosts: Vec<&str> = self.hosts.iter().map(|h| h.name()).collect();
        f.debug_struct("Launcher")
            .field("service", &self.settings.name)
            .field("migrations", &self.migrations.len())
            .field("env", &self.env)
            .field("components", &components)
            .field("http", &self.http)
            .field("hosts", &hosts)
            .finish_non_exhaustive()
    }
}

/// Settings of the whole process decided from the environment before anything starts.
#[derive(Debug)]
struct RunConfig {
    shutdown_timeout: Duration,
    /// The readiness propagation delay before the listeners close.
    shutdown_delay: Duration,
    /// The largest gRPC message accepted.
    grpc_max_message_bytes: usize,
    database: DatabaseTarget,
}

impl RunConfig {
    fn from_env(
        settings: &'static ServiceSettings,
        env: &Environment,
    ) -> Result<Self, RuntimeError> {
        use allframe_env as vars;
        let shutdown_timeout = env
            .parsed(vars::ALLFRAME_SHUTDOWN_TIMEOUT_SECS, vars::Var::seconds)?
            .unwrap_or(Duration::from_secs(settings.shutdown_timeout_secs));
        let shutdown_delay = env
            .parsed(vars::ALLFRAME_SHUTDOWN_DELAY_SECS, vars::Var::seconds)?
            .unwrap_or_default();
        let grpc_max_message_bytes = env
            .parsed(vars::ALLFRAME_GRPC_MAX_MESSAGE_BYTES, vars::Var::bytes)?
            .unwrap_or(DEFAULT_GRPC_MAX_MESSAGE_BYTES);
        Ok(Self {
            shutdown_timeout,
            shutdown_delay,
            grpc_max_message_bytes,
            database: DatabaseTarget::from_env(env, settings.name)?,
        })
    }
}

impl<S> Launcher<S> {
    /// A launcher for the service described by `settings`, reading the process environment;
    /// it serves over HTTP (REST and health; gRPC with [`Launcher::grpc`]).
    pub fn new(settings: &'static ServiceSettings) -> Self
    where
        S: Service,
    {
        Self {
            settings,
            migrations: &[],
            env: Environment::process(),
            tenant_header: None,
            tracing: None,
            components: Vec::new(),
            http: HttpHost::default(),
            hosts: Vec::new(),
        }
    }

    /// The SQL migrations to apply at start-up.
    pub fn migrations(mut self, migrations: &'static [EmbeddedMigration]) -> Self {
        self.migrations = migrations;
        self
    }

    /// Adds `component`, started in the order added, before the user's `init`; one of the
    /// same name added earlier is replaced.
    pub fn component(mut self, component: impl Component) -> Self {
        let name = component.name();
        self.components.retain(|c| c.name() != name);
        self.components.push(Box::new(component));
        self
    }

    /// Adds `host`, started after the HTTP host once the user's value is built.
    pub fn host(mut self, host: impl Host<S>) -> Self {
        self.hosts.push(Box::new(host));
        self
    }

    /// Without the `grpc` feature, registering gRPC routes is a compile error (raised by the
    /// bound of [`crate::__private::grpc_routes`]) that says to enable the feature.
    #[cfg(not(feature = "grpc"))]
    pub fn grpc(self, routes: fn(&App<S>) -> crate::__private::GrpcDisabled) -> Self {
        let _ = routes;
        self
    }

    /// Serves gRPC with the routes `routes` builds, on `GRPC_PORT` or the file's gRPC port.
    #[cfg(feature = "grpc")]
    pub fn grpc(mut self, routes: GrpcRoutesFn<S>) -> Self {
        self.http.grpc(routes);
        self
    }

    /// Protects the REST routes with idempotency keys (`[services.idempotency] enabled = true`):
    /// the idempotency component opens the store at start-up, the HTTP host wraps every route.
    pub fn idempotency(self, settings: IdempotencySettings) -> Self {
        self.component(IdempotencyComponent { settings })
    }

    /// Publishes through the transactional outbox (`[services.messaging] pattern = "outbox"`):
    /// the messaging component opens the event bus (`EVENT_BUS_URL`), creates the outbox
    /// tables and runs the relay as a background task until shutdown.
    pub fn outbox(self, settings: OutboxSettings) -> Self {
        self.component(MessagingComponent {
            plan: MessagingPlan::Outbox(settings),
        })
    }

    /// Handles the events `[services.consumer]` names (`type = "consumer"`): the consumer
    /// component creates the inbox and dead letter tables and opens the bus (the publishing
    /// one, or `EVENT_BUS_URL`); once the service is built, the consumer host runs the
    /// service's [`crate::consumer::Consume`] over the topics until shutdown. Add it after the
    /// messaging pattern, so that handlers publish through it.
    pub fn consumer(self, settings: crate::consumer::ConsumerSettings) -> Self
    where
        S: crate::consumer::Consume,
    {
        self.component(crate::consumer::ConsumerComponent)
            .host(crate::consumer::ConsumerHost { settings })
    }

    /// Publishes right after commit, without an outbox (`pattern = "direct"`).
    pub fn direct_publish(self) -> Self {
        self.component(MessagingComponent {
            plan: MessagingPlan::Direct,
        })
    }

    /// Publishes through the bus's own transactions (`pattern = "transactional"`): each unit
    /// of work's events go into a bus transaction committed right after the database commit,
    /// aborted when it fails. Needs Kafka (`EVENT_BUS_URL=kafka://…`) or the local bus; with
    /// NATS or RabbitMQ the service refuses to start.
    pub fn transactional_publish(self) -> Self {
        self.component(MessagingComponent {
            plan: MessagingPlan::Transactional,
        })
    }

    /// Tenancy is on: events carry the tenant id read from this request header, and
    /// idempotency keys are scoped per tenant id from it.
    pub fn tenant_header(mut self, header: &'static str) -> Self {
        self.tenant_header = Some(header);
        self
    }

    /// Exports spans with OpenTelemetry (`[observability] tracing = "opentelemetry"`, feature
    /// `otel`): over OTLP/gRPC to `OTEL_EXPORTER_OTLP_ENDPOINT`, requests continuing the
    /// caller's trace, events carrying the request span's context. Without the feature the
    /// service starts and says at start-up that nothing is exported.
    pub fn tracing(mut self, settings: TracingSettings) -> Self {
        self.tracing = Some(settings);
        self
    }

    /// Serves Prometheus metrics (`[observability] metrics = "prometheus"`): `/metrics` on the
    /// REST port, or on a port of its own when `settings.port` or `METRICS_PORT` gives one.
    pub fn metrics(mut self, settings: MetricsSettings) -> Self {
        self.http.metrics(settings);
        self.component(MetricsComponent)
    }

    /// Limits incoming REST requests (`[resilience] bulkhead` / `rate_limit`, or the service's
    /// own tables): the rate limit answers 429 and the bulkhead 503, both with `Retry-After`.
    /// Health and metrics routes are not limited.
    pub fn limits(self, limits: crate::resilience::InboundLimits) -> Self {
        self.component(crate::resilience::LimitsComponent { limits })
    }

    /// Calls external providers (`type = "gateway"`, `[services.integrations]`): the gateway
    /// component builds one client per provider at its `<NAME>_URL`, behind the service's
    /// breaker, retry and timeout, and leaves them in the context as
    /// [`crate::gateway::Providers`]. Add it after [`Launcher::metrics`] so the breakers are
    /// exported.
    #[cfg(feature = "gateway")]
    pub fn gateway(self, settings: crate::gateway::GatewaySettings) -> Self {
        self.component(crate::gateway::GatewayComponent { settings })
    }

    /// Orchestrates the saga of `[services.saga]` (`type = "saga-orchestrator"`): the saga
    /// tables in the service's database, [`crate::saga::Sagas`] in the context, and a driver
    /// that runs the sagas this instance starts and takes over those of instances that died.
    /// When steps await replies (`[services.saga.replies]`), it consumes the reply events
    /// too, with the consumer's inbox and dead letters. Add it after the messaging component,
    /// so steps can publish through the outbox.
    pub fn saga(self, settings: crate::saga::SagaSettings) -> Self
    where
        S: crate::saga::Orchestrate,
    {
        let launcher = if settings.awaits_replies() {
            self.component(crate::consumer::ConsumerComponent)
        } else {
            self
        };
        launcher
            .component(crate::saga::SagaComponent { settings })
            .host(crate::saga::SagaHost)
    }

    /// Keeps its aggregates' events in the service's database (`type = "event-sourced"`,
    /// `[services.cqrs]`): the component opens [`crate::eventstore::EventStore`] and the
    /// [`crate::eventstore::Projections`] `projections` returns, leaves them in the context
    /// with `settings`, and keeps the projections caught up until shutdown; with
    /// `ALLFRAME_ADMIN_TOKEN` set, the admin API lists them and rebuilds one. Add it after the
    /// messaging component, so appends publish through the outbox.
    pub fn event_sourced(
        self,
        settings: crate::eventstore::EventSourcedSettings,
        projections: fn() -> Vec<std::sync::Arc<dyn crate::eventstore::Projection>>,
    ) -> Self
    where
        S: Send + Sync + 'static,
    {
        self.component(crate::eventstore::EventSourcedComponent {
            settings,
            projections,
        })
        .host(crate::eventstore::EventSourcedHost)
    }

    /// Caches what the service's source holds (`type = "cache"`, `[services.cache]`): the
    /// cache component opens the engine (Redis with `REDIS_URL`, else embedded), the source
    /// and the [`crate::cache::Cache`], leaves it in the context
    /// ([`crate::cache::cache_of`]) and stores write-behind's pending writes on shutdown;
    /// once the service is built, every instance evicts what the `invalidation` events make
    /// stale. Add it after [`Launcher::metrics`] so its counters are exported.
    #[cfg(feature = "cache")]
    pub fn cache(self, settings: crate::cache::CacheServiceSettings) -> Self
    where
        S: crate::cache::CacheService,
    {
        self.component(crate::cache::CacheComponent::<S> {
            settings,
            service: std::marker::PhantomData,
        })
        .host(crate::cache::InvalidationHost { settings })
    }

    /// Reads variables from `env` instead of the process environment (for tests).
    pub fn env(mut self, env: Environment) -> Self {
        self.env = env;
        self
    }

    /// Builds a tokio runtime, starts the service, serves until SIGTERM or SIGINT, shuts down
    /// gracefully and returns the exit code: 0 after a clean shutdown, 1 when start-up failed
    /// or the drain deadline forced work to be aborted.
    pub fn run(self) -> ExitCode
    where
        S: RestApi,
    {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                report_startup_error(&RuntimeError::AsyncRuntime(error));
                return ExitCode::FAILURE;
            }
        };
        let code = runtime.block_on(async move {
            let signals = Signals::install();
            match self.start().await {
                Err(error) => {
                    report_startup_error(&error);
                    ExitCode::FAILURE
                }
                Ok(running) => {
                    let handle = running.shutdown_handle();
                    tokio::spawn(async move {
                        let signal = signals.recv().await;
                        tracing::info!(signal, "shutdown requested");
                        handle.trigger();
                    });
                    running.wait().await.exit_code()
                }
            }
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
        code
    }

    /// Starts the service inside the current tokio runtime and returns once it is serving.
    /// Nothing listens for signals: trigger shutdown through the returned handle.
    pub async fn start(self) -> Result<RunningService, RuntimeError>
    where
        S: RestApi,
    {
        let settings = self.settings;
        let config = RunConfig::from_env(settings, &self.env)?;
        let listeners = self.http.listeners(settings, &self.env)?;
        let (_, span_export) = telemetry::install(
            settings.logging,
            &self.env,
            self.tracing
                .as_ref()
                .map(|tracing| (tracing, settings.name)),
        )?;
        let values = deferred::resolve(settings.deferred, &self.env)?;
        tracing::info!(
            service = settings.name,
            architecture = settings.architecture,
            archetype = settings.archetype,
            "starting"
        );

        let db = Database::connect(&config.database).await?;
        tracing::info!(
            backend = %db.backend(),
            url = %config.database,
            declared = settings.declared_database,
            "database connected"
        );
        if let Err(error) = db.migrate(self.migrations).await {
            db.close().await;
            return Err(error.into());
        }
        tracing::info!(embedded = self.migrations.len(), "migrations up to date");

        let shutdown = CancellationToken::new();
        let tasks = TaskRegistry::new();
        let ctx = Ctx::new(
            settings,
            db.clone(),
            values,
            tasks.clone(),
            shutdown.clone(),
            Limits {
                grpc_max_message_bytes: config.grpc_max_message_bytes,
            },
        );
        let mut startup = Startup::new(ctx.clone(), self.env.clone(), self.tenant_header);
        let hosted = match self.boot(&mut startup, listeners).await {
            Ok(hosted) => hosted,
            Err(error) => {
                // Undo what start-up began: tasks components and `init` spawned, the pool.
                shutdown.cancel();
                tasks.stop(tokio::time::Instant::now()).await;
                db.close().await;
                return Err(error);
            }
        };
        let running = RunningService {
            rest_addr: hosted.addr("rest").unwrap_or(listeners.rest),
            grpc_addr: hosted.addr("grpc"),
            metrics_addr: hosted.addr("metrics"),
            ctx: ctx.clone(),
            shutdown: shutdown.clone(),
            done: tokio::spawn(shutdown::run(Sequence {
                shutdown,
                drain: startup.drain(),
                abort: startup.abort(),
                servers: hosted.servers,
                on_shutdown: hosted.on_shutdown,
                tasks: ctx.tasks().clone(),
                db: ctx.db().clone(),
                delay: config.shutdown_delay,
                timeout: config.shutdown_timeout,
                span_export,
            })),
        };
        tracing::info!(service = settings.name, "ready");
        Ok(running)
    }

    /// Starts the components, the user's service, then the hosts.
    async fn boot(
        self,
        startup: &mut Startup,
        listeners: crate::http_host::Listeners,
    ) -> Result<Hosted, RuntimeError>
    where
        S: RestApi,
    {
        let name = self.settings.name;
        for component in self.components {
            startup.start(component).await?;
        }
        startup.freeze();
        let ctx = startup.ctx().clone();
        let service = S::init(&ctx).await.map_err(|source| RuntimeError::Init {
            service: name,
            source,
        })?;
        let app = App::new(service, ctx);
        let mut hosted = self.http.serve(&app, startup, listeners).await?;
        for host in self.hosts {
            hosted.extend(host.start(&app, startup).await?);
        }
        Ok(hosted)
    }
}

/// Logs a start-up failure (to stderr when logging is not set up yet).
fn report_startup_error(error: &RuntimeError) {
    if tracing::dispatcher::has_been_set() {
        tracing::error!(error = %error, "start-up failed");
    } else {
        eprintln!("error: start-up failed: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_host::Listeners;
    use crate::settings::LogFormat;
    use crate::shutdown::{ALLFRAME_SHUTDOWN_DELAY_SECS, ALLFRAME_SHUTDOWN_TIMEOUT_SECS};

    const ALLFRAME_GRPC_MAX_MESSAGE_BYTES: &str =
        allframe_env::ALLFRAME_GRPC_MAX_MESSAGE_BYTES.name;

    static SETTINGS: ServiceSettings = ServiceSettings {
        architecture: "shop",
        name: "user-service",
        archetype: "stateless",
        rest_port: 8080,
        grpc_port: Some(9090),
        logging: LogFormat::Plain,
        declared_database: "postgres",
        shutdown_timeout_secs: 30,
        deferred: &[],
    };

    /// The process settings and the HTTP listeners `pairs` give.
    #[derive(Debug)]
    struct Both {
        run: RunConfig,
        listeners: Listeners,
    }

    fn config(pairs: &[(&str, &str)], grpc: bool) -> Result<Both, RuntimeError> {
        let temp = std::env::temp_dir().join("allframe-runtime-launcher-tests");
        let mut all: Vec<(String, String)> = vec![(
            crate::database::ALLFRAME_DATA_DIR.to_owned(),
            temp.to_string_lossy().into_owned(),
        )];
        all.extend(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let env = Environment::from_pairs(all);
        Ok(Both {
            listeners: Listeners::from_env(&SETTINGS, &env, grpc, None)?,
            run: RunConfig::from_env(&SETTINGS, &env)?,
        })
    }

    #[test]
    #[cfg(feature = "sqlite")]
    fn ports_come_from_the_file_unless_overridden() {
        let defaults = config(&[], true).expect("defaults");
        assert_eq!(
            defaults.listeners.rest,
            "0.0.0.0:8080".parse().expect("addr")
        );
        assert_eq!(
            defaults.listeners.grpc,
            Some("0.0.0.0:9090".parse().expect("addr"))
        );
        assert_eq!(defaults.run.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(
            defaults.run.shutdown_delay,
            Duration::ZERO,
            "Ctrl-C stays instant"
        );

        let overridden = config(
            &[
                (PORT, "3000"),
                (GRPC_PORT, "0"),
                (ALLFRAME_BIND_ADDR, "127.0.0.1"),
                (ALLFRAME_SHUTDOWN_TIMEOUT_SECS, "5"),
                (ALLFRAME_SHUTDOWN_DELAY_SECS, "7"),
                (ALLFRAME_GRPC_MAX_MESSAGE_BYTES, "1024"),
            ],
            true,
        )
        .expect("overrides");
        assert_eq!(
            overridden.listeners.rest,
            "127.0.0.1:3000".parse().expect("addr")
        );
        assert_eq!(
            overridden.listeners.grpc,
            Some("127.0.0.1:0".parse().expect("addr"))
        );
        assert_eq!(overridden.run.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(overridden.run.shutdown_delay, Duration::from_secs(7));
        assert_eq!(overridden.run.grpc_max_message_bytes, 1024);
        assert_eq!(config(&[], false).expect("no grpc").listeners.grpc, None);
    }

    #[test]
    fn invalid_values_are_typed_errors_naming_the_variable() {
        for (var, value) in [
            (PORT, "http"),
            (PORT, "70000"),
            (GRPC_PORT, "-1"),
            (ALLFRAME_SHUTDOWN_TIMEOUT_SECS, "soon"),
            (ALLFRAME_SHUTDOWN_DELAY_SECS, "5s"),
            (ALLFRAME_SHUTDOWN_DELAY_SECS, "-1"),
            (ALLFRAME_GRPC_MAX_MESSAGE_BYTES, "0"),
            (ALLFRAME_GRPC_MAX_MESSAGE_BYTES, "4MiB"),
            (ALLFRAME_BIND_ADDR, "localhost"),
        ] {
            match config(&[(var, value)], true) {
                Err(RuntimeError::InvalidEnv {
                    var: named,
                    value: found,
                    ..
                }) => {
                    assert_eq!(named, var);
                    assert_eq!(found, value);
                }
                other => panic!("{var}={value}: expected InvalidEnv, got {other:?}"),
            }
        }
        let message = config(&[(PORT, "http")], false)
            .expect_err("bad port")
            .to_string();
        assert!(message.contains("PORT"), "{message}");
    }
}
