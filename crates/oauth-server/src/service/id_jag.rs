//! Identity Assertion JWT Authorization Grants (draft-ietf-oauth-identity-assertion-authz-grant
//! sections 3 and 4.4; MCP ext-auth "Enterprise-Managed Authorization"), presented with the RFC
//! 7523 JWT bearer grant: the company's identity provider, which signed the user in to the MCP
//! client, vouches that this client may act for this user on this server. Checked: `typ`
//! `oauth-id-jag+jwt`, an asymmetric signature by a key of a trusted issuer, `aud` = this issuer,
//! `client_id` = the authenticated client (one the issuer lists), `resource` ours, `exp`/`iat`
//! near, `jti` used once (until it expires, on every instance); the scopes are the request's
//! within the grant's.

use serde::Deserialize;
use serde_json::Value;

use crate::domain::{Client, Scope};
use crate::error::{OAuthError, Result};
use crate::idp::{IssuerKeys, SubjectClaim};
use crate::service::assertion::{Signer, decode_signed, replay_key};
use crate::state::AppState;

/// The grant type (RFC 7523 section 2.1).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The profile advertised in `authorization_grant_profiles_supported`.
pub const PROFILE: &str = "urn:ietf:params:oauth:grant-profile:id-jag";
/// The JOSE `typ` of an ID-JAG.
const TYP: &str = "oauth-id-jag+jwt";
/// How far ahead a grant may expire: ID-JAGs are short-lived (profile section 7.4.2).
pub const MAX_LIFETIME_SECS: u64 = 600;
const LEEWAY_SECS: u64 = 30;

#[derive(Deserialize)]
struct Claims {
    sub: String,
    client_id: Option<String>,
    jti: Option<String>,
    exp: u64,
    iat: Option<u64>,
    scope: Option<String>,
    resource: Option<Value>,
    email: Option<String>,
}

#[derive(Deserialize)]
struct Issuer {
    iss: Option<String>,
}

/// What a verified grant allows.
#[derive(Debug)]
pub struct Granted {
    pub subject: String,
    pub scope: Scope,
    pub audience: String,
}

/// Verifies `assertion` for `client`, with the scope and resource the request names.
pub async fn verify(
    state: &AppState,
    client: &Client,
    assertion: &str,
    requested_scope: Option<Scope>,
    requested_resource: Option<String>,
) -> Result<Granted> {
    let issuer = jsonwebtoken::dangerous::insecure_decode_claims::<Issuer>(assertion)
        .ok()
        .and_then(|c| c.iss);
    let refuse = |reason: &'static str| {
        tracing::warn!(
            target: "audit",
            event = "id_jag_refused", outcome = "refused",
            client_id = %client.id,
            issuer = issuer.as_deref().unwrap_or("-"),
            reason,
            "an identity assertion grant was refused"
        );
        OAuthError::invalid_grant(format!(
            "the identity assertion grant was refused: {reason}"
        ))
    };
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| refuse("malformed JWT"))?;
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(TYP) || t.eq_ignore_ascii_case("application/oauth-id-jag+jwt")
    });
    if !typ_ok {
        return Err(refuse("typ is not oauth-id-jag+jwt"));
    }
    let Some(trusted) = issuer.as_deref().and_then(|iss| state.idps.find(iss)) else {
        return Err(refuse("the issuer is not a trusted identity provider"));
    };
    if !trusted.client_ids.iter().any(|id| id == &client.id) {
        return Err(refuse("this client may not present this issuer's grants"));
    }
    let signer = match &trusted.keys {
        IssuerKeys::Jwks(keys) => Signer::Keys(std::sync::Arc::clone(keys)),
        IssuerKeys::JwksUri(uri) => Signer::Uri(&state.idps.keys, uri),
    };
    let claims = decode_signed::<Claims>(assertion, signer, |v| {
        v.set_issuer(&[trusted.issuer.as_str()]);
        v.set_audience(&[state.config.issuer.as_str()]);
    })
    .await
    .map_err(refuse)?;

    let now = state.clock.now();
    if claims.exp + LEEWAY_SECS < now {
        return Err(refuse("the grant has expired"));
    }
    if claims.exp > now + MAX_LIFETIME_SECS + LEEWAY_SECS {
        return Err(refuse("the grant expires too far in the future"));
    }
    match claims.iat {
        Some(iat) if iat <= now + LEEWAY_SECS => {}
        Some(_) => return Err(refuse("the grant was issued in the future")),
        None => return Err(refuse("the grant has no iat")),
    }
    if claims.client_id.as_deref() != Some(client.id.as_str()) {
        return Err(refuse("the grant was issued to another client"));
    }
    let Some(jti) = claims.jti.filter(|j| !j.is_empty() && j.len() <= 256) else {
        return Err(refuse("the grant has no usable jti"));
    };

    // The resource: the grant's (which must be ours), else the request's, else the default.
    let granted_resource = match &claims.resource {
        None => None,
        Some(Value::String(r)) => Some(r.clone()),
        Some(_) => return Err(refuse("resource must be one URL")),
    };
    let audience = match (granted_resource, requested_resource) {
        (Some(g), Some(r)) if g != r => {
            return Err(OAuthError::invalid_target(
                "the requested resource is not the one the grant names",
            ));
        }
        (Some(g), _) => crate::service::token::check_resource(state, &g)
            .map_err(|_| refuse("the grant's resource is not served here"))?,
        (None, Some(r)) => r,
        (None, None) => state.config.default_resource().to_owned(),
    };

    // Scopes: the request's within the grant's (the grant's when the request names none), and
    // within what the client may have.
    let grant_scope = Scope::narrow(claims.scope.as_deref().unwrap_or("")).scope;
    let scope = match requested_scope.filter(|s| !s.is_empty()) {
        Some(requested) => intersect(requested, grant_scope),
        None => grant_scope,
    };
    let scope = intersect(scope, client.scope);
    if scope.is_empty() {
        return Err(OAuthError::invalid_scope(
            "the requested scopes and those of the grant have nothing in common",
        ));
    }

    let subject = local_subject(
        state,
        trusted.subject_claim,
        &claims.sub,
        claims.email.as_deref(),
    )
    .ok_or_else(|| refuse("the grant's user is not a user of this server"))?;

    let first = state
        .stores
        .replays
        .first_use(
            &replay_key("id_jag", &trusted.issuer, &jti),
            claims.exp + LEEWAY_SECS,
            now,
        )
        .await?;
    if !first {
        return Err(refuse("the grant was already used (jti replay)"));
    }
    Ok(Granted {
        subject,
        scope,
        audience,
    })
}

fn intersect(a: Scope, b: Scope) -> Scope {
    Scope::from_bits(a.bits() & b.bits())
}

/// The local user a grant names. In demo mode, the claim as it is; otherwise a user of
/// USERS_FILE: the one with that username (`sub`) or that email address (`email`).
fn local_subject(
    state: &AppState,
    claim: SubjectClaim,
    sub: &str,
    email: Option<&str>,
) -> Option<String> {
    let value = match claim {
        SubjectClaim::Sub => sub,
        SubjectClaim::Email => email.filter(|e| !e.is_empty())?,
    };
    if state.config.demo_mode {
        return Some(value.to_owned());
    }
    match claim {
        SubjectClaim::Sub => state.users.get(value).map(|u| u.username.clone()),
        SubjectClaim::Email => state.users.by_email(value).map(|u| u.username.clone()),
    }
}
