//! Discovery: authorization server metadata (RFC 8414 section 2, with RFC 9207's
//! `authorization_response_iss_parameter_supported`), the JWKS (RFC 7517), and the health check.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use shared_config::{Config, Endpoints};

use crate::domain::{AuthMethod, GrantType, Scope};
use crate::state::AppState;

/// The metadata document, built once at start-up. `signing_algs` are the algorithms of the
/// published keys (listed as `access_token_signing_alg_values_supported`, an extension).
pub fn document(config: &Config, endpoints: &Endpoints, signing_algs: &[&str]) -> Value {
    let auth_methods: Vec<&str> = AuthMethod::ALL.iter().map(|m| m.as_str()).collect();
    json!({
        "issuer": config.issuer,
        "authorization_endpoint": endpoints.authorization,
        "token_endpoint": endpoints.token,
        "registration_endpoint": endpoints.registration,
        "jwks_uri": endpoints.jwks,
        "revocation_endpoint": endpoints.revocation,
        "introspection_endpoint": endpoints.introspection,
        "scopes_supported": Scope::supported(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": GrantType::ALL.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": true,
        "access_token_signing_alg_values_supported": signing_algs,
    })
}

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
