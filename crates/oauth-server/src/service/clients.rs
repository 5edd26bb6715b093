//! Client authentication at the token, revocation and introspection endpoints (RFC 6749
//! section 2.3.1): HTTP Basic, `client_id` + `client_secret` in the form, a signed JWT
//! (`private_key_jwt`, RFC 7523 section 2.2), or `client_id` alone for a public client. Secrets
//! are compared by hash in constant time; each client authenticates by the method it registered.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::domain::{AuthMethod, Client, Params};
use crate::error::{OAuthError, Result};
use crate::service::assertion::ASSERTION_TYPE;
use crate::state::AppState;

/// The credentials a request presented.
#[derive(Debug)]
pub struct Presented {
    pub client_id: String,
    credential: Credential,
    pub via_basic: bool,
    /// The endpoint called (an assertion's `aud` may name it).
    endpoint: String,
}

#[derive(Debug)]
enum Credential {
    None,
    Secret(String),
    Assertion(String),
}

/// Reads the client's credentials from the Authorization header or the form; two methods at
/// once is an invalid request (RFC 6749 section 2.3: a client MUST NOT use more than one).
pub fn presented(
    authorization: Option<&str>,
    params: &Params,
    endpoint: &str,
) -> Result<Option<Presented>> {
    let basic = match authorization {
        None => None,
        Some(value) => Some(parse_basic(value)?),
    };
    let assertion = match (
        params.get("client_assertion_type"),
        params.get("client_assertion"),
    ) {
        (None, None) => None,
        (Some(ASSERTION_TYPE), Some(jwt)) => Some(jwt),
        (Some(other), Some(_)) if other != ASSERTION_TYPE => {
            return Err(OAuthError::invalid_request(format!(
                "unsupported client_assertion_type (use {ASSERTION_TYPE})"
            )));
        }
        _ => {
            return Err(OAuthError::invalid_request(
                "client_assertion and client_assertion_type go together",
            ));
        }
    };
    let two_methods = || {
        OAuthError::invalid_request(
            "a request must use one client authentication method, not several",
        )
    };
    let presented = match (basic, assertion) {
        (Some(_), Some(_)) => return Err(two_methods()),
        (Some((id, secret)), None) => {
            if params.get("client_secret").is_some() {
                return Err(two_methods());
            }
            if params.get("client_id").is_some_and(|form_id| form_id != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body does not match the Authorization header",
                ));
            }
            Presented {
                client_id: id,
                credential: Credential::Secret(secret),
                via_basic: true,
                endpoint: endpoint.to_owned(),
            }
        }
        (None, Some(jwt)) => {
            if params.get("client_secret").is_some() {
                return Err(two_methods());
            }
            // RFC 7523 section 3: the client is the assertion's subject; a client_id sent
            // beside it must be the same.
            let claimed = crate::service::assertion::claimed_client(jwt).ok_or_else(|| {
                OAuthError::invalid_client("the client assertion is not a readable JWT")
            })?;
            if params.get("client_id").is_some_and(|id| id != claimed) {
                return Err(OAuthError::invalid_client(
                    "client_id does not match the client assertion's subject",
                ));
            }
            Presented {
                client_id: claimed,
                credential: Credential::Assertion(jwt.to_owned()),
                via_basic: false,
                endpoint: endpoint.to_owned(),
            }
        }
        (None, None) => match params.get("client_id") {
            None => return Ok(None),
            Some(id) => Presented {
                client_id: id.to_owned(),
                credential: match params.get("client_secret") {
                    Some(secret) => Credential::Secret(secret.to_owned()),
                    None => Credential::None,
                },
                via_basic: false,
                endpoint: endpoint.to_owned(),
            },
        },
    };
    Ok(Some(presented))
}

