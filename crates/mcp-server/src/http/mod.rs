//! The HTTP adapter (axum): the router of every route, with its layers (metrics, CORS, tracing);
//! the REST API (`api`), discovery documents and health (`resource_metadata`), the OpenAPI
//! document, and bearer tokens and their challenges (`bearer`). The MCP transports are `mcp`'s,
//! merged in here. Paths are the constants of `shared_config::paths`, which the metadata uses.

pub mod api;
pub mod bearer;
pub mod openapi;
pub mod resource_metadata;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use shared_config::paths;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::state::AppState;

/// The whole HTTP surface of the MCP server.
pub fn router(state: AppState) -> Router {
    service_kit::metrics::handle();
    let router = Router::new()
        .route(paths::PRM_MCP, get(resource_metadata::prm_mcp_get))
        .route(paths::PRM_ROOT, get(resource_metadata::prm_root_get))
        .route(paths::PRM_ANY, get(resource_metadata::prm_path_get))
        .route(paths::AS_METADATA, get(resource_metadata::as_metadata_get))
        .route(paths::HEALTH, get(resource_metadata::health_get))
        .route(paths::OPENAPI, get(openapi::openapi_get))
        .route(paths::METRICS, get(metrics_get))
        .merge(api::routes(&state))
        .merge(crate::mcp::routes(&state))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({"error": "not_found"})),
            )
                .into_response()
        });
    router
        .layer(axum::middleware::from_fn(|req, next| {
            service_kit::metrics::track("mcp", req, next)
        }))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.max_body_bytes,
        ))
        .layer(cors(&state.config))
        .layer(
            TraceLayer::new_for_http().make_span_with(service_kit::telemetry::request_span(
                &state.config.trusted_proxies,
            )),
        )
        .with_state(state)
}

/// `GET /metrics`: Prometheus text, with session and cache sizes read at scrape time.
async fn metrics_get(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    metrics::gauge!("mcp_sessions_active")
        .set(state.shared.sessions.count().await.unwrap_or(0) as f64);
    metrics::gauge!("mcp_transport_sessions")
        .set(state.mcp_sessions.sessions.read().await.len() as f64);
    metrics::gauge!("mcp_sse_streams_open").set(state.sse.len() as f64);
    metrics::gauge!("store_entries", "service" => "mcp", "store" => "verified_tokens")
        .set(state.shared.verifier.cached() as f64);
    metrics::gauge!("store_entries", "service" => "mcp", "store" => "data_items")
        .set(state.shared.items.count().await as f64);
    let address = service_kit::ratelimit::request_ip(
        request.extensions(),
        request.headers(),
        &state.config.trusted_proxies,
    );
    let allowed = service_kit::metrics::allowed(
        address,
        request.headers(),
        state.config.metrics_token.as_ref(),
    );
    service_kit::metrics::respond(allowed)
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
                u.scheme() == "http"
                    && u.host_str()
                        .is_some_and(crate::service::auth::is_loopback_authority)
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
