//! An MCP server protected by OAuth: the MCP endpoint `/mcp/v1` (Streamable HTTP for MCP
//! 2025-03-26 to 2026-07-28, the 2024-11-05 HTTP+SSE transport, and plain JSON shortcuts) with six
//! tools, and a JWT-protected REST API under `/api`. It is an OAuth 2.1 resource server: RFC 9728
//! protected resource metadata, RFC 6750 bearer tokens, RFC 9068 JWT access tokens verified
//! against the authorization server's JWKS, RFC 8707 audience binding.
//!
//! # Layout
//! - [`app`] builds the router; [`serve`] runs it on a listener until shutdown.
//! - `auth`: token verification, JWKS cache, challenges. `sessions`: session owners and the
//!   tokens `oauth_authenticate` holds. `demo_oauth`: that tool's OAuth client.
//! - `data`: the protected resource, the one authorization path of tools and API.
//! - `mcp`: everything rmcp (tools, Streamable HTTP, SSE transport, shortcuts, the guard).
//! - `api`: the REST API. `resource_metadata`: discovery documents and health.

pub mod api;
pub mod auth;
pub mod data;
pub mod demo_oauth;
pub mod mcp;
pub mod openapi;
pub mod resource_metadata;
pub mod sessions;
pub mod state;

use std::future::Future;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use shared_config::paths;
use shared_config::server::ServeOptions;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

pub use state::AppState;

/// The whole HTTP surface of the MCP server.
pub fn app(state: AppState) -> Router {
    shared_config::metrics::handle();
    let trusted_proxies = state.config.trusted_proxies.clone();
    let router = Router::new()
        .route(paths::PRM_MCP, get(resource_metadata::prm_mcp_get))
        .route(paths::PRM_ROOT, get(resource_metadata::prm_root_get))
        .route(paths::AS_METADATA, get(resource_metadata::as_metadata_get))
        .route(paths::HEALTH, get(resource_metadata::health_get))
        .route(paths::OPENAPI, get(openapi::openapi_get))
        .route(paths::METRICS, get(metrics_get))
        .merge(api::routes())
        .merge(mcp::routes(&state))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({"error": "not_found"})),
            )
                .into_response()
        });
    router
        .layer(axum::middleware::from_fn(|req, next| {
            shared_config::metrics::track("mcp", req, next)
        }))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.max_body_bytes,
        ))
        .layer(cors(&state.config))
        .layer(
            TraceLayer::new_for_http().make_span_with(move |req: &axum::extract::Request| {
                let route = req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map_or("unmatched", axum::extract::MatchedPath::as_str);
                let address = shared_config::ratelimit::request_address(req, &trusted_proxies);
                tracing::info_span!("request", method = %req.method(), route, address)
            }),
        )
        .with_state(state)
}

/// `GET /metrics`: Prometheus text, with session and cache sizes read at scrape time.
async fn metrics_get(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    metrics::gauge!("mcp_sessions_active").set(state.shared.sessions.len() as f64);
    metrics::gauge!("mcp_transport_sessions")
        .set(state.mcp_sessions.sessions.read().await.len() as f64);
    metrics::gauge!("mcp_sse_streams_open").set(state.sse.len() as f64);
    metrics::gauge!("store_entries", "service" => "mcp", "store" => "verified_tokens")
        .set(state.shared.verifier.cached() as f64);
    metrics::gauge!("store_entries", "service" => "mcp", "store" => "data_items")
        .set(state.shared.data.len() as f64);
    let address = shared_config::ratelimit::request_ip(
        request.extensions(),
        request.headers(),
        &state.config.trusted_proxies,
    );
    let allowed = shared_config::metrics::allowed(
        address,
        request.headers(),
        state.config.metrics_token.as_ref(),
    );
    shared_config::metrics::respond(allowed)
}

/// CORS for browser clients such as MCP Inspector: loopback origins and MCP_ALLOWED_ORIGINS.
fn cors(config: &shared_config::Config) -> CorsLayer {
    let allowed = config.mcp_allowed_origins.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            let Ok(origin) = origin.to_str() else {
                return false;
            };
            let loopback = url::Url::parse(origin).is_ok_and(|u| {
                u.scheme() == "http" && u.host_str().is_some_and(auth::is_loopback_authority)
            });
            loopback || allowed.iter().any(|o| o == origin)
        }))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static("mcp-method"),
            HeaderName::from_static("mcp-name"),
        ])
        .expose_headers([
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("mcp-protocol-version"),
            header::WWW_AUTHENTICATE,
        ])
        .max_age(std::time::Duration::from_secs(3600))
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
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
            // New signing keys are published KEY_PUBLISH_LEAD_SECS before they sign: reading the
            // JWKS twice in that time means each is known before its first token arrives.
            let mut keys = tokio::time::interval(state.config.key_publish_lead / 2);
            keys.tick().await;
            loop {
                tokio::select! {
                    _ = state.shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        state.shared.sessions.sweep();
                        state.shared.subject_limits.sweep();
                        state.shared.verifier.sweep();
                        shared_config::metrics::upkeep();
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
    let options = ServeOptions::from_config(&state.config).map_err(std::io::Error::other)?;
    let router = app(state);
    let result = shared_config::server::serve(listener, router, options, async move {
        shutdown.await;
        stop.cancel();
    })
    .await;
    let _ = sweeper.await;
    result
}