/// The credentials a request presented, with the metadata document of a URL client_id fetched
/// if needed: what every client-authenticating endpoint does first.
pub async fn identify(
    state: &AppState,
    authorization: Option<&str>,
    params: &Params,
    endpoint: &str,
) -> Result<Option<Presented>> {
    let presented = presented(authorization, params, endpoint)?;
    if let Some(p) = &presented {
        state.ensure_client(&p.client_id).await.map_err(|e| {
            OAuthError::invalid_client(format!("the client's metadata document was refused: {e}"))
        })?;
    }
    Ok(presented)
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`.
fn parse_basic(value: &str) -> Result<(String, String)> {
    let bad = || {
        let mut e = OAuthError::invalid_client("malformed HTTP Basic credentials");
        e.basic_challenge = true;
        e
    };
    let (scheme, encoded) = value.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (id, secret) = (decode(id), decode(secret));
    if id.is_empty() {
        return Err(bad());
    }
    Ok((id, secret))
}

/// Authenticates the client of a request and counts it against the client's rate limit. A
/// confidential client must present its secret (by either method, whatever it registered); a
/// public client presents only its id.
pub async fn authenticate(state: &AppState, presented: Option<Presented>) -> Result<Arc<Client>> {
    let Some(presented) = presented else {
        return Err(OAuthError::invalid_client(
            "client authentication is required",
        ));
    };
    let fail = |reason: &'static str| {
        metrics::counter!("auth_failures_total", "service" => "oauth", "reason" => reason)
            .increment(1);
        tracing::warn!(
            target: "audit",
            event = "client_authentication_failed", outcome = "refused",
            client_id = %presented.client_id,
            reason,
            "client authentication failed"
        );
        let mut e = OAuthError::invalid_client("client authentication failed");
        e.basic_challenge = presented.via_basic;
        e
    };
    let Some(client) = state.client(&presented.client_id).await? else {
        return Err(fail("unknown client"));
    };
    // Each client authenticates by the method it registered (a secret client by either way of
    // sending its secret).
    match (client.auth_method, &presented.credential) {
        (AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost, credential) => {
            match credential {
                Credential::Secret(secret) if client.secret_matches(secret) => {}
                Credential::Secret(_) => return Err(fail("wrong secret")),
                Credential::None => return Err(fail("missing secret")),
                Credential::Assertion(_) => {
                    return Err(fail("a secret client presented an assertion"));
                }
            }
        }
        (AuthMethod::PrivateKeyJwt, Credential::Assertion(jwt)) => {
            if let Err(reason) =
                crate::service::assertion::verify(state, &client, jwt, &presented.endpoint).await?
            {
                return Err(fail(reason));
            }
        }
        (AuthMethod::PrivateKeyJwt, _) => return Err(fail("missing client assertion")),
        (AuthMethod::None, Credential::None) => {}
        (AuthMethod::None, Credential::Secret(secret)) if secret.is_empty() => {}
        (AuthMethod::None, _) => return Err(fail("a public client presented credentials")),
    }
    // Counted once authenticated: a stranger naming a confidential client's id without its
    // secret cannot use up that client's requests.
    state.limits.client(&client.id)?;
    touch(state, &client).await?;
    Ok(client)
}

/// Records a use of a registered client, so that the idle sweep keeps it.
pub async fn touch(state: &AppState, client: &Client) -> Result<()> {
    if client.dynamic {
        state
            .stores
            .clients
            .touch(&client.id, state.clock.now())
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_url_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%20client:s%3Acret"));
        assert_eq!(
            parse_basic(&header).unwrap(),
            ("my client".into(), "s:cret".into())
        );
        assert!(parse_basic("Bearer abc").is_err());
        assert!(parse_basic("Basic !!!").is_err());
    }

    #[test]
    fn credentials_in_both_places_are_an_invalid_request() {
        let header = format!("Basic {}", STANDARD.encode("a:b"));
        let params = Params::from_pairs([("client_id", "a"), ("client_secret", "b")]);
        let err = presented(Some(&header), &params, "").unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::InvalidRequest);
    }
}
