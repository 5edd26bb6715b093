//! The authorization endpoint's use case (RFC 6749 section 4.1.1 and 4.1.2, OAuth 2.1 section 4.1, RFC 7636
//! section 4.3, RFC 8707 section 2, RFC 9207 `iss` in every response). In demo mode the request is
//! approved at once for the demo user.

use url::Url;

use crate::domain::{AuthCode, CodeChallenge, GrantType, Params, Scope, hash_secret, random_token};
use crate::error::{AuthorizeError, ErrorCode, OAuthError};
use crate::service::token::check_resource;
use crate::state::AppState;

/// A request that passed every check, ready for the user's decision.
#[derive(Debug)]
pub struct Approved {
    pub client_id: String,
    pub redirect_uri: String,
    /// The redirect URI exactly as the request gave it (bound to the code).
    pub requested_redirect_uri: Option<String>,
    pub state: Option<String>,
    pub challenge: CodeChallenge,
    pub scope: Scope,
    pub resource: Option<String>,
}

/// An error after the redirect URI is trusted is reported by redirect.
struct RedirectTo<'a> {
    redirect_uri: &'a str,
    state: Option<&'a str>,
    issuer: &'a str,
}

impl RedirectTo<'_> {
    fn error(&self, err: OAuthError) -> AuthorizeError {
        let mut pairs = vec![("error", err.code.as_str().to_owned())];
        if let Some(d) = err.description {
            pairs.push(("error_description", d.into_owned()));
        }
        AuthorizeError::Redirect(redirect_with(
            self.redirect_uri,
            &pairs,
            self.state,
            self.issuer,
        ))
    }
}

/// Builds `redirect_uri?<pairs>&state=..&iss=..`, keeping the URI's own query.
pub fn redirect_with(
    redirect_uri: &str,
    pairs: &[(&str, String)],
    state: Option<&str>,
    issuer: &str,
) -> String {
    let mut url = Url::parse(redirect_uri).expect("redirect URIs are parsed at registration");
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
        if let Some(s) = state {
            query.append_pair("state", s);
        }
        query.append_pair("iss", issuer);
    }
    url.into()
}

/// Checks an authorization request: first the client and redirect URI (failures are shown,
/// never redirected), then everything else (failures go back to the client).
pub async fn validate(state: &AppState, params: &Params) -> Result<Approved, AuthorizeError> {
    let no_redirect = |e: OAuthError| AuthorizeError::NoRedirect(e);
    let client_id = params.require("client_id").map_err(no_redirect)?;
    let client = state
        .client(client_id)
        .await
        .map_err(|e| no_redirect(e.into()))?
        .ok_or_else(|| {
            no_redirect(OAuthError::invalid_request(format!(
                "unknown client_id: {client_id}"
            )))
        })?;
    let requested = params.get("redirect_uri");
    let redirect_uri = client.resolve_redirect(requested).ok_or_else(|| {
        no_redirect(OAuthError::invalid_request(match requested {
            Some(_) => "redirect_uri is not registered for this client",
            None => "redirect_uri is required",
        }))
    })?;
    let to = RedirectTo {
        redirect_uri: &redirect_uri,
        state: params.get("state"),
        issuer: &state.config.issuer,
    };

    match params.get("response_type") {
        Some("code") => {}
        Some(other) => {
            return Err(to.error(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                format!("response_type {other} is not supported; use code"),
            )));
        }
        None => {
            return Err(to.error(OAuthError::invalid_request(
                "missing parameter: response_type",
            )));
        }
    }
    if !client.allows(GrantType::AuthorizationCode) {
        return Err(to.error(OAuthError::unauthorized_client(
            "this client is not registered for the authorization_code grant",
        )));
    }
    let challenge = CodeChallenge::parse(
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    )
    .map_err(|e| to.error(OAuthError::invalid_request(e)))?;
    let scope = match params.get("scope") {
        None => client.scope,
        Some(s) => {
            // Scopes this server does not know (openid, profile, ...) are narrowed away while a
            // known one remains; offline_access is known and adds nothing to the token's scope.
            let narrowed = Scope::narrow(s);
            if !narrowed.knows_any() && !narrowed.unknown.is_empty() {
                return Err(to.error(OAuthError::invalid_scope(format!(
                    "none of the scopes {s:?} is known here (supported: {})",
                    Scope::requestable().join(" ")
                ))));
            }
            let scope = narrowed.scope;
            if scope.is_empty() {
                client.scope
            } else if client.scope.contains(scope) {
                scope
            } else {
                return Err(to.error(OAuthError::invalid_scope(format!(
                    "scope {s:?} exceeds what this client registered ({})",
                    client.scope
                ))));
            }
        }
    };
    let resource = params
        .get("resource")
        .map(|r| check_resource(state, r))
        .transpose()
        .map_err(|e| to.error(e))?;
    crate::service::clients::touch(state, &client)
        .await
        .map_err(|e| to.error(e))?;
    Ok(Approved {
        client_id: client.id.clone(),
        requested_redirect_uri: requested.map(str::to_owned),
        redirect_uri,
        state: params.get("state").map(str::to_owned),
        challenge,
        scope,
        resource,
    })
}

/// The user approved: issue a code; the answer is where to send the user agent back to.
pub async fn approve(
    state: &AppState,
    request: Approved,
    subject: &str,
) -> Result<String, AuthorizeError> {
    let to = RedirectTo {
        redirect_uri: &request.redirect_uri,
        state: request.state.as_deref(),
        issuer: &state.config.issuer,
    };
    let code = random_token();
    let entry = AuthCode {
        client_id: request.client_id.clone(),
        redirect_uri: request.requested_redirect_uri.clone(),
        challenge: request.challenge.clone(),
        scope: request.scope,
        resource: request.resource.clone(),
        subject: subject.to_owned(),
        expires_at: state.clock.now() + state.config.auth_code_ttl.as_secs(),
    };
    state
        .stores
        .grants
        .put_code(hash_secret(&code), entry)
        .await
        .map_err(|e| to.error(e.into()))?;
    tracing::info!(
        target: "audit",
        event = "authorization_granted", outcome = "success",
        client_id = %request.client_id,
        subject = %subject,
        scope = %request.scope,
        "authorization code issued"
    );
    Ok(redirect_with(
        &request.redirect_uri,
        &[("code", code)],
        request.state.as_deref(),
        &state.config.issuer,
    ))
}
