//! Discovery on the MCP server: OAuth 2.0 Protected Resource Metadata (RFC 9728 section 3) for
//! the MCP endpoint and for the server root, the authorization server's RFC 8414 metadata
//! re-served on this origin (for 2025-03-26 clients, MCP 2025-03-26 authorization "Server
//! Metadata Discovery"), and the health check.

use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared_config::paths;

use crate::mcp::public_base;
use crate::state::AppState;

fn prm(state: &AppState, resource: String) -> Response {
    let mut response = axum::Json(json!({
        "resource": resource,
        "authorization_servers": [state.config.issuer],
        "scopes_supported": ["read", "write"],
        "bearer_methods_supported": ["header"],
        "dpop_signing_alg_values_supported": service_kit::dpop::ALGS,
        "dpop_bound_access_tokens_required": state.config.mcp_require_dpop,
        "resource_name": "MCP OAuth demo server",
        "resource_documentation": format!("{}{}", state.config.mcp_url, paths::HEALTH),
    }))
    .into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// `GET /.well-known/oauth-protected-resource/mcp/v1`
#[utoipa::path(get, path = paths::PRM_MCP, responses((status = 200, description = "RFC 9728 metadata of the MCP endpoint", body = Object)))]
pub async fn prm_mcp_get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let resource = format!("{}{}", public_base(&state, &headers), paths::MCP);
    prm(&state, resource)
}

/// Whether a path is one this server protects with bearer tokens: the MCP endpoint and what lies
/// under it, and the resource API.
pub fn is_protected(path: &str) -> bool {
    path == paths::MCP
        || path
            .strip_prefix(paths::MCP)
            .is_some_and(|rest| rest.starts_with('/'))
        || path.starts_with("/api/")
}

/// `GET /.well-known/oauth-protected-resource/{path}`: the metadata of any protected URL (RFC
/// 9728 section 3.1, the path inserted after the well-known prefix), whose `resource` is that URL
/// exactly (section 3.3), as the challenge of that URL names it.
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource/{path}", params(("path" = String, Path, description = "a protected path, such as api/data or mcp/v1/sse")), responses(
    (status = 200, description = "RFC 9728 metadata of that URL", body = Object),
    (status = 404, description = "not a protected path", body = Object),
))]
pub async fn prm_path_get(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/{rest}");
    if !is_protected(&path) {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "not_found", "error_description": "no protected resource has this path"})),
        )
            .into_response();
    }
    let resource = format!("{}{path}", public_base(&state, &headers));
    prm(&state, resource)
}

/// `GET /.well-known/oauth-protected-resource`
#[utoipa::path(get, path = paths::PRM_ROOT, responses((status = 200, description = "RFC 9728 metadata of the server", body = Object)))]
pub async fn prm_root_get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let resource = public_base(&state, &headers);
    prm(&state, resource)
}

/// `GET /.well-known/oauth-authorization-server` on the MCP origin: the authorization server's
/// own document, fetched and cached for five minutes.
pub async fn as_metadata_get(State(state): State<AppState>) -> Response {
    if let Some((at, body)) = state.as_metadata.read().await.as_ref()
        && at.elapsed() < Duration::from_secs(300)
    {
        return json_bytes(body.clone());
    }
    let url = state.config.endpoints().metadata;
    let fetched = async {
        let res = state
            .http
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await?;
        res.error_for_status()?.bytes().await
    }
    .await;
    match fetched {
        Ok(body) => {
            *state.as_metadata.write().await = Some((Instant::now(), body.clone()));
            json_bytes(body)
        }
        Err(e) => {
            tracing::warn!(error = %e, "the authorization server's metadata could not be fetched");
            if let Some((_, body)) = state.as_metadata.read().await.as_ref() {
                return json_bytes(body.clone());
            }
            (
                StatusCode::BAD_GATEWAY,
                axum::Json(json!({"error": "temporarily_unavailable", "error_description": "the authorization server cannot be reached"})),
            )
                .into_response()
        }
    }
}

fn json_bytes(body: axum::body::Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// `GET /health`
#[utoipa::path(get, path = paths::HEALTH, responses((status = 200, description = "status and version", body = Object)))]
pub async fn health_get(State(state): State<AppState>) -> Response {
    axum::Json(json!({
        "status": "ok",
        "service": "mcp-server",
        "version": env!("CARGO_PKG_VERSION"),
        "demo_mode": state.config.demo_mode,
        "mcp_endpoint": state.config.mcp_endpoint(),
        "authorization_server": state.config.issuer,
        "sessions": state.shared.sessions.count().await.unwrap_or(0),
    }))
    .into_response()
}
