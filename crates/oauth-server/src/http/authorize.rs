//! `GET /oauth/authorize` (RFC 6749 section 4.1.1): demo mode approves at once for the demo user;
//! otherwise the user signs in and consents (`http::signin`).

use axum::extract::State;
use axum::response::Response;

use super::params::QueryParams;
use super::response::found;
use crate::error::{AuthorizeError, OAuthError};
use crate::service::authorize::{approve, validate};
use crate::state::{AppState, DEMO_SUBJECT};

/// `GET /oauth/authorize`
#[utoipa::path(get, path = shared_config::paths::AUTHORIZE, params(
    ("response_type" = String, Query), ("client_id" = String, Query), ("redirect_uri" = Option<String>, Query),
    ("code_challenge" = String, Query), ("code_challenge_method" = String, Query), ("scope" = Option<String>, Query),
    ("state" = Option<String>, Query), ("resource" = Option<String>, Query),
), responses(
    (status = 302, description = "back to the redirect URI with code (or error), state and iss"),
    (status = 200, description = "the sign-in or consent page (DEMO_MODE=false)", content_type = "text/html", body = String),
    (status = 400, description = "the client or redirect URI cannot be trusted: an error page", content_type = "text/html", body = String),
    (status = 429, description = "over a rate limit (Retry-After)"),
))]
pub async fn authorize_get(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    query: Result<QueryParams, OAuthError>,
) -> Result<Response, AuthorizeError> {
    let QueryParams(params) = query.map_err(AuthorizeError::NoRedirect)?;
    if let Some(id) = params.get("client_id") {
        state
            .limits
            .client(id)
            .map_err(AuthorizeError::NoRedirect)?;
        state.ensure_client(id).await.map_err(|e| {
            AuthorizeError::NoRedirect(OAuthError::invalid_request(format!(
                "the client's metadata document was refused: {e}"
            )))
        })?;
    }
    let request = validate(&state, &params).await?;
    if state.config.demo_mode {
        return approve(&state, request, DEMO_SUBJECT)
            .await
            .map(|location| found(&location));
    }
    super::signin::authorize_interactive(&state, &headers, request, uri.query().unwrap_or("")).await
}
