//! Rate limits of the authorization server: per client address on every endpoint that acts
//! (registration has its own, lower limit) and per client_id (once the client authenticated,
//! where it can; at authorize, wherever it is named). An over-limit caller gets 429 with
//! `Retry-After` and the RFC 6749 error `temporarily_unavailable`; nobody else is slowed.

use std::net::IpAddr;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{StatusCode, request::Parts};
use axum::middleware::Next;
use axum::response::Response;
use shared_config::RateLimits;
use shared_config::ratelimit::{RateLimiter, RetryAfter, request_ip};

use crate::error::{ErrorCode, OAuthError, Result};
use crate::state::AppState;

pub struct Limits {
    by_address: RateLimiter<IpAddr>,
    by_client: RateLimiter<String>,
    register: RateLimiter<IpAddr>,
}

impl Limits {
    pub fn new(config: &RateLimits) -> Self {
        Self {
            by_address: RateLimiter::per_minute(config.per_address),
            by_client: RateLimiter::per_minute(config.per_client),
            register: RateLimiter::per_minute(config.register_per_address),
        }
    }

    /// Counts a request naming `client_id`.
    pub fn client(&self, client_id: &str) -> Result<()> {
        // Keys are bounded in length, so a flood of long invented ids cannot grow memory much.
        let key: String = client_id.chars().take(256).collect();
        self.by_client
            .check(&key)
            .map_err(|r| too_many(r, "this client"))
    }

    pub fn sweep(&self) {
        self.by_address.sweep();
        self.by_client.sweep();
        self.register.sweep();
    }
}

fn too_many(RetryAfter(secs): RetryAfter, who: &str) -> OAuthError {
    let mut e = OAuthError::new(
        ErrorCode::TemporarilyUnavailable,
        format!("too many requests from {who}; retry after {secs} s"),
    )
    .with_status(StatusCode::TOO_MANY_REQUESTS);
    e.retry_after = Some(secs);
    e
}

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
