//! An OAuth 2.1 authorization server for MCP servers: RFC 6749 and OAuth 2.1 (authorization
//! code with mandatory PKCE, client credentials, rotating refresh tokens), RFC 7591 dynamic
//! registration, RFC 7009 revocation, RFC 7662 introspection, RFC 8414 metadata, RFC 8707
//! resource indicators, RFC 9068 JWT access tokens and RFC 9207 `iss` in authorization responses.
//!
//! # Layout
//! Four layers, each a folder, with dependencies pointing one way only:
//! `http` -> `service` -> `store` -> `domain` (a test, `tests/api/layers.rs`, fails when a lower
//! layer names a higher one).
//! - `http/` (axum only): the router, extractors (`params`, `client_addr`), one module per
//!   endpoint with handlers named `<thing>_<method>`, the pages, how errors and token responses
//!   are written (`response`), and the OpenAPI document.
//! - `service/` (the use cases, no axum): `authorize`, `token` (the grants), `revoke`,
//!   `introspect`, `register` (RFC 7591/7592), `clients` (client authentication), `signin`,
//!   `metadata`.
//! - `store/`: the store traits, the in-memory implementation (`memory`), and the contract suite
//!   every implementation passes (`contract`).
//! - `domain/`: pure types parsed once: scopes, redirect URIs, resources, PKCE, clients, grants,
//!   token claims, secrets, request parameters.
//! - Beside them: [`AppState`] (`state`, which wires the layers together), `error` (the one
//!   error type), `keys` (signing keys and the JWKS), `cimd` (metadata-document fetching),
//!   `limits` (rate limits). [`app`] builds the router for in-process tests; [`serve`] runs it on
//!   a listener until a shutdown future completes (used by the binary, the launcher and the
//!   tests), sweeping expired state in the background.

pub mod cimd;
pub mod clients_file;
pub mod domain;
pub mod error;
pub mod fetch;
pub mod http;
pub mod idp;
pub mod keys;
pub mod limits;
pub mod service;
pub mod state;
pub mod store;

use std::future::Future;

use axum::Router;
use service_kit::server::ServeOptions;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::{OAuthError, Result};
pub use state::AppState;

/// The whole HTTP surface of the authorization server.
pub fn app(state: AppState) -> Router {
    http::router(state)
}

/// Applies the migrations of the `oauth` schema at `DATABASE_URL` (the `migrate` command).
pub async fn migrate(config: &shared_config::Config) -> anyhow::Result<()> {
    let url = config
        .database_url
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL is not set: there is nothing to migrate"))?;
    let (_, pool) = store::postgres::connect(url.expose(), store::postgres::SCHEMA, 1, 1).await?;
    pool.close().await;
    Ok(())
}

/// Serves the authorization server on `listener` until `shutdown` completes, sweeping expired
/// codes, tokens and registrations every `SWEEP_INTERVAL_SECS`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop_sweeper = CancellationToken::new();
    let sweeper = {
        let state = state.clone();
        let stop = stop_sweeper.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(state.config.sweep_interval);
            let mut share = tokio::time::interval(service_kit::ratelimit::SYNC_INTERVAL);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {
                        state.sweep().await;
                        service_kit::metrics::upkeep();
                    }
                    _ = share.tick(), if state.stores.rates.is_some() => {
                        if let Some(rates) = &state.stores.rates {
                            state.limits.sync(rates.as_ref()).await;
                        }
                    }
                }
            }
        })
    };
    let options = ServeOptions::from_config(&state.config).map_err(std::io::Error::other)?;
    let result = service_kit::server::serve(listener, app(state), options, shutdown).await;
    stop_sweeper.cancel();
    let _ = sweeper.await;
    result
}
