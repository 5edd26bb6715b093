//! An MCP server protected by OAuth: the MCP endpoint `/mcp/v1` (Streamable HTTP for MCP
//! 2025-03-26 to 2026-07-28, the 2024-11-05 HTTP+SSE transport, and plain JSON shortcuts) with six
//! tools, and a JWT-protected REST API under `/api`. It is an OAuth 2.1 resource server: RFC 9728
//! protected resource metadata, RFC 6750 bearer tokens, RFC 9068 JWT access tokens verified
//! against the authorization server's JWKS, RFC 8707 audience binding.
//!
//! # Layout
//! Two adapters on top, then layers whose dependencies point one way only:
//! (`http` | `mcp`) -> `service` -> `store` -> `domain` (a test in this file fails when a lower
//! layer names a higher one).
//! - `http/` (axum): the router and its layers, the REST API under `/api`, discovery documents
//!   and health, the OpenAPI document, bearer tokens and their challenges.
//! - `mcp/` (everything rmcp): the tools, Streamable HTTP, the HTTP+SSE transport, the JSON
//!   shortcuts, and the guard in front of them all.
//! - `service/`: token verification (`auth`), data items with their scope checks (`items`), the
//!   session binding policy and held tokens (`sessions`), demo mode's OAuth client
//!   (`demo_oauth`).
//! - `store/`: the session and item store traits, the in-memory implementation, and the
//!   contract suite every implementation passes.
//! - `domain/`: the principal and its scopes, data items and their rules, session keys.
//! - [`AppState`] (`state`) wires them together; [`app`] builds the router; [`serve`] runs it on
//!   a listener until shutdown.

pub mod domain;
pub mod http;
pub mod mcp;
pub mod service;
pub mod state;
pub mod store;

use std::future::Future;

use axum::Router;
use service_kit::server::ServeOptions;
use tokio::net::TcpListener;

pub use state::AppState;

/// The whole HTTP surface of the MCP server.
pub fn app(state: AppState) -> Router {
    http::router(state)
}

/// Applies the migrations of the `mcp` schema at `DATABASE_URL` (the `migrate` command).
pub async fn migrate(config: &shared_config::Config) -> anyhow::Result<()> {
    let url = config
        .database_url
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL is not set: there is nothing to migrate"))?;
    let (_, pool) =
        store::postgres::connect(url.expose(), store::postgres::SCHEMA, 1, &[], 1).await?;
    pool.close().await;
    Ok(())
}

/// Serves the MCP server on `listener` until `shutdown` completes: fetches the JWKS first (a
/// failure is logged; keys are fetched again when a token needs them), sweeps idle sessions, and
/// on shutdown ends open streams so the server can stop.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match state.shared.verifier.jwks().refresh().await {
        Ok(n) => tracing::info!(keys = n, "fetched the authorization server's JWKS"),
        Err(e) => {
            tracing::warn!(error = %e, "the JWKS could not be fetched yet; will retry when a token arrives")
        }
    }
    let stop = state.shutdown.clone();
    let sweeper = {
        let state = state.clone();
        tokio::spawn(async move {
            // Every 30 s, or twice per MCP_SESSION_IDLE_SECS when that is shorter.
            let every = (state.config.mcp_session_idle / 2).clamp(
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(30),
            );
            let mut tick = tokio::time::interval(every);
            // New signing keys are published KEY_PUBLISH_LEAD_SECS before they sign: reading the
            // JWKS twice in that time means each is known before its first token arrives.
            let mut keys = tokio::time::interval(state.config.key_publish_lead / 2);
            keys.tick().await;
            // rmcp sessions the session store no longer holds (swept as idle, or with shared
            // stores closed or swept on another instance) are ended here too.
            let mut reap = tokio::time::interval(std::time::Duration::from_secs(2));
            let mut share = tokio::time::interval(service_kit::ratelimit::SYNC_INTERVAL);
            let mut missing = std::collections::HashSet::new();
            loop {
                tokio::select! {
                    _ = state.shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        let idle = state.config.mcp_session_idle.as_secs();
                        let idle_before = service::sessions::unix_now().saturating_sub(idle);
                        if let Err(e) = state.shared.sessions.sweep(idle_before).await {
                            tracing::warn!(error = %e, "sweeping sessions failed");
                        }
                        let stale = service::sessions::unix_now().saturating_sub(60);
                        if let Err(e) = state.shared.relay.sweep(stale).await {
                            tracing::warn!(error = %e, "sweeping relayed messages failed");
                        }
                        if let Some(rates) = &state.shared.rates
                            && let Err(e) = rates.forget(stale.saturating_sub(60)).await
                        {
                            tracing::warn!(error = %e, "forgetting old rate counts failed");
                        }
                        state.shared.subject_limits.sweep();
                        state.shared.verifier.sweep();
                        service_kit::metrics::upkeep();
                    }
                    _ = share.tick(), if state.shared.rates.is_some() => {
                        if let Some(rates) = &state.shared.rates {
                            let now = service::sessions::unix_now();
                            state.shared.subject_limits.sync(rates.as_ref(), now).await;
                        }
                    }
                    _ = reap.tick() => {
                        missing = mcp::session_store::reap(&state, missing).await;
                    }
                    _ = keys.tick() => {
                        if let Err(e) = state.shared.verifier.jwks().refresh().await {
                            tracing::warn!(error = %e, "the JWKS could not be read again; keeping the cached keys");
                        }
                    }
                }
            }
        })
    };
    // With shared stores, HTTP+SSE messages POSTed to any instance reach the streams held here.
    let relay = state
        .shared_sessions
        .then(|| tokio::spawn(mcp::sse::relay_loop(state.clone())));
    let options = ServeOptions::from_config(&state.config).map_err(std::io::Error::other)?;
    let router = app(state);
    let result = service_kit::server::serve(listener, router, options, async move {
        shutdown.await;
        stop.cancel();
    })
    .await;
    let _ = sweeper.await;
    if let Some(relay) = relay {
        let _ = relay.await;
    }
    result
}
