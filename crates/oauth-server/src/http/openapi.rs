//! The OpenAPI 3.1 description of the authorization server's endpoints, generated from the
//! handlers' annotations and the wire types (utoipa), served at `/openapi.json`.

use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

/// RFC 6749 section 5.2 (and RFC 7591 section 3.2.2) error body.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// An error code such as `invalid_request`, `invalid_client`, `invalid_grant`.
    pub error: String,
    pub error_description: Option<String>,
}

/// A token request (form-encoded), any of the three grants.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenForm {
    /// `authorization_code`, `client_credentials` or `refresh_token`.
    pub grant_type: String,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    /// PKCE verifier: 43 to 128 characters of `[A-Za-z0-9-._~]`.
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    /// RFC 8707 resource indicator.
    pub resource: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// RFC 7009 / RFC 7662 request (form-encoded).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenParam {
    pub token: String,
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// RFC 7662 answer: `{"active": false}`, or the token's claims.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct IntrospectionBody {
    pub active: bool,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub sub: Option<String>,
    pub aud: Option<String>,
    pub iss: Option<String>,
    pub exp: Option<u64>,
    pub iat: Option<u64>,
    pub jti: Option<String>,
    pub token_type: Option<String>,
}

/// RFC 7591 section 3.2.1 answer.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RegistrationBody {
    pub client_id: String,
    pub client_id_issued_at: u64,
    /// Confidential clients only.
    pub client_secret: Option<String>,
    pub client_secret_expires_at: Option<u64>,
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub token_endpoint_auth_method: String,
    pub scope: String,
    /// RFC 7592: where the client reads, updates and deletes its registration.
    pub registration_client_uri: String,
    /// RFC 7592: the bearer token for that endpoint; in the registration response only.
    pub registration_access_token: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "OAuth 2.1 authorization server for MCP",
        description = "RFC 6749, 7009, 7591, 7636, 7662, 8414, 8707, 9068, 9207"
    ),
    paths(
        super::metadata::metadata_get,
        super::metadata::jwks_get,
        super::metadata::health_get,
        super::register::register_post,
        super::register::client_get,
        super::register::client_put,
        super::register::client_delete,
        super::authorize::authorize_get,
        super::token::token_post,
        super::revoke::revoke_post,
        super::introspect::introspect_post,
    ),
    components(schemas(
        ErrorBody,
        TokenForm,
        TokenParam,
        IntrospectionBody,
        RegistrationBody,
        crate::service::register::RegistrationRequest,
        crate::service::register::UpdateRequest,
        crate::domain::TokenResponse
    ))
)]
pub struct ApiDoc;

/// `GET /openapi.json`
pub async fn openapi_get() -> Response {
    axum::Json(ApiDoc::openapi()).into_response()
}
