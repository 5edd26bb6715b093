//! The OpenAPI 3.1 description of the MCP server's HTTP API (the protected resource API and the
//! discovery documents; MCP itself is JSON-RPC), generated from the handlers' annotations and the
//! wire types (utoipa), served at `/openapi.json`.

use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// An API error.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub error_description: Option<String>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "MCP server: protected resource API", description = "RFC 6750 bearer tokens (RFC 9068 JWTs), RFC 9728 protected resource metadata"),
    paths(
        crate::http::resource_metadata::prm_mcp_get,
        crate::http::resource_metadata::prm_root_get,
        crate::http::resource_metadata::prm_path_get,
        crate::http::resource_metadata::health_get,
        crate::http::api::profile_get,
        crate::http::api::data_get,
        crate::http::api::data_post,
        crate::http::api::data_put,
        crate::http::api::data_delete,
    ),
    components(schemas(ErrorBody, crate::service::items::Item, crate::service::items::ItemList, crate::service::items::Profile, crate::service::items::Deleted, crate::http::api::NewItem, crate::http::api::ItemChange)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// `GET /openapi.json`
pub async fn openapi_get() -> Response {
    axum::Json(ApiDoc::openapi()).into_response()
}
