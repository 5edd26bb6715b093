//! The session side of authorization (MCP 2025-11-25 security best practices, "Session
//! Hijacking"): which principal a session acts for, and `oauth_authenticate` in demo mode, which
//! obtains tokens for a session, keeps them in the session store and refreshes them by itself.

use schemars::JsonSchema;
use serde::Serialize;
pub use service_kit::clock::unix_now;
use shared_config::Config;

use crate::domain::principal::Principal;
use crate::domain::session::SessionKey;
use crate::service::auth::TokenVerifier;
use crate::service::demo_oauth::DemoOAuth;
use crate::store::{Admission, SessionStore};

/// What `oauth_authenticate` answers.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AuthResult {
    pub authenticated: bool,
    /// Who is now authenticated.
    pub subject: String,
    pub scope: String,
    /// Unix time at which the access token expires (it is refreshed by itself in a session).
    #[schemars(with = "i64")]
    pub expires_at: u64,
    pub message: String,
    /// Only without an MCP session: the access token, to send as `Authorization: Bearer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
}

/// What the session use cases need.
pub struct SessionAuth<'a> {
    pub config: &'a Config,
    pub demo: &'a DemoOAuth,
    pub verifier: &'a TokenVerifier,
    pub sessions: &'a dyn SessionStore,
}

impl SessionAuth<'_> {
    /// `oauth_authenticate`: obtains tokens for the session (or, without one, for the caller).
    pub async fn authenticate(&self, session: Option<SessionKey>) -> Result<AuthResult, String> {
        if !self.config.demo_mode {
            return Err(format!(
                "oauth_authenticate works in demo mode only. Authorize properly instead: your MCP \
                 client discovers the authorization server from {}{} (or from the 401 challenge), \
                 registers, signs you in and sends the access token as a bearer token.",
                self.config.mcp_url,
                shared_config::paths::PRM_MCP
            ));
        }
        let held = self.demo.authorize(self.verifier).await?;
        let result = AuthResult {
            authenticated: true,
            subject: held.principal.subject.clone(),
            scope: held.principal.scopes.to_string(),
            expires_at: held.principal.expires_at,
            message: String::new(),
            access_token: None,
        };
        match session {
            Some(key) => {
                match self.sessions.hold(&key, held, unix_now()).await {
                    Ok(Admission::Admitted | Admission::Unknown) => {}
                    Ok(Admission::Mismatch) => {
                        return Err("this session belongs to another user".to_owned());
                    }
                    Err(e) => return Err(format!("the session could not be updated: {e}")),
                }
                Ok(AuthResult {
                    message: "Authenticated: this session's tool calls now use these tokens, \
                              refreshed when they expire."
                        .into(),
                    ..result
                })
            }
            None => Ok(AuthResult {
                message: "Authenticated. No MCP session was open, so here is the access token: \
                          send it as `Authorization: Bearer <access_token>`."
                    .into(),
                access_token: Some(held.access_token),
                ..result
            }),
        }
    }

    /// The principal of a session that holds tokens from `oauth_authenticate`, refreshed first
    /// when the access token has expired.
    pub async fn session_principal(&self, key: &SessionKey) -> Option<Principal> {
        let held = self.sessions.held(key).await.ok()??;
        if held.principal.expires_at > unix_now() + 30 {
            return Some(held.principal);
        }
        match self.demo.refresh(self.verifier, &held).await {
            Ok(fresh) => {
                let principal = fresh.principal.clone();
                match self.sessions.hold(key, fresh, unix_now()).await {
                    Ok(Admission::Admitted) => Some(principal),
                    _ => None,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "refreshing a session's held tokens failed");
                None
            }
        }
    }
}
