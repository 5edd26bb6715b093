//! The JWT-protected resource API (RFC 6750 bearer tokens): the caller's profile and CRUD on the
//! caller's data items, through the same service code as the MCP tools.

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use shared_config::paths;

use super::bearer::{Challenge, access_token, check_presentation, metadata_url};
use crate::domain::principal::{BearerError, Principal};
use crate::mcp::public_base;
use crate::service::items::ServiceError;
use crate::state::AppState;

pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(paths::API_PROFILE, get(profile_get))
        .route(paths::API_DATA, get(data_get).post(data_post))
        .route(
            paths::API_DATA_ITEM,
            axum::routing::put(data_put).delete(data_delete),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            keep_body,
        ))
}

/// The body of an API request, read once (bounded): a DPoP proof's `content_digest` is checked
/// against it, and the handler parses it.
#[derive(Clone)]
struct ApiBody(axum::body::Bytes);

async fn keep_body(
    State(state): State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    if !matches!(
        *req.method(),
        axum::http::Method::POST | axum::http::Method::PUT
    ) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, state.config.max_body_bytes).await else {
        return ApiError::Invalid("the body is too large".into()).into_response();
    };
    parts.extensions.insert(ApiBody(bytes.clone()));
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// An API failure, in JSON.
pub enum ApiError {
    Bearer(Challenge),
    NotFound(String),
    Invalid(String),
    Limit(&'static str),
    /// Over the subject's rate limit: retry after this many seconds.
    TooMany(u64),
    /// A store cannot answer now: 503 with `Retry-After`.
    Unavailable,
}

impl ApiError {
    fn from_service(to: &MetadataUrl, e: ServiceError) -> Self {
        match e {
            ServiceError::Scope(required, granted) => Self::Bearer(Challenge {
                error: BearerError::InsufficientScope { required, granted },
                resource_metadata: to.0.clone(),
            }),
            ServiceError::NotFound(id) => Self::NotFound(id),
            ServiceError::Invalid(why) => Self::Invalid(why),
            ServiceError::Full(why) => Self::Limit(why),
            ServiceError::Unavailable => Self::Unavailable,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, description) = match self {
            Self::Bearer(c) => return c.into_response(),
            Self::TooMany(secs) => {
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(json!({
                        "error": "rate_limited",
                        "error_description": format!("too many requests; retry after {secs} s"),
                    })),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, secs.into());
                return response;
            }
            Self::Unavailable => {
                let mut response = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(json!({
                        "error": "temporarily_unavailable",
                        "error_description": "the service is temporarily unavailable; try again shortly",
                    })),
                )
                    .into_response();
                response.headers_mut().insert(header::RETRY_AFTER, 5.into());
                return response;
            }
            Self::NotFound(id) => (
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no item with id {id}"),
            ),
            Self::Invalid(why) => (StatusCode::BAD_REQUEST, "invalid_request", why),
            Self::Limit(why) => (StatusCode::CONFLICT, "limit_reached", why.to_owned()),
        };
        (
            status,
            axum::Json(json!({"error": error, "error_description": description})),
        )
            .into_response()
    }
}

/// The RFC 9728 metadata URL of the URL a request reached, for its challenges.
pub struct MetadataUrl(String);

impl MetadataUrl {
    fn of(state: &AppState, parts: &Parts) -> Self {
        Self(metadata_url(
            &public_base(state, &parts.headers),
            parts.uri.path(),
        ))
    }
}

/// The verified caller of an API request.
pub struct Caller(pub Principal, MetadataUrl);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let to = MetadataUrl::of(state, parts);
        let fail = |error| {
            ApiError::Bearer(Challenge {
                error,
                resource_metadata: to.0.clone(),
            })
        };
        let presented = access_token(&parts.headers, parts.uri.query())
            .map_err(fail)?
            .ok_or_else(|| fail(BearerError::Missing))?;
        let principal = state
            .shared
            .verifier
            .verify(presented.token)
            .await
            .map_err(fail)?;
        // A DPoP-bound token needs a proof for this request (RFC 9449 section 7), bound to its
        // body when it has one (the MCP DPoP profile's content_digest).
        let body = parts.extensions.get::<ApiBody>().map(|b| &b.0[..]);
        check_presentation(state, parts, presented, body, &principal).map_err(fail)?;
        state
            .shared
            .admit(&principal)
            .map_err(|r| ApiError::TooMany(r.0))?;
        Ok(Self(principal, to))
    }
}

/// A JSON body, with malformed or wrongly shaped input answered as a JSON 400.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(ApiError::Invalid(
                "the body must be application/json".into(),
            ));
        }
        let bytes = axum::body::to_bytes(req.into_body(), state.config.max_body_bytes)
            .await
            .map_err(|_| ApiError::Invalid("the body is too large".into()))?;
        if crate::mcp::rpc::too_deep(&bytes) {
            return Err(ApiError::Invalid("the JSON nests too deeply".into()));
        }
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::Invalid(format!("invalid JSON body: {e}")))
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    name: String,
    value: f64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemChange {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: Option<f64>,
}

