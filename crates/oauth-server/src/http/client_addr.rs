//! The client's address (the peer, or a trusted proxy's `X-Forwarded-For`), and the per-address
//! rate limit on every endpoint that acts.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use service_kit::ratelimit::request_ip;
use std::net::IpAddr;

use crate::error::Result;
use crate::limits::too_many;
use crate::state::AppState;

/// The client's address: the peer, or what a trusted proxy says in `X-Forwarded-For`. Absent
/// when the server runs without connection info (in-process oneshot tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(request_ip(
            &parts.extensions,
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

/// Middleware for the endpoints that act: one request of the caller's address.
pub async fn by_address(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    request: Request,
    next: Next,
) -> Result<Response> {
    if let Some(ip) = addr {
        let limiter = if request.uri().path() == shared_config::paths::REGISTER {
            &state.limits.register
        } else {
            &state.limits.by_address
        };
        limiter.check(&ip).map_err(|r| {
            tracing::warn!(
                target: "audit",
                event = "rate_limited",
                address = %ip,
                route = request.uri().path(),
                outcome = "refused",
                "a client address went over its rate limit"
            );
            too_many(r, "this address")
        })?;
    }
    Ok(next.run(request).await)
}
