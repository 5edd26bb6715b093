//! Token revocation (RFC 7009): refresh tokens revoke their whole family (RFC 7009 section 2.1,
//! "SHOULD also invalidate all access tokens based on the same authorization grant"); access
//! tokens are revoked by `jti` until they expire. An unknown token still succeeds.

use crate::domain::{AccessClaims, Params, hash_secret};
use crate::error::Result;
use crate::service::clients;
use crate::state::AppState;

/// Revokes `token` for the authenticated client; tokens of other clients are left alone.
pub async fn revoke(state: &AppState, authorization: Option<&str>, params: &Params) -> Result<()> {
    let presented =
        clients::identify(state, authorization, params, &state.endpoints.revocation).await?;
    let client = clients::authenticate(state, presented).await?;
    let token = params.require("token")?;
    let now = state.clock.now();

    // A refresh token is looked up by hash; anything else is tried as an access token.
    let grants = &state.stores.grants;
    if let Some(grant) = grants.active_refresh(&hash_secret(token), now).await? {
        if grant.client_id == client.id {
            let access_tokens_revoked = grants.revoke_family(&grant.family).await?;
            tracing::info!(
                target: "audit",
                event = "token_revoked", outcome = "success",
                kind = "refresh_token",
                client_id = %client.id,
                subject = %grant.subject,
                access_tokens_revoked,
                "refresh token family revoked"
            );
        }
        return Ok(());
    }
    if let Ok(claims) = state.keys.verify::<AccessClaims>(token)
        && claims.client_id == client.id
        && claims.exp > now
    {
        {
            grants.revoke_access(&claims.jti, claims.exp).await?;
            tracing::info!(
                target: "audit",
                event = "token_revoked", outcome = "success",
                kind = "access_token",
                client_id = %client.id,
                subject = %claims.sub,
                jti = %claims.jti,
                "access token revoked"
            );
        }
    }
    Ok(())
}
