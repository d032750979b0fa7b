//! The HTTP accept loop shared by the REST and gRPC servers.
//!
//! Each accepted connection is served by hyper (HTTP/1.1 and HTTP/2, so gRPC works too) in a
//! task the server owns. When the drain token fires (shutdown began, and its readiness
//! propagation delay is over) the listener is closed, every connection is told to finish its
//! in-flight requests and close; when the abort token fires (the drain deadline passed) the
//! remaining connections are aborted. Owning the connection tasks is what makes the
//! abort real: `axum::serve` detaches them. This module does not decide deadlines.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::error::RuntimeError;

/// How one server's drain went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct DrainReport {
    /// Connections still busy at the deadline, aborted.
    pub(crate) aborted: usize,
}

/// A server that is accepting connections.
#[derive(Debug)]
pub(crate) struct Server {
    /// `"rest"` or `"grpc"`.
    pub(crate) protocol: &'static str,
    /// The bound address.
    pub(crate) addr: SocketAddr,
    /// Completes when the server has drained (or aborted) after shutdown.
    pub(crate) handle: JoinHandle<DrainReport>,
}

/// Binds `addr` for `protocol`.
pub(crate) async fn bind(
    protocol: &'static str,
    addr: SocketAddr,
) -> Result<TcpListener, RuntimeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RuntimeError::Bind {
            protocol,
            addr,
            source,
        })
}

/// Starts serving `router` on `listener` until `drain`, draining until `abort`.
pub(crate) fn spawn(
    protocol: &'static str,
    listener: TcpListener,
    router: axum::Router,
    drain: CancellationToken,
    abort: CancellationToken,
) -> Result<Server, RuntimeError> {
    let addr = listener.local_addr().map_err(|source| RuntimeError::Bind {
        protocol,
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    tracing::info!(protocol, %addr, "listening");
    let handle = tokio::spawn(serve(protocol, listener, router, drain, abort));
    Ok(Server {
        protocol,
        addr,
        handle,
    })
}

async fn serve(
    protocol: &'static str,
    listener: TcpListener,
    router: axum::Router,
    drain: CancellationToken,
    abort: CancellationToken,
) -> DrainReport {
    let mut builder = Builder::new(TokioExecutor::new());
    // The timer enables hyper's header-read timeout, so idle half-open clients cannot pin a
    // connection (and the drain) forever.
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = drain.cancelled() => break,
            // Reap finished connections first so the set stays small under load.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(protocol, %peer, error = %error, "cannot set TCP_NODELAY");
                    }
                    let service = router.clone().map_request(move |request: Request<Incoming>| {
                        let mut request = request.map(Body::new);
                        request.extensions_mut().insert(ConnectInfo(peer));
                        request
                    });
                    let builder = builder.clone();
                    let drain = drain.clone();
                    connections.spawn(async move {
                        let service = TowerToHyperService::new(service);
                        let connection =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        tokio::pin!(connection);
                        let result = tokio::select! {
                            result = connection.as_mut() => result,
                            () = drain.cancelled() => {
                                connection.as_mut().graceful_shutdown();
                                connection.await
                            }
                        };
                        if let Err(error) = result {
                            tracing::debug!(protocol, %peer, error = %error, "connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(protocol, error = %error, "failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    tracing::info!(
        protocol,
        open_connections = connections.len(),
        "stopped accepting; draining in-flight requests"
    );
    loop {
        tokio::select! {
            biased;
            joined = connections.join_next() => {
                if joined.is_none() {
                    tracing::info!(protocol, "drained");
                    return DrainReport::default();
                }
            }
            () = abort.cancelled() => {
                let aborted = connections.len();
                connections.abort_all();
                while connections.join_next().await.is_some() {}
                tracing::error!(
                    protocol,
                    aborted_connections = aborted,
                    "shutdown deadline passed: aborted connections with requests still in flight"
                );
                return DrainReport { aborted };
            }
        }
    }
}
