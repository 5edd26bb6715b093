//! MCP sessions as the rest of the server names them, and the tokens `oauth_authenticate` holds
//! for one.

use std::sync::Arc;

use super::principal::Principal;

/// Identifies a session across transports: the `Mcp-Session-Id` of Streamable HTTP or of the
/// JSON shortcuts, or `sse:<id>` for the HTTP+SSE transport.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey(pub Arc<str>);

impl SessionKey {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }
}

/// Tokens obtained by `oauth_authenticate` for a session. The refresh token never leaves here.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct HeldTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub principal: Principal,
}

impl std::fmt::Debug for HeldTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldTokens")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}
