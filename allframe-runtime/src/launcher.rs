//! The entry point generated `main()` calls: read the environment, set up logging, open and
//! migrate the database, build the user's service, serve REST (and gRPC), stop gracefully.
//!
//! [`Launcher::run`] owns the tokio runtime and the signals and returns the process exit code;
//! [`Launcher::start`] does the same start-up inside an existing runtime and hands back a
//! [`RunningService`], which is how tests run a service in-process on port 0.

use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::context::{App, Ctx, Limits};
use crate::database::{Database, DatabaseTarget};
use crate::env::Environment;
use crate::error::RuntimeError;
use crate::idempotency::{self, IdempotencySettings};
use crate::messaging::{self, MessagingPlan, OutboxSettings};
use crate::metrics::{Metrics, MetricsSettings};
use crate::settings::{EmbeddedMigration, ServiceSettings};
use crate::shutdown::{self, RunningService, Sequence, Signals};
use crate::tasks::TaskRegistry;
use crate::telemetry::TracingSettings;
use crate::{RestApi, Service, deferred, rest, server, telemetry};

/// The variable overriding the REST port.
pub const PORT: &str = allframe_env::PORT.name;
/// The variable overriding the gRPC port.
pub const GRPC_PORT: &str = allframe_env::GRPC_PORT.name;
/// The variable overriding the address servers bind to (default `0.0.0.0`).
pub const ALLFRAME_BIND_ADDR: &str = allframe_env::ALLFRAME_BIND_ADDR.name;
/// The largest gRPC message accepted by default: 4 MiB, tonic's own default.
pub const DEFAULT_GRPC_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// A function building a service's gRPC routes (see [`crate::__private::grpc_routes`]).
#[cfg(feature = "grpc")]
pub type GrpcRoutesFn<S> = fn(&App<S>) -> tonic::service::Routes;

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
    #[cfg(feature = "grpc")]
    grpc: Option<GrpcRoutesFn<S>>,
    idempotency: Option<IdempotencySettings>,
    messaging: Option<MessagingPlan>,
    tenant_header: Option<&'static str>,
    metrics: Option<MetricsSettings>,
    tracing: Option<TracingSettings>,
    service: PhantomData<fn() -> S>,
}

impl<S> std::fmt::Debug for Launcher<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launcher")
            .field("service", &self.settings.name)
            .field("migrations", &self.migrations.len())
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

/// Settings decided from the environment at start-up.
#[derive(Debug)]
struct RunConfig {
    rest_addr: SocketAddr,
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    grpc_addr: Option<SocketAddr>,
    /// A listener of its own for `/metrics`; `None` serves it on the REST port.
    metrics_addr: Option<SocketAddr>,
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
        grpc: bool,
        metrics: Option<MetricsSettings>,
    ) -> Result<Self, RuntimeError> {
        use allframe_env as vars;
        let ip = parsed(env, vars::ALLFRAME_BIND_ADDR, vars::Var::ip_addr)?
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let rest_port = parsed(env, vars::PORT, vars::Var::port)?.unwrap_or(settings.rest_port);
        let grpc_addr = if grpc {
            let grpc_port = parsed(env, vars::GRPC_PORT, vars::Var::port)?
                .or(settings.grpc_port)
                .ok_or(RuntimeError::MissingGrpcPort {
                    service: settings.name,
                })?;
            Some(SocketAddr::new(ip, grpc_port))
        } else {
            None
        };
        let metrics_addr = match metrics {
            Some(metrics) => parsed(env, vars::METRICS_PORT, vars::Var::port)?
                .or(metrics.port)
                .map(|port| SocketAddr::new(ip, port)),
            None => None,
        };
        let shutdown_timeout = parsed(
            env,
            vars::ALLFRAME_SHUTDOWN_TIMEOUT_SECS,
            vars::Var::seconds,
        )?
        .unwrap_or(Duration::from_secs(settings.shutdown_timeout_secs));
        let shutdown_delay = parsed(env, vars::ALLFRAME_SHUTDOWN_DELAY_SECS, vars::Var::seconds)?
            .unwrap_or_default();
        let grpc_max_message_bytes =
            parsed(env, vars::ALLFRAME_GRPC_MAX_MESSAGE_BYTES, vars::Var::bytes)?
                .unwrap_or(DEFAULT_GRPC_MAX_MESSAGE_BYTES);
        Ok(Self {
            rest_addr: SocketAddr::new(ip, rest_port),
            grpc_addr,
            metrics_addr,
            shutdown_timeout,
            shutdown_delay,
            grpc_max_message_bytes,
            database: DatabaseTarget::from_env(env, settings.name)?,
        })
    }
}

