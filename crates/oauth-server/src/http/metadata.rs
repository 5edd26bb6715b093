//! Discovery endpoints: authorization server metadata (RFC 8414 section 3), the JWKS (RFC 7517),
//! and the health check.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

fn json_bytes(body: axum::body::Bytes, cache: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body,
    )
        .into_response()
}

/// `GET /.well-known/oauth-authorization-server`
#[utoipa::path(get, path = shared_config::paths::AS_METADATA, responses((status = 200, description = "RFC 8414 metadata", body = Object)))]
pub async fn metadata_get(State(state): State<AppState>) -> Response {
    json_bytes(state.metadata.clone(), "public, max-age=300")
}

/// `GET /.well-known/jwks.json`
#[utoipa::path(get, path = shared_config::paths::JWKS, responses((status = 200, description = "the JSON Web Key Set", body = Object)))]
pub async fn jwks_get(State(state): State<AppState>) -> Response {
    json_bytes(state.keys.jwks_bytes(), "public, max-age=60")
}

/// `GET /health`
#[utoipa::path(get, path = shared_config::paths::HEALTH, responses((status = 200, description = "status and version", body = Object)))]
pub async fn health_get(State(state): State<AppState>) -> Response {
    axum::Json(json!({
        "status": "ok",
        "service": "oauth-server",
        "version": env!("CARGO_PKG_VERSION"),
        "demo_mode": state.config.demo_mode,
        "issuer": state.config.issuer,
    }))
    .into_response()
}
