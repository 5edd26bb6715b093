//! Bearer tokens at the HTTP edge: read from the `Authorization` header only (RFC 6750 section
//! 2.1), and the RFC 6750 section 3 / RFC 9728 section 5.1 challenges that tell a client how to
//! get a token.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::principal::BearerError;

/// The RFC 9728 metadata URL of a protected URL's path: the well-known prefix with the path
/// inserted after it (RFC 9728 section 3.1), so that the document's `resource` is that URL.
pub fn metadata_url(base: &str, path: &str) -> String {
    format!("{base}{}{path}", shared_config::paths::PRM_ROOT)
}

/// A bearer error with the resource metadata URL its challenge points to.
#[derive(Debug)]
pub struct Challenge {
    pub error: BearerError,
    pub resource_metadata: String,
}

impl IntoResponse for Challenge {
    fn into_response(self) -> Response {
        let meta = &self.resource_metadata;
        let (status, header_value, body) = match &self.error {
            BearerError::Missing => (
                StatusCode::UNAUTHORIZED,
                format!(r#"Bearer resource_metadata="{meta}", scope="read write""#),
                json!({"error": "unauthorized", "error_description": "a bearer token is required"}),
            ),
            BearerError::Invalid(why) => (
                StatusCode::UNAUTHORIZED,
                format!(
                    r#"Bearer error="invalid_token", error_description="{why}", resource_metadata="{meta}", scope="read write""#
                ),
                json!({"error": "invalid_token", "error_description": why}),
            ),
            BearerError::BadRequest(why) => (
                StatusCode::BAD_REQUEST,
                format!(
                    r#"Bearer error="invalid_request", error_description="{why}", resource_metadata="{meta}""#
                ),
                json!({"error": "invalid_request", "error_description": why}),
            ),
            BearerError::InsufficientScope { required, granted } => {
                // The scopes to ask for: those granted and the one required, so that a client
                // which replaces its scopes with these keeps what it had.
                let wanted = granted.with(*required);
                tracing::info!(
                    target: "audit",
                    event = "step_up_required", outcome = "refused",
                    required = required.as_str(), granted = %granted,
                    "a token lacks the scope an operation needs"
                );
                let why = format!("this operation needs the {} scope", required.as_str());
                (
                    StatusCode::FORBIDDEN,
                    format!(
                        r#"Bearer error="insufficient_scope", scope="{wanted}", resource_metadata="{meta}", error_description="{why}""#
                    ),
                    json!({"error": "insufficient_scope", "error_description": why, "scope": wanted.to_string()}),
                )
            }
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&header_value) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        response
    }
}

/// The bearer token of a request: from the Authorization header only (RFC 6750 section 2.1;
/// MCP forbids tokens in the query string).
pub fn bearer_token<'a>(
    headers: &'a HeaderMap,
    query: Option<&str>,
) -> Result<Option<&'a str>, BearerError> {
    if query.is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "access_token")
    }) {
        return Err(BearerError::BadRequest(
            "access tokens are accepted in the Authorization header only",
        ));
    }
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(BearerError::BadRequest(
            "a request must carry one Authorization header, not several",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| BearerError::Invalid("malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(BearerError::Invalid(
            "the Authorization header must be Bearer <token>",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_header_only() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h, None), Ok(None));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&h, None), Ok(Some("abc")));
        assert!(bearer_token(&h, Some("access_token=abc")).is_err());
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert!(bearer_token(&h, None).is_err());
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        h.append(header::AUTHORIZATION, "Bearer def".parse().unwrap());
        assert!(matches!(
            bearer_token(&h, None),
            Err(BearerError::BadRequest(_))
        ));
    }
}
