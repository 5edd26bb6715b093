//! The token endpoint's use cases (RFC 6749 sections 3.2, 4.1.3, 4.4 and 6; OAuth 2.1 section 4.3.1 refresh
//! token rotation; RFC 7636 section 4.6 PKCE verification; RFC 8707 resource indicators) and the
//! access tokens it issues (RFC 9068 JWT profile).

use url::Url;

use crate::domain::pkce::is_valid_verifier;
use crate::domain::{
    AccessClaims, AuthCode, Client, GrantType, Issued, Params, RefreshGrant, Scope, TokenResponse,
    hash_secret, parse_resource, random_token, resource_is_under,
};
use crate::error::{ErrorCode, OAuthError, Result};
use crate::service::clients;
use crate::state::AppState;
use crate::store::{Redeem, Rotate};

/// A token request, parsed (RFC 6749 sections 4.1.3, 4.4.2 and 6).
#[derive(Debug)]
pub enum Grant {
    AuthorizationCode {
        code: String,
        redirect_uri: Option<String>,
        verifier: String,
    },
    ClientCredentials {
        scope: Option<Scope>,
    },
    RefreshToken {
        token: String,
        scope: Option<Scope>,
    },
}

impl TryFrom<&Params> for Grant {
    type Error = OAuthError;

    fn try_from(p: &Params) -> Result<Self> {
        let scope = p
            .get("scope")
            .map(|s| Scope::parse(s).map_err(OAuthError::invalid_scope))
            .transpose()?;
        match p.require("grant_type")? {
            "authorization_code" => {
                let verifier = p.get("code_verifier").ok_or_else(|| {
                    OAuthError::invalid_request(
                        "missing parameter: code_verifier (PKCE is required)",
                    )
                })?;
                if !is_valid_verifier(verifier) {
                    return Err(OAuthError::invalid_request(
                        "code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~] (RFC 7636)",
                    ));
                }
                Ok(Self::AuthorizationCode {
                    code: p.require("code")?.to_owned(),
                    redirect_uri: p.get("redirect_uri").map(str::to_owned),
                    verifier: verifier.to_owned(),
                })
            }
            "client_credentials" => Ok(Self::ClientCredentials { scope }),
            "refresh_token" => Ok(Self::RefreshToken {
                token: p.require("refresh_token")?.to_owned(),
                scope,
            }),
            other => Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!("unsupported grant_type: {other}"),
            )),
        }
    }
}

impl Grant {
    fn grant_type(&self) -> GrantType {
        match self {
            Self::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            Self::ClientCredentials { .. } => GrantType::ClientCredentials,
            Self::RefreshToken { .. } => GrantType::RefreshToken,
        }
    }
}

/// The token endpoint's use case: authenticate the client, parse the grant, issue tokens.
pub async fn token(
    state: &AppState,
    authorization: Option<&str>,
    params: &Params,
) -> Result<TokenResponse> {
    let presented = clients::identify(state, authorization, params).await?;
    let grant = Grant::try_from(params)?;
    let client = clients::authenticate(state, presented)?;
    let resource = params
        .get("resource")
        .map(|r| check_resource(state, r))
        .transpose()?;
    if !client.allows(grant.grant_type()) {
        return Err(OAuthError::unauthorized_client(format!(
            "this client is not registered for the {} grant",
            grant.grant_type().as_str()
        )));
    }
    let grant_type = grant.grant_type().as_str();
    let result = match grant {
        Grant::AuthorizationCode {
            code,
            redirect_uri,
            verifier,
        } => exchange_code(
            state,
            &client,
            &code,
            redirect_uri.as_deref(),
            &verifier,
            resource,
        ),
        Grant::ClientCredentials { scope } => client_credentials(state, &client, scope, resource),
        Grant::RefreshToken { token, scope } => {
            refresh(state, &client, &token, scope, resource).await
        }
    };
    if result.is_ok() {
        metrics::counter!("oauth_tokens_issued_total", "grant" => grant_type).increment(1);
    }
    result
}

/// An RFC 8707 resource must be one this server issues tokens for, or a URL under one.
pub fn check_resource(state: &AppState, raw: &str) -> Result<String> {
    let url: Url = parse_resource(raw).map_err(OAuthError::invalid_target)?;
    if state
        .resources
        .iter()
        .any(|base| resource_is_under(&url, base))
    {
        Ok(raw.to_owned())
    } else {
        Err(OAuthError::invalid_target(format!(
            "this server does not issue tokens for the resource {raw}"
        )))
    }
}

