//! Token introspection (RFC 7662): for authenticated confidential clients (resource servers);
//! an active token is described by its claims, anything else is exactly `{"active": false}`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::client_auth;
use crate::error::{OAuthError, Result};
use crate::params::FormParams;
use crate::state::AppState;
use crate::store::hash_secret;
use crate::token::AccessClaims;

/// `POST /oauth/introspect`
#[utoipa::path(post, path = shared_config::paths::INTROSPECT,
    request_body(content = crate::openapi::TokenParam, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = crate::openapi::IntrospectionBody),
        (status = 400, body = crate::openapi::ErrorBody),
        (status = 401, body = crate::openapi::ErrorBody),
        (status = 429, description = "over a rate limit (Retry-After)", body = crate::openapi::ErrorBody),
        (status = 415, body = crate::openapi::ErrorBody),
    ))]
pub async fn introspect_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    FormParams(params): FormParams,
) -> Result<Response> {
    let presented = client_auth::identify(&state, &headers, &params).await?;
    let client = client_auth::authenticate(&state, presented)?;
    if !client.is_confidential() {
        return Err(OAuthError::invalid_client(
            "introspection is for confidential clients (resource servers) only",
        ));
    }
    let token = params.require("token")?;
    // A dynamically registered client learns only about its own tokens (RFC 7662 section 4:
    // no token scanning); the configured resource server and demo client about any.
    let body = describe(&state, token)
        .filter(|b| !client.dynamic || b["client_id"] == client.id.as_str())
        .unwrap_or_else(|| json!({ "active": false }));
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

fn describe(state: &AppState, token: &str) -> Option<Value> {
    let now = state.clock.now();
    if let Ok(c) = state.keys.verify::<AccessClaims>(token) {
        if c.exp <= now || c.iat > now + 60 || state.revocations.is_revoked(&c.jti) {
            return None;
        }
        return Some(json!({
            "active": true,
            "token_type": "Bearer",
            "scope": c.scope,
            "client_id": c.client_id,
            "sub": c.sub,
            "aud": c.aud,
            "iss": c.iss,
            "exp": c.exp,
            "iat": c.iat,
            "jti": c.jti,
        }));
    }
    let grant = state.refresh_tokens.active(&hash_secret(token), now)?;
    Some(json!({
        "active": true,
        "token_type": "refresh_token",
        "scope": grant.scope.to_string(),
        "client_id": grant.client_id,
        "sub": grant.subject,
        "aud": grant.audience,
        "iss": state.config.issuer,
        "exp": grant.expires_at,
    }))
}
