//! Token introspection (RFC 7662): for authenticated confidential clients (resource servers);
//! an active token is described by its claims, anything else is exactly `{"active": false}`.

use serde_json::{Value, json};

use crate::domain::{AccessClaims, Params, hash_secret};
use crate::error::{OAuthError, Result};
use crate::service::clients;
use crate::state::AppState;

/// The RFC 7662 section 2.2 answer about `token`, for the authenticated client.
pub async fn introspect(
    state: &AppState,
    authorization: Option<&str>,
    params: &Params,
) -> Result<Value> {
    let presented =
        clients::identify(state, authorization, params, &state.endpoints.introspection).await?;
    let client = clients::authenticate(state, presented).await?;
    if !client.is_confidential() {
        return Err(OAuthError::invalid_client(
            "introspection is for confidential clients (resource servers) only",
        ));
    }
    let token = params.require("token")?;
    // A dynamically registered client learns only about its own tokens (RFC 7662 section 4:
    // no token scanning); the configured resource server and demo client about any.
    let body = describe(state, token)
        .await?
        .filter(|b| !client.dynamic || b["client_id"] == client.id.as_str())
        .unwrap_or_else(|| json!({ "active": false }));
    Ok(body)
}

async fn describe(state: &AppState, token: &str) -> Result<Option<Value>> {
    let now = state.clock.now();
    if let Ok(c) = state.keys.verify::<AccessClaims>(token) {
        if c.exp <= now || c.iat > now + 60 || state.stores.grants.is_revoked(&c.jti).await? {
            return Ok(None);
        }
        return Ok(Some(json!({
            "active": true,
            "token_type": "Bearer",
            "scope": c.scope,
            "client_id": c.client_id,
            "sub": c.sub,
            "aud": c.aud,
            "iss": c.iss,
            "exp": c.exp,
            "iat": c.iat,
            "jti": c.jti,
        })));
    }
    let Some(grant) = state
        .stores
        .grants
        .active_refresh(&hash_secret(token), now)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(json!({
        "active": true,
        "token_type": "refresh_token",
        "scope": grant.scope.to_string(),
        "client_id": grant.client_id,
        "sub": grant.subject,
        "aud": grant.audience,
        "iss": state.config.issuer,
        "exp": grant.expires_at,
    })))
}