fn exchange_code(
    state: &AppState,
    client: &Client,
    code: &str,
    redirect_uri: Option<&str>,
    verifier: &str,
    resource: Option<String>,
) -> Result<TokenResponse> {
    let hash = hash_secret(code);
    let now = state.clock.now();
    let bound_redirect = |c: &AuthCode| match (&c.redirect_uri, redirect_uri) {
        (Some(bound), Some(given)) => bound == given,
        (Some(_), None) => false,
        (None, Some(given)) => client.resolve_redirect(None).as_deref() == Some(given),
        (None, None) => true,
    };
    let bound_resource = |c: &AuthCode| match (&c.resource, &resource) {
        (Some(bound), Some(given)) => bound == given,
        _ => true,
    };
    let accept = |c: &AuthCode| {
        c.client_id == client.id
            && bound_redirect(c)
            && bound_resource(c)
            && c.challenge.verify(verifier)
    };
    let grant = match state.codes.redeem(&hash, now, &accept) {
        Redeem::Unknown => {
            return Err(OAuthError::invalid_grant(
                "the authorization code is invalid or expired",
            ));
        }
        Redeem::Replayed(issued) => {
            tracing::warn!(
                target: "audit",
                event = "authorization_code_replay", outcome = "refused",
                client_id = %client.id,
                "authorization code presented twice; revoking the tokens issued from it"
            );
            if let Some(issued) = issued {
                revoke_issued(state, &issued);
            }
            return Err(OAuthError::invalid_grant(
                "the authorization code was already used",
            ));
        }
        Redeem::Rejected(c) => {
            let reason = if c.client_id != client.id {
                "the authorization code was issued to another client"
            } else if !bound_redirect(&c) {
                "redirect_uri does not match the authorization request"
            } else if !bound_resource(&c) {
                return Err(OAuthError::invalid_target(
                    "resource does not match the authorization request",
                ));
            } else {
                "the code_verifier does not match the code_challenge"
            };
            return Err(OAuthError::invalid_grant(reason));
        }
        Redeem::Fresh(c) => c,
    };
    let audience = grant
        .resource
        .or(resource)
        .unwrap_or_else(|| state.config.default_resource().to_owned());
    let family = client
        .allows(GrantType::RefreshToken)
        .then(|| uuid::Uuid::new_v4().to_string());
    let (response, issued) = issue(
        state,
        client,
        &grant.subject,
        grant.scope,
        grant.scope,
        &audience,
        family,
    )?;
    if state.codes.record_issued(&hash, issued.clone()) {
        revoke_issued(state, &issued);
        return Err(OAuthError::invalid_grant(
            "the authorization code was already used",
        ));
    }
    Ok(response)
}

fn client_credentials(
    state: &AppState,
    client: &Client,
    scope: Option<Scope>,
    resource: Option<String>,
) -> Result<TokenResponse> {
    if !client.is_confidential() {
        return Err(OAuthError::unauthorized_client(
            "client_credentials is for confidential clients only",
        ));
    }
    let scope = requested_within(scope, client.scope)?;
    let audience = resource.unwrap_or_else(|| state.config.default_resource().to_owned());
    let (response, _) = issue(state, client, &client.id, scope, scope, &audience, None)?;
    Ok(response)
}

/// How long a retry waits for the answer of the rotation it repeats.
const RETRY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

