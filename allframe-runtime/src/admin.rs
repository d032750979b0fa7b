//! The admin API: operational endpoints (dead letters today; sagas, projections and jobs as
//! those archetypes arrive) on a listener of their own, so that `cargo allframe` commands work
//! the same whatever bus or database the service uses, and the CLI needs none of their drivers.
//!
//! It is served only when `ALLFRAME_ADMIN_TOKEN` is set, on `ALLFRAME_ADMIN_BIND_ADDR`
//! (loopback by default) and `ADMIN_PORT` (default: the file's HTTP port + 1000). Every request
//! must carry `Authorization: Bearer <token>`; anything else is `401` with a problem document.
//! The listener drains and stops with the service's other servers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use crate::BoxError;
use crate::component::Startup;
use crate::env::Environment;
use crate::error::{Problem, RuntimeError};
use crate::server::{self, Server};

/// Where the admin API listens and the token it requires.
#[derive(Clone)]
pub(crate) struct AdminSettings {
    addr: SocketAddr,
    token: Arc<str>,
}

impl std::fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never print it.
        f.debug_struct("AdminSettings")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl AdminSettings {
    /// The admin API of a service whose file gives it `http_port`, from `env`; `None` when
    /// `ALLFRAME_ADMIN_TOKEN` is unset (the API is then not served).
    pub(crate) fn from_env(env: &Environment, http_port: u16) -> Result<Option<Self>, BoxError> {
        let Some(token) = env.get_non_empty(allframe_env::ALLFRAME_ADMIN_TOKEN.name) else {
            return Ok(None);
        };
        let port = env
            .parsed(allframe_env::ADMIN_PORT, allframe_env::Var::port)?
            .unwrap_or(allframe_env::default_admin_port(http_port));
        let ip = env
            .parsed(
                allframe_env::ALLFRAME_ADMIN_BIND_ADDR,
                allframe_env::Var::ip_addr,
            )?
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        Ok(Some(Self {
            addr: SocketAddr::new(ip, port),
            token: Arc::from(token.trim()),
        }))
    }

    /// Binds the admin listener and serves `router` behind the token, until shutdown.
    pub(crate) async fn serve(
        &self,
        router: axum::Router,
        startup: &Startup,
    ) -> Result<Server, RuntimeError> {
        let listener = server::bind("admin", self.addr).await?;
        let router = router.layer(middleware::from_fn_with_state(
            Arc::clone(&self.token),
            require_token,
        ));
        server::spawn("admin", listener, router, startup.drain(), startup.abort())
    }
}

/// Lets a request through only with `Authorization: Bearer <token>`.
async fn require_token(State(token): State<Arc<str>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(presented) if same(presented.as_bytes(), token.as_bytes()) => next.run(request).await,
        _ => problem(
            StatusCode::UNAUTHORIZED,
            "the admin API needs `Authorization: Bearer <ALLFRAME_ADMIN_TOKEN>`",
        ),
    }
}

/// Compares two secrets in time independent of where they differ (their length is not secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// An `application/problem+json` answer.
pub(crate) fn problem(status: StatusCode, detail: &str) -> Response {
    Problem::new(status, detail).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cret", b"s3creT"));
        assert!(!same(b"s3cret", b"s3cre"));
    }

    #[test]
    fn no_token_no_admin_api_and_the_port_follows_the_file() {
        let none = Environment::from_pairs([("ADMIN_PORT", "9000")]);
        assert!(
            AdminSettings::from_env(&none, 8080)
                .expect("valid")
                .is_none()
        );
        let token = Environment::from_pairs([("ALLFRAME_ADMIN_TOKEN", "t")]);
        let settings = AdminSettings::from_env(&token, 8083)
            .expect("valid")
            .expect("served");
        assert_eq!(settings.addr, "127.0.0.1:9083".parse().expect("addr"));
        let bad = Environment::from_pairs([("ALLFRAME_ADMIN_TOKEN", "t"), ("ADMIN_PORT", "x")]);
        let error = AdminSettings::from_env(&bad, 8083).expect_err("not a port");
        assert!(error.to_string().contains("ADMIN_PORT"), "{error}");
    }
}
