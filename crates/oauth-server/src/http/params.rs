//! Request parameter extraction for the OAuth endpoints: form bodies and query strings
//! (RFC 6749 section 3.1 and 3.2: "parameters MUST NOT be included more than once"), and JSON
//! bodies for registration (RFC 7591 section 3.1), with every rejection in the OAuth error format.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::domain::Params;
use crate::error::OAuthError;

/// Parameters from a form-encoded POST body.
pub struct FormParams(pub Params);

impl<S: Send + Sync> FromRequest<S> for FormParams {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        // RFC 6749 section 5.2: a request the endpoint cannot read is 400 invalid_request.
        if !is_form {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let body = read_body(req, state).await?;
        Params::parse(&body).map(Self)
    }
}

/// Parameters from the query string (the authorization endpoint).
pub struct QueryParams(pub Params);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = OAuthError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Params::parse(parts.uri.query().unwrap_or("").as_bytes()).map(Self)
    }
}

/// A JSON body, with malformed JSON, a wrong content type or an oversized body answered in the
/// OAuth error format instead of axum's plain-text rejections.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim();
                v.eq_ignore_ascii_case("application/json") || v.ends_with("+json")
            });
        if !is_json {
            return Err(
                OAuthError::invalid_request("the body must be application/json")
                    .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            );
        }
        let body = read_body(req, state).await?;
        serde_json::from_slice(&body).map(Self).map_err(|e| {
            OAuthError::invalid_client_metadata(format!(
                "the body is not valid client metadata: {e}"
            ))
        })
    }
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, OAuthError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            OAuthError::invalid_request("the request body is too large").with_status(status)
        } else {
            OAuthError::invalid_request("the request body could not be read")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_parameter_is_refused() {
        let err = Params::parse(b"grant_type=a&grant_type=b").unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::InvalidRequest);
    }

    #[test]
    fn values_are_percent_decoded_and_empty_ones_ignored() {
        let p = Params::parse(b"scope=read+write&state=&x=%2Fa").unwrap();
        assert_eq!(p.get("scope"), Some("read write"));
        assert_eq!(p.get("state"), None);
        assert_eq!(p.get("x"), Some("/a"));
    }
}