async fn refresh(
    state: &AppState,
    client: &Client,
    token: &str,
    scope: Option<Scope>,
    resource: Option<String>,
) -> Result<TokenResponse> {
    let hash = hash_secret(token);
    let now = state.clock.now();
    let fits = |g: &RefreshGrant| {
        g.client_id == client.id
            && scope.is_none_or(|s| g.scope.contains(s))
            && resource.as_ref().is_none_or(|r| *r == g.audience)
    };
    let grace = state.config.refresh_grace.as_secs();
    let (grant, rotation) = match state.refresh_tokens.rotate(&hash, now, grace, &fits) {
        Rotate::Unknown => {
            return Err(OAuthError::invalid_grant(
                "the refresh token is invalid or expired",
            ));
        }
        Rotate::Reused(grant) => {
            let revoked = state.refresh_tokens.revoke_family(&grant.family);
            for (jti, exp) in &revoked {
                let _ = state.revocations.revoke(jti, *exp);
            }
            tracing::warn!(
                target: "audit",
                event = "refresh_token_reuse", outcome = "refused",
                client_id = %client.id,
                subject = %grant.subject,
                access_tokens_revoked = revoked.len(),
                "a rotated refresh token was presented again; its family is revoked"
            );
            return Err(OAuthError::invalid_grant(
                "the refresh token was already used",
            ));
        }
        Rotate::Rejected(g) => {
            return Err(if g.client_id != client.id {
                OAuthError::invalid_grant("the refresh token was issued to another client")
            } else if resource.as_ref().is_some_and(|r| *r != g.audience) {
                OAuthError::invalid_target("resource does not match the original grant")
            } else {
                OAuthError::invalid_scope("the requested scope exceeds the original grant")
            });
        }
        Rotate::Retry(rotation) => {
            // The same refresh, repeated moments after it was rotated (a lost answer, or
            // concurrent requests of one client): the same answer, not a theft alarm.
            let answer = tokio::time::timeout(RETRY_WAIT, rotation.wait()).await;
            tracing::info!(
                target: "audit",
                event = "refresh_token_retry", outcome = "success",
                client_id = %client.id,
                "a refresh was repeated within the grace window; the rotation's answer is repeated"
            );
            return match answer {
                Ok(Some(response)) => Ok((**response).clone()),
                _ => Err(OAuthError::invalid_grant(
                    "the refresh token was already used and its rotation did not complete",
                )),
            };
        }
        Rotate::Fresh(grant, rotation) => (grant, rotation),
    };
    // No await between the rotation and setting its answer: a dropped request cannot leave
    // retries waiting.
    let access_scope = scope.filter(|s| !s.is_empty()).unwrap_or(grant.scope);
    let result = issue(
        state,
        client,
        &grant.subject,
        access_scope,
        grant.scope,
        &grant.audience,
        Some(grant.family),
    )
    .map(|(response, _)| response);
    let _ = rotation.set(result.as_ref().ok().map(|r| std::sync::Arc::new(r.clone())));
    result
}

/// The requested scope, which must lie within what the client registered; none means all of it.
fn requested_within(requested: Option<Scope>, allowed: Scope) -> Result<Scope> {
    match requested {
        None => Ok(allowed),
        Some(s) if s.is_empty() => Ok(allowed),
        Some(s) if allowed.contains(s) => Ok(s),
        Some(s) => Err(OAuthError::invalid_scope(format!(
            "scope {s:?} exceeds what this client may ask for ({allowed})"
        ))),
    }
}

/// Mints an access token and, for a refresh family, a new refresh token carrying `grant_scope`.
fn issue(
    state: &AppState,
    client: &Client,
    subject: &str,
    scope: Scope,
    grant_scope: Scope,
    audience: &str,
    family: Option<String>,
) -> Result<(TokenResponse, Issued)> {
    let now = state.clock.now();
    let ttl = state.config.access_token_ttl.as_secs();
    let claims = AccessClaims {
        iss: state.config.issuer.clone(),
        sub: subject.to_owned(),
        aud: audience.to_owned(),
        client_id: client.id.clone(),
        scope: scope.to_string(),
        iat: now,
        exp: now + ttl,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    let access_token = state
        .keys
        .current()
        .sign(&claims)
        .map_err(|_| OAuthError::server_error("the token could not be signed"))?;
    let refresh_token = match &family {
        Some(family) => {
            let token = random_token();
            let grant = RefreshGrant {
                family: family.clone(),
                client_id: client.id.clone(),
                subject: subject.to_owned(),
                scope: grant_scope,
                audience: audience.to_owned(),
                expires_at: now + state.config.refresh_token_ttl.as_secs(),
            };
            state
                .refresh_tokens
                .insert(hash_secret(&token), grant)
                .map_err(|full| OAuthError::store_full(full.0))?;
            state
                .refresh_tokens
                .add_access_token(family, &claims.jti, claims.exp);
            Some(token)
        }
        None => None,
    };
    tracing::info!(
        target: "audit",
        event = "token_issued", outcome = "success",
        client_id = %client.id,
        subject = %subject,
        scope = %claims.scope,
        audience = %audience,
        jti = %claims.jti,
        refresh = refresh_token.is_some(),
        "access token issued"
    );
    let issued = Issued {
        access_jti: claims.jti.clone(),
        access_exp: claims.exp,
        family,
    };
    Ok((
        TokenResponse {
            access_token,
            token_type: "Bearer".to_owned(),
            expires_in: ttl,
            scope: claims.scope,
            refresh_token,
        },
        issued,
    ))
}

/// Revokes what a replayed authorization code produced: its access token and refresh family.
fn revoke_issued(state: &AppState, issued: &Issued) {
    let _ = state
        .revocations
        .revoke(&issued.access_jti, issued.access_exp);
    if let Some(family) = &issued.family {
        for (jti, exp) in state.refresh_tokens.revoke_family(family) {
            let _ = state.revocations.revoke(&jti, exp);
        }
    }
}
