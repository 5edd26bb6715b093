//! Client authentication at the token, revocation and introspection endpoints (RFC 6749
//! section 2.3.1): HTTP Basic, `client_id` + `client_secret` in the form, or `client_id` alone
//! for a public client. Secrets are compared by hash in constant time.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::domain::{Client, Params};
use crate::error::{OAuthError, Result};
use crate::state::AppState;

/// The credentials a request presented.
#[derive(Debug)]
pub struct Presented {
    pub client_id: String,
    secret: Option<String>,
    pub via_basic: bool,
}

/// Reads the client's credentials from the Authorization header or the form; both at once is an
/// invalid request (RFC 6749 section 2.3: a client MUST NOT use more than one method).
pub fn presented(authorization: Option<&str>, params: &Params) -> Result<Option<Presented>> {
    let basic = match authorization {
        None => None,
        Some(value) => Some(parse_basic(value)?),
    };
    match basic {
        Some((id, secret)) => {
            if params.get("client_secret").is_some() {
                return Err(OAuthError::invalid_request(
                    "client credentials were given both in the Authorization header and in the body",
                ));
            }
            if params.get("client_id").is_some_and(|form_id| form_id != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body does not match the Authorization header",
                ));
            }
            Ok(Some(Presented {
                client_id: id,
                secret: Some(secret),
                via_basic: true,
            }))
        }
        None => Ok(params.get("client_id").map(|id| Presented {
            client_id: id.to_owned(),
            secret: params.get("client_secret").map(str::to_owned),
            via_basic: false,
        })),
    }
}

/// The credentials a request presented, with the metadata document of a URL client_id fetched
/// if needed: what every client-authenticating endpoint does first.
pub async fn identify(
    state: &AppState,
    authorization: Option<&str>,
    params: &Params,
) -> Result<Option<Presented>> {
    let presented = presented(authorization, params)?;
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
    match (&presented.secret, client.is_confidential()) {
        (Some(secret), true) if client.secret_matches(secret) => {}
        (Some(_), true) => return Err(fail("wrong secret")),
        (None, true) => return Err(fail("missing secret")),
        (Some(secret), false) if secret.is_empty() => {}
        (Some(_), false) => return Err(fail("a public client presented a secret")),
        (None, false) => {}
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
        let err = presented(Some(&header), &params).unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::InvalidRequest);
    }
}
