//! An OAuth 2.1 authorization server for MCP servers: RFC 6749 and OAuth 2.1 (authorization
//! code with mandatory PKCE, client credentials, rotating refresh tokens), RFC 7591 dynamic
//! registration, RFC 7009 revocation, RFC 7662 introspection, RFC 8414 metadata, RFC 8707
//! resource indicators, RFC 9068 JWT access tokens and RFC 9207 `iss` in authorization responses.
//!
//! # Layout
//! - [`app`] builds the router for in-process tests; [`serve`] runs it on a listener until a
//!   shutdown future completes (used by the binary, the launcher and the tests), sweeping
//!   expired state in the background.
//! - `state`: [`AppState`]; `store`: the bounded stores behind traits; `keys`: signing and JWKS.
//! - One module per endpoint: `metadata`, `register`, `authorize`, `token`, `revoke`,
//!   `introspect`; `error` maps every failure to the RFC 6749 wire format.
//! - Pure parts: `domain` (scopes, redirect URIs, resources), `pkce`, `params`, `client_auth`.

pub mod authorize;
pub mod cimd;
pub mod client_auth;
pub mod domain;
pub mod error;
pub mod introspect;
pub mod keys;
pub mod limits;
pub mod metadata;
pub mod openapi;
pub mod pages;
pub mod params;
pub mod pkce;
pub mod register;
pub mod revoke;
pub mod signin;
pub mod state;
pub mod store;
pub mod token;

use std::future::Future;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use shared_config::paths;
use shared_config::server::ServeOptions;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::{OAuthError, Result};
pub use state::AppState;

/// The whole HTTP surface of the authorization server.
pub fn app(state: AppState) -> Router {
    shared_config::metrics::handle();
    let config = &state.config;
    // The endpoints that act are rate limited per client address; documents are not.
    let acting = Router::new()
        .route(paths::REGISTER, post(register::register_post))
        .route(
            paths::REGISTER_CLIENT,
            get(register::client_get)
                .put(register::client_put)
                .delete(register::client_delete),
        )
        .route(paths::AUTHORIZE, get(authorize::authorize_get))
        .route(paths::SIGN_IN, post(signin::sign_in_post))
        .route(paths::CONSENT, post(signin::consent_post))
        .route(paths::TOKEN, post(token::token_post))
        .route(paths::REVOKE, post(revoke::revoke_post))
        .route(paths::INTROSPECT, post(introspect::introspect_post))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::by_address,
        ));
    let router = Router::new()
        .route(paths::AS_METADATA, get(metadata::metadata_get))
        .route(paths::JWKS, get(metadata::jwks_get))
        .route(paths::HEALTH, get(metadata::health_get))
        .route(paths::OPENAPI, get(openapi::openapi_get))
        .route(paths::METRICS, get(metrics_get))
        .merge(acting)
        .fallback(not_found);
    let trusted_proxies = config.trusted_proxies.clone();
    router
        .layer(axum::middleware::from_fn(|req, next| {
            shared_config::metrics::track("oauth", req, next)
        }))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(cors(config))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(
            // The span names the route and the client's address, never the query string (it may
            // carry codes or state); audit events inherit both.
            TraceLayer::new_for_http().make_span_with(move |req: &Request| {
                let route = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("unmatched", MatchedPath::as_str);
                let address = shared_config::ratelimit::request_address(req, &trusted_proxies);
                tracing::info_span!("request", method = %req.method(), route, address)
            }),
        )
        .with_state(state)
}

/// CORS from the configured origins; any origin only in demo mode with no list configured.
fn cors(config: &shared_config::Config) -> CorsLayer {
    let origins = if config.cors_allowed_origins.is_empty() && config.demo_mode {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            config
                .cors_allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([header::WWW_AUTHENTICATE])
        .max_age(std::time::Duration::from_secs(3600))
}

/// `GET /metrics`: Prometheus text, with the store sizes read at scrape time.
async fn metrics_get(
    axum::extract::State(state): axum::extract::State<AppState>,
    limits::ClientAddr(addr): limits::ClientAddr,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    for (store, len) in [
        ("clients", state.clients.len()),
        ("codes", state.codes.len()),
        ("refresh_tokens", state.refresh_tokens.len()),
        ("revocations", state.revocations.len()),
    ] {
        metrics::gauge!("store_entries", "service" => "oauth", "store" => store).set(len as f64);
    }
    let allowed =
        shared_config::metrics::allowed(addr, &headers, state.config.metrics_token.as_ref());
    shared_config::metrics::respond(allowed)
}

async fn not_found() -> impl IntoResponse {
    OAuthError::invalid_request("no such endpoint").with_status(StatusCode::NOT_FOUND)
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
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {
                        state.sweep();
                        shared_config::metrics::upkeep();
                    }
                }
            }
        })
    };
    let options = ServeOptions::from_config(&state.config).map_err(std::io::Error::other)?;
    let result = shared_config::server::serve(listener, app(state), options, shutdown).await;
    stop_sweeper.cancel();
    let _ = sweeper.await;
    result
}
