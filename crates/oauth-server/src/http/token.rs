//! `POST /oauth/token` (RFC 6749 section 3.2): a form body, client authentication from the
//! `Authorization` header or the form, and the RFC 6749 section 5.1 answer.

use axum::extract::State;
use axum::http::{HeaderMap, header};

use super::params::FormParams;
use crate::domain::TokenResponse;
use crate::error::Result;
use crate::state::AppState;

/// `POST /oauth/token`
#[utoipa::path(post, path = shared_config::paths::TOKEN,
    request_body(content = super::openapi::TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, body = super::openapi::ErrorBody),
        (status = 401, body = super::openapi::ErrorBody),
        (status = 429, description = "over a rate limit (Retry-After)", body = super::openapi::ErrorBody),
        (status = 503, body = super::openapi::ErrorBody),
    ))]
pub async fn token_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    FormParams(params): FormParams,
) -> Result<TokenResponse> {
    crate::service::token::token(&state, authorization(&headers)?, &params, dpop(&headers)?).await
}

/// The `DPoP` header (RFC 9449 section 4.1): at most one.
pub fn dpop(headers: &HeaderMap) -> Result<Option<&str>> {
    let mut values = headers.get_all("dpop").iter();
    let first = values.next().map(|v| v.to_str().unwrap_or(""));
    if values.next().is_some() {
        return Err(crate::error::OAuthError::new(
            crate::error::ErrorCode::InvalidDpopProof,
            "more than one DPoP header",
        ));
    }
    Ok(first)
}

/// The `Authorization` header, when there is one (an unreadable one counts as empty). Two of
/// them are an invalid request (RFC 6749 section 2.3: one authentication method per request;
/// RFC 6750 section 3.1).
pub fn authorization(headers: &HeaderMap) -> Result<Option<&str>> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let first = values.next().map(|v| v.to_str().unwrap_or(""));
    if values.next().is_some() {
        return Err(crate::error::OAuthError::invalid_request(
            "more than one Authorization header",
        ));
    }
    Ok(first)
}
