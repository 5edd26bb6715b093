//! `POST /oauth/introspect` (RFC 7662 section 2): the answer is never cached.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::params::FormParams;
use super::token::authorization;
use crate::error::Result;
use crate::state::AppState;

/// `POST /oauth/introspect`
#[utoipa::path(post, path = shared_config::paths::INTROSPECT,
    request_body(content = super::openapi::TokenParam, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = super::openapi::IntrospectionBody),
        (status = 400, body = super::openapi::ErrorBody),
        (status = 401, body = super::openapi::ErrorBody),
        (status = 429, description = "over a rate limit (Retry-After)", body = super::openapi::ErrorBody),
    ))]
pub async fn introspect_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    FormParams(params): FormParams,
) -> Result<Response> {
    let body =
        crate::service::introspect::introspect(&state, authorization(&headers)?, &params).await?;
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
