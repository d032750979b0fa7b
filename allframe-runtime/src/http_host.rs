//! The HTTP host every service has: REST (the user's routes, health, and `/metrics` unless it
//! has a port of its own), gRPC when the file lists it, and the metrics listener. It reads
//! what components left in the [`Startup`]: the idempotency layer wraps the REST routes, the
//! metrics count every request.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::component::{BoxFuture, Host, Hosted, Startup};
use crate::context::App;
use crate::env::Environment;
use crate::error::RuntimeError;
use crate::idempotency::IdempotencyLayer;
use crate::metrics::{Metrics, MetricsSettings};
use crate::resilience::InboundLimitsLayer;
use crate::settings::ServiceSettings;
use crate::{RestApi, rest, server};

/// A function building a service's gRPC routes (see [`crate::__private::grpc_routes`]).
#[cfg(feature = "grpc")]
pub type GrpcRoutesFn<S> = fn(&App<S>) -> tonic::service::Routes;

/// Serves a service over HTTP: REST always, gRPC with [`HttpHost::grpc`].
pub struct HttpHost<S> {
    #[cfg(feature = "grpc")]
    grpc: Option<GrpcRoutesFn<S>>,
    metrics: Option<MetricsSettings>,
    service: std::marker::PhantomData<fn() -> S>,
}

impl<S> Default for HttpHost<S> {
    fn default() -> Self {
        Self {
            #[cfg(feature = "grpc")]
            grpc: None,
            metrics: None,
            service: std::marker::PhantomData,
        }
    }
}

impl<S> std::fmt::Debug for HttpHost<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpHost")
            .field("grpc", &self.has_grpc())
            .finish()
    }
}

impl<S> HttpHost<S> {
    /// Serves gRPC with the routes `routes` builds, on `GRPC_PORT` or the file's gRPC port.
    #[cfg(feature = "grpc")]
    pub(crate) fn grpc(&mut self, routes: GrpcRoutesFn<S>) {
        self.grpc = Some(routes);
    }

    /// Serves `/metrics` (on a port of its own when `settings.port` or `METRICS_PORT` says),
    /// from the registry the metrics component puts in the context.
    pub(crate) fn metrics(&mut self, settings: MetricsSettings) {
        self.metrics = Some(settings);
    }

    /// The listeners' addresses from the environment and the file.
    pub(crate) fn listeners(
        &self,
        settings: &'static ServiceSettings,
        env: &Environment,
    ) -> Result<Listeners, RuntimeError> {
        Listeners::from_env(settings, env, self.has_grpc(), self.metrics)
    }

    /// Whether gRPC is served.
    pub(crate) fn has_grpc(&self) -> bool {
        #[cfg(feature = "grpc")]
        {
            self.grpc.is_some()
        }
        #[cfg(not(feature = "grpc"))]
        {
            false
        }
    }
}

/// The listeners' addresses, decided from the environment before anything starts (a bad
/// `PORT` fails start-up before the database is opened).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listeners {
    pub(crate) rest: SocketAddr,
    pub(crate) grpc: Option<SocketAddr>,
    /// A listener of its own for `/metrics`; `None` serves it on the REST port.
    pub(crate) metrics: Option<SocketAddr>,
}

impl Listeners {
    /// `ALLFRAME_BIND_ADDR`, `PORT`, `GRPC_PORT` (when `grpc`) and `METRICS_PORT` (when
    /// `metrics`), each falling back to the file.
    pub(crate) fn from_env(
        settings: &'static ServiceSettings,
        env: &Environment,
        grpc: bool,
        metrics: Option<MetricsSettings>,
    ) -> Result<Self, RuntimeError> {
        use allframe_env as vars;
        let ip = env
            .parsed(vars::ALLFRAME_BIND_ADDR, vars::Var::ip_addr)?
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let rest_port = env
            .parsed(vars::PORT, vars::Var::port)?
            .unwrap_or(settings.rest_port);
        let grpc = if grpc {
            let port = env
                .parsed(vars::GRPC_PORT, vars::Var::port)?
                .or(settings.grpc_port)
                .ok_or(RuntimeError::MissingGrpcPort {
                    service: settings.name,
                })?;
            Some(SocketAddr::new(ip, port))
        } else {
            None
        };
        let metrics = match metrics {
            Some(metrics) => env
                .parsed(vars::METRICS_PORT, vars::Var::port)?
                .or(metrics.port)
                .map(|port| SocketAddr::new(ip, port)),
            None => None,
        };
        Ok(Self {
            rest: SocketAddr::new(ip, rest_port),
            grpc,
            metrics,
        })
    }
}

impl<S: RestApi> HttpHost<S> {
    /// Binds `listeners` and serves `app` on them.
    pub(crate) async fn serve(
        self,
        app: &App<S>,
        startup: &Startup,
        listeners: Listeners,
    ) -> Result<Hosted, RuntimeError> {
        let metrics = startup.get::<Metrics>();
        let idempotency = startup.get::<IdempotencyLayer>().cloned();
        let idempotency = match (idempotency, metrics) {
            (Some(layer), Some(metrics)) => {
                let metrics = metrics.clone();
                Some(layer.observe(move |outcome| metrics.count_idempotency(outcome)))
            }
            (layer, _) => layer,
        };
        let limits = startup.get::<InboundLimitsLayer>().cloned();
        let (drain, abort) = (startup.drain(), startup.abort());
        let mut hosted = Hosted::default();

        let rest_listener = server::bind("rest", listeners.rest).await?;
        if let (Some(metrics), Some(addr)) = (metrics, listeners.metrics) {
            hosted.servers.push(server::spawn(
                "metrics",
                server::bind("metrics", addr).await?,
                rest::problems_for_bare_errors(metrics.router()),
                drain.clone(),
                abort.clone(),
            )?);
        }
        #[cfg(feature = "grpc")]
        let grpc = match (self.grpc, listeners.grpc) {
            (Some(routes), Some(addr)) => {
                let listener = server::bind("grpc", addr).await?;
                let max = app.ctx().grpc_max_message_bytes();
                let (router, health) =
                    crate::grpc_server::router(routes(app), max, limits.clone()).await;
                Some((listener, router, health))
            }
            _ => None,
        };
        let endpoint_on_rest = listeners.metrics.is_none();
        hosted.servers.push(server::spawn(
            "rest",
            rest_listener,
            rest::router(
                app,
                rest::RouteLayers {
                    limits,
                    idempotency,
                    metrics,
                },
                endpoint_on_rest,
            ),
            drain.clone(),
            abort.clone(),
        )?);
        #[cfg(feature = "grpc")]
        if let Some((listener, router, health)) = grpc {
            hosted
                .servers
                .push(server::spawn("grpc", listener, router, drain, abort)?);
            hosted
                .on_shutdown
                .push(Box::pin(async move { health.set_not_serving().await }));
        }
        Ok(hosted)
    }
}

impl<S: RestApi> Host<S> for HttpHost<S> {
    fn name(&self) -> &'static str {
        "http"
    }

    fn start<'a>(
        self: Box<Self>,
        app: &'a App<S>,
        startup: &'a Startup,
    ) -> BoxFuture<'a, Result<Hosted, RuntimeError>> {
        Box::pin(async move {
            let listeners = self.listeners(app.ctx().settings(), startup.env())?;
            self.serve(app, startup, listeners).await
        })
    }
}
