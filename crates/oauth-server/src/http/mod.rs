//! The HTTP adapter (axum only): the router of every endpoint, with its layers (metrics, body
//! limit, CORS, timeouts, tracing), and one module per endpoint that turns requests into calls of
//! `service` and its answers into responses. Paths are the constants of `shared_config::paths`,
//! which the metadata document uses too.

pub mod authorize;
pub mod client_addr;
pub mod introspect;
pub mod metadata;
pub mod openapi;
pub mod pages;
pub mod params;
pub mod register;
pub mod response;
pub mod revoke;
pub mod signin;
pub mod token;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use shared_config::paths;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::error::OAuthError;
use crate::state::AppState;

/// The whole HTTP surface of the authorization server.
pub fn router(state: AppState) -> Router {
    service_kit::metrics::handle();
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
            client_addr::by_address,
        ));
    let router = Router::new()
        .route(paths::AS_METADATA, get(metadata::metadata_get))
        .route(paths::JWKS, get(metadata::jwks_get))
        .route(paths::HEALTH, get(metadata::health_get))
        .route(paths::OPENAPI, get(openapi::openapi_get))
        .route(paths::METRICS, get(metrics_get))
        .merge(acting)
        .fallback(not_found);
    router
        .layer(axum::middleware::from_fn(|req, next| {
            service_kit::metrics::track("oauth", req, next)
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
            TraceLayer::new_for_http().make_span_with(service_kit::telemetry::request_span(
                &config.trusted_proxies,
            )),
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
        // Browser MCP clients send MCP-Protocol-Version on every request, discovery included.
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("dpop"),
        ])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("dpop-nonce"),
        ])
        .max_age(std::time::Duration::from_secs(3600))
}

/// `GET /metrics`: Prometheus text, with the store sizes read at scrape time.
async fn metrics_get(
    axum::extract::State(state): axum::extract::State<AppState>,
    client_addr::ClientAddr(addr): client_addr::ClientAddr,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let stores = &state.stores;
    let clients = stores.clients.count().await.ok();
    let grants = stores.grants.sizes().await.ok();
    for (store, len) in [
        ("clients", clients),
        ("codes", grants.map(|g| g.codes)),
        ("refresh_tokens", grants.map(|g| g.refresh_tokens)),
        ("revocations", grants.map(|g| g.revocations)),
    ] {
        if let Some(len) = len {
            metrics::gauge!("store_entries", "service" => "oauth", "store" => store)
                .set(len as f64);
        }
    }
    let allowed =
        service_kit::metrics::allowed(addr, &headers, state.config.metrics_token.as_ref());
    service_kit::metrics::respond(allowed)
}

async fn not_found() -> impl IntoResponse {
    OAuthError::invalid_request("no such endpoint").with_status(StatusCode::NOT_FOUND)
}
