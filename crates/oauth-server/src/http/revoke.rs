//! `POST /oauth/revoke` (RFC 7009 section 2.1): 200 whether or not the token was known.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::params::FormParams;
use super::token::authorization;
use crate::error::Result;
use crate::state::AppState;

/// `POST /oauth/revoke`
#[utoipa::path(post, path = shared_config::paths::REVOKE,
    request_body(content = super::openapi::TokenParam, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "revoked, or unknown"),
        (status = 400, body = super::openapi::ErrorBody),
        (status = 401, body = super::openapi::ErrorBody),
        (status = 429, description = "over a rate limit (Retry-After)", body = super::openapi::ErrorBody),
    ))]
pub async fn revoke_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    FormParams(params): FormParams,
) -> Result<StatusCode> {
    crate::service::revoke::revoke(&state, authorization(&headers)?, &params).await?;
    Ok(StatusCode::OK)
}