/// `var`'s value parsed by `parse` (a parser of the contract), when set and not blank.
fn parsed<T>(
    env: &Environment,
    var: allframe_env::Var,
    parse: fn(&allframe_env::Var, &str) -> Result<T, allframe_env::Invalid>,
) -> Result<Option<T>, RuntimeError> {
    env.get_non_empty(var.name)
        .map(|value| parse(&var, &value))
        .transpose()
        .map_err(RuntimeError::from)
}

impl<S> Launcher<S> {
    /// A launcher for the service described by `settings`, reading the process environment.
    pub fn new(settings: &'static ServiceSettings) -> Self
    where
        S: Service,
    {
        Self {
            settings,
            migrations: &[],
            env: Environment::process(),
            #[cfg(feature = "grpc")]
            grpc: None,
            idempotency: None,
            messaging: None,
            tenant_header: None,
            metrics: None,
            tracing: None,
            service: PhantomData,
        }
    }

    /// The SQL migrations to apply at start-up.
    pub fn migrations(mut self, migrations: &'static [EmbeddedMigration]) -> Self {
        self.migrations = migrations;
        self
    }

    /// Without the `grpc` feature, registering gRPC routes is a compile error (raised by the
    /// bound of [`crate::__private::grpc_routes`]) that says to enable the feature.
    #[cfg(not(feature = "grpc"))]
    pub fn grpc(self, routes: fn(&App<S>) -> crate::__private::GrpcDisabled) -> Self {
        let _ = routes;
        self
    }

    /// Protects the REST routes with idempotency keys (`[services.idempotency] enabled = true`):
    /// the store is opened at start-up and the layer wraps every route.
    pub fn idempotency(mut self, settings: IdempotencySettings) -> Self {
        self.idempotency = Some(settings);
        self
    }

    /// Publishes through the transactional outbox (`[services.messaging] pattern = "outbox"`):
    /// opens the event bus (`EVENT_BUS_URL`), creates the outbox tables and runs the relay as
    /// a background task until shutdown.
    pub fn outbox(mut self, settings: OutboxSettings) -> Self {
        self.messaging = Some(MessagingPlan::Outbox(settings));
        self
    }

    /// Publishes right after commit, without an outbox (`pattern = "direct"`).
    pub fn direct_publish(mut self) -> Self {
        self.messaging = Some(MessagingPlan::Direct);
        self
    }

    /// Publishes through the bus's own transactions (`pattern = "transactional"`): each unit
    /// of work's events go into a bus transaction committed right after the database commit,
    /// aborted when it fails. Needs Kafka (`EVENT_BUS_URL=kafka://…`) or the local bus; with
    /// NATS or RabbitMQ the service refuses to start.
    pub fn transactional_publish(mut self) -> Self {
        self.messaging = Some(MessagingPlan::Transactional);
        self
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
        self.metrics = Some(settings);
        self
    }

    /// Reads variables from `env` instead of the process environment (for tests).
    pub fn env(mut self, env: Environment) -> Self {
        self.env = env;
        self
    }

    /// Serves gRPC with the routes `routes` builds, on `GRPC_PORT` or the file's gRPC port.
    #[cfg(feature = "grpc")]
    pub fn grpc(mut self, routes: GrpcRoutesFn<S>) -> Self {
        self.grpc = Some(routes);
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
        let config = RunConfig::from_env(settings, &self.env, self.has_grpc(), self.metrics)?;
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
        match self
            .serve(config, ctx.clone(), shutdown.clone(), span_export)
            .await
        {
            Ok(running) => Ok(running),
            Err(error) => {
                // Undo what start-up began: tasks `init` spawned, the pool.
                shutdown.cancel();
                tasks.stop(tokio::time::Instant::now()).await;
                db.close().await;
                Err(error)
            }
        }
    }

    fn has_grpc(&self) -> bool {
        #[cfg(feature = "grpc")]
        {
            self.grpc.is_some()
        }
        #[cfg(not(feature = "grpc"))]
        {
            false
        }
    }

    async fn serve(
        self,
        config: RunConfig,
        ctx: Ctx,
        shutdown: CancellationToken,
        span_export: Option<telemetry::SpanExport>,
    ) -> Result<RunningService, RuntimeError>
    where
        S: RestApi,
    {
        let settings = self.settings;
        if let Some(plan) = self.messaging {
            messaging::launch(&ctx, plan, self.tenant_header, &self.env)
                .await
                .map_err(|error| RuntimeError::Init {
                    service: settings.name,
                    source: Box::new(error),
                })?;
        }
        let service = S::init(&ctx).await.map_err(|source| RuntimeError::Init {
            service: settings.name,
            source,
        })?;
        let app = App::new(service, ctx.clone());
        let idempotency = match &self.idempotency {
            Some(settings) => {
                Some(idempotency::start(settings, &self.env, &ctx, self.tenant_header).await?)
            }
            None => None,
        };
        let metrics = self.metrics.map(|_| Metrics::new(&ctx));
        let idempotency = match (idempotency, &metrics) {
            (Some(layer), Some(metrics)) => {
                let metrics = metrics.clone();
                Some(layer.observe(move |outcome| metrics.count_idempotency(outcome)))
            }
            (layer, _) => layer,
        };
        // Servers stop accepting when `drain` fires (after the propagation delay), and abort
        // what is still in flight when `abort` fires (at the drain deadline).
        let drain = CancellationToken::new();
        let abort = CancellationToken::new();

        let rest_listener = server::bind("rest", config.rest_addr).await?;
        let metrics_server = match (&metrics, config.metrics_addr) {
            (Some(metrics), Some(addr)) => Some(server::spawn(
                "metrics",
                server::bind("metrics", addr).await?,
                rest::problems_for_bare_errors(metrics.router()),
                drain.clone(),
                abort.clone(),
            )?),
            _ => None,
        };
        let endpoint_on_rest = config.metrics_addr.is_none();
        #[cfg(feature = "grpc")]
        let grpc = match (self.grpc, config.grpc_addr) {
            (Some(routes), Some(addr)) => {
                let listener = server::bind("grpc", addr).await?;
                let (router, health) =
                    crate::grpc_server::router(routes(&app), config.grpc_max_message_bytes).await;
                Some((listener, router, health))
            }
            _ => None,
        };

        let rest = server::spawn(
            "rest",
            rest_listener,
            rest::router(&app, idempotency, metrics.as_ref(), endpoint_on_rest),
            drain.clone(),
            abort.clone(),
        )?;
        #[cfg(feature = "grpc")]
        let (grpc_server, grpc_health) = match grpc {
            Some((listener, router, health)) => (
                Some(server::spawn(
                    "grpc",
                    listener,
                    router,
                    drain.clone(),
                    abort.clone(),
                )?),
                Some(health),
            ),
            None => (None, None),
        };
        #[cfg(not(feature = "grpc"))]
        let grpc_server: Option<server::Server> = None;
        let rest_addr = rest.addr;
        let grpc_addr = grpc_server.as_ref().map(|grpc| grpc.addr);
        let metrics_addr = metrics_server.as_ref().map(|server| server.addr);
        let servers = std::iter::once(rest)
            .chain(grpc_server)
            .chain(metrics_server)
            .collect();

        let done = tokio::spawn(shutdown::run(Sequence {
            shutdown: shutdown.clone(),
            drain,
            abort,
            servers,
            tasks: ctx.tasks().clone(),
            db: ctx.db().clone(),
            delay: config.shutdown_delay,
            timeout: config.shutdown_timeout,
            #[cfg(feature = "grpc")]
            grpc_health,
            span_export,
        }));
        tracing::info!(service = settings.name, "ready");
        Ok(RunningService {
            rest_addr,
            grpc_addr,
            metrics_addr,
            ctx,
            shutdown,
            done,
        })
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

    fn config(pairs: &[(&str, &str)], grpc: bool) -> Result<RunConfig, RuntimeError> {
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
        RunConfig::from_env(&SETTINGS, &Environment::from_pairs(all), grpc, None)
    }

    #[test]
    #[cfg(feature = "sqlite")]
    fn ports_come_from_the_file_unless_overridden() {
        let defaults = config(&[], true).expect("defaults");
        assert_eq!(defaults.rest_addr, "0.0.0.0:8080".parse().expect("addr"));
        assert_eq!(
            defaults.grpc_addr,
            Some("0.0.0.0:9090".parse().expect("addr"))
        );
        assert_eq!(defaults.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(
            defaults.shutdown_delay,
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
            overridden.rest_addr,
            "127.0.0.1:3000".parse().expect("addr")
        );
        assert_eq!(
            overridden.grpc_addr,
            Some("127.0.0.1:0".parse().expect("addr"))
        );
        assert_eq!(overridden.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(overridden.shutdown_delay, Duration::from_secs(7));
        assert_eq!(overridden.grpc_max_message_bytes, 1024);
        assert_eq!(config(&[], false).expect("no grpc").grpc_addr, None);
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
