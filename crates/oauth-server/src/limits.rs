//! Rate limits of the authorization server: per client address on every endpoint that acts
//! (registration has its own, lower limit) and per client_id (once the client authenticated,
//! where it can; at authorize, wherever it is named). An over-limit caller gets 429 with
//! `Retry-After` and the RFC 6749 error `temporarily_unavailable`; nobody else is slowed. With
//! PostgreSQL the counts are shared by every instance (within `SYNC_INTERVAL`).

use std::net::IpAddr;

use http::StatusCode;
use service_kit::ratelimit::{RateLimiter, RetryAfter};
use shared_config::RateLimits;

use crate::error::{ErrorCode, OAuthError, Result};

pub struct Limits {
    pub by_address: RateLimiter<IpAddr>,
    pub by_client: RateLimiter<String>,
    pub register: RateLimiter<IpAddr>,
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

    /// Makes every limit hold across instances (shared counts).
    pub fn share(&self) {
        self.by_address.share("address");
        self.by_client.share("client");
        self.register.share("register");
    }

    /// Adds this instance's counts to the shared ones (every `SYNC_INTERVAL`).
    pub async fn sync(&self, counts: &dyn service_kit::ratelimit::SharedCounts) {
        let now = service_kit::clock::unix_now();
        self.by_address.sync(counts, now).await;
        self.by_client.sync(counts, now).await;
        self.register.sync(counts, now).await;
    }

    pub fn sweep(&self) {
        self.by_address.sweep();
        self.by_client.sweep();
        self.register.sweep();
    }
}

pub fn too_many(RetryAfter(secs): RetryAfter, who: &str) -> OAuthError {
    let mut e = OAuthError::new(
        ErrorCode::TemporarilyUnavailable,
        format!("too many requests from {who}; retry after {secs} s"),
    )
    .with_status(StatusCode::TOO_MANY_REQUESTS);
    e.retry_after = Some(secs);
    e
}
