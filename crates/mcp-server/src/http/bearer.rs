//! Access tokens at the HTTP edge: read from the `Authorization` header only (RFC 6750 section
//! 2.1), as `Bearer` or as `DPoP` (RFC 9449 section 7.1), and the RFC 6750 section 3 / RFC 9728
//! section 5.1 / RFC 9449 section 7.1 challenges that tell a client how to get a token.

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
            BearerError::Dpop(why) => (
                StatusCode::UNAUTHORIZED,
                format!(r#"Bearer resource_metadata="{meta}", scope="read write""#),
                json!({"error": "invalid_dpop_proof", "error_description": why}),
            ),
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
        // Beside Bearer, the DPoP scheme with the algorithms proofs may use (RFC 9449 section
        // 7.1), and its error when a proof was the problem.
        if status == StatusCode::UNAUTHORIZED {
            let algs = service_kit::dpop::ALGS.join(" ");
            let dpop = match &self.error {
                BearerError::Dpop(why) => {
                    format!(
                        r#"DPoP error="invalid_dpop_proof", error_description="{why}", algs="{algs}""#
                    )
                }
                _ => format!(r#"DPoP algs="{algs}""#),
            };
            if let Ok(v) = HeaderValue::from_str(&dpop) {
                response.headers_mut().append(header::WWW_AUTHENTICATE, v);
            }
        }
        response
    }
}

/// An access token as a request presented it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presented<'a> {
    pub token: &'a str,
    /// Sent with the DPoP scheme (RFC 9449 section 7.1) rather than Bearer.
    pub dpop: bool,
}

/// The access token of a request: from the Authorization header only (RFC 6750 section 2.1;
/// MCP forbids tokens in the query string), as `Bearer` or `DPoP`.
pub fn access_token<'a>(
    headers: &'a HeaderMap,
    query: Option<&str>,
) -> Result<Option<Presented<'a>>, BearerError> {
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
        Some((scheme, token)) if !token.trim().is_empty() => {
            let dpop = scheme.eq_ignore_ascii_case("dpop");
            if !dpop && !scheme.eq_ignore_ascii_case("bearer") {
                return Err(BearerError::Invalid(
                    "the Authorization header must be Bearer <token> or DPoP <token>",
                ));
            }
            Ok(Some(Presented {
                token: token.trim(),
                dpop,
            }))
        }
        _ => Err(BearerError::Invalid(
            "the Authorization header must be Bearer <token> or DPoP <token>",
        )),
    }
}

/// Checks how a verified token was presented on a request (RFC 9449 section 7): a DPoP-bound
/// token only with the DPoP scheme and a proof of its key for this request (`htm`, `htu` = the
/// URL requested, `ath`, and the `content_digest` of `body` when there is one, the MCP profile),
/// seen once; a Bearer token only while MCP_REQUIRE_DPOP is off.
pub fn check_presentation(
    state: &crate::state::AppState,
    parts: &axum::http::request::Parts,
    presented: Presented<'_>,
    body: Option<&[u8]>,
    principal: &crate::domain::principal::Principal,
) -> Result<(), BearerError> {
    if !presented.dpop {
        if principal.jkt.is_some() {
            return Err(BearerError::Invalid(
                "this token is DPoP-bound: send it as DPoP <token> with a DPoP proof",
            ));
        }
        if state.config.mcp_require_dpop {
            return Err(BearerError::Dpop(
                "this server accepts DPoP-bound tokens only (RFC 9449)",
            ));
        }
        return Ok(());
    }
    let Some(bound) = &principal.jkt else {
        return Err(BearerError::Invalid(
            "the DPoP scheme needs a DPoP-bound token (cnf.jkt)",
        ));
    };
    let mut proofs = parts.headers.get_all("dpop").iter();
    let proof = match (proofs.next(), proofs.next()) {
        (Some(one), None) => one
            .to_str()
            .map_err(|_| BearerError::Dpop("the DPoP header is not readable"))?,
        (None, _) => return Err(BearerError::Dpop("a DPoP proof is required")),
        (Some(_), Some(_)) => return Err(BearerError::Dpop("more than one DPoP header")),
    };
    let now = service_kit::clock::unix_now();
    let url = format!(
        "{}{}",
        crate::mcp::public_base(state, &parts.headers),
        parts.uri.path()
    );
    let expected = service_kit::dpop::Expected {
        method: parts.method.as_str(),
        url: &url,
        access_token: Some(presented.token),
        body: body.filter(|b| !b.is_empty()),
        now,
    };
    let proof = service_kit::dpop::verify(proof, &expected).map_err(BearerError::Dpop)?;
    if &proof.jkt != bound {
        return Err(BearerError::Dpop(
            "the DPoP proof's key is not the key the token is bound to",
        ));
    }
    if !state.shared.dpop_replays.first_use(&proof, now) {
        return Err(BearerError::Dpop(
            "the DPoP proof was already used (jti replay)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_header_only() {
        let mut h = HeaderMap::new();
        assert_eq!(access_token(&h, None), Ok(None));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(
            access_token(&h, None),
            Ok(Some(Presented {
                token: "abc",
                dpop: false
            }))
        );
        h.insert(header::AUTHORIZATION, "DPoP abc".parse().unwrap());
        assert!(access_token(&h, None).unwrap().unwrap().dpop);
        assert!(access_token(&h, Some("access_token=abc")).is_err());
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert!(access_token(&h, None).is_err());
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        h.append(header::AUTHORIZATION, "Bearer def".parse().unwrap());
        assert!(matches!(
            access_token(&h, None),
            Err(BearerError::BadRequest(_))
        ));
    }
}
