//! `POST /oauth/register` (RFC 7591 section 3) and `/oauth/register/{client_id}` (RFC 7592
//! section 2): JSON in, JSON out, never cached.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::params::JsonBody;
use super::token::authorization;
use crate::error::Result;
use crate::service::register::{self, RegistrationRequest, UpdateRequest};
use crate::state::AppState;

/// `POST /oauth/register`
#[utoipa::path(post, path = shared_config::paths::REGISTER, request_body = RegistrationRequest, responses(
    (status = 201, body = super::openapi::RegistrationBody),
    (status = 400, body = super::openapi::ErrorBody),
    (status = 413, body = super::openapi::ErrorBody),
    (status = 415, body = super::openapi::ErrorBody),
    (status = 429, description = "over a rate limit (Retry-After)", body = super::openapi::ErrorBody),
    (status = 503, body = super::openapi::ErrorBody),
))]
pub async fn register_post(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<RegistrationRequest>,
) -> Result<Response> {
    let body = register::register(&state, request).await?;
    Ok(no_store(StatusCode::CREATED, body))
}

fn no_store(status: StatusCode, body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /oauth/register/{client_id}` (RFC 7592 section 2.1)
#[utoipa::path(get, path = shared_config::paths::REGISTER_CLIENT,
    params(("client_id" = String, Path)),
    responses(
        (status = 200, body = super::openapi::RegistrationBody),
        (status = 401, body = super::openapi::ErrorBody),
        (status = 429, description = "over a rate limit (Retry-After)", body = super::openapi::ErrorBody),
    ))]
pub async fn client_get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let body = register::read(&state, authorization(&headers)?, &id).await?;
    Ok(no_store(StatusCode::OK, body))
}

/// `PUT /oauth/register/{client_id}` (RFC 7592 section 2.2)
#[utoipa::path(put, path = shared_config::paths::REGISTER_CLIENT,
    params(("client_id" = String, Path)),
    request_body = UpdateRequest,
    responses(
        (status = 200, body = super::openapi::RegistrationBody),
        (status = 400, body = super::openapi::ErrorBody),
        (status = 401, body = super::openapi::ErrorBody),
        (status = 429, description = "over a rate limit (Retry-After)", body = super::openapi::ErrorBody),
        (status = 413, body = super::openapi::ErrorBody),
        (status = 415, body = super::openapi::ErrorBody),
    ))]
pub async fn client_put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<UpdateRequest>,
) -> Result<Response> {
    let body = register::update(&state, authorization(&headers)?, &id, request).await?;
    Ok(no_store(StatusCode::OK, body))
}

/// `DELETE /oauth/register/{client_id}` (RFC 7592 section 2.3): the client is gone, and with
/// it every refresh token it holds (they need the client to be used).
#[utoipa::path(delete, path = shared_config::paths::REGISTER_CLIENT,
    params(("client_id" = String, Path)),
    responses(
        (status = 204),
        (status = 401, body = super::openapi::ErrorBody),
        (status = 429, description = "over a rate limit (Retry-After)", body = super::openapi::ErrorBody),
    ))]
pub async fn client_delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode> {
    register::delete(&state, authorization(&headers)?, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
