//! Token revocation (RFC 7009): refresh tokens revoke their whole family (RFC 7009 section 2.1,
//! "SHOULD also invalidate all access tokens based on the same authorization grant"); access
//! tokens are revoked by `jti` until they expire. An unknown token still gets 200.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use crate::client_auth;
use crate::error::{OAuthError, Result};
use crate::params::FormParams;
use crate::state::AppState;
use crate::store::hash_secret;
use crate::token::AccessClaims;

/// `POST /oauth/revoke`
#[utoipa::path(post, path = shared_config::paths::REVOKE,
    request_body(content = crate::openapi::TokenParam, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "revoked, or unknown"),
        (status = 400, body = crate::openapi::ErrorBody),
        (status = 401, body = crate::openapi::ErrorBody),
        (status = 429, description = "over a rate limit (Retry-After)", body = crate::openapi::ErrorBody),
        (status = 415, body = crate::openapi::ErrorBody),
    ))]
pub async fn revoke_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    FormParams(params): FormParams,
) -> Result<StatusCode> {
    let presented = client_auth::identify(&state, &headers, &params).await?;
    let client = client_auth::authenticate(&state, presented)?;
    let token = params.require("token")?;
    let now = state.clock.now();

    // A refresh token is looked up by hash; anything else is tried as an access token.
    if let Some(grant) = state.refresh_tokens.active(&hash_secret(token), now) {
        if grant.client_id == client.id {
            let access = state.refresh_tokens.revoke_family(&grant.family);
            for (jti, exp) in &access {
                state
                    .revocations
                    .revoke(jti, *exp)
                    .map_err(|full| OAuthError::store_full(full.0))?;
            }
            tracing::info!(
                target: "audit",
                event = "token_revoked", outcome = "success",
                kind = "refresh_token",
                client_id = %client.id,
                subject = %grant.subject,
                access_tokens_revoked = access.len(),
                "refresh token family revoked"
            );
        }
        return Ok(StatusCode::OK);
    }
    if let Ok(claims) = state.keys.verify::<AccessClaims>(token)
        && claims.client_id == client.id
        && claims.exp > now
    {
        {
            state
                .revocations
                .revoke(&claims.jti, claims.exp)
                .map_err(|full| OAuthError::store_full(full.0))?;
            tracing::info!(
                target: "audit",
                event = "token_revoked", outcome = "success",
                kind = "access_token",
                client_id = %client.id,
                subject = %claims.sub,
                jti = %claims.jti,
                "access token revoked"
            );
        }
    }
    Ok(StatusCode::OK)
}