/// `GET /api/user/profile`
#[utoipa::path(get, path = paths::API_PROFILE, security(("bearer" = [])), responses(
        (status = 401, description = "no or invalid token (WWW-Authenticate: Bearer ...)", body = crate::http::openapi::ErrorBody),
        (status = 429, description = "over the subject's rate limit (Retry-After)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "the token lacks the scope", body = crate::http::openapi::ErrorBody),
        (status = 200, body = crate::service::items::Profile),
    ))]
pub(crate) async fn profile_get(
    State(state): State<AppState>,
    Caller(p, h): Caller,
) -> Result<Response, ApiError> {
    let profile = state
        .shared
        .items
        .profile(&p)
        .map_err(|e| ApiError::from_service(&h, e))?;
    Ok(axum::Json(profile).into_response())
}

/// `GET /api/data`
#[utoipa::path(get, path = paths::API_DATA, security(("bearer" = [])), responses(
        (status = 401, description = "no or invalid token (WWW-Authenticate: Bearer ...)", body = crate::http::openapi::ErrorBody),
        (status = 429, description = "over the subject's rate limit (Retry-After)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "the token lacks the scope", body = crate::http::openapi::ErrorBody),
        (status = 200, body = crate::service::items::ItemList),
    ))]
pub(crate) async fn data_get(
    State(state): State<AppState>,
    Caller(p, h): Caller,
) -> Result<Response, ApiError> {
    let list = state
        .shared
        .items
        .list(&p)
        .await
        .map_err(|e| ApiError::from_service(&h, e))?;
    Ok(axum::Json(list).into_response())
}

/// `POST /api/data`
#[utoipa::path(post, path = paths::API_DATA, security(("bearer" = [])), request_body = NewItem, responses(
        (status = 401, description = "no or invalid token (WWW-Authenticate: Bearer ...)", body = crate::http::openapi::ErrorBody),
        (status = 429, description = "over the subject's rate limit (Retry-After)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "the token lacks the scope", body = crate::http::openapi::ErrorBody),
        (status = 201, body = crate::service::items::Item),
        (status = 400, body = crate::http::openapi::ErrorBody),
        (status = 409, description = "the item limit is reached", body = crate::http::openapi::ErrorBody),
    ))]
pub(crate) async fn data_post(
    State(state): State<AppState>,
    Caller(p, h): Caller,
    ApiJson(body): ApiJson<NewItem>,
) -> Result<Response, ApiError> {
    let item = state
        .shared
        .items
        .create(&p, &body.name, body.value)
        .await
        .map_err(|e| ApiError::from_service(&h, e))?;
    Ok((StatusCode::CREATED, axum::Json(item)).into_response())
}

/// `PUT /api/data/{id}`
#[utoipa::path(put, path = paths::API_DATA_ITEM, security(("bearer" = [])), params(("id" = String, Path)), request_body = ItemChange, responses(
        (status = 401, description = "no or invalid token (WWW-Authenticate: Bearer ...)", body = crate::http::openapi::ErrorBody),
        (status = 429, description = "over the subject's rate limit (Retry-After)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "the token lacks the scope", body = crate::http::openapi::ErrorBody),
        (status = 200, body = crate::service::items::Item),
        (status = 400, body = crate::http::openapi::ErrorBody),
        (status = 404, body = crate::http::openapi::ErrorBody),
    ))]
pub(crate) async fn data_put(
    State(state): State<AppState>,
    Caller(p, h): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ItemChange>,
) -> Result<Response, ApiError> {
    let item = state
        .shared
        .items
        .update(&p, &id, body.name.as_deref(), body.value)
        .await
        .map_err(|e| ApiError::from_service(&h, e))?;
    Ok(axum::Json(item).into_response())
}

/// `DELETE /api/data/{id}`
#[utoipa::path(delete, path = paths::API_DATA_ITEM, security(("bearer" = [])), params(("id" = String, Path)), responses(
        (status = 401, description = "no or invalid token (WWW-Authenticate: Bearer ...)", body = crate::http::openapi::ErrorBody),
        (status = 429, description = "over the subject's rate limit (Retry-After)", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "the token lacks the scope", body = crate::http::openapi::ErrorBody),
        (status = 200, body = crate::service::items::Deleted),
        (status = 404, body = crate::http::openapi::ErrorBody),
    ))]
pub(crate) async fn data_delete(
    State(state): State<AppState>,
    Caller(p, h): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let deleted = state
        .shared
        .items
        .delete(&p, &id)
        .await
        .map_err(|e| ApiError::from_service(&h, e))?;
    Ok(axum::Json(deleted).into_response())
}
